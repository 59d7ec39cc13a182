/* fake.h: what the parts of the fake CUDA driver share (fakecuda.c: the entry points,
 * state.c: the objects, checks and stream operations). Everything declared here is
 * hidden: the library exports the driver's entry points and the test hooks only. */
#ifndef CNNC_FAKECUDA_FAKE_H
#define CNNC_FAKECUDA_FAKE_H

#include <cuda.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#undef cuEventElapsedTime
CUresult cuEventElapsedTime(float *ms, CUevent start, CUevent end);
int fakecuda_live(void);
int fakecuda_calls(const char *name);
void fakecuda_fail(const char *name, int k);
void fakecuda_reset(void);

#pragma GCC visibility push(hidden)

/* ---- entry points: each counted, and failing on request with its natural error --------- */

#define FAKE_ENTRIES(X)                                                                        \
    X(cuInit, CUDA_ERROR_NO_DEVICE) X(cuDriverGetVersion, CUDA_ERROR_UNKNOWN)                  \
    X(cuDeviceGetCount, CUDA_ERROR_UNKNOWN) X(cuDeviceGet, CUDA_ERROR_UNKNOWN)                 \
    X(cuDeviceGetAttribute, CUDA_ERROR_UNKNOWN) X(cuDeviceGetName, CUDA_ERROR_UNKNOWN)         \
    X(cuDevicePrimaryCtxRetain, CUDA_ERROR_UNKNOWN)                                            \
    X(cuDevicePrimaryCtxRelease_v2, CUDA_ERROR_UNKNOWN)                                        \
    X(cuCtxPushCurrent_v2, CUDA_ERROR_UNKNOWN) X(cuCtxPopCurrent_v2, CUDA_ERROR_UNKNOWN)       \
    X(cuModuleLoadDataEx, CUDA_ERROR_NO_BINARY_FOR_GPU)                                        \
    X(cuModuleGetFunction, CUDA_ERROR_UNKNOWN) X(cuModuleUnload, CUDA_ERROR_UNKNOWN)           \
    X(cuMemAlloc_v2, CUDA_ERROR_OUT_OF_MEMORY) X(cuMemFree_v2, CUDA_ERROR_UNKNOWN)             \
    X(cuMemcpyHtoD_v2, CUDA_ERROR_UNKNOWN) X(cuMemcpyHtoDAsync_v2, CUDA_ERROR_UNKNOWN)         \
    X(cuMemcpyDtoHAsync_v2, CUDA_ERROR_UNKNOWN) X(cuMemcpyDtoDAsync_v2, CUDA_ERROR_UNKNOWN)    \
    X(cuMemcpy2DAsync_v2, CUDA_ERROR_UNKNOWN) X(cuMemsetD8_v2, CUDA_ERROR_UNKNOWN)             \
    X(cuStreamCreate, CUDA_ERROR_UNKNOWN) X(cuStreamDestroy_v2, CUDA_ERROR_UNKNOWN)            \
    X(cuStreamSynchronize, CUDA_ERROR_UNKNOWN) X(cuStreamBeginCapture_v2, CUDA_ERROR_UNKNOWN)  \
    X(cuStreamEndCapture, CUDA_ERROR_UNKNOWN)                                                  \
    X(cuGraphInstantiateWithFlags, CUDA_ERROR_UNKNOWN)                                         \
    X(cuGraphLaunch, CUDA_ERROR_LAUNCH_FAILED) X(cuGraphExecDestroy, CUDA_ERROR_UNKNOWN)       \
    X(cuGraphDestroy, CUDA_ERROR_UNKNOWN) X(cuLaunchKernel, CUDA_ERROR_LAUNCH_FAILED)          \
    X(cuEventCreate, CUDA_ERROR_UNKNOWN) X(cuEventRecord, CUDA_ERROR_UNKNOWN)                  \
    X(cuEventSynchronize, CUDA_ERROR_UNKNOWN) X(cuEventElapsedTime_v2, CUDA_ERROR_UNKNOWN)     \
    X(cuEventElapsedTime, CUDA_ERROR_UNKNOWN) X(cuEventDestroy_v2, CUDA_ERROR_UNKNOWN)         \
    X(cuGetErrorName, CUDA_ERROR_UNKNOWN) X(cuGetErrorString, CUDA_ERROR_UNKNOWN)

