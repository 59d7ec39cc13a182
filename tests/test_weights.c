/* test_weights.c: the weight files and weights of a graph: the JSON reader,
 * binding and writing .safetensors (conversions, every error in one call,
 * corrupt files), and deterministic random weights that keep the zoo's
 * activations in a sane range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend.h"
#include "json.h"
#include "support.h"

static char tmpdir[512];

static int make_tmpdir(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/weights-test-XXXXXX", CNNC_BINARY_DIR);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    return remove_test_dir(tmpdir);
}

static const char *tmp_path(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

/* ---- JSON --------------------------------------------------------------- */

/* Parses from an exactly-sized heap copy, so the sanitizer build catches any
 * read past the end. */
static JsonValue *parse(Arena *a, const char *text, size_t len, char *err, size_t errlen)
{
    char *copy = ir_xmalloc(len ? len : 1);
    memcpy(copy, text, len);
    JsonValue *v = fe_json_parse(a, copy, len, err, errlen);
    free(copy);
    return v;
}

static void test_json_values(void **state)
{
    static const char doc[] =
        " {\"a\": [1, -2.5e3, 0, true, false, null], \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t"
        "\\u00e9\\ud83d\\ude00\\u0041\", \"big\": 123456789012345678, \"o\": {}} ";
    Arena *a = ir_arena_new();
    char err[200];
    JsonValue *v = parse(a, doc, sizeof doc - 1, err, sizeof err);
    assert_non_null(v);
    assert_int_equal(v->kind, JSON_OBJECT);
    assert_int_equal(v->count, 4);
    const JsonValue *arr = fe_json_get(v, "a");
    assert_int_equal(arr->kind, JSON_ARRAY);
    assert_int_equal(arr->count, 6);
    assert_true(arr->first->is_int && arr->first->integer == 1);
    assert_false(arr->first->next->is_int);
    assert_float_equal(arr->first->next->number, -2500.0, 0.0);
    assert_int_equal(arr->first->next->next->next->kind, JSON_BOOL);
    assert_true(arr->first->next->next->next->boolean);
    assert_int_equal(arr->first->next->next->next->next->next->kind, JSON_NULL);
    const JsonValue *s = fe_json_get(v, "s");
    assert_string_equal(s->str, "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80" "A");
    assert_int_equal(s->len, strlen(s->str));
    assert_int_equal(fe_json_get(v, "big")->integer, 123456789012345678LL);
    assert_int_equal(fe_json_get(v, "o")->count, 0);
    assert_null(fe_json_get(v, "missing"));
    ir_arena_free(a);
}

static void json_fails(const char *text, const char *message)
{
    Arena *a = ir_arena_new();
    char err[200] = "";
    assert_null(parse(a, text, strlen(text), err, sizeof err));
    if (strcmp(err, message) != 0)
        print_error("'%s': got '%s', want '%s'\n", text, err, message);
    assert_string_equal(err, message);
    ir_arena_free(a);
}

static void test_json_errors(void **state)
{
    json_fails("", "byte 0: unexpected end of input");
    json_fails("{\"a\":1,}", "byte 7: expected a string as object key");
    json_fails("[1,]", "byte 3: unexpected character ']'");
    json_fails("[1 2]", "byte 3: expected ',' or ']' in array");
    json_fails("{\"a\" 1}", "byte 5: expected ':' after object key");
    json_fails("01", "byte 2: leading zeros are not allowed in numbers");
    json_fails("1.", "byte 2: expected a digit after '.'");
    json_fails("\"abc", "byte 1: unterminated string");
    json_fails("\"a\\x\"", "byte 3: invalid escape sequence");
    json_fails("\"\\ud800\"", "byte 7: high surrogate not followed by a low surrogate");
    json_fails("\"\\udc00\"", "byte 7: unpaired low surrogate in \\u escape");
    json_fails("\"a\tb\"", "byte 2: control character in string");
    json_fails("\"\xc3\x28\"", "byte 1: invalid UTF-8 in string");
    json_fails("\"\xed\xa0\x80\"", "byte 1: invalid UTF-8 in string");
    json_fails("tru", "byte 0: invalid literal (expected 'true')");
    json_fails("{} x", "byte 3: unexpected text after the JSON value");
    json_fails("// c\n{}", "byte 0: unexpected character '/'");
}

