/* npz.h: numpy .npz archives (np.savez, np.savez_compressed), a zip of .npy
 * members, read through libzip: the training data of cnntrain. Each member
 * comes back as f32 (from f16, f32, f64) or int64 (from any integer dtype
 * that fits), with its shape. */
#ifndef CNNC_NPZ_H
#define CNNC_NPZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"

typedef enum NpzType { NPZ_F32, NPZ_I64 } NpzType;

typedef struct NpzArray {
    NpzType type;
    char descr[32]; /* the member's dtype as numpy wrote it, for messages */
    int32_t rank;
    int64_t dims[IR_MAX_RANK];
    int64_t numel;
    void *data; /* float or int64_t, malloc'd: free() it */
} NpzArray;

typedef struct Npz Npz;

/* Opens the archive; NULL with "PATH: why" in err. */
Npz *npz_open(const char *path, char *err, size_t errlen);
void npz_close(Npz *z); /* NULL is fine */
/* Whether the archive holds NAME.npy (np.savez(f, NAME=...)). */
bool npz_has(Npz *z, const char *name);
/* Reads NAME.npy; false with "PATH: NAME: why" in err when it is missing or malformed. */
bool npz_read(Npz *z, const char *name, NpzArray *out, char *err, size_t errlen);

#endif
