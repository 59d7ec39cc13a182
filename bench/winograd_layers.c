/* winograd_layers.c: the 3×3 stride-1 conv2d layers of ResNet-18/50 and VGG-16,
 * direct against Winograd F(4×4, 3×3) and F(2×2, 3×3) (codegen/llvm/winograd.c),
 * with what the conv_algo pass's cost model chooses for each: the numbers that
 * model was fitted to. Also checks that the kernels agree. Not part of the test
 * suite.
 *
 *   cmake --build build-wino --target cnnc      (builds the libraries)
 *   B=build-wino; cc -O2 -Iir -Icodegen/llvm -Ipasses -Itests -Iruntime -Ifrontend \
 *      -I/usr/lib/llvm-16/include bench/winograd_layers.c $B/codegen/llvm/libcnnc_cg_llvm.a \
 *      $B/passes/libcnnc_passes.a $B/frontend/libcnnc_frontend.a $B/ir/libcnnc_ir.a \
 *      $B/runtime/libcnnc_rt.a -L/usr/lib/llvm-16/lib -lLLVM-16 -ldl -lpthread -lm \
 *      -o /tmp/winograd_layers
 *   /tmp/winograd_layers [repeats [features, e.g. +avx2,+fma]]
 *
 * Times: 1 thread in its own CPU time (what other processes take on a shared
 * machine is not counted), the fastest of the repeats; 2 threads in wall time,
 * the median. */
#include <math.h>
#include <time.h>

#include "frontend.h"
#include "kernel_harness.h"
#include "passes.h"
#include "rt.h"

typedef struct Layer {
    int64_t N, C, HW, O;
} Layer;

static const Layer layers[] = {
    {1, 64, 56, 64},    {1, 128, 28, 128}, {1, 256, 14, 256}, {1, 512, 7, 512},
    {1, 64, 224, 64},   {1, 64, 112, 128}, {1, 128, 112, 128}, {1, 128, 56, 256},
    {1, 256, 56, 256},  {1, 256, 28, 512}, {1, 512, 28, 512}, {1, 512, 14, 512},
    {8, 64, 56, 64},    {8, 128, 28, 128}, {8, 256, 14, 256}, {8, 512, 7, 512},
    {8, 512, 14, 512},  {1, 32, 56, 32},   {1, 16, 56, 16},   {1, 64, 17, 48},
};

static double now(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double time_kernel(const KhKernel *k, void **args, int threads, int reps)
{
    RtPool *pool = rt_pool_new(threads);
    if (!pool || !rt_pool_reserve_scratch(pool, k->scratch_bytes)) {
        fprintf(stderr, "no memory for the thread pool\n");
        exit(1);
    }
    clockid_t id = threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
    double t[64];
    rt_parallel_for(pool, k->items, (RtKernel)k->fn, args);
    for (int r = 0; r < reps; r++) {
        double t0 = now(id);
        rt_parallel_for(pool, k->items, (RtKernel)k->fn, args);
        t[r] = now(id) - t0;
    }
    rt_pool_free(pool);
    for (int i = 1; i < reps; i++) /* sort */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1], t[j - 1] = x;
        }
    return threads == 1 ? t[0] : t[reps / 2];
}

static void bench(const Layer *l, int reps, const char *features)
{
    Graph *g = ir_graph_new("bench");
    SrcLoc no = {0};
    int32_t b = kh_lanes(features);
    int32_t x = ir_add_input(g, "x", ir_type_f32(4, (int64_t[]){l->N, l->C, l->HW, l->HW}), no);
    int32_t ins[3] = {x, ir_add_param(g, "w", ir_type_f32(4, (int64_t[]){l->O, l->C, 3, 3}), no),
                      ir_add_param(g, "b", ir_type_f32(1, (int64_t[]){l->O}), no)};
    int32_t id = ir_add_node(g, OP_CONV2D, ins, 3, "k", no);
    ConvAttrs *a = &g->nodes[id].attrs.conv;
    a->kernel[0] = a->kernel[1] = 3;
    a->stride[0] = a->stride[1] = a->dilation[0] = a->dilation[1] = 1;
    a->pad[0] = a->pad[1] = a->pad[2] = a->pad[3] = 1;
    a->groups = 1;
    a->epi.act = OP_RELU;
    ir_add_output(g, id, "y");
    Diag d;
    ir_diag_init(&d, stderr);
    if (!ir_infer_shapes(g, &d))
        exit(1);
    fe_random_weights(g, 1);
    Node *n = &g->nodes[id];
    g->nodes[x].type.layout = n->type.layout = LAYOUT_NCHWC;
    g->nodes[x].type.block = n->type.block = b;
    PassOptions po;
    pass_options_init(&po);
    po.block = b;
    pass_conv_algo(g, &po, &d);
    int32_t chosen = a->winograd;
    ir_diag_fini(&d);
    KhKernel k[3];
    int64_t xn = ir_numel(&g->nodes[x].type), on = ir_numel(&n->type);
    float *xv = aligned_alloc(64, (size_t)(xn + 16) * 4);
    float *y[3];
    for (int w = 0; w < 3; w++)
        y[w] = aligned_alloc(64, (size_t)on * 4);
    for (int64_t i = 0; i < xn; i++)
        xv[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    double t1[3], t2[3];
    for (int w = 0; w < 3; w++) { /* direct, F(4×4), F(2×2) */
        a->winograd = w == 0 ? 0 : w == 1 ? 4 : 2;
        if (!kh_compile(g, id, features, &k[w])) {
            fprintf(stderr, "compile failed\n");
            exit(1);
        }
        void *args[4] = {y[w], xv, NULL, NULL};
        t1[w] = time_kernel(&k[w], args, 1, reps);
        t2[w] = time_kernel(&k[w], args, 2, reps);
        kh_unload(&k[w]);
    }
    double err = 0, big = 0;
    for (int64_t i = 0; i < on; i++) {
        err = fmax(err, fmax(fabs((double)y[0][i] - y[1][i]), fabs((double)y[0][i] - y[2][i])));
        big = fmax(big, fabs((double)y[0][i]));
    }
    double flops = 2.0 * (double)(l->N * l->O * l->C * l->HW * l->HW * 9);
    printf("N%-2lld %4lld->%-4lld %3lld | 1T direct %7.3f ms %6.1f GF/s  F4 %7.3f  F2 %7.3f | "
           "2T %7.3f %7.3f %7.3f ms | model: %-9s | rel err %.2g\n",
           (long long)l->N, (long long)l->C, (long long)l->O, (long long)l->HW, t1[0] * 1e3,
           flops / t1[0] * 1e-9, t1[1] * 1e3, t1[2] * 1e3, t2[0] * 1e3, t2[1] * 1e3,
           t2[2] * 1e3, chosen == 4 ? "winograd" : chosen == 2 ? "winograd2" : "direct",
           err / big);
    free(xv), free(y[0]), free(y[1]), free(y[2]);
    ir_graph_free(g);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    reps = reps < 1 ? 1 : reps > 64 ? 64 : reps;
    const char *features = argc > 2 ? argv[2] : NULL;
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        bench(&layers[i], reps, features);
    return 0;
}
