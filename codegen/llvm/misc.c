/* misc.c: kernels that move data or normalize: softmax along an axis (plain),
 * concat (only the inputs that were not planned in place), layout reorders,
 * and flatten when it was not made a view. */
#include <math.h>

#include "cg.h"

/* ---- softmax ------------------------------------------------------------- */

/* y = softmax(x) over `len` elements `inner` apart: the maximum, then exp
 * and sum, then one scale; m and s are scalar stack variables. */
static void softmax_line(Cg *cg, LLVMValueRef x, LLVMValueRef y, int64_t len, int64_t inner,
                         LLVMValueRef m, LLVMValueRef s)
{
    LLVMValueRef z = cg_i64(cg, 0);
    LLVMBuildStore(cg->b, cg_f32(cg, -INFINITY), m);
    LLVMBuildStore(cg->b, cg_f32(cg, 0.0f), s);
    CgLoop a = cg_loop_begin(cg, z, cg_i64(cg, len), 1, "a");
    LLVMValueRef v = cg_load(cg, cg_gep(cg, x, cg_imul(cg, a.iv, inner)), 1);
    LLVMBuildStore(cg->b, cg_max(cg, LLVMBuildLoad2(cg->b, cg->t_f32, m, ""), v), m);
    cg_loop_end(cg, &a);
    LLVMValueRef mx = LLVMBuildLoad2(cg->b, cg->t_f32, m, "max");
    CgLoop b = cg_loop_begin(cg, z, cg_i64(cg, len), 1, "b");
    LLVMValueRef at = cg_imul(cg, b.iv, inner);
    LLVMValueRef e = cg_exp(cg, LLVMBuildFSub(cg->b, cg_load(cg, cg_gep(cg, x, at), 1), mx, ""));
    cg_store(cg, e, cg_gep(cg, y, at));
    LLVMBuildStore(cg->b, LLVMBuildFAdd(cg->b, LLVMBuildLoad2(cg->b, cg->t_f32, s, ""), e, ""), s);
    cg_loop_end(cg, &b);
    LLVMValueRef inv =
        LLVMBuildFDiv(cg->b, cg_f32(cg, 1.0f), LLVMBuildLoad2(cg->b, cg->t_f32, s, ""), "inv");
    CgLoop c = cg_loop_begin(cg, z, cg_i64(cg, len), 1, "c");
    LLVMValueRef p = cg_gep(cg, y, cg_imul(cg, c.iv, inner));
    cg_store(cg, LLVMBuildFMul(cg->b, cg_load(cg, p, 1), inv, ""), p);
    cg_loop_end(cg, &c);
}

/* One item per line (outer x inner); lines of batch item n start at n times
 * the value's batch stride. */
static CgKernel emit_softmax(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *t = &nd->type;
    if (t->layout != LAYOUT_PLAIN) {
        ir_error(cg->diag, nd->loc, "softmax needs a plain input");
        return (CgKernel){0};
    }
    int32_t axis = nd->attrs.axis.axis < 0 ? nd->attrs.axis.axis + t->rank : nd->attrs.axis.axis;
    int64_t outer = 1, inner = 1, len = t->dims[axis];
    for (int32_t i = 0; i < axis; i++)
        outer *= t->dims[i];
    for (int32_t i = axis + 1; i < t->rank; i++)
        inner *= t->dims[i];
    int64_t per_item = axis == 0 ? 0 : outer / t->dims[0]; /* lines per batch item */
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_arg_ptr(cg, 1);
    LLVMValueRef m = cg_var(cg, cg->t_f32, "m"), s = cg_var(cg, cg->t_f32, "s");
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "line");
    LLVMValueRef o, i, xo, yo;
    cg_divmod(cg, it.iv, inner, &o, &i);
    if (per_item) {
        LLVMValueRef n, r;
        cg_divmod(cg, o, per_item, &n, &r);
        LLVMValueRef rest = cg_iadd(cg, cg_imul(cg, r, len * inner), i);
        xo = cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, nd->inputs[0])), rest);
        yo = cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, id)), rest);
    } else {
        xo = yo = cg_iadd(cg, cg_imul(cg, o, len * inner), i);
    }
    softmax_line(cg, cg_gep(cg, in, xo), cg_gep(cg, out, yo), len, inner, m, s);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, outer * inner};
}

/* ---- concat --------------------------------------------------------------- */

