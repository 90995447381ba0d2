/* test_run_guards.c — the pieces behind "What dealer guarantees" (docs/training.md), one process each: keys a model
 * kind does not read are refused (and only those), config differences and hashes as ranks compare them, outputs
 * that are an input by another name, the run directory's lock (held, released, taken over from a dead holder), and
 * the one checkpoint resolver every command uses. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt/checkpoint.h"
#include "train/run_config.h"
#include "core/dirlock.h"
#include "core/fs.h"
#include "data/record.h"

static char dir[64];

static int make_dir(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/dealer_test_guards_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect_message(const char *want) {
    if (!strstr(dl_error_message(), want))
        DL_TEST_FAIL("message lacks '%s': %s", want, dl_error_message());
}

/* ---- keys a kind does not read ----------------------------------------------------------------------------------- */

static void unread_keys_are_refused_naming_the_kind(void **state) {
    (void)state;
    dl_config cfg;
    char *gpt_k[] = {"model.k=8"};
    assert_int_equal(dl_config_load(&cfg, NULL, 1, gpt_k), DL_ERR_CONFIG);
    expect_message("override 'model.k=8': model.k is not read by model.kind gpt (only by fm,ffm)");
    char *fm_fields[] = {"model.kind=fm", "model.num_fields=10"};
    assert_int_equal(dl_config_load(&cfg, NULL, 2, fm_fields), DL_ERR_CONFIG);
    expect_message("model.num_fields is not read by model.kind fm (only by ffm)");
    char *ffm_dpo[] = {"model.kind=ffm", "dpo.beta=0.5"};
    assert_int_equal(dl_config_load(&cfg, NULL, 2, ffm_dpo), DL_ERR_CONFIG);
    expect_message("dpo.beta is not read by model.kind ffm (only by dpo)");
    /* From a file: the line is named. */
    char path[128];
    snprintf(path, sizeof path, "%s/ffm.yaml", dir);
    write_text(path, "model:\n  kind: ffm\n  n_layer: 3\n");
    assert_int_equal(dl_config_load(&cfg, path, 0, NULL), DL_ERR_CONFIG);
    expect_message("ffm.yaml:3: model.n_layer is not read by model.kind ffm");
    dl_error_clear();
}

static void read_keys_and_defaults_pass(void **state) {
    (void)state;
    dl_config cfg;
    /* The key's own kind reads it; a value equal to the default is harmless (a run's config.yaml lists all keys). */
    char *ffm[] = {"model.kind=ffm", "model.num_fields=10", "model.n_layer=12", "data.seq_len=1024"};
    DL_EXPECT_OK(dl_config_load(&cfg, NULL, 4, ffm));
    dl_config_free(&cfg);
    char *gpt_init[] = {"model.init_from=runs/x"};
    DL_EXPECT_OK(dl_config_load(&cfg, NULL, 1, gpt_init));
    /* A resolved config, every key written out, loads back under the same rules. */
    char *yaml = NULL;
    DL_EXPECT_OK(dl_config_to_yaml(&cfg, 0, &yaml));
    char path[128];
    snprintf(path, sizeof path, "%s/resolved.yaml", dir);
    write_text(path, yaml);
    free(yaml);
    dl_config again;
    DL_EXPECT_OK(dl_config_load(&again, path, 0, NULL));
    assert_true(dl_config_equal(&cfg, &again));
    dl_config_free(&again);
    dl_config_free(&cfg);
    assert_true(dl_config_key_read_by("model.init_from", DL_MODEL_GPT));
    assert_true(dl_config_key_read_by("model.init_from", DL_MODEL_DPO));
    assert_false(dl_config_key_read_by("model.init_from", DL_MODEL_FM));
    assert_true(dl_config_key_read_by("optim.lr", DL_MODEL_FFM));
    assert_false(dl_config_key_read_by("no.such_key", DL_MODEL_GPT));
}

/* Every row of the read-by column names a key of the schema (a renamed key must not leave a dead row). */
static void every_kind_row_names_a_key(void **state) {
    (void)state;
    int kind_specific = 0;
    const dl_cfg_schema *schema = &dl_config_schema;
    unsigned all = dl_cfg_all_readers(schema);
    assert_int_equal(all, (1u << DL_MODEL_GPT) | (1u << DL_MODEL_FM) | (1u << DL_MODEL_FFM) | (1u << DL_MODEL_DPO));
    for (int i = 0; i < dl_cfg_num_keys(schema); i++) {
        unsigned kinds = dl_cfg_key_readers(schema, i);
        assert_true(kinds != 0 && (kinds & ~all) == 0);
        kind_specific += kinds != all;
    }
    assert_true(kind_specific > 0);
    char first[96];
    int dead = dl_cfg_readers_unknown(schema, first, sizeof first);
    if (dead != 0)
        DL_TEST_FAIL("%d read-by rows name no key of the schema (first: %s)", dead, first);
}

/* ---- what ranks compare ------------------------------------------------------------------------------------------- */

