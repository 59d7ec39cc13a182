/* test_codegen_large.c: compiles the large zoo models (ResNet-50, VGG-16 with
 * its 528 MB of weights) to model.so and checks their outputs against the
 * committed references (tests/ref/). Labelled `slow` in ctest. */
#include "codegen_harness.h"

static void test_resnet50(void **state)
{
    (void)state;
    check_zoo("resnet50", 1);
}

static void test_vgg16(void **state)
{
    (void)state;
    check_zoo("vgg16", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50),
        cmocka_unit_test(test_vgg16),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
