/* test_autodiff.c: the training step train_build makes (passes/autodiff.c). For the
 * MNIST CNN, the MLP and ResNet-18 (32×32, batch 2) the three graphs verify and run on
 * the interpreter, gradients equal central finite differences of the loss, an SGD
 * and an Adam step lower the loss, the eval graph computes the forward graph; the
 * optimizer graphs hold PyTorch's update; errors are located; `cnnc --train
 * --emit=ir` prints text that parses back to the same graphs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "test_util.h"
#include "train.h"

/* Finite differences of the f32 loss over a step of FD_EPS: the loss is rounded to
 * f32 (~1.2e-7 absolute at 2.3), so the difference carries ~1e-4 of noise; a
 * gradient element must be within FD_ABS + FD_REL * |fd|. */
#define FD_EPS 1e-3f
#define FD_ABS 5e-4
#define FD_REL 2e-2

/* A zoo model at `batch`, its parameters as PyTorch initializes them; ResNet-18 on
 * 64×64 images, which keeps every stage (layer4 is then 2×2: batch norm over 1×1 values
 * of 2 images would make the loss too ill-conditioned for finite differences). */
static Graph *load(const char *name, int64_t batch)
{
    char path[512];
    snprintf(path, sizeof path, "%s/models/%s.cnn", CNNC_SOURCE_DIR, name);
    char *text = read_text(path);
    assert_non_null(text);
    char *at = strstr(text, "224, 224");
    if (at)
        memcpy(at, " 64,  64", 8);
    Diag d;
    ir_diag_init(&d, stderr);
    FeOptions fo = {.batch = batch};
    Graph *g = fe_load_string(path, text, &fo, &d);
    assert_non_null(g);
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);
    free(text);
    train_init_params(g, 1);
    return g;
}

static void build(const Graph *g, const TrainOptions *o, TrainStep *s)
{
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(train_build(g, o, s, &d));
    assert_int_equal(d.nerrors, 0);
    assert_true(ir_verify(s->grad, &d) && ir_verify(s->apply, &d) && ir_verify(s->eval, &d));
    assert_true(ir_infer_shapes(s->grad, &d) && ir_infer_shapes(s->apply, &d) &&
                ir_infer_shapes(s->eval, &d));
    ir_diag_fini(&d);
}

static void run(const Graph *g, const float *const *inputs, InterpResult *r)
{
    char err[512] = "";
    if (!ir_interp(g, inputs, r, err, sizeof err))
        fail_msg("ir_interp of %s failed: %s", g->name, err);
}

static int32_t output(const Graph *g, const char *name)
{
    for (int32_t k = 0; k < g->noutputs; k++)
        if (!strcmp(g->outputs[k].name, name))
            return g->outputs[k].node;
    fail_msg("graph %s has no output '%s'", g->name, name);
    return -1;
}

/* A batch: input in [-1, 1), labels class indices, rng (seed 3, step 1), and the
 * parameters in `params` (the grad graph's input order). */
typedef struct Batch {
    const float **inputs;
    float *x, *labels, *rng;
    float **params;
    int32_t nparams;
} Batch;

static Batch batch_new(const TrainStep *s)
{
    Batch b = {.nparams = s->nparams};
    const Graph *g = s->grad;
    const TensorType *xt = &g->nodes[ir_input_node(g, 0)].type;
    const TensorType *lt = &g->nodes[s->label_node].type;
    b.x = malloc((size_t)ir_numel(xt) * sizeof(float));
    b.labels = malloc((size_t)ir_numel(lt) * sizeof(float));
    for (int64_t i = 0; i < ir_numel(xt); i++)
        b.x[i] = (float)sin(0.37 * (double)i + 0.5);
    for (int64_t i = 0; i < ir_numel(lt); i++)
        b.labels[i] = (float)((i * 7 + 3) % 10);
    b.rng = malloc(2 * sizeof(float));
    b.rng[0] = 3;
    b.rng[1] = 1;
    b.params = malloc((size_t)s->nparams * sizeof *b.params);
    b.inputs = malloc((size_t)(s->nparams + 3) * sizeof *b.inputs);
    b.inputs[0] = b.x;
    b.inputs[1] = b.labels;
    b.inputs[2] = b.rng;
    for (int32_t k = 0; k < s->nparams; k++) {
        size_t bytes = (size_t)ir_numel(&s->params[k].type) * sizeof(float);
        b.params[k] = malloc(bytes);
        memcpy(b.params[k], s->params[k].init, bytes);
        b.inputs[3 + k] = b.params[k];
    }
    return b;
}

