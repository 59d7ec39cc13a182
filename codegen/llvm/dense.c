/* dense.c: the fully connected kernel. Weights are packed [O/b][I][b] (O padded
 * to the vector width with zeros) so each work item streams one contiguous
 * panel once for several batch rows, vectorized over output features. */
#include <stdio.h>
#include <stdlib.h>

#include "cg.h"

#define MAX_ROWS 4 /* batch rows sharing one pass over a weight panel */
#define UNROLL 4   /* independent accumulators per panel pass */

typedef struct Dense {
    Cg *cg;
    const Node *n;
    const Epilogue *epi;
    int64_t N, I, O, OB, b;
    int64_t rows, unroll;      /* batch rows per item, accumulators per row */
    int64_t xs, os, rs;        /* elements between rows */
    int64_t per_item;          /* rows per batch item: 1, or numel / I over a higher rank */
    int64_t xi, oi, ri;        /* elements between batch items (per_item > 1) */
    LLVMValueRef x, out, res, w, bias;
    LLVMValueRef ob, n0;       /* output block, first row of the work item */
    LLVMValueRef x0, o0, r0;   /* offsets of row n0 in x, out and the residual */
    LLVMValueRef acc[MAX_ROWS * UNROLL]; /* allocas, promoted to registers */
} Dense;

static const Node *input(const Dense *d, int32_t i)
{
    return &d->cg->g->nodes[d->n->inputs[i]];
}

static LLVMValueRef addc(Cg *cg, LLVMValueRef a, int64_t c)
{
    return c ? LLVMBuildAdd(cg->b, a, cg_i64(cg, c), "") : a;
}

static LLVMValueRef mulc(Cg *cg, LLVMValueRef a, int64_t c)
{
    return c == 1 ? a : LLVMBuildMul(cg->b, a, cg_i64(cg, c), "");
}

static LLVMValueRef pack_weights(Dense *d)
{
    const Node *wn = input(d, 1);
    if (!wn->data)
        ICE("dense %s: weight %s is not bound", d->n->name, wn->name);
    int64_t total = d->OB * d->I * d->b;
    char name[512];
    snprintf(name, sizeof name, "%s.oi%lldo", wn->name, (long long)d->b);
    LLVMValueRef g;
    float *p = cg_weights_begin(d->cg, name, total, &g);
    if (!p)
        return g;
    for (int64_t ob = 0, dst = 0; ob < d->OB; ob++) /* in the packed order */
        for (int64_t i = 0; i < d->I; i++)
            for (int64_t ol = 0; ol < d->b; ol++, dst++) {
                int64_t o = ob * d->b + ol;
                p[dst] = o < d->O ? wn->data[o * d->I + i] : 0.0f;
            }
    cg_weights_end(d->cg);
    return g;
}

static LLVMValueRef pack_bias(Dense *d)
{
    if (ir_bias_input(d->n) < 0)
        return NULL;
    const Node *bn = input(d, 2);
    if (!bn->data)
        ICE("dense %s: bias %s is not bound", d->n->name, bn->name);
    float *p = ir_xcalloc((size_t)(d->OB * d->b), sizeof(float));
    for (int64_t o = 0; o < d->O; o++)
        p[o] = bn->data[o];
    char name[512];
    snprintf(name, sizeof name, "%s.pad%lld", bn->name, (long long)d->b);
    LLVMValueRef g = cg_weights(d->cg, name, p, d->OB * d->b);
    free(p);
    return g;
}

/* acc[r][u] += x[n0 + r][i + u] * w[ob][i + u][:] for u < nu. */
static void fma_step(Dense *d, LLVMValueRef i, int64_t nu)
{
    Cg *cg = d->cg;
    LLVMValueRef wo = mulc(cg, LLVMBuildAdd(cg->b, mulc(cg, d->ob, d->I), i, ""), d->b);
    for (int64_t u = 0; u < nu; u++) {
        LLVMValueRef wv = cg_load(cg, cg_gep(cg, d->w, addc(cg, wo, u * d->b)), (int32_t)d->b);
        for (int64_t r = 0; r < d->rows; r++) {
            LLVMValueRef xo = LLVMBuildAdd(cg->b, addc(cg, d->x0, r * d->xs), i, "");
            LLVMValueRef xv = cg_load(cg, cg_gep(cg, d->x, addc(cg, xo, u)), 1);
            LLVMValueRef slot = d->acc[r * d->unroll + u];
            LLVMValueRef a = LLVMBuildLoad2(cg->b, cg->t_vf32, slot, "");
            a = cg_fma(cg, cg_splat(cg, xv, (int32_t)d->b), wv, a);
            LLVMBuildStore(cg->b, a, slot);
        }
    }
}

