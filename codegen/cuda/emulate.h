// emulate.h: runs generated CUDA C on the CPU, for tests of the index arithmetic
// where no GPU is present. Included by host C++ before the program's source:
// the blocks of a grid run one after another, the threads of a block as
// cooperative fibers of the calling thread (ucontext), each switching out only
// at a barrier, so __syncthreads is a barrier and __shared__ memory is a static
// shared by them. The warp-wide operations (shuffles, TF32 mma) exchange values
// through per-warp slots between two barriers of the warp's 32 threads,
// assembling the matrices from fragments as the PTX ISA specifies them. A block
// whose threads all wait at barriers that cannot complete aborts with a message.
// The state is global: one launch at a time (the fake driver holds its lock).
#ifndef CNNC_CUDA_EMULATE_H
#define CNNC_CUDA_EMULATE_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

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

static CuDim threadIdx, blockIdx;

namespace cu_emu {
const int max_threads = 1024;
const size_t stack_bytes = (size_t)64 << 10;
struct Barrier {
    unsigned arrived, generation;
};
static Barrier block_barrier, warp_barrier[max_threads / 32];
static float slots[max_threads][16];
static ucontext_t scheduler, fiber[max_threads];
static bool finished[max_threads];
static unsigned threads, current;
// Barrier passes and finished threads: a round of the block without one is a deadlock.
static unsigned long progress;

// The current thread waits for `count` arrivals: the last releases the others, which
// resume, each at its next turn, once the generation has moved on.
static inline void barrier_wait(Barrier &b, unsigned count)
{
    unsigned generation = b.generation;
    if (++b.arrived == count) {
        b.arrived = 0, b.generation++;
    } else {
        while (b.generation == generation) swapcontext(&fiber[current], &scheduler);
    }
    progress++;
}
} // namespace cu_emu

static inline void __syncthreads()
{
    cu_emu::barrier_wait(cu_emu::block_barrier, cu_emu::threads);
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
    cu_emu::barrier_wait(cu_emu::warp_barrier[threadIdx.x / 32], 32);
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
static void (*launch_fn)(void *);
static void *launch_ctx;
static char *stacks;

static void fiber_main()
{
    launch_fn(launch_ctx);
    finished[current] = true;
    progress++;
} // returns to the scheduler (uc_link)

// Runs fn (which calls the kernel) for every thread of every block: each block's
// threads start as fibers, then take turns, in order, until all have returned.
static inline void launch(const unsigned *grid, unsigned nthreads, void (*fn)(void *), void *ctx)
{
    if (!stacks) {
        void *m = mmap(nullptr, max_threads * stack_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            fprintf(stderr, "emulate.h: no memory for %d fiber stacks\n", max_threads);
            abort();
        }
        stacks = (char *)m;
    }
    threads = nthreads, launch_fn = fn, launch_ctx = ctx;
    block_barrier = Barrier{0, 0};
    for (unsigned w = 0; w < max_threads / 32; w++) warp_barrier[w] = Barrier{0, 0};
    for (unsigned z = 0; z < grid[2]; z++)
        for (unsigned y = 0; y < grid[1]; y++)
            for (unsigned x = 0; x < grid[0]; x++) {
                blockIdx = CuDim{x, y, z};
                for (unsigned t = 0; t < threads; t++) {
                    getcontext(&fiber[t]);
                    fiber[t].uc_stack.ss_sp = stacks + t * stack_bytes;
                    fiber[t].uc_stack.ss_size = stack_bytes;
                    fiber[t].uc_link = &scheduler;
                    makecontext(&fiber[t], fiber_main, 0);
                    finished[t] = false;
                }
                for (unsigned left = threads; left;) {
                    unsigned long before = progress;
                    for (unsigned t = 0; t < threads; t++) {
                        if (finished[t]) continue;
                        current = t, threadIdx = CuDim{t, 0, 0};
                        swapcontext(&scheduler, &fiber[t]);
                        left -= finished[t];
                    }
                    if (left && progress == before) {
                        fprintf(stderr, "emulate.h: block (%u, %u, %u): %u of %u threads wait "
                                "at barriers that cannot complete\n", x, y, z, left, threads);
                        abort();
                    }
                }
            }
}
} // namespace cu_emu

#endif
