/* kernels.c: the kernel of each op: a body that instantiates a prelude template
 * with the node's shapes, strides and epilogue as constants, its parameters
 * (values where the memory plan put them, packed weights) and its grid. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"

static const Node *node(const CuGen *g, int32_t id)
{
    return &g->g->nodes[id];
}

static const TensorType *in_type(const CuGen *g, int32_t id, int32_t k)
{
    return &g->g->nodes[g->g->nodes[id].inputs[k]].type;
}

static int64_t prod(const TensorType *t, int32_t from, int32_t to)
{
    int64_t p = 1;
    for (int32_t i = from; i < to; i++)
        p *= t->dims[i];
    return p;
}

static bool unsupported(CuGen *g, int32_t id, const char *what)
{
    const Node *nd = node(g, id);
    ir_error(g->d, nd->loc, "%s '%s': %s is not supported by the CUDA backend",
             ir_ops[nd->op].name, nd->name, what);
    return false;
}

/* ---- conv2d and dense ---------------------------------------------------- */

/* The parts of a conv2d or dense: inputs and its fused epilogue. */
typedef struct Parts {
    const Epilogue *epi;
    int32_t bias, res; /* input indices, -1 if none */
} Parts;

static Parts parts_of(const Node *nd)
{
    return (Parts){ir_epilogue(nd), ir_bias_input(nd), ir_residual_input(nd)};
}

static const char *op_name(CuGen *g, const Node *nd)
{
    char buf[128];
    return ir_strdup(g->p->arena, ir_node_label(nd, buf, sizeof buf));
}

static const char *epi_literal(CuGen *g, const Epilogue *e)
{
    return ir_strfmt(g->p->arena, "CuEpi{%d, %s, %s, %d, %s, %s}", cu_act_code(e->act),
                     cu_float(g, e->act_a), cu_float(g, e->act_b), cu_act_code(e->post),
                     cu_float(g, e->post_a), cu_float(g, e->post_b));
}

/* Weight (and bias) must be embedded constants: kernels read them packed. */
static const Node *param_of(CuGen *g, int32_t id, int32_t k)
{
    const Node *w = node(g, node(g, id)->inputs[k]);
    if (w->op != OP_PARAM || !w->data) {
        unsupported(g, id, "a weight computed at run time");
        return NULL;
    }
    return w;
}

/* Parameters y, x, weights, bias and residual (`nullptr` when absent). */
typedef struct Args {
    const char *y, *x, *w, *tab, *bias, *res;
} Args;

/* `tab` (ntab slots), when given, is the im2col table of a GEMM kernel; `ws`
 * bytes > 0 make y the split-K workspace and leave out bias and residual. */
static Args bind_args(CuGen *g, int32_t id, const Parts *p, const char *wname, const float *w,
                      int64_t nw, const float *tab, int64_t ntab, int64_t ws)
{
    const Node *nd = node(g, id);
    bool shared = tab != NULL && ws == 0;
    Parts none = {.epi = p->epi, .bias = -1, .res = -1};
    p = ws > 0 ? &none : p;
    Args a;
    a.y = ws > 0 ? cu_param_workspace(g, ws) : cu_param_value(g, id);
    a.x = cu_param_value(g, nd->inputs[0]);
    a.w = cu_param_weights(g, wname, w, nw);
    a.tab = tab ? cu_param_weights(g, ir_strfmt(g->p->arena, "%s@im2col", nd->name), tab, ntab)
                : NULL;
    a.bias = p->bias >= 0 ? cu_param_value(g, nd->inputs[p->bias]) : NULL;
    a.res = p->res >= 0 ? cu_param_value(g, nd->inputs[p->res]) : NULL;
    if (shared) { /* a kernel shared by layers takes both, null when absent */
        a.bias = a.bias ? a.bias : cu_param_null(g);
        a.res = a.res ? a.res : cu_param_null(g);
    }
    a.bias = a.bias ? a.bias : "nullptr";
    a.res = a.res ? a.res : "nullptr";
    return a;
}

static const CuTile tiles[] = {{128, 64}, {64, 64}, {128, 32}, {64, 32}, {32, 64}, {32, 32}};

/* The largest tile that still fills one wave of a large GPU (132 SMs): a large
 * tile loads less per multiply, and split-K (below) supplies the warps a layer
 * with few tiles lacks. On an H200 this took ResNet-18 at batch 32 from 4.11 to
 * 3.77 ms against two blocks per SM (264 tiles), ResNet-50 from 10.94 to 10.51. */
CuTile cg_cuda_conv_tile(int64_t M, int64_t N)
{
    int32_t n = (int32_t)(sizeof tiles / sizeof tiles[0]);
    for (int32_t i = 0; i < n; i++) {
        int64_t blocks = (M + tiles[i].bm - 1) / tiles[i].bm * ((N + tiles[i].bn - 1) / tiles[i].bn);
        if (blocks >= 132) return tiles[i];
    }
    return tiles[n - 1];
}

static int64_t round_up(int64_t v, int64_t m)
{
    return (v + m - 1) / m * m;
}

