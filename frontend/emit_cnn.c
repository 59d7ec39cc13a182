/* emit_cnn.c: a graph as loaded (every parameter bound, no pass run yet) written
 * back in the cnnc language, with its weights in a .safetensors file under the
 * names the language gives them, so that an imported model can be read, edited
 * and compiled again into the same graph.
 *
 * The program is flat: one statement per node in node order, each layer named
 * with `as "NAME"` after its node, each value a variable vK (K the node's index).
 * A layer makes its own parameters (NAME.weight, ...), so the PARAM nodes in its
 * weight slots are not written; a PARAM used as an operand is a `parameter()`
 * statement of its own. */
#include "elab.h"
#include "support.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct Writer {
    const Graph *g;
    Diag *d;
    Graph *w;          /* the weights, named as the language names them; owns the strings */
    StrMap names;      /* name segments taken: inputs, layers, parameter()s */
    StrMap vars;       /* variables taken */
    const char **var;  /* per node: its variable */
    const char **name; /* per node: its layer (or input) name in the program */
    int32_t *uses;     /* per node: inputs that refer to it */
    int32_t *operand_uses; /* per node: uses outside a layer's weight slots */
    FILE *out;         /* the program's text */
    const char *origin; /* the model's file, where errors of no node are located */
    bool ok;
} Writer;

