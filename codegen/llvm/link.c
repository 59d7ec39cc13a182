/* link.c: turns the model's object file (or a CUDA model's GPU image) into
 * model.so by running the system C compiler as the linker, with the runtime
 * library linked in whole and the data written as an ELF object of its own. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
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
        if (exists(path)) return ir_xstrdup(path);
    }
    return NULL;
}

char *cg_find_runtime(const char *builtin)
{
    const char *env = getenv("CNNC_RUNTIME");
    if (env && *env) return exists(env) ? ir_xstrdup(env) : NULL;
    if (builtin && exists(builtin)) return ir_xstrdup(builtin);
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

/* ---- data as an ELF relocatable object -------------------------------------- */

/* The ELF machine of a target triple; 0 for one we don't write objects for. */
static uint16_t elf_machine(const char *triple)
{
    if (!strncmp(triple, "x86_64", 6)) return EM_X86_64;
    if (!strncmp(triple, "aarch64", 7)) return EM_AARCH64;
    return 0;
}

/* The ELF machine of the host this program runs on (where model.so will be loaded). */
static uint16_t host_machine(void)
{
#if defined(__x86_64__)
    return EM_X86_64;
#elif defined(__aarch64__)
    return EM_AARCH64;
#else
    return 0;
#endif
}

enum { SEC_DATA = 1, SEC_NOTE, SEC_SYMTAB, SEC_STRTAB, SEC_SHSTRTAB, NSEC };

#define MAX_SYMBOL 128

/* The string tables of an object defining `symbol`: the section names, their
 * offsets into shstrtab (by section number) and the symbol name table. */
typedef struct ElfNames {
    char shstrtab[MAX_SYMBOL + 64], strtab[MAX_SYMBOL + 2];
    uint32_t shstr_bytes, str_bytes, name[NSEC];
} ElfNames;

static void elf_names(ElfNames *e, const char *symbol, const char *prefix)
{
    if (strlen(symbol) > MAX_SYMBOL) ICE("symbol name '%s' too long", symbol);
    memset(e, 0, sizeof *e);
    const char *names[NSEC] = {"", NULL, ".note.GNU-stack", ".symtab", ".strtab", ".shstrtab"};
    uint32_t at = 1;
    for (int i = SEC_DATA; i < NSEC; i++) {
        e->name[i] = at;
        at += (uint32_t)(i == SEC_DATA ? sprintf(e->shstrtab + at, "%s.%s", prefix, symbol)
                                       : sprintf(e->shstrtab + at, "%s", names[i])) + 1;
    }
    e->shstr_bytes = at;
    e->str_bytes = (uint32_t)sprintf(e->strtab + 1, "%s", symbol) + 2;
}

static Elf64_Shdr section(uint32_t name, uint32_t type, uint64_t flags, uint64_t off,
                          uint64_t size, uint64_t align)
{
    return (Elf64_Shdr){.sh_name = name, .sh_type = type, .sh_flags = flags, .sh_offset = off,
                        .sh_size = size, .sh_addralign = align};
}

/* How a data symbol's bytes reach model.so. DATA_COPY: in a read-only section of the
 * object, which the linker copies. DATA_RESERVE: the object reserves the address range
 * only (zero-initialized, as .bss, and on x86-64 in the large .lbss that the linker
 * puts last), and place_data writes the bytes into the linked file itself: hundreds of
 * MB of weights are then written once, not written, read and written again. */
typedef enum { DATA_COPY, DATA_RESERVE } DataMode;

#ifndef SHF_X86_64_LARGE
#define SHF_X86_64_LARGE 0x10000000 /* the x86-64 psABI's flag of large sections */
#endif

/* An object defining `symbol` (hidden, 64-byte aligned) as `size` bytes:
 * written directly, so the bytes pass through no assembler. Layout: header,
 * data (none when reserved), symbols, string tables, section headers. */