/* Each warp of cu_conv owns a 32x32 tile of the output and reduces the whole
 * of its chunk alone, one mma after another, so a layer needs many warps to
 * hide the latency of its loads: measured on an H200 (132 SMs), ResNet-50's
 * convs at batch 32 ran at 8 TFLOP/s with 784 warps, 20 with 1,568 and 34
 * with 6,272. A layer with fewer than CU_SPLIT_WARPS splits its reduction
 * into enough chunks to reach it, each at least 8 steps long (at most 64). */
#define CU_SPLIT_WARPS 4096

CuSplit cg_cuda_conv_split(int64_t warps, int64_t kdp)
{
    int64_t steps = kdp / CU_CONV_BK, n = (CU_SPLIT_WARPS + warps - 1) / (warps ? warps : 1);
    if (warps >= CU_SPLIT_WARPS || steps < 16) return (CuSplit){1, (int32_t)kdp};
    n = n < steps / 8 ? n : steps / 8;
    n = n < 64 ? n : 64;
    int64_t chunk = (steps + n - 1) / n;
    return (CuSplit){(int32_t)((steps + chunk - 1) / chunk), (int32_t)(chunk * CU_CONV_BK)};
}

int64_t cg_cuda_conv_packed_size(int32_t groups, int64_t K, int64_t C, int64_t R, int64_t S,
                                 int32_t bn)
{
    return groups * round_up(C * R * S, CU_CONV_BK) * round_up(K, bn);
}

void cg_cuda_pack_conv(const float *w, int32_t groups, int64_t K, int64_t C, int64_t R,
                       int64_t S, int32_t bn, float *dst)
{
    int64_t kd = C * R * S, kdp = round_up(kd, CU_CONV_BK), kp = round_up(K, bn);
    memset(dst, 0, (size_t)cg_cuda_conv_packed_size(groups, K, C, R, S, bn) * sizeof *dst);
    for (int64_t g = 0; g < groups; g++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t i = 0; i < kd; i++)
                dst[(g * kdp + i) * kp + k] = w[(g * K + k) * kd + i];
}

/* The shape of an implicit GEMM: a conv2d, or a dense as a 1x1 conv2d. */
typedef struct Gemm {
    int64_t nb, c, h, w, k, r, s, p, q, groups;
    int32_t stride[2], pad[2], dil[2];
    int64_t xn, yn, rn;
} Gemm;

/* Sizes and epilogue go into CuParams: layers with the same tile share the kernel. */
static void gemm_params(CuGen *g, const Gemm *m, const Epilogue *e, int64_t kp, int64_t kdp,
                        CuSplit sp)
{
    CuParams *q = cu_params(g);
    int64_t v[] = {m->c, m->h, m->w, m->k, m->p, m->q, m->pad[0], m->pad[1], m->xn, m->yn, m->rn,
                   kp, m->nb * m->p * m->q, cu_act_code(e->act), cu_act_code(e->post),
                   m->stride[0], m->stride[1], kdp, sp.n, sp.chunk};
    for (int32_t i = 0; i < (int32_t)(sizeof v / sizeof v[0]); i++)
        q->i[i] = (int32_t)v[i];
    q->f[0] = e->act_a, q->f[1] = e->act_b, q->f[2] = e->post_a, q->f[3] = e->post_b;
}

/* The im2col table (see cuda.h) as blob slots: 4 int32 per reduction row. */
static float *im2col_table(const Gemm *m, int64_t kdp)
{
    int32_t *t = ir_xmalloc((size_t)kdp * 4 * sizeof *t);
    int64_t kd = m->c * m->r * m->s;
    for (int64_t i = 0; i < kdp; i++) {
        int64_t c = i / (m->r * m->s), r = i / m->s % m->r, s = i % m->s;
        int32_t dr = (int32_t)(r * m->dil[0]), ds = (int32_t)(s * m->dil[1]);
        int32_t row[4] = {(int32_t)((c * m->h + dr) * m->w + ds), dr, ds, 0};
        int32_t pad[4] = {0, 1 << 29, 1 << 29, 0};
        memcpy(t + 4 * i, i < kd ? row : pad, sizeof row);
    }
    float *f = ir_xmalloc((size_t)kdp * 4 * sizeof *f);
    memcpy(f, t, (size_t)kdp * 4 * sizeof *f);
    free(t);
    return f;
}

/* Split-K: the GEMM kernel wrote each split's partial sums to the workspace;
 * a second kernel of the same node adds them up with the bias and epilogue
 * (prelude.cuh). The first kernel's op says it is split: "conv2d(split-K=8)". */
