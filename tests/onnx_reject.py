#!/usr/bin/env python3
"""ONNX files cnnc must refuse: models with ops cnnc lacks (one error listing every
unsupported op type with its count and first three nodes), and broken files made from a
small network exported by torch.onnx (truncated at several points, a field of the wrong
wire type, lengths that lie, a missing or short external data file, not protobuf at all).
Each must end with status 1, one line "FILE: error: ..." saying what and where, and no
output left behind, both compiled (`-o m.so`) and run (`cnnc run ... -o y.npy`); a signal
is always a failure.
Usage: onnx_reject.py [--build=DIR] [-v]   (exit 0 pass, 1 fail, 77 no onnx package)"""

import os
import re
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:
    print("onnx_reject.py: skipped, needs numpy and onnx (%s); run it with the Python of "
          "`make test-venv`, .venv/bin/python" % e, file=sys.stderr)
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERBOSE = False


def exported_model():
    """A small network exported by torch.onnx (the layout of a real exporter's file), or
    None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 10)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        torch.onnx.export(net, torch.zeros(1, 3, 16, 16), path, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        return onnx.load(path)


def small_model(opset=17):
    """Conv, Relu, global pool and Gemm with initializers: a model cnnc accepts."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv.w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "conv.b")
    fw = numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fc.w")
    fb = numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "fc.b")
    nodes = [
        helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, b, fw, fb])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="onnx_reject.py")
    onnx.checker.check_model(model)
    return model


def many_unsupported_model():
    """Five TopK nodes (more than the message names) and an op of a foreign domain."""
    f = TensorProto.FLOAT
    nodes = [helper.make_node("TopK", ["x", "k"], ["v%d" % i, "i%d" % i], name="topk%d" % i)
             for i in range(5)]
    nodes.append(helper.make_node("Frobnicate", ["x"], ["z"], name="frob", domain="com.example"))
    k = numpy_helper.from_array(np.array([2], dtype=np.int64), "k")
    graph = helper.make_graph(nodes, "many", [helper.make_tensor_value_info("x", f, [1, 6])],
                              [helper.make_tensor_value_info("v%d" % i, f, [1, 2])
                               for i in range(5)] + [helper.make_tensor_value_info("z", f, None)],
                              [k])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.example", 1)])


def unsupported_model():
    """Two NonMaxSuppression nodes and a TopK among supported ones."""
    f = TensorProto.FLOAT
    i64 = TensorProto.INT64
    nodes = [
        helper.make_node("Relu", ["scores"], ["s"], name="relu"),
        helper.make_node("NonMaxSuppression", ["boxes", "s"], ["sel1"], name="nms_first"),
        helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel2"], name="nms_second"),
        helper.make_node("TopK", ["s", "k"], ["values", "indices"], name="topk_first", axis=-1),
    ]
    k = numpy_helper.from_array(np.array([3], dtype=np.int64), "k")
    graph = helper.make_graph(
        nodes, "unsupported",
        [helper.make_tensor_value_info("boxes", f, [1, 6, 4]),
         helper.make_tensor_value_info("scores", f, [1, 1, 6])],
        [helper.make_tensor_value_info("sel1", i64, [None, 3]),
         helper.make_tensor_value_info("sel2", i64, [None, 3]),
         helper.make_tensor_value_info("values", f, [1, 1, 3])], [k])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(data, pos):
    n, shift = 0, 0
    while True:
        b = data[pos]
        n |= (b & 0x7F) << shift
        pos += 1
        shift += 7
        if not b & 0x80:
            return n, pos


def find_field(data, path):
    """(key offset, payload offset, payload end) of a length-delimited field, found by its
    field numbers from the outermost message, e.g. (7, 5, 9): ModelProto.graph, its first
    initializer, that tensor's raw_data."""
    start, end, key = 0, len(data), None
    for number in path:
        pos = start
        while pos < end:
            key, (tag, pos) = pos, read_varint(data, pos)
            wire = tag & 7
            if wire == 0:
                pos = read_varint(data, pos)[1]
            elif wire == 1 or wire == 5:
                pos += 8 if wire == 1 else 4
            elif wire == 2:
                n, pos = read_varint(data, pos)
                if tag >> 3 == number:
                    start, end = pos, pos + n
                    break
                pos += n
            else:
                raise ValueError("wire type %d" % wire)
        else:
            raise ValueError("no field %s" % (path,))
    return key, start, end


