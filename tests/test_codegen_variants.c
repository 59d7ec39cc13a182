/* test_codegen_variants.c: the zoo models test_codegen.c compiles with all
 * passes, compiled again with each optional pass switched off in turn (and
 * the batches its pass tests leave out), checked at 1 and 2 threads against
 * the committed references (tests/ref/). Variants a pass leaves unchanged
 * share one model.so. ResNet-50 and VGG-16: test_codegen_large.c. Labelled
 * `slow`. */
#include "codegen_harness.h"

static void test_small(void **state)
{
    (void)state;
    check_zoo_variants("mlp", 1);
    check_zoo_variants("mlp", 4);
    check_zoo_variants("mnist_cnn", 4);
    check_zoo_variants("squeezenet1_1", 4);
}

static void test_resnet18(void **state)
{
    (void)state;
    check_zoo_variants("resnet18", 1);
    check_zoo_variants("resnet18", 4);
}

static void test_mobilenet(void **state)
{
    (void)state;
    check_zoo_variants("mobilenet_v2", 1);
    check_zoo_variants("mobilenet_v2", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small),
        cmocka_unit_test(test_resnet18),
        cmocka_unit_test(test_mobilenet),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
