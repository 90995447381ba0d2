/* ckpt_load.c — dl_ckpt_load and dl_ckpt_load_collective: a checkpoint read back into a tensor table, on the same or
 * another world size.
 *
 * Reading is per rank with the serial API, whole datasets at a time: simple, and it is also what makes a checkpoint
 * from any world size load on any other (each rank keeps its slice of what it read). Split tables are read in slabs,
 * a 1/W share per rank, each row then sent to the rank that holds it (ckpt_slabs.c), and their CRCs are checked by
 * the ranks together. The file must hold exactly the table's tensors and states: a dataset missing, left over, or of
 * another shape is named. */
#include "ckpt/ckpt_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A split dataset to load in rounds (dl_ckpt_read_split): found and checked, with the CRC its slabs must add up to. */
typedef struct split_load {
    char name[384];
    size_t tensor;
    float *out; /* where this rank's rows of it go */
    int params; /* the parameters (not a state): a layout's shared_row may place their rows */
    uint32_t stored, raw;
} split_load;

/* Fails when a dataset under `prefix` is not one `expect` accepts. */
static dl_status check_no_extra(dl_ckpt_file *f, const char *prefix, const dl_ckpt_tensors *t, int states) {
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < f->count; i++) {
        const char *n = f->sets[i].name;
        if (strncmp(n, prefix, plen) != 0)
            continue;
        const char *rest = n + plen;
        if (states) {
            const char *slash = strchr(rest, '/');
            size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
            int known = 0;
            for (int k = 0; k < t->num_states && !known; k++)
                known = strlen(t->state_names[k]) == len && strncmp(t->state_names[k], rest, len) == 0;
            if (!known) {
                char names[256] = "";
                size_t at = 0;
                for (int k = 0; k < t->num_states && at < sizeof names; k++)
                    at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", k ? ", " : "", t->state_names[k]);
                dl_status s = DL_FAIL(DL_ERR_FORMAT,
                                      "%s: tensor %s is optimizer state '%.*s', but this run's optimizer keeps %s",
                                      f->path, n, (int)len, rest, t->num_states ? names : "none");
                dl_error_hint("resume with the optimizer the checkpoint was written with (optim.name), or start "
                              "over with train.resume=never run.overwrite=true");
                return s;
            }
            rest = slash ? slash + 1 : rest;
        }
        if (!dl_tensor_table_find(t->params, rest)) {
            dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s is not a parameter of this model", f->path, n);
            dl_error_hint("the checkpoint is of another model shape: compare model.* with its config (dealer ckpt "
                          "show)");
            return s;
        }
    }
    return DL_OK;
}

/* Reads tensor i of the table from dataset `name` into buffer `data` (laid out as l says, or as the whole table):
 * whole, or for a split tensor only checked and noted in splits[(*nsplit)++], to be read in rounds by all ranks. */
static dl_status load_tensor(dl_ckpt_file *f, const dl_ckpt_tensors *t, const dl_shard_layout *l, size_t i,
                             const char *name, float *data, split_load *splits, size_t *nsplit) {
    const dl_tensor *v = dl_tensor_table_at(t->params, i);
    float *at = data + (l ? l->local_offset[i] : v->offset);
    if (!(l && l->split[i]))
        return dl_ckpt_read_checked(f, name, DL_CKPT_F32, v->ndim, v->shape, at);
    const dl_ckpt_dataset *d;
    DL_CHECK(dl_ckpt_find_checked(f, name, DL_CKPT_F32, v->ndim, v->shape, &d));
    dl_ckpt_plan one = {0};
    dl_ckpt_planned *p = NULL;
    dl_status s = dl_ckpt_plan_add(&one, name, v->ndim, v->shape, DL_CKPT_F32, NULL, 1, &p);
    if (s == DL_OK) {
        dl_ckpt_planned_set_split(p, l, i, data == t->params_data);
        s = dl_ckpt_check_split_rows(p);
    }
    dl_ckpt_plan_free(&one);
    DL_CHECK(s);
    split_load *sl = &splits[(*nsplit)++];
    snprintf(sl->name, sizeof sl->name, "%s", name);
    sl->tensor = i;
    sl->out = at;
    sl->params = data == t->params_data;
    sl->stored = d->crc;
    return DL_OK;
}

/* The split datasets of a load: one per split tensor and per state. */
static size_t split_datasets(const dl_ckpt_tensors *t, const dl_shard_layout *l) {
    size_t n = 0;
    for (size_t i = 0; l && i < t->params->count && i < l->count; i++)
        n += l->split[i] ? 1u + (size_t)(t->num_states > 0 ? t->num_states : 0) : 0u;
    return n;
}

