/* test_fakecuda.c: the fake CUDA driver (tests/fakecuda) through its own API: device and
 * context rules, memory and copies with their range checks, modules, a small generated
 * program run kernel by kernel and as a captured graph (against the reference
 * interpreter, f32 within 1e-4), events, what capture forbids, failure injection and the
 * counts of live objects. With --env-failure it checks CNNC_FAKECUDA_FAIL instead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(CNNC_CUDA_DRIVER_H) && defined(CNNC_CXX)
#include CNNC_CUDA_DRIVER_H

#include "cuda_emu.h"
#include "test_util.h"

int fakecuda_live(void);
int fakecuda_calls(const char *name);
void fakecuda_fail(const char *name, int k);
void fakecuda_reset(void);

/* `call` returns `want`, or the test fails naming both results. */
#define EXPECT(want, call) expect_result((want), (call), #call, __LINE__)
#define CHECK(call) EXPECT(CUDA_SUCCESS, call)

static void expect_result(CUresult want, CUresult got, const char *what, int line)
{
    if (want == got) return;
    const char *w = "?", *g = "?";
    cuGetErrorName(want, &w);
    cuGetErrorName(got, &g);
    fail_msg("line %d: %s returned %s (%d), expected %s", line, what, g, (int)got, w);
}

static char tmpdir[256];
static CUcontext ctx;

static int setup(void **state)
{
    return cuda_emu_mkdtemp(tmpdir, sizeof tmpdir, "fakecuda");
}

static int teardown(void **state)
{
    return cuda_emu_rmdir(tmpdir);
}

static void ctx_enter(void)
{
    CHECK(cuDevicePrimaryCtxRetain(&ctx, 0));
    CHECK(cuCtxPushCurrent_v2(ctx));
}

static void ctx_leave(void)
{
    CHECK(cuCtxPopCurrent_v2(NULL));
    CHECK(cuDevicePrimaryCtxRelease_v2(0));
    assert_int_equal(fakecuda_live(), 0);
}

/* First: nothing works before cuInit but the error names and the driver version. */
static void test_device(void **state)
{
    int n = -1, v = 0;
    EXPECT(CUDA_ERROR_NOT_INITIALIZED, cuDeviceGetCount(&n));
    CHECK(cuDriverGetVersion(&v));
    assert_int_equal(v, CUDA_VERSION);
    const char *s = NULL;
    CHECK(cuGetErrorName(CUDA_ERROR_NO_DEVICE, &s));
    assert_string_equal(s, "CUDA_ERROR_NO_DEVICE");
    CHECK(cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s));
    assert_string_equal(s, "out of memory");
    EXPECT(CUDA_ERROR_INVALID_VALUE, cuGetErrorName((CUresult)12345, &s));
    assert_null(s);
    EXPECT(CUDA_ERROR_INVALID_VALUE, cuInit(1));
    CHECK(cuInit(0));
    CHECK(cuDeviceGetCount(&n));
    assert_int_equal(n, 1);
    CUdevice dev = -1;
    EXPECT(CUDA_ERROR_INVALID_DEVICE, cuDeviceGet(&dev, 1));
    CHECK(cuDeviceGet(&dev, 0));
    assert_int_equal(dev, 0);
    char name[64];
    CHECK(cuDeviceGetName(name, sizeof name, dev));
    assert_string_equal(name, "cnnc fake device");
    int major = 0, minor = -1;
    CHECK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
    CHECK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
    assert_true(major == 8 && minor == 0);
    setenv("CNNC_FAKECUDA_CC", "7.5", 1);
    CHECK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
    CHECK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
    assert_true(major == 7 && minor == 5);
    unsetenv("CNNC_FAKECUDA_CC");
    EXPECT(CUDA_ERROR_INVALID_DEVICE, cuDeviceGetAttribute(&major, 75, 3));
}

