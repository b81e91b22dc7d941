"""ref_cliff.py: PyTorch reference for the one-unit RNN of Pascanu et al. 2013,
Fig. 6 (tests/test_cliff.c): x_0 = 0.5, x_t = w*sigmoid(x_{t-1}) + b for 50
steps, loss (sigmoid(x_50) - 0.7)^2.

Saved: loss and d loss / d(w, b) at points across the surface (both plateaus,
the valley, the slope just above the wall at w = 5) in float32 and float64,
and a 300-step float32 SGD trajectory (lr 0.1, no clip) from (6, -2), which
stops before it reaches the wall (the C run meets the wall at step 364).
"""
import numpy as np
import torch

from tfile import out_path, save


def loss_of(w, b, T=50, x0=0.5, target=0.7):
    x = torch.full_like(w, x0)
    for _ in range(T):
        x = w * torch.sigmoid(x) + b
    return (torch.sigmoid(x) - target) ** 2


sig = 1.0 / (1.0 + np.exp(-0.5))
wall5 = 0.5 - 5.0 * sig  # b of the wall line at w = 5
pts = np.array([[6.0, -2.0],            # upper plateau, the demo's start
                [3.0, 0.5],             # upper plateau, left
                [4.0, 0.8473 - 2.8],    # valley floor: sigmoid(x*) = 0.7
                [2.5, -1.0],            # valley side
                [8.0, -6.0],            # lower plateau
                [5.0, wall5 + 1e-2],    # slope just above the wall
                [5.0, wall5 + 1e-3],
                [4.6, -2.35]])          # where the valley meets the wall
out = {"points@f64": pts}
for dt, tag in ((torch.float32, "f32"), (torch.float64, "f64")):
    w = torch.tensor(pts[:, 0], dtype=dt, requires_grad=True)
    b = torch.tensor(pts[:, 1], dtype=dt, requires_grad=True)
    L = loss_of(w, b)
    L.sum().backward()
    suffix = "" if tag == "f32" else "@f64"
    out["loss." + tag + suffix] = L.detach().numpy()
    out["grad_w." + tag + suffix] = w.grad.numpy()
    out["grad_b." + tag + suffix] = b.grad.numpy()

# SGD, float32, as torch.optim.SGD(lr=0.1) would run it
p = torch.tensor([6.0, -2.0], dtype=torch.float32, requires_grad=True)
opt = torch.optim.SGD([p], lr=0.1)
traj = []
for _ in range(300):
    traj.append(p.detach().clone().numpy())
    opt.zero_grad()
    loss_of(p[0], p[1]).backward()
    opt.step()
out["sgd.wb"] = np.array(traj, dtype=np.float32)
save(out_path(__file__), out)
