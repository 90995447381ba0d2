/* convert_pairs.c — the JSONL preference-pair parser, one JSON object per line, in the two layouts TRL uses:
 *
 *   standard        {"prompt": "...", "chosen": "...", "rejected": "..."}          (prompt may be "")
 *   conversational  {"chosen": [MSG...], "rejected": [MSG...]}                       MSG = {"role": R, "content": C}
 *                   the longest common prefix of the two lists is the prompt, the rest of each list its response;
 *                   or {"prompt": [MSG...] or "...", "chosen": [MSG...], "rejected": [MSG...]} with an explicit
 *                   prompt (then chosen and rejected hold only the responses).
 * Messages become text through one fixed template, each message "ROLE: CONTENT<|endoftext|>" (the separator is
 * one special token under a GPT-2 tokenizer, its 13 bytes under the byte-level one), so the prompt ends right
 * where a response begins. docs/data-format.md shows it.
 *
 * jansson parses the line strictly: one JSON value, nothing after it, duplicate keys refused, since a second
 * "chosen" silently replacing the first is exactly the kind of data bug that flips a preference. The texts are then
 * tokenised with the conversion's tokenizer (byte-level by default: each string's UTF-8 bytes). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "data/convert.h"
#include "data/tokenizer.h"

#define TURN_END "<|endoftext|>"

typedef struct text_buf {
    char *data;
    size_t len, cap;
} text_buf;

static dl_status put(text_buf *b, const char *s, size_t n) {
    DL_CHECK(dl_grow((void **)&b->data, &b->cap, b->len + n + 1, 1, "a pair's text"));
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return DL_OK;
}

static const char *kind_of(const json_t *v) {
    return json_is_array(v) ? "an array" : json_is_object(v) ? "an object" : json_is_string(v) ? "a string"
                                                                              : "a number or literal";
}

/* Checks that a list holds only {"role": non-empty string, "content": string} messages. */
static dl_status check_messages(const json_t *list, const char *key) {
    size_t n = json_array_size(list);
    if (n == 0)
        return DL_FAIL(DL_ERR_FORMAT, "\"%s\" is an empty message list", key);
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(list, i);
        if (!json_is_object(m))
            return DL_FAIL(DL_ERR_FORMAT, "\"%s\" message %zu is %s, not {\"role\", \"content\"}", key, i + 1,
                           kind_of(m));
        const json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_string(role) || json_string_length(role) == 0)
            return DL_FAIL(DL_ERR_FORMAT, "\"%s\" message %zu has no non-empty string \"role\"", key, i + 1);
        if (!json_is_string(content))
            return DL_FAIL(DL_ERR_FORMAT, "\"%s\" message %zu has no string \"content\"", key, i + 1);
    }
    return DL_OK;
}

/* Renders messages [from, to) of a checked list into b. */
static dl_status render_range(const json_t *list, size_t from, size_t to, text_buf *b) {
    for (size_t i = from; i < to; i++) {
        const json_t *m = json_array_get(list, i);
        const json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        DL_CHECK(put(b, json_string_value(role), json_string_length(role)));
        DL_CHECK(put(b, ": ", 2));
        DL_CHECK(put(b, json_string_value(content), json_string_length(content)));
        DL_CHECK(put(b, TURN_END, sizeof TURN_END - 1));
    }
    return DL_OK;
}

static dl_status render(const json_t *list, size_t from, text_buf *b) {
    return render_range(list, from, json_array_size(list), b);
}

static int same_message(const json_t *a, const json_t *b) {
    return json_equal(json_object_get(a, "role"), json_object_get(b, "role")) &&
           json_equal(json_object_get(a, "content"), json_object_get(b, "content"));
}

static dl_status encode(dl_tokenizer *tok, const char *s, size_t n, dl_i32_array *out) {
    return tok ? dl_tokenizer_encode(tok, s, n, out) : dl_tokenize_bytes(s, n, out);
}

