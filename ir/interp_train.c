/* interp_train.c: the reference interpreter's runners of the ops of a training step
 * (gradients, batch statistics, losses, optimizer updates; docs/training.md), naive
 * loops accumulating in double with PyTorch's semantics. A gradient that several
 * outputs scatter into is summed in a double buffer and rounded once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"


/* A zeroed double buffer of `count` elements, or NULL after a message. */
static double *acc_new(Interp *in, const Node *n, int64_t count)
{
    double *a = ir_try_malloc((count > 0 ? (size_t)count : 1) * sizeof(double));
    if (!a) {
        interp_fail(in, n, "cannot allocate %.1f GiB to accumulate in",
             (double)count * sizeof(double) / (1 << 30));
        return NULL;
    }
    memset(a, 0, (count > 0 ? (size_t)count : 1) * sizeof(double));
    return a;
}

/* Rounds the accumulator into `out` and frees it. */
static bool acc_store(double *a, float *out, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        out[i] = (float)a[i];
    free(a);
    return true;
}

static int32_t axis_of(int32_t axis, int32_t rank)
{
    return axis < 0 ? axis + rank : axis;
}

/* ---- convolution and dense ---------------------------------------------- */

/* dy [N, O, OH, OW], weight [O, C/g, kh, kw], x [N, C, H, W]. */
static bool conv_grad_shapes_ok(const ConvAttrs *a, const TensorType *dy, const TensorType *w,
                                const TensorType *x)
{
    if (dy->rank != 4 || w->rank != 4 || x->rank != 4 || a->groups < 1)
        return false;
    return w->dims[0] % a->groups == 0 && w->dims[1] * a->groups == x->dims[1] &&
           dy->dims[1] == w->dims[0] && dy->dims[0] == x->dims[0] && w->dims[2] == a->kernel[0] &&
           w->dims[3] == a->kernel[1];
}

/* The gradients of conv2d sum the products of every (dy element, weight tap,
 * input element) the forward conv multiplied together. Each accumulator adds
 * its products in the order of the loop nest (b, o, oh, ow, c, kernel row,
 * kernel column): the loops below are arranged so that every element still
 * does, while the inner loops run without recomputing the indices. */
typedef struct ConvDims {
    int64_t cpg, opg, kh, kw, C, H, W, O, OH, OW, N;
} ConvDims;

static ConvDims conv_dims(const TensorType *dy, const TensorType *w, const TensorType *x,
                          int32_t groups)
{
    return (ConvDims){w->dims[1], w->dims[0] / groups, w->dims[2], w->dims[3], x->dims[1],
                      x->dims[2], x->dims[3], dy->dims[1], dy->dims[2], dy->dims[3],
                      dy->dims[0]};
}

/* dx[b, c, ih, iw] += dy[b, o, oh, ow] · w[o, c, i, j]: for one input element the
 * products arrive with (o, oh, ow) ascending, as in the loop nest above. */
static void conv_grad_input(const ConvAttrs *a, const ConvDims *d, const float *dy,
                            const float *w, double *dx)
{
    int64_t sh = a->stride[0], sw = a->stride[1];
    for (int64_t b = 0; b < d->N; b++)
        for (int64_t o = 0; o < d->O; o++)
            for (int64_t oh = 0; oh < d->OH; oh++) {
                const float *dyr = dy + ((b * d->O + o) * d->OH + oh) * d->OW;
                for (int64_t c = 0; c < d->cpg; c++) {
                    int64_t cx = (o / d->opg) * d->cpg + c;
                    for (int64_t i = 0; i < d->kh; i++) {
                        int64_t ih = oh * sh - a->pad[0] + i * a->dilation[0];
                        if (ih < 0 || ih >= d->H)
                            continue;
                        double *dxr = dx + ((b * d->C + cx) * d->H + ih) * d->W;
                        const float *wr = w + ((o * d->cpg + c) * d->kh + i) * d->kw;
                        for (int64_t ow = 0; ow < d->OW; ow++) {
                            double g = (double)dyr[ow];
                            int64_t iw0 = ow * sw - a->pad[1];
                            for (int64_t j = 0; j < d->kw; j++) {
                                int64_t iw = iw0 + j * a->dilation[1];
                                if (iw >= 0 && iw < d->W)
                                    dxr[iw] += g * (double)wr[j];
                            }
                        }
                    }
                }
            }
}

/* dw[o, c, i, j] += dy[b, o, oh, ow] · x[b, c, ih, iw]: for one weight the
 * products arrive with (b, oh, ow) ascending, as in the loop nest above. */
