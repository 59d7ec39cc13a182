/* ptx.c: PTX made readable: each kernel's entry headed by the IR nodes that
 * run it, as the CUDA C is. */
#include <string.h>

#include "cu.h"

/* The nodes running `symbol`, joined by ", ", added to `t`. */
static void nodes_of(const CuProgram *p, const char *symbol, CuText *t)
{
    int32_t n = 0;
    for (int32_t i = 0; i < p->nkernels; i++)
        if (!strcmp(p->kernels[i].symbol, symbol))
            cu_text_add(t, "%s%s (%s)", n++ ? ", " : "", p->kernels[i].name, p->kernels[i].op);
}

/* The symbol of an `.entry NAME(` line, copied into buf; false for other lines. */
static bool entry_symbol(const char *line, size_t len, char *buf, size_t n)
{
    const char *e = strstr(line, ".entry ");
    if (!e || e >= line + len) return false;
    e += 7;
    size_t k = 0;
    while (e + k < line + len && e[k] != '(' && e[k] != ' ' && k + 1 < n) {
        buf[k] = e[k];
        k++;
    }
    buf[k] = 0;
    return k > 0;
}

char *cg_cuda_annotate_ptx(const CuProgram *p, const char *ptx)
{
    CuText t = {0};
    cu_text_add(&t, "%s", "");
    for (const char *line = ptx; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) + 1 : strlen(line);
        char sym[256];
        if (entry_symbol(line, len, sym, sizeof sym)) {
            cu_text_add(&t, "\n// node: ");
            nodes_of(p, sym, &t);
            cu_text_add(&t, "\n");
        }
        cu_text_add(&t, "%.*s", (int)len, line);
        line += len;
    }
    return t.s;
}
