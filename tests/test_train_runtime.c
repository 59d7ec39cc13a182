/* test_train_runtime.c: the training runtime (runtime/train.c, cnnc/train.h) over a
 * description built in this process: a linear classifier whose three models are C
 * functions, so that every value the runtime passes and keeps can be checked exactly:
 * bindings by name, steps, gradients, the optimizer's hyper-parameters, labels and
 * non-finite losses refused, .safetensors saved and read back, one call at a time,
 * per-kernel profiling. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include <cmocka.h>

#include "cnnc/train.h"
#include "rt.h"

/* logits[N, K] = x[N, I] w[K, I]^T + b[K]; cross-entropy; SGD with momentum 0.5. */
enum { N = 2, I = 3, K = 2 };

static float last_rng[2], last_hyper[3];
/* While `hold` is set, the grad model announces itself in `held` and waits. */
static atomic_int hold, held;

static void forward(const float *x, const float *w, const float *b, float *logits)
{
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            double s = b[k];
            for (int i = 0; i < I; i++)
                s += (double)x[n * I + i] * w[k * I + i];
            logits[n * K + k] = (float)s;
        }
}

static void nothing(void *args, int64_t begin, int64_t end, void *scratch)
{
    (void)scratch;
    (void)args, (void)begin, (void)end;
}

/* Inputs x, labels, rng, w, b, seen; outputs loss, logits, grad:w, grad:b, new:seen.
 * Kernel 0 of its table is called once, for profiling. */
static void run_grad(RtPool *pool, char *arena, const float *const *in, float *const *out)
{
    (void)arena;
    rt_run_kernel(pool, 0, 1, nothing, NULL);
    float *logits = out[1], *gw = out[2], *gb = out[3];
    if (atomic_load(&hold)) {
        atomic_store(&held, 1);
        while (atomic_load(&hold)) sched_yield();
    }
    forward(in[0], in[3], in[4], logits);
    memcpy(last_rng, in[2], sizeof last_rng);
    double loss = 0;
    memset(gw, 0, K * I * sizeof(float));
    memset(gb, 0, K * sizeof(float));
    for (int n = 0; n < N; n++) {
        const float *l = logits + n * K;
        double m = fmax(l[0], l[1]), e0 = exp(l[0] - m), e1 = exp(l[1] - m), s = e0 + e1;
        int y = (int)in[1][n];
        loss += m + log(s) - l[y];
        double p[K] = {e0 / s, e1 / s};
        for (int k = 0; k < K; k++) {
            double d = (p[k] - (k == y)) / N;
            gb[k] += (float)d;
            for (int i = 0; i < I; i++)
                gw[k * I + i] += (float)(d * in[0][n * I + i]);
        }
    }
    out[0][0] = (float)(loss / N);
    out[4][0] = in[5][0] + 1;
}

/* Inputs hyper, then per parameter: it, its gradient, its momentum; outputs the new
 * parameter and momentum of each (PyTorch's SGD: buf = g on the first step). */
static void run_apply(RtPool *pool, char *arena, const float *const *in, float *const *out)
{
    (void)arena;
    rt_run_kernel(pool, 0, 2, nothing, NULL);
    memcpy(last_hyper, in[0], sizeof last_hyper);
    for (int p = 0; p < 2; p++) {
        const float *w = in[1 + 3 * p], *g = in[2 + 3 * p], *buf = in[3 + 3 * p];
        for (int i = 0; i < (p ? K : K * I); i++) {
            float nb = in[0][1] == 0 ? g[i] : 0.5f * buf[i] + g[i];
            out[2 * p + 1][i] = nb;
            out[2 * p][i] = w[i] - in[0][0] * nb;
        }
    }
}

static void run_eval(RtPool *pool, char *arena, const float *const *in, float *const *out)
{
    (void)pool, (void)arena;
    forward(in[0], in[1], in[2], out[0]);
}

static const RtTensor grad_in[] = {{"x", 2, 0, {N, I}}, {"labels", 1, 0, {N}},
                                   {"rng", 1, 0, {2}},  {"w", 2, 0, {K, I}},
                                   {"b", 1, 0, {K}},    {"seen", 1, 0, {1}}};
