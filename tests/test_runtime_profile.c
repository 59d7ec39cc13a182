/* test_runtime_profile.c: per-kernel profiling. rt_run_kernel's counters on a bare pool,
 * instances over an in-process model description (rt_model_create), and the
 * kernel table cnnc emits for compiled models: names, ops, exact flops, calls. */
#include "codegen_harness.h"

#include <pthread.h>
#include <time.h>

#include "rt.h"

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* ---- rt_run_kernel on a pool ------------------------------------------------ */

#define SPIN_NS 200000

typedef struct Spin {
    int64_t items, calls; /* items done, fn calls: only on the calling thread if n == 1 */
    pthread_t caller;
    int on_caller;
} Spin;

/* Every call busy-waits SPIN_NS, so a timed kernel call takes at least that. */
static void spin_kernel(void *p, int64_t begin, int64_t end, void *scratch)
{
    (void)scratch;
    Spin *s = p;
    int64_t t0 = now_ns();
    while (now_ns() - t0 < SPIN_NS) {
    }
    __atomic_add_fetch(&s->items, end - begin, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->calls, 1, __ATOMIC_RELAXED);
    if (pthread_equal(pthread_self(), s->caller) && begin == 0 && end == 1)
        s->on_caller = 1;
}

static void test_run_kernel_counters(void **state)
{
    (void)state;
    RtPool *pool = rt_pool_new(2);
    assert_non_null(pool);
    RtCounter c[2] = {{7, 7}, {7, 7}};
    Spin s = {0, 0, pthread_self(), 0};
    rt_run_kernel(pool, 0, 10, spin_kernel, &s); /* profiling off: not counted */
    assert_int_equal(s.items, 10);
    memset(c, 0, sizeof c);
    rt_pool_set_counters(pool, c, 2);
    int64_t t0 = now_ns();
    for (int i = 0; i < 3; i++)
        rt_run_kernel(pool, 0, 10, spin_kernel, &s);
    rt_run_kernel(pool, 1, 1, spin_kernel, &s);
    int64_t wall = now_ns() - t0;
    rt_run_kernel(pool, 2, 4, spin_kernel, &s); /* no counter for kernel 2 */
    rt_pool_set_counters(pool, NULL, 0);
    rt_run_kernel(pool, 1, 1, spin_kernel, &s);
    assert_int_equal(s.items, 10 + 30 + 1 + 4 + 1);
    assert_true(s.on_caller);
    assert_int_equal(c[0].calls, 3);
    assert_int_equal(c[1].calls, 1);
    /* Each call lasts at least one spin and the sum never exceeds the wall time. */
    assert_true(c[0].ns >= 3 * SPIN_NS && c[1].ns >= SPIN_NS);
    assert_true(c[0].ns + c[1].ns <= wall);
    rt_pool_free(pool);
}

/* ---- rt_model_create over a description built in this process ---------------- */

/* Writes 1..64 into the arena (two kernels), copies it to the output. */
static void fill_kernel(void *p, int64_t begin, int64_t end, void *scratch)
{
    (void)scratch;
    float *a = p;
    for (int64_t i = begin; i < end; i++)
        a[i] = (float)(i + 1);
}

static void run_desc(RtPool *pool, char *arena, const float *const *in, float *const *out)
{
    (void)in;
    rt_run_kernel(pool, 0, 32, fill_kernel, arena);
    rt_run_kernel(pool, 1, 1, fill_kernel, (float *)arena + 32);
    memcpy(out[0], arena, 33 * sizeof(float));
}

static const RtTensor desc_out[] = {{"y", 1, 0, {33}}};
static const RtKernelInfo desc_kernels[] = {{"fill", "copy", 32, 32}, {"last", NULL, 1, 1}};

static RtModel desc_model(void)
{
    return (RtModel){RT_ABI_VERSION, 0, 1, 0, NULL, desc_out, 256, run_desc, 2, 0, desc_kernels,
                     NULL, 0, 0, 0};
}

