/* interp.c: the reference interpreter. Every op is a naive loop nest over the
 * unoptimized graph that accumulates in double and rounds to float once, with
 * PyTorch's semantics; it is the oracle that backends and passes are tested against. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"

static const char *node_name(const Node *n)
{
    return n->name ? n->name : ir_ops[n->op].name;
}

bool interp_fail(Interp *in, const Node *n, const char *fmt, ...)
{
    if (!in->err || in->errlen == 0)
        return false;
    int k = snprintf(in->err, in->errlen, "node '%s' (%s): ", node_name(n), ir_ops[n->op].name);
    if (k < 0 || (size_t)k >= in->errlen)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->err + k, in->errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return false;
}


static bool is_nchw(const TensorType *t)
{
    return t->rank == 4;
}

/* ---- graph inputs and weights ------------------------------------------- */

static bool run_input(Interp *in, const Node *n, float *out)
{
    int32_t i = in->ninputs_seen++;
    if (!in->inputs || !in->inputs[i])
        return interp_fail(in, n, "no data given for graph input %d", i);
    memcpy(out, in->inputs[i], (size_t)ir_numel(&n->type) * sizeof(float));
    return true;
}

/* Weights are copied rather than aliased so that a result outlives its graph.
 * The message is the one a user of the command line sees, hence no node prefix. */
static bool run_param(Interp *in, const Node *n, float *out)
{
    if (!n->data) {
        if (in->err && in->errlen)
            snprintf(in->err, in->errlen,
                     "parameter '%s' has no weights (use --weights or --random-weights)",
                     node_name(n));
        return false;
    }
    memcpy(out, n->data, (size_t)ir_numel(&n->type) * sizeof(float));
    return true;
}

/* ---- fused epilogues ----------------------------------------------------- */

/* out = post(act(sum) + residual), in double, rounded once. */
static float epilogue(const Epilogue *e, double sum, const float *residual, int64_t at)
{
    double v = ir_act_apply(e->act, sum, e->act_a, e->act_b);
    if (e->residual)
        v += (double)residual[at];
    return (float)ir_act_apply(e->post, v, e->post_a, e->post_b);
}

static const float *residual_of(const Interp *in, const Node *n)
{
    int32_t r = ir_residual_input(n);
    return r >= 0 ? in->values[n->inputs[r]] : NULL;
}

static bool residual_ok(const Interp *in, const Node *n)
{
    int32_t r = ir_residual_input(n);
    return r < 0 || ir_numel(&in->g->nodes[n->inputs[r]].type) == ir_numel(&n->type);
}

/* ---- convolution, normalization, dense ---------------------------------- */

static bool conv_shapes_ok(const Interp *in, const Node *n)
{
    const TensorType *x = arg_type(in, n, 0), *w = arg_type(in, n, 1), *y = &n->type;
    int32_t groups = n->attrs.conv.groups;
    if (!is_nchw(x) || !is_nchw(w) || !is_nchw(y) || groups < 1)
        return false;
    if (w->dims[0] % groups != 0 || w->dims[1] * groups != x->dims[1])
        return false;
    if (y->dims[0] != x->dims[0] || y->dims[1] != w->dims[0])
        return false;
    if (!residual_ok(in, n) || n->ninputs - 2 - (ir_epilogue(n)->residual ? 1 : 0) > 1)
        return false;
    return ir_bias_input(n) < 0 || ir_numel(arg_type(in, n, 2)) == w->dims[0];
}

/* The sums of one output row (batch item b, channel o, row oh) into acc[OW]:
 * over the input channels of its group and the kernel window, taps that fall
 * into the zero padding skipped. Each element adds its products (in double)
 * in the order c, kernel row, kernel column, as a loop over that one element
 * would; running the columns innermost over the whole row only makes the
 * loop contiguous in the input. */
