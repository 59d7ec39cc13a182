/* test_interp.c: the reference interpreter against numbers worked out by hand
 * or, where noted, by PyTorch in float64 on the same float32 inputs, with each
 * op's result rounded to float32 as the interpreter does. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ir.h"

/* Every comparison: |got - want| <= REL_TOL * |want| (plus ABS_TOL so that an
 * expected exact zero may come out as -0 or a denormal). */
#define REL_TOL 1e-6
#define ABS_TOL 1e-30

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define NUM(a)    ((int32_t)(sizeof(a) / sizeof((a)[0])))

static const SrcLoc noloc = {NULL, 0, 0};

/* ---- inputs written as formulas, reproduced in the PyTorch script ------- */

static void seq(float *v, int64_t n, double start, double step)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(start + (double)i * step);
}

static void wave(float *v, int64_t n, double a, double b)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)sin(a * (double)i + b);
}

/* ---- building graphs ---------------------------------------------------- */

static int32_t input(Graph *g, const char *name, int32_t rank, const int64_t *dims)
{
    return ir_add_input(g, name, ir_type_f32(rank, dims), noloc);
}

/* The weights are copied into the graph's arena, as a weight loader would. */
static int32_t param(Graph *g, const char *name, int32_t rank, const int64_t *dims,
                     const float *data)
{
    int32_t id = ir_add_param(g, name, ir_type_f32(rank, dims), noloc);
    size_t bytes = (size_t)ir_numel(&g->nodes[id].type) * sizeof(float);
    g->nodes[id].data = ir_alloc(g->arena, bytes);
    memcpy(g->nodes[id].data, data, bytes);
    return id;
}

static int32_t op1(Graph *g, Op op, int32_t x, const char *name)
{
    return ir_add_node(g, op, &x, 1, name, noloc);
}

static int32_t opn(Graph *g, Op op, const int32_t *ins, int32_t n, const char *name)
{
    return ir_add_node(g, op, ins, n, name, noloc);
}

static void infer(Graph *g)
{
    Diag d;
    ir_diag_init(&d, stderr);
    bool ok = ir_infer_shapes(g, &d);
    ir_diag_fini(&d);
    assert_true(ok);
}

static void run(const Graph *g, const float *const *inputs, InterpResult *r)
{
    char err[256] = "";
    bool ok = ir_interp(g, inputs, r, err, sizeof err);
    if (!ok)
        fail_msg("ir_interp failed: %s", err);
    assert_int_equal(r->nnodes, g->nnodes);
}

static void expect_dims(const Graph *g, int32_t id, int32_t rank, const int64_t *dims)
{
    const TensorType *t = &g->nodes[id].type;
    assert_int_equal(t->rank, rank);
    for (int32_t i = 0; i < rank; i++)
        assert_int_equal(t->dims[i], dims[i]);
}

static void expect_close(const float *got, const double *want, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= REL_TOL * fabs(want[i]) + ABS_TOL))
            fail_msg("element %d: got %.9g, want %.9g", (int)i, (double)got[i], want[i]);
    }
}

/* Infers, runs with the one input `x`, checks node `y`'s dims and values. */
static void check_node(Graph *g, const float *x, int32_t y, int32_t rank, const int64_t *dims,
                       const double *want)
{
    infer(g);
    expect_dims(g, y, rank, dims);
    InterpResult r;
    const float *inputs[1] = {x};
    run(g, inputs, &r);
    expect_close(r.values[y], want, (int32_t)ir_numel(&g->nodes[y].type));
    ir_interp_free(&r);
    ir_graph_free(g);
}

/* ---- conv2d ------------------------------------------------------------- */

/* A graph x -> conv2d(x, weight[, bias]) with attributes `a`. */
static Graph *conv_graph(const int64_t *xd, const int64_t *wd, const float *w, const float *b,
                         ConvAttrs a, int32_t *y)
{
    Graph *g = ir_graph_new("conv");
    int32_t ins[3] = {input(g, "x", 4, xd), param(g, "c.weight", 4, wd, w), 0};
    if (b)
        ins[2] = param(g, "c.bias", 1, DIMS(wd[0]), b);
    *y = opn(g, OP_CONV2D, ins, b ? 3 : 2, "c");
    a.kernel[0] = (int32_t)wd[2];
    a.kernel[1] = (int32_t)wd[3];
    g->nodes[*y].attrs.conv = a;
    return g;
}

static ConvAttrs conv_attrs(int32_t stride, int32_t dilation, int32_t groups)
{
    ConvAttrs a = {.stride = {stride, stride}, .dilation = {dilation, dilation}, .groups = groups};
    return a;
}

/* x = 1..16 in 4×4, w = [[1,2],[3,4]], stride 2: out(0,0) = 1+2*2+5*3+6*4 = 44. */
static void test_conv_stride(void **state)
{
    float x[16], w[4];
    seq(x, 16, 1, 1);
    seq(w, 4, 1, 1);
    int32_t y;
    Graph *g = conv_graph(DIMS(1, 1, 4, 4), DIMS(1, 1, 2, 2), w, NULL, conv_attrs(2, 1, 1), &y);
    const double want[] = {44, 64, 124, 144};
    check_node(g, x, y, 4, DIMS(1, 1, 2, 2), want);
}

/* x = 1..9 in 3×3, 2×2 ones, pad top 1 and right 1, bias 0.5: the padded rows
 * are 0 0 0 0 / 1 2 3 0 / 4 5 6 0 / 7 8 9 0, each output a 2×2 sum + 0.5. */
static void test_conv_asymmetric_pad(void **state)
{
    float x[9], w[4] = {1, 1, 1, 1}, b[1] = {0.5f};
    seq(x, 9, 1, 1);
    ConvAttrs a = conv_attrs(1, 1, 1);
    a.pad[0] = 1; /* top */
    a.pad[3] = 1; /* right */
    int32_t y;
    Graph *g = conv_graph(DIMS(1, 1, 3, 3), DIMS(1, 1, 2, 2), w, b, a, &y);
    const double want[] = {3.5, 5.5, 3.5, 12.5, 16.5, 9.5, 24.5, 28.5, 15.5};
    check_node(g, x, y, 4, DIMS(1, 1, 3, 3), want);
}

