/* cmd_ckpt.c — `dealer ckpt {ls,show,diff,export,import}`: list, inspect, compare, export and import checkpoints.
 *
 * Everything reads through the checkpoint module's serial reader (ckpt/checkpoint.h), so these commands need no
 * MPI and work on a laptop with a copy of a run directory. Exit codes: 0 ok, 1 `diff` found a difference (or an I/O
 * failure), 2 bad usage or a bad file (unreadable, damaged: a CRC mismatch is reported for every tensor, then exit 2).
 * The safetensors writer is dl_ckpt_export_safetensors (ckpt/checkpoint.h); the Hugging Face directory export and
 * the import of GPT-2 weights are ckpt/hf_gpt2.h and ckpt/weights.h. `import` writes an HDF5 checkpoint, which goes
 * through the (parallel) checkpoint writer: it starts MPI as a one-rank job, like `dealer train` does. */
#include <errno.h>
#include <limits.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>

#include "cli/commands.h"
#include "core/fs.h"
#include "core/status.h"
#include "data/loader.h"
#include "ckpt/checkpoint.h"
#include "ckpt/hf_export.h"
#include "ckpt/hf_gpt2.h"
#include "ckpt/weights.h"
#include "comm/world.h"
#include "train/run_config.h"
#include "data/tokenizer.h"
#include "models/gpt.h"

static void usage(FILE *out) {
    fprintf(out, "usage: dealer ckpt <command> [options]\n\n"
                 "  ls PATH                    list the checkpoints of a run (PATH: run dir, its ckpt/ or a file)\n"
                 "  show FILE [--tensors] [--stats]\n"
                 "                             meta, data cursors and config; with --tensors every tensor (shape,\n"
                 "                             dtype, bytes, CRC status); --stats adds mean/std/min/max\n"
                 "  diff A B [--tol T]         per-tensor max |a-b| and relative difference ||a-b||/||b||;\n"
                 "                             exit 1 when a tensor differs by more than T (default 0: bit-exact)\n"
                 "  export FILE --format safetensors -o OUT\n"
                 "                             the model's tensors as safetensors (PyTorch, Hugging Face)\n"
                 "  export FILE --format hf -o DIR [--tokenizer tokenizer.json]\n"
                 "                             a Hugging Face GPT-2 model directory (config.json, model.safetensors,\n"
                 "                             and tokenizer.json: --tokenizer, else the run directory's own)\n"
                 "  import SRC -o OUT.h5 [--n-head H] [--tokenizer tokenizer.json]\n"
                 "                             a dealer checkpoint from a Hugging Face GPT-2 directory (config.json +\n"
                 "                             model.safetensors) or a .safetensors file; prints the model section of\n"
                 "                             a config that fits it (--n-head: for a bare file without config.json).\n"
                 "                             The tokenizer (--tokenizer, else the directory's tokenizer.json) is\n"
                 "                             recorded as the checkpoint's data.tokenizer and its hash\n\n"
                 "FILE, A and B are a step file, a ckpt/latest file, or a run directory (or its ckpt/): its latest\n"
                 "checkpoint, as in every dealer command. OUT may not be the checkpoint itself. See\n"
                 "docs/checkpoint-format.md.\n"
                 "Exit codes: 0 ok, 1 tensors differ (diff) or I/O failure, 2 bad usage or a damaged file.\n");
}

enum { OPT_TENSORS = DL_CLI_LONG_ONLY, OPT_STATS, OPT_TOL, OPT_FORMAT, OPT_TOKENIZER, OPT_N_HEAD };
static const dl_cli_option show_options[] = {{"tensors", OPT_TENSORS, NULL}, {"stats", OPT_STATS, NULL}, {NULL, 0, NULL}};
static const dl_cli_option diff_options[] = {{"tol", OPT_TOL, "a finite number >= 0"}, {NULL, 0, NULL}};
static const dl_cli_option export_options[] = {{"format", OPT_FORMAT, "a value (safetensors or hf)"},
                                               {"output", 'o', "a path"},
                                               {"tokenizer", OPT_TOKENIZER, "a path"},
                                               {NULL, 0, NULL}};
static const dl_cli_option import_options[] = {{"output", 'o', "a file name"},
                                               {"n-head", OPT_N_HEAD, "an integer from 1 to 4096"},
                                               {"tokenizer", OPT_TOKENIZER, "a path"},
                                               {NULL, 0, NULL}};

