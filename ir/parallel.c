/* parallel.c: the compiler's own work spread over threads (LLVM's parts of a module,
 * random weights): items taken in turn from a shared counter. */
#include "ir.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 64

typedef struct Queue {
    void (*fn)(void *ctx, int32_t i);
    void *ctx;
    int32_t n;
    atomic_int next;
} Queue;

static void *take_items(void *arg)
{
    Queue *q = arg;
    for (int32_t i; (i = atomic_fetch_add(&q->next, 1)) < q->n;)
        q->fn(q->ctx, i);
    return NULL;
}

void ir_parallel_for(int32_t n, int32_t threads, void (*fn)(void *ctx, int32_t i), void *ctx)
{
    Queue q = {.fn = fn, .ctx = ctx, .n = n};
    atomic_init(&q.next, 0);
    int32_t nt = threads < 1 ? 1 : threads > n ? n : threads > MAX_THREADS ? MAX_THREADS : threads;
    pthread_t tid[MAX_THREADS];
    bool started[MAX_THREADS] = {0};
    for (int32_t t = 1; t < nt; t++)
        started[t] = pthread_create(&tid[t], NULL, take_items, &q) == 0;
    take_items(&q);
    for (int32_t t = 1; t < nt; t++)
        if (started[t]) pthread_join(tid[t], NULL);
}

int32_t ir_compile_threads(void)
{
    const char *env = getenv("CNNC_COMPILE_THREADS");
    long n = env && *env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int32_t)n;
}
