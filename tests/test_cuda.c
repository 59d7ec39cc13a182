/* test_cuda.c: the CUDA backend's pieces that a CPU can check: architecture
 * names, the packed weight order, tile and grid choice, and the generated
 * kernels themselves, compiled as host C++ with codegen/cuda/emulate.h (blocks
 * in turn, a block's threads as cooperative fibers, warp operations through shared
 * slots) and run on small models whose outputs must match the reference
 * interpreter: f32 within 1e-4, TF32 within 1e-2 of the output's scale; NaN
 * and infinities in the inputs give NaN and infinities exactly where the
 * interpreter (as PyTorch) has them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cu.h"
#include "frontend.h"
#include "passes.h"

#include "test_util.h"
#ifdef CNNC_CXX
#include "cuda_emu.h"
#endif

/* ---- names and packing ------------------------------------------------------ */

static void test_arch_names(void **state)
{
    int32_t a = 0;
    assert_true(cg_cuda_parse_arch("sm_80", &a));
    assert_int_equal(a, 80);
    assert_true(cg_cuda_parse_arch("sm_90", &a));
    assert_int_equal(a, 90);
    assert_true(cg_cuda_parse_arch("sm_120", &a));
    assert_int_equal(a, 120);
    assert_true(cg_cuda_parse_arch("sm_70", &a));
    const char *bad[] = {"sm_60", "sm_8", "sm_1000", "compute_80", "sm_90a", "sm_", "80",
                         "sm_08", "SM_80", "sm_130", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a = -1;
        assert_false(cg_cuda_parse_arch(bad[i], &a));
        assert_int_equal(a, -1);
    }
    CuMath m;
    assert_true(cg_cuda_parse_math("f32", &m));
    assert_int_equal(m, CU_MATH_F32);
    assert_true(cg_cuda_parse_math("tf32", &m));
    assert_int_equal(m, CU_MATH_TF32);
    assert_false(cg_cuda_parse_math("fp16", &m));
}

/* Every weight lands at (g*KDP + (c*R + r)*S + s) * KP + k; the rest is zero. */
static void test_pack_conv_order(void **state)
{
    const int32_t G = 3;
    const int64_t K = 5, C = 3, R = 2, S = 3, bn = 32, kdp = 32, kp = 32;
    int64_t nw = G * K * C * R * S, np = cg_cuda_conv_packed_size(G, K, C, R, S, (int32_t)bn);
    assert_int_equal(np, G * kdp * kp);
    float *w = malloc((size_t)nw * sizeof *w), *p = malloc((size_t)np * sizeof *p);
    for (int64_t i = 0; i < nw; i++) w[i] = (float)(i + 1);
    cg_cuda_pack_conv(w, G, K, C, R, S, (int32_t)bn, p);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < np; i++) nonzero += p[i] != 0.0f;
    assert_int_equal(nonzero, nw);
    for (int64_t g = 0; g < G; g++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t r = 0; r < R; r++)
                    for (int64_t s = 0; s < S; s++) {
                        float want = w[(((g * K + k) * C + c) * R + r) * S + s];
                        assert_true(p[(g * kdp + (c * R + r) * S + s) * kp + k] == want);
                    }
    free(w);
    free(p);
}

/* Tiles are ones the kernel template supports, and shrink for small problems. */
static void test_conv_tiles(void **state)
{
    int64_t shapes[][2] = {{1, 1}, {49, 2048}, {12544, 64}, {100352, 256}, {3136, 64}, {7, 1000}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        CuTile t = cg_cuda_conv_tile(shapes[i][0], shapes[i][1]);
        assert_true(t.bm == 32 || t.bm == 64 || t.bm == 128);
        assert_true(t.bn == 32 || t.bn == 64);
    }
    CuTile big = cg_cuda_conv_tile(100352, 256), small = cg_cuda_conv_tile(49, 512);
    assert_int_equal(big.bm, 128);
    assert_int_equal(big.bn, 64);
    assert_int_equal(small.bm, 32);
    assert_int_equal(small.bn, 32);
}

/* Layers with too few warps for a large GPU split their reduction; the splits
 * cover it exactly, each in whole steps and at least 8 of them. */
static void test_conv_split(void **state)
{
    /* ResNet-50 at batch 1: layer4's 3x3 (49 x 512, 4608 rows: 32 warps) takes 36
     * splits of 8 steps; at batch 32 (1568 x 512 in 64x64 tiles: 800 warps), 6 of 48;
     * layer1's 1x1 at batch 32 (100352 x 64: 6272 warps) is not split */
    CuSplit deep = cg_cuda_conv_split(32, 4608), b32 = cg_cuda_conv_split(800, 4608);
    assert_int_equal(deep.n, 36);
    assert_int_equal(deep.chunk, 128);
    assert_int_equal(b32.n, 6);
    assert_int_equal(b32.chunk, 768);
    assert_int_equal(cg_cuda_conv_split(6272, 576).n, 1);
    assert_int_equal(cg_cuda_conv_split(8, 160).n, 1); /* too short to split */
    for (int64_t warps = 1; warps < 6000; warps += 97)
        for (int64_t kdp = 16; kdp <= 16 * 600; kdp += 16 * 37) {
            CuSplit s = cg_cuda_conv_split(warps, kdp);
            assert_true(s.n >= 1 && s.n <= 64);
            assert_int_equal(s.chunk % CU_CONV_BK, 0);
            assert_true((int64_t)(s.n - 1) * s.chunk < kdp && (int64_t)s.n * s.chunk >= kdp);
            if (s.n > 1) assert_true(s.chunk >= 8 * CU_CONV_BK && warps < 4096);
            /* no more splits than it takes to reach 4096 warps */
            if (s.n > 1) assert_true((int64_t)(s.n - 1) * warps < 4096);
        }
}

