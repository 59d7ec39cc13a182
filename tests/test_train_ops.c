/* test_train_ops.c: the LLVM kernels of the training ops (but conv2d's and dense's)
 * against the reference interpreter. Each case is a small graph in IR text whose
 * weights, statistics and hyper-parameters are graph inputs, compiled through the passes
 * in plain layouts for the host, AVX2 and SSE, and run in-process with 1 and 2 threads
 * on random inputs (valid labels); every output within TOL of the interpreter's, as
 * max |d| / max |ref|. Sizes are odd so that vector tails run; batches are 1 and 3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"
#include "cnnc/model.h"
#include "passes.h"
#include "rt.h"
#include "test_util.h"
#include "train.h"

#define TOL 1e-4

/* How a case fills its inputs, by name: "labels" class indices below `classes`,
 * "rng" a seed and a step, "hyper" the three values given, "pos" values in
 * [0.1, 2), "stats" a mean row and a variance row (positive), "grid" multiples of
 * 1/4 in [-4, 4) (zeros, ties, activations' kinks), "*running_var" as "pos", "nan" multiples of 1/2
 * with every fifth a NaN, "offset" 10 + [-0.1, 0.1) (a mean far from zero); anything else uniform
 * in [-2, 2). */
typedef struct Case {
    int64_t classes;
    float hyper[3];
    /* Labels the compiled model gets instead (outside [0, classes) some); the
     * interpreter, which rejects those, gets class 0 in their place. */
    const float *bad_labels;
} Case;

static uint64_t lcg = 88172645463325252ull;

static float uniform(float lo, float hi)
{
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((lcg >> 40) * 0x1p-24);
}

static void fill(const Node *in, const Case *c, float *x)
{
    int64_t n = ir_numel(&in->type);
    const char *name = in->name;
    for (int64_t i = 0; i < n; i++) {
        if (!strcmp(name, "labels"))
            x[i] = (float)((i * 7 + 3) % c->classes);
        else if (!strcmp(name, "rng"))
            x[i] = i == 0 ? 1234.0f : 7.0f;
        else if (!strcmp(name, "hyper"))
            x[i] = c->hyper[i];
        else if (!strncmp(name, "pos", 3) || strstr(name, "running_var"))
            x[i] = uniform(0.1f, 2.0f);
        else if (!strcmp(name, "stats"))
            x[i] = i < n / 2 ? uniform(-1.0f, 1.0f) : uniform(0.05f, 2.0f);
        else if (!strcmp(name, "grid"))
            x[i] = floorf(uniform(-16.0f, 16.0f)) * 0.25f;
        else if (!strcmp(name, "nan"))
            x[i] = i % 5 == 2 ? NAN : floorf(uniform(-4.0f, 4.0f)) * 0.5f;
        else if (!strcmp(name, "offset"))
            x[i] = 10.0f + uniform(-0.1f, 0.1f);
        else
            x[i] = uniform(-2.0f, 2.0f);
    }
}

/* Function addresses as CgJitSymbol wants them (ISO C has no cast to void *). */
static void *fn_addr(void (*f)(void))
{
    void *p;
    memcpy(&p, &f, sizeof p);
    return p;
}

static Graph *parse(const char *name, const char *text)
{
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = ir_parse_text(name, text, &d);
    if (!g)
        fail_msg("%s does not parse", name);
    ir_diag_fini(&d);
    return g;
}

/* The targets each graph is compiled for: the host, AVX2 (8 lanes) and SSE (4 lanes,
 * no FMA). */
static const CgTarget targets[] = {
    {.opt_level = 2},
    {.cpu = "x86-64", .features = "+avx,+avx2,+fma", .opt_level = 2},
    {.cpu = "x86-64", .features = "+sse4.2", .opt_level = 2},
};

/* The graph through the passes (plain layouts, as a training model is compiled)
 * and LLVM for target `t`, linked in-process. */
static CgJit *compile(Graph *g, const CgTarget *t, Cg *cg)
{
    Diag d;
    ir_diag_init(&d, stderr);
    PassOptions po;
    pass_options_init(&po);
    po.block = 0;
    assert_true(pass_run_pipeline(g, &po, &d));
    assert_true(pass_check_plan(g, &d));
    assert_true(cg_lower(cg, g, t, &d));
    ir_diag_fini(&d);
    CgJitSymbol syms[2] = {
        {"rt_parallel_for", fn_addr((void (*)(void))rt_parallel_for)},
        {"rt_run_kernel", fn_addr((void (*)(void))rt_run_kernel)},
    };
    char err[1024];
    CgJit *j = cg_jit_new(cg, syms, 2, err, sizeof err);
    if (!j)
        fail_msg("cg_jit_new: %s", err);
    return j;
}

