/* cudrv.c: opening the CUDA driver library and resolving the entry points the
 * runtime uses (runtime/cudrv.h). */
#include "cudrv.h"
#include "rt.h"

#include <dlfcn.h>
#include <string.h>

typedef struct DriverSymbol {
    const char *name, *fallback; /* fallback: the same function in older drivers */
    size_t offset;
} DriverSymbol;

#define SYM(field, name) {name, NULL, offsetof(CuDriver, field)}

static const DriverSymbol symbols[] = {
    SYM(Init, "cuInit"),
    SYM(DriverGetVersion, "cuDriverGetVersion"),
    SYM(DeviceGetCount, "cuDeviceGetCount"),
    SYM(DeviceGet, "cuDeviceGet"),
    SYM(DeviceGetAttribute, "cuDeviceGetAttribute"),
    SYM(DeviceGetName, "cuDeviceGetName"),
    SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
    SYM(CtxPushCurrent, "cuCtxPushCurrent_v2"),
    SYM(CtxPopCurrent, "cuCtxPopCurrent_v2"),
    SYM(ModuleLoadDataEx, "cuModuleLoadDataEx"),
    SYM(ModuleGetFunction, "cuModuleGetFunction"),
    SYM(ModuleUnload, "cuModuleUnload"),
    SYM(MemAlloc, "cuMemAlloc_v2"),
    SYM(MemFree, "cuMemFree_v2"),
    SYM(MemcpyHtoD, "cuMemcpyHtoD_v2"),
    SYM(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
    SYM(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"),
    SYM(MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
    SYM(Memcpy2DAsync, "cuMemcpy2DAsync_v2"),
    SYM(MemsetD8, "cuMemsetD8_v2"),
    SYM(StreamCreate, "cuStreamCreate"),
    SYM(StreamDestroy, "cuStreamDestroy_v2"),
    SYM(StreamSynchronize, "cuStreamSynchronize"),
    SYM(StreamBeginCapture, "cuStreamBeginCapture_v2"),
    SYM(StreamEndCapture, "cuStreamEndCapture"),
    SYM(GraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"),
    SYM(GraphLaunch, "cuGraphLaunch"),
    SYM(GraphExecDestroy, "cuGraphExecDestroy"),
    SYM(GraphDestroy, "cuGraphDestroy"),
    SYM(LaunchKernel, "cuLaunchKernel"),
    SYM(EventCreate, "cuEventCreate"),
    SYM(EventRecord, "cuEventRecord"),
    SYM(EventSynchronize, "cuEventSynchronize"),
    {"cuEventElapsedTime_v2", "cuEventElapsedTime", offsetof(CuDriver, EventElapsedTime)},
    SYM(EventDestroy, "cuEventDestroy_v2"),
    SYM(GetErrorName, "cuGetErrorName"),
    SYM(GetErrorString, "cuGetErrorString"),
};

int rt_cuda_open(CuDriver *d)
{
    memset(d, 0, sizeof *d);
    d->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!d->lib) {
        const char *why = dlerror();
        rt_set_error("no CUDA driver: %s", why ? why : "libcuda.so.1 cannot be loaded");
        return 0;
    }
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        void *p = dlsym(d->lib, symbols[i].name);
        if (!p && symbols[i].fallback) p = dlsym(d->lib, symbols[i].fallback);
        if (!p) {
            rt_set_error("the CUDA driver (libcuda.so.1) has no %s: it is too old", symbols[i].name);
            rt_cuda_close(d);
            return 0;
        }
        memcpy((char *)d + symbols[i].offset, &p, sizeof p);
    }
    return 1;
}

void rt_cuda_close(CuDriver *d)
{
    if (d->lib) dlclose(d->lib);
    memset(d, 0, sizeof *d);
}

void rt_cuda_error(const CuDriver *d, const char *what, CUresult r)
{
    const char *name = NULL, *text = NULL;
    if (d->GetErrorName && d->GetErrorName(r, &name) != CUDA_SUCCESS) name = NULL;
    if (d->GetErrorString && d->GetErrorString(r, &text) != CUDA_SUCCESS) text = NULL;
    if (name && text)
        rt_set_error("%s: %s: %s", what, name, text);
    else
        rt_set_error("%s: CUDA error %d", what, r);
}
