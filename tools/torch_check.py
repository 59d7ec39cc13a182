#!/usr/bin/python3
"""Checks a zoo model numerically against PyTorch: builds the reference module (seeded
init, eval mode, normalization parameters and ConvNeXt's layer scales randomized so that
none is the identity), writes its weights as safetensors and a random batch of 4 as .npy,
then runs models/MODEL.cnn four ways and compares each with PyTorch on the same images:
`cnnc run` (the interpreter) at batch 1, and a model.so compiled by cnnc and run by
cnnrun at batch 4 on 1 and on 2 threads and at batch 1. Every comparison must give
max|cnnc - torch| / max|torch| of at most 1e-4. Prints the time of each phase.
Usage: torch_check.py [--build=DIR] [--tol=T] MODEL...   (exit 0 pass, 1 fail, 77 no torch)"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    from torch import nn
    import torchvision_names
except ImportError as e:
    print("torch_check.py: skipped, needs numpy, torch and torchvision (%s); "
          "run it with /usr/bin/python3" % e, file=sys.stderr)
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def perturb_batchnorm(model, gen):
    """Fresh BN layers normalize with mean 0, var 1, scale 1, shift 0; randomize all four."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=gen) - 0.5)


def perturb_layernorm(model, gen):
    """LayerNorm starts at scale 1, shift 0, and ConvNeXt's layer scales at 1e-6, which
    would make every block the identity: randomize them."""
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            shape = m.normalized_shape
            m.weight.data.copy_(torch.rand(shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(shape, generator=gen) - 0.5)
    for name, p in model.named_parameters():
        if name.split(".")[-1] == "layer_scale":
            p.data.copy_(torch.rand(p.shape, generator=gen) + 0.5)


def write_safetensors(path, state):
    """F32 safetensors: u64 header length, JSON header, then the raw tensors."""
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        if name.endswith(".num_batches_tracked"):
            continue
        data = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def input_shape(name, batch):
    return (batch, 1, 28, 28) if name in torchvision_names.LOCAL else (batch, 3, 224, 224)


def run(what, cmd):
    """Runs a command; None (after printing its output) when it fails, else its seconds."""
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print("%s: FAIL: exited with %d: %s\n%s" % (what, r.returncode, " ".join(cmd), r.stdout))
        return None
    return time.monotonic() - t0


def compare(what, path, ref, tol, seconds):
    got = np.load(path)
    if got.shape != ref.shape:
        print("%s: FAIL: output shape %s, torch gives %s" % (what, got.shape, ref.shape))
        return False
    err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    ok = err <= tol
    print("%s: %s: max|d|/max|ref| = %.3g (tolerance %g), %.1f s"
          % (what, "ok" if ok else "FAIL", err, tol, seconds))
    return ok


# The compiled runs: batch, cnnrun threads (0: one per core).
COMPILED_RUNS = [(4, 1), (4, 2), (1, 0)]


def reference(name):
    """The perturbed reference module, a random batch of 4 and its outputs at batch 4 and
    (on its first image) at batch 1."""
    torch.manual_seed(0)
    model = torchvision_names.build(name).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        perturb_batchnorm(model, gen)
        perturb_layernorm(model, gen)
        x = torch.randn(*input_shape(name, 4), generator=gen)
        ref = {4: model(x).numpy(), 1: model(x[:1]).numpy()}
    return model, {4: x.numpy(), 1: x[:1].numpy()}, ref


def check_compiled(name, build, src, weights, inputs, ref, tol, tmp):
    """Compiles a model.so for each batch of COMPILED_RUNS and runs it with cnnrun."""
    cnnc, cnnrun = (os.path.join(build, "tools", t) for t in ("cnnc", "cnnrun"))
    ok = True
    for batch in sorted({b for b, _ in COMPILED_RUNS}, reverse=True):
        so = os.path.join(tmp, "m%d.so" % batch)
        secs = run("%s: cnnc" % name, [cnnc, src, "--weights=" + weights,
                                       "--batch=%d" % batch, "-o", so])
        if secs is None:
            ok = False
            continue
        print("%s: compiled at batch %d: %.1f s" % (name, batch, secs))
        for threads in (t for b, t in COMPILED_RUNS if b == batch):
            what = "%s: model.so, batch %d, %s" % (
                name, batch, "threads %d" % threads if threads else "a thread per core")
            out = os.path.join(tmp, "y%d_%d.npy" % (batch, threads))
            secs = run(what, [cnnrun, so, "--input", inputs[batch], "--threads", str(threads),
                              "--output", out])
            ok = secs is not None and compare(what, out, ref[batch], tol, secs) and ok
    return ok


def check(name, build, tol):
    t0 = time.monotonic()
    model, x, ref = reference(name)
    print("%s: PyTorch at batch 4 and 1: %.1f s" % (name, time.monotonic() - t0))
    src = os.path.join(ROOT, "models", name + ".cnn")
    with tempfile.TemporaryDirectory(prefix="cnnc-torch-") as tmp:
        weights = os.path.join(tmp, "w.safetensors")
        write_safetensors(weights, model.state_dict())
        inputs = {b: os.path.join(tmp, "x%d.npy" % b) for b in x}
        for b in x:
            np.save(inputs[b], x[b])
        what, out = "%s: interpreter, batch 1" % name, os.path.join(tmp, "i.npy")
        secs = run(what, [os.path.join(build, "tools", "cnnc"), "run", src,
                          "--weights=" + weights, "--input=" + inputs[1], "-o", out])
        ok = secs is not None and compare(what, out, ref[1], tol, secs)
        ok = check_compiled(name, build, src, weights, inputs, ref, tol, tmp) and ok
    print("%s: %s in %.1f s" % (name, "ok" if ok else "FAIL", time.monotonic() - t0))
    return ok


def main(argv):
    build, tol, names = os.path.join(ROOT, "build"), 1e-4, []
    for a in argv[1:]:
        if a.startswith("--build="):
            build = a[len("--build="):]
        elif a.startswith("--tol="):
            tol = float(a[len("--tol="):])
        else:
            names.append(a)
    if not names:
        print(__doc__, file=sys.stderr)
        return 2
    for tool in ("cnnc", "cnnrun"):
        if not os.access(os.path.join(build, "tools", tool), os.X_OK):
            print("torch_check.py: no %s in %s/tools (build it, or pass --build=DIR)"
                  % (tool, build), file=sys.stderr)
            return 1
    results = [check(n, build, tol) for n in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
