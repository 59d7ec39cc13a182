/* ops.c: the op table built from ops.def, the description of every attribute
 * field (so printing, parsing and dot export treat attributes generically) and
 * the default attributes of each op. */
#include "ir.h"

#include <math.h>
#include <string.h>

const OpInfo ir_ops[OP_COUNT] = {
#define OP(e, s, mi, ma, fc, ak, fl) [OP_##e] = {s, mi, ma, fc, ak, fl},
#include "ops.def"
#undef OP
};

Op ir_op_from_name(const char *name)
{
    for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(ir_ops[i].name, name) == 0)
            return (Op)i;
    return OP_COUNT;
}

_Static_assert(OP_NO_ACT == 0, "a zeroed epilogue applies no activation");

bool ir_op_is_train(Op op)
{
    return op >= 0 && op < OP_COUNT && (ir_ops[op].flags & OF_TRAIN);
}

bool ir_op_is_act(Op op)
{
    return op >= 0 && op < OP_COUNT && (ir_ops[op].flags & OF_ACT);
}

#define FIELD(k, member, name, type, count) {k, name, type, count, offsetof(Attrs, member), false}
#define OPTIONAL(k, member, name, type) {k, name, type, 1, offsetof(Attrs, member), true}
#define EPILOGUE(k, e)                                                                        \
    OPTIONAL(k, e.act, "act", AF_ACT), OPTIONAL(k, e.act_a, "act_a", AF_FLOAT),                \
    OPTIONAL(k, e.act_b, "act_b", AF_FLOAT), OPTIONAL(k, e.residual, "residual", AF_BOOL),     \
    OPTIONAL(k, e.post, "post", AF_ACT), OPTIONAL(k, e.post_a, "post_a", AF_FLOAT),            \
    OPTIONAL(k, e.post_b, "post_b", AF_FLOAT)

const AttrField ir_attr_fields[] = {
    FIELD(AK_CONV, conv.kernel, "kernel", AF_INT, 2),
    FIELD(AK_CONV, conv.stride, "stride", AF_INT, 2),
    FIELD(AK_CONV, conv.dilation, "dilation", AF_INT, 2),
    FIELD(AK_CONV, conv.pad, "pad", AF_INT, 4),
    FIELD(AK_CONV, conv.groups, "groups", AF_INT, 1),
    EPILOGUE(AK_CONV, conv.epi),
    OPTIONAL(AK_CONV, conv.winograd, "winograd", AF_INT),
    OPTIONAL(AK_CONV, conv.fused_in, "fused_in", AF_BOOL),
    OPTIONAL(AK_CONV, conv.scaled_in, "scaled_in", AF_BOOL),
    EPILOGUE(AK_DENSE, dense.epi),
    OPTIONAL(AK_DENSE, dense.axis, "axis", AF_INT),
    FIELD(AK_POOL, pool.kernel, "kernel", AF_INT, 2),
    FIELD(AK_POOL, pool.stride, "stride", AF_INT, 2),
    FIELD(AK_POOL, pool.dilation, "dilation", AF_INT, 2),
    FIELD(AK_POOL, pool.pad, "pad", AF_INT, 4),
    FIELD(AK_POOL, pool.ceil_mode, "ceil_mode", AF_BOOL, 1),
    FIELD(AK_POOL, pool.count_include_pad, "count_include_pad", AF_BOOL, 1),
    OPTIONAL(AK_POOL, pool.fused_in, "fused_in", AF_BOOL),
    FIELD(AK_BN, bn.eps, "eps", AF_FLOAT, 1),
    FIELD(AK_CLIP, clip.lo, "lo", AF_FLOAT, 1),
    FIELD(AK_CLIP, clip.hi, "hi", AF_FLOAT, 1),
    FIELD(AK_LEAKY, leaky.alpha, "alpha", AF_FLOAT, 1),
    FIELD(AK_AXIS, axis.axis, "axis", AF_INT, 1),
    FIELD(AK_ADAPTIVE, adaptive.out, "out", AF_INT, 2),
    FIELD(AK_DROPOUT, dropout.p, "p", AF_FLOAT, 1),
    FIELD(AK_AFFINE, affine.scale, "scale", AF_FLOAT, 1),
    FIELD(AK_AFFINE, affine.shift, "shift", AF_FLOAT, 1),
    FIELD(AK_GELU, gelu.tanh, "tanh", AF_BOOL, 1),
    FIELD(AK_NORM, norm.axis, "axis", AF_INT, 1),
    FIELD(AK_NORM, norm.eps, "eps", AF_FLOAT, 1),
    FIELD(AK_PERM, perm.perm, "perm", AF_INT, IR_MAX_RANK),
    FIELD(AK_SLICE, slice.axis, "axis", AF_INT, 1),
    FIELD(AK_SLICE, slice.start, "start", AF_INT, 1),
    FIELD(AK_SLICE, slice.end, "end", AF_INT, 1),
    FIELD(AK_PAD, pad.pad, "pad", AF_INT, 4),
    FIELD(AK_PAD, pad.value, "value", AF_FLOAT, 1),
    FIELD(AK_GROUPS, groups.groups, "groups", AF_INT, 1),
    OPTIONAL(AK_DROPOUT, dropout.salt, "salt", AF_INT),
    FIELD(AK_ACTGRAD, actgrad.act, "act", AF_ACT, 1),
    FIELD(AK_ACTGRAD, actgrad.a, "a", AF_FLOAT, 1),
    FIELD(AK_ACTGRAD, actgrad.b, "b", AF_FLOAT, 1),
    FIELD(AK_RUNNING, running.which, "which", AF_INT, 1),
    FIELD(AK_RUNNING, running.momentum, "momentum", AF_FLOAT, 1),
    FIELD(AK_OPTIM, optim.weight_decay, "weight_decay", AF_FLOAT, 1),
    FIELD(AK_OPTIM, optim.momentum, "momentum", AF_FLOAT, 1),
    FIELD(AK_OPTIM, optim.dampening, "dampening", AF_FLOAT, 1),
    FIELD(AK_OPTIM, optim.beta1, "beta1", AF_FLOAT, 1),
    FIELD(AK_OPTIM, optim.beta2, "beta2", AF_FLOAT, 1),
    FIELD(AK_OPTIM, optim.eps, "eps", AF_FLOAT, 1),
    FIELD(AK_OPTIM, optim.nesterov, "nesterov", AF_BOOL, 1),
    FIELD(AK_OPTIM, optim.decoupled, "decoupled", AF_BOOL, 1),
};

