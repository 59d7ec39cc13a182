/* pool.c: kernels of max, average, adaptive-average and global-average
 * pooling. A blocked value pools a whole channel block per vector; a plain
 * value pools one channel at a time, max pooling with vectors of output
 * pixels along the row. Items are (batch, group, output row). */
#include <math.h>

#include "cg.h"

typedef struct Pool {
    const Node *nd;
    CgView vi, vo;
    LLVMValueRef in, out, n, g, oh;
    LLVMTypeRef vt; /* the accumulator: blk lanes */
} Pool;

static LLVMValueRef lt(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildICmp(cg->b, LLVMIntSLT, a, b, "");
}

static LLVMValueRef imin(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(cg->b, lt(cg, a, b), a, b, "");
}

static LLVMValueRef imax(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(cg->b, lt(cg, a, b), b, a, "");
}

/* 0 <= v < hi, as one unsigned compare. */
static LLVMValueRef in_range(Cg *cg, LLVMValueRef v, int64_t hi)
{
    return LLVMBuildICmp(cg->b, LLVMIntULT, v, cg_i64(cg, hi), "");
}

static LLVMValueRef load_in(Cg *cg, Pool *p, LLVMValueRef ih, LLVMValueRef iw)
{
    return cg_load(cg, cg_view_at(cg, &p->vi, p->in, p->n, p->g, ih, iw), p->vi.blk);
}

/* max_pool2d's maximum: a NaN on either side wins. cg_max passes one in the
 * new element; one already taken stays by the unordered test (a compare and
 * a blend more than maxps, outside any hot loop). */
static LLVMValueRef max_keep_nan(Cg *cg, LLVMValueRef acc, LLVMValueRef x)
{
    LLVMValueRef nan = LLVMBuildFCmp(cg->b, LLVMRealUNO, acc, acc, "");
    return LLVMBuildSelect(cg->b, nan, acc, cg_max(cg, x, acc), "");
}

/* Max over the dilated window; padding is never selected. */
static LLVMValueRef max_window(Cg *cg, Pool *p, LLVMValueRef ow)
{
    const PoolAttrs *a = &p->nd->attrs.pool;
    LLVMValueRef acc = cg_var(cg, p->vt, "acc");
    LLVMBuildStore(cg->b, cg_splat(cg, cg_f32(cg, -INFINITY), p->vi.blk), acc);
    LLVMValueRef h0 =
        LLVMBuildSub(cg->b, cg_imul(cg, p->oh, a->stride[0]), cg_i64(cg, a->pad[0]), "");
    LLVMValueRef w0 = LLVMBuildSub(cg->b, cg_imul(cg, ow, a->stride[1]), cg_i64(cg, a->pad[1]), "");
    CgLoop kh = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, a->kernel[0]), 1, "kh");
    LLVMValueRef ih = cg_iadd(cg, h0, cg_imul(cg, kh.iv, a->dilation[0]));
    LLVMBasicBlockRef hj = cg_if_begin(cg, in_range(cg, ih, p->vi.H));
    CgLoop kw = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, a->kernel[1]), 1, "kw");
    LLVMValueRef iw = cg_iadd(cg, w0, cg_imul(cg, kw.iv, a->dilation[1]));
    LLVMBasicBlockRef wj = cg_if_begin(cg, in_range(cg, iw, p->vi.W));
    LLVMValueRef cur = LLVMBuildLoad2(cg->b, p->vt, acc, "");
    LLVMBuildStore(cg->b, max_keep_nan(cg, cur, load_in(cg, p, ih, iw)), acc);
    cg_if_end(cg, wj);
    cg_loop_end(cg, &kw);
    cg_if_end(cg, hj);
    cg_loop_end(cg, &kh);
    return LLVMBuildLoad2(cg->b, p->vt, acc, "max");
}

/* max_window for a blocked value: windows that lie wholly inside the input
 * (all but the edges) take their taps unrolled, without the bounds tests and
 * the loops that made ResNet-50's 3×3/2 maxpool at batch 8 as slow as a
 * 1×1 conv (3.3 ms on one thread). */
