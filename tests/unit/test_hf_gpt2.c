/* test_hf_gpt2.c — GPT-2 weights from Hugging Face: parity with `transformers` on the committed fixture
 * (tests/fixtures/gpt2-tiny, made by tests/fixtures/make_gpt2_fixture.py), the safetensors reader against damaged
 * files, config.json settings dealer cannot represent, and each way a GPT-2 file can fail to fit the configured model.
 *
 * Tolerances. The fixture's logits are transformers' float32 CPU results; dealer computes the same float32 formulas
 * (LayerNorm, tanh GELU, softmax attention scaled by 1/√16) but in another order: OpenBLAS and torch block their
 * dot products differently, and dealer's attention uses an online softmax. Each logit passes through two blocks
 * of dot products over 64 and 256 terms; float32 rounding (ε = 6e-8) accumulated over such sums gives differences
 * of a few ulps of the largest values, about 1e-6 of max |logit| here. 1e-5 of max |logit| (about 170 ulps) leaves
 * room for a different BLAS kernel while any mapping error (an untransposed Conv1D weight, swapped q/k/v, a missing
 * bias, the erf GELU) moves logits by 1e-2 or more. The mean loss gets the same 1e-5, relatively. Greedy tokens must
 * be equal: the fixture's smallest top-1/top-2 gap on the path is 0.035, far above that rounding. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "ckpt/hf_gpt2.h"
#include "ckpt/safetensors.h"
#include "ckpt/weights.h"
#include "models/gpt.h"
#include "models/gpt_init.h"

static char fixture[600];

static const char *fixture_path(const char *name) {
    static char path[700];
    snprintf(path, sizeof path, "%s/%s", fixture, name);
    return path;
}

static char *temp_path(const char *name) {
    char *path = malloc(512);
    assert_non_null(path);
    snprintf(path, 512, "/tmp/dealer_test_hf_%d_%s", (int)getpid(), name);
    return path;
}

static dl_gpt_config fixture_config(void) {
    return (dl_gpt_config){.vocab_size = 512, .n_layer = 2, .n_head = 4, .n_embd = 64, .max_seq_len = 64,
                           .rope = 0, .rope_theta = 10000.0f, .checkpoint_every = 0};
}

/* The fixture model, imported through model.init_from's path (a Hugging Face directory). */
static dl_gpt *load_fixture(const dl_backend *be, const char *spec) {
    dl_gpt_config gc = fixture_config();
    dl_weights_source src;
    DL_EXPECT_OK(dl_gpt_init_resolve(spec, &gc, &src));
    dl_gpt *gpt = NULL;
    DL_EXPECT_OK(dl_gpt_create(&gpt, &gc, be, 64, 1));
    DL_EXPECT_OK(dl_gpt_init_load(&src, be, gpt, NULL));
    return gpt;
}

static json_t *expected(void) {
    json_error_t err;
    json_t *root = json_load_file(fixture_path("expected.json"), 0, &err);
    if (!root)
        DL_TEST_FAIL("cannot read %s: %s", fixture_path("expected.json"), err.text);
    return root;
}

static int ids_of(json_t *array, int32_t *out, int cap) {
    int n = (int)json_array_size(array);
    assert_true(n <= cap);
    for (int i = 0; i < n; i++)
        out[i] = (int32_t)json_integer_value(json_array_get(array, (size_t)i));
    return n;
}

/* Forward over one document; the loss is over next-token targets (the last position has none). */
static double forward(dl_gpt *gpt, const int32_t *tokens, int n, int with_targets, int64_t *count) {
    int32_t targets[64], positions[64], cu[2] = {0, n};
    for (int i = 0; i < n; i++) {
        targets[i] = with_targets && i + 1 < n ? tokens[i + 1] : -1;
        positions[i] = i;
    }
    dl_gpt_inputs in = {tokens, targets, positions, cu, 1, n};
    double loss = 0;
    int64_t c = 0;
    DL_EXPECT_OK(dl_gpt_forward(gpt, &in, &loss, &c));
    if (count)
        *count = c;
    return loss;
}

