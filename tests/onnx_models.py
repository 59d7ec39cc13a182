#!/usr/bin/env python3
"""Checks cnnc's ONNX import on whole torchvision models against ONNX Runtime. Each model
is built with seeded random weights, its normalization statistics and scales randomized
as tools/torch_check.py does (so that none is the identity), and exported in eval mode by
torch.onnx.export at the given opset with a dynamic batch axis, into a temporary folder
of the build directory. ONNX Runtime (CPUExecutionProvider, ORT_ENABLE_ALL) runs the
export on a seeded batch of 4 and on its first image; cnnc compiles it at --batch=4 and
--batch=1 and cnnrun runs the two model.so on the same inputs (batch 4 on 2 threads,
batch 1 on 1). Every output must give max|cnnc - ort| / max|ort| of at most 1e-4. ORT is
itself checked against PyTorch at batch 1 (at 1e-4) so that a bad export cannot pass
unnoticed. Where models/ has the same network in the language, the import's memory plan
must need no more activation memory than that model's.
Prints the time of each phase.

A model is MODEL[:OPSET][:b1] (opset 17 by default; `b1`: batch 1 only, for models whose
batch-4 compile and run cost more than they add).
Usage: onnx_models.py [--build=DIR] [--tol=T] [--keep] MODEL[:OPSET][:b1]...
       (exit 0 pass, 1 fail, 77 without onnxruntime or torch)"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

try:
    import numpy as np
    import onnxruntime as ort
    import torch
    import torchvision
    from torch_check import perturb_batchnorm, perturb_layernorm
except ImportError as e:
    print("onnx_models.py: skipped, needs numpy, onnxruntime, torch and torchvision (%s); "
          "run it with the Python of `make test-venv`, .venv/bin/python" % e, file=sys.stderr)
    sys.exit(77)

# The compiled runs: batch and threads of cnnrun and of ONNX Runtime.
RUNS = [(4, 2), (1, 1)]


class Clock:
    """Prints each phase's seconds as it ends."""

    def __init__(self, name):
        self.name, self.start, self.t = name, time.monotonic(), time.monotonic()

    def lap(self, what):
        now = time.monotonic()
        print("%s: %s: %.1f s" % (self.name, what, now - self.t), flush=True)
        self.t = now


def export(name, opset, path, clock):
    """The perturbed torchvision model exported to `path`; its inputs at batch 4 and 1 and
    PyTorch's output at batch 1 (batch 4 would cost ConvNeXt's depthwise 7x7 convolutions
    in PyTorch seconds more, and ORT is compared at batch 1 only to catch a bad export)."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        perturb_batchnorm(model, gen)
        perturb_layernorm(model, gen)
        x = torch.randn(4, 3, 224, 224, generator=gen)
        clock.lap("PyTorch model")
        ref = model(x[:1]).numpy()
        clock.lap("PyTorch, batch 1")
        torch.onnx.export(model, x[:1], path, opset_version=opset, input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    clock.lap("torch.onnx.export (%.0f MB)" % (os.path.getsize(path) / 1e6))
    return {4: x.numpy(), 1: x[:1].numpy()}, ref


def ort_run(path, x, threads):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def run(what, cmd):
    """True if the command succeeds; else prints its output."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace")
    if r.returncode != 0:
        print("%s: FAIL: exited with %d: %s\n%s" % (what, r.returncode, " ".join(cmd),
                                                    r.stdout[-4000:]))
    return r.returncode == 0


def compare(what, got, ref, tol):
    if got.shape != ref.shape:
        print("%s: FAIL: output shape %s, expected %s" % (what, got.shape, ref.shape))
        return False
    err = float(np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref)))
    ok = err <= tol
    print("%s: %s: max|d|/max|ref| = %.3g (tolerance %g)" % (what, "ok" if ok else "FAIL",
                                                              err, tol))
    return ok


