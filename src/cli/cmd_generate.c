/* cmd_generate.c — `dealer generate CKPT`: sample text from a GPT checkpoint.
 *
 * The prompt is encoded with the run's tokenizer (run_dir/tokenizer.json, or byte-level when the run had none;
 * --tokenizer names another, which must have the hash the checkpoint recorded) and sampled tokens are decoded as a
 * stream that only ever prints whole UTF-8 characters (a byte-level token or a BPE token may end mid-character;
 * its bytes wait for the rest). Each new token runs
 * the model over the context (the last model.max_seq_len tokens) and samples from the last position's logits with
 * temperature and top-k, drawing from Philox(seed) so the same seed gives the same text on every machine. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "train/run_config.h"
#include "core/philox.h"
#include "ckpt/checkpoint.h"
#include "data/tokenizer.h"
#include "models/gpt.h"

static void usage(FILE *out) {
    fprintf(out, "usage: dealer generate CKPT [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]\n"
                 "                        [--device auto|cpu|cuda] [--tokenizer PATH]\n\n"
                 "Samples N tokens (default 200) after TEXT (default a newline) from the GPT in CKPT\n"
                 "(run_dir/ckpt/step_NNNNNNNN.h5, run_dir/ckpt/latest, or a run directory, which means its latest\n"
                 "checkpoint).\n"
                 "--temperature 0 picks the most likely token every time; --top-k 0 samples from all tokens.\n"
                 "The prompt is encoded and the output decoded with the run's tokenizer (run_dir/tokenizer.json, or\n"
                 "byte-level); --tokenizer PATH names it when the checkpoint sits elsewhere. Output is printed as it\n"
                 "is sampled, never half a UTF-8 character.\n");
}

typedef struct options {
    const char *ckpt, *prompt, *device, *tokenizer;
    long tokens, top_k;
    double temperature;
    unsigned long long seed;
} options;

enum { OPT_PROMPT = DL_CLI_LONG_ONLY, OPT_DEVICE, OPT_TOKENIZER, OPT_TOKENS, OPT_TOP_K, OPT_TEMPERATURE, OPT_SEED };
static const dl_cli_option generate_options[] = {{"prompt", OPT_PROMPT, "a text"},
                                                 {"device", OPT_DEVICE, "a value (auto, cpu or cuda)"},
                                                 {"tokenizer", OPT_TOKENIZER, "a path"},
                                                 {"tokens", OPT_TOKENS, "an integer in [1, 1000000]"},
                                                 {"top-k", OPT_TOP_K, "a non-negative integer"},
                                                 {"temperature", OPT_TEMPERATURE, "a number in [0, 100]"},
                                                 {"seed", OPT_SEED, "a non-negative integer"},
                                                 {NULL, 0, NULL}};

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){NULL, "\n", "cpu", NULL, 200, 40, 0.8, 1};
    dl_cli_args a;
    dl_cli_args_init(&a, "generate", generate_options, argc, argv);
    for (int id, rc = 0; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        uint64_t count = 0;
        if (id == DL_CLI_POSITIONAL) {
            if (o->ckpt) {
                fprintf(stderr, "dealer generate: unexpected argument '%s' (one checkpoint only)\n", a.arg);
                return -1;
            }
            o->ckpt = a.arg;
        } else if (id == OPT_PROMPT) {
            o->prompt = a.arg;
        } else if (id == OPT_DEVICE) {
            o->device = a.arg;
        } else if (id == OPT_TOKENIZER) {
            o->tokenizer = a.arg;
        } else if (id == OPT_TOKENS) {
            rc = dl_cli_uint(&a, 1, 1000000, &count);
            o->tokens = (long)count;
        } else if (id == OPT_TOP_K) {
            rc = dl_cli_uint(&a, 0, LONG_MAX, &count);
            o->top_k = (long)count;
        } else if (id == OPT_TEMPERATURE) {
            rc = dl_cli_number(&a, 0, 100, 0, &o->temperature);
        } else if (id == OPT_SEED) {
            rc = dl_cli_uint(&a, 0, UINT64_MAX, &count);
            o->seed = count;
        } else {
            return -1;
        }
        if (rc)
            return -1;
    }
    if (!o->ckpt) {
        fprintf(stderr, "dealer generate: missing CKPT (see --help)\n");
        return -1;
    }
    return 0;
}

/* Picks a token from logits[V]: greedy at temperature 0, else softmax(logits/T) restricted to the top k. */
static int sample(const float *logits, int V, double temperature, long top_k, dl_rng *rng, double *probs) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best])
            best = v;
    if (temperature == 0)
        return best;
    float threshold = -FLT_MAX;
    if (top_k > 0 && top_k < V) { /* the k-th largest logit: selection by repeated max over a small V */
        float *copy = malloc((size_t)V * sizeof(float));
        if (copy) {
            memcpy(copy, logits, (size_t)V * sizeof(float));
            for (long k = 0; k < top_k; k++) {
                int m = 0;
                for (int v = 1; v < V; v++)
                    if (copy[v] > copy[m])
                        m = v;
                threshold = copy[m];
                copy[m] = -FLT_MAX;
            }
            free(copy);
        }
    }
    double total = 0;
    for (int v = 0; v < V; v++) {
        probs[v] = logits[v] >= threshold ? exp(((double)logits[v] - (double)logits[best]) / temperature) : 0.0;
        total += probs[v];
    }
    double u = dl_rng_uniform_double(rng) * total, acc = 0;
    for (int v = 0; v < V; v++) {
        acc += probs[v];
        if (u < acc && probs[v] > 0)
            return v;
    }
    return best;
}