/* x = 1..25 in 5×5, w = [[1,-1],[2,0.5]], dilation 2, stride 2, pad 1. By hand,
 * out(1,1) taps x(1,1)=7, x(1,3)=9, x(3,1)=17, x(3,3)=19: 7-9+34+9.5 = 41.5. */
static void test_conv_dilation(void **state)
{
    float x[25], w[4] = {1, -1, 2, 0.5f};
    seq(x, 25, 1, 1);
    ConvAttrs a = conv_attrs(2, 2, 1);
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
    int32_t y;
    Graph *g = conv_graph(DIMS(1, 1, 5, 5), DIMS(1, 1, 2, 2), w, NULL, a, &y);
    const double want[] = {3.5, 18.5, 18, 1.5, 41.5, 47, -17, -2, 19};
    check_node(g, x, y, 4, DIMS(1, 1, 3, 3), want);
}

/* Batch 2, groups 2 (channels 0-1 feed outputs 0-1), with bias. PyTorch numbers. */
static void test_conv_groups(void **state)
{
    float x[72], w[32], b[4];
    wave(x, 72, 0.37, 0.1);
    wave(w, 32, 0.61, -0.4);
    seq(b, 4, -0.5, 0.25);
    int32_t y;
    Graph *g = conv_graph(DIMS(2, 4, 3, 3), DIMS(4, 2, 2, 2), w, b, conv_attrs(1, 1, 2), &y);
    const double want[] = {1.45626957,    0.856857475,  -0.786916607, -1.60880147, -3.56342622,
                           -4.55186634,   -4.72705669,  -3.89009573,  -2.78348871, -2.12968278,
                           -0.0848451697, 1.02942747,   3.63618366,   4.24903207,  3.84128766,
                           2.87588115,    0.0427716083, -0.818597844, -2.30122846, -2.72182255,
                           -4.96093325,   -4.70651548,  -2.50424483,  -0.85445896, -1.14899003,
                           -0.0430577422, 2.03581834,   2.72739593,   4.31256836,  3.81372845,
                           1.50184415,    0.00170238546};
    check_node(g, x, y, 4, DIMS(2, 4, 2, 2), want);
}

/* Depthwise 3×3 (groups = C = O = 3), pad 1, no bias. PyTorch numbers. */
static void test_conv_depthwise(void **state)
{
    float x[27], w[27];
    wave(x, 27, 0.23, 0.5);
    wave(w, 27, 0.91, 1.0);
    ConvAttrs a = conv_attrs(1, 1, 3);
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
    int32_t y;
    Graph *g = conv_graph(DIMS(1, 3, 3, 3), DIMS(3, 1, 3, 3), w, NULL, a, &y);
    const double want[] = {0.79756381,   0.466705545,  -0.13091039,   0.699897766,  0.704101806,
                           0.577559921,  -0.336406676, 0.163190194,   0.579115073,  0.668169655,
                           0.0883308419, -0.550819958, -0.530481167,  -0.814952374, -0.820012167,
                           -0.567777675, 0.0632844963, 0.532472363,   0.21849092,   -0.344060849,
                           -0.742950594, -0.25243171,  -0.0140977195, 0.285785972,  -0.0112438657,
                           0.73666063,   1.03952718};
    check_node(g, x, y, 4, DIMS(1, 3, 3, 3), want);
}

/* ---- batchnorm and dense ------------------------------------------------ */

/* Batch 2, eps 1e-5f; PyTorch's F.batch_norm in inference mode. By hand,
 * y[0] = (0 - 0.1) / sqrt(0.5 + 1e-5) * 1.5 + 0.25 = 0.03787008. */
static void test_batchnorm(void **state)
{
    float x[16], gamma[2] = {1.5f, -0.5f}, beta[2] = {0.25f, 1.0f};
    float mean[2] = {0.1f, -0.2f}, var[2] = {0.5f, 2.0f};
    wave(x, 16, 0.45, 0.0);
    Graph *g = ir_graph_new("bn");
    int32_t ins[5] = {input(g, "x", 4, DIMS(2, 2, 2, 2)), param(g, "bn.weight", 1, DIMS(2), gamma),
                      param(g, "bn.bias", 1, DIMS(2), beta),
                      param(g, "bn.running_mean", 1, DIMS(2), mean),
                      param(g, "bn.running_var", 1, DIMS(2), var)};
    int32_t y = opn(g, OP_BATCHNORM, ins, 5, "bn");
    const double want[] = {0.0378700838, 0.960562066, 1.69954081,  2.10767125,
                           0.584983228,  0.65419977,  0.778188271, 0.932261901,
                           -0.90084814,  -1.63482791, -2.03576371, -2.02382709,
                           1.20250233,   1.07769812,  0.923344901, 0.77017529};
    check_node(g, x, y, 4, DIMS(2, 2, 2, 2), want);
}

/* x = [[1,2,3],[-1,0,2]], W = [[1,0,-1],[0.5,2,1]], b = [0.25,-1]:
 * row 0: 1-3+0.25 = -1.75, 0.5+4+3-1 = 6.5; row 1: -1-2+0.25 = -2.75, -0.5+2-1 = 0.5. */
static void test_dense(void **state)
{
    float x[6] = {1, 2, 3, -1, 0, 2}, w[6] = {1, 0, -1, 0.5f, 2, 1}, b[2] = {0.25f, -1};
    Graph *g = ir_graph_new("dense");
    int32_t ins[3] = {input(g, "x", 2, DIMS(2, 3)), param(g, "fc.weight", 2, DIMS(2, 3), w),
                      param(g, "fc.bias", 1, DIMS(2), b)};
    int32_t y = opn(g, OP_DENSE, ins, 3, "fc");
    const double want[] = {-1.75, 6.5, -2.75, 0.5};
    check_node(g, x, y, 2, DIMS(2, 2), want);
}

/* ---- activations at -3, -0.5, 0, 0.5, 3 ---------------------------------- */

