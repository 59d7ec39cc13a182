/* entry.c: cnn_model_create, the one function that names the generated
 * `cnnc_model`. Kept apart so programs that link the runtime and build their
 * model descriptions otherwise (in-process compilation) need no such symbol. */
#include "cnnc/model.h"
#include "rt.h"

/* Hidden, so the runtime of each model.so binds to its own model even when
 * several are loaded with RTLD_GLOBAL. */
extern const RtModel cnnc_model __attribute__((visibility("hidden")));

#define CNN_EXPORT __attribute__((visibility("default")))

CNN_EXPORT cnn_status cnn_model_create(const cnn_options *opt, cnn_model **out)
{
    return rt_model_create(&cnnc_model, opt, out);
}
