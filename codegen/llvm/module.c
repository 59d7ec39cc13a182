/* module.c: the whole module of a model: the target machine, one kernel per
 * node (through the emitters), the `run` function that calls them in node
 * order, the `cnnc_model` description (with its kernel table) the runtime
 * reads, and emission. */
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/IRReader.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "cg.h"
#include "cnnc/abi.h"


/* Triple, CPU and features of a target; the strings are malloc'd. */
typedef struct TargetStr {
    char *triple, *cpu, *features;
} TargetStr;

static char *dup_llvm(char *s)
{
    char *d = ir_xstrdup(s);
    LLVMDisposeMessage(s);
    return d;
}

/* The host's CPU unless one is named ("native" is the host); extra features
 * apply after the CPU's own (for the host CPU, after its detected features). */
static TargetStr target_strings(const CgTarget *t)
{
    TargetStr s;
    s.triple = t && t->triple ? ir_xstrdup(t->triple) : dup_llvm(LLVMGetDefaultTargetTriple());
    if (t && t->cpu && strcmp(t->cpu, "native") != 0) {
        s.cpu = ir_xstrdup(t->cpu);
        s.features = ir_xstrdup(t->features ? t->features : "");
        return s;
    }
    s.cpu = dup_llvm(LLVMGetHostCPUName());
    char *host = dup_llvm(LLVMGetHostCPUFeatures());
    if (!t || !t->features || !*t->features) {
        s.features = host;
        return s;
    }
    size_t n = strlen(host) + strlen(t->features) + 2;
    s.features = ir_xmalloc(n);
    snprintf(s.features, n, "%s,%s", host, t->features);
    free(host);
    return s;
}

static void target_strings_free(TargetStr *s)
{
    free(s->triple);
    free(s->cpu);
    free(s->features);
}

static void init_llvm(void)
{
    static bool done;
    if (done) return;
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    done = true;
}

static LLVMTargetMachineRef make_tm(const TargetStr *s, int opt, char *err, size_t n)
{
    init_llvm();
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(s->triple, &target, &msg)) {
        snprintf(err, n, "unknown target '%s': %s", s->triple, msg ? msg : "");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    LLVMCodeGenOptLevel lv = opt <= 0   ? LLVMCodeGenLevelNone
                             : opt == 1 ? LLVMCodeGenLevelLess
                             : opt == 2 ? LLVMCodeGenLevelDefault
                                        : LLVMCodeGenLevelAggressive;
    return LLVMCreateTargetMachine(target, s->triple, s->cpu, s->features, lv, LLVMRelocPIC,
                                   LLVMCodeModelDefault);
}

/* LLVM reports some code generation errors (an instruction the chosen features cannot
 * encode) to the context, whose default handler prints them and exits. The first one
 * is kept in the CG_ERROR_LEN bytes at `ctx` instead, and the emission fails. */
static void on_llvm_diag(LLVMDiagnosticInfoRef di, void *ctx)
{
    char *first = ctx;
    if (LLVMGetDiagInfoSeverity(di) != LLVMDSError || first[0]) return;
    char *msg = LLVMGetDiagInfoDescription(di);
    snprintf(first, CG_ERROR_LEN, "%s", msg);
    LLVMDisposeMessage(msg);
}

static const char probe_ir[] =
    "define void @probe(ptr %a) \"min-legal-vector-width\"=\"512\" "
    "\"prefer-vector-width\"=\"512\" {\n"
    "  %x = load <16 x float>, ptr %a\n"
    "  %y = call <16 x float> @llvm.fma.v16f32(<16 x float> %x, <16 x float> %x, "
    "<16 x float> %x)\n"
    "  store <16 x float> %y, ptr %a\n"
    "  ret void\n}\n"
    "declare <16 x float> @llvm.fma.v16f32(<16 x float>, <16 x float>, <16 x float>)\n";

/* What the target's vectors are, read off the assembly of a 16-lane FMA:
 * exact for every CPU name and feature string LLVM knows. */
static void probe_target(LLVMTargetMachineRef tm, int32_t *lanes, bool *fma)
{
    LLVMContextRef ctx = LLVMContextCreate();
    char error[CG_ERROR_LEN] = "";
    LLVMContextSetDiagnosticHandler(ctx, on_llvm_diag, error);
    LLVMMemoryBufferRef src =
        LLVMCreateMemoryBufferWithMemoryRangeCopy(probe_ir, sizeof probe_ir - 1, "probe");
    LLVMModuleRef m;
    char *msg = NULL;
    if (LLVMParseIRInContext(ctx, src, &m, &msg)) ICE("probe module: %s", msg);
    LLVMMemoryBufferRef asmbuf;
    *lanes = 4;
    *fma = false;
    /* On an error the lanes stay 4: the model's own emission reports it. */
    bool bad = LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMAssemblyFile, &msg, &asmbuf);
    if (!bad && !error[0]) {
        size_t n = LLVMGetBufferSize(asmbuf);
        char *text = ir_xmalloc(n + 1);
        memcpy(text, LLVMGetBufferStart(asmbuf), n);
        text[n] = 0;
        *lanes = strstr(text, "zmm") ? 16 : strstr(text, "ymm") ? 8 : 4;
        *fma = strstr(text, "vfmadd") != NULL;
        free(text);
    }
    if (!bad) LLVMDisposeMemoryBuffer(asmbuf);
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
}

int32_t cg_target_lanes(const CgTarget *t)
{
    char err[4096];
    if (!cg_check_target(t, err, sizeof err)) return 4; /* cg_lower reports it */
    TargetStr s = target_strings(t);
    LLVMTargetMachineRef tm = make_tm(&s, 2, err, sizeof err);
    int32_t lanes = 4;
    bool fma;
    if (tm) {
        probe_target(tm, &lanes, &fma);
        LLVMDisposeTargetMachine(tm);
    }
    target_strings_free(&s);
    return lanes;
}

void cg_init_types(Cg *cg)
{
    LLVMContextRef c = cg->ctx;
    cg->t_void = LLVMVoidTypeInContext(c);
    cg->t_i1 = LLVMInt1TypeInContext(c);
    cg->t_i32 = LLVMInt32TypeInContext(c);
    cg->t_i64 = LLVMInt64TypeInContext(c);
    cg->t_f32 = LLVMFloatTypeInContext(c);
    cg->t_ptr = LLVMPointerTypeInContext(c, 0);
    cg->t_vf32 = LLVMVectorType(cg->t_f32, (unsigned)cg->vec);
    LLVMTypeRef params[4] = {cg->t_ptr, cg->t_i64, cg->t_i64, cg->t_ptr};
    cg->t_kernel = LLVMFunctionType(cg->t_void, params, 4, 0);
}

