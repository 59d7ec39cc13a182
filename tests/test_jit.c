/* test_jit.c: models compiled in-process (cg_jit_new) and run through rt_model_create. The
 * JIT links the object code a model.so holds, so for the same flags its outputs must equal
 * the model.so's bit for bit, and agree with the interpreter on the unoptimized graph:
 *     max|got - want| / max|want| <= 1e-4.
 * test_jit_large.c does the same for models too big for the sanitizer build. */
#include "jit_harness.h"

/* Every output of `j`, run on seeded inputs, against the interpreter on the unoptimized
 * graph with the same weights; returns the outputs. */
static float **check_interp(const Jitted *j, const char *model, int64_t batch, uint64_t seed)
{
    float **ins;
    int32_t no;
    float **outs = run_jit(j->desc, &ins, &no);
    Graph *ref = load(model, NULL, &(Build){.batch = batch});
    fe_random_weights(ref, seed);
    assert_int_equal(no, ref->noutputs);
    InterpResult res;
    char err[256];
    if (!ir_interp(ref, (const float *const *)ins, &res, err, sizeof err))
        fail_msg("interp: %s", err);
    for (int32_t k = 0; k < no; k++) {
        char what[256];
        snprintf(what, sizeof what, "%s (weights %llu) output %d vs interpreter", model,
                 (unsigned long long)seed, k);
        int32_t id = ref->outputs[k].node;
        expect_close(what, outs[k], res.values[id], ir_numel(&ref->nodes[id].type));
    }
    ir_interp_free(&res);
    free_all(ins, ir_num_inputs(ref));
    ir_graph_free(ref);
    return outs;
}

/* The JIT'd model equals the model.so of the same graph bit for bit, and the interpreter
 * within tolerance. */
static void check_model(const char *model, int64_t batch)
{
    Jitted j;
    lower(&j, model, batch, 0);
    jit(&j, rt_syms, 2);
    float **got = check_interp(&j, model, batch, 0);
    char *so = build_so(model, NULL, &(Build){.block = -1, .opt = 2, .batch = batch});
    Api a = open_so(so);
    float **ins;
    int32_t no;
    float **want = run_so(&a, THREADS, &ins, &no);
    assert_int_equal(no, j.desc->noutputs);
    for (int32_t k = 0; k < no; k++) {
        char what[256];
        snprintf(what, sizeof what, "%s batch %lld output %d: JIT vs model.so", model,
                 (long long)batch, k);
        expect_same(what, got[k], want[k], output_numel(j.desc, k));
    }
    free_all(got, no);
    free_all(want, no);
    free_all(ins, j.desc->ninputs);
    dlclose(a.lib);
    remove(so);
    free(so);
    jitted_free(&j);
}

static void test_mnist(void **state)
{
    (void)state;
    check_model("mnist_cnn", 2);
}

/* Concatenations written in place (fire modules) and a softmax. */
static void test_squeezenet(void **state)
{
    (void)state;
    check_model("squeezenet1_1", 1);
}

/* Depthwise convolutions and residual blocks, against the committed reference output (the
 * interpreter's, tests/ref/). */
