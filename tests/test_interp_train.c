/* test_interp_train.c: the interpreter's training ops. Every gradient op against
 * central finite differences of its forward op(s), run by the interpreter itself on
 * small random inputs; batch statistics, dropout masks, losses and optimizer updates
 * against values worked out by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir.h"

/* Finite differences: the loss L = sum(r * y) of the forward output y and a fixed
 * random r, in double from the interpreter's f32 outputs, differenced over a step of
 * FD_EPS. With values near 1 the f32 rounding of y alone moves L by ~1e-7 * |y| *
 * size, so a gradient element must be within FD_ABS + FD_REL * |fd|. */
#define FD_EPS 1e-3
#define FD_ABS 2e-3
#define FD_REL 1e-2

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})

static const SrcLoc noloc = {NULL, 0, 0};

static uint64_t rng_state;

/* Uniform in [lo, hi), from a fixed sequence (64-bit LCG). */
static float uniform(float lo, float hi)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng_state >> 40) * 0x1p-24);
}

static int32_t input(Graph *g, const char *name, int32_t rank, const int64_t *dims)
{
    return ir_add_input(g, name, ir_type_f32(rank, dims), noloc);
}

static int32_t node(Graph *g, Op op, const int32_t *ins, int32_t n, const char *name)
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
    if (!ir_interp(g, inputs, r, err, sizeof err))
        fail_msg("ir_interp failed: %s", err);
}

/* ---- the finite-difference check ---------------------------------------- */

/* A graph whose inputs are the forward op's operands (and dy); `y` the forward output,
 * `dy` the input holding dL/dy (-1: y is the loss itself), `grad` the gradient op's
 * node and `wrt` the input it differentiates with respect to. */
typedef struct FdCase {
    Graph *g;
    int32_t y, dy, grad, wrt;
    int32_t fixed; /* an input given as `fixed_data` (labels), not random (-1: none) */
    const float *fixed_data;
    float lo, hi; /* range of the random inputs */
    bool distinct; /* `wrt` a shuffled grid of values 2 / n apart: no ties for a maximum */
} FdCase;

static double loss_of(const FdCase *c, float **ins)
{
    InterpResult r;
    run(c->g, (const float *const *)ins, &r);
    const float *y = r.values[c->y];
    int64_t n = ir_numel(&c->g->nodes[c->y].type);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (c->dy >= 0 ? (double)ins[c->dy][i] : 1.0) * (double)y[i];
    ir_interp_free(&r);
    return s;
}

/* Fills the inputs, runs the gradient op once and compares each of its elements with
 * the central difference of L over that element of input `wrt`. */
static void check_fd(FdCase c)
{
    infer(c.g);
    int32_t nin = ir_num_inputs(c.g);
    float *ins[8];
    assert_true(nin <= 8);
    for (int32_t k = 0; k < nin; k++) {
        const Node *in = &c.g->nodes[ir_input_node(c.g, k)];
        int64_t n = ir_numel(&in->type);
        ins[k] = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++)
            ins[k][i] = k == c.fixed ? c.fixed_data[i] : uniform(c.lo, c.hi);
        for (int64_t i = 0; c.distinct && k == c.wrt && i < n; i++) {
            int64_t j = (int64_t)uniform(0, (float)(i + 1));
            ins[k][i] = ins[k][j < i ? j : i];
            ins[k][j < i ? j : i] = (float)(-1.0 + 2.0 * (double)i / (double)n);
        }
    }
    InterpResult r;
    run(c.g, (const float *const *)ins, &r);
    int64_t n = ir_numel(&c.g->nodes[c.grad].type);
    assert_int_equal(n, ir_numel(&c.g->nodes[ir_input_node(c.g, c.wrt)].type));
    float *x = ins[c.wrt];
    for (int64_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = (float)(x0 + FD_EPS);
        double up = loss_of(&c, ins), h = (double)x[i] - (double)x0;
        x[i] = (float)(x0 - FD_EPS);
        double down = loss_of(&c, ins);
        h += (double)x0 - (double)x[i];
        x[i] = x0;
        double fd = (up - down) / h, got = (double)r.values[c.grad][i];
        if (!(fabs(got - fd) <= FD_ABS + FD_REL * fabs(fd)))
            fail_msg("%s element %lld: got %.7g, finite difference %.7g",
                     c.g->nodes[c.grad].name, (long long)i, got, fd);
    }
    ir_interp_free(&r);
    for (int32_t k = 0; k < nin; k++)
        free(ins[k]);
    ir_graph_free(c.g);
}

