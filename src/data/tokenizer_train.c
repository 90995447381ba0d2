/* tokenizer_train.c — byte-level BPE training with the rules of Hugging Face `tokenizers`' BpeTrainer.
 *
 * The point is not "a" BPE but the same vocabulary `tokenizers` learns from the same files, so each step follows
 * BpeTrainer::do_train:
 *   - words: every line of every input (split after '\n', the ending kept) is pre-tokenized with GPT-2's regex and
 *     each pre-token's byte-level spelling is counted. Special tokens in the text are not cut out (`tokenizers`
 *     does not either while training). Invalid UTF-8 becomes U+FFFD first, as when encoding (`tokenizers` refuses
 *     such files outright).
 *   - ids: special tokens first, then the 256 byte characters sorted by code point, then merges in order.
 *   - merges: a max-heap of (count, pair) entries, higher count first and the smaller (left id, right id) among
 *     equal counts. An entry whose count is stale is re-pushed with the current count and its own word set; a
 *     pair is merged in the words of the entry that wins. As in `tokenizers`, a pair's own count is not reduced
 *     by merging it, so a pair with two heap entries can be merged twice; the merge list then holds it twice and
 *     the later rank wins, exactly as `tokenizers`' merge map ends up. Training stops at vocab_size entries, when
 *     the heap is empty, or when the best count is below min_frequency. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/grow.h"
#include "core/hash.h"
#include "core/progress.h"
#include "data/tokenizer_internal.h"

typedef struct word {
    int32_t *sym;
    uint32_t len;
} word;

typedef struct pair_info {
    int64_t count;
    uint32_t last_word; /* dedupe of where-to-update sets: the word last added */
    uint32_t last_step; /* ... and the merge step it was added in (0 = initial counting) */
    uint32_t *where;    /* word indices whose set is pending (where_to_update) */
    size_t where_len, where_cap;
} pair_info;

typedef struct heap_entry {
    uint64_t count;
    int32_t a, b;
    uint32_t *pos; /* owned word set */
    size_t pos_len;
} heap_entry;

typedef struct trainer {
    dl_strmap words;      /* pre-token bytes -> count */
    word *w;
    uint64_t *wc;
    size_t nw;
    /* pairs: map (a,b) -> index into info */
    uint64_t *pk;
    uint32_t *pv;
    size_t pcap, pcount;
    pair_info *info;
    size_t info_cap;
    uint32_t *touched;    /* pairs with a pending where-set this step */
    size_t touched_len, touched_cap;
    heap_entry *heap;
    size_t heap_len, heap_cap;
} trainer;

/* ---- the pair table ---------------------------------------------------------------------------------------------- */

static inline uint64_t pkey(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; }

static dl_status pair_index(trainer *t, int32_t a, int32_t b, uint32_t *idx) {
    if ((t->pcount + 1) * 2 > t->pcap) {
        size_t cap = t->pcap ? t->pcap * 2 : 1 << 16;
        uint64_t *k = calloc(cap, sizeof *k);
        uint32_t *v = malloc(cap * sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return DL_FAIL(DL_ERR_NOMEM, "out of memory growing the pair table to %zu", cap);
        }
        for (size_t i = 0; i < t->pcap; i++) {
            if (!t->pk[i])
                continue;
            size_t j = (size_t)dl_hash_u64(t->pk[i]) & (cap - 1);
            while (k[j])
                j = (j + 1) & (cap - 1);
            k[j] = t->pk[i];
            v[j] = t->pv[i];
        }
        free(t->pk);
        free(t->pv);
        t->pk = k;
        t->pv = v;
        t->pcap = cap;
    }
    uint64_t key = pkey(a, b);
    size_t mask = t->pcap - 1;
    size_t i = (size_t)dl_hash_u64(key) & mask;
    while (t->pk[i] && t->pk[i] != key)
        i = (i + 1) & mask;
    if (t->pk[i]) {
        *idx = t->pv[i];
        return DL_OK;
    }
    DL_CHECK(dl_grow((void **)&t->info, &t->info_cap, t->pcount + 1, sizeof *t->info, "the pair table"));
    memset(&t->info[t->pcount], 0, sizeof t->info[t->pcount]);
    t->info[t->pcount].last_word = UINT32_MAX;
    t->pk[i] = key;
    t->pv[i] = (uint32_t)t->pcount;
    *idx = (uint32_t)t->pcount++;
    return DL_OK;
}

