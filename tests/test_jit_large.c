/* test_jit_large.c: the JIT on the big zoo models, against their committed reference outputs
 * (the interpreter's, tests/ref/): ResNet-50, timing each phase from source to a runnable
 * model and printing it, and VGG-16, whose 550 MB of weights must stay within reach of
 * its code. */
#include "jit_harness.h"

#include <time.h>

/* Wall and CPU seconds (the CPU time of all the process's threads). */
typedef struct Clock {
    double wall, cpu;
} Clock;

static double seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static Clock clock_now(void)
{
    return (Clock){seconds(CLOCK_MONOTONIC), seconds(CLOCK_PROCESS_CPUTIME_ID)};
}

static Clock since(Clock t0)
{
    Clock t = clock_now();
    return (Clock){t.wall - t0.wall, t.cpu - t0.cpu};
}

/* The phases from source to a runnable JIT'd model. */
enum { PARSE, PASSES, LOWER_O0, LOWER, EMIT, JIT, RUN, NPHASES };
static const char *const phase_names[NPHASES] = {
    "parse + random weights",
    "passes",
    "lowering alone (cg_lower at -O0)",
    "lower + optimize (cg_lower at -O2)",
    "object emission (cg_emit_memory)",
    "cg_jit_new (emission + ORC link)",
    "first run (create + run, 2 threads)",
};

/* Parses `path` at batch 1 with random weights and runs the passes, timing both. */
static void front_timed(Jitted *j, const char *path, Clock *t)
{
    memset(j, 0, sizeof *j);
    ir_diag_init(&j->d, stderr);
    Clock t0 = clock_now();
    j->g = fe_load_file(path, &(FeOptions){.batch = 1}, &j->d);
    assert_non_null(j->g);
    fe_random_weights(j->g, 0);
    t[PARSE] = since(t0);
    t0 = clock_now();
    PassOptions po;
    pass_options_init(&po);
    po.block = cg_target_lanes(&(CgTarget){.opt_level = 2});
    assert_true(pass_run_pipeline(j->g, &po, &j->d));
    t[PASSES] = since(t0);
}

static Clock lower_timed(Jitted *j, int opt)
{
    Clock t0 = clock_now();
    assert_true(cg_lower(&j->cg, j->g, &(CgTarget){.opt_level = opt}, &j->d));
    return since(t0);
}

static void print_phases(const Clock *t, size_t objsize)
{
    double total = t[PARSE].wall + t[PASSES].wall + t[LOWER].wall + t[JIT].wall;
    printf("resnet50 batch 1, source to runnable: %.3f s wall (object code %.1f MB)\n", total,
           (double)objsize / 1e6);
    for (int i = 0; i < NPHASES; i++)
        printf("  %-38s %7.3f s wall %7.3f s cpu\n", phase_names[i], t[i].wall, t[i].cpu);
    printf("  => optimization about %.3f s, ORC link about %.3f s (cpu)\n",
           t[LOWER].cpu - t[LOWER_O0].cpu, t[JIT].cpu - t[EMIT].cpu);
}

static void expect_reference(const char *model, const float *got, int64_t n)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/tests/ref/%s_b1.npy", CNNC_SOURCE_DIR, model);
    NpyArray want;
    if (!ir_npy_read(path, &want, err, sizeof err)) fail_msg("%s", err);
    char what[256];
    snprintf(what, sizeof what, "%s JIT vs reference", model);
    expect_close(what, got, want.data, n);
    free(want.data);
}

/* ResNet-50 from source to a runnable JIT'd model, phase by phase; its output must match
 * the committed reference. What cg_lower spends at -O2 beyond -O0 is optimization; the JIT
 * link is what cg_jit_new spends beyond a separate emission of the same module. */
static void test_resnet50_timing(void **state)
{
    (void)state;
    const char *path = CNNC_SOURCE_DIR "/models/resnet50.cnn";
    Clock t[NPHASES];
    Jitted j;
    front_timed(&j, path, t);
    t[LOWER_O0] = lower_timed(&j, 0);
    jitted_free(&j);
    front_timed(&j, path, t);
    t[LOWER] = lower_timed(&j, 2);
    char err[1024];
    Clock t0 = clock_now();
    LLVMMemoryBufferRef obj = cg_emit_memory(&j.cg, LLVMObjectFile, err, sizeof err);
    assert_non_null(obj);
    size_t objsize = LLVMGetBufferSize(obj);
    LLVMDisposeMemoryBuffer(obj);
    t[EMIT] = since(t0);
    t0 = clock_now();
    jit(&j, rt_syms, 2);
    t[JIT] = since(t0);
    t0 = clock_now();
    float **ins, **outs = run_jit(j.desc, &ins, &(int32_t){0});
    t[RUN] = since(t0);
    print_phases(t, objsize);
    expect_reference("resnet50", outs[0], output_numel(j.desc, 0));
    free_all(ins, 1);
    free_all(outs, 1);
    jitted_free(&j);
}

static void test_vgg16(void **state)
{
    (void)state;
    Jitted j;
    lower(&j, "vgg16", 1, 0);
    jit(&j, rt_syms, 2);
    float **ins, **outs = run_jit(j.desc, &ins, &(int32_t){0});
    expect_reference("vgg16", outs[0], output_numel(j.desc, 0));
    free_all(ins, 1);
    free_all(outs, 1);
    jitted_free(&j);
}

int main(void)
{
    (void)check_zoo; /* a harness helper for model.so tests only */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50_timing),
        cmocka_unit_test(test_vgg16),
    };
    return cmocka_run_group_tests(tests, jit_setup, remove_tmpdir);
}
