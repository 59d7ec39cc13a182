/* conv_train.c: convolutions whose weights are values of the graph (a training
 * step), on plain NCHW values with OIHW weights, any groups, stride, dilation
 * and asymmetric padding.
 *
 * conv2d and conv2d_grad_input are implicit GEMMs over rows of their result:
 * a work item owns one row of `mr` destination channels, its register tiles
 * are mr channels × vectors of pixels along the row, and the reduction runs
 * over source channels and kernel rows (at run time) and kernel columns
 * (unrolled), broadcasting a weight and loading a vector of source pixels
 * whose padding lanes are masked by constants. The gradient of a strided
 * convolution splits each row of dx by phase (iw mod stride): the pixels of one
 * phase take contiguous pixels of dy and are stored strided. Planes whose rows
 * would leave over a quarter of the lanes empty (7×7) are tiled whole instead,
 * vectors across rows, every tap unrolled so each lane reads at a constant
 * offset. Depthwise convolutions, with a single channel per item, take blocks
 * of rows instead, each input row loaded once for every output row it feeds.
 *
 * conv2d_grad_weight is a GEMM of output channels × (input channel, kernel
 * column) for one kernel row per work item, reducing over batch and pixels
 * with vectors along the row, each accumulator summed across lanes at the end. */
#include "cg.h"

typedef struct Geo {
    int64_t N, C, H, W, O, OH, OW, KH, KW, sh, sw, dh, dw, pt, pl, G, cpg, opg;
} Geo;

static Geo geometry(const Cg *cg, const Node *n, int32_t xin, int32_t win, int32_t yin)
{
    const Graph *g = cg->g;
    const TensorType *xt = xin >= 0 ? &g->nodes[n->inputs[xin]].type : &n->type;
    const TensorType *wt = win >= 0 ? &g->nodes[n->inputs[win]].type : &n->type;
    const TensorType *yt = yin >= 0 ? &g->nodes[n->inputs[yin]].type : &n->type;
    const ConvAttrs *a = &n->attrs.conv;
    const TensorType *ts[3] = {xt, wt, yt};
    for (int32_t i = 0; i < 3; i++)
        if (ts[i]->rank != 4 || ts[i]->layout != LAYOUT_PLAIN)
            ICE("%s %s: expects plain rank-4 values", ir_ops[n->op].name, n->name);
    Geo k = {.N = xt->dims[0], .C = xt->dims[1], .H = xt->dims[2], .W = xt->dims[3]};
    k.O = yt->dims[1], k.OH = yt->dims[2], k.OW = yt->dims[3];
    k.KH = wt->dims[2], k.KW = wt->dims[3];
    k.sh = a->stride[0], k.sw = a->stride[1], k.dh = a->dilation[0], k.dw = a->dilation[1];
    k.pt = a->pad[0], k.pl = a->pad[1];
    k.G = a->groups;
    k.cpg = wt->dims[1], k.opg = k.O / k.G;
    return k;
}

static LLVMValueRef add(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return cg_iadd(cg, a, b);
}

static LLVMValueRef addc(Cg *cg, LLVMValueRef a, int64_t c)
{
    return c ? cg_iadd(cg, a, cg_i64(cg, c)) : a;
}

static LLVMValueRef lt(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildICmp(cg->b, LLVMIntSLT, a, b, "");
}

static uint32_t all_of(int64_t lanes)
{
    return lanes >= 32 ? UINT32_MAX : (UINT32_C(1) << lanes) - 1;
}

static int64_t floordiv(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* ---- rows of conv2d and conv2d_grad_input ------------------------------- */

/* Destination: `md` channels per group, planes DH × DW; source: `kd` channels
 * per group, planes SH × SW. Pixel j of a phase of a destination row sits at
 * column phase + dstep·j and reads, for kernel column kw, source column
 * a·j + b(kw). */
typedef struct Rows {
    Cg *cg;
    const Node *n;
    Geo k;
    bool grad;
    int64_t md, kd, DH, DW, SH, SW, dstep, a;
    int64_t wm, wk;     /* weight elements between destination / reduction channels */
    int64_t ds, ss, rs; /* elements between batch items of destination, source, residual */
    int64_t mr, nvmax;  /* register tile: channels × vectors */
    bool plane;         /* a work item covers whole (small) planes, its tiles crossing rows */
    /* On planes, the class of destination pixels being tiled: rows ry + sy·i and
     * columns rx + sx·i (a strided gradient's pixels, by the taps they take) */
    int64_t ry, rx, sy, sx;
    int64_t rb; /* depthwise: destination rows per work item, each input row loaded once */
    LLVMValueRef dst, src, w, bias, res;
    LLVMValueRef nb, grp, mblk, row; /* of the work item */
} Rows;

/* Source column of pixel 0 of `phase` for kernel column kw; false when no pixel
 * of the phase reads through kw (a strided gradient). */
static bool tap_column(const Rows *r, int64_t phase, int64_t kw, int64_t *b)
{
    const Geo *k = &r->k;
    if (!r->grad) {
        *b = kw * k->dw - k->pl;
        return true;
    }
    int64_t t = phase + k->pl - kw * k->dw;
    if (((t % k->sw) + k->sw) % k->sw)
        return false;
    *b = floordiv(t, k->sw);
    return true;
}

/* Lanes of vector v (pixels j0 + v·L + l) that are pixels of the phase (j < jn)
 * and, with tap b, read inside the source row. */
static uint32_t lane_mask(const Rows *r, int64_t j0, int64_t v, int64_t jn, int64_t b, bool tap)
{
    uint32_t m = 0;
    int64_t L = r->cg->vec;
    for (int64_t l = 0; l < L; l++) {
        int64_t j = j0 + v * L + l, q = r->a * j + b;
        if (j < jn && (!tap || (q >= 0 && q < r->SW)))
            m |= UINT32_C(1) << l;
    }
    return m;
}

/* The source row read through kernel row kh, and whether it exists. */
static LLVMValueRef source_row(Rows *r, LLVMValueRef kh, LLVMValueRef *ok)
{
    Cg *cg = r->cg;
    const Geo *k = &r->k;
    LLVMValueRef zero = cg_i64(cg, 0);
    if (!r->grad) {
        LLVMValueRef ih =
            add(cg, addc(cg, cg_imul(cg, r->row, k->sh), -k->pt), cg_imul(cg, kh, k->dh));
        *ok = LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGE, ih, zero, ""),
                           lt(cg, ih, cg_i64(cg, k->H)), "");
        return ih;
    }
    LLVMValueRef t = LLVMBuildSub(cg->b, addc(cg, r->row, k->pt), cg_imul(cg, kh, k->dh), "");
    LLVMValueRef tc = LLVMBuildSelect(cg->b, lt(cg, t, zero), zero, t, "");
    LLVMValueRef oh = LLVMBuildUDiv(cg->b, tc, cg_i64(cg, k->sh), "");
    LLVMValueRef exact =
        LLVMBuildICmp(cg->b, LLVMIntEQ, LLVMBuildURem(cg->b, tc, cg_i64(cg, k->sh), ""), zero, "");
    *ok =
        LLVMBuildAnd(cg->b,
                     LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGE, t, zero, ""), exact, ""),
                     lt(cg, oh, cg_i64(cg, k->OH)), "");
    return oh;
}

