/* test_onnx_read.c: the ONNX file reader (frontend/onnx_read.c). Valid models are
 * built with the protobuf-c structs of onnx.proto and packed; damaged ones are
 * written byte by byte, so each message's offsets are known and asserted whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx.h"
#include "onnx.pb-c.h"

/* ---- capturing diagnostics ----------------------------------------------------- */


/* The buffer must be refused with exactly `message` (after "m.onnx: error: "). */
static void assert_refused(const void *data, size_t size, const char *dir, uint64_t max_bytes,
                           const char *message)
{
    Captured c;
    capture(&c);
    OnnxModel *m = onnx_read_buffer("m.onnx", data, size, dir, max_bytes, &c.d);
    fflush(c.f);
    char want[1024];
    snprintf(want, sizeof want, "m.onnx: error: %s\n", message);
    if (m || strcmp(c.text, want))
        print_error("want: %sgot:  %s", want, c.text);
    assert_null(m);
    assert_string_equal(c.text, want);
    assert_int_equal(c.d.nerrors, 1);
    release(&c);
}

static OnnxModel *read_ok(const void *data, size_t size, const char *dir)
{
    Diag d;
    ir_diag_init(&d, stderr);
    OnnxModel *m = onnx_read_buffer("m.onnx", data, size, dir, 0, &d);
    assert_non_null(m);
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);
    return m;
}

/* ---- models from protobuf-c's structs ----------------------------------------- */

static uint8_t *pack(const CnncOnnx__ModelProto *mp, size_t *len)
{
    *len = cnnc_onnx__model_proto__get_packed_size(mp);
    uint8_t *buf = malloc(*len + 1);
    assert_non_null(buf);
    assert_int_equal(cnnc_onnx__model_proto__pack(mp, buf), *len);
    return buf;
}

/* A model of one graph `g`, IR version 8, opset 13 of the default domain written
 * "ai.onnx" and opset 1 of another. */
static uint8_t *pack_graph(CnncOnnx__GraphProto *g, size_t *len)
{
    CnncOnnx__OperatorSetIdProto op1 = CNNC_ONNX__OPERATOR_SET_ID_PROTO__INIT;
    CnncOnnx__OperatorSetIdProto op2 = CNNC_ONNX__OPERATOR_SET_ID_PROTO__INIT;
    op1.domain = "com.example";
    op1.has_version = true;
    op1.version = 1;
    op2.domain = "ai.onnx";
    op2.has_version = true;
    op2.version = 13;
    CnncOnnx__OperatorSetIdProto *ops[] = {&op1, &op2};
    CnncOnnx__ModelProto mp = CNNC_ONNX__MODEL_PROTO__INIT;
    mp.has_ir_version = true;
    mp.ir_version = 8;
    mp.producer_name = "cnnc-test";
    mp.producer_version = "1.0";
    mp.graph = g;
    mp.n_opset_import = 2;
    mp.opset_import = ops;
    return pack(&mp, len);
}

