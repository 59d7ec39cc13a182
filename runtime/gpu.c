/* gpu.c: an instance of a CUDA model. Creation opens the driver, loads the
 * image's cubin (or its PTX, which the driver compiles for newer GPUs), puts
 * the weights on the device once, lays out one buffer for the activation arena
 * and the graph's inputs and outputs, and captures the whole network as one
 * CUDA graph; a run copies the inputs in, replays the graph and copies the
 * outputs out. */
#include "cudrv.h"
#include "rt.h"
#include "rt_gpu.h"

#include <stdlib.h>
#include <string.h>

struct RtGpu {
    CuDriver d;
    RtGpuView v;
    RtModel desc;
    RtTensor *tensors;     /* desc's inputs, then outputs */
    RtKernelInfo *kinfo;   /* desc's kernels */
    CUdevice dev;
    CUcontext ctx;         /* the device's primary context, retained */
    CUmodule mod;
    CUfunction *fn;        /* per function of the image */
    CUdeviceptr io;        /* arena, then each input and output buffer */
    CUdeviceptr weights;
    CUdeviceptr arena;
    CUdeviceptr *in, *out; /* where inputs and outputs are: io's, or the caller's */
    CUstream stream;
    CUgraph graph;
    CUgraphExec exec;      /* replays every kernel (and, with device pointers, the copies out) */
    CUdeviceptr *argval;   /* the pointer arguments of all kernels */
    void **kparams;        /* cuLaunchKernel's kernelParams, kernel k's from kp_start[k] */
    int32_t *kp_start;
    CUevent *events;       /* nkernels + 1, made when profiling first runs */
    int device_pointers;
};

#define ALIGN_UP(x) (((x) + RT_GPU_ALIGN - 1) / RT_GPU_ALIGN * RT_GPU_ALIGN)

static cnn_status fail(RtGpu *g, const char *what, CUresult r)
{
    rt_cuda_error(&g->d, what, r);
    return r == CUDA_ERROR_OUT_OF_MEMORY ? CNN_ERR_OUT_OF_MEMORY : CNN_ERR_DEVICE;
}

#define CU_TRY(g, call, what)                                  \
    do {                                                       \
        CUresult r_ = (call);                                  \
        if (r_ != CUDA_SUCCESS) return fail((g), (what), r_);  \
    } while (0)

/* ---- the description model.c reads ------------------------------------------ */

static cnn_status describe(RtGpu *g)
{
    const RtGpuView *v = &g->v;
    int32_t ni = v->h->ninputs, no = v->h->noutputs, nk = v->h->nkernels;
    g->tensors = calloc((size_t)(ni + no) + 1, sizeof *g->tensors);
    g->kinfo = calloc((size_t)nk + 1, sizeof *g->kinfo);
    if (!g->tensors || !g->kinfo) return CNN_ERR_OUT_OF_MEMORY;
    for (int32_t i = 0; i < ni + no; i++) {
        const RtGpuTensor *t = &v->tensors[i];
        g->tensors[i].name = rt_gpu_string(v, t->name);
        g->tensors[i].rank = t->rank;
        memcpy(g->tensors[i].dims, t->dims, sizeof t->dims);
    }
    for (int32_t k = 0; k < nk; k++) {
        const RtGpuKernel *kk = &v->kernels[k];
        g->kinfo[k] = (RtKernelInfo){rt_gpu_string(v, kk->name), rt_gpu_string(v, kk->op),
                                     kk->flops,
                                     (int64_t)kk->grid[0] * kk->grid[1] * kk->grid[2]};
    }
    g->desc = (RtModel){.abi_version = RT_ABI_VERSION, .ninputs = ni, .noutputs = no,
                        .inputs = g->tensors, .outputs = g->tensors + ni, .nkernels = nk,
                        .kernels = g->kinfo};
    return CNN_OK;
}

const RtModel *rt_gpu_desc(const RtGpu *g)
{
    return &g->desc;
}

/* ---- device, module, memory ------------------------------------------------- */

static cnn_status check_arch(RtGpu *g, int index, int cc)
{
    uint32_t arch = g->v.h->arch;
    if ((uint32_t)cc >= arch) return CNN_OK;
    char name[128] = "";
    if (g->d.DeviceGetName(name, sizeof name - 1, g->dev) != CUDA_SUCCESS) name[0] = 0;
    rt_set_error("the model was compiled for sm_%u, but CUDA device %d (%s) has compute "
                 "capability %d.%d: recompile it with --gpu-arch=sm_%d",
                 arch, index, name, cc / 10, cc % 10, cc);
    return CNN_ERR_DEVICE;
}

