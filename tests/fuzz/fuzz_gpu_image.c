/* fuzz_gpu_image.c: the runtime's check of a GPU image (rt_gpu_view in
 * runtime/gpu_image.c). The image is the input, 64-byte aligned as a model.so
 * holds it, with the header's size made the input's (the one field a linked
 * image cannot get wrong). What the check accepts is then read in full. */
#include "fuzz.h"
#include "rt_gpu.h"

#include <stdlib.h>
#include <string.h>

static void read_all(const RtGpuView *v)
{
    const RtGpuHeader *h = v->h;
    size_t n = 0;
    for (int32_t i = 0; i < h->nkernels; i++)
        n += strlen(rt_gpu_string(v, v->kernels[i].name)) +
             strlen(rt_gpu_string(v, v->kernels[i].op));
    for (int32_t i = 0; i < h->nfunctions; i++)
        n += strlen(rt_gpu_string(v, v->functions[i]));
    for (int32_t i = 0; i < h->ninputs + h->noutputs; i++)
        n += strlen(rt_gpu_string(v, v->tensors[i].name));
    n += strlen((const char *)v->base + h->ptx);
    if (n == (size_t)-1)
        abort(); /* keeps the reads */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < sizeof(RtGpuHeader))
        return 0;
    void *mem;
    if (posix_memalign(&mem, 64, size) != 0)
        abort();
    uint8_t *image = mem;
    memcpy(image, data, size);
    uint64_t bytes = size;
    memcpy(image + offsetof(RtGpuHeader, image_bytes), &bytes, sizeof bytes);
    RtGpuView v;
    if (rt_gpu_view(image, &v)) {
        read_all(&v);
        rt_gpu_view_free(&v);
    }
    free(image);
    return 0;
}
