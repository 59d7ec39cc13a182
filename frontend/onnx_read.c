/* onnx_read.c: an ONNX file as an OnnxModel (onnx.h). The bytes are first walked
 * over the schema of the messages cnnc reads, so that a damaged file is reported
 * with the field and offset where it goes wrong; protobuf-c then decodes them, and
 * every tensor (raw, typed or external data) is converted to f32 or int64. */
#include "onnx.h"
#include "onnx.pb-c.h"
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Protobuf's own limit on a message; bigger models keep weights as external data. */
#define MAX_FILE ((uint64_t)1 << 31)
/* The schema of onnx.proto has no cycles (subgraphs are skipped as unknown
 * fields), so real nesting stops at 6; the limit keeps the walk bounded anyway. */
#define MAX_DEPTH 32
#define MAX_FIELD ((1u << 29) - 1)
#define MAX_FIELDS 16 /* fields of the largest message in onnx.proto */

typedef struct Reader {
    const char *path;
    const char *dir; /* of external data; NULL: none may be read */
    const uint8_t *data;
    size_t size;
    uint64_t max_bytes, bytes;
    Diag *d;
    Arena *arena;
    bool at_start; /* no field of the model read yet: errors say "not an ONNX model" */
    char name[1024]; /* the field being walked: "graph.node[2].op_type" */
} Reader;

__attribute__((format(printf, 2, 3))) static bool fail(Reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (r->at_start) {
        char msg[1200];
        vsnprintf(msg, sizeof msg, fmt, ap);
        ir_error(r->d, (SrcLoc){r->path, 0, 0}, "not an ONNX model (%s)", msg);
    } else {
        ir_vdiag(r->d, DIAG_ERROR, (SrcLoc){r->path, 0, 0}, fmt, ap);
    }
    va_end(ap);
    return false;
}

/* ---- the wire format -------------------------------------------------------- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };
static const char *const wire_names[8] = {"varint",    "64-bit", "length-delimited",
                                          "start-group", "end-group", "32-bit",
                                          "wire type 6", "wire type 7"};

enum { VARINT_OK, VARINT_SHORT, VARINT_LONG };

/* A varint of at most `most` bytes (protobuf-c reads tags and lengths in 5,
 * values in 10). */
static int varint(const uint8_t *p, size_t rem, size_t most, uint64_t *v, size_t *n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < most; i++) {
        if (i == rem)
            return VARINT_SHORT;
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            *n = i + 1;
            return VARINT_OK;
        }
    }
    return VARINT_LONG;
}

static int wire_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return WT_I32;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return WT_I64;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return WT_LEN;
    default:
        return WT_VARINT;
    }
}

/* Names field `num` (descriptor `f`, NULL if unknown) after the enclosing
 * message's name in r->name; returns the new length. Repeated messages and
 * strings are numbered, repeated numbers (often packed) are not. */
static size_t name_field(Reader *r, size_t plen, const ProtobufCFieldDescriptor *f, uint32_t num,
                         unsigned index)
{
    size_t room = sizeof r->name - plen;
    const char *dot = plen ? "." : "";
    int n;
    if (!f)
        n = snprintf(r->name + plen, room, "%s#%u", dot, (unsigned)num);
    else if (f->label == PROTOBUF_C_LABEL_REPEATED && wire_of(f->type) == WT_LEN)
        n = snprintf(r->name + plen, room, "%s%s[%u]", dot, f->name, index);
    else
        n = snprintf(r->name + plen, room, "%s%s", dot, f->name);
    return n < 0 ? plen : (size_t)n >= room ? sizeof r->name - 1 : plen + (size_t)n;
}

/* ModelProto's field numbers, those onnx.proto leaves out included. */
static bool model_field(uint32_t num)
{
    return (num >= 1 && num <= 8) || num == 14 || num == 20 || num == 25 || num == 26 ||
           num == 30;
}

static bool walk_packed(Reader *r, const ProtobufCFieldDescriptor *f, size_t pos, size_t len)
{
    int wt = wire_of(f->type);
    if (wt != WT_VARINT) {
        size_t w = wt == WT_I32 ? 4 : 8;
        if (len % w)
            return fail(r, "field '%s' at offset %zu: packed length %zu is not a multiple of %zu",
                        r->name, pos, len, w);
        return true;
    }
    for (size_t p = pos, n; p < pos + len; p += n) {
        uint64_t v;
        int e = varint(r->data + p, pos + len - p, 10, &v, &n);
        if (e == VARINT_SHORT)
            return fail(r, "truncated: field '%s' ends inside a varint at offset %zu", r->name, p);
        if (e == VARINT_LONG)
            return fail(r, "field '%s' at offset %zu: varint longer than 10 bytes", r->name, p);
    }
    return true;
}

