/* repl_inspect.c: looking inside the REPL's model: its IR (as built, after a
 * pass, after all), Graphviz form, the LLVM IR and assembly of one node's kernel
 * (kernel functions are named after their IR node), the memory plan, latency
 * and per-kernel profiles of the JIT'd model. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "repl.h"

#define DEFAULT_RUNS 10
#define MAX_RUNS 1000000

static bool ensure_build(Repl *r, const char *cmd)
{
    return r->build || (r->build = repl_build_new(r, cmd, false));
}

static bool ir_after(Repl *r, const char *cmd, const char *pass)
{
    int32_t k = pass_index(pass);
    if (k < 0) return repl_fail(r, cmd, "no pass '%s' (see :passes)", pass);
    if ((r->disabled >> k) & 1) return repl_fail(r, cmd, "pass '%s' is disabled", pass);
    Graph *src = repl_source(r, cmd);
    if (!src) return false;
    Graph *g = ir_graph_clone(src);
    PassOptions po;
    pass_options_init(&po);
    po.block = cg_target_lanes(&r->target);
    po.disabled = r->disabled;
    po.dump_after = k;
    po.dump = stdout;
    ReplDiag rd;
    bool ok = pass_run_pipeline(g, &po, repl_diag_open(&rd));
    ok = repl_diag_close(r, &rd, cmd) && ok;
    ir_graph_free(g);
    return ok;
}

bool repl_cmd_ir(Repl *r, const ReplArgs *a)
{
    if (a->argc == 2 && !strcmp(a->argv[0], "after")) return ir_after(r, a->cmd, a->argv[1]);
    if (a->argc == 1 && !strcmp(a->argv[0], "opt")) {
        if (!ensure_build(r, a->cmd)) return false;
        ir_print(r->build->g, stdout);
        return true;
    }
    if (a->argc) return repl_fail(r, a->cmd, "expected nothing, 'after PASS' or 'opt'");
    Graph *src = repl_source(r, a->cmd);
    if (src) ir_print(src, stdout);
    return src != NULL;
}

static bool print_dot(FILE *f, void *ctx)
{
    ir_print_dot(ctx, f);
    return !ferror(f);
}

bool repl_cmd_dot(Repl *r, const ReplArgs *a)
{
    if (a->argc != 1) return repl_fail(r, a->cmd, "expected the file to write: :dot FILE.dot");
    Graph *src = repl_source(r, a->cmd);
    if (!src) return false;
    char err[512];
    if (!ir_write_atomic(a->argv[0], print_dot, src, err, sizeof err))
        return repl_fail(r, a->cmd, "%s", err);
    printf("wrote %s\n", a->argv[0]);
    return true;
}

/* Why `name` has no kernel function: fused away, no code of its own, or unknown. */
static bool no_kernel(Repl *r, const char *cmd, const char *name)
{
    int32_t id = ir_find_node(r->build->g, name);
    if (id >= 0)
        return repl_fail(r, cmd, "node '%s' (%s) has no kernel of its own: it is an input, a "
                         "parameter or a view of another value", name,
                         ir_ops[r->build->g->nodes[id].op].name);
    if (r->src && ir_find_node(r->src, name) >= 0)
        return repl_fail(r, cmd, "node '%s' has no kernel: the passes fused it into another "
                         "node or removed it (see :ir opt)", name);
    return repl_fail(r, cmd, "no node '%s'", name);
}

bool repl_cmd_llvm(Repl *r, const ReplArgs *a)
{
    if (a->argc != 1) return repl_fail(r, a->cmd, "expected a node name (or run)");
    Cg *cg = repl_module(r, a->cmd);
    if (!cg) return false;
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, a->argv[0]);
    if (!fn || LLVMIsDeclaration(fn)) return no_kernel(r, a->cmd, a->argv[0]);
    char *text = LLVMPrintValueToString(fn);
    fputs(text, stdout);
    LLVMDisposeMessage(text);
    return true;
}

