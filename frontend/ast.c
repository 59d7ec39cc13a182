/* ast.c: allocation of syntax tree nodes and a compact s-expression printer,
 * used by the tests to pin down what the parser builds (precedence, the
 * newline rules) without going through elaboration. */
#include "ast.h"

#include <string.h>

void *ast_grow(Arena *a, void *items, int32_t n, int32_t *cap, size_t elem)
{
    if (n < *cap)
        return items;
    int32_t c = *cap ? *cap * 2 : 4;
    void *p = ir_alloc(a, (size_t)c * elem);
    if (n)
        memcpy(p, items, (size_t)n * elem);
    *cap = c;
    return p;
}

Expr *ast_expr(Arena *a, ExprKind kind, SrcLoc loc)
{
    Expr *e = ir_alloc(a, sizeof *e);
    e->kind = kind;
    e->loc = loc;
    return e;
}

Stmt *ast_stmt(Arena *a, StmtKind kind, SrcLoc loc)
{
    Stmt *s = ir_alloc(a, sizeof *s);
    s->kind = kind;
    s->loc = loc;
    return s;
}

const char *ast_operator_name(Operator op)
{
    static const char *const names[] = {
        [OPR_ADD] = "+", [OPR_SUB] = "-",  [OPR_MUL] = "*",  [OPR_DIV] = "/",
        [OPR_FLOORDIV] = "//", [OPR_MOD] = "%", [OPR_EQ] = "==", [OPR_NE] = "!=",
        [OPR_LT] = "<",  [OPR_LE] = "<=", [OPR_GT] = ">",  [OPR_GE] = ">=",
        [OPR_AND] = "and", [OPR_OR] = "or", [OPR_NEG] = "-", [OPR_NOT] = "not",
    };
    return names[op];
}

static void print_call(const Expr *e, FILE *out)
{
    fprintf(out, "(call %s", e->call.callee);
    for (int32_t i = 0; i < e->call.args.n; i++) {
        const Arg *a = &e->call.args.items[i];
        fputc(' ', out);
        if (a->name)
            fprintf(out, "%s=", a->name);
        ast_print_expr(a->value, out);
    }
    fputc(')', out);
}

const char *ast_name_problem(const char *name)
{
    if (!*name)
        return "is empty";
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.')
            return "contains '.': a name is one segment of a path, and '.' joins them";
        if (c <= ' ' || c == 0x7f)
            return "contains a space or a control character";
        if (strchr("\"'\\{}", c))
            return "contains one of \" ' \\ { }";
    }
    return NULL;
}

/* A name as written: a quoted one in quotes. */
static void print_name(const char *name, const ExprList *parts, FILE *out)
{
    if (!parts->n) {
        fprintf(out, "%s", name);
        return;
    }
    fputs("(name", out);
    for (int32_t i = 0; i < parts->n; i++) {
        fputc(' ', out);
        ast_print_expr(parts->items[i], out);
    }
    fputc(')', out);
}

static void print_sequence(const Expr *e, FILE *out)
{
    fputs("(sequence", out);
    if (e->seq.name) {
        fputc(' ', out);
        print_name(e->seq.name, &e->seq.name_parts, out);
    }
    if (e->seq.input) {
        fputc(' ', out);
        ast_print_expr(e->seq.input, out);
    }
    fputc(' ', out);
    ast_print_stmts(&e->seq.body, out);
    fputc(')', out);
}

