/* simplify.c: removes nodes that compute nothing at inference: dropout is the
 * identity, and a relu of a relu is the inner relu. Their users (and graph
 * outputs) are rewired to the value they would have copied.
 *
 * It also pools before a pointwise conv rather than after: avgpool(conv1x1(x))
 * is conv1x1(avgpool(x)), since an average of affine maps is the map of the
 * average, and the conv then runs on a quarter of the pixels (DenseNet's
 * transitions: a 2×2 pool after each 1×1 conv). */
#include "passes.h"

#include <string.h>

/* The node whose value equals node `id`'s, or -1 if it computes something. */
static int32_t same_value_as(const Graph *g, int32_t id)
{
    const Node *n = &g->nodes[id];
    switch (n->op) {
    case OP_DROPOUT: return n->inputs[0];
    case OP_RELU: return g->nodes[n->inputs[0]].op == OP_RELU ? n->inputs[0] : -1;
    default: return -1;
    }
}

/* Whether avgpool `p` reads a 1×1, stride-1, unpadded conv2d without epilogue that
 * nothing else reads, and averages whole windows of it (no padding, dilation or
 * partial windows), so the two can trade places. */
static bool pool_commutes(const Graph *g, const int32_t *uses, int32_t p)
{
    const Node *pool = &g->nodes[p];
    if (pool->op != OP_AVGPOOL || pool->type.rank != 4)
        return false;
    const PoolAttrs *a = &pool->attrs.pool;
    const Node *c = &g->nodes[pool->inputs[0]];
    if (c->op != OP_CONV2D || uses[pool->inputs[0]] != 1 || a->dilation[0] != 1 ||
        a->dilation[1] != 1 || a->pad[0] || a->pad[1] || a->pad[2] || a->pad[3])
        return false;
    for (int32_t i = 0; i < 2; i++)
        if ((c->type.dims[2 + i] - a->kernel[i]) % a->stride[i])
            return false;
    const ConvAttrs *k = &c->attrs.conv;
    static const Epilogue none;
    return k->kernel[0] == 1 && k->kernel[1] == 1 && k->stride[0] == 1 && k->stride[1] == 1 &&
           !k->pad[0] && !k->pad[1] && !k->pad[2] && !k->pad[3] &&
           !memcmp(&k->epi, &none, sizeof none);
}

/* conv(x) -> pool becomes pool(x) -> conv, the nodes keeping their names (their
 * shapes are inferred again once the graph is in order). */
static void pool_first(Graph *g, PassUsers *users, int32_t p)
{
    int32_t c = g->nodes[p].inputs[0];
    pass_replace_uses(g, users, p, c);
    g->nodes[p].inputs[0] = g->nodes[c].inputs[0];
    g->nodes[c].inputs[0] = p;
}

bool pass_simplify(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)opt;
    Arena *tmp = ir_arena_new();
    bool *dead = ir_alloc(tmp, (size_t)g->nnodes + 1);
    int32_t *uses = pass_use_counts(g, tmp);
    PassUsers *users = pass_users(g, tmp);
    bool moved = false;
    for (int32_t i = 0; i < g->nnodes; i++)
        if (pool_commutes(g, uses, i)) {
            pool_first(g, users, i);
            uses = pass_use_counts(g, tmp); /* the edges moved */
            users = pass_users(g, tmp);
            moved = true;
        }
    if (moved) {
        pass_toposort(g);
        if (!ir_infer_shapes(g, d))
            ICE("the graph does not infer with pools before their convs");
        users = pass_users(g, tmp);
    }
    for (int32_t i = 0; i < g->nnodes; i++) {
        int32_t to = same_value_as(g, i);
        if (to < 0)
            continue;
        pass_replace_uses(g, users, i, to);
        dead[i] = true;
    }
    pass_remove_unused(g, dead);
    ir_arena_free(tmp);
    return true;
}
