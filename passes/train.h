/* train.h: the training step of a network (docs/training.md). train_build turns a
 * forward graph into three graphs of the ordinary IR: grad (forward in training mode,
 * the loss and reverse-mode gradients), apply (the optimizer's update) and eval
 * (forward in evaluation mode), every weight a graph input. */
#ifndef CNNC_PASSES_TRAIN_H
#define CNNC_PASSES_TRAIN_H

#include "ir.h"

typedef enum { LOSS_CROSS_ENTROPY, LOSS_MSE } LossKind;
typedef enum { OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW } OptimKind;

typedef struct TrainOptions {
    LossKind loss;
    OptimKind optim;
    float lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    bool nesterov;
    float bn_momentum; /* PyTorch's batch-norm momentum, 0.1 */
} TrainOptions;

/* SGD, lr 0.01, momentum 0, and PyTorch's defaults otherwise (Adam's betas 0.9 and
 * 0.999, eps 1e-8, no weight decay, batch-norm momentum 0.1). */
void train_options_init(TrainOptions *o);
/* NULL when the options are valid, else what is wrong with them ("momentum must
 * be ...": the driver names its flag). */
const char *train_options_check(const TrainOptions *o);

typedef enum { TP_WEIGHT, TP_BUFFER, TP_STATE } TrainParamKind;

typedef struct TrainParam {
    const char *name;  /* "conv1.weight", "bn1.running_mean", "momentum:conv1.weight",
                          "exp_avg:conv1.weight", "exp_avg_sq:conv1.weight" */
    TensorType type;   /* plain f32, as the forward graph has it (a graph input of the
                          same name may be lowered to another shape of the same size) */
    TrainParamKind kind;
    const float *init; /* initial values (numel floats); NULL: zeros (optimizer state) */
} TrainParam;

/* The graphs' inputs and outputs, in order:
 *   grad:  inputs  the network's inputs, `labels`, `rng` f32[2] (seed, step), then
 *                  every parameter (params[]);
 *          outputs `loss` f32[1], the network's output, `grad:NAME` per trainable
 *                  parameter, `new:NAME` per buffer (batch-norm running statistics).
 *   apply: inputs  `hyper` f32[3] (lr, and Adam's 1 - beta1^t, 1 - beta2^t; SGD's
 *                  hyper[1] is t - 1), then per trainable parameter NAME, `grad:NAME`
 *                  and its state tensors (state[] in this order);
 *          outputs `new:NAME` per trainable parameter, then `new:STATE` per state.
 *   eval:  inputs  the network's inputs, then every parameter (params[]);
 *          outputs the network's output.
 * Everything (names, init data, graphs) lives until train_step_free. */
typedef struct TrainStep {
    Graph *grad, *apply, *eval;
    TrainParam *params; /* weights (trainable) first, then buffers */
    int32_t nparams, ntrainable;
    TrainParam *state;  /* optimizer state in the apply graph's input order */
    int32_t nstate;
    int32_t label_node; /* index of the grad graph's `labels` input */
    LossKind loss;
} TrainStep;

/* Builds the three graphs from a forward graph whose parameters are bound (data set)
 * and whose required passes have not run. Errors (an op without a gradient, a network
 * with several outputs, a loss that does not fit the output shape) are located at the
 * node; false after reporting them, with *out cleared. */
bool train_build(const Graph *fwd, const TrainOptions *o, TrainStep *out, Diag *d);
void train_step_free(TrainStep *s);

/* Binds every unbound parameter of `g` as PyTorch initializes it (docs/training.md,
 * "Initialization"), drawing from `seed`; bound ones are kept. */
void train_init_params(Graph *g, uint64_t seed);

#endif
