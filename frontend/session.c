/* session.c: a network extended one piece of text at a time (a REPL's
 * statements). One Elab lives as long as the network; each text runs against
 * it after a snapshot of everything a statement can change, so a text that
 * fails is undone as a whole and the session goes on as before it. */
#include "session.h"

#include "elab.h"

#include <stdlib.h>
#include <string.h>

/* What text typed so far under one source name holds, line by line, so that
 * messages about earlier lines can still quote them. */
typedef struct Source {
    const char *name;
    char *text; /* ir_xmalloc'd */
    size_t len;
    struct Source *link;
} Source;

/* The network and what its statements decided about the outputs. */
typedef struct Net {
    Elab *E; /* E->g is NULL until a network starts */
    GraphOutput *outs;
    int32_t nouts;
    bool returned;
    int32_t last; /* the last tensor assigned, or -1 */
    const char *last_name;
} Net;

struct FeSession {
    FeOptions opt;
    Arena *arena; /* syntax trees and source names: they outlive every text */
    Net net;
    Source *sources;
    Diag quiet; /* stands in for a NULL Diag */
};

typedef struct Lines {
    const char **items;
    int32_t n, cap;
} Lines;

/* ---- sessions ------------------------------------------------------------------ */

FeSession *fe_session_new(const FeOptions *opt)
{
    FeSession *s = ir_xcalloc(1, sizeof *s);
    if (opt)
        s->opt = *opt;
    s->arena = ir_arena_new();
    ir_diag_init(&s->quiet, NULL);
    s->net.E = fe_elab_new(&s->quiet, &s->opt);
    s->net.last = -1;
    return s;
}

void fe_session_free(FeSession *s)
{
    if (!s)
        return;
    fe_elab_free(s->net.E);
    for (Source *src = s->sources, *next; src; src = next) {
        next = src->link;
        free(src->text);
        free(src);
    }
    ir_diag_fini(&s->quiet);
    ir_arena_free(s->arena);
    free(s);
}

bool fe_session_has_network(const FeSession *s)
{
    return s->net.E->g != NULL;
}

static Diag *diag_or_quiet(FeSession *s, Diag *d)
{
    return d ? d : &s->quiet;
}

static void replace_net(FeSession *s, Elab *E)
{
    fe_elab_free(s->net.E);
    memset(&s->net, 0, sizeof s->net);
    s->net.E = E;
    s->net.last = -1;
}

/* ---- sources ------------------------------------------------------------------ */

static Source *find_source(FeSession *s, const char *name)
{
    if (!name)
        name = "<input>";
    Source *src = s->sources;
    while (src && strcmp(src->name, name) != 0)
        src = src->link;
    if (!src) {
        src = ir_xcalloc(1, sizeof *src);
        src->name = ir_strdup(s->arena, name);
        src->link = s->sources;
        s->sources = src;
    }
    return src;
}

/* Places `text` at line `line` of its source (keeping the lines before it)
 * and registers the whole with `d`; returns the session's copy of the name. */
static const char *add_text(FeSession *s, Diag *d, const char *name, int32_t line,
                            const char *text)
{
    Source *src = find_source(s, name);
    size_t keep = 0;
    int32_t lines = 1;
    while (lines < line && keep < src->len)
        lines += src->text[keep++] == '\n';
    size_t pad = lines < line ? (size_t)(line - lines) : 0, n = strlen(text);
    char *buf = ir_xmalloc(keep + pad + n + 1);
    if (keep)
        memcpy(buf, src->text, keep);
    memset(buf + keep, '\n', pad);
    memcpy(buf + keep + pad, text, n + 1);
    free(src->text);
    src->text = buf;
    src->len = keep + pad + n;
    ir_diag_add_source(d, src->name, src->text, src->len);
    return src->name;
}

/* ---- describing values -------------------------------------------------------- */

static void put(char *buf, size_t n, size_t *len, const char *s)
{
    if (*len < n)
        *len += (size_t)snprintf(buf + *len, n - *len, "%s", s);
}

/* "f32[1, 64, 26, 26]", "[f32[1, 8], 3]", "layer relu", or the value as
 * messages show it. */
