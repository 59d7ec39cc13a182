/* test_codegen.c: whole-pipeline tests of the CPU backend. Small models written
 * in the language (every op and epilogue) and the zoo models are compiled
 * through the passes and LLVM into a model.so, loaded with dlopen, run through
 * the cnnc/model.h API and compared with the reference interpreter (small
 * models) or with its committed outputs (tests/ref/, the zoo):
 *     max|got - want| / max|want| <= 1e-4.
 * MobileNetV2 and ResNet-18 (slow in the sanitizer build) are compiled and
 * checked in test_codegen_variants.c. */
#include "codegen_harness.h"

#include <malloc.h>

/* ---- small models against the interpreter --------------------------------- */

typedef struct Case {
    const char *name;
    const char *text;
} Case;

static const Case cases[] = {
    {"epilogues", "network epilogues(x: f32[N=2, 8, 10, 10]) {\n"
                  "  a = relu(conv2d(x, 16, kernel=3, pad=1) as c1)\n"
                  "  b = relu6(conv2d(a, 16, kernel=3, pad=1) as c2)\n"
                  "  c = sigmoid(conv2d(b, 16, kernel=1) as c3)\n"
                  "  d = tanh(conv2d(c, 16, kernel=3, pad=1, bias=false) as c4)\n"
                  "  e = silu(conv2d(d, 16, kernel=3, stride=2, pad=1) as c5)\n"
                  "  f = leaky_relu(conv2d(e, 16, kernel=3, pad=1) as c6, alpha=0.1)\n"
                  "  g = relu(conv2d(f, 16, kernel=3, pad=1) as c7 + f)\n"
                  "  h = conv2d(g, 16, kernel=3, pad=1, groups=16) as c8 + g\n"
                  "  k = clip(conv2d(h, 24, kernel=3, pad=1) as c9, -0.5, 0.5)\n"
                  "  return k\n"
                  "}\n"},
    {"pools",
     "network pools(x: f32[N=2, 16, 11, 11]) {\n"
     "  y = conv2d(x, 16, kernel=1) as c0\n"
     "  a = maxpool(y, kernel=3, stride=2, pad=1, ceil_mode=true)\n"
     "  b = maxpool(y, kernel=3, stride=1, dilation=2)\n"
     "  c = avgpool(y, kernel=3, stride=2, pad=1, ceil_mode=true, count_include_pad=false)\n"
     "  d = avgpool(y, kernel=3, stride=2, pad=1)\n"
     "  e = global_avgpool(y)\n"
     "  f = adaptive_avgpool(y, 3)\n"
     "  g = adaptive_avgpool(y, [2, 4])\n"
     "  h = maxpool(x, kernel=2, ceil_mode=true)\n"
     "  k = avgpool(x, kernel=3, stride=2, pad=1, ceil_mode=true)\n"
     "  m = global_avgpool(x)\n"
     "  n = adaptive_avgpool(x, [4, 3])\n"
     "  return a, b, c, d, e, f, g, h, k, m, n\n"
     "}\n"},
    {"eltwise", "network eltwise(x: f32[N=2, 16, 6, 6]) {\n"
                "  p = maxpool(conv2d(x, 16, kernel=1) as c0, kernel=2)\n"
                "  a = relu(p); b = relu6(p); c = sigmoid(p); d = tanh(p)\n"
                "  e = silu(p); f = leaky_relu(p, alpha=0.2); g = clip(p, -0.5, 0.25)\n"
                "  s = a + b\n"
                "  m = c * d\n"
                "  z = sigmoid(conv2d(global_avgpool(p), 16, kernel=1) as fc)\n"
                "  se = p * z\n"
                "  sd = p / z; sl = z - p; sr = p - z; sa = z + p\n"
                "  bn = batchnorm(p) as bn\n"
                "  r = relu(x)\n"
                "  t = x + global_avgpool(x)\n"
                "  u = global_avgpool(x) * x\n"
                "  return s, m, e, f, g, se, sd, sl, sr, sa, bn, r, t, u\n"
                "}\n"},
    {"dense", "network dense(x: f32[N=3, 4, 5, 5]) {\n"
              "  f = flatten(x)\n"
              "  h = relu(dense(f, 32) as fc1)\n"
              "  h2 = tanh(dense(h, 32) as fc2) + h\n"
              "  s = softmax(dense(h2, 10) as fc3)\n"
              "  m = sigmoid(h2) * h\n"
              "  k = leaky_relu(dense(m, 7, bias=false) as fc4, alpha=0.3)\n"
              "  return s, m, k\n"
              "}\n"},
    {"misc", "network misc(x: f32[N=2, 8, 7, 7]) {\n"
             "  a = relu(conv2d(x, 8, kernel=3, pad=1) as c1)\n"
             "  b = relu(conv2d(x, 16, kernel=1) as c2)\n"
             "  c = concat(a, b)\n"
             "  d = concat(x, c)\n"
             "  e = dropout(d)\n"
             "  f = flatten(conv2d(e, 8, kernel=1) as c3)\n"
             "  g = softmax(conv2d(e, 8, kernel=1) as c4, axis=1)\n"
             "  h = concat(x, x, axis=3)\n"
             "  k = softmax(h, axis=2)\n"
             "  return f, g, k, c\n"
             "}\n"},
    {"concat_chain", /* DenseNet: each concat a view of the next, read by every kind of op */
     "network concat_chain(x: f32[N=2, 16, 7, 9]) {\n"
     "  a = relu(batchnorm(x) as n0)\n"
     "  c1 = concat(x, conv2d(a, 16, kernel=3, pad=1) as l1)\n"
     "  b = relu(batchnorm(c1) as n1)\n"
     "  c2 = concat(c1, conv2d(b, 16, kernel=1) as l2)\n"
     "  d = maxpool(c2, kernel=3, stride=1, pad=1) + conv2d(c2, 48, kernel=3, pad=1, groups=48) as dw\n"
     "  c3 = concat(c2, relu(conv2d(d, 16, kernel=3, pad=1) as l3))\n"
     "  c4 = concat(c3, conv2d(global_avgpool(c3), 64, kernel=1) as l4 * c3)\n"
     "  t = avgpool(conv2d(c3, 32, kernel=1) as l6, kernel=[1, 3])\n"
     "  return flatten(global_avgpool(c4)), conv2d(c4, 8, kernel=1) as l5, t\n"
     "}\n"},
    {"slices", /* channel slices are views with their input's item stride */
     "network slices(x: f32[N=2, 10, 6, 7]) {\n"
     "  a = relu(conv2d(x, 32, kernel=3, pad=1) as c1)\n"
     "  p = chunk(a, 2)\n"
     "  b = conv2d(p[1], 16, kernel=1) as c2 + p[0]\n"
     "  s = split(x, [3, 7])\n"
     "  c = concat(maxpool(s[1], kernel=2), avgpool(s[0], kernel=2))\n"
     "  d = dense(flatten(global_avgpool(split(a, [24, 8])[0])), 5) as fc + dense(flatten(global_avgpool(split(b, [8, 8])[1])), 5) as fc2\n"
     "  return b, c, d, sigmoid(s[1])\n"
     "}\n"},
    {"kchunk", /* small planes with many channels: the reduction in chunks (conv.c) */
     "network kchunk(x: f32[N=2, 64, 13, 11]) {\n"
     "  a = relu(conv2d(x, 256, kernel=3, stride=2, pad=1) as c1)\n"
     "  b = relu(conv2d(a, 512, kernel=1) as c2)\n"
     "  c = relu(conv2d(b, 256, kernel=1) as c3 + a)\n"
     "  d = conv2d(c, 256, kernel=3, pad=2, dilation=2) as c4 + c\n"
     "  e = conv2d(d, 256, kernel=3, stride=2, pad=1) as c5\n"
     "  f = relu(conv2d(b, 256, kernel=1, stride=2) as c6 + e)\n"
     "  return d, f\n"
     "}\n"},
    {"layers",
     "network layers(x: f32[N=2, 16, 6, 5]) {\n"
     "  c = relu(conv2d(x, 16, kernel=3, pad=1) as c1)\n"
     "  t = permute(c, [0, 2, 3, 1])\n"
     "  a = gelu(dense(layernorm(t, eps=1e-6) as ln1, 24, axis=-1) as fc1)\n"
     "  b = permute(dense(a, 16, axis=-1) as fc2, [0, 3, 1, 2])\n"
     "  d = parameter([16, 1, 1]) as scale * b + c\n"
     "  e = layernorm(d, axis=1) as ln2\n"
     "  f = relu(dense(e, 32, axis=1) as fc3)\n"
     "  g = dense(x, 4, axis=2) as fc4\n"
     "  parts = chunk(f, 2)\n"
     "  h = channel_shuffle(concat(parts[1], conv2d(parts[0], 16, kernel=1) as c2), 4)\n"
     "  k = pad(split(h, [8, 24])[1], [1, 2, 0, 3], value=-0.5)\n"
     "  m = concat(dense(t, 8, axis=-1) as fc5, relu(dense(t, 8, axis=-1) as fc6), axis=1)\n"
     "  n = -mean(e, [2, 3])\n"
     "  return e, g, h, k, m, n\n"
     "}\n"},
    {"constants", /* parameters read as data: folded, or (fold_const off) read in place */
     "network constants(x: f32[N=2, 4]) {\n"
     "  p = parameter([1, 4]) as p\n"
     "  y = dense(p, 4) as d\n"
     "  z = relu(p) + x\n"
     "  return y + x, z, concat(sigmoid(p), p, axis=1)\n"
     "}\n"},
    {"odd_channels",
     "network odd_channels(x: f32[N=1, 3, 9, 9]) {\n"
     "  a = relu(conv2d(x, 12, kernel=3, pad=1) as c1)\n"
     "  b = maxpool(a, kernel=2, ceil_mode=true)\n"
     "  c = batchnorm(b) as bn\n"
     "  d = relu(batchnorm(conv2d(c, 16, kernel=3, pad=1, bias=false) as c2) as bn2)\n"
     "  return c, global_avgpool(d)\n"
     "}\n"},
    {"plain_channels", /* channel counts no block divides: plain values, vectors along rows */
     "network plain_channels(x: f32[N=2, 5, 13, 37]) {\n"
     "  a = maxpool(x, kernel=3, stride=2, pad=1)\n"
     "  b = maxpool(x, kernel=3, stride=1, pad=1)\n"
     "  c = maxpool(x, kernel=2, stride=2, ceil_mode=true)\n"
     "  d = maxpool(x, kernel=3, stride=2, dilation=2, pad=2)\n"
     "  e = relu(conv2d(x, 58, kernel=3, stride=2, pad=1) as c1)\n"
     "  f = conv2d(e, 58, kernel=3, stride=2, pad=1, groups=58) as dw1\n"
     "  g = relu(conv2d(f, 58, kernel=1) as c2 + f)\n"
     "  h = conv2d(g, 58, kernel=3, pad=1, groups=58) as dw2\n"
     "  k = conv2d(h, 24, kernel=3, pad=1, groups=2) as grouped\n"
     "  s = channel_shuffle(conv2d(x, 32, kernel=1) as c3, 2)\n"
     "  t = s + conv2d(x, 32, kernel=1) as c4\n"
     "  u = relu(conv2d(x, 32, kernel=3, pad=1) as c5)\n"
     "  v = conv2d(u, 24, kernel=3, stride=2, pad=1) as c6\n"
     "  w = relu(conv2d(u, 24, kernel=1) as c7 + conv2d(x, 24, kernel=1) as c8)\n"
     "  z = tanh(conv2d(u, 40, kernel=1) as c9)\n"
     "  return a, b, c, d, g, k, t, v, w, z\n"
     "}\n"},
    {"grouped", /* groups of whole blocks: the direct kernel over each group's blocks */
     "network grouped(x: f32[N=2, 6, 11, 23]) {\n"
     "  a = relu(conv2d(x, 64, kernel=3, pad=1) as c1)\n"
     "  b = relu(conv2d(a, 64, kernel=3, stride=2, pad=1, groups=4) as g1)\n"
     "  c = conv2d(b, 128, kernel=1, groups=2) as g2\n"
     "  d = relu(conv2d(c, 128, kernel=3, pad=1, groups=8) as g3 + c)\n"
     "  e = conv2d(a, 32, kernel=3, pad=[1, 0, 1, 2], dilation=2, groups=2) as g4\n"
     "  return d, e\n"
     "}\n"},
    /* 1×1 convs computed inside the depthwise convs that read them (passes/fuse_dw.c,
     * for outputs of 4 MiB or more): from a plain input, odd sizes, 5×5 stride 2,
     * dilated with a residual; planes of one band (512×50×46 at 8 or 16 lanes), and of
     * several (128×99×91, 128×90×100, 48×128×200), each band recomputing the rows it
     * shares with the next, at stride 1 and 2 with uneven padding */
    {"fuse_dw",
     "network fuse_dw(x: f32[N=1, 12, 99, 91]) {\n"
     "  e = silu(conv2d(x, 128, kernel=1) as expand)\n"
     "  d = silu(conv2d(e, 128, kernel=5, stride=2, pad=2, groups=128) as dw)\n"
     "  q = conv2d(d, 16, kernel=1) as reduce\n"
     "  p = relu6(conv2d(q, 512, kernel=1) as expand2)\n"
     "  r = conv2d(q, 512, kernel=1, groups=16) as side\n"
     "  return conv2d(p, 512, kernel=3, pad=2, dilation=2, groups=512) as dw2 + r\n"
     "}\n"},
    {"fuse_dw_bands",
     "network fuse_dw_bands(x: f32[N=1, 8, 90, 100], u: f32[N=1, 3, 128, 200]) {\n"
     "  e = relu6(conv2d(x, 128, kernel=1) as expand)\n"
     "  a = conv2d(e, 128, kernel=3, pad=1, groups=128) as dw\n"
     "  f = conv2d(u, 48, kernel=1) as expand2\n"
     "  b = hardswish(conv2d(f, 48, kernel=5, stride=2, pad=[1, 2, 0, 1], groups=48) as dw2)\n"
     "  return a, b\n"
     "}\n"},
    /* convs computed inside the maxpools that read them (passes/fuse_pool.c, for outputs
     * of 4 MiB or more): a 3×3 stride-2 conv from a plain input over two items, a 1×1
     * conv to a 2×2 ceil-mode pool, a dilated conv of uneven padding to a dilated pool,
     * and a plane cut into bands (for the threads: one register tile of channels) whose
     * last window falls past the conv's rows */
    {"fuse_pool",
     "network fuse_pool(x: f32[N=2, 3, 257, 255], y: f32[N=2, 16, 129, 257],\n"
     "                  z: f32[N=1, 3, 180, 190]) {\n"
     "  a = maxpool(relu(conv2d(x, 32, kernel=3, stride=2, pad=1) as stem), kernel=3, "
     "stride=2, pad=1)\n"
     "  b = maxpool(relu6(conv2d(y, 16, kernel=1) as c1), kernel=2, stride=2, ceil_mode=true)\n"
     "  c = maxpool(conv2d(z, 32, kernel=3, pad=[1, 0, 1, 2], dilation=2) as c2, kernel=3, "
     "stride=2, pad=1, dilation=2)\n"
     "  return a, b, c\n"
     "}\n"},
    {"fuse_pool_bands",
     "network fuse_pool_bands(x: f32[N=1, 3, 80, 420]) {\n"
     "  return maxpool(silu(conv2d(x, 32, kernel=1) as c1), kernel=3, stride=2, "
     "ceil_mode=true)\n"
     "}\n"},
    /* squeeze-and-excitation products of 3.3 MiB read by convs that scale their weights
     * (passes/fuse_scale.c): to a blocked output, a 3×3 conv to 8 channels (a plain
     * output at 16 lanes), and 24 plain channels with a residual */
    {"fuse_scale",
     "network fuse_scale(x: f32[N=2, 16, 112, 120]) {\n"
     "  d = silu(conv2d(x, 32, kernel=1) as c0)\n"
     "  s = sigmoid(conv2d(relu(conv2d(global_avgpool(d), 8, kernel=1) as fc1), 32, kernel=1) as fc2)\n"
     "  a = conv2d(d * s, 32, kernel=1) as proj\n"
     "  b = relu(conv2d(d * s, 8, kernel=3, pad=1) as proj3)\n"
     "  e = conv2d(d * s, 24, kernel=1) as projp + conv2d(x, 24, kernel=1) as side\n"
     "  return a, b, e\n"
     "}\n"},
    /* a scaled conv over two items' 400 pixels, whose reduction runs in chunks
     * (emit_kchunked): 8 output groups or more with 8 or 16 lanes, and an input
     * (800 KB) small enough that chunks pay at batch 2 (chunk_pays) */
    {"fuse_scale_chunked",
     "network fuse_scale_chunked(z: f32[N=2, 256, 16, 25]) {\n"
     "  d = relu(conv2d(z, 256, kernel=3, pad=1, groups=256) as dz)\n"
     "  t = sigmoid(conv2d(global_avgpool(d), 256, kernel=1) as fcz)\n"
     "  return conv2d(d * t, 256, kernel=1) as projk\n"
     "}\n"},
    /* an elementwise op and a conv that read the value they could be written over
     * through a second input too (a slice of it broadcast, the conv's own input): each
     * gets bytes of its own (plan_memory.c) */
    {"overwrite_read_twice",
     "network overwrite_read_twice(x: f32[N=2, 32, 5, 6]) {\n"
     "  y = relu(x)\n"
     "  a = y * split(y, [1, 31])[0]\n"
     "  b = relu(conv2d(a, 32, kernel=3, pad=2, dilation=2) as c1 + a)\n"
     "  return b\n"
     "}\n"},
    /* reductions whose weights outgrow L1 (more than 32 KiB an output group) with too
     * few output groups for emit_kchunked: with 16 lanes each row runs them in chunks
     * (emit_row_chunked), 1×1 convs of 384 channels in three, with a residual, and 3×3
     * convs of 128 in eight, strided and dilated, whose edge tiles drop taps */
    {"row_chunked",
     "network row_chunked(x: f32[N=2, 384, 9, 20]) {\n"
     "  a = relu(conv2d(x, 128, kernel=1) as r0)\n"
     "  b = relu(conv2d(x, 64, kernel=1) as r1 + conv2d(x, 64, kernel=1, bias=false) as r2)\n"
     "  c = relu(conv2d(a, 32, kernel=3, stride=2, pad=1) as r3)\n"
     "  d = conv2d(a, 32, kernel=3, pad=[2, 1, 2, 3], dilation=2) as r4 + conv2d(a, 32, kernel=1) as r5\n"
     "  return b, c, d\n"
     "}\n"},
    /* 1×1 convs of 6-pixel × 4-block register tiles on 32 registers (choose_tile):
     * rows of 17 pixels (tiles of 6, 6 and 5), a reduction of 384 in chunks, a
     * residual, 120 channels into a plain output, and a 28×28 plane cut into rows of 56;
     * a conv with too few work items for them (w4, 26) keeps 13 × 2 */
    {"wide_pointwise",
     "network wide_pointwise(x: f32[N=2, 384, 13, 17], y: f32[N=1, 64, 28, 28]) {\n"
     "  a = relu(conv2d(x, 128, kernel=1) as w0)\n"
     "  b = relu(conv2d(a, 128, kernel=1) as w1 + a)\n"
     "  c = tanh(conv2d(b, 120, kernel=1) as w2)\n"
     "  d = conv2d(y, 256, kernel=1) as w3\n"
     "  e = conv2d(b, 64, kernel=1) as w4\n"
     "  return b, c, d, e\n"
     "}\n"},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void check_case(const Case *c, const Build *b, int32_t threads)
{
    char *so = build_so(c->name, c->text, b);
    Api a = open_so(so);
    float **ins;
    int32_t no;
    float **outs = run_so(&a, threads, &ins, &no);
    Graph *g = load(c->name, c->text, b);
    assert_int_equal(no, g->noutputs);
    InterpResult res;
    char err[256];
    if (!ir_interp(g, (const float *const *)ins, &res, err, sizeof err))
        fail_msg("interp: %s", err);
    for (int32_t k = 0; k < no; k++) {
        char what[256];
        snprintf(what, sizeof what, "%s output %s (cpu %s, block %d, %d threads)", c->name,
                 g->outputs[k].name, b->cpu ? b->cpu : "host", b->block, threads);
        const Node *nd = &g->nodes[g->outputs[k].node];
        expect_close(what, outs[k], res.values[g->outputs[k].node], ir_numel(&nd->type));
    }
    ir_interp_free(&res);
    free_all(outs, no);
    free_all(ins, ir_num_inputs(g));
    ir_graph_free(g);
    dlclose(a.lib);
    remove(so);
    free(so);
}

static void test_cases(const Build *b, int32_t threads)
{
    for (int i = 0; i < NCASES; i++)
        check_case(&cases[i], b, threads);
}

/* cnnc stores a checksum next to the packed weights: the model.so verifies, and
 * the same file with one byte of its weights changed is CNN_ERR_CORRUPT. */
static void test_weights_checksum(void **state)
{
    const Build b = {.block = -1, .opt = 1};
    Graph *g = load(cases[0].name, cases[0].text, &b);
    optimize(g, &b);
    Diag d;
    Cg cg;
    lower_graph(g, &b, &d, &cg);
    char so[512], bad[512], err[4096], head[64];
    assert_true(cg.blob && cg.blob->size > 1024);
    memcpy(head, cg.blob->data + 512, sizeof head);
    snprintf(so, sizeof so, "%s/checksum.so", tmpdir);
    snprintf(bad, sizeof bad, "%s/checksum_damaged.so", tmpdir);
    if (!cg_link_shared(&cg, RUNTIME_LIB, so, err, sizeof err)) fail_msg("link: %s", err);
    cg_free(&cg);
    ir_diag_fini(&d);
    ir_graph_free(g);
    FILE *f = fopen(so, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size_t n = (size_t)ftell(f);
    rewind(f);
    char *bytes = ir_xmalloc(n);
    assert_int_equal(fread(bytes, 1, n, f), n);
    fclose(f);
    char *at = memmem(bytes, n, head, sizeof head);
    assert_non_null(at); /* once: a place in the weights */
    assert_null(memmem(at + 1, n - (size_t)(at + 1 - bytes), head, sizeof head));
    at[5] ^= 0x40;
    f = fopen(bad, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    free(bytes);
    for (int k = 0; k < 2; k++) {
        Api a = open_so(k ? bad : so);
        cnn_model *m;
        assert_int_equal(a.create(NULL, &m), CNN_OK);
        assert_int_equal(a.verify(m), k ? CNN_ERR_CORRUPT : CNN_OK);
        if (k) assert_non_null(strstr(a.last_error(), "bytes of weights hash to"));
        a.destroy(m);
        dlclose(a.lib);
    }
    remove(so);
    remove(bad);
}

/* The packed weights of a case, lowered with fresh heap memory filled with `fill`
 * (glibc's M_PERTURB): malloc'd. */
static char *packed_weights(const Case *c, int fill, int64_t *size)
{
    mallopt(M_PERTURB, fill);
    const Build b = {.block = -1, .opt = 1};
    Graph *g = load(c->name, c->text, &b);
    optimize(g, &b);
    Diag d;
    Cg cg;
    lower_graph(g, &b, &d, &cg);
    *size = cg.blob ? cg.blob->size : 0;
    char *copy = ir_xmalloc((size_t)*size + 1);
    if (*size) memcpy(copy, cg.blob->data, (size_t)*size);
    cg_free(&cg);
    ir_diag_fini(&d);
    ir_graph_free(g);
    mallopt(M_PERTURB, 0);
    return copy;
}

/* Every byte of the packed weights is written, padding included (a partial block's
 * lanes are zeros): the blob is the same whatever the heap held before. A byte left
 * as malloc gave it differs between two fills of fresh memory. */
static void test_weights_written(void **state)
{
    for (int i = 0; i < NCASES; i++) {
        int64_t na, nb;
        char *a = packed_weights(&cases[i], 0x5a, &na), *b = packed_weights(&cases[i], 0xa5, &nb);
        assert_int_equal(na, nb);
        for (int64_t k = 0; k < na; k++)
            if (a[k] != b[k]) fail_msg("%s: byte %lld of the weights was never written",
                                       cases[i].name, (long long)k);
        free(a), free(b);
    }
}

static void test_small_host(void **state)
{
    (void)state;
    test_cases(&(Build){.block = -1, .opt = 2}, 1);
    test_cases(&(Build){.block = -1, .opt = 2}, 2);
}

static void test_small_plain(void **state)
{
    (void)state;
    test_cases(&(Build){.block = 0, .opt = 2}, 2);
}

static void test_small_avx2(void **state)
{
    (void)state;
    test_cases(&(Build){.cpu = "x86-64-v3", .block = -1, .opt = 2}, 2);
    assert_int_equal(cg_target_lanes(&(CgTarget){.cpu = "x86-64-v3"}), 8);
}

static void test_small_sse_O0(void **state)
{
    (void)state;
    assert_int_equal(cg_target_lanes(&(CgTarget){.cpu = "x86-64"}), 4);
    test_cases(&(Build){.cpu = "x86-64", .block = -1, .opt = 0}, 1);
}

/* The compiled code agrees with the interpreter with each optional pass
 * switched off in turn (cnnc --disable-pass=P). */
static void test_passes_off(void **state)
{
    (void)state;
    for (int32_t p = 0; p < pass_count; p++)
        if (!pass_pipeline[p].required)
            test_cases(&(Build){.block = -1, .opt = 2, .disabled = 1ull << p}, 2);
    check_zoo_variants("mnist_cnn", 1);
    check_zoo_variants("squeezenet1_1", 1);
}

static void test_zoo_small(void **state)
{
    (void)state;
    static const char *const models[] = {"mnist_cnn", "mlp"};
    for (int i = 0; i < 2; i++) {
        check_zoo(models[i], 1);
        check_zoo(models[i], 4);
    }
}

static void test_squeezenet(void **state)
{
    (void)state;
    check_zoo("squeezenet1_1", 1);
    check_zoo("squeezenet1_1", 4);
}

/* ---- the order of work items ---------------------------------------------- */

/* 1×1 convs whose outputs a Winograd conv (w) and a stride-2 3×3 conv (s) read, at a
 * batch of 3 (ranges of unequal length on 2 threads; 3 threads give one image each). */
static const char before_3x3[] = "network before_3x3(x: f32[N=3, 64, 28, 28]) {\n"
                                 "  a = relu(conv2d(x, 64, kernel=1) as p)\n"
                                 "  b = relu(conv2d(a, 64, kernel=3, pad=1) as w)\n"
                                 "  c = relu(conv2d(b, 128, kernel=1) as q)\n"
                                 "  d = relu(conv2d(c, 64, kernel=3, stride=2, pad=1) as s)\n"
                                 "  return d\n"
                                 "}\n";

/* Whether function `name` of m has an instruction named "item" (cg_item's, backwards). */
static bool runs_backwards(LLVMModuleRef m, const char *name)
{
    LLVMValueRef f = LLVMGetNamedFunction(m, name);
    assert_non_null(f);
    for (LLVMBasicBlockRef bb = LLVMGetFirstBasicBlock(f); bb; bb = LLVMGetNextBasicBlock(bb))
        for (LLVMValueRef in = LLVMGetFirstInstruction(bb); in; in = LLVMGetNextInstruction(in)) {
            size_t len;
            const char *v = LLVMGetValueName2(in, &len);
            if (!strcmp(v, "item"))
                return true;
        }
    return false;
}

/* The convs before 3×3 convs run each thread's items backwards (module.c), the 3×3 convs
 * forwards, and the model still computes the interpreter's values on 1, 2 and 3 threads. */
static void test_backwards_before_3x3(void **state)
{
    (void)state;
    const Build b = {.block = -1, .opt = 0};
    Graph *g = load("before_3x3", before_3x3, &b);
    optimize(g, &b);
    int32_t w = -1;
    for (int32_t i = 0; i < g->nnodes; i++)
        if (!strcmp(g->nodes[i].name, "w"))
            w = i;
    assert_true(w >= 0);
    assert_int_not_equal(g->nodes[w].attrs.conv.winograd, 0);
    Diag d;
    Cg cg;
    lower_graph(g, &b, &d, &cg);
    assert_true(runs_backwards(cg.mod, "p"));
    assert_false(runs_backwards(cg.mod, "w"));
    assert_true(runs_backwards(cg.mod, "q"));
    assert_false(runs_backwards(cg.mod, "s"));
    cg_free(&cg);
    ir_diag_fini(&d);
    ir_graph_free(g);

    const Case c = {"before_3x3", before_3x3};
    for (int32_t threads = 1; threads <= 3; threads++)
        check_case(&c, &b, threads);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights_checksum), cmocka_unit_test(test_weights_written),
        cmocka_unit_test(test_small_host), cmocka_unit_test(test_small_plain),
        cmocka_unit_test(test_small_avx2), cmocka_unit_test(test_small_sse_O0),
        cmocka_unit_test(test_zoo_small),  cmocka_unit_test(test_squeezenet),
        cmocka_unit_test(test_passes_off), cmocka_unit_test(test_backwards_before_3x3),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
