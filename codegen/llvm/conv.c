/* conv.c: conv2d kernels. Blocked (NCHWc) convolutions, including the first
 * layer that reads a plain input, groups of whole blocks, and convs from
 * blocks into a plain output (channels no block divides, tiles transposed in
 * registers), run a direct convolution whose output tile (pixels along W ×
 * channel vectors) stays in registers over the whole reduction; depthwise has
 * its own kernel; plain values take conv_train.c's implicit GEMM (vectors of
 * pixels); anything else a scalar path. */
#include <stdio.h>
#include <stdlib.h>

#include "cg.h"

typedef struct Conv {
    Cg *cg;
    const Node *n;
    const ConvAttrs *a;
    int64_t N, C, H, W, O, OH, OW, KH, KW, sh, sw, dh, dw, pt, pl;
    int64_t b, bi;      /* output block (the vector lanes); input block (b, or 1: plain) */
    int64_t CB, OB;     /* input channel blocks (of a group), output channel blocks */
    int64_t OBg;        /* grouped direct conv: output blocks per group (0: one group) */
    int64_t oct, tile;  /* output blocks and pixels of one register tile */
    int64_t xs, os, rs; /* elements between batch items of x, out, residual */
    bool depthwise, all_rows; /* all_rows: no row of the kernel window ever falls into padding */
    bool plane;               /* one work item covers the whole (small) output plane */
    bool plain_out; /* the output is plain: O need not divide by b, tiles are transposed */
    bool fused;     /* computed inside another node's kernel (init_inlined): no chunked
                     * reduction, no wide tile */
    int64_t kc;     /* reduction in chunks of kc input blocks (0: whole), see emit_kchunked */
    bool row_kc;    /* kc: the chunks are a loop inside each row's work item (emit_row_chunked) */
    bool res_is_out; /* the output overwrites the residual (pass_overwrites): no chunks */
    int64_t out_rows; /* rows from one output block to the next where it is stored (0: OH) */
    LLVMValueRef x, out, res, w, bias;
    LLVMValueRef scale; /* ConvAttrs.scaled_in: s[n][c], ss floats between items (else NULL) */
    int64_t ss;
    LLVMValueRef nb, ocb, oh, ih0, khlo, khhi; /* of the current work item */
    LLVMValueRef cc, first, last; /* kc: the chunk; whether it is the first, the last */
    LLVMValueRef wpf; /* kc: offset of the weights prefetched from those read (or NULL) */
    int64_t pf_slots;     /* kc: rows the prefetch is spread over (spread_prefetch) */
    LLVMValueRef pf_slot; /* the current row's number among them */
} Conv;

/* ---- integer arithmetic on i64 values ---------------------------------- */

static LLVMValueRef add(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildAdd(cg->b, a, b, "");
}

static LLVMValueRef addc(Cg *cg, LLVMValueRef a, int64_t c)
{
    return c ? LLVMBuildAdd(cg->b, a, cg_i64(cg, c), "") : a;
}

static LLVMValueRef mulc(Cg *cg, LLVMValueRef a, int64_t c)
{
    return c == 1 ? a : LLVMBuildMul(cg->b, a, cg_i64(cg, c), "");
}

static LLVMValueRef select_lt(Cg *cg, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t,
                              LLVMValueRef f)
{
    return LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, a, b, ""), t, f, "");
}

/* ---- setup ------------------------------------------------------------- */

static void conv_init(Conv *k, Cg *cg, int32_t id)
{
    const Graph *g = cg->g;
    const Node *n = &g->nodes[id];
    const TensorType *xt = &g->nodes[n->inputs[0]].type, *wt = &g->nodes[n->inputs[1]].type;
    const ConvAttrs *a = &n->attrs.conv;
    *k = (Conv){.cg = cg, .n = n, .a = a};
    k->N = xt->dims[0], k->C = xt->dims[1], k->H = xt->dims[2], k->W = xt->dims[3];
    k->O = n->type.dims[1], k->OH = n->type.dims[2], k->OW = n->type.dims[3];
    k->KH = wt->dims[2], k->KW = wt->dims[3];
    k->sh = a->stride[0], k->sw = a->stride[1], k->dh = a->dilation[0], k->dw = a->dilation[1];
    k->pt = a->pad[0], k->pl = a->pad[1];
    k->xs = cg_item_stride(cg, n->inputs[0]);
    k->os = cg_item_stride(cg, id);
    if (a->epi.residual) {
        int32_t ri = n->inputs[ir_residual_input(n)];
        const Node *r = &g->nodes[ri];
        k->rs = cg_item_stride(cg, ri);
        k->res_is_out =
            r->mem.kind == MEM_ARENA && n->mem.kind == MEM_ARENA && r->mem.offset == n->mem.offset;
    }
    if (a->scaled_in) { /* input 0 is x * s, computed here: x's items, and s's */
        const Node *m = &g->nodes[n->inputs[0]];
        int32_t si = ir_channel_scale_operand(g, m);
        k->xs = cg_item_stride(cg, m->inputs[1 - si]);
        k->ss = cg_item_stride(cg, m->inputs[si]);
    }
    /* With one item the strides between items multiply zero: leaving them out makes
     * the kernels of equal shapes inside concat buffers of different sizes (DenseNet)
     * the same code, generated once. */
    if (k->N == 1)
        k->xs = k->os = k->rs = k->ss = 0;
    k->all_rows = k->pt == 0 && (k->OH - 1) * k->sh + (k->KH - 1) * k->dh <= k->H - 1;
}

/* A 1×1, stride-1, unpadded conv maps pixel i of the output to pixel i of
 * the input, so the plane can be cut into rows of any length: rows of ~64
 * pixels give narrow planes (7×7, 14×14) full register tiles. */
static void flatten_pointwise(Conv *k)
{
    const int32_t *p = k->a->pad;
    if (k->KH != 1 || k->KW != 1 || k->sh != 1 || k->sw != 1 || p[0] || p[1] || p[2] || p[3])
        return;
    int64_t hw = k->OH * k->OW, w = 64;
    while (hw % w)
        w--;
    if (w <= k->OW)
        return;
    k->W = k->OW = w;
    k->H = k->OH = hw / w;
}

static const Node *input(const Conv *k, int32_t i)
{
    return &k->cg->g->nodes[k->n->inputs[i]];
}

/* Weights OIHW → [O/b][C/bi][kh][kw][bi][b] (a depthwise kernel: bi = 1, CB = 1). */
static LLVMValueRef pack_direct(Conv *k)
{
    const Node *wn = input(k, 1);
    if (!wn->data)
        ICE("conv2d %s: weight %s is not bound", k->n->name, wn->name);
    int64_t cpg = wn->type.dims[1], kk = k->KH * k->KW, total = k->OB * k->b * cpg * kk;
    char name[512];
    snprintf(name, sizeof name, "%s.%s%lld", wn->name, k->depthwise ? "dw" : "oihw",
             (long long)k->b);
    LLVMValueRef gl;
    float *p = cg_weights_begin(k->cg, name, total, &gl);
    if (!p)
        return gl;
    /* In the packed order, so the blob is written once, front to back. A partial last
     * block gets zero weights. */
    int64_t cb_n = k->depthwise ? 1 : k->CB, bi = k->depthwise ? 1 : k->bi;
    if (cb_n * bi != cpg)
        ICE("conv2d %s: %lld input channels in blocks of %lld", k->n->name, (long long)cpg,
            (long long)bi);
    for (int64_t ob = 0, dst = 0; ob < k->OB; ob++)
        for (int64_t cb = 0; cb < cb_n; cb++)
            for (int64_t t = 0; t < kk; t++)
                for (int64_t ci = 0; ci < bi; ci++)
                    for (int64_t ol = 0; ol < k->b; ol++, dst++) {
                        int64_t o = ob * k->b + ol, c = cb * bi + ci;
                        p[dst] = o < k->O && c < cpg ? wn->data[(o * cpg + c) * kk + t] : 0.0f;
                    }
    cg_weights_end(k->cg);
    return gl;
}

static LLVMValueRef bias_global(Conv *k)
{
    if (ir_bias_input(k->n) < 0)
        return NULL;
    const Node *bn = input(k, 2);
    if (!bn->data)
        ICE("conv2d %s: bias %s is not bound", k->n->name, bn->name);
    if (!k->b || k->O % k->b == 0) /* the generic kernel (no blocks) or whole blocks */
        return cg_weights(k->cg, bn->name, bn->data, k->O);
    int64_t n = k->OB * k->b; /* a partial last block reads zeros past O */
    float *p = ir_xmalloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        p[i] = i < k->O ? bn->data[i] : 0.0f;
    char name[512];
    snprintf(name, sizeof name, "%s.pad%lld", bn->name, (long long)n);
    LLVMValueRef gl = cg_weights(k->cg, name, p, n);
    free(p);
    return gl;
}

/* ---- the blocked kernels ----------------------------------------------- */

/* Output-block groups (of oct blocks) that share a pass over the input: the
 * weights of a chunk of `chunk` groups stay in L2 while the rows go by, and
 * each input row is read by all groups of the chunk while it is in L1/L2.
 * Work items run ((n, chunk), row, group in chunk), the last fastest. */
#define CHUNK_WEIGHT_BYTES (192 * 1024)

/* Weight bytes of one input block for a register tile's oct output blocks: what a
 * chunked reduction's chunk is counted in. */
static int64_t tile_block_bytes(const Conv *k)
{
    return k->oct * k->b * k->KH * k->KW * k->bi * (int64_t)sizeof(float);
}

