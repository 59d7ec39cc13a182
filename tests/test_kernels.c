/* test_kernels.c: the conv2d and dense kernels of the LLVM backend, each
 * compiled on its own (tests/kernel_harness.h) and run on blocked or plain
 * buffers, against the reference interpreter on the same graph:
 * max|got - want| <= 1e-4 * max|want|. Where the interpreter gives NaN or an
 * infinity (NaN and infinite inputs through activations, epilogues and max
 * pooling, as PyTorch), the kernel must give the same. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "frontend.h"
#include "kernel_harness.h"
#include "passes.h"
#include "test_util.h"

#define TOL 1e-4
#define SENTINEL 1234.5f

static const SrcLoc noloc = {NULL, 0, 0};

typedef struct ConvCase {
    int64_t N, C, H, W, O;
    int32_t k[2], s[2], d[2], pad[4], groups;
    bool bias;
    Epilogue epi;
    bool in_blocked, out_blocked;
    int64_t extra_channels; /* output written inside a wider (concat) buffer */
    int32_t specials;       /* NaN, +inf and -inf among the input (and residual) values */
    int32_t winograd;       /* ConvAttrs.winograd: the Winograd F(m×m) kernel, m 2 or 4 */
    int32_t block;          /* blocks of this many channels; 0: the target's lanes */
} ConvCase;

/* Defaults: 3×3, stride 1, pad 1, dilation 1, one group, bias, blocked. */
static ConvCase conv_case(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O)
{
    return (ConvCase){.N = N, .C = C, .H = H, .W = W, .O = O, .k = {3, 3}, .s = {1, 1},
                      .d = {1, 1}, .pad = {1, 1, 1, 1}, .groups = 1, .bias = true,
                      .in_blocked = true, .out_blocked = true};
}

static int64_t count_nonfinite(const float *v, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        k += !isfinite(v[i]);
    return k;
}

static float *random_values(int64_t n, const char *stream)
{
    float *v = ir_xmalloc((size_t)n * sizeof(float));
    Rng r = ir_rng(7, stream);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(2.0 * ir_rng_uniform(&r) - 1.0);
    return v;
}

/* Over the finite values of `want`; where it is NaN or infinite, `got` must
 * be the same or the error is infinite. */
static double rel_error(const float *got, const float *want, int64_t n)
{
    double md = 0.0, mw = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(want[i])) {
            bool same = isnan(want[i]) ? isnan(got[i]) : got[i] == want[i];
            md = same ? md : INFINITY;
            continue;
        }
        double d = fabs((double)got[i] - (double)want[i]);
        md = d > md || isnan(d) ? d : md;
        mw = fabs((double)want[i]) > mw ? fabs((double)want[i]) : mw;
    }
    return mw > 0.0 ? md / mw : md;
}

/* x (input 0), weight, [bias], [residual (input 1)] → conv; shapes inferred,
 * weights random. Returns the conv node. */
static int32_t build_conv(Graph *g, const ConvCase *c)
{
    int32_t x = ir_add_input(g, "x", ir_type_f32(4, (int64_t[]){c->N, c->C, c->H, c->W}), noloc);
    int64_t wd[4] = {c->O, c->C / c->groups, c->k[0], c->k[1]};
    int32_t ins[4] = {x, ir_add_param(g, "conv.weight", ir_type_f32(4, wd), noloc)};
    int32_t n = 2;
    if (c->bias)
        ins[n++] = ir_add_param(g, "conv.bias", ir_type_f32(1, (int64_t[]){c->O}), noloc);
    if (c->epi.residual) {
        int64_t oh = (c->H + c->pad[0] + c->pad[2] - c->d[0] * (c->k[0] - 1) - 1) / c->s[0] + 1;
        int64_t ow = (c->W + c->pad[1] + c->pad[3] - c->d[1] * (c->k[1] - 1) - 1) / c->s[1] + 1;
        int64_t rd[4] = {c->N, c->O, oh, ow};
        ins[n++] = ir_add_input(g, "r", ir_type_f32(4, rd), noloc);
    }
    int32_t id = ir_add_node(g, OP_CONV2D, ins, n, "conv", noloc);
    ConvAttrs *a = &g->nodes[id].attrs.conv;
    memcpy(a->kernel, c->k, sizeof a->kernel);
    memcpy(a->stride, c->s, sizeof a->stride);
    memcpy(a->dilation, c->d, sizeof a->dilation);
    memcpy(a->pad, c->pad, sizeof a->pad);
    a->groups = c->groups;
    a->epi = c->epi;
    a->winograd = c->winograd;
    ir_add_output(g, id, "y");
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(ir_infer_shapes(g, &d));
    ir_diag_fini(&d);
    fe_random_weights(g, 11);
    return id;
}

