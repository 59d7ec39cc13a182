/* kernel_harness.h: compiles the kernel of one conv2d, dense, pooling or
 * elementwise node on its own (no passes, no run function, no runtime) into a
 * shared object and calls it directly, so kernels can be tested and timed on
 * hand-made layouts. Used by tests/test_kernels.c, tests/test_train_kernels.c,
 * bench/conv_layers.c and bench/train_kernels.c. */
#ifndef CNNC_KERNEL_HARNESS_H
#define CNNC_KERNEL_HARNESS_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "cg.h"

typedef void (*KhFn)(void **args, int64_t begin, int64_t end, void *scratch);

typedef struct KhKernel {
    KhFn fn;
    int64_t items;
    int64_t scratch_bytes; /* each calling thread's `scratch` (RtKernel) */
    void *so;
    int32_t vec;
} KhKernel;

/* The lanes the host's vectors (or those of `features`) have. */
static int32_t kh_lanes(const char *features)
{
    char *host = LLVMGetHostCPUFeatures();
    const char *f = features ? features : host;
    int32_t v = strstr(f, "+avx512f") ? 16 : strstr(f, "+avx2") ? 8 : 4;
    LLVMDisposeMessage(host);
    return v;
}

static bool kh_target(Cg *cg, const char *features)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    char *triple = LLVMGetDefaultTargetTriple(), *cpu = LLVMGetHostCPUName();
    char *host = LLVMGetHostCPUFeatures(), *msg = NULL;
    LLVMTargetRef t;
    bool ok = !LLVMGetTargetFromTriple(triple, &t, &msg);
    if (ok) {
        cg->tm = LLVMCreateTargetMachine(t, triple, features ? "x86-64" : cpu,
                                         features ? features : host, LLVMCodeGenLevelAggressive,
                                         LLVMRelocPIC, LLVMCodeModelDefault);
        cg->vec = kh_lanes(features);
        cg->nregs = cg->vec == 16 ? 32 : 16;
        cg->fma = strstr(features ? features : host, "+fma") != NULL;
    }
    cg->ctx = LLVMContextCreate();
    cg->mod = LLVMModuleCreateWithNameInContext("kernel", cg->ctx);
    LLVMSetTarget(cg->mod, triple);
    if (ok) {
        LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(cg->tm);
        LLVMSetModuleDataLayout(cg->mod, dl);
        LLVMDisposeTargetData(dl);
    }
    cg->b = LLVMCreateBuilderInContext(cg->ctx);
    cg_init_types(cg);
    LLVMDisposeMessage(msg);
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(host);
    return ok;
}

static void kh_cg_free(Cg *cg)
{
    cg_weights_free(cg);
    LLVMDisposeBuilder(cg->b);
    LLVMDisposeModule(cg->mod);
    LLVMContextDispose(cg->ctx);
    if (cg->tm)
        LLVMDisposeTargetMachine(cg->tm);
}

/* Object file → shared object → the `kernel` symbol. */
static bool kh_load(Cg *cg, KhKernel *k)
{
    char dir[] = "/tmp/cnnc-kernel-XXXXXX", obj[64], so[64], cmd[256];
    if (!mkdtemp(dir))
        return false;
    snprintf(obj, sizeof obj, "%s/k.o", dir);
    snprintf(so, sizeof so, "%s/k.so", dir);
    char *msg = NULL;
    bool ok = !LLVMTargetMachineEmitToFile(cg->tm, cg->mod, obj, LLVMObjectFile, &msg);
    LLVMDisposeMessage(msg);
    snprintf(cmd, sizeof cmd, "cc -shared -o %s %s", so, obj);
    ok = ok && system(cmd) == 0;
    k->so = ok ? dlopen(so, RTLD_NOW | RTLD_LOCAL) : NULL;
    k->fn = k->so ? (KhFn)(uintptr_t)dlsym(k->so, "kernel") : NULL;
    unlink(obj);
    unlink(so);
    rmdir(dir);
    return k->fn != NULL;
}

