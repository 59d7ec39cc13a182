/* test_cuda_runtime.c: CUDA model.so files end to end on the CPU. Each is built as
 * `cnnc --target=cuda` builds it (passes, CUDA C, NVRTC's cubin and PTX, the GPU
 * image linked with the runtime) and run through its C API on the fake driver
 * (tests/fakecuda), whose kernels are the same program compiled as host C++
 * (tests/cuda_emu.h). Checked: outputs against the reference interpreter (f32
 * within 1e-4, TF32 within 5e-3), runs as graph replays, profiling, device
 * pointers, and every failure the driver can report, each leaving no device
 * object behind. With --no-driver MODEL.so (run by this test in a process
 * without the fake) it checks the model's answer when there is no driver; with
 * --zoo NAME it runs models/NAME.cnn once (batch 1, f32). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cg.h"
#include "model_api.h"
#include "test_util.h"

#if defined(FAKECUDA_SO) && defined(CNNC_CXX)
#include "cuda_emu.h"

/* ---- the fake driver, reached as the model's runtime reaches it ------------------- */

typedef unsigned long long DevPtr;
typedef struct Fake {
    void *lib;
    int (*live)(void);
    int (*calls)(const char *);
    void (*inject)(const char *, int);
    void (*reset)(void);
    int (*init)(unsigned);
    int (*retain)(void **, int);
    int (*release)(int);
    int (*push)(void *);
    int (*pop)(void **);
    int (*alloc)(DevPtr *, size_t);
    int (*free)(DevPtr);
    int (*htod)(DevPtr, const void *, size_t);
    int (*dtoh)(void *, DevPtr, size_t, void *);
} Fake;

static Fake fake;
static char tmpdir[256];

static void fake_sym(const char *name, void *fn, size_t size)
{
    if (!model_api_sym(fake.lib, name, fn, size)) fail_msg("fake driver: no %s", name);
}

#define FAKE_SYM(field, name) fake_sym(name, &fake.field, sizeof fake.field)

/* Loaded by path before any model: the runtime's dlopen("libcuda.so.1") finds it by
 * its SONAME, so both use one instance whatever LD_LIBRARY_PATH says. */
static void fake_open(void)
{
    fake.lib = dlopen(FAKECUDA_SO, RTLD_NOW | RTLD_LOCAL);
    if (!fake.lib) fail_msg("%s", dlerror());
    FAKE_SYM(live, "fakecuda_live");
    FAKE_SYM(calls, "fakecuda_calls");
    FAKE_SYM(inject, "fakecuda_fail");
    FAKE_SYM(reset, "fakecuda_reset");
    FAKE_SYM(init, "cuInit");
    FAKE_SYM(retain, "cuDevicePrimaryCtxRetain");
    FAKE_SYM(release, "cuDevicePrimaryCtxRelease_v2");
    FAKE_SYM(push, "cuCtxPushCurrent_v2");
    FAKE_SYM(pop, "cuCtxPopCurrent_v2");
    FAKE_SYM(alloc, "cuMemAlloc_v2");
    FAKE_SYM(free, "cuMemFree_v2");
    FAKE_SYM(htod, "cuMemcpyHtoD_v2");
    FAKE_SYM(dtoh, "cuMemcpyDtoHAsync_v2");
}

/* ---- models --------------------------------------------------------------------------- */

enum { MAX_IO = 4 };

typedef struct Built {
    const char *name;
    int64_t batch;
    CuMath math;
    Graph *g; /* as loaded: the reference */
    char *so, *emu;
    ModelApi api;
    int32_t nkernels;
    char **knames, **kops;
} Built;

/* Concats written in place (two fire modules and one more), the second output a view of
 * one of their inputs. */
static const char fire_text[] =
    "block fire(x, s, e) {\n"
    "  x = relu(conv2d(x, s, kernel=1) as squeeze)\n"
    "  return concat(relu(conv2d(x, e, kernel=1) as e1), "
    "relu(conv2d(x, e, kernel=3, pad=1) as e3))\n}\n"
    "network fire_net(x: f32[N=2, 7, 10, 9]) {\n"
    "  a = relu(conv2d(x, 16, kernel=3, stride=2) as stem)\n"
    "  y = concat(a, relu(conv2d(x, 8, kernel=3, stride=2) as side))\n"
    "  y = fire(y, 4, 9) as f1\n  y = fire(maxpool(y, kernel=2, stride=2), 5, 6) as f2\n"
    "  return dense(flatten(global_avgpool(y)), 10) as fc, flatten(a)\n}\n";

