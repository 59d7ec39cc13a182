/* repl.c: `cnnc repl`: its command line and the read-eval loop. Lines come from
 * a terminal, a script on standard input or the -c text; a line starting with ':'
 * is a command, anything else is language statements fed to the frontend session.
 * A script's exit status is 1 if any command or statement failed. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "repl.h"

static const char usage[] =
    "usage: cnnc repl [MODEL.cnn] [--weights=FILE] [--batch=N] [options] [-c COMMANDS]\n"
    "\n"
    "An interactive session over a network: load it or type it statement by\n"
    "statement, run it in-process (compiled by the JIT, as `cnnc -o` compiles it),\n"
    "inspect its values, IR, code, memory plan and timings. Type :help inside.\n"
    "\n"
    "  -c COMMANDS         run these lines (';' also separates commands) and exit\n"
    "  --weights=FILE      bind MODEL's parameters from a .safetensors file\n"
    "  --random-weights=S  seed of the parameters without bound data (default 0)\n"
    "  --batch=N           set the batch dimension of MODEL's inputs\n"
    "  --threads=N         worker threads of the model, 0: one per core (default)\n"
    "  -O0 .. -O3, --cpu=NAME, --features=+F,-G   as for cnnc -o\n"
    "\n"
    "Without a terminal (a script on standard input, or -c) nothing is prompted and\n"
    "the exit status is 1 if any command or statement failed, else 0.\n";

/* A statement spread over several lines (an open bracket, a trailing operator). */
typedef struct Pending {
    char *text;
    size_t len, cap;
    int32_t line; /* of its first line */
} Pending;

typedef struct Flags {
    const char *model, *weights, *commands;
    int64_t batch;
} Flags;

double repl_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

bool repl_fail(Repl *r, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("error: ", stderr);
    if (cmd) fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    r->nerrors++;
    return false;
}

Diag *repl_diag_open(ReplDiag *rd)
{
    rd->buf = NULL;
    rd->len = 0;
    rd->f = open_memstream(&rd->buf, &rd->len);
    ir_diag_init(&rd->d, rd->f ? rd->f : stderr);
    return &rd->d;
}

bool repl_diag_close(Repl *r, ReplDiag *rd, const char *cmd)
{
    ir_diag_fini(&rd->d);
    if (rd->f) fclose(rd->f);
    fflush(stdout);
    for (char *line = rd->buf; line && *line;) {
        size_t n = strcspn(line, "\n");
        bool plain = !strncmp(line, "error: ", 7) && cmd;
        fprintf(stderr, "%s%s%.*s\n", plain ? "error: " : "", plain ? cmd : "",
                (int)(n - (plain ? 5 : 0)), line + (plain ? 5 : 0));
        line += n + (line[n] == '\n');
    }
    free(rd->buf);
    if (rd->d.nerrors) r->nerrors++;
    return rd->d.nerrors == 0;
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

static void pending_add(Pending *p, const char *line, int32_t lineno)
{
    size_t n = strlen(line);
    if (!p->len) p->line = lineno;
    if (p->len + n + 2 > p->cap) {
        p->cap = (p->len + n + 2) * 2;
        p->text = ir_xrealloc(p->text, p->cap);
    }
    if (p->len) p->text[p->len++] = '\n';
    memcpy(p->text + p->len, line, n + 1);
    p->len += n;
}

static void echo(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

/* Feeds the statement text gathered so far; keeps it while it is incomplete. */
static void feed(Repl *r, Pending *p)
{
    Diag d;
    ir_diag_init(&d, stderr);
    fflush(stdout);
    if (!r->fe) r->fe = fe_session_new(&r->fo);
    FeFeed f = fe_session_feed(r->fe, p->text, r->srcname, p->line, &d, echo, r);
    ir_diag_fini(&d);
    if (f == FE_FEED_MORE) return;
    if (f == FE_FEED_ERROR) r->nerrors++;
    else repl_invalidate(r);
    p->len = 0;
}

/* A statement still open when a command or the end of input comes is dropped. */
static void abandon(Repl *r, Pending *p, const char *why)
{
    if (!p->len) return;
    fflush(stdout);
    fprintf(stderr, "%s:%d: error: incomplete statement dropped (%s)\n", r->srcname,
            (int)p->line, why);
    r->nerrors++;
    p->len = 0;
}

/* Inside an unfinished statement, ':' starts a command only before a name (a line
 * may go on with the ': b' of `a ? b : c`). */
static bool is_command(const char *s, bool pending)
{
    return s[0] == ':' && (!pending || isalpha((unsigned char)s[1]));
}

static void handle_piece(Repl *r, Pending *p, char *piece)
{
    const char *s = skip_ws(piece);
    if (is_command(s, p->len > 0)) {
        abandon(r, p, "a command came before its end");
        repl_command(r, piece);
        return;
    }
    if (!p->len && (!*s || *s == '#')) return;
    pending_add(p, piece, r->line);
    feed(r, p);
}

/* Where a line splits at ';': outside brackets, when a command is on either side
 * (statements separated by ';' are left to the frontend, which keeps their columns). */
static char *split_point(char *line)
{
    int depth = 0;
    bool cmd = *skip_ws(line) == ':';
    for (char *c = line; *c; c++) {
        if (*c == '(' || *c == '[' || *c == '{') depth++;
        else if ((*c == ')' || *c == ']' || *c == '}') && depth > 0) depth--;
        else if (*c == '#' && !cmd) return NULL;
        else if (*c == ';' && depth == 0 && (cmd || *skip_ws(c + 1) == ':')) return c;
    }
    return NULL;
}

static void handle_line(Repl *r, Pending *p, char *line)
{
    while (!r->quit) {
        char *semi = split_point(line);
        if (semi) *semi = 0;
        handle_piece(r, p, line);
        if (!semi) break;
        line = semi + 1;
    }
}

static void loop(Repl *r)
{
    Pending p = {0};
    while (!r->quit) {
        char *line = repl_line_read(r, p.len ? "  ...> " : "cnnc> ");
        if (!line) break;
        if (r->cancel) p.len = 0, r->cancel = false;
        r->line++;
        handle_line(r, &p, line);
        free(line);
    }
    if (!r->quit) abandon(r, &p, "end of input");
    free(p.text);
}

static bool parse_count(const char *flag, const char *v, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo) {
        fprintf(stderr, "cnnc: error: %s expects an integer >= %lld, got '%s'\n", flag,
                (long long)lo, v);
        return false;
    }
    *out = x;
    return true;
}

static const char *value_of(const char *flag, int argc, char **argv, int *i)
{
    size_t n = strlen(flag);
    if (strncmp(argv[*i], flag, n)) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] || *i + 1 >= argc) return NULL;
    return argv[++*i];
}

