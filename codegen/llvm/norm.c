/* norm.c: layernorm over one dim of a plain value, in three passes over each
 * normalized line (mean, then the variance around it, then the output), as
 * the interpreter computes it, in f32. Lines along the last dim (nn.LayerNorm
 * on channels-last values) run over their elements in vectors; lines along an
 * earlier dim (ConvNeXt's LayerNorm2d over channels) run `lanes` neighbouring
 * lines at once, one lane each; channels of a blocked NCHW[b]c value are
 * summed a block (one vector) at a time. */
#include "cg.h"

typedef struct Ln {
    Cg *cg;
    int64_t len, inner;
    float eps;
    LLVMValueRef w, b; /* the per-element scale and shift */
} Ln;

static LLVMValueRef vload(Cg *cg, LLVMValueRef base, LLVMValueRef at, int32_t lanes)
{
    return cg_load(cg, cg_gep(cg, base, at), lanes);
}

/* Accumulates f(x[i]) over a contiguous line of `len` into a vector and a
 * scalar variable, then returns their total. f is x - center squared when
 * center is given, else x. */
static LLVMValueRef line_sum(Ln *l, LLVMValueRef x, LLVMValueRef center)
{
    Cg *cg = l->cg;
    int32_t V = cg->vec;
    LLVMValueRef vacc = cg_var(cg, cg->t_vf32, "vacc"), sacc = cg_var(cg, cg->t_f32, "sacc");
    LLVMBuildStore(cg->b, LLVMConstNull(cg->t_vf32), vacc);
    LLVMBuildStore(cg->b, cg_f32(cg, 0.0f), sacc);
    int64_t main = l->len - l->len % V;
    if (main > 0) {
        CgLoop v = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, main), V, "v");
        LLVMValueRef e = vload(cg, x, v.iv, V);
        if (center) {
            e = LLVMBuildFSub(cg->b, e, cg_splat(cg, center, V), "");
            e = LLVMBuildFMul(cg->b, e, e, "");
        }
        LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, cg->t_vf32, vacc, ""), e, ""),
                       vacc);
        cg_loop_end(cg, &v);
    }
    if (main < l->len) {
        CgLoop s = cg_loop_begin(cg, cg_i64(cg, main), cg_i64(cg, l->len), 1, "s");
        LLVMValueRef e = vload(cg, x, s.iv, 1);
        if (center) {
            e = LLVMBuildFSub(cg->b, e, center, "");
            e = LLVMBuildFMul(cg->b, e, e, "");
        }
        LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, cg->t_f32, sacc, ""), e, ""),
                       sacc);
        cg_loop_end(cg, &s);
    }
    return LLVMBuildFAdd(cg->b, cg_hsum(cg, LLVMBuildLoad2(cg->b, cg->t_vf32, vacc, "")),
                         LLVMBuildLoad2(cg->b, cg->t_f32, sacc, ""), "");
}

static LLVMValueRef rstd_of(Ln *l, LLVMValueRef var_sum, int32_t lanes)
{
    Cg *cg = l->cg;
    LLVMValueRef var = LLVMBuildFMul(cg->b, var_sum, cg_splat(cg, cg_f32(cg, 1.0f / (float)l->len), lanes), "");
    var = LLVMBuildFAdd(cg->b, var, cg_splat(cg, cg_f32(cg, l->eps), lanes), "");
    return LLVMBuildFDiv(cg->b, cg_splat(cg, cg_f32(cg, 1.0f), lanes),
                         cg_call1(cg, "llvm.sqrt", var), "rstd");
}

/* y[i] = (x[i] - mean) * rstd * w[i] + b[i] over i in [lo, hi), `lanes` at a
 * time; `stride` apart (the lines' elements) with per-i scale and shift
 * splatted (strided lines), or contiguous with vector scale and shift. */
