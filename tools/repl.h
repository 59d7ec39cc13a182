/* repl.h: `cnnc repl`, the interactive session over a network: what the files
 * tools/repl*.c share. A network is loaded or typed statement by statement,
 * compiled lazily through the same passes and LLVM module as `cnnc -o`, run
 * in-process by the JIT, and inspected (IR, code, memory, timings, errors). */
#ifndef CNNC_REPL_H
#define CNNC_REPL_H

#include "cg.h"
#include "frontend.h"
#include "ir.h"
#include "passes.h"
#include "rt.h"
#include "session.h"
#include "support.h"

/* Data given to one graph input by :input, or random data from a seed. */
typedef struct ReplInput {
    char *name;
    char *path;    /* NULL: random */
    uint64_t seed; /* random: uniform in [-1, 1) from (seed, name), as `cnnc run --seed` */
    int64_t item;  /* file: first batch item taken from it */
    NpyArray a;    /* the data; random data is made to the input's shape when needed */
} ReplInput;

/* One compilation of the network: the passes' graph, its LLVM module (also what
 * :llvm, :asm and :export show and write) and the JIT that runs it. Times in
 * seconds: frontend, passes, LLVM, object + link. */
typedef struct ReplBuild {
    Graph *g;
    Cg cg;
    bool lowered;
    CgJit *jit;
    const RtModel *desc;
    bool keep_values;
    double sec[4];
    char *asm_text; /* the module's assembly, made by the first :asm */
} ReplBuild;

typedef struct ReplCuda ReplCuda; /* the CUDA program of :cuda and :ptx (repl_cuda.c) */

typedef struct Repl {
    FeSession *fe;
    char *model;   /* the file of the last :load, NULL after :new */
    char *weights; /* its --weights */
    FeOptions fo;
    uint64_t weight_seed; /* for parameters without bound data */
    CgTarget target;
    uint64_t disabled;    /* passes switched off, one bit per pipeline index */
    int32_t threads;      /* 0: one per core */
    bool tty;             /* interactive: prompts, history */
    int nerrors;
    const char *script;   /* -c text still to read; NULL: standard input */
    const char *srcname;  /* "<stdin>", "<command>" */
    int32_t line;         /* of the text being handled */
    bool quit;
    bool cancel;          /* Ctrl-C at the prompt: drop the unfinished statement */
    ReplInput *inputs;
    int32_t ninputs;
    Graph *src;           /* the network as built, weights bound; NULL: not made yet */
    ReplBuild *build;     /* NULL: stale */
    cnn_model *model_inst;
    float **outputs;      /* of the last :run, in the order of build->g's outputs */
    int32_t noutputs;
    InterpResult interp;  /* the interpreter's values of src, made by :print of a node */
    ReplCuda *cuda;       /* NULL: not made */
} Repl;

/* An argument list: `rest` is the text after the command's name. */
#define REPL_MAX_ARGS 16
typedef struct ReplArgs {
    const char *cmd; /* ":load" */
    const char *rest;
    int argc;
    char *argv[REPL_MAX_ARGS];
} ReplArgs;

typedef struct ReplCommand {
    const char *name;  /* ":load" */
    const char *usage; /* arguments, for :help */
    const char *help;
    bool (*run)(Repl *r, const ReplArgs *a);
} ReplCommand;

/* ---- repl.c: the loop ----------------------------------------------------- */

