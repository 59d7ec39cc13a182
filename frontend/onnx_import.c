/* onnx_import.c: an ONNX graph (onnx.h) as a cnnc graph. Nodes are mapped in
 * file order, each onto one IR node or a few; values that depend only on
 * initializers and constants (the Shape/Gather/Concat/Reshape arithmetic
 * exporters write around reshapes) are computed here, at import, and never
 * reach the graph. Patterns that exporters spell out in primitive ops are
 * recognized: Mul(x, Sigmoid(x)) is silu, MatMul + Add a dense with bias,
 * ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div(/Mul/Add) a layernorm, the
 * Div/Erf/Add/Mul/Mul of an exact gelu, and Reshape/Transpose/Reshape a
 * channel shuffle. IR nodes take the ONNX node's name (or its first output's),
 * parameters their initializer's; graph outputs keep their ONNX names.
 *
 * Before anything is built, every node is checked against the table of
 * supported op types; the unsupported ones are reported in one message. */
#include "frontend.h"
#include "onnx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MIN_OPSET 11
#define MAX_OPSET 21

/* A value known at import: f32 or int64 data of a shape. */
typedef struct Const {
    int32_t rank;
    int64_t dims[ONNX_MAX_RANK];
    int64_t count;
    float *f;   /* or */
    int64_t *i;
} Const;

typedef enum {
    VAL_NONE,     /* not defined (yet) */
    VAL_NODE,     /* an IR node's value */
    VAL_CONST,    /* known at import */
    VAL_SPLIT5,   /* x viewed as [N, g, C/g, H, W]: the start of a channel shuffle */
    VAL_SPLIT5T,  /* ... with dims 1 and 2 swapped */
    VAL_DROPPED,  /* node without its dim `groups` of size 1 (Gather of one index, Squeeze) */
} ValKind;

typedef struct Val {
    const char *name;
    int32_t producer; /* the ONNX node that computes it, or -1 */
    int32_t uses;     /* node inputs and graph outputs that read it */
    int32_t users;    /* offset of its reading nodes in Imp.users */
    int32_t readers;  /* how many there are (uses less graph outputs) */
    ValKind kind;
    int32_t node;   /* VAL_NODE; VAL_SPLIT5*: the 4-d value */
    int32_t groups; /* VAL_SPLIT5* */
    int32_t param;  /* the PARAM a constant became, or -1 */
    Const *c;
} Val;

typedef struct Imp {
    const OnnxModel *m;
    Diag *d;
    Graph *g;
    Arena *tmp;
    FeLimits lim;
    int64_t batch;
    int64_t weight_bytes;
    /* values by name: open addressing over vals */
    Val *vals;
    int32_t nvals, capvals;
    int32_t *slots;
    int32_t nslots;
    int32_t *users; /* per value, the nodes reading it (CSR by Val.users, Val.uses) */
    /* node names taken in the graph */
    const char **names;
    int32_t nnames;
    /* per ONNX value name: how many node inputs and graph outputs use it */
    bool *skip; /* per ONNX node: consumed by a pattern */
    const OnnxNode *n; /* the node being imported */
    int32_t ni;
    SrcLoc loc;
    bool failed;
} Imp;

/* ---- messages ------------------------------------------------------------------- */

static const char *node_label(const OnnxNode *n)
{
    return n->name[0] ? n->name : n->noutputs ? n->outputs[0] : "?";
}

