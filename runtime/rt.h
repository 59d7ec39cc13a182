/* rt.h: the contract between generated model code and the runtime linked into
 * every model.so. Generated code defines `cnnc_model` (an RtModel) and calls
 * rt_run_kernel; the runtime implements include/cnnc/model.h on top of it.
 * The structs generated code builds (RtModel and the tables it points to) are
 * in cnnc/abi.h. */
#ifndef CNNC_RT_H
#define CNNC_RT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cnnc/abi.h"
#include "cnnc/model.h"

/* Runs fn over [0, n) split statically and evenly across the pool's threads
 * (the caller's thread takes a share). Returns when all items are done.
 * Chunk i of min(n, threads) contiguous chunks runs on thread i, the caller's
 * being chunk 0, with thread i's scratch; n <= 0 does nothing; a call made while
 * the pool is busy (from inside one of its kernels, or from a second thread) runs
 * fn(args, 0, n, NULL) on the calling thread. No allocation, no thread creation
 * per call. */
void rt_parallel_for(RtPool *pool, int64_t n, RtKernel fn, void *args);

/* Every kernel call of the generated `run` goes through here: kernel number k
 * (index into RtModel.kernels) over n work items. n == 1 runs fn on the calling
 * thread; else rt_parallel_for. When profiling is on for this pool, the wall
 * time of the call is added to the kernel's counters. */
void rt_run_kernel(RtPool *pool, int32_t k, int64_t n, RtKernel fn, void *args);

/* Defined by the generated code of each model. */
extern const RtModel cnnc_model;

/* An instance over any model description (model.so's own `cnnc_model`, or one
 * the JIT produced in-process). cnn_model_create(opt, out) ==
 * rt_model_create(&cnnc_model, opt, out). `desc` must outlive the instance. */
cnn_status rt_model_create(const RtModel *desc, const cnn_options *opt, cnn_model **out);
/* The instance's activation arena (desc->arena_bytes bytes), for per-node
 * inspection after a run; NULL for NULL. */
char *rt_model_arena(const cnn_model *m);

/* Shared by model.c and train.c. An explicit thread count may go up to RT_MAX_THREADS. */
#define RT_MAX_THREADS 1024
/* Bytes of a tensor, or -1 if its description is malformed or overflows. */
int64_t rt_tensor_bytes(const RtTensor *t);
/* CNN_OK, or why a model description is unusable (version, counts, tables). */
cnn_status rt_check_model(const RtModel *rt);
/* Takes an instance's busy flag, or sets cnn_last_error and returns CNN_ERR_BUSY
 * when another thread holds it; rt_release gives it back. */
cnn_status rt_acquire(atomic_flag *busy);
void rt_release(atomic_flag *busy);
/* `requested` threads, or (0) one per online core up to a limit. */
int32_t rt_threads(int32_t requested);
/* A description of tensor t as an f32 tensor (name and dims point into t). */
void rt_fill_info(const RtTensor *t, cnn_tensor_info *info);

/* Thread pool of the runtime (also used directly by tests and the JIT). */
RtPool *rt_pool_new(int32_t nthreads); /* NULL on failure; 1: no worker threads */
void rt_pool_free(RtPool *pool);
int32_t rt_pool_threads(const RtPool *pool);
/* Gives each thread of the pool at least `bytes` of scratch (the kernels' `scratch`
 * argument), zeroed; false when out of memory (what it had is kept). Not while a
 * call is in flight. */
bool rt_pool_reserve_scratch(RtPool *pool, int64_t bytes);
/* `bytes` of 64-byte-aligned memory for free(), on huge pages where it is large
 * enough and the system gives them. */
void *rt_alloc_large(size_t bytes);

/* Per-kernel profiling counters of a pool (runtime-internal): while `c` is set,
 * rt_run_kernel(pool, k, ...) adds to c[k] (k < n; others are not counted). */
typedef struct RtCounter {
    int64_t calls;
    int64_t ns;
} RtCounter;
void rt_pool_set_counters(RtPool *pool, RtCounter *c, int32_t n);

/* The instance of a training model.so (cnnc/train.h) over its description:
 * cnn_trainer_create(opt, out) == rt_trainer_create(&cnnc_train, opt, out). */
struct cnn_train_options;
struct cnn_trainer;
cnn_status rt_trainer_create(const RtTrain *desc, const struct cnn_train_options *opt,
                             struct cnn_trainer **out);

/* Sets the calling thread's cnn_last_error (printf-style; truncated). */
void rt_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- CUDA models (runtime/gpu*.c); the image format is runtime/rt_gpu.h ---- */

typedef struct RtGpu RtGpu;

/* The description of an image's model for the common code of model.c (inputs,
 * outputs, kernel table; run is NULL), owned by the RtGpu. */
const RtModel *rt_gpu_desc(const RtGpu *g);
/* One run; `counters` (one per kernel) non-NULL times each kernel on the GPU.
 * Buffers were checked by the caller against the description. */
cnn_status rt_gpu_run(RtGpu *g, const cnn_tensor *inputs, const cnn_tensor *outputs,
                      RtCounter *counters);
void rt_gpu_free(RtGpu *g);
/* Wraps a created RtGpu into an instance (model.c); frees it on failure. */
cnn_status rt_model_from_gpu(RtGpu *g, cnn_model **out);

#endif
