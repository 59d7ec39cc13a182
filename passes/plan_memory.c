/* plan_memory.c: gives every value a place. Weights are embedded, graph
 * inputs are the caller's buffers, views (flatten, dropout, reshape_as, reorders
 * that move no byte) alias their input; everything else goes into one arena:
 *
 *   1. Lifetimes over the node order: a value lives from the node that
 *      computes it to its last reader (reads through an alias count; graph
 *      outputs live to the end, since run copies them out last).
 *   2. Channel concat is written in place: each input that is computed into
 *      the arena (and used by no other concat, not an output) becomes a view
 *      at the concat's offset + its channel offset, with batch_stride = the
 *      concat's per-item element count. The concat's buffer then lives from
 *      its first view's definition to the last read of it or any view. An
 *      input that is itself a concat becomes a view too, so DenseNet's chain
 *      concat(concat(concat(x0, x1), x2), x3) is one buffer that every layer
 *      writes its channels into, and no concat copies (each used to copy all
 *      the channels before it: quadratic in the block's layers).
 *   3. An elementwise op writes over its full-size input where it is that
 *      value's last reader (pass_overwrites: squeeze-and-excitation's x · s,
 *      a standalone activation), and so does a blocked conv over its fused
 *      residual (ResNet's block-closing convs), where no other input reads the
 *      same bytes: the input becomes a view at offset 0 of the
 *      op's buffer, which then lives from the input's definition. Not for
 *      graph inputs, concats or values written into one, nor with keep_values.
 *   4. Greedy by size: buffers, largest first, each at the lowest 64-byte
 *      aligned offset that overlaps no placed buffer of intersecting
 *      lifetime. Graph.arena_bytes is the highest end.
 *
 * With PassOptions.keep_values every buffer lives for the whole run, so no
 * bytes are reused and each value can be read back after it (tools/readback.c). */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

#define ALIGN 64
/* No buffer may end past this. Each is at most IR_MAX_NUMEL floats, so no
 * offset, end or alignment computed below can overflow int64. */
#define MAX_ARENA_BYTES ((int64_t)1 << 62)

typedef struct Buf {
    int32_t node;
    int32_t def, last;
    int64_t size, offset;
} Buf;

typedef struct Planner {
    Graph *g;
    int32_t *base;    /* node whose storage a node's value is (through aliases) */
    int32_t *last;    /* last node reading each base; nnodes: a graph output */
    int32_t *view_of; /* the concat a node is written into, or -1 */
    int64_t *view_off;
} Planner;

static int64_t align_up(int64_t v)
{
    return (v + ALIGN - 1) / ALIGN * ALIGN;
}

static int64_t bytes_of(const Node *n)
{
    int64_t bytes = ir_numel(&n->type) * (int64_t)sizeof(float);
    if (bytes <= 0)
        ICE("'%s' has %lld bytes", n->name ? n->name : "?", (long long)bytes);
    return bytes;
}

/* Bytes from the start of an item of a slice's input to the start of the slice, when
 * the slice is a run of whole channels (of whole blocks, when blocked) that readers
 * can take in place, with the input's item stride; -1 otherwise. */
static int64_t slice_offset(const Node *n, const Graph *g)
{
    const TensorType *in = &g->nodes[n->inputs[0]].type, *t = &n->type;
    int32_t axis = n->attrs.slice.axis < 0 ? n->attrs.slice.axis + t->rank : n->attrs.slice.axis;
    if (axis != 1 || t->rank < 2 || in->layout != t->layout || in->block != t->block)
        return -1;
    int64_t start = n->attrs.slice.start, end = n->attrs.slice.end, inner = 1;
    if (t->layout == LAYOUT_NCHWC && (start % t->block || end % t->block))
        return -1;
    for (int32_t i = 2; i < t->rank; i++)
        inner *= t->dims[i];
    return start * inner * (int64_t)sizeof(float);
}

/* A reorder between equal layouts, or of a [N,C,1,1] value, moves no byte; a slice of
 * whole channels is a view (ShuffleNet's chunks). */
static bool is_alias(const Node *n, const Graph *g)
{
    if (n->op == OP_FLATTEN || n->op == OP_DROPOUT)
        return true;
    if (n->op == OP_SLICE)
        return slice_offset(n, g) >= 0;
    if (n->op == OP_RESHAPE_AS) { /* plain values with the same batch: the same bytes */
        const TensorType *in = &g->nodes[n->inputs[0]].type;
        return in->layout == LAYOUT_PLAIN && n->type.layout == LAYOUT_PLAIN && in->rank &&
               n->type.rank && in->dims[0] == n->type.dims[0];
    }
    if (n->op != OP_REORDER)
        return false;
    const TensorType *in = &g->nodes[n->inputs[0]].type, *t = &n->type;
    bool same = in->layout == t->layout && in->block == t->block;
    return same || (t->rank == 4 && t->dims[2] == 1 && t->dims[3] == 1);
}