/* The taps of one (reduction channel kc, kernel row kh) for a tile of mr
 * channels × nv vectors of pixels from j0 of `phase`. */
static void tile_taps(Rows *r, LLVMValueRef kc, LLVMValueRef kh, int64_t mr, int64_t phase,
                      int64_t j0, int64_t nv, int64_t jn, LLVMValueRef *acc)
{
    Cg *cg = r->cg;
    const Geo *k = &r->k;
    int64_t L = cg->vec;
    LLVMValueRef ok, srow = source_row(r, kh, &ok);
    CgAccLoop c;
    cg_acc_if_begin(cg, &c, ok, acc, (int32_t)(mr * nv));
    LLVMValueRef plane = add(cg, cg_imul(cg, r->nb, r->ss),
                             cg_imul(cg, add(cg, cg_imul(cg, r->grp, r->kd), kc), r->SH * r->SW));
    LLVMValueRef so = add(cg, plane, cg_imul(cg, srow, r->SW));
    LLVMValueRef wo = add(cg, cg_imul(cg, r->grp, k->opg * k->cpg * k->KH * k->KW),
                          add(cg, cg_imul(cg, r->mblk, r->mr * r->wm), cg_imul(cg, kc, r->wk)));
    wo = add(cg, wo, cg_imul(cg, kh, k->KW));
    for (int64_t kw = 0; kw < k->KW; kw++) {
        int64_t b;
        if (!tap_column(r, phase, kw, &b))
            continue;
        LLVMValueRef bv[8];
        for (int64_t v = 0; v < nv; v++) {
            int64_t q0 = r->a * (j0 + v * L) + b;
            uint32_t mask = lane_mask(r, j0, v, jn, b, true);
            if (mask == all_of(L) && q0 + r->a * L <= r->SW)
                bv[v] = cg_load_span(cg, r->src, addc(cg, so, q0), r->a, (int32_t)L);
            else
                bv[v] = cg_load_lanes(cg, r->src, addc(cg, so, q0), r->a, (int32_t)L, mask);
        }
        for (int64_t m = 0; m < mr; m++) {
            LLVMValueRef wv = cg_load(cg, cg_gep(cg, r->w, addc(cg, wo, m * r->wm + kw)), 1);
            LLVMValueRef s = cg_splat(cg, wv, (int32_t)L);
            for (int64_t v = 0; v < nv; v++)
                acc[m * nv + v] = cg_fma(cg, s, bv[v], acc[m * nv + v]);
        }
    }
    cg_acc_if_end(cg, &c, acc);
}

/* ---- pixels at constant offsets ----------------------------------------- */

/* The end of the run of lanes from valid lane l whose offsets rise and stay within
 * L of offs[l]: the lanes one vector access at offs[l] reaches. */
static int32_t lane_run(const int64_t *offs, uint32_t valid, int32_t L, int32_t l)
{
    int32_t e = l + 1, prev = l;
    while (e < L && (!((valid >> e) & 1) || (offs[e] > offs[prev] && offs[e] - offs[l] < L))) {
        if ((valid >> e) & 1)
            prev = e;
        e++;
    }
    return e;
}

/* The lanes of a vector whose source elements sit at constant offsets offs[l]
 * from base[off] (lanes outside `valid` read 0): one (strided) load when the
 * offsets step evenly, else a masked load per run of increasing offsets that
 * fits a vector, the runs merged by shuffles -- the rows of a small plane. */
