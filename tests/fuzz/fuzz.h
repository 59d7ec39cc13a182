/* fuzz.h: what the libFuzzer harnesses of tests/fuzz share. Each harness is one
 * file fuzz_NAME.c defining LLVMFuzzerTestOneInput; a finding is a sanitizer
 * report, a crash, or abort() on a broken property. */
#ifndef CNNC_FUZZ_H
#define CNNC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a NUL-terminated string (malloc'd; bytes after a NUL are cut). */
char *fuzz_cstring(const uint8_t *data, size_t size);
/* A path naming a file in memory that holds exactly `data` (rewritten on each
 * call): the readers that take a path read it without touching the disk. */
const char *fuzz_file(const uint8_t *data, size_t size);
/* The graph as ir_print writes it (malloc'd). */
char *fuzz_print(const Graph *g);
/* Prints `g` and parses the text back: the graph must be the same (but for
 * weights, locations and plans) and print the same text, else the harness
 * aborts showing the text. */
void fuzz_round_trip(const Graph *g);

#endif
