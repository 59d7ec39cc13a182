/* eltwise.c: kernels of elementwise ops: activations, dropout (a copy when it
 * was not made a view), add, sub, mul and div with broadcasting, and standalone batch
 * normalization. Contiguous data runs in full vectors with a scalar tail;
 * per-channel operands are loaded once per channel (group). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cg.h"

#define CHUNK 16384 /* elements per work item of a streaming kernel */

/* The operation on loaded operands. */
typedef struct Elt {
    const Node *nd;
    int32_t nops;
    LLVMValueRef out, ops[2]; /* item base pointers in the current iteration */
    LLVMValueRef chan[2];     /* per-channel operands (splatted to the lanes) */
    int32_t chan_lanes;       /* lanes of chan[] as loaded: 1 or the block */
    bool chan_first;          /* the per-channel operand is the op's first (b - a, b / a) */
} Elt;

static LLVMValueRef apply(Cg *cg, const Node *nd, LLVMValueRef a, LLVMValueRef b)
{
    if (ir_op_is_act(nd->op)) {
        float pa, pb;
        ir_act_params(nd, &pa, &pb);
        return cg_act(cg, a, nd->op, pa, pb);
    }
    switch (nd->op) {
    case OP_DROPOUT:
        return a;
    case OP_ADD:
        return LLVMBuildFAdd(cg->b, a, b, "");
    case OP_MUL:
        return LLVMBuildFMul(cg->b, a, b, "");
    case OP_SUB:
        return LLVMBuildFSub(cg->b, a, b, "");
    case OP_DIV:
        return LLVMBuildFDiv(cg->b, a, b, "");
    default:
        break;
    }
    ICE("no elementwise rule for op %s", ir_ops[nd->op].name);
}

static void stream_body(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes)
{
    Elt *e = ctx;
    LLVMValueRef v[2] = {NULL, NULL};
    for (int32_t k = 0; k < e->nops; k++)
        v[k] = cg_load(cg, cg_gep(cg, e->ops[k], i), lanes);
    cg_store(cg, apply(cg, e->nd, v[0], v[1]), cg_gep(cg, e->out, i));
}

static CgKernel kernel_of(LLVMValueRef fn, int64_t items)
{
    return (CgKernel){fn, items};
}

/* Operands of the output's shape and layout, contiguous within each batch
 * item: items are (batch item, chunk). */
static CgKernel emit_stream(Cg *cg, int32_t id, int32_t nops)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *t = &nd->type;
    int64_t n = t->rank ? t->dims[0] : 1, per = n ? ir_numel(t) / n : 0;
    int64_t chunks = (per + CHUNK - 1) / CHUNK;
    Elt e = {.nd = nd, .nops = nops};
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in[2] = {NULL, NULL};
    for (int32_t k = 0; k < nops; k++)
        in[k] = cg_input_ptr(cg, id, k);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "it");
    LLVMValueRef b, c;
    cg_divmod(cg, it.iv, chunks, &b, &c);
    LLVMValueRef start = cg_imul(cg, c, CHUNK);
    LLVMValueRef left = LLVMBuildSub(cg->b, cg_i64(cg, per), start, "");
    LLVMValueRef small = LLVMBuildICmp(cg->b, LLVMIntSLT, left, cg_i64(cg, CHUNK), "");
    LLVMValueRef len = LLVMBuildSelect(cg->b, small, left, cg_i64(cg, CHUNK), "len");
    e.out = cg_gep(cg, out, cg_iadd(cg, cg_imul(cg, b, cg_item_stride(cg, id)), start));
    for (int32_t k = 0; k < nops; k++) {
        int64_t s = cg_item_stride(cg, nd->inputs[k]);
        e.ops[k] = cg_gep(cg, in[k], cg_iadd(cg, cg_imul(cg, b, s), start));
    }
    cg_vec_loop(cg, len, cg->vec, stream_body, &e);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return kernel_of(fn, n * chunks);
}

/* ---- per-channel operands: add/mul with [N|1, C, 1, 1], batchnorm ------- */

static void chan_body(Cg *cg, void *ctx, LLVMValueRef i, int32_t lanes)
{
    Elt *e = ctx;
    int32_t step = e->chan_lanes; /* blocked: one position per `blk` lanes */
    LLVMValueRef at = step > 1 ? cg_imul(cg, i, step) : i;
    int32_t l = step > 1 ? step : lanes;
    LLVMValueRef x = cg_load(cg, cg_gep(cg, e->ops[0], at), l);
    LLVMValueRef p = cg_splat(cg, e->chan[0], step > 1 ? 1 : l);
    LLVMValueRef y;
    if (e->nd->op == OP_BATCHNORM)
        y = cg_fma(cg, x, p, cg_splat(cg, e->chan[1], step > 1 ? 1 : l));
    else if (e->chan_first)
        y = apply(cg, e->nd, p, x);
    else
        y = apply(cg, e->nd, x, p);
    cg_store(cg, y, cg_gep(cg, e->out, at));
}

