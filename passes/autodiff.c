/* autodiff.c: the training step of a forward graph (docs/training.md), as three
 * graphs of the ordinary IR that the interpreter and the backends run:
 *
 *   forward (lowered clone) ──► grad:  inputs, labels, rng, parameters
 *                                       forward in training mode  (bn_stats/bn_train,
 *                                       bn_running, dropout_train)
 *                                       loss, then the reverse sweep:
 *                                       dL/dy per node, from the output back,
 *                                       one rule per op, sums by `add`
 *                           ──► apply: hyper, per parameter NAME, grad:NAME, state
 *                                       → new:NAME, new:STATE (torch.optim's update)
 *                           ──► eval:  forward in evaluation mode, parameters as inputs
 *
 * Only values that depend on a trainable parameter get a gradient, so the network's
 * input never does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "train.h"

void train_options_init(TrainOptions *o)
{
    *o = (TrainOptions){.loss = LOSS_CROSS_ENTROPY, .optim = OPTIM_SGD, .lr = 0.01f,
                        .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .bn_momentum = 0.1f};
}

/* torch.optim's own checks, and finite values. */
const char *train_options_check(const TrainOptions *o)
{
    if (!(isfinite(o->lr) && o->lr >= 0.0f)) return "the learning rate must be finite and >= 0";
    if (!(isfinite(o->momentum) && o->momentum >= 0.0f))
        return "momentum must be finite and >= 0";
    if (!(isfinite(o->dampening) && o->dampening >= 0.0f && o->dampening <= 1.0f))
        return "dampening must be in [0, 1]";
    if (!(isfinite(o->weight_decay) && o->weight_decay >= 0.0f))
        return "weight decay must be finite and >= 0";
    if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f)) return "beta1 must be in [0, 1)";
    if (!(o->beta2 >= 0.0f && o->beta2 < 1.0f)) return "beta2 must be in [0, 1)";
    if (!(isfinite(o->eps) && o->eps >= 0.0f)) return "eps must be finite and >= 0";
    if (!(o->bn_momentum >= 0.0f && o->bn_momentum <= 1.0f))
        return "batch-norm momentum must be in [0, 1]";
    if (o->nesterov && (o->optim != OPTIM_SGD || o->momentum <= 0.0f || o->dampening != 0.0f))
        return "Nesterov momentum needs SGD with a momentum and zero dampening";
    return NULL;
}

/* ---- building a graph --------------------------------------------------- */

typedef struct Builder {
    const Graph *f;  /* the lowered forward graph */
    Graph *g;        /* the graph being built */
    PassNames *names;
    Diag *d;
    bool ok;
    int32_t *map;    /* forward node → its value in g (-1: none) */
    int32_t *grad;   /* forward node → dL/d(its value) in g (-1: none yet) */
    int32_t *stats;  /* forward batchnorm → its bn_stats node in g */
    bool *needs;     /* forward node depends on a trainable parameter */
    int32_t labels, rng;
    int32_t salt;    /* the next dropout layer's */
    const char *file_from, *file_to; /* the last file name of a location copied into g */
} Builder;

/* `loc` with its file name in g's arena: the forward graph it comes from is freed
 * first. Nodes come in runs from one file, so one name is remembered. */
static SrcLoc own_loc(Builder *b, SrcLoc loc)
{
    if (loc.file && loc.file != b->file_from) {
        b->file_from = loc.file;
        b->file_to = ir_strdup(b->g->arena, loc.file);
    }
    if (loc.file)
        loc.file = b->file_to;
    return loc;
}

/* A node of g named `base` (made unique), with `a` (NULL: defaults), shapes inferred. */
static int32_t emit(Builder *b, Op op, const int32_t *ins, int32_t n, const char *base,
                    SrcLoc loc, const Attrs *a)
{
    int32_t id = ir_add_node(b->g, op, ins, n, pass_unique_name(b->g, b->names, base),
                             own_loc(b, loc));
    if (a)
        b->g->nodes[id].attrs = *a;
    if (!ir_infer_node(b->g, id, b->d))
        b->ok = false;
    return id;
}

/* A graph input named exactly `name`, which nothing else may be called. */
static int32_t add_input(Builder *b, const char *name, TensorType t, SrcLoc loc)
{
    const char *unique = pass_unique_name(b->g, b->names, name);
    if (strcmp(unique, name)) {
        ir_error(b->d, loc, "training: the name '%s' is taken by the training step's inputs",
                 name);
        b->ok = false;
    }
    t.layout = LAYOUT_PLAIN;
    t.block = 0;
    return ir_add_input(b->g, unique, t, own_loc(b, loc));
}