static int report(const char *sub, dl_status s) {
    char command[32];
    snprintf(command, sizeof command, "ckpt %s", sub);
    return dl_cli_report(command, s);
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* FILE, ckpt/latest or a run directory: the one resolver every command shares. */
static dl_status resolve_file(const char *arg, char *path, size_t cap) { return dl_ckpt_resolve(arg, NULL, path, cap); }

static const char *human_bytes(char *buf, size_t cap, double bytes) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

static const char *date_of(char *buf, size_t cap, time_t t) {
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

/* ---- ls ---------------------------------------------------------------------------------------------------------- */

typedef struct listed {
    char name[256];
    long long step;
    int incomplete;
} listed;

static int by_step(const void *a, const void *b) {
    const listed *x = a, *y = b;
    return x->step < y->step ? -1 : x->step > y->step ? 1 : x->incomplete - y->incomplete;
}

static void print_entry(const char *path, const char *name, const char *latest_name) {
    struct stat st;
    char size[32], date[32];
    if (stat(path, &st) != 0) {
        printf("%-22s  (gone: %s)\n", name, strerror(errno));
        return;
    }
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    dl_status s = dl_ckpt_read_meta(path, &meta);
    char what[160];
    if (s == DL_OK)
        snprintf(what, sizeof what, "step %lld, %s, %d rank%s", (long long)meta.step, meta.model_kind,
                 meta.world_size, meta.world_size == 1 ? "" : "s");
    else
        snprintf(what, sizeof what, "UNREADABLE: %s", dl_error_message());
    free(meta.config_yaml);
    printf("%-22s  %10s  %s  %s%s\n", name, human_bytes(size, sizeof size, (double)st.st_size),
           date_of(date, sizeof date, st.st_mtime), what,
           latest_name && strcmp(latest_name, name) == 0 ? "  <- latest" : "");
}

static int cmd_ls(int argc, char **argv) {
    if (dl_cli_positionals_only("ckpt ls", &argc, argv))
        return 2;
    if (argc != 2)
        return dl_cli_usage_error("ckpt ls", "expects one PATH (a run directory, its ckpt/ directory or a checkpoint file)");
    const char *arg = argv[1];
    struct stat st;
    if (stat(arg, &st) != 0) {
        int err = errno;
        return report("ls", dl_open_failure(arg, err, "name a run directory or a checkpoint file"));
    }
    if (!S_ISDIR(st.st_mode)) {
        /* A file: a step file, or `latest` (its step file); anything else is named for what it is. */
        char file[4300];
        dl_status s = dl_ckpt_resolve(arg, NULL, file, sizeof file);
        if (s != DL_OK)
            return report("ls", s);
        const char *slash = strrchr(file, '/');
        print_entry(file, slash ? slash + 1 : file, NULL);
        return 0;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ckpt", arg);
    if (!is_dir(dir))
        snprintf(dir, sizeof dir, "%s", arg);
    char latest_name[256] = "", latest_path[4300];
    snprintf(latest_path, sizeof latest_path, "%s/latest", dir);
    FILE *lf = fopen(latest_path, "r");
    if (lf) {
        if (!fgets(latest_name, sizeof latest_name, lf))
            latest_name[0] = '\0';
        latest_name[strcspn(latest_name, "\r\n")] = '\0';
        fclose(lf);
    }
    DIR *d = opendir(dir);
    if (!d)
        return report("ls", DL_FAIL(DL_ERR_IO, "cannot list %s: %s", dir, strerror(errno)));
    listed *items = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long step;
        int used = 0;
        if (sscanf(e->d_name, "step_%8lld.h5%n", &step, &used) != 1 || used == 0 || strncmp(e->d_name, "step_", 5))
            continue;
        const char *rest = e->d_name + used;
        int incomplete = strncmp(rest, ".tmp", 4) == 0 && (rest[4] == '\0' || rest[4] == '.');
        if (e->d_name[used] != '\0' && !incomplete)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            listed *grown = realloc(items, cap * sizeof *grown);
            if (!grown)
                break;
            items = grown;
        }
        snprintf(items[n].name, sizeof items[n].name, "%s", e->d_name);
        items[n].step = step;
        items[n].incomplete = incomplete;
        n++;
    }
    closedir(d);
    qsort(items, n, sizeof *items, by_step);
    if (n == 0)
        printf("no checkpoints in %s\n", dir);
    for (size_t i = 0; i < n; i++) {
        char path[4600];
        snprintf(path, sizeof path, "%s/%s", dir, items[i].name);
        if (items[i].incomplete)
            printf("%-22s  (incomplete: a write that did not finish; never used, deleted by the next save)\n",
                   items[i].name);
        else
            print_entry(path, items[i].name, latest_name);
    }
    if (latest_name[0]) {
        int present = 0;
        for (size_t i = 0; i < n; i++)
            present |= !items[i].incomplete && strcmp(items[i].name, latest_name) == 0;
        if (!present)
            printf("warning: latest names %s, which is not here\n", latest_name);
    }
    free(items);
    return 0;
}

/* ---- show -------------------------------------------------------------------------------------------------------- */

typedef struct stats {
    double mean, std, min, max;
    size_t nonfinite;
} stats;

static stats float_stats(const float *x, size_t n) {
    stats st = {0, 0, INFINITY, -INFINITY, 0};
    double sum = 0, sumsq = 0;
    size_t finite = 0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v)) {
            st.nonfinite++;
            continue;
        }
        finite++;
        sum += v;
        if (v < st.min)
            st.min = v;
        if (v > st.max)
            st.max = v;
    }
    st.mean = finite ? sum / (double)finite : NAN;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]))
            sumsq += ((double)x[i] - st.mean) * ((double)x[i] - st.mean);
    st.std = finite ? sqrt(sumsq / (double)finite) : NAN;
    if (!finite)
        st.min = st.max = NAN;
    return st;
}

