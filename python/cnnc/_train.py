"""Trainer: one instance of a training model compiled by `cnnc --train`
(include/cnnc/train.h), trained and evaluated on numpy arrays."""

import ctypes
import os
import shutil
import subprocess
import tempfile
import threading

import numpy as np

from . import _lib
from ._compile import _flag, find_cnnc
from ._errors import (STATUS_ERRORS, ClosedError, CnncError, CompileError, ContiguityError,
                      DtypeError, LoadError, ShapeError)

TRAIN_API_VERSION = 1  # CNN_TRAIN_API_VERSION of the header this package follows
LABEL_CLASS, LABEL_TARGET = 1, 2
# The statuses train.h adds to model.h's.
ERR_LABEL, ERR_NOT_FINITE, ERR_IO = 100, 101, 102


class TrainOptions(ctypes.Structure):
    _fields_ = [("api_version", ctypes.c_uint32), ("num_threads", ctypes.c_int32),
                ("seed", ctypes.c_uint64)]


_P, _I32, _I64, _INT = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_int
_T = ctypes.POINTER(_lib.Tensor)
_INFO = ctypes.POINTER(_lib.TensorInfo)
_F = ctypes.POINTER(ctypes.c_float)
_FUNCTIONS = {
    "cnn_trainer_create": (_INT, [ctypes.POINTER(TrainOptions), ctypes.POINTER(_P)]),
    "cnn_trainer_destroy": (None, [_P]),
    "cnn_trainer_batch": (_I64, [_P]),
    "cnn_trainer_input_info": (_INT, [_P, _INFO]),
    "cnn_trainer_label_info": (_INT, [_P, ctypes.POINTER(_INT), _INFO]),
    "cnn_trainer_output_info": (_INT, [_P, _INFO]),
    "cnn_trainer_step": (_INT, [_P, _T, _T, _F]),
    "cnn_trainer_compute_gradients": (_INT, [_P, _T, _T, _F]),
    "cnn_trainer_gradients": (_INT, [_P, ctypes.POINTER(_F), ctypes.POINTER(ctypes.c_size_t)]),
    "cnn_trainer_apply_gradients": (_INT, [_P]),
    "cnn_trainer_evaluate": (_INT, [_P, _T, _T, _F, _T]),
    "cnn_trainer_num_params": (_I32, [_P]),
    "cnn_trainer_num_trainable": (_I32, [_P]),
    "cnn_trainer_param_info": (_INT, [_P, _I32, _INFO]),
    "cnn_trainer_get_param": (_INT, [_P, _I32, _P, ctypes.c_size_t]),
    "cnn_trainer_set_param": (_INT, [_P, _I32, _P, ctypes.c_size_t]),
    "cnn_trainer_save": (_INT, [_P, ctypes.c_char_p]),
    "cnn_trainer_load": (_INT, [_P, ctypes.c_char_p]),
    "cnn_trainer_set_lr": (_INT, [_P, ctypes.c_float]),
    "cnn_trainer_lr": (ctypes.c_float, [_P]),
    "cnn_trainer_steps": (_I64, [_P]),
    "cnn_status_string": (ctypes.c_char_p, [_INT]),
    "cnn_last_error": (ctypes.c_char_p, []),
}


class TrainError(CnncError):
    """A training call failed: a label out of range, a loss that is not finite, a weights
    file that could not be read or written."""


def _shape(info):
    return tuple(int(info.dims[i]) for i in range(info.rank))


