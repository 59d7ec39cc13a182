/* repl_values.c: inputs, runs and values in the REPL. Graph inputs hold what
 * :input gave (or seeded random data); outputs come from the compiled model's
 * last run; every other node or variable is computed by the reference
 * interpreter over the network as built (so nodes the passes fused away can
 * still be looked at), once per input and network. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "repl.h"

#define SHOWN 16    /* values :print shows by default */
#define PER_LINE 8

/* A value to print or save: its data, logical type and where it came from. */
typedef struct Value {
    const char *name;
    TensorType type;
    const float *data;
    const char *from;
} Value;

void repl_input_free(ReplInput *in)
{
    free(in->name);
    free(in->path);
    free(in->a.data);
}

static bool parse_i64(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < 0) return false;
    *v = x;
    return true;
}

/* Last run's outputs and interpreter values no longer match the inputs. */
static void forget_values(Repl *r)
{
    repl_free_outputs(r->outputs, r->noutputs);
    r->outputs = NULL;
    r->noutputs = 0;
    if (r->interp.values) ir_interp_free(&r->interp);
    memset(&r->interp, 0, sizeof r->interp);
}

/* :input NAME FILE [ITEM] | NAME random [SEED]; NAME may be left out with one input. */
bool repl_cmd_input(Repl *r, const ReplArgs *a)
{
    Graph *g = repl_source(r, a->cmd);
    if (!g) return false;
    int skip = ir_num_inputs(g) == 1 && a->argc >= 1 && ir_find_node(g, a->argv[0]) < 0 ? 0 : 1;
    if (a->argc < 1 + skip || a->argc > 2 + skip)
        return repl_fail(r, a->cmd, "expected NAME FILE.npy [ITEM] or NAME random [SEED]");
    const char *name = skip ? a->argv[0] : g->nodes[ir_input_node(g, 0)].name;
    int32_t id = ir_find_node(g, name);
    if (id < 0 || g->nodes[id].op != OP_INPUT)
        return repl_fail(r, a->cmd, "the network has no input '%s'", name);
    const char *what = a->argv[skip], *num = a->argc > 1 + skip ? a->argv[1 + skip] : NULL;
    int64_t k = 0;
    if (num && !parse_i64(num, &k)) return repl_fail(r, a->cmd, "bad number '%s'", num);
    NpyArray arr = {0};
    char err[512];
    bool random = !strcmp(what, "random");
    if (!random && !ir_npy_read(what, &arr, err, sizeof err))
        return repl_fail(r, a->cmd, "%s", err);
    ReplInput *in = repl_input_slot(r, name);
    in->seed = random ? (uint64_t)k : 0;
    in->item = random || !num ? -1 : k;
    in->a = arr;
    if (!random) in->path = ir_xstrdup(what);
    forget_values(r);
    char t[128];
    TensorType ft = ir_type_f32(arr.rank, arr.dims);
    if (random) printf("%s: random, seed %" PRId64 "\n", name, k);
    else printf("%s: %s from %s%s\n", name, ir_type_str(&ft, t, sizeof t), what,
                num ? " (from that item on)" : "");
    return true;
}

static void print_stats(const Value *v)
{
    int64_t n = ir_numel(&v->type), arg = 0;
    double lo = INFINITY, hi = -INFINITY, sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = v->data[i];
        if (x > hi) hi = x, arg = i;
        if (x < lo) lo = x;
        sum += x;
    }
    double mean = n ? sum / (double)n : 0;
    for (int64_t i = 0; i < n; i++) sq += (v->data[i] - mean) * (v->data[i] - mean);
    char t[128];
    printf("%s: %s  (%s)\n", v->name, ir_type_str(&v->type, t, sizeof t), v->from);
    printf("  min %.6g  max %.6g  mean %.6g  std %.6g  argmax %" PRId64 "\n", n ? lo : 0,
           n ? hi : 0, mean, n ? sqrt(sq / (double)n) : 0, arg);
}