static void set_blocked(TensorType *t, int32_t b)
{
    t->layout = LAYOUT_NCHWC;
    t->block = b;
}

/* Runs the kernel over its items in two calls (checks the item split). */
static void run_split(const KhKernel *k, void **args)
{
    int64_t half = k->items / 2;
    void *scratch = kh_scratch(k);
    assert_non_null(scratch);
    k->fn(args, 0, half, scratch);
    k->fn(args, half, k->items, scratch);
    free(scratch);
}

/* Gives the graph the case's layouts and output placement (the interpreter
 * has already run: it ignores both). Returns the output's batch stride. */
static int64_t place_conv(Graph *g, int32_t id, const ConvCase *c, int32_t b)
{
    const Node *n = &g->nodes[id];
    b = c->block ? c->block : b;
    if (c->in_blocked)
        set_blocked(&g->nodes[0].type, b);
    if (c->out_blocked)
        set_blocked(&g->nodes[id].type, b);
    if (c->epi.residual)
        g->nodes[n->inputs[n->ninputs - 1]].type = n->type;
    int64_t ostride = (c->O + c->extra_channels) * n->type.dims[2] * n->type.dims[3];
    if (c->extra_channels)
        g->nodes[id].mem.batch_stride = ostride;
    return ostride;
}

/* Runs the kernel on the case's layouts; compares with `want` and checks that
 * the output's neighbours in a wider buffer are untouched. */
static void run_conv(const KhKernel *k, const Graph *g, int32_t id, const ConvCase *c,
                     const float *x, const float *r, const float *want, int64_t ostride)
{
    const Node *n = &g->nodes[id];
    int64_t N = c->N, O = c->O, OHW = n->type.dims[2] * n->type.dims[3], HW = c->H * c->W;
    int64_t blk = c->block ? c->block : k->vec;
    int64_t xb_b = c->in_blocked ? blk : 1, ob_b = c->out_blocked ? blk : 1;
    float *xb = ir_xmalloc((size_t)(N * c->C * HW) * sizeof(float));
    float *rb = ir_xmalloc((size_t)(N * O * OHW) * sizeof(float));
    float *ob = ir_xmalloc((size_t)(N * ostride) * sizeof(float));
    float *got = ir_xmalloc((size_t)(N * O * OHW) * sizeof(float));
    for (int64_t i = 0; i < N * ostride; i++)
        ob[i] = SENTINEL;
    kh_block(x, xb, N, c->C, HW, xb_b, c->C * HW);
    kh_block(r, rb, N, O, OHW, ob_b, O * OHW);
    void *args[5] = {ob, xb, NULL, NULL, NULL};
    args[n->ninputs] = c->epi.residual ? rb : args[n->ninputs];
    run_split(k, args);
    kh_unblock(ob, got, N, O, OHW, ob_b, ostride);
    double e = rel_error(got, want, N * O * OHW);
    if (e > TOL || getenv("KH_VERBOSE"))
        fprintf(stderr, "conv N%lld C%lld %lldx%lld O%lld k%dx%d s%d p%d,%d,%d,%d g%d: %g\n",
                (long long)N, (long long)c->C, (long long)c->H, (long long)c->W, (long long)O,
                c->k[0], c->k[1], c->s[0], c->pad[0], c->pad[1], c->pad[2], c->pad[3],
                c->groups, e);
    assert_true(e <= TOL);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = O * OHW; j < ostride; j++)
            assert_true(ob[i * ostride + j] == SENTINEL);
    free(xb), free(rb), free(ob), free(got);
}

/* The host's vectors, or AVX2's where the case's blocked channels do not fill
 * whole blocks of the host's (the layout pass would not block them): cases
 * written for 8 lanes also run on AVX-512. */
