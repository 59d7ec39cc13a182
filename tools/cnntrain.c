/* cnntrain: trains a model compiled by `cnnc --train` (MODEL_train.so, the C API of
 * include/cnnc/train.h) for epochs over .npz data, on one process or data-parallel
 * under mpirun. Every process holds the whole model and sees the same shuffled
 * order (from --seed); each global batch of B samples is split evenly, and per
 * step the processes' gradients are summed (MPI allreduce, in buckets), scaled by
 * 1/K and applied, so their weights stay identical, which is checked at each
 * epoch's end. Batch-norm running statistics are process 0's, broadcast before
 * evaluating and saving, as PyTorch DDP's broadcast_buffers. Only process 0 prints
 * and saves; a process that fails or stops answering ends the job with status 1. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"
#include "npz.h"
#include "support.h"
#include "train_api.h"

/* Gradients are summed in buckets of 4 MiB. */
#define GRAD_BUCKET ((size_t)1 << 20)

typedef struct Options {
    const char *model, *data, *val, *save, *load;
    int64_t epochs, batch, threads, lr_step, timeout; /* threads < 0: not given */
    uint64_t seed;
    double lr, lr_gamma; /* lr < 0: the compiled one */
    bool quiet;
} Options;

/* One process's view of the job. */
typedef struct Job {
    int rank, size;
    int neighbours; /* processes on this machine, this one included */
    Options o;
    TrainApi api;
    cnn_trainer *t;
    cnn_label_kind kind;
    cnn_tensor_info in, label, out; /* per-process batch shapes */
    int64_t local;                  /* samples per process and step */
    int64_t classes;                /* class count of class labels, else 0 */
    NpzArray x, y, vx, vy;
    float *xbuf, *out_buf;
    void *ybuf;
    bool agreed; /* the failure is known to every process, and reported */
} Job;

/* The first error of this process, printed as "cnntrain: error: ...". */
static char g_err[1024];

__attribute__((format(printf, 1, 2))) static bool fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return false;
}

static bool trainer_ok(Job *j, cnn_status s, const char *what)
{
    if (s == CNN_OK)
        return true;
    const char *why = j->api.last_error();
    return fail("%s: %s", what, *why ? why : j->api.status_string(s));
}

/* Whether every process succeeded (a collective); if not, the lowest failing
 * process says why, and the failure is known to all, which may then end normally
 * instead of aborting the job. */
static bool agree(Job *j, bool ok)
{
    uint64_t first = ok ? UINT64_MAX : (uint64_t)j->rank;
    char err[512];
    if (!dist_min_u64(&first, 1, err, sizeof err))
        return fail("%s", err);
    if (first == (uint64_t)j->rank)
        cli_fail("%s", g_err);
    j->agreed = first != UINT64_MAX;
    return first == UINT64_MAX;
}

/* ---- the watchdog --------------------------------------------------------- */

/* A process that died or stopped in the middle of a collective leaves the others
 * waiting in it forever: the setup, each step, each held-out batch and each epoch's
 * checks run under an alarm of --timeout seconds, whose handler ends the process
 * (mpirun then ends the job). */
static void on_alarm(int sig)
{
    static const char msg[] = "cnntrain: error: a step took longer than --timeout: a process "
                              "stopped answering or died; ending the job\n";
    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* nothing more to say */
    }
    _exit(1);
}

static void watchdog(const Job *j, bool on)
{
    if (j->o.timeout > 0)
        alarm(on ? (unsigned)j->o.timeout : 0);
}

/* ---- the command line ---------------------------------------------------------- */

static bool parse_i64(const char *flag, const char *v, int64_t min, int64_t *out)
{
    uint64_t u;
    if (!cli_parse_u64(v, &u) || u > INT32_MAX || (int64_t)u < min)
        return cli_fail("%s expects an integer from %lld, got '%s'", flag, (long long)min, v),
               false;
    *out = (int64_t)u;
    return true;
}

static bool parse_real(const char *flag, const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(d) || d <= 0)
        return cli_fail("%s expects a positive number, got '%s'", flag, v), false;
    *out = d;
    return true;
}