static const float points[5] = {-3.0f, -0.5f, 0.0f, 0.5f, 3.0f};

static Graph *unary_graph(Op op, int32_t *y)
{
    Graph *g = ir_graph_new("unary");
    *y = op1(g, op, input(g, "x", 1, DIMS(5)), "act");
    return g;
}

static void check_unary(Op op, const double *want)
{
    int32_t y;
    Graph *g = unary_graph(op, &y);
    check_node(g, points, y, 1, DIMS(5), want);
}

static void test_relu(void **state)
{
    check_unary(OP_RELU, (const double[]){0, 0, 0, 0.5, 3});
}

static void test_clip(void **state)
{
    int32_t y;
    Graph *g = unary_graph(OP_CLIP, &y);
    g->nodes[y].attrs.clip = (ClipAttrs){-1.0f, 2.0f};
    check_node(g, points, y, 1, DIMS(5), (const double[]){-1, -0.5, 0, 0.5, 2});
}

static void test_relu6_default_clip(void **state)
{
    const float x[5] = {-1.0f, 0.0f, 5.5f, 6.0f, 7.25f};
    int32_t y;
    Graph *g = unary_graph(OP_CLIP, &y);
    check_node(g, x, y, 1, DIMS(5), (const double[]){0, 0, 5.5, 6, 6});
}

/* sigmoid(3) = 1 / (1 + e^-3) = 0.952574127, sigmoid(-x) = 1 - sigmoid(x). */
static void test_sigmoid(void **state)
{
    check_unary(OP_SIGMOID,
                (const double[]){0.0474258732, 0.377540669, 0.5, 0.622459331, 0.952574127});
}

static void test_tanh(void **state)
{
    check_unary(OP_TANH, (const double[]){-0.995054754, -0.462117157, 0, 0.462117157, 0.995054754});
}

/* silu(x) = x * sigmoid(x): -3 * 0.0474258732 = -0.14227762. */
static void test_silu(void **state)
{
    check_unary(OP_SILU, (const double[]){-0.14227762, -0.188770334, 0, 0.311229666, 2.85772238});
}

/* hardsigmoid(x) = relu6(x + 3) / 6: 0, 2.5/6, 0.5, 3.5/6, 1; hardswish is x times it. */
static void test_hardsigmoid(void **state)
{
    check_unary(OP_HARDSIGMOID, (const double[]){0, 2.5 / 6, 0.5, 3.5 / 6, 1});
}

static void test_hardswish(void **state)
{
    check_unary(OP_HARDSWISH, (const double[]){0, -0.5 * 2.5 / 6, 0, 0.5 * 3.5 / 6, 3});
}

/* gelu(x) = x/2 (1 + erf(x / sqrt 2)); its tanh form uses
 * tanh(sqrt(2/pi) (x + 0.044715 x^3)). */
static void test_gelu(void **state)
{
    check_unary(OP_GELU,
                (const double[]){-0.00404969409, -0.154268769, 0, 0.345731231, 2.99595031});
    int32_t y;
    Graph *g = unary_graph(OP_GELU, &y);
    g->nodes[y].attrs.gelu.tanh = true;
    check_node(g, points, y, 1, DIMS(5),
               (const double[]){-0.00363739208, -0.15428599, 0, 0.34571401, 2.99636261});
}

/* affine(x) = x * -2 + 0.5. */
static void test_affine(void **state)
{
    int32_t y;
    Graph *g = unary_graph(OP_AFFINE, &y);
    g->nodes[y].attrs.affine = (AffineAttrs){-2.0f, 0.5f};
    check_node(g, points, y, 1, DIMS(5), (const double[]){6.5, 1.5, 0.5, -0.5, -5.5});
}

/* alpha = 0.1f, so the negative side is x * 0.100000001490116. */
static void test_leaky_relu(void **state)
{
    int32_t y;
    Graph *g = unary_graph(OP_LEAKY_RELU, &y);
    g->nodes[y].attrs.leaky.alpha = 0.1f;
    check_node(g, points, y, 1, DIMS(5), (const double[]){-0.300000004, -0.0500000007, 0, 0.5, 3});
}

static void test_dropout_is_identity(void **state)
{
    check_unary(OP_DROPOUT, (const double[]){-3, -0.5, 0, 0.5, 3});
}

/* ---- broadcasting ------------------------------------------------------- */

/* Runs op(a, b) on two graph inputs and checks the result. */
static void check_binary(Op op, int32_t ra, const int64_t *da, const float *a, int32_t rb,
                         const int64_t *db, const float *b, int32_t ry, const int64_t *dy,
                         const double *want)
{
    Graph *g = ir_graph_new("binary");
    int32_t ins[2] = {input(g, "a", ra, da), input(g, "b", rb, db)};
    int32_t y = opn(g, op, ins, 2, "y");
    infer(g);
    expect_dims(g, y, ry, dy);
    InterpResult r;
    const float *inputs[2] = {a, b};
    run(g, inputs, &r);
    expect_close(r.values[y], want, (int32_t)ir_numel(&g->nodes[y].type));
    ir_interp_free(&r);
    ir_graph_free(g);
}

static void test_add_channel_broadcast(void **state)
{
    const float a[2] = {10, 20};
    float b[8];
    seq(b, 8, 1, 1);
    check_binary(OP_ADD, 4, DIMS(1, 2, 1, 1), a, 4, DIMS(1, 2, 2, 2), b, 4, DIMS(1, 2, 2, 2),
                 (const double[]){11, 12, 13, 14, 25, 26, 27, 28});
}

static void test_mul_channel_broadcast_right(void **state)
{
    const float s[2] = {2, -1};
    float x[8];
    seq(x, 8, 1, 1);
    check_binary(OP_MUL, 4, DIMS(1, 2, 2, 2), x, 4, DIMS(1, 2, 1, 1), s, 4, DIMS(1, 2, 2, 2),
                 (const double[]){2, 4, 6, 8, -5, -6, -7, -8});
}