/* Adds word iw to the pending where-set of pair idx (once per step). */
static dl_status where_add(trainer *t, uint32_t idx, uint32_t iw, uint32_t step) {
    pair_info *p = &t->info[idx];
    if (p->last_word == iw && p->last_step == step)
        return DL_OK;
    p->last_word = iw;
    p->last_step = step;
    if (p->where_len == 0) {
        DL_CHECK(dl_grow((void **)&t->touched, &t->touched_cap, t->touched_len + 1, sizeof *t->touched,
                         "the pair updates"));
        t->touched[t->touched_len++] = idx;
    }
    DL_CHECK(dl_grow((void **)&p->where, &p->where_cap, p->where_len + 1, sizeof *p->where, "a pair's words"));
    p->where[p->where_len++] = iw;
    return DL_OK;
}

/* ---- the heap ---------------------------------------------------------------------------------------------------- */

/* 1 when x pops before y: higher count, then the smaller pair. */
static inline int before(const heap_entry *x, const heap_entry *y) {
    if (x->count != y->count)
        return x->count > y->count;
    if (x->a != y->a)
        return x->a < y->a;
    return x->b < y->b;
}

static dl_status heap_push(trainer *t, heap_entry e) {
    DL_CHECK(dl_grow((void **)&t->heap, &t->heap_cap, t->heap_len + 1, sizeof *t->heap, "the merge queue"));
    size_t i = t->heap_len++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&e, &t->heap[p]))
            break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = e;
    return DL_OK;
}

static heap_entry heap_pop(trainer *t) {
    heap_entry top = t->heap[0];
    heap_entry last = t->heap[--t->heap_len];
    size_t i = 0, n = t->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&t->heap[c + 1], &t->heap[c]))
            c++;
        if (!before(&t->heap[c], &last))
            break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n)
        t->heap[i] = last;
    return top;
}

/* Moves every pending where-set into the heap (where_to_update.drain() in `tokenizers`). */
static dl_status flush_touched(trainer *t, const int32_t *pair_a, const int32_t *pair_b) {
    for (size_t k = 0; k < t->touched_len; k++) {
        uint32_t idx = t->touched[k];
        pair_info *p = &t->info[idx];
        if (p->count > 0) {
            heap_entry e = {(uint64_t)p->count, pair_a[idx], pair_b[idx], p->where, p->where_len};
            dl_status s = heap_push(t, e);
            if (s != DL_OK)
                return s;
            p->where = NULL;
            p->where_cap = 0;
        }
        p->where_len = 0;
    }
    t->touched_len = 0;
    return DL_OK;
}

static void trainer_free(trainer *t) {
    dl_strmap_free(&t->words);
    for (size_t i = 0; i < t->nw; i++)
        free(t->w[i].sym);
    free(t->w);
    free(t->wc);
    free(t->pk);
    free(t->pv);
    for (size_t i = 0; i < t->pcount; i++)
        free(t->info[i].where);
    free(t->info);
    free(t->touched);
    for (size_t i = 0; i < t->heap_len; i++)
        free(t->heap[i].pos);
    free(t->heap);
}

/* ---- counting words ---------------------------------------------------------------------------------------------- */

typedef struct counter {
    trainer *t;
    pcre2_code *re;
    pcre2_match_data *md;
    uint8_t *clean;
    size_t clean_cap;
} counter;

static dl_status count_word(counter *c, const uint8_t *s, size_t n) {
    if (n == 0)
        return DL_OK;
    int found;
    uint64_t v = dl_strmap_get(&c->t->words, s, n, &found);
    return dl_strmap_put(&c->t->words, s, n, v + 1);
}

