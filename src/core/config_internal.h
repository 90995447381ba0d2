/* config_internal.h — the helpers shared by the config files: config_value.c (checking and storing one value),
 * config_yaml.c (reading YAML), config_load.c (defaults, overrides, loading, queries), config_emit.c (writing YAML
 * and the key list) and config_schema.c (walking a schema, nearest-key suggestions). Not for use outside
 * src/core/config*.c. Keys are numbered across the schema's sections in output order. */
#ifndef DL_CORE_CONFIG_INTERNAL_H
#define DL_CORE_CONFIG_INTERNAL_H

#include <stddef.h>

#include "core/config.h"

/* Where a value came from. */
typedef enum dl_cfg_source_kind { DL_SRC_DEFAULT = 0, DL_SRC_FILE = 1, DL_SRC_OVERRIDE = 2 } dl_cfg_source_kind;

typedef struct dl_cfg_source {
    dl_cfg_source_kind kind;
    int line;     /* DL_SRC_FILE: 1-based line */
    int override; /* DL_SRC_OVERRIDE: index into origin->overrides */
} dl_cfg_source;

struct dl_cfg_origin {
    char *file;             /* the name the YAML text was loaded under, NULL when none */
    int n_overrides;
    char **overrides;       /* copies of the override strings */
    dl_cfg_source *sources; /* one per key of the schema */
};
typedef struct dl_cfg_origin dl_cfg_origin;

/* A value as read from YAML or an override, before it is checked against the key's type. */
typedef enum dl_cfg_raw_kind {
    DL_RAW_SCALAR,   /* text/len */
    DL_RAW_NULL,     /* an empty plain scalar, ~ or null */
    DL_RAW_LIST,     /* items/item_lens, count */
    DL_RAW_MAPPING,  /* a mapping where a value was expected */
} dl_cfg_raw_kind;

typedef struct dl_cfg_raw {
    dl_cfg_raw_kind kind;
    const char *text;
    size_t len;
    int count;
    char **items;
    size_t *item_lens;
    int nested;       /* a list held a list or a mapping */
    char *owned_text; /* the copy `text` points into, when the raw value owns it */
} dl_cfg_raw;

/* The origin block of a config (NULL for an empty one). */
static inline dl_cfg_origin *dl_cfg_origin_of(const dl_cfg_schema *schema, const void *cfg) {
    return *(dl_cfg_origin *const *)((const char *)cfg + schema->origin_offset);
}
static inline void dl_cfg_set_origin(const dl_cfg_schema *schema, void *cfg, dl_cfg_origin *origin) {
    *(dl_cfg_origin **)((char *)cfg + schema->origin_offset) = origin;
}
/* The fields of key `index`: at its offset, and at its offset2. */
void *dl_cfg_field(const dl_cfg_schema *schema, void *cfg, int index);
void *dl_cfg_field2(const dl_cfg_schema *schema, void *cfg, int index);
const void *dl_cfg_cfield(const dl_cfg_schema *schema, const void *cfg, int index);
const void *dl_cfg_cfield2(const dl_cfg_schema *schema, const void *cfg, int index);

/* How many rows a section has (up to its DL_CFG_END). */
int dl_cfg_section_len(const dl_cfg_section *section);
/* Index of key section.name (section "" for top-level), or -1. */
int dl_cfg_find(const dl_cfg_schema *schema, const char *section, const char *name);
/* Index of section `name` in schema->sections, or -1 (the top-level "" is no section a user can name). */
int dl_cfg_find_section(const dl_cfg_schema *schema, const char *name);
/* Index of a dotted key ("optim.lr", "device"), or -1. */
int dl_cfg_find_dotted(const dl_cfg_schema *schema, const char *dotted);
/* Writes "section.name" (or "name" at top level) of key `index` into buf. */
void dl_cfg_key_name(const dl_cfg_schema *schema, int index, char *buf, size_t cap);
/* "all", or the selector's choices that read key `readers` joined by commas ("a,c"). */
void dl_cfg_readers_text(const dl_cfg_schema *schema, unsigned readers, char *buf, size_t cap);

/* Copies user text for a message: at most 80 characters, control characters shown as '?'. */
void dl_cfg_printable(const char *s, size_t len, char *buf, size_t cap);
/* A NUL-terminated copy of s[0..n), or NULL when out of memory. */
char *dl_cfg_strndup(const char *s, size_t n);
/* Frees a list's strings and empties it. */
void dl_cfg_free_list(dl_str_list *list);

/* Checks raw against key `index` and stores it in cfg, recording `source`. `where` prefixes error messages
 * ("x.yaml:7", "override 'optim.lr=3'"). */
dl_status dl_cfg_assign(const dl_cfg_schema *schema, void *cfg, int index, const dl_cfg_raw *raw, const char *where,
                        dl_cfg_source source);

/* Parses YAML text into cfg (values on top of what cfg holds). `name` prefixes errors. */
dl_status dl_cfg_parse_yaml(const dl_cfg_schema *schema, void *cfg, const char *text, size_t len, const char *name);

/* Parses the value part of an override ("3e-4", "[a, b]", "\"quoted\"") into raw (owned items, free with
 * dl_cfg_raw_free); `where` prefixes errors. */
dl_status dl_cfg_parse_override_value(const char *value, dl_cfg_raw *raw, const char *where);
void dl_cfg_raw_free(dl_cfg_raw *raw);

/* Optimal string alignment distance (edits, with adjacent transpositions), case-insensitive. */
int dl_cfg_edit_distance(const char *a, const char *b);
/* Writes " (did you mean 'X'?)" for the closest of the candidates to `name` when close enough, "" otherwise. */
void dl_cfg_suggest_key(const dl_cfg_schema *schema, const char *section, const char *name, char *buf, size_t cap);
void dl_cfg_suggest_section(const dl_cfg_schema *schema, const char *name, char *buf, size_t cap);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
int dl_cfg_utf8_valid(const char *s, size_t len);

/* A growing text buffer; on out-of-memory it sets `failed` and ignores further appends. */
typedef struct dl_cfg_buf {
    char *data;
    size_t len, cap;
    int failed; /* out of memory */
} dl_cfg_buf;
void dl_cfg_buf_add(dl_cfg_buf *b, const char *s, size_t n);
void dl_cfg_buf_printf(dl_cfg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends the YAML spelling of key `index`'s value. */
void dl_cfg_format_value(const dl_cfg_schema *schema, const void *cfg, int index, dl_cfg_buf *b);
/* Writes the source of key `index` ("default", "x.yaml:12", "override 'k=v'"). */
void dl_cfg_format_source(const dl_cfg_schema *schema, const void *cfg, int index, char *buf, size_t cap);

#endif
