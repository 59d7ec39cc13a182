/* parse.c: reads the text form that print.c writes, by recursive descent over
 * a small hand-written lexer. Labels (%N) are only names for nodes; they must
 * be defined before use. The declared types must equal the inferred ones, so
 * a golden file cannot silently disagree with shape inference. */
#include "ir.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_EOF, T_IDENT, T_LABEL, T_STRING, T_NUMBER, T_PUNCT } TokKind;

typedef struct Token {
    TokKind kind;
    const char *text; /* the token's characters in the source */
    size_t len;
    const char *str;  /* T_STRING: the decoded value */
    int64_t label;    /* T_LABEL */
    SrcLoc loc;
} Token;

typedef struct Parser {
    const char *p;
    SrcLoc at; /* of *p */
    Token tok;
    Graph *g;
    Diag *d;
    Arena *tmp;
    int64_t *labels;     /* label of each node */
    SrcLoc *type_locs;   /* where each node's type was written */
    TensorType *declared;
    int32_t cap;
    /* Hash indexes of the nodes by label and by name (open addressing, -1:
     * empty, at most half full), so a text of many nodes reads in linear time. */
    int32_t *by_label, *by_name;
    size_t index_cap;
} Parser;

static bool perror_at(Parser *ps, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool perror_at(Parser *ps, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ir_vdiag(ps->d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
    return false;
}

/* ---- lexer ---------------------------------------------------------------------- */

static void advance(Parser *ps)
{
    if (*ps->p == '\n') {
        ps->at.line++;
        ps->at.col = 1;
    } else {
        ps->at.col++;
    }
    ps->p++;
}

static void skip_space(Parser *ps)
{
    for (;;) {
        if (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r') {
            advance(ps);
        } else if (*ps->p == '#') {
            while (*ps->p && *ps->p != '\n')
                advance(ps);
        } else {
            return;
        }
    }
}

static bool is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One escape after the backslash; false on a malformed one. */
static bool lex_escape(Parser *ps, char *out)
{
    char c = *ps->p;
    advance(ps);
    switch (c) {
    case '"': *out = '"'; return true;
    case '\\': *out = '\\'; return true;
    case 'n': *out = '\n'; return true;
    case 't': *out = '\t'; return true;
    case 'x': break;
    default: return false;
    }
    int hi = hex_value(ps->p[0]), lo = hi >= 0 ? hex_value(ps->p[1]) : -1;
    if (hi < 0 || lo < 0)
        return false;
    advance(ps);
    advance(ps);
    *out = (char)(hi * 16 + lo);
    return true;
}

/* The bytes of a string's body up to its closing quote (or the end of the
 * line): at least as many as it decodes to. */
static size_t string_extent(const char *s)
{
    size_t n = 0;
    while (s[n] && s[n] != '"' && s[n] != '\n')
        n += s[n] == '\\' && s[n + 1] ? 2 : 1;
    return n;
}

static bool lex_string(Parser *ps)
{
    advance(ps);
    char *buf = ir_alloc(ps->tmp, string_extent(ps->p) + 1);
    size_t n = 0;
    while (*ps->p != '"') {
        if (*ps->p == '\0' || *ps->p == '\n')
            return perror_at(ps, ps->tok.loc, "unterminated string");
        if (*ps->p != '\\') {
            buf[n++] = *ps->p;
            advance(ps);
            continue;
        }
        SrcLoc esc = ps->at;
        advance(ps);
        if (!lex_escape(ps, &buf[n++]))
            return perror_at(ps, esc, "bad escape sequence in string");
    }
    advance(ps);
    ps->tok.kind = T_STRING;
    ps->tok.str = ir_strndup(ps->g->arena, buf, n);
    return true;
}

static bool lex_label(Parser *ps)
{
    advance(ps);
    if (!isdigit((unsigned char)*ps->p))
        return perror_at(ps, ps->tok.loc, "expected digits after '%%'");
    int64_t v = 0;
    while (isdigit((unsigned char)*ps->p)) {
        v = v * 10 + (*ps->p - '0');
        if (v > INT32_MAX)
            return perror_at(ps, ps->tok.loc, "label is too large");
        advance(ps);
    }
    ps->tok.kind = T_LABEL;
    ps->tok.label = v;
    return true;
}

/* Numbers keep their text: whether it is an int or a float depends on the
 * attribute it is assigned to. "inf" and "nan" lex as words. */
static void lex_number(Parser *ps)
{
    if (*ps->p == '-' || *ps->p == '+')
        advance(ps);
    while (is_word_char(*ps->p) ||
           ((*ps->p == '-' || *ps->p == '+') && (ps->p[-1] == 'e' || ps->p[-1] == 'E')))
        advance(ps);
    ps->tok.kind = T_NUMBER;
}

static bool next(Parser *ps)
{
    skip_space(ps);
    Token *t = &ps->tok;
    memset(t, 0, sizeof *t);
    t->text = ps->p;
    t->loc = ps->at;
    char c = *ps->p;
    bool ok = true;
    if (c == '\0') {
        t->kind = T_EOF;
    } else if (c == '"') {
        ok = lex_string(ps);
    } else if (c == '%') {
        ok = lex_label(ps);
    } else if (isdigit((unsigned char)c) || c == '-' || c == '+') {
        lex_number(ps);
    } else if (isalpha((unsigned char)c) || c == '_') {
        while (is_word_char(*ps->p))
            advance(ps);
        t->kind = T_IDENT;
    } else if (strchr("{}()[]=,:@", c)) {
        advance(ps);
        t->kind = T_PUNCT;
    } else {
        return perror_at(ps, t->loc, "unexpected character '%c'", c);
    }
    t->len = (size_t)(ps->p - t->text);
    return ok;
}

static bool tok_is(const Parser *ps, TokKind kind, const char *text)
{
    return ps->tok.kind == kind && ps->tok.len == strlen(text) &&
           memcmp(ps->tok.text, text, ps->tok.len) == 0;
}

static bool is_punct(const Parser *ps, char c)
{
    return ps->tok.kind == T_PUNCT && ps->tok.text[0] == c;
}

static bool expect(Parser *ps, char c)
{
    if (!is_punct(ps, c))
        return perror_at(ps, ps->tok.loc, "expected '%c', found '%.*s'", c,
                         ps->tok.kind == T_EOF ? 3 : (int)ps->tok.len,
                         ps->tok.kind == T_EOF ? "end" : ps->tok.text);
    return next(ps);
}

/* ---- values --------------------------------------------------------------------- */

static bool parse_int(Parser *ps, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = ps->tok.kind == T_NUMBER ? strtoll(ps->tok.text, &end, 10) : 0;
    if (ps->tok.kind != T_NUMBER || end != ps->tok.text + ps->tok.len || errno)
        return perror_at(ps, ps->tok.loc, "expected an integer, found '%.*s'",
                         (int)ps->tok.len, ps->tok.text);
    if (v < lo || v > hi)
        return perror_at(ps, ps->tok.loc, "%lld is out of range [%lld, %lld]", v,
                         (long long)lo, (long long)hi);
    *out = v;
    return next(ps);
}

static bool parse_float(Parser *ps, float *out)
{
    char *end;
    bool word = ps->tok.kind == T_IDENT && (tok_is(ps, T_IDENT, "inf") ||
                                            tok_is(ps, T_IDENT, "nan"));
    float v = strtof(ps->tok.text, &end);
    if ((ps->tok.kind != T_NUMBER && !word) || end != ps->tok.text + ps->tok.len)
        return perror_at(ps, ps->tok.loc, "expected a number, found '%.*s'", (int)ps->tok.len,
                         ps->tok.text);
    *out = v;
    return next(ps);
}

static bool parse_act(Parser *ps, Op *out)
{
    for (int a = 0; a < OP_COUNT; a++)
        if ((a == OP_NO_ACT || ir_op_is_act((Op)a)) && tok_is(ps, T_IDENT, ir_act_name((Op)a))) {
            *out = (Op)a;
            return next(ps);
        }
    return perror_at(ps, ps->tok.loc, "expected an activation such as relu, found '%.*s'",
                     (int)ps->tok.len, ps->tok.text);
}

static bool parse_scalar(Parser *ps, AttrFieldType type, void *dst)
{
    int64_t v;
    if (type == AF_FLOAT)
        return parse_float(ps, dst);
    if (type == AF_ACT)
        return parse_act(ps, dst);
    if (type == AF_INT) {
        if (!parse_int(ps, INT32_MIN, INT32_MAX, &v))
            return false;
        *(int32_t *)dst = (int32_t)v;
        return true;
    }
    if (!tok_is(ps, T_IDENT, "true") && !tok_is(ps, T_IDENT, "false"))
        return perror_at(ps, ps->tok.loc, "expected true or false, found '%.*s'",
                         (int)ps->tok.len, ps->tok.text);
    *(bool *)dst = ps->tok.text[0] == 't';
    return next(ps);
}

static size_t field_size(AttrFieldType type)
{
    return type == AF_INT ? sizeof(int32_t) : type == AF_FLOAT ? sizeof(float)
         : type == AF_ACT ? sizeof(Op) : sizeof(bool);
}

/* A list of exactly `count` values, or one value that fills every slot. */
static bool parse_field(Parser *ps, const AttrField *f, Attrs *a)
{
    char *base = (char *)a + f->offset;
    size_t size = field_size(f->type);
    if (!is_punct(ps, '[')) {
        if (!parse_scalar(ps, f->type, base))
            return false;
        for (int32_t i = 1; i < f->count; i++)
            memcpy(base + (size_t)i * size, base, size);
        return true;
    }
    SrcLoc loc = ps->tok.loc;
    if (!next(ps))
        return false;
    for (int32_t i = 0; i < f->count; i++) {
        if ((i > 0 && !expect(ps, ',')) || !parse_scalar(ps, f->type, base + (size_t)i * size))
            return false;
    }
    if (!is_punct(ps, ']'))
        return perror_at(ps, loc, "attribute '%s' takes %d values", f->name, (int)f->count);
    return next(ps);
}

static const AttrField *find_field(AttrKind kind, const char *name, size_t len)
{
    for (int32_t i = 0; i < ir_nattr_fields; i++)
        if (ir_attr_fields[i].kind == kind && strlen(ir_attr_fields[i].name) == len &&
            memcmp(ir_attr_fields[i].name, name, len) == 0)
            return &ir_attr_fields[i];
    return NULL;
}

/* attrs := '{' [name '=' value {',' name '=' value}] '}' */
static bool parse_attrs(Parser *ps, Op op, Attrs *a)
{
    bool *seen = ir_alloc(ps->tmp, (size_t)ir_nattr_fields * sizeof *seen);
    bool first = true;
    if (!next(ps))
        return false;
    while (!is_punct(ps, '}')) {
        if (!first && !expect(ps, ','))
            return false;
        first = false;
        const AttrField *f = find_field(ir_ops[op].attrs, ps->tok.text, ps->tok.len);
        if (ps->tok.kind != T_IDENT || !f)
            return perror_at(ps, ps->tok.loc, "%s has no attribute '%.*s'", ir_ops[op].name,
                             (int)ps->tok.len, ps->tok.text);
        if (seen[f - ir_attr_fields])
            return perror_at(ps, ps->tok.loc, "attribute '%s' is given twice", f->name);
        seen[f - ir_attr_fields] = true;
        if (!next(ps) || !expect(ps, '=') || !parse_field(ps, f, a))
            return false;
    }
    return next(ps);
}

static bool parse_layout(Parser *ps, TensorType *t)
{
    char word[32];
    int block, used = 0;
    if (ps->tok.kind != T_IDENT || ps->tok.len >= sizeof word)
        return perror_at(ps, ps->tok.loc, "expected a layout after '@'");
    memcpy(word, ps->tok.text, ps->tok.len);
    word[ps->tok.len] = '\0';
    if (strcmp(word, "nhwc") == 0) {
        t->layout = LAYOUT_NHWC;
    } else if (sscanf(word, "nchw%dc%n", &block, &used) == 1 && word[used] == '\0' &&
               block > 0 && word[4] != '+' && word[4] != '-') {
        t->layout = LAYOUT_NCHWC;
        t->block = block;
    } else {
        return perror_at(ps, ps->tok.loc, "unknown layout '%s'", word);
    }
    return next(ps);
}

/* type := dtype '[' [int {',' int}] ']' ['@' layout] */
static bool parse_type(Parser *ps, TensorType *t)
{
    static const DType dtypes[] = {DT_F32, DT_F16, DT_BF16, DT_I64};
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (tok_is(ps, T_IDENT, ir_dtype_name(dtypes[i])))
            t->dtype = dtypes[i];
    if (t->dtype == DT_INVALID)
        return perror_at(ps, ps->tok.loc, "expected a type such as f32[1,3,224,224], found "
                         "'%.*s'", (int)ps->tok.len, ps->tok.text);
    if (!next(ps) || !expect(ps, '['))
        return false;
    while (!is_punct(ps, ']')) {
        if (t->rank == IR_MAX_RANK)
            return perror_at(ps, ps->tok.loc, "more than %d dimensions", IR_MAX_RANK);
        if ((t->rank > 0 && !expect(ps, ',')) ||
            !parse_int(ps, 1, INT64_MAX, &t->dims[t->rank]))
            return false;
        t->rank++;
    }
    if (!next(ps))
        return false;
    return !is_punct(ps, '@') || (next(ps) && parse_layout(ps, t));
}

/* ---- nodes ---------------------------------------------------------------------- */

static size_t label_hash(int64_t label)
{
    uint64_t x = (uint64_t)label * 0x9e3779b97f4a7c15ull;
    return (size_t)(x ^ (x >> 29));
}

static int32_t find_label(const Parser *ps, int64_t label)
{
    if (!ps->index_cap)
        return -1;
    size_t mask = ps->index_cap - 1;
    for (size_t i = label_hash(label) & mask;; i = (i + 1) & mask) {
        int32_t id = ps->by_label[i];
        if (id < 0 || ps->labels[id] == label)
            return id;
    }
}

static int32_t find_name(const Parser *ps, const char *name)
{
    if (!ps->index_cap)
        return -1;
    size_t mask = ps->index_cap - 1;
    for (size_t i = (size_t)ir_str_hash(name) & mask;; i = (i + 1) & mask) {
        int32_t id = ps->by_name[i];
        if (id < 0 || strcmp(ps->g->nodes[id].name, name) == 0)
            return id;
    }
}

static void index_put(Parser *ps, int32_t id)
{
    size_t mask = ps->index_cap - 1, i = label_hash(ps->labels[id]) & mask;
    while (ps->by_label[i] >= 0)
        i = (i + 1) & mask;
    ps->by_label[i] = id;
    const char *name = ps->g->nodes[id].name;
    if (!name)
        return;
    for (i = (size_t)ir_str_hash(name) & mask; ps->by_name[i] >= 0; i = (i + 1) & mask)
        ;
    ps->by_name[i] = id;
}

/* Indexes node `id`, the newest, doubling the tables when half full. */
static void index_node(Parser *ps, int32_t id)
{
    if (2 * ((size_t)id + 1) > ps->index_cap) {
        ps->index_cap = ps->index_cap ? 2 * ps->index_cap : 128;
        ps->by_label = ir_alloc(ps->tmp, ps->index_cap * sizeof *ps->by_label);
        ps->by_name = ir_alloc(ps->tmp, ps->index_cap * sizeof *ps->by_name);
        memset(ps->by_label, 0xff, ps->index_cap * sizeof *ps->by_label);
        memset(ps->by_name, 0xff, ps->index_cap * sizeof *ps->by_name);
        for (int32_t k = 0; k < id; k++)
            index_put(ps, k);
    }
    index_put(ps, id);
}

static bool parse_use(Parser *ps, int32_t *node)
{
    if (ps->tok.kind != T_LABEL)
        return perror_at(ps, ps->tok.loc, "expected a node label such as %%3, found '%.*s'",
                         (int)ps->tok.len, ps->tok.text);
    *node = find_label(ps, ps->tok.label);
    if (*node < 0)
        return perror_at(ps, ps->tok.loc, "%%%lld is used before it is defined",
                         (long long)ps->tok.label);
    return next(ps);
}

/* operands := '(' [label {',' label}] ')' ; returns them in tmp memory */
static bool parse_operands(Parser *ps, int32_t **ins, int32_t *n)
{
    int32_t cap = 8;
    *ins = ir_alloc(ps->tmp, (size_t)cap * sizeof **ins);
    *n = 0;
    if (!next(ps))
        return false;
    while (!is_punct(ps, ')')) {
        if (*n == cap) {
            int32_t *more = ir_alloc(ps->tmp, (size_t)cap * 2 * sizeof *more);
            memcpy(more, *ins, (size_t)cap * sizeof *more);
            *ins = more;
            cap *= 2;
        }
        if ((*n > 0 && !expect(ps, ',')) || !parse_use(ps, &(*ins)[*n]))
            return false;
        (*n)++;
    }
    return next(ps);
}

static bool check_arity(Parser *ps, Op op, int32_t n, SrcLoc loc)
{
    const OpInfo *info = &ir_ops[op];
    if (n >= info->min_inputs && (info->max_inputs < 0 || n <= info->max_inputs))
        return true;
    if (info->max_inputs < 0)
        return perror_at(ps, loc, "%s takes at least %d inputs, got %d", info->name,
                         (int)info->min_inputs, (int)n);
    if (info->min_inputs == info->max_inputs)
        return perror_at(ps, loc, "%s takes %d inputs, got %d", info->name,
                         (int)info->min_inputs, (int)n);
    return perror_at(ps, loc, "%s takes %d to %d inputs, got %d", info->name,
                     (int)info->min_inputs, (int)info->max_inputs, (int)n);
}

static void grow_tables(Parser *ps)
{
    if (ps->g->nnodes < ps->cap)
        return;
    int32_t cap = ps->cap ? ps->cap * 2 : 64;
    int64_t *labels = ir_alloc(ps->tmp, (size_t)cap * sizeof *labels);
    SrcLoc *locs = ir_alloc(ps->tmp, (size_t)cap * sizeof *locs);
    TensorType *types = ir_alloc(ps->tmp, (size_t)cap * sizeof *types);
    if (ps->cap) {
        memcpy(labels, ps->labels, (size_t)ps->cap * sizeof *labels);
        memcpy(locs, ps->type_locs, (size_t)ps->cap * sizeof *locs);
        memcpy(types, ps->declared, (size_t)ps->cap * sizeof *types);
    }
    ps->labels = labels;
    ps->type_locs = locs;
    ps->declared = types;
    ps->cap = cap;
}

typedef struct NodeText {
    int64_t label;
    SrcLoc loc, op_loc, type_loc;
    Op op;
    int32_t *ins, nins;
    Attrs attrs;
    const char *name;
    TensorType type;
} NodeText;

static bool add_parsed_node(Parser *ps, const NodeText *nt)
{
    if (nt->name && find_name(ps, nt->name) >= 0)
        return perror_at(ps, nt->loc, "a node named '%s' is already defined", nt->name);
    if (!check_arity(ps, nt->op, nt->nins, nt->op_loc))
        return false;
    grow_tables(ps);
    int32_t id = ir_add_node(ps->g, nt->op, nt->ins, nt->nins, nt->name, nt->loc);
    Node *n = &ps->g->nodes[id];
    n->attrs = nt->attrs;
    n->type = nt->type;
    ps->labels[id] = nt->label;
    ps->type_locs[id] = nt->type_loc;
    ps->declared[id] = nt->type;
    index_node(ps, id);
    return true;
}

/* node := label '=' op [operands] [attrs] [string] ':' type */
static bool parse_node(Parser *ps)
{
    NodeText nt = {.label = ps->tok.label, .loc = ps->tok.loc};
    if (find_label(ps, nt.label) >= 0)
        return perror_at(ps, nt.loc, "%%%lld is defined twice", (long long)nt.label);
    if (!next(ps) || !expect(ps, '='))
        return false;
    char opname[32];
    snprintf(opname, sizeof opname, "%.*s", (int)(ps->tok.len < 31 ? ps->tok.len : 31),
             ps->tok.text);
    nt.op = ps->tok.kind == T_IDENT ? ir_op_from_name(opname) : OP_COUNT;
    nt.op_loc = ps->tok.loc;
    if (nt.op == OP_COUNT || ps->tok.len > 31)
        return perror_at(ps, ps->tok.loc, "unknown op '%.*s'", (int)ps->tok.len, ps->tok.text);
    ir_attrs_default(nt.op, &nt.attrs);
    if (!next(ps) || (is_punct(ps, '(') && !parse_operands(ps, &nt.ins, &nt.nins)))
        return false;
    if (is_punct(ps, '{') && !parse_attrs(ps, nt.op, &nt.attrs))
        return false;
    if (ps->tok.kind == T_STRING) {
        nt.name = ps->tok.str;
        if (!next(ps))
            return false;
    }
    if (!expect(ps, ':'))
        return false;
    nt.type_loc = ps->tok.loc;
    return parse_type(ps, &nt.type) && add_parsed_node(ps, &nt);
}

/* return := 'return' label string */
static bool parse_return(Parser *ps)
{
    int32_t node = -1;
    if (!next(ps) || !parse_use(ps, &node))
        return false;
    if (ps->tok.kind != T_STRING)
        return perror_at(ps, ps->tok.loc, "expected the output's name in quotes");
    for (int32_t i = 0; i < ps->g->noutputs; i++)
        if (strcmp(ps->g->outputs[i].name, ps->tok.str) == 0)
            return perror_at(ps, ps->tok.loc, "output '%s' is returned twice", ps->tok.str);
    ir_add_output(ps->g, node, ps->tok.str);
    return next(ps);
}

/* graph := 'graph' (ident | string) '{' {node | return} '}' */
static bool parse_graph(Parser *ps)
{
    if (!next(ps))
        return false;
    if (!tok_is(ps, T_IDENT, "graph"))
        return perror_at(ps, ps->tok.loc, "expected 'graph'");
    if (!next(ps))
        return false;
    if (ps->tok.kind == T_IDENT)
        ps->g->name = ir_strndup(ps->g->arena, ps->tok.text, ps->tok.len);
    else if (ps->tok.kind == T_STRING)
        ps->g->name = ps->tok.str;
    else
        return perror_at(ps, ps->tok.loc, "expected the graph's name");
    if (!next(ps) || !expect(ps, '{'))
        return false;
    while (!is_punct(ps, '}')) {
        bool ok;
        if (ps->tok.kind == T_LABEL)
            ok = parse_node(ps);
        else if (tok_is(ps, T_IDENT, "return"))
            ok = parse_return(ps);
        else
            ok = perror_at(ps, ps->tok.loc, "expected a node (%%N = ...), 'return' or '}'");
        if (!ok)
            return false;
    }
    if (!next(ps))
        return false;
    if (ps->tok.kind != T_EOF)
        return perror_at(ps, ps->tok.loc, "unexpected text after the graph");
    return true;
}

/* Every node is inferred (so all mismatches are reported at once) and must
 * come out with the type written for it. */
static bool check_types(Parser *ps)
{
    bool ok = ir_infer_shapes(ps->g, ps->d);
    for (int32_t i = 0; i < ps->g->nnodes; i++) {
        const Node *n = &ps->g->nodes[i];
        char b1[160], b2[160];
        if (n->type.dtype == DT_INVALID || ir_type_eq(&n->type, &ps->declared[i]))
            continue;
        ok = perror_at(ps, ps->type_locs[i], "%%%lld is written as %s, but its type is %s",
                       (long long)ps->labels[i], ir_type_str(&ps->declared[i], b1, sizeof b1),
                       ir_type_str(&n->type, b2, sizeof b2));
    }
    return ok;
}

Graph *ir_parse_text(const char *file, const char *text, Diag *d)
{
    Parser ps = {.p = text, .d = d};
    ps.g = ir_graph_new("graph");
    ps.tmp = ir_arena_new();
    const char *fname = d ? ir_diag_add_source(d, file, text, strlen(text)) : file;
    ps.at = (SrcLoc){ir_strdup(ps.g->arena, fname), 1, 1};
    bool ok = parse_graph(&ps) && check_types(&ps);
    ir_arena_free(ps.tmp);
    if (!ok) {
        ir_graph_free(ps.g);
        return NULL;
    }
    return ps.g;
}
