/* image.c: a CUDA program, its NVRTC output and its weights serialized as the
 * GPU image of runtime/rt_gpu.h, the one piece of data a CUDA model.so holds.
 * The image is byte-deterministic: every struct is built zeroed, padding included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"
#include "rt_gpu.h"

_Static_assert(sizeof(CuParams) == RT_GPU_PARAM_BYTES, "CuParams is the image's params");
_Static_assert((int)CU_BUF_ARENA == RT_GPU_ARENA && (int)CU_BUF_INPUT == RT_GPU_INPUT &&
               (int)CU_BUF_OUTPUT == RT_GPU_OUTPUT && (int)CU_BUF_WEIGHTS == RT_GPU_WEIGHTS &&
               (int)CU_BUF_NONE == RT_GPU_NONE, "CuBuf values are the image's buffer kinds");
_Static_assert((int)CU_MATH_TF32 == RT_GPU_MATH_TF32 && (int)CU_MATH_F32 == RT_GPU_MATH_F32,
               "CuMath values are the image's math modes");
_Static_assert(IR_MAX_RANK == CNN_MAX_RANK, "tensor ranks agree");
_Static_assert(sizeof(RtGpuHeader) % 8 == 0 && sizeof(RtGpuTensor) % 8 == 0 &&
               sizeof(RtGpuKernel) % 8 == 0 && sizeof(RtGpuArg) % 8 == 0 &&
               sizeof(RtGpuOutput) % 8 == 0, "sections of structs keep 8-byte alignment");

/* The sections' offsets and sizes, and the tables built before the image is. */
typedef struct Sections {
    RtGpuHeader h;
    CuText strings;
    int32_t nfunctions;
    const char **functions; /* distinct symbols, first use first */
    uint64_t *function_names, *kernel_names, *kernel_ops, *tensor_names;
} Sections;

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

/* Appends `s` with its NUL to the strings section; returns its offset there. */
static uint64_t add_string(CuText *t, const char *s)
{
    uint64_t at = t->len;
    cu_text_add(t, "%s", s ? s : "");
    t->len++; /* keep the NUL cu_text_add wrote (it always has room for it) */
    return at;
}

static int32_t function_index(const Sections *s, const char *symbol)
{
    for (int32_t i = 0; i < s->nfunctions; i++)
        if (!strcmp(s->functions[i], symbol)) return i;
    return -1;
}

/* The strings of every table, in the order the image lists their owners. */
static void collect_strings(Sections *s, const CuProgram *p, const Graph *g)
{
    int32_t nin = s->h.ninputs, ntensors = nin + s->h.noutputs;
    s->tensor_names = ir_xcalloc((size_t)ntensors + 1, sizeof *s->tensor_names);
    for (int32_t i = 0; i < ntensors; i++)
        s->tensor_names[i] = add_string(&s->strings, i < nin ? g->nodes[ir_input_node(g, i)].name
                                                             : g->outputs[i - nin].name);
    s->functions = ir_xcalloc((size_t)p->nkernels + 1, sizeof *s->functions);
    s->function_names = ir_xcalloc((size_t)p->nkernels + 1, sizeof *s->function_names);
    s->kernel_names = ir_xcalloc((size_t)p->nkernels + 1, sizeof *s->kernel_names);
    s->kernel_ops = ir_xcalloc((size_t)p->nkernels + 1, sizeof *s->kernel_ops);
    for (int32_t k = 0; k < p->nkernels; k++) {
        const CuKernel *ck = &p->kernels[k];
        if (!ck->symbol) ICE("kernel %d ('%s') has no symbol", (int)k, ck->name);
        if (function_index(s, ck->symbol) < 0) {
            s->function_names[s->nfunctions] = add_string(&s->strings, ck->symbol);
            s->functions[s->nfunctions++] = ck->symbol;
        }
        s->kernel_names[k] = add_string(&s->strings, ck->name);
        s->kernel_ops[k] = add_string(&s->strings, ck->op);
    }
}

/* Counts, then each section after the one before it (8-byte aligned; the
 * weights RT_GPU_ALIGN aligned). */
static void place_sections(Sections *s, const CuProgram *p, const CuBinary *b)
{
    RtGpuHeader *h = &s->h;
    memcpy(h->magic, RT_GPU_MAGIC, sizeof h->magic);
    h->version = RT_GPU_VERSION;
    h->arch = (uint32_t)p->target.arch;
    h->math = (uint32_t)p->target.math;
    h->nkernels = p->nkernels;
    h->nfunctions = s->nfunctions;
    for (int32_t k = 0; k < p->nkernels; k++)
        h->nargs += p->kernels[k].nargs;
    h->arena_bytes = (uint64_t)p->arena_bytes;
    uint64_t at = sizeof *h;
    h->tensors = at;
    at += (uint64_t)(h->ninputs + h->noutputs) * sizeof(RtGpuTensor);
    h->functions = at;
    at += (uint64_t)h->nfunctions * sizeof(uint64_t);
    h->kernels = at;
    at += (uint64_t)h->nkernels * sizeof(RtGpuKernel);
    h->args = at;
    at += (uint64_t)h->nargs * sizeof(RtGpuArg);
    h->outputs = at;
    at += (uint64_t)h->noutputs * sizeof(RtGpuOutput);
    h->strings = at;
    h->strings_bytes = s->strings.len;
    h->ptx = align_up(h->strings + h->strings_bytes, 8);
    h->ptx_bytes = strlen(b->ptx) + 1;
    h->cubin = align_up(h->ptx + h->ptx_bytes, 8);
    h->cubin_bytes = b->cubin ? b->cubin_size : 0;
    h->weights = align_up(h->cubin + h->cubin_bytes, RT_GPU_ALIGN);
    h->weights_bytes = (uint64_t)p->weights_bytes;
    h->image_bytes = h->weights + h->weights_bytes;
}

