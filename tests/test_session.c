/* test_session.c: networks typed one statement at a time. What each piece of
 * text echoes, text that asks for a continuation line, mistakes that leave
 * the session exactly as it was, loading and extending a model file, and
 * graphs that match what the file itself compiles to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "test_util.h"

#define MNIST "models/mnist_cnn.cnn"
#define HEADER "mnist_cnn(image: f32[N=1, 1, 28, 28])"

/* ---- helpers ------------------------------------------------------------------ */

/* Echoed lines joined by '\n', and the messages, of one session. */
typedef struct Ctx {
    FeSession *s;
    char echo[4096];
    size_t elen;
    char *msgs; /* every message so far */
    size_t mlen;
    size_t mstart; /* where the last call's messages start */
    FILE *out;
    Diag d;
    int32_t line;
} Ctx;

static void on_echo(void *p, const char *line)
{
    Ctx *c = p;
    c->elen += (size_t)snprintf(c->echo + c->elen, sizeof c->echo - c->elen, "%s%s",
                                c->elen ? "\n" : "", line);
}

static Ctx *ctx_new_opt(const FeOptions *opt)
{
    Ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->s = fe_session_new(opt);
    c->out = open_memstream(&c->msgs, &c->mlen);
    assert_non_null(c->out);
    ir_diag_init(&c->d, c->out);
    c->line = 1;
    return c;
}

static Ctx *ctx_new(int64_t batch)
{
    return ctx_new_opt(&(FeOptions){.batch = batch});
}

static void ctx_free(Ctx *c)
{
    fe_session_free(c->s);
    ir_diag_fini(&c->d);
    fclose(c->out);
    free(c->msgs);
    free(c);
}

/* Feeds `text` at line `line` of "<stdin>"; the echo of this call is left in
 * c->echo, its messages at c->msgs + c->mstart. */
static FeFeed feed_at(Ctx *c, const char *text, int32_t line)
{
    c->elen = 0;
    c->echo[0] = '\0';
    fflush(c->out);
    c->mstart = c->mlen;
    FeFeed r = fe_session_feed(c->s, text, "<stdin>", line, &c->d, on_echo, c);
    fflush(c->out);
    return r;
}

static FeFeed feed(Ctx *c, const char *text)
{
    int32_t line = c->line;
    for (const char *p = text; *p; p++)
        c->line += *p == '\n';
    c->line++;
    return feed_at(c, text, line);
}

/* Feeds text that must succeed and echo exactly `want`. */
static void ok(Ctx *c, const char *text, const char *want)
{
    int errors = c->d.nerrors;
    FeFeed r = feed(c, text);
    if (r != FE_FEED_OK || c->d.nerrors != errors)
        fail_msg("'%s' failed:\n%.*s", text, (int)c->mlen, c->msgs);
    assert_string_equal(c->echo, want);
}

/* Feeds text that must fail with a message starting with `want`. */
static void bad(Ctx *c, const char *text, const char *want)
{
    int errors = c->d.nerrors;
    assert_int_equal(feed(c, text), FE_FEED_ERROR);
    assert_true(c->d.nerrors > errors);
    assert_string_equal(c->echo, "");
    const char *got = c->msgs + c->mstart;
    if (strncmp(got, want, strlen(want)) != 0)
        fail_msg("'%s': expected\n%s\ngot\n%s", text, want, got);
}

static Graph *graph_of(Ctx *c, uint64_t seed)
{
    Graph *g = fe_session_graph(c->s, seed, &c->d);
    if (!g)
        fail_msg("no graph:\n%.*s", (int)c->mlen, c->msgs);
    return g;
}

/* The outputs of a one-input graph on a fixed input. */
static InterpResult run(const Graph *g)
{
    int32_t in = ir_input_node(g, 0);
    int64_t n = ir_numel(&g->nodes[in].type);
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    InterpResult res;
    char err[256];
    const float *inputs[1] = {x};
    if (!ir_interp(g, inputs, &res, err, sizeof err))
        fail_msg("interp: %s", err);
    free(x);
    return res;
}

static Graph *load_file(const char *path, uint64_t seed)
{
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = fe_load_file(path, NULL, &d);
    ir_diag_fini(&d);
    assert_non_null(g);
    fe_random_weights(g, seed);
    return g;
}

