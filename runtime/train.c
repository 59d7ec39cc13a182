/* train.c: the training API (include/cnnc/train.h) of a model.so compiled by
 * `cnnc --train`, over its description (cnnc/abi.h RtTrain). An instance keeps
 * every tensor of the model and of the optimizer twice -- the current values and
 * a place for a graph to write new ones, swapped once a run succeeds -- and the
 * gradients in one contiguous buffer the grad graph writes directly. The graphs'
 * inputs and outputs are bound to those buffers by name once, at creation.
 * Like model.c: nothing prints or aborts, and nothing allocates during a step. */
#include "cnnc/train.h"
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CNN_EXPORT __attribute__((visibility("default")))

/* What a graph's input or output is bound to; `index` is a tensor's for the last three. */
typedef enum {
    SLOT_X,      /* the caller's batch */
    SLOT_LABELS, /* the labels as the graph reads them (f32) */
    SLOT_RNG,    /* {seed, step} */
    SLOT_HYPER,  /* {lr, bias corrections} */
    SLOT_LOSS,
    SLOT_OUTPUT, /* the network's output */
    SLOT_TENSOR, /* a tensor's current values */
    SLOT_GRAD,   /* a trainable tensor's gradient, in the gradient buffer */
    SLOT_NEW,    /* where a tensor's new values go (swapped in after the run) */
} SlotKind;

typedef struct Slot {
    SlotKind kind;
    int32_t index;
} Slot;

/* One of the three models with its bindings and argument arrays. */
typedef struct Bound {
    const RtModel *m;
    Slot *in, *out;
    const float **inp;
    float **outp;
} Bound;

/* Whether apply_gradients may run: after a successful compute_gradients only. */
typedef enum { GRADS_NONE, GRADS_READY, GRADS_NOT_FINITE } GradState;

struct cnn_trainer {
    const RtTrain *rt;
    RtPool *pool;
    char *arena; /* one for the three models, which run one at a time */
    int32_t ntensors;
    float **cur, **next; /* per tensor (the model's, then the optimizer's) */
    float *store;
    float *grads;
    int64_t *grad_at; /* per trainable tensor: its first float in grads */
    size_t ngrads;
    float *labels;         /* class indices as f32 */
    const float *label_in; /* what the grad model reads: labels, or the caller's targets */
    float *output; /* the network's output of the last step */
    float loss, rng[2], hyper[3];
    const RtTensor *x, *label, *out; /* the grad model's */
    Bound grad, apply, eval;
    int64_t steps;
    float lr;
    uint64_t seed;
    GradState grads_state;
    RtCounter *counters; /* per kernel: grad's, then apply's, then eval's */
    int profiling;
    atomic_flag busy;
};

static const RtTrainParam *param(const cnn_trainer *t, int32_t i)
{
    return &t->rt->params[i];
}

static int64_t param_numel(const RtTrainParam *p)
{
    int64_t n = 1;
    for (int32_t k = 0; k < p->rank; k++)
        n *= p->dims[k];
    return n;
}

/* ---- checking the description -------------------------------------------- */

static bool param_valid(const RtTrain *rt, const RtTrainParam *p)
{
    if (!p->name || p->rank < 0 || p->rank > RT_MAX_RANK || p->kind < RT_TRAIN_WEIGHT ||
        p->kind > RT_TRAIN_STATE)
        return false;
    int64_t n = 1;
    for (int32_t k = 0; k < p->rank; k++) {
        if (p->dims[k] < 0 || (p->dims[k] > 0 && n > INT64_MAX / 8 / p->dims[k]))
            return false;
        n *= p->dims[k];
    }
    return p->init == -1 ||
           (p->init >= 0 && p->init <= rt->init_bytes && n * 4 <= rt->init_bytes - p->init);
}

static cnn_status check_train(const RtTrain *rt)
{
    if (rt->abi_version != RT_ABI_VERSION) {
        rt_set_error("the training description is of ABI version %u; this runtime reads %d",
                     (unsigned)rt->abi_version, RT_ABI_VERSION);
        return CNN_ERR_VERSION;
    }
    bool ok = rt->nparams >= 0 && rt->nstate >= 0 && rt->ntrainable >= 0 &&
              rt->ntrainable <= rt->nparams && rt->grad && rt->apply && rt->eval &&
              (rt->nparams + rt->nstate == 0 || rt->params) && rt->init_bytes >= 0 &&
              (rt->init_bytes == 0 || rt->init) &&
              (rt->loss == RT_LOSS_MSE || (rt->loss == RT_LOSS_CROSS_ENTROPY && rt->classes > 0));
    for (int32_t i = 0; ok && i < rt->nparams + rt->nstate; i++)
        ok = param_valid(rt, &rt->params[i]);
    if (ok && (rt_check_model(rt->grad) != CNN_OK || rt_check_model(rt->apply) != CNN_OK ||
               rt_check_model(rt->eval) != CNN_OK))
        ok = false;
    if (!ok) rt_set_error("the training description of this model.so is damaged");
    return ok ? CNN_OK : CNN_ERR_INVALID_ARGUMENT;
}

/* ---- binding the models' inputs and outputs by name ----------------------- */

static int32_t find_tensor(const cnn_trainer *t, const char *name)
{
    for (int32_t i = 0; i < t->ntensors; i++)
        if (!strcmp(param(t, i)->name, name))
            return i;
    return -1;
}

static bool same_size(const cnn_trainer *t, int32_t i, const RtTensor *g)
{
    return i >= 0 && rt_tensor_bytes(g) == param_numel(param(t, i)) * 4;
}

