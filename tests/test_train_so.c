/* test_train_so.c: training model.so files of `cnnc --train` (models/mlp.cnn with SGD
 * and momentum, and with mean squared error and AdamW; models/mnist_cnn.cnn with Adam;
 * a small residual network with batch normalization and dropout, SGD, Nesterov
 * momentum and weight decay) loaded through tools/train_api.h.
 * The compiled step must equal the reference interpreter running the same training
 * graphs (train_build) on the same inputs and weights: the loss, every gradient, the
 * weights after the optimizer's update, the evaluation output, each within 1e-4
 * relative (max|diff| / max|ref|). Then: the loss falls on a fixed batch, a bad label,
 * a buffer of the wrong size and a NaN input are statuses that change nothing, save
 * and load give the same weights, saved weights compile into an inference model.so
 * that agrees with the instance's evaluation, and the .so is deterministic and
 * libc-only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"
#include "train.h"
#include "train_api.h"

#define TOL 1e-4

static char tmpdir[256];

/* One training model.so and what it was compiled from. */
typedef struct Case {
    const char *model;
    const char *text;  /* the model's source; NULL: models/MODEL.cnn */
    int64_t batch;
    const char *flags; /* cnnc's training flags */
    TrainOptions opt;  /* the same, for train_build */
    char so[512];
} Case;

/* Batch normalization (running statistics renewed by the grad model), a residual add,
 * pooling and dropout, in plain layouts. */
static const char tiny_resnet[] =
    "network tiny(image: f32[N=1, 3, 12, 12]) {\n"
    "  x = relu(batchnorm(conv2d(image, 8, kernel=3, pad=1, bias=false) as conv1) as bn1)\n"
    "  y = batchnorm(conv2d(x, 8, kernel=3, pad=1, bias=false) as conv2) as bn2\n"
    "  x = maxpool(relu(x + y), kernel=3, stride=2, pad=1)\n"
    "  x = sequence head(flatten(global_avgpool(x))) { dropout(p=0.25); dense(10) }\n"
    "  return x\n"
    "}\n";

static Case cases[4];

static void compile_case(Case *c, const char *name)
{
    char src[512];
    snprintf(src, sizeof src, "%s/models/%s.cnn", CNNC_SOURCE_DIR, c->model);
    if (c->text) {
        snprintf(src, sizeof src, "%s/%s.cnn", tmpdir, c->model);
        FILE *f = fopen(src, "w");
        assert_non_null(f);
        fputs(c->text, f);
        fclose(f);
    }
    snprintf(c->so, sizeof c->so, "%s/%s_train.so", tmpdir, name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/tools/cnnc %s --train --batch=%lld %s -o %s", CNNC_BINARY_DIR,
             src, (long long)c->batch, c->flags, c->so);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cnnc-train-so-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    TrainOptions sgd, adam, nesterov, adamw;
    train_options_init(&sgd);
    sgd.momentum = 0.9f;
    sgd.lr = 0.05f;
    cases[0] = (Case){"mlp", NULL, 3, "--momentum=0.9 --lr=0.05", sgd, ""};
    compile_case(&cases[0], "mlp");
    train_options_init(&adam);
    adam.optim = OPTIM_ADAM;
    adam.lr = 0.001f;
    cases[1] = (Case){"mnist_cnn", NULL, 2, "--optimizer=adam --lr=0.001", adam, ""};
    compile_case(&cases[1], "mnist_cnn");
    train_options_init(&nesterov);
    nesterov.momentum = 0.9f;
    nesterov.nesterov = true;
    nesterov.weight_decay = 0.01f;
    nesterov.lr = 0.1f;
    cases[2] = (Case){"tiny", tiny_resnet, 4,
                      "--momentum=0.9 --nesterov --weight-decay=0.01 --lr=0.1", nesterov, ""};
    compile_case(&cases[2], "tiny");
    train_options_init(&adamw);
    adamw.loss = LOSS_MSE;
    adamw.optim = OPTIM_ADAMW;
    adamw.weight_decay = 0.1f;
    adamw.lr = 0.002f;
    cases[3] = (Case){"mlp", NULL, 2,
                      "--loss=mse --optimizer=adamw --weight-decay=0.1 --lr=0.002", adamw, ""};
    compile_case(&cases[3], "mlp_mse");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A trainer of the case's model.so and a batch for it. */
typedef struct Run {
    TrainApi api;
    cnn_trainer *t;
    float *x;
    int64_t *y;
    float *yf; /* the labels as the grad graph reads them */
    cnn_tensor X, Y;
    TrainStep s; /* the interpreter's graphs */
} Run;

static uint64_t rng_state = 7;

static float uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * 0x1p-24);
}

