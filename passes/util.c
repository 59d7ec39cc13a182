/* util.c: graph surgery shared by the passes. Nodes refer to each other by
 * index, so removing or moving nodes means rebuilding the array and renumbering
 * every input and output; that happens here and nowhere else. */
#include "passes.h"

#include <string.h>

bool pass_blocked_as(const TensorType *t, int32_t b)
{
    return t->rank == 4 && t->layout == LAYOUT_NCHWC && t->block == b;
}

static bool bound(const Graph *g, int32_t id)
{
    return g->nodes[id].op == OP_PARAM && g->nodes[id].data;
}

bool pass_constant_params(const Graph *g, const Node *n)
{
    int32_t bias = ir_bias_input(n);
    return n->ninputs >= 2 && bound(g, n->inputs[1]) && (bias < 0 || bound(g, n->inputs[bias]));
}

bool pass_fusion_pays(const Graph *g, int32_t id)
{
    const TensorType *t = &g->nodes[g->nodes[id].inputs[0]].type;
    return ir_numel(t) * (int64_t)sizeof(float) >= PASS_FUSE_MIN_BYTES;
}

int32_t *pass_use_counts(const Graph *g, Arena *a)
{
    int32_t *uses = ir_alloc(a, ((size_t)g->nnodes + 1) * sizeof *uses);
    for (int32_t i = 0; i < g->nnodes; i++)
        for (int32_t k = 0; k < g->nodes[i].ninputs; k++)
            uses[g->nodes[i].inputs[k]]++;
    for (int32_t i = 0; i < g->noutputs; i++)
        uses[g->outputs[i].node]++;
    return uses;
}

PassUsers *pass_users(const Graph *g, Arena *a)
{
    int32_t n = g->nnodes, edges = 0;
    for (int32_t i = 0; i < n; i++)
        edges += g->nodes[i].ninputs;
    PassUsers *u = ir_alloc(a, sizeof *u);
    u->n = n;
    u->head = ir_alloc(a, ((size_t)n + 1) * sizeof *u->head);
    u->tail = ir_alloc(a, ((size_t)n + 1) * sizeof *u->tail);
    u->next = ir_alloc(a, ((size_t)edges + 1) * sizeof *u->next);
    u->user = ir_alloc(a, ((size_t)edges + 1) * sizeof *u->user);
    for (int32_t i = 0; i < n; i++)
        u->head[i] = u->tail[i] = -1;
    int32_t e = 0;
    for (int32_t i = 0; i < n; i++)
        for (int32_t k = 0; k < g->nodes[i].ninputs; k++, e++) {
            int32_t p = g->nodes[i].inputs[k];
            u->user[e] = i;
            u->next[e] = -1;
            if (u->tail[p] >= 0)
                u->next[u->tail[p]] = e;
            else
                u->head[p] = e;
            u->tail[p] = e;
        }
    return u;
}

/* The users of `from` become users of `to`: its list is spliced onto `to`'s. */
void pass_replace_uses(Graph *g, PassUsers *u, int32_t from, int32_t to)
{
    if (from >= u->n || to >= u->n)
        ICE("use lists cover %d nodes, not node %d", (int)u->n, (int)(from > to ? from : to));
    PASS_FOR_USERS(u, from, e) {
        Node *nd = &g->nodes[u->user[e]];
        for (int32_t k = 0; k < nd->ninputs; k++)
            if (nd->inputs[k] == from && u->user[e] != to)
                nd->inputs[k] = to;
    }
    if (u->head[from] >= 0) {
        if (u->tail[to] >= 0)
            u->next[u->tail[to]] = u->head[from];
        else
            u->head[to] = u->head[from];
        u->tail[to] = u->tail[from];
        u->head[from] = u->tail[from] = -1;
    }
    for (int32_t i = 0; i < g->noutputs; i++)
        if (g->outputs[i].node == from)
            g->outputs[i].node = to;
}

