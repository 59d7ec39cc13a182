/* conv_layers.c: GFLOP/s of the conv2d and dense kernels on ResNet-50- and
 * ConvNeXt-like layers (random data), on 1 and 2 threads of the runtime's pool,
 * against the FMA peak measured on this machine. Not part of the test suite.
 *
 *   cmake --build build-conv --target test_kernels     (builds the libraries)
 *   B=build-conv; cc -O2 -mavx2 -mfma -Iinclude -Iir -Icodegen/llvm -Itests -Iruntime \
 *      -Ifrontend -I/usr/lib/llvm-16/include bench/conv_layers.c \
 *      $B/codegen/llvm/libcnnc_cg_llvm.a $B/passes/libcnnc_passes.a \
 *      $B/frontend/libcnnc_frontend.a $B/ir/libcnnc_ir.a $B/runtime/libcnnc_rt.a \
 *      $B/support/*.a -L/usr/lib/llvm-16/lib -lLLVM-16 -ldl -lpthread -lm -o /tmp/conv_layers
 *   /tmp/conv_layers [repeats [layer-name-part [batch [relu|gelu [hot|cold]]]]]
 *
 * A batch above 1 shows layers whose activations outgrow the caches; gelu shows
 * what the epilogue costs next to a short reduction (ConvNeXt's 1x1 convs);
 * cold, what weights read from memory cost.
 */
#include <immintrin.h>
#include <pthread.h>
#include <time.h>

#include "cg.h"
#include "frontend.h"
#include "kernel_harness.h"
#include "rt.h"

typedef struct Layer {
    const char *name;
    int64_t C, HW, O;
    int32_t k, s, groups;
    bool plain_in, dense;
} Layer;

static const Layer layers[] = {
    {"conv1 7x7/2 3->64 224", 3, 224, 64, 7, 2, 1, true, false},
    {"3x3 64->64 56", 64, 56, 64, 3, 1, 1, false, false},
    {"1x1 64->256 56", 64, 56, 256, 1, 1, 1, false, false},
    {"1x1 256->64 56", 256, 56, 64, 1, 1, 1, false, false},
    {"3x3 128->128 28", 128, 28, 128, 3, 1, 1, false, false},
    {"3x3/2 128->128 56", 128, 56, 128, 3, 2, 1, false, false},
    {"1x1 512->128 28", 512, 28, 128, 1, 1, 1, false, false},
    {"3x3 256->256 14", 256, 14, 256, 3, 1, 1, false, false},
    {"1x1 1024->256 14", 1024, 14, 256, 1, 1, 1, false, false},
    {"1x1/2 1024->2048 14", 1024, 14, 2048, 1, 2, 1, false, false},
    {"3x3 512->512 7", 512, 7, 512, 3, 1, 1, false, false},
    {"1x1 2048->512 7", 2048, 7, 512, 1, 1, 1, false, false},
    {"1x1 96->384 56", 96, 56, 384, 1, 1, 1, false, false},
    {"1x1 384->96 56", 384, 56, 96, 1, 1, 1, false, false},
    {"1x1 192->768 28", 192, 28, 768, 1, 1, 1, false, false},
    {"1x1 384->1536 14", 384, 14, 1536, 1, 1, 1, false, false},
    {"dw 3x3 32 112", 32, 112, 32, 3, 1, 32, false, false},
    {"dw 3x3/2 144 56", 144, 56, 144, 3, 2, 144, false, false},
    {"dense 2048->1000", 2048, 1, 1000, 1, 1, 1, false, true},
};

/* The machine is shared: one thread is timed in its own CPU time (what other
 * processes take is not counted), two threads in wall time. */
static clockid_t clock_id = CLOCK_MONOTONIC;

static int64_t batch = 1;     /* argv[3] */
static Op epilogue = OP_RELU; /* argv[4] */