static bool fail(Imp *I, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(Imp *I, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (I->n)
        ir_error(I->d, I->loc, "node '%s' (%s): %s", node_label(I->n), I->n->op_type, msg);
    else
        ir_error(I->d, I->loc, "%s", msg);
    I->failed = true;
    return false;
}

static const char *dims_str(Imp *I, int32_t rank, const int64_t *dims)
{
    char buf[256];
    size_t k = 0;
    buf[k++] = '[';
    for (int32_t i = 0; i < rank && k < sizeof buf - 24; i++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%lld", i ? "," : "", (long long)dims[i]);
    snprintf(buf + k, sizeof buf - k, "]");
    return ir_strdup(I->tmp, buf);
}

static const char *type_str(Imp *I, int32_t node)
{
    char buf[160];
    return ir_strdup(I->tmp, ir_type_str(&I->g->nodes[node].type, buf, sizeof buf));
}

/* ---- the value table -------------------------------------------------------------- */

static int32_t find_slot(const Imp *I, const char *name)
{
    uint32_t mask = (uint32_t)I->nslots - 1, h = (uint32_t)ir_str_hash(name) & mask;
    while (I->slots[h] >= 0 && strcmp(I->vals[I->slots[h]].name, name) != 0)
        h = (h + 1) & mask;
    return (int32_t)h;
}

static Val *lookup(Imp *I, const char *name)
{
    int32_t s = find_slot(I, name);
    return I->slots[s] >= 0 ? &I->vals[I->slots[s]] : NULL;
}

/* The entry of `name`, created empty when new (names are few: the table was
 * sized for every value of the file). */
static Val *define(Imp *I, const char *name)
{
    int32_t s = find_slot(I, name);
    if (I->slots[s] >= 0)
        return &I->vals[I->slots[s]];
    if (I->nvals == I->capvals)
        ICE("value table full");
    Val *v = &I->vals[I->nvals];
    *v = (Val){.name = name, .producer = -1, .kind = VAL_NONE, .node = -1, .param = -1};
    I->slots[s] = I->nvals++;
    return v;
}

/* Output `out` of the current node now holds what `src` holds. */
static void bind(Imp *I, int32_t out, ValKind kind, int32_t node, int32_t groups, Const *c)
{
    Val *v = define(I, I->n->outputs[out]);
    v->kind = kind;
    v->node = node;
    v->groups = groups;
    v->c = c;
    v->param = -1;
    if (kind == VAL_NODE && node < 0) {
        v->kind = VAL_NONE;
        I->failed = true;
    }
}

static bool taken(const Imp *I, const char *name)
{
    uint32_t mask = (uint32_t)I->nnames - 1, h = (uint32_t)ir_str_hash(name) & mask;
    for (; I->names[h]; h = (h + 1) & mask)
        if (strcmp(I->names[h], name) == 0)
            return true;
    return false;
}

static void take(Imp *I, const char *name)
{
    uint32_t mask = (uint32_t)I->nnames - 1, h = (uint32_t)ir_str_hash(name) & mask;
    while (I->names[h])
        h = (h + 1) & mask;
    I->names[h] = name;
}

/* `base`, or `base.1`, `base.2`, ... : unique among the graph's names. */
static const char *unique_name(Imp *I, const char *base)
{
    const char *name = ir_strdup(I->g->arena, base[0] ? base : "node");
    for (int k = 1; taken(I, name); k++)
        name = ir_strfmt(I->g->arena, "%s.%d", base, k);
    take(I, name);
    return name;
}

/* ---- constants ------------------------------------------------------------------- */

static Const *const_new(Imp *I, int32_t rank, const int64_t *dims, bool is_int)
{
    Const *c = ir_alloc(I->tmp, sizeof *c);
    c->rank = rank;
    c->count = 1;
    for (int32_t k = 0; k < rank; k++) {
        c->dims[k] = dims[k];
        c->count = ir_mul_sat(c->count, dims[k]);
    }
    if (c->count > IR_MAX_NUMEL)
        ICE("constant of %lld elements", (long long)c->count);
    size_t n = (size_t)(c->count ? c->count : 1);
    if (is_int)
        c->i = ir_alloc(I->tmp, n * sizeof *c->i);
    else
        c->f = ir_alloc(I->tmp, n * sizeof *c->f);
    return c;
}

static double cget(const Const *c, int64_t k)
{
    return c->f ? (double)c->f[k] : (double)c->i[k];
}

static const Const *const_of_tensor(Imp *I, const OnnxTensor *t)
{
    if (!t->f && !t->i) {
        fail(I, "tensor '%s' has a data type cnnc does not read (%d)", t->name, (int)t->dtype);
        return NULL;
    }
    Const *c = ir_alloc(I->tmp, sizeof *c);
    c->rank = t->rank;
    memcpy(c->dims, t->dims, sizeof c->dims);
    c->count = t->count;
    c->f = t->f;
    c->i = t->i;
    return c;
}

static Val *input_val(Imp *I, int32_t k)
{
    if (k >= I->n->ninputs || !I->n->inputs[k][0])
        return NULL;
    Val *v = lookup(I, I->n->inputs[k]);
    if (!v || v->kind == VAL_NONE) {
        fail(I, "input '%s' is not defined before the node", I->n->inputs[k]);
        return NULL;
    }
    return v;
}

/* Input k as a constant, or NULL (with `what` for the error when required). */
static const Const *const_input(Imp *I, int32_t k, const char *what)
{
    Val *v = input_val(I, k);
    if (v && v->kind == VAL_CONST)
        return v->c;
    if (v && what)
        fail(I, "%s ('%s') must be a constant or an initializer", what, I->n->inputs[k]);
    return NULL;
}

/* Input k as an IR value: a node, or a constant made a parameter. */
static int32_t tensor_input(Imp *I, int32_t k);

static bool ints_of(Imp *I, const Const *c, int64_t *out, int32_t max, int32_t *n, const char *what)
{
    *n = 0;
    if (c->count > max)
        return fail(I, "%s has %lld values, more than %d", what, (long long)c->count, (int)max);
    for (int64_t k = 0; k < c->count; k++) {
        double v = cget(c, k);
        if (c->f && (v != floor(v) || fabs(v) > 9e15))
            return fail(I, "%s must hold integers", what);
        out[k] = c->i ? c->i[k] : (int64_t)v;
    }
    *n = (int32_t)c->count;
    return true;
}

/* ---- graph building ------------------------------------------------------------------- */

static bool room_for_node(Imp *I)
{
    if (I->g->nnodes < I->lim.max_nodes)
        return true;
    return fail(I, "the graph has more than %lld nodes (raise the limit with --max-nodes=N)",
                (long long)I->lim.max_nodes);
}

/* Adds an IR node named after the ONNX node (`suffix` for helpers it needs) and
 * infers it; -1 after an error. */
static int32_t add(Imp *I, Op op, const int32_t *in, int32_t n, const Attrs *at, const char *suffix)
{
    for (int32_t k = 0; k < n; k++)
        if (in[k] < 0)
            return -1;
    if (!room_for_node(I))
        return -1;
    const char *base = node_label(I->n);
    if (suffix)
        base = ir_strfmt(I->tmp, "%s.%s", base, suffix);
    int32_t id = ir_add_node(I->g, op, in, n, unique_name(I, base), I->loc);
    if (at)
        I->g->nodes[id].attrs = *at;
    int errors = I->d->nerrors;
    if (!ir_infer_node(I->g, id, I->d) || I->d->nerrors > errors) {
        ir_note(I->d, I->loc, "while importing node '%s' (%s)", node_label(I->n), I->n->op_type);
        I->failed = true;
        return -1;
    }
    return id;
}

/* A PARAM holding `c` (f32), charged against --max-weights. */
static int32_t add_param(Imp *I, const char *name, const Const *c, int32_t rank, const int64_t *dims)
{
    if (!room_for_node(I))
        return -1;
    if (rank > IR_MAX_RANK) {
        fail(I, "'%s' has %d dims, more than %d", name, (int)rank, IR_MAX_RANK);
        return -1;
    }
    if (ir_numel_checked(rank, dims) != c->count) {
        fail(I, "'%s' has %lld values for the shape %s", name, (long long)c->count,
             dims_str(I, rank, dims));
        return -1;
    }
    TensorType t = ir_type_f32(rank, dims);
    int64_t bytes = c->count * (int64_t)sizeof(float);
    if (bytes > I->lim.max_weights - I->weight_bytes) {
        fail(I, "the parameters need more than the %lld-byte limit at '%s' (raise it with "
             "--max-weights=BYTES)", (long long)I->lim.max_weights, name);
        return -1;
    }
    I->weight_bytes += bytes;
    int32_t id = ir_add_param(I->g, unique_name(I, name), t, I->loc);
    float *data = ir_alloc(I->g->arena, (size_t)(c->count ? c->count : 1) * sizeof *data);
    for (int64_t k = 0; k < c->count; k++)
        data[k] = (float)cget(c, k);
    I->g->nodes[id].data = data;
    ir_infer_node(I->g, id, I->d);
    return id;
}

static int32_t param_of(Imp *I, Val *v)
{
    if (v->param < 0)
        v->param = add_param(I, v->name, v->c, v->c->rank, v->c->dims);
    return v->param;
}

static int32_t tensor_input(Imp *I, int32_t k)
{
    Val *v = input_val(I, k);
    if (!v)
        return -1;
    switch (v->kind) {
    case VAL_NODE: return v->node;
    case VAL_CONST:
        if (v->c->i) {
            fail(I, "input '%s' is an integer tensor; cnnc computes f32 only", v->name);
            return -1;
        }
        return param_of(I, v);
    case VAL_DROPPED:
        fail(I, "input '%s' is a tensor with its dim %d dropped, which only an Unsqueeze "
             "restoring that dim may use", v->name, (int)v->groups);
        return -1;
    default:
        fail(I, "input '%s' is a 5-d view that only a channel shuffle may use", v->name);
        return -1;
    }
}

static const TensorType *type_of(Imp *I, int32_t node)
{
    return &I->g->nodes[node].type;
}

static void set_node(Imp *I, int32_t out, int32_t node)
{
    bind(I, out, VAL_NODE, node, 0, NULL);
}

static void set_const(Imp *I, int32_t out, const Const *c)
{
    bind(I, out, VAL_CONST, -1, 0, (Const *)c);
}

/* ---- attributes -------------------------------------------------------------------- */

static int64_t attr_int(const OnnxNode *n, const char *name, int64_t def)
{
    const OnnxAttr *a = onnx_attr(n, name);
    return a && a->type == ONNX_ATTR_INT ? a->i : def;
}

static float attr_float(const OnnxNode *n, const char *name, float def)
{
    const OnnxAttr *a = onnx_attr(n, name);
    return a && a->type == ONNX_ATTR_FLOAT ? a->f : def;
}

static const char *attr_string(const OnnxNode *n, const char *name, const char *def)
{
    const OnnxAttr *a = onnx_attr(n, name);
    return a && a->type == ONNX_ATTR_STRING ? a->s : def;
}

/* An INTS attribute into out[max]; *n = -1 when absent. */
static bool attr_ints(Imp *I, const char *name, int64_t *out, int32_t max, int32_t *n)
{
    const OnnxAttr *a = onnx_attr(I->n, name);
    *n = -1;
    if (!a)
        return true;
    if (a->type != ONNX_ATTR_INTS)
        return fail(I, "attribute '%s' must be a list of ints", name);
    if (a->n > max)
        return fail(I, "attribute '%s' has %d values, more than %d", name, (int)a->n, (int)max);
    for (int32_t k = 0; k < a->n; k++)
        out[k] = a->ints[k];
    *n = a->n;
    return true;
}

static bool fits_int32(Imp *I, int64_t v, const char *what)
{
    if (v >= INT32_MIN && v <= INT32_MAX)
        return true;
    return fail(I, "%s %lld is out of range", what, (long long)v);
}

/* ---- conv and pooling windows ------------------------------------------------------ */

typedef struct Window {
    int32_t kernel[2], stride[2], dilation[2], pad[4];
} Window;

/* kernel_shape (or `kernel` from the weight), strides, dilations, pads and
 * auto_pad of a 2-d window over input x. */
static bool window(Imp *I, int32_t x, const int64_t *kernel, Window *w)
{
    int64_t v[8];
    int32_t n;
    const TensorType *xt = type_of(I, x);
    if (xt->rank != 4)
        return fail(I, "only 2-d windows over [N, C, H, W] are supported; the input is %s",
                    type_str(I, x));
    for (int i = 0; i < 2; i++) {
        w->kernel[i] = (int32_t)kernel[i];
        w->stride[i] = w->dilation[i] = 1;
    }
    memset(w->pad, 0, sizeof w->pad);
    if (!attr_ints(I, "strides", v, 8, &n) || (n >= 0 && n != 2))
        return n < 0 || n == 2 ? false : fail(I, "strides must have 2 values");
    for (int32_t i = 0; i < n; i++)
        if (v[i] < 1 || !fits_int32(I, v[i], "stride"))
            return v[i] < 1 ? fail(I, "strides must be positive") : false;
        else
            w->stride[i] = (int32_t)v[i];
    if (!attr_ints(I, "dilations", v, 8, &n) || (n >= 0 && n != 2))
        return n < 0 || n == 2 ? false : fail(I, "dilations must have 2 values");
    for (int32_t i = 0; i < n; i++)
        if (v[i] < 1 || !fits_int32(I, v[i], "dilation"))
            return v[i] < 1 ? fail(I, "dilations must be positive") : false;
        else
            w->dilation[i] = (int32_t)v[i];
    const char *autopad = attr_string(I->n, "auto_pad", "NOTSET");
    if (!strcmp(autopad, "NOTSET")) {
        if (!attr_ints(I, "pads", v, 8, &n) || (n >= 0 && n != 4))
            return n < 0 || n == 4 ? false : fail(I, "pads must have 4 values");
        /* ONNX: [h_begin, w_begin, h_end, w_end], as cnnc's [top, left, bottom, right] */
        for (int32_t i = 0; i < n; i++)
            if (v[i] < 0 || !fits_int32(I, v[i], "pad"))
                return v[i] < 0 ? fail(I, "negative pads are not supported") : false;
            else
                w->pad[i] = (int32_t)v[i];
        return true;
    }
    if (!strcmp(autopad, "VALID"))
        return true;
    bool upper = !strcmp(autopad, "SAME_UPPER");
    if (!upper && strcmp(autopad, "SAME_LOWER"))
        return fail(I, "auto_pad \"%s\" is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER", autopad);
    for (int i = 0; i < 2; i++) {
        int64_t in = xt->dims[2 + i], out = (in + w->stride[i] - 1) / w->stride[i];
        int64_t total = (out - 1) * w->stride[i] + (int64_t)(w->kernel[i] - 1) * w->dilation[i] + 1 - in;
        if (total < 0)
            total = 0;
        if (!fits_int32(I, total, "padding"))
            return false;
        int32_t small = (int32_t)(total / 2), big = (int32_t)(total - total / 2);
        w->pad[i] = upper ? small : big;
        w->pad[i + 2] = upper ? big : small;
    }
    return true;
}

/* ---- op handlers ----------------------------------------------------------------------- */

typedef bool (*Handler)(Imp *I);

static bool conv(Imp *I)
{
    int32_t x = tensor_input(I, 0);
    const Const *w = const_input(I, 1, "the weight");
    if (x < 0 || !w)
        return false;
    if (w->rank != 4)
        return fail(I, "only 2-d convolutions are supported (the weight is %s)",
                    dims_str(I, w->rank, w->dims));
    Attrs at;
    ir_attrs_default(OP_CONV2D, &at);
    Window win;
    if (!window(I, x, w->dims + 2, &win))
        return false;
    int64_t ks[8];
    int32_t nk;
    if (!attr_ints(I, "kernel_shape", ks, 8, &nk))
        return false;
    if (nk >= 0 && (nk != 2 || ks[0] != w->dims[2] || ks[1] != w->dims[3]))
        return fail(I, "kernel_shape %s does not match the weight %s", dims_str(I, nk, ks),
                    dims_str(I, 4, w->dims));
    memcpy(at.conv.kernel, win.kernel, sizeof win.kernel);
    memcpy(at.conv.stride, win.stride, sizeof win.stride);
    memcpy(at.conv.dilation, win.dilation, sizeof win.dilation);
    memcpy(at.conv.pad, win.pad, sizeof win.pad);
    int64_t group = attr_int(I->n, "group", 1);
    if (group < 1 || !fits_int32(I, group, "group"))
        return group < 1 ? fail(I, "group must be positive") : false;
    at.conv.groups = (int32_t)group;
    int32_t in[3] = {x, tensor_input(I, 1), -1};
    int32_t n = 2;
    if (I->n->ninputs > 2 && I->n->inputs[2][0]) {
        if (!const_input(I, 2, "the bias"))
            return false;
        in[n++] = tensor_input(I, 2);
    }
    set_node(I, 0, add(I, OP_CONV2D, in, n, &at, NULL));
    return true;
}

static bool batchnorm(Imp *I)
{
    if (attr_int(I->n, "training_mode", 0))
        return fail(I, "training_mode=1 is not supported (cnnc runs inference)");
    if (I->n->noutputs > 1)
        return fail(I, "the running mean and variance outputs (training) are not supported");
    int32_t in[5];
    in[0] = tensor_input(I, 0);
    for (int32_t k = 1; k < 5; k++) {
        if (!const_input(I, k, k == 1 ? "scale" : k == 2 ? "B" : k == 3 ? "mean" : "var"))
            return false;
        in[k] = tensor_input(I, k);
    }
    Attrs at;
    ir_attrs_default(OP_BATCHNORM, &at);
    at.bn.eps = attr_float(I->n, "epsilon", 1e-5f);
    set_node(I, 0, add(I, OP_BATCHNORM, in, 5, &at, NULL));
    return true;
}

static bool unary_op(Imp *I, Op op, const Attrs *at)
{
    int32_t x = tensor_input(I, 0);
    if (x < 0)
        return false;
    set_node(I, 0, add(I, op, &x, 1, at, NULL));
    return true;
}

static bool relu(Imp *I) { return unary_op(I, OP_RELU, NULL); }
static bool sigmoid(Imp *I) { return unary_op(I, OP_SIGMOID, NULL); }
static bool tanh_(Imp *I) { return unary_op(I, OP_TANH, NULL); }
static bool hardswish(Imp *I) { return unary_op(I, OP_HARDSWISH, NULL); }
static bool erf_(Imp *I) ;
static bool sqrt_(Imp *I) { return unary_op(I, OP_SQRT, NULL); }
static bool exp_(Imp *I) { return unary_op(I, OP_EXP, NULL); }
static bool abs_(Imp *I) { return unary_op(I, OP_ABS, NULL); }

static bool neg(Imp *I)
{
    Attrs at;
    ir_attrs_default(OP_AFFINE, &at);
    at.affine.scale = -1.0f;
    return unary_op(I, OP_AFFINE, &at);
}

static bool leaky_relu(Imp *I)
{
    Attrs at;
    ir_attrs_default(OP_LEAKY_RELU, &at);
    at.leaky.alpha = attr_float(I->n, "alpha", 0.01f);
    return unary_op(I, OP_LEAKY_RELU, &at);
}

/* alpha x + beta clipped to [0, 1]: PyTorch's hardsigmoid is alpha 1/6, beta 1/2. */
static bool hardsigmoid(Imp *I)
{
    float alpha = attr_float(I->n, "alpha", 0.2f), beta = attr_float(I->n, "beta", 0.5f);
    if (fabsf(alpha - 1.0f / 6.0f) < 1e-7f && beta == 0.5f)
        return unary_op(I, OP_HARDSIGMOID, NULL);
    int32_t x = tensor_input(I, 0);
    Attrs at;
    ir_attrs_default(OP_AFFINE, &at);
    at.affine.scale = alpha;
    at.affine.shift = beta;
    int32_t y = add(I, OP_AFFINE, &x, 1, &at, "affine");
    ir_attrs_default(OP_CLIP, &at);
    at.clip.lo = 0.0f;
    at.clip.hi = 1.0f;
    set_node(I, 0, add(I, OP_CLIP, &y, 1, &at, NULL));
    return true;
}

static bool gelu(Imp *I)
{
    Attrs at;
    ir_attrs_default(OP_GELU, &at);
    const char *approx = attr_string(I->n, "approximate", "none");
    if (strcmp(approx, "none") && strcmp(approx, "tanh"))
        return fail(I, "approximate \"%s\" is not \"none\" or \"tanh\"", approx);
    at.gelu.tanh = approx[0] == 't';
    return unary_op(I, OP_GELU, &at);
}

/* Clip: bounds from attributes (opset < 11) or optional constant inputs. */
static bool clip(Imp *I)
{
    Attrs at;
    ir_attrs_default(OP_CLIP, &at);
    at.clip.lo = -INFINITY;
    at.clip.hi = INFINITY;
    for (int32_t k = 1; k < 3; k++) {
        if (k >= I->n->ninputs || !I->n->inputs[k][0])
            continue;
        const Const *c = const_input(I, k, k == 1 ? "min" : "max");
        if (!c)
            return false;
        if (c->count != 1)
            return fail(I, "%s must be a scalar", k == 1 ? "min" : "max");
        *(k == 1 ? &at.clip.lo : &at.clip.hi) = (float)cget(c, 0);
    }
    if (!(at.clip.lo <= at.clip.hi))
        return fail(I, "min %g is above max %g", (double)at.clip.lo, (double)at.clip.hi);
    return unary_op(I, OP_CLIP, &at);
}

static bool passthrough(Imp *I)
{
    Val *v = input_val(I, 0);
    if (!v)
        return false;
    if (I->n->noutputs > 1 && I->n->outputs[1][0])
        return fail(I, "the mask output is not supported");
    int32_t param = v->param;
    bind(I, 0, v->kind, v->node, v->groups, v->c);
    if (v->kind == VAL_CONST) /* the same constant: one parameter for both names */
        define(I, I->n->outputs[0])->param = param;
    return true;
}

static bool dropout(Imp *I)
{
    if (I->n->ninputs > 2 && I->n->inputs[2][0]) {
        const Const *t = const_input(I, 2, "training_mode");
        if (!t || cget(t, 0) != 0.0)
            return t ? fail(I, "training_mode must be false") : false;
    }
    return passthrough(I);
}

/* ---- constants and shapes ------------------------------------------------------------- */

static bool constant(Imp *I)
{
    const OnnxNode *n = I->n;
    if (n->nattrs != 1)
        return fail(I, "needs exactly one value attribute");
    const OnnxAttr *a = &n->attrs[0];
    Const *c;
    int64_t one = 1;
    if (!strcmp(a->name, "value") && a->type == ONNX_ATTR_TENSOR) {
        const Const *t = const_of_tensor(I, a->t);
        if (!t)
            return false;
        set_const(I, 0, t);
        return true;
    }
    if (!strcmp(a->name, "value_float") && a->type == ONNX_ATTR_FLOAT) {
        c = const_new(I, 0, NULL, false);
        c->f[0] = a->f;
    } else if (!strcmp(a->name, "value_int") && a->type == ONNX_ATTR_INT) {
        c = const_new(I, 0, NULL, true);
        c->i[0] = a->i;
    } else if (!strcmp(a->name, "value_floats") && a->type == ONNX_ATTR_FLOATS) {
        one = a->n;
        c = const_new(I, 1, &one, false);
        memcpy(c->f, a->floats, (size_t)a->n * sizeof *c->f);
    } else if (!strcmp(a->name, "value_ints") && a->type == ONNX_ATTR_INTS) {
        one = a->n;
        c = const_new(I, 1, &one, true);
        memcpy(c->i, a->ints, (size_t)a->n * sizeof *c->i);
    } else {
        return fail(I, "a constant of attribute '%s' is not supported", a->name);
    }
    set_const(I, 0, c);
    return true;
}

static bool shape(Imp *I)
{
    Val *v = input_val(I, 0);
    if (!v)
        return false;
    int32_t rank;
    const int64_t *dims;
    if (v->kind == VAL_CONST) {
        rank = v->c->rank;
        dims = v->c->dims;
    } else if (v->kind == VAL_NODE) {
        rank = type_of(I, v->node)->rank;
        dims = type_of(I, v->node)->dims;
    } else if (v->kind == VAL_DROPPED) {
        const TensorType *t = type_of(I, v->node);
        int64_t *d = ir_alloc(I->tmp, sizeof t->dims);
        rank = 0;
        for (int32_t k = 0; k < t->rank; k++)
            if (k != v->groups)
                d[rank++] = t->dims[k];
        dims = d;
    } else {
        return fail(I, "the shape of a 5-d channel-shuffle view is not supported");
    }
    int64_t start = attr_int(I->n, "start", 0), end = attr_int(I->n, "end", rank);
    start = start < 0 ? start + rank : start;
    end = end < 0 ? end + rank : end;
    start = start < 0 ? 0 : start > rank ? rank : start;
    end = end < start ? start : end > rank ? rank : end;
    int64_t len = end - start;
    Const *c = const_new(I, 1, &len, true);
    for (int64_t k = 0; k < len; k++)
        c->i[k] = dims[start + k];
    set_const(I, 0, c);
    return true;
}

static bool cast(Imp *I)
{
    Val *v = input_val(I, 0);
    if (!v)
        return false;
    int64_t to = attr_int(I->n, "to", ONNX_FLOAT);
    bool to_float = to == ONNX_FLOAT || to == ONNX_DOUBLE || to == ONNX_FLOAT16 || to == ONNX_BFLOAT16;
    bool to_int = to == ONNX_INT64 || to == ONNX_INT32 || to == ONNX_INT16 || to == ONNX_INT8 ||
                  to == ONNX_UINT8 || to == ONNX_BOOL;
    if (v->kind != VAL_CONST) {
        if (to == ONNX_FLOAT)
            return passthrough(I);
        return fail(I, "casting a computed tensor to type %lld is not supported (f32 only)",
                    (long long)to);
    }
    if (!to_float && !to_int)
        return fail(I, "a cast to type %lld is not supported", (long long)to);
    const Const *s = v->c;
    Const *c = const_new(I, s->rank, s->dims, to_int);
    for (int64_t k = 0; k < s->count; k++) {
        double x = cget(s, k);
        if (to == ONNX_BOOL)
            c->i[k] = x != 0.0;
        else if (to_int)
            c->i[k] = isfinite(x) && fabs(x) < 9e18 ? (int64_t)x : 0;
        else
            c->f[k] = (float)x;
    }
    set_const(I, 0, c);
    return true;
}

/* Axes from the `axes` attribute (older opsets) or input `k` (newer). */
static bool axes_of(Imp *I, int32_t k, int64_t *axes, int32_t *n)
{
    if (!attr_ints(I, "axes", axes, ONNX_MAX_RANK, n))
        return false;
    if (*n >= 0)
        return true;
    if (k < I->n->ninputs && I->n->inputs[k][0]) {
        const Const *c = const_input(I, k, "axes");
        return c && ints_of(I, c, axes, ONNX_MAX_RANK, n, "axes");
    }
    return true;
}

static bool norm_axis(Imp *I, int64_t a, int32_t rank, int32_t *out)
{
    int64_t v = a < 0 ? a + rank : a;
    *out = 0;
    if (v < 0 || v >= rank)
        return fail(I, "axis %lld is out of range for rank %d", (long long)a, (int)rank);
    *out = (int32_t)v;
    return true;
}

/* The dims and rank of input 0, whether constant or computed. */
static bool shape_of_input(Imp *I, Val *v, int32_t *rank, int64_t *dims)
{
    *rank = 0;
    if (v->kind == VAL_CONST) {
        *rank = v->c->rank;
        memcpy(dims, v->c->dims, sizeof v->c->dims);
        return true;
    }
    if (v->kind != VAL_NODE)
        return fail(I, "input '%s' is a 5-d view that only a channel shuffle may use", v->name);
    const TensorType *t = type_of(I, v->node);
    *rank = t->rank;
    memcpy(dims, t->dims, (size_t)t->rank * sizeof *dims);
    return true;
}

/* A constant with the same data and other dims (a reshape of a constant). */
static const Const *reshaped(Imp *I, const Const *s, int32_t rank, const int64_t *dims)
{
    Const *c = ir_alloc(I->tmp, sizeof *c);
    *c = *s;
    c->rank = rank;
    memcpy(c->dims, dims, (size_t)rank * sizeof *dims);
    return c;
}

/* A tensor whose dims only changed by 1s dropped or added. */
static bool view_of(Imp *I, Val *v, int32_t rank, const int64_t *dims);

static bool unsqueeze(Imp *I)
{
    Val *v = input_val(I, 0);
    int64_t axes[ONNX_MAX_RANK], dims[ONNX_MAX_RANK], in[ONNX_MAX_RANK];
    int32_t n, r;
    if (!v || !axes_of(I, 1, axes, &n))
        return false;
    if (v->kind == VAL_DROPPED) {
        int32_t rank = type_of(I, v->node)->rank, a;
        if (n != 1)
            return fail(I, "only unsqueezing dim %d back is supported here", (int)v->groups);
        if (!norm_axis(I, axes[0], rank, &a))
            return false;
        if (a != v->groups)
            return fail(I, "only unsqueezing dim %d back is supported here", (int)v->groups);
        set_node(I, 0, v->node);
        return true;
    }
    if (!shape_of_input(I, v, &r, in))
        return false;
    if (n < 0)
        return fail(I, "needs axes");
    int32_t rank = r + n;
    if (rank > ONNX_MAX_RANK)
        return fail(I, "the result would have more than %d dims", ONNX_MAX_RANK);
    bool one[ONNX_MAX_RANK] = {false};
    for (int32_t k = 0; k < n; k++) {
        int32_t a;
        if (!norm_axis(I, axes[k], rank, &a))
            return false;
        if (one[a])
            return fail(I, "axis %lld is given twice", (long long)axes[k]);
        one[a] = true;
    }
    for (int32_t k = 0, j = 0; k < rank; k++)
        dims[k] = one[k] ? 1 : in[j++];
    return view_of(I, v, rank, dims);
}

static bool squeeze(Imp *I)
{
    Val *v = input_val(I, 0);
    int64_t axes[ONNX_MAX_RANK], dims[ONNX_MAX_RANK], in[ONNX_MAX_RANK];
    int32_t n, r, rank = 0;
    if (!v || !axes_of(I, 1, axes, &n) || !shape_of_input(I, v, &r, in))
        return false;
    bool drop[ONNX_MAX_RANK] = {false};
    for (int32_t k = 0; k < (n < 0 ? r : n); k++) {
        int32_t a = k;
        if (n >= 0 && !norm_axis(I, axes[k], r, &a))
            return false;
        if (n >= 0 && in[a] != 1)
            return fail(I, "dim %d is %lld, not 1", (int)a, (long long)in[a]);
        drop[a] = in[a] == 1;
    }
    int32_t ndrop = 0, dropped = -1;
    for (int32_t k = 0; k < r; k++)
        if (!drop[k])
            dims[rank++] = in[k];
        else
            ndrop++, dropped = k;
    if (v->kind == VAL_NODE && ndrop == 1 && dropped >= 1 && !(rank == 2 && dims[0] == in[0])) {
        bind(I, 0, VAL_DROPPED, v->node, dropped, NULL);
        return true;
    }
    return view_of(I, v, rank, dims);
}

/* The dims of a reshape to `shape` (0 copies a dim unless allowzero, -1 is inferred). */
static bool reshape_dims(Imp *I, int32_t r, const int64_t *in, const int64_t *shape, int32_t n,
                         int64_t *out)
{
    int64_t total = ir_numel_checked(r, in), known = 1;
    int32_t infer = -1;
    bool allowzero = attr_int(I->n, "allowzero", 0) != 0;
    for (int32_t k = 0; k < n; k++) {
        out[k] = shape[k];
        if (shape[k] == 0 && !allowzero) {
            if (k >= r)
                return fail(I, "shape %s copies dim %d, which the input lacks", dims_str(I, n, shape),
                            (int)k);
            out[k] = in[k];
        }
        if (out[k] == -1) {
            if (infer >= 0)
                return fail(I, "shape %s has two -1 dims", dims_str(I, n, shape));
            infer = k;
            continue;
        }
        if (out[k] < 0)
            return fail(I, "shape %s has a negative dim", dims_str(I, n, shape));
        known = ir_mul_sat(known, out[k]);
    }
    if (infer >= 0) {
        if (known == 0 || total % known)
            return fail(I, "shape %s does not fit %lld elements", dims_str(I, n, shape),
                        (long long)total);
        out[infer] = total / known;
    } else if (known != total) {
        return fail(I, "shape %s does not fit %lld elements (%s)", dims_str(I, n, shape),
                    (long long)total, dims_str(I, r, in));
    }
    return true;
}

static bool same_dims(int32_t ra, const int64_t *a, int32_t rb, const int64_t *b)
{
    if (ra != rb)
        return false;
    for (int32_t k = 0; k < ra; k++)
        if (a[k] != b[k])
            return false;
    return true;
}

/* A computed tensor given new dims: the same value (identity), a flatten to
 * [N, rest], the 5-d view of a channel shuffle, or its end; anything else is
 * not supported. Constants are simply reshaped. */
static bool view_of(Imp *I, Val *v, int32_t rank, const int64_t *dims)
{
    if (v->kind == VAL_CONST) {
        set_const(I, 0, reshaped(I, v->c, rank, dims));
        return true;
    }
    if (v->kind == VAL_SPLIT5T) {
        const TensorType *t = type_of(I, v->node);
        if (!same_dims(rank, dims, t->rank, t->dims))
            return fail(I, "only a reshape back to %s can end a channel shuffle", type_str(I, v->node));
        Attrs at;
        ir_attrs_default(OP_CHANNEL_SHUFFLE, &at);
        at.groups.groups = v->groups;
        int32_t x = v->node;
        set_node(I, 0, add(I, OP_CHANNEL_SHUFFLE, &x, 1, &at, NULL));
        return true;
    }
    if (v->kind != VAL_NODE)
        return fail(I, "a 5-d channel-shuffle view can only be transposed [0,2,1,3,4]");
    const TensorType *t = type_of(I, v->node);
    if (same_dims(rank, dims, t->rank, t->dims)) {
        set_node(I, 0, v->node);
        return true;
    }
    if (rank == 2 && t->rank >= 2 && dims[0] == t->dims[0]) {
        Attrs at;
        ir_attrs_default(OP_FLATTEN, &at);
        at.axis.axis = 1;
        int32_t x = v->node;
        set_node(I, 0, add(I, OP_FLATTEN, &x, 1, &at, NULL));
        return true;
    }
    if (rank == 5 && t->rank == 4 && dims[0] == t->dims[0] && dims[1] * dims[2] == t->dims[1] &&
        dims[3] == t->dims[2] && dims[4] == t->dims[3] && dims[1] <= INT32_MAX) {
        bind(I, 0, VAL_SPLIT5, v->node, (int32_t)dims[1], NULL);
        return true;
    }
    return fail(I, "reshaping %s to %s is not supported (only flattening to [N, rest], "
                "dropping or adding dims of 1 at the end of a flatten, and a channel shuffle)",
                type_str(I, v->node), dims_str(I, rank, dims));
}

static bool reshape(Imp *I)
{
    Val *v = input_val(I, 0);
    int64_t shp[ONNX_MAX_RANK], in[ONNX_MAX_RANK], out[ONNX_MAX_RANK];
    int32_t n, r;
    const Const *s = const_input(I, 1, "the shape");
    if (!v || !s || !ints_of(I, s, shp, ONNX_MAX_RANK, &n, "the shape"))
        return false;
    if (v->kind == VAL_SPLIT5 || v->kind == VAL_SPLIT5T) {
        const TensorType *t = type_of(I, v->node);
        r = 5;
        int64_t d5[5] = {t->dims[0], v->groups, t->dims[1] / v->groups, t->dims[2], t->dims[3]};
        if (v->kind == VAL_SPLIT5T) {
            d5[1] = t->dims[1] / v->groups;
            d5[2] = v->groups;
        }
        memcpy(in, d5, sizeof d5);
    } else if (!shape_of_input(I, v, &r, in)) {
        return false;
    }
    if (!reshape_dims(I, r, in, shp, n, out))
        return false;
    return view_of(I, v, n, out);
}

static bool flatten(Imp *I)
{
    Val *v = input_val(I, 0);
    int64_t in[ONNX_MAX_RANK], out[2] = {1, 1};
    int32_t r, axis;
    if (!v || !shape_of_input(I, v, &r, in))
        return false;
    int64_t a = attr_int(I->n, "axis", 1);
    if (a == r)
        axis = r;
    else if (!norm_axis(I, a, r, &axis))
        return false;
    for (int32_t k = 0; k < r; k++)
        out[k >= axis] *= in[k];
    if (v->kind == VAL_NODE && axis != 1 && !(axis == 0 && r == 0))
        return fail(I, "flatten at axis %d (not 1) is not supported", (int)axis);
    return view_of(I, v, 2, out);
}

static const Const *strided_copy(Imp *I, const Const *s, int32_t rank, const int64_t *dims,
                                 int64_t base, const int64_t *walk);

static bool transpose(Imp *I)
{
    Val *v = input_val(I, 0);
    int64_t perm[ONNX_MAX_RANK], in[ONNX_MAX_RANK];
    int32_t n, r;
    if (!v || !attr_ints(I, "perm", perm, ONNX_MAX_RANK, &n))
        return false;
    if (v->kind == VAL_SPLIT5) {
        static const int64_t swap12[5] = {0, 2, 1, 3, 4};
        if (n != 5 || memcmp(perm, swap12, sizeof swap12))
            return fail(I, "a 5-d channel-shuffle view can only be transposed [0,2,1,3,4]");
        bind(I, 0, VAL_SPLIT5T, v->node, v->groups, NULL);
        return true;
    }
    if (!shape_of_input(I, v, &r, in))
        return false;
    if (n < 0) { /* reverse the dims */
        n = r;
        for (int32_t k = 0; k < r; k++)
            perm[k] = r - 1 - k;
    }
    if (n != r)
        return fail(I, "perm has %d values for %d dims", (int)n, (int)r);
    bool seen[ONNX_MAX_RANK] = {false};
    for (int32_t k = 0; k < n; k++) {
        if (perm[k] < 0 || perm[k] >= r || seen[perm[k]])
            return fail(I, "perm %s is not a permutation", dims_str(I, n, perm));
        seen[perm[k]] = true;
    }
    if (v->kind == VAL_CONST) {
        const Const *s = v->c;
        int64_t dims[ONNX_MAX_RANK], st[ONNX_MAX_RANK];
        for (int32_t k = 0; k < r; k++)
            dims[k] = s->dims[perm[k]];
        int64_t acc = 1;
        for (int32_t k = r - 1; k >= 0; k--) {
            st[k] = acc;
            acc *= s->dims[k];
        }
        int64_t walk[ONNX_MAX_RANK];
        for (int32_t j = 0; j < r; j++)
            walk[j] = st[perm[j]];
        set_const(I, 0, strided_copy(I, s, r, dims, 0, walk));
        return true;
    }
    if (r > IR_MAX_RANK)
        return fail(I, "transposes of more than %d dims are not supported", IR_MAX_RANK);
    Attrs at;
    ir_attrs_default(OP_TRANSPOSE, &at);
    for (int32_t k = 0; k < r; k++)
        at.perm.perm[k] = (int32_t)perm[k];
    if (perm[0] != 0)
        return fail(I, "perm %s moves the batch dim, which is not supported", dims_str(I, n, perm));
    int32_t x = v->node;
    set_node(I, 0, add(I, OP_TRANSPOSE, &x, 1, &at, NULL));
    return true;
}

/* A constant of `dims` whose element at index (i0, i1, ...) is s's element
 * base + i0 walk[0] + i1 walk[1] + ...: a transpose or a strided slice of s. */
static const Const *strided_copy(Imp *I, const Const *s, int32_t rank, const int64_t *dims,
                                 int64_t base, const int64_t *walk)
{
    Const *c = const_new(I, rank, dims, s->i != NULL);
    int64_t idx[ONNX_MAX_RANK] = {0};
    for (int64_t k = 0; k < c->count; k++) {
        int64_t at = base;
        for (int32_t j = 0; j < rank; j++)
            at += idx[j] * walk[j];
        if (c->i)
            c->i[k] = s->i[at];
        else
            c->f[k] = s->f[at];
        for (int32_t j = rank - 1; j >= 0; j--) {
            if (++idx[j] < dims[j])
                break;
            idx[j] = 0;
        }
    }
    return c;
}

/* Gather on constants (the index arithmetic of shapes). */
/* Gather from a computed tensor with constant indices: one index (the dim
 * dropped, for an Unsqueeze to restore: torchvision's x[:, c]) or a run of
 * consecutive ones, as a slice. */
static bool gather_tensor(Imp *I, Val *v)
{
    const Const *idx = const_input(I, 1, "the indices");
    if (!idx)
        return false;
    const TensorType *t = type_of(I, v->node);
    int32_t axis;
    if (!norm_axis(I, attr_int(I->n, "axis", 0), t->rank, &axis))
        return false;
    if (axis == 0)
        return fail(I, "gathering along the batch dim is not supported");
    if (idx->rank > 1 || idx->count < 1)
        return fail(I, "gathering a computed tensor takes one index or a list of consecutive ones");
    int64_t len = t->dims[axis], first = (int64_t)cget(idx, 0);
    first = first < 0 ? first + len : first;
    for (int64_t k = 0; k < idx->count; k++) {
        int64_t g = (int64_t)cget(idx, k);
        g = g < 0 ? g + len : g;
        if (g != first + k || g < 0 || g >= len)
            return fail(I, "gathering a computed tensor takes consecutive indices within its "
                        "dim of %lld", (long long)len);
    }
    if (!fits_int32(I, first + idx->count, "index"))
        return false;
    Attrs at;
    ir_attrs_default(OP_SLICE, &at);
    at.slice = (SliceAttrs){axis, (int32_t)first, (int32_t)(first + idx->count)};
    int32_t x = v->node;
    int32_t y = add(I, OP_SLICE, &x, 1, &at, NULL);
    if (idx->rank == 0)
        bind(I, 0, VAL_DROPPED, y, axis, NULL);
    else
        set_node(I, 0, y);
    if (y < 0)
        I->failed = true;
    return y >= 0;
}

static bool gather(Imp *I)
{
    Val *v = input_val(I, 0);
    if (v && v->kind == VAL_NODE)
        return gather_tensor(I, v);
    const Const *data = const_input(I, 0, "the data");
    const Const *idx = const_input(I, 1, "the indices");
    if (!data || !idx)
        return false;
    int32_t axis;
    if (data->rank == 0)
        return fail(I, "gather from a scalar");
    if (!norm_axis(I, attr_int(I->n, "axis", 0), data->rank, &axis))
        return false;
    int32_t rank = data->rank - 1 + idx->rank;
    if (rank > ONNX_MAX_RANK)
        return fail(I, "the result would have more than %d dims", ONNX_MAX_RANK);
    int64_t dims[ONNX_MAX_RANK], outer = 1, inner = 1, len = data->dims[axis];
    int32_t r = 0;
    for (int32_t k = 0; k < axis; k++)
        outer *= data->dims[k], dims[r++] = data->dims[k];
    for (int32_t k = 0; k < idx->rank; k++)
        dims[r++] = idx->dims[k];
    for (int32_t k = axis + 1; k < data->rank; k++)
        inner *= data->dims[k], dims[r++] = data->dims[k];
    if (ir_mul_sat(ir_mul_sat(outer, idx->count), inner) > (1 << 26))
        return fail(I, "a gathered constant of shape %s is too large to compute at import",
                    dims_str(I, rank, dims));
    Const *c = const_new(I, rank, dims, data->i != NULL);
    int64_t at = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < idx->count; j++) {
            int64_t g = (int64_t)cget(idx, j);
            g = g < 0 ? g + len : g;
            if (g < 0 || g >= len)
                return fail(I, "index %lld is out of range for a dim of %lld",
                            (long long)cget(idx, j), (long long)len);
            for (int64_t k = 0; k < inner; k++, at++) {
                int64_t src = (o * len + g) * inner + k;
                if (c->i)
                    c->i[at] = data->i[src];
                else
                    c->f[at] = data->f[src];
            }
        }
    set_const(I, 0, c);
    return true;
}

/* Slice: on constants any axes and steps; on tensors step 1 along each axis. */
static bool slice(Imp *I)
{
    Val *v = input_val(I, 0);
    int64_t starts[ONNX_MAX_RANK], ends[ONNX_MAX_RANK], axes[ONNX_MAX_RANK], steps[ONNX_MAX_RANK];
    int64_t in[ONNX_MAX_RANK];
    int32_t ns, ne, na = -1, nst = -1, r;
    if (!v || !shape_of_input(I, v, &r, in))
        return false;
    const Const *cs = const_input(I, 1, "starts"), *ce = const_input(I, 2, "ends");
    if (!cs || !ce || !ints_of(I, cs, starts, ONNX_MAX_RANK, &ns, "starts") ||
        !ints_of(I, ce, ends, ONNX_MAX_RANK, &ne, "ends"))
        return false;
    if (I->n->ninputs > 3 && I->n->inputs[3][0]) {
        const Const *c = const_input(I, 3, "axes");
        if (!c || !ints_of(I, c, axes, ONNX_MAX_RANK, &na, "axes"))
            return false;
    }
    if (I->n->ninputs > 4 && I->n->inputs[4][0]) {
        const Const *c = const_input(I, 4, "steps");
        if (!c || !ints_of(I, c, steps, ONNX_MAX_RANK, &nst, "steps"))
            return false;
    }
    if (ne != ns || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return fail(I, "starts, ends, axes and steps differ in length");
    int64_t lo[ONNX_MAX_RANK], step[ONNX_MAX_RANK], dims[ONNX_MAX_RANK];
    for (int32_t k = 0; k < r; k++) {
        lo[k] = 0;
        step[k] = 1;
        dims[k] = in[k];
    }
    for (int32_t k = 0; k < ns; k++) {
        int32_t a;
        if (!norm_axis(I, na >= 0 ? axes[k] : k, r, &a))
            return false;
        int64_t s = nst >= 0 ? steps[k] : 1, len = in[a];
        if (s == 0)
            return fail(I, "a step of 0");
        int64_t b = starts[k], e = ends[k];
        b = b < 0 ? b + len : b;
        e = e < 0 ? e + len : e;
        if (s > 0) {
            b = b < 0 ? 0 : b > len ? len : b;
            e = e < 0 ? 0 : e > len ? len : e;
            dims[a] = e > b ? (e - b + s - 1) / s : 0;
        } else {
            b = b < 0 ? -1 : b > len - 1 ? len - 1 : b;
            e = e < -1 ? -1 : e > len - 1 ? len - 1 : e;
            dims[a] = b > e ? (b - e - s - 1) / -s : 0;
        }
        lo[a] = b;
        step[a] = s;
    }
    if (v->kind == VAL_CONST) {
        int64_t walk[ONNX_MAX_RANK], base = 0, acc = 1;
        for (int32_t k = r - 1; k >= 0; k--) {
            base += lo[k] * acc;
            walk[k] = step[k] * acc;
            acc *= in[k];
        }
        set_const(I, 0, strided_copy(I, v->c, r, dims, base, walk));
        return true;
    }
    if (v->kind != VAL_NODE)
        return fail(I, "input '%s' is a 5-d view that only a channel shuffle may use", v->name);
    int32_t x = v->node;
    for (int32_t a = 0; a < r && x >= 0; a++) {
        if (dims[a] == in[a] && lo[a] == 0 && step[a] == 1)
            continue;
        if (step[a] != 1)
            return fail(I, "slicing a computed tensor with a step of %lld is not supported",
                        (long long)step[a]);
        if (a == 0)
            return fail(I, "slicing the batch dim is not supported");
        if (dims[a] == 0)
            return fail(I, "the slice along dim %d is empty", (int)a);
        Attrs at;
        ir_attrs_default(OP_SLICE, &at);
        if (!fits_int32(I, lo[a] + dims[a], "slice end"))
            return false;
        at.slice = (SliceAttrs){a, (int32_t)lo[a], (int32_t)(lo[a] + dims[a])};
        x = add(I, OP_SLICE, &x, 1, &at, NULL);
    }
    set_node(I, 0, x);
    return true;
}

static bool split(Imp *I)
{
    Val *v = input_val(I, 0);
    int64_t in[ONNX_MAX_RANK];
    int32_t r, axis;
    if (!v || !shape_of_input(I, v, &r, in) || !norm_axis(I, attr_int(I->n, "axis", 0), r, &axis))
        return false;
    int32_t n = I->n->noutputs;
    int64_t *sizes = ir_alloc(I->tmp, (size_t)(n + 1) * sizeof *sizes);
    int32_t given = -1;
    int64_t buf[64];
    if (!attr_ints(I, "split", buf, 64, &given))
        return false;
    if (given < 0 && I->n->ninputs > 1 && I->n->inputs[1][0]) {
        const Const *c = const_input(I, 1, "split");
        if (!c || !ints_of(I, c, buf, 64, &given, "split"))
            return false;
    }
    int64_t total = 0;
    if (given >= 0) {
        if (given != n)
            return fail(I, "split has %d sizes for %d outputs", (int)given, (int)n);
        for (int32_t k = 0; k < n; k++)
            sizes[k] = buf[k], total += buf[k] < 0 ? -1 : buf[k];
        if (total != in[axis])
            return fail(I, "split sizes %s do not add up to %lld", dims_str(I, n, buf),
                        (long long)in[axis]);
    } else {
        int64_t each = (in[axis] + n - 1) / n;
        for (int32_t k = 0; k < n; k++) {
            sizes[k] = in[axis] - total < each ? in[axis] - total : each;
            total += sizes[k];
        }
    }
    if (v->kind != VAL_NODE)
        return fail(I, "splitting constants is not supported");
    if (axis == 0)
        return fail(I, "splitting the batch dim is not supported");
    int64_t start = 0;
    for (int32_t k = 0; k < n; k++) {
        Attrs at;
        ir_attrs_default(OP_SLICE, &at);
        if (!fits_int32(I, start + sizes[k], "split end"))
            return false;
        at.slice = (SliceAttrs){axis, (int32_t)start, (int32_t)(start + sizes[k])};
        start += sizes[k];
        if (!I->n->outputs[k][0])
            continue;
        int32_t x = v->node;
        int32_t s = add(I, OP_SLICE, &x, 1, &at, n > 1 ? ir_strfmt(I->tmp, "%d", (int)k) : NULL);
        set_node(I, k, s);
    }
    return true;
}

static bool concat(Imp *I)
{
    int32_t n = I->n->ninputs, nconst = 0;
    int64_t axis_attr = attr_int(I->n, "axis", 0);
    for (int32_t k = 0; k < n; k++) {
        Val *v = input_val(I, k);
        if (!v)
            return false;
        nconst += v->kind == VAL_CONST;
    }
    if (nconst == n) { /* shapes */
        const Const *first = lookup(I, I->n->inputs[0])->c;
        int32_t axis;
        if (!norm_axis(I, axis_attr, first->rank, &axis))
            return false;
        int64_t dims[ONNX_MAX_RANK];
        memcpy(dims, first->dims, sizeof dims);
        dims[axis] = 0;
        bool is_int = true;
        for (int32_t k = 0; k < n; k++) {
            const Const *c = lookup(I, I->n->inputs[k])->c;
            if (c->rank != first->rank)
                return fail(I, "inputs of different ranks");
            for (int32_t j = 0; j < c->rank; j++)
                if (j != axis && c->dims[j] != first->dims[j])
                    return fail(I, "inputs of different shapes");
            dims[axis] += c->dims[axis];
            is_int &= c->i != NULL;
        }
        Const *out = const_new(I, first->rank, dims, is_int);
        int64_t outer = 1, at = 0;
        for (int32_t j = 0; j < axis; j++)
            outer *= dims[j];
        for (int64_t o = 0; o < outer; o++)
            for (int32_t k = 0; k < n; k++) {
                const Const *c = lookup(I, I->n->inputs[k])->c;
                int64_t len = outer ? c->count / outer : 0;
                for (int64_t j = 0; j < len; j++, at++) {
                    if (is_int)
                        out->i[at] = c->i[o * len + j];
                    else
                        out->f[at] = (float)cget(c, o * len + j);
                }
            }
        set_const(I, 0, out);
        return true;
    }
    if (nconst)
        return fail(I, "concatenating constants with computed tensors is not supported");
    int32_t *in = ir_alloc(I->tmp, (size_t)n * sizeof *in);
    for (int32_t k = 0; k < n; k++)
        in[k] = tensor_input(I, k);
    Attrs at;
    ir_attrs_default(OP_CONCAT, &at);
    at.axis.axis = (int32_t)axis_attr;
    if (!fits_int32(I, axis_attr, "axis"))
        return false;
    set_node(I, 0, add(I, OP_CONCAT, in, n, &at, NULL));
    return true;
}

static bool constant_of_shape(Imp *I)
{
    const Const *s = const_input(I, 0, "the shape");
    int64_t dims[ONNX_MAX_RANK];
    int32_t n;
    if (!s || !ints_of(I, s, dims, ONNX_MAX_RANK, &n, "the shape"))
        return false;
    for (int32_t k = 0; k < n; k++)
        if (dims[k] < 0)
            return fail(I, "a negative dim");
    if (ir_numel_checked(n, dims) < 0 || ir_numel_checked(n, dims) > (1 << 24))
        return fail(I, "a constant of shape %s is too large to make at import", dims_str(I, n, dims));
    const OnnxAttr *a = onnx_attr(I->n, "value");
    bool is_int = a && a->type == ONNX_ATTR_TENSOR && a->t->i;
    double fill = a && a->type == ONNX_ATTR_TENSOR && a->t->count > 0
                      ? (a->t->i ? (double)a->t->i[0] : a->t->f ? (double)a->t->f[0] : 0.0)
                      : 0.0;
    Const *c = const_new(I, n, dims, is_int);
    for (int64_t k = 0; k < c->count; k++) {
        if (is_int)
            c->i[k] = (int64_t)fill;
        else
            c->f[k] = (float)fill;
    }
    set_const(I, 0, c);
    return true;
}

/* ---- arithmetic ------------------------------------------------------------------------ */

typedef enum { AR_ADD, AR_SUB, AR_MUL, AR_DIV, AR_POW } Arith;

static double arith(Arith op, double a, double b, bool is_int)
{
    switch (op) {
    case AR_ADD: return a + b;
    case AR_SUB: return a - b;
    case AR_MUL: return a * b;
    case AR_DIV:
        if (is_int)
            return b == 0.0 ? 0.0 : (double)((int64_t)a / (int64_t)b);
        return a / b;
    case AR_POW: return pow(a, b);
    }
    return 0.0;
}

/* Both operands known: numpy broadcasting, int64 when both are ints. */
static bool fold_binary(Imp *I, Arith op, const Const *a, const Const *b)
{
    int32_t rank = a->rank > b->rank ? a->rank : b->rank;
    int64_t dims[ONNX_MAX_RANK], sa[ONNX_MAX_RANK], sb[ONNX_MAX_RANK];
    int64_t acc_a = 1, acc_b = 1;
    for (int32_t k = rank - 1; k >= 0; k--) {
        int32_t ia = k - (rank - a->rank), ib = k - (rank - b->rank);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return fail(I, "cannot broadcast %s with %s", dims_str(I, a->rank, a->dims),
                        dims_str(I, b->rank, b->dims));
        dims[k] = da == 1 ? db : da;
        sa[k] = da == 1 ? 0 : acc_a;
        sb[k] = db == 1 ? 0 : acc_b;
        acc_a *= da;
        acc_b *= db;
    }
    if (ir_numel_checked(rank, dims) < 0 || ir_numel_checked(rank, dims) > (1 << 26))
        return fail(I, "a constant of shape %s is too large to compute at import",
                    dims_str(I, rank, dims));
    bool is_int = a->i && b->i;
    Const *c = const_new(I, rank, dims, is_int);
    int64_t idx[ONNX_MAX_RANK] = {0};
    for (int64_t k = 0; k < c->count; k++) {
        int64_t ia = 0, ib = 0;
        for (int32_t j = 0; j < rank; j++) {
            ia += idx[j] * sa[j];
            ib += idx[j] * sb[j];
        }
        double v = arith(op, cget(a, ia), cget(b, ib), is_int);
        if (is_int)
            c->i[k] = (int64_t)v;
        else
            c->f[k] = (float)v;
        for (int32_t j = rank - 1; j >= 0; j--) {
            if (++idx[j] < dims[j])
                break;
            idx[j] = 0;
        }
    }
    set_const(I, 0, c);
    return true;
}

static const OnnxNode *producer(Imp *I, const char *name);
static int32_t uses_of(Imp *I, const char *name);

/* Mul(x, Sigmoid(x)), either order: silu. */
static bool silu_pattern(Imp *I)
{
    for (int k = 0; k < 2; k++) {
        const OnnxNode *p = producer(I, I->n->inputs[k]);
        if (p && !strcmp(p->op_type, "Sigmoid") && p->ninputs == 1 &&
            !strcmp(p->inputs[0], I->n->inputs[1 - k])) {
            int32_t x = tensor_input(I, 1 - k);
            set_node(I, 0, add(I, OP_SILU, &x, 1, NULL, NULL));
            return true;
        }
    }
    return false;
}

static bool binary(Imp *I, Arith op)
{
    Val *a = input_val(I, 0), *b = input_val(I, 1);
    if (!a || !b)
        return false;
    if (a->kind == VAL_CONST && b->kind == VAL_CONST)
        return fold_binary(I, op, a->c, b->c);
    if (op == AR_MUL && silu_pattern(I))
        return true;
    /* a tensor and a scalar: one affine layer */
    Val *t = a->kind == VAL_CONST ? b : a, *s = a->kind == VAL_CONST ? a : b;
    if (t->kind == VAL_NODE && s->kind == VAL_CONST && s->c->count == 1 && !s->c->i &&
        s->c->rank <= type_of(I, t->node)->rank) {
        double c = cget(s->c, 0);
        bool tensor_first = t == a;
        Attrs at;
        ir_attrs_default(OP_AFFINE, &at);
        if (op == AR_POW) {
            if (!tensor_first || (c != 2.0 && c != 1.0 && c != 0.5))
                return fail(I, "Pow is supported with a constant exponent of 0.5, 1 or 2");
            int32_t x = t->node, in2[2] = {x, x};
            if (c == 1.0)
                return passthrough(I);
            set_node(I, 0, c == 2.0 ? add(I, OP_MUL, in2, 2, NULL, NULL) : add(I, OP_SQRT, &x, 1, NULL, NULL));
            return true;
        }
        if (op == AR_DIV && !tensor_first)
            return fail(I, "a constant divided by a tensor is not supported");
        double scale = 1.0, shift = 0.0;
        if (op == AR_ADD)
            shift = c;
        if (op == AR_SUB)
            shift = tensor_first ? -c : c, scale = tensor_first ? 1.0 : -1.0;
        if (op == AR_MUL)
            scale = c;
        if (op == AR_DIV)
            scale = 1.0 / c;
        at.affine = (AffineAttrs){(float)scale, (float)shift};
        if (!isfinite(at.affine.scale) || !isfinite(at.affine.shift))
            return fail(I, "the constant %g gives a factor or offset that is not a finite f32", c);
        int32_t x = t->node;
        set_node(I, 0, add(I, OP_AFFINE, &x, 1, &at, NULL));
        return true;
    }
    if (op == AR_POW)
        return fail(I, "Pow is supported with a constant exponent of 0.5, 1 or 2");
    static const Op ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV};
    int32_t in[2] = {tensor_input(I, 0), tensor_input(I, 1)};
    set_node(I, 0, add(I, ops[op], in, 2, NULL, NULL));
    return true;
}

static bool add_(Imp *I) { return binary(I, AR_ADD); }
static bool sub_(Imp *I) { return binary(I, AR_SUB); }
static bool mul_(Imp *I) { return binary(I, AR_MUL); }
static bool div_(Imp *I) { return binary(I, AR_DIV); }
static bool pow_(Imp *I) { return binary(I, AR_POW); }

/* ---- dense ---------------------------------------------------------------------------------- */

/* A [O, I] weight from a constant 2-d matrix, transposed when it is [I, O];
 * scaled by alpha. */
static int32_t dense_weight(Imp *I, Val *v, bool transpose, float alpha)
{
    const Const *w = v->c;
    if (w->rank != 2)
        return fail(I, "the weight must be 2-d, got %s", dims_str(I, w->rank, w->dims)), -1;
    if (!transpose && alpha == 1.0f)
        return param_of(I, v);
    int64_t O = transpose ? w->dims[1] : w->dims[0], In = transpose ? w->dims[0] : w->dims[1];
    int64_t dims[2] = {O, In};
    Const *c = const_new(I, 2, dims, false);
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < In; i++)
            c->f[o * In + i] = (float)(cget(w, transpose ? i * O + o : o * In + i) * alpha);
    return add_param(I, ir_strfmt(I->tmp, "%s%s", v->name, transpose ? ".T" : ".scaled"), c, 2, dims);
}