static LLVMValueRef load_pixels(Cg *cg, LLVMValueRef base, LLVMValueRef off, const int64_t *offs,
                                uint32_t valid, int32_t L)
{
    int32_t f = -1, g = -1; /* the first two lanes read */
    for (int32_t l = 0; l < L && g < 0; l++)
        if ((valid >> l) & 1) {
            g = f < 0 ? -1 : l;
            f = f < 0 ? l : f;
        }
    if (f < 0)
        return LLVMConstNull(LLVMVectorType(cg->t_f32, (unsigned)L));
    int64_t st = g < 0 ? 1 : (offs[g] - offs[f]) / (g - f);
    bool even = st >= 1 && (g < 0 || (offs[g] - offs[f]) % (g - f) == 0);
    for (int32_t l = f; even && l < L; l++)
        even = !((valid >> l) & 1) || offs[l] == offs[f] + (l - f) * st;
    if (even)
        return cg_load_lanes(cg, base, addc(cg, off, offs[f] - f * st), st, L, valid);
    LLVMValueRef acc = LLVMConstNull(LLVMVectorType(cg->t_f32, (unsigned)L));
    for (int32_t l = 0; l < L;) {
        if (!((valid >> l) & 1)) {
            l++;
            continue;
        }
        int32_t e = lane_run(offs, valid, L, l);
        uint32_t bits = 0;
        LLVMValueRef pick[64];
        for (int32_t i = 0; i < L; i++) {
            bool mine = i >= l && i < e && ((valid >> i) & 1);
            if (mine)
                bits |= UINT32_C(1) << (offs[i] - offs[l]);
            pick[i] = LLVMConstInt(cg->t_i32,
                                   mine ? (unsigned long long)(L + offs[i] - offs[l])
                                        : (unsigned long long)i,
                                   0);
        }
        LLVMValueRef run = cg_load_lanes(cg, base, addc(cg, off, offs[l]), 1, L, bits);
        acc = LLVMBuildShuffleVector(cg->b, acc, run, LLVMConstVector(pick, (unsigned)L), "");
        l = e;
    }
    return acc;
}

/* Stores the lanes of v in `valid` at constant offsets offs[l] from base[off],
 * as load_pixels reads them. */
static void store_pixels(Cg *cg, LLVMValueRef v, LLVMValueRef base, LLVMValueRef off,
                         const int64_t *offs, uint32_t valid, int32_t L)
{
    int32_t f = -1;
    for (int32_t l = 0; l < L && f < 0; l++)
        f = (valid >> l) & 1 ? l : -1;
    if (f < 0)
        return;
    bool even = true;
    for (int32_t l = f; even && l < L; l++)
        even = !((valid >> l) & 1) || offs[l] == offs[f] + (l - f);
    if (even) {
        cg_store_lanes(cg, v, base, addc(cg, off, offs[f] - f), 1, valid);
        return;
    }
    for (int32_t l = 0; l < L;) {
        if (!((valid >> l) & 1)) {
            l++;
            continue;
        }
        int32_t e = lane_run(offs, valid, L, l);
        uint32_t bits = 0;
        LLVMValueRef pick[64];
        for (int32_t i = 0; i < L; i++)
            pick[i] = LLVMConstInt(cg->t_i32, 0, 0);
        for (int32_t i = l; i < e; i++)
            if ((valid >> i) & 1) {
                bits |= UINT32_C(1) << (offs[i] - offs[l]);
                pick[offs[i] - offs[l]] = LLVMConstInt(cg->t_i32, (unsigned long long)i, 0);
            }
        LLVMValueRef run =
            LLVMBuildShuffleVector(cg->b, v, v, LLVMConstVector(pick, (unsigned)L), "");
        cg_store_lanes(cg, run, base, addc(cg, off, offs[l]), 1, bits);
        l = e;
    }
}

/* Pixel i of the plane class being tiled, as an offset in the destination plane. */
static int64_t class_pixel(const Rows *r, int64_t i)
{
    int64_t cw = (r->DW - r->rx + r->sx - 1) / r->sx;
    return (r->ry + r->sy * (i / cw)) * r->DW + r->rx + r->sx * (i % cw);
}

/* Where pixel j of the plane class reads the source through tap (kh, kw):
 * its offset in the source plane, or false when the tap falls outside (or,
 * strided gradients, between) source pixels. */
static bool plane_source(const Rows *r, int64_t j, int64_t kh, int64_t kw, int64_t *off)
{
    const Geo *k = &r->k;
    int64_t pix = class_pixel(r, j), y = pix / r->DW, x = pix % r->DW, sy, sx;
    if (!r->grad) {
        sy = y * k->sh - k->pt + kh * k->dh, sx = x * k->sw - k->pl + kw * k->dw;
    } else {
        int64_t ty = y + k->pt - kh * k->dh, tx = x + k->pl - kw * k->dw;
        if (ty < 0 || tx < 0 || ty % k->sh || tx % k->sw)
            return false;
        sy = ty / k->sh, sx = tx / k->sw;
    }
    *off = sy * r->SW + sx;
    return sy >= 0 && sy < r->SH && sx >= 0 && sx < r->SW;
}

/* Plane tiles: a vector holds pixels of several rows of a small plane, and the
 * taps (kh, kw) are unrolled so that every lane's source offset is a constant. */
static void plane_taps(Rows *r, LLVMValueRef kc, int64_t mr, int64_t j0, int64_t nv, int64_t jn,
                       LLVMValueRef *acc)
{
    Cg *cg = r->cg;
    const Geo *k = &r->k;
    int64_t L = cg->vec;
    LLVMValueRef so = add(cg, cg_imul(cg, r->nb, r->ss),
                          cg_imul(cg, add(cg, cg_imul(cg, r->grp, r->kd), kc), r->SH * r->SW));
    LLVMValueRef wo = add(cg, cg_imul(cg, r->grp, k->opg * k->cpg * k->KH * k->KW),
                          add(cg, cg_imul(cg, r->mblk, r->mr * r->wm), cg_imul(cg, kc, r->wk)));
    for (int64_t kh = 0; kh < k->KH; kh++)
        for (int64_t kw = 0; kw < k->KW; kw++) {
            int64_t offs[8][64];
            uint32_t mask[8], any = 0;
            for (int64_t v = 0; v < nv; v++) {
                mask[v] = 0;
                for (int64_t l = 0; l < L; l++) {
                    int64_t j = j0 + v * L + l;
                    if (j < jn && plane_source(r, j, kh, kw, &offs[v][l]))
                        mask[v] |= UINT32_C(1) << l;
                }
                any |= mask[v];
            }
            if (!any)
                continue;
            LLVMValueRef bv[8];
            for (int64_t v = 0; v < nv; v++)
                bv[v] = load_pixels(cg, r->src, so, offs[v], mask[v], (int32_t)L);
            for (int64_t m = 0; m < mr; m++) {
                LLVMValueRef wp = cg_gep(cg, r->w, addc(cg, wo, m * r->wm + kh * k->KW + kw));
                LLVMValueRef s = cg_splat(cg, cg_load(cg, wp, 1), (int32_t)L);
                for (int64_t v = 0; v < nv; v++)
                    acc[m * nv + v] = cg_fma(cg, s, bv[v], acc[m * nv + v]);
            }
        }
}