static void assign_kinds(Planner *p)
{
    Graph *g = p->g;
    int32_t ninputs = 0;
    for (int32_t i = 0; i < g->nnodes; i++) {
        Node *n = &g->nodes[i];
        memset(&n->mem, 0, sizeof n->mem);
        p->base[i] = i;
        p->view_of[i] = -1;
        if (n->op == OP_PARAM) {
            n->mem.kind = MEM_WEIGHTS;
        } else if (n->op == OP_INPUT) {
            n->mem.kind = MEM_INPUT;
            n->mem.index = ninputs++;
        } else if (ir_inlined_input(n) >= 0) {
            n->mem.kind = MEM_ARENA;
            g->nodes[n->inputs[0]].mem.kind = MEM_INLINED;
        } else if (is_alias(n, g)) {
            n->mem.kind = MEM_ALIAS;
            if (n->op == OP_SLICE)
                n->mem.offset = slice_offset(n, g);
            p->base[i] = p->base[n->inputs[0]];
        } else {
            n->mem.kind = MEM_ARENA;
        }
    }
}

static void find_last_uses(Planner *p)
{
    Graph *g = p->g;
    for (int32_t i = 0; i < g->nnodes; i++)
        p->last[i] = i;
    for (int32_t i = 0; i < g->nnodes; i++)
        for (int32_t k = 0; k < g->nodes[i].ninputs; k++) {
            int32_t b = p->base[g->nodes[i].inputs[k]];
            if (p->last[b] < i)
                p->last[b] = i;
        }
    /* A conv reads what the input it computes (ir_inlined_input) reads. */
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (ir_inlined_input(n) < 0)
            continue;
        const Node *in = &g->nodes[n->inputs[0]];
        for (int32_t k = 0; k < in->ninputs; k++) {
            int32_t b = p->base[in->inputs[k]];
            if (p->last[b] < i)
                p->last[b] = i;
        }
    }
    for (int32_t i = 0; i < g->noutputs; i++)
        p->last[p->base[g->outputs[i].node]] = g->nnodes;
}

static bool is_output(const Graph *g, int32_t id)
{
    for (int32_t i = 0; i < g->noutputs; i++)
        if (g->outputs[i].node == id)
            return true;
    return false;
}

static bool can_be_view(const Planner *p, const Node *c, int32_t k)
{
    const Graph *g = p->g;
    int32_t v = c->inputs[k];
    const Node *n = &g->nodes[v];
    if (n->mem.kind != MEM_ARENA || p->view_of[v] >= 0 ||
        is_output(g, v) || n->type.layout != c->type.layout || n->type.block != c->type.block)
        return false;
    for (int32_t j = 0; j < c->ninputs; j++)
        if (j != k && c->inputs[j] == v)
            return false;
    return true;
}

static void plan_concat(Planner *p, int32_t id)
{
    const Node *c = &p->g->nodes[id];
    if (ir_node_axis(c) != 1 || c->mem.kind != MEM_ARENA)
        return;
    int64_t inner = 1, chan = 0;
    for (int32_t i = 2; i < c->type.rank; i++)
        inner *= c->type.dims[i];
    for (int32_t k = 0; k < c->ninputs; k++) {
        int32_t v = c->inputs[k];
        if (can_be_view(p, c, k)) {
            p->view_of[v] = id;
            p->view_off[v] = chan * inner * (int64_t)sizeof(float);
        }
        chan += p->g->nodes[v].type.dims[1];
    }
}

/* Step 3 for node `id`: its first input it may overwrite. */
static void plan_overwrite(Planner *p, int32_t id)
{
    const Graph *g = p->g;
    const Node *n = &g->nodes[id];
    if (n->mem.kind != MEM_ARENA || p->view_of[id] >= 0)
        return;
    for (int32_t k = 0; k < n->ninputs; k++) {
        int32_t x = n->inputs[k];
        const Node *xn = &g->nodes[x];
        if (xn->mem.kind != MEM_ARENA || p->view_of[x] >= 0 || xn->op == OP_CONCAT ||
            p->last[x] != id || is_output(g, x) || !pass_overwrites(g, n, k) ||
            pass_input_shared(p->base, n, k))
            continue;
        p->view_of[x] = id;
        p->view_off[x] = 0;
        return;
    }
}

static int cmp_buf(const void *a, const void *b)
{
    const Buf *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    if (x->def != y->def)
        return x->def < y->def ? -1 : 1;
    return x->node < y->node ? -1 : x->node > y->node;
}

