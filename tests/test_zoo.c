/* test_zoo.c: pins the model zoo. Every model of models/ loads without a word from
 * the diagnostics, names its parameters exactly as torchvision's state_dict does
 * (tests/names/), prints as its golden IR (tests/golden/) and survives the text form.
 * CNNC_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing with them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "test_util.h"

typedef struct ZooModel {
    const char *name;
    int64_t classes; /* the output is [batch, classes] */
} ZooModel;

static const ZooModel zoo[] = {
    {"mnist_cnn", 10},      {"mlp", 10},     {"resnet18", 1000},      {"resnet50", 1000},
    {"mobilenet_v2", 1000}, {"vgg16", 1000}, {"squeezenet1_1", 1000},
    {"mobilenet_v3_large", 1000}, {"efficientnet_b0", 1000}, {"shufflenet_v2_x1_0", 1000},
    {"convnext_tiny", 1000}, {"densenet121", 1000},
};
#define NZOO ((int)(sizeof zoo / sizeof zoo[0]))

/* One loaded model per test: the graph (NULL when loading failed) and what the
 * diagnostics said while loading it. */
typedef struct Fixture {
    const ZooModel *model;
    Graph *g;
    char *diag_text;
    size_t diag_len;
    int nerrors, nwarnings;
} Fixture;

static char *model_path(const char *dir, const char *name, const char *ext)
{
    size_t n = strlen(CNNC_SOURCE_DIR) + strlen(dir) + strlen(name) + strlen(ext) + 4;
    char *p = ir_xmalloc(n);
    snprintf(p, n, "%s/%s/%s%s", CNNC_SOURCE_DIR, dir, name, ext);
    return p;
}

/* Loads models/NAME.cnn with diagnostics captured in memory. */
static Fixture *load(const ZooModel *m, int64_t batch)
{
    Fixture *f = ir_xcalloc(1, sizeof *f);
    f->model = m;
    FILE *out = open_memstream(&f->diag_text, &f->diag_len);
    assert_non_null(out);
    Diag d;
    ir_diag_init(&d, out);
    FeOptions opt = {.batch = batch};
    char *path = model_path("models", m->name, ".cnn");
    f->g = fe_load_file(path, &opt, &d);
    f->nerrors = d.nerrors;
    f->nwarnings = d.nwarnings;
    ir_diag_fini(&d);
    fclose(out);
    free(path);
    return f;
}

static void unload(Fixture *f)
{
    if (f->g)
        ir_graph_free(f->g);
    free(f->diag_text);
    free(f);
}

static int setup(void **state)
{
    *state = load(*state, 0);
    return 0;
}

static int teardown(void **state)
{
    unload(*state);
    return 0;
}

/* The graph of a fixture, or a failed test that quotes the diagnostics. */
static Graph *graph_of(const Fixture *f)
{
    if (!f->g)
        fail_msg("models/%s.cnn did not load:\n%s", f->model->name, f->diag_text);
    return f->g;
}

/* ---- file and text helpers ---------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = ir_xmalloc(cap);
    for (size_t k; (k = fread(buf + n, 1, cap - n - 1, fp)) > 0;) {
        n += k;
        if (cap - n - 1 == 0)
            buf = ir_xrealloc(buf, cap *= 2);
    }
    fclose(fp);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Fails, naming the first line where `got` differs from `want`. */
static void assert_same_text(const char *want, const char *got, const char *what)
{
    int line = 1;
    const char *w = want, *g = got;
    while (*w && *w == *g) {
        if (*w == '\n') {
            line++;
            want = w + 1;
            got = g + 1;
        }
        w++;
        g++;
    }
    if (*w == *g)
        return;
    int wn = (int)strcspn(want, "\n"), gn = (int)strcspn(got, "\n");
    fail_msg("%s differs at line %d:\n  expected: %.*s\n  got:      %.*s", what, line, wn, want,
             gn, got);
}

/* ---- parameter names ---------------------------------------------------- */

