/* grad_sync.c — bucket planning, the overlap hook, ZeRO-1 slices and the optimizer step (see grad_sync.h).
 *
 * Three transports, chosen at creation:
 *   host   the CPU backend: comm/exchange.c on the gradient buffer itself, buckets overlapped with backward;
 *   nccl   a CUDA backend: comm/nccl_exchange.cu on the device buffer, buckets overlapped with backward;
 *   staged a CUDA backend whose NCCL communicator could not start (two ranks on one GPU): the gradients are copied
 *          to a host mirror in `reduce`, exchanged there and copied back. Correct, not overlapped.
 * One rank needs none of them. */
#include "train/grad_sync.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "comm/exchange.h"
#include "comm/nccl_exchange.h"
#include "core/log.h"
#include "core/timer.h"
#include "models/gpt.h"
#include "comm/tied_rows.h"

enum { PATH_NONE, PATH_HOST, PATH_NCCL, PATH_STAGED };

struct dl_grad_sync {
    dl_world *world;
    const dl_backend *be;
    dl_model *model;
    size_t numel;
    int zero;                 /* ZeRO-1 with more than one rank */
    int path;
    dl_optimizer optimizer;
    int optimizer_ready;
    /* buckets */
    int num_buckets;
    size_t *bounds;           /* [num_buckets + 1] */
    int *ready;               /* [num_buckets]: the stage after which the bucket may leave */
    int layered;              /* the model reports its layers: hooks may start buckets */
    size_t *slices;           /* [W + 1]: ZeRO-1 slices of the parameter buffer */
    int *slice_counts;        /* [W]: the same as int counts, for the all-gather */
    /* transports */
    dl_exchange *exchange;    /* host and staged */
    float *host_mirror;       /* staged: host copy of gradients (and of parameters for the all-gather) */
#ifdef DEALER_HAVE_CUDA
    dl_nccl_exchange *nccl;
#endif
    dl_backward_hooks hooks; /* this sync's three hooks, for the model's backward */
    /* The tied token embedding (gpt), first in the head's range: found by decide_split. */
    size_t table_offset, table_numel; /* its gradient in the buffer; numel 0: the model has none */
    int table_rows, table_width, head_layer;
    int split;                /* it leaves with the head, its input-side rows exchanged apart through `tied` */
    dl_tied_rows *tied;       /* when split (and several ranks): the rows' exchange */
    /* this step */
    int final;                /* the micro-batch running is the step's last */
    int head_done;            /* its backward has passed the head (layer head_layer) */
    int overlap;              /* the final micro-batch is running: hooks start buckets */
    int next;                 /* buckets started this step */
    int overlapped;           /* of which during backward */
    double first_start;
    dl_grad_sync_stats stats;
};

/* ---- bucket plan ------------------------------------------------------------------------------------------------ */

/* Stages: the points of backward after which buckets may leave, in half-layers so that a block's first part (gpt:
 * its MLP half) can leave half a block early: 2·layer once layer `layer` is done (2·n_layer: the head), 2·layer + 1
 * once its first part is, STAGE_END after the embeddings. Backward passes them in decreasing order. */
enum { STAGE_END = -2 };
static int stage_of_layer(int layer) { return 2 * layer; }
static int stage_of_part(int layer) { return 2 * layer + 1; }

typedef struct segment {
    size_t begin, end; /* elements */
    int stage;
} segment;

static int by_begin(const void *a, const void *b) {
    const segment *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* The model's layers (and the blocks' first parts) as element ranges with their stages, sorted, gaps filled with
 * STAGE_END. Only gpt reports layers; for other models one segment of STAGE_END covers everything and
 * *layered = 0. */