static Slot bind_input(const cnn_trainer *t, const RtTensor *g, bool *ok)
{
    const char *name = g->name ? g->name : "";
    if (!strcmp(name, "labels")) return (Slot){SLOT_LABELS, 0};
    if (!strcmp(name, "rng")) return *ok = *ok && rt_tensor_bytes(g) == 8, (Slot){SLOT_RNG, 0};
    if (!strcmp(name, "hyper"))
        return *ok = *ok && rt_tensor_bytes(g) == 12, (Slot){SLOT_HYPER, 0};
    if (!strncmp(name, "grad:", 5)) {
        int32_t i = find_tensor(t, name + 5);
        *ok = *ok && i >= 0 && i < t->rt->ntrainable && same_size(t, i, g);
        return (Slot){SLOT_GRAD, i};
    }
    int32_t i = find_tensor(t, name);
    if (i >= 0) return *ok = *ok && same_size(t, i, g), (Slot){SLOT_TENSOR, i};
    return (Slot){SLOT_X, 0};
}

static Slot bind_output(const cnn_trainer *t, const RtTensor *g, bool *ok)
{
    const char *name = g->name;
    if (!name) return (Slot){SLOT_OUTPUT, 0};
    if (!strcmp(name, "loss")) return *ok = *ok && rt_tensor_bytes(g) == 4, (Slot){SLOT_LOSS, 0};
    bool grad = !strncmp(name, "grad:", 5), fresh = !strncmp(name, "new:", 4);
    if (!grad && !fresh) return (Slot){SLOT_OUTPUT, 0};
    int32_t i = find_tensor(t, name + (grad ? 5 : 4));
    *ok = *ok && same_size(t, i, g) && (!grad || i < t->rt->ntrainable);
    return (Slot){grad ? SLOT_GRAD : SLOT_NEW, i};
}

/* Binds every input and output of model m; `x` and `out` receive the tensors of the
 * network's input and output (at most one each). */
static bool bind(cnn_trainer *t, Bound *b, const RtModel *m, const RtTensor **x,
                 const RtTensor **out)
{
    b->m = m;
    b->in = calloc((size_t)m->ninputs + 1, sizeof *b->in);
    b->out = calloc((size_t)m->noutputs + 1, sizeof *b->out);
    b->inp = calloc((size_t)m->ninputs + 1, sizeof *b->inp);
    b->outp = calloc((size_t)m->noutputs + 1, sizeof *b->outp);
    if (!b->in || !b->out || !b->inp || !b->outp) return false;
    bool ok = true;
    *x = *out = NULL;
    for (int32_t i = 0; i < m->ninputs; i++) {
        b->in[i] = bind_input(t, &m->inputs[i], &ok);
        if (b->in[i].kind == SLOT_X) ok = ok && !*x, *x = &m->inputs[i];
    }
    for (int32_t i = 0; i < m->noutputs; i++) {
        b->out[i] = bind_output(t, &m->outputs[i], &ok);
        if (b->out[i].kind == SLOT_OUTPUT) ok = ok && !*out, *out = &m->outputs[i];
    }
    return ok;
}

static void unbind(Bound *b)
{
    free(b->in);
    free(b->out);
    free(b->inp);
    free(b->outp);
}

static bool same_tensor(const RtTensor *a, const RtTensor *b)
{
    return a && b && rt_tensor_bytes(a) == rt_tensor_bytes(b);
}

/* The three models bound, with the roles each must have. */
static cnn_status bind_all(cnn_trainer *t)
{
    const RtTensor *ax, *aout, *ex, *eout;
    bool ok = bind(t, &t->grad, t->rt->grad, &t->x, &t->out) &&
              bind(t, &t->apply, t->rt->apply, &ax, &aout) &&
              bind(t, &t->eval, t->rt->eval, &ex, &eout) && t->x && t->out && !ax && !aout &&
              same_tensor(t->x, ex) && same_tensor(t->out, eout);
    for (int32_t i = 0; ok && i < t->rt->grad->ninputs; i++)
        if (t->grad.in[i].kind == SLOT_LABELS) t->label = &t->rt->grad->inputs[i];
    ok = ok && t->label;
    if (ok && t->rt->loss == RT_LOSS_CROSS_ENTROPY)
        ok = t->label->rank == 1 && t->out->rank == 2 && t->out->dims[1] == t->rt->classes &&
             t->label->dims[0] == t->out->dims[0];
    if (ok && t->rt->loss == RT_LOSS_MSE) ok = same_tensor(t->label, t->out);
    if (ok) return CNN_OK;
    if (!cnn_last_error()[0])
        rt_set_error("the models of this training model.so do not fit its description");
    return CNN_ERR_INVALID_ARGUMENT;
}

/* ---- creating --------------------------------------------------------------- */

static void *aligned(size_t bytes)
{
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 64) == 0 ? p : NULL;
}

/* Floats of a tensor rounded up to 64 bytes, so that every tensor starts aligned. */
static size_t padded(const RtTrainParam *p)
{
    return ((size_t)param_numel(p) + 15) / 16 * 16;
}

static int32_t num_kernels(const cnn_trainer *t)
{
    return t->rt->grad->nkernels + t->rt->apply->nkernels + t->rt->eval->nkernels;
}