/* A parameter as "name shape", split at the space for comparisons by name. */
typedef struct NamedShape {
    char *line;
    size_t name_len;
} NamedShape;

static int cmp_named(const void *a, const void *b)
{
    const NamedShape *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->line, y->line, n);
    if (c)
        return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static NamedShape named(char *line)
{
    return (NamedShape){line, strcspn(line, " ")};
}

/* The lines of tests/names/MODEL.txt, sorted by name. `buf` owns the text. */
static NamedShape *expected_params(const char *model, char **buf, int *n)
{
    char *path = model_path("tests/names", model, ".txt");
    *buf = read_file(path, NULL);
    if (!*buf)
        fail_msg("cannot read %s", path);
    free(path);
    int cap = 16;
    NamedShape *v = ir_xmalloc((size_t)cap * sizeof *v);
    *n = 0;
    for (char *line = strtok(*buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (*n == cap)
            v = ir_xrealloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[(*n)++] = named(line);
    }
    qsort(v, (size_t)*n, sizeof *v, cmp_named);
    return v;
}

/* Every PARAM of `g` as "name d,d,...", sorted by name; lines live in `arena`. */
static NamedShape *graph_params(const Graph *g, Arena *arena, int *n)
{
    NamedShape *v = ir_alloc(arena, (size_t)(g->nnodes + 1) * sizeof *v);
    *n = 0;
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *node = &g->nodes[i];
        if (node->op != OP_PARAM)
            continue;
        char *line = ir_strdup(arena, node->name);
        for (int32_t k = 0; k < node->type.rank; k++)
            line = ir_strfmt(arena, "%s%c%lld", line, k ? ',' : ' ',
                             (long long)node->type.dims[k]);
        v[(*n)++] = named(line);
    }
    qsort(v, (size_t)*n, sizeof *v, cmp_named);
    return v;
}

/* Merges the two sorted lists and prints every difference; returns their count. */
static int report_param_differences(const NamedShape *want, int nw, const NamedShape *got, int ng)
{
    int i = 0, j = 0, diffs = 0;
    while (i < nw || j < ng) {
        int c = i == nw ? 1 : j == ng ? -1 : cmp_named(&want[i], &got[j]);
        if (c < 0)
            print_error("  missing:    %s\n", want[i++].line);
        else if (c > 0)
            print_error("  unexpected: %s\n", got[j++].line);
        else if (strcmp(want[i].line, got[j].line) != 0)
            print_error("  shape:      expected %s, got %s\n", want[i++].line, got[j++].line);
        else {
            i++, j++;
            continue;
        }
        diffs++;
    }
    return diffs;
}

/* ---- the checks --------------------------------------------------------- */

static void test_loads_cleanly(void **state)
{
    const Fixture *f = *state;
    graph_of(f);
    if (f->nerrors || f->nwarnings || f->diag_len)
        fail_msg("models/%s.cnn: %d errors, %d warnings:\n%s", f->model->name, f->nerrors,
                 f->nwarnings, f->diag_text);
}

static void test_param_names(void **state)
{
    const Fixture *f = *state;
    const Graph *g = graph_of(f);
    Arena *arena = ir_arena_new();
    char *buf;
    int nw, ng;
    NamedShape *want = expected_params(f->model->name, &buf, &nw);
    NamedShape *got = graph_params(g, arena, &ng);
    int diffs = report_param_differences(want, nw, got, ng);
    free(want);
    free(buf);
    ir_arena_free(arena);
    if (diffs)
        fail_msg("models/%s.cnn: %d parameters differ from tests/names/%s.txt (%d expected, "
                 "%d found)", f->model->name, diffs, f->model->name, nw, ng);
}

static void assert_output(const Graph *g, int64_t batch, int64_t classes)
{
    assert_int_equal(g->noutputs, 1);
    const TensorType *t = &g->nodes[g->outputs[0].node].type;
    char buf[96];
    ir_type_str(t, buf, sizeof buf);
    if (t->dtype != DT_F32 || t->rank != 2 || t->dims[0] != batch || t->dims[1] != classes)
        fail_msg("output is %s, expected f32[%lld,%lld]", buf, (long long)batch,
                 (long long)classes);
}

