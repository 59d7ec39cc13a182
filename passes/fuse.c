/* fuse.c: operator fusion, driven by fusion classes (ir_ops[op].fusion), not
 * by lists of patterns. A conv2d or dense (FC_OUT_FUSABLE) computes
 *   out = post(act(conv + bias) + residual)
 * in its one pass over the output, so it can take over the elementwise ops
 * that follow it:
 *
 *   conv ─► relu ─► add ─► relu        conv{act=relu, residual, post=relu}(x, w, b, r)
 *                    ▲            ═►
 *   r ───────────────┘
 *
 * 1. Every FC_OUT_FUSABLE node absorbs the FC_ELEMWISE activation that is its
 *    only user into `act`, and a second one after that into `post`.
 * 2. Every FC_BROADCAST add of two operands of its own shape is absorbed into
 *    an operand that is FC_OUT_FUSABLE, used only by the add and without
 *    residual or post yet; the other operand becomes the residual (last
 *    input). Of two such operands the later one is chosen, so the residual is
 *    already computed before it. Then an activation after the add goes to
 *    `post`.
 * A node is absorbed only when its one use is the fusing node, so no value
 * anyone else reads disappears. If a residual comes later in node order than
 * its conv, the graph is sorted again at the end. */
#include "passes.h"

typedef struct Fuser {
    Graph *g;
    int32_t *uses;
    PassUsers *users;
    bool *dead;
    bool resort;
} Fuser;

/* The activation a node computes, with its parameters; OP_NO_ACT if none. */
static Op act_of(const Node *n, float *a, float *b)
{
    ir_act_params(n, a, b);
    return ir_op_is_act(n->op) ? n->op : OP_NO_ACT;
}

/* The one node that uses `id`, or -1 (several uses, or a graph output). */
static int32_t sole_user(const Fuser *f, int32_t id)
{
    if (f->uses[id] != 1)
        return -1;
    PASS_FOR_USERS(f->users, id, e) {
        int32_t i = f->users->user[e];
        for (int32_t k = 0; k < f->g->nodes[i].ninputs; k++)
            if (f->g->nodes[i].inputs[k] == id && !f->dead[i])
                return i;
    }
    return -1;
}

/* Node `id` takes over `user`'s value: users and outputs of `user` now read it. */
static void absorb(Fuser *f, int32_t id, int32_t user)
{
    pass_replace_uses(f->g, f->users, user, id);
    f->uses[id] = f->uses[user];
    f->dead[user] = true;
}

/* Absorbs the activation after `id` into *kind; false if there is none. */
static bool take_activation(Fuser *f, int32_t id, Op *kind, float *a, float *b)
{
    int32_t user = sole_user(f, id);
    if (user < 0 || *kind != OP_NO_ACT)
        return false;
    Op k = act_of(&f->g->nodes[user], a, b);
    if (k == OP_NO_ACT)
        return false;
    *kind = k;
    absorb(f, id, user);
    return true;
}

static void fuse_activations(Fuser *f, int32_t id)
{
    Epilogue *e = ir_epilogue(&f->g->nodes[id]);
    if (e->residual || !take_activation(f, id, &e->act, &e->act_a, &e->act_b))
        return;
    int32_t next = sole_user(f, id);
    if (next >= 0 && act_of(&f->g->nodes[next], &e->post_a, &e->post_b) != OP_NO_ACT)
        take_activation(f, id, &e->post, &e->post_a, &e->post_b);
}

static bool can_take_residual(const Fuser *f, int32_t id, int32_t add)
{
    Node *n = &f->g->nodes[id];
    if (ir_ops[n->op].fusion != FC_OUT_FUSABLE || f->uses[id] != 1 || sole_user(f, id) != add)
        return false;
    Epilogue *e = ir_epilogue(n);
    return !e->residual && e->post == OP_NO_ACT;
}

static void fuse_add(Fuser *f, int32_t add)
{
    Graph *g = f->g;
    int32_t p = g->nodes[add].inputs[0], q = g->nodes[add].inputs[1];
    if (!ir_dims_eq(&g->nodes[p].type, &g->nodes[add].type) ||
        !ir_dims_eq(&g->nodes[q].type, &g->nodes[add].type))
        return;
    bool tp = can_take_residual(f, p, add), tq = can_take_residual(f, q, add);
    if (!tp && !tq)
        return;
    int32_t conv = tp && (!tq || p > q) ? p : q, r = conv == p ? q : p;
    Node *n = &g->nodes[conv];
    int32_t *ins = ir_alloc(g->arena, ((size_t)n->ninputs + 1) * sizeof *ins);
    for (int32_t k = 0; k < n->ninputs; k++)
        ins[k] = n->inputs[k];
    ins[n->ninputs] = r;
    n->inputs = ins;
    n->ninputs++;
    Epilogue *e = ir_epilogue(n);
    e->residual = true;
    f->resort |= r > conv;
    absorb(f, conv, add);
    take_activation(f, conv, &e->post, &e->post_a, &e->post_b);
}

bool pass_fuse(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)opt;
    (void)d;
    Arena *tmp = ir_arena_new();
    Fuser f = {g, pass_use_counts(g, tmp), pass_users(g, tmp), ir_alloc(tmp, (size_t)g->nnodes + 1),
               false};
    for (int32_t i = 0; i < g->nnodes; i++)
        if (ir_ops[g->nodes[i].op].fusion == FC_OUT_FUSABLE && !f.dead[i])
            fuse_activations(&f, i);
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_ADD && !f.dead[i])
            fuse_add(&f, i);
    pass_remove_unused(g, f.dead);
    if (f.resort)
        pass_toposort(g);
    ir_arena_free(tmp);
    return true;
}
