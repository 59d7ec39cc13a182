#!/usr/bin/python3
"""Benchmarks compiled zoo models against PyTorch, ONNX Runtime and OpenVINO on this
machine, every model at every batch size and thread count in one run.

For each zoo model (every models/*.cnn that is a torchvision classifier) it builds the
torchvision module once (seeded, its normalization parameters randomized as in
tools/torch_check.py), writes its weights as safetensors, a random batch of images and
PyTorch's output for it, and exports it with torch.onnx at opset 17. Then, for each batch
size, cnnc compiles models/MODEL.cnn with those weights twice, timed: cold (an empty
$XDG_CACHE_HOME) and cached (the same again; "—" when cnnc has no compile cache, that is
no --no-cache option); each of the two is the median of COMPILE_REPEATS such pairs, each
pair with a cache folder of its own, so that one slow start does not stand for the model. For each thread count it times, each in a process of its own:

  cnnc         the model.so, `cnnrun --bench`
  PyTorch      frozen TorchScript with optimize_for_inference (torch.set_num_threads)
  ONNX Runtime the export, CPUExecutionProvider, ORT_ENABLE_ALL, intra_op_num_threads=N,
               the batch dimension fixed
  OpenVINO     the export reshaped to the batch, CPU plugin, INFERENCE_NUM_THREADS=N,
               PERFORMANCE_HINT=LATENCY, INFERENCE_PRECISION_HINT=f32 (else it computes
               in bf16 on CPUs that have it)
  cnnc from ONNX  cnnc's model.so compiled from the same export

Every engine's output on the same images is checked against PyTorch's eager output
(max|d| / max|ref| <= --tol) before it is timed; a peer that disagrees is not timed and
its column says "wrong". Latency is the median of the timed runs after 3 warm-up runs;
each measurement takes --runs runs, fewer (at least 5) when they would take longer than
--budget seconds: a model of a few milliseconds gets hundreds of runs, so that one
interruption of a shared machine does not move its median. Every engine of a row is
measured --rounds times (default 2), in turn, and keeps its least median: a burst of
other work on a shared machine then costs no engine more than one round. A peer that is missing (no --peer-python, no onnxruntime or openvino in
it, an export that fails) is skipped with a message and its columns say "—".

bench/RESULTS.md gets: each row's latencies, the best peer (least latency of PyTorch, ORT
and OpenVINO) and cnnc's ratio to it and to PyTorch, GFLOP/s and the fraction of this
machine's FMA peak (bench/peak.c), both from the FLOPs of direct convolution and dense
layers (so a Winograd convolution can show above 100%), the activation arena against the
sum of all tensors; a compile-time table; the rows against the targets; "where the time
goes" (the slowest kernels of ResNet-50, batch 1, 2 threads, from `cnnrun --profile`); the
GPU section (bench/gpu.py) and any other section that was there, as it was.

Measured rows go to --state (a JSON file, default BUILD/bench-state.json) as they come, so
an interrupted run continues where it stopped when started again with the same cnnc,
cnnrun and settings (--fresh starts over); the table is written from every row of the
state that --models, --batches and --threads choose. The expected duration is printed
first (--estimate: only that), the time left after each row. Every compile of the run
caches into a temporary $XDG_CACHE_HOME, not the user's.

    /usr/bin/python3 bench/run.py [--build=build] [--models=resnet50,mobilenet_v2]
                                  [--batches=1,8] [--threads=1,2] [--runs=200] [--budget=4]
                                  [--profile-only | --merge] [--gpu | --gpu-only]
                                  [--peer-python=.venv-bench/bin/python] [--tol=1e-3]
                                  [--state=FILE] [--fresh] [--estimate] [--out=bench/RESULTS.md]
                                  [--gpu-models=...] [--gpu-batches=1,32]
                                  [--gpu-math=tf32,f32] [--gpu-runs=100]

`make bench-deps` makes .venv-bench with ONNX Runtime and OpenVINO (bench/requirements.txt);
`make bench` runs this script with it.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import statistics
import tempfile
import time

import gpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)

# The torchvision classifiers of models/, in the table's order; densenet121 only when
# models/densenet121.cnn exists.
CLASSIFIERS = ["resnet18", "resnet50", "mobilenet_v2", "vgg16", "squeezenet1_1",
               "mobilenet_v3_large", "efficientnet_b0", "shufflenet_v2_x1_0", "convnext_tiny",
               "densenet121"]
# cnnc's latency against the best peer's, at most, at 2 threads; every other model 1.0.
TARGETS = {"resnet18": 0.8, "resnet50": 0.8, "vgg16": 0.8}
# Compile seconds, at most: cold per model (batch 1), and cached for every model.
COMPILE_TARGETS = {"resnet50": 2.0, "densenet121": 5.0}
CACHED_TARGET = 0.3
MIN_RUNS, WARMUP = 5, 3


def zoo():
    return [m for m in CLASSIFIERS if os.path.exists(os.path.join(ROOT, "models", m + ".cnn"))]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed:\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r.stdout


def say(line):
    print(line, flush=True)


def machine_peak(tmp, threads):
    """GFLOP/s of independent FMA chains per thread count (bench/peak.c)."""
    exe = os.path.join(tmp, "peak")
    run(["cc", "-O3", "-march=native", "-pthread", os.path.join(ROOT, "bench", "peak.c"),
         "-o", exe])
    out = run([exe, str(max(threads))])
    return {int(m.group(1)): float(m.group(2))
            for m in re.finditer(r"threads (\d+) gflops ([\d.]+)", out)}


def model_flops(cnnc, model, batch):
    """FLOPs (2 per multiply-add) of conv2d and dense nodes, from the printed IR: those of
    direct convolution, whatever algorithm the compiled model uses."""
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


def bench_runs(runs, budget, est_ms):
    """--runs, or fewer (MIN_RUNS at least) when they would take longer than the budget."""
    return max(MIN_RUNS, min(runs, int(budget * 1e3 / max(est_ms, 1e-3))))


def time_cnnc(cnnrun, so, threads, runs):
    out = run([cnnrun, so, "--threads=%d" % threads, "--bench=%d" % runs,
               "--warmup=%d" % WARMUP])
    m = re.search(r"median ([\d.]+) ms", out)
    if not m:
        raise RuntimeError("unexpected cnnrun output:\n" + out)
    return float(m.group(1))


def rel_error(got, ref):
    import numpy as np
    if got.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def check_cnnc(cnnrun, so, x, ref, out):
    """max|d| / max|ref| of the model.so's output on the images x against PyTorch's."""
    import numpy as np
    run([cnnrun, so, "--input", x, "--output", out, "--threads=2"])
    return rel_error(np.load(out), np.load(ref))


# The reference: the module as tools/torch_check.py builds it (seeded, batch and layer
# norms randomized so that none is the identity), its weights for cnnc (safetensors) and
# for the PyTorch timer (state_dict), random images at each batch and PyTorch's eager
# output for them, and the torch.onnx export (opset 17, batch axis dynamic).
REFERENCE = r"""
import os, sys
import numpy as np, torch
sys.path.insert(0, %r)
import torch_check, torchvision_names
name, out, batches = sys.argv[1], sys.argv[2], [int(b) for b in sys.argv[3].split(",")]
torch.manual_seed(0)
net = torchvision_names.build(name).eval()
gen = torch.Generator().manual_seed(1)
with torch.no_grad():
    torch_check.perturb_batchnorm(net, gen)
    torch_check.perturb_layernorm(net, gen)
    x = torch.rand(max(batches), 3, 224, 224, generator=gen) * 2 - 1
    for b in batches:
        np.save(os.path.join(out, "x_b%%d.npy" %% b), x[:b].numpy())
        np.save(os.path.join(out, "ref_b%%d.npy" %% b), net(x[:b]).numpy())