static bool fail(Writer *W, const Node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* An error at node n (at the model's file when n is NULL). */
static bool fail(Writer *W, const Node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ir_vdiag(W->d, DIAG_ERROR, n ? n->loc : (SrcLoc){.file = W->origin}, fmt, ap);
    va_end(ap);
    W->ok = false;
    return false;
}

/* "conv2d 'layer1.0.conv1'" */
static const char *node_str(Writer *W, const Node *n)
{
    return ir_strfmt(W->w->arena, "%s '%s'", ir_ops[n->op].name, n->name ? n->name : "");
}

/* ---- names ------------------------------------------------------------------ */

static const char *const reserved[] = {
    "and", "as", "block", "else", "false", "for", "from", "if", "in", "include", "network",
    "none", "not", "or", "repeat", "return", "sequence", "true",
};

static bool is_reserved(const char *s)
{
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (!strcmp(s, reserved[i]))
            return true;
    return false;
}

/* vK names the value of node K; no other variable may look like one. */
static bool is_value_var(const char *s)
{
    if (s[0] != 'v' || !s[1])
        return false;
    for (s++; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* A name that can be a variable of the program (and is not vK). */
static bool is_var_name(const char *s)
{
    return fe_is_identifier(s) && !is_reserved(s) && !is_value_var(s);
}

/* `base`, or base_2, base_3, ... when it is taken; the result is taken then. */
static const char *unique(Writer *W, StrMap *m, const char *base)
{
    const char *s = base;
    for (int k = 2; fe_map_get(m, s); k++)
        s = ir_strfmt(W->w->arena, "%s_%d", base, k);
    fe_map_put(m, W->w->arena, s, (void *)s);
    return s;
}

/* One segment of a layer path: no '.', space, control character or any of
 * " ' \ { } (docs/language.md, "Names"); each becomes '_'. */
static const char *layer_name(Writer *W, const Node *n)
{
    const char *from = n->name && n->name[0] ? n->name : ir_ops[n->op].name;
    char *s = ir_strdup(W->w->arena, from);
    for (char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || strchr(".\"'\\{}", *p))
            *p = '_';
    return unique(W, &W->names, s);
}

/* A variable name made of any name: other characters become '_'. */
static const char *ident(Writer *W, const char *from, const char *empty)
{
    const char *src = from && *from ? from : empty;
    char *s = ir_strfmt(W->w->arena, "%s%s", isdigit((unsigned char)*src) ? "_" : "", src);
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            *p = '_';
    return is_var_name(s) ? s : ir_strfmt(W->w->arena, "%s_", s);
}

/* ---- numbers ---------------------------------------------------------------- */

/* The shortest text that reads back as the same f32 (parsed as a double, then
 * rounded). Infinity is 1e39, a double that rounds to it; -0.0 keeps its sign,
 * which the int -0 would not. NaN has no text: the caller refuses it. */
static const char *num(Writer *W, float f)
{
    if (isinf(f))
        return f > 0 ? "1e39" : "-1e39";
    if (f == 0)
        return signbit(f) ? "-0.0" : "0";
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if ((float)strtod(buf, NULL) == f)
            break;
    }
    return ir_strdup(W->w->arena, buf);
}

static void put_ints(Writer *W, const int32_t *v, int32_t n)
{
    fputc('[', W->out);
    for (int32_t i = 0; i < n; i++)
        fprintf(W->out, "%s%d", i ? ", " : "", (int)v[i]);
    fputc(']', W->out);
}

static void put_dims(Writer *W, const TensorType *t)
{
    fputc('[', W->out);
    for (int32_t i = 0; i < t->rank; i++)
        fprintf(W->out, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
    fputc(']', W->out);
}

/* ---- parameters ------------------------------------------------------------- */

/* What a layer calls the parameters it makes, its inputs from 1 on. */
static const char *const *weight_slots(Op op, int32_t *n)
{
    static const char *const wb[] = {"weight", "bias"};
    static const char *const bn[] = {"weight", "bias", "running_mean", "running_var"};
    switch (op) {
    case OP_CONV2D:
    case OP_DENSE:
    case OP_LAYERNORM: *n = 2; return wb;
    case OP_BATCHNORM: *n = 4; return bn;
    default: *n = 0; return NULL;
    }
}

static void add_weight(Writer *W, const char *name, int32_t param)
{
    const Node *p = &W->g->nodes[param];
    int32_t id = ir_add_param(W->w, name, p->type, p->loc);
    W->w->nodes[id].data = p->data;
}

/* The PARAMs in node n's weight slots become its layer's NAME.weight, ... */
static bool layer_weights(Writer *W, int32_t id)
{
    const Node *n = &W->g->nodes[id];
    int32_t nslots;
    const char *const *slots = weight_slots(n->op, &nslots);
    for (int32_t i = 1; i < n->ninputs && i <= nslots; i++) {
        int32_t p = n->inputs[i];
        if (W->g->nodes[p].op != OP_PARAM)
            return fail(W, n, "cannot write %s in the cnnc language: its %s is computed (by %s), "
                        "where the layer makes a parameter of its own", node_str(W, n),
                        slots[i - 1], node_str(W, &W->g->nodes[p]));
        add_weight(W, ir_strfmt(W->w->arena, "%s.%s", W->name[id], slots[i - 1]), p);
    }
    return true;
}

static void count_operand_uses(Writer *W)
{
    const Graph *g = W->g;
    for (int32_t i = 0; i < g->nnodes; i++) {
        int32_t nslots;
        weight_slots(g->nodes[i].op, &nslots);
        for (int32_t k = 0; k < g->nodes[i].ninputs; k++) {
            W->uses[g->nodes[i].inputs[k]]++;
            if (k == 0 || k > nslots)
                W->operand_uses[g->nodes[i].inputs[k]]++;
        }
    }
}

/* A PARAM that is an operand (or used by nothing) is a parameter of its own. */
static bool param_stmt(Writer *W, int32_t id)
{
    const Node *n = &W->g->nodes[id];
    if (W->uses[id] > 0 && W->operand_uses[id] == 0)
        return true;
    if (n->type.rank < 1)
        return fail(W, n, "cannot write parameter '%s' in the cnnc language: it has no dims",
                    n->name);
    W->name[id] = layer_name(W, n);
    fprintf(W->out, "  %s = parameter(", W->var[id]);
    put_dims(W, &n->type);
    fprintf(W->out, ") as \"%s\"\n", W->name[id]);
    add_weight(W, W->name[id], id);
    return true;
}

/* ---- layers ----------------------------------------------------------------- */

static const char *in(Writer *W, const Node *n, int32_t i)
{
    return W->var[n->inputs[i]];
}

static void put_conv(Writer *W, const Node *n)
{
    const ConvAttrs *a = &n->attrs.conv;
    fprintf(W->out, "conv2d(%s, %lld, kernel=", in(W, n, 0),
            (long long)W->g->nodes[n->inputs[1]].type.dims[0]);
    put_ints(W, a->kernel, 2);
    fputs(", stride=", W->out);
    put_ints(W, a->stride, 2);
    fputs(", pad=", W->out);
    put_ints(W, a->pad, 4);
    fputs(", dilation=", W->out);
    put_ints(W, a->dilation, 2);
    fprintf(W->out, ", groups=%d, bias=%s)", (int)a->groups, n->ninputs > 2 ? "true" : "false");
}

static void put_pool(Writer *W, const Node *n)
{
    const PoolAttrs *a = &n->attrs.pool;
    fprintf(W->out, "%s(%s, kernel=", ir_ops[n->op].name, in(W, n, 0));
    put_ints(W, a->kernel, 2);
    fputs(", stride=", W->out);
    put_ints(W, a->stride, 2);
    fputs(", pad=", W->out);
    put_ints(W, a->pad, 4);
    if (n->op == OP_MAXPOOL) {
        fputs(", dilation=", W->out);
        put_ints(W, a->dilation, 2);
    }
    fprintf(W->out, ", ceil_mode=%s", a->ceil_mode ? "true" : "false");
    if (n->op == OP_AVGPOOL)
        fprintf(W->out, ", count_include_pad=%s", a->count_include_pad ? "true" : "false");
    fputc(')', W->out);
}

/* A plain dense takes [N, features]; any other input is written with its axis. */
static void put_dense(Writer *W, const Node *n)
{
    fprintf(W->out, "dense(%s, %lld, bias=%s", in(W, n, 0),
            (long long)W->g->nodes[n->inputs[1]].type.dims[0], n->ninputs > 2 ? "true" : "false");
    if (W->g->nodes[n->inputs[0]].type.rank != 2 || n->attrs.dense.axis != -1)
        fprintf(W->out, ", axis=%d", (int)n->attrs.dense.axis);
    fputc(')', W->out);
}

/* x * s, x + t, x - t when one part is the identity (exactly as the operators
 * compute it), else affine(). */
static void put_affine(Writer *W, const Node *n)
{
    float s = n->attrs.affine.scale, t = n->attrs.affine.shift;
    const char *x = in(W, n, 0);
    if (t == 0 && !signbit(t))
        fprintf(W->out, s == -1 ? "(-%s)" : "(%s * %s)", x, num(W, s));
    else if (s == 1)
        fprintf(W->out, "(%s %c %s)", x, signbit(t) ? '-' : '+', num(W, fabsf(t)));
    else
        fprintf(W->out, "affine(%s, scale=%s, shift=%s)", x, num(W, s), num(W, t));
}

static void put_concat(Writer *W, const Node *n)
{
    fputs("concat(", W->out);
    for (int32_t i = 0; i < n->ninputs; i++)
        fprintf(W->out, "%s, ", in(W, n, i));
    fprintf(W->out, "axis=%d)", (int)n->attrs.axis.axis);
}

static bool put_permute(Writer *W, const Node *n)
{
    const int32_t *p = n->attrs.perm.perm;
    int32_t rank = n->type.rank;
    bool plain = p[0] == 0;
    for (int32_t i = rank; i < IR_MAX_RANK; i++)
        plain &= p[i] == i;
    if (!plain)
        return fail(W, n, "cannot write %s in the cnnc language: permute keeps the batch dim "
                    "first and moves only the dims of the value", node_str(W, n));
    fprintf(W->out, "permute(%s, ", in(W, n, 0));
    put_ints(W, p, rank);
    fputc(')', W->out);
    return true;
}

static void put_binary(Writer *W, const Node *n)
{
    static const char ops[] = {[OP_ADD] = '+', [OP_SUB] = '-', [OP_MUL] = '*', [OP_DIV] = '/'};
    fprintf(W->out, "(%s %c %s)", in(W, n, 0), ops[n->op], in(W, n, 1));
}

static void put_clip(Writer *W, const Node *n)
{
    const ClipAttrs *a = &n->attrs.clip;
    if (a->lo == 0 && !signbit(a->lo) && a->hi == 6)
        fprintf(W->out, "relu6(%s)", in(W, n, 0));
    else
        fprintf(W->out, "clip(%s, %s, %s)", in(W, n, 0), num(W, a->lo), num(W, a->hi));
}

/* The call (or operator expression) that makes node n, without its name. */
static bool put_layer(Writer *W, const Node *n)
{
    const Attrs *a = &n->attrs;
    const char *x = n->ninputs ? in(W, n, 0) : NULL;
    switch (n->op) {
    case OP_CONV2D: put_conv(W, n); break;
    case OP_BATCHNORM: fprintf(W->out, "batchnorm(%s, eps=%s)", x, num(W, a->bn.eps)); break;
    case OP_DENSE: put_dense(W, n); break;
    case OP_LAYERNORM:
        fprintf(W->out, "layernorm(%s, axis=%d, eps=%s)", x, (int)a->norm.axis,
                num(W, a->norm.eps));
        break;
    case OP_CLIP: put_clip(W, n); break;
    case OP_LEAKY_RELU:
        fprintf(W->out, "leaky_relu(%s, alpha=%s)", x, num(W, a->leaky.alpha));
        break;
    case OP_GELU:
        fprintf(W->out, "gelu(%s%s)", x, a->gelu.tanh ? ", approximate=\"tanh\"" : "");
        break;
    case OP_AFFINE: put_affine(W, n); break;
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: put_binary(W, n); break;
    case OP_CONCAT: put_concat(W, n); break;
    case OP_MAXPOOL: case OP_AVGPOOL: put_pool(W, n); break;
    case OP_ADAPTIVE_AVGPOOL:
        fprintf(W->out, "adaptive_avgpool(%s, output=", x);
        put_ints(W, a->adaptive.out, 2);
        fputc(')', W->out);
        break;
    case OP_FLATTEN: case OP_SOFTMAX:
        fprintf(W->out, "%s(%s, axis=%d)", ir_ops[n->op].name, x, (int)a->axis.axis);
        break;
    case OP_DROPOUT: fprintf(W->out, "dropout(%s, p=%s)", x, num(W, a->dropout.p)); break;
    case OP_TRANSPOSE: return put_permute(W, n);
    case OP_SLICE:
        fprintf(W->out, "slice(%s, %d, %d, axis=%d)", x, (int)a->slice.start, (int)a->slice.end,
                (int)a->slice.axis);
        break;
    case OP_PAD:
        fprintf(W->out, "pad(%s, ", x);
        put_ints(W, a->pad.pad, 4);
        fprintf(W->out, ", value=%s)", num(W, a->pad.value));
        break;
    case OP_CHANNEL_SHUFFLE:
        fprintf(W->out, "channel_shuffle(%s, %d)", x, (int)a->groups.groups);
        break;
    default:
        if (n->ninputs != 1 || ir_ops[n->op].attrs != AK_NONE ||
            !fe_find_layer(ir_ops[n->op].name))
            return fail(W, n, "cannot write %s in the cnnc language: no layer makes %s nodes "
                        "(it is written by passes; --emit=cnn writes the graph as loaded)",
                        node_str(W, n), ir_ops[n->op].name);
        fprintf(W->out, "%s(%s)", ir_ops[n->op].name, x); /* relu, sigmoid, ... */
    }
    return true;
}

/* What the language cannot say of a node: a fused epilogue, a blocked layout,
 * a NaN attribute or an infinite factor of affine. */
static bool writable(Writer *W, const Node *n)
{
    const Epilogue *e = ir_epilogue(n);
    bool fused = e && (e->act != OP_NO_ACT || e->post != OP_NO_ACT || e->residual);
    if (fused || n->type.layout != LAYOUT_PLAIN)
        return fail(W, n, "cannot write %s in the cnnc language: the passes fused or laid it "
                    "out; --emit=cnn writes the graph as loaded", node_str(W, n));
    if (n->type.dtype != DT_F32)
        return fail(W, n, "cannot write %s in the cnnc language: it is %s, not f32",
                    node_str(W, n), ir_dtype_name(n->type.dtype));
    for (int32_t i = 0; i < ir_nattr_fields; i++) {
        const AttrField *f = &ir_attr_fields[i];
        if (f->kind != ir_ops[n->op].attrs || f->type != AF_FLOAT)
            continue;
        float v = *(const float *)(const void *)((const char *)&n->attrs + f->offset);
        if (isnan(v) || (n->op == OP_AFFINE && isinf(v)))
            return fail(W, n, "cannot write %s in the cnnc language: its %s is %s", node_str(W, n),
                        f->name, isnan(v) ? "NaN" : "infinite");
    }
    return true;
}

static void layer_stmt(Writer *W, int32_t id)
{
    const Node *n = &W->g->nodes[id];
    if (!writable(W, n))
        return;
    W->name[id] = layer_name(W, n);
    fprintf(W->out, "  %s = ", W->var[id]);
    if (put_layer(W, n) && layer_weights(W, id))
        fprintf(W->out, " as \"%s\"\n", W->name[id]);
    else
        fputc('\n', W->out);
}

/* ---- the program ------------------------------------------------------------ */

/* network NAME(IN: f32[N=B, ...], ...) {, its batch dim symbolic so --batch works. */
static void network_line(Writer *W)
{
    const Graph *g = W->g;
    fprintf(W->out, "network %s(", ident(W, g->name, "model"));
    for (int32_t i = 0, k = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_INPUT)
            continue;
        if (n->type.dtype != DT_F32 || n->type.rank < 1)
            fail(W, n, "cannot write input '%s' in the cnnc language: it must be f32 with dims",
                 n->name);
        W->name[i] = W->var[i] = unique(W, &W->vars, ident(W, n->name, "input"));
        fe_map_put(&W->names, W->w->arena, W->name[i], (void *)W->name[i]);
        fprintf(W->out, "%s%s: f32[N=%lld", k++ ? ", " : "", W->var[i],
                (long long)n->type.dims[0]);
        for (int32_t d = 1; d < n->type.rank; d++)
            fprintf(W->out, ", %lld", (long long)n->type.dims[d]);
        fputc(']', W->out);
    }
    fputs(") {\n", W->out);
}

/* The variable that returns output k: one of the output's name where that can
 * be a variable, else the value's own vK (the output is then named so). A name
 * returned already gets a variable of its own, as the language returns each once. */
static const char *output_var(Writer *W, int32_t k, StrMap *returned)
{
    const char *want = W->g->outputs[k].name, *v = W->var[W->g->outputs[k].node];
    const char *r = v;
    if (want && is_var_name(want) && !fe_map_get(returned, want)) {
        if (!strcmp(want, v) || !fe_map_get(&W->vars, want))
            r = want;
    }
    if (r == v && fe_map_get(returned, v))
        r = unique(W, &W->vars, ir_strfmt(W->w->arena, "%s_out", v));
    fe_map_put(&W->vars, W->w->arena, r, (void *)r);
    if (strcmp(r, v) != 0)
        fprintf(W->out, "  %s = %s\n", r, v);
    fe_map_put(returned, W->w->arena, r, (void *)r);
    return r;
}

static void return_stmt(Writer *W)
{
    const Graph *g = W->g;
    const char **ret = ir_alloc(W->w->arena, (size_t)(g->noutputs + 1) * sizeof *ret);
    StrMap returned = {0};
    for (int32_t k = 0; k < g->noutputs; k++)
        ret[k] = output_var(W, k, &returned);
    fputs("  return ", W->out);
    for (int32_t k = 0; k < g->noutputs; k++)
        fprintf(W->out, "%s%s", k ? ", " : "", ret[k]);
    fputs("\n}\n", W->out);
}

/* What a path may say inside a comment: no line breaks or other control bytes. */
static const char *comment_text(Writer *W, const char *s)
{
    char *c = ir_strdup(W->w->arena, s ? s : "");
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            *p = '?';
    return c;
}

static void header(Writer *W, const char *model, const char *origin)
{
    const Graph *g = W->g;
    int64_t batch = 0;
    for (int32_t i = 0; i < g->nnodes && !batch; i++)
        if (g->nodes[i].op == OP_INPUT && g->nodes[i].type.rank > 0)
            batch = g->nodes[i].type.dims[0];
    model = comment_text(W, model);
    fprintf(W->out,
            "# %s.cnn: %s\n"
            "# written in the cnnc language by cnnc %s --emit=cnn, at batch %lld.\n"
            "# Its weights are %s.safetensors:\n"
            "#   cnnc %s.cnn --weights=%s.safetensors --batch=N ...\n"
            "# Layers keep the model's node names, with '_' for each character a name cannot\n"
            "# hold (. space quotes \\ { } and control characters) and _2, _3, ... added where\n"
            "# names would repeat; vK is the value of the model's node K. Outputs keep their\n"
            "# names where those are identifiers; the others are named after their vK.\n",
            model, comment_text(W, origin), CNNC_VERSION, (long long)batch, model, model, model);
}

/* The program's text and the weights graph, or false after reporting why not. */
static bool write_program(Writer *W, const char *model, const char *origin)
{
    const Graph *g = W->g;
    for (int32_t i = 0; i < g->nnodes; i++) {
        W->var[i] = ir_strfmt(W->w->arena, "v%d", (int)i);
        if (g->nodes[i].op == OP_PARAM && !g->nodes[i].data)
            fail(W, &g->nodes[i], "parameter '%s' has no weights to write", g->nodes[i].name);
    }
    count_operand_uses(W);
    header(W, model, origin);
    network_line(W);
    for (int32_t i = 0; i < g->nnodes && W->ok; i++) {
        Op op = g->nodes[i].op;
        if (op == OP_PARAM)
            param_stmt(W, i);
        else if (op != OP_INPUT)
            layer_stmt(W, i);
    }
    if (W->ok && g->noutputs == 0)
        fail(W, NULL, "cannot write a model without outputs in the cnnc language");
    if (W->ok)
        return_stmt(W);
    return W->ok;
}

/* ---- reading it back --------------------------------------------------------- */

/* Nodes other than parameters, numbered in order; -1 for a parameter. */
static int32_t *ordinals(const Graph *g, Arena *a)
{
    int32_t *ord = ir_alloc(a, ((size_t)g->nnodes + 1) * sizeof *ord);
    for (int32_t i = 0, k = 0; i < g->nnodes; i++)
        ord[i] = g->nodes[i].op == OP_PARAM ? -1 : k++;
    return ord;
}

/* What of node b differs from node a (the attribute, the type, an input), or NULL.
 * A parameter input matches any parameter of its type: the program makes its own. */
static const char *node_diff(Writer *W, const Graph *ga, int32_t a, const int32_t *orda,
                             const Graph *gb, int32_t b, const int32_t *ordb)
{
    const Node *na = &ga->nodes[a], *nb = &gb->nodes[b];
    if (na->op != nb->op || na->ninputs != nb->ninputs)
        return ir_strfmt(W->w->arena, "a %s with %d inputs", ir_ops[nb->op].name,
                         (int)nb->ninputs);
    for (int32_t i = 0; i < ir_nattr_fields; i++) {
        const AttrField *f = &ir_attr_fields[i];
        size_t bytes = (size_t)f->count * (f->type == AF_INT ? sizeof(int32_t)
                       : f->type == AF_FLOAT ? sizeof(float) : f->type == AF_ACT ? sizeof(Op)
                       : sizeof(bool));
        if (f->kind == ir_ops[na->op].attrs &&
            memcmp((const char *)&na->attrs + f->offset, (const char *)&nb->attrs + f->offset,
                   bytes))
            return ir_strfmt(W->w->arena, "another %s", f->name);
    }
    if (!ir_type_eq(&na->type, &nb->type))
        return "another type";
    for (int32_t i = 0; i < na->ninputs; i++) {
        const Node *ia = &ga->nodes[na->inputs[i]], *ib = &gb->nodes[nb->inputs[i]];
        bool same = ia->op == OP_PARAM ? ib->op == OP_PARAM && ir_type_eq(&ia->type, &ib->type)
                                       : orda[na->inputs[i]] == ordb[nb->inputs[i]];
        if (!same)
            return ir_strfmt(W->w->arena, "another input %d", (int)i);
    }
    return NULL;
}

/* The program must read back as the graph it was written from: the same nodes
 * other than parameters, in order, with the same attributes, types and inputs.
 * So what no layer can say (an attribute the layer leaves at its default) is an
 * error here, naming the node, rather than a different model later. */
static bool read_back(Writer *W, const char *text)
{
    const Graph *g = W->g;
    Diag quiet;
    char *msgs = NULL;
    size_t len = 0;
    ir_diag_init(&quiet, open_memstream(&msgs, &len));
    if (!quiet.out)
        ICE("cannot open a memory stream");
    FeOptions opt = {.limits = {.max_steps = INT64_MAX, .max_nodes = INT32_MAX / 2,
                                .max_weights = INT64_MAX / 2, .max_source = FE_MAX_MAX_SOURCE}};
    Graph *r = fe_load_string("<written>", text, &opt, &quiet);
    fclose(quiet.out);
    if (!r) {
        char *nl = strchr(msgs ? msgs : "", '\n');
        if (nl)
            *nl = 0;
        fail(W, NULL, "the program written for '%s' does not read back: %s", g->name,
             msgs ? msgs : "");
    }
    int32_t *oa = ordinals(g, W->w->arena), *ob = r ? ordinals(r, W->w->arena) : NULL;
    for (int32_t a = 0, b = 0; r && W->ok && a < g->nnodes; a++, b++) {
        while (a < g->nnodes && g->nodes[a].op == OP_PARAM)
            a++;
        while (b < r->nnodes && r->nodes[b].op == OP_PARAM)
            b++;
        if (a == g->nnodes || b == r->nnodes) {
            if (a < g->nnodes || b < r->nnodes)
                fail(W, NULL, "the program written for '%s' reads back with other nodes", g->name);
            break;
        }
        const char *diff = node_diff(W, g, a, oa, r, b, ob);
        if (diff)
            fail(W, &g->nodes[a], "cannot write %s in the cnnc language: its layer would make %s",
                 node_str(W, &g->nodes[a]), diff);
    }
    for (int32_t k = 0; r && W->ok && k < g->noutputs; k++)
        if (k >= r->noutputs || oa[g->outputs[k].node] != ob[r->outputs[k].node])
            fail(W, NULL, "the program written for '%s' reads back with other outputs", g->name);
    if (r && W->ok && r->noutputs != g->noutputs)
        fail(W, NULL, "the program written for '%s' reads back with other outputs", g->name);
    if (r)
        ir_graph_free(r);
    free(msgs);
    ir_diag_fini(&quiet);
    return W->ok;
}

/* ---- files ------------------------------------------------------------------ */

typedef struct Text {
    const char *s;
    size_t n;
} Text;

static bool put_text(FILE *f, void *ctx)
{
    const Text *t = ctx;
    return fwrite(t->s, 1, t->n, f) == t->n;
}

/* A writer's error, which names the temporary, told of the file it becomes. */
static bool write_failed(Writer *W, const char *path, const char *tmp, const char *err)
{
    size_t n = tmp ? strlen(tmp) : 0;
    if (tmp && !strncmp(err, tmp, n) && err[n] == ':')
        err += n + (err[n + 1] == ' ' ? 2 : 1);
    ir_error(W->d, (SrcLoc){.file = path}, "%s", err);
    return W->ok = false;
}

/* A registered temporary beside `path`, for a file renamed into place once both
 * are written; NULL after reporting why not. */
static char *temp_beside(Writer *W, const char *path)
{
    char *tmp = ir_strfmt(W->w->arena, "%s.tmp-XXXXXX", path);
    int fd = ir_temp_create(tmp);
    if (fd < 0) {
        write_failed(W, path, NULL, ir_strfmt(W->w->arena, "cannot create a temporary file: %s",
                                            strerror(errno)));
        return NULL;
    }
    close(fd);
    return tmp;
}

/* Both files are written to temporaries first and renamed into place only when
 * both are whole, so a failure leaves neither half-written. */
static bool write_files(Writer *W, const char *cnn, const char *st, const Text *text)
{
    char err[1024];
    char *tc = temp_beside(W, cnn), *ts = tc ? temp_beside(W, st) : NULL;
    bool ok = ts != NULL;
    if (ok && !(ok = ir_write_atomic(tc, put_text, (void *)text, err, sizeof err)))
        write_failed(W, cnn, tc, err);
    if (ok && !(ok = fe_write_safetensors(W->w, ts, err, sizeof err)))
        write_failed(W, st, ts, err);
    if (ok && (rename(ts, st) != 0 || rename(tc, cnn) != 0))
        ok = write_failed(W, cnn, NULL, ir_strfmt(W->w->arena, "cannot rename a temporary into "
                                                  "place: %s", strerror(errno)));
    if (tc)
        ir_temp_release(tc, !ok);
    if (ts)
        ir_temp_release(ts, !ok);
    return ok;
}

bool fe_emit_cnn(const Graph *g, const char *dir, const char *model, const char *origin, Diag *d)
{
    Writer W = {.g = g, .d = d, .w = ir_graph_new(g->name), .origin = origin, .ok = true};
    Arena *a = W.w->arena;
    size_t n = (size_t)g->nnodes + 1;
    W.var = ir_alloc(a, n * sizeof *W.var);
    W.name = ir_alloc(a, n * sizeof *W.name);
    W.uses = ir_alloc(a, n * sizeof *W.uses);
    W.operand_uses = ir_alloc(a, n * sizeof *W.operand_uses);
    char *text = NULL;
    size_t len = 0;
    W.out = open_memstream(&text, &len);
    if (!W.out)
        ICE("open_memstream: %s", strerror(errno));
    bool ok = write_program(&W, model, origin);
    fclose(W.out);
    ok = ok && read_back(&W, text);
    if (ok) {
        Text t = {text, len};
        ok = write_files(&W, ir_strfmt(a, "%s/%s.cnn", dir, model),
                         ir_strfmt(a, "%s/%s.safetensors", dir, model), &t);
    }
    free(text);
    ir_graph_free(W.w);
    return ok;
}
