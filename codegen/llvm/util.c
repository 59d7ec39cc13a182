/* util.c: the building blocks kernels are written with: kernel functions,
 * counted loops, vector loads/stores, arithmetic, activations and epilogues,
 * and the constant globals that embed the weights. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cg.h"

double cg_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

LLVMValueRef cg_kernel_begin(Cg *cg, const char *name)
{
    LLVMValueRef fn = LLVMAddFunction(cg->mod, name, cg->t_kernel);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    LLVMAddAttributeAtIndex(
        fn, LLVMAttributeFunctionIndex,
        LLVMCreateEnumAttribute(cg->ctx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
    /* Without these, x86 splits 512-bit vectors on CPUs tuned for 256. */
    char width[16];
    snprintf(width, sizeof width, "%d", (int)cg->vec * 32);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(cg->ctx, "prefer-vector-width", 19, width,
                                                      (unsigned)strlen(width)));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(cg->ctx, "min-legal-vector-width", 22, width,
                                                      (unsigned)strlen(width)));
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(cg->ctx, fn, "entry");
    LLVMPositionBuilderAtEnd(cg->b, entry);
    cg->args = LLVMGetParam(fn, 0);
    cg->args_read = 0;
    cg->begin = LLVMGetParam(fn, 1);
    cg->end = LLVMGetParam(fn, 2);
    cg->scratch = LLVMGetParam(fn, 3);
    /* the thread's own scratch: no other pointer reaches it (as with a fresh allocation) */
    LLVMAddAttributeAtIndex(
        fn, 4, LLVMCreateEnumAttribute(cg->ctx, LLVMGetEnumAttributeKindForName("noalias", 7), 0));
    LLVMAddAttributeAtIndex(
        fn, 4, LLVMCreateEnumAttribute(cg->ctx, LLVMGetEnumAttributeKindForName("align", 5), 64));
    LLVMSetValueName2(cg->args, "args", 4);
    LLVMSetValueName2(cg->begin, "begin", 5);
    LLVMSetValueName2(cg->end, "end", 3);
    LLVMSetValueName2(cg->scratch, "scratch", 7);
    return fn;
}

void cg_kernel_end(Cg *cg)
{
    LLVMBuildRetVoid(cg->b);
}

LLVMValueRef cg_arg_ptr(Cg *cg, int32_t i)
{
    if (i >= 0 && i < 64) cg->args_read |= UINT64_C(1) << i;
    LLVMValueRef idx = cg_i64(cg, i);
    LLVMValueRef slot = LLVMBuildInBoundsGEP2(cg->b, cg->t_ptr, cg->args, &idx, 1, "slot");
    LLVMValueRef p = LLVMBuildLoad2(cg->b, cg->t_ptr, slot, "arg");
    LLVMSetAlignment(p, 8);
    return p;
}

LLVMValueRef cg_item(Cg *cg, LLVMValueRef iv)
{
    if (!cg->reverse)
        return iv;
    LLVMValueRef last = LLVMBuildSub(cg->b, cg->end, cg_i64(cg, 1), "");
    return LLVMBuildSub(cg->b, LLVMBuildAdd(cg->b, cg->begin, last, ""), iv, "item");
}

CgLoop cg_loop_begin(Cg *cg, LLVMValueRef lo, LLVMValueRef hi, int64_t step, const char *name)
{
    CgLoop l = {0};
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(cg->b);
    LLVMValueRef fn = LLVMGetBasicBlockParent(pre);
    l.head = LLVMAppendBasicBlockInContext(cg->ctx, fn, name);
    l.body = LLVMAppendBasicBlockInContext(cg->ctx, fn, name);
    l.exit = LLVMAppendBasicBlockInContext(cg->ctx, fn, name);
    LLVMBuildBr(cg->b, l.head);
    LLVMPositionBuilderAtEnd(cg->b, l.head);
    l.iv = LLVMBuildPhi(cg->b, cg->t_i64, name);
    LLVMAddIncoming(l.iv, &lo, &pre, 1);
    LLVMValueRef more = LLVMBuildICmp(cg->b, LLVMIntSLT, l.iv, hi, "more");
    LLVMBuildCondBr(cg->b, more, l.body, l.exit);
    LLVMPositionBuilderAtEnd(cg->b, l.body);
    l.next = cg_i64(cg, step); /* the step until cg_loop_end makes it iv + step */
    return l;
}

