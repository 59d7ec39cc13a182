/* limits.c: the bounds on what a source file can make elaboration do
 * (FeLimits): nesting depth, work, graph nodes and parameter bytes. Going
 * over one is an error at the construct that did, after which elaboration
 * winds down without further messages, so hostile input ends in one located
 * error instead of a crash, a hang or runaway memory. */
#include "elab.h"

#include <stdarg.h>

FeLimits fe_limits(const FeLimits *l)
{
    FeLimits r = l ? *l : (FeLimits){0};
    if (r.max_depth <= 0)
        r.max_depth = FE_DEFAULT_MAX_DEPTH;
    if (r.max_depth > FE_MAX_MAX_DEPTH)
        r.max_depth = FE_MAX_MAX_DEPTH;
    if (r.max_steps <= 0)
        r.max_steps = FE_DEFAULT_MAX_STEPS;
    if (r.max_nodes <= 0)
        r.max_nodes = FE_DEFAULT_MAX_NODES;
    if (r.max_nodes > INT32_MAX / 2)
        r.max_nodes = INT32_MAX / 2;
    if (r.max_weights <= 0)
        r.max_weights = FE_DEFAULT_MAX_WEIGHTS;
    if (r.max_weights > INT64_MAX / 2)
        r.max_weights = INT64_MAX / 2;
    if (r.max_source <= 0)
        r.max_source = FE_DEFAULT_MAX_SOURCE;
    if (r.max_source > FE_MAX_MAX_SOURCE)
        r.max_source = FE_MAX_MAX_SOURCE;
    return r;
}

static void limit_error(Elab *E, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void limit_error(Elab *E, SrcLoc loc, const char *fmt, ...)
{
    if (E->stopped)
        return;
    va_list ap;
    va_start(ap, fmt);
    ir_vdiag(E->d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
    fe_call_notes(E);
    E->stopped = true;
}

bool fe_enter(Elab *E, SrcLoc loc, const char *what)
{
    if (E->stopped)
        return false;
    if (++E->steps > E->lim.max_steps) {
        limit_error(E, loc, "elaboration takes more than %lld steps (raise the limit with "
                    "--max-steps=N)", (long long)E->lim.max_steps);
        return false;
    }
    if (E->depth >= E->lim.max_depth) {
        limit_error(E, loc, "%s nested too deeply (more than %lld levels of expressions, "
                    "statements and block calls; raise the limit with --max-depth=N)", what,
                    (long long)E->lim.max_depth);
        return false;
    }
    E->depth++;
    return true;
}

void fe_leave(Elab *E)
{
    E->depth--;
}

bool fe_spend(Elab *E, SrcLoc loc, int64_t steps)
{
    if (E->stopped)
        return false;
    if (steps > E->lim.max_steps - E->steps) {
        limit_error(E, loc, "elaboration takes more than %lld steps (raise the limit with "
                    "--max-steps=N)", (long long)E->lim.max_steps);
        return false;
    }
    E->steps += steps;
    return true;
}

bool fe_room_for_node(Elab *E, SrcLoc loc)
{
    if (E->g->nnodes < E->lim.max_nodes)
        return true;
    limit_error(E, loc, "the graph has more than %lld nodes (raise the limit with "
                "--max-nodes=N)", (long long)E->lim.max_nodes);
    return false;
}

bool fe_list_nest(Elab *E, ValueList *l, SrcLoc loc)
{
    int32_t d = 0;
    for (int32_t i = 0; i < l->n; i++)
        if (l->items[i].kind == V_LIST && l->items[i].list->depth > d)
            d = l->items[i].list->depth;
    l->depth = d + 1;
    if (l->depth <= E->lim.max_depth)
        return true;
    limit_error(E, loc, "list nested too deeply (more than %lld levels; raise the limit with "
                "--max-depth=N)", (long long)E->lim.max_depth);
    return false;
}

/* "512.0 MiB", "100.6 GiB" */
static const char *bytes_str(Elab *E, int64_t n)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 6)
        v /= 1024, u++;
    return u ? ir_strfmt(E->arena, "%.1f %s", v, units[u])
             : ir_strfmt(E->arena, "%lld bytes", (long long)n);
}

bool fe_charge_param(Elab *E, const char *name, const TensorType *t, SrcLoc loc)
{
    int64_t n = ir_numel(t) * (int64_t)sizeof(float), max = E->lim.max_weights;
    if (n <= max - E->weight_bytes) {
        E->weight_bytes += n;
        return true;
    }
    const char *limit = bytes_str(E, max);
    if (n > max)
        limit_error(E, loc, "parameter '%s' needs %s, over the %s limit on parameters (raise "
                    "it with --max-weights=BYTES)", name, bytes_str(E, n), limit);
    else
        limit_error(E, loc, "parameter '%s' (%s) brings the parameters to %s, over the %s "
                    "limit (raise it with --max-weights=BYTES)", name, bytes_str(E, n),
                    bytes_str(E, E->weight_bytes + n), limit);
    return false;
}