static void test_add_mul_same_shape(void **state)
{
    float a[8], b[8];
    seq(a, 8, 1, 1);
    seq(b, 8, 8, -1);
    check_binary(OP_ADD, 4, DIMS(1, 2, 2, 2), a, 4, DIMS(1, 2, 2, 2), b, 4, DIMS(1, 2, 2, 2),
                 (const double[]){9, 9, 9, 9, 9, 9, 9, 9});
    check_binary(OP_MUL, 4, DIMS(1, 2, 2, 2), a, 4, DIMS(1, 2, 2, 2), a, 4, DIMS(1, 2, 2, 2),
                 (const double[]){1, 4, 9, 16, 25, 36, 49, 64});
}

/* The channel operand first: b - a and b / a keep their order. */
static void test_sub_div_channel_broadcast(void **state)
{
    const float a[2] = {10, 20}, s[2] = {2, -4};
    float b[8];
    seq(b, 8, 1, 1);
    check_binary(OP_SUB, 4, DIMS(1, 2, 1, 1), a, 4, DIMS(1, 2, 2, 2), b, 4, DIMS(1, 2, 2, 2),
                 (const double[]){9, 8, 7, 6, 15, 14, 13, 12});
    check_binary(OP_DIV, 4, DIMS(1, 2, 2, 2), b, 4, DIMS(1, 2, 1, 1), s, 4, DIMS(1, 2, 2, 2),
                 (const double[]){0.5, 1, 1.5, 2, -1.25, -1.5, -1.75, -2});
}

/* Ranks aligned on the right: [2] stretches along H of [1,1,2,2]... and both
 * operands can stretch at once ([2,1] + [1,3] is [2,3]). */
static void test_broadcast_ranks_and_both_sides(void **state)
{
    const float w[2] = {100, 200}, x[4] = {1, 2, 3, 4};
    check_binary(OP_ADD, 1, DIMS(2), w, 4, DIMS(1, 1, 2, 2), x, 4, DIMS(1, 1, 2, 2),
                 (const double[]){101, 202, 103, 204});
    const float col[2] = {1, 2}, row[3] = {10, 20, 30};
    check_binary(OP_MUL, 2, DIMS(2, 1), col, 2, DIMS(1, 3), row, 2, DIMS(2, 3),
                 (const double[]){10, 20, 30, 20, 40, 60});
}

/* ---- concat ------------------------------------------------------------- */

static void check_concat(int32_t axis, int32_t rank, const int64_t *d0, const int64_t *d1,
                         const int64_t *d2, const float *const *in, const int64_t *dy,
                         const double *want)
{
    Graph *g = ir_graph_new("concat");
    int32_t ins[3] = {input(g, "a", rank, d0), input(g, "b", rank, d1), input(g, "c", rank, d2)};
    int32_t y = opn(g, OP_CONCAT, ins, 3, "y");
    g->nodes[y].attrs.axis.axis = axis;
    infer(g);
    expect_dims(g, y, rank, dy);
    InterpResult r;
    run(g, in, &r);
    expect_close(r.values[y], want, (int32_t)ir_numel(&g->nodes[y].type));
    ir_interp_free(&r);
    ir_graph_free(g);
}

/* Batch 2: each image is a's channel, b's two channels, c's channel. */
static void test_concat_channels(void **state)
{
    float a[8], b[16], c[8];
    seq(a, 8, 1, 1);
    seq(b, 16, 11, 1);
    seq(c, 8, 31, 1);
    const float *in[3] = {a, b, c};
    const double want[] = {1, 2, 3, 4, 11, 12, 13, 14, 15, 16, 17, 18, 31, 32, 33, 34,
                           5, 6, 7, 8, 19, 20, 21, 22, 23, 24, 25, 26, 35, 36, 37, 38};
    check_concat(1, 4, DIMS(2, 1, 2, 2), DIMS(2, 2, 2, 2), DIMS(2, 1, 2, 2), in, DIMS(2, 4, 2, 2),
                 want);
}

static void test_concat_last_axis(void **state)
{
    const float a[2] = {1, 2}, b[4] = {3, 4, 5, 6}, c[6] = {7, 8, 9, 10, 11, 12};
    const float *in[3] = {a, b, c};
    const double want[] = {1, 3, 4, 7, 8, 9, 2, 5, 6, 10, 11, 12};
    check_concat(-1, 2, DIMS(2, 1), DIMS(2, 2), DIMS(2, 3), in, DIMS(2, 6), want);
}

/* ---- pooling ------------------------------------------------------------ */

static Graph *pool_graph(Op op, const int64_t *xd, int32_t k, int32_t s, int32_t p, bool ceil,
                         int32_t *y)
{
    Graph *g = ir_graph_new("pool");
    *y = op1(g, op, input(g, "x", 4, xd), "pool");
    PoolAttrs *a = &g->nodes[*y].attrs.pool;
    a->kernel[0] = a->kernel[1] = k;
    a->stride[0] = a->stride[1] = s;
    a->pad[0] = a->pad[1] = a->pad[2] = a->pad[3] = p;
    a->ceil_mode = ceil;
    return g;
}

/* A checkerboard of signs, so that padding taken as 0 would win somewhere. In
 * ceil mode the last window starts at row 5 and sees row 5 only; the corner
 * output is x(5,5) = -15, not 0. PyTorch numbers (all are input elements). */
static void test_maxpool_pad_ceil(void **state)
{
    const float x[36] = {20, -19, 18, -17, 16, -15, -14, 13,  -12, 11,  -10, 9,
                         8,  -7,  6,  -5,  4,  -3,  -2,  1,   0,   -1,  2,   -3,
                         -4, 5,   -6, 7,   -8, 9,   10,  -11, 12,  -13, 14,  -15};
    int32_t y;
    Graph *g = pool_graph(OP_MAXPOOL, DIMS(1, 1, 6, 6), 3, 2, 1, true, &y);
    const double want[] = {20, 18, 16, 9, 13, 13, 11, 9, 10, 12, 14, 9, 10, 12, 14, -15};
    check_node(g, x, y, 4, DIMS(1, 1, 4, 4), want);
}

