/* test_api.c: the public API of a model.so (include/cnnc/model.h), through a
 * hand-written model (tests/runtime/fake_model.c) loaded with dlopen as a user
 * would: results, info calls, profiling, every error status, concurrent
 * instances, and one instance called from two threads at once. */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cnnc/model.h"
#include "model_api.h"

typedef ModelApi Api;

/* Every function of the API, the profiling and device ones included, must resolve. */
static Api load(const char *path)
{
    Api a;
    char err[1024];
    if (!model_api_open(&a, path, err, sizeof err)) fail_msg("%s", err);
    assert_non_null(a.set_profiling);
    assert_non_null(a.num_kernels);
    assert_non_null(a.kernel_info);
    assert_non_null(a.device);
    assert_non_null(a.last_error);
    assert_non_null(a.verify);
    return a;
}

static int setup(void **state)
{
    static Api api;
    api = load(FAKE_MODEL_SO);
    *state = &api;
    return 0;
}

static int teardown(void **state)
{
    Api *api = *state;
    dlclose(api->lib);
    return 0;
}

/* Buffers of the fake model: x [2,3,4], y [2,5] -> x+1, 2y, meta[2]. */
typedef struct Bufs {
    float x[24], y[10], x1[24], y2[10], meta[2];
    cnn_tensor in[2], out[3];
} Bufs;

static void bufs_init(Bufs *b, float base)
{
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 24; i++)
        b->x[i] = base + (float)i * 0.5f;
    for (int i = 0; i < 10; i++)
        b->y[i] = base - (float)i;
    b->in[0] = (cnn_tensor){b->x, sizeof b->x};
    b->in[1] = (cnn_tensor){b->y, sizeof b->y};
    b->out[0] = (cnn_tensor){b->x1, sizeof b->x1};
    b->out[1] = (cnn_tensor){b->y2, sizeof b->y2};
    b->out[2] = (cnn_tensor){b->meta, sizeof b->meta};
}

static int bufs_ok(const Bufs *b, int32_t threads)
{
    for (int i = 0; i < 24; i++)
        if (b->x1[i] != b->x[i] + 1.0f)
            return 0;
    for (int i = 0; i < 10; i++)
        if (b->y2[i] != b->y[i] * 2.0f)
            return 0;
    return b->meta[0] == (float)threads && b->meta[1] == 1.0f;
}

static cnn_model *create(const Api *api, int32_t threads)
{
    cnn_options opt;
    api->options_init(&opt);
    opt.num_threads = threads;
    cnn_model *m = NULL;
    assert_int_equal(api->create(&opt, &m), CNN_OK);
    assert_non_null(m);
    return m;
}

static void test_run(void **state)
{
    const Api *api = *state;
    cnn_model *m = create(api, 3);
    assert_int_equal(api->num_threads(m), 3);
    Bufs b;
    for (int rep = 0; rep < 5; rep++) {
        bufs_init(&b, (float)rep - 7.25f);
        assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_OK);
        assert_true(bufs_ok(&b, 3));
    }
    api->destroy(m);
    api->destroy(NULL);
}

/* Only the public API is exported: the runtime and the model stay private to
 * each model.so, so several can be loaded into one process. */
static void test_exports(void **state)
{
    const Api *api = *state;
    assert_null(dlsym(api->lib, "cnnc_model"));
    assert_null(dlsym(api->lib, "rt_parallel_for"));
    assert_null(dlsym(api->lib, "rt_pool_new"));
    assert_null(dlsym(api->lib, "rt_run_kernel"));
    assert_null(dlsym(api->lib, "rt_model_create"));
    assert_null(dlsym(api->lib, "cnn_options_init")); /* inline in the header */
}

static void test_default_threads(void **state)
{
    const Api *api = *state;
    cnn_model *m = NULL;
    assert_int_equal(api->create(NULL, &m), CNN_OK);
    int32_t n = api->num_threads(m);
    assert_true(n >= 1 && n <= 64);
    Bufs b;
    bufs_init(&b, 3.0f);
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_OK);
    assert_true(bufs_ok(&b, n));
    api->destroy(m);
    m = create(api, 1);
    assert_int_equal(api->num_threads(m), 1);
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_OK);
    assert_true(bufs_ok(&b, 1));
    api->destroy(m);
}

static void check_info(const cnn_tensor_info *t, const char *name, int32_t rank,
                       const int64_t *dims, size_t size)
{
    assert_string_equal(t->name, name);
    assert_int_equal(t->dtype, CNN_F32);
    assert_int_equal(t->rank, rank);
    for (int32_t i = 0; i < rank; i++)
        assert_int_equal(t->dims[i], dims[i]);
    assert_int_equal(t->size, size);
}