void cg_loop_end(Cg *cg, CgLoop *l)
{
    l->latch_from = LLVMGetInsertBlock(cg->b);
    l->next = LLVMBuildNSWAdd(cg->b, l->iv, l->next, "next");
    LLVMBuildBr(cg->b, l->head);
    LLVMAddIncoming(l->iv, &l->next, &l->latch_from, 1);
    LLVMPositionBuilderAtEnd(cg->b, l->exit);
}

void cg_vec_loop(Cg *cg, LLVMValueRef len, int32_t lanes, CgBody body, void *ctx)
{
    LLVMValueRef zero = cg_i64(cg, 0), vlen = zero;
    if (lanes > 1) {
        LLVMValueRef rem = LLVMBuildURem(cg->b, len, cg_i64(cg, lanes), "");
        vlen = LLVMBuildSub(cg->b, len, rem, "vlen");
        CgLoop v = cg_loop_begin(cg, zero, vlen, lanes, "v");
        body(cg, ctx, v.iv, lanes);
        cg_loop_end(cg, &v);
    }
    CgLoop s = cg_loop_begin(cg, vlen, len, 1, "s");
    body(cg, ctx, s.iv, 1);
    cg_loop_end(cg, &s);
}

LLVMValueRef cg_i64(Cg *cg, int64_t v)
{
    return LLVMConstInt(cg->t_i64, (unsigned long long)v, 1);
}

LLVMValueRef cg_f32(Cg *cg, float v)
{
    return LLVMConstReal(cg->t_f32, v);
}

LLVMValueRef cg_splat(Cg *cg, LLVMValueRef scalar, int32_t lanes)
{
    if (lanes <= 1) return scalar;
    LLVMTypeRef vt = LLVMVectorType(cg->t_f32, (unsigned)lanes);
    if (LLVMIsConstant(scalar)) {
        LLVMValueRef elems[64];
        for (int32_t i = 0; i < lanes; i++)
            elems[i] = scalar;
        return LLVMConstVector(elems, (unsigned)lanes);
    }
    LLVMValueRef v =
        LLVMBuildInsertElement(cg->b, LLVMGetUndef(vt), scalar, LLVMConstInt(cg->t_i32, 0, 0), "");
    LLVMValueRef mask = LLVMConstNull(LLVMVectorType(cg->t_i32, (unsigned)lanes));
    return LLVMBuildShuffleVector(cg->b, v, LLVMGetUndef(vt), mask, "splat");
}

LLVMValueRef cg_gep(Cg *cg, LLVMValueRef base, LLVMValueRef index)
{
    return LLVMBuildInBoundsGEP2(cg->b, cg->t_f32, base, &index, 1, "");
}

LLVMValueRef cg_load(Cg *cg, LLVMValueRef ptr, int32_t lanes)
{
    LLVMTypeRef t = lanes <= 1 ? cg->t_f32 : LLVMVectorType(cg->t_f32, (unsigned)lanes);
    LLVMValueRef v = LLVMBuildLoad2(cg->b, t, ptr, "");
    LLVMSetAlignment(v, 4);
    return v;
}

void cg_store(Cg *cg, LLVMValueRef v, LLVMValueRef ptr)
{
    LLVMValueRef s = LLVMBuildStore(cg->b, v, ptr);
    LLVMSetAlignment(s, 4);
}