static void open_run(Run *r, const Case *c, int32_t threads)
{
    char err[1024];
    if (!train_api_open(&r->api, c->so, err, sizeof err)) fail_msg("%s", err);
    cnn_train_options o;
    r->api.options_init(&o);
    o.num_threads = threads;
    o.seed = 5;
    assert_int_equal(r->api.create(&o, &r->t), CNN_OK);
    cnn_tensor_info xi, yi;
    cnn_label_kind kind;
    assert_int_equal(r->api.input_info(r->t, &xi), CNN_OK);
    assert_int_equal(r->api.label_info(r->t, &kind, &yi), CNN_OK);
    bool mse = c->opt.loss == LOSS_MSE;
    assert_int_equal(kind, mse ? CNN_LABEL_TARGET : CNN_LABEL_CLASS);
    assert_int_equal(yi.dtype, mse ? CNN_F32 : CNN_I64);
    assert_int_equal(yi.size, (size_t)c->batch * (mse ? 40 : 8));
    r->x = malloc(xi.size);
    r->y = malloc(yi.size);
    r->yf = malloc(yi.size);
    for (size_t i = 0; i < xi.size / 4; i++)
        r->x[i] = 2 * uniform() - 1;
    for (int64_t i = 0; i < (mse ? 10 : 1) * c->batch; i++)
        r->yf[i] = mse ? uniform() : (float)(r->y[i] = (int64_t)(uniform() * 10) % 10);
    r->X = (cnn_tensor){r->x, xi.size};
    r->Y = (cnn_tensor){mse ? (void *)r->yf : (void *)r->y, yi.size};
    Graph *g = load_model(c->model, c->text, c->batch, 0);
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(train_build(g, &c->opt, &r->s, &d));
    ir_diag_fini(&d);
    ir_graph_free(g);
}

static void close_run(Run *r)
{
    r->api.destroy(r->t);
    train_api_close(&r->api);
    train_step_free(&r->s);
    free(r->x);
    free(r->y);
    free(r->yf);
}

/* Parameter i of the trainer, malloc'd. */
static float *param(Run *r, int32_t i)
{
    cnn_tensor_info info;
    assert_int_equal(r->api.param_info(r->t, i, &info), CNN_OK);
    float *p = malloc(info.size);
    assert_int_equal(r->api.get_param(r->t, i, p, info.size), CNN_OK);
    return p;
}

static int32_t find_output(const Graph *g, const char *name)
{
    for (int32_t k = 0; k < g->noutputs; k++)
        if (!strcmp(g->outputs[k].name, name)) return g->outputs[k].node;
    fail_msg("no output '%s'", name);
    return -1;
}

/* The interpreter on graph g, each input taken by name from `values`. */
typedef const float *(*Lookup)(void *ctx, const char *name);

static void interp(const Graph *g, Lookup get, void *ctx, InterpResult *res)
{
    int32_t n = ir_num_inputs(g);
    const float **in = calloc((size_t)n + 1, sizeof *in);
    for (int32_t i = 0; i < n; i++) {
        in[i] = get(ctx, g->nodes[ir_input_node(g, i)].name);
        if (!in[i]) fail_msg("no value for input '%s'", g->nodes[ir_input_node(g, i)].name);
    }
    char err[512];
    if (!ir_interp(g, in, res, err, sizeof err)) fail_msg("interpreter: %s", err);
    free(in);
}

