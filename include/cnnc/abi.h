/* cnnc/abi.h: the binary interface between the code cnnc generates and the
 * runtime linked into every model.so. The runtime reads these structs; the
 * LLVM backend (codegen/llvm/module.c) builds them as constants field by field
 * and checks its layout against the offsets here. Change RT_ABI_VERSION with
 * any change to them. (The GPU image is runtime/rt_gpu.h.) */
#ifndef CNNC_ABI_H
#define CNNC_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RT_ABI_VERSION 6
#define RT_MAX_RANK 6

typedef struct RtPool RtPool;

/* A kernel processes work items [begin, end) of its own numbering. `scratch` is
 * the calling thread's own RtModel.scratch_bytes of 64-byte-aligned memory, the
 * same for every kernel that thread runs (NULL in a call nested inside another
 * kernel of the same pool). */
typedef void (*RtKernel)(void *args, int64_t begin, int64_t end, void *scratch);

typedef struct RtTensor {
    const char *name;
    int32_t rank;
    int32_t pad_;
    int64_t dims[RT_MAX_RANK];
} RtTensor;

/* One kernel call of `run`, for profiling. */
typedef struct RtKernelInfo {
    const char *name; /* the IR node it implements, e.g. "layer1.0.conv1" */
    const char *op;   /* what it computes, with its fused parts: "conv2d+bias+add+relu" */
    int64_t flops;    /* per run, as ir_node_flops counts them */
    int64_t items;    /* work items it is split into */
} RtKernelInfo;

/* `run` executes the network once: inputs[i] / outputs[i] are the caller's
 * plain row-major f32 buffers, arena is `arena_bytes` of 64-byte-aligned
 * scratch owned by the instance. */
typedef struct RtModel {
    uint32_t abi_version;
    int32_t ninputs, noutputs;
    int32_t pad_;
    const RtTensor *inputs;
    const RtTensor *outputs;
    int64_t arena_bytes;
    void (*run)(RtPool *pool, char *arena, const float *const *inputs, float *const *outputs);
    int32_t nkernels;
    int32_t pad2_;
    const RtKernelInfo *kernels; /* in execution order */
    /* The packed weights the kernels read (NULL and 0 for none) and their
     * XXH64 hash (rt_weights_hash), computed by cnnc when it packed them. */
    const uint8_t *weights;
    int64_t weights_bytes;
    uint64_t weights_hash;
    /* The most scratch one thread's call of a kernel takes (the Winograd
     * kernel's transformed tiles, a fused kernel's band of rows): each thread of
     * an instance's pool has this much, allocated with the instance. */
    int64_t scratch_bytes;
} RtModel;

/* A training model.so (cnnc --train) holds three models -- grad (forward, loss,
 * backward), apply (the optimizer's update) and eval -- as the hidden constants
 * cnnc_model_grad, cnnc_model_apply, cnnc_model_eval, and describes the tensors
 * its instances keep in the hidden constant `cnnc_train` (an RtTrain). The
 * graphs name their inputs and outputs as docs/training.md says ("labels",
 * "grad:NAME", "new:NAME", ...); the runtime binds them by those names. */
typedef enum { RT_TRAIN_WEIGHT, RT_TRAIN_BUFFER, RT_TRAIN_STATE } RtTrainKind;
typedef enum { RT_LOSS_CROSS_ENTROPY, RT_LOSS_MSE } RtLossKind;
typedef enum { RT_OPTIM_SGD, RT_OPTIM_ADAM, RT_OPTIM_ADAMW } RtOptimKind;

typedef struct RtTrainParam {
    const char *name;          /* "conv1.weight", "bn1.running_mean", "exp_avg:fc.bias" */
    int32_t rank;
    int32_t kind;              /* RtTrainKind */
    int64_t dims[RT_MAX_RANK];
    int64_t init;              /* byte offset of its f32 values in RtTrain.init; -1: zeros */
} RtTrainParam;

typedef struct RtTrain {
    uint32_t abi_version;
    int32_t nparams;    /* the model's tensors: trainable weights first, then buffers */
    int32_t ntrainable;
    int32_t nstate;     /* optimizer state tensors, after the model's in `params` */
    const RtModel *grad, *apply, *eval;
    const RtTrainParam *params; /* nparams + nstate */
    const uint8_t *init;        /* initial values, 64-byte aligned (NULL for none) */
    int64_t init_bytes;
    int32_t loss;       /* RtLossKind */
    int32_t classes;    /* cross-entropy: the logits' classes (labels in [0, classes)) */
    int32_t optim;      /* RtOptimKind */
    float lr;           /* the initial learning rate */
    float beta1, beta2; /* Adam's, for the bias corrections the runtime passes */
} RtTrain;

/* Every field is naturally aligned and padding is explicit, so 64-bit targets
 * (x86-64, aarch64) agree on these offsets. */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(offsetof(RtTensor, rank) == 8 && offsetof(RtTensor, dims) == 16 &&
                   sizeof(RtTensor) == 64, "RtTensor layout");
_Static_assert(offsetof(RtKernelInfo, flops) == 16 && sizeof(RtKernelInfo) == 32,
               "RtKernelInfo layout");