static void test_json_depth_limit(void **state)
{
    char deep[2 * (JSON_MAX_DEPTH + 1) + 1];
    for (int i = 0; i <= JSON_MAX_DEPTH; i++) {
        deep[i] = '[';
        deep[2 * (JSON_MAX_DEPTH + 1) - 1 - i] = ']';
    }
    deep[2 * (JSON_MAX_DEPTH + 1)] = '\0';
    json_fails(deep, "byte 64: nesting deeper than 64 levels");
    Arena *a = ir_arena_new();
    char err[200];
    assert_non_null(parse(a, deep + 1, strlen(deep) - 2, err, sizeof err));
    ir_arena_free(a);
}

/* Every strict prefix of an object is invalid; none may crash or overread. */
static void test_json_truncations(void **state)
{
    static const char doc[] = "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], "
                              "\"s\": \"\\u00e9\\ud83d\\ude00\", \"x\": [1.5e-3, -0, null]}}";
    Arena *a = ir_arena_new();
    char err[200];
    for (size_t n = 0; n < sizeof doc - 1; n++)
        assert_null(parse(a, doc, n, err, sizeof err));
    assert_non_null(parse(a, doc, sizeof doc - 1, err, sizeof err));
    ir_arena_free(a);
}

/* ---- a small network ---------------------------------------------------- */

static const struct {
    const char *name;
    int32_t rank;
    int64_t dims[4];
} net_params[] = {
    {"conv1.weight", 4, {4, 3, 3, 3}}, {"conv1.bias", 1, {4}},
    {"bn1.weight", 1, {4}},            {"bn1.bias", 1, {4}},
    {"bn1.running_mean", 1, {4}},      {"bn1.running_var", 1, {4}},
    {"fc.weight", 2, {10, 256}},       {"fc.bias", 1, {10}},
};
enum { NPARAMS = sizeof net_params / sizeof net_params[0] };

/* conv(3→4, 3×3, pad 1) → batchnorm → relu → flatten → dense(256→10), its
 * parameters created in table order or reversed. */
static Graph *small_net(bool reversed)
{
    Graph *g = ir_graph_new("small");
    SrcLoc loc = {0};
    int32_t x = ir_add_input(g, "x", ir_type_f32(4, (int64_t[]){1, 3, 8, 8}), loc), p[NPARAMS];
    for (int i = 0; i < NPARAMS; i++) {
        int k = reversed ? NPARAMS - 1 - i : i;
        p[k] = ir_add_param(g, net_params[k].name,
                            ir_type_f32(net_params[k].rank, net_params[k].dims), loc);
    }
    int32_t conv = ir_add_node(g, OP_CONV2D, (int32_t[]){x, p[0], p[1]}, 3, "conv1", loc);
    ConvAttrs *c = &g->nodes[conv].attrs.conv;
    c->kernel[0] = c->kernel[1] = 3;
    c->pad[0] = c->pad[1] = c->pad[2] = c->pad[3] = 1;
    int32_t bn = ir_add_node(g, OP_BATCHNORM, (int32_t[]){conv, p[2], p[3], p[4], p[5]}, 5,
                             "bn1", loc);
    int32_t relu = ir_add_node(g, OP_RELU, &bn, 1, "relu_0", loc);
    int32_t flat = ir_add_node(g, OP_FLATTEN, &relu, 1, "flatten_0", loc);
    int32_t fc = ir_add_node(g, OP_DENSE, (int32_t[]){flat, p[6], p[7]}, 3, "fc", loc);
    ir_add_output(g, fc, "fc");
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(ir_infer_shapes(g, &d));
    ir_diag_fini(&d);
    return g;
}

static const float *param_data(const Graph *g, const char *name)
{
    int32_t id = ir_find_node(g, name);
    assert_true(id >= 0);
    assert_non_null(g->nodes[id].data);
    return g->nodes[id].data;
}

/* ---- random weights ----------------------------------------------------- */