/* The primary context: one handle, reference counted; a per-thread stack of current ones. */
static void test_contexts(void **state)
{
    CUdeviceptr p;
    CUcontext a, b, top = NULL;
    EXPECT(CUDA_ERROR_INVALID_CONTEXT, cuMemAlloc_v2(&p, 64));
    EXPECT(CUDA_ERROR_INVALID_CONTEXT, cuCtxPopCurrent_v2(&top));
    CHECK(cuDevicePrimaryCtxRetain(&a, 0));
    CHECK(cuDevicePrimaryCtxRetain(&b, 0));
    assert_ptr_equal(a, b);
    assert_int_equal(fakecuda_live(), 2);
    CHECK(cuCtxPushCurrent_v2(a));
    CHECK(cuMemAlloc_v2(&p, 64));
    assert_int_equal(fakecuda_live(), 3);
    CHECK(cuMemFree_v2(p));
    CHECK(cuCtxPopCurrent_v2(&top));
    assert_ptr_equal(top, a);
    CHECK(cuDevicePrimaryCtxRelease_v2(0));
    CHECK(cuDevicePrimaryCtxRelease_v2(0));
    assert_int_equal(fakecuda_live(), 0);
    EXPECT(CUDA_ERROR_INVALID_CONTEXT, cuDevicePrimaryCtxRelease_v2(0));
    EXPECT(CUDA_ERROR_INVALID_CONTEXT, cuCtxPushCurrent_v2(a));
}

/* Copies in every direction, 2D copies with pitches, and the checks of their ranges. */
static void test_memory(void **state)
{
    ctx_enter();
    CUdeviceptr d, e;
    CHECK(cuMemAlloc_v2(&d, 1000));
    CHECK(cuMemAlloc_v2(&e, 1000));
    assert_int_equal(d % 256, 0);
    assert_int_equal(((unsigned char *)(uintptr_t)d)[999], 0xff); /* never zeroed */
    EXPECT(CUDA_ERROR_INVALID_VALUE, cuMemAlloc_v2(&d, 0));
    unsigned char host[1000], back[1000];
    for (int i = 0; i < 1000; i++) host[i] = (unsigned char)(i * 7);
    CHECK(cuMemcpyHtoD_v2(d, host, 1000));
    CHECK(cuMemcpyDtoDAsync_v2(e, d, 1000, NULL));
    CHECK(cuMemcpyDtoHAsync_v2(back, e, 1000, NULL));
    assert_memory_equal(back, host, 1000);
    CHECK(cuMemsetD8_v2(e + 10, 3, 5));
    CHECK(cuMemcpyDtoHAsync_v2(back, e, 20, NULL));
    assert_true(back[9] == host[9] && back[10] == 3 && back[14] == 3 && back[15] == host[15]);
    EXPECT(CUDA_ERROR_INVALID_VALUE, cuMemcpyHtoD_v2(d + 999, host, 2));
    EXPECT(CUDA_ERROR_INVALID_VALUE, cuMemcpyDtoHAsync_v2(back, d + 1, 1000, NULL));
    EXPECT(CUDA_ERROR_INVALID_HANDLE, cuMemcpyDtoHAsync_v2(back, d, 4, (CUstream)&back));
    /* rows of 12 bytes, 40 apart, from (x 4, y 2) of the device matrix into dense host rows */
    CUDA_MEMCPY2D c = {.srcXInBytes = 4, .srcY = 2, .srcMemoryType = CU_MEMORYTYPE_DEVICE,
                       .srcDevice = d, .srcPitch = 40, .dstMemoryType = CU_MEMORYTYPE_HOST,
                       .dstHost = back, .dstPitch = 12, .WidthInBytes = 12, .Height = 5};
    memset(back, 0, sizeof back);
    CHECK(cuMemcpy2DAsync_v2(&c, NULL));
    for (int r = 0; r < 5; r++) assert_memory_equal(back + 12 * r, host + 84 + 40 * r, 12);
    assert_int_equal(back[60], 0);
    c.Height = 24; /* row 23 ends at 84 + 22 * 40 + 12 + 40 > 1000 */
    EXPECT(CUDA_ERROR_INVALID_VALUE, cuMemcpy2DAsync_v2(&c, NULL));
    c.Height = 2, c.srcPitch = 8;
    EXPECT(CUDA_ERROR_INVALID_VALUE, cuMemcpy2DAsync_v2(&c, NULL));
    EXPECT(CUDA_ERROR_INVALID_VALUE, cuMemFree_v2(d + 8));
    CHECK(cuMemFree_v2(d));
    EXPECT(CUDA_ERROR_INVALID_VALUE, cuMemFree_v2(d));
    CHECK(cuMemFree_v2(e));
    ctx_leave();
}

