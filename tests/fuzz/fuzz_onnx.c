/* fuzz_onnx.c: reading an ONNX model from memory (frontend/onnx_read.c), with a
 * limit of 1 MiB of tensor data and external data looked up in a folder holding
 * one 256-byte file, w.bin, then importing it (frontend/onnx_import.c) at batch 2
 * with at most 2000 nodes: a graph comes back exactly when no error was reported. Every part of a model read is touched, so the
 * sanitizers see any pointer or count that does not hold what it says; an input
 * that passes the reader's own walk of the wire format but that protobuf-c
 * rejects is a finding too (the walk is to explain every failure). */
#include "fuzz.h"
#include "frontend.h"
#include "onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/cnnc-fuzz-onnx-XXXXXX";
static char side[sizeof dir + 8];

static void remove_dir(void)
{
    remove(side);
    rmdir(dir);
}

static void make_dir(void)
{
    unsigned char data[256];
    for (int k = 0; k < 256; k++)
        data[k] = (unsigned char)k;
    FILE *f;
    if (!mkdtemp(dir))
        abort();
    snprintf(side, sizeof side, "%s/w.bin", dir);
    if (!(f = fopen(side, "wb")) || fwrite(data, 1, sizeof data, f) != sizeof data || fclose(f))
        abort();
    atexit(remove_dir);
}

static size_t touch_tensor(const OnnxTensor *t)
{
    size_t sum = strlen(t->name);
    if (t->rank < 0 || t->rank > ONNX_MAX_RANK || t->count < 0)
        abort();
    if (!t->f && !t->i)
        return sum; /* a type not converted: its count is not bounded by any data */
    for (int64_t k = 0; k < t->count; k++)
        sum += t->f ? (t->f[k] != 0) : (t->i[k] != 0);
    return sum;
}

static size_t touch_node(const OnnxNode *n)
{
    size_t sum = strlen(n->name) + strlen(n->op_type) + strlen(n->domain);
    for (int32_t k = 0; k < n->ninputs; k++)
        sum += strlen(n->inputs[k]);
    for (int32_t k = 0; k < n->noutputs; k++)
        sum += strlen(n->outputs[k]);
    for (int32_t k = 0; k < n->nattrs; k++) {
        const OnnxAttr *a = &n->attrs[k];
        if (onnx_attr(n, a->name) == NULL)
            abort();
        sum += strlen(a->s);
        for (int32_t j = 0; j < a->n; j++)
            sum += a->type == ONNX_ATTR_FLOATS   ? (a->floats[j] != 0)
                 : a->type == ONNX_ATTR_INTS     ? (a->ints[j] != 0)
                 : a->type == ONNX_ATTR_STRINGS  ? strlen(a->strings[j])
                                                 : 0;
        if (a->type == ONNX_ATTR_TENSOR)
            sum += touch_tensor(a->t);
    }
    return sum;
}

static size_t touch_values(const OnnxValueInfo *v, int32_t n)
{
    size_t sum = 0;
    for (int32_t k = 0; k < n; k++) {
        sum += strlen(v[k].name);
        if (v[k].rank < -1 || v[k].rank > ONNX_MAX_RANK)
            abort();
        for (int32_t j = 0; j < v[k].rank; j++)
            sum += v[k].dim_names[j] ? strlen(v[k].dim_names[j]) : (size_t)v[k].dims[j];
    }
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!side[0])
        make_dir();
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    Diag d;
    ir_diag_init(&d, out);
    OnnxModel *m = onnx_read_buffer("fuzz.onnx", data, size, dir, 1 << 20, &d);
    fflush(out);
    /* A model comes back exactly when no error was reported, and the reader's own checks
     * leave protobuf-c nothing to reject: its message would be the first and only one
     * (matched at the start, as a name the input holds may quote the same words). */
    static const char rejected[] = "fuzz.onnx: error: cannot decode the model: protobuf-c";
    if (!m != (d.nerrors > 0) || (text && !strncmp(text, rejected, sizeof rejected - 1)))
        abort();
    if (m) {
        volatile size_t sum = strlen(m->producer) + strlen(m->graph_name);
        for (int32_t k = 0; k < m->nnodes; k++)
            sum += touch_node(&m->nodes[k]);
        for (int32_t k = 0; k < m->ninits; k++)
            sum += touch_tensor(&m->inits[k]);
        sum += touch_values(m->inputs, m->ninputs) + touch_values(m->outputs, m->noutputs);
        FeOptions opt = {.batch = 2, .limits = {.max_nodes = 2000, .max_weights = 1 << 22}};
        int before = d.nerrors;
        Graph *g = fe_import_onnx(m, &opt, &d);
        if (!g != (d.nerrors > before))
            abort();
        if (g && !ir_verify(g, &d))
            abort();
        ir_graph_free(g);
        onnx_free(m);
    }
    ir_diag_fini(&d);
    fclose(out);
    free(text);
    return 0;
}