/* True if input k already lives where the concat wants it. */
static bool in_place(const Cg *cg, int32_t id, int32_t k, int64_t elem_off)
{
    int64_t oc, oi;
    const Node *c = cg_storage_of(cg, id, &oc);
    const Node *s = cg_storage_of(cg, cg->g->nodes[id].inputs[k], &oi);
    return c->mem.kind == MEM_ARENA && s->mem.kind == MEM_ARENA && oi == oc + elem_off * 4 &&
           cg_item_stride(cg, cg->g->nodes[id].inputs[k]) == cg_item_stride(cg, id);
}

/* Copies each input that is not in place: per line (batch item, and the
 * dims before the axis), input k's contiguous block goes to its offset along
 * the axis. Blocked values concatenate along channels only (whole blocks),
 * where the same formula holds. */
static CgKernel emit_concat(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *t = &nd->type;
    int32_t axis = nd->attrs.axis.axis < 0 ? nd->attrs.axis.axis + t->rank : nd->attrs.axis.axis;
    if ((t->layout != LAYOUT_PLAIN && axis != 1) || axis == 0) {
        ir_error(cg->diag, nd->loc, "concat along axis %d is not supported here", axis);
        return (CgKernel){0};
    }
    int64_t inner = 1, lines = 1, at = 0, len[64], off[64];
    for (int32_t i = axis + 1; i < t->rank; i++)
        inner *= t->dims[i];
    for (int32_t i = 1; i < axis; i++)
        lines *= t->dims[i];
    bool any = false, copy[64];
    if (nd->ninputs > 64) ICE("concat '%s' has too many inputs", nd->name);
    for (int32_t k = 0; k < nd->ninputs; k++) {
        len[k] = cg->g->nodes[nd->inputs[k]].type.dims[axis] * inner;
        off[k] = at;
        at += len[k];
        copy[k] = !(axis == 1 && in_place(cg, id, k, off[k]));
        any = any || copy[k];
    }
    if (!any) return (CgKernel){0};
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name), out = cg_arg_ptr(cg, 0), n, r;
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "line");
    cg_divmod(cg, it.iv, lines, &n, &r);
    LLVMValueRef row = cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, id)), cg_imul(cg, r, at));
    for (int32_t k = 0; k < nd->ninputs; k++) {
        if (!copy[k]) continue;
        int32_t x = nd->inputs[k];
        LLVMValueRef src =
            cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, x)), cg_imul(cg, r, len[k]));
        LLVMValueRef dst = cg_iadd(cg, row, cg_i64(cg, off[k]));
        LLVMBuildMemCpy(cg->b, cg_gep(cg, out, dst), 4, cg_gep(cg, cg_arg_ptr(cg, 1 + k), src), 4,
                        cg_i64(cg, len[k] * 4));
    }
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, t->dims[0] * lines};
}

/* ---- reorder and copies --------------------------------------------------- */

/* Element-by-element copy between two layouts of the same logical rank-4
 * value: one item per (n, c, h) row. Used by reorder and by flatten when the
 * planner gave it storage of its own. */
static CgKernel emit_relayout(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    CgView vi = cg_view(cg, nd->inputs[0]), vo = cg_view(cg, id);
    vo.N = vi.N, vo.C = vi.C, vo.H = vi.H, vo.W = vi.W; /* flatten: read the input's shape */
    if (vo.blk == 1) {
        vo.groups = vo.C;
        vo.cstride = vo.H * vo.W;
    }
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_arg_ptr(cg, 1);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "row");
    LLVMValueRef nc, h, n, c;
    cg_divmod(cg, it.iv, vi.H, &nc, &h);
    cg_divmod(cg, nc, vi.C, &n, &c);
    LLVMValueRef gi, li, go, lo;
    cg_divmod(cg, c, vi.blk, &gi, &li);
    cg_divmod(cg, c, vo.blk, &go, &lo);
    LLVMValueRef src = cg_gep(cg, cg_view_at(cg, &vi, in, n, gi, h, cg_i64(cg, 0)), li);
    LLVMValueRef dst = cg_gep(cg, cg_view_at(cg, &vo, out, n, go, h, cg_i64(cg, 0)), lo);
    CgLoop w = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, vi.W), 1, "w");
    LLVMValueRef v = cg_load(cg, cg_gep(cg, src, cg_imul(cg, w.iv, vi.blk)), 1);
    cg_store(cg, v, cg_gep(cg, dst, cg_imul(cg, w.iv, vo.blk)));
    cg_loop_end(cg, &w);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, vi.N * vi.C * vi.H};
}

