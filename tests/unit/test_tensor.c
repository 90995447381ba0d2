/* test_tensor.c — tensor views and the parameter table: layout, lookup, byte ranges, validation and printing. */
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h"

/* Fails unless the recorded error message contains `needle`. */
static void assert_error_mentions(const char *needle) {
    const char *msg = dl_error_message();
    if (!strstr(msg, needle))
        DL_TEST_FAIL("error message \"%s\" does not mention \"%s\"", msg, needle);
}

static void dtypes_have_sizes_and_names(void **state) {
    (void)state;
    assert_int_equal(dl_dtype_size(DL_F32), 4);
    assert_int_equal(dl_dtype_size(DL_BF16), 2);
    assert_int_equal(dl_dtype_size(DL_I32), 4);
    assert_int_equal(dl_dtype_size((dl_dtype)7), 0);
    assert_string_equal(dl_dtype_name(DL_F32), "f32");
    assert_string_equal(dl_dtype_name(DL_BF16), "bf16");
    assert_string_equal(dl_dtype_name(DL_I32), "i32");
    assert_string_equal(dl_dtype_name((dl_dtype)7), "?");
}

static void init_computes_numel_and_ranges(void **state) {
    (void)state;
    dl_tensor t;
    assert_int_equal(dl_tensor_init(&t, "h.3.attn.qkv.weight", DL_BF16, 3, DL_SHAPE(2, 3, 5), 10), DL_OK);
    assert_string_equal(t.name, "h.3.attn.qkv.weight");
    assert_int_equal(t.ndim, 3);
    assert_int_equal(t.numel, 30);
    assert_int_equal(t.shape[3], 0);
    assert_int_equal(dl_tensor_bytes(&t), 60);
    dl_byte_range r = dl_tensor_byte_range(&t);
    assert_int_equal(r.begin, 20);
    assert_int_equal(r.end, 80);
    char buf[64];
    assert_string_equal(dl_tensor_shape_str(&t, buf, sizeof buf), "[2, 3, 5]");
    /* A cut shape string stays terminated inside its buffer. */
    char small[6];
    memset(small, 'x', sizeof small);
    dl_tensor_shape_str(&t, small, sizeof small);
    assert_string_equal(small, "[2, 3");

    /* Zero dims is a scalar of one element. */
    assert_int_equal(dl_tensor_init(&t, "bias0", DL_F32, 0, NULL, 0), DL_OK);
    assert_int_equal(t.numel, 1);
    assert_string_equal(dl_tensor_shape_str(&t, buf, sizeof buf), "[]");

    /* The longest allowed name: 127 characters. */
    char name[DL_TENSOR_NAME_MAX];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_int_equal(dl_tensor_init(&t, name, DL_F32, 1, DL_SHAPE(4), 0), DL_OK);
    assert_string_equal(t.name, name);
}

static void init_rejects_bad_views_naming_them(void **state) {
    (void)state;
    dl_tensor t;
    memset(&t, 0x5a, sizeof t);
    dl_tensor before = t;

    assert_int_equal(dl_tensor_init(&t, "wpe", DL_F32, 2, DL_SHAPE(1024, 0), 0), DL_ERR_INVALID);
    assert_error_mentions("tensor wpe: dim 1 is 0");
    assert_int_equal(dl_tensor_init(&t, "h.0.mlp", DL_F32, 5, DL_SHAPE(1, 2, 3, 4, 5), 0), DL_ERR_INVALID);
    assert_error_mentions("tensor h.0.mlp: 5 dims");
    assert_int_equal(dl_tensor_init(&t, "neg", DL_F32, -1, NULL, 0), DL_ERR_INVALID);
    assert_error_mentions("tensor neg: -1 dims");
    assert_int_equal(dl_tensor_init(&t, "huge", DL_F32, 2, DL_SHAPE(SIZE_MAX / 2, 3), 0), DL_ERR_INVALID);
    assert_error_mentions("tensor huge: element count overflows");
    /* numel fits but its bytes do not. */
    assert_int_equal(dl_tensor_init(&t, "wide", DL_F32, 1, DL_SHAPE(SIZE_MAX / 2), 0), DL_ERR_INVALID);
    assert_error_mentions("tensor wide: offset");
    assert_int_equal(dl_tensor_init(&t, "late", DL_F32, 1, DL_SHAPE(8), SIZE_MAX - 4), DL_ERR_INVALID);
    assert_error_mentions("tensor late:");
    assert_int_equal(dl_tensor_init(&t, "typed", (dl_dtype)9, 1, DL_SHAPE(8), 0), DL_ERR_INVALID);
    assert_error_mentions("tensor typed: unknown dtype 9");
    assert_int_equal(dl_tensor_init(&t, "noshape", DL_F32, 2, NULL, 0), DL_ERR_INVALID);
    assert_error_mentions("tensor noshape");
    assert_int_equal(dl_tensor_init(&t, "", DL_F32, 1, DL_SHAPE(8), 0), DL_ERR_INVALID);
    assert_error_mentions("empty name");
    assert_int_equal(dl_tensor_init(&t, NULL, DL_F32, 1, DL_SHAPE(8), 0), DL_ERR_INVALID);
    assert_int_equal(dl_tensor_init(&t, "tab\there", DL_F32, 1, DL_SHAPE(8), 0), DL_ERR_INVALID);
    assert_error_mentions("tensor tab?here: name has a non-printable character at position 3");

    char name[DL_TENSOR_NAME_MAX + 1];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_int_equal(dl_tensor_init(&t, name, DL_F32, 1, DL_SHAPE(8), 0), DL_ERR_INVALID);
    assert_error_mentions("name longer than 127 characters");
    assert_error_mentions("nnnnnnnnnn...");

    /* Nothing was written on any failure. */
    assert_memory_equal(&t, &before, sizeof t);
    dl_error_clear();
}

