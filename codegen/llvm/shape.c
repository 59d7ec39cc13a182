/* shape.c: kernels that move values without arithmetic, on plain layouts:
 * transpose, slice, pad and channel_shuffle. Within a batch item a value is
 * row-major; items are `cg_item_stride` apart (a value may live inside a concat's). */
#include "cg.h"

static bool plain_in_and_out(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    if (nd->type.layout == LAYOUT_PLAIN && cg->g->nodes[nd->inputs[0]].type.layout == LAYOUT_PLAIN)
        return true;
    ir_error(cg->diag, nd->loc, "%s needs plain input and output layouts", ir_ops[nd->op].name);
    return false;
}

/* Row-major strides of `t` within one batch item. */
static void item_strides(const TensorType *t, int64_t *st)
{
    int64_t s = 1;
    for (int32_t i = t->rank - 1; i >= 1; i--) {
        st[i] = s;
        s *= t->dims[i];
    }
}

static int64_t prod(const TensorType *t, int32_t from, int32_t to)
{
    int64_t p = 1;
    for (int32_t i = from; i < to; i++)
        p *= t->dims[i];
    return p;
}

/* One item per output row (every dim but the last): the row's source is found
 * by taking the row index apart into output coordinates; the last output dim
 * walks the input with the stride of the dim it came from (a copy when that
 * is the input's own last dim). */
static CgKernel emit_transpose(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *y = &nd->type, *x = &cg->g->nodes[nd->inputs[0]].type;
    const int32_t *perm = nd->attrs.perm.perm;
    int32_t r = y->rank;
    if (r < 2 || !plain_in_and_out(cg, id))
        return (CgKernel){0};
    int64_t xs[IR_MAX_RANK], ys[IR_MAX_RANK];
    item_strides(x, xs);
    item_strides(y, ys);
    xs[0] = cg_item_stride(cg, nd->inputs[0]);
    ys[0] = cg_item_stride(cg, id);
    int64_t last = y->dims[r - 1], step = xs[perm[r - 1]], rows = prod(y, 0, r - 1);
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_arg_ptr(cg, 1);
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "row");
    LLVMValueRef rest = it.iv, src = cg_i64(cg, 0), dst = src;
    for (int32_t d = r - 2; d >= 0; d--) {
        LLVMValueRef q, idx;
        if (d > 0) {
            cg_divmod(cg, rest, y->dims[d], &q, &idx);
        } else {
            idx = rest;
            q = NULL;
        }
        src = cg_iadd(cg, src, cg_imul(cg, idx, xs[perm[d]]));
        dst = cg_iadd(cg, dst, cg_imul(cg, idx, ys[d]));
        rest = q;
    }
    if (step == 1) {
        LLVMBuildMemCpy(cg->b, cg_gep(cg, out, dst), 4, cg_gep(cg, in, src), 4,
                        cg_i64(cg, last * 4));
    } else {
        CgLoop w = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, last), 1, "w");
        LLVMValueRef v = cg_load(cg, cg_gep(cg, in, cg_iadd(cg, src, cg_imul(cg, w.iv, step))), 1);
        cg_store(cg, v, cg_gep(cg, out, cg_iadd(cg, dst, w.iv)));
        cg_loop_end(cg, &w);
    }
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, rows};
}

/* One item per (batch item, line of the dims before the axis): one block copy. */
static CgKernel emit_slice(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *y = &nd->type, *x = &cg->g->nodes[nd->inputs[0]].type;
    const SliceAttrs *a = &nd->attrs.slice;
    int32_t axis = a->axis < 0 ? a->axis + y->rank : a->axis;
    if (!plain_in_and_out(cg, id))
        return (CgKernel){0};
    int64_t lines = prod(y, 1, axis), inner = prod(y, axis + 1, y->rank);
    int64_t len = (int64_t)(a->end - a->start) * inner, xlen = x->dims[axis] * inner;
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_arg_ptr(cg, 1), n, l;
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "line");
    cg_divmod(cg, it.iv, lines, &n, &l);
    LLVMValueRef src = cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, nd->inputs[0])),
                               cg_iadd(cg, cg_imul(cg, l, xlen), cg_i64(cg, a->start * inner)));
    LLVMValueRef dst = cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, id)), cg_imul(cg, l, len));
    LLVMBuildMemCpy(cg->b, cg_gep(cg, out, dst), 4, cg_gep(cg, in, src), 4, cg_i64(cg, len * 4));
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, y->dims[0] * lines};
}

static void fill(Cg *cg, LLVMValueRef at, int64_t count, float value)
{
    if (count <= 0)
        return;
    CgLoop f = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, count), 1, "f");
    cg_store(cg, cg_f32(cg, value), cg_gep(cg, at, f.iv));
    cg_loop_end(cg, &f);
}

