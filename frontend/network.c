/* network.c: the life of an Elab around one network: blocks are registered,
 * the inputs become graph nodes (with --batch applied), the body runs
 * statement by statement (elaborate.c), and the return sets the outputs. */
#include "elab.h"

#include <ctype.h>

#include <string.h>

Elab *fe_elab_new(Diag *d, const FeOptions *opt)
{
    Arena *a = ir_arena_new();
    Elab *E = ir_alloc(a, sizeof *E);
    E->arena = a;
    E->d = d;
    if (opt)
        E->opt = *opt;
    E->lim = fe_limits(&E->opt.limits);
    return E;
}

void fe_elab_free(Elab *E)
{
    if (!E)
        return;
    ir_graph_free(E->g);
    ir_arena_free(E->arena);
}

static bool check_params(Elab *E, const BlockDef *b)
{
    bool ok = true;
    for (int32_t i = 0; i < b->params.n; i++) {
        for (int32_t k = 0; k < i; k++) {
            if (strcmp(b->params.items[i].name, b->params.items[k].name) == 0) {
                fe_error(E, b->params.items[i].loc, "parameter '%s' appears twice",
                     b->params.items[i].name);
                ok = false;
                break;
            }
        }
    }
    return ok;
}

bool fe_elab_add_block(Elab *E, const BlockDef *b)
{
    const BlockDef *old = fe_map_get(&E->blocks, b->name);
    if (old) {
        fe_error(E, b->loc, "block '%s' is defined twice", b->name);
        ir_note(E->d, old->loc, "the first definition of '%s' is here", b->name);
        return false;
    }
    const Builtin *bi = fe_find_layer(b->name);
    if (!bi)
        bi = fe_find_func(b->name);
    if (bi) {
        fe_error(E, b->loc, "block '%s' has the name of a built-in %s", b->name,
             bi->layer ? "layer" : "function");
        return false;
    }
    fe_map_put(&E->blocks, E->arena, b->name, (void *)b);
    return check_params(E, b);
}

static bool input_dtype(Elab *E, const InputDecl *in)
{
    if (strcmp(in->dtype, "f32") == 0)
        return true;
    static const DType others[] = {DT_F16, DT_BF16, DT_I64};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        if (strcmp(in->dtype, ir_dtype_name(others[i])) == 0) {
            fe_error(E, in->dtype_loc, "input '%s' is %s; only f32 inputs are supported", in->name,
                 in->dtype);
            return false;
        }
    }
    Suggest s;
    char buf[64];
    fe_suggest_init(&s, in->dtype);
    fe_suggest_add(&s, "f32");
    fe_error(E, in->dtype_loc, "unknown element type '%s'%s", in->dtype,
         fe_suggest_text(&s, buf, sizeof buf));
    return false;
}

/* Reported at the dimension that takes the element count past what cnnc supports. */
static bool input_size_ok(Elab *E, const InputDecl *in, const TensorType *t)
{
    if (ir_numel_checked(t->rank, t->dims) >= 0)
        return true;
    int32_t at = 0;
    while (at + 1 < t->rank && ir_numel_checked(at + 1, t->dims) >= 0)
        at++;
    char b[160];
    fe_error(E, in->dims.items[at].loc, "input '%s' of shape %s has %.2g elements, more than "
             "cnnc supports (2^%d)", in->name, ir_type_str(t, b, sizeof b),
             ir_numel_approx(t->rank, t->dims), IR_MAX_NUMEL_LOG2);
    return false;
}