static FdCase fd_case(Graph *g, int32_t y, int32_t dy, int32_t grad, int32_t wrt)
{
    return (FdCase){g, y, dy, grad, wrt, -1, NULL, -1.0f, 1.0f, false};
}

/* ---- convolution and dense ---------------------------------------------- */

/* x, w, dy → conv2d(x, w) and one of its gradients (wrt 0: x, 1: w). */
static void check_conv(const int64_t *xd, const int64_t *wd, ConvAttrs a, int32_t wrt)
{
    Graph *g = ir_graph_new("conv");
    int32_t x = input(g, "x", 4, xd), w = input(g, "w", 4, wd);
    a.kernel[0] = (int32_t)wd[2];
    a.kernel[1] = (int32_t)wd[3];
    int32_t y = node(g, OP_CONV2D, (int32_t[]){x, w}, 2, "y");
    g->nodes[y].attrs.conv = a;
    infer(g);
    int32_t dy = input(g, "dy", 4, g->nodes[y].type.dims);
    int32_t gi = wrt == 0 ? node(g, OP_CONV2D_GRAD_INPUT, (int32_t[]){dy, w, x}, 3, "dx")
                          : node(g, OP_CONV2D_GRAD_WEIGHT, (int32_t[]){dy, x, w}, 3, "dw");
    g->nodes[gi].attrs.conv = a;
    check_fd(fd_case(g, y, 2, gi, wrt));
}

static void test_conv_grads(void **state)
{
    (void)state;
    ConvAttrs plain = {.stride = {1, 1}, .dilation = {1, 1}, .groups = 1, .pad = {1, 1, 1, 1}};
    ConvAttrs strided = {.stride = {2, 3}, .dilation = {1, 1}, .groups = 2, .pad = {1, 0, 2, 1}};
    ConvAttrs dilated = {.stride = {1, 2}, .dilation = {2, 1}, .groups = 1, .pad = {0, 2, 1, 0}};
    ConvAttrs depthwise = {.stride = {2, 2}, .dilation = {1, 1}, .groups = 4, .pad = {1, 1, 0, 0}};
    for (int32_t wrt = 0; wrt < 2; wrt++) {
        check_conv(DIMS(2, 3, 5, 4), DIMS(4, 3, 3, 3), plain, wrt);
        check_conv(DIMS(1, 4, 7, 8), DIMS(6, 2, 3, 2), strided, wrt);
        check_conv(DIMS(2, 2, 6, 5), DIMS(3, 2, 2, 3), dilated, wrt);
        check_conv(DIMS(1, 4, 5, 5), DIMS(4, 1, 3, 3), depthwise, wrt);
    }
}

/* conv2d(x, w, b): the bias's gradient is bias_grad(dy, axis=1). */
static void test_conv_bias_grad(void **state)
{
    (void)state;
    Graph *g = ir_graph_new("conv_bias");
    int32_t x = input(g, "x", 4, DIMS(2, 2, 4, 4)), w = input(g, "w", 4, DIMS(3, 2, 3, 3));
    int32_t b = input(g, "b", 1, DIMS(3));
    int32_t y = node(g, OP_CONV2D, (int32_t[]){x, w, b}, 3, "y");
    g->nodes[y].attrs.conv.kernel[0] = g->nodes[y].attrs.conv.kernel[1] = 3;
    int32_t dy = input(g, "dy", 4, DIMS(2, 3, 2, 2));
    int32_t gb = node(g, OP_BIAS_GRAD, &dy, 1, "db");
    check_fd(fd_case(g, y, 3, gb, 2));
}

/* dense(x[N, I], w[O, I], b[O]) and its three gradients (wrt 0, 1, 2). */
static void check_dense(int32_t wrt)
{
    Graph *g = ir_graph_new("dense");
    int32_t x = input(g, "x", 2, DIMS(3, 5)), w = input(g, "w", 2, DIMS(4, 5));
    int32_t b = input(g, "b", 1, DIMS(4));
    int32_t y = node(g, OP_DENSE, (int32_t[]){x, w, b}, 3, "y");
    int32_t dy = input(g, "dy", 2, DIMS(3, 4)), gi;
    if (wrt == 0)
        gi = node(g, OP_DENSE_GRAD_INPUT, (int32_t[]){dy, w}, 2, "dx");
    else if (wrt == 1)
        gi = node(g, OP_DENSE_GRAD_WEIGHT, (int32_t[]){dy, x}, 2, "dw");
    else {
        gi = node(g, OP_BIAS_GRAD, &dy, 1, "db");
        g->nodes[gi].attrs.axis.axis = -1;
    }
    check_fd(fd_case(g, y, 3, gi, wrt));
}

