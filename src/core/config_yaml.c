/* config_yaml.c — reading a config's YAML text with libyaml's event parser.
 *
 * The event API (rather than libyaml's document loader) keeps reading flat and bounded: a config is a mapping of
 * sections, each a mapping of keys whose values are scalars or lists of scalars, so three nested loops walk it and
 * anything deeper is an error at its first event. Nothing recurses, so hostile nesting cannot exhaust the stack,
 * and nothing is kept but the value being read. Aliases (*name) are refused rather than expanded.
 *
 * Each value is handed to dl_cfg_assign as a dl_cfg_raw with the file and line of its key. The same value reader
 * parses the bracketed or quoted form of a command-line override ("data.train=[a.tfrecord, b.tfrecord]"); a bare
 * override value is taken literally, so "run.dir=runs/#3" means what it says. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/config_internal.h"

typedef struct reader {
    yaml_parser_t parser;
    const char *text;
    size_t len;
    const char *name;     /* file name for "name:line" */
    const char *override; /* when reading an override value: the "override '...'" prefix, no lines */
    const dl_cfg_schema *schema; /* when reading a config: what it holds */
    void *cfg;
} reader;

/* "name:line" or the override prefix. */
static void where_at(const reader *r, int line, char *buf, size_t cap) {
    if (r->override)
        snprintf(buf, cap, "%s", r->override);
    else
        snprintf(buf, cap, "%s:%d", r->name, line);
}

static int line_of(const yaml_event_t *ev) { return (int)ev->start_mark.line + 1; }

/* Shows user text in a message: at most 64 characters, control characters as '?'. */
static void shown(const unsigned char *s, size_t len, char *buf, size_t cap) {
    size_t limit = cap - 4 < 64 ? cap - 4 : 64, o = 0;
    for (size_t i = 0; i < len && o < limit; i++)
        buf[o++] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
    if (len > limit) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

static dl_status syntax_error(reader *r) {
    yaml_parser_t *p = &r->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return DL_FAIL(DL_ERR_NOMEM, "%s: out of memory parsing YAML", r->override ? r->override : r->name);
    const char *problem = p->problem ? p->problem : "malformed YAML";
    char where[512];
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a line: count the lines before it. */
        int line = 1;
        for (size_t i = 0; i < p->problem_offset && i < r->len; i++)
            line += r->text[i] == '\n';
        where_at(r, line, where, sizeof where);
        return DL_FAIL(DL_ERR_CONFIG, "%s: YAML error: %s (at byte offset %zu)", where, problem, p->problem_offset);
    }
    where_at(r, (int)p->problem_mark.line + 1, where, sizeof where);
    if (p->context && !r->override)
        return DL_FAIL(DL_ERR_CONFIG, "%s: YAML syntax error: %s %s (line %d)", where, problem, p->context,
                       (int)p->context_mark.line + 1);
    return DL_FAIL(DL_ERR_CONFIG, "%s: YAML syntax error: %s", where, problem);
}

static dl_status next(reader *r, yaml_event_t *ev) {
    if (!yaml_parser_parse(&r->parser, ev))
        return syntax_error(r);
    return DL_OK;
}

static int is_null_scalar(const yaml_event_t *ev) {
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    return n == 0 || (n == 1 && v[0] == '~') ||
           (n == 4 && (memcmp(v, "null", 4) == 0 || memcmp(v, "Null", 4) == 0 || memcmp(v, "NULL", 4) == 0));
}

static dl_status alias_error(reader *r, const yaml_event_t *ev) {
    char where[512], name[80];
    where_at(r, line_of(ev), where, sizeof where);
    const unsigned char *anchor = ev->data.alias.anchor;
    shown(anchor, anchor ? strlen((const char *)anchor) : 0, name, sizeof name);
    return DL_FAIL(DL_ERR_CONFIG, "%s: YAML aliases (*%s) are not supported in dealer configs; write the value out",
                   where, name);
}

void dl_cfg_raw_free(dl_cfg_raw *raw) {
    for (int i = 0; i < raw->count; i++)
        free(raw->items[i]);
    free(raw->items);
    free(raw->item_lens);
    free(raw->owned_text);
    memset(raw, 0, sizeof *raw);
}

