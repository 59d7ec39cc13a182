/* fakecuda.c: a CUDA driver (libcuda.so.1) on host memory, so that the CUDA runtime of a
 * model.so runs end to end where no GPU is; these are its entry points (state.c keeps its
 * objects and runs stream operations). Device pointers are host addresses, kernels run
 * through an emulated build of the program's CUDA C, a stream executes in program order
 * as it is fed, capture records what a stream is fed and a graph replays it. Every
 * object is counted and every entry point can be made to fail, for tests.
 *
 * Emulated kernels: env CNNC_FAKECUDA_KERNELS names, when a module is loaded, a shared
 * library exporting for each __global__ symbol S
 *     void cnnc_emu_S(const unsigned grid[3], const unsigned block[3], void **params);
 *     const int cnnc_emu_S_nargs;        pointer parameters (8 bytes each) first,
 *     const int cnnc_emu_S_param_bytes;  then one by-value parameter of this size, or 0.
 * The two sizes let a captured launch copy its parameter values, as the driver does.
 *
 * Test hooks: fakecuda_live(), fakecuda_calls(name), fakecuda_fail(name, k),
 * fakecuda_reset(); env CNNC_FAKECUDA_FAIL="NAME[:K]", CNNC_FAKECUDA_CC="8.0". */
#include "fake.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors -------------------------------------------------------------------------- */

CUresult cuGetErrorName(CUresult e, const char **out)
{
    ENTRY(cuGetErrorName, error_text(e, true, out));
}

CUresult cuGetErrorString(CUresult e, const char **out)
{
    ENTRY(cuGetErrorString, error_text(e, false, out));
}

/* NVRTC looks for the driver's private tables when a libcuda.so.1 is loaded, and crashes
 * when the symbol is missing: there are none here. */
CUresult cuGetExportTable(const void **table, const CUuuid *id)
{
    if (table) *table = NULL;
    return CUDA_ERROR_NOT_SUPPORTED;
}

/* ---- device and contexts ------------------------------------------------------------- */

static CUresult init(unsigned flags)
{
    if (flags) return CUDA_ERROR_INVALID_VALUE;
    initialized = true;
    return CUDA_SUCCESS;
}

CUresult cuInit(unsigned flags)
{
    ENTRY(cuInit, init(flags));
}

static CUresult driver_version(int *v)
{
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    *v = CUDA_VERSION;
    return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *v)
{
    ENTRY(cuDriverGetVersion, driver_version(v));
}

static CUresult device_count(int *n)
{
    if (!n) return CUDA_ERROR_INVALID_VALUE;
    *n = 1;
    return need_init();
}

CUresult cuDeviceGetCount(int *n)
{
    ENTRY(cuDeviceGetCount, device_count(n));
}

static CUresult device_get(CUdevice *dev, int ordinal)
{
    if (!dev) return CUDA_ERROR_INVALID_VALUE;
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *dev = 0;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *dev, int ordinal)
{
    ENTRY(cuDeviceGet, device_get(dev, ordinal));
}

static CUresult need_device(CUdevice dev)
{
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    return dev == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

/* CNNC_FAKECUDA_CC="M.m", 8.0 by default. */
static void compute_capability(int *major, int *minor)
{
    const char *cc = getenv("CNNC_FAKECUDA_CC");
    *major = 8, *minor = 0;
    if (cc && sscanf(cc, "%d.%d", major, minor) != 2) *major = 8, *minor = 0;
}

static CUresult device_attribute(int *v, CUdevice_attribute a, CUdevice dev)
{
    CUresult r = need_device(dev);
    if (r != CUDA_SUCCESS) return r;
    if (!v || (int)a <= 0 || (int)a >= (int)CU_DEVICE_ATTRIBUTE_MAX)
        return CUDA_ERROR_INVALID_VALUE;
    int major, minor;
    compute_capability(&major, &minor);
    switch (a) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = major; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = minor; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK:
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X:
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: *v = 64; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *v = 0x7fffffff; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y:
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: *v = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *v = 48 * 1024; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *v = 32; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 108; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *v = 2048; break;
    default: *v = 0; break;
    }
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice dev)
{
    ENTRY(cuDeviceGetAttribute, device_attribute(v, a, dev));
}

