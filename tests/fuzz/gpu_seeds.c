/* gpu_seeds.c: `gpu_seeds DIR` writes DIR/NAME.img, the GPU images of two small
 * networks with made-up PTX and cubin, as seeds of fuzz_gpu_image. */
#include "cuda.h"
#include "frontend.h"
#include "passes.h"

#include <stdio.h>
#include <stdlib.h>

static const struct {
    const char *name, *text;
} nets[] = {
    {"conv_pool_dense",
     "network a(x: f32[N=1, 2, 6, 6]) {\n"
     "  y = relu(conv2d(x, 4, kernel=3, pad=1) as c1)\n"
     "  return dense(flatten(maxpool(y, kernel=2)), 3) as fc\n"
     "}\n"},
    {"residual_two_outputs",
     "network b(x: f32[N=2, 4, 4, 4]) {\n"
     "  y = batchnorm(conv2d(x, 4, kernel=1) as c) as bn\n"
     "  return relu(y + x), global_avgpool(x)\n"
     "}\n"},
};

static const char ptx[] = "//\n.version 8.0\n.target sm_80\n.address_size 64\n";
static const char cubin[] = "\177ELF\2\1\1\0cubin";

static bool write_image(const char *dir, const char *name, const char *text)
{
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = fe_load_string(name, text, NULL, &d);
    PassOptions po;
    pass_options_init(&po);
    po.block = 0;
    CuProgram *p = NULL;
    if (g) {
        fe_random_weights(g, 1);
        if (pass_run_pipeline(g, &po, &d))
            p = cg_cuda_generate(g, &(CuTarget){80, CU_MATH_TF32}, &d);
    }
    CuBinary b = {.ptx = (char *)ptx, .ptx_size = sizeof ptx, .cubin = (char *)cubin,
                  .cubin_size = sizeof cubin - 1};
    uint8_t *img = NULL;
    size_t size = 0;
    char err[256], path[1024];
    bool ok = p && cg_cuda_image(p, &b, g, &img, &size, err, sizeof err);
    snprintf(path, sizeof path, "%s/%s.img", dir, name);
    FILE *f = ok ? fopen(path, "wb") : NULL;
    ok = f && fwrite(img, 1, size, f) == size;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "gpu_seeds: cannot write %s\n", path);
    free(img);
    if (p)
        cg_cuda_free(p);
    ir_graph_free(g);
    ir_diag_fini(&d);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gpu_seeds DIR\n");
        return 2;
    }
    int status = 0;
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++)
        if (!write_image(argv[1], nets[i].name, nets[i].text))
            status = 1;
    return status;
}