static char *copy_scalar(const yaml_event_t *ev) {
    size_t n = ev->data.scalar.length;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, ev->data.scalar.value, n);
        s[n] = '\0';
    }
    return s;
}

/* Appends a list item (the scalar of ev) to raw. */
static dl_status add_item(dl_cfg_raw *raw, const yaml_event_t *ev) {
    if (raw->count % 16 == 0) {
        size_t cap = (size_t)raw->count + 16;
        char **items = realloc(raw->items, cap * sizeof *items);
        if (items)
            raw->items = items;
        size_t *lens = items ? realloc(raw->item_lens, cap * sizeof *lens) : NULL;
        if (lens)
            raw->item_lens = lens;
        if (!items || !lens)
            return DL_FAIL(DL_ERR_NOMEM, "out of memory reading a list");
    }
    char *s = is_null_scalar(ev) ? calloc(1, 1) : copy_scalar(ev);
    if (!s)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory reading a list");
    raw->items[raw->count] = s;
    raw->item_lens[raw->count] = is_null_scalar(ev) ? 0 : ev->data.scalar.length;
    raw->count++;
    return DL_OK;
}

/* Reads the value node that follows a key: a scalar, a list of scalars (a nested list or mapping stops reading
 * and sets raw->nested), or the start of a mapping (raw->kind MAPPING; its events are left unread, as reading
 * stops at the error the value is about to cause). */
static dl_status read_value(reader *r, dl_cfg_raw *raw) {
    memset(raw, 0, sizeof *raw);
    yaml_event_t ev;
    DL_CHECK(next(r, &ev));
    dl_status s = DL_OK;
    switch (ev.type) {
    case YAML_SCALAR_EVENT:
        if (is_null_scalar(&ev)) {
            raw->kind = DL_RAW_NULL;
        } else {
            raw->kind = DL_RAW_SCALAR;
            raw->owned_text = copy_scalar(&ev);
            raw->text = raw->owned_text;
            raw->len = ev.data.scalar.length;
            if (!raw->owned_text)
                s = DL_FAIL(DL_ERR_NOMEM, "out of memory reading a value");
        }
        break;
    case YAML_SEQUENCE_START_EVENT:
        raw->kind = DL_RAW_LIST;
        for (;;) {
            yaml_event_t item;
            s = next(r, &item);
            if (s != DL_OK)
                break;
            if (item.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&item);
                break;
            }
            if (item.type == YAML_SCALAR_EVENT) {
                s = add_item(raw, &item);
            } else if (item.type == YAML_ALIAS_EVENT) {
                s = alias_error(r, &item);
            } else {
                raw->nested = 1;
            }
            yaml_event_delete(&item);
            if (s != DL_OK || raw->nested)
                break;
        }
        break;
    case YAML_MAPPING_START_EVENT: raw->kind = DL_RAW_MAPPING; break;
    case YAML_ALIAS_EVENT: s = alias_error(r, &ev); break;
    default: {
        char where[512];
        where_at(r, line_of(&ev), where, sizeof where);
        s = DL_FAIL(DL_ERR_CONFIG, "%s: expected a value", where);
        break;
    }
    }
    yaml_event_delete(&ev);
    if (s != DL_OK)
        dl_cfg_raw_free(raw);
    return s;
}

/* Per-parse bookkeeping for duplicate detection: the line each key and section was first set on. */
typedef struct seen {
    int *key_line;     /* one per key */
    int *section_line; /* one per section */
} seen;

/* Reads the value of key `index` (its key scalar was on `line`) and assigns it. */
static dl_status read_key_value(reader *r, seen *sn, int index, int line) {
    char where[512];
    where_at(r, line, where, sizeof where);
    if (sn->key_line[index]) {
        const dl_cfg_section *sec = NULL;
        const dl_cfg_key *key = dl_cfg_key_at(r->schema, index, &sec);
        if (sec->name[0])
            return DL_FAIL(DL_ERR_CONFIG, "%s: duplicate key '%s' in section %s (first on line %d)", where, key->name,
                           sec->name, sn->key_line[index]);
        return DL_FAIL(DL_ERR_CONFIG, "%s: duplicate key '%s' (first on line %d)", where, key->name,
                       sn->key_line[index]);
    }
    sn->key_line[index] = line;
    dl_cfg_raw raw;
    DL_CHECK(read_value(r, &raw));
    dl_cfg_source source = {DL_SRC_FILE, line, 0};
    dl_status s = dl_cfg_assign(r->schema, r->cfg, index, &raw, where, source);
    dl_cfg_raw_free(&raw);
    return s;
}