static const char *shape_text(char *buf, size_t cap, const dl_ckpt_dataset *d) {
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < d->ndim && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%zu", i ? ", " : "", d->shape[i]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
    return buf;
}

static void print_cursors(dl_ckpt_file *f) {
    const dl_ckpt_dataset *ld = dl_ckpt_find(f, "/data/cursor_lengths"), *cd = dl_ckpt_find(f, "/data/cursors");
    if (!ld || !cd || ld->dtype != DL_CKPT_I32 || cd->dtype != DL_CKPT_U8)
        return;
    int32_t *lengths = malloc(ld->numel * sizeof(int32_t) + 1);
    uint8_t *bytes = malloc(cd->numel + 1);
    int ok1 = 0, ok2 = 0;
    if (lengths && bytes && dl_ckpt_read(f, ld, lengths, &ok1) == DL_OK && dl_ckpt_read(f, cd, bytes, &ok2) == DL_OK &&
        ok1 == 1 && ok2 == 1) {
        size_t at = 0;
        for (size_t r = 0; r < ld->numel; r++) {
            dl_cursor_info info;
            if (lengths[r] < 0 || at + (size_t)lengths[r] > cd->numel) {
                printf("  rank %zu: bad cursor length %d\n", r, lengths[r]);
                break;
            }
            if (dl_cursor_info_get(bytes + at, (size_t)lengths[r], &info) == DL_OK)
                printf("  rank %zu: epoch %llu, %llu batches handed out (%d bytes)\n", r,
                       (unsigned long long)info.epoch, (unsigned long long)info.batches, lengths[r]);
            else
                printf("  rank %zu: %d bytes (%s)\n", r, lengths[r], dl_error_message());
            at += (size_t)lengths[r];
        }
    }
    free(lengths);
    free(bytes);
}