static bool parse_option(void *ctx, int argc, char **argv, int *i)
{
    Options *o = ctx;
    bool bad = false;
    const char *v;
    if (!strcmp(argv[*i], "--quiet"))
        return o->quiet = true;
#define FLAG(name) (v = cli_flag_value(name, argc, argv, i, &bad)) != NULL
    if (FLAG("--data")) return o->data = v, true;
    if (FLAG("--val")) return o->val = v, true;
    if (FLAG("--save")) return o->save = v, true;
    if (FLAG("--load")) return o->load = v, true;
    if (FLAG("--epochs")) return parse_i64("--epochs", v, 1, &o->epochs);
    if (FLAG("--batch")) return parse_i64("--batch", v, 1, &o->batch);
    if (FLAG("--threads")) return parse_i64("--threads", v, 0, &o->threads);
    if (FLAG("--lr-step")) return parse_i64("--lr-step", v, 1, &o->lr_step);
    if (FLAG("--timeout")) return parse_i64("--timeout", v, 0, &o->timeout);
    if (FLAG("--lr")) return parse_real("--lr", v, &o->lr);
    if (FLAG("--lr-gamma")) return parse_real("--lr-gamma", v, &o->lr_gamma);
    if (FLAG("--seed")) {
        if (cli_parse_u64(v, &o->seed)) return true;
        return cli_fail("--seed expects a non-negative integer, got '%s'", v), false;
    }
#undef FLAG
    if (!bad)
        cli_fail("unknown option '%s' (see cnntrain --help)", argv[*i]);
    return false;
}

static bool add_operand(void *ctx, const char *arg)
{
    Options *o = ctx;
    if (o->model)
        return cli_fail("one model at a time: '%s' and '%s'", o->model, arg), false;
    o->model = arg;
    return true;
}

static const char usage_text[] =
    "usage: cnntrain MODEL_train.so --data=TRAIN.npz [--val=VAL.npz] --epochs=E --batch=B\n"
    "                --save=W.safetensors [options]\n"
    "       mpirun -np K cnntrain ...   (data parallel over K processes)\n"
    "\n"
    "Trains a model compiled by `cnnc MODEL.cnn --train -o MODEL_train.so` and saves its\n"
    "weights, for `cnnc MODEL.cnn --weights=W.safetensors`.\n"
    "\n"
    "Data: .npz archives (numpy's savez or savez_compressed) holding x, the inputs\n"
    "(float, [M, ...] as the model's input) and y, the labels: class indices (integers,\n"
    "[M]) for a model trained with cross-entropy, or float targets shaped like its output.\n"
    "\n"
    "  --epochs=E           passes over the data\n"
    "  --batch=B            samples per step, over all processes: the model's compiled\n"
    "                       batch (cnnc --train --batch=B/K) times K processes. Each\n"
    "                       epoch takes M/B steps; the last M mod B samples of an epoch's\n"
    "                       shuffled order are left out (a different few each epoch)\n"
    "  --val=VAL.npz        accuracy and mean loss on held-out data after each epoch\n"
    "  --seed=S             the shuffled order of each epoch and dropout masks (default 0)\n"
    "  --load=W             start from these weights (.safetensors holding every tensor\n"
    "                       of the model: cnntrain's, or PyTorch's state_dict) instead\n"
    "                       of those cnnc compiled in\n"
    "  --lr=LR              the learning rate (default: cnnc's --lr)\n"
    "  --lr-step=N          multiply the learning rate by --lr-gamma every N epochs\n"
    "  --lr-gamma=G         (PyTorch's StepLR; default 0.1)\n"
    "  --threads=T          threads per process (default: the machine's cores, shared\n"
    "                       evenly by the processes running on it)\n"
    "  --timeout=SEC        end the job when one step takes longer (a process died or\n"
    "                       stopped answering); 0: never (default 600)\n"
    "  --save=W             the trained weights (.safetensors), written by process 0\n"
    "  --quiet              print nothing but errors\n"
    "\n"
    "Progress: a bar per epoch on a terminal, a line per epoch otherwise (stderr).\n"
    "With K processes, gradients are averaged each step; batch-norm running statistics\n"
    "are process 0's (broadcast to the others before evaluating and saving).\n";

