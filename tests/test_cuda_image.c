/* test_cuda_image.c: the GPU image a CUDA model.so holds (runtime/rt_gpu.h),
 * serialized from generated programs with made-up PTX and cubin: every
 * section is walked and checked against the program and graph it came from,
 * the runtime's reader accepts it, and serializing twice gives the same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"
#include "rt_gpu.h"

#include "test_util.h"

static CuProgram *generate(Graph *g, CuMath math, int32_t arch)
{
    CuTarget t = {arch, math};
    return cuda_program(g, &t);
}

/* Made-up code: the serializer copies bytes, NULs inside a cubin included. */
static const char fake_ptx[] = "//\n.version 8.0\n.target sm_80\n.address_size 64\n";
static const char fake_cubin[] = "\177ELF\2\1\1\0cubin\0bytes of odd length";

static CuBinary fake_binary(bool cubin)
{
    CuBinary b = {.ptx = (char *)fake_ptx, .ptx_size = sizeof fake_ptx};
    if (cubin) b.cubin = (char *)fake_cubin, b.cubin_size = sizeof fake_cubin - 1;
    return b;
}

static uint8_t *serialize(const CuProgram *p, const CuBinary *b, const Graph *g, size_t *size)
{
    char err[256];
    uint8_t *img = NULL;
    assert_true(cg_cuda_image(p, b, g, &img, size, err, sizeof err));
    assert_non_null(img);
    return img;
}

static const char *string_at(const uint8_t *img, const RtGpuHeader *h, uint64_t off)
{
    assert_true(off < h->strings_bytes);
    return (const char *)img + h->strings + off;
}

/* Sections in the order of the header, each aligned, none overlapping the next. */
static void check_sections(const RtGpuHeader *h, size_t size)
{
    uint64_t ntensors = (uint64_t)(h->ninputs + h->noutputs);
    uint64_t at[][2] = {
        {h->tensors, ntensors * sizeof(RtGpuTensor)},
        {h->functions, (uint64_t)h->nfunctions * 8},
        {h->kernels, (uint64_t)h->nkernels * sizeof(RtGpuKernel)},
        {h->args, (uint64_t)h->nargs * sizeof(RtGpuArg)},
        {h->outputs, (uint64_t)h->noutputs * sizeof(RtGpuOutput)},
        {h->strings, h->strings_bytes},
        {h->ptx, h->ptx_bytes},
        {h->cubin, h->cubin_bytes},
        {h->weights, h->weights_bytes},
    };
    uint64_t end = sizeof *h;
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        assert_int_equal(at[i][0] % 8, 0);
        assert_true(at[i][0] >= end);
        assert_true(at[i][0] - end < (i == 8 ? RT_GPU_ALIGN : 8)); /* no gaps but alignment */
        end = at[i][0] + at[i][1];
    }
    assert_int_equal(h->weights % RT_GPU_ALIGN, 0);
    assert_int_equal(end, h->image_bytes);
    assert_int_equal(h->image_bytes, size);
}

static void check_header(const RtGpuHeader *h, const CuProgram *p, const Graph *g)
{
    assert_memory_equal(h->magic, "CNNCGPU", 8);
    assert_int_equal(h->version, RT_GPU_VERSION);
    assert_int_equal(h->arch, p->target.arch);
    assert_int_equal(h->math, p->target.math == CU_MATH_TF32 ? RT_GPU_MATH_TF32
                                                             : RT_GPU_MATH_F32);
    assert_int_equal(h->ninputs, ir_num_inputs(g));
    assert_int_equal(h->noutputs, g->noutputs);
    assert_int_equal(h->nkernels, p->nkernels);
    int32_t nargs = 0;
    for (int32_t k = 0; k < p->nkernels; k++)
        nargs += p->kernels[k].nargs;
    assert_int_equal(h->nargs, nargs);
    assert_int_equal(h->arena_bytes, p->arena_bytes);
    assert_int_equal(h->weights_bytes, p->weights_bytes);
    assert_true(h->strings_bytes > 0);
}

/* Inputs in the order of their nodes (their plan index), then the outputs. */
static void check_tensors(const uint8_t *img, const RtGpuHeader *h, const Graph *g)
{
    for (int32_t i = 0; i < h->ninputs + h->noutputs; i++) {
        RtGpuTensor t;
        memcpy(&t, img + h->tensors + (uint64_t)i * sizeof t, sizeof t);
        int32_t id = i < h->ninputs ? ir_input_node(g, i) : g->outputs[i - h->ninputs].node;
        const Node *nd = &g->nodes[id];
        if (i < h->ninputs) assert_int_equal(nd->mem.index, i);
        assert_string_equal(string_at(img, h, t.name),
                            i < h->ninputs ? nd->name : g->outputs[i - h->ninputs].name);
        assert_int_equal(t.rank, nd->type.rank);
        assert_int_equal(t.pad_, 0);
        for (int32_t d = 0; d < CNN_MAX_RANK; d++)
            assert_int_equal(t.dims[d], d < t.rank ? nd->type.dims[d] : 0);
    }
}