static cnn_status allocate(cnn_trainer *t)
{
    const RtTrain *rt = t->rt;
    size_t total = 0, grads = 0;
    for (int32_t i = 0; i < t->ntensors; i++)
        total += padded(param(t, i));
    t->grad_at = calloc((size_t)rt->ntrainable + 1, sizeof *t->grad_at);
    for (int32_t i = 0; t->grad_at && i < rt->ntrainable; i++) {
        t->grad_at[i] = (int64_t)grads;
        grads += (size_t)param_numel(param(t, i));
    }
    t->ngrads = grads;
    int64_t arena = rt->grad->arena_bytes;
    if (rt->apply->arena_bytes > arena) arena = rt->apply->arena_bytes;
    if (rt->eval->arena_bytes > arena) arena = rt->eval->arena_bytes;
    t->cur = calloc((size_t)t->ntensors + 1, sizeof *t->cur);
    t->next = calloc((size_t)t->ntensors + 1, sizeof *t->next);
    t->store = aligned(2 * total * sizeof(float));
    t->grads = aligned(grads * sizeof(float));
    t->labels = aligned((size_t)rt_tensor_bytes(t->label));
    t->output = aligned((size_t)rt_tensor_bytes(t->out));
    t->arena = (uint64_t)arena <= SIZE_MAX ? rt_alloc_large((size_t)arena) : NULL;
    t->counters = calloc((size_t)num_kernels(t) + 1, sizeof *t->counters);
    if (!t->grad_at || !t->cur || !t->next || !t->store || !t->grads || !t->labels ||
        !t->output || !t->arena || !t->counters)
        return CNN_ERR_OUT_OF_MEMORY;
    memset(t->arena, 0, (size_t)arena);
    memset(t->grads, 0, grads * sizeof(float));
    float *at = t->store;
    for (int32_t i = 0; i < t->ntensors; i++) {
        const RtTrainParam *p = param(t, i);
        size_t bytes = (size_t)param_numel(p) * sizeof(float);
        t->cur[i] = at;
        t->next[i] = at + padded(p);
        at += 2 * padded(p);
        if (p->init >= 0) memcpy(t->cur[i], rt->init + p->init, bytes);
        else memset(t->cur[i], 0, bytes);
        memset(t->next[i], 0, bytes);
    }
    return CNN_OK;
}

static cnn_status check_train_options(const cnn_train_options *opt)
{
    if (opt->api_version != CNN_TRAIN_API_VERSION) {
        rt_set_error("options of training API version %u; this model.so implements version %d",
                     (unsigned)opt->api_version, CNN_TRAIN_API_VERSION);
        return CNN_ERR_VERSION;
    }
    if (opt->num_threads < 0 || opt->num_threads > RT_MAX_THREADS) {
        rt_set_error("num_threads %d is outside [0, %d] (0: one per core)", (int)opt->num_threads,
                     RT_MAX_THREADS);
        return CNN_ERR_INVALID_ARGUMENT;
    }
    return CNN_OK;
}

cnn_status rt_trainer_create(const RtTrain *desc, const cnn_train_options *opt, cnn_trainer **out)
{
    if (!out) return CNN_ERR_INVALID_ARGUMENT;
    *out = NULL;
    rt_set_error("%s", "");
    if (!desc) {
        rt_set_error("this model.so holds no training model (compile it with cnnc --train)");
        return CNN_ERR_INVALID_ARGUMENT;
    }
    cnn_train_options defaults;
    if (!opt) {
        cnn_train_options_init(&defaults);
        opt = &defaults;
    }
    cnn_status s = check_train_options(opt);
    if (s == CNN_OK) s = check_train(desc);
    if (s != CNN_OK) return s;
    cnn_trainer *t = calloc(1, sizeof *t);
    if (!t) return CNN_ERR_OUT_OF_MEMORY;
    atomic_flag_clear(&t->busy);
    t->rt = desc;
    t->ntensors = desc->nparams + desc->nstate;
    t->lr = desc->lr;
    t->seed = opt->seed;
    s = bind_all(t);
    if (s == CNN_OK) s = allocate(t);
    if (s == CNN_OK && !(t->pool = rt_pool_new(rt_threads(opt->num_threads))))
        s = CNN_ERR_THREADS;
    /* one pool runs the three models' kernels: the scratch of the largest */
    int64_t scratch = desc->grad->scratch_bytes;
    if (desc->apply->scratch_bytes > scratch) scratch = desc->apply->scratch_bytes;
    if (desc->eval->scratch_bytes > scratch) scratch = desc->eval->scratch_bytes;
    if (s == CNN_OK && !rt_pool_reserve_scratch(t->pool, scratch)) s = CNN_ERR_OUT_OF_MEMORY;
    if (s != CNN_OK) {
        cnn_trainer_destroy(t);
        return s;
    }
    *out = t;
    return CNN_OK;
}

CNN_EXPORT void cnn_trainer_destroy(cnn_trainer *t)
{
    if (!t) return;
    rt_pool_free(t->pool);
    unbind(&t->grad);
    unbind(&t->apply);
    unbind(&t->eval);
    free(t->cur);
    free(t->next);
    free(t->store);
    free(t->grads);
    free(t->grad_at);
    free(t->labels);
    free(t->output);
    free(t->arena);
    free(t->counters);
    free(t);
}

/* ---- running ---------------------------------------------------------------- */

static cnn_status acquire(cnn_trainer *t)
{
    rt_set_error("%s", "");
    return rt_acquire(&t->busy);
}

static void release(cnn_trainer *t)
{
    rt_release(&t->busy);
}

/* Runs a bound model on batch x (NULL where it reads none), writing its network
 * output to `output`; the tensors it renews stay aside until `commit`. */
