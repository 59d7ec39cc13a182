/* cuda_emu.h: a generated CUDA program run on the CPU. Its source is compiled as host
 * C++ behind codegen/cuda/emulate.h into a shared library that exports, for each
 * distinct __global__ symbol S, what the fake CUDA driver (tests/fakecuda) launches:
 *     void cnnc_emu_S(const unsigned grid[3], const unsigned block[3], void **params);
 *     const int cnnc_emu_S_nargs, cnnc_emu_S_param_bytes;
 * params as cuLaunchKernel's kernelParams: params[i] points at the device address of
 * pointer argument i, params[nargs] at the CuParams when param_bytes is not 0.
 * Include after cmocka.h; needs CNNC_CXX (the C++ compiler) and CNNC_SOURCE_DIR. */
#ifndef CNNC_TEST_CUDA_EMU_H
#define CNNC_TEST_CUDA_EMU_H

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

typedef void (*CudaEmuFn)(const unsigned *grid, const unsigned *block, void **params);

/* A new directory for the builds, /tmp/cnnc-TAG-XXXXXX (dir holds n bytes): 0 or -1. */
static inline int cuda_emu_mkdtemp(char *dir, size_t n, const char *tag)
{
    snprintf(dir, n, "/tmp/cnnc-%s-XXXXXX", tag);
    return mkdtemp(dir) ? 0 : -1;
}

static inline int cuda_emu_rmdir(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Whether kernel k is the first of p's kernels with its symbol. */
static inline int cuda_emu_first_use(const CuProgram *p, int32_t k)
{
    for (int32_t i = 0; i < k; i++)
        if (!strcmp(p->kernels[i].symbol, p->kernels[k].symbol)) return 0;
    return 1;
}

static inline void cuda_emu_write_launcher(FILE *f, const CuKernel *k)
{
    fprintf(f, "static void run_%s(void *v) {\n    void **p = (void **)v;\n    %s(", k->symbol,
            k->symbol);
    for (int32_t a = 0; a < k->nargs; a++) fprintf(f, "%s*(float **)p[%d]", a ? ", " : "", a);
    if (k->has_params) fprintf(f, "%s*(const CuParams *)p[%d]", k->nargs ? ", " : "", k->nargs);
    fprintf(f, ");\n}\n"
               "extern \"C\" const int cnnc_emu_%s_nargs = %d;\n"
               "extern \"C\" const int cnnc_emu_%s_param_bytes = %s;\n"
               "extern \"C\" void cnnc_emu_%s(const unsigned *grid, const unsigned *block, "
               "void **params) {\n    cu_emu::launch(grid, block[0], run_%s, params);\n}\n",
            k->symbol, k->nargs, k->symbol, k->has_params ? "(int)sizeof(CuParams)" : "0",
            k->symbol, k->symbol);
}

/* Writes dir/name.cpp and compiles it to dir/name.so, whose path it returns (malloc'd). */
static inline char *cuda_emu_build(const CuProgram *p, const char *dir, const char *name)
{
    char src[512], cmd[2048], *so = malloc(512);
    assert_non_null(so);
    snprintf(src, sizeof src, "%s/%s.cpp", dir, name);
    snprintf(so, 512, "%s/%s.so", dir, name);
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    fprintf(f, "#include \"emulate.h\"\n%s\n", p->source);
    for (int32_t i = 0; i < p->nkernels; i++)
        if (cuda_emu_first_use(p, i)) cuda_emu_write_launcher(f, &p->kernels[i]);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s -std=c++17 -O1 -w -fPIC -shared -pthread -I%s/codegen/cuda "
             "-o '%s' '%s'", CNNC_CXX, CNNC_SOURCE_DIR, so, src);
    assert_int_equal(system(cmd), 0);
    return so;
}

static inline CudaEmuFn cuda_emu_fn(void *lib, const char *symbol)
{
    char name[256];
    snprintf(name, sizeof name, "cnnc_emu_%s", symbol);
    CudaEmuFn fn;
    void *sym = dlsym(lib, name);
    if (!sym) fail_msg("%s: %s", name, dlerror());
    memcpy(&fn, &sym, sizeof fn);
    return fn;
}

/* Runs kernel k of a program with its pointer arguments at `ptrs`, as a driver would. */
static inline void cuda_emu_launch(void *lib, const CuKernel *k, float *const *ptrs)
{
    uint64_t dev[64];
    void *params[65];
    assert_true(k->nargs < 64);
    for (int32_t a = 0; a < k->nargs; a++) {
        dev[a] = (uint64_t)(uintptr_t)ptrs[a];
        params[a] = &dev[a];
    }
    params[k->nargs] = (void *)&k->params;
    cuda_emu_fn(lib, k->symbol)(k->grid, k->block, params);
}

#endif
