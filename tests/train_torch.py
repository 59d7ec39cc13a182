#!/usr/bin/python3
"""Checks compiled training (cnnc --train) against PyTorch autograd and torch.optim.

  gradients: small networks that together use every op with a gradient (conv2d with
      groups, stride, asymmetric padding and dilation; dense; batch-norm in training
      mode; every activation; add, mul, concat, chunk; max, average, global and
      adaptive pooling; flatten; both losses). Batch 2, at 1 and 2 threads: the loss
      and every gradient equal PyTorch's within 1e-4 (max|d| / max|ref| per tensor),
      and the running statistics after the step equal PyTorch's.
  trajectories: mnist_cnn, 50 steps of SGD with momentum, Nesterov and weight decay;
      the mlp, 30 steps of AdamW: the loss of every step within 1e-4 relative of
      PyTorch's, the final weights within 1e-3. resnet18 at batch 4 on 64x64 inputs,
      20 steps of Adam: PyTorch itself does not reproduce these limits there (on 2
      threads in channels-last memory against 1 thread, see trajectory()), so cnnc
      must stay within twice what PyTorch differs from itself.

Usage: train_torch.py BUILD_DIR   (exit 0 pass, 1 fail, 77 no torch)"""

import copy
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
    # A gradient that is zero in exact arithmetic (a conv bias before a batch-norm in
    # training mode) is rounding noise in both: it is compared against the scale of
    # the other gradients instead of its own.
    scale = max(float(p.grad.abs().max()) for p in model.parameters())
    for pname, p in model.named_parameters():
        ref_g = p.grad.numpy()
        e = float(np.max(np.abs(grads[pname] - ref_g))) / max(float(np.max(np.abs(ref_g))),
                                                              1e-3 * scale)
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

def torch_run(model, steps, make_opt, shape, classes, threads=1, channels_last=False):
    """PyTorch's losses and final weights over `steps` seeded batches."""
    torch.set_num_threads(threads)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_opt(model.parameters())
    gen = torch.Generator().manual_seed(11)
    losses = []
    model.train()
    for step in range(steps):
        x = torch.randn(shape, generator=gen)
        y = torch.randint(0, classes, (shape[0],), generator=gen)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    torch.set_num_threads(1)
    return losses, torch_state(model)


def deviation(losses, state, ref_losses, ref_state):
    """The largest relative loss difference of a step, and of the final weights the
    largest max|d| / max|ref| of a tensor, with its name."""
    dl = max(abs(a - b) / abs(b) for a, b in zip(losses, ref_losses))
    wname = max(ref_state, key=lambda k: rel(state[k], ref_state[k]))
    return dl, rel(state[wname], ref_state[wname]), wname


def trajectory(tmp, name, text, model, steps, make_opt, flags, batch, chaotic=False):
    """cnnc's steps against PyTorch's from the same weights and batches. A chaotic case
    (resnet18 on random labels: batch statistics of 2x2 maps at batch 4, Adam turning
    gradients of 1e-8 into steps of +-lr) is one where PyTorch does not reproduce
    itself: its limits are twice what PyTorch on 2 threads in channels-last memory
    differs from PyTorch on 1 thread, and at least the strict ones."""
    torch.manual_seed(3)
    src = write(tmp, name + ".cnn", text)
    t = cnnc.compile_train(src, os.path.join(tmp, name + "_traj.so"), batch=batch, threads=2,
                           **flags)
    init = torch_state(model)
    t.set_params(init)
    shape, classes = t.input_shape, t.output_shape[1]
    again = copy.deepcopy(model) if chaotic else None
    ref_losses, ref_state = torch_run(model, steps, make_opt, shape, classes)
    gen = torch.Generator().manual_seed(11)
    losses = []
    for step in range(steps):
        x = torch.randn(shape, generator=gen)
        y = torch.randint(0, classes, (shape[0],), generator=gen)
        losses.append(t.step(x.numpy(), y.numpy().astype(np.int64)))
    dl, dw, wname = deviation(losses, t.params(), ref_losses, ref_state)
    t.close()
    ltol, wtol = LOSS_TOL, WEIGHT_TOL
    if chaotic:
        self_losses, self_state = torch_run(again, steps, make_opt, shape, classes, 2, True)
        sl, sw, sname = deviation(self_losses, self_state, ref_losses, ref_state)
        print("  %s: PyTorch against itself: loss %.2e, weights %.2e (%s)" % (name, sl, sw,
                                                                           sname))
        ltol, wtol = max(ltol, 2 * sl), max(wtol, 2 * sw)
    check("%s: loss of each of %d steps" % (name, steps), dl, ltol)
    check("%s: final weights (worst %s)" % (name, wname), dw, wtol)


def resnet18_64():
    text = open(os.path.join(ROOT, "models", "resnet18.cnn")).read()
    return re.sub(r"f32\[N=1, 3, 224, 224\]", "f32[N=1, 3, 64, 64]", text)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.setdefault("CNNC", os.path.join(sys.argv[1], "tools", "cnnc"))
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
        try:
            import torchvision
        except ImportError:
            print("  resnet18: skipped, needs torchvision")
            torchvision = None
        if torchvision:
            trajectory(tmp, "resnet18", resnet18_64(), torchvision.models.resnet18(), 20,
                       lambda p: torch.optim.Adam(p, lr=1e-3),
                       dict(optimizer="adam", lr=1e-3), batch=4, chaotic=True)
    if failures:
        print("FAILED: %s" % ", ".join(failures))
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
