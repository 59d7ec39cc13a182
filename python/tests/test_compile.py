"""cnnc.compile: .cnn files with flags, the messages of a failing compile, onnx.ModelProto
sources, where the program is found, and `pip install ./python`."""

import gc
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cnnc
from cnnc._compile import _flag
from conftest import MNIST, MNIST_WEIGHTS, ROOT


def test_compile_to_temporary_file():
    m = cnnc.compile(MNIST, weights=MNIST_WEIGHTS, batch=3, threads=1)
    assert m.inputs[0].shape == (3, 1, 28, 28) and m.threads == 1
    folder = os.path.dirname(m.path)
    assert os.path.exists(m.path)
    m.close()
    assert not os.path.exists(folder)
    m = cnnc.compile(MNIST, random_weights=0)
    folder = os.path.dirname(m.path)
    del m  # never closed: freed with the object
    gc.collect()
    assert not os.path.exists(folder)


def test_compile_to_output(tmp_path):
    out = tmp_path / "random.so"
    with cnnc.compile(MNIST, output=out, random_weights=3, O=1) as m:
        y = m(np.zeros((1, 1, 28, 28), np.float32))
    assert os.path.exists(out)
    with cnnc.load(out) as m:
        np.testing.assert_array_equal(m(np.zeros((1, 1, 28, 28), np.float32)), y)


def test_compile_error_located():
    bad = os.path.join(ROOT, "tests", "bad", "mnist_pool_twice.cnn")
    with pytest.raises(cnnc.CompileError) as e:
        cnnc.compile(bad)
    err = e.value
    assert err.returncode == 1 and isinstance(err, cnnc.CnncError)
    assert len(err.messages) == 1
    d = err.messages[0]
    assert (d.file, d.line, d.col, d.severity) == (bad, 8, 12, "error")
    assert d.message.startswith("dense expects 9216 input features, got 1600")
    assert str(d) == "%s:8:12: error: %s" % (bad, d.message)
    assert "exit status 1" in str(err) and "^" in str(err)  # the source line and caret
    assert err.command[1] == bad


def test_compile_errors_unlocated(tmp_path):
    with pytest.raises(cnnc.CompileError) as e:
        cnnc.compile(MNIST, bogus_flag=1)
    assert e.value.messages == [cnnc.Diagnostic("cnnc", None, None, "error",
                                                "unknown option '--bogus-flag=1' "
                                                "(see cnnc --help)")]
    with pytest.raises(cnnc.CompileError) as e:
        cnnc.compile(tmp_path / "missing.cnn")
    assert e.value.messages[0].file == str(tmp_path / "missing.cnn")
    assert "cannot read" in e.value.messages[0].message
    with pytest.raises(TypeError):
        cnnc.compile(42)


def test_flags():
    assert _flag("O", 3) == ["-O3"]
    assert _flag("random_weights", 0) == ["--random-weights=0"]
    assert _flag("list_weight_mismatches", True) == ["--list-weight-mismatches"]
    assert _flag("disable_pass", ["a", "b"]) == ["--disable-pass=a", "--disable-pass=b"]
    assert _flag("batch", None) == [] and _flag("x", False) == []


def test_find_cnnc(monkeypatch, tmp_path):
    exe = cnnc.find_cnnc()
    assert os.access(exe, os.X_OK)
    monkeypatch.setenv("CNNC", str(tmp_path / "nothing"))
    with pytest.raises(cnnc.CnncError, match="is not an executable file"):
        cnnc.find_cnnc()
    monkeypatch.setenv("CNNC", exe)
    assert cnnc.find_cnnc() == exe


def test_compile_onnx_model_proto():
    """An onnx.ModelProto made in memory, against ONNX's reference evaluator."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(0)
    init = lambda name, *shape: numpy_helper.from_array(
        rng.uniform(-1, 1, shape).astype(np.float32), name)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Flatten", ["r"], ["f"]),
         helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1)],
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])],
        [init("w", 4, 3, 3, 3), init("b", 4), init("fc_w", 5, 144), init("fc_b", 5)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    x = rng.uniform(-1, 1, (2, 3, 6, 6)).astype(np.float32)
    ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
    with cnnc.compile(model, batch=2) as m:
        assert [t.name for t in m.inputs] == ["x"] and m.outputs[0].shape == (2, 5)
        np.testing.assert_allclose(m(x), ref, rtol=1e-5, atol=1e-5)
        assert not os.path.exists(os.path.join(os.path.dirname(m.path), "model.onnx"))
    broken = helper.make_model(helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"])], "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]))
    with pytest.raises(cnnc.CompileError, match="NoSuchOp") as e:
        cnnc.compile(broken)
    assert e.value.messages and e.value.returncode == 1


def test_pip_install(tmp_path):
    """`pip install ./python` into a virtual environment (over this Python's packages, for
    numpy; without build isolation, so that nothing is downloaded) gives a working cnnc."""
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "python"), src,
                    ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    py = str(venv / "bin" / "python")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "--quiet",
                        "--no-build-isolation", "--no-deps", "--no-index",
                        "--disable-pip-version-check", str(src)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, r.stdout
    code = ("import cnnc, numpy as np; m = cnnc.compile(%r, weights=%r); "
            "print(cnnc.__file__, m(np.zeros((1, 1, 28, 28), np.float32)).shape)"
            % (MNIST, MNIST_WEIGHTS))
    env = dict(os.environ, CNNC=cnnc.find_cnnc())
    env.pop("PYTHONPATH", None)
    r = subprocess.run([py, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout
    assert r.stdout.startswith(str(venv)) and r.stdout.endswith("(1, 10)\n")
