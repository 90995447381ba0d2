/* tokenizer_stamp.c — PATH.tokenizer beside a record file: which tokenizer made its tokens (see tokenizer.h).
 * Ids only mean something together with the vocabulary that produced them; a run that reads data made by another
 * tokenizer trains on noise without any error, so the stamp turns that mistake into an exit-2 message. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "data/tokenizer.h"

static char *stamp_path(const char *record_path) { return dl_path_join_suffix(record_path, ".tokenizer"); }

dl_status dl_tokenizer_stamp_write(const char *record_path, const dl_tokenizer *tok) {
    DL_REQUIRE(record_path && tok, DL_ERR_INVALID, "dl_tokenizer_stamp_write: NULL argument");
    char *path = stamp_path(record_path);
    if (!path)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory");
    char hex[17], text[160];
    dl_tokenizer_hash_hex(dl_tokenizer_hash(tok), hex);
    int n = snprintf(text, sizeof text, "{\"kind\": \"%s\", \"hash\": \"%s\", \"vocab_size\": %d}\n",
                     dl_tokenizer_kind_name(tok), hex, (int)dl_tokenizer_vocab_size(tok));
    dl_status s = dl_write_file_atomic(path, text, (size_t)n);
    free(path);
    return s;
}

dl_status dl_tokenizer_stamp_remove(const char *record_path) {
    DL_REQUIRE(record_path, DL_ERR_INVALID, "dl_tokenizer_stamp_remove: NULL argument");
    char *path = stamp_path(record_path);
    if (!path)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory");
    dl_status s = dl_remove_if_exists(path);
    free(path);
    return s;
}

dl_status dl_tokenizer_stamp_read(const char *record_path, uint64_t *hash, int32_t *vocab_size, int *found) {
    DL_REQUIRE(record_path && hash && vocab_size && found, DL_ERR_INVALID, "dl_tokenizer_stamp_read: NULL argument");
    *found = 0;
    *hash = DL_TOKENIZER_BYTES_HASH;
    *vocab_size = 256;
    char *path = stamp_path(record_path);
    if (!path)
        return DL_FAIL(DL_ERR_NOMEM, "out of memory");
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int err = errno;
        dl_status s = err == ENOENT ? DL_OK : DL_FAIL(DL_ERR_IO, "cannot open %s: %s", path, strerror(err));
        free(path);
        return s;
    }
    json_error_t jerr;
    json_t *root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
    fclose(fp);
    dl_status s = DL_OK;
    const char *hex = root ? json_string_value(json_object_get(root, "hash")) : NULL;
    const json_t *vs = root ? json_object_get(root, "vocab_size") : NULL;
    if (!root)
        s = DL_FAIL(DL_ERR_FORMAT, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
    else if (!hex || !json_is_integer(vs) || json_integer_value(vs) <= 0 ||
             json_integer_value(vs) > DL_TOKENIZER_MAX_VOCAB)
        s = DL_FAIL(DL_ERR_FORMAT, "%s: needs a string \"hash\" and a positive integer \"vocab_size\"", path);
    else
        s = dl_tokenizer_parse_hash(hex, hash);
    if (s == DL_OK) {
        *vocab_size = (int32_t)json_integer_value(vs);
        *found = 1;
    } else {
        dl_error_context("%s", path);
        dl_error_hint("rewrite it by converting the data again (dealer data convert --tokenizer ...)");
    }
    json_decref(root);
    free(path);
    return s;
}

dl_status dl_tokenizer_check_data(const char *record_path, const dl_tokenizer *tok, const char *tok_name) {
    DL_REQUIRE(record_path && tok, DL_ERR_INVALID, "dl_tokenizer_check_data: NULL argument");
    uint64_t hash;
    int32_t vocab;
    int found;
    DL_CHECK(dl_tokenizer_stamp_read(record_path, &hash, &vocab, &found));
    if (hash == dl_tokenizer_hash(tok))
        return DL_OK;
    char have[17], want[17];
    dl_tokenizer_hash_hex(hash, have);
    dl_tokenizer_hash_hex(dl_tokenizer_hash(tok), want);
    dl_status s = DL_FAIL(DL_ERR_INVALID, "%s was made with tokenizer %s (%s, vocabulary %d%s) but this run uses "
                                          "tokenizer %s (%s, %s, vocabulary %d)",
                          record_path, have, hash == DL_TOKENIZER_BYTES_HASH ? "byte-level" : "bpe", (int)vocab,
                          found ? "" : ": no .tokenizer stamp beside it", want, tok_name ? tok_name : "?",
                          dl_tokenizer_kind_name(tok), (int)dl_tokenizer_vocab_size(tok));
    dl_error_hint("convert the data again with this tokenizer (dealer data convert --tokenizer ...), or set "
                  "data.tokenizer to the one the data was made with");
    return s;
}
