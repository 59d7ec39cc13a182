/* test_cli.c: the helpers cnnc and cnnrun share (tools/cli.c): flag values in
 * both forms, checked numbers, output names and the shared argument parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void test_flag_value(void **state)
{
    (void)state;
    char *argv[] = {"t", "--seed=7", "--seed", "8", "--seeds=9", "--seed"};
    bool bad = false;
    int i = 1;
    assert_string_equal(cli_flag_value("--seed", 6, argv, &i, &bad), "7");
    i = 2;
    assert_string_equal(cli_flag_value("--seed", 6, argv, &i, &bad), "8");
    assert_int_equal(i, 3);
    i = 4;
    assert_null(cli_flag_value("--seed", 6, argv, &i, &bad));
    assert_false(bad);
    i = 5;
    assert_null(cli_flag_value("--seed", 6, argv, &i, &bad));
    assert_true(bad);
}

static void test_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_true(cli_parse_u64("18446744073709551615", &v));
    assert_true(v == UINT64_MAX);
    assert_false(cli_parse_u64("18446744073709551616", &v));
    assert_false(cli_parse_u64("-1", &v));
    assert_false(cli_parse_u64(" 1", &v));
    assert_false(cli_parse_u64("1x", &v));
    assert_false(cli_parse_u64("", &v));
}

static void test_output_path(void **state)
{
    (void)state;
    char *p = cli_output_path("out.npy", "fc", 1);
    assert_string_equal(p, "out.npy");
    free(p);
    p = cli_output_path("out.npy", "fc", 2);
    assert_string_equal(p, "out.fc.npy");
    free(p);
    p = cli_output_path("out", "h", 2);
    assert_string_equal(p, "out.h.npy");
    free(p);
}

typedef struct Seen {
    int options, operands;
    const char *last;
} Seen;

static bool on_option(void *ctx, int argc, char **argv, int *i)
{
    Seen *s = ctx;
    bool bad = false;
    const char *v = cli_flag_value("-o", argc, argv, i, &bad);
    s->options++;
    s->last = v;
    return v != NULL;
}

static bool on_operand(void *ctx, const char *arg)
{
    Seen *s = ctx;
    s->operands++;
    s->last = arg;
    return strcmp(arg, "bad") != 0;
}

static void test_parse(void **state)
{
    (void)state;
    const CliParser p = {"usage\n", NULL, on_option, on_operand, NULL};
    char *ok[] = {"t", "a", "-o", "x", "-", "b"};
    Seen s = {0};
    assert_int_equal(cli_parse(&p, &s, 6, ok, 1), 0);
    assert_int_equal(s.options, 1);
    assert_int_equal(s.operands, 3); /* "-" is an operand */
    assert_string_equal(s.last, "b");
    char *bad[] = {"t", "a", "bad", "c"};
    s = (Seen){0};
    assert_int_equal(cli_parse(&p, &s, 4, bad, 1), 1);
    assert_int_equal(s.operands, 2);
    char *version[] = {"t", "--version"};
    s = (Seen){0};
    assert_int_equal(cli_parse(&p, &s, 2, version, 1), 1); /* no version: an unknown option */
    assert_int_equal(s.options, 1);
}

int main(void)
{
    cli_set_program("test_cli");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flag_value),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_output_path),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
