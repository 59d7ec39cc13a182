/* train.c: kernels of the ops of a training step, on plain values: the
 * elementwise rules (activation derivatives, dropout masks, the optimizers'
 * updates, mse_grad) streamed in vectors; batch-norm statistics and gradients
 * per channel; pooling gradients per (n, c) plane, so that no two work items
 * write the same element; the losses per row; and the copies and sums of
 * reshape_as, slice_grad, bias_grad and reduce_as. */
#include <math.h>

#include "cg.h"

#define CHUNK 16384 /* elements per work item of a streaming kernel */

/* ---- small helpers -------------------------------------------------------- */

static LLVMValueRef fk(Cg *cg, float v, int32_t lanes)
{
    return cg_splat(cg, cg_f32(cg, v), lanes);
}

static LLVMValueRef vadd(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildFAdd(cg->b, a, b, "");
}

static LLVMValueRef vsub(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildFSub(cg->b, a, b, "");
}

static LLVMValueRef vmul(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildFMul(cg->b, a, b, "");
}

static LLVMValueRef vdiv(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildFDiv(cg->b, a, b, "");
}

static LLVMValueRef fcmp(Cg *cg, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildFCmp(cg->b, p, a, b, "");
}

static LLVMValueRef sel(Cg *cg, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(cg->b, c, a, b, "");
}

static LLVMValueRef icmp(Cg *cg, LLVMIntPredicate p, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildICmp(cg->b, p, a, b, "");
}

static LLVMValueRef get(Cg *cg, LLVMValueRef var)
{
    return LLVMBuildLoad2(cg->b, LLVMGetAllocatedType(var), var, "");
}

static void put(Cg *cg, LLVMValueRef var, LLVMValueRef v)
{
    LLVMBuildStore(cg->b, v, var);
}

/* A stack variable of `lanes` floats. */
static LLVMValueRef fvar(Cg *cg, int32_t lanes, const char *name)
{
    return cg_var(cg, lanes > 1 ? LLVMVectorType(cg->t_f32, (unsigned)lanes) : cg->t_f32, name);
}

static LLVMValueRef load_at(Cg *cg, LLVMValueRef base, LLVMValueRef i, int32_t lanes)
{
    return cg_load(cg, cg_gep(cg, base, i), lanes);
}

static void store_at(Cg *cg, LLVMValueRef v, LLVMValueRef base, LLVMValueRef i)
{
    cg_store(cg, v, cg_gep(cg, base, i));
}

/* Elements per batch item when stored contiguously. */
static int64_t dense_item(const TensorType *t)
{
    return t->rank && t->dims[0] ? ir_numel(t) / t->dims[0] : ir_numel(t);
}

/* `contig` of plain_ok: the output (bit 0) and input k (bit k + 1) that must be
 * stored contiguously (not a batch item of a concat's buffer). */
#define CONTIG_OUT 1u
#define CONTIG_IN0 2u
#define CONTIG_ALL (~0u)

/* The node and its inputs are plain (the training graphs are), those of `contig`
 * stored contiguously; else an error at the node. */
static bool plain_ok(Cg *cg, int32_t id, uint32_t contig)
{
    const Node *nd = &cg->g->nodes[id];
    bool ok = nd->type.layout == LAYOUT_PLAIN;
    for (int32_t k = 0; k < nd->ninputs; k++) {
        const Node *x = &cg->g->nodes[nd->inputs[k]];
        ok = ok && x->type.layout == LAYOUT_PLAIN;
        if (contig >> (k + 1) & 1 && x->type.rank > 1)
            ok = ok && cg_item_stride(cg, nd->inputs[k]) == dense_item(&x->type);
    }
    if (contig & CONTIG_OUT && nd->type.rank > 1)
        ok = ok && cg_item_stride(cg, id) == dense_item(&nd->type);
    if (!ok)
        ir_error(cg->diag, nd->loc, "%s of these layouts is not supported by the CPU backend",
                 ir_ops[nd->op].name);
    return ok;
}

/* ln(x) for x > 0 (Cephes logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)), a
 * degree-9 polynomial in m - 1); +inf and NaN pass through. */
static LLVMValueRef log_(Cg *cg, LLVMValueRef x)
{
    LLVMBuilderRef b = cg->b;
    LLVMValueRef bits = LLVMBuildBitCast(b, x, cg->t_i32, "");
    LLVMValueRef e = LLVMBuildSub(b, LLVMBuildLShr(b, bits, LLVMConstInt(cg->t_i32, 23, 0), ""),
                                  LLVMConstInt(cg->t_i32, 126, 0), "");
    LLVMValueRef mb =
        LLVMBuildOr(b, LLVMBuildAnd(b, bits, LLVMConstInt(cg->t_i32, 0x807fffff, 0), ""),
                    LLVMConstInt(cg->t_i32, 0x3f000000, 0), "");
    LLVMValueRef m = LLVMBuildBitCast(b, mb, cg->t_f32, ""); /* [0.5, 1) */
    LLVMValueRef small = fcmp(cg, LLVMRealOLT, m, cg_f32(cg, 0.707106781186547524f));
    e = LLVMBuildSub(b, e, LLVMBuildZExt(b, small, cg->t_i32, ""), "");
    m = vsub(cg, sel(cg, small, vadd(cg, m, m), m), cg_f32(cg, 1.0f));
    static const float p[] = {7.0376836292e-2f,  -1.1514610310e-1f, 1.1676998740e-1f,
                              -1.2420140846e-1f, 1.4249322787e-1f,  -1.6668057665e-1f,
                              2.0000714765e-1f,  -2.4999993993e-1f, 3.3333331174e-1f};
    LLVMValueRef z = vmul(cg, m, m), y = cg_f32(cg, p[0]);
    for (int i = 1; i < 9; i++)
        y = cg_fma(cg, y, m, cg_f32(cg, p[i]));
    y = vmul(cg, vmul(cg, y, m), z);
    LLVMValueRef fe = LLVMBuildSIToFP(b, e, cg->t_f32, "");
    y = cg_fma(cg, fe, cg_f32(cg, -2.12194440e-4f), y);
    y = cg_fma(cg, z, cg_f32(cg, -0.5f), y);
    LLVMValueRef r = cg_fma(cg, fe, cg_f32(cg, 0.693359375f), vadd(cg, m, y));
    return sel(cg, fcmp(cg, LLVMRealOLT, x, cg_f32(cg, INFINITY)), r, x);
}

/* ---- elementwise rules ---------------------------------------------------- */

/* The state of a streaming kernel: inputs 0..nbig-1 are shaped like the
 * output; the others (hyper-parameters, rng) are loaded once, as scalars. */
typedef struct Ew {
    const Node *nd;
    int32_t nbig;
    LLVMValueRef out, in[4]; /* the current chunk of each */
    LLVMValueRef first;      /* logical index of the chunk's first element */
    LLVMValueRef s[3];       /* the scalars */
    LLVMValueRef key;        /* dropout: the hash of rng and salt */
} Ew;