static void test_dense_grads(void **state)
{
    (void)state;
    for (int32_t wrt = 0; wrt < 3; wrt++)
        check_dense(wrt);
}

/* ---- activations -------------------------------------------------------- */

/* act(x) against act_grad(dy, x), x in [lo, hi). */
static void check_act(Op op, float pa, float pb, float lo, float hi)
{
    Graph *g = ir_graph_new("act");
    int32_t x = input(g, "x", 2, DIMS(4, 6));
    int32_t y = node(g, op, &x, 1, "y");
    Node *n = &g->nodes[y];
    if (op == OP_CLIP)
        n->attrs.clip = (ClipAttrs){pa, pb};
    else if (op == OP_LEAKY_RELU)
        n->attrs.leaky.alpha = pa;
    else if (op == OP_AFFINE)
        n->attrs.affine = (AffineAttrs){pa, pb};
    else if (op == OP_GELU)
        n->attrs.gelu.tanh = pa != 0.0f;
    int32_t dy = input(g, "dy", 2, DIMS(4, 6));
    int32_t gi = node(g, OP_ACT_GRAD, (int32_t[]){dy, x}, 2, "dx");
    g->nodes[gi].attrs.actgrad.act = op;
    ir_act_params(&g->nodes[y], &g->nodes[gi].attrs.actgrad.a, &g->nodes[gi].attrs.actgrad.b);
    FdCase c = fd_case(g, y, 1, gi, 0);
    c.lo = lo;
    c.hi = hi;
    check_fd(c);
}

static void test_act_grads(void **state)
{
    (void)state;
    check_act(OP_RELU, 0, 0, -2, 2);
    check_act(OP_CLIP, -0.5f, 0.7f, -2, 2);
    check_act(OP_SIGMOID, 0, 0, -4, 4);
    check_act(OP_TANH, 0, 0, -2, 2);
    check_act(OP_SILU, 0, 0, -4, 4);
    check_act(OP_LEAKY_RELU, 0.1f, 0, -2, 2);
    check_act(OP_HARDSWISH, 0, 0, -5, 5);
    check_act(OP_HARDSIGMOID, 0, 0, -5, 5);
    check_act(OP_GELU, 0, 0, -3, 3);
    check_act(OP_GELU, 1, 0, -3, 3);
    check_act(OP_ERF, 0, 0, -2, 2);
    check_act(OP_SQRT, 0, 0, 0.5f, 3);
    check_act(OP_EXP, 0, 0, -2, 2);
    check_act(OP_ABS, 0, 0, -2, 2);
    check_act(OP_AFFINE, 2.5f, 1, -2, 2);
}

/* ---- pooling ------------------------------------------------------------ */

/* pool(x) against its gradient op, over x of dims xd. */
static void check_pool(Op op, Op grad_op, const int64_t *xd, PoolAttrs a, int32_t out_h,
                       int32_t out_w)
{
    Graph *g = ir_graph_new("pool");
    int32_t x = input(g, "x", 4, xd);
    int32_t y = node(g, op, &x, 1, "y");
    if (op == OP_ADAPTIVE_AVGPOOL)
        g->nodes[y].attrs.adaptive = (AdaptiveAttrs){{out_h, out_w}};
    else if (op != OP_GLOBAL_AVGPOOL)
        g->nodes[y].attrs.pool = a;
    infer(g);
    int32_t dy = input(g, "dy", 4, g->nodes[y].type.dims);
    int32_t gi = node(g, grad_op, (int32_t[]){dy, x}, 2, "dx");
    g->nodes[gi].attrs = g->nodes[y].attrs;
    FdCase c = fd_case(g, y, 1, gi, 0);
    c.distinct = true;
    check_fd(c);
}