/* An overloaded intrinsic instantiated for the type of `like`. */
static LLVMValueRef intrinsic(Cg *cg, const char *name, LLVMTypeRef like, LLVMTypeRef *fty)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id) ICE("unknown intrinsic %s", name);
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->mod, id, &like, 1);
    *fty = LLVMIntrinsicGetType(cg->ctx, id, &like, 1);
    return fn;
}

LLVMValueRef cg_call1(Cg *cg, const char *name, LLVMValueRef a)
{
    LLVMTypeRef fty;
    LLVMValueRef fn = intrinsic(cg, name, LLVMTypeOf(a), &fty);
    return LLVMBuildCall2(cg->b, fty, fn, &a, 1, "");
}

/* A read prefetch of the cache line at p into all levels (llvm.prefetch, which
 * never faults: p may point past the tensor). */
static void prefetch(Cg *cg, LLVMValueRef p, int locality, int write)
{
    LLVMTypeRef fty;
    LLVMValueRef fn = intrinsic(cg, "llvm.prefetch", LLVMTypeOf(p), &fty);
    LLVMValueRef args[4] = {p, LLVMConstInt(cg->t_i32, (unsigned long long)write, 0),
                            LLVMConstInt(cg->t_i32, (unsigned long long)locality, 0),
                            LLVMConstInt(cg->t_i32, 1, 0)};
    LLVMBuildCall2(cg->b, fty, fn, args, 4, "");
}

void cg_prefetch(Cg *cg, LLVMValueRef p)
{
    prefetch(cg, p, 3, 0);
}

void cg_prefetch_w(Cg *cg, LLVMValueRef p)
{
    prefetch(cg, p, 3, 1);
}

void cg_prefetch_l2(Cg *cg, LLVMValueRef p)
{
    prefetch(cg, p, 2, 0);
}

LLVMValueRef cg_fma(Cg *cg, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
    LLVMTypeRef fty;
    LLVMValueRef fn = intrinsic(cg, cg->fma ? "llvm.fma" : "llvm.fmuladd", LLVMTypeOf(a), &fty);
    LLVMValueRef args[3] = {a, b, c};
    return LLVMBuildCall2(cg->b, fty, fn, args, 3, "");
}

/* Compare-and-select rather than llvm.maxnum, which returns the operand that
 * is not NaN: `a < b ? b : a` is one maxps(b, a) on x86, and a NaN in `a`
 * passes as in PyTorch's relu and clamp (a NaN in `b` does not). */
LLVMValueRef cg_max(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef lt = LLVMBuildFCmp(cg->b, LLVMRealOLT, a, b, "");
    return LLVMBuildSelect(cg->b, lt, b, a, "max");
}

LLVMValueRef cg_min(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    LLVMValueRef gt = LLVMBuildFCmp(cg->b, LLVMRealOGT, a, b, "");
    return LLVMBuildSelect(cg->b, gt, b, a, "min");
}

int32_t cg_lanes_of(LLVMValueRef v)
{
    LLVMTypeRef t = LLVMTypeOf(v);
    return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? (int32_t)LLVMGetVectorSize(t) : 1;
}

/* A float constant shaped like `like` (scalar or vector). */
static LLVMValueRef fconst(Cg *cg, LLVMValueRef like, float c)
{
    return cg_splat(cg, cg_f32(cg, c), cg_lanes_of(like));
}

/* expf by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6
 * polynomial for e^r (Cephes); about 1 ulp over the clamped range. Below -88
 * the scale 2^n is 0; above ln(FLT_MAX) the result is x + inf, which is also
 * how a NaN gets through (the clamped value would be meaningless). */