static double now(void)
{
    struct timespec t;
    clock_gettime(clock_id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 12 independent FMA chains in registers: the machine's FMA throughput, at the
 * vector width the kernels are generated for (cg_target_lanes). Measured with
 * 8-lane FMAs, in chains that began equal and that the compiler merged into 5, an
 * AVX-512 host's peak read 330 GFLOP/s on 2 threads where 16-lane FMAs reach
 * 410-460, and every fraction of it about 1.3 times what it is. */
#define PEAK_ITERS 5000000L
#define CHAINS(V, FMA, ADD)                                                                        \
    V m = SET1(0.999999f), k = SET1(1e-7f);                                                        \
    V a0 = SET1(0.0f), a1 = SET1(0.1f), a2 = SET1(0.2f), a3 = SET1(0.3f), a4 = SET1(0.4f),         \
      a5 = SET1(0.5f), a6 = SET1(0.6f), a7 = SET1(0.7f), a8 = SET1(0.8f), a9 = SET1(0.9f),         \
      a10 = SET1(1.0f), a11 = SET1(1.1f); /* unequal: the compiler cannot merge chains */          \
    for (long it = 0; it < PEAK_ITERS; it++) {                                                     \
        a0 = FMA(a0, m, k), a1 = FMA(a1, m, k), a2 = FMA(a2, m, k), a3 = FMA(a3, m, k);            \
        a4 = FMA(a4, m, k), a5 = FMA(a5, m, k), a6 = FMA(a6, m, k), a7 = FMA(a7, m, k);            \
        a8 = FMA(a8, m, k), a9 = FMA(a9, m, k), a10 = FMA(a10, m, k), a11 = FMA(a11, m, k);        \
        __asm__ volatile("" : "+x"(a0), "+x"(a4), "+x"(a8));                                       \
    }                                                                                              \
    V s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));                       \
    s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));                                                   \
    *(float *)arg = s[0];                                                                          \
    return NULL

__attribute__((target("avx2,fma"))) static void *peak_thread8(void *arg)
{
#define SET1 _mm256_set1_ps
    CHAINS(__m256, _mm256_fmadd_ps, _mm256_add_ps);
#undef SET1
}

__attribute__((target("avx512f"))) static void *peak_thread16(void *arg)
{
#define SET1 _mm512_set1_ps
    CHAINS(__m512, _mm512_fmadd_ps, _mm512_add_ps);
#undef SET1
}

static int lanes = 8; /* of the kernels' vectors: 16 on an AVX-512 host */

/* The best of 15 short runs: on a shared machine the fastest run is the one
 * that was not interrupted. */
static double peak(int threads)
{
    void *(*fn)(void *) = lanes == 16 ? peak_thread16 : peak_thread8;
    pthread_t t[2];
    float sink[2];
    double best = 1e30;
    for (int r = 0; r < 15; r++) {
        double t0 = now();
        if (threads == 1)
            fn(sink);
        for (int i = 0; threads > 1 && i < threads; i++)
            pthread_create(&t[i], NULL, fn, &sink[i]);
        for (int i = 0; threads > 1 && i < threads; i++)
            pthread_join(t[i], NULL);
        best = now() - t0 < best ? now() - t0 : best;
    }
    return (double)PEAK_ITERS * 12.0 * 2.0 * lanes * threads / best / 1e9;
}