static dl_status count_line(counter *c, const uint8_t *s, size_t n) {
    /* Invalid UTF-8 -> U+FFFD per maximal subpart (see tokenizer.h). */
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = s[i] < 0x80 ? 1 : dl_utf8_next(s + i, n - i, &cp);
        if (!k)
            break;
        i += k;
    }
    if (i < n) {
        DL_CHECK(dl_grow((void **)&c->clean, &c->clean_cap, 3 * n + 1, 1, "a cleaned line"));
        size_t o = 0;
        for (i = 0; i < n;) {
            uint32_t cp;
            size_t k = dl_utf8_next(s + i, n - i, &cp);
            if (k) {
                memcpy(c->clean + o, s + i, k);
                o += k;
                i += k;
            } else {
                i += dl_utf8_bad_len(s + i, n - i);
                c->clean[o++] = 0xEF, c->clean[o++] = 0xBF, c->clean[o++] = 0xBD;
            }
        }
        s = c->clean;
        n = o;
    }
    size_t off = 0;
    while (off < n) {
        int rc = pcre2_match(c->re, s, n, off, PCRE2_NO_UTF_CHECK, c->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) {
            DL_CHECK(count_word(c, s + off, n - off));
            break;
        }
        if (rc < 0)
            return DL_FAIL(DL_ERR_RUNTIME, "pre-tokenizing: PCRE2 error %d", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        if (ov[0] > off)
            DL_CHECK(count_word(c, s + off, ov[0] - off));
        size_t end = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        DL_CHECK(count_word(c, s + ov[0], end - ov[0]));
        off = end;
    }
    return DL_OK;
}

static dl_status count_file(counter *c, const char *path, dl_progress *bar, uint64_t *done) {
    int is_stdin = strcmp(path, "-") == 0;
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp)
        return dl_open_failure(path, errno, "check the input path");
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    uint64_t line_no = 0;
    dl_status s = DL_OK;
    while (s == DL_OK && (got = getline(&line, &cap, fp)) >= 0) {
        line_no++;
        s = count_line(c, (const uint8_t *)line, (size_t)got);
        *done += (uint64_t)got;
        dl_progress_update(bar, *done, c->t->words.count);
    }
    if (s == DL_OK && ferror(fp))
        s = DL_FAIL(DL_ERR_IO, "reading %s after line %llu: %s", is_stdin ? "<stdin>" : path,
                    (unsigned long long)line_no, strerror(errno));
    else if (s != DL_OK)
        dl_error_context("%s:%llu", is_stdin ? "<stdin>" : path, (unsigned long long)line_no);
    free(line);
    if (!is_stdin)
        fclose(fp);
    return s;
}

/* ---- merging ----------------------------------------------------------------------------------------------------- */

/* `tokenizers`' Word::merge: replaces every (c1, c2) left to right, reporting the pair count changes. */
typedef struct change {
    int32_t a, b;
    int32_t delta;
} change;

static dl_status word_merge(word *w, int32_t c1, int32_t c2, int32_t repl, change **ch, size_t *nch,
                            size_t *ch_cap) {
    uint32_t i = 0;
    while (i < w->len) {
        if (w->sym[i] == c1 && i + 1 < w->len && w->sym[i + 1] == c2) {
            DL_CHECK(dl_grow((void **)ch, ch_cap, *nch + 4, sizeof **ch, "merge changes"));
            int32_t second = w->sym[i + 1];
            if (i > 0) {
                (*ch)[(*nch)++] = (change){w->sym[i - 1], c1, -1};
                (*ch)[(*nch)++] = (change){w->sym[i - 1], repl, 1};
            }
            w->sym[i] = repl;
            memmove(w->sym + i + 1, w->sym + i + 2, (w->len - i - 2) * sizeof *w->sym);
            w->len--;
            if (i + 1 < w->len) {
                (*ch)[(*nch)++] = (change){second, w->sym[i + 1], -1};
                (*ch)[(*nch)++] = (change){repl, w->sym[i + 1], 1};
            }
        }
        i++;
    }
    return DL_OK;
}

typedef struct vocab_entry {
    char *content;
    size_t len;
} vocab_entry;

