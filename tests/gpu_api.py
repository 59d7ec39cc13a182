#!/usr/bin/python3
"""The parts of check_gpu.sh that need Python: finding the GPU, comparing outputs, and the
C API of a CUDA model.so on a real device (through ctypes, with libcuda's own allocator for
CNN_DEVICE_POINTERS).

    gpu_api.py probe                   prints "sm_XY NAME" of CUDA device 0; 77 when there
                                       is no usable driver or device (the reason on stdout)
    gpu_api.py compare GOT WANT TOL    every WANT/*.npy against GOT/ (same names):
                                       max|got - want| / max|want| <= TOL (max|want| of 0
                                       counts as 1, as tests/test_util.h's expect_close)
    gpu_api.py api CUDA.so CPU.so TOL  error paths, host and device buffers, profiling;
                                       outputs against the CPU build of the same model

Exit 0 pass, 1 fail, 77 skipped."""

import ctypes
import os
import sys

try:
    import numpy as np
except ImportError:
    np = None

CNN_API_VERSION = 2
CNN_OK, CNN_ERR_INVALID_ARGUMENT, CNN_ERR_SIZE_MISMATCH, CNN_ERR_DEVICE = 0, 1, 2, 5
CNN_DEVICE_DEFAULT, CNN_DEVICE_CPU, CNN_DEVICE_CUDA = 0, 1, 2
CNN_DEVICE_POINTERS = 1
CU_ATTR_CC_MAJOR, CU_ATTR_CC_MINOR = 75, 76


class Options(ctypes.Structure):
    _fields_ = [("api_version", ctypes.c_uint32), ("num_threads", ctypes.c_int32),
                ("device", ctypes.c_int), ("device_index", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("dims", ctypes.c_int64 * 6), ("size", ctypes.c_size_t)]


class KernelInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("op", ctypes.c_char_p), ("flops", ctypes.c_int64),
                ("calls", ctypes.c_int64), ("seconds", ctypes.c_double)]