static bool gemm(Imp *I)
{
    if (attr_int(I->n, "transA", 0))
        return fail(I, "transA=1 is not supported");
    float alpha = attr_float(I->n, "alpha", 1.0f), beta = attr_float(I->n, "beta", 1.0f);
    int32_t x = tensor_input(I, 0);
    Val *bv = input_val(I, 1);
    if (x < 0 || !bv)
        return false;
    if (bv->kind != VAL_CONST)
        return fail(I, "B must be a constant or an initializer");
    if (type_of(I, x)->rank != 2)
        return fail(I, "A must be 2-d, got %s", type_str(I, x));
    int32_t w = dense_weight(I, bv, !attr_int(I->n, "transB", 0), alpha);
    if (w < 0)
        return false;
    int64_t O = type_of(I, w)->dims[0];
    int32_t in[3] = {x, w, -1}, n = 2;
    if (I->n->ninputs > 2 && I->n->inputs[2][0] && beta != 0.0f) {
        const Const *c = const_input(I, 2, "C");
        if (!c)
            return false;
        int64_t dims[1] = {O};
        Const *bias = const_new(I, 1, dims, false);
        bool vec = c->count == O && (c->rank == 1 || (c->rank == 2 && c->dims[0] == 1));
        if (!vec && c->count != 1)
            return fail(I, "C of shape %s is not a vector of the %lld outputs",
                        dims_str(I, c->rank, c->dims), (long long)O);
        for (int64_t o = 0; o < O; o++)
            bias->f[o] = (float)(cget(c, vec ? o : 0) * beta);
        in[n++] = add_param(I, I->n->inputs[2], bias, 1, dims);
    }
    set_node(I, 0, add(I, OP_DENSE, in, n, NULL, NULL));
    return true;
}

