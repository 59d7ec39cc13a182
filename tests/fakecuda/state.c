/* state.c: what the fake CUDA driver (fakecuda.c) keeps: the count of calls of each entry
 * point and the failures asked of them, the list of live objects, the checks of handles,
 * contexts and device ranges, and the stream operations, run at once or recorded by a
 * capture for a graph to replay. */
#include "fake.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- entry points: counted, and failing on request ---------------------------------- */

#define X_NAME(name, err) #name,
static const char *const entry_names[] = {FAKE_ENTRIES(X_NAME)};
#define X_ERR(name, err) err,
static const CUresult entry_errors[] = {FAKE_ENTRIES(X_ERR)};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long calls[E_COUNT];
static int fail_entry = -1; /* the entry point that fails when its count reaches fail_at */
static long fail_at;
static bool env_read;
bool initialized;

static int entry_index(const char *name)
{
    for (int i = 0; name && i < E_COUNT; i++)
        if (!strcmp(entry_names[i], name)) return i;
    return -1;
}

static void set_failure(const char *name, long k)
{
    fail_entry = entry_index(name);
    if (name && fail_entry < 0) fprintf(stderr, "fakecuda: no entry point '%s'\n", name);
    if (fail_entry >= 0) fail_at = calls[fail_entry] + (k > 0 ? k : 1);
}

/* CNNC_FAKECUDA_FAIL="NAME" or "NAME:K", read at the first call. */
static void read_env(void)
{
    env_read = true;
    const char *spec = getenv("CNNC_FAKECUDA_FAIL");
    if (!spec || !*spec) return;
    char name[64];
    size_t len = strcspn(spec, ":");
    if (len >= sizeof name) return;
    memcpy(name, spec, len);
    name[len] = 0;
    set_failure(name, spec[len] == ':' ? strtol(spec + len + 1, NULL, 10) : 1);
}

CUresult enter(int id)
{
    pthread_mutex_lock(&lock);
    if (!env_read) read_env();
    calls[id]++;
    if (id == fail_entry && calls[id] == fail_at) {
        fail_entry = -1;
        return entry_errors[id];
    }
    return CUDA_SUCCESS;
}

CUresult leave(CUresult r)
{
    pthread_mutex_unlock(&lock);
    return r;
}

/* ---- objects ------------------------------------------------------------------------- */

static Obj objects = {0, &objects, &objects};

void *obj_new(ObjKind kind, size_t size)
{
    Obj *o = calloc(1, size);
    if (!o) return NULL;
    o->kind = kind;
    o->prev = objects.prev, o->next = &objects;
    objects.prev->next = o, objects.prev = o;
    return o;
}

void obj_free(void *p)
{
    Obj *o = p;
    o->prev->next = o->next, o->next->prev = o->prev;
    free(o);
}

bool obj_live(const void *p, ObjKind kind)
{
    for (const Obj *o = objects.next; o != &objects; o = o->next)
        if (o == p && o->kind == kind) return true;
    return false;
}

struct CUctx_st primary;
_Thread_local CUcontext ctx_stack[64];
_Thread_local int ctx_depth;
_Thread_local int thread_captures; /* non-relaxed captures this thread began */
int global_captures;

int fakecuda_live(void)
{
    pthread_mutex_lock(&lock);
    int n = primary.refs;
    for (const Obj *o = objects.next; o != &objects; o = o->next) n++;
    pthread_mutex_unlock(&lock);
    return n;
}

int fakecuda_calls(const char *name)
{
    pthread_mutex_lock(&lock);
    int i = entry_index(name), n = i < 0 ? -1 : (int)calls[i];
    pthread_mutex_unlock(&lock);
    return n;
}

void fakecuda_fail(const char *name, int k)
{
    pthread_mutex_lock(&lock);
    env_read = true;
    set_failure(name, k);
    pthread_mutex_unlock(&lock);
}

void fakecuda_reset(void)
{
    pthread_mutex_lock(&lock);
    env_read = true;
    memset(calls, 0, sizeof calls);
    fail_entry = -1;
    pthread_mutex_unlock(&lock);
}

/* ---- state checks -------------------------------------------------------------------- */

CUresult need_init(void)
{
    return initialized ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED;
}