static void test_maxpool_grad(void **state)
{
    (void)state;
    PoolAttrs a = {.kernel = {3, 3}, .stride = {2, 2}, .dilation = {1, 1}, .pad = {1, 1, 1, 1}};
    check_pool(OP_MAXPOOL, OP_MAXPOOL_GRAD, DIMS(2, 2, 7, 6), a, 0, 0);
    PoolAttrs ceil = {.kernel = {2, 3}, .stride = {2, 2}, .dilation = {1, 1}, .pad = {0, 1, 0, 1},
                      .ceil_mode = true};
    check_pool(OP_MAXPOOL, OP_MAXPOOL_GRAD, DIMS(1, 3, 7, 8), ceil, 0, 0);
    PoolAttrs dil = {.kernel = {2, 2}, .stride = {1, 2}, .dilation = {2, 2}, .pad = {1, 0, 1, 0}};
    check_pool(OP_MAXPOOL, OP_MAXPOOL_GRAD, DIMS(1, 2, 6, 7), dil, 0, 0);
}

/* Ties go to the first maximum in row-major order, as in PyTorch. */
static void test_maxpool_grad_first_max(void **state)
{
    (void)state;
    Graph *g = ir_graph_new("ties");
    int32_t x = input(g, "x", 4, DIMS(1, 1, 2, 2)), dy = input(g, "dy", 4, DIMS(1, 1, 1, 1));
    int32_t gi = node(g, OP_MAXPOOL_GRAD, (int32_t[]){dy, x}, 2, "dx");
    g->nodes[gi].attrs.pool.kernel[0] = g->nodes[gi].attrs.pool.kernel[1] = 2;
    infer(g);
    const float xv[4] = {1, 3, 3, 2}, dv[1] = {5};
    InterpResult r;
    run(g, (const float *const[]){xv, dv}, &r);
    const float want[4] = {0, 5, 0, 0};
    assert_memory_equal(r.values[gi], want, sizeof want);
    ir_interp_free(&r);
    ir_graph_free(g);
}

static void test_avgpool_grad(void **state)
{
    (void)state;
    PoolAttrs a = {.kernel = {3, 3}, .stride = {2, 2}, .dilation = {1, 1}, .pad = {1, 1, 1, 1},
                   .count_include_pad = true};
    check_pool(OP_AVGPOOL, OP_AVGPOOL_GRAD, DIMS(2, 2, 7, 6), a, 0, 0);
    a.count_include_pad = false;
    check_pool(OP_AVGPOOL, OP_AVGPOOL_GRAD, DIMS(2, 2, 7, 6), a, 0, 0);
    PoolAttrs ceil = {.kernel = {2, 3}, .stride = {2, 2}, .dilation = {1, 1}, .pad = {0, 1, 0, 1},
                      .ceil_mode = true, .count_include_pad = true};
    check_pool(OP_AVGPOOL, OP_AVGPOOL_GRAD, DIMS(1, 3, 7, 8), ceil, 0, 0);
    ceil.count_include_pad = false;
    check_pool(OP_AVGPOOL, OP_AVGPOOL_GRAD, DIMS(1, 3, 7, 8), ceil, 0, 0);
}

static void test_global_adaptive_avgpool_grad(void **state)
{
    (void)state;
    PoolAttrs none = {0};
    check_pool(OP_GLOBAL_AVGPOOL, OP_GLOBAL_AVGPOOL_GRAD, DIMS(2, 3, 4, 5), none, 0, 0);
    check_pool(OP_ADAPTIVE_AVGPOOL, OP_ADAPTIVE_AVGPOOL_GRAD, DIMS(2, 2, 7, 5), none, 3, 2);
    check_pool(OP_ADAPTIVE_AVGPOOL, OP_ADAPTIVE_AVGPOOL_GRAD, DIMS(1, 2, 4, 6), none, 5, 4);
}

/* ---- data movement ------------------------------------------------------ */

/* add(a, b) with b broadcast: dL/da = reduce_as(dy, a), dL/db = reduce_as(dy, b). */
static void check_reduce_as(const int64_t *ad, int32_t arank, const int64_t *bd, int32_t brank,
                            Op op, int32_t wrt)
{
    Graph *g = ir_graph_new("reduce_as");
    int32_t a = input(g, "a", arank, ad), b = input(g, "b", brank, bd);
    int32_t y = node(g, op, (int32_t[]){a, b}, 2, "y");
    infer(g);
    int32_t dy = input(g, "dy", g->nodes[y].type.rank, g->nodes[y].type.dims);
    int32_t gi = node(g, OP_REDUCE_AS, (int32_t[]){dy, wrt == 0 ? a : b}, 2, "d");
    check_fd(fd_case(g, y, 2, gi, wrt));
}