torch_check.write_safetensors(os.path.join(out, "weights.safetensors"), net.state_dict())
torch.save(net.state_dict(), os.path.join(out, "state.pt"))
try:
    with torch.no_grad():
        torch.onnx.export(net, x[:1], os.path.join(out, "model.onnx"), opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
except Exception as e:
    print("torch.onnx.export failed: %%s" %% e)
"""

# Shared by the timers: check the output on the reference images, then time. Prints
# "median MS ms runs N err E", or "wrong: ..." and exits 3 when the output differs.
MEASURE = r"""
import sys, time
import numpy as np
def measure(fn, x, ref_path, runs, budget, tol):
    ref = np.load(ref_path)
    y = np.asarray(fn(x))
    err = float(np.max(np.abs(y - ref)) / np.max(np.abs(ref))) if y.shape == ref.shape \
        else float("inf")
    if not err <= tol:
        print("wrong: max|d|/max|ref| = %g against PyTorch (tolerance %g), shape %s, "
              "PyTorch's %s" % (err, tol, y.shape, ref.shape))
        sys.exit(3)
    for _ in range(WARMUP_LEFT):
        t0 = time.perf_counter()
        fn(x)
        dt = time.perf_counter() - t0
    n = max(MIN_RUNS, min(runs, int(budget / max(dt, 1e-6))))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    print("median %.4f ms runs %d err %.3g" % (times[len(times) // 2], n, err))
""".replace("WARMUP_LEFT", str(WARMUP - 1)).replace("MIN_RUNS", str(MIN_RUNS))

TORCH_TIMER = MEASURE + r"""
import torch
sys.path.insert(0, TOOLS)
import torchvision_names
model, state, x_path, ref_path = sys.argv[1:5]
threads, runs, budget, tol = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), \
    float(sys.argv[8])
torch.set_num_threads(threads)
net = torchvision_names.build(model).eval()
net.load_state_dict(torch.load(state))
with torch.no_grad():
    traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(net)))
    x = torch.from_numpy(np.load(x_path))
    measure(lambda x: traced(x).numpy(), x, ref_path, runs, budget, tol)
"""

ORT_TIMER = MEASURE + r"""
import onnxruntime as ort
path, x_path, ref_path = sys.argv[1:4]
threads, runs, budget, tol = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), \
    float(sys.argv[7])
