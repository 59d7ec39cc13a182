/* simplify.c: removes nodes that compute nothing at inference: dropout is the
 * identity, and a relu of a relu is the inner relu. Their users (and graph
 * outputs) are rewired to the value they would have copied. */
#include "passes.h"

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

bool pass_simplify(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)opt;
    (void)d;
    Arena *tmp = ir_arena_new();
    bool *dead = ir_alloc(tmp, (size_t)g->nnodes + 1);
    PassUsers *users = pass_users(g, tmp);
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
