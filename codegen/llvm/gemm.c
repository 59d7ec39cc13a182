/* gemm.c: register-tiled single-precision matrix multiply inside a kernel,
 * C[M,N] = op(A)[M,K] · op(B)[K,N] (+ bias, epilogue), for weights that are
 * values of the graph rather than constants packed at compile time; and the
 * building blocks of the implicit-GEMM convolutions of conv_train.c: masked,
 * strided (gather/scatter) vector accesses and loops that carry accumulators.
 *
 * Two forms, chosen by the strides:
 *   broadcast form (B's rows contiguous):  acc[r][v] += A[m+r,k] * B[k, n+v·vec..]
 *   dot form (A's and B's rows along K):   acc[r][j] += A[m+r, k..] * B[n+j, k..],
 *                                          each accumulator summed across lanes at the end. */
#include <string.h>

#include "cg.h"

/* ---- masked and strided vector accesses ---------------------------------- */

static LLVMValueRef mask_vec(Cg *cg, int32_t lanes, uint64_t bits)
{
    LLVMValueRef m[64];
    LLVMTypeRef i1 = LLVMInt1TypeInContext(cg->ctx);
    for (int32_t i = 0; i < lanes; i++)
        m[i] = LLVMConstInt(i1, (bits >> i) & 1, 0);
    return LLVMConstVector(m, (unsigned)lanes);
}

static uint32_t all_lanes(int32_t lanes)
{
    return lanes >= 32 ? UINT32_MAX : (UINT32_C(1) << lanes) - 1;
}

static LLVMValueRef call(Cg *cg, const char *name, LLVMTypeRef *over, int32_t nover,
                         LLVMValueRef *args, int32_t nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id)
        ICE("unknown intrinsic %s", name);
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->mod, id, over, (size_t)nover);
    LLVMTypeRef fty = LLVMIntrinsicGetType(cg->ctx, id, over, (size_t)nover);
    return LLVMBuildCall2(cg->b, fty, fn, args, (unsigned)nargs, "");
}

/* &base[off] without inbounds: masked accesses may start before or end after a row. */
static LLVMValueRef ptr_at(Cg *cg, LLVMValueRef base, LLVMValueRef off)
{
    return LLVMBuildGEP2(cg->b, cg->t_f32, base, &off, 1, "");
}

/* Lane i of `lanes` at base + i·stride. */
static LLVMValueRef lane_ptrs(Cg *cg, LLVMValueRef base, int64_t stride, int32_t lanes)
{
    LLVMValueRef idx[64];
    for (int32_t i = 0; i < lanes; i++)
        idx[i] = cg_i64(cg, i * stride);
    LLVMValueRef v = LLVMConstVector(idx, (unsigned)lanes);
    return LLVMBuildGEP2(cg->b, cg->t_f32, base, &v, 1, "");
}

/* Every stride-th of lanes·stride contiguous floats: one masked load of the
 * span (only the wanted elements, so nothing past the last is touched) and a
 * shuffle, much cheaper than a gather. */
static LLVMValueRef strided_load(Cg *cg, LLVMValueRef p, int64_t stride, int32_t lanes,
                                 uint32_t mask)
{
    int32_t wide = (int32_t)(stride * lanes);
    uint64_t bits = 0;
    LLVMValueRef pick[64];
    for (int32_t l = 0; l < lanes; l++) {
        if ((mask >> l) & 1)
            bits |= UINT64_C(1) << (l * stride);
        pick[l] = LLVMConstInt(cg->t_i32, (unsigned long long)(l * stride), 0);
    }
    LLVMTypeRef wt = LLVMVectorType(cg->t_f32, (unsigned)wide);
    LLVMTypeRef over[2] = {wt, cg->t_ptr};
    LLVMValueRef args[4] = {p, LLVMConstInt(cg->t_i32, 4, 0), mask_vec(cg, wide, bits),
                            LLVMConstNull(wt)};
    LLVMValueRef v = call(cg, "llvm.masked.load", over, 2, args, 4);
    return LLVMBuildShuffleVector(cg->b, v, LLVMGetUndef(wt),
                                  LLVMConstVector(pick, (unsigned)lanes), "");
}