LLVMValueRef cg_exp(Cg *cg, LLVMValueRef x0)
{
    LLVMBuilderRef b = cg->b;
    int32_t lanes = cg_lanes_of(x0);
    LLVMTypeRef it = lanes > 1 ? LLVMVectorType(cg->t_i32, (unsigned)lanes) : cg->t_i32;
    LLVMValueRef x = cg_min(cg, cg_max(cg, x0, fconst(cg, x0, -88.0f)), fconst(cg, x0, 88.3f));
    LLVMValueRef fx = cg_fma(cg, x, fconst(cg, x, 1.44269504088896341f), fconst(cg, x, 0.5f));
    fx = cg_call1(cg, "llvm.floor", fx);
    LLVMValueRef r = cg_fma(cg, fx, fconst(cg, x, -0.693359375f), x);
    r = cg_fma(cg, fx, fconst(cg, x, 2.12194440e-4f), r);
    static const float p[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                              4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
    LLVMValueRef y = fconst(cg, x, p[0]);
    for (int i = 1; i < 6; i++)
        y = cg_fma(cg, y, r, fconst(cg, x, p[i]));
    LLVMValueRef r2 = LLVMBuildFMul(b, r, r, "");
    y = cg_fma(cg, y, r2, LLVMBuildFAdd(b, r, fconst(cg, x, 1.0f), ""));
    LLVMValueRef n = LLVMBuildFPToSI(b, fx, it, "");
    LLVMValueRef bias = LLVMConstInt(cg->t_i32, 127, 0), sh = LLVMConstInt(cg->t_i32, 23, 0);
    if (lanes > 1) {
        LLVMValueRef bv[64], sv[64];
        for (int32_t i = 0; i < lanes; i++) {
            bv[i] = bias;
            sv[i] = sh;
        }
        bias = LLVMConstVector(bv, (unsigned)lanes);
        sh = LLVMConstVector(sv, (unsigned)lanes);
    }
    LLVMValueRef e = LLVMBuildShl(b, LLVMBuildAdd(b, n, bias, ""), sh, "");
    LLVMValueRef scale = LLVMBuildBitCast(b, e, LLVMTypeOf(x), "");
    LLVMValueRef in_range = LLVMBuildFCmp(b, LLVMRealOLE, x0, fconst(cg, x0, 88.7228f), "");
    LLVMValueRef over = LLVMBuildFAdd(b, x0, fconst(cg, x0, INFINITY), "");
    return LLVMBuildSelect(b, in_range, LLVMBuildFMul(b, y, scale, ""), over, "exp");
}

static LLVMValueRef sigmoid(Cg *cg, LLVMValueRef v)
{
    LLVMValueRef one = fconst(cg, v, 1.0f);
    LLVMValueRef e = cg_exp(cg, LLVMBuildFNeg(cg->b, v, ""));
    return LLVMBuildFDiv(cg->b, one, LLVMBuildFAdd(cg->b, one, e, ""), "sigmoid");
}

/* tanh(x) = sign(x) (1 - e^-2|x|) / (1 + e^-2|x|), and its Taylor series near
 * zero where the subtraction would lose relative precision. */
static LLVMValueRef tanh_(Cg *cg, LLVMValueRef v)
{
    LLVMBuilderRef b = cg->b;
    LLVMValueRef ax = cg_call1(cg, "llvm.fabs", v);
    LLVMValueRef one = fconst(cg, v, 1.0f);
    LLVMValueRef e = cg_exp(cg, LLVMBuildFMul(b, ax, fconst(cg, v, -2.0f), ""));
    LLVMValueRef big =
        LLVMBuildFDiv(b, LLVMBuildFSub(b, one, e, ""), LLVMBuildFAdd(b, one, e, ""), "");
    LLVMValueRef x2 = LLVMBuildFMul(b, ax, ax, "");
    LLVMValueRef s = fconst(cg, v, -17.0f / 315.0f);
    s = cg_fma(cg, s, x2, fconst(cg, v, 2.0f / 15.0f));
    s = cg_fma(cg, s, x2, fconst(cg, v, -1.0f / 3.0f));
    LLVMValueRef small = cg_fma(cg, LLVMBuildFMul(b, s, x2, ""), ax, ax);
    LLVMValueRef is_small = LLVMBuildFCmp(b, LLVMRealOLT, ax, fconst(cg, v, 0.0625f), "");
    LLVMValueRef mag = LLVMBuildSelect(b, is_small, small, big, "");
    LLVMTypeRef fty;
    LLVMValueRef fn = intrinsic(cg, "llvm.copysign", LLVMTypeOf(v), &fty);
    LLVMValueRef args[2] = {mag, v};
    return LLVMBuildCall2(b, fty, fn, args, 2, "tanh");
}

static LLVMValueRef horner(Cg *cg, const float *c, int n, LLVMValueRef t)
{
    LLVMValueRef y = fconst(cg, t, c[0]);
    for (int i = 1; i < n; i++)
        y = cg_fma(cg, y, t, fconst(cg, t, c[i]));
    return y;
}

/* erf(x) = x P(x^2) / Q(x^2) on |x| < 3.92, P of degree 6 and Q of degree 5:
 * a rational fit of relative error 1.8e-9 (on Chebyshev points, weighted
 * towards the worst, in double), which evaluates in f32 within 5.4 ulp
 * (3.2e-7 where erf nears 1), counted over every float of [1e-6, 4.5]. Past
 * 3.92 erf rounds to ±1 in f32 and is exactly that, so that gelu(-inf) is
 * -inf * 0 = NaN as in PyTorch; a NaN fails the compare and passes through
 * the polynomials. One division and 14 FMAs, against the 50 operations of
 * an exp and two polynomials that erf = 1 - e^-x^2 Q(x) takes: the 1×1
 * convs with gelu of ConvNeXt spent as long in gelu as in the convolution. */
static LLVMValueRef erf_(Cg *cg, LLVMValueRef x0)
{
    static const float p[] = {-1.279901163e-08f, 4.609080861e-06f, 3.767535673e-04f,
                              3.838617820e-03f,  5.424389243e-02f, 1.851355731e-01f,
                              1.128379226e+00f};
    static const float q[] = {6.239773938e-05f, 1.301516779e-03f, 1.543001831e-02f,
                              1.138737649e-01f, 4.974055290e-01f, 1.0f};
    LLVMBuilderRef b = cg->b;
    LLVMValueRef big = LLVMBuildFCmp(b, LLVMRealOGE, cg_call1(cg, "llvm.fabs", x0),
                                     fconst(cg, x0, 3.92f), "");
    LLVMValueRef x = cg_min(cg, cg_max(cg, x0, fconst(cg, x0, -3.92f)), fconst(cg, x0, 3.92f));
    LLVMValueRef z = LLVMBuildFMul(b, x, x, "");
    LLVMValueRef r = LLVMBuildFDiv(b, LLVMBuildFMul(b, x, horner(cg, p, 7, z), ""),
                                   horner(cg, q, 6, z), "");
    LLVMTypeRef fty;
    LLVMValueRef fn = intrinsic(cg, "llvm.copysign", LLVMTypeOf(x0), &fty);
    LLVMValueRef args[2] = {fconst(cg, x0, 1.0f), x0};
    LLVMValueRef one = LLVMBuildCall2(b, fty, fn, args, 2, "");
    return LLVMBuildSelect(b, big, one, r, "erf");
}

/* One emitter per activation (a, b: its parameters, as ir_act_params). */
static LLVMValueRef relu_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    return cg_max(cg, v, fconst(cg, v, 0.0f));
}

