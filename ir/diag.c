/* diag.c: user diagnostics in the style of gcc: `file:line:col: error: msg`,
 * then the source line and a caret under the column when the file's text is
 * known. Every message of a run goes through one Diag, which counts them. */
#include "ir.h"

#include <string.h>

struct DiagSource {
    DiagSource *next;
    const char *file;
    const char *text;
    size_t len;
};

static const char *const level_names[] = {"error", "warning", "note"};

void ir_diag_init(Diag *d, FILE *out)
{
    memset(d, 0, sizeof *d);
    d->out = out;
    d->arena = ir_arena_new();
}

void ir_diag_fini(Diag *d)
{
    ir_arena_free(d->arena);
    d->arena = NULL;
    d->sources = NULL;
    ir_diag_forget(d);
}

const char *ir_diag_add_source(Diag *d, const char *file, const char *text, size_t len)
{
    DiagSource *s = ir_alloc(d->arena, sizeof *s);
    s->file = ir_strdup(d->arena, file);
    s->text = ir_strndup(d->arena, text, len);
    s->len = len;
    s->next = d->sources;
    d->sources = s;
    return s->file;
}

static const DiagSource *find_source(const Diag *d, const char *file)
{
    if (!file)
        return NULL;
    for (const DiagSource *s = d->sources; s; s = s->next)
        if (s->file == file || strcmp(s->file, file) == 0)
            return s;
    return NULL;
}

/* Finds line `line` (1-based) of the source; false if the text is shorter. */
static bool find_line(const DiagSource *s, int32_t line, const char **start, size_t *len)
{
    const char *p = s->text, *end = s->text + s->len;
    for (int32_t i = 1; i < line; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return false;
        p = nl + 1;
    }
    if (p == end && line > 1)
        return false;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (n > 0 && p[n - 1] == '\r')
        n--;
    *start = p;
    *len = n;
    return true;
}

/* A line longer than this is quoted as a window of it around the column, so
 * a mistake in a generated 50,000-term line prints one screen, not 200 KB. */
enum { EXCERPT_MAX = 160 };

/* Moves `i` back to the start of the UTF-8 sequence it is inside. */
static size_t char_start(const char *text, size_t i)
{
    while (i > 0 && ((unsigned char)text[i] & 0xC0) == 0x80)
        i--;
    return i;
}

/* The quoted line (or its window) and its caret, behind a gutter as wide as
 * the line number (at least four). The caret padding copies tabs so it lines
 * up in any terminal, and counts a UTF-8 sequence as one column. */
static void print_excerpt(const Diag *d, SrcLoc loc)
{
    const DiagSource *s = find_source(d, loc.file);
    const char *text;
    size_t len;
    if (!s || loc.line <= 0 || !find_line(s, loc.line, &text, &len))
        return;
    char num[16];
    int width = snprintf(num, sizeof num, "%d", (int)loc.line);
    if (width < 4)
        width = 4;
    size_t col = loc.col > 0 ? (size_t)loc.col - 1 : 0, from = 0, to = len;
    if (len > EXCERPT_MAX) {
        from = char_start(text, col > EXCERPT_MAX / 2 ? col - EXCERPT_MAX / 2 : 0);
        to = from + EXCERPT_MAX < len ? char_start(text, from + EXCERPT_MAX) : len;
    }
    const char *pre = from > 0 ? "..." : "";
    fprintf(d->out, " %*s | %s%.*s%s\n", width, num, pre, (int)(to - from), text + from,
            to < len ? "..." : "");
    if (loc.col <= 0)
        return;
    fprintf(d->out, " %*s | %s", width, "", from > 0 ? "   " : "");
    for (size_t i = from; i < col && i < to; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\t')
            fputc('\t', d->out);
        else if ((c & 0xC0) != 0x80)
            fputc(' ', d->out);
    }
    fputs("^\n", d->out);
}

