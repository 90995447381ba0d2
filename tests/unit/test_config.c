/* test_config.c — the config loader: good files, every default, each kind of error with its exact one-line
 * message, overrides, checks across keys, the YAML round trip (fixed and random configs), and every bundled config
 * under configs/. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/weights.h"
#include "core/config_internal.h"
#include "train/run_config.h"

static char tmp_dir[64];

static int make_tmp_dir(void **state) {
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/dealer_test_config_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int remove_tmp_dir(void **state) {
    (void)state;
    DIR *d = opendir(tmp_dir);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(tmp_dir);
    return 0;
}

/* Writes text to tmp_dir/name; the path goes to path (cap 256). */
static void write_file(const char *name, const char *text, char *path) {
    snprintf(path, 256, "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        DL_TEST_FAIL("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* Loads text as file `name` with overrides and checks it fails with DL_ERR_CONFIG and exactly `expected`, where
 * "%s" in expected stands for the file's path. */
static void expect_error(const char *name, const char *text, int n, char **overrides, const char *expected) {
    char path[256], want[1024];
    write_file(name, text, path);
    snprintf(want, sizeof want, expected, path);
    dl_config cfg;
    dl_status s = dl_config_load(&cfg, path, n, overrides);
    if (s != DL_ERR_CONFIG)
        DL_TEST_FAIL("%s: got status %s, want config; message '%s'", name, dl_status_name(s), dl_error_message());
    if (strcmp(dl_error_message(), want) != 0)
        DL_TEST_FAIL("%s:\n  got  '%s'\n  want '%s'", name, dl_error_message(), want);
    assert_null(cfg.origin); /* a failed load leaves nothing behind */
    assert_null(cfg.run.dir);
    dl_config_free(&cfg);
    dl_error_clear();
}

static void expect_text(const dl_config *cfg, const char *key, const char *want) {
    char got[512];
    assert_int_equal(dl_config_get_text(cfg, key, got, sizeof got), DL_OK);
    if (strcmp(got, want) != 0)
        DL_TEST_FAIL("%s: got '%s', want '%s'", key, got, want);
}

static void expect_source(const dl_config *cfg, const char *key, const char *want) {
    char got[512];
    assert_int_equal(dl_config_source(cfg, key, got, sizeof got), DL_OK);
    if (strcmp(got, want) != 0)
        DL_TEST_FAIL("source of %s: got '%s', want '%s'", key, got, want);
}

/* ---- good input ------------------------------------------------------------------------------------------------- */

static const char good_yaml[] = "# a good config\n"            /* 1 */
                                "device: cpu\n"                 /* 2 */
                                "run:\n"                        /* 3 */
                                "  dir: runs/test\n"            /* 4 */
                                "  seed: 42\n"                  /* 5 */
                                "model:\n"                      /* 6 */
                                "  kind: gpt\n"                 /* 7 */
                                "  n_layer: 2\n"                /* 8 */
                                "  n_head: 2\n"                 /* 9 */
                                "  n_embd: 64\n"                /* 10 */
                                "  checkpoint: every:2\n"       /* 11 */
                                "  tied_head: no\n"             /* 12 */
                                "data:\n"                       /* 13 */
                                "  train: [a.tfrecord, b.tfrecord]\n" /* 14 */
                                "  valid: v.tfrecord\n"         /* 15 */
                                "  seq_len: 128\n"              /* 16 */
                                "optim:\n"                      /* 17 */
                                "  lr: 3e-4\n"                  /* 18 */
                                "  name: sgd\n"                 /* 19 */
                                "train:\n"                      /* 20 */
                                "  steps: 1e3\n"                /* 21 */
                                "  resume: runs/old/ckpt/step_00000100.h5\n" /* 22 */
                                "comm:\n"                       /* 23 */
                                "ckpt:\n"                       /* 24 */
                                "  every: 50\n";                /* 25 */

static void good_file_sets_values_and_sources(void **state) {
    (void)state;
    char path[256], want[300];
    write_file("good.yaml", good_yaml, path);
    dl_config cfg;
    if (dl_config_load(&cfg, path, 0, NULL) != DL_OK)
        DL_TEST_FAIL("%s", dl_error_message());
    assert_int_equal(cfg.device, DL_CFG_DEVICE_CPU);
    assert_string_equal(cfg.run.dir, "runs/test");
    assert_int_equal(cfg.run.seed, 42);
    assert_int_equal(cfg.model.kind, DL_MODEL_GPT);
    assert_int_equal(cfg.model.n_layer, 2);
    assert_int_equal(cfg.model.n_embd, 64);
    assert_int_equal(cfg.model.checkpoint, DL_GRAD_CKPT_EVERY);
    assert_int_equal(cfg.model.checkpoint_every, 2);
    assert_false(cfg.model.tied_head);
    assert_int_equal(cfg.data.train.count, 2);
    assert_string_equal(cfg.data.train.items[0], "a.tfrecord");
    assert_string_equal(cfg.data.train.items[1], "b.tfrecord");
    assert_int_equal(cfg.data.valid.count, 1);
    assert_string_equal(cfg.data.valid.items[0], "v.tfrecord");
    assert_int_equal(cfg.data.seq_len, 128);
    assert_true(cfg.optim.lr == 3e-4);
    assert_int_equal(cfg.optim.name, DL_OPTIM_SGD);
    assert_int_equal(cfg.train.steps, 1000);
    assert_int_equal(cfg.train.resume, DL_RESUME_PATH);
    assert_string_equal(cfg.train.resume_path, "runs/old/ckpt/step_00000100.h5");
    assert_int_equal(cfg.ckpt.every, 50);
    snprintf(want, sizeof want, "%s:18", path);
    expect_source(&cfg, "optim.lr", want);
    snprintf(want, sizeof want, "%s:2", path);
    expect_source(&cfg, "device", want);
    expect_source(&cfg, "optim.beta1", "default");
    expect_text(&cfg, "model.checkpoint", "every:2");
    expect_text(&cfg, "data.train", "[\"a.tfrecord\", \"b.tfrecord\"]");
    expect_text(&cfg, "train.resume", "\"runs/old/ckpt/step_00000100.h5\"");
    dl_config_free(&cfg);
    dl_config_free(&cfg); /* freeing twice is safe */
}

/* Every key's default, spelt as YAML. A new key must be added here too (the count is checked). */
static const char *const expected_defaults[][2] = {
    {"device", "auto"},
    {"run.dir", "\"runs/default\""},
    {"run.seed", "1337"},
    {"run.overwrite", "false"},
    {"model.kind", "gpt"},
    {"model.checkpoint", "none"},
    {"model.init_from", "\"\""},
    {"model.init_std", "0.02"},
    {"model.vocab_size", "50257"},
    {"model.n_layer", "12"},
    {"model.n_head", "12"},
    {"model.n_embd", "768"},
    {"model.max_seq_len", "1024"},
    {"model.positions", "learned"},
    {"model.rope_theta", "10000"},
    {"model.precision", "fp32"},
    {"model.dropout", "0"},
    {"model.tied_head", "true"},
    {"model.layernorm_eps", "1e-5"},
    {"model.k", "4"},
    {"model.hash_buckets", "1048576"},
    {"model.num_fields", "39"},
    {"model.linear_terms", "true"},
    {"model.normalize", "true"},
    {"data.train", "[]"},
    {"data.valid", "[]"},
    {"data.format", "auto"},
    {"data.seq_len", "1024"},
    {"data.packing", "true"},
    {"data.pack_window", "64"},
    {"data.overlong", "truncate"},
    {"data.shuffle", "true"},
    {"data.skip_corrupt", "0"},
    {"data.prefetch", "2"},
    {"data.tokenizer", "\"bytes\""},
    {"optim.name", "adamw"},
    {"optim.lr", "0.0006"},
    {"optim.beta1", "0.9"},
    {"optim.beta2", "0.95"},
    {"optim.eps", "1e-8"},
    {"optim.weight_decay", "0.1"},
    {"optim.momentum", "0.9"},
    {"optim.adagrad_init", "1"},
    {"optim.grad_clip", "1"},
    {"optim.schedule", "cosine"},
    {"optim.warmup_steps", "0"},
    {"optim.min_lr_ratio", "0.1"},
    {"train.steps", "5000"},
    {"train.epochs", "0"},
    {"train.batch_per_rank", "8"},
    {"train.grad_accum", "1"},
    {"train.eval_every", "500"},
    {"train.eval_steps", "20"},
    {"train.resume", "auto"},
    {"train.max_bad_steps", "10"},
    {"train.early_stop", "false"},
    {"train.threads", "0"},
    {"comm.zero", "0"},
    {"comm.bucket_mb", "25"},
    {"comm.embeddings", "replicated"},
    {"comm.timeout_s", "600"},
    {"ckpt.every", "1000"},
    {"ckpt.keep", "3"},
    {"ckpt.keep_every", "0"},
    {"ckpt.compress", "false"},
    {"ckpt.fsync", "true"},
    {"log.every", "10"},
    {"log.jsonl", "true"},
    {"log.tensorboard", "true"},
    {"log.level", "info"},
    {"dpo.beta", "0.1"},
    {"dpo.loss", "sigmoid"},
    {"dpo.label_smoothing", "0"},
    {"dpo.reference", "model"},
    {"dpo.reference_file", "\"\""},
};

static void every_default_is_as_documented(void **state) {
    (void)state;
    int n = (int)(sizeof expected_defaults / sizeof expected_defaults[0]);
    assert_int_equal(n, dl_cfg_num_keys(&dl_config_schema));
    dl_config cfg;
    assert_int_equal(dl_config_defaults(&cfg), DL_OK);
    for (int i = 0; i < n; i++) {
        expect_text(&cfg, expected_defaults[i][0], expected_defaults[i][1]);
        expect_source(&cfg, expected_defaults[i][0], "default");
    }
    /* The plain fields other modules read. */
    assert_int_equal(cfg.device, DL_CFG_DEVICE_AUTO);
    assert_int_equal(cfg.model.kind, DL_MODEL_GPT);
    assert_int_equal(cfg.model.checkpoint, DL_GRAD_CKPT_NONE);
    assert_int_equal(cfg.model.checkpoint_every, 0);
    assert_string_equal(cfg.model.init_from, "");
    assert_int_equal(cfg.model.k, 4);
    assert_true(cfg.model.normalize);
    assert_int_equal(cfg.data.train.count, 0);
    assert_int_equal(cfg.train.resume, DL_RESUME_AUTO);
    assert_string_equal(cfg.train.resume_path, "");
    assert_true(cfg.optim.lr == 6e-4);
    assert_int_equal(cfg.train.steps, 5000);
    assert_int_equal(cfg.optim.schedule, DL_SCHEDULE_COSINE);
    assert_int_equal(cfg.log.level, DL_CFG_LOG_INFO);

    /* No file and an empty file both give the defaults. */
    dl_config none, empty;
    assert_int_equal(dl_config_load(&none, NULL, 0, NULL), DL_OK);
    assert_true(dl_config_equal(&cfg, &none));
    char path[256];
    write_file("empty.yaml", "# nothing set\n", path);
    assert_int_equal(dl_config_load(&empty, path, 0, NULL), DL_OK);
    assert_true(dl_config_equal(&cfg, &empty));
    dl_config_free(&cfg);
    dl_config_free(&none);
    dl_config_free(&empty);
}

static void scalar_spellings_are_accepted(void **state) {
    (void)state;
    const char *text = "model:\n  tied_head: off\n  normalize: YES\n  init_from: ~\n"
                       "data:\n  valid:\n    - x.tfrecord\n    - 'y z.tfrecord'\n  train: one.tfrecord\n"
                       "train:\n  steps: 2.5e3\n  early_stop: True\n"
                       "optim:\n  lr: .5\n  beta1: 0\n"
                       "log:\n";
    dl_config cfg;
    if (dl_config_load_string(&cfg, text, strlen(text), "spell.yaml") != DL_OK)
        DL_TEST_FAIL("%s", dl_error_message());
    assert_false(cfg.model.tied_head);
    assert_true(cfg.model.normalize);
    assert_string_equal(cfg.model.init_from, "");
    assert_int_equal(cfg.data.valid.count, 2);
    assert_string_equal(cfg.data.valid.items[1], "y z.tfrecord");
    assert_int_equal(cfg.data.train.count, 1);
    assert_int_equal(cfg.train.steps, 2500);
    assert_true(cfg.train.early_stop);
    assert_true(cfg.optim.lr == 0.5);
    assert_true(cfg.optim.beta1 == 0.0);
    expect_source(&cfg, "optim.lr", "spell.yaml:14");
    dl_config_free(&cfg);
}

/* ---- errors, each with its exact line --------------------------------------------------------------------------- */

static void unknown_key_names_line_and_nearest_key(void **state) {
    (void)state;
    expect_error("x.yaml",
                 "run:\n  dir: r\n  seed: 1\nmodel:\n  n_layer: 2\n  n_head: 2\n  n_embd: 64\ndata:\n  seq_len: 64\n"
                 "optim:\n  name: adamw\n  lrr: 3e-4\n",
                 0, NULL, "%s:12: unknown key 'lrr' in section optim (did you mean 'lr'?)");
    /* Swapped letters count as one edit. */
    expect_error("x.yaml", "train:\n  btach_per_rank: 4\n", 0, NULL,
                 "%s:2: unknown key 'btach_per_rank' in section train (did you mean 'batch_per_rank'?)");
    /* The right name in the wrong section. */
    expect_error("x.yaml", "optim:\n  steps: 4\n", 0, NULL,
                 "%s:2: unknown key 'steps' in section optim (did you mean 'train.steps'?)");
    /* Nothing close: no guess, a hint instead. */
    expect_error("x.yaml", "optim:\n  zzzzzzzz: 4\n", 0, NULL,
                 "%s:2: unknown key 'zzzzzzzz' in section optim (hint: 'dealer config keys' lists every key)");
}

static void unknown_section_names_line_and_nearest(void **state) {
    (void)state;
    expect_error("x.yaml", "device: cpu\n\noptm:\n  lr: 1\n", 0, NULL,
                 "%s:3: unknown section 'optm' (did you mean 'optim'?)");
    expect_error("x.yaml", "lr: 0.1\n", 0, NULL, "%s:1: unknown section 'lr' (did you mean 'optim.lr'?)");
    expect_error("x.yaml", "run:\n  dir: a\nfoo_bar_baz:\n  x: 1\n", 0, NULL,
                 "%s:3: unknown section 'foo_bar_baz' (hint: sections are run, model, data, optim, train, comm, ckpt, "
                 "log, dpo; plus the key device)");
    expect_error("x.yaml", "optim: 5\n", 0, NULL,
                 "%s:1: section optim must be a mapping of keys (key: value), got '5'");
    expect_error("x.yaml", "- a\n- b\n", 0, NULL,
                 "%s:1: a config must be a mapping of sections (e.g. 'optim:' then '  lr: 3e-4')");
}

static void wrong_type_names_key_and_value(void **state) {
    (void)state;
    expect_error("x.yaml", "run:\n  dir: r\n\n\n\noptim:\n  lr: fast\n", 0, NULL,
                 "%s:7: optim.lr: expected a number, got 'fast'");
    expect_error("x.yaml", "model:\n  n_layer: 2.5\n", 0, NULL, "%s:2: model.n_layer: expected an integer, got '2.5'");
    expect_error("x.yaml", "model:\n  tied_head: maybe\n", 0, NULL,
                 "%s:2: model.tied_head: expected true or false, got 'maybe'");
    expect_error("x.yaml", "optim:\n  lr: [1, 2]\n", 0, NULL, "%s:2: optim.lr: expected a number, got a list");
    expect_error("x.yaml", "optim:\n  lr:\n    a: 1\n", 0, NULL, "%s:2: optim.lr: expected a number, got a mapping");
    expect_error("x.yaml", "optim:\n  lr:\n", 0, NULL, "%s:2: optim.lr: expected a number, got an empty value");
    expect_error("x.yaml", "optim:\n  lr: nan\n", 0, NULL, "%s:2: optim.lr: expected a number, got 'nan'");
    expect_error("x.yaml", "optim:\n  lr: 0x10\n", 0, NULL, "%s:2: optim.lr: expected a number, got '0x10'");
    expect_error("x.yaml", "data:\n  train: [a, [b]]\n", 0, NULL,
                 "%s:2: data.train: expected a path or a list of paths, got a nested list");
    expect_error("x.yaml", "data:\n  train: [a, '']\n", 0, NULL, "%s:2: data.train: path 2 of the list is empty");
    expect_error("x.yaml", "model:\n  checkpoint: sometimes\n", 0, NULL,
                 "%s:2: model.checkpoint: expected none, blocks or every:K, got 'sometimes'");
    expect_error("x.yaml", "train:\n  resume: ''\n", 0, NULL,
                 "%s:2: train.resume: expected auto, never or a checkpoint path, got ''");
    expect_error("x.yaml", "run:\n  dir: \"a\\0b\"\n", 0, NULL, "%s:2: run.dir: the value contains a NUL character");
    expect_error("x.yaml", "optim:\n  lr: &a 1\n  beta1: *a\n", 0, NULL,
                 "%s:3: YAML aliases (*a) are not supported in dealer configs; write the value out");
}

static void out_of_range_gives_the_bounds(void **state) {
    (void)state;
    expect_error("x.yaml", "train:\n  steps: -5\n", 0, NULL, "%s:2: train.steps: -5 is out of range (must be >= 1)");
    expect_error("x.yaml", "optim:\n  beta1: 1\n", 0, NULL,
                 "%s:2: optim.beta1: 1 is out of range (must be >= 0 and < 1)");
    expect_error("x.yaml", "optim:\n  lr: 0\n", 0, NULL, "%s:2: optim.lr: 0 is out of range (must be > 0)");
    expect_error("x.yaml", "comm:\n  zero: 2\n", 0, NULL,
                 "%s:2: comm.zero: 2 is out of range (must be between 0 and 1)");
    expect_error("x.yaml", "data:\n  seq_len: 3000000000\n", 0, NULL,
                 "%s:2: data.seq_len: 3000000000 is out of range (must be <= 2147483647)");
    expect_error("x.yaml", "run:\n  seed: 99999999999999999999\n", 0, NULL,
                 "%s:2: run.seed: 99999999999999999999 is out of range (must be <= 9223372036854775807)");
    expect_error("x.yaml", "model:\n  checkpoint: every:0\n", 0, NULL,
                 "%s:2: model.checkpoint: every:0 is out of range (K must be between 1 and 1024)");
}

static void bad_enum_lists_the_allowed_values(void **state) {
    (void)state;
    expect_error("x.yaml", "optim:\n  name: adam\n", 0, NULL,
                 "%s:2: optim.name: expected one of adamw, adagrad, sgd, got 'adam'");
    expect_error("x.yaml", "device: gpu\n", 0, NULL, "%s:1: device: expected one of auto, cpu, cuda, got 'gpu'");
    expect_error("x.yaml", "model:\n  kind: GPT\n", 0, NULL,
                 "%s:2: model.kind: expected one of gpt, fm, ffm, dpo, got 'GPT'");
}

static void yaml_syntax_error_names_file_and_line(void **state) {
    (void)state;
    expect_error("x.yaml", "run:\n  dir: a\noptim:\n  lr: [1, 2\n", 0, NULL,
                 "%s:5: YAML syntax error: did not find expected ',' or ']' while parsing a flow sequence (line 4)");
    expect_error("x.yaml", "run:\n  dir: a\n  seed: 1\n bad: 2\n", 0, NULL,
                 "%s:4: YAML syntax error: did not find expected key while parsing a block mapping (line 1)");
    expect_error("x.yaml", "run:\n  dir: a\n---\nrun:\n  dir: b\n", 0, NULL,
                 "%s:3: a second YAML document ('---'); a config holds exactly one");
    expect_error("x.yaml", "run:\n  dir: \xff\n", 0, NULL,
                 "%s:2: YAML error: invalid leading UTF-8 octet (at byte offset 12)");
}

static void duplicate_key_names_both_lines(void **state) {
    (void)state;
    expect_error("x.yaml", "optim:\n  lr: 1\n  beta1: 0.5\n  lr: 2\n", 0, NULL,
                 "%s:4: duplicate key 'lr' in section optim (first on line 2)");
    expect_error("x.yaml", "optim:\n  lr: 1\ntrain:\n  steps: 3\noptim:\n  beta1: 0.5\n", 0, NULL,
                 "%s:5: duplicate section 'optim' (first on line 1)");
    expect_error("x.yaml", "device: cpu\ndevice: cuda\n", 0, NULL, "%s:2: duplicate key 'device' (first on line 1)");
}

static void missing_file_is_a_config_error(void **state) {
    (void)state;
    dl_config cfg;
    char path[300];
    snprintf(path, sizeof path, "%s/no-such.yaml", tmp_dir);
    assert_int_equal(dl_config_load(&cfg, path, 0, NULL), DL_ERR_CONFIG);
    char want[400];
    snprintf(want, sizeof want, "%s: cannot open config: No such file or directory", path);
    assert_string_equal(dl_error_message(), want);
    assert_int_equal(dl_status_exit_code(DL_ERR_CONFIG), 2);
    /* A directory is no config either. */
    assert_int_equal(dl_config_load(&cfg, tmp_dir, 0, NULL), DL_ERR_CONFIG);
    dl_error_clear();
}

static void checks_across_keys(void **state) {
    (void)state;
    expect_error("x.yaml", "model:\n  n_embd: 100\n  n_head: 3\n", 0, NULL,
                 "%s:3: model.n_embd (100) must be a multiple of model.n_head (3)");
    expect_error("x.yaml", "dpo:\n  loss: ipo\n  label_smoothing: 0.1\n", 0, NULL,
                 "%s:3: dpo.label_smoothing (0.1) applies only to dpo.loss sigmoid, not ipo");
    expect_error("x.yaml", "model:\n  kind: dpo\n", 0, NULL,
                 "%s:2: model.kind dpo needs model.init_from (the gpt checkpoint to tune)");
    expect_error("x.yaml", "model:\n  kind: ffm\n  precision: bf16\n", 0, NULL,
                 "%s:3: model.precision bf16 applies to gpt and dpo only; model.kind ffm trains in fp32 (remove the "
                 "key)");
    expect_error("x.yaml", "model:\n  positions: rope\n  n_embd: 36\n  n_head: 4\n", 0, NULL,
                 "%s:4: model.positions rope needs an even head size (model.n_embd / model.n_head = 9)");
    expect_error("x.yaml", "data:\n  seq_len: 2048\n", 0, NULL,
                 "%s:2: data.seq_len (2048) must be <= model.max_seq_len (1024)");
    expect_error("x.yaml", "ckpt:\n  every: 100\n  keep_every: 150\n", 0, NULL,
                 "%s:3: ckpt.keep_every (150) must be a multiple of ckpt.every (100)");
    expect_error("x.yaml", "data:\n  format: clicks\n", 0, NULL,
                 "%s:2: data.format clicks does not fit model.kind gpt (it reads tokens)");
    expect_error("x.yaml", "model:\n  kind: ffm\n  init_from: run/ckpt/latest\n", 0, NULL,
                 "%s:3: model.init_from applies to model.kind gpt and dpo, not ffm (to continue an ffm run, use "
                 "train.resume)");
    expect_error("x.yaml", "comm:\n  embeddings: sharded\n", 0, NULL,
                 "%s:2: comm.embeddings sharded applies to model.kind fm or ffm, not gpt");
    expect_error("x.yaml", "dpo:\n  reference: precomputed\n", 0, NULL,
                 "%s:2: dpo.reference precomputed needs dpo.reference_file (made by dealer dpo precompute-ref)");
    expect_error("x.yaml", "train:\n  early_stop: true\n", 0, NULL,
                 "%s:2: train.early_stop needs validation data (data.valid)");
    /* The blame goes to the value set last: here the override. */
    char *ovr[] = {"model.n_head=3"};
    expect_error("x.yaml", "model:\n  n_embd: 100\n", 1, ovr,
                 "override 'model.n_head=3': model.n_embd (100) must be a multiple of model.n_head (3)");
}

/* ---- overrides --------------------------------------------------------------------------------------------------- */

static void overrides_apply_after_the_file(void **state) {
    (void)state;
    char path[256];
    write_file("good.yaml", good_yaml, path);
    char *ovr[] = {"optim.lr=1e-3",          "device=cuda",  "data.train=[c.tfrecord, \"d e.tfrecord\"]",
                   "model.init_from=",       "train.resume=never", "run.dir='quoted # dir'",
                   "run.seed=7",             "run.seed=8",   "model.checkpoint=blocks",
                   "run.dir=literal #3 [x]"};
    int n = (int)(sizeof ovr / sizeof ovr[0]);
    dl_config cfg;
    if (dl_config_load(&cfg, path, n, ovr) != DL_OK)
        DL_TEST_FAIL("%s", dl_error_message());
    assert_true(cfg.optim.lr == 1e-3);
    assert_int_equal(cfg.device, DL_CFG_DEVICE_CUDA);
    assert_int_equal(cfg.data.train.count, 2);
    assert_string_equal(cfg.data.train.items[1], "d e.tfrecord");
    assert_string_equal(cfg.model.init_from, "");
    assert_int_equal(cfg.train.resume, DL_RESUME_NEVER);
    assert_string_equal(cfg.train.resume_path, "");
    assert_int_equal(cfg.run.seed, 8); /* the later override wins */
    assert_int_equal(cfg.model.checkpoint, DL_GRAD_CKPT_BLOCKS);
    assert_int_equal(cfg.model.checkpoint_every, 0);
    assert_string_equal(cfg.run.dir, "literal #3 [x]");
    expect_source(&cfg, "optim.lr", "override 'optim.lr=1e-3'");
    expect_source(&cfg, "run.seed", "override 'run.seed=8'");
    expect_text(&cfg, "optim.lr", "0.001");
    dl_config_free(&cfg);

    /* Overrides alone, without a file. */
    char *only[] = {"train.steps=7"};
    assert_int_equal(dl_config_load(&cfg, NULL, 1, only), DL_OK);
    assert_int_equal(cfg.train.steps, 7);
    dl_config_free(&cfg);
}

static void bad_overrides_name_the_override(void **state) {
    (void)state;
    const char *text = "optim:\n  lr: 0.1\n";
    struct {
        char *override;
        const char *message;
    } cases[] = {
        {"optim.lrr=3", "override 'optim.lrr=3': unknown key 'lrr' in section optim (did you mean 'lr'?)"},
        {"optm.lr=3", "override 'optm.lr=3': unknown section 'optm' (did you mean 'optim'?)"},
        {"lr=3", "override 'lr=3': unknown key 'lr' (did you mean 'optim.lr'?)"},
        {"optim=3", "override 'optim=3': 'optim' is a section; name one of its keys (optim.KEY=VALUE)"},
        {"optim.lr", "override 'optim.lr': expected section.key=value (e.g. optim.lr=3e-4)"},
        {"=3", "override '=3': expected section.key=value (e.g. optim.lr=3e-4)"},
        {"optim.lr=fast", "override 'optim.lr=fast': optim.lr: expected a number, got 'fast'"},
        {"train.steps=-5", "override 'train.steps=-5': train.steps: -5 is out of range (must be >= 1)"},
        {"optim.name=adam", "override 'optim.name=adam': optim.name: expected one of adamw, adagrad, sgd, got 'adam'"},
        {"data.train=[a,", "override 'data.train=[a,': YAML syntax error: did not find expected node content"},
        {"data.train=[a, [b]]", "override 'data.train=[a, [b]]': a list cannot hold lists or mappings"},
        {"run.dir=\"a\" b", "override 'run.dir=\"a\" b': YAML syntax error: did not find expected <document start>"},
        {"run.dir=\xc3\x28", "override 'run.dir=\xc3(': run.dir: the value is not valid UTF-8"},
        {"optim.lr=", "override 'optim.lr=': optim.lr: expected a number, got an empty value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error("x.yaml", text, 1, &cases[i].override, cases[i].message);
}

/* ---- the YAML round trip ----------------------------------------------------------------------------------------- */

/* to_yaml -> load_string must give an equal config, and writing that again the same text. */
static void check_round_trip(const dl_config *cfg) {
    for (int with_sources = 0; with_sources <= 1; with_sources++) {
        char *text = NULL;
        assert_int_equal(dl_config_to_yaml(cfg, with_sources, &text), DL_OK);
        dl_config back;
        if (dl_config_load_string(&back, text, strlen(text), "ckpt.h5:/config") != DL_OK)
            DL_TEST_FAIL("reading back failed: %s\n%s", dl_error_message(), text);
        if (!dl_config_equal(cfg, &back))
            DL_TEST_FAIL("the config read back differs:\n%s", text);
        char *again = NULL;
        assert_int_equal(dl_config_to_yaml(&back, with_sources, &again), DL_OK);
        if (!with_sources)
            assert_string_equal(text, again);
        free(text);
        free(again);
        dl_config_free(&back);
    }
}

static void to_yaml_reads_back_identically(void **state) {
    (void)state;
    char path[256];
    write_file("good.yaml", good_yaml, path);
    char *ovr[] = {"run.dir=\"tab\\there \\\"quoted\\\" back\\\\slash \\u00e9 \\x01 \\u2028 \\U0001F600\"",
                   "optim.lr=0.1234567890123456789", "optim.beta2=0.999999999999", "model.init_std=1e-300",
                   "data.valid=[\"new\\nline\", \"caf\xc3\xa9\"]", "train.resume=\"auto \""};
    dl_config cfg;
    if (dl_config_load(&cfg, path, 6, ovr) != DL_OK)
        DL_TEST_FAIL("%s", dl_error_message());
    assert_string_equal(cfg.run.dir, "tab\there \"quoted\" back\\slash \xc3\xa9 \x01 \xe2\x80\xa8 \xf0\x9f\x98\x80");
    assert_int_equal(cfg.train.resume, DL_RESUME_PATH);
    check_round_trip(&cfg);

    char *text = NULL;
    assert_int_equal(dl_config_to_yaml(&cfg, 1, &text), DL_OK);
    assert_non_null(strstr(text, "  lr: 0.12345678901234568"));
    assert_non_null(strstr(text, "# override\n"));
    dl_config_free(&cfg);
    free(text);

    dl_config defaults;
    assert_int_equal(dl_config_defaults(&defaults), DL_OK);
    check_round_trip(&defaults);
    dl_config_free(&defaults);
}

/* A random valid UTF-8 string: ASCII, control characters, 2-, 3- and 4-byte sequences. */
static void random_string(dl_rng *rng, char *buf, int max) {
    int n = 0, len = (int)dl_rng_below(rng, 12);
    for (int i = 0; i < len && n < max - 5; i++) {
        unsigned kind = (unsigned)dl_rng_below(rng, 6), cp;
        if (kind <= 2)
            cp = 0x20 + (unsigned)dl_rng_below(rng, 0x5f);
        else if (kind == 3)
            cp = 1 + (unsigned)dl_rng_below(rng, 0x1f);
        else if (kind == 4)
            cp = 0x80 + (unsigned)dl_rng_below(rng, 0x800 - 0x80);
        else
            cp = (unsigned)dl_rng_below(rng, 2) ? 0x2000 + (unsigned)dl_rng_below(rng, 0x100)
                                                 : 0x10000 + (unsigned)dl_rng_below(rng, 0x1000);
        if (cp < 0x80) {
            buf[n++] = (char)cp;
        } else if (cp < 0x800) {
            buf[n++] = (char)(0xc0 | cp >> 6);
            buf[n++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            buf[n++] = (char)(0xe0 | cp >> 12);
            buf[n++] = (char)(0x80 | (cp >> 6 & 0x3f));
            buf[n++] = (char)(0x80 | (cp & 0x3f));
        } else {
            buf[n++] = (char)(0xf0 | cp >> 18);
            buf[n++] = (char)(0x80 | (cp >> 12 & 0x3f));
            buf[n++] = (char)(0x80 | (cp >> 6 & 0x3f));
            buf[n++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    buf[n] = '\0';
}

/* Sets every key of a config to a random value in its range, straight through dl_cfg_assign. */
static void randomize(dl_config *cfg, dl_rng *rng) {
    int num_keys = dl_cfg_num_keys(&dl_config_schema);
    for (int i = 0; i < num_keys; i++) {
        const dl_cfg_section *section = NULL;
        const dl_cfg_key *key = dl_cfg_key_at(&dl_config_schema, i, &section);
        char text[128];
        dl_cfg_raw raw = {.kind = DL_RAW_SCALAR, .text = text};
        char item0[64], item1[64], *items[2] = {item0, item1};
        size_t lens[2];
        double lo = (key->range & DL_CFG_HAS_MIN) ? key->min : 0, hi = (key->range & DL_CFG_HAS_MAX) ? key->max : 1e6;
        double u = dl_rng_uniform(rng);
        switch (key->type) {
        case DL_CFG_INT:
        case DL_CFG_I64:
            snprintf(text, sizeof text, "%lld", (long long)(lo + 1 + floor(u * (hi - lo - 1))));
            break;
        case DL_CFG_FLOAT: snprintf(text, sizeof text, "%.17g", lo + (hi - lo) * (0.001 + 0.998 * u)); break;
        case DL_CFG_BOOL: snprintf(text, sizeof text, "%s", u < 0.5 ? "true" : "false"); break;
        case DL_CFG_ENUM: {
            int n = 0;
            while (key->choices[n])
                n++;
            snprintf(text, sizeof text, "%s", key->choices[dl_rng_below(rng, (uint64_t)n)]);
            break;
        }
        case DL_CFG_ENUM_COUNT: snprintf(text, sizeof text, "every:%d", 1 + (int)dl_rng_below(rng, 8)); break;
        case DL_CFG_STRING:
        case DL_CFG_ENUM_TEXT:
            random_string(rng, text, 64);
            if (key->type == DL_CFG_ENUM_TEXT && !text[0])
                snprintf(text, sizeof text, "never");
            break;
        case DL_CFG_LIST:
            raw.kind = DL_RAW_LIST;
            raw.count = 2;
            raw.items = items;
            raw.item_lens = lens;
            for (int k = 0; k < 2; k++) {
                random_string(rng, items[k], 64);
                if (!items[k][0])
                    snprintf(items[k], 64, "p");
                lens[k] = strlen(items[k]);
            }
            break;
        }
        raw.len = strlen(text);
        dl_cfg_source source = {DL_SRC_DEFAULT, 0, 0};
        if (dl_cfg_assign(&dl_config_schema, cfg, i, &raw, "random", source) != DL_OK)
            DL_TEST_FAIL("setting %s.%s to '%s': %s", section->name, key->name, text, dl_error_message());
    }
}

static void random_configs_round_trip(void **state) {
    (void)state;
    dl_rng rng;
    dl_test_rng(&rng, 1);
    for (int trial = 0; trial < 200; trial++) {
        dl_config cfg;
        assert_int_equal(dl_config_defaults(&cfg), DL_OK);
        randomize(&cfg, &rng);
        /* Keep the checks across keys satisfied (they run when the text is read back). */
        cfg.model.kind = trial % 2 ? DL_MODEL_FM : DL_MODEL_FFM;
        cfg.data.format = DL_FORMAT_AUTO;
        cfg.dpo.loss = DL_DPO_SIGMOID;
        cfg.dpo.reference = DL_DPO_REF_MODEL;
        cfg.model.precision = DL_PRECISION_FP32; /* bf16 is for gpt/dpo, and these are click models */
        free(cfg.model.init_from); /* fm and ffm read neither */
        cfg.model.init_from = strdup("");
        assert_non_null(cfg.model.init_from);
        free(cfg.data.tokenizer);
        cfg.data.tokenizer = strdup("bytes");
        assert_non_null(cfg.data.tokenizer);
        cfg.ckpt.keep_every = cfg.ckpt.every * (trial % 3);
        check_round_trip(&cfg);
        dl_config_free(&cfg);
    }
}

/* ---- bundled configs and small pieces ---------------------------------------------------------------------------- */

static void every_bundled_config_loads(void **state) {
    (void)state;
    const char *root = getenv("DEALER_SOURCE_DIR");
    if (!root || !*root)
        root = DEALER_SOURCE_DIR;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/configs", root);
    DIR *d = opendir(dir);
    if (!d)
        DL_TEST_FAIL("cannot open %s", dir);
    int loaded = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        dl_config cfg;
        if (dl_config_load(&cfg, path, 0, NULL) != DL_OK)
            DL_TEST_FAIL("%s", dl_error_message());
        assert_true(cfg.data.train.count >= 1);
        check_round_trip(&cfg);
        if (strcmp(e->d_name, "gpt-shakespeare.yaml") == 0) {
            assert_int_equal(cfg.model.kind, DL_MODEL_GPT);
            assert_int_equal(cfg.model.vocab_size, 256);
            assert_int_equal(cfg.device, DL_CFG_DEVICE_CPU);
            assert_string_equal(cfg.data.train.items[0], "data/shakespeare/train.tfrecord");
            assert_string_equal(cfg.data.valid.items[0], "data/shakespeare/valid.tfrecord");
        }
        if (strcmp(e->d_name, "ffm-criteo.yaml") == 0) {
            assert_int_equal(cfg.model.kind, DL_MODEL_FFM);
            assert_int_equal(cfg.model.k, 4);
            assert_int_equal(cfg.optim.name, DL_OPTIM_ADAGRAD);
            assert_true(cfg.optim.lr == 0.2);
            assert_true(cfg.optim.weight_decay == 2e-5);
            assert_int_equal(cfg.train.epochs, 15);
            assert_true(cfg.model.normalize);
        }
        loaded++;
        dl_config_free(&cfg);
    }
    closedir(d);
    assert_true(loaded >= 5);
}

static void edit_distance_and_enum_names(void **state) {
    (void)state;
    assert_int_equal(dl_cfg_edit_distance("lr", "lr"), 0);
    assert_int_equal(dl_cfg_edit_distance("lrr", "lr"), 1);
    assert_int_equal(dl_cfg_edit_distance("btach", "batch"), 1);
    assert_int_equal(dl_cfg_edit_distance("LR", "lr"), 0);
    assert_int_equal(dl_cfg_edit_distance("", "abc"), 3);
    assert_int_equal(dl_cfg_edit_distance("kitten", "sitting"), 3);
    assert_string_equal(dl_config_enum_text("device", DL_CFG_DEVICE_CUDA), "cuda");
    assert_string_equal(dl_config_enum_text("optim.schedule", DL_SCHEDULE_INVERSE_SQRT), "inverse_sqrt");
    assert_string_equal(dl_config_enum_text("dpo.loss", DL_DPO_HINGE), "hinge");
    assert_null(dl_config_enum_text("optim.lr", 0));
    assert_null(dl_config_enum_text("device", 7));
    assert_null(dl_config_enum_text("nope", 0));
    assert_true(dl_cfg_utf8_valid("caf\xc3\xa9", 5));
    assert_false(dl_cfg_utf8_valid("\xc0\xaf", 2));          /* overlong */
    assert_false(dl_cfg_utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
    assert_false(dl_cfg_utf8_valid("\xf4\x90\x80\x80", 4));  /* above U+10FFFF */
    assert_false(dl_cfg_utf8_valid("\xe2\x82", 2));          /* cut short */
    dl_config cfg;
    assert_int_equal(dl_config_defaults(&cfg), DL_OK);
    char buf[64];
    assert_int_equal(dl_config_get_text(&cfg, "optim.nope", buf, sizeof buf), DL_ERR_INVALID);
    assert_int_equal(dl_config_source(&cfg, "nope", buf, sizeof buf), DL_ERR_INVALID);
    dl_config_free(&cfg);
    dl_error_clear();
}

static void print_keys_lists_every_key(void **state) {
    (void)state;
    for (int markdown = 0; markdown <= 1; markdown++) {
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        assert_non_null(out);
        dl_config_print_keys(out, markdown);
        fclose(out);
        int lines = 0;
        for (size_t i = 0; i < len; i++)
            lines += text[i] == '\n';
        assert_int_equal(lines, dl_cfg_num_keys(&dl_config_schema) + (markdown ? 2 : 0));
        assert_non_null(strstr(text, markdown ? "| `optim.lr` | float > 0 | `0.0006` |" : "optim.lr "));
        assert_non_null(strstr(text, markdown ? "gpt\\|fm\\|ffm\\|dpo" : "gpt|fm|ffm|dpo"));
        free(text);
    }
}

/* docs/config.md carries the key table `dealer config keys --markdown` prints; it must not drift. */
static void docs_key_table_is_current(void **state) {
    (void)state;
    const char *root = getenv("DEALER_SOURCE_DIR");
    if (!root || !*root)
        root = DEALER_SOURCE_DIR;
    char path[512];
    snprintf(path, sizeof path, "%s/docs/config.md", root);
    FILE *f = fopen(path, "rb");
    if (!f)
        DL_TEST_FAIL("cannot open %s", path);
    char *doc = NULL;
    size_t doc_len = 0;
    FILE *mem = open_memstream(&doc, &doc_len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, mem);
    fclose(f);
    fclose(mem);
    char *table = NULL;
    size_t table_len = 0;
    mem = open_memstream(&table, &table_len);
    dl_config_print_keys(mem, 1);
    fclose(mem);
    if (!strstr(doc, table))
        DL_TEST_FAIL("docs/config.md lacks the current key table: regenerate it with 'dealer config keys --markdown'");
    free(doc);
    free(table);
}

/* core/config.h works on any schema: a made-up application with a selector, an ENUM_COUNT and an ENUM_TEXT key and
 * a check across keys, none of dealer's names. */
typedef enum toy_mode { TOY_PLAIN = 0, TOY_FANCY = 1 } toy_mode;
typedef struct toy_net {
    int depth;
    char *label;
    int repeat, repeat_every;
    int source;
    char *source_path;
} toy_net;
typedef struct toy_config {
    toy_mode mode;
    toy_net net;
    struct dl_cfg_origin *origin;
} toy_config;

static const char *const toy_modes[] = {"plain", "fancy", NULL};
static const char *const toy_repeats[] = {"never", "every:N", NULL};
static const char *const toy_sources[] = {"builtin", "FILE", NULL};
static const dl_cfg_key toy_top[] = {
    DL_CFG_ENUM_KEY(toy_config, "mode", mode, toy_modes, "plain", "which toy"),
    DL_CFG_END,
};
static const dl_cfg_key toy_net_keys[] = {
    DL_CFG_KEY(toy_net, "depth", DL_CFG_INT, depth, "3", DL_CFG_IN(1, 9), "how deep"),
    DL_CFG_KEY(toy_net, "label", DL_CFG_STRING, label, "", DL_CFG_ANY, "fancy: a name"),
    {"repeat", DL_CFG_ENUM_COUNT, offsetof(toy_net, repeat), offsetof(toy_net, repeat_every), toy_repeats, "never",
     DL_CFG_IN(2, 5), "repeat", NULL, 0},
    {"source", DL_CFG_ENUM_TEXT, offsetof(toy_net, source), offsetof(toy_net, source_path), toy_sources, "builtin",
     DL_CFG_ANY, "source", "builtin or a file", 0},
    DL_CFG_END,
};
static const dl_cfg_section toy_sections[] = {{"", 0, toy_top}, {"net", offsetof(toy_config, net), toy_net_keys}};
static const dl_cfg_reader toy_readers[] = {{"net.label", 1u << TOY_FANCY}, {NULL, 0}};

static dl_status toy_check(const dl_cfg_schema *schema, const void *config) {
    const toy_config *cfg = config;
    if (cfg->net.repeat == 1 && cfg->net.repeat_every > cfg->net.depth)
        return dl_cfg_conflict(schema, cfg, "net.repeat net.depth", "net.repeat every:%d is deeper than net.depth %d",
                               cfg->net.repeat_every, cfg->net.depth);
    return DL_OK;
}

static const dl_cfg_schema toy_schema = {
    .sections = toy_sections,
    .n_sections = 2,
    .size = sizeof(toy_config),
    .origin_offset = offsetof(toy_config, origin),
    .selector = "mode",
    .readers = toy_readers,
    .check = toy_check,
};

static void mechanics_work_on_any_schema(void **state) {
    (void)state;
    toy_config cfg;
    const char *yaml = "mode: fancy\nnet:\n  depth: 4\n  label: \"x\"\n  repeat: every:3\n  source: /data/f\n";
    assert_int_equal(dl_cfg_load_string(&toy_schema, &cfg, yaml, strlen(yaml), "toy.yaml"), DL_OK);
    assert_int_equal(cfg.mode, TOY_FANCY);
    assert_int_equal(cfg.net.depth, 4);
    assert_string_equal(cfg.net.label, "x");
    assert_int_equal(cfg.net.repeat, 1);
    assert_int_equal(cfg.net.repeat_every, 3);
    assert_int_equal(cfg.net.source, 1);
    assert_string_equal(cfg.net.source_path, "/data/f");
    char *text = NULL;
    assert_int_equal(dl_cfg_to_yaml(&toy_schema, &cfg, 0, &text), DL_OK);
    assert_string_equal(text, "# dealer config, resolved\nmode: fancy\nnet:\n  depth: 4\n  label: \"x\"\n"
                              "  repeat: every:3\n  source: \"/data/f\"\n");
    toy_config back;
    assert_int_equal(dl_cfg_load_string(&toy_schema, &back, text, strlen(text), "back"), DL_OK);
    assert_true(dl_cfg_equal(&toy_schema, &cfg, &back));
    dl_cfg_free(&toy_schema, &back);
    free(text);
    dl_cfg_free(&toy_schema, &cfg);

    /* The selector: net.label is read only in fancy mode. */
    assert_true(dl_cfg_key_read_by(&toy_schema, "net.label", TOY_FANCY));
    assert_false(dl_cfg_key_read_by(&toy_schema, "net.label", TOY_PLAIN));
    assert_true(dl_cfg_key_read_by(&toy_schema, "net.depth", TOY_PLAIN));
    assert_int_equal(dl_cfg_readers_unknown(&toy_schema, NULL, 0), 0);
    assert_int_equal(dl_cfg_load(&toy_schema, &cfg, NULL, 1, (char *[]){"net.label=y"}), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "net.label is not read by mode plain (only by fancy)"));
    assert_null(cfg.origin);
    /* Errors name the schema's keys: a suggestion, a range, the ENUM_COUNT's count, the check across keys. */
    assert_int_equal(dl_cfg_load(&toy_schema, &cfg, NULL, 1, (char *[]){"net.dpth=2"}), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "unknown key 'dpth' in section net (did you mean 'depth'?)"));
    assert_int_equal(dl_cfg_load(&toy_schema, &cfg, NULL, 1, (char *[]){"net.repeat=every:9"}), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "N must be between 2 and 5"));
    assert_int_equal(dl_cfg_load(&toy_schema, &cfg, NULL, 1, (char *[]){"net.source="}), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "expected builtin or a file, got an empty value"));
    assert_int_equal(dl_cfg_load(&toy_schema, &cfg, NULL, 2, (char *[]){"net.repeat=every:5", "net.depth=2"}),
                     DL_ERR_CONFIG);
    assert_string_equal(dl_error_message(), "override 'net.depth=2': net.repeat every:5 is deeper than net.depth 2");
    assert_int_equal(dl_cfg_load_string(&toy_schema, &cfg, "colour: red\n", 12, "toy.yaml"), DL_ERR_CONFIG);
    assert_non_null(strstr(dl_error_message(), "toy.yaml:1: unknown section 'colour'"));
    dl_error_clear();
}

/* ckpt reads the gpt shape of a stored config with rows of its own (it sits below models/, which owns the model
 * section): each of them must be the model section's key with its type, choices and default, or an old checkpoint
 * missing a key would read as another shape than the run that wrote it. */
static void stored_shape_rows_match_the_model_section(void **state) {
    (void)state;
    const dl_cfg_schema *stored = &dl_weights_stored_shape_schema;
    int n = dl_cfg_num_keys(stored);
    assert_true(n >= 7);
    for (int i = 0; i < n; i++) {
        const dl_cfg_section *section = NULL;
        const dl_cfg_key *key = dl_cfg_key_at(stored, i, &section);
        char dotted[96];
        snprintf(dotted, sizeof dotted, "%s.%s", section->name, key->name);
        const dl_cfg_key *model = dl_cfg_key_at(&dl_config_schema, dl_cfg_find_dotted(&dl_config_schema, dotted), NULL);
        if (!model)
            DL_TEST_FAIL("ckpt reads %s, which the config does not have", dotted);
        assert_int_equal(key->type, model->type);
        assert_string_equal(key->def, model->def);
        for (int c = 0; key->choices && key->choices[c]; c++)
            assert_string_equal(key->choices[c], model->choices[c]);
    }
    /* A whole resolved config reads: every key but the seven is skipped. */
    dl_config cfg;
    assert_int_equal(dl_config_load(&cfg, NULL, 2, (char *[]){"model.n_layer=3", "model.positions=rope"}), DL_OK);
    char *yaml = NULL;
    assert_int_equal(dl_config_to_yaml(&cfg, 1, &yaml), DL_OK);
    struct {
        int vocab_size, n_layer, n_head, n_embd, max_seq_len, positions;
        double rope_theta;
        struct dl_cfg_origin *origin;
    } shape;
    assert_int_equal(stored->size, sizeof shape);
    assert_int_equal(dl_cfg_load_string(stored, &shape, yaml, strlen(yaml), "stored"), DL_OK);
    assert_int_equal(shape.n_layer, 3);
    assert_int_equal(shape.positions, DL_POSITIONS_ROPE);
    assert_int_equal(shape.n_embd, cfg.model.n_embd);
    dl_cfg_free(stored, &shape);
    free(yaml);
    dl_config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_file_sets_values_and_sources),
        cmocka_unit_test(every_default_is_as_documented),
        cmocka_unit_test(scalar_spellings_are_accepted),
        cmocka_unit_test(unknown_key_names_line_and_nearest_key),
        cmocka_unit_test(unknown_section_names_line_and_nearest),
        cmocka_unit_test(wrong_type_names_key_and_value),
        cmocka_unit_test(out_of_range_gives_the_bounds),
        cmocka_unit_test(bad_enum_lists_the_allowed_values),
        cmocka_unit_test(yaml_syntax_error_names_file_and_line),
        cmocka_unit_test(duplicate_key_names_both_lines),
        cmocka_unit_test(missing_file_is_a_config_error),
        cmocka_unit_test(checks_across_keys),
        cmocka_unit_test(overrides_apply_after_the_file),
        cmocka_unit_test(bad_overrides_name_the_override),
        cmocka_unit_test(to_yaml_reads_back_identically),
        cmocka_unit_test(random_configs_round_trip),
        cmocka_unit_test(every_bundled_config_loads),
        cmocka_unit_test(edit_distance_and_enum_names),
        cmocka_unit_test(print_keys_lists_every_key),
        cmocka_unit_test(docs_key_table_is_current),
        cmocka_unit_test(stored_shape_rows_match_the_model_section),
        cmocka_unit_test(mechanics_work_on_any_schema),
    };
    return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