static void conv_grad_weight(const ConvAttrs *a, const ConvDims *d, const float *dy,
                             const float *x, double *dw)
{
    int64_t sh = a->stride[0], sw = a->stride[1];
    for (int64_t b = 0; b < d->N; b++)
        for (int64_t o = 0; o < d->O; o++)
            for (int64_t c = 0; c < d->cpg; c++) {
                const float *xc = x + (b * d->C + (o / d->opg) * d->cpg + c) * d->H * d->W;
                for (int64_t i = 0; i < d->kh; i++)
                    for (int64_t j = 0; j < d->kw; j++) {
                        int64_t lo, hi, off = j * a->dilation[1] - a->pad[1];
                        interp_valid_cols(off, sw, d->W, d->OW, &lo, &hi);
                        double *acc = &dw[((o * d->cpg + c) * d->kh + i) * d->kw + j];
                        double s = *acc;
                        for (int64_t oh = 0; oh < d->OH; oh++) {
                            int64_t ih = oh * sh - a->pad[0] + i * a->dilation[0];
                            if (ih < 0 || ih >= d->H)
                                continue;
                            const float *dyr = dy + ((b * d->O + o) * d->OH + oh) * d->OW;
                            const float *xr = xc + ih * d->W + off;
                            for (int64_t ow = lo; ow < hi; ow++)
                                s += (double)dyr[ow] * (double)xr[ow * sw];
                        }
                        *acc = s;
                    }
            }
}

/* dy, weight, x → dL/dx */
bool interp_run_conv2d_grad_input(Interp *in, const Node *n, float *out)
{
    const TensorType *dy = arg_type(in, n, 0), *w = arg_type(in, n, 1), *x = arg_type(in, n, 2);
    if (!conv_grad_shapes_ok(&n->attrs.conv, dy, w, x) || ir_numel(&n->type) != ir_numel(x) ||
        n->attrs.conv.stride[0] < 1 || n->attrs.conv.stride[1] < 1)
        return interp_fail(in, n, "inconsistent gradient, weight and input shapes");
    double *acc = acc_new(in, n, ir_numel(x));
    if (!acc)
        return false;
    ConvDims d = conv_dims(dy, w, x, n->attrs.conv.groups);
    conv_grad_input(&n->attrs.conv, &d, arg(in, n, 0), arg(in, n, 1), acc);
    return acc_store(acc, out, ir_numel(x));
}

/* dy, x, weight → dL/dweight */
bool interp_run_conv2d_grad_weight(Interp *in, const Node *n, float *out)
{
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1), *w = arg_type(in, n, 2);
    if (!conv_grad_shapes_ok(&n->attrs.conv, dy, w, x) || ir_numel(&n->type) != ir_numel(w) ||
        n->attrs.conv.stride[0] < 1 || n->attrs.conv.stride[1] < 1)
        return interp_fail(in, n, "inconsistent gradient, input and weight shapes");
    double *acc = acc_new(in, n, ir_numel(w));
    if (!acc)
        return false;
    ConvDims d = conv_dims(dy, w, x, n->attrs.conv.groups);
    conv_grad_weight(&n->attrs.conv, &d, arg(in, n, 0), arg(in, n, 1), acc);
    return acc_store(acc, out, ir_numel(w));
}

/* out[M, N] = sum over k of a[i * ai + k * ak] * b[k * bk + j] in double: the products
 * of dense's gradients, whose operands are read along either dim. */
static void matmul(const float *a, int64_t ai, int64_t ak, const float *b, int64_t bk,
                   int64_t M, int64_t K, int64_t N, float *out)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++)
                s += (double)a[i * ai + k * ak] * (double)b[k * bk + j];
            out[i * N + j] = (float)s;
        }
}

/* dy [N, O], weight [O, I] → [N, I]: sum_o dy[n, o] w[o, i] */
bool interp_run_dense_grad_input(Interp *in, const Node *n, float *out)
{
    const TensorType *dy = arg_type(in, n, 0), *w = arg_type(in, n, 1);
    if (dy->rank != 2 || w->rank != 2 || dy->dims[1] != w->dims[0] ||
        ir_numel(&n->type) != dy->dims[0] * w->dims[1])
        return interp_fail(in, n, "inconsistent gradient and weight shapes");
    int64_t O = w->dims[0], I = w->dims[1];
    matmul(arg(in, n, 0), O, 1, arg(in, n, 1), I, dy->dims[0], O, I, out);
    return true;
}

