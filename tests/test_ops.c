/* test_ops.c: ir/ops.def is the one registration of an op. Every op in it has
 * a runner in the interpreter (so constant folding), an LLVM emitter and a CUDA
 * kernel (training ops: the interpreter and LLVM only), and every activation a
 * formula in each of the three and a derivative; a row added to the table without
 * them fails here, not in a model that happens to use it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cg.h"
#include "cu.h"
#include "ir.h"

static void test_every_op_implemented(void **state)
{
    for (int op = 0; op < OP_COUNT; op++) {
        const char *name = ir_ops[op].name;
        if (!ir_interp_supports((Op)op)) fail_msg("op %s: no interpreter runner", name);
        if (!cg_llvm_supports((Op)op)) fail_msg("op %s: no LLVM emitter", name);
        if (!ir_op_is_train((Op)op) && !cg_cuda_supports((Op)op))
            fail_msg("op %s: no CUDA kernel", name);
        if (ir_op_is_train((Op)op) && cg_cuda_supports((Op)op))
            fail_msg("training op %s: the CUDA backend must refuse it", name);
        if (ir_op_is_act((Op)op) && !ir_act_has_formula((Op)op))
            fail_msg("activation %s: no scalar formula", name);
        if (ir_op_is_act((Op)op))
            (void)ir_act_deriv((Op)op, 0.5, 0.0f, 6.0f); /* an ICE if it has none */
    }
    assert_false(ir_interp_supports(OP_COUNT));
    assert_false(cg_llvm_supports(OP_COUNT));
    assert_false(cg_cuda_supports(OP_COUNT));
}

/* The backends' activation tables hold activations only: an epilogue can
 * name no other op. */
static void test_activations_only_where_flagged(void **state)
{
    for (int op = 0; op < OP_COUNT; op++) {
        bool act = ir_op_is_act((Op)op);
        assert_int_equal(ir_act_has_formula((Op)op), act);
        assert_int_equal(cg_has_act((Op)op), act);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_op_implemented),
        cmocka_unit_test(test_activations_only_where_flagged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
