/* test_readback.c: memory plans that keep every value (PassOptions.keep_values)
 * and reading values back after a run (repl_read_value): plans of zoo models,
 * arenas filled by hand in each planned layout, and the arena of a model
 * compiled in-process and run, compared node by node with the interpreter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"
#include "frontend.h"
#include "passes.h"
#include "repl.h"
#include "rt.h"

#include "test_util.h"

#define TOL 1e-4

static Graph *load(const char *model, const char *text, int64_t batch)
{
    return load_model(model, text, batch, 0);
}

/* Through the whole pipeline; the plan must pass pass_check_plan. */
static Graph *compiled(const char *model, const char *text, int64_t batch, int32_t block,
                       bool keep)
{
    Graph *g = load(model, text, batch);
    Diag d;
    ir_diag_init(&d, stderr);
    PassOptions po;
    pass_options_init(&po);
    assert_false(po.keep_values);
    po.block = block;
    po.keep_values = keep;
    assert_true(pass_run_pipeline(g, &po, &d));
    assert_true(pass_check_plan(g, &d));
    ir_diag_fini(&d);
    return g;
}

static float **seeded_inputs(const Graph *g)
{
    int32_t ni = ir_num_inputs(g);
    float **ins = ir_xcalloc((size_t)ni + 1, sizeof *ins);
    for (int32_t i = 0, k = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_INPUT) continue;
        int64_t numel = ir_numel(&n->type);
        ins[k] = ir_xmalloc((size_t)numel * sizeof(float));
        Rng r = ir_rng(0, n->name);
        for (int64_t j = 0; j < numel; j++)
            ins[k][j] = (float)(2.0 * ir_rng_uniform(&r) - 1.0);
        k++;
    }
    return ins;
}

static void free_inputs(const Graph *g, float **ins)
{
    for (int32_t i = 0; i < ir_num_inputs(g); i++)
        free(ins[i]);
    free(ins);
}

static InterpResult interp(const Graph *g, float **ins)
{
    InterpResult res;
    char err[256];
    if (!ir_interp(g, (const float *const *)ins, &res, err, sizeof err))
        fail_msg("interp: %s", err);
    return res;
}

static bool is_input_of(const Node *c, int32_t v)
{
    for (int32_t k = 0; k < c->ninputs; k++)
        if (c->inputs[k] == v)
            return true;
    return false;
}

/* No two arena values share a byte, whatever their lifetimes, except an
 * input written in place inside a concat. */
static void expect_no_shared_bytes(const Graph *g)
{
    for (int32_t a = 0; a < g->nnodes; a++) {
        const Node *na = &g->nodes[a];
        if (na->mem.kind != MEM_ARENA) continue;
        for (int32_t b = a + 1; b < g->nnodes; b++) {
            const Node *nb = &g->nodes[b];
            if (nb->mem.kind != MEM_ARENA ||
                !pass_spans_overlap(pass_span_of(na), pass_span_of(nb)))
                continue;
            bool view = nb->op == OP_CONCAT && is_input_of(nb, a) && na->mem.batch_stride > 0;
            if (!view) fail_msg("'%s' and '%s' share bytes", na->name, nb->name);
        }
    }
}

static void test_keep_values_plans(void **state)
{
    (void)state;
    static const char *const models[] = {"mnist_cnn", "mlp", "squeezenet1_1"};
    for (int i = 0; i < 3; i++) {
        Graph *keep = compiled(models[i], NULL, 2, 8, true);
        Graph *reuse = compiled(models[i], NULL, 2, 8, false);
        expect_no_shared_bytes(keep);
        assert_true(keep->arena_bytes > reuse->arena_bytes);
        int32_t views = 0;
        for (int32_t n = 0; n < keep->nnodes; n++)
            views += keep->nodes[n].mem.batch_stride > 0;
        if (strcmp(models[i], "squeezenet1_1") == 0) assert_true(views >= 16);
        ir_graph_free(keep);
        ir_graph_free(reuse);
    }
}

/* ---- arenas filled by hand ---------------------------------------------------- */

/* One item of a rank-4 value from plain [C,H,W] into its layout, walking the
 * destination in storage order. */
