/* test_train_kernels.c: the LLVM kernels of convolutions and dense layers whose
 * weights are graph inputs (a training step): conv2d and dense with run-time
 * weights, bias and fused epilogues, and their gradients conv2d_grad_input,
 * conv2d_grad_weight, dense_grad_input, dense_grad_weight. Each kernel is
 * compiled on its own (tests/kernel_harness.h) for the host, AVX2 and SSE, run
 * on plain buffers over its work items on 1 and 2 threads, and compared with a naive
 * double-precision reference written here and with the reference interpreter where it runs the op:
 * max|got - want| <= 1e-4 * max|want|. A small network with run-time weights also goes through the
 * passes (fusion, layouts, memory plan) into a model.so run through the model API, against
 * the interpreter. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "codegen_harness.h"
#include "kernel_harness.h"

typedef struct ConvCase {
    const char *name;
    int64_t N, C, H, W, O;
    int32_t k[2], s[2], d[2], pad[4], groups;
    bool bias, relu, residual;
} ConvCase;

static const ConvCase conv_cases[] = {
    {"3x3 no pad, bias, relu",
     3,
     5,
     9,
     11,
     7,
     {3, 3},
     {1, 1},
     {1, 1},
     {0, 0, 0, 0},
     1,
     true,
     true,
     false},
    {"3x3/2 asymmetric pad, 2 groups, residual",
     1,
     4,
     10,
     13,
     6,
     {3, 3},
     {2, 2},
     {1, 1},
     {1, 0, 2, 1},
     2,
     true,
     false,
     true},
    {"depthwise 3x3 pad 1",
     3,
     6,
     7,
     20,
     6,
     {3, 3},
     {1, 1},
     {1, 1},
     {1, 1, 1, 1},
     6,
     false,
     false,
     false},
    {"depthwise 3x3/2 pad 1, relu",
     1,
     5,
     9,
     9,
     5,
     {3, 3},
     {2, 2},
     {1, 1},
     {1, 1, 1, 1},
     5,
     true,
     true,
     false},
    {"5x5 dilation 2",
     1,
     3,
     12,
     17,
     5,
     {5, 5},
     {1, 1},
     {2, 2},
     {2, 3, 1, 2},
     1,
     true,
     false,
     false},
    {"7x7/2 pad 3", 2, 3, 15, 15, 8, {7, 7}, {2, 2}, {1, 1}, {3, 3, 3, 3}, 1, false, true, false},
    {"1x1, 17 -> 19 channels",
     3,
     17,
     5,
     5,
     19,
     {1, 1},
     {1, 1},
     {1, 1},
     {0, 0, 0, 0},
     1,
     true,
     true,
     true},
    {"1x1/2", 1, 8, 9, 9, 4, {1, 1}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 1, false, false, false},
    {"3x3 row of 70", 1, 3, 4, 70, 13, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 1, true, false, false},
    {"3x3 strides 3x2, dilation 2x1, 4 groups",
     1,
     8,
     11,
     14,
     12,
     {3, 3},
     {3, 2},
     {2, 1},
     {0, 1, 2, 0},
     4,
     false,
     false,
     false},
    {"2x2/2", 3, 4, 8, 8, 3, {2, 2}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 1, true, false, false},
    {"3x3/2 on rows of 75",
     2,
     3,
     5,
     75,
     9,
     {3, 3},
     {2, 2},
     {1, 1},
     {1, 1, 1, 1},
     1,
     true,
     true,
     false},
    /* depthwise: blocks of rows, each input row loaded once */
    {"depthwise 3x3 dilation 2 on rows of 40",
     2,
     4,
     11,
     40,
     4,
     {3, 3},
     {1, 1},
     {2, 2},
     {2, 2, 2, 2},
     4,
     true,
     true,
     true},
    {"depthwise 5x5/2 on rows of 80",
     1,
     3,
     9,
     80,
     3,
     {5, 5},
     {2, 2},
     {1, 1},
     {2, 2, 2, 2},
     3,
     false,
     false,
     false},
    {"depthwise, 2 outputs per channel",
     1,
     3,
     6,
     40,
     6,
     {3, 3},
     {1, 1},
     {1, 1},
     {1, 1, 1, 1},
     3,
     true,
     false,
     false},
    /* rows narrower than 3/4 of the vectors: tiles across the rows of a plane */
    {"3x3 pad 1 on 7x7 planes",
     3,
     20,
     7,
     7,
     26,
     {3, 3},
     {1, 1},
     {1, 1},
     {1, 1, 1, 1},
     1,
     true,
     true,
     true},
    {"3x3 dilation 2 on 10x6, pad [0,2,1,2]",
     1,
     6,
     10,
     6,
     5,
     {3, 3},
     {1, 1},
     {2, 2},
     {0, 2, 1, 2},
     1,
     false,
     false,
     false},
    {"5x5 pad 2 on 10x10 planes, 2 groups",
     3,
     4,
     10,
     10,
     6,
     {5, 5},
     {1, 1},
     {1, 1},
     {2, 2, 2, 2},
     2,
     true,
     false,
     true},
};