x = np.load(x_path)
opts = ort.SessionOptions()
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
opts.add_free_dimension_override_by_name("batch", x.shape[0])
s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
measure(lambda x: s.run(None, {"input": x})[0], x, ref_path, runs, budget, tol)
"""

OPENVINO_TIMER = MEASURE + r"""
import openvino as ov
path, x_path, ref_path = sys.argv[1:4]
threads, runs, budget, tol = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), \
    float(sys.argv[7])
x = np.load(x_path)
core = ov.Core()
m = core.read_model(path)
m.reshape(list(x.shape))
c = core.compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                  "PERFORMANCE_HINT": "LATENCY",
                                  "INFERENCE_PRECISION_HINT": "f32"})
req = c.create_infer_request()
measure(lambda x: req.infer([x])[c.output(0)], x, ref_path, runs, budget, tol)
"""

WRONG = "wrong"


class Timer:
    """One engine's timer script in a Python of its own; `python` None: skipped."""

    def __init__(self, name, python, module, script):
        self.name, self.python, self.script, self.version = name, python, script, None
        if not python:
            return
        if os.sep not in python:  # a command name: the one on PATH
            python = self.python = shutil.which(python) or python
        if not os.access(python, os.X_OK):
            say("%s skipped: no %s (make bench-deps makes .venv-bench with it)" % (name, python))
            self.python = None
            return
        try:
            self.version = run([python, "-c", "import %s; print(%s.__version__)"
                                % (module, module)]).strip()
        except RuntimeError:
            say("%s skipped: %s cannot import %s (make bench-deps makes .venv-bench with it)"
                % (name, python, module))
            self.python = None

    def time(self, args, threads, runs, budget, tol):
        """The median latency in ms, WRONG when the output differs from PyTorch's, None
        when skipped or failed (after saying why)."""
        if not self.python or None in args:
            return None
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        r = subprocess.run([self.python, "-c", self.script] + [str(a) for a in args] +
                           [str(threads), str(runs), str(budget), str(tol)],
                           capture_output=True, text=True, env=env)
        m = re.search(r"median ([\d.]+) ms", r.stdout)
        if r.returncode == 0 and m:
            return float(m.group(1))
        wrong = re.search(r"^wrong: .*$", r.stdout, re.M)
        if wrong:
            say("%s: %s, not timed" % (self.name, wrong.group(0)))
            return WRONG
        say("%s failed (exit %d): %s" % (self.name, r.returncode,
                                          (r.stdout + r.stderr).strip()[-2000:]))
        return None


def has_cache(cnnc):
    """Whether cnnc keeps a compile cache (its --no-cache option)."""
    r = subprocess.run([cnnc, "--help"], capture_output=True, text=True)
    return "--no-cache" in r.stdout + r.stderr


COMPILE_REPEATS = 3


def compile_twice(cnnc, args, out, cached):
    """Seconds of a cold compile to `out` (an empty $XDG_CACHE_HOME, no `out` yet) and of
    the same compile again (None without a cache), each the median of COMPILE_REPEATS
    pairs."""
    colds, hits = [], []
    for _ in range(COMPILE_REPEATS):
        if os.path.exists(out):
            os.remove(out)
        with tempfile.TemporaryDirectory(prefix="cnnc-cache-") as cache:
            env = dict(os.environ, XDG_CACHE_HOME=cache)
            t0 = time.perf_counter()
            run([cnnc] + args, env=env)
            colds.append(time.perf_counter() - t0)
            if cached:
                t0 = time.perf_counter()
                run([cnnc] + args, env=env)
                hits.append(time.perf_counter() - t0)
    return statistics.median(colds), statistics.median(hits) if cached else None


