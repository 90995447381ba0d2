/* exchange.c — bucketed rank-order reduce-scatter / all-reduce on point-to-point messages (see exchange.h).
 *
 * Each bucket is a small state machine: idle → reducing (receives of the other ranks' copies of my chunk and sends
 * of my copies of theirs are posted) → gathering (my reduced chunk goes to everyone, theirs come into the buffer)
 * → done. The all-gather receives land in the buffer regions the reduce-scatter sent from, so they are posted only
 * after every message of the first phase completed (MPI forbids a receive into a buffer a pending send reads). */
#include "comm/exchange.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { STATE_IDLE, STATE_REDUCING, STATE_GATHERING, STATE_DONE };

/* MPI guarantees tags up to 32767; two per bucket. */
enum { MAX_BUCKETS = 16383, CUT_ALIGN = 16 };

typedef struct bucket {
    size_t begin, end;
    size_t *cuts;          /* [W + 1]: rank r reduces [cuts[r], cuts[r+1]) */
    float *staging;        /* (W - 1) slots of my chunk's length: the other ranks' copies, in rank order */
    MPI_Request *requests; /* [2 (W - 1)]: receives, then sends */
    int state;
} bucket;

struct dl_exchange {
    dl_world *world;
    MPI_Comm comm;
    float *buffer;
    int W, me;
    int gather;
    int num_buckets;
    int started;
    bucket *buckets;
    size_t *cuts;
    float *staging;
    MPI_Request *requests;
    const float **sources; /* [W]: scratch for the sum */
};

int dl_exchange_max_buckets(void) { return MAX_BUCKETS; }

size_t dl_exchange_even_cut(size_t begin, size_t end, int world, int r) {
    if (world <= 0 || r <= 0)
        return begin;
    if (r >= world)
        return end;
    size_t len = end - begin, w = (size_t)world, k = (size_t)r;
    size_t cut = begin + (len / w) * k + (len % w) * k / w; /* floor(len·r/W) without overflow */
    cut -= cut % CUT_ALIGN;
    return cut < begin ? begin : cut;
}

void dl_sum_in_order(float *out, const float *const *src, int n_src, size_t n) {
    if (n_src <= 0 || n == 0)
        return;
    if (n_src == 1) {
        if (out != src[0])
            memmove(out, src[0], n * sizeof *out);
        return;
    }
    if (n_src == 2) {
        const float *a = src[0], *b = src[1];
        for (size_t i = 0; i < n; i++)
            out[i] = a[i] + b[i];
        return;
    }
    /* Blocks small enough for L1: every source of a block is read before the block of out is written, so out may
     * alias any source. */
    enum { BLOCK = 512 };
    float acc[BLOCK];
    for (size_t base = 0; base < n; base += BLOCK) {
        size_t m = n - base < BLOCK ? n - base : BLOCK;
        const float *s0 = src[0] + base, *s1 = src[1] + base;
        for (size_t i = 0; i < m; i++)
            acc[i] = s0[i] + s1[i];
        for (int k = 2; k < n_src; k++) {
            const float *sk = src[k] + base;
            for (size_t i = 0; i < m; i++)
                acc[i] += sk[i];
        }
        memcpy(out + base, acc, m * sizeof *out);
    }
}