static void test_model_create(void **state)
{
    (void)state;
    RtModel d = desc_model();
    cnn_options opt;
    cnn_options_init(&opt);
    opt.num_threads = 2;
    cnn_model *m = NULL;
    assert_int_equal(rt_model_create(&d, &opt, &m), CNN_OK);
    char *arena = rt_model_arena(m);
    assert_non_null(arena);
    assert_int_equal((uintptr_t)arena % 64, 0);
    float y[33];
    cnn_tensor out = {y, sizeof y};
    assert_int_equal(cnn_model_run(m, NULL, 0, &out, 1), CNN_OK);
    for (int i = 0; i < 32; i++)
        assert_true(y[i] == (float)(i + 1) && ((float *)arena)[i] == (float)(i + 1));
    assert_true(y[32] == 1.0f);
    assert_int_equal(cnn_model_num_kernels(m), 2);
    cnn_kernel_info k;
    assert_int_equal(cnn_model_kernel_info(m, 1, &k), CNN_OK);
    assert_string_equal(k.name, "last");
    assert_string_equal(k.op, ""); /* a NULL op reads as empty */
    assert_int_equal(cnn_model_set_profiling(m, 1), CNN_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(cnn_model_run(m, NULL, 0, &out, 1), CNN_OK);
    assert_int_equal(cnn_model_kernel_info(m, 0, &k), CNN_OK);
    assert_string_equal(k.name, "fill");
    assert_string_equal(k.op, "copy");
    assert_int_equal(k.flops, 32);
    assert_int_equal(k.calls, 4);
    assert_true(k.seconds > 0 && k.seconds < 10);
    cnn_model_destroy(m);
    assert_null(rt_model_arena(NULL));
}

static void test_model_create_errors(void **state)
{
    (void)state;
    cnn_model *m = (cnn_model *)state;
    assert_int_equal(rt_model_create(NULL, NULL, &m), CNN_ERR_INVALID_ARGUMENT);
    assert_null(m);
    RtModel d = desc_model();
    d.kernels = NULL;
    assert_int_equal(rt_model_create(&d, NULL, &m), CNN_ERR_INVALID_ARGUMENT);
    d = desc_model();
    d.nkernels = -1;
    assert_int_equal(rt_model_create(&d, NULL, &m), CNN_ERR_INVALID_ARGUMENT);
    d = desc_model();
    d.scratch_bytes = -1;
    assert_int_equal(rt_model_create(&d, NULL, &m), CNN_ERR_INVALID_ARGUMENT);
    d.scratch_bytes = INT64_MAX; /* more than any machine has */
    assert_int_equal(rt_model_create(&d, NULL, &m), CNN_ERR_OUT_OF_MEMORY);
    assert_null(m);
    d = desc_model();
    d.abi_version = 1;
    assert_int_equal(rt_model_create(&d, NULL, &m), CNN_ERR_VERSION);
    assert_null(m);
    /* No kernels at all is a valid model; profiling it is a no-op. */
    d = desc_model();
    d.nkernels = 0;
    d.kernels = NULL;
    assert_int_equal(rt_model_create(&d, NULL, &m), CNN_OK);
    assert_int_equal(cnn_model_set_profiling(m, 1), CNN_OK);
    float y[33];
    cnn_tensor out = {y, sizeof y};
    assert_int_equal(cnn_model_run(m, NULL, 0, &out, 1), CNN_OK);
    assert_int_equal(cnn_model_num_kernels(m), 0);
    cnn_kernel_info k;
    assert_int_equal(cnn_model_kernel_info(m, 0, &k), CNN_ERR_INVALID_ARGUMENT);
    cnn_model_destroy(m);
}

/* ---- the kernel table of compiled models ------------------------------------ */

typedef struct Expect {
    const char *name, *op;
    int64_t flops;
} Expect;

/* Runs instance `m` `runs` times on seeded inputs; returns the wall time. */
static double run_n(const Api *a, cnn_model *m, int runs)
{
    int32_t ni = a->num_inputs(m), no = a->num_outputs(m);
    cnn_tensor in[4], out[4];
    assert_true(ni <= 4 && no <= 4);
    for (int32_t i = 0; i < ni; i++) {
        cnn_tensor_info info;
        assert_int_equal(a->input_info(m, i, &info), CNN_OK);
        in[i] = (cnn_tensor){seeded_input(&info, 0), info.size};
    }
    for (int32_t k = 0; k < no; k++) {
        cnn_tensor_info info;
        assert_int_equal(a->output_info(m, k, &info), CNN_OK);
        out[k] = (cnn_tensor){ir_xmalloc(info.size), info.size};
    }
    int64_t t0 = now_ns();
    for (int r = 0; r < runs; r++)
        assert_int_equal(a->run(m, in, ni, out, no), CNN_OK);
    double wall = (double)(now_ns() - t0) * 1e-9;
    for (int32_t i = 0; i < ni; i++)
        free(in[i].data);
    for (int32_t k = 0; k < no; k++)
        free(out[k].data);
    return wall;
}

static cnn_model *create_with(const Api *a, int32_t threads)
{
    cnn_options opt;
    a->options_init(&opt);
    opt.num_threads = threads;
    cnn_model *m = NULL;
    assert_int_equal(a->create(&opt, &m), CNN_OK);
    return m;
}

/* Grouped convolution with a residual, pool, dense, softmax; plain layouts so
 * no reorder kernels appear. Flops: 2 per multiply-add, groups honoured. */
static const char prof_text[] =
    "network prof(x: f32[N=2, 8, 10, 10]) {\n"
    "  a = relu(conv2d(x, 16, kernel=3, pad=1) as c1)\n"
    "  b = relu(conv2d(a, 16, kernel=3, pad=1, groups=4, bias=false) as c2 + a)\n"
    "  d = maxpool(b, kernel=2)\n"
    "  return softmax(dense(flatten(d), 10) as fc)\n"
    "}\n";

static const Expect prof_table[] = {
    {"c1", "conv2d+bias+relu", 2LL * 2 * 16 * 10 * 10 * 8 * 3 * 3},
    {"c2", "conv2d+add+relu", 2LL * 2 * 16 * 10 * 10 * (16 / 4) * 3 * 3},
    {"maxpool_0", "maxpool", 2 * 16 * 5 * 5},
    {"fc", "dense+bias", 2LL * 2 * 10 * 400},
    {"softmax_0", "softmax", 2 * 10},
};

static void test_table_small(void **state)
{
    (void)state;
    char *so = build_so("prof", prof_text, &(Build){.block = 0, .opt = 2});
    Api a = open_so(so);
    cnn_model *m = create_with(&a, 2);
    int32_t n = (int32_t)(sizeof prof_table / sizeof prof_table[0]);
    assert_int_equal(a.num_kernels(m), n);
    assert_int_equal(a.set_profiling(m, 1), CNN_OK);
    double wall = run_n(&a, m, 3), sum = 0;
    for (int32_t i = 0; i < n; i++) {
        cnn_kernel_info k;
        assert_int_equal(a.kernel_info(m, i, &k), CNN_OK);
        assert_string_equal(k.name, prof_table[i].name);
        assert_string_equal(k.op, prof_table[i].op);
        assert_int_equal(k.flops, prof_table[i].flops);
        assert_int_equal(k.calls, 3);
        assert_true(k.seconds > 0);
        sum += k.seconds;
    }
    assert_true(sum <= wall);
    a.destroy(m);
    dlclose(a.lib);
    remove(so);
    free(so);
}

static const Expect mnist_kernels[] = {
    {"conv1", "conv2d+bias+relu", 2LL * 32 * 26 * 26 * 1 * 3 * 3},
    /* a 3×3 stride-1 conv of blocked values: Winograd where the cost model chooses it */
    {"conv2", "conv2d+bias+relu", 2LL * 64 * 24 * 24 * 32 * 3 * 3},
    {"maxpool_0", "maxpool", 64 * 12 * 12},
    {"fc1", "dense+bias+relu", 2LL * 128 * 9216},
    {"fc2", "dense+bias", 2LL * 10 * 128},
};

static int32_t find_kernel(const Api *a, cnn_model *m, const char *name, cnn_kernel_info *k)
{
    for (int32_t i = 0; i < a->num_kernels(m); i++) {
        assert_int_equal(a->kernel_info(m, i, k), CNN_OK);
        if (!strcmp(k->name, name))
            return i;
    }
    fail_msg("no kernel '%s'", name);
    return -1;
}

/* The zoo's mnist_cnn in the layouts of the host: the layers in execution
 * order among the layout reorders (which count no flops). */
static void test_table_mnist(void **state)
{
    (void)state;
    char *so = build_so("mnist_cnn", NULL, &(Build){.block = -1, .opt = 2});
    Api a = open_so(so);
    cnn_model *m = create_with(&a, 2);
    run_n(&a, m, 1);
    assert_int_equal(a.set_profiling(m, 1), CNN_OK);
    run_n(&a, m, 4);
    int32_t last = -1, n = (int32_t)(sizeof mnist_kernels / sizeof mnist_kernels[0]);
    cnn_kernel_info k;
    for (int32_t i = 0; i < n; i++) {
        int32_t at = find_kernel(&a, m, mnist_kernels[i].name, &k);
        assert_true(at > last);
        last = at;
        const char *op = mnist_kernels[i].op;
        size_t wl = !strncmp(k.op, "conv2d.winograd+", 16)    ? 16
                    : !strncmp(k.op, "conv2d.winograd2+", 17) ? 17
                                                              : 0;
        if (wl && !strncmp(op, "conv2d+", 7))
            assert_string_equal(k.op + wl, op + 7);
        else
            assert_string_equal(k.op, op);
        assert_int_equal(k.flops, mnist_kernels[i].flops);
        assert_int_equal(k.calls, 4);
        assert_true(k.seconds > 0);
    }
    for (int32_t i = 0; i < a.num_kernels(m); i++) {
        assert_int_equal(a.kernel_info(m, i, &k), CNN_OK);
        if (!strcmp(k.op, "reorder"))
            assert_int_equal(k.flops, 0);
    }
    a.destroy(m);
    dlclose(a.lib);
    remove(so);
    free(so);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_kernel_counters),
        cmocka_unit_test(test_model_create),
        cmocka_unit_test(test_model_create_errors),
        cmocka_unit_test(test_table_small),
        cmocka_unit_test(test_table_mnist),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
