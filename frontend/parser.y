/* parser.y: the bison grammar of the cnnc language (docs/language.md) and the
 * token filter between scanner and grammar that applies the newline rules. It
 * builds the AST (ast.h) of a whole file, of text typed at a prompt, or of a
 * network header (a first token chooses which), and reports syntax errors in
 * readable words, recovering at the next statement so that one run reports them all. */
%code requires {
#include "ast.h"
#include "scan.h"
typedef struct Parser Parser;
/* A name after `as` or `sequence`: fixed, or computed from parts (ast.h). */
typedef struct AstName {
    const char *s;
    ExprList parts;
} AstName;
}

%code {
#include <stdlib.h>
#include <string.h>

#define YYMALLOC ir_xmalloc
#define YYFREE free

struct Parser {
    Arena *arena;
    Diag *diag;
    yyscan_t scanner;
    Lexer lex;
    AstFile *ast;
    Token peek; /* a token read ahead to decide about a newline */
    bool have_peek;
    int prev;   /* kind of the last token handed to the grammar; -1 at the start */
    Token last; /* that token, for messages */
    int tail;   /* kind of the last token before the end of the text; -1 if none */
    int nerrors;
    int start;          /* the token that selects what to parse, handed over first */
    bool prompt;        /* text typed at a prompt: an open end asks for more */
    bool incomplete;    /* it did */
    EntryList *entries; /* prompt text goes here */
    NetworkDef *header;
    Expr *expr;    /* an {EXPR} of a quoted name */
    bool embedded; /* parsing one: its end is the '}' */
};

#define YYLLOC_DEFAULT(Cur, Rhs, N) ((Cur) = (N) ? YYRHSLOC(Rhs, 1) : YYRHSLOC(Rhs, 0))

static int fe_yylex(FE_YYSTYPE *lval, SrcLoc *lloc, Parser *P);
static void fe_yyerror(SrcLoc *loc, Parser *P, const char *msg);
static AstName quoted_name(Parser *P, const char *text, SrcLoc loc);
static void parser_init(Parser *P, Arena *a, Diag *d, const char *file, int32_t line,
                        const char *text, size_t len);

static Expr *leaf(Parser *P, ExprKind k, SrcLoc loc)
{
    return ast_expr(P->arena, k, loc);
}

static Expr *binary(Parser *P, Operator op, Expr *lhs, Expr *rhs, SrcLoc loc)
{
    Expr *e = ast_expr(P->arena, rhs ? E_BINARY : E_UNARY, loc);
    e->bin.op = op;
    e->bin.lhs = lhs;
    e->bin.rhs = rhs;
    return e;
}

static Expr *call(Parser *P, const char *callee, ArgList args, SrcLoc loc)
{
    Expr *e = ast_expr(P->arena, E_CALL, loc);
    e->call.callee = callee;
    e->call.args = args;
    return e;
}

static Expr *sequence(Parser *P, AstName name, SrcLoc name_loc, Expr *input, StmtList body,
                      SrcLoc loc)
{
    Expr *e = ast_expr(P->arena, E_SEQUENCE, loc);
    e->seq.name = name.s;
    e->seq.name_parts = name.parts;
    e->seq.name_loc = name_loc;
    e->seq.input = input;
    e->seq.body = body;
    return e;
}

static Stmt *if_stmt(Parser *P, Expr *cond, StmtList then, StmtList els, SrcLoc loc)
{
    Stmt *s = ast_stmt(P->arena, S_IF, loc);
    s->if_.cond = cond;
    s->if_.then = then;
    s->if_.els = els;
    return s;
}

static void add_network(Parser *P, const char *name, SrcLoc loc, InputList inputs,
                        StmtList body)
{
    NetworkDef *n = ir_alloc(P->arena, sizeof *n);
    n->name = name;
    n->loc = loc;
    n->inputs = inputs;
    n->body = body;
    AST_PUSH(P->arena, &P->ast->networks, n);
}

static void add_entry(Parser *P, Stmt *stmt, BlockDef *block)
{
    Entry e = {stmt, block};
    if (stmt || block)
        AST_PUSH(P->arena, P->entries, e);
}

static BlockDef *new_block(Parser *P, const char *name, SrcLoc loc, ParamList params,
                           StmtList body)
{
    BlockDef *b = ir_alloc(P->arena, sizeof *b);
    b->name = name;
    b->loc = loc;
    b->params = params;
    b->body = body;
    return b;
}

static void set_header(Parser *P, const char *name, SrcLoc loc, InputList inputs)
{
    P->header = ir_alloc(P->arena, sizeof *P->header);
    P->header->name = name;
    P->header->loc = loc;
    P->header->inputs = inputs;
}
}