static const char *fmt(Builder *b, const char *f, const char *name)
{
    return ir_strfmt(b->g->arena, f, name);
}

static const Node *fnode(const Builder *b, int32_t i)
{
    return &b->f->nodes[i];
}

static bool is_running_stat(const Graph *f, int32_t p)
{
    for (int32_t i = 0; i < f->nnodes; i++) {
        const Node *n = &f->nodes[i];
        if (n->op == OP_BATCHNORM && (n->inputs[3] == p || n->inputs[4] == p))
            return true;
    }
    return false;
}

/* ---- the parameter table ------------------------------------------------ */

/* Trainable parameters in the forward graph's order, then the buffers, each typed
 * as in the forward graph `fwd` (a dense weight that lower turned into a 1×1 conv2d's
 * [O, I, 1, 1] stays [O, I], the shape of weight files; the bytes are the same). */
static void param_table(const Graph *f, const Graph *fwd, Graph *owner, TrainStep *s)
{
    int32_t n = 0;
    for (int32_t i = 0; i < f->nnodes; i++)
        n += f->nodes[i].op == OP_PARAM;
    s->params = ir_alloc(owner->arena, (size_t)(n ? n : 1) * sizeof *s->params);
    for (int pass = 0; pass < 2; pass++)
        for (int32_t i = 0; i < f->nnodes; i++) {
            const Node *p = &f->nodes[i];
            if (p->op != OP_PARAM || is_running_stat(f, i) != (pass == 1))
                continue;
            TrainParam *t = &s->params[s->nparams++];
            t->name = ir_strdup(owner->arena, p->name);
            int32_t orig = ir_find_node(fwd, p->name);
            const TensorType *pt = orig >= 0 ? &fwd->nodes[orig].type : &p->type;
            t->type = ir_type_f32(pt->rank, pt->dims);
            t->kind = pass == 0 ? TP_WEIGHT : TP_BUFFER;
            size_t bytes = (size_t)ir_numel(&p->type) * sizeof(float);
            float *init = ir_alloc(owner->arena, bytes ? bytes : 1);
            memcpy(init, p->data, bytes);
            t->init = init;
            s->ntrainable += pass == 0;
        }
}

/* ---- the forward sweep -------------------------------------------------- */

/* The network's inputs, then (training) labels and rng, then the parameters. */
static void add_inputs(Builder *b, const TrainStep *s, bool train, LossKind loss)
{
    const Graph *f = b->f;
    for (int32_t i = 0; i < f->nnodes; i++)
        if (f->nodes[i].op == OP_INPUT)
            b->map[i] = add_input(b, f->nodes[i].name, f->nodes[i].type, f->nodes[i].loc);
    if (train) {
        const Node *out = fnode(b, f->outputs[0].node);
        TensorType t = loss == LOSS_MSE ? out->type : ir_type_f32(1, out->type.dims);
        b->labels = add_input(b, "labels", t, out->loc);
        b->rng = add_input(b, "rng", ir_type_f32(1, (int64_t[]){2}), out->loc);
    }
    for (int32_t k = 0; k < s->nparams; k++) {
        int32_t p = ir_find_node(f, s->params[k].name);
        b->map[p] = add_input(b, s->params[k].name, f->nodes[p].type, f->nodes[p].loc);
    }
}

/* Batch norm with batch statistics, and PyTorch's update of the running ones. */
static void forward_bn_train(Builder *b, int32_t i, const TrainOptions *o)
{
    const Node *n = fnode(b, i);
    int32_t x = b->map[n->inputs[0]];
    b->stats[i] = emit(b, OP_BN_STATS, &x, 1, fmt(b, "%s.stats", n->name), n->loc, NULL);
    int32_t ins[4] = {x, b->stats[i], b->map[n->inputs[1]], b->map[n->inputs[2]]};
    b->map[i] = emit(b, OP_BN_TRAIN, ins, 4, n->name, n->loc, &n->attrs);
    for (int32_t which = 0; which < 2; which++) {
        int32_t r = n->inputs[3 + which];
        Attrs a;
        ir_attrs_default(OP_BN_RUNNING, &a);
        a.running = (RunningAttrs){which, o->bn_momentum};
        int32_t rins[3] = {b->map[r], b->stats[i], x};
        int32_t id = emit(b, OP_BN_RUNNING, rins, 3, fmt(b, "%s.new", fnode(b, r)->name),
                          n->loc, &a);
        ir_add_output(b->g, id, fmt(b, "new:%s", fnode(b, r)->name));
    }
}