/* With one batch item the threads' contiguous ranges of items split the output
 * blocks where a chunk holds fewer than all groups: each thread reads the whole input
 * and half the weights. Where the weights weigh at most half the input, one chunk of
 * every group splits the rows instead: each thread reads half the input (its own
 * rows, which the layer before wrote in the same split) and all the weights.
 * ResNet-50 at batch 1, 2 threads (Intel Xeon, AVX-512, cnnrun --profile, ABBA
 * rounds): the 3×3 stride-2 128→128 conv (0.6 MB of weights, 1.6 MB of input) 0.94–0.955
 * of its time, the 1×1 512→128 convs 0.95–0.97; the model 0.965–0.99. */
static int64_t choose_chunk(const Conv *k)
{
    int64_t groups = k->OB / k->oct;
    int64_t per = tile_block_bytes(k) * k->CB;
    int64_t c = CHUNK_WEIGHT_BYTES / per;
    c = c < 1 ? 1 : c > groups ? groups : c;
    int64_t in = k->CB * k->bi * k->H * k->W * (int64_t)sizeof(float);
    if (k->N == 1 && 2 * per * groups <= in)
        c = groups;
    while (groups % c)
        c--;
    return c;
}

/* Work item → batch item, first output block, output row; and the range of
 * kernel rows that fall inside the input for that row. */
static void decode_row(Conv *k);

static void decode_item(Conv *k, LLVMValueRef item)
{
    Cg *cg = k->cg;
    int64_t chunk = choose_chunk(k), chunks = k->OB / k->oct / chunk;
    int64_t rows = k->plane ? 1 : k->OH;
    LLVMValueRef cv = cg_i64(cg, chunk), ohv = cg_i64(cg, rows), chv = cg_i64(cg, chunks);
    LLVMValueRef gi = LLVMBuildSRem(cg->b, item, cv, "");
    LLVMValueRef r = LLVMBuildSDiv(cg->b, item, cv, "");
    k->oh = LLVMBuildSRem(cg->b, r, ohv, "oh");
    r = LLVMBuildSDiv(cg->b, r, ohv, "");
    LLVMValueRef group = add(cg, mulc(cg, LLVMBuildSRem(cg->b, r, chv, ""), chunk), gi);
    k->ocb = mulc(cg, group, k->oct);
    k->nb = LLVMBuildSDiv(cg->b, r, chv, "n");
    decode_row(k);
}

/* The first input row of output row k->oh, and the range of kernel rows
 * that fall inside the input for it. */
static void decode_row(Conv *k)
{
    Cg *cg = k->cg;
    k->ih0 = addc(cg, mulc(cg, k->oh, k->sh), -k->pt);
    if (k->all_rows) {
        k->khlo = cg_i64(cg, 0);
        k->khhi = cg_i64(cg, k->KH);
        return;
    }
    LLVMValueRef zero = cg_i64(cg, 0);
    LLVMValueRef up = LLVMBuildSDiv(cg->b, addc(cg, LLVMBuildNeg(cg->b, k->ih0, ""), k->dh - 1),
                                    cg_i64(cg, k->dh), "");
    k->khlo = select_lt(cg, k->ih0, zero, up, zero);
    LLVMValueRef t = LLVMBuildSub(cg->b, cg_i64(cg, k->H - 1), k->ih0, "");
    LLVMValueRef cnt = addc(cg, LLVMBuildSDiv(cg->b, t, cg_i64(cg, k->dh), ""), 1);
    cnt = select_lt(cg, cnt, cg_i64(cg, k->KH), cnt, cg_i64(cg, k->KH));
    k->khhi = select_lt(cg, t, zero, zero, cnt);
}

static bool tap_ok(const Conv *k, int64_t ow, int64_t kw)
{
    int64_t iw = ow * k->sw - k->pl + kw * k->dw;
    return iw >= 0 && iw < k->W;
}

/* Loads of the inner loop stay where they are emitted and are not merged:
 * LLVM would otherwise merge the loads of one input element by neighbouring
 * pixels at different taps, or hoist weight loads, and keep those values
 * live across taps, so that the register tile spills. */
static LLVMValueRef load_pinned(Conv *k, LLVMValueRef base, int64_t off, int32_t lanes)
{
    LLVMValueRef idx = cg_i64(k->cg, off);
    LLVMValueRef p = LLVMBuildGEP2(k->cg->b, k->cg->t_f32, base, &idx, 1, "");
    LLVMValueRef v = cg_load(k->cg, p, lanes);
    LLVMSetVolatile(v, 1);
    return v;
}

/* &base[index] where the index may point before the tensor (a tile at the
 * left padding): the loads add constant offsets that bring it back inside.
 * Separate pointer and constant offsets also keep the offsets in the
 * addressing modes instead of one register each. */
static LLVMValueRef tile_base(Conv *k, LLVMValueRef base, LLVMValueRef index)
{
    return LLVMBuildGEP2(k->cg->b, k->cg->t_f32, base, &index, 1, "");
}

/* Input block icb of the group of output block ocb (a grouped conv reads
 * only its group's CB blocks). */
static LLVMValueRef group_block(Conv *k, LLVMValueRef icb)
{
    if (!k->OBg)
        return icb;
    LLVMValueRef g = LLVMBuildSDiv(k->cg->b, k->ocb, cg_i64(k->cg, k->OBg), "");
    return add(k->cg, mulc(k->cg, g, k->CB), icb);
}

/* ConvAttrs.scaled_in: s[n, c] of input lane `lane` of input block icb, splatted to the
 * weight vectors it multiplies. */
static LLVMValueRef channel_scale(Conv *k, LLVMValueRef icb, LLVMValueRef lane)
{
    Cg *cg = k->cg;
    LLVMValueRef c = add(cg, mulc(cg, group_block(k, icb), k->bi), lane);
    LLVMValueRef v = cg_load(cg, cg_gep(cg, k->scale, add(cg, mulc(cg, k->nb, k->ss), c)), 1);
    return cg_splat(cg, v, (int32_t)k->b);
}

/* The input pixels the next tile of this row reads, a cache line each, for
 * the row of the input block a tile is reading now (xp: its first pixel,
 * lanes: floats per pixel). The rows of the input blocks lie pages apart,
 * and the hardware prefetchers stop at pages: without this a batch larger
 * than the caches is read at half the memory's bandwidth (ResNet-50's 1×1
 * convs at batch 8 took 1.5 times as long). */
static void prefetch_next_tile(Conv *k, LLVMValueRef xp, LLVMValueRef ow0, int64_t T,
                               int64_t lanes)
{
    Cg *cg = k->cg;
    int64_t per_line = 16 / lanes > 1 ? 16 / lanes : 1, ahead = T * k->sw;
    LLVMValueRef next = cg_i64(cg, ahead * lanes);
    if (k->row_kc) {
        /* The row's last tile (but in the last chunk): the first tile of the next
         * chunk of this row, its input kc blocks on, which otherwise waits for L2
         * (bench/conv_layers.c at batch 8, one thread: 1024→256 14×14 4.99 → 4.88 ms,
         * 2048→512 7×7 5.11 → 4.98; ResNet-50 at batch 8, 2 threads, cnnrun
         * --profile, medians of 4 interleaved runs: the row-chunked 1×1 convs 0.96 to
         * 0.99 of their time, the 3×3 stride-2 ones 0.94 to 1.01). */
        LLVMValueRef end = LLVMBuildICmp(cg->b, LLVMIntSGE, addc(cg, ow0, T), cg_i64(cg, k->OW), "");
        LLVMValueRef more = LLVMBuildAnd(cg->b, end, LLVMBuildNot(cg->b, k->last, ""), "");
        LLVMValueRef first = LLVMBuildSub(cg->b, cg_i64(cg, k->kc * k->H * k->W * k->bi),
                                          mulc(cg, ow0, k->sw * k->bi), "");
        next = LLVMBuildSelect(cg->b, more, first, next, "");
    }
    LLVMValueRef base = tile_base(k, xp, next);
    for (int64_t q = 0; q < ahead + (k->KW - 1) * k->dw; q += per_line)
        cg_prefetch(cg, tile_base(k, base, cg_i64(cg, q * lanes)));
}

/* The offset of the weights to prefetch at step `sub` (of `nsub`) of input block icb
 * of the current chunk: k->wpf (the next chunk's weights) in the one row this step
 * falls to, 0 (the weights being read: a prefetch of no effect) in the others. The
 * rows are those from the second that see every kernel row: the steps are dealt to
 * them in turn, so that the next chunk's weights are asked of memory a few lines at a
 * time over the whole chunk, not all at once in one row, which left the loads waiting
 * behind them. ResNet-50's 512→512 3×3 at 7×7, batch 1, weights from memory (Intel,
 * AVX-512): 1.64 → 1.34 ms on one thread; twelve of them in a row on two threads,
 * 9.9 → 8.3 ms. (Spread over the few tiles of a plane, no change was measured.) */
static LLVMValueRef spread_prefetch(Conv *k, LLVMValueRef icb, LLVMValueRef sub, int64_t nsub)
{
    Cg *cg = k->cg;
    if (k->pf_slots < 2)
        return k->wpf;
    LLVMValueRef unit =
        add(cg, mulc(cg, LLVMBuildSub(cg->b, icb, mulc(cg, k->cc, k->kc), ""), nsub), sub);
    LLVMValueRef slot = LLVMBuildURem(cg->b, unit, cg_i64(cg, k->pf_slots), "");
    LLVMValueRef mine = LLVMBuildICmp(cg->b, LLVMIntEQ, slot, k->pf_slot, "");
    return LLVMBuildSelect(cg->b, mine, k->wpf, cg_i64(cg, 0), "");
}

/* One kernel row (icb, kh) of a direct-conv tile: broadcast an input value,
 * FMA it with the weight vectors of the tile's output blocks. */