%define api.pure full
%define api.prefix {fe_yy}
%define api.token.prefix {TK_}
%define api.location.type {SrcLoc}
%define parse.error custom
%define parse.lac full
%locations
%param {Parser *P}

%union {
    int64_t i;
    double f;
    const char *s;
    Expr *e;
    Stmt *st;
    ExprList el;
    StmtList sl;
    ArgList al;
    Arg arg;
    ParamList pl;
    Param param;
    InputList il;
    InputDecl input;
    DimList dl;
    Dim dim;
    AstName name;
}

%token <s> IDENT "identifier"
%token <s> STRING "string"
%token <i> INT "integer"
%token <f> FLOAT "number"
%token NEWLINE "end of line"
%token NETWORK "network" BLOCK "block" INCLUDE "include" IF "if" ELSE "else" FOR "for"
%token IN "in" RETURN "return" REPEAT "repeat" SEQUENCE "sequence" AS "as"
%token AND "and" OR "or" NOT "not" TRUE "true" FALSE "false" NONE "none" FROM "from"
%token EQ "==" NE "!=" LE "<=" GE ">=" FLOORDIV "//"
%token START_FILE START_PROMPT START_HEADER START_EXPR

%type <e> expr postfix primary call sequence
%type <st> stmt if_stmt
%type <sl> body stmts stmt_seq else_part
%type <el> exprs list_items
%type <al> args_opt args
%type <arg> arg
%type <pl> params_opt params
%type <param> param
%type <il> inputs_opt inputs
%type <input> input
%type <dl> dims
%type <dim> dim
%type <name> name name_opt

%right '?' ':'
%left OR
%left AND
%precedence NOT
%nonassoc EQ NE '<' LE '>' GE
%left '+' '-'
%left '*' '/' FLOORDIV '%'
%precedence UMINUS

%%

start
    : START_FILE file
    | START_PROMPT prompt
    | START_HEADER header
    | START_EXPR expr { P->expr = $2; }
    ;

prompt
    : seps_opt
    | seps_opt entries seps_opt
    ;
entries
    : entry
    | entries seps entry
    ;
entry
    : stmt { add_entry(P, $1, NULL); }
    | BLOCK IDENT '(' params_opt ')' body { add_entry(P, NULL, new_block(P, $2, @2, $4, $6)); }
    ;

header
    : NETWORK IDENT '(' inputs_opt ')' seps_opt { set_header(P, $2, @2, $4); }
    | IDENT '(' inputs_opt ')' seps_opt { set_header(P, $1, @1, $3); }
    ;

file
    : %empty
    | file item
    | file sep
    ;

item
    : INCLUDE STRING {
        Include inc = {$2, @2};
        AST_PUSH(P->arena, &P->ast->includes, inc);
    }
    | BLOCK IDENT '(' params_opt ')' body { AST_PUSH(P->arena, &P->ast->blocks,
                                                     new_block(P, $2, @2, $4, $6)); }
    | NETWORK IDENT '(' inputs_opt ')' body { add_network(P, $2, @2, $4, $6); }
    | error
    ;

