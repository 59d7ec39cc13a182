/* test_nan.c: NaN and infinities through compiled models. Inputs are random
 * with a few NaN, +inf and -inf pixels, item by item ('f' all finite, the
 * control; 'm' NaN, +inf and -inf; 'i' +inf and -inf; 'n' NaN); the model.so
 * must agree with the reference interpreter, which follows PyTorch (relu(NaN)
 * = NaN, clamp(+inf, 0, 6) = 6, max_pool2d over a NaN = NaN): NaN and each
 * infinity exactly where it has them, finite values within 1e-4.
 * `test_nan --large` checks ResNet-18, ResNet-50 and VGG-16 (slow). */
#include "codegen_harness.h"

typedef struct NanCase {
    const char *name;
    const char *text;  /* NULL: models/NAME.cnn */
    const char *items; /* the kind of each batch item, as above; its length is the batch */
    int32_t specials;  /* non-finite elements per item of each input */
} NanCase;

static float *nan_input(const Graph *g, int32_t i, const NanCase *c)
{
    const Node *in = &g->nodes[ir_input_node(g, i)];
    int64_t n = ir_numel(&in->type), batch = (int64_t)strlen(c->items), per = n / batch;
    float *x = ir_xmalloc((size_t)n * sizeof *x);
    Rng r = ir_rng(3, in->name);
    for (int64_t k = 0; k < n; k++)
        x[k] = (float)(2.0 * ir_rng_uniform(&r) - 1.0);
    for (int64_t b = 0; b < batch; b++) {
        char kind = c->items[b];
        const char *kinds = kind == 'm' ? "n+-" : kind == 'i' ? "+-" : "n";
        if (kind != 'f') poke_nonfinite(x + b * per, per, c->specials, kinds, (uint64_t)b);
    }
    return x;
}

/* Runs model.so `so` on `ins` with 2 threads; the outputs are malloc'd. */
static float **run_on(const char *so, float **ins, int32_t nin, int32_t *nout)
{
    Api a = open_so(so);
    cnn_options opt;
    a.options_init(&opt);
    opt.num_threads = 2;
    cnn_model *m;
    assert_int_equal(a.create(&opt, &m), CNN_OK);
    assert_int_equal(a.num_inputs(m), nin);
    int32_t no = a.num_outputs(m);
    cnn_tensor in[8], *out = ir_xcalloc((size_t)no, sizeof *out);
    float **outs = ir_xcalloc((size_t)no, sizeof *outs);
    for (int32_t i = 0; i < nin; i++) {
        cnn_tensor_info info;
        assert_int_equal(a.input_info(m, i, &info), CNN_OK);
        in[i] = (cnn_tensor){ins[i], info.size};
    }
    for (int32_t k = 0; k < no; k++) {
        cnn_tensor_info info;
        assert_int_equal(a.output_info(m, k, &info), CNN_OK);
        outs[k] = ir_xmalloc(info.size);
        out[k] = (cnn_tensor){outs[k], info.size};
    }
    assert_int_equal(a.run(m, in, nin, out, no), CNN_OK);
    free(out);
    a.destroy(m);
    dlclose(a.lib);
    *nout = no;
    return outs;
}

/* The outputs of a control item are all finite. */
static void expect_finite_item(const char *what, const float *v, int64_t n, const NanCase *c,
                               int64_t b)
{
    int64_t per = n / (int64_t)strlen(c->items);
    for (int64_t k = b * per; k < (b + 1) * per; k++)
        if (!isfinite(v[k])) fail_msg("%s: control item %lld holds %g", what, (long long)b, v[k]);
}

/* Compiled for `cpu` (NULL: the host) with `block` (as Build.block). */
static void check_nan_case(const NanCase *c, const char *cpu, int32_t block)
{
    Build b = {.cpu = cpu, .block = block, .opt = 2, .batch = (int64_t)strlen(c->items)};
    char *so = build_so(c->name, c->text, &b);
    Graph *g = load(c->name, c->text, &b);
    int32_t nin = ir_num_inputs(g), nout;
    float **ins = ir_xcalloc((size_t)nin, sizeof *ins);
    for (int32_t i = 0; i < nin; i++)
        ins[i] = nan_input(g, i, c);
    float **outs = run_on(so, ins, nin, &nout);
    InterpResult res;
    char err[256];
    if (!ir_interp(g, (const float *const *)ins, &res, err, sizeof err))
        fail_msg("interp: %s", err);
    assert_int_equal(nout, g->noutputs);
    int64_t special = 0;
    for (int32_t k = 0; k < nout; k++) {
        char what[256];
        snprintf(what, sizeof what, "%s output %s (items %s, cpu %s, block %d)", c->name,
                 g->outputs[k].name, c->items, cpu ? cpu : "host", block);
        int32_t node = g->outputs[k].node;
        int64_t n = ir_numel(&g->nodes[node].type);
        special += expect_within_nonfinite(what, outs[k], res.values[node], n, TOL);
        for (int64_t item = 0; c->items[item]; item++)
            if (c->items[item] == 'f') expect_finite_item(what, outs[k], n, c, item);
    }
    if (!special) fail_msg("%s: no output of the interpreter is NaN or infinite", c->name);
    ir_interp_free(&res);
    free_all(outs, nout);
    free_all(ins, nin);
    ir_graph_free(g);
    remove(so);
    free(so);
}

