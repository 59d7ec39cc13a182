/* cache.c: the content-addressed compile cache of cnnc (cache.h). SHA-256 is
 * OpenSSL's libcrypto, which uses the CPU's SHA instructions where there are any:
 * hashing costs about 0.5 ms a megabyte there, under a tenth of a second for
 * ResNet-50's parameters. */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CACHE_MAGIC "CNNCACH1"
#define CACHE_DEFAULT_MAX (UINT64_C(5) << 30)
#define CHUNK (256u << 10)
/* The model.so starts a page into the entry, where a file system that shares blocks
 * between files could take them whole. */
#define HEADER_BYTES 4096
#define STALE_TEMP_SECONDS 3600

/* The first 64 bytes of an entry; the model.so follows at HEADER_BYTES. */
typedef struct EntryHeader {
    char magic[8];
    uint64_t size;            /* bytes of the model.so */
    unsigned char digest[32]; /* its SHA-256 */
    unsigned char key[16];    /* the start of the key it is stored under */
} EntryHeader;
_Static_assert(sizeof(EntryHeader) == 64, "cache entry header layout");

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* a, b and c joined, malloc'd. */
static char *concat(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = ir_xmalloc(n);
    snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

static void note(bool verbose, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(bool verbose, const char *fmt, ...)
{
    if (!verbose) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("cache: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- the key ------------------------------------------------------------------ */

static void add(EVP_MD_CTX *c, const void *p, size_t n)
{
    EVP_DigestUpdate(c, p, n);
}

/* A string with its length first, so that no two lists of strings hash alike;
 * NULL differs from "". */
static void add_str(EVP_MD_CTX *c, const char *s)
{
    uint64_t n = s ? strlen(s) : UINT64_MAX;
    add(c, &n, sizeof n);
    if (s) add(c, s, (size_t)n);
}

/* The bytes of the file at `path`, as their own SHA-256; false when unreadable. */
static bool add_file(EVP_MD_CTX *c, const char *path, uint64_t *bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    EVP_MD_CTX *f = EVP_MD_CTX_new();
    EVP_DigestInit_ex(f, EVP_sha256(), NULL);
    unsigned char *buf = ir_xmalloc(CHUNK), digest[32];
    ssize_t got;
    while ((got = read(fd, buf, CHUNK)) > 0 || (got < 0 && errno == EINTR))
        if (got > 0) EVP_DigestUpdate(f, buf, (size_t)got), *bytes += (uint64_t)got;
    close(fd);
    free(buf);
    EVP_DigestFinal_ex(f, digest, NULL);
    EVP_MD_CTX_free(f);
    if (got < 0) return false;
    add_str(c, path ? "file" : NULL);
    add(c, digest, sizeof digest);
    return true;
}

static void add_llvm_str(EVP_MD_CTX *c, char *s)
{
    add_str(c, s);
    LLVMDisposeMessage(s);
}

static int compare_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* CNNC_* variables may steer the compiler (the runtime archive, choices of code); all
 * of them count, sorted, but those of the cache itself. */
static void add_environment(EVP_MD_CTX *c)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    const char **vars = ir_xcalloc(n + 1, sizeof *vars);
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, "CNNC_", 5) && strncmp(*e, "CNNC_CACHE_", 11) &&
            strncmp(*e, "CNNC_NO_CACHE=", 14))
            vars[k++] = *e;
    qsort(vars, k, sizeof *vars, compare_str);
    add_str(c, "env");
    for (size_t i = 0; i < k; i++)
        add_str(c, vars[i]);
    free(vars);
    add_str(c, getenv("CC")); /* the linker's driver (codegen/llvm/link.c) */
}

static void add_argv(EVP_MD_CTX *c, const CacheInputs *in)
{
    add_str(c, "argv");
    for (int i = 1; i < in->argc; i++) {
        const char *a = in->argv[i];
        size_t len = strlen(a), keep = len;
        bool skip = false;
        for (int s = 0; s < in->nskip; s++)
            skip = skip || !strcmp(a, in->skip[s]);
        if (skip) continue;
        for (int e = 0; e < in->nelide; e++) {
            uintptr_t p = (uintptr_t)in->elide[e], start = (uintptr_t)a;
            if (p >= start && p <= start + len) keep = (size_t)(p - start);
        }
        uint64_t n = keep;
        add(c, &n, sizeof n);
        add(c, a, keep);
        add_str(c, keep < len ? "<file>" : "");
    }
}

/* The graph's text (every node, attribute, type and name) and its parameters' bytes;
 * false when the text cannot be made. */
static bool add_graph(EVP_MD_CTX *c, const Graph *g, uint64_t *bytes)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return false;
    ir_print(g, f);
    bool ok = !ferror(f);
    if (fclose(f) != 0 || !ok) return free(text), false;
    add_str(c, text);
    free(text);
    for (int32_t i = 0; i < g->nnodes; i++) {
        const Node *n = &g->nodes[i];
        if (n->op != OP_PARAM) continue;
        uint64_t size = n->data ? (uint64_t)ir_numel(&n->type) * sizeof(float) : UINT64_MAX;
        add(c, &i, sizeof i);
        add(c, &size, sizeof size);
        if (n->data) add(c, n->data, (size_t)size), *bytes += size;
    }
    return true;
}

