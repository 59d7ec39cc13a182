/* target.c: checks a CPU name and feature list (--cpu, --features) against what
 * LLVM knows for the target before LLVM sees them: given an unknown name, LLVM
 * prints a warning per subtarget it makes and may then stop the process.
 *
 * The names come from LLVM itself, so they never go stale: LLVM 16 has no C API
 * that lists them, but a target machine made for the CPU "help" prints the
 * target's tables of CPUs and features (what `llc -mcpu=help` shows) to standard
 * error. That text is captured once through a pipe, read by a thread so that no
 * table size can fill the pipe, and parsed into two lists of names. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <llvm-c/Target.h>

#include "cg.h"

typedef struct Names {
    char **v;
    int32_t n, cap;
} Names;

typedef struct Tables {
    bool done, ok; /* ok: the tables were read (else names are not checked) */
    Names cpus, features;
} Tables;

typedef struct Capture {
    int fd;
    char *text;
    size_t len, cap;
} Capture;

static void *drain(void *arg)
{
    Capture *c = arg;
    char chunk[4096];
    ssize_t k;
    while ((k = read(c->fd, chunk, sizeof chunk)) > 0 || (k < 0 && errno == EINTR)) {
        if (k < 0) continue;
        if (c->len + (size_t)k + 1 > c->cap) {
            c->cap = 2 * (c->len + (size_t)k + 1);
            c->text = ir_xrealloc(c->text, c->cap);
        }
        memcpy(c->text + c->len, chunk, (size_t)k);
        c->len += (size_t)k;
    }
    return NULL;
}

/* What LLVM writes to standard error while it makes a target machine for CPU
 * "help" (LLVM prints the tables once per process); NULL if it cannot be caught. */
static char *help_text(LLVMTargetRef target, const char *triple)
{
    int fds[2], saved = -1;
    Capture c = {.cap = 1};
    pthread_t th;
    /* With standard error closed, the pipe itself could become descriptor 2. */
    if (fcntl(STDERR_FILENO, F_GETFD) < 0 || pipe(fds) != 0) return NULL;
    fflush(stderr);
    c.fd = fds[0];
    c.text = ir_xmalloc(1);
    bool ok = (saved = dup(STDERR_FILENO)) >= 0 && dup2(fds[1], STDERR_FILENO) >= 0;
    close(fds[1]);
    if (ok && pthread_create(&th, NULL, drain, &c) == 0) {
        LLVMDisposeTargetMachine(LLVMCreateTargetMachine(target, triple, "help", "",
                                                         LLVMCodeGenLevelNone, LLVMRelocPIC,
                                                         LLVMCodeModelDefault));
        dup2(saved, STDERR_FILENO); /* the pipe's last writer closes: drain sees the end */
        pthread_join(th, NULL);
    } else {
        ok = false;
        if (saved >= 0) dup2(saved, STDERR_FILENO);
    }
    if (saved >= 0) close(saved);
    close(fds[0]);
    c.text[c.len] = 0;
    if (!ok) free(c.text), c.text = NULL;
    return c.text;
}

static void add_name(Names *s, const char *p, size_t len)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 128;
        s->v = ir_xrealloc(s->v, (size_t)s->cap * sizeof *s->v);
    }
    s->v[s->n] = memcpy(ir_xmalloc(len + 1), p, len);
    s->v[s->n++][len] = 0;
}

/* The names of the table headed `title`: "  NAME - what it is" lines up to a blank one. */
static void parse_table(const char *text, const char *title, Names *out)
{
    const char *p = strstr(text, title);
    if (!p) return;
    p = strchr(p, '\n');
    while (p && *++p == '\n') {}
    for (; p && *p == ' '; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        while (*p == ' ') p++;
        size_t len = strcspn(p, " \n");
        if (len) add_name(out, p, len);
    }
}

static const Tables *tables(LLVMTargetRef target, const char *triple)
{
    static Tables t;
    if (t.done) return &t;
    t.done = true;
    char *text = help_text(target, triple);
    if (!text) return &t;
    parse_table(text, "Available CPUs for this target:", &t.cpus);
    parse_table(text, "Available features for this target:", &t.features);
    t.ok = t.cpus.n > 0 && t.features.n > 0;
    free(text);
    return &t;
}

