/* config_schema.c — the one table that declares every config key: section, name, type, where it lives in
 * dl_config, its default (spelt as in YAML), its range and a one-line doc.
 *
 * Everything else about keys is derived from this table: defaults are set by parsing `def` exactly as a user's
 * value would be (so a default is range-checked too, and `dealer config keys` prints what YAML would say), the
 * loader looks keys up here, and the YAML writer walks it in order. The lookups are linear scans: there are about
 * 90 keys, read a handful of times per run.
 *
 * Also here: the nearest-key suggestions for misspelt names (optimal string alignment distance, so a swapped pair
 * of letters counts as one edit) and the UTF-8 check for override strings. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/config_internal.h"
#include "core/names.h"

#define OFF(field) offsetof(dl_config, field)

/* Range shorthands: the last three members of a dl_cfg_key. */
#define ANY 0, 0.0, 0.0
#define GE(lo) DL_CFG_HAS_MIN, (lo), 0.0
#define GT(lo) DL_CFG_HAS_MIN | DL_CFG_MIN_OPEN, (lo), 0.0
#define IN(lo, hi) DL_CFG_HAS_MIN | DL_CFG_HAS_MAX, (lo), (hi)
#define IN_HALF_OPEN(lo, hi) DL_CFG_HAS_MIN | DL_CFG_HAS_MAX | DL_CFG_MAX_OPEN, (lo), (hi)
#define IN_OPEN(lo, hi) DL_CFG_HAS_MIN | DL_CFG_HAS_MAX | DL_CFG_MIN_OPEN | DL_CFG_MAX_OPEN, (lo), (hi)

#define KEY(sec, name, type, field, def, range, doc) {sec, name, type, OFF(field), 0, NULL, def, range, doc}
#define ENUM(sec, name, field, choices, def, doc) \
    {sec, name, DL_CFG_ENUM, OFF(field), 0, choices, def, ANY, doc}

static const char *const device_choices[] = {"auto", "cpu", "cuda", NULL};
static const char *const kind_choices[] = {"gpt", "fm", "ffm", "dpo", NULL};
static const char *const grad_ckpt_choices[] = {"none", "blocks", "every:K", NULL};
static const char *const positions_choices[] = {"learned", "rope", NULL};
static const char *const precision_choices[] = {"fp32", "bf16", NULL};
static const char *const format_choices[] = {"auto", "tokens", "clicks", "pairs", NULL};
static const char *const overlong_choices[] = {"truncate", "drop", "error", "split", NULL};
static const char *const optim_choices[] = {"adamw", "adagrad", "sgd", NULL};
static const char *const schedule_choices[] = {"constant", "cosine", "linear", "inverse_sqrt", NULL};
static const char *const resume_choices[] = {"auto", "never", "PATH", NULL};
static const char *const embeddings_choices[] = {"replicated", "sharded", "shared", NULL};
static const char *const level_choices[] = {"debug", "info", "warn", "error", NULL};
static const char *const dpo_loss_choices[] = {"sigmoid", "ipo", "hinge", NULL};
static const char *const dpo_reference_choices[] = {"model", "precomputed", NULL};

const char *const dl_cfg_sections[DL_CFG_NUM_SECTIONS + 1] = {"run",   "model", "data", "optim", "train",
                                                              "comm",  "ckpt",  "log",  "dpo",   NULL};

