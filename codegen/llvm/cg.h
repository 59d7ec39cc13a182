/* cg.h: lowering a planned graph to LLVM IR (LLVM C API, LLVM 16), shared by
 * the files of codegen/llvm/. Every op becomes one kernel function
 *     void kernel(void **args, i64 begin, i64 end)
 * that the generated `run` hands to rt_run_kernel (runtime/rt.h). args[0] is
 * the node's output buffer, args[1 + i] the buffer of its input i (each already
 * offset to where the value lives, per Node.mem). Emitters reach packed weights
 * as constant pointers (cg_weights); once a kernel is built, module.c turns them
 * into pointers loaded from the slots after the inputs, so that nodes of the same
 * code share one kernel. */
#ifndef CNNC_CG_H
#define CNNC_CG_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "ir.h"

typedef struct CgTarget {
    const char *triple;   /* NULL: the host's */
    const char *cpu;      /* NULL: the host's */
    const char *features; /* NULL: the host's */
    int opt_level;        /* 0..3 */
    /* Names the model's symbols cnnc_model_NAME and cnnc_weights_NAME, so several models
     * link into one shared object (a training model.so); NULL: cnnc_model, cnnc_weights. */
    const char *name;
} CgTarget;

#define CG_ERROR_LEN 512

/* Wall-clock seconds of the phases of code generation (cnnc -v): building the kernels,
 * LLVM's optimization, its code generation and the link. Where parts of the module are
 * optimized and emitted by several threads, optimize and codegen are those of the part
 * that took longest. */
typedef struct CgTimes {
    double lower, optimize, codegen, link;
} CgTimes;
double cg_seconds(void); /* a monotonic clock */

typedef struct Cg {
    const Graph *g;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTargetMachineRef tm;
    int32_t vec;   /* f32 lanes of a vector register: 16 (AVX-512), 8 (AVX2), 4 */
    int32_t nregs; /* vector registers: 32 (AVX-512) or 16 */
    bool fma;      /* the target has fused multiply-add */
    /* Common types. */
    LLVMTypeRef t_void, t_i1, t_i32, t_i64, t_f32, t_ptr, t_vf32, t_kernel;
    LLVMValueRef args, begin, end, scratch; /* parameters of the kernel being emitted */
    /* The most scratch (bytes) a kernel of the module takes: RtModel.scratch_bytes. */
    int64_t scratch_bytes;
    /* The kernel being emitted runs each thread's range of work items backwards
     * (cg_item): set for the direct convs that write a 3×3 conv's input (module.c). */
    bool reverse;
    /* Slots of `args` the kernel being emitted reads (bit i: slot i; slots past 63
     * count as read): a parameter's slot that no kernel reads gets no raw copy. */
    uint64_t args_read;
    Diag *diag;
    char *llvm_error; /* CG_ERROR_LEN bytes: the first error LLVM reported, "" if none */
    /* The weights: kept out of the module (see cg_weights). */
    struct CgBlob *blob;
    LLVMValueRef weights_sym;
    struct CgWeightRef *wrefs;
    int32_t nwrefs, capwrefs;
    char name[32]; /* CgTarget.name; "" for none */
    int opt_level;  /* CgTarget.opt_level */
    bool optimized; /* the module has been through the optimization passes */
    CgTimes times;
} Cg;

/* The weights of a model, packed for its kernels into one blob (each tensor at a 64-byte
 * aligned offset) that code reaches through the symbol CG_WEIGHTS_SYMBOL. Hundreds of MB
 * of weights thus never pass through LLVM: the linker embeds the blob in model.so
 * (cg_link_shared), the JIT maps the symbol onto it (cg_jit_new), and cg_embed_weights
 * writes it into the module itself for a standalone object, assembly or LLVM IR.
 * Reference counted, so a JIT can keep it after its Cg is freed. */