sep: NEWLINE | ';' ;
seps: sep | seps sep ;
seps_opt: %empty | seps ;
comma_opt: %empty | ',' ;

params_opt
    : %empty { $$ = (ParamList){0}; }
    | params comma_opt { $$ = $1; }
    ;
params
    : param { $$ = (ParamList){0}; AST_PUSH(P->arena, &$$, $1); }
    | params ',' param { $$ = $1; AST_PUSH(P->arena, &$$, $3); }
    ;
param
    : IDENT { $$ = (Param){$1, @1, NULL}; }
    | IDENT '=' expr { $$ = (Param){$1, @1, $3}; }
    ;

inputs_opt
    : %empty { $$ = (InputList){0}; }
    | inputs comma_opt { $$ = $1; }
    ;
inputs
    : input { $$ = (InputList){0}; AST_PUSH(P->arena, &$$, $1); }
    | inputs ',' input { $$ = $1; AST_PUSH(P->arena, &$$, $3); }
    ;
input
    : IDENT ':' IDENT '[' dims comma_opt ']' { $$ = (InputDecl){$1, @1, $3, @3, $5}; }
    ;
dims
    : dim { $$ = (DimList){0}; AST_PUSH(P->arena, &$$, $1); }
    | dims ',' dim { $$ = $1; AST_PUSH(P->arena, &$$, $3); }
    ;
dim
    : INT { $$ = (Dim){NULL, $1, @1}; }
    | IDENT '=' INT { $$ = (Dim){$1, $3, @1}; }
    ;

body
    : '{' stmts '}' { $$ = $2; }
    ;
stmts
    : seps_opt { $$ = (StmtList){0}; }
    | seps_opt stmt_seq seps_opt { $$ = $2; }
    ;
stmt_seq
    : stmt { $$ = (StmtList){0}; if ($1) AST_PUSH(P->arena, &$$, $1); }
    | stmt_seq seps stmt { $$ = $1; if ($3) AST_PUSH(P->arena, &$$, $3); }
    ;

stmt
    : IDENT '=' expr {
        $$ = ast_stmt(P->arena, S_ASSIGN, @1);
        $$->assign.name = $1;
        $$->assign.value = $3;
    }
    | if_stmt
    | FOR IDENT IN expr body {
        $$ = ast_stmt(P->arena, S_FOR, @1);
        $$->for_.var = $2;
        $$->for_.iter = $4;
        $$->for_.body = $5;
    }
    | RETURN exprs {
        $$ = ast_stmt(P->arena, S_RETURN, @1);
        $$->ret = $2;
    }
    | expr {
        $$ = ast_stmt(P->arena, S_EXPR, @1);
        $$->expr = $1;
    }
    | error { $$ = NULL; }
    ;

if_stmt
    : IF expr body else_part { $$ = if_stmt(P, $2, $3, $4, @1); }
    ;
else_part
    : %empty { $$ = (StmtList){0}; }
    | ELSE body { $$ = $2; }
    | ELSE if_stmt { $$ = (StmtList){0}; AST_PUSH(P->arena, &$$, $2); }
    ;

exprs
    : expr { $$ = (ExprList){0}; AST_PUSH(P->arena, &$$, $1); }
    | exprs ',' expr { $$ = $1; AST_PUSH(P->arena, &$$, $3); }
    ;