static int cmd_show(int argc, char **argv) {
    const char *arg = NULL;
    int tensors = 0, with_stats = 0;
    dl_cli_args a;
    dl_cli_args_init(&a, "ckpt show", show_options, argc, argv);
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == OPT_TENSORS)
            tensors = 1;
        else if (id == OPT_STATS)
            tensors = with_stats = 1;
        else if (id != DL_CLI_POSITIONAL)
            return 2;
        else if (arg)
            return dl_cli_usage_error("ckpt show", "expects one FILE, got a second: %s", a.arg);
        else
            arg = a.arg;
    }
    if (!arg)
        return dl_cli_usage_error("ckpt show", "expects a checkpoint FILE (or a run directory)");
    char path[4400];
    dl_status s = resolve_file(arg, path, sizeof path);
    dl_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    if (s == DL_OK)
        s = dl_ckpt_read_meta(path, &meta);
    dl_ckpt_file *f = NULL;
    if (s == DL_OK)
        s = dl_ckpt_open(&f, path);
    if (s != DL_OK) {
        free(meta.config_yaml);
        return report("show", s);
    }
    struct stat st;
    char size[32] = "?", date[32] = "?";
    if (stat(path, &st) == 0) {
        human_bytes(size, sizeof size, (double)st.st_size);
        date_of(date, sizeof date, st.st_mtime);
    }
    printf("checkpoint      %s (%s, %s)\n", path, size, date);
    printf("format_version  %d\n", DL_CKPT_FORMAT_VERSION);
    printf("dealer_version  %s\n", meta.dealer_version[0] ? meta.dealer_version : "?");
    printf("model_kind      %s\n", meta.model_kind);
    printf("step            %lld\n", (long long)meta.step);
    printf("epoch           %lld\n", (long long)meta.epoch);
    printf("tokens_seen     %.0f\n", meta.tokens_seen);
    printf("samples_seen    %.0f\n", meta.samples_seen);
    printf("optimizer_step  %lld\n", (long long)meta.optimizer_step);
    printf("bad_steps       %lld\n", (long long)meta.bad_steps);
    printf("seed            %lld (Philox4x32-10 key; counters come from the step)\n", (long long)meta.seed);
    printf("world_size      %d\n", meta.world_size);
    printf("zero_stage      %d\n", meta.zero_stage);
    if (meta.blas_kernel[0])
        printf("written with    BLAS kernel %s, CPU variant %s, %d thread%s (bit-exact resume needs the same)\n",
               meta.blas_kernel, meta.cpu_variant, meta.threads, meta.threads == 1 ? "" : "s");
    else
        printf("written with    ? (older checkpoint: BLAS kernel, CPU variant and threads not recorded)\n");
    printf("data cursors:\n");
    print_cursors(f);
    printf("config:\n");
    for (const char *line = meta.config_yaml; line && *line;) {
        const char *nl = strchr(line, '\n');
        int len = nl ? (int)(nl - line) : (int)strlen(line);
        printf("  %.*s\n", len, line);
        line = nl ? nl + 1 : line + len;
    }
    free(meta.config_yaml);
    size_t bad = 0, total_bytes = 0;
    const char *first_bad = NULL;
    if (tensors) {
        printf("tensors:\n");
        printf("  %-40s %-8s %-16s %12s  %-8s%s\n", "name", "dtype", "shape", "stored", "crc",
               with_stats ? "  mean        std         min         max" : "");
    }
    for (size_t i = 0; tensors && i < dl_ckpt_count(f); i++) {
        const dl_ckpt_dataset *d = dl_ckpt_at(f, i);
        size_t bytes = d->numel * dl_ckpt_dtype_size(d->dtype);
        void *data = malloc(bytes ? bytes : 1);
        int crc_ok = 0;
        if (!data) {
            s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate %zu bytes for %s", bytes, d->name);
            break;
        }
        s = dl_ckpt_read(f, d, data, &crc_ok);
        if (s != DL_OK) {
            free(data);
            break;
        }
        total_bytes += bytes;
        char shape[96], stored[32];
        printf("  %-40s %-8s %-16s %12s  %-8s", d->name, dl_ckpt_dtype_name(d->dtype), shape_text(shape, sizeof shape, d),
               human_bytes(stored, sizeof stored, (double)d->storage_bytes),
               crc_ok == 1 ? "ok" : crc_ok == 0 ? "MISMATCH" : "none");
        if (with_stats && d->dtype == DL_CKPT_F32) {
            stats t = float_stats(data, d->numel);
            printf("  %-11.4g %-11.4g %-11.4g %.4g", t.mean, t.std, t.min, t.max);
            if (t.nonfinite)
                printf(" (%zu non-finite)", t.nonfinite);
        }
        printf("\n");
        if (crc_ok != 1) {
            bad++;
            if (!first_bad)
                first_bad = d->name;
        }
        free(data);
    }
    if (tensors && s == DL_OK)
        printf("%zu tensors, %zu bytes of data\n", dl_ckpt_count(f), total_bytes);
    if (s == DL_OK && bad) {
        s = DL_FAIL(DL_ERR_FORMAT, "%s: %zu tensor%s failed the CRC check (first: %s)", path, bad, bad == 1 ? "" : "s",
                    first_bad);
        dl_error_hint("the file is damaged; resume from an earlier step file");
    }
    dl_ckpt_close(f);
    fflush(stdout);
    return s == DL_OK ? 0 : report("show", s);
}

/* ---- diff -------------------------------------------------------------------------------------------------------- */

/* Reads a dataset, failing on a CRC mismatch (comparing damaged data would mislead). */
static dl_status read_verified(dl_ckpt_file *f, const dl_ckpt_dataset *d, const char *path, void **out) {
    size_t bytes = d->numel * dl_ckpt_dtype_size(d->dtype);
    *out = malloc(bytes ? bytes : 1);
    DL_REQUIRE(*out != NULL, DL_ERR_NOMEM, "cannot allocate %zu bytes for %s", bytes, d->name);
    int ok = 0;
    dl_status s = dl_ckpt_read(f, d, *out, &ok);
    if (s == DL_OK && ok != 1) {
        s = DL_FAIL(DL_ERR_FORMAT, "%s: tensor %s %s", path, d->name, ok == 0 ? "fails its CRC check" : "has no CRC");
        dl_error_hint("the file is damaged; compare an intact copy");
    }
    if (s != DL_OK) {
        free(*out);
        *out = NULL;
    }
    return s;
}

