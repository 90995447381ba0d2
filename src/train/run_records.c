/* run_records.c — metrics.jsonl, TensorBoard events and the step log's flushes (run_records.h). */
#include "train/run_records.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "comm/world.h"
#include "core/fs.h"

void dl_run_records_init(dl_run_records *r) {
    if (!r)
        return;
    memset(r, 0, sizeof *r);
    r->metrics_fd = -1;
}

dl_status dl_run_records_open(dl_run_records *r, const char *run_dir, int jsonl, int tensorboard,
                              int64_t resumed_step) {
    DL_REQUIRE(r != NULL && run_dir != NULL, DL_ERR_INVALID, "dl_run_records_open: NULL argument");
    if (jsonl) {
        snprintf(r->metrics_path, sizeof r->metrics_path, "%s/metrics.jsonl", run_dir);
        r->metrics_fd = open(r->metrics_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
        DL_REQUIRE(r->metrics_fd >= 0, DL_ERR_IO, "cannot open %s: %s", r->metrics_path, strerror(errno));
    }
    if (tensorboard) {
        DL_CHECK(dl_tb_open(&r->tb, run_dir));
        /* A resumed run: TensorBoard drops what older files logged from this step on (the steps redone). */
        if (resumed_step > 0)
            DL_CHECK(dl_tb_session_start(r->tb, resumed_step + 1));
    }
    return DL_OK;
}

void dl_run_records_close(dl_run_records *r) {
    if (!r)
        return;
    if (r->metrics_fd >= 0)
        close(r->metrics_fd);
    dl_tb_close(r->tb);
    r->metrics_fd = -1;
    r->tb = NULL;
}

/* Notes the first failed write, from the error just recorded; later ones are not written at all. */
static void note_failure(dl_run_records *r) {
    if (r->failed)
        return;
    r->failed = 1;
    snprintf(r->error, sizeof r->error, "%s", dl_error_message());
}

void dl_run_records_line(dl_run_records *r, int64_t step, const char *line, size_t len) {
    if (!r || r->metrics_fd < 0 || r->failed || !line || len == 0)
        return;
    struct stat st;
    off_t before = fstat(r->metrics_fd, &st) == 0 ? st.st_size : -1;
    int err = dl_write_whole_or_cut(r->metrics_fd, line, len, before);
    if (!err)
        return;
    DL_FAIL(DL_ERR_IO, "cannot write %s at step %lld: %s", r->metrics_path, (long long)step, strerror(err));
    if (err == ENOSPC || err == EDQUOT)
        dl_error_hint("the disk is full: free space, then rerun to resume from the last checkpoint");
    note_failure(r);
}

void dl_run_records_scalars(dl_run_records *r, int64_t step, int n, const char *const *tags, const double *values) {
    if (!r || !r->tb || r->failed)
        return;
    if (dl_tb_scalars(r->tb, step, n, tags, values) != DL_OK)
        note_failure(r);
}

void dl_run_records_flush_stdout(dl_run_records *r, int64_t step) {
    if (fflush(stdout) == 0 || !r || r->failed)
        return;
    int err = errno;
    DL_FAIL(DL_ERR_IO, "cannot write the step log to stdout at step %lld: %s", (long long)step, strerror(err));
    if (err == ENOSPC || err == EDQUOT)
        dl_error_hint("the disk holding the log is full: free space, then rerun to resume from the last checkpoint");
    note_failure(r);
}

int dl_run_records_terminal(void) {
    static int answer = -1;
    if (answer < 0) {
        const char *forced = getenv("DEALER_PROGRESS");
        if (forced && *forced)
            answer = strcmp(forced, "0") != 0;
        else /* SLURM_PROCID too: a batch step's output is a file even when srun passes a terminal through */
            answer = isatty(STDOUT_FILENO) && !dl_world_launched() && !getenv("SLURM_PROCID");
    }
    return answer;
}

const char *dl_json_figure(dl_json_figures *f, const char *name, double v) {
    if (!isfinite(v)) {
        if (f->used < sizeof f->reason)
            f->used += (size_t)snprintf(f->reason + f->used, sizeof f->reason - f->used, "%s%s is %s",
                                        f->used ? ", " : "", name, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return "null";
    }
    char *slot = f->slots[f->next++ % 12];
    snprintf(slot, sizeof f->slots[0], "%.6g", v);
    return slot;
}

void dl_json_reason(const dl_json_figures *f, char *buf, size_t cap) {
    if (f->used)
        snprintf(buf, cap, ", \"reason\": \"%s\"", f->reason);
    else if (cap)
        buf[0] = '\0';
}
