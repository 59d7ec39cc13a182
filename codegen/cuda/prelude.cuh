// prelude.cuh: the device code every generated program starts with. Each
// generated kernel is a thin extern "C" wrapper that instantiates one of these
// templates with the node's shapes as constants, so index arithmetic folds.
// The same text compiles as host C++ with codegen/cuda/emulate.h (CPU checks).

#define CU_THREADS 256
#define CU_NEG_INF (-__int_as_float(0x7f800000))

// An epilogue out = post(act(v + bias) + residual). An activation is its op's
// number, CU_OP_<NAME>, defined from the op table above this text; 0: none.
struct CuEpi {
    int act;
    float a, b;
    int post;
    float pa, pb;
};

__device__ __forceinline__ float cu_relu6(float x)
{
    return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x);
}

__device__ __forceinline__ float cu_act(float x, int k, float a, float b)
{
    switch (k) {
    case CU_OP_RELU: return x < 0.0f ? 0.0f : x;
    case CU_OP_CLIP: return x < a ? a : (x > b ? b : x);
    case CU_OP_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case CU_OP_TANH: return tanhf(x);
    case CU_OP_SILU: return x / (1.0f + expf(-x));
    case CU_OP_LEAKY_RELU: return x < 0.0f ? x * a : x;
    case CU_OP_HARDSWISH: return x * cu_relu6(x + 3.0f) / 6.0f;
    case CU_OP_HARDSIGMOID: return cu_relu6(x + 3.0f) / 6.0f;
    case CU_OP_AFFINE: return x * a + b;
    case CU_OP_GELU:
        if (a != 0.0f) return 0.5f * x * (1.0f + tanhf(0.797884561f * (x + 0.044715f * x * x * x)));
        return x * 0.5f * (1.0f + erff(x * 0.707106781f));
    case CU_OP_ERF: return erff(x);
    case CU_OP_SQRT: return sqrtf(x);
    case CU_OP_EXP: return expf(x);
    case CU_OP_ABS: return fabsf(x);
    default: return x;
    }
}

__device__ __forceinline__ float cu_epi(const CuEpi &e, float v, const float *res, int at)
{
    v = cu_act(v, e.act, e.a, e.b);
    if (res) v += res[at];
    return cu_act(v, e.post, e.pa, e.pb);
}

// ---- tensor cores: D = A(16x8) * B(8x8) + C in TF32, fragments as in the PTX
// ISA for mma.m16n8k8 (g = lane / 4, t = lane % 4):
//   a0 (g, t)  a1 (g+8, t)  a2 (g, t+4)  a3 (g+8, t+4)     A: row, col = k
//   b0 (t, g)  b1 (t+4, g)                                  B: row = k, col
//   c0 (g, 2t) c1 (g, 2t+1) c2 (g+8, 2t) c3 (g+8, 2t+1)
#ifndef CU_EMULATE
__device__ __forceinline__ float cu_tf32(float x)
{
    unsigned u;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(x));
    return __uint_as_float(u);
}

__device__ __forceinline__ void cu_mma_tf32(float *c, const float *a, const float *b)
{
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])),
                   "r"(__float_as_uint(a[2])), "r"(__float_as_uint(a[3])),
                   "r"(__float_as_uint(b[0])), "r"(__float_as_uint(b[1])));
#endif
}
#endif