static LLVMValueRef max_window_blocked(Cg *cg, Pool *p, LLVMValueRef ow)
{
    const PoolAttrs *a = &p->nd->attrs.pool;
    int64_t hi_h = p->vi.H - (int64_t)(a->kernel[0] - 1) * a->dilation[0];
    int64_t hi_w = p->vi.W - (int64_t)(a->kernel[1] - 1) * a->dilation[1];
    if (hi_h <= 0 || hi_w <= 0)
        return max_window(cg, p, ow);
    LLVMValueRef h0 =
        LLVMBuildSub(cg->b, cg_imul(cg, p->oh, a->stride[0]), cg_i64(cg, a->pad[0]), "");
    LLVMValueRef w0 = LLVMBuildSub(cg->b, cg_imul(cg, ow, a->stride[1]), cg_i64(cg, a->pad[1]), "");
    LLVMValueRef inside =
        LLVMBuildAnd(cg->b, in_range(cg, h0, hi_h), in_range(cg, w0, hi_w), "inside");
    LLVMValueRef res = cg_var(cg, p->vt, "m");
    LLVMBasicBlockRef join = cg_if_begin(cg, inside);
    LLVMValueRef m = NULL;
    for (int32_t kh = 0; kh < a->kernel[0]; kh++)
        for (int32_t kw = 0; kw < a->kernel[1]; kw++) {
            LLVMValueRef x = load_in(cg, p, cg_iadd(cg, h0, cg_i64(cg, kh * a->dilation[0])),
                                     cg_iadd(cg, w0, cg_i64(cg, kw * a->dilation[1])));
            m = m ? max_keep_nan(cg, m, x) : x;
        }
    LLVMBuildStore(cg->b, m, res);
    cg_if_end(cg, join);
    join = cg_if_begin(cg, LLVMBuildNot(cg->b, inside, ""));
    LLVMBuildStore(cg->b, max_window(cg, p, ow), res);
    cg_if_end(cg, join);
    return LLVMBuildLoad2(cg->b, p->vt, res, "max");
}

/* The input rectangle [hs, he) x [ws, we) of a window and its divisor. */
typedef struct Window {
    LLVMValueRef hs, he, ws, we, divisor;
} Window;

/* avg_pool2d: the window clipped to the padded input gives the divisor with
 * count_include_pad, then it is clipped to the input itself. */
static Window avg_bounds(Cg *cg, Pool *p, LLVMValueRef ow)
{
    const PoolAttrs *a = &p->nd->attrs.pool;
    Window w;
    LLVMValueRef hs =
        LLVMBuildSub(cg->b, cg_imul(cg, p->oh, a->stride[0]), cg_i64(cg, a->pad[0]), "");
    LLVMValueRef ws = LLVMBuildSub(cg->b, cg_imul(cg, ow, a->stride[1]), cg_i64(cg, a->pad[1]), "");
    LLVMValueRef he =
        imin(cg, cg_iadd(cg, hs, cg_i64(cg, a->kernel[0])), cg_i64(cg, p->vi.H + a->pad[2]));
    LLVMValueRef we =
        imin(cg, cg_iadd(cg, ws, cg_i64(cg, a->kernel[1])), cg_i64(cg, p->vi.W + a->pad[3]));
    LLVMValueRef full =
        LLVMBuildMul(cg->b, LLVMBuildSub(cg->b, he, hs, ""), LLVMBuildSub(cg->b, we, ws, ""), "");
    w.hs = imax(cg, hs, cg_i64(cg, 0));
    w.ws = imax(cg, ws, cg_i64(cg, 0));
    w.he = imin(cg, he, cg_i64(cg, p->vi.H));
    w.we = imin(cg, we, cg_i64(cg, p->vi.W));
    w.divisor = a->count_include_pad ? full
                                     : LLVMBuildMul(cg->b, LLVMBuildSub(cg->b, w.he, w.hs, ""),
                                                    LLVMBuildSub(cg->b, w.we, w.ws, ""), "");
    return w;
}

/* Bin i of `out` over `in`: [floor(i*in/out), ceil((i+1)*in/out)). */
static void adaptive_bin(Cg *cg, LLVMValueRef i, int64_t in, int64_t out, LLVMValueRef *s,
                         LLVMValueRef *e)
{
    *s = LLVMBuildSDiv(cg->b, cg_imul(cg, i, in), cg_i64(cg, out), "");
    LLVMValueRef hi = cg_iadd(cg, cg_imul(cg, i, in), cg_i64(cg, in + out - 1));
    *e = LLVMBuildSDiv(cg->b, hi, cg_i64(cg, out), "");
}