static dl_status vocab_add(vocab_entry **v, size_t *n, size_t *cap, dl_strmap *ids, const char *s, size_t len,
                           int32_t *id) {
    int found;
    uint64_t old = dl_strmap_get(ids, s, len, &found);
    if (found) {
        *id = (int32_t)old;
        return DL_OK;
    }
    DL_CHECK(dl_grow((void **)v, cap, *n + 1, sizeof **v, "the vocabulary"));
    char *copy = malloc(len + 1);
    if (!copy)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory growing the vocabulary");
    memcpy(copy, s, len);
    copy[len] = 0;
    (*v)[*n] = (vocab_entry){copy, len};
    *id = (int32_t)*n;
    DL_CHECK(dl_strmap_put(ids, s, len, (uint64_t)*n));
    (*n)++;
    return DL_OK;
}

static int cmp_u16(const void *x, const void *y) {
    return (int)*(const uint16_t *)x - (int)*(const uint16_t *)y;
}

dl_status dl_tokenizer_train(const dl_tokenizer_train_options *o, dl_tokenizer **out) {
    DL_REQUIRE(o && out, DL_ERR_INVALID, "dl_tokenizer_train: NULL argument");
    *out = NULL;
    DL_REQUIRE(o->num_inputs > 0 && o->inputs, DL_ERR_INVALID, "no training files given");
    DL_REQUIRE(o->num_special == 0 || o->special, DL_ERR_INVALID, "dl_tokenizer_train: NULL special list");
    for (size_t i = 0; i < o->num_special; i++) {
        DL_REQUIRE(o->special[i] && o->special[i][0], DL_ERR_INVALID, "special token %zu is empty", i + 1);
        uint32_t cp;
        const uint8_t *sp = (const uint8_t *)o->special[i];
        for (size_t k = 0, n = strlen(o->special[i]); k < n;) {
            size_t got = dl_utf8_next(sp + k, n - k, &cp);
            DL_REQUIRE(got, DL_ERR_INVALID, "special token '%s' is not valid UTF-8", o->special[i]);
            k += got;
        }
    }
    DL_REQUIRE(o->vocab_size >= 256 + (int32_t)o->num_special && o->vocab_size <= DL_TOKENIZER_MAX_VOCAB,
               DL_ERR_INVALID, "--vocab-size %d is too small: it must hold the %zu special tokens and the 256 bytes "
               "(at least %zu)", (int)o->vocab_size, o->num_special, 256 + o->num_special);

    trainer t;
    memset(&t, 0, sizeof t);
    counter c = {.t = &t};
    int err;
    PCRE2_SIZE at;
    c.re = pcre2_compile((PCRE2_SPTR)dl_gpt2_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    if (!c.re)
        return DL_FAIL(DL_ERR_RUNTIME, "PCRE2 refused GPT-2's pattern (error %d)", err);
    (void)pcre2_jit_compile(c.re, PCRE2_JIT_COMPLETE);
    c.md = pcre2_match_data_create_from_pattern(c.re, NULL);
    dl_status s = c.md ? DL_OK : DL_FAIL(DL_ERR_NOMEM, "out of memory");

    /* 1. count words */
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < o->num_inputs; i++) {
        uint64_t size;
        if (strcmp(o->inputs[i], "-") == 0 || dl_file_size(o->inputs[i], &size) != DL_OK) {
            dl_error_clear();
            total = 0;
            break;
        }
        total += size;
    }
    dl_progress bar;
    memset(&bar, 0, sizeof bar);
    if (o->progress)
        dl_progress_begin(&bar, "count words", total, 1, "words");
    for (size_t i = 0; s == DL_OK && i < o->num_inputs; i++)
        s = count_file(&c, o->inputs[i], &bar, &done);
    dl_progress_end(&bar);
    pcre2_match_data_free(c.md);
    pcre2_code_free(c.re);
    free(c.clean);

    /* 2. ids: specials, then the byte alphabet by code point */
    vocab_entry *vocab = NULL;
    size_t nv = 0, vcap = 0;
    dl_strmap ids;
    memset(&ids, 0, sizeof ids);
    int32_t id;
    int32_t *special_id = calloc(o->num_special + 1, sizeof *special_id);
    if (s == DL_OK && !special_id)
        s = DL_FAIL(DL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; s == DL_OK && i < o->num_special; i++)
        s = vocab_add(&vocab, &nv, &vcap, &ids, o->special[i], strlen(o->special[i]), &special_id[i]);
    uint16_t chars[256];
    memcpy(chars, dl_byte_char, sizeof chars);
    qsort(chars, 256, sizeof chars[0], cmp_u16);
    int32_t byte_sym[256];
    for (int i = 0; s == DL_OK && i < 256; i++) {
        uint8_t u[4];
        size_t k = dl_utf8_put(chars[i], u);
        s = vocab_add(&vocab, &nv, &vcap, &ids, (const char *)u, k, &id);
        int b = dl_char_byte(chars[i]);
        byte_sym[b] = id;
    }

    /* 3. words as symbol ids, 4. pair counts */
    if (s == DL_OK) {
        t.nw = t.words.count;
        t.w = calloc(t.nw ? t.nw : 1, sizeof *t.w);
        t.wc = calloc(t.nw ? t.nw : 1, sizeof *t.wc);
        if (!t.w || !t.wc)
            s = DL_FAIL(DL_ERR_NOMEM, "out of memory holding %zu words", t.nw);
    }
    int32_t *pair_a = NULL, *pair_b = NULL;
    size_t pair_ab_cap = 0;
    size_t wi = 0;
    for (size_t slot = 0; s == DL_OK && slot < t.words.cap; slot++) {
        if (!t.words.hashes[slot])
            continue;
        size_t len;
        const uint8_t *k = (const uint8_t *)dl_strmap_key(&t.words, slot, &len);
        word *w = &t.w[wi];
        w->sym = malloc(len * sizeof *w->sym);
        if (!w->sym) {
            s = DL_FAIL(DL_ERR_NOMEM, "out of memory holding the words");
            break;
        }
        w->len = (uint32_t)len;
        for (size_t j = 0; j < len; j++)
            w->sym[j] = byte_sym[k[j]];
        t.wc[wi] = t.words.values[slot];
        wi++;
    }
    for (size_t i = 0; s == DL_OK && i < t.nw; i++) {
        for (uint32_t j = 0; s == DL_OK && j + 1 < t.w[i].len; j++) {
            uint32_t idx;
            s = pair_index(&t, t.w[i].sym[j], t.w[i].sym[j + 1], &idx);
            if (s != DL_OK)
                break;
            if (t.pcount > pair_ab_cap) {
                s = dl_grow((void **)&pair_a, &pair_ab_cap, t.pcount, sizeof *pair_a, "pairs");
                size_t cap_b = pair_ab_cap - 1;
                if (s == DL_OK) {
                    int32_t *nb = realloc(pair_b, pair_ab_cap * sizeof *pair_b);
                    if (!nb)
                        s = DL_FAIL(DL_ERR_NOMEM, "out of memory");
                    else
                        pair_b = nb;
                }
                (void)cap_b;
            }
            if (s != DL_OK)
                break;
            pair_a[idx] = t.w[i].sym[j];
            pair_b[idx] = t.w[i].sym[j + 1];
            t.info[idx].count += (int64_t)t.wc[i];
            s = where_add(&t, idx, (uint32_t)i, 0);
        }
    }
    if (s == DL_OK)
        s = flush_touched(&t, pair_a, pair_b);
    dl_strmap_free(&t.words);

    /* 5. merges */
    int32_t (*merges)[2] = NULL;
    size_t nm = 0, mcap = 0;
    change *ch = NULL;
    size_t nch = 0, ch_cap = 0;
    char *joined = NULL;
    size_t joined_cap = 0;
    uint32_t step = 0;
    if (o->progress)
        dl_progress_begin(&bar, "merges", (uint64_t)o->vocab_size, 0, NULL);
    while (s == DL_OK && nv < (size_t)o->vocab_size && t.heap_len) {
        heap_entry top = heap_pop(&t);
        uint32_t idx;
        s = pair_index(&t, top.a, top.b, &idx);
        if (s != DL_OK) {
            free(top.pos);
            break;
        }
        if (top.count != (uint64_t)t.info[idx].count) {
            top.count = (uint64_t)t.info[idx].count;
            s = heap_push(&t, top);
            if (s != DL_OK)
                free(top.pos);
            continue;
        }
        if (top.count < 1 || o->min_frequency > top.count) {
            free(top.pos);
            break;
        }
        size_t la = vocab[top.a].len, lb = vocab[top.b].len;
        s = dl_grow((void **)&joined, &joined_cap, la + lb + 1, 1, "a merged token");
        if (s == DL_OK) {
            memcpy(joined, vocab[top.a].content, la);
            memcpy(joined + la, vocab[top.b].content, lb);
            s = vocab_add(&vocab, &nv, &vcap, &ids, joined, la + lb, &id);
        }
        if (s == DL_OK)
            s = dl_grow((void **)&merges, &mcap, nm + 1, sizeof *merges, "the merges");
        if (s != DL_OK) {
            free(top.pos);
            break;
        }
        merges[nm][0] = top.a;
        merges[nm][1] = top.b;
        nm++;
        step++;
        for (size_t k = 0; s == DL_OK && k < top.pos_len; k++) {
            uint32_t iw = top.pos[k];
            nch = 0;
            s = word_merge(&t.w[iw], top.a, top.b, id, &ch, &nch, &ch_cap);
            for (size_t q = 0; s == DL_OK && q < nch; q++) {
                uint32_t pidx;
                s = pair_index(&t, ch[q].a, ch[q].b, &pidx);
                if (s == DL_OK && t.pcount > pair_ab_cap) {
                    s = dl_grow((void **)&pair_a, &pair_ab_cap, t.pcount, sizeof *pair_a, "pairs");
                    if (s == DL_OK) {
                        int32_t *nb = realloc(pair_b, pair_ab_cap * sizeof *pair_b);
                        if (!nb)
                            s = DL_FAIL(DL_ERR_NOMEM, "out of memory");
                        else
                            pair_b = nb;
                    }
                }
                if (s != DL_OK)
                    break;
                pair_a[pidx] = ch[q].a;
                pair_b[pidx] = ch[q].b;
                t.info[pidx].count += ch[q].delta * (int64_t)t.wc[iw];
                if (ch[q].delta > 0)
                    s = where_add(&t, pidx, iw, step);
            }
        }
        free(top.pos);
        if (s == DL_OK)
            s = flush_touched(&t, pair_a, pair_b);
        dl_progress_update(&bar, nv, nm);
    }
    dl_progress_end(&bar);
    free(ch);
    free(joined);
    free(pair_a);
    free(pair_b);
    trainer_free(&t);
    dl_strmap_free(&ids);

    /* 6. the tokenizer: vocabulary, merges (duplicates kept: the builder lets the later rank win), specials */
    dl_tok_builder *b = NULL;
    if (s == DL_OK)
        s = dl_tok_builder_new(&b, "trained tokenizer");
    for (size_t i = 0; s == DL_OK && i < nv; i++)
        s = dl_tok_builder_vocab(b, vocab[i].content, vocab[i].len, (int64_t)i);
    for (size_t i = 0; s == DL_OK && i < nm; i++)
        s = dl_tok_builder_merge(b, vocab[merges[i][0]].content, vocab[merges[i][0]].len, vocab[merges[i][1]].content,
                                 vocab[merges[i][1]].len);
    for (size_t i = 0; s == DL_OK && i < o->num_special; i++) {
        int dup = 0;
        for (size_t k = 0; k < i; k++)
            dup |= strcmp(o->special[k], o->special[i]) == 0;
        if (!dup)
            s = dl_tok_builder_added(b, o->special[i], strlen(o->special[i]), special_id[i], 1, 0, 0, 0, 0);
    }
    free(special_id);
    for (size_t i = 0; i < nv; i++)
        free(vocab[i].content);
    free(vocab);
    free(merges);
    if (s != DL_OK) {
        dl_tok_builder_free(b);
        return s;
    }
    dl_tok_options opt = {.add_prefix_space = 0, .use_regex = 1};
    return dl_tok_builder_finish(b, &opt, out);
}
