/* model.c: the public API of a model.so (include/cnnc/model.h) on top of a
 * model description (RtModel). Everything is checked here, once, so the generated
 * code can trust its buffers; nothing prints, aborts or allocates during a run. */
#include "cnnc/model.h"
#include "cnnc/train.h"
#include "rt.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CNN_EXPORT __attribute__((visibility("default")))

/* num_threads 0 takes one thread per online core, up to RT_AUTO_THREADS. */
#define RT_AUTO_THREADS 64

struct cnn_model {
    const RtModel *rt;
    RtPool *pool;
    char *arena;
    int32_t nthreads;
    const float **in; /* argument arrays of rt->run, filled by each run */
    float **out;
    RtCounter *counters; /* one per kernel, handed to the pool while profiling */
    RtGpu *gpu;          /* a CUDA model's device state; NULL on the CPU */
    int profiling;
    atomic_flag busy; /* set while a run (or a profiling switch) uses the instance */
};

static _Thread_local char last_error[512];

void rt_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

CNN_EXPORT const char *cnn_last_error(void)
{
    return last_error;
}

int64_t rt_tensor_bytes(const RtTensor *t)
{
    if (t->rank < 0 || t->rank > RT_MAX_RANK)
        return -1;
    int64_t count = 1;
    for (int32_t i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0 || (t->dims[i] > 0 && count > INT64_MAX / 4 / t->dims[i]))
            return -1;
        count *= t->dims[i];
    }
    return count * (int64_t)sizeof(float);
}

cnn_status rt_check_model(const RtModel *rt)
{
    if (rt->abi_version != RT_ABI_VERSION)
        return CNN_ERR_VERSION;
    if (rt->ninputs < 0 || rt->noutputs < 0 || rt->arena_bytes < 0 || !rt->run ||
        (rt->ninputs > 0 && !rt->inputs) || (rt->noutputs > 0 && !rt->outputs))
        return CNN_ERR_INVALID_ARGUMENT;
    for (int32_t i = 0; i < rt->ninputs; i++)
        if (rt_tensor_bytes(&rt->inputs[i]) < 0)
            return CNN_ERR_INVALID_ARGUMENT;
    for (int32_t i = 0; i < rt->noutputs; i++)
        if (rt_tensor_bytes(&rt->outputs[i]) < 0)
            return CNN_ERR_INVALID_ARGUMENT;
    if (rt->nkernels < 0 || (rt->nkernels > 0 && !rt->kernels))
        return CNN_ERR_INVALID_ARGUMENT;
    if (rt->weights_bytes < 0 || (rt->weights_bytes > 0 && !rt->weights) ||
        rt->scratch_bytes < 0)
        return CNN_ERR_INVALID_ARGUMENT;
    return CNN_OK;
}

/* Each invalid field says so in cnn_last_error. */
static bool options_valid(const cnn_options *opt)
{
    if (opt->device != CNN_DEVICE_CPU && opt->device != CNN_DEVICE_DEFAULT)
        rt_set_error("device %d is not a cnn_device", (int)opt->device);
    else if (opt->num_threads < 0 || opt->num_threads > RT_MAX_THREADS)
        rt_set_error("num_threads %d is outside [0, %d] (0: one per core)", (int)opt->num_threads,
                     RT_MAX_THREADS);
    else if (opt->device_index < 0)
        rt_set_error("device_index %d is negative", (int)opt->device_index);
    else if (opt->flags & CNN_DEVICE_POINTERS)
        rt_set_error("CNN_DEVICE_POINTERS is for CUDA models; this one runs on the CPU");
    else if (opt->flags != 0)
        rt_set_error("unknown flags 0x%x", (unsigned)opt->flags);
    else
        return true;
    return false;
}

int32_t rt_threads(int32_t requested)
{
    if (requested > 0)
        return requested;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1 ? 1 : cores > RT_AUTO_THREADS ? RT_AUTO_THREADS : (int32_t)cores;
}

