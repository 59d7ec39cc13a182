/* model_api.h: the C API of a model.so (include/cnnc/model.h) reached through
 * dlopen: a table of its functions and the code that resolves them. Shared by
 * cnnrun and the tests that load the model.so files they compile, and installed
 * as <cnnc/loader.h> for C programs that load one. */
#ifndef CNNC_MODEL_API_H
#define CNNC_MODEL_API_H

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cnnc/model.h"

typedef struct ModelApi {
    void *lib;
    void (*options_init)(cnn_options *);
    cnn_status (*create)(const cnn_options *, cnn_model **);
    void (*destroy)(cnn_model *);
    int32_t (*num_inputs)(const cnn_model *);
    int32_t (*num_outputs)(const cnn_model *);
    cnn_status (*input_info)(const cnn_model *, int32_t, cnn_tensor_info *);
    cnn_status (*output_info)(const cnn_model *, int32_t, cnn_tensor_info *);
    int32_t (*num_threads)(const cnn_model *);
    cnn_status (*run)(cnn_model *, const cnn_tensor *, int32_t, cnn_tensor *, int32_t);
    const char *(*status_string)(cnn_status);
    /* Profiling: NULL in a model.so compiled before it existed. */
    cnn_status (*set_profiling)(cnn_model *, int);
    int32_t (*num_kernels)(const cnn_model *);
    cnn_status (*kernel_info)(const cnn_model *, int32_t, cnn_kernel_info *);
    /* NULL in a model.so of API version 1. */
    cnn_device (*device)(const cnn_model *);
    const char *(*last_error)(void);
    /* NULL in a model.so whose weights carry no checksum. */
    cnn_status (*verify)(const cnn_model *);
} ModelApi;

static inline bool model_api_sym(void *lib, const char *name, void *fn, size_t size)
{
    void *p = dlsym(lib, name);
    memcpy(fn, &p, size);
    return p != NULL;
}

#define MODEL_API_SYM(a, field, name) model_api_sym((a)->lib, name, &(a)->field, sizeof (a)->field)

/* ---- the file checked against its ELF headers before dlopen ---------------------- */

#if UINTPTR_MAX > 0xffffffffu
typedef Elf64_Ehdr ModelEhdr;
typedef Elf64_Phdr ModelPhdr;
#define MODEL_ELF_CLASS ELFCLASS64
#else
typedef Elf32_Ehdr ModelEhdr;
typedef Elf32_Phdr ModelPhdr;
#define MODEL_ELF_CLASS ELFCLASS32
#endif
#if defined(__x86_64__)
#define MODEL_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define MODEL_ELF_MACHINE EM_AARCH64
#else
#define MODEL_ELF_MACHINE EM_NONE /* not checked */
#endif

/* A table or segment [off, off + count * size) must lie inside the file;
 * `what` needs ("its program headers need") the bytes up to its end. */
static inline bool model_elf_fits(const char *path, const char *what, uint64_t off,
                                  uint64_t count, uint64_t size, uint64_t file, char *err,
                                  size_t n)
{
    uint64_t end;
    bool overflow = __builtin_mul_overflow(count, size, &end) ||
                    __builtin_add_overflow(end, off, &end);
    if (!overflow && end <= file) return true;
    if (overflow)
        snprintf(err, n, "%s: damaged: %s more bytes than any file holds", path, what);
    else
        snprintf(err, n, "%s: truncated: %s %llu bytes, the file has %llu", path, what,
                 (unsigned long long)end, (unsigned long long)file);
    return false;
}

/* Every PT_LOAD segment's bytes are in the file. */
static inline bool model_elf_segments(int fd, const char *path, const ModelEhdr *h,
                                      uint64_t file, char *err, size_t n)
{
    for (uint32_t i = 0; i < h->e_phnum; i++) {
        ModelPhdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(h->e_phoff + (uint64_t)i * sizeof ph)) !=
            (ssize_t)sizeof ph)
            return snprintf(err, n, "%s: cannot read its program headers", path), false;
        char what[64];
        snprintf(what, sizeof what, "its loadable segment %u needs", i);
        if (ph.p_type == PT_LOAD &&
            !model_elf_fits(path, what, ph.p_offset, 1, ph.p_filesz, file, err, n))
            return false;
    }
    return true;
}

