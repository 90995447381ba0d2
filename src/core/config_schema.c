/* config_schema.c — walking a schema (the sections and key rows a caller hands in) and the "read by" column of
 * its selector; also the nearest-key suggestions for misspelt names (optimal string alignment distance, so a
 * swapped pair of letters counts as one edit) and the UTF-8 check for override strings.
 *
 * Keys are numbered across the sections in output order. The lookups are linear scans: a schema has about a
 * hundred keys, read a handful of times per run. */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/config_internal.h"

/* Enum fields are written through an int pointer. */
typedef enum dl_cfg_probe_enum { DL_CFG_PROBE_A, DL_CFG_PROBE_B } dl_cfg_probe_enum;
_Static_assert(sizeof(dl_cfg_probe_enum) == sizeof(int), "config enums must be int-sized");

int dl_cfg_section_len(const dl_cfg_section *section) {
    int n = 0;
    while (section->keys && section->keys[n].name)
        n++;
    return n;
}

int dl_cfg_num_keys(const dl_cfg_schema *schema) {
    int n = 0;
    for (int s = 0; schema && s < schema->n_sections; s++)
        n += dl_cfg_section_len(&schema->sections[s]);
    return n;
}

const dl_cfg_key *dl_cfg_key_at(const dl_cfg_schema *schema, int index, const dl_cfg_section **section) {
    if (!schema || index < 0)
        return NULL;
    for (int s = 0; s < schema->n_sections; s++) {
        const dl_cfg_section *sec = &schema->sections[s];
        int n = dl_cfg_section_len(sec);
        if (index < n) {
            if (section)
                *section = sec;
            return &sec->keys[index];
        }
        index -= n;
    }
    return NULL;
}

void *dl_cfg_field(const dl_cfg_schema *schema, void *cfg, int index) {
    const dl_cfg_section *sec = NULL;
    const dl_cfg_key *key = dl_cfg_key_at(schema, index, &sec);
    return (char *)cfg + sec->offset + key->offset;
}

void *dl_cfg_field2(const dl_cfg_schema *schema, void *cfg, int index) {
    const dl_cfg_section *sec = NULL;
    const dl_cfg_key *key = dl_cfg_key_at(schema, index, &sec);
    return (char *)cfg + sec->offset + key->offset2;
}

const void *dl_cfg_cfield(const dl_cfg_schema *schema, const void *cfg, int index) {
    return dl_cfg_field(schema, (void *)(uintptr_t)cfg, index);
}

const void *dl_cfg_cfield2(const dl_cfg_schema *schema, const void *cfg, int index) {
    return dl_cfg_field2(schema, (void *)(uintptr_t)cfg, index);
}

/* ---- the "read by" column ------------------------------------------------------------------------------------------
 * A row of schema->readers names a key and the choices of the selector (an enum key: dealer's says which network a
 * run trains) under which it is read; a key without a row is read under every choice. Loading refuses a key set (to a value other than its
 * default) that the selector's value does not read, since the run would silently ignore it. */

static const char *const *selector_choices(const dl_cfg_schema *schema) {
    int index = schema && schema->selector ? dl_cfg_find_dotted(schema, schema->selector) : -1;
    const dl_cfg_key *key = dl_cfg_key_at(schema, index, NULL);
    return key && key->type == DL_CFG_ENUM ? key->choices : NULL;
}

unsigned dl_cfg_all_readers(const dl_cfg_schema *schema) {
    const char *const *choices = selector_choices(schema);
    int n = 0;
    while (choices && choices[n])
        n++;
    return n ? (n >= 32 ? ~0u : (1u << n) - 1) : 1u;
}

unsigned dl_cfg_key_readers(const dl_cfg_schema *schema, int index) {
    if (index < 0 || index >= dl_cfg_num_keys(schema))
        return 0;
    char name[96];
    dl_cfg_key_name(schema, index, name, sizeof name);
    for (int i = 0; schema->readers && schema->readers[i].key; i++)
        if (strcmp(schema->readers[i].key, name) == 0)
            return schema->readers[i].readers;
    return dl_cfg_all_readers(schema);
}

int dl_cfg_readers_unknown(const dl_cfg_schema *schema, char *buf, size_t cap) {
    int unknown = 0;
    if (buf && cap)
        buf[0] = '\0';
    unsigned all = dl_cfg_all_readers(schema);
    for (int i = 0; schema && schema->readers && schema->readers[i].key; i++) {
        unsigned readers = schema->readers[i].readers;
        if (dl_cfg_find_dotted(schema, schema->readers[i].key) >= 0 && readers != 0 && (readers & ~all) == 0)
            continue;
        if (buf && cap && !unknown)
            snprintf(buf, cap, "%s", schema->readers[i].key);
        unknown++;
    }
    return unknown;
}

void dl_cfg_readers_text(const dl_cfg_schema *schema, unsigned readers, char *buf, size_t cap) {
    if (readers == dl_cfg_all_readers(schema)) {
        snprintf(buf, cap, "all");
        return;
    }
    const char *const *choices = selector_choices(schema);
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; choices && choices[k] && k < 32; k++)
        if (readers & (1u << k) && used < cap)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? "," : "", choices[k]);
}

bool dl_cfg_key_read_by(const dl_cfg_schema *schema, const char *key, int choice) {
    if (!schema || !key || choice < 0 || choice >= 32 || !((dl_cfg_all_readers(schema) >> choice) & 1u))
        return false;
    int index = dl_cfg_find_dotted(schema, key);
    return index >= 0 && (dl_cfg_key_readers(schema, index) & (1u << choice)) != 0;
}