static void test_random_weights_deterministic(void **state)
{
    Graph *a = small_net(false), *b = small_net(true), *c = small_net(false);
    fe_random_weights(a, 7);
    fe_random_weights(b, 7);
    fe_random_weights(c, 8);
    for (int i = 0; i < NPARAMS; i++) {
        const TensorType t = ir_type_f32(net_params[i].rank, net_params[i].dims);
        size_t bytes = (size_t)ir_numel(&t) * sizeof(float);
        const char *name = net_params[i].name;
        assert_memory_equal(param_data(a, name), param_data(b, name), bytes);
        assert_memory_not_equal(param_data(a, name), param_data(c, name), bytes);
    }
    ir_graph_free(a);
    ir_graph_free(b);
    ir_graph_free(c);
}

static void assert_range(const Graph *g, const char *name, int64_t n, double lo, double hi)
{
    const float *v = param_data(g, name);
    double min = INFINITY, max = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        min = fmin(min, v[i]);
        max = fmax(max, v[i]);
    }
    assert_true(min >= lo && max <= hi);
    /* The values spread over most of the range, not just a corner of it. */
    assert_true(max - min >= 0.5 * (hi - lo));
}

static void test_random_weights_scales(void **state)
{
    Graph *g = small_net(false);
    fe_random_weights(g, 1);
    double conv_bound = sqrt(6.0 / 27.0), fc_bound = sqrt(6.0 / 256.0);
    assert_range(g, "conv1.weight", 108, -conv_bound, conv_bound);
    assert_range(g, "conv1.bias", 4, -1.0 / sqrt(27.0), 1.0 / sqrt(27.0));
    assert_range(g, "bn1.weight", 4, 0.5, 1.0);
    assert_range(g, "bn1.bias", 4, -0.1, 0.1);
    assert_range(g, "bn1.running_mean", 4, -0.1, 0.1);
    assert_range(g, "bn1.running_var", 4, 0.5, 1.5);
    assert_range(g, "fc.weight", 2560, -fc_bound, fc_bound);
    assert_range(g, "fc.bias", 10, -1.0 / 16.0, 1.0 / 16.0);
    ir_graph_free(g);
}

/* ---- safetensors -------------------------------------------------------- */


