"""A model.so opened with ctypes: the structs and functions of include/cnnc/model.h, the
checks made before dlopen (as tools/model_api.h makes them), and dlclose.

ctypes.CDLL releases the GIL around every foreign call, so instances of models run
concurrently from Python threads."""

import ctypes
import os
import struct
import threading

from ._errors import LoadError

try:
    from _ctypes import dlclose as _dlclose
except ImportError:  # not POSIX: the library stays loaded
    _dlclose = None

API_VERSION = 2  # CNN_API_VERSION of the header this package follows
MAX_RANK = 6
DEVICE_DEFAULT, DEVICE_CPU, DEVICE_CUDA = 0, 1, 2
F32 = 1


class Options(ctypes.Structure):
    _fields_ = [("api_version", ctypes.c_uint32), ("num_threads", ctypes.c_int32),
                ("device", ctypes.c_int), ("device_index", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("dims", ctypes.c_int64 * MAX_RANK), ("size", ctypes.c_size_t)]


class KernelInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("op", ctypes.c_char_p), ("flops", ctypes.c_int64),
                ("calls", ctypes.c_int64), ("seconds", ctypes.c_double)]


_P = ctypes.c_void_p  # cnn_model *
_I32, _INT = ctypes.c_int32, ctypes.c_int
# name: (restype, argtypes, required); the optional ones are missing from a model.so
# compiled by an older cnnc.
_FUNCTIONS = {
    "cnn_model_create": (_INT, [ctypes.POINTER(Options), ctypes.POINTER(_P)], True),
    "cnn_model_destroy": (None, [_P], True),
    "cnn_model_num_inputs": (_I32, [_P], True),
    "cnn_model_num_outputs": (_I32, [_P], True),
    "cnn_model_input_info": (_INT, [_P, _I32, ctypes.POINTER(TensorInfo)], True),
    "cnn_model_output_info": (_INT, [_P, _I32, ctypes.POINTER(TensorInfo)], True),
    "cnn_model_num_threads": (_I32, [_P], True),
    "cnn_model_run": (_INT, [_P, ctypes.POINTER(Tensor), _I32, ctypes.POINTER(Tensor), _I32],
                      True),
    "cnn_status_string": (ctypes.c_char_p, [_INT], True),
    "cnn_model_set_profiling": (_INT, [_P, _INT], False),
    "cnn_model_num_kernels": (_I32, [_P], False),
    "cnn_model_kernel_info": (_INT, [_P, _I32, ctypes.POINTER(KernelInfo)], False),
    "cnn_model_device": (_INT, [_P], False),
    "cnn_last_error": (ctypes.c_char_p, [], False),
    "cnn_model_verify": (_INT, [_P], False),
}


def _check_elf(path):
    """dlopen maps a shared object's segments as its headers describe them, and a process
    touching a mapped page past the end of a truncated file dies of SIGBUS: so the
    program headers and loadable segments must lie inside the file. What is not an ELF
    file, or not a 64-bit little-endian one, is left to dlopen to refuse."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        if phentsize != 56:
            raise LoadError("%s: damaged: program header entries of %d bytes"
                            % (path, phentsize))
        if phoff + phnum * 56 > size:
            raise LoadError("%s: truncated: its program headers need %d bytes, the file has %d"
                            % (path, phoff + phnum * 56, size))
        f.seek(phoff)
        table = f.read(phnum * 56)
    for i in range(phnum):
        ptype, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", table, i * 56)
        if ptype == 1 and offset + filesz > size:  # PT_LOAD
            raise LoadError("%s: truncated: its loadable segment %d needs %d bytes, the "
                            "file has %d" % (path, i, offset + filesz, size))


# The model.so files loaded, by path: [(st_dev, st_ino), number of Library objects].
# The dynamic loader gives back the library already loaded under the same path, or from
# the same device and inode, without reading the file again: a file replaced (cnnc
# renames its output into place) or a deleted file's inode reused while the old one is
# still loaded would silently run the old code.
_loaded = {}
# Reentrant: a model collected by the garbage collector during a load closes itself in
# the loading thread.
_loaded_lock = threading.RLock()


def _claim(path):
    st = os.stat(path)
    ident = (st.st_dev, st.st_ino)
    for other, (other_ident, _) in list(_loaded.items()):
        if other == path and other_ident != ident:
            raise LoadError("%s: replaced on disk while a model loaded from the old file is "
                            "open in this process: close that model first" % path)
        if other != path and other_ident == ident:
            try:
                same = os.stat(other)
                same = (same.st_dev, same.st_ino) == ident
            except OSError:
                same = False
            if not same:
                raise LoadError("%s: the system would give back '%s', deleted but still "
                                "loaded by an open model: close that model first"
                                % (path, other))
    entry = _loaded.setdefault(path, [ident, 0])
    entry[1] += 1


def _release(path):
    entry = _loaded.get(path)
    if entry:
        entry[1] -= 1
        if entry[1] == 0:
            del _loaded[path]


class Library:
    """The functions of one model.so, by their C names (None for an optional one the
    file lacks). close() unloads it once no instance of it is left."""

    def __init__(self, path):
        self.path = os.path.realpath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(2, "no such model.so", path)
        _check_elf(self.path)
        with _loaded_lock:
            _claim(self.path)
            try:
                self._lib = ctypes.CDLL(self.path, mode=ctypes.RTLD_LOCAL)
            except OSError as e:
                _release(self.path)
                raise LoadError("cannot load the model: %s" % e) from None
        self.fn = {}
        for name, (restype, argtypes, required) in _FUNCTIONS.items():
            f = getattr(self._lib, name, None)
            if f is None and required:
                self.close()
                raise LoadError("'%s' is not a cnnc model: it has no %s" % (path, name))
            if f is not None:
                f.restype, f.argtypes = restype, argtypes
            self.fn[name] = f

    def last_error(self):
        """cnn_last_error() of this thread: call it right after the failing call."""
        f = self.fn.get("cnn_last_error")
        return f().decode("utf-8", "replace") if f else ""

    def status_string(self, status):
        return self.fn["cnn_status_string"](int(status)).decode("utf-8", "replace")

    def close(self):
        if self._lib is None:
            return
        handle, self._lib, self.fn = self._lib._handle, None, {}
        with _loaded_lock:
            if _dlclose:
                _dlclose(handle)
            _release(self.path)
