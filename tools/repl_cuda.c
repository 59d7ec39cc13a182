/* repl_cuda.c: :cuda and :ptx, the GPU code of one node's kernel. The network is
 * compiled for the CUDA backend as `cnnc --emit=cuda` compiles it (the passes on
 * plain layouts, sm_80, TF32), and the kernel implementing the node is cut from
 * the program's CUDA C, or from the PTX NVRTC makes of it. */
#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "repl.h"

struct ReplCuda {
    Graph *g;
    CuProgram *p;
    char *ptx; /* made by the first :ptx */
};

void repl_cuda_free(Repl *r)
{
    if (!r->cuda) return;
    if (r->cuda->p) cg_cuda_free(r->cuda->p);
    if (r->cuda->g) ir_graph_free(r->cuda->g);
    free(r->cuda->ptx);
    free(r->cuda);
    r->cuda = NULL;
}

static ReplCuda *cuda_program(Repl *r, const char *cmd)
{
    if (r->cuda) return r->cuda;
    Graph *src = repl_source(r, cmd);
    if (!src) return NULL;
    ReplCuda *c = ir_xcalloc(1, sizeof *c);
    c->g = ir_graph_clone(src);
    PassOptions po;
    pass_options_init(&po);
    po.disabled = r->disabled;
    ReplDiag rd;
    Diag *d = repl_diag_open(&rd);
    CuTarget t = {CU_DEFAULT_ARCH, CU_MATH_TF32};
    if (pass_run_pipeline(c->g, &po, d)) c->p = cg_cuda_generate(c->g, &t, d);
    bool ok = repl_diag_close(r, &rd, cmd) && c->p;
    r->cuda = c;
    if (!ok) repl_cuda_free(r);
    return r->cuda;
}

/* The kernel of node `name`, or NULL after saying why there is none. */
static const CuKernel *find_kernel(Repl *r, const char *cmd, const ReplCuda *c,
                                   const char *name)
{
    for (int32_t i = 0; i < c->p->nkernels; i++)
        if (!strcmp(c->p->kernels[i].name, name)) return &c->p->kernels[i];
    if (ir_find_node(c->g, name) >= 0)
        repl_fail(r, cmd, "node '%s' has no kernel of its own: it is an input, a parameter or "
                  "a view of another value", name);
    else if (r->src && ir_find_node(r->src, name) >= 0)
        repl_fail(r, cmd, "node '%s' has no kernel: the passes fused it into another node or "
                  "removed it", name);
    else
        repl_fail(r, cmd, "no node '%s'", name);
    return NULL;
}

/* The start of the line holding `what` (`what` followed by '('), or NULL. */
static const char *line_with(const char *text, const char *what)
{
    size_t n = strlen(what);
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what)) {
        if (p[n] != '(' || (p > text && p[-1] != ' ')) continue;
        while (p > text && p[-1] != '\n') p--;
        return p;
    }
    return NULL;
}

/* Lines from `start` through the first "}" alone on its line. */
static void print_through_brace(const char *start)
{
    const char *end = strstr(start, "\n}");
    int n = end ? (int)(end - start) + 2 : (int)strlen(start);
    printf("%.*s\n", n, start);
}

static void print_launch(const CuKernel *k)
{
    printf("// %s (%s): grid %u x %u x %u, block %u x %u x %u\n", k->name, k->op, k->grid[0],
           k->grid[1], k->grid[2], k->block[0], k->block[1], k->block[2]);
}

/* The kernels after `k` that implement the same node (a split-K sum). */
static const CuKernel *node_end(const ReplCuda *c, const CuKernel *k)
{
    const CuKernel *end = k;
    while (end < c->p->kernels + c->p->nkernels && !strcmp(end->name, k->name)) end++;
    return end;
}

bool repl_cmd_cuda(Repl *r, const ReplArgs *a)
{
    if (a->argc != 1) return repl_fail(r, a->cmd, "expected a node name");
    ReplCuda *c = cuda_program(r, a->cmd);
    const CuKernel *k = c ? find_kernel(r, a->cmd, c, a->argv[0]) : NULL;
    if (!k) return false;
    for (const CuKernel *end = node_end(c, k); k < end; k++) {
        const char *start = line_with(c->p->source, k->symbol);
        if (!start) return repl_fail(r, a->cmd, "'%s' is not in the source", k->symbol);
        print_launch(k);
        const char *head = start;
        if (head > c->p->source + 1) /* the "// node: ..." line above */
            for (head = start - 1; head > c->p->source && head[-1] != '\n'; head--) continue;
        print_through_brace(strncmp(head, "// node:", 8) ? start : head);
    }
    return true;
}

static const char *ptx_text(Repl *r, const char *cmd, ReplCuda *c)
{
    if (c->ptx) return c->ptx;
    char err[16384];
    CuBinary b;
    if (!cg_cuda_compile(c->p, false, &b, err, sizeof err))
        return repl_fail(r, cmd, "%s", err), NULL;
    size_t n = strlen(b.ptx) + 1;
    c->ptx = memcpy(ir_xmalloc(n), b.ptx, n);
    cg_cuda_binary_free(&b);
    return c->ptx;
}

bool repl_cmd_ptx(Repl *r, const ReplArgs *a)
{
    if (a->argc != 1) return repl_fail(r, a->cmd, "expected a node name");
    if (!cg_cuda_have_nvrtc())
        return repl_fail(r, a->cmd, "this cnnc was built without NVRTC, so it cannot make PTX "
                         "(:cuda shows the CUDA C)");
    ReplCuda *c = cuda_program(r, a->cmd);
    const CuKernel *k = c ? find_kernel(r, a->cmd, c, a->argv[0]) : NULL;
    const char *ptx = k ? ptx_text(r, a->cmd, c) : NULL;
    if (!ptx) return false;
    for (const CuKernel *end = node_end(c, k); k < end; k++) {
        const char *start = line_with(ptx, k->symbol);
        if (!start) return repl_fail(r, a->cmd, "'%s' is not in the PTX", k->symbol);
        print_launch(k);
        print_through_brace(start);
    }
    return true;
}
