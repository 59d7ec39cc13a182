/* link.c: turns the model's object file into model.so by running the system C
 * compiler as the linker, with the runtime library linked in whole. */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cg.h"

extern char **environ;

#define MAX_ARGS 64

static bool exists(const char *path)
{
    return access(path, R_OK) == 0;
}

static char *str_copy(const char *s)
{
    return strcpy(ir_xmalloc(strlen(s) + 1), s);
}

/* libcnnc_rt.a in the build tree or the install tree of the running program. */
static char *runtime_near_exe(void)
{
    static const char *const rel[] = {"/../runtime/libcnnc_rt.a", "/../lib/cnnc/libcnnc_rt.a",
                                      "/libcnnc_rt.a"};
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0;
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s%s", exe, rel[i]);
        if (exists(path)) return str_copy(path);
    }
    return NULL;
}

char *cg_find_runtime(const char *builtin)
{
    const char *env = getenv("CNNC_RUNTIME");
    if (env && *env) return exists(env) ? str_copy(env) : NULL;
    if (builtin && exists(builtin)) return str_copy(builtin);
    return runtime_near_exe();
}

/* Splits $CC ("ccache gcc") into words; the words point into `buf`. */
static int compiler_words(char *buf, char **argv, int max)
{
    const char *cc = getenv("CC");
    snprintf(buf, 1024, "%s", cc && *cc ? cc : "cc");
    int n = 0;
    for (char *tok = strtok(buf, " \t"); tok && n < max; tok = strtok(NULL, " \t"))
        argv[n++] = tok;
    return n;
}

/* Runs argv with stdout and stderr captured into err; true on exit status 0. */
static bool run_captured(char **argv, char *err, size_t n)
{
    int fds[2];
    if (pipe(fds) != 0) return snprintf(err, n, "pipe: %s", strerror(errno)), false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    size_t used = 0;
    char chunk[4096];
    ssize_t got;
    while ((got = read(fds[0], chunk, sizeof chunk)) > 0) {
        size_t take = (size_t)got < n - 1 - used ? (size_t)got : n - 1 - used;
        memcpy(err + used, chunk, take);
        used += take;
    }
    err[used] = 0;
    close(fds[0]);
    if (rc != 0) return snprintf(err, n, "cannot run '%s': %s", argv[0], strerror(rc)), false;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return snprintf(err, n, "waitpid: %s", strerror(errno)), false;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    if (!used) snprintf(err, n, "'%s' failed with status %d", argv[0], status);
    return false;
}

/* Writes the weights blob to `bin` and, to `asm_path`, an assembly file that
 * defines CG_WEIGHTS_SYMBOL (hidden) as those bytes, for the linker to embed. */
static bool write_weights(const CgBlob *b, const char *bin, const char *asm_path, char *err,
                          size_t n)
{
    FILE *f = fopen(bin, "wb");
    bool ok = f && fwrite(b->data, 1, (size_t)b->size, f) == (size_t)b->size;
    if (f && fclose(f) != 0) ok = false;
    FILE *a = ok ? fopen(asm_path, "w") : NULL;
    if (a) {
        fprintf(a, "\t.file \"%s\"\n", CG_WEIGHTS_SYMBOL);
        fprintf(a, "\t.section .rodata.%s,\"a\",@progbits\n\t.p2align 6\n"
                   "\t.globl %s\n\t.hidden %s\n\t.type %s,@object\n\t.size %s, %lld\n%s:\n"
                   "\t.incbin \"", CG_WEIGHTS_SYMBOL, CG_WEIGHTS_SYMBOL, CG_WEIGHTS_SYMBOL,
                CG_WEIGHTS_SYMBOL, CG_WEIGHTS_SYMBOL, (long long)b->size, CG_WEIGHTS_SYMBOL);
        for (const char *c = bin; *c; c++)
            fprintf(a, *c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
        fprintf(a, "\"\n\t.section .note.GNU-stack,\"\",@progbits\n");
        ok = fclose(a) == 0;
    } else {
        ok = false;
    }
    if (!ok) snprintf(err, n, "cannot write the weights next to '%s': %s", bin, strerror(errno));
    return ok;
}

/* tmp.weights and tmp.weights.s hold the blob while the linker runs. */
static bool link_argv(const Cg *cg, const char *obj, const char *runtime, const char *tmp,
                      char *paths, size_t plen, char **argv, char *ccbuf, char *err, size_t n)
{
    int a = compiler_words(ccbuf, argv, MAX_ARGS);
    const char *rest[] = {"-shared", "-o", tmp, obj, NULL};
    for (int i = 0; rest[i]; i++)
        argv[a++] = (char *)rest[i];
    paths[0] = 0;
    if (cg->blob && cg->blob->size > 0) {
        size_t half = plen / 2;
        snprintf(paths, half, "%s.weights", tmp);
        snprintf(paths + half, half, "%s.weights.s", tmp);
        if (!write_weights(cg->blob, paths, paths + half, err, n)) return false;
        argv[a++] = paths + half;
    }
    const char *tail[] = {"-Wl,--whole-archive", runtime, "-Wl,--no-whole-archive", "-lm",
                          "-lpthread", "-Wl,--build-id=none", "-Wl,-z,noexecstack", NULL};
    for (int i = 0; tail[i]; i++)
        argv[a++] = (char *)tail[i];
    argv[a] = NULL;
    return true;
}

static void remove_weights(char *paths, size_t plen)
{
    if (!paths[0]) return;
    remove(paths);
    remove(paths + plen / 2);
}

bool cg_link_shared(const Cg *cg, const char *obj, const char *runtime, const char *out, char *err,
                    size_t n)
{
    char tmp[4096], ccbuf[1024], paths[2 * 4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out) >= (int)sizeof tmp)
        return snprintf(err, n, "output path too long: '%s'", out), false;
    int fd = mkstemp(tmp);
    if (fd < 0) return snprintf(err, n, "cannot write '%s': %s", out, strerror(errno)), false;
    close(fd);
    char *argv[MAX_ARGS + 16];
    bool ok = link_argv(cg, obj, runtime, tmp, paths, sizeof paths, argv, ccbuf, err, n) &&
              run_captured(argv, err, n);
    remove_weights(paths, sizeof paths);
    if (!ok) {
        remove(tmp);
        return false;
    }
    /* mkstemp made the file 0600; give it the usual mode of a library. */
    mode_t mask = umask(0);
    umask(mask);
    if (chmod(tmp, 0777 & ~mask) != 0 || rename(tmp, out) != 0) {
        snprintf(err, n, "cannot write '%s': %s", out, strerror(errno));
        remove(tmp);
        return false;
    }
    return true;
}