/* Rewrites the node array as order[0..n): node order[j] becomes node j. Nodes
 * left out must be unused by the ones kept. */
static void renumber(Graph *g, const int32_t *order, int32_t n)
{
    Arena *tmp = ir_arena_new();
    int32_t *newid = ir_alloc(tmp, ((size_t)g->nnodes + 1) * sizeof *newid);
    Node *old = ir_alloc(tmp, ((size_t)g->nnodes + 1) * sizeof *old);
    memcpy(old, g->nodes, (size_t)g->nnodes * sizeof *old);
    for (int32_t i = 0; i < g->nnodes; i++)
        newid[i] = -1;
    for (int32_t j = 0; j < n; j++)
        newid[order[j]] = j;
    for (int32_t j = 0; j < n; j++) {
        Node *nd = &g->nodes[j];
        *nd = old[order[j]];
        for (int32_t k = 0; k < nd->ninputs; k++) {
            if (newid[nd->inputs[k]] < 0)
                ICE("node '%s' uses a removed node", nd->name ? nd->name : "?");
            nd->inputs[k] = newid[nd->inputs[k]];
        }
    }
    for (int32_t i = 0; i < g->noutputs; i++) {
        if (newid[g->outputs[i].node] < 0)
            ICE("output '%s' refers to a removed node", g->outputs[i].name);
        g->outputs[i].node = newid[g->outputs[i].node];
    }
    g->nnodes = n;
    ir_arena_free(tmp);
}

/* Users come after what they use, so one backward sweep sees every use of a
 * node removed before deciding about the node. */
int32_t pass_remove_unused(Graph *g, const bool *candidates)
{
    Arena *tmp = ir_arena_new();
    int32_t *uses = pass_use_counts(g, tmp);
    bool *gone = ir_alloc(tmp, (size_t)g->nnodes + 1);
    bool *cand = ir_alloc(tmp, (size_t)g->nnodes + 1);
    int32_t *order = ir_alloc(tmp, ((size_t)g->nnodes + 1) * sizeof *order);
    int32_t n = 0, removed = 0;
    for (int32_t i = 0; i < g->nnodes; i++)
        cand[i] = candidates ? candidates[i] : g->nodes[i].op != OP_INPUT;
    for (int32_t i = g->nnodes - 1; i >= 0; i--) {
        const Node *nd = &g->nodes[i];
        if (!cand[i] || uses[i] > 0 || nd->op == OP_INPUT)
            continue;
        gone[i] = true;
        removed++;
        for (int32_t k = 0; k < nd->ninputs; k++) {
            uses[nd->inputs[k]]--;
            if (g->nodes[nd->inputs[k]].op == OP_PARAM)
                cand[nd->inputs[k]] = true;
        }
    }
    for (int32_t i = 0; i < g->nnodes; i++)
        if (!gone[i])
            order[n++] = i;
    if (removed)
        renumber(g, order, n);
    ir_arena_free(tmp);
    return removed;
}

/* Depth-first, inputs before users, starting from the nodes in index order:
 * a graph already in order comes out unchanged, and a node moved by a rewrite
 * lands right before its first user. Explicit stack: graphs can be deep. */
void pass_toposort(Graph *g)
{
    Arena *tmp = ir_arena_new();
    size_t cap = (size_t)g->nnodes + 1;
    uint8_t *state = ir_alloc(tmp, cap); /* 0 new, 1 on the stack, 2 placed */
    int32_t *order = ir_alloc(tmp, cap * sizeof *order);
    int32_t *stack = ir_alloc(tmp, cap * sizeof *stack);
    int32_t *next_in = ir_alloc(tmp, cap * sizeof *next_in);
    int32_t n = 0;
    for (int32_t root = 0; root < g->nnodes; root++) {
        int32_t sp = 0;
        if (state[root])
            continue;
        stack[sp++] = root;
        state[root] = 1;
        while (sp > 0) {
            int32_t v = stack[sp - 1];
            const Node *nd = &g->nodes[v];
            if (next_in[v] < nd->ninputs) {
                int32_t u = nd->inputs[next_in[v]++];
                if (state[u] == 1)
                    ICE("the graph has a cycle through '%s'", nd->name ? nd->name : "?");
                if (state[u] == 0) {
                    state[u] = 1;
                    stack[sp++] = u;
                }
                continue;
            }
            state[v] = 2;
            order[n++] = v;
            sp--;
        }
    }
    renumber(g, order, n);
    ir_arena_free(tmp);
}