static void describe(const Elab *E, Value v, char *buf, size_t n, size_t *len)
{
    char tmp[64];
    if (v.kind == V_TENSOR) {
        const TensorType *t = fe_tensor_type(E, v);
        put(buf, n, len, ir_dtype_name(t->dtype));
        for (int32_t i = 0; i < t->rank; i++) {
            snprintf(tmp, sizeof tmp, "%s%lld", i ? ", " : "[", (long long)t->dims[i]);
            put(buf, n, len, tmp);
        }
        put(buf, n, len, t->rank ? "]" : "[]");
    } else if (v.kind == V_LIST) {
        put(buf, n, len, "[");
        for (int32_t i = 0; i < v.list->n; i++) {
            put(buf, n, len, i ? ", " : "");
            describe(E, v.list->items[i], buf, n, len);
        }
        put(buf, n, len, "]");
    } else if (v.kind == V_CALLABLE) {
        const Callable *c = v.fn;
        put(buf, n, len, c->block ? "block " : c->builtin->layer ? "layer " : "function ");
        put(buf, n, len, c->name);
    } else {
        put(buf, n, len, fe_value_str(E, v));
    }
}

static void add_line(Arena *a, Lines *out, const Elab *E, const char *prefix, Value v)
{
    if (!out)
        return;
    char buf[512];
    size_t len = 0;
    put(buf, sizeof buf, &len, prefix);
    describe(E, v, buf, sizeof buf, &len);
    if (len >= sizeof buf)
        memcpy(buf + sizeof buf - 4, "...", 4);
    AST_PUSH(a, out, ir_strdup(a, buf));
}

/* "block basic(x, planes, stride=1)": defaults shown when they are literals. */
static const char *block_line(Arena *a, const BlockDef *b)
{
    char buf[512], tmp[128];
    size_t len = 0;
    put(buf, sizeof buf, &len, "block ");
    put(buf, sizeof buf, &len, b->name);
    for (int32_t i = 0; i < b->params.n; i++) {
        const Param *p = &b->params.items[i];
        const Expr *e = p->def;
        put(buf, sizeof buf, &len, i ? ", " : "(");
        put(buf, sizeof buf, &len, p->name);
        if (!e)
            continue;
        switch (e->kind) {
        case E_INT: snprintf(tmp, sizeof tmp, "=%lld", (long long)e->i); break;
        case E_FLOAT: snprintf(tmp, sizeof tmp, "=%g", e->f); break;
        case E_STRING: snprintf(tmp, sizeof tmp, "=\"%.100s\"", e->s); break;
        case E_BOOL: snprintf(tmp, sizeof tmp, "=%s", e->b ? "true" : "false"); break;
        case E_NONE: snprintf(tmp, sizeof tmp, "=none"); break;
        case E_IDENT: snprintf(tmp, sizeof tmp, "=%.100s", e->s); break;
        default: snprintf(tmp, sizeof tmp, "=..."); break;
        }
        put(buf, sizeof buf, &len, tmp);
    }
    put(buf, sizeof buf, &len, b->params.n ? ")" : "()");
    if (len >= sizeof buf)
        memcpy(buf + sizeof buf - 4, "...", 4);
    return ir_strdup(a, buf);
}

/* ---- snapshots ------------------------------------------------------------------ */

typedef struct MapCopy {
    const char **keys;
    void **vals;
    int32_t cap, n;
} MapCopy;

/* Everything a text can change: nodes are only appended, maps only grow,
 * the root scope's counters only advance. */
typedef struct Snapshot {
    Net net;
    int32_t nnodes;
    Var *vars;
    int32_t nvars;
    MapCopy claimed, blocks;
    OpCount *counts;
    int32_t *next;
    int32_t ncounts, stage;
    int64_t weight_bytes;
} Snapshot;

static void map_save(const StrMap *m, MapCopy *c)
{
    c->cap = m->cap;
    c->n = m->n;
    c->keys = ir_xmalloc((size_t)m->cap * sizeof *c->keys);
    c->vals = ir_xmalloc((size_t)m->cap * sizeof *c->vals);
    if (m->cap) {
        memcpy(c->keys, m->keys, (size_t)m->cap * sizeof *c->keys);
        memcpy(c->vals, m->vals, (size_t)m->cap * sizeof *c->vals);
    }
}