bool cache_key(const Graph *g, const CacheInputs *in, CacheKey *k)
{
    double t0 = now();
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    uint64_t bytes = 0;
    unsigned major, minor, patch;
    LLVMGetVersion(&major, &minor, &patch);
    char llvm[64];
    snprintf(llvm, sizeof llvm, "LLVM %u.%u.%u", major, minor, patch);
    add_str(c, CACHE_MAGIC);
    add_str(c, in->version);
    add_str(c, llvm);
    add_llvm_str(c, LLVMGetDefaultTargetTriple());
    add_llvm_str(c, LLVMGetHostCPUName());
    add_llvm_str(c, LLVMGetHostCPUFeatures());
    bool ok = add_file(c, "/proc/self/exe", &bytes) && in->runtime &&
              add_file(c, in->runtime, &bytes);
    add_environment(c);
    add_argv(c, in);
    ok = ok && add_graph(c, g, &bytes);
    EVP_DigestFinal_ex(c, k->digest, NULL);
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 32; i++)
        snprintf(k->hex + 2 * i, 3, "%02x", k->digest[i]);
    k->bytes = bytes;
    k->seconds = now() - t0;
    return ok;
}

/* ---- the folder --------------------------------------------------------------- */

/* CNNC_CACHE_MAX: bytes, with an optional K, M or G (powers of 1024); the default
 * when unset or unreadable. */
static uint64_t cache_max(void)
{
    const char *v = getenv("CNNC_CACHE_MAX");
    if (!v || *v < '0' || *v > '9') return CACHE_DEFAULT_MAX;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    static const char units[] = "kKmMgG";
    const char *unit = *end ? strchr(units, *end) : NULL;
    int shift = !*end ? 0 : end[1] || !unit ? -1 : 10 * (1 + (int)(unit - units) / 2);
    if (errno || shift < 0 || x > UINT64_MAX >> shift) return CACHE_DEFAULT_MAX;
    return (uint64_t)x << shift;
}

char *cache_dir(void)
{
    const char *off = getenv("CNNC_NO_CACHE");
    if ((off && *off && strcmp(off, "0")) || cache_max() == 0) return NULL;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    /* The XDG specification ignores a relative $XDG_CACHE_HOME. */
    if (xdg && xdg[0] == '/') return concat(xdg, "/cnnc", "");
    if (home && home[0] == '/') return concat(home, "/.cache/cnnc", "");
    return NULL;
}

static char *entry_path(const char *dir, const CacheKey *k)
{
    char name[80];
    snprintf(name, sizeof name, "%s.entry", k->hex);
    return concat(dir, "/", name);
}

/* mkdir -p of the cache folder. */
static bool make_dirs(const char *dir)
{
    char *p = ir_xstrdup(dir);
    bool ok = true;
    for (char *s = p + 1; ok; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        ok = mkdir(p, 0777) == 0 || errno == EEXIST;
        *s = c;
        if (!c) break;
    }
    free(p);
    return ok;
}

/* Writes the n bytes at p to fd at offset `to`, hashing them on the way (a chunk
 * hashed, then written while still in the CPU's cache); false on a write error. */
static bool write_hashed(int fd, off_t to, const unsigned char *p, uint64_t n,
                         unsigned char digest[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    bool ok = lseek(fd, to, SEEK_SET) == to;
    for (uint64_t at = 0; ok && at < n; at += CHUNK) {
        size_t len = n - at < CHUNK ? (size_t)(n - at) : CHUNK;
        EVP_DigestUpdate(c, p + at, len);
        ok = ir_write_all(fd, p + at, len);
    }
    EVP_DigestFinal_ex(c, digest, NULL);
    EVP_MD_CTX_free(c);
    return ok;
}

/* The whole file fd of `size` bytes, mapped to read; NULL on failure. */
static unsigned char *map_file(int fd, uint64_t size)
{
    if (size == 0 || size > SIZE_MAX) return NULL;
    void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) return NULL;
    madvise(p, (size_t)size, MADV_SEQUENTIAL);
    return p;
}

static mode_t library_mode(void)
{
    mode_t mask = umask(0);
    umask(mask);
    return 0777 & ~mask;
}