/* d act(x) / dx, as ir_act_deriv. */
static LLVMValueRef act_deriv(Cg *cg, LLVMValueRef x, Op act, float a, float b)
{
    int32_t l = cg_lanes_of(x);
    LLVMValueRef one = fk(cg, 1.0f, l), zero = fk(cg, 0.0f, l), s;
    switch (act) {
    case OP_NO_ACT: return one;
    case OP_RELU: return sel(cg, fcmp(cg, LLVMRealOGT, x, zero), one, zero);
    case OP_CLIP: {
        LLVMValueRef in = LLVMBuildAnd(cg->b, fcmp(cg, LLVMRealOGT, x, fk(cg, a, l)),
                                       fcmp(cg, LLVMRealOLT, x, fk(cg, b, l)), "");
        return sel(cg, in, one, zero);
    }
    case OP_SIGMOID:
        s = cg_act(cg, x, OP_SIGMOID, 0.0f, 0.0f);
        return vmul(cg, s, vsub(cg, one, s));
    case OP_TANH: s = cg_act(cg, x, OP_TANH, 0.0f, 0.0f); return vsub(cg, one, vmul(cg, s, s));
    case OP_SILU:
        s = cg_act(cg, x, OP_SIGMOID, 0.0f, 0.0f);
        return vmul(cg, s, cg_fma(cg, x, vsub(cg, one, s), one));
    case OP_LEAKY_RELU: return sel(cg, fcmp(cg, LLVMRealOGT, x, zero), one, fk(cg, a, l));
    case OP_HARDSWISH: {
        LLVMValueRef mid = cg_fma(cg, x, fk(cg, 1.0f / 3.0f, l), fk(cg, 0.5f, l));
        LLVMValueRef hi = sel(cg, fcmp(cg, LLVMRealOLE, x, fk(cg, 3.0f, l)), mid, one);
        return sel(cg, fcmp(cg, LLVMRealOLT, x, fk(cg, -3.0f, l)), zero, hi);
    }
    case OP_HARDSIGMOID: {
        LLVMValueRef in = LLVMBuildAnd(cg->b, fcmp(cg, LLVMRealOGT, x, fk(cg, -3.0f, l)),
                                       fcmp(cg, LLVMRealOLT, x, fk(cg, 3.0f, l)), "");
        return sel(cg, in, fk(cg, 1.0f / 6.0f, l), zero);
    }
    case OP_AFFINE: return fk(cg, a, l);
    case OP_GELU: {
        LLVMValueRef x2 = vmul(cg, x, x);
        if (a == 0.0f) {
            LLVMValueRef cdf =
                cg_act(cg, vmul(cg, x, fk(cg, 0.70710678118654752f, l)), OP_ERF, 0.0f, 0.0f);
            LLVMValueRef pdf = cg_exp(cg, vmul(cg, x2, fk(cg, -0.5f, l)));
            return cg_fma(cg, vmul(cg, x, pdf), fk(cg, 0.39894228040143268f, l),
                          vmul(cg, fk(cg, 0.5f, l), vadd(cg, one, cdf)));
        }
        LLVMValueRef k = fk(cg, 0.79788456080286536f, l);
        LLVMValueRef u = vmul(cg, k, cg_fma(cg, vmul(cg, x2, x), fk(cg, 0.044715f, l), x));
        LLVMValueRef t = cg_act(cg, u, OP_TANH, 0.0f, 0.0f);
        LLVMValueRef du = vmul(cg, k, cg_fma(cg, x2, fk(cg, 3.0f * 0.044715f, l), one));
        LLVMValueRef hx = vmul(cg, fk(cg, 0.5f, l), x);
        return cg_fma(cg, vmul(cg, hx, vsub(cg, one, vmul(cg, t, t))), du,
                      vmul(cg, fk(cg, 0.5f, l), vadd(cg, one, t)));
    }
    case OP_ERF:
        return vmul(cg, fk(cg, 1.12837916709551257f, l),
                    cg_exp(cg, LLVMBuildFNeg(cg->b, vmul(cg, x, x), "")));
    case OP_SQRT: return vdiv(cg, fk(cg, 0.5f, l), cg_call1(cg, "llvm.sqrt", x));
    case OP_EXP: return cg_exp(cg, x);
    case OP_ABS:
        return sel(cg, fcmp(cg, LLVMRealOGT, x, zero), one,
                   sel(cg, fcmp(cg, LLVMRealOLT, x, zero), fk(cg, -1.0f, l), zero));
    default: break;
    }
    ICE("no derivative for activation %d", (int)act);
}

/* g = grad + weight_decay * param (coupled weight decay). */
static LLVMValueRef decayed(Cg *cg, const OptimAttrs *o, LLVMValueRef grad, LLVMValueRef param)
{
    if (o->weight_decay == 0.0f || o->decoupled)
        return grad;
    return cg_fma(cg, param, fk(cg, o->weight_decay, cg_lanes_of(grad)), grad);
}

/* ir_dropout_word: the f32 integer as a uint32, 0 outside [0, 2^32) and for NaN. */
static LLVMValueRef dropout_word(Cg *cg, LLVMValueRef v)
{
    LLVMValueRef ok = LLVMBuildAnd(cg->b, fcmp(cg, LLVMRealOGE, v, cg_f32(cg, 0.0f)),
                                   fcmp(cg, LLVMRealOLT, v, cg_f32(cg, 4294967296.0f)), "");
    return LLVMBuildFPToUI(cg->b, sel(cg, ok, v, cg_f32(cg, 0.0f)), cg->t_i32, "word");
}

static LLVMValueRef ik(Cg *cg, uint32_t v, int32_t lanes)
{
    LLVMValueRef c = LLVMConstInt(cg->t_i32, v, 0), e[64];
    if (lanes <= 1)
        return c;
    for (int32_t i = 0; i < lanes; i++)
        e[i] = c;
    return LLVMConstVector(e, (unsigned)lanes);
}

/* `v` (an integer or float scalar) in every one of `lanes` lanes. */
static LLVMValueRef splat_any(Cg *cg, LLVMValueRef v, int32_t lanes)
{
    if (lanes <= 1)
        return v;
    LLVMTypeRef t = LLVMVectorType(LLVMTypeOf(v), (unsigned)lanes);
    LLVMValueRef x =
        LLVMBuildInsertElement(cg->b, LLVMGetUndef(t), v, LLVMConstInt(cg->t_i32, 0, 0), "");
    return LLVMBuildShuffleVector(cg->b, x, LLVMGetUndef(t),
                                  LLVMConstNull(LLVMVectorType(cg->t_i32, (unsigned)lanes)), "");
}

/* seed * 0x9E3779B1 ^ step * 0x85EBCA77 ^ salt * 0xC2B2AE3D of ir_dropout_keep, from rng. */
static LLVMValueRef dropout_key(Cg *cg, const Node *nd, LLVMValueRef seed, LLVMValueRef step)
{
    LLVMBuilderRef b = cg->b;
    LLVMValueRef k = LLVMBuildMul(b, dropout_word(cg, seed), ik(cg, 0x9E3779B1u, 1), "");
    k = LLVMBuildXor(b, k, LLVMBuildMul(b, dropout_word(cg, step), ik(cg, 0x85EBCA77u, 1), ""), "");
    return LLVMBuildXor(b, k, ik(cg, (uint32_t)nd->attrs.dropout.salt * 0xC2B2AE3Du, 1), "key");
}

/* The mask of dropout_train and dropout_grad at the elements index..index+lanes-1:
 * 1 / (1 - p) where ir_dropout_keep keeps them, else 0, hashed in uint32 vectors. */
static LLVMValueRef dropout_scale(Cg *cg, Ew *e, LLVMValueRef index, int32_t lanes)
{
    LLVMBuilderRef b = cg->b;
    float p = e->nd->attrs.dropout.p;
    LLVMValueRef i = splat_any(cg, index, lanes);
    if (lanes > 1) {
        LLVMValueRef steps[64];
        for (int32_t k = 0; k < lanes; k++)
            steps[k] = LLVMConstInt(cg->t_i64, (unsigned long long)k, 0);
        i = LLVMBuildAdd(b, i, LLVMConstVector(steps, (unsigned)lanes), "");
    }
    LLVMTypeRef it = lanes > 1 ? LLVMVectorType(cg->t_i32, (unsigned)lanes) : cg->t_i32;
    LLVMValueRef hi = LLVMBuildLShr(b, i, splat_any(cg, cg_i64(cg, 32), lanes), "");
    hi = LLVMBuildMul(b, LLVMBuildTrunc(b, hi, it, ""), ik(cg, 0x27D4EB2Fu, lanes), "");
    LLVMValueRef h =
        LLVMBuildXor(b, splat_any(cg, e->key, lanes), LLVMBuildTrunc(b, i, it, ""), "");
    h = LLVMBuildXor(b, h, hi, "");
    static const uint32_t mix[2] = {0x85EBCA6Bu, 0xC2B2AE35u};
    static const uint32_t shift[3] = {16, 13, 16};
    for (int32_t r = 0; r < 3; r++) {
        h = LLVMBuildXor(b, h, LLVMBuildLShr(b, h, ik(cg, shift[r], lanes), ""), "");
        if (r < 2)
            h = LLVMBuildMul(b, h, ik(cg, mix[r], lanes), "");
    }
    LLVMTypeRef ft = lanes > 1 ? LLVMVectorType(cg->t_f32, (unsigned)lanes) : cg->t_f32;
    LLVMValueRef u = LLVMBuildUIToFP(b, LLVMBuildLShr(b, h, ik(cg, 8, lanes), ""), ft, "");
    u = vmul(cg, u, fk(cg, 0x1p-24f, lanes));
    LLVMValueRef keep = fcmp(cg, LLVMRealOGE, u, fk(cg, p, lanes));
    return sel(cg, keep, fk(cg, (float)(1.0 / (1.0 - (double)p)), lanes), fk(cg, 0.0f, lanes));
}