/* Every node of the forward graph; `o` NULL: evaluation mode. */
static void forward(Builder *b, const TrainOptions *o)
{
    for (int32_t i = 0; i < b->f->nnodes && b->ok; i++) {
        const Node *n = fnode(b, i);
        if (n->op == OP_INPUT || n->op == OP_PARAM)
            continue;
        if (o && n->op == OP_BATCHNORM) {
            forward_bn_train(b, i, o);
            continue;
        }
        int32_t *ins = ir_xmalloc((size_t)(n->ninputs + 1) * sizeof *ins);
        Attrs a = n->attrs;
        Op op = n->op;
        for (int32_t k = 0; k < n->ninputs; k++)
            ins[k] = b->map[n->inputs[k]];
        int32_t nin = n->ninputs;
        if (o && op == OP_DROPOUT) {
            op = OP_DROPOUT_TRAIN;
            a.dropout.salt = b->salt++;
            ins[nin++] = b->rng;
        }
        b->map[i] = emit(b, op, ins, nin, n->name, n->loc, &a);
        free(ins);
    }
}

/* ---- the reverse sweep -------------------------------------------------- */

/* Adds `v` to the gradient of forward node `x`. */
static void give(Builder *b, int32_t x, int32_t v)
{
    if (b->grad[x] < 0) {
        b->grad[x] = v;
        return;
    }
    int32_t ins[2] = {b->grad[x], v};
    b->grad[x] = emit(b, OP_ADD, ins, 2, fmt(b, "%s.grad_sum", fnode(b, x)->name),
                      fnode(b, x)->loc, NULL);
}

/* Whether input k of forward node n wants a gradient. */
static bool wants(const Builder *b, const Node *n, int32_t k)
{
    return k < n->ninputs && b->needs[n->inputs[k]];
}

/* The gradient's name: "<param>.grad" for a parameter, "<node>.grad_input[k]" else. */
static const char *grad_name(Builder *b, const Node *n, int32_t k)
{
    const Node *x = fnode(b, n->inputs[k]);
    if (x->op == OP_PARAM)
        return fmt(b, "%s.grad", x->name);
    return k == 0 ? fmt(b, "%s.grad_input", n->name)
                  : ir_strfmt(b->g->arena, "%s.grad_input%d", n->name, (int)k);
}

static Attrs attrs_of(Op op)
{
    Attrs a;
    ir_attrs_default(op, &a);
    return a;
}

/* Sums dy over every dim but `axis`: a bias's gradient. */
static void give_bias(Builder *b, const Node *n, int32_t k, int32_t dy, int32_t axis)
{
    Attrs a = attrs_of(OP_BIAS_GRAD);
    a.axis.axis = axis;
    give(b, n->inputs[k], emit(b, OP_BIAS_GRAD, &dy, 1, grad_name(b, n, k), n->loc, &a));
}

static void back_conv2d(Builder *b, const Node *n, int32_t dy)
{
    Attrs a = n->attrs;
    memset(&a.conv.epi, 0, sizeof a.conv.epi);
    int32_t x = b->map[n->inputs[0]], w = b->map[n->inputs[1]];
    if (wants(b, n, 0))
        give(b, n->inputs[0], emit(b, OP_CONV2D_GRAD_INPUT, (int32_t[]){dy, w, x}, 3,
                                   grad_name(b, n, 0), n->loc, &a));
    if (wants(b, n, 1))
        give(b, n->inputs[1], emit(b, OP_CONV2D_GRAD_WEIGHT, (int32_t[]){dy, x, w}, 3,
                                   grad_name(b, n, 1), n->loc, &a));
    if (ir_bias_input(n) >= 0 && wants(b, n, 2))
        give_bias(b, n, 2, dy, 1);
}

/* A value as the 2-d [rows, last dim] the dense gradients take (itself when 2-d). */
static int32_t as_rows(Builder *b, int32_t v, const char *base, SrcLoc loc)
{
    int32_t rank = b->g->nodes[v].type.rank;
    if (rank == 2)
        return v;
    Attrs a = attrs_of(OP_FLATTEN);
    a.axis.axis = rank - 1;
    return emit(b, OP_FLATTEN, &v, 1, base, loc, &a);
}