/* Compiles graph `g`, runs it with 1 and 2 threads on the inputs `c` describes and
 * compares every output with the interpreter's. */
static void check_graph(const char *name, const Graph *g, const Case *c)
{
    int32_t ni = ir_num_inputs(g), no = g->noutputs;
    float **ins = calloc((size_t)ni, sizeof *ins), **outs = calloc((size_t)no, sizeof *outs);
    cnn_tensor *tin = calloc((size_t)ni, sizeof *tin), *tout = calloc((size_t)no, sizeof *tout);
    for (int32_t k = 0; k < ni; k++) {
        const Node *in = &g->nodes[ir_input_node(g, k)];
        ins[k] = malloc((size_t)ir_numel(&in->type) * sizeof(float));
        fill(in, c, ins[k]);
        tin[k] = (cnn_tensor){ins[k], (size_t)ir_numel(&in->type) * sizeof(float)};
        if (!c->bad_labels || strcmp(in->name, "labels") != 0)
            continue;
        tin[k].data = (void *)c->bad_labels;
        for (int64_t i = 0; i < ir_numel(&in->type); i++) {
            float l = c->bad_labels[i];
            ins[k][i] = l >= 0.0f && l < (float)c->classes ? l : 0.0f;
        }
    }
    InterpResult ref;
    char err[256];
    if (!ir_interp(g, (const float *const *)ins, &ref, err, sizeof err))
        fail_msg("%s: interpreter: %s", name, err);
    int32_t *out_node = calloc((size_t)no, sizeof *out_node);
    for (int32_t k = 0; k < no; k++) {
        out_node[k] = g->outputs[k].node;
        int64_t n = ir_numel(&g->nodes[out_node[k]].type);
        outs[k] = malloc((size_t)n * sizeof(float));
        tout[k] = (cnn_tensor){outs[k], (size_t)n * sizeof(float)};
    }
    for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) {
        Graph *cgraph = ir_graph_clone(g);
        Cg cg;
        CgJit *j = compile(cgraph, &targets[t], &cg);
        const RtModel *desc = cg_jit_lookup(j, "cnnc_model");
        assert_non_null(desc);
        for (int32_t threads = 1; threads <= 2; threads++) {
            cnn_options opt;
            cnn_options_init(&opt);
            opt.num_threads = threads;
            cnn_model *m;
            assert_int_equal(rt_model_create(desc, &opt, &m), CNN_OK);
            for (int32_t k = 0; k < no; k++)
                for (size_t i = 0; i < tout[k].size / sizeof(float); i++)
                    outs[k][i] = NAN;
            assert_int_equal(cnn_model_run(m, tin, ni, tout, no), CNN_OK);
            for (int32_t k = 0; k < no; k++) {
                char what[256];
                snprintf(what, sizeof what, "%s: %s, %s, %d thread(s)", name, g->outputs[k].name,
                         targets[t].features ? targets[t].features : "host", threads);
                expect_within_nonfinite(what, outs[k], ref.values[out_node[k]],
                                        ir_numel(&g->nodes[out_node[k]].type), TOL);
            }
            cnn_model_destroy(m);
        }
        cg_jit_free(j);
        cg_free(&cg);
        ir_graph_free(cgraph);
    }
    ir_interp_free(&ref);
    for (int32_t k = 0; k < ni; k++)
        free(ins[k]);
    for (int32_t k = 0; k < no; k++)
        free(outs[k]);
    free(ins);
    free(outs);
    free(tin);
    free(tout);
    free(out_node);
}

static void check(const char *name, const char *text, const Case *c)
{
    Graph *g = parse(name, text);
    check_graph(name, g, c);
    ir_graph_free(g);
}

static const Case plain = {.classes = 1};

/* Every activation's derivative at grid points (0, the bounds of clip, hardswish
 * and hardsigmoid included) and sqrt's at positive ones; 3 x 37 elements. */