class Trainer:
    """A training model.so: trainer = cnnc.Trainer("mlp_train.so", threads=2, seed=0).

    step(x, y) runs forward, loss, backward and the optimizer's update and returns the
    batch's mean loss; compute_gradients(x, y), gradients() and apply_gradients() are
    the same step in parts; evaluate(x, y) gives (loss, outputs) in evaluation mode;
    params() the weights by name; save()/load() .safetensors files."""

    def __init__(self, path, threads=0, seed=0, _tmpdir=None):
        self._tmpdir = _tmpdir
        self._handle = None
        self._lock = threading.Lock()
        self.path = os.path.realpath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(2, "no such training model", path)
        _lib._check_elf(self.path)
        try:
            self._so = ctypes.CDLL(self.path, mode=ctypes.RTLD_LOCAL)
        except OSError as e:
            raise LoadError("cannot load the training model: %s" % e) from None
        self._fn = {}
        for name, (restype, argtypes) in _FUNCTIONS.items():
            f = getattr(self._so, name, None)
            if f is None:
                raise LoadError("'%s' is not a cnnc training model: it has no %s"
                                % (path, name))
            f.restype, f.argtypes = restype, argtypes
            self._fn[name] = f
        opt = TrainOptions(TRAIN_API_VERSION, int(threads), int(seed))
        handle = _P()
        self._check(self._fn["cnn_trainer_create"](ctypes.byref(opt), ctypes.byref(handle)))
        self._handle = handle
        info = _lib.TensorInfo()
        self._check(self._fn["cnn_trainer_input_info"](handle, ctypes.byref(info)))
        self.input_shape = _shape(info)
        kind = _INT()
        self._check(self._fn["cnn_trainer_label_info"](handle, ctypes.byref(kind),
                                                       ctypes.byref(info)))
        self.label_kind = "class" if kind.value == LABEL_CLASS else "target"
        self.label_shape = _shape(info)
        self._check(self._fn["cnn_trainer_output_info"](handle, ctypes.byref(info)))
        self.output_shape = _shape(info)
        self.batch = int(self._fn["cnn_trainer_batch"](handle))
        self.param_names, self.param_shapes = [], []
        for i in range(self._fn["cnn_trainer_num_params"](handle)):
            self._check(self._fn["cnn_trainer_param_info"](handle, i, ctypes.byref(info)))
            self.param_names.append(info.name.decode())
            self.param_shapes.append(_shape(info))
        self.num_trainable = int(self._fn["cnn_trainer_num_trainable"](handle))

    # ---- calls --------------------------------------------------------------------

    def _check(self, status):
        if status == 0:
            return
        detail = self._fn["cnn_last_error"]().decode("utf-8", "replace")
        text = self._fn["cnn_status_string"](status).decode("utf-8", "replace")
        cls = TrainError if status >= 100 else STATUS_ERRORS.get(status, CnncError)
        raise cls("%s%s" % (text, ": " + detail if detail else ""), status, detail)

    def _live(self):
        if self._handle is None:
            raise ClosedError("the trainer is closed")
        return self._handle

    @staticmethod
    def _tensor(a, shape, dtype, what):
        if not isinstance(a, np.ndarray):
            a = np.asarray(a)
        if a.dtype != dtype:
            raise DtypeError("%s must be %s, got %s" % (what, np.dtype(dtype).name, a.dtype))
        if tuple(a.shape) != tuple(shape):
            raise ShapeError("%s must have shape %s, got %s" % (what, tuple(shape), a.shape))
        if not a.flags.c_contiguous:
            raise ContiguityError("%s must be C-contiguous" % what)
        return a, _lib.Tensor(a.ctypes.data, a.nbytes)

    def _xy(self, x, y):
        x, tx = self._tensor(x, self.input_shape, np.float32, "x")
        ydt = np.int64 if self.label_kind == "class" else np.float32
        y, ty = self._tensor(y, self.label_shape, ydt, "labels")
        return (x, y), tx, ty

    def step(self, x, y):
        """One training step on a batch; the batch's mean loss before the update."""
        keep, tx, ty = self._xy(x, y)
        loss = ctypes.c_float()
        with self._lock:
            self._check(self._fn["cnn_trainer_step"](self._live(), ctypes.byref(tx),
                                                     ctypes.byref(ty), ctypes.byref(loss)))
        return float(loss.value)

    def compute_gradients(self, x, y):
        keep, tx, ty = self._xy(x, y)
        loss = ctypes.c_float()
        with self._lock:
            self._check(self._fn["cnn_trainer_compute_gradients"](
                self._live(), ctypes.byref(tx), ctypes.byref(ty), ctypes.byref(loss)))
        return float(loss.value)

    def gradients(self):
        """The gradients of the trainable parameters by name: numpy views of the
        instance's buffer (writable until apply_gradients)."""
        data, count = _F(), ctypes.c_size_t()
        with self._lock:
            self._check(self._fn["cnn_trainer_gradients"](self._live(), ctypes.byref(data),
                                                          ctypes.byref(count)))
        flat = np.ctypeslib.as_array(data, shape=(count.value,))
        out, at = {}, 0
        for name, shape in zip(self.param_names[:self.num_trainable], self.param_shapes):
            n = int(np.prod(shape, dtype=np.int64))
            out[name] = flat[at:at + n].reshape(shape)
            at += n
        return out

    def apply_gradients(self):
        with self._lock:
            self._check(self._fn["cnn_trainer_apply_gradients"](self._live()))

    def evaluate(self, x, y):
        """(mean loss, outputs) in evaluation mode; changes nothing."""
        keep, tx, ty = self._xy(x, y)
        out = np.empty(self.output_shape, np.float32)
        to = _lib.Tensor(out.ctypes.data, out.nbytes)
        loss = ctypes.c_float()
        with self._lock:
            self._check(self._fn["cnn_trainer_evaluate"](
                self._live(), ctypes.byref(tx), ctypes.byref(ty), ctypes.byref(loss),
                ctypes.byref(to)))
        return float(loss.value), out

    def params(self):
        """Every tensor of the model (parameters, then buffers) by name, as copies."""
        out = {}
        with self._lock:
            h = self._live()
            for i, (name, shape) in enumerate(zip(self.param_names, self.param_shapes)):
                a = np.empty(shape, np.float32)
                self._check(self._fn["cnn_trainer_get_param"](h, i, a.ctypes.data, a.nbytes))
                out[name] = a
        return out

    def set_params(self, values):
        """Sets the tensors named in `values` (a dict of arrays); others keep theirs."""
        with self._lock:
            h = self._live()
            for name, v in values.items():
                if name not in self.param_names:
                    raise KeyError("the model has no tensor '%s'" % name)
                i = self.param_names.index(name)
                a, _ = self._tensor(np.ascontiguousarray(v, np.float32), self.param_shapes[i],
                                    np.float32, name)
                self._check(self._fn["cnn_trainer_set_param"](h, i, a.ctypes.data, a.nbytes))

    def save(self, path):
        with self._lock:
            self._check(self._fn["cnn_trainer_save"](self._live(), os.fsencode(path)))

    def load(self, path):
        with self._lock:
            self._check(self._fn["cnn_trainer_load"](self._live(), os.fsencode(path)))

    @property
    def lr(self):
        return float(self._fn["cnn_trainer_lr"](self._live()))

    @lr.setter
    def lr(self, value):
        with self._lock:
            self._check(self._fn["cnn_trainer_set_lr"](self._live(), float(value)))

    @property
    def steps(self):
        return int(self._fn["cnn_trainer_steps"](self._live()))

    def close(self):
        with self._lock:
            if self._handle is not None:
                self._fn["cnn_trainer_destroy"](self._handle)
                self._handle = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def compile_train(source, output=None, weights=None, batch=None, *, threads=0, seed=0,
                  **flags):
    """Compiles a training model (cnnc SOURCE --train -o OUTPUT) and loads it.
    loss="cross_entropy"|"mse", optimizer="sgd"|"adam"|"adamw", lr, momentum,
    weight_decay, nesterov, beta1, beta2, eps, random_weights and every other keyword
    are cnnc's flags; output by default a temporary file living as long as the Trainer."""
    tmpdir = tempfile.mkdtemp(prefix="cnnc-") if output is None else None
    try:
        out = os.path.join(tmpdir, "train.so") if output is None else os.fspath(output)
        cmd = [find_cnnc(), os.fspath(source), "--train", "-o", out]
        for key, value in dict(flags, weights=weights, batch=batch).items():
            cmd += _flag(key, value)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           errors="replace")
        if r.returncode != 0:
            raise CompileError(cmd, r.returncode, r.stderr or r.stdout)
        return Trainer(out, threads, seed, _tmpdir=tmpdir)
    except BaseException:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
