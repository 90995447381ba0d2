/* convert_text.c — byte-level tokenisation and the text document splitter (see convert.h for the split rules).
 *
 * The splitter is a small state machine fed one line at a time, so a multi-gigabyte corpus streams through in
 * constant memory (one document at a time). In blank mode a document's lines are joined by '\n' and the newline
 * ending the run is dropped together with the blank lines after it: for a file of blank-line separated blocks,
 * joining the documents with "\n\n" and adding the final "\n" gives the file back byte for byte. */
#include <string.h>
#include <stdlib.h>

#include "data/convert.h"

dl_status dl_tokenize_bytes(const void *bytes, size_t len, dl_i32_array *tokens) {
    DL_REQUIRE(tokens && (bytes || len == 0), DL_ERR_INVALID, "dl_tokenize_bytes: NULL argument");
    DL_CHECK(dl_i32_array_reserve(tokens, len));
    const uint8_t *b = bytes;
    for (size_t i = 0; i < len; i++)
        tokens->data[i] = b[i];
    tokens->len = len;
    return DL_OK;
}

int dl_line_is_blank(const char *line, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '\n')
            return 0;
    return 1;
}

void dl_text_splitter_init(dl_text_splitter *s, dl_doc_split mode) {
    memset(s, 0, sizeof *s);
    s->mode = mode;
}

void dl_text_splitter_free(dl_text_splitter *s) {
    if (!s)
        return;
    free(s->doc);
    s->doc = NULL;
    s->len = s->cap = 0;
}

static dl_status append(dl_text_splitter *s, const char *bytes, size_t n) {
    if (n > DL_CONVERT_MAX_DOCUMENT - s->len) {
        dl_status st = DL_FAIL(DL_ERR_UNSUPPORTED, "the document starting at line %llu is longer than %u MiB",
                               (unsigned long long)s->doc_line, DL_CONVERT_MAX_DOCUMENT >> 20);
        dl_error_hint("split it: --doc-split line, or smaller files");
        return st;
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        uint8_t *grown = realloc(s->doc, cap);
        if (!grown)
            return DL_FAIL(DL_ERR_NOMEM, "out of memory collecting a %zu-byte document", s->len + n);
        s->doc = grown;
        s->cap = cap;
    }
    if (n)
        memcpy(s->doc + s->len, bytes, n);
    s->len += n;
    return DL_OK;
}

static dl_status emit(dl_text_splitter *s, dl_doc_sink sink, void *ctx) {
    dl_status st = DL_OK;
    if (s->open && s->len > 0)
        st = sink(ctx, s->doc, s->len, s->doc_line);
    s->open = 0;
    s->len = 0;
    return st;
}

dl_status dl_text_splitter_feed(dl_text_splitter *s, const char *line, size_t len, dl_doc_sink sink, void *ctx) {
    DL_REQUIRE(s && sink && (line || len == 0), DL_ERR_INVALID, "dl_text_splitter_feed: NULL argument");
    s->line++;
    size_t body = len && line[len - 1] == '\n' ? len - 1 : len; /* the line without its newline */
    switch (s->mode) {
    case DL_DOC_SPLIT_FILE:
        if (!s->open) {
            s->open = 1;
            s->doc_line = s->line;
        }
        return append(s, line, len);
    case DL_DOC_SPLIT_LINE:
        if (dl_line_is_blank(line, body))
            return DL_OK;
        s->open = 1;
        s->doc_line = s->line;
        s->len = 0;
        DL_CHECK(append(s, line, body));
        return emit(s, sink, ctx);
    case DL_DOC_SPLIT_BLANK:
        if (dl_line_is_blank(line, body))
            return emit(s, sink, ctx);
        if (s->open) {
            DL_CHECK(append(s, "\n", 1));
        } else {
            s->open = 1;
            s->doc_line = s->line;
        }
        return append(s, line, body);
    }
    return DL_FAIL(DL_ERR_INVALID, "unknown document split mode %d", (int)s->mode);
}

dl_status dl_text_splitter_finish(dl_text_splitter *s, dl_doc_sink sink, void *ctx) {
    DL_REQUIRE(s && sink, DL_ERR_INVALID, "dl_text_splitter_finish: NULL argument");
    dl_status st = emit(s, sink, ctx);
    s->line = 0;
    return st;
}