/* Kernel 2 with dilation 2 takes x(i,j), x(i,j+2), x(i+2,j), x(i+2,j+2). */
static void test_maxpool_dilation(void **state)
{
    float x[16];
    wave(x, 16, 1.7, 0.0);
    int32_t y;
    Graph *g = pool_graph(OP_MAXPOOL, DIMS(1, 1, 4, 4), 2, 1, 0, false, &y);
    g->nodes[y].attrs.pool.dilation[0] = g->nodes[y].attrs.pool.dilation[1] = 2;
    const double want[] = {x[8], x[1], x[12], x[5]};
    check_node(g, x, y, 4, DIMS(1, 1, 2, 2), want);
}

/* x = 1..36 in 6×6, kernel 3, stride 2, pad 1, ceil mode: 4×4 outputs. The
 * first window holds 1+2+7+8 = 18 of 9 places (2 with padding counted, 4.5
 * without); the last starts at row 5 and is cut at 6 + pad 1 = 7, so it has
 * 2×2 = 4 places (36 / 4 = 9) with padding counted and 1 without. */
static void test_avgpool_ceil_count_include_pad(void **state)
{
    float x[36];
    seq(x, 36, 1, 1);
    const double incl[] = {2, 4, 48.0 / 9, 3, 9, 15, 17, 9, 17, 27, 29, 15, 10.5, 16.5, 17.5, 9};
    const double excl[] = {4.5, 6, 8, 9, 13.5, 15, 17, 18, 25.5, 27, 29, 30, 31.5, 33, 35, 36};
    int32_t y;
    Graph *g = pool_graph(OP_AVGPOOL, DIMS(1, 1, 6, 6), 3, 2, 1, true, &y);
    check_node(g, x, y, 4, DIMS(1, 1, 4, 4), incl);
    g = pool_graph(OP_AVGPOOL, DIMS(1, 1, 6, 6), 3, 2, 1, true, &y);
    g->nodes[y].attrs.pool.count_include_pad = false;
    check_node(g, x, y, 4, DIMS(1, 1, 4, 4), excl);
}

/* No padding, ceil mode: the last column of windows hangs past the input and
 * divides by 2, not 4, even with count_include_pad: (5 + 10) / 2 = 7.5. */
static void test_avgpool_ceil_without_pad(void **state)
{
    float x[25];
    seq(x, 25, 1, 1);
    int32_t y;
    Graph *g = pool_graph(OP_AVGPOOL, DIMS(1, 1, 5, 5), 2, 2, 0, true, &y);
    const double want[] = {4, 6, 7.5, 14, 16, 17.5, 21.5, 23.5, 25};
    check_node(g, x, y, 4, DIMS(1, 1, 3, 3), want);
}

static void test_global_avgpool(void **state)
{
    float x[12];
    seq(x, 12, 1, 1);
    Graph *g = ir_graph_new("gap");
    int32_t y = op1(g, OP_GLOBAL_AVGPOOL, input(g, "x", 4, DIMS(1, 2, 2, 3)), "gap");
    check_node(g, x, y, 4, DIMS(1, 2, 1, 1), (const double[]){3.5, 9.5});
}

/* 7 -> 3 bins: [0,3), [2,5), [4,7). Channel 0 is 0..48 row-major, so a bin's
 * mean is 7 * (mean row) + (mean col): bin (0,0) = 7*1 + 1 = 8, bin (1,2) =
 * 7*3 + 5 = 26. Channel 1 is channel 0 plus 49. */
static void test_adaptive_avgpool(void **state)
{
    float x[98];
    seq(x, 98, 0, 1);
    Graph *g = ir_graph_new("adaptive");
    int32_t y = op1(g, OP_ADAPTIVE_AVGPOOL, input(g, "x", 4, DIMS(1, 2, 7, 7)), "pool");
    g->nodes[y].attrs.adaptive = (AdaptiveAttrs){{3, 3}};
    const double want[] = {8, 10, 12, 22, 24, 26, 36, 38, 40, 57, 59, 61, 71, 73, 75, 85, 87, 89};
    check_node(g, x, y, 4, DIMS(1, 2, 3, 3), want);
}

/* ---- flatten, softmax --------------------------------------------------- */

static void test_flatten(void **state)
{
    float x[16];
    wave(x, 16, 0.9, 0.0);
    Graph *g = ir_graph_new("flatten");
    int32_t y = op1(g, OP_FLATTEN, input(g, "x", 4, DIMS(2, 2, 2, 2)), "flat");
    infer(g);
    expect_dims(g, y, 2, DIMS(2, 8));
    InterpResult r;
    const float *inputs[1] = {x};
    run(g, inputs, &r);
    assert_memory_equal(r.values[y], x, sizeof x);
    ir_interp_free(&r);
    ir_graph_free(g);
}

static void expect_rows_sum_to_one(const float *v, int64_t outer, int64_t len, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double sum = 0.0;
            for (int64_t k = 0; k < len; k++)
                sum += (double)v[(o * len + k) * inner + i];
            assert_true(fabs(sum - 1.0) <= 1e-6);
        }
}

/* [2,3,2] along the channel axis. PyTorch numbers. */
static void test_softmax_axis1(void **state)
{
    float x[12];
    wave(x, 12, 0.8, 0.3);
    for (int i = 0; i < 12; i++)
        x[i] *= 3.0f;
    Graph *g = ir_graph_new("softmax");
    int32_t y = op1(g, OP_SOFTMAX, input(g, "x", 3, DIMS(2, 3, 2)), "sm");
    g->nodes[y].attrs.axis.axis = 1;
    infer(g);
    InterpResult r;
    const float *inputs[1] = {x};
    run(g, inputs, &r);
    const double want[] = {0.122114852,  0.79800556,    0.86031763,    0.198469035,
                           0.0175675183, 0.00352540552, 0.00337882262, 0.0166139856,
                           0.183006417,  0.850542764,   0.813614761,   0.13284325};
    expect_close(r.values[y], want, 12);
    expect_rows_sum_to_one(r.values[y], 2, 3, 2);
    ir_interp_free(&r);
    ir_graph_free(g);
}