def fingerprint(paths, settings):
    """What rows of the state file depend on: the binaries and the settings."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for p in paths:
        with open(p, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]


class State:
    """Measured rows and compile times, written to a JSON file as they come."""

    def __init__(self, path, fp, fresh):
        self.path, self.data = path, {"fingerprint": fp, "rows": {}, "compile": {}}
        if fresh or not os.path.exists(path):
            return
        try:
            old = json.load(open(path))
        except (OSError, ValueError) as e:
            say("state %s unreadable (%s): starting over" % (path, e))
            return
        if old.get("fingerprint") != fp:
            say("state %s is of another cnnc build or other settings: starting over" % path)
            return
        self.data = old
        n = len(old.get("rows", {}))
        if n:
            say("state %s: %d rows measured before, kept" % (path, n))

    def row(self, model, batch, threads):
        return self.data["rows"].get("%s/%d/%d" % (model, batch, threads))

    def put_row(self, r):
        self.data["rows"]["%s/%d/%d" % (r["model"], r["batch"], r["threads"])] = r
        self.save()

    def compiled(self, model, batch):
        return self.data["compile"].get("%s/%d" % (model, batch))

    def put_compiled(self, model, batch, times):
        self.data["compile"]["%s/%d" % (model, batch)] = times
        self.save()

    def save(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)


def estimate(flops, threads, peak, runs, budget, rounds):
    """Rough seconds one row takes: five engines' processes and runs (cnnc at half the
    FMA peak, the peers at a third), capped by the budget, each round."""
    s = 12.0
    for eff, copies in ((0.5, 2), (0.33, 3)):
        ms = flops / (eff * peak[threads] * 1e9) * 1e3
        s += copies * (WARMUP + bench_runs(runs, budget, ms)) * ms / 1e3
    return s * rounds


def measure_model(a, tools, timers, model, tmp, state, peak, cached, progress):
    """Measures the rows of one model that the state lacks."""
    batches = [int(b) for b in a.batches.split(",")]
    threads = [int(t) for t in a.threads.split(",")]
    todo = {b: [t for t in threads if not state.row(model, b, t)] for b in batches}
    if not any(todo.values()):
        return
    cnnc, cnnrun = tools
    work = os.path.join(tmp, model)
    os.makedirs(work, exist_ok=True)
    f = lambda name: os.path.join(work, name)
    try:
        out = run([sys.executable, "-c", REFERENCE % TOOLS, model, work,
                   ",".join(str(b) for b in batches)])
        if out.strip():
            say("%s: %s" % (model, out.strip()))
        exported = f("model.onnx") if os.path.exists(f("model.onnx")) else None
    except RuntimeError as e:
        say("%s: no PyTorch reference, so no peers and no output check: %s" % (model, e))
        exported = None
    have_ref = os.path.exists(f("weights.safetensors"))
    weights = ["--weights=" + f("weights.safetensors")] if have_ref else ["--random-weights=0"]
    for b in batches:
        if not todo[b]:
            continue
        so, onnx_so = f("model_b%d.so" % b), f("onnx_b%d.so" % b)
        # Compile times of README's command (weights from a seed), then of the model timed.
        src = [os.path.join(ROOT, "models", model + ".cnn"), "--batch=%d" % b]
        times = dict(zip(("cold", "cached"), compile_twice(
            cnnc, src + ["--random-weights=0", "-o", so], so, cached)))
        times.update(zip(("cold_w", "cached_w"), compile_twice(
            cnnc, src + weights + ["-o", so], so, cached)))
        state.put_compiled(model, b, times)
        x, ref = f("x_b%d.npy" % b), f("ref_b%d.npy" % b)
        err = check_cnnc(cnnrun, so, x, ref, f("y.npy")) if have_ref else None
        if err is not None and not err <= a.tol:
            say("%s b%d: cnnc's output differs from PyTorch's: max|d|/max|ref| = %g "
                "(tolerance %g); timed all the same, its row says so" % (model, b, err, a.tol))
        onnx_err = None
        if exported:
            r = subprocess.run([cnnc, exported, "--batch=%d" % b, "-o", onnx_so],
                               capture_output=True, text=True)
            if r.returncode != 0:
                say("%s: cnnc cannot compile the export: %s" % (
                    model, (r.stderr.strip().splitlines() or ["?"])[0]))
            else:
                onnx_err = check_cnnc(cnnrun, onnx_so, x, ref, f("y.npy"))
        flops = model_flops(cnnc, model, b)
        arena, total = memory_plan(cnnc, model, b)
        for t in todo[b]:
            t0 = time.perf_counter()
            n = bench_runs(a.runs, a.budget, flops / (0.5 * peak[t] * 1e9) * 1e3)
            row = {"model": model, "batch": b, "threads": t, "flops": flops, "arena": arena,
                   "total": total, "err": err, "tol": a.tol}
            refs = [x, ref] if have_ref else [None]
            if onnx_err is not None and not onnx_err <= a.tol:
                say("%s b%d: cnnc's model.so from the export differs from PyTorch: "
                    "max|d|/max|ref| = %g, not timed" % (model, b, onnx_err))
            engines = {
                "cnnc": lambda: time_cnnc(cnnrun, so, t, n),
                "torch": lambda: timers["torch"].time([model, f("state.pt")] + refs, t,
                                                      a.runs, a.budget, a.tol),
                "ort": lambda: timers["ort"].time([exported] + refs, t, a.runs, a.budget,
                                                  a.tol),
                "openvino": lambda: timers["openvino"].time([exported] + refs, t, a.runs,
                                                            a.budget, a.tol),
                "onnx": lambda: (None if onnx_err is None else WRONG
                                 if not onnx_err <= a.tol else time_cnnc(cnnrun, onnx_so, t, n)),
            }
            # Every engine once per round, in turn; each keeps its least median, so that
            # a burst of another tenant's work on a shared machine costs no engine more
            # than one round.
            for r in range(a.rounds):
                for k, timer in engines.items():
                    if r == 0 or isinstance(row[k], float):
                        v = timer()
                        row[k] = v if r == 0 or not isinstance(v, float) else min(row[k], v)
            state.put_row(row)
            say(row_text(row, peak) + progress(time.perf_counter() - t0, flops, t))
        for p in (so, onnx_so):
            if os.path.exists(p):
                os.remove(p)
    shutil.rmtree(work, ignore_errors=True)


def best_peer(r):
    """(name, ms) of the fastest peer that was timed and agreed with PyTorch, or None."""
    timed = [(r[k], n) for k, n in PEERS if isinstance(r.get(k), float)]
    return (min(timed)[1], min(timed)[0]) if timed else None


PEERS = [("torch", "PyTorch"), ("ort", "ORT"), ("openvino", "OpenVINO")]


def row_text(r, peak):
    best = best_peer(r)
    gflops = r["flops"] / r["cnnc"] / 1e6
    return ("%-18s b%-2d t%d  cnnc %8.2f ms  PyTorch %s  ORT %s  OpenVINO %s  "
            "best %s: %s  cnnc from ONNX %s  %.1f GFLOP/s (%.0f%% of peak)"
            % (r["model"], r["batch"], r["threads"], r["cnnc"], ms(r["torch"]), ms(r["ort"]),
               ms(r["openvino"]), best[0] if best else "—",
               "%.2fx" % (r["cnnc"] / best[1]) if best else "—", ms(r["onnx"]), gflops,
               100 * gflops / peak[r["threads"]]))


PROFILE_MODEL, PROFILE_BATCH, PROFILE_THREADS, PROFILE_TOP = "resnet50", 1, 2, 10
PROFILE_TITLE = "## Where the time goes"
COMPILE_TITLE = "## Compile time"
TARGETS_TITLE = "## Against the targets"
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
        "profiling on, in a run of their own, so they need not match the table above. "
        "GFLOP/s count the FLOPs of direct convolution."
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


def sections(path):
    """The "## " sections of the file at `path`: [(title line, text)], in order."""
    text = open(path).read() if os.path.exists(path) else ""
    starts = [m.start() for m in re.finditer(r"^## ", text, re.M)]
    return [(text[s:text.find("\n", s)], text[s:e].rstrip("\n") + "\n")
            for s, e in zip(starts, starts[1:] + [len(text)])]


def merge_section(path, section, title=PROFILE_TITLE):
    """Replaces the section headed `title` of the file at `path` in its place (or appends
    it)."""
    text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    start = text.find(title)
    if start >= 0:
        end = text.find("\n## ", start + len(title))
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(text)


def mib(b):
    return "—" if b is None else "%.2f" % (b / 2**20)


def ms(v):
    return v if isinstance(v, str) else "—" if v is None else "%.2f" % v


def secs(v):
    return "—" if v is None else "%.2f" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--models", default=",".join(zoo()))
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--budget", type=float, default=3.0,
                    help="seconds one measurement may take; fewer runs (5 at least) past it")
    ap.add_argument("--rounds", type=int, default=2,
                    help="times every engine is measured, in turn; each keeps its least median")
    ap.add_argument("--tol", type=float, default=1e-3,
                    help="max|d| / max|PyTorch| an engine's output may differ by")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--state", help="the JSON file of measured rows (default "
                    "BUILD/bench-state.json)")
    ap.add_argument("--fresh", action="store_true", help="measure every row again")
    ap.add_argument("--estimate", action="store_true",
                    help="only print how many rows are left to measure and how long they take")
    ap.add_argument("--profile-only", action="store_true",
                    help="only the 'where the time goes' section, merged into --out")
    ap.add_argument("--merge", action="store_true",
                    help="only --models, their rows merged into the tables of --out")
    venv = os.path.join(ROOT, ".venv-bench", "bin", "python")
    ap.add_argument("--peer-python", "--ort-python", dest="peer_python",
                    default=venv if os.path.exists(venv) else
                    os.path.join(ROOT, ".venv", "bin", "python"),
                    help="a Python with onnxruntime and openvino that sees torch "
                    "(make bench-deps makes .venv-bench)")
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
    batches = [int(b) for b in a.batches.split(",")]
    models = a.models.split(",")
    if a.profile_only:
        with tempfile.TemporaryDirectory() as tmp:
            peak = machine_peak(tmp, [PROFILE_THREADS])
            merge_section(a.out, profile_section(cnnc, cnnrun, tmp, a.runs, peak))
        return
    if a.gpu_only:
        # The section is merged after each model: a run stopped part way keeps its rows.
        with tempfile.TemporaryDirectory() as tmp:
            gpu_section(a, cnnc, cnnrun, tmp,
                        lambda rows, info: merge_section(a.out, gpu.section(rows, info),
                                                         GPU_TITLE))
        return
    cached = has_cache(cnnc)
    # Every compile of the run caches into a directory of its own, not the user's cache.
    cache_home = tempfile.mkdtemp(prefix="cnnc-bench-cache-")
    os.environ["XDG_CACHE_HOME"] = cache_home
    try:
        measure_all(a, cnnc, cnnrun, models, batches, threads, cached)
    finally:
        shutil.rmtree(cache_home, ignore_errors=True)


def measure_all(a, cnnc, cnnrun, models, batches, threads, cached):
    if not cached:
        say("cnnc has no compile cache (no --no-cache option): cached compile times say \"—\"")
    state = State(a.state or os.path.join(a.build, "bench-state.json"),
                  fingerprint([cnnc, cnnrun], {"runs": a.runs, "budget": a.budget, "rounds": a.rounds,
                                               "tol": a.tol}), a.fresh)
    with tempfile.TemporaryDirectory(prefix="cnnc-bench-") as tmp:
        # The peak of the run that measured the rows kept, so their fractions stay theirs.
        peak = {int(k): v for k, v in state.data.get("peak", {}).items()}
        if not all(t in peak for t in threads + [PROFILE_THREADS]):
            peak = machine_peak(tmp, threads + [PROFILE_THREADS])
            state.data["peak"] = peak
            state.save()
        timers = {"torch": Timer("PyTorch", sys.executable, "torch",
                                  TORCH_TIMER.replace("TOOLS", repr(TOOLS))),
                  "ort": Timer("ONNX Runtime", a.peer_python, "onnxruntime", ORT_TIMER),
                  "openvino": Timer("OpenVINO", a.peer_python, "openvino", OPENVINO_TIMER)}
        flops = {}
        for m in list(models):
            try:
                flops.update({(m, b): model_flops(cnnc, m, b) for b in batches})
            except RuntimeError as e:
                say("%s: skipped, cnnc cannot read it: %s" % (m, e))
                models.remove(m)
        left = {(m, b, t): estimate(flops[m, b], t, peak, a.runs, a.budget, a.rounds)
                for m in models for b in batches for t in threads if not state.row(m, b, t)}
        # A reference and an export per model, a cold and a cached compile per batch.
        extra = 15.0 * len({k[0] for k in left}) + 12.0 * len({k[:2] for k in left})
        total = sum(left.values()) + extra
        say("%d rows to measure (%d kept from %s), about %.0f min" % (
            len(left), len(models) * len(batches) * len(threads) - len(left), state.path,
            total / 60))
        if a.estimate:
            return
        done = {"est": 0.0, "start": time.perf_counter()}

        def progress(took, fl, t):
            """The row's seconds and the time left: the run's pace so far, compiles and
            references included, over the estimates of the rows left."""
            done["est"] += estimate(fl, t, peak, a.runs, a.budget, a.rounds)
            elapsed = time.perf_counter() - done["start"]
            rest = elapsed * max(0.0, sum(left.values()) / done["est"] - 1)
            return "  [%.0f s; about %.0f min left]" % (took, rest / 60)

        for m in models:
            try:
                measure_model(a, (cnnc, cnnrun), timers, m, tmp, state, peak, cached, progress)
            except RuntimeError as e:
                say("%s: skipped, it failed: %s" % (m, e))
        rows = [state.row(m, b, t) for m in models for b in batches for t in threads]
        rows = [r for r in rows if r]
        compiled = [(m, b, state.compiled(m, b)) for m in models for b in batches]
        compiled = [c for c in compiled if c[2]]
        versions = {k: t.version for k, t in timers.items()}
        if a.merge:
            merge_rows(a.out, rows, compiled, peak,
                       " ".join(["/usr/bin/python3", "bench/run.py"] + sys.argv[1:]))
            return
        new_gpu = gpu_section(a, cnnc, cnnrun, tmp) if a.gpu else None
        write_results(a.out, rows, compiled, peak, versions, cached, new_gpu, a.rounds)
        merge_section(a.out, profile_section(cnnc, cnnrun, tmp, a.runs, peak))


def gpu_section(a, cnnc, cnnrun, tmp, done=None):
    """The measured GPU section, or None (after saying why) when there is no GPU; done as
    gpu.measure's."""
    try:
        rows, info = gpu.measure(cnnc, cnnrun, tmp, a.gpu_models.split(","),
                                 [int(b) for b in a.gpu_batches.split(",")],
                                 a.gpu_math.split(","), a.gpu_runs, a.gpu_warmup, model_flops,
                                 lambda line: print(line, flush=True), done)
    except gpu.Skipped as e:
        out = os.path.relpath(a.out, ROOT) if a.out.startswith(ROOT + os.sep) else a.out
        print("GPU section skipped: no NVIDIA GPU/driver (%s); %s keeps its GPU section as "
              "it was" % (e, out), flush=True)
        return None
    return gpu.section(rows, info)


