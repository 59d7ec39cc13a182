/* test_passes.c: the optimizer. Every pass must keep the numbers: small models
 * and the lighter zoo models are run on the reference interpreter before and
 * after the pipeline (blocks 0, 8, 16, and each optional pass switched off),
 * with max|delta| <= 1e-4 * max|ref|. Golden before/after IR of each pass
 * (tests/passes/NAME.*; CNNC_UPDATE_GOLDEN=1 rewrites them), and unit tests
 * of the graph utilities, constant folding, the plan and its checker.
 * MobileNetV2 and ResNet-18 run in test_passes_mid.c, VGG-16 and ResNet-50 in
 * test_passes_zoo.c (both slow: the interpreter is naive). */
#include "passes/check.h"

#define GOLDEN_DIR "tests/passes/"

/* ---- numbers before and after ------------------------------------------------ */

static void check_model(const char *path)
{
    Model m = {.path = path};
    model_init(&m);
    check_all_configs(&m);
    model_fini(&m);
}

static void test_small_models(void **state)
{
    static const char *const names[] = {"simplify",    "fold_bn",     "fuse",    "layout",
                                        "concat_chain", "concat_flat", "pad_pool", "fuse_dw",
                                        "fuse_scale",  "fuse_pool"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, GOLDEN_DIR "%s.cnn", names[i]);
        check_model(path);
    }
}

static void test_mnist_cnn(void **state) { check_model("models/mnist_cnn.cnn"); }
static void test_mlp(void **state) { check_model("models/mlp.cnn"); }
static void test_squeezenet1_1(void **state) { check_model("models/squeezenet1_1.cnn"); }

/* Every zoo model is planned at every block; the plans must check. */
static void test_plan_every_zoo_model(void **state)
{
    static const char *const zoo[] = {"mlp", "mnist_cnn", "squeezenet1_1", "mobilenet_v2",
                                      "resnet18", "resnet50", "vgg16"};
    static const int32_t blocks[] = {0, 8, 16};
    for (size_t i = 0; i < sizeof zoo / sizeof zoo[0]; i++)
        for (size_t b = 0; b < 3; b++) {
            char path[128];
            snprintf(path, sizeof path, "models/%s.cnn", zoo[i]);
            report_plan(path, blocks[b]);
        }
}

/* ---- golden IR --------------------------------------------------------------- */

/* The text must equal the golden file (or replace it when updating), and
 * parse back into a graph that verifies. */
static void expect_golden(const char *text, const char *path)
{
    expect_file(text, path);
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = ir_parse_text(path, text, &d);
    assert_non_null(g);
    assert_true(ir_verify(g, &d));
    ir_graph_free(g);
    ir_diag_fini(&d);
}

/* NAME.cnn unoptimized is NAME.before.ir; the pipeline (block 8) dumped after
 * PASS is NAME.after-PASS.ir. */
static void check_golden(const char *name, const char *pass)
{
    char path[256];
    Model m = {.path = path};
    snprintf(path, sizeof path, GOLDEN_DIR "%s.cnn", name);
    Graph *g = model_load(&m);
    char *before = print_graph(g), *after = NULL;
    snprintf(path, sizeof path, GOLDEN_DIR "%s.before.ir", name);
    expect_golden(before, path);
    size_t len = 0;
    PassOptions opt;
    pass_options_init(&opt);
    opt.block = 8;
    opt.verify = true;
    opt.dump_after = pass_index(pass);
    opt.dump = open_memstream(&after, &len);
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(pass_run_pipeline(g, &opt, &d));
    ir_diag_fini(&d);
    fclose(opt.dump);
    snprintf(path, sizeof path, GOLDEN_DIR "%s.after-%s.ir", name, pass);
    expect_golden(after, path);
    free(before);
    free(after);
    ir_graph_free(g);
}

static void test_golden(void **state)
{
    check_golden("simplify", "simplify");
    check_golden("fold_bn", "fold_bn");
    check_golden("fuse", "fuse");
    check_golden("layout", "layout");
}

/* ---- units -------------------------------------------------------------------- */

static Graph *parse(const char *text)
{
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = ir_parse_text("unit.ir", text, &d);
    ir_diag_fini(&d);
    assert_non_null(g);
    return g;
}