static RtGpuArg image_arg(const CuArg *a)
{
    RtGpuArg r;
    memset(&r, 0, sizeof r);
    r.buf = (int32_t)a->buf;
    r.index = a->index;
    r.offset = a->offset;
    return r;
}

static void write_tensors(const Sections *s, const Graph *g, uint8_t *img)
{
    int32_t nin = s->h.ninputs;
    for (int32_t i = 0; i < nin + s->h.noutputs; i++) {
        int32_t id = i < nin ? ir_input_node(g, i) : g->outputs[i - nin].node;
        const TensorType *t = &g->nodes[id].type;
        RtGpuTensor r;
        memset(&r, 0, sizeof r);
        r.name = s->tensor_names[i];
        r.rank = t->rank;
        for (int32_t d = 0; d < t->rank; d++)
            r.dims[d] = t->dims[d];
        memcpy(img + s->h.tensors + (uint64_t)i * sizeof r, &r, sizeof r);
    }
}

/* The kernels and, after them in one table, all their pointer arguments. */
static void write_kernels(const Sections *s, const CuProgram *p, uint8_t *img)
{
    int32_t first = 0;
    for (int32_t k = 0; k < p->nkernels; k++) {
        const CuKernel *ck = &p->kernels[k];
        if (ck->nargs < 0 || ck->nargs > RT_GPU_MAX_ARGS)
            ICE("kernel '%s' has %d pointer arguments (at most %d)", ck->name, (int)ck->nargs,
                RT_GPU_MAX_ARGS);
        RtGpuKernel r;
        memset(&r, 0, sizeof r);
        r.name = s->kernel_names[k];
        r.op = s->kernel_ops[k];
        r.function = function_index(s, ck->symbol);
        memcpy(r.grid, ck->grid, sizeof r.grid);
        memcpy(r.block, ck->block, sizeof r.block);
        r.shared_bytes = ck->shared_bytes;
        r.first_arg = first;
        r.nargs = ck->nargs;
        r.has_params = ck->has_params;
        r.flops = ck->flops;
        if (ck->has_params) memcpy(r.params, &ck->params, sizeof r.params);
        memcpy(img + s->h.kernels + (uint64_t)k * sizeof r, &r, sizeof r);
        for (int32_t a = 0; a < ck->nargs; a++) {
            RtGpuArg arg = image_arg(&ck->args[a]);
            memcpy(img + s->h.args + (uint64_t)(first + a) * sizeof arg, &arg, sizeof arg);
        }
        first += ck->nargs;
    }
}

static void write_outputs(const Sections *s, const CuProgram *p, uint8_t *img)
{
    for (int32_t k = 0; k < p->noutputs; k++) {
        const CuOutput *o = &p->outputs[k];
        RtGpuOutput r;
        memset(&r, 0, sizeof r);
        r.src = image_arg(&o->src);
        r.items = o->items;
        r.item_bytes = o->item_bytes;
        r.stride_bytes = o->stride_bytes;
        memcpy(img + s->h.outputs + (uint64_t)k * sizeof r, &r, sizeof r);
    }
}

static void sections_free(Sections *s)
{
    free(s->strings.s);
    free(s->functions);
    free(s->function_names);
    free(s->kernel_names);
    free(s->kernel_ops);
    free(s->tensor_names);
}

bool cg_cuda_image(const CuProgram *p, const CuBinary *b, const Graph *g, uint8_t **image,
                   size_t *size, char *err, size_t n)
{
    *image = NULL;
    *size = 0;
    if (!b->ptx) return snprintf(err, n, "no PTX to put into the GPU image"), false;
    if (p->noutputs != g->noutputs)
        ICE("program has %d outputs, graph %d", (int)p->noutputs, (int)g->noutputs);
    Sections s;
    memset(&s, 0, sizeof s);
    s.h.ninputs = ir_num_inputs(g);
    s.h.noutputs = g->noutputs;
    add_string(&s.strings, ""); /* offset 0: the empty string; never an empty section */
    collect_strings(&s, p, g);
    place_sections(&s, p, b);
    uint8_t *img = ir_xcalloc(s.h.image_bytes, 1);
    memcpy(img, &s.h, sizeof s.h);
    write_tensors(&s, g, img);
    for (int32_t f = 0; f < s.nfunctions; f++)
        memcpy(img + s.h.functions + (uint64_t)f * 8, &s.function_names[f], 8);
    write_kernels(&s, p, img);
    write_outputs(&s, p, img);
    memcpy(img + s.h.strings, s.strings.s, s.h.strings_bytes);
    memcpy(img + s.h.ptx, b->ptx, s.h.ptx_bytes);
    if (s.h.cubin_bytes) memcpy(img + s.h.cubin, b->cubin, s.h.cubin_bytes);
    if (s.h.weights_bytes) memcpy(img + s.h.weights, p->weights, s.h.weights_bytes);
    *image = img;
    *size = s.h.image_bytes;
    sections_free(&s);
    return true;
}
