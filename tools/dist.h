/* dist.h: the collective operations cnntrain's data parallelism needs, over
 * MPI where cnntrain was built with it (CNNC_HAVE_MPI) and as the trivial
 * single process otherwise, so that cnntrain itself has no #ifdef. Every call
 * returns false with the reason in err (MPI's own message) instead of
 * aborting: the world communicator returns its errors (MPI_ERRORS_RETURN). */
#ifndef CNNC_DIST_H
#define CNNC_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether this cnntrain was built with MPI ("Open MPI 4.1.4" or so in `what`). */
bool dist_available(char *what, size_t n);
/* MPI_Init when built with MPI and started by a launcher (mpirun, which sets
 * OMPI_COMM_WORLD_SIZE, or one speaking PMI): the rank and size of the world;
 * otherwise 0 and 1, with MPI left alone. */
bool dist_init(int *argc, char ***argv, int *rank, int *size, char *err, size_t n);
void dist_finalize(void);
/* How many of the job's processes share this one's machine (MPI_COMM_TYPE_SHARED). */
bool dist_local_size(int *local, char *err, size_t n);
/* Ends every process of the job with status 1 (MPI_Abort), or this one alone. */
_Noreturn void dist_abort(void);

/* In-place sums across the processes of `count` floats, in buckets of at most
 * `bucket` floats, all started (MPI_Iallreduce) before any is waited for. */
bool dist_sum_floats(float *data, size_t count, size_t bucket, char *err, size_t n);
/* In-place sums of doubles (losses, counts: few), one collective. */
bool dist_sum_doubles(double *data, int count, char *err, size_t n);
/* In-place minimum of 64-bit unsigned integers. */
bool dist_min_u64(uint64_t *data, int count, char *err, size_t n);
/* Process 0's `size` bytes at `data` copied to every other process. */
bool dist_broadcast(void *data, size_t size, char *err, size_t n);

#endif
