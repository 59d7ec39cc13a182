/* passes.h: graph-to-graph rewrites and the pipeline that orders them.
 * Every pass has the same signature, works on a graph whose parameters are
 * bound (PARAM nodes have data), leaves it verified, and returns false only
 * after reporting an error to `d`. */
#ifndef CNNC_PASSES_H
#define CNNC_PASSES_H

#include "ir.h"

/* How conv2d layers are computed (conv_algo.c). */
/* --conv-algo: auto, direct, winograd (the form chosen per layer), winograd4 or
 * winograd2 (F(4×4, 3×3) or F(2×2, 3×3) wherever Winograd fits). */
typedef enum {
    CONV_ALGO_AUTO,
    CONV_ALGO_DIRECT,
    CONV_ALGO_WINOGRAD,
    CONV_ALGO_WINOGRAD4,
    CONV_ALGO_WINOGRAD2
} ConvAlgo;

typedef struct PassOptions {
    int32_t block;           /* channel block for NCHWc (the target's f32 lanes); 0: stay plain */
    uint64_t disabled;       /* bit i set: pass i of the pipeline is skipped */
    int32_t dump_after;      /* pipeline index whose result is printed to dump; -1: none */
    FILE *dump;
    bool verify;             /* run ir_verify after every pass (debug builds, tests) */
    bool keep_values;        /* plan_memory: no reuse, every value keeps its own bytes
                                until the end of a run (per-node inspection) */
    ConvAlgo conv_algo;      /* direct or Winograd conv2d; auto: by a cost model */
} PassOptions;

typedef bool (*PassFn)(Graph *g, const PassOptions *opt, Diag *d);

typedef struct PassInfo {
    const char *name;
    PassFn run;
    bool required; /* needed for code generation; disabling it is an error */
    const char *what;
} PassInfo;

/* The pipeline, in order (pipeline.c). */
extern const PassInfo pass_pipeline[];
extern const int32_t pass_count;
int32_t pass_index(const char *name); /* -1 if unknown */
void pass_options_init(PassOptions *opt);
bool pass_run_pipeline(Graph *g, const PassOptions *opt, Diag *d);

/* The passes, one file each. */
bool pass_channels_first(Graph *g, const PassOptions *opt, Diag *d); /* drop NHWC detours */
bool pass_lower(Graph *g, const PassOptions *opt, Diag *d);        /* forms the backends take */
bool pass_simplify(Graph *g, const PassOptions *opt, Diag *d);     /* dropout and other identities */
bool pass_fold_bn(Graph *g, const PassOptions *opt, Diag *d);      /* batchnorm into conv/dense */
bool pass_fold_const(Graph *g, const PassOptions *opt, Diag *d);   /* ops on constants, at compile time */
bool pass_fuse(Graph *g, const PassOptions *opt, Diag *d);         /* epilogues into conv/dense */
bool pass_dce(Graph *g, const PassOptions *opt, Diag *d);          /* nodes no output needs */
bool pass_layout(Graph *g, const PassOptions *opt, Diag *d);       /* NCHWc blocking, reorders */
bool pass_conv_algo(Graph *g, const PassOptions *opt, Diag *d);    /* direct or Winograd conv2d */
bool pass_fuse_dw(Graph *g, const PassOptions *opt, Diag *d);      /* 1×1 conv into depthwise */
bool pass_plan_memory(Graph *g, const PassOptions *opt, Diag *d);  /* arena offsets */
/* Clears ConvAttrs.fused_in where the pair no longer qualifies (the graph changed, the IR
 * text set it, fuse_dw was disabled after a run) or keep_values is asked: plan_memory
 * runs it first, so that MEM_INLINED is given only where the LLVM backend fuses. */
