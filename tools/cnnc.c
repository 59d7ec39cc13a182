/* cnnc: the compiler driver. Parses flags, loads a model through the frontend,
 * and prints its IR or graph, runs it on the reference interpreter, or
 * compiles it (passes, then LLVM or CUDA) into a shared object with the runtime
 * linked in.
 * Only this file decides exit statuses: 0 on success, 1 on any error. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "cg.h"
#include "cnnc/abi.h"
#include "cli.h"
#include "cuda.h"
#include "frontend.h"
#include "ir.h"
#include "passes.h"
#include "repl.h"
#include "support.h"
#include "train.h"

#ifndef CNNC_RUNTIME_LIB
#define CNNC_RUNTIME_LIB NULL
#endif

/* EMIT_IR, EMIT_DOT and EMIT_CNN write the frontend's graph; the others compile. */
typedef enum { EMIT_NONE, EMIT_IR, EMIT_DOT, EMIT_IR_OPT, EMIT_PLAN, EMIT_LLVM, EMIT_ASM, EMIT_OBJ,
               EMIT_CUDA, EMIT_PTX, EMIT_CNN } Emit;

#define MAX_INPUT_FILES 16

typedef struct Options {
    bool run;              /* `cnnc run ...` */
    const char *model;     /* MODEL.cnn */
    const char *out;       /* -o */
    Emit emit;
    int64_t batch;         /* 0: as written */
    const char *weights;   /* --weights */
    bool random_weights;   /* --random-weights given */
    bool list_mismatches;  /* --list-weight-mismatches */
    uint64_t weight_seed;
    uint64_t input_seed;   /* --seed */
    const char *inputs[MAX_INPUT_FILES]; /* --input: FILE or NAME=FILE */
    int ninputs;
    int opt_level;         /* -O0..-O3 */
    const char *cpu;       /* --cpu */
    const char *features;  /* --features */
    ConvAlgo conv_algo;    /* --conv-algo */
    uint64_t disabled;     /* --disable-pass, one bit per pipeline index */
    int32_t dump_after;    /* --dump-after: pipeline index, -1: none */
    bool cuda;             /* --target=cuda */
    bool cpu_target;       /* --target=cpu given */
    CuTarget gpu;          /* --gpu-arch, --gpu-math */
    FeLimits limits;       /* --max-depth, --max-steps, ... */
    bool train;            /* --train */
    TrainOptions topt;     /* --loss, --optimizer, --lr, ... */
    const char *train_flag; /* the first training option given, for a missing --train */
    const char *labels;    /* cnnc run --train: --labels=Y.npy */
    const char *dump_grads; /* cnnc run --train: --dump-grads=DIR */
    bool verbose;          /* -v */
    bool no_cache;         /* --no-cache */
} Options;

static const char usage[] =
    "usage: cnnc MODEL.cnn -o MODEL.so [options]\n"
    "       cnnc MODEL.cnn --emit=ir|dot|ir-opt|plan|llvm|asm|obj [options]\n"
    "       cnnc MODEL.onnx --emit=cnn -o DIR [options]   (the model in the cnnc language)\n"
    "       cnnc run MODEL.cnn [options]\n"
    "       cnnc repl [MODEL.cnn] [options]   (interactive; cnnc repl --help)\n"
    "       cnnc --onnx-ops                   (the ONNX operators it imports)\n"
    "\n"
    "Compiles a network written in the cnnc language, or an ONNX model (a MODEL.onnx\n"
    "in place of MODEL.cnn, weights included), into a shared object with the C API\n"
    "of cnnc/model.h (the number of threads is chosen when it runs).\n"
    "\n"
    "  -o FILE             the shared object to write; with --emit, where to write\n"
    "  --emit=ir           print the graph IR, every shape inferred\n"
    "  --emit=dot          print the graph in Graphviz dot form\n"
    "  --emit=ir-opt       print the graph IR after the optimization passes\n"
    "  --emit=plan         print the memory plan: each value's place, size and lifetime\n"
    "  --emit=llvm|asm|obj print the LLVM IR, assembly or object code of the model\n"
    "  --emit=cuda|ptx     print the CUDA C or PTX of the model's GPU kernels (implies\n"
    "                      --target=cuda)\n"
    "  --emit=cnn -o DIR   write the graph as loaded in the cnnc language, DIR/MODEL.cnn,\n"
    "                      and its weights, DIR/MODEL.safetensors, to read, edit and\n"
    "                      compile again (DIR is made when missing)\n"
    "  --target=cpu|cuda   the machine the model runs on (default cpu); a CUDA model.so\n"
    "                      holds cubin for --gpu-arch and PTX, and needs only the CUDA\n"
    "                      driver (libcuda.so.1) where it runs\n"
    "  --gpu-arch=sm_XX    CUDA architecture, sm_70 .. sm_120 (default sm_80)\n"
    "  --gpu-math=tf32|f32 conv2d/dense on TF32 tensor cores (default) or in plain f32\n"
    "  -O0 .. -O3          LLVM optimization level (default -O2: the passes vector code\n"
    "                      needs; -O3: LLVM's whole pipeline); the graph passes always run\n"
    "  --cpu=NAME          target CPU (default: this machine's), e.g. x86-64-v3\n"
    "  --features=+F,-G    target features added to the CPU's, e.g. +avx2,+fma\n"
    "  --conv-algo=A       3×3 stride-1 conv2d: auto (default), direct, winograd (F(4×4,\n"
    "                      3×3) or F(2×2, 3×3) per layer), winograd4 or winograd2\n"
    "  --disable-pass=P    skip optimization pass P (repeatable)\n"
    "  --dump-after=P      print the graph IR after pass P to standard error\n"
    "  --batch=N           set the batch (leading symbolic) dimension of every input\n"
    "  --weights=FILE      bind parameters from a .safetensors file\n"
    "  --list-weight-mismatches  an error for every name of the model or of the\n"
    "                      --weights file that the other lacks (else, when many, a summary)\n"
    "  --random-weights=S  deterministic random parameters from seed S\n"
    "  --max-depth=N       nesting of expressions, statements and block calls (200,\n"
    "                      at most 5000)\n"
    "  --max-steps=N       elaboration work: expressions, statements, loop turns and\n"
    "                      list items (10000000)\n"
    "  --max-nodes=N       nodes of the graph (100000)\n"
    "  --max-weights=BYTES bytes of all parameters (4G; K, M, G suffixes are 1024^k)\n"
    "  --max-source=BYTES  bytes of one source file (16M, at most 1G)\n"
    "  --no-cache          compile even when the compile cache holds this model.so, and\n"
    "                      leave it out of the cache ($XDG_CACHE_HOME/cnnc, cnnc(1))\n"
    "  -v                  say on standard error what the compiler does, and the time\n"
    "                      of each phase\n"
    "  --help, --version\n";

