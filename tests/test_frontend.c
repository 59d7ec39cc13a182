/* test_frontend.c: the cnnc language from text to graph. Tokens and their
 * locations, the newline rules and precedence (through the AST printer), the
 * names and shapes elaboration gives (sequences, repeat, blocks, includes,
 * --batch, outputs), and the exact message and place of many mistakes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ast.h"
#include "frontend.h"

/* ---- helpers ------------------------------------------------------------------ */

typedef struct Loaded {
    Graph *g;
    char *text; /* everything the diagnostics printed */
    size_t len;
    int nerrors;
} Loaded;

static Loaded load_with(const char *name, const char *src, int64_t batch)
{
    Loaded r = {0};
    FILE *out = open_memstream(&r.text, &r.len);
    assert_non_null(out);
    Diag d;
    ir_diag_init(&d, out);
    FeOptions opt = {.batch = batch};
    r.g = fe_load_string(name, src, &opt, &d);
    r.nerrors = d.nerrors;
    ir_diag_fini(&d);
    fclose(out);
    return r;
}

static Loaded load(const char *src)
{
    return load_with("t.cnn", src, 0);
}

static void unload(Loaded *r)
{
    ir_graph_free(r->g);
    free(r->text);
}

/* Loads a model that must elaborate without a word. */
static Graph *good(const char *src)
{
    Loaded r = load(src);
    if (!r.g || r.len)
        fail_msg("unexpected diagnostics:\n%s", r.text);
    free(r.text);
    return r.g;
}

/* The diagnostics without the quoted source lines: "file:l:c: error: ..." only. */
static char *headers(const char *text)
{
    size_t n = strlen(text);
    char *out = calloc(n + 1, 1), *o = out;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (strncmp(p, " ", 1) != 0) {
            memcpy(o, p, len);
            o += len;
        }
        p += len;
    }
    return out;
}

/* Loading `src` must fail with exactly these message lines. */
static void expect_errors(const char *src, const char *expected)
{
    Loaded r = load(src);
    char *h = headers(r.text);
    if (strcmp(h, expected) != 0)
        fail_msg("diagnostics differ.\nexpected:\n%s\ngot:\n%s", expected, h);
    assert_null(r.g);
    assert_true(r.nerrors > 0);
    free(h);
    unload(&r);
}

static const Node *node(const Graph *g, const char *name)
{
    int32_t i = ir_find_node(g, name);
    if (i < 0)
        fail_msg("no node named '%s'", name);
    return &g->nodes[i];
}

static void expect_type(const Graph *g, const char *name, const char *type)
{
    char buf[128];
    assert_string_equal(ir_type_str(&node(g, name)->type, buf, sizeof buf), type);
}

/* Only the names of nodes that are not parameters, joined by spaces. */
static char *layer_names(const Graph *g)
{
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op != OP_PARAM)
            fprintf(f, "%s%s", ftell(f) ? " " : "", g->nodes[i].name);
    fclose(f);
    return text;
}

static void expect_layers(const char *src, const char *names)
{
    Graph *g = good(src);
    char *got = layer_names(g);
    assert_string_equal(got, names);
    free(got);
    ir_graph_free(g);
}

/* ---- lexer --------------------------------------------------------------------- */

static char *tokens(const char *src)
{
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    Diag d;
    ir_diag_init(&d, f);
    fe_dump_tokens("t.cnn", src, f, &d);
    ir_diag_fini(&d);
    fclose(f);
    return text;
}

static void expect_tokens(const char *src, const char *expected)
{
    char *got = tokens(src);
    assert_string_equal(got, expected);
    free(got);
}

static void test_tokens_and_locations(void **state)
{
    (void)state;
    expect_tokens("x = conv2d(in, 64, kernel=3) as c1 # note\n",
                  "1:1 identifier 'x'\n1:3 '='\n1:5 identifier 'conv2d'\n1:11 '('\n"
                  "1:12 'in'\n1:14 ','\n1:16 integer 64\n1:18 ','\n"
                  "1:20 identifier 'kernel'\n1:26 '='\n1:27 integer 3\n1:28 ')'\n"
                  "1:30 'as'\n1:33 identifier 'c1'\n2:1 end of file\n");
    expect_tokens("a == b // 2 != 1.5e-3\n\t\"same\" <= -x",
                  "1:1 identifier 'a'\n1:3 '=='\n1:6 identifier 'b'\n1:8 '//'\n"
                  "1:11 integer 2\n1:13 '!='\n1:16 number 0.0015\n1:22 end of line\n"
                  "2:2 string \"same\"\n2:9 '<='\n2:12 '-'\n2:13 identifier 'x'\n"
                  "2:14 end of file\n");
}

static void test_newline_rules(void **state)
{
    (void)state;
    /* Inside ( ) and [ ]: no newlines; after '{' ',' and operators, before
     * '}' and 'else', and blank or comment lines: dropped. */
    expect_tokens("f(a,\n  b)\n\n# c\nx = [1,\n 2]\n",
                  "1:1 identifier 'f'\n1:2 '('\n1:3 identifier 'a'\n1:4 ','\n"
                  "2:3 identifier 'b'\n2:4 ')'\n2:5 end of line\n5:1 identifier 'x'\n"
                  "5:3 '='\n5:5 '['\n5:6 integer 1\n5:7 ','\n6:2 integer 2\n6:3 ']'\n"
                  "7:1 end of file\n");
    expect_tokens("if c {\n  x\n}\nelse {\n}\n",
                  "1:1 'if'\n1:4 identifier 'c'\n1:6 '{'\n2:3 identifier 'x'\n3:1 '}'\n"
                  "4:1 'else'\n4:6 '{'\n5:1 '}'\n6:1 end of file\n");
    /* A '{' inside brackets (a sequence body) makes newlines count again. */
    expect_tokens("f(s(x) {\n a\n b\n})",
                  "1:1 identifier 'f'\n1:2 '('\n1:3 identifier 's'\n1:4 '('\n"
                  "1:5 identifier 'x'\n1:6 ')'\n1:8 '{'\n2:2 identifier 'a'\n"
                  "2:3 end of line\n3:2 identifier 'b'\n4:1 '}'\n4:2 ')'\n4:3 end of file\n");
}

