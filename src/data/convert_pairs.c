/* convert_pairs.c — the JSONL preference-pair parser: {"prompt": ..., "chosen": ..., "rejected": ...} per line.
 *
 * jansson parses the line (strictly: one JSON value, nothing after it, duplicate keys refused, since a second
 * "chosen" silently replacing the first is exactly the kind of data bug that flips a preference). The three strings
 * become byte-level tokens, their UTF-8 bytes, the same tokenizer the text converter uses, so a policy trained on
 * converted text reads the pairs with the same vocabulary. */
#include <jansson.h>
#include <string.h>

#include "data/convert.h"

static dl_status member(const json_t *root, const char *key, int allow_empty, dl_i32_array *out) {
    const json_t *v = json_object_get(root, key);
    if (!v)
        return DL_FAIL(DL_ERR_FORMAT, "missing \"%s\" (each line needs \"prompt\", \"chosen\" and \"rejected\")", key);
    if (!json_is_string(v)) {
        dl_status s = DL_FAIL(DL_ERR_FORMAT, "\"%s\" must be a string, not %s", key,
                              json_is_array(v) ? "an array" : json_is_object(v) ? "an object" : "a number or literal");
        if (json_is_array(v))
            dl_error_hint("chat-format message lists are not supported; flatten them into text first");
        return s;
    }
    size_t n = json_string_length(v);
    if (n == 0 && !allow_empty)
        return DL_FAIL(DL_ERR_FORMAT, "\"%s\" is empty", key);
    return dl_tokenize_bytes(json_string_value(v), n, out);
}

dl_status dl_parse_pair_json(const char *line, size_t len, dl_pref_pair *pair) {
    DL_REQUIRE(pair && (line || len == 0), DL_ERR_INVALID, "parsing a pair: NULL argument");
    pair->prompt.len = pair->chosen.len = pair->rejected.len = 0;
    json_error_t err;
    json_t *root = json_loadb(line ? line : "", len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return DL_FAIL(DL_ERR_FORMAT, "column %d: invalid JSON: %s", err.column > 0 ? err.column : 1, err.text);
    dl_status s = DL_OK;
    if (!json_is_object(root))
        s = DL_FAIL(DL_ERR_FORMAT, "expected a JSON object {\"prompt\", \"chosen\", \"rejected\"}");
    if (s == DL_OK)
        s = member(root, "prompt", 1, &pair->prompt);
    if (s == DL_OK)
        s = member(root, "chosen", 0, &pair->chosen);
    if (s == DL_OK)
        s = member(root, "rejected", 0, &pair->rejected);
    json_decref(root);
    if (s != DL_OK)
        pair->prompt.len = pair->chosen.len = pair->rejected.len = 0;
    return s;
}
