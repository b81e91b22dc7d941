"""ref_transformer.py: PyTorch reference for the full transformer forward + backward
(tests/test_transformer.c).

A decoder-only GPT written by hand with the layout of models/transformer.c:
token + position embeddings, pre-LayerNorm blocks (ln1 -> Linear to packed
qkv [B,T,3C] -> causal multi-head attention -> Linear proj -> residual; ln2 ->
Linear 4C -> GELU (tanh) -> Linear C -> residual), final LayerNorm, head tied to
the token embedding, mean cross-entropy. Small config: C 32, 2 layers, 2 heads,
T 16, V 20, B 3. Weights are drawn at scales larger than the GPT-2 init (and
LayerNorm/bias parameters away from 1/0) so every path carries a gradient.
Computed in float64 and saved as float32: the C side's float32 error is all
that the test's tolerance has to cover. Saved: w.<name> and g.<name> for every
parameter (the C names), idx, targets, logits, loss.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from tfile import out_path, save

B, T, C, L, NH, V = 3, 16, 32, 2, 2, 20
torch.manual_seed(0)
g = torch.Generator().manual_seed(1)


def randn(*shape, std=1.0, mean=0.0):
    return (mean + std * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()


W = {"wte": randn(V, C, std=0.5), "wpe": randn(T, C, std=0.5)}
for i in range(L):
    p = f"h{i}."
    W[p + "ln1.w"], W[p + "ln1.b"] = randn(C, mean=1.0, std=0.1), randn(C, std=0.1)
    W[p + "attn.w_qkv"], W[p + "attn.b_qkv"] = randn(3 * C, C, std=C ** -0.5), randn(3 * C, std=0.1)
    W[p + "attn.w_proj"], W[p + "attn.b_proj"] = randn(C, C, std=C ** -0.5), randn(C, std=0.1)
    W[p + "ln2.w"], W[p + "ln2.b"] = randn(C, mean=1.0, std=0.1), randn(C, std=0.1)
    W[p + "mlp.w_fc"], W[p + "mlp.b_fc"] = randn(4 * C, C, std=C ** -0.5), randn(4 * C, std=0.1)
    W[p + "mlp.w_proj"], W[p + "mlp.b_proj"] = randn(C, 4 * C, std=(4 * C) ** -0.5), randn(C, std=0.1)
W["lnf.w"], W["lnf.b"] = randn(C, mean=1.0, std=0.1), randn(C, std=0.1)

idx = torch.randint(0, V, (B, T), generator=g)
targets = torch.randint(0, V, (B, T), generator=g)


def attention(x, i):
    p = f"h{i}."
    q, k, v = F.linear(x, W[p + "attn.w_qkv"], W[p + "attn.b_qkv"]).split(C, dim=2)
    q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
    s = (q @ k.transpose(-2, -1)) / math.sqrt(C // NH)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    y = F.softmax(s.masked_fill(~mask, float("-inf")), dim=-1) @ v
    return F.linear(y.transpose(1, 2).reshape(B, T, C), W[p + "attn.w_proj"], W[p + "attn.b_proj"])


def block(x, i):
    p = f"h{i}."
    x = x + attention(F.layer_norm(x, (C,), W[p + "ln1.w"], W[p + "ln1.b"], 1e-5), i)
    h = F.layer_norm(x, (C,), W[p + "ln2.w"], W[p + "ln2.b"], 1e-5)
    h = F.gelu(F.linear(h, W[p + "mlp.w_fc"], W[p + "mlp.b_fc"]), approximate="tanh")
    return x + F.linear(h, W[p + "mlp.w_proj"], W[p + "mlp.b_proj"])


x = W["wte"][idx] + W["wpe"][:T]
for i in range(L):
    x = block(x, i)
logits = F.layer_norm(x, (C,), W["lnf.w"], W["lnf.b"], 1e-5) @ W["wte"].t()
loss = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))
loss.backward()

out = {"idx": idx.numpy().astype(np.int32), "targets": targets.numpy().astype(np.int32),
       "logits": logits.detach().reshape(B * T, V), "loss": loss.detach().reshape(1)}
for name, w in W.items():
    out["w." + name] = w.detach()
    out["g." + name] = w.grad
save(out_path(__file__), out)

# bf16: the same forward under torch 1.13's CPU autocast (bf16 matmuls and
# linears; float32 weights, as AMP keeps its master weights), for
# tests/test_amp.c. Autocast leaves float64 alone, hence the float32 copies.
W = {k: v.detach().float() for k, v in W.items()}
with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
    x = W["wte"][idx] + W["wpe"][:T]
    for i in range(L):
        x = block(x, i)
    logits16 = F.layer_norm(x, (C,), W["lnf.w"], W["lnf.b"], 1e-5) @ W["wte"].t()
    loss16 = F.cross_entropy(logits16.reshape(B * T, V), targets.reshape(B * T))
    out["loss_bf16_autocast"] = loss16.float().reshape(1)
    out["logits_bf16_autocast"] = logits16.float().reshape(B * T, V)
    out["dtypes_bf16_autocast"] = np.array([logits16.dtype == torch.bfloat16,
                                            loss16.dtype == torch.float32], dtype=np.int32)
save(out_path(__file__), out)
