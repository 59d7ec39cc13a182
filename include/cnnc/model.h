/* cnnc/model.h: the C API of a model compiled by cnnc (model.so).
 *
 * A model.so holds one network with its weights. Create an instance, ask it
 * for its inputs and outputs, run it on your buffers, destroy it:
 *
 *     cnn_options opt;
 *     cnn_options_init(&opt);
 *     opt.num_threads = 2;
 *     cnn_model *m;
 *     if (cnn_model_create(&opt, &m) != CNN_OK) ...
 *     cnn_tensor in = {image, sizeof image}, out = {logits, sizeof logits};
 *     cnn_status s = cnn_model_run(m, &in, 1, &out, 1);
 *     if (s != CNN_OK) fprintf(stderr, "%s\n", cnn_status_string(s));
 *     cnn_model_destroy(m);
 *
 * The functions never print and never abort: every failure is a status.
 * Instances are independent: two instances may run at the same time from
 * different threads; one instance runs one call at a time: a call made while
 * another thread runs it returns CNN_ERR_BUSY and changes nothing. */
#ifndef CNNC_MODEL_H
#define CNNC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CNN_API_VERSION 2
#define CNN_MAX_RANK 6

typedef enum cnn_status {
    CNN_OK = 0,
    CNN_ERR_INVALID_ARGUMENT, /* a NULL pointer, a bad index, a bad option */
    CNN_ERR_SIZE_MISMATCH,    /* a buffer's size is not the tensor's size */
    CNN_ERR_OUT_OF_MEMORY,
    CNN_ERR_THREADS,          /* the thread pool could not be started */
    CNN_ERR_DEVICE,           /* the device is missing, failed, or is not the model's */
    CNN_ERR_VERSION,          /* the options come from an incompatible header */
    CNN_ERR_BUSY,             /* the instance is running on another thread */
    CNN_ERR_CORRUPT,          /* the model's weights are not those it was compiled with */
} cnn_status;

typedef enum cnn_dtype { CNN_F32 = 1, CNN_I64 = 2 /* a training model's class labels */ } cnn_dtype;

/* A model runs on the device it was compiled for (cnnc --target=cpu|cuda);
 * asking for the other one is CNN_ERR_DEVICE. */
typedef enum cnn_device {
    CNN_DEVICE_DEFAULT = 0, /* the model's own */
    CNN_DEVICE_CPU = 1,
    CNN_DEVICE_CUDA = 2,
} cnn_device;

/* cnn_options.flags */
#define CNN_DEVICE_POINTERS 1u /* CUDA models: the data of the tensors given to
                                  cnn_model_run are device addresses (CUdeviceptr
                                  values) of the instance's device, not host memory */

typedef struct cnn_options {
    uint32_t api_version; /* CNN_API_VERSION, set by cnn_options_init */
    int32_t num_threads;  /* CPU models: 0 takes one per online core */
    cnn_device device;
    int32_t device_index; /* CUDA models: the device ordinal, 0 first */
    uint32_t flags;       /* CNN_DEVICE_POINTERS */
} cnn_options;

/* A caller's buffer: `size` is in bytes and must equal the tensor's size. */
typedef struct cnn_tensor {
    void *data;
    size_t size;
} cnn_tensor;

typedef struct cnn_tensor_info {
    const char *name; /* owned by the model, valid until it is destroyed */
    cnn_dtype dtype;
    int32_t rank;
    int64_t dims[CNN_MAX_RANK];
    size_t size; /* bytes */
} cnn_tensor_info;

typedef struct cnn_model cnn_model;

/* Fills `opt` with the defaults and this header's API version. It is inline,
 * so the version is the one the caller was compiled with: a model.so built
 * against another version of this header then answers CNN_ERR_VERSION
 * instead of misreading the struct. */
static inline void cnn_options_init(cnn_options *opt)
{
    if (!opt) return;
    opt->api_version = CNN_API_VERSION;
    opt->num_threads = 0;
    opt->device = CNN_DEVICE_DEFAULT;
    opt->device_index = 0;
    opt->flags = 0;
}

cnn_status cnn_model_create(const cnn_options *opt, cnn_model **out);
void cnn_model_destroy(cnn_model *m); /* NULL is fine */

int32_t cnn_model_num_inputs(const cnn_model *m);  /* -1 for NULL */
int32_t cnn_model_num_outputs(const cnn_model *m); /* -1 for NULL */
cnn_status cnn_model_input_info(const cnn_model *m, int32_t i, cnn_tensor_info *info);
cnn_status cnn_model_output_info(const cnn_model *m, int32_t i, cnn_tensor_info *info);
int32_t cnn_model_num_threads(const cnn_model *m); /* -1 for NULL; 1 for CUDA models */
cnn_device cnn_model_device(const cnn_model *m); /* CNN_DEVICE_DEFAULT for NULL */

/* Runs the network: inputs[i] and outputs[i] in the order of the info calls,
 * each a plain row-major float32 buffer of exactly the tensor's size. */
cnn_status cnn_model_run(cnn_model *m, const cnn_tensor *inputs, int32_t ninputs,
                         cnn_tensor *outputs, int32_t noutputs);

const char *cnn_status_string(cnn_status s);

/* Recomputes the checksum (XXH64) of the weights embedded in the
 * model.so and compares it with the one cnnc stored next to them when it
 * packed them: CNN_OK, or CNN_ERR_CORRUPT with both values in
 * cnn_last_error. It reads every byte of the weights, so it is for checking a
 * copied or downloaded model.so, not for every run. CPU models only: a CUDA
 * model answers CNN_ERR_INVALID_ARGUMENT. */
cnn_status cnn_model_verify(const cnn_model *m);

/* Why the last call of this thread that failed did so, in more detail than its
 * status ("cuInit: CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected");
 * "" when it said nothing more. Valid until the thread's next call. */
const char *cnn_last_error(void);

/* Profiling: the time each kernel of the network takes. A kernel is one step
 * of a run (a layer, with the operations fused into it), listed in execution
 * order. On a CUDA device the time is the GPU's, measured with events around
 * each kernel (the network then runs kernel by kernel instead of as one
 * captured graph, so the sum exceeds a normal run's time). */
typedef struct cnn_kernel_info {
    const char *name; /* the layer it implements, owned by the model */
    const char *op;   /* what it computes, fused parts joined by '+': "conv2d+bias+relu" */
    int64_t flops;    /* floating-point operations per run (a multiply-add counts 2) */
    int64_t calls;    /* runs timed since profiling was switched on */
    double seconds;   /* total wall time of those calls */
} cnn_kernel_info;

/* Switches per-kernel timing on (nonzero: the counters restart from zero) or
 * off (the counters keep their values). Off by default; when off a run costs
 * nothing extra. While another thread runs the instance: CNN_ERR_BUSY. */
cnn_status cnn_model_set_profiling(cnn_model *m, int enabled);
int32_t cnn_model_num_kernels(const cnn_model *m); /* -1 for NULL */
cnn_status cnn_model_kernel_info(const cnn_model *m, int32_t i, cnn_kernel_info *info);

#ifdef __cplusplus
}
#endif

#endif