expr
    : expr '?' expr ':' expr {
        $$ = leaf(P, E_COND, @2);
        $$->cond.cond = $1;
        $$->cond.then = $3;
        $$->cond.els = $5;
    }
    | expr OR expr { $$ = binary(P, OPR_OR, $1, $3, @2); }
    | expr AND expr { $$ = binary(P, OPR_AND, $1, $3, @2); }
    | NOT expr { $$ = binary(P, OPR_NOT, $2, NULL, @1); }
    | expr EQ expr { $$ = binary(P, OPR_EQ, $1, $3, @2); }
    | expr NE expr { $$ = binary(P, OPR_NE, $1, $3, @2); }
    | expr '<' expr { $$ = binary(P, OPR_LT, $1, $3, @2); }
    | expr LE expr { $$ = binary(P, OPR_LE, $1, $3, @2); }
    | expr '>' expr { $$ = binary(P, OPR_GT, $1, $3, @2); }
    | expr GE expr { $$ = binary(P, OPR_GE, $1, $3, @2); }
    | expr '+' expr { $$ = binary(P, OPR_ADD, $1, $3, @2); }
    | expr '-' expr { $$ = binary(P, OPR_SUB, $1, $3, @2); }
    | expr '*' expr { $$ = binary(P, OPR_MUL, $1, $3, @2); }
    | expr '/' expr { $$ = binary(P, OPR_DIV, $1, $3, @2); }
    | expr FLOORDIV expr { $$ = binary(P, OPR_FLOORDIV, $1, $3, @2); }
    | expr '%' expr { $$ = binary(P, OPR_MOD, $1, $3, @2); }
    | '-' expr %prec UMINUS { $$ = binary(P, OPR_NEG, $2, NULL, @1); }
    | postfix
    ;

postfix
    : primary
    | postfix '[' expr ']' {
        $$ = leaf(P, E_INDEX, @2);
        $$->index.base = $1;
        $$->index.index = $3;
    }
    | postfix AS name {
        $$ = leaf(P, E_AS, $1->loc);
        $$->as.inner = $1;
        $$->as.name = $3.s;
        $$->as.parts = $3.parts;
        $$->as.name_loc = @3;
    }
    ;

primary
    : INT { $$ = leaf(P, E_INT, @1); $$->i = $1; }
    | FLOAT { $$ = leaf(P, E_FLOAT, @1); $$->f = $1; }
    | STRING { $$ = leaf(P, E_STRING, @1); $$->s = $1; }
    | TRUE { $$ = leaf(P, E_BOOL, @1); $$->b = true; }
    | FALSE { $$ = leaf(P, E_BOOL, @1); $$->b = false; }
    | NONE { $$ = leaf(P, E_NONE, @1); }
    | IDENT { $$ = leaf(P, E_IDENT, @1); $$->s = $1; }
    | call
    | '(' expr ')' { $$ = $2; }
    | '[' list_items ']' { $$ = leaf(P, E_LIST, @1); $$->items = $2; }
    | sequence
    | REPEAT expr call {
        $$ = leaf(P, E_REPEAT, @1);
        $$->repeat.count = $2;
        $$->repeat.call = $3;
    }
    | REPEAT expr FROM expr call {
        $$ = leaf(P, E_REPEAT, @1);
        $$->repeat.count = $2;
        $$->repeat.from = $4;
        $$->repeat.call = $5;
    }
    ;

call
    : IDENT '(' args_opt ')' { $$ = call(P, $1, $3, @1); }
    ;

sequence
    : SEQUENCE name_opt '(' expr ')' body { $$ = sequence(P, $2, @2, $4, $6, @1); }
    | SEQUENCE name_opt body { $$ = sequence(P, $2, @2, NULL, $3, @1); }
    ;
name_opt
    : %empty { $$ = (AstName){0}; }
    | name
    ;
/* A reserved word here is an identifier (next_token). */
name
    : IDENT { $$ = (AstName){$1, {0}}; }
    | STRING { $$ = quoted_name(P, $1, @1); }
    ;

list_items
    : %empty { $$ = (ExprList){0}; }
    | exprs comma_opt { $$ = $1; }
    ;

args_opt
    : %empty { $$ = (ArgList){0}; }
    | args comma_opt { $$ = $1; }
    ;
args
    : arg { $$ = (ArgList){0}; AST_PUSH(P->arena, &$$, $1); }
    | args ',' arg { $$ = $1; AST_PUSH(P->arena, &$$, $3); }
    ;
arg
    : expr { $$ = (Arg){NULL, @1, $1}; }
    | IDENT '=' expr { $$ = (Arg){$1, @1, $3}; }
    ;

