/* test_ir.c: the foundations of ir/: arena, diagnostics (exact text), tensor
 * type strings, the random number streams and the op table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir.h"
#include "support.h"

/* ---- arena ---------------------------------------------------------------------- */

static void test_arena_alignment(void **state)
{
    Arena *a = ir_arena_new();
    for (size_t size = 1; size < 3000; size += 37) {
        unsigned char *p = ir_alloc(a, size);
        assert_int_equal((uintptr_t)p % 64, 0);
        for (size_t i = 0; i < size; i++)
            assert_int_equal(p[i], 0);
        memset(p, 0xab, size);
    }
    ir_arena_free(a);
}

static void test_arena_big_chunks(void **state)
{
    Arena *a = ir_arena_new();
    size_t before = ir_arena_bytes(a);
    char *small = ir_alloc(a, 16);
    size_t big = (size_t)64 << 20;
    unsigned char *p = ir_alloc(a, big);
    assert_int_equal((uintptr_t)p % 64, 0);
    assert_int_equal(p[0], 0);
    assert_int_equal(p[big - 1], 0);
    p[big - 1] = 7;
    assert_true(ir_arena_bytes(a) >= before + big);
    /* the chunk being filled stays in use after a big request */
    char *small2 = ir_alloc(a, 16);
    assert_int_equal(small2 - small, 64);
    ir_arena_free(a);
}

static void test_arena_many_chunks(void **state)
{
    Arena *a = ir_arena_new();
    char *prev = NULL;
    for (int i = 0; i < 5000; i++) {
        char *p = ir_alloc(a, 1000);
        p[999] = 1;
        assert_ptr_not_equal(p, prev);
        prev = p;
    }
    assert_true(ir_arena_bytes(a) >= 5000u * 1024u);
    ir_arena_free(a);
}

static void test_strings(void **state)
{
    Arena *a = ir_arena_new();
    const char *src = "layer1.0.conv1";
    char *s = ir_strdup(a, src);
    assert_string_equal(s, src);
    assert_ptr_not_equal(s, src);
    char *h = ir_xstrdup(src);
    assert_string_equal(h, src);
    assert_ptr_not_equal(h, src);
    free(h);
    assert_string_equal(ir_strndup(a, "weight.bias", 6), "weight");
    assert_string_equal(ir_strfmt(a, "%s.%d.%s", "layer2", 1, "bn1"), "layer2.1.bn1");
    char *long_str = ir_strfmt(a, "%0500d", 5);
    assert_int_equal(strlen(long_str), 500);
    assert_int_equal(long_str[499], '5');
    ir_arena_free(a);
}

/* ---- diagnostics ---------------------------------------------------------------- */

typedef struct Capture {
    char *buf;
    size_t len;
    Diag d;
} Capture;

static void capture_open(Capture *c)
{
    c->buf = NULL;
    ir_diag_init(&c->d, open_memstream(&c->buf, &c->len));
    assert_non_null(c->d.out);
}

static const char *capture_text(Capture *c)
{
    fflush(c->d.out);
    return c->buf;
}

static void capture_close(Capture *c)
{
    fclose(c->d.out);
    free(c->buf);
    ir_diag_fini(&c->d);
}

static void test_diag_caret(void **state)
{
    Capture c;
    capture_open(&c);
    const char *src = "network m(x: f32[1,1,28,28]) {\n"
                      "  x = relu(dense(flatten(x), 128, in_features=9216) as fc1)\n"
                      "}\n";
    const char *f = ir_diag_add_source(&c.d, "models/m.cnn", src, strlen(src));
    ir_error(&c.d, (SrcLoc){f, 2, 12}, "dense expects %d input features, got %d (64\xc3\x97"
             "5\xc3\x97" "5)", 9216, 1600);
    assert_string_equal(capture_text(&c),
                        "models/m.cnn:2:12: error: dense expects 9216 input features, got 1600 "
                        "(64\xc3\x97" "5\xc3\x97" "5)\n"
                        "    2 |   x = relu(dense(flatten(x), 128, in_features=9216) as fc1)\n"
                        "      |            ^\n");
    assert_int_equal(c.d.nerrors, 1);
    assert_int_equal(c.d.nwarnings, 0);
    capture_close(&c);
}