static void conv_model(void **state)
{
    /* x: f32[N, 3, 4, 4] -> Conv(w raw, b typed) -> y (no shape) */
    int64_t wdims[] = {2, 3, 1, 1}, bdims[] = {2};
    float wdata[6] = {1, -2, 3.5f, 0.25f, -1e-3f, 7}, bdata[2] = {0.5f, -0.5f};
    CnncOnnx__TensorProto w = CNNC_ONNX__TENSOR_PROTO__INIT, b = CNNC_ONNX__TENSOR_PROTO__INIT;
    w.name = "w";
    w.n_dims = 4;
    w.dims = wdims;
    w.has_data_type = b.has_data_type = true;
    w.data_type = b.data_type = ONNX_FLOAT;
    w.has_raw_data = true;
    w.raw_data = (ProtobufCBinaryData){sizeof wdata, (uint8_t *)wdata}; /* a little-endian host */
    b.name = "b";
    b.n_dims = 1;
    b.dims = bdims;
    b.n_float_data = 2;
    b.float_data = bdata;
    CnncOnnx__TensorProto *inits[] = {&w, &b};

    int64_t kernel[] = {1, 1}, pads[] = {0, 0, 0, 0};
    CnncOnnx__AttributeProto ks = CNNC_ONNX__ATTRIBUTE_PROTO__INIT;
    CnncOnnx__AttributeProto pd = CNNC_ONNX__ATTRIBUTE_PROTO__INIT;
    ks.name = "kernel_shape";
    ks.has_type = pd.has_type = true;
    ks.type = pd.type = 7;
    ks.n_ints = 2;
    ks.ints = kernel;
    pd.name = "pads";
    pd.n_ints = 4;
    pd.ints = pads;
    CnncOnnx__AttributeProto *attrs[] = {&ks, &pd};
    char *ins[] = {"x", "w", "b"}, *outs[] = {"y"};
    CnncOnnx__NodeProto conv = CNNC_ONNX__NODE_PROTO__INIT;
    conv.name = "conv1";
    conv.op_type = "Conv";
    conv.domain = "ai.onnx";
    conv.n_input = 3;
    conv.input = ins;
    conv.n_output = 1;
    conv.output = outs;
    conv.n_attribute = 2;
    conv.attribute = attrs;
    CnncOnnx__NodeProto *nodes[] = {&conv};

    CnncOnnx__TensorShapeProto__Dimension d[4];
    CnncOnnx__TensorShapeProto__Dimension *dp[4];
    for (int k = 0; k < 4; k++) {
        d[k] = (CnncOnnx__TensorShapeProto__Dimension)CNNC_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        d[k].value_case = CNNC_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d[k].dim_value = k == 1 ? 3 : 4;
        dp[k] = &d[k];
    }
    d[0].value_case = CNNC_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    d[0].dim_param = "N";
    d[3].value_case = CNNC_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE__NOT_SET;
    CnncOnnx__TensorShapeProto shape = CNNC_ONNX__TENSOR_SHAPE_PROTO__INIT;
    shape.n_dim = 4;
    shape.dim = dp;
    CnncOnnx__TypeProto__Tensor tt = CNNC_ONNX__TYPE_PROTO__TENSOR__INIT;
    tt.has_elem_type = true;
    tt.elem_type = ONNX_FLOAT;
    tt.shape = &shape;
    CnncOnnx__TypeProto type = CNNC_ONNX__TYPE_PROTO__INIT;
    type.value_case = CNNC_ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type.tensor_type = &tt;
    CnncOnnx__ValueInfoProto x = CNNC_ONNX__VALUE_INFO_PROTO__INIT;
    CnncOnnx__ValueInfoProto y = CNNC_ONNX__VALUE_INFO_PROTO__INIT;
    x.name = "x";
    x.type = &type;
    y.name = "y";
    CnncOnnx__ValueInfoProto *gin[] = {&x}, *gout[] = {&y};

    CnncOnnx__GraphProto g = CNNC_ONNX__GRAPH_PROTO__INIT;
    g.name = "tiny";
    g.n_node = 1;
    g.node = nodes;
    g.n_initializer = 2;
    g.initializer = inits;
    g.n_input = 1;
    g.input = gin;
    g.n_output = 1;
    g.output = gout;
    size_t len;
    uint8_t *buf = pack_graph(&g, &len);
    OnnxModel *m = read_ok(buf, len, NULL);
    free(buf);

    assert_string_equal(m->path, "m.onnx");
    assert_int_equal(m->ir_version, 8);
    assert_int_equal(m->opset, 13);
    assert_string_equal(m->producer, "cnnc-test 1.0");
    assert_string_equal(m->graph_name, "tiny");
    assert_int_equal(m->nnodes, 1);
    const OnnxNode *n = &m->nodes[0];
    assert_string_equal(n->name, "conv1");
    assert_string_equal(n->op_type, "Conv");
    assert_string_equal(n->domain, "");
    assert_int_equal(n->ninputs, 3);
    assert_string_equal(n->inputs[2], "b");
    assert_int_equal(n->noutputs, 1);
    assert_string_equal(n->outputs[0], "y");
    const OnnxAttr *a = onnx_attr(n, "pads");
    assert_non_null(a);
    assert_int_equal(a->type, ONNX_ATTR_INTS);
    assert_int_equal(a->n, 4);
    assert_int_equal(onnx_attr(n, "kernel_shape")->ints[1], 1);
    assert_null(onnx_attr(n, "strides"));

    assert_int_equal(m->ninits, 2);
    const OnnxTensor *t = &m->inits[0];
    assert_string_equal(t->name, "w");
    assert_int_equal(t->dtype, ONNX_FLOAT);
    assert_int_equal(t->rank, 4);
    assert_int_equal(t->dims[1], 3);
    assert_int_equal(t->count, 6);
    assert_null(t->i);
    assert_memory_equal(t->f, wdata, sizeof wdata);
    assert_memory_equal(m->inits[1].f, bdata, sizeof bdata);

    assert_int_equal(m->ninputs, 1);
    const OnnxValueInfo *v = &m->inputs[0];
    assert_string_equal(v->name, "x");
    assert_int_equal(v->dtype, ONNX_FLOAT);
    assert_int_equal(v->rank, 4);
    assert_int_equal(v->dims[0], -1);
    assert_string_equal(v->dim_names[0], "N");
    assert_int_equal(v->dims[1], 3);
    assert_null(v->dim_names[1]);
    assert_int_equal(v->dims[3], -1);
    assert_null(v->dim_names[3]);
    assert_int_equal(m->noutputs, 1);
    assert_int_equal(m->outputs[0].rank, -1);
    assert_int_equal(m->outputs[0].dtype, ONNX_UNDEFINED);
    onnx_free(m);
}