static const RtTensor grad_out[] = {{"loss", 1, 0, {1}},      {"logits", 2, 0, {N, K}},
                                    {"grad:w", 2, 0, {K, I}}, {"grad:b", 1, 0, {K}},
                                    {"new:seen", 1, 0, {1}}};
static const RtTensor apply_in[] = {{"hyper", 1, 0, {3}},
                                    {"w", 2, 0, {K, I}},
                                    {"grad:w", 2, 0, {K, I}},
                                    {"momentum:w", 2, 0, {K, I}},
                                    {"b", 1, 0, {K}},
                                    {"grad:b", 1, 0, {K}},
                                    {"momentum:b", 1, 0, {K}}};
static const RtTensor apply_out[] = {{"new:w", 2, 0, {K, I}},
                                     {"new:momentum:w", 2, 0, {K, I}},
                                     {"new:b", 1, 0, {K}},
                                     {"new:momentum:b", 1, 0, {K}}};
static const RtTensor eval_in[] = {
    {"x", 2, 0, {N, I}}, {"w", 2, 0, {K, I}}, {"b", 1, 0, {K}}, {"seen", 1, 0, {1}}};
static const RtTensor eval_out[] = {{"logits", 2, 0, {N, K}}};

#define MODEL(in, out, arena, fn)                                                          \
    {.abi_version = RT_ABI_VERSION, .ninputs = sizeof in / sizeof in[0],                        \
     .noutputs = sizeof out / sizeof out[0], .inputs = in, .outputs = out, .arena_bytes = arena, \
     .run = fn}
static const RtKernelInfo grad_kernels[] = {{"fc", "dense", 24, 1}};
static const RtKernelInfo apply_kernels[] = {{"w.update", "sgd_step", 8, 2}};
static const RtModel grad_model = {.abi_version = RT_ABI_VERSION, .ninputs = 6, .noutputs = 5,
                                   .inputs = grad_in, .outputs = grad_out, .arena_bytes = 64,
                                   .run = run_grad, .nkernels = 1, .kernels = grad_kernels};
static const RtModel apply_model = {.abi_version = RT_ABI_VERSION, .ninputs = 7, .noutputs = 4,
                                    .inputs = apply_in, .outputs = apply_out, .run = run_apply,
                                    .nkernels = 1, .kernels = apply_kernels};
static const RtModel eval_model = MODEL(eval_in, eval_out, 0, run_eval);

static const float init[] = {0.1f, -0.2f, 0.3f, 0.05f, 0.4f, -0.1f, /* w */
                             0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,   /* pad */
                             0.0f, 0.0f, 0.0f, 0.0f,               /* to 64 bytes */
                             0.5f, -0.5f};                         /* b */
static const RtTrainParam params[] = {
    {"w", 2, RT_TRAIN_WEIGHT, {K, I}, 0},
    {"b", 1, RT_TRAIN_WEIGHT, {K}, 64},
    {"seen", 1, RT_TRAIN_BUFFER, {1}, -1},
    {"momentum:w", 2, RT_TRAIN_STATE, {K, I}, -1},
    {"momentum:b", 1, RT_TRAIN_STATE, {K}, -1},
};

static RtTrain desc(void)
{
    return (RtTrain){RT_ABI_VERSION, 3,     2, 2, &grad_model, &apply_model, &eval_model, params,
                     (const uint8_t *)init, sizeof init, RT_LOSS_CROSS_ENTROPY, K, RT_OPTIM_SGD,
                     0.1f, 0, 0};
}

static const float xs[N * I] = {1.0f, 2.0f, -1.0f, 0.5f, -1.5f, 2.0f};
static const int64_t ys[N] = {1, 0};

static cnn_trainer *create(const RtTrain *d, uint64_t seed)
{
    cnn_train_options opt;
    cnn_train_options_init(&opt);
    opt.num_threads = 1;
    opt.seed = seed;
    cnn_trainer *t;
    assert_int_equal(rt_trainer_create(d, &opt, &t), CNN_OK);
    return t;
}

static float get(cnn_trainer *t, int32_t i, int32_t k)
{
    float v[K * I];
    cnn_tensor_info info;
    assert_int_equal(cnn_trainer_param_info(t, i, &info), CNN_OK);
    assert_int_equal(cnn_trainer_get_param(t, i, v, info.size), CNN_OK);
    return v[k];
}