typedef struct Shape {
    int64_t OH, OW, cpg, opg, x, w, y; /* element counts of x, w, y per tensor */
} Shape;

static Shape shape_of(const ConvCase *c)
{
    Shape s;
    s.OH = (c->H + c->pad[0] + c->pad[2] - c->d[0] * (c->k[0] - 1) - 1) / c->s[0] + 1;
    s.OW = (c->W + c->pad[1] + c->pad[3] - c->d[1] * (c->k[1] - 1) - 1) / c->s[1] + 1;
    s.cpg = c->C / c->groups, s.opg = c->O / c->groups;
    s.x = c->N * c->C * c->H * c->W;
    s.w = c->O * s.cpg * c->k[0] * c->k[1];
    s.y = c->N * c->O * s.OH * s.OW;
    return s;
}

static float *random_values(int64_t n, const char *stream)
{
    float *v = ir_xmalloc((size_t)n * sizeof(float));
    Rng r = ir_rng(11, stream);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(2.0 * ir_rng_uniform(&r) - 1.0);
    return v;
}

static double rel_error(const float *got, const double *want, int64_t n)
{
    double diff = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        diff = d > diff || isnan(d) ? d : diff;
        mag = fabs(want[i]) > mag ? fabs(want[i]) : mag;
    }
    return mag > 0 ? diff / mag : diff;
}

/* ---- running a kernel on 1 or 2 threads ---------------------------------- */

typedef struct Part {
    KhFn fn;
    void **args;
    int64_t begin, end;
    void *scratch;
} Part;

static void *run_part(void *p)
{
    Part *w = p;
    w->fn(w->args, w->begin, w->end, w->scratch);
    return NULL;
}

static void run_kernel(const KhKernel *k, void **args, int32_t threads)
{
    Part parts[2];
    pthread_t t[2];
    for (int32_t i = 0; i < threads; i++) {
        parts[i] = (Part){k->fn, args, k->items * i / threads, k->items * (i + 1) / threads,
                          kh_scratch(k)};
        assert_non_null(parts[i].scratch);
        assert_int_equal(pthread_create(&t[i], NULL, run_part, &parts[i]), 0);
    }
    for (int32_t i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        free(parts[i].scratch);
    }
}

/* The targets each kernel is compiled for: the host, AVX2 (8 lanes, 16
 * registers) and SSE (4 lanes, no FMA). */
static const char *const targets[] = {NULL, "+avx,+avx2,+fma", "+sse4.2"};

/* Compiles node `id` of the graph `text` (inputs numbered first, in the op's
 * order) for each target, runs it on `in` with 1 and 2 threads and compares
 * with `want`; where the interpreter runs the op, its values must agree too. */
static void check_node(const char *what, const char *text, int32_t id, const float *const *in,
                       const double *want, int64_t n)
{
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = ir_parse_text("train_kernels.ir", text, &d);
    if (!g)
        fail_msg("%s: the graph does not parse:\n%s", what, text);
    ir_diag_fini(&d);
    float *out = ir_xmalloc((size_t)n * sizeof(float));
    for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) {
        KhKernel k;
        if (!kh_compile(g, id, targets[t], &k))
            fail_msg("%s: the kernel does not compile for %s", what,
                     targets[t] ? targets[t] : "the host");
        void *args[8] = {out};
        for (int32_t i = 0; i < g->nodes[id].ninputs; i++)
            args[1 + i] = (void *)in[i];
        for (int32_t threads = 1; threads <= 2; threads++) {
            for (int64_t i = 0; i < n; i++)
                out[i] = NAN;
            run_kernel(&k, args, threads);
            double e = rel_error(out, want, n);
            if (!(e <= TOL))
                fail_msg("%s, %s, %d thread(s): relative error %g", what,
                         targets[t] ? targets[t] : "host", threads, e);
        }
        kh_unload(&k);
    }
    if (ir_interp_supports(g->nodes[id].op)) {
        InterpResult res;
        char err[256];
        if (!ir_interp(g, in, &res, err, sizeof err))
            fail_msg("%s: interpreter: %s", what, err);
        double *ref = ir_xmalloc((size_t)n * sizeof(double));
        for (int64_t i = 0; i < n; i++)
            ref[i] = res.values[id][i];
        double e = rel_error(out, ref, n);
        if (!(e <= TOL))
            fail_msg("%s: against the interpreter, relative error %g", what, e);
        free(ref);
        ir_interp_free(&res);
    }
    free(out);
    ir_graph_free(g);
}

