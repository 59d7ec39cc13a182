/* rt_gpu.h: the GPU image, everything a CUDA model.so holds besides the
 * runtime: its tensors, kernels and their launches, PTX, cubin and weights, as
 * one byte image that codegen/cuda writes and runtime/gpu.c reads (checking
 * every offset and count before use). A CUDA model.so defines the image as the
 * hidden symbol `cnnc_gpu_image` (64-byte aligned) instead of `cnnc_model`.
 *
 * Layout: an RtGpuHeader at offset 0, then sections at the offsets it names,
 * each a multiple of 8 bytes from the start (the weights: of RT_GPU_ALIGN).
 * All integers are little-endian; structs are written as laid out here (x86-64
 * and aarch64 agree: every field is naturally aligned, padding is explicit).
 * Strings are NUL-terminated and referenced by their offset into the strings
 * section. Change RT_GPU_VERSION with any change here. */
#ifndef CNNC_RT_GPU_H
#define CNNC_RT_GPU_H

#include <stdint.h>

#include "cnnc/model.h"

#define RT_GPU_MAGIC "CNNCGPU"  /* 8 bytes with its NUL */
#define RT_GPU_VERSION 1
#define RT_GPU_ALIGN 256        /* device buffers and the weights section */
#define RT_GPU_PARAM_BYTES 96   /* codegen/cuda's CuParams: 20 int32 then 4 float */
#define RT_GPU_MAX_ARGS 16      /* pointer arguments of one kernel */

/* Where a kernel's pointer argument points: base(buf, index) + offset. */
enum {
    RT_GPU_ARENA = 0,   /* the activation arena (header.arena_bytes) */
    RT_GPU_INPUT = 1,   /* graph input `index`, dense row-major f32 */
    RT_GPU_OUTPUT = 2,  /* graph output `index`, dense row-major f32 */
    RT_GPU_WEIGHTS = 3, /* the weights section, uploaded once */
    RT_GPU_NONE = 4,    /* a null pointer (absent bias or residual) */
};

enum { RT_GPU_MATH_TF32 = 0, RT_GPU_MATH_F32 = 1 };

typedef struct RtGpuHeader {
    char magic[8];      /* RT_GPU_MAGIC */
    uint32_t version;   /* RT_GPU_VERSION */
    uint32_t arch;      /* compute capability times ten the cubin is for: 80 */
    uint32_t math;      /* RT_GPU_MATH_* */
    int32_t ninputs, noutputs;
    int32_t nkernels;   /* launches, in execution order */
    int32_t nfunctions; /* distinct __global__ functions (launches share them) */
    int32_t nargs;      /* RtGpuArg entries, all kernels together */
    uint64_t image_bytes; /* the whole image, header included */
    uint64_t arena_bytes;
    uint64_t tensors;   /* RtGpuTensor[ninputs + noutputs]: inputs, then outputs */
    uint64_t functions; /* uint64_t[nfunctions]: string offsets of the symbols */
    uint64_t kernels;   /* RtGpuKernel[nkernels] */
    uint64_t args;      /* RtGpuArg[nargs] */
    uint64_t outputs;   /* RtGpuOutput[noutputs] */
    uint64_t strings, strings_bytes; /* the last byte is NUL */
    uint64_t ptx, ptx_bytes;         /* for compute_<arch>, NUL included */
    uint64_t cubin, cubin_bytes;     /* for sm_<arch>; 0 bytes: none */
    uint64_t weights, weights_bytes; /* weights at a multiple of RT_GPU_ALIGN */
} RtGpuHeader;

typedef struct RtGpuTensor {
    uint64_t name; /* string */
    int32_t rank, pad_;
    int64_t dims[CNN_MAX_RANK];
} RtGpuTensor;

typedef struct RtGpuArg {
    int32_t buf;   /* RT_GPU_* */
    int32_t index; /* input or output number */
    int64_t offset; /* bytes */
} RtGpuArg;

typedef struct RtGpuKernel {
    uint64_t name;     /* string: the IR node it implements */
    uint64_t op;       /* string: "conv2d+bias+relu" */
    int32_t function;  /* index into functions */
    uint32_t grid[3], block[3];
    uint32_t shared_bytes; /* dynamic shared memory */
    int32_t first_arg, nargs; /* its pointer arguments: args[first_arg, first_arg + nargs) */
    int32_t has_params;       /* then `params` by value, as the last argument */
    int32_t pad_;
    int64_t flops;
    uint8_t params[RT_GPU_PARAM_BYTES];
} RtGpuKernel;

/* Graph output k is copied out of `src` after the last kernel: `items` blocks of
 * `item_bytes`, `stride_bytes` apart at the source, packed densely. */
typedef struct RtGpuOutput {
    RtGpuArg src;
    int64_t items, item_bytes, stride_bytes;
} RtGpuOutput;

/* ---- the runtime's reading of an image (runtime/gpu_image.c) --------------- */

typedef struct RtGpuView {
    const uint8_t *base;
    const RtGpuHeader *h;
    const RtGpuTensor *tensors; /* inputs, then outputs */
    const uint64_t *functions;
    const RtGpuKernel *kernels;
    const RtGpuArg *args;
    const RtGpuOutput *outputs;
    const char *strings;
    int64_t *tensor_bytes; /* per tensor, as `tensors` (malloc'd by rt_gpu_view) */
} RtGpuView;

/* Checks every count, offset and reference of `image` and fills `v`; false
 * (the reason in cnn_last_error) for an image that is malformed. */
int rt_gpu_view(const uint8_t *image, RtGpuView *v);
void rt_gpu_view_free(RtGpuView *v);
const char *rt_gpu_string(const RtGpuView *v, uint64_t offset);

/* An instance of the model described by `image` (which must outlive it), on the
 * CUDA device opt->device_index: CNN_ERR_DEVICE when there is no driver, no
 * such device, or the device cannot run the image's code (cnn_last_error says
 * which); CNN_ERR_INVALID_ARGUMENT for an image that fails its checks. */
cnn_status rt_gpu_model_create(const uint8_t *image, const cnn_options *opt, cnn_model **out);

#endif