static void test_act_grad(void **state)
{
    static const char *const acts[] = {
        "relu, a=0, b=0",      "clip, a=-1, b=1.5",     "sigmoid, a=0, b=0",
        "tanh, a=0, b=0",      "silu, a=0, b=0",        "leaky_relu, a=0.1, b=0",
        "hardswish, a=0, b=0", "hardsigmoid, a=0, b=0", "affine, a=2.5, b=1",
        "gelu, a=0, b=0",      "gelu, a=1, b=0",        "erf, a=0, b=0",
        "exp, a=0, b=0",       "abs, a=0, b=0",         "none, a=0, b=0",
    };
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "graph act {\n"
                 "  %%0 = input \"dy\" : f32[3,37]\n"
                 "  %%1 = input \"grid\" : f32[3,37]\n"
                 "  %%2 = act_grad(%%0, %%1) {act=%s} \"g\" : f32[3,37]\n"
                 "  return %%2 \"g\"\n}\n",
                 acts[i]);
        check(acts[i], text, &plain);
    }
    check("sqrt",
          "graph act {\n"
          "  %0 = input \"dy\" : f32[1,5,3,7]\n"
          "  %1 = input \"pos\" : f32[1,5,3,7]\n"
          "  %2 = act_grad(%0, %1) {act=sqrt, a=0, b=0} \"g\" : f32[1,5,3,7]\n"
          "  return %2 \"g\"\n}\n",
          &plain);
}

/* maxpool 3x3 stride 2 pad 1 (overlapping windows) on a grid of ties and with NaNs,
 * 2x2 stride 2 with ceil_mode, and 3x3 dilation 2; rows wide enough for vectors of
 * windows; batch 3 and 1. */
static void test_maxpool_grad(void **state)
{
    check("maxpool_grad",
          "graph mp {\n"
          "  %0 = input \"grid\" : f32[3,5,9,9]\n"
          "  %1 = input \"dy\" : f32[3,5,5,5]\n"
          "  %2 = maxpool_grad(%1, %0) {kernel=3, stride=2, pad=1} \"a\" : f32[3,5,9,9]\n"
          "  %3 = input \"dy2\" : f32[3,5,5,5]\n"
          "  %4 = maxpool_grad(%3, %0) {kernel=2, stride=2, ceil_mode=true} \"b\" : f32[3,5,9,9]\n"
          "  %5 = input \"dy3\" : f32[3,5,9,9]\n"
          "  %6 = maxpool_grad(%5, %0) {kernel=3, dilation=2, pad=2} \"c\" : f32[3,5,9,9]\n"
          "  return %2 \"a\"\n  return %4 \"b\"\n  return %6 \"c\"\n}\n",
          &plain);
    check("maxpool_grad_nan",
          "graph mp {\n"
          "  %0 = input \"nan\" : f32[3,5,9,9]\n"
          "  %1 = input \"dy\" : f32[3,5,5,5]\n"
          "  %2 = maxpool_grad(%1, %0) {kernel=3, stride=2, pad=1} \"a\" : f32[3,5,9,9]\n"
          "  return %2 \"a\"\n}\n",
          &plain);
    check("maxpool_grad_wide",
          "graph mp {\n"
          "  %0 = input \"grid\" : f32[2,3,12,70]\n"
          "  %1 = input \"dy\" : f32[2,3,6,35]\n"
          "  %2 = maxpool_grad(%1, %0) {kernel=3, stride=2, pad=1} \"a\" : f32[2,3,12,70]\n"
          "  %3 = input \"nan\" : f32[1,2,6,41]\n"
          "  %4 = input \"dy2\" : f32[1,2,3,20]\n"
          "  %5 = maxpool_grad(%4, %3) {kernel=2, stride=2} \"b\" : f32[1,2,6,41]\n"
          "  %6 = input \"dy3\" : f32[1,2,6,41]\n"
          "  %7 = maxpool_grad(%6, %3) {kernel=3, pad=1} \"c\" : f32[1,2,6,41]\n"
          "  return %2 \"a\"\n  return %5 \"b\"\n  return %7 \"c\"\n}\n",
          &plain);
    check("maxpool_grad_b1",
          "graph mp {\n"
          "  %0 = input \"x\" : f32[1,3,8,11]\n"
          "  %1 = input \"dy\" : f32[1,3,4,5]\n"
          "  %2 = maxpool_grad(%1, %0) {kernel=3, stride=2, pad=1} \"a\" : f32[1,3,8,11]\n"
          "  return %2 \"a\"\n}\n",
          &plain);
}