static const char *fitting_features(const ConvCase *c, const char *features)
{
    int32_t b = c->block ? c->block : kh_lanes(features);
    bool fits = (!c->in_blocked || c->C % b == 0) && (!c->out_blocked || c->O % b == 0);
    return fits || features ? features : "+avx,+avx2,+fma";
}

/* The case against the interpreter; with vectors wider than this machine's,
 * the kernel is only compiled. */
static void check_conv(const ConvCase *c, const char *features)
{
    features = fitting_features(c, features);
    Graph *g = ir_graph_new("t");
    int32_t id = build_conv(g, c);
    const Node *n = &g->nodes[id];
    int64_t OHW = n->type.dims[2] * n->type.dims[3];
    float *x = random_values(c->N * c->C * c->H * c->W, "x");
    float *r = random_values(c->N * c->O * OHW, "r");
    poke_nonfinite(x, c->N * c->C * c->H * c->W, c->specials, "n+-", 1);
    poke_nonfinite(r, c->N * c->O * OHW, c->specials, "n+-", 2);
    const float *ins[2] = {x, r};
    InterpResult ref;
    char err[256];
    assert_true(ir_interp(g, ins, &ref, err, sizeof err));
    if (c->specials) assert_true(count_nonfinite(ref.values[id], c->N * c->O * OHW) > 0);
    int32_t b = kh_lanes(features);
    int64_t ostride = place_conv(g, id, c, b);
    if (c->winograd) { /* the case is one the conv_algo pass gives the Winograd kernel */
        PassOptions po;
        pass_options_init(&po);
        po.conv_algo = c->winograd == 2 ? CONV_ALGO_WINOGRAD2 : CONV_ALGO_WINOGRAD4;
        po.block = b;
        Diag d;
        ir_diag_init(&d, stderr);
        assert_true(pass_conv_algo(g, &po, &d));
        ir_diag_fini(&d);
        assert_int_equal(g->nodes[id].attrs.conv.winograd, c->winograd);
    }
    KhKernel k;
    assert_true(kh_compile(g, id, features, &k));
    assert_int_equal(k.vec, b);
    if (b <= kh_lanes(NULL))
        run_conv(&k, g, id, c, x, r, ref.values[id], ostride);
    kh_unload(&k);
    free(x), free(r);
    ir_interp_free(&ref);
    ir_graph_free(g);
}

static void conv_3x3(void **state)
{
    ConvCase c = conv_case(1, 16, 10, 13, 16);
    check_conv(&c, NULL);
    c = conv_case(3, 8, 9, 11, 24); /* odd number of output blocks, batch 3 */
    c.bias = false;
    check_conv(&c, NULL);
    c = conv_case(1, 32, 7, 7, 64); /* narrower than a tile */
    check_conv(&c, NULL);
    c = conv_case(1, 16, 30, 31, 32); /* several interior tiles and a remainder */
    check_conv(&c, NULL);
}

static void conv_stride_pad_dilation(void **state)
{
    ConvCase c = conv_case(2, 16, 15, 17, 16);
    c.s[0] = c.s[1] = 2;
    check_conv(&c, NULL);
    c = conv_case(1, 8, 12, 14, 16);
    c.pad[0] = 0, c.pad[1] = 2, c.pad[2] = 1, c.pad[3] = 0; /* asymmetric */
    check_conv(&c, NULL);
    c = conv_case(1, 8, 13, 16, 8);
    c.d[0] = c.d[1] = 2;
    c.pad[0] = c.pad[1] = c.pad[2] = c.pad[3] = 2;
    check_conv(&c, NULL);
    c = conv_case(1, 8, 10, 9, 8);
    c.k[0] = c.k[1] = 5;
    c.pad[0] = c.pad[1] = c.pad[2] = c.pad[3] = 0;
    check_conv(&c, NULL);
    c = conv_case(1, 8, 6, 7, 16); /* padding wider than the kernel: some pixels see none */
    c.k[0] = c.k[1] = 1;
    c.pad[0] = c.pad[1] = c.pad[2] = c.pad[3] = 3;
    c.s[0] = c.s[1] = 2;
    check_conv(&c, NULL);
}