const int32_t ir_nattr_fields = (int32_t)(sizeof ir_attr_fields / sizeof ir_attr_fields[0]);

const char *ir_act_name(Op act)
{
    if (act == OP_NO_ACT)
        return "none";
    if (!ir_op_is_act(act))
        ICE("bad activation %d", (int)act);
    return ir_ops[act].name;
}

/* ---- facts of a node ------------------------------------------------------ */

Epilogue *ir_epilogue(const Node *n)
{
    Attrs *a = (Attrs *)&n->attrs;
    return n->op == OP_CONV2D ? &a->conv.epi : n->op == OP_DENSE ? &a->dense.epi : NULL;
}

/* The bias is input 2 when present; a residual is always the last input. */
int32_t ir_bias_input(const Node *n)
{
    const Epilogue *e = ir_epilogue(n);
    return e && n->ninputs - 2 - (e->residual ? 1 : 0) == 1 ? 2 : -1;
}

int32_t ir_residual_input(const Node *n)
{
    const Epilogue *e = ir_epilogue(n);
    return e && e->residual ? n->ninputs - 1 : -1;
}

int32_t ir_node_axis(const Node *n)
{
    int32_t axis = n->attrs.axis.axis;
    return axis < 0 ? axis + n->type.rank : axis;
}

int32_t ir_inlined_input(const Node *n)
{
    bool conv = n->op == OP_CONV2D && (n->attrs.conv.fused_in || n->attrs.conv.scaled_in);
    if (n->ninputs < 1 || !(conv || (n->op == OP_MAXPOOL && n->attrs.pool.fused_in)))
        return -1;
    return n->inputs[0];
}

int32_t ir_channel_scale_operand(const Graph *g, const Node *m)
{
    if (m->op != OP_MUL || m->ninputs != 2 || m->type.rank != 4 ||
        m->type.dims[2] * m->type.dims[3] < 2)
        return -1;
    for (int32_t k = 0; k < 2; k++) {
        const TensorType *s = &g->nodes[m->inputs[k]].type, *x = &g->nodes[m->inputs[1 - k]].type;
        if (s->rank == 4 && s->dims[0] == m->type.dims[0] && s->dims[1] == m->type.dims[1] &&
            s->dims[2] == 1 && s->dims[3] == 1 && ir_type_eq(x, &m->type))
            return k;
    }
    return -1;
}

