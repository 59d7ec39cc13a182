/* cnnc/abi.h: the binary interface between the code cnnc generates and the
 * runtime linked into every model.so. The runtime reads these structs; the
 * LLVM backend (codegen/llvm/module.c) builds them as constants field by field
 * and checks its layout against the offsets here. Change RT_ABI_VERSION with
 * any change to them. (The GPU image is runtime/rt_gpu.h.) */
#ifndef CNNC_ABI_H
#define CNNC_ABI_H

#include <stddef.h>
#include <stdint.h>

#define RT_ABI_VERSION 4
#define RT_MAX_RANK 6

typedef struct RtPool RtPool;

/* A kernel processes work items [begin, end) of its own numbering. */
typedef void (*RtKernel)(void *args, int64_t begin, int64_t end);

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
     * 64-bit FNV-1a hash, computed by cnnc when it packed them. */
    const uint8_t *weights;
    int64_t weights_bytes;
    uint64_t weights_fnv1a;
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
                   offsetof(RtModel, weights_fnv1a) == 80 && sizeof(RtModel) == 88,
               "RtModel layout");
_Static_assert(offsetof(RtTrainParam, dims) == 16 && offsetof(RtTrainParam, init) == 64 &&
                   sizeof(RtTrainParam) == 72, "RtTrainParam layout");
_Static_assert(offsetof(RtTrain, grad) == 16 && offsetof(RtTrain, params) == 40 &&
                   offsetof(RtTrain, init_bytes) == 56 && offsetof(RtTrain, loss) == 64 &&
                   offsetof(RtTrain, lr) == 76 && offsetof(RtTrain, beta2) == 84 &&
                   sizeof(RtTrain) == 88, "RtTrain layout");
#endif

/* RtModel.weights_fnv1a: the 64-bit FNV-1a hash of the packed weights, as the
 * compiler stores it and cnn_model_verify recomputes it. */
static inline uint64_t rt_weights_fnv1a(const uint8_t *p, int64_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (int64_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

#endif