def arena_bytes(cnnc, args):
    """The activation arena of cnnc's memory plan for `args`, or None (after saying why)."""
    r = subprocess.run([cnnc] + args + ["--batch=1", "--emit=plan"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, errors="replace")
    for line in r.stdout.splitlines():
        if line.startswith("arena_bytes "):
            return int(line.split()[1])
    print("cnnc %s --emit=plan: FAIL: no arena_bytes:\n%s" % (" ".join(args), r.stdout[-2000:]))
    return None


def same_plan(label, cnnc, path, name):
    """The import plans no more activation memory than the language's model of the same
    network (models/NAME.cnn), where there is one: a pattern of the export that the passes
    miss (a flat concat, a pad of nothing) shows as copies the language's model has not."""
    cnn = os.path.join(ROOT, "models", name + ".cnn")
    if not os.path.exists(cnn):
        return True
    got, want = arena_bytes(cnnc, [path]), arena_bytes(cnnc, [cnn, "--random-weights=0"])
    ok = got is not None and want is not None and got <= want
    print("%s: plan: %s: arena %s bytes, models/%s.cnn's %s" % (label, "ok" if ok else "FAIL",
                                                              got, name, want))
    return ok


def check_in(label, name, opset, runs, build, tol, tmp, clock):
    """Exports the model into the folder `tmp` and runs it every way; True if all agree."""
    cnnc, cnnrun = (os.path.join(build, "tools", t) for t in ("cnnc", "cnnrun"))
    path = os.path.join(tmp, "model.onnx")
    x, torch_ref = export(name, opset, path, clock)
    ok = same_plan(label, cnnc, path, name)
    for batch, threads in runs:
        ref = ort_run(path, x[batch], threads)
        clock.lap("ONNX Runtime, batch %d, %d thread(s)" % (batch, threads))
        if batch == 1:
            ok = compare("%s: ONNX Runtime against PyTorch" % label, ref, torch_ref, tol) and ok
        xin, so, out = (os.path.join(tmp, f % batch) for f in ("x%d.npy", "m%d.so", "y%d.npy"))
        np.save(xin, x[batch])
        if not run("%s: cnnc" % label, [cnnc, path, "--batch=%d" % batch, "-o", so]):
            ok = False
            continue
        clock.lap("cnnc --batch=%d" % batch)
        what = "%s: model.so, batch %d, %d thread(s)" % (label, batch, threads)
        if not run(what, [cnnrun, so, "--input", xin, "--threads", str(threads),
                          "--output", out]):
            ok = False
            continue
        clock.lap("cnnrun, batch %d" % batch)
        ok = compare("%s against ONNX Runtime" % what, np.load(out), ref, tol) and ok
        os.remove(so)
    return ok


def check(spec, build, tol, keep):
    parts = spec.split(":")
    name = parts[0]
    opset = int(parts[1]) if len(parts) > 1 and parts[1] else 17
    runs = [(b, t) for b, t in RUNS if "b1" not in parts[2:] or b == 1]
    label = "%s (opset %d)" % (name, opset)
    clock = Clock(label)
    top = os.path.join(build, "onnx")
    os.makedirs(top, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="%s-%d-" % (name, opset), dir=top)
    try:
        ok = check_in(label, name, opset, runs, build, tol, tmp, clock)
    finally:
        if keep:
            print("%s: kept %s" % (label, tmp))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%s: %s in %.1f s" % (label, "ok" if ok else "FAIL", time.monotonic() - clock.start))
    return ok


def main(argv):
    build, tol, keep, specs = os.path.join(ROOT, "build"), 1e-4, False, []
    for a in argv[1:]:
        if a.startswith("--build="):
            build = a[len("--build="):]
        elif a.startswith("--tol="):
            tol = float(a[len("--tol="):])
        elif a == "--keep":
            keep = True
        elif a.startswith("-"):
            print(__doc__, file=sys.stderr)
            return 2
        else:
            specs.append(a)
    if not specs:
        print(__doc__, file=sys.stderr)
        return 2
    for tool in ("cnnc", "cnnrun"):
        if not os.access(os.path.join(build, "tools", tool), os.X_OK):
            print("onnx_models.py: no %s in %s/tools (build it, or pass --build=DIR)"
                  % (tool, build), file=sys.stderr)
            return 1
    torch.set_num_threads(2)
    results = [check(s, build, tol, keep) for s in specs]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
