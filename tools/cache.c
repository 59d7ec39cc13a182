/* cache.c: the content-addressed compile cache of cnnc (cache.h). Keys are SHA-256,
 * from OpenSSL's libcrypto (which uses the CPU's SHA instructions where there are any,
 * about 0.75 ms a megabyte): a key names what was compiled, and two inputs must never
 * share one. An entry's digest only tells whether its bytes changed since they were
 * stored, so it is XXH3-128 (libxxhash), five times faster: ResNet-50's model.so of
 * 145 MB hashes in 0.02 s, not 0.11 s, and VGG-16's of 730 MB in 0.1 s, not 0.55 s. */
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
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

extern char **environ;

#define CACHE_MAGIC "CNNCACH3"
#define CACHE_DEFAULT_MAX (UINT64_C(5) << 30)
#define CHUNK (256u << 10)
#define STALE_TEMP_SECONDS 3600

/* KEY.meta: what KEY.entry (the model.so's bytes, nothing else) must be. The stamp is
 * the entry's inode, size and modification time when it was last known whole: any
 * write to it through any name changes the time, and then the bytes are hashed
 * again before they are used. */
typedef struct EntryMeta {
    char magic[8];
    uint64_t size;            /* bytes of the model.so */
    unsigned char digest[16]; /* its XXH3-128, canonical (big-endian) */
    unsigned char key[16];    /* the start of the key it is stored under */
    uint64_t ino, dev;
    int64_t mtime_s, mtime_ns;
} EntryMeta;
_Static_assert(sizeof(EntryMeta) == 80, "cache entry meta layout");

#define DIGEST_BYTES 16

static void digest_of(const XXH3_state_t *x, unsigned char digest[DIGEST_BYTES])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(x));
    memcpy(digest, c.digest, DIGEST_BYTES);
}

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

/* dir/KEY.suffix, malloc'd. */
static char *entry_path(const char *dir, const CacheKey *k, const char *suffix)
{
    char name[80];
    snprintf(name, sizeof name, "/%s%s", k->hex, suffix);
    return concat(dir, name, "");
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

/* Writes the n bytes at p to fd, hashing them on the way (a chunk hashed, then
 * written while still in the CPU's cache); false on a write error. */
static bool write_hashed(int fd, const unsigned char *p, uint64_t n,
                         unsigned char digest[DIGEST_BYTES])
{
    XXH3_state_t x;
    XXH3_INITSTATE(&x);
    XXH3_128bits_reset(&x);
    bool ok = true;
    for (uint64_t at = 0; ok && at < n; at += CHUNK) {
        size_t len = n - at < CHUNK ? (size_t)(n - at) : CHUNK;
        XXH3_128bits_update(&x, p + at, len);
        ok = ir_write_all(fd, p + at, len);
    }
    digest_of(&x, digest);
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

/* The XXH3-128 of the file fd of `size` bytes; false when it cannot be read. */
static bool hash_file(int fd, uint64_t size, unsigned char digest[DIGEST_BYTES])
{
    unsigned char *map = map_file(fd, size);
    if (!map) return false;
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(map, (size_t)size));
    memcpy(digest, c.digest, DIGEST_BYTES);
    munmap(map, (size_t)size);
    return true;
}

static mode_t library_mode(void)
{
    mode_t mask = umask(0);
    umask(mask);
    return 0777 & ~mask;
}

static void set_stamp(EntryMeta *m, const struct stat *st)
{
    m->ino = (uint64_t)st->st_ino, m->dev = (uint64_t)st->st_dev;
    m->mtime_s = (int64_t)st->st_mtim.tv_sec, m->mtime_ns = (int64_t)st->st_mtim.tv_nsec;
}

static bool stamp_matches(const EntryMeta *m, const struct stat *st)
{
    return m->ino == (uint64_t)st->st_ino && m->dev == (uint64_t)st->st_dev &&
           m->mtime_s == (int64_t)st->st_mtim.tv_sec &&
           m->mtime_ns == (int64_t)st->st_mtim.tv_nsec && m->size == (uint64_t)st->st_size;
}

/* `out` becomes another name of the entry: a hard link made under a temporary name,
 * renamed over `out`. False where links cannot be made (another file system, one
 * without them). */
/* A hard link to `src` under a fresh registered temporary name made from the template
 * `tmp` (*made: the name was taken, and is the caller's to release). */
static bool link_temp(const char *src, char *tmp, bool *made)
{
    int fd = ir_temp_create(tmp);
    *made = fd >= 0;
    return fd >= 0 && close(fd) == 0 && unlink(tmp) == 0 && link(src, tmp) == 0;
}

static bool link_out(const char *entry, const char *out)
{
    char *tmp = concat(out, ".tmp-XXXXXX", "");
    bool made, ok = link_temp(entry, tmp, &made) && rename(tmp, out) == 0;
    /* Renaming a name over another of the same file leaves both: out already was
     * this entry. */
    if (made) ir_temp_release(tmp, true);
    free(tmp);
    return ok;
}

/* `out` as a file of its own, copied from the entry's n bytes mapped at p; false when
 * the copy's hash is not `want` (then nothing is written). */
static bool copy_out(const unsigned char *p, uint64_t n, const unsigned char want[DIGEST_BYTES],
                     const char *out, bool *intact)
{
    char *tmp = concat(out, ".tmp-XXXXXX", "");
    int fd = ir_temp_create(tmp);
    unsigned char digest[DIGEST_BYTES];
    bool copied = fd >= 0 && write_hashed(fd, p, n, digest);
    *intact = !copied || !memcmp(digest, want, DIGEST_BYTES);
    bool ok = copied && *intact && fchmod(fd, library_mode()) == 0;
    if (fd >= 0) ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, out) == 0;
    if (fd >= 0) ir_temp_release(tmp, !ok);
    free(tmp);
    return ok;
}

