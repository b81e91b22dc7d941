"""ref_ops_nn.py: PyTorch forward and backward of every op in src/ops_nn.c.

For each op: seeded float32 inputs, the forward output, and the gradients of
(out * R).sum() for a fixed random R of the output's shape (the upstream
gradient the C test seeds). Names: <op>.<tensor>. Attention is the explicit
causal softmax(Q K^T / sqrt(hd)) V on the packed qkv[B,T,3C] layout of
llm.c (q, k, v of head h at h*hd, C + h*hd, 2C + h*hd). BatchNorm is
F.batch_norm in training mode (with the updated running buffers) and in eval mode.
"""
import math
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import tfile  # noqa: E402

torch.manual_seed(20240611)
out = {}


def leaf(*shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape) * scale + shift).requires_grad_(True)


def record(name, y, inputs):
    """Store inputs, y, R and the gradients of (y * R).sum() w.r.t. inputs."""
    R = torch.randn(y.shape)
    (y * R).sum().backward()
    out[name + ".y"] = y
    out[name + ".R"] = R
    for k, t in inputs.items():
        out["%s.%s" % (name, k)] = t
        out["%s.d%s" % (name, k)] = t.grad


# softmax family over the last dim
x = leaf(3, 5, 7, scale=2.0)
record("softmax", torch.softmax(x, -1), {"x": x})
x = leaf(4, 9, scale=2.0)
record("log_softmax", torch.log_softmax(x, -1), {"x": x})

# cross-entropy, mean over non-ignored targets (-1 ignored)
x = leaf(6, 11, scale=2.0)
tgt = torch.tensor([3, -1, 0, 10, 7, 3])
record("cross_entropy", F.cross_entropy(x, tgt, ignore_index=-1).reshape(1), {"x": x})
out["cross_entropy.targets"] = tgt

# embedding with repeated indices (gradients accumulate)
w = leaf(10, 6)
idx = torch.tensor([4, 1, 4, 9, 0, 4, 1])
record("embedding", F.embedding(idx, w), {"w": w})
out["embedding.idx"] = idx

# layernorm over the last dim
x, w, b = leaf(2, 3, 16, scale=1.5, shift=0.3), leaf(16, scale=0.5, shift=1.0), leaf(16)
record("layernorm", F.layer_norm(x, (16,), w, b, eps=1e-5), {"x": x, "w": w, "b": b})


def batchnorm(name, shape, training):
    C = shape[1]
    x, w, b = leaf(*shape, scale=1.5, shift=0.7), leaf(C, scale=0.5, shift=1.0), leaf(C)
    rm = torch.randn(C) * 0.1
    rv = torch.rand(C) + 0.5
    out[name + ".rm0"], out[name + ".rv0"] = rm.clone(), rv.clone()
    y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.1, eps=1e-5)
    record(name, y, {"x": x, "w": w, "b": b})
    out[name + ".rm1"], out[name + ".rv1"] = rm, rv


batchnorm("bn_train4", (4, 3, 5, 6), True)
batchnorm("bn_train2", (8, 5), True)
batchnorm("bn_eval4", (4, 3, 5, 6), False)


def conv(name, xs, ws, stride, pad, bias, groups=1):
    x, w = leaf(*xs), leaf(*ws, scale=0.3)
    inputs = {"x": x, "w": w}
    bt = None
    if bias:
        bt = leaf(ws[0])
        inputs["b"] = bt
    record(name, F.conv2d(x, w, bt, stride=stride, padding=pad, groups=groups), inputs)


conv("conv_s2p1", (2, 3, 9, 7), (5, 3, 3, 3), 2, 1, True)
conv("conv_s2p1_nobias", (2, 3, 9, 7), (5, 3, 3, 3), 2, 1, False)
conv("conv_k3x5_s1p2", (2, 4, 8, 11), (6, 4, 3, 5), 1, 2, True)
conv("conv_1x1", (3, 8, 5, 6), (7, 8, 1, 1), 1, 0, False)
conv("dwconv_s2p1", (2, 4, 9, 7), (4, 1, 3, 3), 2, 1, True, groups=4)
conv("dwconv_s1p1_nobias", (2, 5, 6, 8), (5, 1, 3, 3), 1, 1, False, groups=5)

# global average pooling
x = leaf(2, 3, 5, 4)
record("avgpool", x.mean(dim=(2, 3)), {"x": x})


def attention(qkv, n_head):
    B, T, C3 = qkv.shape
    C = C3 // 3
    hd = C // n_head
    q, k, v = qkv.split(C, dim=2)
    q, k, v = (t.reshape(B, T, n_head, hd).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-2, -1) / math.sqrt(hd)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    p = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)
    return (p @ v).transpose(1, 2).reshape(B, T, C)


qkv = leaf(2, 7, 3 * 16)
record("attention", attention(qkv, 2), {"qkv": qkv})
qkv = leaf(3, 16, 3 * 32, scale=1.5)
record("attention4", attention(qkv, 4), {"qkv": qkv})

tfile.save(tfile.out_path(__file__), out)