static const char *module_asm(Repl *r, const char *cmd)
{
    char err[1024];
    Cg *cg = repl_module(r, cmd);
    if (!cg) return NULL;
    ReplBuild *b = r->build;
    if (b->asm_text) return b->asm_text;
    LLVMMemoryBufferRef m = cg_emit_memory(cg, LLVMAssemblyFile, err, sizeof err);
    if (!m) return repl_fail(r, cmd, "%s", err), NULL;
    size_t n = LLVMGetBufferSize(m);
    b->asm_text = ir_xmalloc(n + 1);
    memcpy(b->asm_text, LLVMGetBufferStart(m), n);
    b->asm_text[n] = 0;
    LLVMDisposeMemoryBuffer(m);
    return b->asm_text;
}

/* The line `NAME:` or `"NAME":` that starts the function's code, or NULL. */
static const char *find_label(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        const char *q = p + (*p == '"');
        if (strncmp(q, name, n)) continue;
        q += n;
        if (*p == '"' && *q++ != '"') continue;
        if (q[0] == ':' && (q[1] == '\n' || q[1] == ' ' || q[1] == '\t' || !q[1])) return p;
    }
    return NULL;
}

/* From the label to the function's .size directive (or the next .Lfunc_end). */
static void print_function(const char *start, const char *name)
{
    const char *p = start;
    while (*p) {
        size_t n = strcspn(p, "\n");
        printf("%.*s\n", (int)n, p);
        bool size = !strncmp(p, "\t.size\t", 7) && strstr(p, name) && strstr(p, name) < p + n;
        p += n + (p[n] == '\n');
        if (size) break;
    }
}

bool repl_cmd_asm(Repl *r, const ReplArgs *a)
{
    if (a->argc != 1) return repl_fail(r, a->cmd, "expected a node name (or run)");
    if (!ensure_build(r, a->cmd)) return false;
    LLVMValueRef fn = LLVMGetNamedFunction(r->build->cg.mod, a->argv[0]);
    if (!fn || LLVMIsDeclaration(fn)) return no_kernel(r, a->cmd, a->argv[0]);
    const char *text = module_asm(r, a->cmd), *start;
    if (!text) return false;
    if (!(start = find_label(text, a->argv[0])))
        return repl_fail(r, a->cmd, "'%s' is not in the module's assembly", a->argv[0]);
    print_function(start, a->argv[0]);
    return true;
}

static int64_t weight_bytes(const Graph *g)
{
    int64_t n = 0;
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_PARAM) n += ir_numel(&g->nodes[i].type) * 4;
    return n;
}

bool repl_cmd_mem(Repl *r, const ReplArgs *a)
{
    if (a->argc) return repl_fail(r, a->cmd, "takes no arguments");
    if (!ensure_build(r, a->cmd)) return false;
    const Graph *g = r->build->g;
    pass_print_plan(g, stdout);
    int64_t total = pass_plan_total_bytes(g);
    printf("peak activation memory (arena): %" PRId64 " bytes; %" PRId64
           " bytes with one buffer per value (%.1f%% saved); weights %" PRId64 " bytes\n",
           g->arena_bytes, total, total ? 100.0 * (double)(total - g->arena_bytes) / (double)total
                                        : 0.0,
           weight_bytes(g));
    return true;
}

static bool parse_runs(Repl *r, const ReplArgs *a, int64_t *n)
{
    char *end;
    *n = DEFAULT_RUNS;
    if (!a->argc) return true;
    errno = 0;
    long long v = strtoll(a->argv[0], &end, 10);
    if (a->argc > 1 || errno || *end || end == a->argv[0] || v < 1 || v > MAX_RUNS)
        return repl_fail(r, a->cmd, "expected a number of runs from 1 to %d", MAX_RUNS);
    *n = v;
    return true;
}