static void diff_and_hash_see_every_shared_key(void **state) {
    (void)state;
    dl_config a, b;
    char *ov_a[] = {"optim.lr=1e-3", "run.dir=x", "log.level=info"};
    char *ov_b[] = {"optim.lr=2e-3", "run.dir=y", "log.level=debug"};
    DL_EXPECT_OK(dl_config_load(&a, NULL, 3, ov_a));
    DL_EXPECT_OK(dl_config_load(&b, NULL, 3, ov_b));
    char text[512];
    assert_int_equal(dl_config_diff(&a, &b, "rank 0", "rank 1", text, sizeof text), 2);
    if (strcmp(text, "run.dir = \"x\" (rank 0) vs \"y\" (rank 1); optim.lr = 0.001 (rank 0) vs 0.002 (rank 1)") != 0)
        DL_TEST_FAIL("diff text: %s", text);
    uint64_t ha, hb;
    DL_EXPECT_OK(dl_config_rank_hash(&a, &ha));
    DL_EXPECT_OK(dl_config_rank_hash(&b, &hb));
    assert_true(ha != hb);
    dl_config_free(&b);
    /* Only the rank-local log level differs: no difference, the same hash. */
    char *ov_c[] = {"optim.lr=1e-3", "run.dir=x", "log.level=error"};
    DL_EXPECT_OK(dl_config_load(&b, NULL, 3, ov_c));
    assert_int_equal(dl_config_diff(&a, &b, "a", "b", text, sizeof text), 0);
    assert_string_equal(text, "");
    DL_EXPECT_OK(dl_config_rank_hash(&b, &hb));
    assert_true(ha == hb);
    dl_config_free(&b);
    dl_config_free(&a);
    /* A long list of differences is cut, not overflowed. */
    char *many_a[] = {"optim.lr=1e-3", "optim.beta1=0.5", "optim.beta2=0.5", "train.steps=7", "run.seed=3"};
    char *many_b[] = {"optim.lr=2e-3", "optim.beta1=0.6", "optim.beta2=0.6", "train.steps=8", "run.seed=4"};
    DL_EXPECT_OK(dl_config_load(&a, NULL, 5, many_a));
    DL_EXPECT_OK(dl_config_load(&b, NULL, 5, many_b));
    char small[48];
    assert_int_equal(dl_config_diff(&a, &b, "a", "b", small, sizeof small), 5);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_string_equal(small + sizeof small - 4, "...");
    dl_config_free(&a);
    dl_config_free(&b);
}

/* ---- outputs are never inputs ------------------------------------------------------------------------------------- */

static void output_equal_to_input_by_any_name_is_refused(void **state) {
    (void)state;
    char input[128], link_path[128], hard[128], other[128], via_dots[160], idx_clash[128];
    snprintf(input, sizeof input, "%s/in.txt", dir);
    snprintf(link_path, sizeof link_path, "%s/link.txt", dir);
    snprintf(hard, sizeof hard, "%s/hard.txt", dir);
    snprintf(other, sizeof other, "%s/out.tfrecord", dir);
    snprintf(via_dots, sizeof via_dots, "%s/../%s/in.txt", dir, strrchr(dir, '/') + 1);
    write_text(input, "some text\n");
    assert_int_equal(symlink(input, link_path), 0);
    assert_int_equal(link(input, hard), 0);
    const char *same[] = {input, link_path, hard, via_dots};
    for (int i = 0; i < 4; i++) {
        DL_EXPECT_INVALID(dl_check_output_not_input(same[i], input, "-o"));
        expect_message("writing it would destroy the input");
    }
    DL_EXPECT_OK(dl_check_output_not_input(other, input, "-o")); /* does not exist yet */
    write_text(other, "x");
    DL_EXPECT_OK(dl_check_output_not_input(other, input, "-o")); /* another file */
    /* The index written beside a record output may not land on the input either. */
    snprintf(idx_clash, sizeof idx_clash, "%s/in", dir);
    char idx_input[128];
    snprintf(idx_input, sizeof idx_input, "%s/in.idx", dir);
    write_text(idx_input, "not an index");
    DL_EXPECT_INVALID(dl_check_output_not_input(idx_clash, idx_input, "-o"));
    expect_message("would write its index");
    DL_EXPECT_INVALID(dl_check_output_not_input(dir, input, "-o"));
    expect_message("is a directory");
    DL_EXPECT_INVALID(dl_check_input_file(dir, NULL));
    expect_message("is a directory, not a file");
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.txt", dir);
    DL_EXPECT_INVALID(dl_check_input_file(missing, NULL));
    dl_error_clear();
}

/* ---- the run directory's lock ----------------------------------------------------------------------------------- */