static void test_diag_levels_and_tabs(void **state)
{
    Capture c;
    capture_open(&c);
    const char *text = "1\n2\n3\n4\n5\n6\n7\n8\n9\n\ty\t= relu(q)\n";
    const char *f = ir_diag_add_source(&c.d, "a.cnn", text, strlen(text));
    ir_warn(&c.d, (SrcLoc){f, 10, 4}, "unused value '%s'", "y");
    ir_note(&c.d, (SrcLoc){f, 1, 1}, "defined here");
    assert_string_equal(capture_text(&c),
                        "a.cnn:10:4: warning: unused value 'y'\n"
                        "   10 | \ty\t= relu(q)\n"
                        "      | \t \t^\n"
                        "a.cnn:1:1: note: defined here\n"
                        "    1 | 1\n"
                        "      | ^\n");
    assert_int_equal(c.d.nerrors, 0);
    assert_int_equal(c.d.nwarnings, 1);
    capture_close(&c);
}

/* A five-digit line number widens the gutter by one. */
static void test_diag_wide_gutter(void **state)
{
    Capture c;
    capture_open(&c);
    size_t len = 12344 * 2 + strlen("\tz = w\r\n");
    char *text = malloc(len + 1);
    for (size_t i = 0; i < 12344; i++)
        memcpy(text + 2 * i, "l\n", 2);
    strcpy(text + 12344 * 2, "\tz = w\r\n");
    const char *f = ir_diag_add_source(&c.d, "big.cnn", text, len);
    free(text);
    ir_error(&c.d, (SrcLoc){f, 12345, 6}, "w is undefined");
    assert_string_equal(capture_text(&c), "big.cnn:12345:6: error: w is undefined\n"
                                          " 12345 | \tz = w\n"
                                          "       | \t    ^\n");
    capture_close(&c);
}

/* A long line is quoted as a 160-column window around the column, with "..."
 * where it is cut, and never splits a UTF-8 sequence. */
static void test_diag_long_line(void **state)
{
    Capture c;
    capture_open(&c);
    enum { N = 1000 };
    char *text = malloc(4 * N + 2);
    for (size_t i = 0; i < N; i++)
        memcpy(text + 4 * i, i == 600 ? "+ y " : "+ x ", 4);
    memcpy(text + 4 * N, "\n", 2);
    const char *f = ir_diag_add_source(&c.d, "long.cnn", text, 4 * N + 1);
    free(text);
    ir_error(&c.d, (SrcLoc){f, 1, 4 * 600 + 3}, "y is undefined");
    const char *out = capture_text(&c);
    char want[512], window[161];
    for (int i = 0; i < 160; i++)
        window[i] = "+ x "[(2322 + i) % 4]; /* the window starts 80 columns before */
    window[160] = 0;
    window[80] = 'y';
    snprintf(want, sizeof want, "long.cnn:1:2403: error: y is undefined\n"
             "    1 | ...%s...\n"
             "      |    %*s^\n", window, 80, "");
    assert_string_equal(out, want);
    capture_close(&c);

    capture_open(&c);
    const char *utf = "\xc3\x97\xc3\x97";
    char *u = malloc(2 * 200 + 1);
    for (size_t i = 0; i < 200; i++)
        memcpy(u + 2 * i, utf, 2);
    const char *g = ir_diag_add_source(&c.d, "u.cnn", u, 2 * 200);
    free(u);
    ir_error(&c.d, (SrcLoc){g, 1, 2 * 100 + 1}, "here");
    out = capture_text(&c);
    const char *bar = strchr(out, '|');
    assert_non_null(bar);
    assert_memory_equal(bar, "| ...\xc3\x97", strlen("| ...\xc3\x97"));
    capture_close(&c);
}