static void test_info(void **state)
{
    const Api *api = *state;
    cnn_model *m = create(api, 2);
    cnn_tensor_info t;
    assert_int_equal(api->num_inputs(m), 2);
    assert_int_equal(api->num_outputs(m), 3);
    assert_int_equal(api->input_info(m, 0, &t), CNN_OK);
    check_info(&t, "x", 3, (const int64_t[]){2, 3, 4}, 96);
    assert_int_equal(api->input_info(m, 1, &t), CNN_OK);
    check_info(&t, "y", 2, (const int64_t[]){2, 5}, 40);
    assert_int_equal(api->output_info(m, 0, &t), CNN_OK);
    check_info(&t, "x_plus_one", 3, (const int64_t[]){2, 3, 4}, 96);
    assert_int_equal(api->output_info(m, 2, &t), CNN_OK);
    check_info(&t, "meta", 1, (const int64_t[]){2}, 8);

    assert_int_equal(api->num_inputs(NULL), -1);
    assert_int_equal(api->num_outputs(NULL), -1);
    assert_int_equal(api->num_threads(NULL), -1);
    assert_int_equal(api->input_info(NULL, 0, &t), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->input_info(m, 0, NULL), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->input_info(m, -1, &t), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->input_info(m, 2, &t), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->output_info(NULL, 0, &t), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->output_info(m, 0, NULL), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->output_info(m, -1, &t), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->output_info(m, 3, &t), CNN_ERR_INVALID_ARGUMENT);
    api->destroy(m);
}

static void test_run_bad_arguments(void **state)
{
    const Api *api = *state;
    cnn_model *m = create(api, 2);
    Bufs b;
    bufs_init(&b, 1.0f);
    assert_int_equal(api->run(NULL, b.in, 2, b.out, 3), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->run(m, NULL, 2, b.out, 3), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->run(m, b.in, 2, NULL, 3), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->run(m, b.in, 1, b.out, 3), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->run(m, b.in, 3, b.out, 3), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->run(m, b.in, 2, b.out, 2), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->run(m, b.in, -1, b.out, 3), CNN_ERR_INVALID_ARGUMENT);

    b.in[1].data = NULL;
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_ERR_INVALID_ARGUMENT);
    bufs_init(&b, 1.0f);
    b.out[2].data = NULL;
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_ERR_INVALID_ARGUMENT);
    bufs_init(&b, 1.0f);
    b.in[0].data = (char *)b.x + 1; /* not float-aligned */
    b.in[0].size -= 4;
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_ERR_INVALID_ARGUMENT);
    /* A missing buffer wins over a wrong size anywhere. */
    bufs_init(&b, 1.0f);
    b.in[0].size = 4;
    b.out[1].data = NULL;
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_ERR_INVALID_ARGUMENT);
    api->destroy(m);
}

static void test_run_bad_sizes(void **state)
{
    const Api *api = *state;
    cnn_model *m = create(api, 2);
    Bufs b;
    bufs_init(&b, 1.0f);
    b.in[0].size = 95;
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_ERR_SIZE_MISMATCH);
    assert_non_null(strstr(api->last_error(), "input 0 ('x'): 95 bytes given, 96 expected"));
    bufs_init(&b, 1.0f);
    b.in[1].size = 80;
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_ERR_SIZE_MISMATCH);
    bufs_init(&b, 1.0f);
    b.out[0].size = 0;
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_ERR_SIZE_MISMATCH);
    bufs_init(&b, 1.0f);
    b.out[2].size = 12;
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_ERR_SIZE_MISMATCH);
    /* Nothing was written by the failed calls; the instance still works. */
    for (int i = 0; i < 24; i++)
        assert_true(b.x1[i] == 0.0f);
    bufs_init(&b, 1.0f);
    assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_OK);
    assert_true(bufs_ok(&b, 2));
    api->destroy(m);
}