static void check_arg(const RtGpuArg *got, const CuArg *want)
{
    assert_int_equal(got->buf, (int32_t)want->buf);
    assert_int_equal(got->index, want->index);
    assert_int_equal(got->offset, want->offset);
}

/* Distinct symbols in first-use order; each launch as the program has it. */
static void check_kernels(const uint8_t *img, const RtGpuHeader *h, const CuProgram *p)
{
    int32_t nf = 0, first = 0;
    for (int32_t k = 0; k < p->nkernels; k++) {
        const CuKernel *ck = &p->kernels[k];
        RtGpuKernel r;
        memcpy(&r, img + h->kernels + (uint64_t)k * sizeof r, sizeof r);
        assert_string_equal(string_at(img, h, r.name), ck->name);
        assert_string_equal(string_at(img, h, r.op), ck->op);
        assert_true(r.function >= 0 && r.function < h->nfunctions);
        assert_true(r.function <= nf); /* a new symbol takes the next index */
        nf += r.function == nf;
        uint64_t sym;
        memcpy(&sym, img + h->functions + (uint64_t)r.function * 8, 8);
        assert_string_equal(string_at(img, h, sym), ck->symbol);
        assert_memory_equal(r.grid, ck->grid, sizeof r.grid);
        assert_memory_equal(r.block, ck->block, sizeof r.block);
        assert_int_equal(r.shared_bytes, ck->shared_bytes);
        assert_int_equal(r.first_arg, first);
        assert_int_equal(r.nargs, ck->nargs);
        assert_int_equal(r.has_params, ck->has_params);
        assert_int_equal(r.pad_, 0);
        assert_int_equal(r.flops, ck->flops);
        CuParams zero;
        memset(&zero, 0, sizeof zero);
        assert_memory_equal(r.params, ck->has_params ? &ck->params : &zero, RT_GPU_PARAM_BYTES);
        for (int32_t a = 0; a < ck->nargs; a++) {
            RtGpuArg arg;
            memcpy(&arg, img + h->args + (uint64_t)(first + a) * sizeof arg, sizeof arg);
            check_arg(&arg, &ck->args[a]);
        }
        first += ck->nargs;
    }
    assert_int_equal(nf, h->nfunctions);
    for (int32_t f = 0; f < nf; f++)
        for (int32_t e = 0; e < f; e++) {
            uint64_t a, b;
            memcpy(&a, img + h->functions + (uint64_t)f * 8, 8);
            memcpy(&b, img + h->functions + (uint64_t)e * 8, 8);
            assert_string_not_equal(string_at(img, h, a), string_at(img, h, b));
        }
}

/* Returns how many outputs are strided at their source. */
static int check_outputs(const uint8_t *img, const RtGpuHeader *h, const CuProgram *p)
{
    int strided = 0;
    for (int32_t k = 0; k < p->noutputs; k++) {
        RtGpuOutput r;
        memcpy(&r, img + h->outputs + (uint64_t)k * sizeof r, sizeof r);
        check_arg(&r.src, &p->outputs[k].src);
        assert_int_equal(r.items, p->outputs[k].items);
        assert_int_equal(r.item_bytes, p->outputs[k].item_bytes);
        assert_int_equal(r.stride_bytes, p->outputs[k].stride_bytes);
        strided += r.items > 1 && r.stride_bytes > r.item_bytes;
    }
    return strided;
}

/* Strings end in NUL; PTX, cubin and weights are the bytes given. */
static void check_blobs(const uint8_t *img, const RtGpuHeader *h, const CuProgram *p,
                        const CuBinary *b)
{
    assert_int_equal(img[h->strings + h->strings_bytes - 1], 0);
    assert_int_equal(h->ptx_bytes, strlen(b->ptx) + 1);
    assert_memory_equal(img + h->ptx, b->ptx, h->ptx_bytes);
    assert_int_equal(h->cubin_bytes, b->cubin ? b->cubin_size : 0);
    if (b->cubin) assert_memory_equal(img + h->cubin, b->cubin, b->cubin_size);
    if (p->weights_bytes) assert_memory_equal(img + h->weights, p->weights, p->weights_bytes);
}