/* ---- small models: every activation, pooling and epilogue ------------------ */

/* Unfused ops on an input with about 3% non-finite elements. */
static const NanCase ops = {
    "nan_ops",
    "network nan_ops(x: f32[N=4, 16, 9, 9]) {\n"
    "  a = relu(x); b = relu6(x); c = clip(x, -0.5, 0.5); d = leaky_relu(x, alpha=0.1)\n"
    "  e = sigmoid(x); f = tanh(x); g = silu(x); s = hardswish(x); t = hardsigmoid(x)\n"
    "  h = maxpool(x, kernel=3, stride=2, pad=1); k = maxpool(x, kernel=2, ceil_mode=true)\n"
    "  m = avgpool(x, kernel=3, stride=2, pad=1); n = global_avgpool(x)\n"
    "  p = softmax(x, axis=3); q = x + x; r = x * global_avgpool(x)\n"
    "  u = relu6(x + 3) / 6; v = 2 - x * 0.5; w = x - global_avgpool(x)\n"
    "  y = global_avgpool(x) / x; z = x / (x + 1); a2 = gelu(x); b2 = gelu(x, approximate=\"tanh\")\n"
    "  return a, b, c, d, e, f, g, h, k, m, n, p, q, r, s, t, u, v, w, y, z, a2, b2\n"
    "}\n",
    "fmin",
    40,
};

/* Fused epilogues of 1x1 convolutions over 4 channels (a non-finite input
 * pixel gives +inf, -inf or NaN at that pixel only), dense and softmax. */
static const NanCase fused = {
    "nan_fused",
    "network nan_fused(x: f32[N=4, 4, 8, 8]) {\n"
    "  a = relu(conv2d(x, 16, kernel=1) as c1)\n"
    "  b = relu6(conv2d(x, 16, kernel=1) as c2)\n"
    "  c = leaky_relu(conv2d(x, 16, kernel=1) as c3, alpha=0.1)\n"
    "  d = clip(conv2d(x, 16, kernel=1, bias=false) as c4, -0.5, 0.5)\n"
    "  e = relu(conv2d(x, 16, kernel=1) as c5 + a)\n"
    "  f = sigmoid(conv2d(x, 16, kernel=1) as c6)\n"
    "  g = silu(conv2d(x, 16, kernel=1) as c7)\n"
    "  h = tanh(conv2d(x, 16, kernel=1) as c8)\n"
    "  k = maxpool(relu(conv2d(x, 16, kernel=1) as c9), kernel=3, stride=2)\n"
    "  m = softmax(dense(flatten(maxpool(x, kernel=4)), 10) as fc1)\n"
    "  n = relu(dense(flatten(maxpool(x, kernel=4)), 10) as fc2)\n"
    "  p = hardswish(conv2d(x, 16, kernel=1) as c10)\n"
    "  q = hardsigmoid(dense(flatten(maxpool(x, kernel=4)), 10) as fc3)\n"
    "  r = relu6(conv2d(x, 16, kernel=1) as c11 * 0.5 - 1); s = global_avgpool(r) - r\n"
    "  t = r / (global_avgpool(r) + 1); u = gelu(conv2d(x, 16, kernel=1) as c12)\n"
    "  v = gelu(dense(flatten(maxpool(x, kernel=4)), 10) as fc4, approximate=\"tanh\")\n"
    "  return a, b, c, d, e, f, g, h, k, m, n, p, q, r, s, t, u, v\n"
    "}\n",
    "fmin",
    3,
};

static void test_small_ops(void **state)
{
    (void)state;
    check_nan_case(&ops, NULL, -1);
    check_nan_case(&ops, NULL, 0);
    check_nan_case(&ops, "x86-64-v3", -1);
}

static void test_small_fused(void **state)
{
    (void)state;
    check_nan_case(&fused, NULL, -1);
    check_nan_case(&fused, NULL, 0);
    check_nan_case(&fused, "x86-64-v3", -1);
}

/* ---- the zoo ------------------------------------------------------------- */

static void test_zoo(void **state)
{
    (void)state;
    static const NanCase zoo[] = {
        {"mlp", NULL, "fmin", 3},
        {"mnist_cnn", NULL, "fmin", 3},
        {"squeezenet1_1", NULL, "fmi", 6},
        {"mobilenet_v2", NULL, "mi", 6},
    };
    for (size_t i = 0; i < sizeof zoo / sizeof zoo[0]; i++)
        check_nan_case(&zoo[i], NULL, -1);
}

static void test_zoo_large(void **state)
{
    (void)state;
    static const NanCase zoo[] = {
        {"resnet18", NULL, "i", 6},
        {"resnet50", NULL, "m", 6},
        {"vgg16", NULL, "i", 6},
    };
    for (size_t i = 0; i < sizeof zoo / sizeof zoo[0]; i++)
        check_nan_case(&zoo[i], NULL, -1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_ops),
        cmocka_unit_test(test_small_fused),
        cmocka_unit_test(test_zoo),
    };
    const struct CMUnitTest large[] = {
        cmocka_unit_test(test_zoo_large),
    };
    if (argc > 1 && !strcmp(argv[1], "--large"))
        return cmocka_run_group_tests(large, make_tmpdir, remove_tmpdir);
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