static const Const *const_named(Imp *I, const char *name);
static const char *other_input(const OnnxNode *n, const char *name);
static int32_t user_of(Imp *I, const char *name, const char *op, int32_t uses);

/* MatMul(x, W) with W a constant [I, O]: dense over the last dim; an Add of a
 * constant vector of O that alone reads the product becomes its bias. */
static bool matmul(Imp *I)
{
    Val *a = input_val(I, 0), *b = input_val(I, 1);
    if (!a || !b)
        return false;
    if (a->kind == VAL_CONST && b->kind == VAL_CONST)
        return fail(I, "a product of two constants is not supported");
    if (b->kind != VAL_CONST)
        return fail(I, "only a product with a constant 2-d second operand is supported");
    int32_t x = tensor_input(I, 0);
    if (x < 0)
        return false;
    if (type_of(I, x)->rank < 2)
        return fail(I, "the first operand must have at least 2 dims, got %s", type_str(I, x));
    int32_t w = dense_weight(I, b, true, 1.0f);
    if (w < 0)
        return false;
    int64_t O = type_of(I, w)->dims[0];
    const char *out = I->n->outputs[0];
    int32_t plus = user_of(I, out, "Add", 1);
    const char *bname = plus >= 0 ? other_input(&I->m->nodes[plus], out) : NULL;
    const Const *bias = bname ? const_named(I, bname) : NULL;
    bool vec = bias && bias->count == O && bias->rank <= type_of(I, x)->rank;
    for (int32_t j = 0; vec && j + 1 < bias->rank; j++)
        vec = bias->dims[j] == 1;
    int32_t in[3] = {x, w, -1};
    if (vec) {
        in[2] = add_param(I, bname, bias, 1, &O);
        int32_t y = add(I, OP_DENSE, in, 3, NULL, NULL);
        I->skip[plus] = true;
        Val *o = define(I, I->m->nodes[plus].outputs[0]);
        o->kind = y >= 0 ? VAL_NODE : VAL_NONE;
        o->node = y;
        I->failed |= y < 0;
        return y >= 0;
    }
    set_node(I, 0, add(I, OP_DENSE, in, 2, NULL, NULL));
    return true;
}