static LLVMValueRef clip_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    return cg_min(cg, cg_max(cg, v, fconst(cg, v, a)), fconst(cg, v, b));
}

static LLVMValueRef sigmoid_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    return sigmoid(cg, v);
}

static LLVMValueRef tanh_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    return tanh_(cg, v);
}

static LLVMValueRef silu_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    return LLVMBuildFMul(cg->b, v, sigmoid(cg, v), "silu");
}

static LLVMValueRef leaky_relu_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    LLVMValueRef pos = LLVMBuildFCmp(cg->b, LLVMRealOGT, v, fconst(cg, v, 0.0f), "");
    LLVMValueRef neg = LLVMBuildFMul(cg->b, v, fconst(cg, v, a), "");
    return LLVMBuildSelect(cg->b, pos, v, neg, "leaky");
}

/* relu6(x + 3) / 6 with the division PyTorch does, so results match bit for bit. */
static LLVMValueRef hardsigmoid_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    LLVMValueRef r = clip_act(cg, LLVMBuildFAdd(cg->b, v, fconst(cg, v, 3.0f), ""), 0.0f, 6.0f);
    return LLVMBuildFDiv(cg->b, r, fconst(cg, v, 6.0f), "hardsigmoid");
}

static LLVMValueRef hardswish_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    LLVMValueRef r = clip_act(cg, LLVMBuildFAdd(cg->b, v, fconst(cg, v, 3.0f), ""), 0.0f, 6.0f);
    return LLVMBuildFDiv(cg->b, LLVMBuildFMul(cg->b, v, r, ""), fconst(cg, v, 6.0f), "hardswish");
}