/* What the graphs read: the batch, the trainer's weights before the step, the
 * gradients and hyper-parameters of the step, zero optimizer state. */
typedef struct Values {
    Run *r;
    float **params, *grads, rng[2], hyper[3], *zeros;
    const char *input;
} Values;

static const float *lookup(void *ctx, const char *name)
{
    Values *v = ctx;
    TrainStep *s = &v->r->s;
    if (!strcmp(name, v->input)) return v->r->x;
    if (!strcmp(name, "labels")) return v->r->yf;
    if (!strcmp(name, "rng")) return v->rng;
    if (!strcmp(name, "hyper")) return v->hyper;
    int64_t at = 0;
    for (int32_t i = 0; i < s->nparams; i++) {
        if (!strcmp(name, s->params[i].name)) return v->params[i];
        if (!strncmp(name, "grad:", 5) && !strcmp(name + 5, s->params[i].name)) return v->grads + at;
        at += i < s->ntrainable ? ir_numel(&s->params[i].type) : 0;
    }
    for (int32_t i = 0; i < s->nstate; i++)
        if (!strcmp(name, s->state[i].name)) return v->zeros;
    return NULL;
}

/* One step of the compiled model against the interpreter: loss, gradients, the
 * weights after the update, then the evaluation output. */
static void check_step(Case *c, int32_t threads)
{
    Run r;
    open_run(&r, c, threads);
    TrainStep *s = &r.s;
    assert_int_equal(r.api.num_params(r.t), s->nparams);
    assert_int_equal(r.api.num_trainable(r.t), s->ntrainable);
    Values v = {&r, calloc((size_t)s->nparams, sizeof(float *)), NULL, {5, 0}, {0}, NULL,
                s->grad->nodes[ir_input_node(s->grad, 0)].name};
    int64_t most = 1;
    for (int32_t i = 0; i < s->nparams; i++) {
        v.params[i] = param(&r, i);
        most = ir_numel(&s->params[i].type) > most ? ir_numel(&s->params[i].type) : most;
    }
    v.zeros = calloc((size_t)most, sizeof(float));
    float loss;
    assert_int_equal(r.api.compute_gradients(r.t, &r.X, &r.Y, &loss), CNN_OK);
    size_t count;
    assert_int_equal(r.api.gradients(r.t, &v.grads, &count), CNN_OK);
    InterpResult gr;
    interp(s->grad, lookup, &v, &gr);
    expect_within("loss", &loss, gr.values[find_output(s->grad, "loss")], 1, TOL);
    size_t at = 0;
    for (int32_t i = 0; i < s->ntrainable; i++) {
        char name[256];
        snprintf(name, sizeof name, "grad:%s", s->params[i].name);
        int64_t n = ir_numel(&s->params[i].type);
        expect_within(name, v.grads + at, gr.values[find_output(s->grad, name)], n, TOL);
        at += (size_t)n;
    }
    assert_int_equal(at, count);
    for (int32_t i = s->ntrainable; i < s->nparams; i++) { /* running statistics, renewed */
        char name[256];
        snprintf(name, sizeof name, "new:%s", s->params[i].name);
        float *p = param(&r, i);
        expect_within(name, p, gr.values[find_output(s->grad, name)],
                      ir_numel(&s->params[i].type), TOL);
        free(v.params[i]);
        v.params[i] = p;
    }
    /* The update from these gradients: step 1. */
    v.hyper[0] = c->opt.lr;
    v.hyper[1] = c->opt.optim == OPTIM_SGD ? 0 : 1 - c->opt.beta1;
    v.hyper[2] = c->opt.optim == OPTIM_SGD ? 0 : 1 - c->opt.beta2;
    InterpResult ar;
    interp(s->apply, lookup, &v, &ar);
    assert_int_equal(r.api.apply_gradients(r.t), CNN_OK);
    for (int32_t i = 0; i < s->ntrainable; i++) {
        char name[256];
        snprintf(name, sizeof name, "new:%s", s->params[i].name);
        float *p = param(&r, i);
        expect_within(name, p, ar.values[find_output(s->apply, name)],
                      ir_numel(&s->params[i].type), TOL);
        free(v.params[i]);
        v.params[i] = p;
    }
    /* Evaluation with the updated weights. */
    cnn_tensor_info oi;
    assert_int_equal(r.api.output_info(r.t, &oi), CNN_OK);
    float *out = malloc(oi.size), eloss;
    cnn_tensor O = {out, oi.size};
    assert_int_equal(r.api.evaluate(r.t, &r.X, &r.Y, &eloss, &O), CNN_OK);
    InterpResult er;
    interp(s->eval, lookup, &v, &er);
    expect_within("eval output", out, er.values[s->eval->outputs[0].node],
                  (int64_t)(oi.size / 4), TOL);
    assert_true(isfinite(eloss) && eloss > 0);
    ir_interp_free(&gr);
    ir_interp_free(&ar);
    ir_interp_free(&er);
    for (int32_t i = 0; i < s->nparams; i++)
        free(v.params[i]);
    free(v.params);
    free(v.zeros);
    free(out);
    close_run(&r);
}