#define X_ID(name, err) E_##name,
enum { FAKE_ENTRIES(X_ID) E_COUNT };

CUresult enter(int id); /* locks; the injected failure, if this call is to fail */
CUresult leave(CUresult r); /* unlocks */

/* The body of an entry point: count it, then `call` unless it is to fail. */
#define ENTRY(name, call)                                                                      \
    CUresult r_ = enter(E_##name);                                                             \
    return leave(r_ != CUDA_SUCCESS ? r_ : (call))

/* ---- objects ------------------------------------------------------------------------- */

typedef enum { OBJ_MEM, OBJ_MODULE, OBJ_STREAM, OBJ_GRAPH, OBJ_EXEC, OBJ_EVENT } ObjKind;

/* Every live object is on one list: handles are checked against it and leaks counted. */
typedef struct Obj {
    ObjKind kind;
    struct Obj *prev, *next;
} Obj;

void *obj_new(ObjKind kind, size_t size); /* zeroed, on the list; NULL without memory */
void obj_free(void *p);
bool obj_live(const void *p, ObjKind kind);
CUresult destroy(void *p, ObjKind kind); /* a live object of `kind`, with what it owns */

typedef struct Alloc {
    Obj o;
    char *base;
    size_t size;
} Alloc;

struct CUfunc_st {
    CUmodule mod;
    struct CUfunc_st *next;
    void (*fn)(const unsigned *grid, const unsigned *block, void **params);
    int nargs, param_bytes;
    char name[];
};

struct CUmod_st {
    Obj o;
    char *image; /* a copy of what was loaded */
    size_t size;
    bool ptx;
    void *lib; /* the emulated kernels, or NULL */
    struct CUfunc_st *funcs;
};

struct CUctx_st {
    int refs; /* primary context retains */
};

/* A stream operation, run at once or recorded by a capture. */
typedef enum { OP_LAUNCH, OP_HTOD, OP_DTOH, OP_DTOD, OP_2D, OP_EVENT } OpKind;
typedef struct Op {
    OpKind kind;
    CUfunction f;
    unsigned grid[3], block[3];
    unsigned char *args; /* pointer values, then the by-value parameter */
    CUdeviceptr dst, src;
    const void *host_src;
    void *host_dst;
    size_t bytes;
    CUDA_MEMCPY2D copy;
    CUevent ev;
} Op;

typedef struct Ops {
    Op *v;
    int n, cap;
} Ops;

struct CUstream_st {
    Obj o;
    bool capturing, invalidated;
    CUstreamCaptureMode mode;
    pthread_t thread; /* that began the capture */
    Ops ops;
};

struct CUgraph_st {
    Obj o;
    Ops ops;
};

struct CUgraphExec_st {
    Obj o;
    Ops ops;
};

struct CUevent_st {
    Obj o;
    unsigned flags;
    bool recorded;
    double ms; /* CLOCK_MONOTONIC when recorded */
};

extern bool initialized; /* cuInit was called */
extern struct CUctx_st primary;
extern _Thread_local CUcontext ctx_stack[64];
extern _Thread_local int ctx_depth;
extern _Thread_local int thread_captures; /* non-relaxed captures this thread began */
extern int global_captures;

/* ---- checks and operations ------------------------------------------------------------- */

CUresult need_init(void);
CUresult need_context(void);    /* a live context is current */
CUresult need_no_capture(void); /* no capture this call could break */
const Alloc *find_alloc(CUdeviceptr p);
bool device_range(CUdeviceptr p, size_t n); /* inside one live allocation */
CUresult get_stream(CUstream s, struct CUstream_st **out); /* NULL: the default stream */
bool func_live(CUfunction f);
size_t args_bytes(CUfunction f); /* of a launch's parameter values */
CUresult submit(CUstream s, const Op *op); /* run now, or recorded by a capture */
void ops_free(Ops *ops);
CUresult ops_copy(Ops *dst, const Ops *src);
void module_free(struct CUmod_st *m);
void capture_end(struct CUstream_st *s); /* the stream stops capturing */
CUresult error_text(CUresult e, bool name, const char **out);

#pragma GCC visibility pop

#endif