static int same_shape(const dl_ckpt_dataset *a, const dl_ckpt_dataset *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

static int cmd_diff(int argc, char **argv) {
    const char *args[2] = {NULL, NULL};
    int nargs = 0;
    double tol = 0;
    dl_cli_args a;
    dl_cli_args_init(&a, "ckpt diff", diff_options, argc, argv);
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == OPT_TOL) {
            if (dl_cli_number(&a, 0, INFINITY, 0, &tol))
                return 2;
        } else if (id != DL_CLI_POSITIONAL) {
            return 2;
        } else if (nargs < 2) {
            args[nargs++] = a.arg;
        } else {
            return dl_cli_usage_error("ckpt diff", "expects two checkpoints, got a third: %s", a.arg);
        }
    }
    if (nargs != 2)
        return dl_cli_usage_error("ckpt diff", "expects two checkpoints A B");
    char pa[4400], pb[4400];
    dl_ckpt_file *fa = NULL, *fb = NULL;
    dl_status s = resolve_file(args[0], pa, sizeof pa);
    if (s == DL_OK)
        s = resolve_file(args[1], pb, sizeof pb);
    if (s == DL_OK)
        s = dl_ckpt_open(&fa, pa);
    if (s == DL_OK)
        s = dl_ckpt_open(&fb, pb);
    if (s != DL_OK) {
        dl_ckpt_close(fa);
        return report("diff", s);
    }
    dl_ckpt_meta ma, mb;
    memset(&ma, 0, sizeof ma);
    memset(&mb, 0, sizeof mb);
    if (dl_ckpt_read_meta(pa, &ma) == DL_OK && dl_ckpt_read_meta(pb, &mb) == DL_OK && ma.step != mb.step)
        printf("note: A is step %lld, B is step %lld\n", (long long)ma.step, (long long)mb.step);
    free(ma.config_yaml);
    free(mb.config_yaml);
    size_t differ = 0, compared = 0;
    printf("%-44s %14s %14s  %s\n", "tensor", "max |a-b|", "||a-b||/||b||", "");
    for (size_t i = 0; i < dl_ckpt_count(fa) && s == DL_OK; i++) {
        const dl_ckpt_dataset *a = dl_ckpt_at(fa, i), *b = dl_ckpt_find(fb, a->name);
        if (!b) {
            printf("%-44s %14s %14s  DIFFERS (only in A)\n", a->name, "-", "-");
            differ++;
            continue;
        }
        if (!same_shape(a, b)) {
            char sa[96], sb[96];
            printf("%-44s %14s %14s  DIFFERS (%s %s in A, %s %s in B)\n", a->name, "-", "-",
                   dl_ckpt_dtype_name(a->dtype), shape_text(sa, sizeof sa, a), dl_ckpt_dtype_name(b->dtype),
                   shape_text(sb, sizeof sb, b));
            differ++;
            continue;
        }
        void *da = NULL, *db = NULL;
        s = read_verified(fa, a, pa, &da);
        if (s == DL_OK)
            s = read_verified(fb, b, pb, &db);
        if (s != DL_OK) {
            free(da);
            break;
        }
        compared++;
        double max_abs = 0, diff_sq = 0, ref_sq = 0;
        int bad = 0;
        size_t bytes = a->numel * dl_ckpt_dtype_size(a->dtype);
        int identical = memcmp(da, db, bytes) == 0;
        for (size_t k = 0; k < a->numel; k++) {
            double x, y;
            if (a->dtype == DL_CKPT_F32) {
                x = ((const float *)da)[k];
                y = ((const float *)db)[k];
            } else if (a->dtype == DL_CKPT_I32) {
                x = ((const int32_t *)da)[k];
                y = ((const int32_t *)db)[k];
            } else {
                x = ((const uint8_t *)da)[k];
                y = ((const uint8_t *)db)[k];
            }
            if (isnan(x) != isnan(y) || (isinf(x) || isinf(y) ? x != y : 0)) {
                bad = 1; /* NaN against a number, or infinities that differ */
                max_abs = INFINITY;
                continue;
            }
            if (isnan(x) || isinf(x))
                continue;
            double dd = fabs(x - y);
            if (dd > max_abs)
                max_abs = dd;
            diff_sq += dd * dd;
            ref_sq += y * y;
        }
        double rel = sqrt(diff_sq) / (ref_sq > 0 ? sqrt(ref_sq) : 1.0);
        /* --tol 0 means bit for bit (so -0 and +0, or two NaN payloads, count as different). */
        int differs = tol == 0 ? !identical : (bad || max_abs > tol);
        printf("%-44s %14.6g %14.6g  %s\n", a->name, max_abs, rel, differs ? "DIFFERS" : identical ? "same" : "within tol");
        differ += differs;
        free(da);
        free(db);
    }
    for (size_t i = 0; s == DL_OK && i < dl_ckpt_count(fb); i++) {
        const dl_ckpt_dataset *b = dl_ckpt_at(fb, i);
        if (!dl_ckpt_find(fa, b->name)) {
            printf("%-44s %14s %14s  DIFFERS (only in B)\n", b->name, "-", "-");
            differ++;
        }
    }
    dl_ckpt_close(fa);
    dl_ckpt_close(fb);
    if (s != DL_OK)
        return report("diff", s);
    if (differ)
        printf("%zu tensor%s differ%s beyond --tol %g (%zu compared)\n", differ, differ == 1 ? "" : "s",
               differ == 1 ? "s" : "", tol, compared);
    else
        printf("all %zu tensors equal within --tol %g%s\n", compared, tol, tol == 0 ? " (bit for bit)" : "");
    return differ ? 1 : 0;
}