static void assert_has(Captured *c, const char *message)
{
    fflush(c->f);
    if (!strstr(c->text, message))
        print_error("missing '%s' in:\n%s\n", message, c->text);
    assert_non_null(strstr(c->text, message));
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* A file from a header written by hand (its size field taken from the text
 * unless `size` is non-zero) and raw data bytes. */
static void write_st(const char *path, const char *header, uint64_t size, const void *data,
                     size_t n)
{
    size_t hlen = strlen(header);
    unsigned char *buf = ir_xmalloc(8 + hlen + n + 1);
    uint64_t field = size ? size : hlen;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(field >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (n)
        memcpy(buf + 8 + hlen, data, n);
    write_bytes(path, buf, 8 + hlen + n);
    free(buf);
}

static Graph *params_graph(int n, const char *const *names, const int32_t *ranks,
                           const int64_t (*dims)[4])
{
    Graph *g = ir_graph_new("params");
    for (int i = 0; i < n; i++)
        ir_add_param(g, names[i], ir_type_f32(ranks[i], dims[i]), (SrcLoc){0});
    return g;
}

static void test_safetensors_round_trip(void **state)
{
    Graph *a = small_net(false), *b = small_net(true);
    fe_random_weights(a, 3);
    char err[512];
    const char *path = tmp_path("net.safetensors");
    assert_true(fe_write_safetensors(a, path, err, sizeof err));
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(fe_bind_safetensors(b, path, &d));
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);
    for (int i = 0; i < NPARAMS; i++) {
        const TensorType t = ir_type_f32(net_params[i].rank, net_params[i].dims);
        assert_memory_equal(param_data(a, net_params[i].name), param_data(b, net_params[i].name),
                            (size_t)ir_numel(&t) * sizeof(float));
    }
    ir_graph_free(a);
    ir_graph_free(b);
}

/* Same weights, same bytes; names sorted; data 8-byte aligned. */
static void test_safetensors_bytes(void **state)
{
    Graph *a = small_net(false), *b = small_net(true);
    fe_random_weights(a, 5);
    fe_random_weights(b, 5);
    char err[512], p1[1024], p2[1024];
    snprintf(p1, sizeof p1, "%s", tmp_path("one.safetensors"));
    snprintf(p2, sizeof p2, "%s", tmp_path("two.safetensors"));
    assert_true(fe_write_safetensors(a, p1, err, sizeof err));
    assert_true(fe_write_safetensors(b, p2, err, sizeof err));
    FILE *f1 = fopen(p1, "rb"), *f2 = fopen(p2, "rb");
    static char buf1[1 << 16], buf2[1 << 16];
    size_t n1 = fread(buf1, 1, sizeof buf1, f1), n2 = fread(buf2, 1, sizeof buf2, f2);
    fclose(f1);
    fclose(f2);
    assert_int_equal(n1, n2);
    assert_memory_equal(buf1, buf2, n1);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | (unsigned char)buf1[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(n1, 8 + hlen + (108 + 4 * 5 + 2560 + 10) * 4);
    static const char start[] = "{\"bn1.bias\":{\"dtype\":\"F32\",\"shape\":[4],"
                                "\"data_offsets\":[0,16]},\"bn1.running_mean\":";
    assert_memory_equal(buf1 + 8, start, sizeof start - 1);
    ir_graph_free(a);
    ir_graph_free(b);
}

static void test_safetensors_conversions(void **state)
{
    /* f16: 1, -2, 2^-24, 65504; bf16: 1, -5; f64: 0.1, -1e10 */
    static const unsigned char data[] = {
        0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0xFF, 0x7B, 0x80, 0x3F, 0xA0, 0xC0,
        0x9A, 0x99, 0x99, 0x99, 0x99, 0x99, 0xB9, 0x3F, 0x00, 0x00, 0x00, 0x20,
        0x5F, 0xA0, 0x02, 0xC2};
    const char *header = "{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
                         "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[12,28]}}";
    const char *path = tmp_path("conv.safetensors");
    write_st(path, header, 0, data, sizeof data);
    Graph *g = params_graph(3, (const char *[]){"h", "b", "d"}, (int32_t[]){2, 1, 1},
                            (const int64_t[][4]){{2, 2}, {2}, {2}});
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(fe_bind_safetensors(g, path, &d));
    ir_diag_fini(&d);
    const float *h = param_data(g, "h"), *b = param_data(g, "b"), *f = param_data(g, "d");
    assert_true(h[0] == 1.0f && h[1] == -2.0f && h[2] == ldexpf(1.0f, -24) && h[3] == 65504.0f);
    assert_true(b[0] == 1.0f && b[1] == -5.0f);
    assert_true(f[0] == 0.1f && f[1] == -1e10f);
    ir_graph_free(g);
}

/* One call reports every problem, and batch-norm counters are skipped. */
static void test_safetensors_all_errors(void **state)
{
    static const unsigned char zeros[2048 * 4 + 32];
    char header[1024];
    snprintf(header, sizeof header, "{%s,%s,%s,%s,%s,%s}",
             "\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[128,16],\"data_offsets\":[0,8192]}",
             "\"foo\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8192,8196]}",
             "\"bn.running_mean\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8196,8200]}",
             "\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],"
             "\"data_offsets\":[8200,8208]}",
             "\"other.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],"
             "\"data_offsets\":[8208,8216]}",
             "\"counter\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8216,8224]}");
    const char *path = tmp_path("bad.safetensors");
    write_st(path, header, 0, zeros, sizeof zeros);
    Graph *g = params_graph(4, (const char *[]){"conv1.weight", "fc1.weight",
                                                "bn.running_mean", "counter"},
                            (int32_t[]){4, 2, 1, 1},
                            (const int64_t[][4]){{64, 64, 3, 3}, {128, 9216}, {1}, {1}});
    Captured c;
    capture(&c);
    assert_false(fe_bind_safetensors(g, path, &c.d));
    char want[10 * 1024];
    snprintf(want, sizeof want,
             "%s: error: missing parameter 'conv1.weight' (f32[64,64,3,3]) in %s\n"
             "%s: error: parameter 'fc1.weight': model expects [128, 9216], file has [128, 16]\n"
             "%s: error: parameter 'counter' has dtype I64 in %s; expected F32, F16, BF16 or F64\n"
             "%s: error: unexpected tensor 'foo' in %s\n"
             "%s: error: unexpected tensor 'other.num_batches_tracked' in %s\n",
             path, path, path, path, path, path, path, path, path);
    fflush(c.f);
    assert_string_equal(c.text, want);
    assert_int_equal(c.d.nerrors, 5);
    assert_null(g->nodes[ir_find_node(g, "bn.running_mean")].data);
    release(&c);
    ir_graph_free(g);
}

/* Binds a model of 10 parameters `features.K.block.0.weight` to a file whose
 * 10 names follow `file_fmt` (with K); returns what was reported. */
static char *bind_renamed(const char *file_fmt, const FeBindOptions *opt, int *nerrors)
{
    static const float zeros[10];
    char header[2048], name[128];
    const char *names[10];
    size_t len = (size_t)snprintf(header, sizeof header, "{");
    for (int k = 0; k < 10; k++) {
        snprintf(name, sizeof name, file_fmt, k);
        len += (size_t)snprintf(header + len, sizeof header - len,
                                "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[1],"
                                "\"data_offsets\":[%d,%d]}", k ? "," : "", name, 4 * k, 4 * k + 4);
        snprintf(name, sizeof name, "features.%d.block.0.weight", k);
        names[k] = strdup(name);
    }
    snprintf(header + len, sizeof header - len, "}");
    const char *path = tmp_path("renamed.safetensors");
    write_st(path, header, 0, zeros, sizeof zeros);
    Graph *g = params_graph(10, names, (int32_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
                            (const int64_t[][4]){{1}, {1}, {1}, {1}, {1}, {1}, {1}, {1}, {1}, {1}});
    Captured c;
    capture(&c);
    assert_false(fe_bind_safetensors_with(g, path, &c.d, opt));
    fflush(c.f);
    char *text = strdup(c.text);
    *nerrors = c.d.nerrors;
    release(&c);
    ir_graph_free(g);
    for (int k = 0; k < 10; k++)
        free((char *)names[k]);
    return text;
}

/* Many names that match nothing: one error with the counts, the first names
 * of each side and what tells them apart; every one on request. */
static void test_safetensors_mismatch_summary(void **state)
{
    FeBindOptions opt = {false, "--list"};
    int n;
    char *text = bind_renamed("model.features.%d.block.0.weight", &opt, &n);
    const char *path = tmp_path("renamed.safetensors");
    char want[16384];
    snprintf(want, sizeof want,
             "%s: error: the file's tensor names do not match the model's: 10 parameters "
             "missing, 10 unexpected tensors\n"
             "%s: note: missing: 'features.0.block.0.weight', 'features.1.block.0.weight', "
             "'features.2.block.0.weight' and 7 more\n"
             "%s: note: unexpected: 'model.features.0.block.0.weight', "
             "'model.features.1.block.0.weight', 'model.features.2.block.0.weight' and 7 more\n"
             "%s: note: hint: the file's names start with 'model.' where the model's do not\n"
             "%s: note: --list lists every one\n",
             path, path, path, path, path);
    assert_string_equal(text, want);
    assert_int_equal(n, 1);
    free(text);
    text = bind_renamed("features.%d.layers.0.weight", NULL, &n);
    assert_non_null(strstr(text, "note: hint: what the model names 'block' the file names "
                                 "'layers' (e.g. 'features.0.layers.0.weight' for "
                                 "'features.0.block.0.weight')\n"));
    assert_null(strstr(text, "lists every one"));
    free(text);
    text = bind_renamed("%d", NULL, &n);
    assert_null(strstr(text, "hint"));
    free(text);
    /* 4 + 4 mismatches and a counter of no batch norm of the model: 9, a summary. */
    static const float zeros[9];
    const char *hdr = "{\"b0\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"b1\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                      "\"b2\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                      "\"b3\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
                      "\"bn.num_batches_tracked\":{\"dtype\":\"F32\",\"shape\":[1],"
                      "\"data_offsets\":[16,20]}}";
    write_st(path, hdr, 0, zeros, sizeof zeros);
    Graph *g = params_graph(4, (const char *[]){"a0", "a1", "a2", "a3"}, (int32_t[]){1, 1, 1, 1},
                            (const int64_t[][4]){{1}, {1}, {1}, {1}});
    Captured c;
    capture(&c);
    assert_false(fe_bind_safetensors(g, path, &c.d));
    assert_has(&c, "4 parameters missing, 5 unexpected tensors\n");
    release(&c);
    ir_graph_free(g);
    opt.list_all = true;
    text = bind_renamed("features.%d.layers.0.weight", &opt, &n);
    assert_int_equal(n, 20);
    assert_non_null(strstr(text, "error: missing parameter 'features.9.block.0.weight' (f32[1])"));
    assert_non_null(strstr(text, "error: unexpected tensor 'features.9.layers.0.weight'"));
    assert_null(strstr(text, "note:"));
    free(text);
}

static void bind_fails(const char *header, uint64_t size, size_t ndata, const char *message)
{
    static const unsigned char zeros[64];
    const char *path = tmp_path("corrupt.safetensors");
    write_st(path, header, size, zeros, ndata);
    Graph *g = params_graph(1, (const char *[]){"w"}, (int32_t[]){1}, (const int64_t[][4]){{2}});
    Captured c;
    capture(&c);
    assert_false(fe_bind_safetensors(g, path, &c.d));
    assert_true(c.d.nerrors >= 1);
    assert_has(&c, message);
    assert_null(g->nodes[0].data);
    release(&c);
    ir_graph_free(g);
}

static void test_safetensors_corrupt(void **state)
{
    const char *ok = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    bind_fails(ok, 1000, 8, "header size 1000 exceeds the file's size");
    bind_fails(ok, (uint64_t)1 << 62, 8, "header size 4611686018427387904 exceeds");
    bind_fails(ok, 0, 4, "data_offsets [0, 8] lie outside the 4 bytes of data");
    bind_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8,
               "tensor 'w': F32 [3] needs 12 bytes, data_offsets span 8");
    bind_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
               "\"data_offsets\":[0,8]}}", 0, 8,
               "tensor 'w': F32 [4294967296, 4294967296] needs 7.38e+19 bytes, "
               "data_offsets span 8");
    bind_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 0, 8,
               "lie outside");
    bind_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 0, 8,
               "tensor 'w': 'data_offsets' must be [begin, end]");
    bind_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8,
               "shape entries must be non-negative integers");
    bind_fails("{\"w\":{\"dtype\":\"X9\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8,
               "tensor 'w' has unknown dtype 'X9'");
    bind_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               0, 8, "tensor 'w' appears more than once");
    bind_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 0, 8,
               "invalid safetensors header: byte 53: expected ',' or '}' in object");
    bind_fails("[1, 2]", 0, 8, "the header is not a JSON object");
    bind_fails("{\"w\":[]}", 0, 8, "tensor 'w': expected an object, got array");
    bind_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2,2,2,2,2,2],\"data_offsets\":[0,8]}}",
               0, 8, "has 7 dimensions; at most 6 are supported");
    bind_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               0, 12, "tensors 'w' and 'v' overlap: data_offsets [0, 8] and [4, 12]");
    bind_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               0, 8, "tensors 'v' and 'w' overlap: data_offsets [0, 8] and [0, 8]");
    const char *path = tmp_path("short.safetensors");
    write_bytes(path, "abc", 3);
    Graph *g = ir_graph_new("empty");
    Captured c;
    capture(&c);
    assert_false(fe_bind_safetensors(g, path, &c.d));
    assert_has(&c, "not a safetensors file: too short for a header");
    assert_false(fe_bind_safetensors(g, tmp_path("absent.safetensors"), &c.d));
    assert_has(&c, "cannot open weights: No such file or directory");
    assert_false(fe_bind_safetensors(g, tmpdir, &c.d));
    assert_has(&c, "cannot read weights: is a directory");
    assert_false(fe_bind_safetensors(g, "/dev/null", &c.d));
    assert_has(&c, "/dev/null: error: cannot read weights: not a regular file");
    release(&c);
    ir_graph_free(g);
}