static cnn_status open_device(RtGpu *g, int index, int *cc)
{
    CU_TRY(g, g->d.Init(0), "cuInit");
    int count = 0, major = 0, minor = 0;
    CU_TRY(g, g->d.DeviceGetCount(&count), "cuDeviceGetCount");
    if (index >= count) {
        rt_set_error("CUDA device %d requested, but %d device%s present", index, count,
                     count == 1 ? " is" : "s are");
        return CNN_ERR_DEVICE;
    }
    CU_TRY(g, g->d.DeviceGet(&g->dev, index), "cuDeviceGet");
    CU_TRY(g, g->d.DeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, g->dev),
           "cuDeviceGetAttribute");
    CU_TRY(g, g->d.DeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, g->dev),
           "cuDeviceGetAttribute");
    *cc = major * 10 + minor;
    cnn_status s = check_arch(g, index, *cc);
    if (s != CNN_OK) return s;
    CU_TRY(g, g->d.DevicePrimaryCtxRetain(&g->ctx, g->dev), "cuDevicePrimaryCtxRetain");
    return CNN_OK;
}

/* The cubin runs on GPUs of its major version from its minor one on; anything
 * else, or a cubin the driver refuses, takes the PTX. */
static cnn_status load_module(RtGpu *g, int cc)
{
    const RtGpuHeader *h = g->v.h;
    if (h->cubin_bytes > 0 && cc / 10 == (int)h->arch / 10 &&
        g->d.ModuleLoadDataEx(&g->mod, g->v.base + h->cubin, 0, NULL, NULL) == CUDA_SUCCESS)
        return CNN_OK;
    g->mod = NULL;
    CU_TRY(g, g->d.ModuleLoadDataEx(&g->mod, g->v.base + h->ptx, 0, NULL, NULL),
           "loading the model's GPU code (PTX)");
    return CNN_OK;
}

static cnn_status get_functions(RtGpu *g)
{
    const RtGpuHeader *h = g->v.h;
    g->fn = calloc((size_t)h->nfunctions + 1, sizeof *g->fn);
    if (!g->fn) return CNN_ERR_OUT_OF_MEMORY;
    for (int32_t i = 0; i < h->nfunctions; i++)
        CU_TRY(g, g->d.ModuleGetFunction(&g->fn[i], g->mod, rt_gpu_string(&g->v, g->v.functions[i])),
               "cuModuleGetFunction");
    return CNN_OK;
}

/* One allocation holds the arena and (unless the caller passes device
 * pointers) every input and output buffer; the weights get their own. */
static cnn_status allocate(RtGpu *g)
{
    const RtGpuHeader *h = g->v.h;
    int32_t nio = h->ninputs + h->noutputs;
    g->in = calloc((size_t)nio + 1, sizeof *g->in);
    g->out = g->in ? g->in + h->ninputs : NULL;
    if (!g->in) return CNN_ERR_OUT_OF_MEMORY;
    uint64_t total = ALIGN_UP(h->arena_bytes);
    if (!g->device_pointers)
        for (int32_t i = 0; i < nio; i++)
            total += ALIGN_UP((uint64_t)g->v.tensor_bytes[i]);
    if (total > 0) CU_TRY(g, g->d.MemAlloc(&g->io, total), "cuMemAlloc (activations)");
    g->arena = g->io;
    uint64_t at = ALIGN_UP(h->arena_bytes);
    for (int32_t i = 0; !g->device_pointers && i < nio; i++) {
        g->in[i] = g->io + at;
        at += ALIGN_UP((uint64_t)g->v.tensor_bytes[i]);
    }
    if (h->weights_bytes > 0) {
        CU_TRY(g, g->d.MemAlloc(&g->weights, h->weights_bytes), "cuMemAlloc (weights)");
        CU_TRY(g, g->d.MemcpyHtoD(g->weights, g->v.base + h->weights, h->weights_bytes),
               "copying the weights to the device");
    }
    return CNN_OK;
}

/* ---- launches ------------------------------------------------------------------ */

static CUdeviceptr address(const RtGpu *g, const RtGpuArg *a)
{
    switch (a->buf) {
    case RT_GPU_ARENA: return g->arena + (CUdeviceptr)a->offset;
    case RT_GPU_INPUT: return g->in[a->index] + (CUdeviceptr)a->offset;
    case RT_GPU_OUTPUT: return g->out[a->index] + (CUdeviceptr)a->offset;
    case RT_GPU_WEIGHTS: return g->weights + (CUdeviceptr)a->offset;
    }
    return 0;
}