static bool emit_split_sum(CuGen *g, int32_t id, const Gemm *m, const Parts *p, CuSplit sp,
                           int64_t ws)
{
    CuKernel *k = &g->p->kernels[g->p->nkernels - 1];
    const char *op = k->op, *rest = strchr(op, '+');
    k->op = ir_strfmt(g->p->arena, "%s(split-K=%d)", ir_ops[node(g, id)->op].name, sp.n);
    cu_begin(g, id, ir_strfmt(g->p->arena, "split-K-sum%s", rest ? rest : ""));
    int64_t M = m->nb * m->p * m->q;
    const char *y = cu_param_value(g, id), *w = cu_param_workspace(g, ws);
    const char *bias = p->bias >= 0 ? cu_param_value(g, node(g, id)->inputs[p->bias]) : "nullptr";
    const char *res = p->res >= 0 ? cu_param_value(g, node(g, id)->inputs[p->res]) : "nullptr";
    cu_body(g, "    cu_splitk_sum<%d, %lld, %lld, %lld, %lld, %lld, %lld>(%s, %s, %s, %s, %s);\n",
            sp.n, (long long)m->groups, (long long)M, (long long)m->k, (long long)(m->p * m->q),
            (long long)m->yn, (long long)m->rn, y, w, bias, res, epi_literal(g, p->epi));
    g->k->flops = (int64_t)sp.n * m->groups * m->k * M;
    cu_end_1d(g, m->groups * m->k * M, CU_THREADS);
    return true;
}

static bool emit_gemm(CuGen *g, int32_t id, const Gemm *m, const Parts *p, const float *w,
                      const char *wname)
{
    bool tf32 = g->t.math == CU_MATH_TF32 && g->t.arch >= 80;
    int64_t M = m->nb * m->p * m->q;
    CuTile t = cg_cuda_conv_tile(M, m->k);
    int64_t np = cg_cuda_conv_packed_size((int32_t)m->groups, m->k, m->c, m->r, m->s, t.bn);
    int64_t kdp = round_up(m->c * m->r * m->s, CU_CONV_BK);
    int64_t gx = (M + t.bm - 1) / t.bm, gy = (m->k + t.bn - 1) / t.bn;
    CuSplit sp = cg_cuda_conv_split(gx * gy * m->groups * (t.bm * t.bn / 1024), kdp);
    int64_t ws = sp.n > 1 ? sp.n * m->groups * m->k * M * 4 : 0;
    float *packed = ir_xmalloc((size_t)np * sizeof *packed), *tab = im2col_table(m, kdp);
    cg_cuda_pack_conv(w, (int32_t)m->groups, m->k, m->c, m->r, m->s, t.bn, packed);
    Args a = bind_args(g, id, p, ir_strfmt(g->p->arena, "%s@packed", wname), packed, np, tab,
                       kdp * 4, ws);
    free(packed);
    free(tab);
    gemm_params(g, m, p->epi, round_up(m->k, t.bn), kdp, sp);
    cu_body(g, "    cu_conv<%d, %d, %s, %s>(%s, %s, %s, %s, %s, %s, q);\n", t.bm, t.bn,
            tf32 ? "true" : "false", ws ? "true" : "false", a.y, a.x, a.w, a.tab, a.bias, a.res);
    cu_end(g, (uint32_t)gx, (uint32_t)gy, (uint32_t)(m->groups * sp.n),
           (uint32_t)(t.bm * t.bn / 32));
    return ws ? emit_split_sum(g, id, m, p, sp, ws) : true;
}

static int64_t res_stride(CuGen *g, int32_t id, const Parts *p)
{
    return p->res >= 0 ? cu_item_stride(g, node(g, id)->inputs[p->res]) : 0;
}

static bool emit_dwconv(CuGen *g, int32_t id, const Parts *p, const Node *w)
{
    const Node *nd = node(g, id);
    const ConvAttrs *c = &nd->attrs.conv;
    const TensorType *x = in_type(g, id, 0), *y = &nd->type;
    Args a = bind_args(g, id, p, w->name, w->data, ir_numel(&w->type), NULL, 0, 0);
    cu_body(g, "    cu_dwconv<%lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld, %d, %d, %d, "
            "%d, %d, %d, %lld, %lld, %lld>(\n        %s, %s, %s, %s, %s, %s);\n",
            (long long)y->dims[0], (long long)x->dims[1], (long long)x->dims[2],
            (long long)x->dims[3], (long long)y->dims[1], (long long)w->type.dims[2],
            (long long)w->type.dims[3], (long long)y->dims[2], (long long)y->dims[3],
            c->stride[0], c->stride[1], c->pad[0], c->pad[1], c->dilation[0], c->dilation[1],
            (long long)cu_item_stride(g, nd->inputs[0]), (long long)cu_item_stride(g, id),
            (long long)res_stride(g, id, p), a.y, a.x, a.w, a.bias, a.res, epi_literal(g, p->epi));
    cu_end_1d(g, ir_numel(y), CU_THREADS);
    return true;
}