// ---- convolution as implicit GEMM -------------------------------------------
// M = N*P*Q output pixels (rows), K output channels of the group (columns),
// KD = C*R*S (the reduction). A block computes a BM x BN tile with BM*BN/32
// threads, one 32x32 tile per warp (2 x 4 mma tiles of 16x8); the reduction
// advances BK = 16 at a time through shared memory: the im2col tile of the
// input is gathered from NCHW during the global loads (zeros for padding and
// past the end) and the weights come packed as [KDP][KP] so their loads are
// plain float4 rows. Registers hold the next tile's loads while the current one
// is multiplied. blockIdx.z is the group. Where reduction index kd reads, relative
// to the pixel's window origin, comes from a table made at compile time (int4
// {c*H*W + r*DH*W + s*DW, r*DH, s*DW, 0}; rows past KD fail the bounds test), so
// only the tile is a compile-time constant: every layer with the same tile runs
// the same kernel, its sizes coming in CuParams.
struct CuParams {
    int i[20];
    float f[4];
};
enum { CV_C, CV_H, CV_W, CV_K, CV_P, CV_Q, CV_PH, CV_PW, CV_XN, CV_YN, CV_RN, CV_KP, CV_M,
       CV_ACT, CV_POST, CV_SH, CV_SW, CV_KDP, CV_NSPLIT, CV_KCHUNK };

// Split-K (SPLIT): when a layer has too few output tiles to fill the GPU (deep
// layers at small batch), blockIdx.z = group * NSPLIT + split and each block
// reduces only KCHUNK of the KDP reduction rows, storing its raw sums to the
// workspace y as [group][split][k][m]; cu_splitk_sum then adds the splits and
// applies the bias and epilogue.