static void bind(Graph *g, const char *name, const float *v)
{
    int32_t id = ir_find_node(g, name);
    assert_true(id >= 0);
    size_t bytes = (size_t)ir_numel(&g->nodes[id].type) * sizeof(float);
    g->nodes[id].data = ir_alloc(g->arena, bytes);
    memcpy(g->nodes[id].data, v, bytes);
}

/* relu(w) + b is computed at compile time; the chain folds into one weight
 * and the weights it used are gone. */
static void test_fold_const(void **state)
{
    Graph *g = parse("graph c {\n"
                     "  %0 = input \"x\" : f32[1,3]\n"
                     "  %1 = param \"w\" : f32[1,3]\n"
                     "  %2 = param \"b\" : f32[3]\n"
                     "  %3 = relu(%1) \"r\" : f32[1,3]\n"
                     "  %4 = add(%3, %2) \"s\" : f32[1,3]\n"
                     "  %5 = mul(%0, %4) \"y\" : f32[1,3]\n"
                     "  return %5 \"y\"\n"
                     "}\n");
    bind(g, "w", (const float[]){-1, 2, 3});
    bind(g, "b", (const float[]){0.5f, 0.5f, -1});
    PassOptions opt;
    pass_options_init(&opt);
    assert_true(pass_fold_const(g, &opt, NULL));
    assert_true(ir_verify(g, NULL));
    assert_int_equal(g->nnodes, 3);
    int32_t s = ir_find_node(g, "s");
    assert_int_equal(g->nodes[s].op, OP_PARAM);
    assert_true(g->nodes[s].data[0] == 0.5f && g->nodes[s].data[1] == 2.5f &&
                g->nodes[s].data[2] == 2.0f);
    assert_int_equal(ir_find_node(g, "w"), -1);
    assert_int_equal(ir_find_node(g, "r"), -1);
    ir_graph_free(g);
}

/* A node made to use a later one is moved before it; an ordered graph keeps
 * its order; unused nodes go, graph inputs stay. */
static void test_toposort_and_remove(void **state)
{
    Graph *g = parse("graph t {\n"
                     "  %0 = input \"x\" : f32[1,4]\n"
                     "  %1 = input \"unused\" : f32[1,4]\n"
                     "  %2 = relu(%0) \"a\" : f32[1,4]\n"
                     "  %3 = sigmoid(%0) \"b\" : f32[1,4]\n"
                     "  %4 = tanh(%0) \"dead\" : f32[1,4]\n"
                     "  return %2 \"y\"\n"
                     "}\n");
    pass_toposort(g);
    assert_string_equal(g->nodes[3].name, "b");
    g->nodes[2].inputs[0] = 3; /* a = relu(b), b defined after a */
    pass_toposort(g);
    assert_string_equal(g->nodes[2].name, "b");
    assert_string_equal(g->nodes[3].name, "a");
    assert_int_equal(g->nodes[3].inputs[0], 2);
    assert_int_equal(g->outputs[0].node, 3);
    assert_true(ir_verify(g, NULL));
    assert_int_equal(pass_remove_unused(g, NULL), 1);
    assert_int_equal(g->nnodes, 4);
    assert_int_equal(ir_find_node(g, "dead"), -1);
    assert_true(ir_find_node(g, "unused") >= 0);
    assert_true(ir_verify(g, NULL));
    ir_graph_free(g);
}

static int32_t node_named(const Graph *g, const char *name)
{
    int32_t id = ir_find_node(g, name);
    if (id < 0)
        fail_msg("no node '%s'", name);
    return id;
}

/* fold_bn computes W' in place only in a weight no other node uses: "w" feeds two
 * convs, each folded with a batchnorm of its own, so the first fold copies it and the
 * second (c2 then its only user) rescales it in place; "v" feeds one conv, and its
 * buffer becomes the folded weight's at once. */