static void print_range(const Value *v, int64_t lo, int64_t hi)
{
    int64_t n = ir_numel(&v->type);
    if (hi > n) hi = n;
    printf("  values [%" PRId64 ", %" PRId64 ") of %" PRId64 ":\n", lo, hi, n);
    for (int64_t i = lo; i < hi; i++) {
        if ((i - lo) % PER_LINE == 0) printf("  [%" PRId64 "]", i);
        printf(" %.6g", v->data[i]);
        if ((i - lo) % PER_LINE == PER_LINE - 1 || i + 1 == hi) printf("\n");
    }
}

/* "all", "A:B", "A:" or "A": flat, row-major element indices. */
static bool parse_range(const char *s, int64_t n, int64_t *lo, int64_t *hi)
{
    if (!s) return *lo = 0, *hi = n < SHOWN ? n : SHOWN, true;
    if (!strcmp(s, "all")) return *lo = 0, *hi = n, true;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    char *colon = strchr(buf, ':');
    if (colon) *colon = 0;
    if (!parse_i64(buf, lo)) return false;
    *hi = *lo + 1;
    if (colon && !(colon[1] ? parse_i64(colon + 1, hi) : (*hi = n, true))) return false;
    return *lo < *hi && *lo < n;
}

/* Compiles and runs when there is no run of the current model yet. */
static bool ensure_run(Repl *r, const char *cmd)
{
    if (r->outputs) return true;
    if (!repl_ensure_model(r, cmd)) return false;
    const float **in = repl_input_data(r, cmd, r->build->g);
    if (!in) return false;
    float **out = NULL;
    bool ok = repl_run_model(r, cmd, r->build, r->model_inst, in, &out);
    free(in);
    if (!ok) return repl_free_outputs(out, r->build->g->noutputs), false;
    r->outputs = out;
    r->noutputs = r->build->g->noutputs;
    return true;
}

static bool interp_values(Repl *r, const char *cmd, const Graph *src)
{
    if (r->interp.values) return true;
    const float **in = repl_input_data(r, cmd, src);
    if (!in) return false;
    char err[512];
    bool ok = ir_interp(src, in, &r->interp, err, sizeof err);
    free(in);
    if (!ok) memset(&r->interp, 0, sizeof r->interp);
    return ok ? true : repl_fail(r, cmd, "the interpreter failed: %s", err);
}

static int32_t output_index(const Graph *g, const char *name)
{
    for (int32_t k = 0; k < g->noutputs; k++)
        if (!strcmp(g->outputs[k].name, name)) return k;
    return -1;
}

/* A node of the network as built, by variable or node name. */
static int32_t find_node(Repl *r, const Graph *src, const char *name)
{
    int32_t id = fe_session_lookup(r->fe, name);
    return id >= 0 && id < src->nnodes ? id : ir_find_node(src, name);
}

/* A graph input's data, without running anything. */
static bool input_value(Repl *r, const char *cmd, const Graph *src, int32_t id, Value *v)
{
    const float **in = repl_input_data(r, cmd, src);
    if (!in) return false;
    for (int32_t i = 0; i < ir_num_inputs(src); i++)
        if (ir_input_node(src, i) == id) v->data = in[i];
    free(in);
    v->from = "input";
    return true;
}

static bool find_value(Repl *r, const char *cmd, const char *name, Value *v)
{
    Graph *src = repl_source(r, cmd);
    if (!src) return false;
    if (output_index(src, name) >= 0) {
        if (!ensure_run(r, cmd)) return false;
        int32_t k = output_index(r->build->g, name);
        *v = (Value){name, r->build->g->nodes[r->build->g->outputs[k].node].type,
                     r->outputs[k], "output of the compiled model"};
        return true;
    }
    int32_t id = find_node(r, src, name);
    if (id < 0) return repl_fail(r, cmd, "no value, node or variable '%s'", name);
    const Node *n = &src->nodes[id];
    v->name = name;
    v->type = n->type;
    v->type.layout = LAYOUT_PLAIN, v->type.block = 0;
    if (n->op == OP_PARAM) return v->data = n->data, v->from = "parameter", true;
    if (n->op == OP_INPUT) return input_value(r, cmd, src, id, v);
    if (!interp_values(r, cmd, src)) return false;
    v->data = r->interp.values[id];
    v->from = "reference interpreter";
    return true;
}