static void taps_direct(Conv *k, LLVMValueRef icb, LLVMValueRef kh, LLVMValueRef ow0, int64_t ow0c,
                        int64_t T, LLVMValueRef *acc)
{
    Cg *cg = k->cg;
    LLVMValueRef row =
        add(cg, mulc(cg, group_block(k, icb), k->H), add(cg, k->ih0, mulc(cg, kh, k->dh)));
    LLVMValueRef xo = add(cg, mulc(cg, k->nb, k->xs), mulc(cg, row, k->W * k->bi));
    xo = add(cg, xo, mulc(cg, addc(cg, mulc(cg, ow0, k->sw), -k->pl), k->bi));
    LLVMValueRef wrow = add(cg, mulc(cg, add(cg, mulc(cg, k->ocb, k->CB), icb), k->KH), kh);
    LLVMValueRef xp = tile_base(k, k->x, xo);
    LLVMValueRef wp = tile_base(k, k->w, mulc(cg, wrow, k->KW * k->bi * k->b));
    int64_t wstride = k->CB * k->KH * k->KW * k->bi * k->b;
    if (k->bi > 1)
        prefetch_next_tile(k, xp, ow0, T, k->bi);
    /* The input lanes are a loop: unrolled, 3×3 kernels grew to 10k instructions that
     * took LLVM seconds, for no speed measured on ResNet-50 (16.9 against 17.0 ms). */
    /* The prefetch's share: a kernel row's lines (chosen here, once), or where the
     * chunk has fewer kernel rows than there are rows to spread them over (3×3 at 7×7,
     * a block a chunk), an input lane's (chosen in the loop, which with 16 registers
     * slowed the 1×1 convs that need no such spread by 20%). */
    bool by_lane = k->wpf && k->bi > 1 && k->kc * k->KH < k->pf_slots;
    LLVMValueRef wpf = k->wpf && !by_lane ? spread_prefetch(k, icb, kh, k->KH) : NULL;
    CgAccLoop li;
    if (k->bi > 1) {
        cg_acc_loop_begin(cg, &li, cg_i64(cg, 0), cg_i64(cg, k->bi), acc, (int32_t)(T * k->oct));
        xp = tile_base(k, xp, li.iv);
        wp = tile_base(k, wp, mulc(cg, li.iv, k->b));
        if (by_lane)
            wpf = spread_prefetch(k, icb, add(cg, mulc(cg, kh, k->bi), li.iv), k->KH * k->bi);
    }
    LLVMValueRef sv = k->scale ? channel_scale(k, icb, k->bi > 1 ? li.iv : cg_i64(cg, 0)) : NULL;
    if (k->wpf) {
        for (int64_t j = 0; j < k->oct; j++)
            for (int64_t kw = 0; kw < k->KW; kw++)
                cg_prefetch_l2(cg, tile_base(k, tile_base(k, wp, wpf),
                                             cg_i64(cg, kw * k->bi * k->b + j * wstride)));
    }
    for (int64_t kw = 0; kw < k->KW; kw++) {
        LLVMValueRef wv[8];
        for (int64_t j = 0; j < k->oct; j++) {
            wv[j] = load_pinned(k, wp, kw * k->bi * k->b + j * wstride, (int32_t)k->b);
            if (sv)
                wv[j] = LLVMBuildFMul(cg->b, wv[j], sv, "");
        }
        for (int64_t p = 0; p < T; p++) {
            if (ow0c >= 0 && !tap_ok(k, ow0c + p, kw))
                continue;
            LLVMValueRef xv = load_pinned(k, xp, (p * k->sw + kw * k->dw) * k->bi, 1);
            LLVMValueRef bc = cg_splat(cg, xv, (int32_t)k->b);
            for (int64_t j = 0; j < k->oct; j++)
                acc[p * k->oct + j] = cg_fma(cg, bc, wv[j], acc[p * k->oct + j]);
        }
    }
    if (k->bi > 1)
        cg_acc_loop_end(cg, &li, acc);
}

/* One kernel row of a depthwise tile: b channels at once, input as vectors. */
static void taps_depthwise(Conv *k, LLVMValueRef kh, LLVMValueRef ow0, int64_t ow0c, int64_t T,
                           LLVMValueRef *acc)
{
    Cg *cg = k->cg;
    LLVMValueRef row = add(cg, mulc(cg, k->ocb, k->H), add(cg, k->ih0, mulc(cg, kh, k->dh)));
    LLVMValueRef xo = add(cg, mulc(cg, k->nb, k->xs), mulc(cg, row, k->W * k->b));
    xo = add(cg, xo, mulc(cg, addc(cg, mulc(cg, ow0, k->sw), -k->pl), k->b));
    LLVMValueRef xp = tile_base(k, k->x, xo);
    LLVMValueRef wp =
        tile_base(k, k->w, mulc(cg, add(cg, mulc(cg, k->ocb, k->KH), kh), k->KW * k->b));
    for (int64_t kw = 0; kw < k->KW; kw++) {
        LLVMValueRef wv = load_pinned(k, wp, kw * k->b, (int32_t)k->b);
        for (int64_t p = 0; p < T; p++) {
            if (ow0c >= 0 && !tap_ok(k, ow0c + p, kw))
                continue;
            int64_t off = (p * k->sw + kw * k->dw) * k->b;
            LLVMValueRef xv = load_pinned(k, xp, off, (int32_t)k->b);
            acc[p] = cg_fma(cg, xv, wv, acc[p]);
        }
    }
}

/* Element offset of output pixel ow0 of the item's row in block ocb + j. */
static LLVMValueRef out_offset(Conv *k, int64_t j, LLVMValueRef ow0, int64_t stride)
{
    Cg *cg = k->cg;
    LLVMValueRef pix = add(cg, mulc(cg, addc(cg, k->ocb, j), k->out_rows ? k->out_rows : k->OH),
                           k->oh);
    pix = add(cg, mulc(cg, pix, k->OW), ow0);
    return add(cg, mulc(cg, k->nb, stride), mulc(cg, pix, k->b));
}

/* Accumulators start from the bias, or (kc) from the sums of the chunks
 * before, which the output holds. */
static void init_acc(Conv *k, LLVMValueRef ow0, int64_t T, LLVMValueRef *acc)
{
    Cg *cg = k->cg;
    for (int64_t j = 0; j < k->oct; j++) {
        LLVMValueRef v = LLVMConstNull(LLVMVectorType(cg->t_f32, (unsigned)k->b));
        if (k->bias)
            v = cg_load(cg, cg_gep(cg, k->bias, mulc(cg, addc(cg, k->ocb, j), k->b)),
                        (int32_t)k->b);
        LLVMValueRef oo = k->kc ? out_offset(k, j, ow0, k->os) : NULL;
        for (int64_t p = 0; p < T; p++)
            acc[p * k->oct + j] =
                oo ? LLVMBuildSelect(cg->b, k->first, v,
                                     cg_load(cg, cg_gep(cg, k->out, addc(cg, oo, p * k->b)),
                                             (int32_t)k->b),
                                     "")
                   : v;
    }
}

/* A finished tile into a plain output: each run of up to b pixels of block
 * ocb + j (b vectors of channels) is transposed into b vectors of pixels,
 * one per channel, and each goes through the epilogue to its channel's row.
 * Channels past O (a partial last block) are not stored. */
static void store_tile_plain(Conv *k, LLVMValueRef ow0, int64_t T, LLVMValueRef *acc)
{
    Cg *cg = k->cg;
    int32_t b = (int32_t)k->b;
    int64_t tail = k->O % k->b, plane = k->OH * k->OW;
    for (int64_t j = 0; j < k->oct; j++) {
        LLVMValueRef blk = addc(cg, k->ocb, j);
        LLVMValueRef full = LLVMBuildICmp(cg->b, LLVMIntSLT, blk, cg_i64(cg, k->OB - 1), "");
        for (int64_t q = 0; q < T; q += b) {
            int64_t m = T - q < b ? T - q : b;
            LLVMValueRef r[64];
            for (int32_t i = 0; i < b; i++)
                r[i] = i < m ? acc[(q + i) * k->oct + j] : LLVMConstNull(LLVMTypeOf(acc[0]));
            cg_transpose(cg, r, (int32_t)b);
            LLVMValueRef pix = add(cg, mulc(cg, k->oh, k->OW), addc(cg, ow0, q));
            for (int32_t c = 0; c < b; c++) {
                LLVMBasicBlockRef join = NULL;
                if (tail && c >= tail)
                    join = cg_if_begin(cg, full);
                LLVMValueRef ch = addc(cg, mulc(cg, blk, k->b), c);
                LLVMValueRef at = add(cg, mulc(cg, ch, plane), pix);
                LLVMValueRef res = NULL;
                if (k->res)
                    res = cg_load_lanes(cg, k->res, add(cg, mulc(cg, k->nb, k->rs), at), 1, b,
                                        cg_low_lanes(m));
                LLVMValueRef v = cg_epilogue(cg, &k->a->epi, r[c], res);
                cg_store_lanes(cg, v, k->out, add(cg, mulc(cg, k->nb, k->os), at), 1,
                               cg_low_lanes(m));
                if (join)
                    cg_if_end(cg, join);
            }
        }
    }
}

/* Epilogue and the one store of a finished tile. */
static void store_tile(Conv *k, LLVMValueRef ow0, int64_t T, LLVMValueRef *acc)
{
    Cg *cg = k->cg;
    if (k->plain_out) {
        store_tile_plain(k, ow0, T, acc);
        return;
    }
    for (int64_t j = 0; j < k->oct; j++) {
        LLVMValueRef oo = out_offset(k, j, ow0, k->os);
        LLVMValueRef ro = k->res ? out_offset(k, j, ow0, k->rs) : NULL;
        for (int64_t p = 0; p < T; p++) {
            LLVMValueRef r = NULL;
            if (ro)
                r = cg_load(cg, cg_gep(cg, k->res, addc(cg, ro, p * k->b)), (int32_t)k->b);
            LLVMValueRef v = cg_epilogue(cg, &k->a->epi, acc[p * k->oct + j], r);
            if (k->kc) /* a partial sum until the last chunk */
                v = LLVMBuildSelect(cg->b, k->last, v, acc[p * k->oct + j], "");
            cg_store(cg, v, cg_gep(cg, k->out, addc(cg, oo, p * k->b)));
        }
    }
}

