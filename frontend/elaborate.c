/* elaborate.c: runs a network's AST at compile time. Expressions evaluate to
 * values; layer calls add graph nodes whose shapes are inferred at once, and
 * blocks, sequences and repeats open the name scopes that give every layer
 * its path ("layer1.0.conv1"). A failed expression yields an error value
 * that silently poisons what uses it, so one run reports every independent
 * mistake exactly once. */
#include "elab.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* A value fed into a call from outside its argument list: a sequence's
 * current value goes first; a repeat's previous result replaces the first
 * positional argument. */
typedef enum { FEED_PREPEND, FEED_REPLACE } FeedMode;
typedef struct Feed {
    FeedMode mode;
    Value v;
} Feed;

typedef struct ArgVal {
    const char *name; /* NULL: positional */
    SrcLoc name_loc;
    SrcLoc loc; /* the value */
    Value v;
} ArgVal;

static Value eval(Elab *E, const Expr *e);
static Value eval_named(Elab *E, const Expr *e, const Naming *nm);
static void exec_stmts(Elab *E, const StmtList *l, Value *cur);
static Value want_bool(Elab *E, const Expr *e, const char *what);

static Value fail(Elab *E, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static Value fail(Elab *E, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ir_vdiag(E->d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
    fe_call_notes(E);
    return fe_error_value();
}

/* ---- identifiers and callees ------------------------------------------------ */

static bool global_callable(Elab *E, const char *name, Callable *out)
{
    memset(out, 0, sizeof *out);
    out->name = name;
    out->block = fe_map_get(&E->blocks, name);
    if (!out->block)
        out->builtin = fe_find_layer(name);
    if (!out->block && !out->builtin)
        out->builtin = fe_find_func(name);
    return out->block || out->builtin;
}

static Value callable_value(Elab *E, const Callable *c)
{
    Callable *p = ir_alloc(E->arena, sizeof *p);
    *p = *c;
    return (Value){.kind = V_CALLABLE, .fn = p};
}

static void suggest_vars(Suggest *s, const Env *env)
{
    for (; env; env = env->parent)
        for (int32_t i = 0; i < env->n; i++)
            fe_suggest_add(s, env->vars[i].name);
}

static Value eval_ident(Elab *E, const Expr *e)
{
    Var *v = fe_env_find(E->frame->env, e->s);
    if (v)
        return v->v;
    Callable c;
    if (global_callable(E, e->s, &c))
        return callable_value(E, &c);
    if (strcmp(e->s, "first") == 0 || strcmp(e->s, "index") == 0)
        return fail(E, e->loc, "'%s' is only defined in the arguments and name of a repeated call",
                    e->s);
    Suggest s;
    char buf[96];
    fe_suggest_init(&s, e->s);
    suggest_vars(&s, E->frame->env);
    return fail(E, e->loc, "undefined name '%s'%s", e->s, fe_suggest_text(&s, buf, sizeof buf));
}

/* Finds what `name(...)` calls: a variable holding a layer or block, else a
 * block, layer or function of that name. */
static bool resolve_callee(Elab *E, const char *name, SrcLoc loc, Callable *out)
{
    Var *v = fe_env_find(E->frame->env, name);
    if (v && v->v.kind == V_CALLABLE) {
        *out = *v->v.fn;
        return true;
    }
    if (global_callable(E, name, out))
        return true;
    if (v) {
        if (v->v.kind != V_ERROR)
            fail(E, loc, "'%s' is %s, not a layer or block", name, fe_kind_name(v->v.kind));
        return false;
    }
    fe_unknown_callee(E, name, loc);
    return false;
}

/* ---- argument binding ------------------------------------------------------- */

typedef struct Binding {
    Value *vals;
    SrcLoc *locs;
    bool *given;
    Value *rest;
    SrcLoc *rest_locs;
    int32_t nrest;
} Binding;

static int32_t param_index(const char *const *names, int32_t np, const char *name)
{
    for (int32_t i = 0; i < np; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

static void too_many(Elab *E, const char *what, int32_t np, bool all_required, int32_t got,
                     bool fed, SrcLoc loc)
{
    fail(E, loc, "%s takes %s%d argument%s, got %d%s", what, all_required ? "" : "at most ",
         (int)np, np == 1 ? "" : "s", (int)got,
         fed ? " (counting the sequence's current value)" : "");
}

static bool bind_keyword(Elab *E, const char *what, const char *const *names, int32_t np,
                         const ArgVal *a, Binding *b)
{
    int32_t k = param_index(names, np, a->name);
    if (k < 0) {
        Suggest s;
        char buf[96];
        fe_suggest_init(&s, a->name);
        for (int32_t i = 0; i < np; i++)
            fe_suggest_add(&s, names[i]);
        fail(E, a->name_loc, "unknown keyword '%s' for %s%s", a->name, what,
             fe_suggest_text(&s, buf, sizeof buf));
        return false;
    }
    if (b->given[k]) {
        fail(E, a->name_loc, "argument '%s' of %s is given twice", a->name, what);
        return false;
    }
    b->vals[k] = a->v;
    b->locs[k] = a->loc;
    b->given[k] = true;
    return true;
}

/* Matches arguments to parameters: positional ones in order, then keywords.
 * A variadic signature takes every positional argument into `rest`. */
static bool bind(Elab *E, const char *what, const char *const *names, int32_t np,
                 int32_t nrequired, bool variadic, const ArgVal *args, int32_t n, bool fed,
                 Binding *b)
{
    bool ok = true, keywords = false;
    int32_t pos = 0, npos = 0;
    for (int32_t i = 0; i < n; i++)
        npos += args[i].name == NULL;
    for (int32_t i = 0; i < n; i++) {
        const ArgVal *a = &args[i];
        if (a->name) {
            keywords = true;
            ok &= bind_keyword(E, what, names, np, a, b);
        } else if (keywords) {
            ok = false;
            fail(E, a->loc, "a positional argument cannot follow keyword arguments");
        } else if (variadic) {
            b->rest[b->nrest] = a->v;
            b->rest_locs[b->nrest++] = a->loc;
        } else if (pos < np) {
            b->vals[pos] = a->v;
            b->locs[pos] = a->loc;
            b->given[pos++] = true;
        } else if (pos++ == np) {
            ok = false;
            too_many(E, what, np, nrequired == np, npos, fed, a->loc);
        }
    }
    return ok;
}

static void binding_alloc(Elab *E, Binding *b, int32_t np, int32_t nargs)
{
    b->vals = ir_alloc(E->arena, (size_t)(np + 1) * sizeof *b->vals);
    b->locs = ir_alloc(E->arena, (size_t)(np + 1) * sizeof *b->locs);
    b->given = ir_alloc(E->arena, (size_t)(np + 1) * sizeof *b->given);
    b->rest = ir_alloc(E->arena, (size_t)(nargs + 1) * sizeof *b->rest);
    b->rest_locs = ir_alloc(E->arena, (size_t)(nargs + 1) * sizeof *b->rest_locs);
    b->nrest = 0;
}

/* ---- calls of built-ins ----------------------------------------------------- */

static int32_t builtin_nparams(const Builtin *b)
{
    int32_t n = 0;
    while (b->params[n])
        n++;
    return n;
}

static Value call_builtin(Elab *E, const Builtin *bi, const ArgVal *args, int32_t n,
                          const Naming *nm, SrcLoc loc, bool fed)
{
    if (!bi->layer && nm)
        return fail(E, nm->loc, "'as' names a layer or block; %s is a function", bi->name);
    int32_t np = builtin_nparams(bi);
    Binding b;
    binding_alloc(E, &b, np, n);
    Call c;
    memset(&c, 0, sizeof c);
    c.b = bi;
    c.loc = loc;
    if (bi->layer)
        c.name = fe_instance_name(E, nm, bi->name, loc);
    bool ok = bind(E, bi->name, bi->params, np, bi->nrequired, bi->variadic, args, n, fed, &b);
    for (int32_t i = 0; ok && i < bi->nrequired; i++) {
        if (!b.given[i]) {
            fail(E, loc, "missing argument '%s' of %s", bi->params[i], bi->name);
            ok = false;
        }
    }
    if (!ok)
        return fe_error_value();
    for (int32_t i = 0; i < np; i++) {
        c.args[i] = b.given[i] ? b.vals[i] : (Value){.kind = V_NONE};
        c.locs[i] = b.given[i] ? b.locs[i] : loc;
        c.given[i] = b.given[i];
    }
    c.rest = b.rest;
    c.rest_locs = b.rest_locs;
    c.nrest = b.nrest;
    return bi->fn(E, &c);
}

/* ---- calls of blocks -------------------------------------------------------- */

/* A block already being elaborated must not be entered again: report the
 * chain of calls that leads back to it. */
static bool check_recursion(Elab *E, const BlockDef *b, SrcLoc loc)
{
    const Frame *f = E->frame;
    while (f && f->block != b)
        f = f->caller;
    if (!f)
        return true;
    char chain[512];
    size_t len = (size_t)snprintf(chain, sizeof chain, "%s", b->name);
    const char *names[64];
    int32_t k = 0;
    for (const Frame *g = E->frame; g != f && k < 64; g = g->caller)
        names[k++] = g->block->name;
    while (k > 0 && len < sizeof chain)
        len += (size_t)snprintf(chain + len, sizeof chain - len, " -> %s", names[--k]);
    if (len < sizeof chain)
        snprintf(chain + len, sizeof chain - len, " -> %s", b->name);
    fail(E, loc, "block '%s' calls itself: %s", b->name, chain);
    return false;
}

static const char *const *block_param_names(Elab *E, const BlockDef *b)
{
    const char **names = ir_alloc(E->arena, (size_t)(b->params.n + 1) * sizeof *names);
    for (int32_t i = 0; i < b->params.n; i++)
        names[i] = b->params.items[i].name;
    return names;
}

/* Binds the parameters in the block's own environment, so a default can use
 * the parameters before it (`hidden = out * 4`); a missing one is an error
 * value. False when any is. */
static bool bind_block_params(Elab *E, const BlockDef *b, const Binding *bd)
{
    bool ok = true;
    for (int32_t i = 0; i < b->params.n; i++) {
        const Param *p = &b->params.items[i];
        Value v = bd->given[i] ? bd->vals[i] : p->def ? eval(E, p->def) : fe_error_value();
        ok &= v.kind != V_ERROR;
        fe_env_set(E, E->frame->env, p->name, v);
    }
    return ok;
}

static Value run_block(Elab *E, const BlockDef *b, const Binding *bd, const char *full,
                       SrcLoc loc)
{
    Env *env = ir_alloc(E->arena, sizeof *env);
    Frame fr = {.block = b, .instance = full, .call_loc = loc, .env = env, .caller = E->frame};
    fe_push_scope(E, full);
    E->frame = &fr;
    /* With a failed argument the body still runs, its uses of the argument
     * quiet, so that the mistakes of its own (an unknown layer) are reported. */
    bool args_ok = bind_block_params(E, b, bd);
    fr.poisoned = !args_ok;
    exec_stmts(E, &b->body, NULL);
    E->frame = fr.caller;
    fe_pop_scope(E);
    if (!args_ok)
        return fe_error_value();
    if (!fr.returned && !fr.poisoned && !E->stopped) {
        ir_error(E->d, loc, "block '%s' ended without 'return'", b->name);
        ir_note(E->d, b->loc, "'%s' is defined here", b->name);
        fe_call_notes(E);
    }
    return fr.returned ? fr.ret : fe_error_value();
}

static Value call_block(Elab *E, const BlockDef *b, const ArgVal *args, int32_t n,
                        const Naming *nm, SrcLoc loc, bool fed)
{
    if (!check_recursion(E, b, loc))
        return fe_error_value();
    const char *what = ir_strfmt(E->arena, "block '%s'", b->name);
    const char *const *names = block_param_names(E, b);
    int32_t nrequired = 0;
    for (int32_t i = 0; i < b->params.n; i++)
        nrequired += b->params.items[i].def == NULL;
    Binding bd;
    binding_alloc(E, &bd, b->params.n, n);
    bool ok = bind(E, what, names, b->params.n, nrequired, false, args, n, fed, &bd);
    for (int32_t i = 0; ok && i < b->params.n; i++) {
        if (!bd.given[i] && !b->params.items[i].def) {
            fail(E, loc, "missing argument '%s' of %s", names[i], what);
            ok = false;
        }
    }
    const char *full = fe_instance_name(E, nm, b->name, loc);
    Value v = run_block(E, b, &bd, full, loc);
    return ok ? v : fe_error_value();
}

/* ---- calls ---------------------------------------------------------------------- */

/* Evaluates the arguments of `e` (a call, or a bare name used as a stage),
 * with the fed value placed as the feed says. */
static int32_t eval_args(Elab *E, const Expr *e, const Feed *feed, ArgVal **out)
{
    int32_t nargs = e->kind == E_CALL ? e->call.args.n : 0;
    ArgVal *args = ir_alloc(E->arena, (size_t)(nargs + 1) * sizeof *args);
    int32_t n = 0;
    bool replaced = false;
    if (feed && feed->mode == FEED_PREPEND)
        args[n++] = (ArgVal){NULL, e->loc, e->loc, feed->v};
    for (int32_t i = 0; i < nargs; i++) {
        const Arg *a = &e->call.args.items[i];
        ArgVal *v = &args[n++];
        *v = (ArgVal){a->name, a->name_loc, a->value->loc, {0}};
        if (!a->name && feed && feed->mode == FEED_REPLACE && !replaced) {
            v->v = feed->v;
            replaced = true;
        } else {
            v->v = eval(E, a->value);
        }
    }
    *out = args;
    return n;
}

static const char *callee_name(const Expr *e)
{
    return e->kind == E_CALL ? e->call.callee : e->s;
}

static Value call_resolved(Elab *E, const Callable *fn, const Expr *e, const Naming *nm,
                           const Feed *feed)
{
    ArgVal *args;
    int32_t n = eval_args(E, e, feed, &args);
    bool fed = feed && feed->mode == FEED_PREPEND;
    if (fn->block)
        return call_block(E, fn->block, args, n, nm, e->loc, fed);
    return call_builtin(E, fn->builtin, args, n, nm, e->loc, fed);
}

/* Resolves the callee of a call that must build something (a stage or a
 * repeated call); on failure the arguments are still checked. */
static bool resolve_instance(Elab *E, const Expr *e, const char *role, Callable *fn)
{
    if (e->kind == E_IDENT) {
        Var *v = fe_env_find(E->frame->env, e->s);
        if (v && v->v.kind != V_CALLABLE) {
            if (v->v.kind != V_ERROR)
                fail(E, e->loc, "%s must be a layer or block; '%s' is %s", role, e->s,
                     fe_kind_name(v->v.kind));
            return false;
        }
    }
    bool ok = resolve_callee(E, callee_name(e), e->loc, fn);
    if (ok && fn->builtin && !fn->builtin->layer) {
        fail(E, e->loc, "%s must be a layer or block; '%s' is a function", role, fn->name);
        ok = false;
    }
    if (!ok) {
        ArgVal *args;
        eval_args(E, e, NULL, &args);
    }
    return ok;
}

static Value eval_call(Elab *E, const Expr *e, const Naming *nm, const Feed *feed)
{
    Callable fn;
    if (!resolve_callee(E, callee_name(e), e->loc, &fn)) {
        ArgVal *args;
        eval_args(E, e, NULL, &args);
        return fe_error_value();
    }
    return call_resolved(E, &fn, e, nm, feed);
}

/* ---- names written after `as` ------------------------------------------------ */

/* A quoted name's text with its {EXPR}s evaluated: each must be an int or a
 * string, and the result one segment of a path. NULL after an error. */
static const char *name_text(Elab *E, const char *written, const ExprList *parts, SrcLoc loc)
{
    if (parts->n == 0)
        return written;
    const char *text = "";
    for (int32_t i = 0; i < parts->n; i++) {
        const Expr *x = parts->items[i];
        Value v = eval(E, x);
        if (v.kind == V_INT)
            text = ir_strfmt(E->arena, "%s%lld", text, (long long)v.i);
        else if (v.kind == V_STRING)
            text = ir_strfmt(E->arena, "%s%s", text, v.s);
        else if (v.kind == V_ERROR)
            return NULL;
        else
            return fail(E, x->loc, "a part of a name must be an int or a string, not %s",
                        fe_kind_name(v.kind)), NULL;
    }
    /* No value in the messages: one mistake in a loop reads the same each time. */
    const char *why = ast_name_problem(text);
    if (why)
        return fail(E, loc, "the name computed here %s", why), NULL;
    return text;
}

/* The Naming of `EXPR as NAME`; false after an error in a computed name. */
static bool as_naming(Elab *E, const Expr *as, Naming *out)
{
    out->loc = as->as.name_loc;
    out->local = name_text(E, as->as.name, &as->as.parts, out->loc);
    return out->local != NULL;
}

static bool mentions_index(const Expr *e)
{
    if (!e)
        return false;
    switch (e->kind) {
    case E_IDENT: return strcmp(e->s, "index") == 0 || strcmp(e->s, "first") == 0;
    case E_UNARY:
    case E_BINARY: return mentions_index(e->bin.lhs) || mentions_index(e->bin.rhs);
    case E_COND:
        return mentions_index(e->cond.cond) || mentions_index(e->cond.then) ||
               mentions_index(e->cond.els);
    case E_INDEX: return mentions_index(e->index.base) || mentions_index(e->index.index);
    case E_LIST:
        for (int32_t i = 0; i < e->items.n; i++)
            if (mentions_index(e->items.items[i]))
                return true;
        return false;
    case E_CALL:
        for (int32_t i = 0; i < e->call.args.n; i++)
            if (mentions_index(e->call.args.items[i].value))
                return true;
        return false;
    default: return false;
    }
}

/* `repeat ... as "NAME{index}"`: a name that uses `index` or `first` names
 * each instance rather than the repeat. */
static bool names_each(const Expr *as)
{
    if (as->as.inner->kind != E_REPEAT)
        return false;
    for (int32_t i = 0; i < as->as.parts.n; i++)
        if (mentions_index(as->as.parts.items[i]))
            return true;
    return false;
}

/* ---- repeat ------------------------------------------------------------------- */

static int64_t repeat_count(Elab *E, const Expr *count)
{
    Value n = eval(E, count);
    if (n.kind == V_ERROR)
        return -1;
    if (n.kind != V_INT || n.i < 1) {
        fail(E, count->loc, "repeat count must be a positive int, got %s", fe_value_str(E, n));
        return -1;
    }
    return n.i;
}

/* The first index of `repeat N from K`: 0 without `from`; -1 after an error. */
static int64_t repeat_from(Elab *E, const Expr *from, int64_t n)
{
    if (!from)
        return 0;
    Value v = eval(E, from);
    if (v.kind == V_ERROR)
        return -1;
    if (v.kind != V_INT || v.i < 0)
        return fail(E, from->loc, "'from' must be an int >= 0, got %s", fe_value_str(E, v)), -1;
    if (v.i > INT32_MAX - (n > 0 ? n : 0))
        return fail(E, from->loc, "'from' %lld is too large", (long long)v.i), -1;
    return v.i;
}

/* Runs the instances of `repeat N [from K] call`: named NAME.K, NAME.K+1, ...
 * in a scope of their own when the repeat is named, each by its own computed
 * name when `each` (an `as` whose name uses `index`) is given, as stages
 * inside a sequence, and like separate unnamed calls (OP_K) otherwise. Each
 * instance's arguments and computed name see `first` and `index` (from K).
 * Fed by a sequence, every instance gets the current value first; otherwise
 * instance 0 takes its input as written and each later one the previous
 * result in place of its first argument. */
static Value run_repeat(Elab *E, const Expr *e, const Naming *nm, const Feed *feed,
                        const Expr *each)
{
    const Expr *call = e->repeat.call;
    int64_t n = repeat_count(E, e->repeat.count);
    int64_t base = repeat_from(E, e->repeat.from, n);
    Env env = {.parent = E->frame->env};
    E->frame->env = &env;
    fe_env_set(E, &env, "index", fe_int(0));
    fe_env_set(E, &env, "first", fe_bool(true));
    Callable fn;
    bool ok = resolve_instance(E, call, "a repeated call", &fn) && n > 0 && base >= 0;
    if (!ok)
        n = 0;
    if (ok && nm) {
        fe_push_scope(E, fe_instance_name(E, nm, "repeat", e->loc));
        E->scope->stage = (int32_t)base;
    }
    Value cur = feed ? feed->v : fe_error_value();
    for (int64_t i = 0; i < n && fe_spend(E, call->loc, 1); i++) {
        env.n = 0;
        fe_env_set(E, &env, "index", fe_int(base + i));
        fe_env_set(E, &env, "first", fe_bool(i == 0));
        Naming st = {0};
        if (each)
            as_naming(E, each, &st);
        else if (nm || feed)
            st = fe_stage_naming(E, call->loc);
        Feed f = {feed ? feed->mode : FEED_REPLACE, cur};
        cur = call_resolved(E, &fn, call, st.local ? &st : NULL, feed || i > 0 ? &f : NULL);
    }
    E->frame->env = env.parent;
    if (ok && nm)
        fe_pop_scope(E);
    return ok ? cur : fe_error_value();
}

static Value eval_repeat(Elab *E, const Expr *e, const Naming *nm, const Expr *each)
{
    const ArgList *args = &e->repeat.call->call.args;
    bool positional = false;
    for (int32_t i = 0; i < args->n; i++)
        positional |= args->items[i].name == NULL;
    if (!positional)
        return fail(E, e->repeat.call->loc,
                    "a repeated call needs its input as the first argument");
    return run_repeat(E, e, nm, NULL, each);
}

/* ---- sequences ---------------------------------------------------------------- */

static Value run_sequence(Elab *E, const Expr *e, const Naming *nm, Value cur)
{
    Naming own = {e->seq.name, e->seq.name_loc};
    if (nm && e->seq.name)
        return fail(E, nm->loc, "sequence '%s' already has a name", e->seq.name);
    if (e->seq.name && !(own.local = name_text(E, e->seq.name, &e->seq.name_parts, own.loc)))
        return fe_error_value();
    if (e->seq.name)
        nm = &own;
    if (nm)
        fe_push_scope(E, fe_instance_name(E, nm, "sequence", e->loc));
    exec_stmts(E, &e->seq.body, &cur);
    if (nm)
        fe_pop_scope(E);
    return cur;
}

static Value eval_sequence(Elab *E, const Expr *e, const Naming *nm)
{
    if (!e->seq.input)
        return fail(E, e->loc, "this sequence has no input; write 'sequence %s(x) { ... }'",
                    e->seq.name ? e->seq.name : "");
    Value in = eval(E, e->seq.input);
    return run_sequence(E, e, nm, in);
}

/* A stage written as a call or a bare name: the current value goes first,
 * and the stage takes the next index unless it is named. */
static Value stage_call(Elab *E, const Expr *e, const Naming *nm, Value cur)
{
    Callable fn;
    if (!resolve_instance(E, e, "a sequence stage", &fn))
        return fe_error_value();
    Naming st = nm ? *nm : fe_stage_naming(E, e->loc);
    Feed f = {FEED_PREPEND, cur};
    return call_resolved(E, &fn, e, &st, &f);
}

static Value stage(Elab *E, const Expr *e, const Naming *nm, Value cur)
{
    Feed f = {FEED_PREPEND, cur};
    switch (e->kind) {
    case E_CALL:
    case E_IDENT: return stage_call(E, e, nm, cur);
    case E_REPEAT: return run_repeat(E, e, nm, &f, NULL);
    case E_SEQUENCE:
        if (e->seq.input)
            return fail(E, e->seq.input->loc,
                        "a sequence inside a sequence takes the current value; drop its input");
        return run_sequence(E, e, nm, cur);
    case E_COND: {
        Value c = want_bool(E, e->cond.cond, "a condition");
        if (c.kind == V_ERROR)
            return c;
        return stage(E, c.b ? e->cond.then : e->cond.els, nm, cur);
    }
    case E_AS: {
        if (nm)
            return fail(E, e->as.name_loc, "this stage already has a name");
        if (names_each(e))
            return run_repeat(E, e->as.inner, NULL, &f, e);
        Naming own;
        if (!as_naming(E, e, &own))
            return fe_error_value();
        return stage(E, e->as.inner, &own, cur);
    }
    default:
        return fail(E, e->loc, "a sequence stage must be a layer or block call");
    }
}

/* ---- operators ------------------------------------------------------------------ */

/* A tensor and a number make one affine layer, x * scale + shift: x + k,
 * k + x, x - k, k - x, x * k, k * x, x / k (as x * (1/k)). */
static Value tensor_number(Elab *E, const Expr *e, const char *name, Value a, Value b)
{
    Operator op = e->bin.op;
    bool tensor_first = a.kind == V_TENSOR;
    Value t = tensor_first ? a : b, k = tensor_first ? b : a;
    double c = k.kind == V_INT ? (double)k.i : k.f;
    Attrs at;
    ir_attrs_default(OP_AFFINE, &at);
    double scale = 1.0, shift = 0.0;
    if (op == OPR_ADD || op == OPR_SUB)
        shift = op == OPR_SUB && tensor_first ? -c : c;
    if (op == OPR_SUB && !tensor_first)
        scale = -1.0;
    if (op == OPR_MUL)
        scale = c;
    if (op == OPR_DIV)
        scale = 1.0 / c;
    at.affine = (AffineAttrs){(float)scale, (float)shift};
    if (!isfinite(at.affine.scale) || !isfinite(at.affine.shift))
        return fail(E, e->loc, "'%s' with %g gives a factor or offset that is not a finite f32",
                    ast_operator_name(op), c);
    if (!fe_value_ok(E, t))
        return fe_error_value();
    return fe_tensor(fe_add_node(E, OP_AFFINE, &t.node, 1, &at, name, e->loc));
}

static Value tensor_operator(Elab *E, const Expr *e, const Naming *nm, Value a, Value b)
{
    static const struct { Operator op; Op ir; const char *name; } ops[] = {
        {OPR_ADD, OP_ADD, "add"}, {OPR_SUB, OP_SUB, "sub"},
        {OPR_MUL, OP_MUL, "mul"}, {OPR_DIV, OP_DIV, "div"},
    };
    Operator op = e->bin.op;
    bool number_a = a.kind == V_INT || a.kind == V_FLOAT;
    bool number_b = b.kind == V_INT || b.kind == V_FLOAT;
    bool both = a.kind == V_TENSOR && b.kind == V_TENSOR;
    bool mixed = (a.kind == V_TENSOR && number_b) || (number_a && op != OPR_DIV);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (ops[i].op != op || !(both || mixed))
            continue;
        const char *name = fe_instance_name(E, nm, ops[i].name, e->loc);
        if (!both)
            return tensor_number(E, e, name, a, b);
        return fe_tensor_binary(E, ops[i].ir, a, b, name, e->loc);
    }
    return fail(E, e->loc, "cannot apply '%s' to %s and %s", ast_operator_name(op),
                fe_kind_name(a.kind), fe_kind_name(b.kind));
}

static Value want_bool(Elab *E, const Expr *e, const char *what)
{
    Value v = eval(E, e);
    if (v.kind != V_BOOL && v.kind != V_ERROR)
        return fail(E, e->loc, "%s needs a bool, got %s", what, fe_value_str(E, v));
    return v;
}

static Value eval_logic(Elab *E, const Expr *e)
{
    const char *what = e->bin.op == OPR_AND ? "'and'" : "'or'";
    Value a = want_bool(E, e->bin.lhs, what);
    if (a.kind == V_ERROR || a.b == (e->bin.op == OPR_OR))
        return a;
    return want_bool(E, e->bin.rhs, what);
}

static Value eval_binary(Elab *E, const Expr *e, const Naming *nm)
{
    Operator op = e->bin.op;
    if (op == OPR_AND || op == OPR_OR)
        return eval_logic(E, e);
    Value a = eval(E, e->bin.lhs), b = eval(E, e->bin.rhs);
    if (a.kind == V_ERROR || b.kind == V_ERROR)
        return fe_error_value();
    if (a.kind == V_TENSOR || b.kind == V_TENSOR)
        return tensor_operator(E, e, nm, a, b);
    if (nm)
        return fail(E, nm->loc, "'as' names a layer or block, not a value");
    if (op >= OPR_EQ && op <= OPR_GE)
        return fe_compare(E, op, e->loc, a, b);
    return fe_arith(E, op, e->loc, a, b);
}

/* -x of a tensor is an affine layer (x * -1), named like `a - b` is. */
static Value negate_tensor(Elab *E, const Expr *e, const Naming *nm, Value v)
{
    const char *name = fe_instance_name(E, nm, "neg", e->loc);
    if (!fe_value_ok(E, v))
        return fe_error_value();
    Attrs at;
    ir_attrs_default(OP_AFFINE, &at);
    at.affine.scale = -1.0f;
    return fe_tensor(fe_add_node(E, OP_AFFINE, &v.node, 1, &at, name, e->loc));
}

static Value eval_unary(Elab *E, const Expr *e, const Naming *nm)
{
    if (e->bin.op == OPR_NOT) {
        Value v = want_bool(E, e->bin.lhs, "'not'");
        if (nm && v.kind != V_ERROR)
            return fail(E, nm->loc, "'as' names a layer or block, not a value");
        return v.kind == V_BOOL ? fe_bool(!v.b) : v;
    }
    Value v = eval(E, e->bin.lhs);
    if (v.kind == V_TENSOR)
        return negate_tensor(E, e, nm, v);
    if (nm && v.kind != V_ERROR)
        return fail(E, nm->loc, "'as' names a layer or block, not a value");
    if (v.kind == V_INT && v.i == INT64_MIN)
        return fail(E, e->loc, "integer overflow");
    if (v.kind == V_INT)
        return fe_int(-v.i);
    if (v.kind == V_FLOAT)
        return fe_float(-v.f);
    if (v.kind == V_ERROR)
        return v;
    return fail(E, e->loc, "cannot negate %s", fe_kind_name(v.kind));
}

/* ---- other expressions ------------------------------------------------------------ */

static Value eval_cond(Elab *E, const Expr *e, const Naming *nm)
{
    Value c = want_bool(E, e->cond.cond, "a condition");
    if (c.kind == V_ERROR)
        return c;
    return eval_named(E, c.b ? e->cond.then : e->cond.els, nm);
}

static Value eval_index(Elab *E, const Expr *e)
{
    Value base = eval(E, e->index.base), idx = eval(E, e->index.index);
    if (base.kind == V_ERROR || idx.kind == V_ERROR)
        return fe_error_value();
    if (base.kind == V_TENSOR)
        return fail(E, e->loc, "cannot index a tensor; use dim(x, i) or shape(x)[i]");
    if (base.kind != V_LIST)
        return fail(E, e->loc, "cannot index %s", fe_kind_name(base.kind));
    if (idx.kind != V_INT)
        return fail(E, e->index.index->loc, "a list index must be an int, got %s",
                    fe_value_str(E, idx));
    int64_t n = base.list->n, i = idx.i < 0 ? idx.i + n : idx.i;
    if (i < 0 || i >= n)
        return fail(E, e->index.index->loc, "index %lld is out of range for a list of %lld",
                    (long long)idx.i, (long long)n);
    return base.list->items[i];
}

static Value eval_list(Elab *E, const Expr *e)
{
    Value v = fe_list(E, e->items.n);
    ValueList *l = (ValueList *)v.list;
    for (int32_t i = 0; i < e->items.n; i++)
        l->items[i] = eval(E, e->items.items[i]);
    return fe_list_nest(E, l, e->loc) ? v : fe_error_value();
}

static Value eval_as(Elab *E, const Expr *e, const Naming *nm)
{
    if (nm)
        return fail(E, nm->loc, "this is already named '%s'", e->as.name);
    switch (e->as.inner->kind) {
    case E_CALL:
    case E_BINARY:
    case E_UNARY:
    case E_COND:
    case E_SEQUENCE:
    case E_REPEAT: {
        if (names_each(e))
            return eval_repeat(E, e->as.inner, NULL, e);
        Naming own;
        if (!as_naming(E, e, &own)) {
            eval(E, e->as.inner);
            return fe_error_value();
        }
        return eval_named(E, e->as.inner, &own);
    }
    default:
        eval(E, e->as.inner);
        return fail(E, e->as.name_loc, "'as' names a layer, block, sequence or repeat");
    }
}

static Value eval_kind(Elab *E, const Expr *e, const Naming *nm)
{
    switch (e->kind) {
    case E_INT: return fe_int(e->i);
    case E_FLOAT: return fe_float(e->f);
    case E_STRING: return (Value){.kind = V_STRING, .s = e->s};
    case E_BOOL: return fe_bool(e->b);
    case E_NONE: return (Value){.kind = V_NONE};
    case E_IDENT: return eval_ident(E, e);
    case E_LIST: return eval_list(E, e);
    case E_CALL: return eval_call(E, e, nm, NULL);
    case E_UNARY: return eval_unary(E, e, nm);
    case E_BINARY: return eval_binary(E, e, nm);
    case E_COND: return eval_cond(E, e, nm);
    case E_INDEX: return eval_index(E, e);
    case E_AS: return eval_as(E, e, nm);
    case E_SEQUENCE: return eval_sequence(E, e, nm);
    case E_REPEAT: return eval_repeat(E, e, nm, NULL);
    }
    ICE("bad expression kind %d", (int)e->kind);
}

/* Every expression is a step and a level of nesting (limits.c). */
static Value eval_named(Elab *E, const Expr *e, const Naming *nm)
{
    if (!fe_enter(E, e->loc, "expression"))
        return fe_error_value();
    Value v = eval_kind(E, e, nm);
    fe_leave(E);
    return v;
}

static Value eval(Elab *E, const Expr *e)
{
    return eval_named(E, e, NULL);
}

/* ---- statements ------------------------------------------------------------------- */

static void exec_return(Elab *E, const Stmt *s)
{
    Frame *f = E->frame;
    if (s->ret.n == 1) {
        f->ret = eval(E, s->ret.items[0]);
    } else {
        f->ret = fe_list(E, s->ret.n);
        for (int32_t i = 0; i < s->ret.n; i++)
            ((ValueList *)f->ret.list)->items[i] = eval(E, s->ret.items[i]);
        if (!fe_list_nest(E, (ValueList *)f->ret.list, s->loc))
            f->ret = fe_error_value();
    }
    f->ret_stmt = s;
    f->returned = true;
}

static void exec_if(Elab *E, const Stmt *s, Value *cur)
{
    Value c = want_bool(E, s->if_.cond, "a condition");
    if (c.kind == V_ERROR) {
        E->frame->poisoned = true;
        fe_check_skipped(E, &s->if_.then, cur != NULL);
        fe_check_skipped(E, &s->if_.els, cur != NULL);
    } else {
        exec_stmts(E, c.b ? &s->if_.then : &s->if_.els, cur);
    }
}

static void exec_for(Elab *E, const Stmt *s, Value *cur)
{
    Value it = eval(E, s->for_.iter);
    if (it.kind != V_LIST) {
        if (it.kind != V_ERROR)
            fail(E, s->for_.iter->loc, "'for' needs a list, got %s", fe_value_str(E, it));
        E->frame->poisoned = true;
        fe_check_skipped(E, &s->for_.body, cur != NULL);
        return;
    }
    for (int32_t i = 0; i < it.list->n && !E->frame->returned && fe_spend(E, s->loc, 1); i++) {
        fe_env_set(E, E->frame->env, s->for_.var, it.list->items[i]);
        exec_stmts(E, &s->for_.body, cur);
    }
}

/* A statement made of an expression: a stage inside a sequence; elsewhere
 * only a call means anything. */
static void exec_expr(Elab *E, const Expr *e, Value *cur)
{
    if (cur) {
        *cur = stage(E, e, NULL, *cur);
        return;
    }
    if (e->kind == E_IDENT) {
        Callable c;
        if (!fe_env_find(E->frame->env, e->s) && global_callable(E, e->s, &c)) {
            fail(E, e->loc, "'%s' alone does nothing here; outside a sequence, call it: %s(x)",
                 e->s, e->s);
            return;
        }
    }
    eval(E, e);
}

static void exec_stmt(Elab *E, const Stmt *s, Value *cur)
{
    switch (s->kind) {
    case S_ASSIGN: fe_env_set(E, E->frame->env, s->assign.name, eval(E, s->assign.value)); break;
    case S_IF: exec_if(E, s, cur); break;
    case S_FOR: exec_for(E, s, cur); break;
    case S_RETURN:
        if (cur)
            fail(E, s->loc, "'return' cannot appear inside a sequence");
        else
            exec_return(E, s);
        break;
    case S_EXPR: exec_expr(E, s->expr, cur); break;
    }
}

static void exec_stmts(Elab *E, const StmtList *l, Value *cur)
{
    for (int32_t i = 0; i < l->n && !E->frame->returned; i++) {
        if (!fe_enter(E, l->items[i]->loc, "statement"))
            return;
        exec_stmt(E, l->items[i], cur);
        fe_leave(E);
    }
}

bool fe_elab_stmt(Elab *E, const Stmt *s)
{
    if (E->root.returned || E->stopped)
        return false;
    exec_stmt(E, s, NULL);
    return !E->root.returned;
}

Value fe_elab_value(Elab *E, const Expr *e)
{
    return eval(E, e);
}