/* The rest of --help, a literal of its own (see CliParser.usage_more). */
static const char usage_more[] =
    "\n"
    "  --train             the training step (docs/training.md): with -o, a training\n"
    "                      model.so (the C API of cnnc/train.h; cnntrain runs it); with\n"
    "                      --emit=ir, its gradient and update graphs; --emit=llvm|asm, its\n"
    "                      code; without --weights parameters start as PyTorch's, from\n"
    "                      --random-weights=S (default 0)\n"
    "  --loss=cross_entropy|mse   --optimizer=sgd|adam|adamw   --lr=X (default 0.01)\n"
    "  --momentum=X --nesterov --weight-decay=X --beta1=X --beta2=X --eps=X\n"
    "                      the optimizer's, defaults as torch.optim's\n"
    "\n"
    "cnnc run runs the model on the reference interpreter:\n"
    "  --input=X.npy       the input (NAME=X.npy for a model with several inputs)\n"
    "  --seed=S            random input in [-1, 1) from seed S (default 0) when no --input\n"
    "  -o OUT.npy          write the output (with several outputs: OUT.NAME.npy)\n"
    "  weights default to --random-weights=0\n"
    "  --train --labels=Y.npy --dump-grads=DIR   the loss and gradients instead:\n"
    "                      DIR/loss.npy, DIR/grad.NAME.npy (labels: random from --seed)\n";

static bool set_emit(Options *o, const char *v)
{
    static const struct { const char *name; Emit e; } kinds[] = {
        {"ir", EMIT_IR}, {"dot", EMIT_DOT}, {"ir-opt", EMIT_IR_OPT}, {"plan", EMIT_PLAN},
        {"llvm", EMIT_LLVM}, {"asm", EMIT_ASM}, {"obj", EMIT_OBJ}, {"cuda", EMIT_CUDA},
        {"ptx", EMIT_PTX}, {"cnn", EMIT_CNN},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(v, kinds[i].name)) return o->emit = kinds[i].e, true;
    cli_fail("unknown --emit kind '%s' (expected ir, dot, ir-opt, plan, llvm, asm, obj, cuda, "
         "ptx or cnn)", v);
    return false;
}

static bool is_opt_level(const char *a)
{
    return a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3];
}

/* "simplify, fold_bn, ...": the pipeline's pass names. */
static const char *pass_names(void)
{
    static char buf[512];
    size_t n = 0;
    buf[0] = 0;
    for (int32_t i = 0; i < pass_count && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? ", " : "",
                              pass_pipeline[i].name);
    return buf;
}

static int32_t find_pass(const char *flag, const char *name)
{
    int32_t i = pass_index(name);
    if (i < 0) cli_fail("%s: unknown pass '%s' (passes: %s)", flag, name, pass_names());
    return i;
}

static bool disable_pass(Options *o, const char *name)
{
    int32_t i = find_pass("--disable-pass", name);
    if (i < 0) return false;
    if (pass_pipeline[i].required)
        return cli_fail("pass '%s' is required for code generation and cannot be disabled", name),
               false;
    o->disabled |= UINT64_C(1) << i;
    return true;
}

static bool set_dump_after(Options *o, const char *name)
{
    o->dump_after = find_pass("--dump-after", name);
    return o->dump_after >= 0;
}

static bool set_u64(const char *flag, const char *v, uint64_t *out, bool positive)
{
    if (!cli_parse_u64(v, out) || (positive && *out == 0)) {
        cli_fail("%s expects a %s integer, got '%s'", flag, positive ? "positive" : "non-negative",
                 v);
        return false;
    }
    return true;
}

/* The power of two of a size suffix: "" 0, K 10, M 20, G 30; -1: none of them. */
static int size_shift(const char *suffix)
{
    if (!suffix[0]) return 0;
    if (suffix[1]) return -1;
    switch (suffix[0]) {
    case 'k': case 'K': return 10;
    case 'm': case 'M': return 20;
    case 'g': case 'G': return 30;
    default: return -1;
    }
}

/* A positive integer with an optional K, M or G (powers of 1024) for the
 * limits of --max-*; `most` bounds it. */
static bool set_limit(const char *flag, const char *v, int64_t most, int64_t *out)
{
    char *end = (char *)v;
    errno = 0;
    unsigned long long x = *v >= '0' && *v <= '9' ? strtoull(v, &end, 10) : 0;
    int shift = size_shift(end);
    if (errno || x == 0 || shift < 0 || x > (unsigned long long)most >> shift) {
        cli_fail("%s expects a positive integer (K, M, G allowed) of at most %" PRId64 ", got '%s'",
             flag, most, v);
        return false;
    }
    *out = (int64_t)(x << shift);
    return true;
}

/* 1: a --max-* limit was set, -1: its value was bad (reported), 0: not one. */
static int parse_limit(Options *o, int argc, char **argv, int *i, bool *bad)
{
    FeLimits *l = &o->limits;
    const struct {
        const char *flag;
        int64_t *field;
        int64_t most;
    } limits[] = {
        {"--max-depth", &l->max_depth, FE_MAX_MAX_DEPTH},
        {"--max-steps", &l->max_steps, INT64_MAX},
        {"--max-nodes", &l->max_nodes, INT32_MAX / 2},
        {"--max-weights", &l->max_weights, INT64_MAX / 2},
        {"--max-source", &l->max_source, FE_MAX_MAX_SOURCE},
    };
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        const char *v = cli_flag_value(limits[k].flag, argc, argv, i, bad);
        if (v) return set_limit(limits[k].flag, v, limits[k].most, limits[k].field) ? 1 : -1;
        if (*bad) return -1;
    }
    return 0;
}

static bool set_target(Options *o, const char *v)
{
    if (!strcmp(v, "cuda")) return o->cuda = true, true;
    if (!strcmp(v, "cpu")) return o->cuda = false, o->cpu_target = true, true;
    cli_fail("unknown --target '%s' (expected cpu or cuda)", v);
    return false;
}