static void conv_pointwise(void **state)
{
    ConvCase c = conv_case(1, 32, 7, 9, 64);
    c.k[0] = c.k[1] = 1;
    c.pad[0] = c.pad[1] = c.pad[2] = c.pad[3] = 0;
    check_conv(&c, NULL);
    c.s[0] = c.s[1] = 2; /* downsampling shortcut */
    check_conv(&c, NULL);
    c = conv_case(3, 16, 14, 14, 32); /* rows regrouped to 49 pixels, batch 3 */
    c.k[0] = c.k[1] = 1;
    c.pad[0] = c.pad[1] = c.pad[2] = c.pad[3] = 0;
    c.epi = (Epilogue){.residual = true, .post = OP_RELU};
    check_conv(&c, NULL);
    c.extra_channels = 8;
    check_conv(&c, NULL);
}

/* Planes too narrow for a register tile per row: tiles cross rows. */
static void conv_small_plane(void **state)
{
    ConvCase c = conv_case(2, 16, 7, 7, 32);
    c.epi = (Epilogue){.act = OP_RELU, .residual = true, .post = OP_RELU};
    check_conv(&c, NULL);
    c = conv_case(1, 8, 14, 13, 16); /* stride 2: a 7×7 output */
    c.s[0] = c.s[1] = 2;
    c.extra_channels = 16;
    check_conv(&c, NULL);
    c = conv_case(1, 8, 5, 6, 24);
    c.k[0] = c.k[1] = 5;
    c.pad[0] = c.pad[1] = c.pad[2] = c.pad[3] = 2;
    check_conv(&c, NULL);
    c = conv_case(1, 8, 4, 3, 8);
    c.pad[0] = 2, c.pad[3] = 0; /* asymmetric padding on a tiny plane */
    c.d[0] = 2;
    check_conv(&c, NULL);
}

static void conv_first_layer(void **state)
{
    ConvCase c = conv_case(1, 3, 23, 29, 16);
    c.k[0] = c.k[1] = 7;
    c.s[0] = c.s[1] = 2;
    c.pad[0] = c.pad[1] = c.pad[2] = c.pad[3] = 3;
    c.in_blocked = false;
    c.epi.act = OP_RELU;
    check_conv(&c, NULL);
    c = conv_case(3, 1, 12, 12, 8); /* one input channel, batch 3 */
    c.in_blocked = false;
    check_conv(&c, NULL);
}

static void conv_epilogues(void **state)
{
    const Epilogue epis[] = {
        {.act = OP_RELU},
        {.act = OP_CLIP, .act_a = 0.0f, .act_b = 0.3f},
        {.act = OP_SILU},
        {.act = OP_SIGMOID},
        {.act = OP_TANH},
        {.act = OP_LEAKY_RELU, .act_a = 0.1f},
        {.act = OP_HARDSWISH},
        {.act = OP_HARDSIGMOID},
        {.act = OP_GELU},
        {.act = OP_GELU, .act_a = 1.0f},
        {.act = OP_AFFINE, .act_a = 0.5f, .act_b = -1.0f},
        {.residual = true, .post = OP_AFFINE, .post_a = -2.0f},
        {.act = OP_AFFINE, .act_a = 0.5f, .post = OP_CLIP, .post_a = -0.2f, .post_b = 0.5f},
        {.residual = true},
        {.residual = true, .post = OP_RELU},
        {.act = OP_RELU, .residual = true, .post = OP_CLIP, .post_a = -0.2f, .post_b = 0.5f},
    };
    for (size_t i = 0; i < sizeof epis / sizeof epis[0]; i++) {
        ConvCase c = conv_case(2, 8, 6, 9, 16);
        c.epi = epis[i];
        check_conv(&c, NULL);
    }
}

/* A NaN or infinite input pixel of a 1x1 conv gives NaN or an infinity at
 * that pixel: relu keeps NaN and +inf and makes -inf 0, clip keeps NaN and
 * bounds the infinities, leaky_relu keeps all three. */