static void lock_names_its_holder_and_is_taken_over_when_stale(void **state) {
    (void)state;
    char run[128], lock_path[160], holder[128];
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(lock_path, sizeof lock_path, "%s/run/" DL_DIR_LOCK_NAME, dir);
    dl_dir_lock lock;
    char stale[256];
    DL_EXPECT_OK(dl_dir_lock_acquire(&lock, run, "run.dir", stale, sizeof stale));
    assert_string_equal(stale, "");
    /* Another process cannot take it, and is told who holds it; its attempt leaves the holder's line alone. */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        dl_dir_lock other;
        dl_status s = dl_dir_lock_acquire(&other, run, "run.dir", NULL, 0);
        char want[64];
        snprintf(want, sizeof want, "(pid %ld on host ", (long)getppid());
        _exit(s == DL_ERR_INVALID && strstr(dl_error_message(), "is in use by another run") &&
                      strstr(dl_error_message(), want)
                  ? 0
                  : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    FILE *f = fopen(lock_path, "r");
    assert_non_null(f);
    assert_non_null(fgets(holder, sizeof holder, f));
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, " %ld\n", (long)getpid());
    if (!strstr(holder, want))
        DL_TEST_FAIL("lock file holds '%s', want our pid", holder);
    /* Released: the file is emptied, the next taker has nothing to warn about. */
    dl_dir_lock_release(&lock);
    DL_EXPECT_OK(dl_dir_lock_acquire(&lock, run, "run.dir", stale, sizeof stale));
    assert_string_equal(stale, "");
    dl_dir_lock_release(&lock);
    dl_dir_lock_release(&lock); /* twice is safe */
    /* A line left by a process that died holding it: taken over, named. */
    write_text(lock_path, "deadhost 4242\n");
    DL_EXPECT_OK(dl_dir_lock_acquire(&lock, run, "run.dir", stale, sizeof stale));
    assert_string_equal(stale, "pid 4242 on host deadhost");
    dl_dir_lock_release(&lock);
    /* A file where the directory belongs. */
    char file[128];
    snprintf(file, sizeof file, "%s/plain", dir);
    write_text(file, "x");
    DL_EXPECT_INVALID(dl_dir_lock_acquire(&lock, file, "run.dir", NULL, 0));
    expect_message("is a file, not a directory");
    dl_error_clear();
}

/* ---- one checkpoint resolver ------------------------------------------------------------------------------------- */

static void resolver_takes_every_form_and_names_the_rest(void **state) {
    (void)state;
    char run[128], ckpt_dir[160], step[200], latest[200], got[4300];
    snprintf(run, sizeof run, "%s/r", dir);
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s/ckpt", run);
    assert_int_equal(mkdir(run, 0755), 0);
    assert_int_equal(mkdir(ckpt_dir, 0755), 0);
    snprintf(step, sizeof step, "%s/step_00000007.h5", ckpt_dir);
    snprintf(latest, sizeof latest, "%s/latest", ckpt_dir);
    /* The resolver only looks at the signature; the loaders check the rest. */
    static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(step, "wb");
    assert_non_null(f);
    fwrite(signature, 1, 8, f);
    fclose(f);
    write_text(latest, "step_00000007.h5\n");
    const char *forms[] = {run, ckpt_dir, latest, step};
    for (int i = 0; i < 4; i++) {
        DL_EXPECT_OK(dl_ckpt_resolve(forms[i], NULL, got, sizeof got));
        assert_string_equal(got, step);
    }
    char records[128], text[128], empty_dir[128];
    snprintf(records, sizeof records, "%s/x.tfrecord", dir);
    snprintf(text, sizeof text, "%s/notes.txt", dir);
    snprintf(empty_dir, sizeof empty_dir, "%s/empty", dir);
    assert_int_equal(mkdir(empty_dir, 0755), 0);
    write_text(text, "just some notes that are longer than a latest file would ever be, to be sure of it, "
                     "with more words here and there to pass two hundred and fifty six bytes of plain text; "
                     "a latest file is one short line naming a step file.\n");
    dl_record_writer *writer = NULL;
    DL_EXPECT_OK(dl_record_writer_open(&writer, records));
    DL_EXPECT_OK(dl_record_writer_append(writer, "payload", 7));
    DL_EXPECT_OK(dl_record_writer_close(writer));
    struct {
        const char *arg, *want;
    } bad[] = {
        {records, "is a record file (TFRecord), not a checkpoint or a run directory"},
        {text, "is a plain file, not a checkpoint or a run directory"},
        {empty_dir, "is a directory with no checkpoint"},
        {"/nonexistent/dealer/x", "no such checkpoint file or run directory"},
        {"", "is empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        DL_EXPECT_INVALID(dl_ckpt_resolve(bad[i].arg, "CKPT", got, sizeof got));
        expect_message(bad[i].want);
    }
    /* latest naming a missing step file. */
    write_text(latest, "step_00000009.h5\n");
    DL_EXPECT_INVALID(dl_ckpt_resolve(run, NULL, got, sizeof got));
    expect_message("which is missing");
    dl_error_clear();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unread_keys_are_refused_naming_the_kind),
        cmocka_unit_test(read_keys_and_defaults_pass),
        cmocka_unit_test(every_kind_row_names_a_key),
        cmocka_unit_test(diff_and_hash_see_every_shared_key),
        cmocka_unit_test(output_equal_to_input_by_any_name_is_refused),
        cmocka_unit_test(lock_names_its_holder_and_is_taken_over_when_stale),
        cmocka_unit_test(resolver_takes_every_form_and_names_the_rest),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