%%

/* ---- the token filter: newline rules ------------------------------------ */

/* A newline right after one of these continues the line. */
static bool continues_line(int kind)
{
    switch (kind) {
    case -1:
    case TK_NEWLINE: case '{': case ',': case ';': case '(': case '[': case '=': case ':':
    case '?': case '<': case '>': case '+': case '-': case '*': case '/': case '%':
    case TK_EQ: case TK_NE: case TK_LE: case TK_GE: case TK_FLOORDIV: case TK_AND: case TK_OR:
    case TK_NOT: case TK_ELSE: case TK_AS:
        return true;
    default:
        return false;
    }
}

static bool is_reserved(int kind)
{
    return kind >= TK_NETWORK && kind <= TK_FROM;
}

static void scan(Parser *P, Token *t)
{
    memset(t, 0, sizeof *t);
    t->kind = fe_scan_next(t, P->scanner);
}

/* The next token for the grammar: newlines are dropped where they cannot end
 * a statement (after an operator or ',', before '{', '}' or 'else', at the end);
 * a reserved word right after `as` or `sequence` is a name (`as block`). */
static Token next_token(Parser *P)
{
    Token t;
    for (;;) {
        if (P->have_peek) {
            t = P->peek;
            P->have_peek = false;
        } else {
            scan(P, &t);
        }
        if (t.kind != TK_NEWLINE)
            break;
        if (continues_line(P->prev))
            continue;
        do
            scan(P, &P->peek);
        while (P->peek.kind == TK_NEWLINE);
        P->have_peek = true;
        int k = P->peek.kind;
        if (k != '{' && k != '}' && k != TK_ELSE && k != TK_YYEOF)
            break;
    }
    if ((P->prev == TK_AS || P->prev == TK_SEQUENCE) && is_reserved(t.kind)) {
        t.s = yysymbol_name(YYTRANSLATE(t.kind));
        t.kind = TK_IDENT;
    }
    P->prev = t.kind;
    P->last = t;
    if (t.kind != TK_YYEOF)
        P->tail = t.kind;
    return t;
}

static int fe_yylex(FE_YYSTYPE *lval, SrcLoc *lloc, Parser *P)
{
    if (P->start) {
        int k = P->start;
        P->start = 0;
        *lloc = (SrcLoc){P->lex.file, P->lex.line, P->lex.col};
        return k;
    }
    Token t = next_token(P);
    switch (t.kind) {
    case TK_IDENT:
    case TK_STRING: lval->s = t.s; break;
    case TK_INT: lval->i = t.i; break;
    case TK_FLOAT: lval->f = t.f; break;
    default: break;
    }
    *lloc = t.loc;
    return t.kind;
}

/* ---- syntax error messages ----------------------------------------------- */

/* How an expected token is named: "')'", "'return'", "identifier". */
static const char *symbol_desc(yysymbol_kind_t k, char *buf, size_t n)
{
    if (k >= YYSYMBOL_NETWORK && k <= YYSYMBOL_FLOORDIV) {
        snprintf(buf, n, "'%s'", yysymbol_name(k));
        return buf;
    }
    return yysymbol_name(k);
}

/* The offending token with its text: "identifier 'y'", "integer 3". */
static void unexpected_desc(const Parser *P, yysymbol_kind_t k, char *buf, size_t n)
{
    char tmp[64];
    const Token *t = &P->last;
    switch (k) {
    case YYSYMBOL_IDENT: snprintf(buf, n, "identifier '%s'", t->s); break;
    case YYSYMBOL_STRING: snprintf(buf, n, "string \"%s\"", t->s); break;
    case YYSYMBOL_INT: snprintf(buf, n, "integer %lld", (long long)t->i); break;
    case YYSYMBOL_FLOAT: snprintf(buf, n, "number %g", t->f); break;
    case YYSYMBOL_YYEOF:
        snprintf(buf, n, "%s", P->prompt ? "end of input" : P->embedded ? "'}'" : yysymbol_name(k));
        break;
    default: snprintf(buf, n, "%s", symbol_desc(k, tmp, sizeof tmp)); break;
    }
}

