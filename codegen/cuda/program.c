/* program.c: a CUDA program from a planned graph: the kernel of each node in
 * node order (through the emitters of kernels.c), the weights blob, the output
 * copies, and the source text in which nodes with identical code share one
 * kernel definition. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu.h"

void cu_text_add(CuText *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) ICE("bad format '%s'", fmt);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->s = ir_xrealloc(t->s, t->cap);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* Room for one more element in an arena array of `*cap` elements. */
static void *grow(Arena *a, void *old, size_t elem, int32_t n, int32_t *cap)
{
    if (n < *cap) return old;
    int32_t c = *cap ? *cap * 2 : 16;
    void *p = ir_alloc(a, elem * (size_t)c);
    if (old) memcpy(p, old, elem * (size_t)n);
    *cap = c;
    return p;
}

const Node *cu_storage(const CuGen *g, int32_t id, int64_t *offset)
{
    const Node *nd = &g->g->nodes[id];
    *offset = 0;
    while (nd->mem.kind == MEM_ALIAS) {
        *offset += nd->mem.offset;
        nd = &g->g->nodes[nd->inputs[0]];
    }
    *offset += nd->mem.offset;
    return nd;
}

int64_t cu_item_stride(const CuGen *g, int32_t id)
{
    int64_t off;
    const Node *nd = cu_storage(g, id, &off);
    if (nd->mem.batch_stride) return nd->mem.batch_stride;
    const TensorType *t = &nd->type; /* the storage's items (a slice views its input's) */
    return t->rank && t->dims[0] ? ir_numel(t) / t->dims[0] : ir_numel(t);
}

int cu_act_code(Op a)
{
    if (a != OP_NO_ACT && !ir_op_is_act(a))
        ICE("bad activation %d", (int)a);
    return (int)a;
}

/* "CU_OP_LEAKY_RELU": the prelude's name of an activation. */
static const char *act_macro(Op op, char *buf, size_t n)
{
    size_t i = (size_t)snprintf(buf, n, "CU_OP_");
    for (const char *c = ir_ops[op].name; *c && i + 1 < n; c++)
        buf[i++] = (char)toupper((unsigned char)*c);
    buf[i] = 0;
    return buf;
}

/* "#define CU_OP_RELU 5" for every activation: the numbers cu_act switches on. */
static void add_act_codes(CuText *src)
{
    char name[64];
    for (int op = 0; op < OP_COUNT; op++)
        if (ir_op_is_act((Op)op))
            cu_text_add(src, "#define %s %d\n", act_macro((Op)op, name, sizeof name), op);
}

/* Whether cu_act in the prelude has a case for the activation. */
static bool prelude_has_act(Op op)
{
    char name[64], label[80];
    snprintf(label, sizeof label, "case %s:", act_macro(op, name, sizeof name));
    return strstr(cg_cuda_prelude, label) != NULL;
}

const char *cu_float(CuGen *g, float v)
{
    if (v != v) return "__int_as_float(0x7fc00000)";
    if (v > 3.4e38f || v < -3.4e38f)
        return v > 0 ? "__int_as_float(0x7f800000)" : "__int_as_float(0xff800000)";
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", (double)v); /* 9 digits read back exactly */
    bool point = strpbrk(buf, ".e") != NULL;
    return ir_strfmt(g->p->arena, "%s%sf", buf, point ? "" : ".0");
}

bool cu_fits(CuGen *g, int32_t id, int64_t elements)
{
    if (elements < INT32_MAX / 2) return true;
    const Node *nd = &g->g->nodes[id];
    ir_error(g->d, nd->loc, "'%s' is too large for the CUDA backend (%lld elements; 32-bit "
             "indices)", nd->name, (long long)elements);
    return false;
}

/* ---- building a kernel ---------------------------------------------------- */

