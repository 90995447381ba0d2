/* fault.c — DEALER_FAULT parsing and the per-process call counters (see fault.h).
 *
 * The spec is parsed once, at the first check, into a small table; every check then walks it. Counters are atomic
 * because writer threads (the loader's prefetch, OpenMP regions) may write files too. */
#include "core/fault.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_FAULTS = 8, NUM_OPS = 3 };

typedef struct fault_rule {
    dl_fault_op op;
    int rank;      /* -1: every rank */
    long long nth; /* the call (from 1) that fails */
    int sticky;    /* NTH+: and every later one */
} fault_rule;

static const char *const OP_NAMES[NUM_OPS] = {"write", "fsync", "rename"};
static const int OP_ERRNO[NUM_OPS] = {ENOSPC, EIO, EIO};

static atomic_int parsed_state; /* 0 not parsed, 1 parsed (rules valid) */
static fault_rule rules[MAX_FAULTS];
static int rule_count;
static atomic_llong calls[NUM_OPS];
static atomic_int my_rank;
static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;

void dl_fault_set_rank(int rank) { atomic_store(&my_rank, rank); }

static _Noreturn void malformed(const char *spec, const char *why) {
    fprintf(stderr, "dealer: error: DEALER_FAULT='%s': %s (hint: want OP:RANK:NTH[+] with OP write|fsync|rename, "
                    "RANK a number or *, NTH from 1; comma-separate several)\n", spec, why);
    exit(2);
}

static void parse(void) {
    const char *spec = getenv("DEALER_FAULT");
    rule_count = 0;
    if (!spec || !*spec)
        return;
    char copy[512];
    if (strlen(spec) >= sizeof copy)
        malformed(spec, "too long");
    strcpy(copy, spec);
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (rule_count == MAX_FAULTS)
            malformed(spec, "more than 8 faults");
        fault_rule *r = &rules[rule_count];
        char *c1 = strchr(item, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c1 || !c2)
            malformed(spec, "a fault needs three fields");
        *c1 = *c2 = '\0';
        int op = -1;
        for (int k = 0; k < NUM_OPS; k++)
            if (strcmp(item, OP_NAMES[k]) == 0)
                op = k;
        if (op < 0)
            malformed(spec, "unknown operation");
        r->op = (dl_fault_op)op;
        char *end = NULL;
        if (strcmp(c1 + 1, "*") == 0) {
            r->rank = -1;
        } else {
            long v = strtol(c1 + 1, &end, 10);
            if (end == c1 + 1 || *end || v < 0 || v > 1 << 24)
                malformed(spec, "bad rank");
            r->rank = (int)v;
        }
        long long n = strtoll(c2 + 1, &end, 10);
        if (end == c2 + 1 || n < 1)
            malformed(spec, "bad call number");
        r->sticky = *end == '+';
        if (*end && strcmp(end, "+") != 0)
            malformed(spec, "bad call number");
        r->nth = n;
        rule_count++;
    }
}

int dl_fault_hit(dl_fault_op op) {
    if ((unsigned)op >= NUM_OPS)
        return 0;
    if (!atomic_load_explicit(&parsed_state, memory_order_acquire)) {
        pthread_mutex_lock(&parse_lock);
        if (!atomic_load_explicit(&parsed_state, memory_order_acquire)) {
            parse();
            atomic_store_explicit(&parsed_state, 1, memory_order_release);
        }
        pthread_mutex_unlock(&parse_lock);
    }
    if (rule_count == 0)
        return 0;
    long long call = atomic_fetch_add(&calls[op], 1) + 1;
    int rank = atomic_load(&my_rank);
    for (int i = 0; i < rule_count; i++) {
        const fault_rule *r = &rules[i];
        if (r->op != op || (r->rank >= 0 && r->rank != rank))
            continue;
        if (call == r->nth || (r->sticky && call > r->nth))
            return OP_ERRNO[op];
    }
    return 0;
}

void dl_fault_reset(void) {
    pthread_mutex_lock(&parse_lock);
    atomic_store(&parsed_state, 0);
    pthread_mutex_unlock(&parse_lock);
    for (int k = 0; k < NUM_OPS; k++)
        atomic_store(&calls[k], 0);
}
