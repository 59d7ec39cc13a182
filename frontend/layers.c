/* layers.c: the built-in layers of the language (the table in docs/language.md).
 * Each checks its arguments where they are written, creates its parameters with
 * shapes derived from the input (NAME.weight, NAME.bias, ...), and adds one
 * graph node whose shape is inferred at once. */
#include "elab.h"

#include <math.h>
#include <string.h>

/* ---- nodes ---------------------------------------------------------------- */

/* Inferred at once, so a bad shape is reported where the layer is called. */
static int32_t infer_at_call(Elab *E, int32_t id)
{
    int errors = E->d->nerrors;
    ir_infer_node(E->g, id, E->d);
    if (E->d->nerrors > errors)
        fe_call_notes(E);
    return id;
}

int32_t fe_add_node(Elab *E, Op op, const int32_t *inputs, int32_t n, const Attrs *attrs,
                    const char *name, SrcLoc loc)
{
    fe_room_for_node(E, loc);
    int32_t id = ir_add_node(E->g, op, inputs, n, name, fe_graph_loc(E, loc));
    if (attrs)
        E->g->nodes[id].attrs = *attrs;
    return infer_at_call(E, id);
}

int32_t fe_add_param(Elab *E, const char *layer, const char *what, int32_t rank,
                     const int64_t *dims, SrcLoc loc)
{
    const char *name = ir_strfmt(E->arena, "%s.%s", layer, what);
    TensorType t = ir_type_f32(rank, dims);
    /* one of more elements than cnnc supports is reported by its inference instead */
    if (fe_room_for_node(E, loc) && ir_numel_checked(rank, dims) >= 0)
        fe_charge_param(E, name, &t, loc);
    return infer_at_call(E, ir_add_param(E->g, name, t, fe_graph_loc(E, loc)));
}

Value fe_tensor_binary(Elab *E, Op op, Value a, Value b, const char *name, SrcLoc loc)
{
    if (!fe_value_ok(E, a) || !fe_value_ok(E, b))
        return fe_error_value();
    int32_t in[2] = {a.node, b.node};
    return fe_tensor(fe_add_node(E, op, in, 2, NULL, name, loc));
}

/* ---- arguments -------------------------------------------------------------- */

static const char *pname(const Call *c, int i)
{
    return c->b->params[i];
}

/* Argument i of the signature, or (i < 0) positional argument -1 - i of a
 * variadic call. */
static bool bad_kind(Elab *E, const Call *c, int i, const char *expected)
{
    Value v = i >= 0 ? c->args[i] : c->rest[-1 - i];
    SrcLoc loc = i >= 0 ? c->locs[i] : c->rest_locs[-1 - i];
    if (v.kind == V_ERROR)
        return false;
    if (i >= 0)
        fe_error(E, loc, "%s expects %s, got %s", pname(c, i), expected, fe_value_str(E, v));
    else
        fe_error(E, loc, "%s expects %s, got %s", c->b->name, expected, fe_value_str(E, v));
    return false;
}

static bool in_range(Elab *E, const Call *c, int i, int64_t v, int64_t lo)
{
    if (v < lo) {
        fe_error(E, c->locs[i], "%s must be %s, got %lld", pname(c, i),
                 lo > 0 ? "positive" : "non-negative", (long long)v);
        return false;
    }
    if (v > INT32_MAX) {
        fe_error(E, c->locs[i], "%s is too large: %lld", pname(c, i), (long long)v);
        return false;
    }
    return true;
}

static bool arg_tensor(Elab *E, const Call *c, int i, int32_t *node)
{
    Value v = c->args[i];
    *node = -1;
    if (v.kind != V_TENSOR) {
        if (v.kind != V_ERROR)
            fe_error(E, c->locs[i], "%s expects a tensor as '%s', got %s", c->b->name,
                     pname(c, i), fe_value_str(E, v));
        return false;
    }
    *node = v.node;
    return fe_value_ok(E, v);
}

static const TensorType *type_of(const Elab *E, int32_t node)
{
    return &E->g->nodes[node].type;
}

/* An int of at least `lo`; `def` when the argument is not given. */
static bool arg_int(Elab *E, const Call *c, int i, int64_t def, int64_t lo, int64_t *out)
{
    *out = def;
    if (!c->given[i])
        return true;
    if (c->args[i].kind != V_INT)
        return bad_kind(E, c, i, "an int");
    *out = c->args[i].i;
    return in_range(E, c, i, *out, lo);
}

/* An int, or none (0) for an optional check such as in_channels. */
static bool arg_opt_int(Elab *E, const Call *c, int i, int64_t *out)
{
    *out = 0;
    if (!c->given[i] || c->args[i].kind == V_NONE)
        return true;
    if (c->args[i].kind != V_INT)
        return bad_kind(E, c, i, "an int or none");
    *out = c->args[i].i;
    return in_range(E, c, i, *out, 1);
}

