"""bench_wgan.py: one WGAN critic update, ours vs PyTorch, same shapes, one thread.

Reference size (gan_toy.py): generator and critic 3 x 512 ReLU MLPs, noise in
R^2, batch 256 of 8gaussians.
  clip: fake = G(noise) under no_grad, loss D(fake).mean() - D(real).mean(),
        backward, RMSprop(5e-5), clamp_(-0.01, 0.01) of every critic parameter
        (martinarjovsky/WassersteinGAN main.py).
  gp:   the same loss + 10 * mean((||dD/dxhat||-1)^2) with the input gradient
        from torch.autograd.grad(create_graph=True), Adam(1e-4, (0.5, 0.9)), no
        clamp (the usual PyTorch port of gan_toy.py).
Both sides draw their batch and noise inside the step. One thread each
(OPENBLAS_NUM_THREADS=1 from `make bench`, torch.set_num_threads(1)); the two
sides interleaved in rounds; medians.
"""
import math
import os
import statistics
import subprocess
import sys

import torch

from benchlib import thread_scaling, threads_line, time_steps

REPS, WARM, ROUNDS = 15, 3, 5
B, H = 256, 512
torch.set_num_threads(1)
torch.manual_seed(0)
binary = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build/bench", "bench_wgan")


def mlp(i, o):
    return torch.nn.Sequential(torch.nn.Linear(i, H), torch.nn.ReLU(), torch.nn.Linear(H, H),
                               torch.nn.ReLU(), torch.nn.Linear(H, H), torch.nn.ReLU(),
                               torch.nn.Linear(H, o))


G, D = mlp(2, 2), mlp(2, 1)
s = 2.0 / math.sqrt(2)
centres = torch.tensor([[2, 0], [-2, 0], [0, 2], [0, -2], [s, s], [s, -s], [-s, s], [-s, -s]])


def real_batch():
    return (torch.randn(B, 2) * 0.02 + centres[torch.randint(0, 8, (B,))]) / 1.414


opt_clip = torch.optim.RMSprop(D.parameters(), lr=5e-5)
opt_gp = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.5, 0.9))


def clip_step():
    real = real_batch()
    with torch.no_grad():
        fake = G(torch.randn(B, 2))
    opt_clip.zero_grad(set_to_none=False)
    loss = D(fake).mean() - D(real).mean()
    loss.backward()
    opt_clip.step()
    with torch.no_grad():
        for p in D.parameters():
            p.clamp_(-0.01, 0.01)


def gp_step():
    real = real_batch()
    with torch.no_grad():
        fake = G(torch.randn(B, 2))
    opt_gp.zero_grad(set_to_none=False)
    alpha = torch.rand(B, 1)
    xhat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(D(xhat).sum(), xhat, create_graph=True)
    gp = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    loss = D(fake).mean() - D(real).mean() + 10.0 * gp
    loss.backward()
    opt_gp.step()


def c_ms(mode):
    out = subprocess.run([binary, str(REPS), mode], check=True, capture_output=True,
                         text=True).stdout
    return float(out.split()[1])


for mode, step, what in (("clip", clip_step, "critic update, RMSProp + weight clip"),
                         ("gp", gp_step, "critic update, gradient penalty + Adam")):
    time_steps(step, WARM)
    t, c, ratios = [], [], []
    for _ in range(ROUNDS):
        t.append(statistics.median(time_steps(step, REPS)))
        c.append(c_ms(mode))
        ratios.append(t[-1] / c[-1])
    tm, cm = statistics.median(t), statistics.median(c)
    ratios.sort()
    print(f"wgan {what} (3x{H} MLPs, batch {B}, 1 thread): cliplab {cm:.2f} ms, "
          f"pytorch {tm:.2f} ms, speed-up x{tm / cm:.2f} (target >= 1.3; "
          f"per-round x{ratios[0]:.2f}..x{ratios[-1]:.2f})", flush=True)
    one, two = thread_scaling(binary, REPS, ROUNDS, mode)
    print(threads_line(f"  wgan {mode} critic update", one, two, 1.7), flush=True)
