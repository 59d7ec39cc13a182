/* tempfile.c: the temporary files cnnc writes (outputs on their way to their
 * name, objects for the linker), registered so that whatever ends the process
 * early (a fatal error inside LLVM, a signal) can remove them first. */
#include "ir.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A few exist at once: an output, or the object, data and output files of a link. */
#define MAX_TEMPS 16

/* malloc'd paths, NULL for a free slot. A slot is set only once its path is
 * complete, so ir_temp_remove_all may run at any point in between. */
static char *volatile temps[MAX_TEMPS];

static int register_fd(const char *path, int fd)
{
    if (fd < 0) return fd;
    for (int i = 0; i < MAX_TEMPS; i++)
        if (!temps[i]) {
            temps[i] = ir_xstrdup(path);
            return fd;
        }
    ICE("more than %d temporary files at once", MAX_TEMPS);
}

int ir_temp_create(char *tmpl)
{
    return register_fd(tmpl, mkstemp(tmpl));
}

int ir_temp_open(const char *path)
{
    return register_fd(path, open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
}

/* Removed first, forgotten after: a fatal error in between finds nothing left to do. */
void ir_temp_release(const char *path, bool remove)
{
    if (remove) unlink(path);
    for (int i = 0; i < MAX_TEMPS; i++)
        if (temps[i] && !strcmp(temps[i], path)) {
            char *p = temps[i];
            temps[i] = NULL;
            free(p);
            return;
        }
}

void ir_temp_remove_all(void)
{
    for (int i = 0; i < MAX_TEMPS; i++)
        if (temps[i]) unlink(temps[i]);
}

bool ir_write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Removes the temporaries, then lets the signal do what it would have done. */
static void on_signal(int sig)
{
    int saved = errno;
    ir_temp_remove_all();
    raise(sig); /* SA_RESETHAND: the default action now */
    errno = saved;
}

static void remove_all_at_exit(void)
{
    ir_temp_remove_all();
}

void ir_temp_remove_on_exit(void)
{
    static const int sigs[] = {SIGHUP, SIGINT, SIGTERM, SIGABRT};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = (int)(SA_RESETHAND | SA_NODEFER);
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        /* A signal the parent chose to ignore (nohup, a background job) stays ignored. */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(sigs[i], &sa, NULL);
    }
    atexit(remove_all_at_exit);
}