/* A PTX text naming these kernel entries, for sm_`arch`. */
static char *fake_ptx(const char *const *names, int n, int arch)
{
    size_t size = 4096;
    for (int i = 0; i < n; i++) size += strlen(names[i]) + 64;
    char *ptx = malloc(size);
    assert_non_null(ptx);
    int len = snprintf(ptx, size, "//\n// fake\n.version 8.0\n.target sm_%d\n", arch);
    for (int i = 0; i < n; i++)
        len += snprintf(ptx + len, size - (size_t)len, ".visible .entry %s(\n)\n{\n}\n", names[i]);
    return ptx;
}

/* A cubin for sm_80 as NVRTC 13 writes its ELF header (EM_CUDA, ABI version 8, the
 * architecture in bits 8-15 of e_flags); its section table ends the image; a string
 * table with `name`. */
static void fake_cubin(unsigned char *elf, size_t size, const char *name)
{
    memset(elf, 0, size);
    memcpy(elf, "\177ELF\2\1\1\101\10", 9);
    uint64_t shoff = size - 64;
    uint16_t entsize = 64, num = 1, machine = 190;
    uint32_t flags = 0x6005004;
    memcpy(elf + 0x12, &machine, 2);
    memcpy(elf + 0x30, &flags, 4);
    memcpy(elf + 0x28, &shoff, 8);
    memcpy(elf + 0x3a, &entsize, 2);
    memcpy(elf + 0x3c, &num, 2);
    strcpy((char *)elf + 100, name);
}

static void test_modules(void **state)
{
    ctx_enter();
    CUmodule m;
    CUfunction f;
    EXPECT(CUDA_ERROR_INVALID_IMAGE, cuModuleLoadDataEx(&m, "hello", 0, NULL, NULL));
    const char *names[] = {"k0_conv"};
    char *ptx = fake_ptx(names, 1, 90);
    EXPECT(CUDA_ERROR_INVALID_PTX, cuModuleLoadDataEx(&m, ptx, 0, NULL, NULL));
    setenv("CNNC_FAKECUDA_CC", "9.0", 1);
    CHECK(cuModuleLoadDataEx(&m, ptx, 0, NULL, NULL));
    unsetenv("CNNC_FAKECUDA_CC");
    EXPECT(CUDA_ERROR_NOT_FOUND, cuModuleGetFunction(&f, m, "k0_con"));
    EXPECT(CUDA_ERROR_NOT_FOUND, cuModuleGetFunction(&f, m, "k0_conv")); /* no kernels */
    CHECK(cuModuleUnload(m));
    EXPECT(CUDA_ERROR_INVALID_HANDLE, cuModuleUnload(m));
    unsigned char elf[512];
    fake_cubin(elf, sizeof elf, "k0_conv");
    setenv("CNNC_FAKECUDA_CC", "9.0", 1); /* sm_80 code does not run on sm_90 */
    EXPECT(CUDA_ERROR_NO_BINARY_FOR_GPU, cuModuleLoadDataEx(&m, elf, 0, NULL, NULL));
    setenv("CNNC_FAKECUDA_CC", "8.6", 1);
    CHECK(cuModuleLoadDataEx(&m, elf, 0, NULL, NULL));
    unsetenv("CNNC_FAKECUDA_CC");
    EXPECT(CUDA_ERROR_NOT_FOUND, cuModuleGetFunction(&f, m, "k0_co"));
    CHECK(cuModuleUnload(m));
    elf[0x12] = 62; /* an x86-64 object */
    EXPECT(CUDA_ERROR_INVALID_IMAGE, cuModuleLoadDataEx(&m, elf, 0, NULL, NULL));
    free(ptx);
    ctx_leave();
}