template <int BM, int BN, bool TF32, bool SPLIT>
__device__ __forceinline__ void cu_conv(float *__restrict__ y, const float *__restrict__ x,
                                        const float *__restrict__ w,
                                        const float *__restrict__ tab,
                                        const float *__restrict__ bias,
                                        const float *__restrict__ res, const CuParams &q)
{
    constexpr int BK = 16, NT = BM * BN / 32, KSTEP = NT / BM, AR = BK / KSTEP;
    constexpr int BR = BK * BN / 4 / NT, WM = BM / 32;
    const int C = q.i[CV_C], H = q.i[CV_H], W = q.i[CV_W], K = q.i[CV_K], Q = q.i[CV_Q];
    const int PQ = q.i[CV_P] * Q, M = q.i[CV_M], KP = q.i[CV_KP], KDP = q.i[CV_KDP];
    const CuEpi e = {q.i[CV_ACT], q.f[0], q.f[1], q.i[CV_POST], q.f[2], q.f[3]};
    __shared__ float As[BK][BM + 8];
    __shared__ float Bs[BK][BN + 8];
    const int tid = threadIdx.x, lane = tid & 31, wid = tid >> 5;
    const int g8 = lane >> 2, t4 = lane & 3, wm = wid % WM, wn = wid / WM;
    const int ns = SPLIT ? q.i[CV_NSPLIT] : 1, grp = blockIdx.z / ns;
    const int kbeg = SPLIT ? (int)(blockIdx.z % ns) * q.i[CV_KCHUNK] : 0;
    const int kend = SPLIT && kbeg + q.i[CV_KCHUNK] < KDP ? kbeg + q.i[CV_KCHUNK] : KDP;
    const int n0 = blockIdx.y * BN, m0 = blockIdx.x * BM;
    const int am = m0 + tid % BM, krow = tid / BM;
    const bool mvalid = am < M;
    const int mc = mvalid ? am : 0, img = mc / PQ, pq = mc % PQ;
    const int ih0 = pq / Q * q.i[CV_SH] - q.i[CV_PH], iw0 = pq % Q * q.i[CV_SW] - q.i[CV_PW];
    const float *xb = x + img * q.i[CV_XN] + grp * C * H * W + ih0 * W + iw0;
    const float *wb = w + grp * KDP * KP + n0;
    const int4 *tb = reinterpret_cast<const int4 *>(tab);
    float acc[2][4][4];
    #pragma unroll
    for (int i = 0; i < 2; i++)
        #pragma unroll
        for (int j = 0; j < 4; j++)
            #pragma unroll
            for (int v = 0; v < 4; v++) acc[i][j][v] = 0.0f;
    float ra[AR];
    float4 rb[BR];
    auto load = [&](int k0) {
        #pragma unroll
        for (int i = 0; i < AR; i++) {
            const int4 t = tb[k0 + krow + i * KSTEP];
            bool ok = mvalid && (unsigned)(ih0 + t.y) < (unsigned)H &&
                      (unsigned)(iw0 + t.z) < (unsigned)W;
            ra[i] = ok ? xb[t.x] : 0.0f;
        }
        #pragma unroll
        for (int i = 0; i < BR; i++) {
            int f = tid + i * NT, row = f / (BN / 4), c4 = f % (BN / 4);
            rb[i] = *reinterpret_cast<const float4 *>(wb + (k0 + row) * KP + c4 * 4);
        }
    };
    auto store = [&]() {
        #pragma unroll
        for (int i = 0; i < AR; i++) As[krow + i * KSTEP][tid % BM] = TF32 ? cu_tf32(ra[i]) : ra[i];
        #pragma unroll
        for (int i = 0; i < BR; i++) {
            int f = tid + i * NT, row = f / (BN / 4), c4 = f % (BN / 4);
            float *d = &Bs[row][c4 * 4];
            d[0] = TF32 ? cu_tf32(rb[i].x) : rb[i].x;
            d[1] = TF32 ? cu_tf32(rb[i].y) : rb[i].y;
            d[2] = TF32 ? cu_tf32(rb[i].z) : rb[i].z;
            d[3] = TF32 ? cu_tf32(rb[i].w) : rb[i].w;
        }
    };
    load(kbeg);
    store();
    __syncthreads();
    for (int k0 = kbeg; k0 < kend; k0 += BK) {
        if (k0 + BK < kend) load(k0 + BK);
        #pragma unroll
        for (int ks = 0; ks < BK; ks += 8) {
            if (TF32) {
                float a[2][4], b[4][2];
                #pragma unroll
                for (int i = 0; i < 2; i++) {
                    int r0 = wm * 32 + i * 16 + g8;
                    a[i][0] = As[ks + t4][r0];
                    a[i][1] = As[ks + t4][r0 + 8];
                    a[i][2] = As[ks + t4 + 4][r0];
                    a[i][3] = As[ks + t4 + 4][r0 + 8];
                }
                #pragma unroll
                for (int j = 0; j < 4; j++) {
                    int c0 = wn * 32 + j * 8 + g8;
                    b[j][0] = Bs[ks + t4][c0];
                    b[j][1] = Bs[ks + t4 + 4][c0];
                }
                #pragma unroll
                for (int i = 0; i < 2; i++)
                    #pragma unroll
                    for (int j = 0; j < 4; j++) cu_mma_tf32(acc[i][j], a[i], b[j]);
            } else {
                #pragma unroll
                for (int kk = ks; kk < ks + 8; kk++) {
                    float a[4], b[8];
                    #pragma unroll
                    for (int i = 0; i < 4; i++) a[i] = As[kk][wm * 32 + (i >> 1) * 16 + (i & 1) * 8 + g8];
                    #pragma unroll
                    for (int j = 0; j < 8; j++) b[j] = Bs[kk][wn * 32 + (j >> 1) * 8 + 2 * t4 + (j & 1)];
                    #pragma unroll
                    for (int i = 0; i < 4; i++)
                        #pragma unroll
                        for (int j = 0; j < 8; j++)
                            acc[i >> 1][j >> 1][(i & 1) * 2 + (j & 1)] =
                                fmaf(a[i], b[j], acc[i >> 1][j >> 1][(i & 1) * 2 + (j & 1)]);
                }
            }
        }
        if (k0 + BK < kend) {
            __syncthreads();
            store();
            __syncthreads();
        }
    }
    #pragma unroll
    for (int i = 0; i < 2; i++)
        #pragma unroll
        for (int j = 0; j < 4; j++)
            #pragma unroll
            for (int v = 0; v < 4; v++) {
                int m = m0 + wm * 32 + i * 16 + g8 + (v >> 1) * 8;
                int n = n0 + wn * 32 + j * 8 + 2 * t4 + (v & 1);
                if (m >= M || n >= K) continue;
                if (SPLIT) {
                    y[((size_t)blockIdx.z * K + n) * M + m] = acc[i][j][v];
                    continue;
                }
                int ko = grp * K + n, im = m / PQ, p = m % PQ;
                float s = acc[i][j][v] + (bias ? bias[ko] : 0.0f);
                y[im * q.i[CV_YN] + ko * PQ + p] =
                    cu_epi(e, s, res, im * q.i[CV_RN] + ko * PQ + p);
            }
}