/* dy [N, O], x [N, I] → [O, I]: sum_n dy[n, o] x[n, i] */
bool interp_run_dense_grad_weight(Interp *in, const Node *n, float *out)
{
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1);
    if (dy->rank != 2 || x->rank != 2 || dy->dims[0] != x->dims[0] ||
        ir_numel(&n->type) != dy->dims[1] * x->dims[1])
        return interp_fail(in, n, "inconsistent gradient and input shapes");
    int64_t O = dy->dims[1], I = x->dims[1];
    matmul(arg(in, n, 0), 1, O, arg(in, n, 1), I, O, dy->dims[0], I, out);
    return true;
}

/* dy summed over every dim but `axis`. */
bool interp_run_bias_grad(Interp *in, const Node *n, float *out)
{
    const TensorType *dy = arg_type(in, n, 0);
    int32_t axis = axis_of(n->attrs.axis.axis, dy->rank);
    if (axis < 0 || axis >= dy->rank || ir_numel(&n->type) != dy->dims[axis])
        return interp_fail(in, n, "axis %d out of range or output size differs",
                           n->attrs.axis.axis);
    int64_t outer = prod(dy, 0, axis), len = dy->dims[axis], inner = prod(dy, axis + 1, dy->rank);
    const float *dv = arg(in, n, 0);
    for (int64_t c = 0; c < len; c++) {
        double s = 0.0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++)
                s += (double)dv[(o * len + c) * inner + i];
        out[c] = (float)s;
    }
    return true;
}

/* dy * act'(x) */
bool interp_run_act_grad(Interp *in, const Node *n, float *out)
{
    int64_t count = ir_numel(&n->type);
    if (ir_numel(arg_type(in, n, 0)) != count || ir_numel(arg_type(in, n, 1)) != count)
        return interp_fail(in, n, "gradient, input and output sizes differ");
    const ActGradAttrs *a = &n->attrs.actgrad;
    if (!ir_op_is_act(a->act) && a->act != OP_NO_ACT)
        return interp_fail(in, n, "act_grad of %s, which is not an activation",
                           ir_ops[a->act].name);
    const float *dv = arg(in, n, 0), *xv = arg(in, n, 1);
    for (int64_t i = 0; i < count; i++)
        out[i] = (float)((double)dv[i] * ir_act_deriv(a->act, (double)xv[i], a->a, a->b));
    return true;
}

/* ---- pooling ------------------------------------------------------------ */

/* dy [N, C, OH, OW] and x [N, C, H, W], output like x. */
static bool pool_grad_shapes_ok(const Interp *in, const Node *n)
{
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1);
    return dy->rank == 4 && x->rank == 4 && dy->dims[0] == x->dims[0] &&
           dy->dims[1] == x->dims[1] && ir_numel(&n->type) == ir_numel(x);
}

/* Where max_window finds the maximum: the first in row-major order (a later one
 * must be greater), or the last NaN, as PyTorch's max_pool2d; a window of -inf
 * only keeps its first tap. -1 for a window wholly in the padding. */
static int64_t max_at(const PoolAttrs *a, const float *plane, int64_t H, int64_t W, int64_t oh,
                      int64_t ow)
{
    float m = -INFINITY;
    int64_t at = -1;
    for (int64_t i = 0; i < a->kernel[0]; i++) {
        int64_t ih = oh * a->stride[0] - a->pad[0] + i * a->dilation[0];
        for (int64_t j = 0; ih >= 0 && ih < H && j < a->kernel[1]; j++) {
            int64_t iw = ow * a->stride[1] - a->pad[1] + j * a->dilation[1];
            if (iw < 0 || iw >= W)
                continue;
            float v = plane[ih * W + iw];
            if (at < 0 || v > m || isnan(v)) {
                at = ih * W + iw;
                m = v > m || isnan(v) ? v : m;
            }
        }
    }
    return at;
}

bool interp_run_maxpool_grad(Interp *in, const Node *n, float *out)
{
    if (!pool_grad_shapes_ok(in, n))
        return interp_fail(in, n, "expects [N, C, OH, OW] gradient and [N, C, H, W] input");
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1);
    int64_t H = x->dims[2], W = x->dims[3], planes = x->dims[0] * x->dims[1];
    const float *dv = arg(in, n, 0), *xv = arg(in, n, 1);
    double *acc = acc_new(in, n, ir_numel(x));
    if (!acc)
        return false;
    for (int64_t c = 0; c < planes; c++)
        for (int64_t oh = 0; oh < dy->dims[2]; oh++)
            for (int64_t ow = 0; ow < dy->dims[3]; ow++) {
                int64_t at = max_at(&n->attrs.pool, xv + c * H * W, H, W, oh, ow);
                if (at >= 0)
                    acc[c * H * W + at] += (double)dv[(c * dy->dims[2] + oh) * dy->dims[3] + ow];
            }
    return acc_store(acc, out, ir_numel(x));
}