/* ---- export ------------------------------------------------------------------------------------------------------ */

/* The run's tokenizer.json when FILE lies in RUN/ckpt/ and RUN has one; "" otherwise. */
static void run_tokenizer(const char *file, char *out, size_t cap) {
    out[0] = '\0';
    char dir[PATH_MAX];
    if (!realpath(file, dir))
        return;
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    size_t n = strlen(dir);
    if (n >= 5 && strcmp(dir + n - 5, "/ckpt") == 0)
        dir[n - 5] = '\0'; /* RUN/ckpt -> RUN */
    else
        return; /* not a run's ckpt/ directory */
    char candidate[4500];
    snprintf(candidate, sizeof candidate, "%s/tokenizer.json", dir);
    struct stat st;
    if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode))
        snprintf(out, cap, "%.*s", (int)(cap - 1), candidate);
}

static int cmd_export(int argc, char **argv) {
    const char *arg = NULL, *format = NULL, *out = NULL, *tokenizer = NULL;
    dl_cli_args a;
    dl_cli_args_init(&a, "ckpt export", export_options, argc, argv);
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == OPT_FORMAT)
            format = a.arg;
        else if (id == OPT_TOKENIZER)
            tokenizer = a.arg;
        else if (id == 'o')
            out = a.arg;
        else if (id != DL_CLI_POSITIONAL)
            return 2;
        else if (arg)
            return dl_cli_usage_error("ckpt export", "expects one FILE, got a second: %s", a.arg);
        else
            arg = a.arg;
    }
    if (!arg)
        return dl_cli_usage_error("ckpt export", "expects a checkpoint FILE (or a run directory)");
    if (!format)
        return dl_cli_usage_error("ckpt export", "needs --format (safetensors or hf)");
    int hf = strcmp(format, "hf") == 0;
    if (!hf && strcmp(format, "safetensors") != 0)
        return dl_cli_usage_error("ckpt export", "unknown --format '%s' (safetensors or hf)", format);
    if (!out)
        return dl_cli_usage_error("ckpt export", hf ? "needs -o DIR" : "needs -o OUT");
    if (tokenizer && !hf)
        return dl_cli_usage_error("ckpt export", "--tokenizer goes with --format hf");
    char path[4400];
    dl_status s = resolve_file(arg, path, sizeof path);
    size_t count = 0;
    uint64_t bytes = 0;
    if (s == DL_OK && hf) {
        char found[4400] = "";
        if (!tokenizer)
            run_tokenizer(path, found, sizeof found);
        const char *tok = tokenizer ? tokenizer : found[0] ? found : NULL;
        s = dl_hf_gpt2_export(path, out, tok, &count);
        if (s == DL_OK)
            printf("wrote %s: config.json, model.safetensors (%zu tensors, GPT-2 names)%s%s\n", out, count,
                   tok ? ", tokenizer.json from " : " (no tokenizer: the run has none; --tokenizer FILE adds one)",
                   tok ? tok : "");
        return s == DL_OK ? 0 : report("export", s);
    }
    if (s == DL_OK)
        s = dl_check_output_not_input(out, path, "-o");
    if (s == DL_OK)
        s = dl_ckpt_export_safetensors(path, out, &count, &bytes);
    if (s == DL_OK)
        printf("wrote %s: %zu tensors, %llu bytes of float32 data (safetensors; names as in the checkpoint)\n", out,
               count, (unsigned long long)bytes);
    return s == DL_OK ? 0 : report("export", s);
}

/* ---- import ------------------------------------------------------------------------------------------------------ */

