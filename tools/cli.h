/* cli.h: what the command-line tools cnnc and cnnrun share: their errors under
 * the program's name, one argument parser, checked numbers, and how inputs are
 * made and outputs named and summarized. */
#ifndef CNNC_CLI_H
#define CNNC_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* The name cli_fail writes before "error:" ("cnnc", "cnnrun"). */
void cli_set_program(const char *name);
/* "PROGRAM: error: MESSAGE" on standard error. */
void cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The value of `--name=value` or `--name value` at argv[*i], or NULL; a missing
 * value is reported and sets *bad. */
const char *cli_flag_value(const char *name, int argc, char **argv, int *i, bool *bad);
/* A non-negative decimal integer, digits only; false on anything else. */
bool cli_parse_u64(const char *s, uint64_t *v);

typedef struct CliParser {
    const char *usage;   /* printed by --help and -h */
    const char *version; /* printed by --version; NULL: no such option */
    /* argv[*i] starts with '-' (and is not "-"); may take argv[*i + 1] as a value. */
    bool (*option)(void *ctx, int argc, char **argv, int *i);
    bool (*operand)(void *ctx, const char *arg);
    /* printed after usage when not NULL: one string literal stays within the 4095
     * characters ISO C promises */
    const char *usage_more;
} CliParser;

/* Reads argv[first..]: 0 to go on, 1 when an argument was bad (reported), 2 when
 * --help or --version was printed. */
int cli_parse(const CliParser *p, void *ctx, int argc, char **argv, int first);

/* n values uniform in [-1, 1) from `seed`, one stream per input name. */
void cli_random_input(float *x, int64_t n, uint64_t seed, const char *name);
/* Where output `name` goes: OUT itself for one output, else OUT.NAME.npy (free() it). */
char *cli_output_path(const char *out, const char *name, int32_t noutputs);
/* One line of range, mean and argmax of an output, and its first values. */
void cli_print_summary(const char *name, const char *type, const float *v, int64_t n);

#endif
