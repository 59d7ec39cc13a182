/* weights.c: the weights blob of a model. Kernels ask for their packed weights
 * by name and get a constant pointer into one external symbol; the bytes stay
 * in a plain buffer until the linker, the JIT or cg_embed_weights places them. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"
#include "cnnc/abi.h"

#define BLOB_ALIGN 64

typedef struct CgWeightRef {
    char *name;
    int64_t offset;
} CgWeightRef;

/* ---- the checksum, computed while the blob fills --------------------------- */

/* XXH64 (cnnc/abi.h) takes about 0.03 s for ResNet-50's 118 MB, but the blob is
 * complete only once the last kernel is built. So a thread hashes each part of the
 * blob as soon as it is appended, in whole stripes of 32 bytes, while the next
 * kernels are built, and cg_weights_hash finishes only the rest. The blob moves when
 * it grows: the thread reads it only between appends, under the lock. */
#define HASH_CHUNK (4 << 20) /* a multiple of 32 */

typedef struct CgHasher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const CgBlob *blob;
    int64_t ready, done; /* bytes appended, bytes hashed (a multiple of 32) */
    bool busy, stop;
    RtHash h;
} CgHasher;

static void *hasher_run(void *arg)
{
    CgHasher *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (t->ready - t->done < 32 && !t->stop)
            pthread_cond_wait(&t->cv, &t->mu);
        int64_t n = (t->ready - t->done) / 32 * 32;
        n = n < HASH_CHUNK ? n : HASH_CHUNK;
        if (n == 0) break; /* stopped, less than a stripe left */
        const uint8_t *from = (const uint8_t *)t->blob->data + t->done;
        t->busy = true;
        pthread_mutex_unlock(&t->mu);
        RtHash h = t->h;
        rt_hash_stripes(&h, from, n);
        pthread_mutex_lock(&t->mu);
        t->h = h;
        t->done += n;
        t->busy = false;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* NULL when no thread could be started: cg_weights_hash then hashes the blob itself. */
static CgHasher *hasher_start(const CgBlob *b)
{
    CgHasher *t = ir_xcalloc(1, sizeof *t);
    t->blob = b;
    rt_hash_init(&t->h);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (pthread_create(&t->thread, NULL, hasher_run, t) == 0) return t;
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
    return NULL;
}

/* Before the blob moves: returns with the lock held and the thread between chunks. */
static void hasher_hold(CgHasher *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    while (t->busy)
        pthread_cond_wait(&t->cv, &t->mu);
}

/* After an append: the thread may hash up to `size`. */
static void hasher_release(CgHasher *t, int64_t size)
{
    if (!t) return;
    t->ready = size;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Waits for the thread to hash every whole stripe appended and end; the state after
 * them. */
static RtHash hasher_finish(CgHasher *t, int64_t *hashed)
{
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    *hashed = t->done;
    RtHash h = t->h;
    free(t);
    return h;
}

CgBlob *cg_blob_ref(CgBlob *b)
{
    if (b) b->refs++;
    return b;
}

void cg_blob_unref(CgBlob *b)
{
    if (!b || --b->refs > 0) return;
    if (b->hasher) {
        int64_t hashed;
        hasher_finish(b->hasher, &hashed);
    }
    free(b->raw);
    free(b);
}

void cg_weights_free(Cg *cg)
{
    cg_blob_unref(cg->blob);
    for (int32_t i = 0; i < cg->nwrefs; i++)
        free(cg->wrefs[i].name);
    free(cg->wrefs);
    cg->blob = NULL;
    cg->wrefs = NULL;
    cg->nwrefs = cg->capwrefs = 0;
    cg->weights_sym = NULL;
}

const char *cg_symbol(const Cg *cg, const char *base, char *buf, size_t n)
{
    if (!cg->name[0]) return base;
    snprintf(buf, n, "%s_%s", base, cg->name);
    return buf;
}

/* Grows the blob to hold `need` bytes, keeping its start 64-byte aligned (the code
 * loads weights with aligned vector moves). */
static void blob_reserve(CgBlob *b, int64_t need)
{
    if (need <= b->cap) return;
    int64_t cap = b->cap ? b->cap : 1 << 20;
    while (cap < need) cap *= 2;
    size_t shift = b->raw ? (size_t)(b->data - b->raw) : 0;
    b->raw = ir_xrealloc(b->raw, (size_t)cap + BLOB_ALIGN);
    char *data = (char *)(((uintptr_t)b->raw + BLOB_ALIGN - 1) & ~(uintptr_t)(BLOB_ALIGN - 1));
    if ((size_t)(data - b->raw) != shift) memmove(data, b->raw + shift, (size_t)b->size);
    b->data = data;
    b->cap = cap;
}

/* The external, 64-byte-aligned byte array every weight pointer is based on.
 * Default visibility in the module, so position-independent code reaches it
 * through the GOT wherever the JIT puts it; model.so defines it hidden, and
 * the linker turns those accesses back into direct ones. */
static LLVMValueRef weights_symbol(Cg *cg)
{
    if (cg->weights_sym) return cg->weights_sym;
    char sym[64];
    cg->weights_sym = LLVMAddGlobal(cg->mod, LLVMArrayType(LLVMInt8TypeInContext(cg->ctx), 0),
                                    cg_symbol(cg, CG_WEIGHTS_SYMBOL, sym, sizeof sym));
    LLVMSetGlobalConstant(cg->weights_sym, 1);
    LLVMSetAlignment(cg->weights_sym, BLOB_ALIGN);
    cg->blob = ir_xcalloc(1, sizeof *cg->blob);
    cg->blob->refs = 1;
    /* Room for every parameter once, packed or not, so that hundreds of MB are not moved
     * each time the blob doubles (a layout that pads its weights may still grow it). */
    int64_t bytes = 0;
    for (int32_t i = 0; i < cg->g->nnodes; i++)
        if (cg->g->nodes[i].op == OP_PARAM && cg->g->nodes[i].data)
            bytes += ir_numel(&cg->g->nodes[i].type) * (int64_t)sizeof(float) + BLOB_ALIGN;
    blob_reserve(cg->blob, bytes);
    cg->blob->hasher = hasher_start(cg->blob);
    return cg->weights_sym;
}

/* Room for `bytes` at the next 64-byte boundary: its offset. The bytes count as the
 * blob's (for the hasher) only once blob_close says they are written. */
static int64_t blob_open(CgBlob *b, int64_t bytes)
{
    if (b->open) ICE("weights added before the last ones were closed");
    int64_t at = (b->size + BLOB_ALIGN - 1) / BLOB_ALIGN * BLOB_ALIGN;
    if (at + bytes > b->cap) {
        hasher_hold(b->hasher);
        blob_reserve(b, at + bytes);
        hasher_release(b->hasher, b->size);
    }
    /* The thread reads only below b->size, which these bytes are above. */
    memset(b->data + b->size, 0, (size_t)(at - b->size));
    b->open = at + bytes;
    return at;
}

static void blob_close(CgBlob *b)
{
    b->size = b->open;
    b->open = 0;
    if (b->hasher) {
        pthread_mutex_lock(&b->hasher->mu);
        hasher_release(b->hasher, b->size);
    }
}

static LLVMValueRef blob_ptr(Cg *cg, int64_t offset)
{
    LLVMValueRef idx = cg_i64(cg, offset);
    return LLVMConstInBoundsGEP2(LLVMInt8TypeInContext(cg->ctx), weights_symbol(cg), &idx, 1);
}

float *cg_weights_begin(Cg *cg, const char *name, int64_t n, LLVMValueRef *ptr)
{
    for (int32_t i = 0; i < cg->nwrefs; i++)
        if (strcmp(cg->wrefs[i].name, name) == 0) {
            *ptr = blob_ptr(cg, cg->wrefs[i].offset);
            return NULL;
        }
    weights_symbol(cg);
    if (cg->nwrefs == cg->capwrefs) {
        cg->capwrefs = cg->capwrefs ? 2 * cg->capwrefs : 64;
        cg->wrefs = ir_xrealloc(cg->wrefs, (size_t)cg->capwrefs * sizeof *cg->wrefs);
    }
    int64_t at = blob_open(cg->blob, n * (int64_t)sizeof(float));
    cg->wrefs[cg->nwrefs++] = (CgWeightRef){ir_xstrdup(name), at};
    *ptr = blob_ptr(cg, at);
    return (float *)(cg->blob->data + at);
}

void cg_weights_end(Cg *cg)
{
    blob_close(cg->blob);
}

LLVMValueRef cg_weights(Cg *cg, const char *name, const float *data, int64_t n)
{
    LLVMValueRef ptr;
    float *room = cg_weights_begin(cg, name, n, &ptr);
    if (room) {
        memcpy(room, data, (size_t)n * sizeof(float));
        cg_weights_end(cg);
    }
    return ptr;
}

uint64_t cg_weights_hash(const Cg *cg)
{
    CgBlob *b = cg->blob;
    if (!b) return rt_weights_hash(NULL, 0);
    RtHash h;
    rt_hash_init(&h);
    int64_t hashed = 0;
    if (b->hasher) h = hasher_finish(b->hasher, &hashed);
    b->hasher = NULL;
    const uint8_t *rest = b->size > hashed ? (const uint8_t *)b->data + hashed : NULL;
    return rt_hash_final(&h, rest, b->size - hashed);
}

void cg_embed_weights(Cg *cg)
{
    if (!cg->weights_sym || LLVMGetInitializer(cg->weights_sym)) return;
    if (cg->blob->size > 0xffffffffll) ICE("weights too large to embed in one constant");
    LLVMValueRef init = LLVMConstStringInContext(cg->ctx, cg->blob->data,
                                                 (unsigned)cg->blob->size, 1);
    char buf[64];
    const char *sym = cg_symbol(cg, CG_WEIGHTS_SYMBOL, buf, sizeof buf);
    LLVMValueRef g = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), CG_WEIGHTS_SYMBOL ".data");
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMInternalLinkage);
    LLVMSetAlignment(g, BLOB_ALIGN);
    LLVMReplaceAllUsesWith(cg->weights_sym, g);
    LLVMDeleteGlobal(cg->weights_sym);
    LLVMSetValueName2(g, sym, strlen(sym));
    cg->weights_sym = g;
}