/* The rule of e->nd on the loaded operands x (lanes wide) at logical `index`. */
static LLVMValueRef ew_rule(Cg *cg, Ew *e, const LLVMValueRef *x, LLVMValueRef index, int32_t lanes)
{
    const Node *nd = e->nd;
    const OptimAttrs *o = &nd->attrs.optim;
    LLVMValueRef one = fk(cg, 1.0f, lanes);
    switch (nd->op) {
    case OP_ACT_GRAD: {
        const ActGradAttrs *a = &nd->attrs.actgrad;
        return vmul(cg, x[0], act_deriv(cg, x[1], a->act, a->a, a->b));
    }
    case OP_MSE_GRAD:
        return vmul(cg, vsub(cg, x[0], x[1]),
                    fk(cg, (float)(2.0 / (double)ir_numel(&nd->type)), lanes));
    case OP_DROPOUT_TRAIN:
    case OP_DROPOUT_GRAD: return vmul(cg, x[0], dropout_scale(cg, e, index, lanes));
    case OP_SGD_MOMENTUM: { /* buf, grad, param; steps before this one (0: buf = g) */
        LLVMValueRef g = decayed(cg, o, x[1], x[2]);
        LLVMValueRef m = cg_fma(cg, x[0], fk(cg, o->momentum, lanes),
                                vmul(cg, g, fk(cg, 1.0f - o->dampening, lanes)));
        return sel(cg, fcmp(cg, LLVMRealOEQ, e->s[1], cg_f32(cg, 0.0f)), g, m);
    }
    case OP_SGD_STEP: { /* param, grad, new buf; lr */
        LLVMValueRef g = decayed(cg, o, x[1], x[0]), d = g;
        if (o->nesterov)
            d = cg_fma(cg, x[2], fk(cg, o->momentum, lanes), g);
        else if (o->momentum != 0.0f)
            d = x[2];
        return vsub(cg, x[0], vmul(cg, cg_splat(cg, e->s[0], lanes), d));
    }
    case OP_ADAM_M: { /* m, grad, param */
        LLVMValueRef g = decayed(cg, o, x[1], x[2]);
        return cg_fma(cg, x[0], fk(cg, o->beta1, lanes),
                      vmul(cg, g, fk(cg, 1.0f - o->beta1, lanes)));
    }
    case OP_ADAM_V: { /* v, grad, param */
        LLVMValueRef g = decayed(cg, o, x[1], x[2]);
        return cg_fma(cg, x[0], fk(cg, o->beta2, lanes),
                      vmul(cg, vmul(cg, g, g), fk(cg, 1.0f - o->beta2, lanes)));
    }
    case OP_ADAM_STEP: { /* param, new m, new v; lr, bc1, bc2 */
        LLVMValueRef p = x[0], lr = cg_splat(cg, e->s[0], lanes);
        if (o->decoupled && o->weight_decay != 0.0f)
            p = vmul(cg, p, vsub(cg, one, vmul(cg, lr, fk(cg, o->weight_decay, lanes))));
        LLVMValueRef step = vdiv(cg, lr, cg_splat(cg, e->s[1], lanes));
        LLVMValueRef denom = vdiv(cg, cg_call1(cg, "llvm.sqrt", x[2]),
                                  cg_call1(cg, "llvm.sqrt", cg_splat(cg, e->s[2], lanes)));
        denom = vadd(cg, denom, fk(cg, o->eps, lanes));
        return vsub(cg, p, vmul(cg, step, vdiv(cg, x[1], denom)));
    }
    default: break;
    }
    ICE("no elementwise training rule for op %s", ir_ops[nd->op].name);
}

static void ew_body(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes)
{
    Ew *e = ctx;
    LLVMValueRef x[4];
    for (int32_t k = 0; k < e->nbig; k++)
        x[k] = load_at(cg, e->in[k], i, lanes);
    LLVMValueRef index = cg_iadd(cg, e->first, i);
    store_at(cg, ew_rule(cg, e, x, index, lanes), e->out, i);
}

/* Items are (batch item, chunk), as eltwise.c streams; the scalar operands
 * (hyper-parameters [3], rng [2]) are loaded before the loop. */
static CgKernel emit_elementwise(Cg *cg, int32_t id, int32_t nbig)
{
    const Node *nd = &cg->g->nodes[id];
    if (!plain_ok(cg, id, 0))
        return (CgKernel){0};
    const TensorType *t = &nd->type;
    bool flat = t->rank <= 1 || ir_ops[nd->op].attrs == AK_OPTIM; /* no batch: parameters */
    int64_t n = flat ? 1 : t->dims[0], per = n ? ir_numel(t) / n : 0;
    int64_t chunks = (per + CHUNK - 1) / CHUNK;
    Ew e = {.nd = nd, .nbig = nbig};
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in[4];
    for (int32_t k = 0; k < nd->ninputs; k++)
        in[k] = cg_input_ptr(cg, id, k);
    for (int32_t k = nbig; k < nd->ninputs; k++)
        for (int64_t j = 0; j < 3 && j < ir_numel(&cg->g->nodes[nd->inputs[k]].type); j++)
            e.s[j] = load_at(cg, in[k], cg_i64(cg, j), 1);
    if (nd->op == OP_DROPOUT_TRAIN || nd->op == OP_DROPOUT_GRAD)
        e.key = dropout_key(cg, nd, e.s[0], e.s[1]);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "it");
    LLVMValueRef b, c;
    cg_divmod(cg, it.iv, chunks, &b, &c);
    LLVMValueRef start = cg_imul(cg, c, CHUNK);
    LLVMValueRef left = LLVMBuildSub(cg->b, cg_i64(cg, per), start, "");
    LLVMValueRef len =
        sel(cg, icmp(cg, LLVMIntSLT, left, cg_i64(cg, CHUNK)), left, cg_i64(cg, CHUNK));
    e.out = cg_gep(cg, out, cg_iadd(cg, cg_imul(cg, b, cg_item_stride(cg, id)), start));
    for (int32_t k = 0; k < nbig; k++) {
        int64_t s = cg_item_stride(cg, nd->inputs[k]);
        e.in[k] = cg_gep(cg, in[k], cg_iadd(cg, cg_imul(cg, b, s), start));
    }
    e.first = cg_iadd(cg, cg_imul(cg, b, per), start);
    cg_vec_loop(cg, len, cg->vec, ew_body, &e);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, n * chunks};
}

static CgKernel emit_copy(Cg *cg, int32_t id);

/* ---- per-channel kernels: batch norm, bias_grad ---------------------------- */

/* Values seen as [N, C, S] (S: a channel's positions, contiguous; batch items
 * `item` apart). An item owns one channel (S > 1: vectors along S), or, when
 * S is 1, `vec` neighbouring channels (one lane each) or one leftover channel. */
typedef struct Chan {
    Cg *cg;
    const Node *nd;
    int32_t id;
    int64_t N, C, S;
    int32_t nt;
    LLVMValueRef base[4]; /* the values walked: [0] the output when mapping */
    int64_t item[4];
    LLVMValueRef c0;     /* the item's first channel */
    int32_t L;           /* its channels (lanes of the per-channel values) */
    LLVMValueRef par[4]; /* per-channel values, L lanes */
    int64_t M;           /* N * S: positions per channel */
    bool out0;           /* base[0] is the output, not read */
} Chan;

/* Per-channel value `lanes` wide (a splat of a single channel's). */
static LLVMValueRef par(Chan *k, int32_t i, int32_t lanes)
{
    return k->L == lanes ? k->par[i] : cg_splat(k->cg, k->par[i], lanes);
}

/* `L` floats of a [.., C] vector at row `row` (0: mean, 1: variance of stats). */
static LLVMValueRef chan_vec(Chan *k, LLVMValueRef p, int64_t row)
{
    return load_at(k->cg, p, cg_iadd(k->cg, k->c0, cg_i64(k->cg, row * k->C)), k->L);
}

/* Terms to add up at one place: x[t] is value t loaded there, `lanes` wide. */
typedef void (*ChanTerms)(Chan *k, const LLVMValueRef *x, int32_t lanes, LLVMValueRef *terms);
/* The value to store at one place of value 0 from values 1.. loaded there. */
typedef LLVMValueRef (*ChanMap)(Chan *k, const LLVMValueRef *x, int32_t lanes);

typedef struct ChanWalk {
    Chan *k;
    int32_t first, nsum; /* values loaded from `first` on */
    ChanTerms terms;
    ChanMap map;
    LLVMValueRef ptr[4], vacc[2], sacc[2];
} ChanWalk;

static void walk_body(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes)
{
    ChanWalk *w = ctx;
    LLVMValueRef x[4] = {NULL, NULL, NULL, NULL}, t[2];
    for (int32_t j = w->first; j < w->k->nt; j++)
        x[j] = load_at(cg, w->ptr[j], i, lanes);
    if (w->map) {
        store_at(cg, w->map(w->k, x, lanes), w->ptr[0], i);
        return;
    }
    w->terms(w->k, x, lanes, t);
    for (int32_t j = 0; j < w->nsum; j++) {
        LLVMValueRef acc = lanes == w->k->L ? w->sacc[j] : w->vacc[j];
        put(cg, acc, vadd(cg, get(cg, acc), t[j]));
    }
}

/* Over the item's channels at every (n, s): sums of `terms` (map NULL) into
 * sums[] (L lanes each), or stores of `map`. */
static void chan_walk(Chan *k, int32_t nsum, ChanTerms terms, ChanMap map, LLVMValueRef *sums)
{
    Cg *cg = k->cg;
    ChanWalk w = {k, k->out0 ? 1 : 0, nsum, terms, map, {0}, {0}, {0}};
    for (int32_t j = 0; j < nsum; j++) {
        w.sacc[j] = fvar(cg, k->L, "sacc");
        put(cg, w.sacc[j], fk(cg, 0.0f, k->L));
        if (k->S > 1) {
            w.vacc[j] = fvar(cg, cg->vec, "vacc");
            put(cg, w.vacc[j], fk(cg, 0.0f, cg->vec));
        }
    }
    CgLoop n = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, k->N), 1, "n");
    for (int32_t j = 0; j < k->nt; j++)
        w.ptr[j] = cg_gep(cg, k->base[j],
                          cg_iadd(cg, cg_imul(cg, n.iv, k->item[j]), cg_imul(cg, k->c0, k->S)));
    if (k->S > 1)
        cg_vec_loop(cg, cg_i64(cg, k->S), cg->vec, walk_body, &w);
    else
        walk_body(cg, &w, cg_i64(cg, 0), k->L);
    cg_loop_end(cg, &n);
    for (int32_t j = 0; j < nsum; j++) {
        sums[j] = get(cg, w.sacc[j]);
        if (k->S > 1)
            sums[j] = vadd(cg, cg_hsum(cg, get(cg, w.vacc[j])), sums[j]);
    }
}

