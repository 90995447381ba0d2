/* run_guard.c — start-up agreements of a training run (see run_guard.h).
 *
 * The config check costs one all-reduce in the common case: ranks compare a 64-bit hash of their resolved configs.
 * Only when the hashes differ does rank 0 send its config as YAML to the others, each lists what differs from it
 * key by key, and rank 0 gathers the lists so that its one message names every differing rank. */
#include "train/run_guard.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "core/log.h"

enum { DIFF_TEXT_CAP = 1400 };

/* "1, 2 and 5" from a 0/1 flag per rank, at most `cap` bytes. */
static void rank_list(const int64_t *flags, int size, char *buf, size_t cap) {
    size_t used = 0;
    int total = 0, shown = 0;
    buf[0] = '\0';
    for (int r = 0; r < size; r++)
        total += flags[r] != 0;
    for (int r = 0; r < size && used < cap; r++) {
        if (!flags[r])
            continue;
        shown++;
        const char *sep = shown == 1 ? "" : shown == total ? " and " : ", ";
        used += (size_t)snprintf(buf + used, cap - used, "%s%d", sep, r);
    }
}

/* The collective part of a mismatch: rank 0's YAML to everyone, each rank's differences back to rank 0. */
static dl_status explain_mismatch(dl_world *w, const dl_config *cfg, int *report) {
    char *yaml = NULL;
    int64_t len = 0;
    dl_status made = DL_OK;
    if (w->rank == 0) {
        made = dl_config_to_yaml(cfg, 0, &yaml);
        len = made == DL_OK ? (int64_t)strlen(yaml) : -1;
    }
    DL_CHECK(dl_comm_broadcast(w, &len, sizeof len, 0, "config length"));
    if (len < 0) {
        free(yaml);
        return w->rank == 0 ? made : DL_FAIL(DL_ERR_NOMEM, "rank 0 could not write its config for the comparison");
    }
    if (w->rank != 0) {
        yaml = malloc((size_t)len + 1);
        DL_REQUIRE(yaml != NULL, DL_ERR_NOMEM, "out of memory receiving rank 0's config");
    }
    dl_status s = dl_comm_broadcast(w, yaml, (size_t)len, 0, "rank 0's config");
    char mine[DIFF_TEXT_CAP] = "", here[32];
    snprintf(here, sizeof here, "rank %d", w->rank);
    if (s == DL_OK && w->rank != 0) {
        dl_config zero;
        dl_status loaded = dl_config_load_string(&zero, yaml, (size_t)len, "rank 0's config");
        int differ = loaded == DL_OK ? dl_config_diff(&zero, cfg, "rank 0", here, mine, sizeof mine) : -1;
        if (differ < 0)
            snprintf(mine, sizeof mine, "cannot compare with rank 0's config (%s)",
                     loaded != DL_OK ? dl_error_message() : "out of memory");
        dl_config_free(&zero);
    }
    free(yaml);
    DL_CHECK(s);
    void *all = NULL;
    int *lengths = calloc((size_t)w->size, sizeof *lengths);
    DL_REQUIRE(lengths != NULL, DL_ERR_NOMEM, "out of memory comparing configs");
    s = dl_comm_gather_bytes(w, mine, (int)strlen(mine), 0, &all, lengths, "config differences");
    if (s != DL_OK) {
        free(lengths);
        return s;
    }
    dl_status verdict;
    if (w->rank == 0) {
        char text[1900];
        size_t used = 0, offset = 0;
        text[0] = '\0';
        for (int r = 0; r < w->size; r++) {
            if (lengths[r] > 0 && used < sizeof text)
                used += (size_t)snprintf(text + used, sizeof text - used, "%srank %d differs from rank 0: %.*s",
                                         used ? "; " : "", r, lengths[r], (const char *)all + offset);
            offset += (size_t)lengths[r];
        }
        verdict = DL_FAIL(DL_ERR_CONFIG, "the ranks were started with different configs: %s", text);
    } else if (mine[0]) {
        *report = 1;
        verdict = DL_FAIL(DL_ERR_CONFIG, "this rank's config differs from rank 0's: %s", mine);
    } else {
        verdict = DL_FAIL(DL_ERR_CONFIG, "other ranks were started with a config different from rank 0's (rank 0's "
                                         "message lists the keys)");
    }
    dl_error_hint("start every rank with the same config file and overrides; only log.level may differ");
    free(all);
    free(lengths);
    return verdict;
}