const dl_cfg_key dl_cfg_keys[] = {
    ENUM("", "device", device, device_choices, "auto",
         "where ranks compute: auto picks cuda when a GPU answers, else cpu"),

    KEY("run", "dir", DL_CFG_STRING, run.dir, "runs/default", ANY,
        "run directory: checkpoints, metrics.jsonl, TensorBoard events (created when missing)"),
    KEY("run", "seed", DL_CFG_I64, run.seed, "1337", GE(0),
        "seed of every random stream (init, dropout, shuffling): same seed and data, same run"),
    KEY("run", "overwrite", DL_CFG_BOOL, run.overwrite, "false", ANY,
        "with train.resume=never: delete the checkpoints, metrics.jsonl and events an old run left in run.dir and "
        "start over (false: such a run.dir is refused)"),

    ENUM("model", "kind", model.kind, kind_choices, "gpt",
         "gpt (decoder-only transformer), fm, ffm (click models) or dpo (preference tuning of a gpt)"),
    {"model", "checkpoint", DL_CFG_GRAD_CKPT, OFF(model.checkpoint), OFF(model.checkpoint_every), grad_ckpt_choices,
     "none", ANY,
     "gradient checkpointing: none, blocks (recompute each block in backward) or every:K (keep 1 block input in K)"},
    KEY("model", "init_from", DL_CFG_STRING, model.init_from, "", ANY,
        "gpt/dpo: weights that start the run: a dealer checkpoint or run directory, a .safetensors file or a "
        "Hugging Face model directory (dpo: the gpt to tune); empty: random init"),
    KEY("model", "init_std", DL_CFG_FLOAT, model.init_std, "0.02", GE(0),
        "gpt: standard deviation of the normal weight init"),
    KEY("model", "vocab_size", DL_CFG_INT, model.vocab_size, "50257", GE(1),
        "gpt: token ids are in [0, vocab_size) (256 for the byte-level tokenizer)"),
    KEY("model", "n_layer", DL_CFG_INT, model.n_layer, "12", IN(1, 1024), "gpt: transformer blocks"),
    KEY("model", "n_head", DL_CFG_INT, model.n_head, "12", GE(1), "gpt: attention heads per block"),
    KEY("model", "n_embd", DL_CFG_INT, model.n_embd, "768", GE(1),
        "gpt: model width (a multiple of n_head)"),
    KEY("model", "max_seq_len", DL_CFG_INT, model.max_seq_len, "1024", GE(1),
        "gpt: longest position the model has (learned position table size)"),
    ENUM("model", "positions", model.positions, positions_choices, "learned",
         "gpt: learned absolute position embeddings or rotary (rope)"),
    KEY("model", "rope_theta", DL_CFG_FLOAT, model.rope_theta, "10000", GT(0), "gpt: rotary base frequency"),
    ENUM("model", "precision", model.precision, precision_choices, "fp32",
         "gpt/dpo: bf16 runs every matmul on bf16 operands with fp32 accumulation (fp32 weights, optimizer, norms)"),
    KEY("model", "dropout", DL_CFG_FLOAT, model.dropout, "0", IN_HALF_OPEN(0, 1),
        "gpt: dropout probability (0: off)"),
    KEY("model", "tied_head", DL_CFG_BOOL, model.tied_head, "true", ANY,
        "gpt: the LM head shares the token embedding matrix"),
    KEY("model", "layernorm_eps", DL_CFG_FLOAT, model.layernorm_eps, "1e-5", GT(0), "gpt: LayerNorm epsilon"),
    KEY("model", "k", DL_CFG_INT, model.k, "4", IN(1, 4096), "fm/ffm: latent dimension"),
    KEY("model", "hash_buckets", DL_CFG_I64, model.hash_buckets, "1048576", IN(1, 2147483647.0),
        "fm/ffm: feature ids are hashed into this many table rows (32-bit row indices: below 2^31)"),
    KEY("model", "num_fields", DL_CFG_INT, model.num_fields, "39", IN(1, 65536),
        "ffm: fields (field ids are in [0, num_fields))"),
    KEY("model", "linear_terms", DL_CFG_BOOL, model.linear_terms, "true", ANY,
        "fm/ffm: add a bias and a linear weight per feature (libffm has none: false matches it)"),
    KEY("model", "normalize", DL_CFG_BOOL, model.normalize, "true", ANY,
        "fm/ffm: scale each row's values to unit L2 norm (libffm's instance normalisation)"),

    KEY("data", "train", DL_CFG_LIST, data.train, "", ANY,
        "training records: a path or a list of paths (*.tfrecord)"),
    KEY("data", "valid", DL_CFG_LIST, data.valid, "", ANY,
        "validation records: a path or a list of paths (empty: no evaluation)"),
    ENUM("data", "format", data.format, format_choices, "auto",
         "features the records hold: tokens, clicks, pairs; auto follows model.kind"),
    KEY("data", "seq_len", DL_CFG_INT, data.seq_len, "1024", GE(1), "gpt/dpo: tokens per row of a batch"),
    KEY("data", "packing", DL_CFG_BOOL, data.packing, "true", ANY,
        "gpt/dpo: pack several documents into a row (attention never crosses them); false: one per row"),
    KEY("data", "pack_window", DL_CFG_INT, data.pack_window, "64", IN(1, 1048576),
        "documents held back to find the best fit when packing"),
    ENUM("data", "overlong", data.overlong, overlong_choices, "truncate",
         "a document longer than seq_len: truncate it, drop it, fail (error) or split it into seq_len pieces"),
    KEY("data", "shuffle", DL_CFG_BOOL, data.shuffle, "true", ANY,
        "shuffle the record order each epoch (from run.seed and the epoch number)"),
    KEY("data", "skip_corrupt", DL_CFG_INT, data.skip_corrupt, "0", GE(0),
        "damaged records each rank may skip with a warning before the run fails (0: fail at the first)"),
    KEY("data", "prefetch", DL_CFG_INT, data.prefetch, "2", IN(0, 64),
        "batches prepared ahead by the loader (0: none)"),
    KEY("data", "tokenizer", DL_CFG_STRING, data.tokenizer, "bytes", ANY,
        "gpt/dpo: the tokenizer that made the records: bytes (byte-level) or a tokenizer.json; the run keeps a "
        "copy (run_dir/tokenizer.json), checkpoints record its hash, data made by another is refused"),

    ENUM("optim", "name", optim.name, optim_choices, "adamw", "optimizer: adamw, adagrad or sgd"),
    KEY("optim", "lr", DL_CFG_FLOAT, optim.lr, "0.0006", GT(0), "peak learning rate"),
    KEY("optim", "beta1", DL_CFG_FLOAT, optim.beta1, "0.9", IN_HALF_OPEN(0, 1), "adamw: first-moment decay"),
    KEY("optim", "beta2", DL_CFG_FLOAT, optim.beta2, "0.95", IN_HALF_OPEN(0, 1), "adamw: second-moment decay"),
    KEY("optim", "eps", DL_CFG_FLOAT, optim.eps, "1e-8", GT(0), "adamw/adagrad: denominator epsilon"),
    KEY("optim", "weight_decay", DL_CFG_FLOAT, optim.weight_decay, "0.1", GE(0),
        "adamw: decoupled weight decay; adagrad/sgd: L2 term added to the gradient (libffm's lambda)"),
    KEY("optim", "momentum", DL_CFG_FLOAT, optim.momentum, "0.9", IN_HALF_OPEN(0, 1), "sgd: momentum (0: plain)"),
    KEY("optim", "adagrad_init", DL_CFG_FLOAT, optim.adagrad_init, "1", GE(0),
        "adagrad: starting value of the squared-gradient sums (libffm: 1)"),
    KEY("optim", "grad_clip", DL_CFG_FLOAT, optim.grad_clip, "1", GE(0),
        "clip the global gradient norm to this (0: no clipping)"),
    ENUM("optim", "schedule", optim.schedule, schedule_choices, "cosine",
         "learning-rate schedule after warm-up: constant, cosine, linear or inverse_sqrt decay"),
    KEY("optim", "warmup_steps", DL_CFG_INT, optim.warmup_steps, "0", GE(0),
        "steps of linear warm-up from 0 to optim.lr"),
    KEY("optim", "min_lr_ratio", DL_CFG_FLOAT, optim.min_lr_ratio, "0.1", IN(0, 1),
        "cosine/linear: final learning rate as a fraction of optim.lr"),

    KEY("train", "steps", DL_CFG_I64, train.steps, "5000", GE(1),
        "optimizer steps to run (the run ends earlier when train.epochs is reached)"),
    KEY("train", "epochs", DL_CFG_INT, train.epochs, "0", GE(0),
        "passes over data.train (0: no limit, train.steps decides)"),
    KEY("train", "batch_per_rank", DL_CFG_INT, train.batch_per_rank, "8", GE(1),
        "rows per rank per micro-batch: sequences of seq_len tokens (gpt), click rows (fm/ffm), pairs (dpo)"),
    KEY("train", "grad_accum", DL_CFG_INT, train.grad_accum, "1", GE(1), "micro-batches per optimizer step"),
    KEY("train", "eval_every", DL_CFG_INT, train.eval_every, "500", GE(0),
        "evaluate on data.valid every this many steps (0: only after each epoch and at the end)"),
    KEY("train", "eval_steps", DL_CFG_INT, train.eval_steps, "20", GE(0),
        "batches per evaluation (0: all of data.valid)"),
    {"train", "resume", DL_CFG_RESUME, OFF(train.resume), OFF(train.resume_path), resume_choices, "auto", ANY,
     "auto: continue from run.dir's latest checkpoint if any; never: start afresh; or a checkpoint path"},
    KEY("train", "max_bad_steps", DL_CFG_INT, train.max_bad_steps, "10", GE(0),
        "consecutive steps with a non-finite loss or gradient skipped before the run fails"),
    KEY("train", "early_stop", DL_CFG_BOOL, train.early_stop, "false", ANY,
        "stop when the validation loss stops improving and keep the best model (libffm's --auto-stop)"),
    KEY("train", "threads", DL_CFG_INT, train.threads, "0", IN(0, 4096),
        "CPU threads per rank (0: OpenMP's default)"),

    KEY("comm", "zero", DL_CFG_INT, comm.zero, "0", IN(0, 1),
        "1: shard the optimizer state across ranks (ZeRO-1); 0: every rank holds all of it"),
    KEY("comm", "bucket_mb", DL_CFG_FLOAT, comm.bucket_mb, "25", IN_OPEN(0, 65536),
        "gradient bucket size in MiB: each full bucket starts its all-reduce during backward"),
    ENUM("comm", "embeddings", comm.embeddings, embeddings_choices, "replicated",
         "fm/ffm: replicated tables, sharded (rows owned by hash % world, exchanged all-to-all; exact), or shared "
         "(ranks of one node train one table in shared memory in place, lock-free as libffm's threads; not "
         "bit-reproducible)"),
    KEY("comm", "timeout_s", DL_CFG_INT, comm.timeout_s, "600", GE(1),
        "a collective taking longer than this aborts the job, naming the rank"),

    KEY("ckpt", "every", DL_CFG_INT, ckpt.every, "1000", GE(0),
        "write a checkpoint every this many steps (0: only at the end)"),
    KEY("ckpt", "keep", DL_CFG_INT, ckpt.keep, "3", GE(0), "newest checkpoints kept (0: keep all)"),
    KEY("ckpt", "keep_every", DL_CFG_INT, ckpt.keep_every, "0", GE(0),
        "also keep every checkpoint whose step is a multiple of this (0: none)"),
    KEY("ckpt", "compress", DL_CFG_BOOL, ckpt.compress, "false", ANY, "deflate-compress checkpoint datasets"),

    KEY("log", "every", DL_CFG_INT, log.every, "10", GE(1), "print a metrics line every this many steps"),
    KEY("log", "jsonl", DL_CFG_BOOL, log.jsonl, "true", ANY, "write run.dir/metrics.jsonl"),
    KEY("log", "tensorboard", DL_CFG_BOOL, log.tensorboard, "true", ANY,
        "write a TensorBoard event file in run.dir"),
    ENUM("log", "level", log.level, level_choices, "info", "log level: debug, info, warn or error"),

    KEY("dpo", "beta", DL_CFG_FLOAT, dpo.beta, "0.1", GT(0),
        "strength of the pull towards the reference model"),
    ENUM("dpo", "loss", dpo.loss, dpo_loss_choices, "sigmoid",
         "sigmoid (the DPO paper), ipo or hinge"),
    KEY("dpo", "label_smoothing", DL_CFG_FLOAT, dpo.label_smoothing, "0", IN_HALF_OPEN(0, 0.5),
        "sigmoid: assumed rate of flipped preference labels (conservative DPO)"),
    ENUM("dpo", "reference", dpo.reference, dpo_reference_choices, "model",
         "reference log-probs from a frozen copy of the model, or precomputed into dpo.reference_file"),
    KEY("dpo", "reference_file", DL_CFG_STRING, dpo.reference_file, "", ANY,
        "precomputed: the reference log-probs file (dealer dpo precompute-ref)"),
};

