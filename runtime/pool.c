/* pool.c: the thread pool behind rt_parallel_for. Workers are created once and
 * wait for a new job generation; a call publishes the job, runs chunk 0 on the
 * calling thread and waits until every worker has acknowledged the job. */
#define _DEFAULT_SOURCE 1 /* madvise and MADV_HUGEPAGE */
#include "rt.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* How long a waiting thread spins before it sleeps: longer than the gap
 * between two kernels of a model, far shorter than a time slice, so a pool
 * at rest (or oversubscribed) soon stops taking CPU from others. */
#define RT_SPIN_NS 50000

/* The fields the caller writes and the fields the workers write live on
 * separate cache lines, so acknowledging a job does not disturb the waiters. */
struct RtPool {
    /* Job of the current generation, written by the caller before `gen`. */
    alignas(64) RtKernel fn;
    void *args;
    int64_t n;
    int32_t active; /* threads taking part: min(n, nthreads) */
    int32_t nthreads;
    pthread_t *threads;
    atomic_bool busy;            /* a call is in flight: a nested call runs inline */
    RtCounter *counters;         /* profiling on: rt_run_kernel's per-kernel counters */
    int32_t ncounters;
    char *scratch;               /* nthreads slots of slot_bytes (rt_pool_reserve_scratch) */
    size_t slot_bytes;
    alignas(64) atomic_uint gen; /* job generation; workers wait for a change */
    atomic_int sleepers;         /* workers blocked on `wake` */
    atomic_bool stop;
    alignas(64) atomic_int pending; /* workers yet to acknowledge the job */
    atomic_bool caller_sleeps;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* workers: a new generation */
    pthread_cond_t done; /* caller: pending reached 0 */
};

typedef struct Worker {
    RtPool *pool;
    int32_t id; /* 1 .. nthreads-1; chunk 0 is the caller's */
} Worker;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* A spin-wait: go on while spin_more() says so. Every 16 pauses (a pause
 * takes 10 to 80 ns depending on the CPU) the thread reads the clock; past
 * RT_SPIN_YIELD_NS it also yields, which lets a woken worker that shares this
 * CPU run at once (more threads than free cores). Not before: a yield is a
 * system call, and a worker that yields as it spins starts the next kernel
 * 1.2-1.35 us after the caller publishes it instead of 1.9, and ResNet-50 at batch
 * 1 (59 kernels, 2 threads, cnnrun --bench in ABBA rounds) took 0.996 of its time. */
#define RT_SPIN_YIELD_NS 10000

typedef struct Spin {
    int64_t start; /* ns, at the first clock reading */
    unsigned iter;
} Spin;

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static bool spin_more(Spin *s)
{
    cpu_relax();
    if (++s->iter % 16 != 0)
        return true;
    int64_t now = now_ns();
    if (s->iter == 16)
        s->start = now;
    if (now - s->start >= RT_SPIN_YIELD_NS)
        sched_yield();
    return now - s->start < RT_SPIN_NS;
}

/* Chunk i of [0, n) split into `parts` contiguous ranges whose sizes differ by
 * at most one. */
static void chunk(int64_t n, int32_t parts, int32_t i, int64_t *begin, int64_t *end)
{
    int64_t q = n / parts, r = n % parts;
    *begin = i * q + (i < r ? i : r);
    *end = *begin + q + (i < r ? 1 : 0);
}

/* Thread i's scratch (NULL when none was reserved). */
static inline void *slot(const RtPool *p, int32_t i)
{
    return p->scratch ? p->scratch + (size_t)i * p->slot_bytes : NULL;
}

static unsigned wait_generation(RtPool *p, unsigned seen)
{
    Spin spin = {0, 0};
    do {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&p->stop, memory_order_acquire))
            return g;
    } while (spin_more(&spin));
    /* `sleepers` and `gen` are both sequentially consistent: either the caller
     * sees this sleeper and signals, or this thread sees the new generation. */
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->sleepers, 1);
    while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->wake, &p->lock);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->lock);
    return atomic_load_explicit(&p->gen, memory_order_acquire);
}