/* avgpool with and without count_include_pad, with ceil_mode; adaptive 7 -> 3,
 * overlapping bins (3 -> 5) and non-square; global. */
static void test_avgpool_grads(void **state)
{
    check("avgpool_grad",
          "graph ap {\n"
          "  %0 = input \"x\" : f32[3,5,9,9]\n"
          "  %1 = input \"dy\" : f32[3,5,5,5]\n"
          "  %2 = avgpool_grad(%1, %0) {kernel=3, stride=2, pad=1} \"a\" : f32[3,5,9,9]\n"
          "  %3 = avgpool_grad(%1, %0) {kernel=3, stride=2, pad=1, count_include_pad=false} \"b\" "
          ": f32[3,5,9,9]\n"
          "  %4 = avgpool_grad(%1, %0) {kernel=2, stride=2, ceil_mode=true} \"c\" : f32[3,5,9,9]\n"
          "  %5 = input \"x2\" : f32[1,4,8,8]\n"
          "  %6 = input \"dy2\" : f32[1,4,5,5]\n"
          "  %7 = avgpool_grad(%6, %5) {kernel=3, stride=2, pad=1, ceil_mode=true, "
          "count_include_pad=false} \"d\" : f32[1,4,8,8]\n"
          "  %8 = input \"x3\" : f32[2,4,7,7]\n"
          "  %9 = input \"dy3\" : f32[2,4,3,3]\n"
          "  %10 = adaptive_avgpool_grad(%9, %8) {out=[3,3]} \"e\" : f32[2,4,7,7]\n"
          "  %11 = input \"dy4\" : f32[2,4,1,1]\n"
          "  %12 = global_avgpool_grad(%11, %8) \"f\" : f32[2,4,7,7]\n"
          "  return %2 \"a\"\n  return %3 \"b\"\n  return %4 \"c\"\n  return %7 \"d\"\n"
          "  return %10 \"e\"\n  return %12 \"f\"\n}\n",
          &plain);
    check("adaptive_grad",
          "graph ad {\n"
          "  %0 = input \"x\" : f32[3,2,3,7]\n"
          "  %1 = input \"dy\" : f32[3,2,5,4]\n"
          "  %2 = adaptive_avgpool_grad(%1, %0) {out=[5,4]} \"up\" : f32[3,2,3,7]\n"
          "  %3 = input \"dy2\" : f32[3,2,2,3]\n"
          "  %4 = adaptive_avgpool_grad(%3, %0) {out=[2,3]} \"down\" : f32[3,2,3,7]\n"
          "  return %2 \"up\"\n  return %4 \"down\"\n}\n",
          &plain);
}

/* Batch statistics, normalization, its gradients and the running statistics of
 * [N, C, H, W] (a channel per work item) and [N, C] (channels along vectors, a
 * tail of 37 % 16 = 5 or 37 % 8 = 5). */
static void check_bn(const char *name, const char *xtype, const char *ctype)
{
    char text[2048];
    snprintf(text, sizeof text,
             "graph bn {\n"
             "  %%0 = input \"x\" : f32%s\n"
             "  %%1 = input \"dy\" : f32%s\n"
             "  %%2 = input \"w\" : f32%s\n"
             "  %%3 = input \"b\" : f32%s\n"
             "  %%4 = input \"rm\" : f32%s\n"
             "  %%5 = input \"pos_rv\" : f32%s\n"
             "  %%6 = bn_stats(%%0) \"stats\" : f32[2,%s\n"
             "  %%7 = bn_train(%%0, %%6, %%2, %%3) {eps=1e-05} \"y\" : f32%s\n"
             "  %%8 = bn_grad_input(%%1, %%0, %%6, %%2) {eps=1e-05} \"dx\" : f32%s\n"
             "  %%9 = bn_grad_weight(%%1, %%0, %%6) {eps=1e-05} \"dw\" : f32%s\n"
             "  %%10 = bn_running(%%4, %%6, %%0) {which=0, momentum=0.1} \"rm2\" : f32%s\n"
             "  %%11 = bn_running(%%5, %%6, %%0) {which=1, momentum=0.1} \"rv2\" : f32%s\n"
             "  %%12 = batchnorm(%%0, %%2, %%3, %%4, %%5) {eps=0.001} \"eval\" : f32%s\n"
             "  return %%6 \"stats\"\n  return %%7 \"y\"\n  return %%8 \"dx\"\n"
             "  return %%9 \"dw\"\n  return %%10 \"rm2\"\n  return %%11 \"rv2\"\n"
             "  return %%12 \"eval\"\n}\n",
             xtype, xtype, ctype, ctype, ctype, ctype, ctype + 1, xtype, xtype, ctype, ctype, ctype,
             xtype);
    check(name, text, &plain);
}