static cnn_status build_params(RtGpu *g)
{
    const RtGpuHeader *h = g->v.h;
    g->argval = calloc((size_t)h->nargs + 1, sizeof *g->argval);
    g->kparams = calloc((size_t)h->nargs + (size_t)h->nkernels + 1, sizeof *g->kparams);
    g->kp_start = calloc((size_t)h->nkernels + 1, sizeof *g->kp_start);
    if (!g->argval || !g->kparams || !g->kp_start) return CNN_ERR_OUT_OF_MEMORY;
    int32_t at = 0;
    for (int32_t k = 0; k < h->nkernels; k++) {
        const RtGpuKernel *kk = &g->v.kernels[k];
        g->kp_start[k] = at;
        for (int32_t i = 0; i < kk->nargs; i++)
            g->kparams[at++] = &g->argval[kk->first_arg + i];
        if (kk->has_params) g->kparams[at++] = (void *)kk->params;
    }
    return CNN_OK;
}

static void set_addresses(RtGpu *g)
{
    for (int32_t i = 0; i < g->v.h->nargs; i++)
        g->argval[i] = address(g, &g->v.args[i]);
}

static cnn_status launch(RtGpu *g, int32_t k)
{
    const RtGpuKernel *kk = &g->v.kernels[k];
    CU_TRY(g, g->d.LaunchKernel(g->fn[kk->function], kk->grid[0], kk->grid[1], kk->grid[2],
                                kk->block[0], kk->block[1], kk->block[2], kk->shared_bytes,
                                g->stream, &g->kparams[g->kp_start[k]], NULL),
           "cuLaunchKernel");
    return CNN_OK;
}

/* Output k from where the last kernel left it to `host` or, when NULL, to the
 * device address `dev`: dense in one copy, batch items apart in a 2D one. */
static cnn_status copy_output(RtGpu *g, int32_t k, void *host, CUdeviceptr dev)
{
    const RtGpuOutput *o = &g->v.outputs[k];
    CUdeviceptr src = address(g, &o->src);
    size_t bytes = (size_t)(o->items * o->item_bytes);
    if (bytes == 0 || (!host && src == dev)) return CNN_OK;
    if (o->items == 1 || o->stride_bytes == o->item_bytes) {
        if (host)
            CU_TRY(g, g->d.MemcpyDtoHAsync(host, src, bytes, g->stream), "copying an output");
        else
            CU_TRY(g, g->d.MemcpyDtoDAsync(dev, src, bytes, g->stream), "copying an output");
        return CNN_OK;
    }
    CUDA_MEMCPY2D c = {.srcMemoryType = CU_MEMORYTYPE_DEVICE, .srcDevice = src,
                       .srcPitch = (size_t)o->stride_bytes,
                       .dstMemoryType = host ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE,
                       .dstHost = host, .dstDevice = dev, .dstPitch = (size_t)o->item_bytes,
                       .WidthInBytes = (size_t)o->item_bytes, .Height = (size_t)o->items};
    CU_TRY(g, g->d.Memcpy2DAsync(&c, g->stream), "copying an output");
    return CNN_OK;
}

/* With device pointers the copies out belong to the graph: a run is one replay. */
static cnn_status enqueue_network(RtGpu *g)
{
    cnn_status s = CNN_OK;
    for (int32_t k = 0; k < g->v.h->nkernels && s == CNN_OK; k++)
        s = launch(g, k);
    for (int32_t k = 0; g->device_pointers && k < g->v.h->noutputs && s == CNN_OK; k++)
        s = copy_output(g, k, NULL, g->out[k]);
    return s;
}

static void drop_graph(RtGpu *g)
{
    if (g->exec) g->d.GraphExecDestroy(g->exec);
    if (g->graph) g->d.GraphDestroy(g->graph);
    g->exec = NULL;
    g->graph = NULL;
}

