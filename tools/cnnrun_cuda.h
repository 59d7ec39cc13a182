/* cnnrun_cuda.h: device memory for `cnnrun --device-buffers`: the CUDA driver opened by
 * cnnrun itself, a buffer on the device per tensor, and the copies in and out. The runtime
 * runs on the device's primary context, so these buffers live in that same context. */
#ifndef CNNC_CNNRUN_CUDA_H
#define CNNC_CNNRUN_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "cnnc/model.h"
#include "cudrv.h"

typedef struct CudaBuffers {
    CuDriver d;
    CUdevice dev;
    CUcontext ctx; /* retained primary context, or NULL */
    CUdeviceptr *ptrs; /* every allocation, freed by cnnrun_cuda_close */
    int32_t nptrs;
} CudaBuffers;

/* Opens libcuda.so.1 and retains the primary context of device `index`; on failure the
 * reason is in err and nothing is left open. */
bool cnnrun_cuda_open(CudaBuffers *b, int32_t index, char *err, size_t n);

/* A device buffer for each of host[0..count): dev[i] = {device address, size}; with `copy`
 * host[i]'s bytes are copied into it. */
bool cnnrun_cuda_alloc(CudaBuffers *b, const cnn_tensor *host, cnn_tensor *dev, int32_t count,
                       bool copy, char *err, size_t n);

/* Copies dev[i] back into host[i] for i < count. */
bool cnnrun_cuda_download(CudaBuffers *b, const cnn_tensor *dev, cnn_tensor *host,
                          int32_t count, char *err, size_t n);

/* Frees every buffer, releases the context and closes the driver. */
void cnnrun_cuda_close(CudaBuffers *b);

#endif