static bool set_gpu(Options *o, const char *flag, const char *v)
{
    if (!strcmp(flag, "--gpu-arch") && !cg_cuda_parse_arch(v, &o->gpu.arch))
        return cli_fail("--gpu-arch expects sm_70 .. sm_120 (e.g. sm_80, sm_90), got '%s'", v),
               false;
    if (!strcmp(flag, "--gpu-math") && !cg_cuda_parse_math(v, &o->gpu.math))
        return cli_fail("--gpu-math expects f32 or tf32, got '%s'", v), false;
    return true;
}

/* A finite float for a training flag. */
static bool set_float(const char *flag, const char *v, float *out)
{
    char *end;
    errno = 0;
    float f = strtof(v, &end);
    if (!*v || *end || errno || !isfinite(f))
        return cli_fail("%s expects a finite number, got '%s'", flag, v), false;
    *out = f;
    return true;
}

static bool set_choice(const char *flag, const char *v, const char *const *names, int n,
                       int *out)
{
    for (int k = 0; k < n; k++)
        if (!strcmp(v, names[k])) return *out = k, true;
    char list[128] = "";
    for (int k = 0; k < n; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", names[k],
                 k + 2 < n ? ", " : k + 1 < n ? " or " : "");
    return cli_fail("%s expects %s, got '%s'", flag, list, v), false;
}

/* The training options (--train and what only it takes); 0: not one, -1: a bad one. */
static int parse_train_option(Options *o, int argc, char **argv, int *i)
{
    static const char *const losses[] = {"cross_entropy", "mse"};
    static const char *const optims[] = {"sgd", "adam", "adamw"};
    static const struct { const char *flag; size_t offset; } floats[] = {
        {"--lr", offsetof(TrainOptions, lr)}, {"--momentum", offsetof(TrainOptions, momentum)},
        {"--weight-decay", offsetof(TrainOptions, weight_decay)},
        {"--beta1", offsetof(TrainOptions, beta1)}, {"--beta2", offsetof(TrainOptions, beta2)},
        {"--eps", offsetof(TrainOptions, eps)},
    };
    bool bad = false;
    const char *v, *flag = argv[*i];
    int k;
    if (!strcmp(flag, "--train")) return o->train = true, 1;
    if (!o->train_flag) o->train_flag = flag;
    if (!strcmp(flag, "--nesterov")) return o->topt.nesterov = true, 1;
    if ((v = cli_flag_value("--loss", argc, argv, i, &bad)))
        return set_choice("--loss", v, losses, 2, &k) ? (o->topt.loss = (LossKind)k, 1) : -1;
    if ((v = cli_flag_value("--optimizer", argc, argv, i, &bad)))
        return set_choice("--optimizer", v, optims, 3, &k) ? (o->topt.optim = (OptimKind)k, 1)
                                                           : -1;
    for (size_t f = 0; f < sizeof floats / sizeof floats[0]; f++)
        if ((v = cli_flag_value(floats[f].flag, argc, argv, i, &bad)))
            return set_float(floats[f].flag, v, (float *)((char *)&o->topt + floats[f].offset))
                       ? 1 : -1;
    if ((v = cli_flag_value("--labels", argc, argv, i, &bad))) return o->labels = v, 1;
    if ((v = cli_flag_value("--dump-grads", argc, argv, i, &bad))) return o->dump_grads = v, 1;
    if (o->train_flag == flag) o->train_flag = NULL;
    return bad ? -1 : 0;
}

/* One option at argv[*i]; returns false after reporting a bad one. */
static bool parse_option(void *ctx, int argc, char **argv, int *i)
{
    Options *o = ctx;
    bool bad = false;
    const char *v;
    uint64_t u;
    if ((v = cli_flag_value("--emit", argc, argv, i, &bad))) return set_emit(o, v);
    if (is_opt_level(argv[*i])) return o->opt_level = argv[*i][2] - '0', true;
    if ((v = cli_flag_value("--cpu", argc, argv, i, &bad))) return o->cpu = v, true;
    if ((v = cli_flag_value("--conv-algo", argc, argv, i, &bad))) {
        static const char *const algos[] = {"auto", "direct", "winograd", "winograd4",
                                            "winograd2"};
        int k;
        return set_choice("--conv-algo", v, algos, 5, &k) ? (o->conv_algo = (ConvAlgo)k, true)
                                                         : false;
    }
    if ((v = cli_flag_value("--target", argc, argv, i, &bad))) return set_target(o, v);
    if ((v = cli_flag_value("--gpu-arch", argc, argv, i, &bad))) return set_gpu(o, "--gpu-arch", v);
    if ((v = cli_flag_value("--gpu-math", argc, argv, i, &bad))) return set_gpu(o, "--gpu-math", v);
    if ((v = cli_flag_value("--features", argc, argv, i, &bad))) return o->features = v, true;
    if ((v = cli_flag_value("--disable-pass", argc, argv, i, &bad))) return disable_pass(o, v);
    if ((v = cli_flag_value("--dump-after", argc, argv, i, &bad))) return set_dump_after(o, v);
    if (!strncmp(argv[*i], "--threads", 9))
        return cli_fail("the number of threads is chosen when the model runs "
                    "(cnn_options.num_threads), not by the compiler"), false;
    if ((v = cli_flag_value("-o", argc, argv, i, &bad))) return o->out = v, true;
    if (!strcmp(argv[*i], "-v")) return o->verbose = true, true;
    if (!strcmp(argv[*i], "--no-cache")) return o->no_cache = true, true;
    if ((v = cli_flag_value("--weights", argc, argv, i, &bad))) return o->weights = v, true;
    if (!strcmp(argv[*i], "--list-weight-mismatches")) return o->list_mismatches = true, true;
    if ((v = cli_flag_value("--batch", argc, argv, i, &bad))) {
        if (!set_u64("--batch", v, &u, true)) return false;
        if (u > INT64_MAX) return cli_fail("--batch=%s is too large", v), false;
        o->batch = (int64_t)u;
        return true;
    }
    if ((v = cli_flag_value("--random-weights", argc, argv, i, &bad))) {
        o->random_weights = true;
        return set_u64("--random-weights", v, &o->weight_seed, false);
    }
    if ((v = cli_flag_value("--seed", argc, argv, i, &bad))) {
        if (!o->run) return cli_fail("--seed is an option of 'cnnc run'"), false;
        return set_u64("--seed", v, &o->input_seed, false);
    }
    if ((v = cli_flag_value("--input", argc, argv, i, &bad))) {
        if (!o->run) return cli_fail("--input is an option of 'cnnc run'"), false;
        if (o->ninputs == MAX_INPUT_FILES) return cli_fail("too many --input options"), false;
        o->inputs[o->ninputs++] = v;
        return true;
    }
    int limit = parse_limit(o, argc, argv, i, &bad);
    if (limit) return limit > 0;
    if (bad) return false;
    int train = parse_train_option(o, argc, argv, i);
    if (train) return train > 0;
    cli_fail("unknown option '%s' (see cnnc --help)", argv[*i]);
    return false;
}

