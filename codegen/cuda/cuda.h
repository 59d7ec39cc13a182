/* cuda.h: lowering a planned graph to CUDA C (one kernel per node that computes
 * something), the packed weights blob those kernels read, and compilation of
 * the source with NVRTC to PTX and cubin. Nothing here runs a kernel: a loader
 * uploads the blob, allocates the arena and launches the kernels in order. */
#ifndef CNNC_CG_CUDA_H
#define CNNC_CG_CUDA_H

#include "ir.h"

/* ---- target -------------------------------------------------------------- */

typedef enum {
    CU_MATH_TF32, /* conv2d and dense GEMMs on tensor cores, inputs rounded to TF32
                     (sm_80 and later; older architectures get CU_MATH_F32's code) */
    CU_MATH_F32,  /* every multiply-add in f32 (FMA), no TF32 rounding */
} CuMath;

typedef struct CuTarget {
    int32_t arch; /* compute capability times ten: 80 for sm_80 */
    CuMath math;
} CuTarget;

#define CU_DEFAULT_ARCH 80

/* "sm_80" -> 80: sm_XX or sm_XXX with 70 <= XX <= 129 (a trailing 'a' of
 * sm_90a is refused: the kernels need no architecture-specific features). */
bool cg_cuda_parse_arch(const char *name, int32_t *arch);
bool cg_cuda_parse_math(const char *name, CuMath *math); /* "f32" or "tf32" */

/* ---- the program ---------------------------------------------------------- */

/* The buffers a kernel argument points into. At run time each is one device
 * allocation: the activation arena (CuProgram.arena_bytes), the graph's inputs
 * and outputs (index = input/output number, dense row-major f32 of the graph's
 * input/output types) and the weights blob (CuProgram.weights). */
typedef enum { CU_BUF_ARENA, CU_BUF_INPUT, CU_BUF_OUTPUT, CU_BUF_WEIGHTS, CU_BUF_NONE } CuBuf;

/* A pointer argument of a kernel: the device address base(buf, index) + offset
 * bytes; CU_BUF_NONE is a null pointer (an absent bias or residual). */
typedef struct CuArg {
    CuBuf buf;
    int32_t index;
    int64_t offset;
} CuArg;

/* Shapes and epilogue constants some kernels (conv2d) take at run time, so that
 * layers of one kind share one compiled kernel: passed by value as the last
 * argument (the same 4-byte fields as the prelude's struct CuParams). */
#define CU_PARAM_INTS   20
#define CU_PARAM_FLOATS 4
typedef struct CuParams {
    int32_t i[CU_PARAM_INTS];
    float f[CU_PARAM_FLOATS];
} CuParams;

/* A launch, in the driver API's terms: cuLaunchKernel(function `symbol`, grid,
 * block, shared_bytes, stream, kernelParams) with kernelParams[i] pointing at
 * the device address of args[i] (i < nargs) and, when has_params, then at
 * `params`. */
typedef struct CuKernel {
    int32_t node;       /* the IR node it implements */
    const char *name;   /* that node's name */
    const char *op;     /* what it computes, as ir_node_label: "conv2d+bias+relu+add" */
    const char *symbol; /* extern "C" name of the __global__ function in the source */
    uint32_t grid[3], block[3];
    uint32_t shared_bytes; /* dynamic shared memory; 0 (kernels use static shared memory) */
    int32_t nargs;
    CuArg *args;     /* the kernel's pointer parameters, in order */
    bool has_params; /* then `params`, by value, as the last parameter */
    CuParams params;
    int64_t flops; /* ir_node_flops of the node */
} CuKernel;

/* Graph output k is copied out of the arena after the last kernel: `items`
 * blocks of `item_bytes` bytes, `stride_bytes` apart at the source (a value
 * written into a concat's buffer is not dense), packed densely in the output. */
typedef struct CuOutput {
    int32_t node;
    CuArg src;
    int64_t items, item_bytes, stride_bytes;
} CuOutput;

/* One tensor of the weights blob, for inspection: `bytes` at `offset`. */
typedef struct CuWeight {
    const char *name; /* "layer1.0.conv1.weight@packed" for packed weights */
    int64_t offset, bytes;
} CuWeight;

/* Packed weights blob layout: a sequence of little-endian f32 tensors, each
 * starting at a multiple of CU_WEIGHT_ALIGN bytes (zero bytes between them).
 *  - conv2d (implicit GEMM), per group g: a [KDP][KP] row-major matrix, element
 *    (kd, k) = weight[g*K + k][c][r][s] with kd = (c*R + r)*S + s, zero where
 *    kd >= C*R*S or k >= K; KDP = C*R*S rounded up to CU_CONV_BK, KP = K rounded
 *    up to the kernel's column tile (K: output channels of the group, C: input
 *    channels of the group). Groups follow each other.
 *    With it, per conv2d, its im2col table: KDP int32 quadruples (little-endian,
 *    in the blob's 4-byte slots), row kd = (c*R + r)*S + s holding
 *    {c*H*W + r*dh*W + s*dw, r*dh, s*dw, 0}: where the reduction index reads
 *    relative to an output pixel's window origin; rows kd >= C*R*S hold
 *    {0, 1 << 29, 1 << 29, 0} (always out of bounds: zeros).
 *  - depthwise conv2d: the weight as given, [K][R*S].
 *  - dense: the weight as given, [O][I], for the matrix-vector kernel (up to 8
 *    rows), else packed as a 1x1 conv2d with C = I, K = O (transposed, padded).
 *  - biases, batchnorm scale then shift, constant operands: as given.
 * CuProgram.weights_layout lists the tensors. The blob must start at a device
 * address aligned to CU_WEIGHT_ALIGN (cuMemAlloc's are): kernels load float4s. */
