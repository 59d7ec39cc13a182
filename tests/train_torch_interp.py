#!/usr/bin/python3
"""Checks the training step's gradients against PyTorch autograd: the interpreter runs
the grad graph (`cnnc run MODEL --train --dump-grads=DIR`) with the weights, batch and
labels given to torch, and the loss, every parameter's gradient and (ResNet-18, in
training mode) the updated batch-norm running statistics must match torch's within
1e-4 (max|d| / max|ref| per tensor). Models: the MNIST CNN at batch 2, and ResNet-18
at batch 2 on 64x64 images (on 32x32, layer4's batch norm sees 2 values per channel,
which amplifies float rounding past any useful tolerance).
Usage: train_torch_interp.py BUILD_DIR   (exit 0 pass, 1 fail, 77 no torch)"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchvision_names
    from torch_check import write_safetensors
except ImportError as e:
    print("train_torch_interp.py: skipped, needs numpy, torch and torchvision (%s)" % e,
          file=sys.stderr)
    sys.exit(77)

TOL = 1e-4


def compare(what, got, ref):
    if got.shape != ref.shape:
        print("%s: FAIL: shape %s, torch gives %s" % (what, got.shape, ref.shape))
        return False
    scale = float(np.max(np.abs(ref)))
    err = float(np.max(np.abs(got - ref))) / (scale if scale > 0 else 1.0)
    ok = err <= TOL
    if not ok or what.endswith("loss"):
        print("%s: %s: max|d|/max|ref| = %.3g" % (what, "ok" if ok else "FAIL", err))
    return ok


def check(name, src_text, shape, build, tmp):
    """One model: torch's loss and gradients against the interpreter's."""
    torch.manual_seed(0)
    model = torchvision_names.build(name).train()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=gen)
    classes = 10 if name == "mnist_cnn" else 1000
    y = torch.randint(0, classes, (shape[0],), generator=gen)
    src = os.path.join(tmp, name + ".cnn")
    with open(src, "w") as f:
        f.write(src_text)
    weights, xs, ys = (os.path.join(tmp, n) for n in ("w.safetensors", "x.npy", "y.npy"))
    write_safetensors(weights, model.state_dict())
    np.save(xs, x.numpy())
    np.save(ys, y.numpy().astype(np.float32))
    out = os.path.join(tmp, name + "-grads")
    cmd = [os.path.join(build, "tools", "cnnc"), "run", src, "--train",
           "--batch=%d" % shape[0], "--weights=" + weights, "--input=" + xs, "--labels=" + ys,
           "--dump-grads=" + out]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print("%s: FAIL: %s exited with %d\n%s" % (name, " ".join(cmd), r.returncode, r.stdout))
        return False
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    ok = compare(name + ": loss", np.load(os.path.join(out, "loss.npy")),
                 loss.detach().numpy().reshape(1))
    n = 0
    for pname, p in model.named_parameters():
        ok = compare("%s: grad %s" % (name, pname), np.load(os.path.join(out, "grad.%s.npy"
                                                                          % pname)),
                     p.grad.numpy()) and ok
        n += 1
    for bname, b in model.named_buffers():
        if bname.endswith("num_batches_tracked"):
            continue
        ok = compare("%s: running %s" % (name, bname),
                     np.load(os.path.join(out, "new.%s.npy" % bname)), b.numpy()) and ok
        n += 1
    print("%s: %s (%d tensors)" % (name, "ok" if ok else "FAIL", n))
    return ok


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    build = argv[1]
    with open(os.path.join(ROOT, "models", "mnist_cnn.cnn")) as f:
        mnist = f.read()
    with open(os.path.join(ROOT, "models", "resnet18.cnn")) as f:
        resnet = f.read().replace("224, 224", "64, 64")
    with tempfile.TemporaryDirectory(prefix="cnnc-train-torch-") as tmp:
        ok = check("mnist_cnn", mnist, (2, 1, 28, 28), build, tmp)
        ok = check("resnet18", resnet, (2, 3, 64, 64), build, tmp) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