static bool set_model(void *ctx, const char *arg)
{
    Options *o = ctx;
    if (o->model) return cli_fail("more than one model file: '%s' and '%s'", o->model, arg), false;
    o->model = arg;
    return true;
}

/* --emit=cuda|ptx choose the CUDA target; CPU code is not emitted for it. A
 * CUDA model.so needs NVRTC, which is known before the model is read. */
static int check_target(Options *o)
{
    bool gpu_emit = o->emit == EMIT_CUDA || o->emit == EMIT_PTX;
    if (gpu_emit && o->cpu_target)
        return cli_fail("--emit=%s needs --target=cuda", o->emit == EMIT_CUDA ? "cuda" : "ptx"), 1;
    o->cuda = o->cuda || gpu_emit;
    if (o->run && o->cuda)
        return cli_fail("'cnnc run' runs the reference interpreter (no --target)"), 1;
    if (o->cuda && (o->emit == EMIT_LLVM || o->emit == EMIT_ASM || o->emit == EMIT_OBJ))
        return cli_fail("--emit=llvm|asm|obj is CPU code; with --target=cuda use "
                        "--emit=cuda|ptx"), 1;
    if (o->cuda && !o->run && o->emit == EMIT_NONE && !cg_cuda_have_nvrtc())
        return cli_fail("this cnnc was built without NVRTC, so it cannot build a CUDA model.so "
                    "(--emit=cuda prints the CUDA C)"), 1;
    char err[4096];
    CgTarget t = {.cpu = o->cpu, .features = o->features};
    if (!o->cuda && !cg_check_target(&t, err, sizeof err)) return cli_fail("%s", err), 1;
    return 0;
}

/* Returns 0 to go on, 1 on a bad command line, 2 when --help/--version was handled. */
static int parse_args(Options *o, int argc, char **argv)
{
    static const CliParser parser = {usage, "cnnc " CNNC_VERSION "\n", parse_option, set_model,
                                     usage_more};
    o->run = argc > 1 && !strcmp(argv[1], "run");
    int rc = cli_parse(&parser, o, argc, argv, o->run ? 2 : 1);
    if (rc) return rc;
    if (!o->model) return cli_fail("no model file (see cnnc --help)"), 1;
    if (o->weights && o->random_weights)
        return cli_fail("--weights and --random-weights exclude each other"), 1;
    if (o->run && o->emit != EMIT_NONE) return cli_fail("--emit is not an option of 'cnnc run'"), 1;
    if (o->train_flag && !o->train) return cli_fail("%s is an option of --train", o->train_flag), 1;
    if ((o->labels || o->dump_grads) && !o->run)
        return cli_fail("--labels and --dump-grads are options of 'cnnc run --train'"), 1;
    const char *bad = o->train ? train_options_check(&o->topt) : NULL;
    if (bad) return cli_fail("training options: %s", bad), 1;
    if (o->train && o->run && o->out)
        return cli_fail("'cnnc run --train' writes its values with --dump-grads=DIR, not -o"), 1;
    if (!o->run && o->emit == EMIT_NONE && !o->out)
        return cli_fail("nothing to do: give -o MODEL.so, --emit=KIND, or use 'cnnc run'"), 1;
    if (o->emit == EMIT_CNN && (!o->out || !strcmp(o->out, "-")))
        return cli_fail("--emit=cnn writes two files, MODEL.cnn and MODEL.safetensors: give "
                        "-o DIR, the folder for them"), 1;
    if (o->out && !strcmp(o->out, "-")) {
        if (o->run || o->emit == EMIT_NONE)
            return cli_fail("-o -: %s cannot go to standard output; give a file name",
                        o->run ? "an .npy output" : "a model.so"), 1;
        o->out = NULL; /* --emit=KIND -o - prints, as without -o */
    }
    return check_target(o);
}

/* A device or pipe (-o /dev/null) is not a model.so's place: the linker would
 * replace it with a regular file. */
static bool is_special(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

static bool has_unbound_params(const Graph *g)
{
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_PARAM && !g->nodes[i].data) return true;
    return false;
}

/* A deployable model never gets random weights unless asked for; those an
 * ONNX file holds are bound already (--random-weights replaces them). */
/* Wall-clock seconds of the phases of this compile, which -v prints. */
static struct {
    double parse, weights, passes;
    CgTimes cg;
} phase;

static void print_phases(double total)
{
    const CgTimes *c = &phase.cg;
    fprintf(stderr,
            "cnnc: time (wall, s): parse %.3f, weights %.3f, passes %.3f, lower %.3f, "
            "optimize %.3f, codegen %.3f, link %.3f, total %.3f\n",
            phase.parse, phase.weights, phase.passes, c->lower, c->optimize, c->codegen, c->link,
            total);
}

static bool bind_weights_now(Graph *g, const Options *o, Diag *d)
{
    FeBindOptions bind = {o->list_mismatches, "--list-weight-mismatches"};
    if (o->weights) return fe_bind_safetensors_with(g, o->weights, d, &bind);
    if (o->train) return train_init_params(g, o->weight_seed), true;
    if (o->random_weights) fe_random_weights(g, o->weight_seed);
    else if (o->run) fe_random_unbound_weights(g, o->weight_seed);
    else if (o->emit != EMIT_IR && o->emit != EMIT_DOT && has_unbound_params(g)) {
        cli_fail("model has parameters; give --weights=FILE or --random-weights=SEED");
        return false;
    }
    return true;
}

static bool bind_weights(Graph *g, const Options *o, Diag *d)
{
    double t0 = cg_seconds();
    bool ok = bind_weights_now(g, o, d);
    phase.weights += cg_seconds() - t0;
    return ok;
}

static bool print_graph(FILE *f, void *ctx)
{
    ir_print(ctx, f);
    return !ferror(f);
}

static bool print_dot(FILE *f, void *ctx)
{
    ir_print_dot(ctx, f);
    return !ferror(f);
}

/* Writes to -o through a temporary file (ir_write_atomic), or to standard output. */
static int write_out(const Options *o, bool (*emit)(FILE *f, void *ctx), void *ctx)
{
    char err[512];
    if (!o->out) {
        errno = 0;
        if (emit(stdout, ctx) && fflush(stdout) == 0) return 0;
        return cli_fail("cannot write to standard output: %s", strerror(errno ? errno : EIO)), 1;
    }
    if (ir_write_atomic(o->out, emit, ctx, err, sizeof err)) return 0;
    cli_fail("%s", err);
    return 1;
}