def write_results(path, rows, compiled, peak, versions, cached, new_gpu, rounds=1):
    """RESULTS.md anew: the CPU table, compile times and targets, then the GPU section and
    every other section of the old file as they were (the profile, merged after, in its
    place)."""
    import torch
    mine = (COMPILE_TITLE, TARGETS_TITLE) + ((GPU_TITLE,) if new_gpu else ())
    kept = [s for t, s in sections(path) if not t.startswith(mine)]
    if not any(s.startswith(GPU_TITLE) for s in kept):
        kept.insert(0, new_gpu or GPU_SECTION)
    if not any(s.startswith(PROFILE_TITLE) for s in kept):
        kept.insert(0, PROFILE_TITLE + "\n")  # its place; merge_section fills it in
    cpu = run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]).strip()
    peers = ["PyTorch %s (frozen TorchScript, optimize_for_inference)" % torch.__version__]
    peers.append("ONNX Runtime %s (CPUExecutionProvider, ORT_ENABLE_ALL, intra_op_num_threads "
                 "= threads, batch fixed)" % versions["ort"] if versions["ort"] else
                 "no ONNX Runtime")
    peers.append("OpenVINO %s (CPU plugin, INFERENCE_NUM_THREADS = threads, PERFORMANCE_HINT "
                 "LATENCY, INFERENCE_PRECISION_HINT f32, reshaped to the batch)"
                 % versions["openvino"].split("-")[0] if versions["openvino"] else "no OpenVINO")
    with open(path, "w") as f:
        f.write("# Benchmark results\n\n")
        f.write(
            "Written by `/usr/bin/python3 bench/run.py` on %s (%s), every row in the same run. "
            "Peers: %s; ORT and OpenVINO run the torch.onnx export (opset 17) of the same "
            "torchvision module. Every engine's output was checked against PyTorch's eager "
            "output on the same images before it was timed (\"wrong\": it differed by more "
            "than %g of max|PyTorch|, so it was not timed; \"—\": not measured); cnnc err = "
            "cnnc's max|d| / max|PyTorch|. "
            "Latency is the median of the timed runs after 3 warm-up runs, the least of %d "
            "rounds in which every engine was measured in turn. Best peer = the "
            "least latency of PyTorch, ORT and OpenVINO; vs best = cnnc / best peer, vs "
            "PyTorch = cnnc / PyTorch (below 1: cnnc is faster). cnnc from ONNX = cnnc's "
            "model.so compiled from the export. GFLOP/s and the fraction of the FMA peak count "
            "the FLOPs of direct convolution (and dense layers), so a convolution computed "
            "another way (Winograd) can show above 100%%. Peak = measured FMA throughput of "
            "this machine (bench/peak.c): %s.\n\n"
            % (time.strftime("%Y-%m-%d"), cpu, ", ".join(peers),
               max([r["tol"] for r in rows] or [0]), rounds, ", ".join(
                "%d thread(s) %.0f GFLOP/s" % kv for kv in sorted(peak.items()))))
        f.write(table_header())
        for r in rows:
            f.write(table_row(r, peak) + "\n")
        f.write("\n" + compile_section(compiled, cached))
        f.write("\n" + targets_section(rows, compiled))
        for s in kept:
            f.write("\n" + s)