#define CG_WEIGHTS_SYMBOL "cnnc_weights"
typedef struct CgBlob {
    char *data; /* 64-byte aligned, inside raw */
    char *raw;
    int64_t size, cap;
    int64_t open; /* end of the room cg_weights_begin gave out, 0 when none */
    int32_t refs;
    struct CgHasher *hasher; /* hashes the blob while it is filled (weights.c) */
} CgBlob;
#define CG_MODEL_SYMBOL "cnnc_model"
/* `base` ("cnnc_model", CG_WEIGHTS_SYMBOL) as cg names it: base_NAME with CgTarget.name. */
const char *cg_symbol(const Cg *cg, const char *base, char *buf, size_t n);
CgBlob *cg_blob_ref(CgBlob *b);
void cg_blob_unref(CgBlob *b); /* NULL is fine */
void cg_weights_free(Cg *cg);  /* drops cg's blob and name table (cg_free does it) */

/* A kernel: the function and how many work items it splits into. */
typedef struct CgKernel {
    LLVMValueRef fn;
    int64_t items;
} CgKernel;

/* ---- module.c ---------------------------------------------------------- */

/* Lowers `g` (passes run, memory planned) into a verified module, or reports
 * why not. The caller disposes it with cg_free. LLVM's optimization passes run when the
 * module is first emitted or printed. */
bool cg_lower(Cg *cg, const Graph *g, const CgTarget *t, Diag *d);
void cg_free(Cg *cg);
/* The f32 lanes of the target's widest vectors: 16 (avx512f), 8 (avx), else 4.
 * Also the channel block the layout pass should use. */
int32_t cg_target_lanes(const CgTarget *t);
/* Sets the common types of `cg` (cg->ctx and cg->vec must be set). */
void cg_init_types(Cg *cg);
/* Object code or assembly of the module, in memory (NULL with err set on failure): the
 * caller writes it, checking every write. Each emission works on a copy, so the module
 * stays as lowered and emitting twice gives the same bytes. */
LLVMMemoryBufferRef cg_emit_memory(Cg *cg, LLVMCodeGenFileType kind, char *err, size_t n);
char *cg_print_ir(Cg *cg); /* free with LLVMDisposeMessage */
/* The object code of the module, in parts (at most CG_MAX_PARTS objects that link
 * together) optimized and compiled by as many threads as there are cores, unless the module
 * was already optimized (emitted or printed): then one object. Returns the number of
 * objects in objs[] (dispose each), 0 with err set on failure. Deterministic: the same
 * module gives the same objects whatever the number of cores. */
#define CG_MAX_PARTS 4
int32_t cg_emit_objects(Cg *cg, LLVMMemoryBufferRef *objs, char *err, size_t n);

/* ---- target.c ---------------------------------------------------------- */

/* Whether LLVM knows t's CPU (NULL or "native": the host's) and every entry of its
 * feature list ("+F,-G": each a known feature after + or -); if not, err says which
 * is unknown and the close names ("did you mean"), or all valid ones. */
bool cg_check_target(const CgTarget *t, char *err, size_t n);

/* ---- jit.c: object code linked in-process ------------------------------- */

/* codegen/ may not depend on runtime/, so the caller hands over the runtime's symbols. */
typedef struct CgJitSymbol {
    const char *name;
    void *addr;
} CgJitSymbol;
typedef struct CgJit CgJit;
/* Emits cg's (lowered, optimized) module as object code in memory -- the same object code
 * `cnnc -o model.so` links -- and links it in-process with LLVM ORC (LLJIT). Undefined
 * symbols resolve to `syms` (the caller passes rt_parallel_for and rt_run_kernel of the
 * runtime linked into it) and then to the process (memcpy, memset, ...). cg stays usable
 * (printing IR/asm, exporting). NULL with err set on failure.
 * The JIT needs neither cg nor the graph afterwards; what it defines (code, weights,
 * `cnnc_model`) lives until cg_jit_free, so destroy instances made from it first. */
