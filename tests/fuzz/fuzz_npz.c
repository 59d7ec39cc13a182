/* fuzz_npz.c: cnntrain's .npz reader (tools/npz.c): the archive through libzip,
 * then the x and y members' .npy headers and data. */
#include "fuzz.h"
#include "npz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    Npz *z = npz_open(fuzz_file(data, size), err, sizeof err);
    if (!z)
        return 0;
    static const char *const names[] = {"x", "y"};
    for (int i = 0; i < 2; i++) {
        NpzArray a;
        if (npz_read(z, names[i], &a, err, sizeof err))
            free(a.data);
    }
    npz_close(z);
    return 0;
}
