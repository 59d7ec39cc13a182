/* check_plan.c: validates a memory plan independently of how it was made:
 * every value has a place of the right kind, arena values are aligned and in
 * bounds, and no two values alive at the same time share a byte, except a
 * concat and the inputs written in place inside it, and an elementwise op and
 * the input it overwrites. */
#include "passes.h"

#include <stdlib.h>

static const char *name_of(const Node *n)
{
    return n->name ? n->name : "?";
}

/* inlined[i]: node i is computed inside a conv's kernel (ir_inlined_input). */
static bool *inlined_nodes(const Graph *g)
{
    bool *inl = ir_xcalloc((size_t)g->nnodes + 1, sizeof *inl);
    for (int32_t i = 0; i < g->nnodes; i++)
        if (ir_inlined_input(&g->nodes[i]) >= 0)
            inl[ir_inlined_input(&g->nodes[i])] = true;
    return inl;
}

static bool check_kind(const Graph *g, int32_t id, const bool *inlined, int32_t *ninputs,
                       Diag *d)
{
    const Node *n = &g->nodes[id];
    MemKind want = n->op == OP_PARAM ? MEM_WEIGHTS : n->op == OP_INPUT ? MEM_INPUT
                   : inlined[id]     ? MEM_INLINED
                                     : MEM_ARENA;
    bool ok = n->mem.kind == want || (want == MEM_ARENA && n->mem.kind == MEM_ALIAS &&
                                      n->ninputs >= 1);
    if (n->op == OP_INPUT && n->mem.index != (*ninputs)++)
        ok = false;
    if (!ok)
        ir_error(d, n->loc, "memory plan: '%s' (%s) has storage kind %d", name_of(n),
                 ir_ops[n->op].name, (int)n->mem.kind);
    return ok;
}

static bool check_bounds(const Graph *g, int32_t id, Diag *d)
{
    const Node *n = &g->nodes[id];
    PassSpan s = pass_span_of(n);
    bool view = n->mem.batch_stride != 0;
    bool ok = s.off >= 0 && pass_span_end(s) <= g->arena_bytes &&
              s.off % (view ? 4 : 64) == 0 && (!view || n->mem.batch_stride * 4 >= s.len);
    if (!ok)
        ir_error(d, n->loc, "memory plan: '%s' at offset %lld (%lld bytes) is misplaced in an "
                 "arena of %lld bytes", name_of(n), (long long)s.off,
                 (long long)(pass_span_end(s) - s.off), (long long)g->arena_bytes);
    return ok;
}

/* Last node reading each value, through aliases; graph outputs live to the end. */
static int32_t *last_uses(const Graph *g, int32_t *base)
{
    int32_t *last = ir_xcalloc((size_t)g->nnodes + 1, sizeof *last);
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        base[i] = n->mem.kind == MEM_ALIAS ? base[n->inputs[0]] : i;
        last[i] = i;
        for (int32_t k = 0; k < n->ninputs; k++)
            if (last[base[n->inputs[k]]] < i)
                last[base[n->inputs[k]]] = i;
        /* a conv reads the inputs of the input it computes */
        const Node *in = ir_inlined_input(n) >= 0 ? &g->nodes[n->inputs[0]] : NULL;
        for (int32_t k = 0; in && k < in->ninputs; k++)
            if (last[base[in->inputs[k]]] < i)
                last[base[in->inputs[k]]] = i;
    }
    for (int32_t i = 0; i < g->noutputs; i++)
        last[base[g->outputs[i].node]] = g->nnodes;
    return last;
}

static bool is_input_of(const Node *c, int32_t v)
{
    for (int32_t k = 0; k < c->ninputs; k++)
        if (c->inputs[k] == v)
            return true;
    return false;
}

/* An elementwise op b, or a conv2d b with residual a, may have the span of input a,
 * of which it is the last reader (pass_overwrites), if no other input of b reads a's
 * bytes (pass_input_shared). */
static bool overwritten(const Graph *g, const int32_t *base, const int32_t *last, int32_t a,
                        int32_t b)
{
    const Node *nb = &g->nodes[b];
    if (last[a] != b)
        return false;
    for (int32_t k = 0; k < nb->ninputs; k++)
        if (nb->inputs[k] == a && pass_overwrites(g, nb, k) && !pass_input_shared(base, nb, k)) {
            PassSpan sa = pass_span_of(&g->nodes[a]), sb = pass_span_of(nb);
            return sa.off == sb.off && sa.len == sb.len && sa.stride == sb.stride &&
                   sa.count == sb.count;
        }
    return false;
}

/* A concat and an input of it may share bytes when the input lies inside it. */
static bool in_place(const Graph *g, int32_t a, int32_t b)
{
    const Node *na = &g->nodes[a], *nb = &g->nodes[b];
    if (nb->op == OP_CONCAT && is_input_of(nb, a)) {
        const Node *t = na;
        na = nb;
        nb = t;
    }
    if (na->op != OP_CONCAT || !is_input_of(na, (int32_t)(nb - g->nodes)))
        return false;
    PassSpan c = pass_span_of(na), v = pass_span_of(nb);
    return v.off >= c.off && pass_span_end(v) <= pass_span_end(c);
}

static bool check_overlaps(const Graph *g, Diag *d)
{
    int32_t *base = ir_xcalloc((size_t)g->nnodes + 1, sizeof *base);
    int32_t *last = last_uses(g, base);
    bool ok = true;
    for (int32_t a = 0; a < g->nnodes; a++) {
        if (g->nodes[a].mem.kind != MEM_ARENA)
            continue;
        for (int32_t b = a + 1; b < g->nnodes && b <= last[a]; b++) {
            if (g->nodes[b].mem.kind != MEM_ARENA || in_place(g, a, b) ||
                overwritten(g, base, last, a, b) ||
                !pass_spans_overlap(pass_span_of(&g->nodes[a]), pass_span_of(&g->nodes[b])))
                continue;
            ir_error(d, g->nodes[b].loc, "memory plan: '%s' overwrites '%s', which is still "
                     "needed", name_of(&g->nodes[b]), name_of(&g->nodes[a]));
            ok = false;
        }
    }
    free(base);
    free(last);
    return ok;
}

bool pass_check_plan(const Graph *g, Diag *d)
{
    bool ok = true;
    int32_t ninputs = 0;
    bool *inlined = inlined_nodes(g);
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (!check_kind(g, i, inlined, &ninputs, d))
            ok = false;
        else if (n->mem.kind == MEM_ARENA && !check_bounds(g, i, d))
            ok = false;
    }
    free(inlined);
    return ok && check_overlaps(g, d);
}
