/* jit_harness.h: compiling a zoo model in-process (cg_jit_new) and running it through
 * rt_model_create and the cnnc/model.h API, on the inputs the model.so tests use. Shared by
 * test_jit.c and test_jit_large.c. */
#ifndef CNNC_JIT_HARNESS_H
#define CNNC_JIT_HARNESS_H

#include "codegen_harness.h"
#include "rt.h"

#define THREADS 2

typedef struct Jitted {
    Graph *g;
    Diag d;
    Cg cg;
    CgJit *jit;
    const RtModel *desc;
} Jitted;

/* Function addresses as CgJitSymbol wants them (ISO C has no cast to void *). */
static inline void *fn_addr(void (*f)(void))
{
    void *p;
    memcpy(&p, &f, sizeof p);
    return p;
}

static CgJitSymbol rt_syms[2];

static inline int jit_setup(void **state)
{
    rt_syms[0] = (CgJitSymbol){"rt_parallel_for", fn_addr((void (*)(void))rt_parallel_for)};
    rt_syms[1] = (CgJitSymbol){"rt_run_kernel", fn_addr((void (*)(void))rt_run_kernel)};
    return make_tmpdir(state);
}

/* Zoo model `model` with weights from `seed`, through the passes and LLVM as build_so
 * compiles it, to a lowered module (not yet JIT'd). */
static inline void lower(Jitted *j, const char *model, int64_t batch, uint64_t seed)
{
    memset(j, 0, sizeof *j);
    j->g = load(model, NULL, &(Build){.batch = batch});
    fe_random_weights(j->g, seed);
    ir_diag_init(&j->d, stderr);
    CgTarget t = {.opt_level = 2};
    PassOptions po;
    pass_options_init(&po);
    po.block = cg_target_lanes(&t);
    assert_true(pass_run_pipeline(j->g, &po, &j->d));
    assert_true(pass_check_plan(j->g, &j->d));
    assert_true(cg_lower(&j->cg, j->g, &t, &j->d));
}

static inline void jit(Jitted *j, const CgJitSymbol *syms, int32_t nsyms)
{
    char err[1024];
    j->jit = cg_jit_new(&j->cg, syms, nsyms, err, sizeof err);
    if (!j->jit) fail_msg("cg_jit_new: %s", err);
    j->desc = cg_jit_lookup(j->jit, "cnnc_model");
    assert_non_null(j->desc);
}

static inline void jitted_free(Jitted *j)
{
    cg_jit_free(j->jit);
    cg_free(&j->cg);
    ir_diag_fini(&j->d);
    ir_graph_free(j->g);
}

/* The harness runs a model through an Api; for a JIT'd one, create goes through
 * rt_model_create on the description in `current`. */
static const RtModel *current;

static inline cnn_status jit_create(const cnn_options *opt, cnn_model **out)
{
    return rt_model_create(current, opt, out);
}

static inline float **run_jit(const RtModel *desc, float ***inputs, int32_t *nout)
{
    Api a = {.options_init = cnn_options_init,
             .create = jit_create,
             .destroy = cnn_model_destroy,
             .num_inputs = cnn_model_num_inputs,
             .num_outputs = cnn_model_num_outputs,
             .input_info = cnn_model_input_info,
             .output_info = cnn_model_output_info,
             .run = cnn_model_run,
             .set_profiling = cnn_model_set_profiling,
             .num_kernels = cnn_model_num_kernels,
             .kernel_info = cnn_model_kernel_info,
             .verify = cnn_model_verify};
    current = desc;
    return run_so(&a, THREADS, inputs, nout);
}

static inline void expect_same(const char *what, const float *got, const float *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof *got) != 0)
            fail_msg("%s: element %lld is %a, want %a", what, (long long)i, (double)got[i],
                     (double)want[i]);
}

static inline int64_t output_numel(const RtModel *desc, int32_t k)
{
    int64_t n = 1;
    for (int32_t i = 0; i < desc->outputs[k].rank; i++)
        n *= desc->outputs[k].dims[i];
    return n;
}

#endif