void cu_begin(CuGen *g, int32_t id, const char *op)
{
    CuProgram *p = g->p;
    p->kernels = grow(p->arena, p->kernels, sizeof *p->kernels, p->nkernels, &g->capkernels);
    g->k = &p->kernels[p->nkernels++];
    memset(g->k, 0, sizeof *g->k);
    g->k->node = id;
    g->k->name = g->g->nodes[id].name;
    g->k->op = op;
    g->k->grid[1] = g->k->grid[2] = g->k->block[1] = g->k->block[2] = 1;
    g->params.len = g->body.len = 0;
    g->capargs = 0;
    cu_text_add(&g->params, "%s", "");
    cu_text_add(&g->body, "%s", "");
}

static const char *add_param(CuGen *g, CuArg a)
{
    CuKernel *k = g->k;
    k->args = grow(g->p->arena, k->args, sizeof *k->args, k->nargs, &g->capargs);
    k->args[k->nargs] = a;
    const char *name = ir_strfmt(g->p->arena, "p%d", k->nargs);
    cu_text_add(&g->params, "%sfloat *__restrict__ %s", k->nargs ? ", " : "", name);
    k->nargs++;
    return name;
}

/* Appends `n` floats to the weights blob; returns their byte offset. */
static int64_t blob_add(CuGen *g, const char *name, const float *data, int64_t n)
{
    int64_t al = CU_WEIGHT_ALIGN / 4, at = (g->nblob + al - 1) / al * al;
    if (at + n > g->capblob) {
        g->capblob = (at + n) * 2;
        g->blob = ir_xrealloc(g->blob, (size_t)g->capblob * sizeof *g->blob);
    }
    memset(g->blob + g->nblob, 0, (size_t)(at - g->nblob) * sizeof *g->blob);
    memcpy(g->blob + at, data, (size_t)n * sizeof *data);
    g->nblob = at + n;
    CuProgram *p = g->p;
    p->weights_layout =
        grow(p->arena, p->weights_layout, sizeof *p->weights_layout, p->nweights, &g->capweights);
    p->weights_layout[p->nweights++] = (CuWeight){ir_strdup(p->arena, name), at * 4, n * 4};
    return at * 4;
}

/* Where node `id`'s value lives at run time (a constant goes into the blob). */
static CuArg storage_arg(CuGen *g, int32_t id)
{
    int64_t off;
    const Node *nd = cu_storage(g, id, &off);
    switch (nd->mem.kind) {
    case MEM_ARENA: return (CuArg){CU_BUF_ARENA, 0, off};
    case MEM_INPUT: return (CuArg){CU_BUF_INPUT, nd->mem.index, off};
    case MEM_OUTPUT: return (CuArg){CU_BUF_OUTPUT, nd->mem.index, off};
    case MEM_WEIGHTS:
        if (!nd->data) ICE("constant '%s' has no data", nd->name);
        return (CuArg){CU_BUF_WEIGHTS, 0, blob_add(g, nd->name, nd->data, ir_numel(&nd->type))};
    case MEM_UNPLANNED:
    case MEM_ALIAS:
    case MEM_INLINED: /* fuse_dw and fuse_scale take only blocked values, never CUDA's */
        break;
    }
    ICE("value of node '%s' has no memory planned", nd->name);
}

const char *cu_param_value(CuGen *g, int32_t id)
{
    return add_param(g, storage_arg(g, id));
}

const char *cu_param_null(CuGen *g)
{
    return add_param(g, (CuArg){CU_BUF_NONE, 0, 0});
}

const char *cu_param_workspace(CuGen *g, int64_t bytes)
{
    if (bytes > g->ws_bytes) g->ws_bytes = bytes;
    return add_param(g, (CuArg){CU_BUF_ARENA, 0, g->ws_base});
}

CuParams *cu_params(CuGen *g)
{
    g->k->has_params = true;
    return &g->k->params;
}

const char *cu_param_weights(CuGen *g, const char *name, const float *data, int64_t n)
{
    return add_param(g, (CuArg){CU_BUF_WEIGHTS, 0, blob_add(g, name, data, n)});
}

void cu_body(CuGen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char buf[4096];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) ICE("kernel body line too long");
    cu_text_add(&g->body, "%s", buf);
}