static Window adaptive_bounds(Cg *cg, Pool *p, LLVMValueRef ow)
{
    Window w;
    adaptive_bin(cg, p->oh, p->vi.H, p->vo.H, &w.hs, &w.he);
    adaptive_bin(cg, ow, p->vi.W, p->vo.W, &w.ws, &w.we);
    w.divisor = LLVMBuildMul(cg->b, LLVMBuildSub(cg->b, w.he, w.hs, ""),
                             LLVMBuildSub(cg->b, w.we, w.ws, ""), "");
    return w;
}

static LLVMValueRef mean_window(Cg *cg, Pool *p, LLVMValueRef ow)
{
    Window w = p->nd->op == OP_AVGPOOL ? avg_bounds(cg, p, ow) : adaptive_bounds(cg, p, ow);
    LLVMValueRef acc = cg_var(cg, p->vt, "acc");
    LLVMBuildStore(cg->b, cg_splat(cg, cg_f32(cg, 0.0f), p->vi.blk), acc);
    CgLoop ih = cg_loop_begin(cg, w.hs, w.he, 1, "ih");
    CgLoop iw = cg_loop_begin(cg, w.ws, w.we, 1, "iw");
    LLVMValueRef cur = LLVMBuildLoad2(cg->b, p->vt, acc, "");
    LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, cur, load_in(cg, p, ih.iv, iw.iv), ""), acc);
    cg_loop_end(cg, &iw);
    cg_loop_end(cg, &ih);
    LLVMValueRef d = LLVMBuildSIToFP(cg->b, w.divisor, cg->t_f32, "");
    LLVMValueRef sum = LLVMBuildLoad2(cg->b, p->vt, acc, "");
    return LLVMBuildFDiv(cg->b, sum, cg_splat(cg, d, p->vi.blk), "mean");
}

static uint32_t lanes_below(int64_t n)
{
    return n >= 32 ? UINT32_MAX : (UINT32_C(1) << n) - 1;
}

/* Lanes of `mask` keep x, the others read -inf (never selected by a max). */
static LLVMValueRef or_minus_inf(Cg *cg, LLVMValueRef x, uint32_t mask, int32_t L)
{
    LLVMValueRef m[64];
    LLVMTypeRef i1 = LLVMInt1TypeInContext(cg->ctx);
    for (int32_t l = 0; l < L; l++)
        m[l] = LLVMConstInt(i1, (mask >> l) & 1, 0);
    return LLVMBuildSelect(cg->b, LLVMConstVector(m, (unsigned)L), x,
                           cg_splat(cg, cg_f32(cg, -INFINITY), L), "");
}

/* Max pooling of a plain value (a channel count no block divides, e.g. the
 * 24 of ShuffleNet's stem): vectors of L output pixels along a row instead
 * of one pixel at a time. Each tap (kh, kw) is one load of L pixels `stride`
 * apart; which lanes fall into the padding or past the row is known at
 * compile time and those read -inf. Kernel rows outside the input are
 * skipped at run time. */
static CgKernel emit_plain_max(Cg *cg, Pool *p)
{
    const PoolAttrs *a = &p->nd->attrs.pool;
    int32_t L = cg->vec;
    int64_t s = a->stride[1], OW = p->vo.W, W = p->vi.W;
    LLVMValueRef fn = cg_kernel_begin(cg, p->nd->name);
    p->out = cg_arg_ptr(cg, 0);
    p->in = cg_arg_ptr(cg, 1);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "it");
    LLVMValueRef ng, z = cg_i64(cg, 0);
    cg_divmod(cg, it.iv, p->vo.H, &ng, &p->oh);
    cg_divmod(cg, ng, p->vo.groups, &p->n, &p->g);
    LLVMValueRef h0 =
        LLVMBuildSub(cg->b, cg_imul(cg, p->oh, a->stride[0]), cg_i64(cg, a->pad[0]), "");
    LLVMValueRef orow = cg_view_at(cg, &p->vo, p->out, p->n, p->g, p->oh, z);
    for (int64_t ow0 = 0; ow0 < OW; ow0 += L) {
        int64_t nl = OW - ow0 < L ? OW - ow0 : L;
        LLVMValueRef acc = cg_splat(cg, cg_f32(cg, -INFINITY), L);
        for (int64_t kh = 0; kh < a->kernel[0]; kh++) {
            LLVMValueRef ih = cg_iadd(cg, h0, cg_i64(cg, kh * a->dilation[0]));
            CgAccLoop c;
            cg_acc_if_begin(cg, &c, in_range(cg, ih, p->vi.H), &acc, 1);
            LLVMValueRef row = cg_view_at(cg, &p->vi, p->in, p->n, p->g, ih, z);
            for (int64_t kw = 0; kw < a->kernel[1]; kw++) {
                int64_t off = ow0 * s - a->pad[1] + kw * a->dilation[1];
                uint32_t mask = 0;
                for (int64_t l = 0; l < nl; l++)
                    if (off + l * s >= 0 && off + l * s < W)
                        mask |= UINT32_C(1) << l;
                if (!mask)
                    continue;
                LLVMValueRef x;
                if (mask == lanes_below(L) && off >= 0 && off + L * s <= W) {
                    x = cg_load_span(cg, row, cg_i64(cg, off), s, L);
                } else {
                    x = cg_load_lanes(cg, row, cg_i64(cg, off), s, L, mask);
                    x = or_minus_inf(cg, x, mask, L);
                }
                acc = max_keep_nan(cg, acc, x);
            }
            cg_acc_if_end(cg, &c, &acc);
        }
        cg_store_lanes(cg, acc, orow, cg_i64(cg, ow0), 1, lanes_below(nl));
    }
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, p->vo.N * p->vo.groups * p->vo.H};
}