typedef void (*ChanBody)(Chan *k);

/* A kernel over the channels (dim 1) of node `id`'s values `vals` (-1: the output,
 * else an input number; the last gives the shape), `body` the code of an item. */
static CgKernel chan_kernel(Cg *cg, int32_t id, const int32_t *vals, int32_t nt, ChanBody body)
{
    const Node *nd = &cg->g->nodes[id];
    if (!plain_ok(cg, id, 0))
        return (CgKernel){0};
    int32_t src = vals[nt - 1] < 0 ? id : nd->inputs[vals[nt - 1]];
    const TensorType *t = &cg->g->nodes[src].type;
    Chan k = {.cg = cg, .nd = nd, .id = id, .N = t->dims[0], .C = t->dims[1], .S = 1, .nt = nt};
    for (int32_t i = 2; i < t->rank; i++)
        k.S *= t->dims[i];
    k.M = k.N * k.S;
    k.out0 = vals[0] < 0;
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    for (int32_t j = 0; j < nt; j++) {
        k.base[j] = vals[j] < 0 ? cg_arg_ptr(cg, 0) : cg_input_ptr(cg, id, vals[j]);
        k.item[j] = cg_item_stride(cg, vals[j] < 0 ? id : nd->inputs[vals[j]]);
    }
    int64_t full = k.S > 1 ? 0 : k.C / cg->vec, items = k.S > 1 ? k.C : full + k.C % cg->vec;
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "chan");
    if (full > 0) {
        LLVMValueRef vec = icmp(cg, LLVMIntSLT, it.iv, cg_i64(cg, full));
        LLVMBasicBlockRef join = cg_if_begin(cg, vec);
        k.c0 = cg_imul(cg, it.iv, cg->vec);
        k.L = cg->vec;
        body(&k);
        cg_if_end(cg, join);
        join = cg_if_begin(cg, LLVMBuildNot(cg->b, vec, ""));
        k.c0 = LLVMBuildSub(cg->b, it.iv, cg_i64(cg, full - full * cg->vec), "");
        k.L = 1;
        body(&k);
        cg_if_end(cg, join);
    } else {
        k.c0 = k.S > 1 ? it.iv : cg_iadd(cg, it.iv, cg_i64(cg, full * cg->vec));
        k.L = 1;
        body(&k);
    }
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, items};
}

static LLVMValueRef inv_m(Chan *k)
{
    return fk(k->cg, (float)(1.0 / (double)k->M), k->L);
}

/* 1 / sqrt(var + eps), L lanes. */
static LLVMValueRef rstd_of(Chan *k, LLVMValueRef var, float eps)
{
    Cg *cg = k->cg;
    LLVMValueRef s = cg_call1(cg, "llvm.sqrt", vadd(cg, var, fk(cg, eps, k->L)));
    return vdiv(cg, fk(cg, 1.0f, k->L), s);
}

static void sum_x(Chan *k, const LLVMValueRef *x, int32_t lanes, LLVMValueRef *t)
{
    t[0] = x[0];
}

static void sum_sq_dev(Chan *k, const LLVMValueRef *x, int32_t lanes, LLVMValueRef *t)
{
    LLVMValueRef d = vsub(k->cg, x[0], par(k, 0, lanes));
    t[0] = vmul(k->cg, d, d);
}

/* bn_stats: the mean, then the mean squared deviation from it (two passes, so
 * that a mean far from zero costs no precision). */
static void bn_stats_body(Chan *k)
{
    Cg *cg = k->cg;
    LLVMValueRef out = cg_arg_ptr(cg, 0), s;
    chan_walk(k, 1, sum_x, NULL, &s);
    k->par[0] = vmul(cg, s, inv_m(k));
    chan_walk(k, 1, sum_sq_dev, NULL, &s);
    cg_store(cg, k->par[0], cg_gep(cg, out, k->c0));
    cg_store(cg, vmul(cg, s, inv_m(k)), cg_gep(cg, out, cg_iadd(cg, k->c0, cg_i64(cg, k->C))));
}

/* y = (x - par0) * par1 + par2: bn_train and batchnorm with run-time statistics. */
static LLVMValueRef norm_map(Chan *k, const LLVMValueRef *x, int32_t lanes)
{
    return cg_fma(k->cg, vsub(k->cg, x[1], par(k, 0, lanes)), par(k, 1, lanes), par(k, 2, lanes));
}

static void bn_train_body(Chan *k) /* x, stats, weight, bias */
{
    Cg *cg = k->cg;
    LLVMValueRef stats = cg_input_ptr(cg, k->id, 1);
    k->par[0] = chan_vec(k, stats, 0);
    LLVMValueRef rstd = rstd_of(k, chan_vec(k, stats, 1), k->nd->attrs.bn.eps);
    k->par[1] = vmul(cg, rstd, chan_vec(k, cg_input_ptr(cg, k->id, 2), 0));
    k->par[2] = chan_vec(k, cg_input_ptr(cg, k->id, 3), 0);
    chan_walk(k, 0, NULL, norm_map, NULL);
}

static void batchnorm_body(Chan *k) /* x, weight, bias, running mean, running variance */
{
    Cg *cg = k->cg;
    int32_t id = k->id;
    k->par[0] = chan_vec(k, cg_input_ptr(cg, id, 3), 0);
    LLVMValueRef rstd = rstd_of(k, chan_vec(k, cg_input_ptr(cg, id, 4), 0), k->nd->attrs.bn.eps);
    k->par[1] = vmul(cg, rstd, chan_vec(k, cg_input_ptr(cg, id, 1), 0));
    k->par[2] = chan_vec(k, cg_input_ptr(cg, id, 2), 0);
    chan_walk(k, 0, NULL, norm_map, NULL);
}

/* Sums of dy and of dy (x - mean), values [dy, x] or [dx, dy, x]. */
static void grad_terms(Chan *k, const LLVMValueRef *x, int32_t lanes, LLVMValueRef *t)
{
    int32_t f = k->nt - 2;
    t[0] = x[f];
    t[1] = vmul(k->cg, x[f], vsub(k->cg, x[f + 1], par(k, 0, lanes)));
}

static void bn_grad_weight_body(Chan *k) /* dy, x, stats → sum dy * xhat */
{
    Cg *cg = k->cg;
    int32_t id = k->id;
    LLVMValueRef stats = cg_input_ptr(cg, id, 2), s[2];
    k->par[0] = chan_vec(k, stats, 0);
    chan_walk(k, 2, grad_terms, NULL, s);
    LLVMValueRef rstd = rstd_of(k, chan_vec(k, stats, 1), k->nd->attrs.bn.eps);
    cg_store(cg, vmul(cg, s[1], rstd), cg_gep(cg, cg_arg_ptr(cg, 0), k->c0));
}

/* dx = a (dy - par1 - (x - mean) par2) with a = w rstd (par3). */
static LLVMValueRef bn_dx_map(Chan *k, const LLVMValueRef *x, int32_t lanes)
{
    Cg *cg = k->cg;
    LLVMValueRef v = vsub(cg, x[1], par(k, 1, lanes));
    v = vsub(cg, v, vmul(cg, vsub(cg, x[2], par(k, 0, lanes)), par(k, 2, lanes)));
    return vmul(cg, v, par(k, 3, lanes));
}

/* bn_grad_input(dy, x, stats, w): the batch-statistics backward,
 * dx = w rstd (dy - mean(dy) - xhat mean(dy xhat)). */
static void bn_grad_input_body(Chan *k)
{
    Cg *cg = k->cg;
    int32_t id = k->id;
    LLVMValueRef stats = cg_input_ptr(cg, id, 2), s[2];
    k->par[0] = chan_vec(k, stats, 0);
    chan_walk(k, 2, grad_terms, NULL, s);
    LLVMValueRef rstd = rstd_of(k, chan_vec(k, stats, 1), k->nd->attrs.bn.eps);
    k->par[1] = vmul(cg, s[0], inv_m(k));
    k->par[2] = vmul(cg, vmul(cg, vmul(cg, rstd, rstd), s[1]), inv_m(k));
    k->par[3] = vmul(cg, rstd, chan_vec(k, cg_input_ptr(cg, id, 3), 0));
    chan_walk(k, 0, NULL, bn_dx_map, NULL);
}

static void bias_grad_body(Chan *k)
{
    LLVMValueRef s;
    chan_walk(k, 1, sum_x, NULL, &s);
    cg_store(k->cg, s, cg_gep(k->cg, cg_arg_ptr(k->cg, 0), k->c0));
}

/* bias_grad over dim 1 walks dy as [N, C, S]; over another dim, as
 * [outer, C, inner] of a contiguous dy. */