def rel_error(got, want):
    """max|got - want| / max|want|, NaN anywhere counting as infinitely wrong."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    diff = np.abs(got - want)
    if np.isnan(diff).any():
        return float("inf")
    mag = float(np.abs(want).max()) if want.size else 0.0
    return float(diff.max()) / (mag if mag > 0 else 1.0) if want.size else 0.0


# ---- the driver ---------------------------------------------------------------------

def load_driver():
    """libcuda.so.1 with cuInit done, or a reason string."""
    try:
        cu = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        return None, "libcuda.so.1 cannot be loaded: %s" % e
    r = cu.cuInit(0)
    if r != 0:
        return None, "cuInit failed: %s" % error_name(cu, r)
    count = ctypes.c_int(0)
    if cu.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return None, "the CUDA driver sees no device"
    return cu, None


def error_name(cu, r):
    s = ctypes.c_char_p()
    if cu.cuGetErrorName(r, ctypes.byref(s)) == 0 and s.value:
        return s.value.decode()
    return "CUresult %d" % r


def probe():
    cu, reason = load_driver()
    if not cu:
        print(reason)
        return 77
    dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    ok = (cu.cuDeviceGet(ctypes.byref(dev), 0) == 0 and
          cu.cuDeviceGetAttribute(ctypes.byref(major), CU_ATTR_CC_MAJOR, dev) == 0 and
          cu.cuDeviceGetAttribute(ctypes.byref(minor), CU_ATTR_CC_MINOR, dev) == 0 and
          cu.cuDeviceGetName(name, 255, dev) == 0)
    if not ok:
        print("CUDA device 0 cannot be queried")
        return 77
    print("sm_%d%d %s" % (major.value, minor.value, name.value.decode(errors="replace")))
    return 0


# ---- comparing outputs ----------------------------------------------------------------

def compare(got_dir, want_dir, tol):
    names = sorted(f for f in os.listdir(want_dir) if f.endswith(".npy"))
    if not names:
        print("no outputs in %s" % want_dir)
        return 1
    worst = 0.0
    for f in names:
        path = os.path.join(got_dir, f)
        if not os.path.exists(path):
            print("missing output %s" % path)
            return 1
        worst = max(worst, rel_error(np.load(path), np.load(os.path.join(want_dir, f))))
    print("max|diff|/max|ref| = %.3g (tolerance %.0e)" % (worst, tol))
    return 0 if worst <= tol else 1


# ---- the C API of a model.so ----------------------------------------------------------

class Model:
    """One model.so's API (ctypes, RTLD_LOCAL: two model.so in one process stay apart)."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(os.path.abspath(path))
        L = self.lib
        L.cnn_model_create.argtypes = [ctypes.POINTER(Options), ctypes.POINTER(ctypes.c_void_p)]
        L.cnn_model_destroy.argtypes = [ctypes.c_void_p]
        L.cnn_model_destroy.restype = None
        for f in ("num_inputs", "num_outputs", "num_threads", "num_kernels", "device"):
            getattr(L, "cnn_model_" + f).argtypes = [ctypes.c_void_p]
        for f in ("input_info", "output_info"):
            getattr(L, "cnn_model_" + f).argtypes = [ctypes.c_void_p, ctypes.c_int32,
                                                      ctypes.POINTER(TensorInfo)]
        L.cnn_model_kernel_info.argtypes = [ctypes.c_void_p, ctypes.c_int32,
                                            ctypes.POINTER(KernelInfo)]
        L.cnn_model_set_profiling.argtypes = [ctypes.c_void_p, ctypes.c_int]
        L.cnn_model_run.argtypes = [ctypes.c_void_p, ctypes.POINTER(Tensor), ctypes.c_int32,
                                    ctypes.POINTER(Tensor), ctypes.c_int32]
        L.cnn_status_string.restype = ctypes.c_char_p
        L.cnn_last_error.restype = ctypes.c_char_p

    def create(self, device=CNN_DEVICE_DEFAULT, index=0, flags=0):
        opt = Options(CNN_API_VERSION, 0, device, index, flags)
        m = ctypes.c_void_p()
        s = self.lib.cnn_model_create(ctypes.byref(opt), ctypes.byref(m))
        return s, m

    def infos(self, m):
        def get(n, fn):
            out = []
            for i in range(n):
                info = TensorInfo()
                if fn(m, i, ctypes.byref(info)) != CNN_OK:
                    expect(False, "tensor info %d" % i)
                out.append(info)
            return out
        L = self.lib
        return (get(L.cnn_model_num_inputs(m), L.cnn_model_input_info),
                get(L.cnn_model_num_outputs(m), L.cnn_model_output_info))

    def run(self, m, ins, outs):
        """ins/outs: lists of (address, bytes)."""
        ti = (Tensor * max(len(ins), 1))(*[Tensor(a, n) for a, n in ins])
        to = (Tensor * max(len(outs), 1))(*[Tensor(a, n) for a, n in outs])
        return self.lib.cnn_model_run(m, ti, len(ins), to, len(outs))

    def last_error(self):
        return (self.lib.cnn_last_error() or b"").decode(errors="replace")


failures = []


def expect(cond, what):
    print("%s: %s" % ("ok" if cond else "FAIL", what))
    if not cond:
        failures.append(what)
    return cond


def why(model, status):
    """The detail of a failed status, for messages."""
    return " (%s)" % model.last_error() if status != CNN_OK else ""


def host_buffers(infos, rng=None):
    """Float32 arrays of each tensor's shape: seeded uniform [-1, 1) or NaN."""
    out = []
    for t in infos:
        shape = tuple(t.dims[:t.rank])
        out.append(rng.uniform(-1, 1, shape).astype(np.float32) if rng is not None
                   else np.full(shape, np.nan, np.float32))
    return out


def host_run(model, m, xs, ys):
    return model.run(m, [(x.ctypes.data, x.nbytes) for x in xs],
                     [(y.ctypes.data, y.nbytes) for y in ys])


def reference(cpu, xs):
    s, m = cpu.create()
    expect(s == CNN_OK, "CPU model created")
    _, outs = cpu.infos(m)
    ys = host_buffers(outs)
    expect(host_run(cpu, m, xs, ys) == CNN_OK, "CPU reference run")
    cpu.lib.cnn_model_destroy(m)
    return ys