#define CU_WEIGHT_ALIGN 256
#define CU_CONV_BK      16

typedef struct CuProgram {
    Arena *arena; /* owns everything below except `weights` */
    CuTarget target;
    char *source; /* the CUDA C of all kernels, NUL-terminated */
    int32_t nkernels;
    CuKernel *kernels; /* in execution order; several may share one symbol */
    int32_t noutputs;
    CuOutput *outputs;
    int64_t arena_bytes; /* the planned arena, then the split-K workspace (cuda.h CuSplit) */
    float *weights; /* the blob, weights_bytes bytes (ir_xmalloc'd) */
    int64_t weights_bytes;
    int32_t nweights;
    CuWeight *weights_layout;
} CuProgram;

/* Generates the program of `g` (passes run with PassOptions.block = 0, memory
 * planned, parameters bound). NULL after reporting to `d` what the CUDA backend
 * does not support. Free with cg_cuda_free. */
CuProgram *cg_cuda_generate(const Graph *g, const CuTarget *t, Diag *d);
bool cg_cuda_supports(Op op); /* a kernel for every node of the op */
void cg_cuda_free(CuProgram *p);

/* The device functions (templates) every program's source starts with; each
 * kernel after them is headed by a comment naming the IR node(s) it implements. */
extern const char cg_cuda_prelude[];

/* ---- NVRTC ------------------------------------------------------------------ */

/* False when this cnnc was built without NVRTC. */
bool cg_cuda_have_nvrtc(void);

typedef struct CuBinary {
    char *ptx;      /* NUL-terminated, for compute_XX (forward compatible) */
    size_t ptx_size;
    char *cubin;    /* for sm_XX; NULL when not asked for */
    size_t cubin_size;
    char *log;      /* NVRTC's log (warnings), NUL-terminated; may be empty */
} CuBinary;

/* Compiles p->source for p->target.arch: PTX always, cubin too when `cubin`.
 * On failure returns false with the reason (NVRTC's log included) in err.
 * Free the result with cg_cuda_binary_free. */
bool cg_cuda_compile(const CuProgram *p, bool cubin, CuBinary *out, char *err, size_t n);
void cg_cuda_binary_free(CuBinary *b);

/* The PTX with a comment before each kernel naming the IR node(s) it
 * implements; the result is ir_xmalloc'd. */
char *cg_cuda_annotate_ptx(const CuProgram *p, const char *ptx);

/* ---- the GPU image ---------------------------------------------------------- */

/* Serializes `p`, its compiled code `b` (PTX; cubin when there is one) and its
 * weights as the GPU image of runtime/rt_gpu.h that a CUDA model.so holds: the
 * graph `g` (that p was generated from) gives the input and output tensors.
 * The image (ir_xmalloc'd, *size bytes) is the same bytes for the same
 * arguments. False with the reason in err when there is no PTX. */
bool cg_cuda_image(const CuProgram *p, const CuBinary *b, const Graph *g, uint8_t **image,
                   size_t *size, char *err, size_t n);
/* The hidden symbol a CUDA model.so defines as its image (runtime/entry.c looks for it). */
#define CU_IMAGE_SYMBOL "cnnc_gpu_image"

/* ---- pieces, exposed for tests ------------------------------------------- */

/* Packs a conv2d weight [G*K][C][R][S] as the implicit-GEMM kernel reads it
 * (see the blob layout) with column tile `bn`; dst holds cg_cuda_conv_packed_size
 * floats. */
int64_t cg_cuda_conv_packed_size(int32_t groups, int64_t K, int64_t C, int64_t R, int64_t S,
                                 int32_t bn);
void cg_cuda_pack_conv(const float *w, int32_t groups, int64_t K, int64_t C, int64_t R,
                       int64_t S, int32_t bn, float *dst);

/* The implicit-GEMM tile chosen for an M x N (pixels x output channels) product. */
typedef struct CuTile {
    int32_t bm, bn; /* rows (output pixels) and columns (output channels) of a block */
} CuTile;
CuTile cg_cuda_conv_tile(int64_t M, int64_t N);

/* How the reduction of a GEMM of `warps` 32x32 warp tiles (all its blocks')
 * and KDP = `kdp` rows is split across blocks: `n` splits of `chunk` rows each
 * (a multiple of CU_CONV_BK), so that a layer with too few warps to keep a
 * large GPU busy still gets enough; n == 1: not split. */
typedef struct CuSplit {
    int32_t n, chunk;
} CuSplit;
CuSplit cg_cuda_conv_split(int64_t warps, int64_t kdp);

#endif
