/* interp.h: what the reference interpreter's files share, internal to ir/: interp.c
 * runs a graph and the inference ops, interp_train.c the ops of a training step. */
#ifndef CNNC_INTERP_H
#define CNNC_INTERP_H

#include "ir.h"

typedef struct Interp {
    const Graph *g;
    const float *const *inputs;
    float **values;
    int32_t ninputs_seen; /* INPUT nodes met so far: the ordinal of the next one */
    char *err;
    size_t errlen;
} Interp;

/* Writes "node 'NAME' (op): message" to the caller's error buffer; returns false. */
bool interp_fail(Interp *in, const Node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline const TensorType *arg_type(const Interp *in, const Node *n, int32_t k)
{
    return &in->g->nodes[n->inputs[k]].type;
}

static inline const float *arg(const Interp *in, const Node *n, int32_t k)
{
    return in->values[n->inputs[k]];
}

/* The product of dims [from, to) of `t`. */
static inline int64_t prod(const TensorType *t, int32_t from, int32_t to)
{
    int64_t p = 1;
    for (int32_t i = from; i < to; i++)
        p *= t->dims[i];
    return p;
}

/* The output columns ow of a conv whose input column ow·stride + off lies in
 * [0, W): [lo, hi), at most OW (stride >= 1). */
static inline void interp_valid_cols(int64_t off, int64_t stride, int64_t W, int64_t OW,
                                     int64_t *lo, int64_t *hi)
{
    *lo = off < 0 ? (-off + stride - 1) / stride : 0;
    *hi = W - 1 - off < 0 ? 0 : (W - 1 - off) / stride + 1;
    if (*hi > OW)
        *hi = OW;
}

/* Element strides of `t` seen through `y`'s dims (numpy broadcasting); false if
 * incompatible. */
bool interp_broadcast_strides(const TensorType *t, const TensorType *y, int64_t *strides);
/* Bin i of `out` bins over `in` elements, as adaptive_avgpool takes them. */
void interp_adaptive_bin(int64_t i, int64_t in, int64_t out, int64_t *start, int64_t *end);
/* The input rows [hs, he) and columns [ws, we) that avgpool's output (oh, ow) averages,
 * and the divisor, as PyTorch's avg_pool2d counts it. */
typedef struct AvgWindow { int64_t hs, he, ws, we, divisor; } AvgWindow;
AvgWindow interp_avg_window(const PoolAttrs *a, int64_t H, int64_t W, int64_t oh, int64_t ow);

/* interp_train.c: the runners of the OF_TRAIN ops. */
#define INTERP_TRAIN_RUNNERS(X)                                                                \
    X(CONV2D_GRAD_INPUT, conv2d_grad_input) X(CONV2D_GRAD_WEIGHT, conv2d_grad_weight)          \
    X(DENSE_GRAD_INPUT, dense_grad_input) X(DENSE_GRAD_WEIGHT, dense_grad_weight)              \
    X(BIAS_GRAD, bias_grad) X(ACT_GRAD, act_grad) X(MAXPOOL_GRAD, maxpool_grad)                \
    X(AVGPOOL_GRAD, avgpool_grad) X(GLOBAL_AVGPOOL_GRAD, global_avgpool_grad)                  \
    X(ADAPTIVE_AVGPOOL_GRAD, adaptive_avgpool_grad) X(RESHAPE_AS, reshape_as)                  \
    X(REDUCE_AS, reduce_as) X(SLICE_GRAD, slice_grad) X(BN_STATS, bn_stats)                    \
    X(BN_TRAIN, bn_train) X(BN_GRAD_INPUT, bn_grad_input) X(BN_GRAD_WEIGHT, bn_grad_weight)    \
    X(BN_RUNNING, bn_running) X(DROPOUT_TRAIN, dropout) X(DROPOUT_GRAD, dropout)               \
    X(SOFTMAX_XENT, softmax_xent) X(SOFTMAX_XENT_GRAD, softmax_xent_grad) X(MSE, mse)          \
    X(MSE_GRAD, mse_grad) X(SGD_MOMENTUM, sgd_momentum) X(SGD_STEP, sgd_step)                  \
    X(ADAM_M, adam_moment) X(ADAM_V, adam_moment) X(ADAM_STEP, adam_step)

#define X(e, f) bool interp_run_##f(Interp *in, const Node *n, float *out);
INTERP_TRAIN_RUNNERS(X)
#undef X

#endif
