/* gpu_image.c: checks a GPU image (runtime/rt_gpu.h) before anything uses it:
 * a damaged or foreign image is refused with a status, never read out of
 * bounds. */
#include "rt.h"
#include "rt_gpu.h"

#include <stdlib.h>
#include <string.h>

/* The section [off, off + count * size) lies inside the image, 8-aligned. */
static int section_ok(const RtGpuHeader *h, uint64_t off, uint64_t count, uint64_t size)
{
    if (off % 8 != 0 || off < sizeof *h || off > h->image_bytes) return 0;
    if (size && count > (h->image_bytes - off) / size) return 0;
    return 1;
}

static int header_ok(const RtGpuHeader *h)
{
    if (memcmp(h->magic, RT_GPU_MAGIC, sizeof h->magic) != 0) {
        rt_set_error("not a cnnc GPU image (bad magic)");
        return 0;
    }
    if (h->version != RT_GPU_VERSION) {
        rt_set_error("GPU image version %u; this runtime reads version %d", h->version,
                     RT_GPU_VERSION);
        return 0;
    }
    int ok = h->ninputs >= 0 && h->noutputs >= 0 && h->nkernels >= 0 && h->nfunctions >= 0 &&
             h->nargs >= 0 && h->image_bytes >= sizeof *h && h->arena_bytes < (1ull << 62) &&
             section_ok(h, h->tensors, (uint64_t)h->ninputs + (uint64_t)h->noutputs,
                        sizeof(RtGpuTensor)) &&
             section_ok(h, h->functions, (uint64_t)h->nfunctions, sizeof(uint64_t)) &&
             section_ok(h, h->kernels, (uint64_t)h->nkernels, sizeof(RtGpuKernel)) &&
             section_ok(h, h->args, (uint64_t)h->nargs, sizeof(RtGpuArg)) &&
             section_ok(h, h->outputs, (uint64_t)h->noutputs, sizeof(RtGpuOutput)) &&
             section_ok(h, h->strings, h->strings_bytes, 1) && h->strings_bytes > 0 &&
             section_ok(h, h->ptx, h->ptx_bytes, 1) && h->ptx_bytes > 0 &&
             section_ok(h, h->cubin, h->cubin_bytes, 1) &&
             section_ok(h, h->weights, h->weights_bytes, 1);
    if (!ok) rt_set_error("GPU image damaged: a section lies outside it");
    return ok;
}

const char *rt_gpu_string(const RtGpuView *v, uint64_t offset)
{
    return offset < v->h->strings_bytes ? v->strings + offset : NULL;
}

static int tensors_ok(RtGpuView *v)
{
    int32_t n = v->h->ninputs + v->h->noutputs;
    v->tensor_bytes = calloc((size_t)n + 1, sizeof *v->tensor_bytes);
    if (!v->tensor_bytes) {
        rt_set_error("out of memory reading the GPU image");
        return 0;
    }
    for (int32_t i = 0; i < n; i++) {
        const RtGpuTensor *t = &v->tensors[i];
        int64_t count = 1;
        int ok = t->rank >= 0 && t->rank <= CNN_MAX_RANK && rt_gpu_string(v, t->name);
        for (int32_t d = 0; ok && d < t->rank; d++) {
            ok = t->dims[d] >= 0 && (t->dims[d] == 0 || count <= INT64_MAX / 4 / t->dims[d]);
            count *= ok ? t->dims[d] : 1;
        }
        if (!ok) {
            rt_set_error("GPU image damaged: tensor %d is malformed", i);
            return 0;
        }
        v->tensor_bytes[i] = count * 4;
    }
    return 1;
}

/* An argument points inside the buffer it names. */
static int arg_ok(const RtGpuView *v, const RtGpuArg *a)
{
    const RtGpuHeader *h = v->h;
    if (a->offset < 0) return 0;
    switch (a->buf) {
    case RT_GPU_ARENA: return (uint64_t)a->offset <= h->arena_bytes;
    case RT_GPU_INPUT:
        return a->index >= 0 && a->index < h->ninputs && a->offset <= v->tensor_bytes[a->index];
    case RT_GPU_OUTPUT:
        return a->index >= 0 && a->index < h->noutputs &&
               a->offset <= v->tensor_bytes[h->ninputs + a->index];
    case RT_GPU_WEIGHTS: return (uint64_t)a->offset <= h->weights_bytes;
    case RT_GPU_NONE: return 1;
    }
    return 0;
}

