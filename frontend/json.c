/* json.c: a recursive-descent reader for RFC 8259 JSON, strict (no comments,
 * no trailing commas, valid UTF-8 only) because weight-file headers come from
 * untrusted files. Every read is bounds-checked against the input length. */
#include "json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct Parser {
    Arena *a;
    const unsigned char *s;
    size_t len, pos;
    int depth;
    char *err;
    size_t errlen;
    bool failed;
} Parser;

static JsonValue *parse_value(Parser *p);

__attribute__((format(printf, 2, 3))) static void *fail(Parser *p, const char *fmt, ...)
{
    if (p->failed)
        return NULL;
    p->failed = true;
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->errlen)
        snprintf(p->err, p->errlen, "byte %zu: %s", p->pos, msg);
    return NULL;
}

static int peek(const Parser *p)
{
    return p->pos < p->len ? p->s[p->pos] : -1;
}

static void skip_ws(Parser *p)
{
    for (int c = peek(p); c == ' ' || c == '\t' || c == '\n' || c == '\r'; c = peek(p))
        p->pos++;
}

static JsonValue *new_value(Parser *p, JsonKind kind)
{
    JsonValue *v = ir_alloc(p->a, sizeof *v);
    v->kind = kind;
    return v;
}

static JsonValue *parse_literal(Parser *p, const char *word, JsonKind kind, bool b)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, "invalid literal (expected '%s')", word);
    p->pos += n;
    JsonValue *v = new_value(p, kind);
    v->boolean = b;
    return v;
}

static size_t scan_digits(Parser *p)
{
    size_t start = p->pos;
    for (int c = peek(p); c >= '0' && c <= '9'; c = peek(p))
        p->pos++;
    return p->pos - start;
}

/* number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static JsonValue *parse_number(Parser *p)
{
    size_t start = p->pos;
    bool integral = true;
    if (peek(p) == '-')
        p->pos++;
    size_t nint = scan_digits(p);
    if (nint == 0)
        return fail(p, "expected a digit");
    if (nint > 1 && p->s[p->pos - nint] == '0')
        return fail(p, "leading zeros are not allowed in numbers");
    if (peek(p) == '.') {
        p->pos++;
        integral = false;
        if (scan_digits(p) == 0)
            return fail(p, "expected a digit after '.'");
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        integral = false;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (scan_digits(p) == 0)
            return fail(p, "expected a digit in the exponent");
    }
    /* strtod and strtoll need a NUL-terminated copy; the input may have no NUL. */
    char *text = ir_strndup(p->a, (const char *)p->s + start, p->pos - start);
    JsonValue *v = new_value(p, JSON_NUMBER);
    v->number = strtod(text, NULL);
    if (integral) {
        errno = 0;
        long long i = strtoll(text, NULL, 10);
        v->is_int = errno != ERANGE;
        v->integer = v->is_int ? i : 0;
    }
    return v;
}

/* Length of the UTF-8 sequence at s (at most `avail` bytes), 0 if invalid:
 * overlong forms, surrogates and code points past U+10FFFF are rejected. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                            : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || n > avail)
        return 0;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static size_t utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static bool hex4(Parser *p, uint32_t *out)
{
    if (p->len - p->pos < 4) {
        fail(p, "truncated \\u escape");
        return false;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p->s[p->pos + i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            fail(p, "invalid hex digit in \\u escape");
            return false;
        }
        v = v << 4 | (uint32_t)d;
    }
    p->pos += 4;
    *out = v;
    return true;
}

/* \uXXXX, with UTF-16 surrogate pairs joined into one code point. */
static bool unicode_escape(Parser *p, uint32_t *cp)
{
    if (!hex4(p, cp))
        return false;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) {
        fail(p, "unpaired low surrogate in \\u escape");
        return false;
    }
    if (*cp < 0xD800 || *cp > 0xDBFF)
        return true;
    uint32_t lo;
    if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
        fail(p, "high surrogate not followed by a low surrogate");
        return false;
    }
    p->pos += 2;
    if (!hex4(p, &lo))
        return false;
    if (lo < 0xDC00 || lo > 0xDFFF) {
        fail(p, "high surrogate not followed by a low surrogate");
        return false;
    }
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    return true;
}

static bool escape(Parser *p, char *out, size_t *n)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    int c = peek(p);
    const char *hit = c > 0 ? strchr(from, c) : NULL;
    if (hit) {
        p->pos++;
        out[(*n)++] = to[hit - from];
        return true;
    }
    if (c != 'u') {
        fail(p, "invalid escape sequence");
        return false;
    }
    p->pos++;
    uint32_t cp;
    if (!unicode_escape(p, &cp))
        return false;
    *n += utf8_put(out + *n, cp);
    return true;
}

/* Decoded text is never longer than its source, so the raw length found by a
 * first scan bounds the buffer. */