/* Open addressing over name hashes; grows at half full. */
struct PassNames {
    Arena *arena;
    const char **slot;
    size_t cap, count;
};

static const char **name_slot(PassNames *ns, const char *name)
{
    size_t i = (size_t)ir_str_hash(name) & (ns->cap - 1);
    while (ns->slot[i] && strcmp(ns->slot[i], name) != 0)
        i = (i + 1) & (ns->cap - 1);
    return &ns->slot[i];
}

static void names_add(PassNames *ns, const char *name)
{
    if (2 * (ns->count + 1) > ns->cap) {
        const char **old = ns->slot;
        size_t oldcap = ns->cap;
        ns->cap = ns->cap ? ns->cap * 2 : 64;
        ns->slot = ir_alloc(ns->arena, ns->cap * sizeof *ns->slot);
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                *name_slot(ns, old[i]) = old[i];
    }
    const char **s = name_slot(ns, name);
    if (!*s) {
        *s = name;
        ns->count++;
    }
}

PassNames *pass_name_set(const Graph *g, Arena *a)
{
    PassNames *ns = ir_alloc(a, sizeof *ns);
    ns->arena = a;
    ns->cap = 64; /* never empty: a lookup in a set of an empty graph finds a free slot */
    ns->slot = ir_alloc(a, ns->cap * sizeof *ns->slot);
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].name)
            names_add(ns, g->nodes[i].name);
    return ns;
}

const char *pass_unique_name(Graph *g, PassNames *names, const char *base)
{
    const char *name = ir_strdup(g->arena, base);
    for (int32_t k = 1; *name_slot(names, name); k++)
        name = ir_strfmt(g->arena, "%s.%d", base, (int)k);
    names_add(names, name);
    return name;
}

int32_t pass_new_param(Graph *g, PassNames *names, const char *base, TensorType type,
                       SrcLoc loc, float **values)
{
    const char *name = pass_unique_name(g, names, base);
    int32_t id = ir_add_param(g, name, type, loc);
    size_t bytes = (size_t)ir_numel(&type) * sizeof(float);
    *values = g->nodes[id].data = ir_alloc(g->arena, bytes ? bytes : 1);
    return id;
}

int32_t pass_add_param(Graph *g, PassNames *names, const char *base, TensorType type,
                       const float *data, SrcLoc loc)
{
    float *values;
    int32_t id = pass_new_param(g, names, base, type, loc, &values);
    memcpy(values, data, (size_t)ir_numel(&type) * sizeof(float));
    return id;
}

PassSpan pass_span_of(const Node *n)
{
    int64_t numel = ir_numel(&n->type), items = n->type.rank > 0 ? n->type.dims[0] : 1;
    if (n->mem.batch_stride == 0 || items <= 1)
        return (PassSpan){n->mem.offset, 0, numel * 4, 1};
    return (PassSpan){n->mem.offset, n->mem.batch_stride * 4, numel / items * 4, items};
}

int64_t pass_span_end(PassSpan s)
{
    return s.off + (s.count - 1) * s.stride + s.len;
}