int repl_main(int argc, char **argv);
/* "error: :cmd: message" on standard error, counted; returns false. */
bool repl_fail(Repl *r, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
double repl_now(void); /* seconds, monotonic */

/* A Diag whose messages are printed when it closes, location-less errors
 * prefixed with the command's name ("error: :load: ..."). */
typedef struct ReplDiag {
    Diag d;
    FILE *f;
    char *buf;
    size_t len;
} ReplDiag;
Diag *repl_diag_open(ReplDiag *rd);
/* Prints and counts the messages; true if there was no error. */
bool repl_diag_close(Repl *r, ReplDiag *rd, const char *cmd);

/* ---- repl_line.c: reading lines, history, completion ---------------------- */

void repl_line_init(Repl *r);
void repl_line_fini(Repl *r);
/* The next line without its newline (caller frees), NULL at the end of input.
 * With a terminal: libedit with `prompt`, history and completion. */
char *repl_line_read(Repl *r, const char *prompt);
/* Whether Ctrl-C was pressed since the last call (at a terminal). */
bool repl_interrupted(void);

/* ---- repl_cmds.c: the command table and the commands on the session ------- */

extern const ReplCommand repl_commands[];
extern const int32_t repl_ncommands;
/* Runs one command line (it starts with ':'). */
void repl_command(Repl *r, char *line);
/* Loads a model file (:load and `cnnc repl MODEL`); the session is replaced only on success. */
bool repl_load(Repl *r, const char *cmd, const char *path, const char *weights, int64_t batch);
/* Every name completion may offer: variables, nodes, outputs, inputs (caller frees the array). */
int32_t repl_names(Repl *r, const char ***names);

/* ---- repl_build.c: compiling, instances, running, exporting --------------- */

/* Forgets everything compiled from the network (after it changed). */
void repl_invalidate(Repl *r);
/* The network as built, with weights; NULL after an error. Cached. */
Graph *repl_source(Repl *r, const char *cmd);
/* Passes, LLVM lowering and the JIT over a copy of the network. */
ReplBuild *repl_build_new(Repl *r, const char *cmd, bool keep_values);
void repl_build_free(ReplBuild *b);
/* The current build and an instance of it, compiled when needed. */
bool repl_ensure_model(Repl *r, const char *cmd);
/* The current build's module (compiled when needed), or NULL. */
Cg *repl_module(Repl *r, const char *cmd);
cnn_model *repl_instance(Repl *r, const char *cmd, const ReplBuild *b);
/* The data of every graph input of `g`, in input order (caller frees the array only). */
const float **repl_input_data(Repl *r, const char *cmd, const Graph *g);
/* Runs instance `m` of `b` once into `outputs` (allocated by the caller, or by this
 * function when *outputs is NULL). */
bool repl_run_model(Repl *r, const char *cmd, const ReplBuild *b, cnn_model *m,
                    const float **inputs, float ***outputs);
void repl_free_outputs(float **outputs, int32_t n);
bool repl_export(Repl *r, const ReplArgs *a);
bool repl_time_compile(Repl *r, const ReplArgs *a);
int32_t repl_find_input(const Repl *r, const char *name);
/* The entry of input `name`, emptied (random, seed 0), or a new one. */
ReplInput *repl_input_slot(Repl *r, const char *name);

/* ---- repl_values.c: running and looking at values ------------------------- */

bool repl_cmd_run(Repl *r, const ReplArgs *a);
bool repl_cmd_print(Repl *r, const ReplArgs *a);
bool repl_cmd_save(Repl *r, const ReplArgs *a);
bool repl_cmd_top(Repl *r, const ReplArgs *a);
bool repl_cmd_input(Repl *r, const ReplArgs *a);
void repl_input_free(ReplInput *in);

/* ---- repl_inspect.c: IR, code, memory and timings ------------------------- */

bool repl_cmd_ir(Repl *r, const ReplArgs *a);
bool repl_cmd_dot(Repl *r, const ReplArgs *a);
bool repl_cmd_llvm(Repl *r, const ReplArgs *a);
bool repl_cmd_asm(Repl *r, const ReplArgs *a);
bool repl_cmd_mem(Repl *r, const ReplArgs *a);
bool repl_cmd_time(Repl *r, const ReplArgs *a);
bool repl_cmd_profile(Repl *r, const ReplArgs *a);

/* ---- repl_cuda.c: GPU code of a node's kernel ----------------------------- */

bool repl_cmd_cuda(Repl *r, const ReplArgs *a);
bool repl_cmd_ptx(Repl *r, const ReplArgs *a);
void repl_cuda_free(Repl *r);

/* ---- readback.c: values of a run, read where the plan put them ------------ */

/* Copies node `id`'s value after a run into `dst` as plain row-major f32 (ir_numel floats),
 * whatever its layout (NCHWc blocks undone) and wherever it lives (arena, caller's input or
 * output buffer, alias of another value). false for nodes without a value at run time
 * (PARAMs) or, without keep_values, values whose bytes may have been reused. */
bool repl_read_value(const Graph *g, int32_t id, const char *arena, const float *const *inputs,
                     const float *const *outputs, float *dst);

/* ---- repl_compare.c: the compiled model against the interpreter ----------- */

bool repl_cmd_compare(Repl *r, const ReplArgs *a);

#endif