static bool has_name(FeSession *s, const char *name)
{
    const char *names[512];
    int32_t n = fe_session_names(s, names, 512);
    for (int32_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* ---- statements one by one ----------------------------------------------------- */

static void test_echo(void **state)
{
    (void)state;
    Ctx *c = ctx_new(0);
    assert_false(fe_session_has_network(c->s));
    assert_true(fe_session_begin(c->s, "net(image: f32[N=1, 1, 28, 28])", "<stdin>", &c->d));
    assert_true(fe_session_has_network(c->s));
    ok(c, "x = relu(conv2d(image, 32, kernel=3) as conv1)", "x: f32[1, 32, 26, 26]");
    ok(c, "n = channels(x)", "n: 32");
    ok(c, "x", "f32[1, 32, 26, 26]");
    ok(c, "3 + 4 * 2", "11");
    ok(c, "[n, \"same\", 0.5, none, true]", "[32, \"same\", 0.5, none, true]");
    ok(c, "relu", "layer relu");
    ok(c, "block twice(x, act=relu, k=2) { return act(act(x)) }", "block twice(x, act=relu, k=2)");
    ok(c, "y = twice(x) as t", "y: f32[1, 32, 26, 26]");
    ok(c, "for i in range(2) { x = maxpool(x, kernel=2) }", "x: f32[1, 32, 6, 6]\ni: 1");
    ok(c, "a = 1; b = a + 1\nl = [x, a]", "a: 1\nb: 2\nl: [f32[1, 32, 6, 6], 1]");
    ok(c, "if n > 16 { z = global_avgpool(x) } else { z = x }", "z: f32[1, 32, 1, 1]");
    ok(c, "", "");

    /* Without a return, the last tensor assigned is the output. */
    Graph *g = graph_of(c, 1);
    assert_int_equal(g->noutputs, 1);
    assert_string_equal(g->outputs[0].name, "z");
    assert_int_equal(g->nodes[g->outputs[0].node].op, OP_GLOBAL_AVGPOOL);
    ir_graph_free(g);

    /* `return` sets the outputs and the session goes on. */
    ok(c, "return x, y", "output x: f32[1, 32, 6, 6]\noutput y: f32[1, 32, 26, 26]");
    ok(c, "w = relu(x)", "w: f32[1, 32, 6, 6]");
    g = graph_of(c, 1);
    assert_int_equal(g->noutputs, 2);
    assert_string_equal(g->outputs[0].name, "x");
    assert_string_equal(g->outputs[1].name, "y");
    assert_string_equal(g->nodes[g->outputs[1].node].name, "t.relu_1");
    ir_graph_free(g);
    ok(c, "return dense(flatten(w), 10) as fc", "output fc: f32[1, 10]");
    ok(c, "fc", "f32[1, 10]"); /* the output named by its layer became a variable */
    g = graph_of(c, 1);
    assert_int_equal(g->noutputs, 1);
    assert_string_equal(g->outputs[0].name, "fc");
    ir_graph_free(g);
    ctx_free(c);
}

/* The example of docs/language.md, "Typing statements at a prompt". */
static void test_documented_example(void **state)
{
    (void)state;
    Ctx *c = ctx_new(0);
    assert_true(fe_session_begin(c->s, "net(image: f32[N=1, 1, 28, 28])", "<stdin>", &c->d));
    ok(c, "x = relu(conv2d(image, 32, kernel=3) as conv1)", "x: f32[1, 32, 26, 26]");
    ok(c, "channels(x) * 2", "64");
    ok(c, "block unit(x, act=relu) { return act(x) }", "block unit(x, act=relu)");
    ok(c, "y = unit(x); return y", "y: f32[1, 32, 26, 26]\noutput y: f32[1, 32, 26, 26]");
    ctx_free(c);
}

static void test_continuation(void **state)
{
    (void)state;
    Ctx *c = ctx_new(0);
    assert_true(fe_session_begin(c->s, HEADER, "<stdin>", &c->d));
    static const char *const open[] = {
        "x = conv2d(image,",      "x = conv2d(image, 8", "x = [1,",
        "x = 1 +",                "x =",                 "block b(x) {",
        "block b(x)",             "if true",             "if true { y = 1 } else",
        "for i in range(3)",      "x = sequence(image)", "x = sequence(image) {\n conv2d(8,",
        "x = relu(image) as",
    };
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++) {
        if (feed_at(c, open[i], 1) != FE_FEED_MORE)
            fail_msg("'%s' is incomplete:\n%.*s", open[i], (int)c->mlen, c->msgs);
        assert_int_equal(c->d.nerrors, 0);
        assert_int_equal(c->mlen, 0);
    }
    assert_int_equal(feed_at(c, "x = conv2d(image,", 1), FE_FEED_MORE);
    assert_int_equal(feed_at(c, "x = conv2d(image,\n  8, kernel=3", 1), FE_FEED_MORE);
    assert_int_equal(feed_at(c, "x = conv2d(image,\n  8, kernel=3)", 1), FE_FEED_OK);
    assert_string_equal(c->echo, "x: f32[1, 8, 26, 26]");
    assert_int_equal(feed_at(c, "block b(x) {", 2), FE_FEED_MORE);
    assert_int_equal(feed_at(c, "block b(x) {\n  y = relu(x)", 2), FE_FEED_MORE);
    assert_int_equal(feed_at(c, "block b(x) {\n  y = relu(x)\n  return y\n}", 2), FE_FEED_OK);
    assert_string_equal(c->echo, "block b(x)");

    /* A complete mistake is no reason to wait for more. */
    assert_int_equal(feed_at(c, "x = conv2d(image, 8 8", 6), FE_FEED_ERROR);
    assert_int_equal(feed_at(c, "return", 7), FE_FEED_ERROR);
    assert_non_null(strstr(c->msgs, "<stdin>:7:7: error: syntax error: unexpected end of input"));
    assert_int_equal(feed_at(c, "x = \"open", 8), FE_FEED_ERROR);
    assert_non_null(strstr(c->msgs, "<stdin>:8:5: error: unterminated string"));
    ctx_free(c);
}

/* ---- mistakes ---------------------------------------------------------------------- */

static void test_errors_leave_session_unchanged(void **state)
{
    (void)state;
    Ctx *c = ctx_new(0);
    assert_true(fe_session_begin(c->s, HEADER, "<stdin>", &c->d));
    ok(c, "x = relu(conv2d(image, 8, kernel=3) as conv1)", "x: f32[1, 8, 26, 26]");
    Graph *g0 = graph_of(c, 2);
    char *before = print_graph(g0);
    int32_t nnames = fe_session_names(c->s, NULL, 0);

    bad(c, "y = conv3d(relu(x), 8)",
        "<stdin>:2:5: error: unknown layer or block 'conv3d'; did you mean 'conv2d'?\n"
        "    2 | y = conv3d(relu(x), 8)\n"
        "      |     ^\n");
    bad(c, "y = dense(relu(x), 10)", "<stdin>:3:5: error: dense expects a 2-d input");
    bad(c, "y = relu(x) x", "<stdin>:4:13: error: syntax error: unexpected identifier 'x'");
    bad(c, "z = 1\ny = relu(x)\nw = relu(y) as conv1",
        "<stdin>:7:16: error: name 'conv1' is already used in this scope\n");
    assert_non_null(strstr(c->msgs, "<stdin>:1:"));
    bad(c, "z", "<stdin>:8:1: error: undefined name 'z'");
    bad(c, "block b(x, x) { return x }", "<stdin>:9:12: error: parameter 'x' appears twice");
    bad(c, "return x, 3", "<stdin>:10:11: error: a network returns tensors, got 3");
    bad(c, "q = relu(x); return q, q", "<stdin>:11:24: error: output 'q' is returned twice");

    /* Nothing of the failed statements is left: nodes, names, counters, blocks. */
    assert_int_equal(fe_session_names(c->s, NULL, 0), nnames);
    assert_true(has_name(c->s, "relu_0"));
    assert_false(has_name(c->s, "relu_1"));
    assert_false(has_name(c->s, "b"));
    assert_false(has_name(c->s, "q"));
    Graph *g1 = graph_of(c, 2);
    char *after = print_graph(g1);
    assert_string_equal(before, after);
    assert_string_equal(g1->outputs[0].name, "x");

    /* And the next statements work, with the names the failed ones had wanted. */
    ok(c, "y = relu(x)", "y: f32[1, 8, 26, 26]");
    assert_true(has_name(c->s, "relu_1"));
    assert_false(has_name(c->s, "relu_2"));
    ok(c, "w = relu(y) as conv2", "w: f32[1, 8, 26, 26]");
    ok(c, "block b(x) { return relu(x) }", "block b(x)");
    ok(c, "block b(x) { return sigmoid(x) }", "block b(x)"); /* replaces it */
    ok(c, "v = b(w)", "v: f32[1, 8, 26, 26]");
    Graph *g2 = graph_of(c, 2);
    assert_int_equal(g2->nodes[g2->outputs[0].node].op, OP_SIGMOID);
    assert_string_equal(g2->nodes[g2->outputs[0].node].name, "b_0.sigmoid_0");
    ir_graph_free(g0);
    ir_graph_free(g1);
    ir_graph_free(g2);
    free(before);
    free(after);
    ctx_free(c);
}

/* A limit reached at the prompt fails that entry only: the next one has the
 * whole budget of steps, and the parameters of a failed one count no more. */
static void test_limits_per_entry(void **state)
{
    (void)state;
    Ctx *c = ctx_new_opt(&(FeOptions){.limits = {.max_steps = 1000, .max_weights = 4096}});
    assert_true(fe_session_begin(c->s, "net(x: f32[1, 16])", "<stdin>", &c->d));
    bad(c, "s = 0; for i in range(600) { s = s + 1 }",
        "<stdin>:1:36: error: elaboration takes more than 1000 steps");
    ok(c, "t = 0", "t: 0");
    ok(c, "for i in range(100) { t = t + 1 }", "t: 100\ni: 99"); /* 600 steps */
    ok(c, "for i in range(100) { t = t + 1 }", "t: 200");
    bad(c, "y = dense(x, 64) as fc1",
        "<stdin>:5:5: error: parameter 'fc1.bias' (256 bytes) brings the parameters to 4.2 KiB");
    ok(c, "y = dense(x, 48) as fc1", "y: f32[1, 48]");
    bad(c, "z = dense(y, 16)", "<stdin>:7:5: error: parameter 'dense_0.weight' (3.0 KiB)");
    ctx_free(c);
}

static void test_no_network(void **state)
{
    (void)state;
    Ctx *c = ctx_new(0);
    ok(c, "block unit(x) { return relu(x) }", "block unit(x)");
    bad(c, "x = 1", "<stdin>:2:1: error: no network to add this to");
    assert_null(fe_session_graph(c->s, 1, &c->d));
    assert_false(fe_session_begin(c->s, "net(image: f64[1, 4])", "<stdin>", &c->d));
    assert_false(fe_session_begin(c->s, "net(image f32[1, 4])", "<stdin>", &c->d));
    assert_false(fe_session_has_network(c->s));
    assert_true(fe_session_begin(c->s, "network net(v: f32[N=2, 4])", "<stdin>", &c->d));
    assert_null(fe_session_graph(c->s, 1, &c->d)); /* no tensor computed yet */
    ok(c, "y = unit(v)", "y: f32[2, 4]"); /* blocks defined before the network stay */
    Graph *g = graph_of(c, 1);
    assert_int_equal(g->nodes[g->outputs[0].node].op, OP_RELU);
    ir_graph_free(g);
    ctx_free(c);
}

/* ---- model files ------------------------------------------------------------------- */

static void test_load_and_extend(void **state)
{
    (void)state;
    Ctx *c = ctx_new(0);
    assert_true(fe_session_load(c->s, MNIST, &c->d));
    assert_true(has_name(c->s, "x"));
    assert_true(has_name(c->s, "image"));
    assert_true(has_name(c->s, "fc2"));
    assert_true(has_name(c->s, "conv1.weight"));
    ok(c, "x", "f32[1, 128]");
    ok(c, "p = softmax(fc2)", "p: f32[1, 10]");

    /* Until the next return, the file's return holds. */
    Graph *file = load_file(MNIST, 11);
    Graph *g = graph_of(c, 11);
    assert_int_equal(g->noutputs, 1);
    assert_string_equal(g->outputs[0].name, "fc2");
    ok(c, "return p", "output p: f32[1, 10]");
    Graph *ext = graph_of(c, 11);
    assert_int_equal(ext->noutputs, 1);
    assert_string_equal(ext->outputs[0].name, "p");
    assert_int_equal(ext->nnodes, file->nnodes + 1);

    InterpResult a = run(file), b = run(ext);
    const float *logits = a.values[file->outputs[0].node];
    const float *probs = b.values[ext->outputs[0].node];
    double max = logits[0], sum = 0;
    for (int i = 1; i < 10; i++)
        max = logits[i] > max ? logits[i] : max;
    for (int i = 0; i < 10; i++)
        sum += exp(logits[i] - max);
    for (int i = 0; i < 10; i++)
        assert_float_equal(probs[i], exp(logits[i] - max) / sum, 1e-6);
    ir_interp_free(&a);
    ir_interp_free(&b);
    ir_graph_free(g);
    ir_graph_free(ext);
    ir_graph_free(file);

    /* A file that fails to load changes nothing. */
    assert_false(fe_session_load(c->s, "models/no_such_model.cnn", &c->d));
    ok(c, "p", "f32[1, 10]");
    ctx_free(c);
}

/* The graph of a session, loaded or typed, is the graph of the file. */
static void test_same_graph_as_file(void **state)
{
    (void)state;
    Graph *file = load_file(MNIST, 7);
    char *want = print_graph(file);
    InterpResult ref = run(file);
    const float *ref_out = ref.values[file->outputs[0].node];

    Ctx *c = ctx_new(0);
    assert_true(fe_session_load(c->s, MNIST, &c->d));
    Graph *loaded = graph_of(c, 7);
    Ctx *t = ctx_new(0);
    assert_true(fe_session_begin(t->s, HEADER, "<stdin>", &t->d));
    ok(t, "x = relu(conv2d(image, 32, kernel=3) as conv1)", "x: f32[1, 32, 26, 26]");
    ok(t, "x = relu(conv2d(x, 64, kernel=3) as conv2)", "x: f32[1, 64, 24, 24]");
    ok(t, "x = maxpool(x, kernel=2)", "x: f32[1, 64, 12, 12]");
    ok(t, "x = relu(dense(flatten(x), 128, in_features=9216) as fc1)", "x: f32[1, 128]");
    ok(t, "return dense(x, 10) as fc2", "output fc2: f32[1, 10]");
    Graph *typed = graph_of(t, 7);

    const Graph *gs[2] = {loaded, typed};
    for (int k = 0; k < 2; k++) {
        char *text = print_graph(gs[k]);
        assert_string_equal(text, want);
        free(text);
        InterpResult r = run(gs[k]);
        assert_memory_equal(r.values[gs[k]->outputs[0].node], ref_out, 10 * sizeof(float));
        ir_interp_free(&r);
    }
    ir_interp_free(&ref);
    free(want);
    ir_graph_free(file);
    ir_graph_free(loaded);
    ir_graph_free(typed);
    ctx_free(c);
    ctx_free(t);
}

static void test_batch(void **state)
{
    (void)state;
    Ctx *c = ctx_new(4);
    assert_true(fe_session_load(c->s, MNIST, &c->d));
    ok(c, "image", "f32[4, 1, 28, 28]");
    ok(c, "fc2", "f32[4, 10]");
    assert_true(fe_session_begin(c->s, "n(a: f32[N=1, 3])", "<stdin>", &c->d));
    ok(c, "a", "f32[4, 3]");
    assert_false(fe_session_begin(c->s, "n(a: f32[1, 3])", "<stdin>", &c->d));
    assert_non_null(strstr(c->msgs, "<stdin>:1:10: error: input 'a' has a fixed batch"));
    ok(c, "a", "f32[4, 3]");
    ctx_free(c);
}

static void test_bind_weights(void **state)
{
    (void)state;
    char path[] = "/tmp/cnnc_session_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    Graph *file = load_file(MNIST, 3);
    char err[256];
    assert_true(fe_write_safetensors(file, path, err, sizeof err));

    Ctx *c = ctx_new(0);
    assert_true(fe_session_load(c->s, MNIST, &c->d));
    ok(c, "h = dense(fc2, 5) as head", "h: f32[1, 5]");
    assert_true(fe_session_bind_weights(c->s, path, &c->d));
    Graph *g = graph_of(c, 9), *again = graph_of(c, 9);
    int32_t w = ir_find_node(g, "conv1.weight"), fw = ir_find_node(file, "conv1.weight");
    assert_memory_equal(g->nodes[w].data, file->nodes[fw].data, 32 * 9 * sizeof(float));
    int32_t hw = ir_find_node(g, "head.weight");
    assert_non_null(g->nodes[hw].data);
    assert_memory_equal(g->nodes[hw].data, again->nodes[hw].data, 50 * sizeof(float));
    Graph *seed9 = ir_graph_clone(g);
    fe_random_weights(seed9, 9);
    assert_memory_equal(g->nodes[hw].data, seed9->nodes[hw].data, 50 * sizeof(float));
    assert_memory_not_equal(g->nodes[w].data, seed9->nodes[w].data, 32 * 9 * sizeof(float));

    /* A file with tensors the network lacks binds nothing. */
    Ctx *t = ctx_new(0);
    assert_true(fe_session_begin(t->s, HEADER, "<stdin>", &t->d));
    ok(t, "x = conv2d(image, 32, kernel=3) as conv1", "x: f32[1, 32, 26, 26]");
    assert_false(fe_session_bind_weights(t->s, path, &t->d));
    assert_non_null(strstr(t->msgs, "unexpected tensor 'conv2.weight'"));
    Graph *tg = graph_of(t, 9);
    assert_memory_equal(tg->nodes[ir_find_node(tg, "conv1.weight")].data, seed9->nodes[w].data,
                        32 * 9 * sizeof(float));
    ir_graph_free(tg);
    ctx_free(t);

    ir_graph_free(g);
    ir_graph_free(again);
    ir_graph_free(seed9);
    ir_graph_free(file);
    ctx_free(c);
    unlink(path);
}

static void test_names(void **state)
{
    (void)state;
    Ctx *c = ctx_new(0);
    assert_int_equal(fe_session_names(c->s, NULL, 0), 0);
    assert_true(fe_session_begin(c->s, HEADER, "<stdin>", &c->d));
    ok(c, "block unit(x) { return relu(x) }", "block unit(x)");
    ok(c, "x = conv2d(image, 4, kernel=3) as c1", "x: f32[1, 4, 26, 26]");
    ok(c, "y = unit(x)", "y: f32[1, 4, 26, 26]");
    const char *names[16];
    int32_t n = fe_session_names(c->s, names, 16);
    const char *want[] = {"image", "x", "y", "unit", "c1.weight", "c1.bias", "c1", "unit_0.relu_0"};
    assert_int_equal(n, 8);
    assert_int_equal(fe_session_names(c->s, NULL, 0), 8);
    for (int32_t i = 0; i < n; i++)
        assert_string_equal(names[i], want[i]);
    assert_int_equal(fe_session_names(c->s, names, 3), 3);
    assert_string_equal(names[2], "y");
    ctx_free(c);
}

/* Variables resolve to the node holding their value, in the numbering of the
 * graph fe_session_graph returns; node names resolve to themselves. */
static void test_lookup(void **state)
{
    (void)state;
    Ctx *c = ctx_new(0);
    assert_int_equal(fe_session_lookup(c->s, "x"), -1);
    assert_true(fe_session_begin(c->s, HEADER, "<stdin>", &c->d));
    ok(c, "x = conv2d(image, 4, kernel=3) as c1", "x: f32[1, 4, 26, 26]");
    ok(c, "y = relu(x)", "y: f32[1, 4, 26, 26]");
    ok(c, "k = 3", "k: 3");
    Graph *g = graph_of(c, 1);
    int32_t x = fe_session_lookup(c->s, "x"), y = fe_session_lookup(c->s, "y");
    assert_true(x >= 0 && x < g->nnodes && y >= 0 && y < g->nnodes);
    assert_string_equal(g->nodes[x].name, "c1");
    assert_int_equal(g->nodes[y].op, OP_RELU);
    assert_int_equal(g->nodes[y].inputs[0], x);
    assert_int_equal(fe_session_lookup(c->s, "c1"), x);
    assert_string_equal(g->nodes[fe_session_lookup(c->s, "c1.weight")].name, "c1.weight");
    assert_int_equal(fe_session_lookup(c->s, "k"), -1);
    assert_int_equal(fe_session_lookup(c->s, "nothing"), -1);
    ok(c, "x = relu(y)", "x: f32[1, 4, 26, 26]");
    assert_int_not_equal(fe_session_lookup(c->s, "x"), fe_session_lookup(c->s, "c1"));
    ir_graph_free(g);
    ctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_documented_example),
        cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_errors_leave_session_unchanged),
        cmocka_unit_test(test_limits_per_entry),
        cmocka_unit_test(test_no_network),
        cmocka_unit_test(test_load_and_extend),
        cmocka_unit_test(test_same_graph_as_file),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_bind_weights),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