/* The value of field r->name, of wire type `wt`, at data[pos, end): its end in *next. */
static bool walk_value(Reader *r, const ProtobufCFieldDescriptor *f, int wt, bool packed,
                       size_t pos, size_t end, size_t flen, int depth, size_t *next);

/* Walks the message `desc` held in data[pos, end), named r->name[0, plen). */
static bool walk(Reader *r, const ProtobufCMessageDescriptor *desc, size_t pos, size_t end,
                 size_t plen, int depth)
{
    unsigned counts[MAX_FIELDS] = {0};
    if (desc->n_fields > MAX_FIELDS)
        ICE("message %s has more than %d fields", desc->name, MAX_FIELDS);
    r->name[plen] = '\0';
    if (depth > MAX_DEPTH)
        return fail(r, "'%s' is nested deeper than %d messages", r->name, MAX_DEPTH);
    while (pos < end) {
        size_t at = pos, n;
        uint64_t key;
        r->name[plen] = '\0';
        int e = varint(r->data + pos, end - pos, 5, &key, &n);
        if (e == VARINT_SHORT)
            return fail(r, "truncated: a field tag at offset %zu runs past the end of %s%s%s", at,
                        plen ? "'" : "the file", r->name, plen ? "'" : "");
        uint32_t num = (uint32_t)(key >> 3);
        int wt = (int)(key & 7);
        if (e == VARINT_LONG || num == 0 || key >> 3 > MAX_FIELD)
            return fail(r, "invalid field tag at offset %zu%s%s%s", at, plen ? " in '" : "",
                        r->name, plen ? "'" : "");
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, num);
        size_t flen = name_field(r, plen, f, num, f ? counts[f - desc->fields]++ : 0);
        if (r->at_start && !model_field(num))
            return fail(r, "field %u at offset %zu is not one of ModelProto's", (unsigned)num, at);
        if (wt != WT_VARINT && wt != WT_I64 && wt != WT_LEN && wt != WT_I32)
            return fail(r, "unsupported %s for field '%s' at offset %zu", wire_names[wt], r->name,
                        at);
        bool packed = false;
        if (f && wt != wire_of(f->type)) {
            if (f->label == PROTOBUF_C_LABEL_REPEATED && wt == WT_LEN)
                packed = true;
            else
                return fail(r, "wrong wire type for field '%s' at offset %zu: %s, expected %s",
                            r->name, at, wire_names[wt], wire_names[wire_of(f->type)]);
        }
        if (!walk_value(r, f, wt, packed, pos + n, end, flen, depth, &pos))
            return false;
        r->at_start = false;
    }
    return true;
}

static bool walk_value(Reader *r, const ProtobufCFieldDescriptor *f, int wt, bool packed,
                       size_t pos, size_t end, size_t flen, int depth, size_t *next)
{
    size_t n;
    uint64_t v;
    int e;
    switch (wt) {
    case WT_VARINT:
        e = varint(r->data + pos, end - pos, 10, &v, &n);
        if (e == VARINT_SHORT)
            return fail(r, "truncated: field '%s' needs a varint at offset %zu, only %zu bytes remain",
                        r->name, pos, end - pos);
        if (e == VARINT_LONG)
            return fail(r, "field '%s' at offset %zu: varint longer than 10 bytes", r->name, pos);
        *next = pos + n;
        return true;
    case WT_I64:
    case WT_I32:
        n = wt == WT_I64 ? 8 : 4;
        if (end - pos < n)
            return fail(r, "truncated: field '%s' needs %zu bytes at offset %zu, only %zu remain",
                        r->name, n, pos, end - pos);
        *next = pos + n;
        return true;
    default:
        break;
    }
    e = varint(r->data + pos, end - pos, 5, &v, &n);
    if (e == VARINT_SHORT)
        return fail(r, "truncated: field '%s' needs a length at offset %zu, only %zu bytes remain",
                    r->name, pos, end - pos);
    if (e == VARINT_LONG || v > INT_MAX)
        return fail(r, "field '%s' at offset %zu: invalid length", r->name, pos);
    pos += n;
    if (v > end - pos)
        return fail(r, "truncated: field '%s' needs %zu bytes at offset %zu, only %zu remain",
                    r->name, (size_t)v, pos, end - pos);
    *next = pos + v;
    r->at_start = false;
    if (packed)
        return walk_packed(r, f, pos, (size_t)v);
    if (f && f->type == PROTOBUF_C_TYPE_MESSAGE)
        return walk(r, f->descriptor, pos, pos + v, flen, depth + 1);
    return true;
}