static dl_status check_layout(const dl_world *world, const dl_exchange_layout *l) {
    DL_REQUIRE(l->num_buckets >= 1 && l->num_buckets <= MAX_BUCKETS, DL_ERR_INVALID,
               "gradient exchange: %d buckets, want 1..%d (raise comm.bucket_mb)", l->num_buckets, MAX_BUCKETS);
    DL_REQUIRE(l->bucket_bounds != NULL, DL_ERR_INVALID, "gradient exchange: NULL bucket bounds");
    DL_REQUIRE(l->bucket_bounds[0] == 0 && l->bucket_bounds[l->num_buckets] == l->count, DL_ERR_INVALID,
               "gradient exchange: buckets cover [%zu, %zu), the buffer is [0, %zu)", l->bucket_bounds[0],
               l->bucket_bounds[l->num_buckets], l->count);
    for (int b = 0; b < l->num_buckets; b++) {
        size_t lo = l->bucket_bounds[b], hi = l->bucket_bounds[b + 1];
        DL_REQUIRE(lo <= hi, DL_ERR_INVALID, "gradient exchange: bucket %d ends (%zu) before it starts (%zu)", b, hi,
                   lo);
        DL_REQUIRE(hi - lo <= (size_t)INT_MAX, DL_ERR_INVALID,
                   "gradient exchange: bucket %d holds %zu floats, more than one MPI message can (lower "
                   "comm.bucket_mb)", b, hi - lo);
    }
    if (l->slice_bounds) {
        DL_REQUIRE(l->slice_bounds[0] == 0 && l->slice_bounds[world->size] == l->count, DL_ERR_INVALID,
                   "gradient exchange: slices cover [%zu, %zu), the buffer is [0, %zu)", l->slice_bounds[0],
                   l->slice_bounds[world->size], l->count);
        for (int r = 0; r < world->size; r++)
            DL_REQUIRE(l->slice_bounds[r] <= l->slice_bounds[r + 1], DL_ERR_INVALID,
                       "gradient exchange: slice of rank %d ends before it starts", r);
    }
    return DL_OK;
}

static size_t clamp(size_t v, size_t lo, size_t hi) { return v < lo ? lo : v > hi ? hi : v; }

dl_status dl_exchange_create(dl_exchange **out, dl_world *world, float *buffer, const dl_exchange_layout *layout) {
    DL_REQUIRE(out != NULL && world != NULL && world->comm != MPI_COMM_NULL && layout != NULL, DL_ERR_INVALID,
               "dl_exchange_create: NULL argument or unstarted world");
    DL_REQUIRE(buffer != NULL || layout->count == 0, DL_ERR_INVALID, "dl_exchange_create: NULL buffer");
    *out = NULL;
    DL_CHECK(check_layout(world, layout));
    int W = world->size, me = world->rank, nb = layout->num_buckets;
    dl_exchange *x = calloc(1, sizeof *x);
    DL_REQUIRE(x != NULL, DL_ERR_NOMEM, "cannot allocate the gradient exchange");
    x->world = world;
    x->comm = MPI_COMM_NULL;
    x->buffer = buffer;
    x->W = W;
    x->me = me;
    x->gather = layout->gather;
    x->num_buckets = nb;
    x->buckets = calloc((size_t)nb, sizeof *x->buckets);
    x->cuts = calloc((size_t)nb * (size_t)(W + 1), sizeof *x->cuts);
    x->requests = malloc((size_t)nb * (size_t)(2 * W) * sizeof *x->requests);
    x->sources = calloc((size_t)W, sizeof *x->sources);
    if (!x->buckets || !x->cuts || !x->requests || !x->sources) {
        dl_exchange_destroy(x);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the gradient exchange's tables (%d buckets, %d ranks)", nb, W);
    }
    size_t staging = 0;
    for (int b = 0; b < nb; b++) {
        bucket *k = &x->buckets[b];
        k->begin = layout->bucket_bounds[b];
        k->end = layout->bucket_bounds[b + 1];
        k->cuts = x->cuts + (size_t)b * (size_t)(W + 1);
        k->requests = x->requests + (size_t)b * (size_t)(2 * W);
        for (int i = 0; i < 2 * W; i++)
            k->requests[i] = MPI_REQUEST_NULL;
        for (int r = 0; r <= W; r++)
            k->cuts[r] = layout->slice_bounds ? clamp(layout->slice_bounds[r], k->begin, k->end)
                                              : dl_exchange_even_cut(k->begin, k->end, W, r);
        staging += (size_t)(W - 1) * (k->cuts[me + 1] - k->cuts[me]);
    }
    if (staging > 0) {
        x->staging = malloc(staging * sizeof(float));
        if (!x->staging) {
            dl_exchange_destroy(x);
            return DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu MiB of gradient staging", staging * 4 >> 20);
        }
    }
    size_t offset = 0;
    for (int b = 0; b < nb; b++) {
        bucket *k = &x->buckets[b];
        k->staging = x->staging ? x->staging + offset : NULL;
        offset += (size_t)(W - 1) * (k->cuts[me + 1] - k->cuts[me]);
    }
    int code = MPI_Comm_dup(world->comm, &x->comm);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_set_errhandler(x->comm, MPI_ERRORS_RETURN);
    if (code != MPI_SUCCESS) {
        dl_status s = dl_comm_mpi_failure(code, "MPI_Comm_dup", "creating the gradient exchange");
        dl_exchange_destroy(x);
        return s;
    }
    *out = x;
    return DL_OK;
}