static void run(cnn_trainer *t, Bound *b, const float *x, float *output)
{
    for (int32_t i = 0; i < b->m->ninputs; i++) {
        Slot s = b->in[i];
        b->inp[i] = s.kind == SLOT_X        ? x
                    : s.kind == SLOT_LABELS ? t->label_in
                    : s.kind == SLOT_RNG    ? t->rng
                    : s.kind == SLOT_HYPER  ? t->hyper
                    : s.kind == SLOT_GRAD   ? t->grads + t->grad_at[s.index]
                                            : t->cur[s.index];
    }
    for (int32_t i = 0; i < b->m->noutputs; i++) {
        Slot s = b->out[i];
        b->outp[i] = s.kind == SLOT_LOSS     ? &t->loss
                     : s.kind == SLOT_OUTPUT ? output
                     : s.kind == SLOT_GRAD   ? t->grads + t->grad_at[s.index]
                                             : t->next[s.index];
    }
    if (t->profiling) {
        RtCounter *c = t->counters;
        if (b != &t->grad) c += t->rt->grad->nkernels;
        if (b == &t->eval) c += t->rt->apply->nkernels;
        rt_pool_set_counters(t->pool, c, b->m->nkernels);
    }
    b->m->run(t->pool, t->arena, b->inp, b->outp);
}

/* The tensors model b wrote (its new:NAME outputs) become the current ones. */
static void commit(cnn_trainer *t, const Bound *b)
{
    for (int32_t i = 0; i < b->m->noutputs; i++) {
        if (b->out[i].kind != SLOT_NEW) continue;
        int32_t k = b->out[i].index;
        float *p = t->cur[k];
        t->cur[k] = t->next[k];
        t->next[k] = p;
    }
}

static cnn_status check_buffer(const cnn_tensor *b, size_t bytes, size_t align, const char *what)
{
    if (!b || (bytes > 0 && (!b->data || (uintptr_t)b->data % align != 0))) {
        rt_set_error("%s: %s buffer", what, b && b->data ? "misaligned" : "no");
        return CNN_ERR_INVALID_ARGUMENT;
    }
    if (b->size != bytes) {
        rt_set_error("%s: %zu bytes given, %zu expected", what, b->size, bytes);
        return CNN_ERR_SIZE_MISMATCH;
    }
    return CNN_OK;
}

/* The labels as the graph reads them: class indices checked and made f32
 * (t->labels), or the caller's f32 targets. */
static cnn_status take_labels(cnn_trainer *t, const cnn_tensor *y, const float **out)
{
    int64_t n = rt_tensor_bytes(t->label) / 4;
    if (t->rt->loss == RT_LOSS_MSE) {
        cnn_status s = check_buffer(y, (size_t)n * 4, alignof(float), "labels");
        *out = s == CNN_OK ? y->data : NULL;
        return s;
    }
    cnn_status s = check_buffer(y, (size_t)n * 8, alignof(int64_t), "labels");
    if (s != CNN_OK) return s;
    const int64_t *c = y->data;
    for (int64_t i = 0; i < n; i++) {
        if (c[i] < 0 || c[i] >= t->rt->classes) {
            rt_set_error("label %lld (batch item %lld) is not a class in [0, %d)",
                         (long long)c[i], (long long)i, (int)t->rt->classes);
            return CNN_ERR_LABEL;
        }
        t->labels[i] = (float)c[i];
    }
    *out = t->labels;
    return CNN_OK;
}

static cnn_status compute(cnn_trainer *t, const cnn_tensor *x, const cnn_tensor *y, float *loss)
{
    t->grads_state = GRADS_NONE;
    cnn_status s = check_buffer(x, (size_t)rt_tensor_bytes(t->x), alignof(float), "x");
    const float *labels = NULL;
    if (s == CNN_OK) s = take_labels(t, y, &labels);
    if (s != CNN_OK) return s;
    t->label_in = labels;
    t->rng[0] = (float)(t->seed & 0xffffff);
    t->rng[1] = (float)(t->steps & 0xffffff);
    run(t, &t->grad, x->data, t->output);
    if (loss) *loss = t->loss;
    if (!isfinite(t->loss)) {
        t->grads_state = GRADS_NOT_FINITE;
        rt_set_error("the loss is %f at step %lld: nothing was updated", (double)t->loss,
                     (long long)t->steps);
        return CNN_ERR_NOT_FINITE;
    }
    commit(t, &t->grad);
    t->grads_state = GRADS_READY;
    return CNN_OK;
}

/* hyper = {lr, 1 - beta1^t, 1 - beta2^t} for step t (Adam); SGD's hyper[1] is t - 1,
 * the steps before this one (0 marks the first, ir/ir.h OptimAttrs). */
static cnn_status apply(cnn_trainer *t)
{
    if (t->grads_state != GRADS_READY) {
        bool nan = t->grads_state == GRADS_NOT_FINITE;
        rt_set_error(nan ? "the last gradients were not finite: compute them again"
                         : "no gradients to apply: call cnn_trainer_compute_gradients first");
        return nan ? CNN_ERR_NOT_FINITE : CNN_ERR_INVALID_ARGUMENT;
    }
    double step = (double)(t->steps + 1);
    t->hyper[0] = t->lr;
    if (t->rt->optim == RT_OPTIM_SGD) {
        t->hyper[1] = (float)t->steps;
        t->hyper[2] = 0;
    } else {
        t->hyper[1] = (float)(1.0 - pow(t->rt->beta1, step));
        t->hyper[2] = (float)(1.0 - pow(t->rt->beta2, step));
    }
    run(t, &t->apply, NULL, NULL);
    commit(t, &t->apply);
    t->steps++;
    t->grads_state = GRADS_NONE;
    return CNN_OK;
}

CNN_EXPORT cnn_status cnn_trainer_compute_gradients(cnn_trainer *t, const cnn_tensor *x,
                                                    const cnn_tensor *labels, float *loss)
{
    if (!t) return CNN_ERR_INVALID_ARGUMENT;
    cnn_status s = acquire(t);
    if (s != CNN_OK) return s;
    s = compute(t, x, labels, loss);
    release(t);
    return s;
}