static bool arg_axis(Elab *E, const Call *c, int i, int64_t *out)
{
    if (!c->given[i])
        return true;
    if (c->args[i].kind != V_INT)
        return bad_kind(E, c, i, "an int");
    *out = c->args[i].i;
    if (*out < -IR_MAX_RANK - 1 || *out > IR_MAX_RANK + 1) {
        fe_error(E, c->locs[i], "axis %lld is out of range", (long long)*out);
        return false;
    }
    return true;
}

static bool arg_float(Elab *E, const Call *c, int i, double def, float *out)
{
    Value v = c->args[i];
    *out = (float)def;
    if (!c->given[i])
        return true;
    if (v.kind != V_INT && v.kind != V_FLOAT)
        return bad_kind(E, c, i, "a number");
    *out = (float)(v.kind == V_INT ? (double)v.i : v.f);
    return true;
}

static bool arg_bool(Elab *E, const Call *c, int i, bool def, bool *out)
{
    *out = def;
    if (!c->given[i])
        return true;
    if (c->args[i].kind != V_BOOL)
        return bad_kind(E, c, i, "true or false");
    *out = c->args[i].b;
    return true;
}

/* A list of `n` ints, each at least `lo`. */
static bool int_list(Elab *E, const Call *c, int i, int32_t n, int64_t lo, int32_t *out)
{
    const ValueList *l = c->args[i].list;
    for (int32_t k = 0; k < n; k++)
        if (l->items[k].kind != V_INT)
            return false;
    for (int32_t k = 0; k < n; k++) {
        if (!in_range(E, c, i, l->items[k].i, lo))
            return true;
        out[k] = (int32_t)l->items[k].i;
    }
    return true;
}

/* A spatial attribute: an int for both dims or [h, w]. */
static bool arg_pair(Elab *E, const Call *c, int i, const int32_t def[2], int64_t lo,
                     int32_t out[2])
{
    Value v = c->args[i];
    out[0] = def[0];
    out[1] = def[1];
    if (!c->given[i])
        return true;
    if (v.kind == V_INT) {
        if (!in_range(E, c, i, v.i, lo))
            return false;
        out[0] = out[1] = (int32_t)v.i;
        return true;
    }
    int errors = E->d->nerrors;
    if (v.kind == V_LIST && v.list->n == 2 && int_list(E, c, i, 2, lo, out))
        return E->d->nerrors == errors;
    return bad_kind(E, c, i, "an int or a list of 2 ints");
}

/* Padding: an int, [h, w], [top, left, bottom, right], "valid", or "same"
 * (computed later from the input, once it is known to be good). */
static bool arg_pad(Elab *E, const Call *c, int i, int32_t pad[4], bool *same)
{
    Value v = c->args[i];
    memset(pad, 0, 4 * sizeof *pad);
    *same = false;
    if (!c->given[i])
        return true;
    if (v.kind == V_STRING && (strcmp(v.s, "same") == 0 || strcmp(v.s, "valid") == 0)) {
        *same = v.s[0] == 's';
        return true;
    }
    if (v.kind == V_INT) {
        if (!in_range(E, c, i, v.i, 0))
            return false;
        pad[0] = pad[1] = pad[2] = pad[3] = (int32_t)v.i;
        return true;
    }
    int errors = E->d->nerrors;
    if (v.kind == V_LIST && (v.list->n == 2 || v.list->n == 4) &&
        int_list(E, c, i, v.list->n, 0, pad)) {
        if (v.list->n == 2) {
            pad[2] = pad[0];
            pad[3] = pad[1];
        }
        return E->d->nerrors == errors;
    }
    return bad_kind(E, c, i, "an int, a list of 2 or 4 ints, \"same\" or \"valid\"");
}

/* ONNX's SAME_UPPER: output ceil(in / stride), the odd pixel of padding at the end.
 * A padding too large for the attribute is reported at argument `i_pad`. */
static bool same_pad(Elab *E, const Call *c, int i_pad, const TensorType *x,
                     const int32_t k[2], const int32_t s[2], const int32_t d[2], int32_t pad[4])
{
    if (x->rank != 4)
        return true;
    for (int i = 0; i < 2; i++) {
        int64_t in = x->dims[2 + i], out = (in + s[i] - 1) / s[i];
        int64_t total = (out - 1) * s[i] + (int64_t)(k[i] - 1) * d[i] + 1 - in;
        if (total < 0)
            total = 0;
        if (total - total / 2 > INT32_MAX) {
            fe_error(E, c->locs[i_pad], "pad \"same\" would be %lld, more than %d",
                     (long long)(total - total / 2), INT32_MAX);
            return false;
        }
        pad[i] = (int32_t)(total / 2);
        pad[i + 2] = (int32_t)(total - total / 2);
    }
    return true;
}