static void map_restore(StrMap *m, Arena *a, const MapCopy *c)
{
    if (m->cap != c->cap) {
        m->keys = c->cap ? ir_alloc(a, (size_t)c->cap * sizeof *m->keys) : NULL;
        m->vals = c->cap ? ir_alloc(a, (size_t)c->cap * sizeof *m->vals) : NULL;
        m->cap = c->cap;
    }
    if (c->cap) {
        memcpy(m->keys, c->keys, (size_t)c->cap * sizeof *m->keys);
        memcpy(m->vals, c->vals, (size_t)c->cap * sizeof *m->vals);
    }
    m->n = c->n;
    free(c->keys);
    free(c->vals);
}

static void take_snapshot(const Net *net, Snapshot *sn)
{
    const Elab *E = net->E;
    memset(sn, 0, sizeof *sn);
    sn->net = *net;
    sn->nnodes = E->g ? E->g->nnodes : 0;
    sn->weight_bytes = E->weight_bytes;
    sn->nvars = E->root_env.n;
    sn->vars = ir_xmalloc((size_t)sn->nvars * sizeof *sn->vars);
    if (sn->nvars)
        memcpy(sn->vars, E->root_env.vars, (size_t)sn->nvars * sizeof *sn->vars);
    map_save(&E->claimed, &sn->claimed);
    map_save(&E->blocks, &sn->blocks);
    if (!E->scope)
        return;
    if (E->scope->up)
        ICE("a statement left a scope open");
    sn->stage = E->scope->stage;
    sn->counts = E->scope->counts;
    for (const OpCount *c = sn->counts; c; c = c->link)
        sn->ncounts++;
    sn->next = ir_xmalloc((size_t)sn->ncounts * sizeof *sn->next);
    int32_t i = 0;
    for (const OpCount *c = sn->counts; c; c = c->link)
        sn->next[i++] = c->next;
}

static void restore_snapshot(Net *net, Snapshot *sn)
{
    Elab *E = net->E;
    *net = sn->net;
    if (E->g)
        E->g->nnodes = sn->nnodes;
    E->weight_bytes = sn->weight_bytes;
    E->root_env.vars = ir_alloc(E->arena, (size_t)sn->nvars * sizeof *sn->vars + 1);
    if (sn->nvars)
        memcpy(E->root_env.vars, sn->vars, (size_t)sn->nvars * sizeof *sn->vars);
    E->root_env.n = E->root_env.cap = sn->nvars;
    map_restore(&E->claimed, E->arena, &sn->claimed);
    map_restore(&E->blocks, E->arena, &sn->blocks);
    if (E->scope) {
        E->scope->stage = sn->stage;
        E->scope->counts = sn->counts;
        int32_t i = 0;
        for (OpCount *c = sn->counts; c; c = c->link)
            c->next = sn->next[i++];
    }
    E->root.returned = E->root.poisoned = false;
    E->root.ret_stmt = NULL;
}

static void free_snapshot(Snapshot *sn)
{
    free(sn->vars);
    free(sn->next);
}

static void drop_snapshot(Snapshot *sn)
{
    free(sn->claimed.keys);
    free(sn->claimed.vals);
    free(sn->blocks.keys);
    free(sn->blocks.vals);
    free_snapshot(sn);
}

/* ---- statements ------------------------------------------------------------------ */

