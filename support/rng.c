/* rng.c: deterministic random numbers (splitmix64), one independent stream
 * per (seed, name) so a weight's values depend only on its name and the
 * seed, never on the order in which weights are generated. */
#include "support.h"

#include <math.h>

uint64_t ir_rng_next(Rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

Rng ir_rng(uint64_t seed, const char *stream)
{
    Rng r = {seed ^ ir_str_hash(stream ? stream : "")};
    /* One scrambling step so seeds and names that differ in few bits give
     * unrelated starting states. */
    r.s = ir_rng_next(&r);
    return r;
}

double ir_rng_uniform(Rng *r)
{
    return (double)(ir_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Box-Muller, one value per call: the second value is dropped so the state
 * stays a single integer. */
double ir_rng_normal(Rng *r)
{
    double u1 = 1.0 - ir_rng_uniform(r); /* (0, 1]: log stays finite */
    double u2 = ir_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
