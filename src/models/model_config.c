/* model_config.c — the rows of the model section, the "read by" column of every model-specific key, and the checks
 * that tie the model kind to the other sections (model_config.h). */
#include "models/model_config.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

#define KEY(name, type, field, def, ...) DL_CFG_KEY(dl_model_config, name, type, field, def, __VA_ARGS__)
#define ENUM(name, field, choices, def, doc) DL_CFG_ENUM_KEY(dl_model_config, name, field, choices, def, doc)

/* In the order of dl_model_kind. */
static const char *const kind_choices[] = {"gpt", "fm", "ffm", "dpo", NULL};
static const char *const grad_ckpt_choices[] = {"none", "blocks", "every:K", NULL};
static const char *const positions_choices[] = {"learned", "rope", NULL};
static const char *const precision_choices[] = {"fp32", "bf16", NULL};

const dl_cfg_key dl_model_config_keys[] = {
    ENUM("kind", kind, kind_choices, "gpt",
         "gpt (decoder-only transformer), fm, ffm (click models) or dpo (preference tuning of a gpt)"),
    {"checkpoint", DL_CFG_ENUM_COUNT, offsetof(dl_model_config, checkpoint),
     offsetof(dl_model_config, checkpoint_every), grad_ckpt_choices, "none", DL_CFG_IN(1, 1024),
     "gradient checkpointing: none, blocks (recompute each block in backward) or every:K (keep 1 block input in K)",
     "none, blocks or every:K", 0},
    KEY("init_from", DL_CFG_STRING, init_from, "", DL_CFG_ANY,
        "gpt/dpo: weights that start the run: a dealer checkpoint or run directory, a .safetensors file or a "
        "Hugging Face model directory (dpo: the gpt to tune); empty: random init"),
    KEY("init_std", DL_CFG_FLOAT, init_std, "0.02", DL_CFG_GE(0), "gpt: standard deviation of the normal weight init"),
    KEY("vocab_size", DL_CFG_INT, vocab_size, "50257", DL_CFG_GE(1),
        "gpt: token ids are in [0, vocab_size) (256 for the byte-level tokenizer)"),
    KEY("n_layer", DL_CFG_INT, n_layer, "12", DL_CFG_IN(1, 1024), "gpt: transformer blocks"),
    KEY("n_head", DL_CFG_INT, n_head, "12", DL_CFG_GE(1), "gpt: attention heads per block"),
    KEY("n_embd", DL_CFG_INT, n_embd, "768", DL_CFG_GE(1), "gpt: model width (a multiple of n_head)"),
    KEY("max_seq_len", DL_CFG_INT, max_seq_len, "1024", DL_CFG_GE(1),
        "gpt: longest position the model has (learned position table size)"),
    ENUM("positions", positions, positions_choices, "learned",
         "gpt: learned absolute position embeddings or rotary (rope)"),
    KEY("rope_theta", DL_CFG_FLOAT, rope_theta, "10000", DL_CFG_GT(0), "gpt: rotary base frequency"),
    ENUM("precision", precision, precision_choices, "fp32",
         "gpt/dpo: bf16 runs every matmul on bf16 operands with fp32 accumulation (fp32 weights, optimizer, norms)"),
    KEY("dropout", DL_CFG_FLOAT, dropout, "0", DL_CFG_IN_HALF_OPEN(0, 1), "gpt: dropout probability (0: off)"),
    KEY("tied_head", DL_CFG_BOOL, tied_head, "true", DL_CFG_ANY, "gpt: the LM head shares the token embedding matrix"),
    KEY("layernorm_eps", DL_CFG_FLOAT, layernorm_eps, "1e-5", DL_CFG_GT(0), "gpt: LayerNorm epsilon"),
    KEY("k", DL_CFG_INT, k, "4", DL_CFG_IN(1, 4096), "fm/ffm: latent dimension"),
    KEY("hash_buckets", DL_CFG_I64, hash_buckets, "1048576", DL_CFG_IN(1, 2147483647.0),
        "fm/ffm: feature ids are hashed into this many table rows (32-bit row indices: below 2^31)"),
    KEY("num_fields", DL_CFG_INT, num_fields, "39", DL_CFG_IN(1, 65536),
        "ffm: fields (field ids are in [0, num_fields))"),
    KEY("linear_terms", DL_CFG_BOOL, linear_terms, "true", DL_CFG_ANY,
        "fm/ffm: add a bias and a linear weight per feature (libffm has none: false matches it)"),
    KEY("normalize", DL_CFG_BOOL, normalize, "true", DL_CFG_ANY,
        "fm/ffm: scale each row's values to unit L2 norm (libffm's instance normalisation)"),
    DL_CFG_END,
};