bool interp_run_avgpool_grad(Interp *in, const Node *n, float *out)
{
    if (!pool_grad_shapes_ok(in, n))
        return interp_fail(in, n, "expects [N, C, OH, OW] gradient and [N, C, H, W] input");
    if (n->attrs.pool.dilation[0] != 1 || n->attrs.pool.dilation[1] != 1)
        return interp_fail(in, n, "dilation is not supported by avgpool");
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1);
    int64_t H = x->dims[2], W = x->dims[3], planes = x->dims[0] * x->dims[1];
    int64_t OH = dy->dims[2], OW = dy->dims[3];
    const float *dv = arg(in, n, 0);
    double *acc = acc_new(in, n, ir_numel(x));
    if (!acc)
        return false;
    for (int64_t c = 0; c < planes; c++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                AvgWindow w = interp_avg_window(&n->attrs.pool, H, W, oh, ow);
                double g = (double)dv[(c * OH + oh) * OW + ow] / (double)w.divisor;
                for (int64_t ih = w.hs; ih < w.he; ih++)
                    for (int64_t iw = w.ws; iw < w.we; iw++)
                        acc[(c * H + ih) * W + iw] += g;
            }
    return acc_store(acc, out, ir_numel(x));
}

bool interp_run_global_avgpool_grad(Interp *in, const Node *n, float *out)
{
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1);
    if (!pool_grad_shapes_ok(in, n) || dy->dims[2] != 1 || dy->dims[3] != 1)
        return interp_fail(in, n, "expects [N, C, 1, 1] gradient and [N, C, H, W] input");
    int64_t hw = x->dims[2] * x->dims[3], planes = x->dims[0] * x->dims[1];
    const float *dv = arg(in, n, 0);
    for (int64_t c = 0; c < planes; c++)
        for (int64_t i = 0; i < hw; i++)
            out[c * hw + i] = (float)((double)dv[c] / (double)hw);
    return true;
}

/* The bins are those of the forward op, taken from dy's dims. */
bool interp_run_adaptive_avgpool_grad(Interp *in, const Node *n, float *out)
{
    if (!pool_grad_shapes_ok(in, n))
        return interp_fail(in, n, "expects [N, C, OH, OW] gradient and [N, C, H, W] input");
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1);
    int64_t H = x->dims[2], W = x->dims[3], planes = x->dims[0] * x->dims[1];
    int64_t OH = dy->dims[2], OW = dy->dims[3];
    const float *dv = arg(in, n, 0);
    double *acc = acc_new(in, n, ir_numel(x));
    if (!acc)
        return false;
    for (int64_t c = 0; c < planes; c++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t hs, he, ws, we;
                interp_adaptive_bin(oh, H, OH, &hs, &he);
                interp_adaptive_bin(ow, W, OW, &ws, &we);
                double g = (double)dv[(c * OH + oh) * OW + ow] / (double)((he - hs) * (we - ws));
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++)
                        acc[(c * H + ih) * W + iw] += g;
            }
    return acc_store(acc, out, ir_numel(x));
}

/* ---- data movement ------------------------------------------------------ */

bool interp_run_reshape_as(Interp *in, const Node *n, float *out)
{
    int64_t count = ir_numel(&n->type);
    if (ir_numel(arg_type(in, n, 0)) != count)
        return interp_fail(in, n, "gradient and output sizes differ");
    memcpy(out, arg(in, n, 0), (size_t)count * sizeof(float));
    return true;
}

/* Every element of dy added to the element of x it was broadcast from. */
bool interp_run_reduce_as(Interp *in, const Node *n, float *out)
{
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1);
    int64_t st[IR_MAX_RANK];
    if (!interp_broadcast_strides(x, dy, st) || ir_numel(&n->type) != ir_numel(x))
        return interp_fail(in, n, "input does not broadcast to the gradient's shape");
    const float *dv = arg(in, n, 0);
    double *acc = acc_new(in, n, ir_numel(x));
    if (!acc)
        return false;
    int64_t count = ir_numel(dy);
    for (int64_t i = 0; i < count; i++) {
        int64_t rest = i, at = 0;
        for (int32_t d = dy->rank - 1; d >= 0; d--) {
            at += (rest % dy->dims[d]) * st[d];
            rest /= dy->dims[d];
        }
        acc[at] += (double)dv[i];
    }
    return acc_store(acc, out, ir_numel(x));
}

