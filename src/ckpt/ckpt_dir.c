/* ckpt_dir.c — a run's ckpt/ directory: step files named step_NNNNNNNN.h5, `latest` naming the newest complete
 * one (replaced atomically after the step file is renamed into place), and the pruning of old steps and of the
 * temporaries of dead writers. dl_ckpt_save writes there; dl_ckpt_latest finds what to resume from. */
#include "ckpt/ckpt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/log.h"

static int parse_step_name(const char *name, int64_t *step) {
    long long v;
    int used = 0;
    if (strncmp(name, "step_", 5) != 0)
        return 0;
    if (sscanf(name, "step_%8lld.h5%n", &v, &used) == 1 && used > 0 && name[used] == '\0' && v >= 0) {
        *step = v;
        return 1;
    }
    return 0;
}

/* Deletes complete checkpoints older than the newest `keep` up to `current` (later steps belong to a run this one
 * branched from and are left alone), except multiples of keep_every, and leftover step_*.h5.tmp[.*] files of dead
 * writers (this run's own temporary is renamed by now, and a run directory has one run at a time). */
static void prune(const char *dir, int64_t current, int keep, int keep_every) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    int64_t *steps = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *tmp_mark = strstr(e->d_name, ".h5.tmp");
        if (tmp_mark && strncmp(e->d_name, "step_", 5) == 0 && (tmp_mark[7] == '\0' || tmp_mark[7] == '.')) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (unlink(path) != 0 && errno != ENOENT)
                DL_WARN("could not delete leftover %s: %s", path, strerror(errno));
            continue;
        }
        int64_t step;
        if (keep > 0 && parse_step_name(e->d_name, &step) && step <= current) {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                int64_t *grown = realloc(steps, cap * sizeof *grown);
                if (!grown)
                    break;
                steps = grown;
            }
            steps[n++] = step;
        }
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        size_t newer = 0;
        for (size_t j = 0; j < n; j++)
            newer += steps[j] > steps[i];
        if (steps[i] == current || newer < (size_t)keep || (keep_every > 0 && steps[i] % keep_every == 0))
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/step_%08lld.h5", dir, (long long)steps[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            DL_WARN("could not delete old checkpoint %s: %s", path, strerror(errno));
    }
    free(steps);
}

dl_status dl_ckpt_save(dl_world *world, const char *run_dir, const dl_ckpt_meta *meta, const dl_ckpt_tensors *t,
                       const uint8_t *cursor, size_t cursor_len, const dl_ckpt_options *options, char *path_out,
                       size_t path_cap) {
    DL_REQUIRE(world && run_dir && meta && t, DL_ERR_INVALID, "dl_ckpt_save: NULL argument");
    DL_REQUIRE(meta->step >= 0 && meta->step <= 99999999, DL_ERR_INVALID,
               "checkpoint step %lld does not fit the 8-digit file name", (long long)meta->step);
    char dir[4096], path[4200];
    int n = snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    DL_REQUIRE(n > 0 && (size_t)n < sizeof dir, DL_ERR_INVALID, "run directory path '%s' is too long", run_dir);
    snprintf(path, sizeof path, "%s/step_%08lld.h5", dir, (long long)meta->step);
    dl_status s = world->rank == 0 ? dl_make_dirs(dir) : DL_OK;
    DL_CHECK(dl_ckpt_agree(world, s, "checkpoint directory"));
    DL_CHECK(dl_ckpt_write(world, path, meta, t, cursor, cursor_len, options));
    if (world->rank == 0) {
        dl_ckpt_maybe_kill(world, "rename", meta->step);
        char latest[4200], line[64];
        snprintf(latest, sizeof latest, "%s/latest", dir);
        int len = snprintf(line, sizeof line, "step_%08lld.h5\n", (long long)meta->step);
        s = dl_write_file_atomic(latest, line, (size_t)len);
        if (s == DL_OK)
            prune(dir, meta->step, options ? options->keep : 0, options ? options->keep_every : 0);
        if (s == DL_OK && path_out)
            snprintf(path_out, path_cap, "%s", path);
    }
    return dl_ckpt_agree(world, s, "checkpoint latest");
}

dl_status dl_ckpt_latest(const char *run_dir, char *path, size_t cap, int *found) {
    DL_REQUIRE(run_dir && path && found, DL_ERR_INVALID, "dl_ckpt_latest: NULL argument");
    *found = 0;
    char latest[4200];
    snprintf(latest, sizeof latest, "%s/ckpt/latest", run_dir);
    FILE *f = fopen(latest, "r");
    if (!f)
        return errno == ENOENT ? DL_OK : DL_FAIL(DL_ERR_IO, "cannot read %s: %s", latest, strerror(errno));
    char name[256] = "";
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    int64_t step;
    if (!ok || !parse_step_name(name, &step)) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s: expected a line 'step_NNNNNNNN.h5', got '%s'", latest, name);
        dl_error_hint("delete it to start afresh, or write the name of a checkpoint in it");
        return s;
    }
    int n = snprintf(path, cap, "%s/ckpt/%s", run_dir, name);
    DL_REQUIRE(n > 0 && (size_t)n < cap, DL_ERR_INVALID, "checkpoint path under '%s' is too long", run_dir);
    if (access(path, R_OK) != 0) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "%s names %s, which cannot be read: %s", latest, path, strerror(errno));
        dl_error_hint("point latest at an existing step file, or start over with train.resume=never "
                      "run.overwrite=true");
        return s;
    }
    *found = 1;
    return DL_OK;
}
