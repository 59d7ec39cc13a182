#!/usr/bin/python3
"""Trains models/mnist_cnn.cnn's network on scikit-learn's bundled 8×8 handwritten digits
(no download), drawn like MNIST: each digit upscaled bilinearly into the central 20×20 box
of a 28×28 image and normalized with MNIST's mean and deviation. Writes the trained weights
(models/mnist_cnn.safetensors) and the held-out set exactly as fed to the network
(models/digits/images.npy f32 [N,1,28,28], labels.npy f32 [N], expected.txt) for `make demo`.
Deterministic: a fixed seed, one thread. Usage: /usr/bin/python3 tools/train_mnist.py

With --export=DIR it trains nothing and writes the same split, as fed to the network, for
cnntrain (`make train-demo`): DIR/digits_train.npz and DIR/digits_test.npz, each x f32
[N,1,28,28] and y int64 [N]."""

import json
import os
import struct
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
except ImportError as e:
    print("train_mnist.py: needs numpy, torch and scikit-learn (%s); "
          "run it with /usr/bin/python3" % e, file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchvision_names import MnistCnn  # noqa: E402  (the reference module of the zoo)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 0
HELD_OUT = 0.2
EPOCHS = 10
BATCH = 32
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def mnist_like(images):
    """uint 0..16 [N,8,8] → f32 [N,1,28,28]: ink in [0,1] in a centred 20×20 box, normalized."""
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1)
    x = F.pad(x, (4, 4, 4, 4))
    return (x - MNIST_MEAN) / MNIST_STD


def train(model, x, y):
    gen = torch.Generator().manual_seed(SEED)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
    model.train()
    for epoch in range(EPOCHS):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        print("epoch %2d  loss %.4f" % (epoch + 1, total / len(x)))


def write_safetensors(path, state):
    """F32 safetensors: u64 header length, JSON header, then the raw tensors in order."""
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        data = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_expected(path, pred, labels):
    correct = int((pred == labels).sum())
    with open(path, "w") as f:
        f.write("# Written by tools/train_mnist.py: PyTorch's results on images.npy.\n")
        f.write("accuracy %d/%d\n" % (correct, len(labels)))
        f.write("predictions %s\n" % " ".join(str(int(p)) for p in pred))
        f.write("labels %s\n" % " ".join(str(int(v)) for v in labels))
    return correct


def split():
    """The training and held-out images as fed to the network, and their labels."""
    digits = load_digits()
    tr_img, te_img, tr_lab, te_lab = train_test_split(
        digits.images, digits.target, test_size=HELD_OUT, random_state=SEED,
        stratify=digits.target)
    return mnist_like(tr_img), mnist_like(te_img), tr_lab, te_lab


def export(out):
    x_tr, x_te, tr_lab, te_lab = split()
    os.makedirs(out, exist_ok=True)
    for name, x, y in (("train", x_tr, tr_lab), ("test", x_te, te_lab)):
        path = os.path.join(out, "digits_%s.npz" % name)
        np.savez(path, x=x.numpy().astype("<f4"), y=y.astype(np.int64))
        print("wrote %s: %d images" % (path, len(y)))


def main():
    if len(sys.argv) == 2 and sys.argv[1].startswith("--export="):
        return export(sys.argv[1][len("--export="):])
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x_tr, x_te, tr_lab, te_lab = split()
    y_tr = torch.from_numpy(tr_lab.astype(np.int64))

    model = MnistCnn()
    start = time.time()
    train(model, x_tr, y_tr)
    print("trained on %d images in %.1f s" % (len(x_tr), time.time() - start))

    model.eval()
    with torch.no_grad():
        pred = model(x_te).argmax(1).numpy()
    out = os.path.join(ROOT, "models", "digits")
    os.makedirs(out, exist_ok=True)
    write_safetensors(os.path.join(ROOT, "models", "mnist_cnn.safetensors"), model.state_dict())
    np.save(os.path.join(out, "images.npy"), x_te.numpy().astype("<f4"))
    np.save(os.path.join(out, "labels.npy"), te_lab.astype("<f4"))
    correct = write_expected(os.path.join(out, "expected.txt"), pred, te_lab)
    print("held-out accuracy %d/%d = %.2f%%" % (correct, len(te_lab), 100.0 * correct / len(te_lab)))


if __name__ == "__main__":
    main()