/* One node holding an attribute of each kind (and one of IR version 1, without
 * its type). */
static void every_attribute_type(void **state)
{
    float floats[] = {1.5f, -2};
    int64_t ints[] = {-3, 1LL << 40};
    ProtobufCBinaryData strs[] = {{1, (uint8_t *)"a"}, {2, (uint8_t *)"bc"}};
    int64_t tdims[] = {2};
    int64_t tdata[] = {7, -8};
    CnncOnnx__TensorProto t = CNNC_ONNX__TENSOR_PROTO__INIT;
    t.n_dims = 1;
    t.dims = tdims;
    t.has_data_type = true;
    t.data_type = ONNX_INT64;
    t.n_int64_data = 2;
    t.int64_data = tdata;
    CnncOnnx__AttributeProto a[10];
    CnncOnnx__AttributeProto *ap[10];
    static const char *const names[] = {"f", "i", "s", "t", "fs", "is", "ss", "g", "old", "none"};
    for (int k = 0; k < 10; k++) {
        a[k] = (CnncOnnx__AttributeProto)CNNC_ONNX__ATTRIBUTE_PROTO__INIT;
        a[k].name = (char *)names[k];
        a[k].has_type = k != 8;
        ap[k] = &a[k];
    }
    a[0].type = 1, a[0].has_f = true, a[0].f = 0.25f;
    a[1].type = 2, a[1].has_i = true, a[1].i = -5;
    a[2].type = 3, a[2].has_s = true, a[2].s = (ProtobufCBinaryData){5, (uint8_t *)"SAME_"};
    a[3].type = 4, a[3].t = &t;
    a[4].type = 6, a[4].n_floats = 2, a[4].floats = floats;
    a[5].type = 7, a[5].n_ints = 2, a[5].ints = ints;
    a[6].type = 8, a[6].n_strings = 2, a[6].strings = strs;
    a[7].type = 5; /* a graph: its field is not in onnx.proto */
    a[8].has_i = true, a[8].i = 9;
    a[9].type = 7; /* ints, none of them */
    CnncOnnx__NodeProto node = CNNC_ONNX__NODE_PROTO__INIT;
    node.op_type = "Custom";
    node.domain = "com.example";
    node.n_attribute = 10;
    node.attribute = ap;
    CnncOnnx__NodeProto *nodes[] = {&node};
    CnncOnnx__GraphProto g = CNNC_ONNX__GRAPH_PROTO__INIT;
    g.n_node = 1;
    g.node = nodes;
    size_t len;
    uint8_t *buf = pack_graph(&g, &len);
    OnnxModel *m = read_ok(buf, len, NULL);
    free(buf);

    const OnnxNode *n = &m->nodes[0];
    assert_string_equal(n->name, "");
    assert_string_equal(n->domain, "com.example");
    assert_int_equal(n->nattrs, 10);
    const OnnxAttr *x = onnx_attr(n, "f");
    assert_int_equal(x->type, ONNX_ATTR_FLOAT);
    assert_true(x->f == 0.25f);
    x = onnx_attr(n, "i");
    assert_int_equal(x->type, ONNX_ATTR_INT);
    assert_int_equal(x->i, -5);
    x = onnx_attr(n, "s");
    assert_int_equal(x->type, ONNX_ATTR_STRING);
    assert_string_equal(x->s, "SAME_");
    x = onnx_attr(n, "t");
    assert_int_equal(x->type, ONNX_ATTR_TENSOR);
    assert_int_equal(x->t->dtype, ONNX_INT64);
    assert_int_equal(x->t->count, 2);
    assert_int_equal(x->t->i[1], -8);
    assert_string_equal(x->t->name, "");
    x = onnx_attr(n, "fs");
    assert_int_equal(x->type, ONNX_ATTR_FLOATS);
    assert_int_equal(x->n, 2);
    assert_true(x->floats[0] == 1.5f && x->floats[1] == -2);
    x = onnx_attr(n, "is");
    assert_int_equal(x->type, ONNX_ATTR_INTS);
    assert_int_equal(x->ints[1], 1LL << 40);
    x = onnx_attr(n, "ss");
    assert_int_equal(x->type, ONNX_ATTR_STRINGS);
    assert_int_equal(x->n, 2);
    assert_string_equal(x->strings[1], "bc");
    assert_int_equal(onnx_attr(n, "g")->type, ONNX_ATTR_OTHER);
    x = onnx_attr(n, "old");
    assert_int_equal(x->type, ONNX_ATTR_INT);
    assert_int_equal(x->i, 9);
    x = onnx_attr(n, "none");
    assert_int_equal(x->type, ONNX_ATTR_INTS);
    assert_int_equal(x->n, 0);
    assert_non_null(x->ints);
    assert_int_equal(m->ninits, 0);
    assert_int_equal(m->ninputs, 0);
    onnx_free(m);
}