/* The layout of a small GPT-like parameter list, packed: offsets are running sums. */
static void table_assigns_contiguous_offsets(void **state) {
    (void)state;
    dl_tensor_table table;
    assert_int_equal(dl_tensor_table_init(&table, DL_F32, 1), DL_OK);
    size_t idx = 99;
    assert_int_equal(dl_tensor_table_add(&table, "wte", 2, DL_SHAPE(50, 8), &idx), DL_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(dl_tensor_table_add(&table, "h.0.ln1.weight", 1, DL_SHAPE(8), &idx), DL_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(dl_tensor_table_add(&table, "h.0.attn.qkv.weight", 2, DL_SHAPE(8, 24), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "scalar", 0, NULL, NULL), DL_OK);
    assert_int_equal(table.count, 4);
    const size_t want_offsets[] = {0, 400, 408, 600};
    for (size_t i = 0; i < table.count; i++) {
        const dl_tensor *t = dl_tensor_table_at(&table, i);
        assert_non_null(t);
        assert_int_equal(t->offset, want_offsets[i]);
        assert_int_equal(t->dtype, DL_F32);
    }
    assert_null(dl_tensor_table_at(&table, 4));
    assert_int_equal(dl_tensor_table_numel(&table), 601);
    assert_int_equal(dl_tensor_table_bytes(&table), 2404);
    dl_byte_range r;
    assert_int_equal(dl_tensor_table_byte_range(&table, 2, &r), DL_OK);
    assert_int_equal(r.begin, 408 * 4);
    assert_int_equal(r.end, 600 * 4);
    assert_int_equal(dl_tensor_table_byte_range(&table, 4, &r), DL_ERR_INVALID);
    assert_error_mentions("tensor index 4 out of range");
    dl_error_clear();
    dl_tensor_table_free(&table);
    assert_int_equal(table.count, 0);
    assert_null(table.tensors);
    dl_tensor_table_free(&table); /* twice is harmless */
}

/* With alignment N every view starts at a multiple of N elements and padding lies between views only. */
static void table_aligns_each_view(void **state) {
    (void)state;
    dl_tensor_table table;
    assert_int_equal(dl_tensor_table_init(&table, DL_BF16, 16), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "a", 1, DL_SHAPE(5), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "b", 2, DL_SHAPE(4, 4), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "c", 1, DL_SHAPE(1), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_find(&table, "a")->offset, 0);
    assert_int_equal(dl_tensor_table_find(&table, "b")->offset, 16);
    assert_int_equal(dl_tensor_table_find(&table, "c")->offset, 32);
    assert_int_equal(dl_tensor_table_numel(&table), 33);
    assert_int_equal(dl_tensor_table_bytes(&table), 66);
    dl_tensor_table_free(&table);

    /* Alignment that is not a power of two works too. */
    assert_int_equal(dl_tensor_table_init(&table, DL_F32, 3), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "a", 1, DL_SHAPE(4), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "b", 1, DL_SHAPE(4), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_find(&table, "b")->offset, 6);
    dl_tensor_table_free(&table);

    assert_int_equal(dl_tensor_table_init(&table, DL_F32, 0), DL_ERR_INVALID);
    assert_error_mentions("alignment");
    assert_int_equal(dl_tensor_table_init(&table, (dl_dtype)5, 1), DL_ERR_INVALID);
    dl_error_clear();
}

/* Many views: every name is found at its own index (the index survives rehashing), missing names are not. */
static void table_finds_many_names(void **state) {
    (void)state;
    dl_tensor_table table;
    assert_int_equal(dl_tensor_table_init(&table, DL_F32, 4), DL_OK);
    enum { LAYERS = 300 };
    static const char *parts[] = {"ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.proj.weight", "mlp.fc.weight"};
    char name[64];
    size_t n = 0;
    for (int l = 0; l < LAYERS; l++)
        for (size_t p = 0; p < 5; p++) {
            snprintf(name, sizeof name, "h.%d.%s", l, parts[p]);
            size_t idx;
            assert_int_equal(dl_tensor_table_add(&table, name, 2, DL_SHAPE(p + 1, (size_t)l + 1), &idx), DL_OK);
            assert_int_equal(idx, n++);
        }
    assert_int_equal(table.count, LAYERS * 5);
    n = 0;
    for (int l = 0; l < LAYERS; l++)
        for (size_t p = 0; p < 5; p++) {
            snprintf(name, sizeof name, "h.%d.%s", l, parts[p]);
            const dl_tensor *t = dl_tensor_table_find(&table, name);
            if (!t || (size_t)(t - table.tensors) != n)
                DL_TEST_FAIL("%s not found at index %zu", name, n);
            assert_int_equal(t->shape[0], p + 1);
            assert_int_equal(t->shape[1], (size_t)l + 1);
            n++;
        }
    assert_null(dl_tensor_table_find(&table, "h.300.ln1.weight"));
    assert_null(dl_tensor_table_find(&table, "h.0.ln1"));
    assert_null(dl_tensor_table_find(&table, NULL));
    const dl_tensor *got = NULL;
    assert_int_equal(dl_tensor_table_get(&table, "h.7.mlp.fc.weight", &got), DL_OK);
    assert_string_equal(got->name, "h.7.mlp.fc.weight");
    assert_int_equal(dl_tensor_table_get(&table, "h.7.mlp.proj.weight", &got), DL_ERR_INVALID);
    assert_error_mentions("no tensor named h.7.mlp.proj.weight (the table has 1500)");
    assert_error_mentions("(hint: ");
    dl_error_clear();

    /* Views tile the buffer in order: each starts at the first aligned offset after the previous one. */
    size_t end = 0;
    for (size_t i = 0; i < table.count; i++) {
        const dl_tensor *t = dl_tensor_table_at(&table, i);
        assert_int_equal(t->offset, (end + 3) / 4 * 4);
        end = t->offset + t->numel;
    }
    assert_int_equal(dl_tensor_table_numel(&table), end);
    dl_tensor_table_free(&table);

    /* An empty table finds nothing. */
    assert_int_equal(dl_tensor_table_init(&table, DL_F32, 1), DL_OK);
    assert_null(dl_tensor_table_find(&table, "wte"));
    dl_tensor_table_free(&table);
}

static void table_rejects_duplicates_and_bad_views_unchanged(void **state) {
    (void)state;
    dl_tensor_table table;
    assert_int_equal(dl_tensor_table_init(&table, DL_F32, 8), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "wte", 2, DL_SHAPE(10, 4), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "lm_head", 1, DL_SHAPE(3), NULL), DL_OK);
    size_t count = table.count, numel = table.numel;

    assert_int_equal(dl_tensor_table_add(&table, "wte", 1, DL_SHAPE(4), NULL), DL_ERR_INVALID);
    assert_error_mentions("tensor wte: duplicate name (already view 0 of 2)");
    assert_int_equal(dl_tensor_table_add(&table, "ln_f", 2, DL_SHAPE(0, 4), NULL), DL_ERR_INVALID);
    assert_error_mentions("tensor ln_f: dim 0 is 0");
    assert_int_equal(dl_tensor_table_add(&table, "attn", 5, DL_SHAPE(1, 1, 1, 1, 1), NULL), DL_ERR_INVALID);
    assert_error_mentions("tensor attn: 5 dims");
    /* Fits in numel on its own but not after the views already there. */
    assert_int_equal(dl_tensor_table_add(&table, "giant", 1, DL_SHAPE(SIZE_MAX / 4 - 8), NULL), DL_ERR_INVALID);
    assert_error_mentions("tensor giant:");
    assert_int_equal(table.count, count);
    assert_int_equal(table.numel, numel);
    assert_int_equal(dl_tensor_table_find(&table, "wte")->numel, 40);
    assert_null(dl_tensor_table_find(&table, "giant"));

    /* The table still works after failures. */
    assert_int_equal(dl_tensor_table_add(&table, "ln_f", 1, DL_SHAPE(4), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_find(&table, "ln_f")->offset, 48);
    dl_tensor_table_free(&table);

    /* An alignment so large that the second view's aligned bytes overflow size_t. */
    assert_int_equal(dl_tensor_table_init(&table, DL_BF16, SIZE_MAX / 2), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "first", 1, DL_SHAPE(1), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "second", 1, DL_SHAPE(1), NULL), DL_ERR_INVALID);
    assert_error_mentions("tensor second:");
    dl_tensor_table_free(&table);
    dl_error_clear();
}

/* Buckets and ZeRO slices ask which views a byte range touches. */
static void overlapping_finds_views_of_a_range(void **state) {
    (void)state;
    dl_tensor_table table;
    assert_int_equal(dl_tensor_table_init(&table, DL_F32, 4), DL_OK);
    /* Byte ranges: a [0,12) pad [12,16) b [16,48) c [48,52) pad [52,64) d [64,80). */
    assert_int_equal(dl_tensor_table_add(&table, "a", 1, DL_SHAPE(3), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "b", 1, DL_SHAPE(8), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "c", 1, DL_SHAPE(1), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "d", 1, DL_SHAPE(4), NULL), DL_OK);
    static const struct {
        size_t begin, end, first, count;
    } cases[] = {
        {0, 80, 0, 4},   /* everything */
        {0, 1, 0, 1},    /* one byte of a */
        {12, 16, 1, 0},  /* padding only */
        {11, 17, 0, 2},  /* the tail of a, padding, the head of b */
        {16, 48, 1, 1},  /* exactly b */
        {47, 65, 1, 3},  /* b, c and d */
        {52, 64, 3, 0},  /* padding before d */
        {80, 100, 4, 0}, /* past the end */
        {20, 20, 1, 0},  /* empty */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t first = 99, count = 99;
        dl_byte_range r = {cases[i].begin, cases[i].end};
        assert_int_equal(dl_tensor_table_overlapping(&table, r, &first, &count), DL_OK);
        if (first != cases[i].first || count != cases[i].count)
            DL_TEST_FAIL("[%zu, %zu): got first %zu count %zu, want %zu %zu", r.begin, r.end, first, count,
                         cases[i].first, cases[i].count);
    }
    size_t first, count;
    dl_byte_range backwards = {10, 5};
    assert_int_equal(dl_tensor_table_overlapping(&table, backwards, &first, &count), DL_ERR_INVALID);
    assert_error_mentions("[10, 5)");
    dl_error_clear();
    dl_tensor_table_free(&table);
}

static void print_lists_every_view(void **state) {
    (void)state;
    dl_tensor_table table;
    assert_int_equal(dl_tensor_table_init(&table, DL_F32, 1), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "wte", 2, DL_SHAPE(65, 64), NULL), DL_OK);
    assert_int_equal(dl_tensor_table_add(&table, "h.0.attn.qkv.weight", 2, DL_SHAPE(64, 192), NULL), DL_OK);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    assert_int_equal(dl_tensor_table_print(&table, out), DL_OK);
    fclose(out);
    /* Header, two views, total. */
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 4);
    const char *row = strstr(text, "h.0.attn.qkv.weight");
    assert_non_null(row);
    assert_non_null(strstr(row, "[64, 192]"));
    assert_non_null(strstr(row, "4160"));  /* offset */
    assert_non_null(strstr(row, "12288")); /* numel */
    assert_non_null(strstr(text, "[65, 64]"));
    assert_non_null(strstr(text, "total: 2 views, 16448 elements, 65792 bytes"));
    free(text);
    dl_tensor_table_free(&table);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dtypes_have_sizes_and_names),
        cmocka_unit_test(init_computes_numel_and_ranges),
        cmocka_unit_test(init_rejects_bad_views_naming_them),
        cmocka_unit_test(table_assigns_contiguous_offsets),
        cmocka_unit_test(table_aligns_each_view),
        cmocka_unit_test(table_finds_many_names),
        cmocka_unit_test(table_rejects_duplicates_and_bad_views_unchanged),
        cmocka_unit_test(overlapping_finds_views_of_a_range),
        cmocka_unit_test(print_lists_every_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