static void conv_nonfinite(void **state)
{
    const Epilogue epis[] = {
        {.act = OP_RELU},
        {.act = OP_CLIP, .act_a = 0.0f, .act_b = 6.0f},
        {.act = OP_LEAKY_RELU, .act_a = 0.1f},
        {.act = OP_SIGMOID},
        {.act = OP_SILU},
        {.act = OP_HARDSWISH},
        {.act = OP_HARDSIGMOID},
        {.residual = true, .post = OP_RELU},
        {.act = OP_CLIP, .act_a = -0.5f, .act_b = 0.5f, .residual = true, .post = OP_CLIP,
         .post_a = 0.0f, .post_b = 6.0f},
    };
    for (size_t i = 0; i < sizeof epis / sizeof epis[0]; i++) {
        ConvCase c = conv_case(2, 16, 6, 9, 32);
        c.k[0] = c.k[1] = 1;
        c.pad[0] = c.pad[1] = c.pad[2] = c.pad[3] = 0;
        c.epi = epis[i];
        c.specials = 12;
        check_conv(&c, NULL);
        c.out_blocked = c.in_blocked = false;
        check_conv(&c, NULL);
        c = conv_case(1, 8, 7, 7, 16); /* 3x3 over plain input and output */
        c.in_blocked = c.out_blocked = false;
        c.epi = epis[i];
        c.specials = 3;
        check_conv(&c, NULL);
    }
}

static void conv_depthwise(void **state)
{
    ConvCase c = conv_case(1, 32, 11, 13, 32);
    c.groups = 32;
    c.epi = (Epilogue){.act = OP_CLIP, .act_a = 0.0f, .act_b = 6.0f};
    check_conv(&c, NULL);
    c.s[0] = c.s[1] = 2;
    c.N = 3;
    check_conv(&c, NULL);
    c = conv_case(2, 16, 9, 30, 16);
    c.groups = 16;
    c.k[0] = c.k[1] = 5;
    c.pad[0] = c.pad[1] = c.pad[2] = c.pad[3] = 2;
    c.epi.residual = true;
    check_conv(&c, NULL);
}

static void conv_generic(void **state)
{
    ConvCase c = conv_case(2, 6, 7, 8, 4);
    c.groups = 2;
    c.in_blocked = c.out_blocked = false;
    c.epi.act = OP_RELU;
    check_conv(&c, NULL);
    c = conv_case(1, 5, 9, 6, 7);
    c.in_blocked = c.out_blocked = false;
    c.s[0] = 2;
    c.d[1] = 2;
    c.pad[3] = 0;
    c.epi = (Epilogue){.act = OP_SILU, .residual = true};
    check_conv(&c, NULL);
    c = conv_case(1, 16, 8, 8, 16); /* grouped with blocked tensors */
    c.groups = 2;
    check_conv(&c, NULL);
}

static void conv_into_concat(void **state)
{
    ConvCase c = conv_case(3, 8, 6, 7, 16);
    c.extra_channels = 24;
    check_conv(&c, NULL);
    c.groups = 8;
    c.C = c.O = 8;
    check_conv(&c, NULL);
}

/* Another vector width than the host's: 4-lane SSE blocks. */
static void conv_sse(void **state)
{
    const char *sse = "+sse2,+sse4.1,-avx,-avx2,-fma,-avx512f";
    ConvCase c = conv_case(2, 12, 9, 10, 8);
    check_conv(&c, sse);
    c.groups = 12;
    c.O = 12;
    check_conv(&c, sse);
    c = conv_case(1, 3, 11, 11, 8);
    c.in_blocked = false;
    c.s[0] = c.s[1] = 2;
    check_conv(&c, sse);
}

/* AVX-512 code (16-lane blocks, 32 registers) is built and verified here
 * and run where the machine has AVX-512. */
static void conv_avx512(void **state)
{
    const char *avx512 = "+avx,+avx2,+fma,+avx512f,+avx512vl,+avx512bw,+avx512dq";
    ConvCase c = conv_case(2, 32, 9, 30, 64);
    c.epi = (Epilogue){.act = OP_SILU, .residual = true};
    check_conv(&c, avx512);
    c = conv_case(1, 64, 7, 7, 48);
    check_conv(&c, avx512);
    c.groups = 64;
    c.O = 64;
    check_conv(&c, avx512);
    c = conv_case(1, 3, 20, 20, 16);
    c.in_blocked = false;
    check_conv(&c, avx512);
}

