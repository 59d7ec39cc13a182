/* test_clone.c: ir_graph_clone makes a copy that shares nothing with its
 * original: same text form and weights at first, and changes to either one
 * (names, attributes, data, nodes, outputs, freeing) leave the other alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "test_util.h"

static Graph *mnist(void)
{
    Diag d;
    ir_diag_init(&d, stderr);
    Graph *g = fe_load_file("models/mnist_cnn.cnn", NULL, &d);
    ir_diag_fini(&d);
    assert_non_null(g);
    fe_random_weights(g, 5);
    return g;
}

static void test_clone_is_equal(void **state)
{
    (void)state;
    Graph *g = mnist();
    Graph *c = ir_graph_clone(g);
    char *a = print_graph(g), *b = print_graph(c);
    assert_string_equal(a, b);
    assert_int_equal(c->nnodes, g->nnodes);
    assert_int_equal(c->noutputs, 1);
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i], *m = &c->nodes[i];
        assert_true(n->name != m->name);
        assert_int_equal(m->loc.line, n->loc.line);
        assert_string_equal(m->loc.file, n->loc.file);
        assert_true(n->loc.file != m->loc.file);
        if (n->op != OP_PARAM)
            continue;
        assert_non_null(m->data);
        assert_true(m->data != n->data);
        assert_memory_equal(m->data, n->data, (size_t)ir_numel(&n->type) * sizeof(float));
    }
    Diag d;
    ir_diag_init(&d, stderr);
    assert_true(ir_verify(c, &d));
    ir_diag_fini(&d);
    free(a);
    free(b);
    ir_graph_free(g);
    ir_graph_free(c);
}

static void test_clone_is_independent(void **state)
{
    (void)state;
    Graph *g = mnist();
    char *before = print_graph(g);
    int32_t w = ir_find_node(g, "conv1.weight");
    assert_true(w >= 0);
    float w0 = g->nodes[w].data[0];
    int32_t conv = ir_find_node(g, "conv1");
    assert_true(conv >= 0);

    Graph *c = ir_graph_clone(g);
    c->nodes[w].data[0] = w0 + 1.0f;
    c->nodes[conv].attrs.conv.stride[0] = 2;
    c->nodes[conv].inputs[0] = c->nodes[conv].inputs[0];
    c->nodes[conv].name = "renamed";
    int32_t r = ir_add_node(c, OP_RELU, &c->outputs[0].node, 1, "extra", (SrcLoc){0});
    c->outputs[0].node = r;
    ir_add_output(c, conv, "second");

    char *after = print_graph(g);
    assert_string_equal(before, after);
    assert_true(g->nodes[w].data[0] == w0);
    assert_int_equal(g->noutputs, 1);

    /* The copy lives on alone. */
    ir_graph_free(g);
    assert_int_equal(c->nodes[conv].attrs.conv.stride[0], 2);
    assert_true(c->nodes[w].data[0] == w0 + 1.0f);
    assert_string_equal(c->nodes[r].name, "extra");
    assert_string_equal(c->outputs[1].name, "second");
    free(before);
    free(after);
    ir_graph_free(c);
}

static void test_clone_empty(void **state)
{
    (void)state;
    Graph *g = ir_graph_new("empty");
    Graph *c = ir_graph_clone(g);
    assert_string_equal(c->name, "empty");
    assert_int_equal(c->nnodes, 0);
    assert_int_equal(c->noutputs, 0);
    int32_t id = ir_add_input(c, "x", ir_type_f32(2, (int64_t[]){1, 4}), (SrcLoc){0});
    assert_int_equal(id, 0);
    assert_int_equal(g->nnodes, 0);
    ir_graph_free(g);
    ir_graph_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clone_is_equal),
        cmocka_unit_test(test_clone_is_independent),
        cmocka_unit_test(test_clone_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
