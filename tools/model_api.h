/* model_api.h: the C API of a model.so (include/cnnc/model.h) reached through
 * dlopen: a table of its functions and the code that resolves them. Shared by
 * cnnrun and the tests that load the model.so files they compile. */
#ifndef CNNC_MODEL_API_H
#define CNNC_MODEL_API_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cnnc/model.h"

typedef struct ModelApi {
    void *lib;
    void (*options_init)(cnn_options *);
    cnn_status (*create)(const cnn_options *, cnn_model **);
    void (*destroy)(cnn_model *);
    int32_t (*num_inputs)(const cnn_model *);
    int32_t (*num_outputs)(const cnn_model *);
    cnn_status (*input_info)(const cnn_model *, int32_t, cnn_tensor_info *);
    cnn_status (*output_info)(const cnn_model *, int32_t, cnn_tensor_info *);
    int32_t (*num_threads)(const cnn_model *);
    cnn_status (*run)(cnn_model *, const cnn_tensor *, int32_t, cnn_tensor *, int32_t);
    const char *(*status_string)(cnn_status);
    /* Profiling: NULL in a model.so compiled before it existed. */
    cnn_status (*set_profiling)(cnn_model *, int);
    int32_t (*num_kernels)(const cnn_model *);
    cnn_status (*kernel_info)(const cnn_model *, int32_t, cnn_kernel_info *);
    /* NULL in a model.so of API version 1. */
    cnn_device (*device)(const cnn_model *);
    const char *(*last_error)(void);
} ModelApi;

static inline bool model_api_sym(void *lib, const char *name, void *fn, size_t size)
{
    void *p = dlsym(lib, name);
    memcpy(fn, &p, size);
    return p != NULL;
}

#define MODEL_API_SYM(a, field, name) model_api_sym((a)->lib, name, &(a)->field, sizeof (a)->field)

/* Opens the model.so at `path` (as dlopen reads it) and resolves its API. On
 * failure returns false with the reason in `err`, nothing left open. */
static inline bool model_api_open(ModelApi *a, const char *path, char *err, size_t n)
{
    memset(a, 0, sizeof *a);
    a->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!a->lib) return snprintf(err, n, "cannot load the model: %s", dlerror()), false;
    a->options_init = cnn_options_init; /* inline in the header, not exported */
    bool ok = MODEL_API_SYM(a, create, "cnn_model_create") &&
              MODEL_API_SYM(a, destroy, "cnn_model_destroy") &&
              MODEL_API_SYM(a, num_inputs, "cnn_model_num_inputs") &&
              MODEL_API_SYM(a, num_outputs, "cnn_model_num_outputs") &&
              MODEL_API_SYM(a, input_info, "cnn_model_input_info") &&
              MODEL_API_SYM(a, output_info, "cnn_model_output_info") &&
              MODEL_API_SYM(a, num_threads, "cnn_model_num_threads") &&
              MODEL_API_SYM(a, run, "cnn_model_run") &&
              MODEL_API_SYM(a, status_string, "cnn_status_string");
    if (!ok) {
        snprintf(err, n, "'%s' is not a cnnc model: %s", path, dlerror());
        dlclose(a->lib);
        a->lib = NULL;
        return false;
    }
    if (!(MODEL_API_SYM(a, set_profiling, "cnn_model_set_profiling") &&
          MODEL_API_SYM(a, num_kernels, "cnn_model_num_kernels") &&
          MODEL_API_SYM(a, kernel_info, "cnn_model_kernel_info")))
        a->set_profiling = NULL, a->num_kernels = NULL, a->kernel_info = NULL;
    if (!(MODEL_API_SYM(a, device, "cnn_model_device") &&
          MODEL_API_SYM(a, last_error, "cnn_last_error")))
        a->device = NULL, a->last_error = NULL;
    return true;
}

#endif