static dl_status load_from(dl_ckpt_file *f, const dl_ckpt_tensors *t, const dl_shard_layout *l, int rank,
                           int world_size, uint8_t **cursor, size_t *cursor_len, split_load *splits) {
    char name[384];
    size_t nsplit = 0;
    DL_CHECK(check_no_extra(f, "/model/", t, 0));
    for (size_t i = 0; i < t->params->count; i++) {
        snprintf(name, sizeof name, "/model/%s", dl_tensor_table_at(t->params, i)->name);
        DL_CHECK(load_tensor(f, t, l, i, name, t->params_data, splits, &nsplit));
    }
    if (t->num_states > 0) {
        DL_CHECK(check_no_extra(f, "/optimizer/", t, 1));
        for (int k = 0; k < t->num_states; k++)
            for (size_t i = 0; i < t->params->count; i++) {
                snprintf(name, sizeof name, "/optimizer/%s/%s", t->state_names[k],
                         dl_tensor_table_at(t->params, i)->name);
                DL_CHECK(load_tensor(f, t, l, i, name, t->states_data[k], splits, &nsplit));
            }
    }
    int64_t saved_world = 0;
    DL_CHECK(dl_ckpt_attr_read(f->file, "world_size", H5T_NATIVE_INT64, &saved_world, f->path));
    if (saved_world != world_size || world_size <= 0 || rank < 0 || rank >= world_size)
        return DL_OK;
    int *lengths = malloc((size_t)world_size * sizeof(int));
    DL_REQUIRE(lengths != NULL, DL_ERR_NOMEM, "cannot allocate cursor lengths");
    size_t dims[1] = {(size_t)world_size};
    dl_status s = dl_ckpt_read_checked(f, "/data/cursor_lengths", DL_CKPT_I32, 1, dims, lengths);
    size_t total = 0, offset = 0;
    for (int r = 0; s == DL_OK && r < world_size; r++) {
        if (lengths[r] < 0) {
            s = DL_FAIL(DL_ERR_FORMAT, "%s: negative cursor length for rank %d", f->path, r);
            break;
        }
        if (r < rank)
            offset += (size_t)lengths[r];
        total += (size_t)lengths[r];
    }
    uint8_t *all = s == DL_OK ? malloc(total ? total : 1) : NULL;
    if (s == DL_OK && !all)
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu cursor bytes", total);
    dims[0] = total;
    if (s == DL_OK)
        s = dl_ckpt_read_checked(f, "/data/cursors", DL_CKPT_U8, 1, dims, all);
    if (s == DL_OK) {
        *cursor_len = (size_t)lengths[rank];
        *cursor = malloc(*cursor_len ? *cursor_len : 1);
        if (!*cursor)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate a cursor");
        else
            memcpy(*cursor, all + offset, *cursor_len);
    }
    free(all);
    free(lengths);
    return s;
}

/* Opens `path`, checks its meta and reads what this rank reads whole (load_from); the file stays open in *out (for
 * the rounds of the split datasets, if any) unless this fails. */
static dl_status open_and_load(const char *path, const dl_ckpt_tensors *t, const dl_shard_layout *l, int rank,
                               int world_size, uint8_t **cursor, size_t *cursor_len, split_load *splits,
                               dl_ckpt_file **out) {
    dl_ckpt_file *f;
    DL_CHECK(dl_ckpt_open(&f, path));
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    dl_status s = dl_ckpt_read_meta_from(f->file, path, &meta);
    free(meta.config_yaml);
    if (s == DL_OK)
        s = load_from(f, t, l, rank, world_size, cursor, cursor_len, splits);
    if (s != DL_OK) {
        dl_ckpt_close(f);
        return s;
    }
    *out = f;
    return DL_OK;
}

dl_status dl_ckpt_load(const char *path, const dl_ckpt_tensors *t, int rank, int world_size, uint8_t **cursor,
                       size_t *cursor_len) {
    DL_REQUIRE(path && t && t->params && t->params_data && cursor && cursor_len, DL_ERR_INVALID,
               "dl_ckpt_load: NULL argument");
    DL_REQUIRE(t->num_states == 0 || (t->state_names && t->states_data), DL_ERR_INVALID,
               "dl_ckpt_load: %d states without buffers", t->num_states);
    *cursor = NULL;
    *cursor_len = 0;
    dl_ckpt_file *f = NULL;
    dl_status s = open_and_load(path, t, NULL, rank, world_size, cursor, cursor_len, NULL, &f);
    dl_ckpt_close(f);
    if (s != DL_OK) {
        free(*cursor);
        *cursor = NULL;
        *cursor_len = 0;
    }
    return s;
}

/* This rank's own part of a collective load: the meta, the unsplit tensors, the cursor, and the split datasets
 * found and checked (splits). The file stays open in *out for the rounds. */