/* ---- generated programs ------------------------------------------------------ */

static Graph *load_text(const char *name, const char *text, int64_t batch)
{
    return load_model(name, text, batch, 7);
}

/* Launch geometry: 1-d kernels cover their elements once (the last block only
 * partly); conv tiles cover M x K; every argument lies inside its buffer. */
static void check_geometry(const Graph *g, const CuProgram *p)
{
    for (int32_t i = 0; i < p->nkernels; i++) {
        const CuKernel *k = &p->kernels[i];
        const Node *nd = &g->nodes[k->node];
        assert_true(k->block[0] >= 32 && k->block[0] <= 1024 && k->block[0] % 32 == 0);
        assert_true(k->grid[0] >= 1 && k->grid[1] >= 1 && k->grid[2] >= 1);
        if (k->has_params && nd->op == OP_CONV2D) {
            const int32_t *q = k->params.i;
            int64_t M = nd->type.dims[0] * nd->type.dims[2] * nd->type.dims[3];
            int64_t K = nd->type.dims[1] / nd->attrs.conv.groups;
            CuTile t = cg_cuda_conv_tile(M, K);
            CuSplit sp = cg_cuda_conv_split((M + t.bm - 1) / t.bm * ((K + t.bn - 1) / t.bn) *
                                                nd->attrs.conv.groups * (t.bm * t.bn / 1024),
                                            q[CU_CV_KDP]);
            assert_int_equal(q[CU_CV_M], M);
            assert_int_equal(q[CU_CV_K], K);
            assert_int_equal(q[CU_CV_NSPLIT], sp.n);
            assert_int_equal(q[CU_CV_KCHUNK], sp.chunk);
            assert_int_equal(k->grid[0], (M + t.bm - 1) / t.bm);
            assert_int_equal(k->grid[1], (K + t.bn - 1) / t.bn);
            assert_int_equal(k->grid[2], nd->attrs.conv.groups * sp.n);
            /* a split layer's sum follows it, as the same node */
            if (sp.n > 1) {
                assert_true(i + 1 < p->nkernels && p->kernels[i + 1].node == k->node);
                assert_non_null(strstr(k->op, "(split-K="));
                assert_true(!strncmp(p->kernels[i + 1].op, "split-K-sum", 11));
            }
            assert_int_equal(k->block[0], t.bm * t.bn / 32);
            assert_int_equal(q[CU_CV_KP], (K + t.bn - 1) / t.bn * t.bn);
        }
        for (int32_t a = 0; a < k->nargs; a++) {
            const CuArg *x = &k->args[a];
            assert_true(x->offset >= 0);
            if (x->buf == CU_BUF_ARENA) assert_true(x->offset < p->arena_bytes);
            if (x->buf == CU_BUF_WEIGHTS) {
                assert_true(x->offset % CU_WEIGHT_ALIGN == 0);
                assert_true(x->offset < p->weights_bytes);
            }
        }
    }
}

/* NVRTC makes PTX and an sm_90 ELF cubin in one compilation; the annotated PTX
 * heads every kernel entry with its nodes. Skipped without NVRTC. */
static void test_nvrtc_compile(void **state)
{
    if (!cg_cuda_have_nvrtc()) skip();
    Graph *g = load_text("mnist_cnn", NULL, 3);
    CuTarget t = {90, CU_MATH_TF32};
    CuProgram *p = cuda_program(g, &t);
    CuBinary b;
    char err[4096];
    if (!cg_cuda_compile(p, true, &b, err, sizeof err)) fail_msg("%s", err);
    assert_non_null(strstr(b.ptx, ".target sm_90"));
    assert_non_null(strstr(b.ptx, "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"));
    assert_true(b.cubin_size > 4 && !memcmp(b.cubin, "\177ELF", 4));
    char *ann = cg_cuda_annotate_ptx(p, b.ptx);
    int entries = 0, heads = 0;
    for (const char *c = ann; (c = strstr(c, ".visible .entry ")); c++) entries++;
    for (const char *c = ann; (c = strstr(c, "// node: ")); c++) heads++;
    assert_true(entries >= 4);
    assert_int_equal(entries, heads);
    assert_non_null(strstr(ann, "// node: conv1 (conv2d+bias+relu)"));
    free(ann);
    cg_cuda_binary_free(&b);
    p->source[strlen(p->source) - 2] = '@'; /* a syntax error NVRTC must report */
    assert_false(cg_cuda_compile(p, false, &b, err, sizeof err));
    assert_non_null(strstr(err, "NVRTC failed"));
    cg_cuda_free(p);
    ir_graph_free(g);
}

/* Every kernel but a split-K pair is labelled and counted as the CPU's are. */
static void check_labels(const Graph *g, const CuProgram *p)
{
    for (int32_t k = 0; k < p->nkernels; k++) {
        const CuKernel *ck = &p->kernels[k];
        char label[128];
        if (strstr(ck->op, "split-K")) continue;
        assert_string_equal(ck->op, ir_node_label(&g->nodes[ck->node], label, sizeof label));
        assert_int_equal(ck->flops, ir_node_flops(g, &g->nodes[ck->node]));
    }
}

/* Profile labels and flops come from ir_node_label and ir_node_flops, as the
 * LLVM backend's do: mnist_cnn's layers read as test_runtime_profile has them on
 * the CPU. A split-K conv2d (conv2 here) says so in its first kernel's label. */