static dl_status generate(const options *o) {
    char path[4300];
    DL_CHECK(dl_ckpt_resolve(o->ckpt, NULL, path, sizeof path));
    dl_ckpt_meta meta;
    DL_CHECK(dl_ckpt_read_meta(path, &meta));
    dl_config cfg;
    dl_status s = dl_config_load_string(&cfg, meta.config_yaml, strlen(meta.config_yaml), path);
    free(meta.config_yaml);
    DL_CHECK_CTX(s, "reading the config stored in %s", path);
    dl_tokenizer *tok = NULL;
    char tok_name[4400];
    if (strcmp(meta.model_kind, "gpt") == 0)
        s = dl_cli_checkpoint_tokenizer(path, meta.tokenizer_hash, o->tokenizer, &tok, tok_name, sizeof tok_name);
    if (s == DL_OK && tok && dl_tokenizer_vocab_size(tok) > cfg.model.vocab_size &&
        dl_tokenizer_kind_of(tok) == DL_TOKENIZER_BPE)
        s = DL_FAIL(DL_ERR_INVALID, "tokenizer %s has %d ids but the model's vocabulary is %d", tok_name,
                    (int)dl_tokenizer_vocab_size(tok), cfg.model.vocab_size);
    if (s != DL_OK) {
        dl_config_free(&cfg);
        return s;
    }
    if (strcmp(meta.model_kind, "gpt") != 0) {
        dl_config_free(&cfg);
        return DL_FAIL(DL_ERR_INVALID, "%s holds a %s model; dealer generate needs a gpt checkpoint", path,
                       meta.model_kind);
    }
    dl_gpt_config gc = {cfg.model.vocab_size, cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd,
                        cfg.model.max_seq_len, cfg.model.positions == DL_POSITIONS_ROPE, (float)cfg.model.rope_theta,
                        0, 0}; /* fp32 whatever model.precision trained it: the checkpoint holds fp32 weights */
    dl_config_free(&cfg);
    int context = gc.max_seq_len;
    dl_backend be;
    s = dl_backend_open(&be, o->device, 0);
    if (s != DL_OK) {
        dl_tokenizer_free(tok);
        return s;
    }
    dl_gpt *model = NULL;
    size_t numel = 0;
    float *host = NULL, *logits = NULL;
    double *probs = NULL;
    int32_t *tokens = NULL, *targets = NULL, *positions = NULL;
    s = dl_gpt_create(&model, &gc, &be, context, 1);
    if (s == DL_OK) {
        numel = dl_gpt_num_params(model);
        host = malloc(numel * sizeof(float));
        logits = malloc((size_t)gc.vocab_size * sizeof(float));
        probs = malloc((size_t)gc.vocab_size * sizeof(double));
        tokens = malloc((size_t)context * sizeof(int32_t));
        targets = malloc((size_t)context * sizeof(int32_t));
        positions = malloc((size_t)context * sizeof(int32_t));
        if (!host || !logits || !probs || !tokens || !targets || !positions)
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate generation buffers");
    }
    if (s == DL_OK) {
        dl_ckpt_tensors t = {dl_gpt_params(model), host, 0, NULL, NULL, 0, 0};
        uint8_t *cursor = NULL;
        size_t cursor_len = 0;
        s = dl_ckpt_load(path, &t, 0, 0, &cursor, &cursor_len);
        free(cursor);
        if (s == DL_OK)
            s = dl_mem_to_device(&be, dl_gpt_param_data(model), host, numel * sizeof(float));
    }
    /* The running text: the prompt's tokens, then samples; the model sees the last `context` of them. */
    dl_i32_array prompt = {0};
    const char *prompt_text = o->prompt[0] ? o->prompt : "\n";
    if (s == DL_OK)
        s = dl_tokenizer_encode(tok, prompt_text, strlen(prompt_text), &prompt);
    size_t len = prompt.len, cap = len + (size_t)o->tokens + 1;
    int32_t *text = s == DL_OK ? malloc(cap * sizeof(int32_t)) : NULL;
    if (s == DL_OK && !text)
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the text buffer");
    for (size_t i = 0; s == DL_OK && i < len; i++) {
        text[i] = prompt.data[i];
        if (text[i] >= gc.vocab_size)
            s = DL_FAIL(DL_ERR_INVALID, "prompt token %zu (id %d) is outside the model's vocabulary of %d", i,
                        (int)text[i], gc.vocab_size);
    }
    if (s == DL_OK && len == 0)
        s = DL_FAIL(DL_ERR_INVALID, "the prompt encodes to no tokens (tokenizer %s)", tok_name);
    if (s == DL_OK && o->prompt[0])
        fwrite(o->prompt, 1, strlen(o->prompt), stdout);
    dl_i32_array_free(&prompt);
    dl_token_stream stream;
    dl_token_stream_init(&stream);
    dl_rng rng;
    dl_rng_init(&rng, o->seed, (uint64_t)DL_STREAM_SAMPLE << 32);
    for (long k = 0; s == DL_OK && k < o->tokens; k++) {
        int n_ctx = len < (size_t)context ? (int)len : context;
        const int32_t *window = text + len - (size_t)n_ctx;
        for (int i = 0; i < n_ctx; i++) {
            tokens[i] = window[i];
            targets[i] = -1;
            positions[i] = i;
        }
        int32_t cu[2] = {0, n_ctx};
        dl_gpt_inputs in = {tokens, targets, positions, cu, 1, n_ctx};
        double loss;
        int64_t count;
        s = dl_gpt_forward(model, &in, &loss, &count);
        if (s == DL_OK)
            s = dl_mem_to_host(&be, logits, dl_gpt_logits(model) + (size_t)(n_ctx - 1) * (size_t)gc.vocab_size,
                               (size_t)gc.vocab_size * sizeof(float));
        if (s == DL_OK) {
            /* Ids past the tokenizer's (a vocabulary padded to a round size) are never sampled: no text has them. */
            int usable = gc.vocab_size < dl_tokenizer_vocab_size(tok) ? gc.vocab_size : dl_tokenizer_vocab_size(tok);
            int next = sample(logits, usable, o->temperature, o->top_k, &rng, probs);
            text[len++] = next;
            const char *piece;
            size_t piece_len;
            s = dl_token_stream_push(&stream, tok, next, &piece, &piece_len);
            if (s == DL_OK) {
                fwrite(piece, 1, piece_len, stdout);
                fflush(stdout);
            }
        }
    }
    if (s == DL_OK) {
        const char *piece;
        size_t piece_len;
        s = dl_token_stream_finish(&stream, &piece, &piece_len);
        if (s == DL_OK)
            fwrite(piece, 1, piece_len, stdout);
        putchar('\n');
    }
    dl_token_stream_free(&stream);
    dl_tokenizer_free(tok);
    free(text);
    free(host), free(logits), free(probs), free(tokens), free(targets), free(positions);
    dl_gpt_destroy(model);
    dl_backend_close(&be);
    return s;
}

int dl_cmd_generate(int argc, char **argv) {
    if (dl_cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    options o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    dl_status s = generate(&o);
    return s == DL_OK ? 0 : dl_cli_report("generate", s);
}
