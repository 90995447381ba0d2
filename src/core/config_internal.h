/* config_internal.h — the schema table and the helpers shared by the config files: config_value.c (checking and
 * storing one value), config_yaml.c (reading YAML), config_load.c (defaults, overrides, loading, cross-key checks),
 * config_emit.c (writing YAML and the key list) and config_schema.c (the table). Not for use outside
 * src/core/config*.c. */
#ifndef DL_CORE_CONFIG_INTERNAL_H
#define DL_CORE_CONFIG_INTERNAL_H

#include <stddef.h>

#include "core/config.h"

/* How a key's value is spelt and stored. */
typedef enum dl_cfg_type {
    DL_CFG_INT,        /* int field, decimal integer */
    DL_CFG_I64,        /* int64_t field, decimal integer */
    DL_CFG_FLOAT,      /* double field, finite number */
    DL_CFG_BOOL,       /* bool field, true|false (yes|no|on|off accepted) */
    DL_CFG_STRING,     /* char * field */
    DL_CFG_ENUM,       /* int-sized enum field, one of `choices` (index = value) */
    DL_CFG_LIST,       /* dl_str_list field: a string or a list of strings */
    DL_CFG_GRAD_CKPT,  /* dl_grad_ckpt at offset, int K at offset2: none|blocks|every:K */
    DL_CFG_RESUME,     /* dl_resume at offset, char * path at offset2: auto|never|PATH */
} dl_cfg_type;

/* Range flags of numeric keys. */
enum { DL_CFG_HAS_MIN = 1, DL_CFG_HAS_MAX = 2, DL_CFG_MIN_OPEN = 4, DL_CFG_MAX_OPEN = 8 };

typedef struct dl_cfg_key {
    const char *section; /* "" for the top-level keys (device) */
    const char *name;
    dl_cfg_type type;
    size_t offset;
    size_t offset2;
    const char *const *choices; /* enums: NULL-terminated, in enum order */
    const char *def;            /* the default, spelt as in YAML and parsed like a user's value */
    int range;                  /* DL_CFG_HAS_MIN | ... */
    double min, max;
    const char *doc;
} dl_cfg_key;

extern const dl_cfg_key dl_cfg_keys[];
extern const int dl_cfg_num_keys;
enum { DL_CFG_NUM_SECTIONS = 9 };
extern const char *const dl_cfg_sections[DL_CFG_NUM_SECTIONS + 1]; /* NULL-terminated, in output order */

/* Where a value came from. */
typedef enum dl_cfg_source_kind { DL_SRC_DEFAULT = 0, DL_SRC_FILE = 1, DL_SRC_OVERRIDE = 2 } dl_cfg_source_kind;

typedef struct dl_cfg_source {
    dl_cfg_source_kind kind;
    int line;     /* DL_SRC_FILE: 1-based line */
    int override; /* DL_SRC_OVERRIDE: index into origin->overrides */
} dl_cfg_source;

struct dl_config_origin {
    char *file;           /* the name the YAML text was loaded under, NULL when none */
    int n_overrides;
    char **overrides;     /* copies of the override strings */
    dl_cfg_source *sources; /* dl_cfg_num_keys entries */
};

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

/* Index of key section.name (section "" for top-level), or -1. */
int dl_cfg_find(const char *section, const char *name);
/* Index of section `name` in dl_cfg_sections, or -1. */
int dl_cfg_find_section(const char *name);
/* Index of a dotted key ("optim.lr", "device"), or -1. */
int dl_cfg_find_dotted(const char *dotted);
/* Writes "section.name" (or "name" at top level) into buf. */
void dl_cfg_key_name(const dl_cfg_key *key, char *buf, size_t cap);

/* The model kinds that read key `index`: a bit (1 << dl_model_kind) per kind; DL_CFG_ALL_KINDS for most keys. */
enum { DL_CFG_ALL_KINDS = (1u << DL_MODEL_GPT) | (1u << DL_MODEL_FM) | (1u << DL_MODEL_FFM) | (1u << DL_MODEL_DPO) };
unsigned dl_cfg_key_kinds(int index);
/* Rows of the read-by column that name no key of the schema or no kind (the first one's key in buf): 0 unless a
 * key was renamed without its row. */
int dl_cfg_kind_rows_unknown(char *buf, size_t cap);
/* "all", or the kinds' names joined by commas ("gpt,dpo"). */
void dl_cfg_kinds_text(unsigned kinds, char *buf, size_t cap);
/* True for a key the ranks of one run may set differently (log.level): left out of the ranks' config check. */
int dl_cfg_key_rank_local(int index);

/* The field of cfg at a key's offset. */
static inline void *dl_cfg_field(dl_config *cfg, size_t offset) { return (char *)cfg + offset; }
static inline const void *dl_cfg_cfield(const dl_config *cfg, size_t offset) { return (const char *)cfg + offset; }
/* Copies user text for a message: at most 80 characters, control characters shown as '?'. */
void dl_cfg_printable(const char *s, size_t len, char *buf, size_t cap);
/* A NUL-terminated copy of s[0..n), or NULL when out of memory. */
char *dl_cfg_strndup(const char *s, size_t n);
/* Frees a list's strings and empties it. */
void dl_cfg_free_list(dl_str_list *list);

/* Checks raw against key `index` and stores it in cfg, recording `source`. `where` prefixes error messages
 * ("x.yaml:7", "override 'optim.lr=3'"). */
dl_status dl_cfg_assign(dl_config *cfg, int index, const dl_cfg_raw *raw, const char *where, dl_cfg_source source);

/* Parses YAML text into cfg (values on top of what cfg holds). `name` prefixes errors. */
dl_status dl_cfg_parse_yaml(dl_config *cfg, const char *text, size_t len, const char *name);

/* Parses the value part of an override ("3e-4", "[a, b]", "\"quoted\"") into raw (owned items, free with
 * dl_cfg_raw_free); `where` prefixes errors. */
dl_status dl_cfg_parse_override_value(const char *value, dl_cfg_raw *raw, const char *where);
void dl_cfg_raw_free(dl_cfg_raw *raw);

/* Optimal string alignment distance (edits, with adjacent transpositions), case-insensitive. */
int dl_cfg_edit_distance(const char *a, const char *b);
/* Writes " (did you mean 'X'?)" for the closest of the candidates to `name` when close enough, "" otherwise. */
void dl_cfg_suggest_key(const char *section, const char *name, char *buf, size_t cap);
void dl_cfg_suggest_section(const char *name, char *buf, size_t cap);

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
void dl_cfg_format_value(const dl_config *cfg, int index, dl_cfg_buf *b);
/* Formats a double so that strtod reads back the same bits, as short as possible. */
void dl_cfg_format_double(double v, char *buf, size_t cap);
/* Writes the source of key `index` ("default", "x.yaml:12", "override 'k=v'"). */
void dl_cfg_format_source(const dl_config *cfg, int index, char *buf, size_t cap);

#endif