/* ---- pooling and reductions ------------------------------------------------------------- */

static bool pool(Imp *I, Op op)
{
    int32_t x = tensor_input(I, 0);
    if (x < 0)
        return false;
    if (I->n->noutputs > 1 && I->n->outputs[1][0])
        return fail(I, "the Indices output is not supported");
    int64_t ks[8];
    int32_t nk;
    if (!attr_ints(I, "kernel_shape", ks, 8, &nk))
        return false;
    if (nk != 2)
        return fail(I, "only 2-d pooling is supported (kernel_shape %s)", nk < 0 ? "missing" : dims_str(I, nk, ks));
    for (int i = 0; i < 2; i++)
        if (ks[i] < 1 || !fits_int32(I, ks[i], "kernel"))
            return ks[i] < 1 ? fail(I, "kernel_shape must be positive") : false;
    Window w;
    if (!window(I, x, ks, &w))
        return false;
    if (op == OP_AVGPOOL && (w.dilation[0] != 1 || w.dilation[1] != 1))
        return fail(I, "dilated average pooling is not supported");
    if (attr_int(I->n, "storage_order", 0))
        return fail(I, "storage_order=1 is not supported");
    Attrs at;
    ir_attrs_default(op, &at);
    memcpy(at.pool.kernel, w.kernel, sizeof w.kernel);
    memcpy(at.pool.stride, w.stride, sizeof w.stride);
    memcpy(at.pool.dilation, w.dilation, sizeof w.dilation);
    memcpy(at.pool.pad, w.pad, sizeof w.pad);
    at.pool.ceil_mode = attr_int(I->n, "ceil_mode", 0) != 0;
    if (op == OP_AVGPOOL)
        at.pool.count_include_pad = attr_int(I->n, "count_include_pad", 0) != 0;
    set_node(I, 0, add(I, op, &x, 1, &at, NULL));
    return true;
}

