/* cuda_emu_tool.c: `cuda_emu_build MODEL.cnn [--batch=N] [--gpu-arch=sm_XX]
 * [--gpu-math=tf32|f32] [--random-weights=SEED] -o EMU.so` builds the emulated kernels
 * (tests/cuda_emu.h) of the program `cnnc MODEL.cnn --target=cuda` makes with the same
 * flags, for the fake driver (CNNC_FAKECUDA_KERNELS) to run a CUDA model.so on the CPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "cuda_emu.h"

typedef struct Args {
    const char *model, *out;
    int64_t batch;
    uint64_t seed;
    CuTarget target;
} Args;

static int usage_error(const char *what)
{
    fprintf(stderr, "cuda_emu_build: %s\nusage: cuda_emu_build MODEL.cnn [--batch=N] "
            "[--gpu-arch=sm_XX] [--gpu-math=tf32|f32] [--random-weights=SEED] -o EMU.so\n",
            what);
    return 1;
}

static bool parse_number(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return *s >= '0' && *s <= '9' && !*end && !errno;
}

static bool parse_arg(Args *a, int argc, char **argv, int *i)
{
    const char *s = argv[*i];
    uint64_t v;
    if (!strcmp(s, "-o") && *i + 1 < argc) return a->out = argv[++*i], true;
    if (!strncmp(s, "--batch=", 8))
        return parse_number(s + 8, &v) && v >= 1 && v <= 65536 && (a->batch = (int64_t)v, true);
    if (!strncmp(s, "--random-weights=", 17)) return parse_number(s + 17, &a->seed);
    if (!strncmp(s, "--gpu-arch=", 11)) return cg_cuda_parse_arch(s + 11, &a->target.arch);
    if (!strncmp(s, "--gpu-math=", 11)) return cg_cuda_parse_math(s + 11, &a->target.math);
    if (s[0] != '-' && !a->model) return a->model = s, true;
    return false;
}

/* rename, or a copy where the temporary directory is on another file system. */
static bool move_file(const char *from, const char *to)
{
    if (rename(from, to) == 0) return true;
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    bool ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    if (out) ok = fclose(out) == 0 && ok;
    if (in) fclose(in);
    return ok;
}

int main(int argc, char **argv)
{
    Args a = {.target = {CU_DEFAULT_ARCH, CU_MATH_TF32}};
    for (int i = 1; i < argc; i++)
        if (!parse_arg(&a, argc, argv, &i)) return usage_error("bad argument");
    if (!a.model || !a.out) return usage_error("needs MODEL.cnn and -o EMU.so");
    char *text = read_text(a.model);
    if (!text) return fprintf(stderr, "cuda_emu_build: cannot read '%s'\n", a.model), 1;
    Graph *g = load_model(a.model, text, a.batch, a.seed);
    CuProgram *p = cuda_program(g, &a.target);
    char dir[256];
    if (cuda_emu_mkdtemp(dir, sizeof dir, "emu") != 0)
        return fprintf(stderr, "cuda_emu_build: no temporary directory\n"), 1;
    char *so = cuda_emu_build(p, dir, "emu");
    bool ok = move_file(so, a.out);
    if (!ok) fprintf(stderr, "cuda_emu_build: cannot write '%s'\n", a.out);
    free(so);
    cuda_emu_rmdir(dir);
    cg_cuda_free(p);
    ir_graph_free(g);
    free(text);
    return ok ? 0 : 1;
}