/* The node's own FLOPs, without an input its kernel computes (ir_node_flops). */
static int64_t own_flops(const Graph *g, const Node *n)
{
    int64_t out = ir_numel(&n->type);
    const TensorType *x = n->ninputs ? &g->nodes[n->inputs[0]].type : NULL;
    switch (n->op) {
    case OP_CONV2D: {
        const ConvAttrs *a = &n->attrs.conv;
        int64_t cin = x->dims[1] / (a->groups > 0 ? a->groups : 1);
        return ir_mul_sat(ir_mul_sat(2 * out, cin), (int64_t)a->kernel[0] * a->kernel[1]);
    }
    case OP_DENSE: {
        int32_t axis = n->attrs.dense.axis < 0 ? n->attrs.dense.axis + x->rank : n->attrs.dense.axis;
        return ir_mul_sat(2 * out, x->dims[axis >= 0 && axis < x->rank ? axis : x->rank - 1]);
    }
    case OP_CONV2D_GRAD_INPUT:  /* dy, weight, x: the forward's multiply-adds */
    case OP_CONV2D_GRAD_WEIGHT: { /* dy, x, weight */
        const TensorType *w = &g->nodes[n->inputs[n->op == OP_CONV2D_GRAD_INPUT ? 1 : 2]].type;
        return ir_mul_sat(ir_mul_sat(2 * ir_numel(x), w->dims[1]), w->dims[2] * w->dims[3]);
    }
    case OP_DENSE_GRAD_INPUT:    /* dy[N, O], weight[O, I] -> [N, I] */
    case OP_DENSE_GRAD_WEIGHT: { /* dy[N, O], x[N, I] -> [O, I] */
        int64_t o = x->dims[x->rank - 1], rows = o ? ir_numel(x) / o : 0;
        return ir_mul_sat(2 * out, n->op == OP_DENSE_GRAD_INPUT ? o : rows);
    }
    case OP_LAYERNORM:
        return ir_mul_sat(out, 8); /* mean, variance, normalize, scale and shift */
    case OP_CONCAT:
    case OP_FLATTEN:
    case OP_TRANSPOSE:
    case OP_SLICE:
    case OP_PAD:
    case OP_CHANNEL_SHUFFLE:
    case OP_REORDER:
    case OP_DROPOUT:
    case OP_RESHAPE_AS:
    case OP_SLICE_GRAD:
        return 0;
    default:
        return out;
    }
}

int64_t ir_node_flops(const Graph *g, const Node *n)
{
    /* a kernel that computes its input 0 (a 1×1 conv, a product, a conv before a maxpool)
     * does that input's work too */
    int64_t own = own_flops(g, n);
    int32_t in = ir_inlined_input(n);
    return in >= 0 ? ir_add_sat(own, ir_node_flops(g, &g->nodes[in])) : own;
}

static void append_part(char *buf, size_t size, const char *part)
{
    size_t len = strlen(buf);
    snprintf(buf + len, size - len, "%s%s", len ? "+" : "", part);
}

const char *ir_op_label(const Node *n)
{
    if (n->op == OP_MAXPOOL && n->attrs.pool.fused_in)
        return "maxpool.conv";
    if (n->op != OP_CONV2D)
        return ir_ops[n->op].name;
    const ConvAttrs *a = &n->attrs.conv;
    return a->winograd == 2 ? "conv2d.winograd2"
           : a->winograd    ? "conv2d.winograd"
           : a->fused_in    ? "conv2d.pw_dw"
           : a->scaled_in   ? "conv2d.scaled"
                            : ir_ops[n->op].name;
}

char *ir_node_label(const Node *n, char *buf, size_t size)
{
    buf[0] = 0;
    append_part(buf, size, ir_op_label(n));
    const Epilogue *e = ir_epilogue(n);
    if (!e)
        return buf;
    if (ir_bias_input(n) >= 0)
        append_part(buf, size, "bias");
    if (e->act != OP_NO_ACT)
        append_part(buf, size, ir_act_name(e->act));
    if (e->residual)
        append_part(buf, size, "add");
    if (e->post != OP_NO_ACT)
        append_part(buf, size, ir_act_name(e->post));
    return buf;
}

