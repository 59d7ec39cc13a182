/* clone.c: deep copies of graphs. A copy owns everything it refers to (node
 * arrays, names, file names of locations, parameter data) in its own arena, so
 * passes may rewrite it while the original stays as it was. */
#include "ir.h"

#include <string.h>

/* File names of locations are shared by many nodes: each is copied once. */
typedef struct FileMap {
    const char *from, *to;
    struct FileMap *link;
} FileMap;

static const char *copy_file(Arena *a, FileMap **files, const char *file)
{
    if (!file)
        return NULL;
    FileMap *f = *files;
    while (f && f->from != file)
        f = f->link;
    if (!f) {
        f = ir_alloc(a, sizeof *f);
        f->from = file;
        f->to = ir_strdup(a, file);
        f->link = *files;
        *files = f;
    }
    return f->to;
}

static void copy_node(Graph *c, const Node *from, Node *to, FileMap **files)
{
    *to = *from;
    if (from->ninputs > 0) {
        to->inputs = ir_alloc(c->arena, (size_t)from->ninputs * sizeof *to->inputs);
        memcpy(to->inputs, from->inputs, (size_t)from->ninputs * sizeof *to->inputs);
    }
    to->name = from->name ? ir_strdup(c->arena, from->name) : NULL;
    to->loc.file = copy_file(c->arena, files, from->loc.file);
    if (from->data) {
        size_t bytes = (size_t)ir_numel(&from->type) * sizeof(float);
        to->data = ir_alloc(c->arena, bytes + 1);
        memcpy(to->data, from->data, bytes);
    }
}

Graph *ir_graph_clone(const Graph *g)
{
    Graph *c = ir_graph_new(g->name);
    FileMap *files = NULL;
    if (g->nnodes > 0) {
        c->capnodes = g->nnodes;
        c->nodes = ir_alloc(c->arena, (size_t)g->nnodes * sizeof *c->nodes);
        for (int32_t i = 0; i < g->nnodes; i++)
            copy_node(c, &g->nodes[i], &c->nodes[i], &files);
        c->nnodes = g->nnodes;
    }
    for (int32_t i = 0; i < g->noutputs; i++)
        ir_add_output(c, g->outputs[i].node, g->outputs[i].name);
    c->arena_bytes = g->arena_bytes;
    return c;
}
