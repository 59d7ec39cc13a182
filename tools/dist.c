/* dist.c: dist.h over MPI's world communicator when CNNC_HAVE_MPI is defined and
 * a launcher started the process, else over one process, where every collective
 * is the identity. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef CNNC_HAVE_MPI

#include <mpi.h>

/* Whether MPI was initialized: only where a launcher started the process, so that
 * a plain `cnntrain` neither pays for nor depends on MPI's singleton start. */
static bool g_mpi;

/* Whether a launcher started this process: mpirun, or srun and others through PMI. */
static bool launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

/* The status of an MPI call: on failure, err says which call failed and why. */
static bool mpi_ok(int rc, const char *call, char *err, size_t n)
{
    if (rc == MPI_SUCCESS)
        return true;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error code %d", rc);
    snprintf(err, n, "%s failed: %s", call, msg);
    return false;
}

bool dist_available(char *what, size_t n)
{
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(version, &len) != MPI_SUCCESS)
        snprintf(version, sizeof version, "MPI %d.%d", MPI_VERSION, MPI_SUBVERSION);
    /* Open MPI's string runs on ("Open MPI v4.1.4, package: ..."): its first part. */
    size_t end = 0;
    while (version[end] && version[end] != ',' && version[end] != '\n')
        end++;
    snprintf(what, n, "%.*s", (int)end, version);
    return true;
}

bool dist_init(int *argc, char ***argv, int *rank, int *size, char *err, size_t n)
{
    *rank = 0;
    *size = 1;
    if (!launched())
        return true;
    if (!mpi_ok(MPI_Init(argc, argv), "MPI_Init", err, n))
        return false;
    g_mpi = true;
    return mpi_ok(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN),
                  "MPI_Comm_set_errhandler", err, n) &&
           mpi_ok(MPI_Comm_rank(MPI_COMM_WORLD, rank), "MPI_Comm_rank", err, n) &&
           mpi_ok(MPI_Comm_size(MPI_COMM_WORLD, size), "MPI_Comm_size", err, n);
}

void dist_finalize(void)
{
    if (g_mpi)
        MPI_Finalize();
}

_Noreturn void dist_abort(void)
{
    int size = 1;
    if (g_mpi && MPI_Comm_size(MPI_COMM_WORLD, &size) == MPI_SUCCESS && size > 1)
        MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

bool dist_local_size(int *local, char *err, size_t n)
{
    *local = 1;
    if (!g_mpi)
        return true;
    MPI_Comm node;
    if (!mpi_ok(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                                    &node),
                "MPI_Comm_split_type", err, n))
        return false;
    bool ok = mpi_ok(MPI_Comm_size(node, local), "MPI_Comm_size", err, n);
    MPI_Comm_free(&node);
    return ok;
}

bool dist_sum_floats(float *data, size_t count, size_t bucket, char *err, size_t n)
{
    if (!g_mpi)
        return true;
    size_t nreq = (count + bucket - 1) / bucket;
    MPI_Request *req = calloc(nreq ? nreq : 1, sizeof *req);
    if (!req)
        return snprintf(err, n, "out of memory"), false;
    bool ok = true;
    size_t started = 0;
    for (; ok && started < nreq; started++) {
        size_t off = started * bucket, len = count - off < bucket ? count - off : bucket;
        ok = mpi_ok(MPI_Iallreduce(MPI_IN_PLACE, data + off, (int)len, MPI_FLOAT, MPI_SUM,
                                   MPI_COMM_WORLD, &req[started]),
                    "MPI_Iallreduce", err, n);
    }
    if (!ok)
        started--;
    if (started && !mpi_ok(MPI_Waitall((int)started, req, MPI_STATUSES_IGNORE), "MPI_Waitall",
                           err, n))
        ok = false;
    free(req);
    return ok;
}

bool dist_sum_doubles(double *data, int count, char *err, size_t n)
{
    if (!g_mpi)
        return true;
    return mpi_ok(MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
                  "MPI_Allreduce", err, n);
}

bool dist_min_u64(uint64_t *data, int count, char *err, size_t n)
{
    if (!g_mpi)
        return true;
    return mpi_ok(MPI_Allreduce(MPI_IN_PLACE, data, count, MPI_UINT64_T, MPI_MIN,
                                MPI_COMM_WORLD),
                  "MPI_Allreduce", err, n);
}

bool dist_broadcast(void *data, size_t size, char *err, size_t n)
{
    if (!g_mpi)
        return true;
    /* MPI counts are int: large tensors go in pieces of at most 1 GiB. */
    const size_t piece = (size_t)1 << 30;
    for (size_t off = 0; off < size; off += piece) {
        size_t len = size - off < piece ? size - off : piece;
        if (!mpi_ok(MPI_Bcast((char *)data + off, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD),
                    "MPI_Bcast", err, n))
            return false;
    }
    return true;
}

#else

bool dist_available(char *what, size_t n)
{
    snprintf(what, n, "built without MPI: one process only");
    return false;
}

/* Started as one of several processes (mpirun -np K), each would train alone and
 * write the same file. */
bool dist_init(int *argc, char ***argv, int *rank, int *size, char *err, size_t n)
{
    const char *k = getenv("OMPI_COMM_WORLD_SIZE");
    *rank = 0;
    *size = 1;
    if (!k)
        k = getenv("PMI_SIZE");
    if (k && atoi(k) > 1)
        return snprintf(err, n, "this cnntrain was built without MPI: it cannot run as one of "
                                "%s processes; run it alone, or rebuild it with MPI installed", k),
               false;
    return true;
}

void dist_finalize(void)
{
}

_Noreturn void dist_abort(void)
{
    exit(1);
}

bool dist_local_size(int *local, char *err, size_t n)
{
    *local = 1;
    return true;
}

bool dist_sum_floats(float *data, size_t count, size_t bucket, char *err, size_t n)
{
    return true;
}

bool dist_sum_doubles(double *data, int count, char *err, size_t n)
{
    return true;
}

bool dist_min_u64(uint64_t *data, int count, char *err, size_t n)
{
    return true;
}

bool dist_broadcast(void *data, size_t size, char *err, size_t n)
{
    return true;
}

#endif
