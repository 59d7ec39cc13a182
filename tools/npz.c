/* npz.c: members of a numpy .npz archive read through libzip, whether stored
 * (np.savez) or deflated (np.savez_compressed). A member is read whole into a
 * buffer grown as its bytes arrive, so a size the archive merely claims
 * allocates nothing; its .npy header is parsed by support/npy.c, and its data
 * must fill exactly the shape the header gives. */
#include "npz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "support.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "numbers are read as little-endian"
#endif

struct Npz {
    zip_t *zip;
    char *path;
};


Npz *npz_open(const char *path, char *err, size_t errlen)
{
    int code = 0;
    zip_t *zip = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!zip) {
        zip_error_t e;
        zip_error_init_with_code(&e, code);
        ir_file_error(path, err, errlen, "cannot read as an .npz archive: %s",
                      zip_error_strerror(&e));
        zip_error_fini(&e);
        return NULL;
    }
    Npz *z = ir_xmalloc(sizeof *z);
    z->zip = zip;
    z->path = ir_xstrdup(path);
    return z;
}

void npz_close(Npz *z)
{
    if (!z)
        return;
    zip_discard(z->zip);
    free(z->path);
    free(z);
}

static zip_int64_t locate(Npz *z, const char *name)
{
    char member[256];
    if ((size_t)snprintf(member, sizeof member, "%s.npy", name) >= sizeof member)
        return -1;
    return zip_name_locate(z->zip, member, 0);
}

bool npz_has(Npz *z, const char *name)
{
    return locate(z, name) >= 0;
}

/* The member's bytes, up to the size its entry declares; NULL after a read
 * error (a damaged deflate stream, a wrong CRC). */
static unsigned char *read_member(Npz *z, zip_int64_t index, const char *name, size_t *len,
                                  char *err, size_t errlen)
{
    zip_stat_t st;
    zip_file_t *f = NULL;
    if (zip_stat_index(z->zip, (zip_uint64_t)index, 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_SIZE) || !(f = zip_fopen_index(z->zip, (zip_uint64_t)index, 0)))
        return ir_file_error(z->path, err, errlen, "%s: cannot open the member: %s", name,
                        zip_strerror(z->zip)), NULL;
    unsigned char *buf = NULL;
    size_t have = 0, cap = 0;
    for (;;) {
        if (have == cap) {
            cap = cap ? cap * 2 : (size_t)1 << 16;
            buf = ir_xrealloc(buf, cap);
        }
        zip_int64_t got = zip_fread(f, buf + have, cap - have);
        if (got < 0) {
            ir_file_error(z->path, err, errlen, "%s: cannot read the member: %s", name,
                     zip_error_strerror(zip_file_get_error(f)));
            free(buf);
            zip_fclose(f);
            return NULL;
        }
        if (got == 0)
            break;
        have += (size_t)got;
    }
    zip_fclose(f);
    *len = have;
    return buf;
}

/* Bytes per element of a dtype read as `type`, or 0 for one this reader refuses. */
static size_t dtype_size(const char *d, NpzType *type, bool *is_unsigned)
{
    if (strlen(d) != 3 || (d[0] != '<' && d[0] != '=' && d[0] != '|'))
        return 0;
    size_t size = (size_t)(d[2] - '0');
    *is_unsigned = d[1] == 'u';
    if (d[1] == 'f' && (size == 2 || size == 4 || size == 8)) {
        *type = NPZ_F32;
        return d[0] == '|' ? 0 : size;
    }
    bool integer = (d[1] == 'i' && (size == 1 || size == 2 || size == 4 || size == 8)) ||
                   (d[1] == 'u' && (size == 1 || size == 2 || size == 4));
    if (!integer || (size > 1 && d[0] == '|'))
        return 0;
    *type = NPZ_I64;
    return size;
}

/* Little-endian integer of `size` bytes, sign-extended unless unsigned. */
static int64_t load_int(const unsigned char *p, size_t size, bool is_unsigned)
{
    uint64_t v = 0;
    for (size_t b = size; b-- > 0;)
        v = v << 8 | p[b];
    if (!is_unsigned && size < 8 && (v >> (size * 8 - 1) & 1))
        v |= ~(uint64_t)0 << (size * 8);
    int64_t s;
    memcpy(&s, &v, sizeof s);
    return s;
}

static float load_float(const unsigned char *p, size_t size)
{
    if (size == 2)
        return ir_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
    if (size == 4) {
        float f;
        memcpy(&f, p, sizeof f);
        return f;
    }
    double d;
    memcpy(&d, p, sizeof d);
    return (float)d;
}

/* The header's dtype and shape checked against the bytes after it, then the
 * values converted into out->data. */
static bool decode(Npz *z, const char *name, const unsigned char *buf, size_t len,
                   NpzArray *out, char *err, size_t errlen)
{
    char where[300];
    snprintf(where, sizeof where, "%s: %s", z->path, name);
    NpyHeader h;
    if (!ir_npy_parse_header(buf, len, where, &h, err, errlen))
        return false;
    bool is_unsigned = false;
    size_t size = dtype_size(h.descr, &out->type, &is_unsigned);
    if (h.descr[0] == '>' && h.descr[1])
        return ir_file_error(where, err, errlen, "big-endian data is not supported (dtype '%s')",
                        h.descr);
    if (!size)
        return ir_file_error(where, err, errlen,
                        "dtype '%s' is not supported; expected float or integer numbers",
                        h.descr);
    if (h.fortran)
        return ir_file_error(where, err, errlen, "fortran_order arrays are not supported");
    int64_t numel = 1, need;
    for (int32_t i = 0; i < h.rank; i++)
        if (__builtin_mul_overflow(numel, h.dims[i], &numel))
            return ir_file_error(where, err, errlen, "shape is too large");
    if (__builtin_mul_overflow(numel, (int64_t)size, &need) ||
        (uint64_t)need != len - h.data_offset)
        return ir_file_error(where, err, errlen, "holds %llu bytes of data, shape needs %lld",
                        (unsigned long long)(len - h.data_offset), (long long)need);
    size_t elem = out->type == NPZ_F32 ? sizeof(float) : sizeof(int64_t);
    out->data = ir_xmalloc((size_t)numel * elem + 1);
    const unsigned char *src = buf + h.data_offset;
    for (int64_t i = 0; i < numel; i++, src += size) {
        if (out->type == NPZ_F32)
            ((float *)out->data)[i] = load_float(src, size);
        else
            ((int64_t *)out->data)[i] = load_int(src, size, is_unsigned);
    }
    snprintf(out->descr, sizeof out->descr, "%s", h.descr);
    out->rank = h.rank;
    memcpy(out->dims, h.dims, sizeof h.dims);
    out->numel = numel;
    return true;
}

bool npz_read(Npz *z, const char *name, NpzArray *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    zip_int64_t index = locate(z, name);
    if (index < 0)
        return ir_file_error(z->path, err, errlen, "no array '%s' (%s.npy) in the archive", name,
                        name);
    size_t len = 0;
    unsigned char *buf = read_member(z, index, name, &len, err, errlen);
    if (!buf)
        return false;
    bool ok = decode(z, name, buf, len, out, err, errlen);
    free(buf);
    return ok;
}