static cnn_status check_options(const cnn_options *opt, int32_t *nthreads)
{
    if (opt->api_version != CNN_API_VERSION) {
        rt_set_error("options of API version %u; this model.so implements version %d",
                     (unsigned)opt->api_version, CNN_API_VERSION);
        return CNN_ERR_VERSION;
    }
    if (opt->device == CNN_DEVICE_CUDA) {
        rt_set_error("this model was compiled for the CPU; compile it with cnnc --target=cuda "
                     "to run it on a CUDA device");
        return CNN_ERR_DEVICE;
    }
    if (!options_valid(opt))
        return CNN_ERR_INVALID_ARGUMENT;
    *nthreads = rt_threads(opt->num_threads);
    return CNN_OK;
}

/* The arena is touched once here, so the first run does not pay for its page
 * faults and never reads uninitialised bytes. */
static cnn_status allocate(cnn_model *m)
{
    m->in = calloc((size_t)m->rt->ninputs + 1, sizeof *m->in);
    m->out = calloc((size_t)m->rt->noutputs + 1, sizeof *m->out);
    m->counters = calloc((size_t)m->rt->nkernels + 1, sizeof *m->counters);
    if (!m->in || !m->out || !m->counters)
        return CNN_ERR_OUT_OF_MEMORY;
    if (m->rt->arena_bytes > 0) {
        void *arena = (uint64_t)m->rt->arena_bytes > SIZE_MAX
                          ? NULL
                          : rt_alloc_large((size_t)m->rt->arena_bytes);
        if (!arena)
            return CNN_ERR_OUT_OF_MEMORY;
        m->arena = arena;
        memset(m->arena, 0, (size_t)m->rt->arena_bytes);
    }
    m->pool = rt_pool_new(m->nthreads);
    if (!m->pool)
        return CNN_ERR_THREADS;
    return rt_pool_reserve_scratch(m->pool, m->rt->scratch_bytes) ? CNN_OK
                                                                   : CNN_ERR_OUT_OF_MEMORY;
}

cnn_status rt_model_create(const RtModel *desc, const cnn_options *opt, cnn_model **out)
{
    if (!out)
        return CNN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    rt_set_error("%s", "");
    cnn_options defaults;
    if (!opt) {
        cnn_options_init(&defaults);
        opt = &defaults;
    }
    int32_t nthreads;
    cnn_status s = check_options(opt, &nthreads);
    if (s == CNN_OK)
        s = desc ? rt_check_model(desc) : CNN_ERR_INVALID_ARGUMENT;
    if (s != CNN_OK)
        return s;
    cnn_model *m = calloc(1, sizeof *m);
    if (!m)
        return CNN_ERR_OUT_OF_MEMORY;
    atomic_flag_clear(&m->busy);
    m->rt = desc;
    m->nthreads = nthreads;
    s = allocate(m);
    if (s != CNN_OK) {
        cnn_model_destroy(m);
        return s;
    }
    *out = m;
    return CNN_OK;
}

cnn_status rt_model_from_gpu(RtGpu *g, cnn_model **out)
{
    cnn_model *m = calloc(1, sizeof *m);
    if (m) {
        atomic_flag_clear(&m->busy);
        m->gpu = g;
        m->rt = rt_gpu_desc(g);
        m->nthreads = 1;
        m->counters = calloc((size_t)m->rt->nkernels + 1, sizeof *m->counters);
    }
    if (!m || !m->counters) {
        rt_gpu_free(g);
        free(m);
        return CNN_ERR_OUT_OF_MEMORY;
    }
    *out = m;
    return CNN_OK;
}

CNN_EXPORT void cnn_model_destroy(cnn_model *m)
{
    if (!m)
        return;
    rt_gpu_free(m->gpu);
    rt_pool_free(m->pool);
    free(m->arena);
    free(m->in);
    free(m->out);
    free(m->counters);
    free(m);
}

char *rt_model_arena(const cnn_model *m)
{
    return m ? m->arena : NULL;
}

CNN_EXPORT int32_t cnn_model_num_inputs(const cnn_model *m)
{
    return m ? m->rt->ninputs : -1;
}

CNN_EXPORT int32_t cnn_model_num_outputs(const cnn_model *m)
{
    return m ? m->rt->noutputs : -1;
}

CNN_EXPORT int32_t cnn_model_num_threads(const cnn_model *m)
{
    return m ? m->nthreads : -1;
}

CNN_EXPORT cnn_device cnn_model_device(const cnn_model *m)
{
    return !m ? CNN_DEVICE_DEFAULT : m->gpu ? CNN_DEVICE_CUDA : CNN_DEVICE_CPU;
}

