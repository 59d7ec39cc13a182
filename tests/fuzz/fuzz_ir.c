/* fuzz_ir.c: the IR text reader (ir/parse.c). A graph it accepts must print
 * as text that parses back and prints the same. */
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstring(data, size);
    Diag d;
    ir_diag_init(&d, NULL);
    Graph *g = ir_parse_text("fuzz.ir", text, &d);
    if (g)
        fuzz_round_trip(g);
    ir_graph_free(g);
    ir_diag_fini(&d);
    free(text);
    return 0;
}