static void conv_row(const ConvAttrs *a, const TensorType *x, const TensorType *w,
                     const float *xv, const float *wv, int64_t b, int64_t o, int64_t oh,
                     int64_t OW, double *acc)
{
    int64_t cpg = w->dims[1], opg = w->dims[0] / a->groups;
    int64_t c0 = (o / opg) * cpg, kh = w->dims[2], kw = w->dims[3];
    int64_t H = x->dims[2], W = x->dims[3], sw = a->stride[1];
    for (int64_t ow = 0; ow < OW; ow++)
        acc[ow] = 0.0;
    for (int64_t c = 0; c < cpg; c++) {
        const float *xc = xv + (b * x->dims[1] + c0 + c) * H * W;
        const float *wc = wv + (o * cpg + c) * kh * kw;
        for (int64_t i = 0; i < kh; i++) {
            int64_t ih = oh * a->stride[0] - a->pad[0] + i * a->dilation[0];
            if (ih < 0 || ih >= H)
                continue;
            const float *xr = xc + ih * W;
            for (int64_t j = 0; j < kw; j++) {
                int64_t lo, hi, off = j * a->dilation[1] - a->pad[1];
                interp_valid_cols(off, sw, W, OW, &lo, &hi);
                double wt = (double)wc[i * kw + j];
                if (sw == 1) /* contiguous: the compiler vectorizes it */
                    for (int64_t ow = lo; ow < hi; ow++)
                        acc[ow] += (double)xr[ow + off] * wt;
                else
                    for (int64_t ow = lo; ow < hi; ow++)
                        acc[ow] += (double)xr[ow * sw + off] * wt;
            }
        }
    }
}

static bool run_conv2d(Interp *in, const Node *n, float *out)
{
    if (!conv_shapes_ok(in, n))
        return interp_fail(in, n, "inconsistent input, weight and output shapes");
    const ConvAttrs *a = &n->attrs.conv;
    if (a->stride[0] < 1 || a->stride[1] < 1)
        return interp_fail(in, n, "stride %d×%d is not positive", a->stride[0], a->stride[1]);
    const TensorType *x = arg_type(in, n, 0), *w = arg_type(in, n, 1), *y = &n->type;
    const float *xv = arg(in, n, 0), *wv = arg(in, n, 1);
    const float *bv = ir_bias_input(n) >= 0 ? arg(in, n, 2) : NULL, *rv = residual_of(in, n);
    int64_t OW = y->dims[3];
    double *acc = ir_try_malloc((OW > 0 ? (size_t)OW : 1) * sizeof *acc);
    if (!acc)
        return interp_fail(in, n, "cannot allocate a row of %lld sums", (long long)OW);
    int64_t at = 0;
    for (int64_t b = 0; b < y->dims[0]; b++)
        for (int64_t o = 0; o < y->dims[1]; o++)
            for (int64_t oh = 0; oh < y->dims[2]; oh++) {
                conv_row(a, x, w, xv, wv, b, o, oh, OW, acc);
                for (int64_t ow = 0; ow < OW; ow++, at++)
                    out[at] = epilogue(&a->epi, bv ? acc[ow] + (double)bv[o] : acc[ow], rv, at);
            }
    free(acc);
    return true;
}

/* Inference-mode batch norm over dim 1: inputs x, weight, bias, mean, var. */
static bool run_batchnorm(Interp *in, const Node *n, float *out)
{
    const TensorType *x = arg_type(in, n, 0);
    if (x->rank < 2 || ir_numel(&n->type) != ir_numel(x))
        return interp_fail(in, n, "inconsistent input and output shapes");
    int64_t C = x->dims[1], inner = prod(x, 2, x->rank), outer = x->dims[0];
    for (int32_t k = 1; k < 5; k++)
        if (ir_numel(arg_type(in, n, k)) != C)
            return interp_fail(in, n, "parameter %d does not have %lld elements", k, (long long)C);
    const float *xv = arg(in, n, 0), *wv = arg(in, n, 1), *bv = arg(in, n, 2);
    const float *mv = arg(in, n, 3), *vv = arg(in, n, 4);
    double eps = (double)n->attrs.bn.eps;
    for (int64_t b = 0; b < outer; b++)
        for (int64_t c = 0; c < C; c++) {
            double scale = (double)wv[c] / sqrt((double)vv[c] + eps);
            for (int64_t i = 0; i < inner; i++) {
                int64_t at = (b * C + c) * inner + i;
                out[at] = (float)(((double)xv[at] - (double)mv[c]) * scale + (double)bv[c]);
            }
        }
    return true;
}