static void batch_free(Batch *b)
{
    for (int32_t k = 0; k < b->nparams; k++)
        free(b->params[k]);
    free(b->params);
    free(b->inputs);
    free(b->x);
    free(b->labels);
    free(b->rng);
}

/* The grad graph cut down to the loss alone, for the many runs of finite differences. */
static Graph *loss_only(const Graph *grad)
{
    Graph *g = ir_graph_clone(grad);
    g->outputs[0] = grad->outputs[0];
    g->noutputs = 1;
    Diag d;
    ir_diag_init(&d, stderr);
    PassOptions po;
    pass_options_init(&po);
    assert_true(pass_dce(g, &po, &d));
    ir_diag_fini(&d);
    assert_int_equal(ir_num_inputs(g), ir_num_inputs(grad));
    return g;
}

static double loss_of(const Graph *g, const Batch *b)
{
    InterpResult r;
    run(g, b->inputs, &r);
    double l = (double)r.values[g->outputs[0].node][0];
    ir_interp_free(&r);
    return l;
}

/* Elements `at` (fractions of its size) of parameter `name`: the grad graph's
 * gradient against the finite difference of the loss. */
static void check_param(const TrainStep *s, const Graph *lg, Batch *b, const InterpResult *r,
                        const char *name, const double *at, int n)
{
    int32_t k = 0;
    while (k < s->nparams && strcmp(s->params[k].name, name))
        k++;
    assert_true(k < s->ntrainable);
    char gname[256];
    snprintf(gname, sizeof gname, "grad:%s", name);
    const float *grad = r->values[output(s->grad, gname)];
    int64_t numel = ir_numel(&s->params[k].type);
    for (int j = 0; j < n; j++) {
        int64_t i = (int64_t)(at[j] * (double)(numel - 1));
        float p0 = b->params[k][i];
        b->params[k][i] = p0 + FD_EPS;
        double up = loss_of(lg, b), h = (double)b->params[k][i];
        b->params[k][i] = p0 - FD_EPS;
        double down = loss_of(lg, b);
        h -= (double)b->params[k][i];
        b->params[k][i] = p0;
        double fd = (up - down) / h;
        if (!(fabs((double)grad[i] - fd) <= FD_ABS + FD_REL * fabs(fd)))
            fail_msg("%s[%lld]: gradient %.6g, finite difference %.6g", name, (long long)i,
                     (double)grad[i], fd);
    }
}

/* The derivative of the loss along a direction over the parameters named, the
 * gradient (random false) or a fixed pseudo-random one: the gradient's dot product with
 * the step actually taken (parameters are rounded to f32) against the change of the
 * loss. The step is sized for a change of about DIR_CHANGE, which dwarfs the loss's
 * rounding (~1e-7) while each element moves too little to cross many ReLU kinks;
 * within DIR_REL relative. */
#define DIR_CHANGE 2e-4
#define DIR_REL 1e-2