static CgKernel emit_bias_grad(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *t = &cg->g->nodes[nd->inputs[0]].type;
    int32_t axis = nd->attrs.axis.axis < 0 ? nd->attrs.axis.axis + t->rank : nd->attrs.axis.axis;
    static const int32_t vals[1] = {0};
    if (t->rank == 1) /* a vector: its own sum */
        return emit_copy(cg, id);
    if (axis == 1)
        return chan_kernel(cg, id, vals, 1, bias_grad_body);
    if (!plain_ok(cg, id, CONTIG_IN0))
        return (CgKernel){0};
    Chan k = {.cg = cg, .nd = nd, .id = id, .N = 1, .C = t->dims[axis], .S = 1, .nt = 1};
    for (int32_t i = 0; i < axis; i++)
        k.N *= t->dims[i];
    for (int32_t i = axis + 1; i < t->rank; i++)
        k.S *= t->dims[i];
    k.M = k.N * k.S;
    k.item[0] = k.C * k.S;
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    k.base[0] = cg_input_ptr(cg, id, 0);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "chan");
    k.c0 = it.iv;
    k.L = 1;
    bias_grad_body(&k);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, k.C};
}

/* bn_running(running, stats, x): (1 - m) running + m batch, the variance made
 * unbiased (n / (n - 1), n the positions of a channel). One item, vectors. */
typedef struct Running {
    const Node *nd;
    LLVMValueRef out, run, stat;
    float k;
} Running;

static void running_body(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes)
{
    Running *r = ctx;
    float m = r->nd->attrs.running.momentum;
    LLVMValueRef b = vmul(cg, load_at(cg, r->stat, i, lanes), fk(cg, r->k, lanes));
    LLVMValueRef v = cg_fma(cg, load_at(cg, r->run, i, lanes), fk(cg, 1.0f - m, lanes),
                            vmul(cg, b, fk(cg, m, lanes)));
    store_at(cg, v, r->out, i);
}

static CgKernel emit_bn_running(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    if (!plain_ok(cg, id, 0))
        return (CgKernel){0};
    int64_t C = nd->type.dims[0], n = ir_numel(&cg->g->nodes[nd->inputs[2]].type) / C;
    Running r = {.nd = nd, .k = 1.0f};
    if (nd->attrs.running.which == 1)
        r.k = (float)((double)n / (double)(n - 1));
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    r.out = cg_arg_ptr(cg, 0);
    r.run = cg_input_ptr(cg, id, 0);
    r.stat = cg_gep(cg, cg_input_ptr(cg, id, 1), cg_i64(cg, nd->attrs.running.which ? C : 0));
    cg_vec_loop(cg, cg_i64(cg, C), cg->vec, running_body, &r);
    cg_kernel_end(cg);
    return (CgKernel){fn, 1};
}

/* ---- pooling gradients: one item per (n, c) plane of dx --------------------- */

typedef struct Plane {
    const Node *nd;
    int64_t H, W, OH, OW;
    LLVMValueRef dx, dy, x; /* the item's planes */
} Plane;

static LLVMValueRef lt(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return icmp(cg, LLVMIntSLT, a, b);
}

static LLVMValueRef imin(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return sel(cg, lt(cg, a, b), a, b);
}

static LLVMValueRef imax(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return sel(cg, lt(cg, a, b), b, a);
}

/* A plane filled with one value. */
typedef struct Fill {
    LLVMValueRef dst, v;
} Fill;

static void fill_body(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes)
{
    Fill *f = ctx;
    store_at(cg, cg_splat(cg, f->v, lanes), f->dst, i);
}

static void fill(Cg *cg, LLVMValueRef dst, int64_t n, LLVMValueRef v)
{
    Fill f = {dst, v};
    cg_vec_loop(cg, cg_i64(cg, n), cg->vec, fill_body, &f);
}

/* dx[at] += v */
static void accumulate(Cg *cg, LLVMValueRef dx, LLVMValueRef at, LLVMValueRef v)
{
    store_at(cg, vadd(cg, load_at(cg, dx, at, 1), v), dx, at);
}

/* Where max_pool2d's backward sends dy: the first maximum of the window in
 * row-major order (a NaN counts as a maximum, a later NaN wins, as PyTorch's
 * forward picks it), -1 for a window wholly in the padding. Taps are checked
 * against the input's bounds. */
static LLVMValueRef max_at_clipped(Cg *cg, Plane *p, LLVMValueRef h0, LLVMValueRef w0)
{
    const PoolAttrs *a = &p->nd->attrs.pool;
    LLVMValueRef best = fvar(cg, 1, "best"), at = cg_var(cg, cg->t_i64, "at");
    put(cg, best, cg_f32(cg, -INFINITY));
    put(cg, at, cg_i64(cg, -1));
    CgLoop kh = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, a->kernel[0]), 1, "kh");
    LLVMValueRef ih = cg_iadd(cg, h0, cg_imul(cg, kh.iv, a->dilation[0]));
    LLVMBasicBlockRef hj = cg_if_begin(cg, icmp(cg, LLVMIntULT, ih, cg_i64(cg, p->H)));
    CgLoop kw = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, a->kernel[1]), 1, "kw");
    LLVMValueRef iw = cg_iadd(cg, w0, cg_imul(cg, kw.iv, a->dilation[1]));
    LLVMBasicBlockRef wj = cg_if_begin(cg, icmp(cg, LLVMIntULT, iw, cg_i64(cg, p->W)));
    LLVMValueRef pos = cg_iadd(cg, cg_imul(cg, ih, p->W), iw);
    LLVMValueRef v = load_at(cg, p->x, pos, 1), cur = get(cg, at);
    LLVMValueRef take = LLVMBuildOr(cg->b, fcmp(cg, LLVMRealOGT, v, get(cg, best)),
                                    fcmp(cg, LLVMRealUNO, v, v), "");
    take = LLVMBuildOr(cg->b, take, lt(cg, cur, cg_i64(cg, 0)), "");
    put(cg, best, sel(cg, take, v, get(cg, best)));
    put(cg, at, sel(cg, take, pos, cur));
    cg_if_end(cg, wj);
    cg_loop_end(cg, &kw);
    cg_if_end(cg, hj);
    cg_loop_end(cg, &kh);
    return get(cg, at);
}

#define MAX_TAPS 64 /* windows up to this many taps are unrolled in vectors */

/* Outputs [lo, hi) along one dim whose windows lie inside the input's `in`. */
static void inside_range(int64_t in, int64_t out, int32_t k, int32_t s, int32_t pad, int32_t d,
                         int64_t *lo, int64_t *hi)
{
    *lo = (pad + s - 1) / s;
    int64_t last = in - 1 + pad - (int64_t)(k - 1) * d;
    *hi = last < 0 ? 0 : last / s + 1;
    if (*hi > out)
        *hi = out;
    if (*hi < *lo)
        *hi = *lo;
}

/* max_pool2d's backward at output (oh, ow): dy to where the maximum is. */
static void maxpool_grad_one(Cg *cg, Plane *p, LLVMValueRef oh, LLVMValueRef ow)
{
    const PoolAttrs *a = &p->nd->attrs.pool;
    LLVMValueRef h0 = LLVMBuildSub(cg->b, cg_imul(cg, oh, a->stride[0]), cg_i64(cg, a->pad[0]), "");
    LLVMValueRef w0 = LLVMBuildSub(cg->b, cg_imul(cg, ow, a->stride[1]), cg_i64(cg, a->pad[1]), "");
    LLVMValueRef found = max_at_clipped(cg, p, h0, w0);
    LLVMBasicBlockRef j = cg_if_begin(cg, icmp(cg, LLVMIntSGE, found, cg_i64(cg, 0)));
    accumulate(cg, p->dx, found, load_at(cg, p->dy, cg_iadd(cg, cg_imul(cg, oh, p->OW), ow), 1));
    cg_if_end(cg, j);
}

/* max_pool2d's backward at n <= vec outputs ow0.. of row oh whose windows lie inside
 * the input: each tap a vector (strided loads of n lanes), the maxima's places found
 * with vector compares and blends, then dy added there lane by lane in ow order. */
