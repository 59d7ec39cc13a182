/* repl_cmds.c: the REPL's command table and dispatch, and the commands that
 * change the session: :load, :new, :passes, :threads, :target, :help, :quit.
 * Whatever changes the network or how it compiles drops the compiled model;
 * the next command that needs one compiles it again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "repl.h"

#define MAX_NAMES 65536

static bool cmd_help(Repl *r, const ReplArgs *a);
static bool cmd_quit(Repl *r, const ReplArgs *a);
static bool cmd_load(Repl *r, const ReplArgs *a);
static bool cmd_new(Repl *r, const ReplArgs *a);
static bool cmd_passes(Repl *r, const ReplArgs *a);
static bool cmd_threads(Repl *r, const ReplArgs *a);
static bool cmd_target(Repl *r, const ReplArgs *a);

const ReplCommand repl_commands[] = {
    {":load", "FILE.cnn [--weights=W.safetensors] [--batch=N] [--random-weights=S]",
     "load a model file (its network replaces the session's)", cmd_load},
    {":new", "NAME(INPUT: f32[DIMS], ...)", "start an empty network; then type statements",
     cmd_new},
    {":input", "NAME FILE.npy [ITEM] | NAME random [SEED]",
     "data for an input (default: random, seed 0); ITEM: first batch item of FILE",
     repl_cmd_input},
    {":run", "", "compile if needed, run the network once, summarise the outputs",
     repl_cmd_run},
    {":print", "VALUE [all|A:B]",
     "shape, min/max/mean/std and values (the first 16, all, or flat indices A to B-1)",
     repl_cmd_print},
    {":save", "VALUE FILE.npy", "write a value as .npy", repl_cmd_save},
    {":top", "[K]", "the K best classes (default 5) of each batch item of the first output",
     repl_cmd_top},
    {":compare", "[TOL]",
     "every node of the compiled model against the interpreter (relative tolerance, 1e-4)",
     repl_cmd_compare},
    {":ir", "[after PASS | opt]", "the graph IR (as built, after a pass, or after all)",
     repl_cmd_ir},
    {":passes", "[disable|enable NAME]", "the optimization passes, on or off", cmd_passes},
    {":dot", "FILE.dot", "write the graph in Graphviz form", repl_cmd_dot},
    {":llvm", "NODE", "the LLVM IR of the node's kernel (or of `run`)", repl_cmd_llvm},
    {":asm", "NODE", "the assembly of the node's kernel (or of `run`)", repl_cmd_asm},
    {":cuda", "NODE", "the CUDA C of the node's GPU kernel (sm_80, TF32)", repl_cmd_cuda},
    {":ptx", "NODE", "the PTX of the node's GPU kernel (needs NVRTC)", repl_cmd_ptx},
    {":time", "[N] | compile",
     "median and p90 latency of N runs (default 10); or the compile time, by phase",
     repl_cmd_time},
    {":profile", "[N]", "per-kernel time, GFLOP/s and share over N runs (default 10)",
     repl_cmd_profile},
    {":mem", "", "the memory plan: arena size, each value's offset, bytes and lifetime",
     repl_cmd_mem},
    {":threads", "N", "worker threads of the model (0: one per core)", cmd_threads},
    {":target", "cpu|cuda", "the device models run on (the REPL runs them on the CPU)", cmd_target},
    {":export", "FILE.so", "write the model as a shared object, as `cnnc -o` does",
     repl_export},
    {":help", "[COMMAND]", "this list", cmd_help},
    {":quit", "", "leave", cmd_quit},
};

const int32_t repl_ncommands = (int32_t)(sizeof repl_commands / sizeof repl_commands[0]);

static const char help_tail[] =
    "\nAnything else is language statements (docs/language.md), added to the network\n"
    "being built and answered with each new value's shape; `return a, b` sets the\n"
    "outputs. A statement left open (a bracket, a trailing operator) continues on the\n"
    "next line. Values of graph inputs and outputs come from the compiled model's last\n"
    ":run; those of other nodes and variables from the reference interpreter.\n"
    "Errors are reported and the session goes on. Without a terminal (a script on\n"
    "standard input, or cnnc repl -c '...') the exit status is 1 if any command or\n"
    "statement failed, 0 otherwise.\n";

static bool cmd_help(Repl *r, const ReplArgs *a)
{
    for (int32_t i = 0; i < repl_ncommands; i++) {
        const ReplCommand *c = &repl_commands[i];
        if (a->argc && strcmp(a->argv[0], c->name) && strcmp(a->argv[0], c->name + 1)) continue;
        printf("  %s%s%s\n      %s\n", c->name, *c->usage ? " " : "", c->usage, c->help);
        if (a->argc) return true;
    }
    if (a->argc) return repl_fail(r, a->cmd, "no command '%s'", a->argv[0]);
    fputs(help_tail, stdout);
    return true;
}

static bool cmd_quit(Repl *r, const ReplArgs *a)
{
    (void)a;
    r->quit = true;
    return true;
}

static void clear_inputs(Repl *r)
{
    for (int32_t i = 0; i < r->ninputs; i++) repl_input_free(&r->inputs[i]);
    free(r->inputs);
    r->inputs = NULL;
    r->ninputs = 0;
}

static char *dup_or_null(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    return memcpy(ir_xmalloc(n), s, n);
}

/* Takes over a new session: what was compiled and the inputs given go. */
static void replace_session(Repl *r, FeSession *s, const char *model, const char *weights)
{
    repl_invalidate(r);
    clear_inputs(r);
    if (r->fe) fe_session_free(r->fe);
    r->fe = s;
    free(r->model);
    free(r->weights);
    r->model = dup_or_null(model);
    r->weights = dup_or_null(weights);
}

