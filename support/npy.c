/* npy.c: numpy .npy files (sample inputs, reference outputs) and
 * ir_write_atomic, the temp-file-then-rename writer behind every file cnnc
 * writes. Arrays are read as little-endian float data in C order. */
#include "support.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "float data is read in place, which needs a little-endian host"
#endif

#define NPY_MAGIC     "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_MAX_HEADER (1 << 20)
/* numpy leaves room for the growth axis to get longer; copying it keeps our
 * files byte-identical to numpy's. */
#define NPY_GROWTH_DIGITS 21

float ir_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = h >> 10 & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | man << 13;
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | man << 13;
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: renormalize */
        int shift = 0;
        while (!(man & 0x400)) {
            man <<= 1;
            shift++;
        }
        bits = sign | (uint32_t)(113 - shift) << 23 | (man & 0x3FF) << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float ir_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct HeaderParser {
    const char *s; /* NUL-terminated */
    const char *path;
    char *err;
    size_t errlen;
    bool seen[3]; /* descr, fortran_order, shape */
} HeaderParser;

bool ir_file_error(const char *path, char *err, size_t errlen, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (errlen)
        snprintf(err, errlen, "%s: %s", path, msg);
    return false;
}

static bool header_fail(HeaderParser *p, const char *what)
{
    return ir_file_error(p->path, p->err, p->errlen, "malformed .npy header: %s", what);
}

static void skip_space(HeaderParser *p)
{
    while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
        p->s++;
}

static bool expect(HeaderParser *p, char c, const char *what)
{
    skip_space(p);
    if (*p->s != c)
        return header_fail(p, what);
    p->s++;
    return true;
}

/* A Python string literal in single or double quotes, without escapes. */
static bool parse_quoted(HeaderParser *p, char *out, size_t n)
{
    skip_space(p);
    char q = *p->s;
    if (q != '\'' && q != '"')
        return header_fail(p, "expected a quoted string");
    const char *end = strchr(p->s + 1, q);
    if (!end)
        return header_fail(p, "unterminated string");
    size_t len = (size_t)(end - p->s - 1);
    if (len >= n)
        return header_fail(p, "string too long");
    memcpy(out, p->s + 1, len);
    out[len] = '\0';
    p->s = end + 1;
    return true;
}

static bool parse_bool(HeaderParser *p, bool *out)
{
    skip_space(p);
    if (strncmp(p->s, "True", 4) == 0 || strncmp(p->s, "False", 5) == 0) {
        *out = *p->s == 'T';
        p->s += *out ? 4 : 5;
        return true;
    }
    return header_fail(p, "fortran_order must be True or False");
}

static bool parse_dim(HeaderParser *p, int64_t *out)
{
    skip_space(p);
    if (*p->s < '0' || *p->s > '9')
        return header_fail(p, "shape entries must be non-negative integers");
    int64_t v = 0;
    for (; *p->s >= '0' && *p->s <= '9'; p->s++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p->s - '0', &v))
            return header_fail(p, "shape entry too large");
    *out = v;
    return true;
}

/* "(2, 3)", "(5,)", "()": a tuple of integers, trailing comma allowed. */
static bool parse_shape(HeaderParser *p, NpyHeader *h)
{
    if (!expect(p, '(', "shape must be a tuple"))
        return false;
    h->rank = 0;
    for (;;) {
        skip_space(p);
        if (*p->s == ')')
            break;
        int64_t d = 0;
        if (!parse_dim(p, &d))
            return false;
        if (h->rank == IR_MAX_RANK)
            return ir_file_error(p->path, p->err, p->errlen,
                            "arrays of rank above %d are not supported", IR_MAX_RANK);
        h->dims[h->rank++] = d;
        skip_space(p);
        if (*p->s == ',')
            p->s++;
        else if (*p->s != ')')
            return header_fail(p, "expected ',' or ')' in shape");
    }
    p->s++;
    return true;
}

static bool parse_entry(HeaderParser *p, NpyHeader *h)
{
    char key[32];
    if (!parse_quoted(p, key, sizeof key) || !expect(p, ':', "expected ':' after key"))
        return false;
    int which = strcmp(key, "descr") == 0           ? 0
                : strcmp(key, "fortran_order") == 0 ? 1
                : strcmp(key, "shape") == 0         ? 2
                                                    : -1;
    if (which < 0)
        return ir_file_error(p->path, p->err, p->errlen, "unexpected key '%s' in .npy header", key);
    if (p->seen[which])
        return ir_file_error(p->path, p->err, p->errlen, "key '%s' repeated in .npy header", key);
    p->seen[which] = true;
    skip_space(p);
    if (which == 0 && *p->s == '[')
        return ir_file_error(p->path, p->err, p->errlen, "structured dtypes are not supported");
    return which == 0   ? parse_quoted(p, h->descr, sizeof h->descr)
           : which == 1 ? parse_bool(p, &h->fortran)
                        : parse_shape(p, h);
}