static void keep_kernels(Built *b, const CuProgram *p)
{
    b->nkernels = p->nkernels;
    b->knames = calloc((size_t)p->nkernels, sizeof *b->knames);
    b->kops = calloc((size_t)p->nkernels, sizeof *b->kops);
    for (int32_t k = 0; k < p->nkernels; k++) {
        b->knames[k] = strdup(p->kernels[k].name);
        b->kops[k] = strdup(p->kernels[k].op);
    }
}

/* The model.so and the emulated kernels of one program. */
static void build(Built *b, const char *text)
{
    char tag[128], err[16384];
    snprintf(tag, sizeof tag, "%s_b%d_%s", b->name, (int)b->batch,
             b->math == CU_MATH_F32 ? "f32" : "tf32");
    b->g = load_model(b->name, text, b->batch, 7);
    Graph *opt = ir_graph_clone(b->g);
    CuTarget t = {80, b->math};
    CuProgram *p = cuda_program(opt, &t);
    CuBinary bin;
    if (!cg_cuda_compile(p, true, &bin, err, sizeof err)) fail_msg("%s", err);
    uint8_t *image;
    size_t size;
    if (!cg_cuda_image(p, &bin, opt, &image, &size, err, sizeof err)) fail_msg("%s", err);
    char *rt = cg_find_runtime(CNNC_BINARY_DIR "/runtime/libcnnc_rt.a");
    assert_non_null(rt);
    b->so = malloc(600);
    snprintf(b->so, 600, "%s/%s.so", tmpdir, tag);
    if (!cg_link_image("cnnc_gpu_image", image, size, rt, b->so, err, sizeof err))
        fail_msg("%s", err);
    snprintf(tag + strlen(tag), sizeof tag - strlen(tag), "_emu");
    b->emu = cuda_emu_build(p, tmpdir, tag);
    keep_kernels(b, p);
    if (!model_api_open(&b->api, b->so, err, sizeof err)) fail_msg("%s", err);
    assert_non_null(b->api.last_error);
    free(rt), free(image);
    cg_cuda_binary_free(&bin);
    cg_cuda_free(p);
    ir_graph_free(opt);
}

static Built models[] = {
    {.name = "mnist_cnn", .batch = 1, .math = CU_MATH_F32},
    {.name = "mnist_cnn", .batch = 2, .math = CU_MATH_F32},
    {.name = "mnist_cnn", .batch = 1, .math = CU_MATH_TF32},
    {.name = "mnist_cnn", .batch = 2, .math = CU_MATH_TF32},
    {.name = "fire_net", .batch = 0, .math = CU_MATH_F32},
    {.name = NULL, .batch = 1, .math = CU_MATH_F32}, /* --zoo NAME */
};
enum { ZOO_MODEL = 5 };

/* Built on first use: models[i]. */
static Built *model(int i)
{
    Built *b = &models[i];
    if (!b->so) build(b, strcmp(b->name, "fire_net") ? NULL : fire_text);
    return b;
}

static void free_models(void)
{
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        Built *b = &models[i];
        if (!b->so) continue;
        for (int32_t k = 0; k < b->nkernels; k++) free(b->knames[k]), free(b->kops[k]);
        free(b->knames), free(b->kops);
        dlclose(b->api.lib);
        ir_graph_free(b->g);
        free(b->so), free(b->emu);
    }
}

/* ---- instances ------------------------------------------------------------------------- */

/* An instance with host buffers for its tensors and the interpreter's outputs. */
typedef struct Inst {
    Built *b;
    cnn_model *m;
    int32_t nin, nout;
    cnn_tensor in[MAX_IO], out[MAX_IO];
    float *want[MAX_IO];
} Inst;

static cnn_status create(Built *b, uint32_t flags, cnn_model **m)
{
    setenv("CNNC_FAKECUDA_KERNELS", b->emu, 1);
    cnn_options opt;
    cnn_options_init(&opt);
    opt.flags = flags;
    return b->api.create(&opt, m);
}

static float *random_floats(size_t bytes, uint64_t seed)
{
    float *x = malloc(bytes + 4);
    Rng r = ir_rng(seed, "cuda-runtime");
    for (size_t i = 0; i < bytes / 4; i++) x[i] = (float)(2 * ir_rng_uniform(&r) - 1);
    return x;
}

