/* test_passes_mid.c: the optimizer on MobileNetV2 and ResNet-18 against the
 * reference interpreter: every configuration for MobileNetV2 (blocks 0, 8, 16,
 * each optional pass off), the ones that change ResNet-18 for it. Labelled
 * "slow" (the interpreter takes minutes in the sanitizer build). */
#include "passes/check.h"

static void test_mobilenet_v2(void **state)
{
    Model m = {.path = "models/mobilenet_v2.cnn"};
    model_init(&m);
    check_all_configs(&m);
    model_fini(&m);
}

/* The full pipeline at block 16, and the passes that change it (fold_bn, fuse)
 * off at block 8. The interpreter reads layouts as logical values, so blocks 0
 * and 8 add little here beyond the plan checks of test_passes.c. */
static void test_resnet18(void **state)
{
    Model m = {.path = "models/resnet18.cnn"};
    model_init(&m);
    check_config(&m, 16, ALL_ON);
    check_config(&m, 8, pass_index("fold_bn"));
    check_config(&m, 8, pass_index("fuse"));
    model_fini(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mobilenet_v2),
        cmocka_unit_test(test_resnet18),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