static bool maxpool(Imp *I) { return pool(I, OP_MAXPOOL); }
static bool avgpool(Imp *I) { return pool(I, OP_AVGPOOL); }

static bool global_avgpool(Imp *I)
{
    int32_t x = tensor_input(I, 0);
    if (x >= 0 && type_of(I, x)->rank != 4)
        return fail(I, "only [N, C, H, W] inputs are supported, got %s", type_str(I, x));
    set_node(I, 0, add(I, OP_GLOBAL_AVGPOOL, &x, 1, NULL, NULL));
    return true;
}

static bool layernorm_pattern(Imp *I, int32_t axis);

static bool reduce_mean(Imp *I)
{
    int32_t x = tensor_input(I, 0);
    int64_t axes[ONNX_MAX_RANK];
    int32_t n;
    if (x < 0 || !axes_of(I, 1, axes, &n))
        return false;
    const TensorType *t = type_of(I, x);
    bool keep = attr_int(I->n, "keepdims", 1) != 0;
    bool on[ONNX_MAX_RANK] = {false};
    int32_t count = 0;
    if (n < 0 && attr_int(I->n, "noop_with_empty_axes", 0))
        return passthrough(I);
    for (int32_t k = 0; k < (n < 0 ? t->rank : n); k++) {
        int32_t a = k;
        if (n >= 0 && !norm_axis(I, axes[k], t->rank, &a))
            return false;
        count += !on[a];
        on[a] = true;
    }
    if (count == 1 && keep) {
        for (int32_t a = 0; a < t->rank; a++)
            if (on[a] && layernorm_pattern(I, a))
                return true;
    }
    if (t->rank == 4 && count == 2 && on[2] && on[3]) {
        int32_t p = add(I, OP_GLOBAL_AVGPOOL, &x, 1, NULL, keep ? NULL : "pool");
        if (!keep) {
            Attrs at;
            ir_attrs_default(OP_FLATTEN, &at);
            p = add(I, OP_FLATTEN, &p, 1, &at, NULL);
        }
        set_node(I, 0, p);
        return true;
    }
    return fail(I, "a mean over axes %s of %s is not supported (only the spatial dims [2, 3] "
                "of a 4-d tensor, or a layer norm written out)", n < 0 ? "(all)" : dims_str(I, n, axes),
                type_str(I, x));
}

static bool softmax(Imp *I)
{
    int32_t x = tensor_input(I, 0);
    if (x < 0)
        return false;
    const TensorType *t = type_of(I, x);
    int64_t def = I->m->opset >= 13 ? -1 : 1;
    int32_t axis;
    if (!norm_axis(I, attr_int(I->n, "axis", def), t->rank, &axis))
        return false;
    if (I->m->opset < 13 && axis != t->rank - 1)
        return fail(I, "before opset 13 softmax flattens the dims from axis %d; only the last "
                    "axis is supported", (int)axis);
    Attrs at;
    ir_attrs_default(OP_SOFTMAX, &at);
    at.axis.axis = axis;
    set_node(I, 0, add(I, OP_SOFTMAX, &x, 1, &at, NULL));
    return true;
}

static bool layernormalization(Imp *I)
{
    int32_t x = tensor_input(I, 0);
    if (x < 0)
        return false;
    const TensorType *t = type_of(I, x);
    int32_t axis;
    if (!norm_axis(I, attr_int(I->n, "axis", -1), t->rank, &axis))
        return false;
    if (axis != t->rank - 1)
        return fail(I, "normalizing over dims %d to %d is not supported (only the last dim)",
                    (int)axis, (int)t->rank - 1);
    if (I->n->noutputs > 1 && (I->n->outputs[1][0] || (I->n->noutputs > 2 && I->n->outputs[2][0])))
        return fail(I, "the Mean and InvStdDev outputs are not supported");
    int64_t len = t->dims[axis];
    if (len > (1 << 26))
        return fail(I, "normalizing over %lld elements is not supported", (long long)len);
    int32_t in[3] = {x, -1, -1};
    for (int32_t k = 1; k < 3; k++) {
        if (k < I->n->ninputs && I->n->inputs[k][0]) {
            const Const *c = const_input(I, k, k == 1 ? "Scale" : "B");
            if (!c)
                return false;
            if (c->count != len)
                return fail(I, "%s has %lld values for %lld", k == 1 ? "Scale" : "B",
                            (long long)c->count, (long long)len);
            in[k] = add_param(I, I->n->inputs[k], c, 1, &len);
        } else {
            Const *c = const_new(I, 1, &len, false);
            for (int64_t j = 0; j < len; j++)
                c->f[j] = k == 1 ? 1.0f : 0.0f;
            in[k] = add_param(I, ir_strfmt(I->tmp, "%s.%s", node_label(I->n), k == 1 ? "scale" : "bias"),
                              c, 1, &len);
        }
    }
    Attrs at;
    ir_attrs_default(OP_LAYERNORM, &at);
    at.norm.axis = axis;
    at.norm.eps = attr_float(I->n, "epsilon", 1e-5f);
    set_node(I, 0, add(I, OP_LAYERNORM, in, 3, &at, NULL));
    return true;
}