static bool is_operator(yysymbol_kind_t k)
{
    static const char *const ops[] = {"or",  "and", "==",  "!=",  "<=",  ">=",  "//",
                                      "as",  "'?'", "':'", "'<'", "'>'", "'+'", "'-'",
                                      "'*'", "'/'", "'%'", "'['", "'('"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(yysymbol_name(k), ops[i]) == 0)
            return true;
    return false;
}

static bool is_closer(yysymbol_kind_t k)
{
    const char *name = yysymbol_name(k);
    return strcmp(name, "')'") == 0 || strcmp(name, "']'") == 0;
}

/* The tokens worth naming: closing brackets (and ',') when one would do; else
 * all but operators, calls and commas, which could follow almost anything. */
static int pick_expected(const yysymbol_kind_t *all, int n, bool closer, bool at_end,
                         yysymbol_kind_t *out)
{
    int k = 0;
    bool sep = false;
    for (int i = 0; i < n; i++) {
        yysymbol_kind_t s = all[i];
        bool comma = strcmp(yysymbol_name(s), "','") == 0;
        if (closer ? !is_closer(s) && !comma : is_operator(s) || comma)
            continue;
        if (s == YYSYMBOL_NEWLINE || strcmp(yysymbol_name(s), "';'") == 0) {
            if (sep || at_end)
                continue;
            sep = true;
            s = YYSYMBOL_NEWLINE;
        }
        out[k++] = s;
    }
    for (int i = 0; closer && i + 1 < k; i++) { /* brackets first, then ',' */
        if (!is_closer(out[i])) {
            yysymbol_kind_t t = out[i];
            memmove(out + i, out + i + 1, (size_t)(k - i - 1) * sizeof *out);
            out[k - 1] = t;
            break;
        }
    }
    return k;
}

/* What to say was expected: "a statement or '}'", "an expression", or a short
 * list of tokens; false when no short answer fits. */
static bool expected_text(const yysymbol_kind_t *all, int n, bool at_end, char *buf, size_t size)
{
    bool closer = false, expr = false, stmt = false, brace = false;
    for (int i = 0; i < n; i++) {
        closer |= is_closer(all[i]);
        expr |= all[i] == YYSYMBOL_INT;
        stmt |= all[i] == YYSYMBOL_RETURN;
        brace |= strcmp(yysymbol_name(all[i]), "'}'") == 0;
    }
    if (!closer && (stmt || expr)) {
        snprintf(buf, size, "%s%s", stmt ? "a statement" : "an expression",
                 stmt && brace ? " or '}'" : "");
        return true;
    }
    yysymbol_kind_t pick[YYNTOKENS];
    int k = pick_expected(all, n, closer, at_end, pick);
    if (closer && expr) /* f( or [ : the list is empty so far */
        while (k > 0 && !is_closer(pick[k - 1]))
            k--;
    if (k == 0 || k > 4)
        return false;
    size_t len = (size_t)snprintf(buf, size, "%s", closer && expr ? "an expression or " : "");
    char tmp[64];
    for (int i = 0; i < k && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s",
                                i == 0 ? "" : i + 1 == k ? " or " : ", ",
                                symbol_desc(pick[i], tmp, sizeof tmp));
    return true;
}

/* Text typed at a prompt that ends where more must follow: inside brackets or
 * braces, after an operator or ',', or where a '{' is due (`if c`, `for v in xs`). */
static bool open_ended(const Parser *P, const yysymbol_kind_t *all, int n)
{
    if (P->lex.depth > 0 || P->lex.nsaved > 0 || continues_line(P->tail))
        return true;
    for (int i = 0; i < n; i++)
        if (strcmp(yysymbol_name(all[i]), "'{'") == 0)
            return true;
    return false;
}

