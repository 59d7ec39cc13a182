/* cnnrun_cuda.c: the device buffers of `cnnrun --device-buffers`, through the CUDA driver
 * opened by the runtime's own loader (runtime/cudrv.h), as a model's runtime opens it. */
#include "cnnrun_cuda.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* The reason rt_cuda_open / rt_cuda_error gave into err; always false. */
static bool reason(char *err, size_t n)
{
    snprintf(err, n, "%s", cnn_last_error());
    return false;
}

/* "what: CUDA_ERROR_X: the driver's words" into err; always false. */
static bool cuda_fail(const CudaBuffers *b, const char *what, CUresult r, char *err, size_t n)
{
    rt_cuda_error(&b->d, what, r);
    return reason(err, n);
}

static bool retain(CudaBuffers *b, int32_t index, char *err, size_t n)
{
    int count = 0;
    CUresult r = b->d.Init(0);
    if (r != CUDA_SUCCESS) return cuda_fail(b, "cuInit", r, err, n);
    if ((r = b->d.DeviceGetCount(&count)) != CUDA_SUCCESS)
        return cuda_fail(b, "cuDeviceGetCount", r, err, n);
    if (index >= count)
        return snprintf(err, n, "no CUDA device %d (%d present)", index, count), false;
    if ((r = b->d.DeviceGet(&b->dev, index)) != CUDA_SUCCESS)
        return cuda_fail(b, "cuDeviceGet", r, err, n);
    if ((r = b->d.DevicePrimaryCtxRetain(&b->ctx, b->dev)) != CUDA_SUCCESS)
        return b->ctx = NULL, cuda_fail(b, "cuDevicePrimaryCtxRetain", r, err, n);
    return true;
}

bool cnnrun_cuda_open(CudaBuffers *b, int32_t index, char *err, size_t n)
{
    memset(b, 0, sizeof *b);
    if (!rt_cuda_open(&b->d)) return reason(err, n);
    if (!retain(b, index, err, n)) {
        rt_cuda_close(&b->d);
        return false;
    }
    return true;
}

static bool push(CudaBuffers *b, char *err, size_t n)
{
    CUresult r = b->d.CtxPushCurrent(b->ctx);
    return r == CUDA_SUCCESS || cuda_fail(b, "cuCtxPushCurrent", r, err, n);
}

static void pop(CudaBuffers *b)
{
    CUcontext c;
    b->d.CtxPopCurrent(&c);
}

static bool alloc_one(CudaBuffers *b, const cnn_tensor *host, cnn_tensor *dev, bool copy,
                      char *err, size_t n)
{
    CUdeviceptr p = 0;
    CUresult r = b->d.MemAlloc(&p, host->size ? host->size : 1);
    if (r != CUDA_SUCCESS) return cuda_fail(b, "cuMemAlloc", r, err, n);
    b->ptrs = ir_xrealloc(b->ptrs, ((size_t)b->nptrs + 1) * sizeof *b->ptrs);
    b->ptrs[b->nptrs++] = p;
    *dev = (cnn_tensor){(void *)(uintptr_t)p, host->size};
    if (copy && host->size && (r = b->d.MemcpyHtoD(p, host->data, host->size)) != CUDA_SUCCESS)
        return cuda_fail(b, "cuMemcpyHtoD", r, err, n);
    return true;
}

bool cnnrun_cuda_alloc(CudaBuffers *b, const cnn_tensor *host, cnn_tensor *dev, int32_t count,
                       bool copy, char *err, size_t n)
{
    if (!push(b, err, n)) return false;
    bool ok = true;
    for (int32_t i = 0; i < count && ok; i++) ok = alloc_one(b, &host[i], &dev[i], copy, err, n);
    pop(b);
    return ok;
}

bool cnnrun_cuda_download(CudaBuffers *b, const cnn_tensor *dev, cnn_tensor *host,
                          int32_t count, char *err, size_t n)
{
    if (!push(b, err, n)) return false;
    CUresult r = CUDA_SUCCESS;
    for (int32_t i = 0; i < count && r == CUDA_SUCCESS; i++)
        r = b->d.MemcpyDtoHAsync(host[i].data, (CUdeviceptr)(uintptr_t)dev[i].data, dev[i].size,
                                 NULL);
    bool ok = r == CUDA_SUCCESS || cuda_fail(b, "cuMemcpyDtoHAsync", r, err, n);
    if (ok && (r = b->d.StreamSynchronize(NULL)) != CUDA_SUCCESS)
        ok = cuda_fail(b, "cuStreamSynchronize", r, err, n);
    pop(b);
    return ok;
}

void cnnrun_cuda_close(CudaBuffers *b)
{
    if (!b->d.lib) return;
    CUcontext c;
    if (b->d.CtxPushCurrent(b->ctx) == CUDA_SUCCESS) {
        for (int32_t i = 0; i < b->nptrs; i++) b->d.MemFree(b->ptrs[i]);
        b->d.CtxPopCurrent(&c);
    }
    b->d.DevicePrimaryCtxRelease(b->dev);
    free(b->ptrs);
    rt_cuda_close(&b->d);
    memset(b, 0, sizeof *b);
}