static bool pad(Imp *I)
{
    int32_t x = tensor_input(I, 0);
    if (x < 0)
        return false;
    const char *mode = attr_string(I->n, "mode", "constant");
    if (strcmp(mode, "constant"))
        return fail(I, "mode \"%s\" is not supported (only \"constant\")", mode);
    int64_t pads[16];
    int32_t n;
    if (!attr_ints(I, "pads", pads, 16, &n))
        return false;
    if (n < 0) {
        const Const *c = const_input(I, 1, "pads");
        if (!c || !ints_of(I, c, pads, 16, &n, "pads"))
            return false;
    }
    const TensorType *t = type_of(I, x);
    float value = attr_float(I->n, "value", 0.0f);
    if (I->n->ninputs > 2 && I->n->inputs[2][0]) {
        const Const *c = const_input(I, 2, "constant_value");
        if (!c)
            return false;
        value = c->count ? (float)cget(c, 0) : 0.0f;
    }
    if (I->n->ninputs > 3 && I->n->inputs[3][0])
        return fail(I, "the axes input is not supported");
    if (t->rank != 4 || n != 8 || pads[0] || pads[1] || pads[4] || pads[5])
        return fail(I, "only padding H and W of a 4-d tensor is supported (pads %s)",
                    n < 0 ? "missing" : dims_str(I, n, pads));
    Attrs at;
    ir_attrs_default(OP_PAD, &at);
    int64_t p4[4] = {pads[2], pads[3], pads[6], pads[7]};
    for (int i = 0; i < 4; i++) {
        if (p4[i] < 0)
            return fail(I, "negative pads (cropping) are not supported");
        if (!fits_int32(I, p4[i], "pad"))
            return false;
        at.pad.pad[i] = (int32_t)p4[i];
    }
    at.pad.value = value;
    set_node(I, 0, add(I, OP_PAD, &x, 1, &at, NULL));
    return true;
}

/* ---- patterns ------------------------------------------------------------------------- */

/* The earlier node producing `name`, or NULL. */
static const OnnxNode *producer(Imp *I, const char *name)
{
    Val *v = lookup(I, name);
    return v && v->producer >= 0 && v->producer < I->ni ? &I->m->nodes[v->producer] : NULL;
}

static int32_t uses_of(Imp *I, const char *name)
{
    Val *v = lookup(I, name);
    return v ? v->uses : 0;
}

/* The later node (not yet consumed by a pattern) of op `op` that reads `name`,
 * or -1; also -1 unless `name` has exactly `uses` readers. */
static int32_t user_of(Imp *I, const char *name, const char *op, int32_t uses)
{
    Val *v = lookup(I, name);
    if (!v || v->uses != uses)
        return -1;
    for (int32_t k = 0; k < v->readers; k++) {
        int32_t u = I->users[v->users + k];
        if (u > I->ni && !I->skip[u] && !strcmp(I->m->nodes[u].op_type, op))
            return u;
    }
    return -1;
}

static const Const *const_named(Imp *I, const char *name)
{
    Val *v = lookup(I, name);
    return v && v->kind == VAL_CONST && v->c->f ? v->c : NULL;
}

static const char *other_input(const OnnxNode *n, const char *name)
{
    return n->ninputs == 2 ? (!strcmp(n->inputs[0], name) ? n->inputs[1] : n->inputs[0]) : NULL;
}

/* At the first ReduceMean of
 *   m = ReduceMean(x); d = Sub(x, m); v = ReduceMean(Pow(d, 2)); s = Sqrt(Add(v, eps));
 *   y = Div(d, s) [; y = Mul(y, w)] [; y = Add(y, b)]
 * over dim `axis`: one layernorm, the later nodes skipped. */
static bool layernorm_pattern(Imp *I, int32_t axis)
{
    const OnnxNode *r1 = I->n;
    const OnnxNode *nodes = I->m->nodes;
    const char *x = r1->inputs[0], *m = r1->outputs[0];
    int32_t sub = user_of(I, m, "Sub", 1);
    if (sub < 0 || strcmp(nodes[sub].inputs[0], x) || strcmp(nodes[sub].inputs[1], m))
        return false;
    const char *d = nodes[sub].outputs[0];
    int32_t pw = user_of(I, d, "Pow", 2), dv = user_of(I, d, "Div", 2);
    if (pw < 0 || dv < 0 || strcmp(nodes[pw].inputs[0], d) || strcmp(nodes[dv].inputs[0], d))
        return false;
    const Const *two = const_named(I, nodes[pw].inputs[1]);
    if (!two || two->count != 1 || two->f[0] != 2.0f)
        return false;
    int32_t r2 = user_of(I, nodes[pw].outputs[0], "ReduceMean", 1);
    if (r2 < 0)
        return false;
    int32_t ad = user_of(I, nodes[r2].outputs[0], "Add", 1);
    if (ad < 0)
        return false;
    const Const *eps = const_named(I, other_input(&nodes[ad], nodes[r2].outputs[0]));
    int32_t sq = user_of(I, nodes[ad].outputs[0], "Sqrt", 1);
    if (!eps || eps->count != 1 || sq < 0 || strcmp(nodes[dv].inputs[1], nodes[sq].outputs[0]) ||
        uses_of(I, nodes[sq].outputs[0]) != 1)
        return false;
    /* the second mean must be over the same single dim, keeping it */
    const OnnxNode *saved = I->n;
    int32_t saved_i = I->ni;
    I->n = &nodes[r2];
    I->ni = r2;
    int64_t axes[ONNX_MAX_RANK];
    int32_t n;
    bool same = axes_of(I, 1, axes, &n) && n == 1 && attr_int(I->n, "keepdims", 1);
    I->n = saved;
    I->ni = saved_i;
    int32_t xn = tensor_input(I, 0);
    const TensorType *t = type_of(I, xn);
    if (!same || (axes[0] < 0 ? axes[0] + t->rank : axes[0]) != axis)
        return false;
    int64_t len = t->dims[axis];
    const char *out = nodes[dv].outputs[0];
    int32_t last = dv, mul = user_of(I, out, "Mul", 1), addb = -1;
    const Const *w = mul >= 0 ? const_named(I, other_input(&nodes[mul], out)) : NULL;
    if (w && w->count == len) {
        last = mul;
        out = nodes[mul].outputs[0];
        addb = user_of(I, out, "Add", 1);
    } else {
        w = NULL;
        addb = user_of(I, out, "Add", 1);
    }
    const Const *b = addb >= 0 ? const_named(I, other_input(&nodes[addb], out)) : NULL;
    if (b && b->count == len)
        last = addb;
    else
        b = NULL;
    const char *wname = w ? other_input(&nodes[mul], nodes[dv].outputs[0]) : NULL;
    const char *bname = b ? other_input(&nodes[addb], nodes[w ? mul : dv].outputs[0]) : NULL;
    int32_t in[3] = {xn, -1, -1};
    for (int k = 0; k < 2; k++) {
        const Const *c = k ? b : w;
        Const *p = const_new(I, 1, &len, false);
        for (int64_t j = 0; j < len; j++)
            p->f[j] = c ? c->f[j] : k ? 0.0f : 1.0f;
        const char *name = c ? (k ? bname : wname)
                             : ir_strfmt(I->tmp, "%s.%s", node_label(r1), k ? "bias" : "weight");
        in[1 + k] = add_param(I, name, p, 1, &len);
    }
    Attrs at;
    ir_attrs_default(OP_LAYERNORM, &at);
    at.norm.axis = axis;
    at.norm.eps = (float)cget(eps, 0);
    int32_t y = add(I, OP_LAYERNORM, in, 3, &at, NULL);
    int32_t seq[] = {sub, pw, r2, ad, sq, dv, w ? mul : -1, b ? addb : -1};
    for (size_t k = 0; k < sizeof seq / sizeof seq[0]; k++)
        if (seq[k] >= 0)
            I->skip[seq[k]] = true;
    Val *o = define(I, nodes[last].outputs[0]);
    o->kind = y >= 0 ? VAL_NODE : VAL_NONE;
    o->node = y;
    if (y < 0)
        I->failed = true;
    /* the first mean's own output is used by the Sub only, now skipped */
    define(I, m)->kind = VAL_NONE;
    return true;
}

/* At Erf: u = Div(x, sqrt 2) (or Mul(x, 1/sqrt 2)); Mul(Mul(x, Add(Erf(u), 1)), 0.5):
 * gelu(x), the Add and Muls skipped. Else an erf layer. */
static bool erf_(Imp *I)
{
    const OnnxNode *nodes = I->m->nodes;
    const OnnxNode *u = producer(I, I->n->inputs[0]);
    const char *e = I->n->outputs[0];
    if (u && u->ninputs == 2 && uses_of(I, I->n->inputs[0]) == 1 &&
        (!strcmp(u->op_type, "Div") || !strcmp(u->op_type, "Mul"))) {
        const Const *c = const_named(I, u->inputs[1]);
        bool div = !strcmp(u->op_type, "Div");
        bool scale_ok = c && c->count == 1 &&
                        fabs(div ? c->f[0] - 1.41421356 : c->f[0] - 0.70710678) < 1e-6;
        int32_t a1 = user_of(I, e, "Add", 1);
        const Const *one = a1 >= 0 ? const_named(I, other_input(&nodes[a1], e)) : NULL;
        int32_t m1 = one && one->count == 1 && one->f[0] == 1.0f
                         ? user_of(I, nodes[a1].outputs[0], "Mul", 1) : -1;
        const char *x = u->inputs[0];
        bool takes_x = m1 >= 0 && !strcmp(other_input(&nodes[m1], nodes[a1].outputs[0]), x);
        int32_t m2 = takes_x ? user_of(I, nodes[m1].outputs[0], "Mul", 1) : -1;
        const Const *half = m2 >= 0 ? const_named(I, other_input(&nodes[m2], nodes[m1].outputs[0])) : NULL;
        if (scale_ok && half && half->count == 1 && half->f[0] == 0.5f) {
            Val *xv = lookup(I, x);
            if (xv && xv->kind == VAL_NODE) {
                int32_t xn = xv->node;
                int32_t y = add(I, OP_GELU, &xn, 1, NULL, NULL);
                I->skip[a1] = I->skip[m1] = I->skip[m2] = true;
                Val *o = define(I, nodes[m2].outputs[0]);
                o->kind = y >= 0 ? VAL_NODE : VAL_NONE;
                o->node = y;
                return y >= 0;
            }
        }
    }
    return unary_op(I, OP_ERF, NULL);
}

/* ---- the op table --------------------------------------------------------------------- */

typedef struct OpEntry {
    const char *name;
    Handler fn;
} OpEntry;

/* Inputs an op needs at least (others: 1; Constant 0). */
static int32_t min_inputs(const char *op)
{
    static const struct { const char *op; int32_t n; } table[] = {
        {"Constant", 0}, {"Add", 2}, {"Sub", 2}, {"Mul", 2}, {"Div", 2}, {"Pow", 2},
        {"Conv", 2}, {"BatchNormalization", 5}, {"Gemm", 2}, {"MatMul", 2}, {"Gather", 2},
        {"Reshape", 2}, {"Slice", 3}, {"LayerNormalization", 1},
    };
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
        if (!strcmp(table[k].op, op))
            return table[k].n;
    return 1;
}

static const OpEntry ops[] = {
    {"Abs", abs_}, {"Add", add_}, {"AveragePool", avgpool}, {"BatchNormalization", batchnorm},
    {"Cast", cast}, {"Clip", clip}, {"Concat", concat}, {"Constant", constant},
    {"ConstantOfShape", constant_of_shape}, {"Conv", conv}, {"Div", div_}, {"Dropout", dropout},
    {"Erf", erf_}, {"Exp", exp_}, {"Flatten", flatten}, {"Gather", gather}, {"Gelu", gelu},
    {"Gemm", gemm}, {"GlobalAveragePool", global_avgpool}, {"HardSigmoid", hardsigmoid},
    {"HardSwish", hardswish}, {"Identity", passthrough}, {"LayerNormalization", layernormalization},
    {"LeakyRelu", leaky_relu}, {"MatMul", matmul}, {"MaxPool", maxpool}, {"Mul", mul_},
    {"Neg", neg}, {"Pad", pad}, {"Pow", pow_}, {"ReduceMean", reduce_mean}, {"Relu", relu},
    {"Reshape", reshape}, {"Shape", shape}, {"Sigmoid", sigmoid}, {"Slice", slice},
    {"Softmax", softmax}, {"Split", split}, {"Sqrt", sqrt_}, {"Squeeze", squeeze}, {"Sub", sub_},
    {"Tanh", tanh_}, {"Transpose", transpose}, {"Unsqueeze", unsqueeze},
};
#define NOPS ((int32_t)(sizeof ops / sizeof ops[0]))

static Handler handler_of(const OnnxNode *n)
{
    if (n->domain[0])
        return NULL;
    for (int32_t k = 0; k < NOPS; k++)
        if (!strcmp(ops[k].name, n->op_type))
            return ops[k].fn;
    return NULL;
}

int32_t fe_onnx_op_count(void)
{
    return NOPS;
}

const char *fe_onnx_op_name(int32_t i)
{
    return i >= 0 && i < NOPS ? ops[i].name : NULL;
}