static int64_t channels_of(const TensorType *t)
{
    return t->rank >= 2 ? t->dims[1] : 1;
}

/* ---- layers ----------------------------------------------------------------- */

static const int32_t ONE[2] = {1, 1};

static Value conv2d(Elab *E, const Call *c)
{
    Attrs at;
    ir_attrs_default(OP_CONV2D, &at);
    ConvAttrs *a = &at.conv;
    int64_t out, groups, inch;
    bool bias, same;
    int32_t x;
    bool ok = arg_tensor(E, c, 0, &x);
    ok &= arg_int(E, c, 1, 0, 1, &out);
    ok &= arg_pair(E, c, 2, ONE, 1, a->kernel);
    ok &= arg_pair(E, c, 3, ONE, 1, a->stride);
    ok &= arg_pad(E, c, 4, a->pad, &same);
    ok &= arg_pair(E, c, 5, ONE, 1, a->dilation);
    bool good_groups = arg_int(E, c, 6, 1, 1, &groups);
    ok &= good_groups;
    ok &= arg_bool(E, c, 7, true, &bias);
    ok &= arg_opt_int(E, c, 8, &inch);
    if (good_groups && inch && inch % groups) {
        fe_error(E, c->locs[8], "in_channels=%lld is not divisible by groups=%lld",
                 (long long)inch, (long long)groups);
        ok = false;
    }
    if (!ok)
        return fe_error_value();
    a->groups = (int32_t)groups;
    const TensorType *xt = type_of(E, x);
    if (same && !same_pad(E, c, 4, xt, a->kernel, a->stride, a->dilation, a->pad))
        return fe_error_value();
    int64_t per_group = (inch ? inch : channels_of(xt)) / groups;
    int64_t wd[4] = {out, per_group > 0 ? per_group : 1, a->kernel[0], a->kernel[1]};
    int32_t in[3] = {x, fe_add_param(E, c->name, "weight", 4, wd, c->loc), -1};
    if (bias)
        in[2] = fe_add_param(E, c->name, "bias", 1, &out, c->loc);
    return fe_tensor(fe_add_node(E, OP_CONV2D, in, bias ? 3 : 2, &at, c->name, c->loc));
}

static Value batchnorm(Elab *E, const Call *c)
{
    Attrs at;
    ir_attrs_default(OP_BATCHNORM, &at);
    int32_t x;
    bool ok = arg_tensor(E, c, 0, &x);
    ok &= arg_float(E, c, 1, 1e-5, &at.bn.eps);
    if (!ok)
        return fe_error_value();
    int64_t ch = channels_of(type_of(E, x));
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var"};
    int32_t in[5] = {x};
    for (int i = 0; i < 4; i++)
        in[i + 1] = fe_add_param(E, c->name, names[i], 1, &ch, c->loc);
    return fe_tensor(fe_add_node(E, OP_BATCHNORM, in, 5, &at, c->name, c->loc));
}

/* Without `axis`, the input must be [N, features] (flatten first); with it, the
 * layer is PyTorch's Linear over that one dim of an input of any rank. */
static Value dense(Elab *E, const Call *c)
{
    int64_t out, features, axis = 0;
    bool bias;
    int32_t x;
    bool ok = arg_tensor(E, c, 0, &x);
    ok &= arg_int(E, c, 1, 0, 1, &out);
    ok &= arg_bool(E, c, 2, true, &bias);
    ok &= arg_opt_int(E, c, 3, &features);
    bool has_axis = c->given[4] && c->args[4].kind != V_NONE;
    if (has_axis)
        ok &= arg_axis(E, c, 4, &axis);
    if (!ok)
        return fe_error_value();
    const TensorType *xt = type_of(E, x);
    Attrs at;
    ir_attrs_default(OP_DENSE, &at);
    if (has_axis) {
        int64_t a = axis < 0 ? axis + xt->rank : axis;
        if (a < 1 || a >= xt->rank) {
            char b[160];
            fe_error(E, c->locs[4], "dense axis %lld is out of range for %s (it must not be "
                     "the batch dim)", (long long)axis, ir_type_str(xt, b, sizeof b));
            return fe_error_value();
        }
        at.dense.axis = (int32_t)axis;
        if (!features)
            features = xt->dims[a];
    } else if (xt->rank != 2) {
        char b[160];
        fe_error(E, c->loc, "dense expects a 2-d input [N, features], got %s; flatten it first, "
                 "or give axis= to apply it over one dim", ir_type_str(xt, b, sizeof b));
        return fe_error_value();
    }
    if (!features)
        features = xt->dims[1];
    int64_t wd[2] = {out, features};
    int32_t in[3] = {x, fe_add_param(E, c->name, "weight", 2, wd, c->loc), -1};
    if (bias)
        in[2] = fe_add_param(E, c->name, "bias", 1, &out, c->loc);
    return fe_tensor(fe_add_node(E, OP_DENSE, in, bias ? 3 : 2, &at, c->name, c->loc));
}