/* ---- tensors ---------------------------------------------------------------- */

/* Bytes of one element as stored in raw_data; 0 for the types not converted. */
static size_t elem_size(int32_t dtype)
{
    switch (dtype) {
    case ONNX_UINT8: case ONNX_INT8: case ONNX_BOOL:
        return 1;
    case ONNX_UINT16: case ONNX_INT16: case ONNX_FLOAT16: case ONNX_BFLOAT16:
        return 2;
    case ONNX_FLOAT: case ONNX_INT32: case ONNX_UINT32:
        return 4;
    case ONNX_INT64: case ONNX_DOUBLE: case ONNX_UINT64:
        return 8;
    default:
        return 0;
    }
}

static bool is_float(int32_t dtype)
{
    return dtype == ONNX_FLOAT || dtype == ONNX_DOUBLE || dtype == ONNX_FLOAT16 ||
           dtype == ONNX_BFLOAT16;
}

static const char *dtype_name(int32_t dtype)
{
    static const char *const names[] = {
        "undefined", "float", "uint8", "int8", "uint16", "int16", "int32", "int64", "string",
        "bool", "float16", "double", "uint32", "uint64", "complex64", "complex128", "bfloat16"};
    return dtype >= 0 && dtype <= ONNX_BFLOAT16 ? names[dtype] : "an unknown type";
}

static uint64_t load_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++)
        v |= (uint64_t)p[k] << (8 * k);
    return v;
}

/* Converts `count` little-endian elements of `dtype` into t->f or t->i. */
static void convert_raw(OnnxTensor *t, const uint8_t *p)
{
    size_t w = elem_size(t->dtype);
    for (int64_t k = 0; k < t->count; k++, p += w) {
        uint64_t v = load_le(p, w);
        switch (t->dtype) {
        case ONNX_FLOAT: {
            uint32_t b = (uint32_t)v;
            memcpy(&t->f[k], &b, 4);
            break;
        }
        case ONNX_DOUBLE: {
            double x;
            memcpy(&x, &v, 8);
            t->f[k] = (float)x;
            break;
        }
        case ONNX_FLOAT16: t->f[k] = ir_f16_to_f32((uint16_t)v); break;
        case ONNX_BFLOAT16: t->f[k] = ir_bf16_to_f32((uint16_t)v); break;
        case ONNX_INT8: t->i[k] = (int8_t)v; break;
        case ONNX_INT16: t->i[k] = (int16_t)v; break;
        case ONNX_INT32: t->i[k] = (int32_t)v; break;
        case ONNX_BOOL: t->i[k] = v != 0; break;
        default: t->i[k] = (int64_t)v; break; /* the unsigned types and int64 */
        }
    }
}

/* Converts int32_data, which ONNX uses for every type of 16 bits or less. */
static void convert_int32(OnnxTensor *t, const int32_t *p)
{
    for (int64_t k = 0; k < t->count; k++) {
        int32_t v = p[k];
        switch (t->dtype) {
        case ONNX_FLOAT16: t->f[k] = ir_f16_to_f32((uint16_t)v); break;
        case ONNX_BFLOAT16: t->f[k] = ir_bf16_to_f32((uint16_t)v); break;
        case ONNX_INT8: t->i[k] = (int8_t)v; break;
        case ONNX_UINT8: t->i[k] = (uint8_t)v; break;
        case ONNX_INT16: t->i[k] = (int16_t)v; break;
        case ONNX_UINT16: t->i[k] = (uint16_t)v; break;
        case ONNX_BOOL: t->i[k] = v != 0; break;
        default: t->i[k] = v; break;
        }
    }
}