/* The lines of the input rows that the next output row reads and this one does not,
 * under output pixel ow's window, for a blocked value: a block's rows lie pages apart,
 * where the hardware prefetchers stop. ResNet-50's 3×3/2 maxpool, 2 threads (cnnrun
 * --profile, 3 interleaved runs each way): batch 8 1.30–1.38 → 1.17–1.22 ms, batch 1
 * 0.127–0.134 → 0.092–0.096. Not for windows one row high (the gathers of strided 1×1
 * convs read every other line of a row, which the prefetchers follow: prefetched as
 * well, they were 5–10% slower). */
static void prefetch_next_rows(Cg *cg, Pool *p, LLVMValueRef ow)
{
    const PoolAttrs *a = &p->nd->attrs.pool;
    int64_t span = (int64_t)(a->kernel[0] - 1) * a->dilation[0] + 1;
    int64_t spanw = (int64_t)(a->kernel[1] - 1) * a->dilation[1] + 1;
    int64_t s = a->stride[0], sw = a->stride[1];
    if (span == 1)
        return;
    LLVMValueRef h0 = LLVMBuildSub(cg->b, cg_imul(cg, p->oh, s), cg_i64(cg, a->pad[0]), "");
    LLVMValueRef w0 = LLVMBuildSub(cg->b, cg_imul(cg, ow, sw), cg_i64(cg, a->pad[1]), "");
    for (int64_t r = span > s ? span : s; r < s + span; r++)
        for (int64_t j = spanw > sw ? spanw - sw : 0; j < spanw; j++)
            cg_prefetch(cg, cg_view_at(cg, &p->vi, p->in, p->n, p->g, cg_iadd(cg, h0, cg_i64(cg, r)),
                                       cg_iadd(cg, w0, cg_i64(cg, j))));
}

static CgKernel emit_window_pool(Cg *cg, int32_t id)
{
    Pool p = {.nd = &cg->g->nodes[id]};
    p.vi = cg_view(cg, p.nd->inputs[0]);
    p.vo = cg_view(cg, id);
    if (p.vi.blk != p.vo.blk) ICE("pool '%s': input and output layouts differ", p.nd->name);
    if (p.nd->op == OP_MAXPOOL && p.vi.blk == 1 && cg->vec > 1 && cg->vec <= 32)
        return emit_plain_max(cg, &p);
    p.vt = p.vi.blk > 1 ? LLVMVectorType(cg->t_f32, (unsigned)p.vi.blk) : cg->t_f32;
    LLVMValueRef fn = cg_kernel_begin(cg, p.nd->name);
    p.out = cg_arg_ptr(cg, 0);
    p.in = cg_arg_ptr(cg, 1);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "it");
    LLVMValueRef ng;
    cg_divmod(cg, it.iv, p.vo.H, &ng, &p.oh);
    cg_divmod(cg, ng, p.vo.groups, &p.n, &p.g);
    CgLoop ow = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, p.vo.W), 1, "ow");
    if (p.vi.blk > 1)
        prefetch_next_rows(cg, &p, ow.iv);
    LLVMValueRef v = p.nd->op != OP_MAXPOOL ? mean_window(cg, &p, ow.iv)
                     : p.vi.blk > 1         ? max_window_blocked(cg, &p, ow.iv)
                                            : max_window(cg, &p, ow.iv);
    cg_store(cg, v, cg_view_at(cg, &p.vo, p.out, p.n, p.g, p.oh, ow.iv));
    cg_loop_end(cg, &ow);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, p.vo.N * p.vo.groups * p.vo.H};
}