/* Standard output and error sent to /dev/null (saved[0..1] keep them) and back. */
static void silence(bool on, int saved[2])
{
    fflush(stdout);
    fflush(stderr);
    for (int fd = 1; fd <= 2; fd++) {
        if (on) {
            int null = open("/dev/null", O_WRONLY);
            saved[fd - 1] = null >= 0 ? dup(fd) : -1;
            if (saved[fd - 1] >= 0)
                dup2(null, fd);
            if (null >= 0)
                close(null);
        } else if (saved[fd - 1] >= 0) {
            dup2(saved[fd - 1], fd);
            close(saved[fd - 1]);
        }
    }
}

/* 0 to go on, 1 after an error (reported on process 0), 2 after --help/--version. */
static int parse_args(Options *o, int argc, char **argv, int rank)
{
    char what[200], usage[sizeof usage_text + 300], version[300];
    bool mpi = dist_available(what, sizeof what);
    snprintf(usage, sizeof usage, "%s\nThis cnntrain: %s%s.\n", usage_text,
             mpi ? "data parallel over " : "", what);
    snprintf(version, sizeof version, "cnntrain 0.1.0 (train API %d, %s%s)\n",
             CNN_TRAIN_API_VERSION, mpi ? "data parallel over " : "", what);
    *o = (Options){.threads = -1, .lr = -1, .lr_gamma = 0.1, .timeout = 600};
    CliParser p = {usage, version, parse_option, add_operand, NULL};
    /* Every process reads the same arguments: process 0 alone says what it finds. */
    int saved[2];
    if (rank != 0)
        silence(true, saved);
    int rc = cli_parse(&p, o, argc, argv, 1);
    if (rc == 0) {
        const char *missing = !o->model ? "a MODEL_train.so"
                              : !o->data ? "--data=TRAIN.npz"
                              : !o->epochs ? "--epochs=E"
                              : !o->batch ? "--batch=B"
                              : !o->save ? "--save=W.safetensors"
                                         : NULL;
        if (missing) {
            cli_fail("missing %s (see cnntrain --help)", missing);
            rc = 1;
        }
    }
    if (rank != 0)
        silence(false, saved);
    return rc;
}

/* ---- the model and the data ----------------------------------------------------- */

static int64_t numel_of(const cnn_tensor_info *t, int32_t from)
{
    int64_t n = 1;
    for (int32_t d = from; d < t->rank; d++)
        n *= t->dims[d];
    return n;
}

/* "[M, 1, 28, 28]": `first` for the batch dim, then dims[1..rank). */
static void shape_str(char *buf, size_t n, const int64_t *dims, int32_t rank, const char *first)
{
    size_t len = (size_t)snprintf(buf, n, "[%s", first);
    for (int32_t d = 1; d < rank && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, ", %lld", (long long)dims[d]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
}

/* --threads, or the machine's cores shared by the processes that run on it (0: all). */
static int32_t thread_count(const Job *j)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (j->o.threads >= 0 || j->neighbours <= 1)
        return (int32_t)(j->o.threads >= 0 ? j->o.threads : 0);
    return cores > j->neighbours ? (int32_t)(cores / j->neighbours) : 1;
}

static bool open_model(Job *j)
{
    /* dlopen searches the library path for a bare name; a user means the file. */
    char buf[4096], err[sizeof buf + 512];
    const char *path = j->o.model;
    if (!strchr(path, '/') && snprintf(buf, sizeof buf, "./%s", path) < (int)sizeof buf)
        path = buf;
    if (!train_api_open(&j->api, path, err, sizeof err))
        return fail("%s", err);
    cnn_train_options opt;
    cnn_train_options_init(&opt);
    opt.num_threads = thread_count(j);
    opt.seed = j->o.seed;
    if (!trainer_ok(j, j->api.create(&opt, &j->t), j->o.model) ||
        !trainer_ok(j, j->api.input_info(j->t, &j->in), j->o.model) ||
        !trainer_ok(j, j->api.label_info(j->t, &j->kind, &j->label), j->o.model) ||
        !trainer_ok(j, j->api.output_info(j->t, &j->out), j->o.model))
        return false;
    j->local = j->api.batch(j->t);
    if (j->o.batch != j->local * j->size) {
        if (j->o.batch % j->size)
            return fail("--batch=%lld does not split evenly over %d processes",
                        (long long)j->o.batch, j->size);
        return fail("--batch=%lld over %d process%s needs a model compiled for %lld samples per "
                    "process, and %s was compiled for %lld: compile it with `cnnc MODEL.cnn "
                    "--train --batch=%lld -o %s`",
                    (long long)j->o.batch, j->size, j->size > 1 ? "es" : "",
                    (long long)(j->o.batch / j->size), j->o.model, (long long)j->local,
                    (long long)(j->o.batch / j->size), j->o.model);
    }
    j->classes = j->kind == CNN_LABEL_CLASS && j->out.rank >= 2 ? j->out.dims[1] : 0;
    if (j->o.lr > 0 && !trainer_ok(j, j->api.set_lr(j->t, (float)j->o.lr), "--lr"))
        return false;
    return !j->o.load || trainer_ok(j, j->api.load(j->t, j->o.load), "--load");
}