/* Which kinds read which key, of any section: loading refuses a key set (to a value other than its default) that
 * its model.kind does not read, since the run would silently ignore it; `dealer config keys` prints this column. */
enum {
    GPT = 1u << DL_MODEL_GPT,
    FM = 1u << DL_MODEL_FM,
    FFM = 1u << DL_MODEL_FFM,
    DPO = 1u << DL_MODEL_DPO,
};
const dl_cfg_reader dl_model_readers[] = {
    {"model.checkpoint", GPT | DPO},
    {"model.init_from", GPT | DPO},
    {"model.init_std", GPT | DPO},
    {"model.vocab_size", GPT | DPO},
    {"model.n_layer", GPT | DPO},
    {"model.n_head", GPT | DPO},
    {"model.n_embd", GPT | DPO},
    {"model.max_seq_len", GPT | DPO},
    {"model.positions", GPT | DPO},
    {"model.rope_theta", GPT | DPO},
    {"model.precision", GPT | DPO},
    {"model.dropout", GPT | DPO},
    {"model.tied_head", GPT | DPO},
    {"model.layernorm_eps", GPT | DPO},
    {"model.k", FM | FFM},
    {"model.hash_buckets", FM | FFM},
    {"model.num_fields", FFM},
    {"model.linear_terms", FM | FFM},
    {"model.normalize", FM | FFM},
    {"data.seq_len", GPT | DPO},
    {"data.packing", GPT | DPO},
    {"data.pack_window", GPT | DPO},
    {"data.overlong", GPT | DPO},
    {"data.tokenizer", GPT | DPO},
    {"train.early_stop", FM | FFM},
    {"comm.embeddings", FM | FFM},
    {"dpo.beta", DPO},
    {"dpo.loss", DPO},
    {"dpo.label_smoothing", DPO},
    {"dpo.reference", DPO},
    {"dpo.reference_file", DPO},
    {NULL, 0},
};

const char *dl_model_kind_name(dl_model_kind kind) {
    return dl_cfg_rows_enum_text(dl_model_config_keys, "kind", (int)kind);
}

dl_data_format dl_model_kind_data(dl_model_kind kind) {
    switch (kind) {
    case DL_MODEL_FM:
    case DL_MODEL_FFM: return DL_FORMAT_CLICKS;
    case DL_MODEL_DPO: return DL_FORMAT_PAIRS;
    default: return DL_FORMAT_TOKENS;
    }
}

bool dl_model_kind_is_gpt(dl_model_kind kind) { return kind == DL_MODEL_GPT || kind == DL_MODEL_DPO; }

dl_gpt_config dl_model_gpt_config(const dl_model_config *model) {
    return (dl_gpt_config){
        .vocab_size = model->vocab_size,
        .n_layer = model->n_layer,
        .n_head = model->n_head,
        .n_embd = model->n_embd,
        .max_seq_len = model->max_seq_len,
        .rope = model->positions == DL_POSITIONS_ROPE,
        .rope_theta = (float)model->rope_theta,
        .bf16 = model->precision == DL_PRECISION_BF16,
        .checkpoint_every = model->checkpoint == DL_GRAD_CKPT_NONE     ? 0
                            : model->checkpoint == DL_GRAD_CKPT_BLOCKS ? 1
                                                                       : model->checkpoint_every,
    };
}

static const char *enum_text(const dl_cfg_key *keys, const char *name, int value) {
    const char *text = dl_cfg_rows_enum_text(keys, name, value);
    return text ? text : "?";
}

#define CONFLICT(keys, ...) return dl_cfg_conflict(schema, cfg, (keys), __VA_ARGS__)