def lying_length(data, path, extra):
    """`data` with the length of field `path` made `extra` bytes longer than it is."""
    key, start, end = find_field(data, path)
    return data[:key + 1] + varint(end - start + extra) + data[start:]


def wrong_wire_type(data, path):
    """`data` with the key of field `path` saying varint instead of length-delimited."""
    key = find_field(data, path)[0]
    return data[:key] + bytes([data[key] & ~7]) + data[key + 1:]


def sanitized(text):
    """True if AddressSanitizer, LeakSanitizer or UBSan reported something (make test-asan
    runs this too; ASan exits with 1, as a refusal does)."""
    return any(s in text for s in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                   "runtime error:"))


class Checker:
    def __init__(self, build, tmp):
        self.cnnc = os.path.join(build, "tools", "cnnc")
        self.tmp = tmp
        self.failures = 0

    def fail(self, what, why, out):
        print("FAIL %s: %s\n%s" % (what, why, out))
        self.failures += 1

    def refuse(self, what, path, expect):
        """cnnc refuses `path` with status 1 and one line, "PATH: error: " and then what
        the regular expression `expect` matches, compiled and run, leaving no output."""
        for mode in ("compile", "run"):
            out = os.path.join(self.tmp, "out.so" if mode == "compile" else "out.npy")
            cmd = ([self.cnnc, path, "-o", out] if mode == "compile"
                   else [self.cnnc, "run", path, "-o", out])
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               errors="replace", timeout=120)
            msg = r.stderr.strip()
            label = "%s (%s)" % (what, mode)
            if VERBOSE:
                print("%s: status %d: %s" % (label, r.returncode, msg))
            if sanitized(msg):
                self.fail(label, "a sanitizer's report", msg)
            elif r.returncode != 1:
                self.fail(label, "status %d, expected 1" % r.returncode, r.stdout + msg)
            elif os.path.exists(out):
                self.fail(label, "left %s behind" % os.path.basename(out), msg)
                os.remove(out)
            elif not re.fullmatch(re.escape(path) + ": error: " + expect, msg):
                self.fail(label, "expected the message %s: error: %s" % (path, expect), msg)
            else:
                print("ok %s: %s" % (label, msg[len(path) + 2:]))

    def accept(self, what, path):
        """The valid model compiles, so the broken ones below fail for their damage."""
        out = os.path.join(self.tmp, "ok.so")
        r = subprocess.run([self.cnnc, path, "--batch=1", "-o", out], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace")
        if r.returncode != 0 or not os.path.exists(out) or sanitized(r.stdout):
            self.fail(what, "the valid model does not compile (status %d)" % r.returncode,
                      r.stdout)
        else:
            print("ok %s: compiles" % what)
            os.remove(out)


def write(tmp, name, data):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def main(argv):
    global VERBOSE
    build = os.path.join(ROOT, "build")
    for a in argv[1:]:
        if a.startswith("--build="):
            build = a[len("--build="):]
        elif a == "-v":
            VERBOSE = True
        else:
            print(__doc__, file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="cnnc-onnx-reject-") as tmp:
        c = Checker(build, tmp)
        base = exported_model() or small_model()
        good = base.SerializeToString()
        c.accept("valid model", write(tmp, "valid.onnx", good))

        c.refuse("unsupported ops", write(tmp, "unsupported.onnx",
                                          unsupported_model().SerializeToString()),
                 r"3 nodes use operators cnnc does not support: NonMaxSuppression ×2 "
                 r"\('nms_first', 'nms_second'\); TopK ×1 \('topk_first'\)")
        c.refuse("many unsupported ops", write(tmp, "many.onnx",
                                               many_unsupported_model().SerializeToString()),
                 r"6 nodes use operators cnnc does not support: TopK ×5 "
                 r"\('topk0', 'topk1', 'topk2', \.\.\.\); com\.example\.Frobnicate ×1 \('frob'\)")

        # Cut inside ir_version (field 1), producer_name (2), the graph (7, twice) and the
        # opset import (8).
        graph = find_field(good, (7,))
        for cut, field in ((1, "ir_version"), (find_field(good, (2,))[1] + 1, "producer_name"),
                           (graph[1] + (graph[2] - graph[1]) // 3, "graph"),
                           (graph[1] + (graph[2] - graph[1]) // 2, "graph"),
                           (find_field(good, (8,))[1] + 1, r"opset_import\[0\]")):
            expect = (r"truncated: field '%s' needs (a varint|a length|\d+ bytes) at offset \d+, "
                      r"only \d+ (bytes )?remain" % field)
            c.refuse("truncated at %d of %d bytes" % (cut, len(good)),
                     write(tmp, "truncated_%d.onnx" % cut, good[:cut]),
                     r"not an ONNX model \(%s\)" % expect if cut == 1 else expect)
        c.refuse("empty file", write(tmp, "empty.onnx", b""),
                 r"not an ONNX model \(the file is empty\)")
        c.refuse("not protobuf", write(tmp, "text.onnx", b"this is not an ONNX model\n" * 4),
                 r"not an ONNX model \(.*at offset 0\)")

        # ModelProto.graph is field 7, GraphProto.node 1 and initializer 5, NodeProto.op_type
        # 4, TensorProto.raw_data 9. The first node's op_type as a varint:
        c.refuse("op_type as a varint",
                 write(tmp, "wire_type.onnx", wrong_wire_type(good, (7, 1, 4))),
                 r"wrong wire type for field 'graph\.node\[0\]\.op_type' at offset \d+: varint, "
                 r"expected length-delimited")
        # Lengths that lie: the first initializer's raw_data longer than its tensor, the graph
        # longer than the file, the raw_data a byte shorter than its dims need.
        c.refuse("raw_data longer than its tensor",
                 write(tmp, "raw_data_lies.onnx", lying_length(good, (7, 5, 9), 1 << 20)),
                 r"truncated: field 'graph\.initializer\[0\]\.raw_data' needs \d+ bytes at "
                 r"offset \d+, only \d+ remain")
        c.refuse("graph longer than the file",
                 write(tmp, "graph_lies.onnx", lying_length(good, (7,), 100)),
                 r"truncated: field 'graph' needs \d+ bytes at offset \d+, only \d+ remain")
        c.refuse("raw_data a byte short",
                 write(tmp, "raw_data_short.onnx", lying_length(good, (7, 5, 9), -1)),
                 # The byte after the raw_data now reads as a field of the tensor.
                 r"(wrong|unsupported) wire type .*for field 'graph\.initializer\[0\]\.[a-z0-9_]+' "
                 r"at offset \d+.*")

        # External data: the weights in a side file, then the side file gone or short.
        onnx.external_data_helper.convert_model_to_external_data(
            base, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
        ext = os.path.join(tmp, "external.onnx")
        onnx.save_model(base, ext)
        side = os.path.join(tmp, "weights.bin")
        c.accept("external data", ext)
        data = open(side, "rb").read()
        os.remove(side)
        tensor = r"tensor '[^']+' \(graph\.initializer\[0\]\): "
        c.refuse("external data file missing", ext,
                 tensor + "cannot open external data '%s': No such file or directory"
                 % re.escape(side))
        write(tmp, "weights.bin", data[:len(data) // 2])
        c.refuse("external data file short", ext,
                 r"tensor '[^']+' \(graph\.initializer\[\d+\]\): external data '%s' has \d+ "
                 r"bytes, too few for \d+ at offset \d+" % re.escape(side))
        print("%d failure(s)" % c.failures)
        return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