static void maxpool_grad_vec(Cg *cg, Plane *p, LLVMValueRef oh, LLVMValueRef ow0, int32_t n)
{
    const PoolAttrs *a = &p->nd->attrs.pool;
    int32_t L = cg->vec, s = a->stride[1];
    uint32_t mask = n >= 32 ? UINT32_MAX : (UINT32_C(1) << n) - 1;
    LLVMValueRef h0 = LLVMBuildSub(cg->b, cg_imul(cg, oh, a->stride[0]), cg_i64(cg, a->pad[0]), "");
    LLVMValueRef w0 = LLVMBuildSub(cg->b, cg_imul(cg, ow0, s), cg_i64(cg, a->pad[1]), "");
    LLVMValueRef base = cg_iadd(cg, cg_imul(cg, h0, p->W), w0), steps[64], best = NULL, at = NULL;
    for (int32_t l = 0; l < L; l++)
        steps[l] = LLVMConstInt(cg->t_i32, (unsigned long long)l * (unsigned)s, 0);
    LLVMValueRef lanes = LLVMConstVector(steps, (unsigned)L);
    for (int32_t i = 0; i < a->kernel[0]; i++)
        for (int32_t j = 0; j < a->kernel[1]; j++) {
            int64_t off = (int64_t)i * a->dilation[0] * p->W + (int64_t)j * a->dilation[1];
            LLVMValueRef pos = cg_iadd(cg, base, cg_i64(cg, off));
            LLVMValueRef v = cg_load_lanes(cg, p->x, pos, s, L, mask);
            LLVMValueRef pv =
                LLVMBuildAdd(cg->b, splat_any(cg, LLVMBuildTrunc(cg->b, pos, cg->t_i32, ""), L),
                             lanes, "");
            if (!best) {
                best = v;
                at = pv;
                continue;
            }
            LLVMValueRef take =
                LLVMBuildOr(cg->b, fcmp(cg, LLVMRealOGT, v, best), fcmp(cg, LLVMRealUNO, v, v), "");
            best = sel(cg, take, v, best);
            at = sel(cg, take, pv, at);
        }
    LLVMValueRef g = cg_load_lanes(cg, p->dy, cg_iadd(cg, cg_imul(cg, oh, p->OW), ow0), 1, L, mask);
    for (int32_t l = 0; l < n; l++) {
        LLVMValueRef li = LLVMConstInt(cg->t_i32, (unsigned long long)l, 0);
        LLVMValueRef where =
            LLVMBuildSExt(cg->b, LLVMBuildExtractElement(cg->b, at, li, ""), cg->t_i64, "");
        accumulate(cg, p->dx, where, LLVMBuildExtractElement(cg->b, g, li, ""));
    }
}

/* Outputs [lo, hi) of row oh one at a time. */
static void maxpool_grad_span(Cg *cg, Plane *p, LLVMValueRef oh, int64_t lo, int64_t hi)
{
    if (lo >= hi)
        return;
    CgLoop ow = cg_loop_begin(cg, cg_i64(cg, lo), cg_i64(cg, hi), 1, "ow");
    maxpool_grad_one(cg, p, oh, ow.iv);
    cg_loop_end(cg, &ow);
}

/* Row oh of max_pool2d's backward: in vectors where the windows lie inside the
 * input (rows inside it, the columns between the borders; the last vector partly
 * filled), else one output at a time. */
static void maxpool_grad_row(Cg *cg, Plane *p, LLVMValueRef oh)
{
    const PoolAttrs *a = &p->nd->attrs.pool;
    int64_t hlo, hhi, wlo, whi, L = cg->vec;
    inside_range(p->H, p->OH, a->kernel[0], a->stride[0], a->pad[0], a->dilation[0], &hlo, &hhi);
    inside_range(p->W, p->OW, a->kernel[1], a->stride[1], a->pad[1], a->dilation[1], &wlo, &whi);
    if ((int64_t)a->kernel[0] * a->kernel[1] > MAX_TAPS || hlo >= hhi || wlo >= whi ||
        p->H * p->W >= INT32_MAX) {
        maxpool_grad_span(cg, p, oh, 0, p->OW);
        return;
    }
    int64_t vend = wlo + (whi - wlo) / L * L;
    LLVMValueRef in = LLVMBuildAnd(cg->b, icmp(cg, LLVMIntSGE, oh, cg_i64(cg, hlo)),
                                   icmp(cg, LLVMIntSLT, oh, cg_i64(cg, hhi)), "inside");
    LLVMBasicBlockRef j = cg_if_begin(cg, in);
    maxpool_grad_span(cg, p, oh, 0, wlo);
    if (vend > wlo) {
        CgLoop v = cg_loop_begin(cg, cg_i64(cg, wlo), cg_i64(cg, vend), L, "ow");
        maxpool_grad_vec(cg, p, oh, v.iv, (int32_t)L);
        cg_loop_end(cg, &v);
    }
    if (whi > vend)
        maxpool_grad_vec(cg, p, oh, cg_i64(cg, vend), (int32_t)(whi - vend));
    maxpool_grad_span(cg, p, oh, whi, p->OW);
    cg_if_end(cg, j);
    j = cg_if_begin(cg, LLVMBuildNot(cg->b, in, ""));
    maxpool_grad_span(cg, p, oh, 0, p->OW);
    cg_if_end(cg, j);
}

/* An input rectangle [hs, he) x [ws, we) and the divisor of its mean. */
typedef struct Window {
    LLVMValueRef hs, he, ws, we, divisor;
} Window;

/* avg_pool2d's window as the forward (pool.c) counts it: clipped to the
 * padded input for count_include_pad, then to the input. */
static Window avg_window(Cg *cg, Plane *p, LLVMValueRef oh, LLVMValueRef ow)
{
    const PoolAttrs *a = &p->nd->attrs.pool;
    Window w;
    LLVMValueRef hs = LLVMBuildSub(cg->b, cg_imul(cg, oh, a->stride[0]), cg_i64(cg, a->pad[0]), "");
    LLVMValueRef ws = LLVMBuildSub(cg->b, cg_imul(cg, ow, a->stride[1]), cg_i64(cg, a->pad[1]), "");
    LLVMValueRef he =
        imin(cg, cg_iadd(cg, hs, cg_i64(cg, a->kernel[0])), cg_i64(cg, p->H + a->pad[2]));
    LLVMValueRef we =
        imin(cg, cg_iadd(cg, ws, cg_i64(cg, a->kernel[1])), cg_i64(cg, p->W + a->pad[3]));
    LLVMValueRef full =
        LLVMBuildMul(cg->b, LLVMBuildSub(cg->b, he, hs, ""), LLVMBuildSub(cg->b, we, ws, ""), "");
    w.hs = imax(cg, hs, cg_i64(cg, 0));
    w.ws = imax(cg, ws, cg_i64(cg, 0));
    w.he = imin(cg, he, cg_i64(cg, p->H));
    w.we = imin(cg, we, cg_i64(cg, p->W));
    w.divisor = a->count_include_pad ? full
                                     : LLVMBuildMul(cg->b, LLVMBuildSub(cg->b, w.he, w.hs, ""),
                                                    LLVMBuildSub(cg->b, w.we, w.ws, ""), "");
    return w;
}

/* Bin i of `out` over `in`: [floor(i in / out), ceil((i + 1) in / out)). */
static void bin(Cg *cg, LLVMValueRef i, int64_t in, int64_t out, LLVMValueRef *s, LLVMValueRef *e)
{
    *s = LLVMBuildSDiv(cg->b, cg_imul(cg, i, in), cg_i64(cg, out), "");
    *e = LLVMBuildSDiv(cg->b, cg_iadd(cg, cg_imul(cg, i, in), cg_i64(cg, in + out - 1)),
                       cg_i64(cg, out), "");
}

/* The mean's backward: dy / divisor to every element of the window. */
static void mean_grad_one(Cg *cg, Plane *p, LLVMValueRef oh, LLVMValueRef ow)
{
    Window w;
    if (p->nd->op == OP_AVGPOOL_GRAD) {
        w = avg_window(cg, p, oh, ow);
    } else {
        bin(cg, oh, p->H, p->OH, &w.hs, &w.he);
        bin(cg, ow, p->W, p->OW, &w.ws, &w.we);
        w.divisor = LLVMBuildMul(cg->b, LLVMBuildSub(cg->b, w.he, w.hs, ""),
                                 LLVMBuildSub(cg->b, w.we, w.ws, ""), "");
    }
    LLVMValueRef g = load_at(cg, p->dy, cg_iadd(cg, cg_imul(cg, oh, p->OW), ow), 1);
    g = vdiv(cg, g, LLVMBuildSIToFP(cg->b, w.divisor, cg->t_f32, ""));
    CgLoop ih = cg_loop_begin(cg, w.hs, w.he, 1, "ih");
    CgLoop iw = cg_loop_begin(cg, w.ws, w.we, 1, "iw");
    accumulate(cg, p->dx, cg_iadd(cg, cg_imul(cg, ih.iv, p->W), iw.iv), g);
    cg_loop_end(cg, &iw);
    cg_loop_end(cg, &ih);
}