/* Stores lanes [0, valid) of v for batch row r (all lanes: one vector store). */
static void store_row(Dense *d, LLVMValueRef v, int64_t r, int64_t valid)
{
    Cg *cg = d->cg;
    LLVMValueRef col = mulc(cg, d->ob, d->b);
    LLVMValueRef oo = LLVMBuildAdd(cg->b, addc(cg, d->o0, r * d->os), col, "");
    LLVMValueRef res = NULL;
    if (d->res) {
        LLVMValueRef ro = LLVMBuildAdd(cg->b, addc(cg, d->r0, r * d->rs), col, "");
        if (valid == d->b) {
            res = cg_load(cg, cg_gep(cg, d->res, ro), (int32_t)d->b);
        } else {
            res = LLVMConstNull(cg->t_vf32);
            for (int64_t l = 0; l < valid; l++) {
                LLVMValueRef s = cg_load(cg, cg_gep(cg, d->res, addc(cg, ro, l)), 1);
                res = LLVMBuildInsertElement(cg->b, res, s, LLVMConstInt(cg->t_i32, (unsigned)l, 0),
                                             "");
            }
        }
    }
    v = cg_epilogue(cg, d->epi, v, res);
    if (valid == d->b) {
        cg_store(cg, v, cg_gep(cg, d->out, oo));
        return;
    }
    for (int64_t l = 0; l < valid; l++)
        cg_store(cg, LLVMBuildExtractElement(cg->b, v, LLVMConstInt(cg->t_i32, (unsigned)l, 0), ""),
                 cg_gep(cg, d->out, addc(cg, oo, l)));
}

static void store_rows(Dense *d, LLVMValueRef *sum, int64_t valid)
{
    for (int64_t r = 0; r < d->rows; r++)
        store_row(d, sum[r], r, valid);
}

/* The finished sums of the item's rows; the last block, when O is not a
 * multiple of b, stores only its valid lanes. */
static void finish(Dense *d)
{
    Cg *cg = d->cg;
    LLVMValueRef sum[MAX_ROWS];
    LLVMValueRef bias = d->bias ? cg_load(cg, cg_gep(cg, d->bias, mulc(cg, d->ob, d->b)),
                                          (int32_t)d->b)
                                : NULL;
    for (int64_t r = 0; r < d->rows; r++) {
        LLVMValueRef s = LLVMBuildLoad2(cg->b, cg->t_vf32, d->acc[r * d->unroll], "");
        for (int64_t u = 1; u < d->unroll; u++)
            s = LLVMBuildFAdd(cg->b, s, LLVMBuildLoad2(cg->b, cg->t_vf32,
                                                       d->acc[r * d->unroll + u], ""), "");
        sum[r] = bias ? LLVMBuildFAdd(cg->b, s, bias, "") : s;
    }
    int64_t tail = d->O % d->b;
    if (!tail) {
        store_rows(d, sum, d->b);
        return;
    }
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
    LLVMBasicBlockRef full = LLVMAppendBasicBlockInContext(cg->ctx, fn, "full");
    LLVMBasicBlockRef part = LLVMAppendBasicBlockInContext(cg->ctx, fn, "part");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, fn, "join");
    LLVMValueRef last = LLVMBuildICmp(cg->b, LLVMIntEQ, d->ob, cg_i64(cg, d->OB - 1), "");
    LLVMBuildCondBr(cg->b, last, part, full);
    LLVMPositionBuilderAtEnd(cg->b, full);
    store_rows(d, sum, d->b);
    LLVMBuildBr(cg->b, join);
    LLVMPositionBuilderAtEnd(cg->b, part);
    store_rows(d, sum, tail);
    LLVMBuildBr(cg->b, join);
    LLVMPositionBuilderAtEnd(cg->b, join);
}

/* One work item: output block ob for `rows` batch rows from n0. */
static void emit_item(Dense *d, LLVMValueRef item)
{
    Cg *cg = d->cg;
    LLVMValueRef gv = cg_i64(cg, d->N / d->rows);
    d->ob = LLVMBuildSDiv(cg->b, item, gv, "ob");
    d->n0 = mulc(cg, LLVMBuildSRem(cg->b, item, gv, ""), d->rows);
    if (d->per_item == 1) {
        d->x0 = mulc(cg, d->n0, d->xs);
        d->o0 = mulc(cg, d->n0, d->os);
        d->r0 = mulc(cg, d->n0, d->rs);
    } else { /* a group of rows never spans two batch items */
        LLVMValueRef n, k;
        cg_divmod(cg, d->n0, d->per_item, &n, &k);
        d->x0 = cg_iadd(cg, mulc(cg, n, d->xi), mulc(cg, k, d->xs));
        d->o0 = cg_iadd(cg, mulc(cg, n, d->oi), mulc(cg, k, d->os));
        d->r0 = cg_iadd(cg, mulc(cg, n, d->ri), mulc(cg, k, d->rs));
    }
    for (int64_t a = 0; a < d->rows * d->unroll; a++)
        LLVMBuildStore(cg->b, LLVMConstNull(cg->t_vf32), d->acc[a]);
    int64_t main = d->I - d->I % d->unroll;
    if (main > 0) {
        CgLoop l = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, main), d->unroll, "i");
        fma_step(d, l.iv, d->unroll);
        cg_loop_end(cg, &l);
    }
    for (int64_t i = main; i < d->I; i++)
        fma_step(d, cg_i64(cg, i), 1);
    finish(d);
}