static bool parse_string(Parser *p, const char **str, size_t *len)
{
    p->pos++; /* the opening quote */
    size_t end = p->pos;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) {
        fail(p, "unterminated string");
        return false;
    }
    char *out = ir_alloc(p->a, end - p->pos + 1);
    size_t n = 0;
    while (p->s[p->pos] != '"') {
        unsigned char c = p->s[p->pos];
        size_t k;
        if (c == '\\') {
            p->pos++;
            if (!escape(p, out, &n))
                return false;
        } else if (c < 0x20) {
            fail(p, "control character in string");
            return false;
        } else if ((k = utf8_seq(p->s + p->pos, end - p->pos)) == 0) {
            fail(p, "invalid UTF-8 in string");
            return false;
        } else {
            memcpy(out + n, p->s + p->pos, k);
            n += k;
            p->pos += k;
        }
    }
    p->pos++;
    out[n] = '\0';
    *str = out;
    *len = n;
    return true;
}

/* Appends `v` after `*tail`; keeps members in input order. */
static void append(JsonValue *parent, JsonValue ***tail, JsonValue *v)
{
    **tail = v;
    *tail = &v->next;
    parent->count++;
}

static JsonValue *parse_array(Parser *p)
{
    JsonValue *arr = new_value(p, JSON_ARRAY);
    JsonValue **tail = &arr->first;
    p->pos++;
    skip_ws(p);
    if (peek(p) == ']') {
        p->pos++;
        return arr;
    }
    for (;;) {
        JsonValue *v = parse_value(p);
        if (!v)
            return NULL;
        append(arr, &tail, v);
        skip_ws(p);
        int c = peek(p);
        p->pos++;
        if (c == ']')
            return arr;
        if (c != ',') {
            p->pos--;
            return fail(p, "expected ',' or ']' in array");
        }
    }
}

static JsonValue *parse_member(Parser *p)
{
    skip_ws(p);
    if (peek(p) != '"')
        return fail(p, "expected a string as object key");
    const char *key;
    size_t keylen;
    if (!parse_string(p, &key, &keylen))
        return NULL;
    skip_ws(p);
    if (peek(p) != ':')
        return fail(p, "expected ':' after object key");
    p->pos++;
    JsonValue *v = parse_value(p);
    if (v) {
        v->key = key;
        v->keylen = keylen;
    }
    return v;
}

static JsonValue *parse_object(Parser *p)
{
    JsonValue *obj = new_value(p, JSON_OBJECT);
    JsonValue **tail = &obj->first;
    p->pos++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
        return obj;
    }
    for (;;) {
        JsonValue *v = parse_member(p);
        if (!v)
            return NULL;
        append(obj, &tail, v);
        skip_ws(p);
        int c = peek(p);
        p->pos++;
        if (c == '}')
            return obj;
        if (c != ',') {
            p->pos--;
            return fail(p, "expected ',' or '}' in object");
        }
    }
}

static JsonValue *parse_nested(Parser *p, JsonValue *(*parse)(Parser *))
{
    if (p->depth >= JSON_MAX_DEPTH)
        return fail(p, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    p->depth++;
    JsonValue *v = parse(p);
    p->depth--;
    return v;
}

static JsonValue *parse_value(Parser *p)
{
    skip_ws(p);
    int c = peek(p);
    switch (c) {
    case -1:
        return fail(p, "unexpected end of input");
    case '{':
        return parse_nested(p, parse_object);
    case '[':
        return parse_nested(p, parse_array);
    case 't':
        return parse_literal(p, "true", JSON_BOOL, true);
    case 'f':
        return parse_literal(p, "false", JSON_BOOL, false);
    case 'n':
        return parse_literal(p, "null", JSON_NULL, false);
    case '"': {
        JsonValue *v = new_value(p, JSON_STRING);
        return parse_string(p, &v->str, &v->len) ? v : NULL;
    }
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(p);
        return fail(p, "unexpected character '%c'", c >= 0x20 && c < 0x7F ? c : '?');
    }
}

JsonValue *fe_json_parse(Arena *a, const char *text, size_t len, char *err, size_t errlen)
{
    Parser p = {.a = a, .s = (const unsigned char *)text, .len = len, .err = err,
                .errlen = errlen};
    JsonValue *v = parse_value(&p);
    if (!v)
        return NULL;
    skip_ws(&p);
    if (p.pos != p.len)
        return fail(&p, "unexpected text after the JSON value");
    return v;
}

const JsonValue *fe_json_get(const JsonValue *obj, const char *key)
{
    if (!obj || obj->kind != JSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (const JsonValue *m = obj->first; m; m = m->next)
        if (m->keylen == n && memcmp(m->key, key, n) == 0)
            return m;
    return NULL;
}

const char *fe_json_kind_name(JsonKind k)
{
    static const char *const names[] = {"null", "boolean", "number", "string", "array",
                                        "object"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}
