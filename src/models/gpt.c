/* gpt.c — the transformer's forward and backward passes over the ops interface (see gpt.h for the design).
 *
 * Mixed precision (model.precision bf16, config.bf16), as llm.c and PyTorch AMP do it: every linear layer (qkv,
 * attention projection, MLP fc and projection, the LM head) multiplies bf16 operands with fp32 accumulation and
 * writes fp32 outputs and fp32 gradients; everything else (embedding, LayerNorm, attention, GELU, residuals, the
 * cross-entropy, the gradient buffer, the optimizer and its state, checkpoints) stays fp32. So gradient
 * accumulation, the all-reduce, clipping and the update are unchanged, and a bf16 run's weights are the same fp32
 * master weights an fp32 run has.
 * - Weights: every forward rounds the whole fp32 parameter buffer into one bf16 mirror of the same layout
 *   (param_bf16) before it starts, and that forward's backward uses the same copy. Converting per forward rather
 *   than "after each optimizer update" needs no hook from whoever changes the parameters (optimizer, ZeRO's
 *   all-gather, checkpoint loads, DPO's reference, tests), so a stale copy is impossible; it costs one pass of
 *   6 bytes per parameter per micro-batch (GPT-2 124M: 0.75 GB, ~0.3 ms on an H100, against ~30 ms for the 12
 *   TFLOP of a 16k-token micro-batch at 40% MFU). Rounding each weight once per use instead would redo that pass
 *   for every product, and in backward as well.
 * - Activations: a matmul's input is rounded once, in forward, into a bf16 buffer kept with the block's
 *   activations (ln1, atty, ln2, fch_gelu, lnf), which the weight gradient reads again in backward; a
 *   recomputation (gradient checkpointing) rounds the same fp32 values to the same bits. The gradient flowing into
 *   a matmul's backward (dout) is rounded into one scratch buffer just before the op.
 * Expected error against fp32: each rounding is at most 2⁻⁹ ≈ 2e-3 relative, and to first order the errors of the
 * linear layers on a path add; test_gpt holds a 2-layer model's bf16 loss and every gradient to those worst-case
 * sums and measures far less (loss 8e-5, gradients 1.5e-3 to 5.5e-3 relative in norm). */
#include "models/gpt.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/philox.h"

/* Parameter pointers of one block, in the parameter buffer or the gradient buffer. */
typedef struct block_weights {
    float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
    float *ln2_w, *ln2_b, *fc_w, *fc_b, *fcproj_w, *fcproj_b;
} block_weights;

typedef struct model_weights {
    float *wte, *wpe, *lnf_w, *lnf_b;
    block_weights *blocks; /* [n_layer] */
} model_weights;

/* Activations of one block (one "set"); a segment of K blocks uses sets 0..K-1. */
typedef struct block_acts {
    float *ln1, *ln1_mean, *ln1_rstd;
    float *qkv;                 /* after rotary embedding when rope is on */
    float *atty, *lse;
    float *x2;                  /* residual stream after attention */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;
    float *out;                 /* block output, when not a segment boundary */
    dl_bf16 *ln1_h, *atty_h, *ln2_h, *fch_gelu_h; /* bf16 matmul inputs (config.bf16 only; NULL otherwise) */
} block_acts;

struct dl_gpt {
    dl_gpt_config config;
    const dl_backend *be;
    int max_tokens, max_seqs;
    int segment;                /* K: blocks per checkpoint segment */
    int num_segments;
    dl_tensor_table params;
    size_t *layer_first, *layer_last; /* tensor indices spanning each block; [n_layer] */
    size_t *layer_part_last;          /* the last tensor of each block's MLP half (ln2.bias); [n_layer] */
    size_t head_first, head_last; /* tensor indices of wte … lnf.bias: complete after the head (layer n_layer) */
    size_t wpe_index;             /* learned positions only (not config.rope) */
    float *param_data, *grad_data;
    model_weights w, g;
    dl_arena arena;
    dl_allocator allocator;
    block_acts *sets;           /* [segment] */
    float **segment_inputs;     /* [num_segments + 1]: input of each segment; the last is the final stream */
    float *lnf, *lnf_mean, *lnf_rstd, *logits, *losses, *lse_vocab, *ones;
    float *dresid, *dln, *dqkv, *datty, *dfch_gelu; /* d(fch) lives in the block's fch_gelu (block_backward) */
    int head_chunk;             /* most tokens the LM head handles at once (head_chunk_tokens) */
    dl_bf16 *param_bf16;        /* config.bf16: the parameters rounded to bf16, same layout (top of the file) */
    dl_bf16 *lnf_h, *dout_h;    /* config.bf16: the head's input, and the dout of the matmul backward running */
    int32_t *tokens, *targets, *positions, *cu_seqlens;
    int num_tokens, num_seqs;   /* of the last forward */
    int have_forward;
};

dl_status dl_gpt_config_check(const dl_gpt_config *c) {
    DL_REQUIRE(c != NULL, DL_ERR_INVALID, "GPT config is NULL");
    DL_REQUIRE(c->vocab_size >= 2, DL_ERR_CONFIG, "model.vocab_size must be at least 2, got %d", c->vocab_size);
    DL_REQUIRE(c->n_layer >= 1, DL_ERR_CONFIG, "model.n_layer must be at least 1, got %d", c->n_layer);
    DL_REQUIRE(c->n_head >= 1, DL_ERR_CONFIG, "model.n_head must be at least 1, got %d", c->n_head);
    DL_REQUIRE(c->n_embd >= 1 && c->n_embd % c->n_head == 0, DL_ERR_CONFIG,
               "model.n_embd (%d) must be a positive multiple of model.n_head (%d)", c->n_embd, c->n_head);
    DL_REQUIRE(c->n_embd / c->n_head <= 128, DL_ERR_CONFIG,
               "head size n_embd/n_head = %d exceeds 128 (the attention kernels' limit)", c->n_embd / c->n_head);
    DL_REQUIRE(!c->rope || (c->n_embd / c->n_head) % 2 == 0, DL_ERR_CONFIG,
               "rotary positions need an even head size, got %d", c->n_embd / c->n_head);
    DL_REQUIRE(c->max_seq_len >= 1, DL_ERR_CONFIG, "model.max_seq_len must be at least 1, got %d", c->max_seq_len);
    DL_REQUIRE(c->checkpoint_every >= 0, DL_ERR_CONFIG, "model.checkpoint every:K needs K >= 1");
    return DL_OK;
}