/* The type of an input; --batch replaces its leading symbolic dimension. */
static bool input_type(Elab *E, const InputDecl *in, TensorType *t)
{
    bool ok = input_dtype(E, in);
    if (in->dims.n > IR_MAX_RANK) {
        fe_error(E, in->loc, "input '%s' has %d dimensions; at most %d are supported", in->name,
             (int)in->dims.n, IR_MAX_RANK);
        return false;
    }
    int64_t dims[IR_MAX_RANK];
    for (int32_t i = 0; i < in->dims.n; i++) {
        const Dim *dm = &in->dims.items[i];
        dims[i] = dm->value;
        if (i == 0 && E->opt.batch > 0) {
            if (dm->sym) {
                dims[i] = E->opt.batch;
            } else {
                fe_error(E, dm->loc, "input '%s' has a fixed batch dimension %lld; write N=%lld "
                     "to let --batch change it", in->name, (long long)dm->value,
                     (long long)dm->value);
                ok = false;
            }
        }
        if (dims[i] <= 0) {
            fe_error(E, dm->loc, "dimension %d of input '%s' must be positive, got %lld", (int)i,
                 in->name, (long long)dims[i]);
            ok = false;
        }
    }
    *t = ir_type_f32(in->dims.n, dims);
    ok = ok && input_size_ok(E, in, t);
    if (!ok)
        t->dtype = DT_INVALID;
    return ok;
}

static void declare_input(Elab *E, const InputDecl *in)
{
    TensorType t;
    bool ok = input_type(E, in, &t);
    Naming nm = {in->name, in->loc};
    const char *name = fe_instance_name(E, &nm, "input", in->loc);
    int32_t id = ir_add_input(E->g, name, t, fe_graph_loc(E, in->loc));
    if (ok)
        ir_infer_node(E->g, id, E->d);
    fe_env_set(E, &E->root_env, in->name, fe_tensor(id));
}

bool fe_elab_begin(Elab *E, const NetworkDef *net)
{
    int errors = E->d->nerrors;
    E->g = ir_graph_new(net->name);
    E->errors_at_start = errors;
    E->depth = E->steps = E->weight_bytes = 0;
    E->stopped = false;
    memset(&E->root, 0, sizeof E->root);
    E->root.call_loc = net->loc;
    E->root.env = &E->root_env;
    E->frame = &E->root;
    E->scope = ir_alloc(E->arena, sizeof *E->scope);
    E->scope->path = "";
    for (int32_t i = 0; i < net->inputs.n; i++)
        declare_input(E, &net->inputs.items[i]);
    return E->d->nerrors == errors;
}

bool fe_is_identifier(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

bool fe_elab_adopt(Elab *E, Graph *g)
{
    E->g = g;
    E->errors_at_start = E->d->nerrors;
    E->depth = E->steps = E->weight_bytes = 0;
    E->stopped = false;
    memset(&E->root, 0, sizeof E->root);
    E->root.env = &E->root_env;
    E->frame = &E->root;
    E->scope = ir_alloc(E->arena, sizeof *E->scope);
    E->scope->path = "";
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_INPUT && fe_is_identifier(g->nodes[i].name))
            fe_env_set(E, &E->root_env, g->nodes[i].name, fe_tensor(i));
    for (int32_t i = 0; i < g->noutputs; i++)
        if (fe_is_identifier(g->outputs[i].name))
            fe_env_set(E, &E->root_env, g->outputs[i].name, fe_tensor(g->outputs[i].node));
    return true;
}

static void add_output(Elab *E, const Expr *x, Value v)
{
    if (v.kind != V_TENSOR) {
        if (v.kind != V_ERROR)
            fe_error(E, x->loc, "a network returns tensors, got %s", fe_value_str(E, v));
        return;
    }
    const char *name = x->kind == E_IDENT ? x->s : E->g->nodes[v.node].name;
    for (int32_t i = 0; i < E->g->noutputs; i++) {
        if (strcmp(E->g->outputs[i].name, name) == 0) {
            fe_error(E, x->loc, "output '%s' is returned twice", name);
            return;
        }
    }
    ir_add_output(E->g, v.node, name);
}

Graph *fe_elab_finish(Elab *E, const NetworkDef *net)
{
    const Stmt *s = E->root.ret_stmt;
    if (!E->root.returned && !E->root.poisoned && !E->stopped)
        fe_error(E, net->loc, "network '%s' has no 'return'", net->name);
    for (int32_t i = 0; E->root.returned && i < s->ret.n; i++)
        add_output(E, s->ret.items[i], s->ret.n == 1 ? E->root.ret : E->root.ret.list->items[i]);
    Graph *g = E->g;
    E->g = NULL;
    if (E->d->nerrors > E->errors_at_start || !E->root.returned) {
        ir_graph_free(g);
        return NULL;
    }
    return g;
}
