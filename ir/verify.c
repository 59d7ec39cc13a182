/* verify.c: the IR verifier, run after the frontend and after every pass. It
 * checks the invariants the rest of the compiler relies on (indices in range
 * and topological, arity, unique names, types equal to what inference gives)
 * and reports each broken one as an "IR verifier:" error. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

#define TYPE_BUF 160

typedef struct Verifier {
    const Graph *g;
    Diag *d;
    Diag quiet; /* collects inference messages to quote them */
    char *quiet_buf;
    size_t quiet_len;
    bool ok;
} Verifier;

static void bad(Verifier *v, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad(Verifier *v, SrcLoc loc, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ir_error(v->d, loc, "IR verifier: %s", msg);
    v->ok = false;
}

static const char *name_of(const Node *n)
{
    return n->name ? n->name : "(unnamed)";
}

/* Structure of one node; false if its inputs cannot be followed safely. */
static bool check_structure(Verifier *v, int32_t id)
{
    const Node *n = &v->g->nodes[id];
    if (n->op < 0 || n->op >= OP_COUNT) {
        bad(v, n->loc, "node %d has bad op %d", (int)id, (int)n->op);
        return false;
    }
    const OpInfo *info = &ir_ops[n->op];
    bool ok = true;
    if (!n->name) {
        bad(v, n->loc, "node %d (%s) has no name", (int)id, info->name);
        ok = false;
    }
    if (n->ninputs < info->min_inputs || (info->max_inputs >= 0 && n->ninputs > info->max_inputs)
        || (n->ninputs > 0 && !n->inputs)) {
        bad(v, n->loc, "node %d '%s' (%s) has %d inputs", (int)id, name_of(n), info->name,
            (int)n->ninputs);
        return false;
    }
    for (int32_t i = 0; i < n->ninputs; i++) {
        if (n->inputs[i] < 0 || n->inputs[i] >= id) {
            bad(v, n->loc, "node %d '%s' (%s) input %d refers to node %d, not an earlier one",
                (int)id, name_of(n), info->name, (int)i, (int)n->inputs[i]);
            ok = false;
        }
    }
    return ok;
}

/* A node whose input has no type is not checked: the input is reported. */
static bool inputs_typed(const Graph *g, int32_t id)
{
    const Node *n = &g->nodes[id];
    for (int32_t i = 0; i < n->ninputs; i++) {
        const TensorType *t = &g->nodes[n->inputs[i]].type;
        if (t->dtype == DT_INVALID || t->rank < 0 || t->rank > IR_MAX_RANK)
            return false;
    }
    return true;
}

static bool check_layout(Verifier *v, int32_t id)
{
    const Node *n = &v->g->nodes[id];
    const TensorType *t = &n->type;
    bool ok = (t->layout == LAYOUT_PLAIN && t->block == 0) ||
              (t->layout == LAYOUT_NHWC && t->block == 0 && t->rank == 4) ||
              (t->layout == LAYOUT_NCHWC && t->block > 0 && t->rank == 4);
    if (!ok)
        bad(v, n->loc, "node %d '%s' has layout %d (block %d) on a rank-%d value", (int)id,
            name_of(n), (int)t->layout, (int)t->block, (int)t->rank);
    return ok;
}

/* A fused residual is read with the output's indexing, so it must be stored
 * the same way. */
static void check_residual_layout(Verifier *v, int32_t id)
{
    const Node *n = &v->g->nodes[id];
    int32_t k = ir_residual_input(n);
    if (k < 2)
        return;
    const TensorType *r = &v->g->nodes[n->inputs[k]].type;
    if (r->layout != n->type.layout || r->block != n->type.block)
        bad(v, n->loc, "node %d '%s' (%s) has a residual stored in another layout than its "
            "output", (int)id, name_of(n), ir_ops[n->op].name);
}

/* The message inference gave, without its location prefix. */
static const char *quiet_message(Verifier *v)
{
    fflush(v->quiet.out);
    const char *msg = v->quiet_buf ? strstr(v->quiet_buf, "error: ") : NULL;
    if (!msg)
        return "no message";
    msg += strlen("error: ");
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
    return msg;
}

/* Types are compared on dtype and logical dims: layout is a storage choice
 * made by a pass after inference. */
static void check_type(Verifier *v, int32_t id)
{
    const Node *n = &v->g->nodes[id];
    char b1[TYPE_BUF], b2[TYPE_BUF];
    if (n->type.dtype == DT_INVALID) {
        bad(v, n->loc, "node %d '%s' (%s) has no valid type", (int)id, name_of(n),
            ir_ops[n->op].name);
        return;
    }
    if (n->type.rank < 0 || n->type.rank > IR_MAX_RANK) {
        bad(v, n->loc, "node %d '%s' has rank %d", (int)id, name_of(n), (int)n->type.rank);
        return;
    }
    if (!check_layout(v, id))
        return;
    TensorType want, have = n->type;
    rewind(v->quiet.out);
    if (!ir_infer_type(v->g, id, &v->quiet, &want)) {
        bad(v, n->loc, "node %d '%s' (%s): inference fails: %s", (int)id, name_of(n),
            ir_ops[n->op].name, quiet_message(v));
        return;
    }
    have.layout = want.layout;
    have.block = want.block;
    if (!ir_type_eq(&have, &want))
        bad(v, n->loc, "node %d '%s' (%s) has type %s, but inference gives %s", (int)id,
            name_of(n), ir_ops[n->op].name, ir_type_str(&n->type, b1, sizeof b1),
            ir_type_str(&want, b2, sizeof b2));
    check_residual_layout(v, id);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorting keeps this linear-logarithmic for graphs of thousands of nodes. */
static void check_unique(Verifier *v, const char **names, int32_t n, const char *what)
{
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int32_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0 && (i < 2 || strcmp(names[i - 2], names[i])))
            bad(v, (SrcLoc){0}, "%s name '%s' is used more than once", what, names[i]);
}

static void check_names(Verifier *v, Arena *tmp)
{
    const Graph *g = v->g;
    const char **names = ir_alloc(tmp, ((size_t)g->nnodes + 1) * sizeof *names);
    int32_t n = 0;
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].name)
            names[n++] = g->nodes[i].name;
    check_unique(v, names, n, "node");
}

static void check_outputs(Verifier *v, Arena *tmp)
{
    const Graph *g = v->g;
    const char **names = ir_alloc(tmp, ((size_t)g->noutputs + 1) * sizeof *names);
    int32_t n = 0;
    for (int32_t i = 0; i < g->noutputs; i++) {
        const GraphOutput *o = &g->outputs[i];
        if (o->node < 0 || o->node >= g->nnodes)
            bad(v, (SrcLoc){0}, "output %d refers to node %d of %d", (int)i, (int)o->node,
                (int)g->nnodes);
        if (!o->name)
            bad(v, (SrcLoc){0}, "output %d has no name", (int)i);
        else
            names[n++] = o->name;
    }
    check_unique(v, names, n, "output");
}

bool ir_verify(const Graph *g, Diag *d)
{
    Verifier v = {.g = g, .d = d, .ok = true};
    ir_diag_init(&v.quiet, open_memstream(&v.quiet_buf, &v.quiet_len));
    if (!v.quiet.out)
        ICE("cannot open a memory stream");
    for (int32_t i = 0; i < g->nnodes; i++)
        if (check_structure(&v, i) && inputs_typed(g, i))
            check_type(&v, i);
    check_names(&v, v.quiet.arena);
    check_outputs(&v, v.quiet.arena);
    fclose(v.quiet.out);
    free(v.quiet_buf);
    ir_diag_fini(&v.quiet);
    return v.ok;
}