LLVMValueRef cg_load_lanes(Cg *cg, LLVMValueRef base, LLVMValueRef off, int64_t stride,
                           int32_t lanes, uint32_t mask)
{
    LLVMTypeRef vt = LLVMVectorType(cg->t_f32, (unsigned)lanes);
    mask &= all_lanes(lanes);
    if (!mask)
        return LLVMConstNull(vt);
    LLVMValueRef p = ptr_at(cg, base, off);
    if (stride == 1 && mask == all_lanes(lanes))
        return cg_load(cg, p, lanes);
    LLVMValueRef align = LLVMConstInt(cg->t_i32, 4, 0), zero = LLVMConstNull(vt);
    if (stride == 1) {
        LLVMTypeRef over[2] = {vt, cg->t_ptr};
        LLVMValueRef args[4] = {p, align, mask_vec(cg, lanes, mask), zero};
        return call(cg, "llvm.masked.load", over, 2, args, 4);
    }
    if (stride * lanes <= 64)
        return strided_load(cg, p, stride, lanes, mask);
    LLVMValueRef ptrs = lane_ptrs(cg, p, stride, lanes);
    LLVMTypeRef over[2] = {vt, LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {ptrs, align, mask_vec(cg, lanes, mask), zero};
    return call(cg, "llvm.masked.gather", over, 2, args, 4);
}

LLVMValueRef cg_load_span(Cg *cg, LLVMValueRef base, LLVMValueRef off, int64_t stride,
                          int32_t lanes)
{
    if (stride == 1 || stride * lanes > 64)
        return cg_load_lanes(cg, base, off, stride, lanes, all_lanes(lanes));
    LLVMValueRef pick[64];
    for (int32_t l = 0; l < lanes; l++)
        pick[l] = LLVMConstInt(cg->t_i32, (unsigned long long)(l * stride), 0);
    LLVMValueRef v = cg_load(cg, ptr_at(cg, base, off), (int32_t)(stride * lanes));
    return LLVMBuildShuffleVector(cg->b, v, LLVMGetUndef(LLVMTypeOf(v)),
                                  LLVMConstVector(pick, (unsigned)lanes), "");
}

void cg_store_lanes(Cg *cg, LLVMValueRef v, LLVMValueRef base, LLVMValueRef off, int64_t stride,
                    uint32_t mask)
{
    int32_t lanes = cg_lanes_of(v);
    mask &= all_lanes(lanes);
    if (!mask)
        return;
    LLVMValueRef p = ptr_at(cg, base, off);
    if (stride == 1 && mask == all_lanes(lanes)) {
        cg_store(cg, v, p);
        return;
    }
    LLVMValueRef align = LLVMConstInt(cg->t_i32, 4, 0);
    LLVMValueRef target = stride == 1 ? p : lane_ptrs(cg, p, stride, lanes);
    LLVMTypeRef over[2] = {LLVMTypeOf(v), LLVMTypeOf(target)};
    LLVMValueRef args[4] = {v, target, align, mask_vec(cg, lanes, mask)};
    call(cg, stride == 1 ? "llvm.masked.store" : "llvm.masked.scatter", over, 2, args, 4);
}

/* ---- loops and branches that carry values -------------------------------- */

void cg_acc_loop_begin(Cg *cg, CgAccLoop *l, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef *v,
                       int32_t n)
{
    if (n > CG_MAX_ACC)
        ICE("cg_acc_loop_begin: %d values", (int)n);
    l->pre = LLVMGetInsertBlock(cg->b);
    LLVMValueRef fn = LLVMGetBasicBlockParent(l->pre);
    l->body = LLVMAppendBasicBlockInContext(cg->ctx, fn, "loop");
    l->exit = LLVMAppendBasicBlockInContext(cg->ctx, fn, "done");
    l->hi = hi;
    l->n = n;
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, lo, hi, ""), l->body, l->exit);
    LLVMPositionBuilderAtEnd(cg->b, l->body);
    l->iv = LLVMBuildPhi(cg->b, cg->t_i64, "iv");
    LLVMAddIncoming(l->iv, &lo, &l->pre, 1);
    for (int32_t i = 0; i < n; i++) {
        l->init[i] = v[i];
        l->phi[i] = LLVMBuildPhi(cg->b, LLVMTypeOf(v[i]), "acc");
        LLVMAddIncoming(l->phi[i], &v[i], &l->pre, 1);
        v[i] = l->phi[i];
    }
}

