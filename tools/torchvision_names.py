#!/usr/bin/python3
"""Writes tests/names/MODEL.txt: each state_dict entry of the reference PyTorch model
as "name dim,dim,..." in state_dict order, so the zoo's parameter names are pinned to
torchvision's. Batch-norm num_batches_tracked counters carry no weights and are skipped."""

import os
import sys

try:
    import torch
    import torchvision
except ImportError:
    print("torchvision_names.py: needs torch and torchvision (try /usr/bin/python3)",
          file=sys.stderr)
    sys.exit(77)

from torch import nn

TORCHVISION = ["resnet18", "resnet50", "mobilenet_v2", "vgg16", "squeezenet1_1", "mobilenet_v3_large",
               "efficientnet_b0", "shufflenet_v2_x1_0", "convnext_tiny", "densenet121"]


class MnistCnn(nn.Module):
    """The classic PyTorch MNIST example (models/mnist_cnn.cnn)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


class Mlp(nn.Module):
    """A three-layer perceptron on flattened 28×28 images (models/mlp.cnn)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


LOCAL = {"mnist_cnn": MnistCnn, "mlp": Mlp}


def build(name):
    """The reference module for a zoo model name."""
    if name in LOCAL:
        return LOCAL[name]()
    return getattr(torchvision.models, name)(weights=None)


def names(model):
    """state_dict lines, without batch-norm step counters."""
    return ["%s %s" % (k, ",".join(str(d) for d in v.shape))
            for k, v in model.state_dict().items()
            if not k.endswith(".num_batches_tracked")]


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outdir = os.path.join(root, "tests", "names")
    for name in argv[1:] or list(LOCAL) + TORCHVISION:
        path = os.path.join(outdir, name + ".txt")
        lines = names(build(name))
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        print("%s: %d tensors" % (path, len(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