static Value layernorm(Elab *E, const Call *c)
{
    Attrs at;
    ir_attrs_default(OP_LAYERNORM, &at);
    int64_t axis = -1;
    int32_t x;
    bool ok = arg_tensor(E, c, 0, &x);
    ok &= arg_axis(E, c, 1, &axis);
    ok &= arg_float(E, c, 2, 1e-5, &at.norm.eps);
    if (!ok)
        return fe_error_value();
    at.norm.axis = (int32_t)axis;
    const TensorType *xt = type_of(E, x);
    int64_t a = axis < 0 ? axis + xt->rank : axis;
    int64_t len = a >= 0 && a < xt->rank ? xt->dims[a] : 1;
    int32_t in[3] = {x, fe_add_param(E, c->name, "weight", 1, &len, c->loc),
                     fe_add_param(E, c->name, "bias", 1, &len, c->loc)};
    return fe_tensor(fe_add_node(E, OP_LAYERNORM, in, 3, &at, c->name, c->loc));
}

/* One input, no attributes: relu, sigmoid, tanh, silu, hardswish, global_avgpool. */
static Value unary(Elab *E, const Call *c)
{
    int32_t x;
    if (!arg_tensor(E, c, 0, &x))
        return fe_error_value();
    Op op = ir_op_from_name(c->b->name);
    if (op == OP_COUNT)
        ICE("no op for layer %s", c->b->name);
    return fe_tensor(fe_add_node(E, op, &x, 1, NULL, c->name, c->loc));
}

/* A one-input layer whose attributes `get` reads; x is checked first. */
typedef bool (*AttrReader)(Elab *E, const Call *c, Attrs *at);

static Value with_attrs(Elab *E, const Call *c, Op op, AttrReader get)
{
    Attrs at;
    ir_attrs_default(op, &at);
    int32_t x;
    bool ok = arg_tensor(E, c, 0, &x);
    ok &= get(E, c, &at);
    if (!ok)
        return fe_error_value();
    return fe_tensor(fe_add_node(E, op, &x, 1, &at, c->name, c->loc));
}

static bool relu6_attrs(Elab *E, const Call *c, Attrs *at)
{
    at->clip.lo = 0.0f;
    at->clip.hi = 6.0f;
    return true;
}

static bool clip_attrs(Elab *E, const Call *c, Attrs *at)
{
    bool ok = arg_float(E, c, 1, 0, &at->clip.lo);
    ok &= arg_float(E, c, 2, 0, &at->clip.hi);
    return ok;
}

static bool leaky_attrs(Elab *E, const Call *c, Attrs *at)
{
    return arg_float(E, c, 1, 0.01, &at->leaky.alpha);
}

static bool dropout_attrs(Elab *E, const Call *c, Attrs *at)
{
    return arg_float(E, c, 1, 0.5, &at->dropout.p);
}

static bool axis_attrs(Elab *E, const Call *c, Attrs *at)
{
    int64_t axis = at->axis.axis;
    bool ok = arg_axis(E, c, 1, &axis);
    at->axis.axis = (int32_t)axis;
    return ok;
}

static bool adaptive_attrs(Elab *E, const Call *c, Attrs *at)
{
    return arg_pair(E, c, 1, ONE, 1, at->adaptive.out);
}

static bool gelu_attrs(Elab *E, const Call *c, Attrs *at)
{
    if (!c->given[1])
        return true;
    Value v = c->args[1];
    if (v.kind != V_STRING || (strcmp(v.s, "none") != 0 && strcmp(v.s, "tanh") != 0))
        return bad_kind(E, c, 1, "\"none\" or \"tanh\"");
    at->gelu.tanh = v.s[0] == 't';
    return true;
}

static Value gelu(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_GELU, gelu_attrs);
}

static Value relu6(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_CLIP, relu6_attrs);
}

static Value clip(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_CLIP, clip_attrs);
}

static Value leaky_relu(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_LEAKY_RELU, leaky_attrs);
}

static Value dropout(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_DROPOUT, dropout_attrs);
}

static Value axis_layer(Elab *E, const Call *c)
{
    return with_attrs(E, c, ir_op_from_name(c->b->name), axis_attrs);
}

