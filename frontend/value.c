/* value.c: compile-time values of the language, the operators on numbers,
 * strings and lists, and how messages show values: strings quoted, lists
 * shortened, tensors by their type ("a tensor f32[1,64,56,56]"), so a wrong
 * argument reads as it was written. */
#include "elab.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

Value fe_list(Elab *E, int32_t n)
{
    ValueList *l = ir_alloc(E->arena, sizeof *l);
    l->n = n;
    l->depth = 1;
    l->items = n ? ir_alloc(E->arena, (size_t)n * sizeof *l->items) : NULL;
    for (int32_t i = 0; i < n; i++)
        l->items[i].kind = V_NONE;
    return (Value){.kind = V_LIST, .list = l};
}

const char *fe_kind_name(ValueKind k)
{
    switch (k) {
    case V_ERROR: return "an error";
    case V_NONE: return "none";
    case V_BOOL: return "a bool";
    case V_INT: return "an int";
    case V_FLOAT: return "a float";
    case V_STRING: return "a string";
    case V_LIST: return "a list";
    case V_TENSOR: return "a tensor";
    case V_CALLABLE: return "a layer or block";
    }
    return "?";
}

const TensorType *fe_tensor_type(const Elab *E, Value v)
{
    return v.kind == V_TENSOR ? &E->g->nodes[v.node].type : NULL;
}

bool fe_value_ok(const Elab *E, Value v)
{
    if (v.kind == V_ERROR)
        return false;
    if (v.kind == V_TENSOR)
        return E->g->nodes[v.node].type.dtype != DT_INVALID;
    if (v.kind == V_LIST)
        for (int32_t i = 0; i < v.list->n; i++)
            if (!fe_value_ok(E, v.list->items[i]))
                return false;
    return true;
}

/* Appends to buf[*len..n), never overflowing; "..." marks a cut. */
static void put(char *buf, size_t n, size_t *len, const char *s)
{
    size_t k = strlen(s);
    if (*len + k + 4 >= n) {
        if (*len + 4 < n)
            *len += (size_t)snprintf(buf + *len, n - *len, "...");
        return;
    }
    memcpy(buf + *len, s, k + 1);
    *len += k;
}

static void value_text(const Elab *E, Value v, char *buf, size_t n, size_t *len)
{
    char tmp[160] = "";
    switch (v.kind) {
    case V_ERROR: put(buf, n, len, "<error>"); return;
    case V_NONE: put(buf, n, len, "none"); return;
    case V_BOOL: put(buf, n, len, v.b ? "true" : "false"); return;
    case V_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.i); break;
    case V_FLOAT:
        /* A whole float keeps its point, as Python writes it, so that a float where an
         * int is expected reads as one: "out expects an int, got 16.0", not "got 16". */
        snprintf(tmp, sizeof tmp, "%g", v.f);
        if (isfinite(v.f) && !strpbrk(tmp, ".e"))
            strcat(tmp, ".0");
        break;
    case V_STRING: snprintf(tmp, sizeof tmp, "\"%.100s\"", v.s); break;
    case V_TENSOR: {
        char t[128];
        snprintf(tmp, sizeof tmp, "a tensor %s", ir_type_str(fe_tensor_type(E, v), t, sizeof t));
        break;
    }
    case V_CALLABLE:
        snprintf(tmp, sizeof tmp, "%s '%s'",
                 v.fn->block ? "block" : v.fn->builtin->layer ? "layer" : "function", v.fn->name);
        break;
    case V_LIST:
        put(buf, n, len, "[");
        for (int32_t i = 0; i < v.list->n && *len + 8 < n; i++) {
            if (i)
                put(buf, n, len, ", ");
            value_text(E, v.list->items[i], buf, n, len);
        }
        put(buf, n, len, "]");
        return;
    }
    put(buf, n, len, tmp);
}

const char *fe_value_str(const Elab *E, Value v)
{
    char buf[200];
    size_t len = 0;
    buf[0] = '\0';
    value_text(E, v, buf, sizeof buf, &len);
    return ir_strdup(E->arena, buf);
}

bool fe_values_equal(const Elab *E, Value a, Value b)
{
    if ((a.kind == V_INT || a.kind == V_FLOAT) && (b.kind == V_INT || b.kind == V_FLOAT)) {
        if (a.kind == V_INT && b.kind == V_INT)
            return a.i == b.i;
        return (a.kind == V_INT ? (double)a.i : a.f) == (b.kind == V_INT ? (double)b.i : b.f);
    }
    if (a.kind != b.kind)
        return false;
    switch (a.kind) {
    case V_NONE: return true;
    case V_BOOL: return a.b == b.b;
    case V_STRING: return strcmp(a.s, b.s) == 0;
    case V_TENSOR: return a.node == b.node;
    case V_CALLABLE: return a.fn->block == b.fn->block && a.fn->builtin == b.fn->builtin;
    case V_LIST:
        if (a.list->n != b.list->n)
            return false;
        for (int32_t i = 0; i < a.list->n; i++)
            if (!fe_values_equal(E, a.list->items[i], b.list->items[i]))
                return false;
        return true;
    default: return false;
    }
}