static void test_reduce_as(void **state)
{
    (void)state;
    for (int32_t wrt = 0; wrt < 2; wrt++) {
        check_reduce_as(DIMS(2, 3, 4, 5), 4, DIMS(3, 1, 5), 3, OP_ADD, wrt);
        check_reduce_as(DIMS(2, 1, 4), 3, DIMS(3, 1), 2, OP_ADD, wrt);
        check_reduce_as(DIMS(2, 3), 2, DIMS(2, 3), 2, OP_ADD, wrt);
    }
}

static void test_slice_grad(void **state)
{
    (void)state;
    for (int32_t axis = 1; axis < 3; axis++) {
        Graph *g = ir_graph_new("slice");
        int32_t x = input(g, "x", 3, DIMS(3, 4, 5));
        int32_t y = node(g, OP_SLICE, &x, 1, "y");
        g->nodes[y].attrs.slice = (SliceAttrs){axis, 1, 3};
        infer(g);
        int32_t dy = input(g, "dy", 3, g->nodes[y].type.dims);
        int32_t gi = node(g, OP_SLICE_GRAD, (int32_t[]){dy, x}, 2, "dx");
        g->nodes[gi].attrs.slice = g->nodes[y].attrs.slice;
        check_fd(fd_case(g, y, 1, gi, 0));
    }
}

static void test_reshape_as(void **state)
{
    (void)state;
    Graph *g = ir_graph_new("flatten");
    int32_t x = input(g, "x", 4, DIMS(2, 3, 2, 2));
    int32_t y = node(g, OP_FLATTEN, &x, 1, "y");
    int32_t dy = input(g, "dy", 2, DIMS(2, 12));
    int32_t gi = node(g, OP_RESHAPE_AS, (int32_t[]){dy, x}, 2, "dx");
    check_fd(fd_case(g, y, 1, gi, 0));
}

/* ---- batch normalization ------------------------------------------------ */

/* bn_train(x, bn_stats(x), w, b) against bn_grad_input (wrt 0), bn_grad_weight (1)
 * and bias_grad (2). */
static void check_bn(const int64_t *xd, int32_t rank, int32_t wrt)
{
    Graph *g = ir_graph_new("bn");
    int32_t x = input(g, "x", rank, xd), w = input(g, "w", 1, &xd[1]);
    int32_t b = input(g, "b", 1, &xd[1]);
    int32_t s = node(g, OP_BN_STATS, &x, 1, "stats");
    int32_t y = node(g, OP_BN_TRAIN, (int32_t[]){x, s, w, b}, 4, "y");
    int32_t dy = input(g, "dy", rank, xd), gi;
    if (wrt == 0)
        gi = node(g, OP_BN_GRAD_INPUT, (int32_t[]){dy, x, s, w}, 4, "dx");
    else if (wrt == 1)
        gi = node(g, OP_BN_GRAD_WEIGHT, (int32_t[]){dy, x, s}, 3, "dw");
    else
        gi = node(g, OP_BIAS_GRAD, &dy, 1, "db");
    check_fd(fd_case(g, y, 3, gi, wrt));
}

static void test_bn_grads(void **state)
{
    (void)state;
    for (int32_t wrt = 0; wrt < 3; wrt++) {
        check_bn(DIMS(2, 3, 3, 2), 4, wrt);
        check_bn(DIMS(5, 4), 2, wrt);
    }
}

/* x [2, 2, 1, 2]: channel 0 holds 1, 2, 5, 6 (mean 3.5, biased variance 4.25),
 * channel 1 holds 3, 4, 7, 8 (mean 5.5, variance 4.25). */
