"""compile(): the cnnc compiler run as a program, its model.so loaded."""

import os
import shutil
import subprocess
import tempfile

from ._errors import CnncError, CompileError
from ._model import Model

_HERE = os.path.dirname(os.path.abspath(__file__))


def _checkout_cnnc(root):
    """ROOT/build/tools/cnnc if ROOT is a cnnc source tree that has built it."""
    exe = os.path.join(root, "build", "tools", "cnnc")
    marker = os.path.join(root, "include", "cnnc", "model.h")
    return exe if os.path.isfile(marker) and os.access(exe, os.X_OK) else None


def find_cnnc():
    """The cnnc program compile() runs, the first of: the environment variable CNNC (a
    path, or a name looked up on the PATH); build/tools/cnnc of the source checkout this
    package is imported from (python/cnnc in it, as with PYTHONPATH=python), then of the
    current directory; cnnc on the PATH. Raises CnncError when there is none."""
    env = os.environ.get("CNNC")
    if env:
        exe = shutil.which(env) if os.sep not in env else env  # a bare name: on the PATH
        if not exe or not os.access(exe, os.X_OK) or os.path.isdir(exe):
            raise CnncError("CNNC=%s is not an executable file" % env)
        return os.path.abspath(exe)
    for root in (os.path.dirname(os.path.dirname(_HERE)), os.getcwd()):
        exe = _checkout_cnnc(root)
        if exe:
            return exe
    exe = shutil.which("cnnc")
    if exe:
        return exe
    raise CnncError("cannot find cnnc: set CNNC to its path, or put it on the PATH")


def _flag(key, value):
    """A keyword argument as cnnc's flags: O=3 -> -O3, random_weights=1 ->
    --random-weights=1, list_weight_mismatches=True -> --list-weight-mismatches,
    disable_pass=["a", "b"] -> --disable-pass=a --disable-pass=b; None and False: none."""
    if value is None or value is False:
        return []
    if isinstance(value, (list, tuple)):
        return [f for v in value for f in _flag(key, v)]
    if len(key) == 1:
        return ["-%s%s" % (key, "" if value is True else value)]
    name = "--" + key.replace("_", "-")
    return [name] if value is True else ["%s=%s" % (name, value)]


def compile(source, output=None, weights=None, batch=None, target="cpu", *, threads=0,
            device=None, **flags):
    """Compiles a model with cnnc and loads it (load(output, threads, device)).

    source: a .cnn or .onnx file, or an onnx.ModelProto (anything with
    SerializeToString(), written to a temporary .onnx file). output: the model.so to
    write; by default a temporary file that lives as long as the returned Model.
    weights (--weights), batch (--batch), target (--target) and every other keyword are
    cnnc's flags (see _flag: O=3 gives -O3, random_weights=0 --random-weights=0).
    Raises CompileError (with cnnc's located messages and exit status) on failure."""
    tmpdir = tempfile.mkdtemp(prefix="cnnc-") if output is None or not isinstance(
        source, (str, os.PathLike)) else None
    try:
        if isinstance(source, (str, os.PathLike)):
            src = os.fspath(source)
        elif hasattr(source, "SerializeToString"):
            src = os.path.join(tmpdir, "model.onnx")
            with open(src, "wb") as f:
                f.write(source.SerializeToString())
        else:
            raise TypeError("source must be a path or an onnx.ModelProto, got %s"
                            % type(source).__name__)
        out = os.path.join(tmpdir, "model.so") if output is None else os.fspath(output)
        cmd = [find_cnnc(), src, "-o", out]
        for key, value in dict(flags, weights=weights, batch=batch, target=target).items():
            cmd += _flag(key, value)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           errors="replace")
        if r.returncode != 0:
            raise CompileError(cmd, r.returncode, r.stderr or r.stdout)
        if output is not None and tmpdir:
            shutil.rmtree(tmpdir)
            tmpdir = None
        elif tmpdir and src.startswith(tmpdir):
            os.remove(src)
        return Model(out, threads, device, _tmpdir=tmpdir)
    except BaseException:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
