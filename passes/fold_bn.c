/* fold_bn.c: folds a per-output-channel affine map into the conv2d or dense
 * that feeds it:
 *   W'[o, ...] = W[o, ...] * s[o],   b'[o] = b[o] * s[o] + t[o]
 * computed in double, for
 *   - an inference-mode batchnorm: s = gamma / sqrt(var + eps),
 *     t = beta - mean * s;
 *   - a mul by a weight of one value per channel ([C, 1, 1], ConvNeXt's layer
 *     scale): s = that weight, t = 0.
 * The new weights are new PARAMs ("<conv>.weight.folded", "<conv>.bias.folded");
 * the old ones go when nothing else uses them. Where the conv is the old weight's
 * only user and no other node holds its values, W' is computed in place and the
 * new PARAM takes the old one's buffer: the weights of a whole network (100 MB in
 * ResNet-50) are then not copied.
 *
 * A batchnorm with nothing to fold into whose only user is an activation (DenseNet's
 * norm1 → relu before each layer, over the whole concat so far) becomes a 1×1
 * depthwise conv2d of weight s and bias t, where the channels fill whole blocks:
 * fuse then gives it the activation, and the two passes over the value that the
 * batchnorm and the relu made are one. Anything else stays as it is. */
#include "passes.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool bound_param(const Graph *g, int32_t id)
{
    return g->nodes[id].op == OP_PARAM && g->nodes[id].data;
}

static bool no_epilogue(const Node *n)
{
    static const Epilogue none;
    return memcmp(ir_epilogue(n), &none, sizeof none) == 0;
}

/* Whether conv2d/dense `p` can take a per-channel map applied by its only
 * user: no epilogue yet, bound weights, and (dense) features in dim 1. */
static bool foldable(const Graph *g, const int32_t *uses, int32_t p)
{
    const Node *prod = &g->nodes[p];
    if ((prod->op != OP_CONV2D && prod->op != OP_DENSE) || uses[p] != 1 || !no_epilogue(prod))
        return false;
    if (prod->op == OP_DENSE && prod->type.rank != 2) /* its features are not dim 1 */
        return false;
    for (int32_t k = 1; k < prod->ninputs; k++)
        if (!bound_param(g, prod->inputs[k]))
            return false;
    return true;
}

/* The conv2d/dense that batchnorm `bn` can be folded into, or -1. */
static int32_t bn_producer(const Graph *g, const int32_t *uses, int32_t bn)
{
    const Node *n = &g->nodes[bn];
    for (int32_t k = 1; k < 5; k++)
        if (!bound_param(g, n->inputs[k]))
            return -1;
    return foldable(g, uses, n->inputs[0]) ? n->inputs[0] : -1;
}

/* For mul `m` of a conv2d/dense output by a bound weight holding one value per
 * output channel: the conv2d/dense (-1 if none) and, in *scale, that weight. */
static int32_t mul_producer(const Graph *g, const int32_t *uses, int32_t m, int32_t *scale)
{
    const Node *n = &g->nodes[m];
    for (int32_t k = 0; k < 2; k++) {
        int32_t p = n->inputs[k], s = n->inputs[1 - k];
        const TensorType *y = &g->nodes[p].type, *st = &g->nodes[s].type;
        if (!bound_param(g, s) || st->rank > y->rank || !ir_dims_eq(y, &n->type) ||
            !foldable(g, uses, p))
            continue;
        bool per_channel = true; /* right-aligned, s is 1 everywhere but the channel dim */
        for (int32_t i = 0; i < st->rank; i++) {
            int32_t dim = y->rank - st->rank + i;
            per_channel &= st->dims[i] == (dim == 1 ? y->dims[1] : 1);
        }
        if (per_channel) {
            *scale = s;
            return p;
        }
    }
    return -1;
}

typedef struct Folder {
    Arena *tmp;
    bool *dead;         /* by node, for the nodes the pass may add too */
    int32_t *uses;      /* of the graph's first n nodes, kept up to date */
    const bool *shared; /* of the first n: a buffer another node holds too */
    int32_t n;
    PassUsers *users;
    PassNames *names;
} Folder;

/* Whether param `w`'s values may be rewritten: a weight an earlier fold made (its own
 * buffer, one user), or one of the graph's with one use left whose buffer no other node
 * shares (lowering lets a reshaped weight share its source's). */
static bool sole_holder(const Folder *f, int32_t w)
{
    return w >= f->n || (f->uses[w] == 1 && !f->shared[w]);
}