/* Bias, epilogue (residual) and the store of a finished tile. */
static void tile_store(Rows *r, int64_t mr, int64_t phase, int64_t j0, int64_t nv, int64_t jn,
                       LLVMValueRef *acc)
{
    Cg *cg = r->cg;
    int64_t L = cg->vec;
    const Epilogue *epi = r->grad ? NULL : &r->n->attrs.conv.epi;
    LLVMValueRef ch0 = add(cg, cg_imul(cg, r->grp, r->md), cg_imul(cg, r->mblk, r->mr));
    for (int64_t m = 0; m < mr; m++) {
        LLVMValueRef ch = addc(cg, ch0, m);
        LLVMValueRef pix = add(cg, cg_imul(cg, ch, r->DH * r->DW), cg_imul(cg, r->row, r->DW));
        LLVMValueRef bias =
            r->bias ? cg_splat(cg, cg_load(cg, cg_gep(cg, r->bias, ch), 1), (int32_t)L) : NULL;
        for (int64_t v = 0; v < nv; v++) {
            uint32_t mask = lane_mask(r, j0, v, jn, 0, false);
            int64_t offs[64];
            for (int64_t l = 0; l < L; l++) {
                int64_t j = j0 + v * L + l;
                offs[l] = r->plane ? (j < jn ? class_pixel(r, j) : 0) : phase + r->dstep * j;
            }
            LLVMValueRef x = acc[m * nv + v], res = NULL;
            if (bias)
                x = LLVMBuildFAdd(cg->b, x, bias, "");
            if (r->res)
                res = load_pixels(cg, r->res, add(cg, cg_imul(cg, r->nb, r->rs), pix), offs, mask,
                                  (int32_t)L);
            if (epi)
                x = cg_epilogue(cg, epi, x, res);
            store_pixels(cg, x, r->dst, add(cg, cg_imul(cg, r->nb, r->ds), pix), offs, mask,
                         (int32_t)L);
        }
    }
}

static void emit_tile(Rows *r, int64_t mr, int64_t phase, int64_t j0, int64_t nv, int64_t jn)
{
    Cg *cg = r->cg;
    LLVMValueRef acc[CG_MAX_ACC];
    int32_t na = (int32_t)(mr * nv);
    for (int32_t i = 0; i < na; i++)
        acc[i] = LLVMConstNull(cg->t_vf32);
    CgAccLoop lc, lh;
    cg_acc_loop_begin(cg, &lc, cg_i64(cg, 0), cg_i64(cg, r->kd), acc, na);
    if (r->plane) {
        plane_taps(r, lc.iv, mr, j0, nv, jn, acc);
    } else {
        cg_acc_loop_begin(cg, &lh, cg_i64(cg, 0), cg_i64(cg, r->k.KH), acc, na);
        tile_taps(r, lc.iv, lh.iv, mr, phase, j0, nv, jn, acc);
        cg_acc_loop_end(cg, &lh, acc);
    }
    cg_acc_loop_end(cg, &lc, acc);
    tile_store(r, mr, phase, j0, nv, jn, acc);
}

/* Which source row (from the block's first) destination row y of a depthwise
 * row block reads through kernel row kh. */
static int64_t stack_row(const Rows *r, int64_t y, int64_t kh)
{
    const Geo *k = &r->k;
    return r->grad ? y + (k->KH - 1 - kh) * k->dh : y * k->sh + kh * k->dh;
}

/* A depthwise tile of R destination rows × nv vectors: each source row is
 * loaded once and FMA'd into every destination row that reads it. */
