/* fuzz_cnn.c: the language frontend, from a memory buffer. A model that
 * elaborates must print as IR text that parses back and prints the same.
 * Includes are served from a few files held here, never from the disk. */
#include "frontend.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *path, *text;
} files[] = {
    {"basic.cnn",
     "block basic(x, planes, stride = 1) {\n"
     "  y = relu(batchnorm(conv2d(x, planes, kernel=3, stride=stride, pad=1) as conv1) as bn1)\n"
     "  if stride != 1 or channels(x) != planes {\n"
     "    x = sequence downsample(x) { conv2d(planes, kernel=1, stride=stride); batchnorm }\n"
     "  }\n"
     "  return relu(y + x)\n"
     "}\n"},
    {"net.cnn", "network n(x: f32[N=1, 3, 8, 8]) {\n  return relu(x)\n}\n"},
    {"self.cnn", "include \"self.cnn\"\n"},
    {"empty.cnn", ""},
};

static bool read_include(const char *path, const char **text, size_t *len)
{
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (strcmp(path, files[i].path) == 0) {
            *text = files[i].text;
            *len = strlen(files[i].text);
            return true;
        }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstring(data, size);
    Diag d;
    ir_diag_init(&d, NULL);
    FeOptions opt = {.read_include = read_include};
    Graph *g = fe_load_string("fuzz.cnn", text, &opt, &d);
    if (g)
        fuzz_round_trip(g);
    ir_graph_free(g);
    ir_diag_fini(&d);
    free(text);
    return 0;
}