static void imported_logits_and_loss_match_transformers(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_gpt *gpt = load_fixture(&be, fixture);
    json_t *root = expected();
    dl_st_file *lf = NULL;
    DL_EXPECT_OK(dl_st_open(&lf, fixture_path("expected_logits.safetensors")));
    json_t *seqs = json_object_get(root, "sequences"), *seq;
    size_t k;
    assert_int_equal(json_array_size(seqs), 3);
    json_array_foreach(seqs, k, seq) {
        int32_t tokens[64];
        int n = ids_of(json_object_get(seq, "tokens"), tokens, 64);
        int64_t count = 0;
        double mean = forward(gpt, tokens, n, 1, &count) / (double)count;
        double want_loss = json_real_value(json_object_get(seq, "loss"));
        if (fabs(mean - want_loss) > 1e-5 * fabs(want_loss))
            DL_TEST_FAIL("sequence %zu: loss %.9g, transformers %.9g", k, mean, want_loss);
        char name[32];
        snprintf(name, sizeof name, "logits.%zu", k);
        const dl_st_tensor *t = dl_st_find(lf, name);
        assert_non_null(t);
        assert_int_equal(t->numel, (size_t)n * 512);
        float *want = dl_test_alloc_f(t->numel), *got = dl_test_alloc_f(t->numel);
        DL_EXPECT_OK(dl_st_read_f32(lf, t, want));
        DL_EXPECT_OK(dl_mem_to_host(&be, got, dl_gpt_logits(gpt), t->numel * sizeof(float)));
        double max_ref = 0, max_diff = 0;
        for (size_t i = 0; i < t->numel; i++) {
            max_ref = fmax(max_ref, fabs(want[i]));
            max_diff = fmax(max_diff, fabs((double)got[i] - want[i]));
        }
        if (!(max_diff <= 1e-5 * max_ref))
            DL_TEST_FAIL("sequence %zu: max |logit - transformers| = %.3g, over 1e-5 of max |logit| %.3g", k,
                         max_diff, max_ref);
        print_message("sequence %zu: %d tokens, loss %.9g (transformers %.9g), max logit diff %.3g of %.3g\n", k, n,
                      mean, want_loss, max_diff, max_ref);
        free(want);
        free(got);
    }
    dl_st_close(lf);
    json_decref(root);
    dl_gpt_destroy(gpt);
    dl_backend_close(&be);
}

static int argmax_last(const dl_backend *be, dl_gpt *gpt, int n) {
    float row[512];
    DL_EXPECT_OK(dl_mem_to_host(be, row, dl_gpt_logits(gpt) + (size_t)(n - 1) * 512, sizeof row));
    int best = 0;
    for (int v = 1; v < 512; v++)
        if (row[v] > row[best])
            best = v;
    return best;
}

static void greedy_continuation_matches_transformers(void **state) {
    (void)state;
    dl_backend be = dl_test_open_cpu();
    dl_gpt *gpt = load_fixture(&be, fixture);
    json_t *root = expected(), *greedy = json_object_get(root, "greedy");
    int32_t seq[64], want[64];
    int n = ids_of(json_object_get(greedy, "prompt"), seq, 64);
    int m = ids_of(json_object_get(greedy, "continuation"), want, 64);
    assert_true(m >= 8 && n + m <= 64);
    for (int i = 0; i < m; i++) {
        forward(gpt, seq, n, 0, NULL);
        int next = argmax_last(&be, gpt, n);
        if (next != want[i])
            DL_TEST_FAIL("greedy token %d: dealer %d, transformers %d", i, next, want[i]);
        seq[n++] = next;
    }
    json_decref(root);
    dl_gpt_destroy(gpt);
    dl_backend_close(&be);
}

/* ---- GPT-2 files that do not fit ------------------------------------------------------------------------------- */

typedef enum edit { KEEP, DROP, RESHAPE, RENAME } edit;

/* Copies the fixture's model.safetensors to `out`, applying edit to tensor `target` (RENAME: to new_name), with
 * `strip` removing the "transformer." prefix from every name and extra tensors appended (name, data of wte's
 * shape). */