static void test_mlp_matches_interpreter(void **state)
{
    (void)state;
    check_step(&cases[0], 1);
    check_step(&cases[0], 2);
}

static void test_mnist_cnn_matches_interpreter(void **state)
{
    (void)state;
    check_step(&cases[1], 2);
}

static void test_batchnorm_residual_dropout_matches_interpreter(void **state)
{
    (void)state;
    check_step(&cases[2], 2);
}

static void test_mse_adamw_matches_interpreter(void **state)
{
    (void)state;
    check_step(&cases[3], 2);
}

/* 20 steps on one batch: the loss falls. */
static void test_loss_falls(void **state)
{
    (void)state;
    for (int k = 0; k < 4; k++) {
        Run r;
        open_run(&r, &cases[k], 2);
        float first = 0, loss = 0;
        for (int i = 0; i < 20; i++) {
            assert_int_equal(r.api.step(r.t, &r.X, &r.Y, &loss), CNN_OK);
            if (i == 0) first = loss;
        }
        assert_int_equal(r.api.steps(r.t), 20);
        if (!(loss < 0.5f * first)) fail_msg("%s: loss %g after 20 steps, %g at the first",
                                             cases[k].model, loss, first);
        close_run(&r);
    }
}

/* Statuses, and nothing changed: a label outside the classes, buffers of the wrong
 * size, a NaN in the batch. */
static void test_bad_batches(void **state)
{
    (void)state;
    Run r;
    open_run(&r, &cases[1], 2);
    int32_t n = r.api.num_params(r.t);
    float **before = calloc((size_t)n, sizeof *before);
    for (int32_t i = 0; i < n; i++)
        before[i] = param(&r, i);
    r.y[1] = 10;
    assert_int_equal(r.api.step(r.t, &r.X, &r.Y, NULL), CNN_ERR_LABEL);
    assert_non_null(strstr(r.api.last_error(), "label 10 (batch item 1)"));
    r.y[1] = 3;
    cnn_tensor short_y = {r.y, r.Y.size - 8};
    assert_int_equal(r.api.step(r.t, &r.X, &short_y, NULL), CNN_ERR_SIZE_MISMATCH);
    cnn_tensor short_x = {r.x, r.X.size - 4};
    assert_int_equal(r.api.step(r.t, &short_x, &r.Y, NULL), CNN_ERR_SIZE_MISMATCH);
    r.x[17] = NAN;
    float loss;
    assert_int_equal(r.api.step(r.t, &r.X, &r.Y, &loss), CNN_ERR_NOT_FINITE);
    assert_true(isnan(loss));
    assert_int_equal(r.api.apply_gradients(r.t), CNN_ERR_NOT_FINITE);
    assert_int_equal(r.api.steps(r.t), 0);
    for (int32_t i = 0; i < n; i++) {
        cnn_tensor_info info;
        r.api.param_info(r.t, i, &info);
        float *now = param(&r, i);
        assert_memory_equal(now, before[i], info.size);
        free(now);
        free(before[i]);
    }
    free(before);
    r.x[17] = 0.5f;
    assert_int_equal(r.api.step(r.t, &r.X, &r.Y, &loss), CNN_OK);
    close_run(&r);
}