/* Reads a mapping key: its name (NUL-terminated copy, cut to cap) and line; fails unless it is a scalar. */
static dl_status read_key(reader *r, yaml_event_t *ev, char *name, size_t cap, size_t *len, int *line) {
    *line = line_of(ev);
    if (ev->type != YAML_SCALAR_EVENT) {
        char where[512];
        where_at(r, *line, where, sizeof where);
        if (ev->type == YAML_ALIAS_EVENT)
            return alias_error(r, ev);
        return DL_FAIL(DL_ERR_CONFIG, "%s: a key must be a plain name, not a %s", where,
                       ev->type == YAML_SEQUENCE_START_EVENT ? "list" : "mapping");
    }
    size_t n = ev->data.scalar.length;
    *len = n;
    if (n >= cap)
        n = cap - 1;
    memcpy(name, ev->data.scalar.value, n);
    name[n] = '\0';
    return DL_OK;
}

/* True when the key text holds characters no key name has (NUL, or more than the buffer). */
static int odd_name(const char *name, size_t len) { return strlen(name) != len; }

/* Reads past one value node (a scalar, or a whole list or mapping): what a schema with skip_unknown does with a
 * section or key it does not declare. Nesting is counted, not recursed into. */
static dl_status skip_node(reader *r) {
    long depth = 0;
    do {
        yaml_event_t ev;
        DL_CHECK(next(r, &ev));
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
            depth++;
        else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT)
            depth--;
        yaml_event_delete(&ev);
    } while (depth > 0);
    return DL_OK;
}

/* The next key of the mapping being read, as read_key gives it, and its display form for messages; *done = 1 (and
 * nothing else) at the end of the mapping. Sections and the root read their keys the same way. */
static dl_status next_key(reader *r, char *name, size_t cap, size_t *len, int *line, char *display, size_t display_cap,
                          int *done) {
    yaml_event_t ev;
    DL_CHECK(next(r, &ev));
    *done = ev.type == YAML_MAPPING_END_EVENT;
    if (*done) {
        yaml_event_delete(&ev);
        return DL_OK;
    }
    dl_status s = read_key(r, &ev, name, cap, len, line);
    if (s == DL_OK)
        shown(ev.data.scalar.value, ev.data.scalar.length, display, display_cap);
    yaml_event_delete(&ev);
    return s;
}

static dl_status read_section(reader *r, seen *sn, const char *section) {
    for (;;) {
        char name[128], display[96];
        size_t len = 0;
        int line = 0, done = 0;
        DL_CHECK(next_key(r, name, sizeof name, &len, &line, display, sizeof display, &done));
        if (done)
            return DL_OK;
        int index = odd_name(name, len) ? -1 : dl_cfg_find(r->schema, section, name);
        if (index < 0 && r->schema->skip_unknown) {
            DL_CHECK(skip_node(r));
            continue;
        }
        if (index < 0) {
            char where[512], suggestion[160];
            where_at(r, line, where, sizeof where);
            dl_cfg_suggest_key(r->schema, section, name, suggestion, sizeof suggestion);
            dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s: unknown key '%s' in section %s%s", where, display, section, suggestion);
            if (!suggestion[0])
                dl_error_hint("'dealer config keys' lists every key");
            return s;
        }
        DL_CHECK(read_key_value(r, sn, index, line));
    }
}

/* The hint for an unknown section with no near name: "sections are run, model, ...; plus the key device". */
static void hint_sections(const dl_cfg_schema *schema) {
    char text[512];
    size_t used = (size_t)snprintf(text, sizeof text, "sections are ");
    int first = 1;
    for (int s = 0; s < schema->n_sections && used < sizeof text; s++)
        if (schema->sections[s].name[0]) {
            used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", first ? "" : ", ",
                                     schema->sections[s].name);
            first = 0;
        }
    int n = dl_cfg_num_keys(schema), tops = 0;
    for (int i = 0; i < n; i++) {
        const dl_cfg_section *sec = NULL;
        const dl_cfg_key *key = dl_cfg_key_at(schema, i, &sec);
        if (sec->name[0] || used >= sizeof text)
            continue;
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", tops ? ", " : "; plus the key ", key->name);
        tops++;
    }
    dl_error_hint("%s", text);
}

