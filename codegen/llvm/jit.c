/* jit.c: a lowered module run in-process. The object code `cnnc -o model.so` would link is
 * linked into memory by LLVM ORC (one LLJIT per model, so models never share symbols);
 * undefined symbols bind to the caller's table, then to the process. The objects are
 * those cg_emit_objects makes, in parts on as many threads as `cnnc -o` uses, so the
 * REPL compiles as fast; calls between them go through RuntimeDyld's stubs. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/OrcEE.h>

#include "cg.h"

struct CgJit {
    LLVMOrcLLJITRef lljit;
    char **defined; /* the non-local symbols the module defines: all a lookup may find */
    int32_t ndefined;
    size_t reserve;    /* address space for the object's sections */
    CgBlob *weights;   /* the blob CG_WEIGHTS_SYMBOL points into, kept alive */
    char weights_name[64];
    char report[1024]; /* the first error ORC reported while linking */
};

/* ---- memory: every section of the object in one reservation ------------- */

/* RuntimeDyld's default memory manager maps each section on its own, so code and the
 * constants it reaches PC-relatively could land more than 2 GB apart, beyond the reach of
 * the small code model the object is compiled for (this happened when the weights were
 * part of the object; they now stay outside, reached through the GOT). So sections are
 * carved from one reservation, in order, as a linker lays out model.so; each starts on a
 * page so it can get its own protection once relocated. */
typedef struct JitSection {
    char *start;
    size_t len;
    int prot; /* after finalization */
} JitSection;

typedef struct JitMemory {
    char *base; /* NULL if the reservation failed: every allocation then fails */
    size_t cap, used, page;
    JitSection *sec;
    int32_t nsec;
} JitMemory;

static void *mem_new(void *ctx)
{
    const CgJit *j = ctx;
    JitMemory *m = ir_xcalloc(1, sizeof *m);
    m->page = (size_t)sysconf(_SC_PAGESIZE);
    m->cap = j->reserve;
    void *p = mmap(NULL, m->cap, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    m->base = p == MAP_FAILED ? NULL : p;
    return m;
}

static void mem_terminating(void *ctx)
{
    (void)ctx;
}

/* NULL (which RuntimeDyld reports as an error) when the reservation is exhausted. */
static uint8_t *mem_take(JitMemory *m, uintptr_t size, unsigned align, int prot)
{
    size_t a = align > m->page ? align : m->page;
    size_t off = (m->used + a - 1) / a * a, len = (size + m->page - 1) / m->page * m->page;
    if (!m->base || off > m->cap || len > m->cap - off) return NULL;
    if (len && mprotect(m->base + off, len, PROT_READ | PROT_WRITE) != 0) return NULL;
    m->sec = ir_xrealloc(m->sec, ((size_t)m->nsec + 1) * sizeof *m->sec);
    m->sec[m->nsec++] = (JitSection){m->base + off, len, prot};
    m->used = off + len;
    return (uint8_t *)m->base + off;
}

static uint8_t *mem_code(void *ctx, uintptr_t size, unsigned align, unsigned id, const char *name)
{
    return mem_take(ctx, size, align, PROT_READ | PROT_EXEC);
}

static uint8_t *mem_data(void *ctx, uintptr_t size, unsigned align, unsigned id,
                         const char *name, LLVMBool read_only)
{
    return mem_take(ctx, size, align, read_only ? PROT_READ : PROT_READ | PROT_WRITE);
}

/* RuntimeDyld frees the message with free(). */
static LLVMBool mem_finalize(void *ctx, char **msg)
{
    JitMemory *m = ctx;
    for (int32_t i = 0; i < m->nsec; i++) {
        JitSection *s = &m->sec[i];
        if (s->len && mprotect(s->start, s->len, s->prot) != 0) {
            const char *why = strerror(errno);
            *msg = ir_xstrdup(why);
            return 1;
        }
        if (s->prot & PROT_EXEC) __builtin___clear_cache(s->start, s->start + s->len);
    }
    return 0;
}

static void mem_free(void *ctx)
{
    JitMemory *m = ctx;
    if (m->base) munmap(m->base, m->cap);
    free(m->sec);
    free(m);
}

static LLVMOrcObjectLayerRef make_layer(void *ctx, LLVMOrcExecutionSessionRef es,
                                        const char *triple)
{
    return LLVMOrcCreateRTDyldObjectLinkingLayerWithMCJITMemoryManagerLikeCallbacks(
        es, ctx, mem_new, mem_terminating, mem_code, mem_data, mem_finalize, mem_free);
}

/* ---- the JIT --------------------------------------------------------------- */

/* Takes `e`: false if it is success, else its message goes into err after `what`. */
static bool failed(LLVMErrorRef e, const char *what, char *err, size_t n)
{
    if (!e) return false;
    char *msg = LLVMGetErrorMessage(e);
    snprintf(err, n, "%s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return true;
}

/* Linking runs inside a lookup, whose own error only says that materialization failed;
 * the cause (an unresolved symbol, a bad relocation) comes through here. */
static void on_error(void *ctx, LLVMErrorRef e)
{
    CgJit *j = ctx;
    char *msg = LLVMGetErrorMessage(e);
    if (!j->report[0]) snprintf(j->report, sizeof j->report, "%s", msg);
    LLVMDisposeErrorMessage(msg);
}

static void add_if_defined(CgJit *j, LLVMValueRef v)
{
    LLVMLinkage l = LLVMGetLinkage(v);
    if (LLVMIsDeclaration(v) || l == LLVMInternalLinkage || l == LLVMPrivateLinkage) return;
    j->defined = ir_xrealloc(j->defined, ((size_t)j->ndefined + 1) * sizeof *j->defined);
    j->defined[j->ndefined++] = ir_xstrdup(LLVMGetValueName2(v, &(size_t){0}));
}

static void collect_defined(CgJit *j, LLVMModuleRef m)
{
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f))
        add_if_defined(j, f);
    for (LLVMValueRef g = LLVMGetFirstGlobal(m); g; g = LLVMGetNextGlobal(g))
        add_if_defined(j, g);
}

