"""bench_mobilenet.py: one MobileNetV2 training step, ours vs PyTorch, same shapes, one thread.

Two steps, each = zero grads, forward, loss, backward, Adam step (lr 1e-3):
  block: one inverted residual block (16 -> 96 -> 16 channels, expansion 6,
         stride 1, residual, ReLU6, BatchNorm2d in train mode) on a random
         32 x 16 x 28 x 28 input, MSE against a random target;
  net:   the whole default network of models/mobilenet.c (stem conv 3x3
         1 -> 16 stride 2, blocks t:c:n:s = 1:16:1:1, 6:24:2:2, 6:32:2:2, head
         1x1 -> 128, average pool, Linear 128 -> 10; ReLU6, batchnorm) on 32
         random 28 x 28 images, cross-entropy;
  net28: the same network with the stem's stride 1 (planes 28, 14, 7 instead of
         14, 7, 4): not a demo, it shows how the ratio depends on the plane size
         (PyTorch's CPU depthwise convolution is fast on small planes and slow on
         28x28 ones).
Both sides: one thread (OPENBLAS_NUM_THREADS=1 and OMP_NUM_THREADS=1 set by
`make bench`, torch.set_num_threads(1)), medians of several steps after a
warm-up, the two sides interleaved in rounds (benchlib.py). Also prints the
time of one training epoch (60000 images at batch 128) that the C step implies.
"""
import os
import statistics
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchlib import thread_scaling, threads_line, time_steps

REPS, WARM, ROUNDS = 10, 3, 4
B, HW = 32, 28
torch.set_num_threads(1)
torch.manual_seed(0)


def conv_bn(cin, cout, k, stride, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return layers


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        layers = conv_bn(cin, hid, 1, 1) if t != 1 else []
        layers += conv_bn(hid, hid, 3, stride, groups=hid) + conv_bn(hid, cout, 1, 1, act=False)
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


def network(stem_stride=2):
    layers = conv_bn(1, 16, 3, stem_stride)
    cin = 16
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2)]:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers += conv_bn(cin, 128, 1, 1)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def make_step(mode):
    if mode == "block":
        model = InvertedResidual(16, 16, 1, 6)
        x, tgt = torch.randn(B, 16, HW, HW), torch.randn(B, 16, HW, HW)
        loss_fn = lambda: F.mse_loss(model(x), tgt)
    else:
        model = network(1 if mode == "net28" else 2)
        x, y = torch.randn(B, 1, HW, HW), torch.randint(0, 10, (B,))
        loss_fn = lambda: F.cross_entropy(model(x), y)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=False)
        loss_fn().backward()
        opt.step()
    return step, sum(p.numel() for p in model.parameters())


def run_c(binary, mode):
    out = subprocess.run([binary, str(REPS), mode], check=True, capture_output=True, text=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.strip().splitlines())}


binary = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build/bench", "bench_mobilenet")
for mode in ("block", "net", "net28"):
    step, nparams = make_step(mode)
    time_steps(step, WARM)
    t_meds, c_runs = [], []
    for _ in range(ROUNDS):
        t_meds.append(statistics.median(time_steps(step, REPS)))
        c_runs.append(run_c(binary, mode))
    c = {k: statistics.median(r[k] for r in c_runs) for k in c_runs[0]}
    ratios = sorted(t / r["c_step_ms"] for t, r in zip(t_meds, c_runs))
    t_ms, c_ms = statistics.median(t_meds), c["c_step_ms"]
    assert int(c["params"]) == nparams, f"{mode}: C has {int(c['params'])} params, torch {nparams}"
    what = {"block": "inverted residual block step (16 ch, t=6, 28x28, batch 32",
            "net": "whole-network step (default MobileNetV2, the demo's, batch 32",
            "net28": "whole network without the stem's stride (planes 28/14/7, not a demo), batch 32",
            }[mode]
    print(f"mobilenet {what}, {nparams} params, 1 thread): cliplab {c_ms:.2f} ms "
          f"(forward {c['c_fwd_ms']:.1f}, backward {c['c_bwd_ms']:.1f}), pytorch {t_ms:.2f} ms, "
          f"speed-up x{t_ms / c_ms:.2f} (target >= 3; per-round x{ratios[0]:.2f}..x{ratios[-1]:.2f})",
          flush=True)
    if mode != "net28":
        one, two = thread_scaling(binary, REPS, ROUNDS, mode)
        print(threads_line(f"  mobilenet {mode} step", one, two, 1.5), flush=True)
    if mode == "net":
        print(f"mobilenet epoch (60000 images, 1 thread) implied by the batch-32 step: "
              f"cliplab {c_ms * 60000 / B / 1000:.0f} s, pytorch {t_ms * 60000 / B / 1000:.0f} s")