static void line_out(Ln *l, LLVMValueRef x, LLVMValueRef y, LLVMValueRef mean, LLVMValueRef rstd,
                     int64_t lo, int64_t hi, int32_t lanes, int64_t stride)
{
    Cg *cg = l->cg;
    if (lo >= hi)
        return;
    bool contiguous = stride == 1;
    CgLoop i = cg_loop_begin(cg, cg_i64(cg, lo), cg_i64(cg, hi), contiguous ? lanes : 1, "i");
    LLVMValueRef at = contiguous ? i.iv : cg_imul(cg, i.iv, stride);
    LLVMValueRef v = LLVMBuildFSub(cg->b, vload(cg, x, at, lanes), mean, "");
    LLVMValueRef w = contiguous ? vload(cg, l->w, i.iv, lanes)
                                : cg_splat(cg, vload(cg, l->w, i.iv, 1), lanes);
    LLVMValueRef b = contiguous ? vload(cg, l->b, i.iv, lanes)
                                : cg_splat(cg, vload(cg, l->b, i.iv, 1), lanes);
    v = cg_fma(cg, LLVMBuildFMul(cg->b, v, rstd, ""), w, b);
    cg_store(cg, v, cg_gep(cg, y, at));
    cg_loop_end(cg, &i);
}

/* A contiguous line (the last dim). */
static void last_dim_line(Ln *l, LLVMValueRef x, LLVMValueRef y)
{
    Cg *cg = l->cg;
    LLVMValueRef inv = cg_f32(cg, 1.0f / (float)l->len);
    LLVMValueRef mean = LLVMBuildFMul(cg->b, line_sum(l, x, NULL), inv, "mean");
    LLVMValueRef rstd = rstd_of(l, line_sum(l, x, mean), 1);
    int64_t main = l->len - l->len % cg->vec;
    line_out(l, x, y, cg_splat(cg, mean, cg->vec), cg_splat(cg, rstd, cg->vec), 0, main, cg->vec, 1);
    line_out(l, x, y, mean, rstd, main, l->len, 1, 1);
}

/* `lanes` neighbouring lines whose elements are `inner` apart. */
static void strided_lines(Ln *l, LLVMValueRef x, LLVMValueRef y, int32_t lanes)
{
    Cg *cg = l->cg;
    LLVMTypeRef t = lanes > 1 ? cg->t_vf32 : cg->t_f32;
    LLVMValueRef acc = cg_var(cg, t, "acc");
    LLVMValueRef zero = cg_splat(cg, cg_f32(cg, 0.0f), lanes);
    LLVMBuildStore(cg->b, zero, acc);
    CgLoop a = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, l->len), 1, "a");
    LLVMValueRef e = vload(cg, x, cg_imul(cg, a.iv, l->inner), lanes);
    LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, t, acc, ""), e, ""), acc);
    cg_loop_end(cg, &a);
    LLVMValueRef mean = LLVMBuildFMul(cg->b, LLVMBuildLoad2(cg->b, t, acc, ""),
                                      cg_splat(cg, cg_f32(cg, 1.0f / (float)l->len), lanes), "mean");
    LLVMBuildStore(cg->b, zero, acc);
    CgLoop v = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, l->len), 1, "v");
    LLVMValueRef d = LLVMBuildFSub(cg->b, vload(cg, x, cg_imul(cg, v.iv, l->inner), lanes), mean, "");
    LLVMBuildStore(cg->b, cg_fma(cg, d, d, LLVMBuildLoad2(cg->b, t, acc, "")), acc);
    cg_loop_end(cg, &v);
    LLVMValueRef rstd = rstd_of(l, LLVMBuildLoad2(cg->b, t, acc, ""), lanes);
    line_out(l, x, y, mean, rstd, 0, l->len, lanes, l->inner);
}

/* The vector sum over the channel groups of position (n, h, w) of f(x): x, or
 * (x - center)^2. */
static LLVMValueRef group_sum(Ln *l, const CgView *v, LLVMValueRef in, LLVMValueRef n,
                              LLVMValueRef h, LLVMValueRef w, LLVMValueRef center)
{
    Cg *cg = l->cg;
    LLVMTypeRef t = LLVMVectorType(cg->t_f32, (unsigned)v->blk);
    LLVMValueRef acc = cg_var(cg, t, "acc");
    LLVMBuildStore(cg->b, LLVMConstNull(t), acc);
    CgLoop g = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, v->groups), 1, "g");
    LLVMValueRef e = cg_load(cg, cg_view_at(cg, v, in, n, g.iv, h, w), v->blk);
    LLVMValueRef a = LLVMBuildLoad2(cg->b, t, acc, "");
    if (center) {
        e = LLVMBuildFSub(cg->b, e, cg_splat(cg, center, v->blk), "");
        a = cg_fma(cg, e, e, a);
    } else {
        a = LLVMBuildFAdd(cg->b, a, e, "");
    }
    LLVMBuildStore(cg->b, a, acc);
    cg_loop_end(cg, &g);
    return cg_hsum(cg, LLVMBuildLoad2(cg->b, t, acc, ""));
}

