/* print.c: the text form of the IR, one node per line. ir_parse_text reads
 * it back exactly, so passes are tested with before/after text files:
 *
 *   graph lenet {
 *     %0 = input "image" : f32[1,1,28,28]
 *     %1 = param "conv1.weight" : f32[6,1,5,5]
 *     %2 = conv2d(%0, %1) {kernel=[5,5], stride=[1,1], ...} "conv1" : f32[1,6,24,24]
 *     return %2 "out"
 *   }
 */
#include "ir.h"

#include <ctype.h>
#include <string.h>

/* Names are quoted; quotes, backslashes and control bytes are escaped. */
static void print_string(const char *s, FILE *out)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static bool is_ident(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '.'))
            return false;
    return true;
}

static void print_field(const Attrs *a, const AttrField *f, FILE *out)
{
    const char *base = (const char *)a + f->offset;
    if (f->count > 1)
        fputc('[', out);
    for (int32_t i = 0; i < f->count; i++) {
        if (i)
            fputc(',', out);
        if (f->type == AF_INT)
            fprintf(out, "%d", (int)((const int32_t *)(const void *)base)[i]);
        else if (f->type == AF_FLOAT)
            fprintf(out, "%.9g", (double)((const float *)(const void *)base)[i]);
        else if (f->type == AF_ACT)
            fputs(ir_act_name(((const Op *)(const void *)base)[i]), out);
        else
            fputs(((const bool *)(const void *)base)[i] ? "true" : "false", out);
    }
    if (f->count > 1)
        fputc(']', out);
}

static size_t field_bytes(const AttrField *f)
{
    size_t one = f->type == AF_INT ? sizeof(int32_t) : f->type == AF_FLOAT ? sizeof(float)
               : f->type == AF_ACT ? sizeof(Op) : sizeof(bool);
    return one * (size_t)f->count;
}

/* Optional fields (a fused epilogue) are left out at their defaults, so the
 * text of an unfused graph is what it was before epilogues existed. */
static void print_attrs(const Node *n, FILE *out)
{
    AttrKind kind = ir_ops[n->op].attrs;
    Attrs def;
    bool first = true;
    if (kind == AK_NONE)
        return;
    ir_attrs_default(n->op, &def);
    for (int32_t i = 0; i < ir_nattr_fields; i++) {
        const AttrField *f = &ir_attr_fields[i];
        if (f->kind != kind || (f->optional && memcmp((const char *)&n->attrs + f->offset,
                                                      (const char *)&def + f->offset,
                                                      field_bytes(f)) == 0))
            continue;
        fprintf(out, "%s%s=", first ? " {" : ", ", f->name);
        print_field(&n->attrs, f, out);
        first = false;
    }
    if (!first)
        fputc('}', out);
}

static void print_node(const Graph *g, int32_t id, FILE *out)
{
    const Node *n = &g->nodes[id];
    char type[160];
    fprintf(out, "  %%%d = %s", (int)id, ir_ops[n->op].name);
    if (n->op != OP_INPUT && n->op != OP_PARAM) {
        fputc('(', out);
        for (int32_t i = 0; i < n->ninputs; i++)
            fprintf(out, "%s%%%d", i ? ", " : "", (int)n->inputs[i]);
        fputc(')', out);
    }
    print_attrs(n, out);
    if (n->name) {
        fputc(' ', out);
        print_string(n->name, out);
    }
    fprintf(out, " : %s\n", ir_type_str(&n->type, type, sizeof type));
}

void ir_print(const Graph *g, FILE *out)
{
    const char *name = g->name ? g->name : "graph";
    fputs("graph ", out);
    if (is_ident(name))
        fputs(name, out);
    else
        print_string(name, out);
    fputs(" {\n", out);
    for (int32_t i = 0; i < g->nnodes; i++)
        print_node(g, i, out);
    for (int32_t i = 0; i < g->noutputs; i++) {
        fprintf(out, "  return %%%d ", (int)g->outputs[i].node);
        print_string(g->outputs[i].name ? g->outputs[i].name : "", out);
        fputc('\n', out);
    }
    fputs("}\n", out);
}