void rt_fill_info(const RtTensor *t, cnn_tensor_info *info)
{
    memset(info, 0, sizeof *info);
    info->name = t->name ? t->name : "";
    info->dtype = CNN_F32;
    info->rank = t->rank;
    for (int32_t i = 0; i < t->rank; i++)
        info->dims[i] = t->dims[i];
    info->size = (size_t)rt_tensor_bytes(t);
}

CNN_EXPORT cnn_status cnn_model_input_info(const cnn_model *m, int32_t i, cnn_tensor_info *info)
{
    if (!m || !info || i < 0 || i >= m->rt->ninputs)
        return CNN_ERR_INVALID_ARGUMENT;
    rt_fill_info(&m->rt->inputs[i], info);
    return CNN_OK;
}

CNN_EXPORT cnn_status cnn_model_output_info(const cnn_model *m, int32_t i, cnn_tensor_info *info)
{
    if (!m || !info || i < 0 || i >= m->rt->noutputs)
        return CNN_ERR_INVALID_ARGUMENT;
    rt_fill_info(&m->rt->outputs[i], info);
    return CNN_OK;
}

/* Each buffer must be present (unless the tensor is empty) and float-aligned,
 * else CNN_ERR_INVALID_ARGUMENT; then each must be exactly its tensor's size. */
static cnn_status check_buffers(const cnn_tensor *t, const RtTensor *rt, int32_t n,
                                const char *what)
{
    cnn_status s = CNN_OK;
    for (int32_t i = 0; i < n; i++) {
        size_t bytes = (size_t)rt_tensor_bytes(&rt[i]);
        if (bytes > 0 && (!t[i].data || (uintptr_t)t[i].data % alignof(float) != 0)) {
            rt_set_error("%s %d ('%s'): %s buffer", what, i, rt[i].name ? rt[i].name : "",
                         t[i].data ? "misaligned" : "no");
            return CNN_ERR_INVALID_ARGUMENT;
        }
        if (t[i].size != bytes && s == CNN_OK) {
            rt_set_error("%s %d ('%s'): %zu bytes given, %zu expected", what, i,
                         rt[i].name ? rt[i].name : "", t[i].size, bytes);
            s = CNN_ERR_SIZE_MISMATCH;
        }
    }
    return s;
}

static cnn_status check_run(const cnn_model *m, const cnn_tensor *inputs, int32_t ninputs,
                            const cnn_tensor *outputs, int32_t noutputs)
{
    if (!m || ninputs != m->rt->ninputs || noutputs != m->rt->noutputs ||
        (ninputs > 0 && !inputs) || (noutputs > 0 && !outputs))
        return CNN_ERR_INVALID_ARGUMENT;
    cnn_status si = check_buffers(inputs, m->rt->inputs, ninputs, "input");
    if (si == CNN_ERR_INVALID_ARGUMENT)
        return si;
    cnn_status so = check_buffers(outputs, m->rt->outputs, noutputs, "output");
    return so != CNN_OK ? so : si;
}

/* One instance runs one call at a time: a second thread's call on it would
 * share its arena (and, on a GPU, its stream and buffers) and silently mix
 * results, so it is refused instead. The flag costs one atomic exchange. */
cnn_status rt_acquire(atomic_flag *busy)
{
    if (!atomic_flag_test_and_set_explicit(busy, memory_order_acquire))
        return CNN_OK;
    rt_set_error("the instance is running on another thread; create one instance per thread");
    return CNN_ERR_BUSY;
}

void rt_release(atomic_flag *busy)
{
    atomic_flag_clear_explicit(busy, memory_order_release);
}

static cnn_status acquire(cnn_model *m)
{
    return rt_acquire(&m->busy);
}

static void release(cnn_model *m)
{
    rt_release(&m->busy);
}

static cnn_status run_checked(cnn_model *m, const cnn_tensor *inputs, int32_t ninputs,
                              cnn_tensor *outputs, int32_t noutputs)
{
    cnn_status s = check_run(m, inputs, ninputs, outputs, noutputs);
    if (s != CNN_OK)
        return s;
    if (m->gpu)
        return rt_gpu_run(m->gpu, inputs, outputs, m->profiling ? m->counters : NULL);
    for (int32_t i = 0; i < ninputs; i++)
        m->in[i] = inputs[i].data;
    for (int32_t i = 0; i < noutputs; i++)
        m->out[i] = outputs[i].data;
    m->rt->run(m->pool, m->arena, m->in, m->out);
    return CNN_OK;
}

