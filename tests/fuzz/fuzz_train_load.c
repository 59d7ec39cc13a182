/* fuzz_train_load.c: cnn_trainer_load (runtime/train.c), the .safetensors reader of a
 * training instance, over a small model described in-process (its models never run).
 * A file is accepted whole or changes nothing: a refused one must leave every tensor
 * as it was, and an accepted one must give them back through save and load again. */
#include "fuzz.h"
#include "cnnc/train.h"
#include "rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void never(RtPool *pool, char *arena, const float *const *in, float *const *out)
{
    (void)pool, (void)arena, (void)in, (void)out;
    abort();
}

static const RtTensor grad_in[] = {{"x", 2, 0, {2, 3}}, {"labels", 1, 0, {2}},
                                   {"rng", 1, 0, {2}},  {"w", 2, 0, {2, 3}},
                                   {"b", 1, 0, {2}},    {"bn.running_mean", 1, 0, {1}}};
static const RtTensor grad_out[] = {{"loss", 1, 0, {1}}, {"y", 2, 0, {2, 2}},
                                    {"grad:w", 2, 0, {2, 3}}, {"grad:b", 1, 0, {2}}};
static const RtTensor apply_in[] = {{"hyper", 1, 0, {3}}, {"w", 2, 0, {2, 3}},
                                    {"grad:w", 2, 0, {2, 3}}, {"b", 1, 0, {2}},
                                    {"grad:b", 1, 0, {2}}};
static const RtTensor apply_out[] = {{"new:w", 2, 0, {2, 3}}, {"new:b", 1, 0, {2}}};
static const RtTensor eval_in[] = {{"x", 2, 0, {2, 3}}, {"w", 2, 0, {2, 3}}, {"b", 1, 0, {2}}};
static const RtTensor eval_out[] = {{"y", 2, 0, {2, 2}}};

#define MODEL(in, out)                                                                       \
    {.abi_version = RT_ABI_VERSION, .ninputs = sizeof in / sizeof in[0],                     \
     .noutputs = sizeof out / sizeof out[0], .inputs = in, .outputs = out, .run = never}
static const RtModel grad = MODEL(grad_in, grad_out), apply = MODEL(apply_in, apply_out),
                     eval = MODEL(eval_in, eval_out);
static const RtTrainParam params[] = {{"w", 2, RT_TRAIN_WEIGHT, {2, 3}, -1},
                                      {"b", 1, RT_TRAIN_WEIGHT, {2}, -1},
                                      {"bn.running_mean", 1, RT_TRAIN_BUFFER, {1}, -1}};
static const RtTrain desc = {.abi_version = RT_ABI_VERSION, .nparams = 3, .ntrainable = 2,
                             .grad = &grad, .apply = &apply, .eval = &eval, .params = params,
                             .loss = RT_LOSS_CROSS_ENTROPY, .classes = 2, .lr = 0.1f};

/* Every tensor's values, one after another (9 floats). */
static void values(cnn_trainer *t, float *v)
{
    static const size_t n[3] = {6, 2, 1};
    for (int32_t i = 0, at = 0; i < 3; at += (int32_t)n[i], i++)
        if (cnn_trainer_get_param(t, i, v + at, n[i] * sizeof(float)) != CNN_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cnn_trainer *t;
    static char saved[64];
    if (!t) {
        cnn_train_options opt;
        cnn_train_options_init(&opt);
        opt.num_threads = 1;
        if (rt_trainer_create(&desc, &opt, &t) != CNN_OK) abort();
        snprintf(saved, sizeof saved, "/tmp/fuzz-train-load-%d.safetensors", (int)getpid());
    }
    float before[9], after[9], again[9];
    values(t, before);
    cnn_status s = cnn_trainer_load(t, fuzz_file(data, size));
    values(t, after);
    if (s != CNN_OK) {
        if (s != CNN_ERR_IO || memcmp(before, after, sizeof before) != 0) abort();
        return 0;
    }
    if (cnn_trainer_save(t, saved) != CNN_OK || cnn_trainer_load(t, saved) != CNN_OK) abort();
    values(t, again);
    unlink(saved);
    if (memcmp(after, again, sizeof after) != 0) abort();
    return 0;
}
