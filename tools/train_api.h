/* train_api.h: the C API of a training model.so (include/cnnc/train.h, compiled by
 * cnnc --train) reached through dlopen: a table of its functions and the code that
 * resolves them, as model_api.h does for model.h. Shared by cnntrain and the tests. */
#ifndef CNNC_TRAIN_API_H
#define CNNC_TRAIN_API_H

#include "cnnc/train.h"
#include "model_api.h"

typedef struct TrainApi {
    void *lib;
    void (*options_init)(cnn_train_options *);
    cnn_status (*create)(const cnn_train_options *, cnn_trainer **);
    void (*destroy)(cnn_trainer *);
    int64_t (*batch)(const cnn_trainer *);
    cnn_status (*input_info)(const cnn_trainer *, cnn_tensor_info *);
    cnn_status (*label_info)(const cnn_trainer *, cnn_label_kind *, cnn_tensor_info *);
    cnn_status (*output_info)(const cnn_trainer *, cnn_tensor_info *);
    cnn_status (*step)(cnn_trainer *, const cnn_tensor *, const cnn_tensor *, float *);
    cnn_status (*compute_gradients)(cnn_trainer *, const cnn_tensor *, const cnn_tensor *,
                                    float *);
    cnn_status (*gradients)(cnn_trainer *, float **, size_t *);
    cnn_status (*apply_gradients)(cnn_trainer *);
    cnn_status (*outputs)(const cnn_trainer *, const float **, size_t *);
    cnn_status (*evaluate)(cnn_trainer *, const cnn_tensor *, const cnn_tensor *, float *,
                           cnn_tensor *);
    int32_t (*num_params)(const cnn_trainer *);
    int32_t (*num_trainable)(const cnn_trainer *);
    cnn_status (*param_info)(const cnn_trainer *, int32_t, cnn_tensor_info *);
    cnn_status (*get_param)(const cnn_trainer *, int32_t, void *, size_t);
    cnn_status (*set_param)(cnn_trainer *, int32_t, const void *, size_t);
    cnn_status (*save)(const cnn_trainer *, const char *);
    cnn_status (*load)(cnn_trainer *, const char *);
    cnn_status (*set_lr)(cnn_trainer *, float);
    float (*lr)(const cnn_trainer *);
    int64_t (*steps)(const cnn_trainer *);
    const char *(*status_string)(cnn_status);
    const char *(*last_error)(void);
    /* Profiling: NULL in a model.so compiled before it existed. */
    cnn_status (*set_profiling)(cnn_trainer *, int);
    int32_t (*num_kernels)(const cnn_trainer *);
    cnn_status (*kernel_info)(const cnn_trainer *, int32_t, cnn_kernel_info *);
} TrainApi;

/* Opens the training model.so at `path` and resolves its API. On failure returns
 * false with the reason in `err`, nothing left open. */
static inline bool train_api_open(TrainApi *a, const char *path, char *err, size_t n)
{
    memset(a, 0, sizeof *a);
    if (!model_api_check_file(path, err, n)) return false;
    a->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!a->lib) return snprintf(err, n, "cannot load the model: %s", dlerror()), false;
    a->options_init = cnn_train_options_init; /* inline in the header, not exported */
    bool ok = MODEL_API_SYM(a, create, "cnn_trainer_create") &&
              MODEL_API_SYM(a, destroy, "cnn_trainer_destroy") &&
              MODEL_API_SYM(a, batch, "cnn_trainer_batch") &&
              MODEL_API_SYM(a, input_info, "cnn_trainer_input_info") &&
              MODEL_API_SYM(a, label_info, "cnn_trainer_label_info") &&
              MODEL_API_SYM(a, output_info, "cnn_trainer_output_info") &&
              MODEL_API_SYM(a, step, "cnn_trainer_step") &&
              MODEL_API_SYM(a, compute_gradients, "cnn_trainer_compute_gradients") &&
              MODEL_API_SYM(a, gradients, "cnn_trainer_gradients") &&
              MODEL_API_SYM(a, apply_gradients, "cnn_trainer_apply_gradients") &&
              MODEL_API_SYM(a, outputs, "cnn_trainer_outputs") &&
              MODEL_API_SYM(a, evaluate, "cnn_trainer_evaluate") &&
              MODEL_API_SYM(a, num_params, "cnn_trainer_num_params") &&
              MODEL_API_SYM(a, num_trainable, "cnn_trainer_num_trainable") &&
              MODEL_API_SYM(a, param_info, "cnn_trainer_param_info") &&
              MODEL_API_SYM(a, get_param, "cnn_trainer_get_param") &&
              MODEL_API_SYM(a, set_param, "cnn_trainer_set_param") &&
              MODEL_API_SYM(a, save, "cnn_trainer_save") &&
              MODEL_API_SYM(a, load, "cnn_trainer_load") &&
              MODEL_API_SYM(a, set_lr, "cnn_trainer_set_lr") &&
              MODEL_API_SYM(a, lr, "cnn_trainer_lr") &&
              MODEL_API_SYM(a, steps, "cnn_trainer_steps") &&
              MODEL_API_SYM(a, status_string, "cnn_status_string") &&
              MODEL_API_SYM(a, last_error, "cnn_last_error");
    if (!ok) {
        snprintf(err, n, "'%s' is not a training model of cnnc --train: %s", path, dlerror());
        dlclose(a->lib);
        a->lib = NULL;
        return false;
    }
    if (!(MODEL_API_SYM(a, set_profiling, "cnn_trainer_set_profiling") &&
          MODEL_API_SYM(a, num_kernels, "cnn_trainer_num_kernels") &&
          MODEL_API_SYM(a, kernel_info, "cnn_trainer_kernel_info")))
        a->set_profiling = NULL, a->num_kernels = NULL, a->kernel_info = NULL;
    return true;
}

static inline void train_api_close(TrainApi *a)
{
    if (a->lib) dlclose(a->lib);
    a->lib = NULL;
}

#endif