/* ---- a generated program on the fake device ------------------------------------------ */

/* Its second output is a view of a value written into a concat's buffer: a strided copy. */
static const char *const program_text =
    "network tiny(x: f32[N=2, 3, 9, 9]) {\n"
    "  a = relu(conv2d(x, 8, kernel=3, pad=1) as c1)\n"
    "  b = relu(conv2d(x, 4, kernel=1) as c2)\n"
    "  c = concat(a, b)\n"
    "  return dense(flatten(global_avgpool(c)), 5) as fc, flatten(a)\n}\n";

typedef struct Program {
    Graph *g;
    CuProgram *p;
    CUmodule mod;
    CUfunction fn[64];
    CUstream s;
    CUdeviceptr arena, weights, in, out[2];
    float *x, *y[2], *want[2];
    int64_t n_in, n_out[2];
} Program;

static CUdeviceptr arg_addr(const Program *t, const CuArg *a)
{
    switch (a->buf) {
    case CU_BUF_ARENA: return t->arena + (CUdeviceptr)a->offset;
    case CU_BUF_INPUT: return t->in + (CUdeviceptr)a->offset;
    case CU_BUF_OUTPUT: return t->out[a->index] + (CUdeviceptr)a->offset;
    case CU_BUF_WEIGHTS: return t->weights + (CUdeviceptr)a->offset;
    case CU_BUF_NONE: return 0;
    }
    return 0;
}

static void launch_all(const Program *t)
{
    for (int32_t i = 0; i < t->p->nkernels; i++) {
        const CuKernel *k = &t->p->kernels[i];
        CUdeviceptr v[16];
        void *params[17];
        for (int32_t a = 0; a < k->nargs; a++) v[a] = arg_addr(t, &k->args[a]), params[a] = &v[a];
        params[k->nargs] = (void *)&k->params;
        CHECK(cuLaunchKernel(t->fn[i], k->grid[0], k->grid[1], k->grid[2], k->block[0],
                             k->block[1], k->block[2], 0, t->s, params, NULL));
    }
}

static void copy_outputs(const Program *t)
{
    for (int32_t o = 0; o < t->p->noutputs; o++) {
        const CuOutput *out = &t->p->outputs[o];
        CUdeviceptr src = arg_addr(t, &out->src);
        if (out->items == 1) {
            CHECK(cuMemcpyDtoHAsync_v2(t->y[o], src, (size_t)out->item_bytes, t->s));
            continue;
        }
        CUDA_MEMCPY2D c = {.srcMemoryType = CU_MEMORYTYPE_DEVICE, .srcDevice = src,
                           .srcPitch = (size_t)out->stride_bytes,
                           .dstMemoryType = CU_MEMORYTYPE_HOST, .dstHost = t->y[o],
                           .dstPitch = (size_t)out->item_bytes,
                           .WidthInBytes = (size_t)out->item_bytes, .Height = (size_t)out->items};
        CHECK(cuMemcpy2DAsync_v2(&c, t->s));
    }
}

static void reference(Program *t)
{
    InterpResult ref;
    char err[256];
    const float *in[] = {t->x};
    assert_true(ir_interp(t->g, in, &ref, err, sizeof err));
    for (int32_t o = 0; o < 2; o++)
        memcpy(t->want[o], ref.values[t->g->outputs[o].node], (size_t)t->n_out[o] * 4);
    ir_interp_free(&ref);
}