/* One option at argv[*i]; false after reporting a bad one. */
static bool parse_flag(Repl *r, Flags *f, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    int64_t n;
    if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3])
        return r->target.opt_level = a[2] - '0', true;
    if ((v = value_of("-c", argc, argv, i))) return f->commands = v, true;
    if ((v = value_of("--weights", argc, argv, i))) return f->weights = v, true;
    if ((v = value_of("--cpu", argc, argv, i))) return r->target.cpu = v, true;
    if ((v = value_of("--features", argc, argv, i))) return r->target.features = v, true;
    if ((v = value_of("--batch", argc, argv, i)))
        return parse_count("--batch", v, 1, &f->batch);
    if ((v = value_of("--threads", argc, argv, i)))
        return parse_count("--threads", v, 0, &n) && (r->threads = (int32_t)n, true);
    if ((v = value_of("--random-weights", argc, argv, i)))
        return parse_count("--random-weights", v, 0, &n) && (r->weight_seed = (uint64_t)n, true);
    if (a[0] != '-' && !f->model) return f->model = a, true;
    if (a[0] != '-') fprintf(stderr, "cnnc: error: more than one model file: '%s'\n", a);
    else fprintf(stderr, "cnnc: error: bad or incomplete option '%s' (see cnnc repl --help)\n",
                 a);
    return false;
}

/* 0: go on, 1: bad command line, 2: --help handled. */
static int parse_args(Repl *r, Flags *f, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return fputs(usage, stdout), 2;
        if (!parse_flag(r, f, argc, argv, &i)) return 1;
    }
    return 0;
}

static void repl_free(Repl *r)
{
    repl_invalidate(r);
    for (int32_t i = 0; i < r->ninputs; i++) repl_input_free(&r->inputs[i]);
    free(r->inputs);
    if (r->fe) fe_session_free(r->fe);
    free(r->model);
    free(r->weights);
}

/* argv[0] is "repl". */
int repl_main(int argc, char **argv)
{
    Repl r = {.target = {.opt_level = 2}, .srcname = "<stdin>"};
    Flags f = {0};
    int rc = parse_args(&r, &f, argc, argv);
    if (rc) return rc == 2 ? 0 : 1;
    char err[4096];
    if (!cg_check_target(&r.target, err, sizeof err))
        return fprintf(stderr, "cnnc: error: %s\n", err), 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    r.tty = !f.commands && isatty(STDIN_FILENO);
    if (f.commands) r.script = f.commands, r.srcname = "<command>";
    if (r.tty) printf("cnnc %s: type :help for the commands, :quit to leave\n", CNNC_VERSION);
    if (f.model) repl_load(&r, "cnnc repl", f.model, f.weights, f.batch);
    else if (f.weights) repl_fail(&r, "cnnc repl", "--weights needs a model file");
    repl_line_init(&r);
    loop(&r);
    repl_line_fini(&r);
    rc = r.tty ? 0 : r.nerrors > 0;
    repl_free(&r);
    return rc;
}
