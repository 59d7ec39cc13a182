/* fuzz_safetensors.c: binding weights from .safetensors (frontend/safetensors.c)
 * to the parameters of a small network (those of tests/data/weights), strictly
 * or partially as the input's size is even or odd. */
#include "frontend.h"
#include "fuzz.h"

#include <stdlib.h>

static const char net[] =
    "network small(x: f32[1, 3, 8, 8]) {\n"
    "  y = relu(batchnorm(conv2d(x, 4, kernel=3, pad=1) as conv1) as bn1)\n"
    "  return dense(flatten(y), 10) as fc\n"
    "}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static Graph *model;
    if (!model && !(model = fe_load_string("small.cnn", net, NULL, NULL)))
        abort();
    Graph *g = ir_graph_clone(model);
    Diag d;
    ir_diag_init(&d, NULL);
    const char *path = fuzz_file(data, size);
    if (size % 2)
        fe_bind_safetensors_partial(g, path, &d);
    else
        fe_bind_safetensors(g, path, &d);
    ir_diag_fini(&d);
    ir_graph_free(g);
    return 0;
}