/* ---- parameters ------------------------------------------------------------------------------------------------ */

static dl_status add_param(dl_tensor_table *t, size_t *index, int ndim, const size_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static dl_status add_param(dl_tensor_table *t, size_t *index, int ndim, const size_t *shape, const char *fmt, ...) {
    char name[DL_TENSOR_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return dl_tensor_table_add(t, name, ndim, shape, index);
}

/* Lays the parameters out in reverse backward order (gpt.h). */
static dl_status build_param_table(dl_gpt *m) {
    const dl_gpt_config *c = &m->config;
    size_t C = (size_t)c->n_embd, V = (size_t)c->vocab_size;
    dl_tensor_table *t = &m->params;
    DL_CHECK(dl_tensor_table_init(t, DL_F32, 16));
    DL_CHECK(add_param(t, &m->head_first, 2, DL_SHAPE(V, C), "wte"));
    DL_CHECK(add_param(t, NULL, 1, DL_SHAPE(C), "lnf.weight"));
    DL_CHECK(add_param(t, &m->head_last, 1, DL_SHAPE(C), "lnf.bias"));
    for (int l = c->n_layer - 1; l >= 0; l--) {
        DL_CHECK(add_param(t, &m->layer_first[l], 2, DL_SHAPE(C, 4 * C), "h.%d.mlp.proj.weight", l));
        DL_CHECK(add_param(t, NULL, 1, DL_SHAPE(C), "h.%d.mlp.proj.bias", l));
        DL_CHECK(add_param(t, NULL, 2, DL_SHAPE(4 * C, C), "h.%d.mlp.fc.weight", l));
        DL_CHECK(add_param(t, NULL, 1, DL_SHAPE(4 * C), "h.%d.mlp.fc.bias", l));
        DL_CHECK(add_param(t, NULL, 1, DL_SHAPE(C), "h.%d.ln2.weight", l));
        DL_CHECK(add_param(t, &m->layer_part_last[l], 1, DL_SHAPE(C), "h.%d.ln2.bias", l));
        DL_CHECK(add_param(t, NULL, 2, DL_SHAPE(C, C), "h.%d.attn.proj.weight", l));
        DL_CHECK(add_param(t, NULL, 1, DL_SHAPE(C), "h.%d.attn.proj.bias", l));
        DL_CHECK(add_param(t, NULL, 2, DL_SHAPE(3 * C, C), "h.%d.attn.qkv.weight", l));
        DL_CHECK(add_param(t, NULL, 1, DL_SHAPE(3 * C), "h.%d.attn.qkv.bias", l));
        DL_CHECK(add_param(t, NULL, 1, DL_SHAPE(C), "h.%d.ln1.weight", l));
        DL_CHECK(add_param(t, &m->layer_last[l], 1, DL_SHAPE(C), "h.%d.ln1.bias", l));
    }
    if (!c->rope)
        DL_CHECK(add_param(t, &m->wpe_index, 2, DL_SHAPE((size_t)c->max_seq_len, C), "wpe"));
    return DL_OK;
}

static float *view(float *base, const dl_tensor_table *t, const char *name) {
    const dl_tensor *v = dl_tensor_table_find(t, name);
    return v ? base + v->offset : NULL;
}

/* Points w at the views of `base` (the parameter or the gradient buffer). */
static void bind_weights(dl_gpt *m, float *base, model_weights *w) {
    char name[DL_TENSOR_NAME_MAX];
    const dl_tensor_table *t = &m->params;
    w->wte = view(base, t, "wte");
    w->wpe = m->config.rope ? NULL : view(base, t, "wpe");
    w->lnf_w = view(base, t, "lnf.weight");
    w->lnf_b = view(base, t, "lnf.bias");
    for (int l = 0; l < m->config.n_layer; l++) {
        block_weights *b = &w->blocks[l];
#define BIND(field, suffix)                                              \
    snprintf(name, sizeof name, "h.%d.%s", l, suffix);                  \
    b->field = view(base, t, name);
        BIND(ln1_w, "ln1.weight") BIND(ln1_b, "ln1.bias") BIND(qkv_w, "attn.qkv.weight")
        BIND(qkv_b, "attn.qkv.bias") BIND(proj_w, "attn.proj.weight") BIND(proj_b, "attn.proj.bias")
        BIND(ln2_w, "ln2.weight") BIND(ln2_b, "ln2.bias") BIND(fc_w, "mlp.fc.weight") BIND(fc_b, "mlp.fc.bias")
        BIND(fcproj_w, "mlp.proj.weight") BIND(fcproj_b, "mlp.proj.bias")
#undef BIND
    }
}

/* ---- activations ----------------------------------------------------------------------------------------------- */

/* Region ids of the activations outside the block sets, in plan order. */
typedef struct plan_ids {
    size_t lnf, lnf_mean, lnf_rstd, logits, losses, lse_vocab, ones;
    size_t dresid, dln, dqkv, datty, dfch_gelu;
    size_t tokens, targets, positions, cu_seqlens;
    size_t lnf_h, dout_h;
} plan_ids;

/* Logits the head holds at a time under gradient checkpointing: 16 MiB (the head of GPT-2 124M would otherwise
 * keep 50257 floats per token, 40% of all its activations even with every block recomputed). */
enum { HEAD_CHUNK_FLOATS = 1 << 22, HEAD_CHUNK_MIN_TOKENS = 64 };

/* Tokens per LM-head chunk. Without checkpointing the head takes the whole batch at once and keeps every logit
 * (dl_gpt_logits). With it, the head runs on chunks of tokens whose logits fit HEAD_CHUNK_FLOATS (at least 64
 * tokens, so each chunk's product still amortises packing the vocabulary-sized weight), and backward recomputes
 * each chunk's logits (all but the last, still in the buffer): 2·V·C more FLOPs per token for V·C fewer floats. */
static int head_chunk_tokens(const dl_gpt_config *c, int max_tokens) {
    if (c->checkpoint_every <= 0)
        return max_tokens;
    int tokens = HEAD_CHUNK_FLOATS / c->vocab_size;
    if (tokens < HEAD_CHUNK_MIN_TOKENS)
        tokens = HEAD_CHUNK_MIN_TOKENS;
    return tokens < max_tokens ? tokens : max_tokens;
}

static int segment_size(const dl_gpt_config *c) {
    if (c->checkpoint_every <= 0 || c->checkpoint_every >= c->n_layer)
        return c->n_layer;
    return c->checkpoint_every;
}

enum { SET_FP32_FIELDS = 13, SET_FIELDS = 17 }; /* the fp32 activations of a block set, then its bf16 ones */

/* Floats of the largest dout a linear layer's backward takes: 4C per token (fc), or a head chunk's logits. */
static size_t max_dout_floats(const dl_gpt_config *c, int N) {
    size_t block = (size_t)N * 4 * (size_t)c->n_embd;
    size_t head = (size_t)head_chunk_tokens(c, N) * (size_t)c->vocab_size;
    return block > head ? block : head;
}

/* Reserves every activation region: K block sets, the segment inputs, the head, the gradient scratch and the
 * integer inputs (and with bf16 the rounded matmul inputs and the dout scratch). Ids go to set_ids,
 * segment_input_ids and ids when they are not NULL (NULL: size only). */
static dl_status plan_activations(dl_arena *a, const dl_gpt_config *c, int N, int S_max,
                                  size_t (*set_ids)[SET_FIELDS], size_t *segment_input_ids, plan_ids *ids) {
    size_t C = (size_t)c->n_embd, H = (size_t)c->n_head, V = (size_t)c->vocab_size, n = (size_t)N;
    size_t f = sizeof(float), head = (size_t)head_chunk_tokens(c, N);
    size_t h = c->bf16 ? sizeof(dl_bf16) : 0; /* bf16 regions are empty in an fp32 model */
    int K = segment_size(c);
    int S = (c->n_layer + K - 1) / K;
    char name[64];
    for (int j = 0; j < K; j++) {
        static const char *fields[SET_FIELDS] = {"ln1", "ln1_mean", "ln1_rstd", "qkv",  "atty",  "lse",
                                                 "x2",  "ln2",      "ln2_mean", "ln2_rstd", "fch", "fch_gelu",
                                                 "out", "ln1_h",    "atty_h",   "ln2_h", "fch_gelu_h"};
        size_t sizes[SET_FIELDS] = {n * C * f, n * f,     n * f,     3 * n * C * f, n * C * f,     n * H * f,
                                    n * C * f, n * C * f, n * f,     n * f,         4 * n * C * f, 4 * n * C * f,
                                    j < K - 1 ? n * C * f : 0, n * C * h, n * C * h, n * C * h, 4 * n * C * h};
        for (int k = 0; k < SET_FIELDS; k++) {
            snprintf(name, sizeof name, "set%d.%s", j, fields[k]);
            DL_CHECK(dl_arena_reserve(a, name, sizes[k], set_ids ? &set_ids[j][k] : NULL));
        }
    }
    for (int s = 0; s <= S; s++) {
        snprintf(name, sizeof name, "segment%d.input", s);
        DL_CHECK(dl_arena_reserve(a, name, n * C * f, segment_input_ids ? &segment_input_ids[s] : NULL));
    }
    size_t *dst = ids ? &ids->lnf : NULL;
    struct { const char *name; size_t bytes; } rest[] = {
        {"lnf", n * C * f}, {"lnf_mean", n * f}, {"lnf_rstd", n * f}, {"logits", head * V * f}, {"losses", n * f},
        {"lse_vocab", n * f}, {"ones", n * f}, {"dresid", n * C * f}, {"dln", n * C * f}, {"dqkv", 3 * n * C * f},
        {"datty", n * C * f}, {"dfch_gelu", 4 * n * C * f}, {"tokens", n * 4},
        {"targets", n * 4}, {"positions", n * 4}, {"cu_seqlens", ((size_t)S_max + 1) * 4},
        {"lnf_h", n * C * h}, {"dout_h", max_dout_floats(c, N) * h},
    };
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
        DL_CHECK(dl_arena_reserve(a, rest[i].name, rest[i].bytes, dst ? dst + i : NULL));
    return DL_OK;
}

size_t dl_gpt_activation_bytes(const dl_gpt_config *config, int max_tokens, int max_seqs) {
    if (dl_gpt_config_check(config) != DL_OK || max_tokens <= 0 || max_seqs <= 0)
        return 0;
    dl_arena a;
    if (dl_arena_init(&a, "gpt activations (plan)", 0) != DL_OK)
        return 0;
    size_t total = 0;
    if (plan_activations(&a, config, max_tokens, max_seqs, NULL, NULL, NULL) == DL_OK)
        total = dl_arena_total_bytes(&a);
    dl_arena_destroy(&a);
    return total;
}

static void *backend_alloc(void *ctx, size_t bytes) {
    void *p = NULL;
    return dl_mem_alloc((const dl_backend *)ctx, &p, bytes) == DL_OK ? p : NULL;
}

static void backend_free(void *ctx, void *p) { dl_mem_free((const dl_backend *)ctx, p); }

dl_status dl_gpt_create(dl_gpt **out, const dl_gpt_config *config, const dl_backend *be, int max_tokens,
                        int max_seqs) {
    DL_REQUIRE(out != NULL && be != NULL, DL_ERR_INVALID, "dl_gpt_create: NULL argument");
    *out = NULL;
    DL_CHECK(dl_gpt_config_check(config));
    DL_REQUIRE(max_tokens >= 1 && max_seqs >= 1 && max_seqs <= max_tokens, DL_ERR_INVALID,
               "dl_gpt_create: need 1 <= max_seqs (%d) <= max_tokens (%d)", max_seqs, max_tokens);
    dl_gpt *m = calloc(1, sizeof *m);
    DL_REQUIRE(m != NULL, DL_ERR_NOMEM, "cannot allocate the GPT model");
    m->config = *config;
    m->be = be;
    m->max_tokens = max_tokens;
    m->max_seqs = max_seqs;
    m->segment = segment_size(config);
    m->head_chunk = head_chunk_tokens(config, max_tokens);
    m->num_segments = (config->n_layer + m->segment - 1) / m->segment;
    int L = config->n_layer;
    m->layer_first = calloc((size_t)L, sizeof(size_t));
    m->layer_last = calloc((size_t)L, sizeof(size_t));
    m->layer_part_last = calloc((size_t)L, sizeof(size_t));
    m->w.blocks = calloc((size_t)L, sizeof(block_weights));
    m->g.blocks = calloc((size_t)L, sizeof(block_weights));
    m->sets = calloc((size_t)m->segment, sizeof(block_acts));
    m->segment_inputs = calloc((size_t)m->num_segments + 1, sizeof(float *));
    size_t (*set_ids)[SET_FIELDS] = calloc((size_t)m->segment, sizeof *set_ids);
    size_t *segment_ids = calloc((size_t)m->num_segments + 1, sizeof(size_t));
    plan_ids ids;
    dl_status s = DL_OK;
    if (!m->layer_first || !m->layer_last || !m->layer_part_last || !m->w.blocks || !m->g.blocks || !m->sets ||
        !m->segment_inputs || !set_ids || !segment_ids) {
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the GPT model's tables");
        goto done;
    }
    if ((s = build_param_table(m)) != DL_OK)
        goto done;
    size_t pbytes = dl_tensor_table_bytes(&m->params);
    if ((s = dl_mem_alloc(be, (void **)&m->param_data, pbytes)) != DL_OK ||
        (s = dl_mem_alloc(be, (void **)&m->grad_data, pbytes)) != DL_OK ||
        (s = dl_mem_zero(be, m->param_data, pbytes)) != DL_OK || (s = dl_mem_zero(be, m->grad_data, pbytes)) != DL_OK)
        goto done;
    if (config->bf16 && (s = dl_mem_alloc(be, (void **)&m->param_bf16, pbytes / 2)) != DL_OK)
        goto done;
    bind_weights(m, m->param_data, &m->w);
    bind_weights(m, m->grad_data, &m->g);

    m->allocator = (dl_allocator){backend_alloc, backend_free, (void *)be, be->name};
    if ((s = dl_arena_init(&m->arena, "gpt activations", 0)) != DL_OK ||
        (s = plan_activations(&m->arena, config, max_tokens, max_seqs, set_ids, segment_ids, &ids)) != DL_OK ||
        (s = dl_arena_allocate(&m->arena, &m->allocator)) != DL_OK)
        goto done;
    for (int j = 0; j < m->segment; j++) {
        float **fields[SET_FP32_FIELDS] = {&m->sets[j].ln1,      &m->sets[j].ln1_mean, &m->sets[j].ln1_rstd,
                                           &m->sets[j].qkv,      &m->sets[j].atty,     &m->sets[j].lse,
                                           &m->sets[j].x2,       &m->sets[j].ln2,      &m->sets[j].ln2_mean,
                                           &m->sets[j].ln2_rstd, &m->sets[j].fch,      &m->sets[j].fch_gelu,
                                           &m->sets[j].out};
        for (int k = 0; k < SET_FP32_FIELDS; k++)
            *fields[k] = dl_arena_ptr(&m->arena, set_ids[j][k]);
        if (config->bf16) {
            dl_bf16 **halves[SET_FIELDS - SET_FP32_FIELDS] = {&m->sets[j].ln1_h, &m->sets[j].atty_h,
                                                              &m->sets[j].ln2_h, &m->sets[j].fch_gelu_h};
            for (int k = SET_FP32_FIELDS; k < SET_FIELDS; k++)
                *halves[k - SET_FP32_FIELDS] = dl_arena_ptr(&m->arena, set_ids[j][k]);
        }
    }
    for (int i = 0; i <= m->num_segments; i++)
        m->segment_inputs[i] = dl_arena_ptr(&m->arena, segment_ids[i]);
    float **rest[] = {&m->lnf, &m->lnf_mean, &m->lnf_rstd, &m->logits, &m->losses, &m->lse_vocab, &m->ones,
                      &m->dresid, &m->dln, &m->dqkv, &m->datty, &m->dfch_gelu};
    size_t *rest_ids = &ids.lnf;
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
        *rest[i] = dl_arena_ptr(&m->arena, rest_ids[i]);
    m->tokens = dl_arena_ptr(&m->arena, ids.tokens);
    m->targets = dl_arena_ptr(&m->arena, ids.targets);
    m->positions = dl_arena_ptr(&m->arena, ids.positions);
    m->cu_seqlens = dl_arena_ptr(&m->arena, ids.cu_seqlens);
    if (config->bf16) {
        m->lnf_h = dl_arena_ptr(&m->arena, ids.lnf_h);
        m->dout_h = dl_arena_ptr(&m->arena, ids.dout_h);
    }
    {
        /* d(loss_sum)/d(loss_n) = 1 for every position; ignored ones get zero gradient from the op. */
        float *ones = malloc((size_t)max_tokens * sizeof(float));
        if (!ones) {
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %d floats", max_tokens);
            goto done;
        }
        for (int i = 0; i < max_tokens; i++)
            ones[i] = 1.0f;
        s = dl_mem_to_device(be, m->ones, ones, (size_t)max_tokens * sizeof(float));
        free(ones);
    }
done:
    free(set_ids);
    free(segment_ids);
    if (s != DL_OK) {
        dl_gpt_destroy(m);
        return s;
    }
    *out = m;
    return DL_OK;
}

void dl_gpt_destroy(dl_gpt *m) {
    if (!m)
        return;
    dl_arena_destroy(&m->arena);
    dl_mem_free(m->be, m->param_data);
    dl_mem_free(m->be, m->grad_data);
    dl_mem_free(m->be, m->param_bf16);
    dl_tensor_table_free(&m->params);
    free(m->layer_first);
    free(m->layer_last);
    free(m->layer_part_last);
    free(m->w.blocks);
    free(m->g.blocks);
    free(m->sets);
    free(m->segment_inputs);
    free(m);
}

const dl_gpt_config *dl_gpt_get_config(const dl_gpt *m) { return m ? &m->config : NULL; }
const dl_tensor_table *dl_gpt_params(const dl_gpt *m) { return m ? &m->params : NULL; }
float *dl_gpt_param_data(dl_gpt *m) { return m ? m->param_data : NULL; }
float *dl_gpt_grad_data(dl_gpt *m) { return m ? m->grad_data : NULL; }
size_t dl_gpt_num_params(const dl_gpt *m) { return m ? dl_tensor_table_numel(&m->params) : 0; }
const float *dl_gpt_token_losses(const dl_gpt *m) { return m ? m->losses : NULL; }
int dl_gpt_max_tokens(const dl_gpt *m) { return m ? m->max_tokens : 0; }
const float *dl_gpt_logits(const dl_gpt *m) { return m && m->head_chunk >= m->max_tokens ? m->logits : NULL; }

dl_status dl_gpt_zero_grads(dl_gpt *m) {
    DL_REQUIRE(m != NULL, DL_ERR_INVALID, "dl_gpt_zero_grads: NULL model");
    return dl_mem_zero(m->be, m->grad_data, dl_tensor_table_bytes(&m->params));
}

dl_byte_range dl_gpt_layer_part_range(const dl_gpt *m, int layer) {
    dl_byte_range r = {0, 0};
    if (!m || layer < 0 || layer >= m->config.n_layer)
        return r;
    r.begin = dl_tensor_byte_range(dl_tensor_table_at(&m->params, m->layer_first[layer])).begin;
    r.end = dl_tensor_byte_range(dl_tensor_table_at(&m->params, m->layer_part_last[layer])).end;
    return r;
}

dl_byte_range dl_gpt_layer_param_range(const dl_gpt *m, int layer) {
    dl_byte_range r = {0, 0};
    if (!m || layer < -1 || layer > m->config.n_layer)
        return r;
    size_t first, last;
    if (layer == -1) {
        if (m->config.rope)
            return r;
        first = last = m->wpe_index;
    } else if (layer == m->config.n_layer)
        first = m->head_first, last = m->head_last;
    else
        first = m->layer_first[layer], last = m->layer_last[layer];
    r.begin = dl_tensor_byte_range(dl_tensor_table_at(&m->params, first)).begin;
    r.end = dl_tensor_byte_range(dl_tensor_table_at(&m->params, last)).end;
    return r;
}

/* p[k] = std · (draw k of dl_rng_normal on `stream`), computed in parallel. Each draw consumes four 32-bit words,
 * one Philox block, so draw k is block k and needs no sequential walk. The same bits as a dl_rng_normal loop
 * (test_gpt checks it), which computes a whole block per word on one thread: 2.8x less CPU time, spread over the
 * threads (124M parameters took 15 s to initialise on a loaded 2-core machine). */
static void fill_normal(float *p, size_t n, float std, uint64_t seed, uint64_t stream) {
    const double to_unit = 1.0 / 9007199254740992.0; /* 2^-53, as dl_rng_uniform_double */
#pragma omp parallel for schedule(static) if (n >= 16384)
    for (size_t k = 0; k < n; k++) {
        uint32_t w[4];
        dl_philox_block(seed, stream, k, w);
        double u1 = (double)((((uint64_t)w[1] << 32) | w[0]) >> 11) * to_unit;
        double u2 = (double)((((uint64_t)w[3] << 32) | w[2]) >> 11) * to_unit;
        if (u1 < 1e-300)
            u1 = 1e-300;
        p[k] = std * (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

dl_status dl_gpt_init_params(dl_gpt *m, uint64_t seed) {
    DL_REQUIRE(m != NULL, DL_ERR_INVALID, "dl_gpt_init_params: NULL model");
    size_t numel = dl_tensor_table_numel(&m->params);
    float *host = calloc(numel, sizeof(float));
    DL_REQUIRE(host != NULL, DL_ERR_NOMEM, "cannot allocate %zu floats to initialise the model", numel);
    float residual_std = 0.02f / sqrtf(2.0f * (float)m->config.n_layer);
    for (size_t i = 0; i < m->params.count; i++) {
        const dl_tensor *t = dl_tensor_table_at(&m->params, i);
        const char *name = t->name;
        size_t len = strlen(name);
        int is_bias = len > 5 && strcmp(name + len - 5, ".bias") == 0;
        int is_norm = strstr(name, "ln") == name || strstr(name, ".ln") != NULL;
        float *p = host + t->offset;
        if (is_bias) {
            continue; /* zero */
        } else if (is_norm) {
            for (size_t k = 0; k < t->numel; k++)
                p[k] = 1.0f;
        } else {
            float std = strstr(name, ".proj.weight") ? residual_std : (strcmp(name, "wpe") == 0 ? 0.01f : 0.02f);
            fill_normal(p, t->numel, std, seed, ((uint64_t)DL_STREAM_INIT << 32) | i);
        }
    }
    dl_status s = dl_mem_to_device(m->be, m->param_data, host, numel * sizeof(float));
    free(host);
    return s;
}

/* ---- linear layers in either precision ------------------------------------------------------------------------ */

/* The bf16 copy of parameter view `w` (which points into param_data). */
static const dl_bf16 *weight_bf16(const dl_gpt *m, const float *w) { return m->param_bf16 + (w - m->param_data); }

/* Rounds a matmul input to its bf16 buffer (nothing in an fp32 model). */
static dl_status round_input(dl_gpt *m, dl_bf16 *dst, const float *src, size_t n) {
    return m->config.bf16 ? dl_op_f32_to_bf16(m->be, dst, src, n) : DL_OK;
}

/* out[N,OC] = inp·wᵀ + b: fp32, or bf16 operands (inp_h, already rounded by round_input, and w's bf16 copy). */
static dl_status linear_forward(dl_gpt *m, float *out, const float *inp, const dl_bf16 *inp_h, const float *w,
                                const float *b, int N, int C, int OC) {
    if (m->config.bf16)
        return dl_op_matmul_forward_bf16(m->be, out, inp_h, weight_bf16(m, w), b, N, C, OC);
    return dl_op_matmul_forward(m->be, out, inp, w, b, N, C, OC);
}

/* The backward of linear_forward, accumulating into the fp32 gradients; with bf16, dout is rounded into dout_h. */
static dl_status linear_backward(dl_gpt *m, float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                 const dl_bf16 *inp_h, const float *w, int N, int C, int OC) {
    if (!m->config.bf16)
        return dl_op_matmul_backward(m->be, dinp, dw, db, dout, inp, w, N, C, OC);
    DL_CHECK(dl_op_f32_to_bf16(m->be, m->dout_h, dout, (size_t)N * (size_t)OC));
    return dl_op_matmul_backward_bf16(m->be, dinp, dw, db, m->dout_h, inp_h, weight_bf16(m, w), N, C, OC);
}

/* ---- forward --------------------------------------------------------------------------------------------------- */

/* One block: out = x + attn(ln1(x)) + mlp(ln2(·)). With output 0 (a recomputation whose output is already stored)
 * it stops after the GELU, which is all backward reads; `out` is still used as scratch. */
static dl_status block_forward(dl_gpt *m, int layer, block_acts *a, const float *x, float *out, int output) {
    const dl_backend *be = m->be;
    const dl_gpt_config *c = &m->config;
    const block_weights *w = &m->w.blocks[layer];
    int N = m->num_tokens, C = c->n_embd, H = c->n_head, D = C / H;
    size_t nc = (size_t)N * C;
    DL_CHECK(dl_op_layernorm_forward(be, a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, N, C, 1e-5f));
    DL_CHECK(round_input(m, a->ln1_h, a->ln1, nc));
    DL_CHECK(linear_forward(m, a->qkv, a->ln1, a->ln1_h, w->qkv_w, w->qkv_b, N, C, 3 * C));
    if (c->rope) /* q and k are the first 2C floats of each token: one [N, 2H, D] view with stride 3C */
        DL_CHECK(dl_op_rope_forward(be, a->qkv, a->qkv, m->positions, N, 2 * H, D, 3 * C, c->rope_theta));
    DL_CHECK(dl_op_attention_forward(be, a->atty, a->lse, a->qkv, m->cu_seqlens, m->num_seqs, N, H, D));
    /* x2 = x + atty·Wprojᵀ + b: the projection goes to `out` as scratch, then the residual add. */
    DL_CHECK(round_input(m, a->atty_h, a->atty, nc));
    DL_CHECK(linear_forward(m, out, a->atty, a->atty_h, w->proj_w, w->proj_b, N, C, C));
    DL_CHECK(dl_op_residual_forward(be, a->x2, x, out, (size_t)N * C));
    DL_CHECK(dl_op_layernorm_forward(be, a->ln2, a->ln2_mean, a->ln2_rstd, a->x2, w->ln2_w, w->ln2_b, N, C, 1e-5f));
    DL_CHECK(round_input(m, a->ln2_h, a->ln2, nc));
    DL_CHECK(linear_forward(m, a->fch, a->ln2, a->ln2_h, w->fc_w, w->fc_b, N, C, 4 * C));
    DL_CHECK(dl_op_gelu_forward(be, a->fch_gelu, a->fch, (size_t)N * 4 * C));
    DL_CHECK(round_input(m, a->fch_gelu_h, a->fch_gelu, 4 * nc)); /* backward's weight gradient reads it */
    if (!output)
        return DL_OK;
    DL_CHECK(linear_forward(m, out, a->fch_gelu, a->fch_gelu_h, w->fcproj_w, w->fcproj_b, N, 4 * C, C));
    DL_CHECK(dl_op_residual_forward(be, out, a->x2, out, (size_t)N * C));
    return DL_OK;
}

/* Input and output of the j-th block of segment s. */
static const float *block_input(dl_gpt *m, int s, int j) {
    return j == 0 ? m->segment_inputs[s] : m->sets[j - 1].out;
}

static float *block_output(dl_gpt *m, int s, int j) {
    int layer = s * m->segment + j;
    int last_in_segment = j == m->segment - 1 || layer == m->config.n_layer - 1;
    return last_in_segment ? m->segment_inputs[s + 1] : m->sets[j].out;
}

/* Forward of segment s. A recomputation (in backward) skips the last block's output projection: that output is
 * the next segment's stored input, and a third of the block's forward FLOPs. */
static dl_status segment_forward(dl_gpt *m, int s, int recompute) {
    for (int j = 0; j < m->segment; j++) {
        int layer = s * m->segment + j;
        if (layer >= m->config.n_layer)
            break;
        int last = j == m->segment - 1 || layer == m->config.n_layer - 1;
        DL_CHECK_CTX(block_forward(m, layer, &m->sets[j], block_input(m, s, j), block_output(m, s, j),
                                   !(recompute && last)),
                     "block %d forward", layer);
    }
    return DL_OK;
}

static dl_status check_inputs(const dl_gpt *m, const dl_gpt_inputs *in) {
    DL_REQUIRE(in != NULL && in->tokens && in->targets && in->positions && in->cu_seqlens, DL_ERR_INVALID,
               "GPT forward: NULL input array");
    DL_REQUIRE(in->num_tokens >= 1 && in->num_tokens <= m->max_tokens, DL_ERR_INVALID,
               "GPT forward: %d tokens, the model was sized for 1..%d", in->num_tokens, m->max_tokens);
    DL_REQUIRE(in->num_seqs >= 1 && in->num_seqs <= m->max_seqs, DL_ERR_INVALID,
               "GPT forward: %d documents, the model was sized for 1..%d", in->num_seqs, m->max_seqs);
    DL_REQUIRE(in->cu_seqlens[0] == 0 && in->cu_seqlens[in->num_seqs] == in->num_tokens, DL_ERR_INVALID,
               "GPT forward: cu_seqlens must run from 0 to %d, got %d..%d", in->num_tokens, in->cu_seqlens[0],
               in->cu_seqlens[in->num_seqs]);
    for (int i = 0; i < in->num_tokens; i++) {
        DL_REQUIRE(in->targets[i] < m->config.vocab_size, DL_ERR_INVALID,
                   "GPT forward: target %d at position %d is outside the vocabulary (size %d)", in->targets[i], i,
                   m->config.vocab_size);
        DL_REQUIRE(in->positions[i] >= 0 && (m->config.rope || in->positions[i] < m->config.max_seq_len),
                   DL_ERR_INVALID, "GPT forward: position %d at token %d outside 0..%d (model.max_seq_len)",
                   in->positions[i], i, m->config.max_seq_len - 1);
    }
    return DL_OK;
}

dl_status dl_gpt_forward(dl_gpt *m, const dl_gpt_inputs *in, double *loss_sum, int64_t *num_targets) {
    DL_REQUIRE(m != NULL && loss_sum != NULL && num_targets != NULL, DL_ERR_INVALID, "dl_gpt_forward: NULL argument");
    m->have_forward = 0;
    DL_CHECK(check_inputs(m, in));
    const dl_backend *be = m->be;
    const dl_gpt_config *c = &m->config;
    int N = in->num_tokens, C = c->n_embd, V = c->vocab_size;
    m->num_tokens = N;
    m->num_seqs = in->num_seqs;
    DL_CHECK(dl_mem_to_device(be, m->tokens, in->tokens, (size_t)N * sizeof(int32_t)));
    DL_CHECK(dl_mem_to_device(be, m->targets, in->targets, (size_t)N * sizeof(int32_t)));
    DL_CHECK(dl_mem_to_device(be, m->positions, in->positions, (size_t)N * sizeof(int32_t)));
    DL_CHECK(dl_mem_to_device(be, m->cu_seqlens, in->cu_seqlens, ((size_t)in->num_seqs + 1) * sizeof(int32_t)));
    if (c->bf16) /* this forward's and its backward's weights (top of the file) */
        DL_CHECK_CTX(dl_op_f32_to_bf16(be, m->param_bf16, m->param_data, dl_tensor_table_numel(&m->params)),
                     "rounding the weights to bf16");

    DL_CHECK_CTX(dl_op_embedding_forward(be, m->segment_inputs[0], m->tokens, c->rope ? NULL : m->positions, m->w.wte,
                                         m->w.wpe, N, C, V, c->max_seq_len),
                 "embedding");
    for (int s = 0; s < m->num_segments; s++)
        DL_CHECK(segment_forward(m, s, 0));
    const float *x_final = m->segment_inputs[m->num_segments];
    DL_CHECK(dl_op_layernorm_forward(be, m->lnf, m->lnf_mean, m->lnf_rstd, x_final, m->w.lnf_w, m->w.lnf_b, N, C,
                                     1e-5f));
    DL_CHECK(round_input(m, m->lnf_h, m->lnf, (size_t)N * C));
    int chunks = (N + m->head_chunk - 1) / m->head_chunk, rows = (N + chunks - 1) / chunks;
    for (int t0 = 0; t0 < N; t0 += rows) { /* one chunk without checkpointing; the last chunk's logits stay */
        int n = N - t0 < rows ? N - t0 : rows;
        DL_CHECK(linear_forward(m, m->logits, m->lnf + (size_t)t0 * C, m->lnf_h ? m->lnf_h + (size_t)t0 * C : NULL,
                                m->w.wte, NULL, n, C, V));
        DL_CHECK_CTX(dl_op_xent_forward(be, m->losses + t0, m->lse_vocab + t0, m->logits, m->targets + t0, n, V),
                     "loss");
    }

    double sum = 0.0;
    int64_t count = 0;
    float *host_losses = malloc((size_t)N * sizeof(float));
    DL_REQUIRE(host_losses != NULL, DL_ERR_NOMEM, "cannot allocate %d floats", N);
    dl_status s = dl_mem_to_host(be, host_losses, m->losses, (size_t)N * sizeof(float));
    if (s == DL_OK)
        for (int i = 0; i < N; i++)
            if (in->targets[i] >= 0) {
                sum += host_losses[i];
                count++;
            }
    free(host_losses);
    DL_CHECK(s);
    *loss_sum = sum;
    *num_targets = count;
    m->have_forward = 1;
    return DL_OK;
}

/* ---- backward -------------------------------------------------------------------------------------------------- */

/* On entry m->dresid holds d(block output); on return d(block input). */
static dl_status block_backward(dl_gpt *m, int layer, const block_acts *a, const float *x,
                                const dl_backward_hooks *hooks) {
    const dl_backend *be = m->be;
    const dl_gpt_config *c = &m->config;
    const block_weights *w = &m->w.blocks[layer];
    const block_weights *g = &m->g.blocks[layer];
    int N = m->num_tokens, C = c->n_embd, H = c->n_head, D = C / H;
    size_t nc = (size_t)N * C, f = sizeof(float);
    /* MLP half: out = x2 + gelu(ln2(x2)·Wfcᵀ)·Wprojᵀ; the residual passes dresid straight to x2. fch_gelu is dead
     * once the projection's weight gradient has read it, so d(fch) is written over it. */
    float *dfch = a->fch_gelu;
    DL_CHECK(dl_mem_zero(be, m->dfch_gelu, 4 * nc * f));
    DL_CHECK(linear_backward(m, m->dfch_gelu, g->fcproj_w, g->fcproj_b, m->dresid, a->fch_gelu, a->fch_gelu_h,
                             w->fcproj_w, N, 4 * C, C));
    DL_CHECK(dl_mem_zero(be, dfch, 4 * nc * f));
    DL_CHECK(dl_op_gelu_backward(be, dfch, a->fch, m->dfch_gelu, 4 * nc));
    DL_CHECK(dl_mem_zero(be, m->dln, nc * f));
    DL_CHECK(linear_backward(m, m->dln, g->fc_w, g->fc_b, dfch, a->ln2, a->ln2_h, w->fc_w, N, C, 4 * C));
    DL_CHECK(dl_op_layernorm_backward(be, m->dresid, g->ln2_w, g->ln2_b, m->dln, a->x2, w->ln2_w, a->ln2_mean,
                                      a->ln2_rstd, N, C));
    /* The MLP half's weights (the first part of the block's range) are final. */
    if (hooks && hooks->part_done)
        DL_CHECK(hooks->part_done(hooks->ctx, layer));
    /* Attention half: x2 = x + attn(ln1(x))·Wprojᵀ. */
    DL_CHECK(dl_mem_zero(be, m->datty, nc * f));
    DL_CHECK(linear_backward(m, m->datty, g->proj_w, g->proj_b, m->dresid, a->atty, a->atty_h, w->proj_w, N, C, C));
    DL_CHECK(dl_mem_zero(be, m->dqkv, 3 * nc * f));
    DL_CHECK(dl_op_attention_backward(be, m->dqkv, m->datty, a->qkv, a->atty, a->lse, m->cu_seqlens, m->num_seqs, N,
                                      H, D));
    if (c->rope) /* in place: the gradient w.r.t. the un-rotated q and k */
        DL_CHECK(dl_op_rope_backward(be, m->dqkv, m->dqkv, m->positions, N, 2 * H, D, 3 * C, c->rope_theta));
    DL_CHECK(dl_mem_zero(be, m->dln, nc * f));
    DL_CHECK(linear_backward(m, m->dln, g->qkv_w, g->qkv_b, m->dqkv, a->ln1, a->ln1_h, w->qkv_w, N, C, 3 * C));
    DL_CHECK(dl_op_layernorm_backward(be, m->dresid, g->ln1_w, g->ln1_b, m->dln, x, w->ln1_w, a->ln1_mean,
                                      a->ln1_rstd, N, C));
    return DL_OK;
}

/* The backward pass with d(loss)/d(loss_n) = dlosses[n] (device memory). */
static dl_status backward(dl_gpt *m, const float *dlosses, const dl_backward_hooks *hooks) {
    DL_REQUIRE(m->have_forward, DL_ERR_INVALID, "dl_gpt_backward: no forward pass to differentiate (or it was "
                                                "already used)");
    m->have_forward = 0;
    const dl_backend *be = m->be;
    const dl_gpt_config *c = &m->config;
    int N = m->num_tokens, C = c->n_embd, V = c->vocab_size;
    size_t nc = (size_t)N * C, f = sizeof(float);
    /* Head, chunk by chunk from the last (whose logits forward left in the buffer): the fused classifier turns
     * logits into dlogits in place. */
    DL_CHECK(dl_mem_zero(be, m->dln, nc * f));
    int chunks = (N + m->head_chunk - 1) / m->head_chunk, rows = (N + chunks - 1) / chunks;
    for (int k = chunks - 1; k >= 0; k--) {
        int t0 = k * rows, n = N - t0 < rows ? N - t0 : rows;
        const float *lnf = m->lnf + (size_t)t0 * C;
        const dl_bf16 *lnf_h = m->lnf_h ? m->lnf_h + (size_t)t0 * C : NULL;
        if (k != chunks - 1)
            DL_CHECK(linear_forward(m, m->logits, lnf, lnf_h, m->w.wte, NULL, n, C, V));
        DL_CHECK(dl_op_xent_backward(be, m->logits, m->logits, m->lse_vocab + t0, m->targets + t0, dlosses + t0, n,
                                     V));
        DL_CHECK(linear_backward(m, m->dln + (size_t)t0 * C, m->g.wte, NULL, m->logits, lnf, lnf_h, m->w.wte, n, C,
                                 V));
    }
    DL_CHECK(dl_mem_zero(be, m->dresid, nc * f));
    DL_CHECK(dl_op_layernorm_backward(be, m->dresid, m->g.lnf_w, m->g.lnf_b, m->dln,
                                      m->segment_inputs[m->num_segments], m->w.lnf_w, m->lnf_mean, m->lnf_rstd, N, C));
    dl_status (*layer_done)(void *, int) = hooks ? hooks->layer_done : NULL;
    void *ctx = hooks ? hooks->ctx : NULL;
    if (layer_done)
        DL_CHECK(layer_done(ctx, c->n_layer));
    for (int s = m->num_segments - 1; s >= 0; s--) {
        if (s != m->num_segments - 1) /* the last segment's activations are still there from forward */
            DL_CHECK_CTX(segment_forward(m, s, 1), "recomputing segment %d", s);
        int first = s * m->segment;
        int last = first + m->segment - 1 < c->n_layer - 1 ? first + m->segment - 1 : c->n_layer - 1;
        for (int layer = last; layer >= first; layer--) {
            int j = layer - first;
            DL_CHECK_CTX(block_backward(m, layer, &m->sets[j], block_input(m, s, j), hooks), "block %d backward",
                         layer);
            if (layer_done)
                DL_CHECK(layer_done(ctx, layer));
        }
    }
    if (hooks && hooks->embedding_rows) {
        /* The token table's input-side rows go to the hook; the position table's scatter is the same op with
         * positions for ids (the same additions as the combined call, so the same bits). */
        DL_CHECK_CTX(hooks->embedding_rows(ctx, m->g.wte, V, m->tokens, m->dresid, N, C), "embedding backward");
        if (!c->rope)
            DL_CHECK_CTX(dl_op_embedding_backward(be, m->g.wpe, NULL, m->dresid, m->positions, NULL, N, C,
                                                  c->max_seq_len, 0),
                         "position embedding backward");
    } else {
        DL_CHECK_CTX(dl_op_embedding_backward(be, m->g.wte, c->rope ? NULL : m->g.wpe, m->dresid, m->tokens,
                                              c->rope ? NULL : m->positions, N, C, V, c->max_seq_len),
                     "embedding backward");
    }
    if (layer_done)
        DL_CHECK(layer_done(ctx, -1));
    return DL_OK;
}

dl_status dl_gpt_backward(dl_gpt *m, const dl_backward_hooks *hooks) {
    DL_REQUIRE(m != NULL, DL_ERR_INVALID, "dl_gpt_backward: NULL model");
    return backward(m, m->ones, hooks);
}

dl_status dl_gpt_backward_weighted(dl_gpt *m, const float *dlosses, const dl_backward_hooks *hooks) {
    DL_REQUIRE(m != NULL && dlosses != NULL, DL_ERR_INVALID, "dl_gpt_backward_weighted: NULL argument");
    return backward(m, dlosses, hooks);
}

/* Model FLOPs per trained token (PaLM appendix B convention, as llm.c): every matmul weight costs 6 FLOPs per token
 * forward+backward (2 forward, 4 backward), i.e. 6·(12·L·C² + V·C) with the tied head counted once; attention adds
 * 12·L·C·context for QKᵀ and PV forward and backward, where `context` is the mean number of keys a query attends to
 * (causal, within its document). Recomputation under gradient checkpointing is not counted: MFU measures useful
 * work, so checkpointing lowers it. */
double dl_gpt_flops_per_token(const dl_gpt_config *c, double context) {
    double L = c->n_layer, C = c->n_embd, V = c->vocab_size;
    return 6.0 * (12.0 * L * C * C + V * C) + 12.0 * L * C * context;
}