/* Which of the first n nodes hold a data buffer that another node holds too. */
static int by_data(const void *a, const void *b)
{
    const Node *const *x = a, *const *y = b;
    uintptr_t p = (uintptr_t)(*x)->data, q = (uintptr_t)(*y)->data;
    return (p > q) - (p < q);
}

static bool *shared_buffers(const Graph *g, Arena *tmp)
{
    int32_t n = g->nnodes, m = 0;
    bool *shared = ir_alloc(tmp, (size_t)n + 1);
    const Node **held = ir_alloc(tmp, ((size_t)n + 1) * sizeof *held);
    for (int32_t i = 0; i < n; i++)
        if (g->nodes[i].data) held[m++] = &g->nodes[i];
    qsort(held, (size_t)m, sizeof *held, by_data);
    for (int32_t i = 1; i < m; i++)
        if (held[i]->data == held[i - 1]->data)
            shared[held[i] - g->nodes] = shared[held[i - 1] - g->nodes] = true;
    return shared;
}

/* Replaces conv's weights by W * s, b * s + t and node `user` (the map) by the conv. */
static void rescale(Graph *g, int32_t user, int32_t conv, const double *s, const double *t,
                    const Folder *f)
{
    const Node *c = &g->nodes[conv];
    const Node *w = &g->nodes[c->inputs[1]];
    const float *bias = c->ninputs == 3 ? g->nodes[c->inputs[2]].data : NULL, *wd = w->data;
    int64_t O = w->type.dims[0], per = ir_numel(&w->type) / O;
    int64_t bdims[1] = {O};
    const char *cname = c->name ? c->name : "folded";
    TensorType wt = w->type;
    SrcLoc loc = c->loc;
    float *nw, *nb; /* the new parameters' values */
    const char *wname = ir_strfmt(f->tmp, "%s.weight.folded", cname);
    int32_t wid;
    if (sole_holder(f, c->inputs[1])) {
        wid = ir_add_param(g, pass_unique_name(g, f->names, wname), wt, loc);
        nw = g->nodes[wid].data = (float *)wd; /* w is dead once the conv takes W' */
    } else {
        wid = pass_new_param(g, f->names, wname, wt, loc, &nw);
    }
    int32_t bid = pass_new_param(g, f->names, ir_strfmt(f->tmp, "%s.bias.folded", cname),
                                 ir_type_f32(1, bdims), loc, &nb);
    for (int64_t o = 0; o < O; o++) {
        for (int64_t i = 0; i < per; i++)
            nw[o * per + i] = (float)((double)wd[o * per + i] * s[o]);
        nb[o] = (float)((bias ? (double)bias[o] : 0.0) * s[o] + t[o]);
    }
    Node *cn = &g->nodes[conv]; /* the array may have moved */
    for (int32_t k = 1; k < cn->ninputs; k++) {
        f->dead[cn->inputs[k]] = true;
        if (cn->inputs[k] < f->n) f->uses[cn->inputs[k]]--;
    }
    int32_t *ins = ir_alloc(g->arena, 3 * sizeof *ins);
    ins[0] = cn->inputs[0];
    ins[1] = wid;
    ins[2] = bid;
    cn->inputs = ins;
    cn->ninputs = 3;
    pass_replace_uses(g, f->users, user, conv);
}

static void fold_bn(Graph *g, int32_t bn, int32_t conv, const Folder *f)
{
    const Node *b = &g->nodes[bn];
    const float *gamma = g->nodes[b->inputs[1]].data, *beta = g->nodes[b->inputs[2]].data;
    const float *mean = g->nodes[b->inputs[3]].data, *var = g->nodes[b->inputs[4]].data;
    int64_t O = g->nodes[g->nodes[conv].inputs[1]].type.dims[0];
    double *s = ir_alloc(f->tmp, (size_t)O * sizeof *s), *t = ir_alloc(f->tmp, (size_t)O * sizeof *t);
    double eps = (double)b->attrs.bn.eps;
    for (int64_t o = 0; o < O; o++) {
        s[o] = (double)gamma[o] / sqrt((double)var[o] + eps);
        t[o] = (double)beta[o] - (double)mean[o] * s[o];
    }
    rescale(g, bn, conv, s, t, f);
}

static void fold_scale(Graph *g, int32_t mul, int32_t conv, int32_t scale, const Folder *f)
{
    const float *p = g->nodes[scale].data;
    int64_t O = g->nodes[g->nodes[conv].inputs[1]].type.dims[0];
    double *s = ir_alloc(f->tmp, (size_t)O * sizeof *s), *t = ir_alloc(f->tmp, (size_t)O * sizeof *t);
    for (int64_t o = 0; o < O; o++) {
        s[o] = (double)p[o];
        t[o] = 0.0;
    }
    rescale(g, mul, conv, s, t, f);
}