/* y[r, o] = sum_i x[r, i] * W[o, i] + b[o], PyTorch Linear's weight layout. */
/* Over dim `axis`: x viewed as [outer, I, inner], out as [outer, O, inner]. */
static bool run_dense(Interp *in, const Node *n, float *out)
{
    const TensorType *x = arg_type(in, n, 0), *w = arg_type(in, n, 1);
    int32_t axis = n->attrs.dense.axis < 0 ? n->attrs.dense.axis + x->rank : n->attrs.dense.axis;
    if (x->rank < 2 || axis < 1 || axis >= x->rank || w->rank != 2 ||
        w->dims[1] != x->dims[axis])
        return interp_fail(in, n, "input features do not match the weight");
    int64_t I = w->dims[1], O = w->dims[0], outer = prod(x, 0, axis);
    int64_t inner = prod(x, axis + 1, x->rank);
    bool bias = ir_bias_input(n) >= 0;
    if (ir_numel(&n->type) != outer * O * inner || !residual_ok(in, n) ||
        n->ninputs - 2 - (ir_epilogue(n)->residual ? 1 : 0) > 1 ||
        (bias && ir_numel(arg_type(in, n, 2)) != O))
        return interp_fail(in, n, "inconsistent output, bias or residual shape");
    const float *xv = arg(in, n, 0), *wv = arg(in, n, 1);
    const float *bv = bias ? arg(in, n, 2) : NULL, *rv = residual_of(in, n);
    /* The sums of the `inner` positions of (r, o) at once, each adding its
     * products in the order of i, as one loop per position would: the
     * innermost loop runs along the input's contiguous positions. */
    double *acc = ir_try_malloc((inner > 0 ? (size_t)inner : 1) * sizeof *acc);
    if (!acc)
        return interp_fail(in, n, "cannot allocate %lld sums", (long long)inner);
    for (int64_t r = 0; r < outer; r++)
        for (int64_t o = 0; o < O; o++) {
            if (inner == 1) { /* a dot product: one sum, kept in a register */
                double s = bv ? (double)bv[o] : 0.0;
                for (int64_t i = 0; i < I; i++)
                    s += (double)xv[r * I + i] * (double)wv[o * I + i];
                out[r * O + o] = epilogue(&n->attrs.dense.epi, s, rv, r * O + o);
                continue;
            }
            for (int64_t j = 0; j < inner; j++)
                acc[j] = bv ? (double)bv[o] : 0.0;
            for (int64_t i = 0; i < I; i++) {
                const float *xr = xv + (r * I + i) * inner;
                double wt = (double)wv[o * I + i];
                for (int64_t j = 0; j < inner; j++)
                    acc[j] += (double)xr[j] * wt;
            }
            for (int64_t j = 0; j < inner; j++) {
                int64_t at = (r * O + o) * inner + j;
                out[at] = epilogue(&n->attrs.dense.epi, acc[j], rv, at);
            }
        }
    free(acc);
    return true;
}

/* PyTorch's layer_norm over one dim: (x - mean) / sqrt(var + eps) * w + b,
 * with the biased variance. */
static bool run_layernorm(Interp *in, const Node *n, float *out)
{
    const TensorType *x = arg_type(in, n, 0);
    int32_t axis = n->attrs.norm.axis < 0 ? n->attrs.norm.axis + x->rank : n->attrs.norm.axis;
    if (axis < 0 || axis >= x->rank || !ir_dims_eq(x, &n->type) ||
        ir_numel(arg_type(in, n, 1)) != x->dims[axis] ||
        ir_numel(arg_type(in, n, 2)) != x->dims[axis])
        return interp_fail(in, n, "axis out of range or parameter sizes differ");
    int64_t outer = prod(x, 0, axis), len = x->dims[axis], inner = prod(x, axis + 1, x->rank);
    const float *xv = arg(in, n, 0), *wv = arg(in, n, 1), *bv = arg(in, n, 2);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *xl = xv + o * len * inner + j;
            float *yl = out + o * len * inner + j;
            double mean = 0.0, var = 0.0;
            for (int64_t i = 0; i < len; i++)
                mean += (double)xl[i * inner];
            mean /= (double)len;
            for (int64_t i = 0; i < len; i++) {
                double d = (double)xl[i * inner] - mean;
                var += d * d;
            }
            double rstd = 1.0 / sqrt(var / (double)len + (double)n->attrs.norm.eps);
            for (int64_t i = 0; i < len; i++)
                yl[i * inner] =
                    (float)(((double)xl[i * inner] - mean) * rstd * (double)wv[i] + (double)bv[i]);
        }
    return true;
}

/* Row-major strides of `t`. */
static void strides_of(const TensorType *t, int64_t *st)
{
    int64_t s = 1;
    for (int32_t i = t->rank - 1; i >= 0; i--) {
        st[i] = s;
        s *= t->dims[i];
    }
}