static CUresult device_name(char *name, int len, CUdevice dev)
{
    CUresult r = need_device(dev);
    if (r != CUDA_SUCCESS) return r;
    if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "%s", "cnnc fake device");
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
    ENTRY(cuDeviceGetName, device_name(name, len, dev));
}

static CUresult ctx_retain(CUcontext *ctx, CUdevice dev)
{
    CUresult r = need_device(dev);
    if (r != CUDA_SUCCESS) return r;
    if (!ctx) return CUDA_ERROR_INVALID_VALUE;
    primary.refs++;
    *ctx = &primary;
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice dev)
{
    ENTRY(cuDevicePrimaryCtxRetain, ctx_retain(ctx, dev));
}

/* What the context owned stays allocated, and counted, when it goes: a leak is visible. */
static CUresult ctx_release(CUdevice dev)
{
    CUresult r = need_device(dev);
    if (r != CUDA_SUCCESS) return r;
    if (primary.refs <= 0) return CUDA_ERROR_INVALID_CONTEXT;
    primary.refs--;
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    ENTRY(cuDevicePrimaryCtxRelease_v2, ctx_release(dev));
}

static CUresult ctx_push(CUcontext ctx)
{
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (ctx != &primary || primary.refs <= 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (ctx_depth == (int)(sizeof ctx_stack / sizeof ctx_stack[0])) return CUDA_ERROR_UNKNOWN;
    ctx_stack[ctx_depth++] = ctx;
    return CUDA_SUCCESS;
}

CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    ENTRY(cuCtxPushCurrent_v2, ctx_push(ctx));
}

static CUresult ctx_pop(CUcontext *ctx)
{
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (ctx_depth == 0) return CUDA_ERROR_INVALID_CONTEXT;
    CUcontext top = ctx_stack[--ctx_depth];
    if (ctx) *ctx = top;
    return CUDA_SUCCESS;
}

CUresult cuCtxPopCurrent_v2(CUcontext *ctx)
{
    ENTRY(cuCtxPopCurrent_v2, ctx_pop(ctx));
}

/* ---- modules ------------------------------------------------------------------------- */

static bool starts_with(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* The extent of an ELF64 image: its section header table ends it. */
static size_t elf_size(const unsigned char *e)
{
    uint64_t shoff;
    uint16_t shentsize, shnum;
    if (e[4] != 2 || e[5] != 1) return 0; /* 64-bit little-endian only */
    memcpy(&shoff, e + 0x28, 8);
    memcpy(&shentsize, e + 0x3a, 2);
    memcpy(&shnum, e + 0x3c, 2);
    return shoff && shnum ? (size_t)(shoff + (uint64_t)shentsize * shnum) : 0;
}

/* A cubin (EM_CUDA) for sm_XY runs on devices X.Y' with Y' >= Y. Its e_flags hold the
 * architecture: bits 8-15 from ELF ABI version 8 (CUDA 13) on, bits 0-7 before. */
static CUresult cubin_fits(const unsigned char *e)
{
    uint16_t machine;
    uint32_t flags;
    memcpy(&machine, e + 0x12, 2);
    memcpy(&flags, e + 0x30, 4);
    if (machine != 190) return CUDA_ERROR_INVALID_IMAGE;
    int arch = (int)(e[8] >= 8 ? flags >> 8 : flags) & 0xff, major, minor;
    compute_capability(&major, &minor);
    return arch / 10 == major && arch % 10 <= minor ? CUDA_SUCCESS : CUDA_ERROR_NO_BINARY_FOR_GPU;
}

/* PTX for sm_XX needs a device of compute capability XX or later. */
static bool ptx_fits(const char *ptx)
{
    const char *t = strstr(ptx, ".target sm_");
    int major, minor, arch = 0;
    compute_capability(&major, &minor);
    return !t || sscanf(t + 11, "%d", &arch) != 1 || arch <= major * 10 + minor;
}

static CUresult module_image(struct CUmod_st *m, const void *image)
{
    const char *text = image;
    if (!memcmp(image, "\177ELF", 4)) {
        m->size = elf_size(image);
        if (!m->size) return CUDA_ERROR_INVALID_IMAGE;
        CUresult r = cubin_fits(image);
        if (r != CUDA_SUCCESS) return r;
    } else if (starts_with(text, "//") || starts_with(text, ".version")) {
        if (!ptx_fits(text)) return CUDA_ERROR_INVALID_PTX;
        m->ptx = true;
        m->size = strlen(text) + 1;
    } else {
        return CUDA_ERROR_INVALID_IMAGE;
    }
    m->image = malloc(m->size);
    if (!m->image) return CUDA_ERROR_OUT_OF_MEMORY;
    memcpy(m->image, image, m->size);
    return CUDA_SUCCESS;
}

static CUresult module_load(CUmodule *out, const void *image)
{
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (!out || !image) return CUDA_ERROR_INVALID_VALUE;
    struct CUmod_st *m = obj_new(OBJ_MODULE, sizeof *m);
    if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
    r = module_image(m, image);
    const char *kernels = getenv("CNNC_FAKECUDA_KERNELS");
    if (r == CUDA_SUCCESS && kernels && *kernels) {
        m->lib = dlopen(kernels, RTLD_NOW | RTLD_LOCAL);
        if (!m->lib) fprintf(stderr, "fakecuda: %s\n", dlerror());
    }
    if (r != CUDA_SUCCESS) return module_free(m), r;
    *out = m;
    return CUDA_SUCCESS;
}

CUresult cuModuleLoadDataEx(CUmodule *out, const void *image, unsigned nopt, CUjit_option *opt,
                            void **values)
{
    ENTRY(cuModuleLoadDataEx, module_load(out, image));
}

/* The image defines the kernel: a PTX entry, or a name in a cubin's string table. */
static bool image_has(const struct CUmod_st *m, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i + n < m->size; i++) {
        if (memcmp(m->image + i, name, n)) continue;
        if (!m->ptx && m->image[i + n] == 0 && i > 0 && m->image[i - 1] == 0) return true;
        if (m->ptx && i >= 7 && !memcmp(m->image + i - 7, ".entry ", 7) &&
            strchr("( \n", m->image[i + n]))
            return true;
    }
    return false;
}