const int dl_cfg_num_keys = (int)(sizeof dl_cfg_keys / sizeof dl_cfg_keys[0]);

/* The "read by" column of the table above, kept beside it so that a key row stays one line: the model kinds that
 * read each key. A key missing here is read by every kind. Loading a config file refuses a key set (to a value other
 * than its default) that its model.kind does not read, since the run would silently ignore it; `dealer config keys`
 * prints this column. */
enum {
    GPT = 1u << DL_MODEL_GPT,
    FM = 1u << DL_MODEL_FM,
    FFM = 1u << DL_MODEL_FFM,
    DPO = 1u << DL_MODEL_DPO,
};
static const struct {
    const char *key;
    unsigned kinds;
} kind_readers[] = {
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
};

unsigned dl_cfg_key_kinds(int index) {
    if (index < 0 || index >= dl_cfg_num_keys)
        return 0;
    char name[96];
    dl_cfg_key_name(&dl_cfg_keys[index], name, sizeof name);
    for (size_t i = 0; i < sizeof kind_readers / sizeof kind_readers[0]; i++)
        if (strcmp(kind_readers[i].key, name) == 0)
            return kind_readers[i].kinds;
    return DL_CFG_ALL_KINDS;
}

int dl_cfg_kind_rows_unknown(char *buf, size_t cap) {
    int unknown = 0;
    if (buf && cap)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof kind_readers / sizeof kind_readers[0]; i++) {
        if (dl_cfg_find_dotted(kind_readers[i].key) >= 0 && kind_readers[i].kinds != 0)
            continue;
        if (buf && cap && !unknown)
            snprintf(buf, cap, "%s", kind_readers[i].key);
        unknown++;
    }
    return unknown;
}

