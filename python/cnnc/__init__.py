"""cnnc from Python: load a model.so compiled by cnnc and run it on numpy arrays, compile
.cnn and .onnx models (or onnx.ModelProto objects), and compile PyTorch modules.

    import cnnc
    m = cnnc.compile("models/mnist_cnn.cnn", weights="models/mnist_cnn.safetensors")
    y = m(x)            # x: float32, C-contiguous, of shape m.inputs[0].shape

The C API it wraps is include/cnnc/model.h; ctypes calls it with the GIL released."""

from ._compile import compile, find_cnnc
from ._errors import (BusyError, ClosedError, CnncError, CompileError, ContiguityError,
                      CorruptError, DeviceError, Diagnostic, DtypeError, InputError,
                      LoadError, OutOfMemoryError, ShapeError, Status, VersionError)
from ._image import preprocess_image
from ._model import KernelProfile, Model, Profile, TensorInfo, load
from ._torch import from_torch
from ._train import TrainError, Trainer, compile_train

__version__ = "0.1.0"

__all__ = [
    "BusyError", "ClosedError", "CnncError", "CompileError", "ContiguityError",
    "CorruptError", "DeviceError", "Diagnostic", "DtypeError", "InputError", "KernelProfile",
    "LoadError", "Model", "OutOfMemoryError", "Profile", "ShapeError", "Status",
    "TensorInfo", "TrainError", "Trainer", "VersionError", "compile", "compile_train",
    "find_cnnc", "from_torch", "load", "preprocess_image",
]