/* dense over the last dim (lower made it so); a higher-rank input is taken as rows. */
static void back_dense(Builder *b, const Node *n, int32_t dy)
{
    int32_t x = b->map[n->inputs[0]], w = b->map[n->inputs[1]];
    int32_t dy2 = as_rows(b, dy, fmt(b, "%s.grad_rows", n->name), n->loc);
    if (wants(b, n, 0)) {
        int32_t dx = emit(b, OP_DENSE_GRAD_INPUT, (int32_t[]){dy2, w}, 2, grad_name(b, n, 0),
                          n->loc, NULL);
        if (dy2 != dy)
            dx = emit(b, OP_RESHAPE_AS, (int32_t[]){dx, x}, 2, fmt(b, "%s.grad_input_as", n->name),
                      n->loc, NULL);
        give(b, n->inputs[0], dx);
    }
    if (wants(b, n, 1)) {
        int32_t x2 = as_rows(b, x, fmt(b, "%s.input_rows", n->name), n->loc);
        give(b, n->inputs[1], emit(b, OP_DENSE_GRAD_WEIGHT, (int32_t[]){dy2, x2}, 2,
                                   grad_name(b, n, 1), n->loc, NULL));
    }
    if (ir_bias_input(n) >= 0 && wants(b, n, 2))
        give_bias(b, n, 2, dy, -1);
}

static void back_batchnorm(Builder *b, int32_t i, int32_t dy)
{
    const Node *n = fnode(b, i);
    int32_t x = b->map[n->inputs[0]], s = b->stats[i], w = b->map[n->inputs[1]];
    if (wants(b, n, 0))
        give(b, n->inputs[0], emit(b, OP_BN_GRAD_INPUT, (int32_t[]){dy, x, s, w}, 4,
                                   grad_name(b, n, 0), n->loc, &n->attrs));
    if (wants(b, n, 1))
        give(b, n->inputs[1], emit(b, OP_BN_GRAD_WEIGHT, (int32_t[]){dy, x, s}, 3,
                                   grad_name(b, n, 1), n->loc, &n->attrs));
    if (wants(b, n, 2))
        give_bias(b, n, 2, dy, 1);
}

/* dy summed to input k's shape, where broadcasting made it larger. */
static int32_t reduced(Builder *b, const Node *n, int32_t k, int32_t v)
{
    int32_t x = b->map[n->inputs[k]];
    if (ir_dims_eq(&b->g->nodes[x].type, &b->g->nodes[v].type))
        return v;
    return emit(b, OP_REDUCE_AS, (int32_t[]){v, x}, 2, grad_name(b, n, k), n->loc, NULL);
}

/* add, sub: dy to each side (negated for sub's right); mul: dy times the other side. */
static void back_binary(Builder *b, const Node *n, int32_t dy)
{
    for (int32_t k = 0; k < 2; k++) {
        if (!wants(b, n, k))
            continue;
        int32_t v = dy;
        if (n->op == OP_MUL) {
            int32_t other = b->map[n->inputs[1 - k]];
            v = emit(b, OP_MUL, (int32_t[]){dy, other}, 2,
                     fmt(b, "%s.grad_product", n->name), n->loc, NULL);
        } else if (n->op == OP_SUB && k == 1) {
            Attrs a = attrs_of(OP_AFFINE);
            a.affine.scale = -1.0f;
            v = emit(b, OP_AFFINE, &dy, 1, fmt(b, "%s.grad_negated", n->name), n->loc, &a);
        }
        give(b, n->inputs[k], reduced(b, n, k, v));
    }
}

/* Input k of a concat gets its stretch of dy along the axis. */
static void back_concat(Builder *b, const Node *n, int32_t dy)
{
    int32_t rank = n->type.rank, axis = n->attrs.axis.axis < 0 ? n->attrs.axis.axis + rank
                                                                 : n->attrs.axis.axis;
    int32_t start = 0;
    for (int32_t k = 0; k < n->ninputs; k++) {
        int32_t len = (int32_t)fnode(b, n->inputs[k])->type.dims[axis];
        if (wants(b, n, k)) {
            Attrs a = attrs_of(OP_SLICE);
            a.slice = (SliceAttrs){axis, start, start + len};
            give(b, n->inputs[k], emit(b, OP_SLICE, &dy, 1, grad_name(b, n, k), n->loc, &a));
        }
        start += len;
    }
}