static bool has_name(const Names *s, const char *name, size_t len)
{
    for (int32_t i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == len && !strncmp(s->v[i], name, len)) return true;
    return false;
}

/* Levenshtein distance, capped: names longer than 63 are never close. */
static size_t distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b), row[64];
    if (la >= 64 || lb >= 64) return 64;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* "; did you mean 'a', 'b' or 'c'?" when some names are close to `name`, else
 * "; valid KIND: a, b, ..." with all of them. */
static void suggest(const Names *s, const char *name, size_t len, const char *kind, char *err,
                    size_t n)
{
    size_t at = strlen(err), limit = len < 6 ? 1 : len / 3;
    int32_t close[8], nclose = 0;
    for (int32_t i = 0; i < s->n && nclose < 8; i++)
        if (distance(name, len, s->v[i]) <= limit) close[nclose++] = i;
    if (at < n && nclose)
        at += (size_t)snprintf(err + at, n - at, "; did you mean ");
    for (int32_t k = 0; k < nclose && at < n; k++)
        at += (size_t)snprintf(err + at, n - at, "%s'%s'%s", k == 0 ? "" : k == nclose - 1 ? " or " : ", ",
                               s->v[close[k]], k == nclose - 1 ? "?" : "");
    if (nclose) return;
    if (at < n) at += (size_t)snprintf(err + at, n - at, "; valid %s: ", kind);
    for (int32_t i = 0; i < s->n && at < n; i++)
        at += (size_t)snprintf(err + at, n - at, "%s%s", i ? ", " : "", s->v[i]);
}

/* The architecture part of a triple, for messages: "x86_64". */
static int arch_len(const char *triple)
{
    return (int)strcspn(triple, "-");
}

static bool check_features(const Tables *t, const char *triple, const char *fs, char *err,
                           size_t n)
{
    if (!*fs) return true;
    for (const char *p = fs;; p++) {
        size_t len = strcspn(p, ",");
        if (len == 0) return snprintf(err, n, "--features: empty entry in '%s'", fs), false;
        if (len < 2 || (p[0] != '+' && p[0] != '-')) {
            snprintf(err, n, "--features: '%.*s' is not +FEATURE or -FEATURE (e.g. +avx2,-fma)",
                     (int)len, p);
            return false;
        }
        if (!has_name(&t->features, p + 1, len - 1)) {
            snprintf(err, n, "unknown feature '%.*s' for %.*s", (int)len - 1, p + 1,
                     arch_len(triple), triple);
            suggest(&t->features, p + 1, len - 1, "features", err, n);
            return false;
        }
        p += len;
        if (!*p) return true;
    }
}

bool cg_check_target(const CgTarget *t, char *err, size_t n)
{
    if (!t || ((!t->cpu || !strcmp(t->cpu, "native")) && (!t->features || !*t->features)))
        return true;
    LLVMInitializeNativeTarget();
    char *triple = t->triple ? NULL : LLVMGetDefaultTargetTriple(), *msg = NULL;
    const char *tr = t->triple ? t->triple : triple;
    LLVMTargetRef target;
    bool ok = true;
    if (LLVMGetTargetFromTriple(tr, &target, &msg)) {
        snprintf(err, n, "unknown target '%s': %s", tr, msg ? msg : "");
        ok = false;
    }
    const Tables *tb = ok ? tables(target, tr) : NULL;
    if (ok && tb->ok && t->cpu && strcmp(t->cpu, "native") != 0 &&
        !has_name(&tb->cpus, t->cpu, strlen(t->cpu))) {
        snprintf(err, n, "unknown CPU '%s' for %.*s", t->cpu, arch_len(tr), tr);
        suggest(&tb->cpus, t->cpu, strlen(t->cpu), "CPUs", err, n);
        ok = false;
    }
    if (ok && tb->ok && t->features) ok = check_features(tb, tr, t->features, err, n);
    LLVMDisposeMessage(msg);
    LLVMDisposeMessage(triple);
    return ok;
}