/* Each element type, from raw_data and from its typed field, converted. */
static void tensor_types(void **state)
{
    enum { N = 12 };
    CnncOnnx__TensorProto t[N];
    CnncOnnx__TensorProto *tp[N];
    int64_t two[] = {2};
    for (int k = 0; k < N; k++) {
        t[k] = (CnncOnnx__TensorProto)CNNC_ONNX__TENSOR_PROTO__INIT;
        t[k].has_data_type = true;
        t[k].n_dims = 1;
        t[k].dims = two;
        tp[k] = &t[k];
    }
    /* float16 1.5 and -2 (0x3e00, 0xc000), raw and in int32_data */
    static const uint8_t f16raw[] = {0x00, 0x3e, 0x00, 0xc0};
    int32_t f16[] = {0x3e00, 0xc000};
    t[0].data_type = ONNX_FLOAT16, t[0].has_raw_data = true;
    t[0].raw_data = (ProtobufCBinaryData){4, (uint8_t *)f16raw};
    t[1].data_type = ONNX_FLOAT16, t[1].n_int32_data = 2, t[1].int32_data = f16;
    /* bfloat16 1.5 and -2 (0x3fc0, 0xc000) */
    static const uint8_t bf16raw[] = {0xc0, 0x3f, 0x00, 0xc0};
    int32_t bf16[] = {0x3fc0, 0xc000};
    t[2].data_type = ONNX_BFLOAT16, t[2].has_raw_data = true;
    t[2].raw_data = (ProtobufCBinaryData){4, (uint8_t *)bf16raw};
    t[3].data_type = ONNX_BFLOAT16, t[3].n_int32_data = 2, t[3].int32_data = bf16;
    /* double 0.1 and -2.5e10, raw (little-endian bytes) and typed */
    static const uint8_t f64raw[] = {0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f,
                                     0x00, 0x00, 0x00, 0xe8, 0x76, 0x48, 0x17, 0xc2};
    double f64[] = {0.1, -2.5e10};
    t[4].data_type = ONNX_DOUBLE, t[4].has_raw_data = true;
    t[4].raw_data = (ProtobufCBinaryData){16, (uint8_t *)f64raw};
    t[5].data_type = ONNX_DOUBLE, t[5].n_double_data = 2, t[5].double_data = f64;
    /* int64, raw and typed */
    static const uint8_t i64raw[] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                     0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    int64_t i64[] = {-(1LL << 40), 3};
    t[6].data_type = ONNX_INT64, t[6].has_raw_data = true;
    t[6].raw_data = (ProtobufCBinaryData){16, (uint8_t *)i64raw};
    t[7].data_type = ONNX_INT64, t[7].n_int64_data = 2, t[7].int64_data = i64;
    /* int8 and uint8 in int32_data, bool raw, uint64 typed */
    int32_t i8[] = {-3, 127}, u8[] = {0, 255};
    static const uint8_t boolraw[] = {1, 0};
    uint64_t u64[] = {1ULL << 40, 0};
    t[8].data_type = ONNX_INT8, t[8].n_int32_data = 2, t[8].int32_data = i8;
    t[9].data_type = ONNX_UINT8, t[9].n_int32_data = 2, t[9].int32_data = u8;
    t[10].data_type = ONNX_BOOL, t[10].has_raw_data = true;
    t[10].raw_data = (ProtobufCBinaryData){2, (uint8_t *)boolraw};
    t[11].data_type = ONNX_UINT64, t[11].n_uint64_data = 2, t[11].uint64_data = u64;
    CnncOnnx__GraphProto g = CNNC_ONNX__GRAPH_PROTO__INIT;
    g.n_initializer = N;
    g.initializer = tp;
    size_t len;
    uint8_t *buf = pack_graph(&g, &len);
    OnnxModel *m = read_ok(buf, len, NULL);
    free(buf);

    const OnnxTensor *r = m->inits;
    for (int k = 0; k < 4; k++) {
        assert_non_null(r[k].f);
        assert_null(r[k].i);
        assert_true(r[k].f[0] == 1.5f && r[k].f[1] == -2.0f);
    }
    for (int k = 4; k < 6; k++)
        assert_true(r[k].f[0] == (float)0.1 && r[k].f[1] == -2.5e10f);
    for (int k = 6; k < 8; k++) {
        assert_null(r[k].f);
        assert_int_equal(r[k].i[0], k == 6 ? -2 : -(1LL << 40));
        assert_int_equal(r[k].i[1], k == 6 ? 1LL << 40 : 3);
    }
    assert_int_equal(r[8].i[0], -3);
    assert_int_equal(r[8].i[1], 127);
    assert_int_equal(r[9].i[1], 255);
    assert_int_equal(r[10].i[0], 1);
    assert_int_equal(r[10].i[1], 0);
    assert_int_equal(r[11].i[0], 1LL << 40);
    onnx_free(m);
}