/* One message for every op type the table lacks: counts and first node names. */
static bool check_ops(Imp *I)
{
    const OnnxModel *m = I->m;
    const char **types = ir_alloc(I->tmp, ((size_t)m->nnodes + 1) * sizeof *types);
    int32_t *counts = ir_alloc(I->tmp, ((size_t)m->nnodes + 1) * sizeof *counts);
    int32_t *first = ir_alloc(I->tmp, ((size_t)m->nnodes + 1) * sizeof *first);
    int32_t ntypes = 0, total = 0;
    for (int32_t k = 0; k < m->nnodes; k++) {
        const OnnxNode *n = &m->nodes[k];
        if (handler_of(n))
            continue;
        const char *t = n->domain[0] ? ir_strfmt(I->tmp, "%s.%s", n->domain, n->op_type) : n->op_type;
        int32_t j = 0;
        while (j < ntypes && strcmp(types[j], t))
            j++;
        if (j == ntypes) {
            types[ntypes] = t;
            first[ntypes++] = k;
        }
        counts[j]++;
        total++;
    }
    if (!ntypes)
        return true;
    char *msg = ir_strfmt(I->tmp, "%d node%s use%s operators cnnc does not support:", (int)total,
                          total == 1 ? "" : "s", total == 1 ? "s" : "");
    for (int32_t j = 0; j < ntypes && j < 40; j++) {
        char *names = ir_strdup(I->tmp, "");
        int shown = 0;
        for (int32_t k = first[j]; k < m->nnodes && shown < 3; k++) {
            const OnnxNode *n = &m->nodes[k];
            const char *t = n->domain[0] ? ir_strfmt(I->tmp, "%s.%s", n->domain, n->op_type) : n->op_type;
            if (strcmp(t, types[j]))
                continue;
            names = ir_strfmt(I->tmp, "%s%s'%s'", names, shown ? ", " : "", node_label(n));
            shown++;
        }
        msg = ir_strfmt(I->tmp, "%s %s ×%d (%s%s)%s", msg, types[j], (int)counts[j], names,
                        counts[j] > 3 ? ", ..." : "", j + 1 < ntypes ? ";" : "");
    }
    if (ntypes > 40)
        msg = ir_strfmt(I->tmp, "%s and %d more", msg, (int)ntypes - 40);
    ir_error(I->d, I->loc, "%s", msg);
    return false;
}

/* ---- inputs and outputs ------------------------------------------------------------------- */

static bool is_initializer(const OnnxModel *m, const char *name)
{
    for (int32_t k = 0; k < m->ninits; k++)
        if (!strcmp(m->inits[k].name, name))
            return true;
    return false;
}

static bool add_inputs(Imp *I)
{
    const OnnxModel *m = I->m;
    bool ok = true;
    for (int32_t k = 0; k < m->ninputs; k++) {
        const OnnxValueInfo *v = &m->inputs[k];
        if (is_initializer(m, v->name))
            continue;
        if (v->dtype != ONNX_FLOAT) {
            ok = fail(I, "input '%s' has element type %d; cnnc takes f32 inputs only", v->name,
                      (int)v->dtype);
            continue;
        }
        if (v->rank < 0) {
            ok = fail(I, "input '%s' has no shape", v->name);
            continue;
        }
        if (v->rank > IR_MAX_RANK) {
            ok = fail(I, "input '%s' has %d dims, more than %d", v->name, (int)v->rank, IR_MAX_RANK);
            continue;
        }
        int64_t dims[IR_MAX_RANK];
        for (int32_t j = 0; j < v->rank; j++) {
            dims[j] = v->dims[j];
            if (j == 0 && I->batch > 0) {
                if (v->dims[0] >= 0 && v->dims[0] != I->batch) {
                    ok = fail(I, "input '%s' has a fixed batch size of %lld, so --batch=%lld "
                              "cannot change it (export it with a dynamic batch axis)", v->name,
                              (long long)v->dims[0], (long long)I->batch);
                    break;
                }
                dims[0] = I->batch;
            } else if (dims[j] < 0) {
                const char *sym = v->dim_names[j];
                ok = j == 0 ? fail(I, "input '%s' has a dynamic batch dim%s%s%s; give --batch=N",
                                   v->name, sym ? " ('" : "", sym ? sym : "", sym ? "')" : "")
                            : fail(I, "input '%s' has a dynamic dim %d%s%s%s; cnnc needs fixed "
                                   "sizes (export with a fixed input size)", v->name, (int)j,
                                   sym ? " ('" : "", sym ? sym : "", sym ? "')" : "");
                break;
            }
        }
        for (int32_t j = 0; ok && j < v->rank; j++)
            if (dims[j] == 0)
                ok = fail(I, "input '%s' has a dim of 0", v->name);
        if (ok && taken(I, v->name))
            ok = fail(I, "input '%s' is declared twice", v->name);
        if (!ok)
            continue;
        TensorType t = ir_type_f32(v->rank, dims);
        take(I, v->name);
        int32_t id = ir_add_input(I->g, v->name, t, I->loc);
        if (!ir_infer_node(I->g, id, I->d)) {
            ok = false;
            continue;
        }
        Val *val = define(I, v->name);
        val->kind = VAL_NODE;
        val->node = id;
    }
    return ok;
}

static bool add_outputs(Imp *I)
{
    bool ok = true;
    for (int32_t k = 0; k < I->m->noutputs; k++) {
        const char *name = I->m->outputs[k].name;
        bool twice = false;
        for (int32_t j = 0; j < k; j++)
            twice |= !strcmp(I->m->outputs[j].name, name);
        if (twice) {
            ok = fail(I, "output '%s' is listed twice", name);
            continue;
        }
        Val *v = lookup(I, name);
        if (!v || v->kind == VAL_NONE) {
            ok = fail(I, "output '%s' is not computed by any node", name);
            continue;
        }
        if (v->kind != VAL_NODE) {
            ok = fail(I, "output '%s' is %s; cnnc's outputs are computed tensors", name,
                      v->kind == VAL_CONST ? "a constant" : "a 5-d view");
            continue;
        }
        ir_add_output(I->g, v->node, name);
    }
    return ok;
}

/* ---- the import ----------------------------------------------------------------------------- */

static int32_t pow2_at_least(int64_t n)
{
    int32_t p = 16;
    while (p < n && p < (1 << 29))
        p <<= 1;
    return p;
}

/* Whether a value is read by a node a pattern did not consume, or is a graph output. */
static bool live_uses(Imp *I, const Val *v)
{
    if (!v)
        return false;
    if (v->uses > v->readers)
        return true;
    for (int32_t k = 0; k < v->readers; k++)
        if (!I->skip[I->users[v->users + k]])
            return true;
    return false;
}

/* Who produces and who reads every value name, before any node is imported. */
static void index_values(Imp *I, int64_t nuses)
{
    const OnnxModel *m = I->m;
    for (int32_t k = 0; k < m->nnodes; k++) {
        const OnnxNode *n = &m->nodes[k];
        for (int32_t j = 0; j < n->noutputs; j++)
            if (n->outputs[j][0] && define(I, n->outputs[j])->producer < 0)
                define(I, n->outputs[j])->producer = k;
        for (int32_t j = 0; j < n->ninputs; j++)
            if (n->inputs[j][0])
                define(I, n->inputs[j])->uses++;
    }
    for (int32_t k = 0; k < m->noutputs; k++)
        define(I, m->outputs[k].name)->uses++;
    int32_t at = 0;
    for (int32_t v = 0; v < I->nvals; v++) {
        I->vals[v].users = at;
        at += I->vals[v].uses;
        I->vals[v].uses = 0;
    }
    if (at > nuses)
        ICE("%d uses counted for %lld", (int)at, (long long)nuses);
    for (int32_t k = 0; k < m->nnodes; k++) {
        const OnnxNode *n = &m->nodes[k];
        for (int32_t j = 0; j < n->ninputs; j++) {
            if (!n->inputs[j][0])
                continue;
            Val *v = define(I, n->inputs[j]);
            I->users[v->users + v->uses++] = k;
        }
    }
    for (int32_t v = 0; v < I->nvals; v++)
        I->vals[v].readers = I->vals[v].uses;
    for (int32_t k = 0; k < m->noutputs; k++)
        define(I, m->outputs[k].name)->uses++; /* a graph output: no node */
}

Graph *fe_import_onnx(const OnnxModel *m, const FeOptions *opt, Diag *d)
{
    Imp I = {.m = m, .d = d, .loc = {m->path, 0, 0}};
    I.lim = fe_limits(opt ? &opt->limits : NULL);
    I.batch = opt ? opt->batch : 0;
    if (m->opset < MIN_OPSET || m->opset > MAX_OPSET) {
        ir_error(d, I.loc, "the model uses opset %lld of the default ONNX domain; cnnc reads "
                 "opsets %d to %d (convert it with onnx.version_converter)", (long long)m->opset,
                 MIN_OPSET, MAX_OPSET);
        return NULL;
    }
    if (m->nnodes > I.lim.max_nodes) {
        ir_error(d, I.loc, "the model has %d nodes, more than the limit of %lld (raise it with "
                 "--max-nodes=N)", (int)m->nnodes, (long long)I.lim.max_nodes);
        return NULL;
    }
    I.tmp = ir_arena_new();
    if (!check_ops(&I)) {
        ir_arena_free(I.tmp);
        return NULL;
    }
    int64_t nvalues = (int64_t)m->ninits + m->ninputs + m->noutputs + 1, nuses = m->noutputs;
    for (int32_t k = 0; k < m->nnodes; k++) {
        nvalues += m->nodes[k].noutputs + m->nodes[k].ninputs;
        nuses += m->nodes[k].ninputs;
    }
    I.capvals = (int32_t)(nvalues < INT32_MAX / 4 ? nvalues : INT32_MAX / 4);
    I.vals = ir_xcalloc((size_t)I.capvals, sizeof *I.vals);
    I.nslots = pow2_at_least(2 * nvalues);
    I.slots = ir_xmalloc((size_t)I.nslots * sizeof *I.slots);
    memset(I.slots, 0xff, (size_t)I.nslots * sizeof *I.slots);
    I.nnames = pow2_at_least(4 * nvalues + 64);
    I.names = ir_xcalloc((size_t)I.nnames, sizeof *I.names);
    I.skip = ir_alloc(I.tmp, (size_t)m->nnodes + 1);
    I.users = ir_alloc(I.tmp, (size_t)(nuses + 1) * sizeof *I.users);
    index_values(&I, nuses);
    I.g = ir_graph_new(m->graph_name && m->graph_name[0] ? m->graph_name : "onnx");
    I.loc.file = ir_strdup(I.g->arena, m->path); /* nodes' locations outlive the model */
    for (int32_t k = 0; k < m->ninits && !I.failed; k++) {
        const Const *c = const_of_tensor(&I, &m->inits[k]);
        if (!c)
            break;
        Val *v = define(&I, m->inits[k].name);
        v->kind = VAL_CONST;
        v->c = (Const *)c;
    }
    bool ok = !I.failed && add_inputs(&I);
    /* Constants depend on nothing: all of them first, so a pattern that starts
     * before one (a layer norm's exponent and epsilon) can read it. */
    for (int32_t k = 0; ok && k < m->nnodes; k++) {
        if (strcmp(m->nodes[k].op_type, "Constant") || m->nodes[k].domain[0])
            continue;
        I.n = &m->nodes[k];
        I.ni = k;
        if (I.n->noutputs < 1 || !I.n->outputs[0][0])
            ok = fail(&I, "the node has no output");
        else
            ok = constant(&I) && !I.failed;
        I.skip[k] = true;
        I.n = NULL;
    }
    for (int32_t k = 0; ok && k < m->nnodes; k++) {
        if (I.skip[k])
            continue;
        I.n = &m->nodes[k];
        I.ni = k;
        int32_t need = min_inputs(I.n->op_type), given = 0;
        for (int32_t j = 0; j < I.n->ninputs && j < need; j++)
            given += I.n->inputs[j][0] != 0;
        if (I.n->noutputs < 1 || !I.n->outputs[0][0])
            ok = fail(&I, "the node has no output");
        else if (given < need)
            ok = fail(&I, "needs %d inputs, has %d", (int)need, (int)given);
        else if (!handler_of(I.n)(&I) || I.failed)
            ok = false;
        for (int32_t j = 0; ok && j < I.n->noutputs; j++) {
            const char *out = I.n->outputs[j];
            Val *v = out[0] ? lookup(&I, out) : NULL;
            if (out[0] && (!v || v->kind == VAL_NONE) && live_uses(&I, v))
                ok = fail(&I, "output '%s' is not produced", out);
        }
        I.n = NULL;
    }
    ok = ok && add_outputs(&I);
    free(I.vals);
    free(I.slots);
    free(I.names);
    ir_arena_free(I.tmp);
    if (!ok || d->nerrors) {
        ir_graph_free(I.g);
        return NULL;
    }
    return I.g;
}

Graph *fe_load_onnx(const char *path, const FeOptions *opt, Diag *d)
{
    FeLimits lim = fe_limits(opt ? &opt->limits : NULL);
    OnnxModel *m = onnx_read(path, (uint64_t)lim.max_weights, d);
    if (!m)
        return NULL;
    Graph *g = fe_import_onnx(m, opt, d);
    onnx_free(m);
    return g;
}