static void test_batchnorm(void **state)
{
    check_bn("bn_nchw", "[3,20,7,5]", "[20]");
    check_bn("bn_b1", "[1,6,9,9]", "[6]");
    check_bn("bn_nc", "[5,37]", "[37]");
    check_bn("bn_nc3", "[3,4,2]", "[4]");
}

/* layernorm whose weight and bias are graph inputs, over channels and the last dim. */
static void test_layernorm_inputs(void **state)
{
    check("layernorm",
          "graph ln {\n"
          "  %0 = input \"x\" : f32[3,6,5,7]\n"
          "  %1 = input \"w\" : f32[6]\n"
          "  %2 = input \"b\" : f32[6]\n"
          "  %3 = layernorm(%0, %1, %2) {axis=1, eps=1e-05} \"ln1\" : f32[3,6,5,7]\n"
          "  %4 = input \"w2\" : f32[7]\n"
          "  %5 = input \"b2\" : f32[7]\n"
          "  %6 = layernorm(%0, %4, %5) {axis=-1, eps=1e-05} \"ln2\" : f32[3,6,5,7]\n"
          "  return %3 \"ln1\"\n  return %6 \"ln2\"\n}\n",
          &plain);
}

/* A mean far from the spread (10 and 0.1): the normalized values, which the
 * variance's precision decides, still within TOL. */
static void test_bn_stats_offset(void **state)
{
    check("bn_offset",
          "graph bn {\n"
          "  %0 = input \"offset\" : f32[4,8,15,15]\n"
          "  %1 = input \"w\" : f32[8]\n"
          "  %2 = input \"b\" : f32[8]\n"
          "  %3 = bn_stats(%0) \"stats\" : f32[2,8]\n"
          "  %4 = bn_train(%0, %3, %1, %2) {eps=1e-05} \"y\" : f32[4,8,15,15]\n"
          "  return %4 \"y\"\n}\n",
          &plain);
}

/* Labels outside [0, K) (the runtime rejects them before a run) read class 0
 * rather than memory out of bounds. */
static void test_bad_labels(void **state)
{
    static const float bad[5] = {-1.0f, 10.0f, 1e9f, NAN, 3.0f};
    const Case c = {.classes = 10, .bad_labels = bad};
    check("bad_labels",
          "graph xent {\n"
          "  %0 = input \"logits\" : f32[5,10]\n"
          "  %1 = input \"labels\" : f32[5]\n"
          "  %2 = softmax_xent(%0, %1) \"loss\" : f32[1]\n"
          "  %3 = softmax_xent_grad(%0, %1) \"grad\" : f32[5,10]\n"
          "  return %2 \"loss\"\n  return %3 \"grad\"\n}\n",
          &c);
}

/* Cross-entropy over 10 and 37 classes and its gradient; mse and its gradient. */
static void test_losses(void **state)
{
    const Case ten = {.classes = 10}, many = {.classes = 37};
    static const char xent[] = "graph xent {\n"
                               "  %%0 = input \"logits\" : f32[%d,%d]\n"
                               "  %%1 = input \"labels\" : f32[%d]\n"
                               "  %%2 = softmax_xent(%%0, %%1) \"loss\" : f32[1]\n"
                               "  %%3 = softmax_xent_grad(%%0, %%1) \"grad\" : f32[%d,%d]\n"
                               "  return %%2 \"loss\"\n  return %%3 \"grad\"\n}\n";
    char text[1024];
    snprintf(text, sizeof text, xent, 3, 10, 3, 3, 10);
    check("xent10", text, &ten);
    snprintf(text, sizeof text, xent, 5, 37, 5, 5, 37);
    check("xent37", text, &many);
    snprintf(text, sizeof text, xent, 1, 37, 1, 1, 37);
    check("xent_b1", text, &many);
    check("mse",
          "graph mse {\n"
          "  %0 = input \"pred\" : f32[3,37]\n"
          "  %1 = input \"target\" : f32[3,37]\n"
          "  %2 = mse(%0, %1) \"loss\" : f32[1]\n"
          "  %3 = mse_grad(%0, %1) \"grad\" : f32[3,37]\n"
          "  return %2 \"loss\"\n  return %3 \"grad\"\n}\n",
          &plain);
    check("mse_big",
          "graph mse {\n"
          "  %0 = input \"pred\" : f32[2,3,100,117]\n"
          "  %1 = input \"target\" : f32[2,3,100,117]\n"
          "  %2 = mse(%0, %1) \"loss\" : f32[1]\n"
          "  return %2 \"loss\"\n}\n",
          &plain);
}

