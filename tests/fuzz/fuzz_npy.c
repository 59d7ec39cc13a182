/* fuzz_npy.c: the .npy reader (support/npy.c), from a file or, for inputs of odd
 * size, from a pipe (cnnrun --input /dev/stdin), whose size is known only at
 * its end. */
#include "fuzz.h"
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The input in a pipe: max_len stays under a pipe's buffer, so it fits whole. */
static const char *pipe_file(const uint8_t *data, size_t size, int *fd)
{
    static char path[64];
    int p[2];
    if (pipe(p) != 0 || write(p[1], data, size) != (ssize_t)size) {
        perror("writing the input to a pipe");
        abort();
    }
    close(p[1]);
    *fd = p[0];
    snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    NpyArray a;
    char err[256];
    int fd = -1;
    const char *path = size % 2 ? pipe_file(data, size, &fd) : fuzz_file(data, size);
    if (ir_npy_read(path, &a, err, sizeof err))
        free(a.data);
    if (fd >= 0)
        close(fd);
    return 0;
}
