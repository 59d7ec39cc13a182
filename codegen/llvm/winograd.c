/* winograd.c: 3×3, stride-1 convolutions of blocked (NCHWc) values as
 * Winograd F(m×m, 3×3), m = ConvAttrs.winograd: each m×m output tile comes from
 * an a×a input tile d (a = m + 2, P = a² points) as
 *     Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A
 * F(4×4) takes 36 products per tile and input channel instead of 144; F(2×2)
 * 16 instead of 36, with 16·C·O transformed weights instead of 36·C·O, which
 * deep layers at batch 1 stream faster (passes/conv_algo.c chooses).
 * F(6×6, 3×3) would take 64 for 36 outputs (5.06× fewer instead of 4×), but
 * its transforms multiply by up to 32 and divide by up to 180, and lose more
 * precision; with F(4×4) every zoo model stays within 3e-6 of the interpreter
 * (the limit is 1e-4).
 *
 * The weights are transformed at compile time (in double) to
 * U[kc][P][C][oct·b]: for chunk kc of oct output blocks, point p, input
 * channel c, the oct·b output channels contiguous.
 *
 * A work item is a run of MT tiles (numbered row-major over the planes of the
 * whole batch) and one chunk of output blocks (pass_winograd_split, passes/).
 * A thread transforms the input tiles of a run, once for its items of the run,
 * into V[P][MT][C] (vector
 * arithmetic on the b channels of a block: Bᵀ d B is adds and multiplies by
 * constants on vectors), in the thread's scratch, which stays in L2; then per chunk of
 * output blocks, for each point a GEMM M[p][MT][oct·b] = V[p] × U[kc][p] with
 * the direct convolution's register tile (broadcast one V value, FMA it with
 * oct weight vectors, T tiles × oct vectors of accumulators), and the output
 * transform of the chunk with bias, activation and residual applied before
 * the one store of each output pixel that lies inside the plane. Tiles past
 * the plane's edge read zeros outside the input and store nothing. */
#include <stdio.h>
#include <stdlib.h>

#include "cg.h"
#include "passes.h"

#define WG_R 3      /* kernel side */
#define WG_MAX_A 6  /* input tile side, at most */
#define WG_MAX_P 36 /* points, at most */

/* One form F(m×m, 3×3): output tile side m, input tile side a = m + 2, a² points;
 * Bᵀ (a×a), G (a×3) and Aᵀ (m×a) row-major. */
typedef struct WinoForm {
    int m, a, p;
    const double *bt, *g, *at;
} WinoForm;

/* F(4, 3) with the interpolation points 0, ±1, ±2 (Lavin and Gray). */
static const double BT4[6 * 6] = {
    4, 0, -5, 0, 1, 0, 0, -4, -4, 1, 1, 0, 0, 4, -4, -1, 1, 0,
    0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0, 0, 4, 0, -5, 0, 1,
};
static const double G4[6 * 3] = {
    1.0 / 4,  0,        0,       -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
    1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 24, -1.0 / 12, 1.0 / 6, 0,        0,       1,
};
static const double AT4[4 * 6] = {
    1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1,
};
/* F(2, 3) with the points 0, ±1: transforms of adds and halves only. */
static const double BT2[4 * 4] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
static const double G2[4 * 3] = {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1};
static const double AT2[2 * 4] = {1, 1, 1, 0, 0, 1, -1, -1};

static const WinoForm FORM4 = {4, 6, 36, BT4, G4, AT4};
static const WinoForm FORM2 = {2, 4, 16, BT2, G2, AT2};

typedef struct Wino {
    Cg *cg;
    const WinoForm *f;
    const Node *n;
    const ConvAttrs *a;
    int64_t N, C, H, W, O, OH, OW, pt, pl;
    int64_t b, CB, OB, oct, T; /* block, input and output blocks, register tile */
    int64_t TH, TW, NT;        /* tile rows, columns, tiles of a plane */
    int64_t MT, runs, KG;      /* tiles of a work item, runs of them, groups of chunks */
    int64_t xs, os, rs;
    LLVMValueRef x, out, res, u, bias, vbuf, mbuf;
    LLVMValueRef t0; /* of the current item: its run's first tile */
} Wino;