static void rewrite(const char *out, const char *target, edit how, const char *new_name, int strip,
                    const char *extra, int extra_differs) {
    dl_st_file *f = NULL;
    DL_EXPECT_OK(dl_st_open(&f, fixture_path("model.safetensors")));
    size_t n = dl_st_count(f);
    dl_st_entry *entries = dl_test_calloc((n + 1) * sizeof *entries);
    char (*names)[DL_ST_NAME_MAX] = dl_test_calloc((n + 1) * sizeof *names);
    const dl_st_tensor **src = dl_test_calloc((n + 1) * sizeof *src);
    size_t count = 0;
    const dl_st_tensor *wte = dl_st_find(f, "transformer.wte.weight");
    for (size_t i = 0; i < n; i++) {
        const dl_st_tensor *t = dl_st_at(f, i);
        int hit = target && strcmp(t->name, target) == 0;
        if (hit && how == DROP)
            continue;
        const char *name = hit && how == RENAME ? new_name : t->name;
        snprintf(names[count], DL_ST_NAME_MAX, "%s", strip && !strncmp(name, "transformer.", 12) ? name + 12 : name);
        entries[count].name = names[count];
        entries[count].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++)
            entries[count].shape[d] = t->shape[d];
        if (hit && how == RESHAPE) { /* stored like nn.Linear ([out, in]) instead of Conv1D */
            entries[count].shape[0] = t->shape[1];
            entries[count].shape[1] = t->shape[0];
        }
        src[count++] = t;
    }
    if (extra) {
        snprintf(names[count], DL_ST_NAME_MAX, "%s", extra);
        entries[count].name = names[count];
        entries[count].ndim = 2;
        entries[count].shape[0] = wte->shape[0];
        entries[count].shape[1] = wte->shape[1];
        src[count++] = wte;
    }
    dl_st_writer w;
    DL_EXPECT_OK(dl_st_write_begin(&w, out, entries, count, NULL, NULL, 0));
    for (size_t i = 0; i < count; i++) {
        float *data = dl_test_alloc_f(src[i]->numel);
        DL_EXPECT_OK(dl_st_read_f32(f, src[i], data));
        if (extra && i == count - 1 && extra_differs)
            data[7] += 1.0f;
        DL_EXPECT_OK(dl_st_write_tensor(&w, data, src[i]->numel));
        free(data);
    }
    DL_EXPECT_OK(dl_st_write_commit(&w));
    free(entries);
    free(names);
    free(src);
    dl_st_close(f);
}

/* Loads `path` (a bare GPT-2 safetensors file) into the fixture's shape; returns the status. */
static dl_status try_load(const char *path, float **host_out) {
    dl_backend be = dl_test_open_cpu();
    dl_gpt_config gc = fixture_config();
    dl_gpt *gpt = NULL;
    DL_EXPECT_OK(dl_gpt_create(&gpt, &gc, &be, 1, 1));
    dl_weights_source src;
    dl_status s = dl_gpt_init_resolve(path, &gc, &src);
    float *host = dl_test_calloc(dl_gpt_num_params(gpt) * sizeof(float));
    if (s == DL_OK)
        s = dl_weights_load(&src, dl_gpt_params(gpt), host);
    if (host_out)
        *host_out = host;
    else
        free(host);
    dl_gpt_destroy(gpt);
    dl_backend_close(&be);
    return s;
}

static void expect_failure(const char *path, dl_status want, const char *fragment) {
    dl_status s = try_load(path, NULL);
    if (s != want || !strstr(dl_error_message(), fragment))
        DL_TEST_FAIL("%s: status %d (want %d), message '%s' should hold '%s'", path, (int)s, (int)want,
                     dl_error_message(), fragment);
}