/* The residual and output lines of a tile, fetched while its reduction runs:
 * at batch 8 a short reduction (ResNet-50's 64→256 at 56×56, with the
 * residual added) otherwise waits for both from memory at its stores. */
static void prefetch_epilogue(Conv *k, LLVMValueRef ow0, int64_t T)
{
    if (k->plain_out || k->kc)
        return;
    Cg *cg = k->cg;
    for (int64_t j = 0; j < k->oct; j++) {
        LLVMValueRef oo = out_offset(k, j, ow0, k->os);
        LLVMValueRef ro = k->res ? out_offset(k, j, ow0, k->rs) : NULL;
        for (int64_t p = 0; p < T; p += 16 / k->b) {
            if (ro)
                cg_prefetch(cg, cg_gep(cg, k->res, addc(cg, ro, p * k->b)));
            cg_prefetch_w(cg, cg_gep(cg, k->out, addc(cg, oo, p * k->b)));
        }
    }
}

/* A tile of T output pixels from ow0 (ow0c: its value when known at compile
 * time, which edge tiles need to drop the taps that fall into padding). */
static void emit_tile(Conv *k, LLVMValueRef ow0, int64_t ow0c, int64_t T)
{
    Cg *cg = k->cg;
    LLVMValueRef acc[CG_MAX_ACC];
    int32_t na = (int32_t)(T * k->oct);
    prefetch_epilogue(k, ow0, T);
    init_acc(k, ow0, T, acc);
    CgAccLoop lc, lh;
    if (k->depthwise) {
        cg_acc_loop_begin(cg, &lh, k->khlo, k->khhi, acc, na);
        taps_depthwise(k, lh.iv, ow0, ow0c, T, acc);
        cg_acc_loop_end(cg, &lh, acc);
    } else {
        LLVMValueRef lo = k->kc ? mulc(cg, k->cc, k->kc) : cg_i64(cg, 0);
        LLVMValueRef hi = k->kc ? addc(cg, lo, k->kc) : cg_i64(cg, k->CB);
        cg_acc_loop_begin(cg, &lc, lo, hi, acc, na);
        cg_acc_loop_begin(cg, &lh, k->khlo, k->khhi, acc, na);
        taps_direct(k, lc.iv, lh.iv, ow0, ow0c, T, acc);
        cg_acc_loop_end(cg, &lh, acc);
        cg_acc_loop_end(cg, &lc, acc);
    }
    store_tile(k, ow0, T, acc);
}

/* `count` tiles of `width` pixels from ow0 whose taps all fall inside the
 * input: one copy of the tile code in a loop. */
static void emit_run(Conv *k, int64_t ow0, int64_t width, int64_t count)
{
    Cg *cg = k->cg;
    if (count == 1) {
        emit_tile(k, cg_i64(cg, ow0), -1, width);
        return;
    }
    CgAccLoop l;
    cg_acc_loop_begin(cg, &l, cg_i64(cg, 0), cg_i64(cg, count), NULL, 0);
    emit_tile(k, addc(cg, mulc(cg, l.iv, width), ow0), -1, width);
    cg_acc_loop_end(cg, &l, NULL);
}

/* One output row, split into ceil(OW / tile) tiles of nearly equal widths (a
 * narrow remainder tile would run at a fraction of the speed). Tiles that
 * touch the padding are emitted one by one at their known position, with
 * the taps that fall outside dropped; runs of inner tiles become loops. */
static void emit_row(Conv *k)
{
    int64_t lo = (k->pl + k->sw - 1) / k->sw; /* first pixel with all taps inside */
    int64_t last = k->W - 1 + k->pl - (k->KW - 1) * k->dw;
    int64_t hi = last < 0 ? 0 : last / k->sw + 1; /* end of those pixels */
    int64_t n = (k->OW + k->tile - 1) / k->tile, base = k->OW / n, extra = k->OW % n;
    int64_t run_at = 0, run_w = 0, run_n = 0;
    for (int64_t t = 0, ow = 0; t < n; t++) {
        int64_t w = base + (t < extra ? 1 : 0);
        bool inner = ow >= lo && ow + w <= hi;
        if (run_n && (!inner || w != run_w)) {
            emit_run(k, run_at, run_w, run_n);
            run_n = 0;
        }
        if (!inner) {
            emit_tile(k, cg_i64(k->cg, ow), ow, w);
        } else {
            run_at = run_n ? run_at : ow;
            run_w = w;
            run_n++;
        }
        ow += w;
    }
    if (run_n)
        emit_run(k, run_at, run_w, run_n);
}

/* The taps (kh, kw, i) of a tile of output pixels at known places of the
 * plane (pixel p at flattened index pix0 + p): rows and columns in the
 * padding are dropped at compile time. The input lanes i are a loop, PLANE_LANES
 * at a time, around the unrolled taps (kh, kw): unrolled whole, the tiles of
 * ResNet-50's 512-channel 3×3 convs at 7×7 on AVX2 made two kernels of 21,000 and
 * 23,000 instructions, two thirds of the model's code and most of its compile time. */
#define PLANE_LANES 2
static void taps_plane(Conv *k, LLVMValueRef icb, int64_t pix0, int64_t T, LLVMValueRef *acc)
{
    Cg *cg = k->cg;
    LLVMValueRef xo =
        add(cg, mulc(cg, k->nb, k->xs), mulc(cg, group_block(k, icb), k->H * k->W * k->bi));
    LLVMValueRef xp = tile_base(k, k->x, xo);
    LLVMValueRef wo = mulc(cg, add(cg, mulc(cg, k->ocb, k->CB), icb), k->KH * k->KW * k->bi * k->b);
    LLVMValueRef wp = tile_base(k, k->w, wo);
    int64_t wstride = k->CB * k->KH * k->KW * k->bi * k->b;
    int64_t u = k->bi % PLANE_LANES ? 1 : PLANE_LANES;
    CgAccLoop li;
    cg_acc_loop_begin(cg, &li, cg_i64(cg, 0), cg_i64(cg, k->bi / u), acc, (int32_t)(T * k->oct));
    xp = tile_base(k, xp, mulc(cg, li.iv, u));
    wp = tile_base(k, wp, mulc(cg, li.iv, u * k->b));
    LLVMValueRef sv[PLANE_LANES] = {NULL};
    for (int64_t i = 0; i < u && k->scale; i++)
        sv[i] = channel_scale(k, icb, addc(cg, mulc(cg, li.iv, u), i));
    for (int64_t kh = 0; kh < k->KH; kh++)
        for (int64_t kw = 0; kw < k->KW; kw++)
            for (int64_t i = 0; i < u; i++) {
                LLVMValueRef wv[8];
                int64_t tap = ((kh * k->KW + kw) * k->bi + i) * k->b;
                for (int64_t j = 0; j < k->oct && k->wpf; j++)
                    cg_prefetch_l2(cg, tile_base(k, tile_base(k, wp, k->wpf),
                                                 cg_i64(cg, tap + j * wstride)));
                for (int64_t j = 0; j < k->oct; j++) {
                    wv[j] = load_pinned(k, wp, tap + j * wstride, (int32_t)k->b);
                    if (sv[i])
                        wv[j] = LLVMBuildFMul(cg->b, wv[j], sv[i], "");
                }
                for (int64_t p = 0; p < T; p++) {
                    int64_t oh = (pix0 + p) / k->OW, ow = (pix0 + p) % k->OW;
                    int64_t ih = oh * k->sh - k->pt + kh * k->dh;
                    if (ih < 0 || ih >= k->H || !tap_ok(k, ow, kw))
                        continue;
                    int64_t iw = ow * k->sw - k->pl + kw * k->dw;
                    int64_t off = (ih * k->W + iw) * k->bi + i;
                    LLVMValueRef xv = load_pinned(k, xp, off, 1);
                    LLVMValueRef bc = cg_splat(cg, xv, (int32_t)k->b);
                    for (int64_t j = 0; j < k->oct; j++)
                        acc[p * k->oct + j] = cg_fma(cg, bc, wv[j], acc[p * k->oct + j]);
                }
            }
    cg_acc_loop_end(cg, &li, acc);
}

static void emit_plane_tile(Conv *k, int64_t pix0, int64_t T)
{
    Cg *cg = k->cg;
    LLVMValueRef acc[CG_MAX_ACC];
    int32_t na = (int32_t)(T * k->oct);
    init_acc(k, cg_i64(cg, pix0), T, acc);
    CgAccLoop lc;
    LLVMValueRef lo = k->kc ? mulc(cg, k->cc, k->kc) : cg_i64(cg, 0);
    LLVMValueRef hi = k->kc ? addc(cg, lo, k->kc) : cg_i64(cg, k->CB);
    cg_acc_loop_begin(cg, &lc, lo, hi, acc, na);
    taps_plane(k, lc.iv, pix0, T, acc);
    cg_acc_loop_end(cg, &lc, acc);
    store_tile(k, cg_i64(cg, pix0), T, acc);
}

/* A small plane (7×7) has rows narrower than a register tile: its pixels
 * are tiled in row-major order instead, tiles crossing rows. */