static int emit(Graph *g, const Options *o)
{
    return write_out(o, o->emit == EMIT_IR ? print_graph : print_dot, g);
}

/* MODEL of a model path DIR/MODEL.EXT; "model" when that leaves nothing. */
static char *model_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    char *stem = ir_xstrdup(base ? base + 1 : path);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
    if (!stem[0] || !strcmp(stem, ".") || !strcmp(stem, "..")) {
        free(stem);
        stem = ir_xstrdup("model");
    }
    return stem;
}

static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* A file --emit=cnn would write over that this run reads. */
static const char *read_file_at(const Options *o, const char *path)
{
    return same_file(path, o->model) ? o->model : same_file(path, o->weights) ? o->weights : NULL;
}

/* --emit=cnn: DIR/MODEL.cnn and DIR/MODEL.safetensors. A folder made here is
 * removed again when they are not written. */
static int emit_cnn(const Graph *g, const Options *o, Diag *d)
{
    struct stat st;
    bool made = false;
    if (stat(o->out, &st) != 0) {
        if (errno != ENOENT || mkdir(o->out, 0777) != 0)
            return cli_fail("cannot make the folder '%s': %s", o->out, strerror(errno)), 1;
        made = true;
    } else if (!S_ISDIR(st.st_mode)) {
        return cli_fail("-o '%s' is not a folder (--emit=cnn writes MODEL.cnn and "
                        "MODEL.safetensors into one)", o->out), 1;
    }
    char *model = model_stem(o->model);
    const char *exts[] = {"cnn", "safetensors"};
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        char *path = ir_xmalloc(strlen(o->out) + strlen(model) + 16);
        sprintf(path, "%s/%s.%s", o->out, model, exts[i]);
        const char *input = read_file_at(o, path);
        if (input) {
            cli_fail("--emit=cnn would write '%s' over '%s', which it reads; give another -o DIR",
                     path, input);
            rc = 1;
        }
        free(path);
    }
    if (!rc && !fe_emit_cnn(g, o->out, model, o->model, d)) rc = 1;
    if (rc && made) rmdir(o->out);
    free(model);
    return rc;
}

/* Finds the file for input `name` among --input options (FILE or NAME=FILE). */
static const char *input_file(const Options *o, const char *name, int32_t ninputs)
{
    size_t n = strlen(name);
    for (int i = 0; i < o->ninputs; i++) {
        const char *s = o->inputs[i];
        if (!strncmp(s, name, n) && s[n] == '=') return s + n + 1;
    }
    if (ninputs == 1 && o->ninputs == 1 && !strchr(o->inputs[0], '=')) return o->inputs[0];
    return NULL;
}

static bool check_input_options(const Graph *g, const Options *o)
{
    int32_t n = ir_num_inputs(g);
    if (o->ninputs == 0) return true;
    bool ok = true;
    for (int32_t i = 0; i < n; i++) {
        const char *name = g->nodes[ir_input_node(g, i)].name;
        if (!input_file(o, name, n)) cli_fail("no --input for input '%s'", name), ok = false;
    }
    if (o->ninputs > n) cli_fail("%d --input options for %d input(s)", o->ninputs, n), ok = false;
    return ok;
}

static float *random_input(const Node *in, uint64_t seed)
{
    int64_t n = ir_numel(&in->type);
    float *x = ir_try_malloc((size_t)n * sizeof *x);
    if (!x) return cli_fail("cannot allocate %.1f GiB for input '%s'", (double)n * 4 / (1 << 30),
                            in->name), NULL;
    cli_random_input(x, n, seed, in->name);
    return x;
}

static float *load_input(const Node *in, const char *path)
{
    char err[512], want[128], got[128];
    NpyArray a;
    if (!ir_npy_read(path, &a, err, sizeof err)) return cli_fail("%s", err), NULL;
    TensorType t = ir_type_f32(a.rank, a.dims);
    if (ir_type_eq(&t, &in->type)) return a.data;
    cli_fail("input '%s' expects %s, got %s from '%s'", in->name,
         ir_type_str(&in->type, want, sizeof want), ir_type_str(&t, got, sizeof got), path);
    free(a.data);
    return NULL;
}

static bool write_outputs(const Graph *g, const Options *o, const InterpResult *res)
{
    bool ok = true;
    for (int32_t k = 0; k < g->noutputs; k++) {
        const GraphOutput *go = &g->outputs[k];
        const float *v = res->values[go->node];
        const TensorType *t = &g->nodes[go->node].type;
        char err[512], ts[128];
        if (!o->out) {
            cli_print_summary(go->name, ir_type_str(t, ts, sizeof ts), v, ir_numel(t));
            continue;
        }
        char *path = cli_output_path(o->out, go->name, g->noutputs);
        if (!ir_npy_write(path, v, t->rank, t->dims, err, sizeof err))
            cli_fail("%s", err), ok = false;
        free(path);
    }
    return ok;
}

static int run(Graph *g, const Options *o)
{
    if (!check_input_options(g, o)) return 1;
    int32_t n = ir_num_inputs(g);
    float **inputs = ir_xcalloc((size_t)n + 1, sizeof *inputs);
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) {
        const Node *in = &g->nodes[ir_input_node(g, i)];
        const char *path = o->ninputs ? input_file(o, in->name, n) : NULL;
        inputs[i] = path ? load_input(in, path) : random_input(in, o->input_seed);
        ok = inputs[i] != NULL;
    }
    InterpResult res = {0};
    char err[512];
    if (ok && !(ok = ir_interp(g, (const float *const *)inputs, &res, err, sizeof err)))
        cli_fail("%s", err);
    if (ok) ok = write_outputs(g, o, &res);
    if (res.values) ir_interp_free(&res);
    for (int32_t i = 0; i < n; i++) free(inputs[i]);
    free(inputs);
    return ok ? 0 : 1;
}

/* ---- training ------------------------------------------------------------- */

/* The labels of `cnnc run --train`: --labels, or random class indices (cross-entropy)
 * or targets in [-1, 1) (mean squared error) from --seed. */
