"""Model: one instance of a compiled model.so, run on numpy arrays."""

import collections
import ctypes
import os
import shutil
import threading
import time
import weakref

import numpy as np

from . import _lib
from ._errors import (STATUS_ERRORS, ClosedError, CnncError, ContiguityError, DtypeError,
                      InputError, ShapeError, Status)


class TensorInfo(collections.namedtuple("TensorInfo", "name shape dtype")):
    """An input or output of a model: its name, shape (a tuple) and dtype (float32)."""

    __slots__ = ()

    def __str__(self):
        return "%s: %s %s" % (self.name, self.dtype, "x".join(map(str, self.shape)))


class KernelProfile(collections.namedtuple(
        "KernelProfile", "index name op ms share gflops flops calls")):
    """One kernel of a profile: its index in execution order, the layer it implements
    (name), what it computes (op, fused parts joined by '+'), mean milliseconds per run,
    share of the kernels' sum, GFLOP/s (None when it counts no floating-point work),
    floating-point operations per run and runs timed."""

    __slots__ = ()


class Profile(list):
    """The KernelProfile of every kernel in execution order, with run_ms (the measured
    wall time of one run), kernel_ms (the kernels' sum) and flops (per run); table()
    (also str()) is the text table cnnrun --profile prints."""

    def __init__(self, kernels, run_ms, runs):
        super().__init__(kernels)
        self.run_ms = run_ms
        self.runs = runs
        self.kernel_ms = sum(k.ms for k in kernels)
        self.flops = sum(k.flops for k in kernels)

    def table(self, sort_by_time=False):
        rows = sorted(self, key=lambda k: (-k.ms, k.index)) if sort_by_time else list(self)
        nw = min(40, max([6] + [len(k.name) for k in self]))
        ow = min(40, max([2] + [len(k.op) for k in self]))
        lines = ["%5s  %-*s  %-*s  %9s  %6s  %9s" % ("#", nw, "kernel", ow, "op", "ms/run",
                                                      "share", "GFLOP/s")]
        for k in rows:
            lines.append("%5d  %-*.*s  %-*.*s  %9.4f  %5.1f%%  %9s" % (
                k.index, nw, nw, k.name, ow, ow, k.op, k.ms, 100 * k.share,
                "-" if k.gflops is None else "%.2f" % k.gflops))
        run = self.run_ms
        lines.append("total: kernels %.4f ms/run, run %.4f ms/run (kernels %.1f%%), "
                     "%.2f GFLOP/run, %.2f GFLOP/s" % (
                         self.kernel_ms, run, 100 * self.kernel_ms / run if run > 0 else 0,
                         self.flops * 1e-9, self.flops / (run * 1e6) if run > 0 else 0))
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _parse_device(device):
    """None or "default": the model's own; "cpu"; "cuda" or "cuda:N"."""
    if device is None or device == "default":
        return _lib.DEVICE_DEFAULT, 0
    if device == "cpu":
        return _lib.DEVICE_CPU, 0
    if isinstance(device, str) and device.split(":")[0] == "cuda":
        index = device[5:]
        if device == "cuda" or (device[4] == ":" and index.isdigit()):
            return _lib.DEVICE_CUDA, int(index or 0)
    raise ValueError("device must be None, 'cpu', 'cuda' or 'cuda:N', got %r" % (device,))


class _Instance:
    """What a Model owns outside Python: the library, the cnn_model and the temporary
    folder of a model compiled without an output path. close() frees them, once; it is
    also the Model's finalizer, so it holds no reference to the Model."""

    def __init__(self, lib, tmpdir):
        self.lib, self.ptr, self.tmpdir = lib, None, tmpdir

    def close(self):
        if self.ptr is not None:
            self.lib.fn["cnn_model_destroy"](self.ptr)
            self.ptr = None
        if self.lib is not None:
            self.lib.close()
            self.lib = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