static Value adaptive_avgpool(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_ADAPTIVE_AVGPOOL, adaptive_attrs);
}

static Value pool(Elab *E, const Call *c)
{
    Op op = ir_op_from_name(c->b->name);
    bool is_max = op == OP_MAXPOOL;
    Attrs at;
    ir_attrs_default(op, &at);
    PoolAttrs *a = &at.pool;
    bool same;
    int32_t x;
    bool ok = arg_tensor(E, c, 0, &x);
    ok &= arg_pair(E, c, 1, ONE, 1, a->kernel);
    ok &= arg_pair(E, c, 2, a->kernel, 1, a->stride); /* stride defaults to the kernel */
    ok &= arg_pad(E, c, 3, a->pad, &same);
    if (is_max)
        ok &= arg_pair(E, c, 4, ONE, 1, a->dilation);
    ok &= arg_bool(E, c, is_max ? 5 : 4, false, &a->ceil_mode);
    if (!is_max)
        ok &= arg_bool(E, c, 5, true, &a->count_include_pad);
    if (!ok)
        return fe_error_value();
    if (same && !same_pad(E, c, 3, type_of(E, x), a->kernel, a->stride, a->dilation, a->pad))
        return fe_error_value();
    return fe_tensor(fe_add_node(E, op, &x, 1, &at, c->name, c->loc));
}

/* add, sub, mul, div of two tensors. */
static Value binary(Elab *E, const Call *c)
{
    int32_t a, b;
    bool ok = arg_tensor(E, c, 0, &a);
    ok &= arg_tensor(E, c, 1, &b);
    if (!ok)
        return fe_error_value();
    Op op = ir_op_from_name(c->b->name);
    return fe_tensor_binary(E, op, fe_tensor(a), fe_tensor(b), c->name, c->loc);
}

/* concat takes its inputs as positional arguments, or as one list. */
static Value concat(Elab *E, const Call *c)
{
    const Value *items = c->rest;
    int32_t n = c->nrest;
    bool from_list = n == 1 && items[0].kind == V_LIST;
    if (from_list) {
        n = items[0].list->n;
        items = items[0].list->items;
    }
    if (n == 0) {
        fe_error(E, c->loc, "concat needs at least one tensor");
        return fe_error_value();
    }
    bool ok = true;
    int32_t *in = ir_alloc(E->arena, (size_t)n * sizeof *in);
    for (int32_t i = 0; i < n; i++) {
        in[i] = items[i].node;
        if (items[i].kind == V_TENSOR)
            ok &= fe_value_ok(E, items[i]);
        else if (items[i].kind == V_ERROR)
            ok = false;
        else
            ok = bad_kind(E, c, -1 - (from_list ? 0 : i), "tensors");
    }
    Attrs at;
    ir_attrs_default(OP_CONCAT, &at);
    int64_t axis = at.axis.axis;
    ok &= arg_axis(E, c, 0, &axis);
    at.axis.axis = (int32_t)axis;
    if (!ok)
        return fe_error_value();
    return fe_tensor(fe_add_node(E, OP_CONCAT, in, n, &at, c->name, c->loc));
}

/* permute(x, dims): torch.permute; the batch dim stays first. */
static Value permute(Elab *E, const Call *c)
{
    Attrs at;
    ir_attrs_default(OP_TRANSPOSE, &at);
    int32_t x;
    bool ok = arg_tensor(E, c, 0, &x);
    Value v = c->args[1];
    if (v.kind != V_LIST) {
        bad_kind(E, c, 1, "a list of dims");
        return fe_error_value();
    }
    if (!ok)
        return fe_error_value();
    const TensorType *xt = type_of(E, x);
    if (v.list->n != xt->rank) {
        char b[160];
        fe_error(E, c->locs[1], "permute needs %d dims for %s, got %d", (int)xt->rank,
                 ir_type_str(xt, b, sizeof b), (int)v.list->n);
        return fe_error_value();
    }
    bool seen[IR_MAX_RANK] = {false}, perm = true;
    for (int32_t i = 0; i < v.list->n; i++) {
        Value d = v.list->items[i];
        if (d.kind != V_INT) {
            bad_kind(E, c, 1, "a list of ints");
            return fe_error_value();
        }
        int64_t k = d.i < 0 ? d.i + xt->rank : d.i;
        perm &= k >= 0 && k < xt->rank && !seen[k];
        if (!perm)
            break;
        seen[k] = true;
        at.perm.perm[i] = (int32_t)k;
    }
    if (!perm || at.perm.perm[0] != 0) {
        fe_error(E, c->locs[1], "permute dims %s %s", fe_value_str(E, v),
                 perm ? "must keep the batch dim 0 first" : "are not a permutation of 0 to rank - 1");
        return fe_error_value();
    }
    return fe_tensor(fe_add_node(E, OP_TRANSPOSE, &x, 1, &at, c->name, c->loc));
}

