/* test_util.h: what many tests share: the graph they start from (a zoo model,
 * models/NAME.cnn, or a model given as text, at a batch size, with deterministic
 * random weights), a graph's text, the relative comparison of two arrays (also
 * with NaN and infinities), a graph's CUDA program, diagnostics captured in
 * memory, and the removal of a test's temporary folder. Include after cmocka.h. */
#ifndef CNNC_TEST_UTIL_H
#define CNNC_TEST_UTIL_H

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda.h"
#include "frontend.h"
#include "passes.h"
#include "support.h"

/* Removes folder `dir` and what the tests left in it (plain files, and empty folders
 * one level down): rmdir's result for dir. */
static inline int remove_test_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1024];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (unlink(path) != 0)
                rmdir(path);
        }
    if (d)
        closedir(d);
    return rmdir(dir);
}

/* Diagnostics written to memory: c->text after a fflush(c->f) or release. */
typedef struct Captured {
    char *text;
    size_t len;
    FILE *f;
    Diag d;
} Captured;

static inline void capture(Captured *c)
{
    c->f = open_memstream(&c->text, &c->len);
    assert_non_null(c->f);
    ir_diag_init(&c->d, c->f);
}

static inline void release(Captured *c)
{
    ir_diag_fini(&c->d);
    fclose(c->f);
    free(c->text);
}

static inline Graph *load_model(const char *name, const char *text, int64_t batch,
                                uint64_t seed)
{
    Diag d;
    ir_diag_init(&d, stderr);
    FeOptions fo = {.batch = batch};
    Graph *g;
    if (text) {
        g = fe_load_string(name, text, &fo, &d);
    } else {
        char path[512];
        snprintf(path, sizeof path, "%s/models/%s.cnn", CNNC_SOURCE_DIR, name);
        g = fe_load_file(path, &fo, &d);
    }
    assert_non_null(g);
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);
    fe_random_weights(g, seed);
    return g;
}

/* The CUDA program of `g` after the passes (plain layout, memory planned). */
static inline CuProgram *cuda_program(Graph *g, const CuTarget *t)
{
    Diag d;
    ir_diag_init(&d, stderr);
    PassOptions po;
    pass_options_init(&po);
    po.block = 0;
    assert_true(pass_run_pipeline(g, &po, &d));
    CuProgram *p = cg_cuda_generate(g, t, &d);
    assert_non_null(p);
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);
    return p;
}

/* The graph as ir_print writes it (malloc'd). */
static inline char *print_graph(const Graph *g)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    ir_print(g, f);
    fclose(f);
    return text;
}

/* Fails unless max|got - want| <= tol * max|want| (NaN fails). */
/* A whole file as a string (NULL if it cannot be opened); free() it. */
static inline char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* `text` must equal the golden file `path`; CNNC_UPDATE_GOLDEN=1 rewrites it. */
static inline void expect_file(const char *text, const char *path)
{
    if (getenv("CNNC_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    }
    char *want = read_text(path);
    if (!want)
        fail_msg("missing golden file %s (CNNC_UPDATE_GOLDEN=1 writes it)", path);
    if (strcmp(text, want) != 0)
        fail_msg("%s differs from the output:\n%s", path, text);
    free(want);
}

static inline void expect_within(const char *what, const float *got, const float *want,
                                 int64_t n, double tol)
{
    double err = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        err = e > err || isnan(e) ? e : err;
        mag = fabs((double)want[i]) > mag ? fabs((double)want[i]) : mag;
    }
    double rel = err / (mag > 0 ? mag : 1);
    if (!(rel <= tol))
        fail_msg("%s: max|diff| / max|ref| = %g (max|ref| %g, tolerance %g)", what, rel, mag, tol);
}

static inline void expect_close(const char *what, const float *got, const float *want, int64_t n)
{
    expect_within(what, got, want, n, 1e-4);
}

/* Sets `count` seeded positions of x[0..n) to NaN ('n'), +inf ('+') or -inf
 * ('-'), taking the kinds of `kinds` in turn. */
static inline void poke_nonfinite(float *x, int64_t n, int32_t count, const char *kinds,
                                  uint64_t seed)
{
    Rng r = ir_rng(seed, kinds);
    size_t nk = strlen(kinds);
    for (int32_t i = 0; i < count && n > 0; i++) {
        char k = kinds[(size_t)i % nk];
        x[ir_rng_next(&r) % (uint64_t)n] = k == 'n' ? NAN : k == '+' ? INFINITY : -INFINITY;
    }
}

/* Where the reference holds NaN or infinities (PyTorch's semantics), `got`
 * must hold NaN or the same infinity at exactly those places; the finite
 * values must agree as expect_within says, over the largest finite one.
 * Returns how many elements of `want` are not finite. */
static inline int64_t expect_within_nonfinite(const char *what, const float *got,
                                              const float *want, int64_t n, double tol)
{
    double err = 0, mag = 0;
    int64_t special = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(want[i])) {
            if (isnan(want[i]) ? !isnan(got[i]) : got[i] != want[i])
                fail_msg("%s: element %lld is %g, not %g", what, (long long)i, (double)got[i],
                         (double)want[i]);
            special++;
            continue;
        }
        double e = fabs((double)got[i] - (double)want[i]);
        err = e > err || isnan(e) ? e : err;
        mag = fabs((double)want[i]) > mag ? fabs((double)want[i]) : mag;
    }
    double rel = err / (mag > 0 ? mag : 1);
    if (!(rel <= tol))
        fail_msg("%s: max|diff| / max|ref| = %g over the finite values (max|ref| %g, tolerance %g)",
                 what, rel, mag, tol);
    return special;
}

#endif
