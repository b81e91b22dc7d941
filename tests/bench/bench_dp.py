"""bench_dp.py: DP-SGD's cost. The tanh CNN of models/cnn.h on B = 256 random
28 x 28 images, mean cross-entropy, SGD momentum 0.9, one thread each side:
  cliplab plain step  vs cliplab DP step       (target: DP at most 1.5x plain;
                                                Opacus's CI allowed 3.6x for linear layers)
  torch plain step    vs torch DP step with functorch vmap(grad(...)) per-example
                      gradients, clip to C = 1, sum, noise sigma = 1, / B
                                               (target: ours at least 2.5x faster)
Medians of several steps after a warm-up, the sides interleaved in rounds.
"""
import os
import statistics
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from functorch import grad, make_functional, vmap

from benchlib import time_steps

REPS, WARM, ROUNDS = 8, 2, 3
B = 256
torch.set_num_threads(1)
torch.manual_seed(0)

model = nn.Sequential(nn.Conv2d(1, 16, 8, 2, padding=2), nn.Tanh(), nn.MaxPool2d(2, 1),
                      nn.Conv2d(16, 32, 4, 2), nn.Tanh(), nn.MaxPool2d(2, 1), nn.Flatten(),
                      nn.Linear(512, 32), nn.Tanh(), nn.Linear(32, 10))
x, y = torch.randn(B, 1, 28, 28), torch.randint(0, 10, (B,))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
fmodel, _ = make_functional(model)


def plain():
    opt.zero_grad(set_to_none=False)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def loss1(params, x1, y1):
    return F.cross_entropy(fmodel(params, x1.unsqueeze(0)), y1.unsqueeze(0))


def dp():
    params = tuple(model.parameters())
    pg = vmap(grad(loss1), in_dims=(None, 0, 0))(params, x, y)
    norms = torch.stack([g.reshape(B, -1).norm(dim=1) for g in pg]).norm(dim=0)
    f = (1.0 / (norms + 1e-6)).clamp(max=1.0)
    with torch.no_grad():
        for p, g in zip(params, pg):
            s = torch.einsum("i,i...->...", f, g)
            p.grad = (s + torch.randn_like(s)) / B
    opt.step()


def run_c(binary, mode):
    out = subprocess.run([binary, str(REPS), mode], check=True, capture_output=True, text=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.strip().splitlines())}


binary = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build/bench", "bench_dp")
time_steps(plain, WARM)
time_steps(dp, WARM)
tp, td, cp, cd = [], [], [], []
for _ in range(ROUNDS):
    tp.append(statistics.median(time_steps(plain, REPS)))
    td.append(statistics.median(time_steps(dp, REPS)))
    cp.append(run_c(binary, "plain")["c_step_ms"])
    cd.append(run_c(binary, "dp")["c_step_ms"])
tp, td, cp, cd = (statistics.median(v) for v in (tp, td, cp, cd))
print(f"dp: tanh CNN step, batch 256, 1 thread: cliplab plain {cp:.1f} ms, DP {cd:.1f} ms "
      f"(DP/plain x{cd / cp:.2f}, target <= 1.5); torch plain {tp:.1f} ms, functorch vmap DP "
      f"{td:.1f} ms (x{td / tp:.2f}); speed-up of our DP step over torch's x{td / cd:.2f} "
      f"(target >= 2.5)", flush=True)
