/* fake_model.c: a hand-written stand-in for generated code, linked with the
 * runtime into a model.so for the runtime's tests. Inputs x [2,3,4] and y [2,5];
 * outputs x + 1 (through the arena, two kernels of 24 items), y * 2 (one kernel
 * of 1 item), and meta = {pool threads, 1 if the arena is 64-byte aligned};
 * 32 bytes of weights, unused.
 * fake_model_hook, when a test sets it, is called between the first two kernels,
 * while the arena holds this run's values. */
#include "rt.h"

#include <stddef.h>

#ifndef FAKE_ABI
#define FAKE_ABI RT_ABI_VERSION
#endif
#ifndef FAKE_ARENA
#define FAKE_ARENA 4096
#endif
#ifndef FAKE_WEIGHTS_HASH /* XXH64 of `weights` below; fake_model_badsum has another */
#define FAKE_WEIGHTS_HASH 0x4cc383ba0a198998u
#endif

typedef struct AddArgs {
    const float *src;
    float *dst;
    float add, mul;
} AddArgs;

static void scale_add(void *p, int64_t begin, int64_t end, void *scratch)
{
    (void)scratch;
    AddArgs *a = p;
    for (int64_t i = begin; i < end; i++)
        a->dst[i] = a->src[i] * a->mul + a->add;
}

/* A kernel of one work item that covers all 10 elements of y. */
static void scale_all(void *p, int64_t begin, int64_t end, void *scratch)
{
    (void)begin;
    (void)end;
    scale_add(p, 0, 10, scratch);
}

__attribute__((visibility("default"))) void (*fake_model_hook)(void);

static void run(RtPool *pool, char *arena, const float *const *in, float *const *out)
{
    float *tmp = (float *)arena;
    AddArgs plus = {in[0], tmp, 1.0f, 1.0f};
    rt_run_kernel(pool, 0, 24, scale_add, &plus);
    if (fake_model_hook)
        fake_model_hook();
    AddArgs copy = {tmp, out[0], 0.0f, 1.0f};
    rt_run_kernel(pool, 1, 24, scale_add, &copy);
    AddArgs twice = {in[1], out[1], 0.0f, 2.0f};
    rt_run_kernel(pool, 2, 1, scale_all, &twice);
    out[2][0] = (float)rt_pool_threads(pool);
    out[2][1] = (size_t)arena % 64 == 0 ? 1.0f : 0.0f;
}

static const RtTensor inputs[] = {
    {"x", 3, 0, {2, 3, 4}},
    {"y", 2, 0, {2, 5}},
};

static const RtTensor outputs[] = {
    {"x_plus_one", 3, 0, {2, 3, 4}},
    {"y_times_two", 2, 0, {2, 5}},
    {"meta", 1, 0, {2}},
};

static const RtKernelInfo kernels[] = {
    {"plus", "mul+add", 48, 24},
    {"copy", "mul+add", 48, 24},
    {"twice", "mul", 10, 1},
};

static const char weights[] = "fake model weights, 32 bytes ok!";

const RtModel cnnc_model = {FAKE_ABI, 2, 3, 0, inputs, outputs, FAKE_ARENA, run, 3, 0, kernels,
                            (const uint8_t *)weights, sizeof weights - 1, FAKE_WEIGHTS_HASH, 0};