/* Zeros of x's dims, dy at [start, end) of `axis`. */
bool interp_run_slice_grad(Interp *in, const Node *n, float *out)
{
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1);
    const SliceAttrs *a = &n->attrs.slice;
    int32_t axis = axis_of(a->axis, x->rank);
    bool ok = axis >= 0 && axis < x->rank && dy->rank == x->rank && a->start >= 0 &&
              a->end <= x->dims[axis] && dy->dims[axis] == (int64_t)a->end - a->start;
    for (int32_t d = 0; ok && d < x->rank; d++)
        ok = d == axis || dy->dims[d] == x->dims[d];
    if (!ok || ir_numel(&n->type) != ir_numel(x))
        return interp_fail(in, n, "gradient does not fit [%d, %d) of axis %d of the input",
                           a->start, a->end, a->axis);
    int64_t outer = prod(x, 0, axis), inner = prod(x, axis + 1, x->rank);
    int64_t len = x->dims[axis], part = dy->dims[axis];
    const float *dv = arg(in, n, 0);
    memset(out, 0, (size_t)ir_numel(x) * sizeof(float));
    for (int64_t o = 0; o < outer; o++)
        memcpy(out + (o * len + a->start) * inner, dv + o * part * inner,
               (size_t)(part * inner) * sizeof(float));
    return true;
}

/* ---- batch normalization ------------------------------------------------ */

/* x [N, C, ...] seen as [outer = N, C, inner]. */
typedef struct BnView { int64_t outer, C, inner; } BnView;

static BnView bn_view(const TensorType *x)
{
    return (BnView){x->dims[0], x->dims[1], prod(x, 2, x->rank)};
}

static bool stats_ok(const Interp *in, const Node *n, int32_t k, int64_t C)
{
    const TensorType *s = arg_type(in, n, k);
    return s->rank == 2 && s->dims[0] == 2 && s->dims[1] == C;
}

/* The batch mean and biased variance of each channel, over N and the spatial dims. */
bool interp_run_bn_stats(Interp *in, const Node *n, float *out)
{
    const TensorType *x = arg_type(in, n, 0);
    if (x->rank < 2 || ir_numel(&n->type) != 2 * x->dims[1])
        return interp_fail(in, n, "expects [N, C, ...] input and [2, C] output");
    BnView v = bn_view(x);
    const float *xv = arg(in, n, 0);
    double m = (double)(v.outer * v.inner);
    for (int64_t c = 0; c < v.C; c++) {
        double mean = 0.0, var = 0.0;
        for (int64_t b = 0; b < v.outer; b++)
            for (int64_t i = 0; i < v.inner; i++)
                mean += (double)xv[(b * v.C + c) * v.inner + i];
        mean /= m;
        for (int64_t b = 0; b < v.outer; b++)
            for (int64_t i = 0; i < v.inner; i++) {
                double d = (double)xv[(b * v.C + c) * v.inner + i] - mean;
                var += d * d;
            }
        out[c] = (float)mean;
        out[v.C + c] = (float)(var / m);
    }
    return true;
}

/* 1 / sqrt(var + eps) of channel c. */
static double rstd_of(const float *stats, int64_t C, int64_t c, float eps)
{
    return 1.0 / sqrt((double)stats[C + c] + (double)eps);
}

/* x, stats, weight, bias: (x - mean) / sqrt(var + eps) * weight + bias */
bool interp_run_bn_train(Interp *in, const Node *n, float *out)
{
    const TensorType *x = arg_type(in, n, 0);
    if (x->rank < 2 || ir_numel(&n->type) != ir_numel(x) || !stats_ok(in, n, 1, x->dims[1]) ||
        ir_numel(arg_type(in, n, 2)) != x->dims[1] || ir_numel(arg_type(in, n, 3)) != x->dims[1])
        return interp_fail(in, n, "inconsistent input, statistics and parameter shapes");
    BnView v = bn_view(x);
    const float *xv = arg(in, n, 0), *sv = arg(in, n, 1), *wv = arg(in, n, 2), *bv = arg(in, n, 3);
    for (int64_t b = 0; b < v.outer; b++)
        for (int64_t c = 0; c < v.C; c++) {
            double r = rstd_of(sv, v.C, c, n->attrs.bn.eps);
            for (int64_t i = 0; i < v.inner; i++) {
                int64_t at = (b * v.C + c) * v.inner + i;
                out[at] = (float)(((double)xv[at] - (double)sv[c]) * r * (double)wv[c] +
                                  (double)bv[c]);
            }
        }
    return true;
}

/* Per channel: sum(dy) and sum(dy * xhat), xhat = (x - mean) * rstd. */
static void bn_sums(BnView v, const float *dv, const float *xv, const float *sv, float eps,
                    int64_t c, double *sdy, double *sdyx)
{
    double r = rstd_of(sv, v.C, c, eps);
    *sdy = *sdyx = 0.0;
    for (int64_t b = 0; b < v.outer; b++)
        for (int64_t i = 0; i < v.inner; i++) {
            int64_t at = (b * v.C + c) * v.inner + i;
            *sdy += (double)dv[at];
            *sdyx += (double)dv[at] * ((double)xv[at] - (double)sv[c]) * r;
        }
}