/* SGD (momentum and dampening, the first step and a later one, Nesterov, weight
 * decay) and Adam and AdamW, on a [37] bias and a [16, 9] weight. */
static void check_optim(const char *shape, const Case *c)
{
    char text[4096];
    snprintf(
        text, sizeof text,
        "graph optim {\n"
        "  %%0 = input \"hyper\" : f32[3]\n"
        "  %%1 = input \"p\" : f32%s\n"
        "  %%2 = input \"g\" : f32%s\n"
        "  %%3 = input \"buf\" : f32%s\n"
        "  %%4 = input \"pos_v\" : f32%s\n"
        "  %%5 = sgd_momentum(%%3, %%2, %%1, %%0) {weight_decay=0.01, momentum=0.9, "
        "dampening=0.1} \"buf2\" : f32%s\n"
        "  %%6 = sgd_step(%%1, %%2, %%5, %%0) {weight_decay=0.01, momentum=0.9, "
        "dampening=0.1} \"p_sgd\" : f32%s\n"
        "  %%7 = sgd_step(%%1, %%2, %%5, %%0) {momentum=0.9, nesterov=true} \"p_nest\" : f32%s\n"
        "  %%8 = sgd_step(%%1, %%2, %%5, %%0) {weight_decay=0.1} \"p_plain\" : f32%s\n"
        "  %%9 = adam_m(%%3, %%2, %%1) {weight_decay=0.01} \"m\" : f32%s\n"
        "  %%10 = adam_v(%%4, %%2, %%1) {weight_decay=0.01} \"v\" : f32%s\n"
        "  %%11 = adam_step(%%1, %%9, %%10, %%0) {weight_decay=0.01} \"p_adam\" : f32%s\n"
        "  %%12 = adam_m(%%3, %%2, %%1) {weight_decay=0.01, decoupled=true} \"mw\" : f32%s\n"
        "  %%13 = adam_v(%%4, %%2, %%1) {weight_decay=0.01, decoupled=true} \"vw\" : f32%s\n"
        "  %%14 = adam_step(%%1, %%12, %%13, %%0) {weight_decay=0.01, decoupled=true} "
        "\"p_adamw\" : f32%s\n"
        "  return %%5 \"buf2\"\n  return %%6 \"p_sgd\"\n  return %%7 \"p_nest\"\n"
        "  return %%8 \"p_plain\"\n  return %%9 \"m\"\n  return %%10 \"v\"\n"
        "  return %%11 \"p_adam\"\n  return %%12 \"mw\"\n  return %%13 \"vw\"\n"
        "  return %%14 \"p_adamw\"\n}\n",
        shape, shape, shape, shape, shape, shape, shape, shape, shape, shape, shape, shape, shape,
        shape);
    check(shape, text, c);
}

static void test_optimizers(void **state)
{
    const Case first = {.hyper = {0.1f, 0.0f, 0.001f}}, later = {.hyper = {0.05f, 0.19f, 0.0297f}};
    check_optim("[37]", &first);
    check_optim("[37]", &later);
    check_optim("[16,9]", &first);
    check_optim("[16,9]", &later);
}

/* dropout_train and dropout_grad masks (two salts) on 3 x 1001 elements. */
static void test_dropout(void **state)
{
    check("dropout",
          "graph drop {\n"
          "  %0 = input \"x\" : f32[3,1001]\n"
          "  %1 = input \"rng\" : f32[2]\n"
          "  %2 = dropout_train(%0, %1) {p=0.3, salt=5} \"y\" : f32[3,1001]\n"
          "  %3 = dropout_grad(%0, %1) {p=0.5, salt=1} \"dx\" : f32[3,1001]\n"
          "  %4 = input \"x4\" : f32[1,7,9,9]\n"
          "  %5 = dropout_train(%4, %1) {p=0.1} \"z\" : f32[1,7,9,9]\n"
          "  return %2 \"y\"\n  return %3 \"dx\"\n  return %5 \"z\"\n}\n",
          &plain);
}