/* The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False,
 * 'shape': (2, 3), } with keys in any order. */
static bool parse_header(HeaderParser *p, NpyHeader *h)
{
    if (!expect(p, '{', "expected '{'"))
        return false;
    for (;;) {
        skip_space(p);
        if (*p->s == '}')
            break;
        if (!parse_entry(p, h))
            return false;
        skip_space(p);
        if (*p->s == ',')
            p->s++;
        else if (*p->s != '}')
            return header_fail(p, "expected ',' or '}'");
    }
    p->s++;
    skip_space(p);
    if (*p->s)
        return header_fail(p, "unexpected text after the dict");
    if (!p->seen[0] || !p->seen[1] || !p->seen[2])
        return header_fail(p, !p->seen[0]   ? "missing key 'descr'"
                              : !p->seen[1] ? "missing key 'fortran_order'"
                                            : "missing key 'shape'");
    return true;
}

/* Bytes per element for the accepted dtypes, after reporting the others. */
static size_t check_descr(const NpyHeader *h, const char *path, char *err, size_t errlen)
{
    const char *d = h->descr;
    bool known = strlen(d) == 3 && d[1] == 'f' && (d[2] == '2' || d[2] == '4' || d[2] == '8');
    if (known && d[0] == '>')
        return ir_file_error(path, err, errlen, "big-endian data is not supported (dtype '%s')", d);
    if (!known || (d[0] != '<' && d[0] != '='))
        return ir_file_error(path, err, errlen,
                        "dtype '%s' is not supported; expected little-endian float32", d);
    if (h->fortran)
        return ir_file_error(path, err, errlen, "fortran_order arrays are not supported");
    return (size_t)(d[2] - '0');
}

