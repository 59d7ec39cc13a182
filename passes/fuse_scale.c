/* fuse_scale.c: squeeze-and-excitation ends in a product of a value x [N, C, H, W] and a
 * per-channel scale s [N, C, 1, 1], and the product's one reader is a conv2d (the block's
 * projection). That conv can read x and s instead and scale its weights for input
 * channel c by s[n, c] as it loads them, which costs a multiply per weight vector loaded
 * (one per register tile of pixels), where the product is a pass of its own over x, read
 * and written:
 *
 *   x ─► mul ─► conv {act}    ═►   x ─► conv {scaled_in}   (the mul: MEM_INLINED;
 *   s ──┘                          s ──┘                     the kernel reads x and s)
 *
 * ConvAttrs.scaled_in marks the conv; the graph keeps the mul, so the interpreter and
 * every other pass compute the same value; plan_memory gives the mul no storage and
 * keeps x and s alive until the conv runs; the LLVM backend's direct conv kernel
 * (codegen/llvm/conv.c) applies the scale. Only for convs that kernel runs (blocked
 * input, constant weights, not Winograd nor depthwise), so never on CUDA or training
 * graphs, whose values stay plain, nor with PassOptions.keep_values.
 *
 * It pays where the product is large, so that its pass waits on memory; where it stays
 * in cache, the multiplies the conv adds (one per weight vector a register tile loads)
 * cost as much as that pass. Per conv, the least of 6 to 8 profiled runs of each (the
 * two models taking turns; cnnrun --profile, 2 threads, AVX-512), fused against the mul
 * and the conv: EfficientNet-B0 at batch 8, 0.63 for the product of 12.8 MB (32×112×112
 * an item), 0.80 and 0.81 for 14.5 and 9.6 MB (56×56), 0.90 for 3.6 and 6.0 MB (28×28),
 * 0.97 to 1.07 for 3.0 and 4.2 MB (14×14), 1.00 to 1.13 for 1.1 to 1.8 MB (7×7);
 * MobileNetV3-Large at batch 8, 0.87 to 0.90 for 3.0 to 4.2 MB (14×14), 0.89 to 1.01 for
 * 1.1 to 1.5 MB (7×7); EfficientNet-B0 at batch 1, 0.90 for 1.6 MB, else 1.01 to 1.16.
 * So a product is taken in when it takes FUSE_SCALE_MIN_BYTES in all. */
#include "passes.h"

#include <string.h>

#define FUSE_SCALE_MIN_BYTES (3 << 20)

/* Whether conv `id` can take its input 0 in as a scale, on a target of `lanes` f32 lanes.
 * `uses` counts the references to each node (inputs and graph outputs); `inlined` marks
 * nodes another conv computes. */
static bool scale_fits(const Graph *g, int32_t id, const int32_t *uses, const bool *inlined,
                       int32_t lanes)
{
    const Node *n = &g->nodes[id];
    if (n->op != OP_CONV2D || n->ninputs < 2 || inlined[id])
        return false;
    const ConvAttrs *a = &n->attrs.conv;
    int32_t mid = n->inputs[0];
    const Node *m = &g->nodes[mid];
    int32_t b = m->type.block;
    if (a->groups != 1 || a->winograd || a->fused_in || !pass_constant_params(g, n) ||
        uses[mid] != 1 || inlined[mid])
        return false;
    if (b < 2 || b > 16 || (b & (b - 1)) || !pass_blocked_as(&m->type, b) || m->type.dims[1] % b)
        return false;
    /* the output: blocked alike, or plain from whole blocks (conv.c's plain_out) */
    bool plain = n->type.rank == 4 && n->type.layout == LAYOUT_PLAIN;
    int32_t res = ir_residual_input(n);
    bool out_ok = pass_blocked_as(&n->type, b) ||
                  (plain && b == lanes &&
                   (res < 0 || g->nodes[n->inputs[res]].type.layout == LAYOUT_PLAIN));
    if (!out_ok)
        return false;
    int32_t k = ir_channel_scale_operand(g, m);
    if (k < 0)
        return false;
    const TensorType *s = &g->nodes[m->inputs[k]].type;
    return (s->layout == LAYOUT_PLAIN || s->layout == LAYOUT_NCHWC) &&
           ir_numel(&m->type) * (int64_t)sizeof(float) >= FUSE_SCALE_MIN_BYTES;
}

/* inlined[i]: node i is input 0 of a conv that computes it. */
static bool *inlined_nodes(const Graph *g, Arena *a)
{
    bool *inl = ir_alloc(a, ((size_t)g->nnodes + 1) * sizeof *inl);
    memset(inl, 0, ((size_t)g->nnodes + 1) * sizeof *inl);
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_CONV2D && g->nodes[i].attrs.conv.fused_in)
            inl[g->nodes[i].inputs[0]] = true;
    return inl;
}

/* ConvAttrs.scaled_in of every conv (recheck: only of those that have it) as
 * scale_fits says. */
static void mark(Graph *g, const PassOptions *opt, bool recheck)
{
    Arena *tmp = ir_arena_new();
    int32_t *uses = pass_use_counts(g, tmp);
    bool *inlined = inlined_nodes(g, tmp);
    for (int32_t i = 0; i < g->nnodes; i++) {
        Node *n = &g->nodes[i];
        if (n->op == OP_CONV2D && (!recheck || n->attrs.conv.scaled_in))
            n->attrs.conv.scaled_in = opt->block > 1 && !opt->keep_values &&
                                      scale_fits(g, i, uses, inlined, opt->block);
    }
    ir_arena_free(tmp);
}

bool pass_fuse_scale(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)d;
    mark(g, opt, false);
    return true;
}

void pass_fuse_scale_check(Graph *g, const PassOptions *opt)
{
    mark(g, opt, true);
}