static void stack_tile(Rows *r, int64_t R, int64_t phase, int64_t j0, int64_t nv, int64_t jn)
{
    Cg *cg = r->cg;
    const Geo *k = &r->k;
    int64_t L = cg->vec, span = stack_row(r, R - 1, r->grad ? 0 : k->KH - 1) + 1;
    int32_t na = (int32_t)(R * nv);
    LLVMValueRef acc[CG_MAX_ACC];
    for (int32_t i = 0; i < na; i++)
        acc[i] = LLVMConstNull(cg->t_vf32);
    LLVMValueRef base = r->grad ? addc(cg, r->row, k->pt - (k->KH - 1) * k->dh)
                                : addc(cg, cg_imul(cg, r->row, k->sh), -k->pt);
    LLVMValueRef so0 =
        add(cg, cg_imul(cg, r->nb, r->ss), cg_imul(cg, r->grp, r->kd * r->SH * r->SW));
    LLVMValueRef wo = cg_imul(cg, r->grp, k->opg * k->cpg * k->KH * k->KW);
    for (int64_t i = 0; i < span; i++) {
        bool used = false;
        for (int64_t y = 0; y < R; y++)
            for (int64_t kh = 0; kh < k->KH; kh++)
                used |= stack_row(r, y, kh) == i;
        if (!used)
            continue;
        LLVMValueRef srow = addc(cg, base, i), zero = cg_i64(cg, 0);
        LLVMValueRef ok = LLVMBuildAnd(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGE, srow, zero, ""),
                                       lt(cg, srow, cg_i64(cg, r->SH)), "");
        CgAccLoop c;
        cg_acc_if_begin(cg, &c, ok, acc, na);
        LLVMValueRef so = add(cg, so0, cg_imul(cg, srow, r->SW));
        for (int64_t kw = 0; kw < k->KW; kw++) {
            int64_t b;
            if (!tap_column(r, phase, kw, &b))
                continue;
            LLVMValueRef bv[8];
            for (int64_t v = 0; v < nv; v++)
                bv[v] = cg_load_lanes(cg, r->src, addc(cg, so, r->a * (j0 + v * L) + b), r->a,
                                      (int32_t)L, lane_mask(r, j0, v, jn, b, true));
            for (int64_t y = 0; y < R; y++)
                for (int64_t kh = 0; kh < k->KH; kh++) {
                    if (stack_row(r, y, kh) != i)
                        continue;
                    LLVMValueRef wp = cg_gep(cg, r->w, addc(cg, wo, kh * k->KW + kw));
                    LLVMValueRef w = cg_splat(cg, cg_load(cg, wp, 1), (int32_t)L);
                    for (int64_t v = 0; v < nv; v++)
                        acc[y * nv + v] = cg_fma(cg, w, bv[v], acc[y * nv + v]);
                }
        }
        cg_acc_if_end(cg, &c, acc);
    }
    LLVMValueRef row0 = r->row;
    for (int64_t y = 0; y < R; y++) {
        r->row = addc(cg, row0, y);
        tile_store(r, 1, phase, j0, nv, jn, acc + y * nv);
    }
    r->row = row0;
}

/* A depthwise block of R destination rows: every phase, in tiles. */
static void emit_stack(Cg *cg, void *p, int64_t R)
{
    Rows *r = p;
    int64_t L = cg->vec, phases = r->grad ? r->k.sw : 1;
    for (int64_t ph = 0; ph < phases && ph < r->DW; ph++) {
        int64_t jn = (r->DW - ph + r->dstep - 1) / r->dstep;
        for (int64_t j0 = 0; j0 < jn; j0 += r->nvmax * L) {
            int64_t nv = (jn - j0 + L - 1) / L;
            stack_tile(r, R, ph, j0, nv < r->nvmax ? nv : r->nvmax, jn);
        }
    }
}

/* One destination row of mr channels: every phase, in tiles of nvmax vectors. */
static void emit_row(Cg *cg, void *p, int64_t mr)
{
    Rows *r = p;
    int64_t L = cg->vec, phases = r->grad ? r->k.sw : 1;
    if (r->plane) { /* each class of pixels in tiles */
        for (r->ry = 0; r->ry < r->sy && r->ry < r->DH; r->ry++)
            for (r->rx = 0; r->rx < r->sx && r->rx < r->DW; r->rx++) {
                int64_t P =
                    ((r->DH - r->ry + r->sy - 1) / r->sy) * ((r->DW - r->rx + r->sx - 1) / r->sx);
                for (int64_t j0 = 0; j0 < P; j0 += r->nvmax * L) {
                    int64_t nv = (P - j0 + L - 1) / L;
                    emit_tile(r, mr, 0, j0, nv < r->nvmax ? nv : r->nvmax, P);
                }
            }
        return;
    }
    for (int64_t ph = 0; ph < phases && ph < r->DW; ph++) {
        int64_t jn = (r->DW - ph + r->dstep - 1) / r->dstep;
        for (int64_t j0 = 0; j0 < jn; j0 += r->nvmax * L) {
            int64_t left = jn - j0, nv = (left + L - 1) / L;
            emit_tile(r, mr, ph, j0, nv < r->nvmax ? nv : r->nvmax, jn);
        }
    }
}

/* Rows (of a phase) that would leave over a quarter of their vector lanes
 * empty (7 or 10 pixels wide with 16 lanes) are tiled as whole planes of at
 * most 8 tiles. */
static bool use_plane(const Rows *r, int64_t L)
{
    int64_t phases = r->grad ? r->k.sw : 1, w = (r->DW + phases - 1) / phases;
    int64_t vecs = (w + L - 1) / L, P = r->DH * r->DW;
    if (4 * w >= 3 * vecs * L)
        return false;
    return (P + 4 * L - 1) / (4 * L) <= 8 && r->k.KH * r->k.KW <= 49;
}

/* Register tile: up to 24 accumulators with 32 registers (12 with 16), as many
 * vectors as a row (or plane) needs (at most 4), the rest channels, split into
 * blocks of nearly equal size (64 channels: 5 × 11 + 9, not 5 × 12 + 4). */
static void choose_tile(Rows *r)
{
    int64_t L = r->cg->vec, budget = r->cg->nregs >= 32 ? 24 : 12;
    r->plane = use_plane(r, L);
    int64_t phases = r->grad ? r->k.sw : 1, widest = (r->DW + phases - 1) / phases;
    if (r->plane) { /* a strided gradient's pixels in classes by the taps they take */
        r->sy = r->grad ? r->k.sh : 1, r->sx = r->grad ? r->k.sw : 1;
        widest = ((r->DH + r->sy - 1) / r->sy) * ((r->DW + r->sx - 1) / r->sx);
    }
    int64_t nv = (widest + L - 1) / L, cap = budget == 24 ? 4 : 3;
    r->nvmax = nv < cap ? nv : cap;
    int64_t most = budget / r->nvmax, blocks = (r->md + most - 1) / most;
    r->mr = (r->md + blocks - 1) / blocks; /* blocks of nearly equal size */
    r->rb = 1;
    if (!r->plane && r->md == 1 && r->kd == 1 && (!r->grad || r->k.sh == 1))
        r->rb = most < r->DH ? most : r->DH; /* depthwise: rows instead of channels */
}

