/* simplify.c: removes nodes that compute nothing at inference: dropout is the
 * identity, as is a pad of nothing (ONNX exports put one before each of
 * DenseNet's average pools), and a relu of a relu is the inner relu. Their
 * users (and graph outputs) are rewired to the value they would have copied.
 * A pool of a pad pads by itself (below).
 *
 * It also pools before a pointwise conv rather than after: avgpool(conv1x1(x))
 * is conv1x1(avgpool(x)), since an average of affine maps is the map of the
 * average, and the conv then runs on a quarter of the pixels (DenseNet's
 * transitions: a 2×2 pool after each 1×1 conv).
 *
 * A concat of one value is that value, and a concat whose first inputs are
 * those of another concat reads that concat instead: torchvision's DenseNet
 * (and its ONNX export) concatenates every earlier feature map anew in each
 * layer, concat(x, a), concat(x, a, b), ..., which becomes concat(concat(x, a),
 * b): the chain the memory planner lays out as one buffer that each layer
 * writes its channels into, where the flat form copies all earlier channels
 * once per layer. */
#include "passes.h"

#include <math.h>
#include <string.h>

/* The node whose value equals node `id`'s, or -1 if it computes something. */
static int32_t same_value_as(const Graph *g, int32_t id)
{
    const Node *n = &g->nodes[id];
    switch (n->op) {
    case OP_DROPOUT: return n->inputs[0];
    case OP_RELU: return g->nodes[n->inputs[0]].op == OP_RELU ? n->inputs[0] : -1;
    case OP_CONCAT: return n->ninputs == 1 ? n->inputs[0] : -1;
    case OP_PAD: {
        const int32_t *p = n->attrs.pad.pad;
        return p[0] || p[1] || p[2] || p[3] ? -1 : n->inputs[0];
    }
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

/* A pool of an explicit pad becomes the pool padding by itself, where that computes the
 * same: an average pool of a zero pad counts the zeros (count_include_pad), a max pool of
 * a -inf pad ignores them (ONNX exports of Inception pad before each 3×3 average pool).
 * Not with ceil_mode, whose extra windows would reach past the pad, nor when the pool's
 * pads would exceed half its window. The pad goes if nothing else reads it (`dead`). */
static void pad_into_pool(Graph *g, bool *dead)
{
    for (int32_t i = 0; i < g->nnodes; i++) {
        Node *pool = &g->nodes[i];
        if ((pool->op != OP_AVGPOOL && pool->op != OP_MAXPOOL) || pool->type.rank != 4)
            continue;
        int32_t pid = pool->inputs[0];
        const Node *pad = &g->nodes[pid];
        PoolAttrs *a = &pool->attrs.pool;
        float fill = pool->op == OP_AVGPOOL ? 0.0f : -INFINITY;
        if (pad->op != OP_PAD || pad->attrs.pad.value != fill || a->ceil_mode ||
            a->pad[0] || a->pad[1] || a->pad[2] || a->pad[3])
            continue;
        bool fits = true;
        for (int32_t k = 0; k < 4; k++)
            fits = fits && 2 * (int64_t)pad->attrs.pad.pad[k] <=
                               (int64_t)a->dilation[k % 2] * (a->kernel[k % 2] - 1) + 1;
        if (!fits)
            continue;
        memcpy(a->pad, pad->attrs.pad.pad, sizeof a->pad);
        if (pool->op == OP_AVGPOOL)
            a->count_include_pad = true;
        pool->inputs[0] = pad->inputs[0];
        dead[pid] = true;
    }
}

/* The live concat before `id`, on its axis, whose inputs are the first of
 * concat `id`'s, the most of them (at least two, and fewer than all), or -1.
 * Such a concat reads `id`'s first input, so only that input's users are searched,
 * the first MAX_CANDIDATES of them: a DenseNet block has a few dozen, and a
 * graph of many thousand concats of one value stays linear. */
#define MAX_CANDIDATES 1024

static int32_t longest_prefix(const Graph *g, const PassUsers *users, const bool *dead,
                              int32_t id)
{
    const Node *c = &g->nodes[id];
    int32_t best = -1, best_n = 1, seen = 0;
    PASS_FOR_USERS(users, c->inputs[0], e) {
        if (++seen > MAX_CANDIDATES)
            break;
        int32_t j = users->user[e];
        const Node *p = &g->nodes[j];
        if (j >= id || dead[j] || p->op != OP_CONCAT || p->ninputs <= best_n ||
            p->ninputs >= c->ninputs || ir_node_axis(p) != ir_node_axis(c) ||
            p->type.rank != c->type.rank)
            continue;
        int32_t k = 0;
        while (k < p->ninputs && p->inputs[k] == c->inputs[k])
            k++;
        if (k == p->ninputs)
            best = j, best_n = k;
    }
    return best;
}

/* concat(x1..xm, ..., xn) becomes concat(P, x(m+1)..xn) where P = concat(x1..xm); the
 * inputs shrink in place. Last concat first, so that the concats it may read still have
 * the inputs they were written with (and `users`, made before, still holds). */
static void chain_concats(Graph *g, const PassUsers *users, const bool *dead)
{
    for (int32_t i = g->nnodes - 1; i >= 0; i--) {
        Node *c = &g->nodes[i];
        if (c->op != OP_CONCAT || dead[i] || c->ninputs < 3)
            continue;
        int32_t p = longest_prefix(g, users, dead, i);
        if (p < 0)
            continue;
        int32_t m = g->nodes[p].ninputs;
        c->inputs[0] = p;
        memmove(c->inputs + 1, c->inputs + m, (size_t)(c->ninputs - m) * sizeof *c->inputs);
        c->ninputs -= m - 1;
    }
}

bool pass_simplify(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)opt;
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
    pad_into_pool(g, dead);
    chain_concats(g, users, dead);
    pass_remove_unused(g, dead);
    /* then pools before convs, which an identity between them (a pad) hid */
    int32_t *uses = pass_use_counts(g, tmp);
    users = pass_users(g, tmp);
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
    }
    ir_arena_free(tmp);
    return true;
}