void dl_cfg_kinds_text(unsigned kinds, char *buf, size_t cap) {
    if (kinds == DL_CFG_ALL_KINDS) {
        snprintf(buf, cap, "all");
        return;
    }
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; kind_choices[k]; k++)
        if (kinds & (1u << k) && used < cap)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? "," : "", kind_choices[k]);
}

/* Settings that may differ between the ranks of one run: they change what a rank prints, not what it computes. */
static const char *const rank_local_keys[] = {"log.level", NULL};

int dl_cfg_key_rank_local(int index) {
    if (index < 0 || index >= dl_cfg_num_keys)
        return 0;
    char name[96];
    dl_cfg_key_name(&dl_cfg_keys[index], name, sizeof name);
    for (int i = 0; rank_local_keys[i]; i++)
        if (strcmp(rank_local_keys[i], name) == 0)
            return 1;
    return 0;
}

/* Enum fields are written through an int pointer. */
_Static_assert(sizeof(dl_model_kind) == sizeof(int), "config enums must be int-sized");

int dl_cfg_find(const char *section, const char *name) {
    for (int i = 0; i < dl_cfg_num_keys; i++)
        if (strcmp(dl_cfg_keys[i].section, section) == 0 && strcmp(dl_cfg_keys[i].name, name) == 0)
            return i;
    return -1;
}