static void test_describes(void **state)
{
    (void)state;
    RtTrain d = desc();
    cnn_trainer *t = create(&d, 0);
    assert_int_equal(cnn_trainer_batch(t), N);
    cnn_tensor_info info;
    cnn_label_kind kind;
    assert_int_equal(cnn_trainer_input_info(t, &info), CNN_OK);
    assert_string_equal(info.name, "x");
    assert_int_equal(info.size, N * I * 4);
    assert_int_equal(cnn_trainer_label_info(t, &kind, &info), CNN_OK);
    assert_int_equal(kind, CNN_LABEL_CLASS);
    assert_int_equal(info.dtype, CNN_I64);
    assert_int_equal(info.size, N * 8);
    assert_int_equal(cnn_trainer_output_info(t, &info), CNN_OK);
    assert_int_equal(info.dims[1], K);
    assert_int_equal(cnn_trainer_num_params(t), 3);
    assert_int_equal(cnn_trainer_num_trainable(t), 2);
    assert_int_equal(cnn_trainer_param_info(t, 1, &info), CNN_OK);
    assert_string_equal(info.name, "b");
    assert_int_equal(cnn_trainer_param_info(t, 3, &info), CNN_ERR_INVALID_ARGUMENT);
    assert_float_equal(get(t, 0, 2), 0.3f, 0);
    assert_float_equal(get(t, 1, 1), -0.5f, 0);
    assert_float_equal(get(t, 2, 0), 0.0f, 0);
    assert_float_equal(cnn_trainer_lr(t), 0.1f, 0);
    assert_int_equal(cnn_trainer_steps(t), 0);
    cnn_trainer_destroy(t);
    /* NULLs and missing descriptions are statuses. */
    assert_int_equal(cnn_trainer_batch(NULL), -1);
    assert_true(isnan(cnn_trainer_lr(NULL)));
    cnn_trainer_destroy(NULL);
    cnn_trainer *none;
    assert_int_equal(rt_trainer_create(NULL, NULL, &none), CNN_ERR_INVALID_ARGUMENT);
    assert_null(none);
    assert_non_null(strstr(cnn_last_error(), "--train"));
    d.abi_version = 1;
    assert_int_equal(rt_trainer_create(&d, NULL, &none), CNN_ERR_VERSION);
}

/* A damaged description (a graph input bound to a tensor of another size, an
 * initial value past the blob) is refused at creation. */
static void test_refuses_damaged(void **state)
{
    (void)state;
    RtTrainParam bad[5];
    memcpy(bad, params, sizeof bad);
    RtTrain d = desc();
    d.params = bad;
    bad[2].dims[0] = 2;
    cnn_trainer *t;
    assert_int_equal(rt_trainer_create(&d, NULL, &t), CNN_ERR_INVALID_ARGUMENT);
    memcpy(bad, params, sizeof bad);
    bad[1].init = (int64_t)sizeof init - 4;
    assert_int_equal(rt_trainer_create(&d, NULL, &t), CNN_ERR_INVALID_ARGUMENT);
    assert_null(t);
}

/* Gradients as the grad model computed them, the optimizer's hyper-parameters, the
 * buffer renewed by each step, the loss falling over 20 steps on one batch. */