static bool init_cg(Cg *cg, const Graph *g, const CgTarget *t, Diag *d)
{
    memset(cg, 0, sizeof *cg);
    cg->g = g;
    cg->diag = d;
    if (t && t->name) snprintf(cg->name, sizeof cg->name, "%s", t->name);
    char err[4096];
    if (!cg_check_target(t, err, sizeof err)) return ir_error(d, (SrcLoc){0}, "%s", err), false;
    TargetStr s = target_strings(t);
    cg->tm = make_tm(&s, t ? t->opt_level : 2, err, sizeof err);
    if (!cg->tm) {
        ir_error(d, (SrcLoc){0}, "%s", err);
        target_strings_free(&s);
        return false;
    }
    probe_target(cg->tm, &cg->vec, &cg->fma);
    cg->nregs = cg->vec == 16 ? 32 : 16;
    cg->ctx = LLVMContextCreate();
    cg->llvm_error = ir_xcalloc(1, CG_ERROR_LEN);
    LLVMContextSetDiagnosticHandler(cg->ctx, on_llvm_diag, cg->llvm_error);
    const char *name = g->name ? g->name : "model";
    cg->mod = LLVMModuleCreateWithNameInContext(name, cg->ctx);
    LLVMSetSourceFileName(cg->mod, name, strlen(name));
    LLVMSetTarget(cg->mod, s.triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(cg->tm);
    LLVMSetModuleDataLayout(cg->mod, dl);
    LLVMDisposeTargetData(dl);
    cg->b = LLVMCreateBuilderInContext(cg->ctx);
    cg_init_types(cg);
    target_strings_free(&s);
    return true;
}

static CgKernel emit_nothing(Cg *cg, int32_t i)
{
    return (CgKernel){0};
}

/* One emitter per op; every activation is an elementwise kernel through cg_act. */
static CgKernel (*const emitters[OP_COUNT])(Cg *cg, int32_t node) = {
    [OP_INPUT] = emit_nothing,
    [OP_PARAM] = emit_nothing,
    [OP_CONV2D] = cg_emit_conv2d,
    [OP_DENSE] = cg_emit_dense,
    [OP_CONV2D_GRAD_INPUT] = cg_emit_conv2d_grad_input,
    [OP_CONV2D_GRAD_WEIGHT] = cg_emit_conv2d_grad_weight,
    [OP_DENSE_GRAD_INPUT] = cg_emit_dense_grad_input,
    [OP_DENSE_GRAD_WEIGHT] = cg_emit_dense_grad_weight,
    [OP_MAXPOOL] = cg_emit_pool,
    [OP_AVGPOOL] = cg_emit_pool,
    [OP_GLOBAL_AVGPOOL] = cg_emit_pool,
    [OP_ADAPTIVE_AVGPOOL] = cg_emit_pool,
    [OP_BATCHNORM] = cg_emit_eltwise,
    [OP_ADD] = cg_emit_eltwise,
    [OP_MUL] = cg_emit_eltwise,
    [OP_SUB] = cg_emit_eltwise,
    [OP_DIV] = cg_emit_eltwise,
    [OP_DROPOUT] = cg_emit_eltwise,
    [OP_CONCAT] = cg_emit_misc,
    [OP_FLATTEN] = cg_emit_misc,
    [OP_SOFTMAX] = cg_emit_misc,
    [OP_REORDER] = cg_emit_misc,
    [OP_LAYERNORM] = cg_emit_layernorm,
    [OP_TRANSPOSE] = cg_emit_shape,
    [OP_SLICE] = cg_emit_shape,
    [OP_PAD] = cg_emit_shape,
    [OP_CHANNEL_SHUFFLE] = cg_emit_shape,
    [OP_BIAS_GRAD] = cg_emit_train,
    [OP_ACT_GRAD] = cg_emit_train,
    [OP_MAXPOOL_GRAD] = cg_emit_train,
    [OP_AVGPOOL_GRAD] = cg_emit_train,
    [OP_GLOBAL_AVGPOOL_GRAD] = cg_emit_train,
    [OP_ADAPTIVE_AVGPOOL_GRAD] = cg_emit_train,
    [OP_RESHAPE_AS] = cg_emit_train,
    [OP_REDUCE_AS] = cg_emit_train,
    [OP_SLICE_GRAD] = cg_emit_train,
    [OP_BN_STATS] = cg_emit_train,
    [OP_BN_TRAIN] = cg_emit_train,
    [OP_BN_GRAD_INPUT] = cg_emit_train,
    [OP_BN_GRAD_WEIGHT] = cg_emit_train,
    [OP_BN_RUNNING] = cg_emit_train,
    [OP_DROPOUT_TRAIN] = cg_emit_train,
    [OP_DROPOUT_GRAD] = cg_emit_train,
    [OP_SOFTMAX_XENT] = cg_emit_train,
    [OP_SOFTMAX_XENT_GRAD] = cg_emit_train,
    [OP_MSE] = cg_emit_train,
    [OP_MSE_GRAD] = cg_emit_train,
    [OP_SGD_MOMENTUM] = cg_emit_train,
    [OP_SGD_STEP] = cg_emit_train,
    [OP_ADAM_M] = cg_emit_train,
    [OP_ADAM_V] = cg_emit_train,
    [OP_ADAM_STEP] = cg_emit_train,
};

bool cg_llvm_supports(Op op)
{
    if (op < 0 || op >= OP_COUNT)
        return false;
    return ir_op_is_act(op) ? cg_has_act(op) : emitters[op] != NULL;
}

/* Nodes without code (inputs, weights, views) get no kernel. */
static CgKernel emit_node(Cg *cg, int32_t i)
{
    const Node *nd = &cg->g->nodes[i];
    if (nd->mem.kind == MEM_ALIAS || nd->mem.kind == MEM_INLINED) return (CgKernel){0};
    if (!cg_llvm_supports(nd->op)) ICE("node %d: no LLVM emitter for op %d", i, (int)nd->op);
    return ir_op_is_act(nd->op) ? cg_emit_eltwise(cg, i) : emitters[nd->op](cg, i);
}

/* ---- one kernel for every node with the same code ----------------------- */

/* Kernels reach their packed weights through constant pointers into the weights symbol,
 * so two layers of the same shapes and epilogue differ only in those constants. Once a
 * kernel is built, every pointer into the weights it uses is replaced by a pointer it
 * loads from an extra slot of its args, after the node's inputs (run fills the slots with
 * the constants); if a kernel with the same code exists, the new one is deleted and the
 * node runs the old one on its own buffers and weights. */

/* The weight pointers of a kernel: slot j (after the node's inputs) holds root[j], a
 * constant pointer into the weights symbol. */
typedef struct WeightSlots {
    LLVMValueRef *root;
    int32_t n, cap;
    /* Constant expressions on the weights already turned into instructions of the kernel. */
    LLVMValueRef *from, *to;
    int32_t nmap, capmap;
    LLVMBuilderRef b; /* inserts before `anchor`, the first instruction the kernel had */
    LLVMValueRef anchor;
    int32_t first; /* the slot of root[0]: the node's inputs + 1 */
} WeightSlots;

typedef struct SeenKernel {
    uint64_t hash;
    int64_t items;
    LLVMValueRef fn;
} SeenKernel;

typedef struct Dedup {
    SeenKernel *k;
    int32_t n, cap;
    LLVMBuilderRef b;
} Dedup;

/* Whether constant `c` is or contains the weights symbol. Globals are leaves (their
 * initializers are not part of the value). */
static bool refs_weights(const Cg *cg, LLVMValueRef c)
{
    if (c == cg->weights_sym) return true;
    if (!LLVMIsAConstantExpr(c) && !LLVMIsAConstantVector(c) && !LLVMIsAConstantStruct(c) &&
        !LLVMIsAConstantArray(c))
        return false;
    int n = LLVMGetNumOperands(c);
    for (int i = 0; i < n; i++)
        if (refs_weights(cg, LLVMGetOperand(c, i))) return true;
    return false;
}

/* Whether every use of the weights in `c` is the symbol itself or a chain of GEPs on
 * it, which slots and GEP instructions can replace. */
static bool slots_can_replace(const Cg *cg, LLVMValueRef c)
{
    if (c == cg->weights_sym || !refs_weights(cg, c)) return true;
    if (!LLVMIsAConstantExpr(c) || LLVMGetConstOpcode(c) != LLVMGetElementPtr) return false;
    int n = LLVMGetNumOperands(c);
    for (int i = 1; i < n; i++)
        if (refs_weights(cg, LLVMGetOperand(c, i))) return false;
    return slots_can_replace(cg, LLVMGetOperand(c, 0));
}

/* The root of a pointer into the weights: the symbol itself or one byte offset from it. */
static bool is_root(const Cg *cg, LLVMValueRef c)
{
    if (c == cg->weights_sym) return true;
    if (LLVMGetConstOpcode(c) != LLVMGetElementPtr || LLVMGetOperand(c, 0) != cg->weights_sym ||
        LLVMGetNumOperands(c) != 2 || !LLVMIsAConstantInt(LLVMGetOperand(c, 1)))
        return false;
    return LLVMGetGEPSourceElementType(c) == LLVMInt8TypeInContext(cg->ctx);
}

/* Greatest power of two (at most 64, the blob's alignment) dividing the root's offset. */
static unsigned root_align(const Cg *cg, LLVMValueRef root)
{
    if (root == cg->weights_sym) return 64;
    unsigned long long off = LLVMConstIntGetZExtValue(LLVMGetOperand(root, 1));
    unsigned a = 64;
    while (a > 1 && off % a) a /= 2;
    return a;
}

static void set_md(Cg *cg, LLVMValueRef inst, const char *kind, LLVMMetadataRef *ops, size_t n)
{
    LLVMMetadataRef node = LLVMMDNodeInContext2(cg->ctx, ops, n);
    LLVMSetMetadata(inst, LLVMGetMDKindIDInContext(cg->ctx, kind, (unsigned)strlen(kind)),
                    LLVMMetadataAsValue(cg->ctx, node));
}

/* The kernel's load of a new slot holding `root` (materialize asks once per root): aligned as the root is, never null, and
 * the same for the whole call (run writes the slots before it starts the kernel). */
static LLVMValueRef slot_load(Cg *cg, WeightSlots *w, LLVMValueRef root)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 8;
        w->root = ir_xrealloc(w->root, (size_t)w->cap * sizeof *w->root);
    }
    int32_t slot = w->first + w->n;
    w->root[w->n++] = root;
    LLVMValueRef idx = LLVMConstInt(cg->t_i64, (unsigned long long)slot, 0);
    LLVMValueRef at = LLVMBuildInBoundsGEP2(w->b, cg->t_ptr, cg->args, &idx, 1, "wslot");
    LLVMValueRef p = LLVMBuildLoad2(w->b, cg->t_ptr, at, "w");
    LLVMSetAlignment(p, 8);
    LLVMMetadataRef align = LLVMValueAsMetadata(cg_i64(cg, root_align(cg, root)));
    set_md(cg, p, "align", &align, 1);
    set_md(cg, p, "nonnull", NULL, 0);
    set_md(cg, p, "invariant.load", NULL, 0);
    return p;
}

