/* fuse_pool.c: a conv2d whose only reader is a maxpool (the stem of ResNet, DenseNet
 * and SqueezeNet: conv, relu, then a 3×3 stride-2 maxpool) is computed inside the
 * maxpool's kernel, a band of rows of one register tile's channel blocks at a time, in
 * scratch that stays in L2, and its output is never stored:
 *
 *   x ─► conv {act} ─► maxpool    ═►   x ─► maxpool {fused_in}   (the conv: MEM_INLINED)
 *
 * The conv's output is the largest value of those networks (ResNet-50's 64×112×112 an
 * item, 26 MB at batch 8): unfused, the conv writes it to memory and the maxpool reads
 * it back. PoolAttrs.fused_in marks the maxpool; the graph still holds both nodes and
 * computes the same value (the interpreter and every other pass read it as before);
 * plan_memory gives the conv no storage and keeps its input alive until the maxpool
 * runs; the LLVM backend (codegen/llvm/conv.c) emits the pair as one kernel. Blocked
 * layouts only, so it never applies to the CUDA backend or to training graphs, whose
 * values stay plain; nor with PassOptions.keep_values, which promises every value to be
 * readable. The conv must be one the blocked direct kernel computes: ungrouped,
 * neither Winograd nor fused with another input, no residual, constant weights.
 *
 * It pays where the conv's output is large: the unfused pair then writes it to memory
 * and reads it back. 2 threads, Intel Xeon (AVX-512), cnnrun --bench medians of ABBA
 * rounds, fused against unfused: at batch 8, ResNet-50 0.983 (its stem and pool 6.66 →
 * 5.84 ms, cnnrun --profile), ResNet-18 0.984, SqueezeNet 1.1 0.936, DenseNet-121 0.998;
 * at batch 1, where the conv's output (3.2 MB) stays in L2 and L3 for the pool, no change
 * beyond the noise (ResNet-50's pair 0.67–0.73 ms either way; SqueezeNet 0.982,
 * ResNet-18 1.007, DenseNet-121 0.991), and the fused kernel has fewer work items for
 * many threads (bands of a plane, not rows). So a pair is fused where the conv's output
 * takes PASS_FUSE_MIN_BYTES in all. */
#include "passes.h"

/* The conv's and the pool's values blocked by b, the conv one of the direct kernel. */
static bool pair_fits(const Graph *g, int32_t id, const int32_t *uses, int32_t b)
{
    const Node *p = &g->nodes[id];
    if (p->op != OP_MAXPOOL || p->ninputs != 1 || b < 2 || b > 16 ||
        !pass_blocked_as(&p->type, b))
        return false;
    int32_t cid = p->inputs[0];
    const Node *c = &g->nodes[cid];
    if (c->op != OP_CONV2D || uses[cid] != 1 || c->ninputs < 2)
        return false;
    const ConvAttrs *a = &c->attrs.conv;
    const TensorType *xt = &g->nodes[c->inputs[0]].type;
    bool plain = xt->rank == 4 && xt->layout == LAYOUT_PLAIN;
    return a->groups == 1 && !a->winograd && !a->fused_in && !a->scaled_in && !a->epi.residual &&
           pass_blocked_as(&c->type, b) && c->type.dims[1] % b == 0 &&
           (plain || pass_blocked_as(xt, b)) && pass_constant_params(g, c);
}

/* PoolAttrs.fused_in of every maxpool where the pair fits and pays, none when `off`
 * (recheck: of those that have it, where the pair still fits; a flag set by hand need
 * not pay). */
static void mark(Graph *g, bool off, int32_t b, bool recheck)
{
    Arena *tmp = ir_arena_new();
    int32_t *uses = pass_use_counts(g, tmp);
    for (int32_t i = 0; i < g->nnodes; i++) {
        Node *n = &g->nodes[i];
        if (ir_ops[n->op].attrs == AK_POOL && (!recheck || n->attrs.pool.fused_in))
            n->attrs.pool.fused_in =
                !off && pair_fits(g, i, uses, b) && (recheck || pass_fusion_pays(g, i));
    }
    ir_arena_free(tmp);
}

bool pass_fuse_pool(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)d;
    mark(g, opt->keep_values || opt->block < 2, opt->block, false);
    return true;
}

void pass_fuse_pool_check(Graph *g, const PassOptions *opt)
{
    mark(g, opt->keep_values || opt->block < 2, opt->block, true);
}