/* One item per output row (n, c, oh): rows inside the input are the padding
 * left, a copy of the input row and the padding right; the others are all
 * padding. */
static CgKernel emit_pad(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *y = &nd->type, *x = &cg->g->nodes[nd->inputs[0]].type;
    const PadAttrs *a = &nd->attrs.pad;
    if (y->rank != 4 || !plain_in_and_out(cg, id))
        return (CgKernel){0};
    int64_t C = y->dims[1], OH = y->dims[2], OW = y->dims[3], H = x->dims[2], W = x->dims[3];
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_arg_ptr(cg, 1), nc, oh, n, c;
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "row");
    cg_divmod(cg, it.iv, OH, &nc, &oh);
    cg_divmod(cg, nc, C, &n, &c);
    LLVMValueRef row = cg_gep(cg, out, cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, id)),
                                               cg_iadd(cg, cg_imul(cg, c, OH * OW),
                                                       cg_imul(cg, oh, OW))));
    LLVMValueRef ih = LLVMBuildSub(cg->b, oh, cg_i64(cg, a->pad[0]), "ih");
    LLVMValueRef inside = LLVMBuildICmp(cg->b, LLVMIntULT, ih, cg_i64(cg, H), "inside");
    LLVMValueRef fn_now = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
    LLVMBasicBlockRef copy = LLVMAppendBasicBlockInContext(cg->ctx, fn_now, "copy");
    LLVMBasicBlockRef blank = LLVMAppendBasicBlockInContext(cg->ctx, fn_now, "blank");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, fn_now, "join");
    LLVMBuildCondBr(cg->b, inside, copy, blank);
    LLVMPositionBuilderAtEnd(cg->b, copy);
    LLVMValueRef src = cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, nd->inputs[0])),
                               cg_iadd(cg, cg_imul(cg, c, H * W), cg_imul(cg, ih, W)));
    fill(cg, row, a->pad[1], a->value);
    LLVMBuildMemCpy(cg->b, cg_gep(cg, row, cg_i64(cg, a->pad[1])), 4, cg_gep(cg, in, src), 4,
                    cg_i64(cg, W * 4));
    fill(cg, cg_gep(cg, row, cg_i64(cg, a->pad[1] + W)), a->pad[3], a->value);
    LLVMBuildBr(cg->b, join);
    LLVMPositionBuilderAtEnd(cg->b, blank);
    fill(cg, row, OW, a->value);
    LLVMBuildBr(cg->b, join);
    LLVMPositionBuilderAtEnd(cg->b, join);
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, y->dims[0] * C * OH};
}

/* One item per output channel plane: channel c = i * g + j is input channel
 * j * (C / g) + i. */
static CgKernel emit_channel_shuffle(Cg *cg, int32_t id)
{
    const Node *nd = &cg->g->nodes[id];
    const TensorType *y = &nd->type;
    if (!plain_in_and_out(cg, id))
        return (CgKernel){0};
    int64_t C = y->dims[1], g = nd->attrs.groups.groups, inner = prod(y, 2, y->rank);
    LLVMValueRef fn = cg_kernel_begin(cg, nd->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0), in = cg_arg_ptr(cg, 1), n, c, i, j;
    CgLoop it = cg_loop_begin(cg, cg->begin, cg->end, 1, "plane");
    cg_divmod(cg, it.iv, C, &n, &c);
    cg_divmod(cg, c, g, &i, &j);
    LLVMValueRef sc = cg_iadd(cg, cg_imul(cg, j, C / g), i);
    LLVMValueRef src = cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, nd->inputs[0])),
                               cg_imul(cg, sc, inner));
    LLVMValueRef dst = cg_iadd(cg, cg_imul(cg, n, cg_item_stride(cg, id)), cg_imul(cg, c, inner));
    LLVMBuildMemCpy(cg->b, cg_gep(cg, out, dst), 4, cg_gep(cg, in, src), 4, cg_i64(cg, inner * 4));
    cg_loop_end(cg, &it);
    cg_kernel_end(cg);
    return (CgKernel){fn, y->dims[0] * C};
}

CgKernel cg_emit_shape(Cg *cg, int32_t node)
{
    switch (cg->g->nodes[node].op) {
    case OP_TRANSPOSE: return emit_transpose(cg, node);
    case OP_SLICE: return emit_slice(cg, node);
    case OP_PAD: return emit_pad(cg, node);
    case OP_CHANNEL_SHUFFLE: return emit_channel_shuffle(cg, node);
    default: break;
    }
    ICE("no shape kernel for op %s", ir_ops[cg->g->nodes[node].op].name);
}