static void test_kernel_labels(void **state)
{
    static const struct {
        const char *name, *op;
        int64_t flops;
    } want[] = {
        {"conv1", "conv2d+bias+relu", 2LL * 32 * 26 * 26 * 1 * 3 * 3},
        {"conv2", "conv2d+bias+relu", 2LL * 64 * 24 * 24 * 32 * 3 * 3},
        {"maxpool_0", "maxpool", 64 * 12 * 12},
        {"fc1", "dense+bias+relu", 2LL * 128 * 9216},
        {"fc2", "dense+bias", 2LL * 10 * 128},
    };
    Graph *g = load_text("mnist_cnn", NULL, 1);
    CuTarget t = {90, CU_MATH_F32};
    CuProgram *p = cuda_program(g, &t);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int32_t k = 0;
        while (k < p->nkernels && strcmp(p->kernels[k].name, want[i].name)) k++;
        assert_true(k < p->nkernels);
        size_t n = strcspn(want[i].op, "+");
        if (strstr(p->kernels[k].op, "(split-K="))
            assert_true(!strncmp(p->kernels[k].op, want[i].op, n) && p->kernels[k].op[n] == '(');
        else
            assert_string_equal(p->kernels[k].op, want[i].op);
        assert_int_equal(p->kernels[k].flops, want[i].flops);
    }
    check_labels(g, p);
    cg_cuda_free(p);
    ir_graph_free(g);
}

/* ---- running the kernels on the CPU ------------------------------------------ */

#ifdef CNNC_CXX
static char tmpdir[256];

static int setup(void **state)
{
    return cuda_emu_mkdtemp(tmpdir, sizeof tmpdir, "cuda-test");
}

static int teardown(void **state)
{
    return cuda_emu_rmdir(tmpdir);
}

/* The program's kernels as host code (tests/cuda_emu.h), loaded. */
static void *build_emulation(const CuProgram *p, const char *name)
{
    char *so = cuda_emu_build(p, tmpdir, name);
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) fail_msg("dlopen: %s", dlerror());
    free(so);
    return lib;
}

static float *random_data(int64_t n, uint64_t seed)
{
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    Rng r = ir_rng(seed, "cuda-test");
    for (int64_t i = 0; i < n; i++) x[i] = (float)(2.0 * ir_rng_uniform(&r) - 1.0);
    return x;
}

/* The device buffers, as host memory. */
typedef struct Mem {
    char *arena, *weights;
    float **in, **out;
} Mem;

static float *arg_ptr(const Mem *m, const CuArg *a)
{
    switch (a->buf) {
    case CU_BUF_ARENA: return (float *)(m->arena + a->offset);
    case CU_BUF_INPUT: return (float *)((char *)m->in[a->index] + a->offset);
    case CU_BUF_OUTPUT: return (float *)((char *)m->out[a->index] + a->offset);
    case CU_BUF_WEIGHTS: return (float *)(m->weights + a->offset);
    case CU_BUF_NONE: return NULL;
    }
    return NULL;
}

/* Runs every kernel in order, then copies the outputs as a loader would. */
static void run_program(const CuProgram *p, void *lib, Mem *m)
{
    for (int32_t i = 0; i < p->nkernels; i++) {
        const CuKernel *k = &p->kernels[i];
        float *ptrs[16];
        assert_true(k->nargs <= 16);
        for (int32_t a = 0; a < k->nargs; a++) ptrs[a] = arg_ptr(m, &k->args[a]);
        cuda_emu_launch(lib, k, ptrs);
    }
    for (int32_t o = 0; o < p->noutputs; o++) {
        const CuOutput *out = &p->outputs[o];
        const char *src = (const char *)arg_ptr(m, &out->src);
        for (int64_t i = 0; i < out->items; i++)
            memcpy((char *)m->out[o] + i * out->item_bytes, src + i * out->stride_bytes,
                   (size_t)out->item_bytes);
    }
}

/* Max |got - want| over max(1, max |want|), over the finite values of want;
 * where it is NaN or infinite, got must be the same or the error is infinite. */
static double rel_error(const float *got, const float *want, int64_t n)
{
    double scale = 1.0, err = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(want[i])) scale = fmax(scale, fabs((double)want[i]));
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(want[i])) {
            if (isnan(want[i]) ? !isnan(got[i]) : got[i] != want[i]) err = INFINITY;
            continue;
        }
        double e = fabs((double)got[i] - (double)want[i]);
        err = isnan(e) ? INFINITY : fmax(err, e);
    }
    return err / scale;
}

/* The model's outputs through emulated kernels against the interpreter; with
 * `specials`, that many elements of each input are NaN, +inf or -inf, and some
 * output must be too. */
/* As cuda_program, with the passes named by bits of `disabled` skipped. */
static CuProgram *program_without(Graph *g, const CuTarget *t, uint64_t disabled)
{
    Diag d;
    ir_diag_init(&d, stderr);
    PassOptions po;
    pass_options_init(&po);
    po.block = 0;
    po.disabled = disabled;
    assert_true(pass_run_pipeline(g, &po, &d));
    CuProgram *p = cg_cuda_generate(g, t, &d);
    assert_non_null(p);
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);
    return p;
}

/* channels_first turns permute detours into ops over the channels; without it
 * the transposes and the layernorm and dense over the last dim reach the kernels. */
static uint64_t as_written(void)
{
    int32_t i = pass_index("channels_first");
    assert_true(i >= 0);
    return (uint64_t)1 << i;
}