static void map_add(WeightSlots *w, LLVMValueRef from, LLVMValueRef to)
{
    if (w->nmap == w->capmap) {
        w->capmap = w->capmap ? 2 * w->capmap : 16;
        w->from = ir_xrealloc(w->from, (size_t)w->capmap * sizeof *w->from);
        w->to = ir_xrealloc(w->to, (size_t)w->capmap * sizeof *w->to);
    }
    w->from[w->nmap] = from;
    w->to[w->nmap++] = to;
}

/* Constant `c` (slots_can_replace) as a value of the kernel: a slot's load, or GEP
 * instructions on one, at the top of the entry block. */
static LLVMValueRef materialize(Cg *cg, WeightSlots *w, LLVMValueRef c)
{
    if (!refs_weights(cg, c)) return c;
    for (int32_t m = 0; m < w->nmap; m++)
        if (w->from[m] == c) return w->to[m];
    LLVMValueRef v;
    if (is_root(cg, c)) {
        v = slot_load(cg, w, c);
    } else {
        int n = LLVMGetNumOperands(c);
        LLVMValueRef base = materialize(cg, w, LLVMGetOperand(c, 0)), idx[16];
        if (n - 1 > 16) ICE("constant GEP with %d indices", n - 1);
        for (int i = 1; i < n; i++) idx[i - 1] = LLVMGetOperand(c, i);
        v = LLVMBuildGEP2(w->b, LLVMGetGEPSourceElementType(c), base, idx, (unsigned)n - 1, "");
        LLVMSetIsInBounds(v, LLVMIsInBounds(c));
    }
    map_add(w, c, v);
    return v;
}

/* Replaces every pointer into the weights in kernel `fn` by one loaded from a slot;
 * false (and `fn` untouched) if some use of them is not a pointer that can be. */
static bool use_weight_slots(Cg *cg, LLVMValueRef fn, WeightSlots *w)
{
    if (!cg->weights_sym) return true;
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fn); bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in))
            for (int i = 0, n = LLVMGetNumOperands(in); i < n; i++) {
                LLVMValueRef op = LLVMGetOperand(in, i);
                if (op && LLVMIsConstant(op) && !slots_can_replace(cg, op)) return false;
            }
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(fn);
    w->anchor = LLVMGetFirstInstruction(entry);
    LLVMPositionBuilderBefore(w->b, w->anchor);
    for (LLVMBasicBlockRef bb = entry; bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in))
            for (int i = 0, n = LLVMGetNumOperands(in); i < n; i++) {
                LLVMValueRef op = LLVMGetOperand(in, i);
                if (op && LLVMIsConstant(op) && refs_weights(cg, op))
                    LLVMSetOperand(in, i, materialize(cg, w, op));
            }
    return true;
}

/* A cheap fingerprint of a kernel's code: per instruction its opcode, type and operand
 * count, and the values of integer constants among its operands (shapes and strides
 * are such constants). Kernels that differ in it differ; kernels that share it are
 * compared instruction by instruction (cg_same_code), which decides. */
static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static uint64_t fingerprint(LLVMValueRef fn)
{
    uint64_t h = mix(0, LLVMCountParams(fn));
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(fn); bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in)) {
            int n = LLVMGetNumOperands(in);
            h = mix(h, (uint64_t)LLVMGetInstructionOpcode(in) << 32 ^
                           (uint64_t)LLVMGetTypeKind(LLVMTypeOf(in)) << 16 ^ (uint64_t)n);
            for (int i = 0; i < n; i++) {
                LLVMValueRef op = LLVMGetOperand(in, i);
                if (op && LLVMIsAConstantInt(op) &&
                    LLVMGetIntTypeWidth(LLVMTypeOf(op)) <= 64)
                    h = mix(h, (uint64_t)LLVMConstIntGetZExtValue(op));
            }
        }
    return h;
}

/* The kernel's IR from its parameter list on (its name is not part of its code). */
static char *kernel_text(LLVMValueRef fn)
{
    char *text = LLVMPrintValueToString(fn);
    const char *code = strstr(text, "(ptr ");
    if (!code) ICE("kernel without parameters:\n%s", text);
    char *copy = ir_xstrdup(code);
    LLVMDisposeMessage(text);
    return copy;
}

/* Whether kernels a and b are the same code. With CNNC_CHECK_DEDUP set (the tests set
 * it), their printed IR must agree with the comparison, or the compiler stops. */
