"""The GPU section of bench/RESULTS.md (bench/run.py --gpu, --gpu-only): every zoo model at
each batch size and math mode (--gpu-math of cnnc; PyTorch's TF32 switches to match),
cnnc's CUDA model.so timed by `cnnrun --bench` against PyTorch with cuDNN in the same run.

Both sides take host memory in and give host memory out: cnnrun copies the input to the
device, launches the network (one CUDA graph), copies the output back and synchronizes;
PyTorch runs `net(x.cuda()).cpu()` on a pageable host tensor. Each side's time for the network
alone, on an input already on the device, is reported beside it: cnnc's from
`cnnrun --device-buffers --bench` (one graph launch and a synchronize per run), PyTorch's
from CUDA events. Every cnnc build's first
batch item is checked against the interpreter's committed output (tests/ref/MODEL_b1.npy:
the same weights, --random-weights=0, and the same seeded input) before its time counts."""

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TITLE = "## GPU (CUDA backend)"
TOLERANCE = {"f32": 1e-4, "tf32": 5e-3}

# Dense peaks in TFLOP/s, (FP32 on CUDA cores, TF32 on tensor cores), from NVIDIA's data
# sheets (TF32 without sparsity); the first pattern that matches the device's name wins.
PEAKS = [
    (r"H100.*NVL", 60.0, 418.0),
    (r"H100.*PCIe", 51.0, 378.0),
    (r"H100", 67.0, 495.0),
    (r"H200.*NVL", 60.0, 418.0),
    (r"H200", 67.0, 495.0),
    (r"A100", 19.5, 156.0),
    (r"L40S", 91.6, 183.0),
    (r"\bL4\b", 30.3, 60.0),
]


def peak_tflops(device, math):
    for pattern, f32, tf32 in PEAKS:
        if re.search(pattern, device):
            return tf32 if math == "tf32" else f32
    return None


def zoo():
    """Every model of models/, the CPU table's order first."""
    names = ["resnet18", "resnet50", "mobilenet_v2", "vgg16", "squeezenet1_1", "mnist_cnn", "mlp"]
    found = sorted(f[:-4] for f in os.listdir(os.path.join(ROOT, "models")) if f.endswith(".cnn"))
    return [n for n in names if n in found] + [n for n in found if n not in names]


def smi(*args):
    r = subprocess.run(["nvidia-smi"] + list(args), capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def probe():
    """(device name, sm_XY, driver version) of CUDA device 0, or raises Skipped."""
    if not shutil.which("nvidia-smi"):
        raise Skipped("nvidia-smi not found")
    listed = smi("-L")
    if not re.search(r"^GPU \d", listed, re.M):
        raise Skipped("nvidia-smi -L lists no GPU")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "gpu_api.py"), "probe"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Skipped(r.stdout.strip() or r.stderr.strip())
    arch, _, name = r.stdout.strip().partition(" ")
    name = smi("--query-gpu=name", "--format=csv,noheader", "-i", "0") or name
    return name, arch, smi("--query-gpu=driver_version", "--format=csv,noheader", "-i", "0")


class Skipped(Exception):
    pass


def input_shape(model):
    """The per-item shape of the model's (single) input, from its .cnn source."""
    src = open(os.path.join(ROOT, "models", model + ".cnn")).read()
    m = re.search(r"f32\[N=\d+\s*,([\d,\s]+)\]", src)
    return [int(d) for d in m.group(1).split(",")]


TORCH_TIMER = r"""
import json, sys, time
import torch
sys.path.insert(0, %r)
import torchvision_names
model, shape = sys.argv[1], [int(d) for d in sys.argv[2].split(",")]
batches, maths = [int(b) for b in sys.argv[3].split(",")], sys.argv[4].split(",")
runs, warmup = int(sys.argv[5]), int(sys.argv[6])
if not torch.cuda.is_available():
    print(json.dumps({"error": "PyTorch %%s has no CUDA here (torch.cuda.is_available() is "
                      "False)" %% torch.__version__}))
    sys.exit(0)
torch.backends.cudnn.benchmark = True
net = torchvision_names.build(model).eval().cuda()
for math in maths:
    torch.backends.cuda.matmul.allow_tf32 = math == "tf32"
    torch.backends.cudnn.allow_tf32 = math == "tf32"
    for batch in batches:
        x = torch.rand(batch, *shape) * 2 - 1
        xd = x.cuda()
        host, dev = [], []
        with torch.no_grad():
            for _ in range(warmup):
                net(x.cuda()).cpu()
            torch.cuda.synchronize()
            for _ in range(runs):
                t0 = time.perf_counter()
                net(x.cuda()).cpu()
                host.append((time.perf_counter() - t0) * 1e3)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            for _ in range(runs):
                start.record()
                net(xd)
                end.record()
                end.synchronize()
                dev.append(start.elapsed_time(end))
        host.sort()
        dev.sort()
        print(json.dumps({"batch": batch, "math": math, "host_ms": host[len(host) // 2],
                          "device_ms": dev[len(dev) // 2]}), flush=True)
print(json.dumps({"versions": "PyTorch %%s, cuDNN %%s" %% (torch.__version__,
                                                        torch.backends.cudnn.version())}))
"""


