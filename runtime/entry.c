/* entry.c: cnn_model_create and cnn_trainer_create, the functions that name what
 * cnnc generated: `cnnc_model` (CPU code), `cnnc_gpu_image` (a CUDA model) or
 * `cnnc_train` (a training model). The references are weak, since a model.so
 * defines one of them, and programs that link the runtime and build their model
 * descriptions otherwise (in-process compilation) define none. */
#include "cnnc/model.h"
#include "cnnc/train.h"
#include "rt.h"
#include "rt_gpu.h"

/* Hidden, so the runtime of each model.so binds to its own model even when
 * several are loaded with RTLD_GLOBAL. */
extern const RtModel cnnc_model __attribute__((weak, visibility("hidden")));
extern const uint8_t cnnc_gpu_image[] __attribute__((weak, visibility("hidden")));
extern const RtTrain cnnc_train __attribute__((weak, visibility("hidden")));

#define CNN_EXPORT __attribute__((visibility("default")))

CNN_EXPORT cnn_status cnn_model_create(const cnn_options *opt, cnn_model **out)
{
    if (cnnc_gpu_image)
        return rt_gpu_model_create(cnnc_gpu_image, opt, out);
    if (!&cnnc_model && &cnnc_train) {
        if (out) *out = NULL;
        rt_set_error("this is a training model (cnnc --train): create it with cnn_trainer_create");
        return CNN_ERR_INVALID_ARGUMENT;
    }
    return rt_model_create(&cnnc_model, opt, out);
}

CNN_EXPORT cnn_status cnn_trainer_create(const cnn_train_options *opt, cnn_trainer **out)
{
    return rt_trainer_create(&cnnc_train, opt, out);
}