static bool same_kernel(LLVMValueRef a, LLVMValueRef b)
{
    bool same = cg_same_code(a, b);
    const char *check = getenv("CNNC_CHECK_DEDUP");
    if (check && *check && strcmp(check, "0")) {
        char *x = kernel_text(a), *y = kernel_text(b);
        bool printed = !strcmp(x, y);
        if (printed != same)
            ICE("kernels %s and %s: compared %s, printed %s:\n%s\n%s", LLVMGetValueName(a),
                LLVMGetValueName(b), same ? "the same" : "different",
                printed ? "the same" : "different", x, y);
        free(x);
        free(y);
    }
    return same;
}

/* The kernel that runs node `id` (just built as k.fn): k.fn itself, or an identical kernel
 * built before, k.fn then deleted. `w` receives the weight pointers to pass in its slots. */
static LLVMValueRef dedup_kernel(Cg *cg, Dedup *d, int32_t id, CgKernel k, WeightSlots *w)
{
    memset(w, 0, sizeof *w);
    w->b = d->b;
    w->first = cg->g->nodes[id].ninputs + 1 + cg_extra_slots(&cg->g->nodes[id]);
    cg->args = LLVMGetParam(k.fn, 0);
    if (!use_weight_slots(cg, k.fn, w)) return k.fn;
    uint64_t h = fingerprint(k.fn);
    for (int32_t i = 0; i < d->n; i++) {
        SeenKernel *s = &d->k[i];
        if (s->hash == h && s->items == k.items && same_kernel(s->fn, k.fn)) {
            LLVMDeleteFunction(k.fn);
            return s->fn;
        }
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 64;
        d->k = ir_xrealloc(d->k, (size_t)d->cap * sizeof *d->k);
    }
    d->k[d->n++] = (SeenKernel){h, k.items, k.fn};
    return k.fn;
}

static void weight_slots_free(WeightSlots *w)
{
    free(w->root);
    free(w->from);
    free(w->to);
}

static void dedup_free(Dedup *d)
{
    free(d->k);
    LLVMDisposeBuilder(d->b);
}

/* ---- the run function ---------------------------------------------------- */

/* The kernels `run` calls, in execution order. */
typedef struct KernelList {
    int32_t *node;
    int64_t *items;
    int32_t n;
} KernelList;

typedef struct Run {
    LLVMValueRef fn, pool, arena;
    LLVMValueRef *in, *out; /* the caller's buffers, loaded once */
    LLVMValueRef run_kernel;
    LLVMTypeRef run_kernel_ty;
} Run;

static LLVMValueRef byte_offset(Cg *cg, LLVMValueRef base, int64_t off)
{
    if (!off) return base;
    LLVMValueRef idx = cg_i64(cg, off);
    return LLVMBuildInBoundsGEP2(cg->b, LLVMInt8TypeInContext(cg->ctx), base, &idx, 1, "");
}

/* Where node `id`'s value lives, following views to the storage they share. */
static LLVMValueRef value_ptr(Cg *cg, const Run *r, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    int64_t off = 0;
    while (nd->mem.kind == MEM_ALIAS) {
        off += nd->mem.offset;
        nd = &cg->g->nodes[nd->inputs[0]];
    }
    switch (nd->mem.kind) {
    case MEM_ARENA:
        return byte_offset(cg, r->arena, off + nd->mem.offset);
    case MEM_INPUT:
        return byte_offset(cg, r->in[nd->mem.index], off + nd->mem.offset);
    case MEM_OUTPUT:
        return byte_offset(cg, r->out[nd->mem.index], off + nd->mem.offset);
    case MEM_WEIGHTS: { /* a parameter read as data (dense of a constant): its raw values */
        if (!nd->data)
            ICE("parameter '%s' has no data", nd->name);
        char name[256];
        snprintf(name, sizeof name, "%s.raw", nd->name);
        return byte_offset(cg, cg_weights(cg, name, nd->data, ir_numel(&nd->type)), off);
    }
    case MEM_UNPLANNED:
    case MEM_ALIAS:
    case MEM_INLINED:
        break;
    }
    ICE("value of node '%s' has no memory planned", nd->name);
}

static LLVMValueRef load_slot(Cg *cg, LLVMValueRef array, int32_t i)
{
    LLVMValueRef idx = cg_i64(cg, i);
    LLVMValueRef slot = LLVMBuildInBoundsGEP2(cg->b, cg->t_ptr, array, &idx, 1, "");
    LLVMValueRef v = LLVMBuildLoad2(cg->b, cg->t_ptr, slot, "buf");
    LLVMSetAlignment(v, 8);
    return v;
}

static void run_begin(Cg *cg, Run *r)
{
    LLVMTypeRef p[4] = {cg->t_ptr, cg->t_ptr, cg->t_ptr, cg->t_ptr};
    r->fn = LLVMAddFunction(cg->mod, "run", LLVMFunctionType(cg->t_void, p, 4, 0));
    LLVMSetLinkage(r->fn, LLVMInternalLinkage);
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, r->fn, "entry"));
    r->pool = LLVMGetParam(r->fn, 0);
    r->arena = LLVMGetParam(r->fn, 1);
    int32_t nin = ir_num_inputs(cg->g), nout = cg->g->noutputs;
    r->in = ir_xcalloc((size_t)nin + 1, sizeof *r->in);
    r->out = ir_xcalloc((size_t)nout + 1, sizeof *r->out);
    for (int32_t i = 0; i < nin; i++)
        r->in[i] = load_slot(cg, LLVMGetParam(r->fn, 2), i);
    for (int32_t i = 0; i < nout; i++)
        r->out[i] = load_slot(cg, LLVMGetParam(r->fn, 3), i);
    LLVMTypeRef q[5] = {cg->t_ptr, cg->t_i32, cg->t_i64, cg->t_ptr, cg->t_ptr};
    r->run_kernel_ty = LLVMFunctionType(cg->t_void, q, 5, 0);
    r->run_kernel = LLVMAddFunction(cg->mod, "rt_run_kernel", r->run_kernel_ty);
}

/* Fills a stack array with the output and input pointers of node `id` and
 * hands the kernel, number `seq` of the table, to rt_run_kernel. */