/* Runs chan_body over the H*W positions of (n, group), the per-channel
 * operands already loaded into e->chan. */
static void chan_positions(Cg *cg, Elt *e, const CgView *v)
{
    if (v->blk > 1) {
        CgLoop p = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, v->H * v->W), 1, "p");
        chan_body(cg, e, p.iv, v->blk);
        cg_loop_end(cg, &p);
    } else {
        cg_vec_loop(cg, cg_i64(cg, v->H * v->W), cg->vec, chan_body, e);
    }
}

/* Per-channel value(s) of group g: `lanes` floats at src[c0] (a pointer). */
static LLVMValueRef chan_load(Cg *cg, LLVMValueRef src, LLVMValueRef c0, int32_t lanes)
{
    return cg_load(cg, cg_gep(cg, src, c0), lanes);
}

/* Items are (batch item, channel group). `big` is the full-size input;
 * small[k] gives per-channel operands: a pointer and the batch stride of the
 * [N, C] values (0: shared by all items). */
static CgKernel emit_per_channel(Cg *cg, int32_t id, int32_t big, LLVMValueRef *small,
                                 const int64_t *small_stride, int32_t nsmall)
{
    const Node *nd = &cg->g->nodes[id];
    CgView vo = cg_view(cg, id), vi = cg_view(cg, nd->inputs[big]);
    Elt e = {.nd = nd, .nops = 1, .chan_lanes = vo.blk, .chan_first = big == 1};
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_input_ptr(cg, id, big);
    LLVMValueRef sp[2];
    for (int32_t k = 0; k < nsmall; k++)
        sp[k] = small[k] ? small[k] : cg_input_ptr(cg, id, 1 - big);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "it");
    LLVMValueRef n, g, z = cg_i64(cg, 0);
    cg_divmod(cg, it.iv, vo.groups, &n, &g);
    e.out = cg_view_at(cg, &vo, out, n, g, z, z);
    e.ops[0] = cg_view_at(cg, &vi, in, n, g, z, z);
    for (int32_t k = 0; k < nsmall; k++) {
        LLVMValueRef c0 = cg_iadd(cg, cg_imul(cg, n, small_stride[k]), cg_imul(cg, g, vo.blk));
        e.chan[k] = chan_load(cg, sp[k], c0, vo.blk);
    }
    chan_positions(cg, &e, &vo);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return kernel_of(fn, vo.N * vo.groups);
}

static CgKernel emit_batchnorm(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const Node *p[4];
    for (int32_t k = 0; k < 4; k++)
        p[k] = &cg->g->nodes[nd->inputs[1 + k]];
    for (int32_t k = 0; k < 4; k++)
        if (p[k]->op != OP_PARAM || !p[k]->data) /* run-time statistics (evaluation of training) */
            return cg_emit_batchnorm_runtime(cg, id);
    int64_t C = nd->type.dims[1];
    float *ss = ir_xmalloc((size_t)C * 2 * sizeof *ss);
    for (int64_t c = 0; c < C; c++) {
        double scale = (double)p[0]->data[c] / sqrt((double)p[3]->data[c] + nd->attrs.bn.eps);
        ss[c] = (float)scale;
        ss[C + c] = (float)((double)p[1]->data[c] - (double)p[2]->data[c] * scale);
    }
    char name[256];
    snprintf(name, sizeof name, "%s.scale_shift", nd->name);
    LLVMValueRef w = cg_weights(cg, name, ss, 2 * C);
    free(ss);
    LLVMValueRef small[2] = {w, cg_gep(cg, w, cg_i64(cg, C))};
    int64_t strides[2] = {0, 0};
    return emit_per_channel(cg, id, 0, small, strides, 2);
}

/* ---- broadcasting add/mul ----------------------------------------------- */

/* Right-aligned dims of `t` as a rank-r shape. */
static void aligned_dims(const TensorType *t, int32_t r, int64_t *d)
{
    for (int32_t i = 0; i < r; i++) {
        int32_t j = i - (r - t->rank);
        d[i] = j >= 0 ? t->dims[j] : 1;
    }
}