static LLVMValueRef iadd(Cg *cg, LLVMValueRef a, LLVMValueRef b)
{
    return cg_iadd(cg, a, b);
}

static LLVMValueRef iaddc(Cg *cg, LLVMValueRef a, int64_t c)
{
    return c ? cg_iadd(cg, a, cg_i64(cg, c)) : a;
}

static LLVMValueRef imul(Cg *cg, LLVMValueRef a, int64_t c)
{
    return c == 1 ? a : cg_imul(cg, a, c);
}

static LLVMValueRef at(Cg *cg, LLVMValueRef base, LLVMValueRef index)
{
    return LLVMBuildGEP2(cg->b, cg->t_f32, base, &index, 1, "");
}

/* out[i] = Σ_k m[i][k] in[k] over `cols` vectors, for `rows` rows of the constant
 * matrix m (row stride `ld`): zeros dropped, ±1 as adds and subtracts. */
static void combine(Cg *cg, const double *m, int rows, int cols, int ld, LLVMValueRef *in,
                    int istride, LLVMValueRef *out, int ostride)
{
    for (int i = 0; i < rows; i++) {
        LLVMValueRef s = NULL;
        for (int k = 0; k < cols; k++) {
            double c = m[i * ld + k];
            LLVMValueRef v = in[k * istride];
            if (c == 0)
                continue;
            if (!s) {
                s = c == 1    ? v
                    : c == -1 ? LLVMBuildFNeg(cg->b, v, "")
                              : LLVMBuildFMul(cg->b, v, cg_splat(cg, cg_f32(cg, (float)c),
                                                                 cg_lanes_of(v)), "");
            } else if (c == 1) {
                s = LLVMBuildFAdd(cg->b, s, v, "");
            } else if (c == -1) {
                s = LLVMBuildFSub(cg->b, s, v, "");
            } else {
                s = cg_fma(cg, cg_splat(cg, cg_f32(cg, (float)c), cg_lanes_of(v)), v, s);
            }
        }
        out[i * ostride] = s;
    }
}

/* y = m x mᵀ for a square tile x (side cols) and m rows × cols: rows² vectors. */
static void transform2d(Cg *cg, const double *m, int rows, int cols, LLVMValueRef *x,
                        LLVMValueRef *y)
{
    LLVMValueRef t[WG_MAX_P];
    for (int j = 0; j < cols; j++) /* columns: t[i][j] = Σ_k m[i][k] x[k][j] */
        combine(cg, m, rows, cols, cols, x + j, cols, t + j, cols);
    for (int i = 0; i < rows; i++) /* rows: y[i][j] = Σ_k t[i][k] m[j][k] */
        combine(cg, m, rows, cols, cols, t + i * cols, 1, y + i * rows, 1);
}

/* ---- weights ----------------------------------------------------------- */

/* U[kc][p][c][j·b + l] = (G g Gᵀ)[p] of output channel (kc·oct + j)·b + l, input c. */
static LLVMValueRef pack_weights(Wino *k)
{
    const Node *wn = &k->cg->g->nodes[k->n->inputs[1]];
    if (!wn->data)
        ICE("conv2d %s: weight %s is not bound", k->n->name, wn->name);
    const WinoForm *f = k->f;
    int64_t ob = k->oct * k->b, total = f->p * k->C * k->O;
    char name[512];
    snprintf(name, sizeof name, "%s.wino%d.%lldx%lld", wn->name, f->m, (long long)k->b,
             (long long)k->oct);
    LLVMValueRef gl;
    float *p = cg_weights_begin(k->cg, name, total, &gl);
    if (!p)
        return gl;
    if (k->O % ob)
        ICE("conv2d %s: %lld output channels in groups of %lld", k->n->name, (long long)k->O,
            (long long)ob);
    /* output channels innermost: the P points' values go to P sequential streams */
    for (int64_t kc = 0; kc < k->O / ob; kc++)
        for (int64_t c = 0; c < k->C; c++)
            for (int64_t o = kc * ob; o < (kc + 1) * ob; o++) {
                const float *g = wn->data + (o * k->C + c) * WG_R * WG_R;
                double t[WG_MAX_A][WG_R];
                for (int i = 0; i < f->a; i++)
                    for (int j = 0; j < WG_R; j++) {
                        double s = 0;
                        for (int r = 0; r < WG_R; r++)
                            s += f->g[i * WG_R + r] * g[r * WG_R + j];
                        t[i][j] = s;
                    }
                for (int i = 0; i < f->a; i++)
                    for (int j = 0; j < f->a; j++) {
                        double s = 0;
                        for (int r = 0; r < WG_R; r++)
                            s += t[i][r] * f->g[j * WG_R + r];
                        int64_t dst = ((o / ob * f->p + i * f->a + j) * k->C + c) * ob + o % ob;
                        p[dst] = (float)s;
                    }
            }
    cg_weights_end(k->cg);
    return gl;
}

