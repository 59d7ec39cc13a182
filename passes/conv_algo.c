/* conv_algo.c: chooses per conv2d between the direct convolution and Winograd
 * F(4×4, 3×3) or F(2×2, 3×3) (ConvAttrs.winograd), after the layout pass has fixed
 * the blocks;
 * and gives strided 1×1 convs a gather of the pixels they read (below).
 * Winograd takes 3×3, stride-1, undilated, ungrouped convs whose input and output
 * (and residual) are blocked alike and whose weights are constants: the LLVM
 * backend's kernel (codegen/llvm/winograd.c). PassOptions.conv_algo says which:
 * CONV_ALGO_DIRECT never, CONV_ALGO_WINOGRAD wherever it can, CONV_ALGO_AUTO where
 * the cost model below expects it to be faster; CONV_ALGO_WINOGRAD4 and 2 wherever
 * it can, in that form. Otherwise the form is F(4×4) unless the model expects
 * F(2×2) to be clearly faster (below).
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
 * which a work item streams its transformed weights: fitted (least squares on
 * the log of the time) to bench/winograd_layers.c on an AMD Zen 5 (AVX-512),
 * one thread, 20 layers of ResNet-18/50 and VGG-16 at batch 1 and 8; the model
 * then predicts Winograd's time within 25 %. Measured direct against Winograd,
 * e.g.: 64→64 56×56 0.85 / 0.33 ms; 128→128 28×28 0.84 / 0.33; 256→256 14×14
 * 0.80 / 0.73; 512→512 7×7 0.75 / 1.02 (batch 8: 6.1 / 4.7); 512→512 28×28
 * 14.0 / 7.7. Winograd must win by WINO_MARGIN to be chosen. */
#define WINO_DIRECT_FMA_PER_CYCLE 1.9
#define WINO_GEMM_FMA_PER_CYCLE 2.0
#define WINO_TRANSFORM_CYCLES 150.0
#define WINO_WEIGHT_BYTES_PER_CYCLE 8.0
#define WINO_MARGIN 0.85

/* F(2×2, 3×3) takes 16 products for 4 outputs (2.25× fewer than direct, against
 * F(4×4)'s 4×), but its transformed weights are 16·C·O floats, not 36·C·O: where a
 * layer's weights are many and its tiles few (deep layers at batch 1), streaming them
 * costs F(4×4) more than its fewer products save. On an Intel Xeon (AVX-512, 2
 * threads, batch 1) ResNet-50's 256→256 14×14 convs took 0.47 ms as F(2×2) against
 * 0.57 as F(4×4) (0.65 direct), its 128→128 28×28 ones 0.41 against 0.375, its
 * 64→64 56×56 ones 0.43 against 0.31; at batch 8 F(4×4) was faster on every layer
 * (256→256 14×14: 2.8 ms against 3.0). The two forms are compared with the weights
 * streamed at WINO2_WEIGHT_BYTES_PER_CYCLE, which fits those times (the direct
 * against Winograd choice keeps the 8 fitted on Zen 5), and F(2×2) must win by
 * WINO2_MARGIN. Its transforms are adds only (and halves of the weights). */
#define WINO2_WEIGHT_BYTES_PER_CYCLE 4.0
#define WINO2_TRANSFORM_CYCLES 60.0
#define WINO2_MARGIN 0.9

/* The scratch of a run where the weights outweigh the transformed input
 * (pass_winograd_split, below): such a layer (deep, small plane, batch 8) streams its
 * transformed weights once per run, and fewer, longer runs stream fewer of them than
 * their V, read again past L2, costs. Measured against 1 MiB (cnnrun --profile, 2
 * threads, medians of 3 interleaved runs, Intel Xeon AVX-512, 2 MiB L2): ResNet-50 at
 * batch 8, 256→256 14×14 (128 tiles, 6 runs → 2) 2.84–2.97 → 2.44–2.51 ms, 512→512
 * 7×7 (32 tiles, 3 runs → 1) 4.07–4.14 → 3.38–3.68; VGG-16 at batch 8, 512→512 14×14
 * 12.4–12.9 → 10.7–11.4; at batch 1 the same layers as F(2×2) in one run instead of F(4×4)
 * in one, 2.16–2.22 → 1.86–1.88. Layers whose input outweighs the weights (ResNet's
 * 56×56 and 28×28, VGG-16's 56×56 and up) lost 10–30% with 4 MiB. */
#define WINO_WEIGHTY_SCRATCH_BYTES (4 * 1024 * 1024)

/* The split of codegen/llvm/winograd.c into work items. Tiles are
 * numbered over the batch, so that small planes (7×7: 4 tiles) fill register
 * tiles from several images. A run of MT of them is as long as V[36][MT][C] and
 * M[36][MT][oct·b] allow in WINO_SCRATCH_BYTES, L2's size (each chunk of U is
 * read once per item, so longer is better); the runs are of equal length, and the register tile
 * (T tiles × oct blocks of accumulators, leaving registers for the oct weight
 * vectors and the broadcast) divides MT, so few padding tiles are computed.
 * A work item is one chunk of output blocks of one run (KG = the chunks), so
 * that even one run of a small plane keeps the threads busy; a thread
 * transforms the input of a run once for all its items of that run, so the
 * transform is repeated only across threads (in parallel). */