CNN_EXPORT cnn_status cnn_trainer_apply_gradients(cnn_trainer *t)
{
    if (!t) return CNN_ERR_INVALID_ARGUMENT;
    cnn_status s = acquire(t);
    if (s != CNN_OK) return s;
    s = apply(t);
    release(t);
    return s;
}

CNN_EXPORT cnn_status cnn_trainer_step(cnn_trainer *t, const cnn_tensor *x,
                                       const cnn_tensor *labels, float *loss)
{
    if (!t) return CNN_ERR_INVALID_ARGUMENT;
    cnn_status s = acquire(t);
    if (s != CNN_OK) return s;
    s = compute(t, x, labels, loss);
    if (s == CNN_OK) s = apply(t);
    release(t);
    return s;
}

CNN_EXPORT cnn_status cnn_trainer_gradients(cnn_trainer *t, float **data, size_t *count)
{
    if (!t || !data || !count) return CNN_ERR_INVALID_ARGUMENT;
    *data = t->grads;
    *count = t->ngrads;
    return CNN_OK;
}

CNN_EXPORT cnn_status cnn_trainer_outputs(const cnn_trainer *t, const float **data,
                                          size_t *count)
{
    if (!t || !data || !count) return CNN_ERR_INVALID_ARGUMENT;
    *data = t->output;
    *count = (size_t)rt_tensor_bytes(t->out) / sizeof(float);
    return CNN_OK;
}

/* The mean loss of `out` against the labels the graph reads, in double. */
static float loss_of(const cnn_trainer *t, const float *out, const float *labels)
{
    double sum = 0;
    int64_t n = t->out->dims[0], k = rt_tensor_bytes(t->out) / 4 / (n ? n : 1);
    if (t->rt->loss == RT_LOSS_MSE) {
        for (int64_t i = 0; i < n * k; i++)
            sum += ((double)out[i] - labels[i]) * ((double)out[i] - labels[i]);
        return (float)(sum / (double)(n * k > 0 ? n * k : 1));
    }
    for (int64_t i = 0; i < n; i++) {
        const float *row = out + i * k;
        double m = row[0], e = 0;
        for (int64_t j = 1; j < k; j++)
            m = row[j] > m ? row[j] : m;
        for (int64_t j = 0; j < k; j++)
            e += exp((double)row[j] - m);
        sum += m + log(e) - row[(int64_t)labels[i]];
    }
    return (float)(sum / (double)(n ? n : 1));
}

static cnn_status evaluate(cnn_trainer *t, const cnn_tensor *x, const cnn_tensor *y, float *loss,
                           cnn_tensor *outputs)
{
    size_t out_bytes = (size_t)rt_tensor_bytes(t->out);
    cnn_status s = check_buffer(x, (size_t)rt_tensor_bytes(t->x), alignof(float), "x");
    if (s == CNN_OK && outputs) s = check_buffer(outputs, out_bytes, alignof(float), "outputs");
    const float *labels = NULL;
    if (s == CNN_OK && loss) s = take_labels(t, y, &labels);
    if (s != CNN_OK) return s;
    float *out = outputs ? outputs->data : t->output;
    run(t, &t->eval, x->data, out);
    if (loss) *loss = loss_of(t, out, labels);
    return CNN_OK;
}

CNN_EXPORT cnn_status cnn_trainer_evaluate(cnn_trainer *t, const cnn_tensor *x,
                                           const cnn_tensor *labels, float *loss,
                                           cnn_tensor *outputs)
{
    if (!t) return CNN_ERR_INVALID_ARGUMENT;
    cnn_status s = acquire(t);
    if (s != CNN_OK) return s;
    s = evaluate(t, x, labels, loss, outputs);
    release(t);
    return s;
}

/* ---- describing ------------------------------------------------------------- */

CNN_EXPORT int64_t cnn_trainer_batch(const cnn_trainer *t)
{
    return !t ? -1 : t->x->rank ? t->x->dims[0] : 1;
}

CNN_EXPORT cnn_status cnn_trainer_input_info(const cnn_trainer *t, cnn_tensor_info *info)
{
    if (!t || !info) return CNN_ERR_INVALID_ARGUMENT;
    rt_fill_info(t->x, info);
    return CNN_OK;
}

CNN_EXPORT cnn_status cnn_trainer_output_info(const cnn_trainer *t, cnn_tensor_info *info)
{
    if (!t || !info) return CNN_ERR_INVALID_ARGUMENT;
    rt_fill_info(t->out, info);
    return CNN_OK;
}

CNN_EXPORT cnn_status cnn_trainer_label_info(const cnn_trainer *t, cnn_label_kind *kind,
                                             cnn_tensor_info *info)
{
    if (!t || !kind || !info) return CNN_ERR_INVALID_ARGUMENT;
    rt_fill_info(t->label, info);
    *kind = CNN_LABEL_TARGET;
    if (t->rt->loss == RT_LOSS_CROSS_ENTROPY) {
        *kind = CNN_LABEL_CLASS;
        info->dtype = CNN_I64;
        info->size *= 2;
    }
    return CNN_OK;
}

CNN_EXPORT int32_t cnn_trainer_num_params(const cnn_trainer *t)
{
    return t ? t->rt->nparams : -1;
}

CNN_EXPORT int32_t cnn_trainer_num_trainable(const cnn_trainer *t)
{
    return t ? t->rt->ntrainable : -1;
}