static bool write_elf(FILE *f, const char *symbol, const void *bytes, uint64_t size,
                      uint16_t machine, DataMode mode)
{
    ElfNames e;
    bool reserve = mode == DATA_RESERVE;
    elf_names(&e, symbol, !reserve ? ".rodata" : machine == EM_X86_64 ? ".lbss" : ".bss");
    uint64_t data = 64, sym = (data + (reserve ? 0 : size) + 7) / 8 * 8;
    uint64_t str = sym + 2 * sizeof(Elf64_Sym), shstr = str + e.str_bytes;
    uint64_t shdr = (shstr + e.shstr_bytes + 7) / 8 * 8;
    Elf64_Ehdr eh = {.e_ident = {ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB,
                                 EV_CURRENT},
                     .e_type = ET_REL, .e_machine = machine, .e_version = EV_CURRENT,
                     .e_shoff = shdr, .e_ehsize = sizeof eh, .e_shentsize = sizeof(Elf64_Shdr),
                     .e_shnum = NSEC, .e_shstrndx = SEC_SHSTRTAB};
    Elf64_Sym syms[2] = {{0},
                         {.st_name = 1, .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT),
                          .st_other = STV_HIDDEN, .st_shndx = SEC_DATA, .st_size = size}};
    Elf64_Shdr sh[NSEC] = {{0},
                           reserve ? section(e.name[SEC_DATA], SHT_NOBITS,
                                             SHF_ALLOC | SHF_WRITE |
                                                 (machine == EM_X86_64 ? SHF_X86_64_LARGE : 0),
                                             data, size, 64)
                                   : section(e.name[SEC_DATA], SHT_PROGBITS, SHF_ALLOC, data,
                                             size, 64),
                           section(e.name[SEC_NOTE], SHT_PROGBITS, 0, sym, 0, 1),
                           section(e.name[SEC_SYMTAB], SHT_SYMTAB, 0, sym, sizeof syms, 8),
                           section(e.name[SEC_STRTAB], SHT_STRTAB, 0, str, e.str_bytes, 1),
                           section(e.name[SEC_SHSTRTAB], SHT_STRTAB, 0, shstr, e.shstr_bytes, 1)};
    sh[SEC_SYMTAB].sh_link = SEC_STRTAB;
    sh[SEC_SYMTAB].sh_info = 1; /* the first global symbol */
    sh[SEC_SYMTAB].sh_entsize = sizeof(Elf64_Sym);
    static const char zeros[64];
    uint64_t held = reserve ? 0 : size;
    return fwrite(&eh, sizeof eh, 1, f) == 1 && fwrite(bytes, 1, held, f) == held &&
           fwrite(zeros, 1, sym - data - held, f) == sym - data - held &&
           fwrite(syms, sizeof syms, 1, f) == 1 && fwrite(e.strtab, e.str_bytes, 1, f) == 1 &&
           fwrite(e.shstrtab, e.shstr_bytes, 1, f) == 1 &&
           fwrite(zeros, 1, shdr - shstr - e.shstr_bytes, f) == shdr - shstr - e.shstr_bytes &&
           fwrite(sh, sizeof sh, 1, f) == 1;
}

/* What one model.so is linked from: object files of code, and objects written
 * here defining each data symbol (those of size 0 are left out). */
#define MAX_LINK_PARTS 8
#define MAX_LINK_OBJECTS (MAX_LINK_PARTS / 2 * CG_MAX_PARTS)
typedef struct LinkInput {
    const char *obj[MAX_LINK_OBJECTS];
    int32_t nobj;
    CgLinkData data[MAX_LINK_PARTS];
    int32_t ndata;
    uint16_t machine;
} LinkInput;

static bool write_object(const CgLinkData *d, uint16_t machine, DataMode mode, const char *path,
                         char *err, size_t n)
{
    int fd = ir_temp_open(path);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    errno = 0;
    bool ok = f && write_elf(f, d->symbol, d->bytes, d->size, machine, mode) && fflush(f) == 0;
    int saved = errno ? errno : EIO;
    if ((f ? fclose(f) : fd >= 0 ? close(fd) : 0) != 0 && ok) saved = errno, ok = false;
    if (!ok) snprintf(err, n, "cannot write '%s': %s", path, strerror(saved));
    if (!ok && fd >= 0) ir_temp_release(path, true);
    return ok;
}

/* The data objects tmp.dataK.o while the linker runs: their paths in dobj[K] ("" for
 * none written). */
typedef char DataPath[4200];