static void test_mobilenet(void **state)
{
    (void)state;
    Jitted j;
    lower(&j, "mobilenet_v2", 1, 0);
    jit(&j, rt_syms, 2);
    float **ins, **outs = run_jit(j.desc, &ins, &(int32_t){0});
    NpyArray want;
    char err[256];
    if (!ir_npy_read(CNNC_SOURCE_DIR "/tests/ref/mobilenet_v2_b1.npy", &want, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(want.dims[1], j.desc->outputs[0].dims[1]);
    expect_close("mobilenet_v2 JIT vs reference", outs[0], want.data, output_numel(j.desc, 0));
    free(want.data);
    free_all(ins, 1);
    free_all(outs, 1);
    jitted_free(&j);
}

static void expect_differ(const float *a, const float *b, int64_t n)
{
    assert_true(memcmp(a, b, (size_t)n * sizeof *a) != 0);
}

/* Each JIT is its own symbol space: two models alive at once (both defining cnnc_model)
 * keep their own weights; freeing one leaves the other intact; a new one after a free
 * reproduces the first exactly. A JIT needs neither its Cg nor its graph once made. */
static void test_two_jits(void **state)
{
    (void)state;
    Jitted a, b;
    lower(&a, "mnist_cnn", 2, 1);
    lower(&b, "mnist_cnn", 2, 2);
    jit(&a, rt_syms, 2);
    jit(&b, rt_syms, 2);
    cg_free(&b.cg);
    ir_graph_free(b.g);
    b.g = NULL;
    assert_ptr_not_equal(a.desc, b.desc);
    int64_t n = output_numel(a.desc, 0);
    float **out_a = check_interp(&a, "mnist_cnn", 2, 1);
    float **out_b = check_interp(&b, "mnist_cnn", 2, 2);
    expect_differ(out_a[0], out_b[0], n);
    jitted_free(&a);
    float **ins, **again_b = run_jit(b.desc, &ins, &(int32_t){0});
    expect_same("second JIT after the first was freed", again_b[0], out_b[0], n);
    free_all(ins, 1);
    lower(&a, "mnist_cnn", 2, 1);
    jit(&a, rt_syms, 2);
    float **again_a = run_jit(a.desc, &ins, &(int32_t){0});
    expect_same("a JIT made after a free", again_a[0], out_a[0], n);
    free_all(ins, 1);
    jitted_free(&a);
    jitted_free(&b);
    free_all(out_a, 1);
    free_all(out_b, 1);
    free_all(again_a, 1);
    free_all(again_b, 1);
}

static void expect_jit_error(Cg *cg, const CgJitSymbol *syms, int32_t nsyms, const char *want)
{
    char err[1024] = "";
    CgJit *j = cg_jit_new(cg, syms, nsyms, err, sizeof err);
    assert_null(j);
    if (!strstr(err, want)) fail_msg("error '%s' does not mention '%s'", err, want);
}

/* Each way cg_jit_new can fail, on one lowered module. */
static void expect_jit_errors(Cg *cg)
{
    expect_jit_error(cg, rt_syms, 1, "Symbols not found: [ rt_run_kernel ]");
    expect_jit_error(cg, NULL, 0, "rt_run_kernel");
    CgJitSymbol twice[3] = {rt_syms[0], rt_syms[1], rt_syms[1]};
    expect_jit_error(cg, twice, 3, "'rt_run_kernel' given twice");
    CgJitSymbol null_addr[2] = {rt_syms[0], {"rt_run_kernel", NULL}};
    expect_jit_error(cg, null_addr, 2, "no address");
    char *triple = ir_xstrdup(LLVMGetTarget(cg->mod));
    LLVMSetTarget(cg->mod, "aarch64-unknown-linux-gnu");
    expect_jit_error(cg, rt_syms, 2, "cannot run code for target 'aarch64-unknown-linux-gnu'");
    LLVMSetTarget(cg->mod, triple);
    free(triple);
}

/* A runtime symbol missing or given wrongly is an error, not a crash, and leaves the Cg
 * usable; lookups find only what the module defines. */
static void test_bad_symbols(void **state)
{
    (void)state;
    Jitted j;
    lower(&j, "mnist_cnn", 1, 0);
    expect_jit_errors(&j.cg);
    jit(&j, rt_syms, 2);
    assert_null(cg_jit_lookup(j.jit, "run"));           /* internal */
    assert_null(cg_jit_lookup(j.jit, "memcpy"));        /* the process's */
    assert_null(cg_jit_lookup(j.jit, "rt_run_kernel")); /* the caller's */
    assert_null(cg_jit_lookup(j.jit, "no_such_symbol"));
    assert_null(cg_jit_lookup(j.jit, NULL));
    assert_int_equal(j.desc->abi_version, RT_ABI_VERSION);
    assert_int_equal(j.desc->ninputs, 1);
    assert_int_equal(j.desc->outputs[0].dims[1], 10);
    /* conv2 (32→64, 24×24) runs Winograd F(4×4): each thread's scratch holds at least
     * the 36 points of its 36 tiles for the 32 input channels */
    bool winograd = false;
    for (int32_t k = 0; k < j.desc->nkernels; k++)
        winograd |= strstr(j.desc->kernels[k].op, "winograd") != NULL;
    assert_true(winograd);
    assert_true(j.desc->scratch_bytes >= 36 * 36 * 32 * 4);
    assert_true(j.desc->scratch_bytes <= 4 << 20);
    char *ir = cg_print_ir(&j.cg);
    assert_non_null(strstr(ir, "@cnnc_model"));
    LLVMDisposeMessage(ir);
    /* The failed attempts emitted the module before; emission works on a copy, so a
     * later object is byte for byte the first, and computes the same. */
    char eerr[256];
    LLVMMemoryBufferRef o1 = cg_emit_memory(&j.cg, LLVMObjectFile, eerr, sizeof eerr);
    LLVMMemoryBufferRef o2 = cg_emit_memory(&j.cg, LLVMObjectFile, eerr, sizeof eerr);
    assert_true(o1 && o2);
    assert_int_equal(LLVMGetBufferSize(o1), LLVMGetBufferSize(o2));
    assert_memory_equal(LLVMGetBufferStart(o1), LLVMGetBufferStart(o2), LLVMGetBufferSize(o1));
    LLVMDisposeMemoryBuffer(o1);
    LLVMDisposeMemoryBuffer(o2);
    Jitted fresh;
    lower(&fresh, "mnist_cnn", 1, 0);
    jit(&fresh, rt_syms, 2);
    float **ins, **want = run_jit(fresh.desc, &ins, &(int32_t){0});
    free_all(ins, 1);
    float **got = run_jit(j.desc, &ins, &(int32_t){0});
    expect_same("JIT of a module emitted before", got[0], want[0], output_numel(j.desc, 0));
    free_all(ins, 1);
    free_all(got, 1);
    free_all(want, 1);
    jitted_free(&fresh);
    jitted_free(&j);
}

/* The kernel table and profiling counters work through a JIT'd description as through a
 * model.so (every kernel call goes through the caller's rt_run_kernel). */
static void test_profiling(void **state)
{
    (void)state;
    Jitted j;
    lower(&j, "mnist_cnn", 1, 0);
    jit(&j, rt_syms, 2);
    cnn_model *m;
    assert_int_equal(rt_model_create(j.desc, NULL, &m), CNN_OK);
    cnn_tensor_info ii, oi;
    assert_int_equal(cnn_model_input_info(m, 0, &ii), CNN_OK);
    assert_int_equal(cnn_model_output_info(m, 0, &oi), CNN_OK);
    float *x = seeded_input(&ii, 0), *y = ir_xmalloc(oi.size);
    cnn_tensor in = {x, ii.size}, out = {y, oi.size};
    assert_int_equal(cnn_model_set_profiling(m, 1), CNN_OK);
    for (int r = 0; r < 3; r++)
        assert_int_equal(cnn_model_run(m, &in, 1, &out, 1), CNN_OK);
    int32_t nk = cnn_model_num_kernels(m);
    assert_int_equal(nk, j.desc->nkernels);
    assert_true(nk >= 4); /* conv, conv, pool, dense at least */
    int64_t flops = 0;
    for (int32_t k = 0; k < nk; k++) {
        cnn_kernel_info info;
        assert_int_equal(cnn_model_kernel_info(m, k, &info), CNN_OK);
        assert_int_equal(info.calls, 3);
        assert_true(info.seconds >= 0);
        assert_true(info.name[0] != 0);
        flops += info.flops;
    }
    /* conv1, conv2, fc1, fc2: 2 * (26*26*32*9 + 24*24*64*32*9 + 9216*128 + 128*10); the
     * pool and layout changes add one per element they write. */
    int64_t macs2 = 2 * (26 * 26 * 32 * 9 + 24 * 24 * 64 * 32 * 9 + 9216 * 128 + 128 * 10);
    assert_in_range(flops, macs2, macs2 + 100000);
    cnn_model_destroy(m);
    free(x);
    free(y);
    jitted_free(&j);
}

int main(void)
{
    (void)check_zoo; /* a harness helper for model.so tests only */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mnist),       cmocka_unit_test(test_squeezenet),
        cmocka_unit_test(test_mobilenet),
        cmocka_unit_test(test_two_jits),    cmocka_unit_test(test_bad_symbols),
        cmocka_unit_test(test_profiling),
    };
    return cmocka_run_group_tests(tests, jit_setup, remove_tmpdir);
}
