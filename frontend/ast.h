/* ast.h: the syntax tree of the cnnc language, as the parser builds it. Every
 * node lives in one arena and carries the location of the token it starts at
 * (for operators, the operator itself), so later errors point at the source. */
#ifndef CNNC_AST_H
#define CNNC_AST_H

#include "ir.h"

typedef struct Expr Expr;
typedef struct Stmt Stmt;

/* Growable arrays in an arena; AST_PUSH appends one element. */
typedef struct ExprList { Expr **items; int32_t n, cap; } ExprList;
typedef struct StmtList { Stmt **items; int32_t n, cap; } StmtList;

void *ast_grow(Arena *a, void *items, int32_t n, int32_t *cap, size_t elem);
#define AST_PUSH(arena, vec, value)                                                        \
    ((vec)->items = ast_grow((arena), (vec)->items, (vec)->n, &(vec)->cap,                 \
                             sizeof *(vec)->items),                                        \
     (vec)->items[(vec)->n++] = (value))

/* An argument of a call: positional when name is NULL. */
typedef struct Arg {
    const char *name;
    SrcLoc name_loc;
    Expr *value;
} Arg;
typedef struct ArgList { Arg *items; int32_t n, cap; } ArgList;

typedef enum {
    E_INT, E_FLOAT, E_STRING, E_BOOL, E_NONE, E_IDENT, E_LIST,
    E_CALL,     /* callee(args) */
    E_UNARY, E_BINARY, E_COND, E_INDEX,
    E_AS,       /* inner as NAME */
    E_SEQUENCE, /* sequence [NAME] [(input)] { stages } */
    E_REPEAT,   /* repeat count call */
} ExprKind;

typedef enum {
    OPR_ADD, OPR_SUB, OPR_MUL, OPR_DIV, OPR_FLOORDIV, OPR_MOD,
    OPR_EQ, OPR_NE, OPR_LT, OPR_LE, OPR_GT, OPR_GE,
    OPR_AND, OPR_OR, OPR_NEG, OPR_NOT,
} Operator;

struct Expr {
    ExprKind kind;
    SrcLoc loc;
    union {
        int64_t i;
        double f;
        bool b;
        const char *s;  /* E_STRING text, E_IDENT name */
        ExprList items; /* E_LIST */
        struct { const char *callee; ArgList args; } call;
        struct { Operator op; Expr *lhs, *rhs; } bin; /* E_UNARY uses lhs */
        struct { Expr *cond, *then, *els; } cond;
        struct { Expr *base, *index; } index;
        /* A quoted name with {EXPR} parts is computed: `parts` holds its text
         * as E_STRING pieces and its EXPRs, `name` the text as written. */
        struct { Expr *inner; const char *name; SrcLoc name_loc; ExprList parts; } as;
        struct {
            const char *name; SrcLoc name_loc; ExprList name_parts;
            Expr *input; StmtList body;
        } seq;
        struct { Expr *count, *call, *from; } repeat; /* from: NULL, or the first index */
    };
};

typedef enum { S_ASSIGN, S_IF, S_FOR, S_RETURN, S_EXPR } StmtKind;

struct Stmt {
    StmtKind kind;
    SrcLoc loc;
    union {
        struct { const char *name; Expr *value; } assign;
        struct { Expr *cond; StmtList then, els; } if_; /* else if: one S_IF in els */
        struct { const char *var; Expr *iter; StmtList body; } for_;
        ExprList ret;
        Expr *expr;
    };
};

typedef struct Param {
    const char *name;
    SrcLoc loc;
    Expr *def; /* NULL: required */
} Param;
typedef struct ParamList { Param *items; int32_t n, cap; } ParamList;

/* One dimension of an input: a number, or NAME=DEFAULT (symbolic). */
typedef struct Dim {
    const char *sym;
    int64_t value;
    SrcLoc loc;
} Dim;
typedef struct DimList { Dim *items; int32_t n, cap; } DimList;

typedef struct InputDecl {
    const char *name;
    SrcLoc loc;
    const char *dtype;
    SrcLoc dtype_loc;
    DimList dims;
} InputDecl;
typedef struct InputList { InputDecl *items; int32_t n, cap; } InputList;

typedef struct BlockDef {
    const char *name;
    SrcLoc loc;
    ParamList params;
    StmtList body;
} BlockDef;

typedef struct NetworkDef {
    const char *name;
    SrcLoc loc;
    InputList inputs;
    StmtList body;
} NetworkDef;

typedef struct Include {
    const char *path;
    SrcLoc loc;
} Include;

typedef struct AstFile {
    const char *name; /* as registered with the Diag */
    struct { Include *items; int32_t n, cap; } includes;
    struct { BlockDef **items; int32_t n, cap; } blocks;
    struct { NetworkDef **items; int32_t n, cap; } networks;
} AstFile;

/* parser.y: parses one file's text. `file` is the name used in locations (as
 * returned by ir_diag_add_source). Returns NULL after reporting syntax errors. */
AstFile *fe_parse(Arena *a, Diag *d, const char *file, const char *text, size_t len);

/* One piece of text typed at a prompt: a statement of the network body or a
 * block definition (exactly one is set). */
typedef struct Entry {
    Stmt *stmt;
    BlockDef *block;
} Entry;
typedef struct EntryList { Entry *items; int32_t n, cap; } EntryList;

typedef enum { FE_PARSE_OK, FE_PARSE_ERROR, FE_PARSE_MORE } FeParseStatus;

/* parser.y: parses text typed at a prompt, statements and block definitions
 * separated by newlines or ';', into `out` (in the order written). Lines are
 * numbered from `line`. FE_PARSE_MORE, with nothing reported, when the text
 * ends where more must follow: inside ( [ or {, after an operator or ',', or
 * where a '{' is due (`if c`); FE_PARSE_ERROR after reporting syntax errors. */
FeParseStatus fe_parse_entries(Arena *a, Diag *d, const char *file, int32_t line,
                               const char *text, size_t len, EntryList *out);
/* parser.y: parses a network header, `[network] NAME(INPUT: f32[DIMS], ...)`,
 * into a network with an empty body; NULL after reporting syntax errors. */
NetworkDef *fe_parse_header(Arena *a, Diag *d, const char *file, int32_t line,
                            const char *text, size_t len);

/* parser.y: writes the tokens the parser sees (after the newline rules), one a
 * line as `LINE:COL KIND [TEXT]`; for tests and debugging. */
void fe_dump_tokens(const char *file, const char *text, FILE *out, Diag *d);

/* ast.c: why `name` cannot be one segment of a layer's path ("is empty",
 * "contains '.'"), or NULL when it can. */
const char *ast_name_problem(const char *name);

/* ast.c: constructors and a compact s-expression printer (for tests). */
Expr *ast_expr(Arena *a, ExprKind kind, SrcLoc loc);
Stmt *ast_stmt(Arena *a, StmtKind kind, SrcLoc loc);
const char *ast_operator_name(Operator op);
void ast_print_expr(const Expr *e, FILE *out);
void ast_print_stmts(const StmtList *l, FILE *out);
void ast_print_file(const AstFile *f, FILE *out);

#endif
