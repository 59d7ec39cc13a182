/* support.h: what the tools, the frontend and the tests share that is not the IR:
 * numpy .npy files, writing a file whole or not at all, and deterministic random
 * numbers. Built on ir/'s checked allocation and temporary-file registry. */
#ifndef CNNC_SUPPORT_H
#define CNNC_SUPPORT_H

#include "ir.h"

/* ---- npy.c: numpy .npy files -------------------------------------------- */

typedef struct NpyArray {
    int32_t rank;
    int64_t dims[IR_MAX_RANK];
    float *data; /* malloc'd, free() it */
} NpyArray;

/* A .npy's header: the dtype as numpy writes it ('<f4', '<i8'), the order, the
 * shape, and where the data begins. */
typedef struct NpyHeader {
    char descr[32];
    bool fortran;
    int32_t rank;
    int64_t dims[IR_MAX_RANK];
    size_t data_offset;
} NpyHeader;

/* Parses the magic, version and header of a .npy held in the `len` bytes at
 * `buf` (a member of an .npz), checking that the header lies within them;
 * the dtype and the data are the caller's to check. `path` names it in errors. */
bool ir_npy_parse_header(const unsigned char *buf, size_t len, const char *path, NpyHeader *h,
                         char *err, size_t errlen);
/* Reads a little-endian f32 (or f64/f16, converted), C-order .npy, v1 to v3. */
bool ir_npy_read(const char *path, NpyArray *out, char *err, size_t errlen);
/* Writes f32 .npy (v1) through a temporary file, so nothing half-written stays. */
bool ir_npy_write(const char *path, const float *data, int32_t rank, const int64_t *dims,
                  char *err, size_t errlen);
/* Writes `path` through "PATH.tmp-XXXXXX" in the same folder: `emit` writes the
 * contents, and the file is renamed into place only if every write succeeded;
 * otherwise the temporary is removed and err says why. Used by every writer. */
bool ir_write_atomic(const char *path, bool (*emit)(FILE *f, void *ctx), void *ctx, char *err,
                     size_t errlen);
/* Writes "PATH: message" (at most 256 bytes of message) to err; returns false. The
 * errors of the file readers. */
bool ir_file_error(const char *path, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* IEEE half and bfloat16 bit patterns to float (exact; NaN and Inf kept). */
float ir_f16_to_f32(uint16_t h);
float ir_bf16_to_f32(uint16_t h);

/* ---- rng.c: deterministic random numbers -------------------------------- */

typedef struct Rng { uint64_t s; } Rng;
Rng ir_rng(uint64_t seed, const char *stream); /* one stream per (seed, name) */
uint64_t ir_rng_next(Rng *r);
double ir_rng_uniform(Rng *r); /* [0, 1) */
double ir_rng_normal(Rng *r);

#endif