static void check_graph_without(const char *name, Graph *g, CuMath math, int32_t specials,
                                uint64_t disabled)
{
    int32_t nin = ir_num_inputs(g), nout = g->noutputs;
    Mem m = {0};
    m.in = calloc((size_t)nin + 1, sizeof *m.in);
    m.out = calloc((size_t)nout + 1, sizeof *m.out);
    for (int32_t i = 0; i < nin; i++) {
        int64_t n = ir_numel(&g->nodes[ir_input_node(g, i)].type);
        m.in[i] = random_data(n, (uint64_t)i + 1);
        poke_nonfinite(m.in[i], n, specials, "n+-", (uint64_t)i);
    }
    InterpResult ref;
    char err[512];
    assert_true(ir_interp(g, (const float *const *)m.in, &ref, err, sizeof err));
    int32_t *ref_node = calloc((size_t)nout + 1, sizeof *ref_node);
    for (int32_t o = 0; o < nout; o++) ref_node[o] = g->outputs[o].node;
    CuTarget t = {80, math};
    Graph *opt = ir_graph_clone(g);
    CuProgram *p = program_without(opt, &t, disabled);
    check_geometry(opt, p);
    check_labels(opt, p);
    char tag[128];
    snprintf(tag, sizeof tag, "%s_%d%s", name, (int)math, disabled ? "_w" : "");
    void *lib = build_emulation(p, tag);
    m.arena = calloc((size_t)p->arena_bytes + 1, 1);
    m.weights = (char *)p->weights;
    for (int32_t o = 0; o < nout; o++)
        m.out[o] = calloc((size_t)ir_numel(&g->nodes[ref_node[o]].type) + 1, sizeof(float));
    run_program(p, lib, &m);
    double tol = math == CU_MATH_F32 ? 1e-4 : 1e-2;
    int64_t nonfinite = 0;
    for (int32_t o = 0; o < nout; o++) {
        int64_t n = ir_numel(&g->nodes[ref_node[o]].type);
        for (int64_t i = 0; i < n; i++) nonfinite += !isfinite(ref.values[ref_node[o]][i]);
        double e = rel_error(m.out[o], ref.values[ref_node[o]], n);
        if (!(e <= tol)) fail_msg("%s (%s): output %d differs by %g (tolerance %g)", name,
                                  math == CU_MATH_F32 ? "f32" : "tf32", o, e, tol);
        free(m.out[o]);
    }
    if (specials) assert_true(nonfinite > 0);
    dlclose(lib);
    for (int32_t i = 0; i < nin; i++) free(m.in[i]);
    free(m.in), free(m.out), free(m.arena), free(ref_node);
    ir_interp_free(&ref);
    cg_cuda_free(p);
    ir_graph_free(opt);
    ir_graph_free(g);
}

static void check_graph(const char *name, Graph *g, CuMath math, int32_t specials)
{
    check_graph_without(name, g, math, specials, 0);
}

static void check_model(const char *name, const char *text, int64_t batch, CuMath math,
                        int32_t specials)
{
    check_graph(name, load_text(name, text, batch), math, specials);
}

static void check_both(const char *name, const char *text, int64_t batch)
{
    check_model(name, text, batch, CU_MATH_F32, 0);
    check_model(name, text, batch, CU_MATH_TF32, 0);
}

/* The emulation itself (codegen/cuda/emulate.h): a block's threads meet at
 * __syncthreads (shared memory read back reversed between barriers), lanes
 * exchange through a shuffle, the blocks run in turn; and a block one of whose
 * threads returns before a barrier the others wait at aborts instead of hanging. */
static const char emu_source[] =
    "__global__ void emu_reverse(float *__restrict__ o) {\n"
    "    __shared__ float s[128];\n"
    "    unsigned t = threadIdx.x;\n"
    "    s[t] = (float)(t + 1000 * blockIdx.x);\n"
    "    __syncthreads();\n"
    "    float v = s[127 - t];\n"
    "    __syncthreads();\n"
    "    s[t] = v + __shfl_xor_sync(0xffffffffu, v, 1);\n"
    "    __syncthreads();\n"
    "    o[blockIdx.x * 128 + t] = s[(t + 64) % 128];\n"
    "}\n"
    "__global__ void emu_stuck(float *__restrict__ o) {\n"
    "    if (threadIdx.x == 5) return;\n"
    "    __syncthreads();\n"
    "    o[threadIdx.x] = 1.0f;\n"
    "}\n";

static void test_emulation_barriers(void **state)
{
    CuKernel k[2] = {{.symbol = "emu_reverse", .grid = {3, 1, 1}, .block = {128, 1, 1}, .nargs = 1},
                     {.symbol = "emu_stuck", .grid = {1, 1, 1}, .block = {64, 1, 1}, .nargs = 1}};
    CuProgram p = {.source = (char *)emu_source, .nkernels = 2, .kernels = k};
    void *lib = build_emulation(&p, "emulation");
    float out[3 * 128];
    float *ptrs[1] = {out};
    cuda_emu_launch(lib, &k[0], ptrs);
    for (unsigned b = 0; b < 3; b++)
        for (unsigned t = 0; t < 128; t++) {
            unsigned u = (t + 64) % 128;
            assert_float_equal(out[b * 128 + t], (float)(254 - u - (u ^ 1u) + 2000 * b), 0);
        }
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(2);
        alarm(30); /* a hang ends in SIGALRM, and fails */
        cuda_emu_launch(lib, &k[1], ptrs);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    dlclose(lib);
}

/* Odd sizes everywhere: partial tiles in M, K and the reduction; stride,
 * padding and dilation; bias and fused activations. */
static void test_emulated_conv(void **state)
{
    check_both("conv_odd", "network conv_odd(x: f32[N=2, 5, 11, 13]) {\n"
               "  y = relu(conv2d(x, 37, kernel=3, stride=2, pad=1) as c1)\n"
               "  z = conv2d(y, 70, kernel=[2, 3], dilation=2, pad=2, bias=false) as c2\n"
               "  return clip(z, -0.5, 0.5)\n}\n", 0);
}