static dl_status layer_segments(dl_grad_sync *s, segment **out, int *count, int *layered) {
    *layered = 0;
    int L = -1;
    if (s->model->kind && strcmp(s->model->kind, "gpt") == 0 && s->model->impl) {
        const dl_gpt_config *gc = dl_gpt_get_config(s->model->impl);
        if (gc)
            L = gc->n_layer;
    }
    int n_layers = L >= 0 ? L + 2 : 0; /* -1 … L */
    segment *seg = calloc((size_t)(2 * n_layers + 2), sizeof *seg);
    DL_REQUIRE(seg != NULL, DL_ERR_NOMEM, "cannot allocate the bucket plan");
    int n = 0;
    for (int layer = -1; layer <= L && n_layers > 0; layer++) {
        dl_byte_range r = dl_gpt_layer_param_range(s->model->impl, layer);
        dl_byte_range part = dl_gpt_layer_part_range(s->model->impl, layer);
        int stage = layer < 0 ? STAGE_END : stage_of_layer(layer);
        if (layer == L && s->table_numel > 0 && !s->split) { /* the tied table, first, completes at the end */
            seg[n++] = (segment){s->table_offset, s->table_offset + s->table_numel, STAGE_END};
            r.begin = (s->table_offset + s->table_numel) * sizeof(float);
        }
        if (part.end > part.begin && part.begin == r.begin && part.end <= r.end) {
            seg[n++] = (segment){part.begin / sizeof(float), part.end / sizeof(float), stage_of_part(layer)};
            r.begin = part.end;
        }
        if (r.end > r.begin)
            seg[n++] = (segment){r.begin / sizeof(float), r.end / sizeof(float), stage};
    }
    qsort(seg, (size_t)n, sizeof *seg, by_begin);
    /* Keep the ranges only if they tile part of the buffer without overlapping; fill the gaps. */
    int ok = n > 0;
    for (int i = 0; i < n && ok; i++)
        ok = seg[i].end <= s->numel && (i == 0 || seg[i].begin >= seg[i - 1].end);
    int m = 0;
    segment *tiled = calloc((size_t)(2 * n + 2), sizeof *tiled);
    if (!tiled) {
        free(seg);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the bucket plan");
    }
    size_t pos = 0;
    for (int i = 0; i < n && ok; i++) {
        if (seg[i].begin > pos)
            tiled[m++] = (segment){pos, seg[i].begin, STAGE_END};
        tiled[m++] = seg[i];
        pos = seg[i].end;
    }
    if (!ok) {
        m = 0;
        pos = 0;
    }
    if (pos < s->numel || m == 0)
        tiled[m++] = (segment){pos, s->numel, STAGE_END};
    free(seg);
    *out = tiled;
    *count = m;
    *layered = ok;
    return DL_OK;
}

/* Cuts the buffer into buckets of about `target` elements: a bucket closes at the first segment (layer) end where
 * it reached `target`, or at the end of a block's first part once it reached half of it: a bucket that ends with
 * an MLP half leaves half a block before one that ends with the block (the layout runs MLP, attention, next
 * block's MLP, …, so [attention of block k+1, MLP of block k] is ready half-way through block k). A segment that
 * would make the bucket more than twice `target` closes the open bucket at its start and is cut into buckets of `target` (the last piece up to twice that). Returns the count, or -1 when more
 * than `capacity`. */
static int cut_buckets(const segment *seg, int n_seg, size_t numel, size_t target, size_t *bounds, int *ready,
                       int capacity) {
    int nb = 0;
    size_t cur = 0;
    int cur_ready = INT_MAX;
#define CLOSE(at)                                      \
    do {                                               \
        if (nb >= capacity)                            \
            return -1;                                 \
        bounds[nb] = cur;                              \
        ready[nb] = cur_ready == INT_MAX ? STAGE_END : cur_ready; \
        nb++;                                          \
        cur = (at);                                    \
        cur_ready = INT_MAX;                           \
    } while (0)
    for (int i = 0; i < n_seg; i++) {
        size_t pos = seg[i].begin;
        while (pos < seg[i].end) {
            if (seg[i].end - cur <= 2 * target) { /* the rest of the segment fits */
                cur_ready = seg[i].stage < cur_ready ? seg[i].stage : cur_ready;
                pos = seg[i].end;
                if (pos - cur >= target || (seg[i].stage > 0 && seg[i].stage % 2 == 1 && pos - cur >= target / 2))
                    CLOSE(pos);
            } else if (pos > cur) { /* a big segment: close the open bucket at the layer boundary first */
                CLOSE(pos);
            } else { /* cut a bucket out of the big segment */
                cur_ready = seg[i].stage < cur_ready ? seg[i].stage : cur_ready;
                pos = cur + target;
                CLOSE(pos);
            }
        }
    }
    if (cur < numel || nb == 0)
        CLOSE(numel);
#undef CLOSE
    bounds[nb] = numel;
    return nb;
}