/* The interpreter's outputs for the current inputs. */
static void reference(Inst *t)
{
    const float *in[MAX_IO];
    for (int32_t i = 0; i < t->nin; i++) in[i] = t->in[i].data;
    InterpResult ref;
    char err[256];
    assert_true(ir_interp(t->b->g, in, &ref, err, sizeof err));
    for (int32_t o = 0; o < t->nout; o++)
        memcpy(t->want[o], ref.values[t->b->g->outputs[o].node], t->out[o].size);
    ir_interp_free(&ref);
}

static void set_inputs(Inst *t, uint64_t seed)
{
    for (int32_t i = 0; i < t->nin; i++) {
        free(t->in[i].data);
        t->in[i].data = random_floats(t->in[i].size, seed + (uint64_t)i);
    }
    reference(t);
}

/* Tensor infos agree with the graph; buffers of their sizes. */
static void open_inst(Inst *t, Built *b, uint32_t flags)
{
    memset(t, 0, sizeof *t);
    t->b = b;
    cnn_status s = create(b, flags, &t->m);
    if (s != CNN_OK) fail_msg("create: %s: %s", b->api.status_string(s), b->api.last_error());
    t->nin = b->api.num_inputs(t->m), t->nout = b->api.num_outputs(t->m);
    assert_true(t->nin == ir_num_inputs(b->g) && t->nout == b->g->noutputs);
    assert_true(t->nin <= MAX_IO && t->nout <= MAX_IO);
    assert_int_equal(b->api.device(t->m), CNN_DEVICE_CUDA);
    assert_int_equal(b->api.num_threads(t->m), 1);
    for (int32_t i = 0; i < t->nin + t->nout; i++) {
        cnn_tensor_info info;
        bool is_in = i < t->nin;
        int32_t k = is_in ? i : i - t->nin;
        assert_int_equal(is_in ? b->api.input_info(t->m, k, &info)
                               : b->api.output_info(t->m, k, &info), CNN_OK);
        int32_t id = is_in ? ir_input_node(b->g, k) : b->g->outputs[k].node;
        assert_int_equal(info.size, ir_numel(&b->g->nodes[id].type) * 4);
        cnn_tensor *x = is_in ? &t->in[k] : &t->out[k];
        x->size = info.size;
        x->data = calloc(info.size + 4, 1);
        if (!is_in) t->want[k] = calloc(info.size + 4, 1);
    }
    set_inputs(t, 1);
}

static void close_inst(Inst *t)
{
    t->b->api.destroy(t->m);
    assert_int_equal(fake.live(), 0);
    for (int32_t i = 0; i < t->nin; i++) free(t->in[i].data);
    for (int32_t o = 0; o < t->nout; o++) free(t->out[o].data), free(t->want[o]);
}

static const char *last_error(const Built *b)
{
    const char *e = b->api.last_error();
    assert_non_null(e);
    return e;
}

static double tolerance(const Built *b)
{
    return b->math == CU_MATH_F32 ? 1e-4 : 5e-3;
}

static void check_outputs(const Inst *t)
{
    for (int32_t o = 0; o < t->nout; o++) {
        char what[128];
        snprintf(what, sizeof what, "%s batch %d %s output %d", t->b->name, (int)t->b->batch,
                 t->b->math == CU_MATH_F32 ? "f32" : "tf32", o);
        expect_within(what, t->out[o].data, t->want[o], (int64_t)(t->out[o].size / 4),
                      tolerance(t->b));
    }
}

static cnn_status run(Inst *t)
{
    for (int32_t o = 0; o < t->nout; o++) memset(t->out[o].data, 0xff, t->out[o].size);
    return t->b->api.run(t->m, t->in, t->nin, t->out, t->nout);
}

static void run_ok(Inst *t)
{
    cnn_status s = run(t);
    if (s != CNN_OK) fail_msg("run: %s: %s", t->b->api.status_string(s), t->b->api.last_error());
    check_outputs(t);
}

/* ---- outputs ---------------------------------------------------------------------------- */

/* Runs replay the captured graph; repeated runs give the same bytes; new inputs new
 * answers; destroying releases every device object. `quick`: one run (emulated TF32
 * tensor-core code is slow). */