/* ---- models written byte by byte ------------------------------------------------ */

typedef struct Buf {
    uint8_t b[512];
    size_t n;
} Buf;

static void put_varint(Buf *b, uint64_t v)
{
    do {
        b->b[b->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void put_int(Buf *b, int field, int64_t v)
{
    put_varint(b, (uint64_t)field << 3);
    put_varint(b, (uint64_t)v);
}

static void put_bytes(Buf *b, int field, const void *p, size_t n)
{
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, n);
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

/* ir_version 7, then a graph holding only `tensor` as its initializer. The
 * tensor starts at offset 6 when it is shorter than 126 bytes. */
static Buf model_of(const Buf *tensor)
{
    Buf graph = {.n = 0}, model = {.n = 0};
    put_bytes(&graph, 5, tensor->b, tensor->n);
    put_int(&model, 1, 7);
    put_bytes(&model, 7, graph.b, graph.n);
    return model;
}

/* Float tensor "w", dims [4], its 16 bytes of raw_data at offset 15 of the model:
 *   0 08 07 ir_version   2 3a 1b graph   4 2a 19 initializer[0]   6 08 04 dims
 *   8 10 01 data_type   10 42 01 77 name   13 4a 10 raw_data   15..30 the floats */
static Buf raw_tensor(int64_t dim)
{
    static const float v[4] = {1, 2, 3, 4};
    Buf t = {.n = 0};
    put_int(&t, 1, dim);
    put_int(&t, 2, ONNX_FLOAT);
    put_bytes(&t, 8, "w", 1);
    put_bytes(&t, 9, v, sizeof v);
    return t;
}

static void damaged_files(void **state)
{
    Buf t = raw_tensor(4), m = model_of(&t);
    assert_int_equal(m.n, 31);
    OnnxModel *ok = read_ok(m.b, m.n, NULL);
    assert_true(ok->inits[0].f[3] == 4.0f);
    assert_int_equal(ok->opset, 0);
    assert_string_equal(ok->producer, "");
    onnx_free(ok);

    assert_refused("", 0, NULL, 0, "not an ONNX model (the file is empty)");
    assert_refused("hello", 5, NULL, 0,
                   "not an ONNX model (field 13 at offset 0 is not one of ModelProto's)");
    assert_refused("\0\1", 2, NULL, 0, "not an ONNX model (invalid field tag at offset 0)");
    assert_refused(m.b, 2, NULL, 0, "not an ONNX model (it has no graph)");
    /* truncated at several points */
    assert_refused(m.b, 1, NULL, 0,
                   "not an ONNX model (truncated: field 'ir_version' needs a varint at offset 1, "
                   "only 0 bytes remain)");
    assert_refused(m.b, 3, NULL, 0,
                   "truncated: field 'graph' needs a length at offset 3, only 0 bytes remain");
    assert_refused(m.b, 20, NULL, 0,
                   "truncated: field 'graph' needs 27 bytes at offset 4, only 16 remain");
    assert_refused(m.b, 30, NULL, 0,
                   "truncated: field 'graph' needs 27 bytes at offset 4, only 26 remain");
    /* lengths that lie: the tensor's runs past the graph, raw_data's past the tensor */
    Buf bad = m;
    bad.b[5] = 30;
    assert_refused(bad.b, bad.n, NULL, 0,
                   "truncated: field 'graph.initializer[0]' needs 30 bytes at offset 6, only 25 "
                   "remain");
    bad = m;
    bad.b[14] = 32;
    assert_refused(bad.b, bad.n, NULL, 0,
                   "truncated: field 'graph.initializer[0].raw_data' needs 32 bytes at offset 15, "
                   "only 16 remain");
    /* a varint where the name's length-delimited string belongs */
    bad = m;
    bad.b[10] = 0x40;
    assert_refused(bad.b, bad.n, NULL, 0,
                   "wrong wire type for field 'graph.initializer[0].name' at offset 10: varint, "
                   "expected length-delimited");
    /* a start-group, which nothing in ONNX uses */
    bad = m;
    bad.b[8] = 0x13;
    assert_refused(bad.b, bad.n, NULL, 0,
                   "unsupported start-group for field 'graph.initializer[0].data_type' at "
                   "offset 8");
    /* dims that do not match the data, a negative dim, the tensor data limit */
    t = raw_tensor(5);
    m = model_of(&t);
    assert_refused(m.b, m.n, NULL, 0,
                   "tensor 'w' (graph.initializer[0]): dims [5] of float need 20 bytes, but "
                   "raw_data has 16");
    t = raw_tensor(-1);
    m = model_of(&t);
    assert_refused(m.b, m.n, NULL, 0, "tensor 'w' (graph.initializer[0]): dim 0 is -1");
    t.n = 0;
    put_int(&t, 1, 1 << 20);
    put_int(&t, 1, 1 << 20);
    put_int(&t, 2, ONNX_FLOAT);
    m = model_of(&t);
    assert_refused(m.b, m.n, NULL, 0,
                   "tensor graph.initializer[0]: dims [1048576,1048576] make more than 2^38 "
                   "elements");
    t = raw_tensor(4);
    m = model_of(&t);
    assert_refused(m.b, m.n, NULL, 12,
                   "tensor 'w' (graph.initializer[0]): its 16 bytes bring the tensor data to 16, "
                   "more than the limit of 12");
}

/* A node whose op_type is a varint, and float_data that does not match dims. */
static void damaged_nodes_and_typed_data(void **state)
{
    Buf node = {.n = 0}, bad = {.n = 0}, graph = {.n = 0}, m = {.n = 0};
    put_bytes(&node, 1, "x", 1);
    put_bytes(&node, 4, "A", 1);
    put_bytes(&bad, 1, "x", 1);
    put_int(&bad, 4, 3);
    put_bytes(&graph, 1, node.b, node.n);
    put_bytes(&graph, 1, node.b, node.n);
    put_bytes(&graph, 1, bad.b, bad.n);
    put_int(&m, 1, 7);
    put_bytes(&m, 7, graph.b, graph.n);
    /* 0 08 07  2 3a 17  4 0a 06 [node 0]  12 0a 06 [node 1]  20 0a 05  22 0a 01 78  25 20 03 */
    assert_refused(m.b, m.n, NULL, 0,
                   "wrong wire type for field 'graph.node[2].op_type' at offset 25: varint, "
                   "expected length-delimited");

    static const float f[3] = {1, 2, 3};
    Buf t = {.n = 0};
    put_int(&t, 1, 4);
    put_int(&t, 2, ONNX_FLOAT);
    put_bytes(&t, 4, f, sizeof f); /* packed float_data */
    m = model_of(&t);
    assert_refused(m.b, m.n, NULL, 0,
                   "tensor graph.initializer[0]: dims [4] need 4 elements, but float_data has 3");
    t.n = 0;
    put_int(&t, 1, 4);
    put_bytes(&t, 4, f, 6);
    m = model_of(&t);
    assert_refused(m.b, m.n, NULL, 0,
                   "field 'graph.initializer[0].float_data' at offset 10: packed length 6 is not "
                   "a multiple of 4");
}

/* ---- external data ---------------------------------------------------------------- */

/* Float tensor "w" of dims [4] whose data lies in `location` at `offset` (-1: no
 * key), `length` bytes (-1: no key). */
static Buf external_tensor(const char *location, int64_t offset, int64_t length)
{
    Buf t = {.n = 0}, e = {.n = 0};
    char num[32];
    put_int(&t, 1, 4);
    put_int(&t, 2, ONNX_FLOAT);
    put_bytes(&t, 8, "w", 1);
    put_bytes(&e, 1, "location", 8);
    put_bytes(&e, 2, location, strlen(location));
    put_bytes(&t, 13, e.b, e.n);
    if (offset >= 0) {
        e.n = 0;
        put_bytes(&e, 1, "offset", 6);
        snprintf(num, sizeof num, "%lld", (long long)offset);
        put_bytes(&e, 2, num, strlen(num));
        put_bytes(&t, 13, e.b, e.n);
    }
    if (length >= 0) {
        e.n = 0;
        put_bytes(&e, 1, "length", 6);
        snprintf(num, sizeof num, "%lld", (long long)length);
        put_bytes(&e, 2, num, strlen(num));
        put_bytes(&t, 13, e.b, e.n);
    }
    put_int(&t, 14, 1);
    return t;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void external_data(void **state)
{
    char dir[] = "/tmp/cnnc-onnx-XXXXXX", side[64], model[64], msg[512];
    assert_non_null(mkdtemp(dir));
    snprintf(side, sizeof side, "%s/w.bin", dir);
    snprintf(model, sizeof model, "%s/m.onnx", dir);
    float data[6] = {9, 9, 1.5f, -2, 3, 4}; /* the tensor at offset 8 */
    write_file(side, data, sizeof data);

    Buf t = external_tensor("w.bin", 8, 16), m = model_of(&t);
    write_file(model, m.b, m.n);
    Diag d;
    ir_diag_init(&d, stderr);
    OnnxModel *om = onnx_read(model, 0, &d);
    assert_non_null(om);
    assert_string_equal(om->path, model);
    assert_memory_equal(om->inits[0].f, data + 2, 16);
    onnx_free(om);
    /* no length: to the end of the file; a path with "./" stays inside */
    t = external_tensor("./w.bin", 8, -1);
    m = model_of(&t);
    om = onnx_read_buffer("m.onnx", m.b, m.n, dir, 0, &d);
    assert_non_null(om);
    assert_true(om->inits[0].f[0] == 1.5f && om->inits[0].f[3] == 4);
    onnx_free(om);
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);

    t = external_tensor("nope.bin", -1, -1);
    m = model_of(&t);
    snprintf(msg, sizeof msg, "tensor 'w' (graph.initializer[0]): cannot open external data "
             "'%s/nope.bin': No such file or directory", dir);
    assert_refused(m.b, m.n, dir, 0, msg);
    t = external_tensor("w.bin", 12, -1);
    m = model_of(&t);
    snprintf(msg, sizeof msg, "tensor 'w' (graph.initializer[0]): external data '%s/w.bin' has "
             "24 bytes, too few for 16 at offset 12", dir);
    assert_refused(m.b, m.n, dir, 0, msg);
    t = external_tensor("w.bin", 32, 16);
    m = model_of(&t);
    snprintf(msg, sizeof msg, "tensor 'w' (graph.initializer[0]): external data '%s/w.bin' has "
             "24 bytes, too few for 16 at offset 32", dir);
    assert_refused(m.b, m.n, dir, 0, msg);
    t = external_tensor("w.bin", 0, 12);
    m = model_of(&t);
    assert_refused(m.b, m.n, dir, 0,
                   "tensor 'w' (graph.initializer[0]): external data length 12, but dims [4] of "
                   "float need 16 bytes");
    t = external_tensor("../w.bin", 0, 16);
    m = model_of(&t);
    assert_refused(m.b, m.n, dir, 0,
                   "tensor 'w' (graph.initializer[0]): external data location '../w.bin' is not "
                   "a relative path inside the model's folder");
    t = external_tensor("w.bin", 0, 16);
    m = model_of(&t);
    assert_refused(m.b, m.n, NULL, 0,
                   "tensor 'w' (graph.initializer[0]): external data 'w.bin' cannot be read: the "
                   "model was not read from a file");
    /* the limit is checked before the side file is read */
    assert_refused(m.b, m.n, dir, 15,
                   "tensor 'w' (graph.initializer[0]): its 16 bytes bring the tensor data to 16, "
                   "more than the limit of 15");

    Captured c;
    capture(&c);
    assert_null(onnx_read(dir, 0, &c.d));
    fflush(c.f);
    snprintf(msg, sizeof msg, "%s: error: cannot read the model: Is a directory\n", dir);
    assert_string_equal(c.text, msg);
    release(&c);
    capture(&c);
    assert_null(onnx_read(side + 1, 0, &c.d));
    fflush(c.f);
    snprintf(msg, sizeof msg, "%s: error: cannot read the model: No such file or directory\n",
             side + 1);
    assert_string_equal(c.text, msg);
    release(&c);
    write_file(model, "", 0);
    capture(&c);
    assert_null(onnx_read(model, 0, &c.d));
    fflush(c.f);
    snprintf(msg, sizeof msg, "%s: error: not an ONNX model (the file is empty)\n", model);
    assert_string_equal(c.text, msg);
    release(&c);
    /* over protobuf's 2 GiB, refused from its size (a sparse file, never read) */
    FILE *f = fopen(model, "wb");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), ((off_t)1 << 31) + 1), 0);
    fclose(f);
    capture(&c);
    assert_null(onnx_read(model, 0, &c.d));
    fflush(c.f);
    snprintf(msg, sizeof msg, "%s: error: the file has 2147483649 bytes; an ONNX file holds at "
             "most 2 GiB (larger models keep their weights as external data)\n", model);
    assert_string_equal(c.text, msg);
    release(&c);
    remove(side);
    remove(model);
    rmdir(dir);
}