static dl_status plan_buckets(dl_grad_sync *s, double bucket_mb) {
    segment *seg = NULL;
    int n_seg = 0;
    DL_CHECK(layer_segments(s, &seg, &n_seg, &s->layered));
    double target_d = bucket_mb * 1048576.0 / sizeof(float);
    size_t target = target_d < 1 ? 1 : target_d > (double)(INT_MAX / 4) ? (size_t)(INT_MAX / 4) : (size_t)target_d;
    /* Never more buckets than message tags: very small buckets of a big model are made larger. */
    size_t max_buckets = (size_t)dl_exchange_max_buckets() / 2;
    if (s->numel / target > max_buckets)
        target = s->numel / max_buckets + 1;
    int capacity = (int)(s->numel / target) + n_seg + 2;
    s->bounds = malloc((size_t)(capacity + 1) * sizeof *s->bounds);
    s->ready = malloc((size_t)capacity * sizeof *s->ready);
    if (!s->bounds || !s->ready) {
        free(seg);
        return DL_FAIL(DL_ERR_NOMEM, "cannot allocate the bucket plan");
    }
    s->num_buckets = cut_buckets(seg, n_seg, s->numel, target, s->bounds, s->ready, capacity);
    free(seg);
    DL_REQUIRE(s->num_buckets > 0 && s->num_buckets <= dl_exchange_max_buckets(), DL_ERR_RUNTIME,
               "gradient bucket plan: %d buckets", s->num_buckets);
    return DL_OK;
}

/* ---- creation ------------------------------------------------------------------------------------------------- */

/* Finds a gpt's tied token table (first in the head's layer range) and decides whether it leaves with the head,
 * its input-side rows exchanged apart (tied_rows.h), or as one tensor after the embeddings. Apart pays when the
 * rows a step gathers, at most W × max_tokens, cost less than the table's own all-reduce (2·(W-1)/W of its rows):
 * the gathered rows arrive after backward either way. Runs before the bucket plan, which puts the table in the
 * head's stage or at the end accordingly. */
static void decide_split(dl_grad_sync *s) {
    s->split = 0;
    s->table_numel = 0;
    if (!s->model->kind || strcmp(s->model->kind, "gpt") != 0 || !s->model->impl)
        return;
    const dl_gpt_config *gc = dl_gpt_get_config(s->model->impl);
    const dl_tensor *wte = dl_tensor_table_find(s->model->params, "wte");
    if (!gc || !wte || wte->ndim != 2)
        return;
    dl_byte_range head = dl_gpt_layer_param_range(s->model->impl, gc->n_layer);
    size_t lo = wte->offset * sizeof(float), hi = lo + wte->numel * sizeof(float);
    if (lo != head.begin || hi > head.end)
        return;
    s->table_offset = wte->offset;
    s->table_numel = wte->numel;
    s->table_rows = (int)wte->shape[0];
    s->table_width = (int)wte->shape[1];
    s->head_layer = gc->n_layer;
    double gathered = (double)s->world->size * dl_gpt_max_tokens(s->model->impl);
    s->split = s->world->size > 1 && !s->model->self_updating && gathered <= 2.0 * (double)s->table_rows;
}

static dl_status plan_slices(dl_grad_sync *s) {
    int W = s->world->size;
    s->slices = calloc((size_t)W + 1, sizeof *s->slices);
    s->slice_counts = calloc((size_t)W, sizeof *s->slice_counts);
    DL_REQUIRE(s->slices && s->slice_counts, DL_ERR_NOMEM, "cannot allocate the ZeRO slices");
    for (int r = 0; r <= W; r++)
        s->slices[r] = dl_exchange_even_cut(0, s->numel, W, r);
    DL_REQUIRE(s->numel <= (size_t)INT_MAX, DL_ERR_CONFIG,
               "comm.zero 1: %zu parameters exceed what one MPI all-gather can move (%d)", s->numel, INT_MAX);
    for (int r = 0; r < W; r++)
        s->slice_counts[r] = (int)(s->slices[r + 1] - s->slices[r]);
    return DL_OK;
}