/* ---- finding keys ------------------------------------------------------------------------------------------------ */

int dl_cfg_find(const dl_cfg_schema *schema, const char *section, const char *name) {
    int index = 0;
    for (int s = 0; s < schema->n_sections; s++) {
        const dl_cfg_section *sec = &schema->sections[s];
        int here = strcmp(sec->name, section) == 0;
        for (int i = 0; sec->keys[i].name; i++, index++)
            if (here && strcmp(sec->keys[i].name, name) == 0)
                return index;
    }
    return -1;
}

int dl_cfg_find_section(const dl_cfg_schema *schema, const char *name) {
    for (int s = 0; s < schema->n_sections; s++)
        if (schema->sections[s].name[0] && strcmp(schema->sections[s].name, name) == 0)
            return s;
    return -1;
}

int dl_cfg_find_dotted(const dl_cfg_schema *schema, const char *dotted) {
    const char *dot = strchr(dotted, '.');
    if (!dot)
        return dl_cfg_find(schema, "", dotted);
    size_t n = (size_t)(dot - dotted);
    char section[32];
    if (n >= sizeof section)
        return -1;
    memcpy(section, dotted, n);
    section[n] = '\0';
    return dl_cfg_find(schema, section, dot + 1);
}

void dl_cfg_key_name(const dl_cfg_schema *schema, int index, char *buf, size_t cap) {
    const dl_cfg_section *sec = NULL;
    const dl_cfg_key *key = dl_cfg_key_at(schema, index, &sec);
    if (sec->name[0])
        snprintf(buf, cap, "%s.%s", sec->name, key->name);
    else
        snprintf(buf, cap, "%s", key->name);
}

int dl_cfg_edit_distance(const char *a, const char *b) {
    enum { MAXLEN = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n >= MAXLEN || m >= MAXLEN)
        return 1000;
    /* Three rows of the dynamic-programming table: two back for transpositions. */
    int rows[3][MAXLEN + 1];
    int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= m; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int cost = ca != cb;
            int best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        int *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[m];
}

/* A suggestion is offered only when it is close: about one edit in three characters. */
static int close_enough(const char *name, const char *candidate, int distance) {
    size_t n = strlen(name), m = strlen(candidate);
    size_t longer = n > m ? n : m;
    int limit = longer <= 3 ? 1 : longer <= 6 ? 2 : 3;
    return distance <= limit && (size_t)distance < longer;
}

void dl_cfg_suggest_key(const dl_cfg_schema *schema, const char *section, const char *name, char *buf, size_t cap) {
    buf[0] = '\0';
    int n = dl_cfg_num_keys(schema);
    /* The right name in the wrong section first: optim.steps -> train.steps, run.device -> device. */
    for (int i = 0; i < n; i++) {
        const dl_cfg_section *sec = NULL;
        const dl_cfg_key *key = dl_cfg_key_at(schema, i, &sec);
        if (strcmp(key->name, name) == 0 && strcmp(sec->name, section) != 0) {
            char full[96];
            dl_cfg_key_name(schema, i, full, sizeof full);
            snprintf(buf, cap, " (did you mean '%s'?)", full);
            return;
        }
    }
    const dl_cfg_key *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; i < n; i++) {
        const dl_cfg_section *sec = NULL;
        const dl_cfg_key *key = dl_cfg_key_at(schema, i, &sec);
        if (strcmp(sec->name, section) != 0)
            continue;
        int d = dl_cfg_edit_distance(name, key->name);
        if (d < best_d) {
            best_d = d;
            best = key;
        }
    }
    if (best && close_enough(name, best->name, best_d))
        snprintf(buf, cap, " (did you mean '%s'?)", best->name);
}

void dl_cfg_suggest_section(const dl_cfg_schema *schema, const char *name, char *buf, size_t cap) {
    buf[0] = '\0';
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int s = 0; s < schema->n_sections; s++) {
        if (!schema->sections[s].name[0])
            continue;
        int d = dl_cfg_edit_distance(name, schema->sections[s].name);
        if (d < best_d) {
            best_d = d;
            best = schema->sections[s].name;
        }
    }
    int n = dl_cfg_num_keys(schema);
    for (int i = 0; i < n; i++) {
        const dl_cfg_section *sec = NULL;
        const dl_cfg_key *key = dl_cfg_key_at(schema, i, &sec);
        if (sec->name[0])
            continue;
        int d = dl_cfg_edit_distance(name, key->name);
        if (d < best_d) {
            best_d = d;
            best = key->name;
        }
    }
    if (best && close_enough(name, best, best_d)) {
        snprintf(buf, cap, " (did you mean '%s'?)", best);
        return;
    }
    /* A key written at the top level: lr -> optim.lr. */
    for (int i = 0; i < n; i++) {
        const dl_cfg_section *sec = NULL;
        const dl_cfg_key *key = dl_cfg_key_at(schema, i, &sec);
        if (sec->name[0] && strcmp(key->name, name) == 0) {
            snprintf(buf, cap, " (did you mean '%s.%s'?)", sec->name, name);
            return;
        }
    }
}

int dl_cfg_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int extra;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) {
            extra = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i <= (size_t)extra)
            return 0;
        for (int k = 1; k <= extra; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += (size_t)extra + 1;
    }
    return 1;
}
