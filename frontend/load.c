/* load.c: the frontend's entry points. Reads a model file and the files it
 * includes (each once, relative to the including file), parses them, collects
 * their blocks and the one network, and elaborates the network into a graph. */
#define _XOPEN_SOURCE 700 /* realpath */

#include "elab.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct Loader {
    Arena *arena; /* syntax trees and file texts; freed after elaboration */
    Diag *d;
    Elab *E;
    const FeOptions *opt;
    StrMap seen; /* canonical paths of the files read */
    const NetworkDef *net;
    bool syntax_ok;
} Loader;

/* Opens a file for reading without waiting for the writer of a FIFO (one
 * without a writer reads as empty); a directory fails with EISDIR. */
static FILE *open_source(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    struct stat st;
    int err = fstat(fd, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    FILE *f = err || fcntl(fd, F_SETFL, 0) != 0 ? NULL : fdopen(fd, "rb");
    if (!f) {
        err = err ? err : errno;
        close(fd);
        errno = err;
    }
    return f;
}

/* Reads at most `max` bytes: a longer file, or an endless device such as
 * /dev/zero, fails with EFBIG. */
static bool read_file(Arena *a, const char *path, int64_t max, char **text, size_t *len)
{
    FILE *f = open_source(path);
    if (!f)
        return false;
    size_t cap = 4096, n = 0, most = (size_t)max + 1;
    char *buf = ir_xmalloc(cap);
    for (size_t got; n < most && (got = fread(buf + n, 1, (cap < most ? cap : most) - n, f));) {
        n += got;
        if (n == cap)
            buf = ir_xrealloc(buf, cap *= 2);
    }
    int err = ferror(f) ? errno : n > (size_t)max ? EFBIG : 0;
    fclose(f);
    if (err) {
        free(buf);
        errno = err;
        return false;
    }
    *text = ir_strndup(a, buf, n);
    *len = n;
    free(buf);
    return true;
}

static bool read_include(Loader *L, const char *path, char **text, size_t *len)
{
    const char *s;
    if (!L->opt || !L->opt->read_include)
        return read_file(L->arena, path, L->E->lim.max_source, text, len);
    if (!L->opt->read_include(path, &s, len)) {
        errno = ENOENT;
        return false;
    }
    *text = ir_strndup(L->arena, s, *len);
    return true;
}

static void read_failed(Diag *d, SrcLoc loc, const char *path, int64_t max)
{
    if (errno == EFBIG)
        ir_error(d, loc, "'%s' is larger than the limit on source files, %lld bytes (raise it "
                 "with --max-source=BYTES)", path, (long long)max);
    else
        ir_error(d, loc, "cannot read '%s': %s", path, strerror(errno));
}

/* Marks a file as read; false if it was already. */
static bool first_visit(Loader *L, const char *path)
{
    char buf[PATH_MAX];
    bool fake = L->opt && L->opt->read_include;
    const char *key = !fake && realpath(path, buf) ? buf : path;
    if (fe_map_get(&L->seen, key))
        return false;
    fe_map_put(&L->seen, L->arena, ir_strdup(L->arena, key), (void *)L);
    return true;
}

/* `path` as seen from the directory of `from`. */
static const char *relative_to(Arena *a, const char *from, const char *path)
{
    const char *slash = strrchr(from, '/');
    if (path[0] == '/' || !slash)
        return path;
    return ir_strfmt(a, "%.*s/%s", (int)(slash - from), from, path);
}

static void load_text(Loader *L, const char *name, const char *text, size_t len);

static void load_include(Loader *L, const char *from, const Include *inc)
{
    const char *path = relative_to(L->arena, from, inc->path);
    if (!first_visit(L, path))
        return;
    char *text;
    size_t len;
    if (!read_include(L, path, &text, &len)) {
        read_failed(L->d, inc->loc, path, L->E->lim.max_source);
        return;
    }
    load_text(L, path, text, len);
}

static void add_definitions(Loader *L, const AstFile *f)
{
    for (int32_t i = 0; i < f->blocks.n; i++)
        fe_elab_add_block(L->E, f->blocks.items[i]);
    for (int32_t i = 0; i < f->networks.n; i++) {
        const NetworkDef *n = f->networks.items[i];
        if (L->net) {
            ir_error(L->d, n->loc, "a model has one network, and '%s' is a second one",
                     n->name);
            ir_note(L->d, L->net->loc, "the first is '%s'", L->net->name);
            continue;
        }
        L->net = n;
    }
}

/* The syntax trees keep their own copy of the file name: the Diag may be
 * gone before them (a REPL's loaded model outlives the command that loaded it). */
static void load_text(Loader *L, const char *name, const char *text, size_t len)
{
    ir_diag_add_source(L->d, name, text, len);
    const char *file = ir_strdup(L->arena, name);
    AstFile *f = fe_parse(L->arena, L->d, file, text, len);
    if (!f) {
        L->syntax_ok = false;
        return;
    }
    for (int32_t i = 0; i < f->includes.n; i++)
        load_include(L, file, &f->includes.items[i]);
    add_definitions(L, f);
}

static Graph *elaborate(Loader *L, const char *name)
{
    if (!L->net) {
        ir_error(L->d, (SrcLoc){name, 0, 0}, "no network in this file%s",
                 L->E->blocks.n ? " (it only defines blocks)" : "");
        return NULL;
    }
    const NetworkDef *net = L->net;
    fe_elab_begin(L->E, net);
    for (int32_t i = 0; i < net->body.n; i++)
        if (!fe_elab_stmt(L->E, net->body.items[i]))
            break;
    return fe_elab_finish(L->E, net);
}

static Graph *load(const char *name, const char *text, size_t len, const FeOptions *opt,
                   Diag *d)
{
    Diag quiet;
    if (!d) {
        ir_diag_init(&quiet, NULL);
        d = &quiet;
    }
    int errors = d->nerrors;
    Loader L = {.arena = ir_arena_new(), .d = d, .opt = opt, .syntax_ok = true};
    L.E = fe_elab_new(d, opt);
    first_visit(&L, name);
    load_text(&L, name, text, len);
    Graph *g = NULL;
    if (L.syntax_ok)
        g = elaborate(&L, name);
    if (g && (d->nerrors > errors || !ir_verify(g, d))) {
        ir_graph_free(g);
        g = NULL;
    }
    fe_elab_free(L.E);
    ir_arena_free(L.arena);
    if (d == &quiet)
        ir_diag_fini(&quiet);
    return g;
}

bool fe_load_defs(Elab *E, Arena *arena, const char *path, Diag *d, const NetworkDef **net)
{
    int errors = d->nerrors;
    Loader L = {.arena = arena, .d = d, .E = E, .syntax_ok = true};
    char *text;
    size_t len;
    *net = NULL;
    if (!read_file(arena, path, E->lim.max_source, &text, &len)) {
        read_failed(d, (SrcLoc){path, 0, 0}, path, E->lim.max_source);
        return false;
    }
    first_visit(&L, path);
    load_text(&L, path, text, len);
    if (!L.syntax_ok || d->nerrors > errors)
        return false;
    *net = L.net;
    return true;
}

Graph *fe_load_string(const char *name, const char *text, const FeOptions *opt, Diag *d)
{
    return load(name ? name : "<string>", text, strlen(text), opt, d);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

Graph *fe_load_file(const char *path, const FeOptions *opt, Diag *d)
{
    if (ends_with(path, ".onnx"))
        return fe_load_onnx(path, opt, d);
    Arena *a = ir_arena_new();
    char *text;
    size_t len;
    Graph *g = NULL;
    int64_t max = fe_limits(opt ? &opt->limits : NULL).max_source;
    if (read_file(a, path, max, &text, &len))
        g = load(path, text, len, opt, d);
    else
        read_failed(d, (SrcLoc){path, 0, 0}, path, max);
    ir_arena_free(a);
    return g;
}