static dl_status create_transport(dl_grad_sync *s) {
    dl_exchange_layout layout = {s->numel, s->num_buckets, s->bounds, s->zero ? s->slices : NULL, !s->zero};
    if (s->be->kind == DL_DEVICE_CPU) {
        s->path = PATH_HOST;
        return dl_exchange_create(&s->exchange, s->world, s->model->grad_data, &layout);
    }
#ifdef DEALER_HAVE_CUDA
    dl_status st = dl_nccl_exchange_create(&s->nccl, s->world, s->be, s->model->grad_data, &layout);
    /* Every rank must take the same path: agree on whether NCCL started everywhere. */
    int64_t failed = st != DL_OK;
    char why[512];
    snprintf(why, sizeof why, "%s", st != DL_OK ? dl_error_message() : "");
    DL_CHECK(dl_comm_allreduce_max_i64(s->world, &failed, 1, "NCCL start-up"));
    if (!failed) {
        s->path = PATH_NCCL;
        return DL_OK;
    }
    dl_nccl_exchange_destroy(s->nccl);
    s->nccl = NULL;
    if (s->world->rank == 0)
        DL_WARN("gradients go through host memory, not overlapped: NCCL did not start (%s)",
                why[0] ? why : "on another rank");
#endif
    s->path = PATH_STAGED;
    s->host_mirror = malloc(s->numel * sizeof(float));
    DL_REQUIRE(s->host_mirror != NULL, DL_ERR_NOMEM, "cannot allocate the %zu MiB host gradient mirror",
               s->numel * sizeof(float) >> 20);
    return dl_exchange_create(&s->exchange, s->world, s->host_mirror, &layout);
}

dl_status dl_grad_sync_create(dl_grad_sync **out, dl_world *world, const dl_backend *be, dl_model *model,
                              const dl_config *config, const dl_optimizer_settings *optimizer) {
    DL_REQUIRE(out && world && be && model && config && optimizer, DL_ERR_INVALID, "dl_grad_sync_create: NULL argument");
    DL_REQUIRE(config->comm.bucket_mb > 0, DL_ERR_CONFIG, "comm.bucket_mb must be positive (got %g)",
               config->comm.bucket_mb);
    *out = NULL;
    dl_grad_sync *s = calloc(1, sizeof *s);
    DL_REQUIRE(s != NULL, DL_ERR_NOMEM, "cannot allocate the gradient synchroniser");
    s->world = world;
    s->be = be;
    s->model = model;
    s->numel = dl_tensor_table_numel(model->params);
    s->zero = config->comm.zero == 1 && world->size > 1;
    s->path = PATH_NONE;
    decide_split(s);
    dl_status st = plan_buckets(s, config->comm.bucket_mb);
    if (st == DL_OK && s->zero)
        st = plan_slices(s);
    size_t begin = s->zero ? s->slices[world->rank] : 0, end = s->zero ? s->slices[world->rank + 1] : s->numel;
    /* A self-updating model (FM/FFM: sparse AdaGrad applied inside its own step, state stored with its weights)
     * has no dense gradient to move and no optimizer state here. */
    if (st == DL_OK && !model->self_updating) {
        st = dl_optimizer_create(&s->optimizer, optimizer, be, model->params, begin, end);
        s->optimizer_ready = st == DL_OK;
    }
    if (st == DL_OK && !model->self_updating && world->size > 1 && s->numel > 0)
        st = create_transport(s);
    if (st == DL_OK && s->split && s->path != PATH_NONE)
        st = dl_tied_rows_create(&s->tied, s->be, s->table_rows, s->table_width);
    s->hooks = (dl_backward_hooks){dl_grad_sync_layer_done, dl_grad_sync_part_done, dl_grad_sync_embedding_rows, s};
    if (st != DL_OK) {
        dl_grad_sync_destroy(s);
        return st;
    }
    *out = s;
    return DL_OK;
}

void dl_grad_sync_destroy(dl_grad_sync *s) {
    if (!s)
        return;
    if (s->optimizer_ready)
        dl_optimizer_destroy(&s->optimizer);
    dl_exchange_destroy(s->exchange);
#ifdef DEALER_HAVE_CUDA
    dl_nccl_exchange_destroy(s->nccl);
#endif
    dl_tied_rows_destroy(s->tied);
    free(s->host_mirror);
    free(s->bounds);
    free(s->ready);
    free(s->slices);
    free(s->slice_counts);
    free(s);
}

/* ---- a step --------------------------------------------------------------------------------------------------- */

static dl_status start_bucket(dl_grad_sync *s) {
    if (s->next == 0)
        s->first_start = dl_time_seconds();
#ifdef DEALER_HAVE_CUDA
    if (s->path == PATH_NCCL)
        return dl_nccl_exchange_start(s->nccl, s->next++);
#endif
    return dl_exchange_start(s->exchange, s->next++);
}

