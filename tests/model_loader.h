/* model_loader.h: the graph tests start from: a zoo model (models/NAME.cnn) or
 * a model given as text, at a batch size, with deterministic random weights.
 * Include after cmocka.h. */
#ifndef CNNC_TEST_MODEL_LOADER_H
#define CNNC_TEST_MODEL_LOADER_H

#include <stdio.h>

#include "frontend.h"

static inline Graph *load_model(const char *name, const char *text, int64_t batch,
                                uint64_t seed)
{
    Diag d;
    ir_diag_init(&d, stderr);
    FeOptions fo = {.batch = batch};
    Graph *g;
    if (text) {
        g = fe_load_string(name, text, &fo, &d);
    } else {
        char path[512];
        snprintf(path, sizeof path, "%s/models/%s.cnn", CNNC_SOURCE_DIR, name);
        g = fe_load_file(path, &fo, &d);
    }
    assert_non_null(g);
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);
    fe_random_weights(g, seed);
    return g;
}

#endif