COLUMNS = ["model", "batch", "threads", "cnnc ms", "PyTorch ms", "ORT ms", "OpenVINO ms",
           "best peer", "vs best", "vs PyTorch", "GFLOP/s", "of FMA peak", "cnnc err",
           "cnnc from ONNX ms", "arena MiB", "all tensors MiB"]


def table_header(columns=COLUMNS):
    return "| %s |\n|%s\n" % (" | ".join(columns), "---|" * len(columns))


def table_row(r, peak):
    best = best_peer(r)
    gflops = r["flops"] / r["cnnc"] / 1e6
    return "| %s |" % " | ".join([
        r["model"], str(r["batch"]), str(r["threads"]), ms(r["cnnc"]), ms(r["torch"]),
        ms(r["ort"]), ms(r["openvino"]), best[0] if best else "—",
        "%.2f" % (r["cnnc"] / best[1]) if best else "—",
        "%.2f" % (r["cnnc"] / r["torch"]) if isinstance(r["torch"], float) else "—",
        "%.1f" % gflops, "%.0f%%" % (100 * gflops / peak[r["threads"]]),
        "—" if r["err"] is None else "%.1e%s" % (r["err"], "" if r["err"] <= r["tol"] else
                                                 " (" + WRONG + ")"),
        ms(r["onnx"]), mib(r["arena"]),
        mib(r["total"])])