static void check_direction(const TrainStep *s, const Graph *lg, Batch *b, const InterpResult *r,
                            const char *const *names, int n, bool random)
{
    double norm = 0.0, slope = 0.0;
    float *dirs[16], *saved[16];
    const float *grads[16];
    int64_t sizes[16];
    assert_true(n <= 16);
    for (int j = 0; j < n; j++) {
        int32_t k = 0;
        while (k < s->ntrainable && strcmp(s->params[k].name, names[j]))
            k++;
        assert_true(k < s->ntrainable);
        char gname[256];
        snprintf(gname, sizeof gname, "grad:%s", names[j]);
        grads[j] = r->values[output(s->grad, gname)];
        sizes[j] = ir_numel(&s->params[k].type);
        saved[j] = b->params[k];
        dirs[j] = malloc((size_t)sizes[j] * sizeof(float));
        for (int64_t i = 0; i < sizes[j]; i++) {
            dirs[j][i] = random ? (float)sin(1.7 * (double)(i + 13 * j) + 0.3) : grads[j][i];
            norm += (double)dirs[j][i] * (double)dirs[j][i];
            slope += (double)dirs[j][i] * (double)grads[j][i];
        }
    }
    slope /= sqrt(norm); /* along the unit direction */
    double step = DIR_CHANGE / 2 / fmax(fabs(slope), 1e-3);
    double change = 0.0, loss[2];
    float *orig[16];
    for (int sign = 0; sign < 2; sign++) {
        for (int j = 0; j < n; j++) {
            if (sign == 0) {
                orig[j] = malloc((size_t)sizes[j] * sizeof(float));
                memcpy(orig[j], saved[j], (size_t)sizes[j] * sizeof(float));
            }
            for (int64_t i = 0; i < sizes[j]; i++)
                saved[j][i] = orig[j][i] + (float)((sign ? -step : step) *
                                                   (double)dirs[j][i] / sqrt(norm));
        }
        loss[sign] = loss_of(lg, b);
        for (int j = 0; j < n; j++)
            for (int64_t i = 0; i < sizes[j]; i++)
                change += (sign ? -1.0 : 1.0) * (double)grads[j][i] * (double)saved[j][i];
    }
    for (int j = 0; j < n; j++) {
        memcpy(saved[j], orig[j], (size_t)sizes[j] * sizeof(float));
        free(orig[j]);
        free(dirs[j]);
    }
    double fd = loss[0] - loss[1];
    if (!(fabs(change - fd) <= DIR_REL * fabs(fd)))
        fail_msg("along the %s direction: the gradient gives a change of %.7g, the loss "
                 "changes by %.7g", random ? "random" : "gradient", change, fd);
}

/* The loss is finite and the gradients of the parameters named agree with the loss's
 * change along two directions, and (`elements`) with finite differences at a few
 * elements each. */
static void check_model(const char *model, int64_t batch, const char *const *names, int n,
                        bool elements)
{
    Graph *g = load(model, batch);
    TrainOptions o;
    train_options_init(&o);
    TrainStep s;
    build(g, &o, &s);
    Batch b = batch_new(&s);
    InterpResult r;
    run(s.grad, b.inputs, &r);
    float loss = r.values[output(s.grad, "loss")][0];
    assert_true(isfinite(loss) && loss > 0.0f);
    Graph *lg = loss_only(s.grad);
    assert_float_equal(loss_of(lg, &b), loss, 0);
    check_direction(&s, lg, &b, &r, names, n, false);
    static const double at[3] = {0.0, 0.37, 1.0};
    for (int k = 0; elements && k < n; k++)
        check_param(&s, lg, &b, &r, names[k], at, 3);
    ir_interp_free(&r);
    ir_graph_free(lg);
    batch_free(&b);
    train_step_free(&s);
    ir_graph_free(g);
}

static void test_mlp_gradients(void **state)
{
    (void)state;
    static const char *const names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                        "fc3.weight", "fc3.bias"};
    check_model("mlp", 2, names, 6, true);
}

static void test_mnist_cnn_gradients(void **state)
{
    (void)state;
    static const char *const names[] = {"conv1.weight", "conv1.bias", "conv2.weight",
                                        "conv2.bias", "fc1.weight", "fc1.bias",
                                        "fc2.weight", "fc2.bias"};
    check_model("mnist_cnn", 2, names, 8, false);
}

static void test_resnet18_gradients(void **state)
{
    (void)state;
    static const char *const names[] = {"conv1.weight", "bn1.weight", "bn1.bias",
                                        "layer1.0.bn2.bias", "layer2.0.downsample.0.weight",
                                        "layer3.1.conv2.weight", "layer4.1.bn2.weight",
                                        "fc.weight", "fc.bias"};
    check_model("resnet18", 2, names, 9, false);
}