/* dy, x, stats, weight: the backward of batch norm with batch statistics,
 * dx = w * rstd / M * (M dy - sum(dy) - xhat * sum(dy * xhat)), M = N * H * W. */
bool interp_run_bn_grad_input(Interp *in, const Node *n, float *out)
{
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1);
    if (x->rank < 2 || !ir_dims_eq(dy, x) || ir_numel(&n->type) != ir_numel(x) ||
        !stats_ok(in, n, 2, x->dims[1]) || ir_numel(arg_type(in, n, 3)) != x->dims[1])
        return interp_fail(in, n, "inconsistent gradient, input, statistics and weight shapes");
    BnView v = bn_view(x);
    const float *dv = arg(in, n, 0), *xv = arg(in, n, 1), *sv = arg(in, n, 2);
    const float *wv = arg(in, n, 3);
    double m = (double)(v.outer * v.inner);
    for (int64_t c = 0; c < v.C; c++) {
        double sdy, sdyx, r = rstd_of(sv, v.C, c, n->attrs.bn.eps);
        bn_sums(v, dv, xv, sv, n->attrs.bn.eps, c, &sdy, &sdyx);
        for (int64_t b = 0; b < v.outer; b++)
            for (int64_t i = 0; i < v.inner; i++) {
                int64_t at = (b * v.C + c) * v.inner + i;
                double xhat = ((double)xv[at] - (double)sv[c]) * r;
                out[at] = (float)((double)wv[c] * r / m *
                                  (m * (double)dv[at] - sdy - xhat * sdyx));
            }
    }
    return true;
}

/* dy, x, stats → sum(dy * xhat) per channel */
bool interp_run_bn_grad_weight(Interp *in, const Node *n, float *out)
{
    const TensorType *dy = arg_type(in, n, 0), *x = arg_type(in, n, 1);
    if (x->rank < 2 || !ir_dims_eq(dy, x) || ir_numel(&n->type) != x->dims[1] ||
        !stats_ok(in, n, 2, x->dims[1]))
        return interp_fail(in, n, "inconsistent gradient, input and statistics shapes");
    BnView v = bn_view(x);
    for (int64_t c = 0; c < v.C; c++) {
        double sdy, sdyx;
        bn_sums(v, arg(in, n, 0), arg(in, n, 1), arg(in, n, 2), n->attrs.bn.eps, c, &sdy, &sdyx);
        out[c] = (float)sdyx;
    }
    return true;
}

/* running, stats, x: (1 - m) * running + m * batch, the variance made unbiased with
 * n = numel(x) / C as PyTorch does. */
bool interp_run_bn_running(Interp *in, const Node *n, float *out)
{
    const TensorType *r = arg_type(in, n, 0), *x = arg_type(in, n, 2);
    int64_t C = ir_numel(r);
    const RunningAttrs *a = &n->attrs.running;
    if (x->rank < 2 || x->dims[1] != C || !stats_ok(in, n, 1, C) || ir_numel(&n->type) != C ||
        (a->which != 0 && a->which != 1))
        return interp_fail(in, n, "inconsistent running statistic, statistics and input shapes");
    int64_t count = ir_numel(x) / C;
    if (a->which == 1 && count < 2)
        return interp_fail(in, n, "expected more than 1 value per channel when training, got %lld",
                    (long long)count);
    const float *rv = arg(in, n, 0), *sv = arg(in, n, 1);
    double m = (double)a->momentum;
    for (int64_t c = 0; c < C; c++) {
        double batch = a->which == 0
                           ? (double)sv[c]
                           : (double)sv[C + c] * (double)count / (double)(count - 1);
        out[c] = (float)((1.0 - m) * (double)rv[c] + m * batch);
    }
    return true;
}

/* ---- dropout ------------------------------------------------------------ */

/* dropout_train (x, rng) and dropout_grad (dy, rng): kept elements (ir_dropout_keep)
 * scaled by 1 / (1 - p), the others 0. */