static char *dims_str(Reader *r, const OnnxTensor *t)
{
    char buf[ONNX_MAX_RANK * 22 + 3];
    size_t n = 0;
    buf[n++] = '[';
    for (int32_t k = 0; k < t->rank; k++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%lld", k ? "," : "",
                              (long long)t->dims[k]);
    snprintf(buf + n, sizeof buf - n, "]");
    return ir_strdup(r->arena, buf);
}

/* A decimal number of external_data ("offset", "length"); -1 if it is not one. */
static int64_t parse_size(const char *s)
{
    int64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* A location that stays inside the model's folder: relative, without "..". */
static bool inside_folder(const char *loc)
{
    if (!*loc || *loc == '/')
        return false;
    for (const char *p = loc; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return false;
        p += n + (p[n] == '/');
    }
    return true;
}

typedef struct External {
    const char *location;
    int64_t offset, length; /* length -1: to the end of the file */
} External;

static bool external_keys(Reader *r, const CnncOnnx__TensorProto *tp, const char *what,
                          External *x)
{
    *x = (External){NULL, 0, -1};
    for (size_t k = 0; k < tp->n_external_data; k++) {
        const char *key = tp->external_data[k]->key ? tp->external_data[k]->key : "";
        const char *val = tp->external_data[k]->value ? tp->external_data[k]->value : "";
        if (!strcmp(key, "location")) {
            x->location = val;
        } else if (!strcmp(key, "offset") || !strcmp(key, "length")) {
            int64_t v = parse_size(val);
            if (v < 0)
                return fail(r, "%s: external data %s '%s' is not a number of bytes", what, key,
                            val);
            *(key[0] == 'o' ? &x->offset : &x->length) = v;
        }
    }
    if (!x->location)
        return fail(r, "%s: external data without a location", what);
    if (!inside_folder(x->location))
        return fail(r, "%s: external data location '%s' is not a relative path inside the "
                       "model's folder", what, x->location);
    if (!r->dir)
        return fail(r, "%s: external data '%s' cannot be read: the model was not read from a "
                       "file", what, x->location);
    return true;
}

/* The `need` bytes of a tensor's external data (malloc'd), or NULL after an error. */
static uint8_t *read_external(Reader *r, const CnncOnnx__TensorProto *tp, const char *what,
                              const char *dims, size_t need)
{
    External x;
    if (!external_keys(r, tp, what, &x))
        return NULL;
    const char *file = ir_strfmt(r->arena, "%s/%s", r->dir, x.location);
    int fd = open(file, O_RDONLY | O_NONBLOCK);
    struct stat st;
    const char *why = fd < 0 || fstat(fd, &st) != 0 ? strerror(errno)
                    : S_ISDIR(st.st_mode)           ? strerror(EISDIR)
                    : !S_ISREG(st.st_mode)          ? "not a regular file"
                                                    : NULL;
    if (why) {
        if (fd >= 0)
            close(fd);
        fail(r, "%s: cannot open external data '%s': %s", what, file, why);
        return NULL;
    }
    int64_t size = (int64_t)st.st_size;
    uint8_t *buf = NULL;
    if (x.length >= 0 && (uint64_t)x.length != need)
        fail(r, "%s: external data length %lld, but dims %s of %s need %zu bytes", what,
             (long long)x.length, dims, dtype_name(tp->data_type), need);
    else if (x.offset > size || (int64_t)need > size - x.offset)
        fail(r, "%s: external data '%s' has %lld bytes, too few for %zu at offset %lld", what,
             file, (long long)size, need, (long long)x.offset);
    else if (!(buf = ir_try_malloc(need + 1)))
        fail(r, "%s: out of memory for %zu bytes of external data", what, need);
    for (size_t got = 0, n; buf && got < need; got += n) {
        ssize_t k = pread(fd, buf + got, need - got, (off_t)(x.offset + (int64_t)got));
        if (k <= 0) {
            fail(r, "%s: cannot read external data '%s': %s", what, file,
                 k < 0 ? strerror(errno) : "the file changed while reading");
            free(buf);
            buf = NULL;
            break;
        }
        n = (size_t)k;
    }
    close(fd);
    return buf;
}

/* The typed field ONNX stores a `dtype` in, with its element count. */
static const char *typed_field(const CnncOnnx__TensorProto *tp, size_t *n)
{
    switch (tp->data_type) {
    case ONNX_FLOAT:
        *n = tp->n_float_data;
        return "float_data";
    case ONNX_INT64:
        *n = tp->n_int64_data;
        return "int64_data";
    case ONNX_DOUBLE:
        *n = tp->n_double_data;
        return "double_data";
    case ONNX_UINT32: case ONNX_UINT64:
        *n = tp->n_uint64_data;
        return "uint64_data";
    default:
        *n = tp->n_int32_data;
        return "int32_data";
    }
}

/* Converts the typed field of `t`'s dtype (typed_field), `need` bytes as raw data. */
static void convert_typed(OnnxTensor *t, const CnncOnnx__TensorProto *tp, size_t need)
{
    if (t->dtype == ONNX_FLOAT)
        memcpy(t->f, tp->float_data, need);
    else if (t->dtype == ONNX_DOUBLE)
        for (int64_t k = 0; k < t->count; k++)
            t->f[k] = (float)tp->double_data[k];
    else if (t->dtype == ONNX_INT64)
        memcpy(t->i, tp->int64_data, need);
    else if (t->dtype == ONNX_UINT32 || t->dtype == ONNX_UINT64)
        for (int64_t k = 0; k < t->count; k++)
            t->i[k] = (int64_t)tp->uint64_data[k];
    else
        convert_int32(t, tp->int32_data);
}

static bool tensor_shape(Reader *r, const CnncOnnx__TensorProto *tp, const char *what,
                         OnnxTensor *t)
{
    if (tp->n_dims > ONNX_MAX_RANK)
        return fail(r, "%s has rank %zu, more than %d", what, tp->n_dims, ONNX_MAX_RANK);
    t->rank = (int32_t)tp->n_dims;
    for (int32_t k = 0; k < t->rank; k++) {
        t->dims[k] = tp->dims[k];
        if (t->dims[k] < 0)
            return fail(r, "%s: dim %d is %lld", what, (int)k, (long long)t->dims[k]);
    }
    t->count = ir_numel_checked(t->rank, t->dims);
    if (t->count < 0)
        return fail(r, "%s: dims %s make more than 2^%d elements", what, dims_str(r, t),
                    IR_MAX_NUMEL_LOG2);
    if (tp->segment)
        return fail(r, "%s is stored in segments, which cnnc does not read", what);
    return true;
}

/* Reads tensor `tp`, named `where` in the file ("graph.initializer[3]"). */
static bool read_tensor(Reader *r, const CnncOnnx__TensorProto *tp, const char *where,
                        OnnxTensor *t)
{
    t->name = ir_strdup(r->arena, tp->name ? tp->name : "");
    t->dtype = tp->data_type;
    const char *what = *t->name ? ir_strfmt(r->arena, "tensor '%s' (%s)", t->name, where)
                                : ir_strfmt(r->arena, "tensor %s", where);
    if (!tensor_shape(r, tp, what, t))
        return false;
    size_t w = elem_size(t->dtype);
    if (!w)
        return true; /* strings and the types cnnc has no use for: the importer says so */
    const char *dims = dims_str(r, t);
    size_t need = (size_t)t->count * w, ntyped;
    const char *field = typed_field(tp, &ntyped);
    bool external = tp->has_data_location && tp->data_location == 1;
    if (tp->has_data_location && tp->data_location != 0 && tp->data_location != 1)
        return fail(r, "%s: unknown data_location %d", what, (int)tp->data_location);
    if (!external && tp->has_raw_data && tp->raw_data.len != need)
        return fail(r, "%s: dims %s of %s need %zu bytes, but raw_data has %zu", what, dims,
                    dtype_name(t->dtype), need, tp->raw_data.len);
    if (!external && !tp->has_raw_data && ntyped != (size_t)t->count)
        return fail(r, "%s: dims %s need %lld elements, but %s has %zu", what, dims,
                    (long long)t->count, field, ntyped);
    uint64_t held = (uint64_t)t->count * (is_float(t->dtype) ? sizeof(float) : sizeof(int64_t));
    if (r->max_bytes && held > r->max_bytes - r->bytes)
        return fail(r, "%s: its %llu bytes bring the tensor data to %llu, more than the limit "
                       "of %llu", what, (unsigned long long)held,
                    (unsigned long long)(r->bytes + held), (unsigned long long)r->max_bytes);
    const uint8_t *raw = tp->raw_data.data;
    uint8_t *ext = NULL;
    if (external && !(raw = ext = read_external(r, tp, what, dims, need)))
        return false;
    r->bytes += held;
    if (is_float(t->dtype))
        t->f = ir_alloc(r->arena, (size_t)held + 1);
    else
        t->i = ir_alloc(r->arena, (size_t)held + 1);
    if (external || tp->has_raw_data)
        convert_raw(t, raw);
    else if (t->count > 0) /* protobuf-c leaves an empty field NULL */
        convert_typed(t, tp, need);
    free(ext);
    return true;
}

/* ---- nodes and the graph ----------------------------------------------------- */

static const char *str(Reader *r, const char *s)
{
    return ir_strdup(r->arena, s ? s : "");
}

static const char *bytes_str(Reader *r, const ProtobufCBinaryData *b)
{
    return b->data ? ir_strndup(r->arena, (const char *)b->data, b->len) : ir_strdup(r->arena, "");
}

/* ONNX's AttributeType numbers of the kinds OnnxAttr holds. */
static OnnxAttrType attr_type(const CnncOnnx__AttributeProto *ap)
{
    switch (ap->has_type ? ap->type : 0) {
    case 1: return ONNX_ATTR_FLOAT;
    case 2: return ONNX_ATTR_INT;
    case 3: return ONNX_ATTR_STRING;
    case 4: return ONNX_ATTR_TENSOR;
    case 6: return ONNX_ATTR_FLOATS;
    case 7: return ONNX_ATTR_INTS;
    case 8: return ONNX_ATTR_STRINGS;
    case 0: break;
    default: return ONNX_ATTR_OTHER;
    }
    /* Files of IR version 1 have no type: the field that is set says it. */
    return ap->has_f ? ONNX_ATTR_FLOAT : ap->has_i ? ONNX_ATTR_INT : ap->has_s ? ONNX_ATTR_STRING
         : ap->t ? ONNX_ATTR_TENSOR : ap->n_floats ? ONNX_ATTR_FLOATS
         : ap->n_ints ? ONNX_ATTR_INTS : ap->n_strings ? ONNX_ATTR_STRINGS : ONNX_ATTR_OTHER;
}

static bool read_attr(Reader *r, const CnncOnnx__AttributeProto *ap, const char *where,
                      OnnxAttr *a)
{
    a->name = str(r, ap->name);
    a->type = attr_type(ap);
    a->f = ap->f;
    a->i = ap->i;
    a->s = bytes_str(r, &ap->s);
    size_t n = a->type == ONNX_ATTR_FLOATS ? ap->n_floats : a->type == ONNX_ATTR_INTS ? ap->n_ints
             : a->type == ONNX_ATTR_STRINGS ? ap->n_strings : 0;
    if (n > INT32_MAX)
        return fail(r, "%s: attribute '%s' has %zu values, more than %d", where, a->name, n,
                    INT32_MAX);
    a->n = (int32_t)n;
    if (a->type == ONNX_ATTR_FLOATS) {
        float *v = ir_alloc(r->arena, n * sizeof *v + 1);
        if (n) /* protobuf-c leaves an empty list NULL */
            memcpy(v, ap->floats, n * sizeof *v);
        a->floats = v;
    } else if (a->type == ONNX_ATTR_INTS) {
        int64_t *v = ir_alloc(r->arena, n * sizeof *v + 1);
        if (n)
            memcpy(v, ap->ints, n * sizeof *v);
        a->ints = v;
    } else if (a->type == ONNX_ATTR_STRINGS) {
        const char **v = ir_alloc(r->arena, n * sizeof *v + 1);
        for (size_t k = 0; k < n; k++)
            v[k] = bytes_str(r, &ap->strings[k]);
        a->strings = v;
    } else if (a->type == ONNX_ATTR_TENSOR) {
        if (!ap->t)
            return fail(r, "%s: tensor attribute '%s' has no tensor", where, a->name);
        OnnxTensor *t = ir_alloc(r->arena, sizeof *t);
        if (!read_tensor(r, ap->t, ir_strfmt(r->arena, "%s.t", where), t))
            return false;
        a->t = t;
    }
    return true;
}

static const char *const *strings(Reader *r, char *const *s, size_t n)
{
    const char **v = ir_alloc(r->arena, n * sizeof *v + 1);
    for (size_t k = 0; k < n; k++)
        v[k] = str(r, s[k]);
    return v;
}

static bool read_node(Reader *r, const CnncOnnx__NodeProto *np, size_t index, OnnxNode *n)
{
    n->name = str(r, np->name);
    n->op_type = str(r, np->op_type);
    n->domain = str(r, np->domain && strcmp(np->domain, "ai.onnx") ? np->domain : "");
    n->ninputs = (int32_t)np->n_input;
    n->noutputs = (int32_t)np->n_output;
    n->nattrs = (int32_t)np->n_attribute;
    n->inputs = strings(r, np->input, np->n_input);
    n->outputs = strings(r, np->output, np->n_output);
    OnnxAttr *attrs = ir_alloc(r->arena, np->n_attribute * sizeof *attrs + 1);
    n->attrs = attrs;
    for (size_t k = 0; k < np->n_attribute; k++)
        if (!read_attr(r, np->attribute[k],
                       ir_strfmt(r->arena, "graph.node[%zu].attribute[%zu]", index, k), &attrs[k]))
            return false;
    return true;
}

static bool read_value_info(Reader *r, const CnncOnnx__ValueInfoProto *vp, const char *where,
                            OnnxValueInfo *v)
{
    v->name = str(r, vp->name);
    v->rank = -1;
    const CnncOnnx__TypeProto *type = vp->type;
    if (!type || type->value_case != CNNC_ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return true;
    v->dtype = type->tensor_type->elem_type;
    const CnncOnnx__TensorShapeProto *shape = type->tensor_type->shape;
    if (!shape)
        return true;
    if (shape->n_dim > ONNX_MAX_RANK)
        return fail(r, "%s '%s' has rank %zu, more than %d", where, v->name, shape->n_dim,
                    ONNX_MAX_RANK);
    v->rank = (int32_t)shape->n_dim;
    for (int32_t k = 0; k < v->rank; k++) {
        const CnncOnnx__TensorShapeProto__Dimension *dim = shape->dim[k];
        v->dims[k] = -1;
        if (dim->value_case == CNNC_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
            dim->dim_value >= 0)
            v->dims[k] = dim->dim_value;
        else if (dim->value_case == CNNC_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
            v->dim_names[k] = str(r, dim->dim_param);
    }
    return true;
}

static bool read_values(Reader *r, CnncOnnx__ValueInfoProto *const *vp, size_t n,
                        const char *field, const OnnxValueInfo **out)
{
    OnnxValueInfo *v = ir_alloc(r->arena, n * sizeof *v + 1);
    *out = v;
    for (size_t k = 0; k < n; k++)
        if (!read_value_info(r, vp[k], ir_strfmt(r->arena, "graph.%s[%zu]", field, k), &v[k]))
            return false;
    return true;
}

static bool read_model(Reader *r, const CnncOnnx__ModelProto *pm, OnnxModel *m)
{
    m->ir_version = pm->ir_version;
    for (size_t k = 0; k < pm->n_opset_import; k++) {
        const CnncOnnx__OperatorSetIdProto *o = pm->opset_import[k];
        if ((!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) && o->version > m->opset)
            m->opset = o->version;
    }
    const char *pv = pm->producer_version ? pm->producer_version : "";
    m->producer = ir_strfmt(r->arena, "%s%s%s", pm->producer_name ? pm->producer_name : "",
                            *pv && pm->producer_name && *pm->producer_name ? " " : "", pv);
    const CnncOnnx__GraphProto *g = pm->graph;
    m->graph_name = str(r, g->name);
    m->nnodes = (int32_t)g->n_node;
    m->ninits = (int32_t)g->n_initializer;
    m->ninputs = (int32_t)g->n_input;
    m->noutputs = (int32_t)g->n_output;
    OnnxNode *nodes = ir_alloc(r->arena, g->n_node * sizeof *nodes + 1);
    OnnxTensor *inits = ir_alloc(r->arena, g->n_initializer * sizeof *inits + 1);
    m->nodes = nodes;
    m->inits = inits;
    for (size_t k = 0; k < g->n_node; k++)
        if (!read_node(r, g->node[k], k, &nodes[k]))
            return false;
    for (size_t k = 0; k < g->n_initializer; k++)
        if (!read_tensor(r, g->initializer[k], ir_strfmt(r->arena, "graph.initializer[%zu]", k),
                         &inits[k]))
            return false;
    return read_values(r, g->input, g->n_input, "input", &m->inputs) &&
           read_values(r, g->output, g->n_output, "output", &m->outputs);
}

/* ---- entry points --------------------------------------------------------------- */

OnnxModel *onnx_read_buffer(const char *path, const void *data, size_t size, const char *dir,
                            uint64_t max_bytes, Diag *d)
{
    Arena *arena = ir_arena_new();
    Reader r = {.path = ir_strdup(arena, path), .dir = dir ? ir_strdup(arena, dir) : NULL,
                .data = data, .size = size, .max_bytes = max_bytes, .d = d, .arena = arena,
                .at_start = true};
    if (size == 0) {
        fail(&r, "the file is empty");
        ir_arena_free(arena);
        return NULL;
    }
    if (size > MAX_FILE) {
        r.at_start = false;
        fail(&r, "%zu bytes, more than the 2 GiB a protobuf message can hold", size);
        ir_arena_free(arena);
        return NULL;
    }
    bool ok = walk(&r, &cnnc_onnx__model_proto__descriptor, 0, size, 0, 0);
    CnncOnnx__ModelProto *pm = NULL;
    if (ok && !(pm = cnnc_onnx__model_proto__unpack(NULL, size, data)))
        ok = fail(&r, "cannot decode the model: protobuf-c rejects it");
    r.at_start = true;
    if (ok && !pm->graph)
        ok = fail(&r, "it has no graph");
    r.at_start = false;
    OnnxModel *m = NULL;
    if (ok) {
        m = ir_alloc(arena, sizeof *m);
        m->arena = arena;
        m->path = r.path;
        ok = read_model(&r, pm, m);
    }
    if (pm)
        cnnc_onnx__model_proto__free_unpacked(pm, NULL);
    if (!ok) {
        ir_arena_free(arena);
        return NULL;
    }
    return m;
}

/* The whole file (malloc'd), at most MAX_FILE bytes; NULL after an error. */
static uint8_t *read_whole(const char *path, size_t *size, Diag *d)
{
    SrcLoc loc = {path, 0, 0};
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        int err = fd >= 0 && S_ISDIR(st.st_mode) ? EISDIR : errno;
        if (fd >= 0)
            close(fd);
        ir_error(d, loc, "cannot read the model: %s", strerror(err));
        return NULL;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > MAX_FILE) {
        close(fd);
        ir_error(d, loc, "the file has %lld bytes; an ONNX file holds at most 2 GiB (larger "
                         "models keep their weights as external data)", (long long)st.st_size);
        return NULL;
    }
    /* Blocking reads again (a FIFO was opened without waiting for its writer). */
    fcntl(fd, F_SETFL, 0);
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 1 << 16, n = 0;
    uint8_t *buf = ir_try_malloc(cap);
    ssize_t k = 1;
    while (buf && n <= MAX_FILE && (k = read(fd, buf + n, cap - n)) > 0) {
        n += (size_t)k;
        if (n == cap) {
            uint8_t *more = ir_try_malloc(cap * 2);
            if (more)
                memcpy(more, buf, n);
            free(buf);
            buf = more;
            cap *= 2;
        }
    }
    int err = !buf ? ENOMEM : k < 0 ? errno : 0;
    close(fd);
    if (err || n > MAX_FILE) {
        free(buf);
        if (err)
            ir_error(d, loc, "cannot read the model: %s", strerror(err));
        else
            ir_error(d, loc, "the file has more than 2 GiB; an ONNX file holds at most 2 GiB");
        return NULL;
    }
    *size = n;
    return buf;
}

OnnxModel *onnx_read(const char *path, uint64_t max_bytes, Diag *d)
{
    size_t size;
    uint8_t *data = read_whole(path, &size, d);
    if (!data)
        return NULL;
    const char *slash = strrchr(path, '/');
    char *dir = slash ? ir_xstrdup(path) : ir_xstrdup(".");
    if (slash)
        dir[slash == path ? 1 : slash - path] = '\0';
    OnnxModel *m = onnx_read_buffer(path, data, size, dir, max_bytes, d);
    free(dir);
    free(data);
    return m;
}

void onnx_free(OnnxModel *m)
{
    if (m)
        ir_arena_free(m->arena);
}

const OnnxAttr *onnx_attr(const OnnxNode *n, const char *name)
{
    for (int32_t k = 0; k < n->nattrs; k++)
        if (!strcmp(n->attrs[k].name, name))
            return &n->attrs[k];
    return NULL;
}