/* Rows 1000..1003 would overflow exp() and rows -1003..-1000 underflow it to
 * 0/0 without subtracting the maximum; all must equal rows -1..2:
 * e^k / (1 + e + e^2 + e^3) for k = 0..3. */
static void test_softmax_last_axis_stable(void **state)
{
    const float x[12] = {1000, 1001, 1002, 1003, -1, 0, 1, 2, -1003, -1002, -1001, -1000};
    Graph *g = ir_graph_new("softmax");
    int32_t y = op1(g, OP_SOFTMAX, input(g, "x", 2, DIMS(3, 4)), "sm");
    infer(g);
    InterpResult r;
    const float *inputs[1] = {x};
    run(g, inputs, &r);
    double s = 1 + exp(1) + exp(2) + exp(3);
    double want[12];
    for (int i = 0; i < 12; i++)
        want[i] = exp(i % 4) / s;
    expect_close(r.values[y], want, 12);
    expect_rows_sum_to_one(r.values[y], 3, 4, 1);
    ir_interp_free(&r);
    ir_graph_free(g);
}

/* ---- NaN and infinities, as PyTorch ---------------------------------------- */

/* got[i] is NaN where want[i] is, else equal to it. */
static void expect_same(const float *got, const double *want, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (isnan(want[i]) ? !isnan(got[i]) : (double)got[i] != want[i])
            fail_msg("element %d: got %.9g, want %.9g", (int)i, (double)got[i], want[i]);
}

/* Each activation at NaN, +inf, -inf: relu(NaN) = NaN, clamp(+inf, 0, 6) = 6,
 * silu(-inf) = -inf / (1 + inf) = NaN. */
static void test_activations_nonfinite(void **state)
{
    const float x[3] = {NAN, INFINITY, -INFINITY};
    const struct {
        Op op;
        double want[3];
    } cases[] = {
        {OP_RELU, {NAN, INFINITY, 0}},
        {OP_CLIP, {NAN, 6, 0}},
        {OP_SIGMOID, {NAN, 1, 0}},
        {OP_TANH, {NAN, 1, -1}},
        {OP_SILU, {NAN, INFINITY, NAN}},
        {OP_LEAKY_RELU, {NAN, INFINITY, -INFINITY}},
        {OP_HARDSIGMOID, {NAN, 1, 0}},
        {OP_HARDSWISH, {NAN, INFINITY, NAN}},
        {OP_AFFINE, {NAN, -INFINITY, INFINITY}},
        {OP_GELU, {NAN, INFINITY, NAN}},
        {OP_DROPOUT, {NAN, INFINITY, -INFINITY}},
    };
    for (int32_t i = 0; i < NUM(cases); i++) {
        Graph *g = ir_graph_new("unary");
        int32_t y = op1(g, cases[i].op, input(g, "x", 1, DIMS(3)), "act");
        if (cases[i].op == OP_CLIP) g->nodes[y].attrs.clip = (ClipAttrs){0.0f, 6.0f};
        if (cases[i].op == OP_LEAKY_RELU) g->nodes[y].attrs.leaky.alpha = 0.1f;
        if (cases[i].op == OP_AFFINE) g->nodes[y].attrs.affine = (AffineAttrs){-2.0f, 1.0f};
        infer(g);
        InterpResult r;
        const float *inputs[1] = {x};
        run(g, inputs, &r);
        expect_same(r.values[y], cases[i].want, 3);
        ir_interp_free(&r);
        ir_graph_free(g);
    }
}

/* A window with NaN gives NaN whether the NaN comes first or last in it; the
 * 2x2 windows hold NaN first, NaN last, +inf, and -inf among finite values. */
static void test_maxpool_nonfinite(void **state)
{
    const float x[16] = {
        NAN, 1, 2, 3, 4, 5, 6, NAN, 8, 9, -INFINITY, 7, INFINITY, -1, 0, -2,
    };
    int32_t y;
    Graph *g = pool_graph(OP_MAXPOOL, DIMS(1, 1, 4, 4), 2, 2, 0, false, &y);
    infer(g);
    InterpResult r;
    const float *inputs[1] = {x};
    run(g, inputs, &r);
    expect_same(r.values[y], (const double[]){NAN, NAN, INFINITY, 7}, 4);
    ir_interp_free(&r);
    ir_graph_free(g);
}

/* A row with NaN, +inf (inf - inf) or only -inf is all NaN; -inf alone is 0. */
static void test_softmax_nonfinite(void **state)
{
    const float x[12] = {NAN, 0, 1, INFINITY, 0, 1, -INFINITY, 0, 1, -INFINITY, -INFINITY,
                         -INFINITY};
    Graph *g = ir_graph_new("softmax");
    int32_t y = op1(g, OP_SOFTMAX, input(g, "x", 2, DIMS(4, 3)), "sm");
    infer(g);
    InterpResult r;
    const float *inputs[1] = {x};
    run(g, inputs, &r);
    double e = exp(1.0);
    expect_same(r.values[y], (const double[]){NAN, NAN, NAN, NAN, NAN, NAN}, 6);
    expect_close(r.values[y] + 6, (const double[]){0, 1 / (1 + e), e / (1 + e)}, 3);
    expect_same(r.values[y] + 9, (const double[]){NAN, NAN, NAN}, 3);
    ir_interp_free(&r);
    ir_graph_free(g);
}

/* ---- a small network ---------------------------------------------------- */

/* conv(3×3, pad 1, bias) -> batchnorm -> relu -> maxpool 2 -> flatten -> dense
 * -> softmax on a [1,2,6,6] image; PyTorch numbers, rounded to f32 per op. */