static void check_model(Built *b, bool quick)
{
    Inst t;
    fake.reset();
    open_inst(&t, b, 0);
    assert_int_equal(fake.calls("cuStreamBeginCapture_v2"), 1);
    int launches = fake.calls("cuLaunchKernel");
    assert_int_equal(launches, b->nkernels);
    run_ok(&t);
    assert_int_equal(fake.calls("cuGraphLaunch"), 1);
    if (quick) {
        close_inst(&t);
        return;
    }
    float *first[MAX_IO];
    for (int32_t o = 0; o < t.nout; o++) {
        first[o] = malloc(t.out[o].size);
        memcpy(first[o], t.out[o].data, t.out[o].size);
    }
    run_ok(&t);
    for (int32_t o = 0; o < t.nout; o++) {
        assert_memory_equal(first[o], t.out[o].data, t.out[o].size);
        free(first[o]);
    }
    set_inputs(&t, 5);
    run_ok(&t);
    assert_int_equal(fake.calls("cuGraphLaunch"), 3);
    assert_int_equal(fake.calls("cuLaunchKernel"), launches);
    assert_int_equal(fake.calls("cuStreamBeginCapture_v2"), 1);
    close_inst(&t);
}

static void test_mnist_f32(void **state)
{
    check_model(model(0), false);
    check_model(model(1), false);
}

static void test_mnist_tf32(void **state)
{
    check_model(model(2), true);
    check_model(model(3), true);
}

/* Concats written in place, an output copied out of one with a 2D copy. */
static void test_fire_strided(void **state)
{
    fake.reset();
    check_model(model(4), false);
    assert_true(fake.calls("cuMemcpy2DAsync_v2") >= 3);
}

/* A zoo model (its name given with --zoo), batch 1, f32, one run. */
static void test_zoo(void **state)
{
    check_model(model(ZOO_MODEL), true);
}

/* Two instances running at once, each from its own thread (each pushes the context on
 * its thread), each on its own inputs. */
typedef struct Worker {
    Inst t;
    cnn_status s[3];
} Worker;

static void *worker_main(void *p)
{
    Worker *w = p;
    Inst *t = &w->t;
    for (int i = 0; i < 3; i++) w->s[i] = t->b->api.run(t->m, t->in, t->nin, t->out, t->nout);
    return NULL;
}

static void test_two_threads(void **state)
{
    Worker w[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        open_inst(&w[i].t, model(0), 0);
        set_inputs(&w[i].t, 20 + (uint64_t)i);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 3; k++) assert_int_equal(w[i].s[k], CNN_OK);
        check_outputs(&w[i].t);
    }
    w[1].t.b->api.destroy(w[1].t.m);
    w[1].t.m = NULL;
    close_inst(&w[0].t);
    close_inst(&w[1].t);
}

/* One instance, two threads, each with its own buffers: a run either gives the
 * thread's own outputs (the bytes of a run alone) or is refused with CNN_ERR_BUSY;
 * until one is refused (at most 100 runs each), plain and profiled. */
typedef struct Sharer {
    Inst t; /* t.m is the one instance */
    float *alone[MAX_IO];
    int runs, busy, wrong;
    atomic_int *busy_seen;
} Sharer;

static void *share_main(void *p)
{
    Sharer *w = p;
    Inst *t = &w->t;
    for (int i = 0; i < 100 && (i < 3 || !atomic_load(w->busy_seen)); i++) {
        cnn_status s = run(t);
        bool same = s == CNN_OK;
        for (int32_t o = 0; same && o < t->nout; o++)
            same = memcmp(t->out[o].data, w->alone[o], t->out[o].size) == 0;
        w->runs++;
        if (s == CNN_ERR_BUSY) {
            w->busy++;
            atomic_store(w->busy_seen, 1);
            nanosleep(&(struct timespec){0, 200000}, NULL);
        } else if (!same) {
            w->wrong++;
        }
    }
    return NULL;
}