static bool link_argv(const LinkInput *in, DataMode mode, const char *runtime, const char *tmp,
                      DataPath *dobj, char **argv, char *ccbuf, char *err, size_t n)
{
    int a = compiler_words(ccbuf, argv, MAX_ARGS);
    const char *rest[] = {"-shared", "-o", tmp, NULL};
    for (int i = 0; rest[i]; i++)
        argv[a++] = (char *)rest[i];
    for (int32_t i = 0; i < in->nobj; i++)
        argv[a++] = (char *)in->obj[i];
    for (int32_t i = 0; i < in->ndata; i++) {
        dobj[i][0] = 0;
        if (!in->data[i].size) continue;
        snprintf(dobj[i], sizeof dobj[i], "%s.data%d.o", tmp, (int)i);
        if (!write_object(&in->data[i], in->machine, mode, dobj[i], err, n))
            return dobj[i][0] = 0, false;
        argv[a++] = dobj[i];
    }
    const char *tail[] = {"-Wl,--whole-archive", runtime, "-Wl,--no-whole-archive", "-lm",
                          "-lpthread", "-Wl,--build-id=none", "-Wl,-z,noexecstack", NULL};
    for (int i = 0; tail[i]; i++)
        argv[a++] = (char *)tail[i];
    argv[a] = NULL;
    return true;
}

/* ---- reserved data written into the linked file ---------------------------- */

typedef enum { PLACED, PLACE_LAYOUT, PLACE_FAILED } Placed;

/* pread of all `size` bytes at `off` (a regular file reads whole, short only at its
 * end); false with errno. */
static bool read_at(int fd, void *p, uint64_t size, uint64_t off)
{
    ssize_t k = pread(fd, p, size, (off_t)off);
    if (k >= 0 && (uint64_t)k != size) errno = EIO;
    return k >= 0 && (uint64_t)k == size;
}

static bool write_at(int fd, const void *p, uint64_t size, uint64_t off)
{
    return lseek(fd, (off_t)off, SEEK_SET) == (off_t)off && ir_write_all(fd, p, size);
}

/* A linked shared object as place_data reads and rewrites it. */
typedef struct Linked {
    int fd;
    uint64_t size;
    Elf64_Ehdr eh;
    Elf64_Phdr *ph;
    Elf64_Shdr *sh;
    char *syms, *names; /* .symtab and its string table */
    uint64_t nsyms, names_bytes;
} Linked;

static bool within(uint64_t off, uint64_t bytes, uint64_t size)
{
    return off <= size && bytes <= size - off;
}

/* Reads the headers and the symbol table; false (errno 0) when the file is not
 * the 64-bit ELF object with a symbol table that a linker makes. */
static bool read_linked(Linked *l)
{
    Elf64_Ehdr *e = &l->eh;
    errno = 0;
    if (!read_at(l->fd, e, sizeof *e, 0)) return false;
    if (memcmp(e->e_ident, ELFMAG, SELFMAG) || e->e_ident[EI_CLASS] != ELFCLASS64 ||
        e->e_phentsize != sizeof(Elf64_Phdr) || e->e_shentsize != sizeof(Elf64_Shdr) ||
        !e->e_shnum || e->e_shstrndx >= e->e_shnum ||
        !within(e->e_phoff, (uint64_t)e->e_phnum * sizeof(Elf64_Phdr), l->size) ||
        !within(e->e_shoff, (uint64_t)e->e_shnum * sizeof(Elf64_Shdr), l->size))
        return errno = 0, false;
    l->ph = ir_xmalloc((size_t)e->e_phnum * sizeof *l->ph + 1);
    l->sh = ir_xmalloc((size_t)e->e_shnum * sizeof *l->sh);
    if (!read_at(l->fd, l->ph, (uint64_t)e->e_phnum * sizeof *l->ph, e->e_phoff) ||
        !read_at(l->fd, l->sh, (uint64_t)e->e_shnum * sizeof *l->sh, e->e_shoff))
        return false;
    for (int i = 0; i < e->e_shnum; i++) {
        const Elf64_Shdr *s = &l->sh[i];
        if (s->sh_type != SHT_SYMTAB) continue;
        if (s->sh_link >= e->e_shnum || s->sh_entsize != sizeof(Elf64_Sym)) break;
        const Elf64_Shdr *str = &l->sh[s->sh_link];
        if (!within(s->sh_offset, s->sh_size, l->size) ||
            !within(str->sh_offset, str->sh_size, l->size))
            break;
        l->nsyms = s->sh_size / sizeof(Elf64_Sym);
        l->names_bytes = str->sh_size;
        l->syms = ir_xmalloc(s->sh_size + 1);
        l->names = ir_xmalloc(str->sh_size + 1);
        l->names[str->sh_size] = 0;
        return read_at(l->fd, l->syms, s->sh_size, s->sh_offset) &&
               read_at(l->fd, l->names, str->sh_size, str->sh_offset);
    }
    return errno = 0, false;
}

