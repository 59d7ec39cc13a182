/* elab.h: elaboration, the compile-time evaluator that runs a network's AST
 * once and builds its graph. All of its state is in one Elab, so statements
 * can also be fed one at a time into a live network (as a REPL would). */
#ifndef CNNC_ELAB_H
#define CNNC_ELAB_H

#include "ast.h"
#include "frontend.h"

/* ---- names.c: string maps and spelling suggestions ---------------------- */

/* An open-addressing map from strings to pointers; keys are not copied. */
typedef struct StrMap {
    const char **keys;
    void **vals;
    int32_t cap, n;
} StrMap;

void *fe_map_get(const StrMap *m, const char *key);
void fe_map_put(StrMap *m, Arena *a, const char *key, void *val);

/* Collects candidate spellings and keeps the closest to `wanted`. */
typedef struct Suggest {
    const char *wanted;
    const char *best;
    int32_t dist;
} Suggest;

void fe_suggest_init(Suggest *s, const char *wanted);
void fe_suggest_add(Suggest *s, const char *candidate);
/* "; did you mean 'stride'?" or "" when nothing is close. */
const char *fe_suggest_text(const Suggest *s, char *buf, size_t n);

/* ---- value.c: compile-time values --------------------------------------- */

typedef enum {
    V_ERROR, /* the result of a failed expression: poisons silently */
    V_NONE, V_BOOL, V_INT, V_FLOAT, V_STRING, V_LIST,
    V_TENSOR,   /* a node of the graph */
    V_CALLABLE, /* a layer, function or block, named without a call */
} ValueKind;

typedef struct Value Value;
typedef struct ValueList ValueList;
typedef struct Builtin Builtin;

typedef struct Callable {
    const char *name;
    const Builtin *builtin; /* or */
    const BlockDef *block;
} Callable;

struct Value {
    ValueKind kind;
    union {
        bool b;
        int64_t i;
        double f;
        const char *s;
        const ValueList *list;
        int32_t node;
        const Callable *fn;
    };
};

struct ValueList {
    int32_t n;
    int32_t depth; /* 1 + the deepest list among the items */
    Value *items;
};

typedef struct Elab Elab;

static inline Value fe_error_value(void) { return (Value){.kind = V_ERROR}; }
static inline Value fe_int(int64_t i) { return (Value){.kind = V_INT, .i = i}; }
static inline Value fe_float(double f) { return (Value){.kind = V_FLOAT, .f = f}; }
static inline Value fe_bool(bool b) { return (Value){.kind = V_BOOL, .b = b}; }
static inline Value fe_tensor(int32_t node) { return (Value){.kind = V_TENSOR, .node = node}; }
Value fe_list(Elab *E, int32_t n);                    /* n items, all none */
const char *fe_kind_name(ValueKind k);                /* "an int" */
const char *fe_value_str(const Elab *E, Value v);     /* "3", "\"same\"", "a tensor f32[1,3]" */
bool fe_value_ok(const Elab *E, Value v);             /* not poisoned */
bool fe_values_equal(const Elab *E, Value a, Value b);
/* + - * / // % on numbers (+ also joins lists and strings); comparisons. */
Value fe_arith(Elab *E, Operator op, SrcLoc loc, Value a, Value b);
Value fe_compare(Elab *E, Operator op, SrcLoc loc, Value a, Value b);
const TensorType *fe_tensor_type(const Elab *E, Value v);

/* ---- layers.c and funcs.c: built-in layers and functions ---------------- */

#define FE_MAX_PARAMS 10

/* A call of a built-in, its arguments bound to the signature's parameters. */
typedef struct Call {
    const Builtin *b;
    SrcLoc loc;       /* the callee */
    const char *name; /* layers: the layer's full name */
    Value args[FE_MAX_PARAMS];
    SrcLoc locs[FE_MAX_PARAMS];
    bool given[FE_MAX_PARAMS];
    const Value *rest; /* variadic: every positional argument */
    const SrcLoc *rest_locs;
    int32_t nrest;
} Call;

struct Builtin {
    const char *name;
    const char *params[FE_MAX_PARAMS + 1]; /* NULL-terminated */
    int32_t nrequired;
    bool variadic; /* positional arguments go to rest, params are keyword-only */
    bool layer;    /* builds nodes, so it is named and counts as a sequence stage */
    Value (*fn)(Elab *E, const Call *c);
};

const Builtin *fe_find_layer(const char *name);
const Builtin *fe_find_func(const char *name);
void fe_suggest_layers(Suggest *s);
void fe_suggest_funcs(Suggest *s);

/* Helpers for built-ins: nodes with inferred types, located at the call. */
int32_t fe_add_node(Elab *E, Op op, const int32_t *inputs, int32_t n, const Attrs *attrs,
                    const char *name, SrcLoc loc);
int32_t fe_add_param(Elab *E, const char *layer, const char *what, int32_t rank,
                     const int64_t *dims, SrcLoc loc);
/* The node that `x + y` / `x * y` builds, named like any unnamed layer. */
Value fe_tensor_binary(Elab *E, Op op, Value a, Value b, const char *name, SrcLoc loc);

/* ---- scope.c, elaborate.c, network.c: the evaluator ------------------------- */

typedef struct Var {
    const char *name;
    Value v;
} Var;

/* The names of one block invocation; `parent` is only used for the
 * `first`/`index` names of a repeated call's arguments. */