static void *emu_symbol(void *lib, const char *name, const char *suffix)
{
    char sym[512];
    snprintf(sym, sizeof sym, "cnnc_emu_%s%s", name, suffix);
    return lib ? dlsym(lib, sym) : NULL;
}

static CUresult function_new(struct CUmod_st *m, const char *name, CUfunction *out)
{
    void *fn = emu_symbol(m->lib, name, "");
    const int *nargs = emu_symbol(m->lib, name, "_nargs");
    const int *bytes = emu_symbol(m->lib, name, "_param_bytes");
    if (!fn || !nargs || !bytes || *nargs < 0 || *nargs > 63 || *bytes < 0 || *bytes > 4096)
        return CUDA_ERROR_NOT_FOUND;
    struct CUfunc_st *f = calloc(1, sizeof *f + strlen(name) + 1);
    if (!f) return CUDA_ERROR_OUT_OF_MEMORY;
    f->mod = m;
    memcpy(&f->fn, &fn, sizeof fn);
    f->nargs = *nargs, f->param_bytes = *bytes;
    strcpy(f->name, name);
    f->next = m->funcs, m->funcs = f;
    *out = f;
    return CUDA_SUCCESS;
}

static CUresult module_function(CUfunction *out, CUmodule m, const char *name)
{
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (!out || !name) return CUDA_ERROR_INVALID_VALUE;
    if (!obj_live(m, OBJ_MODULE)) return CUDA_ERROR_INVALID_HANDLE;
    for (struct CUfunc_st *f = m->funcs; f; f = f->next)
        if (!strcmp(f->name, name)) return *out = f, CUDA_SUCCESS;
    if (!image_has(m, name)) return CUDA_ERROR_NOT_FOUND;
    return function_new(m, name, out);
}

CUresult cuModuleGetFunction(CUfunction *out, CUmodule m, const char *name)
{
    ENTRY(cuModuleGetFunction, module_function(out, m, name));
}

CUresult cuModuleUnload(CUmodule m)
{
    ENTRY(cuModuleUnload, destroy(m, OBJ_MODULE));
}

/* ---- memory -------------------------------------------------------------------------- */