/* A reserved word where a name could stand: say where it can be one. */
static void reserved_hint(const Parser *P, const yysymbol_kind_t *all, int n, char *buf,
                          size_t size)
{
    bool name = false;
    for (int i = 0; i < n; i++)
        name |= all[i] == YYSYMBOL_IDENT;
    buf[0] = '\0';
    if (name && is_reserved(P->last.kind)) {
        const char *w = yysymbol_name(YYTRANSLATE(P->last.kind));
        snprintf(buf, size, "; '%s' is a reserved word: it can name a layer ('as %s') but "
                 "not a variable or parameter, so choose another name here", w, w);
    }
}

static int yyreport_syntax_error(const yypcontext_t *ctx, Parser *P)
{
    yysymbol_kind_t all[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, all, YYNTOKENS);
    yysymbol_kind_t tok = yypcontext_token(ctx);
    if (P->prompt && tok == YYSYMBOL_YYEOF && P->nerrors == 0 && P->lex.nerrors == 0 &&
        open_ended(P, all, n < 0 ? 0 : n)) {
        P->incomplete = true;
        P->nerrors++;
        return 0;
    }
    char what[128], expected[256], hint[192];
    unexpected_desc(P, tok, what, sizeof what);
    reserved_hint(P, all, n, hint, sizeof hint);
    if (expected_text(all, n < 0 ? 0 : n, tok == YYSYMBOL_YYEOF, expected, sizeof expected))
        ir_error(P->diag, *yypcontext_location(ctx), "syntax error: unexpected %s, expected %s%s",
                 what, expected, hint);
    else
        ir_error(P->diag, *yypcontext_location(ctx), "syntax error: unexpected %s%s", what, hint);
    P->nerrors++;
    return 0;
}

/* Bison's only message of its own: its stack is full (YYMAXDEPTH). */
static void fe_yyerror(SrcLoc *loc, Parser *P, const char *msg)
{
    if (strcmp(msg, "memory exhausted") == 0)
        ir_error(P->diag, *loc, "nested too deeply to parse (the parser's limit is %d "
                 "levels of brackets, braces and operators)", YYMAXDEPTH);
    else
        ir_error(P->diag, *loc, "%s", msg);
    P->nerrors++;
}

/* ---- entry points ---------------------------------------------------------- */

static void parser_init(Parser *P, Arena *a, Diag *d, const char *file, int32_t line,
                        const char *text, size_t len)
{
    memset(P, 0, sizeof *P);
    P->arena = a;
    P->diag = d;
    P->prev = -1;
    P->tail = -1;
    P->lex.arena = a;
    P->lex.diag = d;
    P->lex.file = file;
    P->lex.line = line;
    P->lex.col = 1;
    if (fescan_lex_init_extra(&P->lex, &P->scanner) != 0)
        ICE("cannot create the scanner");
    fe_scan_begin(P->scanner, text, len);
}

AstFile *fe_parse(Arena *a, Diag *d, const char *file, const char *text, size_t len)
{
    Parser P;
    parser_init(&P, a, d, file, 1, text, len);
    P.start = TK_START_FILE;
    P.ast = ir_alloc(a, sizeof *P.ast);
    P.ast->name = file;
    int rc = fe_yyparse(&P);
    fescan_lex_destroy(P.scanner);
    if (rc != 0 || P.nerrors > 0 || P.lex.nerrors > 0)
        return NULL;
    return P.ast;
}

FeParseStatus fe_parse_entries(Arena *a, Diag *d, const char *file, int32_t line,
                               const char *text, size_t len, EntryList *out)
{
    Parser P;
    parser_init(&P, a, d, file, line, text, len);
    P.start = TK_START_PROMPT;
    P.prompt = true;
    memset(out, 0, sizeof *out);
    P.entries = out;
    int rc = fe_yyparse(&P);
    fescan_lex_destroy(P.scanner);
    if (P.incomplete)
        return FE_PARSE_MORE;
    if (rc != 0 || P.nerrors > 0 || P.lex.nerrors > 0)
        return FE_PARSE_ERROR;
    return FE_PARSE_OK;
}

