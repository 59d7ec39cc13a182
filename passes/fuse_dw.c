/* fuse_dw.c: a 1×1 conv2d whose only reader is a depthwise conv2d (the expansion and
 * the depthwise conv of MobileNet's and EfficientNet's inverted residual blocks) is
 * computed inside the depthwise conv's kernel, a band of rows of one or two channel
 * blocks at a time, in scratch that stays in L2, and its output is never stored:
 *
 *   x ─► conv 1×1 {act} ─► conv dw k×k {act}    ═►   x ─► conv dw {fused_in}
 *                                                         (the 1×1 conv: MEM_INLINED)
 *
 * The expanded value is the largest of those blocks (6 times the channels of x, before
 * the depthwise conv's stride): EfficientNet-B0's first expansion at batch 8 is 38 MB,
 * written to memory and read back. ConvAttrs.fused_in marks the depthwise conv; the
 * graph still holds both nodes and computes the same value (the interpreter and every
 * other pass read it as before); plan_memory gives the 1×1 conv no storage and keeps
 * the 1×1 conv's input alive until the depthwise conv runs; the LLVM backend
 * (codegen/llvm/conv.c) emits the pair as one kernel. Blocked layouts only, so it
 * never applies to the CUDA backend or to training graphs, whose values stay plain;
 * nor with PassOptions.keep_values, which promises every value to be readable.
 *
 * It pays where the expanded value is large: the unfused pair then writes it to memory
 * and reads it back. Measured per pair (the least of 6 profiled runs of each, the two
 * models taking turns; cnnrun --profile, 2 threads, AVX-512), fused / unfused: at batch
 * 8, MobileNetV2 0.68 for 96×112×112 an item, 0.86 for 144×56×56 at stride 2, 0.83 to
 * 0.90 for 192×28×28, 0.95 to 1.05 for 960×7×7, and its fused pairs together 0.86;
 * EfficientNet-B0 0.80 for 96×112×112, 0.93 to 1.03 past 28×28, together 0.94. At batch
 * 1, where all but the largest stay in L2 and L3 between the kernels, 0.83 (MobileNetV2)
 * and 0.93 (EfficientNet) for 96×112×112, 0.9 to 1.2 for the rest. So a pair is fused
 * when the 1×1 conv's output takes PASS_FUSE_MIN_BYTES in all. */
#include "passes.h"

/* A 1×1, stride-1, unpadded, ungrouped conv, direct, without residual, from a plain or
 * `b`-blocked input to a `b`-blocked output of whole blocks. */
static bool pointwise(const Graph *g, const Node *p, int32_t b)
{
    if (p->op != OP_CONV2D)
        return false;
    const ConvAttrs *a = &p->attrs.conv;
    const TensorType *xt = &g->nodes[p->inputs[0]].type;
    bool plain = xt->rank == 4 && xt->layout == LAYOUT_PLAIN;
    return a->kernel[0] == 1 && a->kernel[1] == 1 && a->stride[0] == 1 && a->stride[1] == 1 &&
           a->dilation[0] == 1 && a->dilation[1] == 1 && !a->pad[0] && !a->pad[1] &&
           !a->pad[2] && !a->pad[3] && a->groups == 1 && !a->winograd && !a->fused_in &&
           !a->scaled_in &&
           !a->epi.residual && pass_constant_params(g, p) && pass_blocked_as(&p->type, b) &&
           p->type.dims[1] % b == 0 && (plain || (pass_blocked_as(xt, b) && xt->dims[1] % b == 0));
}

/* Whether depthwise conv `id` can take its input 0 in: `uses` counts the references
 * to each node (inputs and graph outputs), so that the 1×1 conv has no other reader. */
static bool pair_fits(const Graph *g, int32_t id, const int32_t *uses)
{
    const Node *n = &g->nodes[id];
    if (n->op != OP_CONV2D || n->ninputs < 2)
        return false;
    const ConvAttrs *a = &n->attrs.conv;
    int32_t b = n->type.block, pid = n->inputs[0];
    const TensorType *xt = &g->nodes[pid].type;
    if (b < 2 || b > 16 || !pass_blocked_as(&n->type, b) || !pass_blocked_as(xt, b) ||
        a->winograd || a->groups < 2 || a->groups != xt->dims[1] ||
        a->groups != n->type.dims[1] || xt->dims[1] % b || !pass_constant_params(g, n))
        return false;
    return uses[pid] == 1 && pointwise(g, &g->nodes[pid], b);
}

/* ConvAttrs.fused_in of every conv where the pair fits and pays, none when `off`
 * (recheck: of those that have it, where the pair still fits; a flag set by hand
 * need not pay). */
static void mark(Graph *g, bool off, bool recheck)
{
    Arena *tmp = ir_arena_new();
    int32_t *uses = pass_use_counts(g, tmp);
    for (int32_t i = 0; i < g->nnodes; i++) {
        Node *n = &g->nodes[i];
        if (n->op == OP_CONV2D && (!recheck || n->attrs.conv.fused_in))
            n->attrs.conv.fused_in =
                !off && pair_fits(g, i, uses) && (recheck || pass_fusion_pays(g, i));
    }
    ir_arena_free(tmp);
}

bool pass_fuse_dw(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)d;
    mark(g, opt->keep_values || opt->block < 2, false);
    return true;
}

void pass_fuse_dw_check(Graph *g, bool keep_values)
{
    mark(g, keep_values, true);
}