void pass_winograd_split(int64_t C, int64_t O, int64_t b, int64_t P, int64_t tiles,
                         int32_t nregs, int32_t max_acc, WinoSplit *s)
{
    s->oct = (O / b) % 2 ? 1 : 2;
    /* Fewer tiles than half a register tile (7×7 planes: 4 tiles an image) take 4 output
     * blocks, so that each broadcast value feeds 4 FMAs. */
    if (tiles < (nregs - 6) / 4 && (O / b) % 4 == 0)
        s->oct = 4;
    int64_t tmax = (nregs - 6) / s->oct;
    if (tmax * s->oct > max_acc)
        tmax = max_acc / s->oct;
    int64_t per_tile = P * (C + s->oct * b) * (int64_t)sizeof(float);
    /* at least two register tiles: deep layers (512 channels: 13 tiles per MiB) would
     * stream their weights once per few tiles; 2 MiB there measured 6.0 ms against 7.8
     * for 512→512 28×28, while 64-channel layers lose a fifth past 1 MiB. Where the
     * weights outweigh the transformed input (O ≥ 2·tiles: deep layers at batch 8),
     * each run streams more bytes of weights than its V spills past L2: the runs take
     * WINO_WEIGHTY_SCRATCH_BYTES (above). */
    int64_t budget = O >= 2 * tiles ? WINO_WEIGHTY_SCRATCH_BYTES : WINO_SCRATCH_BYTES;
    int64_t cap = budget / per_tile;
    cap = cap < 2 * tmax ? 2 * tmax : cap;
    s->runs = (tiles + cap - 1) / cap;
    /* An even number of runs: the threads' ranges of items then start at a run (with 2
     * threads, and 4 where the runs are a multiple of 4), where an odd number has two
     * threads transform the input of the middle run each. 2 threads, Intel Xeon
     * (AVX-512), cnnrun --profile and --bench in ABBA rounds: ResNet-50's layer1 convs at
     * batch 1 (3 runs → 4) took 0.84–0.92 of their time, at batch 8 layer1's and
     * layer2's 0.96–0.99; DenseNet-121 0.95 (batch 1) and 0.935 (batch 8) of its time,
     * ResNet-18, ResNet-50 and VGG-16 0.98–1.0; SqueezeNet's 16→64 convs at batch 8
     * (11 runs → 12, register tiles of 12 tiles instead of 13) 1.02–1.05. The layers the
     * cost model gives Winograd are the same in every zoo model. */
    if (s->runs > 1 && s->runs % 2)
        s->runs++;
    int64_t mt = (tiles + s->runs - 1) / s->runs;
    int64_t blocks = (mt + tmax - 1) / tmax;
    s->T = (mt + blocks - 1) / blocks;
    s->MT = blocks * s->T;
    int64_t chunks = O / b / s->oct;
    s->KG = chunks;
}

/* The model's cycles of Winograd F(m×m, 3×3) for this layer, its transformed weights
 * streamed at `bytes_per_cycle`, on a target of `lanes` f32 lanes (AVX-512: 32 vector
 * registers, else 16): vector instructions over the instructions per cycle each
 * sustains. */
static double winograd_cycles(const Graph *g, const Node *n, int32_t lanes, int m,
                              double bytes_per_cycle)
{
    const TensorType *xt = &g->nodes[n->inputs[0]].type;
    int64_t N = n->type.dims[0], OH = n->type.dims[2], OW = n->type.dims[3];
    double C = (double)xt->dims[1], O = (double)n->type.dims[1], b = n->type.block;
    int64_t P = (m + 2) * (m + 2);
    WinoSplit s;
    pass_winograd_split(xt->dims[1], n->type.dims[1], n->type.block, P,
                        N * ((OH + m - 1) / m) * ((OW + m - 1) / m), lanes >= 16 ? 32 : 16, 64,
                        &s);
    double padded = (double)(s.runs * s.MT);
    double gemm = (double)P * C * O * padded / b / WINO_GEMM_FMA_PER_CYCLE;
    double trans = padded * (C + O) / b * (m == 4 ? WINO_TRANSFORM_CYCLES : WINO2_TRANSFORM_CYCLES);
    double stream = (double)s.runs * (double)P * C * O * 4 / bytes_per_cycle;
    return gemm + trans + stream;
}

/* Whether Winograd is expected to be faster than the direct conv for this layer. */
static bool winograd_pays(const Graph *g, const Node *n, int32_t lanes)
{
    const TensorType *xt = &g->nodes[n->inputs[0]].type;
    int64_t N = n->type.dims[0], OH = n->type.dims[2], OW = n->type.dims[3];
    double C = (double)xt->dims[1], O = (double)n->type.dims[1], b = n->type.block;
    double direct = 9 * C * O * (double)(N * OH * OW) / b / WINO_DIRECT_FMA_PER_CYCLE;
    return winograd_cycles(g, n, lanes, 4, WINO_WEIGHT_BYTES_PER_CYCLE) < WINO_MARGIN * direct;
}

