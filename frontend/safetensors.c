/* safetensors.c: binds graph parameters from .safetensors files and writes
 * them back. The whole header is checked before any data is read; then the
 * data is read once, in file order, straight into the graph's arena. */
#include "frontend.h"
#include "json.h"
#include "support.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Layout: u64 little-endian N, N bytes of JSON header, then the data buffer
 * that each tensor's data_offsets [begin, end) index into. */
#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the reference reader's limit */
#define ST_CHUNK      ((size_t)1 << 20)     /* conversion buffer for F16/BF16/F64 */

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_NBINDABLE } StBindable;

/* Every dtype of the format, so files holding other tensors (integer
 * counters, for one) validate; only the first ST_NBINDABLE become weights. */
static const struct {
    const char *name;
    uint32_t size;
} st_dtypes[] = {
    {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8},     {"I32", 4},
    {"I16", 2}, {"I8", 1},  {"U8", 1},   {"U16", 2}, {"U32", 4},     {"U64", 8},
    {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

typedef struct StTensor {
    const char *name;
    int dtype; /* index into st_dtypes */
    int32_t rank;
    int64_t dims[IR_MAX_RANK];
    uint64_t begin, end; /* within the data buffer */
    int32_t node;        /* the PARAM it binds, or -1 */
} StTensor;

typedef struct StFile {
    const char *path;
    SrcLoc loc;
    Diag *d;
    Arena *arena; /* header text and parsed values, freed after binding */
    FILE *f;
    uint64_t header_len, data_len;
    StTensor *t; /* in file order */
    StTensor **byname;
    int32_t nt;
    bool partial; /* parameters the file lacks are no error */
    FeBindOptions opt;
    /* Names that match nothing on the other side: when there are many, one
     * summary replaces an error per name. */
    const char **missing, **unexpected;
    int32_t nmissing, nunexpected;
    bool summarize;
} StFile;

/* Up to this many mismatched names, each is an error of its own. */
#define ST_LIST_MISMATCHES 8
/* A summary names this many of each side. */
#define ST_SHOW_MISMATCHES 3

static uint64_t load_u64le(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void store_u64le(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static char *dims_str(int32_t rank, const int64_t *dims, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int32_t i = 0; i < rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, i ? ", %lld" : "%lld", (long long)dims[i]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
    return buf;
}

/* ---- header validation -------------------------------------------------- */

static bool json_uint(const JsonValue *v, uint64_t *out)
{
    if (!v || v->kind != JSON_NUMBER || !v->is_int || v->integer < 0)
        return false;
    *out = (uint64_t)v->integer;
    return true;
}

static bool parse_shape(StFile *sf, StTensor *t, const JsonValue *shape)
{
    if (!shape || shape->kind != JSON_ARRAY) {
        ir_error(sf->d, sf->loc, "tensor '%s': 'shape' must be an array", t->name);
        return false;
    }
    if (shape->count > IR_MAX_RANK) {
        ir_error(sf->d, sf->loc, "tensor '%s' has %d dimensions; at most %d are supported",
                 t->name, (int)shape->count, IR_MAX_RANK);
        return false;
    }
    for (const JsonValue *e = shape->first; e; e = e->next) {
        uint64_t dim;
        if (!json_uint(e, &dim)) {
            ir_error(sf->d, sf->loc, "tensor '%s': shape entries must be non-negative integers",
                     t->name);
            return false;
        }
        t->dims[t->rank++] = (int64_t)dim;
    }
    return true;
}

static bool parse_dtype(StFile *sf, StTensor *t, const JsonValue *dtype)
{
    if (!dtype || dtype->kind != JSON_STRING) {
        ir_error(sf->d, sf->loc, "tensor '%s': 'dtype' must be a string", t->name);
        return false;
    }
    for (t->dtype = 0; t->dtype < ST_NDTYPES; t->dtype++)
        if (strcmp(st_dtypes[t->dtype].name, dtype->str) == 0)
            return true;
    ir_error(sf->d, sf->loc, "tensor '%s' has unknown dtype '%s'", t->name, dtype->str);
    return false;
}

/* data_offsets must lie inside the data buffer and span exactly shape × dtype. */
static bool parse_offsets(StFile *sf, StTensor *t, const JsonValue *offs)
{
    if (!offs || offs->kind != JSON_ARRAY || offs->count != 2 ||
        !json_uint(offs->first, &t->begin) || !json_uint(offs->first->next, &t->end)) {
        ir_error(sf->d, sf->loc, "tensor '%s': 'data_offsets' must be [begin, end]", t->name);
        return false;
    }
    if (t->begin > t->end || t->end > sf->data_len) {
        ir_error(sf->d, sf->loc,
                 "tensor '%s': data_offsets [%llu, %llu] lie outside the %llu bytes of data",
                 t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                 (unsigned long long)sf->data_len);
        return false;
    }
    uint64_t bytes = st_dtypes[t->dtype].size;
    bool overflow = false;
    for (int32_t i = 0; i < t->rank; i++)
        overflow |= __builtin_mul_overflow(bytes, (uint64_t)t->dims[i], &bytes);
    if (overflow || bytes != t->end - t->begin) {
        char buf[128], need[32];
        if (overflow) /* more than 2^64: said approximately */
            snprintf(need, sizeof need, "%.3g",
                     (double)st_dtypes[t->dtype].size * ir_numel_approx(t->rank, t->dims));
        else
            snprintf(need, sizeof need, "%llu", (unsigned long long)bytes);
        ir_error(sf->d, sf->loc, "tensor '%s': %s %s needs %s bytes, data_offsets span %llu",
                 t->name, st_dtypes[t->dtype].name, dims_str(t->rank, t->dims, buf, sizeof buf),
                 need, (unsigned long long)(t->end - t->begin));
        return false;
    }
    return true;
}

static bool parse_tensor(StFile *sf, StTensor *t, const JsonValue *v)
{
    t->name = v->key;
    t->node = -1;
    if (strlen(v->key) != v->keylen) {
        ir_error(sf->d, sf->loc, "tensor name '%s...' contains a NUL character", v->key);
        return false;
    }
    if (v->kind != JSON_OBJECT) {
        ir_error(sf->d, sf->loc, "tensor '%s': expected an object, got %s", t->name,
                 fe_json_kind_name(v->kind));
        return false;
    }
    return parse_dtype(sf, t, fe_json_get(v, "dtype")) &&
           parse_shape(sf, t, fe_json_get(v, "shape")) &&
           parse_offsets(sf, t, fe_json_get(v, "data_offsets"));
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

/* By begin, then end, then name: every sort of the same header agrees. */
static int cmp_extent(const void *a, const void *b)
{
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* No byte of the data buffer belongs to two tensors (an empty one has none):
 * each tensor is compared with the one reaching furthest before it. */
static bool check_overlaps(StFile *sf)
{
    StTensor **s = ir_alloc(sf->arena, (size_t)sf->nt * sizeof *s + 1);
    int32_t n = 0;
    for (int32_t i = 0; i < sf->nt; i++)
        if (sf->t[i].end > sf->t[i].begin)
            s[n++] = &sf->t[i];
    qsort(s, (size_t)n, sizeof *s, cmp_extent);
    bool ok = true;
    for (int32_t i = 1, far = 0; i < n; i++) {
        const StTensor *a = s[far], *b = s[i];
        if (b->begin < a->end) {
            ir_error(sf->d, sf->loc,
                     "tensors '%s' and '%s' overlap: data_offsets [%llu, %llu] and [%llu, %llu]",
                     a->name, b->name, (unsigned long long)a->begin, (unsigned long long)a->end,
                     (unsigned long long)b->begin, (unsigned long long)b->end);
            ok = false;
        }
        if (b->end > a->end)
            far = i;
    }
    return ok;
}

/* Parses and checks every entry; all problems are reported, not just the first. */
static bool parse_entries(StFile *sf, const JsonValue *root)
{
    sf->t = ir_alloc(sf->arena, (size_t)root->count * sizeof *sf->t + 1);
    bool ok = true;
    for (const JsonValue *v = root->first; v; v = v->next) {
        if (strcmp(v->key, "__metadata__") == 0 && v->kind == JSON_OBJECT)
            continue;
        ok &= parse_tensor(sf, &sf->t[sf->nt], v);
        sf->nt++;
    }
    if (!ok)
        return false;
    StTensor **s = sf->byname = ir_alloc(sf->arena, (size_t)sf->nt * sizeof *s + 1);
    for (int32_t i = 0; i < sf->nt; i++)
        s[i] = &sf->t[i];
    qsort(s, (size_t)sf->nt, sizeof *s, cmp_tensor_name);
    for (int32_t i = 1; i < sf->nt; i++)
        if (strcmp(s[i - 1]->name, s[i]->name) == 0 &&
            (i < 2 || strcmp(s[i - 2]->name, s[i]->name) != 0)) {
            ir_error(sf->d, sf->loc, "tensor '%s' appears more than once", s[i]->name);
            ok = false;
        }
    return ok && check_overlaps(sf);
}

static bool read_header(StFile *sf)
{
    struct stat st;
    unsigned char len8[8];
    /* The data is read by offset, and sizes are checked against the file's. */
    bool stat_ok = fstat(fileno(sf->f), &st) == 0;
    if (stat_ok && !S_ISREG(st.st_mode)) {
        ir_error(sf->d, sf->loc, "cannot read weights: %s",
                 S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        return false;
    }
    if (!stat_ok || fread(len8, 1, 8, sf->f) != 8) {
        ir_error(sf->d, sf->loc, "not a safetensors file: too short for a header");
        return false;
    }
    uint64_t size = (uint64_t)st.st_size, n = load_u64le(len8);
    if (n > size - 8 || n > ST_MAX_HEADER) {
        ir_error(sf->d, sf->loc, "not a safetensors file: header size %llu exceeds %s (%llu)",
                 (unsigned long long)n, n > size - 8 ? "the file's size" : "the limit",
                 (unsigned long long)(n > size - 8 ? size : ST_MAX_HEADER));
        return false;
    }
    sf->header_len = n;
    sf->data_len = size - 8 - n;
    char *text = ir_alloc(sf->arena, (size_t)n + 1);
    if (fread(text, 1, (size_t)n, sf->f) != n) {
        ir_error(sf->d, sf->loc, "cannot read the header: %s", strerror(errno));
        return false;
    }
    char err[200];
    JsonValue *root = fe_json_parse(sf->arena, text, (size_t)n, err, sizeof err);
    if (!root || root->kind != JSON_OBJECT) {
        ir_error(sf->d, sf->loc, "invalid safetensors header: %s",
                 root ? "the header is not a JSON object" : err);
        return false;
    }
    return parse_entries(sf, root);
}

/* ---- matching tensors to parameters ------------------------------------- */

/* PARAM nodes (all of them, or only the bound ones) sorted by name. */
typedef struct ParamRef {
    const char *name;
    int32_t id;
} ParamRef;

typedef struct ParamIndex {
    ParamRef *p;
    int32_t n;
} ParamIndex;

static int cmp_param_name(const void *a, const void *b)
{
    return strcmp(((const ParamRef *)a)->name, ((const ParamRef *)b)->name);
}

static ParamIndex index_params(const Graph *g, bool bound_only, ParamRef *buf)
{
    ParamIndex pi = {buf, 0};
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_PARAM && (!bound_only || g->nodes[i].data))
            pi.p[pi.n++] = (ParamRef){g->nodes[i].name, i};
    qsort(pi.p, (size_t)pi.n, sizeof *pi.p, cmp_param_name);
    return pi;
}

static int32_t find_param(const ParamIndex *pi, const char *name)
{
    ParamRef key = {name, -1};
    const ParamRef *hit = bsearch(&key, pi->p, (size_t)pi->n, sizeof key, cmp_param_name);
    return hit ? hit->id : -1;
}

static StTensor *find_tensor(const StFile *sf, const char *name)
{
    StTensor key = {.name = name}, *pkey = &key;
    StTensor **hit = bsearch(&pkey, sf->byname, (size_t)sf->nt, sizeof pkey, cmp_tensor_name);
    return hit ? *hit : NULL;
}

/* PyTorch saves a step counter beside each batch norm's statistics; it has no
 * meaning at inference, so it is skipped when the batch norm is in the graph. */
static bool is_bn_counter(const ParamIndex *pi, const char *name, Arena *a)
{
    static const char suffix[] = ".num_batches_tracked";
    size_t n = strlen(name), ns = sizeof suffix - 1;
    if (n < ns || strcmp(name + n - ns, suffix) != 0)
        return false;
    char *mean = ir_strfmt(a, "%.*s.running_mean", (int)(n - ns), name);
    return find_param(pi, mean) >= 0;
}

static bool check_param(StFile *sf, const Node *node, StTensor *t)
{
    const TensorType *ty = &node->type;
    bool same = t->rank == ty->rank;
    for (int32_t i = 0; same && i < t->rank; i++)
        same = t->dims[i] == ty->dims[i];
    char want[128], have[128];
    if (!same) {
        ir_error(sf->d, sf->loc, "parameter '%s': model expects %s, file has %s", node->name,
                 dims_str(ty->rank, ty->dims, want, sizeof want),
                 dims_str(t->rank, t->dims, have, sizeof have));
        return false;
    }
    if (t->dtype >= ST_NBINDABLE) {
        ir_error(sf->d, sf->loc,
                 "parameter '%s' has dtype %s in %s; expected F32, F16, BF16 or F64", node->name,
                  st_dtypes[t->dtype].name, sf->path);
        return false;
    }
    return true;
}

/* Every PARAM needs a tensor of its shape; reported in graph order. */
static bool bind_params(StFile *sf, Graph *g)
{
    bool ok = true;
    char buf[128];
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *node = &g->nodes[i];
        if (node->op != OP_PARAM)
            continue;
        StTensor *t = find_tensor(sf, node->name);
        if (!t && sf->partial)
            continue;
        if (!t) {
            if (!sf->summarize)
                ir_error(sf->d, sf->loc, "missing parameter '%s' (%s) in %s", node->name,
                         ir_type_str(&node->type, buf, sizeof buf), sf->path);
            sf->missing[sf->nmissing++] = node->name;
            ok = false;
        } else if (check_param(sf, node, t)) {
            t->node = i;
        } else {
            ok = false;
        }
    }
    return ok;
}

/* Every tensor needs a PARAM; reported in file order. */
static bool check_unexpected(StFile *sf, const Graph *g)
{
    ParamRef *refs = ir_alloc(sf->arena, (size_t)g->nnodes * sizeof *refs + 1);
    ParamIndex pi = index_params(g, false, refs);
    bool ok = true;
    for (int32_t i = 0; i < sf->nt; i++) {
        const char *name = sf->t[i].name;
        if (find_param(&pi, name) < 0 && !is_bn_counter(&pi, name, sf->arena)) {
            if (!sf->summarize)
                ir_error(sf->d, sf->loc, "unexpected tensor '%s' in %s", name, sf->path);
            sf->unexpected[sf->nunexpected++] = name;
            ok = false;
        }
    }
    return ok;
}

/* ---- many mismatched names: a summary ------------------------------------- */

/* Decides, before anything is reported, whether the names that match nothing
 * are few enough to list one by one. */
static void plan_mismatches(StFile *sf, const Graph *g)
{
    ParamRef *refs = ir_alloc(sf->arena, (size_t)g->nnodes * sizeof *refs + 1);
    ParamIndex pi = index_params(g, false, refs);
    int32_t missing = 0, unexpected = 0;
    for (int32_t i = 0; i < pi.n && !sf->partial; i++)
        missing += find_tensor(sf, pi.p[i].name) == NULL;
    for (int32_t i = 0; i < sf->nt; i++)
        unexpected += find_param(&pi, sf->t[i].name) < 0 &&
                      !is_bn_counter(&pi, sf->t[i].name, sf->arena);
    sf->missing = ir_alloc(sf->arena, (size_t)pi.n * sizeof *sf->missing + 1);
    sf->unexpected = ir_alloc(sf->arena, (size_t)sf->nt * sizeof *sf->unexpected + 1);
    sf->summarize = !sf->opt.list_all && missing + unexpected > ST_LIST_MISMATCHES;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool in_sorted(const char **sorted, int32_t n, const char *name)
{
    return bsearch(&name, sorted, (size_t)n, sizeof name, cmp_str) != NULL;
}

static const char **sorted_copy(Arena *a, const char **names, int32_t n)
{
    const char **s = ir_alloc(a, (size_t)n * sizeof *s + 1);
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_str);
    return s;
}

/* How many of `from` become a name of `to` (sorted) once `prefix` is put in
 * front of them (add) or taken off them (!add). */
static int32_t prefix_explains(Arena *a, const char **from, int32_t nfrom, const char **to,
                               int32_t nto, const char *prefix, bool add)
{
    size_t len = strlen(prefix);
    int32_t n = 0;
    for (int32_t i = 0; i < nfrom; i++) {
        const char *name = from[i];
        if (add)
            n += in_sorted(to, nto, ir_strfmt(a, "%s%s", prefix, name));
        else
            n += strncmp(name, prefix, len) == 0 && in_sorted(to, nto, name + len);
    }
    return n;
}

/* A prefix of the longer names ("model.") that the other side lacks, found
 * from the first name that has one; NULL if none explains half the names. */
static const char *common_prefix(Arena *a, const char **longer, int32_t nlonger,
                                 const char **shorter_sorted, int32_t nshorter)
{
    int32_t need = ((nlonger < nshorter ? nlonger : nshorter) + 1) / 2;
    for (int32_t i = 0; i < nlonger && i < ST_LIST_MISMATCHES; i++) {
        for (const char *dot = strchr(longer[i], '.'); dot; dot = strchr(dot + 1, '.')) {
            if (!in_sorted(shorter_sorted, nshorter, dot + 1))
                continue;
            const char *prefix = ir_strndup(a, longer[i], (size_t)(dot + 1 - longer[i]));
            if (prefix_explains(a, longer, nlonger, shorter_sorted, nshorter, prefix, false) >=
                need)
                return prefix;
        }
    }
    return NULL;
}

/* Splits "a.b.c" into at most 16 segments; returns their number. */
static int32_t segments(Arena *a, const char *name, const char **seg)
{
    int32_t n = 0;
    for (const char *p = name; n < 16;) {
        const char *dot = strchr(p, '.');
        seg[n++] = ir_strndup(a, p, dot ? (size_t)(dot - p) : strlen(p));
        if (!dot)
            break;
        p = dot + 1;
    }
    return n;
}

/* `name` with every segment equal to `from` replaced by `to`. */
static const char *rename_segment(Arena *a, const char *name, const char *from, const char *to)
{
    const char *seg[16];
    int32_t n = segments(a, name, seg);
    const char *out = "";
    for (int32_t i = 0; i < n; i++)
        out = ir_strfmt(a, "%s%s%s", out, i ? "." : "", strcmp(seg[i], from) ? seg[i] : to);
    return out;
}

/* One segment the model calls `*from` and the file `*to`, found by comparing
 * the first missing names with the unexpected ones that differ from them in
 * exactly one segment; false if no such renaming explains half the names. */
static bool renamed_segment(StFile *sf, const char **unexp_sorted, const char **from,
                            const char **to)
{
    Arena *a = sf->arena;
    int32_t n = sf->nmissing < sf->nunexpected ? sf->nmissing : sf->nunexpected;
    for (int32_t i = 0; i < sf->nmissing && i < 2; i++) {
        const char *ms[16], *us[16];
        int32_t nm = segments(a, sf->missing[i], ms);
        for (int32_t j = 0; j < sf->nunexpected && j < 4 * ST_LIST_MISMATCHES; j++) {
            if (segments(a, sf->unexpected[j], us) != nm)
                continue;
            int32_t diff = -1, ndiff = 0;
            for (int32_t k = 0; k < nm; k++)
                if (strcmp(ms[k], us[k]) != 0)
                    diff = k, ndiff++;
            if (ndiff != 1)
                continue;
            int32_t hits = 0;
            for (int32_t k = 0; k < sf->nmissing; k++)
                hits += in_sorted(unexp_sorted, sf->nunexpected,
                                  rename_segment(a, sf->missing[k], ms[diff], us[diff]));
            if (hits >= (n + 1) / 2) {
                *from = ms[diff];
                *to = us[diff];
                return true;
            }
        }
    }
    return false;
}

static void mismatch_hint(StFile *sf)
{
    Arena *a = sf->arena;
    const char **ms = sorted_copy(a, sf->missing, sf->nmissing);
    const char **us = sorted_copy(a, sf->unexpected, sf->nunexpected);
    const char *p = common_prefix(a, sf->unexpected, sf->nunexpected, ms, sf->nmissing);
    const char *from, *to;
    if (p)
        ir_note(sf->d, sf->loc, "hint: the file's names start with '%s' where the model's do "
                "not", p);
    else if ((p = common_prefix(a, sf->missing, sf->nmissing, us, sf->nunexpected)))
        ir_note(sf->d, sf->loc, "hint: the model's names start with '%s' where the file's do "
                "not", p);
    else if (renamed_segment(sf, us, &from, &to))
        ir_note(sf->d, sf->loc, "hint: what the model names '%s' the file names '%s' (e.g. "
                "'%s' for '%s')", from, to, rename_segment(a, sf->missing[0], from, to),
                sf->missing[0]);
}

/* "'a', 'b', 'c' and 10 more" */
static const char *first_names(Arena *a, const char **names, int32_t n)
{
    const char *s = "";
    for (int32_t i = 0; i < n && i < ST_SHOW_MISMATCHES; i++)
        s = ir_strfmt(a, "%s%s'%s'", s, i ? ", " : "", names[i]);
    if (n > ST_SHOW_MISMATCHES)
        s = ir_strfmt(a, "%s and %d more", s, (int)(n - ST_SHOW_MISMATCHES));
    return s;
}

static void report_mismatches(StFile *sf)
{
    if (!sf->summarize || sf->nmissing + sf->nunexpected == 0)
        return;
    ir_error(sf->d, sf->loc, "the file's tensor names do not match the model's: %d parameter%s "
             "missing, %d unexpected tensor%s", (int)sf->nmissing,
             sf->nmissing == 1 ? "" : "s", (int)sf->nunexpected,
             sf->nunexpected == 1 ? "" : "s");
    if (sf->nmissing)
        ir_note(sf->d, sf->loc, "missing: %s", first_names(sf->arena, sf->missing,
                                                           sf->nmissing));
    if (sf->nunexpected)
        ir_note(sf->d, sf->loc, "unexpected: %s", first_names(sf->arena, sf->unexpected,
                                                              sf->nunexpected));
    if (sf->nmissing && sf->nunexpected)
        mismatch_hint(sf);
    if (sf->opt.list_how)
        ir_note(sf->d, sf->loc, "%s lists every one", sf->opt.list_how);
}

/* ---- reading data ------------------------------------------------------- */

static void convert(float *dst, const unsigned char *src, size_t n, int dtype)
{
    for (size_t i = 0; i < n; i++) {
        if (dtype == ST_F16) {
            dst[i] = ir_f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        } else if (dtype == ST_BF16) {
            dst[i] = ir_bf16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        } else {
            uint64_t bits = load_u64le(src + 8 * i);
            double v;
            memcpy(&v, &bits, sizeof v);
            dst[i] = (float)v;
        }
    }
}

/* F32 goes straight into the parameter; other dtypes pass a chunk buffer. */
static bool read_tensor(StFile *sf, const StTensor *t, float *dst, unsigned char **chunk)
{
    size_t size = st_dtypes[t->dtype].size, n = (size_t)(t->end - t->begin) / size;
    if (t->dtype == ST_F32)
        return fread(dst, sizeof(float), n, sf->f) == n;
    if (!*chunk)
        *chunk = ir_xmalloc(ST_CHUNK);
    size_t per = ST_CHUNK / size;
    for (size_t done = 0; done < n; done += per) {
        size_t k = n - done < per ? n - done : per;
        if (fread(*chunk, size, k, sf->f) != k)
            return false;
        convert(dst + done, *chunk, k, t->dtype);
    }
    return true;
}

static int cmp_offset(const void *a, const void *b)
{
    uint64_t x = (*(const StTensor *const *)a)->begin, y = (*(const StTensor *const *)b)->begin;
    return (x > y) - (x < y);
}

static bool read_data(StFile *sf, Graph *g)
{
    const StTensor **order = ir_alloc(sf->arena, (size_t)sf->nt * sizeof *order + 1);
    int32_t n = 0;
    for (int32_t i = 0; i < sf->nt; i++)
        if (sf->t[i].node >= 0)
            order[n++] = &sf->t[i];
    qsort(order, (size_t)n, sizeof *order, cmp_offset);
    unsigned char *chunk = NULL;
    uint64_t pos = 0;
    bool ok = true;
    for (int32_t i = 0; i < n && ok; i++) {
        const StTensor *t = order[i];
        Node *node = &g->nodes[t->node];
        if (!node->data)
            node->data = ir_alloc(g->arena, (size_t)ir_numel(&node->type) * sizeof(float) + 1);
        if (t->begin != pos)
            ok = fseeko(sf->f, (off_t)(8 + sf->header_len + t->begin), SEEK_SET) == 0;
        ok = ok && read_tensor(sf, t, node->data, &chunk);
        pos = t->end;
    }
    free(chunk);
    if (!ok)
        ir_error(sf->d, sf->loc, "cannot read tensor data: %s",
                 ferror(sf->f) ? strerror(errno) : "file changed while reading");
    return ok;
}

static bool bind_file(Graph *g, const char *path, Diag *d, bool partial,
                      const FeBindOptions *opt)
{
    StFile sf = {.path = path, .loc = {path, 0, 0}, .d = d, .partial = partial};
    if (opt)
        sf.opt = *opt;
    sf.f = fopen(path, "rb");
    if (!sf.f) {
        ir_error(d, sf.loc, "cannot open weights: %s", strerror(errno));
        return false;
    }
    sf.arena = ir_arena_new();
    bool ok = read_header(&sf);
    if (ok) {
        plan_mismatches(&sf, g);
        bool bound = bind_params(&sf, g);
        ok = check_unexpected(&sf, g) && bound;
        report_mismatches(&sf);
        ok = ok && read_data(&sf, g);
    }
    ir_arena_free(sf.arena);
    fclose(sf.f);
    return ok;
}

bool fe_bind_safetensors(Graph *g, const char *path, Diag *d)
{
    return bind_file(g, path, d, false, NULL);
}

bool fe_bind_safetensors_with(Graph *g, const char *path, Diag *d, const FeBindOptions *opt)
{
    return bind_file(g, path, d, false, opt);
}

bool fe_bind_safetensors_partial(Graph *g, const char *path, Diag *d)
{
    return bind_file(g, path, d, true, NULL);
}

/* ---- writing ------------------------------------------------------------ */

typedef struct StWrite {
    const Graph *g;
    ParamIndex params; /* the bound ones */
    char *header;
    size_t len, cap;
} StWrite;

static void put(StWrite *w, const char *s, size_t n)
{
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 256;
        w->header = ir_xrealloc(w->header, w->cap);
    }
    memcpy(w->header + w->len, s, n);
    w->len += n;
}

static void puts_(StWrite *w, const char *s)
{
    put(w, s, strlen(s));
}

static void putf(StWrite *w, const char *fmt, unsigned long long a, unsigned long long b)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, fmt, a, b);
    put(w, buf, (size_t)n);
}

static void put_json_string(StWrite *w, const char *s)
{
    puts_(w, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(w, esc, 2);
        } else if (c < 0x20) {
            putf(w, "\\u%04llx", c, 0);
        } else {
            put(w, s, 1);
        }
    }
    puts_(w, "\"");
}

/* {"name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]},...} padded with
 * spaces so the data starts 8-byte aligned. */
static void build_header(StWrite *w)
{
    uint64_t offset = 0;
    puts_(w, "{");
    for (int32_t i = 0; i < w->params.n; i++) {
        const Node *node = &w->g->nodes[w->params.p[i].id];
        puts_(w, i ? "," : "");
        put_json_string(w, node->name);
        puts_(w, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int32_t k = 0; k < node->type.rank; k++)
            putf(w, k ? ",%llu" : "%llu", (unsigned long long)node->type.dims[k], 0);
        uint64_t bytes = (uint64_t)ir_numel(&node->type) * sizeof(float);
        putf(w, "],\"data_offsets\":[%llu,%llu]}", offset, offset + bytes);
        offset += bytes;
    }
    puts_(w, "}");
    while (w->len % 8)
        puts_(w, " ");
}

static bool emit_safetensors(FILE *f, void *ctx)
{
    const StWrite *w = ctx;
    unsigned char len8[8];
    store_u64le(len8, w->len);
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(w->header, 1, w->len, f) != w->len)
        return false;
    for (int32_t i = 0; i < w->params.n; i++) {
        const Node *node = &w->g->nodes[w->params.p[i].id];
        size_t n = (size_t)ir_numel(&node->type);
        if (fwrite(node->data, sizeof(float), n, f) != n)
            return false;
    }
    return true;
}

bool fe_write_safetensors(const Graph *g, const char *path, char *err, size_t errlen)
{
    ParamRef *refs = ir_xmalloc((size_t)g->nnodes * sizeof *refs + 1);
    StWrite w = {.g = g, .params = index_params(g, true, refs)};
    build_header(&w);
    bool ok = ir_write_atomic(path, emit_safetensors, &w, err, errlen);
    free(w.header);
    free(refs);
    return ok;
}