void dl_exchange_destroy(dl_exchange *x) {
    if (!x)
        return;
    if (x->requests && x->buckets) {
        int W = x->W;
        for (int b = 0; b < x->num_buckets; b++)
            for (int i = 0; i < 2 * (W - 1); i++) {
                MPI_Request *r = &x->buckets[b].requests[i];
                if (*r == MPI_REQUEST_NULL)
                    continue;
                if (i < W - 1) /* a receive nobody will match any more */
                    MPI_Cancel(r);
                MPI_Request_free(r);
            }
    }
    if (x->comm != MPI_COMM_NULL)
        MPI_Comm_free(&x->comm);
    free(x->buckets);
    free(x->cuts);
    free(x->requests);
    free(x->sources);
    free(x->staging);
    free(x);
}

/* Slot of rank r's copy in a bucket's staging area. */
static int slot_of(const dl_exchange *x, int r) { return r < x->me ? r : r - 1; }

static dl_status post_reduce(dl_exchange *x, int b) {
    bucket *k = &x->buckets[b];
    size_t mine = k->cuts[x->me + 1] - k->cuts[x->me];
    int tag = 2 * b;
    for (int p = 0; p < x->W; p++) {
        if (p == x->me)
            continue;
        int s = slot_of(x, p);
        size_t theirs = k->cuts[p + 1] - k->cuts[p];
        if (mine > 0) {
            int code = MPI_Irecv(k->staging + (size_t)s * mine, (int)mine, MPI_FLOAT, p, tag, x->comm,
                                 &k->requests[s]);
            if (code != MPI_SUCCESS)
                return dl_comm_mpi_failure(code, "MPI_Irecv", "gradient reduce-scatter");
        }
        if (theirs > 0) {
            int code = MPI_Isend(x->buffer + k->cuts[p], (int)theirs, MPI_FLOAT, p, tag, x->comm,
                                 &k->requests[x->W - 1 + s]);
            if (code != MPI_SUCCESS)
                return dl_comm_mpi_failure(code, "MPI_Isend", "gradient reduce-scatter");
        }
    }
    return DL_OK;
}

static dl_status post_gather(dl_exchange *x, int b) {
    bucket *k = &x->buckets[b];
    size_t mine = k->cuts[x->me + 1] - k->cuts[x->me];
    int tag = 2 * b + 1;
    for (int p = 0; p < x->W; p++) {
        if (p == x->me)
            continue;
        int s = slot_of(x, p);
        size_t theirs = k->cuts[p + 1] - k->cuts[p];
        if (theirs > 0) {
            int code = MPI_Irecv(x->buffer + k->cuts[p], (int)theirs, MPI_FLOAT, p, tag, x->comm, &k->requests[s]);
            if (code != MPI_SUCCESS)
                return dl_comm_mpi_failure(code, "MPI_Irecv", "gradient all-gather");
        }
        if (mine > 0) {
            int code = MPI_Isend(x->buffer + k->cuts[x->me], (int)mine, MPI_FLOAT, p, tag, x->comm,
                                 &k->requests[x->W - 1 + s]);
            if (code != MPI_SUCCESS)
                return dl_comm_mpi_failure(code, "MPI_Isend", "gradient all-gather");
        }
    }
    return DL_OK;
}

