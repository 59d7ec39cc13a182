/* weights.c: the weights blob of a model. Kernels ask for their packed weights
 * by name and get a constant pointer into one external symbol; the bytes stay
 * in a plain buffer until the linker, the JIT or cg_embed_weights places them. */
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

CgBlob *cg_blob_ref(CgBlob *b)
{
    if (b) b->refs++;
    return b;
}

void cg_blob_unref(CgBlob *b)
{
    if (!b || --b->refs > 0) return;
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
    return cg->weights_sym;
}

static int64_t blob_append(CgBlob *b, const void *data, int64_t bytes)
{
    int64_t at = (b->size + BLOB_ALIGN - 1) / BLOB_ALIGN * BLOB_ALIGN;
    blob_reserve(b, at + bytes);
    memset(b->data + b->size, 0, (size_t)(at - b->size));
    memcpy(b->data + at, data, (size_t)bytes);
    b->size = at + bytes;
    return at;
}

static LLVMValueRef blob_ptr(Cg *cg, int64_t offset)
{
    LLVMValueRef idx = cg_i64(cg, offset);
    return LLVMConstInBoundsGEP2(LLVMInt8TypeInContext(cg->ctx), weights_symbol(cg), &idx, 1);
}

LLVMValueRef cg_weights(Cg *cg, const char *name, const float *data, int64_t n)
{
    for (int32_t i = 0; i < cg->nwrefs; i++)
        if (strcmp(cg->wrefs[i].name, name) == 0) return blob_ptr(cg, cg->wrefs[i].offset);
    weights_symbol(cg);
    if (cg->nwrefs == cg->capwrefs) {
        cg->capwrefs = cg->capwrefs ? 2 * cg->capwrefs : 64;
        cg->wrefs = ir_xrealloc(cg->wrefs, (size_t)cg->capwrefs * sizeof *cg->wrefs);
    }
    int64_t at = blob_append(cg->blob, data, n * (int64_t)sizeof(float));
    cg->wrefs[cg->nwrefs++] = (CgWeightRef){ir_xstrdup(name), at};
    return blob_ptr(cg, at);
}

uint64_t cg_weights_fnv1a(const Cg *cg)
{
    return cg->blob ? rt_weights_fnv1a((const uint8_t *)cg->blob->data, cg->blob->size)
                    : rt_weights_fnv1a(NULL, 0);
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