bool cu_emit_conv2d(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const ConvAttrs *c = &nd->attrs.conv;
    const TensorType *x = in_type(g, id, 0), *y = &nd->type;
    Parts p = parts_of(nd);
    const Node *w = param_of(g, id, 1);
    if (!w) return false;
    if (x->rank != 4 || y->rank != 4) return unsupported(g, id, "a value that is not 4-d");
    if (!cu_fits(g, id, ir_numel(x) + ir_numel(y) + cu_item_stride(g, id) * y->dims[0]))
        return false;
    int64_t groups = c->groups, cpg = w->type.dims[1];
    cu_begin(g, id, op_name(g, nd));
    if (cpg == 1 && groups > 1) return emit_dwconv(g, id, &p, w);
    Gemm m = {.nb = y->dims[0], .c = cpg, .h = x->dims[2], .w = x->dims[3],
              .k = y->dims[1] / groups, .r = w->type.dims[2], .s = w->type.dims[3],
              .p = y->dims[2], .q = y->dims[3], .groups = groups,
              .stride = {c->stride[0], c->stride[1]}, .pad = {c->pad[0], c->pad[1]},
              .dil = {c->dilation[0], c->dilation[1]}, .xn = cu_item_stride(g, nd->inputs[0]),
              .yn = cu_item_stride(g, id), .rn = res_stride(g, id, &p)};
    return emit_gemm(g, id, &m, &p, w->data, w->name);
}

/* Dense over the last dim, of `rows` rows of I features (RPI rows per batch
 * item: [N, I] has one, [N, T, I] has T): few rows (batch 1) stream the weight
 * once with one warp per output feature; many rows run as a 1x1 conv2d, or,
 * where batch items of several rows are spaced apart, a thread per output. */
bool cu_emit_dense(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *x = in_type(g, id, 0), *y = &nd->type;
    Parts p = parts_of(nd);
    const Node *w = param_of(g, id, 1);
    if (!w) return false;
    int32_t axis = nd->attrs.dense.axis < 0 ? nd->attrs.dense.axis + x->rank
                                            : nd->attrs.dense.axis;
    if (x->rank < 2 || axis != x->rank - 1)
        return unsupported(g, id, "dense over a dim other than the last");
    int64_t I = w->type.dims[1], O = w->type.dims[0], rows = ir_numel(x) / (I ? I : 1);
    int64_t nb = x->dims[0], rpi = nb ? rows / nb : rows;
    int64_t xn = cu_item_stride(g, nd->inputs[0]), yn = cu_item_stride(g, id);
    if (!cu_fits(g, id, ir_numel(x) + ir_numel(y) + ir_numel(&w->type) + (xn + yn) * nb))
        return false;
    int64_t rn = res_stride(g, id, &p);
    bool packed = rpi == 1 || (xn == rpi * I && yn == rpi * O && (p.res < 0 || rn == rpi * O));
    cu_begin(g, id, op_name(g, nd));
    if (rows > 8 && packed) {
        Gemm m = {.nb = rows, .c = I, .h = 1, .w = 1, .k = O, .r = 1, .s = 1, .p = 1, .q = 1,
                  .groups = 1, .stride = {1, 1}, .dil = {1, 1}, .xn = rpi == 1 ? xn : I,
                  .yn = rpi == 1 ? yn : O, .rn = rpi == 1 ? rn : O};
        return emit_gemm(g, id, &m, &p, w->data, w->name);
    }
    Args a = bind_args(g, id, &p, w->name, w->data, ir_numel(&w->type), NULL, 0, 0);
    if (rows > 8) { /* cu_gemv keeps a sum per row in registers: only a few rows */
        cu_body(g, "    cu_dense_rows<%lld, %lld, %lld, %lld, %lld, %lld, %lld>(%s, %s, %s, %s, %s, "
                "%s);\n", (long long)rows, (long long)rpi, (long long)I, (long long)O,
                (long long)xn, (long long)yn, (long long)rn, a.y, a.x, a.w, a.bias, a.res,
                epi_literal(g, p.epi));
        cu_end_1d(g, rows * O, CU_THREADS);
        return true;
    }
    cu_body(g, "    cu_gemv<%lld, %lld, %lld, %lld, %lld, %lld, %lld>(%s, %s, %s, %s, %s, %s);\n",
            (long long)rows, (long long)rpi, (long long)I, (long long)O, (long long)xn,
            (long long)yn, (long long)rn, a.y, a.x, a.w, a.bias, a.res,
            epi_literal(g, p.epi));
    cu_end_1d(g, O, CU_THREADS / 32);
    return true;
}

/* ---- pooling ---------------------------------------------------------------- */