static void test_steps(void **state)
{
    (void)state;
    RtTrain d = desc();
    cnn_trainer *t = create(&d, 0x1234567);
    cnn_tensor x = {(void *)xs, sizeof xs}, y = {(void *)ys, sizeof ys};
    float loss0, loss;
    assert_int_equal(cnn_trainer_compute_gradients(t, &x, &y, &loss0), CNN_OK);
    assert_float_equal(last_rng[0], (float)0x234567, 0);
    assert_float_equal(last_rng[1], 0, 0);
    float *g;
    size_t count;
    assert_int_equal(cnn_trainer_gradients(t, &g, &count), CNN_OK);
    assert_int_equal(count, K * I + K);
    float w[K * I], b[K];
    for (int i = 0; i < K * I; i++)
        w[i] = get(t, 0, i);
    b[0] = get(t, 1, 0), b[1] = get(t, 1, 1);
    g[K * I] *= 2; /* the caller may change them (an allreduce) before they apply */
    assert_int_equal(cnn_trainer_apply_gradients(t), CNN_OK);
    assert_float_equal(last_hyper[0], 0.1f, 0);
    assert_float_equal(last_hyper[1], 0, 0); /* SGD's first step */
    assert_float_equal(get(t, 0, 4), w[4] - 0.1f * g[4], 1e-7);
    assert_float_equal(get(t, 1, 0), b[0] - 0.1f * g[K * I], 1e-7);
    assert_float_equal(get(t, 2, 0), 1, 0);
    assert_int_equal(cnn_trainer_apply_gradients(t), CNN_ERR_INVALID_ARGUMENT); /* spent */
    assert_int_equal(cnn_trainer_set_lr(t, 0.5f), CNN_OK);
    assert_int_equal(cnn_trainer_set_lr(t, NAN), CNN_ERR_INVALID_ARGUMENT);
    for (int s = 1; s < 20; s++)
        assert_int_equal(cnn_trainer_step(t, &x, &y, &loss), CNN_OK);
    assert_float_equal(last_hyper[0], 0.5f, 0);
    assert_float_equal(last_hyper[1], 19, 0);
    assert_float_equal(last_rng[1], 19, 0);
    assert_int_equal(cnn_trainer_steps(t), 20);
    assert_float_equal(get(t, 2, 0), 20, 0);
    assert_true(loss < 0.5f * loss0);
    /* Evaluation changes nothing and gives the loss of the current weights. */
    float eval_loss, out[N * K];
    cnn_tensor o = {out, sizeof out};
    assert_int_equal(cnn_trainer_evaluate(t, &x, &y, &eval_loss, &o), CNN_OK);
    assert_int_equal(cnn_trainer_compute_gradients(t, &x, &y, &loss), CNN_OK);
    assert_float_equal(eval_loss, loss, 1e-6);
    assert_int_equal(cnn_trainer_steps(t), 20);
    /* The logits of that step: the forward of evaluate (this model has no training mode). */
    const float *logits;
    assert_int_equal(cnn_trainer_outputs(t, &logits, &count), CNN_OK);
    assert_int_equal(count, N * K);
    assert_memory_equal(logits, out, sizeof out);
    assert_int_equal(cnn_trainer_outputs(NULL, &logits, &count), CNN_ERR_INVALID_ARGUMENT);
    cnn_trainer_destroy(t);
}

/* Labels outside the classes, buffers of the wrong size and a non-finite loss are
 * statuses; nothing is updated, and apply refuses until gradients are computed again. */
static void test_refuses_bad_batches(void **state)
{
    (void)state;
    RtTrain d = desc();
    cnn_trainer *t = create(&d, 0);
    cnn_tensor x = {(void *)xs, sizeof xs};
    int64_t bad[N] = {0, K};
    cnn_tensor y = {bad, sizeof bad};
    assert_int_equal(cnn_trainer_step(t, &x, &y, NULL), CNN_ERR_LABEL);
    assert_non_null(strstr(cnn_last_error(), "label 2 (batch item 1)"));
    bad[1] = -1;
    assert_int_equal(cnn_trainer_step(t, &x, &y, NULL), CNN_ERR_LABEL);
    y.size = 8;
    assert_int_equal(cnn_trainer_step(t, &x, &y, NULL), CNN_ERR_SIZE_MISMATCH);
    cnn_tensor good = {(void *)ys, sizeof ys};
    cnn_tensor shortx = {(void *)xs, sizeof xs - 4};
    assert_int_equal(cnn_trainer_step(t, &shortx, &good, NULL), CNN_ERR_SIZE_MISMATCH);
    assert_int_equal(cnn_trainer_step(t, NULL, &good, NULL), CNN_ERR_INVALID_ARGUMENT);
    float nanx[N * I];
    memcpy(nanx, xs, sizeof nanx);
    nanx[4] = NAN;
    cnn_tensor xn = {nanx, sizeof nanx};
    float loss;
    assert_int_equal(cnn_trainer_step(t, &xn, &good, &loss), CNN_ERR_NOT_FINITE);
    assert_true(isnan(loss));
    assert_int_equal(cnn_trainer_compute_gradients(t, &xn, &good, NULL), CNN_ERR_NOT_FINITE);
    assert_int_equal(cnn_trainer_apply_gradients(t), CNN_ERR_NOT_FINITE);
    assert_int_equal(cnn_trainer_steps(t), 0);
    assert_float_equal(get(t, 0, 0), 0.1f, 0);
    assert_float_equal(get(t, 2, 0), 0, 0); /* the buffer the failed runs renewed: kept */
    assert_int_equal(cnn_trainer_step(t, &x, &good, NULL), CNN_OK);
    assert_int_equal(cnn_trainer_steps(t), 1);
    cnn_trainer_destroy(t);
}

