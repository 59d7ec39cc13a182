/* codegen_harness.h: builds a model (language text or a zoo file) through
 * the passes, LLVM and the linker into a model.so, loads it with dlopen and
 * runs it through the cnnc/model.h API; compares outputs with a relative
 * tolerance. Shared by test_codegen.c and test_codegen_large.c. */
#ifndef CNNC_CODEGEN_HARNESS_H
#define CNNC_CODEGEN_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg.h"
#include "cnnc/model.h"
#include "model_api.h"
#include "frontend.h"
#include "passes.h"

#include "test_util.h"

#define TOL         1e-4
#define RUNTIME_LIB CNNC_BINARY_DIR "/runtime/libcnnc_rt.a"

/* ---- building and loading a model.so -------------------------------------- */

typedef struct Build {
    const char *cpu; /* NULL: the host */
    int32_t block;   /* -1: the target's lanes; 0: plain layouts only */
    int opt;
    int64_t batch; /* 0: as written */
    uint64_t disabled; /* PassOptions.disabled: passes switched off */
} Build;

typedef ModelApi Api;

static char tmpdir[256];

static Graph *load(const char *name, const char *text, const Build *b)
{
    return load_model(name, text, b->batch, 0);
}

/* The passes of build `b` on `g`; the memory plan must check. */
static void optimize(Graph *g, const Build *b)
{
    Diag d;
    ir_diag_init(&d, stderr);
    CgTarget t = {.cpu = b->cpu, .opt_level = b->opt};
    PassOptions po;
    pass_options_init(&po);
    po.block = b->block < 0 ? cg_target_lanes(&t) : b->block;
    po.disabled = b->disabled;
    assert_true(pass_run_pipeline(g, &po, &d));
    assert_true(pass_check_plan(g, &d));
    ir_diag_fini(&d);
}

/* Codegen of an optimized graph for build `b` into cg, its diagnostics to d (open
 * until cg_free). */
static void lower_graph(Graph *g, const Build *b, Diag *d, Cg *cg)
{
    ir_diag_init(d, stderr);
    CgTarget t = {.cpu = b->cpu, .opt_level = b->opt};
    assert_true(cg_lower(cg, g, &t, d));
}

/* Codegen of an optimized graph and link into tmpdir/NAME.K.so, K counting the links:
 * a check that fails leaves its model.so open, and dlopen of the same path would hand
 * the next build of the case that one again. Returns the path. */
static char *link_so(const char *name, Graph *g, const Build *b)
{
    static int links;
    Diag d;
    Cg cg;
    lower_graph(g, b, &d, &cg);
    char err[4096], *so = ir_xmalloc(512);
    snprintf(so, 512, "%s/%s.%d.so", tmpdir, name, links++);
    if (!cg_link_shared(&cg, RUNTIME_LIB, so, err, sizeof err)) fail_msg("link: %s", err);
    cg_free(&cg);
    ir_diag_fini(&d);
    return so;
}

/* Passes, codegen and link into tmpdir/NAME.so; returns the path. */
static char *build_so(const char *name, const char *text, const Build *b)
{
    Graph *g = load(name, text, b);
    optimize(g, b);
    char *so = link_so(name, g, b);
    ir_graph_free(g);
    return so;
}

static Api open_so(const char *path)
{
    Api a;
    char err[1024];
    if (!model_api_open(&a, path, err, sizeof err)) fail_msg("%s", err);
    assert_non_null(a.set_profiling);
    assert_non_null(a.verify);
    return a;
}

/* The inputs `cnnc run --seed=S` uses: uniform in [-1, 1) per input name. */
static float *seeded_input(const cnn_tensor_info *info, uint64_t seed)
{
    size_t n = info->size / sizeof(float);
    float *x = ir_xmalloc(info->size);
    Rng r = ir_rng(seed, info->name);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.0 * ir_rng_uniform(&r) - 1.0);
    return x;
}

/* Runs the model once on seeded inputs; returns the outputs (malloc'd). */
static float **run_so(const Api *a, int32_t threads, float ***inputs_out, int32_t *nout)
{
    cnn_options opt;
    a->options_init(&opt);
    opt.num_threads = threads;
    cnn_model *m;
    assert_int_equal(a->create(&opt, &m), CNN_OK);
    assert_int_equal(a->verify(m), CNN_OK); /* the checksum cnnc stored matches */
    int32_t ni = a->num_inputs(m), no = a->num_outputs(m);
    cnn_tensor in[8], out[16];
    float **ins = ir_xcalloc((size_t)ni, sizeof *ins),
          **outs = ir_xcalloc((size_t)no, sizeof *outs);
    for (int32_t i = 0; i < ni; i++) {
        cnn_tensor_info info;
        assert_int_equal(a->input_info(m, i, &info), CNN_OK);
        ins[i] = seeded_input(&info, 0);
        in[i] = (cnn_tensor){ins[i], info.size};
    }
    for (int32_t k = 0; k < no; k++) {
        cnn_tensor_info info;
        assert_int_equal(a->output_info(m, k, &info), CNN_OK);
        outs[k] = ir_xmalloc(info.size);
        for (size_t i = 0; i < info.size / 4; i++)
            outs[k][i] = NAN;
        out[k] = (cnn_tensor){outs[k], info.size};
    }
    assert_int_equal(a->run(m, in, ni, out, no), CNN_OK);
    a->destroy(m);
    *inputs_out = ins;
    *nout = no;
    return outs;
}

