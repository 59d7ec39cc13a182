/* test_npz.c: the .npz reader of cnntrain (tools/npz.c) on the archives of
 * tests/data/npz (written by numpy through make.py there): stored and deflated
 * members, dtypes converted to f32 and int64, and every malformed archive or
 * member refused with its message, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "npz.h"

#define DATA CNNC_SOURCE_DIR "/tests/data/npz/"

/* x of every archive: 4 samples [1, 2, 3], k * 0.25 - 3. */
static void check_x(const NpzArray *x)
{
    assert_int_equal(x->type, NPZ_F32);
    assert_int_equal(x->rank, 4);
    assert_int_equal(x->dims[0], 4);
    assert_int_equal(x->dims[3], 3);
    assert_int_equal(x->numel, 24);
    for (int i = 0; i < 24; i++)
        assert_float_equal(((float *)x->data)[i], i * 0.25f - 3.0f, 0.0f);
}

static Npz *open_ok(const char *path)
{
    char err[512] = "";
    Npz *z = npz_open(path, err, sizeof err);
    if (!z)
        print_error("%s\n", err);
    assert_non_null(z);
    return z;
}

static NpzArray read_ok(Npz *z, const char *name)
{
    NpzArray a;
    char err[512] = "";
    bool ok = npz_read(z, name, &a, err, sizeof err);
    if (!ok)
        print_error("%s\n", err);
    assert_true(ok);
    return a;
}

static void check_classes(const char *file)
{
    static const int64_t want[] = {3, 0, 9, 1};
    Npz *z = open_ok(file);
    assert_true(npz_has(z, "x") && npz_has(z, "y"));
    assert_false(npz_has(z, "z"));
    NpzArray x = read_ok(z, "x"), y = read_ok(z, "y");
    check_x(&x);
    assert_int_equal(y.type, NPZ_I64);
    assert_int_equal(y.rank, 1);
    assert_int_equal(y.dims[0], 4);
    assert_memory_equal(y.data, want, sizeof want);
    free(x.data);
    free(y.data);
    npz_close(z);
}

static void test_stored_and_compressed(void **state)
{
    check_classes(DATA "stored.npz");
    check_classes(DATA "compressed.npz");
}

static void test_conversions(void **state)
{
    static const int64_t y_want[] = {3, 0, 9, 1}, i_want[] = {-7, 2};
    static const float h_want[] = {1.0f, -0.5f, 65504.0f};
    Npz *z = open_ok(DATA "converted.npz");
    NpzArray x = read_ok(z, "x"), y = read_ok(z, "y"), h = read_ok(z, "h"), i = read_ok(z, "i");
    check_x(&x); /* from f64 */
    assert_string_equal(x.descr, "<f8");
    assert_int_equal(y.type, NPZ_I64); /* from u1 */
    assert_memory_equal(y.data, y_want, sizeof y_want);
    assert_int_equal(h.type, NPZ_F32);
    assert_memory_equal(h.data, h_want, sizeof h_want);
    assert_int_equal(i.type, NPZ_I64); /* from i4, negative */
    assert_memory_equal(i.data, i_want, sizeof i_want);
    free(x.data), free(y.data), free(h.data), free(i.data);
    npz_close(z);
}

static void test_float_targets(void **state)
{
    Npz *z = open_ok(DATA "targets.npz");
    NpzArray y = read_ok(z, "y");
    assert_int_equal(y.type, NPZ_F32);
    assert_int_equal(y.rank, 2);
    assert_int_equal(y.dims[1], 2);
    assert_float_equal(((float *)y.data)[7], -1.0f, 0.0f);
    free(y.data);
    npz_close(z);
}

/* Reading `name` of `file` fails, and the message holds `want`. */
static void refused(const char *file, const char *name, const char *want)
{
    char err[512] = "";
    Npz *z = npz_open(file, err, sizeof err);
    if (z) {
        NpzArray a;
        bool ok = npz_read(z, name, &a, err, sizeof err);
        npz_close(z);
        assert_false(ok);
    }
    if (!strstr(err, want) || !strstr(err, file))
        print_error("message '%s' lacks '%s' or the file's name\n", err, want);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, file));
}

static void test_rejections(void **state)
{
    refused(DATA "no_y.npz", "y", "no array 'y' (y.npy)");
    refused(DATA "big_endian.npz", "x", "x: big-endian data is not supported");
    refused(DATA "fortran.npz", "x", "x: fortran_order arrays are not supported");
    refused(DATA "strings.npz", "y", "y: dtype '<U1' is not supported");
    refused(DATA "uint64.npz", "y", "y: dtype '<u8' is not supported");
    refused(DATA "short_member.npz", "x", "x: holds 88 bytes of data, shape needs 96");
    refused(DATA "bad_crc.npz", "x", "x: cannot read the member: CRC error");
    refused(DATA "not_zip.npz", "x", "cannot read as an .npz archive: Not a zip archive");
    refused(DATA "truncated.npz", "x", "cannot read as an .npz archive");
    refused(DATA "missing.npz", "x", "cannot read as an .npz archive: No such file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stored_and_compressed),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_float_targets),
        cmocka_unit_test(test_rejections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