/* The reduce-scatter of bucket b has all its messages: add the copies to my chunk in rank order. */
static void reduce_chunk(dl_exchange *x, int b) {
    bucket *k = &x->buckets[b];
    size_t lo = k->cuts[x->me], mine = k->cuts[x->me + 1] - lo;
    if (mine == 0)
        return;
    for (int r = 0; r < x->W; r++)
        x->sources[r] = r == x->me ? x->buffer + lo : k->staging + (size_t)slot_of(x, r) * mine;
    dl_sum_in_order(x->buffer + lo, x->sources, x->W, mine);
}

/* Moves bucket b's state machine as far as its completed messages allow. */
static dl_status advance(dl_exchange *x, int b) {
    bucket *k = &x->buckets[b];
    int n = 2 * (x->W - 1);
    while (k->state == STATE_REDUCING || k->state == STATE_GATHERING) {
        int done = 1;
        if (n > 0) {
            int code = MPI_Testall(n, k->requests, &done, MPI_STATUSES_IGNORE);
            if (code != MPI_SUCCESS)
                return dl_comm_mpi_failure(code, "MPI_Testall",
                                           k->state == STATE_REDUCING ? "gradient reduce-scatter"
                                                                      : "gradient all-gather");
        }
        if (!done)
            return DL_OK;
        if (k->state == STATE_REDUCING) {
            reduce_chunk(x, b);
            if (x->gather && x->W > 1) {
                k->state = STATE_GATHERING;
                DL_CHECK(post_gather(x, b));
            } else {
                k->state = STATE_DONE;
            }
        } else {
            k->state = STATE_DONE;
        }
    }
    return DL_OK;
}

dl_status dl_exchange_start(dl_exchange *x, int b) {
    DL_REQUIRE(x != NULL, DL_ERR_INVALID, "dl_exchange_start: NULL exchange");
    DL_REQUIRE(b == x->started && b < x->num_buckets, DL_ERR_INVALID,
               "dl_exchange_start: bucket %d started out of order (next is %d of %d)", b, x->started, x->num_buckets);
    bucket *k = &x->buckets[b];
    x->started++;
    k->state = STATE_REDUCING;
    if (x->W > 1)
        DL_CHECK(post_reduce(x, b));
    return advance(x, b);
}

dl_status dl_exchange_progress(dl_exchange *x, int *in_flight) {
    DL_REQUIRE(x != NULL, DL_ERR_INVALID, "dl_exchange_progress: NULL exchange");
    int pending = 0;
    for (int b = 0; b < x->started; b++) {
        if (x->buckets[b].state == STATE_DONE)
            continue;
        DL_CHECK(advance(x, b));
        pending += x->buckets[b].state != STATE_DONE;
    }
    if (in_flight)
        *in_flight = pending;
    return DL_OK;
}

dl_status dl_exchange_finish(dl_exchange *x, const char *what) {
    DL_REQUIRE(x != NULL, DL_ERR_INVALID, "dl_exchange_finish: NULL exchange");
    while (x->started < x->num_buckets)
        DL_CHECK(dl_exchange_start(x, x->started));
    dl_comm_watch watch;
    dl_comm_watch_start(x->world, &watch, what ? what : "gradient exchange");
    for (;;) {
        int pending = 0;
        DL_CHECK(dl_exchange_progress(x, &pending));
        if (pending == 0)
            break;
        DL_CHECK(dl_comm_watch_idle(x->world, &watch));
    }
    for (int b = 0; b < x->num_buckets; b++)
        x->buckets[b].state = STATE_IDLE;
    x->started = 0;
    return DL_OK;
}

int dl_exchange_started(const dl_exchange *x) { return x ? x->started : 0; }

void dl_exchange_owned(const dl_exchange *x, int b, size_t *begin, size_t *end) {
    size_t lo = 0, hi = 0;
    if (x && b >= 0 && b < x->num_buckets) {
        lo = x->buckets[b].cuts[x->me];
        hi = x->buckets[b].cuts[x->me + 1];
    }
    if (begin)
        *begin = lo;
    if (end)
        *end = hi;
}