/* ---- the stages of a work item ----------------------------------------- */

/* Tile `t` of the batch (a value; may lie past the last tile): its batch item,
 * row and column; a tile past the last gets a row past the plane, so that it
 * reads zeros and stores nothing. */
static void tile_pos(Wino *k, LLVMValueRef t, LLVMValueRef *n, LLVMValueRef *th,
                     LLVMValueRef *tw)
{
    Cg *cg = k->cg;
    LLVMValueRef r;
    cg_divmod(cg, t, k->NT, n, &r);
    cg_divmod(cg, r, k->TW, th, tw);
    LLVMValueRef ok = LLVMBuildICmp(cg->b, LLVMIntSLT, t, cg_i64(cg, k->N * k->NT), "");
    *n = LLVMBuildSelect(cg->b, ok, *n, cg_i64(cg, 0), "");
    *th = LLVMBuildSelect(cg->b, ok, *th, cg_i64(cg, k->TH + 2), "");
}

static LLVMValueRef in_range(Cg *cg, LLVMValueRef v, int64_t hi)
{
    /* 0 <= v < hi as one unsigned compare */
    return LLVMBuildICmp(cg->b, LLVMIntULT, v, cg_i64(cg, hi), "");
}

/* if (cond) { then } else { other }: the builder goes to `then`; *other and
 * the returned join block are for the caller to fill and continue in. */
static LLVMBasicBlockRef if_else(Cg *cg, LLVMValueRef cond, LLVMBasicBlockRef *other)
{
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(cg->ctx, fn, "inner");
    *other = LLVMAppendBasicBlockInContext(cg->ctx, fn, "edge");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, fn, "join");
    LLVMBuildCondBr(cg->b, cond, then, *other);
    LLVMPositionBuilderAtEnd(cg->b, then);
    return join;
}

/* Bᵀ d B of input tile d into V[p][tl][cb·b ..]. */
static void store_v(Wino *k, LLVMValueRef tl, LLVMValueRef cb, LLVMValueRef *d)
{
    Cg *cg = k->cg;
    LLVMValueRef v[WG_MAX_P];
    transform2d(cg, k->f->bt, k->f->a, k->f->a, d, v);
    LLVMValueRef base = iadd(cg, imul(cg, tl, k->C), imul(cg, cb, k->b));
    for (int p = 0; p < k->f->p; p++)
        cg_store(cg, v[p], at(cg, k->vbuf, iaddc(cg, base, p * k->MT * k->C)));
}

/* V[p][tl][cb·b ..] for input block cb of tile tl of the item. A tile whose a×a
 * inputs all lie inside the plane loads them as they are; one at an edge (or
 * past the last tile) reads zeros outside, through clamped addresses. */
