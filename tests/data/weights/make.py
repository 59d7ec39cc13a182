"""Regenerates the files that tests/test_weights.c binds and checks:
/usr/bin/python3 tests/data/weights/make.py (from the repository root).

small_net.safetensors is the state_dict of a tiny PyTorch model, written the
way safetensors.torch.save_file writes it (largest dtype first, then by name,
with __metadata__ and the batch norm's int64 num_batches_tracked), so binding
it checks our reader against PyTorch's naming and layout. small_net_f16 holds
the same weights in float16; output*.npy are PyTorch's outputs for input.npy."""
import json
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(256, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.bn1(self.conv1(x))), 1))


def save(state, path):
    items = sorted(state.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, blobs, offset = {}, [], 0
    for name, t in items:
        data = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(HERE, path), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    torch.manual_seed(0)
    net = SmallNet().eval()
    with torch.no_grad():
        net.bn1.weight.uniform_(0.5, 1.5)
        net.bn1.bias.uniform_(-0.5, 0.5)
        net.bn1.running_mean.uniform_(-0.5, 0.5)
        net.bn1.running_var.uniform_(0.5, 2.0)
    net.bn1.num_batches_tracked.fill_(7)
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    np.save(os.path.join(HERE, "input.npy"), x.numpy())
    with torch.no_grad():
        np.save(os.path.join(HERE, "output.npy"), net(x).numpy())
        save(net.state_dict(), "small_net.safetensors")
        half = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
        save(half, "small_net_f16.safetensors")
        net.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in half.items()})
        np.save(os.path.join(HERE, "output_f16.npy"), net(x).numpy())


if __name__ == "__main__":
    main()