static void test_diag_without_source(void **state)
{
    Capture c;
    capture_open(&c);
    ir_error(&c.d, (SrcLoc){NULL, 0, 0}, "no input file");
    ir_error(&c.d, (SrcLoc){"w.safetensors", 0, 0}, "missing tensor '%s'", "fc.bias");
    ir_error(&c.d, (SrcLoc){"unregistered.cnn", 3, 4}, "bad");
    ir_error(&c.d, (SrcLoc){"unregistered.cnn", 3, 0}, "bad line");
    assert_string_equal(capture_text(&c), "error: no input file\n"
                                          "w.safetensors: error: missing tensor 'fc.bias'\n"
                                          "unregistered.cnn:3:4: error: bad\n"
                                          "unregistered.cnn:3: error: bad line\n");
    assert_int_equal(c.d.nerrors, 4);
    capture_close(&c);
}

/* A message without a file once crashed when any source was registered. */
static void test_diag_no_file_with_sources(void **state)
{
    Capture c;
    capture_open(&c);
    ir_diag_add_source(&c.d, "a.cnn", "x\n", 2);
    ir_error(&c.d, (SrcLoc){NULL, 0, 0}, "no location");
    assert_string_equal(capture_text(&c), "error: no location\n");
    capture_close(&c);
}

static void test_diag_line_out_of_range(void **state)
{
    Capture c;
    capture_open(&c);
    const char *f = ir_diag_add_source(&c.d, "s.cnn", "one\ntwo", 7);
    ir_error(&c.d, (SrcLoc){f, 9, 1}, "past the end");
    ir_error(&c.d, (SrcLoc){f, 2, 3}, "last line");
    assert_string_equal(capture_text(&c), "s.cnn:9:1: error: past the end\n"
                                          "s.cnn:2:3: error: last line\n"
                                          "    2 | two\n"
                                          "      |   ^\n");
    capture_close(&c);
}

static void test_diag_source_is_copied(void **state)
{
    Capture c;
    capture_open(&c);
    char text[] = "abc def\n";
    char name[] = "copy.cnn";
    const char *f = ir_diag_add_source(&c.d, name, text, strlen(text));
    memset(text, 'x', strlen(text));
    memset(name, 'y', strlen(name));
    ir_error(&c.d, (SrcLoc){f, 1, 5}, "here");
    assert_string_equal(capture_text(&c), "copy.cnn:1:5: error: here\n"
                                          "    1 | abc def\n"
                                          "      |     ^\n");
    capture_close(&c);
}

static void test_diag_max_errors(void **state)
{
    Capture c;
    capture_open(&c);
    c.d.max_errors = 2;
    for (int i = 1; i <= 5; i++)
        ir_error(&c.d, (SrcLoc){NULL, 0, 0}, "e%d", i);
    ir_warn(&c.d, (SrcLoc){NULL, 0, 0}, "late warning");
    assert_string_equal(capture_text(&c), "error: e1\nerror: e2\ntoo many errors; stopping\n");
    assert_int_equal(c.d.nerrors, 5);
    assert_int_equal(c.d.nwarnings, 1);
    capture_close(&c);
}

static void test_diag_unlimited(void **state)
{
    Capture c;
    capture_open(&c);
    for (int i = 0; i < 100; i++)
        ir_error(&c.d, (SrcLoc){NULL, 0, 0}, "e");
    const char *t = capture_text(&c);
    assert_int_equal(strlen(t), 100 * strlen("error: e\n"));
    assert_int_equal(c.d.nerrors, 100);
    capture_close(&c);
}

/* One mistake met again (a loop, a block called twice) is printed once with
 * its notes, but still counted; a prompt forgets between texts. */