static void input_tile(Wino *k, LLVMValueRef tl, LLVMValueRef cb)
{
    Cg *cg = k->cg;
    LLVMValueRef nb, th, tw;
    tile_pos(k, iadd(cg, k->t0, tl), &nb, &th, &tw);
    int A = k->f->a;
    LLVMValueRef ih0 = iaddc(cg, imul(cg, th, k->f->m), -k->pt);
    LLVMValueRef iw0 = iaddc(cg, imul(cg, tw, k->f->m), -k->pl);
    LLVMValueRef plane = iadd(cg, imul(cg, nb, k->xs), imul(cg, cb, k->H * k->W * k->b));
    LLVMValueRef d[WG_MAX_P];
    LLVMBasicBlockRef edge = NULL, join = NULL;
    if (k->H >= A && k->W >= A) {
        LLVMValueRef inside = LLVMBuildAnd(cg->b, in_range(cg, ih0, k->H - A + 1),
                                           in_range(cg, iw0, k->W - A + 1), "");
        join = if_else(cg, inside, &edge);
        LLVMValueRef p0 = iadd(cg, plane, imul(cg, iadd(cg, imul(cg, ih0, k->W), iw0), k->b));
        LLVMValueRef xp = at(cg, k->x, p0);
        for (int i = 0; i < A; i++)
            for (int j = 0; j < A; j++)
                d[i * A + j] =
                    cg_load(cg, at(cg, xp, cg_i64(cg, (i * k->W + j) * k->b)), (int32_t)k->b);
        store_v(k, tl, cb, d);
        LLVMBuildBr(cg->b, join);
        LLVMPositionBuilderAtEnd(cg->b, edge);
    }
    LLVMValueRef zero = cg_i64(cg, 0);
    LLVMValueRef zv = LLVMConstNull(LLVMVectorType(cg->t_f32, (unsigned)k->b));
    LLVMValueRef rok[WG_MAX_A], cok[WG_MAX_A], ri[WG_MAX_A], ci[WG_MAX_A];
    for (int i = 0; i < A; i++) {
        LLVMValueRef ih = iaddc(cg, ih0, i), iw = iaddc(cg, iw0, i);
        rok[i] = in_range(cg, ih, k->H);
        cok[i] = in_range(cg, iw, k->W);
        ri[i] = LLVMBuildSelect(cg->b, rok[i], ih, zero, "");
        ci[i] = LLVMBuildSelect(cg->b, cok[i], iw, zero, "");
    }
    for (int i = 0; i < A; i++)
        for (int j = 0; j < A; j++) {
            LLVMValueRef pix = iadd(cg, imul(cg, ri[i], k->W), ci[j]);
            LLVMValueRef x = cg_load(cg, at(cg, k->x, iadd(cg, plane, imul(cg, pix, k->b))),
                                     (int32_t)k->b);
            LLVMValueRef ok = LLVMBuildAnd(cg->b, rok[i], cok[j], "");
            d[i * A + j] = LLVMBuildSelect(cg->b, ok, x, zv, "");
        }
    store_v(k, tl, cb, d);
    if (join) {
        LLVMBuildBr(cg->b, join);
        LLVMPositionBuilderAtEnd(cg->b, join);
    }
}

/* Loads of the GEMM stay where they are emitted (see conv.c's load_pinned):
 * hoisted or merged, they would keep values live and spill the tile. */
static LLVMValueRef load_pinned(Cg *cg, LLVMValueRef base, int64_t off, int32_t lanes)
{
    LLVMValueRef v = cg_load(cg, at(cg, base, cg_i64(cg, off)), lanes);
    LLVMSetVolatile(v, 1);
    return v;
}

/* M[p][tb·T + i][j·b ..] = Σ_c V[p][tb·T + i][c] U[kc][p][c][j·b ..] for a register
 * tile of T tiles × oct output blocks. */