class Model:
    """A compiled model, loaded: see load(). Calls on one Model are serialized by a lock
    (the C API lets one instance run one call at a time); different Models run at the
    same time from different threads, the GIL released during their runs. close() (or
    leaving a `with` block) frees it; any later call raises ClosedError."""

    def __init__(self, path, threads=0, device=None, _tmpdir=None):
        kind, index = _parse_device(device)
        if not isinstance(threads, int) or threads < 0:
            raise ValueError("threads must be an integer >= 0 (0: one per core), got %r"
                             % (threads,))
        self._lock = threading.Lock()
        self._inst = _Instance(None, _tmpdir)
        self._finalizer = weakref.finalize(self, self._inst.close)
        self.path = os.fspath(path)
        try:
            self._inst.lib = lib = _lib.Library(self.path)
            opt = _lib.Options(_lib.API_VERSION, threads, kind, index, 0)
            ptr = ctypes.c_void_p()
            self._check(lib.fn["cnn_model_create"](ctypes.byref(opt), ctypes.byref(ptr)),
                        "cannot create the model from '%s'" % self.path)
            self._inst.ptr = ptr
            self.inputs = self._infos("cnn_model_num_inputs", "cnn_model_input_info")
            self.outputs = self._infos("cnn_model_num_outputs", "cnn_model_output_info")
        except BaseException:
            self._finalizer()
            raise

    # ---- the C API ---------------------------------------------------------------------

    def _check(self, status, what):
        """Raises the error of a failing status, with cnn_last_error()."""
        if status == Status.OK:
            return
        lib = self._inst.lib
        detail = lib.last_error()
        try:
            status = Status(status)
        except ValueError:
            pass
        words = lib.status_string(status)
        msg = "%s: %s" % (what, words) + (" (%s)" % detail if detail else "")
        raise STATUS_ERRORS.get(status, CnncError)(msg, status, detail)

    def _infos(self, count_fn, info_fn):
        fn, ptr, out = self._inst.lib.fn, self._inst.ptr, []
        for i in range(fn[count_fn](ptr)):
            info = _lib.TensorInfo()
            self._check(fn[info_fn](ptr, i, ctypes.byref(info)), "cannot describe the model")
            if info.dtype != _lib.F32:
                raise CnncError("tensor %d of '%s' has dtype %d, not float32"
                                % (i, self.path, info.dtype))
            name = info.name.decode("utf-8", "replace")
            out.append(TensorInfo(name, tuple(info.dims[:info.rank]), np.dtype(np.float32)))
        return out

    def _live(self):
        """The instance, or ClosedError; call with the lock held."""
        if self._inst.ptr is None:
            raise ClosedError("the model '%s' is closed" % self.path, Status.INVALID_ARGUMENT)
        return self._inst

    def _fn(self, name, what):
        f = self._live().lib.fn[name]
        if f is None:
            raise CnncError("'%s' cannot %s (compiled by an older cnnc)" % (self.path, what))
        return f

    # ---- the Python interface ----------------------------------------------------------

    @property
    def closed(self):
        return self._inst.ptr is None

    @property
    def threads(self):
        """Threads of the instance (1 for a CUDA model)."""
        with self._lock:
            inst = self._live()
            return int(inst.lib.fn["cnn_model_num_threads"](inst.ptr))

    @property
    def device(self):
        """'cpu' or 'cuda'."""
        with self._lock:
            inst = self._live()
            f = inst.lib.fn["cnn_model_device"]
            return "cuda" if f and f(inst.ptr) == _lib.DEVICE_CUDA else "cpu"

    def close(self):
        """Frees the instance (and the temporary model.so of compile()); idempotent."""
        with self._lock:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        if self.closed:
            return "<cnnc.Model '%s' (closed)>" % self.path
        return "<cnnc.Model '%s' inputs=[%s] outputs=[%s]>" % (
            self.path, ", ".join(map(str, self.inputs)), ", ".join(map(str, self.outputs)))

    def _input(self, info, x):
        """x checked against info, as an array the run can read in place."""
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype != np.float32:
            raise DtypeError("input '%s' must be float32, got %s" % (info.name, x.dtype),
                             Status.INVALID_ARGUMENT)
        if x.shape != info.shape:
            raise ShapeError("input '%s' expects shape %s, got %s"
                             % (info.name, info.shape, x.shape), Status.SIZE_MISMATCH)
        if not x.flags.c_contiguous or not x.flags.aligned:
            raise ContiguityError("input '%s' must be a C-contiguous, aligned array "
                                  "(np.ascontiguousarray(x) makes one)" % info.name,
                                  Status.INVALID_ARGUMENT)
        return x

    def _inputs(self, inputs):
        """The arrays in the order of self.inputs, from a dict by name or a sequence."""
        names = [t.name for t in self.inputs]
        if isinstance(inputs, dict):
            unknown = [k for k in inputs if k not in names]
            missing = [n for n in names if n not in inputs]
            if unknown or missing:
                raise InputError("the model's inputs are %s; %s" % (names, "; ".join(
                    ["no input named %s" % ", ".join(map(repr, unknown))] * bool(unknown) +
                    ["missing %s" % ", ".join(map(repr, missing))] * bool(missing))),
                    Status.INVALID_ARGUMENT)
            inputs = [inputs[n] for n in names]
        if len(inputs) != len(names):
            raise InputError("the model has %d input(s) %s, got %d"
                             % (len(names), names, len(inputs)), Status.INVALID_ARGUMENT)
        return [self._input(t, x) for t, x in zip(self.inputs, inputs)]

    def _run(self, arrays):
        """One cnn_model_run on checked arrays; the outputs as a list. Lock held."""
        inst = self._live()
        outs = [np.empty(t.shape, np.float32) for t in self.outputs]
        tin = (_lib.Tensor * max(1, len(arrays)))(
            *[(a.ctypes.data, a.nbytes) for a in arrays])
        tout = (_lib.Tensor * max(1, len(outs)))(*[(a.ctypes.data, a.nbytes) for a in outs])
        self._check(inst.lib.fn["cnn_model_run"](inst.ptr, tin, len(arrays), tout, len(outs)),
                    "run failed")
        return outs

    def run(self, inputs):
        """Runs the model: `inputs` a dict {name: array} (or a list in the order of
        .inputs), each float32, C-contiguous, of the input's exact shape: it is read in
        place, never copied. Returns a dict {name: array} of every output."""
        arrays = self._inputs(inputs)
        with self._lock:
            outs = self._run(arrays)
        return {t.name: y for t, y in zip(self.outputs, outs)}

    def __call__(self, *inputs):
        """m(x) or m(x1, x2, ...) (in the order of .inputs) or m({name: x}): the output
        array for a model with one output, else a dict {name: array}."""
        if len(inputs) == 1 and isinstance(inputs[0], dict):
            inputs = inputs[0]
        outs = self.run(inputs)
        return next(iter(outs.values())) if len(outs) == 1 else outs

    def random_inputs(self, seed=0):
        """A dict of inputs uniform in [-1, 1) from `seed`."""
        gen = np.random.default_rng(seed)
        return {t.name: gen.uniform(-1, 1, t.shape).astype(np.float32) for t in self.inputs}

    def profile(self, inputs=None, runs=20, warmup=1, sort_by_time=False):
        """Times every kernel over `runs` runs after `warmup` untimed ones, on `inputs`
        (default: random_inputs()). Returns a Profile: a list of KernelProfile in
        execution order (slowest first with sort_by_time) whose str() is a table."""
        if not isinstance(runs, int) or runs < 1:
            raise ValueError("runs must be an integer >= 1, got %r" % (runs,))
        arrays = self._inputs(self.random_inputs() if inputs is None else inputs)
        with self._lock:
            switch = self._fn("cnn_model_set_profiling", "be profiled")
            for _ in range(warmup):
                self._run(arrays)
            self._check(switch(self._inst.ptr, 1), "cannot switch profiling on")
            try:
                t0 = time.perf_counter()
                for _ in range(runs):
                    self._run(arrays)
                run_ms = (time.perf_counter() - t0) * 1e3 / runs
            finally:
                self._check(switch(self._inst.ptr, 0), "cannot switch profiling off")
            kernels = self._kernels()
        total = sum(k[3] for k in kernels)
        records = [KernelProfile(i, name, op, ms, ms / total if total > 0 else 0.0,
                                 flops / (ms * 1e6) if flops > 0 and ms > 0 else None,
                                 flops, calls)
                   for i, (name, op, flops, ms, calls) in enumerate(kernels)]
        if sort_by_time:
            records.sort(key=lambda k: (-k.ms, k.index))
        return Profile(records, run_ms, runs)

    def _kernels(self):
        """(name, op, flops, ms per run, calls) of each kernel. Lock held."""
        inst, out = self._inst, []
        for i in range(inst.lib.fn["cnn_model_num_kernels"](inst.ptr)):
            k = _lib.KernelInfo()
            self._check(inst.lib.fn["cnn_model_kernel_info"](inst.ptr, i, ctypes.byref(k)),
                        "kernel info")
            ms = 1e3 * k.seconds / k.calls if k.calls else 0.0
            out.append((k.name.decode("utf-8", "replace"), k.op.decode("utf-8", "replace"),
                        int(k.flops), ms, int(k.calls)))
        return out

    def verify(self):
        """Checks the weights in the model.so against the checksum cnnc stored with
        them (it reads them all: for a copied or downloaded file, not every run). Raises
        CorruptError when they differ; CPU models only."""
        with self._lock:
            f = self._fn("cnn_model_verify", "be verified (its weights have no checksum)")
            self._check(f(self._inst.ptr), "'%s': cannot verify the weights" % self.path)


def load(path, threads=0, device=None):
    """Loads a model.so compiled by cnnc. threads: worker threads of a CPU model (0: one
    per core); device: None (the model's own), 'cpu', 'cuda' or 'cuda:N' (another
    device than the model's raises DeviceError)."""
    return Model(path, threads, device)