bool interp_run_dropout(Interp *in, const Node *n, float *out)
{
    int64_t count = ir_numel(&n->type);
    float p = n->attrs.dropout.p;
    if (ir_numel(arg_type(in, n, 0)) != count || ir_numel(arg_type(in, n, 1)) != 2)
        return interp_fail(in, n, "expects a value like the output and rng f32[2]");
    if (!(p >= 0.0f && p < 1.0f))
        return interp_fail(in, n, "dropout p must be in [0, 1), got %g", (double)p);
    const float *xv = arg(in, n, 0), *rng = arg(in, n, 1);
    uint32_t seed = ir_dropout_word(rng[0]), step = ir_dropout_word(rng[1]);
    double scale = 1.0 / (1.0 - (double)p);
    for (int64_t i = 0; i < count; i++)
        out[i] = ir_dropout_keep(seed, step, n->attrs.dropout.salt, i, p)
                     ? (float)((double)xv[i] * scale)
                     : 0.0f;
    return true;
}

/* ---- losses ------------------------------------------------------------- */

/* logits [N, K] and labels [N] holding class indices; false after a message if a
 * label is not an integer in [0, K). */
static bool xent_args(Interp *in, const Node *n, int64_t *N, int64_t *K)
{
    const TensorType *x = arg_type(in, n, 0), *y = arg_type(in, n, 1);
    if (x->rank != 2 || y->rank != 1 || y->dims[0] != x->dims[0])
        return interp_fail(in, n, "expects logits [N, K] and labels [N]");
    *N = x->dims[0];
    *K = x->dims[1];
    const float *lv = arg(in, n, 1);
    for (int64_t r = 0; r < *N; r++)
        if (!(lv[r] >= 0.0f && lv[r] < (float)*K && lv[r] == floorf(lv[r])))
            return interp_fail(in, n, "label %lld is %g, not a class index in [0, %lld)",
                               (long long)r, (double)lv[r], (long long)*K);
    return true;
}

/* max and log(sum(exp(x - max))) of one row. */
static void row_lse(const float *x, int64_t K, double *m, double *lse)
{
    *m = -INFINITY;
    for (int64_t k = 0; k < K; k++)
        *m = (double)x[k] > *m ? (double)x[k] : *m;
    double s = 0.0;
    for (int64_t k = 0; k < K; k++)
        s += exp((double)x[k] - *m);
    *lse = log(s);
}

/* mean over N of -log softmax(logits)[label] */
bool interp_run_softmax_xent(Interp *in, const Node *n, float *out)
{
    int64_t N, K;
    if (!xent_args(in, n, &N, &K))
        return false;
    const float *xv = arg(in, n, 0), *lv = arg(in, n, 1);
    double total = 0.0;
    for (int64_t r = 0; r < N; r++) {
        double m, lse;
        row_lse(xv + r * K, K, &m, &lse);
        total += m + lse - (double)xv[r * K + (int64_t)lv[r]];
    }
    out[0] = (float)(total / (double)N);
    return true;
}

/* (softmax(logits) - onehot(label)) / N */
bool interp_run_softmax_xent_grad(Interp *in, const Node *n, float *out)
{
    int64_t N, K;
    if (!xent_args(in, n, &N, &K))
        return false;
    if (ir_numel(&n->type) != N * K)
        return interp_fail(in, n, "output is not shaped like the logits");
    const float *xv = arg(in, n, 0), *lv = arg(in, n, 1);
    for (int64_t r = 0; r < N; r++) {
        double m, lse;
        row_lse(xv + r * K, K, &m, &lse);
        for (int64_t k = 0; k < K; k++) {
            double p = exp((double)xv[r * K + k] - m - lse);
            out[r * K + k] = (float)((p - (k == (int64_t)lv[r] ? 1.0 : 0.0)) / (double)N);
        }
    }
    return true;
}

static bool mse_args(Interp *in, const Node *n)
{
    if (!ir_dims_eq(arg_type(in, n, 0), arg_type(in, n, 1)))
        return interp_fail(in, n, "prediction and target shapes differ");
    return true;
}

/* mean((pred - target)^2) */
bool interp_run_mse(Interp *in, const Node *n, float *out)
{
    if (!mse_args(in, n))
        return false;
    int64_t count = ir_numel(arg_type(in, n, 0));
    const float *pv = arg(in, n, 0), *tv = arg(in, n, 1);
    double s = 0.0;
    for (int64_t i = 0; i < count; i++) {
        double d = (double)pv[i] - (double)tv[i];
        s += d * d;
    }
    out[0] = (float)(s / (double)count);
    return true;
}

/* 2 (pred - target) / numel */
bool interp_run_mse_grad(Interp *in, const Node *n, float *out)
{
    if (!mse_args(in, n))
        return false;
    int64_t count = ir_numel(arg_type(in, n, 0));
    const float *pv = arg(in, n, 0), *tv = arg(in, n, 1);
    for (int64_t i = 0; i < count; i++)
        out[i] = (float)(2.0 * ((double)pv[i] - (double)tv[i]) / (double)count);
    return true;
}