static void gemm_tile(Wino *k, LLVMValueRef kc, LLVMValueRef p, LLVMValueRef tb)
{
    Cg *cg = k->cg;
    int64_t ob = k->oct * k->b, T = k->T, U = 4; /* input channels per loop step */
    LLVMValueRef acc[CG_MAX_ACC];
    int32_t na = (int32_t)(T * k->oct);
    for (int32_t i = 0; i < na; i++)
        acc[i] = LLVMConstNull(LLVMVectorType(cg->t_f32, (unsigned)k->b));
    LLVMValueRef vrow = iadd(cg, imul(cg, p, k->MT), imul(cg, tb, T));
    LLVMValueRef vp = at(cg, k->vbuf, imul(cg, vrow, k->C));
    LLVMValueRef up = at(cg, k->u, imul(cg, iadd(cg, imul(cg, kc, k->f->p), p), k->C * ob));
    CgAccLoop l;
    cg_acc_loop_begin(cg, &l, cg_i64(cg, 0), cg_i64(cg, k->C / U), acc, na);
    LLVMValueRef vq = at(cg, vp, imul(cg, l.iv, U));
    LLVMValueRef uq = at(cg, up, imul(cg, l.iv, U * ob));
    /* The register tiles of a point prefetch the next point's weights (in U's
     * order, also the next chunk's first), which a small plane (14×14 at batch 1:
     * a few register tiles) would otherwise wait for from memory: step l of the
     * reduction in register tile l mod (MT / T), so that the requests are spread
     * over the point's tiles, not queued all at once by the first (ResNet-50 at
     * batch 1, 2 threads, Intel AVX-512: the five F(2×2) convs of layer3 2.63 →
     * 2.31 ms, the seven F(4×4) of layer1 and 2 2.45 → 2.22 ms); the other tiles
     * prefetch lines already in L1. */
    LLVMValueRef mine = LLVMBuildICmp(
        cg->b, LLVMIntEQ, LLVMBuildURem(cg->b, l.iv, cg_i64(cg, k->MT / T), ""), tb, "");
    LLVMValueRef ahead = LLVMBuildSelect(cg->b, mine, cg_i64(cg, k->C * ob), cg_i64(cg, 0), "");
    LLVMValueRef pq = at(cg, uq, ahead);
    for (int64_t q = 0; q < U * ob; q += 16)
        cg_prefetch_l2(cg, at(cg, pq, cg_i64(cg, q)));
    for (int64_t c = 0; c < U; c++) {
        LLVMValueRef wv[4];
        for (int64_t j = 0; j < k->oct; j++)
            wv[j] = load_pinned(cg, uq, c * ob + j * k->b, (int32_t)k->b);
        for (int64_t i = 0; i < T; i++) {
            LLVMValueRef s = cg_splat(cg, load_pinned(cg, vq, i * k->C + c, 1), (int32_t)k->b);
            for (int64_t j = 0; j < k->oct; j++)
                acc[i * k->oct + j] = cg_fma(cg, s, wv[j], acc[i * k->oct + j]);
        }
    }
    cg_acc_loop_end(cg, &l, acc);
    LLVMValueRef mo = imul(cg, iadd(cg, imul(cg, p, k->MT), imul(cg, tb, T)), ob);
    for (int64_t i = 0; i < T; i++)
        for (int64_t j = 0; j < k->oct; j++)
            cg_store(cg, acc[i * k->oct + j], at(cg, k->mbuf, iaddc(cg, mo, i * ob + j * k->b)));
}

/* Output block kc·oct + j of tile tl: Aᵀ M A, bias, epilogue, the store of the
 * pixels inside the plane. */
