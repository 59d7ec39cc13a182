/* scope.c: where elaboration is. Variables live in an Env per block
 * invocation; layers and instances get full paths ("layer1.0.conv1") from the
 * stack of Scopes, each name claimed once in the whole graph; errors inside
 * blocks are followed by the chain of calls that led there. */
#include "elab.h"

#include <stdarg.h>
#include <string.h>

/* ---- errors in context ------------------------------------------------------------ */

#define MAX_CALL_NOTES 4

void fe_call_notes(Elab *E)
{
    int n = 0;
    const Frame *outermost = NULL;
    for (const Frame *f = E->frame; f && f->block; f = f->caller) {
        if (n++ < MAX_CALL_NOTES)
            ir_note(E->d, f->call_loc, "in block '%s' (instance '%s') called from here",
                    f->block->name, f->instance);
        outermost = f;
    }
    if (n > MAX_CALL_NOTES)
        ir_note(E->d, outermost->call_loc, "... and %d more calls, the outermost here",
                n - MAX_CALL_NOTES);
}

void fe_error(Elab *E, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ir_vdiag(E->d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
    fe_call_notes(E);
}

/* ---- variables ------------------------------------------------------------------ */

Var *fe_env_find(Env *env, const char *name)
{
    for (; env; env = env->parent)
        for (int32_t i = 0; i < env->n; i++)
            if (strcmp(env->vars[i].name, name) == 0)
                return &env->vars[i];
    return NULL;
}

void fe_env_set(Elab *E, Env *env, const char *name, Value v)
{
    for (int32_t i = 0; i < env->n; i++) {
        if (strcmp(env->vars[i].name, name) == 0) {
            env->vars[i].v = v;
            return;
        }
    }
    env->vars = ast_grow(E->arena, env->vars, env->n, &env->cap, sizeof *env->vars);
    env->vars[env->n++] = (Var){name, v};
}

/* ---- layers and instances ---------------------------------------------------------- */

static const char *join(Elab *E, const char *path, const char *local)
{
    return *path ? ir_strfmt(E->arena, "%s.%s", path, local) : local;
}

static bool taken(const Elab *E, const char *full)
{
    return fe_map_get(&E->claimed, full) != NULL;
}

static void claim(Elab *E, const char *full, SrcLoc loc)
{
    SrcLoc *l = ir_alloc(E->arena, sizeof *l);
    *l = loc;
    fe_map_put(&E->claimed, E->arena, full, l);
}

/* OP_K with the next K of that op in the current scope that is still free. */
static const char *auto_local(Elab *E, const char *op)
{
    OpCount *c = E->scope->counts;
    while (c && strcmp(c->op, op) != 0)
        c = c->link;
    if (!c) {
        c = ir_alloc(E->arena, sizeof *c);
        c->op = op;
        c->link = E->scope->counts;
        E->scope->counts = c;
    }
    for (;;) {
        const char *local = ir_strfmt(E->arena, "%s_%d", op, (int)c->next++);
        if (!taken(E, join(E, E->scope->path, local)))
            return local;
    }
}

/* A duplicate is reported and replaced by a name no source can spell, so it
 * causes nothing else. */
const char *fe_instance_name(Elab *E, const Naming *nm, const char *op, SrcLoc loc)
{
    const char *local = nm ? nm->local : auto_local(E, op);
    SrcLoc at = nm ? nm->loc : loc;
    const char *full = join(E, E->scope->path, local);
    const SrcLoc *first = fe_map_get(&E->claimed, full);
    if (first) {
        ir_error(E->d, at, "name '%s' is already used in this scope", local);
        ir_note(E->d, *first, "'%s' was first used here", local);
        fe_call_notes(E);
        for (int k = 2; taken(E, full); k++)
            full = join(E, E->scope->path, ir_strfmt(E->arena, "%s'%d", local, k));
    }
    claim(E, full, at);
    return full;
}

Naming fe_stage_naming(Elab *E, SrcLoc loc)
{
    return (Naming){ir_strfmt(E->arena, "%d", (int)E->scope->stage++), loc};
}

void fe_push_scope(Elab *E, const char *full)
{
    Scope *s = ir_alloc(E->arena, sizeof *s);
    s->path = full;
    s->up = E->scope;
    E->scope = s;
}

void fe_pop_scope(Elab *E)
{
    E->scope = E->scope->up;
}

/* Graph nodes outlive the Diag that owns the file names of the syntax tree,
 * so their locations use copies in the graph's arena, one per file. */
SrcLoc fe_graph_loc(Elab *E, SrcLoc loc)
{
    if (!loc.file)
        return loc;
    FileLoc *f = E->files;
    while (f && f->from != loc.file)
        f = f->link;
    if (!f) {
        f = ir_alloc(E->arena, sizeof *f);
        f->from = loc.file;
        f->to = ir_strdup(E->g->arena, loc.file);
        f->link = E->files;
        E->files = f;
    }
    loc.file = f->to;
    return loc;
}