/* ---- parser ---------------------------------------------------------------------- */

static char *parsed(const char *src)
{
    Arena *a = ir_arena_new();
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    Diag d;
    ir_diag_init(&d, f);
    AstFile *ast = fe_parse(a, &d, "t.cnn", src, strlen(src));
    if (ast)
        ast_print_file(ast, f);
    ir_diag_fini(&d);
    fclose(f);
    ir_arena_free(a);
    return text;
}

static void expect_parse(const char *src, const char *expected)
{
    char *got = parsed(src);
    assert_string_equal(got, expected);
    free(got);
}

static void test_parse_precedence(void **state)
{
    (void)state;
    expect_parse("network n() { x = 1 + 2 * -3 // 4 == 5 and not a or b ? c : d }",
                 "network n() {(= x (? (or (and (== (+ 1 (// (* 2 (- 3)) 4)) 5) (not a)) b) c "
                 "d))}\n");
    expect_parse("network n() { y = relu(conv2d(x, 8, kernel=[3, 3]) as c)[0] as r }",
                 "network n() {(= y (as (index (call relu (as (call conv2d x 8 kernel=[3 3]) c)) "
                 "0) r))}\n");
    expect_parse("network n() { return repeat 2 f(x, s = first ? 2 : 1) as l, x }",
                 "network n() {(return (as (repeat 2 (call f x s=(? first 2 1))) l) x)}\n");
}

static void test_parse_statements(void **state)
{
    (void)state;
    expect_parse("include \"lib.cnn\"\n"
                 "block b(x, n = 2,) {\n  if n > 1 { return x }\n  else if n { x = 1 }\n"
                 "  else { for i in range(n) { x = x } }\n  return x\n}\n"
                 "network m(image: f32[N=1, 3, 8, 8]) {\n"
                 "  y = sequence s(image) { conv2d(4, kernel=1); relu\n bn }\n  return y\n}\n",
                 "include \"lib.cnn\"\n"
                 "block b(x, n=2) {(if (> n 1) {(return x)} else {(if n {(= x 1)} else {(for i "
                 "(call range n) {(= x x)})})}); (return x)}\n"
                 "network m(image: f32[N=1, 3, 8, 8]) {(= y (sequence s image {(call conv2d 4 "
                 "kernel=1); relu; bn})); (return y)}\n");
}

static void test_syntax_errors_all_reported(void **state)
{
    (void)state;
    expect_errors("network n(x: f32[1, 3, 8, 8]) {\n"
                  "  y = conv2d(x, 8, kernel=3 +)\n"
                  "  z = relu(y))\n"
                  "  w = relu(z\n"
                  "  return w\n"
                  "}\n",
                  "t.cnn:2:30: error: syntax error: unexpected ')', expected an expression\n"
                  "t.cnn:3:14: error: syntax error: unexpected ')', expected end of line or '}'\n"
                  "t.cnn:5:3: error: syntax error: unexpected 'return', expected ')' or ','\n");
    expect_errors("network n(x: f32[1]) {\n  y = relu(x) @ 2\n  s = \"open\n  return y\n",
                  "t.cnn:2:15: error: unexpected character '@'\n"
                  "t.cnn:3:7: error: unterminated string\n"
                  "t.cnn:5:1: error: syntax error: unexpected end of file, expected '}'\n");
}

/* ---- elaboration: names and shapes ----------------------------------------------- */

static void test_mnist_shapes_and_names(void **state)
{
    (void)state;
    Graph *g = good("network mnist(image: f32[N=1, 1, 28, 28]) {\n"
                    "  x = relu(conv2d(image, 32, kernel=3) as conv1)\n"
                    "  x = relu(conv2d(x, 64, kernel=3) as conv2)\n"
                    "  x = maxpool(x, kernel=2)\n"
                    "  x = relu(dense(flatten(x), 128, in_features=9216) as fc1)\n"
                    "  return dense(x, 10) as fc2\n"
                    "}\n");
    assert_string_equal(g->name, "mnist");
    expect_type(g, "conv1.weight", "f32[32,1,3,3]");
    expect_type(g, "conv1.bias", "f32[32]");
    expect_type(g, "conv2", "f32[1,64,24,24]");
    expect_type(g, "maxpool_0", "f32[1,64,12,12]");
    expect_type(g, "fc1.weight", "f32[128,9216]");
    expect_type(g, "fc2", "f32[1,10]");
    assert_int_equal(g->noutputs, 1);
    assert_string_equal(g->outputs[0].name, "fc2");
    assert_int_equal(node(g, "conv1")->loc.line, 2);
    assert_int_equal(node(g, "conv1")->loc.col, 12);
    assert_string_equal(node(g, "conv1")->loc.file, "t.cnn");
    ir_graph_free(g);
}

static void test_sequence_numbering(void **state)
{
    (void)state;
    /* Activations and dropout take indices; assignments do not; a named stage
     * takes none; a nested named sequence opens its own numbering, an
     * anonymous one continues the enclosing numbering. */
    expect_layers("network n(x: f32[1, 3, 8, 8]) {\n"
                  "  return sequence f(x) {\n"
                  "    conv2d(4, kernel=1); relu; k = 3\n"
                  "    dropout(p=0.1); conv2d(4, kernel=k, pad=1) as mid\n"
                  "    sequence inner { batchnorm; relu6 }\n"
                  "    sequence { sigmoid }\n"
                  "    for i in range(2) { if i == 1 { tanh } else { silu } }\n"
                  "    k > 2 ? relu : sigmoid\n"
                  "  }\n"
                  "}\n",
                  "x f.0 f.1 f.2 f.mid f.inner.0 f.inner.1 f.3 f.4 f.5 f.6");
}