/* Every output element from the input element `src` names; -1 is `fill`. The
 * output index is walked as a counter over its dims. */
typedef int64_t (*SourceOf)(const Node *n, const TensorType *x, const int64_t *idx);

static bool run_gather(Interp *in, const Node *n, float *out, SourceOf src, float fill)
{
    const TensorType *x = arg_type(in, n, 0), *y = &n->type;
    if (x->rank != y->rank)
        return interp_fail(in, n, "input and output ranks differ");
    int64_t idx[IR_MAX_RANK] = {0}, count = ir_numel(y);
    const float *xv = arg(in, n, 0);
    for (int64_t k = 0; k < count; k++) {
        int64_t at = src(n, x, idx);
        out[k] = at < 0 ? fill : xv[at];
        for (int32_t d = y->rank - 1; d >= 0; d--) {
            if (++idx[d] < y->dims[d])
                break;
            idx[d] = 0;
        }
    }
    return true;
}

static int64_t transpose_src(const Node *n, const TensorType *x, const int64_t *idx)
{
    int64_t st[IR_MAX_RANK], at = 0;
    strides_of(x, st);
    for (int32_t i = 0; i < x->rank; i++)
        at += idx[i] * st[n->attrs.perm.perm[i]];
    return at;
}

static int64_t slice_src(const Node *n, const TensorType *x, const int64_t *idx)
{
    int64_t st[IR_MAX_RANK], at = 0;
    int32_t axis = n->attrs.slice.axis < 0 ? n->attrs.slice.axis + x->rank : n->attrs.slice.axis;
    strides_of(x, st);
    for (int32_t i = 0; i < x->rank; i++)
        at += (idx[i] + (i == axis ? n->attrs.slice.start : 0)) * st[i];
    return at;
}

static int64_t pad_src(const Node *n, const TensorType *x, const int64_t *idx)
{
    int64_t h = idx[2] - n->attrs.pad.pad[0], w = idx[3] - n->attrs.pad.pad[1];
    if (h < 0 || h >= x->dims[2] || w < 0 || w >= x->dims[3])
        return -1;
    return ((idx[0] * x->dims[1] + idx[1]) * x->dims[2] + h) * x->dims[3] + w;
}

/* Output channel c = i * g + j reads input channel j * (C / g) + i: ShuffleNet's
 * view [N, g, C/g, ...], transpose(1, 2), flatten. */
static int64_t shuffle_src(const Node *n, const TensorType *x, const int64_t *idx)
{
    int64_t st[IR_MAX_RANK], at = 0, g = n->attrs.groups.groups, per = x->dims[1] / g;
    strides_of(x, st);
    for (int32_t i = 0; i < x->rank; i++)
        at += (i == 1 ? (idx[1] % g) * per + idx[1] / g : idx[i]) * st[i];
    return at;
}

static bool run_transpose(Interp *in, const Node *n, float *out)
{
    return run_gather(in, n, out, transpose_src, 0.0f);
}

static bool run_slice(Interp *in, const Node *n, float *out)
{
    return run_gather(in, n, out, slice_src, 0.0f);
}

static bool run_pad(Interp *in, const Node *n, float *out)
{
    if (n->type.rank != 4)
        return interp_fail(in, n, "expects [N, C, H, W] input and output");
    return run_gather(in, n, out, pad_src, n->attrs.pad.value);
}

static bool run_channel_shuffle(Interp *in, const Node *n, float *out)
{
    const TensorType *x = arg_type(in, n, 0);
    int32_t g = n->attrs.groups.groups;
    if (x->rank < 2 || g < 1 || x->dims[1] % g != 0)
        return interp_fail(in, n, "groups do not divide the channels");
    return run_gather(in, n, out, shuffle_src, 0.0f);
}

/* ---- elementwise activations -------------------------------------------- */

/* Activations, and the identity for dropout and reorder. */
static bool run_unary(Interp *in, const Node *n, float *out)
{
    int64_t count = ir_numel(&n->type);
    if (count != ir_numel(arg_type(in, n, 0)))
        return interp_fail(in, n, "input and output sizes differ");
    const float *xv = arg(in, n, 0);
    Op act = ir_op_is_act(n->op) ? n->op : OP_NO_ACT;
    float a, b;
    ir_act_params(n, &a, &b);
    for (int64_t i = 0; i < count; i++)
        out[i] = (float)ir_act_apply(act, (double)xv[i], a, b);
    return true;
}