static void test_output_shape(void **state)
{
    const Fixture *f = *state;
    assert_output(graph_of(f), 1, f->model->classes);
}

static void test_golden(void **state)
{
    const Fixture *f = *state;
    char *text = print_graph(graph_of(f));
    char *path = model_path("tests/golden", f->model->name, ".ir");
    const char *update = getenv("CNNC_UPDATE_GOLDEN");
    if (update && strcmp(update, "1") == 0) {
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        fputs(text, fp);
        assert_int_equal(fclose(fp), 0);
        print_message("wrote %s\n", path);
    } else {
        char *want = read_file(path, NULL);
        if (!want)
            fail_msg("cannot read %s (CNNC_UPDATE_GOLDEN=1 writes it)", path);
        assert_same_text(want, text, path);
        free(want);
    }
    free(path);
    free(text);
}

static void test_text_round_trip(void **state)
{
    const Fixture *f = *state;
    char *text = print_graph(graph_of(f));
    char *diag_text = NULL;
    size_t diag_len = 0;
    FILE *out = open_memstream(&diag_text, &diag_len);
    Diag d;
    ir_diag_init(&d, out);
    Graph *g2 = ir_parse_text(f->model->name, text, &d);
    int nerrors = d.nerrors;
    ir_diag_fini(&d);
    fclose(out);
    if (!g2 || nerrors)
        fail_msg("ir_parse_text rejects the printed %s:\n%s", f->model->name, diag_text);
    char *again = print_graph(g2);
    assert_same_text(text, again, "reprinted text");
    ir_graph_free(g2);
    free(again);
    free(text);
    free(diag_text);
}

static void test_verifies(void **state)
{
    const Fixture *f = *state;
    char *diag_text = NULL;
    size_t diag_len = 0;
    FILE *out = open_memstream(&diag_text, &diag_len);
    Diag d;
    ir_diag_init(&d, out);
    bool ok = ir_verify(graph_of(f), &d);
    ir_diag_fini(&d);
    fclose(out);
    if (!ok || diag_len)
        fail_msg("ir_verify rejects %s:\n%s", f->model->name, diag_text);
    free(diag_text);
}

static void test_batch(void **state)
{
    const Fixture *f = *state;
    Fixture *b = load(f->model, 4);
    const Graph *g = graph_of(b);
    assert_int_equal(b->nerrors, 0);
    assert_int_equal(ir_num_inputs(g), 1);
    assert_int_equal(g->nodes[ir_input_node(g, 0)].type.dims[0], 4);
    assert_output(g, 4, f->model->classes);
    unload(b);
}

/* ---- the table: every check for every model ----------------------------- */

static const struct {
    const char *what;
    CMUnitTestFunction fn;
} checks[] = {
    {"loads cleanly", test_loads_cleanly},
    {"parameter names", test_param_names},
    {"output shape", test_output_shape},
    {"golden IR", test_golden},
    {"text round trip", test_text_round_trip},
    {"verifies", test_verifies},
    {"batch 4", test_batch},
};
#define NCHECKS ((int)(sizeof checks / sizeof checks[0]))

int main(void)
{
    Arena *arena = ir_arena_new();
    struct CMUnitTest *tests = ir_alloc(arena, NZOO * NCHECKS * sizeof *tests);
    for (int m = 0; m < NZOO; m++)
        for (int c = 0; c < NCHECKS; c++)
            tests[m * NCHECKS + c] = (struct CMUnitTest){
                .name = ir_strfmt(arena, "%s: %s", zoo[m].name, checks[c].what),
                .test_func = checks[c].fn,
                .setup_func = setup,
                .teardown_func = teardown,
                .initial_state = (void *)&zoo[m],
            };
    int failed = _cmocka_run_group_tests("zoo", tests, NZOO * NCHECKS, NULL, NULL);
    ir_arena_free(arena);
    return failed;
}