dl_status dl_grad_sync_begin(dl_grad_sync *s, int final_micro_batch) {
    DL_REQUIRE(s != NULL, DL_ERR_INVALID, "dl_grad_sync_begin: NULL");
    s->overlap = final_micro_batch && s->layered && (s->path == PATH_HOST || s->path == PATH_NCCL);
    s->final = final_micro_batch != 0;
    s->head_done = 0;
    return DL_OK;
}

const dl_backward_hooks *dl_grad_sync_hooks(dl_grad_sync *s) { return s ? &s->hooks : NULL; }

dl_status dl_grad_sync_embedding_rows(void *sync, float *table_grad, int table_rows, const int32_t *ids,
                                      const float *rows, int n, int width) {
    dl_grad_sync *s = sync;
    DL_REQUIRE(s && table_grad && ids && rows, DL_ERR_INVALID, "dl_grad_sync_embedding_rows: NULL argument");
    if (n <= 0)
        return DL_OK;
    int exchanged = s->tied && s->final && table_grad == s->model->grad_data + s->table_offset;
    if (!exchanged) /* nothing in flight that they could miss: add them now */
        return dl_op_embedding_backward(s->be, table_grad, NULL, rows, ids, NULL, n, width, table_rows, 0);
    DL_REQUIRE(table_rows == s->table_rows && width == s->table_width, DL_ERR_INVALID,
               "dl_grad_sync_embedding_rows: a %d × %d table, not the planned %d × %d", table_rows, width,
               s->table_rows, s->table_width);
    return dl_tied_rows_hold(s->tied, ids, rows, n);
}

/* Starts every bucket whose stage was reached, in order, then drives the messages in flight. */
static dl_status reach_stage(dl_grad_sync *s, int stage) {
    if (!s->overlap)
        return DL_OK;
    while (s->next < s->num_buckets && s->ready[s->next] >= stage) {
        DL_CHECK(start_bucket(s));
        s->overlapped++;
    }
    if (s->path == PATH_HOST && s->next > 0)
        DL_CHECK(dl_exchange_progress(s->exchange, NULL));
    return DL_OK;
}

dl_status dl_grad_sync_layer_done(void *sync, int layer) {
    dl_grad_sync *s = sync;
    DL_REQUIRE(s != NULL, DL_ERR_INVALID, "dl_grad_sync_layer_done: NULL");
    if (s->final && layer == s->head_layer)
        s->head_done = 1;
    return reach_stage(s, layer < 0 ? STAGE_END : stage_of_layer(layer));
}

dl_status dl_grad_sync_part_done(void *sync, int layer) {
    dl_grad_sync *s = sync;
    DL_REQUIRE(s != NULL && layer >= 0, DL_ERR_INVALID, "dl_grad_sync_part_done: NULL sync or layer %d", layer);
    return reach_stage(s, stage_of_part(layer));
}

/* Starts what is left and waits for every bucket. */
static dl_status finish(dl_grad_sync *s) {
    if (s->next == 0)
        s->first_start = dl_time_seconds();
    s->next = s->num_buckets;
    const char *what = s->zero ? "gradient reduce-scatter" : "gradient all-reduce";
    switch (s->path) {
    case PATH_HOST:
        return dl_exchange_finish(s->exchange, what);
    case PATH_STAGED:
        DL_CHECK(dl_mem_to_host(s->be, s->host_mirror, s->model->grad_data, s->numel * sizeof(float)));
        DL_CHECK(dl_exchange_finish(s->exchange, what));
        return dl_mem_to_device(s->be, s->model->grad_data, s->host_mirror, s->numel * sizeof(float));
#ifdef DEALER_HAVE_CUDA
    case PATH_NCCL:
        return dl_nccl_exchange_finish(s->nccl, what);
#endif
    default:
        return DL_OK;
    }
}

/* Adds the ranks' tied-embedding rows once the table's bucket has arrived (collective). */
static dl_status add_tied_rows(dl_grad_sync *s) {
    if (!s->tied || !s->final)
        return DL_OK;
    /* A backward that passed the head without handing over its rows added them to a bucket already sent. */
    int lost = s->head_done && !dl_tied_rows_held(s->tied);
    dl_status mine = lost ? DL_FAIL(DL_ERR_INVALID, "gradient exchange: the backward pass reported its layers but "
                                                    "added the token embedding's rows itself, after the table's "
                                                    "bucket had left (pass dl_grad_sync_hooks whole)")
                          : DL_OK;
    dl_status st = dl_tied_rows_exchange(s->tied, s->world, s->model->grad_data + s->table_offset, lost);
    return mine != DL_OK ? mine : st;
}

