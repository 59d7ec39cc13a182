/* train_kernels.c: GFLOP/s on one thread of the kernels of a training step
 * whose weights are graph inputs -- conv2d, conv2d_grad_input and
 * conv2d_grad_weight on ResNet-18-like layers at batch 4, dense and its two
 * gradients -- against the FMA peak that bench/peak.c measures on this machine
 * (pass it as the first argument), for the host or for the target features
 * given as the third argument ("+avx,+avx2,+fma"). Not part of the test suite.
 *
 *   make -C build-X test_train_kernels                 (builds the libraries)
 *   cc -O3 -march=native -pthread bench/peak.c -o /tmp/peak && /tmp/peak 1
 *   B=build-X; cc -O2 -Iir -Icodegen/llvm -Itests -I/usr/lib/llvm-16/include \
 *      bench/train_kernels.c $B/codegen/llvm/libcnnc_cg_llvm.a $B/ir/libcnnc_ir.a \
 *      -L/usr/lib/llvm-16/lib -lLLVM-16 -ldl -lpthread -lm -o /tmp/train_kernels
 *   /tmp/train_kernels PEAK_GFLOPS [repeats [features]]
 */
#include <time.h>

#include "kernel_harness.h"

typedef struct Layer {
    const char *name;
    int64_t N, C, HW, O;
    int32_t k, s, groups;
    bool dense;
} Layer;

static const Layer layers[] = {
    {"7x7/2 3->64 112 b16", 16, 3, 112, 64, 7, 2, 1, false},
    {"3x3 64->64 56 b4", 4, 64, 56, 64, 3, 1, 1, false},
    {"3x3/2 64->128 56 b4", 4, 64, 56, 128, 3, 2, 1, false},
    {"3x3 128->128 28 b4", 4, 128, 28, 128, 3, 1, 1, false},
    {"3x3 256->256 14 b4", 4, 256, 14, 256, 3, 1, 1, false},
    {"3x3/2 256->512 14 b4", 4, 256, 14, 512, 3, 2, 1, false},
    {"3x3 512->512 7 b4", 4, 512, 7, 512, 3, 1, 1, false},
    {"dw 3x3 64 56 b4", 4, 64, 56, 64, 3, 1, 64, false},
    {"dense 512->1000 b64", 64, 512, 1, 1000, 1, 1, 1, true},
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The graph of `op` on layer l: inputs %0..%2 as the op takes them, the op %3. */
static Graph *graph(const Layer *l, const char *op)
{
    int64_t OHW = (l->HW + 2 * (l->k / 2) - l->k) / l->s + 1;
    char x[64], w[64], y[64], text[1024];
    if (l->dense) {
        snprintf(x, sizeof x, "f32[%lld,%lld]", (long long)l->N, (long long)l->C);
        snprintf(w, sizeof w, "f32[%lld,%lld]", (long long)l->O, (long long)l->C);
        snprintf(y, sizeof y, "f32[%lld,%lld]", (long long)l->N, (long long)l->O);
    } else {
        snprintf(x, sizeof x, "f32[%lld,%lld,%lld,%lld]", (long long)l->N, (long long)l->C,
                 (long long)l->HW, (long long)l->HW);
        snprintf(w, sizeof w, "f32[%lld,%lld,%d,%d]", (long long)l->O,
                 (long long)(l->C / l->groups), l->k, l->k);
        snprintf(y, sizeof y, "f32[%lld,%lld,%lld,%lld]", (long long)l->N, (long long)l->O,
                 (long long)OHW, (long long)OHW);
    }
    char attrs[160] = "";
    if (!l->dense)
        snprintf(attrs, sizeof attrs,
                 " {kernel=[%d,%d], stride=[%d,%d], pad=[%d,%d,%d,%d], "
                 "groups=%d}",
                 l->k, l->k, l->s, l->s, l->k / 2, l->k / 2, l->k / 2, l->k / 2, l->groups);
    /* conv2d/dense (x, w, b), *_grad_input (dy, w, x), *_grad_weight (dy, x, w) */
    bool fwd = !strstr(op, "grad"), gi = strstr(op, "grad_input") != NULL;
    const char *t0 = fwd ? x : y, *t1 = fwd || gi ? w : x, *t2 = fwd ? "f32[1]" : gi ? x : w;
    char b[64];
    snprintf(b, sizeof b, "f32[%lld]", (long long)l->O);
    if (fwd)
        t2 = b;
    bool two = l->dense && !fwd;
    snprintf(text, sizeof text,
             "graph b {\n  %%0 = input \"a\" : %s\n  %%1 = input \"b\" : %s\n"
             "  %%2 = input \"c\" : %s\n  %%3 = %s(%%0, %%1%s)%s \"k\" : %s\n"
             "  return %%3 \"y\"\n}\n",
             t0, t1, t2, op, two ? "" : ", %2", l->dense ? "" : attrs,
             fwd  ? y
             : gi ? x
                  : w);
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = ir_parse_text("bench.ir", text, &d);
    ir_diag_fini(&d);
    if (!g) {
        fprintf(stderr, "%s", text);
        exit(1);
    }
    return g;
}

static const char *features; /* NULL: the host's */

static void bench(const Layer *l, const char *op, double flops, double peak, int reps)
{
    Graph *g = graph(l, op);
    KhKernel k;
    if (!kh_compile(g, 3, features, &k)) {
        fprintf(stderr, "%s %s: compile failed\n", l->name, op);
        exit(1);
    }
    void *args[4];
    float *bufs[4];
    for (int32_t i = 0; i < 4; i++) {
        int64_t n = ir_numel(&g->nodes[i == 0 ? 3 : i - 1].type);
        bufs[i] = aligned_alloc(64, (size_t)(n + 16) * 4);
        for (int64_t j = 0; j < n; j++)
            bufs[i][j] = (float)((j * 7919 + i) % 1000) / 1000.0f - 0.5f;
        args[i] = bufs[i];
    }
    double best = 1e30;
    void *scratch = kh_scratch(&k);
    k.fn(args, 0, k.items, scratch);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        k.fn(args, 0, k.items, scratch);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    double gf = flops / best / 1e9;
    printf("%-22s %-20s %8.3f ms %7.1f GFLOP/s", l->name, op, best * 1e3, gf);
    if (peak > 0)
        printf("  %5.1f%% of peak", 100 * gf / peak);
    printf("\n");
    for (int32_t i = 0; i < 4; i++)
        free(bufs[i]);
    free(scratch);
    kh_unload(&k);
    ir_graph_free(g);
}

int main(int argc, char **argv)
{
    double peak = argc > 1 ? atof(argv[1]) : 0;
    int reps = argc > 2 ? atoi(argv[2]) : 10;
    features = argc > 3 ? argv[3] : NULL;
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
        const Layer *l = &layers[i];
        int64_t OHW = (l->HW + 2 * (l->k / 2) - l->k) / l->s + 1;
        double flops = 2.0 * (double)l->N * (double)l->O * (double)(OHW * OHW) *
                       (double)(l->C / l->groups) * l->k * l->k;
        const char *ops[3] = {l->dense ? "dense" : "conv2d",
                              l->dense ? "dense_grad_input" : "conv2d_grad_input",
                              l->dense ? "dense_grad_weight" : "conv2d_grad_weight"};
        for (int32_t j = 0; j < 3; j++)
            bench(l, ops[j], flops, peak, reps);
    }
    return 0;
}