/* reshape_as as a view and as a copy, slice_grad, reduce_as against every kind of
 * broadcast operand, bias_grad over channels, the last dim and the first. */
static void test_shape_grads(void **state)
{
    check("reshape_slice",
          "graph shp {\n"
          "  %0 = input \"dy\" : f32[3,60]\n"
          "  %1 = input \"x\" : f32[3,5,3,4]\n"
          "  %2 = reshape_as(%0, %1) \"view\" : f32[3,5,3,4]\n"
          "  %3 = input \"x2\" : f32[6,30]\n"
          "  %4 = reshape_as(%0, %3) \"copy\" : f32[6,30]\n"
          "  %5 = input \"dy2\" : f32[3,2,5,5]\n"
          "  %6 = input \"x3\" : f32[3,7,5,5]\n"
          "  %7 = slice_grad(%5, %6) {axis=1, start=3, end=5} \"s1\" : f32[3,7,5,5]\n"
          "  %8 = input \"dy3\" : f32[3,7,5,2]\n"
          "  %9 = slice_grad(%8, %6) {axis=3, start=0, end=2} \"s2\" : f32[3,7,5,5]\n"
          "  %10 = input \"dy4\" : f32[1,37]\n"
          "  %11 = input \"x4\" : f32[1,50]\n"
          "  %12 = slice_grad(%10, %11) {axis=1, start=13, end=50} \"s3\" : f32[1,50]\n"
          "  return %2 \"view\"\n  return %4 \"copy\"\n  return %7 \"s1\"\n"
          "  return %9 \"s2\"\n  return %12 \"s3\"\n}\n",
          &plain);
    check("reduce_as",
          "graph red {\n"
          "  %0 = input \"dy\" : f32[3,6,5,7]\n"
          "  %1 = input \"a\" : f32[6,1,1]\n"
          "  %2 = reduce_as(%0, %1) \"chan\" : f32[6,1,1]\n"
          "  %3 = input \"b\" : f32[3,6,1,1]\n"
          "  %4 = reduce_as(%0, %3) \"se\" : f32[3,6,1,1]\n"
          "  %5 = input \"c\" : f32[7]\n"
          "  %6 = reduce_as(%0, %5) \"last\" : f32[7]\n"
          "  %7 = input \"d\" : f32[1]\n"
          "  %8 = reduce_as(%0, %7) \"all\" : f32[1]\n"
          "  %9 = input \"e\" : f32[3,1,5,1]\n"
          "  %10 = reduce_as(%0, %9) \"mixed\" : f32[3,1,5,1]\n"
          "  %11 = input \"f\" : f32[3,6,5,7]\n"
          "  %12 = reduce_as(%0, %11) \"same\" : f32[3,6,5,7]\n"
          "  return %2 \"chan\"\n  return %4 \"se\"\n  return %6 \"last\"\n"
          "  return %8 \"all\"\n  return %10 \"mixed\"\n  return %12 \"same\"\n}\n",
          &plain);
    check("bias_grad",
          "graph bias {\n"
          "  %0 = input \"dy\" : f32[3,6,5,7]\n"
          "  %1 = bias_grad(%0) {axis=1} \"conv\" : f32[6]\n"
          "  %2 = input \"dy2\" : f32[5,37]\n"
          "  %3 = bias_grad(%2) {axis=-1} \"dense\" : f32[37]\n"
          "  %4 = input \"dy3\" : f32[2,3,19]\n"
          "  %5 = bias_grad(%4) {axis=-1} \"seq\" : f32[19]\n"
          "  %6 = bias_grad(%4) {axis=0} \"first\" : f32[2]\n"
          "  %7 = input \"dy4\" : f32[1,17,3,3]\n"
          "  %8 = bias_grad(%7) {axis=1} \"b1\" : f32[17]\n"
          "  return %1 \"conv\"\n  return %3 \"dense\"\n  return %5 \"seq\"\n"
          "  return %6 \"first\"\n  return %8 \"b1\"\n}\n",
          &plain);
}