static dl_status read_root(reader *r, seen *sn) {
    for (;;) {
        char name[128], display[96];
        size_t len = 0;
        int line = 0, done = 0;
        DL_CHECK(next_key(r, name, sizeof name, &len, &line, display, sizeof display, &done));
        if (done)
            return DL_OK;
        char where[512];
        where_at(r, line, where, sizeof where);
        int section = odd_name(name, len) ? -1 : dl_cfg_find_section(r->schema, name);
        if (section >= 0) {
            if (sn->section_line[section])
                return DL_FAIL(DL_ERR_CONFIG, "%s: duplicate section '%s' (first on line %d)", where, name,
                               sn->section_line[section]);
            sn->section_line[section] = line;
            yaml_event_t ev;
            DL_CHECK(next(r, &ev));
            if (ev.type == YAML_MAPPING_START_EVENT) {
                yaml_event_delete(&ev);
                DL_CHECK(read_section(r, sn, r->schema->sections[section].name));
                continue;
            }
            if (ev.type == YAML_SCALAR_EVENT && is_null_scalar(&ev)) {
                yaml_event_delete(&ev); /* "optim:" with nothing under it */
                continue;
            }
            char got[96] = "a list";
            if (ev.type == YAML_SCALAR_EVENT) {
                char text[80];
                shown(ev.data.scalar.value, ev.data.scalar.length, text, sizeof text);
                snprintf(got, sizeof got, "'%s'", text);
            } else if (ev.type == YAML_ALIAS_EVENT) {
                snprintf(got, sizeof got, "an alias");
            }
            yaml_event_delete(&ev);
            return DL_FAIL(DL_ERR_CONFIG, "%s: section %s must be a mapping of keys (key: value), got %s", where,
                           name, got);
        }
        int index = odd_name(name, len) ? -1 : dl_cfg_find(r->schema, "", name);
        if (index >= 0) {
            DL_CHECK(read_key_value(r, sn, index, line));
            continue;
        }
        if (r->schema->skip_unknown) {
            DL_CHECK(skip_node(r));
            continue;
        }
        char suggestion[160];
        dl_cfg_suggest_section(r->schema, name, suggestion, sizeof suggestion);
        dl_status s = DL_FAIL(DL_ERR_CONFIG, "%s: unknown section '%s'%s", where, display, suggestion);
        if (!suggestion[0])
            hint_sections(r->schema);
        return s;
    }
}

/* Reads the document after STREAM_START: nothing, or one mapping. */
static dl_status read_stream(reader *r, seen *sn) {
    yaml_event_t ev;
    DL_CHECK(next(r, &ev));
    yaml_event_type_t type = ev.type;
    yaml_event_delete(&ev);
    if (type == YAML_STREAM_END_EVENT)
        return DL_OK; /* an empty file: all defaults */
    DL_CHECK(next(r, &ev));
    char where[512];
    where_at(r, line_of(&ev), where, sizeof where);
    if (ev.type == YAML_MAPPING_START_EVENT) {
        yaml_event_delete(&ev);
        DL_CHECK(read_root(r, sn));
    } else if (ev.type == YAML_SCALAR_EVENT && is_null_scalar(&ev)) {
        yaml_event_delete(&ev);
    } else {
        yaml_event_delete(&ev);
        return DL_FAIL(DL_ERR_CONFIG, "%s: a config must be a mapping of sections (e.g. 'optim:' then '  lr: 3e-4')",
                       where);
    }
    DL_CHECK(next(r, &ev)); /* DOCUMENT_END */
    yaml_event_delete(&ev);
    DL_CHECK(next(r, &ev));
    type = ev.type;
    where_at(r, line_of(&ev), where, sizeof where);
    yaml_event_delete(&ev);
    if (type != YAML_STREAM_END_EVENT)
        return DL_FAIL(DL_ERR_CONFIG, "%s: a second YAML document ('---'); a config holds exactly one", where);
    return DL_OK;
}