/* Batchnorm `bn` (bound statistics, no producer to fold into) as a 1×1 depthwise
 * conv2d in place, when its only user is an activation and its channels fill whole
 * blocks of `block` (the depthwise kernel's layout). */
static bool bn_to_depthwise(Graph *g, const int32_t *uses, int32_t bn, int32_t block,
                            const Folder *f)
{
    const Node *b = &g->nodes[bn];
    int64_t C = b->type.dims[1];
    if (block <= 1 || b->type.rank != 4 || C % block || uses[bn] != 1)
        return false;
    for (int32_t k = 1; k < 5; k++)
        if (!bound_param(g, b->inputs[k]))
            return false;
    int32_t user = -1;
    PASS_FOR_USERS(f->users, bn, e)
        user = f->users->user[e];
    if (user < 0 || !ir_op_is_act(g->nodes[user].op))
        return false;
    const float *gamma = g->nodes[b->inputs[1]].data, *beta = g->nodes[b->inputs[2]].data;
    const float *mean = g->nodes[b->inputs[3]].data, *var = g->nodes[b->inputs[4]].data;
    float *w = ir_alloc(f->tmp, (size_t)C * sizeof *w), *t = ir_alloc(f->tmp, (size_t)C * sizeof *t);
    for (int64_t c = 0; c < C; c++) {
        double s = (double)gamma[c] / sqrt((double)var[c] + (double)b->attrs.bn.eps);
        w[c] = (float)s;
        t[c] = (float)((double)beta[c] - (double)mean[c] * s);
    }
    const char *name = b->name ? b->name : "batchnorm";
    SrcLoc loc = b->loc;
    int32_t wid = pass_add_param(g, f->names, ir_strfmt(f->tmp, "%s.weight.folded", name),
                                 ir_type_f32(4, (int64_t[]){C, 1, 1, 1}), w, loc);
    int32_t bid = pass_add_param(g, f->names, ir_strfmt(f->tmp, "%s.bias.folded", name),
                                 ir_type_f32(1, (int64_t[]){C}), t, loc);
    Node *n = &g->nodes[bn]; /* the array may have moved */
    for (int32_t k = 1; k < 5; k++)
        f->dead[n->inputs[k]] = true;
    int32_t *ins = ir_alloc(g->arena, 3 * sizeof *ins);
    ins[0] = n->inputs[0], ins[1] = wid, ins[2] = bid;
    n->op = OP_CONV2D;
    n->inputs = ins;
    n->ninputs = 3;
    memset(&n->attrs, 0, sizeof n->attrs);
    n->attrs.conv = (ConvAttrs){.kernel = {1, 1}, .stride = {1, 1}, .dilation = {1, 1},
                                .groups = (int32_t)C};
    return true;
}

bool pass_fold_bn(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)d;
    Arena *tmp = ir_arena_new();
    int32_t *uses = pass_use_counts(g, tmp);
    int32_t n = g->nnodes;
    /* Each fold adds two nodes at most, and marks the weights it replaces, which may
     * be those of a fold before (a conv followed by two batchnorms). */
    bool *dead = ir_alloc(tmp, 3 * (size_t)n + 1);
    bool changed = false;
    Folder f = {tmp, dead, uses, shared_buffers(g, tmp), n, pass_users(g, tmp),
                pass_name_set(g, tmp)};
    for (int32_t i = 0; i < n; i++) {
        int32_t conv = -1, scale = -1;
        if (g->nodes[i].op == OP_BATCHNORM)
            conv = bn_producer(g, uses, i);
        else if (g->nodes[i].op == OP_MUL)
            conv = mul_producer(g, uses, i, &scale);
        if (conv < 0) {
            if (g->nodes[i].op == OP_BATCHNORM && bn_to_depthwise(g, uses, i, opt->block, &f))
                changed = true;
            continue;
        }
        if (scale >= 0)
            fold_scale(g, i, conv, scale, &f);
        else
            fold_bn(g, i, conv, &f);
        uses[conv] = uses[i];
        dead[i] = changed = true;
    }
    if (changed) {
        /* The new weights were appended after their users: ids before the
         * sort are those of `dead` (a weight a fold made and a second replaced
         * among them). */
        bool *cand = ir_alloc(tmp, (size_t)g->nnodes + 1);
        memcpy(cand, dead, (size_t)g->nnodes);
        pass_remove_unused(g, cand);
        pass_toposort(g);
    }
    ir_arena_free(tmp);
    return true;
}