static CgKernel emit_rows(Rows *r, int32_t node)
{
    Cg *cg = r->cg;
    choose_tile(r);
    int64_t MB = (r->md + r->mr - 1) / r->mr;
    LLVMValueRef fn = cg_kernel_begin(cg, r->n->name);
    r->dst = cg_arg_ptr(cg, 0);
    r->src = cg_input_ptr(cg, node, 0);
    r->w = cg_input_ptr(cg, node, 1);
    int32_t bi = r->grad ? -1 : ir_bias_input(r->n);
    r->bias = bi >= 0 ? cg_input_ptr(cg, node, bi) : NULL;
    r->res = !r->grad && r->n->attrs.conv.epi.residual
                 ? cg_input_ptr(cg, node, ir_residual_input(r->n))
                 : NULL;
    int64_t rows = r->plane ? 1 : (r->DH + r->rb - 1) / r->rb;
    CgLoop l = cg_loop_begin(cg, cg->begin, cg->end, 1, "item");
    LLVMValueRef q, rowblk;
    cg_divmod(cg, l.iv, rows, &q, &rowblk);
    cg_divmod(cg, q, MB, &q, &r->mblk);
    cg_divmod(cg, q, r->k.G, &r->nb, &r->grp);
    r->row = cg_imul(cg, rowblk, r->rb);
    if (r->rb > 1)
        cg_split_last(cg, rowblk, rows, r->rb, r->DH, emit_stack, r);
    else
        cg_split_last(cg, r->mblk, MB, r->mr, r->md, emit_row, r);
    cg_loop_end(cg, &l);
    cg_kernel_end(cg);
    return (CgKernel){fn, r->k.N * r->k.G * MB * rows};
}

/* Work items: batch × groups × blocks of output channels × output rows. */
CgKernel cg_emit_conv2d_runtime(Cg *cg, int32_t node)
{
    const Node *n = &cg->g->nodes[node];
    Rows r = {.cg = cg, .n = n, .k = geometry(cg, n, 0, 1, -1)};
    r.md = r.k.opg, r.kd = r.k.cpg;
    r.DH = r.k.OH, r.DW = r.k.OW, r.SH = r.k.H, r.SW = r.k.W;
    r.dstep = 1, r.a = r.k.sw;
    r.wm = r.k.cpg * r.k.KH * r.k.KW, r.wk = r.k.KH * r.k.KW;
    r.ds = cg_item_stride(cg, node), r.ss = cg_item_stride(cg, n->inputs[0]);
    if (n->attrs.conv.epi.residual)
        r.rs = cg_item_stride(cg, n->inputs[ir_residual_input(n)]);
    return emit_rows(&r, node);
}

/* conv2d_grad_input(dy, w, x): work items batch × groups × blocks of input
 * channels × rows of dx. */
CgKernel cg_emit_conv2d_grad_input(Cg *cg, int32_t node)
{
    const Node *n = &cg->g->nodes[node];
    Rows r = {.cg = cg, .n = n, .grad = true, .k = geometry(cg, n, -1, 1, 0)};
    r.md = r.k.cpg, r.kd = r.k.opg;
    r.DH = r.k.H, r.DW = r.k.W, r.SH = r.k.OH, r.SW = r.k.OW;
    r.dstep = r.k.sw, r.a = 1;
    r.wm = r.k.KH * r.k.KW, r.wk = r.k.cpg * r.k.KH * r.k.KW;
    r.ds = cg_item_stride(cg, node), r.ss = cg_item_stride(cg, n->inputs[0]);
    return emit_rows(&r, node);
}

/* ---- conv2d_grad_weight ------------------------------------------------- */

typedef struct Wgrad {
    Cg *cg;
    const Node *n;
    Geo k;
    int64_t mo, cc, kwc; /* tile: output channels × input channels × kernel columns */
    int64_t mn, cn;      /* output and input channels of the variant being emitted */
    int64_t ys, xs;      /* elements between batch items of dy and x */
    LLVMValueRef dy, x, dw;
    LLVMValueRef grp, ob, cb, kh; /* of the work item (kh: of the pass, on planes) */
    int64_t OB, CB;
    bool plane; /* reduce over whole (small) planes, kernel rows unrolled in the item */
} Wgrad;

/* Output rows whose kernel row kh reads inside x: [lo, hi). */
static void row_range(Wgrad *w, LLVMValueRef *lo, LLVMValueRef *hi)
{
    Cg *cg = w->cg;
    const Geo *k = &w->k;
    LLVMValueRef zero = cg_i64(cg, 0), khd = cg_imul(cg, w->kh, k->dh);
    LLVMValueRef a = LLVMBuildSub(cg->b, cg_i64(cg, k->pt), khd, "");
    LLVMValueRef up = LLVMBuildSDiv(cg->b, addc(cg, a, k->sh - 1), cg_i64(cg, k->sh), "");
    *lo = LLVMBuildSelect(cg->b, lt(cg, zero, a), up, zero, "");
    LLVMValueRef b = LLVMBuildSub(cg->b, cg_i64(cg, k->H - 1 + k->pt), khd, "");
    LLVMValueRef cnt = addc(cg, LLVMBuildSDiv(cg->b, b, cg_i64(cg, k->sh), ""), 1);
    cnt = LLVMBuildSelect(cg->b, lt(cg, cnt, cg_i64(cg, k->OH)), cnt, cg_i64(cg, k->OH), "");
    *hi = LLVMBuildSelect(cg->b, lt(cg, b, zero), zero, cnt, "");
}