CUresult need_context(void)
{
    if (!initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (ctx_depth == 0 || ctx_stack[ctx_depth - 1]->refs <= 0) return CUDA_ERROR_INVALID_CONTEXT;
    return CUDA_SUCCESS;
}

/* Calls that may synchronize with the legacy stream (allocation, synchronous copies) are
 * refused while a capture they could break is in progress, and invalidate it. */
CUresult need_no_capture(void)
{
    if (!thread_captures && !global_captures) return CUDA_SUCCESS;
    for (Obj *o = objects.next; o != &objects; o = o->next) {
        struct CUstream_st *s = (struct CUstream_st *)o;
        if (o->kind == OBJ_STREAM && s->capturing &&
            (s->mode == CU_STREAM_CAPTURE_MODE_GLOBAL ||
             pthread_equal(s->thread, pthread_self())))
            s->invalidated = true;
    }
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}

const Alloc *find_alloc(CUdeviceptr p)
{
    for (const Obj *o = objects.next; o != &objects; o = o->next) {
        const Alloc *a = (const Alloc *)o;
        if (o->kind == OBJ_MEM && (uintptr_t)a->base <= p && p <= (uintptr_t)a->base + a->size)
            return a;
    }
    return NULL;
}

/* [p, p + n) lies inside one live allocation. */
bool device_range(CUdeviceptr p, size_t n)
{
    const Alloc *a = find_alloc(p);
    return a && n <= (uintptr_t)a->base + a->size - p;
}

/* 0, CU_STREAM_LEGACY and CU_STREAM_PER_THREAD are the default stream (*out = NULL). */
CUresult get_stream(CUstream s, struct CUstream_st **out)
{
    *out = NULL;
    if (s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) return CUDA_SUCCESS;
    if (!obj_live(s, OBJ_STREAM)) return CUDA_ERROR_INVALID_HANDLE;
    *out = s;
    return CUDA_SUCCESS;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* ---- operations ---------------------------------------------------------------------- */

bool func_live(CUfunction f)
{
    for (const Obj *o = objects.next; o != &objects; o = o->next)
        if (o->kind == OBJ_MODULE)
            for (const struct CUfunc_st *g = ((const struct CUmod_st *)o)->funcs; g; g = g->next)
                if (g == f) return true;
    return false;
}

size_t args_bytes(CUfunction f)
{
    return (size_t)f->nargs * sizeof(CUdeviceptr) + (size_t)f->param_bytes;
}

static CUresult run_launch(const Op *op)
{
    if (!func_live(op->f)) return CUDA_ERROR_INVALID_HANDLE;
    void *params[64];
    for (int i = 0; i < op->f->nargs; i++) {
        CUdeviceptr p;
        memcpy(&p, op->args + i * sizeof p, sizeof p);
        if (p && !find_alloc(p)) return CUDA_ERROR_ILLEGAL_ADDRESS;
        params[i] = op->args + i * sizeof p;
    }
    params[op->f->nargs] = op->args + op->f->nargs * sizeof(CUdeviceptr);
    op->f->fn(op->grid, op->block, params);
    return CUDA_SUCCESS;
}

/* The first byte of row 0 on either side of a 2D copy; device sides are range-checked. */
static CUresult copy_side(CUmemorytype type, const void *host, CUdeviceptr dev, size_t x,
                          size_t y, size_t pitch, size_t width, size_t height, char **at)
{
    size_t extent = height ? (height - 1) * pitch + width : 0, start = y * pitch + x;
    if (height > 1 && pitch < width) return CUDA_ERROR_INVALID_VALUE;
    switch (type) {
    case CU_MEMORYTYPE_HOST:
        if (!host) return CUDA_ERROR_INVALID_VALUE;
        *at = (char *)host + start;
        return CUDA_SUCCESS;
    case CU_MEMORYTYPE_DEVICE:
    case CU_MEMORYTYPE_UNIFIED:
        if (!device_range(dev + start, extent)) return CUDA_ERROR_INVALID_VALUE;
        *at = (char *)(uintptr_t)(dev + start);
        return CUDA_SUCCESS;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
}

static CUresult run_2d(const CUDA_MEMCPY2D *c, bool check_only)
{
    char *src, *dst;
    CUresult r = copy_side(c->srcMemoryType, c->srcHost, c->srcDevice, c->srcXInBytes, c->srcY,
                           c->srcPitch, c->WidthInBytes, c->Height, &src);
    if (r == CUDA_SUCCESS)
        r = copy_side(c->dstMemoryType, c->dstHost, c->dstDevice, c->dstXInBytes, c->dstY,
                      c->dstPitch, c->WidthInBytes, c->Height, &dst);
    for (size_t row = 0; r == CUDA_SUCCESS && !check_only && row < c->Height; row++)
        memmove(dst + row * c->dstPitch, src + row * c->srcPitch, c->WidthInBytes);
    return r;
}

/* Checks an operation's operands, then (unless `check_only`) performs it. */
static CUresult run_op(const Op *op, bool check_only)
{
    void *d = (void *)(uintptr_t)op->dst, *s = (void *)(uintptr_t)op->src;
    switch (op->kind) {
    case OP_LAUNCH: return check_only ? CUDA_SUCCESS : run_launch(op);
    case OP_2D: return run_2d(&op->copy, check_only);
    case OP_EVENT:
        if (!obj_live(op->ev, OBJ_EVENT)) return CUDA_ERROR_INVALID_HANDLE;
        if (!check_only) op->ev->recorded = true, op->ev->ms = now_ms();
        return CUDA_SUCCESS;
    case OP_HTOD:
        if (!device_range(op->dst, op->bytes) || !op->host_src) return CUDA_ERROR_INVALID_VALUE;
        if (!check_only) memcpy(d, op->host_src, op->bytes);
        return CUDA_SUCCESS;
    case OP_DTOH:
        if (!device_range(op->src, op->bytes) || !op->host_dst) return CUDA_ERROR_INVALID_VALUE;
        if (!check_only) memcpy(op->host_dst, s, op->bytes);
        return CUDA_SUCCESS;
    case OP_DTOD:
        if (!device_range(op->src, op->bytes) || !device_range(op->dst, op->bytes))
            return CUDA_ERROR_INVALID_VALUE;
        if (!check_only) memmove(d, s, op->bytes);
        return CUDA_SUCCESS;
    }
    return CUDA_ERROR_INVALID_VALUE;
}

static void op_free(Op *op)
{
    free(op->args);
    op->args = NULL;
}

void ops_free(Ops *ops)
{
    for (int i = 0; i < ops->n; i++) op_free(&ops->v[i]);
    free(ops->v);
    *ops = (Ops){0};
}

/* Appends a copy of `op` (its own copy of the arguments). */
static CUresult ops_add(Ops *ops, const Op *op)
{
    if (ops->n == ops->cap) {
        int cap = ops->cap ? 2 * ops->cap : 16;
        Op *v = realloc(ops->v, (size_t)cap * sizeof *v);
        if (!v) return CUDA_ERROR_OUT_OF_MEMORY;
        ops->v = v, ops->cap = cap;
    }
    Op *dst = &ops->v[ops->n];
    *dst = *op;
    if (op->kind == OP_LAUNCH) {
        size_t n = args_bytes(op->f);
        dst->args = malloc(n ? n : 1);
        if (!dst->args) return CUDA_ERROR_OUT_OF_MEMORY;
        memcpy(dst->args, op->args, n);
    }
    ops->n++;
    return CUDA_SUCCESS;
}

CUresult ops_copy(Ops *dst, const Ops *src)
{
    for (int i = 0; i < src->n; i++) {
        CUresult r = ops_add(dst, &src->v[i]);
        if (r != CUDA_SUCCESS) return ops_free(dst), r;
    }
    return CUDA_SUCCESS;
}

/* A stream runs what it is given at once, unless it is capturing: then it records it. */
CUresult submit(CUstream hs, const Op *op)
{
    CUresult r = need_context();
    struct CUstream_st *s = NULL;
    if (r == CUDA_SUCCESS) r = get_stream(hs, &s);
    if (r == CUDA_SUCCESS) r = run_op(op, true);
    if (r != CUDA_SUCCESS || !s || !s->capturing) return r == CUDA_SUCCESS ? run_op(op, false) : r;
    if (s->invalidated) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    r = ops_add(&s->ops, op);
    if (r != CUDA_SUCCESS) s->invalidated = true;
    return r;
}

/* ---- errors -------------------------------------------------------------------------- */

#define FAKE_ERRORS(X)                                                                         \
    X(CUDA_SUCCESS, "no error")                                                                \
    X(CUDA_ERROR_INVALID_VALUE, "invalid argument")                                            \
    X(CUDA_ERROR_OUT_OF_MEMORY, "out of memory")                                               \
    X(CUDA_ERROR_NOT_INITIALIZED, "initialization error")                                      \
    X(CUDA_ERROR_DEINITIALIZED, "driver shutting down")                                        \
    X(CUDA_ERROR_STUB_LIBRARY, "CUDA driver is a stub library")                                \
    X(CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected")                              \
    X(CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal")                                     \
    X(CUDA_ERROR_INVALID_IMAGE, "device kernel image is invalid")                              \
    X(CUDA_ERROR_INVALID_CONTEXT, "invalid device context")                                    \
    X(CUDA_ERROR_NO_BINARY_FOR_GPU, "no kernel image is available for execution on the device") \
    X(CUDA_ERROR_INVALID_PTX, "a PTX JIT compilation failed")                                  \
    X(CUDA_ERROR_UNSUPPORTED_PTX_VERSION,                                                      \
      "the provided PTX was compiled with an unsupported toolchain.")                          \
    X(CUDA_ERROR_INVALID_SOURCE, "device kernel image is invalid")                             \
    X(CUDA_ERROR_INVALID_HANDLE, "invalid resource handle")                                    \
    X(CUDA_ERROR_ILLEGAL_STATE, "the operation cannot be performed in the present state")      \
    X(CUDA_ERROR_NOT_FOUND, "named symbol not found")                                          \
    X(CUDA_ERROR_NOT_READY, "device not ready")                                                \
    X(CUDA_ERROR_ILLEGAL_ADDRESS, "an illegal memory access was encountered")                  \
    X(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "too many resources requested for launch")           \
    X(CUDA_ERROR_LAUNCH_TIMEOUT, "the launch timed out and was terminated")                    \
    X(CUDA_ERROR_LAUNCH_FAILED, "unspecified launch failure")                                  \
    X(CUDA_ERROR_NOT_PERMITTED, "operation not permitted")                                     \
    X(CUDA_ERROR_NOT_SUPPORTED, "operation not supported")                                     \
    X(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "operation not permitted when stream is capturing") \
    X(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,                                                   \
      "operation failed due to a previous error during capture")                               \
    X(CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD,                                                  \
      "attempt to terminate a thread-local capture sequence from another thread")              \
    X(CUDA_ERROR_CAPTURED_EVENT,                                                               \
      "operation not permitted on an event last recorded in a capturing stream")               \
    X(CUDA_ERROR_UNKNOWN, "unknown error")

CUresult error_text(CUresult e, bool name, const char **out)
{
#define X_CASE(code, text)                                                                     \
    case code: *out = name ? #code : text; return CUDA_SUCCESS;
    if (!out) return CUDA_ERROR_INVALID_VALUE;
    switch (e) {
        FAKE_ERRORS(X_CASE)
    default: *out = NULL; return CUDA_ERROR_INVALID_VALUE;
    }
#undef X_CASE
}

void module_free(struct CUmod_st *m)
{
    while (m->funcs) {
        struct CUfunc_st *f = m->funcs;
        m->funcs = f->next;
        free(f);
    }
    if (m->lib) dlclose(m->lib);
    free(m->image);
    obj_free(m);
}

void capture_end(struct CUstream_st *s)
{
    if (s->mode == CU_STREAM_CAPTURE_MODE_GLOBAL) global_captures--;
    if (s->mode != CU_STREAM_CAPTURE_MODE_RELAXED && pthread_equal(s->thread, pthread_self()))
        thread_captures--;
    s->capturing = false;
}

/* A live object of `kind` goes, with what it owns. */
CUresult destroy(void *p, ObjKind kind)
{
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (!obj_live(p, kind)) return CUDA_ERROR_INVALID_HANDLE;
    switch (kind) {
    case OBJ_MODULE: module_free(p); return CUDA_SUCCESS;
    case OBJ_STREAM:
        if (((CUstream)p)->capturing) capture_end(p);
        ops_free(&((CUstream)p)->ops);
        break;
    case OBJ_GRAPH: ops_free(&((CUgraph)p)->ops); break;
    case OBJ_EXEC: ops_free(&((CUgraphExec)p)->ops); break;
    case OBJ_MEM:
    case OBJ_EVENT: break;
    }
    obj_free(p);
    return CUDA_SUCCESS;
}