dl_status dl_run_agree_config(dl_world *w, int loaded, const dl_config *cfg, int *report) {
    int report_here = 0;
    if (!report)
        report = &report_here;
    *report = 1;
    DL_REQUIRE(w && (cfg || !loaded), DL_ERR_INVALID, "dl_run_agree_config: bad arguments");
    *report = w->rank == 0;
    /* The failing rank's own message must survive the collectives below. */
    dl_status own = loaded ? DL_OK : dl_error_status();
    if (own == DL_OK)
        own = DL_ERR_CONFIG;
    char own_message[2048];
    snprintf(own_message, sizeof own_message, "%s", dl_error_message());
    uint64_t hash = 0;
    int hashed = loaded && dl_config_rank_hash(cfg, &hash) == DL_OK;
    int64_t *flags = calloc((size_t)w->size, sizeof *flags);
    DL_REQUIRE(flags != NULL, DL_ERR_NOMEM, "out of memory comparing configs");
    flags[w->rank] = !hashed;
    dl_status s = dl_comm_allreduce_sum_i64(w, flags, (size_t)w->size, "config check");
    int failures = 0;
    for (int r = 0; s == DL_OK && r < w->size; r++)
        failures += flags[r] != 0;
    if (s == DL_OK && failures > 0) {
        char ranks[256];
        rank_list(flags, w->size, ranks, sizeof ranks);
        int flags0 = flags[0] != 0;
        free(flags);
        if (!loaded) {
            *report = w->rank == 0 || !flags0;
            dl_error_set(own, "", 0, "%s", own_message);
            return own;
        }
        if (!hashed)
            return DL_FAIL(DL_ERR_NOMEM, "out of memory hashing the config");
        return DL_FAIL(DL_ERR_CONFIG, "rank%s %s could not load the config (see %s message above)",
                       failures == 1 ? "" : "s", ranks, failures == 1 ? "its" : "their");
    }
    free(flags);
    DL_CHECK(s);
    int64_t lo = (int64_t)hash, hi = (int64_t)hash;
    DL_CHECK(dl_comm_allreduce_min_i64(w, &lo, 1, "config hash"));
    DL_CHECK(dl_comm_allreduce_max_i64(w, &hi, 1, "config hash"));
    if (lo == hi)
        return DL_OK;
    return explain_mismatch(w, cfg, report);
}

/* ---- the run directory ------------------------------------------------------------------------------------------- */

static int is_step_file(const char *name) {
    size_t n = strlen(name);
    return strncmp(name, "step_", 5) == 0 &&
           ((n > 3 && strcmp(name + n - 3, ".h5") == 0) || (n > 7 && strcmp(name + n - 7, ".h5.tmp") == 0));
}

/* Counts the step files and `latest` in DIR/ckpt; with `remove`, deletes them. */
static dl_status old_checkpoints(const char *run_dir, int remove, int *count) {
    *count = 0;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? DL_OK : DL_FAIL(DL_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    dl_status s = DL_OK;
    struct dirent *e;
    while (s == DL_OK && (e = readdir(d)) != NULL) {
        if (!is_step_file(e->d_name) && strcmp(e->d_name, "latest") != 0)
            continue;
        (*count)++;
        if (remove) {
            char path[4600];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            s = dl_remove_if_exists(path);
        }
    }
    closedir(d);
    return s;
}

/* What run.overwrite clears besides checkpoints: the records a fresh run would append to. */
static dl_status clear_records(const char *run_dir) {
    char path[4300];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    DL_CHECK(dl_remove_if_exists(path));
    DIR *d = opendir(run_dir);
    if (!d)
        return DL_FAIL(DL_ERR_IO, "cannot list %s: %s", run_dir, strerror(errno));
    dl_status s = DL_OK;
    struct dirent *e;
    while (s == DL_OK && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "events.out.tfevents.", 20) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", run_dir, e->d_name);
        s = dl_remove_if_exists(path);
    }
    closedir(d);
    return s;
}

static dl_status claim_on_rank0(const dl_config *cfg, dl_dir_lock *lock) {
    const char *dir = cfg->run.dir;
    DL_REQUIRE(dir[0], DL_ERR_CONFIG, "run.dir is empty: name the directory the run writes to");
    char stale[600];
    DL_CHECK(dl_dir_lock_acquire(lock, dir, "run.dir", stale, sizeof stale));
    if (stale[0])
        DL_WARN("run.dir %s: taking over the lock left by %s, which ended without releasing it", dir, stale);
    if (cfg->train.resume != DL_RESUME_NEVER)
        return DL_OK;
    int found = 0;
    DL_CHECK(old_checkpoints(dir, 0, &found));
    if (found == 0 && !cfg->run.overwrite)
        return DL_OK;
    if (!cfg->run.overwrite) {
        dl_status s = DL_FAIL(DL_ERR_INVALID, "train.resume=never but run.dir %s already holds checkpoints (%d files "
                              "in %s/ckpt): a fresh run there would mix its step files with the old run's",
                              dir, found, dir);
        dl_error_hint("give this run another run.dir, resume the old run (train.resume=auto), or set "
                      "run.overwrite=true to delete the old run's checkpoints and metrics and start over");
        return s;
    }
    DL_CHECK(old_checkpoints(dir, 1, &found));
    DL_CHECK(clear_records(dir));
    DL_WARN("run.overwrite: deleted the previous run's %d checkpoint file%s, metrics.jsonl and event files in %s",
            found, found == 1 ? "" : "s", dir);
    return DL_OK;
}

dl_status dl_run_claim_dir(dl_world *w, const dl_config *cfg, dl_dir_lock *lock) {
    DL_REQUIRE(w && cfg && lock, DL_ERR_INVALID, "dl_run_claim_dir: NULL argument");
    lock->fd = -1;
    lock->path = NULL;
    dl_status local = w->rank == 0 ? claim_on_rank0(cfg, lock) : DL_OK;
    int64_t code = local == DL_OK ? 0 : -(int64_t)local;
    dl_status s = dl_comm_allreduce_max_i64(w, &code, 1, "run directory check");
    if (local != DL_OK) {
        dl_dir_lock_release(lock);
        return local;
    }
    DL_CHECK(s);
    if (code != 0)
        return DL_FAIL((dl_status)(-code), "rank 0 could not claim run.dir %s (see its message above)", cfg->run.dir);
    return DL_OK;
}