static cnn_status capture(RtGpu *g)
{
    drop_graph(g);
    set_addresses(g);
    CU_TRY(g, g->d.StreamBeginCapture(g->stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
           "cuStreamBeginCapture");
    cnn_status s = enqueue_network(g);
    CUresult r = g->d.StreamEndCapture(g->stream, &g->graph);
    if (s != CNN_OK) return s;
    if (r != CUDA_SUCCESS) return fail(g, "cuStreamEndCapture", r);
    CU_TRY(g, g->d.GraphInstantiateWithFlags(&g->exec, g->graph, 0), "cuGraphInstantiate");
    return CNN_OK;
}

/* ---- create, run, free ------------------------------------------------------------ */

static cnn_status setup_device(RtGpu *g, int index)
{
    int cc = 0;
    cnn_status s = open_device(g, index, &cc);
    if (s != CNN_OK) return s;
    CU_TRY(g, g->d.CtxPushCurrent(g->ctx), "cuCtxPushCurrent");
    s = load_module(g, cc);
    if (s == CNN_OK) s = get_functions(g);
    if (s == CNN_OK) s = allocate(g);
    if (s == CNN_OK) {
        CUresult r = g->d.StreamCreate(&g->stream, CU_STREAM_NON_BLOCKING);
        s = r == CUDA_SUCCESS ? CNN_OK : fail(g, "cuStreamCreate", r);
    }
    if (s == CNN_OK) s = build_params(g);
    if (s == CNN_OK && !g->device_pointers) s = capture(g);
    CUcontext popped;
    g->d.CtxPopCurrent(&popped);
    return s;
}

static cnn_status check_options(const cnn_options *opt)
{
    if (opt->api_version != CNN_API_VERSION) {
        rt_set_error("options of API version %u; this model.so implements version %d",
                     (unsigned)opt->api_version, CNN_API_VERSION);
        return CNN_ERR_VERSION;
    }
    if (opt->device == CNN_DEVICE_CPU) {
        rt_set_error("this model was compiled for CUDA (cnnc --target=cuda); it does not run "
                     "on the CPU");
        return CNN_ERR_DEVICE;
    }
    if (opt->device != CNN_DEVICE_DEFAULT && opt->device != CNN_DEVICE_CUDA)
        rt_set_error("device %d is not a cnn_device", (int)opt->device);
    else if (opt->device_index < 0)
        rt_set_error("device_index %d is negative", (int)opt->device_index);
    else if (opt->num_threads < 0)
        rt_set_error("num_threads %d is negative", (int)opt->num_threads);
    else if (opt->flags & ~CNN_DEVICE_POINTERS)
        rt_set_error("unknown flags 0x%x", (unsigned)opt->flags);
    else
        return CNN_OK;
    return CNN_ERR_INVALID_ARGUMENT;
}

cnn_status rt_gpu_model_create(const uint8_t *image, const cnn_options *opt, cnn_model **out)
{
    if (!out) return CNN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    rt_set_error("%s", "");
    cnn_options defaults;
    if (!opt) {
        cnn_options_init(&defaults);
        opt = &defaults;
    }
    cnn_status s = check_options(opt);
    if (s != CNN_OK) return s;
    RtGpu *g = calloc(1, sizeof *g);
    if (!g) return CNN_ERR_OUT_OF_MEMORY;
    g->device_pointers = (opt->flags & CNN_DEVICE_POINTERS) != 0;
    if (!rt_gpu_view(image, &g->v))
        s = CNN_ERR_INVALID_ARGUMENT;
    else if ((s = describe(g)) == CNN_OK && !rt_cuda_open(&g->d))
        s = CNN_ERR_DEVICE;
    if (s == CNN_OK) s = setup_device(g, opt->device_index);
    if (s != CNN_OK) {
        rt_gpu_free(g);
        return s;
    }
    return rt_model_from_gpu(g, out);
}

static void drop_events(RtGpu *g, int32_t n)
{
    for (int32_t k = 0; g->events && k < n; k++)
        if (g->events[k]) g->d.EventDestroy(g->events[k]);
    free(g->events);
    g->events = NULL;
}

/* All or none: a failure leaves no events, so the next profiled run tries again. */
static cnn_status make_events(RtGpu *g, int32_t n)
{
    g->events = calloc((size_t)n, sizeof *g->events);
    if (!g->events) return CNN_ERR_OUT_OF_MEMORY;
    for (int32_t k = 0; k < n; k++) {
        CUresult r = g->d.EventCreate(&g->events[k], 0);
        if (r != CUDA_SUCCESS) {
            drop_events(g, k);
            return fail(g, "cuEventCreate", r);
        }
    }
    return CNN_OK;
}

/* Kernel by kernel between events, for profiling. */
static cnn_status run_timed(RtGpu *g, RtCounter *counters)
{
    int32_t nk = g->v.h->nkernels;
    if (!g->events) {
        cnn_status s = make_events(g, nk + 1);
        if (s != CNN_OK) return s;
    }
    CU_TRY(g, g->d.EventRecord(g->events[0], g->stream), "cuEventRecord");
    for (int32_t k = 0; k < nk; k++) {
        cnn_status s = launch(g, k);
        if (s != CNN_OK) return s;
        CU_TRY(g, g->d.EventRecord(g->events[k + 1], g->stream), "cuEventRecord");
    }
    for (int32_t k = 0; g->device_pointers && k < g->v.h->noutputs; k++) {
        cnn_status s = copy_output(g, k, NULL, g->out[k]);
        if (s != CNN_OK) return s;
    }
    CU_TRY(g, g->d.EventSynchronize(g->events[nk]), "cuEventSynchronize");
    for (int32_t k = 0; k < nk; k++) {
        float ms = 0;
        CU_TRY(g, g->d.EventElapsedTime(&ms, g->events[k], g->events[k + 1]), "cuEventElapsedTime");
        counters[k].calls++;
        counters[k].ns += (int64_t)((double)ms * 1e6);
    }
    return CNN_OK;
}

/* Device pointers: the graph holds the caller's addresses, so other buffers
 * than last time mean capturing it again. */
static cnn_status use_device_buffers(RtGpu *g, const cnn_tensor *in, const cnn_tensor *out,
                                     int capture_graph)
{
    int same = g->exec != NULL;
    for (int32_t i = 0; i < g->v.h->ninputs; i++) {
        same = same && g->in[i] == (CUdeviceptr)(uintptr_t)in[i].data;
        g->in[i] = (CUdeviceptr)(uintptr_t)in[i].data;
    }
    for (int32_t i = 0; i < g->v.h->noutputs; i++) {
        same = same && g->out[i] == (CUdeviceptr)(uintptr_t)out[i].data;
        g->out[i] = (CUdeviceptr)(uintptr_t)out[i].data;
    }
    if (!same) {
        drop_graph(g);
        set_addresses(g);
    }
    return g->exec || !capture_graph ? CNN_OK : capture(g);
}

static cnn_status run_host(RtGpu *g, const cnn_tensor *in, const cnn_tensor *out,
                           RtCounter *counters)
{
    for (int32_t i = 0; i < g->v.h->ninputs; i++)
        if (in[i].size > 0)
            CU_TRY(g, g->d.MemcpyHtoDAsync(g->in[i], in[i].data, in[i].size, g->stream),
                   "copying an input to the device");
    cnn_status s = CNN_OK;
    if (counters)
        s = run_timed(g, counters);
    else {
        CUresult r = g->d.GraphLaunch(g->exec, g->stream);
        s = r == CUDA_SUCCESS ? CNN_OK : fail(g, "cuGraphLaunch", r);
    }
    for (int32_t k = 0; k < g->v.h->noutputs && s == CNN_OK; k++)
        s = copy_output(g, k, out[k].data, 0);
    return s;
}

cnn_status rt_gpu_run(RtGpu *g, const cnn_tensor *inputs, const cnn_tensor *outputs,
                      RtCounter *counters)
{
    rt_set_error("%s", "");
    CU_TRY(g, g->d.CtxPushCurrent(g->ctx), "cuCtxPushCurrent");
    cnn_status s;
    if (g->device_pointers) {
        s = use_device_buffers(g, inputs, outputs, counters == NULL);
        if (s == CNN_OK && counters) s = run_timed(g, counters);
        else if (s == CNN_OK) {
            CUresult r = g->d.GraphLaunch(g->exec, g->stream);
            s = r == CUDA_SUCCESS ? CNN_OK : fail(g, "cuGraphLaunch", r);
        }
    } else {
        s = run_host(g, inputs, outputs, counters);
    }
    CUresult r = g->d.StreamSynchronize(g->stream);
    if (s == CNN_OK && r != CUDA_SUCCESS) s = fail(g, "running the network", r);
    CUcontext popped;
    g->d.CtxPopCurrent(&popped);
    return s;
}

static void release_device(RtGpu *g)
{
    CuDriver *d = &g->d;
    if (g->stream) d->StreamSynchronize(g->stream);
    drop_graph(g);
    drop_events(g, g->v.h->nkernels + 1);
    if (g->stream) d->StreamDestroy(g->stream);
    if (g->io) d->MemFree(g->io);
    if (g->weights) d->MemFree(g->weights);
    if (g->mod) d->ModuleUnload(g->mod);
}

void rt_gpu_free(RtGpu *g)
{
    if (!g) return;
    if (g->ctx) {
        if (g->d.CtxPushCurrent(g->ctx) == CUDA_SUCCESS) {
            release_device(g);
            CUcontext popped;
            g->d.CtxPopCurrent(&popped);
        }
        g->d.DevicePrimaryCtxRelease(g->dev);
    }
    if (g->d.lib) rt_cuda_close(&g->d);
    rt_gpu_view_free(&g->v);
    free(g->events); /* left by a context that could not be made current */
    free(g->fn);
    free(g->in);
    free(g->argval);
    free(g->kparams);
    free(g->kp_start);
    free(g->tensors);
    free(g->kinfo);
    free(g);
}