static void emit_plane(Conv *k)
{
    int64_t P = k->OH * k->OW;
    int64_t n = (P + k->tile - 1) / k->tile, base = P / n, extra = P % n;
    for (int64_t t = 0, pix = 0; t < n; t++) {
        int64_t w = base + (t < extra ? 1 : 0);
        emit_plane_tile(k, pix, w);
        pix += w;
    }
}

/* A group of output blocks whose weights are read from memory once: the
 * reduction runs in chunks of kc input blocks, and each chunk goes over every
 * row of every batch item while its weights are in L1, the sums so far
 * kept in the output (read back by the next chunk, finished by the last).
 * For small planes (ResNet's 7×7 and 14×14 at batch 1), where a group's
 * weights are otherwise read from memory for the first row and from L2 for
 * the few others, and the first row waits for memory. */
static void emit_kchunked(Conv *k, LLVMValueRef item)
{
    Cg *cg = k->cg;
    k->ocb = mulc(cg, item, k->oct);
    int64_t chunks = k->CB / k->kc;
    CgAccLoop lc, ln, lr;
    cg_acc_loop_begin(cg, &lc, cg_i64(cg, 0), cg_i64(cg, chunks), NULL, 0);
    k->cc = lc.iv;
    k->first = LLVMBuildICmp(cg->b, LLVMIntEQ, lc.iv, cg_i64(cg, 0), "first");
    k->last = LLVMBuildICmp(cg->b, LLVMIntEQ, lc.iv, cg_i64(cg, chunks - 1), "last");
    cg_acc_loop_begin(cg, &ln, cg_i64(cg, 0), cg_i64(cg, k->N), NULL, 0);
    k->nb = ln.iv;
    cg_acc_loop_begin(cg, &lr, cg_i64(cg, 0), cg_i64(cg, k->plane ? 1 : k->OH), NULL, 0);
    k->oh = lr.iv;
    /* The next chunk's weights, into L2 while this chunk's rows r0 .. r1 - 1 run:
     * from the second (the first reads this chunk's from L1 and L2), those whose
     * kernel rows all fall inside the input, each a share (spread_prefetch); with
     * no such rows, the second row, or the plane. During the last chunk, the
     * first chunk of the next group, which this thread most likely takes next (a
     * prefetch past the weights, from the last group, is harmless). */
    int64_t per = k->KH * k->KW * k->bi * k->b;
    int64_t r0 = (k->pt + k->sh - 1) / k->sh, lastr = k->H - 1 + k->pt - (k->KH - 1) * k->dh;
    int64_t r1 = lastr < 0 ? 0 : lastr / k->sh + 1;
    r0 = r0 < 1 ? 1 : r0;
    r1 = r1 > k->OH ? k->OH : r1;
    if (k->plane || r1 <= r0)
        r0 = k->OH > 1 && !k->plane ? 1 : 0, r1 = r0 + 1;
    k->pf_slots = r1 - r0;
    k->pf_slot = addc(cg, k->oh, -r0);
    LLVMValueRef in_rows = LLVMBuildICmp(cg->b, LLVMIntULT, k->pf_slot, cg_i64(cg, r1 - r0), "");
    LLVMValueRef pf =
        LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, k->nb, cg_i64(cg, 0), ""), in_rows, "");
    LLVMValueRef ahead =
        LLVMBuildSelect(cg->b, k->last, cg_i64(cg, (k->oct * k->CB - (chunks - 1) * k->kc) * per),
                        cg_i64(cg, k->kc * per), "");
    k->wpf = LLVMBuildSelect(cg->b, pf, ahead, cg_i64(cg, 0), "");
    if (k->plane) {
        emit_plane(k);
    } else {
        decode_row(k);
        emit_row(k);
    }
    cg_acc_loop_end(cg, &lr, NULL);
    cg_acc_loop_end(cg, &ln, NULL);
    cg_acc_loop_end(cg, &lc, NULL);
}

/* A row whose reduction runs in chunks of kc input blocks (choose_row_kchunk): each
 * chunk over every tile of the row, the sums so far kept in the output, which stays
 * in L1 between chunks. */
static void emit_row_chunked(Conv *k)
{
    Cg *cg = k->cg;
    int64_t chunks = k->CB / k->kc;
    CgAccLoop lc;
    cg_acc_loop_begin(cg, &lc, cg_i64(cg, 0), cg_i64(cg, chunks), NULL, 0);
    k->cc = lc.iv;
    k->first = LLVMBuildICmp(cg->b, LLVMIntEQ, lc.iv, cg_i64(cg, 0), "first");
    k->last = LLVMBuildICmp(cg->b, LLVMIntEQ, lc.iv, cg_i64(cg, chunks - 1), "last");
    emit_row(k);
    cg_acc_loop_end(cg, &lc, NULL);
}

static CgKernel emit_blocked(Conv *k)
{
    Cg *cg = k->cg;
    k->OB = (k->O + k->b - 1) / k->b;
    k->w = pack_direct(k);
    k->bias = bias_global(k);
    LLVMValueRef fn = cg_kernel_begin(cg, k->n->name);
    k->out = cg_arg_ptr(cg, 0);
    k->x = cg_arg_ptr(cg, 1);
    k->res = k->a->epi.residual ? cg_arg_ptr(cg, k->n->ninputs) : NULL;
    k->scale = k->a->scaled_in ? cg_arg_ptr(cg, k->n->ninputs + 1) : NULL;
    CgAccLoop l;
    cg_acc_loop_begin(cg, &l, cg->begin, cg->end, NULL, 0);
    LLVMValueRef item = cg_item(cg, l.iv);
    if (k->kc && !k->row_kc) {
        emit_kchunked(k, item);
    } else {
        decode_item(k, item);
        if (k->plane)
            emit_plane(k);
        else if (k->row_kc)
            emit_row_chunked(k);
        else
            emit_row(k);
    }
    cg_acc_loop_end(cg, &l, NULL);
    cg_kernel_end(cg);
    if (k->kc && !k->row_kc)
        return (CgKernel){fn, k->OB / k->oct};
    return (CgKernel){fn, k->N * (k->OB / k->oct) * (k->plane ? 1 : k->OH)};
}

/* Chunked reduction (emit_kchunked) where a group's weights would be read
 * from memory for few rows: planes of at most KCHUNK_PIXELS pixels over the
 * batch, in groups enough to share among threads; chunks of weights that
 * stay in L1 (KCHUNK_WEIGHT_BYTES). Measured on ResNet-50 at batch 1 (AVX-512,
 * 2 threads): 512→512 3×3 at 7×7 0.79 → 0.56 ms, 1×1 512→2048 0.37 → 0.31.
 * A chunk takes half of a 32 KiB L1, not all of it: the tile's inputs need
 * the rest, and with 32 KiB chunks on a 48 KiB L1 (Intel, AVX-512) ResNet-50's
 * 1×1 convs at 7×7 and 14×14 ran 8% slower with their weights in L3
 * (bench/conv_layers.c, cold), the model at batch 1 4%.
 *
 * With more than one batch item the chunked pass costs what the plain one
 * does not: each group of output blocks reads the whole batch's input again,
 * from L3 or memory once it is larger than KCHUNK_INPUT_BYTES (an L2, or half
 * of one), where the plain pass reads an item's input while it is in L2 and
 * reads the weights again for each item instead. So a batch is chunked only
 * where that moves no more bytes (chunk_pays). ResNet-50 at batch 8, 2 threads
 * (Intel, AVX-512, cnnrun --profile): layer3's 1×1 1024→256 convs 2.9–3.2 →
 * 2.5–2.6 ms, its 256→1024 2.7–2.9 → 2.5–2.7 (nine runs of ten), layer4's
 * 2048→512 3.1–3.3 → 2.7–2.8; its 512→2048 (input 0.8 MB) and its 3×3 stride-2
 * conv (9.4 MB of weights to read eight times) stay chunked; its 1×1 1024→2048
 * shortcut, 5.3–5.6 → 5.7 ms, is the one layer that lost. */
#define KCHUNK_PIXELS 1600
#define KCHUNK_MIN_GROUPS 8
#define KCHUNK_WEIGHT_BYTES (16 * 1024)
#define KCHUNK_INPUT_BYTES (1024 * 1024)

/* Whether the chunked pass reads no more bytes from beyond L2 than the plain
 * one (above); per: the weight bytes of one input block of one group. */
static bool chunk_pays(const Conv *k, int64_t per)
{
    if (k->N == 1)
        return true;
    int64_t groups = k->OB / k->oct, wt = per * groups * k->CB;
    int64_t in = k->N * k->CB * k->bi * k->H * k->W * (int64_t)sizeof(float);
    int64_t chunked = wt + (in <= KCHUNK_INPUT_BYTES ? in : in * groups);
    return chunked <= wt * k->N + in;
}

/* Input blocks a chunk of `bytes` of weights holds (per: an input block's), at least
 * one, at most CB, and dividing CB. */
static int64_t chunk_blocks(const Conv *k, int64_t bytes, int64_t per)
{
    int64_t kc = bytes / per;
    kc = kc < 1 ? 1 : kc > k->CB ? k->CB : kc;
    while (k->CB % kc)
        kc--;
    return kc;
}

static void choose_kchunk(Conv *k)
{
    k->kc = 0;
    if (k->depthwise || k->fused || k->res_is_out || (k->plane && k->KH * k->KW > 1) ||
        k->plain_out || k->bi < 2 || k->OBg || k->N * k->OH * k->OW > KCHUNK_PIXELS ||
        k->OB / k->oct < KCHUNK_MIN_GROUPS)
        return;
    int64_t per = tile_block_bytes(k);
    if (!chunk_pays(k, per))
        return;
    k->kc = chunk_blocks(k, KCHUNK_WEIGHT_BYTES, per);
}