static void gpt2_files_that_do_not_fit_are_refused_by_name(void **state) {
    (void)state;
    char *path = temp_path("x.safetensors");
    float *reference = NULL, *bare = NULL, *tied = NULL;
    /* The fixture itself as a bare file (no config.json), then without the prefix: the same weights. */
    rewrite(path, NULL, KEEP, NULL, 0, NULL, 0);
    DL_EXPECT_OK(try_load(path, &reference));
    rewrite(path, NULL, KEEP, NULL, 1, NULL, 0);
    DL_EXPECT_OK(try_load(path, &bare));
    /* A saved tied head, and the mask buffers older transformers saved, are accepted. */
    rewrite(path, NULL, KEEP, NULL, 0, "lm_head.weight", 0);
    DL_EXPECT_OK(try_load(path, &tied));
    size_t numel = 0;
    {
        dl_backend be = dl_test_open_cpu();
        dl_gpt_config gc = fixture_config();
        dl_gpt *gpt = NULL;
        DL_EXPECT_OK(dl_gpt_create(&gpt, &gc, &be, 1, 1));
        numel = dl_gpt_num_params(gpt);
        dl_gpt_destroy(gpt);
        dl_backend_close(&be);
    }
    assert_memory_equal(reference, bare, numel * sizeof(float));
    assert_memory_equal(reference, tied, numel * sizeof(float));
    rewrite(path, NULL, KEEP, NULL, 0, "transformer.h.0.attn.bias", 0);
    DL_EXPECT_OK(try_load(path, NULL));

    rewrite(path, "transformer.h.1.attn.c_attn.weight", RESHAPE, NULL, 0, NULL, 0);
    expect_failure(path, DL_ERR_CONFIG, "transformer.h.1.attn.c_attn.weight is [192, 64] in the file, the model "
                                        "wants [64, 192]");
    rewrite(path, "transformer.ln_f.bias", DROP, NULL, 0, NULL, 0);
    expect_failure(path, DL_ERR_FORMAT, "transformer.ln_f.bias [64] is missing");
    rewrite(path, "transformer.h.1.mlp.c_fc.bias", RENAME, "transformer.h.1.mlp.c_fc.b", 0, NULL, 0);
    expect_failure(path, DL_ERR_FORMAT, "transformer.h.1.mlp.c_fc.bias [256] is missing");
    rewrite(path, NULL, KEEP, NULL, 0, "lm_head.weight", 1);
    expect_failure(path, DL_ERR_UNSUPPORTED, "lm_head.weight differs from transformer.wte.weight");
    /* A third layer: the shape check sees n_layer 3 in the tensors before any tensor is read. */
    rewrite(path, NULL, KEEP, NULL, 0, "transformer.h.2.ln_1.weight", 0);
    expect_failure(path, DL_ERR_CONFIG, "model.n_layer is 2 in this config but 3");
    /* An unknown name inside the configured layers is refused too. */
    rewrite(path, NULL, KEEP, NULL, 0, "transformer.h.1.attn.rotary", 0);
    expect_failure(path, DL_ERR_CONFIG, "tensor transformer.h.1.attn.rotary is not part of the configured GPT-2");

    /* The configured shape against the directory's config.json: exit-2 errors naming the key and both values. */
    dl_gpt_config gc = fixture_config();
    dl_weights_source src;
    gc.n_embd = 32;
    assert_int_equal(dl_gpt_init_resolve(fixture, &gc, &src), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "model.n_embd is 32 in this config but 64 in the Hugging Face"));
    gc = fixture_config();
    gc.n_head = 8;
    assert_int_equal(dl_gpt_init_resolve(fixture, &gc, &src), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "model.n_head is 8 in this config but 4"));
    gc = fixture_config();
    gc.rope = 1;
    assert_int_equal(dl_gpt_init_resolve(fixture, &gc, &src), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "model.positions"));
    gc = fixture_config();
    assert_int_equal(dl_gpt_init_resolve("/nonexistent/gpt2", &gc, &src), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "model.init_from /nonexistent/gpt2 does not exist"));
    remove(path);
    free(path);
    free(reference);
    free(bare);
    free(tied);
}

