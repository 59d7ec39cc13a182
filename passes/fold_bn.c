/* fold_bn.c: folds an inference-mode batchnorm into the conv2d or dense that
 * feeds it. With s = gamma / sqrt(var + eps) per output channel o:
 *   W'[o, ...] = W[o, ...] * s[o],   b'[o] = (b[o] - mean[o]) * s[o] + beta[o]
 * computed in double. The new weights are new PARAMs ("<conv>.weight.folded",
 * "<conv>.bias.folded"); the old ones go when nothing else uses them. A
 * batchnorm after anything else stays as it is. */
#include "passes.h"

#include <math.h>
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

/* The conv2d/dense that batchnorm `bn` can be folded into, or -1. */
static int32_t foldable_producer(const Graph *g, const int32_t *uses, int32_t bn)
{
    const Node *n = &g->nodes[bn];
    int32_t p = n->inputs[0];
    const Node *prod = &g->nodes[p];
    if ((prod->op != OP_CONV2D && prod->op != OP_DENSE) || uses[p] != 1 || !no_epilogue(prod))
        return -1;
    if (prod->op == OP_DENSE && prod->type.rank != 2) /* its features are not batchnorm's dim 1 */
        return -1;
    for (int32_t k = 1; k < prod->ninputs; k++)
        if (!bound_param(g, prod->inputs[k]))
            return -1;
    for (int32_t k = 1; k < 5; k++)
        if (!bound_param(g, n->inputs[k]))
            return -1;
    return p;
}

typedef struct Folder {
    Arena *tmp;
    bool *dead;
    PassUsers *users;
    PassNames *names;
} Folder;

static void fold(Graph *g, int32_t bn, int32_t conv, const Folder *f)
{
    const Node *b = &g->nodes[bn], *c = &g->nodes[conv];
    const float *gamma = g->nodes[b->inputs[1]].data, *beta = g->nodes[b->inputs[2]].data;
    const float *mean = g->nodes[b->inputs[3]].data, *var = g->nodes[b->inputs[4]].data;
    const Node *w = &g->nodes[c->inputs[1]];
    const float *bias = c->ninputs == 3 ? g->nodes[c->inputs[2]].data : NULL;
    int64_t O = w->type.dims[0], per = ir_numel(&w->type) / O;
    float *nw = ir_alloc(f->tmp, (size_t)(O * per) * sizeof *nw);
    float *nb = ir_alloc(f->tmp, (size_t)O * sizeof *nb);
    double eps = (double)b->attrs.bn.eps;
    for (int64_t o = 0; o < O; o++) {
        double s = (double)gamma[o] / sqrt((double)var[o] + eps);
        for (int64_t i = 0; i < per; i++)
            nw[o * per + i] = (float)((double)w->data[o * per + i] * s);
        nb[o] = (float)(((bias ? (double)bias[o] : 0.0) - (double)mean[o]) * s + (double)beta[o]);
    }
    int64_t bdims[1] = {O};
    const char *cname = c->name ? c->name : "folded";
    TensorType wt = w->type;
    SrcLoc loc = c->loc;
    int32_t wid = pass_add_param(g, f->names, ir_strfmt(f->tmp, "%s.weight.folded", cname), wt, nw, loc);
    int32_t bid = pass_add_param(g, f->names, ir_strfmt(f->tmp, "%s.bias.folded", cname),
                                 ir_type_f32(1, bdims), nb, loc);
    Node *cn = &g->nodes[conv]; /* the array may have moved */
    for (int32_t k = 1; k < cn->ninputs; k++)
        f->dead[cn->inputs[k]] = true;
    int32_t *ins = ir_alloc(g->arena, 3 * sizeof *ins);
    ins[0] = cn->inputs[0];
    ins[1] = wid;
    ins[2] = bid;
    cn->inputs = ins;
    cn->ninputs = 3;
    pass_replace_uses(g, f->users, bn, conv);
}

bool pass_fold_bn(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)opt;
    (void)d;
    Arena *tmp = ir_arena_new();
    int32_t *uses = pass_use_counts(g, tmp);
    int32_t n = g->nnodes;
    bool *dead = ir_alloc(tmp, (size_t)n + 1);
    bool changed = false;
    Folder f = {tmp, dead, pass_users(g, tmp), pass_name_set(g, tmp)};
    for (int32_t i = 0; i < n; i++) {
        if (g->nodes[i].op != OP_BATCHNORM)
            continue;
        int32_t conv = foldable_producer(g, uses, i);
        if (conv < 0)
            continue;
        fold(g, i, conv, &f);
        uses[conv] = uses[i];
        dead[i] = changed = true;
    }
    if (changed) {
        /* The new weights were appended after their users: ids before the
         * sort are those of `dead`. */
        bool *cand = ir_alloc(tmp, (size_t)g->nnodes + 1);
        memcpy(cand, dead, (size_t)n);
        pass_remove_unused(g, cand);
        pass_toposort(g);
    }
    ir_arena_free(tmp);
    return true;
}
