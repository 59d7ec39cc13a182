/* weights.c: deterministic random weights for benchmarks and tests. Each
 * parameter draws from its own stream, ir_rng(seed, name), so its values depend
 * on the seed, its name, its shape and the kind of layer using it: never on
 * node order or on which other parameters exist. */
#include "frontend.h"
#include "support.h"

#include <math.h>
#include <stdlib.h>

/* The scales keep activations in a sane range through deep networks, with a
 * uniform[-1, 1] input:
 *   conv/dense weight  U(±sqrt(6 / fan_in))   Kaiming-uniform: a ReLU layer keeps
 *                                             the second moment of its input
 *   conv/dense bias    U(±1 / sqrt(fan_in))   PyTorch's default, small vs. the sum
 *   batchnorm weight   U(0.5, 1.0)            a gain a little under 1, so residual
 *   batchnorm bias     U(±0.1)                sums grow slowly with depth
 *   layernorm weight, bias: as batchnorm's
 *   running_mean       U(±0.1)
 *   running_var        U(0.5, 1.5)            1/sqrt(var) stays near 1
 *   anything else      U(±0.1)
 * With these (reference interpreter, seeds 1 to 4), the outputs' largest
 * magnitude is 17 to 42 for ResNet-50, 7 to 12 for VGG-16, 1.1 to 2.6 for
 * MobileNetV2 and 7 to 15 for SqueezeNet 1.1; no activation anywhere exceeds 45. */
typedef enum { W_OTHER, W_KAIMING, W_BIAS, W_BN_GAMMA, W_BN_BETA, W_BN_MEAN, W_BN_VAR } Role;

typedef struct Usage {
    Role role;
    int64_t fan_in;
} Usage;

/* Inputs per output of a conv or dense: the weight's dims after the first. */
static int64_t fan_in(const Graph *g, const Node *user)
{
    const TensorType *w = &g->nodes[user->inputs[1]].type;
    int64_t n = 1;
    for (int32_t i = 1; i < w->rank; i++)
        n *= w->dims[i];
    return n > 0 ? n : 1;
}

static Usage usage(const Graph *g, const Node *user, int32_t slot)
{
    static const Role bn_roles[5] = {W_OTHER, W_BN_GAMMA, W_BN_BETA, W_BN_MEAN, W_BN_VAR};
    switch (user->op) {
    case OP_CONV2D:
    case OP_DENSE: {
        /* A fused residual comes last and is no bias, even in slot 2. */
        const Epilogue *epi = user->op == OP_CONV2D ? &user->attrs.conv.epi
                                                    : &user->attrs.dense.epi;
        bool residual = epi->residual && slot == user->ninputs - 1;
        if (slot == 1 || (slot == 2 && !residual))
            return (Usage){slot == 1 ? W_KAIMING : W_BIAS, fan_in(g, user)};
        return (Usage){W_OTHER, 1};
    }
    case OP_BATCHNORM:
        return (Usage){bn_roles[slot], 1};
    case OP_LAYERNORM:
        return (Usage){slot == 1 ? W_BN_GAMMA : slot == 2 ? W_BN_BETA : W_OTHER, 1};
    default:
        return (Usage){W_OTHER, 1};
    }
}

/* The range [lo, hi) a parameter of this use draws from. */
static void range(Usage u, double *lo, double *hi)
{
    switch (u.role) {
    case W_KAIMING: {
        double bound = sqrt(6.0 / (double)u.fan_in);
        *lo = -bound, *hi = bound;
        return;
    }
    case W_BIAS:
        *lo = -1.0 / sqrt((double)u.fan_in), *hi = 1.0 / sqrt((double)u.fan_in);
        return;
    case W_BN_GAMMA:
        *lo = 0.5, *hi = 1.0;
        return;
    case W_BN_VAR:
        *lo = 0.5, *hi = 1.5;
        return;
    case W_BN_BETA:
    case W_BN_MEAN:
    case W_OTHER:
        *lo = -0.1, *hi = 0.1;
        return;
    }
    ICE("unknown weight role %d", (int)u.role);
}

/* One parameter's values to draw: its stream and range. */
typedef struct Draw {
    float *data;
    int64_t count;
    Rng r;
    double lo, hi;
} Draw;

/* Draw i of `draws`. Every parameter has a stream of its own, so the values do not
 * depend on which thread draws them. */
static void draw_values(void *draws, int32_t i)
{
    Draw *d = &((Draw *)draws)[i];
    for (int64_t k = 0; k < d->count; k++)
        d->data[k] = (float)(d->lo + (d->hi - d->lo) * ir_rng_uniform(&d->r));
}

/* Below this many values in all, one thread draws them; above, at most this many. */
#define DRAW_PARALLEL_VALUES (1 << 20)
#define DRAW_MAX_THREADS 4

static void fill(Graph *g, uint64_t seed, bool only_unbound)
{
    /* A parameter's role comes from its first user (fan_in 0 marks "none yet");
     * unused ones draw as W_OTHER. */
    Usage *use = ir_xcalloc((size_t)g->nnodes + 1, sizeof *use);
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        for (int32_t k = 0; k < n->ninputs; k++) {
            int32_t p = n->inputs[k];
            if (g->nodes[p].op == OP_PARAM && use[p].fan_in == 0)
                use[p] = usage(g, n, k);
        }
    }
    Draw *draws = ir_xcalloc((size_t)g->nnodes + 1, sizeof *draws);
    int32_t ndraws = 0;
    int64_t values = 0;
    for (int32_t i = 0; i < g->nnodes; i++) {
        Node *n = &g->nodes[i];
        if (n->op != OP_PARAM || (only_unbound && n->data))
            continue;
        int64_t count = ir_numel(&n->type);
        if (!n->data)
            n->data = ir_alloc(g->arena, (size_t)count * sizeof(float) + 1);
        Draw *d = &draws[ndraws++];
        *d = (Draw){n->data, count, ir_rng(seed, n->name), 0, 0};
        range(use[i], &d->lo, &d->hi);
        values += count;
    }
    free(use);
    int32_t threads = ir_compile_threads();
    ir_parallel_for(ndraws, values < DRAW_PARALLEL_VALUES ? 1
                            : threads < DRAW_MAX_THREADS ? threads : DRAW_MAX_THREADS,
                    draw_values, draws);
    free(draws);
}

void fe_random_weights(Graph *g, uint64_t seed)
{
    fill(g, seed, false);
}

void fe_random_unbound_weights(Graph *g, uint64_t seed)
{
    fill(g, seed, true);
}