static void test_bn_stats_train_running(void **state)
{
    (void)state;
    Graph *g = ir_graph_new("bn");
    int32_t x = input(g, "x", 4, DIMS(2, 2, 1, 2)), w = input(g, "w", 1, DIMS(2));
    int32_t b = input(g, "b", 1, DIMS(2)), rm = input(g, "rm", 1, DIMS(2));
    int32_t rv = input(g, "rv", 1, DIMS(2));
    int32_t s = node(g, OP_BN_STATS, &x, 1, "stats");
    int32_t y = node(g, OP_BN_TRAIN, (int32_t[]){x, s, w, b}, 4, "y");
    int32_t m = node(g, OP_BN_RUNNING, (int32_t[]){rm, s, x}, 3, "new_mean");
    int32_t v = node(g, OP_BN_RUNNING, (int32_t[]){rv, s, x}, 3, "new_var");
    g->nodes[v].attrs.running.which = 1;
    g->nodes[y].attrs.bn.eps = 0.75f;
    infer(g);
    const float xv[8] = {1, 2, 3, 4, 5, 6, 7, 8}, wv[2] = {2, 1}, bv[2] = {0, 1};
    const float rmv[2] = {0, 1}, rvv[2] = {1, 2};
    InterpResult r;
    run(g, (const float *const[]){xv, wv, bv, rmv, rvv}, &r);
    const float stats[4] = {3.5f, 5.5f, 4.25f, 4.25f};
    assert_memory_equal(r.values[s], stats, sizeof stats);
    /* (x - mean) / sqrt(4.25 + 0.75) * w + b: channel 0 (1 - 3.5) / sqrt(5) * 2 */
    double want_y[8] = {-5 / sqrt(5), -3 / sqrt(5), -2.5 / sqrt(5) + 1, -1.5 / sqrt(5) + 1,
                        3 / sqrt(5), 5 / sqrt(5), 1.5 / sqrt(5) + 1, 2.5 / sqrt(5) + 1};
    for (int i = 0; i < 8; i++)
        assert_float_equal(r.values[y][i], want_y[i], 1e-6);
    /* 0.9 * running + 0.1 * batch; the variance unbiased: 4.25 * 4 / 3 = 17 / 3 */
    assert_float_equal(r.values[m][0], 0.35, 1e-6);
    assert_float_equal(r.values[m][1], 0.9 + 0.55, 1e-6);
    assert_float_equal(r.values[v][0], 0.9 + 1.7 / 3, 1e-6);
    assert_float_equal(r.values[v][1], 1.8 + 1.7 / 3, 1e-6);
    ir_interp_free(&r);
    ir_graph_free(g);
}

/* ---- dropout ------------------------------------------------------------ */

/* The mask keeps about 1 - p of the elements, scaled by 1 / (1 - p), the same for
 * dropout_train and dropout_grad, another for another salt or step. */
static void test_dropout(void **state)
{
    (void)state;
    enum { N = 4000 };
    Graph *g = ir_graph_new("dropout");
    int32_t x = input(g, "x", 1, DIMS(N)), rng = input(g, "rng", 1, DIMS(2));
    int32_t y = node(g, OP_DROPOUT_TRAIN, (int32_t[]){x, rng}, 2, "y");
    int32_t dx = node(g, OP_DROPOUT_GRAD, (int32_t[]){x, rng}, 2, "dx");
    int32_t other = node(g, OP_DROPOUT_TRAIN, (int32_t[]){x, rng}, 2, "other");
    g->nodes[y].attrs.dropout = g->nodes[dx].attrs.dropout = (DropoutAttrs){0.25f, 1};
    g->nodes[other].attrs.dropout = (DropoutAttrs){0.25f, 2};
    infer(g);
    static float xv[N];
    for (int i = 0; i < N; i++)
        xv[i] = (float)(i % 7 + 1);
    const float rv[2] = {7, 3};
    InterpResult r;
    run(g, (const float *const[]){xv, rv}, &r);
    int kept = 0, differ = 0;
    for (int i = 0; i < N; i++) {
        float v = r.values[y][i];
        assert_true(v == 0.0f || v == (float)((double)xv[i] / 0.75));
        assert_true(r.values[dx][i] == v);
        kept += v != 0.0f;
        differ += (r.values[other][i] != 0.0f) != (v != 0.0f);
        assert_int_equal(v != 0.0f, ir_dropout_keep(7, 3, 1, i, 0.25f));
    }
    /* 3000 expected, binomial standard deviation 27 */
    assert_in_range(kept, 2850, 3150);
    assert_in_range(differ, 1200, 1800); /* 2 p (1 - p) N = 1500 */
    ir_interp_free(&r);
    ir_graph_free(g);
    /* dropout_grad is the derivative of dropout_train */
    static const float rng_fixed[2] = {11, 4};
    Graph *h = ir_graph_new("dropout_fd");
    x = input(h, "x", 2, DIMS(5, 7));
    rng = input(h, "rng", 1, DIMS(2));
    y = node(h, OP_DROPOUT_TRAIN, (int32_t[]){x, rng}, 2, "y");
    int32_t dy = input(h, "dy", 2, DIMS(5, 7));
    dx = node(h, OP_DROPOUT_GRAD, (int32_t[]){dy, rng}, 2, "dx");
    h->nodes[y].attrs.dropout = h->nodes[dx].attrs.dropout = (DropoutAttrs){0.3f, 5};
    FdCase c = fd_case(h, y, 2, dx, 0);
    c.fixed = 1;
    c.fixed_data = rng_fixed;
    check_fd(c);
}

