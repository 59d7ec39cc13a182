/* test_pass_ir.c: every pass of the pipeline alone, IR text in, IR text out.
 * tests/passes/ir/PASS.in.ir is parsed, given the weights of seed 0, run
 * through that one pass (channel block 8) and printed: the text must equal
 * PASS.out.ir, and verify. plan_memory changes no text; its plan is PASS.plan.
 * CNNC_UPDATE_GOLDEN=1 rewrites the expected files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "passes.h"
#include "test_util.h"

#define DIR "tests/passes/ir/"

static char *print_plan(const Graph *g)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    pass_print_plan(g, f);
    fclose(f);
    return text;
}

/* The graph of PASS.in.ir after `pass` alone; the input must differ from the output
 * for every pass but plan_memory, so each golden pair shows the pass at work. */
static void check_pass(const char *pass)
{
    char path[256];
    snprintf(path, sizeof path, DIR "%s.in.ir", pass);
    char *in = read_text(path);
    if (!in)
        fail_msg("missing %s", path);
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = ir_parse_text(path, in, &d);
    assert_non_null(g);
    assert_true(ir_verify(g, &d));
    fe_random_weights(g, 0);
    PassOptions opt;
    pass_options_init(&opt);
    opt.block = 8;
    int32_t k = pass_index(pass);
    assert_true(k >= 0);
    assert_true(pass_pipeline[k].run(g, &opt, &d));
    assert_true(ir_verify(g, &d));
    char *out = print_graph(g);
    snprintf(path, sizeof path, DIR "%s.out.ir", pass);
    expect_file(out, path);
    Graph *back = ir_parse_text(path, out, &d);
    assert_non_null(back);
    assert_true(ir_verify(back, &d));
    if (!strcmp(pass, "plan_memory")) {
        char *plan = print_plan(g);
        snprintf(path, sizeof path, DIR "%s.plan", pass);
        expect_file(plan, path);
        assert_true(pass_check_plan(g, &d));
        free(plan);
    } else if (!strcmp(in, out)) {
        fail_msg("%s leaves %s.in.ir as it was", pass, pass);
    }
    ir_graph_free(back);
    ir_graph_free(g);
    ir_diag_fini(&d);
    free(in);
    free(out);
}

static void test_every_pass(void **state)
{
    (void)state;
    for (int32_t i = 0; i < pass_count; i++)
        check_pass(pass_pipeline[i].name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