/* ---- operators ------------------------------------------------------------------ */

static Value value_error(Elab *E, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static Value value_error(Elab *E, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ir_vdiag(E->d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
    fe_call_notes(E);
    return fe_error_value();
}

static bool is_number(Value v)
{
    return v.kind == V_INT || v.kind == V_FLOAT;
}

static double as_double(Value v)
{
    return v.kind == V_INT ? (double)v.i : v.f;
}

static Value int_arith(Elab *E, Operator op, SrcLoc loc, int64_t a, int64_t b)
{
    int64_t r = 0;
    bool overflow = false;
    switch (op) {
    case OPR_ADD: overflow = __builtin_add_overflow(a, b, &r); break;
    case OPR_SUB: overflow = __builtin_sub_overflow(a, b, &r); break;
    case OPR_MUL: overflow = __builtin_mul_overflow(a, b, &r); break;
    case OPR_FLOORDIV:
    case OPR_MOD:
        if (b == 0)
            return value_error(E, loc, "division by zero");
        if (a == INT64_MIN && b == -1)
            return value_error(E, loc, "integer overflow");
        r = op == OPR_FLOORDIV ? a / b : a % b;
        if (op == OPR_FLOORDIV && (a % b != 0) && ((a < 0) != (b < 0)))
            r--;
        if (op == OPR_MOD && r != 0 && ((r < 0) != (b < 0)))
            r += b;
        break;
    default: ICE("not an integer operator");
    }
    if (overflow)
        return value_error(E, loc, "integer overflow");
    return fe_int(r);
}

static Value float_arith(Elab *E, Operator op, SrcLoc loc, double a, double b)
{
    switch (op) {
    case OPR_ADD: return fe_float(a + b);
    case OPR_SUB: return fe_float(a - b);
    case OPR_MUL: return fe_float(a * b);
    case OPR_DIV:
    case OPR_FLOORDIV:
    case OPR_MOD:
        if (b == 0)
            return value_error(E, loc, "division by zero");
        if (op == OPR_DIV)
            return fe_float(a / b);
        if (op == OPR_FLOORDIV)
            return fe_float(floor(a / b));
        return fe_float(a - floor(a / b) * b);
    default: ICE("not an arithmetic operator");
    }
}

/* Joining costs a step per item or byte, which bounds the memory that
 * doubling in a loop can take. */
static Value concat_values(Elab *E, SrcLoc loc, Value a, Value b)
{
    int64_t n = a.kind == V_STRING ? (int64_t)(strlen(a.s) + strlen(b.s))
                                   : (int64_t)a.list->n + b.list->n;
    if (n > INT32_MAX)
        return value_error(E, loc, "%s of %lld %s is too long",
                           a.kind == V_STRING ? "a string" : "a list", (long long)n,
                           a.kind == V_STRING ? "bytes" : "items");
    if (!fe_spend(E, loc, n))
        return fe_error_value();
    if (a.kind == V_STRING)
        return (Value){.kind = V_STRING, .s = ir_strfmt(E->arena, "%s%s", a.s, b.s)};
    Value r = fe_list(E, (int32_t)n);
    ValueList *l = (ValueList *)r.list;
    l->depth = a.list->depth > b.list->depth ? a.list->depth : b.list->depth;
    for (int32_t i = 0; i < a.list->n; i++)
        l->items[i] = a.list->items[i];
    for (int32_t i = 0; i < b.list->n; i++)
        l->items[a.list->n + i] = b.list->items[i];
    return r;
}

Value fe_arith(Elab *E, Operator op, SrcLoc loc, Value a, Value b)
{
    if (op == OPR_ADD && a.kind == b.kind && (a.kind == V_STRING || a.kind == V_LIST))
        return concat_values(E, loc, a, b);
    if (!is_number(a) || !is_number(b))
        return value_error(E, loc, "cannot apply '%s' to %s and %s", ast_operator_name(op),
                    fe_kind_name(a.kind), fe_kind_name(b.kind));
    if (a.kind == V_INT && b.kind == V_INT && op != OPR_DIV)
        return int_arith(E, op, loc, a.i, b.i);
    return float_arith(E, op, loc, as_double(a), as_double(b));
}

Value fe_compare(Elab *E, Operator op, SrcLoc loc, Value a, Value b)
{
    if (op == OPR_EQ || op == OPR_NE)
        return fe_bool(fe_values_equal(E, a, b) == (op == OPR_EQ));
    int c;
    if (is_number(a) && is_number(b))
        c = as_double(a) < as_double(b) ? -1 : as_double(a) > as_double(b);
    else if (a.kind == V_STRING && b.kind == V_STRING)
        c = strcmp(a.s, b.s);
    else
        return value_error(E, loc, "cannot compare %s and %s with '%s'", fe_kind_name(a.kind),
                    fe_kind_name(b.kind), ast_operator_name(op));
    switch (op) {
    case OPR_LT: return fe_bool(c < 0);
    case OPR_LE: return fe_bool(c <= 0);
    case OPR_GT: return fe_bool(c > 0);
    default: return fe_bool(c >= 0);
    }
}

