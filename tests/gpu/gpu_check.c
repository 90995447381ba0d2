/* gpu_check.c — every CUDA op against the CPU op, on the same random inputs, with timings.
 *
 * Opens a CPU and a CUDA backend, and for each op (forward and backward, several shapes where the kernel has
 * special paths) uploads the same inputs to both, runs both, and compares every output by the norm-relative error
 * ‖gpu − cpu‖₂ / ‖cpu‖₂. It prints one markdown table row per check (op, variant, error, tolerance, pass/fail,
 * GPU and CPU milliseconds) and exits 1 when any check fails, 77 when no GPU answers (the usual "skipped" code).
 * An op a backend lacks is a failing row, never a crash.
 *
 * The ops are called through the backends' tables (be->ops->family->op), the same entries dl_op_* dispatches to,
 * so each backend is exercised on exactly the arguments written here.
 *
 * How outputs are checked:
 * - pure outputs start as NaN on both sides, so an element the GPU forgets to write fails the check;
 * - gradients ACCUMULATE (ops.h): each backward check runs twice, first into zeroed gradients, then into gradients
 *   pre-filled with random values of the same scale as the first result, so overwriting instead of adding fails;
 * - optimizer state and the in-place cross-entropy start from the same given values on both sides;
 * - bf16 results must match bit for bit (round-to-nearest-even is fully specified);
 * - the GPU op runs twice from the same state and must give the same bits both times, except the scatter-adds that
 *   use float atomics (docs/cuda.md lists them), for which a difference is only noted.
 * Backward checks take their saved forward results (lse, mean/rstd, sum_vx, out) from one forward run, copied to
 * both sides, so both backwards see identical inputs. Last come GPU-only rows that feed bad ids and offsets and
 * expect DL_ERR_INVALID (the GPU kernels check what the dispatcher cannot see).
 *
 * Tolerances: 1e-5 for fp32 unless a comment at the check says why another bound is right. Both backends compute in
 * fp32 with IEEE division, sqrt and accurate exp/log; they differ only in summation order and in fused multiply-adds
 * (nvcc contracts a·b + c, gcc in ISO C mode does not). For a sum of K terms those differences give a relative error
 * around √K · 2⁻²⁴ ≈ 2e-6 at K = 1024 — under 1e-5 with margin for every reduction here, including attention's
 * (row sums over ≤ 1024 keys, then the products with V) and layernorm's parameter gradients over thousands of rows.
 *
 * Usage: gpu_gpu_check [--quick] [FILTER]   (--quick: small shapes; FILTER: run the ops whose name contains it)
 * Seed: DEALER_TEST_SEED (default 1234). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "core/status.h"
#include "core/timer.h"
#include "ops/ops.h"

enum { CPU = 0, GPU = 1 };

static dl_backend g_be[2];
static dl_rng g_rng;
static int g_quick;
static const char *g_filter;
static int g_rows, g_failed;

/* ---- buffers that live on both backends ------------------------------------------------------------------------ */

typedef enum { T_F32, T_BF16, T_I32, T_HOST_F64 } elem_type;

typedef struct buf {
    void *p[2]; /* CPU, GPU (T_HOST_F64: host memory on both sides, for results returned to the host) */
    size_t n;
    elem_type type;
} buf;

#define MAX_BUFS 96
#define MAX_HOST 256
static buf g_bufs[MAX_BUFS];
static int g_nbufs;
static void *g_host[MAX_HOST];
static int g_nhost;

static void die(const char *what) {
    fprintf(stderr, "gpu_check: %s: %s\n", what, dl_error_message());
    exit(1);
}

static size_t elem_size(elem_type t) {
    switch (t) {
    case T_BF16: return 2;
    case T_HOST_F64: return 8;
    default: return 4;
    }
}

/* Host memory freed when the current check ends. */
static void *halloc(size_t bytes) {
    if (g_nhost == MAX_HOST) {
        fprintf(stderr, "gpu_check: too many host arrays in one check\n");
        exit(1);
    }
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) {
        fprintf(stderr, "gpu_check: out of host memory (%zu bytes)\n", bytes);
        exit(1);
    }
    g_host[g_nhost++] = p;
    return p;
}

static buf *mk(elem_type type, size_t n) {
    if (g_nbufs == MAX_BUFS) {
        fprintf(stderr, "gpu_check: too many buffers in one check\n");
        exit(1);
    }
    buf *b = &g_bufs[g_nbufs++];
    b->n = n;
    b->type = type;
    size_t bytes = (n ? n : 1) * elem_size(type);
    for (int s = CPU; s <= GPU; s++) {
        if (type == T_HOST_F64)
            b->p[s] = halloc(bytes);
        else if (dl_mem_alloc(&g_be[s], &b->p[s], bytes) != DL_OK)
            die("allocating a test buffer");
    }
    return b;
}

static void put(buf *b, const void *host) {
    size_t bytes = b->n * elem_size(b->type);
    for (int s = CPU; s <= GPU; s++) {
        if (b->type == T_HOST_F64)
            memcpy(b->p[s], host, bytes);
        else if (dl_mem_to_device(&g_be[s], b->p[s], host, bytes) != DL_OK)
            die("uploading a test buffer");
    }
}

static void get(const buf *b, int s, void *host) {
    size_t bytes = b->n * elem_size(b->type);
    if (b->type == T_HOST_F64)
        memcpy(host, b->p[s], bytes);
    else if (dl_mem_to_host(&g_be[s], host, b->p[s], bytes) != DL_OK)
        die("downloading a test buffer");
}

static void release_all(void) {
    for (int i = 0; i < g_nbufs; i++)
        if (g_bufs[i].type != T_HOST_F64)
            for (int s = CPU; s <= GPU; s++)
                dl_mem_free(&g_be[s], g_bufs[i].p[s]);
    for (int i = 0; i < g_nhost; i++)
        free(g_host[i]);
    g_nbufs = g_nhost = 0;
}

static float *fp(const buf *b, int s) { return b ? (float *)b->p[s] : NULL; }
static int32_t *ip(const buf *b, int s) { return b ? (int32_t *)b->p[s] : NULL; }
static dl_bf16 *hp(const buf *b, int s) { return b ? (dl_bf16 *)b->p[s] : NULL; }

/* ---- random data ----------------------------------------------------------------------------------------------- */

static float urand(float lo, float hi) { return lo + (hi - lo) * dl_rng_uniform(&g_rng); }
static int irand(int n) { return (int)dl_rng_below(&g_rng, (uint64_t)n); }

static float *uniform(size_t n, float lo, float hi) {
    float *x = (float *)halloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = urand(lo, hi);
    return x;
}

static buf *mk_uniform(size_t n, float lo, float hi) {
    buf *b = mk(T_F32, n);
    put(b, uniform(n, lo, hi));
    return b;
}

static buf *mk_i32(const int32_t *host, size_t n) {
    buf *b = mk(T_I32, n);
    put(b, host);
    return b;
}

static uint16_t bf16_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Document lengths: the given ones (0 = an empty document), then pieces of at most max_len up to N in total. */
static int make_docs(int N, const int *given, int ngiven, int max_len, int32_t **cu_out) {
    int32_t *cu = (int32_t *)halloc((size_t)(N + ngiven + 2) * sizeof(int32_t));
    int s = 0, at = 0;
    cu[0] = 0;
    for (int i = 0; i < ngiven && at + given[i] <= N; i++) {
        at += given[i];
        cu[++s] = at;
    }
    while (at < N) {
        int len = 1 + irand(max_len);
        if (len > N - at)
            len = N - at;
        at += len;
        cu[++s] = at;
    }
    *cu_out = cu;
    return s;
}

/* Positions restart at 0 in every document. */
static int32_t *doc_positions(const int32_t *cu, int num_seqs, int N) {
    int32_t *pos = (int32_t *)halloc((size_t)N * sizeof(int32_t));
    for (int s = 0; s < num_seqs; s++)
        for (int n = cu[s]; n < cu[s + 1]; n++)
            pos[n] = n - cu[s];
    return pos;
}

/* Ids in [0, V) skewed towards small ones, so the scatter-add backwards see many repeats. */
static int32_t *skewed_ids(size_t n, int V) {
    int32_t *ids = (int32_t *)halloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) {
        float u = urand(0.0f, 1.0f);
        int id = (int)((float)V * u * u * u);
        ids[i] = id < V ? id : V - 1;
    }
    return ids;
}

/* ---- checks ---------------------------------------------------------------------------------------------------- */

typedef dl_status (*call_fn)(const dl_backend *be, int side, const void *ctx);

typedef enum {
    O_WRITE, /* every element written: starts as NaN */
    O_ZERO,  /* written where meaningful (padding may be left): starts at zero */
    O_ACCUM, /* a gradient (+=): zero, then random values of its own scale */
    O_INOUT, /* updated in place from `init` */
} out_kind;

typedef struct out_spec {
    const char *name;
    buf *b;
    out_kind kind;
    const void *init; /* O_INOUT: host values */
} out_spec;

#define MAX_OUT 6
typedef struct check {
    const char *op;
    const char *variant;
    double tol;
    call_fn call;
    const void *ctx;
    out_spec out[MAX_OUT];
    int nout;
    int atomics; /* the GPU op adds with float atomics: its bits may differ between runs (reported, not failed) */
} check;

static dl_status missing(const dl_backend *be, const char *op) {
    return DL_FAIL(DL_ERR_UNSUPPORTED, "op %s is not available on backend %s", op, be->name);
}