/* The seeds of the fuzzer, written by ONNX's own Python package, read back. */
static void onnx_package_files(void **state)
{
    Diag d;
    ir_diag_init(&d, stderr);
    OnnxModel *m = onnx_read(CNNC_SOURCE_DIR "/tests/fuzz/corpus/onnx/conv.onnx", 0, &d);
    assert_non_null(m);
    assert_int_equal(m->opset, 13);
    assert_string_equal(m->nodes[0].op_type, "Conv");
    assert_string_equal(onnx_attr(&m->nodes[0], "auto_pad")->s, "NOTSET");
    assert_int_equal(m->inits[0].count, 54);
    assert_true(m->inits[1].f[1] == -0.5f);
    assert_string_equal(m->inputs[0].dim_names[0], "N");
    onnx_free(m);
    m = onnx_read(CNNC_SOURCE_DIR "/tests/fuzz/corpus/onnx/types.onnx", 0, &d);
    assert_non_null(m);
    for (int32_t k = 0; k < m->ninits; k++) {
        const OnnxTensor *t = &m->inits[k];
        if (!strcmp(t->name, "f16raw"))
            assert_true(t->f[0] == 1.5f && t->f[1] == -2.25f && t->f[2] == 65504);
        if (!strcmp(t->name, "bf16") || !strcmp(t->name, "bf16raw"))
            assert_true(t->f[0] == 1.5f && t->f[1] == -2);
        if (!strcmp(t->name, "f16"))
            assert_true(t->f[0] == 1 && t->f[1] == -0.5f);
        if (!strcmp(t->name, "f64raw"))
            assert_true(t->f[1] == 2.5e10f);
        if (!strcmp(t->name, "u8"))
            assert_int_equal(t->i[1], 255);
        if (!strcmp(t->name, "i8raw"))
            assert_int_equal(t->i[0], -3);
        if (!strcmp(t->name, "empty"))
            assert_int_equal(t->count, 0);
        if (!strcmp(t->name, "scalar"))
            assert_true(t->rank == 0 && t->count == 1 && t->f[0] == 2);
    }
    onnx_free(m);
    m = onnx_read(CNNC_SOURCE_DIR "/tests/fuzz/corpus/onnx/constant.onnx", 0, &d);
    assert_non_null(m);
    assert_int_equal(m->opset, 11);
    assert_int_equal(onnx_attr(&m->nodes[0], "value")->t->count, 4);
    assert_string_equal(m->nodes[2].inputs[2], "");
    onnx_free(m);
    assert_int_equal(d.nerrors, 0);
    ir_diag_fini(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_model),
        cmocka_unit_test(every_attribute_type),
        cmocka_unit_test(tensor_types),
        cmocka_unit_test(damaged_files),
        cmocka_unit_test(damaged_nodes_and_typed_data),
        cmocka_unit_test(external_data),
        cmocka_unit_test(onnx_package_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