static void to_layout(const TensorType *t, const float *src, float *dst)
{
    int64_t C = t->dims[1], H = t->dims[2], W = t->dims[3], b = t->block;
    if (t->layout == LAYOUT_NHWC) {
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                for (int64_t c = 0; c < C; c++)
                    *dst++ = src[(c * H + h) * W + w];
        return;
    }
    for (int64_t g = 0; g < C / b; g++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                for (int64_t l = 0; l < b; l++)
                    *dst++ = src[((g * b + l) * H + h) * W + w];
}

/* Stores a value where the plan put it (in the arena or an output buffer), in
 * its layout, as the generated code would. */
static void put_value(const Graph *g, int32_t id, const float *v, char *arena, float **outs)
{
    const Node *n = &g->nodes[id];
    const TensorType *t = &n->type;
    float *base = n->mem.kind == MEM_OUTPUT ? outs[n->mem.index]
                                            : (float *)(void *)(arena + n->mem.offset);
    int64_t items = t->dims[0], per = ir_numel(t) / items;
    int64_t stride = n->mem.batch_stride ? n->mem.batch_stride : per;
    for (int64_t i = 0; i < items; i++) {
        if (t->layout == LAYOUT_PLAIN)
            memcpy(base + i * stride, v + i * per, (size_t)per * sizeof(float));
        else
            to_layout(t, v + i * per, base + i * stride);
    }
}

/* Writes every value the interpreter computed (`res`, from `ins`) in node
 * order, then reads each back. With `all`, every value but the weights must be
 * readable. Returns how many were. */
static int32_t round_trip(const Graph *g, float **ins, const InterpResult *res, bool all,
                          float **outs)
{
    char *arena = ir_xcalloc((size_t)g->arena_bytes + 64, 1);
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].mem.kind == MEM_ARENA || g->nodes[i].mem.kind == MEM_OUTPUT)
            put_value(g, i, res->values[i], arena, outs);
    int32_t readable = 0;
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        int64_t numel = ir_numel(&n->type);
        float *got = ir_xmalloc((size_t)numel * sizeof(float) + 4);
        bool ok = repl_read_value(g, i, arena, (const float *const *)ins,
                                  (const float *const *)outs, got);
        if (n->op == OP_PARAM) assert_false(ok);
        if (all && n->op != OP_PARAM && !ok) fail_msg("'%s' is not readable", n->name);
        if (ok && memcmp(got, res->values[i], (size_t)numel * sizeof(float)) != 0)
            fail_msg("'%s' reads back differently", n->name);
        readable += ok;
        free(got);
    }
    free(arena);
    return readable;
}

static int32_t count_layout(const Graph *g, Layout l)
{
    int32_t n = 0;
    for (int32_t i = 0; i < g->nnodes; i++)
        n += g->nodes[i].type.layout == l && g->nodes[i].op != OP_PARAM;
    return n;
}

/* Layouts and storage kinds the pipeline does not produce today: NHWC, and a
 * value living in the caller's output buffer. */
static void test_round_trip_nhwc_output(void **state)
{
    (void)state;
    Graph *g = compiled("t", "network t(x: f32[N=2, 3, 4, 5]) {\n"
                             "  a = relu(x)\n"
                             "  b = sigmoid(a)\n"
                             "  return tanh(b)\n"
                             "}\n",
                        0, 0, true);
    int32_t a = -1, b = -1;
    for (int32_t i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].op == OP_RELU) a = i;
        if (g->nodes[i].op == OP_SIGMOID) b = i;
    }
    assert_true(a > 0 && b > a);
    g->nodes[a].type.layout = LAYOUT_NHWC;
    g->nodes[b].type.layout = LAYOUT_NHWC;
    g->nodes[b].mem = (MemLoc){.kind = MEM_OUTPUT, .index = 1};
    float *outs[2] = {NULL, ir_xcalloc(2 * 3 * 4 * 5, sizeof(float))};
    float **ins = seeded_inputs(g);
    InterpResult res = interp(g, ins);
    assert_int_equal(round_trip(g, ins, &res, true, outs), g->nnodes);
    ir_interp_free(&res);
    free_inputs(g, ins);
    free(outs[1]);
    ir_graph_free(g);
}

/* ---- a compiled model's arena ---------------------------------------------- */

/* An instance of `g` compiled in-process (the JIT), with `threads` threads. */
static cnn_model *jit_model(Cg *cg, const Graph *g, int32_t threads, CgJit **jit)
{
    char err[1024];
    /* ISO C has no function-to-object pointer cast; POSIX (dlsym) relies on the
     * representation being the same. */
    CgJitSymbol syms[2] = {{"rt_parallel_for", NULL}, {"rt_run_kernel", NULL}};
    void (*pf)(RtPool *, int64_t, RtKernel, void *) = rt_parallel_for;
    void (*rk)(RtPool *, int32_t, int64_t, RtKernel, void *) = rt_run_kernel;
    memcpy(&syms[0].addr, &pf, sizeof pf);
    memcpy(&syms[1].addr, &rk, sizeof rk);
    *jit = cg_jit_new(cg, syms, 2, err, sizeof err);
    if (!*jit) fail_msg("jit: %s", err);
    const RtModel *desc = cg_jit_lookup(*jit, "cnnc_model");
    assert_non_null(desc);
    assert_int_equal(desc->arena_bytes, g->arena_bytes);
    cnn_options opt;
    cnn_options_init(&opt);
    opt.num_threads = threads;
    cnn_model *m;
    assert_int_equal(rt_model_create(desc, &opt, &m), CNN_OK);
    return m;
}