static void output_tile(Wino *k, LLVMValueRef kc, LLVMValueRef tl, int64_t j)
{
    Cg *cg = k->cg;
    int64_t ob = k->oct * k->b;
    const WinoForm *f = k->f;
    int M = f->m;
    LLVMValueRef m[WG_MAX_P], y[WG_MAX_P];
    LLVMValueRef mo = iaddc(cg, imul(cg, tl, ob), j * k->b);
    for (int p = 0; p < f->p; p++)
        m[p] = cg_load(cg, at(cg, k->mbuf, iaddc(cg, mo, p * k->MT * ob)), (int32_t)k->b);
    transform2d(cg, f->at, M, f->a, m, y);
    LLVMValueRef blk = iaddc(cg, imul(cg, kc, k->oct), j);
    if (k->bias) {
        LLVMValueRef bv = cg_load(cg, at(cg, k->bias, imul(cg, blk, k->b)), (int32_t)k->b);
        for (int i = 0; i < M * M; i++)
            y[i] = LLVMBuildFAdd(cg->b, y[i], bv, "");
    }
    LLVMValueRef nb, th, tw;
    tile_pos(k, iadd(cg, k->t0, tl), &nb, &th, &tw);
    LLVMValueRef oh0 = imul(cg, th, M), ow0 = imul(cg, tw, M);
    LLVMValueRef pl = imul(cg, blk, k->OH * k->OW);
    LLVMValueRef oo = imul(cg, nb, k->os), ro = k->res ? imul(cg, nb, k->rs) : NULL;
    /* A whole tile inside the plane stores all m² pixels; one at the edge tests each. */
    LLVMValueRef whole = LLVMBuildAnd(
        cg->b, LLVMBuildICmp(cg->b, LLVMIntSLE, oh0, cg_i64(cg, k->OH - M), ""),
        LLVMBuildICmp(cg->b, LLVMIntSLE, ow0, cg_i64(cg, k->OW - M), ""), "");
    LLVMBasicBlockRef edge, join = if_else(cg, whole, &edge);
    for (int pass = 0; pass < 2; pass++) {
        for (int r = 0; r < M; r++) {
            LLVMValueRef oh = iaddc(cg, oh0, r);
            LLVMValueRef rowok = LLVMBuildICmp(cg->b, LLVMIntSLT, oh, cg_i64(cg, k->OH), "");
            for (int s = 0; s < M; s++) {
                LLVMValueRef ow = iaddc(cg, ow0, s), ok = NULL;
                LLVMBasicBlockRef pj = NULL;
                if (pass) {
                    ok = LLVMBuildICmp(cg->b, LLVMIntSLT, ow, cg_i64(cg, k->OW), "");
                    pj = cg_if_begin(cg, LLVMBuildAnd(cg->b, rowok, ok, ""));
                }
                LLVMValueRef pix =
                    imul(cg, iadd(cg, iadd(cg, pl, imul(cg, oh, k->OW)), ow), k->b);
                LLVMValueRef rv = NULL;
                if (k->res)
                    rv = cg_load(cg, at(cg, k->res, iadd(cg, ro, pix)), (int32_t)k->b);
                LLVMValueRef v = cg_epilogue(cg, &k->a->epi, y[r * M + s], rv);
                cg_store(cg, v, at(cg, k->out, iadd(cg, oo, pix)));
                if (pass)
                    cg_if_end(cg, pj);
            }
        }
        LLVMBuildBr(cg->b, join);
        LLVMPositionBuilderAtEnd(cg->b, pass ? join : edge);
    }
}

/* ---- the kernel -------------------------------------------------------- */

static void wino_init(Wino *k, Cg *cg, int32_t id)
{
    const Graph *g = cg->g;
    const Node *n = &g->nodes[id];
    const TensorType *xt = &g->nodes[n->inputs[0]].type;
    *k = (Wino){.cg = cg, .n = n, .a = &n->attrs.conv};
    k->N = xt->dims[0], k->C = xt->dims[1], k->H = xt->dims[2], k->W = xt->dims[3];
    k->O = n->type.dims[1], k->OH = n->type.dims[2], k->OW = n->type.dims[3];
    k->pt = k->a->pad[0], k->pl = k->a->pad[1];
    k->b = n->type.block;
    k->CB = k->C / k->b, k->OB = k->O / k->b;
    k->xs = cg_item_stride(cg, n->inputs[0]);
    k->os = cg_item_stride(cg, id);
    if (k->a->epi.residual)
        k->rs = cg_item_stride(cg, n->inputs[ir_residual_input(n)]);
    if (k->N == 1) /* as in conv.c: equal shapes in different concat buffers, one kernel */
        k->xs = k->os = k->rs = 0;
    k->f = k->a->winograd == 2 ? &FORM2 : &FORM4;
    k->TH = (k->OH + k->f->m - 1) / k->f->m;
    k->TW = (k->OW + k->f->m - 1) / k->f->m;
    k->NT = k->TH * k->TW;
    WinoSplit sp;
    pass_winograd_split(k->C, k->O, k->b, k->f->p, k->N * k->NT, cg->nregs, CG_MAX_ACC, &sp);
    k->oct = sp.oct, k->T = sp.T, k->MT = sp.MT, k->runs = sp.runs, k->KG = sp.KG;
}