/* x: float, [M, the input's dims after the batch]. */
static bool check_inputs(const Job *j, const char *path, const NpzArray *x)
{
    char want[160], got[160], m[24];
    snprintf(m, sizeof m, "%lld", (long long)(x->rank ? x->dims[0] : 1));
    shape_str(want, sizeof want, j->in.dims, j->in.rank, "M");
    shape_str(got, sizeof got, x->dims, x->rank, x->rank ? m : "");
    if (x->type != NPZ_F32)
        return fail("%s: x holds %s numbers; the model's input is float32 %s", path, x->descr,
                    want);
    bool same = x->rank == j->in.rank && x->rank >= 1;
    for (int32_t d = 1; same && d < x->rank; d++)
        same = x->dims[d] == j->in.dims[d];
    if (!same)
        return fail("%s: x has shape %s; the model's input needs %s", path, got, want);
    return true;
}

/* y: [M] integers in [0, classes), or float targets [M, the output's dims after the batch]. */
static bool check_labels(const Job *j, const char *path, const NpzArray *x, const NpzArray *y)
{
    char want[160];
    if (y->rank < 1 || y->dims[0] != x->dims[0])
        return fail("%s: y holds %lld labels for %lld samples in x", path,
                    (long long)(y->rank ? y->dims[0] : 0), (long long)x->dims[0]);
    if (j->kind == CNN_LABEL_CLASS) {
        if (y->type != NPZ_I64 || y->rank != 1)
            return fail("%s: y must be class indices, integers of shape [M], for a model "
                        "trained with cross-entropy; it is %s of rank %d",
                        path, y->descr, (int)y->rank);
        const int64_t *v = y->data;
        for (int64_t i = 0; i < y->numel; i++)
            if (v[i] < 0 || v[i] >= j->classes)
                return fail("%s: y[%lld] is %lld, outside the model's %lld classes [0, %lld)",
                            path, (long long)i, (long long)v[i], (long long)j->classes,
                            (long long)j->classes);
        return true;
    }
    shape_str(want, sizeof want, j->label.dims, j->label.rank, "M");
    bool same = y->type == NPZ_F32 && y->rank == j->label.rank;
    for (int32_t d = 1; same && d < y->rank; d++)
        same = y->dims[d] == j->label.dims[d];
    if (!same)
        return fail("%s: y must be float targets %s for a model trained with mean squared "
                    "error; it is %s of rank %d",
                    path, want, y->descr, (int)y->rank);
    return true;
}

static bool load_data(Job *j, const char *path, NpzArray *x, NpzArray *y)
{
    char err[512];
    Npz *z = npz_open(path, err, sizeof err);
    if (!z)
        return fail("%s", err);
    bool ok = npz_read(z, "x", x, err, sizeof err) && npz_read(z, "y", y, err, sizeof err);
    npz_close(z);
    if (!ok)
        return fail("%s", err);
    return check_inputs(j, path, x) && check_labels(j, path, x, y);
}

/* The folder of --save takes files (the trainer writes a temporary one there and
 * renames it), found out before training rather than after. */