/* ---- broadcasting binary ops -------------------------------------------- */

/* Numpy broadcasting: ranks aligned on the right, a dim of 1 repeats. */
bool interp_broadcast_strides(const TensorType *t, const TensorType *y, int64_t *strides)
{
    int32_t shift = y->rank - t->rank;
    if (shift < 0)
        return false;
    int64_t s = 1;
    for (int32_t d = y->rank - 1; d >= 0; d--) {
        int64_t dim = d >= shift ? t->dims[d - shift] : 1;
        if (dim != 1 && dim != y->dims[d])
            return false;
        strides[d] = dim == 1 ? 0 : s;
        s *= dim;
    }
    return true;
}

static double binary_of(Op op, double a, double b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    default: ICE("bad binary op %d", (int)op);
    }
}

static bool run_binary(Interp *in, const Node *n, float *out)
{
    const TensorType *y = &n->type;
    int64_t sa[IR_MAX_RANK], sb[IR_MAX_RANK];
    if (!interp_broadcast_strides(arg_type(in, n, 0), y, sa) ||
        !interp_broadcast_strides(arg_type(in, n, 1), y, sb))
        return interp_fail(in, n, "operand shapes do not broadcast to the output shape");
    const float *av = arg(in, n, 0), *bv = arg(in, n, 1);
    int64_t count = ir_numel(y);
    for (int64_t i = 0; i < count; i++) {
        int64_t rest = i, ia = 0, ib = 0;
        for (int32_t d = y->rank - 1; d >= 0; d--) {
            int64_t idx = rest % y->dims[d];
            rest /= y->dims[d];
            ia += idx * sa[d];
            ib += idx * sb[d];
        }
        double a = (double)av[ia], b = (double)bv[ib];
        out[i] = (float)binary_of(n->op, a, b);
    }
    return true;
}

/* ---- data movement ------------------------------------------------------ */

static int32_t norm_axis(int32_t axis, int32_t rank)
{
    return axis < 0 ? axis + rank : axis;
}

static bool concat_shapes_ok(const Interp *in, const Node *n, int32_t axis)
{
    const TensorType *y = &n->type;
    int64_t total = 0;
    for (int32_t k = 0; k < n->ninputs; k++) {
        const TensorType *t = arg_type(in, n, k);
        if (t->rank != y->rank)
            return false;
        for (int32_t d = 0; d < y->rank; d++)
            if (d != axis && t->dims[d] != y->dims[d])
                return false;
        total += t->dims[axis];
    }
    return total == y->dims[axis];
}

/* For each index of the dims before the axis, the inputs' slabs one after another. */
static bool run_concat(Interp *in, const Node *n, float *out)
{
    const TensorType *y = &n->type;
    int32_t axis = norm_axis(n->attrs.axis.axis, y->rank);
    if (axis < 0 || axis >= y->rank || !concat_shapes_ok(in, n, axis))
        return interp_fail(in, n, "inconsistent shapes along axis %d", n->attrs.axis.axis);
    int64_t outer = prod(y, 0, axis);
    float *p = out;
    for (int64_t o = 0; o < outer; o++)
        for (int32_t k = 0; k < n->ninputs; k++) {
            const TensorType *t = arg_type(in, n, k);
            int64_t slab = prod(t, axis, t->rank);
            memcpy(p, arg(in, n, k) + o * slab, (size_t)slab * sizeof(float));
            p += slab;
        }
    return true;
}

static bool run_flatten(Interp *in, const Node *n, float *out)
{
    int64_t count = ir_numel(&n->type);
    if (count != ir_numel(arg_type(in, n, 0)))
        return interp_fail(in, n, "input and output sizes differ");
    memcpy(out, arg(in, n, 0), (size_t)count * sizeof(float));
    return true;
}

/* ---- pooling ------------------------------------------------------------ */

static bool pool_shapes_ok(const Interp *in, const Node *n)
{
    const TensorType *x = arg_type(in, n, 0), *y = &n->type;
    return is_nchw(x) && y->rank >= 2 && y->dims[0] == x->dims[0] && y->dims[1] == x->dims[1];
}

