"""What tests/check_cnntrain.sh needs of numpy, as subcommands:
  data DIR               DIR/train.npz (600 samples) and DIR/val.npz (200) of a 10-class
                         problem shaped like MNIST ([1, 28, 28]: a class's pattern plus
                         noise), DIR/val_x.npy, the same with one-hot float targets
                         (DIR/targets.npz, val_targets.npz), malformed archives DIR/bad_*.npz
  same A B TOL           two .safetensors files hold the same tensors within TOL, relative
                         to each tensor's largest magnitude; prints the largest difference
  apart A B MIN          they differ by MIN or more
  accuracy OUT.npy VAL   the number of VAL.npz samples whose argmax of OUT.npy is y"""
import json
import struct
import sys

import numpy as np


def data(out):
    rng = np.random.default_rng(0)
    patterns = rng.normal(0, 0.2, (10, 1, 28, 28)).astype(np.float32)

    def draw(n):
        y = rng.integers(0, 10, n)
        x = patterns[y] + rng.normal(0, 1, (n, 1, 28, 28)).astype(np.float32)
        return x.astype(np.float32), y.astype(np.int64)

    x, y = draw(600)
    np.savez(out + "/train.npz", x=x, y=y)
    vx, vy = draw(200)
    np.savez_compressed(out + "/val.npz", x=vx, y=vy)
    np.save(out + "/val_x.npy", vx)
    onehot = np.eye(10, dtype=np.float32)
    np.savez(out + "/targets.npz", x=x, y=onehot[y])
    np.savez(out + "/val_targets.npz", x=vx, y=onehot[vy])
    np.savez(out + "/bad_no_y.npz", x=x)
    np.savez(out + "/bad_float_y.npz", x=x, y=y.astype(np.float32))
    np.savez(out + "/bad_range.npz", x=x, y=np.where(np.arange(600) == 17, 10, y))
    np.savez(out + "/bad_count.npz", x=x, y=y[:599])
    np.savez(out + "/bad_shape.npz", x=x.reshape(600, 28, 28), y=y)
    np.savez(out + "/bad_xtype.npz", x=x.astype(np.int32), y=y)
    np.savez(out + "/bad_few.npz", x=x[:4], y=y[:4])
    np.savez(out + "/bad_inf.npz", x=np.where(np.arange(600)[:, None, None, None] == 50, np.inf, x),
             y=y)
    with open(out + "/bad_truncated.npz", "wb") as f:
        f.write(open(out + "/train.npz", "rb").read()[:1000])


def safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(blob[a:b], "<f4").reshape(t["shape"])
    return out


def difference(a, b):
    """The largest difference of two files' tensors, relative to the tensor's magnitude."""
    ta, tb = safetensors(a), safetensors(b)
    if sorted(ta) != sorted(tb):
        print("different tensors: %s and %s" % (sorted(ta), sorted(tb)))
        return float("inf")
    worst = 0.0
    for name in ta:
        scale = max(float(np.abs(ta[name]).max()), 1e-30)
        worst = max(worst, float(np.abs(ta[name] - tb[name]).max()) / scale)
    print("largest relative difference %.3g" % worst)
    return worst


def accuracy(out, val):
    y = np.load(val)["y"]
    print(int((np.load(out).argmax(1) == y).sum()))
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "data":
        return data(sys.argv[2]) or 0
    if cmd == "same":
        return 0 if difference(sys.argv[2], sys.argv[3]) <= float(sys.argv[4]) else 1
    if cmd == "apart":
        return 0 if difference(sys.argv[2], sys.argv[3]) >= float(sys.argv[4]) else 1
    if cmd == "accuracy":
        return accuracy(sys.argv[2], sys.argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
