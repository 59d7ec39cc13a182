/* fold_const.c: constant folding. A node whose inputs are all weights with
 * data is computed now, by the reference interpreter on a graph of just that
 * node, and becomes a weight itself (keeping its name and type). Weights it
 * leaves unused are removed. Nodes are visited in order, so chains fold. */
#include "passes.h"

#include <string.h>

static bool foldable(const Graph *g, int32_t id)
{
    const Node *n = &g->nodes[id];
    if (n->op == OP_INPUT || n->op == OP_PARAM || n->ninputs == 0)
        return false;
    for (int32_t k = 0; k < n->ninputs; k++) {
        const Node *in = &g->nodes[n->inputs[k]];
        if (in->op != OP_PARAM || !in->data)
            return false;
    }
    return true;
}

/* The value of node `id`, computed on a copy holding only it and its inputs. */
static bool evaluate(const Graph *g, int32_t id, float *out, Diag *d)
{
    const Node *n = &g->nodes[id];
    Graph *t = ir_graph_new("fold");
    int32_t *ins = ir_alloc(t->arena, (size_t)n->ninputs * sizeof *ins);
    for (int32_t k = 0; k < n->ninputs; k++) {
        const Node *p = &g->nodes[n->inputs[k]];
        ins[k] = ir_add_param(t, ir_strfmt(t->arena, "in%d", (int)k), p->type, p->loc);
        t->nodes[ins[k]].data = p->data;
    }
    int32_t y = ir_add_node(t, n->op, ins, n->ninputs, "y", n->loc);
    t->nodes[y].attrs = n->attrs;
    t->nodes[y].type = n->type;
    InterpResult r = {0};
    char err[256];
    bool ok = ir_interp(t, NULL, &r, err, sizeof err);
    if (ok)
        memcpy(out, r.values[y], (size_t)ir_numel(&n->type) * sizeof *out);
    else
        ir_error(d, n->loc, "cannot fold '%s' at compile time: %s", n->name ? n->name : "?",
                 err);
    ir_interp_free(&r);
    ir_graph_free(t);
    return ok;
}

bool pass_fold_const(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)opt;
    Arena *tmp = ir_arena_new();
    bool *cand = ir_alloc(tmp, (size_t)g->nnodes + 1), ok = true;
    for (int32_t i = 0; ok && i < g->nnodes; i++) {
        if (!foldable(g, i))
            continue;
        Node *n = &g->nodes[i];
        int64_t count = ir_numel(&n->type);
        float *data = ir_alloc(g->arena, (size_t)(count > 0 ? count : 1) * sizeof *data);
        ok = evaluate(g, i, data, d);
        for (int32_t k = 0; k < n->ninputs; k++)
            cand[n->inputs[k]] = true;
        n->op = OP_PARAM;
        n->ninputs = 0;
        n->inputs = NULL;
        ir_attrs_default(OP_PARAM, &n->attrs);
        n->type.layout = LAYOUT_PLAIN;
        n->type.block = 0;
        n->data = data;
    }
    pass_remove_unused(g, cand);
    ir_arena_free(tmp);
    return ok;
}