static int32_t build(Graph *g, const Layer *l)
{
    SrcLoc no = {0};
    int64_t xd[4] = {batch, l->C, l->HW, l->HW};
    int32_t x = l->dense ? ir_add_input(g, "x", ir_type_f32(2, (int64_t[]){batch, l->C}), no)
                         : ir_add_input(g, "x", ir_type_f32(4, xd), no);
    int64_t wd[4] = {l->O, l->C / l->groups, l->k, l->k};
    int32_t ins[3] = {x, ir_add_param(g, "w", ir_type_f32(l->dense ? 2 : 4, wd), no),
                      ir_add_param(g, "b", ir_type_f32(1, (int64_t[]){l->O}), no)};
    int32_t id = ir_add_node(g, l->dense ? OP_DENSE : OP_CONV2D, ins, 3, "k", no);
    if (!l->dense) {
        ConvAttrs *a = &g->nodes[id].attrs.conv;
        a->kernel[0] = a->kernel[1] = l->k;
        a->stride[0] = a->stride[1] = l->s;
        a->pad[0] = a->pad[1] = a->pad[2] = a->pad[3] = l->k / 2;
        a->groups = l->groups;
        a->epi.act = epilogue;
    } else {
        g->nodes[id].attrs.dense.epi.act = OP_RELU;
    }
    ir_add_output(g, id, "y");
    Diag d;
    ir_diag_init(&d, stderr);
    if (!ir_infer_shapes(g, &d))
        exit(1);
    ir_diag_fini(&d);
    fe_random_weights(g, 1);
    return id;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static double best_of; /* the fastest run of the last time_layer */

/* argv[5] "cold": before each run, 64 MiB are read, so that the weights come
 * from memory, as in a network whose weights outgrow the last-level cache
 * (ResNet-50 at batch 1); the activations are then read again, as a layer
 * finds its input in the caches. */
static bool cold;
static volatile float flush_sink;
#define FLUSH_FLOATS (16L << 20)

static void flush_caches(float *x, int64_t xn)
{
    static float *buf;
    if (!cold)
        return;
    if (!buf) {
        buf = malloc(FLUSH_FLOATS * sizeof(float));
        for (long i = 0; i < FLUSH_FLOATS; i++)
            buf[i] = 1.0f;
    }
    float s = 0.0f;
    for (long i = 0; i < FLUSH_FLOATS; i += 16)
        s += buf[i];
    for (int64_t i = 0; i < xn; i += 16)
        s += x[i];
    flush_sink = s;
}

static double time_layer(const KhKernel *k, void **args, int threads, int reps, int64_t xn)
{
    RtPool *pool = rt_pool_new(threads);
    if (!pool || !rt_pool_reserve_scratch(pool, k->scratch_bytes)) {
        fprintf(stderr, "no memory for the thread pool\n");
        exit(1);
    }
    double t[64];
    rt_parallel_for(pool, k->items, (RtKernel)k->fn, args);
    for (int r = 0; r < reps; r++) {
        flush_caches(args[1], xn);
        double t0 = now();
        rt_parallel_for(pool, k->items, (RtKernel)k->fn, args);
        t[r] = now() - t0;
    }
    rt_pool_free(pool);
    double m = median(t, reps);
    best_of = t[0];
    return m;
}

static void bench(const Layer *l, int reps, double peak1, double peak2)
{
    Graph *g = ir_graph_new("bench");
    int32_t id = build(g, l);
    Node *n = &g->nodes[id];
    int32_t b = kh_lanes(NULL);
    if (!l->dense) {
        if (!l->plain_in)
            g->nodes[0].type.layout = LAYOUT_NCHWC, g->nodes[0].type.block = b;
        n->type.layout = LAYOUT_NCHWC, n->type.block = b;
    }
    KhKernel k;
    if (!kh_compile(g, id, NULL, &k)) {
        fprintf(stderr, "%s: compile failed\n", l->name);
        exit(1);
    }
    int64_t xn = ir_numel(&g->nodes[0].type), on = ir_numel(&n->type);
    float *x = aligned_alloc(64, (size_t)(xn + 16) * 4), *y = aligned_alloc(64, (size_t)on * 4);
    for (int64_t i = 0; i < xn; i++)
        x[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    void *args[4] = {y, x, NULL, NULL};
    int64_t pix = l->dense ? 1 : n->type.dims[2] * n->type.dims[3];
    double flops = 2.0 * (double)batch * (double)l->O * (double)pix *
                   (double)(l->C / l->groups) * l->k * l->k;
    clock_id = CLOCK_THREAD_CPUTIME_ID;
    double t1 = time_layer(&k, args, 1, reps, xn), b1 = best_of;
    clock_id = CLOCK_MONOTONIC;
    double t2 = time_layer(&k, args, 2, reps, xn), b2 = best_of;
    double g1 = flops / t1 / 1e9, g2 = flops / t2 / 1e9;
    printf("%-20s %7.3f ms %6.1f GF/s %5.1f%% best %6.1f | "
           "2T %7.3f ms %6.1f GF/s %5.1f%% best %6.1f\n",
           l->name, t1 * 1e3, g1, 100 * g1 / peak1, flops / b1 / 1e9, t2 * 1e3, g2,
           100 * g2 / peak2, flops / b2 / 1e9);
    kh_unload(&k);
    free(x), free(y);
    ir_graph_free(g);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    reps = reps < 1 ? 1 : reps > 64 ? 64 : reps;
    batch = argc > 3 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 1;
    epilogue = argc > 4 && !strcmp(argv[4], "gelu") ? OP_GELU : OP_RELU;
    cold = argc > 5 && !strcmp(argv[5], "cold");
    lanes = cg_target_lanes(NULL) == 16 ? 16 : 8;
    double w1 = peak(1), w2 = peak(2);
    clock_id = CLOCK_THREAD_CPUTIME_ID;
    double p1 = peak(1);
    clock_id = CLOCK_MONOTONIC;
    int fpc = 2 * 2 * lanes; /* two FMA units, two FLOPs a lane */
    printf("FMA peak (%d-lane FMAs): %.1f GFLOP/s in thread CPU time (1 thread); best wall time "
           "%.1f (1 thread, %.2f GHz x %d flop/cycle), %.1f (2 threads)\n",
           lanes, p1, w1, w1 / fpc, fpc, w2);
    printf("1 thread: median thread CPU time (%% of the CPU-time peak) and best; "
           "2 threads: median wall time (%% of the 2-thread wall peak) and best\n");
    double p2 = w2;
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        if (argc < 3 || strstr(layers[i].name, argv[2]))
            bench(&layers[i], reps, p1, p2);
    return 0;
}