/* Winograd F(4×4, 3×3) and F(2×2, 3×3) (codegen/llvm/winograd.c): planes that
 * are no multiple of the tile, paddings 0, 1 and asymmetric, batches whose tiles
 * share register tiles, blocks smaller than the vectors, epilogues; on this
 * machine's vectors, AVX2's and AVX-512's. Each case must take the Winograd
 * kernel, in each form. */
static void check_winograd(ConvCase *c, const char *features)
{
    for (int32_t m = 4; m >= 2; m -= 2) {
        ConvCase one = *c;
        one.winograd = m;
        check_conv(&one, features);
    }
}

static void conv_winograd(void **state)
{
    const char *avx2 = "+avx,+avx2,+fma";
    const char *avx512 = "+avx,+avx2,+fma,+avx512f,+avx512vl,+avx512bw,+avx512dq";
    const char *targets[3] = {NULL, avx2, avx512};
    for (int t = 0; t < 3; t++) {
        const char *f = targets[t];
        ConvCase c = conv_case(1, 16, 10, 13, 32); /* H, W no multiple of 4 */
        check_winograd(&c, f);
        c = conv_case(3, 32, 9, 7, 48); /* batch 3 of 12 tiles each, odd output blocks */
        c.epi = (Epilogue){.act = OP_RELU, .residual = true, .post = OP_RELU};
        check_winograd(&c, f);
        c = conv_case(2, 16, 11, 6, 16); /* no padding: 9×4 outputs */
        memset(c.pad, 0, sizeof c.pad);
        c.bias = false;
        check_winograd(&c, f);
        c = conv_case(1, 16, 8, 9, 16); /* asymmetric padding */
        memcpy(c.pad, (int32_t[]){0, 1, 2, 0}, sizeof c.pad);
        c.epi = (Epilogue){.act = OP_CLIP, .act_a = -0.3f, .act_b = 0.4f};
        check_winograd(&c, f);
        c = conv_case(2, 8, 13, 5, 24); /* blocks of 8 (NCHW8c on 16 lanes) */
        c.block = 8;
        c.epi = (Epilogue){.residual = true};
        check_winograd(&c, f);
        c = conv_case(1, 12, 6, 6, 4); /* blocks of 4 */
        c.block = 4;
        check_winograd(&c, f);
        c = conv_case(1, 32, 7, 7, 64); /* 4 tiles: 4 output blocks per chunk (16 lanes) */
        check_winograd(&c, f);
        c = conv_case(1, 16, 3, 4, 32); /* 1 tile: 4 output blocks per chunk (8 lanes) */
        c.epi = (Epilogue){.residual = true, .post = OP_RELU};
        check_winograd(&c, f);
        c = conv_case(1, 128, 14, 14, 64); /* deep: 128 products per point */
        c.epi = (Epilogue){.act = OP_SILU};
        check_winograd(&c, f);
    }
}

/* ---- activations and max pooling with NaN and infinities ------------------ */

/* One node of `op` over x[2, 16, 9, 11], NCHW or NCHW[b]c, with about one
 * input in eight NaN, +inf or -inf, against the interpreter. */
static void check_nonfinite_op(Op op, Attrs attrs, bool blocked)
{
    Graph *g = ir_graph_new("t");
    const int64_t N = 2, C = 16, HW = 9 * 11, n = N * C * HW;
    int32_t x = ir_add_input(g, "x", ir_type_f32(4, (int64_t[]){N, C, 9, 11}), noloc);
    int32_t id = ir_add_node(g, op, &x, 1, "op", noloc);
    g->nodes[id].attrs = attrs;
    ir_add_output(g, id, "y");
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(ir_infer_shapes(g, &d));
    ir_diag_fini(&d);
    float *xv = random_values(n, "x");
    poke_nonfinite(xv, n, (int32_t)(n / 8), "n+-", 3);
    const float *ins[1] = {xv};
    InterpResult ref;
    char err[256];
    assert_true(ir_interp(g, ins, &ref, err, sizeof err));
    const TensorType *t = &g->nodes[id].type;
    int64_t m = ir_numel(t), OHW = t->dims[2] * t->dims[3];
    assert_true(count_nonfinite(ref.values[id], m) > 0);
    int32_t b = blocked ? kh_lanes(NULL) : 1;
    if (blocked) {
        set_blocked(&g->nodes[x].type, b);
        set_blocked(&g->nodes[id].type, b);
    }
    KhKernel k;
    assert_true(kh_compile(g, id, NULL, &k));
    float *xb = ir_xmalloc((size_t)n * sizeof(float)), *ob = ir_xmalloc((size_t)m * sizeof(float));
    float *got = ir_xmalloc((size_t)m * sizeof(float));
    kh_block(xv, xb, N, C, HW, b, C * HW);
    void *args[2] = {ob, xb};
    run_split(&k, args);
    kh_unblock(ob, got, N, C, OHW, b, C * OHW);
    double e = rel_error(got, ref.values[id], m);
    if (e > TOL) fprintf(stderr, "%s (block %d): %g\n", ir_ops[op].name, b, e);
    assert_true(e <= TOL);
    kh_unload(&k);
    free(xv), free(xb), free(ob), free(got);
    ir_interp_free(&ref);
    ir_graph_free(g);
}

