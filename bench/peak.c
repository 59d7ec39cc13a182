/* peak.c: measures this machine's fp32 FMA peak (GFLOP/s) with independent
 * vector FMA chains, on 1..T threads, so benchmarks can report a fraction of
 * the peak actually reachable here. Built and run by bench/run.py:
 *     cc -O3 -march=native -pthread bench/peak.c -o peak && ./peak 2
 * prints one line per thread count: "threads N gflops X", the best of REPS runs
 * (on a shared machine a run that another process interrupted reads low: three
 * runs once gave 246 GFLOP/s on 2 threads where 470 is usual). */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12
#define REPS 9
#define ITERS 20000000L

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define SUM(v) _mm512_reduce_add_ps(v)
#else
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float SUM(__m256 v)
{
    float f[8];
    _mm256_storeu_ps(f, v);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}
#endif

static void *spin(void *out)
{
    vec acc[CHAINS];
    vec a = SET1(0.999999f), b = SET1(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = SET1((float)i);
    for (long it = 0; it < ITERS; it++) {
        /* fully unrolled so every chain stays in a register */
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) acc[i] = FMA(acc[i], a, b);
    }
    vec s = acc[0];
    for (int i = 1; i < CHAINS; i++) s = ADD(s, acc[i]);
    *(float *)out = SUM(s); /* keeps the chains alive */
    return NULL;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    int maxt = argc > 1 ? atoi(argv[1]) : 1;
    if (maxt < 1 || maxt > 256) maxt = 1;
    for (int t = 1; t <= maxt; t++) {
        pthread_t th[256];
        float sink[256];
        double best = 0;
        for (int rep = 0; rep < REPS; rep++) {
            double t0 = now();
            for (int i = 0; i < t; i++) pthread_create(&th[i], NULL, spin, &sink[i]);
            for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
            double gf = 2.0 * LANES * CHAINS * (double)ITERS * t / (now() - t0) / 1e9;
            if (gf > best) best = gf;
        }
        printf("threads %d gflops %.1f lanes %d\n", t, best, LANES);
    }
    return 0;
}