static void free_all(float **v, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Runs tmpdir's model.so `so` (removed afterwards) with 1 and 2 threads and
 * compares it with tests/ref/MODEL_bBATCH.npy: the interpreter's output for
 * `cnnc run --random-weights=0 --seed=0 --batch=BATCH`. */
static void check_so_ref(char *so, const char *model, int64_t batch, uint64_t disabled)
{
    Api a = open_so(so);
    char ref[512], err[256];
    snprintf(ref, sizeof ref, "%s/tests/ref/%s_b%lld.npy", CNNC_SOURCE_DIR, model,
             (long long)batch);
    NpyArray want;
    if (!ir_npy_read(ref, &want, err, sizeof err)) fail_msg("%s", err);
    int64_t n = 1;
    for (int32_t i = 0; i < want.rank; i++)
        n *= want.dims[i];
    assert_int_equal(want.dims[0], batch);
    for (int32_t threads = 1; threads <= 2; threads++) {
        float **ins;
        int32_t no;
        float **outs = run_so(&a, threads, &ins, &no);
        char what[256];
        snprintf(what, sizeof what, "%s batch %lld, %d threads, disabled passes %#llx", model,
                 (long long)batch, threads, (unsigned long long)disabled);
        expect_close(what, outs[0], want.data, n);
        free_all(outs, no);
        free_all(ins, 1);
    }
    free(want.data);
    dlclose(a.lib);
    remove(so);
    free(so);
}

/* Compiles zoo model `model` with the passes of `disabled` switched off and
 * compares it with its committed reference output. */
static void check_zoo_build(const char *model, int64_t batch, uint64_t disabled)
{
    Build b = {.block = -1, .opt = 2, .batch = batch, .disabled = disabled};
    check_so_ref(build_so(model, NULL, &b), model, batch, disabled);
}

/* The entry points below are static inline: each test program uses some. */

static inline void check_zoo(const char *model, int64_t batch)
{
    check_zoo_build(model, batch, 0);
}

/* What the generated code depends on: the printed graph (ops, attributes,
 * layouts, order) and a hash of the parameter data. */
static char *fingerprint(const Graph *g)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    ir_print(g, f);
    uint64_t h = UINT64_C(14695981039346656037);
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_PARAM || !n->data) continue;
        int64_t words = ir_numel(&n->type);
        for (int64_t k = 0; k < words; k++) {
            uint32_t w;
            memcpy(&w, &n->data[k], sizeof w);
            h = (h ^ w) * UINT64_C(1099511628211);
        }
    }
    fprintf(f, "data %016llx\n", (unsigned long long)h);
    fclose(f);
    return text;
}

/* Zoo model `model` at `batch` with all passes, and with each optional pass
 * switched off in turn, against its reference with 1 and 2 threads. A pass
 * that changes nothing on this model leaves the graph, hence the code, of a
 * variant already checked: that model.so is built and run once. */
static inline void check_zoo_variants(const char *model, int64_t batch)
{
    Build b = {.block = -1, .opt = 2, .batch = batch};
    Graph *src = load(model, NULL, &b);
    char *seen[65];
    uint64_t seen_as[65];
    int32_t nseen = 0;
    for (int32_t p = -1; p < pass_count && p < 64; p++) {
        if (p >= 0 && pass_pipeline[p].required) continue;
        b.disabled = p < 0 ? 0 : UINT64_C(1) << p;
        Graph *g = ir_graph_clone(src);
        optimize(g, &b);
        char *fp = fingerprint(g);
        int32_t k = 0;
        while (k < nseen && strcmp(seen[k], fp) != 0)
            k++;
        if (k < nseen) {
            int32_t q = 0;
            while (q < 64 && seen_as[k] >> q > 1)
                q++;
            print_message("%s batch %lld without %s: the code of %s%s\n", model,
                          (long long)batch, pass_pipeline[p].name,
                          seen_as[k] ? "without " : "all passes",
                          seen_as[k] ? pass_pipeline[q].name : "");
            free(fp);
        } else {
            seen[nseen] = fp;
            seen_as[nseen++] = b.disabled;
            check_so_ref(link_so(model, g, &b), model, batch, b.disabled);
        }
        ir_graph_free(g);
    }
    for (int32_t k = 0; k < nseen; k++)
        free(seen[k]);
    ir_graph_free(src);
}

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/cnnc-test-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* The folder and what failed checks left in it (their model.so files). */
static int remove_tmpdir(void **state)
{
    (void)state;
    return remove_test_dir(tmpdir);
}

#endif