/* gelu at 200001 points of [-10, 10] against C's erf and tanh in double. The
 * error allowed is in units of |x|/2 + |gelu(x)|, since 1 + erf(x) rounds to
 * f32 where it nearly cancels, as in PyTorch; the erf form is held to
 * under three roundings (its rational erf measures 2.85e-7, where erf is
 * within 5 ulp of ±1). */
static double gelu_error(bool tanh_form)
{
    const int64_t n = 200001;
    Graph *g = ir_graph_new("t");
    int32_t x = ir_add_input(g, "x", ir_type_f32(4, (int64_t[]){1, 1, 1, n}), noloc);
    int32_t id = ir_add_node(g, OP_GELU, &x, 1, "op", noloc);
    g->nodes[id].attrs.gelu.tanh = tanh_form;
    ir_add_output(g, id, "y");
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(ir_infer_shapes(g, &d));
    ir_diag_fini(&d);
    float *xv = ir_xmalloc((size_t)n * sizeof(float)), *got = ir_xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        xv[i] = (float)(-10.0 + 20.0 * (double)i / (double)(n - 1));
    KhKernel k;
    assert_true(kh_compile(g, id, NULL, &k));
    void *args[2] = {got, xv};
    run_split(&k, args);
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double v = xv[i], want = ir_act_apply(OP_GELU, v, tanh_form ? 1.0f : 0.0f, 0.0f);
        double e = fabs((double)got[i] - want) / (fabs(v) * 0.5 + fabs(want) + 1e-30);
        worst = e > worst ? e : worst;
    }
    kh_unload(&k);
    free(xv), free(got);
    ir_graph_free(g);
    return worst;
}

static void gelu_accuracy(void **state)
{
    double erf_form = gelu_error(false), tanh_form = gelu_error(true);
    fprintf(stderr, "gelu error: erf form %.3g, tanh form %.3g\n", erf_form, tanh_form);
    assert_true(erf_form < 3.6e-7);
    assert_true(tanh_form < 1e-6);
}

static void activations_nonfinite(void **state)
{
    const struct {
        Op op;
        Attrs a;
    } cases[] = {
        {.op = OP_RELU},
        {OP_CLIP, {.clip = {0.0f, 6.0f}}},
        {OP_CLIP, {.clip = {-0.5f, 0.5f}}},
        {OP_LEAKY_RELU, {.leaky = {0.1f}}},
        {.op = OP_SIGMOID},
        {.op = OP_TANH},
        {.op = OP_SILU},
        {.op = OP_HARDSWISH},
        {.op = OP_HARDSIGMOID},
        {OP_AFFINE, {.affine = {-2.0f, 0.5f}}},
        {.op = OP_GELU},
        {OP_GELU, {.gelu = {true}}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_nonfinite_op(cases[i].op, cases[i].a, false);
        check_nonfinite_op(cases[i].op, cases[i].a, true);
    }
}

/* A window holding NaN gives NaN wherever the NaN comes in it. */
static void maxpool_nonfinite(void **state)
{
    const PoolAttrs pools[] = {
        {.kernel = {3, 3}, .stride = {2, 2}, .dilation = {1, 1}, .pad = {1, 1, 1, 1}},
        {.kernel = {2, 2}, .stride = {2, 2}, .dilation = {1, 1}, .ceil_mode = true},
        {.kernel = {3, 2}, .stride = {1, 1}, .dilation = {2, 1}},
    };
    for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
        check_nonfinite_op(OP_MAXPOOL, (Attrs){.pool = pools[i]}, false);
        check_nonfinite_op(OP_MAXPOOL, (Attrs){.pool = pools[i]}, true);
    }
}

