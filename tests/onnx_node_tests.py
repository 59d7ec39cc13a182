#!/usr/bin/env python3
"""Runs the onnx package's backend node tests (onnx/backend/test/data/node/*: a one-node
model.onnx, inputs and expected outputs as TensorProto files) through cnnc. A test is
selected when every node of its model is in the default domain and its op type is one
`cnnc --onnx-ops` lists. Each selected test runs in the interpreter
(`cnnc run model.onnx --input=NAME=X.npy ... -o out.npy`), and is compiled to a model.so
and run by cnnrun (every test, or every --compile-every'th), and its outputs are compared
with the expected ones at the tolerances of onnx's own test runner (rtol 1e-3, atol 1e-7,
NaN where NaN is expected).

A test that does not pass must be listed in tests/onnx_node_expected.txt, one line each:
    NAME  rejected|mismatch  reason
`rejected`: cnnc refuses the model with status 1 and a message (an integer dtype, a
dynamic shape, an attribute it does not support); `mismatch`: it runs but the numbers,
shapes or outputs differ. The run fails if a test fails and is not listed, fails in
another way than listed, crashes (a signal, a status other than 0 and 1, a timeout;
never acceptable), if a listed test passes, or if a listed test is no longer selected,
so the list stays true. --suggest prints list lines for the unlisted failures.

Usage: onnx_node_tests.py [--build=DIR] [--jobs=N] [--compile-every=K] [--suggest]
                          [--expected=FILE] [-k SUBSTRING]...   (exit 0 pass, 1 fail, 77 no onnx package)"""

import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError as e:
    print("onnx_node_tests.py: skipped, needs numpy and onnx (%s); run it with the Python "
          "of `make test-venv`, .venv/bin/python" % e, file=sys.stderr)
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = os.path.join(ROOT, "tests", "onnx_node_expected.txt")
NODE_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
# onnx.backend.test.loader's defaults, which every node test uses.
RTOL, ATOL = 1e-3, 1e-7
TIMEOUT = 120
KINDS = ("rejected", "mismatch")