bool cache_fetch(const char *dir, const CacheKey *k, const char *out, bool verbose)
{
    double t0 = now();
    char *path = entry_path(dir, k);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        note(verbose, "miss %s (key of %.1f MB in %.3f s)", k->hex, (double)k->bytes / 1e6,
             k->seconds);
        free(path);
        return false;
    }
    EntryHeader h;
    struct stat st;
    bool whole = fstat(fd, &st) == 0 && pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
                 !memcmp(h.magic, CACHE_MAGIC, 8) && !memcmp(h.key, k->digest, sizeof h.key) &&
                 st.st_size > HEADER_BYTES && h.size == (uint64_t)st.st_size - HEADER_BYTES;
    unsigned char *map = whole ? map_file(fd, (uint64_t)st.st_size) : NULL;
    char *tmp = concat(out, ".tmp-XXXXXX", "");
    int tfd = map ? ir_temp_create(tmp) : -1;
    unsigned char digest[32];
    bool copied = tfd >= 0 && write_hashed(tfd, 0, map + HEADER_BYTES, h.size, digest);
    bool intact = whole && (!copied || !memcmp(digest, h.digest, sizeof digest));
    bool ok = copied && intact && fchmod(tfd, library_mode()) == 0;
    if (tfd >= 0) ok = close(tfd) == 0 && ok;
    ok = ok && rename(tmp, out) == 0;
    if (tfd >= 0) ir_temp_release(tmp, !ok);
    if (map) munmap(map, (size_t)st.st_size);
    if (ok) futimens(fd, NULL); /* last used now: eviction goes by it */
    close(fd);
    if (!intact) {
        unlink(path);
        note(verbose, "miss %s (a corrupt entry, removed)", k->hex);
    } else if (!ok) {
        note(verbose, "miss %s (the entry could not be copied to '%s')", k->hex, out);
    } else {
        note(verbose, "hit %s (key of %.1f MB in %.3f s, %.1f MB copied in %.3f s)", k->hex,
             (double)k->bytes / 1e6, k->seconds, (double)h.size / 1e6, now() - t0);
    }
    free(tmp);
    free(path);
    return ok;
}

/* ---- storing and evicting ----------------------------------------------------- */

typedef struct Entry {
    char *name;
    time_t used;
    uint64_t size;
} Entry;

static int older_first(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    return (x->used > y->used) - (x->used < y->used);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Removes the least recently used entries until the rest fit in `max` bytes (`keep`,
 * the entry just stored, last of all), and temporaries that a killed cnnc left. */
static void evict(const char *dir, uint64_t max, const char *keep)
{
    DIR *d = opendir(dir);
    if (!d) return;
    Entry *es = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    time_t t = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        bool entry = has_suffix(de->d_name, ".entry"), temp = !strncmp(de->d_name, ".tmp-", 5);
        if ((!entry && !temp) || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (temp) {
            if (st.st_mtime + STALE_TEMP_SECONDS < t) unlinkat(dirfd(d), de->d_name, 0);
            continue;
        }
        if (n == cap) es = ir_xrealloc(es, (cap = cap ? 2 * cap : 64) * sizeof *es);
        es[n++] = (Entry){ir_xstrdup(de->d_name), strcmp(de->d_name, keep) ? st.st_mtime : t + 1,
                          (uint64_t)st.st_size};
        total += (uint64_t)st.st_size;
    }
    qsort(es, n, sizeof *es, older_first);
    for (size_t i = 0; i < n && total > max; i++)
        if (unlinkat(dirfd(d), es[i].name, 0) == 0) total -= es[i].size;
    for (size_t i = 0; i < n; i++)
        free(es[i].name);
    free(es);
    closedir(d);
}

void cache_store(const char *dir, const CacheKey *k, const char *path, bool verbose)
{
    uint64_t max = cache_max();
    int in = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (in >= 0) close(in);
        return;
    }
    EntryHeader h = {.magic = CACHE_MAGIC, .size = (uint64_t)st.st_size};
    memcpy(h.key, k->digest, sizeof h.key);
    if (h.size + HEADER_BYTES > max) {
        note(verbose, "not stored: %.1f MB is more than CNNC_CACHE_MAX", (double)h.size / 1e6);
        close(in);
        return;
    }
    char *tmp = concat(dir, "/.tmp-XXXXXX", "");
    unsigned char *map = map_file(in, h.size), header[HEADER_BYTES] = {0};
    int out = map && make_dirs(dir) ? ir_temp_create(tmp) : -1;
    bool ok = out >= 0 && write_hashed(out, HEADER_BYTES, map, h.size, h.digest);
    memcpy(header, &h, sizeof h);
    ok = ok && pwrite(out, header, sizeof header, 0) == (ssize_t)sizeof header;
    if (out >= 0) ok = close(out) == 0 && ok;
    if (map) munmap(map, (size_t)h.size);
    char *entry = entry_path(dir, k);
    ok = ok && rename(tmp, entry) == 0;
    if (out >= 0) ir_temp_release(tmp, !ok);
    close(in);
    if (ok) {
        note(verbose, "stored %s (%.1f MB)", k->hex, (double)h.size / 1e6);
        evict(dir, max, entry + strlen(dir) + 1);
    } else {
        note(verbose, "not stored: cannot write to '%s'", dir);
    }
    free(entry);
    free(tmp);
}