CNN_EXPORT cnn_status cnn_model_run(cnn_model *m, const cnn_tensor *inputs, int32_t ninputs,
                                    cnn_tensor *outputs, int32_t noutputs)
{
    rt_set_error("%s", "");
    if (!m)
        return CNN_ERR_INVALID_ARGUMENT;
    cnn_status s = acquire(m);
    if (s != CNN_OK)
        return s;
    s = run_checked(m, inputs, ninputs, outputs, noutputs);
    release(m);
    return s;
}

/* The counters stay readable after profiling is switched off; switching it
 * on starts them from zero. */
CNN_EXPORT cnn_status cnn_model_set_profiling(cnn_model *m, int enabled)
{
    if (!m)
        return CNN_ERR_INVALID_ARGUMENT;
    cnn_status s = acquire(m);
    if (s != CNN_OK)
        return s;
    m->profiling = enabled != 0;
    if (enabled)
        memset(m->counters, 0, (size_t)m->rt->nkernels * sizeof *m->counters);
    if (m->pool)
        rt_pool_set_counters(m->pool, enabled ? m->counters : NULL, enabled ? m->rt->nkernels : 0);
    release(m);
    return CNN_OK;
}

CNN_EXPORT int32_t cnn_model_num_kernels(const cnn_model *m)
{
    return m ? m->rt->nkernels : -1;
}

CNN_EXPORT cnn_status cnn_model_kernel_info(const cnn_model *m, int32_t i, cnn_kernel_info *info)
{
    if (!m || !info || i < 0 || i >= m->rt->nkernels)
        return CNN_ERR_INVALID_ARGUMENT;
    const RtKernelInfo *k = &m->rt->kernels[i];
    memset(info, 0, sizeof *info);
    info->name = k->name ? k->name : "";
    info->op = k->op ? k->op : "";
    info->flops = k->flops;
    info->calls = m->counters[i].calls;
    info->seconds = (double)m->counters[i].ns * 1e-9;
    return CNN_OK;
}

CNN_EXPORT cnn_status cnn_model_verify(const cnn_model *m)
{
    rt_set_error("%s", "");
    if (!m)
        return CNN_ERR_INVALID_ARGUMENT;
    if (m->gpu) {
        rt_set_error("CUDA models carry no checksum of their weights");
        return CNN_ERR_INVALID_ARGUMENT;
    }
    uint64_t h = rt_weights_hash(m->rt->weights, m->rt->weights_bytes);
    if (h == m->rt->weights_hash)
        return CNN_OK;
    rt_set_error("the %lld bytes of weights hash to %016llx (XXH64), cnnc stored %016llx",
                 (long long)m->rt->weights_bytes, (unsigned long long)h,
                 (unsigned long long)m->rt->weights_hash);
    return CNN_ERR_CORRUPT;
}

CNN_EXPORT const char *cnn_status_string(cnn_status s)
{
    switch (s) {
    case CNN_OK: return "success";
    case CNN_ERR_INVALID_ARGUMENT: return "invalid argument";
    case CNN_ERR_SIZE_MISMATCH: return "buffer size does not match the tensor size";
    case CNN_ERR_OUT_OF_MEMORY: return "out of memory";
    case CNN_ERR_THREADS: return "the thread pool could not be started";
    case CNN_ERR_DEVICE: return "the device is missing, failed, or is not the model's";
    case CNN_ERR_VERSION: return "incompatible version";
    case CNN_ERR_BUSY: return "the instance is running on another thread";
    case CNN_ERR_CORRUPT: return "the model's weights are damaged";
    }
    /* The statuses of cnnc/train.h, outside the enumeration. */
    if (s == CNN_ERR_LABEL) return "a label is not one of the model's classes";
    if (s == CNN_ERR_NOT_FINITE) return "the loss is not finite: nothing was updated";
    if (s == CNN_ERR_IO) return "a weights file could not be read or written";
    return "unknown status";
}