/* "mnist_cnn: input image f32[1,1,28,28] -> output fc2 f32[1,10], 17 nodes" */
static void describe(Repl *r, const char *cmd)
{
    Graph *g = repl_source(r, cmd);
    if (!g) return;
    char t[128];
    printf("%s:", g->name ? g->name : "network");
    for (int32_t i = 0; i < ir_num_inputs(g); i++) {
        const Node *n = &g->nodes[ir_input_node(g, i)];
        printf("%s %s %s", i ? "," : " input", n->name, ir_type_str(&n->type, t, sizeof t));
    }
    for (int32_t i = 0; i < g->noutputs; i++)
        printf("%s %s %s", i ? "," : " -> output", g->outputs[i].name,
               ir_type_str(&g->nodes[g->outputs[i].node].type, t, sizeof t));
    printf(", %d nodes\n", (int)g->nnodes);
}

bool repl_load(Repl *r, const char *cmd, const char *path, const char *weights, int64_t batch)
{
    FeOptions fo = {.batch = batch};
    FeSession *s = fe_session_new(&fo);
    ReplDiag rd;
    Diag *d = repl_diag_open(&rd);
    bool ok = fe_session_load(s, path, d) && (!weights || fe_session_bind_weights(s, weights, d));
    bool clean = repl_diag_close(r, &rd, cmd);
    if (!clean || !ok) {
        fe_session_free(s);
        return clean ? repl_fail(r, cmd, "'%s' not loaded", path) : false;
    }
    r->fo = fo;
    replace_session(r, s, path, weights);
    describe(r, cmd);
    return true;
}

static bool parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = (*s >= '0' && *s <= '9') ? strtoull(s, &end, 10) : 0;
    if (*s < '0' || *s > '9' || errno || *end) return false;
    *v = x;
    return true;
}

static bool cmd_load(Repl *r, const ReplArgs *a)
{
    const char *path = NULL, *weights = NULL;
    uint64_t batch = 0, seed = r->weight_seed;
    for (int i = 0; i < a->argc; i++) {
        const char *s = a->argv[i];
        if (!strncmp(s, "--weights=", 10)) weights = s + 10;
        else if (!strncmp(s, "--batch=", 8) && parse_u64(s + 8, &batch) && batch > 0) continue;
        else if (!strncmp(s, "--random-weights=", 17) && parse_u64(s + 17, &seed)) continue;
        else if (s[0] != '-' && !path) path = s;
        else return repl_fail(r, a->cmd, "bad argument '%s' (see :help :load)", s);
    }
    if (!path) return repl_fail(r, a->cmd, "which file? (:load FILE.cnn)");
    uint64_t before = r->weight_seed;
    r->weight_seed = seed;
    if (repl_load(r, a->cmd, path, weights, (int64_t)batch)) return true;
    r->weight_seed = before;
    return false;
}

static bool cmd_new(Repl *r, const ReplArgs *a)
{
    if (!*a->rest) return repl_fail(r, a->cmd, "give a name and inputs: :new NAME(x: f32[1, 3])");
    /* The blocks defined so far stay, unless a :load --batch would apply to the inputs. */
    bool reuse = r->fe && r->fo.batch == 0;
    FeSession *s = reuse ? r->fe : fe_session_new(&(FeOptions){0});
    ReplDiag rd;
    bool ok = fe_session_begin(s, a->rest, r->srcname, repl_diag_open(&rd));
    bool clean = repl_diag_close(r, &rd, a->cmd);
    if (!clean || !ok) {
        if (!reuse) fe_session_free(s);
        return clean ? repl_fail(r, a->cmd, "no network started") : false;
    }
    r->fo = (FeOptions){0};
    if (reuse) r->fe = NULL;
    replace_session(r, s, NULL, NULL);
    printf("new network %s\n", a->rest);
    return true;
}

