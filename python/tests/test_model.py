"""cnnc.load and Model: inputs and outputs, runs, the checks of the inputs, closing,
threads, profiling and verification, on the trained MNIST network."""

import os
import shutil
import threading
import time

import numpy as np
import pytest

import cnnc
from conftest import ROOT


def digits():
    folder = os.path.join(ROOT, "models", "digits")
    images = np.load(os.path.join(folder, "images.npy"))
    with open(os.path.join(folder, "expected.txt")) as f:
        lines = dict(line.split(" ", 1) for line in f if not line.startswith("#"))
    return np.ascontiguousarray(images, np.float32), [int(p) for p in lines["predictions"].split()]


def test_inputs_outputs(mnist):
    assert mnist.inputs == [cnnc.TensorInfo("image", (1, 1, 28, 28), np.dtype(np.float32))]
    assert mnist.outputs == [cnnc.TensorInfo("fc2", (1, 10), np.dtype(np.float32))]
    assert mnist.threads == 1 and mnist.device == "cpu"
    assert "image: float32 1x1x28x28" in repr(mnist)


def test_predictions_match_pytorch(mnist360_path):
    """The 360 held-out digits give PyTorch's predictions (models/digits/expected.txt)."""
    images, expected = digits()
    with cnnc.load(mnist360_path, threads=2) as m:
        assert m.inputs[0].shape == images.shape
        assert list(m(images).argmax(axis=1)) == expected


def test_call_forms(mnist):
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1, 28, 28)).astype(np.float32)
    y = mnist(x)
    assert isinstance(y, np.ndarray) and y.shape == (1, 10) and y.dtype == np.float32
    for other in (mnist({"image": x}), mnist.run({"image": x})["fc2"], mnist.run([x])["fc2"]):
        np.testing.assert_array_equal(other, y)
    assert list(mnist.run({"image": x})) == ["fc2"]
    assert not np.array_equal(mnist(-x), y)


def test_input_read_in_place(mnist):
    """A C-contiguous float32 array is handed to the C API as it is, not copied."""
    x = np.zeros((1, 1, 28, 28), np.float32)
    assert mnist._inputs([x])[0] is x
    assert mnist._inputs({"image": x})[0] is x


def test_wrong_shape(mnist):
    with pytest.raises(cnnc.ShapeError,
                       match=r"expects shape \(1, 1, 28, 28\), got \(1, 28, 28, 1\)") as e:
        mnist(np.zeros((1, 28, 28, 1), np.float32))
    assert e.value.status == cnnc.Status.SIZE_MISMATCH
    assert isinstance(e.value, ValueError) and isinstance(e.value, cnnc.CnncError)
    with pytest.raises(cnnc.ShapeError):
        mnist(np.zeros((2, 1, 28, 28), np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, ">f4"])
def test_wrong_dtype(mnist, dtype):
    with pytest.raises(cnnc.DtypeError, match="must be float32") as e:
        mnist(np.zeros((1, 1, 28, 28), dtype))
    assert e.value.status == cnnc.Status.INVALID_ARGUMENT and isinstance(e.value, TypeError)


def test_not_contiguous(mnist):
    base = np.zeros((1, 1, 28, 56), np.float32)
    with pytest.raises(cnnc.ContiguityError, match="C-contiguous"):
        mnist(base[..., ::2])
    with pytest.raises(cnnc.ContiguityError):
        mnist(np.zeros((1, 1, 28, 28), np.float32).transpose(0, 1, 3, 2))
    np.testing.assert_array_equal(mnist(np.ascontiguousarray(base[..., ::2])),
                                  mnist(np.zeros((1, 1, 28, 28), np.float32)))


def test_wrong_inputs(mnist):
    x = np.zeros((1, 1, 28, 28), np.float32)
    with pytest.raises(cnnc.InputError, match="no input named 'img'; missing 'image'"):
        mnist.run({"img": x})
    with pytest.raises(cnnc.InputError, match="has 1 input"):
        mnist(x, x)
    with pytest.raises(cnnc.InputError):
        mnist.run({"image": x, "other": x})


def test_closed(mnist_path):
    m = cnnc.load(mnist_path)
    x = np.zeros((1, 1, 28, 28), np.float32)
    m.close()
    m.close()
    assert m.closed and "closed" in repr(m)
    for call in (lambda: m(x), lambda: m.run({"image": x}), m.profile, m.verify,
                 lambda: m.threads, lambda: m.device):
        with pytest.raises(cnnc.ClosedError, match="is closed"):
            call()
    with cnnc.load(mnist_path) as m2:
        m2(x)
    with pytest.raises(cnnc.ClosedError):
        m2(x)


def test_create_errors(mnist_path):
    """Failures of cnn_model_create carry the status and cnn_last_error()."""
    with pytest.raises(cnnc.CnncError, match="num_threads 5000 is outside") as e:
        cnnc.load(mnist_path, threads=5000)
    assert e.value.status == cnnc.Status.INVALID_ARGUMENT and "5000" in e.value.detail
    with pytest.raises(cnnc.DeviceError, match="compiled for the CPU") as e:
        cnnc.load(mnist_path, device="cuda")
    assert e.value.status == cnnc.Status.DEVICE and e.value.detail
    with pytest.raises(ValueError):
        cnnc.load(mnist_path, device="gpu")
    cnnc.load(mnist_path, device="cpu").close()