CgJit *cg_jit_new(Cg *cg, const CgJitSymbol *syms, int32_t nsyms, char *err, size_t n);
/* Address of a symbol the module defines (hidden ones included), NULL if none. */
void *cg_jit_lookup(const CgJit *j, const char *name);
void cg_jit_free(CgJit *j);

/* ---- link.c: object code to model.so ------------------------------------ */

/* The runtime library to link: $CNNC_RUNTIME, else `builtin` if it exists,
 * else libcnnc_rt.a next to the running program (../runtime/, ../lib/cnnc/).
 * NULL when none exists. The result is malloc'd. */
char *cg_find_runtime(const char *builtin);
/* Links the module's object code with `runtime` into the shared object `out` using
 * $CC (default cc); on failure err holds the linker's output. The object code passes
 * through a temporary file in $TMPDIR (default /tmp). `out` is written whole or not
 * at all, and no temporary file stays behind. */
bool cg_link_shared(Cg *cg, const char *runtime, const char *out, char *err, size_t n);
/* Data linked into a shared object as the hidden, 64-byte-aligned symbol `symbol`. */
typedef struct CgLinkData {
    const char *symbol;
    const void *bytes;
    uint64_t size;
} CgLinkData;
/* cg_link_shared of several modules (each lowered under its own CgTarget.name) and data
 * objects (those of size 0 are left out) into one shared object: at most 4 modules, and
 * at most 8 modules and data objects together. */
bool cg_link_modules(Cg *const *cgs, int32_t ncgs, const CgLinkData *data, int32_t ndata,
                     const char *runtime, const char *out, char *err, size_t n);
/* Links `runtime` alone into the shared object `out`, as cg_link_shared does, with
 * one object holding `size` bytes (size > 0) as the hidden, 64-byte-aligned symbol
 * `symbol` (a CUDA model's GPU image), for the machine this program runs on. */
bool cg_link_image(const char *symbol, const void *bytes, size_t size, const char *runtime,
                   const char *out, char *err, size_t n);
/* Moves the weights blob into the module as the definition of CG_WEIGHTS_SYMBOL (internal),
 * so that an object, assembly or LLVM IR emitted afterwards stands alone. Once only, after
 * cg_lower; the module is then no longer for cg_link_shared or the JIT. */
void cg_embed_weights(Cg *cg);

/* ---- samecode.c ---------------------------------------------------------- */

/* Whether functions a and b of one module are the same code: instruction by
 * instruction, their own values matched by position, anything else by identity. */
bool cg_same_code(LLVMValueRef a, LLVMValueRef b);

/* ---- util.c: building blocks for kernels -------------------------------- */

/* Starts `void NAME(void **args, i64 begin, i64 end)`, builder in its entry;
 * sets cg->args / begin / end. cg_kernel_end adds the `ret void`. */
LLVMValueRef cg_kernel_begin(Cg *cg, const char *name);
void cg_kernel_end(Cg *cg);
LLVMValueRef cg_arg_ptr(Cg *cg, int32_t i); /* args[i] as a ptr */
/* The work item of step iv of the loop over [begin, end): iv, or with cg->reverse
 * begin + end - 1 - iv. */
LLVMValueRef cg_item(Cg *cg, LLVMValueRef iv);
/* Input k of node `id`: its buffer, or the embedded global of a constant
 * (constants are not passed in args). */
LLVMValueRef cg_input_ptr(Cg *cg, int32_t id, int32_t k);

/* A counted loop: for (iv = lo; iv < hi; iv += step). Between begin and end
 * the builder is in the body. */
typedef struct CgLoop {
    LLVMValueRef iv, next;
    LLVMBasicBlockRef head, body, exit, latch_from;
} CgLoop;
CgLoop cg_loop_begin(Cg *cg, LLVMValueRef lo, LLVMValueRef hi, int64_t step, const char *name);
void cg_loop_end(Cg *cg, CgLoop *l);
/* A loop body over contiguous elements at offset `i`, `lanes` at a time; cg_vec_loop
 * runs it for i in [0, len) in vectors of `lanes`, then one element at a time. */