/* The grad graph's outputs and the parameter table in docs/training.md's order. */
static void test_resnet18_layout(void **state)
{
    (void)state;
    Graph *g = load("resnet18", 2);
    TrainOptions o;
    train_options_init(&o);
    o.optim = OPTIM_ADAM;
    TrainStep s;
    build(g, &o, &s);
    assert_int_equal(s.nparams, 62 + 40);
    assert_int_equal(s.ntrainable, 62);
    assert_string_equal(s.params[0].name, "conv1.weight");
    assert_string_equal(s.params[62].name, "bn1.running_mean");
    assert_int_equal(s.params[62].kind, TP_BUFFER);
    assert_int_equal(s.nstate, 2 * 62);
    assert_string_equal(s.state[0].name, "exp_avg:conv1.weight");
    assert_string_equal(s.state[1].name, "exp_avg_sq:conv1.weight");
    const Graph *gg = s.grad;
    assert_int_equal(ir_num_inputs(gg), 3 + s.nparams);
    assert_string_equal(gg->nodes[ir_input_node(gg, 1)].name, "labels");
    assert_int_equal(ir_input_node(gg, 1), s.label_node);
    assert_string_equal(gg->nodes[ir_input_node(gg, 2)].name, "rng");
    assert_int_equal(gg->noutputs, 2 + 62 + 40);
    assert_string_equal(gg->outputs[0].name, "loss");
    assert_string_equal(gg->outputs[1].name, "fc");
    assert_string_equal(gg->outputs[2].name, "grad:conv1.weight");
    assert_string_equal(gg->outputs[64].name, "new:bn1.running_mean");
    const Graph *a = s.apply;
    assert_int_equal(ir_num_inputs(a), 1 + 4 * 62);
    assert_string_equal(a->nodes[ir_input_node(a, 3)].name, "exp_avg:conv1.weight");
    assert_int_equal(a->noutputs, 3 * 62);
    assert_string_equal(a->outputs[62].name, "new:exp_avg:conv1.weight");
    /* batch-norm weights start at 1, biases at 0, running variance at 1 */
    assert_float_equal(s.params[1].init[5], 1.0, 0);
    assert_float_equal(s.params[2].init[5], 0.0, 0);
    assert_float_equal(s.params[63].init[5], 1.0, 0);
    train_step_free(&s);
    ir_graph_free(g);
}

/* The eval graph computes what the forward graph does with the same weights. */
static void test_eval_is_forward(void **state)
{
    (void)state;
    Graph *g = load("resnet18", 2);
    TrainOptions o;
    train_options_init(&o);
    TrainStep s;
    build(g, &o, &s);
    Batch b = batch_new(&s);
    const float **ins = malloc((size_t)(s.nparams + 1) * sizeof *ins);
    ins[0] = b.x;
    for (int32_t k = 0; k < s.nparams; k++)
        ins[1 + k] = b.params[k];
    InterpResult re, rf;
    run(s.eval, ins, &re);
    run(g, (const float *const[]){b.x}, &rf);
    int32_t ye = s.eval->outputs[0].node, yf = g->outputs[0].node;
    assert_int_equal(ir_numel(&s.eval->nodes[ye].type), 2000);
    assert_memory_equal(re.values[ye], rf.values[yf], 2000 * sizeof(float));
    ir_interp_free(&re);
    ir_interp_free(&rf);
    free(ins);
    batch_free(&b);
    train_step_free(&s);
    ir_graph_free(g);
}

/* One step of the apply graph on the grad graph's gradients: new parameters in
 * b->params, and PyTorch's SGD update checked at one element. */
static void step(const TrainStep *s, Batch *b, const float *hyper)
{
    InterpResult r;
    run(s->grad, b->inputs, &r);
    const Graph *a = s->apply;
    const float **ins = calloc((size_t)ir_num_inputs(a), sizeof *ins);
    float **state = calloc((size_t)s->nstate + 1, sizeof *state);
    ins[0] = hyper;
    for (int32_t k = 0, at = 1, st = 0; k < s->ntrainable; k++) {
        char name[256];
        snprintf(name, sizeof name, "grad:%s", s->params[k].name);
        ins[at++] = b->params[k];
        ins[at++] = r.values[output(s->grad, name)];
        for (; st < s->nstate && strchr(s->state[st].name, ':') &&
               !strcmp(strchr(s->state[st].name, ':') + 1, s->params[k].name);
             st++) {
            state[st] = calloc((size_t)ir_numel(&s->state[st].type), sizeof(float));
            ins[at++] = state[st];
        }
    }
    InterpResult ra;
    run(a, ins, &ra);
    for (int32_t k = 0; k < s->ntrainable; k++) {
        const float *p = ra.values[a->outputs[k].node];
        memcpy(b->params[k], p, (size_t)ir_numel(&s->params[k].type) * sizeof(float));
    }
    ir_interp_free(&ra);
    ir_interp_free(&r);
    for (int32_t k = 0; k < s->nstate; k++)
        free(state[k]);
    free(state);
    free(ins);
}

