/* cnnc/train.h: the C API of a training model compiled by `cnnc --train`
 * (MODEL_train.so). It holds the network, its weights, their gradients and the
 * optimizer's state in each instance, and runs one whole training step --
 * forward, loss, backward, optimizer update -- as native code:
 *
 *     cnn_train_options opt;
 *     cnn_train_options_init(&opt);
 *     opt.num_threads = 2;
 *     cnn_trainer *t;
 *     if (cnn_trainer_create(&opt, &t) != CNN_OK) ...
 *     cnn_tensor x = {images, sizeof images}, y = {labels, sizeof labels};
 *     float loss;
 *     for (...) if (cnn_trainer_step(t, &x, &y, &loss) != CNN_OK) ...
 *     cnn_trainer_save(t, "weights.safetensors");
 *     cnn_trainer_destroy(t);
 *
 * A step is also two calls, for data parallelism: cnn_trainer_compute_gradients
 * leaves the gradients in one contiguous float buffer (cnn_trainer_gradients),
 * which the caller may average across processes (MPI allreduce) before
 * cnn_trainer_apply_gradients updates the weights.
 *
 * Like model.h: the functions never print and never abort; every failure is a
 * status, with more in cnn_last_error(). One instance runs one call at a time. */
#ifndef CNNC_TRAIN_H
#define CNNC_TRAIN_H

#include "cnnc/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CNN_TRAIN_API_VERSION 1

/* Labels: class indices (int64, cross-entropy) or targets (float32, mean squared error). */
typedef enum cnn_label_kind { CNN_LABEL_CLASS = 1, CNN_LABEL_TARGET = 2 } cnn_label_kind;

/* More statuses of the training calls (after model.h's). */
#define CNN_ERR_LABEL ((cnn_status)100)    /* a class index outside [0, classes) */
#define CNN_ERR_NOT_FINITE ((cnn_status)101) /* the loss is NaN or infinite: nothing was updated */
#define CNN_ERR_IO ((cnn_status)102)       /* a weights file could not be read or written */

typedef struct cnn_train_options {
    uint32_t api_version; /* CNN_TRAIN_API_VERSION, set by cnn_train_options_init */
    int32_t num_threads;  /* 0 takes one per online core */
    uint64_t seed;        /* dropout masks */
} cnn_train_options;

static inline void cnn_train_options_init(cnn_train_options *opt)
{
    if (!opt) return;
    opt->api_version = CNN_TRAIN_API_VERSION;
    opt->num_threads = 0;
    opt->seed = 0;
}

typedef struct cnn_trainer cnn_trainer;

cnn_status cnn_trainer_create(const cnn_train_options *opt, cnn_trainer **out);
void cnn_trainer_destroy(cnn_trainer *t); /* NULL is fine */

/* The batch the model was compiled for, the input (x: [batch, ...]), the labels
 * ([batch] int64 class indices, dtype CNN_I64, or f32 targets shaped like the output)
 * and the network's output (the logits). */
int64_t cnn_trainer_batch(const cnn_trainer *t); /* -1 for NULL */
cnn_status cnn_trainer_input_info(const cnn_trainer *t, cnn_tensor_info *info);
cnn_status cnn_trainer_label_info(const cnn_trainer *t, cnn_label_kind *kind,
                                  cnn_tensor_info *info);
cnn_status cnn_trainer_output_info(const cnn_trainer *t, cnn_tensor_info *info);

/* One training step on a batch: x and labels as the info calls describe them.
 * `loss` (may be NULL) receives the batch's mean loss before the update. */
cnn_status cnn_trainer_step(cnn_trainer *t, const cnn_tensor *x, const cnn_tensor *labels,
                            float *loss);
/* The first half of a step: forward and backward, gradients kept in the instance
 * (batch-norm running statistics are updated here, as PyTorch does in forward). */
cnn_status cnn_trainer_compute_gradients(cnn_trainer *t, const cnn_tensor *x,
                                         const cnn_tensor *labels, float *loss);
/* Every trainable parameter's gradient, one after another in cnn_trainer_param_info's
 * order, as one buffer of `count` floats owned by the instance: valid and writable
 * between compute_gradients and apply_gradients. */
cnn_status cnn_trainer_gradients(cnn_trainer *t, float **data, size_t *count);
/* The second half: the optimizer's update from the gradients in that buffer. */
cnn_status cnn_trainer_apply_gradients(cnn_trainer *t);
/* The network's output (the logits) that the last step or compute_gradients computed,
 * in training mode (or the last evaluate given no outputs buffer): `count` floats shaped
 * as cnn_trainer_output_info says, owned by the instance and valid until its next call.
 * A running training accuracy at no extra cost. */
cnn_status cnn_trainer_outputs(const cnn_trainer *t, const float **data, size_t *count);

/* The network in evaluation mode (batch-norm running statistics, no dropout) on a
 * batch: the mean loss (labels may be NULL when loss is) and (outputs may be NULL)
 * the network's output. Changes nothing. */
cnn_status cnn_trainer_evaluate(cnn_trainer *t, const cnn_tensor *x, const cnn_tensor *labels,
                                float *loss, cnn_tensor *outputs);

/* The model's tensors: trainable parameters first (the gradients' order), then the
 * buffers (batch-norm running statistics). Names are those of the language and of
 * .safetensors files ("layer1.0.conv1.weight"). */
int32_t cnn_trainer_num_params(const cnn_trainer *t);     /* all, -1 for NULL */
int32_t cnn_trainer_num_trainable(const cnn_trainer *t);  /* the first ones, -1 for NULL */
cnn_status cnn_trainer_param_info(const cnn_trainer *t, int32_t i, cnn_tensor_info *info);
cnn_status cnn_trainer_get_param(const cnn_trainer *t, int32_t i, void *data, size_t size);
cnn_status cnn_trainer_set_param(cnn_trainer *t, int32_t i, const void *data, size_t size);
/* Every tensor (parameters and buffers, not the optimizer's state) as an F32
 * .safetensors file, written through a temporary file and renamed, so a failed save
 * leaves no partial file; load reads one back (every tensor must be there with its
 * shape; others are ignored) and changes nothing unless the whole file is right. */
cnn_status cnn_trainer_save(const cnn_trainer *t, const char *path);
cnn_status cnn_trainer_load(cnn_trainer *t, const char *path);

/* Per-kernel timing of the three models, as cnn_model_set_profiling: the kernels of
 * the grad model (forward, loss, backward), then the apply model's (the optimizer),
 * then the eval model's, each with its calls and time since profiling was switched on. */
cnn_status cnn_trainer_set_profiling(cnn_trainer *t, int enabled);
int32_t cnn_trainer_num_kernels(const cnn_trainer *t); /* -1 for NULL */
cnn_status cnn_trainer_kernel_info(const cnn_trainer *t, int32_t i, cnn_kernel_info *info);

/* The learning rate (initially cnnc's --lr; a finite number >= 0) and the steps
 * taken so far. */
cnn_status cnn_trainer_set_lr(cnn_trainer *t, float lr);
float cnn_trainer_lr(const cnn_trainer *t); /* NaN for NULL */
int64_t cnn_trainer_steps(const cnn_trainer *t); /* -1 for NULL */

#ifdef __cplusplus
}
#endif

#endif