static void test_nested_blocks_in_sequence(void **state)
{
    (void)state;
    /* MobileNetV2's shape of names: a block stage K whose anonymous sequence
     * numbers inside K, and a named sequence inside a block. */
    expect_layers("block cbr(x, out) {\n"
                  "  return sequence(x) { conv2d(out, kernel=1, bias=false); batchnorm; relu6 }\n"
                  "}\n"
                  "block ir(x, out) {\n"
                  "  y = sequence conv(x) { cbr(out); conv2d(out, kernel=1) }\n"
                  "  return y + x\n"
                  "}\n"
                  "network n(x: f32[1, 4, 8, 8]) {\n"
                  "  return sequence features(x) { cbr(4); ir(4) }\n"
                  "}\n",
                  "x features.0.0 features.0.1 features.0.2 features.1.conv.0.0 "
                  "features.1.conv.0.1 features.1.conv.0.2 features.1.conv.1 features.1.add_0");
}

static void test_repeat_first_index(void **state)
{
    (void)state;
    Graph *g = good("block b(x, c, stride = 1) {\n"
                    "  return relu(conv2d(x, c, kernel=1, stride=stride) as conv)\n"
                    "}\n"
                    "network n(x: f32[1, 2, 16, 16]) {\n"
                    "  y = repeat 3 b(x, 4 + index, stride = first ? 2 : 1) as layer\n"
                    "  z = repeat 2 b(y, 6)\n"
                    "  w = sequence s(z) { repeat 2 conv2d(3 - index, kernel=1) }\n"
                    "  return y, z, w\n"
                    "}\n");
    expect_type(g, "layer.0.conv", "f32[1,4,8,8]");
    expect_type(g, "layer.1.conv.weight", "f32[5,4,1,1]");
    expect_type(g, "layer.2.conv", "f32[1,6,8,8]");
    expect_type(g, "b_0.conv", "f32[1,6,8,8]");
    expect_type(g, "b_1.relu_0", "f32[1,6,8,8]");
    expect_type(g, "s.0", "f32[1,3,8,8]");
    expect_type(g, "s.1", "f32[1,2,8,8]");
    assert_int_equal(g->noutputs, 3);
    assert_string_equal(g->outputs[0].name, "y");
    assert_string_equal(g->outputs[2].name, "w");
    assert_int_equal(g->outputs[0].node, ir_find_node(g, "layer.2.relu_0"));
    ir_graph_free(g);
}

static void test_blocks_defaults_keywords_control(void **state)
{
    (void)state;
    Graph *g = good("block unit(x, out, hidden = out * 2, act = relu) {\n"
                    "  y = conv2d(x, hidden, kernel=1) as expand\n"
                    "  y = act(y)\n"
                    "  if channels(x) == out and hidden > out {\n"
                    "    return y\n"
                    "  } else if hidden == out {\n"
                    "    return x\n"
                    "  }\n"
                    "  return conv2d(y, out, kernel=1) as project\n"
                    "}\n"
                    "network n(x: f32[N=1, 4, 8, 8]) {\n"
                    "  a = unit(x, 4)\n"
                    "  b = unit(a, hidden=8, out=6, act=relu6) as second\n"
                    "  sizes = [2, 3]\n"
                    "  for s in sizes + [max(1, len(sizes))] { b = conv2d(b, s, kernel=1) }\n"
                    "  return b\n"
                    "}\n");
    expect_type(g, "unit_0.expand", "f32[1,8,8,8]");
    expect_type(g, "unit_0.relu_0", "f32[1,8,8,8]");
    expect_type(g, "second.relu6_0", "f32[1,8,8,8]");
    expect_type(g, "second.project", "f32[1,6,8,8]");
    expect_type(g, "conv2d_0", "f32[1,2,8,8]");
    expect_type(g, "conv2d_1", "f32[1,3,8,8]");
    expect_type(g, "conv2d_2", "f32[1,2,8,8]");
    assert_int_equal(ir_find_node(g, "unit_0.project"), -1);
    assert_string_equal(g->outputs[0].name, "b");
    ir_graph_free(g);
}

