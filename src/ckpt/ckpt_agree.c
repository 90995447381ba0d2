/* ckpt_agree.c — what every rank must agree on before and during a collective write or load: whether any rank failed
 * (after every phase, so that a rank that failed never leaves the others inside a collective call), bytes gathered
 * onto all, the tensor layout each passed (a fingerprint, and a shard layout's own consistency), and which rank
 * writes which elements of the optimizer states. */
#include "ckpt/ckpt_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

/* Gathers `bytes` bytes from every rank onto every rank (rank order): a gather then a broadcast. */
dl_status dl_ckpt_allgather_bytes(dl_world *w, const void *mine, size_t bytes, void *all, const char *what) {
    int lengths_stack[64];
    int *lengths = w->size <= 64 ? lengths_stack : malloc((size_t)w->size * sizeof(int));
    DL_REQUIRE(lengths != NULL, DL_ERR_NOMEM, "cannot allocate %d lengths", w->size);
    void *gathered = NULL;
    dl_status s = dl_comm_gather_bytes(w, mine, (int)bytes, 0, &gathered, lengths, what);
    if (s == DL_OK && w->rank == 0)
        memcpy(all, gathered, bytes * (size_t)w->size);
    free(gathered);
    if (lengths != lengths_stack)
        free(lengths);
    DL_CHECK(s);
    return dl_comm_broadcast(w, all, bytes * (size_t)w->size, 0, what);
}

/* A fingerprint of the layout (tensor names and shapes, state names): every rank must pass the same. */
uint64_t dl_ckpt_layout_hash(const dl_ckpt_tensors *t, const dl_shard_layout *l) {
    uint64_t h = dl_hash_u64((uint64_t)t->params->count) ^ dl_hash_u64((uint64_t)t->num_states << 32);
    for (size_t i = 0; i < t->params->count; i++) {
        const dl_tensor *v = dl_tensor_table_at(t->params, i);
        h = dl_hash_pair(h, dl_hash_str(v->name));
        for (int d = 0; d < v->ndim; d++)
            h = dl_hash_pair(h, v->shape[d]);
        h = dl_hash_pair(h, v->offset);
    }
    for (int k = 0; k < t->num_states; k++)
        h = dl_hash_pair(h, dl_hash_str(t->state_names[k]));
    for (size_t i = 0; l && i < t->params->count; i++) /* which tensors are split (offsets are per rank) */
        h = dl_hash_pair(h, 0x5370 + (uint64_t)i * 2 + (l->split[i] != 0));
    return h;
}

/* A layout's own consistency with the table (shard_layout.h): one entry per tensor, unsplit tensors inside the
 * buffer. Split tensors are checked row by row when the plan is built. */
dl_status dl_ckpt_check_layout(const dl_ckpt_tensors *t, const dl_shard_layout *l) {
    if (!l)
        return DL_OK;
    DL_REQUIRE(l->local_offset && l->split && l->local_row, DL_ERR_INVALID, "checkpoint layout: NULL member");
    DL_REQUIRE(l->count == t->params->count, DL_ERR_INVALID,
               "checkpoint layout: it describes %zu tensors, the table has %zu", l->count, t->params->count);
    for (size_t i = 0; i < l->count; i++) {
        const dl_tensor *v = dl_tensor_table_at(t->params, i);
        if (!l->split[i] && l->local_offset[i] + v->numel > l->local_numel)
            return DL_FAIL(DL_ERR_INVALID, "checkpoint layout: tensor %s at float %zu of a %zu-float buffer does not "
                           "fit", v->name, l->local_offset[i], l->local_numel);
        if (l->split[i] && v->ndim < 1)
            return DL_FAIL(DL_ERR_INVALID, "checkpoint layout: the scalar %s cannot be split by rows", v->name);
    }
    return DL_OK;
}

/* The element range each rank writes of the optimizer states: slices sorted by start, each rank taking what it
 * holds beyond what earlier ones covered. Fails (the same way on every rank) when the slices leave a gap. */
dl_status dl_ckpt_resolve_slices(const uint64_t *slices, int world, uint64_t numel, int rank, uint64_t *begin,
                                 uint64_t *end) {
    int *order = malloc((size_t)world * sizeof(int));
    DL_REQUIRE(order != NULL, DL_ERR_NOMEM, "cannot allocate %d slice indices", world);
    for (int r = 0; r < world; r++)
        order[r] = r;
    for (int i = 1; i < world; i++) /* insertion sort by (begin, rank): world sizes are small */
        for (int j = i; j > 0 && slices[2 * order[j]] < slices[2 * order[j - 1]]; j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    uint64_t covered = 0;
    dl_status s = DL_OK;
    *begin = *end = 0;
    for (int i = 0; i < world; i++) {
        int r = order[i];
        uint64_t b = slices[2 * r], e = slices[2 * r + 1];
        if (e > b && b > covered) {
            s = DL_FAIL(DL_ERR_INVALID, "optimizer state slices leave elements [%llu, %llu) to no rank",
                        (unsigned long long)covered, (unsigned long long)b);
            break;
        }
        uint64_t eb = covered > b ? covered : b, ee = e > eb ? e : eb;
        if (r == rank) {
            *begin = eb;
            *end = ee;
        }
        if (e > covered)
            covered = e;
    }
    if (s == DL_OK && covered < numel)
        s = DL_FAIL(DL_ERR_INVALID, "optimizer state slices cover [0, %llu) of %llu elements",
                    (unsigned long long)covered, (unsigned long long)numel);
    free(order);
    return s;
}

/* Every rank learns whether any failed; the failing ones keep their message. */
dl_status dl_ckpt_agree(dl_world *w, dl_status local, const char *what) {
    int64_t failed = local != DL_OK;
    dl_status c = dl_comm_allreduce_max_i64(w, &failed, 1, what);
    if (local != DL_OK)
        return local;
    DL_CHECK(c);
    if (failed)
        return DL_FAIL(DL_ERR_IO, "another rank failed during %s (see its message)", what);
    return DL_OK;
}
