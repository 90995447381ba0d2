/* cli_common.c — helpers every subcommand shares: reporting a failure as one line and the exit code, and finding the
 * tokenizer a checkpoint was trained with. */
#include <stdio.h>
#include <string.h>

#include <sys/stat.h>

#include "cli/commands.h"
#include "core/log.h"
#include "core/status.h"
#include "data/tokenizer.h"

int dl_cli_report(const char *command, int status) {
    fprintf(stderr, "dealer %s: error: %s\n", command, dl_error_message());
    return dl_status_exit_code((dl_status)status);
}

int dl_cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* The run directory of a checkpoint file: the parent of its ckpt/ folder, or the folder holding it. */
static void run_dir_of(const char *ckpt_path, char *dir, size_t cap) {
    snprintf(dir, cap, "%s", ckpt_path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(dir, cap, ".");
        return;
    }
    *slash = '\0';
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    if (strcmp(base, "ckpt") == 0) {
        if (base == dir)
            snprintf(dir, cap, ".");
        else
            dir[base - dir - 1] = '\0';
    }
}

dl_status dl_cli_checkpoint_tokenizer(const char *ckpt_path, const char *recorded_hash, const char *override,
                                      dl_tokenizer **out, char *name, size_t name_cap) {
    DL_REQUIRE(ckpt_path && out && name && name_cap, DL_ERR_INVALID, "dl_cli_checkpoint_tokenizer: NULL argument");
    char dir[4300], path[4400];
    run_dir_of(ckpt_path, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    struct stat st;
    const char *use = override ? override : stat(path, &st) == 0 ? path : "bytes";
    snprintf(name, name_cap, "%s", use);
    DL_CHECK_CTX(dl_tokenizer_load(use, out), "%s", override ? "--tokenizer" : "the run's tokenizer");
    uint64_t want = DL_TOKENIZER_BYTES_HASH;
    if (recorded_hash && recorded_hash[0])
        DL_CHECK_CTX(dl_tokenizer_parse_hash(recorded_hash, &want), "%s: tokenizer_hash", ckpt_path);
    uint64_t have = dl_tokenizer_hash(*out);
    if (have == want)
        return DL_OK;
    if (!(recorded_hash && recorded_hash[0]) && override) {
        /* a checkpoint that recorded none (imported, or older than tokenizers): the user's word stands */
        dl_log(DL_LOG_WARN, "%s records no tokenizer; using %s as told", ckpt_path, override);
        return DL_OK;
    }
    char a[17], b[17];
    dl_tokenizer_hash_hex(want, a);
    dl_tokenizer_hash_hex(have, b);
    dl_tokenizer_free(*out);
    *out = NULL;
    dl_status s = DL_FAIL(DL_ERR_INVALID, "%s was trained with tokenizer %s%s but %s is tokenizer %s", ckpt_path, a,
                          want == DL_TOKENIZER_BYTES_HASH ? " (byte-level)" : "", use, b);
    dl_error_hint("pass the tokenizer the run used (--tokenizer PATH); the run directory keeps it as tokenizer.json");
    return s;
}
