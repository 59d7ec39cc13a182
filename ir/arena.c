/* arena.c: the per-graph bump allocator and the checked malloc wrappers. This is
 * the only file of the compiler that calls malloc; everything else allocates
 * from an Arena or through ir_xmalloc and friends. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARENA_ALIGN 64
#define ARENA_CHUNK ((size_t)1 << 20)

/* Chunks form a list; the head is the one being filled. Requests larger than
 * a quarter chunk get a chunk of their own, placed behind the head so the
 * head's free space is not wasted. */
typedef struct Chunk {
    struct Chunk *next;
    size_t size, used;
    void *raw; /* what malloc returned; data starts at the first aligned byte */
    unsigned char *data;
} Chunk;

struct Arena {
    Chunk *head;
    size_t bytes;
};

static void (*out_of_memory)(void);

void ir_set_out_of_memory(void (*fn)(void))
{
    out_of_memory = fn;
}

static noreturn void no_memory(size_t n, size_t size)
{
    fprintf(stderr, "cnnc: error: out of memory (%.0f bytes wanted)\n", (double)n * (double)size);
    if (out_of_memory)
        out_of_memory();
    abort();
}

void *ir_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        no_memory(1, size);
    return p;
}

void *ir_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        no_memory(n, size);
    return p;
}

void *ir_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q)
        no_memory(1, size);
    return q;
}

uint64_t ir_str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

char *ir_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(ir_xmalloc(n), s, n);
}

void *ir_try_malloc(size_t size)
{
    return size <= ir_memory_bytes() ? malloc(size ? size : 1) : NULL;
}

uint64_t ir_memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
}

noreturn void ir_ice(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "cnnc: internal error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static Chunk *chunk_new(size_t size)
{
    if (size > SIZE_MAX - ARENA_ALIGN)
        ICE("arena request of %zu bytes is too large", size);
    Chunk *c = ir_xcalloc(1, sizeof *c);
    c->raw = ir_xcalloc(1, size + ARENA_ALIGN);
    uintptr_t addr = (uintptr_t)c->raw;
    c->data = (unsigned char *)c->raw + ((ARENA_ALIGN - addr % ARENA_ALIGN) % ARENA_ALIGN);
    c->size = size;
    return c;
}

Arena *ir_arena_new(void)
{
    Arena *a = ir_xcalloc(1, sizeof *a);
    a->head = chunk_new(ARENA_CHUNK);
    a->bytes = ARENA_CHUNK;
    return a;
}

void ir_arena_free(Arena *a)
{
    if (!a)
        return;
    for (Chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c->raw);
        free(c);
    }
    free(a);
}

void *ir_alloc(Arena *a, size_t size)
{
    size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < size)
        ICE("arena request of %zu bytes is too large", size);
    if (need > ARENA_CHUNK / 4) {
        Chunk *big = chunk_new(need);
        big->used = need;
        big->next = a->head->next;
        a->head->next = big;
        a->bytes += need;
        return big->data;
    }
    if (a->head->size - a->head->used < need) {
        Chunk *c = chunk_new(ARENA_CHUNK);
        c->next = a->head;
        a->head = c;
        a->bytes += ARENA_CHUNK;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += need;
    return p;
}

char *ir_strndup(Arena *a, const char *s, size_t n)
{
    char *p = ir_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ir_strdup(Arena *a, const char *s)
{
    return ir_strndup(a, s, strlen(s));
}

char *ir_strfmt(Arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        ICE("bad format string '%s'", fmt);
    char *p = ir_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

size_t ir_arena_bytes(const Arena *a)
{
    return a->bytes;
}
