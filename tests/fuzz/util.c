/* util.c: helpers of the harnesses (fuzz.h). Inputs that are files live in an
 * anonymous memory file, reached through /proc/self/fd. A round trip through
 * the IR text must give back the same graph and the same text. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"

#include <math.h>
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

static bool same_string(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Attribute fields compared one by one (the union's other bytes are not
 * values); NaNs of any payload are equal, as the text has one "nan". */
static bool same_attrs(const Node *a, const Node *b)
{
    AttrKind kind = ir_ops[a->op].attrs;
    for (int32_t i = 0; i < ir_nattr_fields; i++) {
        const AttrField *f = &ir_attr_fields[i];
        const char *x = (const char *)&a->attrs + f->offset;
        const char *y = (const char *)&b->attrs + f->offset;
        for (int32_t k = 0; f->kind == kind && k < f->count; k++) {
            if (f->type == AF_FLOAT) {
                float u = ((const float *)(const void *)x)[k];
                float v = ((const float *)(const void *)y)[k];
                if (!(u == v || (u != u && v != v)) || (u == 0 && signbit(u) != signbit(v)))
                    return false;
            } else if (f->type == AF_INT || f->type == AF_ACT) {
                if (((const int32_t *)(const void *)x)[k] != ((const int32_t *)(const void *)y)[k])
                    return false;
            } else if (((const bool *)(const void *)x)[k] != ((const bool *)(const void *)y)[k]) {
                return false;
            }
        }
    }
    return true;
}

/* What the text form holds: everything but weights, locations and plans. */
static bool same_graph(const Graph *a, const Graph *b)
{
    if (a->nnodes != b->nnodes || a->noutputs != b->noutputs ||
        !same_string(a->name ? a->name : "graph", b->name))
        return false;
    for (int32_t i = 0; i < a->nnodes; i++) {
        const Node *x = &a->nodes[i], *y = &b->nodes[i];
        if (x->op != y->op || x->ninputs != y->ninputs || !same_string(x->name, y->name) ||
            !ir_type_eq(&x->type, &y->type) || !same_attrs(x, y) ||
            (x->ninputs && memcmp(x->inputs, y->inputs, (size_t)x->ninputs * sizeof *x->inputs)))
            return false;
    }
    for (int32_t i = 0; i < a->noutputs; i++)
        if (a->outputs[i].node != b->outputs[i].node ||
            !same_string(a->outputs[i].name ? a->outputs[i].name : "", b->outputs[i].name))
            return false;
    return true;
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
    if (!same_graph(g, back)) {
        fprintf(stderr, "the graph parsed back differs from the one printed:\n%s", text);
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