static float *train_labels(const TrainStep *s, const Graph *g, const Options *o)
{
    const Node *in = &s->grad->nodes[s->label_node];
    if (o->labels) return load_input(in, o->labels);
    float *y = random_input(in, o->input_seed + 1);
    if (!y || s->loss != LOSS_CROSS_ENTROPY) return y;
    int64_t classes = g->nodes[g->outputs[0].node].type.dims[1];
    for (int64_t i = 0; i < ir_numel(&in->type); i++) {
        int64_t c = (int64_t)((y[i] + 1.0f) * 0.5f * (float)classes);
        y[i] = (float)(c < classes ? c : classes - 1);
    }
    return y;
}

/* DIR/NAME.npy per output of the grad graph, ':' in a name written as '.'. */
static bool dump_grads(const Graph *gg, const InterpResult *res, const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return cli_fail("cannot make the folder '%s': %s", dir, strerror(errno)), false;
    bool ok = true;
    for (int32_t k = 0; k < gg->noutputs && ok; k++) {
        const GraphOutput *go = &gg->outputs[k];
        const TensorType *t = &gg->nodes[go->node].type;
        size_t len = strlen(dir) + strlen(go->name) + 6;
        char *path = ir_xmalloc(len), err[512];
        snprintf(path, len, "%s/%s.npy", dir, go->name);
        for (char *c = path + strlen(dir) + 1; *c; c++)
            if (*c == ':' || *c == '/') *c = '.';
        if (!ir_npy_write(path, res->values[go->node], t->rank, t->dims, err, sizeof err))
            cli_fail("%s", err), ok = false;
        free(path);
    }
    return ok;
}

/* `cnnc run --train`: the grad graph on the interpreter with the network's inputs, the
 * labels, rng = (seed, 0) and the parameters' initial values. */
static int run_train(Graph *g, const Options *o, Diag *d)
{
    if (!check_input_options(g, o)) return 1;
    TrainStep s;
    if (!train_build(g, &o->topt, &s, d)) return 1;
    const Graph *gg = s.grad;
    int32_t n = ir_num_inputs(g), total = ir_num_inputs(gg);
    const float **inputs = ir_xcalloc((size_t)total + 1, sizeof *inputs);
    float **owned = ir_xcalloc((size_t)n + 1, sizeof *owned); /* inputs and labels */
    float rng[2] = {(float)(o->input_seed % (1u << 24)), 0};
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) {
        const Node *in = &g->nodes[ir_input_node(g, i)];
        const char *path = o->ninputs ? input_file(o, in->name, n) : NULL;
        inputs[i] = owned[i] = path ? load_input(in, path) : random_input(in, o->input_seed);
        ok = inputs[i] != NULL;
    }
    if (ok) ok = (inputs[n] = owned[n] = train_labels(&s, g, o)) != NULL;
    inputs[n + 1] = rng;
    for (int32_t k = 0; k < s.nparams; k++) inputs[n + 2 + k] = s.params[k].init;
    InterpResult res = {0};
    char err[512];
    if (ok && !(ok = ir_interp(gg, inputs, &res, err, sizeof err))) cli_fail("%s", err);
    if (ok && o->dump_grads) ok = dump_grads(gg, &res, o->dump_grads);
    else if (ok) {
        Options print = *o;
        print.out = NULL;
        write_outputs(gg, &print, &res);
    }
    if (res.values) ir_interp_free(&res);
    for (int32_t i = 0; i < n + 1; i++) free(owned[i]);
    free(owned);
    free(inputs);
    train_step_free(&s);
    return ok ? 0 : 1;
}

static bool print_train(FILE *f, void *ctx)
{
    const TrainStep *s = ctx;
    fputs("# grad\n", f);
    ir_print(s->grad, f);
    fputs("# apply\n", f);
    ir_print(s->apply, f);
    return !ferror(f);
}

/* ---- compiling ------------------------------------------------------------ */

static bool write_buffer(FILE *f, void *ctx)
{
    LLVMMemoryBufferRef b = ctx;
    size_t n = LLVMGetBufferSize(b);
    return fwrite(LLVMGetBufferStart(b), 1, n, f) == n;
}

static bool write_string(FILE *f, void *ctx)
{
    return fputs(ctx, f) >= 0;
}

/* The object code linked with the runtime into -o. */
static int link_model(Cg *cg, const Options *o)
{
    char err[8192];
    if (is_special(o->out)) return cli_fail("-o '%s' is not a regular file", o->out), 1;
    char *rt = cg_find_runtime(CNNC_RUNTIME_LIB);
    if (!rt) return cli_fail("runtime library not found (set CNNC_RUNTIME to libcnnc_rt.a)"), 1;
    bool ok = cg_link_shared(cg, rt, o->out, err, sizeof err);
    if (!ok) cli_fail("linking '%s' failed:\n%s", o->out, err);
    free(rt);
    return ok ? 0 : 1;
}

static int emit_code(Cg *cg, const Options *o)
{
    char err[512];
    if (o->emit == EMIT_LLVM) {
        char *text = cg_print_ir(cg);
        int rc = write_out(o, write_string, text);
        LLVMDisposeMessage(text);
        return rc;
    }
    if (o->emit == EMIT_NONE) return link_model(cg, o);
    LLVMCodeGenFileType kind = o->emit == EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile;
    /* An object file stands alone; LLVM IR and assembly show the code as model.so links
     * it, its weights left out (an external cnnc_weights). */
    if (kind == LLVMObjectFile) cg_embed_weights(cg);
    LLVMMemoryBufferRef b = cg_emit_memory(cg, kind, err, sizeof err);
    if (!b) return cli_fail("%s", err), 1;
    int rc = write_out(o, write_buffer, b);
    LLVMDisposeMemoryBuffer(b);
    return rc;
}

/* ---- compiling a training step ---------------------------------------------- */

/* The description of the training model.so: its tensors, loss and optimizer. The
 * parameters array is malloc'd. */
static CgTrain train_desc(const TrainStep *s, const TrainOptions *to)
{
    static const int32_t kinds[] = {[TP_WEIGHT] = RT_TRAIN_WEIGHT, [TP_BUFFER] = RT_TRAIN_BUFFER,
                                    [TP_STATE] = RT_TRAIN_STATE};
    int32_t n = s->nparams + s->nstate;
    CgTrainParam *p = ir_xcalloc((size_t)n + 1, sizeof *p);
    for (int32_t i = 0; i < n; i++) {
        const TrainParam *q = i < s->nparams ? &s->params[i] : &s->state[i - s->nparams];
        p[i] = (CgTrainParam){q->name, q->type, kinds[q->kind], q->init};
    }
    const TensorType *out = &s->eval->nodes[s->eval->outputs[0].node].type;
    return (CgTrain){p, s->nparams, s->ntrainable, s->nstate,
                     s->loss == LOSS_MSE ? RT_LOSS_MSE : RT_LOSS_CROSS_ENTROPY,
                     s->loss == LOSS_MSE ? 0 : (int32_t)out->dims[out->rank - 1],
                     to->optim == OPTIM_ADAMW ? RT_OPTIM_ADAMW
                     : to->optim == OPTIM_ADAM ? RT_OPTIM_ADAM : RT_OPTIM_SGD,
                     to->lr, to->beta1, to->beta2};
}

