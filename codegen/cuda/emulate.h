// emulate.h: runs generated CUDA C on the CPU, for tests of the index arithmetic
// where no GPU is present. Included by host C++ before the program's source:
// the blocks of a grid run one after another, the threads of a block as POSIX
// threads (so __syncthreads is a barrier and __shared__ memory is a static
// shared by them), and the warp-wide operations (shuffles, TF32 mma) exchange
// values through per-warp slots between two barriers of the warp's 32 threads,
// assembling the matrices from fragments as the PTX ISA specifies them.
#ifndef CNNC_CUDA_EMULATE_H
#define CNNC_CUDA_EMULATE_H

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define CU_EMULATE 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __restrict__ __restrict
#define __shared__ static

struct CuDim {
    unsigned x, y, z;
};
struct float4 {
    float x, y, z, w;
};
struct int4 {
    int x, y, z, w;
};

static thread_local CuDim threadIdx, blockIdx;

namespace cu_emu {
const int max_threads = 1024;
static pthread_barrier_t block_barrier;
static pthread_barrier_t warp_barrier[max_threads / 32];
static float slots[max_threads][16];
} // namespace cu_emu

static inline void __syncthreads()
{
    pthread_barrier_wait(&cu_emu::block_barrier);
}

static inline float __int_as_float(int v)
{
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static inline float __uint_as_float(unsigned v)
{
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static inline unsigned __float_as_uint(float f)
{
    unsigned v;
    memcpy(&v, &f, 4);
    return v;
}

static inline void cu_warp_sync()
{
    pthread_barrier_wait(&cu_emu::warp_barrier[threadIdx.x / 32]);
}

static inline float __shfl_xor_sync(unsigned, float v, int lane_mask)
{
    unsigned t = threadIdx.x;
    cu_emu::slots[t][0] = v;
    cu_warp_sync();
    float r = cu_emu::slots[(t & ~31u) | ((t & 31u) ^ (unsigned)lane_mask)][0];
    cu_warp_sync();
    return r;
}

// cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa bits.
static inline float cu_tf32(float x)
{
    unsigned u = __float_as_uint(x);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    return __uint_as_float(u);
}

// mma.m16n8k8 row.col f32.tf32.tf32.f32 from the fragments of the 32 lanes.
static inline void cu_mma_tf32(float *c, const float *a, const float *b)
{
    unsigned t = threadIdx.x, w0 = t & ~31u;
    float *s = cu_emu::slots[t];
    for (int i = 0; i < 4; i++) s[i] = a[i];
    s[4] = b[0], s[5] = b[1];
    cu_warp_sync();
    float A[16][8], B[8][8];
    for (unsigned l = 0; l < 32; l++) {
        const float *f = cu_emu::slots[w0 + l];
        unsigned g = l / 4, k = l % 4;
        A[g][k] = f[0], A[g + 8][k] = f[1], A[g][k + 4] = f[2], A[g + 8][k + 4] = f[3];
        B[k][g] = f[4], B[k + 4][g] = f[5];
    }
    cu_warp_sync();
    unsigned g = (t & 31u) / 4, k = (t & 31u) % 4;
    unsigned rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * k, 2 * k + 1, 2 * k, 2 * k + 1};
    for (int v = 0; v < 4; v++) {
        float sum = c[v];
        for (int j = 0; j < 8; j++) sum += A[rows[v]][j] * B[j][cols[v]];
        c[v] = sum;
    }
}

namespace cu_emu {
struct Launch {
    void (*fn)(void *ctx);
    void *ctx;
    const unsigned *grid;
    unsigned tid;
};
static pthread_barrier_t end_barrier;

// A thread runs its part of every block; the blocks are separated by a barrier
// so that no thread starts the next block while the shared memory is in use.
static void *thread_main(void *p)
{
    Launch *l = (Launch *)p;
    threadIdx = CuDim{l->tid, 0, 0};
    for (unsigned z = 0; z < l->grid[2]; z++)
        for (unsigned y = 0; y < l->grid[1]; y++)
            for (unsigned x = 0; x < l->grid[0]; x++) {
                blockIdx = CuDim{x, y, z};
                l->fn(l->ctx);
                pthread_barrier_wait(&end_barrier);
            }
    return nullptr;
}

// Runs fn (which calls the kernel) for every thread of every block.
static inline void launch(const unsigned *grid, unsigned threads, void (*fn)(void *), void *ctx)
{
    static pthread_t th[max_threads];
    static Launch ls[max_threads];
    pthread_barrier_init(&block_barrier, nullptr, threads);
    pthread_barrier_init(&end_barrier, nullptr, threads);
    for (unsigned w = 0; w < threads / 32; w++) pthread_barrier_init(&warp_barrier[w], nullptr, 32);
    for (unsigned t = 0; t < threads; t++) {
        ls[t] = Launch{fn, ctx, grid, t};
        pthread_create(&th[t], nullptr, thread_main, &ls[t]);
    }
    for (unsigned t = 0; t < threads; t++) pthread_join(th[t], nullptr);
    pthread_barrier_destroy(&block_barrier);
    pthread_barrier_destroy(&end_barrier);
    for (unsigned w = 0; w < threads / 32; w++) pthread_barrier_destroy(&warp_barrier[w]);
}
} // namespace cu_emu

#endif