/* The slices [start, end) of `x` along `axis`, as a list of tensors named NAME.K. */
static Value slices(Elab *E, const Call *c, int32_t x, int64_t axis, const int64_t *sizes,
                    int32_t n)
{
    Value r = fe_list(E, n);
    ValueList *l = (ValueList *)r.list;
    int64_t start = 0;
    for (int32_t k = 0; k < n; k++) {
        Attrs at;
        ir_attrs_default(OP_SLICE, &at);
        at.slice = (SliceAttrs){(int32_t)axis, (int32_t)start, (int32_t)(start + sizes[k])};
        const char *name = ir_strfmt(E->arena, "%s.%d", c->name, (int)k);
        l->items[k] = fe_tensor(fe_add_node(E, OP_SLICE, &x, 1, &at, name, c->loc));
        start += sizes[k];
    }
    return r;
}

/* The length of dim `axis` of x (argument i gave the axis), or -1 after an error. */
static int64_t axis_len(Elab *E, const Call *c, int i, int32_t x, int64_t axis)
{
    const TensorType *xt = type_of(E, x);
    int64_t a = axis < 0 ? axis + xt->rank : axis;
    if (a < 1 || a >= xt->rank) {
        char b[160];
        fe_error(E, c->given[i] ? c->locs[i] : c->loc,
                 "%s axis %lld is out of range for %s (it must not be the batch dim)",
                 c->b->name, (long long)axis, ir_type_str(xt, b, sizeof b));
        return -1;
    }
    if (xt->dims[a] > INT32_MAX) {
        fe_error(E, c->loc, "%s of a dim of %lld is not supported", c->b->name,
                 (long long)xt->dims[a]);
        return -1;
    }
    return xt->dims[a];
}

/* chunk(x, chunks, axis=1): torch.chunk, pieces of ceil(len / chunks), the last
 * smaller (and fewer pieces when they run out). */
static Value chunk(Elab *E, const Call *c)
{
    int64_t chunks, axis = 1;
    int32_t x;
    bool ok = arg_tensor(E, c, 0, &x);
    ok &= arg_int(E, c, 1, 0, 1, &chunks);
    ok &= arg_axis(E, c, 2, &axis);
    if (!ok)
        return fe_error_value();
    int64_t len = axis_len(E, c, 2, x, axis);
    if (len < 0)
        return fe_error_value();
    int64_t each = (len + chunks - 1) / chunks, n = (len + each - 1) / each;
    int64_t *sizes = ir_alloc(E->arena, (size_t)n * sizeof *sizes);
    for (int64_t k = 0; k < n; k++)
        sizes[k] = k + 1 < n ? each : len - each * (n - 1);
    return slices(E, c, x, axis, sizes, (int32_t)n);
}

/* split(x, size or [sizes], axis=1): torch.split. */
static Value split(Elab *E, const Call *c)
{
    int64_t axis = 1;
    int32_t x;
    bool ok = arg_tensor(E, c, 0, &x);
    ok &= arg_axis(E, c, 2, &axis);
    Value v = c->args[1];
    if (v.kind != V_INT && v.kind != V_LIST)
        return bad_kind(E, c, 1, "an int or a list of ints"), fe_error_value();
    if (!ok)
        return fe_error_value();
    int64_t len = axis_len(E, c, 2, x, axis);
    if (len < 0)
        return fe_error_value();
    if (v.kind == V_INT) {
        if (!in_range(E, c, 1, v.i, 1))
            return fe_error_value();
        int64_t n = (len + v.i - 1) / v.i;
        int64_t *sizes = ir_alloc(E->arena, (size_t)n * sizeof *sizes);
        for (int64_t k = 0; k < n; k++)
            sizes[k] = k + 1 < n ? v.i : len - v.i * (n - 1);
        return slices(E, c, x, axis, sizes, (int32_t)n);
    }
    int64_t total = 0, *sizes = ir_alloc(E->arena, (size_t)(v.list->n + 1) * sizeof *sizes);
    for (int32_t k = 0; k < v.list->n; k++) {
        Value s = v.list->items[k];
        if (s.kind != V_INT || s.i < 1)
            return bad_kind(E, c, 1, "an int or a list of positive ints"), fe_error_value();
        sizes[k] = s.i;
        total += s.i < len ? s.i : len + 1;
    }
    if (total != len || v.list->n == 0) {
        fe_error(E, c->locs[1], "split sizes %s do not add up to the %lld elements of the axis",
                 fe_value_str(E, v), (long long)len);
        return fe_error_value();
    }
    return slices(E, c, x, axis, sizes, v.list->n);
}