static void check_outputs(Program *t)
{
    reference(t);
    expect_close("fc", t->y[0], t->want[0], t->n_out[0]);
    expect_close("a", t->y[1], t->want[1], t->n_out[1]);
}

static void set_input(Program *t, uint64_t seed)
{
    Rng r = ir_rng(seed, "fakecuda");
    for (int64_t i = 0; i < t->n_in; i++) t->x[i] = (float)(2 * ir_rng_uniform(&r) - 1);
    CHECK(cuMemcpyHtoDAsync_v2(t->in, t->x, (size_t)t->n_in * 4, t->s));
}

static void program_load(Program *t)
{
    const char *names[64];
    for (int32_t i = 0; i < t->p->nkernels; i++) names[i] = t->p->kernels[i].symbol;
    char *ptx = fake_ptx(names, t->p->nkernels, 80);
    char *so = cuda_emu_build(t->p, tmpdir, "tiny");
    setenv("CNNC_FAKECUDA_KERNELS", so, 1);
    CHECK(cuModuleLoadDataEx(&t->mod, ptx, 0, NULL, NULL));
    unsetenv("CNNC_FAKECUDA_KERNELS");
    for (int32_t i = 0; i < t->p->nkernels; i++)
        CHECK(cuModuleGetFunction(&t->fn[i], t->mod, names[i]));
    free(ptx);
    free(so);
}

static void program_alloc(Program *t)
{
    CHECK(cuStreamCreate(&t->s, CU_STREAM_NON_BLOCKING));
    CHECK(cuMemAlloc_v2(&t->arena, (size_t)t->p->arena_bytes));
    CHECK(cuMemAlloc_v2(&t->weights, (size_t)t->p->weights_bytes));
    CHECK(cuMemcpyHtoD_v2(t->weights, t->p->weights, (size_t)t->p->weights_bytes));
    t->n_in = ir_numel(&t->g->nodes[ir_input_node(t->g, 0)].type);
    CHECK(cuMemAlloc_v2(&t->in, (size_t)t->n_in * 4));
    t->x = malloc((size_t)t->n_in * 4);
    for (int32_t o = 0; o < 2; o++) {
        t->n_out[o] = ir_numel(&t->g->nodes[t->g->outputs[o].node].type);
        CHECK(cuMemAlloc_v2(&t->out[o], (size_t)t->n_out[o] * 4));
        t->y[o] = calloc((size_t)t->n_out[o], 4);
        t->want[o] = calloc((size_t)t->n_out[o], 4);
    }
}

static void program_open(Program *t)
{
    memset(t, 0, sizeof *t);
    t->g = load_model("tiny", program_text, 0, 3);
    Graph *opt = ir_graph_clone(t->g);
    CuTarget target = {80, CU_MATH_F32};
    t->p = cuda_program(opt, &target);
    ir_graph_free(opt);
    assert_true(t->p->noutputs == 2 && t->p->nkernels < 64);
    assert_true(t->p->outputs[1].items == 2); /* `a` lies strided in the concat */
    ctx_enter();
    program_load(t);
    program_alloc(t);
}

static void program_close(Program *t)
{
    CHECK(cuMemFree_v2(t->arena));
    CHECK(cuMemFree_v2(t->weights));
    CHECK(cuMemFree_v2(t->in));
    for (int32_t o = 0; o < 2; o++) {
        CHECK(cuMemFree_v2(t->out[o]));
        free(t->y[o]), free(t->want[o]);
    }
    CHECK(cuStreamDestroy_v2(t->s));
    CHECK(cuModuleUnload(t->mod));
    free(t->x);
    cg_cuda_free(t->p);
    ir_graph_free(t->g);
    ctx_leave();
}