/* The resolved config of a gpt of this shape: defaults, with data.seq_len no longer than the position table. */
static dl_status import_config(const dl_gpt2_shape *shape, const char *source, const char *tokenizer,
                               dl_config *cfg) {
    char text[6000];
    int seq_len = shape->n_positions < 1024 ? shape->n_positions : 1024;
    snprintf(text, sizeof text,
             "model:\n  kind: gpt\n  vocab_size: %d\n  n_layer: %d\n  n_head: %d\n  n_embd: %d\n"
             "  max_seq_len: %d\n  positions: %s\n  rope_theta: %.17g\ndata:\n  seq_len: %d\n",
             shape->vocab_size, shape->n_layer, shape->n_head, shape->n_embd, shape->n_positions,
             shape->rope ? "rope" : "learned", shape->rope ? shape->rope_theta : 10000.0, seq_len);
    if (tokenizer) {
        DL_REQUIRE(strlen(tokenizer) < 4096 && !strpbrk(tokenizer, "'\n"), DL_ERR_INVALID,
                   "the tokenizer path %s is too long or holds a quote or newline", tokenizer);
        size_t at = strlen(text);
        snprintf(text + at, sizeof text - at, "  tokenizer: '%s'\n", tokenizer);
    }
    DL_CHECK_CTX(dl_config_load_string(cfg, text, strlen(text), source), "the model %s describes", source);
    return DL_OK;
}

