/* cache.h: the compile cache of cnnc. A model.so is stored under the SHA-256 of all
 * that decides its bytes: the compiler itself (its version, the executable's bytes,
 * LLVM's version), the target, the runtime archive linked in, the linker named by $CC,
 * the command line (file names left out) and the graph as loaded, every parameter's
 * bytes included. A second compile of the same model gives the stored file instead.
 *
 * Entries live in $XDG_CACHE_HOME/cnnc (default ~/.cache/cnnc): KEY.entry, the model.so
 * itself, read-only, and KEY.meta (magic, size, SHA-256, and the entry's inode and
 * modification time when it was last known whole). The model.so of -o and the entry
 * are hard links of one file where the file system allows, copies elsewhere. Each file
 * is written to a temporary file and renamed into place, so a concurrent cnnc sees an
 * entry whole or not at all; one changed since its stamp is hashed again, and one
 * whose size or hash is wrong is ignored and removed.
 * Past CNNC_CACHE_MAX bytes (default 5G) the least recently used entries go. Every
 * failure of the cache (no home, a folder not writable, a full disk) leaves the compile
 * as it would be without it. */
#ifndef CNNC_CACHE_H
#define CNNC_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "ir.h"

typedef struct CacheKey {
    unsigned char digest[32];
    char hex[65];
    uint64_t bytes; /* of files and parameters hashed */
    double seconds; /* hashing took */
} CacheKey;

/* What the key covers besides the graph. `elide` lists pointers into argv (the model,
 * -o and --weights values): an argument holding one is hashed up to it, so a file's
 * name never matters, only what was read from it. `skip` lists the arguments that do
 * not change the output (-v, --no-cache), left out whole. */
typedef struct CacheInputs {
    int argc;
    char **argv;
    const char *const *elide;
    int nelide;
    const char *const *skip;
    int nskip;
    const char *runtime; /* the runtime archive linked in, hashed by its bytes */
    const char *version; /* the compiler's version string */
} CacheInputs;

/* The key of compiling `g` (loaded, parameters bound, before any pass). False when
 * something it covers cannot be read (the executable, the runtime): then nothing is
 * cached. */
bool cache_key(const Graph *g, const CacheInputs *in, CacheKey *k);

/* The cache folder, malloc'd; NULL when there is none ($CNNC_NO_CACHE set to anything
 * but "" or "0", no $XDG_CACHE_HOME and no $HOME, CNNC_CACHE_MAX=0). */
char *cache_dir(void);

/* On a hit, makes `out` a hard link to the stored model.so, or else a copy (through a
 * temporary name, renamed), and returns true. A missing entry, or one found corrupt (then removed), is a miss.
 * `verbose` notes on standard error what happened. */
bool cache_fetch(const char *dir, const CacheKey *k, const char *out, bool verbose);

/* Stores the file `path` (the model.so just written) under k, as a hard link made
 * read-only where it can (else a copy), then evicts the least
 * recently used entries beyond the size limit. Failures are silent unless verbose. */
void cache_store(const char *dir, const CacheKey *k, const char *path, bool verbose);

#endif