CNN_EXPORT cnn_status cnn_trainer_param_info(const cnn_trainer *t, int32_t i,
                                             cnn_tensor_info *info)
{
    if (!t || !info || i < 0 || i >= t->rt->nparams) return CNN_ERR_INVALID_ARGUMENT;
    const RtTrainParam *p = param(t, i);
    memset(info, 0, sizeof *info);
    info->name = p->name;
    info->dtype = CNN_F32;
    info->rank = p->rank;
    for (int32_t k = 0; k < p->rank; k++)
        info->dims[k] = p->dims[k];
    info->size = (size_t)param_numel(p) * sizeof(float);
    return CNN_OK;
}

static cnn_status check_param(const cnn_trainer *t, int32_t i, const void *data, size_t size)
{
    if (!t || i < 0 || i >= t->rt->nparams || !data) return CNN_ERR_INVALID_ARGUMENT;
    size_t bytes = (size_t)param_numel(param(t, i)) * sizeof(float);
    if (size == bytes) return CNN_OK;
    rt_set_error("'%s': %zu bytes given, %zu expected", param(t, i)->name, size, bytes);
    return CNN_ERR_SIZE_MISMATCH;
}

CNN_EXPORT cnn_status cnn_trainer_get_param(const cnn_trainer *t, int32_t i, void *data,
                                            size_t size)
{
    rt_set_error("%s", "");
    cnn_status s = check_param(t, i, data, size);
    if (s == CNN_OK) memcpy(data, t->cur[i], size);
    return s;
}

CNN_EXPORT cnn_status cnn_trainer_set_param(cnn_trainer *t, int32_t i, const void *data,
                                            size_t size)
{
    if (!t) return CNN_ERR_INVALID_ARGUMENT;
    cnn_status s = acquire(t);
    if (s != CNN_OK) return s;
    s = check_param(t, i, data, size);
    if (s == CNN_OK) memcpy(t->cur[i], data, size);
    release(t);
    return s;
}

CNN_EXPORT cnn_status cnn_trainer_set_lr(cnn_trainer *t, float lr)
{
    if (!t) return CNN_ERR_INVALID_ARGUMENT;
    cnn_status s = acquire(t);
    if (s != CNN_OK) return s;
    if (!(lr >= 0) || !isfinite(lr)) {
        rt_set_error("learning rate %g is not a finite number >= 0", (double)lr);
        s = CNN_ERR_INVALID_ARGUMENT;
    } else {
        t->lr = lr;
    }
    release(t);
    return s;
}

CNN_EXPORT float cnn_trainer_lr(const cnn_trainer *t)
{
    return t ? t->lr : NAN;
}

CNN_EXPORT int64_t cnn_trainer_steps(const cnn_trainer *t)
{
    return t ? t->steps : -1;
}

/* ---- profiling ---------------------------------------------------------------- */

CNN_EXPORT cnn_status cnn_trainer_set_profiling(cnn_trainer *t, int enabled)
{
    if (!t) return CNN_ERR_INVALID_ARGUMENT;
    cnn_status s = acquire(t);
    if (s != CNN_OK) return s;
    t->profiling = enabled != 0;
    if (enabled) memset(t->counters, 0, (size_t)num_kernels(t) * sizeof *t->counters);
    else rt_pool_set_counters(t->pool, NULL, 0);
    release(t);
    return CNN_OK;
}

CNN_EXPORT int32_t cnn_trainer_num_kernels(const cnn_trainer *t)
{
    return t ? num_kernels(t) : -1;
}

CNN_EXPORT cnn_status cnn_trainer_kernel_info(const cnn_trainer *t, int32_t i,
                                              cnn_kernel_info *info)
{
    if (!t || !info || i < 0 || i >= num_kernels(t)) return CNN_ERR_INVALID_ARGUMENT;
    const RtModel *m[3] = {t->rt->grad, t->rt->apply, t->rt->eval};
    int32_t k = i, j = 0;
    while (k >= m[j]->nkernels)
        k -= m[j++]->nkernels;
    const RtKernelInfo *ki = &m[j]->kernels[k];
    memset(info, 0, sizeof *info);
    info->name = ki->name ? ki->name : "";
    info->op = ki->op ? ki->op : "";
    info->flops = ki->flops;
    info->calls = t->counters[i].calls;
    info->seconds = (double)t->counters[i].ns * 1e-9;
    return CNN_OK;
}

/* ---- .safetensors -------------------------------------------------------------- */

/* The format: an 8-byte little-endian header length, a JSON header
 *   {"NAME":{"dtype":"F32","shape":[...],"data_offsets":[BEGIN,END]},...}
 * padded with spaces to a multiple of 8, then the data (offsets from its start). */

#define ST_MAX_HEADER (100 << 20)

/* Appends to a growing string; false when out of memory. */
typedef struct Text {
    char *s;
    size_t n, cap;
} Text;

static bool put(Text *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool put(Text *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return false;
        if (b->s && b->n + (size_t)k < b->cap) return b->n += (size_t)k, true;
        size_t cap = (b->cap ? 2 * b->cap : 4096) + (size_t)k;
        char *s = realloc(b->s, cap);
        if (!s) return false;
        b->s = s;
        b->cap = cap;
    }
}

/* A name as a JSON string; the model's names are identifiers joined by dots. */
static bool put_name(Text *b, const char *name)
{
    bool ok = put(b, "\"");
    for (const char *c = name; ok && *c; c++)
        ok = (unsigned char)*c < 0x20 ? put(b, "\\u%04x", (unsigned)*c)
             : *c == '"' || *c == '\\' ? put(b, "\\%c", *c)
                                       : put(b, "%c", *c);
    return ok && put(b, "\"");
}