/* SGD (p - lr g at every element) and Adam lower the MLP's loss on a batch. */
static void test_steps_lower_the_loss(void **state)
{
    (void)state;
    Graph *g = load("mlp", 4);
    for (int optim = 0; optim < 2; optim++) {
        TrainOptions o;
        train_options_init(&o);
        o.optim = optim ? OPTIM_ADAM : OPTIM_SGD;
        TrainStep s;
        build(g, &o, &s);
        Batch b = batch_new(&s);
        Graph *lg = loss_only(s.grad);
        double before = loss_of(lg, &b);
        InterpResult r;
        run(s.grad, b.inputs, &r);
        float w0 = b.params[0][7], g0 = r.values[output(s.grad, "grad:fc1.weight")][7];
        ir_interp_free(&r);
        const float sgd[3] = {0.1f, 0, 0}, adam[3] = {1e-3f, 0.1f, 0.001f};
        step(&s, &b, optim ? adam : sgd);
        double after = loss_of(lg, &b);
        if (!optim)
            assert_float_equal(b.params[0][7], (float)((double)w0 - 0.1 * (double)g0), 1e-9);
        if (!(after < before - 1e-3))
            fail_msg("%s: loss %.6g before the step, %.6g after", optim ? "adam" : "sgd", before,
                     after);
        ir_graph_free(lg);
        batch_free(&b);
        train_step_free(&s);
    }
    ir_graph_free(g);
}

/* SGD with momentum: the buffer and the update of PyTorch's torch.optim.SGD. */
static void test_sgd_momentum_graph(void **state)
{
    (void)state;
    Graph *g = load("mlp", 1);
    TrainOptions o;
    train_options_init(&o);
    o.momentum = 0.9f;
    o.nesterov = true;
    o.weight_decay = 0.01f;
    TrainStep s;
    build(g, &o, &s);
    assert_int_equal(s.nstate, s.ntrainable);
    assert_string_equal(s.state[0].name, "momentum:fc1.weight");
    assert_null(s.state[0].init);
    const Node *upd = &s.apply->nodes[s.apply->outputs[0].node];
    assert_int_equal(upd->op, OP_SGD_STEP);
    assert_true(upd->attrs.optim.nesterov);
    assert_float_equal(upd->attrs.optim.weight_decay, 0.01, 0);
    assert_int_equal(s.apply->nodes[upd->inputs[2]].op, OP_SGD_MOMENTUM);
    assert_string_equal(s.apply->outputs[s.ntrainable].name, "new:momentum:fc1.weight");
    train_step_free(&s);
    ir_graph_free(g);
}

/* ---- errors -------------------------------------------------------------- */

static void expect_error(const char *src, LossKind loss, bool bound, const char *want)
{
    Diag d;
    ir_diag_init(&d, stderr);
    FeOptions fo = {0};
    Graph *g = fe_load_string("bad.cnn", src, &fo, &d);
    assert_non_null(g);
    ir_diag_fini(&d);
    if (bound)
        train_init_params(g, 0);
    Captured c;
    capture(&c);
    TrainOptions o;
    train_options_init(&o);
    o.loss = loss;
    TrainStep s;
    assert_false(train_build(g, &o, &s, &c.d));
    assert_null(s.grad);
    fflush(c.f);
    if (!strstr(c.text, want))
        fail_msg("expected '%s' in:\n%s", want, c.text);
    release(&c);
    ir_graph_free(g);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("network n(x: f32[2, 8]) {\n  y = dense(x, 4) as fc\n  return softmax(y)\n}\n",
                 LOSS_CROSS_ENTROPY, true, "bad.cnn:3:10: error: training: no gradient for softmax");
    expect_error("network n(x: f32[2, 3, 4, 4]) {\n  return conv2d(x, 4, kernel=1) as c\n}\n",
                 LOSS_CROSS_ENTROPY, true, "error: training: cross-entropy needs logits [N, classes]");
    expect_error("network n(x: f32[2, 8]) {\n  y = dense(x, 4) as a\n  z = dense(x, 4) as b\n"
                 "  return y, z\n}\n",
                 LOSS_MSE, true, "bad.cnn:3:7: error: training: the network must have one output");
    expect_error("network n(x: f32[2, 8]) {\n  return dense(x, 4) as fc\n}\n", LOSS_MSE, false,
                 "bad.cnn:2:10: error: training: parameter 'fc.weight' has no initial value");
}