/* Field i of a normalized triple (arch-vendor-os-environment), its length in *len. */
static const char *triple_field(const char *t, int i, size_t *len)
{
    for (; i > 0 && *t; i--) {
        t += strcspn(t, "-");
        t += *t == '-';
    }
    *len = strcspn(t, "-");
    return t;
}

/* Object code for another architecture or OS would load and then crash when called; the
 * vendor ("pc", "unknown") does not matter. */
static bool runs_here(const char *host, const char *target)
{
    char *h = LLVMNormalizeTargetTriple(host), *t = LLVMNormalizeTargetTriple(target);
    bool same = true;
    for (int i = 0; i <= 2; i += 2) {
        size_t lh, lt;
        const char *fh = triple_field(h, i, &lh), *ft = triple_field(t, i, &lt);
        same = same && lh == lt && strncmp(fh, ft, lh) == 0;
    }
    LLVMDisposeMessage(h);
    LLVMDisposeMessage(t);
    return same;
}

static bool check_syms(const CgJitSymbol *syms, int32_t nsyms, char *err, size_t n)
{
    for (int32_t i = 0; i < nsyms; i++) {
        if (!syms[i].name || !*syms[i].name || !syms[i].addr) {
            snprintf(err, n, "JIT symbol %d has no name or no address", i);
            return false;
        }
        for (int32_t k = 0; k < i; k++)
            if (strcmp(syms[k].name, syms[i].name) == 0) {
                snprintf(err, n, "JIT symbol '%s' given twice", syms[i].name);
                return false;
            }
    }
    return true;
}

/* The caller's symbols as absolute definitions in the main JITDylib, which the process's
 * symbols only back up (generators answer what the JITDylib itself lacks). */
static LLVMErrorRef define_syms(CgJit *j, const CgJitSymbol *syms, int32_t nsyms)
{
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->lljit);
    if (nsyms > 0) {
        LLVMOrcCSymbolMapPairs pairs = ir_xcalloc((size_t)nsyms, sizeof *pairs);
        for (int32_t i = 0; i < nsyms; i++) {
            pairs[i].Name = LLVMOrcLLJITMangleAndIntern(j->lljit, syms[i].name);
            pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)syms[i].addr;
            pairs[i].Sym.Flags.GenericFlags =
                LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
        }
        LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, (size_t)nsyms);
        free(pairs);
        LLVMErrorRef e = LLVMOrcJITDylibDefine(jd, mu);
        if (e) {
            LLVMOrcDisposeMaterializationUnit(mu);
            return e;
        }
    }
    LLVMOrcDefinitionGeneratorRef gen;
    char prefix = LLVMOrcLLJITGetGlobalPrefix(j->lljit);
    LLVMErrorRef e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, prefix, NULL,
                                                                          NULL);
    if (!e) LLVMOrcJITDylibAddGenerator(jd, gen);
    return e;
}

static bool create(CgJit *j, char *err, size_t n)
{
    LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetObjectLinkingLayerCreator(b, make_layer, j);
    if (failed(LLVMOrcCreateLLJIT(&j->lljit, b), "cannot start the JIT", err, n)) {
        j->lljit = NULL;
        return false;
    }
    LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(j->lljit), on_error,
                                            j);
    return true;
}