void cg_acc_loop_end(Cg *cg, CgAccLoop *l, LLVMValueRef *v)
{
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->b);
    LLVMValueRef next = LLVMBuildNSWAdd(cg->b, l->iv, cg_i64(cg, 1), "next");
    LLVMAddIncoming(l->iv, &next, &latch, 1);
    for (int32_t i = 0; i < l->n; i++)
        LLVMAddIncoming(l->phi[i], &v[i], &latch, 1);
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, next, l->hi, ""), l->body, l->exit);
    LLVMPositionBuilderAtEnd(cg->b, l->exit);
    for (int32_t i = 0; i < l->n; i++) {
        LLVMValueRef p = LLVMBuildPhi(cg->b, LLVMTypeOf(v[i]), "out");
        LLVMValueRef vals[2] = {l->init[i], v[i]};
        LLVMBasicBlockRef from[2] = {l->pre, latch};
        LLVMAddIncoming(p, vals, from, 2);
        v[i] = p;
    }
}

void cg_acc_if_begin(Cg *cg, CgAccLoop *l, LLVMValueRef cond, LLVMValueRef *v, int32_t n)
{
    l->pre = LLVMGetInsertBlock(cg->b);
    LLVMValueRef fn = LLVMGetBasicBlockParent(l->pre);
    l->body = LLVMAppendBasicBlockInContext(cg->ctx, fn, "then");
    l->exit = LLVMAppendBasicBlockInContext(cg->ctx, fn, "join");
    l->n = n;
    memcpy(l->init, v, (size_t)n * sizeof *v);
    LLVMBuildCondBr(cg->b, cond, l->body, l->exit);
    LLVMPositionBuilderAtEnd(cg->b, l->body);
}

void cg_acc_if_end(Cg *cg, CgAccLoop *l, LLVMValueRef *v)
{
    LLVMBasicBlockRef from[2] = {l->pre, LLVMGetInsertBlock(cg->b)};
    LLVMBuildBr(cg->b, l->exit);
    LLVMPositionBuilderAtEnd(cg->b, l->exit);
    for (int32_t i = 0; i < l->n; i++) {
        LLVMValueRef p = LLVMBuildPhi(cg->b, LLVMTypeOf(v[i]), "join");
        LLVMValueRef vals[2] = {l->init[i], v[i]};
        LLVMAddIncoming(p, vals, from, 2);
        v[i] = p;
    }
}

/* ---- the matrix multiply -------------------------------------------------- */

static LLVMValueRef offset(Cg *cg, LLVMValueRef base, LLVMValueRef off)
{
    return off ? ptr_at(cg, base, off) : base;
}

/* Bias, residual, epilogue and store of the values v[j] of row m, columns
 * n + j·w (w: lanes per value; the last value holds `valid` columns). */
