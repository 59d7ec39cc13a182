#!/usr/bin/python3
"""Checks hardswish, hardsigmoid, gelu (both forms) and tensor arithmetic against
PyTorch: one small network in cnnc and in torch, outputs compared at 1e-5
(max|d| / max|ref| per output) through `cnnc run` (the interpreter) and a
compiled model.so run by cnnrun. The input holds values around the kinks at
-3 and 3 and large ones.
Usage: torch_elementwise.py BUILD_DIR   (exit 0 pass, 1 fail, 77 no torch)"""

import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print("torch_elementwise.py: skipped, needs numpy and torch (%s)" % e, file=sys.stderr)
    sys.exit(77)

SOURCE = """network elementwise(x: f32[N=2, 8, 6, 6]) {
  a = hardswish(x); b = hardsigmoid(x); c = gelu(x); d = gelu(x, approximate="tanh")
  e = relu6(x + 3) / 6; f = 3 - x * 0.5; g = x - global_avgpool(x); h = x / (x * x + 1)
  k = hardswish(conv2d(x, 16, kernel=1) as c1)
  m = gelu(conv2d(x, 16, kernel=3, pad=1) as c2)
  n = hardsigmoid(conv2d(x, 16, kernel=1) as c3 * 2 - 1)
  p = gelu(dense(flatten(x), 10) as fc, approximate="tanh")
  return a, b, c, d, e, f, g, h, k, m, n, p
}
"""
NAMES = "a b c d e f g h k m n p".split()


def reference(x, w):
    def conv(name, pad=0):
        return F.conv2d(x, w[name + ".weight"], w[name + ".bias"], padding=pad)
    return {
        "a": F.hardswish(x), "b": F.hardsigmoid(x), "c": F.gelu(x),
        "d": F.gelu(x, approximate="tanh"), "e": F.relu6(x + 3) / 6, "f": 3 - x * 0.5,
        "g": x - x.mean(dim=(2, 3), keepdim=True), "h": x / (x * x + 1),
        "k": F.hardswish(conv("c1")), "m": F.gelu(conv("c2", 1)),
        "n": F.hardsigmoid(conv("c3") * 2 - 1),
        "p": F.gelu(F.linear(x.flatten(1), w["fc.weight"], w["fc.bias"]), approximate="tanh"),
    }


def write_safetensors(path, state):
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        data = t.contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print("FAIL: %s exited with %d:\n%s" % (" ".join(cmd), r.returncode, r.stdout))
    return r.returncode == 0


def compare(what, prefix, ref):
    ok, worst = True, 0.0
    for name in NAMES:
        got, want = np.load("%s.%s.npy" % (prefix, name)), ref[name].numpy()
        err = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
        worst = max(worst, err)
        if got.shape != want.shape or not err <= 1e-5:
            print("%s output %s: FAIL: max|d|/max|ref| = %.3g" % (what, name, err))
            ok = False
    print("%s: %s: worst max|d|/max|ref| = %.3g" % (what, "ok" if ok else "FAIL", worst))
    return ok


def main(build):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 6, 6, generator=gen) * 4
    x.view(-1)[:6] = torch.tensor([-3.0, 3.0, -2.9999, 2.9999, 40.0, -40.0])
    w = {"c1.weight": torch.randn(16, 8, 1, 1, generator=gen) * 0.5,
         "c2.weight": torch.randn(16, 8, 3, 3, generator=gen) * 0.2,
         "c3.weight": torch.randn(16, 8, 1, 1, generator=gen) * 0.5,
         "fc.weight": torch.randn(10, 288, generator=gen) * 0.05}
    for name in ("c1", "c2", "c3"):
        w[name + ".bias"] = torch.randn(16, generator=gen)
    w["fc.bias"] = torch.randn(10, generator=gen)
    with torch.no_grad():
        ref = reference(x, w)
    cnnc, cnnrun = (os.path.join(build, "tools", t) for t in ("cnnc", "cnnrun"))
    with tempfile.TemporaryDirectory(prefix="cnnc-elementwise-") as tmp:
        src, weights, xin, so = (os.path.join(tmp, f) for f in
                                 ("m.cnn", "w.safetensors", "x.npy", "m.so"))
        with open(src, "w") as f:
            f.write(SOURCE)
        write_safetensors(weights, w)
        np.save(xin, x.numpy())
        out = os.path.join(tmp, "i")
        if not run([cnnc, "run", src, "--weights=" + weights, "--input=" + xin, "-o", out + ".npy"]):
            return 1
        ok = compare("interpreter", out, ref)
        out = os.path.join(tmp, "c")
        if not run([cnnc, src, "--weights=" + weights, "-o", so]):
            return 1
        if not run([cnnrun, so, "--input", xin, "--output", out + ".npy"]):
            return 1
        ok &= compare("model.so", out, ref)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