COMPILE_COLUMNS = ["model", "batch", "cold s", "cached s", "weights file: cold s", "cached s"]


def compile_section(compiled, cached):
    lines = [COMPILE_TITLE, "",
             "Wall time of `cnnc models/MODEL.cnn --random-weights=0 --batch=N -o MODEL.so`: "
             "cold with an empty `$XDG_CACHE_HOME`, cached the same command again%s; then the "
             "same for the model timed above, its weights read from a .safetensors file "
             "(`--weights=FILE` in place of `--random-weights=0`), which the cache's key "
             "hashes whole. Each time is the median of %d such compiles, each with a cache "
             "folder of its own and no model.so yet." % (
                 "" if cached else " (\"—\": this cnnc has no compile cache)", COMPILE_REPEATS),
             "", table_header(COMPILE_COLUMNS).rstrip("\n")]
    for m, b, c in compiled:
        lines.append(compile_row(m, b, c))
    return "\n".join(lines) + "\n"


def compile_row(m, b, c):
    return "| %s | %d | %s |" % (m, b, " | ".join(secs(c.get(k)) for k in (
        "cold", "cached", "cold_w", "cached_w")))


def targets_section(rows, compiled):
    """Each model's worst ratio to the best peer at 2 threads, and the compile times,
    against the targets."""
    lines = [TARGETS_TITLE, "",
             "At 2 threads, batch 1 and 8: cnnc's latency at most 0.8 of the best peer's for "
             "%s, at most 1.0 for every other model; compile time (weights from a seed, batch 1) "
             "at most %s cold, and %.1f s cached for every model." % (", ".join(sorted(TARGETS)), " and ".join(
                 "%.0f s for %s" % (v, k) for k, v in sorted(COMPILE_TARGETS.items(),
                                                            key=lambda kv: kv[1])),
                 CACHED_TARGET), "",
             "| model | worst vs best (2 threads) | target | met | cold s (batch 1) | cached s |",
             "|---|---|---|---|---|---|"]
    for m in dict.fromkeys(r["model"] for r in rows):
        ratios = [r["cnnc"] / best_peer(r)[1] for r in rows
                  if r["model"] == m and r["threads"] == 2 and best_peer(r)]
        target = TARGETS.get(m, 1.0)
        c = next((c for mm, b, c in compiled if mm == m and b == 1), None)
        cold = c["cold"] if c else None
        cached = c["cached"] if c else None
        ok = [bool(ratios) and max(ratios) <= target]
        ok += [r["err"] is None or r["err"] <= r["tol"] for r in rows if r["model"] == m]
        if cold is not None and m in COMPILE_TARGETS:
            ok.append(cold <= COMPILE_TARGETS[m])
        if cached is not None:
            ok.append(cached <= CACHED_TARGET)
        lines.append("| %s | %s | %.1f | %s | %s%s | %s |" % (
            m, "%.2f" % max(ratios) if ratios else "—", target,
            "yes" if all(ok) else "no", secs(cold),
            " (<= %.0f)" % COMPILE_TARGETS[m] if m in COMPILE_TARGETS else "", secs(cached)))
    return "\n".join(lines) + "\n"