static dl_status reader_open(reader *r, const char *text, size_t len) {
    if (!yaml_parser_initialize(&r->parser))
        return DL_FAIL(DL_ERR_NOMEM, "out of memory starting the YAML parser");
    yaml_parser_set_input_string(&r->parser, (const unsigned char *)text, len);
    r->text = text;
    r->len = len;
    yaml_event_t ev;
    dl_status s = next(r, &ev); /* STREAM_START */
    if (s == DL_OK)
        yaml_event_delete(&ev);
    else
        yaml_parser_delete(&r->parser);
    return s;
}

dl_status dl_cfg_parse_yaml(const dl_cfg_schema *schema, void *cfg, const char *text, size_t len, const char *name) {
    DL_REQUIRE(schema && cfg && (text || len == 0) && name, DL_ERR_INVALID, "dl_cfg_parse_yaml: bad arguments");
    reader r = {.name = name, .schema = schema, .cfg = cfg};
    seen sn = {0};
    sn.key_line = calloc((size_t)dl_cfg_num_keys(schema) + 1, sizeof *sn.key_line);
    sn.section_line = calloc((size_t)schema->n_sections + 1, sizeof *sn.section_line);
    dl_status s = DL_OK;
    if (!sn.key_line || !sn.section_line)
        s = DL_FAIL(DL_ERR_NOMEM, "out of memory parsing %s", name);
    if (s == DL_OK)
        s = reader_open(&r, text ? text : "", len);
    if (s == DL_OK) {
        s = read_stream(&r, &sn);
        yaml_parser_delete(&r.parser);
    }
    free(sn.key_line);
    free(sn.section_line);
    return s;
}

dl_status dl_cfg_parse_override_value(const char *value, dl_cfg_raw *raw, const char *where) {
    memset(raw, 0, sizeof *raw);
    size_t len = strlen(value);
    if (len == 0 || strcmp(value, "~") == 0 || strcmp(value, "null") == 0) {
        raw->kind = DL_RAW_NULL;
        return DL_OK;
    }
    if (value[0] != '[' && value[0] != '"' && value[0] != '\'') {
        /* A bare value is literal text: no YAML comments, anchors or tags. */
        raw->owned_text = malloc(len + 1);
        if (!raw->owned_text)
            return DL_FAIL(DL_ERR_NOMEM, "out of memory reading an override");
        memcpy(raw->owned_text, value, len + 1);
        raw->kind = DL_RAW_SCALAR;
        raw->text = raw->owned_text;
        raw->len = len;
        return DL_OK;
    }
    reader r = {.name = where, .override = where};
    DL_CHECK(reader_open(&r, value, len));
    yaml_event_t ev;
    dl_status s = next(&r, &ev); /* DOCUMENT_START */
    if (s == DL_OK) {
        yaml_event_delete(&ev);
        s = read_value(&r, raw);
    }
    if (s == DL_OK && raw->kind == DL_RAW_MAPPING)
        s = DL_FAIL(DL_ERR_CONFIG, "%s: a value cannot be a mapping", where);
    if (s == DL_OK && raw->nested)
        s = DL_FAIL(DL_ERR_CONFIG, "%s: a list cannot hold lists or mappings", where);
    if (s == DL_OK) {
        s = next(&r, &ev); /* DOCUMENT_END */
        if (s == DL_OK) {
            yaml_event_type_t type = ev.type;
            yaml_event_delete(&ev);
            if (type != YAML_DOCUMENT_END_EVENT)
                s = DL_FAIL(DL_ERR_CONFIG, "%s: unexpected text after the value", where);
        }
    }
    if (s == DL_OK) {
        s = next(&r, &ev);
        if (s == DL_OK) {
            yaml_event_type_t type = ev.type;
            yaml_event_delete(&ev);
            if (type != YAML_STREAM_END_EVENT)
                s = DL_FAIL(DL_ERR_CONFIG, "%s: unexpected text after the value", where);
        }
    }
    yaml_parser_delete(&r.parser);
    if (s != DL_OK)
        dl_cfg_raw_free(raw);
    return s;
}