static void print_header(const Diag *d, DiagLevel level, SrcLoc loc)
{
    if (!loc.file)
        fprintf(d->out, "%s: ", level_names[level]);
    else if (loc.line <= 0)
        fprintf(d->out, "%s: %s: ", loc.file, level_names[level]);
    else if (loc.col <= 0)
        fprintf(d->out, "%s:%d: %s: ", loc.file, (int)loc.line, level_names[level]);
    else
        fprintf(d->out, "%s:%d:%d: %s: ", loc.file, (int)loc.line, (int)loc.col,
                level_names[level]);
}

void ir_diag_forget(Diag *d)
{
    d->seen = NULL;
    d->nseen = d->capseen = 0;
    d->muted = false;
}

static uint32_t hash_key(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int32_t seen_slot(const char *const *keys, int32_t cap, const char *key)
{
    uint32_t mask = (uint32_t)cap - 1;
    for (uint32_t i = hash_key(key) & mask;; i = (i + 1) & mask)
        if (!keys[i] || strcmp(keys[i], key) == 0)
            return (int32_t)i;
}

/* Adds `key` to the messages printed; false if it was there already. */
static bool remember(Diag *d, const char *key)
{
    if (2 * (d->nseen + 1) > d->capseen) {
        int32_t cap = d->capseen ? d->capseen * 2 : 64;
        const char **keys = ir_alloc(d->arena, (size_t)cap * sizeof *keys);
        for (int32_t i = 0; i < d->capseen; i++)
            if (d->seen[i])
                keys[seen_slot(keys, cap, d->seen[i])] = d->seen[i];
        d->seen = keys;
        d->capseen = cap;
    }
    int32_t i = seen_slot(d->seen, d->capseen, key);
    if (d->seen[i])
        return false;
    d->seen[i] = key;
    d->nseen++;
    return true;
}

/* True when this located error or warning was printed before; its notes
 * then follow it into silence. */
static bool repeated(Diag *d, DiagLevel level, SrcLoc loc, const char *fmt, va_list ap)
{
    if (level == DIAG_NOTE)
        return d->muted;
    d->muted = false;
    if (!d->out || !d->arena || !loc.file)
        return false;
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    char head[64];
    int h = snprintf(head, sizeof head, ":%d:%d:%d:", (int)loc.line, (int)loc.col, (int)level);
    const char *file = loc.file ? loc.file : "";
    size_t flen = strlen(file);
    char *key = ir_alloc(d->arena, flen + (size_t)h + (size_t)(n > 0 ? n : 0) + 1);
    memcpy(key, file, flen);
    memcpy(key + flen, head, (size_t)h);
    va_copy(aq, ap);
    vsnprintf(key + flen + (size_t)h, (size_t)(n > 0 ? n : 0) + 1, fmt, aq);
    va_end(aq);
    d->muted = !remember(d, key);
    return d->muted;
}

/* Once max_errors is exceeded, everything after is counted but not printed:
 * the later messages are mostly consequences of the earlier ones. A message
 * printed before is counted (callers compare counts to see a step fail) but
 * neither printed again nor counted toward max_errors. */
void ir_vdiag(Diag *d, DiagLevel level, SrcLoc loc, const char *fmt, va_list ap)
{
    if (!d)
        return;
    if (repeated(d, level, loc, fmt, ap)) {
        d->nerrors += level == DIAG_ERROR;
        d->nwarnings += level == DIAG_WARNING;
        d->nrepeated += level == DIAG_ERROR;
        return;
    }
    bool stopped = d->max_errors > 0 && d->nerrors - d->nrepeated > d->max_errors;
    if (level == DIAG_ERROR) {
        d->nerrors++;
        if (!stopped && d->max_errors > 0 && d->nerrors - d->nrepeated > d->max_errors) {
            if (d->out)
                fputs("too many errors; stopping\n", d->out);
            stopped = true;
        }
    } else if (level == DIAG_WARNING) {
        d->nwarnings++;
    }
    if (stopped || !d->out)
        return;
    print_header(d, level, loc);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    print_excerpt(d, loc);
}

void ir_error(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ir_vdiag(d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
}

void ir_warn(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ir_vdiag(d, DIAG_WARNING, loc, fmt, ap);
    va_end(ap);
}

void ir_note(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ir_vdiag(d, DIAG_NOTE, loc, fmt, ap);
    va_end(ap);
}