/* A row's reduction in chunks whose weights stay in L1 (emit_row_chunked). Unchunked,
 * a tile reads its output blocks' weights whole, from L2 once they outgrow L1 (1×1
 * convs of 512 input channels and more, 3×3 convs of 128), a weight vector for every
 * row of FMAs; in chunks of ROW_KCHUNK_WEIGHT_BYTES over every tile of the row, the
 * weights are read from L1 and the tile's sums stored and loaded once a chunk.
 * bench/conv_layers.c's layers against the whole reduction, one thread, medians of 9
 * interleaved rounds (Intel Xeon, AVX-512): batch 8, 1×1 512→128 28×28 0.95, 1024→256
 * 14×14 0.94, 2048→512 7×7 0.95, 384→1536 14×14 0.97, 3×3/2 256→256 0.95; batch 1,
 * 1×1 512→128 0.93, 3×3/2 128→128 0.96; chunks of 8 or 32 KiB gained less, and
 * reductions of 32 KiB or less (256→64) nothing. With 8 lanes (AVX2) a row of FMAs
 * needs half the weight bytes, which L2 keeps up with: no gain was measured there
 * (1.00–1.015), so only 16-lane blocks are chunked. */
#define ROW_KCHUNK_WEIGHT_BYTES (16 * 1024)

static void choose_row_kchunk(Conv *k)
{
    if (k->kc || k->b < 16 || k->depthwise || k->fused || k->res_is_out || k->plane ||
        k->plain_out || k->bi < 2 || k->OBg)
        return;
    int64_t per = tile_block_bytes(k);
    if (per * k->CB <= 2 * ROW_KCHUNK_WEIGHT_BYTES)
        return;
    k->kc = chunk_blocks(k, ROW_KCHUNK_WEIGHT_BYTES, per);
    k->row_kc = true;
}

/* Register tile: T pixels × oct vectors of accumulators, leaving registers
 * for the oct weight vectors, the broadcast and address arithmetic (wide: a 1×1
 * conv's 6 × 4, below); then the plane tiling and the chunked reduction, which
 * depend on it. */
static void choose_shape(Conv *k, bool wide)
{
    int64_t regs = k->cg->nregs;
    if (wide) {
        k->oct = 4;
        k->tile = 6;
    } else {
        k->oct = k->depthwise || k->OB % 2 || k->OBg % 2 ? 1 : 2;
        k->tile = k->depthwise ? regs / 2 : (regs - 5) / k->oct;
        if (k->tile * k->oct > CG_MAX_ACC)
            k->tile = CG_MAX_ACC / k->oct;
    }
    /* Plane tiling unrolls every tap for each tile: only for planes of a few
     * tiles whose rows would leave the register tile half empty. With 32
     * registers a 7-pixel row already gives 14 accumulators, and LLVM's
     * scheduler spills the long unrolled tiles there. */
    int64_t tiles = (k->OH * k->OW + k->tile - 1) / k->tile;
    k->plane = !k->depthwise && k->cg->nregs <= 16 && k->OW < 2 * k->tile && tiles <= 10 &&
               tiles * k->KH * k->KW * k->bi <= 1024;
    /* A 1×1 conv whose plane flatten_pointwise could not cut into long rows
     * (strided, where conv_algo left it so; a pixel count with no divisor
     * between the row and 64) tiles it across rows instead. */
    if (!k->depthwise && k->KH == 1 && k->KW == 1 && k->OW < k->tile && tiles <= 10 &&
        tiles * k->bi <= 1024)
        k->plane = true;
    choose_kchunk(k);
}

/* A 1×1 conv on 32 registers takes a tile of 6 pixels × 4 blocks, not 13 × 2. A step
 * of the reduction loads T + oct vectors for T · oct FMAs, and on the Intel Xeon
 * (AVX-512) each load costs about a fifth of an FMA cycle even from L1: alone and hot,
 * the two shapes ran at 183 and 181 GFLOP/s of a 214 peak, and the 13 × 2 tile with
 * one broadcast a step instead of 13 at 211. In ResNet-50 at batch 8 (2 threads,
 * cnnrun --profile, ABBA rounds) the 1×1 convs at 56×56 took 0.81–0.96 of their time,
 * at 28×28 0.92–0.98, at 14×14 and 7×7 0.97–1.03; the model 0.975–0.98. 7 × 4
 * spills, 3 × 8 reads eight weight streams (1.3× slower), and the 3×3 convs gained
 * nothing (0.94–1.06).
 *
 * Four blocks a group halve the work items, and a few items are shared unevenly among
 * threads: so only where they stay many (at least 32, or 16 in fours), and not where
 * the reduction is chunked whole (emit_kchunked), whose items are the output groups
 * alone. MobileNetV2's 96→576 and 160→960 at batch 8 (9 and 15 chunked groups) took
 * 1.05–1.11 of their time, EfficientNet-B0's 1152→192 at 7×7, batch 1 (3 items),
 * 1.2–1.27. */
static void choose_tile(Conv *k)
{
    bool wide = k->cg->nregs >= 32 && k->KH * k->KW == 1 && !k->depthwise && !k->fused &&
                !k->OBg && k->bi == k->b && k->OB % 4 == 0;
    choose_shape(k, wide);
    int64_t items = k->N * (k->OB / 4) * (k->plane ? 1 : k->OH);
    if (wide && (k->kc || (items < 32 && (items < 16 || items % 4))))
        choose_shape(k, false);
    choose_row_kchunk(k);
}

/* ---- a 1×1 conv computed inside the depthwise conv that reads it -------- */

/* A work item is one band of output rows of the channel blocks of one register tile of
 * the 1×1 conv (e: one or two blocks) of one batch item: e computes the input rows of
 * the band, for those blocks only, into scratch, with its own epilogue; the depthwise
 * conv (d) reads them there, a block at a time. A plane whose rows
 * take at most FUSED_BAND_BYTES is one band; a larger one is cut into bands whose
 * input rows fit, and the rows two bands share are computed by both. The scratch stays
 * in L2, where the unfused pair wrote the 1×1 conv's whole output to memory and read it
 * back (EfficientNet-B0's first expansion, batch 8: 38 MB). */
#define FUSED_BAND_BYTES (256 * 1024)

/* Input rows that `rows` consecutive output rows of the depthwise conv read, at most. */
static int64_t band_rows_in(const Conv *d, int64_t rows)
{
    int64_t n = (rows - 1) * d->sh + (d->KH - 1) * d->dh + 1;
    return n < d->H ? n : d->H;
}

/* max(a, lo) and min(a, hi) of i64 values */
static LLVMValueRef at_least(Cg *cg, LLVMValueRef a, int64_t lo)
{
    return select_lt(cg, a, cg_i64(cg, lo), cg_i64(cg, lo), a);
}

static LLVMValueRef at_most(Cg *cg, LLVMValueRef a, int64_t hi)
{
    return select_lt(cg, cg_i64(cg, hi), a, cg_i64(cg, hi), a);
}

/* A conv computed inside another node's kernel (emit_fused, cg_emit_conv_pool): the
 * blocked direct kernel into blocks of b lanes, its reduction whole. */
static void init_inlined(Conv *e, Cg *cg, int32_t id, int64_t b)
{
    conv_init(e, cg, id);
    e->b = b;
    e->bi = input(e, 0)->type.layout == LAYOUT_PLAIN ? 1 : b;
    e->CB = e->C / e->bi;
    e->OB = e->O / b;
    e->fused = true;
}