/* --emit=llvm|asm of a training model: its three modules one after another. */
typedef struct TrainCode {
    CgTrainModel *m;
    Emit emit;
    char err[512];
} TrainCode;

static bool print_train_code(FILE *f, void *ctx)
{
    TrainCode *c = ctx;
    for (int32_t i = 0; i < 3; i++) {
        if (c->emit == EMIT_LLVM) {
            char *text = cg_print_ir(&c->m->cg[i]);
            bool ok = fputs(text, f) >= 0;
            LLVMDisposeMessage(text);
            if (!ok) return false;
            continue;
        }
        LLVMMemoryBufferRef b = cg_emit_memory(&c->m->cg[i], LLVMAssemblyFile, c->err,
                                               sizeof c->err);
        if (!b) return false;
        bool ok = write_buffer(f, b);
        LLVMDisposeMemoryBuffer(b);
        if (!ok) return false;
    }
    return !ferror(f);
}

/* The three graphs through the passes in plain layouts (the training kernels read and
 * write NCHW) and LLVM, linked with the runtime into -o (or printed). */
static int link_train(TrainStep *s, const Options *o, Diag *d)
{
    int32_t ninputs = ir_num_inputs(s->eval) - s->nparams;
    if (ninputs != 1)
        return cli_fail("--train: the training API (cnnc/train.h) takes a network of one input; "
                        "'%s' has %d", o->model, (int)ninputs), 1;
    CgTarget t = {.cpu = o->cpu, .features = o->features, .opt_level = o->opt_level};
    PassOptions po;
    pass_options_init(&po);
    po.block = 0;
    po.disabled = o->disabled;
    po.dump_after = o->dump_after;
    po.dump = stderr;
    Graph *graphs[3] = {s->grad, s->apply, s->eval};
    for (int32_t i = 0; i < 3; i++)
        if (!pass_run_pipeline(graphs[i], &po, d)) return 1;
    CgTrain desc = train_desc(s, &o->topt);
    CgTrainModel m;
    int rc = 1;
    if (cg_train_lower(&m, graphs, &desc, &t, d)) {
        TrainCode code = {&m, o->emit, ""};
        char *rt = o->emit == EMIT_NONE ? cg_find_runtime(CNNC_RUNTIME_LIB) : NULL;
        char err[8192];
        if (o->emit != EMIT_NONE) {
            rc = write_out(o, print_train_code, &code);
            if (code.err[0]) cli_fail("%s", code.err);
        } else if (!rt) {
            cli_fail("runtime library not found (set CNNC_RUNTIME to libcnnc_rt.a)");
        } else if (!cg_train_link(&m, rt, o->out, err, sizeof err)) {
            cli_fail("linking '%s' failed:\n%s", o->out, err);
        } else {
            rc = 0;
        }
        free(rt);
    }
    cg_train_free(&m);
    free((void *)desc.params);
    return rc;
}

/* `cnnc --train`: the training step's graphs (--emit=ir), its code (--emit=llvm|asm),
 * or the training model.so (-o). */
static int compile_train(Graph *g, const Options *o, Diag *d)
{
    if (o->cuda)
        return cli_fail("--train compiles for the CPU; --target=cuda is not available for "
                        "training"), 1;
    if (o->emit != EMIT_IR && o->emit != EMIT_NONE && o->emit != EMIT_LLVM && o->emit != EMIT_ASM)
        return cli_fail("--train prints its graphs with --emit=ir and its code with "
                        "--emit=llvm|asm; other kinds are not available for training"), 1;
    if (o->emit == EMIT_NONE && is_special(o->out))
        return cli_fail("-o '%s' is not a regular file", o->out), 1;
    TrainStep s;
    if (!train_build(g, &o->topt, &s, d)) return 1;
    int rc = o->emit == EMIT_IR ? write_out(o, print_train, &s) : link_train(&s, o, d);
    train_step_free(&s);
    return rc;
}

static bool print_plan(FILE *f, void *ctx)
{
    pass_print_plan(ctx, f);
    return !ferror(f);
}

/* The GPU image of p (cubin and PTX from NVRTC) linked with the runtime into -o. */
static int link_cuda(const CuProgram *p, const Graph *g, const Options *o)
{
    if (is_special(o->out)) return cli_fail("-o '%s' is not a regular file", o->out), 1;
    char *rt = cg_find_runtime(CNNC_RUNTIME_LIB);
    if (!rt) return cli_fail("runtime library not found (set CNNC_RUNTIME to libcnnc_rt.a)"), 1;
    char err[16384];
    CuBinary b;
    uint8_t *image = NULL;
    size_t size = 0;
    bool ok = cg_cuda_compile(p, true, &b, err, sizeof err);
    if (!ok) cli_fail("%s", err);
    if (ok && !(ok = cg_cuda_image(p, &b, g, &image, &size, err, sizeof err))) cli_fail("%s", err);
    if (ok && !(ok = cg_link_image(CU_IMAGE_SYMBOL, image, size, rt, o->out, err, sizeof err)))
        cli_fail("linking '%s' failed:\n%s", o->out, err);
    cg_cuda_binary_free(&b);
    free(image);
    free(rt);
    return ok ? 0 : 1;
}

/* The CUDA C, or the PTX NVRTC makes of it, with each kernel headed by the
 * IR nodes it implements; without --emit, model.so. */
static int compile_cuda(Graph *g, const Options *o, Diag *d)
{
    if (o->emit == EMIT_PTX && !cg_cuda_have_nvrtc())
        return cli_fail("this cnnc was built without NVRTC, so it cannot emit PTX "
                    "(--emit=cuda prints the CUDA C)"), 1;
    CuProgram *p = cg_cuda_generate(g, &o->gpu, d);
    if (!p) return 1;
    int rc = 0;
    if (o->emit == EMIT_NONE) {
        rc = link_cuda(p, g, o);
    } else if (o->emit == EMIT_CUDA) {
        rc = write_out(o, write_string, p->source);
    } else {
        char err[16384];
        CuBinary b;
        if (!cg_cuda_compile(p, false, &b, err, sizeof err)) {
            rc = 1;
            cli_fail("%s", err);
        } else {
            char *ptx = cg_cuda_annotate_ptx(p, b.ptx);
            rc = write_out(o, write_string, ptx);
            free(ptx);
            cg_cuda_binary_free(&b);
        }
    }
    cg_cuda_free(p);
    return rc;
}