// The splits' partial sums of a split-K conv2d added in a fixed order (so runs
// are repeatable), then its bias and epilogue, as cu_conv's own would have.
// One thread per output element, m (pixel) fastest: coalesced on both sides.
template <int NS, int G, int M, int K, int PQ, int YN, int RN>
__device__ __forceinline__ void cu_splitk_sum(float *__restrict__ y, const float *__restrict__ ws,
                                              const float *__restrict__ bias,
                                              const float *__restrict__ res, CuEpi e)
{
    const int i = blockIdx.x * CU_THREADS + threadIdx.x;
    if (i >= G * K * M) return;
    const int m = i % M, n = i / M % K, grp = i / (M * K);
    const float *w = ws + ((size_t)grp * NS * K + n) * M + m;
    float s = 0.0f;
    #pragma unroll 4
    for (int k = 0; k < NS; k++) s += w[(size_t)k * K * M];
    const int ko = grp * K + n, im = m / PQ, pq = m % PQ;
    s += bias ? bias[ko] : 0.0f;
    y[im * YN + ko * PQ + pq] = cu_epi(e, s, res, im * RN + ko * PQ + pq);
}

// ---- depthwise (and any conv with one input channel per group) --------------
// One thread per output element; output channel k reads input channel k / MULT.
template <int NB, int C, int H, int W, int K, int R, int S, int P, int Q, int SH, int SW, int PH,
          int PW, int DH, int DW, int XN, int YN, int RN>
__device__ __forceinline__ void cu_dwconv(float *__restrict__ y, const float *__restrict__ x,
                                          const float *__restrict__ w,
                                          const float *__restrict__ bias,
                                          const float *__restrict__ res, CuEpi e)
{
    constexpr int PQ = P * Q, MULT = K / C;
    const int i = blockIdx.x * CU_THREADS + threadIdx.x;
    if (i >= NB * K * PQ) return;
    const int img = i / (K * PQ), k = i / PQ % K, pq = i % PQ;
    const int ih0 = pq / Q * SH - PH, iw0 = pq % Q * SW - PW;
    const float *xp = x + img * XN + k / MULT * H * W;
    const float *wp = w + k * R * S;
    float s = 0.0f;
    for (int r = 0; r < R; r++) {
        int ih = ih0 + r * DH;
        if ((unsigned)ih >= (unsigned)H) continue;
        for (int q = 0; q < S; q++) {
            int iw = iw0 + q * DW;
            if ((unsigned)iw < (unsigned)W) s = fmaf(xp[ih * W + iw], wp[r * S + q], s);
        }
    }
    if (bias) s += bias[k];
    y[img * YN + k * PQ + pq] = cu_epi(e, s, res, img * RN + k * PQ + pq);
}