static void run_call(Cg *cg, const Run *r, int32_t id, int32_t seq, CgKernel k,
                     const WeightSlots *w)
{
    const Node *nd = &cg->g->nodes[id];
    LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
    LLVMPositionBuilder(cg->b, LLVMGetEntryBasicBlock(r->fn),
                        LLVMGetFirstInstruction(LLVMGetEntryBasicBlock(r->fn)));
    int32_t extra = cg_extra_slots(nd);
    LLVMTypeRef at = LLVMArrayType(cg->t_ptr, (unsigned)(nd->ninputs + 1 + extra + w->n));
    LLVMValueRef args = LLVMBuildAlloca(cg->b, at, "args");
    LLVMPositionBuilderAtEnd(cg->b, here);
    /* A conv or maxpool computing its input 0 (fuse_dw.c, fuse_scale.c, fuse_pool.c) reads
     * what that input reads: a conv's input; a product's value, and its scale in the
     * extra slot. */
    const Node *in = ir_inlined_input(nd) >= 0 ? &cg->g->nodes[nd->inputs[0]] : NULL;
    bool scaled = in && nd->op == OP_CONV2D && nd->attrs.conv.scaled_in;
    for (int32_t i = 0; i <= nd->ninputs + extra; i++) {
        int32_t v = i == 0 ? id : i <= nd->ninputs ? nd->inputs[i - 1] : -1;
        if (in && !scaled && i == 1)
            v = in->inputs[0];
        if (scaled && (i == 1 || i > nd->ninputs)) {
            int32_t k = ir_channel_scale_operand(cg->g, in);
            v = in->inputs[i == 1 ? 1 - k : k];
        }
        /* A parameter the kernel takes from its packed weights is not passed again. */
        bool unread = i < 64 && !(cg->args_read >> i & 1) && cg->g->nodes[v].op == OP_PARAM;
        LLVMValueRef p = unread ? LLVMConstNull(cg->t_ptr) : value_ptr(cg, r, v);
        LLVMValueRef idx = cg_i64(cg, i);
        LLVMValueRef slot = LLVMBuildInBoundsGEP2(cg->b, cg->t_ptr, args, &idx, 1, "");
        LLVMSetAlignment(LLVMBuildStore(cg->b, p, slot), 8);
    }
    for (int32_t j = 0; j < w->n; j++) {
        LLVMValueRef idx = cg_i64(cg, w->first + j);
        LLVMValueRef slot = LLVMBuildInBoundsGEP2(cg->b, cg->t_ptr, args, &idx, 1, "");
        LLVMSetAlignment(LLVMBuildStore(cg->b, w->root[j], slot), 8);
    }
    LLVMValueRef a[5] = {r->pool, LLVMConstInt(cg->t_i32, (unsigned)seq, 0),
                         cg_i64(cg, k.items), k.fn, args};
    LLVMBuildCall2(cg->b, r->run_kernel_ty, r->run_kernel, a, 5, "");
}

/* Copies graph output k (plain) to the caller's buffer, item by item when it
 * lives inside a concat's buffer. */
static void run_copy_output(Cg *cg, const Run *r, int32_t k)
{
    int32_t id = cg->g->outputs[k].node;
    const TensorType *t = &cg->g->nodes[id].type;
    if (t->layout != LAYOUT_PLAIN)
        ICE("graph output '%s' is not in the plain layout", cg->g->outputs[k].name);
    int64_t n = t->rank ? t->dims[0] : 1, item = n ? ir_numel(t) / n : 0;
    int64_t stride = cg_item_stride(cg, id);
    LLVMValueRef src = value_ptr(cg, r, id);
    if (stride == item || n <= 1) {
        LLVMBuildMemCpy(cg->b, r->out[k], 4, src, 4, cg_i64(cg, ir_numel(t) * 4));
        return;
    }
    for (int64_t i = 0; i < n; i++)
        LLVMBuildMemCpy(cg->b, byte_offset(cg, r->out[k], i * item * 4), 4,
                        byte_offset(cg, src, i * stride * 4), 4, cg_i64(cg, item * 4));
}

/* ---- the order of a kernel's work items --------------------------------- */

/* Each thread runs one contiguous range of a kernel's work items (rt_parallel_for), and
 * the direct convs' items go image by image, row by row: the last rows a thread wrote
 * are those still in its L2 when the next kernel starts. A conv with a wider kernel than
 * 1×1 reads each input row for several output rows, across rows pages apart where the
 * hardware prefetchers stop (the Winograd kernel a run of tiles at a time, each row of
 * the run once): from L3 or memory it waits for them. So a direct conv whose output such
 * a conv reads runs its range backwards (cg_item), and leaves in L2 the rows the reader,
 * running forwards, reads first; the reader of one that runs backwards runs forwards.
 * ResNet-50, 2 threads (Intel Xeon, AVX-512), cnnrun --bench medians of interleaved
 * rounds: the 1×1 convs before the Winograd convs backwards, batch 1 25.35 -> 24.59 ms,
 * batch 8 170.2 -> 167.6 (10 rounds); then also those before the stride-2 and the
 * batch-1 direct 3×3 convs, batch 1 24.68 -> 24.02 (8 rounds; in the other order 24.29
 * -> 23.90), batch 8 168.2 -> 163.9. With --profile, layer3's Winograd convs took
 * 0.81-0.95 of their time at batch 1, the direct 3×3 convs 0.95-0.98, the 1×1 convs
 * before them 0.98-1.06 of theirs. (Every kernel against the one before it, forwards and
 * backwards in turn, lost as much elsewhere: the first conv, reading the image
 * backwards, 1.13 times as long. The Winograd kernel runs forwards: along VGG-16's and
 * ResNet-18's chains of Winograd convs, alternating, no change was measured, and a
 * chain's equal kernels would no longer be one.) */

/* back[i]: node i's kernel runs backwards (above); the caller frees it. From the last
 * node to the first, so that a conv's own order is settled before its input's. */
static bool *plan_backwards(const Cg *cg)
{
    const Graph *g = cg->g;
    bool *back = ir_xcalloc((size_t)g->nnodes + 1, sizeof *back);
    for (int32_t j = g->nnodes - 1; j >= 0; j--) {
        const Node *n = &g->nodes[j];
        const ConvAttrs *a = &n->attrs.conv;
        if (n->op != OP_CONV2D || back[j] || a->groups != 1 ||
            (a->kernel[0] == 1 && a->kernel[1] == 1) || n->mem.kind == MEM_INLINED)
            continue;
        int32_t w = (int32_t)(cg_storage_of(cg, n->inputs[0], NULL) - g->nodes);
        if (g->nodes[w].op == OP_CONV2D && !cg_runs_winograd(cg, w))
            back[w] = true;
    }
    return back;
}

static bool build_run(Cg *cg, LLVMValueRef *run_fn, KernelList *kl)
{
    Run r;
    run_begin(cg, &r);
    kl->node = ir_xcalloc((size_t)cg->g->nnodes + 1, sizeof *kl->node);
    kl->items = ir_xcalloc((size_t)cg->g->nnodes + 1, sizeof *kl->items);
    kl->n = 0;
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(cg->ctx, r.fn, "body");
    LLVMBuildBr(cg->b, body);
    Dedup dd = {.b = LLVMCreateBuilderInContext(cg->ctx)};
    bool *backwards = plan_backwards(cg);
    for (int32_t i = 0; i < cg->g->nnodes; i++) {
        cg->reverse = backwards[i];
        CgKernel k = emit_node(cg, i);
        cg->reverse = false;
        if (cg->diag->nerrors) break;
        if (!k.fn || k.items <= 0) continue;
        WeightSlots w;
        k.fn = dedup_kernel(cg, &dd, i, k, &w);
        LLVMPositionBuilderAtEnd(cg->b, body);
        run_call(cg, &r, i, kl->n, k, &w);
        weight_slots_free(&w);
        kl->node[kl->n] = i;
        kl->items[kl->n++] = k.items;
        body = LLVMGetInsertBlock(cg->b);
    }
    LLVMPositionBuilderAtEnd(cg->b, body);
    for (int32_t k = 0; k < cg->g->noutputs && !cg->diag->nerrors; k++)
        run_copy_output(cg, &r, k);
    LLVMBuildRetVoid(cg->b);
    dedup_free(&dd);
    free(backwards);
    free(r.in);
    free(r.out);
    *run_fn = r.fn;
    return cg->diag->nerrors == 0;
}

/* ---- the model description ---------------------------------------------- */

LLVMValueRef cg_const_string(Cg *cg, const char *s)
{
    LLVMValueRef init = LLVMConstStringInContext(cg->ctx, s, (unsigned)strlen(s), 0);
    LLVMValueRef g = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), ".name");
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    return g;
}

