/* config.h — the mechanics of a typed configuration: a YAML file plus command-line overrides, resolved into a plain
 * C struct whose fields the program reads directly. core/ knows no setting of its own: the caller hands in a
 * *schema*, a list of sections, and each module of dealer owns its section (a struct and the rows that declare its
 * keys). The application joins them (src/train/run_config.h: dl_config and its dl_config_* functions, which is what
 * the rest of dealer calls):
 *
 *     // a module's section: the struct, and one row per key (offsets relative to the struct)
 *     typedef struct my_section { int layers; double lr; } my_section;
 *     static const dl_cfg_key my_keys[] = {
 *         DL_CFG_KEY(my_section, "layers", DL_CFG_INT, layers, "12", DL_CFG_GE(1), "how many layers"),
 *         DL_CFG_KEY(my_section, "lr", DL_CFG_FLOAT, lr, "3e-4", DL_CFG_GT(0), "learning rate"),
 *         DL_CFG_END,
 *     };
 *     // the application: its struct holds the sections, the schema says where each one lives
 *     typedef struct app_config { my_section my; struct dl_cfg_origin *origin; } app_config;
 *     static const dl_cfg_section sections[] = {{"my", offsetof(app_config, my), my_keys}};
 *     static const dl_cfg_schema schema = {sections, 1, sizeof(app_config), offsetof(app_config, origin)};
 *     app_config cfg;
 *     DL_CHECK(dl_cfg_load(&schema, &cfg, "x.yaml", argc, argv));   // "my.lr=1e-3" ...
 *
 * A config file is one YAML mapping: the keys of the section named "" at its top level, every other section a
 * mapping of its keys. Every key has a default (so an empty file is a valid config), a type, a range and a doc
 * line; loading, overrides, the key list, the resolved YAML and the equality, difference and hash of two configs
 * all work from the rows. Errors are DL_ERR_CONFIG with one line naming the file and line (or the override) and, for
 * a misspelt key, the nearest valid one:
 *     configs/x.yaml:12: unknown key 'lrr' in section optim (did you mean 'lr'?)
 *     override 'optim.lr=fast': optim.lr: expected a number, got 'fast'
 *
 * A schema may name a *selector*, an enum key whose value decides which other keys are read (dealer's: the kind of
 * network a run trains):
 * rows of `readers` give a key's readers as a bit per choice of the selector, a key without a row is read under
 * every choice, and a loaded config that sets a key its selector's value does not read fails, since the setting
 * would be ignored. The checks that involve several keys are the application's: `check` runs after the overrides,
 * and dl_cfg_conflict words its errors, blaming the key set last.
 *
 * Paths in a config are kept as written: a relative path resolves against the current directory of the process,
 * not the directory of the config file, so a config means the same thing wherever it is read from. */
#ifndef DL_CORE_CONFIG_H
#define DL_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A list of strings (paths): a single YAML string loads as a list of one. */
typedef struct dl_str_list {
    int count;
    char **items;
} dl_str_list;

/* How a key's value is spelt and stored. Enum fields are int-sized C enums. */
typedef enum dl_cfg_type {
    DL_CFG_INT,        /* int field, decimal integer */
    DL_CFG_I64,        /* int64_t field, decimal integer */
    DL_CFG_FLOAT,      /* double field, finite number */
    DL_CFG_BOOL,       /* bool field, true|false (yes|no|on|off accepted) */
    DL_CFG_STRING,     /* char * field ("" when unset, never NULL) */
    DL_CFG_ENUM,       /* enum field, one of `choices` (index = value) */
    DL_CFG_LIST,       /* dl_str_list field: a string or a list of strings */
    DL_CFG_ENUM_COUNT, /* enum at offset, int at offset2: one of `choices`, the last spelt "word:K" with the int K in
                          the key's range (none|blocks|every:K); offset2 holds 0 for the other choices */
    DL_CFG_ENUM_TEXT,  /* enum at offset, char * at offset2: one of `choices` but the last, or any other non-empty
                          text, which selects the last choice (a placeholder: auto|never|PATH) and is kept at
                          offset2 ("" for the other choices) */
} dl_cfg_type;

/* Range flags of numeric keys. */
enum { DL_CFG_HAS_MIN = 1, DL_CFG_HAS_MAX = 2, DL_CFG_MIN_OPEN = 4, DL_CFG_MAX_OPEN = 8 };
/* Key flags. */
enum {
    DL_CFG_RANK_LOCAL = 1, /* the ranks of one run may set it differently (it changes what a rank prints, not what it
                              computes): left out of dl_cfg_diff and dl_cfg_rank_hash */
};

