"""ref_mobilenet.py: PyTorch reference for models/mobilenet.c and ops_act.c
(tests/test_mobilenet.c).

A MobileNetV2 written with torch.nn.functional in the layout of
models/mobilenet.c (torchvision's InvertedResidual): stem conv 3x3 (1 -> 8,
stride 2) + BN + act; blocks t:c:n:s = 1:8:1:1 (no expand, residual),
6:12:2:2 (expand 8 -> 48 stride 2, then 12 -> 72 stride 1 with residual);
head 1x1 -> 32 + BN + act; global average pool; Linear 32 -> 10. Input
B = 6 images of 1 x 16 x 16. Weights are drawn larger than torchvision's
init (and BN affine away from 1/0) so that activations cross both clip
levels and every path carries a gradient. Computed in float64, saved as
float32.

Cases (prefix.):
  relu6.  train-mode BN: logits, loss, every gradient (g.<name>), the running
          statistics after the step (rs.<name>);
  eval.   eval-mode BN on given running statistics (w.<buffer>): logits, loss;
  pact.   activation = PACT, alpha per layer (1.5 .. 3, so clipping is active),
          written as the paper's y = 0.5(|x| - |x - alpha| + alpha): every
          gradient, the alphas' included;
  fq.     fake quantisation: torch.fake_quantize_per_tensor_affine (scale =
          hi/(2^k-1), zero point 0, quant range [0, 2^k-1]) forward and its
          straight-through gradient, and the paper's formula
          round(clip(x,0,hi) (2^k-1)/hi) hi/(2^k-1) for k = 8, 4, 3, 2.
"""
import numpy as np
import torch
import torch.nn.functional as F

from tfile import out_path, save

B, HW, K = 6, 16, 10
STEM, LAST = 8, 32
SETTING = [(1, 8, 1, 1), (6, 12, 2, 2)]
g = torch.Generator().manual_seed(3)
D = torch.float64


def randn(*shape, std=1.0, mean=0.0):
    return (mean + std * torch.randn(*shape, generator=g, dtype=D)).requires_grad_()


def layers():
    """(name, cin, cout, k, stride, depthwise, act) in the C declaration order."""
    out = [("stem", 1, STEM, 3, 2, False, True)]
    cin, bi = STEM, 0
    for t, c, n, s in SETTING:
        for i in range(n):
            hid = cin * t
            if t != 1:
                out.append((f"b{bi}.expand", cin, hid, 1, 1, False, True))
            out.append((f"b{bi}.dw", hid, hid, 3, s if i == 0 else 1, True, True))
            out.append((f"b{bi}.project", hid, c, 1, 1, False, False))
            cin, bi = c, bi + 1
    out.append(("head", cin, LAST, 1, 1, False, True))
    return out


LAYERS = layers()


def make_weights():
    W, R = {}, {}
    for name, cin, cout, k, _, dw, _ in LAYERS:
        fan_in = (1 if dw else cin) * k * k
        W[name + ".conv.w"] = randn(cout, 1 if dw else cin, k, k, std=2.5 * fan_in ** -0.5)
        W[name + ".bn.w"] = randn(cout, mean=1.0, std=0.3)
        W[name + ".bn.b"] = randn(cout, mean=0.3, std=0.5)
        R[name + ".bn.running_mean"] = torch.randn(cout, generator=g, dtype=D) * 0.3
        R[name + ".bn.running_var"] = torch.rand(cout, generator=g, dtype=D) * 2.0 + 0.5
    W["fc.w"] = randn(K, LAST, std=LAST ** -0.5)
    W["fc.b"] = randn(K, std=0.1)
    return W, R


def pact(x, alpha):
    return 0.5 * (x.abs() - (x - alpha).abs() + alpha)   # Choi et al. 2018, eq. 1


def forward(W, R, x, train, act, alphas=None):
    """R: running buffers (updated in place when train)."""
    h, skip, k, block = x, None, 0, None
    for name, cin, cout, ks, stride, dw, has_act in LAYERS:
        if name.split(".")[0] != block:   # first layer of a block (or stem/head)
            block, skip, block_stride = name.split(".")[0], h, stride
        block_stride = max(block_stride, stride)
        y = F.conv2d(h, W[name + ".conv.w"], None, stride, ks // 2, groups=cin if dw else 1)
        y = F.batch_norm(y, R[name + ".bn.running_mean"], R[name + ".bn.running_var"],
                         W[name + ".bn.w"], W[name + ".bn.b"], train, 0.1, 1e-5)
        if has_act:
            y = F.relu6(y) if act == "relu6" else pact(y, alphas[k])
            k += 1
        if name.endswith(".project"):
            res = y.shape == skip.shape and block_stride == 1
            y = y + skip if res else y
        h = y
    return F.linear(h.mean(dim=(2, 3)), W["fc.w"], W["fc.b"])


out = {}
W, R = make_weights()
x = torch.randn(B, 1, HW, HW, generator=g, dtype=D) * 1.5
y = torch.randint(0, K, (B,), generator=g)
out["x"], out["y"] = x, y.numpy().astype(np.int32)
for n, w in W.items():
    out["w." + n] = w.detach()
for n, r in R.items():
    out["w." + n] = r.clone()

# relu6, train-mode batchnorm
Rt = {n: r.clone() for n, r in R.items()}
logits = forward(W, Rt, x, True, "relu6")
loss = F.cross_entropy(logits, y)
loss.backward()
out["relu6.logits"], out["relu6.loss"] = logits.detach(), loss.detach().reshape(1)
for n, w in W.items():
    out["relu6.g." + n] = w.grad.clone()
    w.grad = None
for n, r in Rt.items():
    out["relu6.rs." + n] = r

# eval-mode batchnorm on the given running statistics
with torch.no_grad():
    logits = forward(W, {n: r.clone() for n, r in R.items()}, x, False, "relu6")
out["eval.logits"], out["eval.loss"] = logits, F.cross_entropy(logits, y).reshape(1)

# PACT, train mode
nact = sum(1 for l in LAYERS if l[6])
alphas = [torch.tensor([1.5 + 1.5 * i / (nact - 1)], dtype=D, requires_grad=True) for i in range(nact)]
acts = [l[0] for l in LAYERS if l[6]]
logits = forward(W, {n: r.clone() for n, r in R.items()}, x, True, "pact", alphas)
loss = F.cross_entropy(logits, y)
loss.backward()
out["pact.loss"] = loss.detach().reshape(1)
for n, w in W.items():
    out["pact.g." + n] = w.grad.clone()
    w.grad = None
for a, n in zip(alphas, acts):
    out["pact.w." + n + ".alpha"] = a.detach()
    out["pact.g." + n + ".alpha"] = a.grad

# fake quantisation (float32, as the C side computes it)
xq = (torch.randn(4096, generator=g) * 2.0 + 1.0).float()
out["fq.x"] = xq
for bits, hi in ((8, 6.0), (4, 6.0), (3, 2.5), (2, 1.0)):
    xr = xq.clone().requires_grad_()
    qmax = 2 ** bits - 1
    yq = torch.fake_quantize_per_tensor_affine(xr, hi / qmax, 0, 0, qmax)
    dy = torch.randn(4096, generator=g).float()
    yq.backward(dy)
    out[f"fq.{bits}.torch"], out[f"fq.{bits}.dy"], out[f"fq.{bits}.dx"] = yq.detach(), dy, xr.grad
    paper = torch.round(torch.clamp(xq.double(), 0, hi) * qmax / hi) * hi / qmax
    out[f"fq.{bits}.paper"] = paper.float()
save(out_path(__file__), out)
