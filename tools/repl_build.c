/* repl_build.c: the REPL's compiled model. The network as built is copied,
 * run through the passes and lowered to the LLVM module `cnnc -o` would emit;
 * the JIT links that module's object code in-process against the runtime
 * linked into cnnc, and rt_model_create makes an instance of it. :export links
 * the same module into a model.so. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repl.h"

#ifndef CNNC_RUNTIME_LIB
#define CNNC_RUNTIME_LIB NULL
#endif

/* Converting a function pointer to void * is not ISO C; its bytes are. */
static void *fn_addr(void (*f)(void))
{
    void *p;
    memcpy(&p, &f, sizeof p);
    return p;
}

void repl_free_outputs(float **outputs, int32_t n)
{
    for (int32_t i = 0; outputs && i < n; i++) free(outputs[i]);
    free(outputs);
}

void repl_invalidate(Repl *r)
{
    cnn_model_destroy(r->model_inst);
    r->model_inst = NULL;
    repl_free_outputs(r->outputs, r->noutputs);
    r->outputs = NULL;
    r->noutputs = 0;
    if (r->interp.values) ir_interp_free(&r->interp);
    memset(&r->interp, 0, sizeof r->interp);
    repl_build_free(r->build);
    r->build = NULL;
    repl_cuda_free(r);
    if (r->src) ir_graph_free(r->src);
    r->src = NULL;
}

Graph *repl_source(Repl *r, const char *cmd)
{
    if (r->src) return r->src;
    if (!r->fe || !fe_session_has_network(r->fe)) {
        repl_fail(r, cmd, "no network: :load FILE.cnn, or :new NAME(INPUTS) and statements");
        return NULL;
    }
    ReplDiag rd;
    r->src = fe_session_graph(r->fe, r->weight_seed, repl_diag_open(&rd));
    bool clean = repl_diag_close(r, &rd, cmd);
    if (!r->src && clean) repl_fail(r, cmd, "the network has no value yet");
    return r->src;
}

static bool run_passes(const Repl *r, Graph *g, bool keep_values, Diag *d)
{
    PassOptions po;
    pass_options_init(&po);
    po.block = cg_target_lanes(&r->target);
    po.disabled = r->disabled;
    po.keep_values = keep_values;
    return pass_run_pipeline(g, &po, d);
}

static bool jit_link(Repl *r, const char *cmd, ReplBuild *b)
{
    char err[2048];
    const CgJitSymbol syms[] = {
        {"rt_parallel_for", fn_addr((void (*)(void))rt_parallel_for)},
        {"rt_run_kernel", fn_addr((void (*)(void))rt_run_kernel)},
    };
    b->jit = cg_jit_new(&b->cg, syms, 2, err, sizeof err);
    if (!b->jit) return repl_fail(r, cmd, "%s", err);
    b->desc = cg_jit_lookup(b->jit, "cnnc_model");
    if (!b->desc) return repl_fail(r, cmd, "the JIT'd module defines no cnnc_model");
    return true;
}

/* Passes, LLVM and the JIT over a copy of the network, each phase timed. */
ReplBuild *repl_build_new(Repl *r, const char *cmd, bool keep_values)
{
    double t0 = repl_now();
    Graph *src = repl_source(r, cmd);
    if (!src) return NULL;
    ReplBuild *b = ir_xcalloc(1, sizeof *b);
    b->keep_values = keep_values;
    b->g = ir_graph_clone(src);
    double t1 = repl_now();
    ReplDiag rd;
    Diag *d = repl_diag_open(&rd);
    bool ok = run_passes(r, b->g, keep_values, d);
    double t2 = repl_now();
    ok = ok && (b->lowered = true, cg_lower(&b->cg, b->g, &r->target, d));
    double t3 = repl_now();
    ok = repl_diag_close(r, &rd, cmd) && ok;
    ok = ok && jit_link(r, cmd, b);
    double t4 = repl_now();
    b->sec[0] = t1 - t0, b->sec[1] = t2 - t1, b->sec[2] = t3 - t2, b->sec[3] = t4 - t3;
    if (ok) return b;
    repl_build_free(b);
    return NULL;
}

Cg *repl_module(Repl *r, const char *cmd)
{
    if (!r->build && !(r->build = repl_build_new(r, cmd, false))) return NULL;
    return &r->build->cg;
}