static LLVMTypeRef tensor_type(Cg *cg)
{
    LLVMTypeRef f[4] = {cg->t_ptr, cg->t_i32, cg->t_i32, LLVMArrayType(cg->t_i64, RT_MAX_RANK)};
    return LLVMStructTypeInContext(cg->ctx, f, 4, 0);
}

static LLVMValueRef tensor_const(Cg *cg, const char *name, const TensorType *t)
{
    LLVMValueRef dims[RT_MAX_RANK];
    for (int32_t i = 0; i < RT_MAX_RANK; i++)
        dims[i] = cg_i64(cg, i < t->rank ? t->dims[i] : 0);
    LLVMValueRef f[4] = {cg_const_string(cg, name), LLVMConstInt(cg->t_i32, (unsigned)t->rank, 0),
                         LLVMConstInt(cg->t_i32, 0, 0), LLVMConstArray(cg->t_i64, dims, RT_MAX_RANK)};
    return LLVMConstNamedStruct(tensor_type(cg), f, 4);
}

/* The RtTensor array of the graph's inputs (outputs: false) or outputs. */
static LLVMValueRef tensor_table(Cg *cg, bool inputs)
{
    const Graph *g = cg->g;
    int32_t n = inputs ? ir_num_inputs(g) : g->noutputs;
    LLVMValueRef *elems = ir_xcalloc((size_t)n + 1, sizeof *elems);
    for (int32_t i = 0; i < n; i++) {
        int32_t id = inputs ? ir_input_node(g, i) : g->outputs[i].node;
        const char *name = inputs ? g->nodes[id].name : g->outputs[i].name;
        elems[i] = tensor_const(cg, name, &g->nodes[id].type);
    }
    LLVMValueRef init = LLVMConstArray(tensor_type(cg), elems, (unsigned)n);
    free(elems);
    LLVMValueRef gv = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), inputs ? "inputs" : "outputs");
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
}

/* ---- the kernel table ---------------------------------------------------- */

static LLVMTypeRef kernel_info_type(Cg *cg)
{
    LLVMTypeRef f[4] = {cg->t_ptr, cg->t_ptr, cg->t_i64, cg->t_i64};
    return LLVMStructTypeInContext(cg->ctx, f, 4, 0);
}

/* The RtKernelInfo array of the kernels `run` calls, in that order. */
static LLVMValueRef kernel_table(Cg *cg, const KernelList *kl)
{
    LLVMValueRef *elems = ir_xcalloc((size_t)kl->n + 1, sizeof *elems);
    for (int32_t i = 0; i < kl->n; i++) {
        const Node *nd = &cg->g->nodes[kl->node[i]];
        char op[128];
        LLVMValueRef f[4] = {cg_const_string(cg, nd->name ? nd->name : ""),
                             cg_const_string(cg, ir_node_label(nd, op, sizeof op)),
                             cg_i64(cg, ir_node_flops(cg->g, nd)), cg_i64(cg, kl->items[i])};
        elems[i] = LLVMConstNamedStruct(kernel_info_type(cg), f, 4);
    }
    LLVMValueRef init = LLVMConstArray(kernel_info_type(cg), elems, (unsigned)kl->n);
    free(elems);
    LLVMValueRef gv = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), "kernels");
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
}

/* The structs built field by field below must be cnnc/abi.h's as the target
 * lays them out (the runtime is compiled for the same target). */
void cg_check_layout(Cg *cg, LLVMTypeRef t, const char *name, const size_t *at, unsigned n,
                     size_t size)
{
    LLVMTargetDataRef dl = LLVMGetModuleDataLayout(cg->mod);
    for (unsigned i = 0; i < n; i++)
        if (LLVMOffsetOfElement(dl, t, i) != at[i])
            ICE("%s field %u is at %llu for the target, %zu in cnnc/abi.h", name, i,
                (unsigned long long)LLVMOffsetOfElement(dl, t, i), at[i]);
    if (LLVMABISizeOfType(dl, t) != size)
        ICE("%s is %llu bytes for the target, %zu in cnnc/abi.h", name,
            (unsigned long long)LLVMABISizeOfType(dl, t), size);
}

static void check_model_layout(Cg *cg, LLVMTypeRef mt)
{
    static const size_t at[15] = {
        offsetof(RtModel, abi_version), offsetof(RtModel, ninputs), offsetof(RtModel, noutputs),
        offsetof(RtModel, pad_), offsetof(RtModel, inputs), offsetof(RtModel, outputs),
        offsetof(RtModel, arena_bytes), offsetof(RtModel, run), offsetof(RtModel, nkernels),
        offsetof(RtModel, pad2_), offsetof(RtModel, kernels), offsetof(RtModel, weights),
        offsetof(RtModel, weights_bytes), offsetof(RtModel, weights_hash),
        offsetof(RtModel, scratch_bytes),
    };
    static const size_t tensor_at[4] = {offsetof(RtTensor, name), offsetof(RtTensor, rank),
                                        offsetof(RtTensor, pad_), offsetof(RtTensor, dims)};
    static const size_t kernel_at[4] = {offsetof(RtKernelInfo, name), offsetof(RtKernelInfo, op),
                                        offsetof(RtKernelInfo, flops),
                                        offsetof(RtKernelInfo, items)};
    cg_check_layout(cg, mt, "RtModel", at, 15, sizeof(RtModel));
    cg_check_layout(cg, tensor_type(cg), "RtTensor", tensor_at, 4, sizeof(RtTensor));
    cg_check_layout(cg, kernel_info_type(cg), "RtKernelInfo", kernel_at, 4, sizeof(RtKernelInfo));
}

/* `const RtModel cnnc_model` (cnnc_model_NAME), hidden: the runtime linked into the
 * same shared object is its only reader. */
static void build_model(Cg *cg, LLVMValueRef run_fn, const KernelList *kl)
{
    LLVMTypeRef i32 = cg->t_i32;
    LLVMTypeRef f[15] = {i32, i32, i32, i32, cg->t_ptr, cg->t_ptr, cg->t_i64, cg->t_ptr,
                         i32, i32, cg->t_ptr, cg->t_ptr, cg->t_i64, cg->t_i64, cg->t_i64};
    LLVMTypeRef mt = LLVMStructTypeInContext(cg->ctx, f, 15, 0);
    check_model_layout(cg, mt);
    LLVMValueRef v[15] = {
        LLVMConstInt(i32, RT_ABI_VERSION, 0),
        LLVMConstInt(i32, (unsigned)ir_num_inputs(cg->g), 0),
        LLVMConstInt(i32, (unsigned)cg->g->noutputs, 0),
        LLVMConstInt(i32, 0, 0),
        tensor_table(cg, true),
        tensor_table(cg, false),
        cg_i64(cg, cg->g->arena_bytes),
        run_fn,
        LLVMConstInt(i32, (unsigned)kl->n, 0),
        LLVMConstInt(i32, 0, 0),
        kernel_table(cg, kl),
        cg->weights_sym ? cg->weights_sym : LLVMConstNull(cg->t_ptr),
        cg_i64(cg, cg->blob ? cg->blob->size : 0),
        LLVMConstInt(cg->t_i64, cg_weights_hash(cg), 0),
        cg_i64(cg, cg->scratch_bytes),
    };
    char sym[64];
    LLVMValueRef gv = LLVMAddGlobal(cg->mod, mt, cg_symbol(cg, CG_MODEL_SYMBOL, sym, sizeof sym));
    LLVMSetInitializer(gv, LLVMConstNamedStruct(mt, v, 15));
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetVisibility(gv, LLVMHiddenVisibility);
    LLVMSetAlignment(gv, 8);
}

