/* plan_print.c: the memory plan in readable form (cnnc --emit=plan): where
 * every value lives, how many bytes it takes, and the schedule steps between
 * its definition and its last use. */
#include "passes.h"

#include <stdlib.h>

static const char *mem_kind_name(MemKind k)
{
    switch (k) {
    case MEM_UNPLANNED: return "unplanned";
    case MEM_ARENA: return "arena";
    case MEM_INPUT: return "input";
    case MEM_OUTPUT: return "output";
    case MEM_WEIGHTS: return "weights";
    case MEM_ALIAS: return "alias";
    case MEM_INLINED: return "inlined";
    }
    ICE("bad memory kind %d", (int)k);
}

/* Per node, the index of the last node reading it (the graph's end for an output,
 * itself when nothing reads it), in one pass; a conv reads the inputs of the input it
 * computes (ir_inlined_input). */
static int32_t *last_uses(const Graph *g)
{
    int32_t *last = ir_xmalloc(((size_t)g->nnodes + 1) * sizeof *last);
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        last[i] = i;
        for (int32_t k = 0; k < n->ninputs; k++)
            last[n->inputs[k]] = i;
        const Node *in = ir_inlined_input(n) >= 0 ? &g->nodes[n->inputs[0]] : NULL;
        for (int32_t k = 0; in && k < in->ninputs; k++)
            last[in->inputs[k]] = i;
    }
    for (int32_t k = 0; k < g->noutputs; k++)
        last[g->outputs[k].node] = g->nnodes;
    return last;
}

void pass_print_plan(const Graph *g, FILE *out)
{
    int64_t total = pass_plan_total_bytes(g);
    fprintf(out, "# memory plan of %s: arena %.2f MiB, %.2f MiB if every value had its own buffer\n",
            g->name, (double)g->arena_bytes / (1 << 20), (double)total / (1 << 20));
    fprintf(out, "arena_bytes %lld\ntotal_bytes %lld\n", (long long)g->arena_bytes,
            (long long)total);
    fprintf(out, "%-6s %-36s %-14s %-8s %12s %12s  %s\n", "node", "name", "op", "where", "offset",
            "bytes", "live");
    int32_t *lasts = last_uses(g);
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (n->op == OP_PARAM) continue;
        char type[128];
        int64_t bytes = ir_numel(&n->type) * (int64_t)ir_dtype_size(n->type.dtype);
        int32_t last = lasts[i];
        fprintf(out, "%%%-5d %-36s %-14s %-8s %12lld %12lld  %d..%s", i, n->name,
                ir_op_label(n),
                mem_kind_name(n->mem.kind),
                n->mem.kind == MEM_ARENA ? (long long)n->mem.offset : 0LL, (long long)bytes, i,
                last == g->nnodes ? "end" : "");
        if (last < g->nnodes) fprintf(out, "%d", last);
        fprintf(out, "  %s\n", ir_type_str(&n->type, type, sizeof type));
    }
    free(lasts);
}
