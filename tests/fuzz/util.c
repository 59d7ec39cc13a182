/* util.c: helpers of the harnesses (fuzz.h). Inputs that are files live in an
 * anonymous memory file, reached through /proc/self/fd. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

char *fuzz_cstring(const uint8_t *data, size_t size)
{
    char *s = ir_xmalloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

const char *fuzz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-input", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
        perror("writing the input file");
        abort();
    }
    return path;
}

char *fuzz_print(const Graph *g)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        abort();
    ir_print(g, f);
    fclose(f);
    return text;
}

void fuzz_round_trip(const Graph *g)
{
    char *text = fuzz_print(g);
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *back = ir_parse_text("printed.ir", text, &d);
    if (!back) {
        fprintf(stderr, "the printed graph does not parse back:\n%s", text);
        abort();
    }
    char *again = fuzz_print(back);
    if (strcmp(text, again) != 0) {
        fprintf(stderr, "printed:\n%s\nparsed and printed again:\n%s", text, again);
        abort();
    }
    free(again);
    ir_graph_free(back);
    ir_diag_fini(&d);
    free(text);
}