static CgKernel emit_fused(Cg *cg, int32_t node)
{
    Conv e, d;
    conv_init(&d, cg, node);
    int32_t pid = d.n->inputs[0];
    if (cg->g->nodes[pid].mem.kind != MEM_INLINED || !cg_weights_constant(cg, node) ||
        !cg_weights_constant(cg, pid))
        ICE("conv2d %s: fused_in without an inlined 1×1 conv of constant weights", d.n->name);
    int64_t b = d.n->type.block;
    init_inlined(&e, cg, pid, b);
    d.b = d.bi = b;
    d.depthwise = true;
    d.CB = d.C / b;
    d.OB = d.O / b;
    int64_t row_bytes = d.W * b * (int64_t)sizeof(float), rows = d.OH;
    if (band_rows_in(&d, rows) * row_bytes > FUSED_BAND_BYTES) {
        rows = 1;
        while (rows < d.OH && band_rows_in(&d, rows + 1) * row_bytes <= FUSED_BAND_BYTES)
            rows++;
        int64_t n = (d.OH + rows - 1) / rows;
        rows = (d.OH + n - 1) / n;
    }
    int64_t bands = (d.OH + rows - 1) / rows;
    if (bands == 1) /* the whole plane: its rows may be cut anew */
        flatten_pointwise(&e);
    choose_tile(&e);
    choose_tile(&d);
    if (bands > 1)
        e.plane = false;
    e.w = pack_direct(&e);
    e.bias = bias_global(&e);
    d.w = pack_direct(&d);
    d.bias = bias_global(&d);

    LLVMValueRef fn = cg_kernel_begin(cg, d.n->name);
    d.out = cg_arg_ptr(cg, 0);
    LLVMValueRef x = cg_arg_ptr(cg, 1); /* the 1×1 conv's input (module.c's run_call) */
    d.res = d.a->epi.residual ? cg_arg_ptr(cg, d.n->ninputs) : NULL;
    /* The e.oct blocks of an item lie a plane apart (as in the tensor); one band is all
     * H rows, which the 1×1 conv computes whether or not they are read. */
    int64_t plane = d.H * d.W * b, groups = d.OB / e.oct;
    LLVMValueRef buf = cg_scratch(
        cg, (e.oct - 1) * plane + (bands == 1 ? d.H : band_rows_in(&d, rows)) * d.W * b);
    CgAccLoop l, lr, lj;
    cg_acc_loop_begin(cg, &l, cg->begin, cg->end, NULL, 0);
    LLVMValueRef band = LLVMBuildSRem(cg->b, l.iv, cg_i64(cg, bands), "band");
    LLVMValueRef r = LLVMBuildSDiv(cg->b, l.iv, cg_i64(cg, bands), "");
    LLVMValueRef cb = mulc(cg, LLVMBuildSRem(cg->b, r, cg_i64(cg, groups), ""), e.oct);
    e.ocb = cb;
    e.nb = d.nb = LLVMBuildSDiv(cg->b, r, cg_i64(cg, groups), "n");
    LLVMValueRef oh_lo = mulc(cg, band, rows), oh_hi = at_most(cg, addc(cg, oh_lo, rows), d.OH);
    LLVMValueRef ih_lo = cg_i64(cg, 0), ih_hi = cg_i64(cg, e.OH);
    if (bands > 1) {
        ih_lo = at_least(cg, addc(cg, mulc(cg, oh_lo, d.sh), -d.pt), 0);
        ih_hi = at_most(cg, addc(cg, mulc(cg, oh_hi, d.sh),
                                 (d.KH - 1) * d.dh + 1 - d.sh - d.pt), d.H);
    }
    /* Row ih_lo of block cb of item n is the scratch's first: the kernels' own offsets
     * (their output's, their input's) shifted back by where that row would be. */
    e.x = x;
    e.os = 0;
    e.out = tile_base(&e, buf, LLVMBuildNeg(cg->b, mulc(cg, add(cg, mulc(cg, e.ocb, e.OH), ih_lo),
                                                         e.OW * b), ""));
    d.xs = 0;
    d.x = tile_base(&d, buf, LLVMBuildNeg(cg->b, mulc(cg, add(cg, mulc(cg, cb, d.H), ih_lo),
                                                       d.W * b), ""));
    if (e.plane) {
        e.oh = cg_i64(cg, 0);
        emit_plane(&e);
    } else {
        cg_acc_loop_begin(cg, &lr, ih_lo, ih_hi, NULL, 0);
        e.oh = lr.iv;
        decode_row(&e);
        emit_row(&e);
        cg_acc_loop_end(cg, &lr, NULL);
    }
    cg_acc_loop_begin(cg, &lj, cg_i64(cg, 0), cg_i64(cg, e.oct), NULL, 0);
    d.ocb = add(cg, cb, lj.iv);
    cg_acc_loop_begin(cg, &lr, oh_lo, oh_hi, NULL, 0);
    d.oh = lr.iv;
    decode_row(&d);
    emit_row(&d);
    cg_acc_loop_end(cg, &lr, NULL);
    cg_acc_loop_end(cg, &lj, NULL);
    cg_acc_loop_end(cg, &l, NULL);
    cg_kernel_end(cg);
    return (CgKernel){fn, d.N * groups * bands};
}

/* ---- a conv computed inside the maxpool that reads it -------------------- */

/* A work item is one band of output rows of the maxpool, of the channel blocks of one
 * register tile of the conv (e.oct), of one batch item: the conv computes the rows the
 * band's windows read, for those blocks only, into scratch, with its own epilogue; the
 * maxpool takes its windows there (cg_maxpool_rows). A plane whose conv rows take at
 * most POOL_BAND_BYTES is one band; a larger one is cut into bands whose rows fit, and
 * a conv row that two bands' windows share is computed by both. ResNet-50's stem and
 * pool at batch 8 (2 threads, Intel Xeon AVX-512, cnnrun --profile, ABBA rounds):
 * 6.66 ms unfused (5.33 the conv, 1.33 the pool), 5.95 in bands of 256 KiB (17 conv rows
 * for 16 pooled ones: 6% computed twice), 5.84 in bands of 1 MiB (57 for 56), which
 * L2 still holds. */
#define POOL_BAND_BYTES (1024 * 1024)
/* Work items enough for many threads: a batch item of a conv of few channel blocks
 * (ResNet's stem: 2 register tiles) is cut into more bands than L2 asks for. */
#define POOL_MIN_ITEMS 16

CgKernel cg_emit_conv_pool(Cg *cg, int32_t node)
{
    const Node *pn = &cg->g->nodes[node];
    const PoolAttrs *pa = &pn->attrs.pool;
    int32_t cid = pn->inputs[0];
    if (cg->g->nodes[cid].mem.kind != MEM_INLINED || !cg_weights_constant(cg, cid))
        ICE("maxpool %s: fused_in without an inlined conv of constant weights", pn->name);
    Conv e;
    int64_t b = cg->g->nodes[cid].type.block;
    init_inlined(&e, cg, cid, b);
    choose_tile(&e);
    e.plane = false;
    e.w = pack_direct(&e);
    e.bias = bias_global(&e);

    int64_t PH = pn->type.dims[2], s = pa->stride[0];
    int64_t span = (int64_t)(pa->kernel[0] - 1) * pa->dilation[0] + 1;
    int64_t row_bytes = e.OW * b * e.oct * (int64_t)sizeof(float), rows = PH;
    if (((PH - 1) * s + span) * row_bytes > POOL_BAND_BYTES) {
        rows = 1;
        while (rows < PH && (rows * s + span) * row_bytes <= POOL_BAND_BYTES)
            rows++;
        int64_t n = (PH + rows - 1) / rows;
        rows = (PH + n - 1) / n;
    }
    int64_t groups = e.OB / e.oct, want = POOL_MIN_ITEMS / (e.N * groups);
    want = want < PH ? want : PH; /* bands enough for the threads, of a row at least */
    if ((PH + rows - 1) / rows < want)
        rows = (PH + want - 1) / want;
    int64_t bands = (PH + rows - 1) / rows;
    int64_t band_in = (rows - 1) * s + span < e.OH ? (rows - 1) * s + span : e.OH;

    LLVMValueRef fn = cg_kernel_begin(cg, pn->name);
    LLVMValueRef out = cg_arg_ptr(cg, 0);
    e.x = cg_arg_ptr(cg, 1); /* the conv's input (module.c's run_call) */
    LLVMValueRef buf = cg_scratch(cg, e.oct * band_in * e.OW * b);
    CgAccLoop l, lr, lj;
    cg_acc_loop_begin(cg, &l, cg->begin, cg->end, NULL, 0);
    LLVMValueRef band = LLVMBuildSRem(cg->b, l.iv, cg_i64(cg, bands), "band");
    LLVMValueRef r = LLVMBuildSDiv(cg->b, l.iv, cg_i64(cg, bands), "");
    e.ocb = mulc(cg, LLVMBuildSRem(cg->b, r, cg_i64(cg, groups), ""), e.oct);
    e.nb = LLVMBuildSDiv(cg->b, r, cg_i64(cg, groups), "n");
    LLVMValueRef ph_lo = mulc(cg, band, rows), ph_hi = at_most(cg, addc(cg, ph_lo, rows), PH);
    LLVMValueRef ih_lo = at_least(cg, addc(cg, mulc(cg, ph_lo, s), -pa->pad[0]), 0);
    LLVMValueRef ih_hi =
        at_most(cg, addc(cg, mulc(cg, ph_hi, s), span - s - pa->pad[0]), e.OH);
    /* Row ih_lo of block ocb is the scratch's first, a band of band_in rows a block. */
    LLVMValueRef first = add(cg, mulc(cg, e.ocb, band_in), ih_lo);
    LLVMValueRef base = tile_base(&e, buf, LLVMBuildNeg(cg->b, mulc(cg, first, e.OW * b), ""));
    e.out = base;
    e.os = 0;
    e.out_rows = band_in;
    cg_acc_loop_begin(cg, &lr, ih_lo, ih_hi, NULL, 0);
    e.oh = lr.iv;
    decode_row(&e);
    emit_row(&e);
    cg_acc_loop_end(cg, &lr, NULL);
    CgView v = cg_view(cg, cid);
    v.cstride = band_in * e.OW * b;
    v.item = 0;
    cg_acc_loop_begin(cg, &lj, cg_i64(cg, 0), cg_i64(cg, e.oct), NULL, 0);
    cg_maxpool_rows(cg, node, &v, base, e.nb, add(cg, e.ocb, lj.iv), ph_lo, ph_hi, out);
    cg_acc_loop_end(cg, &lj, NULL);
    cg_acc_loop_end(cg, &l, NULL);
    cg_kernel_end(cg);
    return (CgKernel){fn, e.N * groups * bands};
}

/* ---- the generic path: any layouts, groups, channels ------------------- */

/* Element (n, c, h, w) of a rank-4 value in its layout. */
static LLVMValueRef elem_index(Cg *cg, const TensorType *t, int64_t stride, LLVMValueRef n,
                               LLVMValueRef c, LLVMValueRef h, LLVMValueRef w)
{
    int64_t H = t->dims[2], W = t->dims[3];
    LLVMValueRef base = mulc(cg, n, stride);
    if (t->layout == LAYOUT_NCHWC) {
        LLVMValueRef blk = cg_i64(cg, t->block);
        LLVMValueRef cb = LLVMBuildSDiv(cg->b, c, blk, ""), ci = LLVMBuildSRem(cg->b, c, blk, "");
        LLVMValueRef hw = add(cg, add(cg, mulc(cg, cb, H * W), mulc(cg, h, W)), w);
        return add(cg, base, add(cg, mulc(cg, hw, t->block), ci));
    }
    if (t->layout != LAYOUT_PLAIN)
        ICE("conv2d: unsupported layout %d", (int)t->layout);
    return add(cg, base, add(cg, mulc(cg, add(cg, mulc(cg, c, H), h), W), w));
}