static void test_diag_repeated(void **state)
{
    Capture c;
    capture_open(&c);
    c.d.max_errors = 2;
    for (int i = 0; i < 4; i++) {
        ir_error(&c.d, (SrcLoc){"a.cnn", 3, 5}, "undefined name '%s'", "q");
        ir_note(&c.d, (SrcLoc){"a.cnn", 9, 1}, "called from here");
    }
    ir_error(&c.d, (SrcLoc){"a.cnn", 3, 6}, "undefined name '%s'", "q");
    ir_diag_forget(&c.d);
    ir_error(&c.d, (SrcLoc){"a.cnn", 3, 5}, "undefined name 'q'");
    assert_string_equal(capture_text(&c), "a.cnn:3:5: error: undefined name 'q'\n"
                                          "a.cnn:9:1: note: called from here\n"
                                          "a.cnn:3:6: error: undefined name 'q'\n"
                                          "too many errors; stopping\n");
    assert_int_equal(c.d.nerrors, 6);
    capture_close(&c);
}

static void test_diag_utf8_caret(void **state)
{
    Capture c;
    capture_open(&c);
    const char *text = "# 3\xc3\x97" "3 conv\nx\n";
    const char *f = ir_diag_add_source(&c.d, "u.cnn", text, strlen(text));
    ir_error(&c.d, (SrcLoc){f, 1, 7}, "col after the multiplication sign");
    assert_string_equal(capture_text(&c), "u.cnn:1:7: error: col after the multiplication sign\n"
                                          "    1 | # 3\xc3\x97" "3 conv\n"
                                          "      |      ^\n");
    capture_close(&c);
}

/* ---- types ---------------------------------------------------------------------- */

static void test_type_strings(void **state)
{
    char buf[128];
    int64_t d4[] = {1, 3, 224, 224};
    TensorType t = ir_type_f32(4, d4);
    assert_string_equal(ir_type_str(&t, buf, sizeof buf), "f32[1,3,224,224]");
    assert_int_equal(ir_numel(&t), 3 * 224 * 224);
    t.layout = LAYOUT_NCHWC;
    t.block = 16;
    assert_string_equal(ir_type_str(&t, buf, sizeof buf), "f32[1,3,224,224]@nchw16c");
    t.layout = LAYOUT_NHWC;
    t.block = 0;
    assert_string_equal(ir_type_str(&t, buf, sizeof buf), "f32[1,3,224,224]@nhwc");
    TensorType s = ir_type_f32(0, NULL);
    assert_string_equal(ir_type_str(&s, buf, sizeof buf), "f32[]");
    assert_int_equal(ir_numel(&s), 1);
    char small[8];
    assert_string_equal(ir_type_str(&t, small, sizeof small), "f32[1,3");
}

static void test_dims_strings(void **state)
{
    char buf[64];
    int64_t d[] = {1, 64, 5, 5};
    TensorType t = ir_type_f32(4, d);
    assert_string_equal(ir_dims_str(&t, 1, buf, sizeof buf), "64\xc3\x97" "5\xc3\x97" "5");
    assert_string_equal(ir_dims_str(&t, 0, buf, sizeof buf),
                        "1\xc3\x97" "64\xc3\x97" "5\xc3\x97" "5");
    assert_string_equal(ir_dims_str(&t, 3, buf, sizeof buf), "5");
    assert_string_equal(ir_dims_str(&t, 4, buf, sizeof buf), "");
}

static void test_type_eq_and_dtypes(void **state)
{
    int64_t a[] = {2, 3}, b[] = {2, 4};
    TensorType x = ir_type_f32(2, a), y = ir_type_f32(2, a), z = ir_type_f32(2, b);
    assert_true(ir_type_eq(&x, &y));
    assert_false(ir_type_eq(&x, &z));
    y.layout = LAYOUT_NHWC;
    assert_false(ir_type_eq(&x, &y));
    y = x;
    y.dtype = DT_F16;
    assert_false(ir_type_eq(&x, &y));
    assert_string_equal(ir_dtype_name(DT_F32), "f32");
    assert_string_equal(ir_dtype_name(DT_BF16), "bf16");
    assert_int_equal(ir_dtype_size(DT_F32), 4);
    assert_int_equal(ir_dtype_size(DT_F16), 2);
    assert_int_equal(ir_dtype_size(DT_I64), 8);
}