bool cu_emit_pool(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *x = in_type(g, id, 0), *y = &nd->type;
    if (x->rank != 4) return unsupported(g, id, "a value that is not 4-d");
    if (!cu_fits(g, id, ir_numel(x) + ir_numel(y) + cu_item_stride(g, id) * y->dims[0]))
        return false;
    const PoolAttrs *a = &nd->attrs.pool;
    long long N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    long long P = y->rank == 4 ? y->dims[2] : 1, Q = y->rank == 4 ? y->dims[3] : 1;
    long long xn = cu_item_stride(g, nd->inputs[0]), yn = cu_item_stride(g, id);
    if (nd->op == OP_AVGPOOL && (a->dilation[0] != 1 || a->dilation[1] != 1))
        return unsupported(g, id, "dilation");
    cu_begin(g, id, ir_ops[nd->op].name);
    const char *py = cu_param_value(g, id), *px = cu_param_value(g, nd->inputs[0]);
    switch (nd->op) {
    case OP_MAXPOOL:
        cu_body(g, "    cu_maxpool<%lld, %lld, %lld, %lld, %lld, %lld, %d, %d, %d, %d, %d, %d, "
                "%d, %d, %lld, %lld>(%s, %s);\n", N, C, H, W, P, Q, a->kernel[0], a->kernel[1],
                a->stride[0], a->stride[1], a->pad[0], a->pad[1], a->dilation[0],
                a->dilation[1], xn, yn, py, px);
        break;
    case OP_AVGPOOL:
        cu_body(g, "    cu_avgpool<%lld, %lld, %lld, %lld, %lld, %lld, %d, %d, %d, %d, %d, %d, "
                "%d, %d, %s, %lld, %lld>(%s, %s);\n", N, C, H, W, P, Q, a->kernel[0],
                a->kernel[1], a->stride[0], a->stride[1], a->pad[0], a->pad[1], a->pad[2],
                a->pad[3], a->count_include_pad ? "true" : "false", xn, yn, py, px);
        break;
    case OP_ADAPTIVE_AVGPOOL:
        cu_body(g, "    cu_adaptive_avgpool<%lld, %lld, %lld, %lld, %lld, %lld, %lld, %lld>"
                "(%s, %s);\n", N, C, H, W, P, Q, xn, yn, py, px);
        break;
    default:
        cu_body(g, "    cu_global_avgpool<%lld, %lld, %lld, %lld, %lld>(%s, %s);\n", N, C, H * W,
                xn, yn, py, px);
        cu_end_1d(g, N * C, CU_THREADS / 32);
        return true;
    }
    cu_end_1d(g, ir_numel(y), CU_THREADS);
    return true;
}

/* ---- elementwise ------------------------------------------------------------ */

/* A kernel from node `id`'s one input to its value, item by item: n items of
 * `per` elements, xn and yn apart; py and px name the two parameters. */
typedef struct Items {
    int64_t n, per, xn, yn;
    const char *py, *px;
} Items;

/* Starts that kernel; false after reporting sizes past 32-bit indices. */
static bool begin_items(CuGen *g, int32_t id, Items *it)
{
    const Node *nd = node(g, id);
    const TensorType *y = &nd->type;
    it->n = y->rank ? y->dims[0] : 1;
    it->per = it->n ? ir_numel(y) / it->n : 0;
    it->xn = cu_item_stride(g, nd->inputs[0]);
    it->yn = cu_item_stride(g, id);
    if (!cu_fits(g, id, ir_numel(y) + (it->xn + it->yn) * it->n)) return false;
    cu_begin(g, id, ir_ops[nd->op].name);
    it->py = cu_param_value(g, id);
    it->px = cu_param_value(g, nd->inputs[0]);
    return true;
}

static bool emit_unary(CuGen *g, int32_t id, Op act, float a, float b)
{
    Items it;
    if (!begin_items(g, id, &it)) return false;
    cu_body(g, "    cu_unary<%lld, %lld, %lld, %lld>(%s, %s, %d, %s, %s);\n", (long long)it.n,
            (long long)it.per, (long long)it.xn, (long long)it.yn, it.py, it.px,
            cu_act_code(act), cu_float(g, a), cu_float(g, b));
    cu_end_1d(g, it.n * it.per, CU_THREADS);
    return true;
}

/* Scale and shift per channel, folded from the four parameters at compile time. */
static bool emit_batchnorm(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *y = &nd->type;
    const Node *q[4];
    for (int32_t k = 0; k < 4; k++)
        if (!(q[k] = param_of(g, id, 1 + k))) return false;
    if (y->rank < 2) return unsupported(g, id, "a value of rank below 2");
    int64_t C = y->dims[1], HW = prod(y, 2, y->rank), n = y->dims[0];
    int64_t xn = cu_item_stride(g, nd->inputs[0]), yn = cu_item_stride(g, id);
    if (!cu_fits(g, id, ir_numel(y) + (xn + yn) * n)) return false;
    float *ss = ir_xmalloc((size_t)C * 2 * sizeof *ss);
    for (int64_t c = 0; c < C; c++) {
        double scale = (double)q[0]->data[c] / sqrt((double)q[3]->data[c] + nd->attrs.bn.eps);
        ss[c] = (float)scale;
        ss[C + c] = (float)((double)q[1]->data[c] - (double)q[2]->data[c] * scale);
    }
    cu_begin(g, id, "batchnorm");
    const char *py = cu_param_value(g, id), *px = cu_param_value(g, nd->inputs[0]);
    const char *pw = cu_param_weights(g, ir_strfmt(g->p->arena, "%s@scale_shift", nd->name),
                                      ss, 2 * C);
    free(ss);
    cu_body(g, "    cu_scale_shift<%lld, %lld, %lld, %lld, %lld>(%s, %s, %s);\n", (long long)n,
            (long long)C, (long long)HW, (long long)xn, (long long)yn, py, px, pw);
    cu_end_1d(g, ir_numel(y), CU_THREADS);
    return true;
}