void ast_print_expr(const Expr *e, FILE *out)
{
    switch (e->kind) {
    case E_INT: fprintf(out, "%lld", (long long)e->i); break;
    case E_FLOAT: fprintf(out, "%g", e->f); break;
    case E_STRING: fprintf(out, "\"%s\"", e->s); break;
    case E_BOOL: fputs(e->b ? "true" : "false", out); break;
    case E_NONE: fputs("none", out); break;
    case E_IDENT: fputs(e->s, out); break;
    case E_LIST:
        fputc('[', out);
        for (int32_t i = 0; i < e->items.n; i++) {
            if (i)
                fputc(' ', out);
            ast_print_expr(e->items.items[i], out);
        }
        fputc(']', out);
        break;
    case E_CALL: print_call(e, out); break;
    case E_UNARY:
        fprintf(out, "(%s ", ast_operator_name(e->bin.op));
        ast_print_expr(e->bin.lhs, out);
        fputc(')', out);
        break;
    case E_BINARY:
        fprintf(out, "(%s ", ast_operator_name(e->bin.op));
        ast_print_expr(e->bin.lhs, out);
        fputc(' ', out);
        ast_print_expr(e->bin.rhs, out);
        fputc(')', out);
        break;
    case E_COND:
        fputs("(? ", out);
        ast_print_expr(e->cond.cond, out);
        fputc(' ', out);
        ast_print_expr(e->cond.then, out);
        fputc(' ', out);
        ast_print_expr(e->cond.els, out);
        fputc(')', out);
        break;
    case E_INDEX:
        fputs("(index ", out);
        ast_print_expr(e->index.base, out);
        fputc(' ', out);
        ast_print_expr(e->index.index, out);
        fputc(')', out);
        break;
    case E_AS:
        fputs("(as ", out);
        ast_print_expr(e->as.inner, out);
        fputc(' ', out);
        print_name(e->as.name, &e->as.parts, out);
        fputc(')', out);
        break;
    case E_SEQUENCE: print_sequence(e, out); break;
    case E_REPEAT:
        fputs("(repeat ", out);
        ast_print_expr(e->repeat.count, out);
        if (e->repeat.from) {
            fputs(" from ", out);
            ast_print_expr(e->repeat.from, out);
        }
        fputc(' ', out);
        ast_print_expr(e->repeat.call, out);
        fputc(')', out);
        break;
    }
}

static void print_stmt(const Stmt *s, FILE *out)
{
    switch (s->kind) {
    case S_ASSIGN:
        fprintf(out, "(= %s ", s->assign.name);
        ast_print_expr(s->assign.value, out);
        fputc(')', out);
        break;
    case S_IF:
        fputs("(if ", out);
        ast_print_expr(s->if_.cond, out);
        fputc(' ', out);
        ast_print_stmts(&s->if_.then, out);
        if (s->if_.els.n) {
            fputs(" else ", out);
            ast_print_stmts(&s->if_.els, out);
        }
        fputc(')', out);
        break;
    case S_FOR:
        fprintf(out, "(for %s ", s->for_.var);
        ast_print_expr(s->for_.iter, out);
        fputc(' ', out);
        ast_print_stmts(&s->for_.body, out);
        fputc(')', out);
        break;
    case S_RETURN:
        fputs("(return", out);
        for (int32_t i = 0; i < s->ret.n; i++) {
            fputc(' ', out);
            ast_print_expr(s->ret.items[i], out);
        }
        fputc(')', out);
        break;
    case S_EXPR: ast_print_expr(s->expr, out); break;
    }
}

void ast_print_stmts(const StmtList *l, FILE *out)
{
    fputc('{', out);
    for (int32_t i = 0; i < l->n; i++) {
        if (i)
            fputs("; ", out);
        print_stmt(l->items[i], out);
    }
    fputc('}', out);
}

void ast_print_file(const AstFile *f, FILE *out)
{
    for (int32_t i = 0; i < f->includes.n; i++)
        fprintf(out, "include \"%s\"\n", f->includes.items[i].path);
    for (int32_t i = 0; i < f->blocks.n; i++) {
        const BlockDef *b = f->blocks.items[i];
        fprintf(out, "block %s(", b->name);
        for (int32_t k = 0; k < b->params.n; k++) {
            fprintf(out, "%s%s", k ? ", " : "", b->params.items[k].name);
            if (b->params.items[k].def) {
                fputc('=', out);
                ast_print_expr(b->params.items[k].def, out);
            }
        }
        fputs(") ", out);
        ast_print_stmts(&b->body, out);
        fputc('\n', out);
    }
    for (int32_t i = 0; i < f->networks.n; i++) {
        const NetworkDef *n = f->networks.items[i];
        fprintf(out, "network %s(", n->name);
        for (int32_t k = 0; k < n->inputs.n; k++) {
            const InputDecl *in = &n->inputs.items[k];
            fprintf(out, "%s%s: %s[", k ? ", " : "", in->name, in->dtype);
            for (int32_t j = 0; j < in->dims.n; j++) {
                const Dim *dm = &in->dims.items[j];
                fprintf(out, "%s%s%s%lld", j ? ", " : "", dm->sym ? dm->sym : "",
                        dm->sym ? "=" : "", (long long)dm->value);
            }
            fputc(']', out);
        }
        fputs(") ", out);
        ast_print_stmts(&n->body, out);
        fputc('\n', out);
    }
}