/* The magic and version in pre[0..8): how many bytes (2 or 4) give the header's length. */
static size_t check_prelude(const unsigned char *pre, const char *path, char *err, size_t errlen)
{
    if (memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return ir_file_error(path, err, errlen, "not a .npy file");
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return ir_file_error(path, err, errlen, ".npy version %d.%d is not supported", major,
                             minor);
    return major == 1 ? 2 : 4;
}

/* The header's length from its 2 or 4 little-endian bytes, at most NPY_MAX_HEADER. */
static bool header_length(const unsigned char *b, size_t lenbytes, uint32_t *hlen,
                          const char *path, char *err, size_t errlen)
{
    *hlen = (uint32_t)b[0] | (uint32_t)b[1] << 8;
    if (lenbytes == 4)
        *hlen |= (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (*hlen > NPY_MAX_HEADER)
        return ir_file_error(path, err, errlen, ".npy header of %u bytes is too large", *hlen);
    return true;
}

/* The header dict's `hlen` bytes (not NUL-terminated) into `h`. */
static bool parse_header_text(const char *bytes, uint32_t hlen, const char *path, NpyHeader *h,
                              char *err, size_t errlen)
{
    char *text = ir_xmalloc(hlen + 1);
    memcpy(text, bytes, hlen);
    text[hlen] = '\0';
    HeaderParser p = {.s = text, .path = path, .err = err, .errlen = errlen};
    bool ok = strlen(text) == hlen ? parse_header(&p, h) : header_fail(&p, "NUL byte in header");
    free(text);
    return ok;
}

/* Reads the magic, version and header dict; leaves `f` at the data. */
static bool read_header(FILE *f, const char *path, NpyHeader *h, char *err, size_t errlen)
{
    unsigned char pre[NPY_MAGIC_LEN + 2 + 4];
    if (fread(pre, 1, 8, f) != 8)
        return ir_file_error(path, err, errlen, "not a .npy file");
    size_t lenbytes = check_prelude(pre, path, err, errlen);
    if (!lenbytes)
        return false;
    if (fread(pre + 8, 1, lenbytes, f) != lenbytes)
        return ir_file_error(path, err, errlen, "truncated .npy header");
    uint32_t hlen;
    if (!header_length(pre + 8, lenbytes, &hlen, path, err, errlen))
        return false;
    char *text = ir_xmalloc(hlen + 1);
    bool ok = fread(text, 1, hlen, f) == hlen;
    if (!ok)
        ir_file_error(path, err, errlen, "truncated .npy header");
    else
        ok = parse_header_text(text, hlen, path, h, err, errlen);
    free(text);
    return ok;
}

bool ir_npy_parse_header(const unsigned char *buf, size_t len, const char *path, NpyHeader *h,
                         char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (len < 8)
        return ir_file_error(path, err, errlen, "not a .npy file");
    size_t lenbytes = check_prelude(buf, path, err, errlen);
    if (!lenbytes)
        return false;
    if (len < 8 + lenbytes)
        return ir_file_error(path, err, errlen, "truncated .npy header");
    uint32_t hlen;
    if (!header_length(buf + 8, lenbytes, &hlen, path, err, errlen))
        return false;
    if (len - 8 - lenbytes < hlen)
        return ir_file_error(path, err, errlen, "truncated .npy header");
    h->data_offset = 8 + lenbytes + hlen;
    return parse_header_text((const char *)buf + 8 + lenbytes, hlen, path, h, err, errlen);
}

static void convert(float *dst, const unsigned char *src, int64_t n, size_t size)
{
    for (int64_t i = 0; i < n; i++, src += size) {
        if (size == 2) {
            dst[i] = ir_f16_to_f32((uint16_t)(src[0] | src[1] << 8));
        } else {
            uint64_t bits = 0;
            for (int b = 7; b >= 0; b--)
                bits = bits << 8 | src[b];
            double v;
            memcpy(&v, &bits, sizeof v);
            dst[i] = (float)v;
        }
    }
}

static bool size_fail(const char *path, char *err, size_t errlen, int64_t have, int64_t need,
                      bool at_least)
{
    return ir_file_error(path, err, errlen, "file holds %s%lld bytes of data, shape needs %lld",
                    at_least ? "more than " : "", (long long)(at_least ? need : have),
                    (long long)need);
}

/* A regular file's data: its size must be exactly `need` bytes. */
static unsigned char *read_file_data(FILE *f, const struct stat *st, const char *path,
                                     int64_t need, char *err, size_t errlen)
{
    long pos = ftell(f);
    int64_t have = (int64_t)st->st_size - pos;
    if (pos < 0)
        return ir_file_error(path, err, errlen, "cannot read: %s", strerror(errno)), NULL;
    if (have != need)
        return size_fail(path, err, errlen, have, need, false), NULL;
    unsigned char *raw = ir_xmalloc((size_t)need + 1);
    if (fread(raw, 1, (size_t)need, f) != (size_t)need) {
        free(raw);
        return ir_file_error(path, err, errlen, "read error: %s", strerror(errno)), NULL;
    }
    return raw;
}

/* A pipe's data (/dev/stdin), whose size is known only at its end: read as it
 * comes, so a header promising more than arrives allocates no more than
 * arrived, and no further than one byte past `need`. */
static unsigned char *read_stream_data(FILE *f, const char *path, int64_t need, char *err,
                                       size_t errlen)
{
    size_t len = 0, cap = 0;
    unsigned char *raw = NULL;
    size_t most = (size_t)need + 1;
    for (size_t got = 1; got > 0 && len < most;) {
        if (len == cap) {
            cap = cap ? cap * 2 : (size_t)1 << 16;
            cap = cap < most ? cap : most;
            raw = ir_xrealloc(raw, cap + 1);
        }
        got = fread(raw + len, 1, cap - len, f);
        len += got;
    }
    if (ferror(f) || (int64_t)len != need) {
        if (ferror(f))
            ir_file_error(path, err, errlen, "read error: %s", strerror(errno));
        else
            size_fail(path, err, errlen, (int64_t)len, need, (int64_t)len > need);
        free(raw);
        return NULL;
    }
    return raw;
}

static bool read_data(FILE *f, const char *path, const NpyHeader *h, size_t size,
                      NpyArray *out, char *err, size_t errlen)
{
    int64_t numel = 1, need;
    for (int32_t i = 0; i < h->rank; i++)
        if (__builtin_mul_overflow(numel, h->dims[i], &numel))
            return ir_file_error(path, err, errlen, "shape is too large");
    if (__builtin_mul_overflow(numel, (int64_t)size, &need))
        return ir_file_error(path, err, errlen, "shape is too large");
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        return ir_file_error(path, err, errlen, "cannot read: %s", strerror(errno));
    unsigned char *raw = S_ISREG(st.st_mode) ? read_file_data(f, &st, path, need, err, errlen)
                                             : read_stream_data(f, path, need, err, errlen);
    if (!raw)
        return false;
    if (size == sizeof(float)) {
        out->data = (float *)raw;
    } else {
        out->data = ir_xmalloc((size_t)numel * sizeof(float) + 1);
        convert(out->data, raw, numel, size);
        free(raw);
    }
    out->rank = h->rank;
    memcpy(out->dims, h->dims, sizeof h->dims);
    return true;
}

bool ir_npy_read(const char *path, NpyArray *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ir_file_error(path, err, errlen, "cannot open: %s", strerror(errno));
    NpyHeader h = {0};
    size_t size = 0;
    bool ok = read_header(f, path, &h, err, errlen) &&
              (size = check_descr(&h, path, err, errlen)) != 0 &&
              read_data(f, path, &h, size, out, err, errlen);
    fclose(f);
    return ok;
}

/* ---- writing ------------------------------------------------------------ */

/* A device or pipe (/dev/null, /dev/stdout) is written in place: renaming a
 * temporary file over it would replace the device with a regular file. */
static bool write_in_place(const char *path, bool (*emit)(FILE *f, void *ctx), void *ctx,
                           char *err, size_t errlen)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && emit(f, ctx);
    int saved = errno;
    if (f && fclose(f) != 0 && ok) {
        saved = errno;
        ok = false;
    }
    if (!ok)
        ir_file_error(path, err, errlen, "cannot write: %s", strerror(saved));
    return ok;
}

/* The temporary is flushed to the disk before the rename, so a full disk or a
 * failing device shows up here as an error, not later as a truncated file. */
bool ir_write_atomic(const char *path, bool (*emit)(FILE *f, void *ctx), void *ctx, char *err,
                     size_t errlen)
{
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return write_in_place(path, emit, ctx, err, errlen);
    size_t n = strlen(path) + sizeof ".tmp-XXXXXX";
    char *tmp = ir_xmalloc(n);
    snprintf(tmp, n, "%s.tmp-XXXXXX", path);
    int fd = ir_temp_create(tmp);
    if (fd < 0) {
        ir_file_error(path, err, errlen, "cannot create a temporary file: %s", strerror(errno));
        free(tmp);
        return false;
    }
    /* mkstemp makes the file private; give it the permissions a plain fopen would. */
    mode_t mask = umask(0);
    umask(mask);
    FILE *f = fdopen(fd, "wb");
    errno = 0;
    bool ok = f && fchmod(fd, 0666 & ~mask) == 0 && emit(f, ctx) && fflush(f) == 0 &&
              !ferror(f) && (fsync(fd) == 0 || errno == EINVAL);
    int saved = errno ? errno : EIO;
    if ((f ? fclose(f) : close(fd)) != 0 && ok) {
        saved = errno;
        ok = false;
    }
    if (ok && rename(tmp, path) != 0) {
        saved = errno;
        ok = false;
    }
    if (!ok) ir_file_error(path, err, errlen, "cannot write: %s", strerror(saved));
    ir_temp_release(tmp, !ok);
    free(tmp);
    return ok;
}

typedef struct NpyWrite {
    const float *data;
    int32_t rank;
    const int64_t *dims;
} NpyWrite;

/* numpy's own header: keys sorted, repr() of the shape tuple, growth-axis
 * spaces, then padding so the data starts 64-byte aligned. */
static size_t format_header(const NpyWrite *w, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int32_t i = 0; i < w->rank; i++)
        len += (size_t)snprintf(buf + len, n - len, i ? ", %lld" : "%lld%s",
                                (long long)w->dims[i], w->rank == 1 ? "," : "");
    len += (size_t)snprintf(buf + len, n - len, "), }");
    if (w->rank > 0) {
        char first[24];
        int digits = snprintf(first, sizeof first, "%lld", (long long)w->dims[0]);
        for (int i = digits; i < NPY_GROWTH_DIGITS; i++)
            buf[len++] = ' ';
    }
    size_t pad = 64 - (NPY_MAGIC_LEN + 2 + 2 + len + 1) % 64;
    memset(buf + len, ' ', pad);
    len += pad;
    buf[len++] = '\n';
    return len;
}

static bool emit_npy(FILE *f, void *ctx)
{
    const NpyWrite *w = ctx;
    char header[512];
    size_t hlen = format_header(w, header, sizeof header);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xFF),
                             (unsigned char)(hlen >> 8)};
    int64_t numel = 1;
    for (int32_t i = 0; i < w->rank; i++)
        numel *= w->dims[i];
    return fwrite(pre, 1, sizeof pre, f) == sizeof pre &&
           fwrite(header, 1, hlen, f) == hlen &&
           fwrite(w->data, sizeof(float), (size_t)numel, f) == (size_t)numel;
}

bool ir_npy_write(const char *path, const float *data, int32_t rank, const int64_t *dims,
                  char *err, size_t errlen)
{
    if (rank < 0 || rank > IR_MAX_RANK)
        return ir_file_error(path, err, errlen, "cannot write an array of rank %d", (int)rank);
    for (int32_t i = 0; i < rank; i++)
        if (dims[i] < 0)
            return ir_file_error(path, err, errlen, "negative dimension %lld", (long long)dims[i]);
    NpyWrite w = {data, rank, dims};
    return ir_write_atomic(path, emit_npy, &w, err, errlen);
}