/* A 2-d input [N, I] has one row per batch item, its items any stride apart;
 * a higher-rank input (dense over its last dim) has numel / (N I) contiguous
 * rows per batch item, and its items are their batch stride apart. */
static void dense_init(Dense *d, Cg *cg, int32_t node)
{
    const Node *n = &cg->g->nodes[node];
    *d = (Dense){.cg = cg, .n = n, .epi = &n->attrs.dense.epi, .b = cg->vec};
    const TensorType *xt = &cg->g->nodes[n->inputs[0]].type;
    int32_t axis = n->attrs.dense.axis < 0 ? n->attrs.dense.axis + xt->rank : n->attrs.dense.axis;
    if (xt->rank < 2 || n->type.rank != xt->rank || xt->layout != LAYOUT_PLAIN ||
        axis != xt->rank - 1)
        ICE("dense %s: expects a plain input, over its last dim", n->name);
    d->I = xt->dims[axis], d->O = n->type.dims[axis];
    d->N = ir_numel(xt) / (d->I ? d->I : 1);
    d->per_item = xt->dims[0] ? d->N / xt->dims[0] : 1;
    d->OB = (d->O + d->b - 1) / d->b;
    int64_t group = d->per_item > 1 ? d->per_item : d->N; /* rows of a group divide this */
    d->rows = group % 4 == 0 ? 4 : group % 3 == 0 ? 3 : group % 2 == 0 ? 2 : 1;
    d->unroll = d->rows >= 3 ? 1 : UNROLL / d->rows;
    int32_t res = d->epi->residual ? n->inputs[ir_residual_input(n)] : -1;
    if (d->per_item == 1) {
        d->xs = cg_item_stride(cg, n->inputs[0]);
        d->os = cg_item_stride(cg, node);
        d->rs = res >= 0 ? cg_item_stride(cg, res) : 0;
        return;
    }
    d->xs = d->I;
    d->os = d->rs = d->O;
    d->xi = cg_item_stride(cg, n->inputs[0]);
    d->oi = cg_item_stride(cg, node);
    d->ri = res >= 0 ? cg_item_stride(cg, res) : 0;
}

/* Work items: output blocks × groups of batch rows, the groups of a block one after
 * the other, so that the block's weight panel, read from memory by the first, is in
 * L2 for the others (block-major, each group read all the weights again: ResNet-50's
 * classifier, 2048→1000 at batch 8, streamed its 8 MB twice). */
CgKernel cg_emit_dense(Cg *cg, int32_t node)
{
    if (!cg_weights_constant(cg, node))
        return cg_emit_dense_runtime(cg, node);
    Dense d;
    dense_init(&d, cg, node);
    d.w = pack_weights(&d);
    d.bias = pack_bias(&d);
    LLVMValueRef fn = cg_kernel_begin(cg, d.n->name);
    for (int64_t a = 0; a < d.rows * d.unroll; a++)
        d.acc[a] = LLVMBuildAlloca(cg->b, cg->t_vf32, "acc");
    d.out = cg_arg_ptr(cg, 0);
    d.x = cg_arg_ptr(cg, 1);
    d.res = d.epi->residual ? cg_arg_ptr(cg, d.n->ninputs) : NULL;
    CgLoop l = cg_loop_begin(cg, cg->begin, cg->end, 1, "item");
    emit_item(&d, l.iv);
    cg_loop_end(cg, &l);
    cg_kernel_end(cg);
    return (CgKernel){fn, d.OB * (d.N / d.rows)};
}

/* ---- weights that are values of the graph (training) ---------------------- */

/* Rows of C per work item, and columns: whole register tiles of either form. */
#define GEMM_ROWS 24
#define DOT_COLS 48

static int64_t gemm_cols(const Cg *cg, const CgGemm *g)
{
    return g->b_n != 1 ? DOT_COLS : 16 * (int64_t)cg->vec;
}

/* The kernel computing `g` (pointers set by `bind` inside it), in work items of
 * blocks of C. */