/* Size of the buffer an argument points into (0 for none). */
static uint64_t buffer_bytes(const RtGpuView *v, const RtGpuArg *a)
{
    switch (a->buf) {
    case RT_GPU_ARENA: return v->h->arena_bytes;
    case RT_GPU_INPUT: return (uint64_t)v->tensor_bytes[a->index];
    case RT_GPU_OUTPUT: return (uint64_t)v->tensor_bytes[v->h->ninputs + a->index];
    case RT_GPU_WEIGHTS: return v->h->weights_bytes;
    }
    return 0;
}

/* Output copies read `items` blocks of `item_bytes`, `stride_bytes` apart,
 * from their source: the whole extent, not just its start, must lie inside
 * the source's buffer, and the blocks must fill the output exactly. */
static int output_ok(const RtGpuView *v, const RtGpuOutput *o, int64_t bytes)
{
    if (!arg_ok(v, &o->src) || o->src.buf == RT_GPU_NONE || o->items < 0 || o->item_bytes < 0 ||
        o->stride_bytes < o->item_bytes)
        return 0;
    if (o->items == 0 || o->item_bytes == 0) return bytes == 0;
    if (o->items > INT64_MAX / o->item_bytes || o->items * o->item_bytes != bytes) return 0;
    uint64_t end; /* src.offset + (items - 1) * stride_bytes + item_bytes */
    if (__builtin_mul_overflow((uint64_t)(o->items - 1), (uint64_t)o->stride_bytes, &end) ||
        __builtin_add_overflow(end, (uint64_t)o->item_bytes, &end) ||
        __builtin_add_overflow(end, (uint64_t)o->src.offset, &end))
        return 0;
    return end <= buffer_bytes(v, &o->src);
}

static int kernel_ok(const RtGpuView *v, const RtGpuKernel *k)
{
    if (!rt_gpu_string(v, k->name) || !rt_gpu_string(v, k->op) || k->function < 0 ||
        k->function >= v->h->nfunctions || k->nargs < 0 || k->nargs > RT_GPU_MAX_ARGS ||
        k->first_arg < 0 || k->first_arg > v->h->nargs - k->nargs)
        return 0;
    for (int i = 0; i < 3; i++)
        if (k->grid[i] == 0 || k->block[i] == 0) return 0;
    for (int32_t i = 0; i < k->nargs; i++)
        if (!arg_ok(v, &v->args[k->first_arg + i])) return 0;
    return 1;
}

static int references_ok(const RtGpuView *v)
{
    const RtGpuHeader *h = v->h;
    int ok = v->strings[h->strings_bytes - 1] == 0 &&
             ((const char *)v->base)[h->ptx + h->ptx_bytes - 1] == 0;
    for (int32_t i = 0; ok && i < h->nfunctions; i++)
        ok = rt_gpu_string(v, v->functions[i]) != NULL;
    for (int32_t i = 0; ok && i < h->nkernels; i++)
        ok = kernel_ok(v, &v->kernels[i]);
    for (int32_t i = 0; ok && i < h->noutputs; i++)
        ok = output_ok(v, &v->outputs[i], v->tensor_bytes[h->ninputs + i]);
    if (!ok) rt_set_error("GPU image damaged: a kernel or output refers outside it");
    return ok;
}

int rt_gpu_view(const uint8_t *image, RtGpuView *v)
{
    memset(v, 0, sizeof *v);
    if (!image) {
        rt_set_error("no GPU image");
        return 0;
    }
    const RtGpuHeader *h = (const RtGpuHeader *)image;
    if (!header_ok(h)) return 0;
    v->base = image;
    v->h = h;
    v->tensors = (const RtGpuTensor *)(image + h->tensors);
    v->functions = (const uint64_t *)(image + h->functions);
    v->kernels = (const RtGpuKernel *)(image + h->kernels);
    v->args = (const RtGpuArg *)(image + h->args);
    v->outputs = (const RtGpuOutput *)(image + h->outputs);
    v->strings = (const char *)(image + h->strings);
    if (tensors_ok(v) && references_ok(v)) return 1;
    rt_gpu_view_free(v);
    return 0;
}

void rt_gpu_view_free(RtGpuView *v)
{
    free(v->tensor_bytes);
    v->tensor_bytes = NULL;
}
