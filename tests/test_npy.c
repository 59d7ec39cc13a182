/* test_npy.c: reading the numpy files in tests/data/npy (written by numpy
 * through make.py there), from files and from pipes, rejecting the unsupported
 * ones with their message, and writing files numpy would write, atomically. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ir.h"
#include "support.h"

#define DATA CNNC_SOURCE_DIR "/tests/data/npy/"

static void read_ok(const char *name, int32_t rank, const int64_t *dims, const float *want,
                    int64_t n, float tol)
{
    NpyArray a;
    char err[512] = "";
    bool ok = ir_npy_read(name, &a, err, sizeof err);
    if (!ok)
        print_error("%s\n", err);
    assert_true(ok);
    assert_int_equal(a.rank, rank);
    for (int32_t i = 0; i < rank; i++)
        assert_int_equal(a.dims[i], dims[i]);
    assert_non_null(a.data);
    for (int64_t i = 0; i < n; i++)
        assert_float_equal(a.data[i], want[i], tol);
    free(a.data);
}

static void test_read_f32_v1(void **state)
{
    static const float want[] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
    read_ok(DATA "f32_v1.npy", 2, (int64_t[]){2, 3}, want, 6, 0.0f);
}

static void test_read_v2_and_v3(void **state)
{
    static const float v2[] = {-2.0f, -1.0f, 0.0f, 1.0f, 2.0f};
    static const float v3[] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
    read_ok(DATA "f32_v2.npy", 1, (int64_t[]){5}, v2, 5, 0.0f);
    read_ok(DATA "f32_v3.npy", 3, (int64_t[]){1, 2, 3}, v3, 6, 0.0f);
}

static void test_read_f64_converted(void **state)
{
    static const float want[] = {1.5f, -2.25f, 1e-3f, 3.0f};
    read_ok(DATA "f64.npy", 2, (int64_t[]){2, 2}, want, 4, 1e-9f);
}

static void test_read_f16_converted(void **state)
{
    /* 2^-24 is the smallest f16 subnormal. */
    static const float want[] = {1.0f, -0.5f, 65504.0f, 5.9604644775390625e-8f};
    read_ok(DATA "f16.npy", 1, (int64_t[]){5}, want, 4, 0.0f);
    NpyArray a;
    char err[256];
    assert_true(ir_npy_read(DATA "f16.npy", &a, err, sizeof err));
    assert_true(isinf(a.data[4]) && a.data[4] > 0);
    free(a.data);
}

static void test_read_scalar_empty_and_vector(void **state)
{
    static const float scalar[] = {3.5f}, vec[] = {0.25f, 1.25f, 2.25f, 3.25f, 4.25f};
    read_ok(DATA "scalar.npy", 0, NULL, scalar, 1, 0.0f);
    read_ok(DATA "empty.npy", 2, (int64_t[]){0, 4}, NULL, 0, 0.0f);
    read_ok(DATA "vec5.npy", 1, (int64_t[]){5}, vec, 5, 0.0f);
}

static void test_read_unusual_header(void **state)
{
    /* keys out of order, double quotes, spaces around every token, trailing comma */
    static const float want[] = {7.0f, 8.0f, 9.0f};
    read_ok(DATA "odd_header.npy", 1, (int64_t[]){3}, want, 3, 0.0f);
}

/* Reads `file` through a pipe (as /dev/stdin would be read): all its bytes
 * but the last `cut`, then `extra`. */
static bool read_piped(const char *file, size_t cut, const char *extra, NpyArray *a, char *err,
                       size_t errlen)
{
    FILE *f = fopen(file, "rb");
    assert_non_null(f);
    static char bytes[4096];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    assert_true(n > cut && n < sizeof bytes);
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        bool ok = write(fd[1], bytes, n - cut) == (ssize_t)(n - cut) &&
                  write(fd[1], extra, strlen(extra)) == (ssize_t)strlen(extra);
        _exit(ok ? 0 : 1);
    }
    close(fd[1]);
    char path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", fd[0]);
    bool ok = ir_npy_read(path, a, err, errlen);
    close(fd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return ok;
}

/* A pipe has no size: its data is read to the end and then checked. */
static void test_read_from_pipe(void **state)
{
    static const float f32[] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
    static const float f64[] = {1.5f, -2.25f, 1e-3f, 3.0f};
    NpyArray a;
    char err[512] = "";
    assert_true(read_piped(DATA "f32_v1.npy", 0, "", &a, err, sizeof err));
    assert_int_equal(a.rank, 2);
    assert_true(a.dims[0] == 2 && a.dims[1] == 3);
    assert_memory_equal(a.data, f32, sizeof f32);
    free(a.data);
    assert_true(read_piped(DATA "f64.npy", 0, "", &a, err, sizeof err));
    for (int i = 0; i < 4; i++)
        assert_float_equal(a.data[i], f64[i], 1e-9f);
    free(a.data);
    assert_true(read_piped(DATA "empty.npy", 0, "", &a, err, sizeof err));
    assert_int_equal(a.dims[0], 0);
    free(a.data);
    assert_false(read_piped(DATA "f32_v1.npy", 4, "", &a, err, sizeof err));
    assert_null(a.data);
    assert_non_null(strstr(err, ": file holds 20 bytes of data, shape needs 24"));
    assert_false(read_piped(DATA "f32_v1.npy", 0, "more", &a, err, sizeof err));
    assert_non_null(strstr(err, ": file holds more than 24 bytes of data, shape needs 24"));
    assert_false(read_piped(DATA "f32_v1.npy", 100, "", &a, err, sizeof err));
    assert_non_null(strstr(err, ": truncated .npy header"));
}

