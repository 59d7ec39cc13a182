/* test_infer.c: shape inference, rule by rule (output shapes and the exact
 * user-facing messages), and the IR verifier. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir.h"

typedef struct T {
    Graph *g;
    Diag d;
    char *buf;
    size_t len;
} T;

static T *t_new(void)
{
    T *t = calloc(1, sizeof *t);
    t->g = ir_graph_new("t");
    ir_diag_init(&t->d, open_memstream(&t->buf, &t->len));
    return t;
}

static const char *t_text(T *t)
{
    fflush(t->d.out);
    return t->buf ? t->buf : "";
}

static void t_free(T *t)
{
    fclose(t->d.out);
    free(t->buf);
    ir_diag_fini(&t->d);
    ir_graph_free(t->g);
    free(t);
}

/* "1,3,224,224" -> f32[1,3,224,224]; "" -> f32[] */
static TensorType ty(const char *dims)
{
    int64_t d[IR_MAX_RANK];
    int32_t rank = 0;
    for (const char *p = dims; *p;) {
        char *end;
        d[rank++] = strtoll(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
    }
    return ir_type_f32(rank, d);
}

static int32_t input(T *t, const char *name, const char *dims)
{
    return ir_add_input(t->g, name, ty(dims), (SrcLoc){0});
}

static int32_t param(T *t, const char *name, const char *dims)
{
    int32_t id = ir_add_param(t->g, name, ty(dims), (SrcLoc){0});
    assert_true(ir_infer_node(t->g, id, &t->d));
    return id;
}

static int32_t node(T *t, Op op, const char *name, const int32_t *ins, int32_t n)
{
    return ir_add_node(t->g, op, ins, n, name, (SrcLoc){0});
}

#define NODE(t, op, name, ...)                                                                 \
    node(t, op, name, (const int32_t[]){__VA_ARGS__},                                          \
         (int32_t)(sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)))

/* Infers node `id` (after its inputs) and checks the resulting type. */
static void expect_type(T *t, int32_t id, const char *want)
{
    char buf[160];
    assert_true(ir_infer_shapes(t->g, &t->d));
    assert_string_equal(t_text(t), "");
    assert_string_equal(ir_type_str(&t->g->nodes[id].type, buf, sizeof buf), want);
}

/* Inference of the whole graph fails with exactly this one message. */
static void expect_error(T *t, int32_t id, const char *msg)
{
    char want[512];
    snprintf(want, sizeof want, "error: %s\n", msg);
    assert_false(ir_infer_shapes(t->g, &t->d));
    assert_string_equal(t_text(t), want);
    assert_int_equal(t->d.nerrors, 1);
    assert_int_equal(t->g->nodes[id].type.dtype, DT_INVALID);
}

static void set_window(int32_t *k, int32_t *s, int32_t *pad, int32_t kk, int32_t ss, int32_t pp)
{
    k[0] = k[1] = kk;
    s[0] = s[1] = ss;
    pad[0] = pad[1] = pad[2] = pad[3] = pp;
}

/* ---- conv2d --------------------------------------------------------------------- */

static int32_t conv(T *t, const char *x_dims, const char *w_dims, int32_t k, int32_t s,
                    int32_t p)
{
    int32_t x = input(t, "x", x_dims), w = param(t, "conv1.weight", w_dims);
    int32_t c = NODE(t, OP_CONV2D, "conv1", x, w);
    ConvAttrs *a = &t->g->nodes[c].attrs.conv;
    set_window(a->kernel, a->stride, a->pad, k, s, p);
    return c;
}

static void test_conv_shapes(void **state)
{
    T *t = t_new();
    int32_t c = conv(t, "1,3,224,224", "64,3,7,7", 7, 2, 3);
    expect_type(t, c, "f32[1,64,112,112]");
    t_free(t);

    t = t_new();
    c = conv(t, "2,32,56,56", "32,1,3,3", 3, 1, 1);
    t->g->nodes[c].attrs.conv.groups = 32;
    expect_type(t, c, "f32[2,32,56,56]");
    t_free(t);

    t = t_new(); /* dilation 2 grows the 3×3 kernel to 5×5; asymmetric pad */
    c = conv(t, "1,8,20,20", "16,8,3,3", 3, 1, 0);
    ConvAttrs *a = &t->g->nodes[c].attrs.conv;
    a->dilation[0] = a->dilation[1] = 2;
    a->pad[0] = 1; /* top */
    a->pad[3] = 2; /* right */
    a->stride[1] = 3;
    expect_type(t, c, "f32[1,16,17,6]");
    t_free(t);
}