/* a / b: dy / b to a, -dy / b * (a / b) to b. */
static void back_div(Builder *b, int32_t i, int32_t dy)
{
    const Node *n = fnode(b, i);
    int32_t q = emit(b, OP_DIV, (int32_t[]){dy, b->map[n->inputs[1]]}, 2,
                     fmt(b, "%s.grad_quotient", n->name), n->loc, NULL);
    if (wants(b, n, 0))
        give(b, n->inputs[0], reduced(b, n, 0, q));
    if (!wants(b, n, 1))
        return;
    int32_t m = emit(b, OP_MUL, (int32_t[]){q, b->map[i]}, 2, fmt(b, "%s.grad_product", n->name),
                     n->loc, NULL);
    Attrs a = attrs_of(OP_AFFINE);
    a.affine.scale = -1.0f;
    m = emit(b, OP_AFFINE, &m, 1, fmt(b, "%s.grad_negated", n->name), n->loc, &a);
    give(b, n->inputs[1], reduced(b, n, 1, m));
}

/* pad's gradient is the slice of H, then of W, that the input filled. */
static void back_pad(Builder *b, const Node *n, int32_t dy)
{
    const TensorType *x = &fnode(b, n->inputs[0])->type;
    Attrs a = attrs_of(OP_SLICE);
    a.slice = (SliceAttrs){2, n->attrs.pad.pad[0], n->attrs.pad.pad[0] + (int32_t)x->dims[2]};
    int32_t h = emit(b, OP_SLICE, &dy, 1, fmt(b, "%s.grad_rows", n->name), n->loc, &a);
    a.slice = (SliceAttrs){3, n->attrs.pad.pad[1], n->attrs.pad.pad[1] + (int32_t)x->dims[3]};
    give(b, n->inputs[0], emit(b, OP_SLICE, &h, 1, grad_name(b, n, 0), n->loc, &a));
}

/* A shuffle of C channels in g groups is undone by one in C / g groups. */
static void back_channel_shuffle(Builder *b, const Node *n, int32_t dy)
{
    Attrs a = n->attrs;
    a.groups.groups = (int32_t)(n->type.dims[1] / n->attrs.groups.groups);
    give(b, n->inputs[0], emit(b, OP_CHANNEL_SHUFFLE, &dy, 1, grad_name(b, n, 0), n->loc, &a));
}

/* transpose's gradient is the transpose by the inverse permutation. */
static void back_transpose(Builder *b, const Node *n, int32_t dy)
{
    Attrs a = n->attrs;
    for (int32_t i = 0; i < n->type.rank; i++)
        a.perm.perm[n->attrs.perm.perm[i]] = i;
    give(b, n->inputs[0], emit(b, OP_TRANSPOSE, &dy, 1, grad_name(b, n, 0), n->loc, &a));
}

/* An op whose gradient is one node of (dy, x), or (dy, rng) for dropout, with the
 * forward's attributes; false for an op without such a rule. */
static bool back_unary(Builder *b, int32_t i, int32_t dy)
{
    const Node *n = fnode(b, i);
    int32_t second = b->map[n->inputs[0]];
    Attrs a = n->attrs;
    Op op;
    switch (n->op) {
    case OP_MAXPOOL: op = OP_MAXPOOL_GRAD; break;
    case OP_AVGPOOL: op = OP_AVGPOOL_GRAD; break;
    case OP_GLOBAL_AVGPOOL: op = OP_GLOBAL_AVGPOOL_GRAD; break;
    case OP_ADAPTIVE_AVGPOOL: op = OP_ADAPTIVE_AVGPOOL_GRAD; break;
    case OP_SLICE: op = OP_SLICE_GRAD; break;
    case OP_FLATTEN:
        op = OP_RESHAPE_AS;
        a = attrs_of(op);
        break;
    case OP_DROPOUT: /* the mask of the forward's dropout_train: its salt */
        op = OP_DROPOUT_GRAD;
        a = b->g->nodes[b->map[i]].attrs;
        second = b->rng;
        break;
    default:
        if (!ir_op_is_act(n->op))
            return false;
        op = OP_ACT_GRAD;
        a = attrs_of(op);
        a.actgrad.act = n->op;
        ir_act_params(n, &a.actgrad.a, &a.actgrad.b);
        break;
    }
    give(b, n->inputs[0], emit(b, op, (int32_t[]){dy, second}, 2, grad_name(b, n, 0), n->loc, &a));
    return true;
}