/* A tensor inside another's bytes is refused with both names, one error per
 * tensor that overlaps the furthest-reaching one before it; empty tensors and
 * tensors that only touch are fine. */
static void test_safetensors_overlaps(void **state)
{
    static const unsigned char zeros[32];
    const char *path = tmp_path("overlap.safetensors");
    write_st(path,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
             "\"c\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},"
             "\"d\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[20,32]},"
             "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[24,24]}}",
             0, zeros, sizeof zeros);
    Graph *g = params_graph(5, (const char *[]){"a", "b", "c", "d", "e"},
                            (int32_t[]){1, 1, 1, 1, 1},
                            (const int64_t[][4]){{4}, {1}, {2}, {3}, {0}});
    Captured c;
    capture(&c);
    assert_false(fe_bind_safetensors(g, path, &c.d));
    char want[4096];
    snprintf(want, sizeof want,
             "%s: error: tensors 'a' and 'b' overlap: data_offsets [0, 16] and [4, 8]\n"
             "%s: error: tensors 'a' and 'c' overlap: data_offsets [0, 16] and [12, 20]\n",
             path, path);
    fflush(c.f);
    assert_string_equal(c.text, want);
    assert_int_equal(c.d.nerrors, 2);
    release(&c);
    ir_graph_free(g);
}