static bool is_identifier(const char *s)
{
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
        return false;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static bool output_of(Net *net, const Expr *x, Value v, GraphOutput *out, int32_t k)
{
    Elab *E = net->E;
    if (v.kind != V_TENSOR) {
        if (v.kind != V_ERROR)
            fe_error(E, x->loc, "a network returns tensors, got %s", fe_value_str(E, v));
        return false;
    }
    const char *name = x->kind == E_IDENT ? x->s : E->g->nodes[v.node].name;
    for (int32_t i = 0; i < k; i++) {
        if (strcmp(out[i].name, name) == 0) {
            fe_error(E, x->loc, "output '%s' is returned twice", name);
            return false;
        }
    }
    out[k] = (GraphOutput){v.node, name};
    return true;
}

/* A `return` ran: its tensors become the outputs, and the network goes on. */
static void take_return(Net *net, Arena *a, Lines *lines)
{
    Elab *E = net->E;
    const Stmt *r = E->root.ret_stmt;
    Value ret = E->root.ret;
    E->root.returned = false;
    E->root.ret_stmt = NULL;
    GraphOutput *outs = ir_alloc(E->arena, (size_t)r->ret.n * sizeof *outs);
    bool ok = true;
    for (int32_t i = 0; ok && i < r->ret.n; i++)
        ok = output_of(net, r->ret.items[i], r->ret.n == 1 ? ret : ret.list->items[i], outs, i);
    if (!ok)
        return;
    net->outs = outs;
    net->nouts = r->ret.n;
    net->returned = true;
    for (int32_t i = 0; i < r->ret.n; i++) {
        Value v = fe_tensor(outs[i].node);
        if (is_identifier(outs[i].name) && !fe_env_find(&E->root_env, outs[i].name))
            fe_env_set(E, &E->root_env, outs[i].name, v);
        add_line(a, lines, E, ir_strfmt(a, "output %s: ", outs[i].name), v);
    }
}

static void set_last(Net *net, const char *name, Value v)
{
    if (v.kind == V_TENSOR) {
        net->last = v.node;
        net->last_name = name;
    }
}

/* The variables a statement bound or changed, in the order they were first bound. */
static void report_vars(Net *net, const Var *before, int32_t nbefore, const Stmt *st,
                        Arena *a, Lines *lines)
{
    Elab *E = net->E;
    for (int32_t i = 0; i < E->root_env.n; i++) {
        const Var *v = &E->root_env.vars[i];
        bool target = st->kind == S_ASSIGN && strcmp(st->assign.name, v->name) == 0;
        if (!target && i < nbefore && fe_values_equal(E, before[i].v, v->v))
            continue;
        set_last(net, v->name, v->v);
        add_line(a, lines, E, ir_strfmt(a, "%s: ", v->name), v->v);
    }
}

/* Runs one statement; at a prompt a bare expression shows its value. True
 * when a `return` ran. */
static bool run_stmt(Net *net, const Stmt *st, bool prompt, Arena *a, Lines *lines)
{
    Elab *E = net->E;
    int errors = E->d->nerrors;
    if (prompt && st->kind == S_EXPR) {
        Value v = fe_elab_value(E, st->expr);
        if (E->d->nerrors == errors) {
            set_last(net, v.kind == V_TENSOR ? E->g->nodes[v.node].name : NULL, v);
            add_line(a, lines, E, "", v);
        }
        return false;
    }
    int32_t nbefore = E->root_env.n;
    Var *before = ir_alloc(a, (size_t)nbefore * sizeof *before + 1);
    if (nbefore)
        memcpy(before, E->root_env.vars, (size_t)nbefore * sizeof *before);
    fe_elab_stmt(E, st);
    bool returned = E->root.returned;
    if (E->d->nerrors > errors)
        return returned;
    report_vars(net, before, nbefore, st, a, lines);
    if (returned)
        take_return(net, a, lines);
    return returned;
}

/* A block defined again replaces the earlier one (for calls from now on). */
static void define_block(Net *net, const BlockDef *b, Arena *a, Lines *lines)
{
    Elab *E = net->E;
    if (fe_map_get(&E->blocks, b->name))
        fe_map_put(&E->blocks, E->arena, b->name, NULL);
    if (fe_elab_add_block(E, b) && lines)
        AST_PUSH(a, lines, block_line(a, b));
}

/* ---- feeding text -------------------------------------------------------------- */

static bool needs_network(FeSession *s, const EntryList *l, Diag *d)
{
    for (int32_t i = 0; i < l->n && !fe_session_has_network(s); i++) {
        if (l->items[i].stmt) {
            ir_error(d, l->items[i].stmt->loc,
                     "no network to add this to; load a model or start a network first");
            return false;
        }
    }
    return true;
}

static bool run_entries(FeSession *s, const EntryList *l, Arena *a, Lines *lines)
{
    Diag *d = s->net.E->d;
    int errors = d->nerrors;
    for (int32_t i = 0; i < l->n && d->nerrors == errors; i++) {
        if (l->items[i].block)
            define_block(&s->net, l->items[i].block, a, lines);
        else
            run_stmt(&s->net, l->items[i].stmt, true, a, lines);
    }
    return d->nerrors == errors;
}

FeFeed fe_session_feed(FeSession *s, const char *text, const char *srcname, int32_t line,
                       Diag *d, FeEcho echo, void *ctx)
{
    d = diag_or_quiet(s, d);
    ir_diag_forget(d);
    if (line < 1)
        line = 1;
    const char *file = add_text(s, d, srcname, line, text);
    EntryList l;
    FeParseStatus st = fe_parse_entries(s->arena, d, file, line, text, strlen(text), &l);
    if (st != FE_PARSE_OK)
        return st == FE_PARSE_MORE ? FE_FEED_MORE : FE_FEED_ERROR;
    if (!needs_network(s, &l, d))
        return FE_FEED_ERROR;
    Snapshot sn;
    take_snapshot(&s->net, &sn);
    s->net.E->d = d;
    s->net.E->steps = 0; /* each entry has the whole budget (FeLimits) */
    s->net.E->stopped = false;
    Arena *a = ir_arena_new();
    Lines lines = {0};
    bool ok = run_entries(s, &l, a, &lines);
    if (ok) {
        drop_snapshot(&sn);
    } else {
        restore_snapshot(&s->net, &sn);
        free_snapshot(&sn);
    }
    for (int32_t i = 0; ok && echo && i < lines.n; i++)
        echo(ctx, lines.items[i]);
    ir_arena_free(a);
    return ok ? FE_FEED_OK : FE_FEED_ERROR;
}

/* ---- starting networks ------------------------------------------------------------ */

/* Runs a loaded network's body as a file would: up to its return. */
static void run_body(Net *net, const NetworkDef *def)
{
    Arena *a = ir_arena_new();
    for (int32_t i = 0; i < def->body.n; i++)
        if (run_stmt(net, def->body.items[i], false, a, NULL))
            break;
    ir_arena_free(a);
}

/* An ONNX model: its graph as imported, its outputs returned. */
static bool load_onnx(FeSession *s, const char *path, Diag *d)
{
    Graph *g = fe_load_onnx(path, &s->opt, d);
    if (!g)
        return false;
    Net net = {.E = fe_elab_new(d, &s->opt), .last = -1, .returned = true};
    fe_elab_adopt(net.E, g);
    net.nouts = g->noutputs;
    net.outs = ir_alloc(net.E->arena, ((size_t)g->noutputs + 1) * sizeof *net.outs);
    for (int32_t i = 0; i < g->noutputs; i++)
        net.outs[i] = g->outputs[i];
    fe_elab_free(s->net.E);
    s->net = net;
    return true;
}

bool fe_session_load(FeSession *s, const char *path, Diag *d)
{
    d = diag_or_quiet(s, d);
    size_t len = strlen(path);
    if (len >= 5 && !strcmp(path + len - 5, ".onnx"))
        return load_onnx(s, path, d);
    int errors = d->nerrors;
    Net net = {.E = fe_elab_new(d, &s->opt), .last = -1};
    const NetworkDef *def;
    if (fe_load_defs(net.E, s->arena, path, d, &def) && def && fe_elab_begin(net.E, def))
        run_body(&net, def);
    if (d->nerrors > errors) {
        fe_elab_free(net.E);
        return false;
    }
    fe_elab_free(s->net.E);
    s->net = net;
    return true;
}

static void copy_blocks(Elab *to, const Elab *from)
{
    for (int32_t i = 0; i < from->blocks.cap; i++)
        if (from->blocks.keys[i] && from->blocks.vals[i])
            fe_elab_add_block(to, from->blocks.vals[i]);
}

bool fe_session_begin(FeSession *s, const char *header, const char *srcname, Diag *d)
{
    d = diag_or_quiet(s, d);
    int errors = d->nerrors;
    /* Registered apart from the text typed under the same name, which it
     * would otherwise replace; the newest registration is the one quoted. */
    const char *file = find_source(s, srcname)->name;
    ir_diag_add_source(d, file, header, strlen(header));
    NetworkDef *def = fe_parse_header(s->arena, d, file, 1, header, strlen(header));
    if (!def)
        return false;
    Elab *E = fe_elab_new(d, &s->opt);
    copy_blocks(E, s->net.E);
    if (!fe_elab_begin(E, def) || d->nerrors > errors) {
        fe_elab_free(E);
        return false;
    }
    replace_net(s, E);
    return true;
}

/* ---- weights and graphs ------------------------------------------------------------ */

/* Binds into fresh buffers, so that a file that fails halfway leaves every
 * parameter's old data as it was. */
bool fe_session_bind_weights(FeSession *s, const char *path, Diag *d)
{
    d = diag_or_quiet(s, d);
    Graph *g = s->net.E->g;
    if (!g) {
        ir_error(d, (SrcLoc){path, 0, 0}, "no network to bind weights to");
        return false;
    }
    float **old = ir_xmalloc((size_t)g->nnodes * sizeof *old + 1);
    for (int32_t i = 0; i < g->nnodes; i++) {
        old[i] = g->nodes[i].data;
        g->nodes[i].data = NULL;
    }
    bool ok = fe_bind_safetensors_partial(g, path, d);
    for (int32_t i = 0; i < g->nnodes; i++)
        if (!ok || !g->nodes[i].data)
            g->nodes[i].data = old[i];
    free(old);
    return ok;
}

Graph *fe_session_graph(FeSession *s, uint64_t seed, Diag *d)
{
    d = diag_or_quiet(s, d);
    const Net *net = &s->net;
    if (!net->E->g) {
        ir_error(d, (SrcLoc){0}, "no network yet; load a model or start a network first");
        return NULL;
    }
    if (!net->returned && net->last < 0) {
        ir_error(d, (SrcLoc){0}, "the network has no output yet; assign or return a tensor");
        return NULL;
    }
    Graph *g = ir_graph_clone(net->E->g);
    g->noutputs = 0;
    if (net->returned)
        for (int32_t i = 0; i < net->nouts; i++)
            ir_add_output(g, net->outs[i].node, net->outs[i].name);
    else
        ir_add_output(g, net->last, net->last_name);
    fe_random_unbound_weights(g, seed);
    if (!ir_verify(g, d)) {
        ir_graph_free(g);
        return NULL;
    }
    return g;
}

/* ---- completion ------------------------------------------------------------------ */

typedef struct NameList {
    const char **names;
    int32_t n, max, total;
} NameList;

static void add_name(NameList *l, const char *name)
{
    l->total++;
    if (l->n < l->max)
        l->names[l->n++] = name;
}

static bool is_var(const Elab *E, const char *name)
{
    for (int32_t i = 0; i < E->root_env.n; i++)
        if (strcmp(E->root_env.vars[i].name, name) == 0)
            return true;
    return false;
}

static bool is_block(const Elab *E, const char *name)
{
    return fe_map_get(&E->blocks, name) != NULL;
}

int32_t fe_session_names(const FeSession *s, const char **names, int32_t max)
{
    const Elab *E = s->net.E;
    NameList l = {names, 0, names ? max : 0, 0};
    for (int32_t i = 0; i < E->root_env.n; i++)
        add_name(&l, E->root_env.vars[i].name);
    for (int32_t i = 0; i < E->blocks.cap; i++)
        if (E->blocks.keys[i] && E->blocks.vals[i] && !is_var(E, E->blocks.keys[i]))
            add_name(&l, E->blocks.keys[i]);
    for (int32_t i = 0; E->g && i < E->g->nnodes; i++) {
        const char *name = E->g->nodes[i].name;
        if (name && !is_var(E, name) && !is_block(E, name))
            add_name(&l, name);
    }
    return names ? l.n : l.total;
}

int32_t fe_session_lookup(const FeSession *s, const char *name)
{
    const Elab *E = s->net.E;
    if (!E || !E->g || !name) return -1;
    for (int32_t i = E->root_env.n - 1; i >= 0; i--) {
        const Var *v = &E->root_env.vars[i];
        if (strcmp(v->name, name) == 0) return v->v.kind == V_TENSOR ? v->v.node : -1;
    }
    for (int32_t i = 0; i < E->g->nnodes; i++)
        if (E->g->nodes[i].name && strcmp(E->g->nodes[i].name, name) == 0) return i;
    return -1;
}