bool repl_cmd_print(Repl *r, const ReplArgs *a)
{
    if (a->argc < 1 || a->argc > 2) return repl_fail(r, a->cmd, "expected VALUE [all|A:B]");
    Value v;
    if (!find_value(r, a->cmd, a->argv[0], &v)) return false;
    int64_t lo, hi, n = ir_numel(&v.type);
    if (!parse_range(a->argc > 1 ? a->argv[1] : NULL, n, &lo, &hi))
        return repl_fail(r, a->cmd, "bad range '%s' (all, A:B, A: or A, below %" PRId64 ")",
                         a->argv[1], n);
    print_stats(&v);
    print_range(&v, lo, hi);
    return true;
}

bool repl_cmd_save(Repl *r, const ReplArgs *a)
{
    if (a->argc != 2) return repl_fail(r, a->cmd, "expected VALUE FILE.npy");
    Value v;
    if (!find_value(r, a->cmd, a->argv[0], &v)) return false;
    char err[512];
    if (!ir_npy_write(a->argv[1], v.data, v.type.rank, v.type.dims, err, sizeof err))
        return repl_fail(r, a->cmd, "%s", err);
    char t[128];
    printf("wrote %s: %s (%s)\n", a->argv[1], ir_type_str(&v.type, t, sizeof t), v.from);
    return true;
}

bool repl_cmd_run(Repl *r, const ReplArgs *a)
{
    if (a->argc) return repl_fail(r, a->cmd, "takes no arguments (inputs are set by :input)");
    forget_values(r);
    if (!ensure_run(r, a->cmd)) return false;
    const Graph *g = r->build->g;
    for (int32_t k = 0; k < g->noutputs; k++) {
        Value v = {g->outputs[k].name, g->nodes[g->outputs[k].node].type, r->outputs[k],
                   "output"};
        print_stats(&v);
        print_range(&v, 0, SHOWN);
    }
    return true;
}

/* The k largest of v[0..n), best first, into best. */
static int64_t top_k(const float *v, int64_t n, int64_t k, int64_t *best)
{
    int64_t have = 0;
    for (int64_t i = 0; i < n; i++) {
        if (have == k && !(v[i] > v[best[k - 1]])) continue;
        int64_t j = have < k ? have++ : k - 1;
        for (; j > 0 && v[i] > v[best[j - 1]]; j--) best[j] = best[j - 1];
        best[j] = i;
    }
    return have;
}

bool repl_cmd_top(Repl *r, const ReplArgs *a)
{
    int64_t k = 5;
    if (a->argc > 1 || (a->argc && (!parse_i64(a->argv[0], &k) || k < 1)))
        return repl_fail(r, a->cmd, "expected a positive count");
    if (!ensure_run(r, a->cmd)) return false;
    const Graph *g = r->build->g;
    const TensorType *t = &g->nodes[g->outputs[0].node].type;
    if (t->rank < 1 || t->dims[0] < 1) return repl_fail(r, a->cmd, "the output has no items");
    int64_t per = ir_numel(t) / t->dims[0];
    int64_t *best = ir_xmalloc((size_t)(k < per ? k : per) * sizeof *best + 1);
    for (int64_t b = 0; b < t->dims[0]; b++) {
        const float *v = r->outputs[0] + b * per;
        int64_t have = top_k(v, per, k < per ? k : per, best);
        printf("%s[%" PRId64 "] top-%" PRId64 ":", g->outputs[0].name, b, have);
        for (int64_t j = 0; j < have; j++)
            printf("%s %" PRId64 " (%.6g)", j ? "," : "", best[j], v[best[j]]);
        printf("\n");
    }
    free(best);
    return true;
}