/* The kernels are explicit vector code with their loops already unrolled and tiled: what
 * they need of LLVM is allocas to registers, index arithmetic folded and shared, loops
 * rotated and invariant loads hoisted, redundant loads removed. -O1 and -O2 run just
 * those passes (a third of the time of LLVM's -O2 pipeline, code as fast); -O3 runs LLVM's
 * whole -O3 pipeline, -O0 none. */
#define LEAN_PASSES                                                                                \
    "function(sroa,early-cse<memssa>,instcombine,simplifycfg,loop(loop-rotate),"                   \
    "loop-mssa(licm),gvn,instcombine,simplifycfg)"

/* The optimization passes of level `opt`, after `prefix` (module passes, "" for none). */
static void pass_pipeline(char *buf, size_t n, const char *prefix, int opt)
{
    if (opt == 1 || opt == 2)
        snprintf(buf, n, "%s%s", prefix, LEAN_PASSES);
    else
        snprintf(buf, n, "%sdefault<O%d>", prefix, opt <= 0 ? 0 : 3);
}

static LLVMErrorRef run_passes(LLVMModuleRef m, LLVMTargetMachineRef tm, const char *passes,
                               int opt)
{
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, opt >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(po, opt >= 2);
    LLVMErrorRef e = LLVMRunPasses(m, passes, tm, po);
    LLVMDisposePassBuilderOptions(po);
    return e;
}

static void verify(Cg *cg)
{
    char *msg = NULL;
    if (LLVMVerifyModule(cg->mod, LLVMReturnStatusAction, &msg))
        ICE("generated module is invalid: %s", msg);
    LLVMDisposeMessage(msg);
}

/* The module is optimized once, when first emitted or printed: cnnc -o optimizes it in
 * parts instead (cg_emit_objects), each part by a thread of its own. */
static bool optimize(Cg *cg, char *err, size_t n)
{
    if (cg->optimized) return true;
    double t0 = cg_seconds();
    char passes[1024];
    pass_pipeline(passes, sizeof passes, "", cg->opt_level);
    LLVMErrorRef e = run_passes(cg->mod, cg->tm, passes, cg->opt_level);
    if (e) {
        char *m = LLVMGetErrorMessage(e);
        snprintf(err, n, "LLVM optimization failed: %s", m);
        LLVMDisposeErrorMessage(m);
        return false;
    }
    cg->optimized = true;
    cg->times.optimize += cg_seconds() - t0;
    return true;
}

bool cg_lower(Cg *cg, const Graph *g, const CgTarget *t, Diag *d)
{
    double t0 = cg_seconds();
    if (!init_cg(cg, g, t, d)) return false;
    cg->opt_level = t ? t->opt_level : 2;
    LLVMValueRef run_fn;
    KernelList kl = {0};
    bool ok = build_run(cg, &run_fn, &kl);
    if (ok) build_model(cg, run_fn, &kl);
    free(kl.node);
    free(kl.items);
    if (ok) verify(cg);
    cg->times.lower += cg_seconds() - t0;
    return ok;
}

void cg_free(Cg *cg)
{
    cg_weights_free(cg);
    if (cg->b) LLVMDisposeBuilder(cg->b);
    if (cg->mod) LLVMDisposeModule(cg->mod);
    if (cg->ctx) LLVMContextDispose(cg->ctx);
    if (cg->tm) LLVMDisposeTargetMachine(cg->tm);
    free(cg->llvm_error);
    memset(cg, 0, sizeof *cg);
}

/* Code generation rewrites the IR it is given, so each emission works on a copy: the
 * module stays as lowered, and every emission (object for the JIT, object for model.so,
 * assembly to read) produces the same code. The copy is cheap: weights are not in it.
 * Memory, not a file: LLVM ends the process on a failed write to a file of its own. */
LLVMMemoryBufferRef cg_emit_memory(Cg *cg, LLVMCodeGenFileType kind, char *err, size_t n)
{
    if (!optimize(cg, err, n)) return NULL;
    double t0 = cg_seconds();
    char *msg = NULL;
    LLVMMemoryBufferRef buf = NULL;
    LLVMModuleRef copy = LLVMCloneModule(cg->mod);
    bool bad = LLVMTargetMachineEmitToMemoryBuffer(cg->tm, copy, kind, &msg, &buf);
    LLVMDisposeModule(copy);
    if (!bad && cg->llvm_error[0]) {
        LLVMDisposeMemoryBuffer(buf);
        bad = true;
    }
    cg->times.codegen += cg_seconds() - t0;
    if (bad) {
        snprintf(err, n, "code generation failed: %s", msg ? msg : cg->llvm_error);
        LLVMDisposeMessage(msg);
        cg->llvm_error[0] = 0;
        return NULL;
    }
    return buf;
}

/* ---- optimization and code generation in parts, across threads ----------- */

/* A part is a copy of the module in which only the functions it owns keep their bodies
 * (the others become declarations): each is optimized and compiled to an object of its
 * own, in a context of its own, so the parts go on in parallel, and the linker joins the
 * objects. Functions are dealt to parts by a fixed rule (largest first, to the part with
 * the fewest instructions so far; `run` and the data to part 0), so the objects are the
 * same whatever the number of threads. Kernels get hidden, global names (cnnc.NAME.kernel
 * with the model's name: the three models of a training model.so link together) for
 * `run` to reach them from another object. */

/* Instructions per part below which splitting costs more than it saves. */
#define PART_MIN_INSTRUCTIONS 4000

typedef struct Part {
    const char *bitcode;
    size_t bitcode_len;
    const uint8_t *owner; /* part of each function, in the module's order */
    int32_t index, nfns, opt;
    LLVMTargetMachineRef tm;
    LLVMMemoryBufferRef obj;
    char error[CG_ERROR_LEN]; /* also the context's first diagnostic */
    double optimize, codegen;
} Part;

static void part_fail(Part *p, const char *what, char *msg)
{
    if (!p->error[0]) snprintf(p->error, sizeof p->error, "%s: %s", what, msg ? msg : "");
}

/* Part i of `parts`, on whichever thread ir_parallel_for gives it: two threads share
 * four parts two and two, whichever finishes first taking the next. */