static int cmp_offset(const void *a, const void *b)
{
    const Buf *x = *(const Buf *const *)a, *y = *(const Buf *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The concat whose buffer a view lies in (a concat may be a view of the next:
 * DenseNet's concat(concat(a, b), c)), and the view's byte offset there. */
static int32_t root_of(const Planner *p, int32_t v, int64_t *off)
{
    *off = 0;
    for (; p->view_of[v] >= 0; v = p->view_of[v])
        *off += p->view_off[v];
    return v;
}

/* The buffers: arena values that are not views, a concat's covering its views. */
static int32_t collect(const Planner *p, Buf *bufs)
{
    const Graph *g = p->g;
    int32_t n = 0;
    int32_t *slot = ir_xcalloc((size_t)g->nnodes + 1, sizeof *slot);
    for (int32_t i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].mem.kind != MEM_ARENA || p->view_of[i] >= 0)
            continue;
        slot[i] = n;
        bufs[n++] = (Buf){i, i, p->last[i], align_up(bytes_of(&g->nodes[i])), 0};
    }
    for (int32_t i = 0; i < g->nnodes; i++) {
        if (p->view_of[i] < 0)
            continue;
        int64_t off;
        Buf *b = &bufs[slot[root_of(p, i, &off)]];
        b->def = i < b->def ? i : b->def;
        b->last = p->last[i] > b->last ? p->last[i] : b->last;
    }
    free(slot);
    return n;
}

/* Lowest aligned offset where `b` fits among the placed buffers alive with it. */
static int64_t fit(Buf *b, Buf **placed, int32_t nplaced, Buf **tmp)
{
    int32_t n = 0;
    for (int32_t i = 0; i < nplaced; i++)
        if (placed[i]->def <= b->last && b->def <= placed[i]->last)
            tmp[n++] = placed[i];
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_offset);
    int64_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        if (at + b->size <= tmp[i]->offset)
            break;
        int64_t end = align_up(tmp[i]->offset + tmp[i]->size);
        at = end > at ? end : at;
    }
    return at;
}

/* The arena's size, or -1 with `*over` the first buffer that would end past
 * MAX_ARENA_BYTES. */
static int64_t place_all(Buf *bufs, int32_t n, int32_t *over)
{
    Buf **placed = ir_xcalloc((size_t)n + 1, sizeof *placed);
    Buf **tmp = ir_xcalloc((size_t)n + 1, sizeof *tmp);
    int64_t peak = 0;
    qsort(bufs, (size_t)n, sizeof *bufs, cmp_buf);
    for (int32_t i = 0; i < n; i++) {
        bufs[i].offset = fit(&bufs[i], placed, i, tmp);
        if (bufs[i].offset > MAX_ARENA_BYTES - bufs[i].size) {
            *over = bufs[i].node;
            peak = -1;
            break;
        }
        placed[i] = &bufs[i];
        if (bufs[i].offset + bufs[i].size > peak)
            peak = bufs[i].offset + bufs[i].size;
    }
    free(placed);
    free(tmp);
    return peak;
}

static void write_plan(Planner *p, const Buf *bufs, int32_t n)
{
    Graph *g = p->g;
    for (int32_t i = 0; i < n; i++)
        g->nodes[bufs[i].node].mem.offset = bufs[i].offset;
    for (int32_t i = 0; i < g->nnodes; i++) {
        if (p->view_of[i] < 0)
            continue;
        int64_t off;
        Node *v = &g->nodes[i];
        const Node *cn = &g->nodes[root_of(p, i, &off)];
        v->mem.offset = cn->mem.offset + off;
        /* in a concat: its items; over by an elementwise op: its own (dense) */
        int64_t item = ir_numel(&cn->type) / cn->type.dims[0];
        v->mem.batch_stride = item != ir_numel(&v->type) / v->type.dims[0] ? item : 0;
    }
}

bool pass_plan_memory(Graph *g, const PassOptions *opt, Diag *d)
{
    Arena *tmp = ir_arena_new();
    size_t cap = (size_t)g->nnodes + 1;
    Planner p = {g, ir_alloc(tmp, cap * sizeof(int32_t)), ir_alloc(tmp, cap * sizeof(int32_t)),
                 ir_alloc(tmp, cap * sizeof(int32_t)), ir_alloc(tmp, cap * sizeof(int64_t))};
    pass_fuse_dw_check(g, opt->keep_values);
    pass_fuse_scale_check(g, opt);
    pass_fuse_pool_check(g, opt);
    assign_kinds(&p);
    find_last_uses(&p);
    for (int32_t i = g->nnodes - 1; i >= 0; i--)
        if (g->nodes[i].op == OP_CONCAT)
            plan_concat(&p, i);
    if (!opt->keep_values)
        for (int32_t i = 0; i < g->nnodes; i++)
            plan_overwrite(&p, i);
    Buf *bufs = ir_alloc(tmp, cap * sizeof *bufs);
    int32_t n = collect(&p, bufs);
    if (opt->keep_values)
        for (int32_t i = 0; i < n; i++) {
            bufs[i].def = 0;
            bufs[i].last = g->nnodes;
        }
    int32_t over = -1;
    g->arena_bytes = place_all(bufs, n, &over);
    if (g->arena_bytes >= 0)
        write_plan(&p, bufs, n);
    else
        ir_error(d, g->nodes[over].loc, "memory plan: the values alive with '%s' need more "
                 "than 2^62 bytes", g->nodes[over].name);
    ir_arena_free(tmp);
    return g->arena_bytes >= 0;
}

int64_t pass_plan_total_bytes(const Graph *g)
{
    int64_t total = 0;
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_PARAM && n->op != OP_INPUT && n->mem.kind != MEM_ALIAS &&
            n->mem.kind != MEM_INLINED &&
            __builtin_add_overflow(total, bytes_of(n), &total))
            return INT64_MAX;
    }
    return total;
}
