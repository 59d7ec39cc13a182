/* funcs.c: the built-in functions on compile-time values: the shape of a
 * tensor (channels, dim, height, width, shape) and a few helpers on numbers
 * and lists (len, range, min, max, and int, round, floor, ceil). They build nothing in the graph. */
#include "elab.h"

#include <math.h>
#include <string.h>

static Value fail_arg(Elab *E, const Call *c, int i, const char *expected)
{
    if (c->args[i].kind != V_ERROR)
        fe_error(E, c->locs[i], "%s expects %s, got %s", c->b->name, expected,
                 fe_value_str(E, c->args[i]));
    return fe_error_value();
}

/* The type of tensor argument i with at least `rank` dims, or NULL. */
static const TensorType *tensor_arg(Elab *E, const Call *c, int i, int32_t rank)
{
    Value v = c->args[i];
    if (v.kind != V_TENSOR) {
        fail_arg(E, c, i, "a tensor");
        return NULL;
    }
    if (!fe_value_ok(E, v))
        return NULL;
    const TensorType *t = fe_tensor_type(E, v);
    if (t->rank < rank) {
        char buf[128];
        fe_error(E, c->locs[i], "%s needs a tensor with at least %d dims, got %s",
                 c->b->name, (int)rank, ir_type_str(t, buf, sizeof buf));
        return NULL;
    }
    return t;
}

static Value channels(Elab *E, const Call *c)
{
    const TensorType *t = tensor_arg(E, c, 0, 2);
    return t ? fe_int(t->dims[1]) : fe_error_value();
}

static Value height(Elab *E, const Call *c)
{
    const TensorType *t = tensor_arg(E, c, 0, 4);
    return t ? fe_int(t->dims[2]) : fe_error_value();
}

static Value width(Elab *E, const Call *c)
{
    const TensorType *t = tensor_arg(E, c, 0, 4);
    return t ? fe_int(t->dims[3]) : fe_error_value();
}

static Value dim(Elab *E, const Call *c)
{
    const TensorType *t = tensor_arg(E, c, 0, 0);
    if (c->args[1].kind != V_INT)
        return fail_arg(E, c, 1, "an int");
    if (!t)
        return fe_error_value();
    int64_t i = c->args[1].i, k = i < 0 ? i + t->rank : i;
    if (k < 0 || k >= t->rank) {
        char buf[128];
        fe_error(E, c->locs[1], "dim %lld is out of range for %s", (long long)i,
                 ir_type_str(t, buf, sizeof buf));
        return fe_error_value();
    }
    return fe_int(t->dims[k]);
}

static Value shape(Elab *E, const Call *c)
{
    const TensorType *t = tensor_arg(E, c, 0, 0);
    if (!t)
        return fe_error_value();
    Value v = fe_list(E, t->rank);
    for (int32_t i = 0; i < t->rank; i++)
        ((ValueList *)v.list)->items[i] = fe_int(t->dims[i]);
    return v;
}

static Value len(Elab *E, const Call *c)
{
    Value v = c->args[0];
    if (v.kind == V_LIST)
        return fe_int(v.list->n);
    if (v.kind == V_STRING)
        return fe_int((int64_t)strlen(v.s));
    return fail_arg(E, c, 0, "a list or a string");
}

#define RANGE_MAX 1000000

/* range(n) is 0 .. n-1; range(a, b) is a .. b-1. */
static Value range(Elab *E, const Call *c)
{
    if (c->args[0].kind != V_INT)
        return fail_arg(E, c, 0, "an int");
    if (c->given[1] && c->args[1].kind != V_INT)
        return fail_arg(E, c, 1, "an int");
    int64_t lo = c->given[1] ? c->args[0].i : 0;
    int64_t hi = c->given[1] ? c->args[1].i : c->args[0].i;
    int64_t n = 0;
    if (hi > lo && (__builtin_sub_overflow(hi, lo, &n) || n > RANGE_MAX)) {
        fe_error(E, c->loc, "range from %lld to %lld is too long (at most %d numbers)",
                 (long long)lo, (long long)hi, RANGE_MAX);
        return fe_error_value();
    }
    if (!fe_spend(E, c->loc, n))
        return fe_error_value();
    Value v = fe_list(E, (int32_t)n);
    for (int64_t i = 0; i < n; i++)
        ((ValueList *)v.list)->items[i] = fe_int(lo + i);
    return v;
}

/* min and max take numbers, or one list of numbers. */
static Value extreme(Elab *E, const Call *c)
{
    bool is_max = strcmp(c->b->name, "max") == 0;
    const Value *items = c->rest;
    int32_t n = c->nrest;
    if (n == 1 && items[0].kind == V_LIST) {
        n = items[0].list->n;
        items = items[0].list->items;
    }
    if (n == 0) {
        fe_error(E, c->loc, "%s needs at least one number", c->b->name);
        return fe_error_value();
    }
    Value best = items[0];
    for (int32_t i = 0; i < n; i++) {
        Value v = items[i];
        if (v.kind == V_ERROR)
            return v;
        if (v.kind != V_INT && v.kind != V_FLOAT) {
            fe_error(E, c->rest_locs[c->nrest == n ? i : 0], "%s expects numbers, got %s",
                     c->b->name, fe_value_str(E, v));
            return fe_error_value();
        }
        double a = v.kind == V_INT ? (double)v.i : v.f;
        double b = best.kind == V_INT ? (double)best.i : best.f;
        if (is_max ? a > b : a < b)
            best = v;
    }
    return best;
}

/* int, round, floor, ceil: a number to an int, as Python's int() (toward
 * zero), round() (halves to even), math.floor and math.ceil. */
static Value to_int(Elab *E, const Call *c)
{
    Value v = c->args[0];
    if (v.kind == V_INT)
        return v;
    if (v.kind != V_FLOAT)
        return fail_arg(E, c, 0, "a number");
    const char *f = c->b->name;
    double r = f[0] == 'i' ? trunc(v.f) : f[0] == 'r' ? nearbyint(v.f)
             : f[0] == 'f' ? floor(v.f) : ceil(v.f);
    if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0)) {
        fe_error(E, c->locs[0], "%s(%g) is not a 64-bit integer", f, v.f);
        return fe_error_value();
    }
    return fe_int((int64_t)r);
}

#define FUNC(name, req, fn, ...) {name, {__VA_ARGS__, NULL}, req, false, false, fn}

static const Builtin funcs[] = {
    FUNC("channels", 1, channels, "x"),
    FUNC("dim", 2, dim, "x", "i"),
    FUNC("height", 1, height, "x"),
    FUNC("width", 1, width, "x"),
    FUNC("shape", 1, shape, "x"),
    FUNC("len", 1, len, "list"),
    FUNC("range", 1, range, "start", "stop"),
    FUNC("int", 1, to_int, "x"),
    FUNC("round", 1, to_int, "x"),
    FUNC("floor", 1, to_int, "x"),
    FUNC("ceil", 1, to_int, "x"),
    {"min", {NULL}, 0, true, false, extreme},
    {"max", {NULL}, 0, true, false, extreme},
};

const Builtin *fe_find_func(const char *name)
{
    for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
        if (strcmp(funcs[i].name, name) == 0)
            return &funcs[i];
    return NULL;
}

void fe_suggest_funcs(Suggest *s)
{
    for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
        fe_suggest_add(s, funcs[i].name);
}