void repl_build_free(ReplBuild *b)
{
    if (!b) return;
    if (b->jit) cg_jit_free(b->jit);
    if (b->lowered) cg_free(&b->cg);
    if (b->g) ir_graph_free(b->g);
    free(b->asm_text);
    free(b);
}

cnn_model *repl_instance(Repl *r, const char *cmd, const ReplBuild *b)
{
    cnn_options opt;
    cnn_options_init(&opt);
    opt.num_threads = r->threads;
    cnn_model *m = NULL;
    cnn_status s = rt_model_create(b->desc, &opt, &m);
    if (s != CNN_OK) repl_fail(r, cmd, "cannot create the model: %s", cnn_status_string(s));
    return m;
}

bool repl_ensure_model(Repl *r, const char *cmd)
{
    if (!r->build && !(r->build = repl_build_new(r, cmd, false))) return false;
    if (!r->model_inst) r->model_inst = repl_instance(r, cmd, r->build);
    return r->model_inst != NULL;
}

int32_t repl_find_input(const Repl *r, const char *name)
{
    for (int32_t i = 0; i < r->ninputs; i++)
        if (!strcmp(r->inputs[i].name, name)) return i;
    return -1;
}

ReplInput *repl_input_slot(Repl *r, const char *name)
{
    int32_t k = repl_find_input(r, name);
    if (k >= 0) {
        repl_input_free(&r->inputs[k]);
    } else {
        r->inputs = ir_xrealloc(r->inputs, ((size_t)r->ninputs + 1) * sizeof *r->inputs);
        k = r->ninputs++;
    }
    ReplInput *in = &r->inputs[k];
    memset(in, 0, sizeof *in);
    in->name = ir_xstrdup(name);
    in->item = -1;
    return in;
}

/* Random data in [-1, 1) from (seed, input name), as `cnnc run --seed`. */
static void make_random(ReplInput *in, const TensorType *t)
{
    int64_t n = ir_numel(t);
    free(in->a.data);
    in->a.data = ir_xmalloc((size_t)n * sizeof(float) + 1);
    in->a.rank = t->rank;
    memcpy(in->a.dims, t->dims, sizeof in->a.dims);
    Rng g = ir_rng(in->seed, in->name);
    for (int64_t i = 0; i < n; i++) in->a.data[i] = (float)(2.0 * ir_rng_uniform(&g) - 1.0);
}

/* The file's data for input type `t`: all of it, or batch items from in->item on. */
static const float *file_data(Repl *r, const char *cmd, const ReplInput *in, const TensorType *t)
{
    char want[128], got[128];
    TensorType ft = ir_type_f32(in->a.rank, in->a.dims);
    if (in->item < 0 && ir_type_eq(&ft, t)) return in->a.data;
    bool rest_eq = ft.rank == t->rank && ft.rank > 0;
    for (int32_t k = 1; rest_eq && k < t->rank; k++) rest_eq = ft.dims[k] == t->dims[k];
    int64_t item = in->item < 0 ? 0 : in->item;
    if (in->item >= 0 && rest_eq && item + t->dims[0] <= ft.dims[0])
        return in->a.data + item * (ir_numel(t) / (t->dims[0] ? t->dims[0] : 1));
    repl_fail(r, cmd, "input '%s' expects %s; '%s' holds %s%s", in->name,
              ir_type_str(t, want, sizeof want), in->path, ir_type_str(&ft, got, sizeof got),
              in->item >= 0 ? " (too few items from the one given)" : "");
    return NULL;
}

const float **repl_input_data(Repl *r, const char *cmd, const Graph *g)
{
    int32_t n = ir_num_inputs(g);
    const float **v = ir_xcalloc((size_t)n + 1, sizeof *v);
    for (int32_t i = 0; i < n; i++) {
        const Node *nd = &g->nodes[ir_input_node(g, i)];
        int32_t k = repl_find_input(r, nd->name);
        ReplInput *in = k >= 0 ? &r->inputs[k] : repl_input_slot(r, nd->name);
        if (!in->path) {
            TensorType have = ir_type_f32(in->a.rank, in->a.dims);
            if (!in->a.data || !ir_dims_eq(&have, &nd->type)) make_random(in, &nd->type);
            v[i] = in->a.data;
        } else if (!(v[i] = file_data(r, cmd, in, &nd->type))) {
            free(v);
            return NULL;
        }
    }
    return v;
}