/* The last worker wakes the caller if it went to sleep; as with `sleepers`,
 * both `pending` and `caller_sleeps` are sequentially consistent. */
static void acknowledge(RtPool *p)
{
    if (atomic_fetch_sub(&p->pending, 1) != 1)
        return;
    if (atomic_load(&p->caller_sleeps)) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->lock);
    }
}

static void *worker_main(void *arg)
{
    Worker w = *(Worker *)arg;
    RtPool *p = w.pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_generation(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            return NULL;
        if (w.id < p->active) {
            int64_t b, e;
            chunk(p->n, p->active, w.id, &b, &e);
            p->fn(p->args, b, e, slot(p, w.id));
        }
        acknowledge(p);
    }
}

static void wait_done(RtPool *p)
{
    Spin spin = {0, 0};
    do {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0)
            return;
    } while (spin_more(&spin));
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->caller_sleeps, true);
    while (atomic_load(&p->pending) != 0)
        pthread_cond_wait(&p->done, &p->lock);
    atomic_store(&p->caller_sleeps, false);
    pthread_mutex_unlock(&p->lock);
}

void rt_parallel_for(RtPool *pool, int64_t n, RtKernel fn, void *args)
{
    if (n <= 0)
        return;
    /* A call from inside a kernel of this pool (or a second caller) runs on this
     * thread rather than wait for busy workers, without scratch: the thread's slot
     * is its outer kernel's. */
    if (atomic_exchange_explicit(&pool->busy, true, memory_order_acquire)) {
        fn(args, 0, n, NULL);
        return;
    }
    if (n == 1 || pool->nthreads == 1) {
        fn(args, 0, n, slot(pool, 0));
        atomic_store_explicit(&pool->busy, false, memory_order_release);
        return;
    }
    pool->fn = fn;
    pool->args = args;
    pool->n = n;
    pool->active = n < pool->nthreads ? (int32_t)n : pool->nthreads;
    atomic_store_explicit(&pool->pending, pool->nthreads - 1, memory_order_relaxed);
    atomic_fetch_add(&pool->gen, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    int64_t b, e;
    chunk(n, pool->active, 0, &b, &e);
    fn(args, b, e, slot(pool, 0));
    wait_done(pool);
    atomic_store_explicit(&pool->busy, false, memory_order_release);
}

static int64_t elapsed_ns(const struct timespec *a, const struct timespec *b)
{
    return (int64_t)(b->tv_sec - a->tv_sec) * 1000000000 + (b->tv_nsec - a->tv_nsec);
}

/* Wall time on the calling thread around the whole call, workers included. */
static void run_timed(RtPool *pool, int32_t k, int64_t n, RtKernel fn, void *args)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rt_parallel_for(pool, n, fn, args);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (k >= 0 && k < pool->ncounters) {
        pool->counters[k].calls++;
        pool->counters[k].ns += elapsed_ns(&t0, &t1);
    }
}

/* Profiling off costs one well-predicted branch per kernel. */
void rt_run_kernel(RtPool *pool, int32_t k, int64_t n, RtKernel fn, void *args)
{
    if (__builtin_expect(pool->counters != NULL, 0)) {
        run_timed(pool, k, n, fn, args);
        return;
    }
    rt_parallel_for(pool, n, fn, args);
}

void rt_pool_set_counters(RtPool *pool, RtCounter *c, int32_t n)
{
    pool->counters = n > 0 ? c : NULL;
    pool->ncounters = n > 0 ? n : 0;
}

static void stop_workers(RtPool *p, int32_t started)
{
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int32_t i = 0; i < started; i++)
        pthread_join(p->threads[i], NULL);
}

static void destroy(RtPool *p)
{
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->scratch);
    free(p);
}

