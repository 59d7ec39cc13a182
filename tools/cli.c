/* cli.c: the command-line helpers cnnc and cnnrun share (cli.h). */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static const char *program = "cnnc";

void cli_set_program(const char *name)
{
    program = name;
}

void cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", program);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *cli_flag_value(const char *name, int argc, char **argv, int *i, bool *bad)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0 || (a[n] != '=' && a[n] != 0)) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (*i + 1 >= argc) {
        cli_fail("option '%s' needs a value", name);
        *bad = true;
        return NULL;
    }
    return argv[++*i];
}

bool cli_parse_u64(const char *s, uint64_t *v)
{
    char *end;
    if (*s < '0' || *s > '9') return false;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *v = x;
    return true;
}

int cli_parse(const CliParser *p, void *ctx, int argc, char **argv, int first)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(p->usage, stdout);
            if (p->usage_more) fputs(p->usage_more, stdout);
            return 2;
        }
        if (p->version && !strcmp(a, "--version")) return fputs(p->version, stdout), 2;
        bool ok = a[0] == '-' && a[1] ? p->option(ctx, argc, argv, &i) : p->operand(ctx, a);
        if (!ok) return 1;
    }
    return 0;
}

void cli_random_input(float *x, int64_t n, uint64_t seed, const char *name)
{
    Rng r = ir_rng(seed, name);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(2.0 * ir_rng_uniform(&r) - 1.0);
}

char *cli_output_path(const char *out, const char *name, int32_t noutputs)
{
    size_t n = strlen(out);
    if (noutputs == 1) return ir_xstrdup(out);
    if (n > 4 && !strcmp(out + n - 4, ".npy")) n -= 4;
    size_t len = n + strlen(name) + 6;
    char *p = ir_xmalloc(len);
    snprintf(p, len, "%.*s.%s.npy", (int)n, out, name);
    return p;
}

void cli_print_summary(const char *name, const char *type, const float *v, int64_t n)
{
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    int64_t arg = 0;
    for (int64_t i = 0; i < n; i++) {
        if (v[i] > hi) hi = v[i], arg = i;
        if (v[i] < lo) lo = v[i];
        sum += v[i];
    }
    printf("%s: %s  min %.6g  max %.6g  mean %.6g  argmax %" PRId64 "\n", name, type, lo, hi,
           n ? sum / (double)n : 0.0, arg);
    printf("  first values:");
    for (int64_t i = 0; i < n && i < 8; i++) printf(" %.6g", v[i]);
    printf("\n");
}