static bool groups_attrs(Elab *E, const Call *c, Attrs *at)
{
    int64_t g;
    bool ok = arg_int(E, c, 1, 1, 1, &g);
    at->groups.groups = (int32_t)g;
    return ok;
}

static Value channel_shuffle(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_CHANNEL_SHUFFLE, groups_attrs);
}

/* affine(x, scale=1, shift=0): x * scale + shift rounded once, the one node that
 * `x * 3 + 1` makes in two. Finite, as the operators' factors and offsets are. */
static bool affine_attrs(Elab *E, const Call *c, Attrs *at)
{
    bool ok = arg_float(E, c, 1, 1, &at->affine.scale);
    ok &= arg_float(E, c, 2, 0, &at->affine.shift);
    const float v[2] = {at->affine.scale, at->affine.shift};
    for (int i = 0; ok && i < 2; i++)
        if (!isfinite(v[i])) {
            fe_error(E, c->locs[1 + i], "%s %s is not a finite f32", pname(c, 1 + i),
                     fe_value_str(E, c->args[1 + i]));
            ok = false;
        }
    return ok;
}

static Value affine(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_AFFINE, affine_attrs);
}

/* slice(x, start, end, axis=1): elements [start, end) of one dim; its inference
 * says when the range is not within the dim. */
static bool slice_attrs(Elab *E, const Call *c, Attrs *at)
{
    int64_t start, end, axis = at->slice.axis;
    bool ok = arg_int(E, c, 1, 0, 0, &start);
    ok &= arg_int(E, c, 2, 0, 0, &end);
    ok &= arg_axis(E, c, 3, &axis);
    at->slice = (SliceAttrs){(int32_t)axis, (int32_t)start, (int32_t)end};
    return ok;
}

static Value slice(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_SLICE, slice_attrs);
}

static bool pad_attrs(Elab *E, const Call *c, Attrs *at)
{
    bool same;
    bool ok = arg_pad(E, c, 1, at->pad.pad, &same);
    if (ok && same) {
        fe_error(E, c->locs[1], "pad takes an int or a list of 2 or 4 ints, not \"same\"");
        return false;
    }
    return ok & arg_float(E, c, 2, 0, &at->pad.value);
}

static Value pad(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_PAD, pad_attrs);
}

static bool depth_attrs(Elab *E, const Call *c, Attrs *at)
{
    bool ok = arg_float(E, c, 1, 0, &at->dropout.p);
    Value m = c->args[2];
    if (c->given[2] && (m.kind != V_STRING || (strcmp(m.s, "row") && strcmp(m.s, "batch"))))
        ok = bad_kind(E, c, 2, "\"row\" or \"batch\"");
    return ok;
}

/* stochastic_depth(x, p, mode="row"): torchvision's StochasticDepth, the
 * identity at inference (a dropout node). */
static Value stochastic_depth(Elab *E, const Call *c)
{
    return with_attrs(E, c, OP_DROPOUT, depth_attrs);
}

/* mean(x, axes, keepdims=false) over the spatial dims [2, 3] of NCHW: a
 * global_avgpool, flattened to [N, C] without keepdims. */
static Value mean(Elab *E, const Call *c)
{
    int32_t x;
    bool keep;
    bool ok = arg_tensor(E, c, 0, &x);
    ok &= arg_bool(E, c, 2, false, &keep);
    Value v = c->args[1];
    if (v.kind != V_LIST)
        return bad_kind(E, c, 1, "a list of dims"), fe_error_value();
    if (!ok)
        return fe_error_value();
    const TensorType *xt = type_of(E, x);
    bool seen[IR_MAX_RANK] = {false};
    int n = 0;
    for (int32_t k = 0; k < v.list->n; k++) {
        Value a = v.list->items[k];
        int64_t d = a.kind == V_INT ? (a.i < 0 ? a.i + xt->rank : a.i) : -1;
        if (d != 2 && d != 3) {
            n = -1;
            break;
        }
        n += !seen[d];
        seen[d] = true;
    }
    if (xt->rank != 4 || n != 2) {
        char b[160];
        fe_error(E, c->locs[1], "mean supports the spatial dims [2, 3] of a 4-d tensor; got "
                 "axes %s for %s", fe_value_str(E, v), ir_type_str(xt, b, sizeof b));
        return fe_error_value();
    }
    if (keep)
        return fe_tensor(fe_add_node(E, OP_GLOBAL_AVGPOOL, &x, 1, NULL, c->name, c->loc));
    const char *pool_name = ir_strfmt(E->arena, "%s.pool", c->name);
    int32_t p = fe_add_node(E, OP_GLOBAL_AVGPOOL, &x, 1, NULL, pool_name, c->loc);
    Attrs at;
    ir_attrs_default(OP_FLATTEN, &at);
    return fe_tensor(fe_add_node(E, OP_FLATTEN, &p, 1, &at, c->name, c->loc));
}