static void test_create_errors(void **state)
{
    const Api *api = *state;
    cnn_options opt;
    cnn_model *m = (cnn_model *)&opt;
    api->options_init(&opt);
    assert_int_equal(opt.api_version, CNN_API_VERSION);
    assert_int_equal(opt.num_threads, 0);
    assert_int_equal(opt.device, CNN_DEVICE_DEFAULT);
    assert_int_equal(opt.device_index, 0);
    assert_int_equal(opt.flags, 0);
    api->options_init(NULL);
    assert_int_equal(api->create(&opt, NULL), CNN_ERR_INVALID_ARGUMENT);

    opt.api_version = CNN_API_VERSION + 1;
    assert_int_equal(api->create(&opt, &m), CNN_ERR_VERSION);
    assert_null(m);
    assert_string_equal(api->last_error(),
                        "options of API version 3; this model.so implements version 2");
    api->options_init(&opt);
    opt.api_version = 0;
    assert_int_equal(api->create(&opt, &m), CNN_ERR_VERSION);
    api->options_init(&opt);
    opt.num_threads = -1;
    assert_int_equal(api->create(&opt, &m), CNN_ERR_INVALID_ARGUMENT);
    assert_string_equal(api->last_error(), "num_threads -1 is outside [0, 1024] (0: one per core)");
    opt.num_threads = 1 << 20;
    assert_int_equal(api->create(&opt, &m), CNN_ERR_INVALID_ARGUMENT);
    assert_string_equal(api->last_error(),
                        "num_threads 1048576 is outside [0, 1024] (0: one per core)");
    api->options_init(&opt);
    opt.device = CNN_DEVICE_CUDA;
    assert_int_equal(api->create(&opt, &m), CNN_ERR_DEVICE);
    assert_non_null(strstr(api->last_error(), "compiled for the CPU"));
    opt.device = (cnn_device)7;
    assert_int_equal(api->create(&opt, &m), CNN_ERR_INVALID_ARGUMENT);
    assert_string_equal(api->last_error(), "device 7 is not a cnn_device");
    api->options_init(&opt);
    opt.flags = CNN_DEVICE_POINTERS;
    assert_int_equal(api->create(&opt, &m), CNN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(api->last_error(), "CNN_DEVICE_POINTERS is for CUDA models"));
    opt.flags = 4;
    assert_int_equal(api->create(&opt, &m), CNN_ERR_INVALID_ARGUMENT);
    assert_string_equal(api->last_error(), "unknown flags 0x4");
    api->options_init(&opt);
    opt.device_index = -1;
    assert_int_equal(api->create(&opt, &m), CNN_ERR_INVALID_ARGUMENT);
    assert_string_equal(api->last_error(), "device_index -1 is negative");
    assert_null(m);
    opt.device_index = 0;
    opt.device = CNN_DEVICE_CPU;
    assert_int_equal(api->create(&opt, &m), CNN_OK);
    assert_int_equal(api->device(m), CNN_DEVICE_CPU);
    assert_int_equal(api->device(NULL), CNN_DEVICE_DEFAULT);
    api->destroy(m);
}

/* The weights are checked against the checksum stored with them. */
static void test_verify(void **state)
{
    const Api *api = *state;
    cnn_model *m = create(api, 1);
    assert_int_equal(api->verify(m), CNN_OK);
    assert_string_equal(api->last_error(), "");
    assert_int_equal(api->verify(NULL), CNN_ERR_INVALID_ARGUMENT);
    api->destroy(m);
    Api bad = load(FAKE_MODEL_BADSUM_SO);
    m = create(&bad, 1);
    assert_int_equal(bad.verify(m), CNN_ERR_CORRUPT);
    assert_string_equal(bad.last_error(), "the 32 bytes of weights hash to 4cc383ba0a198998 "
                                          "(XXH64), cnnc stored 0123456789abcdef");
    assert_string_equal(bad.status_string(CNN_ERR_CORRUPT), "the model's weights are damaged");
    Bufs b; /* it still runs: checking is the caller's choice */
    bufs_init(&b, 2.0f);
    assert_int_equal(bad.run(m, b.in, 2, b.out, 3), CNN_OK);
    bad.destroy(m);
    dlclose(bad.lib);
}

/* The runtime refuses a model built for another ABI, and reports an arena it
 * cannot allocate. */
static void test_broken_models(void **state)
{
    Api bad = load(FAKE_MODEL_BADABI_SO);
    cnn_model *m = NULL;
    assert_int_equal(bad.create(NULL, &m), CNN_ERR_VERSION);
    assert_null(m);
    dlclose(bad.lib);
    Api huge = load(FAKE_MODEL_HUGE_SO);
    assert_int_equal(huge.create(NULL, &m), CNN_ERR_OUT_OF_MEMORY);
    assert_null(m);
    dlclose(huge.lib);
}