/* Padding acts as -inf: it is never selected. NaN wins, as in PyTorch. */
static float max_window(const PoolAttrs *a, const float *plane, int64_t H, int64_t W, int64_t oh,
                        int64_t ow)
{
    float m = -INFINITY;
    for (int64_t i = 0; i < a->kernel[0]; i++) {
        int64_t ih = oh * a->stride[0] - a->pad[0] + i * a->dilation[0];
        for (int64_t j = 0; ih >= 0 && ih < H && j < a->kernel[1]; j++) {
            int64_t iw = ow * a->stride[1] - a->pad[1] + j * a->dilation[1];
            if (iw < 0 || iw >= W)
                continue;
            float v = plane[ih * W + iw];
            if (v > m || isnan(v))
                m = v;
        }
    }
    return m;
}

static bool run_maxpool(Interp *in, const Node *n, float *out)
{
    if (!pool_shapes_ok(in, n) || n->type.rank != 4)
        return interp_fail(in, n, "expects [N, C, H, W] input and output");
    const TensorType *x = arg_type(in, n, 0), *y = &n->type;
    int64_t H = x->dims[2], W = x->dims[3], planes = y->dims[0] * y->dims[1];
    const float *xv = arg(in, n, 0);
    float *p = out;
    for (int64_t c = 0; c < planes; c++)
        for (int64_t oh = 0; oh < y->dims[2]; oh++)
            for (int64_t ow = 0; ow < y->dims[3]; ow++)
                *p++ = max_window(&n->attrs.pool, xv + c * H * W, H, W, oh, ow);
    return true;
}

/* PyTorch's avg_pool2d: the window is first clipped to the padded input, which
 * gives the count_include_pad divisor, then to the input itself. */
AvgWindow interp_avg_window(const PoolAttrs *a, int64_t H, int64_t W, int64_t oh, int64_t ow)
{
    int64_t hs = oh * a->stride[0] - a->pad[0], ws = ow * a->stride[1] - a->pad[1];
    int64_t he = hs + a->kernel[0], we = ws + a->kernel[1];
    he = he < H + a->pad[2] ? he : H + a->pad[2];
    we = we < W + a->pad[3] ? we : W + a->pad[3];
    int64_t pool_size = (he - hs) * (we - ws);
    AvgWindow w = {hs > 0 ? hs : 0, he < H ? he : H, ws > 0 ? ws : 0, we < W ? we : W, 0};
    w.divisor = a->count_include_pad ? pool_size : (w.he - w.hs) * (w.we - w.ws);
    return w;
}

static double avg_window(const PoolAttrs *a, const float *plane, int64_t H, int64_t W, int64_t oh,
                         int64_t ow)
{
    AvgWindow w = interp_avg_window(a, H, W, oh, ow);
    double sum = 0.0;
    for (int64_t ih = w.hs; ih < w.he; ih++)
        for (int64_t iw = w.ws; iw < w.we; iw++)
            sum += (double)plane[ih * W + iw];
    return sum / (double)w.divisor;
}

static bool run_avgpool(Interp *in, const Node *n, float *out)
{
    if (!pool_shapes_ok(in, n) || n->type.rank != 4)
        return interp_fail(in, n, "expects [N, C, H, W] input and output");
    if (n->attrs.pool.dilation[0] != 1 || n->attrs.pool.dilation[1] != 1)
        return interp_fail(in, n, "dilation is not supported by avgpool");
    const TensorType *x = arg_type(in, n, 0), *y = &n->type;
    int64_t H = x->dims[2], W = x->dims[3], planes = y->dims[0] * y->dims[1];
    const float *xv = arg(in, n, 0);
    float *p = out;
    for (int64_t c = 0; c < planes; c++)
        for (int64_t oh = 0; oh < y->dims[2]; oh++)
            for (int64_t ow = 0; ow < y->dims[3]; ow++)
                *p++ = (float)avg_window(&n->attrs.pool, xv + c * H * W, H, W, oh, ow);
    return true;
}

static bool run_global_avgpool(Interp *in, const Node *n, float *out)
{
    const TensorType *x = arg_type(in, n, 0);
    if (!pool_shapes_ok(in, n) || ir_numel(&n->type) != x->dims[0] * x->dims[1])
        return interp_fail(in, n, "expects [N, C, H, W] input and [N, C, 1, 1] output");
    int64_t hw = x->dims[2] * x->dims[3], planes = x->dims[0] * x->dims[1];
    const float *xv = arg(in, n, 0);
    for (int64_t c = 0; c < planes; c++) {
        double sum = 0.0;
        for (int64_t i = 0; i < hw; i++)
            sum += (double)xv[c * hw + i];
        out[c] = (float)(sum / (double)hw);
    }
    return true;
}