typedef struct Env {
    Var *vars;
    int32_t n, cap;
    struct Env *parent;
} Env;

typedef struct OpCount {
    const char *op;
    int32_t next;
    struct OpCount *link;
} OpCount;

/* A naming scope: the path of the enclosing instances and its counters. */
typedef struct Scope {
    const char *path; /* "" at the network, else "layer1.0" */
    int32_t stage;    /* next sequence index */
    OpCount *counts;  /* next K of OP_K per op */
    struct Scope *up;
} Scope;

typedef struct Frame {
    const BlockDef *block; /* NULL: the network */
    const char *instance;  /* the block instance's full name */
    SrcLoc call_loc;
    Env *env;
    bool returned;
    bool poisoned; /* a condition failed: a missing return is no news */
    Value ret;
    const Stmt *ret_stmt;
    struct Frame *caller;
} Frame;

typedef struct FileLoc {
    const char *from, *to;
    struct FileLoc *link;
} FileLoc;

struct Elab {
    Graph *g;
    Diag *d;
    Arena *arena; /* values, scopes, names: freed with the Elab */
    FeOptions opt;
    StrMap blocks;  /* name -> BlockDef */
    StrMap claimed; /* full names in use -> SrcLoc of the first use */
    Scope *scope;
    Frame *frame;
    Frame root;
    Env root_env;
    FileLoc *files; /* file names copied into the graph's arena */
    int errors_at_start;
    FeLimits lim;         /* opt.limits, defaults filled in */
    int64_t depth, steps; /* nesting now, work done so far */
    int64_t weight_bytes; /* of the parameters so far */
    bool stopped;         /* a limit was reached: the rest winds down silently */
};

/* How the next layer or block instance is named: `local` within the current
 * scope, or automatically (OP_K) when there is no Naming. */
typedef struct Naming {
    const char *local;
    SrcLoc loc;
} Naming;

/* Reports an error, then where it happened: one note per enclosing block
 * call. fe_call_notes adds those notes after a message reported otherwise. */
void fe_error(Elab *E, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fe_call_notes(Elab *E);

/* skipped.c: "unknown layer or block 'NAME'" with a suggestion; and the
 * check, for such calls, of statements skipped because a value they depend
 * on failed (`in_seq`: they are a sequence's stages). */
void fe_unknown_callee(Elab *E, const char *name, SrcLoc loc);
void fe_check_skipped(Elab *E, const StmtList *l, bool in_seq);

Var *fe_env_find(Env *env, const char *name);
void fe_env_set(Elab *E, Env *env, const char *name, Value v);
/* The claimed full name of a new layer or instance; a duplicate is an error. */
const char *fe_instance_name(Elab *E, const Naming *nm, const char *op, SrcLoc loc);
Naming fe_stage_naming(Elab *E, SrcLoc loc); /* the next sequence index */
void fe_push_scope(Elab *E, const char *full);
void fe_pop_scope(Elab *E);
SrcLoc fe_graph_loc(Elab *E, SrcLoc loc);

Elab *fe_elab_new(Diag *d, const FeOptions *opt);
void fe_elab_free(Elab *E);
/* Makes a block callable; false (after an error) if the name is taken. */
bool fe_elab_add_block(Elab *E, const BlockDef *b);
/* Starts the graph of `net`: its inputs become nodes and names. */
bool fe_elab_begin(Elab *E, const NetworkDef *net);
/* Starts from a graph made elsewhere (an imported ONNX model), owned from now
 * on: its inputs and outputs become variables where their names are identifiers. */
bool fe_elab_adopt(Elab *E, Graph *g);
/* [A-Za-z_][A-Za-z0-9_]*: a name that can be written as a variable, unless it
 * is a reserved word (binding one does no harm: it cannot be typed). */
bool fe_is_identifier(const char *s);
/* Runs one statement of the network body; false once it has returned. */
bool fe_elab_stmt(Elab *E, const Stmt *s);
/* Evaluates an expression written at the top of the network, as a bare
 * expression typed at a prompt, and returns its value. */
Value fe_elab_value(Elab *E, const Expr *e);
/* Sets the outputs from the return; hands over the graph, or NULL (and
 * frees it) when any error was reported since fe_elab_begin. */
Graph *fe_elab_finish(Elab *E, const NetworkDef *net);

/* limits.c: FeLimits. Each check reports once, at `loc`, and then stops
 * elaboration (E->stopped): every later check fails without a message.
 * fe_enter counts a step and one level of nesting (`what` is "expression" or
 * "statement"), which fe_leave gives back when it succeeded. */
bool fe_enter(Elab *E, SrcLoc loc, const char *what);
void fe_leave(Elab *E);
bool fe_spend(Elab *E, SrcLoc loc, int64_t steps);
bool fe_room_for_node(Elab *E, SrcLoc loc);
/* Sets a list's depth from its items: comparing and printing values recurse
 * over it. */
bool fe_list_nest(Elab *E, ValueList *l, SrcLoc loc);
/* Counts a parameter, of a size within IR_MAX_NUMEL, against --max-weights. */
bool fe_charge_param(Elab *E, const char *name, const TensorType *t, SrcLoc loc);

/* load.c: reads a model file and the files it includes into `E`, registering
 * their blocks; *net is the model's network, NULL for a file of blocks only.
 * The syntax trees live in `arena`. false after reporting errors. */
bool fe_load_defs(Elab *E, Arena *arena, const char *path, Diag *d, const NetworkDef **net);

#endif
