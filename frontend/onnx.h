/* onnx.h: an ONNX model file as plain C data. onnx_read.c decodes the
 * protobuf (with protobuf-c, frontend/onnx.proto), resolves external data and
 * converts every tensor to f32 or int64; onnx_import.c maps the graph onto the
 * cnnc IR. Everything lives in the model's arena. */
#ifndef CNNC_ONNX_H
#define CNNC_ONNX_H

#include "ir.h"

#define ONNX_MAX_RANK 8

/* TensorProto.DataType numbers. */
enum {
    ONNX_UNDEFINED = 0, ONNX_FLOAT = 1, ONNX_UINT8 = 2, ONNX_INT8 = 3, ONNX_UINT16 = 4,
    ONNX_INT16 = 5, ONNX_INT32 = 6, ONNX_INT64 = 7, ONNX_STRING = 8, ONNX_BOOL = 9,
    ONNX_FLOAT16 = 10, ONNX_DOUBLE = 11, ONNX_UINT32 = 12, ONNX_UINT64 = 13,
    ONNX_BFLOAT16 = 16,
};

/* A tensor (an initializer, a Constant's value, a tensor attribute). Floating
 * types (float, double, float16, bfloat16) are converted to `f`, integer and
 * bool types to `i`; the other pointer is NULL. A string tensor has neither
 * (the importer rejects it by its dtype). */
typedef struct OnnxTensor {
    const char *name;
    int32_t dtype; /* as stored in the file */
    int32_t rank;
    int64_t dims[ONNX_MAX_RANK];
    int64_t count; /* product of dims (1 for a scalar) */
    float *f;
    int64_t *i;
} OnnxTensor;

typedef enum {
    ONNX_ATTR_FLOAT, ONNX_ATTR_INT, ONNX_ATTR_STRING, ONNX_ATTR_TENSOR,
    ONNX_ATTR_FLOATS, ONNX_ATTR_INTS, ONNX_ATTR_STRINGS,
    ONNX_ATTR_OTHER, /* graphs, sparse tensors, types: kept by name, never read */
} OnnxAttrType;

typedef struct OnnxAttr {
    const char *name;
    OnnxAttrType type;
    float f;
    int64_t i;
    const char *s;
    int32_t n; /* elements of floats, ints or strings */
    const float *floats;
    const int64_t *ints;
    const char *const *strings;
    const OnnxTensor *t;
} OnnxAttr;

typedef struct OnnxNode {
    const char *name;    /* "" when the file gives none */
    const char *op_type; /* "Conv" */
    const char *domain;  /* "" for the default domain (also when written "ai.onnx") */
    int32_t ninputs, noutputs, nattrs;
    const char *const *inputs; /* "" for an omitted optional input */
    const char *const *outputs;
    const OnnxAttr *attrs;
} OnnxNode;

/* A graph input or output: element type and shape as declared. */
typedef struct OnnxValueInfo {
    const char *name;
    int32_t dtype; /* element type, ONNX_UNDEFINED when not given */
    int32_t rank;  /* -1 when the shape is not given */
    int64_t dims[ONNX_MAX_RANK];         /* -1: not a fixed number */
    const char *dim_names[ONNX_MAX_RANK]; /* dim_param of a symbolic dim, else NULL */
} OnnxValueInfo;

typedef struct OnnxModel {
    Arena *arena;
    const char *path; /* as given to onnx_read */
    int64_t ir_version;
    int64_t opset; /* of the default domain; 0 when the file declares none */
    const char *producer; /* producer_name and version, "" if none */
    const char *graph_name;
    int32_t nnodes, ninits, ninputs, noutputs;
    const OnnxNode *nodes;       /* in file order (ONNX requires topological order) */
    const OnnxTensor *inits;     /* initializers */
    const OnnxValueInfo *inputs; /* graph inputs, initializers listed there included */
    const OnnxValueInfo *outputs;
} OnnxModel;

/* Reads an ONNX file. External data (TensorProto.data_location EXTERNAL) is
 * read from files relative to the model's directory. Every problem (not
 * protobuf, truncated, a length that runs past its message, a tensor whose data
 * does not match its dims, a missing or short external file, more than
 * `max_bytes` of tensor data) is reported to `d` as
 * "PATH: error: ..." naming what is wrong and where; the result is then NULL.
 * `max_bytes` counts the converted data (4 bytes an element in `f`, 8 in `i`);
 * 0: no limit. */
OnnxModel *onnx_read(const char *path, uint64_t max_bytes, Diag *d);
/* The same from memory; external data is looked up relative to `dir` (NULL:
 * external data is an error). For fuzzing and tests. */
OnnxModel *onnx_read_buffer(const char *path, const void *data, size_t size, const char *dir,
                            uint64_t max_bytes, Diag *d);
void onnx_free(OnnxModel *m);

/* Attribute `name` of a node, or NULL. */
const OnnxAttr *onnx_attr(const OnnxNode *n, const char *name);

#endif