static Graph *small_net(int32_t *logits, int32_t *probs)
{
    float cw[54], cb[3], gamma[3], beta[3], mean[3], var[3], dw[108], db[4];
    wave(cw, 54, 0.7, -0.3);
    seq(cb, 3, 0.1, -0.1);
    seq(gamma, 3, 1.0, 0.25);
    seq(beta, 3, -0.1, 0.1);
    seq(mean, 3, 0.05, -0.05);
    seq(var, 3, 0.8, 0.3);
    wave(dw, 108, 0.29, 0.7);
    seq(db, 4, 0.0, 0.05);
    Graph *g = ir_graph_new("net");
    int32_t c[3] = {input(g, "image", 4, DIMS(1, 2, 6, 6)),
                    param(g, "conv.weight", 4, DIMS(3, 2, 3, 3), cw),
                    param(g, "conv.bias", 1, DIMS(3), cb)};
    int32_t conv = opn(g, OP_CONV2D, c, 3, "conv");
    ConvAttrs *ca = &g->nodes[conv].attrs.conv;
    ca->kernel[0] = ca->kernel[1] = 3;
    ca->pad[0] = ca->pad[1] = ca->pad[2] = ca->pad[3] = 1;
    int32_t b[5] = {
        conv, param(g, "bn.weight", 1, DIMS(3), gamma), param(g, "bn.bias", 1, DIMS(3), beta),
        param(g, "bn.running_mean", 1, DIMS(3), mean), param(g, "bn.running_var", 1, DIMS(3), var)};
    int32_t x = op1(g, OP_RELU, opn(g, OP_BATCHNORM, b, 5, "bn"), "relu");
    x = op1(g, OP_MAXPOOL, x, "pool");
    PoolAttrs *pa = &g->nodes[x].attrs.pool;
    pa->kernel[0] = pa->kernel[1] = pa->stride[0] = pa->stride[1] = 2;
    int32_t d[3] = {op1(g, OP_FLATTEN, x, "flatten"), param(g, "fc.weight", 2, DIMS(4, 27), dw),
                    param(g, "fc.bias", 1, DIMS(4), db)};
    *logits = opn(g, OP_DENSE, d, 3, "fc");
    *probs = op1(g, OP_SOFTMAX, *logits, "softmax");
    ir_add_output(g, *probs, "probs");
    return g;
}

static void test_small_network(void **state)
{
    float image[72];
    wave(image, 72, 0.3, 0.2);
    int32_t logits, probs;
    Graph *g = small_net(&logits, &probs);
    infer(g);
    expect_dims(g, probs, 2, DIMS(1, 4));
    InterpResult r;
    const float *inputs[1] = {image};
    run(g, inputs, &r);
    const double want_logits[] = {16.3219318, 9.78952217, -15.754837, -10.3498993};
    const double want_probs[] = {0.998546621, 0.00145337898, 1.17112871e-14, 2.60578911e-12};
    expect_close(r.values[logits], want_logits, 4);
    expect_close(r.values[probs], want_probs, 4);
    ir_interp_free(&r);
    ir_graph_free(g);
}

/* ---- errors ------------------------------------------------------------- */

/* Runs `g`, which must fail, and checks the message contains `needle`. */
static void expect_failure(const Graph *g, const float *const *inputs, const char *needle)
{
    char err[256] = "";
    InterpResult r = {0, NULL};
    assert_false(ir_interp(g, inputs, &r, err, sizeof err));
    assert_null(r.values);
    if (!strstr(err, needle))
        fail_msg("message '%s' lacks '%s'", err, needle);
}

static void test_missing_weights(void **state)
{
    float x[16] = {0};
    Graph *g = ir_graph_new("noweights");
    int32_t ins[2] = {input(g, "x", 4, DIMS(1, 1, 4, 4)),
                      ir_add_param(g, "c.weight", ir_type_f32(4, DIMS(1, 1, 1, 1)), noloc)};
    int32_t y = opn(g, OP_CONV2D, ins, 2, "c");
    g->nodes[y].attrs.conv.kernel[0] = g->nodes[y].attrs.conv.kernel[1] = 1;
    infer(g);
    const float *inputs[1] = {x};
    char err[256] = "";
    InterpResult r;
    assert_false(ir_interp(g, inputs, &r, err, sizeof err));
    assert_string_equal(err,
                        "parameter 'c.weight' has no weights (use --weights or --random-weights)");
    ir_graph_free(g);
}

/* Values of 2 TiB, legal for inference, more than any test machine holds: an
 * error before anything is allocated, not an abort or the out-of-memory killer. */
static void test_values_larger_than_memory(void **state)
{
    const float x[1] = {0};
    Graph *g = ir_graph_new("huge");
    op1(g, OP_RELU, input(g, "x", 4, DIMS(1, 64, 65536, 65536)), "act");
    infer(g);
    const float *inputs[1] = {x};
    expect_failure(g, inputs, "the interpreter keeps every value of graph 'huge', which takes "
                              "more than the");
    ir_graph_free(g);
}

/* Without shape inference the relu's type is invalid; the input before it has
 * already been given a value, which must be freed (the sanitizer build checks). */
static void test_invalid_type(void **state)
{
    const float x[2] = {1, 2};
    Graph *g = ir_graph_new("invalid");
    op1(g, OP_RELU, input(g, "x", 1, DIMS(2)), "act");
    const float *inputs[1] = {x};
    expect_failure(g, inputs, "invalid type");
    expect_failure(g, inputs, "'act'");
    ir_graph_free(g);
}

/* Layouts are storage choices of the backend: the interpreter computes on
 * logical values whatever they say, and a reorder is a copy. */
static void test_ignores_layouts(void **state)
{
    float x[32];
    seq(x, 32, -8.0, 0.5);
    Graph *g = ir_graph_new("layout");
    int32_t y = op1(g, OP_RELU, input(g, "x", 4, DIMS(1, 2, 4, 4)), "act");
    infer(g);
    g->nodes[y].type.layout = LAYOUT_NCHWC;
    g->nodes[y].type.block = 2;
    int32_t r = op1(g, OP_REORDER, y, "act.to_plain");
    infer(g);
    assert_int_equal(g->nodes[r].type.layout, LAYOUT_PLAIN);
    const float *inputs[1] = {x};
    InterpResult res;
    run(g, inputs, &res);
    for (int i = 0; i < 32; i++)
        assert_true(res.values[r][i] == (x[i] < 0 ? 0.0f : x[i]));
    ir_interp_free(&res);
    ir_graph_free(g);
}