static void test_fold_bn_in_place(void **state)
{
    Graph *g = parse("graph f {\n"
                     "  %0 = input \"x\" : f32[1,1,2,2]\n"
                     "  %1 = param \"w\" : f32[2,1,1,1]\n"
                     "  %2 = param \"v\" : f32[2,1,1,1]\n"
                     "  %3 = param \"g\" : f32[2]\n"
                     "  %4 = param \"b\" : f32[2]\n"
                     "  %5 = param \"m\" : f32[2]\n"
                     "  %6 = param \"s\" : f32[2]\n"
                     "  %7 = conv2d(%0, %1) {kernel=[1,1]} \"c1\" : f32[1,2,2,2]\n"
                     "  %8 = batchnorm(%7, %3, %4, %5, %6) {eps=0} \"n1\" : f32[1,2,2,2]\n"
                     "  %9 = conv2d(%0, %1) {kernel=[1,1]} \"c2\" : f32[1,2,2,2]\n"
                     "  %10 = batchnorm(%9, %3, %4, %5, %6) {eps=0} \"n2\" : f32[1,2,2,2]\n"
                     "  %11 = conv2d(%0, %2) {kernel=[1,1]} \"c3\" : f32[1,2,2,2]\n"
                     "  %12 = batchnorm(%11, %3, %4, %5, %6) {eps=0} \"n3\" : f32[1,2,2,2]\n"
                     "  %13 = add(%8, %10) \"a\" : f32[1,2,2,2]\n"
                     "  %14 = add(%13, %12) \"y\" : f32[1,2,2,2]\n"
                     "  return %14 \"y\"\n"
                     "}\n");
    bind(g, "w", (const float[]){2, 3});
    bind(g, "v", (const float[]){5, 7});
    bind(g, "g", (const float[]){1, 1});
    bind(g, "b", (const float[]){0, 0});
    bind(g, "m", (const float[]){0, 0});
    bind(g, "s", (const float[]){4, 0.25f}); /* scales 1/2 and 2 */
    const float *w = g->nodes[node_named(g, "w")].data, *v = g->nodes[node_named(g, "v")].data;
    PassOptions opt;
    pass_options_init(&opt);
    assert_true(pass_fold_bn(g, &opt, NULL));
    assert_true(ir_verify(g, NULL));
    const Node *c1 = &g->nodes[node_named(g, "c1")], *c2 = &g->nodes[node_named(g, "c2")];
    const Node *c3 = &g->nodes[node_named(g, "c3")];
    const float *w1 = g->nodes[c1->inputs[1]].data, *w2 = g->nodes[c2->inputs[1]].data;
    const float *w3 = g->nodes[c3->inputs[1]].data;
    assert_true(w1 != w && w2 == w);
    assert_true(w1[0] == 1 && w1[1] == 6 && w2[0] == 1 && w2[1] == 6);
    assert_ptr_equal(w3, v); /* the sole one is the folded weight */
    assert_true(w3[0] == 2.5f && w3[1] == 14);
    ir_graph_free(g);
}

/* A conv followed by two batchnorms folds twice: the second fold rescales, in place,
 * the weight the first made, and the first fold's weight and bias go. */
static void test_fold_bn_twice(void **state)
{
    Graph *g = parse("graph f {\n"
                     "  %0 = input \"x\" : f32[1,1,2,2]\n"
                     "  %1 = param \"w\" : f32[2,1,1,1]\n"
                     "  %2 = param \"g\" : f32[2]\n"
                     "  %3 = param \"b\" : f32[2]\n"
                     "  %4 = param \"m\" : f32[2]\n"
                     "  %5 = param \"s\" : f32[2]\n"
                     "  %6 = conv2d(%0, %1) {kernel=[1,1]} \"c\" : f32[1,2,2,2]\n"
                     "  %7 = batchnorm(%6, %2, %3, %4, %5) {eps=0} \"n1\" : f32[1,2,2,2]\n"
                     "  %8 = batchnorm(%7, %2, %3, %4, %5) {eps=0} \"n2\" : f32[1,2,2,2]\n"
                     "  return %8 \"y\"\n"
                     "}\n");
    bind(g, "w", (const float[]){2, 3});
    bind(g, "g", (const float[]){1, 1});
    bind(g, "b", (const float[]){1, 0});
    bind(g, "m", (const float[]){0, 0});
    bind(g, "s", (const float[]){4, 0.25f}); /* scales 1/2 and 2 */
    const float *w = g->nodes[node_named(g, "w")].data;
    PassOptions opt;
    pass_options_init(&opt);
    assert_true(pass_fold_bn(g, &opt, NULL));
    assert_true(ir_verify(g, NULL));
    assert_int_equal(g->nnodes, 4); /* x, the conv's weight and bias, the conv */
    const Node *c = &g->nodes[node_named(g, "c")];
    const float *wf = g->nodes[c->inputs[1]].data, *bf = g->nodes[c->inputs[2]].data;
    assert_ptr_equal(wf, w);
    assert_true(wf[0] == 0.5f && wf[1] == 12);
    assert_true(bf[0] == 1.5f && bf[1] == 0); /* (0 * 1/2 + 1) * 1/2 + 1 */
    ir_graph_free(g);
}