/* Compiles when needed and runs `warmup` untimed times; the inputs stay for timed runs. */
static const float **prepare(Repl *r, const char *cmd, int64_t warmup, float ***out)
{
    if (!repl_ensure_model(r, cmd)) return NULL;
    const float **in = repl_input_data(r, cmd, r->build->g);
    for (int64_t i = 0; in && i < warmup; i++)
        if (!repl_run_model(r, cmd, r->build, r->model_inst, in, out)) return free(in), NULL;
    return in;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bool repl_cmd_time(Repl *r, const ReplArgs *a)
{
    if (a->argc == 1 && !strcmp(a->argv[0], "compile")) return repl_time_compile(r, a);
    int64_t n;
    float **out = NULL;
    if (!parse_runs(r, a, &n)) return false;
    const float **in = prepare(r, a->cmd, 1, &out);
    double *t = ir_xmalloc((size_t)n * sizeof *t);
    bool ok = in != NULL;
    repl_interrupted();
    for (int64_t i = 0; ok && i < n; i++) {
        if (repl_interrupted()) n = i; /* Ctrl-C: the runs so far */
        if (i == n) break;
        double t0 = repl_now();
        ok = repl_run_model(r, a->cmd, r->build, r->model_inst, in, &out);
        t[i] = (repl_now() - t0) * 1e3;
    }
    if (ok && n == 0) ok = repl_fail(r, a->cmd, "interrupted");
    if (ok) {
        qsort(t, (size_t)n, sizeof *t, cmp_double);
        printf("latency over %" PRId64 " runs, %d threads: median %.3f ms  p90 %.3f ms  "
               "min %.3f ms  max %.3f ms\n", n, (int)cnn_model_num_threads(r->model_inst),
               t[(n - 1) / 2], t[(n * 9 + 9) / 10 - 1], t[0], t[n - 1]);
    }
    free(t);
    free(in);
    repl_free_outputs(out, r->build ? r->build->g->noutputs : 0);
    return ok;
}

static int32_t *order_by_time(const cnn_kernel_info *k, int32_t n)
{
    int32_t *o = ir_xmalloc(((size_t)n + 1) * sizeof *o);
    for (int32_t i = 0; i < n; i++) {
        int32_t j = i;
        for (; j > 0 && k[o[j - 1]].seconds < k[i].seconds; j--) o[j] = o[j - 1];
        o[j] = i;
    }
    return o;
}

static void print_profile(const cnn_kernel_info *k, int32_t n, int64_t runs, double wall)
{
    double total = 0;
    for (int32_t i = 0; i < n; i++) total += k[i].seconds;
    int32_t *o = order_by_time(k, n);
    printf("%-32s %-24s %10s %9s %7s\n", "kernel", "op", "ms/run", "GFLOP/s", "share");
    for (int32_t j = 0; j < n; j++) {
        const cnn_kernel_info *i = &k[o[j]];
        printf("%-32s %-24s %10.4f %9.2f %6.1f%%\n", i->name, i->op,
               i->seconds * 1e3 / (double)runs,
               i->seconds > 0 ? (double)i->flops * (double)i->calls / i->seconds * 1e-9 : 0.0,
               total > 0 ? 100 * i->seconds / total : 0.0);
    }
    printf("%d kernels: %.4f ms/run in kernels, %.4f ms/run in all (%" PRId64 " runs)\n",
           (int)n, total * 1e3 / (double)runs, wall * 1e3 / (double)runs, runs);
    free(o);
}

bool repl_cmd_profile(Repl *r, const ReplArgs *a)
{
    int64_t n;
    float **out = NULL;
    if (!parse_runs(r, a, &n)) return false;
    const float **in = prepare(r, a->cmd, 1, &out);
    if (!in) return repl_free_outputs(out, r->build ? r->build->g->noutputs : 0), false;
    cnn_model *m = r->model_inst;
    cnn_model_set_profiling(m, 1);
    double t0 = repl_now();
    bool ok = true;
    repl_interrupted();
    for (int64_t i = 0; ok && i < n; i++) {
        if (repl_interrupted()) n = i; /* Ctrl-C: the runs so far */
        if (i < n) ok = repl_run_model(r, a->cmd, r->build, m, in, &out);
    }
    double wall = repl_now() - t0;
    cnn_model_set_profiling(m, 0);
    int32_t nk = cnn_model_num_kernels(m);
    cnn_kernel_info *k = ir_xcalloc((size_t)nk + 1, sizeof *k);
    for (int32_t i = 0; i < nk; i++) cnn_model_kernel_info(m, i, &k[i]);
    if (ok && n == 0) ok = repl_fail(r, a->cmd, "interrupted");
    if (ok) print_profile(k, nk, n, wall);
    free(k);
    free(in);
    repl_free_outputs(out, r->build->g->noutputs);
    return ok;
}
