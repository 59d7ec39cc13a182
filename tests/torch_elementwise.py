#!/usr/bin/python3
"""Checks layers against PyTorch, each case one small network in cnnc and in
torch, outputs compared at 1e-5 (max|d| / max|ref| per output) through
`cnnc run` (the interpreter) and a compiled model.so run by cnnrun:
  elementwise: hardswish, hardsigmoid, gelu (both forms) and tensor arithmetic,
      on an input with values around the kinks at -3 and 3 and large ones;
  layers: layernorm (last dim and channels), permute, dense over one dim (the
      last, the channels, another), parameter, chunk, split, channel_shuffle,
      pad, mean, stochastic_depth and unary minus.
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

ELEMENTWISE = """network elementwise(x: f32[N=2, 8, 6, 6]) {
  a = hardswish(x); b = hardsigmoid(x); c = gelu(x); d = gelu(x, approximate="tanh")
  e = relu6(x + 3) / 6; f = 3 - x * 0.5; g = x - global_avgpool(x); h = x / (x * x + 1)
  k = hardswish(conv2d(x, 16, kernel=1) as c1)
  m = gelu(conv2d(x, 16, kernel=3, pad=1) as c2)
  n = hardsigmoid(conv2d(x, 16, kernel=1) as c3 * 2 - 1)
  p = gelu(dense(flatten(x), 10) as fc, approximate="tanh")
  q = erf(x * 0.5) + sqrt(abs(x)) - exp(x * 0.1)
  r = sqrt(conv2d(x, 16, kernel=1) as c4)
  return a, b, c, d, e, f, g, h, k, m, n, p, q, r
}
"""
ELEMENTWISE_NAMES = "a b c d e f g h k m n p q r".split()


def elementwise_reference(x, w):
    def conv(name, pad=0):
        return F.conv2d(x, w[name + ".weight"], w[name + ".bias"], padding=pad)
    return {
        "a": F.hardswish(x), "b": F.hardsigmoid(x), "c": F.gelu(x),
        "d": F.gelu(x, approximate="tanh"), "e": F.relu6(x + 3) / 6, "f": 3 - x * 0.5,
        "g": x - x.mean(dim=(2, 3), keepdim=True), "h": x / (x * x + 1),
        "k": F.hardswish(conv("c1")), "m": F.gelu(conv("c2", 1)),
        "n": F.hardsigmoid(conv("c3") * 2 - 1),
        "p": F.gelu(F.linear(x.flatten(1), w["fc.weight"], w["fc.bias"]), approximate="tanh"),
        "q": torch.erf(x * 0.5) + torch.sqrt(torch.abs(x)) - torch.exp(x * 0.1),
        "r": torch.sqrt(conv("c4")),
    }


def elementwise_case(gen):
    x = torch.randn(2, 8, 6, 6, generator=gen) * 4
    x.view(-1)[:6] = torch.tensor([-3.0, 3.0, -2.9999, 2.9999, 40.0, -40.0])
    w = {"c1.weight": torch.randn(16, 8, 1, 1, generator=gen) * 0.5,
         "c2.weight": torch.randn(16, 8, 3, 3, generator=gen) * 0.2,
         "c3.weight": torch.randn(16, 8, 1, 1, generator=gen) * 0.5,
         "fc.weight": torch.randn(10, 288, generator=gen) * 0.05}
    for name in ("c1", "c2", "c3"):
        w[name + ".bias"] = torch.randn(16, generator=gen)
    w["fc.bias"] = torch.randn(10, generator=gen)
    w["c4.weight"] = torch.randn(16, 8, 1, 1, generator=gen) * 0.5
    w["c4.bias"] = torch.randn(16, generator=gen)
    return ELEMENTWISE, ELEMENTWISE_NAMES, x, w, elementwise_reference


LAYERS = """network layers(x: f32[N=2, 16, 6, 5]) {
  t = permute(x, [0, 2, 3, 1])
  a = layernorm(t, eps=1e-6) as ln1
  b = gelu(dense(a, 24, axis=-1) as fc1)
  c = permute(dense(b, 16, axis=-1) as fc2, [0, 3, 1, 2])
  s = parameter([16, 1, 1]) as scale
  d = s * c + x
  e = layernorm(d, axis=1) as ln2
  f = dense(e, 8, axis=1) as fc3
  g = dense(x, 4, axis=2) as fc4
  parts = chunk(e, 2)
  h = channel_shuffle(concat(parts[1], relu(parts[0])), 4)
  q = split(x, [5, 11])
  k = pad(q[1], [1, 2, 0, 3], value=-0.5)
  m = mean(x, [2, 3], keepdims=true) * x
  n = -mean(stochastic_depth(e, 0.1), [-1, -2])
  p = pad(x, 1)
  r = chunk(x, 3)[2]
  return d, e, f, g, h, k, m, n, p, r
}
"""
LAYERS_NAMES = "d e f g h k m n p r".split()


def layers_reference(x, w):
    def ln_channels(v, name, eps):
        return F.layer_norm(v.permute(0, 2, 3, 1), (v.shape[1],), w[name + ".weight"],
                            w[name + ".bias"], eps).permute(0, 3, 1, 2)

    def shuffle(v, g):
        n, c, hh, ww = v.shape
        return v.view(n, g, c // g, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)

    a = F.layer_norm(x.permute(0, 2, 3, 1), (16,), w["ln1.weight"], w["ln1.bias"], 1e-6)
    b = F.gelu(F.linear(a, w["fc1.weight"], w["fc1.bias"]))
    c = F.linear(b, w["fc2.weight"], w["fc2.bias"]).permute(0, 3, 1, 2)
    d = w["scale"] * c + x
    e = ln_channels(d, "ln2", 1e-5)
    parts = e.chunk(2, 1)
    q = x.split([5, 11], 1)
    return {
        "d": d, "e": e,
        "f": F.linear(e.permute(0, 2, 3, 1), w["fc3.weight"], w["fc3.bias"]).permute(0, 3, 1, 2),
        "g": F.linear(x.transpose(2, 3), w["fc4.weight"], w["fc4.bias"]).transpose(2, 3),
        "h": shuffle(torch.cat([parts[1], F.relu(parts[0])], 1), 4),
        "k": F.pad(q[1], (2, 3, 1, 0), value=-0.5),
        "m": x.mean((2, 3), keepdim=True) * x,
        "n": -e.mean((2, 3)),
        "p": F.pad(x, (1, 1, 1, 1)),
        "r": x.chunk(3, 1)[2],
    }


def layers_case(gen):
    x = torch.randn(2, 16, 6, 5, generator=gen) * 2 + 0.5
    shapes = {"ln1.weight": [16], "ln1.bias": [16], "fc1.weight": [24, 16], "fc1.bias": [24],
              "fc2.weight": [16, 24], "fc2.bias": [16], "scale": [16, 1, 1], "ln2.weight": [16],
              "ln2.bias": [16], "fc3.weight": [8, 16], "fc3.bias": [8], "fc4.weight": [4, 6],
              "fc4.bias": [4]}
    w = {name: torch.randn(*shape, generator=gen) * 0.5 for name, shape in shapes.items()}
    return LAYERS, LAYERS_NAMES, x, w, layers_reference


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


def compare(what, prefix, names, ref):
    ok, worst = True, 0.0
    for name in names:
        got, want = np.load("%s.%s.npy" % (prefix, name)), ref[name].numpy()
        nan = np.isnan(want)  # sqrt below 0: NaN at the same places, the rest compared
        if got.shape != want.shape or not np.array_equal(np.isnan(got), nan):
            print("%s output %s: FAIL: shape %s or NaNs differ from torch's %s" %
                  (what, name, got.shape, want.shape))
            ok = False
            continue
        got, want = got[~nan], want[~nan]
        err = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
        worst = max(worst, err)
        if got.shape != want.shape or not err <= 1e-5:
            print("%s output %s: FAIL: max|d|/max|ref| = %.3g" % (what, name, err))
            ok = False
    print("%s: %s: worst max|d|/max|ref| = %.3g" % (what, "ok" if ok else "FAIL", worst))
    return ok


def check(build, case, gen):
    source, names, x, w, reference = case(gen)
    with torch.no_grad():
        ref = reference(x, w)
    cnnc, cnnrun = (os.path.join(build, "tools", t) for t in ("cnnc", "cnnrun"))
    with tempfile.TemporaryDirectory(prefix="cnnc-torch-layers-") as tmp:
        src, weights, xin, so = (os.path.join(tmp, f) for f in
                                 ("m.cnn", "w.safetensors", "x.npy", "m.so"))
        with open(src, "w") as f:
            f.write(source)
        write_safetensors(weights, w)
        np.save(xin, x.numpy())
        out = os.path.join(tmp, "i")
        if not run([cnnc, "run", src, "--weights=" + weights, "--input=" + xin, "-o", out + ".npy"]):
            return False
        what = case.__name__[:-len("_case")]
        ok = compare(what + " interpreter", out, names, ref)
        out = os.path.join(tmp, "c")
        if not run([cnnc, src, "--weights=" + weights, "-o", so]):
            return False
        for threads in ("1", "2"):
            if not run([cnnrun, so, "--input", xin, "--threads", threads,
                        "--output", out + ".npy"]):
                return False
            ok &= compare("%s model.so (%s threads)" % (what, threads), out, names, ref)
    return ok


def main(build):
    gen = torch.Generator().manual_seed(3)
    results = [check(build, case, gen) for case in (elementwise_case, layers_case)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