/* In layout.cnn the concat's inputs are convs: both are written in place. */
static void test_plan_concat_in_place(void **state)
{
    Model m = {.path = GOLDEN_DIR "layout.cnn"};
    Graph *g = model_load(&m);
    assert_true(optimize(g, 8, ALL_ON));
    const Node *c = &g->nodes[node_named(g, "concat_0")];
    const Node *a = &g->nodes[node_named(g, "a")], *b = &g->nodes[node_named(g, "b")];
    assert_int_equal(c->mem.kind, MEM_ARENA);
    assert_int_equal(c->mem.offset % 64, 0);
    assert_int_equal(a->mem.kind, MEM_ARENA);
    assert_int_equal(a->mem.offset, c->mem.offset);
    assert_int_equal(b->mem.offset, c->mem.offset + 8 * 6 * 6 * 4);
    assert_int_equal(a->mem.batch_stride, 16 * 6 * 6);
    assert_int_equal(b->mem.batch_stride, 16 * 6 * 6);
    assert_int_equal(g->nodes[node_named(g, "flatten_0")].mem.kind, MEM_ALIAS);
    assert_int_equal(g->nodes[node_named(g, "x")].mem.kind, MEM_INPUT);
    assert_int_equal(g->nodes[node_named(g, "fc.weight")].mem.kind, MEM_WEIGHTS);
    assert_true(g->arena_bytes < pass_plan_total_bytes(g));
    ir_graph_free(g);
}

/* A concat of a concat is a view of it: the chain is one buffer, the outer
 * concat's (`last`), and each item of every value in it is the outer one's
 * apart. `inner` are the two concats inside it. */
static void check_concat_chain(const char *path, const char *last, const char *const inner[2])
{
    Model m = {.path = path};
    for (int32_t block = 0; block <= 8; block += 8) {
        Graph *g = model_load(&m);
        assert_true(optimize(g, block, ALL_ON));
        const Node *c3 = &g->nodes[node_named(g, last)];
        const char *const in_place[] = {"stem", inner[0], inner[1], "l1", "l2", "l3"};
        const int64_t chan[] = {0, 0, 0, 16, 24, 32};
        for (int i = 0; i < 6; i++) {
            const Node *v = &g->nodes[node_named(g, in_place[i])];
            assert_int_equal(v->mem.kind, MEM_ARENA);
            assert_int_equal(v->mem.offset, c3->mem.offset + chan[i] * 6 * 6 * 4);
            assert_int_equal(v->mem.batch_stride, 48 * 6 * 6);
        }
        assert_int_equal(c3->mem.batch_stride, 0);
        const Node *tr = &g->nodes[node_named(g, "tr")];
        assert_int_equal(g->nodes[tr->inputs[0]].op, OP_AVGPOOL);
        assert_int_equal(tr->type.dims[2], 3);
        ir_graph_free(g);
    }
}

static void test_plan_concat_chain(void **state)
{
    static const char *const inner[] = {"concat_0", "concat_1"};
    check_concat_chain(GOLDEN_DIR "concat_chain.cnn", "concat_2", inner);
}

/* torchvision's flat concats (concat(c), concat(c, a), concat(c, a, b), ...)
 * are planned as the chain: simplify drops the concat of one value and makes
 * each concat read the one before; every concat has two inputs. */
static void test_plan_concat_flat(void **state)
{
    static const char *const inner[] = {"concat_1", "concat_2"};
    check_concat_chain(GOLDEN_DIR "concat_flat.cnn", "concat_3", inner);
    Model m = {.path = GOLDEN_DIR "concat_flat.cnn"};
    Graph *g = model_load(&m);
    assert_true(optimize(g, 8, ALL_ON));
    assert_int_equal(ir_find_node(g, "concat_0"), -1);
    assert_int_equal(g->nodes[node_named(g, "concat_2")].inputs[0], node_named(g, "concat_1"));
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_CONCAT)
            assert_int_equal(g->nodes[i].ninputs, 2);
    ir_graph_free(g);
}