static int cmd_import(int argc, char **argv) {
    const char *src_arg = NULL, *out = NULL, *tokenizer = NULL;
    uint64_t n_head = 0;
    dl_cli_args a;
    dl_cli_args_init(&a, "ckpt import", import_options, argc, argv);
    for (int id; (id = dl_cli_next(&a)) != DL_CLI_END;) {
        if (id == OPT_N_HEAD) {
            if (dl_cli_uint(&a, 1, 4096, &n_head))
                return 2;
        } else if (id == OPT_TOKENIZER) {
            tokenizer = a.arg;
        } else if (id == 'o') {
            out = a.arg;
        } else if (id != DL_CLI_POSITIONAL) {
            return 2;
        } else if (src_arg) {
            return dl_cli_usage_error("ckpt import", "expects one SRC, got a second: %s", a.arg);
        } else {
            src_arg = a.arg;
        }
    }
    if (!src_arg)
        return dl_cli_usage_error("ckpt import", "expects SRC: a Hugging Face model directory or a .safetensors file");
    if (!out)
        return dl_cli_usage_error("ckpt import", "needs -o OUT.h5");
    dl_weights_source src;
    dl_gpt2_shape shape;
    dl_status s = dl_weights_resolve(src_arg, "ckpt import", &src);
    if (s == DL_OK)
        s = dl_weights_shape(&src, &shape);
    if (s == DL_OK && !shape.n_head_known && !n_head) {
        s = DL_FAIL(DL_ERR_INVALID, "%s has no config.json, and the head count leaves no trace in the tensors",
                    src_arg);
        dl_error_hint("pass --n-head H, or import the model directory with its config.json");
    }
    if (s == DL_OK && n_head) {
        if (shape.n_head_known && shape.n_head != (int)n_head) {
            s = DL_FAIL(DL_ERR_INVALID, "--n-head %d disagrees with %s, which says n_head %d", (int)n_head, src_arg,
                        shape.n_head);
        } else {
            shape.n_head = (int)n_head;
            shape.n_head_known = 1;
        }
    }
    /* The model directory's own tokenizer goes with it unless --tokenizer names another. */
    char dir_tokenizer[DL_WEIGHTS_PATH_MAX + 32];
    struct stat st;
    if (s == DL_OK && !tokenizer && src.kind == DL_WEIGHTS_HF_DIR) {
        snprintf(dir_tokenizer, sizeof dir_tokenizer, "%s/tokenizer.json", src_arg);
        if (stat(dir_tokenizer, &st) == 0 && S_ISREG(st.st_mode))
            tokenizer = dir_tokenizer;
    }
    dl_tokenizer *tok = NULL;
    char tok_hash[17] = "";
    if (s == DL_OK && tokenizer) {
        s = dl_tokenizer_load(tokenizer, &tok);
        if (s != DL_OK)
            dl_error_context("the tokenizer %s", tokenizer);
        else if (dl_tokenizer_vocab_size(tok) > shape.vocab_size)
            s = DL_FAIL(DL_ERR_INVALID, "the tokenizer %s has %d ids, more than the model's vocabulary (%d)",
                        tokenizer, (int)dl_tokenizer_vocab_size(tok), shape.vocab_size);
        else
            dl_tokenizer_hash_hex(dl_tokenizer_hash(tok), tok_hash);
    }
    dl_tokenizer_free(tok);
    dl_config cfg;
    int have_cfg = 0;
    if (s == DL_OK) {
        s = import_config(&shape, src_arg, tokenizer, &cfg);
        have_cfg = s == DL_OK;
    }
    dl_gpt_config gc = {0};
    if (have_cfg)
        gc = (dl_gpt_config){.vocab_size = cfg.model.vocab_size, .n_layer = cfg.model.n_layer,
                             .n_head = cfg.model.n_head, .n_embd = cfg.model.n_embd,
                             .max_seq_len = cfg.model.max_seq_len, .rope = shape.rope,
                             .rope_theta = (float)cfg.model.rope_theta, .checkpoint_every = 0};
    dl_backend be;
    int be_open = 0;
    dl_gpt *gpt = NULL;
    float *host = NULL;
    char *yaml = NULL;
    if (s == DL_OK)
        s = dl_gpt_config_check(&gc);
    if (s == DL_OK) {
        s = dl_backend_open(&be, "cpu", 0);
        be_open = s == DL_OK;
    }
    if (s == DL_OK)
        s = dl_gpt_create(&gpt, &gc, &be, 1, 1); /* only for the parameter layout: no step ever runs */
    if (s == DL_OK && !(host = calloc(dl_gpt_num_params(gpt) ? dl_gpt_num_params(gpt) : 1, sizeof *host)))
        s = DL_FAIL(DL_ERR_NOMEM, "cannot allocate the parameters of %s", src_arg);
    if (s == DL_OK)
        s = dl_weights_load(&src, dl_gpt_params(gpt), host);
    if (s == DL_OK)
        s = dl_config_to_yaml(&cfg, 0, &yaml);
    dl_world world;
    memset(&world, 0, sizeof world);
    int world_up = 0;
    if (s == DL_OK) {
        s = dl_world_init(&world, &argc, &argv, 300.0);
        world_up = s == DL_OK;
    }
    if (s == DL_OK) {
        dl_ckpt_meta meta;
        memset(&meta, 0, sizeof meta);
        meta.seed = cfg.run.seed;
        meta.world_size = 1;
        snprintf(meta.model_kind, sizeof meta.model_kind, "gpt");
        memcpy(meta.tokenizer_hash, tok_hash, sizeof meta.tokenizer_hash);
        meta.config_yaml = yaml;
        dl_ckpt_tensors t = {dl_gpt_params(gpt), host, 0, NULL, NULL, 0, 0};
        dl_ckpt_options options = {0};
        s = dl_ckpt_write(&world, out, &meta, &t, NULL, 0, &options);
    }
    if (s == DL_OK) {
        printf("# wrote %s: %zu tensors from the %s %s (step 0, no optimizer state: start runs from it with\n"
               "# model.init_from; this model section fits it)\n",
               out, dl_gpt_params(gpt)->count, dl_weights_kind_name(src.kind), src_arg);
        printf("model:\n  kind: gpt\n  vocab_size: %d\n  n_layer: %d\n  n_head: %d\n  n_embd: %d\n"
               "  positions: %s\n  max_seq_len: %d\n",
               gc.vocab_size, gc.n_layer, gc.n_head, gc.n_embd, gc.rope ? "rope" : "learned", gc.max_seq_len);
        if (gc.rope)
            printf("  rope_theta: %g\n", gc.rope_theta);
        int short_table = !gc.rope && gc.max_seq_len < 1024; /* data.seq_len's default would not fit */
        if (short_table || tokenizer)
            printf("data:\n");
        if (short_table)
            printf("  seq_len: %d   # at most max_seq_len\n", gc.max_seq_len);
        if (tokenizer)
            printf("  tokenizer: %s   # hash %s, recorded in the checkpoint\n", tokenizer, tok_hash);
        fflush(stdout);
    }
    int code = s == DL_OK ? 0 : report("import", s);
    free(yaml);
    free(host);
    dl_gpt_destroy(gpt);
    if (be_open)
        dl_backend_close(&be);
    if (have_cfg)
        dl_config_free(&cfg);
    if (world_up)
        dl_world_finalize(&world);
    return code;
}

int dl_cmd_ckpt(int argc, char **argv) {
    /* One usage page for the group: --help after any subcommand prints it. */
    static const dl_cli_subcommand subs[] = {{"ls", cmd_ls, usage}, {"show", cmd_show, usage},
                                             {"diff", cmd_diff, usage}, {"export", cmd_export, usage},
                                             {"import", cmd_import, usage}, {NULL, NULL, NULL}};
    return dl_cli_dispatch("ckpt", usage, subs, argc, argv);
}