/* Batchnorm folded, a residual add with a relu after it, a 1x1 stride-2
 * shortcut, grouped and depthwise convolutions with relu6. */
static void test_emulated_blocks(void **state)
{
    check_both("blocks", "network blocks(x: f32[N=1, 8, 9, 9]) {\n"
               "  y = relu(batchnorm(conv2d(x, 16, kernel=3, stride=2, pad=1, bias=false) as c1) as b1)\n"
               "  y = batchnorm(conv2d(y, 16, kernel=3, pad=1, bias=false) as c2) as b2\n"
               "  s = batchnorm(conv2d(x, 16, kernel=1, stride=2, bias=false) as sc) as sb\n"
               "  y = relu(y + s)\n"
               "  y = clip(conv2d(y, 32, kernel=3, pad=1, groups=16) as dw, 0, 6)\n"
               "  y = conv2d(y, 12, kernel=1, groups=4) as gc\n"
               "  return leaky_relu(y, alpha=0.1)\n}\n", 0);
}

/* Pools of every kind, unfused activations, per-channel broadcasting, concat, dense as
 * matrix-vector (2 rows) and as GEMM (12 rows), softmax. */
static void test_emulated_misc(void **state)
{
    const char *text =
        "network misc(x: f32[N=2, 6, 13, 13]) {\n"
        "  a = maxpool(x, kernel=3, stride=2, pad=1, ceil_mode=true)\n"
        "  b = avgpool(x, kernel=3, stride=2, pad=1, ceil_mode=true, count_include_pad=false)\n"
        "  c = avgpool(x, kernel=2, stride=2, pad=1)\n"
        "  d = concat(sigmoid(a), tanh(b), silu(c))\n"
        "  e = adaptive_avgpool(d, [3, 2])\n"
        "  f = global_avgpool(x) * batchnorm(global_avgpool(x))\n"
        "  g = dense(flatten(e), 9) as fc1\n"
        "  h = dense(flatten(f), 9) as fc2\n"
        "  return softmax(g + h), relu(d), x * sigmoid(global_avgpool(x))\n}\n";
    check_both("misc_b2", text, 2);
    check_both("misc_b12", text, 12);
}

/* Deep layers on small images split their reduction (split-K): grouped, with
 * bias, residual add and relu applied by the sum, next to an unsplit layer. */
static void test_emulated_split(void **state)
{
    const char *text =
        "network split(x: f32[N=1, 160, 4, 4]) {\n"
        "  y = relu(conv2d(x, 64, kernel=3, pad=1) as c1)\n"
        "  z = conv2d(y, 64, kernel=3, pad=1, groups=2) as c2\n"
        "  return relu(z + conv2d(x, 64, kernel=3, pad=1, bias=false) as sc), "
        "conv2d(x, 8, kernel=1) as c3\n"
        "}\n";
    Graph *g = load_text("split", text, 0);
    CuTarget t = {80, CU_MATH_F32};
    CuProgram *p = cuda_program(g, &t);
    int splits = 0;
    for (int32_t i = 0; i < p->nkernels; i++) splits += strstr(p->kernels[i].op, "(split-K=") != NULL;
    assert_int_equal(splits, 3); /* c1, c2 and sc; c3's 160 rows are too few */
    cg_cuda_free(p);
    ir_graph_free(g);
    check_both("split", text, 0);
}

/* A fire module: concat inputs written in place by their convolutions. */
static void test_emulated_fire(void **state)
{
    check_both("fire", "block fire(x, s, e) {\n"
               "  x = relu(conv2d(x, s, kernel=1) as squeeze)\n"
               "  return concat(relu(conv2d(x, e, kernel=1) as e1), "
               "relu(conv2d(x, e, kernel=3, pad=1) as e3))\n}\n"
               "network fire_net(x: f32[N=3, 7, 6, 5]) {\n"
               "  y = fire(x, 4, 9) as f1\n  y = fire(y, 5, 6) as f2\n"
               "  return flatten(global_avgpool(y))\n}\n", 0);
}

static void test_emulated_mnist(void **state)
{
    check_both("mnist_cnn", NULL, 1);
}

/* NaN, +inf and -inf through unfused activations, pools and softmax (about 3%
 * of the input), and through fused epilogues of 1x1 convolutions and dense
 * layers: relu(NaN) = NaN, clip(+inf, 0, 6) = 6, a pooling window with NaN
 * gives NaN. */