/* The checker finds two live values sharing bytes, and misalignment. */
static void test_check_plan_catches(void **state)
{
    Model m = {.path = GOLDEN_DIR "layout.cnn"};
    Graph *g = model_load(&m);
    assert_true(optimize(g, 8, ALL_ON));
    Node *stem = &g->nodes[node_named(g, "stem")];
    Node *pool = &g->nodes[node_named(g, "maxpool_0")];
    int64_t saved = pool->mem.offset;
    char *text = NULL;
    size_t len = 0;
    Diag d;
    ir_diag_init(&d, open_memstream(&text, &len));
    pool->mem.offset = stem->mem.offset;
    assert_false(pass_check_plan(g, &d));
    pool->mem.offset = saved + 4;
    assert_false(pass_check_plan(g, &d));
    pool->mem.offset = saved;
    assert_true(pass_check_plan(g, &d));
    fclose(d.out);
    assert_non_null(strstr(text, "'maxpool_0' overwrites 'stem'"));
    assert_non_null(strstr(text, "is misplaced"));
    free(text);
    ir_diag_fini(&d);
    ir_graph_free(g);
}

/* An elementwise op that is the last reader of its input computes over it
 * (c over b, d over c); one that is not may not (b over a, which d reads). */
static void test_plan_overwrite(void **state)
{
    Graph *g = parse("graph o {\n"
                     "  %0 = input \"x\" : f32[2,64]\n"
                     "  %1 = relu(%0) \"a\" : f32[2,64]\n"
                     "  %2 = sigmoid(%1) \"b\" : f32[2,64]\n"
                     "  %3 = tanh(%2) \"c\" : f32[2,64]\n"
                     "  %4 = add(%3, %1) \"d\" : f32[2,64]\n"
                     "  return %4 \"d\"\n"
                     "}\n");
    assert_true(optimize(g, 8, ALL_ON));
    Node *a = &g->nodes[node_named(g, "a")], *b = &g->nodes[node_named(g, "b")];
    Node *c = &g->nodes[node_named(g, "c")], *d4 = &g->nodes[node_named(g, "d")];
    assert_int_equal(a->mem.kind, MEM_ARENA); /* not over the graph's input */
    assert_int_equal(c->mem.offset, b->mem.offset);
    assert_int_equal(d4->mem.offset, c->mem.offset);
    assert_int_not_equal(b->mem.offset, a->mem.offset);
    assert_int_equal(g->arena_bytes, 2 * 512);
    char *text = NULL;
    size_t len = 0;
    Diag d;
    ir_diag_init(&d, open_memstream(&text, &len));
    assert_true(pass_check_plan(g, &d));
    int64_t saved = b->mem.offset;
    b->mem.offset = c->mem.offset = d4->mem.offset = a->mem.offset;
    assert_false(pass_check_plan(g, &d));
    b->mem.offset = c->mem.offset = d4->mem.offset = saved;
    assert_true(pass_check_plan(g, &d));
    fclose(d.out);
    assert_non_null(strstr(text, "'b' overwrites 'a'"));
    free(text);
    ir_diag_fini(&d);
    ir_graph_free(g);
}

/* What pass_check_plan says of g's plan; NULL when it accepts it. */
static char *check_plan_text(const Graph *g)
{
    char *text = NULL;
    size_t len = 0;
    Diag d;
    ir_diag_init(&d, open_memstream(&text, &len));
    bool ok = pass_check_plan(g, &d);
    fclose(d.out);
    ir_diag_fini(&d);
    if (ok) {
        free(text);
        return NULL;
    }
    return text;
}

/* The plan checks, and does not once `writer` is given `victim`'s bytes. */
static void expect_plan_rejects(Graph *g, const char *writer, const char *victim)
{
    assert_null(check_plan_text(g));
    Node *w = &g->nodes[node_named(g, writer)];
    int64_t saved = w->mem.offset;
    w->mem.offset = g->nodes[node_named(g, victim)].mem.offset;
    char *text = check_plan_text(g), want[256];
    w->mem.offset = saved;
    snprintf(want, sizeof want, "'%s' overwrites '%s'", writer, victim);
    assert_non_null(text);
    assert_non_null(strstr(text, want));
    free(text);
    assert_null(check_plan_text(g));
}