static bool check_save_folder(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? ir_xstrdup(path) : ir_xstrdup(".");
    if (slash)
        dir[slash == path ? 1 : slash - path] = '\0';
    bool ok = access(dir, W_OK | X_OK) == 0;
    if (!ok)
        fail("%s: cannot write into '%s': %s", path, dir, strerror(errno));
    free(dir);
    return ok;
}

static bool setup(Job *j)
{
    if ((j->rank == 0 && !check_save_folder(j->o.save)) || !open_model(j) ||
        !load_data(j, j->o.data, &j->x, &j->y))
        return false;
    if (j->x.dims[0] < j->o.batch)
        return fail("%s: %lld samples, fewer than one batch of %lld", j->o.data,
                    (long long)j->x.dims[0], (long long)j->o.batch);
    if (j->o.val && !load_data(j, j->o.val, &j->vx, &j->vy))
        return false;
    j->xbuf = ir_xmalloc((size_t)numel_of(&j->in, 0) * sizeof(float));
    j->ybuf = ir_xmalloc((size_t)j->local * (size_t)numel_of(&j->label, 1) * 8);
    j->out_buf = ir_xmalloc((size_t)numel_of(&j->out, 0) * sizeof(float));
    return true;
}

/* ---- steps ------------------------------------------------------------------- */

/* Samples idx[0..local) of (x, y) into the batch buffers: labels are int64 class
 * indices or float targets, copied as bytes. */
static void gather(Job *j, const NpzArray *x, const NpzArray *y, const int64_t *idx)
{
    size_t xs = (size_t)numel_of(&j->in, 1);
    size_t ys = (size_t)(y->numel / y->dims[0]) * (y->type == NPZ_I64 ? 8 : 4);
    for (int64_t i = 0; i < j->local; i++) {
        memcpy(j->xbuf + (size_t)i * xs, (float *)x->data + (size_t)idx[i] * xs,
               xs * sizeof(float));
        memcpy((char *)j->ybuf + (size_t)i * ys, (char *)y->data + (size_t)idx[i] * ys, ys);
    }
}

static cnn_tensor tensor(void *data, size_t size)
{
    return (cnn_tensor){.data = data, .size = size};
}

static size_t label_bytes(const Job *j)
{
    return (size_t)(j->kind == CNN_LABEL_CLASS ? 8 : 4) * (size_t)numel_of(&j->label, 0);
}

static int64_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* How many of this process's batch the step classified right (from its logits). */
static double batch_correct(Job *j)
{
    const float *out;
    size_t count;
    if (j->kind != CNN_LABEL_CLASS || j->api.outputs(j->t, &out, &count) != CNN_OK)
        return 0;
    int64_t per = (int64_t)count / j->local, right = 0;
    for (int64_t i = 0; i < j->local; i++)
        right += argmax(out + i * per, per) == ((const int64_t *)j->ybuf)[i];
    return (double)right;
}

/* One data-parallel step on this process's share `idx` of the global batch: res
 * receives the mean loss over all processes and how many samples they classified
 * right. */
static bool train_step(Job *j, const int64_t *idx, double res[2], int64_t step)
{
    gather(j, &j->x, &j->y, idx);
    cnn_tensor x = tensor(j->xbuf, (size_t)numel_of(&j->in, 0) * sizeof(float));
    cnn_tensor y = tensor(j->ybuf, label_bytes(j));
    float l = 0;
    char err[512];
    cnn_status s = j->api.compute_gradients(j->t, &x, &y, &l);
    /* Every process learns whether any failed before the gradients are summed. */
    double sums[3] = {s == CNN_OK ? l : 0, s == CNN_OK ? 0 : 1, s == CNN_OK ? batch_correct(j) : 0};
    if (!dist_sum_doubles(sums, 3, err, sizeof err))
        return fail("step %lld: %s", (long long)step, err);
    if (sums[1] > 0) {
        if (s != CNN_OK)
            trainer_ok(j, s, "a training step");
        return agree(j, s == CNN_OK);
    }
    res[0] = sums[0] / j->size;
    res[1] = sums[2];
    if (j->size > 1) {
        float *g;
        size_t count;
        if (!trainer_ok(j, j->api.gradients(j->t, &g, &count), "the gradients"))
            return false;
        if (!dist_sum_floats(g, count, GRAD_BUCKET, err, sizeof err))
            return fail("step %lld: summing the gradients: %s", (long long)step, err);
        float scale = 1.0f / (float)j->size;
        for (size_t i = 0; i < count; i++)
            g[i] *= scale;
    }
    return trainer_ok(j, j->api.apply_gradients(j->t), "applying the gradients");
}

