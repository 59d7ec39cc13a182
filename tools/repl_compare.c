/* repl_compare.c: :compare, the compiled model checked node by node. The
 * optimized graph is compiled again with keep_values (no byte of any value is
 * reused), run once, and every value read back (repl_read_value) is compared
 * with the reference interpreter on that same optimized graph, which names the
 * first node whose kernel goes wrong; the outputs are also compared with the
 * interpreter on the network as built, which checks the passes themselves. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "repl.h"

#define DEFAULT_TOL 1e-4

/* The largest difference, relative to the largest magnitude of the reference. */
typedef struct Err {
    double abs, rel;
} Err;

static Err error_of(const float *got, const float *want, int64_t n)
{
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= diff)) diff = d; /* NaN sticks */
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    return (Err){diff, diff / (scale > 1e-30 ? scale : 1e-30)};
}

/* The per-node table; returns the first node over `tol`, -1 if none. */
static int32_t compare_nodes(const ReplBuild *kb, const InterpResult *ref, const char *arena,
                             const float **in, float **out, double tol, int32_t *checked)
{
    const Graph *g = kb->g;
    int32_t first = -1;
    *checked = 0;
    printf("  %-5s %-32s %-12s %12s %12s\n", "node", "name", "op", "max abs err", "rel err");
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (n->op == OP_PARAM) continue;
        int64_t count = ir_numel(&n->type);
        float *v = ir_xmalloc((size_t)count * sizeof *v + 1);
        if (repl_read_value(g, i, arena, in, (const float *const *)out, v)) {
            Err e = error_of(v, ref->values[i], count);
            bool bad = !(e.rel <= tol);
            if (bad && first < 0) first = i;
            printf("  %%%-4d %-32s %-12s %12.3g %12.3g%s\n", (int)i, n->name, ir_ops[n->op].name,
                   e.abs, e.rel, bad ? "  <- diverges" : "");
            (*checked)++;
        }
        free(v);
    }
    return first;
}

static int32_t output_named(const Graph *g, const char *name)
{
    for (int32_t k = 0; k < g->noutputs; k++)
        if (!strcmp(g->outputs[k].name, name)) return g->outputs[k].node;
    return -1;
}

/* The compiled outputs against the interpreter on the network before the passes. */
static bool compare_outputs(Repl *r, const char *cmd, const Graph *g, float **out, double tol)
{
    Graph *src = repl_source(r, cmd);
    const float **in = src ? repl_input_data(r, cmd, src) : NULL;
    InterpResult ref = {0};
    char err[512];
    if (!in) return false;
    bool ok = ir_interp(src, in, &ref, err, sizeof err);
    free(in);
    if (!ok) return repl_fail(r, cmd, "the interpreter failed: %s", err);
    printf("outputs against the interpreter on the network as built (before the passes):\n");
    for (int32_t k = 0; k < g->noutputs; k++) {
        int32_t id = output_named(src, g->outputs[k].name);
        if (id < 0) continue;
        Err e = error_of(out[k], ref.values[id], ir_numel(&src->nodes[id].type));
        bool bad = !(e.rel <= tol);
        printf("  %-32s max abs err %.3g, rel err %.3g%s\n", g->outputs[k].name, e.abs, e.rel,
               bad ? "  <- differs" : "");
        if (bad) ok = repl_fail(r, cmd, "output '%s' differs from the interpreter's "
                                "(relative error %.3g > %.3g)", g->outputs[k].name, e.rel, tol);
    }
    ir_interp_free(&ref);
    return ok;
}

static bool parse_tol(Repl *r, const ReplArgs *a, double *tol)
{
    char *end;
    *tol = DEFAULT_TOL;
    if (!a->argc) return true;
    errno = 0;
    *tol = strtod(a->argv[0], &end);
    if (a->argc > 1 || errno || *end || end == a->argv[0] || !(*tol > 0))
        return repl_fail(r, a->cmd, "expected a positive relative tolerance, e.g. 1e-4");
    return true;
}

/* Runs the keep_values build once and compares every node; false on divergence. */
static bool check_build(Repl *r, const char *cmd, ReplBuild *kb, double tol)
{
    cnn_model *m = repl_instance(r, cmd, kb);
    const float **in = m ? repl_input_data(r, cmd, kb->g) : NULL;
    float **out = NULL;
    InterpResult ref = {0};
    char err[512];
    bool ok = in && repl_run_model(r, cmd, kb, m, in, &out);
    if (ok && !(ok = ir_interp(kb->g, in, &ref, err, sizeof err)))
        repl_fail(r, cmd, "the interpreter failed: %s", err);
    if (ok) {
        printf("compiled values (keep_values) against the interpreter on the optimized graph, "
               "relative tolerance %g:\n", tol);
        int32_t n, first = compare_nodes(kb, &ref, rt_model_arena(m), in, out, tol, &n);
        if (first >= 0)
            ok = repl_fail(r, cmd, "first divergence at node '%s' (%s)", kb->g->nodes[first].name,
                           ir_ops[kb->g->nodes[first].op].name);
        else
            printf("all %d values agree\n", (int)n);
        ok = compare_outputs(r, cmd, kb->g, out, tol) && ok;
    }
    if (ref.values) ir_interp_free(&ref);
    repl_free_outputs(out, kb->g->noutputs);
    free(in);
    cnn_model_destroy(m);
    return ok;
}

bool repl_cmd_compare(Repl *r, const ReplArgs *a)
{
    double tol;
    if (!parse_tol(r, a, &tol)) return false;
    ReplBuild *kb = repl_build_new(r, a->cmd, true);
    if (!kb) return false;
    bool ok = check_build(r, a->cmd, kb, tol);
    repl_build_free(kb);
    return ok;
}