static void store_row(Cg *cg, const CgGemm *g, LLVMValueRef m, LLVMValueRef n, LLVMValueRef *v,
                      int32_t nv, int32_t w, int32_t valid)
{
    for (int32_t j = 0; j < nv; j++) {
        uint32_t mask = all_lanes(j == nv - 1 ? valid : w);
        LLVMValueRef col = cg_iadd(cg, n, cg_i64(cg, (int64_t)j * w)), x = v[j];
        if (g->bias) {
            LLVMValueRef bv = w == 1 ? cg_load(cg, cg_gep(cg, g->bias, col), 1)
                                     : cg_load_lanes(cg, g->bias, col, 1, w, mask);
            x = LLVMBuildFAdd(cg->b, x, bv, "");
        }
        LLVMValueRef res = NULL;
        if (g->res) {
            LLVMValueRef ro = cg_iadd(cg, cg_imul(cg, m, g->r_m), col);
            res = w == 1 ? cg_load(cg, cg_gep(cg, g->res, ro), 1)
                         : cg_load_lanes(cg, g->res, ro, 1, w, mask);
        }
        if (g->epi)
            x = cg_epilogue(cg, g->epi, x, res);
        LLVMValueRef co = cg_iadd(cg, cg_imul(cg, m, g->c_m), col);
        if (w == 1)
            cg_store(cg, x, cg_gep(cg, g->c, co));
        else
            cg_store_lanes(cg, x, g->c, co, 1, mask);
    }
}

/* Broadcast form: the tile of mr rows from m0 and nv vectors from n0 (the
 * last with `valid` lanes), over all of K. */
static void tile_bcast(Cg *cg, const CgGemm *g, LLVMValueRef m0, LLVMValueRef n0, int32_t mr,
                       int32_t nv, int32_t valid)
{
    int32_t L = cg->vec;
    LLVMValueRef acc[CG_MAX_ACC];
    for (int32_t i = 0; i < mr * nv; i++)
        acc[i] = LLVMConstNull(cg->t_vf32);
    LLVMValueRef a0 = cg_imul(cg, m0, g->a_m);
    CgAccLoop l;
    cg_acc_loop_begin(cg, &l, cg_i64(cg, 0), cg_i64(cg, g->K), acc, mr * nv);
    LLVMValueRef bo = cg_iadd(cg, cg_imul(cg, l.iv, g->b_k), n0), bv[8];
    for (int32_t j = 0; j < nv; j++)
        bv[j] = cg_load_lanes(cg, g->b, cg_iadd(cg, bo, cg_i64(cg, (int64_t)j * L)), 1, L,
                              all_lanes(j == nv - 1 ? valid : L));
    LLVMValueRef ao = cg_iadd(cg, a0, cg_imul(cg, l.iv, g->a_k));
    for (int32_t r = 0; r < mr; r++) {
        LLVMValueRef a = cg_load(cg, cg_gep(cg, g->a, cg_iadd(cg, ao, cg_i64(cg, r * g->a_m))), 1);
        LLVMValueRef s = cg_splat(cg, a, L);
        for (int32_t j = 0; j < nv; j++)
            acc[r * nv + j] = cg_fma(cg, s, bv[j], acc[r * nv + j]);
    }
    cg_acc_loop_end(cg, &l, acc);
    for (int32_t r = 0; r < mr; r++)
        store_row(cg, g, cg_iadd(cg, m0, cg_i64(cg, r)), n0, acc + r * nv, nv, L, valid);
}