static void test_emulated_nonfinite(void **state)
{
    const char *ops =
        "network nan_ops(x: f32[N=2, 8, 9, 9]) {\n"
        "  a = relu(x); b = relu6(x); c = clip(x, -0.5, 0.5); d = leaky_relu(x, alpha=0.1)\n"
        "  e = sigmoid(x); f = tanh(x); g = silu(x); r = hardswish(x); s = hardsigmoid(x)\n"
        "  h = maxpool(x, kernel=3, stride=2, pad=1); k = maxpool(x, kernel=2, ceil_mode=true)\n"
        "  m = avgpool(x, kernel=3, stride=2, pad=1); n = global_avgpool(x)\n"
        "  p = softmax(x, axis=3); q = x * global_avgpool(x)\n"
        "  t = relu6(x + 3) / 6; u = 2 - x * 0.5; v = global_avgpool(x) - x; w = x / (x + 1)\n"
        "  y = gelu(x); z = gelu(x, approximate=\"tanh\")\n"
        "  return a, b, c, d, e, f, g, h, k, m, n, p, q, r, s, t, u, v, w, y, z\n}\n";
    const char *fused =
        "network nan_fused(x: f32[N=2, 4, 8, 8]) {\n"
        "  a = relu(conv2d(x, 16, kernel=1) as c1)\n"
        "  b = relu6(conv2d(x, 16, kernel=1) as c2)\n"
        "  c = leaky_relu(conv2d(x, 16, kernel=1) as c3, alpha=0.1)\n"
        "  d = relu(conv2d(x, 16, kernel=1) as c4 + a)\n"
        "  e = silu(conv2d(x, 16, kernel=1) as c5)\n"
        "  f = maxpool(relu(conv2d(x, 16, kernel=1) as c6), kernel=3, stride=2)\n"
        "  g = softmax(dense(flatten(maxpool(x, kernel=4)), 10) as fc1)\n"
        "  h = relu(dense(flatten(maxpool(x, kernel=4)), 10) as fc2)\n"
        "  k = hardswish(conv2d(x, 16, kernel=1) as c7)\n"
        "  m = hardsigmoid(conv2d(x, 16, kernel=1) as c8)\n"
        "  n = relu6(conv2d(x, 16, kernel=1) as c9 * 0.5 - 1); p = n / global_avgpool(n)\n"
        "  q = gelu(conv2d(x, 16, kernel=1) as c10)\n"
        "  r = gelu(conv2d(x, 16, kernel=1) as c11, approximate=\"tanh\")\n"
        "  return a, b, c, d, e, f, g, h, k, m, n, p, q, r\n}\n";
    check_model("nan_ops", ops, 0, CU_MATH_F32, 40);
    check_model("nan_fused", fused, 0, CU_MATH_F32, 6);
    check_model("nan_fused", fused, 0, CU_MATH_TF32, 6);
    check_model("mnist_cnn", NULL, 1, CU_MATH_F32, 3);
}

/* A graph in IR text (ops the language may not spell yet), weights random. */
static Graph *load_ir(const char *name, const char *text)
{
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = ir_parse_text(name, text, &d);
    assert_non_null(g);
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);
    fe_random_weights(g, 7);
    return g;
}

/* Emulated in both math modes, then as written (without channels_first) and
 * compiled so by NVRTC for sm_90 where it is present. */
static void check_ir(const char *name, const char *text)
{
    check_graph(name, load_ir(name, text), CU_MATH_F32, 0);
    check_graph(name, load_ir(name, text), CU_MATH_TF32, 0);
    check_graph_without(name, load_ir(name, text), CU_MATH_F32, 0, as_written());
    if (!cg_cuda_have_nvrtc()) return;
    Graph *g = load_ir(name, text);
    CuTarget t = {90, CU_MATH_TF32};
    CuProgram *p = program_without(g, &t, as_written());
    CuBinary b;
    char err[4096];
    if (!cg_cuda_compile(p, false, &b, err, sizeof err)) fail_msg("%s: %s", name, err);
    cg_cuda_binary_free(&b);
    cg_cuda_free(p);
    ir_graph_free(g);
}

/* Layernorm over the channels of NCHW (a thread per line, lines strided), over
 * a middle dim, and over the last dim of 4-d and 3-d values (a warp per line,
 * lines longer and shorter than a warp); NaN and infinities spoil their lines. */
static void test_emulated_layernorm(void **state)
{
    check_ir("layernorm", "graph layernorm {\n"
             "  %0 = input \"x\" : f32[2,6,5,7]\n"
             "  %1 = param \"ln1.weight\" : f32[6]\n"
             "  %2 = param \"ln1.bias\" : f32[6]\n"
             "  %3 = layernorm(%0, %1, %2) {axis=1, eps=1e-05} \"ln1\" : f32[2,6,5,7]\n"
             "  %4 = param \"ln2.weight\" : f32[7]\n"
             "  %5 = param \"ln2.bias\" : f32[7]\n"
             "  %6 = layernorm(%0, %4, %5) {axis=-1, eps=0.001} \"ln2\" : f32[2,6,5,7]\n"
             "  %7 = param \"ln3.weight\" : f32[5]\n"
             "  %8 = param \"ln3.bias\" : f32[5]\n"
             "  %9 = layernorm(%0, %7, %8) {axis=2, eps=1e-05} \"ln3\" : f32[2,6,5,7]\n"
             "  return %3 \"ln1\"\n  return %6 \"ln2\"\n  return %9 \"ln3\"\n}\n");
    const char *wide = "graph layernorm_wide {\n"
                       "  %0 = input \"x\" : f32[2,3,4,40]\n"
                       "  %1 = param \"ln1.weight\" : f32[40]\n"
                       "  %2 = param \"ln1.bias\" : f32[40]\n"
                       "  %3 = layernorm(%0, %1, %2) {axis=-1, eps=1e-06} \"ln1\" : f32[2,3,4,40]\n"
                       "  %4 = input \"t\" : f32[2,7,24]\n"
                       "  %5 = param \"ln2.weight\" : f32[24]\n"
                       "  %6 = param \"ln2.bias\" : f32[24]\n"
                       "  %7 = layernorm(%4, %5, %6) {axis=-1, eps=1e-05} \"ln2\" : f32[2,7,24]\n"
                       "  return %3 \"ln1\"\n  return %7 \"ln2\"\n}\n";
    check_ir("layernorm_wide", wide);
    check_graph("layernorm_nan", load_ir("layernorm_nan", wide), CU_MATH_F32, 5);
}

/* Transposes to and from channels-last and of rank 5; slices along the
 * channels and the last dim; padding with four different widths and a value. */