/* The gradient rule of forward node i, whose own gradient is dy. */
static void backward_node(Builder *b, int32_t i, int32_t dy)
{
    const Node *n = fnode(b, i);
    const Epilogue *e = ir_epilogue(n);
    if (e && (e->act != OP_NO_ACT || e->residual || e->post != OP_NO_ACT)) {
        ir_error(b->d, n->loc, "training: no gradient for %s '%s' with a fused epilogue",
                 ir_ops[n->op].name, n->name);
        b->ok = false;
        return;
    }
    switch (n->op) {
    case OP_CONV2D: back_conv2d(b, n, dy); return;
    case OP_DENSE: back_dense(b, n, dy); return;
    case OP_BATCHNORM: back_batchnorm(b, i, dy); return;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL: back_binary(b, n, dy); return;
    case OP_DIV: back_div(b, i, dy); return;
    case OP_PAD: back_pad(b, n, dy); return;
    case OP_CHANNEL_SHUFFLE: back_channel_shuffle(b, n, dy); return;
    case OP_CONCAT: back_concat(b, n, dy); return;
    case OP_TRANSPOSE: back_transpose(b, n, dy); return;
    default:
        if (back_unary(b, i, dy))
            return;
    }
    ir_error(b->d, n->loc, "training: no gradient for %s '%s'", ir_ops[n->op].name, n->name);
    b->ok = false;
}

/* needs[i]: node i depends on a trainable parameter. */
static void mark_needs(Builder *b, const TrainStep *s)
{
    for (int32_t i = 0; i < b->f->nnodes; i++) {
        const Node *n = fnode(b, i);
        if (n->op == OP_PARAM) {
            for (int32_t k = 0; k < s->ntrainable; k++)
                b->needs[i] |= !strcmp(s->params[k].name, n->name);
            continue;
        }
        for (int32_t k = 0; k < n->ninputs; k++)
            b->needs[i] |= b->needs[n->inputs[k]];
    }
}

/* The loss of the output, its gradient seeding the sweep, then every rule in reverse. */
static void loss_and_backward(Builder *b, LossKind loss)
{
    int32_t out = b->f->outputs[0].node, y = b->map[out];
    const Node *o = fnode(b, out);
    if (loss == LOSS_CROSS_ENTROPY && o->type.rank != 2) {
        ir_error(b->d, o->loc, "training: cross-entropy needs logits [N, classes], but the "
                 "output '%s' has %d dims", b->f->outputs[0].name, (int)o->type.rank);
        b->ok = false;
        return;
    }
    int32_t ins[2] = {y, b->labels};
    Op op = loss == LOSS_MSE ? OP_MSE : OP_SOFTMAX_XENT;
    int32_t l = emit(b, op, ins, 2, "loss", o->loc, NULL);
    ir_add_output(b->g, l, "loss");
    ir_add_output(b->g, y, b->f->outputs[0].name);
    if (!b->ok)
        return;
    b->grad[out] = emit(b, loss == LOSS_MSE ? OP_MSE_GRAD : OP_SOFTMAX_XENT_GRAD, ins, 2,
                        "loss.grad", o->loc, NULL);
    for (int32_t i = out; i >= 0 && b->ok; i--)
        if (b->grad[i] >= 0 && b->needs[i] && fnode(b, i)->op != OP_PARAM)
            backward_node(b, i, b->grad[i]);
}

/* grad:NAME per trainable parameter; one that no path reaches gets zeros. */
static void grad_outputs(Builder *b, const TrainStep *s)
{
    for (int32_t k = 0; k < s->ntrainable && b->ok; k++) {
        int32_t p = ir_find_node(b->f, s->params[k].name), v = b->grad[p];
        if (v < 0) {
            Attrs a = attrs_of(OP_AFFINE);
            a.affine.scale = 0.0f;
            v = emit(b, OP_AFFINE, &b->map[p], 1, fmt(b, "%s.grad", s->params[k].name),
                     fnode(b, p)->loc, &a);
        }
        ir_add_output(b->g, v, fmt(b, "grad:%s", s->params[k].name));
    }
}

/* Outputs are added in the order the docs give; the running statistics' were added by
 * the forward sweep first, so they move to the end. */
