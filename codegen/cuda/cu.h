/* cu.h: what the files of codegen/cuda/ share: the generator's state, text
 * buffers, and how a kernel is put together (parameters bound to where values
 * live, a body instantiating a prelude template, the launch geometry). */
#ifndef CNNC_CU_H
#define CNNC_CU_H

#include "cuda.h"

typedef struct CuText {
    char *s;
    size_t len, cap;
} CuText;

void cu_text_add(CuText *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A distinct kernel definition; nodes with identical code share it. */
typedef struct CuDef {
    char *code; /* parameters and body, without the symbol */
    const char *symbol;
    CuText nodes; /* "layer1.0.conv1, layer1.1.conv1" */
    uint32_t threads;
} CuDef;

typedef struct CuGen {
    const Graph *g;
    CuTarget t;
    Diag *d;
    CuProgram *p;
    int32_t capkernels, capweights;
    float *blob;
    int64_t nblob, capblob; /* floats */
    CuDef *defs;
    int32_t ndefs, capdefs;
    int64_t ws_base, ws_bytes; /* the split-K workspace: arena offset, size */
    /* the kernel being built */
    CuKernel *k;
    CuText params, body;
    int32_t capargs;
} CuGen;

/* Starts the kernel of node `id`; `op` as CuKernel.op. */
void cu_begin(CuGen *g, int32_t id, const char *op);
/* A parameter pointing at node `id`'s value (following views); returns its name ("p3"). */
const char *cu_param_value(CuGen *g, int32_t id);
/* A parameter pointing at `n` floats appended to the weights blob under `name`. */
const char *cu_param_weights(CuGen *g, const char *name, const float *data, int64_t n);
/* A null pointer parameter (an absent bias or residual). */
const char *cu_param_null(CuGen *g);
/* A parameter pointing at the split-K workspace, of which this kernel uses
 * `bytes`: scratch after the planned arena, shared by every split-K layer (one
 * layer's partial sums are consumed before the next layer's are written). */
const char *cu_param_workspace(CuGen *g, int64_t bytes);
/* Makes the kernel take CuParams `q` as its last parameter; returns them to fill. */
CuParams *cu_params(CuGen *g);
/* The fields of CuParams for conv2d, as the prelude's enum names them. */
enum {
    CU_CV_C, CU_CV_H, CU_CV_W, CU_CV_K, CU_CV_P, CU_CV_Q, CU_CV_PH, CU_CV_PW, CU_CV_XN,
    CU_CV_YN, CU_CV_RN, CU_CV_KP, CU_CV_M, CU_CV_ACT, CU_CV_POST, CU_CV_SH, CU_CV_SW, CU_CV_KDP,
    CU_CV_NSPLIT, CU_CV_KCHUNK
};
/* Appends to the body of the kernel being built. */
void cu_body(CuGen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the kernel: a grid of blocks of `threads` threads. */
void cu_end(CuGen *g, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t threads);
/* Ends a kernel of one thread per element of `count` (CU_THREADS per block). */
void cu_end_1d(CuGen *g, int64_t count, int64_t per_block);

#define CU_THREADS 256

/* Elements from one batch item of node `id`'s value to the next (honouring
 * Node.mem.batch_stride of values written into a concat, through views). */
int64_t cu_item_stride(const CuGen *g, int32_t id);
/* The storage node of `id` after following views, and the views' byte offset. */
const Node *cu_storage(const CuGen *g, int32_t id, int64_t *offset);
/* An epilogue's activation as the prelude's number: its Op (CU_OP_<NAME>), 0 for none. */
int cu_act_code(Op a);
/* A float literal that reads back as exactly `v` ("1.5f", "-0x1.8p+0f"). */
const char *cu_float(CuGen *g, float v);
/* True when the sizes fit the kernels' 32-bit index arithmetic; else reports. */
bool cu_fits(CuGen *g, int32_t id, int64_t elements);

/* ---- kernels.c: one emitter per op; false after reporting -------------------- */
bool cu_emit_conv2d(CuGen *g, int32_t id);
bool cu_emit_dense(CuGen *g, int32_t id);
bool cu_emit_pool(CuGen *g, int32_t id);
bool cu_emit_eltwise(CuGen *g, int32_t id);
bool cu_emit_misc(CuGen *g, int32_t id);

#endif
