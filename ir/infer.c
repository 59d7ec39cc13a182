/* infer.c: shape inference. Each op's rule computes the output type from the
 * input types and attributes and reports a user error, located at the node,
 * when they do not fit together. Messages name the values involved and both
 * shapes, since they are what a model author sees. */
#include "ir.h"

#include <string.h>

#define TYPE_BUF 160

typedef struct Ctx {
    const Graph *g;
    const Node *n;
    Diag *d;
    TensorType *out;
} Ctx;

static const TensorType *in_type(const Ctx *c, int32_t i)
{
    return &c->g->nodes[c->n->inputs[i]].type;
}

static const Node *in_node(const Ctx *c, int32_t i)
{
    return &c->g->nodes[c->n->inputs[i]];
}

static const char *in_name(const Ctx *c, int32_t i)
{
    const char *name = in_node(c, i)->name;
    return name ? name : "?";
}

static const char *op_name(const Ctx *c)
{
    return ir_ops[c->n->op].name;
}

static bool fail(const Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(const Ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ir_vdiag(c->d, DIAG_ERROR, c->n->loc, fmt, ap);
    va_end(ap);
    return false;
}

static char *tstr(const TensorType *t, char *buf)
{
    return ir_type_str(t, buf, TYPE_BUF);
}

/* "5×5" */
static char *pair_str(int64_t a, int64_t b, char *buf)
{
    int64_t dims[2] = {a, b};
    TensorType t = ir_type_f32(2, dims);
    return ir_dims_str(&t, 0, buf, TYPE_BUF);
}

static void set_out(const Ctx *c, int32_t rank, const int64_t *dims)
{
    *c->out = ir_type_f32(rank, dims);
}

/* Requires rank 4 of the data input, the layout every spatial op works on. */
static bool want_nchw(const Ctx *c)
{
    const TensorType *x = in_type(c, 0);
    char b[TYPE_BUF];
    if (x->rank != 4)
        return fail(c, "%s expects a 4-d input [N, C, H, W], got %s", op_name(c), tstr(x, b));
    return true;
}

/* Requires a 1-d parameter of `len` elements (a bias or batch-norm vector). */
static bool want_vector(const Ctx *c, int32_t i, int64_t len, const char *what)
{
    const TensorType *t = in_type(c, i);
    char b[TYPE_BUF];
    if (t->rank != 1 || t->dims[0] != len)
        return fail(c, "%s expects %lld %s in '%s', got %s", op_name(c), (long long)len, what,
                    in_name(c, i), tstr(t, b));
    return true;
}

/* ---- windows (conv2d and pooling) ----------------------------------------------- */

static bool check_pair(const Ctx *c, const char *attr, const int32_t v[2])
{
    if (v[0] <= 0 || v[1] <= 0)
        return fail(c, "%s %s must be positive, got [%d,%d]", op_name(c), attr, (int)v[0],
                    (int)v[1]);
    return true;
}

static bool check_window(const Ctx *c, const int32_t k[2], const int32_t s[2],
                         const int32_t dil[2], const int32_t pad[4])
{
    if (!check_pair(c, "kernel", k) || !check_pair(c, "stride", s) ||
        !check_pair(c, "dilation", dil))
        return false;
    for (int i = 0; i < 4; i++)
        if (pad[i] < 0)
            return fail(c, "%s pad must be non-negative, got [%d,%d,%d,%d]", op_name(c),
                        (int)pad[0], (int)pad[1], (int)pad[2], (int)pad[3]);
    return true;
}

/* PyTorch's output size. In ceil mode a window that would start inside the
 * end padding is dropped, so every window sees at least one real element. */
static bool window_out(const Ctx *c, const int32_t k[2], const int32_t s[2],
                       const int32_t dil[2], const int32_t pad[4], bool ceil_mode,
                       int64_t out[2])
{
    const TensorType *x = in_type(c, 0);
    for (int i = 0; i < 2; i++) {
        int64_t in = x->dims[2 + i], ext = (int64_t)dil[i] * (k[i] - 1) + 1;
        int64_t span = in + pad[i] + pad[i + 2] - ext;
        if (span < 0) {
            char b1[TYPE_BUF], b2[TYPE_BUF];
            return fail(c, "%s output would be empty: input %s is smaller than the %s kernel "
                        "with padding", op_name(c), pair_str(x->dims[2], x->dims[3], b1),
                        pair_str((int64_t)dil[0] * (k[0] - 1) + 1,
                                 (int64_t)dil[1] * (k[1] - 1) + 1, b2));
        }
        out[i] = ceil_mode ? (span + s[i] - 1) / s[i] + 1 : span / s[i] + 1;
        if (ceil_mode && (out[i] - 1) * s[i] >= in + pad[i])
            out[i]--;
    }
    return true;
}

/* ---- per-op rules --------------------------------------------------------------- */

static const char *leaf_kind(const Node *n)
{
    return n->op == OP_INPUT ? "input" : "parameter";
}

static bool infer_leaf(const Ctx *c)
{
    const Node *n = c->n;
    char b[TYPE_BUF];
    const char *what = leaf_kind(n);
    if (n->type.rank < 0 || n->type.rank > IR_MAX_RANK)
        return fail(c, "%s '%s' has rank %d; at most %d is supported", what, n->name,
                    (int)n->type.rank, IR_MAX_RANK);
    for (int32_t i = 0; i < n->type.rank; i++)
        if (n->type.dims[i] <= 0)
            return fail(c, "%s '%s' has a non-positive dimension: %s", what, n->name,
                        tstr(&n->type, b));
    *c->out = n->type;
    return true;
}

static bool conv_weight(const Ctx *c, int64_t chans)
{
    const ConvAttrs *a = &c->n->attrs.conv;
    const TensorType *w = in_type(c, 1);
    char b[TYPE_BUF], b2[TYPE_BUF];
    if (w->rank != 4)
        return fail(c, "conv2d weight '%s' must be 4-d [O, C/groups, kh, kw], got %s",
                    in_name(c, 1), tstr(w, b));
    int64_t want = ir_mul_sat(w->dims[1], a->groups);
    if (want != chans)
        return fail(c, "conv2d expects %lld input channels, got %lld", (long long)want,
                    (long long)chans);
    if (w->dims[2] != a->kernel[0] || w->dims[3] != a->kernel[1])
        return fail(c, "conv2d weight '%s' holds %s kernels, but kernel is %s", in_name(c, 1),
                    pair_str(w->dims[2], w->dims[3], b), pair_str(a->kernel[0], a->kernel[1], b2));
    if (w->dims[0] % a->groups != 0)
        return fail(c, "conv2d groups=%d does not divide the %lld output channels",
                    (int)a->groups, (long long)w->dims[0]);
    return true;
}

/* ---- fused epilogues (conv2d and dense) ---------------------------------------- */

/* Inputs after x and weight: an optional bias, then the residual if any. */
static int32_t bias_count(const Ctx *c)
{
    return c->n->ninputs - 2 - (ir_epilogue(c->n)->residual ? 1 : 0);
}

static bool check_act(const Ctx *c, const char *what, Op act, float a, float b)
{
    if (act != OP_NO_ACT && !ir_op_is_act(act))
        return fail(c, "%s %s has a bad activation %d", op_name(c), what, (int)act);
    if (act == OP_CLIP && !(a <= b))
        return fail(c, "%s %s clip needs lo <= hi, got %g, %g", op_name(c), what, (double)a,
                    (double)b);
    return true;
}

static bool check_epilogue(const Ctx *c)
{
    const Epilogue *e = ir_epilogue(c->n);
    int32_t nb = bias_count(c);
    if (nb < 0 || nb > 1)
        return fail(c, "%s has %d inputs, which its epilogue (residual=%s) does not take",
                    op_name(c), (int)c->n->ninputs, e->residual ? "true" : "false");
    return check_act(c, "act", e->act, e->act_a, e->act_b) &&
           check_act(c, "post", e->post, e->post_a, e->post_b);
}

/* The residual is added elementwise, so it has exactly the output's dims. */
static bool check_residual(const Ctx *c)
{
    if (!ir_epilogue(c->n)->residual)
        return true;
    const TensorType *r = in_type(c, c->n->ninputs - 1);
    TensorType want = *c->out;
    char b1[TYPE_BUF], b2[TYPE_BUF];
    if (r->rank != want.rank || memcmp(r->dims, want.dims, sizeof r->dims[0] * (size_t)r->rank))
        return fail(c, "%s residual '%s' is %s, but the output is %s", op_name(c),
                    in_name(c, c->n->ninputs - 1), tstr(r, b1), tstr(&want, b2));
    return true;
}

static bool infer_conv2d(const Ctx *c)
{
    const ConvAttrs *a = &c->n->attrs.conv;
    if (!want_nchw(c) || !check_window(c, a->kernel, a->stride, a->dilation, a->pad))
        return false;
    const TensorType *x = in_type(c, 0);
    if (a->groups <= 0)
        return fail(c, "conv2d groups must be positive, got %d", (int)a->groups);
    if (a->winograd != 0 && a->winograd != 2 && a->winograd != 4)
        return fail(c, "conv2d winograd=%d is not a Winograd tile: 2 or 4 (0: none)",
                    (int)a->winograd);
    if (x->dims[1] % a->groups != 0)
        return fail(c, "conv2d groups=%d does not divide the %lld input channels",
                    (int)a->groups, (long long)x->dims[1]);
    if (!conv_weight(c, x->dims[1]))
        return false;
    int64_t o = in_type(c, 1)->dims[0];
    if (!check_epilogue(c) || (bias_count(c) == 1 && !want_vector(c, 2, o, "output channels")))
        return false;
    int64_t hw[2];
    if (!window_out(c, a->kernel, a->stride, a->dilation, a->pad, false, hw))
        return false;
    int64_t dims[4] = {x->dims[0], o, hw[0], hw[1]};
    set_out(c, 4, dims);
    return check_residual(c);
}

/* " (64×5×5)" when x comes out of a flatten: the dims the author thinks in. */
static void flatten_origin(const Ctx *c, char *buf, size_t n)
{
    const Node *x = in_node(c, 0);
    buf[0] = '\0';
    if (x->op != OP_FLATTEN)
        return;
    const TensorType *src = &c->g->nodes[x->inputs[0]].type;
    int32_t axis = x->attrs.axis.axis < 0 ? x->attrs.axis.axis + src->rank : x->attrs.axis.axis;
    if (src->dtype == DT_INVALID || axis < 0 || axis >= src->rank)
        return;
    char dims[TYPE_BUF];
    snprintf(buf, n, " (%s)", ir_dims_str(src, axis, dims, sizeof dims));
}

static bool infer_dense(const Ctx *c)
{
    const TensorType *x = in_type(c, 0), *w = in_type(c, 1);
    char b[TYPE_BUF];
    int32_t axis = c->n->attrs.dense.axis < 0 ? c->n->attrs.dense.axis + x->rank
                                              : c->n->attrs.dense.axis;
    if (x->rank < 2)
        return fail(c, "dense expects an input of at least 2 dims [N, features], got %s",
                    tstr(x, b));
    if (axis < 1 || axis >= x->rank)
        return fail(c, "dense axis %d is out of range for %s (it must not be the batch dim)",
                    (int)c->n->attrs.dense.axis, tstr(x, b));
    if (w->rank != 2)
        return fail(c, "dense weight '%s' must be 2-d [out, in], got %s", in_name(c, 1),
                    tstr(w, b));
    if (w->dims[1] != x->dims[axis]) {
        flatten_origin(c, b, sizeof b);
        return fail(c, "dense expects %lld input features, got %lld%s", (long long)w->dims[1],
                    (long long)x->dims[axis], b);
    }
    if (!check_epilogue(c) ||
        (bias_count(c) == 1 && !want_vector(c, 2, w->dims[0], "output features")))
        return false;
    int64_t dims[IR_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = w->dims[0];
    set_out(c, x->rank, dims);
    return check_residual(c);
}

/* Normalized over dim `axis` at every position of the others, then scaled
 * and shifted per element of that dim (ConvNeXt's LayerNorm2d is axis 1). */
static bool infer_layernorm(const Ctx *c)
{
    const TensorType *x = in_type(c, 0);
    char b[TYPE_BUF];
    int32_t axis = c->n->attrs.norm.axis < 0 ? c->n->attrs.norm.axis + x->rank
                                             : c->n->attrs.norm.axis;
    if (x->rank < 2 || axis < 1 || axis >= x->rank)
        return fail(c, "layernorm axis %d is out of range for %s (it must not be the batch dim)",
                    (int)c->n->attrs.norm.axis, tstr(x, b));
    for (int32_t i = 1; i < 3; i++)
        if (!want_vector(c, i, x->dims[axis], "normalized elements"))
            return false;
    float eps = c->n->attrs.norm.eps;
    if (!(eps >= 0.0f))
        return fail(c, "layernorm eps must be non-negative, got %g", (double)eps);
    *c->out = ir_type_f32(x->rank, x->dims);
    return true;
}

static bool infer_transpose(const Ctx *c)
{
    const TensorType *x = in_type(c, 0);
    const int32_t *p = c->n->attrs.perm.perm;
    char b[TYPE_BUF];
    bool seen[IR_MAX_RANK] = {false};
    int64_t dims[IR_MAX_RANK];
    for (int32_t i = 0; i < IR_MAX_RANK; i++) {
        bool ok = i < x->rank ? p[i] >= 0 && p[i] < x->rank && !seen[p[i]] : p[i] == i;
        if (!ok)
            return fail(c, "transpose perm is not a permutation of the %d dims of %s",
                        (int)x->rank, tstr(x, b));
        if (i < x->rank) {
            seen[p[i]] = true;
            dims[i] = x->dims[p[i]];
        }
    }
    if (p[0] != 0)
        return fail(c, "transpose must keep the batch dim first, got perm[0] = %d", (int)p[0]);
    set_out(c, x->rank, dims);
    return true;
}

static bool infer_slice(const Ctx *c)
{
    const TensorType *x = in_type(c, 0);
    const SliceAttrs *a = &c->n->attrs.slice;
    char b[TYPE_BUF];
    int32_t axis = a->axis < 0 ? a->axis + x->rank : a->axis;
    if (axis < 1 || axis >= x->rank)
        return fail(c, "slice axis %d is out of range for %s (it must not be the batch dim)",
                    (int)a->axis, tstr(x, b));
    if (a->start < 0 || a->end <= a->start || a->end > x->dims[axis])
        return fail(c, "slice [%d, %d) is not a non-empty range of dim %d of %s", (int)a->start,
                    (int)a->end, (int)axis, tstr(x, b));
    int64_t dims[IR_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = a->end - a->start;
    set_out(c, x->rank, dims);
    return true;
}

static bool infer_pad(const Ctx *c)
{
    if (!want_nchw(c))
        return false;
    const TensorType *x = in_type(c, 0);
    const int32_t *p = c->n->attrs.pad.pad;
    for (int32_t i = 0; i < 4; i++)
        if (p[i] < 0)
            return fail(c, "pad must be non-negative, got %d", (int)p[i]);
    int64_t dims[4] = {x->dims[0], x->dims[1], x->dims[2] + p[0] + p[2], x->dims[3] + p[1] + p[3]};
    set_out(c, 4, dims);
    return true;
}

static bool infer_channel_shuffle(const Ctx *c)
{
    const TensorType *x = in_type(c, 0);
    int32_t g = c->n->attrs.groups.groups;
    char b[TYPE_BUF];
    if (x->rank < 2)
        return fail(c, "channel_shuffle expects an input with channels [N, C, ...], got %s",
                    tstr(x, b));
    if (g < 1 || x->dims[1] % g != 0)
        return fail(c, "channel_shuffle groups=%d does not divide the %lld channels", (int)g,
                    (long long)x->dims[1]);
    *c->out = ir_type_f32(x->rank, x->dims);
    return true;
}

static bool infer_batchnorm(const Ctx *c)
{
    const TensorType *x = in_type(c, 0);
    char b[TYPE_BUF];
    if (x->rank < 2)
        return fail(c, "batchnorm expects an input with channels [N, C, ...], got %s",
                    tstr(x, b));
    for (int32_t i = 1; i < 5; i++)
        if (!want_vector(c, i, x->dims[1], "channels"))
            return false;
    float eps = c->n->attrs.bn.eps;
    if (!(eps >= 0.0f))
        return fail(c, "batchnorm eps must be non-negative, got %g", (double)eps);
    *c->out = ir_type_f32(x->rank, x->dims);
    return true;
}

static bool infer_unary(const Ctx *c)
{
    const TensorType *x = in_type(c, 0);
    const Attrs *a = &c->n->attrs;
    if (c->n->op == OP_CLIP && !(a->clip.lo <= a->clip.hi))
        return fail(c, "clip needs lo <= hi, got lo=%g, hi=%g", (double)a->clip.lo,
                    (double)a->clip.hi);
    if (c->n->op == OP_DROPOUT && !(a->dropout.p >= 0.0f && a->dropout.p <= 1.0f))
        return fail(c, "dropout p must be in [0, 1], got %g", (double)a->dropout.p);
    *c->out = ir_type_f32(x->rank, x->dims);
    return true;
}

/* numpy broadcasting: ranks aligned on the right, a dim of 1 stretches. */
static bool infer_broadcast(const Ctx *c)
{
    const TensorType *x = in_type(c, 0), *y = in_type(c, 1);
    int32_t rank = x->rank > y->rank ? x->rank : y->rank;
    int64_t dims[IR_MAX_RANK];
    for (int32_t i = 0; i < rank; i++) {
        int32_t ix = x->rank - rank + i, iy = y->rank - rank + i;
        int64_t dx = ix >= 0 ? x->dims[ix] : 1, dy = iy >= 0 ? y->dims[iy] : 1;
        if (dx != dy && dx != 1 && dy != 1) {
            char b1[TYPE_BUF], b2[TYPE_BUF];
            return fail(c, "%s cannot broadcast %s with %s", op_name(c), tstr(x, b1),
                        tstr(y, b2));
        }
        dims[i] = dx == 1 ? dy : dx;
    }
    set_out(c, rank, dims);
    return true;
}

/* Normalizes a possibly negative axis into [0, limit); false if outside. */
static bool norm_axis(int32_t axis, int32_t rank, int32_t limit, int32_t *out)
{
    int32_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= limit)
        return false;
    *out = a;
    return true;
}

static bool concat_input_fits(const Ctx *c, int32_t i, int32_t axis)
{
    const TensorType *x0 = in_type(c, 0), *xi = in_type(c, i);
    bool ok = xi->rank == x0->rank;
    for (int32_t k = 0; ok && k < x0->rank; k++)
        ok = k == axis || xi->dims[k] == x0->dims[k];
    if (ok)
        return true;
    char b1[TYPE_BUF], b2[TYPE_BUF];
    return fail(c, "concat input %d '%s' is %s, which does not match input 0 '%s' (%s) "
                "outside axis %d", (int)i, in_name(c, i), tstr(xi, b1), in_name(c, 0),
                tstr(x0, b2), (int)axis);
}

static bool infer_concat(const Ctx *c)
{
    const TensorType *x0 = in_type(c, 0);
    int32_t axis;
    if (!norm_axis(c->n->attrs.axis.axis, x0->rank, x0->rank, &axis))
        return fail(c, "concat axis %d is out of range for rank-%d inputs",
                    (int)c->n->attrs.axis.axis, (int)x0->rank);
    int64_t dims[IR_MAX_RANK];
    memcpy(dims, x0->dims, sizeof dims);
    for (int32_t i = 1; i < c->n->ninputs; i++) {
        if (!concat_input_fits(c, i, axis))
            return false;
        if (__builtin_add_overflow(dims[axis], in_type(c, i)->dims[axis], &dims[axis]))
            dims[axis] = INT64_MAX; /* too large, as the size check then says */
    }
    set_out(c, x0->rank, dims);
    return true;
}

static bool infer_pool(const Ctx *c)
{
    const PoolAttrs *a = &c->n->attrs.pool;
    if (!want_nchw(c) || !check_window(c, a->kernel, a->stride, a->dilation, a->pad))
        return false;
    for (int i = 0; i < 4; i++) {
        int64_t ext = (int64_t)a->dilation[i % 2] * (a->kernel[i % 2] - 1) + 1;
        if (2 * (int64_t)a->pad[i] > ext)
            return fail(c, "%s pad [%d,%d,%d,%d] must be at most half the kernel",
                        op_name(c), (int)a->pad[0], (int)a->pad[1], (int)a->pad[2],
                        (int)a->pad[3]);
    }
    int64_t hw[2];
    if (!window_out(c, a->kernel, a->stride, a->dilation, a->pad, a->ceil_mode, hw))
        return false;
    const TensorType *x = in_type(c, 0);
    int64_t dims[4] = {x->dims[0], x->dims[1], hw[0], hw[1]};
    set_out(c, 4, dims);
    return true;
}

static bool infer_global_avgpool(const Ctx *c)
{
    if (!want_nchw(c))
        return false;
    const TensorType *x = in_type(c, 0);
    int64_t dims[4] = {x->dims[0], x->dims[1], 1, 1};
    set_out(c, 4, dims);
    return true;
}

static bool infer_adaptive_avgpool(const Ctx *c)
{
    const int32_t *o = c->n->attrs.adaptive.out;
    if (!want_nchw(c))
        return false;
    if (o[0] < 1 || o[1] < 1)
        return fail(c, "adaptive_avgpool out must be positive, got [%d,%d]", (int)o[0],
                    (int)o[1]);
    const TensorType *x = in_type(c, 0);
    int64_t dims[4] = {x->dims[0], x->dims[1], o[0], o[1]};
    set_out(c, 4, dims);
    return true;
}

static bool infer_flatten(const Ctx *c)
{
    const TensorType *x = in_type(c, 0);
    char b[TYPE_BUF];
    int32_t axis;
    if (x->rank < 1)
        return fail(c, "flatten expects at least a 1-d input, got %s", tstr(x, b));
    if (!norm_axis(c->n->attrs.axis.axis, x->rank, x->rank + 1, &axis))
        return fail(c, "flatten axis %d is out of range for %s", (int)c->n->attrs.axis.axis,
                    tstr(x, b));
    int64_t dims[2] = {1, 1};
    for (int32_t i = 0; i < x->rank; i++)
        dims[i >= axis] *= x->dims[i];
    set_out(c, 2, dims);
    return true;
}

static bool infer_softmax(const Ctx *c)
{
    const TensorType *x = in_type(c, 0);
    char b[TYPE_BUF];
    int32_t axis;
    if (!norm_axis(c->n->attrs.axis.axis, x->rank, x->rank, &axis))
        return fail(c, "softmax axis %d is out of range for %s", (int)c->n->attrs.axis.axis,
                    tstr(x, b));
    *c->out = ir_type_f32(x->rank, x->dims);
    return true;
}

/* Every tensor's element count is bounded (IR_MAX_NUMEL), so that no size
 * computed from a type downstream can overflow. */
static bool check_size(const Ctx *c)
{
    const TensorType *t = c->out;
    if (ir_numel_checked(t->rank, t->dims) >= 0)
        return true;
    char b[TYPE_BUF];
    double n = ir_numel_approx(t->rank, t->dims);
    if (c->n->op == OP_INPUT || c->n->op == OP_PARAM)
        return fail(c, "%s '%s' of shape %s has %.2g elements, more than cnnc supports (2^%d)",
                    leaf_kind(c->n), c->n->name, tstr(t, b), n, IR_MAX_NUMEL_LOG2);
    return fail(c, "%s output of shape %s would have %.2g elements, more than cnnc supports "
                "(2^%d)", op_name(c), tstr(t, b), n, IR_MAX_NUMEL_LOG2);
}


/* ---- training ops: most take the dims of one input (the value whose gradient or
 * update they compute), the others a [C], [2, C] or [1] of their own. -------------- */

static bool same_dims(const Ctx *c, int32_t i, int32_t j)
{
    char b1[TYPE_BUF], b2[TYPE_BUF];
    if (!ir_dims_eq(in_type(c, i), in_type(c, j)))
        return fail(c, "%s needs '%s' and '%s' of the same shape, got %s and %s", op_name(c),
                    in_name(c, i), in_name(c, j), tstr(in_type(c, i), b1),
                    tstr(in_type(c, j), b2));
    return true;
}

static bool want_rank(const Ctx *c, int32_t i, int32_t rank)
{
    char b[TYPE_BUF];
    if (in_type(c, i)->rank != rank)
        return fail(c, "%s expects a %d-d '%s', got %s", op_name(c), (int)rank, in_name(c, i),
                    tstr(in_type(c, i), b));
    return true;
}

static bool like(const Ctx *c, int32_t i)
{
    *c->out = ir_type_f32(in_type(c, i)->rank, in_type(c, i)->dims);
    return true;
}

static bool infer_train(const Ctx *c)
{
    const Node *n = c->n;
    char b[TYPE_BUF];
    switch (n->op) {
    case OP_CONV2D_GRAD_INPUT:
        return want_rank(c, 0, 4) && want_rank(c, 1, 4) && want_rank(c, 2, 4) && like(c, 2);
    case OP_CONV2D_GRAD_WEIGHT:
        return want_rank(c, 0, 4) && want_rank(c, 1, 4) && want_rank(c, 2, 4) && like(c, 2);
    case OP_DENSE_GRAD_INPUT:
    case OP_DENSE_GRAD_WEIGHT: {
        if (!want_rank(c, 0, 2) || !want_rank(c, 1, 2))
            return false;
        const TensorType *dy = in_type(c, 0), *o = in_type(c, 1);
        bool wgt = n->op == OP_DENSE_GRAD_WEIGHT;
        if (o->dims[0] != dy->dims[wgt ? 0 : 1])
            return fail(c, "%s: '%s' %s does not fit '%s' %s", op_name(c), in_name(c, 0),
                        tstr(dy, b), in_name(c, 1), tstr(o, (char[TYPE_BUF]){0}));
        int64_t dims[2] = {dy->dims[wgt ? 1 : 0], o->dims[1]};
        set_out(c, 2, dims);
        return true;
    }
    case OP_BIAS_GRAD: {
        const TensorType *dy = in_type(c, 0);
        int32_t axis;
        if (!norm_axis(n->attrs.axis.axis, dy->rank, dy->rank, &axis))
            return fail(c, "bias_grad axis %d is out of range for %s", (int)n->attrs.axis.axis,
                        tstr(dy, b));
        set_out(c, 1, &dy->dims[axis]);
        return true;
    }
    case OP_ACT_GRAD:
        if (!ir_op_is_act(n->attrs.actgrad.act) && n->attrs.actgrad.act != OP_NO_ACT)
            return fail(c, "act_grad needs an activation, got %s", ir_ops[n->attrs.actgrad.act].name);
        return same_dims(c, 0, 1) && like(c, 1);
    case OP_MAXPOOL_GRAD:
    case OP_AVGPOOL_GRAD:
    case OP_GLOBAL_AVGPOOL_GRAD:
    case OP_ADAPTIVE_AVGPOOL_GRAD:
        return want_rank(c, 0, 4) && want_rank(c, 1, 4) && like(c, 1);
    case OP_RESHAPE_AS:
        if (ir_numel_checked(in_type(c, 0)->rank, in_type(c, 0)->dims) !=
            ir_numel_checked(in_type(c, 1)->rank, in_type(c, 1)->dims))
            return fail(c, "reshape_as: '%s' %s and '%s' differ in size", in_name(c, 0),
                        tstr(in_type(c, 0), b), in_name(c, 1));
        return like(c, 1);
    case OP_REDUCE_AS:
    case OP_SLICE_GRAD:
        return like(c, 1);
    case OP_BN_STATS: {
        const TensorType *x = in_type(c, 0);
        if (x->rank < 2)
            return fail(c, "bn_stats expects [N, C, ...], got %s", tstr(x, b));
        int64_t dims[2] = {2, x->dims[1]};
        set_out(c, 2, dims);
        return true;
    }
    case OP_BN_TRAIN:
        return want_rank(c, 1, 2) && want_vector(c, 2, in_type(c, 0)->dims[1], "channels") &&
               want_vector(c, 3, in_type(c, 0)->dims[1], "channels") && like(c, 0);
    case OP_BN_GRAD_INPUT:
        return same_dims(c, 0, 1) && want_rank(c, 2, 2) &&
               want_vector(c, 3, in_type(c, 1)->dims[1], "channels") && like(c, 1);
    case OP_BN_GRAD_WEIGHT:
        if (!same_dims(c, 0, 1) || !want_rank(c, 2, 2))
            return false;
        set_out(c, 1, &in_type(c, 1)->dims[1]);
        return true;
    case OP_BN_RUNNING:
        return want_rank(c, 0, 1) && want_rank(c, 1, 2) && like(c, 0);
    case OP_DROPOUT_TRAIN:
    case OP_DROPOUT_GRAD:
        if (!(n->attrs.dropout.p >= 0.0f && n->attrs.dropout.p < 1.0f))
            return fail(c, "dropout p must be in [0, 1) for training, got %g",
                        (double)n->attrs.dropout.p);
        return like(c, 0);
    case OP_SOFTMAX_XENT:
    case OP_SOFTMAX_XENT_GRAD: {
        const TensorType *x = in_type(c, 0), *y = in_type(c, 1);
        if (x->rank != 2 || y->rank != 1 || y->dims[0] != x->dims[0])
            return fail(c, "cross-entropy needs logits [N, K] and labels [N], got %s and %s",
                        tstr(x, b), tstr(y, (char[TYPE_BUF]){0}));
        if (n->op == OP_SOFTMAX_XENT_GRAD)
            return like(c, 0);
        int64_t one = 1;
        set_out(c, 1, &one);
        return true;
    }
    case OP_MSE:
    case OP_MSE_GRAD: {
        if (!same_dims(c, 0, 1))
            return false;
        if (n->op == OP_MSE_GRAD)
            return like(c, 0);
        int64_t one = 1;
        set_out(c, 1, &one);
        return true;
    }
    case OP_ADAM_M:
    case OP_ADAM_V:
        return same_dims(c, 0, 1) && same_dims(c, 0, 2) && like(c, 0);
    case OP_SGD_MOMENTUM:
    case OP_SGD_STEP:
    case OP_ADAM_STEP:
        if (!same_dims(c, 0, 1) || !same_dims(c, 0, 2))
            return false;
        if (in_type(c, 3)->rank != 1 || in_type(c, 3)->dims[0] != 3)
            return fail(c, "%s expects hyper-parameters f32[3] in '%s', got %s", op_name(c),
                        in_name(c, 3), tstr(in_type(c, 3), b));
        return like(c, 0);
    default: break;
    }
    ICE("bad op %d", (int)n->op);
}

static bool infer_op(const Ctx *c)
{
    if (ir_op_is_act(c->n->op))
        return infer_unary(c);
    if (ir_op_is_train(c->n->op))
        return infer_train(c);
    switch (c->n->op) {
    case OP_INPUT:
    case OP_PARAM: return infer_leaf(c);
    case OP_CONV2D: return infer_conv2d(c);
    case OP_DENSE: return infer_dense(c);
    case OP_BATCHNORM: return infer_batchnorm(c);
    case OP_DROPOUT:
    case OP_REORDER: return infer_unary(c);
    case OP_ADD:
    case OP_MUL:
    case OP_SUB:
    case OP_DIV: return infer_broadcast(c);
    case OP_CONCAT: return infer_concat(c);
    case OP_MAXPOOL:
    case OP_AVGPOOL: return infer_pool(c);
    case OP_GLOBAL_AVGPOOL: return infer_global_avgpool(c);
    case OP_ADAPTIVE_AVGPOOL: return infer_adaptive_avgpool(c);
    case OP_FLATTEN: return infer_flatten(c);
    case OP_SOFTMAX: return infer_softmax(c);
    case OP_LAYERNORM: return infer_layernorm(c);
    case OP_TRANSPOSE: return infer_transpose(c);
    case OP_SLICE: return infer_slice(c);
    case OP_PAD: return infer_pad(c);
    case OP_CHANNEL_SHUFFLE: return infer_channel_shuffle(c);
    default: break;
    }
    ICE("bad op %d", (int)c->n->op);
}

/* Every value is f32 for now; an invalid input means its own error has
 * been reported already, so this node fails without a message. */
static bool check_inputs(const Ctx *c)
{
    const Node *n = c->n;
    char b[TYPE_BUF];
    if (n->op == OP_INPUT || n->op == OP_PARAM) {
        if (n->type.dtype == DT_INVALID)
            return false;
        if (n->type.dtype != DT_F32)
            return fail(c, "%s '%s' is %s; only f32 is supported", leaf_kind(n), n->name,
                        tstr(&n->type, b));
        return true;
    }
    for (int32_t i = 0; i < n->ninputs; i++)
        if (in_type(c, i)->dtype == DT_INVALID)
            return false;
    for (int32_t i = 0; i < n->ninputs; i++)
        if (in_type(c, i)->dtype != DT_F32)
            return fail(c, "%s supports only f32, got %s for '%s'", op_name(c),
                        tstr(in_type(c, i), b), in_name(c, i));
    return true;
}

bool ir_infer_type(const Graph *g, int32_t id, Diag *d, TensorType *out)
{
    if (id < 0 || id >= g->nnodes)
        ICE("node %d of %d", (int)id, (int)g->nnodes);
    const Node *n = &g->nodes[id];
    for (int32_t i = 0; i < n->ninputs; i++)
        if (n->inputs[i] < 0 || n->inputs[i] >= id)
            ICE("node %d input %d refers to node %d", (int)id, (int)i, (int)n->inputs[i]);
    Ctx c = {g, n, d, out};
    memset(out, 0, sizeof *out);
    if (!check_inputs(&c) || !infer_op(&c) || !check_size(&c)) {
        memset(out, 0, sizeof *out);
        out->dtype = DT_INVALID;
        return false;
    }
    return true;
}

/* Inference yields logical dims; a storage layout chosen later by a pass is
 * kept when the node is inferred again. A reorder exists to change layout,
 * so it is created with its target layout already set. */
bool ir_infer_node(Graph *g, int32_t id, Diag *d)
{
    TensorType t;
    bool ok = ir_infer_type(g, id, d, &t);
    Node *n = &g->nodes[id];
    if (ok && n->op != OP_INPUT && n->op != OP_PARAM && n->type.dtype != DT_INVALID &&
        n->type.rank == t.rank) {
        t.layout = n->type.layout;
        t.block = n->type.block;
    }
    n->type = t;
    return ok;
}

bool ir_infer_shapes(Graph *g, Diag *d)
{
    bool ok = true;
    for (int32_t i = 0; i < g->nnodes; i++)
        ok &= ir_infer_node(g, i, d);
    return ok;
}