/* Dot form: mr rows from m0 times nr columns from n0, vectors along K. */
static void tile_dot(Cg *cg, const CgGemm *g, LLVMValueRef m0, LLVMValueRef n0, int32_t mr,
                     int32_t nr)
{
    int32_t L = cg->vec;
    LLVMValueRef acc[CG_MAX_ACC];
    for (int32_t i = 0; i < mr * nr; i++)
        acc[i] = LLVMConstNull(cg->t_vf32);
    LLVMValueRef a0 = cg_imul(cg, m0, g->a_m), b0 = cg_imul(cg, n0, g->b_n);
    int64_t full = g->K / L, tail = g->K % L;
    for (int32_t pass = 0; pass < 2; pass++) {
        if ((pass == 0 && !full) || (pass == 1 && !tail))
            continue;
        CgAccLoop l;
        LLVMValueRef k;
        if (pass == 0) {
            cg_acc_loop_begin(cg, &l, cg_i64(cg, 0), cg_i64(cg, full), acc, mr * nr);
            k = cg_imul(cg, l.iv, L);
        } else {
            k = cg_i64(cg, full * L);
        }
        uint32_t mask = all_lanes(pass == 0 ? L : (int32_t)tail);
        LLVMValueRef av[8], bv[8];
        for (int32_t r = 0; r < mr; r++)
            av[r] = cg_load_lanes(cg, g->a, cg_iadd(cg, cg_iadd(cg, a0, k), cg_i64(cg, r * g->a_m)),
                                  1, L, mask);
        for (int32_t j = 0; j < nr; j++)
            bv[j] = cg_load_lanes(cg, g->b, cg_iadd(cg, cg_iadd(cg, b0, k), cg_i64(cg, j * g->b_n)),
                                  1, L, mask);
        for (int32_t r = 0; r < mr; r++)
            for (int32_t j = 0; j < nr; j++)
                acc[r * nr + j] = cg_fma(cg, av[r], bv[j], acc[r * nr + j]);
        if (pass == 0)
            cg_acc_loop_end(cg, &l, acc);
    }
    for (int32_t r = 0; r < mr; r++) {
        LLVMValueRef s[8];
        for (int32_t j = 0; j < nr; j++)
            s[j] = cg_hsum(cg, acc[r * nr + j]);
        store_row(cg, g, cg_iadd(cg, m0, cg_i64(cg, r)), n0, s, nr, 1, 1);
    }
}

/* Register tile of each form for the target: rows × vectors (or columns). */
static void tile_shape(const Cg *cg, bool dot, int32_t *mr, int32_t *nc)
{
    bool wide = cg->nregs >= 32;
    *mr = dot ? (wide ? 4 : 3) : (wide ? 6 : 4);
    *nc = dot ? (wide ? 4 : 3) : (wide ? 4 : 2);
}

static bool is_dot(const CgGemm *g)
{
    return g->b_n != 1;
}

/* Tiles of one row band (mr rows from m0) across all N columns. */
static void band(Cg *cg, const CgGemm *g, LLVMValueRef m0, int32_t mr)
{
    int32_t trm, nc;
    tile_shape(cg, is_dot(g), &trm, &nc);
    int64_t step = is_dot(g) ? nc : (int64_t)nc * cg->vec;
    int64_t full = g->N / step, rest = g->N % step;
    if (full) {
        CgLoop l = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, full), 1, "nt");
        LLVMValueRef n0 = cg_imul(cg, l.iv, step);
        if (is_dot(g))
            tile_dot(cg, g, m0, n0, mr, nc);
        else
            tile_bcast(cg, g, m0, n0, mr, nc, cg->vec);
        cg_loop_end(cg, &l);
    }
    if (!rest)
        return;
    LLVMValueRef n0 = cg_i64(cg, full * step);
    if (is_dot(g)) {
        tile_dot(cg, g, m0, n0, mr, (int32_t)rest);
    } else {
        int32_t nv = (int32_t)((rest + cg->vec - 1) / cg->vec);
        int32_t valid = (int32_t)(rest - (int64_t)(nv - 1) * cg->vec);
        tile_bcast(cg, g, m0, n0, mr, nv, valid);
    }
}

void cg_gemm(Cg *cg, const CgGemm *g)
{
    if (!is_dot(g) && g->b_n != 1)
        ICE("cg_gemm: B needs contiguous rows or columns");
    if (is_dot(g) && (g->a_k != 1 || g->b_k != 1))
        ICE("cg_gemm: the dot form needs A and B contiguous along K");
    int32_t mr, nc;
    tile_shape(cg, is_dot(g), &mr, &nc);
    int64_t full = g->M / mr, rest = g->M % mr;
    if (full) {
        CgLoop l = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, full), 1, "mt");
        band(cg, g, cg_imul(cg, l.iv, mr), mr);
        cg_loop_end(cg, &l);
    }
    if (rest)
        band(cg, g, cg_i64(cg, full * mr), (int32_t)rest);
}