static void read_fails(const char *file, const char *message)
{
    NpyArray a;
    char err[512] = "", want[512];
    assert_false(ir_npy_read(file, &a, err, sizeof err));
    assert_null(a.data);
    snprintf(want, sizeof want, "%s: %s", file, message);
    assert_string_equal(err, want);
}

static void test_rejections(void **state)
{
    read_fails(DATA "big_endian.npy", "big-endian data is not supported (dtype '>f4')");
    read_fails(DATA "fortran.npy", "fortran_order arrays are not supported");
    read_fails(DATA "int64.npy", "dtype '<i8' is not supported; expected little-endian float32");
    read_fails(DATA "rank7.npy", "arrays of rank above 6 are not supported");
    read_fails(DATA "truncated.npy", "file holds 20 bytes of data, shape needs 24");
    read_fails(DATA "not_npy.npy", "not a .npy file");
    read_fails(DATA "missing_key.npy", "malformed .npy header: missing key 'fortran_order'");
    read_fails(DATA "no_such_file.npy", "cannot open: No such file or directory");
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = ir_xmalloc(*len + 1);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static char tmpdir[512];

static int make_tmpdir(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/npy-test-XXXXXX", CNNC_BINARY_DIR);
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* Removes what the tests left (plain files and empty folders, one level). */
static int remove_tmpdir(void **state)
{
    return remove_test_dir(tmpdir);
}

/* Our files are byte-for-byte what numpy.save writes for the same array. */
static void write_matches_numpy(const char *numpy_file)
{
    NpyArray a;
    char err[512], out[1024];
    assert_true(ir_npy_read(numpy_file, &a, err, sizeof err));
    snprintf(out, sizeof out, "%s/copy.npy", tmpdir);
    bool ok = ir_npy_write(out, a.data, a.rank, a.dims, err, sizeof err);
    if (!ok)
        print_error("%s\n", err);
    assert_true(ok);
    size_t n1, n2;
    char *want = slurp(numpy_file, &n1), *got = slurp(out, &n2);
    assert_int_equal(n2, n1);
    assert_memory_equal(got, want, n1);
    free(want);
    free(got);
    free(a.data);
}

static void test_write_matches_numpy(void **state)
{
    write_matches_numpy(DATA "f32_v1.npy");
    write_matches_numpy(DATA "vec5.npy");
    write_matches_numpy(DATA "scalar.npy");
    write_matches_numpy(DATA "empty.npy");
}

static void test_write_read_round_trip(void **state)
{
    enum { N = 1000 };
    float *data = ir_xmalloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        data[i] = (float)sin(i * 0.37) * 100.0f;
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/round.npy", tmpdir);
    assert_true(ir_npy_write(path, data, 2, (int64_t[]){1, N}, err, sizeof err));
    NpyArray a;
    assert_true(ir_npy_read(path, &a, err, sizeof err));
    assert_int_equal(a.rank, 2);
    assert_int_equal(a.dims[0], 1);
    assert_int_equal(a.dims[1], N);
    assert_memory_equal(a.data, data, N * sizeof(float));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((st.st_size - N * 4) % 64, 0); /* the data starts 64-byte aligned */
    free(a.data);
    free(data);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* Writing to a device must not rename a temporary file over it. */
static void test_write_to_device(void **state)
{
    (void)state;
    float v[3] = {1, 2, 3};
    int64_t dims[1] = {3};
    char err[256];
    assert_true(ir_npy_write("/dev/null", v, 1, dims, err, sizeof err));
    struct stat st;
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
}

static void test_write_failures_leave_nothing(void **state)
{
    char path[1024], err[512] = "";
    float x = 1.0f;
    snprintf(path, sizeof path, "%s/no/such/dir/x.npy", tmpdir);
    assert_false(ir_npy_write(path, &x, 0, NULL, err, sizeof err));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_non_null(strstr(err, "No such file or directory"));
    /* The rename fails when a folder holds the target name: the data was
     * written to the temporary, which must be removed. */
    snprintf(path, sizeof path, "%s/target", tmpdir);
    assert_int_equal(mkdir(path, 0755), 0);
    int before = count_entries(tmpdir);
    assert_false(ir_npy_write(path, &x, 0, NULL, err, sizeof err));
    assert_int_equal(count_entries(tmpdir), before);
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_int_equal(rmdir(path), 0);
}

static void test_half_conversions(void **state)
{
    assert_true(ir_f16_to_f32(0x3C00) == 1.0f);
    assert_true(ir_f16_to_f32(0xC000) == -2.0f);
    assert_true(ir_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(ir_f16_to_f32(0x03FF) == 1023.0f * ldexpf(1.0f, -24));
    assert_true(ir_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
    assert_true(ir_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(isinf(ir_f16_to_f32(0xFC00)) && ir_f16_to_f32(0xFC00) < 0);
    assert_true(isnan(ir_f16_to_f32(0x7E00)));
    assert_true(signbit(ir_f16_to_f32(0x8000)) && ir_f16_to_f32(0x8000) == 0.0f);
    assert_true(ir_bf16_to_f32(0x3F80) == 1.0f);
    assert_true(ir_bf16_to_f32(0xC0A0) == -5.0f);
    assert_true(isnan(ir_bf16_to_f32(0x7FC0)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_f32_v1),
        cmocka_unit_test(test_read_v2_and_v3),
        cmocka_unit_test(test_read_f64_converted),
        cmocka_unit_test(test_read_f16_converted),
        cmocka_unit_test(test_read_scalar_empty_and_vector),
        cmocka_unit_test(test_read_unusual_header),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_read_from_pipe),
        cmocka_unit_test(test_write_matches_numpy),
        cmocka_unit_test(test_write_read_round_trip),
        cmocka_unit_test(test_write_failures_leave_nothing),
        cmocka_unit_test(test_write_to_device),
        cmocka_unit_test(test_half_conversions),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
