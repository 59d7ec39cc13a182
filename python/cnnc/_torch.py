"""from_torch(): a PyTorch module exported to ONNX and compiled by cnnc."""

import os
import shutil
import tempfile

from ._compile import compile


def from_torch(module, example_input, **flags):
    """Exports `module` with torch.onnx.export (opset 17, eval mode, batch axis dynamic)
    on `example_input` (a tensor, or a tuple of tensors for several inputs), compiles it
    with --batch=example_input.shape[0] (of the first input) and returns the Model.
    Inputs are named input (input0, input1, ... for several), outputs output (output0,
    ...). Keywords are compile()'s: batch=N overrides the batch, threads and device go
    to load()."""
    import torch

    args = example_input if isinstance(example_input, tuple) else (example_input,)
    with torch.no_grad():
        was_training = module.training
        module.eval()
        try:
            result = module(*args)
        finally:
            module.train(was_training)
    nout = len(result) if isinstance(result, (tuple, list)) else 1
    names = lambda base, n: [base] if n == 1 else ["%s%d" % (base, i) for i in range(n)]
    inputs, outputs = names("input", len(args)), names("output", nout)
    tmpdir = tempfile.mkdtemp(prefix="cnnc-torch-")
    try:
        path = os.path.join(tmpdir, "model.onnx")
        with torch.no_grad():
            torch.onnx.export(module, args, path, opset_version=17, input_names=inputs,
                              output_names=outputs,
                              dynamic_axes={n: {0: "batch"} for n in inputs + outputs})
        flags.setdefault("batch", int(args[0].shape[0]))
        return compile(path, **flags)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