/* Element counts are computed without overflow and bounded by IR_MAX_NUMEL. */
static void test_numel_checked(void **state)
{
    (void)state;
    const int64_t G = (int64_t)1 << 32, T = (int64_t)1 << 62;
    assert_int_equal(ir_numel_checked(0, NULL), 1);
    assert_int_equal(ir_numel_checked(2, (int64_t[]){2, 3}), 6);
    assert_int_equal(ir_numel_checked(1, (int64_t[]){IR_MAX_NUMEL}), IR_MAX_NUMEL);
    assert_int_equal(ir_numel_checked(4, (int64_t[]){1, 64, 65536, 65536}), IR_MAX_NUMEL);
    assert_int_equal(ir_numel_checked(1, (int64_t[]){IR_MAX_NUMEL + 1}), -1);
    assert_int_equal(ir_numel_checked(4, (int64_t[]){1, 64, 65536, 65537}), -1);
    /* 2^64 and 3 × 2^124 wrap to 0 and to a small number in int64 */
    assert_int_equal(ir_numel_checked(4, (int64_t[]){1, 1, G, G}), -1);
    assert_int_equal(ir_numel_checked(3, (int64_t[]){3, T, T}), -1);
    assert_int_equal(ir_numel_checked(4, (int64_t[]){1, 3, G, G}), -1);
    assert_int_equal(ir_numel_checked(2, (int64_t[]){T, 0}), 0);
    assert_int_equal(ir_numel_checked(2, (int64_t[]){-2, 3}), -1);
    assert_int_equal(ir_numel_checked(2, (int64_t[]){-1, -1}), -1);
    double n = ir_numel_approx(4, (int64_t[]){1, 3, G, G});
    assert_true(n > 5.53e19 && n < 5.54e19);
    assert_int_equal(ir_mul_sat(3, 4), 12);
    assert_int_equal(ir_mul_sat(0, INT64_MAX), 0);
    assert_int_equal(ir_mul_sat(G, G), INT64_MAX);
    assert_int_equal(ir_mul_sat(INT64_MAX, 2), INT64_MAX);
    TensorType t = ir_type_f32(4, (int64_t[]){1, 64, 65536, 65536});
    assert_int_equal(ir_numel(&t), IR_MAX_NUMEL);
}

/* ---- random numbers ------------------------------------------------------------- */

static void test_rng_determinism(void **state)
{
    Rng a = ir_rng(42, "conv1.weight"), b = ir_rng(42, "conv1.weight");
    Rng c = ir_rng(43, "conv1.weight"), e = ir_rng(42, "conv1.bias");
    uint64_t va = ir_rng_next(&a);
    assert_true(va == ir_rng_next(&b));
    assert_true(va != ir_rng_next(&c));
    assert_true(va != ir_rng_next(&e));
    /* pinned values: the streams must not change across platforms or releases */
    Rng z = {0};
    assert_true(ir_rng_next(&z) == 0xe220a8397b1dcdafull);
    assert_true(ir_rng_next(&z) == 0x6e789e6aa1b965f4ull);
}

static void test_rng_uniform_range(void **state)
{
    Rng r = ir_rng(7, "uniform");
    double sum = 0, lo = 1, hi = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        double u = ir_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    /* mean of n uniforms has sd 0.29/sqrt(n) ~ 0.0009; allow 5 sd */
    assert_true(sum / n > 0.5 - 0.0046 && sum / n < 0.5 + 0.0046);
    assert_true(lo < 0.001 && hi > 0.999);
}

static void test_rng_normal_moments(void **state)
{
    Rng r = ir_rng(1, "normal");
    double sum = 0, sq = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        double x = ir_rng_normal(&r);
        assert_true(x == x && x > -10 && x < 10);
        sum += x;
        sq += x * x;
    }
    double mean = sum / n, var = sq / n - mean * mean;
    assert_true(mean > -0.016 && mean < 0.016); /* 5 sd of the mean */
    assert_true(var > 0.978 && var < 1.022);    /* 5 sd of the variance */
}

