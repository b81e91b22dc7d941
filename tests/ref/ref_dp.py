"""ref_dp.py: fixtures for tests/test_dp.c (per-example gradients, maxpool2d, a DP-SGD step).

Run with Debian's python3 (torch 1.13 + functorch). Everything is seeded.

  mp_*    torch max_pool2d (k 2 stride 1 and k 3 stride 2) forward and the
          gradient of sum(out * r) with respect to x.
  cnn_*   the tanh CNN of models/cnn.h with weights drawn at PyTorch's init scale on a batch of B = 5
          28x28 images: per-example gradients of each example's cross-entropy
          by functorch vmap(grad(...)) (cnn_pg_<param> [B, ...]) and their
          L2 norms over all parameters (cnn_norm [B]); the relu variant too
          (cnnr_*), whose norms are larger.
  lin_*   a linear layer over sequences x[B,T,IN] (the ghost-norm path):
          loss_i = sum(linear(x_i) * r_i); per-example gradients by vmap(grad).
  step_*  one DP-SGD step with sigma = 0 on the tanh CNN above: the sum over
          examples of min(1, C / (norm_i + 1e-6)) g_i, divided by the expected
          batch 4 (the batch holds 5), written from the vmap gradients; C = 0.5
          and C = 1e9 (nothing clipped: the ordinary mean-gradient times B/4).
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from functorch import grad, vmap

sys.path.insert(0, os.path.dirname(__file__))
from tfile import save  # noqa: E402

torch.manual_seed(0)
out = {}

# ---- maxpool2d
x = torch.randn(2, 3, 7, 6, dtype=torch.float32)
x[0, 0, 1, 1] = x[0, 0, 1, 2]  # a tie: the first maximum wins
out["mp_x"] = x
for name, k, s in [("k2s1", 2, 1), ("k3s2", 3, 2)]:
    xx = x.clone().requires_grad_(True)
    y = F.max_pool2d(xx, k, s)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    out[f"mp_{name}_y"] = y
    out[f"mp_{name}_r"] = r
    out[f"mp_{name}_dx"] = xx.grad

# ---- the CNN
NAMES = ["conv1.w", "conv1.b", "conv2.w", "conv2.b", "fc1.w", "fc1.b", "fc2.w", "fc2.b"]
SHAPES = [(16, 1, 8, 8), (16,), (32, 16, 4, 4), (32,), (32, 512), (32,), (10, 32), (10,)]


def cnn(params, x, act):
    w1, b1, w2, b2, w3, b3, w4, b4 = params
    h = F.max_pool2d(act(F.conv2d(x, w1, b1, stride=2, padding=2)), 2, 1)
    h = F.max_pool2d(act(F.conv2d(h, w2, b2, stride=2)), 2, 1)
    h = h.flatten(1)
    h = act(F.linear(h, w3, b3))
    return F.linear(h, w4, b4)


B = 5
FAN_IN = [64, 64, 256, 256, 512, 512, 32, 32]
# PyTorch's default init scale (U(-1/sqrt(fan_in), 1/sqrt(fan_in))), as models/cnn.c
params = [(torch.rand(s) * 2 - 1) / fi ** 0.5 for s, fi in zip(SHAPES, FAN_IN)]
yb = torch.tensor([3, 1, 4, 1, 5])


def pool_margin(x, act):
    """Smallest gap between the two largest values of any pooling window (both
    pools; windows whose maximum is an exact 0 aside): a gap near 0 lets float32
    rounding pick another winner."""
    w1, b1, w2, b2 = params[:4]
    h1 = act(F.conv2d(x, w1, b1, stride=2, padding=2))
    h2 = act(F.conv2d(F.max_pool2d(h1, 2, 1), w2, b2, stride=2))
    gaps = []
    for h in (h1, h2):
        u = F.unfold(h.reshape(-1, 1, h.shape[2], h.shape[3]), 2, stride=1)
        top = u.topk(2, dim=1).values
        live = top[:, 0] != 0  # ReLU's exact zeros tie exactly in both: same winner
        gaps.append((top[live, 0] - top[live, 1]).min().item())
    return min(gaps)


# draw the batch until no pooling window of either activation is a near-tie
while True:
    xb = torch.randn(B, 1, 28, 28)
    if pool_margin(xb, torch.tanh) > 1e-5 and pool_margin(xb, torch.relu) > 1e-5:
        break
for i, n in enumerate(NAMES):
    out[f"cnn_{n}"] = params[i]
out["cnn_x"] = xb
out["cnn_y"] = yb.to(torch.int32)


def per_example(act, prefix):
    def loss1(p, x1, y1):
        return F.cross_entropy(cnn(p, x1.unsqueeze(0), act), y1.unsqueeze(0))

    pg = vmap(grad(loss1), in_dims=(None, 0, 0))(params, xb, yb)
    sq = sum((g.reshape(B, -1).double() ** 2).sum(1) for g in pg)
    out[f"{prefix}_norm@f64"] = sq.sqrt()
    for i, n in enumerate(NAMES):
        out[f"{prefix}_pg_{n}"] = pg[i]
    return pg, sq.sqrt()


pg, norms = per_example(torch.tanh, "cnn")
per_example(torch.relu, "cnnr")

# ---- one DP step with sigma = 0 (sum of clipped, / expected batch 4)
for tag, C in [("c05", 0.5), ("cbig", 1e9)]:
    f = torch.clamp(C / (norms + 1e-6), max=1.0)
    for i, n in enumerate(NAMES):
        g = pg[i].double()
        s = (f.reshape(-1, *([1] * (g.dim() - 1))) * g).sum(0) / 4.0
        out[f"step_{tag}_{n}"] = s.float()

# ---- linear over sequences
Bs, T, IN, OUT = 3, 4, 6, 5
w = torch.randn(OUT, IN)
b = torch.randn(OUT)
xs = torch.randn(Bs, T, IN)
rs = torch.randn(Bs, T, OUT)


def lin_loss(p, x1, r1):
    return (F.linear(x1, p[0], p[1]) * r1).sum()


lg = vmap(grad(lin_loss), in_dims=(None, 0, 0))((w, b), xs, rs)
out["lin_w"], out["lin_b"], out["lin_x"], out["lin_r"] = w, b, xs, rs
out["lin_pg_w"], out["lin_pg_b"] = lg[0], lg[1]
out["lin_norm@f64"] = ((lg[0].reshape(Bs, -1).double() ** 2).sum(1) +
                       (lg[1].double() ** 2).sum(1)).sqrt()

save(os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build/ref", "ref_dp.bin"), out)