static CgKernel emit_pool_grad(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    if (!plain_ok(cg, id, 0))
        return (CgKernel){0};
    const TensorType *dy = &cg->g->nodes[nd->inputs[0]].type, *t = &nd->type;
    Plane p = {.nd = nd, .H = t->dims[2], .W = t->dims[3], .OH = dy->dims[2], .OW = dy->dims[3]};
    int64_t C = t->dims[1];
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef dx = cg_arg_ptr(cg, 0), g = cg_input_ptr(cg, id, 0), x = cg_input_ptr(cg, id, 1);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "plane");
    LLVMValueRef n, c;
    cg_divmod(cg, it.iv, C, &n, &c);
    LLVMValueRef plane = cg_imul(cg, c, p.H * p.W);
    p.dx = cg_gep(cg, dx, cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, id)), plane));
    p.x = cg_gep(cg, x, cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, nd->inputs[1])), plane));
    p.dy = cg_gep(cg, g,
                  cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, nd->inputs[0])),
                          cg_imul(cg, c, p.OH * p.OW)));
    if (nd->op == OP_GLOBAL_AVGPOOL_GRAD) {
        LLVMValueRef v = load_at(cg, p.dy, cg_i64(cg, 0), 1);
        fill(cg, p.dx, p.H * p.W, vdiv(cg, v, cg_f32(cg, (float)(p.H * p.W))));
    } else {
        fill(cg, p.dx, p.H * p.W, cg_f32(cg, 0.0f));
        CgLoop oh = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, p.OH), 1, "oh");
        if (nd->op == OP_MAXPOOL_GRAD) {
            maxpool_grad_row(cg, &p, oh.iv);
        } else {
            CgLoop ow = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, p.OW), 1, "ow");
            mean_grad_one(cg, &p, oh.iv, ow.iv);
            cg_loop_end(cg, &ow);
        }
        cg_loop_end(cg, &oh);
    }
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, t->dims[0] * C};
}

/* ---- losses --------------------------------------------------------------- */

typedef struct Row {
    LLVMValueRef x, y, vacc, sacc, shift, scale;
    bool is_max;
} Row;

/* Max of the row (is_max), or the sum of e^(x - shift) (storing
 * e^(x - shift) * scale to y when y is set). */
static void row_body(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes)
{
    Row *r = ctx;
    LLVMValueRef acc = lanes > 1 ? r->vacc : r->sacc, v = load_at(cg, r->x, i, lanes);
    if (r->is_max) {
        put(cg, acc, cg_max(cg, get(cg, acc), v));
        return;
    }
    LLVMValueRef e = cg_exp(cg, vsub(cg, v, cg_splat(cg, r->shift, lanes)));
    put(cg, acc, vadd(cg, get(cg, acc), e));
    if (r->y)
        store_at(cg, vmul(cg, e, cg_splat(cg, r->scale, lanes)), r->y, i);
}

static LLVMValueRef row_pass(Cg *cg, Row *r, int64_t K, bool is_max)
{
    float init = is_max ? -INFINITY : 0.0f;
    r->is_max = is_max;
    put(cg, r->vacc, fk(cg, init, cg->vec));
    put(cg, r->sacc, cg_f32(cg, init));
    cg_vec_loop(cg, cg_i64(cg, K), cg->vec, row_body, r);
    LLVMValueRef v = get(cg, r->vacc), s = get(cg, r->sacc);
    if (!is_max)
        return vadd(cg, cg_hsum(cg, v), s);
    for (int32_t i = 0; i < cg->vec; i++)
        s = cg_max(cg, s,
                   LLVMBuildExtractElement(cg->b, v, LLVMConstInt(cg->t_i32, (unsigned)i, 0), ""));
    return s;
}

/* The label of row n as an index in [0, K): one outside (the runtime rejects
 * such labels before a run) reads class 0 rather than out of bounds. */
static LLVMValueRef label_at(Cg *cg, LLVMValueRef labels, LLVMValueRef n, int64_t K)
{
    LLVMValueRef l = load_at(cg, labels, n, 1);
    LLVMValueRef ok = LLVMBuildAnd(cg->b, fcmp(cg, LLVMRealOGE, l, cg_f32(cg, 0.0f)),
                                   fcmp(cg, LLVMRealOLT, l, cg_f32(cg, (float)K)), "");
    return LLVMBuildFPToSI(cg->b, sel(cg, ok, l, cg_f32(cg, 0.0f)), cg->t_i64, "label");
}

/* softmax_xent: one item, rows in turn, the total in double; each row's loss
 * log(sum e^(x - max)) + max - x[label]. softmax_xent_grad: an item per row,
 * (softmax - onehot) / N. */
static CgKernel emit_softmax_xent(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    if (!plain_ok(cg, id, CONTIG_ALL))
        return (CgKernel){0};
    const TensorType *t = &cg->g->nodes[nd->inputs[0]].type;
    int64_t N = t->dims[0], K = t->dims[1];
    bool grad = nd->op == OP_SOFTMAX_XENT_GRAD;
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), x = cg_input_ptr(cg, id, 0),
                 lab = cg_input_ptr(cg, id, 1);
    LLVMTypeRef f64 = LLVMDoubleTypeInContext(cg->ctx);
    Row r = {.vacc = fvar(cg, cg->vec, "vacc"), .sacc = fvar(cg, 1, "sacc")};
    LLVMValueRef total = cg_var(cg, f64, "total");
    put(cg, total, LLVMConstReal(f64, 0.0));
    LLVMValueRef inv_n = cg_f32(cg, (float)(1.0 / (double)N));
    CgLoop it = cg_loop_begin(cg, grad ? cg->begin : cg_i64(cg, 0), grad ? cg->end : cg_i64(cg, N),
                              1, "row");
    r.x = cg_gep(cg, x, cg_imul(cg, it.iv, K));
    LLVMValueRef label = label_at(cg, lab, it.iv, K);
    r.shift = row_pass(cg, &r, K, true);
    if (grad) {
        r.scale = vdiv(cg, inv_n, row_pass(cg, &r, K, false));
        r.y = cg_gep(cg, out, cg_imul(cg, it.iv, K));
        cg_vec_loop(cg, cg_i64(cg, K), cg->vec, row_body, &r); /* e^(x - max) / sum / N */
        accumulate(cg, r.y, label, LLVMBuildFNeg(cg->b, inv_n, ""));
    } else {
        LLVMValueRef lse = vadd(cg, log_(cg, row_pass(cg, &r, K, false)), r.shift);
        LLVMValueRef loss = vsub(cg, lse, load_at(cg, r.x, label, 1));
        put(cg, total,
            LLVMBuildFAdd(cg->b, get(cg, total), LLVMBuildFPExt(cg->b, loss, f64, ""), ""));
    }
    cg_loop_end(cg, &it);
    if (!grad) {
        LLVMValueRef mean = LLVMBuildFDiv(cg->b, get(cg, total), LLVMConstReal(f64, (double)N), "");
        cg_store(cg, LLVMBuildFPTrunc(cg->b, mean, cg->t_f32, ""), out);
    }
    cg_kernel_end(cg);
    return (CgKernel){fn, grad ? N : 1};
}

/* mse: one item; the squares summed in f32 vectors over chunks, the chunks in double. */
typedef struct Sq {
    LLVMValueRef p, t, vacc, sacc;
} Sq;

static void sq_body(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes)
{
    Sq *q = ctx;
    LLVMValueRef d = vsub(cg, load_at(cg, q->p, i, lanes), load_at(cg, q->t, i, lanes));
    LLVMValueRef acc = lanes > 1 ? q->vacc : q->sacc;
    put(cg, acc, cg_fma(cg, d, d, get(cg, acc)));
}

static CgKernel emit_mse(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    if (!plain_ok(cg, id, CONTIG_ALL))
        return (CgKernel){0};
    int64_t count = ir_numel(&cg->g->nodes[nd->inputs[0]].type);
    LLVMTypeRef f64 = LLVMDoubleTypeInContext(cg->ctx);
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), p = cg_input_ptr(cg, id, 0), t = cg_input_ptr(cg, id, 1);
    Sq q = {.vacc = fvar(cg, cg->vec, "vacc"), .sacc = fvar(cg, 1, "sacc")};
    LLVMValueRef total = cg_var(cg, f64, "total");
    put(cg, total, LLVMConstReal(f64, 0.0));
    CgLoop c = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, count), CHUNK, "chunk");
    LLVMValueRef left = LLVMBuildSub(cg->b, cg_i64(cg, count), c.iv, "");
    LLVMValueRef len =
        sel(cg, icmp(cg, LLVMIntSLT, left, cg_i64(cg, CHUNK)), left, cg_i64(cg, CHUNK));
    q.p = cg_gep(cg, p, c.iv);
    q.t = cg_gep(cg, t, c.iv);
    put(cg, q.vacc, fk(cg, 0.0f, cg->vec));
    put(cg, q.sacc, cg_f32(cg, 0.0f));
    cg_vec_loop(cg, len, cg->vec, sq_body, &q);
    LLVMValueRef s = vadd(cg, cg_hsum(cg, get(cg, q.vacc)), get(cg, q.sacc));
    put(cg, total, LLVMBuildFAdd(cg->b, get(cg, total), LLVMBuildFPExt(cg->b, s, f64, ""), ""));
    cg_loop_end(cg, &c);
    LLVMValueRef mean = LLVMBuildFDiv(cg->b, get(cg, total), LLVMConstReal(f64, (double)count), "");
    cg_store(cg, LLVMBuildFPTrunc(cg->b, mean, cg->t_f32, ""), out);
    cg_kernel_end(cg);
    return (CgKernel){fn, 1};
}

/* ---- copies and sums of reshaping, slicing and broadcasting ---------------- */

typedef struct Copy {
    LLVMValueRef dst, src;
} Copy;

static void copy_body(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes)
{
    Copy *c = ctx;
    store_at(cg, load_at(cg, c->src, i, lanes), c->dst, i);
}

/* Input 0 copied in chunks: reshape_as where the memory plan did not make it
 * a view, bias_grad of a vector. */