/* ---- op table ------------------------------------------------------------------- */

static void test_op_table(void **state)
{
    assert_int_equal(ir_op_from_name("conv2d"), OP_CONV2D);
    assert_int_equal(ir_op_from_name("adaptive_avgpool"), OP_ADAPTIVE_AVGPOOL);
    assert_int_equal(ir_op_from_name("dropout"), OP_DROPOUT);
    assert_int_equal(ir_op_from_name("convolution"), OP_COUNT);
    assert_int_equal(ir_op_from_name(""), OP_COUNT);
    for (int i = 0; i < OP_COUNT; i++) {
        assert_non_null(ir_ops[i].name);
        assert_int_equal(ir_op_from_name(ir_ops[i].name), i);
    }
    assert_int_equal(ir_ops[OP_CONV2D].min_inputs, 2);
    /* x, weight, bias, and a fused residual */
    assert_int_equal(ir_ops[OP_CONV2D].max_inputs, 4);
    assert_int_equal(ir_ops[OP_DENSE].max_inputs, 4);
    assert_int_equal(ir_ops[OP_DENSE].attrs, AK_DENSE);
    assert_int_equal(ir_op_from_name("reorder"), OP_REORDER);
    assert_int_equal(ir_ops[OP_REORDER].fusion, FC_INJECTIVE);
    assert_int_equal(ir_ops[OP_CONCAT].max_inputs, -1);
    assert_int_equal(ir_ops[OP_CONV2D].fusion, FC_OUT_FUSABLE);
    assert_int_equal(ir_ops[OP_MAXPOOL].attrs, AK_POOL);
}

static const AttrField *field(AttrKind k, const char *name)
{
    for (int32_t i = 0; i < ir_nattr_fields; i++)
        if (ir_attr_fields[i].kind == k && strcmp(ir_attr_fields[i].name, name) == 0)
            return &ir_attr_fields[i];
    return NULL;
}

static void test_attr_fields(void **state)
{
    const AttrField *pad = field(AK_CONV, "pad");
    assert_non_null(pad);
    assert_int_equal(pad->count, 4);
    assert_int_equal(pad->type, AF_INT);
    assert_int_equal(pad->offset, offsetof(Attrs, conv.pad));
    assert_int_equal(field(AK_POOL, "ceil_mode")->type, AF_BOOL);
    assert_int_equal(field(AK_BN, "eps")->offset, offsetof(Attrs, bn.eps));
    assert_int_equal(field(AK_CLIP, "hi")->offset, offsetof(Attrs, clip.hi));
    assert_int_equal(field(AK_ADAPTIVE, "out")->count, 2);
    assert_non_null(field(AK_LEAKY, "alpha"));
    assert_non_null(field(AK_DROPOUT, "p"));
    assert_non_null(field(AK_AXIS, "axis"));
    assert_null(field(AK_CONV, "ceil_mode"));
    /* the epilogue: optional fields of conv2d and dense */
    assert_int_equal(field(AK_CONV, "act")->type, AF_ACT);
    assert_true(field(AK_CONV, "act")->optional);
    assert_false(field(AK_CONV, "groups")->optional);
    assert_int_equal(field(AK_CONV, "residual")->offset, offsetof(Attrs, conv.epi.residual));
    assert_int_equal(field(AK_DENSE, "post_b")->offset, offsetof(Attrs, dense.epi.post_b));
    assert_int_equal(field(AK_DENSE, "post")->type, AF_ACT);
    /* every kind with attributes has at least one field */
    for (int k = AK_CONV; k <= AK_DENSE; k++) {
        int n = 0;
        for (int32_t i = 0; i < ir_nattr_fields; i++)
            n += ir_attr_fields[i].kind == (AttrKind)k;
        assert_true(n > 0);
    }
}