/* Lanes of output pixels ow0 + l inside the row and, through kernel column kw
 * (kw < 0: none), inside x. */
static uint32_t wg_mask(const Wgrad *w, int64_t ow0, int64_t kw)
{
    const Geo *k = &w->k;
    uint32_t m = 0;
    for (int64_t l = 0; l < w->cg->vec; l++) {
        int64_t ow = ow0 + l, iw = ow * k->sw - k->pl + kw * k->dw;
        if (ow < k->OW && (kw < 0 || (iw >= 0 && iw < k->W)))
            m |= UINT32_C(1) << l;
    }
    return m;
}

/* Accumulates, over the batch and the output rows that read inside x through
 * the item's kernel row, dy × x for mn × cn × nkw (kernel columns from kw0). */
static void wg_rows(Wgrad *w, LLVMValueRef o0, LLVMValueRef c0, int64_t kw0, int64_t nkw,
                    LLVMValueRef *acc)
{
    Cg *cg = w->cg;
    const Geo *k = &w->k;
    int64_t L = cg->vec, mo = w->mn, cn = w->cn, na = mo * cn * nkw;
    LLVMValueRef lo, hi;
    row_range(w, &lo, &hi);
    CgAccLoop ln, lr;
    cg_acc_loop_begin(cg, &ln, cg_i64(cg, 0), cg_i64(cg, k->N), acc, (int32_t)na);
    cg_acc_loop_begin(cg, &lr, lo, hi, acc, (int32_t)na);
    LLVMValueRef ih =
        add(cg, addc(cg, cg_imul(cg, lr.iv, k->sh), -k->pt), cg_imul(cg, w->kh, k->dh));
    LLVMValueRef yo = add(cg, add(cg, cg_imul(cg, ln.iv, w->ys), cg_imul(cg, o0, k->OH * k->OW)),
                          cg_imul(cg, lr.iv, k->OW));
    LLVMValueRef xo = add(cg, add(cg, cg_imul(cg, ln.iv, w->xs), cg_imul(cg, c0, k->H * k->W)),
                          cg_imul(cg, ih, k->W));
    for (int64_t ow0 = 0; ow0 < k->OW; ow0 += L) {
        LLVMValueRef yv[8], xv[8];
        for (int64_t m = 0; m < mo; m++)
            yv[m] = cg_load_lanes(cg, w->dy, addc(cg, yo, m * k->OH * k->OW + ow0), 1, (int32_t)L,
                                  wg_mask(w, ow0, -1));
        for (int64_t c = 0; c < cn; c++)
            for (int64_t t = 0; t < nkw; t++) {
                int64_t kw = kw0 + t, iw0 = ow0 * k->sw - k->pl + kw * k->dw;
                uint32_t mask = wg_mask(w, ow0, kw);
                LLVMValueRef at = addc(cg, xo, c * k->H * k->W + iw0);
                if (mask == all_of(L) && iw0 + k->sw * L <= k->W)
                    xv[c * nkw + t] = cg_load_span(cg, w->x, at, k->sw, (int32_t)L);
                else
                    xv[c * nkw + t] = cg_load_lanes(cg, w->x, at, k->sw, (int32_t)L, mask);
            }
        for (int64_t m = 0; m < mo; m++)
            for (int64_t j = 0; j < cn * nkw; j++)
                acc[m * cn * nkw + j] = cg_fma(cg, yv[m], xv[j], acc[m * cn * nkw + j]);
    }
    cg_acc_loop_end(cg, &lr, acc);
    cg_acc_loop_end(cg, &ln, acc);
}

/* As wg_rows, for kernel row kh (a constant) with vectors across the rows of a
 * small plane: every lane's offset into x is a constant per tap. */
static void wg_plane(Wgrad *w, LLVMValueRef o0, LLVMValueRef c0, int64_t kh, int64_t kw0,
                     int64_t nkw, LLVMValueRef *acc)
{
    Cg *cg = w->cg;
    const Geo *k = &w->k;
    int64_t L = cg->vec, mo = w->mn, cn = w->cn, na = mo * cn * nkw, P = k->OH * k->OW;
    CgAccLoop ln;
    cg_acc_loop_begin(cg, &ln, cg_i64(cg, 0), cg_i64(cg, k->N), acc, (int32_t)na);
    LLVMValueRef yo = add(cg, cg_imul(cg, ln.iv, w->ys), cg_imul(cg, o0, P));
    LLVMValueRef xo = add(cg, cg_imul(cg, ln.iv, w->xs), cg_imul(cg, c0, k->H * k->W));
    for (int64_t p0 = 0; p0 < P; p0 += L) {
        LLVMValueRef yv[8], xv[8];
        uint32_t ymask = 0;
        for (int64_t l = 0; l < L; l++)
            ymask |= p0 + l < P ? UINT32_C(1) << l : 0;
        for (int64_t m = 0; m < mo; m++)
            yv[m] = cg_load_lanes(cg, w->dy, addc(cg, yo, m * P + p0), 1, (int32_t)L, ymask);
        for (int64_t t = 0; t < nkw; t++) {
            int64_t offs[64];
            uint32_t mask = 0;
            for (int64_t l = 0; l < L; l++) {
                int64_t p = p0 + l, ih = (p / k->OW) * k->sh - k->pt + kh * k->dh;
                int64_t iw = (p % k->OW) * k->sw - k->pl + (kw0 + t) * k->dw;
                offs[l] = ih * k->W + iw;
                if (p < P && ih >= 0 && ih < k->H && iw >= 0 && iw < k->W)
                    mask |= UINT32_C(1) << l;
            }
            for (int64_t c = 0; c < cn; c++)
                xv[c * nkw + t] =
                    load_pixels(cg, w->x, addc(cg, xo, c * k->H * k->W), offs, mask, (int32_t)L);
        }
        for (int64_t m = 0; m < mo; m++)
            for (int64_t j = 0; j < cn * nkw; j++)
                acc[m * cn * nkw + j] = cg_fma(cg, yv[m], xv[j], acc[m * cn * nkw + j]);
    }
    cg_acc_loop_end(cg, &ln, acc);
}