/* "layer1.0.conv1" -> "k3_layer1_0_conv1": a C identifier, unique by its number. */
static const char *symbol_of(CuGen *g, int32_t number, const char *name)
{
    char s[80];
    int n = snprintf(s, sizeof s, "k%d_", number);
    for (const char *c = name; *c && n < (int)sizeof s - 1; c++)
        s[n++] = ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9')) ? *c : '_';
    s[n] = 0;
    return ir_strdup(g->p->arena, s);
}

void cu_end(CuGen *g, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t threads)
{
    CuKernel *k = g->k;
    k->grid[0] = gx, k->grid[1] = gy, k->grid[2] = gz;
    k->block[0] = threads;
    CuText code = {0};
    cu_text_add(&code, "(%s%s)\n{\n%s}\n", g->params.s, k->has_params ? ", CuParams q" : "",
                g->body.s);
    for (int32_t i = 0; i < g->ndefs; i++) {
        CuDef *d = &g->defs[i];
        if (d->threads == threads && !strcmp(d->code, code.s)) {
            free(code.s);
            k->symbol = d->symbol;
            cu_text_add(&d->nodes, ", %s", k->name);
            return;
        }
    }
    g->defs = grow(g->p->arena, g->defs, sizeof *g->defs, g->ndefs, &g->capdefs);
    CuDef *d = &g->defs[g->ndefs];
    *d = (CuDef){.code = code.s, .symbol = symbol_of(g, g->ndefs, k->name), .threads = threads};
    g->ndefs++;
    cu_text_add(&d->nodes, "%s", k->name);
    k->symbol = d->symbol;
}

void cu_end_1d(CuGen *g, int64_t count, int64_t per_block)
{
    int64_t blocks = (count + per_block - 1) / per_block;
    cu_end(g, (uint32_t)(blocks ? blocks : 1), 1, 1, CU_THREADS);
}

/* ---- the program ------------------------------------------------------------ */

static bool emit_nothing(CuGen *g, int32_t i)
{
    return true;
}

/* One emitter per op; every activation is cu_unary through cu_act. */
static bool (*const emitters[OP_COUNT])(CuGen *g, int32_t node) = {
    [OP_INPUT] = emit_nothing,
    [OP_PARAM] = emit_nothing,
    [OP_CONV2D] = cu_emit_conv2d,
    [OP_DENSE] = cu_emit_dense,
    [OP_MAXPOOL] = cu_emit_pool,
    [OP_AVGPOOL] = cu_emit_pool,
    [OP_GLOBAL_AVGPOOL] = cu_emit_pool,
    [OP_ADAPTIVE_AVGPOOL] = cu_emit_pool,
    [OP_BATCHNORM] = cu_emit_eltwise,
    [OP_ADD] = cu_emit_eltwise,
    [OP_MUL] = cu_emit_eltwise,
    [OP_SUB] = cu_emit_eltwise,
    [OP_DIV] = cu_emit_eltwise,
    [OP_DROPOUT] = cu_emit_eltwise,
    [OP_CONCAT] = cu_emit_misc,
    [OP_FLATTEN] = cu_emit_misc,
    [OP_SOFTMAX] = cu_emit_misc,
    [OP_REORDER] = cu_emit_misc,
    [OP_LAYERNORM] = cu_emit_misc,
    [OP_TRANSPOSE] = cu_emit_misc,
    [OP_SLICE] = cu_emit_misc,
    [OP_PAD] = cu_emit_misc,
    [OP_CHANNEL_SHUFFLE] = cu_emit_misc,
};

bool cg_cuda_supports(Op op)
{
    if (op < 0 || op >= OP_COUNT)
        return false;
    return ir_op_is_act(op) ? prelude_has_act(op) : emitters[op] != NULL;
}

static bool emit_op(CuGen *g, int32_t i)
{
    const Node *nd = &g->g->nodes[i];
    if (nd->mem.kind == MEM_ALIAS || nd->op == OP_INPUT || nd->op == OP_PARAM) return true;
    for (int32_t k = -1; k < nd->ninputs; k++) {
        const TensorType *t = k < 0 ? &nd->type : &g->g->nodes[nd->inputs[k]].type;
        if (t->layout != LAYOUT_PLAIN || t->dtype != DT_F32) {
            ir_error(g->d, nd->loc, "the CUDA backend needs plain f32 values ('%s')", nd->name);
            return false;
        }
    }
    if (ir_op_is_train(nd->op)) {
        ir_error(g->d, nd->loc, "the CUDA backend does not train yet ('%s' is %s); "
                 "compile the training step for the CPU", nd->name, ir_ops[nd->op].name);
        return false;
    }
    if (!cg_cuda_supports(nd->op)) ICE("node %d: no CUDA kernel for op %d", i, (int)nd->op);
    return ir_op_is_act(nd->op) ? cu_emit_eltwise(g, i) : emitters[nd->op](g, i);
}