// ---- dense with few rows: one warp per output feature -----------------------
// Rows r of x are (r / RPI) * XN + (r % RPI) * I (RPI rows per batch item); the
// weight is [O][I] as given, so a warp reads one contiguous weight row.
template <int ROWS, int RPI, int I, int O, int XN, int YN, int RN>
__device__ __forceinline__ void cu_gemv(float *__restrict__ y, const float *__restrict__ x,
                                        const float *__restrict__ w,
                                        const float *__restrict__ bias,
                                        const float *__restrict__ res, CuEpi e)
{
    const int o = blockIdx.x * (CU_THREADS / 32) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (o >= O) return;
    float acc[ROWS];
    for (int r = 0; r < ROWS; r++) acc[r] = 0.0f;
    const float *wr = w + (long long)o * I;
    for (int i = lane; i < I; i += 32) {
        float wv = wr[i];
        for (int r = 0; r < ROWS; r++) acc[r] = fmaf(x[r / RPI * XN + r % RPI * I + i], wv, acc[r]);
    }
    for (int r = 0; r < ROWS; r++) {
        float v = acc[r];
        for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
        if (lane != 0) continue;
        int yo = r / RPI * YN + r % RPI * O + o, ro = r / RPI * RN + r % RPI * O + o;
        y[yo] = cu_epi(e, v + (bias ? bias[o] : 0.0f), res, ro);
    }
}

// Dense of many rows whose batch items are spaced apart (an output inside a
// concat): one thread per output element, o fastest; rows as in cu_gemv.
template <int ROWS, int RPI, int I, int O, int XN, int YN, int RN>
__device__ __forceinline__ void cu_dense_rows(float *__restrict__ y, const float *__restrict__ x,
                                              const float *__restrict__ w,
                                              const float *__restrict__ bias,
                                              const float *__restrict__ res, CuEpi e)
{
    const int i = blockIdx.x * CU_THREADS + threadIdx.x;
    if (i >= ROWS * O) return;
    const int r = i / O, o = i % O;
    const float *xr = x + r / RPI * XN + r % RPI * I, *wr = w + (long long)o * I;
    float s = 0.0f;
    for (int k = 0; k < I; k++) s = fmaf(xr[k], wr[k], s);
    y[r / RPI * YN + r % RPI * O + o] =
        cu_epi(e, s + (bias ? bias[o] : 0.0f), res, r / RPI * RN + r % RPI * O + o);
}

// ---- pooling: one thread per output element of NCHW -------------------------
template <int NB, int C, int H, int W, int P, int Q, int KH, int KW, int SH, int SW, int PH,
          int PW, int DH, int DW, int XN, int YN>
__device__ __forceinline__ void cu_maxpool(float *__restrict__ y, const float *__restrict__ x)
{
    const int i = blockIdx.x * CU_THREADS + threadIdx.x;
    if (i >= NB * C * P * Q) return;
    const int img = i / (C * P * Q), c = i / (P * Q) % C, p = i / Q % P, q = i % Q;
    const float *xp = x + img * XN + c * H * W;
    float m = CU_NEG_INF;
    for (int r = 0; r < KH; r++) {
        int ih = p * SH - PH + r * DH;
        if ((unsigned)ih >= (unsigned)H) continue;
        for (int s = 0; s < KW; s++) {
            int iw = q * SW - PW + s * DW;
            if ((unsigned)iw >= (unsigned)W) continue;
            float v = xp[ih * W + iw];
            if (v > m || v != v) m = v;
        }
    }
    y[img * YN + (c * P + p) * Q + q] = m;
}

// PyTorch's avg_pool2d: the window clipped to the padded input gives the
// count_include_pad divisor, then clipped to the input the summed elements.
template <int NB, int C, int H, int W, int P, int Q, int KH, int KW, int SH, int SW, int PT,
          int PL, int PB, int PR, bool INCLUDE_PAD, int XN, int YN>
__device__ __forceinline__ void cu_avgpool(float *__restrict__ y, const float *__restrict__ x)
{
    const int i = blockIdx.x * CU_THREADS + threadIdx.x;
    if (i >= NB * C * P * Q) return;
    const int img = i / (C * P * Q), c = i / (P * Q) % C, p = i / Q % P, q = i % Q;
    const float *xp = x + img * XN + c * H * W;
    int hs = p * SH - PT, ws = q * SW - PL, he = hs + KH, we = ws + KW;
    he = he < H + PB ? he : H + PB;
    we = we < W + PR ? we : W + PR;
    const int pool = (he - hs) * (we - ws);
    hs = hs > 0 ? hs : 0;
    ws = ws > 0 ? ws : 0;
    he = he < H ? he : H;
    we = we < W ? we : W;
    float s = 0.0f;
    for (int ih = hs; ih < he; ih++)
        for (int iw = ws; iw < we; iw++) s += xp[ih * W + iw];
    y[img * YN + (c * P + p) * Q + q] = s / (float)(INCLUDE_PAD ? pool : (he - hs) * (we - ws));
}