/* conv2d (1x1, 2 -> 2 channels, bias) with act=clip(-1, 1), residual and
 * post=leaky_relu(0.5): out = post(clip(conv + b) + r), worked out by hand. */
static void test_conv_epilogue(void **state)
{
    const float x[4] = {1, 2, 3, -4}; /* [1,2,1,2]: channel 0 = {1,2}, 1 = {3,-4} */
    const float w[4] = {1, 0, 0.5f, 0.5f}, b[2] = {-1.5f, 0}, r[4] = {0.25f, 0.25f, -3, 1};
    Graph *g = ir_graph_new("epi");
    int32_t ins[4] = {input(g, "x", 4, DIMS(1, 2, 1, 2)), param(g, "w", 4, DIMS(2, 2, 1, 1), w),
                      param(g, "b", 1, DIMS(2), b), input(g, "r", 4, DIMS(1, 2, 1, 2))};
    int32_t y = opn(g, OP_CONV2D, ins, 4, "conv");
    Epilogue *e = &g->nodes[y].attrs.conv.epi;
    *e = (Epilogue){OP_CLIP, -1.0f, 1.0f, true, OP_LEAKY_RELU, 0.5f, 0.0f};
    infer(g);
    const float *inputs[2] = {x, r};
    InterpResult res;
    run(g, inputs, &res);
    /* conv + b: o0 = {1-1.5, 2-1.5} = {-0.5, 0.5}; o1 = {0.5*(1+3), 0.5*(2-4)} = {2, -1}
     * clip: {-0.5, 0.5}, {1, -1}; + r: {-0.25, 0.75}, {-2, 0}; leaky 0.5 */
    const float want[4] = {-0.125f, 0.75f, -1.0f, 0.0f};
    for (int i = 0; i < 4; i++)
        assert_float_equal(res.values[y][i], want[i], 1e-7);
    ir_interp_free(&res);
    ir_graph_free(g);
}

/* dense without bias, with a residual and act=relu: out = relu(x W^T) + r. */
static void test_dense_epilogue(void **state)
{
    const float x[2] = {1, -2}, w[4] = {1, 1, 2, 0}, r[2] = {10, 20};
    Graph *g = ir_graph_new("epi");
    int32_t ins[3] = {input(g, "x", 2, DIMS(1, 2)), param(g, "w", 2, DIMS(2, 2), w),
                      input(g, "r", 2, DIMS(1, 2))};
    int32_t y = opn(g, OP_DENSE, ins, 3, "fc");
    g->nodes[y].attrs.dense.epi.act = OP_RELU;
    g->nodes[y].attrs.dense.epi.residual = true;
    infer(g);
    const float *inputs[2] = {x, r};
    InterpResult res;
    run(g, inputs, &res);
    assert_float_equal(res.values[y][0], 10.0f, 0); /* relu(-1) + 10 */
    assert_float_equal(res.values[y][1], 22.0f, 0); /* relu(2) + 20 */
    ir_interp_free(&res);
    ir_graph_free(g);
}

static void test_missing_input_data(void **state)
{
    Graph *g = ir_graph_new("noinput");
    op1(g, OP_RELU, input(g, "x", 1, DIMS(2)), "act");
    infer(g);
    const float *inputs[1] = {NULL};
    expect_failure(g, inputs, "graph input 0");
    ir_graph_free(g);
}

/* Results are copies: they stay valid after the graph is gone. */
static void test_results_outlive_graph(void **state)
{
    const float w[2] = {1.5f, -2.5f};
    Graph *g = ir_graph_new("copy");
    int32_t p = param(g, "w", 1, DIMS(2), w);
    infer(g);
    InterpResult r;
    run(g, NULL, &r);
    ir_graph_free(g);
    expect_close(r.values[p], (const double[]){1.5, -2.5}, 2);
    ir_interp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_stride),
        cmocka_unit_test(test_conv_asymmetric_pad),
        cmocka_unit_test(test_conv_dilation),
        cmocka_unit_test(test_conv_groups),
        cmocka_unit_test(test_conv_depthwise),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_relu6_default_clip),
        cmocka_unit_test(test_sigmoid),
        cmocka_unit_test(test_tanh),
        cmocka_unit_test(test_silu),
        cmocka_unit_test(test_hardsigmoid),
        cmocka_unit_test(test_hardswish),
        cmocka_unit_test(test_affine),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_sub_div_channel_broadcast),
        cmocka_unit_test(test_leaky_relu),
        cmocka_unit_test(test_dropout_is_identity),
        cmocka_unit_test(test_add_channel_broadcast),
        cmocka_unit_test(test_mul_channel_broadcast_right),
        cmocka_unit_test(test_add_mul_same_shape),
        cmocka_unit_test(test_broadcast_ranks_and_both_sides),
        cmocka_unit_test(test_concat_channels),
        cmocka_unit_test(test_concat_last_axis),
        cmocka_unit_test(test_maxpool_pad_ceil),
        cmocka_unit_test(test_maxpool_dilation),
        cmocka_unit_test(test_avgpool_ceil_count_include_pad),
        cmocka_unit_test(test_avgpool_ceil_without_pad),
        cmocka_unit_test(test_global_avgpool),
        cmocka_unit_test(test_adaptive_avgpool),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_softmax_axis1),
        cmocka_unit_test(test_softmax_last_axis_stable),
        cmocka_unit_test(test_activations_nonfinite),
        cmocka_unit_test(test_maxpool_nonfinite),
        cmocka_unit_test(test_softmax_nonfinite),
        cmocka_unit_test(test_small_network),
        cmocka_unit_test(test_missing_weights),
        cmocka_unit_test(test_invalid_type),
        cmocka_unit_test(test_ignores_layouts),
        cmocka_unit_test(test_conv_epilogue),
        cmocka_unit_test(test_dense_epilogue),
        cmocka_unit_test(test_missing_input_data),
        cmocka_unit_test(test_results_outlive_graph),
        cmocka_unit_test(test_values_larger_than_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