/* One key of a section. */
typedef struct dl_cfg_key {
    const char *name;
    dl_cfg_type type;
    size_t offset;  /* of the field in the section's struct */
    size_t offset2; /* DL_CFG_ENUM_COUNT, DL_CFG_ENUM_TEXT: of the second field */
    const char *const *choices; /* enums: NULL-terminated, in enum order */
    const char *def;            /* the default, spelt as in YAML and parsed like a user's value */
    int range;                  /* DL_CFG_HAS_MIN | ... */
    double min, max;
    const char *doc;
    const char *expect; /* what a value may be, for "expected ..." errors; NULL: said by the type */
    unsigned flags;     /* DL_CFG_RANK_LOCAL */
} dl_cfg_key;

/* Range shorthands: the range, min and max members of a dl_cfg_key. */
#define DL_CFG_ANY 0, 0.0, 0.0
#define DL_CFG_GE(lo) DL_CFG_HAS_MIN, (lo), 0.0
#define DL_CFG_GT(lo) DL_CFG_HAS_MIN | DL_CFG_MIN_OPEN, (lo), 0.0
#define DL_CFG_IN(lo, hi) DL_CFG_HAS_MIN | DL_CFG_HAS_MAX, (lo), (hi)
#define DL_CFG_IN_HALF_OPEN(lo, hi) DL_CFG_HAS_MIN | DL_CFG_HAS_MAX | DL_CFG_MAX_OPEN, (lo), (hi)
#define DL_CFG_IN_OPEN(lo, hi) DL_CFG_HAS_MIN | DL_CFG_HAS_MAX | DL_CFG_MIN_OPEN | DL_CFG_MAX_OPEN, (lo), (hi)

/* Rows of a section whose struct is `type`: a plain key (the arguments after the default: its range, one of the
 * shorthands above, then its doc line), and an enum key (choices in enum order). */
#define DL_CFG_KEY(type, name, kind, field, def, ...) \
    {name, kind, offsetof(type, field), 0, NULL, def, __VA_ARGS__, NULL, 0}
#define DL_CFG_ENUM_KEY(type, name, field, choices, def, doc) \
    {name, DL_CFG_ENUM, offsetof(type, field), 0, choices, def, DL_CFG_ANY, doc, NULL, 0}

/* The row that ends a section's rows. */
#define DL_CFG_END {.name = NULL}

/* A section: its name ("" for the keys at the top level of the file), where its struct lies in the application's
 * config struct, and its rows (ended by DL_CFG_END). */
typedef struct dl_cfg_section {
    const char *name;
    size_t offset;
    const dl_cfg_key *keys;
} dl_cfg_section;

/* A row of the "read by" column: the choices of the selector under which `key` ("section.name") is read, a bit
 * (1 << choice) each. */
typedef struct dl_cfg_reader {
    const char *key;
    unsigned readers;
} dl_cfg_reader;

/* Where each value came from (default, file:line, override), for dl_cfg_source_text; private to core. */
struct dl_cfg_origin;

typedef struct dl_cfg_schema {
    const dl_cfg_section *sections; /* in output order: what the YAML and the key list show */
    int n_sections;
    size_t size;          /* of the application's config struct */
    size_t origin_offset; /* of its `struct dl_cfg_origin *` member (NULL when the config holds nothing) */
    const char *selector; /* the dotted name of the enum key that decides which keys are read; NULL: all are */
    const dl_cfg_reader *readers; /* ended by a row whose key is NULL; NULL: none */
    /* The checks that involve several keys, run after the file and the overrides; NULL: none. */
    dl_status (*check)(const struct dl_cfg_schema *schema, const void *cfg);
    /* Set for a reader of a few keys of a bigger config (the model shape stored in a checkpoint): sections and keys
     * the schema does not declare are skipped instead of refused. */
    bool skip_unknown;
} dl_cfg_schema;

/* ---- resolving a config ---------------------------------------------------------------------------------------
 * `cfg` points at the application's config struct (schema->size bytes); it needs no initialisation. */

/* Fills *cfg with every key's default. Free it with dl_cfg_free. */
dl_status dl_cfg_defaults(const dl_cfg_schema *schema, void *cfg);