def time_torch(model, batches, maths, runs, warmup):
    """{(batch, math): (host ms, device ms)} and a note (versions, or why there are none)."""
    r = subprocess.run([sys.executable, "-c", TORCH_TIMER % os.path.join(ROOT, "tools"), model,
                        ",".join(str(d) for d in input_shape(model)),
                        ",".join(str(b) for b in batches), ",".join(maths), str(runs),
                        str(warmup)], capture_output=True, text=True)
    times, note = {}, None
    for line in r.stdout.splitlines():
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        if "batch" in d:
            times[(d["batch"], d["math"])] = (d["host_ms"], d["device_ms"])
        note = d.get("error") or d.get("versions") or note
    if r.returncode != 0:
        note = "PyTorch failed on %s: %s" % (model, (r.stderr.strip().splitlines() or ["?"])[-1])
    return times, note


def build(cnnc, model, batch, math, arch, so):
    """Compiles one CUDA model.so; (seconds, None) or (None, the error)."""
    t0 = time.perf_counter()
    r = subprocess.run([cnnc, os.path.join(ROOT, "models", model + ".cnn"), "--random-weights=0",
                        "--batch=%d" % batch, "--target=cuda", "--gpu-arch=" + arch,
                        "--gpu-math=" + math, "-o", so], capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["cnnc failed"])[-1]
    return time.perf_counter() - t0, None


def time_cnnc(cnnrun, so, runs, warmup, out, device_buffers=False):
    """cnnrun's median latency in ms (its output of the last run written to `out`), or the
    error; with device_buffers, of runs on inputs and outputs in device memory."""
    r = subprocess.run([cnnrun, so, "--bench=%d" % runs, "--warmup=%d" % warmup,
                        "--output=" + out] + (["--device-buffers"] if device_buffers else []),
                       capture_output=True, text=True)
    m = re.search(r"median ([\d.]+) ms", r.stdout)
    if r.returncode != 0 or not m:
        return None, (r.stderr.strip().splitlines() or ["unexpected cnnrun output"])[-1]
    return float(m.group(1)), None


def ref_error(model, out, math):
    """max|diff| / max|ref| of the output's first batch item against tests/ref, or None
    when there is no reference."""
    import numpy as np
    ref = os.path.join(ROOT, "tests", "ref", model + "_b1.npy")
    if not os.path.exists(ref) or not os.path.exists(out):
        return None
    want = np.load(ref).astype(np.float64)[:1]
    got = np.load(out).astype(np.float64)[:1]
    if got.shape != want.shape or np.isnan(got).any():
        return float("inf")
    mag = np.abs(want).max()
    return float(np.abs(got - want).max() / (mag if mag > 0 else 1.0))