/* ---- work items over blocks of C ------------------------------------------ */

int64_t cg_gemm_items(const CgGemm *g, int64_t mb, int64_t nb)
{
    return ((g->M + mb - 1) / mb) * ((g->N + nb - 1) / nb);
}

/* The block (mi, ni) of `whole` as a product of its own, of mb × nb (or the
 * smaller tail) at shifted pointers. */
static void block(Cg *cg, const CgGemm *whole, LLVMValueRef mi, LLVMValueRef ni, int64_t M,
                  int64_t N, int64_t mb, int64_t nb)
{
    CgGemm g = *whole;
    g.M = M, g.N = N;
    LLVMValueRef m0 = cg_imul(cg, mi, mb), n0 = cg_imul(cg, ni, nb);
    g.a = offset(cg, g.a, cg_imul(cg, m0, g.a_m));
    g.b = offset(cg, g.b, cg_imul(cg, n0, g.b_n));
    g.c = offset(cg, g.c, cg_iadd(cg, cg_imul(cg, m0, g.c_m), n0));
    if (g.res)
        g.res = offset(cg, g.res, cg_iadd(cg, cg_imul(cg, m0, g.r_m), n0));
    if (g.bias)
        g.bias = offset(cg, g.bias, n0);
    cg_gemm(cg, &g);
}

void cg_split_last(Cg *cg, LLVMValueRef v, int64_t count, int64_t size, int64_t whole,
                   void (*body)(Cg *, void *, int64_t), void *ctx)
{
    int64_t tail = whole - (count - 1) * size;
    if (tail == size) {
        body(cg, ctx, size);
        return;
    }
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
    LLVMBasicBlockRef t = LLVMAppendBasicBlockInContext(cg->ctx, fn, "tail");
    LLVMBasicBlockRef f = LLVMAppendBasicBlockInContext(cg->ctx, fn, "full");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, fn, "join");
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, v, cg_i64(cg, count - 1), ""), t, f);
    LLVMPositionBuilderAtEnd(cg->b, t);
    body(cg, ctx, tail);
    LLVMBuildBr(cg->b, join);
    LLVMPositionBuilderAtEnd(cg->b, f);
    body(cg, ctx, size);
    LLVMBuildBr(cg->b, join);
    LLVMPositionBuilderAtEnd(cg->b, join);
}

typedef struct ItemCtx {
    const CgGemm *g;
    LLVMValueRef mi, ni;
    int64_t mb, nb, M, MB, NB;
} ItemCtx;

static void with_n(Cg *cg, void *p, int64_t N)
{
    ItemCtx *c = p;
    block(cg, c->g, c->mi, c->ni, c->M, N, c->mb, c->nb);
}

static void with_m(Cg *cg, void *p, int64_t M)
{
    ItemCtx *c = p;
    c->M = M;
    cg_split_last(cg, c->ni, c->NB, c->nb, c->g->N, with_n, c);
}

void cg_gemm_item(Cg *cg, const CgGemm *g, int64_t mb, int64_t nb, LLVMValueRef item)
{
    ItemCtx c = {.g = g, .mb = mb, .nb = nb};
    c.MB = (g->M + mb - 1) / mb;
    c.NB = (g->N + nb - 1) / nb;
    cg_divmod(cg, item, c.NB, &c.mi, &c.ni);
    cg_split_last(cg, c.mi, c.MB, mb, g->M, with_m, &c);
}

bool cg_weights_constant(const Cg *cg, int32_t node)
{
    const Node *n = &cg->g->nodes[node];
    int32_t bi = ir_bias_input(n);
    for (int32_t i = 1; i <= 2; i++) {
        if (i == 2 && bi < 0)
            break;
        const Node *w = &cg->g->nodes[n->inputs[i == 1 ? 1 : bi]];
        if (w->op != OP_PARAM || !w->data)
            return false;
    }
    return true;
}