int dl_cfg_find_section(const char *name) {
    for (int i = 0; dl_cfg_sections[i]; i++)
        if (strcmp(dl_cfg_sections[i], name) == 0)
            return i;
    return -1;
}

int dl_cfg_find_dotted(const char *dotted) {
    const char *dot = strchr(dotted, '.');
    if (!dot)
        return dl_cfg_find("", dotted);
    size_t n = (size_t)(dot - dotted);
    char section[32];
    if (n >= sizeof section)
        return -1;
    memcpy(section, dotted, n);
    section[n] = '\0';
    return dl_cfg_find(section, dot + 1);
}

void dl_cfg_key_name(const dl_cfg_key *key, char *buf, size_t cap) {
    if (key->section[0])
        snprintf(buf, cap, "%s.%s", key->section, key->name);
    else
        snprintf(buf, cap, "%s", key->name);
}

int dl_cfg_edit_distance(const char *a, const char *b) {
    enum { MAXLEN = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n >= MAXLEN || m >= MAXLEN)
        return 1000;
    /* Three rows of the dynamic-programming table: two back for transpositions. */
    int rows[3][MAXLEN + 1];
    int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= m; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int cost = ca != cb;
            int best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        int *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[m];
}

void dl_cfg_suggest_key(const char *section, const char *name, char *buf, size_t cap) {
    buf[0] = '\0';
    /* The right name in the wrong section first: optim.steps -> train.steps, run.device -> device. */
    for (int i = 0; i < dl_cfg_num_keys; i++) {
        if (strcmp(dl_cfg_keys[i].name, name) == 0 && strcmp(dl_cfg_keys[i].section, section) != 0) {
            char full[96];
            dl_cfg_key_name(&dl_cfg_keys[i], full, sizeof full);
            snprintf(buf, cap, " (did you mean '%s'?)", full);
            return;
        }
    }
    int best = -1, best_d = 1 << 30;
    for (int i = 0; i < dl_cfg_num_keys; i++) {
        if (strcmp(dl_cfg_keys[i].section, section) != 0)
            continue;
        int d = dl_cfg_edit_distance(name, dl_cfg_keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    if (best >= 0 && dl_name_close_enough(name, dl_cfg_keys[best].name, best_d))
        snprintf(buf, cap, " (did you mean '%s'?)", dl_cfg_keys[best].name);
}

void dl_cfg_suggest_section(const char *name, char *buf, size_t cap) {
    buf[0] = '\0';
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; dl_cfg_sections[i]; i++) {
        int d = dl_cfg_edit_distance(name, dl_cfg_sections[i]);
        if (d < best_d) {
            best_d = d;
            best = dl_cfg_sections[i];
        }
    }
    for (int i = 0; i < dl_cfg_num_keys; i++) {
        if (dl_cfg_keys[i].section[0])
            continue;
        int d = dl_cfg_edit_distance(name, dl_cfg_keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = dl_cfg_keys[i].name;
        }
    }
    if (best && dl_name_close_enough(name, best, best_d)) {
        snprintf(buf, cap, " (did you mean '%s'?)", best);
        return;
    }
    /* A key written at the top level: lr -> optim.lr. */
    for (int i = 0; i < dl_cfg_num_keys; i++) {
        if (dl_cfg_keys[i].section[0] && strcmp(dl_cfg_keys[i].name, name) == 0) {
            snprintf(buf, cap, " (did you mean '%s.%s'?)", dl_cfg_keys[i].section, name);
            return;
        }
    }
}

int dl_cfg_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int extra;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) {
            extra = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i <= (size_t)extra)
            return 0;
        for (int k = 1; k <= extra; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += (size_t)extra + 1;
    }
    return 1;
}