/* Over the channels of a blocked 4-d value: items are rows (n, h), each of
 * W positions whose C channels are C / b vectors, C * H * W apart per group. */
static CgKernel blocked_layernorm(Cg *cg, int32_t id, Ln *l)
{
    const Node *nd = &cg->g->nodes[id];
    CgView vi = cg_view(cg, nd->inputs[0]), vo = cg_view(cg, id);
    int32_t b = vo.blk;
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_arg_ptr(cg, 1);
    l->w = cg_input_ptr(cg, id, 1);
    l->b = cg_input_ptr(cg, id, 2);
    LLVMValueRef inv = cg_f32(cg, 1.0f / (float)l->len);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "row");
    LLVMValueRef n, h;
    cg_divmod(cg, it.iv, vo.H, &n, &h);
    CgLoop w = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, vo.W), 1, "w");
    LLVMValueRef mean = LLVMBuildFMul(cg->b, group_sum(l, &vi, in, n, h, w.iv, NULL), inv, "mean");
    LLVMValueRef rstd = rstd_of(l, group_sum(l, &vi, in, n, h, w.iv, mean), 1);
    LLVMValueRef vmean = cg_splat(cg, mean, b), vrstd = cg_splat(cg, rstd, b);
    CgLoop g = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, vo.groups), 1, "g");
    LLVMValueRef x = cg_load(cg, cg_view_at(cg, &vi, in, n, g.iv, h, w.iv), b);
    LLVMValueRef c0 = cg_imul(cg, g.iv, b);
    LLVMValueRef y = LLVMBuildFMul(cg->b, LLVMBuildFSub(cg->b, x, vmean, ""), vrstd, "");
    y = cg_fma(cg, y, vload(cg, l->w, c0, b), vload(cg, l->b, c0, b));
    cg_store(cg, y, cg_view_at(cg, &vo, out, n, g.iv, h, w.iv));
    cg_loop_end(cg, &g);
    cg_loop_end(cg, &w);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, vo.N * vo.H};
}

/* Items: (line group) over outer x inner / lanes; a batch item's lines start
 * at its batch stride. */
CgKernel cg_emit_layernorm(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *t = &nd->type, *x = &cg->g->nodes[nd->inputs[0]].type;
    int32_t axis = nd->attrs.norm.axis < 0 ? nd->attrs.norm.axis + t->rank : nd->attrs.norm.axis;
    Ln l = {cg, t->dims[axis], 1, nd->attrs.norm.eps, NULL, NULL};
    if (t->layout == LAYOUT_NCHWC && x->layout == LAYOUT_NCHWC && t->block == x->block &&
        t->rank == 4 && axis == 1)
        return blocked_layernorm(cg, id, &l);
    if (t->layout != LAYOUT_PLAIN || x->layout != LAYOUT_PLAIN) {
        ir_error(cg->diag, nd->loc, "layernorm of this layout is not supported by the CPU backend");
        return (CgKernel){0};
    }
    int64_t outer = 1;
    for (int32_t i = 0; i < axis; i++)
        outer *= t->dims[i];
    for (int32_t i = axis + 1; i < t->rank; i++)
        l.inner *= t->dims[i];
    int32_t lanes = l.inner > 1 && l.inner % cg->vec == 0 ? cg->vec : 1;
    int64_t groups = l.inner / lanes, per_item = outer / t->dims[0];
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_arg_ptr(cg, 1);
    l.w = cg_input_ptr(cg, id, 1);
    l.b = cg_input_ptr(cg, id, 2);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "lines");
    LLVMValueRef o, j, n, r;
    cg_divmod(cg, it.iv, groups, &o, &j);
    cg_divmod(cg, o, per_item, &n, &r);
    LLVMValueRef rest = cg_iadd(cg, cg_imul(cg, r, l.len * l.inner), cg_imul(cg, j, lanes));
    LLVMValueRef xo = cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, nd->inputs[0])), rest);
    LLVMValueRef yo = cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, id)), rest);
    if (l.inner == 1)
        last_dim_line(&l, cg_gep(cg, in, xo), cg_gep(cg, out, yo));
    else
        strided_lines(&l, cg_gep(cg, in, xo), cg_gep(cg, out, yo), lanes);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, outer * groups};
}