/* A tensor and a number make one affine layer; two tensors sub or div. */
static void test_tensor_arithmetic(void **state)
{
    (void)state;
    Graph *g = good("network n(x: f32[1, 8, 4, 4]) {\n"
                    "  a = x + 3; b = 3 + x; c = x - 1; d = 2 - x; e = x * 0.5; f = x / 4\n"
                    "  g = x - global_avgpool(x); h = global_avgpool(x) / x; k = sub(x, x)\n"
                    "  return a, b, c, d, e, f, g, h, k\n"
                    "}\n");
    const struct {
        const char *name;
        float scale, shift;
    } aff[] = {{"add_0", 1, 3}, {"add_1", 1, 3}, {"sub_0", 1, -1},
               {"sub_1", -1, 2}, {"mul_0", 0.5f, 0}, {"div_0", 0.25f, 0}};
    for (size_t i = 0; i < sizeof aff / sizeof aff[0]; i++) {
        const Node *n = node(g, aff[i].name);
        assert_int_equal(n->op, OP_AFFINE);
        assert_float_equal(n->attrs.affine.scale, aff[i].scale, 0.0);
        assert_float_equal(n->attrs.affine.shift, aff[i].shift, 0.0);
    }
    assert_int_equal(node(g, "sub_2")->op, OP_SUB);
    assert_int_equal(node(g, "div_1")->op, OP_DIV);
    expect_type(g, "div_1", "f32[1,8,4,4]");
    assert_int_equal(node(g, "sub_3")->op, OP_SUB);
    ir_graph_free(g);
    g = good("network n(x: f32[1, 8]) {\n  return gelu(x), gelu(x, approximate=\"tanh\")\n}\n");
    assert_false(node(g, "gelu_0")->attrs.gelu.tanh);
    assert_true(node(g, "gelu_1")->attrs.gelu.tanh);
    ir_graph_free(g);
    expect_errors("network n(x: f32[1, 8]) {\n  return gelu(x, approximate=true)\n}\n",
                  "t.cnn:2:30: error: approximate expects \"none\" or \"tanh\", got true\n");
    expect_errors("network n(x: f32[1, 8, 4, 4]) {\n  return x / 0, 1 / x, x - \"a\"\n}\n",
                  "t.cnn:2:12: error: '/' with 0 gives a factor or offset that is not a "
                  "finite f32\n"
                  "t.cnn:2:19: error: cannot apply '/' to an int and a tensor\n"
                  "t.cnn:2:26: error: cannot apply '-' to a tensor and a string\n");
}

static void test_layer_attributes(void **state)
{
    (void)state;
    Graph *g = good("network n(x: f32[1, 8, 15, 15]) {\n"
                    "  a = conv2d(x, 8, kernel=3, stride=2, pad=\"same\", groups=8, bias=false)\n"
                    "  b = maxpool(x, kernel=3, stride=2, ceil_mode=true)\n"
                    "  c = avgpool(x, kernel=[3, 1], pad=[1, 0], count_include_pad=false)\n"
                    "  d = adaptive_avgpool(x, [2, 3])\n"
                    "  e = leaky_relu(clip(x, -1, 2.5), alpha=0.2)\n"
                    "  f = softmax(flatten(x, axis=2))\n"
                    "  g = concat(d, d, axis=-1)\n"
                    "  h = batchnorm(x, eps=0.001) * global_avgpool(x)\n"
                    "  return a, b, c, d, e, f, g, h\n"
                    "}\n");
    const Node *a = node(g, "conv2d_0");
    assert_int_equal(a->ninputs, 2);
    assert_int_equal(a->attrs.conv.groups, 8);
    int32_t pad[4] = {1, 1, 1, 1}; /* out 8 = ceil(15/2): 7*2+3-15 = 2 */
    assert_memory_equal(a->attrs.conv.pad, pad, sizeof pad);
    expect_type(g, "conv2d_0.weight", "f32[8,1,3,3]");
    expect_type(g, "conv2d_0", "f32[1,8,8,8]");
    assert_true(node(g, "maxpool_0")->attrs.pool.ceil_mode);
    expect_type(g, "maxpool_0", "f32[1,8,7,7]");
    assert_false(node(g, "avgpool_0")->attrs.pool.count_include_pad);
    expect_type(g, "avgpool_0", "f32[1,8,5,15]");
    expect_type(g, "adaptive_avgpool_0", "f32[1,8,2,3]");
    assert_float_equal(node(g, "clip_0")->attrs.clip.lo, -1.0, 0.0);
    assert_float_equal(node(g, "clip_0")->attrs.clip.hi, 2.5, 0.0);
    assert_float_equal(node(g, "leaky_relu_0")->attrs.leaky.alpha, 0.2, 1e-7);
    expect_type(g, "flatten_0", "f32[8,225]");
    expect_type(g, "concat_0", "f32[1,8,2,6]");
    assert_float_equal(node(g, "batchnorm_0")->attrs.bn.eps, 0.001, 1e-9);
    expect_type(g, "mul_0", "f32[1,8,15,15]");
    ir_graph_free(g);
}

static void test_value_functions(void **state)
{
    (void)state;
    Graph *g = good("network n(x: f32[2, 3, 10, 12]) {\n"
                    "  s = shape(x)\n"
                    "  k = height(x) // 5 + width(x) % 5 + dim(x, -4) + len(range(1, 4))\n"
                    "  c = min([channels(x), 9, 4]) * 2\n"
                    "  return conv2d(x, c + s[0], kernel=k)\n"
                    "}\n");
    /* k = 2 + 2 + 2 + 3 = 9, out = 6 + 2 */
    expect_type(g, "conv2d_0", "f32[2,8,2,4]");
    ir_graph_free(g);
}

