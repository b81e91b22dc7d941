"""ref_scaler.py: torch 1.13's GradScaler, for tests/test_amp.c.

Debian's torch 1.13 has no CPU kernels for the scaler (_amp_update_scale_ and
_amp_foreach_non_finite_check_and_unscale_ are CUDA-only), so its rule is
transcribed here from torch/cuda/amp/grad_scaler.py (unscale_: inv_scale =
scale.double().reciprocal().float(); step skipped when found_inf; update())
and aten/src/ATen/native/cuda/AmpKernels.cu (amp_update_scale_cuda_kernel:
found_inf -> scale = scale * backoff, tracker = 0; else tracker + 1 and at
growth_interval scale = float(scale * growth) if finite, tracker = 0; the
float32 scale times the double factor, stored back as float32). Everything
else is torch itself: the float32 scale tensor, autograd's scaled backward,
torch.optim.SGD, and torch.nn.utils.clip_grad_norm_ for the inf-norm case.

Saved:
  seq<k>.cfg  [init, growth, backoff, interval]  seq<k>.inf  found_inf per update
  seq<k>.scale (float32 after each update), seq<k>.tracker (int32)
  toy.x[S,2], toy.w[S,2] (after each step), toy.scale[S] (used by the step),
  toy.skip[S]: SGD lr 0.1 on loss = sum(w * x_k), w0 = (0.5, -0.25), scaler
  init 2^16, growth 2, backoff 0.5, growth_interval 4
  clip.in<k>, clip.out<k>: clip_grad_norm_(max_norm=1) on one gradient
  holding inf / NaN / only finite values (torch 1.13: coef 0 for an inf norm)
"""
import numpy as np
import torch

from tfile import out_path, save


def update(scale, tracker, found_inf, growth, backoff, interval):
    """amp_update_scale_cuda_kernel on a float32 scale and an int32 tracker."""
    if found_inf:
        return np.float32(np.float64(scale) * backoff), 0
    successful = tracker + 1
    if successful == interval:
        with np.errstate(over="ignore"):  # past FLT_MAX: inf, refused below
            new = np.float32(np.float64(scale) * growth)
        return (new if np.isfinite(new) else scale), 0
    return scale, successful


out = {}
rng = np.random.default_rng(22)
cases = [(65536.0, 2.0, 0.5, 2000, 0.001, 5000),   # torch's defaults, rare overflows
         (65536.0, 2.0, 0.5, 3, 0.2, 300),          # short interval: growth and backoff interleave
         (1024.0, 3.0, 0.3, 2, 0.3, 300),           # factors that are not powers of two: rounding
         (3.0e38, 2.0, 0.5, 1, 0.0, 20),            # growth past FLT_MAX refused
         (1e-30, 1.5, 0.999, 1, 0.5, 300)]          # tiny scale, backoff close to 1
for k, (init, growth, backoff, interval, p, n) in enumerate(cases):
    infs = (rng.random(n) < p).astype(np.int32)
    scale, tracker = np.float32(init), 0
    scales, trackers = [], []
    for f in infs:
        scale, tracker = update(scale, tracker, f, growth, backoff, interval)
        scales.append(scale)
        trackers.append(tracker)
    out[f"seq{k}.cfg@f64"] = np.array([init, growth, backoff, interval], dtype=np.float64)
    out[f"seq{k}.inf"] = infs
    out[f"seq{k}.scale"] = np.array(scales, dtype=np.float32)
    out[f"seq{k}.tracker"] = np.array(trackers, dtype=np.int32)

# the toy run: overflow where |x| * scale passes FLT_MAX (3.4e38)
S = 40
x = rng.normal(size=(S, 2)).astype(np.float32)
for s, big in [(3, 3e34), (4, 3e34), (9, 1e34), (10, 2e38), (21, 5e33), (30, 3e34), (31, 3e34),
               (32, 3e34)]:
    x[s, 0] = big
w = torch.tensor([0.5, -0.25], dtype=torch.float32, requires_grad=True)
opt = torch.optim.SGD([w], lr=0.1)
scale, tracker = np.float32(65536.0), 0
ws, used, skips = [], [], []
for s in range(S):
    opt.zero_grad()
    loss = (w * torch.from_numpy(x[s])).sum()
    (loss * torch.tensor([scale], dtype=torch.float32)).sum().backward()  # scaler.scale(loss)
    inv = torch.tensor([scale], dtype=torch.float32).double().reciprocal().float()
    found_inf = int(not torch.isfinite(w.grad).all())
    if inv.item() != 1.0:
        w.grad.mul_(inv)
    if not found_inf:
        opt.step()
    used.append(scale)
    skips.append(found_inf)
    scale, tracker = update(scale, tracker, found_inf, 2.0, 0.5, 4)
    ws.append(w.detach().clone().numpy())
out["toy.x"] = x
out["toy.w"] = np.array(ws, dtype=np.float32)
out["toy.scale"] = np.array(used, dtype=np.float32)
out["toy.skip"] = np.array(skips, dtype=np.int32)

# clip_grad_norm_(max_norm = 1) on an inf, a NaN and a finite gradient
grads = [np.array([np.inf, 1.0, -2.0, 0.0, 3e-3], dtype=np.float32),
         np.array([np.nan, 1.0, -2.0, 0.0, 3e-3], dtype=np.float32),
         np.array([3e3, 4e3, -1.0, 0.0, 3e-3], dtype=np.float32)]
for k, g in enumerate(grads):
    p = torch.zeros(len(g), requires_grad=True)
    p.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_norm_([p], 1.0)
    out[f"clip.in{k}"] = g
    out[f"clip.out{k}"] = p.grad.numpy()
save(out_path(__file__), out)