/* A hit is a hard link to the entry, made in a few hundred microseconds whatever the
 * model.so's size (VGG-16's is 730 MB, whose copy took 0.8 s): the entry is read-only,
 * and its stamp in KEY.meta says whether it is still the file stored. Where no link
 * can be made it is copied, and hashed on the way. */
bool cache_fetch(const char *dir, const CacheKey *k, const char *out, bool verbose)
{
    double t0 = now();
    char *path = entry_path(dir, k, ".entry"), *mpath = entry_path(dir, k, ".meta");
    int mfd = open(mpath, O_RDWR | O_CLOEXEC);
    int fd = mfd >= 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
        note(verbose, "miss %s (key of %.1f MB in %.3f s)", k->hex, (double)k->bytes / 1e6,
             k->seconds);
        if (mfd >= 0) close(mfd);
        free(path), free(mpath);
        return false;
    }
    EntryMeta m;
    struct stat st;
    bool whole = fstat(fd, &st) == 0 && pread(mfd, &m, sizeof m, 0) == (ssize_t)sizeof m &&
                 !memcmp(m.magic, CACHE_MAGIC, 8) && !memcmp(m.key, k->digest, sizeof m.key) &&
                 S_ISREG(st.st_mode) && st.st_size > 0 && m.size == (uint64_t)st.st_size;
    bool stamped = whole && stamp_matches(&m, &st);
    unsigned char digest[DIGEST_BYTES];
    bool intact = stamped || (whole && hash_file(fd, m.size, digest) &&
                              !memcmp(digest, m.digest, sizeof digest));
    bool linked = intact && link_out(path, out), ok = linked;
    if (intact && !linked) {
        unsigned char *map = map_file(fd, m.size);
        ok = map && copy_out(map, m.size, m.digest, out, &intact);
        if (map) munmap(map, (size_t)m.size);
    }
    if (ok && linked) {
        /* Modified now, as a file just written (make goes by it), and stamped so. */
        if (futimens(fd, NULL) == 0 && fstat(fd, &st) == 0) set_stamp(&m, &st);
        else memset(&m.ino, 0, sizeof m.ino);
    } else if (ok && !stamped) {
        set_stamp(&m, &st); /* hashed whole just now */
    }
    /* Rewriting the meta also marks the entry used now: eviction goes by it. */
    if (ok) (void)!pwrite(mfd, &m, sizeof m, 0);
    close(fd);
    close(mfd);
    if (!intact) {
        unlink(path);
        unlink(mpath);
        note(verbose, "miss %s (a corrupt entry, removed)", k->hex);
    } else if (!ok) {
        note(verbose, "miss %s (the entry could not be copied to '%s')", k->hex, out);
    } else {
        note(verbose, "hit %s (key of %.1f MB in %.3f s, %.1f MB %s in %.3f s)", k->hex,
             (double)k->bytes / 1e6, k->seconds, (double)m.size / 1e6,
             linked ? "linked" : "copied", now() - t0);
    }
    free(path), free(mpath);
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
 * the entry just stored, last of all); temporaries that a killed cnnc left, and an
 * entry or meta without the other, once they are an hour old. */
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
        struct stat st, est;
        bool meta = has_suffix(de->d_name, ".meta"), entry = has_suffix(de->d_name, ".entry");
        bool temp = !strncmp(de->d_name, ".tmp-", 5);
        if ((!meta && !entry && !temp) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        size_t len = strlen(de->d_name) - (meta ? 5 : entry ? 6 : 0);
        char other[300];
        snprintf(other, sizeof other, "%.*s%s", (int)len, de->d_name, meta ? ".entry" : ".meta");
        bool paired = !temp && len < 200 && fstatat(dirfd(d), other, &est, AT_SYMLINK_NOFOLLOW) == 0;
        if (!paired) {
            if (st.st_mtime + STALE_TEMP_SECONDS < t) unlinkat(dirfd(d), de->d_name, 0);
            continue;
        }
        if (entry) continue; /* counted with its meta */
        if (n == cap) es = ir_xrealloc(es, (cap = cap ? 2 * cap : 64) * sizeof *es);
        es[n++] = (Entry){ir_xstrdup(other), strcmp(other, keep) ? st.st_mtime : t + 1,
                          (uint64_t)est.st_size + (uint64_t)st.st_size};
        total += es[n - 1].size;
    }
    qsort(es, n, sizeof *es, older_first);
    for (size_t i = 0; i < n && total > max; i++) {
        size_t len = strlen(es[i].name) - 6;
        char meta[300];
        snprintf(meta, sizeof meta, "%.*s.meta", (int)len, es[i].name);
        if (unlinkat(dirfd(d), meta, 0) == 0) total -= es[i].size;
        unlinkat(dirfd(d), es[i].name, 0);
    }
    for (size_t i = 0; i < n; i++)
        free(es[i].name);
    free(es);
    closedir(d);
}