bool pass_spans_overlap(PassSpan a, PassSpan b)
{
    if (pass_span_end(a) <= b.off || pass_span_end(b) <= a.off)
        return false;
    for (int64_t i = 0; i < a.count; i++)
        for (int64_t j = 0; j < b.count; j++) {
            int64_t a0 = a.off + i * a.stride, b0 = b.off + j * b.stride;
            if (a0 < b0 + b.len && b0 < a0 + a.len)
                return true;
        }
    return false;
}

/* A conv2d with a fused residual (input k) adds each element of it to the sums of the
 * same output element, in the tile that stores that element, after the whole
 * reduction: the LLVM backend's blocked direct kernel (codegen/llvm/conv.c), which
 * then keeps no partial sums in the output (it does not chunk the reduction), in the
 * cases taken here: ungrouped, blocked in and out alike, constant weights, neither
 * Winograd nor fused with another conv or a scale. Written over the residual, the
 * output's lines are those the tile has just read: ResNet's convs that close a block
 * read the block's input and wrote a third tensor of its size. Only where a register
 * tile's weights (two output blocks) fit in OVERWRITE_WEIGHT_BYTES: with more, the
 * chunks the kernel then forgoes were worth more. (A 1×1 conv on 32 registers may take
 * a tile of four blocks, codegen/llvm/conv.c's choose_tile, twice those bytes: ResNet-50's
 * 256→1024 convs over their residual did not lose by it, 0.97–1.03 of their time.) ResNet-50, 2 threads, cnnrun
 * --profile, medians of 3 (batch 8) and 4 (batch 1) interleaved runs (Intel Xeon,
 * AVX-512): layer1's 64→256 convs 0.82–0.89 of their time at batch 8 and 0.84–0.87
 * at batch 1, layer2's 128→512 0.89–0.96 and 0.90–0.95, layer3's 256→1024 0.90–0.97
 * and 0.97–1.03; layer4's 512→2048, chunked before, 1.02–1.06 and 1.10–1.11. */
#define OVERWRITE_WEIGHT_BYTES (32 * 1024)

static bool conv_overwrites(const Graph *g, const Node *n, int32_t k)
{
    const ConvAttrs *a = &n->attrs.conv;
    const TensorType *t = &n->type, *xt = &g->nodes[n->inputs[0]].type;
    if (!a->epi.residual || k != ir_residual_input(n) || a->groups != 1 || a->winograd ||
        a->fused_in || a->scaled_in || t->layout != LAYOUT_NCHWC || !pass_blocked_as(xt, t->block))
        return false;
    int64_t tile_weights =
        2 * (int64_t)t->block * xt->dims[1] * a->kernel[0] * a->kernel[1] * (int64_t)sizeof(float);
    return tile_weights <= OVERWRITE_WEIGHT_BYTES && ir_type_eq(&g->nodes[n->inputs[k]].type, t) &&
           pass_constant_params(g, n);
}

bool pass_input_shared(const int32_t *base, const Node *n, int32_t k)
{
    for (int32_t i = 0; i < n->ninputs; i++)
        if (i != k && base[n->inputs[i]] == base[n->inputs[k]])
            return true;
    return false;
}

/* Whether `n` can compute into the storage of its input k: it writes each
 * element from the same element of that input alone (an activation; add, sub,
 * mul or div where input k has the output's shape and storage, the other one
 * the same or broadcast), so every kernel reads an element before it writes
 * it, in the same thread. The planner also needs k's value dead after n. */
bool pass_overwrites(const Graph *g, const Node *n, int32_t k)
{
    if (n->op == OP_CONV2D && k >= 0 && k < n->ninputs)
        return conv_overwrites(g, n, k);
    bool binary = n->op == OP_ADD || n->op == OP_SUB || n->op == OP_MUL || n->op == OP_DIV;
    if (!(binary || (ir_op_is_act(n->op) && n->ninputs == 1)) || k < 0 || k >= n->ninputs)
        return false;
    return ir_type_eq(&g->nodes[n->inputs[k]].type, &n->type); /* dims and storage */
}