/* MSE on a 4-d output: labels shaped like it, gradient against finite differences. */
static void test_mse_conv(void **state)
{
    (void)state;
    Diag d;
    ir_diag_init(&d, stderr);
    FeOptions fo = {0};
    Graph *g = fe_load_string("mse.cnn", "network n(x: f32[2, 3, 5, 5]) {\n"
                              "  y = avgpool(tanh(conv2d(x, 4, kernel=3, pad=1) as c), kernel=2)\n"
                              "  return batchnorm(y) as bn\n}\n", &fo, &d);
    assert_non_null(g);
    ir_diag_fini(&d);
    train_init_params(g, 5);
    TrainOptions o;
    train_options_init(&o);
    o.loss = LOSS_MSE;
    TrainStep s;
    build(g, &o, &s);
    assert_int_equal(s.grad->nodes[s.label_node].type.rank, 4);
    Batch b = batch_new(&s);
    for (int64_t i = 0; i < ir_numel(&s.grad->nodes[s.label_node].type); i++)
        b.labels[i] = (float)cos((double)i);
    InterpResult r;
    run(s.grad, b.inputs, &r);
    Graph *lg = loss_only(s.grad);
    static const double at[3] = {0.0, 0.5, 1.0};
    check_param(&s, lg, &b, &r, "c.weight", at, 3);
    check_param(&s, lg, &b, &r, "c.bias", at, 3);
    check_param(&s, lg, &b, &r, "bn.weight", at, 3);
    ir_interp_free(&r);
    ir_graph_free(lg);
    batch_free(&b);
    train_step_free(&s);
    ir_graph_free(g);
}

/* The other gradient rules: grouped conv2d, chunk and concat, channel_shuffle, tensor
 * arithmetic with a broadcast parameter, pad, the pools, dense over the channels
 * (lowered to a 1×1 conv2d) and over the last dim of a 4-d value, permute, dropout;
 * every parameter's gradient against finite differences at three elements. */
static const char layers_src[] =
    "network layers(x: f32[N=2, 4, 6, 6]) {\n"
    "  a = tanh(conv2d(x, 8, kernel=3, pad=1, groups=2) as c1)\n"
    "  parts = chunk(a, 2)\n"
    "  b = channel_shuffle(concat(parts[1], sigmoid(parts[0])), 4)\n"
    "  s = parameter([8, 1, 1]) as scale\n"
    "  d = b * s / (b * b + 1) - s\n"
    "  e = pad(d, [1, 2, 0, 1])\n"
    "  f = adaptive_avgpool(avgpool(e, kernel=2, stride=1), 3)\n"
    "  g = permute(dense(f, 5, axis=1) as fc1, [0, 2, 3, 1])\n"
    "  h = silu(dense(g, 6, axis=-1) as fc2)\n"
    "  k = maxpool(permute(h, [0, 3, 1, 2]), kernel=2, stride=1)\n"
    "  m = dropout(global_avgpool(k) + k, p=0.2)\n"
    "  return dense(flatten(m), 3) as fc3\n"
    "}\n";