/* ---- optimizers (torch.optim) ------------------------------------------- */

/* Inputs 0..k-1 all of the output's size; a hyper f32[3] in slot `hyper` if >= 0. */
static bool optim_args(Interp *in, const Node *n, int32_t k, int32_t hyper)
{
    int64_t count = ir_numel(&n->type);
    for (int32_t i = 0; i < k; i++)
        if (ir_numel(arg_type(in, n, i)) != count)
            return interp_fail(in, n, "input %d does not have the %lld elements of the output", i,
                        (long long)count);
    if (hyper >= 0 && ir_numel(arg_type(in, n, hyper)) != 3)
        return interp_fail(in, n, "expects hyper-parameters f32[3]");
    return true;
}

/* The gradient with L2 weight decay added (not for AdamW, which decays the weights). */
static double decayed(const OptimAttrs *a, float grad, float param)
{
    return a->decoupled ? (double)grad : (double)grad + (double)a->weight_decay * (double)param;
}

/* buf, grad, param, hyper: momentum * buf + (1 - dampening) * g, or g itself on the
 * first step (hyper[1] == 0), as PyTorch starts its buffer. */
bool interp_run_sgd_momentum(Interp *in, const Node *n, float *out)
{
    if (!optim_args(in, n, 3, 3))
        return false;
    const OptimAttrs *a = &n->attrs.optim;
    const float *bv = arg(in, n, 0), *gv = arg(in, n, 1), *pv = arg(in, n, 2);
    bool first = arg(in, n, 3)[1] == 0.0f;
    int64_t count = ir_numel(&n->type);
    for (int64_t i = 0; i < count; i++) {
        double g = decayed(a, gv[i], pv[i]);
        out[i] = (float)(first ? g
                               : (double)a->momentum * (double)bv[i] +
                                     (1.0 - (double)a->dampening) * g);
    }
    return true;
}

/* param, grad, buf (new), hyper: p - lr * d, d = g + momentum * buf with Nesterov,
 * else buf with momentum, else g. */
bool interp_run_sgd_step(Interp *in, const Node *n, float *out)
{
    if (!optim_args(in, n, 3, 3))
        return false;
    const OptimAttrs *a = &n->attrs.optim;
    const float *pv = arg(in, n, 0), *gv = arg(in, n, 1), *bv = arg(in, n, 2);
    double lr = (double)arg(in, n, 3)[0];
    int64_t count = ir_numel(&n->type);
    for (int64_t i = 0; i < count; i++) {
        double g = decayed(a, gv[i], pv[i]), d = g;
        if (a->nesterov)
            d = g + (double)a->momentum * (double)bv[i];
        else if (a->momentum != 0.0f)
            d = (double)bv[i];
        out[i] = (float)((double)pv[i] - lr * d);
    }
    return true;
}

/* adam_m (m, grad, param): b1 m + (1 - b1) g; adam_v (v, grad, param): b2 v + (1 - b2) g². */
bool interp_run_adam_moment(Interp *in, const Node *n, float *out)
{
    if (!optim_args(in, n, 3, -1))
        return false;
    const OptimAttrs *a = &n->attrs.optim;
    bool second = n->op == OP_ADAM_V;
    double beta = (double)(second ? a->beta2 : a->beta1);
    const float *sv = arg(in, n, 0), *gv = arg(in, n, 1), *pv = arg(in, n, 2);
    int64_t count = ir_numel(&n->type);
    for (int64_t i = 0; i < count; i++) {
        double g = decayed(a, gv[i], pv[i]);
        out[i] = (float)(beta * (double)sv[i] + (1.0 - beta) * (second ? g * g : g));
    }
    return true;
}

/* param, m, v, hyper [lr, bc1, bc2]: p - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps),
 * the weight first multiplied by 1 - lr * wd for AdamW. */
bool interp_run_adam_step(Interp *in, const Node *n, float *out)
{
    if (!optim_args(in, n, 3, 3))
        return false;
    const OptimAttrs *a = &n->attrs.optim;
    const float *pv = arg(in, n, 0), *mv = arg(in, n, 1), *vv = arg(in, n, 2);
    const float *h = arg(in, n, 3);
    double lr = (double)h[0], bc1 = (double)h[1], sbc2 = sqrt((double)h[2]);
    int64_t count = ir_numel(&n->type);
    for (int64_t i = 0; i < count; i++) {
        double p = (double)pv[i];
        if (a->decoupled)
            p *= 1.0 - lr * (double)a->weight_decay;
        double denom = sqrt((double)vv[i]) / sbc2 + (double)a->eps;
        out[i] = (float)(p - lr / bc1 * (double)mv[i] / denom);
    }
    return true;
}