dl_status dl_model_config_check(const dl_cfg_schema *schema, const void *cfg, const dl_model_config *model,
                                const dl_data_config *data, const dl_dpo_config *dpo, const dl_comm_config *comm,
                                int batch_per_rank) {
    DL_REQUIRE(schema && cfg && model && data && dpo && comm, DL_ERR_INVALID, "dl_model_config_check: NULL argument");
    const char *kind = enum_text(dl_model_config_keys, "kind", (int)model->kind);
    bool is_gpt = dl_model_kind_is_gpt(model->kind);
    if (is_gpt) {
        if (model->n_embd % model->n_head != 0)
            CONFLICT("model.n_embd model.n_head", "model.n_embd (%d) must be a multiple of model.n_head (%d)",
                     model->n_embd, model->n_head);
        if (model->positions == DL_POSITIONS_ROPE && (model->n_embd / model->n_head) % 2 != 0)
            CONFLICT("model.positions model.n_embd model.n_head",
                     "model.positions rope needs an even head size (model.n_embd / model.n_head = %d)",
                     model->n_embd / model->n_head);
        if (data->seq_len > model->max_seq_len)
            CONFLICT("data.seq_len model.max_seq_len", "data.seq_len (%d) must be <= model.max_seq_len (%d)",
                     data->seq_len, model->max_seq_len);
        /* A rank indexes the tokens of a micro-batch with int, and sizes activations as tokens × width: refuse
         * shapes whose products leave those ranges instead of running with wrapped (negative) sizes. 2^44 floats
         * (64 TiB) per activation is beyond any machine and keeps every byte count below 2^64. */
        double tokens = (double)batch_per_rank * (double)data->seq_len;
        if (tokens > (double)INT_MAX)
            CONFLICT("train.batch_per_rank data.seq_len",
                     "train.batch_per_rank (%d) x data.seq_len (%d) = %.0f tokens per micro-batch is more than a "
                     "rank can index (%d)", batch_per_rank, data->seq_len, tokens, INT_MAX);
        if (tokens * (double)model->n_embd > 17592186044416.0)
            CONFLICT("train.batch_per_rank data.seq_len model.n_embd",
                     "train.batch_per_rank (%d) x data.seq_len (%d) x model.n_embd (%d) = %.3g floats per "
                     "activation is more than any rank can hold (2^44)", batch_per_rank, data->seq_len,
                     model->n_embd, tokens * (double)model->n_embd);
    }
    if (!is_gpt && model->precision != DL_PRECISION_FP32)
        CONFLICT("model.precision model.kind",
                 "model.precision %s applies to gpt and dpo only; model.kind %s trains in fp32 (remove the key)",
                 enum_text(dl_model_config_keys, "precision", (int)model->precision), kind);
    if (!is_gpt && strcmp(data->tokenizer, "bytes") != 0)
        CONFLICT("model.kind data.tokenizer", "data.tokenizer applies to gpt and dpo models, not %s", kind);
    if (!data->tokenizer[0])
        CONFLICT("data.tokenizer", "data.tokenizer is empty (bytes, or the path of a tokenizer.json)");
    if (model->kind == DL_MODEL_DPO && !model->init_from[0])
        CONFLICT("model.kind model.init_from", "model.kind dpo needs model.init_from (the gpt checkpoint to tune)");
    if (!is_gpt && model->init_from[0])
        CONFLICT("model.kind model.init_from",
                 "model.init_from applies to model.kind gpt and dpo, not %s (to continue an %s run, use train.resume)",
                 kind, kind);
    if (dpo->label_smoothing > 0 && dpo->loss != DL_DPO_SIGMOID) {
        char ls[32];
        dl_cfg_format_double(dpo->label_smoothing, ls, sizeof ls);
        CONFLICT("dpo.label_smoothing dpo.loss", "dpo.label_smoothing (%s) applies only to dpo.loss sigmoid, not %s",
                 ls, enum_text(dl_dpo_config_keys, "loss", (int)dpo->loss));
    }
    if (dpo->reference == DL_DPO_REF_PRECOMPUTED && !dpo->reference_file[0])
        CONFLICT("dpo.reference dpo.reference_file",
                 "dpo.reference precomputed needs dpo.reference_file (made by dealer dpo precompute-ref)");
    if (comm->embeddings != DL_EMBEDDINGS_REPLICATED && model->kind != DL_MODEL_FM && model->kind != DL_MODEL_FFM)
        CONFLICT("comm.embeddings model.kind", "comm.embeddings %s applies to model.kind fm or ffm, not %s",
                 enum_text(dl_comm_config_keys, "embeddings", (int)comm->embeddings), kind);
    if (data->format != DL_FORMAT_AUTO) {
        dl_data_format want = dl_model_kind_data(model->kind);
        if (data->format != want)
            CONFLICT("data.format model.kind", "data.format %s does not fit model.kind %s (it reads %s)",
                     enum_text(dl_data_config_keys, "format", (int)data->format), kind,
                     enum_text(dl_data_config_keys, "format", (int)want));
    }
    return DL_OK;
}