/* ---- config.json ----------------------------------------------------------------------------------------------- */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void config_json_settings_dealer_cannot_run_are_refused(void **state) {
    (void)state;
    char *path = temp_path("config.json");
    dl_gpt2_shape shape;
    write_text(path, "{\"model_type\": \"gpt2\", \"n_embd\": 64, \"n_head\": 4, \"n_layer\": 2, \"vocab_size\": 512,"
                     " \"n_positions\": 64}");
    DL_EXPECT_OK(dl_hf_gpt2_read_config(path, &shape));
    assert_int_equal(shape.n_embd, 64);
    assert_int_equal(shape.n_head, 4);
    write_text(path, "{}"); /* GPT2Config's defaults: GPT-2 small */
    DL_EXPECT_OK(dl_hf_gpt2_read_config(path, &shape));
    assert_int_equal(shape.vocab_size, 50257);
    assert_int_equal(shape.n_positions, 1024);
    assert_int_equal(shape.n_embd, 768);
    const struct {
        const char *json;
        dl_status status;
        const char *fragment;
    } cases[] = {
        {"{\"activation_function\": \"gelu\"}", DL_ERR_UNSUPPORTED, "activation_function gelu is not supported"},
        {"{\"activation_function\": \"relu\"}", DL_ERR_UNSUPPORTED, "activation_function relu"},
        {"{\"layer_norm_epsilon\": 1e-6}", DL_ERR_UNSUPPORTED, "layer_norm_epsilon 1e-06"},
        {"{\"tie_word_embeddings\": false}", DL_ERR_UNSUPPORTED, "tie_word_embeddings false"},
        {"{\"scale_attn_by_inverse_layer_idx\": true}", DL_ERR_UNSUPPORTED, "scale_attn_by_inverse_layer_idx"},
        {"{\"add_cross_attention\": true}", DL_ERR_UNSUPPORTED, "add_cross_attention"},
        {"{\"n_inner\": 1000}", DL_ERR_UNSUPPORTED, "n_inner 1000"},
        {"{\"model_type\": \"llama\"}", DL_ERR_UNSUPPORTED, "model_type llama is not gpt2"},
        {"{\"n_embd\": 65, \"n_head\": 4}", DL_ERR_FORMAT, "n_embd 65 is not a multiple of n_head 4"},
        {"{\"n_layer\": -1}", DL_ERR_FORMAT, "n_layer must be a positive integer"},
        {"{\"n_layer\": 2,", DL_ERR_FORMAT, "not valid JSON"},
        {"[1, 2]", DL_ERR_FORMAT, "expected a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(path, cases[i].json);
        dl_status s = dl_hf_gpt2_read_config(path, &shape);
        if (s != cases[i].status || !strstr(dl_error_message(), cases[i].fragment) || !strstr(dl_error_message(), path))
            DL_TEST_FAIL("%s: status %d (want %d), message '%s' should name the file and hold '%s'", cases[i].json,
                         (int)s, (int)cases[i].status, dl_error_message(), cases[i].fragment);
    }
    remove(path);
    free(path);
}

/* ---- the safetensors reader and writer ------------------------------------------------------------------------- */

static void write_raw(const char *path, const char *header, const void *data, size_t data_len, int64_t len_field) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t n = len_field >= 0 ? (uint64_t)len_field : strlen(header);
    uint8_t prefix[8];
    for (int k = 0; k < 8; k++)
        prefix[k] = (uint8_t)(n >> (8 * k));
    fwrite(prefix, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (data_len)
        fwrite(data, 1, data_len, f);
    fclose(f);
}

static void safetensors_round_trip_and_conversions(void **state) {
    (void)state;
    char *path = temp_path("rt.safetensors");
    float a[6] = {1, -2, 3.5f, 0, -0.0f, 1e-30f}, b[2] = {7, 8};
    dl_st_entry entries[2] = {{"a", 2, {2, 3}}, {"b.weight", 1, {2}}};
    const char *keys[] = {"format", "note"}, *values[] = {"pt", "héllo"};
    dl_st_writer w;
    DL_EXPECT_OK(dl_st_write_begin(&w, path, entries, 2, keys, values, 2));
    DL_EXPECT_OK(dl_st_write_tensor(&w, a, 6));
    assert_int_equal(dl_st_write_tensor(&w, b, 3), DL_ERR_INVALID); /* not the declared size */
    dl_st_write_abort(&w);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0); /* nothing left behind */
    DL_EXPECT_OK(dl_st_write_begin(&w, path, entries, 2, keys, values, 2));
    DL_EXPECT_OK(dl_st_write_tensor(&w, a, 6));
    DL_EXPECT_OK(dl_st_write_tensor(&w, b, 2));
    DL_EXPECT_OK(dl_st_write_commit(&w));
    dl_st_file *f = NULL;
    DL_EXPECT_OK(dl_st_open(&f, path));
    assert_int_equal(dl_st_count(f), 2);
    assert_string_equal(dl_st_metadata(f, "note"), "héllo");
    assert_null(dl_st_metadata(f, "absent"));
    const dl_st_tensor *t = dl_st_find(f, "a");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[1], 3);
    float back[6];
    DL_EXPECT_OK(dl_st_read_f32(f, t, back));
    assert_memory_equal(back, a, sizeof a);
    dl_st_close(f);

    /* F16, BF16 and F64 become float32 exactly for values they hold exactly. */
    uint16_t f16[4] = {0x3c00, 0xc000, 0x0001, 0x7c00};     /* 1, -2, 2^-24, inf */
    uint16_t bf16[2] = {0x3f80, 0xc0a0};                    /* 1, -5 */
    double f64[2] = {0.25, -1e10};
    uint8_t data[8 + 4 + 16];
    memcpy(data, f16, 8);
    memcpy(data + 8, bf16, 4);
    memcpy(data + 12, f64, 16);
    write_raw(path, "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
                    "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[12,28]},"
                    "\"i\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[28,28]}}",
              data, sizeof data, -1);
    DL_EXPECT_OK(dl_st_open(&f, path));
    float out[4];
    DL_EXPECT_OK(dl_st_read_f32(f, dl_st_find(f, "h"), out));
    assert_true(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1.0f, -24) && isinf(out[3]));
    DL_EXPECT_OK(dl_st_read_f32(f, dl_st_find(f, "b"), out));
    assert_true(out[0] == 1.0f && out[1] == -5.0f);
    DL_EXPECT_OK(dl_st_read_f32(f, dl_st_find(f, "d"), out));
    assert_true(out[0] == 0.25f && out[1] == -1e10f);
    assert_int_equal(dl_st_read_f32(f, dl_st_find(f, "i"), out), DL_ERR_FORMAT);
    assert_non_null(strstr(dl_error_message(), "tensor i is I64, not a floating-point type"));
    dl_st_close(f);
    remove(path);
    free(path);
}