/* A file of the cache folder, written whole under a temporary name and renamed into
 * place; the entry itself read-only, as every hard link to it. */
static bool store_file(const char *dir, const char *dest, const void *p, uint64_t n,
                       unsigned char digest[DIGEST_BYTES], EntryMeta *stamp)
{
    char *tmp = concat(dir, "/.tmp-XXXXXX", "");
    int fd = ir_temp_create(tmp);
    bool ok = fd >= 0 && (digest ? write_hashed(fd, p, n, digest) : ir_write_all(fd, p, n));
    struct stat st;
    if (ok && stamp)
        ok = fchmod(fd, library_mode() & 0555) == 0 && fstat(fd, &st) == 0;
    if (fd >= 0) ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, dest) == 0;
    if (fd >= 0) ir_temp_release(tmp, !ok);
    if (ok && stamp) set_stamp(stamp, &st);
    free(tmp);
    return ok;
}

/* The model.so just written (open as fd) becomes the entry: a hard link to it, made
 * read-only and hashed where it lies, so that nothing is copied and a second compile
 * to the same -o replaces the file by itself. False where no link can be made. */
static bool link_in(const char *dir, const char *path, int fd, const char *entry, EntryMeta *m)
{
    char *tmp = concat(dir, "/.tmp-XXXXXX", "");
    struct stat st;
    bool made, linked = link_temp(path, tmp, &made);
    bool ok = linked && fchmod(fd, library_mode() & 0555) == 0 && fstat(fd, &st) == 0 &&
              (uint64_t)st.st_size == m->size && hash_file(fd, m->size, m->digest) &&
              rename(tmp, entry) == 0;
    if (linked && !ok) (void)!fchmod(fd, library_mode()); /* -o stays as it was written */
    if (made) ir_temp_release(tmp, !ok);
    if (ok) set_stamp(m, &st);
    free(tmp);
    return ok;
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
    EntryMeta m = {.magic = CACHE_MAGIC, .size = (uint64_t)st.st_size};
    memcpy(m.key, k->digest, sizeof m.key);
    if (m.size + sizeof m > max) {
        note(verbose, "not stored: %.1f MB is more than CNNC_CACHE_MAX", (double)m.size / 1e6);
        close(in);
        return;
    }
    char *entry = entry_path(dir, k, ".entry"), *meta = entry_path(dir, k, ".meta");
    bool ok = make_dirs(dir);
    if (ok && !link_in(dir, path, in, entry, &m)) {
        unsigned char *map = map_file(in, m.size);
        ok = map && store_file(dir, entry, map, m.size, m.digest, &m);
        if (map) munmap(map, (size_t)m.size);
    }
    ok = ok && store_file(dir, meta, &m, sizeof m, NULL, NULL);
    close(in);
    if (ok) {
        note(verbose, "stored %s (%.1f MB)", k->hex, (double)m.size / 1e6);
        evict(dir, max, entry + strlen(dir) + 1);
    } else {
        note(verbose, "not stored: cannot write to '%s'", dir);
    }
    free(entry), free(meta);
}
