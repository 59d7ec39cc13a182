/* test_compile_speed.c: what makes the CPU backend compile fast must not change what it
 * computes. Nodes with the same code share one kernel function (fewer functions than
 * kernels) and still match the interpreter; a module compiled in parts gives the same
 * objects, and the same model.so, whatever the number of threads. */
#include <stdlib.h>

#include "codegen_harness.h"

/* Five 3x3 convolutions of the same shapes; the last four also add a residual. */
static const char repeated[] = "network repeated(x: f32[N=1, 32, 14, 14]) {\n"
                               "  a = relu(conv2d(x, 32, kernel=3, pad=1) as c1)\n"
                               "  b = relu(conv2d(a, 32, kernel=3, pad=1) as c2 + a)\n"
                               "  c = relu(conv2d(b, 32, kernel=3, pad=1) as c3 + b)\n"
                               "  d = relu(conv2d(c, 32, kernel=3, pad=1) as c4 + c)\n"
                               "  e = relu(conv2d(d, 32, kernel=3, pad=1) as c5 + d)\n"
                               "  return e\n"
                               "}\n";

/* Functions with a body, and the kernels `run` starts (its calls of rt_run_kernel). */
static void count_kernels(LLVMModuleRef m, int32_t *functions, int32_t *calls)
{
    *functions = *calls = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) {
        size_t len;
        const char *name = LLVMGetValueName2(f, &len);
        if (LLVMIsDeclaration(f) || !strcmp(name, "run")) continue;
        (*functions)++;
    }
    LLVMValueRef run = LLVMGetNamedFunction(m, "run");
    assert_non_null(run);
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(run); bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in)) {
            if (!LLVMIsACallInst(in)) continue;
            size_t len;
            const char *callee = LLVMGetValueName2(LLVMGetCalledValue(in), &len);
            *calls += !strcmp(callee, "rt_run_kernel");
        }
}

static void test_shared_kernels(void **state)
{
    (void)state;
    const Build b = {.block = -1, .opt = 2};
    Graph *g = load("repeated", repeated, &b);
    optimize(g, &b);
    Diag d;
    Cg cg;
    lower_graph(g, &b, &d, &cg);
    int32_t functions, calls;
    count_kernels(cg.mod, &functions, &calls);
    /* c1 alone, c2..c5 as one (the reorders the layout pass adds, if any, come on top). */
    assert_true(calls >= 5);
    assert_true(functions <= calls - 3);
    cg_free(&cg);
    ir_diag_fini(&d);
    ir_graph_free(g);

    /* The model.so runs each node on its own weights: the interpreter's values. */
    char *so = build_so("repeated", repeated, &b);
    Api a = open_so(so);
    float **ins;
    int32_t no;
    float **outs = run_so(&a, 2, &ins, &no);
    g = load("repeated", repeated, &b);
    InterpResult res;
    char err[256];
    if (!ir_interp(g, (const float *const *)ins, &res, err, sizeof err))
        fail_msg("interp: %s", err);
    const Node *nd = &g->nodes[g->outputs[0].node];
    expect_close("repeated", outs[0], res.values[g->outputs[0].node], ir_numel(&nd->type));
    ir_interp_free(&res);
    free_all(outs, no);
    free_all(ins, ir_num_inputs(g));
    ir_graph_free(g);
    dlclose(a.lib);
    remove(so);
    free(so);
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    *n = (size_t)ftell(f);
    rewind(f);
    char *bytes = ir_xmalloc(*n + 1);
    assert_int_equal(fread(bytes, 1, *n, f), *n);
    fclose(f);
    return bytes;
}

/* SqueezeNet 1.1 is large enough to be compiled in several parts. */
static void test_parts_deterministic(void **state)
{
    (void)state;
    const Build b = {.block = -1, .opt = 2};
    Graph *g = load_model("squeezenet1_1", NULL, 1, 0);
    optimize(g, &b);
    Diag d;
    Cg cg;
    lower_graph(g, &b, &d, &cg);
    LLVMMemoryBufferRef one[CG_MAX_PARTS], two[CG_MAX_PARTS];
    char err[4096];
    assert_int_equal(setenv("CNNC_COMPILE_THREADS", "1", 1), 0);
    int32_t n1 = cg_emit_objects(&cg, one, err, sizeof err);
    assert_int_equal(setenv("CNNC_COMPILE_THREADS", "3", 1), 0);
    int32_t n2 = cg_emit_objects(&cg, two, err, sizeof err);
    assert_true(n1 > 1);
    assert_int_equal(n1, n2);
    for (int32_t i = 0; i < n1; i++) {
        assert_int_equal(LLVMGetBufferSize(one[i]), LLVMGetBufferSize(two[i]));
        assert_memory_equal(LLVMGetBufferStart(one[i]), LLVMGetBufferStart(two[i]),
                            LLVMGetBufferSize(one[i]));
        LLVMDisposeMemoryBuffer(one[i]);
        LLVMDisposeMemoryBuffer(two[i]);
    }
    /* Linked twice, at 1 and 2 threads: the same bytes. */
    char so[2][512];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(setenv("CNNC_COMPILE_THREADS", k ? "2" : "1", 1), 0);
        snprintf(so[k], sizeof so[k], "%s/parts%d.so", tmpdir, k);
        if (!cg_link_shared(&cg, RUNTIME_LIB, so[k], err, sizeof err)) fail_msg("link: %s", err);
    }
    unsetenv("CNNC_COMPILE_THREADS");
    size_t len[2];
    char *bytes[2] = {read_file(so[0], &len[0]), read_file(so[1], &len[1])};
    assert_int_equal(len[0], len[1]);
    assert_memory_equal(bytes[0], bytes[1], len[0]);
    for (int k = 0; k < 2; k++) {
        free(bytes[k]);
        remove(so[k]);
    }
    cg_free(&cg);
    ir_diag_fini(&d);
    ir_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_kernels),
        cmocka_unit_test(test_parts_deterministic),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