/* A blocked conv with a fused residual writes over it where it is the residual's last
 * reader (c3 over a, computed by c1), not where it also reads it as its input (c4 adds
 * its own input) or where its register tile's weights outgrow 32 KiB (c6, 640 input
 * channels); nor with plain layouts. The checker refuses c4 over c3. */
static void test_plan_overwrite_conv(void **state)
{
    Model m = {.path = GOLDEN_DIR "overwrite_conv.cnn"};
    for (int32_t block = 0; block <= 16; block += 8) {
        Graph *g = model_load(&m);
        assert_true(optimize(g, block, ALL_ON));
        int64_t c1 = g->nodes[node_named(g, "c1")].mem.offset;
        int64_t c3 = g->nodes[node_named(g, "c3")].mem.offset;
        int64_t c4 = g->nodes[node_named(g, "c4")].mem.offset;
        int64_t c6 = g->nodes[node_named(g, "c6")].mem.offset;
        assert_int_equal(g->nodes[node_named(g, "c3")].attrs.conv.epi.residual, true);
        if (block)
            assert_int_equal(c3, c1);
        else
            assert_int_not_equal(c3, c1);
        assert_int_not_equal(c4, c3);
        assert_int_not_equal(c6, g->nodes[node_named(g, "c4")].mem.offset);
        assert_int_equal(g->nodes[node_named(g, "c6")].attrs.conv.epi.residual, true);
        assert_null(check_plan_text(g));
        if (block)
            expect_plan_rejects(g, "c4", "c3");
        ir_graph_free(g);
    }
    (void)state;
}

/* The pipeline at block 16 with keep_values, or without pass `off`; the plan must check. */
static void run_keep_or_without(Graph *g, bool keep, const char *off)
{
    PassOptions opt;
    pass_options_init(&opt);
    opt.block = 16;
    opt.keep_values = keep;
    if (!keep)
        opt.disabled = UINT64_C(1) << pass_index(off);
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(pass_run_pipeline(g, &opt, &d) && pass_check_plan(g, &d));
    ir_diag_fini(&d);
}

/* fuse_dw takes a 1×1 conv into the depthwise conv that alone reads it, at blocked
 * layouts only and not when every value must stay readable; the 1×1 conv's input
 * lives until the depthwise conv runs, and the checker knows it. */
static void test_fuse_dw(void **state)
{
    Model m = {.path = GOLDEN_DIR "fuse_dw.cnn"};
    static const char *const fused[] = {"b1.dw", "b1.dw2"};
    static const char *const inlined[] = {"b1.expand", "b1.expand2"};
    static const char *const kept[] = {"two", "out", "b1.side", "b1.reduce"};
    for (int32_t block = 0; block <= 16; block += 8) {
        Graph *g = model_load(&m);
        assert_true(optimize(g, block, ALL_ON));
        for (int i = 0; i < 2; i++) {
            const Node *d = &g->nodes[node_named(g, fused[i])];
            const Node *e = &g->nodes[node_named(g, inlined[i])];
            assert_int_equal(d->attrs.conv.fused_in, block > 0);
            assert_int_equal(e->mem.kind, block > 0 ? MEM_INLINED : MEM_ARENA);
        }
        for (int i = 0; i < 4; i++)
            assert_int_equal(g->nodes[node_named(g, kept[i])].mem.kind, MEM_ARENA);
        assert_false(g->nodes[node_named(g, "dwa")].attrs.conv.fused_in);
        assert_false(g->nodes[node_named(g, "dwo")].attrs.conv.fused_in);
        assert_false(g->nodes[node_named(g, "dws")].attrs.conv.fused_in);
        assert_int_equal(g->nodes[node_named(g, "small")].mem.kind, MEM_ARENA);
        if (block == 16) {
            /* b1.dw2 reads b1.reduce (through b1.expand2), which may not be overwritten */
            expect_plan_rejects(g, "b1.dw2", "b1.reduce");
            /* a fused_in conv whose 1×1 conv has storage is a wrong plan */
            g->nodes[node_named(g, "b1.expand")].mem.kind = MEM_ARENA;
            char *text = check_plan_text(g);
            assert_non_null(strstr(text, "'b1.expand' (conv2d) has storage kind"));
            free(text);
        }
        ir_graph_free(g);
    }
    /* keep_values: nothing fused. With fuse_dw off, a flag set by hand (as IR text may)
     * stays where the pair qualifies and is cleared where it does not. */
    for (int keep = 1; keep >= 0; keep--) {
        Graph *g = model_load(&m);
        g->nodes[node_named(g, "dwa")].attrs.conv.fused_in = true;
        g->nodes[node_named(g, "b1.dw")].attrs.conv.fused_in = true;
        run_keep_or_without(g, keep, "fuse_dw");
        int32_t n = 0;
        for (int32_t i = 0; i < g->nnodes; i++)
            n += g->nodes[i].op == OP_CONV2D && g->nodes[i].attrs.conv.fused_in;
        assert_int_equal(n, keep ? 0 : 1);
        assert_false(g->nodes[node_named(g, "dwa")].attrs.conv.fused_in);
        assert_int_equal(g->nodes[node_named(g, "b1.expand")].mem.kind,
                         keep ? MEM_ARENA : MEM_INLINED);
        ir_graph_free(g);
    }
}