/* The kernels and the copies out, captured. */
static CUgraphExec capture_program(const Program *t)
{
    CUgraph graph;
    CUgraphExec exec;
    CHECK(cuStreamBeginCapture_v2(t->s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    launch_all(t);
    copy_outputs(t);
    CHECK(cuStreamEndCapture(t->s, &graph));
    CHECK(cuGraphInstantiateWithFlags(&exec, graph, 0));
    CHECK(cuGraphDestroy(graph));
    return exec;
}

/* Kernel by kernel, then as a graph replayed on new inputs, timed with events. */
static void test_program(void **state)
{
    Program t;
    program_open(&t);
    set_input(&t, 1);
    launch_all(&t);
    copy_outputs(&t);
    CHECK(cuStreamSynchronize(t.s));
    check_outputs(&t);
    CUgraphExec exec = capture_program(&t);
    fakecuda_reset();
    CUevent start, end;
    CHECK(cuEventCreate(&start, 0));
    CHECK(cuEventCreate(&end, 0));
    for (uint64_t seed = 2; seed < 4; seed++) {
        memset(t.y[0], 0, (size_t)t.n_out[0] * 4);
        set_input(&t, seed);
        CHECK(cuEventRecord(start, t.s));
        CHECK(cuGraphLaunch(exec, t.s));
        CHECK(cuEventRecord(end, t.s));
        CHECK(cuEventSynchronize(end));
        check_outputs(&t);
    }
    float ms = -1, ms2 = -1;
    CHECK(cuEventElapsedTime_v2(&ms, start, end));
    CHECK(cuEventElapsedTime(&ms2, start, end));
    assert_true(ms > 0 && ms == ms2);
    assert_int_equal(fakecuda_calls("cuGraphLaunch"), 2);
    assert_int_equal(fakecuda_calls("cuLaunchKernel"), 0);
    assert_int_equal(fakecuda_calls("nonsense"), -1);
    CHECK(cuEventDestroy_v2(start));
    CHECK(cuEventDestroy_v2(end));
    CHECK(cuGraphExecDestroy(exec));
    program_close(&t);
}

/* What capture refuses, what ends it, and a replay over memory freed since. */
static void test_capture_rules(void **state)
{
    Program t;
    program_open(&t);
    CUgraph graph = (CUgraph)&t;
    CUgraphExec exec;
    CUdeviceptr p;
    EXPECT(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
           cuStreamBeginCapture_v2(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL));
    EXPECT(CUDA_ERROR_ILLEGAL_STATE, cuStreamEndCapture(t.s, &graph));
    CHECK(cuStreamBeginCapture_v2(t.s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    EXPECT(CUDA_ERROR_ILLEGAL_STATE, cuStreamBeginCapture_v2(t.s, 1));
    EXPECT(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, cuMemAlloc_v2(&p, 64));
    EXPECT(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, cuStreamEndCapture(t.s, &graph));
    assert_null(graph);
    CHECK(cuStreamBeginCapture_v2(t.s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    EXPECT(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, cuStreamSynchronize(t.s));
    EXPECT(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, cuStreamEndCapture(t.s, &graph));
    CHECK(cuStreamBeginCapture_v2(t.s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    launch_all(&t);
    CHECK(cuStreamEndCapture(t.s, &graph));
    CHECK(cuGraphInstantiateWithFlags(&exec, graph, 0));
    CHECK(cuMemFree_v2(t.arena));
    EXPECT(CUDA_ERROR_ILLEGAL_ADDRESS, cuGraphLaunch(exec, t.s));
    CHECK(cuMemAlloc_v2(&t.arena, (size_t)t.p->arena_bytes));
    CHECK(cuGraphDestroy(graph));
    CHECK(cuGraphExecDestroy(exec));
    EXPECT(CUDA_ERROR_INVALID_HANDLE, cuGraphExecDestroy(exec));
    CUevent a, b;
    float ms;
    CHECK(cuEventCreate(&a, CU_EVENT_DISABLE_TIMING));
    CHECK(cuEventCreate(&b, 0));
    CHECK(cuEventRecord(a, t.s));
    EXPECT(CUDA_ERROR_INVALID_HANDLE, cuEventElapsedTime_v2(&ms, a, b)); /* b not recorded */
    CHECK(cuEventRecord(b, t.s));
    EXPECT(CUDA_ERROR_INVALID_HANDLE, cuEventElapsedTime_v2(&ms, a, b)); /* a untimed */
    CHECK(cuEventDestroy_v2(a));
    CHECK(cuEventDestroy_v2(b));
    program_close(&t);
}

/* The K-th call of an entry point fails with its natural error, once. */
static void test_failure_injection(void **state)
{
    fakecuda_reset();
    fakecuda_fail("cuInit", 1);
    EXPECT(CUDA_ERROR_NO_DEVICE, cuInit(0));
    CHECK(cuInit(0));
    ctx_enter();
    CUdeviceptr p[3];
    fakecuda_fail("cuMemAlloc_v2", 2);
    CHECK(cuMemAlloc_v2(&p[0], 64));
    EXPECT(CUDA_ERROR_OUT_OF_MEMORY, cuMemAlloc_v2(&p[1], 64));
    CHECK(cuMemAlloc_v2(&p[2], 64));
    assert_int_equal(fakecuda_calls("cuMemAlloc_v2"), 3);
    assert_int_equal(fakecuda_live(), 3);
    CHECK(cuMemFree_v2(p[0]));
    CHECK(cuMemFree_v2(p[2]));
    CUmodule m;
    unsigned char elf[256];
    fake_cubin(elf, sizeof elf, "k");
    fakecuda_fail("cuModuleLoadDataEx", 1);
    EXPECT(CUDA_ERROR_NO_BINARY_FOR_GPU, cuModuleLoadDataEx(&m, elf, 0, NULL, NULL));
    fakecuda_fail("cuLaunchKernel", 1);
    EXPECT(CUDA_ERROR_LAUNCH_FAILED, cuLaunchKernel(NULL, 1, 1, 1, 32, 1, 1, 0, NULL, NULL, NULL));
    fakecuda_fail("cuGraphLaunch", 1);
    EXPECT(CUDA_ERROR_LAUNCH_FAILED, cuGraphLaunch(NULL, NULL));
    CUstream s;
    fakecuda_fail("cuStreamCreate", 1);
    EXPECT(CUDA_ERROR_UNKNOWN, cuStreamCreate(&s, 0));
    fakecuda_fail("cuMemFree_v2", 1);
    fakecuda_reset(); /* forgets the failure to come */
    assert_int_equal(fakecuda_calls("cuMemAlloc_v2"), 0);
    CHECK(cuMemAlloc_v2(&p[0], 64));
    CHECK(cuMemFree_v2(p[0]));
    ctx_leave();
}

/* Run with CNNC_FAKECUDA_FAIL=cuDeviceGet:2. */
static void test_env_failure(void **state)
{
    CUdevice d;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&d, 0));
    EXPECT(CUDA_ERROR_UNKNOWN, cuDeviceGet(&d, 0));
    CHECK(cuDeviceGet(&d, 0));
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--env-failure")) {
        const struct CMUnitTest env[] = {cmocka_unit_test(test_env_failure)};
        return cmocka_run_group_tests(env, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device),       cmocka_unit_test(test_contexts),
        cmocka_unit_test(test_memory),       cmocka_unit_test(test_modules),
        cmocka_unit_test(test_program),      cmocka_unit_test(test_capture_rules),
        cmocka_unit_test(test_failure_injection),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
#else
int main(void)
{
    fprintf(stderr, "skipped: the fake CUDA driver needs the CUDA toolkit's cuda.h and a C++ "
                    "compiler\n");
    return 77;
}
#endif