/* ---- dense ------------------------------------------------------------- */

static void check_dense(int64_t N, int64_t I, int64_t O, bool bias, Epilogue epi)
{
    Graph *g = ir_graph_new("t");
    int32_t ins[4] = {ir_add_input(g, "x", ir_type_f32(2, (int64_t[]){N, I}), noloc),
                      ir_add_param(g, "fc.weight", ir_type_f32(2, (int64_t[]){O, I}), noloc)};
    int32_t n = 2;
    if (bias)
        ins[n++] = ir_add_param(g, "fc.bias", ir_type_f32(1, (int64_t[]){O}), noloc);
    if (epi.residual)
        ins[n++] = ir_add_input(g, "r", ir_type_f32(2, (int64_t[]){N, O}), noloc);
    int32_t id = ir_add_node(g, OP_DENSE, ins, n, "fc", noloc);
    g->nodes[id].attrs.dense.epi = epi;
    ir_add_output(g, id, "y");
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(ir_infer_shapes(g, &d));
    ir_diag_fini(&d);
    fe_random_weights(g, 5);
    float *x = random_values(N * I, "x"), *r = random_values(N * O, "r");
    const float *in[2] = {x, r};
    InterpResult ref;
    char err[256];
    assert_true(ir_interp(g, in, &ref, err, sizeof err));
    KhKernel k;
    assert_true(kh_compile(g, id, NULL, &k));
    float *out = ir_xmalloc((size_t)(N * O + 16) * sizeof(float));
    for (int64_t i = 0; i < N * O + 16; i++)
        out[i] = SENTINEL;
    void *args[5] = {out, x, NULL, NULL, NULL};
    args[n] = epi.residual ? r : args[n];
    run_split(&k, args);
    assert_true(rel_error(out, ref.values[id], N * O) <= TOL);
    for (int64_t i = N * O; i < N * O + 16; i++)
        assert_true(out[i] == SENTINEL);
    kh_unload(&k);
    free(x), free(r), free(out);
    ir_interp_free(&ref);
    ir_graph_free(g);
}

static void dense_shapes(void **state)
{
    Epilogue none = {0};
    check_dense(1, 37, 20, true, none);   /* a partial last block */
    check_dense(1, 256, 64, false, none); /* whole blocks */
    check_dense(2, 9, 10, true, none);
    check_dense(3, 50, 17, true, none);
    check_dense(4, 33, 24, true, none);
    check_dense(5, 3, 1, true, none);
}

static void dense_epilogues(void **state)
{
    check_dense(1, 40, 13, true, (Epilogue){.act = OP_RELU});
    check_dense(3, 21, 30, true, (Epilogue){.act = OP_SIGMOID});
    check_dense(2, 64, 19, false, (Epilogue){.residual = true});
    check_dense(4, 16, 8, true, (Epilogue){.act = OP_TANH, .residual = true, .post = OP_RELU});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_3x3),
        cmocka_unit_test(conv_stride_pad_dilation),
        cmocka_unit_test(conv_pointwise),
        cmocka_unit_test(conv_small_plane),
        cmocka_unit_test(conv_first_layer),
        cmocka_unit_test(conv_epilogues),
        cmocka_unit_test(conv_nonfinite),
        cmocka_unit_test(conv_depthwise),
        cmocka_unit_test(conv_generic),
        cmocka_unit_test(conv_into_concat),
        cmocka_unit_test(conv_sse),
        cmocka_unit_test(conv_avx512),
        cmocka_unit_test(conv_winograd),
        cmocka_unit_test(activations_nonfinite),
        cmocka_unit_test(maxpool_nonfinite),
        cmocka_unit_test(gelu_accuracy),
        cmocka_unit_test(dense_shapes),
        cmocka_unit_test(dense_epilogues),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