bool repl_run_model(Repl *r, const char *cmd, const ReplBuild *b, cnn_model *m,
                    const float **inputs, float ***outputs)
{
    const Graph *g = b->g;
    int32_t nin = ir_num_inputs(g);
    cnn_tensor *in = ir_xcalloc((size_t)nin + 1, sizeof *in);
    cnn_tensor *out = ir_xcalloc((size_t)g->noutputs + 1, sizeof *out);
    for (int32_t i = 0; i < nin; i++)
        in[i] = (cnn_tensor){(void *)inputs[i],
                             (size_t)ir_numel(&g->nodes[ir_input_node(g, i)].type) * 4};
    if (!*outputs) *outputs = ir_xcalloc((size_t)g->noutputs + 1, sizeof **outputs);
    for (int32_t k = 0; k < g->noutputs; k++) {
        size_t bytes = (size_t)ir_numel(&g->nodes[g->outputs[k].node].type) * 4;
        if (!(*outputs)[k]) (*outputs)[k] = ir_xmalloc(bytes + 1);
        out[k] = (cnn_tensor){(*outputs)[k], bytes};
    }
    cnn_status s = cnn_model_run(m, in, nin, out, g->noutputs);
    free(in);
    free(out);
    if (s != CNN_OK) return repl_fail(r, cmd, "the run failed: %s", cnn_status_string(s));
    return true;
}

/* The object code linked with the runtime into `path`, as `cnnc -o` does. */
static bool link_so(Repl *r, const char *cmd, Cg *cg, const char *path)
{
    char err[8192];
    char *rt = cg_find_runtime(CNNC_RUNTIME_LIB);
    if (!rt) return repl_fail(r, cmd, "runtime library not found (set CNNC_RUNTIME)");
    bool ok = cg_link_shared(cg, rt, path, err, sizeof err);
    if (!ok) repl_fail(r, cmd, "linking '%s' failed:\n%s", path, err);
    free(rt);
    return ok;
}

bool repl_export(Repl *r, const ReplArgs *a)
{
    if (a->argc != 1) return repl_fail(r, a->cmd, "expected the file to write: :export FILE.so");
    Cg *cg = repl_module(r, a->cmd);
    if (!cg) return false;
    bool ok = link_so(r, a->cmd, cg, a->argv[0]);
    if (ok) printf("wrote %s\n", a->argv[0]);
    return ok;
}

/* The loaded file read again into a scratch session: the frontend's share. */
static bool time_frontend(Repl *r, const char *cmd, double *sec)
{
    double t0 = repl_now();
    FeSession *s = fe_session_new(&r->fo);
    ReplDiag rd;
    Diag *d = repl_diag_open(&rd);
    bool ok = fe_session_load(s, r->model, d) &&
              (!r->weights || fe_session_bind_weights(s, r->weights, d));
    Graph *g = ok ? fe_session_graph(s, r->weight_seed, d) : NULL;
    *sec = repl_now() - t0;
    if (g) ir_graph_free(g);
    fe_session_free(s);
    return repl_diag_close(r, &rd, cmd) && g;
}

bool repl_time_compile(Repl *r, const ReplArgs *a)
{
    double front = 0;
    if (r->model && !time_frontend(r, a->cmd, &front)) return false;
    repl_invalidate(r);
    if (!(r->build = repl_build_new(r, a->cmd, false))) return false;
    double *s = r->build->sec;
    if (!r->model) front = s[0];
    double total = front + s[1] + s[2] + s[3];
    printf("compile %s: %.3f s from source to runnable\n", r->build->g->name, total);
    printf("  frontend (parse, elaborate, weights)  %8.3f s  %5.1f%%\n", front,
           100 * front / total);
    printf("  passes                                %8.3f s  %5.1f%%\n", s[1], 100 * s[1] / total);
    printf("  LLVM lowering + optimization          %8.3f s  %5.1f%%\n", s[2], 100 * s[2] / total);
    printf("  object code + JIT link                %8.3f s  %5.1f%%\n", s[3], 100 * s[3] / total);
    return true;
}