typedef void (*CgBody)(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes);
void cg_vec_loop(Cg *cg, LLVMValueRef len, int32_t lanes, CgBody body, void *ctx);

LLVMValueRef cg_i64(Cg *cg, int64_t v);
LLVMValueRef cg_f32(Cg *cg, float v);
LLVMValueRef cg_splat(Cg *cg, LLVMValueRef scalar, int32_t lanes);
LLVMValueRef cg_gep(Cg *cg, LLVMValueRef base, LLVMValueRef index); /* &((float *)base)[index] */
LLVMValueRef cg_load(Cg *cg, LLVMValueRef ptr, int32_t lanes);     /* lanes 1: scalar f32 */
void cg_store(Cg *cg, LLVMValueRef v, LLVMValueRef ptr);
LLVMValueRef cg_fma(Cg *cg, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c); /* a*b + c */
LLVMValueRef cg_max(Cg *cg, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef cg_min(Cg *cg, LLVMValueRef a, LLVMValueRef b);
/* The activation on a scalar or vector value (clip bounds / alpha in a, b). */
LLVMValueRef cg_act(Cg *cg, LLVMValueRef v, Op act, float a, float b);
bool cg_has_act(Op act); /* cg_act has an emitter for the activation */
/* Applies a node's epilogue to accumulator `acc` (bias already added);
 * residual is the loaded residual value or NULL. */
LLVMValueRef cg_epilogue(Cg *cg, const Epilogue *e, LLVMValueRef acc, LLVMValueRef residual);

/* Additions for kernels. */
int32_t cg_lanes_of(LLVMValueRef v);                         /* 1 for a scalar */
LLVMValueRef cg_call1(Cg *cg, const char *intrinsic, LLVMValueRef a); /* "llvm.fabs" etc. */
void cg_prefetch(Cg *cg, LLVMValueRef p);
void cg_prefetch_l2(Cg *cg, LLVMValueRef p); /* into L2, not L1 */
void cg_prefetch_w(Cg *cg, LLVMValueRef p);  /* a line about to be written */
/* `floats` of the calling thread's 64-byte-aligned scratch (the kernel's `scratch`
 * parameter, RtKernel), which the module's RtModel.scratch_bytes then covers. */
LLVMValueRef cg_scratch(Cg *cg, int64_t floats);
/* Kernel argument slots past a node's output and inputs that run_call fills: 1 for a conv
 * with ConvAttrs.scaled_in (the scale, slot ninputs + 1), else 0. */
int32_t cg_extra_slots(const Node *n);
LLVMValueRef cg_exp(Cg *cg, LLVMValueRef x);                 /* e^x, ~1 ulp, scalar or vector */
LLVMValueRef cg_hsum(Cg *cg, LLVMValueRef v);                /* sum of the lanes, as a scalar */
/* Elements from one batch item of `node`'s value to the next (honours
 * Node.mem.batch_stride of values written into a concat, through aliases). */
int64_t cg_item_stride(const Cg *cg, int32_t node);
/* The node whose storage node `id`'s value is, following views (MEM_ALIAS); with
 * `off`, the value's byte offset in that storage. */
const Node *cg_storage_of(const Cg *cg, int32_t id, int64_t *off);

/* Index arithmetic on i64 values (nsw); cg_divmod by a positive constant. */
LLVMValueRef cg_iadd(Cg *cg, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef cg_imul(Cg *cg, LLVMValueRef a, int64_t k);
void cg_divmod(Cg *cg, LLVMValueRef v, int64_t d, LLVMValueRef *q, LLVMValueRef *r);
/* A stack variable in the current function's entry block (SROA/mem2reg in
 * the optimization pipeline turn it into registers): for accumulators. */
LLVMValueRef cg_var(Cg *cg, LLVMTypeRef t, const char *name);
/* if (cond) { ... }: cg_if_begin leaves the builder in the then-block;
 * cg_if_end closes it and continues after. */
LLVMBasicBlockRef cg_if_begin(Cg *cg, LLVMValueRef cond);
void cg_if_end(Cg *cg, LLVMBasicBlockRef join);

/* How a value of rank <= 4 is addressed (rank 2 [N,F] reads as [N,F,1,1];
 * higher dims fold into W). Element (n, c, h, w) is at
 *   n*item + (c/blk)*cstride + h*W*blk + w*blk + c%blk
 * with blk 1 for plain values; `groups` = C/blk channel groups. */
typedef struct CgView {
    int64_t N, C, H, W;
    int32_t blk;
    int64_t groups, cstride, item;
} CgView;
CgView cg_view(const Cg *cg, int32_t node);
/* Pointer to lane 0 of channel group `grp` at (n, h, w). */
LLVMValueRef cg_view_at(Cg *cg, const CgView *v, LLVMValueRef base, LLVMValueRef n,
                        LLVMValueRef grp, LLVMValueRef h, LLVMValueRef w);

/* A pointer to `n` floats (packed weights) at a 64-byte-aligned place of the weights
 * blob, copied there; the same name twice returns the same place. */
LLVMValueRef cg_weights(Cg *cg, const char *name, const float *data, int64_t n);
/* The same, for weights packed in place: room for `n` floats in the blob, which the
 * caller fills whole (every element) and then closes with cg_weights_end, before
 * anything else is added. NULL when weights of that name exist already: nothing to
 * fill. *ptr: the pointer the code uses, in both cases. */
float *cg_weights_begin(Cg *cg, const char *name, int64_t n, LLVMValueRef *ptr);
void cg_weights_end(Cg *cg);
/* XXH64 of the packed weights (rt_weights_hash; of nothing, without any): what
 * cnn_model_verify recomputes from the model.so. */
uint64_t cg_weights_hash(const Cg *cg);

/* ---- gemm.c: matrix multiply and vector accesses for run-time weights --- */

/* Lanes of `lanes` floats at base[off + i·stride] for the lanes set in `mask`
 * (the others read as 0 and are never touched): a plain vector access when
 * contiguous and full, else a masked load/store or a gather/scatter. */
LLVMValueRef cg_load_lanes(Cg *cg, LLVMValueRef base, LLVMValueRef off, int64_t stride,
                           int32_t lanes, uint32_t mask);
void cg_store_lanes(Cg *cg, LLVMValueRef v, LLVMValueRef base, LLVMValueRef off, int64_t stride,
                    uint32_t mask);
/* The mask of lanes [0, n) for cg_load_lanes / cg_store_lanes (util.c). */
uint32_t cg_low_lanes(int64_t n);
/* Rows r[0..n) of an n × n matrix (n a power of two, at most 64) become its columns,
 * in place (util.c). */
void cg_transpose(Cg *cg, LLVMValueRef *r, int32_t n);
/* All `lanes` at base[off + i·stride] where the whole span of lanes·stride floats
 * may be read: one plain load and a shuffle. */
LLVMValueRef cg_load_span(Cg *cg, LLVMValueRef base, LLVMValueRef off, int64_t stride,
                          int32_t lanes);

/* for (iv = lo; iv < hi; iv++) carrying v[0..n) (accumulators) in phis: inside the
 * body v holds the phis; after cg_acc_loop_end, the values on exit. cg_acc_if_begin/end:
 * if (cond) { ... } likewise, v after it the values from either way. */
#define CG_MAX_ACC 64
typedef struct CgAccLoop {
    LLVMBasicBlockRef pre, body, exit;
    LLVMValueRef iv, hi;
    int32_t n;
    LLVMValueRef phi[CG_MAX_ACC], init[CG_MAX_ACC];
} CgAccLoop;
void cg_acc_loop_begin(Cg *cg, CgAccLoop *l, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef *v,
                       int32_t n);
void cg_acc_loop_end(Cg *cg, CgAccLoop *l, LLVMValueRef *v);
void cg_acc_if_begin(Cg *cg, CgAccLoop *l, LLVMValueRef cond, LLVMValueRef *v, int32_t n);
void cg_acc_if_end(Cg *cg, CgAccLoop *l, LLVMValueRef *v);

/* C[m, n] = sum_k A[m, k] B[k, n] (+ bias[n], then the epilogue with R[m, n]) with
 * A[m, k] at a[m·a_m + k·a_k], B[k, n] at b[k·b_k + n·b_n], C at c[m·c_m + n], R at
 * res[m·r_m + n]: pointers are values of the kernel, sizes and strides constants.
 * b_n == 1 takes register tiles of rows × vectors along N broadcasting A; otherwise
 * A and B must be contiguous along K (a_k == b_k == 1) and tiles of rows × columns
 * hold vectors along K, summed across lanes at the end. */
typedef struct CgGemm {
    int64_t M, N, K;
    LLVMValueRef a, b, c;
    int64_t a_m, a_k, b_k, b_n, c_m;
    LLVMValueRef bias, res; /* NULL: none */
    int64_t r_m;
    const Epilogue *epi; /* NULL: none */
} CgGemm;
void cg_gemm(Cg *cg, const CgGemm *g);
/* Work items over blocks of mb rows × nb columns of C (the last ones smaller):
 * how many, and the code of item `item` (a value). */
int64_t cg_gemm_items(const CgGemm *g, int64_t mb, int64_t nb);
void cg_gemm_item(Cg *cg, const CgGemm *g, int64_t mb, int64_t nb, LLVMValueRef item);
/* Blocks of `size` along a dim of `whole` elements, `count` of them, the last maybe
 * smaller: body(size), or where the last differs, if (v == count - 1) body(its size)
 * else body(size) -- code specialized to each size. */
void cg_split_last(Cg *cg, LLVMValueRef v, int64_t count, int64_t size, int64_t whole,
                   void (*body)(Cg *, void *, int64_t), void *ctx);
/* Whether the weight (input 1) and the bias of conv2d or dense `node` are constants
 * with data, which their kernels pack at compile time; if not, the *_runtime kernels. */
bool cg_weights_constant(const Cg *cg, int32_t node);

/* ---- one emitter per op (conv.c, dense.c, pool.c, eltwise.c, misc.c) ---- */

CgKernel cg_emit_conv2d(Cg *cg, int32_t node);
/* winograd.c: a 3×3 stride-1 conv2d of NCHWc values (same block in and out, groups 1,
 * constant weights) as Winograd F(4×4, 3×3); cg_emit_conv2d takes it for the nodes
 * the conv_algo pass marked (ConvAttrs.winograd) when cg_winograd_fits. */
bool cg_winograd_fits(const Cg *cg, int32_t node);
/* Whether node is a conv2d that cg_emit_conv2d gives the Winograd kernel. */
bool cg_runs_winograd(const Cg *cg, int32_t node);
CgKernel cg_emit_conv2d_winograd(Cg *cg, int32_t node);
CgKernel cg_emit_dense(Cg *cg, int32_t node);
/* conv_train.c, dense.c: kernels for weights that are graph inputs (training), plain layouts. */
CgKernel cg_emit_conv2d_runtime(Cg *cg, int32_t node); /* conv2d whose weight is no constant */
CgKernel cg_emit_conv2d_grad_input(Cg *cg, int32_t node);
CgKernel cg_emit_conv2d_grad_weight(Cg *cg, int32_t node);
CgKernel cg_emit_dense_runtime(Cg *cg, int32_t node); /* dense whose weight is no constant */
CgKernel cg_emit_dense_grad_input(Cg *cg, int32_t node);
CgKernel cg_emit_dense_grad_weight(Cg *cg, int32_t node);
CgKernel cg_emit_pool(Cg *cg, int32_t node);    /* maxpool, avgpool, global, adaptive */
/* A maxpool with the conv it reads (PoolAttrs.fused_in) as one kernel (conv.c). */
CgKernel cg_emit_conv_pool(Cg *cg, int32_t node);
/* The blocked maxpool `id`'s output rows [oh_lo, oh_hi) of channel group g of item n,
 * from `in` read through the view vi (of the pool's input's shape; its storage may be
 * another: a band of the fused conv's rows in scratch), into `out` (pool.c). */
void cg_maxpool_rows(Cg *cg, int32_t id, const CgView *vi, LLVMValueRef in, LLVMValueRef n,
                     LLVMValueRef g, LLVMValueRef oh_lo, LLVMValueRef oh_hi, LLVMValueRef out);
CgKernel cg_emit_eltwise(Cg *cg, int32_t node); /* activations, add, mul, batchnorm */
CgKernel cg_emit_misc(Cg *cg, int32_t node);    /* softmax, concat copies, reorder, flatten */
CgKernel cg_emit_shape(Cg *cg, int32_t node);   /* transpose, slice, pad, channel_shuffle */
CgKernel cg_emit_layernorm(Cg *cg, int32_t node);
/* train.c: the other ops of a training step (gradients but conv2d's and dense's, batch
 * statistics, dropout masks, losses, optimizers), and batchnorm with run-time parameters. */
CgKernel cg_emit_train(Cg *cg, int32_t node);
CgKernel cg_emit_batchnorm_runtime(Cg *cg, int32_t node);
bool cg_llvm_supports(Op op);                   /* module.c: an emitter for every node of the op */

/* module.c, for the descriptions built elsewhere: a private constant C string, and the
 * check that struct type `t` lays out its n fields at `at` in `size` bytes (cnnc/abi.h). */
LLVMValueRef cg_const_string(Cg *cg, const char *s);
void cg_check_layout(Cg *cg, LLVMTypeRef t, const char *name, const size_t *at, unsigned n,
                     size_t size);

/* ---- train_desc.c: a training model.so ---------------------------------- */

/* One tensor a training instance keeps (cnnc/abi.h RtTrainParam). */
typedef struct CgTrainParam {
    const char *name;
    TensorType type;
    int32_t kind;      /* RtTrainKind */
    const float *init; /* ir_numel(&type) initial values; NULL: zeros */
} CgTrainParam;

typedef struct CgTrain {
    const CgTrainParam *params; /* nparams (weights, then buffers), then nstate */
    int32_t nparams, ntrainable, nstate;
    int32_t loss, classes, optim; /* RtLossKind, RtOptimKind */
    float lr, beta1, beta2;
} CgTrain;

#define CG_TRAIN_SYMBOL "cnnc_train"
#define CG_TRAIN_INIT_SYMBOL "cnnc_train_init"
/* Adds the hidden constant CG_TRAIN_SYMBOL (an RtTrain) to `grad`'s module, lowered
 * under the name "grad" (the apply and eval models, "apply" and "eval", are linked
 * beside it), and returns the initial values it points to: the data to link as
 * CG_TRAIN_INIT_SYMBOL (free its bytes). */
CgLinkData cg_add_train(Cg *grad, const CgTrain *t);

/* The three models of a training model.so, lowered, and its initial values. */
typedef struct CgTrainModel {
    Cg cg[3]; /* grad, apply, eval */
    int32_t nlowered;
    CgLinkData init;
} CgTrainModel;
/* Lowers the grad, apply and eval graphs (passes run, memory planned) under those names
 * and adds the description `t` to the grad model; cg_train_free it either way. */
bool cg_train_lower(CgTrainModel *m, Graph *const graphs[3], const CgTrain *t,
                    const CgTarget *target, Diag *d);
/* cg_link_shared of the three models and the initial values into one shared object. */
bool cg_train_link(CgTrainModel *m, const char *runtime, const char *out, char *err, size_t n);
void cg_train_free(CgTrainModel *m);

#endif