static void test_conv_bias(void **state)
{
    T *t = t_new();
    int32_t x = input(t, "x", "1,3,32,32"), w = param(t, "c.weight", "6,3,5,5");
    int32_t b = param(t, "c.bias", "6");
    int32_t c = NODE(t, OP_CONV2D, "c", x, w, b);
    set_window(t->g->nodes[c].attrs.conv.kernel, t->g->nodes[c].attrs.conv.stride,
               t->g->nodes[c].attrs.conv.pad, 5, 1, 0);
    expect_type(t, c, "f32[1,6,28,28]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "1,3,32,32");
    w = param(t, "c.weight", "6,3,1,1");
    b = param(t, "c.bias", "5");
    c = NODE(t, OP_CONV2D, "c", x, w, b);
    expect_error(t, c, "conv2d expects 6 output channels in 'c.bias', got f32[5]");
    t_free(t);
}

/* A fused residual is the last input and has the output's dims; the bias is
 * whatever lies between the weight and it. */
static void test_conv_epilogue(void **state)
{
    T *t = t_new();
    int32_t x = input(t, "x", "1,4,8,8"), w = param(t, "c.weight", "6,4,1,1");
    int32_t b = param(t, "c.bias", "6"), r = input(t, "r", "1,6,8,8");
    int32_t c = NODE(t, OP_CONV2D, "c", x, w, b, r);
    t->g->nodes[c].attrs.conv.epi.residual = true;
    t->g->nodes[c].attrs.conv.epi.act = OP_RELU;
    expect_type(t, c, "f32[1,6,8,8]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "1,4,8,8");
    w = param(t, "c.weight", "6,4,1,1");
    r = input(t, "r", "1,6,4,4");
    c = NODE(t, OP_CONV2D, "c", x, w, r);
    t->g->nodes[c].attrs.conv.epi.residual = true;
    expect_error(t, c, "conv2d residual 'r' is f32[1,6,4,4], but the output is f32[1,6,8,8]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "1,4,8,8");
    w = param(t, "c.weight", "6,4,1,1");
    b = param(t, "c.bias", "6");
    c = NODE(t, OP_CONV2D, "c", x, w, b, b);
    expect_error(t, c, "conv2d has 4 inputs, which its epilogue (residual=false) does not take");
    t_free(t);

    t = t_new();
    x = input(t, "x", "1,4,8,8");
    w = param(t, "c.weight", "6,4,1,1");
    c = NODE(t, OP_CONV2D, "c", x, w);
    t->g->nodes[c].attrs.conv.epi = (Epilogue){OP_CLIP, 6.0f, 0.0f, false, OP_NO_ACT, 0, 0};
    expect_error(t, c, "conv2d act clip needs lo <= hi, got 6, 0");
    t_free(t);
}

static void test_dense_residual(void **state)
{
    T *t = t_new();
    int32_t x = input(t, "x", "2,8"), w = param(t, "fc.weight", "3,8");
    int32_t r = input(t, "r", "2,3");
    int32_t fc = NODE(t, OP_DENSE, "fc", x, w, r);
    t->g->nodes[fc].attrs.dense.epi.residual = true;
    t->g->nodes[fc].attrs.dense.epi.post = OP_SIGMOID;
    expect_type(t, fc, "f32[2,3]");
    t_free(t);
}

/* A reorder keeps its dims and the layout it was created with. */
static void test_reorder(void **state)
{
    T *t = t_new();
    int32_t x = input(t, "x", "1,16,4,4");
    int32_t r = NODE(t, OP_REORDER, "x.to_nchw8c", x);
    t->g->nodes[r].type = ty("1,16,4,4");
    t->g->nodes[r].type.layout = LAYOUT_NCHWC;
    t->g->nodes[r].type.block = 8;
    expect_type(t, r, "f32[1,16,4,4]@nchw8c");
    assert_true(ir_verify(t->g, &t->d));
    t_free(t);
}

static void test_conv_errors(void **state)
{
    T *t = t_new();
    int32_t c = conv(t, "1,32,28,28", "128,64,3,3", 3, 1, 1);
    expect_error(t, c, "conv2d expects 64 input channels, got 32");
    t_free(t);

    t = t_new();
    c = conv(t, "1,64,5,5", "64,64,7,7", 7, 1, 0);
    expect_error(t, c, "conv2d output would be empty: input 5\xc3\x97" "5 is smaller than the "
                       "7\xc3\x97" "7 kernel with padding");
    t_free(t);

    t = t_new();
    c = conv(t, "1,3,8,8", "4,3,3,3", 3, 1, 0);
    t->g->nodes[c].attrs.conv.stride[1] = 0;
    expect_error(t, c, "conv2d stride must be positive, got [1,0]");
    t_free(t);

    t = t_new();
    c = conv(t, "1,3,8,8", "4,3,3,3", 3, 1, 0);
    t->g->nodes[c].attrs.conv.kernel[0] = -3;
    expect_error(t, c, "conv2d kernel must be positive, got [-3,3]");
    t_free(t);

    t = t_new();
    c = conv(t, "1,3,8,8", "4,3,3,3", 3, 1, 0);
    t->g->nodes[c].attrs.conv.dilation[0] = 0;
    expect_error(t, c, "conv2d dilation must be positive, got [0,1]");
    t_free(t);

    t = t_new();
    c = conv(t, "1,3,8,8", "4,3,3,3", 3, 1, 0);
    t->g->nodes[c].attrs.conv.pad[2] = -1;
    expect_error(t, c, "conv2d pad must be non-negative, got [0,0,-1,0]");
    t_free(t);
}

static void test_conv_weight_errors(void **state)
{
    T *t = t_new();
    int32_t c = conv(t, "1,3,8,8", "4,3,5,5", 3, 1, 0);
    expect_error(t, c, "conv2d weight 'conv1.weight' holds 5\xc3\x97" "5 kernels, but kernel is "
                       "3\xc3\x97" "3");
    t_free(t);

    t = t_new();
    c = conv(t, "1,3,8,8", "4,3,3", 3, 1, 0);
    expect_error(t, c, "conv2d weight 'conv1.weight' must be 4-d [O, C/groups, kh, kw], got "
                       "f32[4,3,3]");
    t_free(t);

    t = t_new();
    c = conv(t, "1,3,8", "4,3,3,3", 3, 1, 0);
    expect_error(t, c, "conv2d expects a 4-d input [N, C, H, W], got f32[1,3,8]");
    t_free(t);
}

static void test_conv_groups(void **state)
{
    T *t = t_new();
    int32_t c = conv(t, "1,30,8,8", "8,10,3,3", 3, 1, 1);
    t->g->nodes[c].attrs.conv.groups = 4;
    expect_error(t, c, "conv2d groups=4 does not divide the 30 input channels");
    t_free(t);

    t = t_new();
    c = conv(t, "1,32,8,8", "10,8,3,3", 3, 1, 1);
    t->g->nodes[c].attrs.conv.groups = 4;
    expect_error(t, c, "conv2d groups=4 does not divide the 10 output channels");
    t_free(t);

    t = t_new();
    c = conv(t, "1,32,8,8", "10,8,3,3", 3, 1, 1);
    t->g->nodes[c].attrs.conv.groups = 0;
    expect_error(t, c, "conv2d groups must be positive, got 0");
    t_free(t);

    t = t_new(); /* ConvAttrs.winograd is a tile side, as IR text may set it */
    c = conv(t, "1,32,8,8", "8,32,3,3", 3, 1, 1);
    t->g->nodes[c].attrs.conv.winograd = 3;
    expect_error(t, c, "conv2d winograd=3 is not a Winograd tile: 2 or 4 (0: none)");
    t_free(t);
}

/* ---- dense ---------------------------------------------------------------------- */

static void test_dense(void **state)
{
    T *t = t_new();
    int32_t x = input(t, "x", "4,9216"), w = param(t, "fc1.weight", "128,9216");
    int32_t b = param(t, "fc1.bias", "128");
    int32_t fc = NODE(t, OP_DENSE, "fc1", x, w, b);
    expect_type(t, fc, "f32[4,128]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "1,64,5,5");
    w = param(t, "fc1.weight", "128,1600");
    fc = NODE(t, OP_DENSE, "fc1", x, w);
    expect_error(t, fc, "dense expects 1600 input features, got 5");
    t_free(t);

    /* over one dim: the last (PyTorch's Linear), or any but the batch dim */
    t = t_new();
    x = input(t, "x", "2,7,7,96");
    w = param(t, "fc1.weight", "384,96");
    fc = NODE(t, OP_DENSE, "fc1", x, w);
    expect_type(t, fc, "f32[2,7,7,384]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "2,96,7,7");
    w = param(t, "fc1.weight", "384,96");
    fc = NODE(t, OP_DENSE, "fc1", x, w);
    t->g->nodes[fc].attrs.dense.axis = 1;
    expect_type(t, fc, "f32[2,384,7,7]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "2,96,7,7");
    w = param(t, "fc1.weight", "384,96");
    fc = NODE(t, OP_DENSE, "fc1", x, w);
    t->g->nodes[fc].attrs.dense.axis = 0;
    expect_error(t, fc, "dense axis 0 is out of range for f32[2,96,7,7] (it must not be the batch "
                        "dim)");
    t_free(t);

    t = t_new();
    x = input(t, "x", "4,10");
    w = param(t, "fc1.weight", "128,10");
    b = param(t, "fc1.bias", "10");
    fc = NODE(t, OP_DENSE, "fc1", x, w, b);
    expect_error(t, fc, "dense expects 128 output features in 'fc1.bias', got f32[10]");
    t_free(t);
}

static void test_dense_feature_mismatch(void **state)
{
    T *t = t_new();
    int32_t x = input(t, "x", "1,64,5,5");
    int32_t f = NODE(t, OP_FLATTEN, "flatten", x);
    int32_t w = param(t, "fc1.weight", "128,9216");
    int32_t fc = NODE(t, OP_DENSE, "fc1", f, w);
    expect_error(t, fc, "dense expects 9216 input features, got 1600 (64\xc3\x97" "5\xc3\x97"
                        "5)");
    t_free(t);

    t = t_new();
    x = input(t, "x", "2,10");
    w = param(t, "fc1.weight", "3,12");
    fc = NODE(t, OP_DENSE, "fc1", x, w);
    expect_error(t, fc, "dense expects 12 input features, got 10");
    t_free(t);

    t = t_new(); /* flatten from axis 2: the message shows the dims it merged */
    x = input(t, "x", "2,3,4,5");
    f = NODE(t, OP_FLATTEN, "flatten", x);
    t->g->nodes[f].attrs.axis.axis = 2;
    w = param(t, "fc1.weight", "3,12");
    fc = NODE(t, OP_DENSE, "fc1", f, w);
    expect_error(t, fc, "dense expects 12 input features, got 20 (4\xc3\x97" "5)");
    t_free(t);
}

/* ---- batchnorm ------------------------------------------------------------------ */

static int32_t bn(T *t, const char *x_dims, const char *p_dims, const char *bad_dims)
{
    int32_t x = input(t, "x", x_dims);
    int32_t w = param(t, "bn1.weight", bad_dims ? bad_dims : p_dims);
    int32_t b = param(t, "bn1.bias", p_dims), m = param(t, "bn1.running_mean", p_dims);
    int32_t v = param(t, "bn1.running_var", p_dims);
    return NODE(t, OP_BATCHNORM, "bn1", x, w, b, m, v);
}

static void test_batchnorm(void **state)
{
    T *t = t_new();
    int32_t n = bn(t, "1,64,56,56", "64", NULL);
    expect_type(t, n, "f32[1,64,56,56]");
    t_free(t);

    t = t_new();
    n = bn(t, "8,100", "100", NULL);
    expect_type(t, n, "f32[8,100]");
    t_free(t);

    t = t_new();
    n = bn(t, "1,64,56,56", "64", "32");
    expect_error(t, n, "batchnorm expects 64 channels in 'bn1.weight', got f32[32]");
    t_free(t);

    t = t_new();
    n = bn(t, "64", "64", NULL);
    expect_error(t, n, "batchnorm expects an input with channels [N, C, ...], got f32[64]");
    t_free(t);

    t = t_new();
    n = bn(t, "1,4,2,2", "4", NULL);
    t->g->nodes[n].attrs.bn.eps = -1.0f;
    expect_error(t, n, "batchnorm eps must be non-negative, got -1");
    t_free(t);
}

/* ---- elementwise ---------------------------------------------------------------- */

static void test_unary_ops(void **state)
{
    const Op ops[] = {OP_RELU,      OP_CLIP,      OP_SIGMOID,     OP_TANH,   OP_SILU,
                      OP_LEAKY_RELU, OP_HARDSWISH, OP_HARDSIGMOID, OP_DROPOUT};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        T *t = t_new();
        int32_t x = input(t, "x", "2,3,5,7");
        int32_t y = NODE(t, ops[i], "y", x);
        expect_type(t, y, "f32[2,3,5,7]");
        t_free(t);
    }
    T *t = t_new();
    int32_t x = input(t, "x", "2,3");
    int32_t y = NODE(t, OP_CLIP, "relu6", x);
    t->g->nodes[y].attrs.clip.lo = 6;
    t->g->nodes[y].attrs.clip.hi = 0;
    expect_error(t, y, "clip needs lo <= hi, got lo=6, hi=0");
    t_free(t);

    t = t_new();
    x = input(t, "x", "2,3");
    y = NODE(t, OP_DROPOUT, "drop", x);
    t->g->nodes[y].attrs.dropout.p = 1.5f;
    expect_error(t, y, "dropout p must be in [0, 1], got 1.5");
    t_free(t);
}

static void test_broadcast(void **state)
{
    T *t = t_new();
    int32_t a = input(t, "a", "1,64,56,56"), b = input(t, "b", "1,64,56,56");
    int32_t s = NODE(t, OP_ADD, "add", a, b);
    expect_type(t, s, "f32[1,64,56,56]");
    t_free(t);

    t = t_new();
    a = input(t, "a", "1,64,56,56");
    b = param(t, "scale", "64,1,1");
    s = NODE(t, OP_MUL, "mul", a, b);
    expect_type(t, s, "f32[1,64,56,56]");
    t_free(t);

    t = t_new();
    a = input(t, "a", "2,1,3");
    b = input(t, "b", "4,1");
    s = NODE(t, OP_ADD, "add", a, b);
    expect_type(t, s, "f32[2,4,3]");
    t_free(t);

    t = t_new();
    a = input(t, "a", "1,64,56,56");
    b = input(t, "b", "1,128,28,28");
    s = NODE(t, OP_ADD, "add", a, b);
    expect_error(t, s, "add cannot broadcast f32[1,64,56,56] with f32[1,128,28,28]");
    t_free(t);

    t = t_new();
    a = input(t, "a", "3");
    b = input(t, "b", "4");
    s = NODE(t, OP_MUL, "mul", a, b);
    expect_error(t, s, "mul cannot broadcast f32[3] with f32[4]");
    t_free(t);
}

/* ---- concat --------------------------------------------------------------------- */

static void test_concat(void **state)
{
    T *t = t_new();
    int32_t a = input(t, "a", "1,64,28,28"), b = input(t, "b", "1,32,28,28");
    int32_t c = input(t, "c", "1,16,28,28");
    int32_t y = NODE(t, OP_CONCAT, "cat", a, b, c);
    expect_type(t, y, "f32[1,112,28,28]");
    t_free(t);

    t = t_new();
    a = input(t, "a", "2,3");
    b = input(t, "b", "2,5");
    y = NODE(t, OP_CONCAT, "cat", a, b);
    t->g->nodes[y].attrs.axis.axis = -1;
    expect_type(t, y, "f32[2,8]");
    t_free(t);

    t = t_new();
    a = input(t, "a", "2,3");
    y = NODE(t, OP_CONCAT, "cat", a);
    expect_type(t, y, "f32[2,3]");
    t_free(t);
}

static void test_concat_errors(void **state)
{
    T *t = t_new();
    int32_t a = input(t, "a", "1,64,28,28"), b = input(t, "b", "1,32,28,28");
    int32_t c = input(t, "c", "1,16,14,14");
    int32_t y = NODE(t, OP_CONCAT, "cat", a, b, c);
    expect_error(t, y, "concat input 2 'c' is f32[1,16,14,14], which does not match input 0 "
                       "'a' (f32[1,64,28,28]) outside axis 1");
    t_free(t);

    t = t_new();
    a = input(t, "a", "1,64,28,28");
    b = input(t, "b", "1,64,28");
    y = NODE(t, OP_CONCAT, "cat", a, b);
    expect_error(t, y, "concat input 1 'b' is f32[1,64,28], which does not match input 0 "
                       "'a' (f32[1,64,28,28]) outside axis 1");
    t_free(t);

    t = t_new();
    a = input(t, "a", "2,3");
    y = NODE(t, OP_CONCAT, "cat", a);
    t->g->nodes[y].attrs.axis.axis = 2;
    expect_error(t, y, "concat axis 2 is out of range for rank-2 inputs");
    t_free(t);

    t = t_new();
    a = input(t, "a", "2,3");
    y = NODE(t, OP_CONCAT, "cat", a);
    t->g->nodes[y].attrs.axis.axis = -3;
    expect_error(t, y, "concat axis -3 is out of range for rank-2 inputs");
    t_free(t);
}

/* ---- pooling -------------------------------------------------------------------- */

static int32_t pool(T *t, Op op, const char *x_dims, int32_t k, int32_t s, int32_t p, bool ceil)
{
    int32_t x = input(t, "x", x_dims);
    int32_t y = NODE(t, op, "pool", x);
    PoolAttrs *a = &t->g->nodes[y].attrs.pool;
    set_window(a->kernel, a->stride, a->pad, k, s, p);
    a->ceil_mode = ceil;
    return y;
}

/* Expected sizes are PyTorch's (torch.nn.MaxPool2d / AvgPool2d). */
static void test_pool_shapes(void **state)
{
    static const struct {
        const char *x;
        int32_t k, s, p;
        bool ceil;
        const char *want;
    } cases[] = {
        {"1,64,112,112", 3, 2, 1, false, "f32[1,64,56,56]"},
        {"1,64,112,112", 3, 2, 0, false, "f32[1,64,55,55]"},
        {"1,64,112,112", 3, 2, 0, true, "f32[1,64,56,56]"},
        {"1,1,6,6", 3, 2, 0, true, "f32[1,1,3,3]"},
        {"1,1,6,6", 3, 2, 0, false, "f32[1,1,2,2]"},
        /* ceil gives 4, but the 4th window would start in the end padding */
        {"1,1,5,5", 2, 2, 1, true, "f32[1,1,3,3]"},
        {"1,1,5,5", 2, 2, 1, false, "f32[1,1,3,3]"},
        {"2,3,7,7", 7, 1, 0, false, "f32[2,3,1,1]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int op = OP_MAXPOOL; op <= OP_AVGPOOL; op++) {
            T *t = t_new();
            int32_t y = pool(t, (Op)op, cases[i].x, cases[i].k, cases[i].s, cases[i].p,
                             cases[i].ceil);
            expect_type(t, y, cases[i].want);
            t_free(t);
        }
    }
}

static void test_pool_errors(void **state)
{
    T *t = t_new();
    int32_t y = pool(t, OP_MAXPOOL, "1,8,2,2", 3, 1, 0, false);
    expect_error(t, y, "maxpool output would be empty: input 2\xc3\x97" "2 is smaller than the "
                       "3\xc3\x97" "3 kernel with padding");
    t_free(t);

    t = t_new();
    y = pool(t, OP_AVGPOOL, "1,8,4,4", 3, 1, 2, false);
    expect_error(t, y, "avgpool pad [2,2,2,2] must be at most half the kernel");
    t_free(t);

    t = t_new();
    y = pool(t, OP_MAXPOOL, "1,8,4", 3, 1, 0, false);
    expect_error(t, y, "maxpool expects a 4-d input [N, C, H, W], got f32[1,8,4]");
    t_free(t);

    t = t_new();
    y = pool(t, OP_MAXPOOL, "1,8,4,4", 3, 0, 0, false);
    expect_error(t, y, "maxpool stride must be positive, got [0,0]");
    t_free(t);
}

static void test_global_and_adaptive(void **state)
{
    T *t = t_new();
    int32_t x = input(t, "x", "2,512,7,7");
    int32_t y = NODE(t, OP_GLOBAL_AVGPOOL, "gap", x);
    expect_type(t, y, "f32[2,512,1,1]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "1,512,13,13");
    y = NODE(t, OP_ADAPTIVE_AVGPOOL, "avgpool", x);
    t->g->nodes[y].attrs.adaptive.out[0] = 6;
    t->g->nodes[y].attrs.adaptive.out[1] = 7;
    expect_type(t, y, "f32[1,512,6,7]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "1,512,13,13");
    y = NODE(t, OP_ADAPTIVE_AVGPOOL, "avgpool", x);
    t->g->nodes[y].attrs.adaptive.out[1] = 0;
    expect_error(t, y, "adaptive_avgpool out must be positive, got [1,0]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "1,512");
    y = NODE(t, OP_GLOBAL_AVGPOOL, "gap", x);
    expect_error(t, y, "global_avgpool expects a 4-d input [N, C, H, W], got f32[1,512]");
    t_free(t);
}

/* ---- flatten and softmax -------------------------------------------------------- */

static void test_flatten(void **state)
{
    static const struct {
        int32_t axis;
        const char *want;
    } cases[] = {
        {1, "f32[2,320]"}, {0, "f32[1,640]"}, {4, "f32[640,1]"}, {-1, "f32[128,5]"},
        {-4, "f32[1,640]"}, {2, "f32[128,5]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        T *t = t_new();
        int32_t x = input(t, "x", "2,64,1,5");
        int32_t y = NODE(t, OP_FLATTEN, "flatten", x);
        t->g->nodes[y].attrs.axis.axis = cases[i].axis;
        expect_type(t, y, cases[i].want);
        t_free(t);
    }
    T *t = t_new();
    int32_t x = input(t, "x", "2,64,1,5");
    int32_t y = NODE(t, OP_FLATTEN, "flatten", x);
    t->g->nodes[y].attrs.axis.axis = 5;
    expect_error(t, y, "flatten axis 5 is out of range for f32[2,64,1,5]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "");
    y = NODE(t, OP_FLATTEN, "flatten", x);
    expect_error(t, y, "flatten expects at least a 1-d input, got f32[]");
    t_free(t);
}

static void test_softmax(void **state)
{
    T *t = t_new();
    int32_t x = input(t, "x", "4,1000");
    int32_t y = NODE(t, OP_SOFTMAX, "prob", x);
    expect_type(t, y, "f32[4,1000]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "4,1000");
    y = NODE(t, OP_SOFTMAX, "prob", x);
    t->g->nodes[y].attrs.axis.axis = 2;
    expect_error(t, y, "softmax axis 2 is out of range for f32[4,1000]");
    t_free(t);
}

/* ---- tensor sizes ---------------------------------------------------------------- */

#define TOO_MANY "more than cnnc supports (2^38)"

static void test_size_limit(void **state)
{
    (void)state;
    T *t = t_new(); /* 2^38 elements is the most, and fine */
    int32_t x = input(t, "x", "1,64,65536,65536");
    expect_type(t, NODE(t, OP_RELU, "r", x), "f32[1,64,65536,65536]");
    t_free(t);

    t = t_new(); /* 5.5e19 elements wrap to 0 in int64 */
    x = input(t, "x", "1,3,4294967296,4294967296");
    NODE(t, OP_RELU, "r", x);
    expect_error(t, x, "input 'x' of shape f32[1,3,4294967296,4294967296] has 5.5e+19 elements, "
                       TOO_MANY);
    t_free(t);

    t = t_new();
    int32_t w = ir_add_param(t->g, "w", ty("1000000,3,1000000,1000000"), (SrcLoc){0});
    expect_error(t, w, "parameter 'w' of shape f32[1000000,3,1000000,1000000] has 3e+18 "
                       "elements, " TOO_MANY);
    t_free(t);

    t = t_new(); /* a legal pad, an output of 4294967302×4294967302 */
    int32_t c = conv(t, "1,3,8,8", "8,3,1,1", 1, 1, INT32_MAX);
    expect_error(t, c, "conv2d output of shape f32[1,8,4294967302,4294967302] would have "
                       "1.5e+20 elements, " TOO_MANY);
    t_free(t);

    t = t_new(); /* each input 2^37 elements, the concat 3 × 2^37 */
    x = input(t, "x", "1,137438953472");
    c = NODE(t, OP_CONCAT, "cat", x, x, x);
    expect_error(t, c, "concat output of shape f32[1,412316860416] would have 4.1e+11 elements, "
                       TOO_MANY);
    t_free(t);

    t = t_new();
    x = input(t, "x", "1,3,8,8");
    int32_t p = NODE(t, OP_ADAPTIVE_AVGPOOL, "pool", x);
    t->g->nodes[p].attrs.adaptive.out[0] = t->g->nodes[p].attrs.adaptive.out[1] = INT32_MAX;
    expect_error(t, p, "adaptive_avgpool output of shape f32[1,3,2147483647,2147483647] would "
                       "have 1.4e+19 elements, " TOO_MANY);
    t_free(t);
}

/* Window arithmetic with every attribute at its largest stays in int64. */
static void test_size_window_extremes(void **state)
{
    (void)state;
    T *t = t_new(); /* extent 2^32 - 1 over 8 + 2 × (2^31 - 1) padded pixels */
    int32_t c = conv(t, "1,3,8,8", "8,3,3,3", 3, INT32_MAX, INT32_MAX);
    ConvAttrs *a = &t->g->nodes[c].attrs.conv;
    a->dilation[0] = a->dilation[1] = INT32_MAX;
    expect_type(t, c, "f32[1,8,1,1]");
    t_free(t);

    t = t_new(); /* extent about 2^62: empty */
    int32_t x = input(t, "x", "1,3,8,8");
    int32_t p = NODE(t, OP_MAXPOOL, "pool", x);
    PoolAttrs *pa = &t->g->nodes[p].attrs.pool;
    set_window(pa->kernel, pa->stride, pa->pad, INT32_MAX, INT32_MAX, INT32_MAX);
    pa->dilation[0] = pa->dilation[1] = INT32_MAX;
    pa->ceil_mode = true;
    expect_error(t, p, "maxpool output would be empty: input 8×8 is smaller than the "
                       "4611686011984936963×4611686011984936963 kernel with padding");
    t_free(t);

    /* [w, 2^34 + 1] × groups 2^30 is 2^64 + 2^30: it wrapped to the 2^30 input channels */
    t = t_new();
    c = conv(t, "1,1073741824,1,1", "1,17179869185,1,1", 1, 1, 0);
    t->g->nodes[c].attrs.conv.groups = 1 << 30;
    expect_error(t, c, "conv2d expects 9223372036854775807 input channels, got 1073741824");
    t_free(t);
}

/* ---- leaves, dtypes, propagation ------------------------------------------------ */

static void test_leaves_and_dtypes(void **state)
{
    T *t = t_new();
    TensorType half = ty("1,8");
    half.dtype = DT_F16;
    int32_t x = ir_add_input(t->g, "x", half, (SrcLoc){0});
    expect_error(t, x, "input 'x' is f16[1,8]; only f32 is supported");
    t_free(t);

    t = t_new();
    int32_t w = ir_add_param(t->g, "w", ty("3,0"), (SrcLoc){0});
    expect_error(t, w, "parameter 'w' has a non-positive dimension: f32[3,0]");
    t_free(t);

    t = t_new();
    x = input(t, "x", "1,8");
    TensorType bf = ty("8");
    bf.dtype = DT_BF16;
    int32_t b = ir_add_param(t->g, "b", bf, (SrcLoc){0});
    int32_t s = NODE(t, OP_ADD, "add", x, b);
    /* the parameter reports itself; the add stays silent */
    assert_false(ir_infer_shapes(t->g, &t->d));
    assert_string_equal(t_text(t), "error: parameter 'b' is bf16[8]; only f32 is supported\n");
    assert_int_equal(t->g->nodes[s].type.dtype, DT_INVALID);
    t_free(t);
}

static void test_invalid_input_is_silent(void **state)
{
    T *t = t_new();
    int32_t x = input(t, "x", "1,3,8,8"), w = param(t, "c.weight", "4,5,1,1");
    int32_t c = NODE(t, OP_CONV2D, "c", x, w);
    int32_t r = NODE(t, OP_RELU, "r", c);
    int32_t f = NODE(t, OP_FLATTEN, "f", r);
    int32_t w2 = param(t, "fc.weight", "10,7");
    int32_t fc = NODE(t, OP_DENSE, "fc", f, w2);
    assert_false(ir_infer_shapes(t->g, &t->d));
    assert_string_equal(t_text(t), "error: conv2d expects 5 input channels, got 3\n");
    assert_int_equal(t->d.nerrors, 1);
    assert_int_equal(t->g->nodes[r].type.dtype, DT_INVALID);
    assert_int_equal(t->g->nodes[fc].type.dtype, DT_INVALID);
    t_free(t);
}

static void test_errors_are_located(void **state)
{
    T *t = t_new();
    const char *src = "line one\n  y = relu(x)\n";
    const char *f = ir_diag_add_source(&t->d, "m.cnn", src, strlen(src));
    int32_t x = input(t, "x", "2,3");
    int32_t y = ir_add_node(t->g, OP_CLIP, &x, 1, "y", (SrcLoc){f, 2, 7});
    t->g->nodes[y].attrs.clip.lo = 1;
    t->g->nodes[y].attrs.clip.hi = -1;
    assert_false(ir_infer_shapes(t->g, &t->d));
    assert_string_equal(t_text(t), "m.cnn:2:7: error: clip needs lo <= hi, got lo=1, hi=-1\n"
                                   "    2 |   y = relu(x)\n"
                                   "      |       ^\n");
    t_free(t);
}

static void test_layout_kept(void **state)
{
    T *t = t_new();
    int32_t x = input(t, "x", "1,32,8,8");
    int32_t r = NODE(t, OP_RELU, "r", x);
    assert_true(ir_infer_shapes(t->g, &t->d));
    t->g->nodes[r].type.layout = LAYOUT_NCHWC;
    t->g->nodes[r].type.block = 16;
    assert_true(ir_infer_node(t->g, r, &t->d));
    char buf[64];
    assert_string_equal(ir_type_str(&t->g->nodes[r].type, buf, sizeof buf),
                        "f32[1,32,8,8]@nchw16c");
    TensorType want;
    assert_true(ir_infer_type(t->g, r, NULL, &want));
    assert_string_equal(ir_type_str(&want, buf, sizeof buf), "f32[1,32,8,8]");
    t_free(t);
}

/* ---- verifier ------------------------------------------------------------------- */

static T *small_net(void)
{
    T *t = t_new();
    int32_t x = input(t, "x", "1,3,8,8"), w = param(t, "c.weight", "4,3,3,3");
    int32_t c = NODE(t, OP_CONV2D, "c", x, w);
    t->g->nodes[c].attrs.conv.kernel[0] = t->g->nodes[c].attrs.conv.kernel[1] = 3;
    int32_t r = NODE(t, OP_RELU, "r", c);
    ir_add_output(t->g, r, "out");
    assert_true(ir_infer_shapes(t->g, &t->d));
    return t;
}

static void test_verify_ok(void **state)
{
    T *t = small_net();
    assert_true(ir_verify(t->g, &t->d));
    assert_string_equal(t_text(t), "");
    t_free(t);
}

static void test_verify_type_mismatch(void **state)
{
    T *t = small_net();
    t->g->nodes[3].type.dims[1] = 5;
    assert_false(ir_verify(t->g, &t->d));
    assert_string_equal(t_text(t), "error: IR verifier: node 3 'r' (relu) has type "
                                   "f32[1,5,6,6], but inference gives f32[1,4,6,6]\n");
    t_free(t);

    t = small_net();
    t->g->nodes[2].attrs.conv.kernel[0] = 1;
    assert_false(ir_verify(t->g, &t->d));
    assert_string_equal(t_text(t), "error: IR verifier: node 2 'c' (conv2d): inference fails: "
                                   "conv2d weight 'c.weight' holds 3\xc3\x97" "3 kernels, but "
                                   "kernel is 1\xc3\x97" "3\n");
    t_free(t);

    t = small_net();
    t->g->nodes[3].type.dtype = DT_INVALID;
    assert_false(ir_verify(t->g, &t->d));
    assert_string_equal(t_text(t), "error: IR verifier: node 3 'r' (relu) has no valid type\n");
    t_free(t);
}

static void test_verify_structure(void **state)
{
    T *t = small_net();
    t->g->nodes[3].inputs[0] = 3;
    assert_false(ir_verify(t->g, &t->d));
    assert_string_equal(t_text(t), "error: IR verifier: node 3 'r' (relu) input 0 refers to "
                                   "node 3, not an earlier one\n");
    t_free(t);

    t = small_net();
    t->g->nodes[3].ninputs = 2;
    assert_false(ir_verify(t->g, &t->d));
    assert_string_equal(t_text(t), "error: IR verifier: node 3 'r' (relu) has 2 inputs\n");
    t_free(t);

    t = small_net();
    t->g->nodes[3].name = "c";
    assert_false(ir_verify(t->g, &t->d));
    assert_string_equal(t_text(t), "error: IR verifier: node name 'c' is used more than once\n");
    t_free(t);

    t = small_net();
    t->g->nodes[3].name = NULL;
    assert_false(ir_verify(t->g, &t->d));
    assert_string_equal(t_text(t), "error: IR verifier: node 3 (relu) has no name\n");
    t_free(t);
}

static void test_verify_outputs(void **state)
{
    T *t = small_net();
    ir_add_output(t->g, 2, "out");
    assert_false(ir_verify(t->g, &t->d));
    assert_string_equal(t_text(t), "error: IR verifier: output name 'out' is used more than "
                                   "once\n");
    t_free(t);

    t = small_net();
    t->g->outputs[0].node = 9;
    assert_false(ir_verify(t->g, &t->d));
    assert_string_equal(t_text(t), "error: IR verifier: output 0 refers to node 9 of 4\n");
    t_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_shapes),
        cmocka_unit_test(test_conv_bias),
        cmocka_unit_test(test_conv_epilogue),
        cmocka_unit_test(test_dense_residual),
        cmocka_unit_test(test_reorder),
        cmocka_unit_test(test_conv_errors),
        cmocka_unit_test(test_conv_weight_errors),
        cmocka_unit_test(test_conv_groups),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_dense_feature_mismatch),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_unary_ops),
        cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_concat_errors),
        cmocka_unit_test(test_pool_shapes),
        cmocka_unit_test(test_pool_errors),
        cmocka_unit_test(test_global_and_adaptive),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_size_window_extremes),
        cmocka_unit_test(test_leaves_and_dtypes),
        cmocka_unit_test(test_invalid_input_is_silent),
        cmocka_unit_test(test_errors_are_located),
        cmocka_unit_test(test_layout_kept),
        cmocka_unit_test(test_verify_ok),
        cmocka_unit_test(test_verify_type_mismatch),
        cmocka_unit_test(test_verify_structure),
        cmocka_unit_test(test_verify_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