/* ---- evaluation -------------------------------------------------------------- */

/* The loss of one sample from its outputs, as the model's loss computes it. */
static double sample_loss(const Job *j, const float *out, const void *label, int64_t n)
{
    if (j->kind == CNN_LABEL_CLASS) {
        float top = out[0];
        for (int64_t c = 1; c < n; c++)
            top = out[c] > top ? out[c] : top;
        double sum = 0;
        for (int64_t c = 0; c < n; c++)
            sum += exp((double)out[c] - top);
        return log(sum) + top - out[*(const int64_t *)label];
    }
    double sq = 0;
    for (int64_t c = 0; c < n; c++) {
        double d = (double)out[c] - ((const float *)label)[c];
        sq += d * d;
    }
    return sq / (double)n;
}

/* Mean loss and accuracy over the whole of (x, y): the batches are dealt round the
 * processes, the last one padded by repeating its first sample, whose copies count
 * for nothing. res = {loss sum, correct, count, processes that failed}. */
static bool evaluate(Job *j, const NpzArray *x, const NpzArray *y, double res[4])
{
    int64_t m = x->dims[0], per = numel_of(&j->out, 1);
    int64_t nbatch = (m + j->local - 1) / j->local;
    int64_t *idx = ir_xmalloc((size_t)j->local * sizeof *idx);
    size_t ys = (size_t)(y->numel / m) * (y->type == NPZ_I64 ? 8 : 4);
    res[0] = res[1] = res[2] = res[3] = 0;
    bool ok = true;
    for (int64_t b = j->rank; ok && b < nbatch; b += j->size) {
        watchdog(j, true); /* the timeout is per batch here too */
        int64_t first = b * j->local, real = m - first < j->local ? m - first : j->local;
        for (int64_t i = 0; i < j->local; i++)
            idx[i] = first + (i < real ? i : 0);
        gather(j, x, y, idx);
        cnn_tensor xt = tensor(j->xbuf, (size_t)numel_of(&j->in, 0) * sizeof(float));
        cnn_tensor yt = tensor(j->ybuf, label_bytes(j));
        cnn_tensor out = tensor(j->out_buf, (size_t)numel_of(&j->out, 0) * sizeof(float));
        float mean;
        ok = trainer_ok(j, j->api.evaluate(j->t, &xt, &yt, &mean, &out), "evaluating");
        for (int64_t i = 0; ok && i < real; i++) {
            const float *o = j->out_buf + i * per;
            const char *label = (const char *)j->ybuf + (size_t)i * ys;
            res[0] += sample_loss(j, o, label, per);
            res[1] += j->kind == CNN_LABEL_CLASS && argmax(o, per) == *(const int64_t *)label;
            res[2] += 1;
        }
    }
    free(idx);
    char err[512];
    res[3] = !ok;
    if (!dist_sum_doubles(res, 4, err, sizeof err))
        return fail("evaluating: %s", err);
    return res[3] > 0 ? agree(j, ok) : true;
}

/* ---- what every process must agree on ------------------------------------------- */

/* FNV-1a of every trainable parameter's bytes. */
static bool params_hash(Job *j, uint64_t *h)
{
    *h = 0xcbf29ce484222325u;
    for (int32_t i = 0; i < j->api.num_trainable(j->t); i++) {
        cnn_tensor_info info;
        if (!trainer_ok(j, j->api.param_info(j->t, i, &info), "reading the parameters"))
            return false;
        size_t size = (size_t)numel_of(&info, 0) * sizeof(float);
        unsigned char *p = ir_xmalloc(size + 1);
        bool ok = trainer_ok(j, j->api.get_param(j->t, i, p, size), "reading the parameters");
        for (size_t b = 0; ok && b < size; b++)
            *h = (*h ^ p[b]) * 0x100000001b3u;
        free(p);
        if (!ok)
            return false;
    }
    return true;
}

