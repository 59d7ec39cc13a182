/* layout.c: chooses how every 4-d value is stored. With block b (the
 * target's f32 lanes), channels are split into blocks of b innermost,
 * NCHW[b]c, so a kernel loads b output channels as one vector.
 *
 *   1. Forward over the nodes, decide each output's layout: conv2d is blocked
 *      when its channels divide by b; ops that work per channel or per element
 *      (pools, activations, batchnorm, same-shape add/mul, channel concat) and
 *      layernorm over the channels follow their inputs; everything else, and
 *      every non-4-d value, is plain.
 *   2. For every use, the layout the user reads (passes.h lists them) is
 *      compared with the producer's; where they differ a reorder is inserted,
 *      one per producer and layout, shared by its users. Graph outputs read plain.
 *   3. The reorders were appended, so the nodes are sorted again: each lands
 *      right before its first user.
 * Block 0 leaves every value plain. */
#include "passes.h"

typedef struct Lay {
    Graph *g;
    int32_t b;
    int32_t n0;        /* nodes before any reorder was added */
    int32_t *to_plain; /* per producer: its reorder to plain, or -1 */
    int32_t *to_block; /* per producer: its reorder to NCHW[b]c, or -1 */
    PassNames *names;
} Lay;

static bool is_blocked(const TensorType *t)
{
    return t->layout == LAYOUT_NCHWC;
}

static bool divides(int64_t c, int32_t b)
{
    return c % b == 0;
}

/* Whether conv2d `n` writes (and then reads) blocked values. */
static bool conv_blocks_output(const Lay *l, const Node *n)
{
    int64_t cin = l->g->nodes[n->inputs[0]].type.dims[1], cout = n->type.dims[1];
    int32_t groups = n->attrs.conv.groups;
    if (groups == 1)
        return divides(cout, l->b);
    if (groups == cin && cin == cout)
        return divides(cout, l->b);
    return divides(cin / groups, l->b) && divides(cout / groups, l->b);
}

static bool conv_reads_blocked(const Lay *l, const Node *n)
{
    return is_blocked(&n->type) && divides(l->g->nodes[n->inputs[0]].type.dims[1], l->b);
}

/* Ops that compute each channel on its own, in any channel order and block:
 * blocked when any data input is (the others are reordered to match). */
static bool follows_inputs(const Lay *l, const Node *n)
{
    bool any = false;
    for (int32_t k = 0; k < n->ninputs; k++) {
        const Node *in = &l->g->nodes[n->inputs[k]];
        if (in->op == OP_PARAM)
            continue;
        if (ir_ops[n->op].fusion == FC_BROADCAST && !ir_dims_eq(&in->type, &n->type))
            return false;
        if (n->op == OP_CONCAT && !divides(in->type.dims[1], l->b))
            return false;
        any |= is_blocked(&in->type);
    }
    return any;
}

static bool per_channel_op(const Node *n)
{
    if (n->op == OP_CONCAT)
        return n->attrs.axis.axis == 1 || n->attrs.axis.axis == -3;
    if (n->op == OP_LAYERNORM) /* over the channels: a block at a time */
        return n->type.rank == 4 && (n->attrs.norm.axis == 1 || n->attrs.norm.axis == -3);
    return ir_ops[n->op].flags & OF_CHANNELWISE;
}

static bool output_blocked(const Lay *l, const Node *n)
{
    if (n->type.rank != 4 || !divides(n->type.dims[1], l->b))
        return false;
    if (n->op == OP_CONV2D)
        return conv_blocks_output(l, n);
    return per_channel_op(n) && follows_inputs(l, n);
}

/* Whether `user` reads its input `k` blocked (only meaningful for 4-d inputs). */
static bool reads_blocked(const Lay *l, const Node *user, int32_t k)
{
    const Node *in = &l->g->nodes[user->inputs[k]];
    switch (user->op) {
    case OP_CONV2D:
        if (user->attrs.conv.epi.residual && k == user->ninputs - 1)
            return is_blocked(&user->type);
        return k == 0 && conv_reads_blocked(l, user);
    case OP_FLATTEN:
        return is_blocked(&in->type) && in->type.dims[2] == 1 && in->type.dims[3] == 1;
    default: return per_channel_op(user) && is_blocked(&user->type);
    }
}

static int32_t reorder_of(Lay *l, int32_t p, bool blocked)
{
    int32_t *slot = blocked ? &l->to_block[p] : &l->to_plain[p];
    if (*slot >= 0)
        return *slot;
    const Node *src = &l->g->nodes[p];
    const char *base = blocked ? ir_strfmt(l->g->arena, "%s.to_nchw%dc", src->name, (int)l->b)
                               : ir_strfmt(l->g->arena, "%s.to_plain", src->name);
    const char *name = pass_unique_name(l->g, l->names, base);
    SrcLoc loc = src->loc;
    TensorType t = src->type;
    int32_t r = ir_add_node(l->g, OP_REORDER, &p, 1, name, loc);
    t.layout = blocked ? LAYOUT_NCHWC : LAYOUT_PLAIN;
    t.block = blocked ? l->b : 0;
    l->g->nodes[r].type = t;
    *slot = r;
    return r;
}

/* Makes input k of node `id` arrive in the layout the node reads. */
static void fix_use(Lay *l, int32_t id, int32_t k)
{
    int32_t p = l->g->nodes[id].inputs[k];
    const Node *in = &l->g->nodes[p];
    if (in->op == OP_PARAM || in->type.rank != 4)
        return;
    bool want = reads_blocked(l, &l->g->nodes[id], k);
    if (want != is_blocked(&in->type)) {
        int32_t r = reorder_of(l, p, want);
        l->g->nodes[id].inputs[k] = r;
    }
}

bool pass_layout(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)d;
    if (opt->block <= 0)
        return true;
    Arena *tmp = ir_arena_new();
    Lay l = {g, opt->block, g->nnodes, NULL, NULL, pass_name_set(g, tmp)};
    l.to_plain = ir_alloc(tmp, ((size_t)g->nnodes + 1) * sizeof *l.to_plain);
    l.to_block = ir_alloc(tmp, ((size_t)g->nnodes + 1) * sizeof *l.to_block);
    for (int32_t i = 0; i < l.n0; i++) {
        Node *n = &g->nodes[i];
        l.to_plain[i] = l.to_block[i] = -1;
        bool blocked = n->op != OP_INPUT && n->op != OP_PARAM && output_blocked(&l, n);
        n->type.layout = blocked ? LAYOUT_NCHWC : LAYOUT_PLAIN;
        n->type.block = blocked ? l.b : 0;
    }
    for (int32_t i = 0; i < l.n0; i++)
        for (int32_t k = 0; k < g->nodes[i].ninputs; k++)
            fix_use(&l, i, k);
    for (int32_t i = 0; i < g->noutputs; i++)
        if (is_blocked(&g->nodes[g->outputs[i].node].type))
            g->outputs[i].node = reorder_of(&l, g->outputs[i].node, false);
    if (g->nnodes > l.n0)
        pass_toposort(g);
    ir_arena_free(tmp);
    return true;
}