/* fuse_pool takes a conv into the maxpool that alone reads it, at blocked layouts only
 * and not when every value must stay readable; the conv's input lives until the pool
 * runs. A flag set by hand stays where the pair qualifies (`small` too, which does not
 * pay) and is cleared where it does not. */
static void test_fuse_pool(void **state)
{
    Model m = {.path = GOLDEN_DIR "fuse_pool.cnn"};
    static const char *const inlined[] = {"stem", "point"};
    static const char *const kept[] = {"twice", "out", "grouped", "res", "avg", "small"};
    for (int32_t block = 0; block <= 16; block += 8) {
        Graph *g = model_load(&m);
        assert_true(optimize(g, block, ALL_ON));
        for (int i = 0; i < 2; i++) {
            int32_t c = node_named(g, inlined[i]);
            assert_int_equal(g->nodes[c].mem.kind, block > 0 ? MEM_INLINED : MEM_ARENA);
            int32_t readers = 0;
            for (int32_t j = 0; j < g->nnodes; j++)
                if (g->nodes[j].op == OP_MAXPOOL && g->nodes[j].inputs[0] == c) {
                    assert_int_equal(g->nodes[j].attrs.pool.fused_in, block > 0);
                    readers++;
                }
            assert_int_equal(readers, 1);
        }
        for (int i = 0; i < 6; i++)
            assert_int_not_equal(g->nodes[node_named(g, kept[i])].mem.kind, MEM_INLINED);
        if (block == 16) {
            /* a fused pool whose conv has storage is a wrong plan */
            g->nodes[node_named(g, "stem")].mem.kind = MEM_ARENA;
            char *text = check_plan_text(g);
            assert_non_null(strstr(text, "'stem' (conv2d) has storage kind"));
            free(text);
        }
        ir_graph_free(g);
    }
    for (int keep = 1; keep >= 0; keep--) {
        Graph *g = model_load(&m);
        for (int32_t j = 0; j < g->nnodes; j++)
            if (g->nodes[j].op == OP_MAXPOOL)
                g->nodes[j].attrs.pool.fused_in = true;
        run_keep_or_without(g, keep, "fuse_pool");
        int32_t n = 0;
        for (int32_t i = 0; i < g->nnodes; i++)
            n += g->nodes[i].op == OP_MAXPOOL && g->nodes[i].attrs.pool.fused_in;
        assert_int_equal(n, keep ? 0 : 3);
        assert_int_equal(g->nodes[node_named(g, "stem")].mem.kind, keep ? MEM_ARENA : MEM_INLINED);
        assert_int_equal(g->nodes[node_named(g, "small")].mem.kind, keep ? MEM_ARENA : MEM_INLINED);
        ir_graph_free(g);
    }
    (void)state;
}

/* fuse_scale takes a large per-channel product into the conv that alone reads it, at
 * blocked layouts only; the product's operands live until the conv runs. */