/* x + shift or x * scale alone when the other is the identity, so the
 * result rounds once, as the interpreter's and PyTorch's. */
static LLVMValueRef affine_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    if (a != 1.0f)
        v = LLVMBuildFMul(cg->b, v, fconst(cg, v, a), "scale");
    if (b != 0.0f)
        v = LLVMBuildFAdd(cg->b, v, fconst(cg, v, b), "shift");
    return v;
}

/* PyTorch's order: x/2 (1 + erf(x / sqrt 2)); a != 0: the tanh form. */
static LLVMValueRef gelu_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    LLVMBuilderRef bd = cg->b;
    LLVMValueRef one = fconst(cg, v, 1.0f), s;
    if (a != 0.0f) {
        LLVMValueRef x3 = LLVMBuildFMul(bd, LLVMBuildFMul(bd, v, v, ""), v, "");
        LLVMValueRef in = LLVMBuildFAdd(bd, v, LLVMBuildFMul(bd, fconst(cg, v, 0.044715f), x3, ""), "");
        s = tanh_(cg, LLVMBuildFMul(bd, fconst(cg, v, 0.797884561f), in, ""));
    } else {
        s = erf_(cg, LLVMBuildFMul(bd, v, fconst(cg, v, 0.707106781f), ""));
    }
    LLVMValueRef half = LLVMBuildFMul(bd, v, fconst(cg, v, 0.5f), "");
    return LLVMBuildFMul(bd, half, LLVMBuildFAdd(bd, one, s, ""), "gelu");
}

static LLVMValueRef erf_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    return erf_(cg, v);
}

static LLVMValueRef sqrt_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    return cg_call1(cg, "llvm.sqrt", v);
}

static LLVMValueRef exp_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    return cg_exp(cg, v);
}

static LLVMValueRef abs_act(Cg *cg, LLVMValueRef v, float a, float b)
{
    return cg_call1(cg, "llvm.fabs", v);
}

static LLVMValueRef (*const act_emitters[OP_COUNT])(Cg *, LLVMValueRef, float, float) = {
    [OP_RELU] = relu_act, [OP_CLIP] = clip_act, [OP_SIGMOID] = sigmoid_act,
    [OP_TANH] = tanh_act, [OP_SILU] = silu_act, [OP_LEAKY_RELU] = leaky_relu_act,
    [OP_HARDSWISH] = hardswish_act, [OP_HARDSIGMOID] = hardsigmoid_act, [OP_AFFINE] = affine_act,
    [OP_GELU] = gelu_act, [OP_ERF] = erf_act, [OP_SQRT] = sqrt_act, [OP_EXP] = exp_act,
    [OP_ABS] = abs_act,
};

bool cg_has_act(Op act)
{
    return ir_op_is_act(act) && act_emitters[act];
}

LLVMValueRef cg_act(Cg *cg, LLVMValueRef v, Op act, float a, float b)
{
    if (act == OP_NO_ACT)
        return v;
    if (!cg_has_act(act))
        ICE("unknown activation %d", (int)act);
    return act_emitters[act](cg, v, a, b);
}