void cg_maxpool_rows(Cg *cg, int32_t id, const CgView *vi, LLVMValueRef in, LLVMValueRef n,
                     LLVMValueRef g, LLVMValueRef oh_lo, LLVMValueRef oh_hi, LLVMValueRef out)
{
    Pool p = {.nd = &cg->g->nodes[id], .vi = *vi, .in = in, .out = out, .n = n, .g = g};
    p.vo = cg_view(cg, id);
    if (p.vi.blk < 2 || p.vi.blk != p.vo.blk || p.nd->op != OP_MAXPOOL)
        ICE("pool '%s': rows of a blocked maxpool expected", p.nd->name);
    p.vt = LLVMVectorType(cg->t_f32, (unsigned)p.vi.blk);
    CgLoop r = cg_loop_begin(cg, oh_lo, oh_hi, 1, "oh");
    p.oh = r.iv;
    CgLoop ow = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, p.vo.W), 1, "ow");
    cg_store(cg, max_window_blocked(cg, &p, ow.iv), cg_view_at(cg, &p.vo, out, n, g, p.oh, ow.iv));
    cg_loop_end(cg, &ow);
    cg_loop_end(cg, &r);
}

/* Mean over H*W per (batch, group): vectors along the block, or along the
 * plane of a plain channel with a horizontal sum at the end. */
static CgKernel emit_global(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    CgView vi = cg_view(cg, nd->inputs[0]), vo = cg_view(cg, id);
    int64_t hw = vi.H * vi.W;
    int32_t lanes = vi.blk > 1 ? vi.blk : (hw >= cg->vec ? cg->vec : 1);
    int64_t steps = vi.blk > 1 ? hw : hw / lanes;
    LLVMTypeRef vt = lanes > 1 ? LLVMVectorType(cg->t_f32, (unsigned)lanes) : cg->t_f32;
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_arg_ptr(cg, 1), z = cg_i64(cg, 0);
    LLVMValueRef acc = cg_var(cg, vt, "acc"), tail = cg_var(cg, cg->t_f32, "tail");
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "it");
    LLVMValueRef n, g;
    cg_divmod(cg, it.iv, vo.groups, &n, &g);
    LLVMValueRef base = cg_view_at(cg, &vi, in, n, g, z, z);
    LLVMBuildStore(cg->b, cg_splat(cg, cg_f32(cg, 0.0f), lanes), acc);
    CgLoop p = cg_loop_begin(cg, z, cg_i64(cg, steps), 1, "p");
    LLVMValueRef x = cg_load(cg, cg_gep(cg, base, cg_imul(cg, p.iv, lanes)), lanes);
    LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, vt, acc, ""), x, ""), acc);
    cg_loop_end(cg, &p);
    LLVMValueRef sum = LLVMBuildLoad2(cg->b, vt, acc, "");
    if (vi.blk == 1) {
        LLVMBuildStore(cg->b, cg_hsum(cg, sum), tail);
        CgLoop t = cg_loop_begin(cg, cg_i64(cg, steps * lanes), cg_i64(cg, hw), 1, "t");
        LLVMValueRef y = cg_load(cg, cg_gep(cg, base, t.iv), 1);
        LLVMValueRef cur = LLVMBuildLoad2(cg->b, cg->t_f32, tail, "");
        LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, cur, y, ""), tail);
        cg_loop_end(cg, &t);
        sum = LLVMBuildLoad2(cg->b, cg->t_f32, tail, "");
    }
    LLVMValueRef mean = LLVMBuildFDiv(cg->b, sum, cg_splat(cg, cg_f32(cg, (float)hw), vi.blk), "");
    cg_store(cg, mean, cg_view_at(cg, &vo, out, n, g, z, z));
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, vo.N * vo.groups};
}

CgKernel cg_emit_pool(Cg *cg, int32_t node)
{
    const Node *nd = &cg->g->nodes[node];
    if (nd->op == OP_GLOBAL_AVGPOOL) return emit_global(cg, node);
    if (ir_inlined_input(nd) >= 0) return cg_emit_conv_pool(cg, node);
    if (nd->op == OP_AVGPOOL &&
        (nd->attrs.pool.dilation[0] != 1 || nd->attrs.pool.dilation[1] != 1)) {
        ir_error(cg->diag, nd->loc, "avgpool with dilation is not supported");
        return (CgKernel){0};
    }
    return emit_window_pool(cg, node);
}
