#!/usr/bin/python3
"""Checks compiled training (cnnc --train) against PyTorch autograd and torch.optim.

  gradients: small networks that together use every op with a gradient (conv2d with
      groups, stride, asymmetric padding and dilation; dense; batch-norm in training
      mode; every activation; add, mul, concat, chunk; max, average, global and
      adaptive pooling; flatten; both losses). Batch 2, at 1 and 2 threads: the loss
      and every gradient equal PyTorch's within 1e-4 (max|d| / max|ref| per tensor),
      and the running statistics after the step equal PyTorch's.
  trajectories: mnist_cnn, 50 steps of SGD with momentum, Nesterov and weight decay;
      the mlp, 30 steps of AdamW; resnet18 at batch 4 on 64x64 inputs, 20 steps of Adam
      (with --slow only): the loss of every step within 1e-4 relative of PyTorch's,
      the final weights within 1e-3.

Usage: train_torch.py BUILD_DIR [--slow]   (exit 0 pass, 1 fail, 77 no torch)"""

import os
import re
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print("train_torch.py: skipped, needs numpy and torch (%s)" % e, file=sys.stderr)
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import cnnc  # noqa: E402

torch.set_num_threads(1)
GRAD_TOL, LOSS_TOL, WEIGHT_TOL = 1e-4, 1e-4, 1e-3
failures = []


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)) if b.size else 0.0


def check(what, err, tol):
    ok = err <= tol
    print("  %-58s %.2e %s" % (what, err, "ok" if ok else "FAIL (limit %.0e)" % tol))
    if not ok:
        failures.append(what)


# ---- networks in both languages ---------------------------------------------------

CONVS = """network convs(x: f32[N=2, 4, 11, 10]) {
  a = conv2d(x, 6, kernel=3, stride=2, pad=[1, 0, 2, 1]) as c1
  a = relu(batchnorm(a) as bn1)
  b = conv2d(x, 8, kernel=3, dilation=2, pad=2, groups=2) as c2
  b = silu(b)
  b = conv2d(b, 8, kernel=3, pad=1, groups=8, bias=false) as dw
  b = maxpool(hardswish(b), kernel=3, stride=2, pad=1)
  c = concat(a, b)
  parts = chunk(c, 2)
  d = parts[0] * sigmoid(parts[1]) + tanh(parts[1])
  d = avgpool(leaky_relu(d, alpha=0.1), kernel=2, stride=1, ceil_mode=true)
  e = adaptive_avgpool(gelu(d), 3)
  f = global_avgpool(relu6(d) - hardsigmoid(d))
  y = concat(flatten(e), flatten(f))
  return dense(clip(y, -0.5, 0.5), 5) as fc
}
"""


class Convs(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(4, 6, 3, stride=2)
        self.bn1 = nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(4, 8, 3, dilation=2, padding=2, groups=2)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.fc = nn.Linear(7 * 9 + 7, 5)

    def forward(self, x):
        a = self.c1(F.pad(x, (0, 1, 1, 2)))  # [left, right, top, bottom]
        a = F.relu(self.bn1(a))
        b = F.silu(self.c2(x))
        b = F.max_pool2d(F.hardswish(self.dw(b)), 3, 2, 1)
        c = torch.cat([a, b], 1)
        p, q = torch.chunk(c, 2, 1)
        d = p * torch.sigmoid(q) + torch.tanh(q)
        d = F.avg_pool2d(F.leaky_relu(d, 0.1), 2, 1, ceil_mode=True)
        e = F.adaptive_avg_pool2d(F.gelu(d), 3)
        f = F.adaptive_avg_pool2d(F.relu6(d) - F.hardsigmoid(d), 1)
        y = torch.cat([e.flatten(1), f.flatten(1)], 1)
        return self.fc(torch.clamp(y, -0.5, 0.5))


MLP = open(os.path.join(ROOT, "models", "mlp.cnn")).read()
MNIST = open(os.path.join(ROOT, "models", "mnist_cnn.cnn")).read()


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 128), nn.Linear(128, 64), nn.Linear(64, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x.flatten(1))))))


class MnistCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


# ---- helpers ----------------------------------------------------------------------

