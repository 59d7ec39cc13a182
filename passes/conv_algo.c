/* conv_algo.c: chooses per conv2d between the direct convolution and Winograd
 * F(4×4, 3×3) (ConvAttrs.winograd), after the layout pass has fixed the blocks.
 * Winograd takes 3×3, stride-1, undilated, ungrouped convs whose input and output
 * (and residual) are blocked alike and whose weights are constants: the LLVM
 * backend's kernel (codegen/llvm/winograd.c). PassOptions.conv_algo says which:
 * CONV_ALGO_DIRECT never, CONV_ALGO_WINOGRAD wherever it can, CONV_ALGO_AUTO where
 * the cost model below expects it to be faster.
 *
 * The model counts the vector instructions of each kernel per batch item: the
 * direct conv's 9·C·O·P/b FMAs at the loop's efficiency; Winograd's 36·C·O FMAs
 * per 4×4 tile (tiles padded to whole register tiles), its input and output
 * transforms per tile and block, and the transformed weights (36·C·O floats,
 * 4× the direct ones) that each work item streams once from L3 or memory. The
 * constants were fitted to per-layer times (cnnrun --profile, 2 threads) of
 * ResNet-18/50 and VGG-16 on an AVX-512 machine: see the numbers below. */
#include "passes.h"

/* Vector FMAs per cycle the direct conv and the Winograd GEMM sustain, cycles of
 * the transforms per tile and block (in and out), and the bytes per cycle at
 * which a work item streams its transformed weights. */
#define WINO_DIRECT_FMA_PER_CYCLE 1.8
#define WINO_GEMM_FMA_PER_CYCLE 1.6
#define WINO_TRANSFORM_CYCLES 150.0
#define WINO_WEIGHT_BYTES_PER_CYCLE 16.0

/* Register tile and tiles per work item as codegen/llvm/winograd.c chooses them. */
static void wino_items(int64_t C, int64_t O, int64_t b, int64_t nt, int64_t *per_image,
                       int64_t *padded)
{
    int64_t oct = (O / b) % 2 ? 1 : 2, nregs = b >= 16 ? 32 : 16;
    int64_t T = (nregs - 6) / oct;
    int64_t cap = 1024 * 1024 / (36 * (C + oct * b) * 4) / T * T;
    if (cap < T)
        cap = T;
    int64_t items = (nt + cap - 1) / cap, mt = (nt + items - 1) / items;
    *per_image = items;
    *padded = items * ((mt + T - 1) / T * T);
}

/* Whether Winograd is expected to be faster than the direct conv for this layer. */
static bool winograd_pays(const Graph *g, const Node *n)
{
    const TensorType *xt = &g->nodes[n->inputs[0]].type;
    double C = (double)xt->dims[1], O = (double)n->type.dims[1], b = n->type.block;
    int64_t OH = n->type.dims[2], OW = n->type.dims[3];
    int64_t nt = ((OH + 3) / 4) * ((OW + 3) / 4), items, padded;
    wino_items(xt->dims[1], n->type.dims[1], n->type.block, nt, &items, &padded);
    /* cycles, as vector instructions over the instructions per cycle each sustains */
    double direct = 9 * C * O * (double)(OH * OW) / b / WINO_DIRECT_FMA_PER_CYCLE;
    double gemm = 36 * C * O * (double)padded / b / WINO_GEMM_FMA_PER_CYCLE;
    double trans = (double)padded * (C + O) / b * WINO_TRANSFORM_CYCLES;
    double stream = (double)items * 36 * C * O * 4 / WINO_WEIGHT_BYTES_PER_CYCLE;
    return gemm + trans + stream < direct;
}

static bool blocked_as(const TensorType *t, int32_t b)
{
    return t->layout == LAYOUT_NCHWC && t->block == b;
}

static bool is_constant(const Graph *g, int32_t id)
{
    return g->nodes[id].op == OP_PARAM && g->nodes[id].data;
}

/* The conditions of codegen/llvm/winograd.c's cg_winograd_fits. */
static bool winograd_fits(const Graph *g, const Node *n)
{
    const ConvAttrs *a = &n->attrs.conv;
    const TensorType *xt = &g->nodes[n->inputs[0]].type, *wt = &g->nodes[n->inputs[1]].type;
    int32_t b = n->type.block;
    if (!blocked_as(&n->type, b) || !blocked_as(xt, b) || b > 16 || xt->dims[1] % 4)
        return false;
    if (a->groups != 1 || wt->dims[2] != 3 || wt->dims[3] != 3 || a->stride[0] != 1 ||
        a->stride[1] != 1 || a->dilation[0] != 1 || a->dilation[1] != 1)
        return false;
    if (a->epi.residual && !blocked_as(&g->nodes[n->inputs[ir_residual_input(n)]].type, b))
        return false;
    int32_t bias = ir_bias_input(n);
    return is_constant(g, n->inputs[1]) && (bias < 0 || is_constant(g, n->inputs[bias]));
}

bool pass_conv_algo(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)d;
    for (int32_t i = 0; i < g->nnodes; i++) {
        Node *n = &g->nodes[i];
        if (n->op != OP_CONV2D)
            continue;
        n->attrs.conv.winograd = false;
        if (opt->conv_algo == CONV_ALGO_DIRECT || !winograd_fits(g, n))
            continue;
        n->attrs.conv.winograd = opt->conv_algo == CONV_ALGO_WINOGRAD || winograd_pays(g, n);
    }
    return true;
}