static void test_fuse_scale(void **state)
{
    Model m = {.path = GOLDEN_DIR "fuse_scale.cnn"};
    for (int32_t block = 0; block <= 16; block += 8) {
        Graph *g = model_load(&m);
        assert_true(optimize(g, block, ALL_ON));
        const Node *proj = &g->nodes[node_named(g, "proj")];
        assert_int_equal(proj->attrs.conv.scaled_in, block > 0);
        assert_int_equal(g->nodes[proj->inputs[0]].op, OP_MUL);
        assert_int_equal(g->nodes[proj->inputs[0]].mem.kind, block > 0 ? MEM_INLINED : MEM_ARENA);
        for (int32_t i = 0; i < g->nnodes; i++)
            if (g->nodes[i].op == OP_MUL && i != proj->inputs[0])
                assert_int_equal(g->nodes[i].mem.kind, MEM_ARENA);
        assert_false(g->nodes[node_named(g, "two")].attrs.conv.scaled_in);
        assert_false(g->nodes[node_named(g, "small")].attrs.conv.scaled_in);
        if (block == 16) /* proj reads fc2 (the scale, through the product) */
            expect_plan_rejects(g, "proj", "fc2");
        ir_graph_free(g);
    }
    /* with fuse_scale off, a flag set by hand stays where the product qualifies and is
     * cleared where it does not */
    Graph *g = model_load(&m);
    PassOptions opt;
    pass_options_init(&opt);
    opt.block = 16;
    opt.disabled = UINT64_C(1) << pass_index("fuse_scale");
    g->nodes[node_named(g, "proj")].attrs.conv.scaled_in = true;
    g->nodes[node_named(g, "two")].attrs.conv.scaled_in = true;
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(pass_run_pipeline(g, &opt, &d) && pass_check_plan(g, &d));
    ir_diag_fini(&d);
    assert_true(g->nodes[node_named(g, "proj")].attrs.conv.scaled_in);
    assert_false(g->nodes[node_named(g, "two")].attrs.conv.scaled_in);
    ir_graph_free(g);
}

/* Disabling a required pass is an error; names map to indices. */
static void test_pipeline_options(void **state)
{
    assert_int_equal(pass_index("channels_first"), 0);
    assert_int_equal(pass_index("lower"), 1);
    assert_true(pass_pipeline[pass_index("lower")].required);
    assert_int_equal(pass_index("plan_memory"), pass_count - 1);
    assert_int_equal(pass_index("nope"), -1);
    assert_true(pass_pipeline[pass_index("layout")].required);
    assert_false(pass_pipeline[pass_index("fuse")].required);
    Model m = {.path = "models/mlp.cnn"};
    Graph *g = model_load(&m);
    PassOptions opt;
    pass_options_init(&opt);
    opt.disabled = UINT64_C(1) << pass_index("plan_memory");
    char *text = NULL;
    size_t len = 0;
    Diag d;
    ir_diag_init(&d, open_memstream(&text, &len));
    assert_false(pass_run_pipeline(g, &opt, &d));
    fclose(d.out);
    assert_non_null(strstr(text, "pass 'plan_memory' is required"));
    free(text);
    ir_diag_fini(&d);
    ir_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_toposort_and_remove),
        cmocka_unit_test(test_fold_const),
        cmocka_unit_test(test_fold_bn_in_place),
        cmocka_unit_test(test_fold_bn_twice),
        cmocka_unit_test(test_pipeline_options),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_plan_concat_in_place),
        cmocka_unit_test(test_plan_concat_chain),
        cmocka_unit_test(test_plan_concat_flat),
        cmocka_unit_test(test_check_plan_catches),
        cmocka_unit_test(test_plan_overwrite),
        cmocka_unit_test(test_plan_overwrite_conv),
        cmocka_unit_test(test_fuse_dw),
        cmocka_unit_test(test_fuse_scale),
        cmocka_unit_test(test_fuse_pool),
        cmocka_unit_test(test_small_models),
        cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_mnist_cnn),
        cmocka_unit_test(test_squeezenet1_1),
        cmocka_unit_test(test_plan_every_zoo_model),
    };
    if (getenv("CNNC_TEST_FILTER"))
        cmocka_set_test_filter(getenv("CNNC_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