/* A PyTorch state_dict (tests/data/weights/make.py) binds by torchvision's
 * names, its num_batches_tracked skipped, and the interpreter then computes
 * what PyTorch computed. */
static void check_torch_file(const char *weights, const char *output, float tol)
{
    Graph *g = small_net(false);
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(fe_bind_safetensors(g, weights, &d));
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);
    NpyArray x, want;
    char err[512];
    assert_true(ir_npy_read(CNNC_SOURCE_DIR "/tests/data/weights/input.npy", &x, err, sizeof err));
    assert_true(ir_npy_read(output, &want, err, sizeof err));
    InterpResult res;
    const float *inputs[1] = {x.data};
    assert_true(ir_interp(g, inputs, &res, err, sizeof err));
    const float *got = res.values[g->outputs[0].node];
    assert_int_equal(want.dims[1], 10);
    for (int i = 0; i < 10; i++)
        assert_float_equal(got[i], want.data[i], tol);
    ir_interp_free(&res);
    free(x.data);
    free(want.data);
    ir_graph_free(g);
}

static void test_safetensors_from_pytorch(void **state)
{
    check_torch_file(CNNC_SOURCE_DIR "/tests/data/weights/small_net.safetensors",
                     CNNC_SOURCE_DIR "/tests/data/weights/output.npy", 1e-5f);
    check_torch_file(CNNC_SOURCE_DIR "/tests/data/weights/small_net_f16.safetensors",
                     CNNC_SOURCE_DIR "/tests/data/weights/output_f16.npy", 1e-5f);
}