static void test_emulated_data_movement(void **state)
{
    check_ir("moves", "graph moves {\n"
             "  %0 = input \"x\" : f32[2,5,6,7]\n"
             "  %1 = transpose(%0) {perm=[0,2,3,1,4,5]} \"nhwc\" : f32[2,6,7,5]\n"
             "  %2 = transpose(%0) {perm=[0,3,1,2,4,5]} \"back\" : f32[2,7,5,6]\n"
             "  %3 = input \"v\" : f32[2,3,4,5,6]\n"
             "  %4 = transpose(%3) {perm=[0,4,2,1,3,5]} \"t5\" : f32[2,6,4,3,5]\n"
             "  %5 = slice(%0) {axis=1, start=1, end=4} \"s1\" : f32[2,3,6,7]\n"
             "  %6 = slice(%0) {axis=3, start=2, end=7} \"s3\" : f32[2,5,6,5]\n"
             "  %7 = pad(%0) {pad=[1,2,0,3], value=0.75} \"pad\" : f32[2,5,7,12]\n"
             "  return %1 \"nhwc\"\n  return %2 \"back\"\n  return %4 \"t5\"\n"
             "  return %5 \"s1\"\n  return %6 \"s3\"\n  return %7 \"pad\"\n}\n");
}

/* ShuffleNet's shuffle with 2 and 4 groups, and outputs that a concat holds in
 * place (their batch items spaced by the concat's). */
static void test_emulated_channel_shuffle(void **state)
{
    check_ir("shuffle", "graph shuffle {\n"
             "  %0 = input \"x\" : f32[2,8,3,5]\n"
             "  %1 = channel_shuffle(%0) {groups=2} \"cs2\" : f32[2,8,3,5]\n"
             "  %2 = input \"y\" : f32[2,12,4,3]\n"
             "  %3 = channel_shuffle(%2) {groups=4} \"cs4\" : f32[2,12,4,3]\n"
             "  %4 = relu(%0) \"r\" : f32[2,8,3,5]\n"
             "  %5 = channel_shuffle(%4) {groups=4} \"cs\" : f32[2,8,3,5]\n"
             "  %6 = slice(%4) {axis=1, start=2, end=5} \"sl\" : f32[2,3,3,5]\n"
             "  %7 = pad(%4) {pad=[0,0,0,0], value=0} \"pd\" : f32[2,8,3,5]\n"
             "  %8 = concat(%5, %6, %7) {axis=1} \"cat\" : f32[2,19,3,5]\n"
             "  return %1 \"cs2\"\n  return %3 \"cs4\"\n  return %8 \"cat\"\n}\n");
}

/* Dense over the last dim of a 4-d value: 24 rows as a GEMM and 6 (batch 1)
 * as matrix-vector, with bias and a fused activation. */
static void test_emulated_dense_last_dim(void **state)
{
    check_ir("dense_nd", "graph dense_nd {\n"
             "  %0 = input \"x\" : f32[2,3,4,20]\n"
             "  %1 = param \"fc.weight\" : f32[16,20]\n"
             "  %2 = param \"fc.bias\" : f32[16]\n"
             "  %3 = dense(%0, %1, %2) {axis=-1} \"fc\" : f32[2,3,4,16]\n"
             "  %4 = relu(%3) \"relu_0\" : f32[2,3,4,16]\n"
             "  %5 = input \"y\" : f32[1,2,3,20]\n"
             "  %6 = dense(%5, %1, %2) {axis=3} \"fc2\" : f32[1,2,3,16]\n"
             "  %7 = silu(%6) \"silu_0\" : f32[1,2,3,16]\n"
             "  return %4 \"relu_0\"\n  return %7 \"silu_0\"\n}\n");
    Graph *g = load_ir("dense_nd", "graph dense_nd {\n"
                       "  %0 = input \"x\" : f32[2,3,4,20]\n"
                       "  %1 = param \"fc.weight\" : f32[16,20]\n"
                       "  %2 = param \"fc.bias\" : f32[16]\n"
                       "  %3 = dense(%0, %1, %2) {axis=-1} \"fc\" : f32[2,3,4,16]\n"
                       "  %4 = relu(%3) \"relu_0\" : f32[2,3,4,16]\n"
                       "  return %4 \"relu_0\"\n}\n");
    CuTarget t = {80, CU_MATH_F32};
    CuProgram *p = cuda_program(g, &t);
    assert_int_equal(p->nkernels, 1); /* the relu fused */
    assert_string_equal(p->kernels[0].op, "dense+bias+relu");
    cg_cuda_free(p);
    ir_graph_free(g);
}

/* Dense over the last dim of 3-d values held inside a concat: its output, and
 * the residual it adds, have batch items spaced by the concat's. */
static void test_emulated_dense_in_concat(void **state)
{
    const char *text = "graph dense_cat {\n"
                       "  %0 = input \"x\" : f32[2,5,8]\n"
                       "  %1 = param \"fc.weight\" : f32[6,8]\n"
                       "  %2 = param \"fc.bias\" : f32[6]\n"
                       "  %3 = dense(%0, %1, %2) {axis=-1} \"fc\" : f32[2,5,6]\n"
                       "  %4 = input \"u\" : f32[2,5,6]\n"
                       "  %5 = relu(%4) \"r\" : f32[2,5,6]\n"
                       "  %6 = dense(%0, %1) {axis=-1} \"fc2\" : f32[2,5,6]\n"
                       "  %7 = add(%6, %5) \"add_0\" : f32[2,5,6]\n"
                       "  %8 = concat(%3, %5, %7) {axis=1} \"cat\" : f32[2,15,6]\n"
                       "  return %8 \"cat\"\n}\n";
    Graph *g = load_ir("dense_cat", text);
    CuTarget t = {80, CU_MATH_F32};
    CuProgram *p = cuda_program(g, &t);
    int rows_kernels = 0;
    for (const char *c = p->source; (c = strstr(c, "cu_dense_rows<")); c++) rows_kernels++;
    assert_int_equal(rows_kernels, 2); /* fc and fc2: neither fits the GEMM's row order */
    cg_cuda_free(p);
    ir_graph_free(g);
    check_ir("dense_cat", text);
}

