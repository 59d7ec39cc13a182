#!/usr/bin/python3
"""Benchmarks compiled zoo models against PyTorch on this machine, in one run.

For each model, batch size and thread count it compiles the model with cnnc
(random weights), times it with `cnnrun --bench`, times PyTorch's CPU inference
of the same torchvision architecture (frozen TorchScript, optimize_for_inference)
and ONNX Runtime's (CPUExecutionProvider, ORT_ENABLE_ALL) on that architecture
exported by torch.onnx at opset 17, with the same threads, times cnnc's model.so
compiled from that export, and writes bench/RESULTS.md: median latency of each,
cnnc's ratio to PyTorch and to ONNX Runtime, GFLOP/s, the fraction of this
machine's measured FMA peak, and the activation arena against the sum of all
tensors. ONNX Runtime runs in --ort-python (default .venv/bin/python, which `make
test-venv` makes); without it, or when cnnc cannot import the export, those
columns say "—". A last section, "where the time
goes", lists the slowest kernels of ResNet-50 (batch 1, 2 threads) from
`cnnrun --profile`; --profile-only recomputes just that section and merges it
into an existing RESULTS.md, leaving the measured rows as they are. --merge
measures only --models and puts their rows into the existing table in place of
their old ones (the other rows and sections stay), with a note of the command.

With --gpu it also measures the GPU section (bench/gpu.py: cnnc's CUDA model.so
against PyTorch with cuDNN, every zoo model at batch 1 and 32, TF32 and f32);
--gpu-only measures just that section and merges it in. Without an NVIDIA GPU
the GPU section is skipped, with a message, and left as it was.

    /usr/bin/python3 bench/run.py [--build=build] [--models=resnet50,mobilenet_v2]
                                  [--batches=1,8] [--threads=1,2] [--runs=20]
                                  [--profile-only | --merge] [--gpu | --gpu-only]
                                  [--ort-python=.venv/bin/python]
                                  [--gpu-models=...] [--gpu-batches=1,32]
                                  [--gpu-math=tf32,f32] [--gpu-runs=100]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import gpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

ZOO = ["resnet18", "resnet50", "mobilenet_v2", "vgg16", "squeezenet1_1", "mobilenet_v3_large",
       "efficientnet_b0", "shufflenet_v2_x1_0", "convnext_tiny"]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed:\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def machine_peak(tmp, threads):
    """GFLOP/s of independent FMA chains per thread count (bench/peak.c)."""
    exe = os.path.join(tmp, "peak")
    run(["cc", "-O3", "-march=native", "-pthread", os.path.join(ROOT, "bench", "peak.c"),
         "-o", exe])
    out = run([exe, str(max(threads))])
    return {int(m.group(1)): float(m.group(2))
            for m in re.finditer(r"threads (\d+) gflops ([\d.]+)", out)}


def model_flops(cnnc, model, batch):
    """FLOPs (2 per multiply-add) of conv2d and dense nodes, from the printed IR."""
    ir = run([cnnc, os.path.join(ROOT, "models", model + ".cnn"), "--emit=ir",
              "--batch=%d" % batch])
    shapes, macs = {}, 0
    for line in ir.splitlines():
        m = re.match(r"\s*%(\d+) = (\w+)(\(([^)]*)\))?.*: f32\[([\d,]*)\]", line)
        if not m:
            continue
        dims = [int(d) for d in m.group(5).split(",") if d]
        shapes[m.group(1)] = dims
        op, args = m.group(2), [a.strip()[1:] for a in (m.group(4) or "").split(",") if a]
        if op in ("conv2d", "dense"):
            w = shapes[args[1]]
            per_out = 1
            for d in w[1:]:
                per_out *= d
            n = 1
            for d in dims:
                n *= d
            macs += n * per_out
    return 2 * macs


def memory_plan(cnnc, model, batch):
    """(arena bytes, sum of all activation tensors) from `cnnc --emit=plan`."""
    out = run([cnnc, os.path.join(ROOT, "models", model + ".cnn"), "--emit=plan",
               "--random-weights=0", "--batch=%d" % batch])
    arena = re.search(r"arena_bytes (\d+)", out)
    total = re.search(r"total_bytes (\d+)", out)
    return (int(arena.group(1)) if arena else None, int(total.group(1)) if total else None)


def time_cnnc(cnnrun, so, threads, runs):
    out = run([cnnrun, so, "--threads=%d" % threads, "--bench=%d" % runs, "--warmup=3"])
    m = re.search(r"median ([\d.]+) ms", out)
    if not m:
        raise RuntimeError("unexpected cnnrun output:\n" + out)
    return float(m.group(1))


TORCH_TIMER = r"""
import sys, time, torch
sys.path.insert(0, %r)
import torchvision_names
model, batch, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
net = torchvision_names.build(model).eval()
x = torch.rand(batch, 3, 224, 224) * 2 - 1
with torch.no_grad():
    traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(net)))
    for _ in range(3):
        traced(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        traced(x)
        times.append((time.perf_counter() - t0) * 1e3)
times.sort()
print("median %%.4f ms" %% times[len(times) // 2])
"""


def time_torch(model, batch, threads, runs):
    """PyTorch's median latency, in a process of its own: its OpenMP pool is
    sized once, at start-up, by OMP_NUM_THREADS."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = run([sys.executable, "-c", TORCH_TIMER % os.path.join(ROOT, "tools"), model,
               str(batch), str(threads), str(runs)], env=env)
    return float(re.search(r"median ([\d.]+) ms", out).group(1))


ORT_EXPORT = r"""
import sys, torch
sys.path.insert(0, %r)
import torchvision_names
net = torchvision_names.build(sys.argv[1]).eval()
with torch.no_grad():
    torch.onnx.export(net, torch.zeros(1, 3, 224, 224), sys.argv[2], opset_version=17,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
"""

ORT_TIMER = r"""
import sys, time
import numpy as np, onnxruntime as ort
path, batch, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
opts = ort.SessionOptions()
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
x = {"input": np.random.default_rng(0).uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)}
for _ in range(3):
    s.run(None, x)
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    s.run(None, x)
    times.append((time.perf_counter() - t0) * 1e3)
times.sort()
print("median %.4f ms" % times[len(times) // 2])
"""


class Onnx:
    """The ONNX side of a model: its export, ONNX Runtime's latency and cnnc's model.so
    compiled from the export. Every failure (no --ort-python, an export or a cnnc import
    that fails) is said once and leaves its columns empty."""

    def __init__(self, python, cnnc, tmp):
        self.python, self.cnnc, self.tmp = python, cnnc, tmp
        self.version = None
        if not os.access(python, os.X_OK):
            print("ONNX Runtime skipped: no %s (make test-venv makes it)" % python, flush=True)
            self.python = None
            return
        try:
            self.version = run([python, "-c", "import onnxruntime; "
                                "print(onnxruntime.__version__)"]).strip()
        except RuntimeError as e:
            print("ONNX Runtime skipped: %s" % e, flush=True)
            self.python = None

    def export(self, model):
        """The path of the model's export, or None."""
        if not self.python:
            return None
        path = os.path.join(self.tmp, model + ".onnx")
        try:
            run([self.python, "-c", ORT_EXPORT % os.path.join(ROOT, "tools"), model, path])
        except RuntimeError as e:
            print("%s: torch.onnx.export failed: %s" % (model, e), flush=True)
            return None
        return path

    def time_ort(self, path, batch, threads, runs):
        if not path:
            return None
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        out = run([self.python, "-c", ORT_TIMER, path, str(batch), str(threads), str(runs)],
                  env=env)
        return float(re.search(r"median ([\d.]+) ms", out).group(1))

    def compile(self, path, batch):
        """cnnc's model.so of the export at `batch`, or None (after saying why)."""
        if not path:
            return None
        so = path[:-5] + "_b%d.so" % batch
        r = subprocess.run([self.cnnc, path, "--batch=%d" % batch, "-o", so],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print("%s: cnnc cannot compile the export: %s" % (
                os.path.basename(path), (r.stderr.strip().splitlines() or ["?"])[0]), flush=True)
            return None
        return so


PROFILE_MODEL, PROFILE_BATCH, PROFILE_THREADS, PROFILE_TOP = "resnet50", 1, 2, 10
PROFILE_TITLE = "## Where the time goes"
GPU_TITLE = gpu.TITLE
GPU_SECTION = GPU_TITLE + """

Not yet measured: no NVIDIA GPU was at hand where bench/run.py last ran. On a machine
with one, `/usr/bin/python3 bench/run.py --gpu-only` fills this section in: cnnc's CUDA
model.so (`cnnrun --bench`) against PyTorch with cuDNN in the same run, images/s, their
ratio and the fraction of the device's peak.

| model | batch | math | cnnc img/s | PyTorch+cuDNN img/s | ratio | of peak |
|---|---|---|---|---|---|---|
| every zoo model | 1, 32 | tf32, f32 | not yet measured | not yet measured | — | — |
"""
PROFILE_ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+([\d.]+)\s+([\d.]+)%\s+(\S+)$")
PROFILE_TOTAL = re.compile(r"^total: kernels ([\d.]+) ms/run, run ([\d.]+) ms/run")


def profile_kernels(cnnrun, so, threads, runs):
    """Kernels of `cnnrun --profile`, slowest first: (index, name, op, ms, share %,
    GFLOP/s or None), and the kernels' sum and the whole run in ms."""
    out = run([cnnrun, so, "--threads=%d" % threads, "--bench=%d" % runs, "--warmup=3",
               "--profile-sort=time"])
    rows, total = [], None
    for line in out.splitlines():
        m = PROFILE_ROW.match(line)
        if m:
            rows.append((int(m.group(1)), m.group(2), m.group(3), float(m.group(4)),
                         float(m.group(5)), None if m.group(6) == "-" else float(m.group(6))))
        total = total or PROFILE_TOTAL.match(line)
    if not rows or not total:
        raise RuntimeError("unexpected cnnrun --profile output:\n" + out)
    return rows, float(total.group(1)), float(total.group(2))


def profile_section(cnnc, cnnrun, tmp, runs, peak):
    """The "where the time goes" section of RESULTS.md, as markdown."""
    so = os.path.join(tmp, "profile.so")
    run([cnnc, os.path.join(ROOT, "models", PROFILE_MODEL + ".cnn"), "--random-weights=0",
         "--batch=%d" % PROFILE_BATCH, "-o", so])
    rows, kernels_ms, run_ms = profile_kernels(cnnrun, so, PROFILE_THREADS, runs)
    by_op = {}
    for r in rows:
        by_op[r[2].split("+")[0]] = by_op.get(r[2].split("+")[0], 0.0) + r[4]
    top = rows[:PROFILE_TOP]
    p = peak.get(PROFILE_THREADS)
    lines = [
        "%s: %s, batch %d, %d threads\n" % (PROFILE_TITLE, PROFILE_MODEL, PROFILE_BATCH,
                                             PROFILE_THREADS),
        "From `cnnrun --profile` over %d runs on %s: %d kernels take %.2f ms of a %.2f ms "
        "run (%.1f%%; the rest is the calls between them and the output copy). The %d "
        "slowest take %.1f%% of the kernels' time. By op: %s. Times here are taken with "
        "profiling on, in a run of their own, so they need not match the table above."
        "\n" % (runs, time.strftime("%Y-%m-%d"), len(rows), kernels_ms, run_ms,
                100 * kernels_ms / run_ms, len(top), sum(r[4] for r in top),
                ", ".join("%s %.1f%%" % kv for kv in sorted(by_op.items(), key=lambda kv: -kv[1]))),
        "| # | kernel | op | ms/run | share | GFLOP/s | of peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in top:
        gf = "—" if r[5] is None else "%.1f" % r[5]
        of = "—" if r[5] is None or not p else "%.0f%%" % (100 * r[5] / p)
        lines.append("| %d | %s | %s | %.3f | %.1f%% | %s | %s |" % (r[0], r[1], r[2], r[3],
                                                                     r[4], gf, of))
    return "\n".join(lines) + "\n"


def read_section(path, title):
    """The section headed `title` of the file at `path`, or None."""
    text = open(path).read() if os.path.exists(path) else ""
    start = text.find(title)
    if start < 0:
        return None
    end = text.find("\n## ", start + len(title))
    return text[start:end + 1] if end >= 0 else text[start:]


def merge_section(path, section, title=PROFILE_TITLE):
    """Replaces the section headed `title` of the file at `path` (or appends it)."""
    text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = text.find(title)
    if start >= 0:
        end = text.find("\n## ", start + len(title))
        text = text[:start] + (text[end + 1:] if end >= 0 else "")
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n\n" + section)


def mib(b):
    return "—" if b is None else "%.2f" % (b / 2**20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--models", default=",".join(ZOO))
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--profile-only", action="store_true",
                    help="only the 'where the time goes' section, merged into --out")
    ap.add_argument("--merge", action="store_true",
                    help="only --models, their rows merged into the table of --out")
    ap.add_argument("--ort-python", default=os.path.join(ROOT, ".venv", "bin", "python"),
                    help="a Python with onnxruntime that sees torch (make test-venv)")
    ap.add_argument("--gpu", action="store_true", help="the GPU section too")
    ap.add_argument("--gpu-only", action="store_true",
                    help="only the GPU section, merged into --out")
    ap.add_argument("--gpu-models", default=",".join(gpu.zoo()))
    ap.add_argument("--gpu-batches", default="1,32")
    ap.add_argument("--gpu-math", default="tf32,f32")
    ap.add_argument("--gpu-runs", type=int, default=100)
    ap.add_argument("--gpu-warmup", type=int, default=10)
    a = ap.parse_args()
    cnnc = os.path.join(a.build, "tools", "cnnc")
    cnnrun = os.path.join(a.build, "tools", "cnnrun")
    threads = [int(t) for t in a.threads.split(",")]
    if a.profile_only:
        with tempfile.TemporaryDirectory() as tmp:
            peak = machine_peak(tmp, [PROFILE_THREADS])
            merge_section(a.out, profile_section(cnnc, cnnrun, tmp, a.runs, peak))
        return
    if a.gpu_only:
        with tempfile.TemporaryDirectory() as tmp:
            section = gpu_section(a, cnnc, cnnrun, tmp)
        if section:
            merge_section(a.out, section, GPU_TITLE)
        return
    old_gpu = read_section(a.out, GPU_TITLE)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        peak = machine_peak(tmp, threads + [PROFILE_THREADS])
        ox = Onnx(a.ort_python, cnnc, tmp)
        for model in a.models.split(","):
            exported = ox.export(model)
            for batch in [int(b) for b in a.batches.split(",")]:
                so = os.path.join(tmp, "%s_b%d.so" % (model, batch))
                t0 = time.perf_counter()
                run([cnnc, os.path.join(ROOT, "models", model + ".cnn"), "--random-weights=0",
                     "--batch=%d" % batch, "-o", so])
                compile_s = time.perf_counter() - t0
                flops = model_flops(cnnc, model, batch)
                arena, total = memory_plan(cnnc, model, batch)
                onnx_so = ox.compile(exported, batch)
                for t in threads:
                    ours = time_cnnc(cnnrun, so, t, a.runs)
                    theirs = time_torch(model, batch, t, a.runs)
                    ort_ms = ox.time_ort(exported, batch, t, a.runs)
                    from_onnx = time_cnnc(cnnrun, onnx_so, t, a.runs) if onnx_so else None
                    gflops = flops / ours / 1e6
                    rows.append((model, batch, t, ours, theirs, ours / theirs, gflops,
                                 gflops / peak[t], arena, total, compile_s, ort_ms, from_onnx))
                    print("%-14s b%-2d t%d  cnnc %8.2f ms  torch %8.2f ms  ratio %.2f  "
                          "ORT %s ms  cnnc from ONNX %s ms  %.1f GFLOP/s (%.0f%% of peak)"
                          % (model, batch, t, ours, theirs, ours / theirs, ms(ort_ms),
                             ms(from_onnx), gflops, 100 * gflops / peak[t]), flush=True)
        if a.merge:
            merge_rows(a.out, rows, " ".join(["/usr/bin/python3", "bench/run.py"] + sys.argv[1:]))
            return
        new_gpu = gpu_section(a, cnnc, cnnrun, tmp) if a.gpu else None
        write_results(a.out, rows, peak, ox.version)
        merge_section(a.out, profile_section(cnnc, cnnrun, tmp, a.runs, peak))
        merge_section(a.out, new_gpu or old_gpu or GPU_SECTION, GPU_TITLE)


def gpu_section(a, cnnc, cnnrun, tmp):
    """The measured GPU section, or None (after saying why) when there is no GPU."""
    try:
        rows, info = gpu.measure(cnnc, cnnrun, tmp, a.gpu_models.split(","),
                                 [int(b) for b in a.gpu_batches.split(",")],
                                 a.gpu_math.split(","), a.gpu_runs, a.gpu_warmup, model_flops,
                                 lambda line: print(line, flush=True))
    except gpu.Skipped as e:
        out = os.path.relpath(a.out, ROOT) if a.out.startswith(ROOT + os.sep) else a.out
        print("GPU section skipped: no NVIDIA GPU/driver (%s); %s keeps its GPU section as "
              "it was" % (e, out), flush=True)
        return None
    return gpu.section(rows, info)


def write_results(path, rows, peak, ort_version):
    import torch
    cpu = run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]).strip()
    with open(path, "w") as f:
        f.write("# Benchmark results\n\n")
        f.write("Written by `/usr/bin/python3 bench/run.py` on %s (%s); PyTorch %s, "
                "frozen TorchScript with optimize_for_inference, same threads, same run. "
                "%s. Latency is the median of the timed runs. Ratio = cnnc / PyTorch, "
                "ORT ratio = cnnc / ONNX Runtime (below 1: cnnc is faster); cnnc from ONNX = "
                "cnnc's model.so compiled from that export. Peak = measured FMA throughput "
                "of this machine (bench/peak.c): %s.\n\n"
                % (time.strftime("%Y-%m-%d"), cpu, torch.__version__, ORT_NOTE % ort_version
                   if ort_version else "no ONNX Runtime", ", ".join(
                       "%d thread(s) %.0f GFLOP/s" % kv for kv in sorted(peak.items()))))
        f.write(table_header())
        for r in rows:
            f.write(table_row(r) + "\n")


ORT_NOTE = ("ONNX Runtime %s (CPUExecutionProvider, ORT_ENABLE_ALL) on the same "
            "torchvision architecture exported by torch.onnx at opset 17")
COLUMNS = ["model", "batch", "threads", "cnnc ms", "PyTorch ms", "ratio", "ORT ms",
           "ORT ratio", "cnnc from ONNX ms", "GFLOP/s", "of peak", "arena MiB",
           "all tensors MiB", "compile s"]


def ms(v):
    return "—" if v is None else "%.2f" % v


def table_header():
    return "| %s |\n|%s\n" % (" | ".join(COLUMNS), "---|" * len(COLUMNS))


def table_row(r):
    return ("| %s | %d | %d | %.2f | %.2f | %.2f | %s | %s | %s | %.1f | %.0f%% | %s | %s | %.1f |"
            % (r[0], r[1], r[2], r[3], r[4], r[5], ms(r[11]),
               "—" if r[11] is None else "%.2f" % (r[3] / r[11]), ms(r[12]), r[6], 100 * r[7],
               mib(r[8]), mib(r[9]), r[10]))


def upgrade_row(line, columns):
    """A row of a table with `columns` as a row of COLUMNS, "—" where it has none."""
    cells = dict(zip(columns, [c.strip() for c in line.strip().strip("|").split("|")]))
    return "| %s |" % " | ".join(cells.get(c, "—") for c in COLUMNS)


MERGED_NOTE = "Rows measured later by --merge:"


def merge_rows(path, rows, command):
    """Puts `rows` into the CPU table of the file at `path` in place of the rows of the
    same models (new models after the others), and notes when and how they were measured
    below the table."""
    lines = open(path).read().split("\n")
    first = next(i for i, l in enumerate(lines) if l.startswith("| model | batch |")) + 2
    end = next(i for i in range(first, len(lines)) if not lines[i].startswith("| "))
    models = {r[0] for r in rows}
    kept = [l for l in lines[first:end] if l.split(" | ")[0][2:] not in models]
    columns = [c.strip() for c in lines[first - 2].strip().strip("|").split("|")]
    if columns != COLUMNS:
        # A table from before a column was added: its rows get "—" there.
        kept = [upgrade_row(l, columns) for l in kept]
        lines[first - 2:first] = table_header().rstrip("\n").split("\n")
    what = "%s %s on " % (MERGED_NOTE, ", ".join(sorted(models)))
    notes, rest = [], end
    while rest < len(lines) and (not lines[rest] or lines[rest].startswith(MERGED_NOTE)):
        if lines[rest] and not lines[rest].startswith(what):
            notes.append(lines[rest])
        rest += 1
    notes.append("%s%s, by `%s`." % (what, time.strftime("%Y-%m-%d"), command))
    lines = (lines[:first] + kept + [table_row(r) for r in rows] + [""] + notes + [""]
             + lines[rest:])
    with open(path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
