/* train_init.c: the initial weights of a network to train, as PyTorch's layers
 * initialize themselves (docs/training.md, "Initialization"): conv2d and dense
 * weights and biases uniform in ±1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)),
 * batch-norm and layer-norm weights 1 and biases 0, running mean 0 and variance 1.
 * Each parameter draws from its own stream (the seed and its name), so the values do
 * not depend on the order of the graph. */
#include <math.h>
#include <string.h>

#include "train.h"

typedef enum { INIT_UNIFORM, INIT_ZEROS, INIT_ONES } InitKind;

/* What the layer using input k of node n does with it, and the fan-in of a uniform one. */
static InitKind role_of(const Graph *g, const Node *n, int32_t k, int64_t *fan_in)
{
    const TensorType *w = n->ninputs > 1 ? &g->nodes[n->inputs[1]].type : NULL;
    switch (n->op) {
    case OP_CONV2D:
        *fan_in = w->rank == 4 ? w->dims[1] * w->dims[2] * w->dims[3] : w->dims[1];
        return INIT_UNIFORM;
    case OP_DENSE:
        *fan_in = w->dims[1];
        return INIT_UNIFORM;
    case OP_BATCHNORM: return k == 1 || k == 4 ? INIT_ONES : INIT_ZEROS;
    case OP_LAYERNORM: return k == 1 ? INIT_ONES : INIT_ZEROS;
    default: break;
    }
    /* a tensor of another op: uniform over its leading dim's fan-in, or zeros for a vector */
    const TensorType *t = &g->nodes[n->inputs[k]].type;
    *fan_in = t->rank >= 2 ? ir_numel(t) / t->dims[0] : 0;
    return *fan_in > 0 ? INIT_UNIFORM : INIT_ZEROS;
}

/* splitmix64: one 64-bit step of the stream. */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill(Graph *g, Node *p, InitKind kind, int64_t fan_in, uint64_t seed)
{
    int64_t n = ir_numel(&p->type);
    float *v = ir_alloc(g->arena, (size_t)(n ? n : 1) * sizeof *v);
    uint64_t s = seed ^ ir_str_hash(p->name);
    double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (kind == INIT_UNIFORM)
            v[i] = (float)(bound * ((double)(next(&s) >> 11) * 0x1p-53 * 2.0 - 1.0));
        else
            v[i] = kind == INIT_ONES ? 1.0f : 0.0f;
    }
    p->data = v;
}

void train_init_params(Graph *g, uint64_t seed)
{
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        for (int32_t k = 0; k < n->ninputs; k++) {
            Node *p = &g->nodes[n->inputs[k]];
            if (p->op != OP_PARAM || p->data)
                continue;
            int64_t fan_in = 0;
            InitKind kind = role_of(g, n, k, &fan_in);
            fill(g, p, kind, fan_in, seed);
        }
    }
}
