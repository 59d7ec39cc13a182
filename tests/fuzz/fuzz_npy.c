/* fuzz_npy.c: the .npy reader (ir/npy.c). */
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    NpyArray a;
    char err[256];
    if (ir_npy_read(fuzz_file(data, size), &a, err, sizeof err))
        free(a.data);
    return 0;
}