/* Every process's weights are the same: the minimum of the hashes and of their
 * complements gives both the least and the greatest. */
static bool check_same_weights(Job *j, int64_t epoch)
{
    uint64_t h, v[2];
    char err[512];
    if (!params_hash(j, &h))
        return false;
    v[0] = h;
    v[1] = ~h;
    if (!dist_min_u64(v, 2, err, sizeof err))
        return fail("comparing the weights: %s", err);
    if (v[0] == ~v[1])
        return true;
    fail("after epoch %lld the processes' weights differ (checksums %016" PRIx64 " to %016" PRIx64
         ")", (long long)epoch, v[0], ~v[1]);
    return agree(j, false);
}

/* Process 0's batch-norm running statistics to every process. */
static bool broadcast_buffers(Job *j)
{
    char err[512];
    for (int32_t i = j->api.num_trainable(j->t); j->size > 1 && i < j->api.num_params(j->t);
         i++) {
        cnn_tensor_info info;
        if (!trainer_ok(j, j->api.param_info(j->t, i, &info), "reading the buffers"))
            return false;
        size_t size = (size_t)numel_of(&info, 0) * sizeof(float);
        float *p = ir_xmalloc(size + 1);
        bool ok = trainer_ok(j, j->api.get_param(j->t, i, p, size), "reading the buffers");
        if (ok && !dist_broadcast(p, size, err, sizeof err))
            ok = fail("broadcasting %s: %s", info.name, err);
        ok = ok && trainer_ok(j, j->api.set_param(j->t, i, p, size), "setting the buffers");
        free(p);
        if (!ok)
            return false;
    }
    return true;
}

/* ---- progress ------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct Progress {
    bool bar;          /* on a terminal, redrawn in place */
    double start, last;
    double loss, correct; /* sums over the epoch's steps so far */
} Progress;

/* "  accuracy 97.50%" of the steps so far, for class labels. */
static void print_accuracy(const Job *j, const Progress *p, int64_t steps)
{
    if (j->kind == CNN_LABEL_CLASS)
        fprintf(stderr, "  accuracy %.2f%%", 100.0 * p->correct / (double)(steps * j->o.batch));
}

static void print_bar(const Job *j, const Progress *p, int64_t epoch, int64_t step,
                      int64_t steps)
{
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    int64_t filled = step * WIDTH / steps;
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[WIDTH] = '\0';
    double t = now() - p->start, rate = (double)(step * j->o.batch) / (t > 0 ? t : 1e-9);
    double left = t / (double)step * (double)(steps - step);
    fprintf(stderr, "\rEpoch %lld/%lld [%s] %lld/%lld  loss %.4f", (long long)epoch,
            (long long)j->o.epochs, bar, (long long)step, (long long)steps,
            p->loss / (double)step);
    print_accuracy(j, p, step);
    fprintf(stderr, "  %.0f img/s  %d:%02d left\x1b[K", rate, (int)left / 60, (int)left % 60);
}

/* The epoch's line: its training loss and accuracy, speed and time, and held-out results. */
static void print_epoch(const Job *j, const Progress *p, int64_t epoch, int64_t steps,
                        const double *val)
{
    double t = now() - p->start;
    fprintf(stderr, "%sEpoch %lld/%lld  loss %.4f", p->bar ? "\r" : "", (long long)epoch,
            (long long)j->o.epochs, p->loss / (double)steps);
    print_accuracy(j, p, steps);
    fprintf(stderr, "  %.0f img/s  %.1f s", (double)(steps * j->o.batch) / t, t);
    if (val && j->kind == CNN_LABEL_CLASS)
        fprintf(stderr, "  val loss %.4f  val accuracy %.2f%% (%.0f/%.0f)", val[0] / val[2],
                100.0 * val[1] / val[2], val[1], val[2]);
    else if (val)
        fprintf(stderr, "  val loss %.4f", val[0] / val[2]);
    fprintf(stderr, "%s\n", p->bar ? "\x1b[K" : "");
}

/* ---- epochs ------------------------------------------------------------------- */

