/* check.h: what the pass tests share. A model is loaded (batch 1, random
 * weights of seed 0), run once on the reference interpreter unoptimized, and
 * then reloaded, optimized with some options and run again: every output must
 * agree with max|got - ref| <= TOL * max|ref|, and the memory plan must pass
 * pass_check_plan. Included by test_passes.c and test_passes_zoo.c. */
#ifndef CNNC_TESTS_PASSES_CHECK_H
#define CNNC_TESTS_PASSES_CHECK_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend.h"
#include "passes.h"
#include "test_util.h"

#define TOL 1e-4
#define ALL_ON (-1)

typedef struct Model {
    const char *path; /* a model file, or NULL with `text` */
    const char *text;
    float **inputs;
    int32_t ninputs, noutputs;
    float **ref;   /* the unoptimized outputs */
    int64_t *count;
    char **seen;   /* IR text of every optimized graph already run */
    int32_t nseen;
} Model;

static inline Graph *model_load(const Model *m)
{
    FeOptions opt = {.batch = 1};
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = m->path ? fe_load_file(m->path, &opt, &d)
                       : fe_load_string("test.cnn", m->text, &opt, &d);
    ir_diag_fini(&d);
    assert_non_null(g);
    fe_random_weights(g, 0);
    return g;
}

static inline float *copy_floats(const float *v, int64_t n)
{
    float *c = malloc((size_t)(n > 0 ? n : 1) * sizeof *c);
    assert_non_null(c);
    memcpy(c, v, (size_t)n * sizeof *c);
    return c;
}

static inline float **run_outputs(const Graph *g, float *const *inputs)
{
    InterpResult r = {0};
    char err[256] = "";
    if (!ir_interp(g, (const float *const *)inputs, &r, err, sizeof err))
        fail_msg("interpreter: %s", err);
    float **out = calloc((size_t)g->noutputs + 1, sizeof *out);
    assert_non_null(out);
    for (int32_t i = 0; i < g->noutputs; i++) {
        int32_t id = g->outputs[i].node;
        out[i] = copy_floats(r.values[id], ir_numel(&g->nodes[id].type));
    }
    ir_interp_free(&r);
    return out;
}

/* Loads the model and computes its reference outputs on inputs uniform in [-1, 1). */
static inline void model_init(Model *m)
{
    Graph *g = model_load(m);
    m->ninputs = ir_num_inputs(g);
    m->noutputs = g->noutputs;
    m->inputs = calloc((size_t)m->ninputs + 1, sizeof *m->inputs);
    m->count = calloc((size_t)m->noutputs + 1, sizeof *m->count);
    for (int32_t i = 0; i < m->ninputs; i++) {
        const Node *n = &g->nodes[ir_input_node(g, i)];
        int64_t count = ir_numel(&n->type);
        Rng r = ir_rng(1, n->name);
        m->inputs[i] = malloc((size_t)count * sizeof(float));
        for (int64_t k = 0; k < count; k++)
            m->inputs[i][k] = (float)(2.0 * ir_rng_uniform(&r) - 1.0);
    }
    for (int32_t i = 0; i < m->noutputs; i++)
        m->count[i] = ir_numel(&g->nodes[g->outputs[i].node].type);
    m->ref = run_outputs(g, m->inputs);
    ir_graph_free(g);
}

static inline void model_fini(Model *m)
{
    for (int32_t i = 0; i < m->nseen; i++)
        free(m->seen[i]);
    free(m->seen);
    for (int32_t i = 0; i < m->ninputs; i++)
        free(m->inputs[i]);
    for (int32_t i = 0; i < m->noutputs; i++)
        free(m->ref[i]);
    free(m->inputs);
    free(m->ref);
    free(m->count);
}

static inline void compare(const Model *m, float **got, const char *what)
{
    for (int32_t i = 0; i < m->noutputs; i++) {
        double scale = 0.0, err = 0.0;
        for (int64_t k = 0; k < m->count[i]; k++) {
            double d = fabs((double)got[i][k] - (double)m->ref[i][k]);
            scale = fmax(scale, fabs((double)m->ref[i][k]));
            err = isnan(d) ? INFINITY : fmax(err, d);
        }
        if (!(err <= TOL * scale))
            fail_msg("%s: output %d differs by %g (max |ref| %g)", what, (int)i, err, scale);
    }
}

static inline bool optimize(Graph *g, int32_t block, int32_t disabled)
{
    PassOptions opt;
    pass_options_init(&opt);
    opt.block = block;
    opt.verify = true;
    if (disabled >= 0)
        opt.disabled = UINT64_C(1) << disabled;
    Diag d;
    ir_diag_init(&d, stderr);
    bool ok = pass_run_pipeline(g, &opt, &d) && pass_check_plan(g, &d);
    ir_diag_fini(&d);
    return ok;
}

/* The same graph text (weights are a function of it) gives the same numbers:
 * a configuration whose result equals one already run (a pass that finds
 * nothing to do) is not run again on the slow interpreter. */
static inline bool already_run(Model *m, const Graph *g)
{
    char *text = print_graph(g);
    for (int32_t i = 0; i < m->nseen; i++)
        if (strcmp(m->seen[i], text) == 0) {
            free(text);
            return true;
        }
    m->seen = realloc(m->seen, ((size_t)m->nseen + 1) * sizeof *m->seen);
    assert_non_null(m->seen);
    m->seen[m->nseen++] = text;
    return false;
}

/* Optimizes a fresh copy with `block` and pass `disabled` off (ALL_ON: none)
 * and checks the plan and the outputs. */
static inline void check_config(Model *m, int32_t block, int32_t disabled)
{
    char what[160];
    snprintf(what, sizeof what, "%s, block %d, %s%s", m->path ? m->path : "model", (int)block,
             disabled >= 0 ? "without " : "all passes",
             disabled >= 0 ? pass_pipeline[disabled].name : "");
    Graph *g = model_load(m);
    if (!optimize(g, block, disabled))
        fail_msg("%s: the pipeline or the plan check failed", what);
    assert_int_equal(g->noutputs, m->noutputs);
    if (already_run(m, g)) {
        ir_graph_free(g);
        return;
    }
    float **got = run_outputs(g, m->inputs);
    compare(m, got, what);
    for (int32_t i = 0; i < m->noutputs; i++)
        free(got[i]);
    free(got);
    ir_graph_free(g);
}

/* The full pipeline at blocks 0, 8 and 16, and with each optional pass off. */
static inline void check_all_configs(Model *m)
{
    check_config(m, 0, ALL_ON);
    check_config(m, 8, ALL_ON);
    check_config(m, 16, ALL_ON);
    for (int32_t p = 0; p < pass_count; p++)
        if (!pass_pipeline[p].required)
            check_config(m, 8, p);
}

/* Plans the model at the given block and prints arena size against the sum
 * of all activations; the plan must check. */
static inline void report_plan(const char *path, int32_t block)
{
    Model m = {.path = path};
    Graph *g = model_load(&m);
    assert_true(optimize(g, block, ALL_ON));
    int64_t total = pass_plan_total_bytes(g);
    assert_true(g->arena_bytes > 0 && g->arena_bytes <= total + 64 * g->nnodes);
    print_message("%-28s block %2d: arena %10lld bytes, all values %10lld bytes (%.1f%%)\n",
                  path, (int)block, (long long)g->arena_bytes, (long long)total,
                  100.0 * (double)g->arena_bytes / (double)total);
    ir_graph_free(g);
}

#endif