static dl_status parse_root(const json_t *root, text_buf t[3]) {
    if (!json_is_object(root))
        return DL_FAIL(DL_ERR_FORMAT, "expected a JSON object {\"prompt\", \"chosen\", \"rejected\"}");
    static const char *const keys[3] = {"prompt", "chosen", "rejected"};
    const json_t *v[3];
    for (int i = 0; i < 3; i++)
        v[i] = json_object_get(root, keys[i]);
    for (int i = 1; i < 3; i++)
        if (!v[i])
            return DL_FAIL(DL_ERR_FORMAT, "missing \"%s\" (each line needs \"chosen\" and \"rejected\", and "
                                          "\"prompt\" unless they are message lists)", keys[i]);
    int chat = json_is_array(v[1]) || json_is_array(v[2]);
    if (!chat) {
        if (!v[0])
            return DL_FAIL(DL_ERR_FORMAT, "missing \"prompt\" (each line needs \"prompt\", \"chosen\" and "
                                          "\"rejected\")");
        for (int i = 0; i < 3; i++) {
            if (!json_is_string(v[i]))
                return DL_FAIL(DL_ERR_FORMAT, "\"%s\" must be a string, not %s", keys[i], kind_of(v[i]));
            if (i > 0 && json_string_length(v[i]) == 0)
                return DL_FAIL(DL_ERR_FORMAT, "\"%s\" is empty", keys[i]);
            DL_CHECK(put(&t[i], json_string_value(v[i]), json_string_length(v[i])));
        }
        return DL_OK;
    }
    for (int i = 1; i < 3; i++) {
        if (!json_is_array(v[i]))
            return DL_FAIL(DL_ERR_FORMAT, "\"%s\" must be a message list like \"%s\", not %s", keys[i],
                           keys[3 - i], kind_of(v[i]));
        DL_CHECK(check_messages(v[i], keys[i]));
    }
    size_t from = 0;
    if (v[0] && !json_is_null(v[0])) {
        if (json_is_string(v[0])) {
            DL_CHECK(put(&t[0], json_string_value(v[0]), json_string_length(v[0])));
        } else if (json_is_array(v[0])) {
            if (json_array_size(v[0]) > 0)
                DL_CHECK(check_messages(v[0], "prompt"));
            DL_CHECK(render(v[0], 0, &t[0]));
        } else {
            return DL_FAIL(DL_ERR_FORMAT, "\"prompt\" must be a string or a message list, not %s", kind_of(v[0]));
        }
    } else {
        /* implicit prompt: the shared prefix, leaving each side at least one message */
        size_t nc = json_array_size(v[1]), nr = json_array_size(v[2]);
        while (from + 1 < nc && from + 1 < nr && same_message(json_array_get(v[1], from), json_array_get(v[2], from)))
            from++;
        if (nc == nr && from + 1 == nc && same_message(json_array_get(v[1], from), json_array_get(v[2], from)))
            return DL_FAIL(DL_ERR_FORMAT, "\"chosen\" and \"rejected\" are the same conversation");
        DL_CHECK(render_range(v[1], 0, from, &t[0]));
    }
    DL_CHECK(render(v[1], from, &t[1]));
    DL_CHECK(render(v[2], from, &t[2]));
    return DL_OK;
}

dl_status dl_parse_pair_json_tok(const char *line, size_t len, dl_tokenizer *tok, dl_pref_pair *pair) {
    DL_REQUIRE(pair && (line || len == 0), DL_ERR_INVALID, "parsing a pair: NULL argument");
    pair->prompt.len = pair->chosen.len = pair->rejected.len = 0;
    json_error_t err;
    json_t *root = json_loadb(line ? line : "", len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return DL_FAIL(DL_ERR_FORMAT, "column %d: invalid JSON: %s", err.column > 0 ? err.column : 1, err.text);
    text_buf t[3] = {{0}, {0}, {0}};
    dl_status s = parse_root(root, t);
    json_decref(root);
    if (s == DL_OK)
        s = encode(tok, t[0].data ? t[0].data : "", t[0].len, &pair->prompt);
    if (s == DL_OK)
        s = encode(tok, t[1].data ? t[1].data : "", t[1].len, &pair->chosen);
    if (s == DL_OK)
        s = encode(tok, t[2].data ? t[2].data : "", t[2].len, &pair->rejected);
    if (s == DL_OK && (pair->chosen.len == 0 || pair->rejected.len == 0))
        s = DL_FAIL(DL_ERR_FORMAT, "\"%s\" encodes to no tokens", pair->chosen.len == 0 ? "chosen" : "rejected");
    for (int i = 0; i < 3; i++)
        free(t[i].data);
    if (s != DL_OK)
        pair->prompt.len = pair->chosen.len = pair->rejected.len = 0;
    return s;
}

dl_status dl_parse_pair_json(const char *line, size_t len, dl_pref_pair *pair) {
    return dl_parse_pair_json_tok(line, len, NULL, pair);
}