LLVMValueRef cg_epilogue(Cg *cg, const Epilogue *e, LLVMValueRef acc, LLVMValueRef residual)
{
    LLVMValueRef v = cg_act(cg, acc, e->act, e->act_a, e->act_b);
    if (residual)
        v = LLVMBuildFAdd(cg->b, v, residual, "res");
    return cg_act(cg, v, e->post, e->post_a, e->post_b);
}

LLVMValueRef cg_hsum(Cg *cg, LLVMValueRef v)
{
    int32_t lanes = cg_lanes_of(v);
    while (lanes > 1) {
        int32_t half = lanes / 2;
        LLVMValueRef lo[32], hi[32];
        for (int32_t i = 0; i < half; i++) {
            lo[i] = LLVMConstInt(cg->t_i32, (unsigned long long)i, 0);
            hi[i] = LLVMConstInt(cg->t_i32, (unsigned long long)(i + half), 0);
        }
        LLVMValueRef a =
            LLVMBuildShuffleVector(cg->b, v, v, LLVMConstVector(lo, (unsigned)half), "");
        LLVMValueRef c =
            LLVMBuildShuffleVector(cg->b, v, v, LLVMConstVector(hi, (unsigned)half), "");
        v = LLVMBuildFAdd(cg->b, a, c, "");
        lanes = half;
    }
    if (LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind)
        v = LLVMBuildExtractElement(cg->b, v, LLVMConstInt(cg->t_i32, 0, 0), "hsum");
    return v;
}

/* A C library function the kernel calls, declared once per module. */
LLVMValueRef cg_scratch(Cg *cg, int64_t floats)
{
    int64_t bytes = (floats * (int64_t)sizeof(float) + 63) / 64 * 64;
    if (bytes > cg->scratch_bytes) cg->scratch_bytes = bytes;
    return cg->scratch;
}

int32_t cg_extra_slots(const Node *n)
{
    return n->op == OP_CONV2D && n->attrs.conv.scaled_in ? 1 : 0;
}

const Node *cg_storage_of(const Cg *cg, int32_t id, int64_t *off)
{
    const Node *nd = &cg->g->nodes[id];
    int64_t o = 0;
    while (nd->mem.kind == MEM_ALIAS) {
        o += nd->mem.offset;
        nd = &cg->g->nodes[nd->inputs[0]];
    }
    if (off)
        *off = o + nd->mem.offset;
    return nd;
}

int64_t cg_item_stride(const Cg *cg, int32_t node)
{
    const Node *nd = cg_storage_of(cg, node, NULL);
    if (nd->mem.batch_stride) return nd->mem.batch_stride;
    /* The storage's item: a view (a slice of channels) has the items of what it views. */
    const TensorType *t = &nd->type;
    return t->dims[0] ? ir_numel(t) / t->dims[0] : 0;
}

LLVMValueRef cg_iadd(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildNSWAdd(cg->b, a, b, "");
}

LLVMValueRef cg_imul(Cg *cg, LLVMValueRef a, int64_t k)
{
    if (k == 1) return a;
    return LLVMBuildNSWMul(cg->b, a, cg_i64(cg, k), "");
}

void cg_divmod(Cg *cg, LLVMValueRef v, int64_t d, LLVMValueRef *q, LLVMValueRef *r)
{
    if (d == 1) {
        *q = v;
        *r = cg_i64(cg, 0);
        return;
    }
    *q = LLVMBuildUDiv(cg->b, v, cg_i64(cg, d), "q");
    *r = LLVMBuildURem(cg->b, v, cg_i64(cg, d), "r");
}

LLVMValueRef cg_var(Cg *cg, LLVMTypeRef t, const char *name)
{
    LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(LLVMGetBasicBlockParent(here));
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    if (first)
        LLVMPositionBuilder(cg->b, entry, first);
    else
        LLVMPositionBuilderAtEnd(cg->b, entry);
    LLVMValueRef v = LLVMBuildAlloca(cg->b, t, name);
    LLVMPositionBuilderAtEnd(cg->b, here);
    return v;
}