/* New memory is all ones bits (NaN as floats), so reads of what nobody wrote show up. */
static CUresult mem_alloc(CUdeviceptr *out, size_t bytes)
{
    CUresult r = need_context();
    if (r == CUDA_SUCCESS) r = need_no_capture();
    if (r != CUDA_SUCCESS) return r;
    if (!out || !bytes) return CUDA_ERROR_INVALID_VALUE;
    if (bytes > ((size_t)1 << 40)) return CUDA_ERROR_OUT_OF_MEMORY;
    size_t rounded = (bytes + 255) & ~(size_t)255;
    char *base = aligned_alloc(256, rounded);
    Alloc *a = base ? obj_new(OBJ_MEM, sizeof *a) : NULL;
    if (!a) return free(base), CUDA_ERROR_OUT_OF_MEMORY;
    a->base = base, a->size = bytes;
    memset(a->base, 0xff, rounded);
    *out = (CUdeviceptr)(uintptr_t)a->base;
    return CUDA_SUCCESS;
}

CUresult cuMemAlloc_v2(CUdeviceptr *out, size_t bytes)
{
    ENTRY(cuMemAlloc_v2, mem_alloc(out, bytes));
}

static CUresult mem_free(CUdeviceptr p)
{
    CUresult r = need_context();
    if (r == CUDA_SUCCESS) r = need_no_capture();
    if (r != CUDA_SUCCESS || !p) return r;
    Alloc *a = (Alloc *)find_alloc(p);
    if (!a || (uintptr_t)a->base != p) return CUDA_ERROR_INVALID_VALUE;
    free(a->base);
    obj_free(a);
    return CUDA_SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr p)
{
    ENTRY(cuMemFree_v2, mem_free(p));
}

/* A synchronous operation on the legacy stream. */
static CUresult sync_op(const Op *op)
{
    CUresult r = need_context();
    if (r == CUDA_SUCCESS) r = need_no_capture();
    return r == CUDA_SUCCESS ? submit(NULL, op) : r;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
    Op op = {.kind = OP_HTOD, .dst = dst, .host_src = src, .bytes = n};
    ENTRY(cuMemcpyHtoD_v2, sync_op(&op));
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s)
{
    Op op = {.kind = OP_HTOD, .dst = dst, .host_src = src, .bytes = n};
    ENTRY(cuMemcpyHtoDAsync_v2, submit(s, &op));
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s)
{
    Op op = {.kind = OP_DTOH, .host_dst = dst, .src = src, .bytes = n};
    ENTRY(cuMemcpyDtoHAsync_v2, submit(s, &op));
}

CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
    Op op = {.kind = OP_DTOD, .dst = dst, .src = src, .bytes = n};
    ENTRY(cuMemcpyDtoDAsync_v2, submit(s, &op));
}

static CUresult copy_2d(const CUDA_MEMCPY2D *c, CUstream s)
{
    if (!c) return CUDA_ERROR_INVALID_VALUE;
    Op op = {.kind = OP_2D, .copy = *c};
    return submit(s, &op);
}

CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *c, CUstream s)
{
    ENTRY(cuMemcpy2DAsync_v2, copy_2d(c, s));
}

static CUresult memset_d8(CUdeviceptr dst, unsigned char v, size_t n)
{
    CUresult r = need_context();
    if (r == CUDA_SUCCESS) r = need_no_capture();
    if (r != CUDA_SUCCESS) return r;
    if (!device_range(dst, n)) return CUDA_ERROR_INVALID_VALUE;
    memset((void *)(uintptr_t)dst, v, n);
    return CUDA_SUCCESS;
}

CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n)
{
    ENTRY(cuMemsetD8_v2, memset_d8(dst, v, n));
}

/* ---- streams, capture and graphs ----------------------------------------------------- */

static CUresult stream_create(CUstream *out, unsigned flags)
{
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (!out || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING)) return CUDA_ERROR_INVALID_VALUE;
    struct CUstream_st *s = obj_new(OBJ_STREAM, sizeof *s);
    if (!s) return CUDA_ERROR_OUT_OF_MEMORY;
    *out = s;
    return CUDA_SUCCESS;
}

CUresult cuStreamCreate(CUstream *out, unsigned flags)
{
    ENTRY(cuStreamCreate, stream_create(out, flags));
}

CUresult cuStreamDestroy_v2(CUstream s)
{
    ENTRY(cuStreamDestroy_v2, destroy(s, OBJ_STREAM));
}