/* Returns how many graph outputs are strided and how many launches share a function. */
static void check_image(const char *name, const char *text, CuMath math, int32_t arch,
                        bool cubin, int *strided, int *shared)
{
    Graph *g = load_model(name, text, 0, 3);
    CuProgram *p = generate(g, math, arch);
    CuBinary b = fake_binary(cubin);
    size_t size, size2;
    uint8_t *img = serialize(p, &b, g, &size);
    RtGpuHeader h;
    assert_true(size >= sizeof h);
    memcpy(&h, img, sizeof h);
    check_header(&h, p, g);
    check_sections(&h, size);
    check_tensors(img, &h, g);
    check_kernels(img, &h, p);
    *strided = check_outputs(img, &h, p);
    *shared = h.nkernels - h.nfunctions;
    check_blobs(img, &h, p, &b);
    RtGpuView v; /* the runtime's own checks accept it */
    assert_int_equal(rt_gpu_view(img, &v), 1);
    assert_int_equal(v.h->nkernels, p->nkernels);
    rt_gpu_view_free(&v);
    uint8_t *again = serialize(p, &b, g, &size2);
    assert_int_equal(size2, size);
    assert_memory_equal(again, img, size);
    free(again);
    free(img);
    cg_cuda_free(p);
    ir_graph_free(g);
}

static void test_mnist(void **state)
{
    int strided, shared;
    check_image("mnist_cnn", NULL, CU_MATH_TF32, 80, true, &strided, &shared);
    assert_int_equal(strided, 0);
    check_image("mnist_cnn", NULL, CU_MATH_F32, 90, false, &strided, &shared);
    assert_int_equal(strided, 0);
}

/* Two inputs, three outputs (one of them strided: a view of a value written into a
 * concat), kernels shared by launches. */
static void test_inputs_outputs(void **state)
{
    int strided, shared;
    check_image("two", "network two(a: f32[N=2, 3, 5, 5], b: f32[N=2, 4, 5, 5]) {\n"
                "  y = relu(conv2d(a, 6, kernel=3, pad=1) as c1)\n"
                "  w = relu(conv2d(y, 6, kernel=3, pad=1) as c2)\n"
                "  z = concat(w, relu(conv2d(b, 6, kernel=1) as c3))\n"
                "  return flatten(w) as wf, dense(flatten(global_avgpool(z)), 7) as fc, z\n}\n",
                CU_MATH_TF32, 80, true, &strided, &shared);
    assert_int_equal(strided, 1);
    assert_true(shared >= 1);
}

/* mnist_cnn's image for sm_80 in `math`, with a made-up cubin; its graph,
 * program, size and header. */
static uint8_t *mnist_image(CuMath math, Graph **g, CuProgram **p, size_t *size, RtGpuHeader *h)
{
    *g = load_model("mnist_cnn", NULL, 0, 3);
    *p = generate(*g, math, 80);
    CuBinary b = fake_binary(true);
    uint8_t *img = serialize(*p, &b, *g, size);
    memcpy(h, img, sizeof *h);
    return img;
}

/* A different math mode changes the header's math field and the code, not the layout. */
static void test_math_field(void **state)
{
    Graph *g;
    CuProgram *p;
    size_t size;
    RtGpuHeader h;
    uint8_t *img = mnist_image(CU_MATH_F32, &g, &p, &size, &h);
    assert_int_equal(h.math, RT_GPU_MATH_F32);
    assert_int_equal(h.arch, 80);
    free(img);
    char err[128];
    CuBinary none = {0};
    uint8_t *out = (uint8_t *)&err;
    assert_false(cg_cuda_image(p, &none, g, &out, &size, err, sizeof err));
    assert_null(out);
    assert_non_null(strstr(err, "PTX"));
    cg_cuda_free(p);
    ir_graph_free(g);
}

/* Refused by rt_gpu_view with `why` in cnn_last_error after `damage` at byte `at`. */
static void expect_refused(const uint8_t *img, size_t size, size_t at, const void *damage,
                           size_t n, const char *why)
{
    uint8_t *copy = malloc(size);
    assert_non_null(copy);
    memcpy(copy, img, size);
    memcpy(copy + at, damage, n);
    RtGpuView v;
    assert_int_equal(rt_gpu_view(copy, &v), 0);
    assert_null(v.tensor_bytes);
    assert_non_null(strstr(cnn_last_error(), why));
    free(copy);
}

/* Output 0 copied from `o` instead: refused (or not) by rt_gpu_view. */
static void expect_output(const uint8_t *img, size_t size, const RtGpuHeader *h, RtGpuOutput o,
                          int accepted)
{
    if (!accepted) {
        expect_refused(img, size, h->outputs, &o, sizeof o, "refers outside");
        return;
    }
    uint8_t *copy = malloc(size);
    assert_non_null(copy);
    memcpy(copy, img, size);
    memcpy(copy + h->outputs, &o, sizeof o);
    RtGpuView v;
    assert_int_equal(rt_gpu_view(copy, &v), 1);
    rt_gpu_view_free(&v);
    free(copy);
}

