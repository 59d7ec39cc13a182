#!/usr/bin/env python3
"""ort_layers.py: a torchvision network layer by layer, cnnc against ONNX Runtime, to see
which layers a model's ratio comes from. Not part of the test suite.

The network (seeded random weights, eval mode) is exported by torch.onnx at opset 17 and
a fixed batch into a temporary folder. cnnc compiles that same file, so its kernels are
named after the file's nodes, and the `cnnc` package's Model.profile times every kernel;
ONNX Runtime (CPUExecutionProvider, ORT_ENABLE_ALL, intra_op_num_threads = threads) times
every node with SessionOptions.enable_profiling, on the same random input.

ONNX Runtime names a node it rewrote after the tensor it writes (NAME_nchwc) or after
the node a fusion started from (NAME/FusionName/). That node of the file, followed back
through the elementwise nodes after it to a Conv, Gemm or pool, gives the cnnc kernel
the time belongs to; a conv that cnnc computes inside the kernel of the node reading it
(a 1×1 conv inside the depthwise conv after it, a conv inside the maxpool after it) goes
to that kernel. Each row: the
median milliseconds of both over the timed runs, and their ratio. The nodes of either
side that have no counterpart (ONNX Runtime's layout reorders and unnamed fusions,
cnnc's stride gathers) are listed after, so that both totals stay whole.

    make bench-deps       # .venv-bench: onnx, onnxruntime, and Debian's torch
    .venv-bench/bin/python bench/ort_layers.py [--build=DIR] [--batch=N] [--threads=T]
                                               [--runs=R] [--sort] MODEL

Profiling times each kernel or node on its own, so the totals need not match the
latencies bench/run.py measures.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

try:
    import onnx
    import onnxruntime as ort
    import torch
    import torchvision
    import cnnc
except ImportError as e:
    sys.exit("ort_layers.py: needs onnx, onnxruntime, torch and torchvision (%s); "
             "run it with .venv-bench/bin/python (make bench-deps)" % e)

WARMUP = 3  # untimed runs before the timed ones, both sides

# Nodes that a cnnc kernel or an ONNX Runtime fused node takes in after the op it is
# named after: followed back from a fused node's output to that op.
EPILOGUE = {"Relu", "Clip", "Add", "Sum", "Sigmoid", "HardSigmoid", "HardSwish", "Mul",
            "Div", "LeakyRelu", "Tanh", "Erf", "BatchNormalization", "Identity"}


def export(name, batch, path):
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.onnx.export(net, x, path, opset_version=17, input_names=["input"],
                          output_names=["output"])
    return x.numpy()


def ort_profile(path, x, threads, runs, tmp):
    """The median ms of each node over `runs` runs after WARMUP, in the order first run."""
    o = ort.SessionOptions()
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.enable_profiling = True
    o.profile_file_prefix = os.path.join(tmp, "ort")
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    for _ in range(WARMUP + runs):
        s.run(None, {"input": x})
    with open(s.end_profiling()) as f:
        events = json.load(f)
    times, order = {}, []
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            n = e["name"][:-len("_kernel_time")]
            if n not in times:
                order.append(n)
            times.setdefault(n, []).append(e["dur"] / 1000.0)
    return [(n, statistics.median(times[n][WARMUP:] or times[n])) for n in order]


class Graph:
    def __init__(self, model):
        self.by_out, self.by_name, self.users = {}, {}, {}
        for n in model.graph.node:
            self.by_name[n.name] = n
            for t in n.output:
                self.by_out[t] = n
            for t in n.input:
                self.users.setdefault(t, []).append(n)

    def node(self, ort_name):
        """The file's node behind an ONNX Runtime node: by name; by the tensor a node
        it rewrote is named after (NAME_nchwc); or the node a fusion is named after
        (NAME/FusionName/)."""
        if ort_name in self.by_name:
            return self.by_name[ort_name]
        if ort_name.endswith("_nchwc"):
            return self.by_out.get(ort_name[:-len("_nchwc")])
        if ort_name.endswith("/"):
            return self.by_name.get(ort_name[:-1].rsplit("/", 1)[0])
        return self.by_out.get(ort_name)

    def back(self, node, kernels):
        """Back from `node` through the elementwise nodes fused onto an op: the op's
        node (None if there is none), and whether a kernel is named after it."""
        for _ in range(16):
            if node is None or node.name in kernels or node.op_type not in EPILOGUE:
                break
            ins = [self.by_out[t] for t in node.input if t in self.by_out]
            named = [p for p in ins if p.name in kernels]
            ops = [p for p in ins if p.op_type not in EPILOGUE]
            node = named[0] if named else ops[0] if ops else ins[0] if ins else None
        return node, node is not None and node.name in kernels

    def forward(self, node, kernels):
        """The one kernel that `node` feeds through elementwise nodes, if one: cnnc
        computes some convs inside the kernel of the node that reads them (a 1×1 conv
        inside the depthwise conv after it, a conv inside the maxpool after it)."""
        found, frontier, seen = set(), [node], set()
        while frontier and len(seen) < 64:
            n = frontier.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            for t in n.output:
                for u in self.users.get(t, []):
                    if u.name in kernels:
                        found.add(u.name)
                    elif u.op_type in EPILOGUE:
                        frontier.append(u)
        return found.pop() if len(found) == 1 else None

    def anchor(self, ort_name, kernels):
        """The cnnc kernel an ONNX Runtime node's time belongs to, or None."""
        node, named = self.back(self.node(ort_name), kernels)
        if named:
            return node.name
        if node is not None and node.op_type in ("Conv", "Gemm", "MatMul"):
            return self.forward(node, kernels)
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="a torchvision.models name, e.g. resnet50")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--sort", action="store_true", help="largest cnnc-ONNX Runtime gap first")
    a = ap.parse_args()
    if not callable(getattr(torchvision.models, a.model, None)):
        ap.error("torchvision %s has no model '%s'" % (torchvision.__version__, a.model))
    os.environ.setdefault("CNNC", os.path.join(a.build, "tools", "cnnc"))
    tmp = tempfile.mkdtemp(prefix="ort_layers-")
    try:
        path = os.path.join(tmp, "model.onnx")
        x = export(a.model, a.batch, path)
        m = cnnc.compile(path, output=os.path.join(tmp, "model.so"), threads=a.threads)
        prof = m.profile({m.inputs[0].name: x}, runs=a.runs, warmup=WARMUP)
        kernels = {k.name: k for k in prof}
        graph = Graph(onnx.load(path, load_external_data=False))
        rows, ort_only = {}, []  # rows: ONNX Runtime's ms summed per cnnc kernel
        for n, ms in ort_profile(path, x, a.threads, a.runs, tmp):
            k = graph.anchor(n, kernels)
            if k is None:
                ort_only.append((n, ms))
            else:
                rows[k] = rows.get(k, 0.0) + ms
        table = [(k.name, k.op, k.ms, rows[k.name]) for k in prof if k.name in rows]
        if a.sort:
            table.sort(key=lambda r: r[3] - r[2])
        print("%s, batch %d, %d thread(s), medians of %d profiled runs (ms)" % (
            a.model, a.batch, a.threads, a.runs))
        c_only = [k for k in prof if k.name not in rows]
        nw = max([6] + [len(k.name) for k in prof] + [len(n) for n, _ in ort_only])
        print("%-*s  %-32s  %8s  %8s  %6s" % (nw, "kernel", "cnnc op", "cnnc", "ORT", "ratio"))
        for name, op, c, o in table:
            print("%-*s  %-32.32s  %8.3f  %8.3f  %6.2f" % (nw, name, op, c, o, c / o))
        for k in c_only:
            print("%-*s  %-32.32s  %8.3f  %8s  (cnnc only)" % (nw, k.name, k.op, k.ms, "-"))
        for n, ms in ort_only:
            print("%-*s  %-32s  %8s  %8.3f  (ONNX Runtime only)" % (nw, n, "", "-", ms))
        tc = sum(r[2] for r in table) + sum(k.ms for k in c_only)
        to = sum(r[3] for r in table) + sum(ms for _, ms in ort_only)
        print("total: cnnc %.3f ms, ONNX Runtime %.3f ms (%.2f); matched rows: cnnc %.3f, "
              "ONNX Runtime %.3f" % (tc, to, tc / to, sum(r[2] for r in table),
                                     sum(r[3] for r in table)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