static void test_act_names(void **state)
{
    assert_string_equal(ir_act_name(OP_NO_ACT), "none");
    assert_string_equal(ir_act_name(OP_RELU), "relu");
    assert_string_equal(ir_act_name(OP_CLIP), "clip");
    assert_string_equal(ir_act_name(OP_LEAKY_RELU), "leaky_relu");
    assert_string_equal(ir_act_name(OP_SILU), "silu");
}

/* Every activation in the table is a one-input elementwise op, named as its
 * op, with a scalar formula that lets NaN through; nothing else is one. */
static void test_act_table(void **state)
{
    int nact = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        if (!ir_op_is_act((Op)op))
            continue;
        nact++;
        assert_int_equal(ir_ops[op].fusion, FC_ELEMWISE);
        assert_int_equal(ir_ops[op].min_inputs, 1);
        assert_int_equal(ir_ops[op].max_inputs, 1);
        assert_true(ir_ops[op].flags & OF_CHANNELWISE);
        assert_string_equal(ir_act_name((Op)op), ir_ops[op].name);
        assert_true(isnan(ir_act_apply((Op)op, NAN, 0.0f, 6.0f)));
        assert_true(isfinite(ir_act_apply((Op)op, 0.5, 0.0f, 6.0f)));
    }
    assert_true(nact >= 6);
    assert_false(ir_op_is_act(OP_NO_ACT));
    assert_false(ir_op_is_act(OP_ADD));
    assert_false(ir_op_is_act(OP_DROPOUT));
    assert_false(ir_op_is_act(OP_COUNT));
    assert_true(ir_act_apply(OP_NO_ACT, -3.0, 0.0f, 0.0f) == -3.0);
    assert_true(ir_act_apply(OP_RELU, -3.0, 0.0f, 0.0f) == 0.0);
    assert_true(ir_act_apply(OP_CLIP, 7.0, 0.0f, 6.0f) == 6.0);
    assert_true(ir_act_apply(OP_CLIP, -1.0, -0.5f, 6.0f) == -0.5);
    assert_true(ir_act_apply(OP_LEAKY_RELU, -2.0, 0.25f, 0.0f) == -0.5);
    assert_true(fabs(ir_act_apply(OP_SIGMOID, 0.0, 0.0f, 0.0f) - 0.5) < 1e-15);
    assert_true(fabs(ir_act_apply(OP_SILU, 1.0, 0.0f, 0.0f) - 1.0 / (1.0 + exp(-1.0))) < 1e-15);
    assert_true(fabs(ir_act_apply(OP_TANH, 1.0, 0.0f, 0.0f) - tanh(1.0)) < 1e-15);
}

static void test_attr_defaults(void **state)
{
    Attrs a;
    ir_attrs_default(OP_CONV2D, &a);
    assert_int_equal(a.conv.kernel[0], 1);
    assert_int_equal(a.conv.stride[1], 1);
    assert_int_equal(a.conv.dilation[0], 1);
    assert_int_equal(a.conv.pad[3], 0);
    assert_int_equal(a.conv.groups, 1);
    ir_attrs_default(OP_AVGPOOL, &a);
    assert_true(a.pool.count_include_pad);
    assert_false(a.pool.ceil_mode);
    assert_int_equal(a.pool.kernel[1], 1);
    ir_attrs_default(OP_BATCHNORM, &a);
    assert_true(a.bn.eps == 1e-5f);
    ir_attrs_default(OP_CLIP, &a);
    assert_true(a.clip.lo == 0.0f && a.clip.hi == 6.0f);
    ir_attrs_default(OP_LEAKY_RELU, &a);
    assert_true(a.leaky.alpha == 0.01f);
    ir_attrs_default(OP_CONCAT, &a);
    assert_int_equal(a.axis.axis, 1);
    ir_attrs_default(OP_FLATTEN, &a);
    assert_int_equal(a.axis.axis, 1);
    ir_attrs_default(OP_SOFTMAX, &a);
    assert_int_equal(a.axis.axis, -1);
    ir_attrs_default(OP_DROPOUT, &a);
    assert_true(a.dropout.p == 0.5f);
    ir_attrs_default(OP_ADAPTIVE_AVGPOOL, &a);
    assert_int_equal(a.adaptive.out[0], 1);
    assert_int_equal(a.adaptive.out[1], 1);
}