def test_load_errors(tmp_path, mnist_path):
    with pytest.raises(FileNotFoundError):
        cnnc.load(tmp_path / "none.so")
    text = tmp_path / "text.so"
    text.write_text("not a shared object\n")
    with pytest.raises(cnnc.LoadError, match="cannot load the model"):
        cnnc.load(text)
    # A truncated model.so is refused before dlopen would map pages past the file's end.
    data = open(mnist_path, "rb").read()
    short = tmp_path / "short.so"
    short.write_bytes(data[:len(data) // 2])
    with pytest.raises(cnnc.LoadError, match="truncated"):
        cnnc.load(short)
    libm = [p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6",
                        "/usr/lib64/libm.so.6") if os.path.exists(p)]
    if libm:
        with pytest.raises(cnnc.LoadError, match="not a cnnc model"):
            cnnc.load(libm[0])


def test_replaced_while_loaded(tmp_path, mnist_path):
    """The dynamic loader would give back the old library for the same path."""
    path = tmp_path / "m.so"
    shutil.copy(mnist_path, path)
    m = cnnc.load(path)
    shutil.copy(mnist_path, tmp_path / "new.so")
    os.replace(tmp_path / "new.so", path)
    with pytest.raises(cnnc.LoadError, match="replaced on disk"):
        cnnc.load(path)
    m.close()
    cnnc.load(path).close()


def test_two_models_in_threads(mnist360_path):
    """Two instances run at the same time from two threads, each giving the results it
    gives alone."""
    images, expected = digits()
    models = [cnnc.load(mnist360_path, threads=1) for _ in range(2)]
    inputs = [images, np.ascontiguousarray(images[::-1])]
    alone = [m(x) for m, x in zip(models, inputs)]
    results, errors = [[], []], []

    def work(i):
        try:
            for _ in range(5):
                results[i].append(models[i](inputs[i]))
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(2):
        assert len(results[i]) == 5
        for y in results[i]:
            np.testing.assert_array_equal(y, alone[i])
    assert list(alone[0].argmax(axis=1)) == expected
    for m in models:
        m.close()


def longest_pause(m, x):
    """The longest time the main thread goes without running Python while another thread
    runs m(x) once, and that run's duration."""
    span = []

    def work():
        t0 = time.perf_counter()
        m(x)
        span.extend([t0, time.perf_counter()])

    ticks = []
    t = threading.Thread(target=work)
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
    t.join()
    inside = [span[0]] + [s for s in ticks if span[0] < s < span[1]] + [span[1]]
    return max(b - a for a, b in zip(inside, inside[1:])), span[1] - span[0]


def test_run_releases_the_gil(mnist360_path):
    """Python code runs in another thread while a model runs: the call releases the GIL.
    Were the GIL held, the main thread's longest pause would be the whole call; three
    tries, for a loaded machine that leaves the main thread unscheduled for a while."""
    images, _ = digits()
    with cnnc.load(mnist360_path, threads=1) as m:
        m(images)
        for _ in range(3):
            pause, run = longest_pause(m, images)
            if pause < 0.5 * run:
                break
    assert pause < 0.5 * run, "a pause of %.1f ms in a run of %.1f ms" % (1e3 * pause,
                                                                         1e3 * run)


def test_one_model_from_threads(mnist_path):
    """Calls on one Model from several threads are serialized, never BusyError."""
    rng = np.random.default_rng(1)
    xs = [rng.uniform(-1, 1, (1, 1, 28, 28)).astype(np.float32) for _ in range(4)]
    with cnnc.load(mnist_path, threads=1) as m:
        alone = [m(x) for x in xs]
        out = [None] * 4

        def work(i):
            out[i] = [m(xs[i]) for _ in range(50)]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i in range(4):
        for y in out[i]:
            np.testing.assert_array_equal(y, alone[i])


def test_close_while_running(mnist360_path):
    """close() from another thread waits for the run; the runs after it raise."""
    images, _ = digits()
    m = cnnc.load(mnist360_path, threads=1)
    errors = []

    def work():
        try:
            while True:
                m(images)
        except cnnc.ClosedError:
            pass
        except Exception as e:
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    time.sleep(0.05)
    m.close()
    t.join()
    assert not errors and m.closed


def test_profile(mnist):
    p = mnist.profile(runs=5)
    assert [k.name for k in p][:2] == ["conv1", "conv2"]
    assert p[0].op == "conv2d+bias+relu" and p[-1].name == "fc2"
    assert [k.index for k in p] == list(range(len(p)))
    assert all(k.calls == 5 and k.ms >= 0 for k in p)
    assert p[1].flops > 0 and p[1].gflops > 0
    assert abs(sum(k.share for k in p) - 1) < 1e-6 and p.run_ms > 0
    table = str(p).splitlines()
    assert table[0].split() == ["#", "kernel", "op", "ms/run", "share", "GFLOP/s"]
    assert table[1].split()[:3] == ["0", "conv1", "conv2d+bias+relu"]
    assert table[-1].startswith("total: kernels ") and len(table) == len(p) + 2
    slow = mnist.profile(runs=2, sort_by_time=True)
    assert [k.ms for k in slow] == sorted((k.ms for k in slow), reverse=True)
    with pytest.raises(ValueError):
        mnist.profile(runs=0)
    x = np.zeros((1, 1, 28, 28), np.float32)
    assert len(mnist.profile({"image": x}, runs=1)) == len(p)
    np.testing.assert_array_equal(mnist(x), mnist(x))  # profiling is off again


def test_verify(mnist, mnist_path):
    mnist.verify()
    bad = os.path.join(os.path.dirname(os.path.dirname(cnnc.find_cnnc())), "tests",
                       "fake_model_badsum.so")
    if not os.path.exists(bad):
        pytest.skip("no fake_model_badsum.so next to cnnc's build")
    with cnnc.load(bad) as m:
        with pytest.raises(cnnc.CorruptError, match="cnnc stored 0123456789abcdef") as e:
            m.verify()
        assert e.value.status == cnnc.Status.CORRUPT and "XXH64" in e.value.detail