static CgKernel kh_emit(Cg *cg, int32_t id)
{
    switch (cg->g->nodes[id].op) {
    case OP_CONV2D: return cg_emit_conv2d(cg, id);
    case OP_DENSE: return cg_emit_dense(cg, id);
    case OP_CONV2D_GRAD_INPUT: return cg_emit_conv2d_grad_input(cg, id);
    case OP_CONV2D_GRAD_WEIGHT: return cg_emit_conv2d_grad_weight(cg, id);
    case OP_DENSE_GRAD_INPUT: return cg_emit_dense_grad_input(cg, id);
    case OP_DENSE_GRAD_WEIGHT: return cg_emit_dense_grad_weight(cg, id);
    case OP_MAXPOOL:
    case OP_AVGPOOL:
    case OP_GLOBAL_AVGPOOL:
    case OP_ADAPTIVE_AVGPOOL: return cg_emit_pool(cg, id);
    default: return cg_emit_eltwise(cg, id);
    }
}

/* Emits the kernel of node `id` of `g` (types and layouts set, PARAMs bound)
 * for the host (features NULL) or for `features` on a generic x86-64. */
static bool kh_compile(const Graph *g, int32_t id, const char *features, KhKernel *k)
{
    Cg cg = {0};
    cg.g = g;
    memset(k, 0, sizeof *k);
    if (!kh_target(&cg, features)) {
        kh_cg_free(&cg);
        return false;
    }
    CgKernel ck = kh_emit(&cg, id);
    LLVMSetValueName2(ck.fn, "kernel", 6);
    LLVMSetLinkage(ck.fn, LLVMExternalLinkage);
    char *msg = NULL;
    bool ok = !LLVMVerifyModule(cg.mod, LLVMReturnStatusAction, &msg);
    if (!ok)
        fprintf(stderr, "invalid module: %s\n", msg);
    LLVMDisposeMessage(msg);
    msg = NULL;
    if (ok) {
        LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
        LLVMErrorRef e = LLVMRunPasses(cg.mod, "default<O3>", cg.tm, po);
        LLVMDisposePassBuilderOptions(po);
        if (e) {
            LLVMConsumeError(e);
            ok = false;
        }
    }
    if (ok && getenv("CNNC_KH_DUMP")) {
        char path[256];
        snprintf(path, sizeof path, "%s.s", getenv("CNNC_KH_DUMP"));
        LLVMTargetMachineEmitToFile(cg.tm, cg.mod, path, LLVMAssemblyFile, &msg);
        LLVMDisposeMessage(msg);
    }
    k->items = ck.items;
    k->scratch_bytes = cg.scratch_bytes;
    k->vec = cg.vec;
    cg_embed_weights(&cg);
    ok = ok && kh_load(&cg, k);
    kh_cg_free(&cg);
    return ok;
}

/* A calling thread's scratch for k (free() it). */
static inline void *kh_scratch(const KhKernel *k)
{
    return aligned_alloc(64, (size_t)(k->scratch_bytes + 63) / 64 * 64 + 64);
}

static void kh_unload(KhKernel *k)
{
    if (k->so)
        dlclose(k->so);
    memset(k, 0, sizeof *k);
}

/* NCHW ↔ NCHW[b]c with `stride` elements between batch items of the blocked side. */
static inline void kh_block(const float *src, float *dst, int64_t N, int64_t C, int64_t HW, int64_t b,
                     int64_t stride)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < HW; p++)
                dst[n * stride + ((c / b) * HW + p) * b + c % b] = src[(n * C + c) * HW + p];
}

static inline void kh_unblock(const float *src, float *dst, int64_t N, int64_t C, int64_t HW, int64_t b,
                       int64_t stride)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < HW; p++)
                dst[(n * C + c) * HW + p] = src[n * stride + ((c / b) * HW + p) * b + c % b];
}

#endif