/* ---- activations ----------------------------------------------------------- */

/* One formula per activation. Comparisons are written so that NaN passes
 * through, as in PyTorch. */
static double relu_of(double x, float a, float b)
{
    return x < 0.0 ? 0.0 : x;
}

static double clip_of(double x, float a, float b)
{
    return x < (double)a ? (double)a : x > (double)b ? (double)b : x;
}

static double sigmoid_of(double x, float a, float b)
{
    return 1.0 / (1.0 + exp(-x));
}

static double tanh_of(double x, float a, float b)
{
    return tanh(x);
}

static double silu_of(double x, float a, float b)
{
    return x / (1.0 + exp(-x));
}

static double leaky_relu_of(double x, float a, float b)
{
    return x < 0.0 ? x * (double)a : x;
}

/* As PyTorch: relu6(x + 3) / 6, so hardswish(-inf) = -inf * 0 = NaN. */
static double hardsigmoid_of(double x, float a, float b)
{
    return clip_of(x + 3.0, 0.0f, 6.0f) / 6.0;
}

static double hardswish_of(double x, float a, float b)
{
    return x * clip_of(x + 3.0, 0.0f, 6.0f) / 6.0;
}

/* With scale 1 or shift 0 (what the language writes; x / 6 is x * (1/6)),
 * one rounding to f32 of an exact double, as x + 3 or x * 6 in f32. */
static double affine_of(double x, float a, float b)
{
    return x * (double)a + (double)b;
}

/* PyTorch's gelu: x/2 (1 + erf(x / sqrt 2)), or with a != 0 its tanh form. */
static double gelu_of(double x, float a, float b)
{
    if (a == 0.0f)
        return x * 0.5 * (1.0 + erf(x * 0.70710678118654752440));
    double inner = 0.79788456080286535588 * (x + 0.044715 * x * x * x); /* sqrt(2/pi) */
    return 0.5 * x * (1.0 + tanh(inner));
}

static double erf_of(double x, float a, float b)
{
    return erf(x);
}

static double sqrt_of(double x, float a, float b)
{
    return sqrt(x);
}

static double exp_of(double x, float a, float b)
{
    return exp(x);
}

static double abs_of(double x, float a, float b)
{
    return fabs(x);
}

static double (*const act_formulas[OP_COUNT])(double x, float a, float b) = {
    [OP_RELU] = relu_of, [OP_CLIP] = clip_of, [OP_SIGMOID] = sigmoid_of,
    [OP_TANH] = tanh_of, [OP_SILU] = silu_of, [OP_LEAKY_RELU] = leaky_relu_of,
    [OP_HARDSWISH] = hardswish_of, [OP_HARDSIGMOID] = hardsigmoid_of, [OP_AFFINE] = affine_of,
    [OP_GELU] = gelu_of, [OP_ERF] = erf_of, [OP_SQRT] = sqrt_of, [OP_EXP] = exp_of,
    [OP_ABS] = abs_of,
};

bool ir_act_has_formula(Op act)
{
    return ir_op_is_act(act) && act_formulas[act];
}

double ir_act_apply(Op act, double x, float a, float b)
{
    if (act == OP_NO_ACT)
        return x;
    if (!ir_act_has_formula(act))
        ICE("no formula for activation %d", (int)act);
    return act_formulas[act](x, a, b);
}

void ir_act_params(const Node *n, float *a, float *b)
{
    *a = *b = 0.0f;
    if (n->op == OP_CLIP) {
        *a = n->attrs.clip.lo;
        *b = n->attrs.clip.hi;
    } else if (n->op == OP_LEAKY_RELU) {
        *a = n->attrs.leaky.alpha;
    } else if (n->op == OP_AFFINE) {
        *a = n->attrs.affine.scale;
        *b = n->attrs.affine.shift;
    } else if (n->op == OP_GELU) {
        *a = n->attrs.gelu.tanh ? 1.0f : 0.0f;
    }
}

static void window_default(int32_t kernel[2], int32_t stride[2], int32_t dilation[2])
{
    for (int i = 0; i < 2; i++) {
        kernel[i] = 1;
        stride[i] = 1;
        dilation[i] = 1;
    }
}