static void order_outputs(Graph *g, int32_t nrunning)
{
    GraphOutput *tmp = ir_alloc(g->arena, (size_t)(g->noutputs ? g->noutputs : 1) * sizeof *tmp);
    memcpy(tmp, g->outputs + nrunning, (size_t)(g->noutputs - nrunning) * sizeof *tmp);
    memcpy(tmp + g->noutputs - nrunning, g->outputs, (size_t)nrunning * sizeof *tmp);
    memcpy(g->outputs, tmp, (size_t)g->noutputs * sizeof *tmp);
}

static Builder builder_new(const Graph *f, Graph *g, Diag *d)
{
    Builder b = {.f = f, .g = g, .d = d, .ok = true, .labels = -1, .rng = -1};
    b.names = pass_name_set(b.g, b.g->arena);
    size_t n = (size_t)(f->nnodes ? f->nnodes : 1);
    b.map = ir_xmalloc(n * sizeof *b.map);
    b.grad = ir_xmalloc(n * sizeof *b.grad);
    b.stats = ir_xmalloc(n * sizeof *b.stats);
    b.needs = ir_xcalloc(n, sizeof *b.needs);
    for (size_t i = 0; i < n; i++)
        b.map[i] = b.grad[i] = b.stats[i] = -1;
    return b;
}

/* Whether the graph was built and verifies. */
static bool builder_end(Builder *b)
{
    free(b->map);
    free(b->grad);
    free(b->stats);
    free(b->needs);
    return b->ok && ir_verify(b->g, b->d);
}

static bool build_grad(const Graph *f, const TrainOptions *o, TrainStep *s, Diag *d)
{
    Builder b = builder_new(f, s->grad, d);
    add_inputs(&b, s, true, o->loss);
    s->label_node = b.labels;
    mark_needs(&b, s);
    forward(&b, o);
    int32_t nrunning = b.g->noutputs;
    if (b.ok)
        loss_and_backward(&b, o->loss);
    grad_outputs(&b, s);
    if (b.ok)
        order_outputs(b.g, nrunning);
    return builder_end(&b);
}

static bool build_eval(const Graph *f, const TrainStep *s, Diag *d)
{
    Builder b = builder_new(f, s->eval, d);
    add_inputs(&b, s, false, LOSS_CROSS_ENTROPY);
    forward(&b, NULL);
    for (int32_t k = 0; k < f->noutputs && b.ok; k++)
        ir_add_output(b.g, b.map[f->outputs[k].node], f->outputs[k].name);
    return builder_end(&b);
}

/* ---- the optimizer ------------------------------------------------------ */

static OptimAttrs optim_attrs(const TrainOptions *o)
{
    return (OptimAttrs){.weight_decay = o->weight_decay, .momentum = o->momentum,
                        .dampening = o->dampening, .beta1 = o->beta1, .beta2 = o->beta2,
                        .eps = o->eps, .nesterov = o->nesterov,
                        .decoupled = o->optim == OPTIM_ADAMW};
}

/* The state tensors of one parameter: none, momentum, or Adam's two moments. */
static int32_t state_names(const TrainOptions *o, const char **prefix)
{
    if (o->optim != OPTIM_SGD) {
        prefix[0] = "exp_avg";
        prefix[1] = "exp_avg_sq";
        return 2;
    }
    prefix[0] = "momentum";
    return o->momentum != 0.0f ? 1 : 0;
}

/* One node of a parameter's update, at the parameter's location. */
static int32_t update(Builder *b, Op op, const int32_t *ins, int32_t n, const char *base,
                      SrcLoc loc, const OptimAttrs *oa)
{
    Attrs a = attrs_of(op);
    a.optim = *oa;
    return emit(b, op, ins, n, base, loc, &a);
}