/* The address of `symbol`; false when the symbol table holds no such name. */
static bool symbol_address(const Linked *l, const char *symbol, uint64_t *addr)
{
    for (uint64_t i = 0; i < l->nsyms; i++) {
        Elf64_Sym y;
        memcpy(&y, l->syms + i * sizeof y, sizeof y);
        if (y.st_name < l->names_bytes && !strcmp(l->names + y.st_name, symbol))
            return *addr = y.st_value, true;
    }
    return false;
}

/* The loadable segment whose bytes end last in the file, or -1. */
static int last_segment(const Linked *l)
{
    int last = -1;
    for (int i = 0; i < l->eh.e_phnum; i++)
        if (l->ph[i].p_type == PT_LOAD &&
            (last < 0 || l->ph[i].p_offset + l->ph[i].p_filesz >
                             l->ph[last].p_offset + l->ph[last].p_filesz))
            last = i;
    return last;
}

/* Gives segment `seg` file bytes for all of its memory: the zero-initialized end of it
 * (.bss, and the data objects reserved there) becomes file content, zeros but for the
 * data, and what followed the segment in the file (sections not loaded, the section
 * headers) moves `delta` bytes on. */
static bool fill_segment(Linked *l, int seg, const LinkInput *in, const uint64_t *addr,
                         uint64_t delta)
{
    Elf64_Phdr *p = &l->ph[seg];
    uint64_t end = p->p_offset + p->p_filesz, tail = l->size - end;
    char *rest = ir_xmalloc(tail + 1);
    bool ok = read_at(l->fd, rest, tail, end) && ftruncate(l->fd, (off_t)end) == 0 &&
              ftruncate(l->fd, (off_t)(end + delta + tail)) == 0;
    for (int32_t i = 0; ok && i < in->ndata; i++)
        if (in->data[i].size)
            ok = write_at(l->fd, in->data[i].bytes, in->data[i].size,
                            p->p_offset + (addr[i] - p->p_vaddr));
    ok = ok && write_at(l->fd, rest, tail, end + delta);
    free(rest);
    for (int i = 0; i < l->eh.e_shnum; i++) {
        Elf64_Shdr *s = &l->sh[i];
        if (s->sh_type == SHT_NOBITS && (s->sh_flags & SHF_ALLOC) && !(s->sh_flags & SHF_TLS) &&
            s->sh_addr >= p->p_vaddr && s->sh_addr + s->sh_size <= p->p_vaddr + p->p_memsz) {
            s->sh_type = SHT_PROGBITS;
            s->sh_offset = p->p_offset + (s->sh_addr - p->p_vaddr);
        } else if (s->sh_offset >= end && s->sh_type != SHT_NULL) {
            s->sh_offset += delta;
        }
    }
    p->p_filesz = p->p_memsz;
    if (l->eh.e_shoff >= end) l->eh.e_shoff += delta;
    return ok && write_at(l->fd, l->sh, (uint64_t)l->eh.e_shnum * sizeof *l->sh, l->eh.e_shoff) &&
           write_at(l->fd, l->ph, (uint64_t)l->eh.e_phnum * sizeof *l->ph, l->eh.e_phoff) &&
           write_at(l->fd, &l->eh, sizeof l->eh, 0);
}

/* Writes the bytes of the data objects linked as DATA_RESERVE into `path` (the
 * linker's output, to become `out`, the name errors give). The
 * linker put their address ranges at the zero-initialized end of the last segment;
 * where it did anything else (PLACE_LAYOUT), nothing is changed and the caller links
 * again with the bytes copied. */
