/* repl_line.c: where the REPL's lines come from. At a terminal: libedit (through
 * its readline interface) with line editing, a history kept in ~/.cnnc_history,
 * and TAB completion of commands, pass names, node and variable names and files;
 * otherwise plain lines from standard input or from the -c text. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <editline/readline.h>

#include "repl.h"

#define HISTORY_LINES 1000

/* readline's completion callbacks take no context. */
static Repl *completing;
static const char **cands;
static int32_t ncands;

/* Ctrl-C at a terminal: the line being typed is dropped, a running :time or
 * :profile stops early, and the session goes on. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

bool repl_interrupted(void)
{
    bool was = interrupted;
    interrupted = 0;
    return was;
}

/* Not '/' or '-': file names and options are completed whole. */
static char word_breaks[] = " \t\n\"'`@$><=;|&{(,[+*";

static const char *history_path(void)
{
    static char path[4096];
    const char *env = getenv("CNNC_HISTORY"), *home = getenv("HOME");
    if (env) return *env ? env : NULL;
    if (!home || !*home) return NULL;
    snprintf(path, sizeof path, "%s/.cnnc_history", home);
    return path;
}

static char *copy(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(ir_xmalloc(n), s, n);
}

static char *generate(const char *text, int state)
{
    static int32_t i;
    static size_t n;
    if (!state) i = 0, n = strlen(text);
    while (i < ncands) {
        const char *c = cands[i++];
        if (!strncmp(c, text, n)) return copy(c);
    }
    return NULL;
}

static void set_cands(const char **list, int32_t n)
{
    free(cands);
    cands = ir_xmalloc(((size_t)n + 1) * sizeof *cands);
    memcpy(cands, list, (size_t)n * sizeof *cands);
    ncands = n;
}

static void cands_commands(void)
{
    free(cands);
    cands = ir_xmalloc(((size_t)repl_ncommands + 1) * sizeof *cands);
    for (int32_t i = 0; i < repl_ncommands; i++) cands[i] = repl_commands[i].name;
    ncands = repl_ncommands;
}

static void cands_passes(void)
{
    free(cands);
    cands = ir_xmalloc(((size_t)pass_count + 1) * sizeof *cands);
    for (int32_t i = 0; i < pass_count; i++) cands[i] = pass_pipeline[i].name;
    ncands = pass_count;
}

/* Names in the network, and op names when `ops` (a statement being typed). */
static void cands_names(bool ops)
{
    const char **names;
    int32_t n = repl_names(completing, &names);
    free(cands);
    cands = ir_xmalloc(((size_t)n + OP_COUNT + 1) * sizeof *cands);
    memcpy(cands, names, (size_t)n * sizeof *cands);
    ncands = n;
    for (int32_t i = 0; ops && i < OP_COUNT; i++) cands[ncands++] = ir_ops[i].name;
    free(names);
}

/* The words of `s` before column `end`: how many, and the first. */
static int words_before(const char *s, int end, char *w0, size_t cap)
{
    int n = 0;
    for (int i = 0; i < end;) {
        while (i < end && (s[i] == ' ' || s[i] == '\t')) i++;
        int b = i;
        while (i < end && s[i] != ' ' && s[i] != '\t') i++;
        if (i == b || i == end) break;
        if (n == 0) snprintf(w0, cap, "%.*s", i - b, s + b);
        n++;
    }
    return n;
}

/* Chooses the candidates for argument `arg` of command `cmd`; false: file names. */
static bool command_cands(const char *cmd, int arg)
{
    static const char *passes_sub[] = {"disable", "enable"}, *ir_sub[] = {"after", "opt"},
                      *targets[] = {"cpu", "cuda"}, *time_sub[] = {"compile"};
    static const char *named[] = {":print", ":save", ":llvm", ":asm", ":cuda", ":ptx", ":input"};
    ncands = 0;
    if (!strcmp(cmd, ":passes")) arg == 1 ? set_cands(passes_sub, 2) : cands_passes();
    else if (!strcmp(cmd, ":ir")) arg == 1 ? set_cands(ir_sub, 2) : cands_passes();
    else if (!strcmp(cmd, ":target")) set_cands(targets, 2);
    else if (!strcmp(cmd, ":time")) set_cands(time_sub, 1);
    else if (!strcmp(cmd, ":load") || !strcmp(cmd, ":dot") || !strcmp(cmd, ":export"))
        return false;
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (strcmp(cmd, named[i])) continue;
        if (arg > 1 && (!strcmp(cmd, ":save") || !strcmp(cmd, ":input"))) return false;
        cands_names(false);
    }
    return true;
}

static char **complete(const char *text, int start, int end)
{
    (void)end;
    char w0[64] = "";
    int arg = words_before(rl_line_buffer, start, w0, sizeof w0);
    bool command = rl_line_buffer[strspn(rl_line_buffer, " \t")] == ':';
    rl_attempted_completion_over = 1;
    if (!command) cands_names(true);
    else if (arg == 0) cands_commands();
    else if (!command_cands(w0, arg)) return rl_attempted_completion_over = 0, NULL;
    return ncands ? rl_completion_matches(text, generate) : NULL;
}

void repl_line_init(Repl *r)
{
    if (!r->tty) return;
    completing = r;
    rl_readline_name = "cnnc";
    rl_completer_word_break_characters = word_breaks;
    rl_attempted_completion_function = complete;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    using_history();
    stifle_history(HISTORY_LINES);
    const char *path = history_path();
    if (path) read_history(path);
}

void repl_line_fini(Repl *r)
{
    if (!r->tty) return;
    const char *path = history_path();
    if (path) write_history(path);
    free(cands);
    cands = NULL;
    ncands = 0;
    completing = NULL;
}

/* The next line of the -c text. */
static char *read_script(Repl *r)
{
    if (!*r->script) return NULL;
    size_t n = strcspn(r->script, "\n");
    char *line = ir_xmalloc(n + 1);
    memcpy(line, r->script, n);
    line[n] = 0;
    r->script += n + (r->script[n] == '\n');
    return line;
}

static char *read_stdin(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) return free(line), NULL;
    if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
    if (n > 0 && line[n - 1] == '\r') line[--n] = 0;
    return line;
}

char *repl_line_read(Repl *r, const char *prompt)
{
    if (r->script) return read_script(r);
    if (!r->tty) return read_stdin();
    interrupted = 0;
    char *line = readline(prompt);
    if (interrupted) {
        /* Before the line was read, or (when the signal came before libedit
         * listened for it) while it was: either way what was open goes. */
        r->cancel = true;
        if (!line) return printf("\n"), copy("");
    }
    if (line && line[strspn(line, " \t")]) add_history(line);
    if (!line) printf("\n");
    return line;
}