static CgKernel emit_copy(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    if (!plain_ok(cg, id, CONTIG_OUT | CONTIG_IN0))
        return (CgKernel){0};
    int64_t count = ir_numel(&nd->type);
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_input_ptr(cg, id, 0);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "it");
    LLVMValueRef start = cg_imul(cg, it.iv, CHUNK);
    LLVMValueRef left = LLVMBuildSub(cg->b, cg_i64(cg, count), start, "");
    LLVMValueRef len =
        sel(cg, icmp(cg, LLVMIntSLT, left, cg_i64(cg, CHUNK)), left, cg_i64(cg, CHUNK));
    Copy c = {cg_gep(cg, out, start), cg_gep(cg, in, start)};
    cg_vec_loop(cg, len, cg->vec, copy_body, &c);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, (count + CHUNK - 1) / CHUNK};
}

/* slice_grad: per row of the dims before `axis`, zeros, dy's row, zeros. */
static CgKernel emit_slice_grad(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    if (!plain_ok(cg, id, 0))
        return (CgKernel){0};
    const TensorType *x = &nd->type, *dy = &cg->g->nodes[nd->inputs[0]].type;
    int32_t axis = nd->attrs.slice.axis < 0 ? nd->attrs.slice.axis + x->rank : nd->attrs.slice.axis;
    int64_t outer = 1, inner = 1;
    for (int32_t i = 0; i < axis; i++)
        outer *= x->dims[i];
    for (int32_t i = axis + 1; i < x->rank; i++)
        inner *= x->dims[i];
    int64_t per = outer / x->dims[0], len = x->dims[axis], part = dy->dims[axis];
    int64_t lo = nd->attrs.slice.start * inner, mid = part * inner, row = len * inner;
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_input_ptr(cg, id, 0);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "row");
    LLVMValueRef n, r;
    cg_divmod(cg, it.iv, per, &n, &r);
    LLVMValueRef o =
        cg_gep(cg, out, cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, id)), cg_imul(cg, r, row)));
    LLVMValueRef s =
        cg_gep(cg, in,
               cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, nd->inputs[0])), cg_imul(cg, r, mid)));
    if (lo > 0)
        fill(cg, o, lo, cg_f32(cg, 0.0f));
    Copy c = {cg_gep(cg, o, cg_i64(cg, lo)), s};
    cg_vec_loop(cg, cg_i64(cg, mid), cg->vec, copy_body, &c);
    if (lo + mid < row)
        fill(cg, cg_gep(cg, o, cg_i64(cg, lo + mid)), row - lo - mid, cg_f32(cg, 0.0f));
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, outer};
}

/* reduce_as(dy, x): dy's dims (size-1 ones dropped) merged into runs that x
 * keeps or was broadcast along. An item per element of x sums, over the
 * reduced runs but the last, the last run when it is reduced (contiguous:
 * vectors) or the single element. */
typedef struct Runs {
    int32_t n;
    int64_t len[IR_MAX_RANK], stride[IR_MAX_RANK];
    bool red[IR_MAX_RANK];
} Runs;

static bool runs_of(const TensorType *dy, const TensorType *x, Runs *r)
{
    int32_t shift = dy->rank - x->rank;
    r->n = 0;
    if (shift < 0)
        return false;
    for (int32_t d = 0; d < dy->rank; d++) {
        int64_t xd = d >= shift ? x->dims[d - shift] : 1;
        if (xd != 1 && xd != dy->dims[d])
            return false;
        if (dy->dims[d] == 1)
            continue;
        bool red = xd == 1;
        if (r->n && r->red[r->n - 1] == red) {
            r->len[r->n - 1] *= dy->dims[d];
            continue;
        }
        r->len[r->n] = dy->dims[d];
        r->red[r->n++] = red;
    }
    int64_t s = 1;
    for (int32_t i = r->n - 1; i >= 0; i--) {
        r->stride[i] = s;
        s *= r->len[i];
    }
    return true;
}

/* The offset in dy of index `v` decomposed over the runs with red == `red`
 * (all of them but the last when `skip_last`). */
static LLVMValueRef runs_offset(Cg *cg, const Runs *r, LLVMValueRef v, bool red, bool skip_last)
{
    LLVMValueRef off = cg_i64(cg, 0);
    for (int32_t i = r->n - 1 - (skip_last ? 1 : 0); i >= 0; i--) {
        if (r->red[i] != red)
            continue;
        LLVMValueRef q, m;
        cg_divmod(cg, v, r->len[i], &q, &m);
        off = cg_iadd(cg, off, cg_imul(cg, m, r->stride[i]));
        v = q;
    }
    return off;
}

typedef struct Red {
    LLVMValueRef src, vacc, sacc;
} Red;

static void red_body(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes)
{
    Red *d = ctx;
    LLVMValueRef acc = lanes > 1 ? d->vacc : d->sacc;
    put(cg, acc, vadd(cg, get(cg, acc), load_at(cg, d->src, i, lanes)));
}

static CgKernel emit_reduce_as(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *dy = &cg->g->nodes[nd->inputs[0]].type;
    Runs r;
    if (!runs_of(dy, &nd->type, &r)) {
        ir_error(cg->diag, nd->loc, "reduce_as: %s does not broadcast to the gradient's shape",
                 cg->g->nodes[nd->inputs[1]].name);
        return (CgKernel){0};
    }
    if (!plain_ok(cg, id, CONTIG_OUT | CONTIG_IN0))
        return (CgKernel){0};
    bool last = r.n > 0 && r.red[r.n - 1];
    int64_t inner = last ? r.len[r.n - 1] : 1, outer = 1;
    for (int32_t i = 0; i < r.n - (last ? 1 : 0); i++)
        if (r.red[i])
            outer *= r.len[i];
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_input_ptr(cg, id, 0);
    Red d = {NULL, fvar(cg, cg->vec, "vacc"), fvar(cg, 1, "sacc")};
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "elem");
    LLVMValueRef base = runs_offset(cg, &r, it.iv, false, false);
    put(cg, d.vacc, fk(cg, 0.0f, cg->vec));
    put(cg, d.sacc, cg_f32(cg, 0.0f));
    CgLoop o = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, outer), 1, "outer");
    d.src = cg_gep(cg, in, cg_iadd(cg, base, runs_offset(cg, &r, o.iv, true, last)));
    cg_vec_loop(cg, cg_i64(cg, inner), inner > 1 ? cg->vec : 1, red_body, &d);
    cg_loop_end(cg, &o);
    store_at(cg, vadd(cg, cg_hsum(cg, get(cg, d.vacc)), get(cg, d.sacc)), out, it.iv);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, ir_numel(&nd->type)};
}

/* ---- entry points ---------------------------------------------------------- */

CgKernel cg_emit_batchnorm_runtime(Cg *cg, int32_t node)
{
    static const int32_t vals[2] = {-1, 0};
    return chan_kernel(cg, node, vals, 2, batchnorm_body);
}

CgKernel cg_emit_train(Cg *cg, int32_t node)
{
    static const int32_t one[1] = {0}, two[2] = {0, 1}, out_x[2] = {-1, 0},
                         out_dy_x[3] = {-1, 0, 1};
    switch (cg->g->nodes[node].op) {
    case OP_ACT_GRAD:
    case OP_MSE_GRAD: return emit_elementwise(cg, node, 2);
    case OP_DROPOUT_TRAIN:
    case OP_DROPOUT_GRAD: return emit_elementwise(cg, node, 1);
    case OP_SGD_MOMENTUM:
    case OP_SGD_STEP:
    case OP_ADAM_M:
    case OP_ADAM_V:
    case OP_ADAM_STEP: return emit_elementwise(cg, node, 3);
    case OP_BIAS_GRAD: return emit_bias_grad(cg, node);
    case OP_BN_STATS: return chan_kernel(cg, node, one, 1, bn_stats_body);
    case OP_BN_TRAIN: return chan_kernel(cg, node, out_x, 2, bn_train_body);
    case OP_BN_GRAD_INPUT: return chan_kernel(cg, node, out_dy_x, 3, bn_grad_input_body);
    case OP_BN_GRAD_WEIGHT: return chan_kernel(cg, node, two, 2, bn_grad_weight_body);
    case OP_BN_RUNNING: return emit_bn_running(cg, node);
    case OP_MAXPOOL_GRAD:
    case OP_AVGPOOL_GRAD:
    case OP_GLOBAL_AVGPOOL_GRAD:
    case OP_ADAPTIVE_AVGPOOL_GRAD: return emit_pool_grad(cg, node);
    case OP_SOFTMAX_XENT:
    case OP_SOFTMAX_XENT_GRAD: return emit_softmax_xent(cg, node);
    case OP_MSE: return emit_mse(cg, node);
    case OP_RESHAPE_AS: return emit_copy(cg, node);
    case OP_SLICE_GRAD: return emit_slice_grad(cg, node);
    case OP_REDUCE_AS: return emit_reduce_as(cg, node);
    default: break;
    }
    ICE("no training kernel for op %s", ir_ops[cg->g->nodes[node].op].name);
}
