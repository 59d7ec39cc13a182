/* channels_first.c: removes a channels-last detour. PyTorch code (ConvNeXt's
 * blocks, models exported to ONNX) often permutes NCHW to NHWC, applies
 * layers over the last dim, and permutes back:
 *
 *   x -> transpose[0,2,3,1] -> (layernorm over the last dim | dense over the
 *        last dim | activation | dropout)* -> transpose[0,3,1,2]
 *
 * The same layers over dim 1 compute the same values without either transpose,
 * and dense over dim 1 becomes a 1×1 conv2d (pass lower), which the fusion,
 * layout and convolution kernels handle best. The chain is rewritten when each
 * value in it has its next layer as its only user. */
#include "passes.h"

static const int32_t TO_LAST[4] = {0, 2, 3, 1};
static const int32_t TO_FIRST[4] = {0, 3, 1, 2};

static bool is_transpose(const Graph *g, int32_t id, const int32_t perm[4])
{
    const Node *n = &g->nodes[id];
    if (n->op != OP_TRANSPOSE || n->type.rank != 4)
        return false;
    for (int32_t i = 0; i < 4; i++)
        if (n->attrs.perm.perm[i] != perm[i])
            return false;
    return true;
}

static int32_t last_axis(int32_t axis, int32_t rank)
{
    return axis < 0 ? axis + rank : axis;
}

/* Whether node `id` computes along the last dim of a 4-d value only (or
 * elementwise), reading it as input 0 and nothing else of that shape. */
static bool moves_along(const Graph *g, int32_t id)
{
    const Node *n = &g->nodes[id];
    if (ir_op_is_act(n->op) || n->op == OP_DROPOUT)
        return n->ninputs == 1;
    if (n->op == OP_LAYERNORM)
        return last_axis(n->attrs.norm.axis, 4) == 3;
    if (n->op == OP_DENSE)
        return last_axis(n->attrs.dense.axis, 4) == 3 && ir_residual_input(n) < 0;
    return false;
}

/* The one user of `id`, or -1 when it has none or several (graph outputs count). */
static int32_t only_user(const PassUsers *u, const int32_t *uses, int32_t id)
{
    if (uses[id] != 1)
        return -1;
    PASS_FOR_USERS(u, id, e)
        return u->user[e];
    return -1;
}

/* Rewrites the chain from transpose `t1` if it ends in the transpose back;
 * returns whether it did. */
static bool rewrite(Graph *g, PassUsers *u, const int32_t *uses, int32_t t1, bool *dead, Diag *d)
{
    int32_t chain[256], len = 0, cur = t1, next;
    while ((next = only_user(u, uses, cur)) >= 0 && moves_along(g, next) &&
           g->nodes[next].inputs[0] == cur && len < 256) {
        chain[len++] = next;
        cur = next;
    }
    next = only_user(u, uses, cur);
    if (next < 0 || !is_transpose(g, next, TO_FIRST))
        return false;
    int32_t x = g->nodes[t1].inputs[0];
    for (int32_t k = 0; k < len; k++) {
        Node *n = &g->nodes[chain[k]];
        n->inputs[0] = k ? chain[k - 1] : x;
        if (n->op == OP_LAYERNORM)
            n->attrs.norm.axis = 1;
        if (n->op == OP_DENSE)
            n->attrs.dense.axis = 1;
        if (!ir_infer_node(g, chain[k], d))
            ICE("'%s' does not infer over the channels", n->name);
    }
    pass_replace_uses(g, u, next, len ? chain[len - 1] : x);
    dead[t1] = dead[next] = true;
    return true;
}

bool pass_channels_first(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)opt;
    /* Nodes no output needs would count as users: an ONNX import leaves the Div of
     * GELU's pattern that its gelu replaced reading the dense before it. */
    pass_remove_unused(g, NULL);
    Arena *tmp = ir_arena_new();
    int32_t *uses = pass_use_counts(g, tmp);
    PassUsers *u = pass_users(g, tmp);
    bool *dead = ir_alloc(tmp, (size_t)g->nnodes + 1);
    bool any = false;
    for (int32_t i = 0; i < g->nnodes; i++)
        if (is_transpose(g, i, TO_LAST) && !dead[i])
            any |= rewrite(g, u, uses, i, dead, d);
    if (any)
        pass_remove_unused(g, dead);
    ir_arena_free(tmp);
    return true;
}