def supported_ops(cnnc):
    r = subprocess.run([cnnc, "--onnx-ops"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        sys.exit("onnx_node_tests.py: `%s --onnx-ops` failed (%d): %s"
                 % (cnnc, r.returncode, r.stderr.strip()))
    return {l.strip() for l in r.stdout.splitlines() if l.strip()}


def select(ops, patterns):
    """The node tests whose every node is a supported op of the default domain."""
    chosen = []
    for name in sorted(os.listdir(NODE_DIR)):
        path = os.path.join(NODE_DIR, name, "model.onnx")
        if not os.path.exists(path) or (patterns and not any(p in name for p in patterns)):
            continue
        g = onnx.load(path, load_external_data=False).graph
        if g.node and all(n.domain in ("", "ai.onnx") and n.op_type in ops for n in g.node):
            chosen.append(name)
    return chosen


def read_expected(path):
    """NAME -> (kind, reason) from the list of known failures."""
    listed = {}
    for number, line in enumerate(open(path), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or parts[1] not in KINDS:
            sys.exit("%s:%d: expected 'NAME rejected|mismatch reason'" % (path, number))
        listed[parts[0]] = (parts[1], parts[2])
    return listed


def load_case(name):
    """Graph input names (initializers excluded), their arrays, output names and arrays;
    None for the arrays of a test whose inputs or outputs are not all tensors (sequences,
    optionals), which cnnc must then reject."""
    d = os.path.join(NODE_DIR, name)
    g = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False).graph
    inits = {t.name for t in g.initializer}
    ins = [v for v in g.input if v.name not in inits]
    data = os.path.join(d, "test_data_set_0")
    # A test may feed fewer inputs than the graph declares (optional ones left out).
    ins = ins[:len([f for f in os.listdir(data) if f.startswith("input_")])]
    names = [v.name for v in ins], [v.name for v in g.output]
    if not all(v.type.HasField("tensor_type") for v in ins + list(g.output)):
        return names[0], None, names[1], None

    def tensors(prefix, count):
        out = []
        for i in range(count):
            t = onnx.TensorProto()
            with open(os.path.join(data, "%s_%d.pb" % (prefix, i)), "rb") as f:
                t.ParseFromString(f.read())
            out.append(numpy_helper.to_array(t))
        return out
    return names[0], tensors("input", len(ins)), names[1], tensors("output", len(g.output))


# What AddressSanitizer, LeakSanitizer and UBSan print (make test-asan runs this too):
# a crash whatever the status, since ASan exits with 1 like a refusal.
SANITIZER = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def run(cmd):
    """(status, output); status is -signal for a crash, None for a timeout and -1000 for
    a sanitizer's report."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace", timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % TIMEOUT
    if any(s in r.stdout for s in SANITIZER):
        return -1000, r.stdout.strip()
    return r.returncode, r.stdout.strip()


def compare(names, expected, out):
    """None when every output agrees, else what differs first."""
    if expected is None:
        return "outputs that are not tensors cannot be compared"
    for i, (name, want) in enumerate(zip(names, expected)):
        path = out if len(names) == 1 else out[:-4] + ".%s.npy" % name
        if not os.path.exists(path):
            return "no output file %s" % os.path.basename(path)
        got = np.load(path)
        if got.shape != want.shape:
            return "output %s: shape %s, expected %s" % (name, got.shape, want.shape)
        if not np.issubdtype(want.dtype, np.floating):
            if not np.array_equal(got, want.astype(got.dtype)):
                return "output %s (%s): values differ" % (name, want.dtype)
            continue
        w = want.astype(np.float64)
        g = got.astype(np.float64)
        bad = ~np.isclose(g, w, rtol=RTOL, atol=ATOL, equal_nan=True)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            return ("output %s: %d of %d values differ, first at %d: %.9g, expected %.9g"
                    % (name, int(bad.sum()), bad.size, k, g.flat[k], w.flat[k]))
    return None


def outcome(stage, status, text):
    """('rejected'|'crash', message) for a failed command."""
    text = text.replace(NODE_DIR + os.sep, "")
    if status == 1 and text:
        return "rejected", "%s: %s" % (stage, text.splitlines()[0])
    what = ("timed out" if status is None else "a sanitizer's report" if status == -1000
            else "killed by signal %d" % -status if status < 0 else "exit status %d" % status)
    return "crash", "%s: %s: %s" % (stage, what, text[-2000:])


def check(name, build, compiled):
    """(kind, message, seconds): kind 'pass', 'rejected', 'mismatch' or 'crash'."""
    t0 = time.monotonic()
    cnnc, cnnrun = (os.path.join(build, "tools", t) for t in ("cnnc", "cnnrun"))
    model = os.path.join(NODE_DIR, name, "model.onnx")
    in_names, inputs, out_names, outputs = load_case(name)
    with tempfile.TemporaryDirectory(prefix="cnnc-onnx-node-") as tmp:
        files = []
        for i, (n, x) in enumerate(zip(in_names, inputs or [])):
            files.append((n, os.path.join(tmp, "x%d.npy" % i)))
            np.save(files[-1][1], x)
        out = os.path.join(tmp, "run.npy")
        status, text = run([cnnc, "run", model] + ["--input=%s=%s" % f for f in files]
                           + ["-o", out])
        if status != 0:
            return outcome("cnnc run", status, text) + (time.monotonic() - t0,)
        diff = compare(out_names, outputs, out)
        if diff:
            return "mismatch", "cnnc run: " + diff, time.monotonic() - t0
        if not compiled:
            return "pass", "", time.monotonic() - t0
        so = os.path.join(tmp, "m.so")
        status, text = run([cnnc, model, "-o", so])
        if status != 0:
            return outcome("cnnc -o", status, text) + (time.monotonic() - t0,)
        out = os.path.join(tmp, "so.npy")
        status, text = run([cnnrun, so, "--threads", "1", "--output", out]
                           + ["%s=%s" % f for f in files])
        if status != 0:
            return outcome("cnnrun", status, text) + (time.monotonic() - t0,)
        diff = compare(out_names, outputs, out)
        if diff:
            return "mismatch", "model.so: " + diff, time.monotonic() - t0
    return "pass", "", time.monotonic() - t0


def judge(results, listed, selected, expected):
    """Prints every problem; the number of failures."""
    failures = 0
    for name in selected:
        kind, msg, _ = results[name]
        want = listed.get(name)
        if kind == "crash":
            print("FAIL %s: crashed: %s" % (name, msg))
        elif kind == "pass" and want:
            print("FAIL %s: passes but is listed as %s (%s): remove it from %s"
                  % (name, want[0], want[1], os.path.basename(expected)))
        elif kind != "pass" and not want:
            print("FAIL %s: %s, not listed: %s" % (name, kind, msg))
        elif kind != "pass" and want[0] != kind:
            print("FAIL %s: %s, listed as %s (%s): %s" % (name, kind, want[0], want[1], msg))
        else:
            continue
        failures += 1
    for name in sorted(set(listed) - set(selected)):
        print("FAIL %s: listed but not selected (no such test, or an op cnnc lacks): "
              "remove it from %s" % (name, os.path.basename(expected)))
        failures += 1
    return failures


def main(argv):
    build, jobs, every, suggest, patterns = os.path.join(ROOT, "build"), 2, 1, False, []
    expected = EXPECTED
    args = iter(argv[1:])
    for a in args:
        if a.startswith("--build="):
            build = a[len("--build="):]
        elif a.startswith("--expected="):
            expected = a[len("--expected="):]
        elif a.startswith("--jobs="):
            jobs = int(a[len("--jobs="):])
        elif a.startswith("--compile-every="):
            every = int(a[len("--compile-every="):])
        elif a == "--suggest":
            suggest = True
        elif a == "-k":
            patterns.append(next(args))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    t0 = time.monotonic()
    selected = select(supported_ops(os.path.join(build, "tools", "cnnc")), patterns)
    listed = read_expected(expected)
    if patterns:
        listed = {k: v for k, v in listed.items() if any(p in k for p in patterns)}
    print("onnx %s, %d node tests selected of %d in %.1f s"
          % (onnx.__version__, len(selected), len(os.listdir(NODE_DIR)), time.monotonic() - t0))
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        futures = {pool.submit(check, n, build, every > 0 and i % every == 0): n
                   for i, n in enumerate(selected)}
        for f in concurrent.futures.as_completed(futures):
            results[futures[f]] = f.result()
    failures = judge(results, listed, selected, expected)
    counts = {k: sum(1 for r in results.values() if r[0] == k)
              for k in ("pass", "rejected", "mismatch", "crash")}
    listed_fails = sum(1 for n, r in results.items() if r[0] in KINDS and listed.get(n, ("",))[0]
                       == r[0])
    slowest = sorted(results.items(), key=lambda kv: -kv[1][2])[:3]
    print("selected %d, passed %d, rejected %d, mismatched %d, crashed %d; %d listed in %s; "
          "%d failure(s); %.1f s (slowest: %s)"
          % (len(selected), counts["pass"], counts["rejected"], counts["mismatch"],
             counts["crash"], listed_fails, os.path.basename(expected), failures,
             time.monotonic() - t0, ", ".join("%s %.1f s" % (n, r[2]) for n, r in slowest)))
    if suggest:
        for name in selected:
            kind, msg, _ = results[name]
            if kind in KINDS and name not in listed:
                print("%s %s %s" % (name, kind, msg.replace("\n", " ")))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
