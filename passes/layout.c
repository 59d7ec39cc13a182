/* layout.c: chooses how every 4-d value is stored. With block b (the
 * target's f32 lanes), channels are split into blocks of b innermost,
 * NCHW[b]c, so a kernel loads b output channels as one vector. A value
 * whose channels b does not divide stays plain: its convolutions take
 * vectors of b pixels along the rows instead (conv_train.c's implicit GEMM),
 * which fills every lane, where blocks of b/2 or b/4 channels (24, 40, 72,
 * 120 of MobileNetV3 and EfficientNet; 116 and 232 of ShuffleNet) would use
 * half or a quarter of each vector and add reorders at every change of
 * block. With 16 lanes, 1 thread, batch 8: ShuffleNet V2 runs 1.9x as fast
 * plain, MobileNetV3 1.15x, EfficientNet-B0 1.08x.
 *
 *   1. Forward over the nodes, decide each output's layout: conv2d is blocked
 *      when its channels divide by b and its weight is a constant; ops that work per channel or per element
 *      (pools, activations, batchnorm, add/mul/sub/div of same-shape or per-channel
 *      [N, C, 1, 1] operands, channel concat) and
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

/* The block a value holds: 0 when plain. */
static int32_t block_of(const TensorType *t)
{
    return is_blocked(t) ? t->block : 0;
}

static bool divides(int64_t c, int32_t b)
{
    return b > 0 && c % b == 0;
}

/* The block for `c` channels: b, else 0 (plain). */
static int32_t block_for(const Lay *l, int64_t c)
{
    return divides(c, l->b) ? l->b : 0;
}

/* The block conv2d `n` writes (and reads its input in), 0: plain. Blocked
 * kernels pack their weights at compile time: a weight that is a value of the
 * graph (training) keeps the conv plain. */
static int32_t conv_block(const Lay *l, const Node *n)
{
    if (l->g->nodes[n->inputs[1]].op != OP_PARAM)
        return 0;
    int64_t cin = l->g->nodes[n->inputs[0]].type.dims[1], cout = n->type.dims[1];
    int32_t groups = n->attrs.conv.groups;
    if (groups == 1 || (groups == cin && cin == cout))
        return block_for(l, cout);
    int32_t b = block_for(l, cout / groups);
    return b && divides(cin / groups, b) ? b : 0;
}

/* The block conv2d `n` reads its input in. A conv with a plain output (its
 * channels no block divides) still reads the full blocks its producer wrote:
 * its kernel transposes tiles into the plain output, so no reorder is needed. */
static int32_t conv_input_block(const Lay *l, const Node *n)
{
    int32_t b = block_of(&n->type);
    const Node *x = &l->g->nodes[n->inputs[0]];
    if (!b && n->attrs.conv.groups == 1 && l->g->nodes[n->inputs[1]].op == OP_PARAM &&
        block_of(&x->type) == l->b && divides(x->type.dims[1], l->b))
        return l->b;
    return divides(x->type.dims[1], b) ? b : 0;
}

/* An operand of broadcasting op `n` that holds one value per channel, [N or
 * 1, C, 1, 1], against a larger output: the CPU kernel (eltwise.c) loads a
 * block of it per channel block, so the op can run blocked (the
 * squeeze-and-excitation scale of MobileNetV3 and EfficientNet, x · s). */
static bool per_channel_operand(const Node *n, const TensorType *in)
{
    return ir_ops[n->op].fusion == FC_BROADCAST && ir_is_per_channel(in, &n->type) &&
           !ir_dims_eq(in, &n->type);
}

/* Ops that compute each channel on its own, in any channel order and block:
 * blocked as their first blocked full-size data input (the others are
 * reordered to match), when every data input's channels divide by that block
 * and every other operand has the output's shape or is per channel. */