/* ---- convolutions --------------------------------------------------------- */

/* The contribution of x[n, ci, ih, iw] · w[o, c, kh, kw] to y[n, o, oh, ow], for
 * every tap that reads inside x: what all three references sum. */
typedef void (*TapFn)(void *ctx, int64_t xi, int64_t wi, int64_t yi);

static void each_tap(const ConvCase *c, TapFn f, void *ctx)
{
    Shape s = shape_of(c);
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t o = 0; o < c->O; o++)
            for (int64_t oh = 0; oh < s.OH; oh++)
                for (int64_t ow = 0; ow < s.OW; ow++)
                    for (int64_t ci = 0; ci < s.cpg; ci++)
                        for (int64_t kh = 0; kh < c->k[0]; kh++)
                            for (int64_t kw = 0; kw < c->k[1]; kw++) {
                                int64_t ih = oh * c->s[0] - c->pad[0] + kh * c->d[0];
                                int64_t iw = ow * c->s[1] - c->pad[1] + kw * c->d[1];
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W)
                                    continue;
                                int64_t ch = (o / s.opg) * s.cpg + ci;
                                f(ctx, ((n * c->C + ch) * c->H + ih) * c->W + iw,
                                  ((o * s.cpg + ci) * c->k[0] + kh) * c->k[1] + kw,
                                  ((n * c->O + o) * s.OH + oh) * s.OW + ow);
                            }
}

typedef struct Sums {
    const float *a, *b; /* the two factors, by the role the reference gives them */
    double *out;
    int32_t which; /* 0: y += x w; 1: dx += dy w; 2: dw += dy x */
} Sums;

static void sum_tap(void *p, int64_t xi, int64_t wi, int64_t yi)
{
    Sums *s = p;
    if (s->which == 0)
        s->out[yi] += (double)s->a[xi] * s->b[wi];
    else if (s->which == 1)
        s->out[xi] += (double)s->a[yi] * s->b[wi];
    else
        s->out[wi] += (double)s->a[yi] * s->b[xi];
}

static void conv_attrs(const ConvCase *c, char *buf, size_t n)
{
    snprintf(buf, n,
             "kernel=[%d,%d], stride=[%d,%d], dilation=[%d,%d], pad=[%d,%d,%d,%d], groups=%d",
             c->k[0], c->k[1], c->s[0], c->s[1], c->d[0], c->d[1], c->pad[0], c->pad[1], c->pad[2],
             c->pad[3], c->groups);
}