def check_create_errors(gpu, cpu):
    s, _ = gpu.create(index=99)
    expect(s == CNN_ERR_DEVICE, "device_index 99 -> CNN_ERR_DEVICE (got %d)" % s)
    expect("99" in gpu.last_error(), "cnn_last_error names device 99: '%s'" % gpu.last_error())
    s, _ = gpu.create(device=CNN_DEVICE_CPU)
    expect(s == CNN_ERR_DEVICE, "CNN_DEVICE_CPU on a CUDA model -> CNN_ERR_DEVICE (got %d)" % s)
    expect(gpu.last_error() != "", "cnn_last_error says why: '%s'" % gpu.last_error())
    s, _ = cpu.create(device=CNN_DEVICE_CUDA)
    expect(s == CNN_ERR_DEVICE, "CNN_DEVICE_CUDA on a CPU model -> CNN_ERR_DEVICE (got %d)" % s)
    s, m = gpu.create(device=CNN_DEVICE_CUDA)
    expect(s == CNN_OK, "CNN_DEVICE_CUDA on a CUDA model creates it (got %d)" % s)
    if s == CNN_OK:
        gpu.lib.cnn_model_destroy(m)


def check_host(gpu, m, xs, want, tol):
    ins, outs = gpu.infos(m)
    expect(gpu.lib.cnn_model_device(m) == CNN_DEVICE_CUDA, "cnn_model_device is CUDA")
    expect(gpu.lib.cnn_model_num_threads(m) == 1, "cnn_model_num_threads is 1")
    ys = host_buffers(outs)
    for r in (1, 2):
        s = host_run(gpu, m, xs, ys)
        e = max(rel_error(y, w) for y, w in zip(ys, want)) if s == CNN_OK else float("inf")
        expect(e <= tol, "host buffers, run %d: status %d%s, error %.3g against the CPU"
               % (r, s, why(gpu, s), e))
    short = [(x.ctypes.data, x.nbytes - 4) for x in xs]
    s = gpu.run(m, short, [(y.ctypes.data, y.nbytes) for y in ys])
    expect(s == CNN_ERR_SIZE_MISMATCH, "an input 4 bytes short -> CNN_ERR_SIZE_MISMATCH (%d)" % s)
    s = gpu.run(m, [(x.ctypes.data, x.nbytes) for x in xs],
                [(y.ctypes.data, y.nbytes + 4) for y in ys])
    expect(s == CNN_ERR_SIZE_MISMATCH, "an output 4 bytes long -> CNN_ERR_SIZE_MISMATCH (%d)" % s)
    y2 = host_buffers(outs)
    s = host_run(gpu, m, xs, y2)
    expect(s == CNN_OK and all(rel_error(a, b) <= tol for a, b in zip(y2, want)),
           "a good run after the failed ones")


def check_profiling(gpu, m, xs, want, tol):
    L = gpu.lib
    expect(L.cnn_model_set_profiling(m, 1) == CNN_OK, "profiling on")
    _, outs = gpu.infos(m)
    ys = host_buffers(outs)
    ok = host_run(gpu, m, xs, ys) == CNN_OK and host_run(gpu, m, xs, ys) == CNN_OK
    expect(ok and all(rel_error(a, b) <= tol for a, b in zip(ys, want)),
           "two profiled runs (kernel by kernel) match the CPU")
    expect(L.cnn_model_set_profiling(m, 0) == CNN_OK, "profiling off")
    n = L.cnn_model_num_kernels(m)
    ks = []
    for i in range(max(n, 0)):
        k = KernelInfo()
        if L.cnn_model_kernel_info(m, i, ctypes.byref(k)) == CNN_OK:
            ks.append(k)
    expect(n > 0 and len(ks) == n, "%d kernels described" % n)
    expect(all(k.calls == 2 for k in ks), "every kernel timed twice")
    total = sum(k.seconds for k in ks)
    expect(total > 0 and all(k.seconds >= 0 for k in ks),
           "GPU time of the kernels: %.3f ms per run" % (total * 500))