/* Saved weights load back exactly into another instance. */
static void test_save_load(void **state)
{
    (void)state;
    Run r, u;
    open_run(&r, &cases[1], 1);
    open_run(&u, &cases[1], 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(r.api.step(r.t, &r.X, &r.Y, NULL), CNN_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/w.safetensors", tmpdir);
    assert_int_equal(r.api.save(r.t, path), CNN_OK);
    assert_int_equal(u.api.load(u.t, path), CNN_OK);
    for (int32_t i = 0; i < r.api.num_params(r.t); i++) {
        cnn_tensor_info info;
        r.api.param_info(r.t, i, &info);
        float *a = param(&r, i), *b = param(&u, i);
        assert_memory_equal(a, b, info.size);
        free(a);
        free(b);
    }
    close_run(&r);
    close_run(&u);
}

/* Profiling counts every kernel of the grad and apply models once per step: their
 * number is that of the kernels the three tables list, the eval model's not run. */
static void test_profiling(void **state)
{
    (void)state;
    Run r;
    open_run(&r, &cases[1], 2);
    assert_non_null(r.api.set_profiling);
    assert_int_equal(r.api.set_profiling(r.t, 1), CNN_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(r.api.step(r.t, &r.X, &r.Y, NULL), CNN_OK);
    int32_t n = r.api.num_kernels(r.t), twice = 0, never = 0, dw = 0, dx = 0;
    double seconds = 0;
    for (int32_t i = 0; i < n; i++) {
        cnn_kernel_info k;
        assert_int_equal(r.api.kernel_info(r.t, i, &k), CNN_OK);
        twice += k.calls == 2;
        never += k.calls == 0;
        dw += strstr(k.op, "conv2d_grad_weight") != NULL;
        dx += strstr(k.op, "conv2d_grad_input") != NULL;
        seconds += k.seconds;
    }
    assert_int_equal(twice + never, n);
    assert_true(twice > 0 && never > 0 && seconds > 0);
    assert_int_equal(dw, 2);
    assert_int_equal(dx, 1); /* conv1's input is the image: no gradient */
    close_run(&r);
}

/* Trained weights saved by the instance compile into an inference model.so (cnnc
 * --weights) that computes what the instance's evaluation does: the small residual
 * network, whose batch-norm running statistics the steps changed. */
static void test_saved_weights_deploy(void **state)
{
    (void)state;
    Case *c = &cases[2];
    Run r;
    open_run(&r, c, 2);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r.api.step(r.t, &r.X, &r.Y, NULL), CNN_OK);
    char weights[512], so[512], cmd[2048];
    snprintf(weights, sizeof weights, "%s/tiny.safetensors", tmpdir);
    snprintf(so, sizeof so, "%s/tiny_infer.so", tmpdir);
    assert_int_equal(r.api.save(r.t, weights), CNN_OK);
    snprintf(cmd, sizeof cmd, "%s/tools/cnnc %s/%s.cnn --batch=%lld --weights=%s -o %s",
             CNNC_BINARY_DIR, tmpdir, c->model, (long long)c->batch, weights, so);
    assert_int_equal(system(cmd), 0);
    cnn_tensor_info oi;
    assert_int_equal(r.api.output_info(r.t, &oi), CNN_OK);
    float *want = malloc(oi.size), *got = malloc(oi.size);
    cnn_tensor W = {want, oi.size}, G = {got, oi.size};
    assert_int_equal(r.api.evaluate(r.t, &r.X, NULL, NULL, &W), CNN_OK);
    ModelApi m;
    char err[1024];
    if (!model_api_open(&m, so, err, sizeof err)) fail_msg("%s", err);
    cnn_model *model;
    assert_int_equal(m.create(NULL, &model), CNN_OK);
    assert_int_equal(m.run(model, &r.X, 1, &G, 1), CNN_OK);
    expect_within("inference output", got, want, (int64_t)(oi.size / 4), TOL);
    m.destroy(model);
    dlclose(m.lib);
    free(want);
    free(got);
    close_run(&r);
}

/* The same flags give the same bytes; only libc, libm and the public API. */
static void test_deterministic_libc_only(void **state)
{
    (void)state;
    Case again = cases[0];
    compile_case(&again, "mlp_again");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", cases[0].so, again.so);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "ldd %s | grep -v -E 'linux-vdso|libc\\.so|libm\\.so|ld-linux|libpthread|libdl' "
             "| grep -q . && exit 1; nm -D --defined-only %s | awk '{print $3}' | "
             "grep -v '^cnn_' | grep -q . && exit 1; exit 0",
             cases[0].so, cases[0].so);
    assert_int_equal(system(cmd), 0);
}

/* cnn_model_create of a training model.so says what it is. */
static void test_not_an_inference_model(void **state)
{
    (void)state;
    ModelApi a;
    char err[1024];
    if (!model_api_open(&a, cases[0].so, err, sizeof err)) fail_msg("%s", err);
    cnn_model *m = (cnn_model *)&a;
    assert_int_equal(a.create(NULL, &m), CNN_ERR_INVALID_ARGUMENT);
    assert_null(m);
    assert_non_null(strstr(a.last_error(), "cnn_trainer_create"));
    dlclose(a.lib);
}

/* --emit=llvm and --emit=asm print the three modules, the description in the first. */
static void test_emits_code(void **state)
{
    (void)state;
    static const char *const want[][2] = {
        {"--emit=llvm", "@cnnc_model_(grad|apply|eval) = hidden|@cnnc_train = hidden"},
        {"--emit=asm", "cnnc_model_grad:|cnnc_train:|cnnc_model_apply:|cnnc_model_eval:"},
    };
    for (size_t i = 0; i < 2; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "test $(%s/tools/cnnc %s/models/mlp.cnn --train %s | grep -c -E '^(%s)') = 4",
                 CNNC_BINARY_DIR, CNNC_SOURCE_DIR, want[i][0], want[i][1]);
        assert_int_equal(system(cmd), 0);
    }
}