static void share_round(Sharer *w)
{
    atomic_int seen = 0;
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        w[i].runs = w[i].busy = w[i].wrong = 0;
        w[i].busy_seen = &seen;
        assert_int_equal(pthread_create(&th[i], NULL, share_main, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(w[0].wrong + w[1].wrong, 0);
    assert_true(w[0].busy + w[1].busy > 0);
    assert_true(w[0].busy + w[1].busy < w[0].runs + w[1].runs);
}

static void test_one_instance_two_threads(void **state)
{
    Sharer w[2];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 2; i++) open_inst(&w[i].t, model(0), 0);
    w[1].t.b->api.destroy(w[1].t.m);
    w[1].t.m = w[0].t.m;
    set_inputs(&w[1].t, 30);
    for (int i = 0; i < 2; i++) {
        run_ok(&w[i].t);
        for (int32_t o = 0; o < w[i].t.nout; o++) {
            w[i].alone[o] = malloc(w[i].t.out[o].size);
            memcpy(w[i].alone[o], w[i].t.out[o].data, w[i].t.out[o].size);
        }
    }
    share_round(w);
    assert_int_equal(w[0].t.b->api.set_profiling(w[0].t.m, 1), CNN_OK);
    share_round(w);
    w[1].t.m = NULL;
    close_inst(&w[0].t);
    close_inst(&w[1].t);
    for (int i = 0; i < 2; i++)
        for (int32_t o = 0; o < w[i].t.nout; o++) free(w[i].alone[o]);
}

/* ---- profiling ---------------------------------------------------------------------------- */

static void test_profiling(void **state)
{
    Built *b = model(0);
    Inst t;
    open_inst(&t, b, 0);
    assert_int_equal(b->api.verify(t.m), CNN_ERR_INVALID_ARGUMENT); /* no checksum on a GPU */
    assert_non_null(strstr(last_error(b), "CUDA models carry no checksum"));
    assert_int_equal(b->api.num_kernels(t.m), b->nkernels);
    assert_int_equal(b->api.set_profiling(t.m, 1), CNN_OK);
    fake.reset();
    run_ok(&t);
    run_ok(&t);
    assert_int_equal(fake.calls("cuGraphLaunch"), 0);
    assert_int_equal(fake.calls("cuLaunchKernel"), 2 * b->nkernels);
    assert_int_equal(fake.calls("cuEventRecord"), 2 * (b->nkernels + 1));
    for (int32_t k = 0; k < b->nkernels; k++) {
        cnn_kernel_info info;
        assert_int_equal(b->api.kernel_info(t.m, k, &info), CNN_OK);
        assert_string_equal(info.name, b->knames[k]);
        assert_string_equal(info.op, b->kops[k]);
        assert_int_equal(info.calls, 2);
        assert_true(info.seconds > 0 && info.seconds < 60);
        assert_true(info.flops > 0);
    }
    assert_int_equal(b->api.set_profiling(t.m, 0), CNN_OK);
    run_ok(&t);
    assert_int_equal(fake.calls("cuGraphLaunch"), 1);
    cnn_kernel_info info;
    assert_int_equal(b->api.kernel_info(t.m, 0, &info), CNN_OK);
    assert_int_equal(info.calls, 2);
    close_inst(&t);
}

/* ---- device pointers ---------------------------------------------------------------------- */

typedef struct DevBufs {
    DevPtr in[MAX_IO], out[MAX_IO];
} DevBufs;

static void dev_alloc(const Inst *t, DevBufs *d)
{
    for (int32_t i = 0; i < t->nin; i++) assert_int_equal(fake.alloc(&d->in[i], t->in[i].size), 0);
    for (int32_t o = 0; o < t->nout; o++)
        assert_int_equal(fake.alloc(&d->out[o], t->out[o].size), 0);
}

/* A run on device buffers d. */
static cnn_status dev_run_only(Inst *t, const DevBufs *d)
{
    cnn_tensor in[MAX_IO], out[MAX_IO];
    for (int32_t i = 0; i < t->nin; i++)
        in[i] = (cnn_tensor){(void *)(uintptr_t)d->in[i], t->in[i].size};
    for (int32_t o = 0; o < t->nout; o++)
        out[o] = (cnn_tensor){(void *)(uintptr_t)d->out[o], t->out[o].size};
    return t->b->api.run(t->m, in, t->nin, out, t->nout);
}

/* Inputs up, a run on device buffers d, outputs down. */
static void dev_run(Inst *t, const DevBufs *d)
{
    for (int32_t i = 0; i < t->nin; i++)
        assert_int_equal(fake.htod(d->in[i], t->in[i].data, t->in[i].size), 0);
    cnn_status s = dev_run_only(t, d);
    if (s != CNN_OK) fail_msg("run: %s", t->b->api.last_error());
    for (int32_t o = 0; o < t->nout; o++)
        assert_int_equal(fake.dtoh(t->out[o].data, d->out[o], t->out[o].size, NULL), 0);
    check_outputs(t);
}

/* The caller's device buffers, two sets in turn: the graph is captured again only when
 * they change. */
static void check_device_pointers(Built *b)
{
    void *ctx;
    assert_int_equal(fake.init(0), 0);
    assert_int_equal(fake.retain(&ctx, 0), 0);
    assert_int_equal(fake.push(ctx), 0);
    Inst t;
    open_inst(&t, b, CNN_DEVICE_POINTERS);
    DevBufs d[2];
    dev_alloc(&t, &d[0]);
    dev_alloc(&t, &d[1]);
    fake.reset();
    dev_run(&t, &d[0]);
    dev_run(&t, &d[0]);
    assert_int_equal(fake.calls("cuStreamBeginCapture_v2"), 1);
    set_inputs(&t, 9);
    dev_run(&t, &d[1]);
    assert_int_equal(fake.calls("cuStreamBeginCapture_v2"), 2);
    set_inputs(&t, 10);
    dev_run(&t, &d[0]);
    assert_int_equal(fake.calls("cuStreamBeginCapture_v2"), 3);
    assert_int_equal(fake.calls("cuGraphLaunch"), 4);
    DevBufs host = d[0]; /* host memory as an input: the fake faults the first kernel */
    host.in[0] = (DevPtr)(uintptr_t)t.in[0].data;
    assert_int_equal(dev_run_only(&t, &host), CNN_ERR_DEVICE);
    assert_non_null(strstr(last_error(b), "CUDA_ERROR_ILLEGAL_ADDRESS"));
    assert_int_equal(b->api.set_profiling(t.m, 1), CNN_OK);
    dev_run(&t, &d[1]);
    b->api.destroy(t.m);
    for (int k = 0; k < 2; k++)
        for (int32_t i = 0; i < MAX_IO; i++) {
            if (i < t.nin) assert_int_equal(fake.free(d[k].in[i]), 0);
            if (i < t.nout) assert_int_equal(fake.free(d[k].out[i]), 0);
        }
    assert_int_equal(fake.pop(NULL), 0);
    assert_int_equal(fake.release(0), 0);
    t.m = NULL;
    close_inst(&t);
}

static void test_device_pointers(void **state)
{
    check_device_pointers(model(1));
    check_device_pointers(model(4));
}
/* ---- failures ------------------------------------------------------------------------------ */

/* create fails with `want` and words of its own, and leaves nothing on the device. */
static void expect_create_error(Built *b, const cnn_options *opt, cnn_status want,
                                const char *words)
{
    cnn_model *m = (cnn_model *)b;
    cnn_status s = b->api.create(opt, &m);
    if (s != want || !strstr(last_error(b), words))
        fail_msg("create: %s (%s), expected %s naming '%s'", b->api.status_string(s),
                 last_error(b), b->api.status_string(want), words);
    assert_null(m);
    assert_int_equal(fake.live(), 0);
}

static void expect_injected(Built *b, const char *entry, cnn_status want, const char *words)
{
    cnn_options opt;
    cnn_options_init(&opt);
    fake.inject(entry, 1);
    expect_create_error(b, &opt, want, words);
}

/* Options the model cannot meet, devices it cannot run on, and driver failures. */
static void test_create_errors(void **state)
{
    Built *b = model(0);
    setenv("CNNC_FAKECUDA_KERNELS", b->emu, 1);
    cnn_options opt;
    cnn_options_init(&opt);
    opt.device = CNN_DEVICE_CPU;
    expect_create_error(b, &opt, CNN_ERR_DEVICE, "CPU");
    cnn_options_init(&opt);
    opt.device_index = 1;
    expect_create_error(b, &opt, CNN_ERR_DEVICE, "CUDA device 1");
    opt.device_index = -1;
    expect_create_error(b, &opt, CNN_ERR_INVALID_ARGUMENT, "device_index -1 is negative");
    cnn_options_init(&opt);
    opt.num_threads = -2;
    expect_create_error(b, &opt, CNN_ERR_INVALID_ARGUMENT, "num_threads -2 is negative");
    cnn_options_init(&opt);
    opt.flags = 8;
    expect_create_error(b, &opt, CNN_ERR_INVALID_ARGUMENT, "unknown flags 0x8");
    cnn_options_init(&opt);
    opt.api_version = 1;
    expect_create_error(b, &opt, CNN_ERR_VERSION, "options of API version 1");
    setenv("CNNC_FAKECUDA_CC", "7.5", 1);
    expect_create_error(b, NULL, CNN_ERR_DEVICE, "sm_80");
    unsetenv("CNNC_FAKECUDA_CC");
    expect_injected(b, "cuInit", CNN_ERR_DEVICE, "cuInit: CUDA_ERROR_NO_DEVICE");
    expect_injected(b, "cuMemAlloc_v2", CNN_ERR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY");
    expect_injected(b, "cuDevicePrimaryCtxRetain", CNN_ERR_DEVICE, "CUDA_ERROR_UNKNOWN");
    unsetenv("CNNC_FAKECUDA_KERNELS"); /* the module then has no kernels */
    expect_create_error(b, NULL, CNN_ERR_DEVICE, "CUDA_ERROR_NOT_FOUND");
}

/* The cubin is for sm_80: 8.6 loads it, 9.0 and a cubin the driver refuses take the PTX. */
static void test_code_choice(void **state)
{
    Built *b = model(0);
    const char *cc[] = {"8.6", "9.0", "8.0"};
    int loads[] = {1, 1, 2};
    for (int i = 0; i < 3; i++) {
        setenv("CNNC_FAKECUDA_CC", cc[i], 1);
        fake.reset();
        if (i == 2) fake.inject("cuModuleLoadDataEx", 1);
        Inst t;
        open_inst(&t, b, 0);
        assert_int_equal(fake.calls("cuModuleLoadDataEx"), loads[i]);
        run_ok(&t);
        close_inst(&t);
    }
    unsetenv("CNNC_FAKECUDA_CC");
}

/* Wrong sizes are refused before the device is touched; a failed launch is reported and
 * the next run works. */
static void test_run_errors(void **state)
{
    Built *b = model(0);
    Inst t;
    open_inst(&t, b, 0);
    t.in[0].size -= 4;
    assert_int_equal(run(&t), CNN_ERR_SIZE_MISMATCH);
    t.in[0].size += 4, t.out[0].size += 4;
    assert_int_equal(run(&t), CNN_ERR_SIZE_MISMATCH);
    t.out[0].size -= 4;
    fake.inject("cuGraphLaunch", 1);
    assert_int_equal(run(&t), CNN_ERR_DEVICE);
    assert_non_null(strstr(last_error(b), "cuGraphLaunch: CUDA_ERROR_LAUNCH_FAILED"));
    run_ok(&t);
    assert_int_equal(b->api.set_profiling(t.m, 1), CNN_OK);
    fake.inject("cuLaunchKernel", 2);
    assert_int_equal(run(&t), CNN_ERR_DEVICE);
    assert_non_null(strstr(last_error(b), "cuLaunchKernel: CUDA_ERROR_LAUNCH_FAILED"));
    run_ok(&t);
    close_inst(&t);
}

static const char *const entry_points[] = {
    "cuInit", "cuDriverGetVersion", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetAttribute",
    "cuDeviceGetName", "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2",
    "cuCtxPushCurrent_v2", "cuCtxPopCurrent_v2", "cuModuleLoadDataEx", "cuModuleGetFunction",
    "cuModuleUnload", "cuMemAlloc_v2", "cuMemFree_v2", "cuMemcpyHtoD_v2",
    "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoDAsync_v2",
    "cuMemcpy2DAsync_v2", "cuMemsetD8_v2", "cuStreamCreate", "cuStreamDestroy_v2",
    "cuStreamSynchronize", "cuStreamBeginCapture_v2", "cuStreamEndCapture",
    "cuGraphInstantiateWithFlags", "cuGraphLaunch", "cuGraphExecDestroy", "cuGraphDestroy",
    "cuLaunchKernel", "cuEventCreate", "cuEventRecord", "cuEventSynchronize",
    "cuEventElapsedTime_v2", "cuEventDestroy_v2", "cuGetErrorName", "cuGetErrorString",
};
enum { NENTRIES = sizeof entry_points / sizeof entry_points[0] };

/* Failures the runtime may survive: a refused cubin (the PTX is loaded instead) and a
 * context that cannot be popped. */
static bool survivable(const char *entry)
{
    return !strcmp(entry, "cuModuleLoadDataEx") || !strcmp(entry, "cuCtxPopCurrent_v2");
}

static void count_calls(int *calls)
{
    for (int i = 0; i < NENTRIES; i++) calls[i] = fake.calls(entry_points[i]);
}

static void create_failing(Built *b, const char *entry, int k)
{
    fake.reset();
    fake.inject(entry, k);
    Inst t;
    cnn_model *m = NULL;
    cnn_status s = create(b, 0, &m);
    if (s == CNN_OK) {
        if (!survivable(entry)) fail_msg("create succeeded with call %d of %s failing", k, entry);
        b->api.destroy(m);
        assert_int_equal(fake.live(), 0);
        open_inst(&t, b, 0); /* and the instance works */
        run_ok(&t);
        close_inst(&t);
        return;
    }
    cnn_status want = strcmp(entry, "cuMemAlloc_v2") ? CNN_ERR_DEVICE : CNN_ERR_OUT_OF_MEMORY;
    if (s != want || !*last_error(b))
        fail_msg("call %d of %s failing: create said %s (%s)", k, entry,
                 b->api.status_string(s), last_error(b));
    if (fake.live() != 0) fail_msg("call %d of %s failing: %d device objects left", k, entry,
                                   fake.live());
}

/* Each driver call that creation makes, failing in turn. */
static void test_create_failures(void **state)
{
    Built *b = model(0);
    int calls[NENTRIES], tried = 0;
    cnn_model *m;
    fake.reset();
    assert_int_equal(create(b, 0, &m), CNN_OK);
    count_calls(calls);
    b->api.destroy(m);
    for (int i = 0; i < NENTRIES; i++)
        for (int k = 1; k <= calls[i]; k++, tried++) create_failing(b, entry_points[i], k);
    assert_true(tried >= 2 * b->nkernels);
}

/* Each driver call of a run failing in turn (the first and the last call of each entry
 * point): the run reports it (or survives it) and the next run is right. */
static void run_failures(Inst *t)
{
    int calls[NENTRIES];
    run_ok(t); /* the first run may make what later ones reuse */
    fake.reset();
    run_ok(t);
    count_calls(calls);
    for (int i = 0; i < NENTRIES; i++)
        for (int k = 1; k <= calls[i]; k = k < calls[i] ? calls[i] : k + 1) {
            fake.reset();
            fake.inject(entry_points[i], k);
            cnn_status s = run(t);
            if (s == CNN_OK && !survivable(entry_points[i]))
                fail_msg("a run succeeded with call %d of %s failing", k, entry_points[i]);
            if (s != CNN_OK && s != CNN_ERR_DEVICE)
                fail_msg("call %d of %s failing: run said %s", k, entry_points[i],
                         t->b->api.status_string(s));
            run_ok(t);
        }
}

static void test_run_failures(void **state)
{
    Built *b = model(0);
    Inst t;
    open_inst(&t, b, 0);
    run_failures(&t);
    assert_int_equal(b->api.set_profiling(t.m, 1), CNN_OK);
    run_failures(&t);
    close_inst(&t);
}

/* The events profiling makes at its first run: when one cannot be made, that run fails
 * and the next one tries again. */
static void test_profiling_events_failure(void **state)
{
    Built *b = model(0);
    Inst t;
    open_inst(&t, b, 0);
    assert_int_equal(b->api.set_profiling(t.m, 1), CNN_OK);
    fake.inject("cuEventCreate", 3);
    assert_int_equal(run(&t), CNN_ERR_DEVICE);
    assert_non_null(strstr(last_error(b), "cuEventCreate"));
    run_ok(&t);
    close_inst(&t);
}

/* A process that finds no libcuda.so.1: the model says so. */
static int no_driver(const char *so)
{
    void *real = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (real) {
        fprintf(stderr, "a CUDA driver is installed here: not checked without one\n");
        return 77;
    }
    ModelApi api;
    char err[512];
    if (!model_api_open(&api, so, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    cnn_model *m = (cnn_model *)&api;
    cnn_status s = api.create(NULL, &m);
    const char *why = api.last_error();
    fprintf(stderr, "without a driver: %s: %s\n", api.status_string(s), why);
    return s == CNN_ERR_DEVICE && !m && strstr(why, "libcuda.so.1") ? 0 : 1;
}

static void test_no_driver(void **state)
{
    Built *b = model(0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsetenv("LD_LIBRARY_PATH");
        execl("/proc/self/exe", "test_cuda_runtime", "--no-driver", b->so, (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) skip();
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int setup(void **state)
{
    if (cuda_emu_mkdtemp(tmpdir, sizeof tmpdir, "cuda-runtime")) return -1;
    fake_open();
    return 0;
}

static int teardown(void **state)
{
    free_models();
    return cuda_emu_rmdir(tmpdir);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--no-driver")) return no_driver(argv[2]);
    if (!cg_cuda_have_nvrtc()) {
        fprintf(stderr, "skipped: this cnnc was built without NVRTC\n");
        return 77;
    }
    if (argc == 3 && !strcmp(argv[1], "--zoo")) {
        models[ZOO_MODEL].name = argv[2];
        const struct CMUnitTest zoo[] = {cmocka_unit_test(test_zoo)};
        return cmocka_run_group_tests(zoo, setup, teardown);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mnist_f32),      cmocka_unit_test(test_mnist_tf32),
        cmocka_unit_test(test_fire_strided),   cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_one_instance_two_threads),
        cmocka_unit_test(test_profiling),
        cmocka_unit_test(test_device_pointers), cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_code_choice),    cmocka_unit_test(test_run_errors),
        cmocka_unit_test(test_create_failures), cmocka_unit_test(test_run_failures),
        cmocka_unit_test(test_profiling_events_failure), cmocka_unit_test(test_no_driver),
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
