/* json.h: a small strict JSON reader for the headers of weight files. Values
 * live in an arena; parse errors name the byte offset where parsing stopped. */
#ifndef CNNC_JSON_H
#define CNNC_JSON_H

#include "ir.h"

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } JsonKind;

typedef struct JsonValue JsonValue;
struct JsonValue {
    JsonKind kind;
    const char *key; /* member of an object: its name (NUL-terminated), else NULL */
    size_t keylen;   /* bytes of key; a "\u0000" escape may put a NUL inside */
    JsonValue *next; /* next element of the enclosing array or object */
    bool boolean;
    double number;
    bool is_int;    /* number written without fraction or exponent that fits int64 */
    int64_t integer;
    const char *str; /* JSON_STRING: decoded UTF-8, NUL-terminated */
    size_t len;
    JsonValue *first; /* JSON_ARRAY, JSON_OBJECT: elements or members in order */
    int32_t count;
};

#define JSON_MAX_DEPTH 64

/* Parses exactly one value (surrounded by optional whitespace) from
 * text[0..len). Never reads outside that range. Returns NULL and writes
 * "byte N: what went wrong" to err on failure. */
JsonValue *fe_json_parse(Arena *a, const char *text, size_t len, char *err, size_t errlen);

/* The first member of `obj` named `key`, or NULL (also when obj is no object). */
const JsonValue *fe_json_get(const JsonValue *obj, const char *key);

/* "object", "array", ...: for messages about a value of the wrong kind. */
const char *fe_json_kind_name(JsonKind k);

#endif