static bool emit_node(CuGen *g, int32_t i)
{
    int32_t before = g->p->nkernels;
    bool ok = emit_op(g, i);
    /* a node's second kernel (a split-K sum) counts its own work */
    for (int32_t k = before; k < g->p->nkernels; k++)
        if (k == before || !g->p->kernels[k].flops) g->p->kernels[k].flops = ir_node_flops(g->g, &g->g->nodes[i]);
    return ok;
}

/* Graph output k: where it lives and how its batch items are spaced there. */
static void describe_output(CuGen *g, int32_t k)
{
    int32_t id = g->g->outputs[k].node;
    const TensorType *t = &g->g->nodes[id].type;
    int64_t n = t->rank ? t->dims[0] : 1, item = n ? ir_numel(t) / n : 0;
    int64_t stride = cu_item_stride(g, id);
    CuOutput *o = &g->p->outputs[k];
    o->node = id;
    o->src = storage_arg(g, id);
    bool dense = stride == item || n <= 1;
    o->items = dense ? 1 : n;
    o->item_bytes = (dense ? ir_numel(t) : item) * 4;
    o->stride_bytes = dense ? o->item_bytes : stride * 4;
}

static void assemble(CuGen *g)
{
    CuText src = {0};
    cu_text_add(&src, "// CUDA C of '%s', generated by cnnc %s for sm_%d (%s).\n",
                g->g->name ? g->g->name : "model", CNNC_VERSION, g->t.arch,
                g->t.math == CU_MATH_TF32 ? "tf32" : "f32");
    add_act_codes(&src);
    cu_text_add(&src, "%s\n", cg_cuda_prelude);
    for (int32_t i = 0; i < g->ndefs; i++) {
        CuDef *d = &g->defs[i];
        cu_text_add(&src, "\n// node: %s\nextern \"C\" __global__ void __launch_bounds__(%u) %s%s",
                    d->nodes.s, d->threads, d->symbol, d->code);
        free(d->code);
        free(d->nodes.s);
    }
    g->p->source = ir_strdup(g->p->arena, src.s);
    free(src.s);
}

CuProgram *cg_cuda_generate(const Graph *gr, const CuTarget *t, Diag *d)
{
    Arena *a = ir_arena_new();
    CuProgram *p = ir_alloc(a, sizeof *p);
    p->arena = a;
    p->target = *t;
    p->arena_bytes = gr->arena_bytes;
    CuGen g = {.g = gr, .t = *t, .d = d, .p = p,
               .ws_base = (gr->arena_bytes + CU_WEIGHT_ALIGN - 1) / CU_WEIGHT_ALIGN * CU_WEIGHT_ALIGN};
    bool ok = true;
    for (int32_t i = 0; i < gr->nnodes && ok; i++)
        ok = emit_node(&g, i);
    p->noutputs = gr->noutputs;
    p->outputs = ir_alloc(a, sizeof *p->outputs * (size_t)(gr->noutputs + 1));
    for (int32_t k = 0; k < gr->noutputs && ok; k++)
        describe_output(&g, k);
    assemble(&g);
    free(g.params.s);
    free(g.body.s);
    if (g.ws_bytes > 0) p->arena_bytes = g.ws_base + g.ws_bytes;
    p->weights = g.blob;
    p->weights_bytes = g.nblob * 4;
    if (!ok) {
        cg_cuda_free(p);
        return NULL;
    }
    return p;
}

void cg_cuda_free(CuProgram *p)
{
    if (!p) return;
    free(p->weights);
    ir_arena_free(p->arena);
}