static bool same_storage(const TensorType *a, const TensorType *b)
{
    return ir_type_eq(a, b) && a->layout == b->layout && a->block == b->block;
}

/* Strides of operand `t` through the output dims (0 where broadcast); the
 * leading stride is the operand's batch stride. */
static void bcast_strides(Cg *cg, int32_t opnode, const TensorType *y, int64_t *st)
{
    const TensorType *t = &cg->g->nodes[opnode].type;
    int64_t d[IR_MAX_RANK], s = 1;
    aligned_dims(t, y->rank, d);
    for (int32_t i = y->rank - 1; i >= 0; i--) {
        st[i] = d[i] == 1 ? 0 : s;
        s *= d[i];
    }
    if (t->rank == y->rank && d[0] != 1) st[0] = cg_item_stride(cg, opnode);
}

/* General numpy broadcasting on plain values: one item per output row. */
static CgKernel emit_broadcast(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *y = &nd->type;
    int32_t r = y->rank;
    int64_t sa[IR_MAX_RANK], sb[IR_MAX_RANK], so[IR_MAX_RANK];
    bcast_strides(cg, nd->inputs[0], y, sa);
    bcast_strides(cg, nd->inputs[1], y, sb);
    so[r - 1] = 1;
    for (int32_t i = r - 2; i >= 0; i--)
        so[i] = so[i + 1] * y->dims[i + 1];
    if (r > 1) so[0] = cg_item_stride(cg, id);
    int64_t last = y->dims[r - 1], rows = ir_numel(y) / (last ? last : 1);
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), a = cg_input_ptr(cg, id, 0), b = cg_input_ptr(cg, id, 1);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "row");
    LLVMValueRef rest = it.iv, oa = cg_i64(cg, 0), ob = oa, oo = oa;
    for (int32_t d = r - 2; d >= 0; d--) {
        LLVMValueRef q, idx;
        cg_divmod(cg, rest, y->dims[d], &q, &idx);
        oa = cg_iadd(cg, oa, cg_imul(cg, idx, sa[d]));
        ob = cg_iadd(cg, ob, cg_imul(cg, idx, sb[d]));
        oo = cg_iadd(cg, oo, cg_imul(cg, idx, so[d]));
        rest = q;
    }
    CgLoop w = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, last), 1, "w");
    LLVMValueRef x = cg_load(cg, cg_gep(cg, a, cg_iadd(cg, oa, cg_imul(cg, w.iv, sa[r - 1]))), 1);
    LLVMValueRef z = cg_load(cg, cg_gep(cg, b, cg_iadd(cg, ob, cg_imul(cg, w.iv, sb[r - 1]))), 1);
    cg_store(cg, apply(cg, nd, x, z), cg_gep(cg, out, cg_iadd(cg, oo, w.iv)));
    cg_loop_end(cg, &w);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return kernel_of(fn, rows);
}

static CgKernel emit_binary(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *y = &nd->type;
    const TensorType *a = &cg->g->nodes[nd->inputs[0]].type;
    const TensorType *b = &cg->g->nodes[nd->inputs[1]].type;
    if (same_storage(a, y) && same_storage(b, y)) return emit_stream(cg, id, 2);
    for (int32_t big = 0; big < 2; big++) {
        const TensorType *s = big ? a : b;
        if (same_storage(big ? b : a, y) && ir_is_per_channel(s, y)) {
            int64_t d[4];
            aligned_dims(s, 4, d);
            int64_t stride = d[0] == 1 ? 0 : cg_item_stride(cg, nd->inputs[1 - big]);
            LLVMValueRef small[1] = {NULL};
            return emit_per_channel(cg, id, big, small, &stride, 1);
        }
    }
    if (y->layout == LAYOUT_PLAIN && a->layout == LAYOUT_PLAIN && b->layout == LAYOUT_PLAIN)
        return emit_broadcast(cg, id);
    ir_error(cg->diag, nd->loc,
             "%s of these shapes and layouts is not supported by the CPU backend",
             ir_ops[nd->op].name);
    return (CgKernel){0};
}

CgKernel cg_emit_eltwise(Cg *cg, int32_t node)
{
    const Node *nd = &cg->g->nodes[node];
    switch (nd->op) {
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
        return emit_binary(cg, node);
    case OP_BATCHNORM:
        return emit_batchnorm(cg, node);
    default:
        break;
    }
    const TensorType *x = &cg->g->nodes[nd->inputs[0]].type;
    if (!same_storage(x, &nd->type))
        ICE("%s '%s': input and output layouts differ", ir_ops[nd->op].name, nd->name);
    return emit_stream(cg, node, 1);
}