static void end_step(dl_grad_sync *s) {
    dl_tied_rows_clear(s->tied);
    s->final = 0;
    s->head_done = 0;
    s->overlap = 0;
    s->next = 0;
    s->overlapped = 0;
}

dl_status dl_grad_sync_reduce(dl_grad_sync *s, double *sumsq) {
    DL_REQUIRE(s != NULL && sumsq != NULL, DL_ERR_INVALID, "dl_grad_sync_reduce: NULL");
    memset(&s->stats, 0, sizeof s->stats);
    *sumsq = 0;
    if (s->path != PATH_NONE) {
        double entered = dl_time_seconds();
        int overlapped = s->overlapped;
        dl_status st = finish(s);
        if (st == DL_OK)
            st = add_tied_rows(s);
        end_step(s);
        DL_CHECK(st);
        double done = dl_time_seconds();
        s->stats.comm_seconds = done - s->first_start;
        s->stats.exposed_seconds = done - entered;
        s->stats.buckets = s->num_buckets;
        s->stats.buckets_overlapped = overlapped;
    }
    end_step(s);
    if (s->numel == 0)
        return DL_OK;
    if (!s->zero)
        return dl_op_sumsq(s->be, sumsq, s->model->grad_data, s->numel);
    /* ZeRO-1: only this rank's slice holds sums; the norm adds the slices' partial sums. */
    size_t lo = s->slices[s->world->rank], hi = s->slices[s->world->rank + 1];
    double part = 0;
    DL_CHECK(dl_op_sumsq(s->be, &part, s->model->grad_data + lo, hi - lo));
    DL_CHECK(dl_comm_allreduce_sum_f64(s->world, &part, 1, "gradient norm"));
    *sumsq = part;
    return DL_OK;
}

static dl_status gather_params(dl_grad_sync *s) {
    float *params = s->model->param_data;
    const char *what = "parameter all-gather";
    switch (s->path) {
    case PATH_HOST:
        return dl_comm_allgather_f32(s->world, params, s->slice_counts, what);
    case PATH_STAGED: {
        size_t lo = s->slices[s->world->rank], hi = s->slices[s->world->rank + 1];
        DL_CHECK(dl_mem_to_host(s->be, s->host_mirror + lo, params + lo, (hi - lo) * sizeof(float)));
        DL_CHECK(dl_comm_allgather_f32(s->world, s->host_mirror, s->slice_counts, what));
        return dl_mem_to_device(s->be, params, s->host_mirror, s->numel * sizeof(float));
    }
#ifdef DEALER_HAVE_CUDA
    case PATH_NCCL:
        return dl_nccl_allgather(s->nccl, params, s->slices, what);
#endif
    default:
        return DL_OK;
    }
}

dl_status dl_grad_sync_update(dl_grad_sync *s, double lr, double grad_scale) {
    DL_REQUIRE(s != NULL, DL_ERR_INVALID, "dl_grad_sync_update: NULL");
    if (s->numel == 0)
        return DL_OK;
    DL_CHECK(dl_optimizer_step(&s->optimizer, s->model->param_data, s->model->grad_data, lr, grad_scale));
    if (s->zero)
        DL_CHECK(gather_params(s));
    return DL_OK;
}

dl_status dl_grad_sync_abandon(dl_grad_sync *s) {
    DL_REQUIRE(s != NULL, DL_ERR_INVALID, "dl_grad_sync_abandon: NULL");
    /* The staged path starts nothing before `reduce`, so nothing can be in flight. */
    dl_status st = s->path == PATH_HOST || s->path == PATH_NCCL ? finish(s) : DL_OK;
    end_step(s);
    return st;
}

dl_optimizer *dl_grad_sync_optimizer(dl_grad_sync *s) { return s ? &s->optimizer : NULL; }

void dl_grad_sync_stats_get(const dl_grad_sync *s, dl_grad_sync_stats *stats) {
    if (s && stats)
        *stats = s->stats;
}

int dl_grad_sync_buckets(const dl_grad_sync *s, const size_t **bounds, const int **ready) {
    if (!s)
        return 0;
    if (bounds)
        *bounds = s->bounds;
    if (ready)
        *ready = s->ready;
    return s->num_buckets;
}
