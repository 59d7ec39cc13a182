/* names.c: the string map behind the frontend's name tables (blocks, names in
 * use) and the "did you mean" suggestions, chosen by edit distance with
 * transpositions counted as one edit ("batchnrom" -> "batchnorm"). */
#include "elab.h"

#include <string.h>

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int32_t find_slot(const char *const *keys, int32_t cap, const char *key)
{
    uint32_t mask = (uint32_t)cap - 1;
    for (uint32_t i = hash_str(key) & mask;; i = (i + 1) & mask)
        if (!keys[i] || strcmp(keys[i], key) == 0)
            return (int32_t)i;
}

void *fe_map_get(const StrMap *m, const char *key)
{
    if (m->n == 0)
        return NULL;
    int32_t i = find_slot(m->keys, m->cap, key);
    return m->keys[i] ? m->vals[i] : NULL;
}

static void rehash(StrMap *m, Arena *a)
{
    int32_t cap = m->cap ? m->cap * 2 : 64;
    const char **keys = ir_alloc(a, (size_t)cap * sizeof *keys);
    void **vals = ir_alloc(a, (size_t)cap * sizeof *vals);
    for (int32_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        int32_t k = find_slot(keys, cap, m->keys[i]);
        keys[k] = m->keys[i];
        vals[k] = m->vals[i];
    }
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
}

void fe_map_put(StrMap *m, Arena *a, const char *key, void *val)
{
    if (2 * (m->n + 1) > m->cap)
        rehash(m, a);
    int32_t i = find_slot(m->keys, m->cap, key);
    if (!m->keys[i])
        m->n++;
    m->keys[i] = key;
    m->vals[i] = val;
}

/* Optimal string alignment distance; names are short, so one row per call
 * on the stack is enough (longer names are never suggested). */
#define SUGGEST_MAX_LEN 63

static int32_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > SUGGEST_MAX_LEN || m > SUGGEST_MAX_LEN)
        return INT32_MAX;
    int32_t d[SUGGEST_MAX_LEN + 1][SUGGEST_MAX_LEN + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int32_t)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int32_t)j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            int32_t cost = a[i - 1] != b[j - 1];
            int32_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

void fe_suggest_init(Suggest *s, const char *wanted)
{
    s->wanted = wanted;
    s->best = NULL;
    s->dist = INT32_MAX;
}

/* Close means about one edit per four letters (at least one), and never a
 * rewrite of most of the candidate. */
void fe_suggest_add(Suggest *s, const char *candidate)
{
    if (!candidate || strcmp(candidate, s->wanted) == 0)
        return;
    int32_t d = edit_distance(s->wanted, candidate);
    int32_t len = (int32_t)strlen(s->wanted);
    int32_t limit = len < 7 ? 1 : (len + 1) / 4;
    if (d > limit || d >= (int32_t)strlen(candidate))
        return;
    if (d < s->dist || (d == s->dist && strcmp(candidate, s->best) < 0)) {
        s->best = candidate;
        s->dist = d;
    }
}

const char *fe_suggest_text(const Suggest *s, char *buf, size_t n)
{
    if (!s->best)
        return "";
    snprintf(buf, n, "; did you mean '%s'?", s->best);
    return buf;
}