static bool header(const cnn_trainer *t, Text *b)
{
    bool ok = put(b, "{");
    int64_t at = 0;
    for (int32_t i = 0; ok && i < t->rt->nparams; i++) {
        const RtTrainParam *p = param(t, i);
        ok = put(b, "%s", i ? "," : "") && put_name(b, p->name) &&
             put(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int32_t k = 0; ok && k < p->rank; k++)
            ok = put(b, "%s%lld", k ? "," : "", (long long)p->dims[k]);
        int64_t end = at + param_numel(p) * 4;
        ok = ok && put(b, "],\"data_offsets\":[%lld,%lld]}", (long long)at, (long long)end);
        at = end;
    }
    ok = ok && put(b, "}");
    while (ok && b->n % 8)
        ok = put(b, " ");
    return ok;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        c += k;
        n -= (size_t)k;
    }
    return true;
}

static bool write_tensors(const cnn_trainer *t, int fd, const Text *h)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)h->n >> (8 * i));
    bool ok = write_all(fd, len, 8) && write_all(fd, h->s, h->n);
    for (int32_t i = 0; ok && i < t->rt->nparams; i++)
        ok = write_all(fd, t->cur[i], (size_t)param_numel(param(t, i)) * sizeof(float));
    return ok && fsync(fd) == 0;
}

static cnn_status save(const cnn_trainer *t, const char *path)
{
    Text h = {0};
    if (!header(t, &h)) return free(h.s), CNN_ERR_OUT_OF_MEMORY;
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return free(h.s), CNN_ERR_OUT_OF_MEMORY;
    snprintf(tmp, n, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    bool ok = fd >= 0 && write_tensors(t, fd, &h);
    int err = errno;
    if (fd >= 0 && close(fd) != 0 && ok) ok = false, err = errno;
    mode_t mask = umask(0);
    umask(mask);
    if (ok && (chmod(tmp, 0666 & ~mask) != 0 || rename(tmp, path) != 0)) ok = false, err = errno;
    if (!ok) {
        rt_set_error("cannot write '%s': %s", path, strerror(err ? err : EIO));
        if (fd >= 0) unlink(tmp);
    }
    free(tmp);
    free(h.s);
    return ok ? CNN_OK : CNN_ERR_IO;
}

CNN_EXPORT cnn_status cnn_trainer_save(const cnn_trainer *t, const char *path)
{
    rt_set_error("%s", "");
    if (!t || !path) return CNN_ERR_INVALID_ARGUMENT;
    return save(t, path);
}

/* A bounded reader of the JSON header: every error is a message, no recursion past
 * a small depth. */
typedef struct Json {
    const char *start, *p, *end;
    char err[160];
} Json;

static bool jfail(Json *j, const char *what)
{
    if (!j->err[0]) snprintf(j->err, sizeof j->err, "%s at byte %lld of the header", what,
                             (long long)(j->p - j->start));
    return false;
}

static void jspace(Json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static bool jchar(Json *j, char c)
{
    jspace(j);
    if (j->p < j->end && *j->p == c) return j->p++, true;
    char what[32];
    snprintf(what, sizeof what, "expected '%c'", c);
    return jfail(j, what);
}

static bool jpeek(Json *j, char c)
{
    jspace(j);
    return j->p < j->end && *j->p == c;
}

/* A string: [*s, *s + *n) in the header, escapes left as they are. */
static bool jstring(Json *j, const char **s, size_t *n)
{
    if (!jchar(j, '"')) return false;
    *s = j->p;
    while (j->p < j->end && *j->p != '"')
        j->p += *j->p == '\\' && j->p + 1 < j->end ? 2 : 1;
    if (j->p >= j->end) return jfail(j, "unterminated string");
    *n = (size_t)(j->p - *s);
    j->p++;
    return true;
}

static bool jint(Json *j, int64_t *v)
{
    jspace(j);
    *v = 0;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return jfail(j, "expected a count");
    for (; j->p < j->end && *j->p >= '0' && *j->p <= '9'; j->p++) {
        if (*v > (INT64_MAX - 9) / 10) return jfail(j, "number too large");
        *v = *v * 10 + (*j->p - '0');
    }
    return true;
}

/* [a, b, ...] of at most `max` counts. */
static bool jints(Json *j, int64_t *v, int32_t max, int32_t *n)
{
    *n = 0;
    if (!jchar(j, '[')) return false;
    if (jpeek(j, ']')) return j->p++, true;
    do {
        if (*n == max) return jfail(j, "too many numbers");
        if (!jint(j, &v[(*n)++])) return false;
    } while (jpeek(j, ',') && j->p++);
    return jchar(j, ']');
}

static bool jskip(Json *j, int depth)
{
    const char *s;
    size_t n;
    if (depth > 8) return jfail(j, "nested too deeply");
    jspace(j);
    if (j->p >= j->end) return jfail(j, "unexpected end");
    if (*j->p == '"') return jstring(j, &s, &n);
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        j->p++;
        if (jpeek(j, close)) return j->p++, true;
        do {
            if (close == '}' && !(jstring(j, &s, &n) && jchar(j, ':'))) return false;
            if (!jskip(j, depth + 1)) return false;
        } while (jpeek(j, ',') && j->p++);
        return jchar(j, close);
    }
    const char *start = j->p;
    while (j->p < j->end && *j->p && strchr("+-.0123456789eEtruefalsn", *j->p))
        j->p++;
    return j->p > start || jfail(j, "unexpected character");
}

static bool is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && !memcmp(s, word, n);
}

/* One tensor's entry: dtype, shape and data offsets. */
typedef struct Entry {
    bool f32;
    int64_t shape[RT_MAX_RANK + 1], off[3];
    int32_t rank, noff;
} Entry;

