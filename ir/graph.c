/* graph.c: building graphs. Nodes live in one array (grown by doubling inside
 * the graph's arena) and refer to their inputs by index, so a node can only
 * use nodes added before it and the array is always in topological order. */
#include "ir.h"

#include <string.h>

Graph *ir_graph_new(const char *name)
{
    Arena *a = ir_arena_new();
    Graph *g = ir_alloc(a, sizeof *g);
    g->arena = a;
    g->name = ir_strdup(a, name ? name : "graph");
    return g;
}

void ir_graph_free(Graph *g)
{
    if (g)
        ir_arena_free(g->arena);
}

/* The old array stays in the arena until the graph is freed; doubling keeps
 * the waste under the final size. */
static void grow_nodes(Graph *g)
{
    int32_t cap = g->capnodes ? g->capnodes * 2 : 64;
    Node *nodes = ir_alloc(g->arena, (size_t)cap * sizeof *nodes);
    if (g->nnodes)
        memcpy(nodes, g->nodes, (size_t)g->nnodes * sizeof *nodes);
    g->nodes = nodes;
    g->capnodes = cap;
}

int32_t ir_add_node(Graph *g, Op op, const int32_t *inputs, int32_t ninputs, const char *name,
                    SrcLoc loc)
{
    if (op < 0 || op >= OP_COUNT)
        ICE("bad op %d", (int)op);
    const OpInfo *info = &ir_ops[op];
    if (ninputs < info->min_inputs || (info->max_inputs >= 0 && ninputs > info->max_inputs))
        ICE("%s given %d inputs", info->name, (int)ninputs);
    for (int32_t i = 0; i < ninputs; i++)
        if (inputs[i] < 0 || inputs[i] >= g->nnodes)
            ICE("%s input %d refers to node %d of %d", info->name, (int)i, (int)inputs[i],
                (int)g->nnodes);
    if (g->nnodes == g->capnodes)
        grow_nodes(g);
    Node *n = &g->nodes[g->nnodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->ninputs = ninputs;
    if (ninputs > 0) {
        n->inputs = ir_alloc(g->arena, (size_t)ninputs * sizeof *n->inputs);
        memcpy(n->inputs, inputs, (size_t)ninputs * sizeof *n->inputs);
    }
    n->name = name ? ir_strdup(g->arena, name) : NULL;
    n->type.dtype = DT_INVALID;
    ir_attrs_default(op, &n->attrs);
    n->loc = loc;
    return g->nnodes++;
}

int32_t ir_add_input(Graph *g, const char *name, TensorType type, SrcLoc loc)
{
    int32_t id = ir_add_node(g, OP_INPUT, NULL, 0, name, loc);
    g->nodes[id].type = type;
    return id;
}

int32_t ir_add_param(Graph *g, const char *name, TensorType type, SrcLoc loc)
{
    int32_t id = ir_add_node(g, OP_PARAM, NULL, 0, name, loc);
    g->nodes[id].type = type;
    return id;
}

void ir_add_output(Graph *g, int32_t node, const char *name)
{
    if (node < 0 || node >= g->nnodes)
        ICE("output refers to node %d of %d", (int)node, (int)g->nnodes);
    if (g->noutputs == g->capoutputs) {
        int32_t cap = g->capoutputs ? g->capoutputs * 2 : 4;
        GraphOutput *outs = ir_alloc(g->arena, (size_t)cap * sizeof *outs);
        if (g->noutputs)
            memcpy(outs, g->outputs, (size_t)g->noutputs * sizeof *outs);
        g->outputs = outs;
        g->capoutputs = cap;
    }
    g->outputs[g->noutputs].node = node;
    g->outputs[g->noutputs].name = ir_strdup(g->arena, name ? name : "out");
    g->noutputs++;
}

int32_t ir_find_node(const Graph *g, const char *name)
{
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0)
            return i;
    return -1;
}

int32_t ir_num_inputs(const Graph *g)
{
    int32_t n = 0;
    for (int32_t i = 0; i < g->nnodes; i++)
        n += g->nodes[i].op == OP_INPUT;
    return n;
}

int32_t ir_input_node(const Graph *g, int32_t i)
{
    int32_t seen = 0;
    for (int32_t k = 0; k < g->nnodes; k++)
        if (g->nodes[k].op == OP_INPUT && seen++ == i)
            return k;
    ICE("graph has no input %d", (int)i);
}
