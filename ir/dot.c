/* dot.c: the graph as Graphviz input, for looking at a model. Weights are
 * left out (a conv's box says "+bias" instead); graph inputs and outputs are
 * ellipses, every other node a box, and every edge carries its shape. */
#include "ir.h"

#include <string.h>

#define LABEL_BUF 512

/* Appends `s` to buf, escaping for a double-quoted dot string. */
static void add_escaped(char *buf, size_t n, const char *s)
{
    size_t pos = strlen(buf);
    for (; *s && pos + 2 < n; s++) {
        if (*s == '"' || *s == '\\')
            buf[pos++] = '\\';
        buf[pos++] = *s == '\n' ? ' ' : *s;
    }
    buf[pos] = '\0';
}

static void add_text(char *buf, size_t n, const char *s)
{
    size_t pos = strlen(buf);
    snprintf(buf + pos, n - pos, "%s", s);
}

/* "3×3 /2" for windows; the stride is left out when it is 1. */
static void window_text(const int32_t k[2], const int32_t s[2], char *buf, size_t n)
{
    int len = snprintf(buf, n, "%d\xc3\x97%d", (int)k[0], (int)k[1]);
    if (len < 0 || (size_t)len >= n || (s[0] == 1 && s[1] == 1))
        return;
    if (s[0] == s[1])
        snprintf(buf + len, n - (size_t)len, " /%d", (int)s[0]);
    else
        snprintf(buf + len, n - (size_t)len, " /%d\xc3\x97%d", (int)s[0], (int)s[1]);
}

/* " +bias +relu +add +relu": what a conv2d or dense computes after its sums. */
static void epilogue_text(const Node *n, char *buf, size_t n_buf)
{
    const Epilogue *e = ir_epilogue(n);
    buf[0] = '\0';
    if (!e)
        return;
    if (ir_bias_input(n) >= 0)
        add_text(buf, n_buf, " +bias");
    if (e->act != OP_NO_ACT)
        snprintf(buf + strlen(buf), n_buf - strlen(buf), " +%s", ir_act_name(e->act));
    if (e->residual)
        add_text(buf, n_buf, " +add");
    if (e->post != OP_NO_ACT)
        snprintf(buf + strlen(buf), n_buf - strlen(buf), " +%s", ir_act_name(e->post));
}

static void op_text(const Node *n, char *buf, size_t n_buf)
{
    char win[64] = "", epi[96];
    if (n->op == OP_CONV2D)
        window_text(n->attrs.conv.kernel, n->attrs.conv.stride, win, sizeof win);
    else if (n->op == OP_MAXPOOL || n->op == OP_AVGPOOL)
        window_text(n->attrs.pool.kernel, n->attrs.pool.stride, win, sizeof win);
    epilogue_text(n, epi, sizeof epi);
    int len = snprintf(buf, n_buf, "%s%s%s%s%s", ir_ops[n->op].name, win[0] ? " " : "", win,
                       n->op == OP_CONV2D && n->attrs.conv.groups > 1 ? " grouped" : "", epi);
    if (len >= (int)n_buf && n_buf > 4) memcpy(buf + n_buf - 4, "...", 4); /* cut short */
}

static void print_box(const Graph *g, int32_t id, FILE *out)
{
    const Node *n = &g->nodes[id];
    char label[LABEL_BUF] = "", op[128], type[160];
    add_escaped(label, sizeof label, n->name ? n->name : "");
    add_text(label, sizeof label, "\\n");
    op_text(n, op, sizeof op);
    add_escaped(label, sizeof label, op);
    add_text(label, sizeof label, "\\n");
    add_escaped(label, sizeof label, ir_type_str(&n->type, type, sizeof type));
    fprintf(out, "  n%d [shape=%s, label=\"%s\"];\n", (int)id,
            n->op == OP_INPUT ? "ellipse" : "box", label);
}

static void print_edges(const Graph *g, int32_t id, FILE *out)
{
    const Node *n = &g->nodes[id];
    char dims[160];
    for (int32_t i = 0; i < n->ninputs; i++) {
        const Node *src = &g->nodes[n->inputs[i]];
        if (src->op == OP_PARAM)
            continue;
        fprintf(out, "  n%d -> n%d [label=\"%s\"];\n", (int)n->inputs[i], (int)id,
                ir_dims_str(&src->type, 0, dims, sizeof dims));
    }
}

static void print_outputs(const Graph *g, FILE *out)
{
    char label[LABEL_BUF], dims[160];
    for (int32_t i = 0; i < g->noutputs; i++) {
        const GraphOutput *o = &g->outputs[i];
        label[0] = '\0';
        add_escaped(label, sizeof label, o->name ? o->name : "");
        fprintf(out, "  out%d [shape=ellipse, label=\"%s\"];\n", (int)i, label);
        fprintf(out, "  n%d -> out%d [label=\"%s\"];\n", (int)o->node, (int)i,
                ir_dims_str(&g->nodes[o->node].type, 0, dims, sizeof dims));
    }
}

void ir_print_dot(const Graph *g, FILE *out)
{
    char name[LABEL_BUF] = "";
    add_escaped(name, sizeof name, g->name ? g->name : "graph");
    fprintf(out, "digraph \"%s\" {\n", name);
    fputs("  node [fontname=\"Helvetica\", fontsize=10];\n", out);
    fputs("  edge [fontname=\"Helvetica\", fontsize=9];\n", out);
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op != OP_PARAM)
            print_box(g, i, out);
    for (int32_t i = 0; i < g->nnodes; i++)
        print_edges(g, i, out);
    print_outputs(g, out);
    fputs("}\n", out);
}