/* Strides of operand `op` through the output dims y (numpy broadcasting: 0
 * where it repeats); the leading one is its batch stride. */
static void bcast_strides(CuGen *g, int32_t op, const TensorType *y, int64_t *st)
{
    const TensorType *t = &node(g, op)->type;
    int64_t s = 1;
    for (int32_t i = y->rank - 1; i >= 0; i--) {
        int32_t j = i - (y->rank - t->rank);
        int64_t d = j >= 0 ? t->dims[j] : 1;
        st[i] = d == 1 ? 0 : s;
        s *= d;
    }
    if (t->rank == y->rank && y->rank > 1 && t->dims[0] != 1) st[0] = cu_item_stride(g, op);
}

/* One thread per output element; its index is taken apart dim by dim. */
static bool emit_binary(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *y = &nd->type;
    int64_t sa[IR_MAX_RANK] = {0}, sb[IR_MAX_RANK] = {0}, so[IR_MAX_RANK] = {0};
    bcast_strides(g, nd->inputs[0], y, sa);
    bcast_strides(g, nd->inputs[1], y, sb);
    so[y->rank - 1] = 1;
    for (int32_t i = y->rank - 2; i >= 0; i--)
        so[i] = so[i + 1] * y->dims[i + 1];
    if (y->rank > 1) so[0] = cu_item_stride(g, id);
    int64_t total = ir_numel(y);
    if (!cu_fits(g, id, total + (sa[0] + sb[0] + so[0]) * y->dims[0])) return false;
    cu_begin(g, id, ir_ops[nd->op].name);
    const char *py = cu_param_value(g, id), *pa = cu_param_value(g, nd->inputs[0]);
    const char *pb = cu_param_value(g, nd->inputs[1]);
    cu_body(g, "    int i = blockIdx.x * CU_THREADS + threadIdx.x;\n"
            "    if (i >= %lld) return;\n    int a = 0, b = 0, o = 0, d;\n", (long long)total);
    for (int32_t i = y->rank - 1; i >= 0; i--)
        cu_body(g, "    d = i %% %lld;\n    i /= %lld;\n    a += d * %lld;\n    b += d * %lld;\n"
                "    o += d * %lld;\n", (long long)y->dims[i], (long long)y->dims[i],
                (long long)sa[i], (long long)sb[i], (long long)so[i]);
    const char *sign = nd->op == OP_ADD ? "+" : nd->op == OP_SUB ? "-" : nd->op == OP_MUL ? "*" : "/";
    cu_body(g, "    %s[o] = %s[a] %s %s[b];\n", py, pa, sign, pb);
    cu_end_1d(g, total, CU_THREADS);
    return true;
}

bool cu_emit_eltwise(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    if (ir_op_is_act(nd->op)) {
        float a, b;
        ir_act_params(nd, &a, &b);
        return emit_unary(g, id, nd->op, a, b);
    }
    switch (nd->op) {
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV: return emit_binary(g, id);
    case OP_BATCHNORM: return emit_batchnorm(g, id);
    case OP_DROPOUT: return emit_unary(g, id, OP_NO_ACT, 0, 0);
    default: break;
    }
    ICE("no CUDA kernel for op %s", ir_ops[nd->op].name);
}

/* ---- softmax, concat, copies ------------------------------------------------ */

static bool emit_softmax(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *t = &nd->type;
    int32_t axis = nd->attrs.axis.axis < 0 ? nd->attrs.axis.axis + t->rank : nd->attrs.axis.axis;
    int64_t outer = prod(t, 0, axis), len = t->dims[axis], inner = prod(t, axis + 1, t->rank);
    int64_t lpi = axis == 0 ? 1 : outer / t->dims[0];
    int64_t xn = cu_item_stride(g, nd->inputs[0]), yn = cu_item_stride(g, id);
    if (!cu_fits(g, id, ir_numel(t) + (xn + yn) * t->dims[0])) return false;
    cu_begin(g, id, "softmax");
    const char *py = cu_param_value(g, id), *px = cu_param_value(g, nd->inputs[0]);
    cu_body(g, "    cu_softmax<%lld, %lld, %lld, %lld, %lld, %lld>(%s, %s);\n",
            (long long)(outer * inner), (long long)len, (long long)inner, (long long)lpi,
            (long long)xn, (long long)yn, py, px);
    cu_end_1d(g, outer * inner, CU_THREADS / 32);
    return true;
}

/* True if input k of the concat was planned where the concat wants it. */
static bool in_place(CuGen *g, int32_t id, int32_t k, int64_t elem_off)
{
    int64_t oc, oi;
    const Node *c = cu_storage(g, id, &oc);
    const Node *s = cu_storage(g, node(g, id)->inputs[k], &oi);
    return c->mem.kind == MEM_ARENA && s->mem.kind == MEM_ARENA && oi == oc + elem_off * 4 &&
           cu_item_stride(g, node(g, id)->inputs[k]) == cu_item_stride(g, id);
}