/* --train compiles for the CPU only, an object file is not one of its outputs, and a
 * network of several inputs is refused. */
static void test_refused_flags(void **state)
{
    (void)state;
    static const char *const flags[] = {"--target=cuda -o /dev/null", "--emit=obj",
                                        "--emit=plan"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s/tools/cnnc %s/models/mlp.cnn --train %s 2>/dev/null",
                 CNNC_BINARY_DIR, CNNC_SOURCE_DIR, flags[i]);
        int rc = system(cmd);
        assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    }
    /* The training API takes one input. */
    char src[512], so[512], cmd[2048];
    snprintf(src, sizeof src, "%s/two.cnn", tmpdir);
    snprintf(so, sizeof so, "%s/two.so", tmpdir);
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    fputs("network two(a: f32[N=1, 4], b: f32[N=1, 4]) {\n  return dense(a + b, 3) as fc\n}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/tools/cnnc %s --train -o %s 2>&1 | grep -q 'of one input'",
             CNNC_BINARY_DIR, src, so);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(access(so, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_matches_interpreter),
        cmocka_unit_test(test_mnist_cnn_matches_interpreter),
        cmocka_unit_test(test_batchnorm_residual_dropout_matches_interpreter),
        cmocka_unit_test(test_mse_adamw_matches_interpreter),
        cmocka_unit_test(test_loss_falls),
        cmocka_unit_test(test_bad_batches),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_saved_weights_deploy),
        cmocka_unit_test(test_profiling),
        cmocka_unit_test(test_deterministic_libc_only),
        cmocka_unit_test(test_not_an_inference_model),
        cmocka_unit_test(test_emits_code),
        cmocka_unit_test(test_refused_flags),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
