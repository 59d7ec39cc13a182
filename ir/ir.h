/* ir.h: every type of the cnnc graph IR and the functions of ir/, in sections
 * headed by the file that exports them. The IR is one graph per model: nodes in
 * an array referenced by int32_t index, memory from a per-graph arena. */
#ifndef CNNC_IR_H
#define CNNC_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdnoreturn.h>

#define CNNC_VERSION "0.1.0"
#define IR_MAX_RANK 6

/* ---- arena.c: memory ---------------------------------------------------- */

typedef struct Arena Arena;

Arena *ir_arena_new(void);
void ir_arena_free(Arena *a);
void *ir_alloc(Arena *a, size_t size); /* zeroed, 64-byte aligned */
char *ir_strdup(Arena *a, const char *s);
char *ir_strndup(Arena *a, const char *s, size_t n);
/* 64-bit FNV-1a of a string, for the hash tables of names. */
uint64_t ir_str_hash(const char *s);
char *ir_strfmt(Arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t ir_arena_bytes(const Arena *a); /* total bytes held */

/* The only calls to malloc/realloc in the compiler. On exhaustion they print
 * "cnnc: error: out of memory" and call the function set by ir_set_out_of_memory
 * (a driver's exit with its error status), else abort. */
void *ir_xmalloc(size_t size);
void *ir_xcalloc(size_t n, size_t size);
void *ir_xrealloc(void *p, size_t size);
char *ir_xstrdup(const char *s); /* free with free() */
void ir_set_out_of_memory(void (*fn)(void));
/* For buffers of a size the model decides (the interpreter's values): NULL, for
 * the caller to report, when malloc fails or `size` is more than the machine's
 * memory, which would end in the out-of-memory killer once touched. Free with free(). */
void *ir_try_malloc(size_t size);
uint64_t ir_memory_bytes(void); /* physical memory; UINT64_MAX if unknown */

/* Internal invariant failures (compiler bugs, never user errors). */
#define ICE(...) ir_ice(__FILE__, __LINE__, __VA_ARGS__)
noreturn void ir_ice(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- diag.c: user diagnostics ------------------------------------------- */

typedef struct SrcLoc {
    const char *file; /* NULL: no location */
    int32_t line, col; /* 1-based; 0: unknown */
} SrcLoc;

typedef enum { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } DiagLevel;

typedef struct DiagSource DiagSource;

/* Collects diagnostics of one run. Each message is written to `out` at once
 * as `file:line:col: error: message`, followed by the source line and a caret
 * under the column when the file's text was registered. */
typedef struct Diag {
    FILE *out;
    Arena *arena;
    DiagSource *sources;
    int nerrors, nwarnings;
    int max_errors; /* stop printing after this many (0: no limit) */
    /* Errors and warnings already printed ("file:line:col:level:message"): the
     * same one again (a loop, a block called twice) is counted, not printed,
     * and neither are its notes. */
    const char **seen;
    int32_t nseen, capseen;
    int nrepeated; /* errors counted in nerrors but not printed */
    bool muted;
} Diag;

void ir_diag_init(Diag *d, FILE *out);
void ir_diag_fini(Diag *d);
/* Registers the text of a source file so messages can quote its lines. The
 * text is copied. Returns the arena copy of `file` for use in SrcLoc. */
const char *ir_diag_add_source(Diag *d, const char *file, const char *text, size_t len);
/* Forgets the messages printed so far, so a repeated one is printed again
 * (each text typed at a prompt is a run of its own). */
void ir_diag_forget(Diag *d);
void ir_error(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ir_warn(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ir_note(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ir_vdiag(Diag *d, DiagLevel level, SrcLoc loc, const char *fmt, va_list ap);

/* ---- types.c: tensor types ---------------------------------------------- */

typedef enum { DT_INVALID, DT_F32, DT_F16, DT_BF16, DT_I64 } DType;

/* Logical dims are always written N, C, H, W (or N, F for rank 2); the layout
 * says how they are stored. LAYOUT_PLAIN is row-major in dim order. */
typedef enum { LAYOUT_PLAIN, LAYOUT_NCHWC, LAYOUT_NHWC } Layout;

typedef struct TensorType {
    DType dtype; /* DT_INVALID marks a value whose inference failed */
    int32_t rank;
    int64_t dims[IR_MAX_RANK];
    Layout layout;
    int32_t block; /* channel block for LAYOUT_NCHWC, else 0 */
} TensorType;

/* The most elements of any one tensor: 2^38, a TiB of f32. Shape inference
 * rejects larger ones, so every size computed later (bytes, offsets, sums of a
 * few of them, strides times indices) fits in int64 with a wide margin. */
#define IR_MAX_NUMEL_LOG2 38
#define IR_MAX_NUMEL ((int64_t)1 << IR_MAX_NUMEL_LOG2)

const char *ir_dtype_name(DType t);   /* "f32" */
size_t ir_dtype_size(DType t);        /* bytes */
/* Elements of a type that inference accepted; a compiler bug (ICE) otherwise. */
int64_t ir_numel(const TensorType *t);
/* Elements of `rank` dims, computed without overflow; -1 if a dim is negative
 * or the count is more than IR_MAX_NUMEL. */
int64_t ir_numel_checked(int32_t rank, const int64_t *dims);
/* The count as a double, for saying how far over the limit a shape is. */
double ir_numel_approx(int32_t rank, const int64_t *dims);
/* a * b for a, b >= 0, or INT64_MAX when it does not fit (counts for reports). */
int64_t ir_mul_sat(int64_t a, int64_t b);
int64_t ir_add_sat(int64_t a, int64_t b); /* both >= 0; INT64_MAX on overflow */
bool ir_type_eq(const TensorType *a, const TensorType *b);
bool ir_dims_eq(const TensorType *a, const TensorType *b); /* same logical dims, any layout */
/* `s` holds one value per channel of the rank-4 `y` (C > 1): its dims, right-aligned
 * (numpy broadcasting), are [N or 1, C, 1, 1]. */
bool ir_is_per_channel(const TensorType *s, const TensorType *y);
TensorType ir_type_f32(int32_t rank, const int64_t *dims);
/* "f32[1,3,224,224]" (and "@nchw16c" / "@nhwc" for other layouts) */
char *ir_type_str(const TensorType *t, char *buf, size_t n);
/* "64×5×5": dims from `from` on, joined by U+00D7 */
char *ir_dims_str(const TensorType *t, int32_t from, char *buf, size_t n);

/* ---- ops.c and attrs.c: the op table ------------------------------------ */

typedef enum {
#define OP(e, s, mi, ma, fc, ak, fl) OP_##e,
#include "ops.def"
#undef OP
    OP_COUNT
} Op;

/* TVM-style fusion classes: they, not a list of patterns, decide fusion. */
typedef enum {
    FC_ELEMWISE,    /* one output element from the same input element */
    FC_BROADCAST,   /* elementwise with broadcasting (per-channel operands) */
    FC_INJECTIVE,   /* each output element from one input element (concat, flatten) */
    FC_OUT_FUSABLE, /* reduction that can take elementwise ops on its output (conv, dense) */
    FC_OPAQUE,      /* fuses with nothing */
} FusionClass;

typedef enum {
    AK_NONE, AK_CONV, AK_POOL, AK_BN, AK_CLIP, AK_LEAKY, AK_AXIS, AK_ADAPTIVE, AK_DROPOUT, AK_DENSE,
    AK_AFFINE, AK_GELU, AK_NORM, AK_PERM, AK_SLICE, AK_PAD, AK_GROUPS, AK_ACTGRAD, AK_RUNNING,
    AK_OPTIM
} AttrKind;

typedef enum {
    OF_ACT = 1,         /* one-input activation: ir_act_apply, and a fused epilogue can apply it */
    OF_CHANNELWISE = 2, /* a blocked channel layout (NCHW[b]c) passes through it */
    OF_TRAIN = 4,       /* an op of a training step: interpreter and LLVM backend only */
} OpFlag;

typedef struct OpInfo {
    const char *name;
    int32_t min_inputs, max_inputs; /* max -1: any number */
    FusionClass fusion;
    AttrKind attrs;
    unsigned flags; /* OpFlag bits */
} OpInfo;

extern const OpInfo ir_ops[OP_COUNT];
Op ir_op_from_name(const char *name); /* OP_COUNT if unknown */
bool ir_op_is_act(Op op);            /* an OF_ACT op */

/* An epilogue's activation is the op it applies (an OF_ACT op), or OP_NO_ACT:
 * the value 0, which no activation has, so a zeroed epilogue applies none. */
#define OP_NO_ACT OP_INPUT

/* The fused epilogue of conv2d and dense, set by the fusion pass:
 *   out = post(act(conv + bias) + residual)
 * act_a/act_b are clip's bounds or leaky_relu's alpha (likewise post_a/b).
 * With `residual`, the node's last input is the tensor added. */
typedef struct Epilogue {
    Op act;
    float act_a, act_b;
    bool residual;
    Op post;
    float post_a, post_b;
} Epilogue;

/* The one scalar formula of each activation, in double, for the interpreter
 * (and so constant folding); NaN passes through as in PyTorch. OP_NO_ACT is
 * the identity. a, b: the op's parameters as ir_act_params gives them. */
double ir_act_apply(Op act, double x, float a, float b);
bool ir_act_has_formula(Op act);
/* Its derivative d act(x) / dx, in double, for act_grad (the interpreter's formula). */
double ir_act_deriv(Op act, double x, float a, float b);
bool ir_op_is_train(Op op); /* an OF_TRAIN op */
/* An activation node's parameters: clip's lo and hi, leaky_relu's alpha,
 * affine's scale and shift, gelu's 1 for the tanh form; else 0. */
struct Node;
void ir_act_params(const struct Node *n, float *a, float *b);

/* Spatial attributes are [H, W]; pad is [top, left, bottom, right]. */
typedef struct ConvAttrs {
    int32_t kernel[2], stride[2], dilation[2], pad[4];
    int32_t groups;
    Epilogue epi;
    /* Computed as Winograd F(m×m, 3×3) rather than directly, m = winograd (2 or 4; 0:
     * directly): set by the conv_algo pass (passes/conv_algo.c) for the backends that have
     * that kernel. */
    int32_t winograd;
    /* A depthwise conv whose input 0, a 1×1 conv read by nothing else, is computed inside
     * this conv's kernel a band of rows at a time and never stored (the producer's mem is
     * MEM_INLINED): set by the fuse_dw pass (passes/fuse_dw.c) for the LLVM backend. The
     * value computed is the same; only where the producer's output lives differs. */
    bool fused_in;
    /* Its input 0 is a product x * s, s of shape [N, C, 1, 1] (squeeze-and-excitation's
     * scale), that nothing else reads: the kernel reads x and s and scales the weights of
     * input channel c by s[n, c] as it loads them, and the product is never stored
     * (MEM_INLINED). Set by the fuse_scale pass (passes/fuse_scale.c). */
    bool scaled_in;
} ConvAttrs;

/* dense: out[..., o, ...] = sum_i w[o, i] x[..., i, ...] over dim `axis` (-1: the last;
 * a 2-d [N, I] input is the classic case; 1 of NCHW is a 1×1 convolution). */
typedef struct DenseAttrs { Epilogue epi; int32_t axis; } DenseAttrs;

typedef struct PoolAttrs {
    int32_t kernel[2], stride[2], dilation[2], pad[4];
    bool ceil_mode;
    bool count_include_pad; /* avgpool only */
    /* A maxpool whose input 0, a conv2d read by nothing else, is computed inside this
     * pool's kernel a band of rows at a time and never stored (the conv's mem is
     * MEM_INLINED): set by the fuse_pool pass (passes/fuse_pool.c) for the LLVM backend.
     * The value computed is the same; only where the conv's output lives differs. */
    bool fused_in;
} PoolAttrs;

typedef struct BnAttrs { float eps; } BnAttrs;
typedef struct ClipAttrs { float lo, hi; } ClipAttrs;
typedef struct LeakyAttrs { float alpha; } LeakyAttrs;
typedef struct AxisAttrs { int32_t axis; } AxisAttrs; /* concat, flatten, softmax */
typedef struct AdaptiveAttrs { int32_t out[2]; } AdaptiveAttrs;
/* salt: tells apart the masks of a step's dropout layers (dropout_train/_grad) */
typedef struct DropoutAttrs { float p; int32_t salt; } DropoutAttrs;

/* The dropout mask, the one definition every backend follows bit for bit. rng[2] holds
 * the seed and the step as f32 integers; each becomes a uint32 by ir_dropout_word (C's
 * conversion, 0 outside [0, 2^32) and for NaN). Element i (row-major, the flat index)
 * is kept iff its uniform u = (h >> 8) * 2^-24 in [0, 1) is >= p, with h the murmur3
 * finalizer of seed * 0x9E3779B1 ^ step * 0x85EBCA77 ^ salt * 0xC2B2AE3D ^ lo32(i) ^
 * hi32(i) * 0x27D4EB2F (uint32 arithmetic, wrapping); kept elements are scaled by
 * 1 / (1 - p). */
static inline uint32_t ir_dropout_word(float v)
{
    return v >= 0.0f && v < 4294967296.0f ? (uint32_t)v : 0u;
}

static inline bool ir_dropout_keep(uint32_t seed, uint32_t step, int32_t salt, int64_t i, float p)
{
    uint64_t u = (uint64_t)i;
    uint32_t h = seed * 0x9E3779B1u ^ step * 0x85EBCA77u ^ (uint32_t)salt * 0xC2B2AE3Du ^
                 (uint32_t)u ^ (uint32_t)(u >> 32) * 0x27D4EB2Fu;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return (float)(h >> 8) * 0x1p-24f >= p;
}
typedef struct GeluAttrs { bool tanh; } GeluAttrs; /* PyTorch's approximate="tanh" */
typedef struct AffineAttrs { float scale, shift; } AffineAttrs; /* tensor-number arithmetic */
typedef struct NormAttrs { int32_t axis; float eps; } NormAttrs; /* layernorm over one dim */
/* transpose: output dim i is input dim perm[i]; entries from the rank on are their index */
typedef struct PermAttrs { int32_t perm[IR_MAX_RANK]; } PermAttrs;
typedef struct SliceAttrs { int32_t axis, start, end; } SliceAttrs; /* [start, end), step 1 */
/* pad: [top, left, bottom, right] of H and W (rank 4), filled with `value` */
typedef struct PadAttrs { int32_t pad[4]; float value; } PadAttrs;
typedef struct GroupsAttrs { int32_t groups; } GroupsAttrs; /* channel_shuffle */
/* act_grad: the activation differentiated, with its parameters (ir_act_params) */
typedef struct ActGradAttrs { Op act; float a, b; } ActGradAttrs;
/* bn_running: which statistic (0 mean, 1 variance, made unbiased) and PyTorch's momentum:
 * running = (1 - momentum) * running + momentum * batch */
typedef struct RunningAttrs { int32_t which; float momentum; } RunningAttrs;
/* The optimizers, as torch.optim defines them. hyper[3] (an input) holds the learning
 * rate and Adam's bias corrections 1 - beta1^t, 1 - beta2^t, which change every step.
 * SGD has no bias corrections: its hyper[1] is t - 1, the steps taken before this one, so
 * that sgd_momentum knows the first step (hyper[1] == 0), where PyTorch sets buf = g
 * without the (1 - dampening) factor; Adam's hyper[1] is never 0.
 * SGD: momentum, dampening, nesterov; Adam: beta1, beta2, eps; decoupled: AdamW's
 * decay of the weights themselves instead of weight_decay * param added to the gradient. */
typedef struct OptimAttrs {
    float weight_decay;
    float momentum, dampening; /* SGD */
    float beta1, beta2, eps;   /* Adam */
    bool nesterov, decoupled;
} OptimAttrs;

typedef union Attrs {
    ConvAttrs conv;
    PoolAttrs pool;
    BnAttrs bn;
    ClipAttrs clip;
    LeakyAttrs leaky;
    AxisAttrs axis;
    AdaptiveAttrs adaptive;
    DropoutAttrs dropout;
    DenseAttrs dense;
    AffineAttrs affine;
    GeluAttrs gelu;
    NormAttrs norm;
    PermAttrs perm;
    SliceAttrs slice;
    PadAttrs pad;
    GroupsAttrs groups;
    ActGradAttrs actgrad;
    RunningAttrs running;
    OptimAttrs optim;
} Attrs;

/* Describes every attribute field so the printer, the text parser and the dot
 * export handle attributes generically. */
typedef enum { AF_INT, AF_FLOAT, AF_BOOL, AF_ACT } AttrFieldType; /* AF_ACT: an epilogue's Op */
typedef struct AttrField {
    AttrKind kind;
    const char *name;
    AttrFieldType type;
    int32_t count; /* array length; 1 for scalars */
    size_t offset; /* within Attrs */
    bool optional; /* printed only when it differs from the default (epilogues) */
} AttrField;

const char *ir_act_name(Op act); /* "relu"; "none" for OP_NO_ACT */

extern const AttrField ir_attr_fields[];
extern const int32_t ir_nattr_fields;
void ir_attrs_default(Op op, Attrs *a); /* the defaults of the op (conv: 1×1, stride 1, ...) */

/* ---- graph.c: the graph ------------------------------------------------- */

/* Where a node's value lives at run time, decided by the memory planner. */
typedef enum {
    MEM_UNPLANNED, /* not planned yet */
    MEM_ARENA,     /* at `offset` bytes into the activation arena */
    MEM_INPUT,     /* the caller's input buffer number `index` */
    MEM_OUTPUT,    /* the caller's output buffer number `index` */
    MEM_WEIGHTS,   /* a PARAM: embedded in the model */
    MEM_ALIAS,     /* no storage of its own: a view of input 0 (flatten, reorder-free reshapes,
                      channel slices), mem.offset bytes into each of its items */
    MEM_INLINED,   /* never stored: computed inside the kernel of its one user (a conv2d
                      with fused_in or scaled_in, a maxpool with fused_in), which reads
                      this node's inputs instead */
} MemKind;

typedef struct MemLoc {
    MemKind kind;
    int32_t index;
    int64_t offset;       /* bytes; for MEM_ARENA (and a view's offset into its base) */
    int64_t batch_stride; /* elements from one batch item to the next; 0: dense */
} MemLoc;

typedef struct Node {
    Op op;
    int32_t ninputs;
    int32_t *inputs; /* node indices, all smaller than this node's */
    /* Unique within the graph. INPUT: the input's name; PARAM: the weight's
     * full name ("layer1.0.conv1.weight"); others: the layer path. */
    const char *name;
    TensorType type; /* set by shape inference */
    Attrs attrs;
    SrcLoc loc;
    float *data; /* PARAM: bound weights (f32, row-major), NULL until bound */
    MemLoc mem;  /* where the value lives; set by memory planning */
} Node;

typedef struct GraphOutput {
    int32_t node;
    const char *name;
} GraphOutput;

/* Nodes are in topological order (inputs precede users). Graph inputs are the
 * OP_INPUT nodes in node order. */
typedef struct Graph {
    Arena *arena;
    const char *name;
    Node *nodes;
    int32_t nnodes, capnodes;
    GraphOutput *outputs;
    int32_t noutputs, capoutputs;
    int64_t arena_bytes; /* activation arena size, set by memory planning */
} Graph;

Graph *ir_graph_new(const char *name);
void ir_graph_free(Graph *g);
/* Appends a node with default attributes and an invalid type; returns its index. */
int32_t ir_add_node(Graph *g, Op op, const int32_t *inputs, int32_t ninputs, const char *name,
                    SrcLoc loc);
int32_t ir_add_input(Graph *g, const char *name, TensorType type, SrcLoc loc);
int32_t ir_add_param(Graph *g, const char *name, TensorType type, SrcLoc loc);
void ir_add_output(Graph *g, int32_t node, const char *name);
int32_t ir_find_node(const Graph *g, const char *name); /* -1 if none */
int32_t ir_num_inputs(const Graph *g);
int32_t ir_input_node(const Graph *g, int32_t i); /* node index of the i-th input */

/* ---- ops.c: what every pass and backend says of a node ------------------ */

/* The fused epilogue of a conv2d or dense; NULL for other ops. Like strchr, it
 * returns a pointer into a const node for those that may change it. */
Epilogue *ir_epilogue(const Node *n);
/* Input slots of a conv2d or dense: x, weight, bias?, residual? (-1: none). */
int32_t ir_bias_input(const Node *n);
int32_t ir_residual_input(const Node *n);
/* The axis attribute of a concat or softmax counted from 0: a negative one counts
 * from the end of the node's rank. */
int32_t ir_node_axis(const Node *n);
/* The input a conv2d or maxpool computes inside its own kernel (ConvAttrs.fused_in or
 * scaled_in, PoolAttrs.fused_in: its input 0, whose value is MEM_INLINED), or -1. */
int32_t ir_inlined_input(const Node *n);
/* Of a mul's two operands, the one of shape [N, C, 1, 1] that scales the other (of the
 * mul's own shape, H or W above 1) per channel: 0 or 1; -1 if it is no such product. */
int32_t ir_channel_scale_operand(const Graph *g, const Node *mul);
/* Floating-point operations of one run of the node's kernel: 2 per multiply-add
 * of conv2d and dense and of their gradients, none for copies, else 1 per output
 * element; epilogues are not counted. Saturates at INT64_MAX. */
int64_t ir_node_flops(const Graph *g, const Node *n);
/* The op part of a profile label: the op's name, or for a conv2d the kernel it
 * runs: conv2d.winograd (F(4×4, 3×3)), conv2d.winograd2 (F(2×2, 3×3)),
 * conv2d.pw_dw, conv2d.scaled. */
const char *ir_op_label(const Node *n);
/* The profile label of the node's kernel: its op, then what is fused into it
 * in the order the epilogue applies it, e.g. "conv2d+bias+add+relu". */
char *ir_node_label(const Node *n, char *buf, size_t size);

/* ---- clone.c: deep copies ----------------------------------------------- */

/* A copy of `g` that shares nothing with it: nodes, names, attributes, types,
 * locations, memory plan, outputs and parameter data. */
Graph *ir_graph_clone(const Graph *g);

/* ---- infer.c: shape inference ------------------------------------------- */

/* Computes node `id`'s type from its inputs and attributes. A user error is
 * reported at the node's location and leaves the type DT_INVALID; a node with
 * an invalid input fails silently, so one mistake gives one message. */
bool ir_infer_node(Graph *g, int32_t id, Diag *d);
/* The same rule without touching the graph: the type node `id` would get. */
bool ir_infer_type(const Graph *g, int32_t id, Diag *d, TensorType *out);
bool ir_infer_shapes(Graph *g, Diag *d);

/* ---- verify.c: the IR verifier ------------------------------------------ */

/* Checks structural invariants (indices, arity, order, unique names, inferred
 * types consistent, outputs). Problems are reported to `d`. */
bool ir_verify(const Graph *g, Diag *d);

/* ---- print.c, parse.c, dot.c: text forms -------------------------------- */

void ir_print(const Graph *g, FILE *out);
/* Parses what ir_print prints; weights are not part of the text form. */
Graph *ir_parse_text(const char *file, const char *text, Diag *d);
void ir_print_dot(const Graph *g, FILE *out);

/* ---- interp.c: the reference interpreter -------------------------------- */

/* Values of every node after one run of the graph; values[i] holds
 * ir_numel(&g->nodes[i].type) floats, row-major in logical dim order. */
typedef struct InterpResult {
    int32_t nnodes;
    float **values;
} InterpResult;

/* Runs `g` naively, accumulating in double. inputs[i] feeds the i-th graph
 * input. Every PARAM needs data. On failure returns false with a message. */
bool ir_interp(const Graph *g, const float *const *inputs, InterpResult *res, char *err,
               size_t errlen);
void ir_interp_free(InterpResult *res);
bool ir_interp_supports(Op op); /* the interpreter runs the op */

/* ---- tempfile.c: temporary files, removed however the process ends ------ */

/* mkstemp(tmpl), the file registered as a temporary; -1 with errno on failure. */
int ir_temp_create(char *tmpl);
/* Creates `path` (it must not exist) as a registered temporary; -1 with errno. */
int ir_temp_open(const char *path);
/* Unregisters a temporary: removed, or (remove false) kept once renamed into place. */
void ir_temp_release(const char *path, bool remove);
/* Unlinks every registered temporary: only async-signal-safe calls, for handlers of
 * fatal errors and signals. */
void ir_temp_remove_all(void);
/* Has exit() and the signals SIGHUP, SIGINT, SIGTERM and SIGABRT remove the
 * temporaries before the process ends. */
void ir_temp_remove_on_exit(void);
/* write(2) of all n bytes, retried after EINTR; false with errno on failure. */
bool ir_write_all(int fd, const void *data, size_t n);

/* fn(ctx, i) for every i in [0, n), on up to `threads` threads, the calling one among
 * them: each takes the next i until none is left, so the work balances itself. Returns
 * when every call has; a thread that cannot be started leaves its share to the others. */
void ir_parallel_for(int32_t n, int32_t threads, void (*fn)(void *ctx, int32_t i), void *ctx);
/* Threads for the compiler's own work: $CNNC_COMPILE_THREADS, else one per core. */
int32_t ir_compile_threads(void);

#endif