void ir_attrs_default(Op op, Attrs *a)
{
    memset(a, 0, sizeof *a);
    if (op < 0 || op >= OP_COUNT)
        ICE("bad op %d", (int)op);
    switch (ir_ops[op].attrs) {
    case AK_NONE: break;
    case AK_CONV:
        window_default(a->conv.kernel, a->conv.stride, a->conv.dilation);
        a->conv.groups = 1;
        break;
    case AK_POOL:
        window_default(a->pool.kernel, a->pool.stride, a->pool.dilation);
        a->pool.count_include_pad = true;
        break;
    case AK_BN: a->bn.eps = 1e-5f; break;
    case AK_CLIP:
        a->clip.lo = 0.0f;
        a->clip.hi = 6.0f;
        break;
    case AK_LEAKY: a->leaky.alpha = 0.01f; break;
    case AK_AXIS: a->axis.axis = op == OP_SOFTMAX ? -1 : 1; break;
    case AK_ADAPTIVE:
        a->adaptive.out[0] = 1;
        a->adaptive.out[1] = 1;
        break;
    case AK_DROPOUT: a->dropout.p = 0.5f; break;
    case AK_DENSE: a->dense.axis = -1; break;
    case AK_AFFINE: a->affine.scale = 1.0f; break;
    case AK_GELU: break;
    case AK_NORM:
        a->norm.axis = -1;
        a->norm.eps = 1e-5f;
        break;
    case AK_PERM:
        for (int32_t i = 0; i < IR_MAX_RANK; i++)
            a->perm.perm[i] = i;
        break;
    case AK_SLICE: a->slice.axis = 1; break;
    case AK_PAD: break;
    case AK_GROUPS: a->groups.groups = 1; break;
    case AK_ACTGRAD: break;
    case AK_RUNNING: a->running.momentum = 0.1f; break;
    case AK_OPTIM:
        a->optim.beta1 = 0.9f;
        a->optim.beta2 = 0.999f;
        a->optim.eps = 1e-8f;
        break;
    }
}

/* ---- derivatives, for act_grad: PyTorch's backward formulas, at the points
 * where a derivative is not defined too (relu'(0) = 0, clip' = 0 at the bounds,
 * hardswish' = x/3 + 1/2 on [-3, 3]). */

static double sigmoid_d(double x)
{
    double s = 1.0 / (1.0 + exp(-x));
    return s * (1.0 - s);
}

static double gelu_d(double x, float a)
{
    if (a == 0.0f)
        return 0.5 * (1.0 + erf(x * 0.70710678118654752440)) +
               x * exp(-0.5 * x * x) * 0.39894228040143267794; /* 1/sqrt(2 pi) */
    double k = 0.79788456080286535588, u = k * (x + 0.044715 * x * x * x), t = tanh(u);
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

double ir_act_deriv(Op act, double x, float a, float b)
{
    double s;
    switch (act) {
    case OP_NO_ACT: return 1.0;
    case OP_RELU: return x > 0.0 ? 1.0 : 0.0;
    case OP_CLIP: return x > (double)a && x < (double)b ? 1.0 : 0.0;
    case OP_SIGMOID: return sigmoid_d(x);
    case OP_TANH: s = tanh(x); return 1.0 - s * s;
    case OP_SILU: s = 1.0 / (1.0 + exp(-x)); return s * (1.0 + x * (1.0 - s));
    case OP_LEAKY_RELU: return x > 0.0 ? 1.0 : (double)a;
    case OP_HARDSWISH: return x < -3.0 ? 0.0 : x <= 3.0 ? x / 3.0 + 0.5 : 1.0;
    case OP_HARDSIGMOID: return x > -3.0 && x < 3.0 ? 1.0 / 6.0 : 0.0;
    case OP_AFFINE: return (double)a;
    case OP_GELU: return gelu_d(x, a);
    case OP_ERF: return 1.12837916709551257390 * exp(-x * x); /* 2/sqrt(pi) */
    case OP_SQRT: return 0.5 / sqrt(x);
    case OP_EXP: return exp(x);
    case OP_ABS: return x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : 0.0;
    default: break;
    }
    ICE("no derivative for activation %d", (int)act);
}