static void run_model(cnn_model *m, const Graph *g, float **ins)
{
    cnn_tensor in[8], out[8];
    int32_t ni = ir_num_inputs(g), no = g->noutputs;
    assert_true(ni <= 8 && no <= 8);
    for (int32_t i = 0, k = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_INPUT) {
            in[k] = (cnn_tensor){ins[k], (size_t)ir_numel(&g->nodes[i].type) * sizeof(float)};
            k++;
        }
    for (int32_t k = 0; k < no; k++) {
        size_t bytes = (size_t)ir_numel(&g->nodes[g->outputs[k].node].type) * sizeof(float);
        out[k] = (cnn_tensor){ir_xmalloc(bytes), bytes};
    }
    assert_int_equal(cnn_model_run(m, in, ni, out, no), CNN_OK);
    for (int32_t k = 0; k < no; k++)
        free(out[k].data);
}

/* Every value but the weights, read back from the arena after a run, against
 * the interpreter on the same graph. */
static void expect_values(const Graph *g, const char *arena, float **ins,
                          const InterpResult *res, int32_t threads)
{
    int32_t checked = 0;
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (n->op == OP_PARAM) continue;
        float *got = ir_xmalloc((size_t)ir_numel(&n->type) * sizeof(float) + 4);
        if (!repl_read_value(g, i, arena, (const float *const *)ins, NULL, got))
            fail_msg("'%s' is not readable", n->name);
        char what[256];
        snprintf(what, sizeof what, "node '%s' (%s), %d threads", n->name, ir_ops[n->op].name,
                 (int)threads);
        expect_close(what, got, res->values[i], ir_numel(&n->type));
        checked++;
        free(got);
    }
    assert_true(checked > 3);
}

/* Runs `g` (planned with keep_values) in-process on `ins` and checks every
 * value in its arena against the interpreter's `res`. */
static void check_jit(Graph *g, float **ins, const InterpResult *res, int32_t threads)
{
    Diag d;
    ir_diag_init(&d, stderr);
    CgTarget t = {.opt_level = 2};
    Cg cg;
    assert_true(cg_lower(&cg, g, &t, &d));
    CgJit *j;
    cnn_model *m = jit_model(&cg, g, threads, &j);
    run_model(m, g, ins);
    const char *arena = rt_model_arena(m);
    assert_non_null(arena);
    expect_values(g, arena, ins, res, threads);
    cnn_model_destroy(m);
    cg_jit_free(j);
    cg_free(&cg);
    ir_diag_fini(&d);
}

/* ---- the zoo ------------------------------------------------------------------ */

/* Zoo model `model` at batch 2, planned with and without keep_values: arenas
 * filled by hand read back exactly, and so does (within TOL) the arena of the
 * model compiled in-process. With `lost`, the plan that reuses bytes must
 * have overwritten some values, and some values must be NCHWc-blocked. */
static void check_zoo_values(const char *model, int32_t threads, bool lost)
{
    int32_t lanes = cg_target_lanes(&(CgTarget){0});
    Graph *keep = compiled(model, NULL, 2, lanes, true);
    Graph *reuse = compiled(model, NULL, 2, lanes, false);
    assert_int_equal(reuse->nnodes, keep->nnodes);
    float **ins = seeded_inputs(keep);
    InterpResult res = interp(keep, ins);
    round_trip(keep, ins, &res, true, NULL);
    /* The same graph but for the plan: what is still readable after a run
     * must be right. */
    int32_t values = 0;
    for (int32_t n = 0; n < reuse->nnodes; n++)
        values += reuse->nodes[n].op != OP_PARAM;
    int32_t readable = round_trip(reuse, ins, &res, false, NULL);
    assert_true(readable >= 2);
    if (lost) {
        assert_true(readable < values);
        assert_true(count_layout(keep, LAYOUT_NCHWC) > 0);
    }
    check_jit(keep, ins, &res, threads);
    ir_interp_free(&res);
    free_inputs(keep, ins);
    ir_graph_free(keep);
    ir_graph_free(reuse);
}

static void test_mnist_cnn(void **state)
{
    (void)state;
    check_zoo_values("mnist_cnn", 1, true);
}

static void test_mlp(void **state)
{
    (void)state;
    check_zoo_values("mlp", 2, false);
}

static void test_squeezenet(void **state)
{
    (void)state;
    check_zoo_values("squeezenet1_1", 2, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_values_plans),
        cmocka_unit_test(test_round_trip_nhwc_output),
        cmocka_unit_test(test_mnist_cnn),
        cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_squeezenet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