/* ---- losses ------------------------------------------------------------- */

static void test_softmax_xent(void **state)
{
    (void)state;
    Graph *g = ir_graph_new("xent");
    int32_t x = input(g, "logits", 2, DIMS(2, 3)), l = input(g, "labels", 1, DIMS(2));
    int32_t y = node(g, OP_SOFTMAX_XENT, (int32_t[]){x, l}, 2, "loss");
    int32_t gi = node(g, OP_SOFTMAX_XENT_GRAD, (int32_t[]){x, l}, 2, "dx");
    infer(g);
    /* row 0: logits 0, 0, 0, label 2: -log(1/3); row 1: logits 0, ln 2, ln 3 (softmax
     * 1/6, 2/6, 3/6), label 0: -log(1/6). Mean of the two. */
    const float xv[6] = {0, 0, 0, 0, (float)log(2.0), (float)log(3.0)}, lv[2] = {2, 0};
    InterpResult r;
    run(g, (const float *const[]){xv, lv}, &r);
    assert_float_equal(r.values[y][0], (log(3.0) + log(6.0)) / 2, 1e-6);
    const double want[6] = {1 / 6., 1 / 6., -1 / 3., -5 / 12., 1 / 6., 1 / 4.};
    for (int i = 0; i < 6; i++)
        assert_float_equal(r.values[gi][i], want[i], 1e-6);
    ir_interp_free(&r);
    /* A label that is not a class index is an error of the run. */
    const float bad[2][2] = {{0, 3}, {1.5f, 0}};
    for (int k = 0; k < 2; k++) {
        char err[256];
        assert_false(ir_interp(g, (const float *const[]){xv, bad[k]}, &r, err, sizeof err));
        assert_non_null(strstr(err, "not a class index in [0, 3)"));
    }
    /* The gradient against finite differences of the loss. */
    static const float labels[4] = {1, 0, 3, 2};
    Graph *h = ir_graph_new("xent_fd");
    x = input(h, "logits", 2, DIMS(4, 5));
    l = input(h, "labels", 1, DIMS(4));
    y = node(h, OP_SOFTMAX_XENT, (int32_t[]){x, l}, 2, "loss");
    gi = node(h, OP_SOFTMAX_XENT_GRAD, (int32_t[]){x, l}, 2, "dx");
    FdCase c = fd_case(h, y, -1, gi, 0);
    c.fixed = 1;
    c.fixed_data = labels;
    c.lo = -3;
    c.hi = 3;
    check_fd(c);
    ir_graph_free(g);
}

static void test_mse(void **state)
{
    (void)state;
    Graph *g = ir_graph_new("mse");
    int32_t p = input(g, "pred", 2, DIMS(2, 2)), t = input(g, "target", 2, DIMS(2, 2));
    int32_t y = node(g, OP_MSE, (int32_t[]){p, t}, 2, "loss");
    int32_t gi = node(g, OP_MSE_GRAD, (int32_t[]){p, t}, 2, "dp");
    infer(g);
    const float pv[4] = {1, 2, 3, 4}, tv[4] = {0, 2, 5, 3};
    InterpResult r;
    run(g, (const float *const[]){pv, tv}, &r);
    assert_float_equal(r.values[y][0], (1 + 0 + 4 + 1) / 4.0, 1e-7);
    const float want[4] = {0.5f, 0, -1, 0.5f};
    assert_memory_equal(r.values[gi], want, sizeof want);
    ir_interp_free(&r);
    check_fd(fd_case(g, y, -1, gi, 0));
}

/* ---- optimizers --------------------------------------------------------- */