def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def torch_state(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def labels_for(kind, out_shape, gen):
    if kind == "class":
        return torch.randint(0, out_shape[1], (out_shape[0],), generator=gen)
    return torch.randn(out_shape, generator=gen)


def torch_loss(kind, out, y):
    return F.cross_entropy(out, y) if kind == "class" else F.mse_loss(out, y)


def y_numpy(kind, y):
    return y.numpy().astype(np.int64 if kind == "class" else np.float32)


# ---- gradients --------------------------------------------------------------------

def gradients(tmp, name, text, model, loss, threads):
    torch.manual_seed(1)
    for m in model.modules():  # batch-norm affine parameters away from 1 and 0
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    src = write(tmp, name + ".cnn", text)
    t = cnnc.compile_train(src, os.path.join(tmp, "%s_%s_t%d.so" % (name, loss, threads)),
                           threads=threads, loss=loss.replace("class", "cross_entropy")
                           .replace("target", "mse"), optimizer="sgd", lr=0.1)
    t.set_params(torch_state(model))
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(t.input_shape, generator=gen)
    y = labels_for(t.label_kind, t.output_shape, gen)
    model.train()
    model.zero_grad()
    ref = torch_loss(t.label_kind, model(x), y)
    ref.backward()
    got = t.compute_gradients(x.numpy(), y_numpy(t.label_kind, y))
    tag = "%s %s t%d" % (name, loss, threads)
    check("%s: loss" % tag, rel(got, ref.item()), GRAD_TOL)
    grads = t.gradients()
    worst, wname = 0.0, ""
    for pname, p in model.named_parameters():
        e = rel(grads[pname], p.grad.numpy())
        if e > worst:
            worst, wname = e, pname
    check("%s: %d gradients (worst %s)" % (tag, len(grads), wname), worst, GRAD_TOL)
    t.apply_gradients()
    state, after = torch_state(model), t.params()
    for k in state:
        if "running" in k:
            check("%s: %s" % (tag, k), rel(after[k], state[k]), GRAD_TOL)
    t.close()


# ---- trajectories -----------------------------------------------------------------

def trajectory(tmp, name, text, model, steps, make_opt, flags, batch, shape=None):
    torch.manual_seed(3)
    src = write(tmp, name + ".cnn", text)
    t = cnnc.compile_train(src, os.path.join(tmp, name + "_traj.so"), batch=batch, threads=2,
                           **flags)
    t.set_params(torch_state(model))
    opt = make_opt(model.parameters())
    gen = torch.Generator().manual_seed(11)
    worst = 0.0
    model.train()
    for step in range(steps):
        x = torch.randn(t.input_shape, generator=gen)
        y = torch.randint(0, t.output_shape[1], (t.output_shape[0],), generator=gen)
        opt.zero_grad()
        ref = F.cross_entropy(model(x), y)
        ref.backward()
        opt.step()
        got = t.step(x.numpy(), y.numpy().astype(np.int64))
        worst = max(worst, abs(got - ref.item()) / abs(ref.item()))
    check("%s: loss of each of %d steps" % (name, steps), worst, LOSS_TOL)
    state, after = torch_state(model), t.params()
    wname = max(state, key=lambda k: rel(after[k], state[k]))
    check("%s: final weights (worst %s)" % (name, wname), rel(after[wname], state[wname]),
          WEIGHT_TOL)
    t.close()


def resnet18_64():
    text = open(os.path.join(ROOT, "models", "resnet18.cnn")).read()
    return re.sub(r"f32\[N=1, 3, 224, 224\]", "f32[N=1, 3, 64, 64]", text)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.setdefault("CNNC", os.path.join(sys.argv[1], "tools", "cnnc"))
    slow = "--slow" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        print("gradients against autograd (batch 2):")
        for threads in (1, 2):
            gradients(tmp, "convs", CONVS, Convs(), "class", threads)
            gradients(tmp, "mlp", MLP.replace("N=1", "N=2"), Mlp(), "target", threads)
        print("trajectories against torch.optim:")
        torch.manual_seed(5)
        trajectory(tmp, "mnist_cnn", MNIST, MnistCnn(), 50,
                   lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                             weight_decay=1e-3),
                   dict(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True,
                        weight_decay=1e-3), batch=8)
        trajectory(tmp, "mlp", MLP, Mlp(), 30,
                   lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.05),
                   dict(optimizer="adamw", lr=1e-3, weight_decay=0.05), batch=16)
        if slow:
            import torchvision
            trajectory(tmp, "resnet18", resnet18_64(), torchvision.models.resnet18(), 20,
                       lambda p: torch.optim.Adam(p, lr=1e-3),
                       dict(optimizer="adam", lr=1e-3), batch=4)
    if failures:
        print("FAILED: %s" % ", ".join(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