/* A transformer-style block on channels-last: transpose, layernorm, an MLP
 * with gelu, and back to NCHW. */
static void test_emulated_chain(void **state)
{
    const char *text = "graph chain {\n"
                       "  %0 = input \"x\" : f32[2,6,4,5]\n"
                       "  %1 = transpose(%0) {perm=[0,2,3,1,4,5]} \"to_nhwc\" : f32[2,4,5,6]\n"
                       "  %2 = param \"ln.weight\" : f32[6]\n"
                       "  %3 = param \"ln.bias\" : f32[6]\n"
                       "  %4 = layernorm(%1, %2, %3) {axis=-1, eps=1e-06} \"ln\" : f32[2,4,5,6]\n"
                       "  %5 = param \"fc1.weight\" : f32[24,6]\n"
                       "  %6 = param \"fc1.bias\" : f32[24]\n"
                       "  %7 = dense(%4, %5, %6) {axis=-1} \"fc1\" : f32[2,4,5,24]\n"
                       "  %8 = gelu(%7) {tanh=false} \"gelu_0\" : f32[2,4,5,24]\n"
                       "  %9 = param \"fc2.weight\" : f32[6,24]\n"
                       "  %10 = param \"fc2.bias\" : f32[6]\n"
                       "  %11 = dense(%8, %9, %10) {axis=-1} \"fc2\" : f32[2,4,5,6]\n"
                       "  %12 = transpose(%11) {perm=[0,3,1,2,4,5]} \"to_nchw\" : f32[2,6,4,5]\n"
                       "  return %12 \"to_nchw\"\n}\n";
    check_ir("chain", text);
    static const char *const want[] = {"transpose", "layernorm", "dense+bias+gelu", "dense+bias",
                                       "transpose"};
    Graph *g = load_ir("chain", text);
    CuTarget t = {80, CU_MATH_F32};
    CuProgram *p = program_without(g, &t, as_written());
    assert_int_equal(p->nkernels, 5);
    for (int32_t k = 0; k < p->nkernels; k++) assert_string_equal(p->kernels[k].op, want[k]);
    cg_cuda_free(p);
    ir_graph_free(g);
}

/* The language's layers that lower to these ops: a ConvNeXt block (depthwise
 * conv, permute, layernorm, an MLP over the last dim, a layer scale), a
 * ShuffleNet V2 unit (chunk, concat, channel_shuffle), dense over the channels
 * of NCHW (lowered to the last dim) and pad. */
static void test_emulated_language_layers(void **state)
{
    const char *text =
        "block cnx(x) {\n"
        "  c = channels(x)\n"
        "  y = sequence block(x) {\n"
        "    conv2d(c, kernel=7, pad=3, groups=c)\n"
        "    permute([0, 2, 3, 1]); layernorm(eps=1e-6)\n"
        "    dense(4 * c, axis=-1); gelu; dense(c, axis=-1)\n"
        "    permute([0, 3, 1, 2])\n"
        "  }\n"
        "  scale = parameter([c, 1, 1]) as layer_scale\n"
        "  return scale * y + x\n"
        "}\n"
        "block unit(x) {\n"
        "  halves = chunk(x, 2)\n"
        "  b = relu(conv2d(halves[1], channels(x) // 2, kernel=1) as pw)\n"
        "  return channel_shuffle(concat(halves[0], b), 2)\n"
        "}\n"
        "network lang(x: f32[N=2, 8, 6, 5]) {\n"
        "  y = layernorm(x, axis=1, eps=1e-6) as stem_norm\n"
        "  y = cnx(y) as b1\n"
        "  z = unit(y) as u1\n"
        "  return z, dense(pad(x, [1, 0, 2, 1], value=-1.5), 6, axis=1) as fc, mean(z, [2, 3])\n"
        "}\n";
    check_both("lang_layers", text, 0);
    check_graph_without("lang_layers", load_text("lang_layers", text, 0), CU_MATH_F32, 0,
                        as_written());
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arch_names),
        cmocka_unit_test(test_pack_conv_order),
        cmocka_unit_test(test_conv_tiles),
        cmocka_unit_test(test_conv_split),
        cmocka_unit_test(test_nvrtc_compile),
        cmocka_unit_test(test_kernel_labels),
#ifdef CNNC_CXX
        cmocka_unit_test(test_emulation_barriers),
        cmocka_unit_test(test_emulated_conv),
        cmocka_unit_test(test_emulated_blocks),
        cmocka_unit_test(test_emulated_misc),
        cmocka_unit_test(test_emulated_split),
        cmocka_unit_test(test_emulated_fire),
        cmocka_unit_test(test_emulated_mnist),
        cmocka_unit_test(test_emulated_nonfinite),
        cmocka_unit_test(test_emulated_layernorm),
        cmocka_unit_test(test_emulated_data_movement),
        cmocka_unit_test(test_emulated_channel_shuffle),
        cmocka_unit_test(test_emulated_dense_last_dim),
        cmocka_unit_test(test_emulated_dense_in_concat),
        cmocka_unit_test(test_emulated_chain),
        cmocka_unit_test(test_emulated_language_layers),
#endif
    };
#ifdef CNNC_CXX
    return cmocka_run_group_tests(tests, setup, teardown);
#else
    fprintf(stderr, "no C++ compiler was found: the kernels are not run on the CPU\n");
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}