static CgKernel gemm_kernel(Cg *cg, int32_t node, CgGemm *g,
                            void (*bind)(Cg *, int32_t, CgGemm *))
{
    int64_t nb = gemm_cols(cg, g);
    LLVMValueRef fn = cg_kernel_begin(cg, cg->g->nodes[node].name);
    bind(cg, node, g);
    CgLoop l = cg_loop_begin(cg, cg->begin, cg->end, 1, "item");
    cg_gemm_item(cg, g, GEMM_ROWS, nb, l.iv);
    cg_loop_end(cg, &l);
    cg_kernel_end(cg);
    return (CgKernel){fn, cg_gemm_items(g, GEMM_ROWS, nb)};
}

/* Elements between rows of a plain value read as [rows, last dim]: only values
 * whose rows lie one after another. */
static int64_t row_stride(const Cg *cg, int32_t node)
{
    const TensorType *t = &cg->g->nodes[node].type;
    int64_t last = t->dims[t->rank - 1], per = t->dims[0] ? ir_numel(t) / t->dims[0] : 0;
    if (t->layout != LAYOUT_PLAIN || (t->rank > 2 && cg_item_stride(cg, node) != per))
        ICE("node %d: expects a plain value with contiguous rows", (int)node);
    return t->rank == 2 ? cg_item_stride(cg, node) : last;
}

static void bind_forward(Cg *cg, int32_t node, CgGemm *g)
{
    const Node *n = &cg->g->nodes[node];
    g->c = cg_arg_ptr(cg, 0);
    g->a = cg_input_ptr(cg, node, 0);
    g->b = cg_input_ptr(cg, node, 1);
    int32_t bi = ir_bias_input(n);
    g->bias = bi >= 0 ? cg_input_ptr(cg, node, bi) : NULL;
    g->res = n->attrs.dense.epi.residual ? cg_input_ptr(cg, node, ir_residual_input(n)) : NULL;
}

/* dense(x[M, I], w[O, I]) over the last dim: C = x · wᵀ, rows of both along K. */
CgKernel cg_emit_dense_runtime(Cg *cg, int32_t node)
{
    const Node *n = &cg->g->nodes[node];
    const TensorType *xt = &cg->g->nodes[n->inputs[0]].type;
    int32_t axis = n->attrs.dense.axis < 0 ? n->attrs.dense.axis + xt->rank : n->attrs.dense.axis;
    if (axis != xt->rank - 1)
        ICE("dense %s: a weight that is no constant needs the last dim", n->name);
    int64_t I = xt->dims[axis], O = n->type.dims[axis];
    CgGemm g = {.M = I ? ir_numel(xt) / I : 0, .N = O, .K = I, .a_k = 1, .b_k = 1, .b_n = I};
    g.a_m = row_stride(cg, n->inputs[0]);
    g.c_m = row_stride(cg, node);
    g.epi = &n->attrs.dense.epi;
    if (g.epi->residual)
        g.r_m = row_stride(cg, n->inputs[ir_residual_input(n)]);
    return gemm_kernel(cg, node, &g, bind_forward);
}

static void bind_grads(Cg *cg, int32_t node, CgGemm *g)
{
    g->c = cg_arg_ptr(cg, 0);
    g->a = cg_input_ptr(cg, node, 0);
    g->b = cg_input_ptr(cg, node, 1);
}

/* dense_grad_input(dy[N, O], w[O, I]) → dy · w, [N, I]. */
CgKernel cg_emit_dense_grad_input(Cg *cg, int32_t node)
{
    const Node *n = &cg->g->nodes[node];
    const TensorType *dy = &cg->g->nodes[n->inputs[0]].type;
    CgGemm g = {.M = dy->dims[0], .N = n->type.dims[1], .K = dy->dims[1], .a_k = 1, .b_n = 1};
    g.a_m = row_stride(cg, n->inputs[0]);
    g.b_k = row_stride(cg, n->inputs[1]);
    g.c_m = row_stride(cg, node);
    return gemm_kernel(cg, node, &g, bind_grads);
}

/* dense_grad_weight(dy[N, O], x[N, I]) → dyᵀ · x, [O, I]. */
CgKernel cg_emit_dense_grad_weight(Cg *cg, int32_t node)
{
    const Node *n = &cg->g->nodes[node];
    const TensorType *dy = &cg->g->nodes[n->inputs[0]].type;
    CgGemm g = {.M = dy->dims[1], .N = n->type.dims[1], .K = dy->dims[0], .a_m = 1, .b_n = 1};
    g.a_k = row_stride(cg, n->inputs[0]);
    g.b_k = row_stride(cg, n->inputs[1]);
    g.c_m = row_stride(cg, node);
    return gemm_kernel(cg, node, &g, bind_grads);
}
