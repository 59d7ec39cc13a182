#!/usr/bin/python3
"""Checks a zoo model numerically against PyTorch: builds the reference module (seeded
init, eval mode, batch-norm statistics perturbed so no BN is the identity), writes its
weights as safetensors and a random input as .npy, runs `cnnc run` on models/MODEL.cnn
and compares outputs: max|cnnc - torch| / max|torch| must be at most 1e-4.
Usage: torch_check.py [--build=DIR] [--tol=T] MODEL...   (exit 0 pass, 1 fail, 77 no torch)"""

import json
import os
import struct
import subprocess
import sys
import tempfile

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


def input_shape(name):
    return (1, 1, 28, 28) if name in torchvision_names.LOCAL else (1, 3, 224, 224)


def check(name, cnnc, tol):
    torch.manual_seed(0)
    model = torchvision_names.build(name).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        perturb_batchnorm(model, gen)
        x = torch.randn(*input_shape(name), generator=gen)
        ref = model(x).numpy()
    with tempfile.TemporaryDirectory(prefix="cnnc-torch-") as tmp:
        weights, xin, yout = (os.path.join(tmp, f) for f in ("w.safetensors", "x.npy", "y.npy"))
        write_safetensors(weights, model.state_dict())
        np.save(xin, x.numpy())
        cmd = [cnnc, "run", os.path.join(ROOT, "models", name + ".cnn"),
               "--weights=" + weights, "--input=" + xin, "-o", yout]
        run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if run.returncode != 0:
            print("%s: FAIL: cnnc exited with %d:\n%s" % (name, run.returncode, run.stdout))
            return False
        got = np.load(yout)
    if got.shape != ref.shape:
        print("%s: FAIL: output shape %s, torch gives %s" % (name, got.shape, ref.shape))
        return False
    err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    ok = err <= tol
    print("%s: %s: max|d|/max|ref| = %.3g (tolerance %g)" % (name, "ok" if ok else "FAIL", err, tol))
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
    cnnc = os.path.join(build, "tools", "cnnc")
    if not os.access(cnnc, os.X_OK):
        print("torch_check.py: no %s (build it, or pass --build=DIR)" % cnnc, file=sys.stderr)
        return 1
    results = [check(n, cnnc, tol) for n in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