// Bin i of OUT over IN: [floor(i*IN/OUT), ceil((i+1)*IN/OUT)).
template <int NB, int C, int H, int W, int P, int Q, int XN, int YN>
__device__ __forceinline__ void cu_adaptive_avgpool(float *__restrict__ y,
                                                    const float *__restrict__ x)
{
    const int i = blockIdx.x * CU_THREADS + threadIdx.x;
    if (i >= NB * C * P * Q) return;
    const int img = i / (C * P * Q), c = i / (P * Q) % C, p = i / Q % P, q = i % Q;
    const float *xp = x + img * XN + c * H * W;
    const int hs = p * H / P, he = ((p + 1) * H + P - 1) / P;
    const int ws = q * W / Q, we = ((q + 1) * W + Q - 1) / Q;
    float s = 0.0f;
    for (int ih = hs; ih < he; ih++)
        for (int iw = ws; iw < we; iw++) s += xp[ih * W + iw];
    y[img * YN + (c * P + p) * Q + q] = s / (float)((he - hs) * (we - ws));
}

// One warp per (item, channel) plane.
template <int NB, int C, int HW, int XN, int YN>
__device__ __forceinline__ void cu_global_avgpool(float *__restrict__ y,
                                                  const float *__restrict__ x)
{
    const int i = blockIdx.x * (CU_THREADS / 32) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (i >= NB * C) return;
    const float *xp = x + i / C * XN + i % C * HW;
    float s = 0.0f;
    for (int j = lane; j < HW; j += 32) s += xp[j];
    for (int d = 16; d > 0; d >>= 1) s += __shfl_xor_sync(0xffffffffu, s, d);
    if (lane == 0) y[i / C * YN + i % C] = s / (float)HW;
}

// ---- elementwise: one thread per element; items of PER elements, XN/YN apart --
template <int NB, int PER, int XN, int YN>
__device__ __forceinline__ void cu_unary(float *__restrict__ y, const float *__restrict__ x,
                                         int act, float a, float b)
{
    const int i = blockIdx.x * CU_THREADS + threadIdx.x;
    if (i >= NB * PER) return;
    y[i / PER * YN + i % PER] = cu_act(x[i / PER * XN + i % PER], act, a, b);
}

// Per-channel scale and shift (batchnorm): channel of element j is j / HW % C.
template <int NB, int C, int HW, int XN, int YN>
__device__ __forceinline__ void cu_scale_shift(float *__restrict__ y, const float *__restrict__ x,
                                               const float *__restrict__ ss)
{
    const int i = blockIdx.x * CU_THREADS + threadIdx.x;
    if (i >= NB * C * HW) return;
    const int img = i / (C * HW), j = i % (C * HW), c = j / HW;
    y[img * YN + j] = fmaf(x[img * XN + j], ss[c], ss[C + c]);
}