/* Random byte changes in a valid file's first bytes: binding fails or
 * succeeds, but never crashes or reads out of bounds (run under ASan). */
static void test_safetensors_mutations(void **state)
{
    Graph *g = small_net(false);
    fe_random_weights(g, 2);
    char err[512], path[1024];
    snprintf(path, sizeof path, "%s", tmp_path("mutant.safetensors"));
    assert_true(fe_write_safetensors(g, path, err, sizeof err));
    FILE *f = fopen(path, "rb");
    static unsigned char orig[1 << 15], buf[1 << 15];
    size_t n = fread(orig, 1, sizeof orig, f);
    fclose(f);
    Rng r = ir_rng(11, "mutations");
    int bound = 0;
    for (int iter = 0; iter < 300; iter++) {
        memcpy(buf, orig, n);
        for (int k = 0, flips = 1 + (int)(ir_rng_next(&r) % 4); k < flips; k++)
            buf[ir_rng_next(&r) % 700] = (unsigned char)ir_rng_next(&r);
        size_t len = iter % 10 == 9 ? ir_rng_next(&r) % n : n;
        write_bytes(path, buf, len);
        Graph *h = small_net(true);
        Diag d;
        ir_diag_init(&d, NULL);
        bool ok = fe_bind_safetensors(h, path, &d);
        assert_true(ok == (d.nerrors == 0));
        bound += ok;
        ir_diag_fini(&d);
        ir_graph_free(h);
    }
    print_message("%d of 300 mutated files still bound\n", bound);
    ir_graph_free(g);
}