static bool jentry(Json *j, Entry *e)
{
    memset(e, 0, sizeof *e);
    if (!jchar(j, '{')) return false;
    if (jpeek(j, '}')) return j->p++, true;
    do {
        const char *k, *v;
        size_t kn, vn;
        if (!jstring(j, &k, &kn) || !jchar(j, ':')) return false;
        bool ok = is(k, kn, "dtype")          ? jstring(j, &v, &vn) && ((e->f32 = is(v, vn, "F32")), true)
                  : is(k, kn, "shape")        ? jints(j, e->shape, RT_MAX_RANK + 1, &e->rank)
                  : is(k, kn, "data_offsets") ? jints(j, e->off, 3, &e->noff)
                                              : jskip(j, 1);
        if (!ok) return false;
    } while (jpeek(j, ',') && j->p++);
    return jchar(j, '}');
}

/* Where each tensor's data is in the file (at[i], -1 for not found). */
static bool check_entry(const cnn_trainer *t, int32_t i, const Entry *e, uint64_t data,
                        int64_t *at, char *err, size_t n)
{
    const RtTrainParam *p = param(t, i);
    bool shape = e->rank == p->rank;
    for (int32_t k = 0; shape && k < p->rank; k++)
        shape = e->shape[k] == p->dims[k];
    if (!e->f32) return snprintf(err, n, "'%s' is not F32", p->name), false;
    if (!shape) return snprintf(err, n, "'%s' has another shape than the model's", p->name), false;
    if (e->noff != 2 || e->off[1] < e->off[0] || (uint64_t)e->off[1] > data ||
        e->off[1] - e->off[0] != param_numel(p) * 4)
        return snprintf(err, n, "'%s': bad data_offsets", p->name), false;
    at[i] = e->off[0];
    return true;
}

static bool parse_header(const cnn_trainer *t, Json *j, uint64_t data, int64_t *at)
{
    for (int32_t i = 0; i < t->rt->nparams; i++)
        at[i] = -1;
    if (!jchar(j, '{')) return false;
    if (jpeek(j, '}')) return j->p++, true;
    do {
        const char *k;
        size_t kn;
        if (!jstring(j, &k, &kn) || !jchar(j, ':')) return false;
        int32_t i = 0;
        while (i < t->rt->nparams && !is(k, kn, param(t, i)->name))
            i++;
        if (i == t->rt->nparams) {
            if (!jskip(j, 1)) return false;
            continue;
        }
        Entry e;
        if (!jentry(j, &e)) return false;
        if (!check_entry(t, i, &e, data, at, j->err, sizeof j->err)) return false;
    } while (jpeek(j, ',') && j->p++);
    return jchar(j, '}');
}

static bool read_at(int fd, void *p, size_t n, uint64_t off)
{
    char *c = p;
    while (n > 0) {
        ssize_t k = pread(fd, c, n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return false;
        c += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return true;
}

/* Reads every tensor into the instance's spare buffers, then swaps them in: a file
 * that fails anywhere changes nothing. */
static cnn_status load(cnn_trainer *t, int fd, const char *path, uint64_t size)
{
    unsigned char len[8];
    if (size < 8 || !read_at(fd, len, 8, 0))
        return rt_set_error("'%s' is not a .safetensors file (too short)", path), CNN_ERR_IO;
    uint64_t hn = 0;
    for (int i = 0; i < 8; i++)
        hn |= (uint64_t)len[i] << (8 * i);
    if (hn > ST_MAX_HEADER || hn > size - 8)
        return rt_set_error("'%s': header of %llu bytes", path, (unsigned long long)hn),
               CNN_ERR_IO;
    char *text = malloc(hn + 1);
    int64_t *at = calloc((size_t)t->rt->nparams + 1, sizeof *at);
    cnn_status s = text && at ? CNN_OK : CNN_ERR_OUT_OF_MEMORY;
    if (s == CNN_OK && !read_at(fd, text, hn, 8)) {
        rt_set_error("cannot read '%s': %s", path, strerror(errno ? errno : EIO));
        s = CNN_ERR_IO;
    }
    Json j = {text, text, text + hn, ""};
    if (s == CNN_OK && !parse_header(t, &j, size - 8 - hn, at)) {
        rt_set_error("'%s': %s", path, j.err);
        s = CNN_ERR_IO;
    }
    for (int32_t i = 0; s == CNN_OK && i < t->rt->nparams; i++) {
        size_t bytes = (size_t)param_numel(param(t, i)) * sizeof(float);
        if (at[i] < 0) {
            rt_set_error("'%s' has no tensor '%s'", path, param(t, i)->name);
            s = CNN_ERR_IO;
        } else if (!read_at(fd, t->next[i], bytes, 8 + hn + (uint64_t)at[i])) {
            rt_set_error("cannot read '%s': %s", path, strerror(errno ? errno : EIO));
            s = CNN_ERR_IO;
        }
    }
    for (int32_t i = 0; s == CNN_OK && i < t->rt->nparams; i++) {
        float *p = t->cur[i];
        t->cur[i] = t->next[i];
        t->next[i] = p;
    }
    free(text);
    free(at);
    return s;
}

CNN_EXPORT cnn_status cnn_trainer_load(cnn_trainer *t, const char *path)
{
    if (!t || !path) return CNN_ERR_INVALID_ARGUMENT;
    cnn_status s = acquire(t);
    if (s != CNN_OK) return s;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rt_set_error("cannot read '%s': %s", path, fd < 0 ? strerror(errno) : "not a file");
        s = CNN_ERR_IO;
    } else {
        s = load(t, fd, path, (uint64_t)st.st_size);
    }
    if (fd >= 0) close(fd);
    release(t);
    return s;
}