# Columns of older tables under their present names.
RENAMED = {"ratio": "vs PyTorch", "of peak": "of FMA peak"}


def upgrade_row(line, columns):
    """A row of a table with `columns` as a row of COLUMNS, "—" where it has none."""
    cells = dict(zip([RENAMED.get(c, c) for c in columns],
                     [c.strip() for c in line.strip().strip("|").split("|")]))
    return "| %s |" % " | ".join(cells.get(c, "—") for c in COLUMNS)


MERGED_NOTE = "Rows measured later by --merge:"


def replace_rows(lines, header, new, key):
    """Puts the rows `new` into the table headed `header` in place of those with the same
    `key` (the first cells), new ones last; returns the index after the table."""
    first = next(i for i, l in enumerate(lines) if l.startswith(header)) + 2
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("| ")),
               len(lines))
    keys = {key(l) for l in new}
    kept = [l for l in lines[first:end] if key(l) not in keys]
    lines[first:end] = kept + new
    return first + len(kept) + len(new)


def merge_rows(path, rows, compiled, peak, command):
    """Puts `rows` into the CPU table of the file at `path` in place of the rows of the
    same models (new models after the others), and their compile times into the compile
    table, and notes when and how they were measured below the table."""
    lines = open(path).read().split("\n")
    head = next(i for i, l in enumerate(lines) if l.startswith("| model | batch | threads"))
    columns = [c.strip() for c in lines[head].strip().strip("|").split("|")]
    models = {r["model"] for r in rows}
    model_of = lambda l: l.split(" | ")[0][2:]
    if columns != COLUMNS:
        # A table from before a column was added: its rows get "—" there.
        end = next((i for i in range(head + 2, len(lines)) if not lines[i].startswith("| ")),
                   len(lines))
        lines[head + 2:end] = [upgrade_row(l, columns) for l in lines[head + 2:end]]
        lines[head:head + 2] = table_header().rstrip("\n").split("\n")
    end = head + 2
    while end < len(lines) and lines[end].startswith("| "):
        end += 1
    kept = [l for l in lines[head + 2:end] if model_of(l) not in models]
    lines[head + 2:end] = kept + [table_row(r, peak) for r in rows]
    end = head + 2 + len(kept) + len(rows)
    what = "%s %s on " % (MERGED_NOTE, ", ".join(sorted(models)))
    notes, rest = [], end
    while rest < len(lines) and (not lines[rest] or lines[rest].startswith(MERGED_NOTE)):
        if lines[rest] and not lines[rest].startswith(what):
            notes.append(lines[rest])
        rest += 1
    notes.append("%s%s, by `%s`." % (what, time.strftime("%Y-%m-%d"), command))
    lines = lines[:end] + [""] + notes + [""] + lines[rest:]
    compile_head = "| " + " | ".join(COMPILE_COLUMNS) + " |"
    if compiled and compile_head in lines:
        replace_rows(lines, compile_head, [compile_row(*c) for c in compiled],
                     lambda l: tuple(l.split(" | ")[:2]))
    with open(path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