/* Bin i of `out` bins over `in` elements: [floor(i*in/out), ceil((i+1)*in/out)). */
void interp_adaptive_bin(int64_t i, int64_t in, int64_t out, int64_t *start, int64_t *end)
{
    *start = i * in / out;
    *end = ((i + 1) * in + out - 1) / out;
}

static bool run_adaptive_avgpool(Interp *in, const Node *n, float *out)
{
    if (!pool_shapes_ok(in, n) || n->type.rank != 4)
        return interp_fail(in, n, "expects [N, C, H, W] input and output");
    const TensorType *x = arg_type(in, n, 0), *y = &n->type;
    int64_t H = x->dims[2], W = x->dims[3], planes = y->dims[0] * y->dims[1];
    const float *xv = arg(in, n, 0);
    float *p = out;
    for (int64_t c = 0; c < planes; c++)
        for (int64_t oh = 0; oh < y->dims[2]; oh++)
            for (int64_t ow = 0; ow < y->dims[3]; ow++) {
                int64_t hs, he, ws, we;
                interp_adaptive_bin(oh, H, y->dims[2], &hs, &he);
                interp_adaptive_bin(ow, W, y->dims[3], &ws, &we);
                double sum = 0.0;
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++)
                        sum += (double)xv[(c * H + ih) * W + iw];
                *p++ = (float)(sum / (double)((he - hs) * (we - ws)));
            }
    return true;
}

/* ---- softmax ------------------------------------------------------------ */

/* Subtracting the maximum keeps exp() from overflowing; the result is the same. */
static void softmax_line(const float *x, float *y, int64_t len, int64_t step)
{
    double m = -INFINITY, sum = 0.0;
    for (int64_t i = 0; i < len; i++)
        m = (double)x[i * step] > m ? (double)x[i * step] : m;
    for (int64_t i = 0; i < len; i++)
        sum += exp((double)x[i * step] - m);
    for (int64_t i = 0; i < len; i++)
        y[i * step] = (float)(exp((double)x[i * step] - m) / sum);
}

static bool run_softmax(Interp *in, const Node *n, float *out)
{
    const TensorType *y = &n->type;
    int32_t axis = norm_axis(n->attrs.axis.axis, y->rank);
    if (axis < 0 || axis >= y->rank || !ir_type_eq(y, arg_type(in, n, 0)))
        return interp_fail(in, n, "axis %d out of range or output type differs from input",
                    n->attrs.axis.axis);
    int64_t outer = prod(y, 0, axis), len = y->dims[axis], inner = prod(y, axis + 1, y->rank);
    const float *xv = arg(in, n, 0);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            softmax_line(xv + o * len * inner + i, out + o * len * inner + i, len, inner);
    return true;
}

/* ---- driver ------------------------------------------------------------- */

/* One runner per op; every activation is run_unary with its formula. */
static bool (*const runners[OP_COUNT])(Interp *in, const Node *n, float *out) = {
    [OP_INPUT] = run_input,
    [OP_PARAM] = run_param,
    [OP_CONV2D] = run_conv2d,
    [OP_BATCHNORM] = run_batchnorm,
    [OP_DENSE] = run_dense,
    [OP_DROPOUT] = run_unary,
    [OP_REORDER] = run_unary,
    [OP_ADD] = run_binary,
    [OP_MUL] = run_binary,
    [OP_SUB] = run_binary,
    [OP_DIV] = run_binary,
    [OP_CONCAT] = run_concat,
    [OP_MAXPOOL] = run_maxpool,
    [OP_AVGPOOL] = run_avgpool,
    [OP_GLOBAL_AVGPOOL] = run_global_avgpool,
    [OP_ADAPTIVE_AVGPOOL] = run_adaptive_avgpool,
    [OP_FLATTEN] = run_flatten,
    [OP_SOFTMAX] = run_softmax,
    [OP_LAYERNORM] = run_layernorm,
    [OP_TRANSPOSE] = run_transpose,
    [OP_SLICE] = run_slice,
    [OP_PAD] = run_pad,
    [OP_CHANNEL_SHUFFLE] = run_channel_shuffle,
#define X(e, f) [OP_##e] = interp_run_##f,
    INTERP_TRAIN_RUNNERS(X)
#undef X
};