/* Values written in place into a concat (batch items a channel block apart)
 * as inputs and outputs of the kernels. */
static void test_concat_views(void **state)
{
    check("views",
          "graph views {\n"
          "  %0 = input \"x\" : f32[3,4,6,6]\n"
          "  %1 = input \"other\" : f32[3,5,6,6]\n"
          "  %2 = input \"w\" : f32[4]\n"
          "  %3 = input \"b\" : f32[4]\n"
          "  %4 = input \"rng\" : f32[2]\n"
          "  %5 = relu(%0) \"r\" : f32[3,4,6,6]\n"
          "  %6 = bn_stats(%5) \"stats\" : f32[2,4]\n"
          "  %7 = bn_train(%5, %6, %2, %3) {eps=1e-05} \"bn\" : f32[3,4,6,6]\n"
          "  %8 = dropout_train(%5, %4) {p=0.5} \"drop\" : f32[3,4,6,6]\n"
          "  %9 = concat(%5, %1, %7, %8) {axis=1} \"cat\" : f32[3,17,6,6]\n"
          "  %10 = input \"dy\" : f32[3,4,6,6]\n"
          "  %11 = act_grad(%10, %5) {act=relu, a=0, b=0} \"g\" : f32[3,4,6,6]\n"
          "  %12 = input \"dy2\" : f32[3,4,3,3]\n"
          "  %13 = maxpool_grad(%12, %5) {kernel=3, stride=2, pad=1} \"mp\" : f32[3,4,6,6]\n"
          "  %14 = bn_grad_input(%10, %5, %6, %2) {eps=1e-05} \"dx\" : f32[3,4,6,6]\n"
          "  return %9 \"cat\"\n  return %11 \"g\"\n  return %13 \"mp\"\n"
          "  return %14 \"dx\"\n}\n",
          &plain);
}

/* A small network with every kind of layer a training step differentiates here
 * (batch norm, residual add, maxpool 3x3 stride 2, avgpool with ceil_mode, dropout,
 * global average, silu), trained with SGD with momentum and with AdamW: the grad,
 * apply and eval graphs train_build makes, each as a whole against the interpreter. */
static const char tiny[] =
    "network tiny(image: f32[N=3, 3, 17, 17]) {\n"
    "  x = relu(batchnorm(conv2d(image, 8, kernel=3, pad=1, bias=false) as conv1) as bn1)\n"
    "  x = maxpool(x, kernel=3, stride=2, pad=1)\n"
    "  y = silu(batchnorm(conv2d(x, 8, kernel=3, pad=1, bias=false) as conv2) as bn2)\n"
    "  x = avgpool(relu(x + y), kernel=2, stride=2, ceil_mode=true)\n"
    "  x = dropout(x, p=0.25)\n"
    "  return dense(flatten(global_avgpool(x)), 10) as fc\n"
    "}\n";

static void check_training(OptimKind optim, const Case *c)
{
    Graph *fwd = load_model("tiny", tiny, 0, 3);
    TrainOptions o;
    train_options_init(&o);
    o.optim = optim;
    o.momentum = optim == OPTIM_SGD ? 0.9f : 0.0f;
    o.weight_decay = 0.01f;
    TrainStep st;
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(train_build(fwd, &o, &st, &d));
    ir_diag_fini(&d);
    check_graph("grad", st.grad, c);
    check_graph("apply", st.apply, c);
    check_graph("eval", st.eval, c);
    train_step_free(&st);
    ir_graph_free(fwd);
}

static void test_training_graphs(void **state)
{
    const Case sgd = {.classes = 10, .hyper = {0.05f, 3.0f, 0.0f}};
    const Case adam = {.classes = 10, .hyper = {0.001f, 0.271f, 0.00399f}};
    check_training(OPTIM_SGD, &sgd);
    check_training(OPTIM_ADAMW, &adam);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_act_grad),        cmocka_unit_test(test_maxpool_grad),
        cmocka_unit_test(test_avgpool_grads),   cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_bn_stats_offset), cmocka_unit_test(test_layernorm_inputs),
        cmocka_unit_test(test_losses),          cmocka_unit_test(test_bad_labels),
        cmocka_unit_test(test_optimizers),      cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_shape_grads),     cmocka_unit_test(test_concat_views),
        cmocka_unit_test(test_training_graphs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