static void test_conv2d_forward(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof conv_cases / sizeof *conv_cases; t++) {
        const ConvCase *c = &conv_cases[t];
        Shape s = shape_of(c);
        float *x = random_values(s.x, "x"), *w = random_values(s.w, "w");
        float *b = random_values(c->O, "b"), *r = random_values(s.y, "r");
        double *want = ir_xcalloc((size_t)s.y, sizeof(double));
        Sums sums = {x, w, want, 0};
        each_tap(c, sum_tap, &sums);
        for (int64_t i = 0; i < s.y; i++) {
            double v = want[i] + (c->bias ? b[(i / (s.OH * s.OW)) % c->O] : 0.0);
            v = c->relu && v < 0 ? 0 : v;
            want[i] = v + (c->residual ? r[i] : 0.0);
        }
        char attrs[256], text[2048], args[64] = "%0, %1";
        conv_attrs(c, attrs, sizeof attrs);
        const float *in[4] = {x, w};
        int32_t k = 2;
        char decl[512];
        int len = snprintf(decl, sizeof decl,
                           "  %%0 = input \"x\" : f32[%lld,%lld,%lld,%lld]\n"
                           "  %%1 = input \"w\" : f32[%lld,%lld,%d,%d]\n",
                           (long long)c->N, (long long)c->C, (long long)c->H, (long long)c->W,
                           (long long)c->O, (long long)s.cpg, c->k[0], c->k[1]);
        if (c->bias) {
            len += snprintf(decl + len, sizeof decl - (size_t)len,
                            "  %%%d = input \"b\" : f32[%lld]\n", k, (long long)c->O);
            snprintf(args + strlen(args), sizeof args - strlen(args), ", %%%d", k);
            in[k++] = b;
        }
        if (c->residual) {
            snprintf(decl + len, sizeof decl - (size_t)len,
                     "  %%%d = input \"r\" : f32[%lld,%lld,%lld,%lld]\n", k, (long long)c->N,
                     (long long)c->O, (long long)s.OH, (long long)s.OW);
            snprintf(args + strlen(args), sizeof args - strlen(args), ", %%%d", k);
            in[k++] = r;
        }
        snprintf(text, sizeof text,
                 "graph fwd {\n%s  %%%d = conv2d(%s) {%s%s%s} \"conv\" : "
                 "f32[%lld,%lld,%lld,%lld]\n  return %%%d \"y\"\n}\n",
                 decl, k, args, attrs, c->relu ? ", act=relu" : "",
                 c->residual ? ", residual=true" : "", (long long)c->N, (long long)c->O,
                 (long long)s.OH, (long long)s.OW, k);
        char what[160];
        snprintf(what, sizeof what, "conv2d %s", c->name);
        check_node(what, text, k, in, want, s.y);
        free(x), free(w), free(b), free(r), free(want);
    }
}

/* conv2d_grad_input (which 1) or conv2d_grad_weight (which 2) of every case. */
static void check_conv_grad(int32_t which)
{
    for (size_t t = 0; t < sizeof conv_cases / sizeof *conv_cases; t++) {
        const ConvCase *c = &conv_cases[t];
        Shape s = shape_of(c);
        float *dy = random_values(s.y, "dy"), *x = random_values(s.x, "x");
        float *w = random_values(s.w, "w");
        int64_t n = which == 1 ? s.x : s.w;
        double *want = ir_xcalloc((size_t)n, sizeof(double));
        Sums sums = {dy, which == 1 ? w : x, want, which};
        each_tap(c, sum_tap, &sums);
        char attrs[256], text[2048], xt[96], wt[96], yt[96];
        conv_attrs(c, attrs, sizeof attrs);
        snprintf(xt, sizeof xt, "f32[%lld,%lld,%lld,%lld]", (long long)c->N, (long long)c->C,
                 (long long)c->H, (long long)c->W);
        snprintf(wt, sizeof wt, "f32[%lld,%lld,%d,%d]", (long long)c->O, (long long)s.cpg, c->k[0],
                 c->k[1]);
        snprintf(yt, sizeof yt, "f32[%lld,%lld,%lld,%lld]", (long long)c->N, (long long)c->O,
                 (long long)s.OH, (long long)s.OW);
        const char *op = which == 1 ? "conv2d_grad_input" : "conv2d_grad_weight";
        snprintf(text, sizeof text,
                 "graph grad {\n  %%0 = input \"dy\" : %s\n  %%1 = input \"%s\" : %s\n"
                 "  %%2 = input \"%s\" : %s\n  %%3 = %s(%%0, %%1, %%2) {%s} \"g\" : %s\n"
                 "  return %%3 \"d\"\n}\n",
                 yt, which == 1 ? "w" : "x", which == 1 ? wt : xt, which == 1 ? "x" : "w",
                 which == 1 ? xt : wt, op, attrs, which == 1 ? xt : wt);
        const float *in[3] = {dy, which == 1 ? w : x, which == 1 ? x : w};
        char what[160];
        snprintf(what, sizeof what, "%s %s", op, c->name);
        check_node(what, text, 3, in, want, n);
        free(dy), free(x), free(w), free(want);
    }
}

static void test_conv2d_grad_input(void **state)
{
    (void)state;
    check_conv_grad(1);
}

static void test_conv2d_grad_weight(void **state)
{
    (void)state;
    check_conv_grad(2);
}

/* ---- dense ---------------------------------------------------------------- */

typedef struct DenseCase {
    int64_t N, I, O;
    bool bias, relu, residual;
} DenseCase;