def build_all(cnnc, configs, arch, tmp, log):
    """Every CUDA model.so of `configs`, several at a time: {config: (so, seconds, error)}."""
    jobs = max(1, (os.cpu_count() or 2) // 2)
    log("building %d CUDA model.so, %d at a time" % (len(configs), jobs))
    built = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        futures = {}
        for c in configs:
            so = os.path.join(tmp, "gpu_%s_b%d_%s.so" % c)
            futures[ex.submit(build, cnnc, c[0], c[1], c[2], arch, so)] = (c, so)
        for f in concurrent.futures.as_completed(futures):
            c, so = futures[f]
            secs, err = f.result()
            built[c] = (so, secs, err)
            if err:
                log("%-14s b%-2d %-4s  cnnc failed: %s" % (c + (err,)))
    return built, jobs


def measure(cnnc, cnnrun, tmp, models, batches, maths, runs, warmup, model_flops, log,
            done=None):
    """The rows of the GPU table and the notes for its text; raises Skipped without a GPU.
    done(rows, info), when given, is called after each model with the rows so far, so that
    a run stopped part way keeps what it measured."""
    device, arch, driver = probe()
    log("GPU: %s (%s, driver %s)" % (device, arch, driver))
    configs = [(m, b, x) for m in models for b in batches for x in maths]
    built, jobs = build_all(cnnc, configs, arch, tmp, log)
    rows, notes = [], set()
    for model in models:
        mine = {}
        for c in [c for c in configs if c[0] == model]:
            so, secs, err = built[c]
            out = so[:-3] + ".npy"
            ms, err = time_cnnc(cnnrun, so, runs, warmup, out) if not err else (None, err)
            dev_ms = None
            if ms:
                dev_ms, _ = time_cnnc(cnnrun, so, runs, warmup, so[:-3] + "_dev.npy", True)
            mine[c] = (ms, err, secs, ref_error(model, out, c[2]) if ms else None, dev_ms)
        theirs, note = time_torch(model, batches, maths, runs, warmup)
        notes.add(note)
        flops = {b: model_flops(cnnc, model, b) for b in batches}
        for c in [c for c in configs if c[0] == model]:
            row = (c, mine[c], theirs.get((c[1], c[2])), flops[c[1]], peak_tflops(device, c[2]))
            rows.append(row)
            log(row_text(row))
        info = {"device": device, "arch": arch, "driver": driver, "jobs": jobs,
                "torch": "; ".join(sorted(n for n in notes if n)), "runs": runs,
                "warmup": warmup}
        if done:
            done(rows, info)
    return rows, info


def row_text(row):
    (model, batch, math), (ms, err, _, ref, dev_ms), torch_ms, _, _ = row
    if ms is None:
        return "%-14s b%-2d %-4s  cnnc failed: %s" % (model, batch, math, err)
    t = "%.3f ms" % torch_ms[0] if torch_ms else "n/a"
    d = "%.3f ms" % dev_ms if dev_ms else "n/a"
    return "%-14s b%-2d %-4s  cnnc %8.3f ms (on device %s)  torch %s  err vs ref %s" % (
        model, batch, math, ms, d, t, "—" if ref is None else "%.2g" % ref)


def table_row(row):
    (model, batch, math), (ms, err, secs, ref, dev_ms), torch_ms, flops, peak = row
    compile_s = "%.1f" % secs if secs else "—"
    if ms is None:
        return "| %s | %d | %s | failed: %s | | | | | | | | | | %s |" % (
            model, batch, math, err.replace("|", "/"), compile_s)
    tflops = flops / (ms * 1e-3) / 1e12
    of_peak = "%.1f%%" % (100 * tflops / peak) if peak else "n/a"
    if ref is None:
        check = "—"
    elif ref <= TOLERANCE[math]:
        check = "%.1e" % ref
    else:
        check = "**%.1e, over %.0e**" % (ref, TOLERANCE[math])
    mine_dev = "%.3f" % dev_ms if dev_ms else "n/a"
    if torch_ms:
        theirs = "%.3f | %.0f | %.2f | %s | %.3f" % (torch_ms[0], batch * 1e3 / torch_ms[0],
                                                    ms / torch_ms[0], mine_dev, torch_ms[1])
    else:
        theirs = "n/a | n/a | n/a | %s | n/a" % mine_dev
    return "| %s | %d | %s | %.3f | %.0f | %s | %s | %s | %s | %s |" % (
        model, batch, math, ms, batch * 1e3 / ms, theirs,
        "%.1f" % tflops if tflops >= 1 else "%.3f" % tflops, of_peak, check, compile_s)


def command():
    """This run's command line, as it was typed (relative to the repository)."""
    return " ".join(["python3", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])


def section(rows, info):
    """The GPU section of RESULTS.md, as markdown."""
    peaks = [p for p in PEAKS if re.search(p[0], info["device"])][:1]
    peak_text = ("%.0f TFLOP/s TF32, %.0f FP32" % (peaks[0][2], peaks[0][1]) if peaks else
                 "n/a: the device is not in bench/gpu.py's table of peaks")
    lines = [
        TITLE + "\n",
        "Written by `%s` on %s: %s (%s, driver %s); %s. "
        "cnnc: `cnnrun --bench=%d --warmup=%d` (host buffers: input copy, one CUDA graph, "
        "output copy, synchronize). PyTorch: eval, no_grad, cudnn.benchmark, TF32 switches "
        "as the math column, %d warm-up then %d timed `net(x.cuda()).cpu()` from pageable "
        "host memory, the same work; \"on device\" is the network alone on a device-resident "
        "input: cnnc's `cnnrun --device-buffers` (one graph launch and a synchronize per run, "
        "host clock), PyTorch's `net(xd)` between CUDA events. Latencies are medians; img/s = batch / median. Ratio = cnnc ms "
        "/ PyTorch ms (below 1: cnnc is faster). TFLOP/s counts conv2d and dense (2 per "
        "multiply-add) over cnnc's median; of peak is against the device's dense peak for "
        "the math (%s). Check: max|diff|/max|ref| of batch item 0 against tests/ref "
        "(tolerance 1e-4 f32, 5e-3 tf32). Compile s: `cnnc --target=cuda`, built %d at a "
        "time.\n" % (command(), time.strftime("%Y-%m-%d"), info["device"], info["arch"],
                     info["driver"], info["torch"] or "PyTorch not measured", info["runs"],
                     info["warmup"], info["warmup"], info["runs"], peak_text, info["jobs"]),
        "| model | batch | math | cnnc ms | cnnc img/s | PyTorch ms | PyTorch img/s | ratio "
        "| cnnc on device ms | PyTorch on device ms | TFLOP/s | of peak | check "
        "| compile s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join(lines + [table_row(r) for r in rows]) + "\n"