/* The sums of mn × cn × nkw accumulators (kernel columns from kw0 of row
 * w->kh) into dw. */
static void wg_tile(Wgrad *w, int64_t kh, int64_t kw0, int64_t nkw)
{
    Cg *cg = w->cg;
    const Geo *k = &w->k;
    int64_t mo = w->mn, cn = w->cn, na = mo * cn * nkw;
    LLVMValueRef acc[CG_MAX_ACC];
    for (int64_t i = 0; i < na; i++)
        acc[i] = LLVMConstNull(cg->t_vf32);
    LLVMValueRef o0 = add(cg, cg_imul(cg, w->grp, k->opg), cg_imul(cg, w->ob, w->mo));
    LLVMValueRef c0 = add(cg, cg_imul(cg, w->grp, k->cpg), cg_imul(cg, w->cb, w->cc));
    if (w->plane) {
        w->kh = cg_i64(cg, kh);
        wg_plane(w, o0, c0, kh, kw0, nkw, acc);
    } else {
        wg_rows(w, o0, c0, kw0, nkw, acc);
    }
    int64_t KK = k->KH * k->KW;
    for (int64_t m = 0; m < mo; m++)
        for (int64_t c = 0; c < cn; c++) {
            LLVMValueRef o = cg_imul(cg, addc(cg, o0, m), k->cpg);
            LLVMValueRef at = cg_imul(cg, add(cg, o, addc(cg, cg_imul(cg, w->cb, w->cc), c)), KK);
            at = add(cg, at, cg_imul(cg, w->kh, k->KW));
            for (int64_t t = 0; t < nkw; t++)
                cg_store(cg, cg_hsum(cg, acc[(m * cn + c) * nkw + t]),
                         cg_gep(cg, w->dw, addc(cg, at, kw0 + t)));
        }
}

static void wg_with_c(Cg *cg, void *p, int64_t cn)
{
    Wgrad *w = p;
    (void)cg;
    w->cn = cn;
    for (int64_t kh = 0; kh < (w->plane ? w->k.KH : 1); kh++)
        for (int64_t kw0 = 0; kw0 < w->k.KW; kw0 += w->kwc) {
            int64_t nkw = w->k.KW - kw0 < w->kwc ? w->k.KW - kw0 : w->kwc;
            wg_tile(w, kh, kw0, nkw);
        }
}

static void wg_with_o(Cg *cg, void *p, int64_t mo)
{
    Wgrad *w = p;
    w->mn = mo;
    cg_split_last(cg, w->cb, w->CB, w->cc, w->k.cpg, wg_with_c, w);
}

/* conv2d_grad_weight(dy, x, w): work items groups × blocks of output channels ×
 * blocks of input channels × kernel rows (all rows in one item on planes whose
 * rows would leave over a quarter of the lanes empty), each owning its elements
 * of dw. */
CgKernel cg_emit_conv2d_grad_weight(Cg *cg, int32_t node)
{
    const Node *n = &cg->g->nodes[node];
    Wgrad w = {.cg = cg, .n = n, .k = geometry(cg, n, 1, -1, 0)};
    bool wide = cg->nregs >= 32;
    int64_t cols = wide ? 6 : 3;
    int64_t passes = (w.k.KW + cols - 1) / cols;
    w.mo = wide ? 4 : 3;
    if (wide && w.k.KW > cols && w.k.KW <= 8) { /* 7x7: 3 × 7 accumulators, one pass */
        passes = 1;
        w.mo = 3;
    }
    w.mo = w.mo < w.k.opg ? w.mo : w.k.opg;
    w.kwc = (w.k.KW + passes - 1) / passes;
    w.cc = w.kwc < cols ? cols / w.kwc : 1;
    w.cc = w.cc < w.k.cpg ? w.cc : w.k.cpg;
    w.OB = (w.k.opg + w.mo - 1) / w.mo;
    w.CB = (w.k.cpg + w.cc - 1) / w.cc;
    w.ys = cg_item_stride(cg, n->inputs[0]), w.xs = cg_item_stride(cg, n->inputs[1]);
    int64_t L = cg->vec, vecs = (w.k.OW + L - 1) / L;
    w.plane = 4 * w.k.OW < 3 * vecs * L && w.k.OH * w.k.OW <= 16 * L;
    int64_t rows = w.plane ? 1 : w.k.KH;
    LLVMValueRef fn = cg_kernel_begin(cg, n->name);
    w.dw = cg_arg_ptr(cg, 0);
    w.dy = cg_input_ptr(cg, node, 0);
    w.x = cg_input_ptr(cg, node, 1);
    CgLoop l = cg_loop_begin(cg, cg->begin, cg->end, 1, "item");
    LLVMValueRef q;
    cg_divmod(cg, l.iv, rows, &q, &w.kh);
    cg_divmod(cg, q, w.CB, &q, &w.cb);
    cg_divmod(cg, q, w.OB, &w.grp, &w.ob);
    cg_split_last(cg, w.ob, w.OB, w.mo, w.k.opg, wg_with_o, &w);
    cg_loop_end(cg, &l);
    cg_kernel_end(cg);
    return (CgKernel){fn, w.k.G * w.OB * w.CB * rows};
}