static void damaged_safetensors_are_format_errors(void **state) {
    (void)state;
    char *path = temp_path("bad.safetensors");
    float data[4] = {0};
    const struct {
        const char *header;
        size_t data_len;
        int64_t len_field;
        const char *fragment;
    } cases[] = {
        {"{}", 0, 1000, "header length 1000 does not fit the file"},
        {"{}", 0, (int64_t)1 << 40, "does not fit the file"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, -1,
         "tensor a ends at byte 16 of the data, which holds 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16, -1,
         "tensor a: F32 [3] needs 12 bytes, data_offsets give 16"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, -1, "tensors a and b overlap"},
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16, -1, "tensor a has an unknown dtype 'Q4'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 16, -1, "shape entries must be integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 16, -1, "data_offsets must be integers"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 16, -1, "needs dtype, shape and data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 16, -1,
         "shape overflows"},
        {"{\"__metadata__\": 3}", 0, -1, "__metadata__ must be a JSON object"},
        {"[1,2]", 0, -1, "not a JSON object"},
        {"{\"a\":", 0, -1, "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_raw(path, cases[i].header, data, cases[i].data_len, cases[i].len_field);
        dl_st_file *f = NULL;
        dl_status s = dl_st_open(&f, path);
        if (s != DL_ERR_FORMAT || !strstr(dl_error_message(), cases[i].fragment) || !strstr(dl_error_message(), path))
            DL_TEST_FAIL("case %zu: status %d, message '%s' should name the file and hold '%s'", i, (int)s,
                         dl_error_message(), cases[i].fragment);
        assert_null(f);
    }
    write_raw(path, "", NULL, 0, -1);
    FILE *fp = fopen(path, "wb"); /* 3 bytes: shorter than the length field */
    fputs("abc", fp);
    fclose(fp);
    dl_st_file *f = NULL;
    assert_int_equal(dl_st_open(&f, path), DL_ERR_FORMAT);
    assert_non_null(strstr(dl_error_message(), "too short"));
    remove(path);
    assert_int_equal(dl_st_open(&f, path), DL_ERR_INVALID); /* missing: a bad path, exit 2 */
    free(path);
}

int main(void) {
    const char *root = getenv("DEALER_SOURCE_DIR");
    snprintf(fixture, sizeof fixture, "%s/tests/fixtures/gpt2-tiny", root && *root ? root : DEALER_SOURCE_DIR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(imported_logits_and_loss_match_transformers),
        cmocka_unit_test(greedy_continuation_matches_transformers),
        cmocka_unit_test(gpt2_files_that_do_not_fit_are_refused_by_name),
        cmocka_unit_test(config_json_settings_dealer_cannot_run_are_refused),
        cmocka_unit_test(safetensors_round_trip_and_conversions),
        cmocka_unit_test(damaged_safetensors_are_format_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