/* parameter(shape) as NAME: a learned tensor of its own, named NAME in the
 * current scope (ConvNeXt's layer_scale), usable in arithmetic. */
static Value parameter(Elab *E, const Call *c)
{
    Value v = c->args[0];
    int64_t dims[IR_MAX_RANK];
    bool ok = v.kind == V_LIST && v.list->n >= 1 && v.list->n <= IR_MAX_RANK;
    for (int32_t k = 0; ok && k < v.list->n; k++) {
        ok = v.list->items[k].kind == V_INT && v.list->items[k].i >= 1;
        dims[k] = ok ? v.list->items[k].i : 0;
    }
    if (!ok) {
        if (v.kind != V_ERROR)
            bad_kind(E, c, 0, "a list of 1 to 6 positive ints");
        return fe_error_value();
    }
    TensorType t = ir_type_f32(v.list->n, dims);
    if (fe_room_for_node(E, c->loc) && ir_numel_checked(t.rank, t.dims) >= 0)
        fe_charge_param(E, c->name, &t, c->loc);
    return fe_tensor(infer_at_call(E, ir_add_param(E->g, c->name, t, fe_graph_loc(E, c->loc))));
}

/* ---- the table ------------------------------------------------------------------ */

#define LAYER(name, req, fn, ...) {name, {__VA_ARGS__, NULL}, req, false, true, fn}

static const Builtin layers[] = {
    LAYER("conv2d", 3, conv2d, "x", "out", "kernel", "stride", "pad", "dilation", "groups",
          "bias", "in_channels"),
    LAYER("batchnorm", 1, batchnorm, "x", "eps"),
    LAYER("dense", 2, dense, "x", "out", "bias", "in_features", "axis"),
    LAYER("layernorm", 1, layernorm, "x", "axis", "eps"),
    LAYER("relu", 1, unary, "x"),
    LAYER("sigmoid", 1, unary, "x"),
    LAYER("tanh", 1, unary, "x"),
    LAYER("silu", 1, unary, "x"),
    LAYER("hardswish", 1, unary, "x"),
    LAYER("hardsigmoid", 1, unary, "x"),
    LAYER("erf", 1, unary, "x"),
    LAYER("sqrt", 1, unary, "x"),
    LAYER("exp", 1, unary, "x"),
    LAYER("abs", 1, unary, "x"),
    LAYER("gelu", 1, gelu, "x", "approximate"),
    LAYER("relu6", 1, relu6, "x"),
    LAYER("clip", 3, clip, "x", "min", "max"),
    LAYER("leaky_relu", 1, leaky_relu, "x", "alpha"),
    LAYER("affine", 1, affine, "x", "scale", "shift"),
    LAYER("add", 2, binary, "a", "b"),
    LAYER("sub", 2, binary, "a", "b"),
    LAYER("mul", 2, binary, "a", "b"),
    LAYER("div", 2, binary, "a", "b"),
    {"concat", {"axis", NULL}, 0, true, true, concat},
    LAYER("maxpool", 2, pool, "x", "kernel", "stride", "pad", "dilation", "ceil_mode"),
    LAYER("avgpool", 2, pool, "x", "kernel", "stride", "pad", "ceil_mode", "count_include_pad"),
    LAYER("global_avgpool", 1, unary, "x"),
    LAYER("adaptive_avgpool", 2, adaptive_avgpool, "x", "output"),
    LAYER("flatten", 1, axis_layer, "x", "axis"),
    LAYER("softmax", 1, axis_layer, "x", "axis"),
    LAYER("dropout", 1, dropout, "x", "p"),
    LAYER("stochastic_depth", 2, stochastic_depth, "x", "p", "mode"),
    LAYER("permute", 2, permute, "x", "dims"),
    LAYER("chunk", 2, chunk, "x", "chunks", "axis"),
    LAYER("split", 2, split, "x", "size", "axis"),
    LAYER("channel_shuffle", 2, channel_shuffle, "x", "groups"),
    LAYER("slice", 3, slice, "x", "start", "end", "axis"),
    LAYER("pad", 2, pad, "x", "pad", "value"),
    LAYER("mean", 2, mean, "x", "axes", "keepdims"),
    LAYER("parameter", 1, parameter, "shape"),
};

const Builtin *fe_find_layer(const char *name)
{
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        if (strcmp(layers[i].name, name) == 0)
            return &layers[i];
    return NULL;
}

void fe_suggest_layers(Suggest *s)
{
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        fe_suggest_add(s, layers[i].name);
}
