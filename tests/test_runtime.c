/* test_runtime.c: the runtime's thread pool: every item exactly once in
 * balanced contiguous chunks, one chunk per thread, the sleeping paths, nested
 * calls, and pools used from several threads at once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "rt.h"

typedef struct Count {
    atomic_int *hits;
    atomic_llong min_chunk, max_chunk;
    atomic_int calls;
} Count;

static void count_items(void *p, int64_t begin, int64_t end, void *scratch)
{
    (void)scratch;
    Count *c = p;
    for (int64_t i = begin; i < end; i++)
        atomic_fetch_add(&c->hits[i], 1);
    long long len = end - begin, v;
    while (len < (v = atomic_load(&c->min_chunk)) &&
           !atomic_compare_exchange_weak(&c->min_chunk, &v, len)) {
    }
    while (len > (v = atomic_load(&c->max_chunk)) &&
           !atomic_compare_exchange_weak(&c->max_chunk, &v, len)) {
    }
    atomic_fetch_add(&c->calls, 1);
}

static void check_cover(RtPool *pool, int64_t n)
{
    Count c;
    c.hits = calloc((size_t)n + 1, sizeof *c.hits);
    atomic_init(&c.min_chunk, INT64_MAX);
    atomic_init(&c.max_chunk, -1);
    atomic_init(&c.calls, 0);
    rt_parallel_for(pool, n, count_items, &c);
    for (int64_t i = 0; i < n; i++)
        assert_int_equal(atomic_load(&c.hits[i]), 1);
    int64_t parts = n < rt_pool_threads(pool) ? n : rt_pool_threads(pool);
    assert_int_equal(atomic_load(&c.calls), parts);
    if (n > 0)
        assert_true(atomic_load(&c.max_chunk) - atomic_load(&c.min_chunk) <= 1);
    free(c.hits);
}

static void test_cover(void **state)
{
    static const int32_t threads[] = {1, 2, 3, 4, 7, 16};
    static const int64_t sizes[] = {0, 1, 2, 3, 5, 15, 16, 17, 100, 1000, 100003};
    for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
        RtPool *pool = rt_pool_new(threads[t]);
        assert_non_null(pool);
        assert_int_equal(rt_pool_threads(pool), threads[t]);
        for (int rep = 0; rep < 3; rep++)
            for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
                check_cover(pool, sizes[s]);
        rt_pool_free(pool);
    }
}

typedef struct Who {
    pthread_t ids[8];
    int64_t begins[8];
    int32_t sleep_ms; /* chunks other than 0 sleep this long */
} Who;