static void test_batch_override(void **state)
{
    (void)state;
    Loaded r = load_with("t.cnn",
                         "network n(a: f32[N=1, 4], b: f32[B=2, 3, 2, 2]) {\n"
                         "  return dense(a, 2) as fc, relu(b)\n"
                         "}\n", 8);
    assert_non_null(r.g);
    expect_type(r.g, "a", "f32[8,4]");
    expect_type(r.g, "b", "f32[8,3,2,2]");
    expect_type(r.g, "fc", "f32[8,2]");
    assert_string_equal(r.g->outputs[1].name, "relu_0");
    unload(&r);
    r = load_with("t.cnn", "network n(image: f32[1, 3]) {\n  return relu(image)\n}\n", 4);
    char *h = headers(r.text);
    assert_string_equal(h, "t.cnn:1:22: error: input 'image' has a fixed batch dimension 1; "
                           "write N=1 to let --batch change it\n");
    assert_null(r.g);
    free(h);
    unload(&r);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_include(void **state)
{
    (void)state;
    char dir[] = "/tmp/cnnc_fe_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char main_path[64], sub[64], lib[64], lib2[64];
    snprintf(main_path, sizeof main_path, "%s/main.cnn", dir);
    snprintf(sub, sizeof sub, "%s/lib", dir);
    snprintf(lib, sizeof lib, "%s/lib/a.cnn", dir);
    snprintf(lib2, sizeof lib2, "%s/lib/b.cnn", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    write_file(main_path, "include \"lib/a.cnn\"\ninclude \"lib/b.cnn\"\n"
                          "network n(x: f32[1, 2, 4, 4]) { return twice(x) as t }\n");
    /* b.cnn includes a.cnn again (relative to lib/), and a.cnn includes b.cnn:
     * each is read once. */
    write_file(lib, "include \"b.cnn\"\nblock twice(x) { return once(once(x)) }\n");
    write_file(lib2, "include \"a.cnn\"\nblock once(x) { return relu(x) }\n");
    Diag d;
    char *text;
    size_t len;
    FILE *out = open_memstream(&text, &len);
    ir_diag_init(&d, out);
    Graph *g = fe_load_file(main_path, NULL, &d);
    fclose(out);
    if (!g)
        fail_msg("%s", text);
    expect_type(g, "t.once_1.relu_0", "f32[1,2,4,4]");
    ir_graph_free(g);
    free(text);

    write_file(lib2, "block once(x) {\n  return relu(x, 1)\n}\n");
    out = open_memstream(&text, &len);
    d.out = out;
    d.nerrors = 0;
    assert_null(fe_load_file(main_path, NULL, &d));
    fclose(out);
    char *h = headers(text);
    char expected[512];
    snprintf(expected, sizeof expected,
             "%s:2:18: error: relu takes 1 argument, got 2\n"
             "%s:2:30: note: in block 'once' (instance 't.once_0') called from here\n"
             "%s:3:40: note: in block 'twice' (instance 't') called from here\n",
             lib2, lib, main_path);
    assert_string_equal(h, expected);
    assert_non_null(strstr(text, "  return relu(x, 1)\n"));
    ir_diag_fini(&d);
    free(h);
    free(text);
    remove(lib);
    remove(lib2);
    remove(main_path);
    rmdir(sub);
    rmdir(dir);
}

/* ---- errors -------------------------------------------------------------------------- */

#define NET(body) "network n(x: f32[1, 3, 8, 8]) {\n" body "}\n"

static void test_errors_arguments(void **state)
{
    (void)state;
    expect_errors(NET("  y = conv2d(x, 8, kernel=3, strides=2)\n  return y\n"),
                  "t.cnn:2:30: error: unknown keyword 'strides' for conv2d; did you mean "
                  "'stride'?\n");
    expect_errors(NET("  y = conv2d(x, 8, kernel=\"3\")\n  return y\n"),
                  "t.cnn:2:27: error: kernel expects an int or a list of 2 ints, got \"3\"\n");
    expect_errors(NET("  y = conv2d(x, 8)\n  return y\n"),
                  "t.cnn:2:7: error: missing argument 'kernel' of conv2d\n");
    expect_errors(NET("  y = relu(x, 2)\n  return y\n"),
                  "t.cnn:2:15: error: relu takes 1 argument, got 2\n");
    expect_errors(NET("  y = sequence s(x) { relu(2) }\n  return y\n"),
                  "t.cnn:2:28: error: relu takes 1 argument, got 2 (counting the sequence's "
                  "current value)\n");
    expect_errors(NET("  y = conv2d(x, 8, kernel=3, stride=1, stride=2)\n  return y\n"),
                  "t.cnn:2:40: error: argument 'stride' of conv2d is given twice\n");
    expect_errors(NET("  y = conv2d(x, 8, kernel=3, stride=0, pad=-1)\n  return y\n"),
                  "t.cnn:2:37: error: stride must be positive, got 0\n"
                  "t.cnn:2:44: error: pad must be non-negative, got -1\n");
    expect_errors(NET("  y = conv2d(x, kernel=3, 8)\n  return y\n"),
                  "t.cnn:2:27: error: a positional argument cannot follow keyword arguments\n");
    expect_errors(NET("  y = dense(3, 10)\n  return y\n"),
                  "t.cnn:2:13: error: dense expects a tensor as 'x', got 3\n");
    /* A whole float shows its point, so it does not read as the int it is refused as. */
    expect_errors(NET("  y = conv2d(x, 32 * 0.5, kernel=1)\n  return y\n"),
                  "t.cnn:2:20: error: out expects an int, got 16.0\n");
}

/* The layers that reshape, split or normalize: every argument they reject. */
static void test_errors_new_layers(void **state)
{
    (void)state;
    expect_errors(NET("  y = chunk(x, 2, axis=0)[0]\n  return y\n"),
                  "t.cnn:2:24: error: chunk axis 0 is out of range for f32[1,3,8,8] (it must not "
                  "be the batch dim)\n");
    expect_errors(NET("  y = split(x, [1, 1])[0]\n  return y\n"),
                  "t.cnn:2:16: error: split sizes [1, 1] do not add up to the 3 elements of the "
                  "axis\n");
    expect_errors(NET("  y = permute(x, [0, 1, 2])\n  return y\n"),
                  "t.cnn:2:18: error: permute needs 4 dims for f32[1,3,8,8], got 3\n");
    expect_errors(NET("  y = permute(x, [1, 0, 2, 3])\n  return y\n"),
                  "t.cnn:2:18: error: permute dims [1, 0, 2, 3] must keep the batch dim 0 first\n");
    expect_errors(NET("  y = permute(x, [0, 1, 1, 3])\n  return y\n"),
                  "t.cnn:2:18: error: permute dims [0, 1, 1, 3] are not a permutation of 0 to "
                  "rank - 1\n");
    expect_errors(NET("  y = mean(x, [1, 2])\n  return y\n"),
                  "t.cnn:2:15: error: mean supports the spatial dims [2, 3] of a 4-d tensor; got "
                  "axes [1, 2] for f32[1,3,8,8]\n");
    expect_errors(NET("  y = parameter([3, 0])\n  return y\n"),
                  "t.cnn:2:17: error: shape expects a list of 1 to 6 positive ints, got [3, 0]\n");
    expect_errors(NET("  y = pad(x, \"same\")\n  return y\n"),
                  "t.cnn:2:14: error: pad takes an int or a list of 2 or 4 ints, not \"same\"\n");
    expect_errors(NET("  y = stochastic_depth(x, 0.1, mode=\"col\")\n  return y\n"),
                  "t.cnn:2:37: error: mode expects \"row\" or \"batch\", got \"col\"\n");
    expect_errors(NET("  y = dense(x, 4, axis=0)\n  return y\n"),
                  "t.cnn:2:24: error: dense axis 0 is out of range for f32[1,3,8,8] (it must not "
                  "be the batch dim)\n");
    expect_errors(NET("  y = layernorm(x, axis=4)\n  return y\n"),
                  "t.cnn:2:7: error: layernorm axis 4 is out of range for f32[1,3,8,8] (it must "
                  "not be the batch dim)\n");
    expect_errors(NET("  y = channel_shuffle(x, 2)\n  return y\n"),
                  "t.cnn:2:7: error: channel_shuffle groups=2 does not divide the 3 channels\n");
    expect_errors(NET("  y = (not true) as nope\n  return x\n"),
                  "t.cnn:2:21: error: 'as' names a layer or block, not a value\n");
}

static void test_errors_names(void **state)
{
    (void)state;
    expect_errors(NET("  y = relu(imgae)\n  return y\n"),
                  "t.cnn:2:12: error: undefined name 'imgae'\n");
    expect_errors("network n(image: f32[1, 3]) {\n  return relu(imgae)\n}\n",
                  "t.cnn:2:15: error: undefined name 'imgae'; did you mean 'image'?\n");
    expect_errors(NET("  y = batchnrom(x)\n  return y\n"),
                  "t.cnn:2:7: error: unknown layer or block 'batchnrom'; did you mean "
                  "'batchnorm'?\n");
    expect_errors(NET("  y = conv2d(x, 8, kernel=1) as c\n  z = relu(y) as c\n  return z\n"),
                  "t.cnn:3:18: error: name 'c' is already used in this scope\n"
                  "t.cnn:2:33: note: 'c' was first used here\n");
    expect_errors(NET("  return repeat 2 relu(first)\n"),
                  "t.cnn:2:24: error: relu expects a tensor as 'x', got true\n");
    expect_errors(NET("  return relu(index)\n"),
                  "t.cnn:2:15: error: 'index' is only defined in the arguments and name of a "
                  "repeated call\n");
}

/* Every parameter's name, in graph order, one a line. */
static char *param_names(const Graph *g)
{
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    for (int32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_PARAM)
            fprintf(f, "%s\n", g->nodes[i].name);
    fclose(f);
    return text;
}

/* torchvision's names as written: a reserved word after `as` or `sequence`,
 * a quoted name with '-', names computed from {EXPR}, repeat ... from. */
static void test_torchvision_names(void **state)
{
    (void)state;
    expect_tokens("y = f(x) as block\nsequence in",
                  "1:1 identifier 'y'\n1:3 '='\n1:5 identifier 'f'\n1:6 '('\n"
                  "1:7 identifier 'x'\n1:8 ')'\n1:10 'as'\n1:13 identifier 'block'\n"
                  "1:18 end of line\n2:1 'sequence'\n2:10 identifier 'in'\n2:12 end of file\n");
    expect_parse("network n() { y = repeat 2 from k + 1 f(x) as \"l{index}-{k}\" as else }",
                 "network n() {(= y (as (as (repeat 2 from (+ k 1) (call f x)) (name \"l\" index "
                 "\"-\" k)) else))}\n");
    Graph *g = good("block dense_layer(x, growth) {\n"
                    "  y = conv2d(relu(batchnorm(x) as norm1), growth, kernel=1, bias=false)"
                    " as conv1\n"
                    "  return concat(x, y)\n"
                    "}\n"
                    "network n(x: f32[1, 4, 8, 8]) {\n"
                    "  y = sequence features(x) {\n"
                    "    sequence block { conv2d(4, kernel=1) as \"block\" }\n"
                    "  }\n"
                    "  y = sequence \"block1-0\"(y) { conv2d(4, kernel=1, bias=false) as proj }\n"
                    "  for i in range(2) {\n"
                    "    y = dense_layer(y, 2) as \"denselayer{i+1}\"\n"
                    "  }\n"
                    "  y = repeat 2 from 3 dense_layer(y, 2) as \"denselayer{index}\"\n"
                    "  y = repeat 2 from 1 batchnorm(y) as in\n"
                    "  return y\n"
                    "}\n");
    char *names = param_names(g);
    assert_string_equal(names,
                        "features.block.block.weight\nfeatures.block.block.bias\n"
                        "block1-0.proj.weight\n"
                        "denselayer1.norm1.weight\ndenselayer1.norm1.bias\n"
                        "denselayer1.norm1.running_mean\ndenselayer1.norm1.running_var\n"
                        "denselayer1.conv1.weight\n"
                        "denselayer2.norm1.weight\ndenselayer2.norm1.bias\n"
                        "denselayer2.norm1.running_mean\ndenselayer2.norm1.running_var\n"
                        "denselayer2.conv1.weight\n"
                        "denselayer3.norm1.weight\ndenselayer3.norm1.bias\n"
                        "denselayer3.norm1.running_mean\ndenselayer3.norm1.running_var\n"
                        "denselayer3.conv1.weight\n"
                        "denselayer4.norm1.weight\ndenselayer4.norm1.bias\n"
                        "denselayer4.norm1.running_mean\ndenselayer4.norm1.running_var\n"
                        "denselayer4.conv1.weight\n"
                        "in.1.weight\nin.1.bias\nin.1.running_mean\nin.1.running_var\n"
                        "in.2.weight\nin.2.bias\nin.2.running_mean\nin.2.running_var\n");
    free(names);
    ir_graph_free(g);
}

/* Bad names are reported where written, once even in a loop; a reserved word
 * where it cannot be a name says what to do instead. */
static void test_errors_quoted_names(void **state)
{
    (void)state;
    expect_errors(NET("  a = relu(x) as \"a.b\"\n  b = relu(x) as \"\"\n"
                      "  c = relu(x) as \"c{i +}\"\n  d = relu(x) as \"d{\"\n  return a\n"),
                  "t.cnn:2:18: error: the name \"a.b\" contains '.': a name is one segment of a "
                  "path, and '.' joins them\n"
                  "t.cnn:3:18: error: the name \"\" is empty\n"
                  "t.cnn:4:24: error: syntax error: unexpected '}', expected an expression\n"
                  "t.cnn:5:20: error: '{' without '}' in a name\n");
    expect_errors(NET("  for i in range(3) {\n"
                      "    a = relu(x) as \"a{i / 2}\"\n"
                      "    b = relu(x) as \"b{nope}\"\n"
                      "    c = relu(x) as \"c{i}{\\\".\\\"}\"\n"
                      "  }\n"
                      "  e = repeat 2 from -1 relu(x) as r\n"
                      "  return e\n"),
                  "t.cnn:3:25: error: a part of a name must be an int or a string, not a float\n"
                  "t.cnn:4:23: error: undefined name 'nope'\n"
                  "t.cnn:5:20: error: the name computed here contains '.': a name is one "
                  "segment of a path, and '.' joins them\n"
                  "t.cnn:7:21: error: 'from' must be an int >= 0, got -1\n");
    expect_errors(NET("  block = relu(x)\n  return block\n"),
                  "t.cnn:2:3: error: syntax error: unexpected 'block', expected a statement or "
                  "'}'; 'block' is a reserved word: it can name a layer ('as block') but not a "
                  "variable or parameter, so choose another name here\n");
}

static void test_errors_blocks(void **state)
{
    (void)state;
    expect_errors("block a(x) { return b(x) }\nblock b(x) { return a(x) }\n" NET("  return a(x)\n"),
                  "t.cnn:2:21: error: block 'a' calls itself: a -> b -> a\n"
                  "t.cnn:1:21: note: in block 'b' (instance 'a_0.b_0') called from here\n"
                  "t.cnn:4:10: note: in block 'a' (instance 'a_0') called from here\n");
    expect_errors("block f(x) {\n  y = relu(x)\n}\n" NET("  return f(x)\n"),
                  "t.cnn:5:10: error: block 'f' ended without 'return'\n"
                  "t.cnn:1:7: note: 'f' is defined here\n");
    expect_errors("block f(x, stride = 1) { return x }\n" NET("  return f(x, strid=2)\n"),
                  "t.cnn:3:15: error: unknown keyword 'strid' for block 'f'; did you mean "
                  "'stride'?\n");
    expect_errors("block f(x) { return x }\nblock f(y) { return y }\n" NET("  return f(x)\n"),
                  "t.cnn:2:7: error: block 'f' is defined twice\n"
                  "t.cnn:1:7: note: the first definition of 'f' is here\n");
}

/* An error inside a block names the calls that led there, innermost first,
 * the block instance included; a long chain is cut after four. */
static void test_errors_call_chain(void **state)
{
    (void)state;
    expect_errors("block head(x) {\n  return dense(x, 10) as fc\n}\n"
                  "block body(x) { return sequence s(x) { relu; head } }\n"
                  NET("  y = repeat 2 body(x) as layer\n  return y\n"),
                  "t.cnn:2:10: error: dense expects a 2-d input [N, features], got "
                  "f32[1,3,8,8]; flatten it first, or give axis= to apply it over one dim\n"
                  "t.cnn:4:46: note: in block 'head' (instance 'layer.0.s.1') called from here\n"
                  "t.cnn:6:16: note: in block 'body' (instance 'layer.0') called from here\n");
    expect_errors("block b1(x) { return b2(x) }\nblock b2(x) { return b3(x) }\n"
                  "block b3(x) { return b4(x) }\nblock b4(x) { return b5(x) }\n"
                  "block b5(x) { return b6(x) }\nblock b6(x) { return relu(x, x) }\n"
                  NET("  return b1(x) as top\n"),
                  "t.cnn:6:30: error: relu takes 1 argument, got 2\n"
                  "t.cnn:5:22: note: in block 'b6' (instance 'top.b2_0.b3_0.b4_0.b5_0.b6_0') "
                  "called from here\n"
                  "t.cnn:4:22: note: in block 'b5' (instance 'top.b2_0.b3_0.b4_0.b5_0') called "
                  "from here\n"
                  "t.cnn:3:22: note: in block 'b4' (instance 'top.b2_0.b3_0.b4_0') called from "
                  "here\n"
                  "t.cnn:2:22: note: in block 'b3' (instance 'top.b2_0.b3_0') called from here\n"
                  "t.cnn:8:10: note: ... and 2 more calls, the outermost here\n");
}

static void test_errors_values(void **state)
{
    (void)state;
    /* int, round (halves to even), floor, ceil: the channel counts they give */
    Graph *g = good(NET("  c = [int(2.7), int(-2.7), round(2.5), round(3.5), floor(-1.5), ceil(1.2)]\n"
                        "  if c != [2, -2, 2, 4, -2, 2] { c = 1 // 0 }\n"
                        "  return conv2d(x, int(ceil(3 * 1.1 / 8)) * 8 + round(-2.5), kernel=1)"
                        " as c\n"));
    expect_type(g, "c", "f32[1,6,8,8]");
    ir_graph_free(g);
    expect_errors(NET("  return conv2d(x, int(1e30), kernel=1)\n"),
                  "t.cnn:2:24: error: int(1e+30) is not a 64-bit integer\n");
    expect_errors(NET("  return conv2d(x, floor(\"8\"), kernel=1)\n"),
                  "t.cnn:2:26: error: floor expects a number, got \"8\"\n");
    expect_errors(NET("  k = 3 // 0\n  return conv2d(x, 8, kernel=k)\n"),
                  "t.cnn:2:9: error: division by zero\n");
    expect_errors(NET("  s = [8, 16]\n  return conv2d(x, s[2], kernel=1)\n"),
                  "t.cnn:3:22: error: index 2 is out of range for a list of 2\n");
    expect_errors(NET("  if x { x = relu(x) }\n  return x\n"),
                  "t.cnn:2:6: error: a condition needs a bool, got a tensor f32[1,3,8,8]\n");
    expect_errors(NET("  return 1 / x\n"),
                  "t.cnn:2:12: error: cannot apply '/' to an int and a tensor\n");
    expect_errors(NET("  return repeat 0 relu(x) as r\n"),
                  "t.cnn:2:17: error: repeat count must be a positive int, got 0\n");
    expect_errors(NET("  return sequence s { relu }\n"),
                  "t.cnn:2:10: error: this sequence has no input; write 'sequence s(x) { ... "
                  "}'\n");
    expect_errors(NET("  y = relu(x)\n"), "t.cnn:1:9: error: network 'n' has no 'return'\n");
}

static void test_errors_shapes_and_inputs(void **state)
{
    (void)state;
    expect_errors("network m(image: f32[N=1, 1, 28, 28]) {\n"
                  "  x = maxpool(conv2d(image, 64, kernel=8), kernel=4)\n"
                  "  return dense(flatten(x), 128, in_features=9216) as fc1\n"
                  "}\n",
                  "t.cnn:3:10: error: dense expects 9216 input features, got 1600 (64×5×5)\n");
    expect_errors(NET("  return conv2d(x, 8, kernel=3, in_channels=4)\n"),
                  "t.cnn:2:10: error: conv2d expects 4 input channels, got 3\n");
    expect_errors("network n(x: f33[1, 0]) {\n  return relu(x)\n}\n",
                  "t.cnn:1:14: error: unknown element type 'f33'; did you mean 'f32'?\n"
                  "t.cnn:1:21: error: dimension 1 of input 'x' must be positive, got 0\n");
    expect_errors("block b(x) { return relu(x) }\n",
                  "t.cnn: error: no network in this file (it only defines blocks)\n");
    expect_errors("# nothing\n", "t.cnn: error: no network in this file\n");
    expect_errors(NET("  return x\n") NET("  return x\n"),
                  "t.cnn:4:9: error: a model has one network, and 'n' is a second one\n"
                  "t.cnn:1:9: note: the first is 'n'\n");
    expect_errors("include \"nope.cnn\"\n" NET("  return x\n"),
                  "t.cnn:1:9: error: cannot read 'nope.cnn': No such file or directory\n");
}

/* Independent mistakes are each reported once, and what depends on a failed
 * value stays quiet. */
static void test_errors_all_at_once(void **state)
{
    (void)state;
    expect_errors(NET("  a = conv2d(x, 8, kernel=3, strde=2) as a\n"
                      "  b = relu(undefined_thing)\n"
                      "  c = dense(x, 10) as fc\n"
                      "  d = relu(relu(c))\n"
                      "  e = maxpool(x, kernel=16)\n"
                      "  if channels(b) == 3 { f = 1 }\n"
                      "  return a, b, d, e\n"),
                  "t.cnn:2:30: error: unknown keyword 'strde' for conv2d; did you mean "
                  "'stride'?\n"
                  "t.cnn:3:12: error: undefined name 'undefined_thing'\n"
                  "t.cnn:4:7: error: dense expects a 2-d input [N, features], got f32[1,3,8,8]; "
                  "flatten it first, or give axis= to apply it over one dim\n"
                  "t.cnn:6:7: error: maxpool output would be empty: input 8×8 is smaller than "
                  "the 16×16 kernel with padding\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_and_locations),
        cmocka_unit_test(test_newline_rules),
        cmocka_unit_test(test_parse_precedence),
        cmocka_unit_test(test_parse_statements),
        cmocka_unit_test(test_syntax_errors_all_reported),
        cmocka_unit_test(test_mnist_shapes_and_names),
        cmocka_unit_test(test_sequence_numbering),
        cmocka_unit_test(test_nested_blocks_in_sequence),
        cmocka_unit_test(test_repeat_first_index),
        cmocka_unit_test(test_blocks_defaults_keywords_control),
        cmocka_unit_test(test_layer_attributes),
        cmocka_unit_test(test_tensor_arithmetic),
        cmocka_unit_test(test_value_functions),
        cmocka_unit_test(test_batch_override),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_errors_arguments),
        cmocka_unit_test(test_errors_new_layers),
        cmocka_unit_test(test_errors_names),
        cmocka_unit_test(test_torchvision_names),
        cmocka_unit_test(test_errors_quoted_names),
        cmocka_unit_test(test_errors_blocks),
        cmocka_unit_test(test_errors_call_chain),
        cmocka_unit_test(test_errors_values),
        cmocka_unit_test(test_errors_shapes_and_inputs),
        cmocka_unit_test(test_errors_all_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