static void part_run(void *parts, int32_t i)
{
    Part *p = &((Part *)parts)[i];
    double t0 = cg_seconds();
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMContextSetDiagnosticHandler(ctx, on_llvm_diag, p->error);
    LLVMMemoryBufferRef mb =
        LLVMCreateMemoryBufferWithMemoryRange(p->bitcode, p->bitcode_len, "part", 0);
    LLVMModuleRef m;
    if (LLVMParseBitcodeInContext2(ctx, mb, &m)) {
        part_fail(p, "reading a part of the module", NULL);
        LLVMDisposeMemoryBuffer(mb);
        LLVMContextDispose(ctx);
        return;
    }
    LLVMDisposeMemoryBuffer(mb);
    int32_t k = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f), k++)
        if (!LLVMIsDeclaration(f) && (k >= p->nfns || p->owner[k] != p->index))
            LLVMSetLinkage(f, LLVMAvailableExternallyLinkage);
    if (p->index != 0) /* the data is part 0's */
        for (LLVMValueRef g = LLVMGetFirstGlobal(m); g; g = LLVMGetNextGlobal(g))
            if (!LLVMIsDeclaration(g) && LLVMGetLinkage(g) == LLVMExternalLinkage)
                LLVMSetLinkage(g, LLVMAvailableExternallyLinkage);
    char passes[1024];
    pass_pipeline(passes, sizeof passes, "elim-avail-extern,globaldce,", p->opt);
    LLVMErrorRef e = run_passes(m, p->tm, passes, p->opt);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        part_fail(p, "LLVM optimization failed", msg);
        LLVMDisposeErrorMessage(msg);
    }
    double t1 = cg_seconds();
    char *msg = NULL;
    if (!e && LLVMTargetMachineEmitToMemoryBuffer(p->tm, m, LLVMObjectFile, &msg, &p->obj)) {
        part_fail(p, "code generation failed", msg);
        p->obj = NULL;
    }
    LLVMDisposeMessage(msg);
    if (p->error[0] && p->obj) {
        LLVMDisposeMemoryBuffer(p->obj);
        p->obj = NULL;
    }
    LLVMDisposeModule(m);
    LLVMContextDispose(ctx);
    p->optimize = t1 - t0;
    p->codegen = cg_seconds() - t1;
}

static int64_t instructions(LLVMValueRef f)
{
    int64_t n = 0;
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(f); bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in))
            n++;
    return n;
}

/* Deals the module's defined functions to at most CG_MAX_PARTS parts (owner[i], in module
 * order); returns the number of parts. */
static int32_t partition(Cg *cg, uint8_t *owner, int32_t nfns, LLVMValueRef run_fn)
{
    int64_t *cost = ir_xcalloc((size_t)nfns + 1, sizeof *cost), total = 0;
    int32_t i = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(cg->mod); f; f = LLVMGetNextFunction(f), i++)
        total += cost[i] = instructions(f);
    int32_t parts = (int32_t)(total / PART_MIN_INSTRUCTIONS);
    parts = parts < 1 ? 1 : parts > CG_MAX_PARTS ? CG_MAX_PARTS : parts;
    int64_t load[CG_MAX_PARTS] = {0};
    bool *done = ir_xcalloc((size_t)nfns + 1, sizeof *done);
    i = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(cg->mod); f; f = LLVMGetNextFunction(f), i++)
        if (f == run_fn || !cost[i]) owner[i] = 0, load[0] += cost[i], done[i] = true;
    for (;;) {
        int32_t big = -1, least = 0;
        for (i = 0; i < nfns; i++)
            if (!done[i] && (big < 0 || cost[i] > cost[big])) big = i;
        if (big < 0) break;
        for (int32_t k = 1; k < parts; k++)
            if (load[k] < load[least]) least = k;
        owner[big] = (uint8_t)least;
        load[least] += cost[big];
        done[big] = true;
    }
    free(done);
    free(cost);
    return parts;
}

/* The bitcode the parts start from: the module with every kernel hidden and global. */
static LLVMMemoryBufferRef part_bitcode(Cg *cg)
{
    LLVMModuleRef m = LLVMCloneModule(cg->mod);
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
        if (LLVMIsDeclaration(f) || LLVMGetLinkage(f) != LLVMInternalLinkage) continue;
        size_t len;
        const char *name = LLVMGetValueName2(f, &len);
        char *global = ir_xmalloc(len + 64);
        /* A dot: no C symbol of the runtime can have the name. */
        snprintf(global, len + 64, "cnnc.%s%s%.*s", cg->name, cg->name[0] ? "." : "", (int)len,
                 name);
        LLVMSetValueName2(f, global, strlen(global));
        free(global);
        LLVMSetLinkage(f, LLVMExternalLinkage);
        LLVMSetVisibility(f, LLVMHiddenVisibility);
    }
    LLVMMemoryBufferRef b = LLVMWriteBitcodeToMemoryBuffer(m);
    LLVMDisposeModule(m);
    return b;
}

int32_t cg_emit_objects(Cg *cg, LLVMMemoryBufferRef *objs, char *err, size_t n)
{
    int32_t nfns = 0;
    LLVMValueRef run_fn = LLVMGetNamedFunction(cg->mod, "run");
    for (LLVMValueRef f = LLVMGetFirstFunction(cg->mod); f; f = LLVMGetNextFunction(f))
        nfns++;
    uint8_t *owner = ir_xcalloc((size_t)nfns + 1, 1);
    int32_t nparts = cg->optimized || !run_fn ? 1 : partition(cg, owner, nfns, run_fn);
    if (nparts == 1) {
        free(owner);
        objs[0] = cg_emit_memory(cg, LLVMObjectFile, err, n);
        return objs[0] ? 1 : 0;
    }
    double t0 = cg_seconds();
    LLVMMemoryBufferRef bc = part_bitcode(cg);
    Part parts[CG_MAX_PARTS];
    LLVMTargetRef target = LLVMGetTargetMachineTarget(cg->tm);
    char *triple = LLVMGetTargetMachineTriple(cg->tm), *cpu = LLVMGetTargetMachineCPU(cg->tm);
    char *features = LLVMGetTargetMachineFeatureString(cg->tm);
    int opt = cg->opt_level;
    LLVMCodeGenOptLevel lv = opt <= 0   ? LLVMCodeGenLevelNone
                             : opt == 1 ? LLVMCodeGenLevelLess
                             : opt == 2 ? LLVMCodeGenLevelDefault
                                        : LLVMCodeGenLevelAggressive;
    for (int32_t p = 0; p < nparts; p++) {
        parts[p] = (Part){.bitcode = LLVMGetBufferStart(bc), .bitcode_len = LLVMGetBufferSize(bc),
                          .owner = owner, .index = p, .nfns = nfns, .opt = opt};
        parts[p].tm = LLVMCreateTargetMachine(target, triple, cpu, features, lv, LLVMRelocPIC,
                                              LLVMCodeModelDefault);
    }
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    ir_parallel_for(nparts, ir_compile_threads(), part_run, parts);
    int32_t ok = nparts;
    double slowest = 0, opt_time = 0, cg_time = 0;
    for (int32_t p = 0; p < nparts; p++) {
        objs[p] = parts[p].obj;
        if (!parts[p].obj && ok) snprintf(err, n, "%s", parts[p].error), ok = 0;
        if (parts[p].optimize + parts[p].codegen > slowest) {
            slowest = parts[p].optimize + parts[p].codegen;
            opt_time = parts[p].optimize;
            cg_time = parts[p].codegen;
        }
        LLVMDisposeTargetMachine(parts[p].tm);
    }
    double wall = cg_seconds() - t0;
    /* The wall time of the parts, split as the slowest part's was. */
    cg->times.optimize += slowest > 0 ? wall * opt_time / slowest : 0;
    cg->times.codegen += slowest > 0 ? wall * cg_time / slowest : wall;
    LLVMDisposeMemoryBuffer(bc);
    free(owner);
    if (!ok)
        for (int32_t p = 0; p < nparts; p++)
            if (objs[p]) LLVMDisposeMemoryBuffer(objs[p]), objs[p] = NULL;
    return ok;
}

char *cg_print_ir(Cg *cg)
{
    char err[CG_ERROR_LEN];
    if (!optimize(cg, err, sizeof err)) ICE("%s", err);
    return LLVMPrintModuleToString(cg->mod);
}