static CUresult stream_sync(CUstream hs)
{
    struct CUstream_st *s;
    CUresult r = need_context();
    if (r == CUDA_SUCCESS) r = get_stream(hs, &s);
    if (r != CUDA_SUCCESS) return r;
    if (s && s->capturing) return s->invalidated = true, CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    return s ? CUDA_SUCCESS : need_no_capture();
}

CUresult cuStreamSynchronize(CUstream s)
{
    ENTRY(cuStreamSynchronize, stream_sync(s));
}

static CUresult capture_begin(CUstream hs, CUstreamCaptureMode mode)
{
    struct CUstream_st *s;
    CUresult r = need_context();
    if (r == CUDA_SUCCESS) r = get_stream(hs, &s);
    if (r != CUDA_SUCCESS) return r;
    if (!s) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    if (mode > CU_STREAM_CAPTURE_MODE_RELAXED) return CUDA_ERROR_INVALID_VALUE;
    if (s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
    s->capturing = true, s->invalidated = false;
    s->mode = mode, s->thread = pthread_self();
    if (mode == CU_STREAM_CAPTURE_MODE_GLOBAL) global_captures++;
    if (mode != CU_STREAM_CAPTURE_MODE_RELAXED) thread_captures++;
    return CUDA_SUCCESS;
}

CUresult cuStreamBeginCapture_v2(CUstream s, CUstreamCaptureMode mode)
{
    ENTRY(cuStreamBeginCapture_v2, capture_begin(s, mode));
}

static CUresult capture_finish(CUstream hs, CUgraph *out)
{
    struct CUstream_st *s;
    CUresult r = need_context();
    if (r == CUDA_SUCCESS) r = get_stream(hs, &s);
    if (r != CUDA_SUCCESS) return r;
    if (!out) return CUDA_ERROR_INVALID_VALUE;
    if (!s || !s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
    if (s->mode != CU_STREAM_CAPTURE_MODE_RELAXED && !pthread_equal(s->thread, pthread_self()))
        return CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD;
    capture_end(s);
    *out = NULL;
    struct CUgraph_st *g = s->invalidated ? NULL : obj_new(OBJ_GRAPH, sizeof *g);
    if (g) g->ops = s->ops;
    else ops_free(&s->ops);
    s->ops = (Ops){0};
    if (s->invalidated) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    if (!g) return CUDA_ERROR_OUT_OF_MEMORY;
    *out = g;
    return CUDA_SUCCESS;
}

CUresult cuStreamEndCapture(CUstream s, CUgraph *out)
{
    ENTRY(cuStreamEndCapture, capture_finish(s, out));
}

static CUresult graph_instantiate(CUgraphExec *out, CUgraph g, unsigned long long flags)
{
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (!out || flags) return CUDA_ERROR_INVALID_VALUE;
    if (!obj_live(g, OBJ_GRAPH)) return CUDA_ERROR_INVALID_HANDLE;
    struct CUgraphExec_st *e = obj_new(OBJ_EXEC, sizeof *e);
    if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
    r = ops_copy(&e->ops, &g->ops);
    if (r != CUDA_SUCCESS) return obj_free(e), r;
    *out = e;
    return CUDA_SUCCESS;
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec *out, CUgraph g, unsigned long long flags)
{
    ENTRY(cuGraphInstantiateWithFlags, graph_instantiate(out, g, flags));
}

/* Replays the graph's operations; into a capturing stream they are recorded instead. */
static CUresult graph_launch(CUgraphExec e, CUstream s)
{
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (!obj_live(e, OBJ_EXEC)) return CUDA_ERROR_INVALID_HANDLE;
    for (int i = 0; i < e->ops.n && r == CUDA_SUCCESS; i++) r = submit(s, &e->ops.v[i]);
    return r;
}

CUresult cuGraphLaunch(CUgraphExec e, CUstream s)
{
    ENTRY(cuGraphLaunch, graph_launch(e, s));
}

CUresult cuGraphExecDestroy(CUgraphExec e)
{
    ENTRY(cuGraphExecDestroy, destroy(e, OBJ_EXEC));
}

CUresult cuGraphDestroy(CUgraph g)
{
    ENTRY(cuGraphDestroy, destroy(g, OBJ_GRAPH));
}

/* ---- kernels ------------------------------------------------------------------------- */

/* Blocks are one-dimensional, as the emulation runs them (threadIdx.x only). */
static CUresult launch_check(CUfunction f, const unsigned grid[3], const unsigned block[3],
                             unsigned shared, void **params, void **extra)
{
    if (!func_live(f)) return CUDA_ERROR_INVALID_HANDLE;
    if (extra) return CUDA_ERROR_NOT_SUPPORTED;
    if (!params && args_bytes(f)) return CUDA_ERROR_INVALID_VALUE;
    if (!grid[0] || !grid[1] || !grid[2] || grid[1] > 65535 || grid[2] > 65535)
        return CUDA_ERROR_INVALID_VALUE;
    if (!block[0] || block[0] > 1024 || block[0] % 32) return CUDA_ERROR_INVALID_VALUE;
    if (block[1] != 1 || block[2] != 1) return CUDA_ERROR_NOT_SUPPORTED;
    if (shared > 48 * 1024) return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

static CUresult launch(CUfunction f, const unsigned grid[3], const unsigned block[3],
                       unsigned shared, CUstream s, void **params, void **extra)
{
    CUresult r = need_context();
    if (r == CUDA_SUCCESS) r = launch_check(f, grid, block, shared, params, extra);
    if (r != CUDA_SUCCESS) return r;
    unsigned char *args = malloc(args_bytes(f) + 1);
    if (!args) return CUDA_ERROR_OUT_OF_MEMORY;
    for (int i = 0; i < f->nargs; i++)
        memcpy(args + (size_t)i * sizeof(CUdeviceptr), params[i], sizeof(CUdeviceptr));
    if (f->param_bytes)
        memcpy(args + (size_t)f->nargs * sizeof(CUdeviceptr), params[f->nargs],
               (size_t)f->param_bytes);
    Op op = {.kind = OP_LAUNCH, .f = f, .args = args};
    memcpy(op.grid, grid, sizeof op.grid);
    memcpy(op.block, block, sizeof op.block);
    r = submit(s, &op);
    free(args);
    return r;
}

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shared, CUstream s, void **params,
                        void **extra)
{
    const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
    ENTRY(cuLaunchKernel, launch(f, grid, block, shared, s, params, extra));
}

/* ---- events -------------------------------------------------------------------------- */

static CUresult event_create(CUevent *out, unsigned flags)
{
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (!out || (flags & ~7u)) return CUDA_ERROR_INVALID_VALUE;
    struct CUevent_st *e = obj_new(OBJ_EVENT, sizeof *e);
    if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
    e->flags = flags;
    *out = e;
    return CUDA_SUCCESS;
}

CUresult cuEventCreate(CUevent *out, unsigned flags)
{
    ENTRY(cuEventCreate, event_create(out, flags));
}

static CUresult event_record(CUevent e, CUstream s)
{
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (!obj_live(e, OBJ_EVENT)) return CUDA_ERROR_INVALID_HANDLE;
    Op op = {.kind = OP_EVENT, .ev = e};
    return submit(s, &op);
}

CUresult cuEventRecord(CUevent e, CUstream s)
{
    ENTRY(cuEventRecord, event_record(e, s));
}

static CUresult event_sync(CUevent e)
{
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    return obj_live(e, OBJ_EVENT) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuEventSynchronize(CUevent e)
{
    ENTRY(cuEventSynchronize, event_sync(e));
}

static CUresult elapsed(float *ms, CUevent a, CUevent b)
{
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (!ms) return CUDA_ERROR_INVALID_VALUE;
    if (!obj_live(a, OBJ_EVENT) || !obj_live(b, OBJ_EVENT)) return CUDA_ERROR_INVALID_HANDLE;
    if ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING) return CUDA_ERROR_INVALID_HANDLE;
    if (!a->recorded || !b->recorded) return CUDA_ERROR_INVALID_HANDLE;
    *ms = (float)(b->ms - a->ms);
    return CUDA_SUCCESS;
}

CUresult cuEventElapsedTime_v2(float *ms, CUevent a, CUevent b)
{
    ENTRY(cuEventElapsedTime_v2, elapsed(ms, a, b));
}

CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b)
{
    ENTRY(cuEventElapsedTime, elapsed(ms, a, b));
}

CUresult cuEventDestroy_v2(CUevent e)
{
    ENTRY(cuEventDestroy_v2, destroy(e, OBJ_EVENT));
}