/* Passes for the target's vector width, then LLVM (or CUDA, on plain values). */
static int compile(Graph *g, const Options *o, Diag *d)
{
    CgTarget t = {.cpu = o->cpu, .features = o->features, .opt_level = o->opt_level};
    PassOptions po;
    pass_options_init(&po);
    po.block = o->cuda ? 0 : cg_target_lanes(&t);
    po.conv_algo = o->conv_algo;
    po.disabled = o->disabled;
    po.dump_after = o->dump_after;
    po.dump = stderr;
    double t0 = cg_seconds();
    bool passed = pass_run_pipeline(g, &po, d);
    phase.passes += cg_seconds() - t0;
    if (!passed) return 1;
    if (o->emit == EMIT_IR_OPT) return write_out(o, print_graph, g);
    if (o->emit == EMIT_PLAN) return write_out(o, print_plan, g);
    if (o->cuda) return compile_cuda(g, o, d);
    Cg cg;
    int rc = cg_lower(&cg, g, &t, d) ? emit_code(&cg, o) : 1;
    phase.cg = cg.times;
    cg_free(&cg);
    return rc;
}

/* What the compile cache may hold: a CPU model.so (inference or training). A CUDA
 * model.so is left out, since NVRTC, found when cnnc runs, makes its code; so is a
 * compile that prints the IR on the way (--dump-after). */
static bool cacheable(const Options *o)
{
    return !o->run && o->emit == EMIT_NONE && o->out && !o->cuda && !o->no_cache &&
           o->dump_after < 0 && !is_special(o->out);
}

/* The cache key of compiling g as o says (cache.h). */
static bool key_of(const Graph *g, const Options *o, int argc, char **argv, CacheKey *k)
{
    char *rt = cg_find_runtime(CNNC_RUNTIME_LIB);
    /* Which files were read does not matter, only what they held (the graph). */
    const char *elide[] = {o->model, o->out, o->weights};
    const char *skip[] = {"-v", "--verbose", "--no-cache"};
    CacheInputs in = {argc, argv, elide, 3, skip, 3, rt, CNNC_VERSION};
    bool ok = cache_key(g, &in, k);
    free(rt);
    return ok;
}

/* -o MODEL.so (inference or training), copied from the compile cache when it holds
 * it; else the weights bound, compiled, and stored there. Weights made from a seed
 * (--random-weights, a training model's initial ones) are known by the seed on the
 * command line, so the cache is asked before they are made. */
static int compile_cached(Graph *g, const Options *o, Diag *d, int argc, char **argv)
{
    char *dir = cache_dir();
    bool seeded = !o->weights && (o->random_weights || o->train);
    CacheKey k;
    bool keyed = dir && seeded && key_of(g, o, argc, argv, &k);
    bool hit = keyed && cache_fetch(dir, &k, o->out, o->verbose);
    int rc = 0;
    if (!hit && (!bind_weights(g, o, d) || d->nerrors)) rc = 1;
    if (!hit && !rc && dir && !seeded) {
        keyed = key_of(g, o, argc, argv, &k);
        hit = keyed && cache_fetch(dir, &k, o->out, o->verbose);
    }
    if (!hit && !rc) {
        rc = o->train ? compile_train(g, o, d) : compile(g, o, d);
        if (!rc && keyed) cache_store(dir, &k, o->out, o->verbose);
    }
    free(dir);
    return rc;
}

static void put_stderr(const char *s)
{
    ir_write_all(STDERR_FILENO, s, strlen(s));
}

/* LLVM ends the process after this returns (its own message, then exit or abort);
 * end it first like any other error, with no temporary file left behind. */
static void llvm_fatal(const char *reason)
{
    ir_temp_remove_all();
    put_stderr("cnnc: error: LLVM: ");
    put_stderr(reason);
    put_stderr("\n");
    _exit(1);
}

/* Memory running out (ir_xmalloc, after its message) is an error like any other. */
static void out_of_memory(void)
{
    exit(1);
}

int main(int argc, char **argv)
{
    cli_set_program("cnnc");
    LLVMInstallFatalErrorHandler(llvm_fatal);
    ir_set_out_of_memory(out_of_memory);
    ir_temp_remove_on_exit();
    signal(SIGXFSZ, SIG_IGN); /* past `ulimit -f`, a write fails (EFBIG) and is reported */
    if (argc > 1 && !strcmp(argv[1], "repl")) return repl_main(argc - 1, argv + 1);
    if (argc == 2 && !strcmp(argv[1], "--onnx-ops")) {
        for (int32_t i = 0; i < fe_onnx_op_count(); i++)
            printf("%s\n", fe_onnx_op_name(i));
        return 0;
    }
    Options o = {.opt_level = 2, .dump_after = -1, .gpu = {CU_DEFAULT_ARCH, CU_MATH_TF32}};
    train_options_init(&o.topt);
    int rc = parse_args(&o, argc, argv);
    if (rc) return rc == 2 ? 0 : 1;

    Diag d;
    ir_diag_init(&d, stderr);
    FeOptions fo = {.batch = o.batch, .limits = o.limits};
    double start = cg_seconds();
    Graph *g = fe_load_file(o.model, &fo, &d);
    phase.parse = cg_seconds() - start;
    bool cached = g && !d.nerrors && cacheable(&o); /* compile_cached binds the weights */
    if (g && !cached && !bind_weights(g, &o, &d)) rc = 1;
    if (!g || d.nerrors) rc = 1;
    if (!rc && cached) rc = compile_cached(g, &o, &d, argc, argv);
    else if (!rc && o.train) rc = o.run ? run_train(g, &o, &d) : compile_train(g, &o, &d);
    else if (!rc && o.run) rc = run(g, &o);
    else if (!rc && (o.emit == EMIT_IR || o.emit == EMIT_DOT)) rc = emit(g, &o);
    else if (!rc && o.emit == EMIT_CNN) rc = emit_cnn(g, &o, &d);
    else if (!rc) rc = compile(g, &o, &d);
    if (g) ir_graph_free(g);
    ir_diag_fini(&d);
    if (o.verbose && !o.run) print_phases(cg_seconds() - start);
    return rc;
}
