/* scan.h: what the flex scanner (lexer.l) and the bison parser (parser.y)
 * share: the scanner's state and the tokens it hands over. Token kinds are
 * the bison token numbers of parser.h. */
#ifndef CNNC_SCAN_H
#define CNNC_SCAN_H

#include "ir.h"

typedef struct Token {
    int kind;
    SrcLoc loc;
    int64_t i;
    double f;
    const char *s; /* identifier or string contents (arena copy) */
} Token;

/* Newlines end statements only outside ( ) and [ ]; a { inside brackets
 * starts a fresh context (a sequence body), so each brace level has its own
 * bracket depth. */
typedef struct Lexer {
    Arena *arena;
    Diag *diag;
    const char *file;
    int32_t line, col; /* position of the next byte */
    int32_t depth;     /* ( and [ open in the current brace level */
    int32_t *saved;    /* depth of each enclosing brace level */
    int32_t nsaved, capsaved;
    int nerrors;
} Lexer;

typedef void *yyscan_t;

/* lexer.l */
int fescan_lex_init_extra(Lexer *lx, yyscan_t *scanner);
int fescan_lex_destroy(yyscan_t scanner);
void fe_scan_begin(yyscan_t scanner, const char *text, size_t len);
int fe_scan_next(Token *tok, yyscan_t scanner);

#endif