bool ir_interp_supports(Op op)
{
    if (op < 0 || op >= OP_COUNT)
        return false;
    return ir_op_is_act(op) ? ir_act_has_formula(op) : runners[op] != NULL;
}

static bool run_node(Interp *in, const Node *n, float *out)
{
    if (!ir_interp_supports(n->op))
        ICE("interpreter: unknown op %d", (int)n->op);
    return ir_op_is_act(n->op) ? run_unary(in, n, out) : runners[n->op](in, n, out);
}

/* What the interpreter refuses before running a node: it only knows f32
 * tensors whose types inference has computed. Layouts are storage choices of
 * the backend; values here are always logical (row-major), so a reorder is a
 * copy and any pass's output runs unchanged. */
static bool node_runnable(Interp *in, const Node *n)
{
    const TensorType *t = &n->type;
    if ((unsigned)n->op >= (unsigned)OP_COUNT)
        ICE("interpreter: unknown op %d", (int)n->op);
    const OpInfo *info = &ir_ops[n->op];
    if (n->ninputs < info->min_inputs || (info->max_inputs >= 0 && n->ninputs > info->max_inputs))
        return interp_fail(in, n, "has %d inputs, which the op does not take", n->ninputs);
    if (t->dtype == DT_INVALID)
        return interp_fail(in, n, "has an invalid type (shape inference failed or did not run)");
    if (t->dtype != DT_F32)
        return interp_fail(in, n, "the interpreter supports f32 only, not %s",
                           ir_dtype_name(t->dtype));
    if (t->rank < 0 || t->rank > IR_MAX_RANK || ir_numel_checked(t->rank, t->dims) < 0)
        return interp_fail(in, n, "has a malformed type");
    for (int32_t k = 0; k < n->ninputs; k++)
        if (n->inputs[k] < 0 || n->inputs[k] >= (int32_t)(n - in->g->nodes))
            return interp_fail(in, n, "input %d refers to node %d, which does not precede it", k,
                        n->inputs[k]);
    return true;
}

/* Every value is kept to the end of the run, so all of them must fit at once;
 * a model can ask for more than the machine has, which is its error, not an abort. */
static bool values_fit(const Interp *in)
{
    uint64_t total = 0, have = ir_memory_bytes();
    bool over = false;
    for (int32_t i = 0; i < in->g->nnodes && !over; i++) {
        const TensorType *t = &in->g->nodes[i].type;
        int64_t n = ir_numel_checked(t->rank, t->dims);
        uint64_t bytes = n > 0 ? (uint64_t)n * sizeof(float) : 0;
        over = __builtin_add_overflow(total, bytes, &total) || total > have;
    }
    if (!over)
        return true;
    if (in->err && in->errlen)
        snprintf(in->err, in->errlen, "the interpreter keeps every value of graph '%s', "
                 "which takes more than the %.3g GiB of memory of this machine", in->g->name,
                 (double)have / (1 << 30));
    return false;
}

static float *alloc_value(Interp *in, const Node *n)
{
    int64_t count = ir_numel(&n->type);
    float *v = ir_try_malloc((count > 0 ? (size_t)count : 1) * sizeof(float));
    if (!v)
        interp_fail(in, n, "cannot allocate %.1f GiB for its value",
             (double)count * sizeof(float) / (1 << 30));
    return v;
}

bool ir_interp(const Graph *g, const float *const *inputs, InterpResult *res, char *err,
               size_t errlen)
{
    Interp in = {.g = g, .inputs = inputs, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    res->nnodes = g->nnodes;
    res->values = ir_xcalloc(g->nnodes > 0 ? (size_t)g->nnodes : 1, sizeof(float *));
    in.values = res->values;
    if (!values_fit(&in)) {
        ir_interp_free(res);
        return false;
    }
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (!node_runnable(&in, n)) {
            ir_interp_free(res);
            return false;
        }
        res->values[i] = alloc_value(&in, n);
        if (!res->values[i] || !run_node(&in, n, res->values[i])) {
            ir_interp_free(res);
            return false;
        }
    }
    return true;
}

void ir_interp_free(InterpResult *res)
{
    if (!res->values)
        return;
    for (int32_t i = 0; i < res->nnodes; i++)
        free(res->values[i]);
    free(res->values);
    res->values = NULL;
    res->nnodes = 0;
}