/* Reorder between plain and blocks of L channels (the vector lanes): one item
 * per (n, block, h) row, in tiles of L pixels × L channels, each loaded as L
 * vectors, transposed in registers and stored as L vectors; a row's last
 * tile moves only its remaining pixels. Element by element it took ~1 ns a
 * value, as long as the convolutions either side of it. */
static CgKernel emit_reorder_tiles(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    CgView vi = cg_view(cg, nd->inputs[0]), vo = cg_view(cg, id);
    bool to_plain = vo.blk == 1;
    const CgView *bv = to_plain ? &vi : &vo, *pv = to_plain ? &vo : &vi;
    int32_t L = bv->blk;
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_arg_ptr(cg, 1);
    LLVMValueRef bp = to_plain ? in : out, pp = to_plain ? out : in;
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "row");
    LLVMValueRef ng, h, n, g;
    cg_divmod(cg, it.iv, bv->H, &ng, &h);
    cg_divmod(cg, ng, bv->groups, &n, &g);
    LLVMValueRef c0 = cg_imul(cg, g, L);
    for (int64_t w0 = 0; w0 < bv->W; w0 += L) {
        int64_t m = bv->W - w0 < L ? bv->W - w0 : L; /* pixels in this tile */
        LLVMValueRef w = cg_i64(cg, w0), r[64], zero = LLVMConstNull(cg->t_vf32);
        for (int32_t i = 0; i < L; i++) {
            if (to_plain) { /* row i: pixel w0 + i, its L channels */
                r[i] = i < m ? cg_load(cg, cg_view_at(cg, bv, bp, n, g, h, cg_i64(cg, w0 + i)), L)
                             : zero;
            } else { /* row i: channel c0 + i, its pixels from w0 */
                LLVMValueRef at = cg_view_at(cg, pv, pp, n, cg_iadd(cg, c0, cg_i64(cg, i)), h, w);
                r[i] = m == L ? cg_load(cg, at, L) : cg_load_lanes(cg, at, cg_i64(cg, 0), 1, L,
                                                                    cg_low_lanes(m));
            }
        }
        cg_transpose(cg, r, L);
        for (int32_t i = 0; i < L; i++) {
            if (to_plain) {
                LLVMValueRef at = cg_view_at(cg, pv, pp, n, cg_iadd(cg, c0, cg_i64(cg, i)), h, w);
                if (m == L)
                    cg_store(cg, r[i], at);
                else
                    cg_store_lanes(cg, r[i], at, cg_i64(cg, 0), 1, cg_low_lanes(m));
            } else if (i < m) {
                cg_store(cg, r[i], cg_view_at(cg, bv, bp, n, g, h, cg_i64(cg, w0 + i)));
            }
        }
    }
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, bv->N * bv->groups * bv->H};
}

/* Whether a reorder goes between plain and blocks of the full vector (a
 * power of two up to 32 lanes) on rank-4 values. */
static bool tiled_reorder(const Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *x = &cg->g->nodes[nd->inputs[0]].type, *y = &nd->type;
    if (nd->op != OP_REORDER || x->rank != 4 || y->rank != 4)
        return false;
    const TensorType *b = x->layout == LAYOUT_NCHWC ? x : y, *p = b == x ? y : x;
    int32_t L = b->block;
    return b->layout == LAYOUT_NCHWC && p->layout == LAYOUT_PLAIN && L == cg->vec && L >= 2 &&
           L <= 32 && (L & (L - 1)) == 0 && b->dims[1] % L == 0;
}

CgKernel cg_emit_misc(Cg *cg, int32_t node)
{
    const Node *nd = &cg->g->nodes[node];
    switch (nd->op) {
    case OP_SOFTMAX:
        return emit_softmax(cg, node);
    case OP_CONCAT:
        return emit_concat(cg, node);
    case OP_REORDER:
        if (tiled_reorder(cg, node))
            return emit_reorder_tiles(cg, node);
        return emit_relayout(cg, node);
    case OP_FLATTEN:
        return emit_relayout(cg, node);
    default:
        break;
    }
    ICE("no kernel for op %s", ir_ops[nd->op].name);
}