bool cg_winograd_fits(const Cg *cg, int32_t node)
{
    const Graph *g = cg->g;
    const Node *n = &g->nodes[node];
    if (n->op != OP_CONV2D)
        return false;
    const ConvAttrs *a = &n->attrs.conv;
    const TensorType *xt = &g->nodes[n->inputs[0]].type, *wt = &g->nodes[n->inputs[1]].type;
    const TensorType *yt = &n->type;
    int32_t b = yt->block;
    if (yt->layout != LAYOUT_NCHWC || xt->layout != LAYOUT_NCHWC || xt->block != b || b > 16)
        return false;
    if (a->groups != 1 || wt->dims[2] != 3 || wt->dims[3] != 3 || a->stride[0] != 1 ||
        a->stride[1] != 1 || a->dilation[0] != 1 || a->dilation[1] != 1)
        return false;
    if (a->epi.residual) {
        const TensorType *rt = &g->nodes[n->inputs[ir_residual_input(n)]].type;
        if (rt->layout != LAYOUT_NCHWC || rt->block != b)
            return false;
    }
    return cg_weights_constant(cg, node) && xt->dims[1] % 4 == 0;
}

bool cg_runs_winograd(const Cg *cg, int32_t node)
{
    const Node *n = &cg->g->nodes[node];
    return n->op == OP_CONV2D && n->attrs.conv.winograd && cg_winograd_fits(cg, node);
}

CgKernel cg_emit_conv2d_winograd(Cg *cg, int32_t node)
{
    Wino k;
    wino_init(&k, cg, node);
    k.u = pack_weights(&k);
    if (ir_bias_input(k.n) >= 0) {
        const Node *bn = &cg->g->nodes[k.n->inputs[2]];
        if (!bn->data)
            ICE("conv2d %s: bias %s is not bound", k.n->name, bn->name);
        k.bias = cg_weights(cg, bn->name, bn->data, k.O);
    }
    LLVMValueRef fn = cg_kernel_begin(cg, k.n->name);
    k.out = cg_arg_ptr(cg, 0);
    k.x = cg_arg_ptr(cg, 1);
    k.res = k.a->epi.residual ? cg_arg_ptr(cg, k.n->ninputs) : NULL;
    int64_t ob = k.oct * k.b;
    LLVMValueRef scratch = cg_scratch(cg, k.f->p * k.MT * (k.C + ob));
    k.vbuf = scratch;
    k.mbuf = at(cg, scratch, cg_i64(cg, k.f->p * k.MT * k.C));

    CgAccLoop li, lt, lc, lp, lb;
    cg_acc_loop_begin(cg, &li, cg->begin, cg->end, NULL, 0);
    LLVMValueRef run, kg;
    cg_divmod(cg, li.iv, k.KG, &run, &kg);
    k.t0 = imul(cg, run, k.MT);
    /* input transform of the run's tiles, once for the thread's items of the run:
     * at its first item in the range, or where a new run starts */
    LLVMValueRef fresh = LLVMBuildOr(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, li.iv, cg->begin, ""),
                                     LLVMBuildICmp(cg->b, LLVMIntEQ, kg, cg_i64(cg, 0), ""), "");
    LLVMBasicBlockRef join = cg_if_begin(cg, fresh);
    cg_acc_loop_begin(cg, &lt, cg_i64(cg, 0), cg_i64(cg, k.MT), NULL, 0);
    cg_acc_loop_begin(cg, &lc, cg_i64(cg, 0), cg_i64(cg, k.CB), NULL, 0);
    input_tile(&k, lt.iv, lc.iv);
    cg_acc_loop_end(cg, &lc, NULL);
    cg_acc_loop_end(cg, &lt, NULL);
    cg_if_end(cg, join);
    /* the item's chunk kg of output blocks: the P GEMMs, then the output transform */
    cg_acc_loop_begin(cg, &lp, cg_i64(cg, 0), cg_i64(cg, k.f->p), NULL, 0);
    cg_acc_loop_begin(cg, &lb, cg_i64(cg, 0), cg_i64(cg, k.MT / k.T), NULL, 0);
    gemm_tile(&k, kg, lp.iv, lb.iv);
    cg_acc_loop_end(cg, &lb, NULL);
    cg_acc_loop_end(cg, &lp, NULL);
    cg_acc_loop_begin(cg, &lt, cg_i64(cg, 0), cg_i64(cg, k.MT), NULL, 0);
    for (int64_t j = 0; j < k.oct; j++)
        output_tile(&k, kg, lt.iv, j);
    cg_acc_loop_end(cg, &lt, NULL);
    cg_acc_loop_end(cg, &li, NULL);
    cg_kernel_end(cg);
    return (CgKernel){fn, k.runs * k.KG};
}