static void test_safetensors_write_failure(void **state)
{
    Graph *g = small_net(false);
    fe_random_weights(g, 1);
    char err[512];
    assert_false(fe_write_safetensors(g, tmp_path("missing/dir/x.safetensors"), err, sizeof err));
    assert_non_null(strstr(err, "No such file or directory"));
    ir_graph_free(g);
}

/* ---- random weights on the zoo ------------------------------------------ */

/* With random weights and a uniform[-1, 1] input, each output's largest
 * magnitude stays between 1e-2 and 1e3: values that neither vanish nor
 * explode, so benchmarks and numerical tests exercise real arithmetic. */
/* The reference interpreter runs VGG-16 and ResNet-50 for minutes under the
 * sanitizers; there only their weights are generated. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static void check_model(const char *file, bool heavy)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s", CNNC_SOURCE_DIR, file);
    if (access(path, R_OK) != 0) {
        print_message("skipping: %s does not exist\n", path);
        skip();
    }
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = fe_load_file(path, &(FeOptions){.batch = 1}, &d);
    assert_non_null(g);
    fe_random_weights(g, 1);
    if (heavy && SANITIZED) {
        print_message("%s: interpreter run skipped in a sanitizer build\n", file);
        ir_graph_free(g);
        ir_diag_fini(&d);
        return;
    }
    int32_t nin = ir_num_inputs(g);
    float **in = ir_xcalloc((size_t)nin, sizeof *in);
    for (int32_t i = 0; i < nin; i++) {
        const Node *node = &g->nodes[ir_input_node(g, i)];
        int64_t n = ir_numel(&node->type);
        in[i] = ir_xmalloc((size_t)n * sizeof(float));
        Rng r = ir_rng(1, node->name);
        for (int64_t k = 0; k < n; k++)
            in[i][k] = (float)(2.0 * ir_rng_uniform(&r) - 1.0);
    }
    InterpResult res;
    char err[512];
    bool ok = ir_interp(g, (const float *const *)in, &res, err, sizeof err);
    if (!ok)
        print_error("%s\n", err);
    assert_true(ok);
    for (int32_t o = 0; o < g->noutputs; o++) {
        int32_t id = g->outputs[o].node;
        double max = 0;
        for (int64_t k = 0; k < ir_numel(&g->nodes[id].type); k++)
            max = fmax(max, fabs(res.values[id][k]));
        print_message("%s: output '%s' max |value| = %.4g\n", file, g->outputs[o].name, max);
        assert_true(max >= 1e-2 && max <= 1e3);
    }
    ir_interp_free(&res);
    for (int32_t i = 0; i < nin; i++)
        free(in[i]);
    free(in);
    ir_graph_free(g);
    ir_diag_fini(&d);
}

static void test_zoo_resnet50(void **state)
{
    check_model("resnet50.cnn", true);
}

static void test_zoo_vgg16(void **state)
{
    check_model("vgg16.cnn", true);
}

static void test_zoo_mobilenet_v2(void **state)
{
    check_model("mobilenet_v2.cnn", false);
}

static void test_zoo_squeezenet1_1(void **state)
{
    check_model("squeezenet1_1.cnn", false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_values),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_json_depth_limit),
        cmocka_unit_test(test_json_truncations),
        cmocka_unit_test(test_random_weights_deterministic),
        cmocka_unit_test(test_random_weights_scales),
        cmocka_unit_test(test_safetensors_round_trip),
        cmocka_unit_test(test_safetensors_bytes),
        cmocka_unit_test(test_safetensors_conversions),
        cmocka_unit_test(test_safetensors_all_errors),
        cmocka_unit_test(test_safetensors_corrupt),
        cmocka_unit_test(test_safetensors_overlaps),
        cmocka_unit_test(test_safetensors_mismatch_summary),
        cmocka_unit_test(test_safetensors_from_pytorch),
        cmocka_unit_test(test_safetensors_mutations),
        cmocka_unit_test(test_safetensors_write_failure),
        cmocka_unit_test(test_zoo_resnet50),
        cmocka_unit_test(test_zoo_vgg16),
        cmocka_unit_test(test_zoo_mobilenet_v2),
        cmocka_unit_test(test_zoo_squeezenet1_1),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