/* One kernel copies every input not written in place: the thread index runs
 * over the copied inputs' elements one input after another. */
static bool emit_concat(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *t = &nd->type;
    int32_t axis = nd->attrs.axis.axis < 0 ? nd->attrs.axis.axis + t->rank : nd->attrs.axis.axis;
    if (axis == 0) return unsupported(g, id, "concatenation along the batch axis");
    int64_t inner = prod(t, axis + 1, t->rank), lines = prod(t, 1, axis), at = 0, total = 0;
    int64_t yn = cu_item_stride(g, id);
    if (!cu_fits(g, id, ir_numel(t) + yn * t->dims[0])) return false;
    cu_begin(g, id, "concat");
    const char *py = cu_param_value(g, id);
    for (int32_t k = 0; k < nd->ninputs; k++) {
        int64_t len = in_type(g, id, k)->dims[axis] * inner, off = at;
        at += len;
        if (axis == 1 && in_place(g, id, k, off)) continue;
        int64_t rows = t->dims[0] * lines;
        const char *px = cu_param_value(g, nd->inputs[k]);
        cu_body(g, "    if (i < %lld) {\n        cu_copy<%lld, %lld, %lld, %lld, %lld, %lld, "
                "YL>(%s + %lld, %s, i);\n        return;\n    }\n    i -= %lld;\n",
                (long long)(rows * len), (long long)rows, (long long)len, (long long)lines,
                (long long)cu_item_stride(g, nd->inputs[k]), (long long)len, (long long)yn,
                py, (long long)off, px, (long long)(rows * len));
        total += rows * len;
    }
    if (!total) {
        g->p->nkernels--;
        return true;
    }
    CuText head = {0};
    cu_text_add(&head, "    constexpr int YL = %lld;\n    int i = blockIdx.x * CU_THREADS + "
                "threadIdx.x;\n%s", (long long)at, g->body.s);
    g->body.len = 0;
    cu_body(g, "%s", head.s);
    free(head.s);
    cu_end_1d(g, total, CU_THREADS);
    return true;
}

/* Flatten with storage of its own, and a reorder between plain values: a copy
 * of each batch item. */
static bool emit_copy(CuGen *g, int32_t id)
{
    Items it;
    if (!begin_items(g, id, &it)) return false;
    cu_body(g, "    int i = blockIdx.x * CU_THREADS + threadIdx.x;\n    if (i < %lld) "
            "cu_copy<%lld, %lld, 1, %lld, 0, %lld, 0>(%s, %s, i);\n",
            (long long)(it.n * it.per), (long long)it.n, (long long)it.per, (long long)it.xn,
            (long long)it.yn, it.py, it.px);
    cu_end_1d(g, it.n * it.per, CU_THREADS);
    return true;
}

/* ---- layernorm and data movement --------------------------------------------- */

static bool emit_layernorm(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *t = &nd->type;
    int32_t axis = nd->attrs.norm.axis < 0 ? nd->attrs.norm.axis + t->rank : nd->attrs.norm.axis;
    if (axis < 1 || axis >= t->rank) return unsupported(g, id, "normalizing the batch axis");
    int64_t outer = prod(t, 0, axis), len = t->dims[axis], inner = prod(t, axis + 1, t->rank);
    int64_t lpi = outer / t->dims[0], lines = outer * inner;
    int64_t xn = cu_item_stride(g, nd->inputs[0]), yn = cu_item_stride(g, id);
    if (!cu_fits(g, id, ir_numel(t) + (xn + yn) * t->dims[0])) return false;
    bool warp = inner == 1; /* contiguous lines: a warp reads one coalesced */
    cu_begin(g, id, op_name(g, nd));
    const char *py = cu_param_value(g, id), *px = cu_param_value(g, nd->inputs[0]);
    const char *pw = cu_param_value(g, nd->inputs[1]), *pb = cu_param_value(g, nd->inputs[2]);
    cu_body(g, "    cu_layernorm<%lld, %lld, %lld, %lld, %lld, %lld, %s>(%s, %s, %s, %s, %s);\n",
            (long long)lines, (long long)len, (long long)inner, (long long)lpi, (long long)xn,
            (long long)yn, warp ? "true" : "false", py, px, pw, pb,
            cu_float(g, nd->attrs.norm.eps));
    cu_end_1d(g, lines, warp ? CU_THREADS / 32 : CU_THREADS);
    return true;
}

/* One thread per output element of node `id`, read from its input at `xoff`
 * plus, over the dims of a row-major view of the output, index * xs[dim]. Dim
 * 0 is the batch (xs[0] its input's item stride); dims of size 1 fold away. */
