/* entry.c: cnn_model_create, the one function that names what cnnc generated:
 * `cnnc_model` (CPU code) or `cnnc_gpu_image` (a CUDA model). Both references
 * are weak, since a model.so defines one of them, and programs that link the
 * runtime and build their model descriptions otherwise (in-process
 * compilation) define neither. */
#include "cnnc/model.h"
#include "rt.h"
#include "rt_gpu.h"

/* Hidden, so the runtime of each model.so binds to its own model even when
 * several are loaded with RTLD_GLOBAL. */
extern const RtModel cnnc_model __attribute__((weak, visibility("hidden")));
extern const uint8_t cnnc_gpu_image[] __attribute__((weak, visibility("hidden")));

#define CNN_EXPORT __attribute__((visibility("default")))

CNN_EXPORT cnn_status cnn_model_create(const cnn_options *opt, cnn_model **out)
{
    if (cnnc_gpu_image)
        return rt_gpu_model_create(cnnc_gpu_image, opt, out);
    return rt_model_create(&cnnc_model, opt, out);
}