class Device:
    """Device memory of CUDA device 0's primary context (the one the runtime uses)."""

    def __init__(self, cu):
        self.cu, self.dev, self.ctx, self.ptrs = cu, ctypes.c_int(), ctypes.c_void_p(), []
        self.ok = (cu.cuDeviceGet(ctypes.byref(self.dev), 0) == 0 and
                   cu.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), self.dev) == 0 and
                   cu.cuCtxPushCurrent_v2(self.ctx) == 0)

    def alloc(self, nbytes):
        p = ctypes.c_uint64()
        if self.cu.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(nbytes)) != 0:
            return None
        self.ptrs.append(p.value)
        return p.value

    def upload(self, a):
        p = self.alloc(a.nbytes)
        if p is not None and self.cu.cuMemcpyHtoD_v2(ctypes.c_uint64(p), a.ctypes.data_as(
                ctypes.c_void_p), ctypes.c_size_t(a.nbytes)) != 0:
            return None
        return p

    def download(self, p, like):
        a = np.empty_like(like)
        r = self.cu.cuMemcpyDtoHAsync_v2(a.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint64(p),
                                         ctypes.c_size_t(a.nbytes), None)
        return a if r == 0 and self.cu.cuStreamSynchronize(None) == 0 else None

    def close(self):
        for p in self.ptrs:
            self.cu.cuMemFree_v2(ctypes.c_uint64(p))
        popped = ctypes.c_void_p()
        self.cu.cuCtxPopCurrent_v2(ctypes.byref(popped))
        self.cu.cuDevicePrimaryCtxRelease_v2(self.dev)


def device_run(gpu, m, d, xs, want, tol, what):
    _, outs = gpu.infos(m)
    like = host_buffers(outs)
    dx = [d.upload(x) for x in xs]
    dy = [d.alloc(y.nbytes) for y in like]
    if not expect(None not in dx + dy, "%s: device buffers allocated" % what):
        return None
    s = gpu.run(m, list(zip(dx, [x.nbytes for x in xs])), list(zip(dy, [y.nbytes for y in like])))
    got = [d.download(p, y) for p, y in zip(dy, like)] if s == CNN_OK else []
    errs = [rel_error(g, w) if g is not None else float("inf") for g, w in zip(got, want)]
    expect(s == CNN_OK and len(errs) == len(want) and max(errs) <= tol,
           "%s: status %d%s, error %s against the CPU"
           % (what, s, why(gpu, s), ", ".join("%.3g" % e for e in errs)))
    return dx, dy


def check_device_pointers(gpu, cu, xs, want, tol):
    d = Device(cu)
    if not expect(d.ok, "primary context of device 0 current"):
        return
    s, m = gpu.create(flags=CNN_DEVICE_POINTERS)
    if expect(s == CNN_OK, "created with CNN_DEVICE_POINTERS (got %d)" % s):
        bufs = device_run(gpu, m, d, xs, want, tol, "device buffers")
        device_run(gpu, m, d, xs, want, tol, "other device buffers (graph captured again)")
        if bufs:
            dx, dy = bufs
            _, outs = gpu.infos(m)
            s = gpu.run(m, [(p, x.nbytes - 4) for p, x in zip(dx, xs)],
                        [(p, o.size) for p, o in zip(dy, outs)])
            expect(s == CNN_ERR_SIZE_MISMATCH,
                   "device buffers, an input 4 bytes short -> CNN_ERR_SIZE_MISMATCH (%d)" % s)
        gpu.lib.cnn_model_destroy(m)
    d.close()


def api(gpu_path, cpu_path, tol):
    cu, reason = load_driver()
    if not cu:
        print("SKIPPED: %s" % reason)
        return 77
    gpu, cpu = Model(gpu_path), Model(cpu_path)
    check_create_errors(gpu, cpu)
    s, m = gpu.create()
    if not expect(s == CNN_OK, "CUDA model created (got %d%s)" % (s, why(gpu, s))):
        return 1
    ins, _ = gpu.infos(m)
    xs = host_buffers(ins, np.random.default_rng(1))
    want = reference(cpu, xs)
    check_host(gpu, m, xs, want, tol)
    check_profiling(gpu, m, xs, want, tol)
    gpu.lib.cnn_model_destroy(m)
    check_device_pointers(gpu, cu, xs, want, tol)
    print("%d check(s) failed" % len(failures) if failures else "all API checks passed")
    return 1 if failures else 0


def main(argv):
    if np is None:
        print("SKIPPED: %s has no numpy" % sys.executable)
        return 77
    if len(argv) == 2 and argv[1] == "probe":
        return probe()
    if len(argv) == 5 and argv[1] == "compare":
        return compare(argv[2], argv[3], float(argv[4]))
    if len(argv) == 5 and argv[1] == "api":
        return api(argv[2], argv[3], float(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
