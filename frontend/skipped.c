/* skipped.c: code that elaboration skips because a value it depends on
 * failed (an `if` on a failed condition, a `for` over a failed list) is still
 * read for calls of unknown layers or blocks, so that one run reports every
 * such mistake, not just those before the first failure. */
#include "elab.h"

#include <string.h>

void fe_unknown_callee(Elab *E, const char *name, SrcLoc loc)
{
    Suggest s;
    char buf[96];
    fe_suggest_init(&s, name);
    fe_suggest_layers(&s);
    fe_suggest_funcs(&s);
    for (int32_t i = 0; i < E->blocks.cap; i++)
        fe_suggest_add(&s, E->blocks.keys[i]);
    fe_error(E, loc, "unknown layer or block '%s'%s", name, fe_suggest_text(&s, buf, sizeof buf));
}

/* Two passes over the skipped code: the first collects the names it binds
 * (any of which may hold a layer), the second reports the other callees
 * that are neither variables nor blocks, layers or functions. */
typedef struct Walk {
    Elab *E;
    bool check;
    const char **names;
    int32_t n, cap;
} Walk;

static void walk_stmts(Walk *w, const StmtList *l, bool in_seq);

static void bind_name(Walk *w, const char *name)
{
    if (!w->check) {
        w->names = ast_grow(w->E->arena, w->names, w->n, &w->cap, sizeof *w->names);
        w->names[w->n++] = name;
    }
}

static bool known(const Walk *w, const char *name)
{
    for (int32_t i = 0; i < w->n; i++)
        if (strcmp(w->names[i], name) == 0)
            return true;
    return fe_env_find(w->E->frame->env, name) || fe_map_get(&w->E->blocks, name) ||
           fe_find_layer(name) || fe_find_func(name);
}

static void callee(Walk *w, const char *name, SrcLoc loc)
{
    if (w->check && !known(w, name))
        fe_unknown_callee(w->E, name, loc);
}

static void walk_exprs(Walk *w, const ExprList *l);

/* `stage`: a bare name here is a call (a sequence stage). */
static void walk_expr(Walk *w, const Expr *e, bool stage)
{
    if (!e)
        return;
    switch (e->kind) {
    case E_IDENT:
        if (stage)
            callee(w, e->s, e->loc);
        break;
    case E_CALL:
        callee(w, e->call.callee, e->loc);
        for (int32_t i = 0; i < e->call.args.n; i++)
            walk_expr(w, e->call.args.items[i].value, false);
        break;
    case E_LIST: walk_exprs(w, &e->items); break;
    case E_UNARY:
    case E_BINARY:
        walk_expr(w, e->bin.lhs, false);
        walk_expr(w, e->bin.rhs, false);
        break;
    case E_COND:
        walk_expr(w, e->cond.cond, false);
        walk_expr(w, e->cond.then, stage);
        walk_expr(w, e->cond.els, stage);
        break;
    case E_INDEX:
        walk_expr(w, e->index.base, false);
        walk_expr(w, e->index.index, false);
        break;
    case E_AS:
        walk_expr(w, e->as.inner, stage);
        walk_exprs(w, &e->as.parts);
        break;
    case E_SEQUENCE:
        walk_exprs(w, &e->seq.name_parts);
        walk_expr(w, e->seq.input, false);
        walk_stmts(w, &e->seq.body, true);
        break;
    case E_REPEAT:
        walk_expr(w, e->repeat.count, false);
        walk_expr(w, e->repeat.from, false);
        walk_expr(w, e->repeat.call, true);
        break;
    default: break;
    }
}

static void walk_exprs(Walk *w, const ExprList *l)
{
    for (int32_t i = 0; i < l->n; i++)
        walk_expr(w, l->items[i], false);
}

static void walk_stmts(Walk *w, const StmtList *l, bool in_seq)
{
    for (int32_t i = 0; i < l->n; i++) {
        const Stmt *s = l->items[i];
        switch (s->kind) {
        case S_ASSIGN:
            bind_name(w, s->assign.name);
            walk_expr(w, s->assign.value, false);
            break;
        case S_IF:
            walk_expr(w, s->if_.cond, false);
            walk_stmts(w, &s->if_.then, in_seq);
            walk_stmts(w, &s->if_.els, in_seq);
            break;
        case S_FOR:
            bind_name(w, s->for_.var);
            walk_expr(w, s->for_.iter, false);
            walk_stmts(w, &s->for_.body, in_seq);
            break;
        case S_RETURN: walk_exprs(w, &s->ret); break;
        case S_EXPR: walk_expr(w, s->expr, in_seq); break;
        }
    }
}

void fe_check_skipped(Elab *E, const StmtList *l, bool in_seq)
{
    Walk w = {.E = E};
    if (E->frame->block)
        walk_stmts(&w, &E->frame->block->body, false);
    walk_stmts(&w, l, in_seq);
    w.check = true;
    walk_stmts(&w, l, in_seq);
}