/* Linking happens on the first lookup: done here, so that its errors surface now. */
static bool link_all(CgJit *j, char *err, size_t n)
{
    for (int32_t i = 0; i < j->ndefined; i++) {
        LLVMOrcExecutorAddress addr;
        LLVMErrorRef e = LLVMOrcLLJITLookup(j->lljit, &addr, j->defined[i]);
        if (e && j->report[0]) {
            LLVMConsumeError(e);
            snprintf(err, n, "JIT link failed: %s", j->report);
            return false;
        }
        if (failed(e, "JIT link failed", err, n)) return false;
    }
    return true;
}

/* The caller's symbols plus the weights blob, unless the module holds the weights itself
 * (cg_embed_weights); the JIT keeps a reference to the blob. */
static CgJitSymbol *with_weights(CgJit *j, Cg *cg, const CgJitSymbol *syms, int32_t *nsyms)
{
    CgJitSymbol *all = ir_xcalloc((size_t)*nsyms + 1, sizeof *all);
    if (*nsyms > 0) memcpy(all, syms, (size_t)*nsyms * sizeof *all);
    if (cg->weights_sym && !LLVMGetInitializer(cg->weights_sym) && cg->blob->size > 0) {
        j->weights = cg_blob_ref(cg->blob);
        all[(*nsyms)++] = (CgJitSymbol){cg_symbol(cg, CG_WEIGHTS_SYMBOL, j->weights_name,
                                                  sizeof j->weights_name),
                                        j->weights->data};
    }
    return all;
}

CgJit *cg_jit_new(Cg *cg, const CgJitSymbol *syms, int32_t nsyms, char *err, size_t n)
{
    char *host = LLVMGetDefaultTargetTriple();
    bool here = runs_here(host, LLVMGetTarget(cg->mod));
    if (!here)
        snprintf(err, n, "cannot run code for target '%s' on this host ('%s')",
                 LLVMGetTarget(cg->mod), host);
    LLVMDisposeMessage(host);
    if (!here || !check_syms(syms, nsyms, err, n)) return NULL;
    LLVMMemoryBufferRef objs[CG_MAX_PARTS];
    int32_t nobjs = cg_emit_objects(cg, objs, err, n);
    if (!nobjs) return NULL;
    CgJit *j = ir_xcalloc(1, sizeof *j);
    /* Each object gets a reservation of its own. Sections with contents hold at most the
     * object's bytes, and stubs and GOT entries take less than the relocation records
     * they serve; the slack covers page rounding (and zero-filled sections, which
     * generated code has none of). */
    size_t largest = 0;
    for (int32_t i = 0; i < nobjs; i++)
        if (LLVMGetBufferSize(objs[i]) > largest) largest = LLVMGetBufferSize(objs[i]);
    j->reserve = 2 * largest + ((size_t)64 << 20);
    collect_defined(j, cg->mod);
    CgJitSymbol *all = with_weights(j, cg, syms, &nsyms);
    bool ok = create(j, err, n) && !failed(define_syms(j, all, nsyms), "JIT symbols", err, n);
    free(all);
    LLVMOrcJITDylibRef jd = ok ? LLVMOrcLLJITGetMainJITDylib(j->lljit) : NULL;
    int32_t added = 0;
    for (; ok && added < nobjs; added++) /* each buffer is ORC's once added, even on failure */
        ok = !failed(LLVMOrcLLJITAddObjectFile(j->lljit, jd, objs[added]), "JIT", err, n);
    for (int32_t i = added; i < nobjs; i++)
        LLVMDisposeMemoryBuffer(objs[i]);
    if (!ok || !link_all(j, err, n)) {
        cg_jit_free(j);
        return NULL;
    }
    return j;
}

void *cg_jit_lookup(const CgJit *j, const char *name)
{
    if (!j || !name) return NULL;
    int32_t i = 0;
    while (i < j->ndefined && strcmp(j->defined[i], name) != 0)
        i++;
    if (i == j->ndefined) return NULL;
    LLVMOrcExecutorAddress addr;
    LLVMErrorRef e = LLVMOrcLLJITLookup(j->lljit, &addr, name);
    if (e) {
        LLVMConsumeError(e);
        return NULL;
    }
    return (void *)(uintptr_t)addr;
}

void cg_jit_free(CgJit *j)
{
    if (!j) return;
    if (j->lljit) LLVMConsumeError(LLVMOrcDisposeLLJIT(j->lljit));
    cg_blob_unref(j->weights);
    for (int32_t i = 0; i < j->ndefined; i++)
        free(j->defined[i]);
    free(j->defined);
    free(j);
}