/* The shuffled order of an epoch, the same on every process. */
static void shuffle(int64_t *order, int64_t m, uint64_t seed, int64_t epoch)
{
    char stream[48];
    snprintf(stream, sizeof stream, "cnntrain.shuffle.%lld", (long long)epoch);
    Rng r = ir_rng(seed, stream);
    for (int64_t i = 0; i < m; i++)
        order[i] = i;
    for (int64_t i = m - 1; i > 0; i--) {
        int64_t k = (int64_t)(ir_rng_next(&r) % (uint64_t)(i + 1)), tmp = order[i];
        order[i] = order[k];
        order[k] = tmp;
    }
}

static bool run_epoch(Job *j, int64_t epoch, int64_t *order)
{
    bool talk = j->rank == 0 && !j->o.quiet;
    Progress p = {.bar = talk && isatty(STDERR_FILENO), .start = now()};
    int64_t m = j->x.dims[0], steps = m / j->o.batch;
    if (j->o.lr_step && j->o.lr > 0) {
        double lr = j->o.lr * pow(j->o.lr_gamma, (double)((epoch - 1) / j->o.lr_step));
        if (!trainer_ok(j, j->api.set_lr(j->t, (float)lr), "setting the learning rate"))
            return false;
    }
    shuffle(order, m, j->o.seed, epoch);
    for (int64_t s = 0; s < steps; s++) {
        double res[2] = {0, 0};
        watchdog(j, true);
        bool ok = train_step(j, order + s * j->o.batch + j->rank * j->local, res, s + 1);
        watchdog(j, false);
        if (!ok)
            return false;
        p.loss += res[0];
        p.correct += res[1];
        if (p.bar && (now() - p.last > 0.1 || s + 1 == steps)) {
            print_bar(j, &p, epoch, s + 1, steps);
            p.last = now();
        }
    }
    watchdog(j, true);
    double val[4];
    bool ok = check_same_weights(j, epoch) && broadcast_buffers(j) &&
              (!j->o.val || evaluate(j, &j->vx, &j->vy, val));
    watchdog(j, false);
    if (ok && talk)
        print_epoch(j, &p, epoch, steps, j->o.val ? val : NULL);
    return ok;
}

static bool train(Job *j)
{
    int64_t *order = ir_xmalloc((size_t)j->x.dims[0] * sizeof *order);
    if (j->o.lr_step && j->o.lr <= 0)
        j->o.lr = j->api.lr(j->t);
    bool ok = true;
    for (int64_t e = 1; ok && e <= j->o.epochs; e++)
        ok = run_epoch(j, e, order);
    free(order);
    if (!ok || j->rank != 0)
        return ok;
    if (!trainer_ok(j, j->api.save(j->t, j->o.save), j->o.save))
        return false;
    if (!j->o.quiet)
        fprintf(stderr, "Saved %s after %lld steps\n", j->o.save,
                (long long)j->api.steps(j->t));
    return true;
}

/* ---- main --------------------------------------------------------------------- */

static void release(Job *j)
{
    if (j->t)
        j->api.destroy(j->t);
    train_api_close(&j->api);
    free(j->x.data), free(j->y.data), free(j->vx.data), free(j->vy.data);
    free(j->xbuf), free(j->ybuf), free(j->out_buf);
}

int main(int argc, char **argv)
{
    cli_set_program("cnntrain");
    Job j = {0};
    char err[512];
    if (!dist_init(&argc, &argv, &j.rank, &j.size, err, sizeof err)) {
        cli_fail("%s", err);
        return 1;
    }
    int rc = parse_args(&j.o, argc, argv, j.rank);
    if (rc != 0) {
        dist_finalize();
        return rc == 2 ? 0 : 1;
    }
    signal(SIGALRM, on_alarm);
    watchdog(&j, true);
    if (!dist_local_size(&j.neighbours, err, sizeof err)) {
        cli_fail("%s", err);
        dist_abort();
    }
    bool ok = agree(&j, setup(&j));
    watchdog(&j, false);
    ok = ok && train(&j);
    if (!ok && !j.agreed) {
        /* A failure this process alone knows of: it says why and ends the job, whose
         * other processes may be waiting in a collective. */
        cli_fail("%s", g_err);
        release(&j);
        dist_abort();
    }
    release(&j);
    dist_finalize();
    return ok ? 0 : 1;
}