static dl_status load_local(const char *path, const dl_ckpt_tensors *t, const dl_shard_layout *l, int rank,
                            int world_size, uint8_t **cursor, size_t *cursor_len, split_load *splits,
                            dl_ckpt_file **out) {
    DL_REQUIRE(t && t->params && t->params_data && cursor && cursor_len, DL_ERR_INVALID,
               "dl_ckpt_load_collective: NULL argument");
    DL_REQUIRE(t->num_states == 0 || (t->state_names && t->states_data), DL_ERR_INVALID,
               "dl_ckpt_load_collective: %d states without buffers", t->num_states);
    DL_CHECK(dl_ckpt_check_layout(t, l));
    return open_and_load(path, t, l, rank, world_size, cursor, cursor_len, splits, out);
}

/* Collective: every split dataset in rounds, each rank reading its slabs and receiving its rows; read and layout
 * failures go to *local. */
static dl_status load_splits(dl_world *w, dl_ckpt_file *f, const dl_ckpt_tensors *t, const dl_shard_layout *l,
                             size_t slab_bytes, split_load *splits, size_t n, dl_status *local) {
    dl_ckpt_slab_route route;
    DL_CHECK(dl_ckpt_slab_route_init(&route, w->size));
    dl_status s = DL_OK;
    for (size_t j = 0; j < n && s == DL_OK; j++) {
        const dl_tensor *v = dl_tensor_table_at(t->params, splits[j].tensor);
        dl_ckpt_plan one = {0};
        dl_ckpt_planned *d = NULL;
        s = dl_ckpt_plan_add(&one, splits[j].name, v->ndim, v->shape, DL_CKPT_F32, NULL, 1, &d);
        if (s == DL_OK) {
            dl_ckpt_planned_set_split(d, l, splits[j].tensor, splits[j].params);
            hid_t dset = H5Dopen2(f->file, splits[j].name, H5P_DEFAULT);
            s = dl_ckpt_read_split(w, dset, d, slab_bytes, splits[j].out, &route, &splits[j].raw, local, f->path);
            if (dset >= 0)
                H5Dclose(dset);
        }
        dl_ckpt_plan_free(&one);
    }
    dl_ckpt_slab_route_free(&route);
    return s;
}

dl_status dl_ckpt_load_collective(dl_world *w, const char *path, const dl_ckpt_tensors *t,
                                  const dl_ckpt_options *options, uint8_t **cursor, size_t *cursor_len) {
    DL_REQUIRE(w && path && cursor && cursor_len, DL_ERR_INVALID, "dl_ckpt_load_collective: NULL argument");
    const dl_shard_layout *layout = options ? options->layout : NULL;
    const size_t slab_bytes = options ? options->slab_bytes : 0;
    dl_ckpt_quiet_hdf5();
    *cursor = NULL;
    *cursor_len = 0;
    /* Each rank reads what it reads whole; then, when all did, the split datasets in rounds; then all exchange
     * one record: whether they failed, and their share of each split dataset's CRC register (the XOR of the
     * shares is the register of the whole dataset). */
    size_t n = t && t->params ? split_datasets(t, layout) : 0;
    split_load *splits = calloc(n + 1, sizeof *splits);
    uint32_t *mine = calloc(n + 1, sizeof *mine), *all = calloc((n + 1) * (size_t)w->size, sizeof *all);
    dl_ckpt_file *f = NULL;
    dl_status local = splits && mine && all ? DL_OK : DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu CRC records", n);
    if (local == DL_OK)
        local = load_local(path, t, layout, w->rank, w->size, cursor, cursor_len, splits, &f);
    dl_status s = dl_ckpt_agree(w, local, "checkpoint load");
    if (s == DL_OK && n > 0)
        s = load_splits(w, f, t, layout, slab_bytes, splits, n, &local);
    dl_ckpt_close(f);
    if (s == DL_OK) {
        mine[0] = local != DL_OK;
        for (size_t j = 0; j < n; j++)
            mine[j + 1] = splits[j].raw;
        s = dl_ckpt_allgather_bytes(w, mine, (n + 1) * sizeof *mine, all, "checkpoint load CRCs");
    }
    if (s == DL_OK && local != DL_OK)
        s = local;
    for (int r = 0; s == DL_OK && r < w->size; r++)
        if (all[(size_t)r * (n + 1)])
            s = DL_FAIL(DL_ERR_FORMAT, "another rank failed to load %s (see its message)", path);
    for (size_t j = 0; s == DL_OK && j < n; j++) {
        uint32_t x = 0;
        for (int r = 0; r < w->size; r++)
            x ^= all[(size_t)r * (n + 1) + j + 1];
        const dl_tensor *v = dl_tensor_table_at(t->params, splits[j].tensor);
        uint32_t computed = dl_ckpt_raw_finish(x, v->numel * sizeof(float));
        if (computed != splits[j].stored)
            s = dl_ckpt_crc_mismatch(path, splits[j].name, splits[j].stored, computed);
    }
    free(splits);
    free(mine);
    free(all);
    if (s != DL_OK) {
        free(*cursor);
        *cursor = NULL;
        *cursor_len = 0;
    }
    return s;
}
