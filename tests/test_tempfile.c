/* test_tempfile.c: registered temporary files are removed however the process
 * ends (exit, abort, a fatal-error handler), and ir_write_atomic reports a full
 * device or a file-size limit and leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ir.h"
#include "support.h"

static char dir[256];

static int entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    return n;
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cnnc-test-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

static int new_temp(char *path, size_t n)
{
    snprintf(path, n, "%s/t-XXXXXX", dir);
    int fd = ir_temp_create(path);
    assert_true(fd >= 0);
    assert_true(ir_write_all(fd, "data", 4));
    return close(fd);
}

static void test_remove_all(void **state)
{
    (void)state;
    char kept[512], gone[512], left[512], renamed[600];
    new_temp(kept, sizeof kept);
    new_temp(gone, sizeof gone);
    new_temp(left, sizeof left);
    snprintf(renamed, sizeof renamed, "%s/out", dir);
    assert_int_equal(rename(kept, renamed), 0);
    ir_temp_release(kept, false);
    ir_temp_release(gone, true);
    assert_int_equal(entries(), 2);
    ir_temp_remove_all(); /* what a fatal-error handler does */
    assert_int_equal(entries(), 1);
    assert_int_equal(access(renamed, F_OK), 0);
    ir_temp_release(left, true);
    assert_int_equal(unlink(renamed), 0);
}

/* A child that makes a temporary and ends by `how`; its status. */
static int child_ending(void (*how)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char path[512];
        ir_temp_remove_on_exit();
        new_temp(path, sizeof path);
        how();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void by_exit(void)
{
    exit(1);
}

static void by_abort(void)
{
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none); /* no core file in the test's folder */
    abort();
}

static void test_removed_on_exit_and_abort(void **state)
{
    (void)state;
    int status = child_ending(by_exit);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    assert_int_equal(entries(), 0);
    status = child_ending(by_abort);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    assert_int_equal(entries(), 0);
}

static bool emit_64k(FILE *f, void *ctx)
{
    (void)ctx;
    static const char block[4096];
    for (int i = 0; i < 16; i++)
        if (fwrite(block, 1, sizeof block, f) != sizeof block) return false;
    return true;
}

static void test_full_device(void **state)
{
    (void)state;
    char err[512] = "";
    assert_false(ir_write_atomic("/dev/full", emit_64k, NULL, err, sizeof err));
    assert_string_equal(err, "/dev/full: cannot write: No space left on device");
}

/* Past RLIMIT_FSIZE a write fails with EFBIG, as on a full disk with ENOSPC. */
static void test_file_size_limit(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/big", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[512] = "", want[600];
        struct rlimit r = {8192, 8192};
        signal(SIGXFSZ, SIG_IGN);
        bool ok = setrlimit(RLIMIT_FSIZE, &r) == 0 &&
                  !ir_write_atomic(path, emit_64k, NULL, err, sizeof err);
        snprintf(want, sizeof want, "%s: cannot write: %s", path, strerror(EFBIG));
        _exit(ok && !strcmp(err, want) ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(entries(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remove_all),
        cmocka_unit_test(test_removed_on_exit_and_abort),
        cmocka_unit_test(test_full_device),
        cmocka_unit_test(test_file_size_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
