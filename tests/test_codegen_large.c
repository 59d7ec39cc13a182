/* test_codegen_large.c: compiles the large zoo models (ResNet-50, VGG-16 with
 * its 528 MB of weights) to model.so at batch 1 and 4, with all passes and with
 * each optional pass switched off in turn, and checks their outputs at 1 and 2
 * threads against the committed references (tests/ref/). Labelled `slow`. */
#include "codegen_harness.h"

static void test_resnet50_b1(void **state)
{
    (void)state;
    check_zoo_variants("resnet50", 1);
}

static void test_resnet50_b4(void **state)
{
    (void)state;
    check_zoo_variants("resnet50", 4);
}

static void test_vgg16_b1(void **state)
{
    (void)state;
    check_zoo_variants("vgg16", 1);
}

static void test_vgg16_b4(void **state)
{
    (void)state;
    check_zoo_variants("vgg16", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50_b1),
        cmocka_unit_test(test_resnet50_b4),
        cmocka_unit_test(test_vgg16_b1),
        cmocka_unit_test(test_vgg16_b4),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