/* Calls the backend's table entry, or fails like the dispatcher when the backend lacks it. */
#define OP(be, fam, op, ...)                                                                                         \
    (((be)->ops->fam != NULL && (be)->ops->fam->op != NULL) ? (be)->ops->fam->op((be)->state, __VA_ARGS__)        \
                                                             : missing((be), #fam "." #op))

static void *xmalloc(size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) {
        fprintf(stderr, "gpu_check: out of host memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static void reset_outputs(const check *c, void *const *accum_init) {
    for (int i = 0; i < c->nout; i++) {
        const out_spec *o = &c->out[i];
        size_t bytes = o->b->n * elem_size(o->b->type);
        void *host = xmalloc(bytes);
        switch (o->kind) {
        case O_WRITE:
            if (o->b->type == T_BF16)
                memset(host, 0xff, bytes); /* a NaN pattern in bf16 too */
            else if (o->b->type == T_HOST_F64)
                for (size_t k = 0; k < o->b->n; k++)
                    ((double *)host)[k] = NAN;
            else
                for (size_t k = 0; k < o->b->n; k++)
                    ((float *)host)[k] = NAN;
            break;
        case O_ZERO: break;
        case O_ACCUM:
            if (accum_init && accum_init[i])
                memcpy(host, accum_init[i], bytes);
            break;
        case O_INOUT: memcpy(host, o->init, bytes); break;
        }
        put(o->b, host);
        free(host);
    }
}

/* Runs the op on one side (waiting for the GPU) and returns its status; *ms gets the wall time. */
static dl_status timed(const check *c, int s, double *ms) {
    double t0 = dl_time_seconds();
    dl_status st = c->call(&g_be[s], s, c->ctx);
    if (st == DL_OK && s == GPU)
        st = dl_synchronize(&g_be[GPU]);
    *ms = (dl_time_seconds() - t0) * 1e3;
    return st;
}

/* How far the GPU's output is from the CPU's: the norm-relative error ‖gpu − cpu‖₂ / ‖cpu‖₂ (0 when both are zero;
 * what the tolerance bounds), and per element the largest absolute error, the largest relative error
 * |gpu − cpu| / (|cpu| + floor) and the index of that worst element. The floor (1e-6 of the output's largest |cpu|)
 * keeps elements that are zero up to rounding from reading as infinitely wrong. NaN anywhere gives NaN, which fails
 * every tolerance. exact (bf16 outputs and checks with tolerance 0): norm_rel is the fraction of elements whose
 * bits differ, and the worst element is the first that differs. */
typedef struct err_stats {
    double norm_rel, max_abs, max_rel;
    size_t worst;           /* index of the element with the largest relative error */
    const char *worst_out;  /* the output it belongs to */
} err_stats;

static double elem_value(const buf *b, const void *host, size_t i) {
    if (b->type == T_HOST_F64)
        return ((const double *)host)[i];
    if (b->type == T_BF16) {
        uint32_t bits = (uint32_t)((const uint16_t *)host)[i] << 16;
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    return ((const float *)host)[i];
}

static err_stats compare(const buf *b, int exact, const char *name) {
    size_t size = elem_size(b->type), bytes = b->n * size;
    void *hc = xmalloc(bytes), *hg = xmalloc(bytes);
    get(b, CPU, hc);
    get(b, GPU, hg);
    const char *dot = strrchr(name, '.'); /* "c.dwte" -> "dwte" */
    err_stats e = {0.0, 0.0, 0.0, 0, dot ? dot + 1 : name};
    double diff = 0.0, ref = 0.0, peak = 0.0;
    size_t bad = 0, first_bad = b->n;
    for (size_t i = 0; i < b->n; i++) {
        double c = elem_value(b, hc, i);
        peak = fmax(peak, fabs(c));
        if (memcmp((char *)hc + i * size, (char *)hg + i * size, size) != 0) {
            bad++;
            if (first_bad == b->n)
                first_bad = i;
        }
    }
    double floor_abs = 1e-6 * peak;
    for (size_t i = 0; i < b->n; i++) {
        double c = elem_value(b, hc, i), g = elem_value(b, hg, i);
        double d = fabs(g - c);
        if (isnan(d)) {
            e.max_abs = e.max_rel = NAN;
            e.worst = i;
            diff = NAN;
            break;
        }
        diff += d * d;
        ref += c * c;
        e.max_abs = fmax(e.max_abs, d);
        double rel = d / (fabs(c) + floor_abs + 1e-300);
        if (rel > e.max_rel) {
            e.max_rel = rel;
            e.worst = i;
        }
    }
    free(hc);
    free(hg);
    if (exact || b->type == T_BF16) {
        e.norm_rel = b->n ? (double)bad / (double)b->n : 0.0;
        if (bad)
            e.worst = first_bad;
        return e;
    }
    if (isnan(diff) || isnan(ref))
        e.norm_rel = NAN;
    else if (diff == 0.0)
        e.norm_rel = 0.0;
    else
        e.norm_rel = sqrt(diff) / fmax(sqrt(ref), 1e-300);
    return e;
}

/* Keeps the worse of two comparisons (by the norm error that decides pass/fail; NaN is the worst). */
static void keep_worse(err_stats *acc, err_stats e) {
    if (isnan(acc->norm_rel))
        return;
    if (strcmp(acc->worst_out, "-") == 0 || isnan(e.norm_rel) || e.norm_rel > acc->norm_rel ||
        (e.norm_rel == acc->norm_rel && e.max_rel > acc->max_rel))
        *acc = e;
}

static void note_error(char *note, size_t size, const char *side) {
    size_t len = strlen(note);
    snprintf(note + len, size - len, "%s%s: %s", len ? "; " : "", side, dl_error_message());
    dl_error_clear();
}

/* Runs the GPU op again from the first run's starting state and compares the bits of every output with the first
 * run's (saved in `first`). Returns 1 when they are identical. */
static int gpu_repeats(const check *c, void *const *first) {
    reset_outputs(c, NULL);
    if (c->call(&g_be[GPU], GPU, c->ctx) != DL_OK || dl_synchronize(&g_be[GPU]) != DL_OK) {
        dl_error_clear();
        return 0;
    }
    int same = 1;
    for (int i = 0; i < c->nout && same; i++) {
        const buf *b = c->out[i].b;
        size_t bytes = b->n * elem_size(b->type);
        void *again = xmalloc(bytes);
        get(b, GPU, again);
        same = memcmp(first[i], again, bytes) == 0;
        free(again);
    }
    return same;
}

/* Repeats the op until ~budget seconds pass (at most max_reps) and returns milliseconds per call. */
static double time_reps(const check *c, int s, double first_ms, double budget, int max_reps) {
    int reps = first_ms > 0.0 ? (int)(budget * 1e3 / first_ms) : max_reps;
    if (reps < 1)
        reps = 1;
    if (reps > max_reps)
        reps = max_reps;
    double t0 = dl_time_seconds();
    for (int r = 0; r < reps; r++)
        if (c->call(&g_be[s], s, c->ctx) != DL_OK) {
            dl_error_clear();
            return NAN;
        }
    if (s == GPU && dl_synchronize(&g_be[GPU]) != DL_OK) {
        dl_error_clear();
        return NAN;
    }
    return (dl_time_seconds() - t0) * 1e3 / reps;
}

static void print_header(void) {
    printf("| op | variant | norm rel err | max abs err | max rel err at [worst element] | tol | result | gpu ms | "
           "cpu ms | note |\n");
    printf("|---|---|---:|---:|---|---:|---|---:|---:|---|\n");
}

/* --json FILE: one object per check, the same figures as the table, for the report scripts/gpu-check writes. */
static FILE *g_json;
static int g_json_rows;

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned)(unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void json_number(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.6e", v);
    else
        fputs("null", f);
}

static void json_row(const check *c, int ok, const err_stats *err, int pass, int reproducible, double gpu_ms,
                     double cpu_ms, const char *note) {
    if (!g_json)
        return;
    fprintf(g_json, "%s\n  {\"op\": ", g_json_rows++ ? "," : "");
    json_string(g_json, c->op);
    fputs(", \"variant\": ", g_json);
    json_string(g_json, c->variant);
    fputs(", \"norm_rel_err\": ", g_json);
    json_number(g_json, ok ? err->norm_rel : NAN);
    fputs(", \"max_abs_err\": ", g_json);
    json_number(g_json, ok ? err->max_abs : NAN);
    fputs(", \"max_rel_err\": ", g_json);
    json_number(g_json, ok ? err->max_rel : NAN);
    fputs(", \"worst_output\": ", g_json);
    json_string(g_json, err->worst_out);
    fprintf(g_json, ", \"worst_index\": %zu, \"tol\": ", err->worst);
    json_number(g_json, c->tol);
    fprintf(g_json, ", \"pass\": %s, \"reproducible\": %s, \"gpu_ms\": ", pass ? "true" : "false",
            reproducible ? "true" : "false");
    json_number(g_json, gpu_ms);
    fputs(", \"cpu_ms\": ", g_json);
    json_number(g_json, cpu_ms);
    fputs(", \"note\": ", g_json);
    json_string(g_json, note);
    fputc('}', g_json);
}

/* Whether FILTER selects this op (or, for a family's space-separated list of ops, any of them). */
static int selected(const char *ops) { return !g_filter || strstr(ops, g_filter) != NULL; }

static void run(const check *c) {
    if (!selected(c->op))
        return;
    char note[512] = "";
    err_stats err = {0.0, 0.0, 0.0, 0, "-"};
    double gpu_ms = NAN, cpu_ms = NAN, ms[2];
    int ok = 1, has_accum = 0;
    for (int i = 0; i < c->nout; i++)
        has_accum |= c->out[i].kind == O_ACCUM;

    reset_outputs(c, NULL);
    dl_status sc = timed(c, CPU, &ms[CPU]);
    if (sc != DL_OK)
        note_error(note, sizeof note, "cpu");
    dl_status sg = timed(c, GPU, &ms[GPU]);
    if (sg != DL_OK)
        note_error(note, sizeof note, "gpu");
    ok = sc == DL_OK && sg == DL_OK;
    if (ok)
        for (int i = 0; i < c->nout; i++)
            keep_worse(&err, compare(c->out[i].b, c->tol == 0.0, c->out[i].name));
    int reproducible = 1;
    if (sg == DL_OK) {
        void *first[MAX_OUT] = {0};
        for (int i = 0; i < c->nout; i++) {
            first[i] = xmalloc(c->out[i].b->n * elem_size(c->out[i].b->type));
            get(c->out[i].b, GPU, first[i]);
        }
        reproducible = gpu_repeats(c, first);
        for (int i = 0; i < c->nout; i++)
            free(first[i]);
        if (!reproducible) {
            size_t len = strlen(note);
            snprintf(note + len, sizeof note - len, "%s%s", len ? "; " : "",
                     c->atomics ? "GPU bits vary between runs (float atomics, expected)"
                                : "GPU result differs between two identical runs");
        }
    }

    if (ok && has_accum) {
        /* Second run: gradients start at random values of the first result's scale on both sides. */
        void *init[MAX_OUT] = {0};
        for (int i = 0; i < c->nout; i++) {
            const buf *b = c->out[i].b;
            if (c->out[i].kind != O_ACCUM || b->type != T_F32)
                continue;
            float *first = (float *)xmalloc(b->n * sizeof(float));
            get(b, CPU, first);
            double ss = 0.0;
            for (size_t k = 0; k < b->n; k++)
                ss += (double)first[k] * first[k];
            free(first);
            float rms = b->n ? (float)sqrt(ss / (double)b->n) : 0.0f;
            if (!(rms > 0.0f))
                rms = 1.0f;
            init[i] = uniform(b->n, -rms, rms);
        }
        reset_outputs(c, init);
        sc = c->call(&g_be[CPU], CPU, c->ctx);
        if (sc != DL_OK)
            note_error(note, sizeof note, "cpu (accumulating)");
        sg = c->call(&g_be[GPU], GPU, c->ctx);
        if (sg == DL_OK)
            sg = dl_synchronize(&g_be[GPU]);
        if (sg != DL_OK)
            note_error(note, sizeof note, "gpu (accumulating)");
        ok = sc == DL_OK && sg == DL_OK;
        if (ok)
            for (int i = 0; i < c->nout; i++)
                keep_worse(&err, compare(c->out[i].b, c->tol == 0.0, c->out[i].name));
    }
    if (sg == DL_OK)
        gpu_ms = time_reps(c, GPU, ms[GPU], 0.2, 50);
    if (sc == DL_OK)
        cpu_ms = time_reps(c, CPU, ms[CPU], 0.3, 5);

    int pass = ok && err.norm_rel <= c->tol && (reproducible || c->atomics); /* NaN fails */
    g_rows++;
    g_failed += !pass;
    char errs[32] = "-", abss[32] = "-", rels[96] = "-", gs[32] = "-", cs[32] = "-";
    if (ok) {
        snprintf(errs, sizeof errs, "%.2e", err.norm_rel);
        snprintf(abss, sizeof abss, "%.2e", err.max_abs);
        snprintf(rels, sizeof rels, "%.2e at %s[%zu]", err.max_rel, err.worst_out, err.worst);
    }
    if (!isnan(gpu_ms))
        snprintf(gs, sizeof gs, "%.3f", gpu_ms);
    if (!isnan(cpu_ms))
        snprintf(cs, sizeof cs, "%.3f", cpu_ms);
    if (ok && !pass && !note[0])
        snprintf(note, sizeof note, "%s",
                 isnan(err.norm_rel) ? "NaN in an output (unwritten or not finite)" : "outside tolerance");
    for (char *p = note; *p; p++)
        if (*p == '|' || *p == '\n')
            *p = ' ';
    printf("| %s | %s | %s | %s | %s | %.0e | %s | %s | %s | %s |\n", c->op, c->variant, errs, abss, rels, c->tol,
           pass ? "pass" : "FAIL", gs, cs, note);
    fflush(stdout);
    json_row(c, ok, &err, pass, reproducible, gpu_ms, cpu_ms, note);
}

/* Runs `call` (a forward) on the CPU, or the GPU when the CPU cannot, and copies the listed outputs to both sides:
 * a backward needs saved forward results that are identical on both sides. */
static void feed(call_fn call, const void *ctx, buf **outs, int n) {
    for (int s = CPU; s <= GPU; s++) {
        dl_status st = call(&g_be[s], s, ctx);
        if (st == DL_OK && s == GPU)
            st = dl_synchronize(&g_be[GPU]);
        if (st != DL_OK) {
            dl_error_clear();
            continue;
        }
        for (int i = 0; i < n; i++) {
            void *host = xmalloc(outs[i]->n * elem_size(outs[i]->type));
            get(outs[i], s, host);
            put(outs[i], host);
            free(host);
        }
        return;
    }
}

#define Q(full, quick) (g_quick ? (quick) : (full))
#define OUT(b_, kind_) ((out_spec){#b_, (b_), (kind_), NULL})
#define OUT_INIT(b_, init_) ((out_spec){#b_, (b_), O_INOUT, (init_)})

/* ---- dense ----------------------------------------------------------------------------------------------------- */

typedef struct mm_ctx {
    buf *out, *inp, *w, *bias, *dinp, *dw, *dbias, *dout;
    int N, C, OC, off; /* off: start the inputs one float in, to test unaligned pointers */
} mm_ctx;

static dl_status mm_fwd(const dl_backend *be, int s, const void *v) {
    const mm_ctx *c = (const mm_ctx *)v;
    return OP(be, dense, matmul_forward, fp(c->out, s), fp(c->inp, s) + c->off, fp(c->w, s) + c->off,
              c->bias ? fp(c->bias, s) + c->off : NULL, c->N, c->C, c->OC);
}
static dl_status mm_bwd(const dl_backend *be, int s, const void *v) {
    const mm_ctx *c = (const mm_ctx *)v;
    return OP(be, dense, matmul_backward, fp(c->dinp, s), fp(c->dw, s), fp(c->dbias, s), fp(c->dout, s),
              fp(c->inp, s), fp(c->w, s), c->N, c->C, c->OC);
}
static dl_status mm_fwd_bf16(const dl_backend *be, int s, const void *v) {
    const mm_ctx *c = (const mm_ctx *)v;
    return OP(be, dense, matmul_forward_bf16, fp(c->out, s), hp(c->inp, s), hp(c->w, s), fp(c->bias, s), c->N, c->C,
              c->OC);
}

static dl_status mm_bwd_bf16(const dl_backend *be, int s, const void *v) {
    const mm_ctx *c = (const mm_ctx *)v;
    return OP(be, dense, matmul_backward_bf16, fp(c->dinp, s), fp(c->dw, s), fp(c->dbias, s), hp(c->dout, s),
              hp(c->inp, s), hp(c->w, s), c->N, c->C, c->OC);
}

/* A bf16 buffer of n values rounded from uniform [lo, hi). */
static buf *mk_bf16_uniform(size_t n, float lo, float hi) {
    uint16_t *h = (uint16_t *)halloc(n * 2);
    for (size_t i = 0; i < n; i++)
        h[i] = bf16_rne(urand(lo, hi));
    buf *b = mk(T_BF16, n);
    put(b, h);
    return b;
}

static void check_matmul(void) {
    if (!selected("matmul_forward matmul_backward matmul_forward_bf16 matmul_backward_bf16"))
        return;
    struct { int N, C, OC, bias, off; const char *name; } shapes[] = {
        {Q(2048, 64), Q(768, 48), Q(2304, 80), 1, 0, "gpt qkv, bias"},
        {Q(2048, 64), Q(3072, 96), Q(768, 40), 0, 0, "gpt mlp proj, no bias"},
        {77, 33, 50, 1, 1, "odd sizes, unaligned pointers"},
    };
    for (int k = 0; k < 3; k++) {
        mm_ctx c = {0};
        c.N = shapes[k].N, c.C = shapes[k].C, c.OC = shapes[k].OC, c.off = shapes[k].off;
        c.inp = mk_uniform((size_t)c.N * c.C + 1, -1, 1);
        c.w = mk_uniform((size_t)c.OC * c.C + 1, -0.5f, 0.5f);
        c.bias = shapes[k].bias ? mk_uniform((size_t)c.OC + 1, -1, 1) : NULL;
        c.out = mk(T_F32, (size_t)c.N * c.OC);
        check f = {"matmul_forward", shapes[k].name, 1e-5, mm_fwd, &c, {OUT(c.out, O_WRITE)}, 1, 0};
        run(&f);
        release_all();
    }
    for (int k = 0; k < 2; k++) {
        mm_ctx c = {0};
        c.N = k ? 77 : Q(2048, 64), c.C = k ? 33 : Q(768, 48), c.OC = k ? 50 : Q(2304, 80);
        c.inp = mk_uniform((size_t)c.N * c.C, -1, 1);
        c.w = mk_uniform((size_t)c.OC * c.C, -0.5f, 0.5f);
        c.dout = mk_uniform((size_t)c.N * c.OC, -1, 1);
        c.dw = mk(T_F32, (size_t)c.OC * c.C);
        if (!k) {
            c.dinp = mk(T_F32, (size_t)c.N * c.C);
            c.dbias = mk(T_F32, (size_t)c.OC);
        }
        check b = {"matmul_backward", k ? "odd sizes, dinp and dbias NULL" : "gpt qkv", 1e-5, mm_bwd, &c,
                   {OUT(c.dw, O_ACCUM)}, 1, 0};
        if (!k) {
            b.out[b.nout++] = OUT(c.dinp, O_ACCUM);
            b.out[b.nout++] = OUT(c.dbias, O_ACCUM);
        }
        run(&b);
        release_all();
    }
    {
        /* bf16 inputs: their products are exact in fp32 and both backends accumulate in fp32, but the tensor cores'
         * fp32 accumulation truncates rather than rounds when it aligns addends, up to one ulp per addition that a
         * K-term dot product (K = 768) turns into ~√K·2⁻²³ ≈ 3e-6 relative. 1e-4 leaves margin for that while still
         * catching any real error (a wrong operand or a lost bias is O(1)). */
        mm_ctx c = {0};
        c.N = Q(2048, 64), c.C = Q(768, 48), c.OC = Q(2304, 80);
        size_t ni = (size_t)c.N * c.C, nw = (size_t)c.OC * c.C;
        uint16_t *hi = (uint16_t *)halloc(ni * 2), *hw = (uint16_t *)halloc(nw * 2);
        for (size_t i = 0; i < ni; i++)
            hi[i] = bf16_rne(urand(-1, 1));
        for (size_t i = 0; i < nw; i++)
            hw[i] = bf16_rne(urand(-0.5f, 0.5f));
        c.inp = mk(T_BF16, ni);
        put(c.inp, hi);
        c.w = mk(T_BF16, nw);
        put(c.w, hw);
        c.bias = mk_uniform((size_t)c.OC, -1, 1);
        c.out = mk(T_F32, (size_t)c.N * c.OC);
        check f = {"matmul_forward_bf16", "gpt qkv, bias", 1e-4, mm_fwd_bf16, &c, {OUT(c.out, O_WRITE)}, 1, 0};
        run(&f);
        release_all();
    }
    for (int k = 0; k < 2; k++) {
        /* The bf16 backward (model.precision bf16): exact products, fp32 accumulation on both sides, so the same
         * argument and tolerance as the bf16 forward; the sums are over K = OC (dinp) and K = N (dweight, dbias:
         * the CPU sums dbias in double, the GPU in fp32 in a fixed order, ~√N·2⁻²⁴ apart). Odd sizes exercise the
         * GPU's unaligned bf16 leading dimensions. */
        mm_ctx c = {0};
        c.N = k ? 77 : Q(2048, 64), c.C = k ? 33 : Q(768, 48), c.OC = k ? 50 : Q(2304, 80);
        c.inp = mk_bf16_uniform((size_t)c.N * c.C, -1, 1);
        c.w = mk_bf16_uniform((size_t)c.OC * c.C, -0.5f, 0.5f);
        c.dout = mk_bf16_uniform((size_t)c.N * c.OC, -1, 1);
        c.dw = mk(T_F32, (size_t)c.OC * c.C);
        if (!k) {
            c.dinp = mk(T_F32, (size_t)c.N * c.C);
            c.dbias = mk(T_F32, (size_t)c.OC);
        }
        check b = {"matmul_backward_bf16", k ? "odd sizes, dinp and dbias NULL" : "gpt qkv", 1e-4, mm_bwd_bf16, &c,
                   {OUT(c.dw, O_ACCUM)}, 1, 0};
        if (!k) {
            b.out[b.nout++] = OUT(c.dinp, O_ACCUM);
            b.out[b.nout++] = OUT(c.dbias, O_ACCUM);
        }
        run(&b);
        release_all();
    }
}

typedef struct emb_ctx {
    buf *out, *tokens, *positions, *wte, *wpe, *dwte, *dwpe, *dout;
    int N, C, V, max_pos;
} emb_ctx;

static dl_status emb_fwd(const dl_backend *be, int s, const void *v) {
    const emb_ctx *c = (const emb_ctx *)v;
    return OP(be, dense, embedding_forward, fp(c->out, s), ip(c->tokens, s), ip(c->positions, s), fp(c->wte, s),
              fp(c->wpe, s), c->N, c->C, c->V, c->max_pos);
}
static dl_status emb_bwd(const dl_backend *be, int s, const void *v) {
    const emb_ctx *c = (const emb_ctx *)v;
    return OP(be, dense, embedding_backward, fp(c->dwte, s), fp(c->dwpe, s), fp(c->dout, s), ip(c->tokens, s),
              ip(c->positions, s), c->N, c->C, c->V, c->max_pos);
}

static void check_embedding(void) {
    if (!selected("embedding_forward embedding_backward"))
        return;
    for (int learned = 1; learned >= 0; learned--) {
        emb_ctx c = {0};
        c.N = Q(4096, 200), c.C = Q(768, 40), c.V = Q(8192, 300), c.max_pos = Q(1024, 64);
        int32_t *cu;
        int num_seqs = make_docs(c.N, NULL, 0, c.max_pos, &cu);
        c.tokens = mk_i32(skewed_ids((size_t)c.N, c.V), (size_t)c.N);
        c.wte = mk_uniform((size_t)c.V * c.C, -1, 1);
        if (learned) {
            c.positions = mk_i32(doc_positions(cu, num_seqs, c.N), (size_t)c.N);
            c.wpe = mk_uniform((size_t)c.max_pos * c.C, -1, 1);
        }
        c.out = mk(T_F32, (size_t)c.N * c.C);
        check f = {"embedding_forward", learned ? "learned positions" : "no wpe (rotary)", 1e-5, emb_fwd, &c,
                   {OUT(c.out, O_WRITE)}, 1, 0};
        run(&f);
        c.dout = mk_uniform((size_t)c.N * c.C, -1, 1);
        c.dwte = mk(T_F32, (size_t)c.V * c.C);
        if (learned)
            c.dwpe = mk(T_F32, (size_t)c.max_pos * c.C);
        check b = {"embedding_backward", learned ? "learned positions, repeated ids" : "no wpe", 1e-5, emb_bwd, &c,
                   {OUT(c.dwte, O_ACCUM)}, 1, 0};
        if (learned)
            b.out[b.nout++] = OUT(c.dwpe, O_ACCUM);
        run(&b);
        release_all();
    }
}

typedef struct rope_ctx {
    buf *out, *inp, *positions;
    int N, H, D, stride, in_place;
    float theta;
} rope_ctx;

static dl_status rope_fwd(const dl_backend *be, int s, const void *v) {
    const rope_ctx *c = (const rope_ctx *)v;
    float *out = c->in_place ? fp(c->inp, s) : fp(c->out, s);
    return OP(be, dense, rope_forward, out, fp(c->inp, s), ip(c->positions, s), c->N, c->H, c->D, c->stride, c->theta);
}
static dl_status rope_bwd(const dl_backend *be, int s, const void *v) {
    const rope_ctx *c = (const rope_ctx *)v;
    return OP(be, dense, rope_backward, fp(c->out, s), fp(c->inp, s), ip(c->positions, s), c->N, c->H, c->D,
              c->stride, c->theta);
}

static void check_rope(void) {
    if (!selected("rope_forward rope_backward"))
        return;
    for (int k = 0; k < 3; k++) {
        rope_ctx c = {0};
        c.N = Q(4096, 150), c.H = Q(12, 3), c.D = Q(64, 16), c.theta = 10000.0f;
        c.stride = 3 * c.H * c.D; /* q inside a qkv buffer */
        int32_t *cu;
        int num_seqs = make_docs(c.N, NULL, 0, Q(1024, 64), &cu);
        c.positions = mk_i32(doc_positions(cu, num_seqs, c.N), (size_t)c.N);
        size_t n = (size_t)c.N * c.stride;
        float *x = uniform(n, -1, 1);
        c.in_place = k == 1;
        if (k == 1) {
            /* In place: the whole qkv buffer is the output; floats outside q must stay as they were. */
            c.inp = mk(T_F32, n);
            check f = {"rope_forward", "in place (out == inp), stride 3C", 1e-5, rope_fwd, &c,
                       {OUT_INIT(c.inp, x)}, 1, 0};
            run(&f);
        } else if (k == 0) {
            c.inp = mk(T_F32, n);
            put(c.inp, x);
            c.out = mk(T_F32, n);
            /* out's floats outside the view are not written: start them at zero on both sides. */
            check f = {"rope_forward", "out of place, stride 3C", 1e-5, rope_fwd, &c, {OUT(c.out, O_ZERO)}, 1, 0};
            run(&f);
        } else {
            c.inp = mk(T_F32, n); /* dout */
            put(c.inp, x);
            c.out = mk(T_F32, n); /* dinp */
            check b = {"rope_backward", "stride 3C", 1e-5, rope_bwd, &c, {OUT(c.out, O_ACCUM)}, 1, 0};
            run(&b);
        }
        release_all();
    }
}

typedef struct ln_ctx {
    buf *out, *mean, *rstd, *inp, *w, *b, *dinp, *dw, *db, *dout;
    int N, C;
} ln_ctx;

static dl_status ln_fwd(const dl_backend *be, int s, const void *v) {
    const ln_ctx *c = (const ln_ctx *)v;
    return OP(be, dense, layernorm_forward, fp(c->out, s), fp(c->mean, s), fp(c->rstd, s), fp(c->inp, s), fp(c->w, s),
              fp(c->b, s), c->N, c->C, 1e-5f);
}
static dl_status ln_bwd(const dl_backend *be, int s, const void *v) {
    const ln_ctx *c = (const ln_ctx *)v;
    return OP(be, dense, layernorm_backward, fp(c->dinp, s), fp(c->dw, s), fp(c->db, s), fp(c->dout, s),
              fp(c->inp, s), fp(c->w, s), fp(c->mean, s), fp(c->rstd, s), c->N, c->C);
}

static void check_layernorm(void) {
    if (!selected("layernorm_forward layernorm_backward"))
        return;
    for (int k = 0; k < 2; k++) {
        ln_ctx c = {0};
        c.N = k ? Q(1000, 37) : Q(4096, 100), c.C = k ? 100 : Q(768, 72);
        /* An offset mean checks that the variance is taken around the mean, not as E[x²] − mean². */
        c.inp = mk_uniform((size_t)c.N * c.C, 2.0f, 4.0f);
        c.w = mk_uniform((size_t)c.C, 0.5f, 1.5f);
        c.b = mk_uniform((size_t)c.C, -0.5f, 0.5f);
        c.out = mk(T_F32, (size_t)c.N * c.C);
        c.mean = mk(T_F32, (size_t)c.N);
        c.rstd = mk(T_F32, (size_t)c.N);
        check f = {"layernorm_forward", k ? "C = 100" : "C = 768", 1e-5, ln_fwd, &c,
                   {OUT(c.out, O_WRITE), OUT(c.mean, O_WRITE), OUT(c.rstd, O_WRITE)}, 3, 0};
        run(&f);
        buf *saved[] = {c.mean, c.rstd};
        feed(ln_fwd, &c, saved, 2);
        c.dout = mk_uniform((size_t)c.N * c.C, -1, 1);
        c.dinp = mk(T_F32, (size_t)c.N * c.C);
        c.dw = mk(T_F32, (size_t)c.C);
        c.db = mk(T_F32, (size_t)c.C);
        check b = {"layernorm_backward", k ? "C = 100" : "C = 768", 1e-5, ln_bwd, &c,
                   {OUT(c.dinp, O_ACCUM), OUT(c.dw, O_ACCUM), OUT(c.db, O_ACCUM)}, 3, 0};
        run(&b);
        release_all();
    }
}

typedef struct ew_ctx {
    buf *out, *a, *b, *dout, *dx, *db;
    size_t n;
    float p;
    uint64_t seed, stream;
} ew_ctx;

static dl_status gelu_fwd(const dl_backend *be, int s, const void *v) {
    const ew_ctx *c = (const ew_ctx *)v;
    return OP(be, dense, gelu_forward, fp(c->out, s), fp(c->a, s), c->n);
}
static dl_status gelu_bwd(const dl_backend *be, int s, const void *v) {
    const ew_ctx *c = (const ew_ctx *)v;
    return OP(be, dense, gelu_backward, fp(c->dx, s), fp(c->a, s), fp(c->dout, s), c->n);
}
static dl_status res_fwd(const dl_backend *be, int s, const void *v) {
    const ew_ctx *c = (const ew_ctx *)v;
    return OP(be, dense, residual_forward, fp(c->out, s), fp(c->a, s), fp(c->b, s), c->n);
}
static dl_status res_bwd(const dl_backend *be, int s, const void *v) {
    const ew_ctx *c = (const ew_ctx *)v;
    return OP(be, dense, residual_backward, fp(c->dx, s), fp(c->db, s), fp(c->dout, s), c->n);
}
static dl_status drop_fwd(const dl_backend *be, int s, const void *v) {
    const ew_ctx *c = (const ew_ctx *)v;
    return OP(be, dense, dropout_forward, fp(c->out, s), fp(c->a, s), c->n, c->p, c->seed, c->stream);
}
static dl_status drop_bwd(const dl_backend *be, int s, const void *v) {
    const ew_ctx *c = (const ew_ctx *)v;
    return OP(be, dense, dropout_backward, fp(c->dx, s), fp(c->dout, s), c->n, c->p, c->seed, c->stream);
}

static void check_elementwise(void) {
    if (!selected("gelu_forward gelu_backward residual_forward residual_backward dropout_forward dropout_backward"))
        return;
    ew_ctx c = {0};
    c.n = Q((size_t)4096 * 3072 + 3, 5003); /* odd: a tail that is not a whole vector or Philox block */
    c.a = mk_uniform(c.n, -4, 4);
    c.b = mk_uniform(c.n, -1, 1);
    c.dout = mk_uniform(c.n, -1, 1);
    c.out = mk(T_F32, c.n);
    c.dx = mk(T_F32, c.n);
    c.db = mk(T_F32, c.n);
    c.seed = 0x5eed5eedULL;
    c.stream = ((uint64_t)DL_STREAM_DROPOUT << 32) | 7u;
    check list[] = {
        {"gelu_forward", "tanh approximation", 1e-5, gelu_fwd, &c, {OUT(c.out, O_WRITE)}, 1, 0},
        {"gelu_backward", "", 1e-5, gelu_bwd, &c, {OUT(c.dx, O_ACCUM)}, 1, 0},
        {"residual_forward", "", 1e-5, res_fwd, &c, {OUT(c.out, O_WRITE)}, 1, 0},
        {"residual_backward", "", 1e-5, res_bwd, &c, {OUT(c.dx, O_ACCUM), OUT(c.db, O_ACCUM)}, 2, 0},
        /* Masks come from the same Philox words on both sides: one differing element already gives ~1/√n. */
        {"dropout_forward", "p = 0.1", 1e-5, drop_fwd, &c, {OUT(c.out, O_WRITE)}, 1, 0},
        {"dropout_backward", "p = 0.1", 1e-5, drop_bwd, &c, {OUT(c.dx, O_ACCUM)}, 1, 0},
    };
    c.p = 0.1f;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        run(&list[i]);
    release_all();
}

typedef struct xent_ctx {
    buf *losses, *lse, *logits, *targets, *dlogits, *dlosses;
    int N, V, in_place;
} xent_ctx;

static dl_status xent_fwd(const dl_backend *be, int s, const void *v) {
    const xent_ctx *c = (const xent_ctx *)v;
    return OP(be, dense, xent_forward, fp(c->losses, s), fp(c->lse, s), fp(c->logits, s), ip(c->targets, s), c->N,
              c->V);
}
static dl_status xent_bwd(const dl_backend *be, int s, const void *v) {
    const xent_ctx *c = (const xent_ctx *)v;
    float *d = c->in_place ? fp(c->logits, s) : fp(c->dlogits, s);
    return OP(be, dense, xent_backward, d, fp(c->logits, s), fp(c->lse, s), ip(c->targets, s), fp(c->dlosses, s), c->N,
              c->V);
}

static void check_xent(void) {
    if (!selected("xent_forward xent_backward"))
        return;
    xent_ctx c = {0};
    c.N = Q(512, 40), c.V = Q(50257, 500);
    size_t nl = (size_t)c.N * c.V;
    float *logits = uniform(nl, -4, 4);
    int32_t *t = (int32_t *)halloc((size_t)c.N * sizeof(int32_t));
    for (int n = 0; n < c.N; n++)
        t[n] = n % 10 == 3 ? -1 : (n % 10 == 7 ? -100 : irand(c.V)); /* 20% ignored */
    c.logits = mk(T_F32, nl);
    put(c.logits, logits);
    c.targets = mk_i32(t, (size_t)c.N);
    c.losses = mk(T_F32, (size_t)c.N);
    c.lse = mk(T_F32, (size_t)c.N);
    check f = {"xent_forward", "20% ignored targets", 1e-5, xent_fwd, &c, {OUT(c.losses, O_WRITE), OUT(c.lse, O_WRITE)},
               2, 0};
    run(&f);
    buf *saved[] = {c.lse};
    feed(xent_fwd, &c, saved, 1);
    c.dlosses = mk_uniform((size_t)c.N, 0.5f, 1.5f);
    c.dlogits = mk(T_F32, nl);
    check b = {"xent_backward", "accumulating", 1e-5, xent_bwd, &c, {OUT(c.dlogits, O_ACCUM)}, 1, 0};
    run(&b);
    xent_ctx ci = c;
    ci.in_place = 1;
    check bi = {"xent_backward", "in place (dlogits == logits)", 1e-5, xent_bwd, &ci, {OUT_INIT(ci.logits, logits)},
                1, 0};
    run(&bi);
    release_all();
}

typedef struct seq_ctx {
    buf *out, *values, *cu, *dvalues, *dout;
    int num_seqs;
} seq_ctx;

static dl_status seq_fwd(const dl_backend *be, int s, const void *v) {
    const seq_ctx *c = (const seq_ctx *)v;
    return OP(be, dense, sequence_sum_forward, fp(c->out, s), fp(c->values, s), ip(c->cu, s), c->num_seqs);
}
static dl_status seq_bwd(const dl_backend *be, int s, const void *v) {
    const seq_ctx *c = (const seq_ctx *)v;
    return OP(be, dense, sequence_sum_backward, fp(c->dvalues, s), fp(c->dout, s), ip(c->cu, s), c->num_seqs);
}

static void check_sequence_sum(void) {
    if (!selected("sequence_sum_forward sequence_sum_backward"))
        return;
    seq_ctx c = {0};
    int N = Q(4096, 100);
    int given[] = {5, 0, 1, 700};
    int32_t *cu;
    c.num_seqs = make_docs(N, given, 4, Q(1024, 40), &cu);
    c.cu = mk_i32(cu, (size_t)c.num_seqs + 1);
    /* Log-probs are negative: sums of same-signed terms, as DPO has them. */
    c.values = mk_uniform((size_t)N, -8.0f, -0.01f);
    c.out = mk(T_F32, (size_t)c.num_seqs);
    check f = {"sequence_sum_forward", "with an empty document", 1e-5, seq_fwd, &c, {OUT(c.out, O_WRITE)}, 1, 0};
    run(&f);
    c.dout = mk_uniform((size_t)c.num_seqs, -1, 1);
    c.dvalues = mk(T_F32, (size_t)N);
    check b = {"sequence_sum_backward", "with an empty document", 1e-5, seq_bwd, &c, {OUT(c.dvalues, O_ACCUM)}, 1, 0};
    run(&b);
    release_all();
}

typedef struct cvt_ctx {
    buf *f, *h, *f2;
    size_t n;
} cvt_ctx;

static dl_status cvt_to(const dl_backend *be, int s, const void *v) {
    const cvt_ctx *c = (const cvt_ctx *)v;
    return OP(be, dense, f32_to_bf16, hp(c->h, s), fp(c->f, s), c->n);
}
static dl_status cvt_from(const dl_backend *be, int s, const void *v) {
    const cvt_ctx *c = (const cvt_ctx *)v;
    return OP(be, dense, bf16_to_f32, fp(c->f2, s), hp(c->h, s), c->n);
}

static void check_convert(void) {
    if (!selected("f32_to_bf16 bf16_to_f32"))
        return;
    cvt_ctx c = {0};
    c.n = Q((size_t)1 << 22, 4099);
    float *x = uniform(c.n, -3, 3);
    /* Values at the edges of rounding: exact ties (to even up and down), just above and below a tie, signed zeros,
     * infinities, the largest float (rounds to infinity), subnormals, and huge and tiny magnitudes. */
    uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu, 0x00000000u, 0x80000000u,
                          0x7f800000u, 0xff800000u, 0x7f7fffffu, 0x00000001u, 0x807fffffu, 0x7f000000u,
                          0x00800000u, 0xbf7fffffu, 0x3f7f8000u, 0x477f8000u};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        memcpy(&x[i * 97 % c.n], &special[i], 4);
    c.f = mk(T_F32, c.n);
    put(c.f, x);
    c.h = mk(T_BF16, c.n);
    /* bf16 results are compared bit for bit (tolerance 0): the rounding rule leaves no freedom. */
    check to = {"f32_to_bf16", "RNE, ties, inf, subnormals", 0.0, cvt_to, &c, {OUT(c.h, O_WRITE)}, 1, 0};
    run(&to);
    uint16_t *hb = (uint16_t *)halloc(c.n * 2);
    for (size_t i = 0; i < c.n; i++) {
        hb[i] = (uint16_t)(dl_rng_uniform(&g_rng) * 65536.0f);
        if ((hb[i] & 0x7f80u) == 0x7f80u && (hb[i] & 0x7fu)) /* NaN payloads are not compared */
            hb[i] = 0x3f80u;
    }
    put(c.h, hb);
    c.f2 = mk(T_F32, c.n);
    check from = {"bf16_to_f32", "all bit patterns but NaN", 0.0, cvt_from, &c, {OUT(c.f2, O_WRITE)}, 1, 0};
    run(&from);
    release_all();
}

/* ---- attention ------------------------------------------------------------------------------------------------- */

typedef struct att_ctx {
    buf *out, *lse, *qkv, *cu, *dqkv, *dout;
    int num_seqs, N, H, D;
} att_ctx;

static dl_status att_fwd(const dl_backend *be, int s, const void *v) {
    const att_ctx *c = (const att_ctx *)v;
    return OP(be, attention, forward, fp(c->out, s), fp(c->lse, s), fp(c->qkv, s), ip(c->cu, s), c->num_seqs, c->N,
              c->H, c->D);
}
static dl_status att_bwd(const dl_backend *be, int s, const void *v) {
    const att_ctx *c = (const att_ctx *)v;
    return OP(be, attention, backward, fp(c->dqkv, s), fp(c->dout, s), fp(c->qkv, s), fp(c->out, s), fp(c->lse, s),
              ip(c->cu, s), c->num_seqs, c->N, c->H, c->D);
}

static void check_attention(void) {
    if (!selected("attention_forward attention_backward"))
        return;
    /* Documents of length 1, exactly one tile, one tile plus one, long ones, and an empty one. */
    static const int given[] = {1, 17, 64, 65, 200, 0, 1000, 127, 1024};
    static const int given_quick[] = {1, 17, 64, 65, 0, 3};
    struct { int N, H, D; const char *name; } shapes[] = {
        {Q(4096, 200), Q(12, 2), 64, "D = 64 (GPT-2 small), mixed documents"},
        {Q(2048, 150), Q(4, 1), 128, "D = 128"},
        {Q(1200, 140), 3, 40, "D = 40 (padded to 64)"},
        {Q(1000, 130), 2, 16, "D = 16 (padded to 32)"},
    };
    for (int k = 0; k < 4; k++) {
        att_ctx c = {0};
        c.N = shapes[k].N, c.H = shapes[k].H, c.D = shapes[k].D;
        int32_t *cu;
        c.num_seqs = g_quick ? make_docs(c.N, given_quick, 6, 70, &cu) : make_docs(c.N, given, 9, 1024, &cu);
        c.cu = mk_i32(cu, (size_t)c.num_seqs + 1);
        size_t nqkv = (size_t)c.N * 3 * c.H * c.D, no = (size_t)c.N * c.H * c.D;
        /* Scores of a few units: a softmax that is neither flat nor one-hot. */
        c.qkv = mk_uniform(nqkv, -2, 2);
        c.out = mk(T_F32, no);
        c.lse = mk(T_F32, (size_t)c.N * c.H);
        check f = {"attention_forward", shapes[k].name, 1e-5, att_fwd, &c, {OUT(c.out, O_WRITE), OUT(c.lse, O_WRITE)},
                   2, 0};
        run(&f);
        buf *saved[] = {c.out, c.lse};
        feed(att_fwd, &c, saved, 2);
        c.dout = mk_uniform(no, -1, 1);
        c.dqkv = mk(T_F32, nqkv);
        check b = {"attention_backward", shapes[k].name, 1e-5, att_bwd, &c, {OUT(c.dqkv, O_ACCUM)}, 1, 0};
        run(&b);
        release_all();
    }
}

/* ---- optimizers, norms, DPO ------------------------------------------------------------------------------------ */

typedef struct opt_ctx {
    buf *p, *g, *m, *v, *x, *sumsq;
    size_t n;
    float momentum;
} opt_ctx;

static dl_status adamw(const dl_backend *be, int s, const void *v) {
    const opt_ctx *c = (const opt_ctx *)v;
    return OP(be, optim, adamw_update, fp(c->p, s), fp(c->g, s), fp(c->m, s), fp(c->v, s), c->n, 1e-2f, 0.9f, 0.999f,
              1e-8f, 0.1f, 0.5f, (int64_t)10);
}
static dl_status adagrad(const dl_backend *be, int s, const void *v) {
    const opt_ctx *c = (const opt_ctx *)v;
    return OP(be, optim, adagrad_update, fp(c->p, s), fp(c->g, s), fp(c->v, s), c->n, 0.1f, 1e-4f, 0.5f);
}
static dl_status sgd(const dl_backend *be, int s, const void *v) {
    const opt_ctx *c = (const opt_ctx *)v;
    return OP(be, optim, sgd_update, fp(c->p, s), fp(c->g, s), c->momentum != 0.0f ? fp(c->m, s) : NULL, c->n, 0.1f,
              c->momentum, 1e-3f, 0.5f);
}
static dl_status sumsq(const dl_backend *be, int s, const void *v) {
    const opt_ctx *c = (const opt_ctx *)v;
    return OP(be, optim, sumsq, (double *)c->sumsq->p[s], fp(c->x, s), c->n);
}
static dl_status scale_op(const dl_backend *be, int s, const void *v) {
    const opt_ctx *c = (const opt_ctx *)v;
    return OP(be, optim, scale, fp(c->p, s), c->n, 0.37f);
}

static void check_optim(void) {
    if (!selected("adamw_update adagrad_update sgd_update scale sumsq"))
        return;
    opt_ctx c = {0};
    c.n = Q((size_t)1 << 22, 3001);
    float *p = uniform(c.n, -1, 1), *m = uniform(c.n, -0.01f, 0.01f), *v = uniform(c.n, 0.0f, 1e-4f);
    float *acc = uniform(c.n, 1.0f, 2.0f);
    c.p = mk(T_F32, c.n);
    c.m = mk(T_F32, c.n);
    c.v = mk(T_F32, c.n);
    c.g = mk_uniform(c.n, -0.05f, 0.05f);
    check list[] = {
        {"adamw_update", "step 10, weight decay", 1e-5, adamw, &c,
         {OUT_INIT(c.p, p), OUT_INIT(c.m, m), OUT_INIT(c.v, v)}, 3, 0},
        {"adagrad_update", "libffm", 1e-5, adagrad, &c, {OUT_INIT(c.p, p), OUT_INIT(c.v, acc)}, 2, 0},
        {"sgd_update", "momentum 0.9", 1e-5, sgd, &c, {OUT_INIT(c.p, p), OUT_INIT(c.m, m)}, 2, 0},
        {"scale", "", 1e-5, scale_op, &c, {OUT_INIT(c.p, p)}, 1, 0},
    };
    c.momentum = 0.9f;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        run(&list[i]);
    opt_ctx c0 = c;
    c0.momentum = 0.0f;
    check plain = {"sgd_update", "no momentum (NULL buffer)", 1e-5, sgd, &c0, {OUT_INIT(c0.p, p)}, 1, 0};
    run(&plain);
    if (selected("sumsq")) {
        /* Both sum in double. A CPU that squares in float before adding in double is off by at most 2⁻²⁴ relative
         * (every term has the same sign, so nothing cancels): hence 1e-7, not 1e-5. */
        opt_ctx cs = {0};
        cs.n = Q((size_t)10000003, 5003);
        cs.x = mk_uniform(cs.n, -3, 3);
        cs.sumsq = mk(T_HOST_F64, 1);
        check s = {"sumsq", "n odd, 1e7", 1e-7, sumsq, &cs, {OUT(cs.sumsq, O_WRITE)}, 1, 0};
        run(&s);
    }
    release_all();
}

typedef struct dpo_ctx {
    buf *losses, *cr, *rr, *pc, *pr, *rc, *rj, *dl, *dpc, *dpr;
    int n, kind;
    float beta, smoothing;
} dpo_ctx;

static dl_status dpo_fwd(const dl_backend *be, int s, const void *v) {
    const dpo_ctx *c = (const dpo_ctx *)v;
    return OP(be, optim, dpo_loss_forward, fp(c->losses, s), fp(c->cr, s), fp(c->rr, s), fp(c->pc, s), fp(c->pr, s),
              fp(c->rc, s), fp(c->rj, s), c->n, c->kind, c->beta, c->smoothing);
}
static dl_status dpo_bwd(const dl_backend *be, int s, const void *v) {
    const dpo_ctx *c = (const dpo_ctx *)v;
    return OP(be, optim, dpo_loss_backward, fp(c->dpc, s), fp(c->dpr, s), fp(c->dl, s), fp(c->pc, s), fp(c->pr, s),
              fp(c->rc, s), fp(c->rj, s), c->n, c->kind, c->beta, c->smoothing);
}

static void check_dpo(void) {
    if (!selected("dpo_loss_forward dpo_loss_backward"))
        return;
    static const char *names[] = {"sigmoid, label smoothing 0.1", "ipo", "hinge"};
    for (int kind = 0; kind < 3; kind++) {
        dpo_ctx c = {0};
        c.n = Q(1000, 50), c.kind = kind, c.beta = 0.1f, c.smoothing = kind == 0 ? 0.1f : 0.0f;
        /* Summed log-probs of a few hundred tokens: margins h of either sign and tens of units. */
        c.pc = mk_uniform((size_t)c.n, -200, -50);
        c.pr = mk_uniform((size_t)c.n, -200, -50);
        c.rc = mk_uniform((size_t)c.n, -200, -50);
        c.rj = mk_uniform((size_t)c.n, -200, -50);
        c.losses = mk(T_F32, (size_t)c.n);
        c.cr = mk(T_F32, (size_t)c.n);
        c.rr = mk(T_F32, (size_t)c.n);
        check f = {"dpo_loss_forward", names[kind], 1e-5, dpo_fwd, &c,
                   {OUT(c.losses, O_WRITE), OUT(c.cr, O_WRITE), OUT(c.rr, O_WRITE)}, 3, 0};
        run(&f);
        c.dl = mk_uniform((size_t)c.n, 0.5f, 1.5f);
        c.dpc = mk(T_F32, (size_t)c.n);
        c.dpr = mk(T_F32, (size_t)c.n);
        check b = {"dpo_loss_backward", names[kind], 1e-5, dpo_bwd, &c,
                   {OUT(c.dpc, O_ACCUM), OUT(c.dpr, O_ACCUM)}, 2, 0};
        run(&b);
        release_all();
    }
}

/* ---- sparse ---------------------------------------------------------------------------------------------------- */

typedef struct sp_ctx {
    buf *out, *table, *rows, *weights, *offsets, *dtable, *dout;
    buf *logits, *sum_vx, *linear, *latent, *bias, *fields, *values, *scale;
    buf *dlinear, *dlatent, *dbias, *dlogits, *accum, *grads;
    int B, dim, k, kpad, num_fields, touched, row_floats;
    int64_t num_rows;
} sp_ctx;

static dl_status bag_fwd(const dl_backend *be, int s, const void *v) {
    const sp_ctx *c = (const sp_ctx *)v;
    return OP(be, sparse, embedding_bag_forward, fp(c->out, s), fp(c->table, s), ip(c->rows, s), fp(c->weights, s),
              ip(c->offsets, s), c->B, c->dim, c->num_rows);
}
static dl_status bag_bwd(const dl_backend *be, int s, const void *v) {
    const sp_ctx *c = (const sp_ctx *)v;
    return OP(be, sparse, embedding_bag_backward, fp(c->dtable, s), fp(c->dout, s), ip(c->rows, s), fp(c->weights, s),
              ip(c->offsets, s), c->B, c->dim, c->num_rows);
}
static dl_status fm_fwd(const dl_backend *be, int s, const void *v) {
    const sp_ctx *c = (const sp_ctx *)v;
    return OP(be, sparse, fm_forward, fp(c->logits, s), fp(c->sum_vx, s), fp(c->linear, s), fp(c->latent, s),
              fp(c->bias, s), ip(c->offsets, s), ip(c->rows, s), fp(c->values, s), fp(c->scale, s), c->B, c->k, c->kpad,
              c->num_rows);
}
static dl_status fm_bwd(const dl_backend *be, int s, const void *v) {
    const sp_ctx *c = (const sp_ctx *)v;
    return OP(be, sparse, fm_backward, fp(c->dlinear, s), fp(c->dlatent, s), fp(c->dbias, s), fp(c->dlogits, s),
              fp(c->sum_vx, s), fp(c->latent, s), ip(c->offsets, s), ip(c->rows, s), fp(c->values, s), fp(c->scale, s),
              c->B, c->k, c->kpad, c->num_rows);
}
static dl_status ffm_fwd(const dl_backend *be, int s, const void *v) {
    const sp_ctx *c = (const sp_ctx *)v;
    return OP(be, sparse, ffm_forward, fp(c->logits, s), fp(c->latent, s), ip(c->offsets, s), ip(c->rows, s),
              ip(c->fields, s), fp(c->values, s), fp(c->scale, s), c->B, c->num_fields, c->k, c->kpad, c->num_rows);
}
static dl_status ffm_bwd(const dl_backend *be, int s, const void *v) {
    const sp_ctx *c = (const sp_ctx *)v;
    return OP(be, sparse, ffm_backward, fp(c->dlatent, s), fp(c->dlogits, s), fp(c->latent, s), ip(c->offsets, s),
              ip(c->rows, s), ip(c->fields, s), fp(c->values, s), fp(c->scale, s), c->B, c->num_fields, c->k, c->kpad,
              c->num_rows);
}
static dl_status rows_update(const dl_backend *be, int s, const void *v) {
    const sp_ctx *c = (const sp_ctx *)v;
    return OP(be, sparse, adagrad_rows_update, fp(c->table, s), fp(c->accum, s), fp(c->grads, s), ip(c->rows, s),
              c->touched, c->row_floats, 0.1f, 1e-4f);
}

/* A CSR batch: B rows of 0..max_len entries; returns the entry count. */
static int make_csr(int B, int max_len, int32_t **ptr_out) {
    int32_t *ptr = (int32_t *)halloc((size_t)(B + 1) * sizeof(int32_t));
    ptr[0] = 0;
    for (int b = 0; b < B; b++)
        ptr[b + 1] = ptr[b] + (b % 17 == 5 ? 0 : irand(max_len + 1)); /* some empty rows */
    *ptr_out = ptr;
    return ptr[B];
}

/* A latent table with zeros in the padding k..kpad (as models keep it). */
static float *latent_table(size_t vectors, int k, int kpad, float range) {
    float *t = (float *)halloc(vectors * (size_t)kpad * sizeof(float));
    for (size_t v = 0; v < vectors; v++)
        for (int f = 0; f < k; f++)
            t[v * kpad + f] = urand(-range, range);
    return t;
}

/* libffm's instance normalisation 1/Σx² per row. */
static buf *instance_scale(const int32_t *ptr, const float *values, int B) {
    float *s = (float *)halloc((size_t)B * sizeof(float));
    for (int b = 0; b < B; b++) {
        double sum = 0.0;
        for (int j = ptr[b]; j < ptr[b + 1]; j++)
            sum += (double)values[j] * values[j];
        s[b] = sum > 0.0 ? (float)(1.0 / sum) : 1.0f;
    }
    buf *out = mk(T_F32, (size_t)B);
    put(out, s);
    return out;
}

static void check_sparse(void) {
    if (selected("embedding_bag_forward embedding_bag_backward")) {
        for (int weighted = 1; weighted >= 0; weighted--) {
            sp_ctx c = {0};
            c.B = Q(4096, 50), c.dim = Q(64, 20), c.num_rows = Q(100000, 500);
            int32_t *ptr;
            int nnz = make_csr(c.B, 40, &ptr);
            c.offsets = mk_i32(ptr, (size_t)c.B + 1);
            c.rows = mk_i32(skewed_ids((size_t)nnz, (int)c.num_rows), (size_t)nnz);
            c.weights = weighted ? mk_uniform((size_t)nnz, 0.5f, 1.5f) : NULL;
            c.table = mk_uniform((size_t)c.num_rows * c.dim, -1, 1);
            c.out = mk(T_F32, (size_t)c.B * c.dim);
            check f = {"embedding_bag_forward", weighted ? "weighted, empty bags" : "unweighted", 1e-5, bag_fwd, &c,
                       {OUT(c.out, O_WRITE)}, 1, 0};
            run(&f);
            c.dout = mk_uniform((size_t)c.B * c.dim, -1, 1);
            c.dtable = mk(T_F32, (size_t)c.num_rows * c.dim);
            check b = {"embedding_bag_backward", weighted ? "weighted, repeated rows" : "unweighted", 1e-5, bag_bwd,
                       &c, {OUT(c.dtable, O_ACCUM)}, 1, 1};
            run(&b);
            release_all();
        }
    }
    if (selected("fm_forward fm_backward")) {
        sp_ctx c = {0};
        c.B = Q(4096, 40), c.k = 6, c.kpad = 8, c.num_rows = Q(100000, 800);
        int32_t *ptr;
        int nnz = make_csr(c.B, 60, &ptr);
        float *values = uniform((size_t)nnz, 0.5f, 1.5f);
        c.offsets = mk_i32(ptr, (size_t)c.B + 1);
        c.rows = mk_i32(skewed_ids((size_t)nnz, (int)c.num_rows), (size_t)nnz);
        c.values = mk(T_F32, (size_t)nnz);
        put(c.values, values);
        c.scale = instance_scale(ptr, values, c.B);
        c.linear = mk_uniform((size_t)c.num_rows, -0.1f, 0.1f);
        c.latent = mk(T_F32, (size_t)c.num_rows * c.kpad);
        put(c.latent, latent_table((size_t)c.num_rows, c.k, c.kpad, 0.3f));
        c.bias = mk_uniform(1, -0.5f, 0.5f);
        c.logits = mk(T_F32, (size_t)c.B);
        c.sum_vx = mk(T_F32, (size_t)c.B * c.kpad);
        /* sum_vx's padding columns may be left unwritten: both start at zero there. */
        check f = {"fm_forward", "k = 6, kpad = 8, instance scale", 1e-5, fm_fwd, &c,
                   {OUT(c.logits, O_WRITE), OUT(c.sum_vx, O_ZERO)}, 2, 0};
        run(&f);
        buf *saved[] = {c.sum_vx};
        feed(fm_fwd, &c, saved, 1);
        c.dlogits = mk_uniform((size_t)c.B, -1, 1);
        c.dlinear = mk(T_F32, (size_t)c.num_rows);
        c.dlatent = mk(T_F32, (size_t)c.num_rows * c.kpad);
        c.dbias = mk(T_F32, 1);
        check b = {"fm_backward", "repeated rows", 1e-5, fm_bwd, &c,
                   {OUT(c.dlinear, O_ACCUM), OUT(c.dlatent, O_ACCUM), OUT(c.dbias, O_ACCUM)}, 3, 1};
        run(&b);
        release_all();
    }
    if (selected("ffm_forward ffm_backward")) {
        sp_ctx c = {0};
        c.B = Q(2048, 20), c.num_fields = Q(39, 8), c.k = 4, c.kpad = 8, c.num_rows = Q(20000, 300);
        int32_t *ptr;
        int nnz = make_csr(c.B, c.num_fields, &ptr);
        float *values = uniform((size_t)nnz, 0.5f, 1.5f);
        int32_t *fields = (int32_t *)halloc((size_t)nnz * sizeof(int32_t));
        for (int j = 0; j < nnz; j++)
            fields[j] = irand(c.num_fields);
        c.offsets = mk_i32(ptr, (size_t)c.B + 1);
        c.rows = mk_i32(skewed_ids((size_t)nnz, (int)c.num_rows), (size_t)nnz);
        c.fields = mk_i32(fields, (size_t)nnz);
        c.values = mk(T_F32, (size_t)nnz);
        put(c.values, values);
        c.scale = instance_scale(ptr, values, c.B);
        size_t vecs = (size_t)c.num_rows * c.num_fields;
        c.latent = mk(T_F32, vecs * c.kpad);
        put(c.latent, latent_table(vecs, c.k, c.kpad, 0.5f));
        c.logits = mk(T_F32, (size_t)c.B);
        check f = {"ffm_forward", "k = 4, kpad = 8, instance scale", 1e-5, ffm_fwd, &c, {OUT(c.logits, O_WRITE)}, 1, 0};
        run(&f);
        c.dlogits = mk_uniform((size_t)c.B, -1, 1);
        c.dlatent = mk(T_F32, vecs * c.kpad);
        check b = {"ffm_backward", "repeated rows", 1e-5, ffm_bwd, &c, {OUT(c.dlatent, O_ACCUM)}, 1, 1};
        run(&b);
        release_all();
    }
    if (selected("adagrad_rows_update")) {
        sp_ctx c = {0};
        c.num_rows = Q(20000, 100), c.touched = Q(5000, 40), c.row_floats = Q(16, 5);
        /* Distinct rows, in shuffled order (Fisher–Yates). */
        int32_t *perm = (int32_t *)halloc((size_t)c.num_rows * sizeof(int32_t));
        for (int i = 0; i < (int)c.num_rows; i++)
            perm[i] = i;
        for (int i = (int)c.num_rows - 1; i > 0; i--) {
            int j = irand(i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        size_t nt = (size_t)c.num_rows * c.row_floats;
        c.rows = mk_i32(perm, (size_t)c.touched);
        c.grads = mk_uniform((size_t)c.touched * c.row_floats, -0.1f, 0.1f);
        c.table = mk(T_F32, nt);
        c.accum = mk(T_F32, nt);
        check u = {"adagrad_rows_update", "distinct shuffled rows", 1e-5, rows_update, &c,
                   {OUT_INIT(c.table, uniform(nt, -1, 1)), OUT_INIT(c.accum, uniform(nt, 1, 2))}, 2, 0};
        run(&u);
        release_all();
    }
}

/* ---- sparse, fused: libffm-style click tables --------------------------------------------------------------------
 * Scoring reads only, so its batches share table rows freely. Training runs every row of a GPU batch at once
 * (Hogwild, src/ops/cuda/click_fused.cu) where the CPU trains them in order, so the training checks use batches whose
 * rows never share a table row — each batch row draws its entries from a pool of table rows of its own, with repeats
 * inside the row (and, in one variant, repeated fields: pairs whose two blocks are the same) — and no bias (which
 * every row updates), or a batch of one row with the bias. Then the GPU must give the CPU's result and the same bits
 * on every run (no "atomics" flag here). Accumulators start small (0.05-0.1) so the AdaGrad steps are a large part
 * of the table and an update in the wrong order or with the wrong operand shows in the norm.
 *
 * Tolerance 1e-5. The GPU kernels keep the CPU's per-lane order of every sum and never fuse a multiply-add, so the
 * scores are the same bits; the training differs only through κ = −y·σ(−y·t), whose expf is within 2 ulp on the GPU
 * and within 1 on the CPU, i.e. a relative 2e-7 on each step, far under 1e-5. */

typedef struct clk_ctx {
    buf *table, *bias, *row_ptr, *rows, *fields, *values, *labels, *scale, *logits;
    int B, num_fields, k, kpad, row_floats, linear_offset;
    int64_t num_rows;
    float lr, lambda;
} clk_ctx;

static dl_click_table clk_table(const clk_ctx *c, int s) {
    return (dl_click_table){fp(c->table, s), c->num_rows,        c->row_floats,  c->num_fields,
                            c->k,            c->kpad,            c->linear_offset, fp(c->bias, s)};
}

static dl_click_rows clk_rows(const clk_ctx *c, int s) {
    return (dl_click_rows){c->B,             ip(c->row_ptr, s), ip(c->rows, s),  ip(c->fields, s),
                           fp(c->values, s), fp(c->labels, s),  fp(c->scale, s)};
}

static dl_status ffm_fused_fwd(const dl_backend *be, int s, const void *v) {
    const clk_ctx *c = (const clk_ctx *)v;
    dl_click_table t = clk_table(c, s);
    dl_click_rows r = clk_rows(c, s);
    return OP(be, sparse, ffm_fused_forward, fp(c->logits, s), &t, &r);
}
static dl_status ffm_fused_train(const dl_backend *be, int s, const void *v) {
    const clk_ctx *c = (const clk_ctx *)v;
    dl_click_table t = clk_table(c, s);
    dl_click_rows r = clk_rows(c, s);
    return OP(be, sparse, ffm_fused_sgd, fp(c->logits, s), &t, &r, c->lr, c->lambda);
}
static dl_status fm_fused_fwd(const dl_backend *be, int s, const void *v) {
    const clk_ctx *c = (const clk_ctx *)v;
    dl_click_table t = clk_table(c, s);
    dl_click_rows r = clk_rows(c, s);
    return OP(be, sparse, fm_fused_forward, fp(c->logits, s), &t, &r);
}
static dl_status fm_fused_train(const dl_backend *be, int s, const void *v) {
    const clk_ctx *c = (const clk_ctx *)v;
    dl_click_table t = clk_table(c, s);
    dl_click_rows r = clk_rows(c, s);
    return OP(be, sparse, fm_fused_sgd, fp(c->logits, s), &t, &r, c->lr, c->lambda);
}

/* A fused table: each block kpad weights (k in [-0.5, 0.5), padding 0) then kpad accumulators in [0.05, 0.1)
 * (padding 1); with linear terms (weight in [-0.1, 0.1), accumulator in [0.05, 0.1)) at lin; zeros elsewhere. */
static float *fused_table(int64_t rows, int rf, int blocks, int k, int kpad, int lin) {
    float *t = (float *)halloc((size_t)rows * (size_t)rf * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        float *row = t + (size_t)r * (size_t)rf;
        for (int f = 0; f < blocks; f++) {
            float *blk = row + (size_t)f * 2 * (size_t)kpad;
            for (int d = 0; d < kpad; d++) {
                blk[d] = d < k ? urand(-0.5f, 0.5f) : 0.0f;
                blk[kpad + d] = d < k ? urand(0.05f, 0.1f) : 1.0f;
            }
        }
        if (lin >= 0) {
            row[lin] = urand(-0.1f, 0.1f);
            row[lin + 1] = urand(0.05f, 0.1f);
        }
    }
    return t;
}

/* One fused-op check. pool > 0: batch row b's entries use table rows [b·pool, (b+1)·pool) only (training);
 * pool = 0: ids over num_rows rows, skewed so rows repeat across the batch (scoring). */
typedef struct clk_spec {
    const char *op, *variant;
    int ffm, train;
    int B, fields, k, kpad, max_len, pool;
    int64_t num_rows;
    int linear, bias, scale;
} clk_spec;

static void run_click(const clk_spec *p) {
    if (!selected(p->op))
        return;
    clk_ctx c = {0};
    c.B = p->B, c.num_fields = p->ffm ? p->fields : 1, c.k = p->k, c.kpad = p->kpad;
    c.lr = 0.2f, c.lambda = 2e-3f;
    const int blocks = c.num_fields * 2 * c.kpad;
    c.linear_offset = p->linear ? blocks : -1;
    c.row_floats = (blocks + (p->linear ? 2 : 0) + 3) / 4 * 4;
    int32_t *ptr;
    int nnz = make_csr(c.B, p->max_len, &ptr);
    if (c.B == 1 && nnz < p->max_len) /* a single row: a full one */
        nnz = ptr[1] = p->max_len;
    c.num_rows = p->pool ? (int64_t)c.B * p->pool : p->num_rows;
    int32_t *rows;
    if (p->pool) {
        rows = (int32_t *)halloc((size_t)nnz * sizeof(int32_t));
        for (int b = 0; b < c.B; b++)
            for (int j = ptr[b]; j < ptr[b + 1]; j++)
                rows[j] = b * p->pool + irand(p->pool);
    } else {
        rows = skewed_ids((size_t)nnz, (int)c.num_rows);
    }
    float *values = uniform((size_t)nnz, 0.5f, 1.5f);
    float *labels = (float *)halloc((size_t)c.B * sizeof(float));
    for (int b = 0; b < c.B; b++)
        labels[b] = (float)irand(2);
    c.row_ptr = mk_i32(ptr, (size_t)c.B + 1);
    c.rows = mk_i32(rows, (size_t)nnz);
    if (p->ffm) {
        int32_t *fields = (int32_t *)halloc((size_t)nnz * sizeof(int32_t));
        for (int j = 0; j < nnz; j++)
            fields[j] = irand(p->fields);
        c.fields = mk_i32(fields, (size_t)nnz);
    }
    c.values = mk(T_F32, (size_t)nnz);
    put(c.values, values);
    c.labels = mk(T_F32, (size_t)c.B);
    put(c.labels, labels);
    c.scale = p->scale ? instance_scale(ptr, values, c.B) : NULL;
    size_t numel = (size_t)c.num_rows * (size_t)c.row_floats;
    float *table = fused_table(c.num_rows, c.row_floats, c.num_fields, c.k, c.kpad, c.linear_offset);
    c.table = mk(T_F32, numel);
    float *bias = (float *)halloc(2 * sizeof(float));
    bias[0] = urand(-0.5f, 0.5f);
    bias[1] = urand(0.05f, 0.1f);
    if (p->bias)
        c.bias = mk(T_F32, 2);
    c.logits = mk(T_F32, (size_t)c.B);
    check ck = {p->op, p->variant, 1e-5, NULL, &c, {OUT(c.logits, O_WRITE)}, 1, 0};
    if (p->train) {
        ck.call = p->ffm ? ffm_fused_train : fm_fused_train;
        ck.out[ck.nout++] = OUT_INIT(c.table, table);
        if (c.bias)
            ck.out[ck.nout++] = OUT_INIT(c.bias, bias);
    } else {
        ck.call = p->ffm ? ffm_fused_fwd : fm_fused_fwd;
        put(c.table, table);
        if (c.bias)
            put(c.bias, bias);
    }
    run(&ck);
    release_all();
}

static void check_click(void) {
    /* op, variant, ffm, train, B, fields, k, kpad, max_len, pool, num_rows, linear, bias, scale */
    const clk_spec specs[] = {
        {"ffm_fused_forward", "k = 4, 39 fields, linear + bias, instance scale", 1, 0, Q(4096, 40), Q(39, 8), 4, 4,
         Q(39, 8), 0, Q(20000, 300), 1, 1, 1},
        {"ffm_fused_forward", "k = 6, kpad = 8, no linear, no scale", 1, 0, Q(2048, 20), 8, 6, 8, 8, 0, Q(5000, 200),
         0, 0, 0},
        {"ffm_fused_forward", "k = 10, kpad = 12, linear", 1, 0, Q(1024, 20), 5, 10, 12, 6, 0, Q(5000, 200), 1, 0, 1},
        {"ffm_fused_sgd", "k = 4, 39 fields, linear, instance scale, disjoint rows", 1, 1, Q(1024, 30), Q(39, 8), 4, 4,
         Q(39, 8), Q(48, 10), 0, 1, 0, 1},
        {"ffm_fused_sgd", "k = 6, kpad = 8, shared blocks inside a row, disjoint rows", 1, 1, Q(2048, 30), 3, 6, 8, 7,
         3, 0, 0, 0, 0},
        {"ffm_fused_sgd", "k = 10, kpad = 12, one row with bias", 1, 1, 1, 6, 10, 12, 12, 5, 0, 1, 1, 1},
        {"fm_fused_forward", "k = 4, linear + bias, instance scale", 0, 0, Q(4096, 40), 1, 4, 4, 40, 0,
         Q(100000, 800), 1, 1, 1},
        {"fm_fused_forward", "k = 9, kpad = 12, no linear, no scale", 0, 0, Q(4096, 40), 1, 9, 12, 40, 0,
         Q(100000, 800), 0, 0, 0},
        {"fm_fused_sgd", "k = 4, linear, instance scale, disjoint rows", 0, 1, Q(4096, 40), 1, 4, 4, 30, 8, 0, 1, 0, 1},
        {"fm_fused_sgd", "k = 20, kpad = 20, repeated rows inside a row, disjoint rows", 0, 1, Q(2048, 30), 1, 20, 20,
         12, 3, 0, 0, 0, 1},
        {"fm_fused_sgd", "k = 8, one row with bias", 0, 1, 1, 1, 8, 8, 16, 6, 0, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        run_click(&specs[i]);
}

/* ---- bad indices on the GPU --------------------------------------------------------------------------------------
 * The CPU dispatcher can check ids before a kernel runs; on the GPU they live in device memory, so the CUDA kernels
 * check them and the op fails with DL_ERR_INVALID instead of reading out of bounds. These rows run the GPU alone
 * (the CPU table may rely on the dispatcher's checks) and pass when the op fails cleanly and the backend still works
 * afterwards. */

static int g_dry_run;

static void run_error(const char *op, const char *variant, call_fn call, const void *ctx) {
    if (!selected(op) || g_dry_run) /* the CPU stand-in has no GPU-side index checks to exercise */
        return;
    char note[512] = "";
    dl_status st = call(&g_be[GPU], GPU, ctx);
    if (st != DL_OK) {
        snprintf(note, sizeof note, "%s", dl_error_message());
        dl_error_clear();
    } else {
        snprintf(note, sizeof note, "accepted the bad input");
    }
    int pass = st == DL_ERR_INVALID;
    if (dl_synchronize(&g_be[GPU]) != DL_OK) { /* a bad index must not leave a sticky CUDA error behind */
        pass = 0;
        note_error(note, sizeof note, "gpu after the failure");
    }
    for (char *p = note; *p; p++)
        if (*p == '|' || *p == '\n')
            *p = ' ';
    g_rows++;
    g_failed += !pass;
    printf("| %s | %s -> invalid | - | - | - | - | %s | - | - | %s |\n", op, variant, pass ? "pass" : "FAIL", note);
    fflush(stdout);
    char full[256];
    snprintf(full, sizeof full, "%s -> invalid", variant);
    check row = {op, full, 0.0, call, ctx, {{0}}, 0, 0};
    err_stats none = {NAN, NAN, NAN, 0, "-"};
    json_row(&row, 0, &none, pass, 1, NAN, NAN, note);
}

/* Uploads `host` with element `at` replaced by `bad`. */
static buf *mk_i32_bad(const int32_t *host, size_t n, size_t at, int32_t bad) {
    int32_t *copy = (int32_t *)halloc(n * sizeof(int32_t));
    memcpy(copy, host, n * sizeof(int32_t));
    copy[at] = bad;
    return mk_i32(copy, n);
}

static void check_errors(void) {
    {
        emb_ctx c = {0};
        c.N = 50, c.C = 8, c.V = 20, c.max_pos = 50;
        int32_t *cu;
        int num_seqs = make_docs(c.N, NULL, 0, c.max_pos, &cu);
        int32_t *tokens = skewed_ids((size_t)c.N, c.V), *pos = doc_positions(cu, num_seqs, c.N);
        c.wte = mk_uniform((size_t)c.V * c.C, -1, 1);
        c.wpe = mk_uniform((size_t)c.max_pos * c.C, -1, 1);
        c.out = mk(T_F32, (size_t)c.N * c.C);
        c.dout = mk_uniform((size_t)c.N * c.C, -1, 1);
        c.dwte = mk(T_F32, (size_t)c.V * c.C);
        c.dwpe = mk(T_F32, (size_t)c.max_pos * c.C);
        c.positions = mk_i32(pos, (size_t)c.N);
        c.tokens = mk_i32_bad(tokens, (size_t)c.N, 31, c.V);
        run_error("embedding_forward", "token id = V", emb_fwd, &c);
        c.tokens = mk_i32_bad(tokens, (size_t)c.N, 7, -3);
        run_error("embedding_backward", "token id < 0", emb_bwd, &c);
        c.tokens = mk_i32(tokens, (size_t)c.N);
        c.positions = mk_i32_bad(pos, (size_t)c.N, 49, c.max_pos);
        run_error("embedding_forward", "position = max_pos", emb_fwd, &c);
        release_all();
    }
    {
        xent_ctx c = {0};
        c.N = 10, c.V = 33;
        int32_t t[10] = {1, 2, -1, 4, 33, 5, 6, 7, 8, 9};
        c.logits = mk_uniform((size_t)c.N * c.V, -1, 1);
        c.targets = mk_i32(t, 10);
        c.losses = mk(T_F32, 10);
        c.lse = mk_uniform(10, 3, 4);
        c.dlosses = mk_uniform(10, 0, 1);
        c.dlogits = mk(T_F32, (size_t)c.N * c.V);
        run_error("xent_forward", "target = V", xent_fwd, &c);
        run_error("xent_backward", "target = V", xent_bwd, &c);
        release_all();
    }
    {
        int32_t cu[] = {0, 5, 3, 12};
        seq_ctx c = {0};
        c.num_seqs = 3;
        c.cu = mk_i32(cu, 4);
        c.values = mk_uniform(12, -1, 0);
        c.out = mk(T_F32, 3);
        run_error("sequence_sum_forward", "decreasing cu_seqlens", seq_fwd, &c);
        att_ctx a = {0};
        a.num_seqs = 3, a.N = 12, a.H = 2, a.D = 8;
        a.qkv = mk_uniform((size_t)a.N * 3 * a.H * a.D, -1, 1);
        a.out = mk(T_F32, (size_t)a.N * a.H * a.D);
        a.lse = mk(T_F32, (size_t)a.N * a.H);
        a.dout = mk_uniform((size_t)a.N * a.H * a.D, -1, 1);
        a.dqkv = mk(T_F32, (size_t)a.N * 3 * a.H * a.D);
        a.cu = c.cu;
        run_error("attention_backward", "decreasing cu_seqlens", att_bwd, &a);
        int32_t cu_short[] = {0, 5, 7, 11};
        a.cu = mk_i32(cu_short, 4);
        run_error("attention_forward", "cu_seqlens[num_seqs] != N", att_fwd, &a);
        release_all();
    }
    {
        sp_ctx c = {0};
        c.B = 6, c.dim = 4, c.k = 3, c.kpad = 4, c.num_fields = 3, c.num_rows = 10, c.touched = 4, c.row_floats = 4;
        int32_t ptr[] = {0, 2, 2, 5, 6, 8, 9};
        int32_t rows[] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, fields[] = {0, 1, 2, 0, 1, 2, 0, 1, 2};
        c.offsets = mk_i32(ptr, 7);
        c.fields = mk_i32(fields, 9);
        c.values = mk_uniform(9, 0.5f, 1.5f);
        c.table = mk_uniform(40, -1, 1);
        c.out = mk(T_F32, 24);
        c.linear = mk_uniform(10, -1, 1);
        c.latent = mk_uniform(10 * 3 * 4, -1, 1);
        c.logits = mk(T_F32, 6);
        c.sum_vx = mk(T_F32, 24);
        c.accum = mk_uniform(40, 1, 2);
        c.grads = mk_uniform(16, -1, 1);
        c.rows = mk_i32_bad(rows, 9, 4, 10);
        run_error("embedding_bag_forward", "row = num_rows", bag_fwd, &c);
        c.rows = mk_i32_bad(rows, 9, 8, -1);
        run_error("fm_forward", "row < 0", fm_fwd, &c);
        c.rows = mk_i32(rows, 9);
        c.fields = mk_i32_bad(fields, 9, 3, 3);
        run_error("ffm_forward", "field = num_fields", ffm_fwd, &c);
        c.rows = mk_i32_bad(rows, 4, 2, -5);
        run_error("adagrad_rows_update", "row < 0", rows_update, &c);
        release_all();
    }
    {
        /* the fused ops check every id before any row trains */
        clk_ctx c = {0};
        c.B = 3, c.num_fields = 3, c.k = 3, c.kpad = 4, c.row_floats = 24, c.linear_offset = -1, c.num_rows = 10;
        c.lr = 0.1f, c.lambda = 0.0f;
        int32_t ptr[] = {0, 2, 2, 5}, bad_ptr[] = {0, 3, 2, 5};
        int32_t rows[] = {1, 2, 3, 4, 9}, fields[] = {0, 1, 2, 0, 1};
        c.row_ptr = mk_i32(ptr, 4);
        c.fields = mk_i32(fields, 5);
        c.values = mk_uniform(5, 0.5f, 1.5f);
        c.labels = mk_uniform(3, 0, 1);
        c.table = mk_uniform(10 * 24, 0.5f, 1);
        c.logits = mk(T_F32, 3);
        c.rows = mk_i32_bad(rows, 5, 4, 10);
        run_error("ffm_fused_forward", "row = num_rows", ffm_fused_fwd, &c);
        run_error("fm_fused_sgd", "row = num_rows", fm_fused_train, &c);
        c.rows = mk_i32_bad(rows, 5, 0, -1);
        run_error("fm_fused_forward", "row < 0", fm_fused_fwd, &c);
        c.rows = mk_i32(rows, 5);
        c.fields = mk_i32_bad(fields, 5, 3, 3);
        run_error("ffm_fused_sgd", "field = num_fields", ffm_fused_train, &c);
        c.fields = mk_i32(fields, 5);
        c.row_ptr = mk_i32(bad_ptr, 4);
        run_error("ffm_fused_sgd", "decreasing row_ptr", ffm_fused_train, &c);
        release_all();
    }
}

int main(int argc, char **argv) {
    const char *json_path = NULL;
    int dry_run = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            g_quick = 1;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_path = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s [--quick] [--json FILE] [--dry-run] [FILTER]\n  --quick    small shapes\n"
                   "  --json F   also write every check as a JSON array to F\n"
                   "  --dry-run  no GPU: a second CPU backend stands in for it, to exercise this program and the\n"
                   "             report on a CPU machine (its figures say nothing about CUDA)\n"
                   "  FILTER     only ops whose name contains it\n", argv[0]);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "gpu_check: unknown option '%s' (try --help)\n", argv[i]);
            return 2;
        } else {
            g_filter = argv[i];
        }
    }
    int gpus = 0;
    if (dl_cuda_device_count(&gpus) != DL_OK) {
        fprintf(stderr, "gpu_check: %s\n", dl_error_message());
        return 1; /* a broken driver on a GPU machine is a failure, never a skip */
    }
    g_dry_run = dry_run;
    if (gpus <= 0 && !dry_run) {
        fprintf(stderr, "gpu_check: no CUDA GPU answers on this machine (cudaGetDeviceCount finds none): this check "
                        "compares the CUDA ops with the CPU ops and needs a GPU; run scripts/gpu-check where one is\n");
        return 77;
    }
    if (dl_backend_open(&g_be[CPU], "cpu", 0) != DL_OK)
        die("opening the CPU backend");
    if (dl_backend_open(&g_be[GPU], dry_run ? "cpu" : "cuda", 0) != DL_OK)
        die(dry_run ? "opening the stand-in CPU backend" : "opening the CUDA backend");
    if (json_path) {
        g_json = fopen(json_path, "w");
        if (!g_json) {
            fprintf(stderr, "gpu_check: cannot write %s: %s\n", json_path, strerror(errno));
            return 2;
        }
        fputc('[', g_json);
    }
    const char *env = getenv("DEALER_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10) : 1234u;
    dl_rng_init(&g_rng, seed, DL_STREAM_DATA);
    printf("# dealer gpu_check: CUDA ops vs CPU ops (%s shapes, seed %" PRIu64 ", CPU threads %d, GPU %d)\n\n",
           g_quick ? "quick" : "full", seed, g_be[CPU].num_threads, g_be[GPU].device_index);
    if (dry_run)
        printf("DRY RUN: the 'gpu' side is a second CPU backend; these rows test the checker, not CUDA.\n\n");
    print_header();

    check_matmul();
    check_embedding();
    check_rope();
    check_layernorm();
    check_elementwise();
    check_xent();
    check_sequence_sum();
    check_convert();
    check_attention();
    check_optim();
    check_dpo();
    check_sparse();
    check_click();
    check_errors();

    printf("\n%d checks, %d failed\n", g_rows, g_failed);
    if (g_json) {
        fputs("\n]\n", g_json);
        if (fclose(g_json) != 0) {
            fprintf(stderr, "gpu_check: writing %s failed: %s\n", json_path, strerror(errno));
            return 1;
        }
    }
    dl_backend_close(&g_be[GPU]);
    dl_backend_close(&g_be[CPU]);
    if (g_rows == 0) {
        fprintf(stderr, "gpu_check: no op matches the filter '%s'\n", g_filter ? g_filter : "");
        return 2;
    }
    return g_failed ? 1 : 0;
}