static const DenseCase dense_cases[] = {
    {1, 10, 3, true, false, false},  {3, 37, 19, true, true, false},
    {7, 64, 33, false, false, true}, {64, 130, 70, true, true, true},
    {5, 3, 100, true, false, false},
};

static void test_dense_forward(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof dense_cases / sizeof *dense_cases; t++) {
        const DenseCase *c = &dense_cases[t];
        float *x = random_values(c->N * c->I, "x"), *w = random_values(c->O * c->I, "w");
        float *b = random_values(c->O, "b"), *r = random_values(c->N * c->O, "r");
        double *want = ir_xcalloc((size_t)(c->N * c->O), sizeof(double));
        for (int64_t n = 0; n < c->N; n++)
            for (int64_t o = 0; o < c->O; o++) {
                double v = c->bias ? b[o] : 0.0;
                for (int64_t i = 0; i < c->I; i++)
                    v += (double)x[n * c->I + i] * w[o * c->I + i];
                v = c->relu && v < 0 ? 0 : v;
                want[n * c->O + o] = v + (c->residual ? r[n * c->O + o] : 0.0);
            }
        char decl[512], args[32] = "%0, %1", attrs[64] = "", text[1024];
        const float *in[4] = {x, w};
        int32_t k = 2;
        int len = snprintf(decl, sizeof decl,
                           "  %%0 = input \"x\" : f32[%lld,%lld]\n"
                           "  %%1 = input \"w\" : f32[%lld,%lld]\n",
                           (long long)c->N, (long long)c->I, (long long)c->O, (long long)c->I);
        if (c->bias) {
            len += snprintf(decl + len, sizeof decl - (size_t)len,
                            "  %%%d = input \"b\" : f32[%lld]\n", k, (long long)c->O);
            snprintf(args + strlen(args), sizeof args - strlen(args), ", %%%d", k);
            in[k++] = b;
        }
        if (c->residual) {
            snprintf(decl + len, sizeof decl - (size_t)len,
                     "  %%%d = input \"r\" : f32[%lld,%lld]\n", k, (long long)c->N,
                     (long long)c->O);
            snprintf(args + strlen(args), sizeof args - strlen(args), ", %%%d", k);
            in[k++] = r;
        }
        if (c->relu || c->residual)
            snprintf(attrs, sizeof attrs, " {%s%s%s}", c->relu ? "act=relu" : "",
                     c->relu && c->residual ? ", " : "", c->residual ? "residual=true" : "");
        snprintf(text, sizeof text,
                 "graph fwd {\n%s  %%%d = dense(%s)%s \"fc\" : f32[%lld,%lld]\n"
                 "  return %%%d \"y\"\n}\n",
                 decl, k, args, attrs, (long long)c->N, (long long)c->O, k);
        char what[96];
        snprintf(what, sizeof what, "dense %lldx%lld -> %lld", (long long)c->N, (long long)c->I,
                 (long long)c->O);
        check_node(what, text, k, in, want, c->N * c->O);
        free(x), free(w), free(b), free(r), free(want);
    }
}

/* dense_grad_input (weight false) or dense_grad_weight (true) of every case. */
static void check_dense_grad(bool weight)
{
    for (size_t t = 0; t < sizeof dense_cases / sizeof *dense_cases; t++) {
        const DenseCase *c = &dense_cases[t];
        float *dy = random_values(c->N * c->O, "dy"), *x = random_values(c->N * c->I, "x");
        float *w = random_values(c->O * c->I, "w");
        int64_t n = weight ? c->O * c->I : c->N * c->I;
        double *want = ir_xcalloc((size_t)n, sizeof(double));
        for (int64_t b = 0; b < c->N; b++)
            for (int64_t o = 0; o < c->O; o++)
                for (int64_t i = 0; i < c->I; i++) {
                    double g = dy[b * c->O + o];
                    if (weight)
                        want[o * c->I + i] += g * x[b * c->I + i];
                    else
                        want[b * c->I + i] += g * w[o * c->I + i];
                }
        char text[1024];
        int64_t rows = weight ? c->N : c->O, out0 = weight ? c->O : c->N;
        snprintf(text, sizeof text,
                 "graph grad {\n  %%0 = input \"dy\" : f32[%lld,%lld]\n"
                 "  %%1 = input \"%s\" : f32[%lld,%lld]\n"
                 "  %%2 = %s(%%0, %%1) \"g\" : f32[%lld,%lld]\n  return %%2 \"d\"\n}\n",
                 (long long)c->N, (long long)c->O, weight ? "x" : "w", (long long)rows,
                 (long long)c->I, weight ? "dense_grad_weight" : "dense_grad_input",
                 (long long)out0, (long long)c->I);
        const float *in[2] = {dy, weight ? x : w};
        char what[96];
        snprintf(what, sizeof what, "%s %lldx%lld -> %lld",
                 weight ? "dense_grad_weight" : "dense_grad_input", (long long)c->N,
                 (long long)c->I, (long long)c->O);
        check_node(what, text, 2, in, want, n);
        free(dy), free(x), free(w), free(want);
    }
}