static bool build_apply(const Graph *f, const TrainOptions *o, TrainStep *s, Diag *d)
{
    Builder b = builder_new(f, s->apply, d);
    const char *prefix[2];
    int32_t per = state_names(o, prefix);
    s->state = ir_alloc(b.g->arena, (size_t)(s->ntrainable * per + 1) * sizeof *s->state);
    SrcLoc net = f->noutputs ? f->nodes[f->outputs[0].node].loc : (SrcLoc){0};
    int32_t hyper = add_input(&b, "hyper", ir_type_f32(1, (int64_t[]){3}), net);
    int32_t *news = ir_xmalloc((size_t)(s->ntrainable * (per + 1) + 1) * sizeof *news);
    OptimAttrs oa = optim_attrs(o);
    for (int32_t k = 0; k < s->ntrainable; k++) {
        const TrainParam *t = &s->params[k];
        SrcLoc loc = f->nodes[ir_find_node(f, t->name)].loc;
        int32_t p = add_input(&b, t->name, t->type, loc);
        int32_t g = add_input(&b, fmt(&b, "grad:%s", t->name), t->type, loc);
        int32_t st[2];
        for (int32_t j = 0; j < per; j++) {
            const char *name = ir_strfmt(b.g->arena, "%s:%s", prefix[j], t->name);
            s->state[s->nstate++] = (TrainParam){name, t->type, TP_STATE, NULL};
            st[j] = add_input(&b, name, t->type, loc);
        }
        const char *upd = fmt(&b, "%s.update", t->name);
        int32_t *nw = &news[k * (per + 1)];
        if (o->optim == OPTIM_SGD) {
            int32_t buf = g;
            if (per) {
                buf = update(&b, OP_SGD_MOMENTUM, (int32_t[]){st[0], g, p, hyper}, 4,
                             fmt(&b, "%s.momentum", t->name), loc, &oa);
                nw[1] = buf;
            }
            nw[0] = update(&b, OP_SGD_STEP, (int32_t[]){p, g, buf, hyper}, 4, upd, loc, &oa);
        } else {
            nw[1] = update(&b, OP_ADAM_M, (int32_t[]){st[0], g, p}, 3,
                           fmt(&b, "%s.exp_avg", t->name), loc, &oa);
            nw[2] = update(&b, OP_ADAM_V, (int32_t[]){st[1], g, p}, 3,
                           fmt(&b, "%s.exp_avg_sq", t->name), loc, &oa);
            nw[0] = update(&b, OP_ADAM_STEP, (int32_t[]){p, nw[1], nw[2], hyper}, 4, upd, loc, &oa);
        }
    }
    for (int32_t k = 0; k < s->ntrainable; k++)
        ir_add_output(b.g, news[k * (per + 1)], fmt(&b, "new:%s", s->params[k].name));
    for (int32_t k = 0; k < s->ntrainable; k++)
        for (int32_t j = 0; j < per; j++)
            ir_add_output(b.g, news[k * (per + 1) + 1 + j],
                          fmt(&b, "new:%s", s->state[k * per + j].name));
    free(news);
    return builder_end(&b);
}

/* ---- the whole step ----------------------------------------------------- */

static bool check_forward(const Graph *f, Diag *d)
{
    bool ok = true;
    for (int32_t i = 0; i < f->nnodes; i++)
        if (f->nodes[i].op == OP_PARAM && !f->nodes[i].data) {
            ir_error(d, f->nodes[i].loc, "training: parameter '%s' has no initial value",
                     f->nodes[i].name);
            ok = false;
        }
    if (f->noutputs == 1)
        return ok;
    SrcLoc loc = f->noutputs > 1 ? f->nodes[f->outputs[1].node].loc : (SrcLoc){0};
    ir_error(d, loc, "training: the network must have one output (the logits or the "
             "prediction), it has %d", (int)f->noutputs);
    return false;
}

bool train_build(const Graph *fwd, const TrainOptions *o, TrainStep *out, Diag *d)
{
    memset(out, 0, sizeof *out);
    const char *bad = train_options_check(o);
    if (bad) {
        ir_error(d, (SrcLoc){0}, "training: %s", bad);
        return false;
    }
    Graph *f = ir_graph_clone(fwd);
    PassOptions po;
    pass_options_init(&po);
    bool ok = check_forward(f, d) && pass_lower(f, &po, d);
    out->loss = o->loss;
    out->grad = ir_graph_new(ir_strfmt(f->arena, "%s_grad", f->name));
    out->apply = ir_graph_new(ir_strfmt(f->arena, "%s_apply", f->name));
    out->eval = ir_graph_new(ir_strfmt(f->arena, "%s_eval", f->name));
    if (ok)
        param_table(f, fwd, out->grad, out); /* kept in the grad graph's arena */
    ok = ok && build_grad(f, o, out, d) && build_eval(f, out, d) && build_apply(f, o, out, d);
    ir_graph_free(f);
    if (!ok)
        train_step_free(out);
    return ok;
}

void train_step_free(TrainStep *s)
{
    if (s->grad)
        ir_graph_free(s->grad);
    if (s->apply)
        ir_graph_free(s->apply);
    if (s->eval)
        ir_graph_free(s->eval);
    memset(s, 0, sizeof *s);
}