static Placed place_data(const char *path, const char *out, const LinkInput *in, char *err,
                         size_t n)
{
    Linked l = {.fd = open(path, O_RDWR | O_CLOEXEC)};
    struct stat st;
    Placed r = PLACE_FAILED;
    if (l.fd < 0 || fstat(l.fd, &st) != 0) goto done;
    l.size = (uint64_t)st.st_size;
    if (!read_linked(&l)) {
        if (!errno) r = PLACE_LAYOUT;
        goto done;
    }
    r = PLACE_LAYOUT;
    int seg = last_segment(&l);
    if (seg < 0) goto done;
    const Elf64_Phdr *p = &l.ph[seg];
    uint64_t addr[MAX_LINK_PARTS] = {0}, end = p->p_offset + p->p_filesz;
    for (int32_t i = 0; i < in->ndata; i++)
        if (in->data[i].size &&
            (!symbol_address(&l, in->data[i].symbol, &addr[i]) ||
             addr[i] < p->p_vaddr + p->p_filesz || addr[i] > p->p_vaddr + p->p_memsz ||
             in->data[i].size > p->p_vaddr + p->p_memsz - addr[i]))
            goto done;
    /* After the segment's bytes, only what is not loaded: moved by whole pages, which
     * keeps every alignment it asks for. */
    for (int i = 0; i < l.eh.e_shnum; i++) {
        const Elf64_Shdr *s = &l.sh[i];
        if (s->sh_type != SHT_NOBITS && s->sh_offset + s->sh_size > end &&
            ((s->sh_flags & SHF_ALLOC) || s->sh_addralign > 4096))
            goto done;
    }
    for (int i = 0; i < l.eh.e_phnum; i++)
        if (i != seg && l.ph[i].p_filesz && l.ph[i].p_offset + l.ph[i].p_filesz > end) goto done;
    if (end > l.size || l.eh.e_phoff + (uint64_t)l.eh.e_phnum * sizeof *l.ph > end) goto done;
    uint64_t delta = (p->p_memsz - p->p_filesz + 4095) / 4096 * 4096;
    r = fill_segment(&l, seg, in, addr, delta) ? PLACED : PLACE_FAILED;
done:
    if (r == PLACE_FAILED) snprintf(err, n, "cannot write '%s': %s", out, strerror(errno));
    if (l.fd >= 0 && close(l.fd) != 0 && r == PLACED) {
        snprintf(err, n, "cannot write '%s': %s", out, strerror(errno));
        r = PLACE_FAILED;
    }
    free(l.ph), free(l.sh), free(l.syms), free(l.names);
    return r;
}

/* Runs the linker once, the data objects written in `mode` and removed again. */
static bool link_once(const LinkInput *in, DataMode mode, const char *runtime, const char *tmp,
                      char *err, size_t n)
{
    char ccbuf[1024];
    DataPath dobj[MAX_LINK_PARTS] = {{0}};
    char *argv[MAX_ARGS + 16 + MAX_LINK_PARTS + MAX_LINK_OBJECTS];
    bool ok = link_argv(in, mode, runtime, tmp, dobj, argv, ccbuf, err, n) &&
              run_captured(argv, err, n);
    for (int32_t i = 0; i < in->ndata; i++)
        if (dobj[i][0]) ir_temp_release(dobj[i], true);
    return ok;
}

/* Every file made on the way (data objects, linker output) is a registered
 * temporary; `out` appears by rename, whole, or not at all. Data objects are reserved
 * and written in place (place_data); a linker that lays them out otherwise gets them
 * to copy. */
static bool link_so(const LinkInput *in, const char *runtime, const char *out, char *err,
                    size_t n)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out) >= (int)sizeof tmp)
        return snprintf(err, n, "output path too long: '%s'", out), false;
    int fd = ir_temp_create(tmp);
    if (fd < 0) return snprintf(err, n, "cannot write '%s': %s", out, strerror(errno)), false;
    close(fd);
    bool ok = link_once(in, DATA_RESERVE, runtime, tmp, err, n);
    Placed placed = ok && in->ndata ? place_data(tmp, out, in, err, n) : PLACED;
    if (placed == PLACE_FAILED) ok = false;
    if (ok && placed == PLACE_LAYOUT) ok = link_once(in, DATA_COPY, runtime, tmp, err, n);
    /* mkstemp made the file 0600; give it the usual mode of a library. */
    mode_t mask = umask(0);
    umask(mask);
    if (ok && (chmod(tmp, 0777 & ~mask) != 0 || rename(tmp, out) != 0)) {
        snprintf(err, n, "cannot write '%s': %s", out, strerror(errno));
        ok = false;
    }
    ir_temp_release(tmp, !ok);
    return ok;
}