/* ---- graph ---------------------------------------------------------------------- */

static void test_graph_building(void **state)
{
    Graph *g = ir_graph_new("g");
    int64_t d[] = {1, 8};
    char name[32];
    int32_t x = ir_add_input(g, "x", ir_type_f32(2, d), (SrcLoc){0});
    int32_t prev = x;
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "relu_%d", i);
        prev = ir_add_node(g, OP_RELU, &prev, 1, name, (SrcLoc){0});
    }
    int32_t y = ir_add_input(g, "y", ir_type_f32(2, d), (SrcLoc){0});
    ir_add_output(g, prev, "out");
    assert_int_equal(g->nnodes, 1002);
    assert_true(g->capnodes >= g->nnodes);
    assert_string_equal(g->nodes[500].name, "relu_499");
    assert_int_equal(g->nodes[500].inputs[0], 499);
    assert_int_equal(g->nodes[500].type.dtype, DT_INVALID);
    assert_int_equal(ir_find_node(g, "relu_999"), 1000);
    assert_int_equal(ir_find_node(g, "nope"), -1);
    assert_int_equal(ir_num_inputs(g), 2);
    assert_int_equal(ir_input_node(g, 0), x);
    assert_int_equal(ir_input_node(g, 1), y);
    assert_int_equal(g->noutputs, 1);
    assert_string_equal(g->outputs[0].name, "out");
    ir_graph_free(g);
}

static void test_graph_default_attrs(void **state)
{
    Graph *g = ir_graph_new("g");
    int64_t d[] = {1, 3, 8, 8};
    int32_t x = ir_add_input(g, "x", ir_type_f32(4, d), (SrcLoc){0});
    int32_t p = ir_add_node(g, OP_MAXPOOL, &x, 1, "pool", (SrcLoc){"f", 3, 4});
    assert_int_equal(g->nodes[p].attrs.pool.kernel[0], 1);
    assert_true(g->nodes[p].attrs.pool.count_include_pad);
    assert_int_equal(g->nodes[p].loc.line, 3);
    ir_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_alignment),
        cmocka_unit_test(test_arena_big_chunks),
        cmocka_unit_test(test_arena_many_chunks),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_diag_caret),
        cmocka_unit_test(test_diag_levels_and_tabs),
        cmocka_unit_test(test_diag_wide_gutter),
        cmocka_unit_test(test_diag_long_line),
        cmocka_unit_test(test_diag_without_source),
        cmocka_unit_test(test_diag_no_file_with_sources),
        cmocka_unit_test(test_diag_line_out_of_range),
        cmocka_unit_test(test_diag_source_is_copied),
        cmocka_unit_test(test_diag_max_errors),
        cmocka_unit_test(test_diag_repeated),
        cmocka_unit_test(test_diag_unlimited),
        cmocka_unit_test(test_diag_utf8_caret),
        cmocka_unit_test(test_type_strings),
        cmocka_unit_test(test_dims_strings),
        cmocka_unit_test(test_type_eq_and_dtypes),
        cmocka_unit_test(test_numel_checked),
        cmocka_unit_test(test_rng_determinism),
        cmocka_unit_test(test_rng_uniform_range),
        cmocka_unit_test(test_rng_normal_moments),
        cmocka_unit_test(test_op_table),
        cmocka_unit_test(test_attr_fields),
        cmocka_unit_test(test_attr_defaults),
        cmocka_unit_test(test_act_names),
        cmocka_unit_test(test_act_table),
        cmocka_unit_test(test_graph_building),
        cmocka_unit_test(test_graph_default_attrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