static void *step_thread(void *p)
{
    cnn_tensor x = {(void *)xs, sizeof xs}, y = {(void *)ys, sizeof ys};
    return (void *)(intptr_t)cnn_trainer_step(p, &x, &y, NULL);
}

/* One call at a time: while a step runs, every call that uses or changes the
 * instance on another thread is refused. */
static void test_busy(void **state)
{
    (void)state;
    RtTrain d = desc();
    cnn_trainer *t = create(&d, 0);
    atomic_store(&hold, 1);
    atomic_store(&held, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, step_thread, t), 0);
    while (!atomic_load(&held)) sched_yield();
    cnn_tensor x = {(void *)xs, sizeof xs}, y = {(void *)ys, sizeof ys};
    float w = 1;
    assert_int_equal(cnn_trainer_step(t, &x, &y, NULL), CNN_ERR_BUSY);
    assert_non_null(strstr(cnn_last_error(), "another thread"));
    assert_int_equal(cnn_trainer_apply_gradients(t), CNN_ERR_BUSY);
    assert_int_equal(cnn_trainer_evaluate(t, &x, NULL, NULL, NULL), CNN_ERR_BUSY);
    assert_int_equal(cnn_trainer_set_param(t, 2, &w, sizeof w), CNN_ERR_BUSY);
    assert_int_equal(cnn_trainer_set_lr(t, 0.5f), CNN_ERR_BUSY);
    assert_int_equal(cnn_trainer_load(t, "/nonexistent"), CNN_ERR_BUSY);
    atomic_store(&hold, 0);
    void *rc;
    pthread_join(th, &rc);
    assert_int_equal((intptr_t)rc, CNN_OK);
    assert_int_equal(cnn_trainer_steps(t), 1);
    assert_float_equal(cnn_trainer_lr(t), 0.1f, 0);
    cnn_trainer_destroy(t);
}

/* Each model's kernels counted under their own numbers while profiling is on. */
static void test_profiling(void **state)
{
    (void)state;
    RtTrain d = desc();
    cnn_trainer *t = create(&d, 0);
    cnn_tensor x = {(void *)xs, sizeof xs}, y = {(void *)ys, sizeof ys};
    assert_int_equal(cnn_trainer_num_kernels(t), 2);
    assert_int_equal(cnn_trainer_step(t, &x, &y, NULL), CNN_OK); /* not counted */
    assert_int_equal(cnn_trainer_set_profiling(t, 1), CNN_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cnn_trainer_step(t, &x, &y, NULL), CNN_OK);
    assert_int_equal(cnn_trainer_compute_gradients(t, &x, &y, NULL), CNN_OK);
    assert_int_equal(cnn_trainer_set_profiling(t, 0), CNN_OK);
    assert_int_equal(cnn_trainer_step(t, &x, &y, NULL), CNN_OK); /* not counted */
    cnn_kernel_info k;
    assert_int_equal(cnn_trainer_kernel_info(t, 0, &k), CNN_OK);
    assert_string_equal(k.name, "fc");
    assert_int_equal(k.flops, 24);
    assert_int_equal(k.calls, 4);
    assert_true(k.seconds >= 0);
    assert_int_equal(cnn_trainer_kernel_info(t, 1, &k), CNN_OK);
    assert_string_equal(k.op, "sgd_step");
    assert_int_equal(k.calls, 3);
    assert_int_equal(cnn_trainer_kernel_info(t, 2, &k), CNN_ERR_INVALID_ARGUMENT);
    assert_int_equal(cnn_trainer_num_kernels(NULL), -1);
    cnn_trainer_destroy(t);
}

static char path[256];