void pass_fuse_dw_check(Graph *g, bool keep_values);
bool pass_fuse_scale(Graph *g, const PassOptions *opt, Diag *d); /* SE scale into conv */
void pass_fuse_scale_check(Graph *g, const PassOptions *opt); /* as pass_fuse_dw_check */
bool pass_fuse_pool(Graph *g, const PassOptions *opt, Diag *d);  /* conv into maxpool */
void pass_fuse_pool_check(Graph *g, const PassOptions *opt);     /* as pass_fuse_dw_check */

/* How the LLVM backend's Winograd kernel (codegen/llvm/winograd.c) splits `tiles`
 * output tiles (over the whole batch) of a conv of C input and O output channels in
 * blocks of b, whose form has P points (36 for F(4×4, 3×3), 16 for F(2×2, 3×3)), with
 * nregs vector registers and at most max_acc accumulators: oct output blocks per chunk,
 * T tiles per register tile, runs of MT tiles, KG chunks; runs·KG work items of one
 * chunk each, V[P][MT][C] and M[P][MT][oct·b] in the scratch (WINO_SCRATCH_BYTES, or
 * two register tiles of channels past it). */
typedef struct WinoSplit {
    int64_t oct, T, MT, runs, KG;
} WinoSplit;
#define WINO_SCRATCH_BYTES (1024 * 1024)
void pass_winograd_split(int64_t C, int64_t O, int64_t b, int64_t P, int64_t tiles,
                         int32_t nregs, int32_t max_acc, WinoSplit *s);

/* Checks a memory plan: every value has storage, no two values whose
 * lifetimes overlap share bytes (views of concat excepted), all in bounds. */
bool pass_check_plan(const Graph *g, Diag *d);
/* Bytes all activations would take with one buffer each (no reuse): what
 * Graph.arena_bytes is compared against. Graph inputs and weights excluded. */
int64_t pass_plan_total_bytes(const Graph *g);
/* The plan in readable form: each value's place, bytes and live range (plan_print.c). */
void pass_print_plan(const Graph *g, FILE *out);

/* Layout contract (layout.c), for the kernels: with block b > 0, a value's
 * block k is b, or b/2 or b/4 (at least 4) when b does not divide its channels;
 *  - conv2d writes NCHW[k]c with the largest such k that divides its output
 *    channels (per group, unless depthwise); it then reads NCHW[k]c when k
 *    divides its input channels, else plain (the first conv of a network). A
 *    conv2d whose weight is not a constant (a graph input) is plain. A plain
 *    conv2d reads plain.
 *  - batchnorm, activations, dropout, pools, global/adaptive avgpool, add/mul
 *    of equal shapes, layernorm over the channels and channel concat of
 *    blocked-able inputs keep the layout and block of their first blocked
 *    input (every rank-4 input of theirs is given that layout);
 *  - flatten reads plain, or blocked [N,C,1,1] (the same bytes);
 *  - everything else (dense, softmax, graph outputs) reads plain.
 * Where a producer's layout differs from what a user reads, a reorder node
 * (named "<producer>.to_plain" or "<producer>.to_nchw<k>c") is inserted. */

/* Memory plan contract (plan_memory.c): MEM_ALIAS nodes (flatten, dropout,
 * reorders that move no byte: same layout, or H=W=1, and slices of whole channels,
 * mem.offset bytes into each item) resolve to their input 0's storage, whose items
 * they keep. An input of a channel concat is written in place when its mem
 * is MEM_ARENA at the concat's offset + channel offset with batch_stride equal
 * to the concat's per-item element count; other inputs are copied. An
 * elementwise op that is the last reader of its full-size input k, or a blocked
 * conv2d of its fused residual k (pass_overwrites), may have that input's bytes
 * where no other input reads them: the two share one span. */
bool pass_overwrites(const Graph *g, const Node *n, int32_t k);
/* Whether input k of `n` shares its storage with another input of n (base[v]: the
 * value whose storage v is, through aliases). Then n may not write over it: a conv
 * that adds its own input as the residual reads neighbours of the elements it writes,
 * and an elementwise op whose other operand is a view of the same bytes
 * (y * split(y, [1, 31])[0], broadcast) reads elements it has written. The planner
 * and the plan's checker both ask. */