// Softmax along a line of LEN elements INNER apart: one warp per line; line l is
// (outer o = l / INNER, inner i = l % INNER), LPI outer indices per batch item.
template <int LINES, int LEN, int INNER, int LPI, int XN, int YN>
__device__ __forceinline__ void cu_softmax(float *__restrict__ y, const float *__restrict__ x)
{
    const int l = blockIdx.x * (CU_THREADS / 32) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (l >= LINES) return;
    const int o = l / INNER, in = l % INNER;
    const int rest = o % LPI * LEN * INNER + in;
    const float *xp = x + o / LPI * XN + rest;
    float *yp = y + o / LPI * YN + rest;
    float m = CU_NEG_INF, s = 0.0f;
    for (int j = lane; j < LEN; j += 32) m = fmaxf(m, xp[j * INNER]);
    for (int d = 16; d > 0; d >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, d));
    for (int j = lane; j < LEN; j += 32) s += expf(xp[j * INNER] - m);
    for (int d = 16; d > 0; d >>= 1) s += __shfl_xor_sync(0xffffffffu, s, d);
    const float inv = 1.0f / s;
    for (int j = lane; j < LEN; j += 32) yp[j * INNER] = expf(xp[j * INNER] - m) * inv;
}

// Layer norm along lines as cu_softmax's: two passes, the mean and then the
// biased variance about it (as the interpreter, not E[x^2] - mean^2), then
// scaled and shifted per element of the line. WARP: one warp per line, for
// contiguous lines (INNER = 1); else one thread per line, so that neighbouring
// threads read neighbouring inner positions.
template <int LINES, int LEN, int INNER, int LPI, int XN, int YN, bool WARP>
__device__ __forceinline__ void cu_layernorm(float *__restrict__ y, const float *__restrict__ x,
                                             const float *__restrict__ w,
                                             const float *__restrict__ b, float eps)
{
    const int l = WARP ? blockIdx.x * (CU_THREADS / 32) + (threadIdx.x >> 5)
                       : blockIdx.x * CU_THREADS + threadIdx.x;
    const int lane = WARP ? threadIdx.x & 31 : 0, step = WARP ? 32 : 1;
    if (l >= LINES) return;
    const int o = l / INNER, in = l % INNER;
    const int rest = o % LPI * LEN * INNER + in;
    const float *xp = x + o / LPI * XN + rest;
    float *yp = y + o / LPI * YN + rest;
    float s = 0.0f, v = 0.0f;
    for (int j = lane; j < LEN; j += step) s += xp[j * INNER];
    if (WARP)
        for (int d = 16; d > 0; d >>= 1) s += __shfl_xor_sync(0xffffffffu, s, d);
    const float mean = s / (float)LEN;
    for (int j = lane; j < LEN; j += step) {
        float d = xp[j * INNER] - mean;
        v = fmaf(d, d, v);
    }
    if (WARP)
        for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
    const float rstd = 1.0f / sqrtf(v / (float)LEN + eps);
    for (int j = lane; j < LEN; j += step)
        yp[j * INNER] = fmaf((xp[j * INNER] - mean) * rstd, w[j], b[j]);
}

// Constant padding of H and W: one thread per output element of NCHW.
template <int NB, int C, int H, int W, int P, int Q, int PT, int PL, int XN, int YN>
__device__ __forceinline__ void cu_pad(float *__restrict__ y, const float *__restrict__ x,
                                       float value)
{
    const int i = blockIdx.x * CU_THREADS + threadIdx.x;
    if (i >= NB * C * P * Q) return;
    const int img = i / (C * P * Q), c = i / (P * Q) % C, p = i / Q % P, q = i % Q;
    const int ih = p - PT, iw = q - PL;
    const bool in = (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W;
    y[img * YN + (c * P + p) * Q + q] = in ? x[img * XN + (c * H + ih) * W + iw] : value;
}

// Element i of a copy of ROWS rows of LEN elements: row r from x + (r / RPI) * XN
// + (r % RPI) * XL to y + (r / RPI) * YN + (r % RPI) * YL (concat slabs, flatten).
template <int ROWS, int LEN, int RPI, int XN, int XL, int YN, int YL>
__device__ __forceinline__ void cu_copy(float *__restrict__ y, const float *__restrict__ x, int i)
{
    const int r = i / LEN, j = i % LEN;
    y[r / RPI * YN + r % RPI * YL + j] = x[r / RPI * XN + r % RPI * XL + j];
}