/* One node of `op` over one-element inputs; returns its value. */
static float optim1(Op op, OptimAttrs a, const float *vals, int32_t nvals, const float *hyper)
{
    Graph *g = ir_graph_new("optim");
    int32_t ins[4];
    for (int32_t i = 0; i < nvals; i++)
        ins[i] = input(g, (const char *[]){"a", "b", "c"}[i], 1, DIMS(1));
    if (hyper)
        ins[nvals] = input(g, "hyper", 1, DIMS(3));
    int32_t y = node(g, op, ins, nvals + (hyper ? 1 : 0), "y");
    g->nodes[y].attrs.optim = a;
    infer(g);
    const float *data[4] = {&vals[0], &vals[1], &vals[2], hyper};
    InterpResult r;
    run(g, data, &r);
    float v = r.values[y][0];
    ir_interp_free(&r);
    ir_graph_free(g);
    return v;
}

static void test_sgd(void **state)
{
    (void)state;
    OptimAttrs a = {.weight_decay = 0.1f, .momentum = 0.9f, .dampening = 0.5f};
    const float first[3] = {0.1f, 0.5f, 0.1f}, later[3] = {0.1f, 0.2f, 0.5f};
    /* buf, grad, param: g = 0.5 + 0.1 * 0.1 = 0.51; the first step takes buf = g */
    assert_float_equal(optim1(OP_SGD_MOMENTUM, a, first, 3, (float[]){0.1f, 0, 0}), 0.51, 1e-7);
    /* later: g = 0.2 + 0.05 = 0.25; 0.9 * 0.1 + 0.5 * 0.25 = 0.215 */
    assert_float_equal(optim1(OP_SGD_MOMENTUM, a, later, 3, (float[]){0.1f, 1, 0}), 0.215, 1e-7);
    /* param 1, grad 0.5, buf 0.2, lr 0.1: g = 0.5 + 0.1 = 0.6 */
    const float step[3] = {1, 0.5f, 0.2f}, hyper[3] = {0.1f, 1, 0};
    assert_float_equal(optim1(OP_SGD_STEP, a, step, 3, hyper), 1 - 0.1 * 0.2, 1e-7);
    a.nesterov = true;
    assert_float_equal(optim1(OP_SGD_STEP, a, step, 3, hyper), 1 - 0.1 * (0.6 + 0.18), 1e-7);
    a = (OptimAttrs){.weight_decay = 0.1f};
    assert_float_equal(optim1(OP_SGD_STEP, a, step, 3, hyper), 1 - 0.1 * 0.6, 1e-7);
}

static void test_adam(void **state)
{
    (void)state;
    OptimAttrs a = {.weight_decay = 0.5f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 0.01f};
    /* m, grad, param: g = 0.2 + 0.5 * 2 = 1.2; 0.9 * 0.5 + 0.1 * 1.2 = 0.57 */
    const float mv[3] = {0.5f, 0.2f, 2};
    assert_float_equal(optim1(OP_ADAM_M, a, mv, 3, NULL), 0.57, 1e-7);
    /* 0.99 * 0.5 + 0.01 * 1.44 = 0.5094 */
    assert_float_equal(optim1(OP_ADAM_V, a, mv, 3, NULL), 0.5094, 1e-7);
    /* param 2, m 0.3, v 0.16, lr 0.1, bc1 0.5, bc2 0.25: 2 - 0.2 * 0.3 / (0.8 + 0.01) */
    const float step[3] = {2, 0.3f, 0.16f}, hyper[3] = {0.1f, 0.5f, 0.25f};
    assert_float_equal(optim1(OP_ADAM_STEP, a, step, 3, hyper), 2 - 0.06 / 0.81, 1e-6);
    a.decoupled = true; /* AdamW: g = grad; the weight decays first: 2 * (1 - 0.05) */
    assert_float_equal(optim1(OP_ADAM_M, a, mv, 3, NULL), 0.45 + 0.02, 1e-7);
    assert_float_equal(optim1(OP_ADAM_STEP, a, step, 3, hyper), 1.9 - 0.06 / 0.81, 1e-6);
}

int main(void)
{
    rng_state = 12345;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_grads),
        cmocka_unit_test(test_conv_bias_grad),
        cmocka_unit_test(test_dense_grads),
        cmocka_unit_test(test_act_grads),
        cmocka_unit_test(test_maxpool_grad),
        cmocka_unit_test(test_maxpool_grad_first_max),
        cmocka_unit_test(test_avgpool_grad),
        cmocka_unit_test(test_global_adaptive_avgpool_grad),
        cmocka_unit_test(test_reduce_as),
        cmocka_unit_test(test_slice_grad),
        cmocka_unit_test(test_reshape_as),
        cmocka_unit_test(test_bn_grads),
        cmocka_unit_test(test_bn_stats_train_running),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_mse),
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adam),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
