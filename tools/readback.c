/* readback.c: a value of a compiled model read back after a run, from where
 * the memory plan put it and in the layout it was given, as plain row-major
 * floats: what per-node comparisons with the interpreter need. Storage is
 * resolved the way the generated code addresses it (codegen/llvm/module.c). */
#include "repl.h"

#include <string.h>

/* Where a value's bytes are: the node owning the storage (aliases followed),
 * the byte offset into it, and the elements from one batch item to the next. */
typedef struct Place {
    const Node *store;
    int64_t off, item;
} Place;

static Place place_of(const Graph *g, int32_t id)
{
    const Node *n = &g->nodes[id];
    Place p = {n, 0, 0};
    while (p.store->mem.kind == MEM_ALIAS) {
        p.off += p.store->mem.offset;
        p.store = &g->nodes[p.store->inputs[0]];
    }
    p.off += p.store->mem.offset;
    if (p.store->mem.batch_stride)
        p.item = p.store->mem.batch_stride;
    else if (p.store->type.rank > 0 && p.store->type.dims[0] > 0)
        p.item = ir_numel(&p.store->type) / p.store->type.dims[0];
    return p;
}

/* Whether arena value `b` is a concat that `a` is written into in place. */
static bool is_view_in(const Node *a, const Node *b, const Graph *g)
{
    if (b->op != OP_CONCAT || a->mem.batch_stride == 0)
        return false;
    for (int32_t k = 0; k < b->ninputs; k++)
        if (&g->nodes[b->inputs[k]] == a)
            return true;
    return false;
}

/* An arena value is intact after a run unless a value computed later (other
 * than the concat it is written into) was given some of its bytes. */
static bool intact(const Graph *g, const Node *s)
{
    if (s->mem.kind != MEM_ARENA)
        return s->mem.kind == MEM_INPUT || s->mem.kind == MEM_OUTPUT;
    for (const Node *b = s + 1; b < g->nodes + g->nnodes; b++)
        if (b->mem.kind == MEM_ARENA && !is_view_in(s, b, g) &&
            pass_spans_overlap(pass_span_of(s), pass_span_of(b)))
            return false;
    return true;
}

static const float *base_of(const Node *s, const char *arena, const float *const *inputs,
                            const float *const *outputs)
{
    switch (s->mem.kind) {
    case MEM_ARENA:
        return (const float *)(const void *)arena;
    case MEM_INPUT:
        return inputs ? inputs[s->mem.index] : NULL;
    case MEM_OUTPUT:
        return outputs ? outputs[s->mem.index] : NULL;
    default:
        return NULL;
    }
}

/* Element (c, h, w) of one item of a rank-4 value stored in layout `t`. */
static int64_t index4(const TensorType *t, int64_t c, int64_t h, int64_t w)
{
    int64_t C = t->dims[1], H = t->dims[2], W = t->dims[3];
    if (t->layout == LAYOUT_NHWC)
        return (h * W + w) * C + c;
    int64_t b = t->block;
    return (c / b) * H * W * b + (h * W + w) * b + c % b;
}

static void unlayout_item(const TensorType *t, const float *src, float *dst)
{
    int64_t C = t->dims[1], H = t->dims[2], W = t->dims[3];
    for (int64_t c = 0; c < C; c++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                *dst++ = src[index4(t, c, h, w)];
}

bool repl_read_value(const Graph *g, int32_t id, const char *arena, const float *const *inputs,
                     const float *const *outputs, float *dst)
{
    if (id < 0 || id >= g->nnodes)
        return false;
    const TensorType *t = &g->nodes[id].type;
    Place p = place_of(g, id);
    const float *base = base_of(p.store, arena, inputs, outputs);
    if (!base || !intact(g, p.store))
        return false;
    base += p.off / (int64_t)sizeof(float);
    int64_t items = t->rank > 0 ? t->dims[0] : 1, per = items > 0 ? ir_numel(t) / items : 0;
    bool plain = t->layout == LAYOUT_PLAIN || t->rank != 4;
    for (int64_t n = 0; n < items; n++) {
        const float *src = base + n * p.item;
        if (plain)
            memcpy(dst + n * per, src, (size_t)per * sizeof(float));
        else
            unlayout_item(t, src, dst + n * per);
    }
    return true;
}