static void test_dense_grad_input(void **state)
{
    (void)state;
    check_dense_grad(false);
}

static void test_dense_grad_weight(void **state)
{
    (void)state;
    check_dense_grad(true);
}

/* ---- through the passes into a model.so ---------------------------------- */

static const char *const net =
    "graph net {\n"
    "  %0 = input \"x\" : f32[3,2,12,12]\n"
    "  %1 = input \"w1\" : f32[8,2,3,3]\n"
    "  %2 = input \"b1\" : f32[8]\n"
    "  %3 = conv2d(%0, %1, %2) {kernel=[3,3], stride=[1,1], dilation=[1,1], pad=[1,1,1,1], "
    "groups=1} \"c1\" : f32[3,8,12,12]\n"
    "  %4 = relu(%3) \"r1\" : f32[3,8,12,12]\n"
    "  %5 = input \"w2\" : f32[8,8,3,3]\n"
    "  %6 = conv2d(%4, %5) {kernel=[3,3], stride=[2,2], dilation=[1,1], pad=[1,1,1,1], "
    "groups=1} \"c2\" : f32[3,8,6,6]\n"
    "  %7 = input \"w3\" : f32[8,1,3,3]\n"
    "  %8 = conv2d(%6, %7) {kernel=[3,3], stride=[1,1], dilation=[1,1], pad=[1,1,1,1], "
    "groups=8} \"c3\" : f32[3,8,6,6]\n"
    "  %9 = add(%8, %6) \"sum\" : f32[3,8,6,6]\n"
    "  %10 = relu(%9) \"r2\" : f32[3,8,6,6]\n"
    "  %11 = flatten(%10) {axis=1} \"f\" : f32[3,288]\n"
    "  %12 = input \"w4\" : f32[10,288]\n"
    "  %13 = input \"b4\" : f32[10]\n"
    "  %14 = dense(%11, %12, %13) {act=relu} \"fc\" : f32[3,10]\n"
    "  return %14 \"y\"\n"
    "}\n";

/* With `block` 0 (as training compiles) or the target's lanes, where the layout
 * pass leaves convolutions with run-time weights plain. */
static void check_network(int32_t block)
{
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = ir_parse_text("net.ir", net, &d);
    assert_non_null(g);
    Graph *src = ir_graph_clone(g);
    Build b = {.block = block, .opt = 2};
    optimize(g, &b);
    char *so = link_so("train_net", g, &b);
    Api a = open_so(so);
    for (int32_t threads = 1; threads <= 2; threads++) {
        float **ins;
        int32_t no;
        float **outs = run_so(&a, threads, &ins, &no);
        InterpResult res;
        char err[256];
        if (!ir_interp(src, (const float *const *)ins, &res, err, sizeof err))
            fail_msg("interpreter: %s", err);
        double want[30];
        for (int32_t i = 0; i < 30; i++)
            want[i] = res.values[14][i];
        double e = rel_error(outs[0], want, 30);
        if (!(e <= TOL))
            fail_msg("network, block %d, %d thread(s): relative error %g", block, threads, e);
        ir_interp_free(&res);
        free_all(outs, no);
        free_all(ins, ir_num_inputs(src));
    }
    dlclose(a.lib);
    remove(so);
    free(so);
    ir_graph_free(src);
    ir_graph_free(g);
    ir_diag_fini(&d);
}

static void test_network(void **state)
{
    (void)state;
    check_network(0);
    check_network(-1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_forward),
        cmocka_unit_test(test_conv2d_grad_input),
        cmocka_unit_test(test_conv2d_grad_weight),
        cmocka_unit_test(test_dense_forward),
        cmocka_unit_test(test_dense_grad_input),
        cmocka_unit_test(test_dense_grad_weight),
        cmocka_unit_test(test_network),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