static void test_status_strings(void **state)
{
    const Api *api = *state;
    const char *seen[CNN_ERR_CORRUPT + 1];
    for (int s = CNN_OK; s <= CNN_ERR_CORRUPT; s++) {
        seen[s] = api->status_string((cnn_status)s);
        assert_non_null(seen[s]);
        assert_true(strlen(seen[s]) > 3);
        assert_string_not_equal(seen[s], "unknown status");
        for (int t = 0; t < s; t++)
            assert_string_not_equal(seen[s], seen[t]);
    }
    assert_string_equal(api->status_string(CNN_OK), "success");
    assert_string_equal(api->status_string(CNN_ERR_SIZE_MISMATCH),
                        "buffer size does not match the tensor size");
    assert_string_equal(api->status_string(CNN_ERR_BUSY),
                        "the instance is running on another thread");
    assert_string_equal(api->status_string((cnn_status)99), "unknown status");
    assert_string_equal(api->status_string((cnn_status)-1), "unknown status");
}

static void check_kernel(const Api *api, cnn_model *m, int32_t i, const char *name,
                         const char *op, int64_t flops, int64_t calls)
{
    cnn_kernel_info k;
    assert_int_equal(api->kernel_info(m, i, &k), CNN_OK);
    assert_string_equal(k.name, name);
    assert_string_equal(k.op, op);
    assert_int_equal(k.flops, flops);
    assert_int_equal(k.calls, calls);
    assert_true(calls ? k.seconds > 0 : k.seconds == 0);
}

static void run_times(const Api *api, cnn_model *m, int n, int32_t threads)
{
    Bufs b;
    for (int i = 0; i < n; i++) {
        bufs_init(&b, (float)i);
        assert_int_equal(api->run(m, b.in, 2, b.out, 3), CNN_OK);
        assert_true(bufs_ok(&b, threads));
    }
}

/* Counters count only while profiling is on, survive switching it off and
 * restart from zero when it is switched on again. */
static void test_profiling(void **state)
{
    const Api *api = *state;
    cnn_model *m = create(api, 2);
    assert_int_equal(api->num_kernels(m), 3);
    run_times(api, m, 2, 2);
    check_kernel(api, m, 0, "plus", "mul+add", 48, 0);
    assert_int_equal(api->set_profiling(m, 1), CNN_OK);
    run_times(api, m, 5, 2);
    check_kernel(api, m, 0, "plus", "mul+add", 48, 5);
    check_kernel(api, m, 1, "copy", "mul+add", 48, 5);
    check_kernel(api, m, 2, "twice", "mul", 10, 5);
    assert_int_equal(api->set_profiling(m, 0), CNN_OK);
    run_times(api, m, 3, 2);
    check_kernel(api, m, 2, "twice", "mul", 10, 5);
    assert_int_equal(api->set_profiling(m, 7), CNN_OK);
    check_kernel(api, m, 1, "copy", "mul+add", 48, 0);
    run_times(api, m, 2, 2);
    check_kernel(api, m, 1, "copy", "mul+add", 48, 2);
    /* Each instance has its own counters. */
    cnn_model *other = create(api, 1);
    check_kernel(api, other, 1, "copy", "mul+add", 48, 0);
    api->destroy(other);
    api->destroy(m);
}