/* The ELF header `h` of a file of `file` bytes: this machine's, and every table
 * and loadable segment it names inside the file. */
static inline bool model_elf_check(int fd, const char *path, const ModelEhdr *h, uint64_t file,
                                   char *err, size_t n)
{
    if (h->e_ident[EI_CLASS] != MODEL_ELF_CLASS ||
        (MODEL_ELF_MACHINE != EM_NONE && h->e_machine != MODEL_ELF_MACHINE))
        return snprintf(err, n, "%s: built for another machine (ELF class %d, machine %d)", path,
                        h->e_ident[EI_CLASS], h->e_machine), false;
    if (h->e_phentsize != sizeof(ModelPhdr))
        return snprintf(err, n, "%s: damaged: program header entries of %d bytes", path,
                        h->e_phentsize), false;
    return model_elf_fits(path, "its program headers need", h->e_phoff, h->e_phnum,
                          sizeof(ModelPhdr), file, err, n) &&
           model_elf_segments(fd, path, h, file, err, n) &&
           model_elf_fits(path, "its section headers need", h->e_shoff,
                          h->e_shoff && !h->e_shnum ? 1 : h->e_shnum, h->e_shentsize, file, err,
                          n);
}

/* dlopen maps a shared object's segments as its headers describe them, and a
 * process touching a mapped page past the end of a truncated file dies of
 * SIGBUS: so the file is first checked against those headers. What is not a
 * regular ELF file is left to dlopen to refuse. */
static inline bool model_api_check_file(const char *path, char *err, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    struct stat st;
    ModelEhdr h;
    bool elf = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
               pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
               memcmp(h.e_ident, ELFMAG, SELFMAG) == 0;
    bool ok = !elf || model_elf_check(fd, path, &h, (uint64_t)st.st_size, err, n);
    close(fd);
    return ok;
}

/* Opens the model.so at `path` (as dlopen reads it) and resolves its API. On
 * failure returns false with the reason in `err`, nothing left open. */
static inline bool model_api_open(ModelApi *a, const char *path, char *err, size_t n)
{
    memset(a, 0, sizeof *a);
    if (!model_api_check_file(path, err, n)) return false;
    a->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!a->lib) return snprintf(err, n, "cannot load the model: %s", dlerror()), false;
    a->options_init = cnn_options_init; /* inline in the header, not exported */
    bool ok = MODEL_API_SYM(a, create, "cnn_model_create") &&
              MODEL_API_SYM(a, destroy, "cnn_model_destroy") &&
              MODEL_API_SYM(a, num_inputs, "cnn_model_num_inputs") &&
              MODEL_API_SYM(a, num_outputs, "cnn_model_num_outputs") &&
              MODEL_API_SYM(a, input_info, "cnn_model_input_info") &&
              MODEL_API_SYM(a, output_info, "cnn_model_output_info") &&
              MODEL_API_SYM(a, num_threads, "cnn_model_num_threads") &&
              MODEL_API_SYM(a, run, "cnn_model_run") &&
              MODEL_API_SYM(a, status_string, "cnn_status_string");
    if (!ok) {
        snprintf(err, n, "'%s' is not a cnnc model: %s", path, dlerror());
        dlclose(a->lib);
        a->lib = NULL;
        return false;
    }
    if (!(MODEL_API_SYM(a, set_profiling, "cnn_model_set_profiling") &&
          MODEL_API_SYM(a, num_kernels, "cnn_model_num_kernels") &&
          MODEL_API_SYM(a, kernel_info, "cnn_model_kernel_info")))
        a->set_profiling = NULL, a->num_kernels = NULL, a->kernel_info = NULL;
    if (!(MODEL_API_SYM(a, device, "cnn_model_device") &&
          MODEL_API_SYM(a, last_error, "cnn_last_error")))
        a->device = NULL, a->last_error = NULL;
    MODEL_API_SYM(a, verify, "cnn_model_verify");
    return true;
}

#endif