static bool init_sync(RtPool *p)
{
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        return false;
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        return false;
    }
    if (pthread_cond_init(&p->done, NULL) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        return false;
    }
    return true;
}

/* Workers start with every signal blocked, so signals reach the
 * application's own threads. Returns how many workers started. */
static int32_t start_workers(RtPool *p, Worker *ws)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int32_t i = 0;
    for (; i < p->nthreads - 1; i++) {
        ws[i] = (Worker){p, i + 1};
        if (pthread_create(&p->threads[i], NULL, worker_main, &ws[i]) != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return i;
}

/* One allocation holds the pool, its thread handles and the workers'
 * start arguments (read once by each worker before its first wait). */
RtPool *rt_pool_new(int32_t nthreads)
{
    if (nthreads < 1)
        return NULL;
    size_t head = (sizeof(RtPool) + 63) / 64 * 64;
    size_t nw = (size_t)nthreads - 1;
    size_t size = head + nw * sizeof(pthread_t) + nw * sizeof(Worker);
    void *mem;
    if (posix_memalign(&mem, 64, size) != 0)
        return NULL;
    memset(mem, 0, size);
    RtPool *p = mem;
    p->nthreads = nthreads;
    p->threads = (pthread_t *)((char *)mem + head);
    Worker *ws = (Worker *)(p->threads + nw);
    atomic_init(&p->busy, false);
    atomic_init(&p->gen, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, false);
    atomic_init(&p->pending, 0);
    atomic_init(&p->caller_sleeps, false);
    if (!init_sync(p)) {
        free(p);
        return NULL;
    }
    int32_t started = start_workers(p, ws);
    if (started != nthreads - 1) {
        stop_workers(p, started);
        destroy(p);
        return NULL;
    }
    return p;
}

void rt_pool_free(RtPool *pool)
{
    if (!pool)
        return;
    stop_workers(pool, pool->nthreads - 1);
    destroy(pool);
}

/* A block of 2 MiB or more starts on a 2 MiB boundary and asks for transparent
 * huge pages (where the system gives them only on request), before anything
 * touches it: fewer TLB misses over activations that span tens of MB. ResNet-50's
 * arena (43 MB at batch 8): 0.975-0.979 of the model's time at batch 8, 0.990 at 1. */
#define HUGE_PAGE ((size_t)2 << 20)

void *rt_alloc_large(size_t bytes)
{
    void *p;
    if (posix_memalign(&p, bytes >= HUGE_PAGE ? HUGE_PAGE : 64, bytes ? bytes : 64) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE_PAGE)
        madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it, small pages */
#endif
    return p;
}

#define RT_MAX_SCRATCH ((int64_t)1 << 36) /* a thread's: more is a corrupt model */

/* Every kernel call a thread makes gets the same slot, so a kernel finds the lines
 * of the one before it in cache instead of memory the allocator handed it fresh:
 * with a heap buffer per call, ResNet-50's first Winograd conv of each stage at
 * batch 1 took 0.1 ms more than the others (each a new size); one slot per thread
 * took 0.98 of the model's time (2 threads, cnnrun --bench, ABBA rounds). */
bool rt_pool_reserve_scratch(RtPool *pool, int64_t bytes)
{
    if (bytes < 0 || bytes > RT_MAX_SCRATCH)
        return false;
    size_t slot_bytes = ((size_t)bytes + 4095) / 4096 * 4096;
    if (slot_bytes <= pool->slot_bytes)
        return true;
    char *mem = rt_alloc_large(slot_bytes * (size_t)pool->nthreads);
    if (!mem)
        return false;
    memset(mem, 0, slot_bytes * (size_t)pool->nthreads); /* no page faults in a run */
    free(pool->scratch);
    pool->scratch = mem;
    pool->slot_bytes = slot_bytes;
    return true;
}

int32_t rt_pool_threads(const RtPool *pool)
{
    return pool ? pool->nthreads : 0;
}
