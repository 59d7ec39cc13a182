/* link.c: turns the model's object file into model.so by running the system C
 * compiler as the linker, with the runtime library linked in whole. */
#include <elf.h>
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

/* ---- the weights as an ELF relocatable object ----------------------------- */

/* The ELF machine of a target triple; 0 for one we don't write objects for. */
static uint16_t elf_machine(const char *triple)
{
    if (!strncmp(triple, "x86_64", 6)) return EM_X86_64;
    if (!strncmp(triple, "aarch64", 7)) return EM_AARCH64;
    return 0;
}

static const char shstrtab[] = "\0.rodata." CG_WEIGHTS_SYMBOL "\0.note.GNU-stack\0.symtab\0.strtab"
                               "\0.shstrtab";
static const char strtab[] = "\0" CG_WEIGHTS_SYMBOL;

enum { SEC_DATA = 1, SEC_NOTE, SEC_SYMTAB, SEC_STRTAB, SEC_SHSTRTAB, NSEC };

static Elf64_Shdr section(uint32_t name, uint32_t type, uint64_t flags, uint64_t off,
                          uint64_t size, uint64_t align)
{
    return (Elf64_Shdr){.sh_name = name, .sh_type = type, .sh_flags = flags, .sh_offset = off,
                        .sh_size = size, .sh_addralign = align};
}

/* An object defining CG_WEIGHTS_SYMBOL (hidden, 64-byte aligned) as the blob:
 * written directly, so the bytes pass through no assembler. Layout: header,
 * blob, symbols, string tables, section headers. */
static bool write_elf(FILE *f, const CgBlob *b, uint16_t machine)
{
    uint64_t data = 64, sym = (data + (uint64_t)b->size + 7) / 8 * 8;
    uint64_t str = sym + 2 * sizeof(Elf64_Sym), shstr = str + sizeof strtab;
    uint64_t shdr = (shstr + sizeof shstrtab + 7) / 8 * 8;
    Elf64_Ehdr eh = {.e_ident = {ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB,
                                 EV_CURRENT},
                     .e_type = ET_REL, .e_machine = machine, .e_version = EV_CURRENT,
                     .e_shoff = shdr, .e_ehsize = sizeof eh, .e_shentsize = sizeof(Elf64_Shdr),
                     .e_shnum = NSEC, .e_shstrndx = SEC_SHSTRTAB};
    Elf64_Sym syms[2] = {{0},
                         {.st_name = 1, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT),
                          .st_other = STV_HIDDEN, .st_shndx = SEC_DATA,
                          .st_size = (uint64_t)b->size}};
    uint32_t nm_data = 1, nm_note = nm_data + (uint32_t)strlen(shstrtab + nm_data) + 1;
    uint32_t nm_sym = nm_note + (uint32_t)strlen(shstrtab + nm_note) + 1;
    uint32_t nm_str = nm_sym + (uint32_t)strlen(shstrtab + nm_sym) + 1;
    uint32_t nm_shstr = nm_str + (uint32_t)strlen(shstrtab + nm_str) + 1;
    Elf64_Shdr sh[NSEC] = {{0},
                           section(nm_data, SHT_PROGBITS, SHF_ALLOC, data, (uint64_t)b->size, 64),
                           section(nm_note, SHT_PROGBITS, 0, sym, 0, 1),
                           section(nm_sym, SHT_SYMTAB, 0, sym, sizeof syms, 8),
                           section(nm_str, SHT_STRTAB, 0, str, sizeof strtab, 1),
                           section(nm_shstr, SHT_STRTAB, 0, shstr, sizeof shstrtab, 1)};
    sh[SEC_SYMTAB].sh_link = SEC_STRTAB;
    sh[SEC_SYMTAB].sh_info = 1; /* the first global symbol */
    sh[SEC_SYMTAB].sh_entsize = sizeof(Elf64_Sym);
    static const char zeros[64];
    return fwrite(&eh, sizeof eh, 1, f) == 1 && fwrite(b->data, 1, (size_t)b->size, f) ==
           (size_t)b->size && fwrite(zeros, 1, sym - data - (uint64_t)b->size, f) ==
           sym - data - (uint64_t)b->size && fwrite(syms, sizeof syms, 1, f) == 1 &&
           fwrite(strtab, sizeof strtab, 1, f) == 1 && fwrite(shstrtab, sizeof shstrtab, 1, f) == 1
           && fwrite(zeros, 1, shdr - shstr - sizeof shstrtab, f) == shdr - shstr - sizeof shstrtab
           && fwrite(sh, sizeof sh, 1, f) == 1;
}

static bool write_weights(const Cg *cg, const char *path, char *err, size_t n)
{
    const char *triple = LLVMGetTarget(cg->mod);
    uint16_t machine = elf_machine(triple);
    if (!machine) return snprintf(err, n, "cannot embed weights for target '%s'", triple), false;
    FILE *f = fopen(path, "wb");
    bool ok = f && write_elf(f, cg->blob, machine);
    if (f && fclose(f) != 0) ok = false;
    if (!ok) snprintf(err, n, "cannot write the weights to '%s': %s", path, strerror(errno));
    return ok;
}

/* tmp.weights.o holds the blob while the linker runs. */
static bool link_argv(const Cg *cg, const char *obj, const char *runtime, const char *tmp,
                      char *wobj, size_t wlen, char **argv, char *ccbuf, char *err, size_t n)
{
    int a = compiler_words(ccbuf, argv, MAX_ARGS);
    const char *rest[] = {"-shared", "-o", tmp, obj, NULL};
    for (int i = 0; rest[i]; i++)
        argv[a++] = (char *)rest[i];
    wobj[0] = 0;
    if (cg->blob && cg->blob->size > 0) {
        snprintf(wobj, wlen, "%s.weights.o", tmp);
        if (!write_weights(cg, wobj, err, n)) return false;
        argv[a++] = wobj;
    }
    const char *tail[] = {"-Wl,--whole-archive", runtime, "-Wl,--no-whole-archive", "-lm",
                          "-lpthread", "-Wl,--build-id=none", "-Wl,-z,noexecstack", NULL};
    for (int i = 0; tail[i]; i++)
        argv[a++] = (char *)tail[i];
    argv[a] = NULL;
    return true;
}

bool cg_link_shared(const Cg *cg, const char *obj, const char *runtime, const char *out, char *err,
                    size_t n)
{
    char tmp[4096], ccbuf[1024], wobj[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out) >= (int)sizeof tmp)
        return snprintf(err, n, "output path too long: '%s'", out), false;
    int fd = mkstemp(tmp);
    if (fd < 0) return snprintf(err, n, "cannot write '%s': %s", out, strerror(errno)), false;
    close(fd);
    char *argv[MAX_ARGS + 16];
    bool ok = link_argv(cg, obj, runtime, tmp, wobj, sizeof wobj, argv, ccbuf, err, n) &&
              run_captured(argv, err, n);
    if (wobj[0]) remove(wobj);
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