static bool emit_gather(CuGen *g, int32_t id, int32_t rank, const int64_t *dims,
                        const int64_t *xs, int64_t xoff)
{
    const Node *nd = node(g, id);
    const TensorType *y = &nd->type;
    int64_t total = ir_numel(y), n = y->dims[0], per = n ? total / n : 0;
    int64_t xn = xs[0], yn = cu_item_stride(g, id);
    if (!cu_fits(g, id, total + (xn + yn) * n)) return false;
    cu_begin(g, id, op_name(g, nd));
    const char *py = cu_param_value(g, id), *px = cu_param_value(g, nd->inputs[0]);
    cu_body(g, "    int i = blockIdx.x * CU_THREADS + threadIdx.x;\n    if (i >= %lld) return;\n",
            (long long)total);
    if (yn == per)
        cu_body(g, "    int o = i, a = %lld;\n", (long long)xoff);
    else
        cu_body(g, "    int o = i / %lld * %lld + i %% %lld, a = %lld;\n", (long long)per,
                (long long)yn, (long long)per, (long long)xoff);
    for (int32_t k = rank - 1; k > 0; k--)
        if (dims[k] > 1)
            cu_body(g, "    a += i %% %lld * %lld;\n    i /= %lld;\n", (long long)dims[k],
                    (long long)xs[k], (long long)dims[k]);
    cu_body(g, "    a += i * %lld;\n    %s[o] = %s[a];\n", (long long)xn, py, px);
    cu_end_1d(g, total, CU_THREADS);
    return true;
}

/* Row-major strides of input 0 within a batch item, st[0] its item stride. */
static void input_strides(CuGen *g, int32_t id, int64_t *st)
{
    const TensorType *x = in_type(g, id, 0);
    st[x->rank - 1] = 1;
    for (int32_t i = x->rank - 2; i >= 0; i--)
        st[i] = st[i + 1] * x->dims[i + 1];
    st[0] = cu_item_stride(g, node(g, id)->inputs[0]);
}

static bool emit_transpose(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *y = &nd->type;
    const int32_t *perm = nd->attrs.perm.perm;
    int64_t st[IR_MAX_RANK], xs[IR_MAX_RANK];
    input_strides(g, id, st);
    for (int32_t i = 0; i < y->rank; i++)
        xs[i] = st[perm[i]];
    return emit_gather(g, id, y->rank, y->dims, xs, 0);
}

static bool emit_slice(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *y = &nd->type;
    const SliceAttrs *a = &nd->attrs.slice;
    int32_t axis = a->axis < 0 ? a->axis + y->rank : a->axis;
    if (axis < 1 || axis >= y->rank) return unsupported(g, id, "slicing the batch axis");
    int64_t st[IR_MAX_RANK];
    input_strides(g, id, st);
    return emit_gather(g, id, y->rank, y->dims, st, a->start * st[axis]);
}

/* Output channel c = i * g + j reads input channel j * (C / g) + i: the output
 * viewed as [N, C / g, g, inner] reads the input with the middle strides swapped. */
static bool emit_channel_shuffle(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *y = &nd->type;
    int64_t groups = nd->attrs.groups.groups, per = y->dims[1] / groups;
    int64_t inner = prod(y, 2, y->rank);
    int64_t dims[4] = {y->dims[0], per, groups, inner};
    int64_t xs[4] = {cu_item_stride(g, nd->inputs[0]), inner, per * inner, 1};
    return emit_gather(g, id, 4, dims, xs, 0);
}

static bool emit_pad(CuGen *g, int32_t id)
{
    const Node *nd = node(g, id);
    const TensorType *x = in_type(g, id, 0), *y = &nd->type;
    const PadAttrs *a = &nd->attrs.pad;
    if (x->rank != 4 || y->rank != 4) return unsupported(g, id, "a value that is not 4-d");
    long long xn = cu_item_stride(g, nd->inputs[0]), yn = cu_item_stride(g, id);
    if (!cu_fits(g, id, ir_numel(y) + (xn + yn) * y->dims[0])) return false;
    cu_begin(g, id, op_name(g, nd));
    const char *py = cu_param_value(g, id), *px = cu_param_value(g, nd->inputs[0]);
    cu_body(g, "    cu_pad<%lld, %lld, %lld, %lld, %lld, %lld, %d, %d, %lld, %lld>(%s, %s, %s);\n",
            (long long)y->dims[0], (long long)y->dims[1], (long long)x->dims[2],
            (long long)x->dims[3], (long long)y->dims[2], (long long)y->dims[3], a->pad[0],
            a->pad[1], xn, yn, py, px, cu_float(g, a->value));
    cu_end_1d(g, ir_numel(y), CU_THREADS);
    return true;
}

bool cu_emit_misc(CuGen *g, int32_t id)
{
    switch (node(g, id)->op) {
    case OP_SOFTMAX: return emit_softmax(g, id);
    case OP_CONCAT: return emit_concat(g, id);
    case OP_LAYERNORM: return emit_layernorm(g, id);
    case OP_TRANSPOSE: return emit_transpose(g, id);
    case OP_SLICE: return emit_slice(g, id);
    case OP_PAD: return emit_pad(g, id);
    case OP_CHANNEL_SHUFFLE: return emit_channel_shuffle(g, id);
    default: return emit_copy(g, id);
    }
}
