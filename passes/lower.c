/* lower.c: rewrites ops that the backends take in one form only. A dense
 * over a dim other than the last (PyTorch's Linear on channels-last values
 * written over the channels of NCHW, say) becomes:
 *   - over dim 1 of a 4-d value: a 1×1 conv2d, its [O, I] weight retyped
 *     [O, I, 1, 1] (the same bytes);
 *   - otherwise: a transpose that makes the dim last, the dense, and the
 *     transpose back.
 * Backends then see dense only over the last dim. */
#include "passes.h"

static int32_t dense_axis(const Graph *g, const Node *n)
{
    int32_t rank = g->nodes[n->inputs[0]].type.rank;
    return n->attrs.dense.axis < 0 ? n->attrs.dense.axis + rank : n->attrs.dense.axis;
}

/* The weight of conv `id` as [O, I, 1, 1]: retyped in place when the conv is
 * its only user, else a new parameter sharing its data. */
static void weight_as_1x1(Graph *g, const int32_t *uses, PassNames *names, int32_t id)
{
    int32_t w = g->nodes[id].inputs[1];
    TensorType t = g->nodes[w].type;
    t.rank = 4;
    t.dims[2] = t.dims[3] = 1;
    if (uses[w] == 1) {
        g->nodes[w].type = t;
        return;
    }
    const char *name = pass_unique_name(g, names, ir_strfmt(g->arena, "%s.oihw", g->nodes[w].name));
    int32_t p = ir_add_param(g, name, t, g->nodes[w].loc);
    g->nodes[p].data = g->nodes[w].data;
    g->nodes[id].inputs[1] = p;
}

static void to_conv(Graph *g, const int32_t *uses, PassNames *names, int32_t id)
{
    Node *n = &g->nodes[id];
    Epilogue epi = n->attrs.dense.epi;
    n->op = OP_CONV2D;
    ir_attrs_default(OP_CONV2D, &n->attrs);
    n->attrs.conv.epi = epi;
    weight_as_1x1(g, uses, names, id);
}

/* dense over `axis` as transpose(axis last) -> dense -> transpose back; the
 * node keeps its index and name as the last transpose. */
static bool via_transposes(Graph *g, PassNames *names, int32_t id, int32_t axis, Diag *d)
{
    Node *n = &g->nodes[id];
    if (ir_residual_input(n) >= 0) {
        ir_error(d, n->loc, "dense over dim %d with a fused residual is not supported", (int)axis);
        return false;
    }
    int32_t rank = n->type.rank;
    Attrs to_last, back;
    ir_attrs_default(OP_TRANSPOSE, &to_last);
    ir_attrs_default(OP_TRANSPOSE, &back);
    for (int32_t i = 0, k = 0; i < rank; i++)
        if (i != axis)
            to_last.perm.perm[k++] = i;
    to_last.perm.perm[rank - 1] = axis;
    for (int32_t i = 0; i < rank; i++)
        back.perm.perm[to_last.perm.perm[i]] = i;
    SrcLoc loc = n->loc;
    const char *base = n->name;
    int32_t x = n->inputs[0];
    int32_t t = ir_add_node(g, OP_TRANSPOSE, &x, 1,
                            pass_unique_name(g, names, ir_strfmt(g->arena, "%s.to_last", base)), loc);
    g->nodes[t].attrs = to_last;
    ir_infer_node(g, t, d);
    n = &g->nodes[id];
    int32_t in[4];
    for (int32_t k = 0; k < n->ninputs; k++)
        in[k] = n->inputs[k];
    in[0] = t;
    Attrs da = n->attrs;
    da.dense.axis = -1;
    int32_t dn = ir_add_node(g, OP_DENSE, in, n->ninputs,
                             pass_unique_name(g, names, ir_strfmt(g->arena, "%s.last", base)), loc);
    g->nodes[dn].attrs = da;
    ir_infer_node(g, dn, d);
    n = &g->nodes[id];
    n->op = OP_TRANSPOSE;
    n->ninputs = 1;
    n->inputs[0] = dn;
    n->attrs = back;
    return true;
}

bool pass_lower(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)opt;
    Arena *tmp = ir_arena_new();
    int32_t *uses = pass_use_counts(g, tmp);
    PassNames *names = pass_name_set(g, tmp);
    int32_t n0 = g->nnodes;
    bool ok = true, moved = false;
    for (int32_t i = 0; i < n0 && ok; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_DENSE)
            continue;
        int32_t axis = dense_axis(g, n), rank = n->type.rank;
        if (axis == rank - 1)
            continue;
        if (rank == 4 && axis == 1) {
            int32_t before = g->nnodes;
            to_conv(g, uses, names, i);
            moved |= g->nnodes > before;
        } else {
            ok = via_transposes(g, names, i, axis, d);
            moved = true;
        }
    }
    if (moved)
        pass_toposort(g);
    ir_arena_free(tmp);
    return ok;
}