/* Resolves a config: defaults, then the YAML file at `path` (NULL: none), then `overrides` ("section.key=value", or
 * "key=value" at the top level), in order, then the selector's and the schema's checks. On failure it fails with
 * DL_ERR_CONFIG (DL_ERR_NOMEM when memory ran out) and leaves *cfg empty (dl_cfg_free is safe). */
dl_status dl_cfg_load(const dl_cfg_schema *schema, void *cfg, const char *path, int n_overrides, char **overrides);

/* Like dl_cfg_load with YAML text instead of a file and without the selector's check (a resolved config lists
 * every key): `name` is the file name errors and sources show. Reads back exactly what dl_cfg_to_yaml wrote. */
dl_status dl_cfg_load_string(const dl_cfg_schema *schema, void *cfg, const char *text, size_t len, const char *name);

/* Releases everything *cfg owns and zeroes it. Safe on a zeroed or already freed config. */
void dl_cfg_free(const dl_cfg_schema *schema, void *cfg);

/* ---- reading a resolved config --------------------------------------------------------------------------------- */

/* The resolved config as YAML (every key, in schema order), in a malloc'd string the caller frees. With
 * with_sources, each value carries a trailing comment saying where it came from. */
dl_status dl_cfg_to_yaml(const dl_cfg_schema *schema, const void *cfg, int with_sources, char **text);
/* True when every key of a and b holds the same value (sources are not compared). */
bool dl_cfg_equal(const dl_cfg_schema *schema, const void *a, const void *b);
/* The keys whose values differ, but the rank-local ones, as "k = A (A_NAME) vs B (B_NAME); ..." in buf (cut with
 * "..." at cap; buf may be NULL); returns how many differ, -1 when out of memory. */
int dl_cfg_diff(const dl_cfg_schema *schema, const void *a, const void *b, const char *a_name, const char *b_name,
                char *buf, size_t cap);
/* A 64-bit hash of every value but the rank-local ones. */
dl_status dl_cfg_rank_hash(const dl_cfg_schema *schema, const void *cfg, uint64_t *hash);
/* The YAML spelling of one key's value ("optim.lr" -> "0.0006"); DL_ERR_INVALID for an unknown key. */
dl_status dl_cfg_get_text(const dl_cfg_schema *schema, const void *cfg, const char *key, char *buf, size_t cap);
/* Where a key's value came from ("default", "configs/x.yaml:12", "override 'optim.lr=3e-4'"). */
dl_status dl_cfg_source_text(const dl_cfg_schema *schema, const void *cfg, const char *key, char *buf, size_t cap);
/* The YAML spelling of value `value` of the enum key `key` ("device", 1 -> "cpu"); NULL when there is none. */
const char *dl_cfg_enum_text(const dl_cfg_schema *schema, const char *key, int value);
/* The same for an enum key `name` of one section's rows. */
const char *dl_cfg_rows_enum_text(const dl_cfg_key *keys, const char *name, int value);
/* True when the selector's choice `choice` reads `key`; false for an unknown key or choice. */
bool dl_cfg_key_read_by(const dl_cfg_schema *schema, const char *key, int choice);
/* Prints every key with its type, default, readers, range and doc; markdown != 0 prints a markdown table. */
void dl_cfg_print_keys(const dl_cfg_schema *schema, FILE *out, int markdown);

/* For a schema's `check`: fails with DL_ERR_CONFIG and "PLACE: MESSAGE", where PLACE is where the key set last of
 * `keys` (dotted names, space-separated) came from: an override beats the file, a later line an earlier one. */
dl_status dl_cfg_conflict(const dl_cfg_schema *schema, const void *cfg, const char *keys, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Formats a double so that strtod reads back the same bits, as short as possible (as the YAML shows it). */
void dl_cfg_format_double(double v, char *buf, size_t cap);

/* ---- the schema itself ---------------------------------------------------------------------------------------- */

/* How many keys the schema has; key `index` (0 <= index < that, in output order) and its section. */
int dl_cfg_num_keys(const dl_cfg_schema *schema);
const dl_cfg_key *dl_cfg_key_at(const dl_cfg_schema *schema, int index, const dl_cfg_section **section);
/* The readers of key `index` (a bit per choice of the selector) and the value meaning "every choice". */
unsigned dl_cfg_key_readers(const dl_cfg_schema *schema, int index);
unsigned dl_cfg_all_readers(const dl_cfg_schema *schema);
/* Rows of `readers` that name no key of the schema or no choice (the first one's key in buf): 0 unless a key was
 * renamed without its row. */
int dl_cfg_readers_unknown(const dl_cfg_schema *schema, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