static void write_file(const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static char *read_file(size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc(*n + 1);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

/* A safetensors file of one header and `data` bytes of zeros. */
static void write_safetensors(const char *header, size_t data)
{
    size_t h = strlen(header), n = 8 + h + data;
    unsigned char *p = calloc(1, n);
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(h >> (8 * i));
    memcpy(p + 8, header, h);
    write_file(p, n);
    free(p);
}

/* Save writes every tensor of the model (not the optimizer's); load reads them back
 * exactly, and a file that is wrong anywhere is a status that changes nothing. */
static void test_save_load(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/cnnc-train-%d.safetensors", (int)getpid());
    RtTrain d = desc();
    cnn_trainer *t = create(&d, 0);
    cnn_tensor x = {(void *)xs, sizeof xs}, y = {(void *)ys, sizeof ys};
    assert_int_equal(cnn_trainer_step(t, &x, &y, NULL), CNN_OK);
    float w[K * I], b[K];
    assert_int_equal(cnn_trainer_get_param(t, 0, w, sizeof w), CNN_OK);
    assert_int_equal(cnn_trainer_get_param(t, 1, b, sizeof b), CNN_OK);
    assert_int_equal(cnn_trainer_save(t, path), CNN_OK);
    size_t n;
    char *file = read_file(&n);
    assert_int_equal(n, 8 + (size_t)(unsigned char)file[0] + (size_t)(unsigned char)file[1] * 256 + 36);
    assert_non_null(strstr(file + 8, "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                                     "\"data_offsets\":[0,24]}"));
    assert_null(strstr(file + 8, "momentum"));
    free(file);
    cnn_trainer *u = create(&d, 0);
    assert_int_equal(cnn_trainer_load(u, path), CNN_OK);
    float w2[K * I], b2[K], seen;
    assert_int_equal(cnn_trainer_get_param(u, 0, w2, sizeof w2), CNN_OK);
    assert_int_equal(cnn_trainer_get_param(u, 1, b2, sizeof b2), CNN_OK);
    assert_int_equal(cnn_trainer_get_param(u, 2, &seen, 4), CNN_OK);
    assert_memory_equal(w, w2, sizeof w);
    assert_memory_equal(b, b2, sizeof b);
    assert_float_equal(seen, 1, 0);
    /* Bad files: each refused, the weights kept. */
    static const char *const bad[] = {
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", /* no b */
        "{\"w\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"seen\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,36]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"seen\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,36]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"seen\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,99]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]",
        "{\"w\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
        "[\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_safetensors(bad[i], 36);
        assert_int_equal(cnn_trainer_load(u, path), CNN_ERR_IO);
        assert_true(cnn_last_error()[0] != 0);
        assert_int_equal(cnn_trainer_get_param(u, 0, w2, sizeof w2), CNN_OK);
        assert_memory_equal(w, w2, sizeof w);
    }
    /* A header longer than the file, a file too short for its length, none at all. */
    static const unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    write_file(huge, sizeof huge);
    assert_int_equal(cnn_trainer_load(u, path), CNN_ERR_IO);
    write_file(huge, 5);
    assert_int_equal(cnn_trainer_load(u, path), CNN_ERR_IO);
    unlink(path);
    assert_int_equal(cnn_trainer_load(u, path), CNN_ERR_IO);
    /* An extra tensor and metadata are ignored. */
    write_safetensors("{\"__metadata__\":{\"format\":\"pt\"},\"extra\":{\"dtype\":\"F32\","
                      "\"shape\":[],\"data_offsets\":[0,4]},"
                      "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
                      "\"seen\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,36]}}",
                      36);
    assert_int_equal(cnn_trainer_load(u, path), CNN_OK);
    assert_float_equal(get(u, 0, 3), 0, 0);
    /* A save that cannot write leaves nothing behind. */
    assert_int_equal(cnn_trainer_save(t, "/nonexistent-dir/w.safetensors"), CNN_ERR_IO);
    unlink(path);
    cnn_trainer_destroy(t);
    cnn_trainer_destroy(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describes),
        cmocka_unit_test(test_refuses_damaged),
        cmocka_unit_test(test_steps),
        cmocka_unit_test(test_refuses_bad_batches),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_busy),
        cmocka_unit_test(test_profiling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
