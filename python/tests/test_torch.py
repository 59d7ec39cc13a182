"""cnnc.from_torch: torchvision models (seeded weights, batch-norm statistics randomized
as tools/torch_check.py does) and a module of two inputs and two outputs, against PyTorch
at max|cnnc - torch| / max|torch| <= 1e-4."""

import os
import sys

import numpy as np
import pytest

import cnnc
from conftest import ROOT

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
sys.path.insert(0, os.path.join(ROOT, "tools"))
from torch_check import perturb_batchnorm  # noqa: E402


def relative_error(got, ref):
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_torchvision(name):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        perturb_batchnorm(model, gen)
        x = torch.randn(2, 3, 224, 224, generator=gen)
        ref = model(x).numpy()
    with cnnc.from_torch(model, x, threads=2) as m:
        assert m.inputs == [cnnc.TensorInfo("input", (2, 3, 224, 224), np.dtype(np.float32))]
        assert [(t.name, t.shape) for t in m.outputs] == [("output", (2, 1000))]
        assert relative_error(m(x.numpy()), ref) <= 1e-4
    assert not model.training


class TwoWays(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 6)

    def forward(self, a, b):
        h = torch.relu(self.conv(a) + b)
        return self.fc(torch.flatten(h, 1)), torch.sigmoid(h)


def test_two_inputs_two_outputs():
    torch.manual_seed(0)
    module = TwoWays()
    a, b = torch.randn(3, 3, 8, 8), torch.randn(3, 4, 8, 8)
    with torch.no_grad():
        refs = [y.numpy() for y in module(a, b)]
    with cnnc.from_torch(module, (a, b)) as m:
        assert [t.name for t in m.inputs] == ["input0", "input1"]
        assert [(t.name, t.shape) for t in m.outputs] == [("output0", (3, 6)),
                                                          ("output1", (3, 4, 8, 8))]
        ys = m(a.numpy(), b.numpy())
        assert list(ys) == ["output0", "output1"]
        for y, ref in zip(ys.values(), refs):
            assert relative_error(y, ref) <= 1e-4
    assert module.training  # left as it was
    with cnnc.from_torch(module, (a[:1], b[:1]), batch=5) as m:
        assert m.inputs[0].shape == (5, 3, 8, 8)