_Static_assert(offsetof(RtModel, inputs) == 16 && offsetof(RtModel, arena_bytes) == 32 &&
                   offsetof(RtModel, run) == 40 && offsetof(RtModel, nkernels) == 48 &&
                   offsetof(RtModel, kernels) == 56 && offsetof(RtModel, weights) == 64 &&
                   offsetof(RtModel, weights_hash) == 80 &&
                   offsetof(RtModel, scratch_bytes) == 88 && sizeof(RtModel) == 96,
               "RtModel layout");
_Static_assert(offsetof(RtTrainParam, dims) == 16 && offsetof(RtTrainParam, init) == 64 &&
                   sizeof(RtTrainParam) == 72, "RtTrainParam layout");
_Static_assert(offsetof(RtTrain, grad) == 16 && offsetof(RtTrain, params) == 40 &&
                   offsetof(RtTrain, init_bytes) == 56 && offsetof(RtTrain, loss) == 64 &&
                   offsetof(RtTrain, lr) == 76 && offsetof(RtTrain, beta2) == 84 &&
                   sizeof(RtTrain) == 88, "RtTrain layout");
#endif

/* RtModel.weights_hash: XXH64 (seed 0) of the packed weights, as the compiler
 * stores it and cnn_model_verify recomputes it, with no library but libc: four
 * lanes of 64-bit words, a few GB/s where FNV-1a, a byte at a time, took a second
 * for 500 MB. The state of a hash fed in stripes of 32 bytes (cnnc hashes the
 * weights while it packs them), finished with the last bytes. */
typedef struct RtHash {
    uint64_t v[4];
    uint64_t bytes; /* fed so far, a multiple of 32 */
} RtHash;

#define RT_XXH_P1 0x9E3779B185EBCA87u
#define RT_XXH_P2 0xC2B2AE3D27D4EB4Fu
#define RT_XXH_P3 0x165667B19E3779F9u
#define RT_XXH_P4 0x85EBCA77C2B2AE63u
#define RT_XXH_P5 0x27D4EB2F165667C5u

static inline uint64_t rt_hash_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* Little-endian words, whatever the host's order. */
static inline uint64_t rt_hash_read64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline uint32_t rt_hash_read32(const uint8_t *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap32(w);
#endif
    return w;
}

static inline uint64_t rt_hash_round(uint64_t acc, uint64_t w)
{
    return rt_hash_rotl(acc + w * RT_XXH_P2, 31) * RT_XXH_P1;
}

static inline void rt_hash_init(RtHash *h)
{
    h->v[0] = RT_XXH_P1 + RT_XXH_P2;
    h->v[1] = RT_XXH_P2;
    h->v[2] = 0;
    h->v[3] = 0 - RT_XXH_P1;
    h->bytes = 0;
}

/* Feeds p[0 .. n), n a multiple of 32. */
static inline void rt_hash_stripes(RtHash *h, const uint8_t *p, int64_t n)
{
    uint64_t v0 = h->v[0], v1 = h->v[1], v2 = h->v[2], v3 = h->v[3];
    for (int64_t i = 0; i + 32 <= n; i += 32) {
        v0 = rt_hash_round(v0, rt_hash_read64(p + i));
        v1 = rt_hash_round(v1, rt_hash_read64(p + i + 8));
        v2 = rt_hash_round(v2, rt_hash_read64(p + i + 16));
        v3 = rt_hash_round(v3, rt_hash_read64(p + i + 24));
    }
    h->v[0] = v0, h->v[1] = v1, h->v[2] = v2, h->v[3] = v3;
    h->bytes += (uint64_t)(n / 32 * 32);
}

/* The hash of what was fed, then p[0 .. n) (any n). */
static inline uint64_t rt_hash_final(const RtHash *h, const uint8_t *p, int64_t n)
{
    int64_t whole = n / 32 * 32;
    RtHash s = *h;
    if (whole) { /* never an offset to a null p (no bytes) */
        rt_hash_stripes(&s, p, whole);
        p += whole, n -= whole;
    }
    uint64_t r;
    if (s.bytes) {
        r = rt_hash_rotl(s.v[0], 1) + rt_hash_rotl(s.v[1], 7) + rt_hash_rotl(s.v[2], 12) +
            rt_hash_rotl(s.v[3], 18);
        for (int i = 0; i < 4; i++)
            r = (r ^ rt_hash_round(0, s.v[i])) * RT_XXH_P1 + RT_XXH_P4;
    } else {
        r = RT_XXH_P5;
    }
    r += s.bytes + (uint64_t)n;
    for (; n >= 8; p += 8, n -= 8)
        r = rt_hash_rotl(r ^ rt_hash_round(0, rt_hash_read64(p)), 27) * RT_XXH_P1 + RT_XXH_P4;
    if (n >= 4) {
        r = rt_hash_rotl(r ^ (uint64_t)rt_hash_read32(p) * RT_XXH_P1, 23) * RT_XXH_P2 + RT_XXH_P3;
        p += 4, n -= 4;
    }
    for (; n > 0; p++, n--)
        r = rt_hash_rotl(r ^ *p * RT_XXH_P5, 11) * RT_XXH_P1;
    r ^= r >> 33;
    r *= RT_XXH_P2;
    r ^= r >> 29;
    r *= RT_XXH_P3;
    return r ^ (r >> 32);
}

static inline uint64_t rt_weights_hash(const uint8_t *p, int64_t n)
{
    RtHash h;
    rt_hash_init(&h);
    return rt_hash_final(&h, p, n);
}

#endif