static void list_passes(const Repl *r)
{
    for (int32_t i = 0; i < pass_count; i++) {
        const PassInfo *p = &pass_pipeline[i];
        bool off = (r->disabled >> i) & 1;
        printf("  %-12s %-3s %s%s\n", p->name, off ? "off" : "on", p->what,
               p->required ? " (required)" : "");
    }
}

static bool cmd_passes(Repl *r, const ReplArgs *a)
{
    if (!a->argc) return list_passes(r), true;
    bool disable = !strcmp(a->argv[0], "disable");
    if ((!disable && strcmp(a->argv[0], "enable")) || a->argc < 2)
        return repl_fail(r, a->cmd, "expected 'disable NAME' or 'enable NAME'");
    for (int i = 1; i < a->argc; i++) {
        int32_t k = pass_index(a->argv[i]);
        if (k < 0) return repl_fail(r, a->cmd, "no pass '%s' (see :passes)", a->argv[i]);
        if (disable && pass_pipeline[k].required)
            return repl_fail(r, a->cmd, "pass '%s' is required for code generation",
                             a->argv[i]);
        uint64_t bit = UINT64_C(1) << k;
        r->disabled = disable ? r->disabled | bit : r->disabled & ~bit;
    }
    repl_invalidate(r);
    list_passes(r);
    return true;
}

static bool cmd_threads(Repl *r, const ReplArgs *a)
{
    uint64_t n;
    if (a->argc != 1 || !parse_u64(a->argv[0], &n) || n > 1024)
        return repl_fail(r, a->cmd, "expected a number of threads from 0 (one per core) to 1024");
    r->threads = (int32_t)n;
    cnn_model_destroy(r->model_inst);
    r->model_inst = NULL;
    printf("threads: %d%s\n", (int)n, n ? "" : " (one per core)");
    return true;
}

static bool cmd_target(Repl *r, const ReplArgs *a)
{
    if (a->argc != 1) return repl_fail(r, a->cmd, "expected cpu or cuda");
    if (!strcmp(a->argv[0], "cpu")) return printf("target: cpu\n"), true;
    if (!strcmp(a->argv[0], "cuda"))
        return repl_fail(r, a->cmd, "the REPL runs networks on the CPU; build a GPU model.so with "
                         "cnnc --target=cuda -o (:cuda NODE and :ptx NODE show the GPU code)");
    return repl_fail(r, a->cmd, "unknown target '%s' (expected cpu or cuda)", a->argv[0]);
}

/* The command named by `name`: exact, or the only one it abbreviates. */
static const ReplCommand *find_command(Repl *r, const char *name)
{
    const ReplCommand *found = NULL;
    size_t n = strlen(name);
    for (int32_t i = 0; n > 1 && i < repl_ncommands; i++) {
        if (!strcmp(repl_commands[i].name, name)) return &repl_commands[i];
        if (strncmp(repl_commands[i].name, name, n)) continue;
        if (found) return repl_fail(r, name, "ambiguous command (see :help)"), NULL;
        found = &repl_commands[i];
    }
    if (!found) repl_fail(r, name, "unknown command (see :help)");
    return found;
}

static void split_args(ReplArgs *a, char *text)
{
    a->argc = 0;
    for (char *s = strtok(text, " \t"); s; s = strtok(NULL, " \t")) {
        if (a->argc == REPL_MAX_ARGS) break;
        a->argv[a->argc++] = s;
    }
}

void repl_command(Repl *r, char *line)
{
    line += strspn(line, " \t");
    size_t n = strcspn(line, " \t");
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)n, line);
    const ReplCommand *c = find_command(r, name);
    if (!c) return;
    const char *rest = line + n + strspn(line + n, " \t");
    size_t len = strlen(rest);
    while (len && (rest[len - 1] == ' ' || rest[len - 1] == '\t')) len--;
    char *trimmed = ir_xmalloc(len + 1), *words = ir_xmalloc(len + 1);
    memcpy(trimmed, rest, len);
    trimmed[len] = 0;
    memcpy(words, trimmed, len + 1);
    ReplArgs a = {.cmd = c->name, .rest = trimmed};
    split_args(&a, words);
    fflush(stdout);
    c->run(r, &a);
    fflush(stdout);
    free(trimmed);
    free(words);
}

int32_t repl_names(Repl *r, const char ***names)
{
    const char **v = ir_xmalloc(MAX_NAMES * sizeof *v);
    int32_t n = r->fe ? fe_session_names(r->fe, v, MAX_NAMES / 2) : 0;
    Graph *g = r->fe && fe_session_has_network(r->fe) ? r->src : NULL;
    for (int32_t i = 0; g && i < g->nnodes && n < MAX_NAMES - 1; i++)
        if (g->nodes[i].op != OP_PARAM) v[n++] = g->nodes[i].name;
    for (int32_t i = 0; g && i < g->noutputs && n < MAX_NAMES - 1; i++)
        v[n++] = g->outputs[i].name;
    *names = v;
    return n;
}
