#!/usr/bin/python3
"""Training throughput: a compiled training step (cnnc --train) against PyTorch's eager
training step, in the same run, same threads, same batch, SGD with momentum.

  resnet18 at batch 16 on 112x112 inputs, mnist_cnn at batch 64, 2 threads (--threads);
  images/s of each (median of --steps timed steps after warm-up) and the ratio.
  With --mpi: cnntrain's data-parallel scaling, 2 ranks x 1 thread against 1 rank x 1
  thread at the same per-rank batch (efficiency = 2-rank throughput / (2 x 1-rank)).

Usage: bench/train.py [--build=build] [--threads=2] [--steps=10] [--models=a,b] [--mpi]
Prints a Markdown table (bench/RESULTS.md has the last one committed)."""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))


def torch_model(name):
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
    if name == "resnet18":
        return torchvision.models.resnet18()

    class MnistCnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
            self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            return self.fc2(F.relu(self.fc1(x.flatten(1))))
    return MnistCnn()


CASES = {  # model: (batch, input size or None for the file's own)
    "resnet18": (16, 112),
    "mnist_cnn": (64, None),
}


def source(tmp, name, size):
    text = open(os.path.join(ROOT, "models", name + ".cnn")).read()
    if size:
        text = re.sub(r"f32\[N=1, 3, 224, 224\]", "f32[N=1, 3, %d, %d]" % (size, size), text)
    path = os.path.join(tmp, name + ".cnn")
    with open(path, "w") as f:
        f.write(text)
    return path


def time_steps(step, steps):
    step()
    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_cnnc(tmp, name, batch, size, threads, steps):
    import cnnc
    t0 = time.perf_counter()
    tr = cnnc.compile_train(source(tmp, name, size), os.path.join(tmp, name + "_train.so"),
                            batch=batch, threads=threads, optimizer="sgd", lr=0.01,
                            momentum=0.9)
    compile_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    x = rng.standard_normal(tr.input_shape, dtype=np.float32)
    y = rng.integers(0, tr.output_shape[1], tr.label_shape).astype(np.int64)
    sec = time_steps(lambda: tr.step(x, y), steps)
    tr.close()
    return sec, compile_s


def bench_torch(name, batch, size, threads, steps):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    model = torch_model(name)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    shape = (batch, 3, size, size) if size else (batch, 1, 28, 28)
    x = torch.randn(shape)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return time_steps(step, steps)


def bench_mpi(tmp, build, steps):
    """cnntrain over 1 and 2 ranks of 1 thread, mnist_cnn at a per-rank batch of 64."""
    cnntrain, mpirun = os.path.join(build, "tools", "cnntrain"), shutil.which("mpirun")
    if not mpirun or not os.access(cnntrain, os.X_OK):
        print("mpi: skipped (needs mpirun and %s)" % cnntrain, file=sys.stderr)
        return None
    import cnnc
    so = os.path.join(tmp, "mnist_mpi.so")
    cnnc.compile_train(os.path.join(ROOT, "models", "mnist_cnn.cnn"), so, batch=64).close()
    rng = np.random.default_rng(0)
    n = 64 * 2 * steps
    data = os.path.join(tmp, "mpi.npz")
    np.savez(data, x=rng.standard_normal((n, 1, 28, 28), dtype=np.float32),
             y=rng.integers(0, 10, n).astype(np.int64))
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    rates = {}
    for ranks in (1, 2):
        cmd = [mpirun, "-np", str(ranks), "--oversubscribe"] + root + [
            cnntrain, so, "--data=" + data, "--epochs=1", "--batch=%d" % (64 * ranks),
            "--threads=1", "--quiet", "--save=" + os.path.join(tmp, "w.safetensors")]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        rates[ranks] = n / (time.perf_counter() - t0)
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--models", default=",".join(CASES))
    ap.add_argument("--mpi", action="store_true")
    a = ap.parse_args()
    os.environ.setdefault("CNNC", os.path.join(a.build, "tools", "cnnc"))
    print("| model | batch | input | cnnc img/s | PyTorch img/s | cnnc / PyTorch | cnnc compile s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            batch, size = CASES[name]
            c, comp = bench_cnnc(tmp, name, batch, size, a.threads, a.steps)
            try:
                t = bench_torch(name, batch, size, a.threads, a.steps)
            except ImportError as e:
                print("%s: PyTorch skipped (%s)" % (name, e), file=sys.stderr)
                t = None
            print("| %s | %d | %s | %.1f | %s | %s | %.1f |" % (
                name, batch, "%dx%d" % (size, size) if size else "28x28", batch / c,
                "%.1f" % (batch / t) if t else "-", "%.2f" % (t / c) if t else "-", comp))
        if a.mpi:
            r = bench_mpi(tmp, a.build, a.steps)
            if r:
                print("\nMPI, mnist_cnn, 64 per rank, 1 thread per rank: 1 rank %.1f img/s, "
                      "2 ranks %.1f img/s, efficiency %.0f%%" % (r[1], r[2],
                                                                 100 * r[2] / (2 * r[1])))


if __name__ == "__main__":
    main()