/* The Winograd form of a layer that runs Winograd: 2 or 4 (above). */
static int32_t winograd_form(const Graph *g, const Node *n, const PassOptions *opt)
{
    if (opt->conv_algo == CONV_ALGO_WINOGRAD2 || opt->conv_algo == CONV_ALGO_WINOGRAD4)
        return opt->conv_algo == CONV_ALGO_WINOGRAD2 ? 2 : 4;
    double f2 = winograd_cycles(g, n, opt->block, 2, WINO2_WEIGHT_BYTES_PER_CYCLE);
    double f4 = winograd_cycles(g, n, opt->block, 4, WINO2_WEIGHT_BYTES_PER_CYCLE);
    return f2 < WINO2_MARGIN * f4 ? 2 : 4;
}

/* The conditions of codegen/llvm/winograd.c's cg_winograd_fits. */
static bool winograd_fits(const Graph *g, const Node *n)
{
    const ConvAttrs *a = &n->attrs.conv;
    const TensorType *xt = &g->nodes[n->inputs[0]].type, *wt = &g->nodes[n->inputs[1]].type;
    int32_t b = n->type.block;
    if (!pass_blocked_as(&n->type, b) || !pass_blocked_as(xt, b) || b > 16 || xt->dims[1] % 4)
        return false;
    if (a->groups != 1 || wt->dims[2] != 3 || wt->dims[3] != 3 || a->stride[0] != 1 ||
        a->stride[1] != 1 || a->dilation[0] != 1 || a->dilation[1] != 1)
        return false;
    if (a->epi.residual && !pass_blocked_as(&g->nodes[n->inputs[ir_residual_input(n)]].type, b))
        return false;
    return pass_constant_params(g, n);
}

/* A blocked 1×1 conv of stride s > 1 (ResNet's downsampling) reads every s-th
 * pixel of every s-th row: its rows cannot be flattened into the long rows
 * that fill a register tile (conv.c), and each cache line it loads holds
 * pixels it skips. It becomes a 1×1 conv of stride 1 over those pixels,
 * gathered first by a maxpool of kernel 1 and stride s (one pass over what
 * the conv reads). ResNet-50's layer2-4 downsampling convs, 2 threads: batch 1
 * 0.60, 0.69, 0.55 ms -> 0.51 each, the gathers 0.04 ms in all; batch 8 16.4
 * -> 12.8 ms, the gathers 0.95 ms. */
static bool gathers_first(const Graph *g, const Node *n)
{
    if (n->op != OP_CONV2D)
        return false;
    const ConvAttrs *a = &n->attrs.conv;
    const TensorType *xt = &g->nodes[n->inputs[0]].type;
    return n->type.rank == 4 && n->type.layout == LAYOUT_NCHWC &&
           pass_blocked_as(xt, n->type.block) && a->kernel[0] == 1 && a->kernel[1] == 1 &&
           (a->stride[0] > 1 || a->stride[1] > 1) && !a->pad[0] && !a->pad[1] && !a->pad[2] &&
           !a->pad[3];
}

static void gather_first(Graph *g, PassNames *names, int32_t id)
{
    int32_t x = g->nodes[id].inputs[0];
    const char *base = ir_strfmt(g->arena, "%s.gather", g->nodes[id].name);
    int32_t p = ir_add_node(g, OP_MAXPOOL, &x, 1, pass_unique_name(g, names, base),
                            g->nodes[id].loc);
    Node *pool = &g->nodes[p], *n = &g->nodes[id];
    PoolAttrs *a = &pool->attrs.pool;
    *a = (PoolAttrs){.kernel = {1, 1}, .dilation = {1, 1}};
    a->stride[0] = n->attrs.conv.stride[0];
    a->stride[1] = n->attrs.conv.stride[1];
    pool->type = g->nodes[x].type;
    pool->type.dims[2] = n->type.dims[2];
    pool->type.dims[3] = n->type.dims[3];
    n->inputs[0] = p;
    n->attrs.conv.stride[0] = n->attrs.conv.stride[1] = 1;
}

bool pass_conv_algo(Graph *g, const PassOptions *opt, Diag *d)
{
    (void)d;
    Arena *tmp = ir_arena_new();
    PassNames *names = pass_name_set(g, tmp);
    bool added = false;
    for (int32_t i = 0, n = g->nnodes; i < n; i++)
        if (gathers_first(g, &g->nodes[i])) {
            gather_first(g, names, i);
            added = true;
        }
    if (added)
        pass_toposort(g);
    ir_arena_free(tmp);
    for (int32_t i = 0; i < g->nnodes; i++) {
        Node *n = &g->nodes[i];
        if (n->op != OP_CONV2D)
            continue;
        n->attrs.conv.winograd = 0;
        if (opt->conv_algo == CONV_ALGO_DIRECT || !winograd_fits(g, n))
            continue;
        if (opt->conv_algo == CONV_ALGO_AUTO && !winograd_pays(g, n, opt->block))
            continue;
        n->attrs.conv.winograd = winograd_form(g, n, opt);
    }
    return true;
}