/* An object file in $TMPDIR while the linker reads it. */
static bool write_code(LLVMMemoryBufferRef b, char *obj, size_t len, char *err, size_t n)
{
    const char *dir = getenv("TMPDIR");
    if (snprintf(obj, len, "%s/cnnc-XXXXXX", dir && *dir ? dir : "/tmp") >= (int)len)
        return snprintf(err, n, "TMPDIR too long: '%s'", dir), false;
    int fd = ir_temp_create(obj);
    bool ok = fd >= 0 && ir_write_all(fd, LLVMGetBufferStart(b), LLVMGetBufferSize(b));
    if (!ok) snprintf(err, n, "cannot write a temporary object file '%s': %s", obj,
                      strerror(errno));
    if (fd >= 0 && close(fd) != 0 && ok)
        ok = false, snprintf(err, n, "cannot write '%s': %s", obj, strerror(errno));
    if (!ok && fd >= 0) ir_temp_release(obj, true);
    return ok;
}

/* Each module's object code, in one or more objects (cg_emit_objects), written to
 * temporary files: in->obj[] are their paths. */
static bool write_modules(Cg *const *cgs, int32_t ncgs, LinkInput *in,
                          char (*obj)[4096], char *err, size_t n)
{
    for (int32_t i = 0; i < ncgs; i++) {
        LLVMMemoryBufferRef b[CG_MAX_PARTS];
        int32_t nb = cg_emit_objects(cgs[i], b, err, n);
        bool ok = nb > 0;
        for (int32_t k = 0; k < nb; k++) {
            ok = ok && write_code(b[k], obj[in->nobj], sizeof obj[in->nobj], err, n);
            if (ok) in->obj[in->nobj] = obj[in->nobj], in->nobj++;
            LLVMDisposeMemoryBuffer(b[k]);
        }
        if (!ok) return false;
    }
    return true;
}

bool cg_link_modules(Cg *const *cgs, int32_t ncgs, const CgLinkData *data, int32_t ndata,
                     const char *runtime, const char *out, char *err, size_t n)
{
    if (ncgs < 1 || ncgs + ndata > MAX_LINK_PARTS || ncgs > MAX_LINK_PARTS / 2)
        ICE("cannot link %d modules and %d data objects", (int)ncgs, (int)ndata);
    const char *triple = LLVMGetTarget(cgs[0]->mod);
    LinkInput in = {.machine = elf_machine(triple)};
    char names[MAX_LINK_PARTS][64];
    for (int32_t i = 0; i < ncgs; i++)
        if (cgs[i]->blob && cgs[i]->blob->size > 0)
            in.data[in.ndata++] = (CgLinkData){
                cg_symbol(cgs[i], CG_WEIGHTS_SYMBOL, names[i], sizeof names[i]),
                cgs[i]->blob->data, (uint64_t)cgs[i]->blob->size};
    for (int32_t i = 0; i < ndata; i++)
        if (data[i].size > 0) in.data[in.ndata++] = data[i];
    if (in.ndata > 0 && !in.machine)
        return snprintf(err, n, "cannot embed weights for target '%s'", triple), false;
    char obj[MAX_LINK_OBJECTS][4096];
    bool ok = write_modules(cgs, ncgs, &in, obj, err, n);
    double t0 = cg_seconds();
    ok = ok && link_so(&in, runtime, out, err, n);
    cgs[0]->times.link += cg_seconds() - t0;
    for (int32_t i = 0; i < in.nobj; i++)
        ir_temp_release(obj[i], true);
    return ok;
}

bool cg_link_shared(Cg *cg, const char *runtime, const char *out, char *err, size_t n)
{
    return cg_link_modules(&cg, 1, NULL, 0, runtime, out, err, n);
}

bool cg_link_image(const char *symbol, const void *bytes, size_t size, const char *runtime,
                   const char *out, char *err, size_t n)
{
    LinkInput in = {.ndata = 1, .data = {{symbol, bytes, size}}, .machine = host_machine()};
    if (!in.machine) return snprintf(err, n, "cannot link a model.so for this machine"), false;
    if (!size) return snprintf(err, n, "empty data for '%s'", symbol), false;
    return link_so(&in, runtime, out, err, n);
}