LLVMBasicBlockRef cg_if_begin(Cg *cg, LLVMValueRef cond)
{
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(cg->ctx, fn, "then");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, fn, "join");
    LLVMBuildCondBr(cg->b, cond, then, join);
    LLVMPositionBuilderAtEnd(cg->b, then);
    return join;
}

void cg_if_end(Cg *cg, LLVMBasicBlockRef join)
{
    LLVMBuildBr(cg->b, join);
    LLVMPositionBuilderAtEnd(cg->b, join);
}

CgView cg_view(const Cg *cg, int32_t node)
{
    const TensorType *t = &cg->g->nodes[node].type;
    CgView v = {1, 1, 1, 1, 1, 0, 0, 0};
    int64_t *d[4] = {&v.N, &v.C, &v.H, &v.W};
    for (int32_t i = 0; i < t->rank && i < 4; i++)
        *d[i] = t->dims[i];
    for (int32_t i = 4; i < t->rank; i++)
        v.W *= t->dims[i];
    v.blk = t->layout == LAYOUT_NCHWC && t->block > 1 ? t->block : 1;
    v.groups = v.C / v.blk;
    v.cstride = v.H * v.W * v.blk;
    v.item = cg_item_stride(cg, node);
    return v;
}

LLVMValueRef cg_view_at(Cg *cg, const CgView *v, LLVMValueRef base, LLVMValueRef n,
                        LLVMValueRef grp, LLVMValueRef h, LLVMValueRef w)
{
    LLVMValueRef off = cg_imul(cg, n, v->item);
    off = cg_iadd(cg, off, cg_imul(cg, grp, v->cstride));
    off = cg_iadd(cg, off, cg_imul(cg, h, v->W * v->blk));
    off = cg_iadd(cg, off, cg_imul(cg, w, v->blk));
    return cg_gep(cg, base, off);
}

LLVMValueRef cg_input_ptr(Cg *cg, int32_t id, int32_t k)
{
    const Node *x = &cg->g->nodes[cg->g->nodes[id].inputs[k]];
    if (x->op != OP_PARAM)
        return cg_arg_ptr(cg, 1 + k);
    if (!x->data)
        ICE("constant '%s' has no data", x->name);
    char name[256];
    snprintf(name, sizeof name, "%s.raw", x->name);
    return cg_weights(cg, name, x->data, ir_numel(&x->type));
}

uint32_t cg_low_lanes(int64_t n)
{
    return n >= 32 ? UINT32_MAX : (UINT32_C(1) << n) - 1;
}

/* Rows r[0..n) (n a power of two) of an n × n matrix become its columns:
 * log2(n) stages, each exchanging the off-diagonal h × h blocks of every
 * 2h × 2h block (Eklundh), one two-input shuffle per row and stage. */
void cg_transpose(Cg *cg, LLVMValueRef *r, int32_t n)
{
    LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx);
    for (int32_t h = n / 2; h >= 1; h /= 2) {
        LLVMValueRef lo[64], hi[64];
        for (int32_t x = 0; x < n; x++) { /* lanes n.. of a shuffle are its second input */
            lo[x] = LLVMConstInt(i32, (unsigned)((x & h) ? n + x - h : x), 0);
            hi[x] = LLVMConstInt(i32, (unsigned)((x & h) ? n + x : x + h), 0);
        }
        LLVMValueRef mlo = LLVMConstVector(lo, (unsigned)n), mhi = LLVMConstVector(hi, (unsigned)n);
        for (int32_t i = 0; i < n; i++) {
            if (i & h)
                continue;
            LLVMValueRef a = r[i], b = r[i + h];
            r[i] = LLVMBuildShuffleVector(cg->b, a, b, mlo, "");
            r[i + h] = LLVMBuildShuffleVector(cg->b, a, b, mhi, "");
        }
    }
}