/* A copy out must end inside its source buffer, not only start there: at the
 * arena's end, a huge stride, an extent that overflows are refused; the last
 * bytes of the arena, and blocks strided across all of it, are fine. */
static void check_output_extents(const uint8_t *img, size_t size, const RtGpuHeader *h)
{
    RtGpuOutput o;
    memcpy(&o, img + h->outputs, sizeof o);
    int64_t bytes = o.items * o.item_bytes, arena = (int64_t)h->arena_bytes;
    assert_true(bytes >= 8 && bytes % 2 == 0 && arena >= 2 * bytes);
    RtGpuArg in_arena = {RT_GPU_ARENA, 0, arena - bytes};
    expect_output(img, size, h, (RtGpuOutput){in_arena, 1, bytes, bytes}, 1);
    in_arena.offset = arena;
    expect_output(img, size, h, (RtGpuOutput){in_arena, 1, bytes, bytes}, 0);
    in_arena.offset = arena - bytes + 4;
    expect_output(img, size, h, (RtGpuOutput){in_arena, 1, bytes, bytes}, 0);
    in_arena.offset = 0;
    int64_t half = bytes / 2;
    expect_output(img, size, h, (RtGpuOutput){in_arena, 2, half, arena - half}, 1);
    expect_output(img, size, h, (RtGpuOutput){in_arena, 2, half, arena - half + 1}, 0);
    expect_output(img, size, h, (RtGpuOutput){in_arena, 2, half, (int64_t)1 << 40}, 0);
    expect_output(img, size, h, (RtGpuOutput){in_arena, bytes, 1, INT64_MAX}, 0);
    RtGpuArg weights = {RT_GPU_WEIGHTS, 0, (int64_t)h->weights_bytes - half};
    expect_output(img, size, h, (RtGpuOutput){weights, 2, half, half}, 0);
    RtGpuArg input = {RT_GPU_INPUT, 0, 0};
    expect_output(img, size, h, (RtGpuOutput){input, 1, bytes, bytes}, 1);
}

/* The runtime never trusts an image: each kind of damage is refused, with its reason. */
static void test_damaged(void **state)
{
    Graph *g;
    CuProgram *p;
    size_t size;
    RtGpuHeader h;
    uint8_t *img = mnist_image(CU_MATH_TF32, &g, &p, &size, &h);
    uint32_t ver = RT_GPU_VERSION + 1;
    uint64_t far = h.image_bytes, odd = h.kernels + 4;
    int32_t fn = h.nfunctions, neg = -1, buf = 9;
    int64_t beyond = (int64_t)h.arena_bytes + 1;
    const RtGpuKernel *k0 = (const RtGpuKernel *)(img + h.kernels);
    const RtGpuArg *a0 = (const RtGpuArg *)(img + h.args);
    expect_refused(img, size, 0, "CNNCCPU", 8, "bad magic");
    expect_refused(img, size, offsetof(RtGpuHeader, version), &ver, 4, "version");
    expect_refused(img, size, offsetof(RtGpuHeader, kernels), &far, 8, "outside");
    expect_refused(img, size, offsetof(RtGpuHeader, kernels), &odd, 8, "outside");
    expect_refused(img, size, offsetof(RtGpuHeader, nkernels), &neg, 4, "outside");
    expect_refused(img, size, (size_t)((const uint8_t *)&k0->function - img), &fn, 4,
                   "refers outside");
    expect_refused(img, size, (size_t)((const uint8_t *)&a0->buf - img), &buf, 4,
                   "refers outside");
    expect_refused(img, size, h.ptx + h.ptx_bytes - 1, "x", 1, "refers outside");
    /* an arena argument past the arena's end */
    for (int32_t i = 0; i < h.nargs; i++)
        if (a0[i].buf == RT_GPU_ARENA) {
            expect_refused(img, size, (size_t)((const uint8_t *)&a0[i].offset - img), &beyond, 8,
                           "refers outside");
            break;
        }
    check_output_extents(img, size, &h);
    RtGpuView v;
    assert_int_equal(rt_gpu_view(NULL, &v), 0);
    assert_int_equal(rt_gpu_view(img, &v), 1); /* the undamaged one still reads */
    rt_gpu_view_free(&v);
    free(img);
    cg_cuda_free(p);
    ir_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_mnist),
        cmocka_unit_test(test_inputs_outputs),
        cmocka_unit_test(test_math_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