static int32_t follow_inputs(const Lay *l, const Node *n)
{
    int32_t b = 0;
    for (int32_t k = 0; k < n->ninputs && !b; k++) {
        const Node *in = &l->g->nodes[n->inputs[k]];
        if (in->op != OP_PARAM && !per_channel_operand(n, &in->type))
            b = block_of(&in->type);
    }
    if (!b || !divides(n->type.dims[1], b))
        return 0;
    for (int32_t k = 0; k < n->ninputs; k++) {
        const Node *in = &l->g->nodes[n->inputs[k]];
        if (in->op == OP_PARAM || per_channel_operand(n, &in->type))
            continue;
        if (ir_ops[n->op].fusion == FC_BROADCAST && !ir_dims_eq(&in->type, &n->type))
            return 0;
        if (n->op == OP_CONCAT && !divides(in->type.dims[1], b))
            return 0;
    }
    return b;
}

static bool per_channel_op(const Node *n)
{
    if (n->op == OP_CONCAT)
        return n->attrs.axis.axis == 1 || n->attrs.axis.axis == -3;
    if (n->op == OP_LAYERNORM) /* over the channels: a block at a time */
        return n->type.rank == 4 && (n->attrs.norm.axis == 1 || n->attrs.norm.axis == -3);
    return ir_ops[n->op].flags & OF_CHANNELWISE;
}

static int32_t output_block(const Lay *l, const Node *n)
{
    if (n->type.rank != 4)
        return 0;
    if (n->op == OP_CONV2D)
        return conv_block(l, n);
    return per_channel_op(n) ? follow_inputs(l, n) : 0;
}

/* The block in which `user` reads its input `k` (only meaningful for 4-d inputs), 0: plain. */
static int32_t read_block(const Lay *l, const Node *user, int32_t k)
{
    const Node *in = &l->g->nodes[user->inputs[k]];
    switch (user->op) {
    case OP_CONV2D:
        if (user->attrs.conv.epi.residual && k == user->ninputs - 1)
            return block_of(&user->type);
        return k == 0 ? conv_input_block(l, user) : 0;
    case OP_FLATTEN:
        return is_blocked(&in->type) && in->type.dims[2] == 1 && in->type.dims[3] == 1
                   ? in->type.block : 0;
    default: return per_channel_op(user) ? block_of(&user->type) : 0;
    }
}

static int32_t reorder_of(Lay *l, int32_t p, int32_t block)
{
    int32_t *slot = !block ? &l->to_plain[p] : &l->to_block[p];
    if (*slot >= 0)
        return *slot;
    const Node *src = &l->g->nodes[p];
    const char *base = block ? ir_strfmt(l->g->arena, "%s.to_nchw%dc", src->name, (int)block)
                             : ir_strfmt(l->g->arena, "%s.to_plain", src->name);
    const char *name = pass_unique_name(l->g, l->names, base);
    SrcLoc loc = src->loc;
    TensorType t = src->type;
    int32_t r = ir_add_node(l->g, OP_REORDER, &p, 1, name, loc);
    t.layout = block ? LAYOUT_NCHWC : LAYOUT_PLAIN;
    t.block = block;
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
    int32_t want = read_block(l, &l->g->nodes[id], k);
    if (want != block_of(&in->type)) {
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
    int32_t b = opt->block;
    Lay l = {g, b, g->nnodes, NULL, NULL, pass_name_set(g, tmp)};
    l.to_plain = ir_alloc(tmp, ((size_t)g->nnodes + 1) * sizeof *l.to_plain);
    l.to_block = ir_alloc(tmp, ((size_t)g->nnodes + 1) * sizeof *l.to_block);
    for (int32_t i = 0; i < l.n0; i++) {
        Node *n = &g->nodes[i];
        l.to_plain[i] = l.to_block[i] = -1;
        int32_t nb = n->op != OP_INPUT && n->op != OP_PARAM ? output_block(&l, n) : 0;
        n->type.layout = nb ? LAYOUT_NCHWC : LAYOUT_PLAIN;
        n->type.block = nb;
    }
    for (int32_t i = 0; i < l.n0; i++)
        for (int32_t k = 0; k < g->nodes[i].ninputs; k++)
            fix_use(&l, i, k);
    for (int32_t i = 0; i < g->noutputs; i++)
        if (is_blocked(&g->nodes[g->outputs[i].node].type))
            g->outputs[i].node = reorder_of(&l, g->outputs[i].node, 0);
    if (g->nnodes > l.n0)
        pass_toposort(g);
    ir_arena_free(tmp);
    return true;
}
