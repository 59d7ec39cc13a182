/* types.c: tensor types (dtype, logical dims, storage layout) and their
 * printed forms, "f32[1,3,224,224]" and "64×5×5". */
#include "ir.h"

#include <string.h>

const char *ir_dtype_name(DType t)
{
    switch (t) {
    case DT_F32: return "f32";
    case DT_F16: return "f16";
    case DT_BF16: return "bf16";
    case DT_I64: return "i64";
    case DT_INVALID: return "invalid";
    }
    ICE("bad dtype %d", (int)t);
}

size_t ir_dtype_size(DType t)
{
    switch (t) {
    case DT_F32: return 4;
    case DT_F16: return 2;
    case DT_BF16: return 2;
    case DT_I64: return 8;
    case DT_INVALID: return 0;
    }
    ICE("bad dtype %d", (int)t);
}

int64_t ir_numel_checked(int32_t rank, const int64_t *dims)
{
    int64_t n = 1;
    for (int32_t i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return -1;
        if (dims[i] == 0)
            n = 0;
    }
    for (int32_t i = 0; i < rank && n > 0; i++)
        if (__builtin_mul_overflow(n, dims[i], &n) || n > IR_MAX_NUMEL)
            return -1;
    return n;
}

double ir_numel_approx(int32_t rank, const int64_t *dims)
{
    double n = 1;
    for (int32_t i = 0; i < rank; i++)
        n *= (double)dims[i];
    return n;
}

int64_t ir_mul_sat(int64_t a, int64_t b)
{
    int64_t p;
    if (a < 0 || b < 0)
        ICE("ir_mul_sat(%lld, %lld)", (long long)a, (long long)b);
    return __builtin_mul_overflow(a, b, &p) ? INT64_MAX : p;
}

int64_t ir_add_sat(int64_t a, int64_t b)
{
    int64_t s;
    if (a < 0 || b < 0)
        ICE("ir_add_sat(%lld, %lld)", (long long)a, (long long)b);
    return __builtin_add_overflow(a, b, &s) ? INT64_MAX : s;
}

int64_t ir_numel(const TensorType *t)
{
    if (t->rank < 0 || t->rank > IR_MAX_RANK)
        ICE("rank %d out of range", (int)t->rank);
    int64_t n = ir_numel_checked(t->rank, t->dims);
    if (n < 0) {
        char buf[160];
        ICE("tensor %s escaped the size check of shape inference",
            ir_type_str(t, buf, sizeof buf));
    }
    return n;
}

bool ir_dims_eq(const TensorType *a, const TensorType *b)
{
    if (a->rank != b->rank)
        return false;
    for (int32_t i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

bool ir_is_per_channel(const TensorType *s, const TensorType *y)
{
    if (y->rank != 4 || s->rank > 4 || y->dims[1] <= 1)
        return false;
    int64_t d[4]; /* s's dims right-aligned to rank 4 */
    for (int32_t i = 0; i < 4; i++)
        d[i] = i - (4 - s->rank) >= 0 ? s->dims[i - (4 - s->rank)] : 1;
    return (d[0] == 1 || d[0] == y->dims[0]) && d[1] == y->dims[1] && d[2] == 1 && d[3] == 1;
}

bool ir_type_eq(const TensorType *a, const TensorType *b)
{
    return a->dtype == b->dtype && a->layout == b->layout && a->block == b->block &&
           ir_dims_eq(a, b);
}

TensorType ir_type_f32(int32_t rank, const int64_t *dims)
{
    if (rank < 0 || rank > IR_MAX_RANK)
        ICE("rank %d out of range", (int)rank);
    TensorType t;
    memset(&t, 0, sizeof t);
    t.dtype = DT_F32;
    t.rank = rank;
    for (int32_t i = 0; i < rank; i++)
        t.dims[i] = dims[i];
    t.layout = LAYOUT_PLAIN;
    return t;
}

/* Appends with snprintf semantics: `*pos` may run past `n`, nothing is
 * written past the buffer, and the result stays terminated. */
static void append(char *buf, size_t n, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t n, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(*pos < n ? buf + *pos : NULL, *pos < n ? n - *pos : 0, fmt, ap);
    va_end(ap);
    if (k > 0)
        *pos += (size_t)k;
}

char *ir_type_str(const TensorType *t, char *buf, size_t n)
{
    size_t pos = 0;
    if (n > 0)
        buf[0] = '\0';
    append(buf, n, &pos, "%s[", ir_dtype_name(t->dtype));
    for (int32_t i = 0; i < t->rank && i < IR_MAX_RANK; i++)
        append(buf, n, &pos, "%s%lld", i ? "," : "", (long long)t->dims[i]);
    append(buf, n, &pos, "]");
    if (t->layout == LAYOUT_NCHWC)
        append(buf, n, &pos, "@nchw%dc", (int)t->block);
    else if (t->layout == LAYOUT_NHWC)
        append(buf, n, &pos, "@nhwc");
    return buf;
}

char *ir_dims_str(const TensorType *t, int32_t from, char *buf, size_t n)
{
    size_t pos = 0;
    if (n > 0)
        buf[0] = '\0';
    int32_t start = from < 0 ? 0 : from;
    for (int32_t i = start; i < t->rank && i < IR_MAX_RANK; i++)
        append(buf, n, &pos, "%s%lld", i > start ? "\xc3\x97" : "", (long long)t->dims[i]);
    return buf;
}