/* ---- quoted names ---------------------------------------------------------- */

/* Parses the EXPR of a `{EXPR}` in a quoted name, which starts at `at`. */
static Expr *parse_embedded(Parser *P, const char *text, size_t len, SrcLoc at)
{
    Parser Q;
    parser_init(&Q, P->arena, P->diag, at.file, at.line, text, len);
    Q.lex.col = at.col;
    Q.start = TK_START_EXPR;
    Q.embedded = true;
    int rc = fe_yyparse(&Q);
    fescan_lex_destroy(Q.scanner);
    if (rc != 0 || Q.nerrors > 0 || Q.lex.nerrors > 0) {
        P->nerrors++;
        return NULL;
    }
    return Q.expr;
}

static SrcLoc at_offset(SrcLoc loc, const char *text, const char *p)
{
    loc.col += 1 + (int32_t)(p - text); /* after the opening quote */
    return loc;
}

static void add_part(Parser *P, AstName *nm, Expr *e)
{
    if (e)
        AST_PUSH(P->arena, &nm->parts, e);
}

/* The name in quotes after `as`: fixed, and checked now, or with {EXPR}
 * parts, computed at elaboration (the text between them becomes E_STRINGs). */
static AstName quoted_name(Parser *P, const char *text, SrcLoc loc)
{
    AstName nm = {text, {0}};
    if (!strchr(text, '{')) {
        const char *why = ast_name_problem(text);
        if (why) {
            ir_error(P->diag, loc, "the name \"%s\" %s", text, why);
            P->nerrors++;
        }
        return nm;
    }
    for (const char *p = text; *p;) {
        const char *open = strchr(p, '{'), *close = open ? strchr(open, '}') : NULL;
        size_t lit = open ? (size_t)(open - p) : strlen(p);
        if (lit) {
            Expr *e = leaf(P, E_STRING, at_offset(loc, text, p));
            e->s = ir_strndup(P->arena, p, lit);
            add_part(P, &nm, e);
        }
        if (!open)
            break;
        const char *in = open + 1;
        while (in < close && *in == ' ')
            in++;
        if (!close || in == close) {
            ir_error(P->diag, at_offset(loc, text, open), close ? "empty '{}' in a name"
                                                                : "'{' without '}' in a name");
            P->nerrors++;
            break;
        }
        add_part(P, &nm, parse_embedded(P, open + 1, (size_t)(close - open - 1),
                                        at_offset(loc, text, open + 1)));
        p = close + 1;
    }
    return nm;
}

NetworkDef *fe_parse_header(Arena *a, Diag *d, const char *file, int32_t line,
                            const char *text, size_t len)
{
    Parser P;
    parser_init(&P, a, d, file, line, text, len);
    P.start = TK_START_HEADER;
    int rc = fe_yyparse(&P);
    fescan_lex_destroy(P.scanner);
    if (rc != 0 || P.nerrors > 0 || P.lex.nerrors > 0)
        return NULL;
    return P.header;
}

void fe_dump_tokens(const char *file, const char *text, FILE *out, Diag *d)
{
    Arena *a = ir_arena_new();
    Parser P;
    parser_init(&P, a, d, file, 1, text, strlen(text));
    for (;;) {
        Token t = next_token(&P);
        char desc[128];
        yysymbol_kind_t k = YYTRANSLATE(t.kind);
        unexpected_desc(&P, k, desc, sizeof desc);
        fprintf(out, "%d:%d %s\n", (int)t.loc.line, (int)t.loc.col, desc);
        if (t.kind == TK_YYEOF)
            break;
    }
    fescan_lex_destroy(P.scanner);
    ir_arena_free(a);
}
