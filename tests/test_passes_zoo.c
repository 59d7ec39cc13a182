/* test_passes_zoo.c: the optimizer on the two heaviest zoo models, VGG-16 and
 * ResNet-50, against the reference interpreter (minutes: the interpreter is
 * naive). Labelled "slow". The lighter models are in test_passes.c. */
#include "passes/check.h"

/* The full pipeline at block 16. Each pass switched off in turn is checked on
 * the lighter models of test_passes.c, where the interpreter is cheaper; here
 * it would cost minutes per configuration. */
static void check_heavy(const char *path)
{
    Model m = {.path = path};
    model_init(&m);
    check_config(&m, 16, ALL_ON);
    model_fini(&m);
}

static void test_resnet50(void **state) { check_heavy("models/resnet50.cnn"); }
static void test_vgg16(void **state) { check_heavy("models/vgg16.cnn"); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50),
        cmocka_unit_test(test_vgg16),
    };
    if (getenv("CNNC_TEST_FILTER"))
        cmocka_set_test_filter(getenv("CNNC_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