static void test_more_layers(void **state)
{
    (void)state;
    Diag d;
    ir_diag_init(&d, stderr);
    FeOptions fo = {0};
    Graph *g = fe_load_string("layers.cnn", layers_src, &fo, &d);
    assert_non_null(g);
    ir_diag_fini(&d);
    train_init_params(g, 2);
    for (int32_t i = 0; i < g->nnodes; i++)
        if (!strcmp(g->nodes[i].name, "scale"))
            for (int k = 0; k < 8; k++)
                g->nodes[i].data[k] = 0.5f + 0.1f * (float)k;
    TrainOptions o;
    train_options_init(&o);
    o.loss = LOSS_MSE;
    TrainStep s;
    build(g, &o, &s);
    /* fc1, over the channels, is a 1×1 conv2d in the graphs; its table entry keeps
     * the [5, 8] of the language and of weight files */
    int32_t fc1 = 0;
    while (strcmp(s.params[fc1].name, "fc1.weight"))
        fc1++;
    assert_int_equal(s.params[fc1].type.rank, 2);
    assert_int_equal(s.grad->nodes[ir_input_node(s.grad, 3 + fc1)].type.rank, 4);
    Batch b = batch_new(&s);
    for (int64_t i = 0; i < ir_numel(&s.grad->nodes[s.label_node].type); i++)
        b.labels[i] = (float)cos((double)i);
    InterpResult r;
    run(s.grad, b.inputs, &r);
    Graph *lg = loss_only(s.grad);
    static const double at[3] = {0.0, 0.5, 1.0};
    for (int32_t k = 0; k < s.ntrainable; k++)
        check_param(&s, lg, &b, &r, s.params[k].name, at, 3);
    ir_interp_free(&r);
    ir_graph_free(lg);
    batch_free(&b);
    train_step_free(&s);
    ir_graph_free(g);
}

/* ---- the command line ---------------------------------------------------- */

/* What a cnnc command prints to standard output (and its status). */
static char *cnnc(const char *args, int *status)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/tools/cnnc %s 2>&1", CNNC_BINARY_DIR, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        fwrite(buf, 1, n, out);
    fclose(out);
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return text;
}

/* Each graph section of `cnnc --train --emit=ir` parses and prints back the same. */
static void test_emit_ir_round_trip(void **state)
{
    (void)state;
    int status;
    char *text = cnnc(CNNC_SOURCE_DIR "/models/mlp.cnn --train --optimizer=adam --emit=ir",
                      &status);
    assert_int_equal(status, 0);
    assert_true(!strncmp(text, "# grad\n", 7));
    char *apply = strstr(text, "# apply\n");
    assert_non_null(apply);
    *apply = '\0';
    apply += strlen("# apply\n");
    const char *sections[2] = {text + strlen("# grad\n"), apply};
    for (int k = 0; k < 2; k++) {
        Diag d;
        ir_diag_init(&d, stderr);
        Graph *g = ir_parse_text("train.ir", sections[k], &d);
        assert_non_null(g);
        assert_true(ir_verify(g, &d));
        ir_diag_fini(&d);
        char *again = print_graph(g);
        assert_string_equal(again, sections[k]);
        free(again);
        ir_graph_free(g);
    }
    free(text);
}

static void test_cli_errors(void **state)
{
    (void)state;
    static const struct { const char *args, *want; } cases[] = {
        {"--train --lr=fast --emit=ir", "--lr expects a finite number, got 'fast'"},
        {"--train --loss=hinge --emit=ir", "--loss expects cross_entropy or mse, got 'hinge'"},
        {"--train --optimizer=rmsprop --emit=ir", "expects sgd, adam or adamw"},
        {"--train --momentum=-1 --emit=ir", "momentum must be finite and >= 0"},
        {"--train --optimizer=adam --beta2=1 --emit=ir", "beta2 must be in [0, 1)"},
        {"--train --nesterov --emit=ir", "Nesterov momentum needs SGD with a momentum"},
        {"--momentum=0.9 --emit=ir", "--momentum=0.9 is an option of --train"},
        {"--train --emit=dot", "other kinds are not available for training"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512];
        snprintf(args, sizeof args, "%s/models/mlp.cnn %s", CNNC_SOURCE_DIR, cases[i].args);
        int status;
        char *text = cnnc(args, &status);
        assert_int_equal(status, 1);
        if (!strstr(text, cases[i].want))
            fail_msg("cnnc %s: expected '%s' in:\n%s", cases[i].args, cases[i].want, text);
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_gradients),
        cmocka_unit_test(test_mnist_cnn_gradients),
        cmocka_unit_test(test_resnet18_gradients),
        cmocka_unit_test(test_resnet18_layout),
        cmocka_unit_test(test_eval_is_forward),
        cmocka_unit_test(test_steps_lower_the_loss),
        cmocka_unit_test(test_sgd_momentum_graph),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_mse_conv),
        cmocka_unit_test(test_more_layers),
        cmocka_unit_test(test_emit_ir_round_trip),
        cmocka_unit_test(test_cli_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