static LLVMValueRef in_range(Cg *cg, LLVMValueRef v, int64_t hi)
{
    LLVMValueRef ge = LLVMBuildICmp(cg->b, LLVMIntSGE, v, cg_i64(cg, 0), "");
    LLVMValueRef lt = LLVMBuildICmp(cg->b, LLVMIntSLT, v, cg_i64(cg, hi), "");
    return LLVMBuildAnd(cg->b, ge, lt, "");
}

/* acc += x[n, c, ih, iw] * w[o, c - c0, kh, kw], padding reading as zero. */
static LLVMValueRef generic_tap(Conv *k, LLVMValueRef ow, LLVMValueRef o, LLVMValueRef c,
                                LLVMValueRef kh, LLVMValueRef kw, LLVMValueRef acc)
{
    Cg *cg = k->cg;
    const TensorType *xt = &input(k, 0)->type;
    int64_t cpg = input(k, 1)->type.dims[1], opg = k->O / k->a->groups;
    LLVMValueRef ih = add(cg, k->ih0, mulc(cg, kh, k->dh));
    LLVMValueRef iw = add(cg, addc(cg, mulc(cg, ow, k->sw), -k->pl), mulc(cg, kw, k->dw));
    LLVMValueRef ok = LLVMBuildAnd(cg->b, in_range(cg, ih, k->H), in_range(cg, iw, k->W), "");
    LLVMValueRef zero = cg_i64(cg, 0);
    LLVMValueRef cx = add(cg, mulc(cg, LLVMBuildSDiv(cg->b, o, cg_i64(cg, opg), ""), cpg), c);
    LLVMValueRef xi = elem_index(cg, xt, k->xs, k->nb, cx, LLVMBuildSelect(cg->b, ok, ih, zero, ""),
                                 LLVMBuildSelect(cg->b, ok, iw, zero, ""));
    LLVMValueRef xv = cg_load(cg, cg_gep(cg, k->x, xi), 1);
    xv = LLVMBuildSelect(cg->b, ok, xv, cg_f32(cg, 0.0f), "");
    LLVMValueRef wi = add(cg, mulc(cg, add(cg, mulc(cg, add(cg, mulc(cg, o, cpg), c), k->KH), kh),
                                   k->KW),
                          kw);
    return cg_fma(cg, xv, cg_load(cg, cg_gep(cg, k->w, wi), 1), acc);
}

static void generic_pixel(Conv *k, LLVMValueRef o, LLVMValueRef ow)
{
    Cg *cg = k->cg;
    int64_t cpg = input(k, 1)->type.dims[1];
    LLVMValueRef acc = k->bias ? cg_load(cg, cg_gep(cg, k->bias, o), 1) : cg_f32(cg, 0.0f);
    CgAccLoop lc, lh, lw;
    cg_acc_loop_begin(cg, &lc, cg_i64(cg, 0), cg_i64(cg, cpg), &acc, 1);
    cg_acc_loop_begin(cg, &lh, cg_i64(cg, 0), cg_i64(cg, k->KH), &acc, 1);
    cg_acc_loop_begin(cg, &lw, cg_i64(cg, 0), cg_i64(cg, k->KW), &acc, 1);
    acc = generic_tap(k, ow, o, lc.iv, lh.iv, lw.iv, acc);
    cg_acc_loop_end(cg, &lw, &acc);
    cg_acc_loop_end(cg, &lh, &acc);
    cg_acc_loop_end(cg, &lc, &acc);
    LLVMValueRef r = NULL;
    if (k->res) {
        const TensorType *rt = &input(k, k->n->ninputs - 1)->type;
        r = cg_load(cg, cg_gep(cg, k->res, elem_index(cg, rt, k->rs, k->nb, o, k->oh, ow)), 1);
    }
    LLVMValueRef v = cg_epilogue(cg, &k->a->epi, acc, r);
    cg_store(cg, v, cg_gep(cg, k->out, elem_index(cg, &k->n->type, k->os, k->nb, o, k->oh, ow)));
}

/* Work items N × O × OH; one scalar output at a time. */
static CgKernel emit_generic(Conv *k)
{
    Cg *cg = k->cg;
    const Node *wn = input(k, 1);
    if (!wn->data)
        ICE("conv2d %s: weight %s is not bound", k->n->name, wn->name);
    k->w = cg_weights(cg, wn->name, wn->data, ir_numel(&wn->type));
    k->bias = bias_global(k);
    LLVMValueRef fn = cg_kernel_begin(cg, k->n->name);
    k->out = cg_arg_ptr(cg, 0);
    k->x = cg_arg_ptr(cg, 1);
    k->res = k->a->epi.residual ? cg_arg_ptr(cg, k->n->ninputs) : NULL;
    CgAccLoop l, lw;
    cg_acc_loop_begin(cg, &l, cg->begin, cg->end, NULL, 0);
    LLVMValueRef ohv = cg_i64(cg, k->OH), ov = cg_i64(cg, k->O);
    k->oh = LLVMBuildSRem(cg->b, l.iv, ohv, "oh");
    LLVMValueRef r = LLVMBuildSDiv(cg->b, l.iv, ohv, "");
    LLVMValueRef o = LLVMBuildSRem(cg->b, r, ov, "o");
    k->nb = LLVMBuildSDiv(cg->b, r, ov, "n");
    k->ih0 = addc(cg, mulc(cg, k->oh, k->sh), -k->pt);
    cg_acc_loop_begin(cg, &lw, cg_i64(cg, 0), cg_i64(cg, k->OW), NULL, 0);
    generic_pixel(k, o, lw.iv);
    cg_acc_loop_end(cg, &lw, NULL);
    cg_acc_loop_end(cg, &l, NULL);
    cg_kernel_end(cg);
    return (CgKernel){fn, k->N * k->O * k->OH};
}

/* ---- dispatch ---------------------------------------------------------- */

static bool blocked_as(const TensorType *t, int64_t b)
{
    return t->layout == LAYOUT_NCHWC && t->block == b;
}

/* Input, output and residual all plain: channels the blocked kernels cannot
 * take (58 of ShuffleNet, groups that split blocks) run the implicit GEMM of
 * conv_train.c, vectors along the rows, which reads its weights as they are
 * (OIHW) and suits constants as well as graph values. */
static bool all_plain(const Conv *k)
{
    for (int32_t i = 0; i < k->n->ninputs; i++) {
        const Node *in = input(k, i);
        if (in->op != OP_PARAM && in->type.layout != LAYOUT_PLAIN)
            return false;
    }
    return k->n->type.layout == LAYOUT_PLAIN;
}

/* A conv whose output channels no block divides (24, 40 of MobileNets and
 * EfficientNet) reading blocks of the full vector: the direct kernel with
 * zero weights in its last block, its tiles transposed into the plain output
 * (layout.c has it read the blocks its producer wrote, no reorder). */
static bool plain_out_of_blocks(const Conv *k, int64_t b)
{
    const TensorType *xt = &input(k, 0)->type;
    if (k->n->type.layout != LAYOUT_PLAIN || k->a->groups != 1 || !blocked_as(xt, b) ||
        b != k->cg->vec || b < 2 || b > 16 || (b & (b - 1)))
        return false;
    return !k->a->epi.residual || input(k, k->n->ninputs - 1)->type.layout == LAYOUT_PLAIN;
}

CgKernel cg_emit_conv2d(Cg *cg, int32_t node)
{
    const ConvAttrs *ca = &cg->g->nodes[node].attrs.conv;
    if (ca->fused_in)
        return emit_fused(cg, node);
    if (ca->scaled_in && (!cg_weights_constant(cg, node) || ca->winograd ||
                          cg->g->nodes[cg->g->nodes[node].inputs[0]].mem.kind != MEM_INLINED))
        ICE("conv2d %s: scaled_in without an inlined product or constant weights",
            cg->g->nodes[node].name);
    if (!cg_weights_constant(cg, node))
        return cg_emit_conv2d_runtime(cg, node);
    if (cg_runs_winograd(cg, node))
        return cg_emit_conv2d_winograd(cg, node);
    Conv k;
    conv_init(&k, cg, node);
    const TensorType *xt = &input(&k, 0)->type, *yt = &k.n->type;
    int64_t b = yt->layout == LAYOUT_NCHWC ? yt->block : cg->vec; /* the lanes, or half of them */
    bool out_blocked = blocked_as(yt, b) && b <= 16;
    bool direct = k.a->groups == 1 && (blocked_as(xt, b) || xt->layout == LAYOUT_PLAIN);
    k.depthwise = k.a->groups == k.C && k.C == k.O && blocked_as(xt, b);
    /* Groups of whole blocks on both sides (ResNeXt's 32 × 4 is not; 32 × 16 is):
     * the direct kernel over each group's own input blocks. */
    bool grouped = k.a->groups > 1 && !k.depthwise && blocked_as(xt, b) &&
                   (k.C / k.a->groups) % b == 0 && (k.O / k.a->groups) % b == 0;
    if (out_blocked && (direct || k.depthwise || grouped)) {
        k.b = b;
        k.bi = xt->layout == LAYOUT_PLAIN ? 1 : b;
        k.CB = (k.depthwise ? k.C : k.C / k.a->groups) / k.bi;
        k.OBg = grouped ? k.O / k.a->groups / b : 0;
        k.OB = k.O / b;
        flatten_pointwise(&k);
        choose_tile(&k);
        return emit_blocked(&k);
    }
    if (plain_out_of_blocks(&k, b)) {
        k.b = k.bi = b;
        k.CB = k.C / b;
        k.OB = (k.O + b - 1) / b;
        k.plain_out = true;
        flatten_pointwise(&k);
        choose_tile(&k);
        return emit_blocked(&k);
    }
    if (ca->scaled_in)
        ICE("conv2d %s: scaled_in, but not the blocked direct kernel", k.n->name);
    if (all_plain(&k))
        return cg_emit_conv2d_runtime(cg, node);
    return emit_generic(&k);
}