static void test_profiling_errors(void **state)
{
    const Api *api = *state;
    cnn_model *m = create(api, 1);
    cnn_kernel_info k;
    assert_int_equal(api->set_profiling(NULL, 1), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->num_kernels(NULL), -1);
    assert_int_equal(api->kernel_info(NULL, 0, &k), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->kernel_info(m, 0, NULL), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->kernel_info(m, -1, &k), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->kernel_info(m, 3, &k), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(api->kernel_info(m, 2, &k), CNN_OK);
    api->destroy(m);
}

typedef struct Runner {
    const Api *api;
    int32_t threads;
    float base;
    int ok;
} Runner;

static void *run_many(void *p)
{
    Runner *r = p;
    cnn_options opt;
    r->api->options_init(&opt);
    opt.num_threads = r->threads;
    cnn_model *m = NULL;
    r->ok = r->api->create(&opt, &m) == CNN_OK;
    Bufs b;
    for (int i = 0; i < 500 && r->ok; i++) {
        bufs_init(&b, r->base + (float)i);
        r->ok = r->api->run(m, b.in, 2, b.out, 3) == CNN_OK && bufs_ok(&b, r->threads);
    }
    r->api->destroy(m);
    return NULL;
}

static void test_concurrent_instances(void **state)
{
    Runner r[2] = {{*state, 2, 0.5f, 0}, {*state, 3, -1000.0f, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, run_many, &r[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_true(r[i].ok);
    }
}

/* ---- one instance, two threads ------------------------------------------------ */

/* The fake model's hook: *hook_slot() is called in the middle of each run. */
static void (**hook_slot(const Api *api))(void)
{
    void (**slot)(void) = NULL;
    assert_true(model_api_sym(api->lib, "fake_model_hook", &slot, sizeof slot));
    return slot;
}

static atomic_int held, let_go;

/* Holds the first run that reaches it until the test lets it go. */
static void hold_run(void)
{
    if (atomic_exchange(&held, 1))
        return;
    while (!atomic_load(&let_go))
        nanosleep(&(struct timespec){0, 100000}, NULL);
}

typedef struct Held {
    const Api *api;
    cnn_model *m;
    Bufs b;
    cnn_status s;
} Held;

static void *run_once(void *p)
{
    Held *h = p;
    h->s = h->api->run(h->m, h->b.in, 2, h->b.out, 3);
    return NULL;
}

/* While one thread is inside a run, the instance refuses a second thread's run and
 * profiling switch with CNN_ERR_BUSY, writing nothing; the held run completes. */
static void test_busy_refused(void **state)
{
    const Api *api = *state;
    void (**hook)(void) = hook_slot(api);
    Held h = {api, create(api, 2), .s = CNN_ERR_DEVICE};
    bufs_init(&h.b, 4.0f);
    atomic_store(&held, 0);
    atomic_store(&let_go, 0);
    *hook = hold_run;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_once, &h), 0);
    while (!atomic_load(&held))
        nanosleep(&(struct timespec){0, 100000}, NULL);
    Bufs mine;
    bufs_init(&mine, -3.0f);
    assert_int_equal(api->run(h.m, mine.in, 2, mine.out, 3), CNN_ERR_BUSY);
    assert_string_equal(api->last_error(), "the instance is running on another thread; "
                                           "create one instance per thread");
    for (int i = 0; i < 24; i++)
        assert_true(mine.x1[i] == 0.0f);
    assert_int_equal(api->set_profiling(h.m, 1), CNN_ERR_BUSY);
    atomic_store(&let_go, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    *hook = NULL;
    assert_int_equal(h.s, CNN_OK);
    assert_true(bufs_ok(&h.b, 2));
    assert_int_equal(api->run(h.m, mine.in, 2, mine.out, 3), CNN_OK); /* free again */
    assert_string_equal(api->last_error(), "");
    assert_true(bufs_ok(&mine, 2));
    assert_int_equal(api->set_profiling(h.m, 1), CNN_OK);
    api->destroy(h.m);
}

typedef struct Hammer {
    const Api *api;
    cnn_model *m;
    float base;
    int runs, busy, wrong;
    atomic_int *busy_seen; /* by either thread */
} Hammer;

static void pause_run(void)
{
    nanosleep(&(struct timespec){0, 20000}, NULL);
}

/* Runs until both threads have been refused at least once (at least 200 runs, at
 * most 20000): each run either succeeds with its own right outputs or is refused. */
static void *hammer(void *p)
{
    Hammer *h = p;
    Bufs b;
    for (int i = 0; i < 20000 && (i < 200 || atomic_load(h->busy_seen) < 2); i++) {
        bufs_init(&b, h->base + (float)i);
        cnn_status s = h->api->run(h->m, b.in, 2, b.out, 3);
        h->runs++;
        if (s == CNN_ERR_BUSY && h->busy++ == 0)
            atomic_fetch_add(h->busy_seen, 1);
        if (s == CNN_ERR_BUSY) /* let the other thread finish its run */
            pause_run();
        else if (s != CNN_ERR_BUSY && (s != CNN_OK || !bufs_ok(&b, 2)))
            h->wrong++;
    }
    return NULL;
}

static void test_busy_two_threads(void **state)
{
    const Api *api = *state;
    void (**hook)(void) = hook_slot(api);
    *hook = pause_run; /* runs long enough to overlap */
    atomic_int seen = 0;
    cnn_model *m = create(api, 2);
    Hammer h[2] = {{api, m, 0.5f, 0, 0, 0, &seen}, {api, m, -1000.0f, 0, 0, 0, &seen}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &h[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    *hook = NULL;
    assert_int_equal(h[0].wrong + h[1].wrong, 0);
    assert_true(h[0].busy + h[1].busy > 0);
    assert_true(h[0].busy + h[1].busy < h[0].runs + h[1].runs);
    api->destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run),
        cmocka_unit_test(test_exports),
        cmocka_unit_test(test_default_threads),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_run_bad_arguments),
        cmocka_unit_test(test_run_bad_sizes),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_broken_models),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_profiling),
        cmocka_unit_test(test_profiling_errors),
        cmocka_unit_test(test_concurrent_instances),
        cmocka_unit_test(test_busy_refused),
        cmocka_unit_test(test_busy_two_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
