/* frontend.h: from model source and weight files to an IR graph with every
 * shape inferred. Errors go to a Diag; callers decide what to do with them. */
#ifndef CNNC_FRONTEND_H
#define CNNC_FRONTEND_H

#include "ir.h"

/* What hostile source may make the compiler do; each field at 0 takes its
 * default. Going over a limit is an error at the construct that did. */
typedef struct FeLimits {
    int64_t max_depth;   /* nesting of expressions, statements and block calls */
    int64_t max_steps;   /* expressions, statements, loop turns and list items */
    int64_t max_nodes;   /* nodes of the graph */
    int64_t max_weights; /* bytes of all the model's parameters */
    int64_t max_source;  /* bytes of one source file */
} FeLimits;

#define FE_DEFAULT_MAX_DEPTH 200
#define FE_DEFAULT_MAX_STEPS 10000000
#define FE_DEFAULT_MAX_NODES 100000
#define FE_DEFAULT_MAX_WEIGHTS (INT64_C(4) << 30)
#define FE_DEFAULT_MAX_SOURCE (INT64_C(16) << 20)
/* A level of nesting takes up to about 1 KB of stack: the default fits in a
 * 256 KB stack, the most allowed in the usual 8 MiB. A larger file would
 * overflow the scanner's int sizes. */
#define FE_MAX_MAX_DEPTH 5000
#define FE_MAX_MAX_SOURCE (INT64_C(1) << 30)

/* The limits with every 0 replaced by its default. */
FeLimits fe_limits(const FeLimits *l);

typedef struct FeOptions {
    int64_t batch; /* > 0: overrides the leading symbolic dim of every input */
    FeLimits limits;
    /* When set, included files are read through this instead of the file system
     * (a harness that must not touch files): false means no such file. */
    bool (*read_include)(const char *path, const char **text, size_t *len);
} FeOptions;

/* Parses and elaborates a model file (or text) of the cnnc language into a
 * graph with inferred shapes; parameters are PARAM nodes without data.
 * Returns NULL after reporting every error it found to `d`. */
Graph *fe_load_file(const char *path, const FeOptions *opt, Diag *d);
Graph *fe_load_string(const char *name, const char *text, const FeOptions *opt, Diag *d);

/* onnx_import.c: an ONNX model (read by onnx_read.c) as a graph with inferred
 * shapes and bound parameters. fe_load_file takes a path ending in ".onnx"
 * this way. --batch sets the leading dim of every input that has a dynamic
 * one. Returns NULL after reporting every error to `d`. */
struct OnnxModel;
Graph *fe_import_onnx(const struct OnnxModel *m, const FeOptions *opt, Diag *d);
Graph *fe_load_onnx(const char *path, const FeOptions *opt, Diag *d);
/* The ONNX op types the importer maps (some only in the forms docs/onnx.md lists). */
int32_t fe_onnx_op_count(void);
const char *fe_onnx_op_name(int32_t i);

/* safetensors.c: binds every PARAM by name from a .safetensors file (F32, F16,
 * BF16). A missing, unexpected or wrongly shaped tensor is an error naming it
 * (and both shapes); batch-norm `num_batches_tracked` entries are ignored.
 * More than a few names that match nothing make one error instead: the
 * counts, the first names of each side, and a hint when the sides differ by
 * a prefix or one renamed path segment. */
bool fe_bind_safetensors(Graph *g, const char *path, Diag *d);
typedef struct FeBindOptions {
    bool list_all;        /* an error per mismatched name, however many */
    const char *list_how; /* how to ask for that, named in a summary; or NULL */
} FeBindOptions;
bool fe_bind_safetensors_with(Graph *g, const char *path, Diag *d, const FeBindOptions *opt);
/* The same, except that parameters the file lacks are no error and keep what
 * they had (data or none). */
bool fe_bind_safetensors_partial(Graph *g, const char *path, Diag *d);
/* Writes every bound PARAM of `g` as F32 safetensors (through a temp file). */
bool fe_write_safetensors(const Graph *g, const char *path, char *err, size_t errlen);

/* emit_cnn.c: writes `g` as loaded (every PARAM bound, no pass run) back in the
 * cnnc language: DIR/MODEL.cnn, one statement per node, and its weights
 * DIR/MODEL.safetensors under the names the language gives them, so that the
 * pair compiles to the same graph up to names. `origin` (where the model came
 * from) goes in the file's header comment. An op, attribute or weight the
 * language cannot say is an error naming the node; a failure leaves neither
 * file half-written. DIR must exist. */
bool fe_emit_cnn(const Graph *g, const char *dir, const char *model, const char *origin, Diag *d);

/* weights.c: deterministic weights that depend only on (seed, parameter name,
 * shape), scaled so activations stay in a sane range through deep networks. */
void fe_random_weights(Graph *g, uint64_t seed);
/* The same for the parameters without data only; bound ones keep theirs. A
 * parameter gets the values fe_random_weights would give it. */
void fe_random_unbound_weights(Graph *g, uint64_t seed);

#endif