static void sleep_ms(int32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void record_thread(void *p, int64_t begin, int64_t end, void *scratch)
{
    (void)scratch;
    Who *w = p;
    w->ids[begin] = pthread_self();
    w->begins[begin] = begin;
    if (begin > 0)
        sleep_ms(w->sleep_ms);
}

/* Chunk i runs on thread i and chunk 0 on the caller, also when the workers
 * were asleep before the call and when the caller has to sleep for them. */
static void test_one_chunk_per_thread(void **state)
{
    RtPool *pool = rt_pool_new(4);
    assert_non_null(pool);
    for (int rep = 0; rep < 3; rep++) {
        Who w;
        memset(&w, 0, sizeof w);
        w.sleep_ms = rep == 2 ? 20 : 0;
        if (rep == 1)
            sleep_ms(50);
        rt_parallel_for(pool, 4, record_thread, &w);
        assert_true(pthread_equal(w.ids[0], pthread_self()));
        for (int i = 0; i < 4; i++) {
            assert_int_equal(w.begins[i], i);
            for (int j = 0; j < i; j++)
                assert_false(pthread_equal(w.ids[i], w.ids[j]));
        }
    }
    rt_pool_free(pool);
}

typedef struct Nest {
    RtPool *same, *other;
    atomic_int inner;
} Nest;

static void inner(void *p, int64_t begin, int64_t end, void *scratch)
{
    (void)scratch;
    Nest *n = p;
    atomic_fetch_add(&n->inner, (int)(end - begin));
}

static void outer(void *p, int64_t begin, int64_t end, void *scratch)
{
    (void)scratch;
    Nest *n = p;
    for (int64_t i = begin; i < end; i++) {
        rt_parallel_for(n->same, 10, inner, n);
        if (n->other)
            rt_parallel_for(n->other, 10, inner, n);
    }
}

/* A kernel may call rt_parallel_for itself: on its own pool the inner call
 * runs inline; another pool is used from whichever thread calls first. */
static void test_nested(void **state)
{
    RtPool *a = rt_pool_new(3), *b = rt_pool_new(2);
    assert_non_null(a);
    assert_non_null(b);
    Nest n = {a, b, 0};
    rt_parallel_for(a, 30, outer, &n);
    assert_int_equal(atomic_load(&n.inner), 30 * 20);
    n.other = NULL;
    atomic_store(&n.inner, 0);
    rt_parallel_for(a, 5, outer, &n);
    assert_int_equal(atomic_load(&n.inner), 5 * 10);
    rt_pool_free(a);
    rt_pool_free(b);
}

typedef struct Scratch {
    RtPool *pool;
    char *slot[4];   /* per item: the scratch it got */
    char *nested[4]; /* per item: what a call nested inside it got */
    int64_t bytes;   /* each item fills this much of its scratch */
} Scratch;

static void nested_scratch(void *p, int64_t begin, int64_t end, void *scratch)
{
    (void)end;
    ((Scratch *)p)->nested[begin] = scratch ? scratch : (char *)1;
}

static void fill_scratch(void *p, int64_t begin, int64_t end, void *scratch)
{
    Scratch *s = p;
    for (int64_t i = begin; i < end; i++) {
        s->slot[i] = scratch;
        if (scratch)
            memset(scratch, (int)i + 1, (size_t)s->bytes);
        s->nested[i] = NULL;
        Scratch in = *s;
        rt_parallel_for(s->pool, 1, nested_scratch, &in);
        s->nested[i] = in.nested[0];
    }
}

/* Each thread has scratch of its own, 64-byte aligned, the same in every call: a
 * call nested in a kernel of the same pool gets none (its thread's is in use). */
static void test_scratch(void **state)
{
    RtPool *pool = rt_pool_new(3);
    assert_non_null(pool);
    Scratch s = {.pool = pool, .bytes = 1000};
    rt_parallel_for(pool, 3, fill_scratch, &s);
    for (int i = 0; i < 3; i++)
        assert_null(s.slot[i]); /* none reserved */
    assert_true(rt_pool_reserve_scratch(pool, 1000));
    char *first[3];
    for (int rep = 0; rep < 2; rep++) {
        rt_parallel_for(pool, 3, fill_scratch, &s);
        for (int i = 0; i < 3; i++) {
            assert_non_null(s.slot[i]);
            assert_int_equal((uintptr_t)s.slot[i] % 64, 0);
            assert_ptr_equal(s.nested[i], (char *)1); /* NULL */
            for (int64_t j = 0; j < s.bytes; j++) /* no other thread wrote here */
                assert_int_equal(s.slot[i][j], i + 1);
            if (rep == 0)
                first[i] = s.slot[i];
            assert_ptr_equal(s.slot[i], first[i]);
        }
    }
    /* one item runs on the caller with thread 0's scratch; a smaller reservation
     * keeps it, one that cannot be met fails and keeps it too */
    assert_true(rt_pool_reserve_scratch(pool, 10));
    assert_false(rt_pool_reserve_scratch(pool, INT64_MAX));
    assert_false(rt_pool_reserve_scratch(pool, -1));
    rt_parallel_for(pool, 1, fill_scratch, &s);
    assert_ptr_equal(s.slot[0], first[0]);
    rt_pool_free(pool);
    /* a pool of one thread */
    pool = rt_pool_new(1);
    assert_non_null(pool);
    assert_true(rt_pool_reserve_scratch(pool, 64));
    s = (Scratch){.pool = pool, .bytes = 64};
    rt_parallel_for(pool, 2, fill_scratch, &s);
    assert_non_null(s.slot[0]);
    assert_ptr_equal(s.slot[1], s.slot[0]);
    assert_ptr_equal(s.nested[0], (char *)1);
    rt_pool_free(pool);
}

typedef struct Sum {
    const int32_t *v;
    int64_t *partial; /* per item */
} Sum;

static void square(void *p, int64_t begin, int64_t end, void *scratch)
{
    (void)scratch;
    Sum *s = p;
    for (int64_t i = begin; i < end; i++)
        s->partial[i] = (int64_t)s->v[i] * s->v[i];
}

typedef struct Job {
    int32_t threads, seed;
    int ok;
} Job;

/* Many calls on a private pool; the result of each is checked. */
static void *pool_user(void *p)
{
    Job *job = p;
    enum { N = 257 };
    int32_t v[N];
    int64_t partial[N];
    RtPool *pool = rt_pool_new(job->threads);
    job->ok = pool != NULL;
    for (int call = 0; call < 2000 && job->ok; call++) {
        int64_t want = 0, got = 0;
        for (int i = 0; i < N; i++) {
            v[i] = (i * 7 + call * 13 + job->seed) % 101 - 50;
            want += (int64_t)v[i] * v[i];
        }
        Sum s = {v, partial};
        rt_parallel_for(pool, N, square, &s);
        for (int i = 0; i < N; i++)
            got += partial[i];
        job->ok = got == want;
    }
    rt_pool_free(pool);
    return NULL;
}

static void test_two_pools_two_threads(void **state)
{
    Job jobs[2] = {{2, 1, 0}, {3, 5, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, pool_user, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_true(jobs[i].ok);
    }
}

static void test_create_free(void **state)
{
    assert_null(rt_pool_new(0));
    assert_null(rt_pool_new(-3));
    assert_int_equal(rt_pool_threads(NULL), 0);
    rt_pool_free(NULL);
    for (int i = 0; i < 200; i++) {
        RtPool *pool = rt_pool_new(1 + i % 5);
        assert_non_null(pool);
        if (i % 2)
            check_cover(pool, 1 + i);
        rt_pool_free(pool);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cover),
        cmocka_unit_test(test_one_chunk_per_thread),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_scratch),
        cmocka_unit_test(test_two_pools_two_threads),
        cmocka_unit_test(test_create_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