bool pass_input_shared(const int32_t *base, const Node *n, int32_t k);

/* ---- util.c: graph surgery shared by the passes ---------------------------- */

/* A rank-4 value in the NCHW[b]c layout of block b. */
bool pass_blocked_as(const TensorType *t, int32_t b);
/* A conv2d's or dense's weight and bias (if any) are bound parameters: constants the
 * kernel can pack at compile time. */
bool pass_constant_params(const Graph *g, const Node *n);
/* Whether node id's input 0, which a fused kernel would compute inside id's kernel and
 * never store, takes PASS_FUSE_MIN_BYTES or more: then the unfused pair writes it to
 * memory and reads it back, and fusing pays (fuse_dw.c and fuse_pool.c measured it). */
#define PASS_FUSE_MIN_BYTES (4 << 20)
bool pass_fusion_pays(const Graph *g, int32_t id);
/* uses[i]: how many inputs of nodes and graph outputs refer to node i. */
int32_t *pass_use_counts(const Graph *g, Arena *a);
/* Who uses each node, for rewrites that must not rescan the whole graph per
 * replaced node (that is quadratic on long chains). users of `id`: the nodes
 * on its list whose inputs still name it; a list may hold stale entries. */
typedef struct PassUsers {
    int32_t n;      /* nodes covered: those that existed when it was built */
    int32_t *head;  /* per node: first edge, -1: none */
    int32_t *tail;  /* per node: last edge */
    int32_t *next;  /* per edge */
    int32_t *user;  /* per edge: the using node */
} PassUsers;
PassUsers *pass_users(const Graph *g, Arena *a);
#define PASS_FOR_USERS(u, id, e) for (int32_t e = (id) < (u)->n ? (u)->head[id] : -1; e >= 0; e = (u)->next[e])
/* Every use of node `from` (inputs and graph outputs) now refers to `to`;
 * `u` (kept up to date) lists who uses what. */
void pass_replace_uses(Graph *g, PassUsers *u, int32_t from, int32_t to);
/* Removes the nodes of `candidates` (NULL: all but graph inputs) that nothing
 * uses any more, then weights left unused by them, and renumbers the rest
 * keeping their order. Returns how many were removed. */
int32_t pass_remove_unused(Graph *g, const bool *candidates);
/* Puts the nodes back into a topological order after a rewrite made a node
 * use a later one; already ordered stretches keep their order. */
void pass_toposort(Graph *g);
/* The node names of a graph as a hash set, so that a pass naming many new
 * nodes does not search the node array for each. */
typedef struct PassNames PassNames;
PassNames *pass_name_set(const Graph *g, Arena *a);
/* A PARAM appended to the graph with its data copied; its name is `base`,
 * or `base.1`, `base.2`... if taken. Call pass_toposort before verifying. */
int32_t pass_add_param(Graph *g, PassNames *names, const char *base, TensorType type,
                       const float *data, SrcLoc loc);
/* A new parameter as pass_add_param makes, its values left for the caller to write (every
 * one): *values points at them. For values computed straight into place. */
int32_t pass_new_param(Graph *g, PassNames *names, const char *base, TensorType type,
                       SrcLoc loc, float **values);
/* `base`, or the first free `base.K`, now taken in `names`. */
const char *pass_unique_name(Graph *g, PassNames *names, const char *base);

/* The bytes an arena value occupies: `count` items of `len` bytes, `stride`
 * apart (a view inside a concat), else one run of `len` bytes at `off`. */
typedef struct PassSpan {
    int64_t off, stride, len, count;
} PassSpan;
PassSpan pass_span_of(const Node *n);
int64_t pass_span_end(PassSpan s); /* one past the last byte */
bool pass_spans_overlap(PassSpan a, PassSpan b);

#endif
