"""bench_transformer.py: one transformer training step, ours vs PyTorch, same shapes, one thread.

Step = zero grads, forward of a decoder-only GPT (d_model 128, 4 pre-LN blocks,
4 heads, context 64, GELU MLP 4x, tied head, vocab 96) on batch 16 of random
tokens, mean cross-entropy, backward, clip_grad_norm_(1.0), AdamW step
(beta 0.9/0.95, weight decay 0.1). The PyTorch model is written by hand with
the same layout as models/transformer.c (packed qkv Linear, causal softmax
attention as explicit matmuls: torch 1.13 has no fused attention on CPU).
Both sides: one thread (OPENBLAS_NUM_THREADS=1 and OMP_NUM_THREADS=1 set by
`make bench`, torch.set_num_threads(1)), median of many steps after a warm-up,
measured in the same run, the two sides interleaved in rounds.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

from benchlib import interleaved, thread_scaling, threads_line

REPS, WARM, ROUNDS = 15, 5, 4
B, T, C, L, NH, V = 16, 64, 128, 4, 4, 96
torch.set_num_threads(1)
torch.manual_seed(0)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(C), torch.nn.LayerNorm(C)
        self.qkv, self.proj = torch.nn.Linear(C, 3 * C), torch.nn.Linear(C, C)
        self.fc, self.mproj = torch.nn.Linear(C, 4 * C), torch.nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

    def attn(self, x):
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // NH))
        p = F.softmax(s.masked_fill(~self.mask, float("-inf")), dim=-1)
        return self.proj((p @ v).transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Parameter(torch.randn(V, C) * 0.02)
        self.wpe = torch.nn.Parameter(torch.randn(T, C) * 0.02)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.lnf = torch.nn.LayerNorm(C)

    def forward(self, idx, targets):
        x = self.wte[idx] + self.wpe
        for b in self.blocks:
            x = b(x)
        logits = self.lnf(x) @ self.wte.t()
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))


model = GPT()
params = list(model.parameters())
decay = [p for p in params if p.dim() >= 2]
no_decay = [p for p in params if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                         {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
x = torch.randint(0, V, (B, T))
y = torch.randint(0, V, (B, T))

binary = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build/bench", "bench_transformer")


def torch_step():
    opt.zero_grad(set_to_none=False)
    loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


torch_ms, c, ratios = interleaved(torch_step, binary, ROUNDS, REPS, WARM)
c_ms = c["c_step_ms"]
print(f"transformer step (B={B}, T={T}, C={C}, L={L}, NH={NH}, V={V}, "
      f"{int(c['params'])} params, 1 thread): cliplab {c_ms:.3f} ms "
      f"(forward {c['c_fwd_ms']:.1f}, backward {c['c_bwd_ms']:.1f}), pytorch {torch_ms:.3f} ms, "
      f"speed-up x{torch_ms / c_ms:.2f} (target >= 1.7; per-round x{ratios[0]:.2f}..x{ratios[-1]:.2f}; "
      f"load average {os.getloadavg()[0]:.1f})")
print(f"  share of the cliplab step inside sgemm (1 thread): {c['c_sgemm_ms']:.1f} ms = "
      f"{100 * c['c_sgemm_ms'] / c_ms:.0f}% (the rest: layernorm, attention softmax, GELU, "
      f"AdamW, cross-entropy, zeroing, copies)")
one, two = thread_scaling(binary, REPS, ROUNDS)
print(threads_line("  transformer step", one, two, 1.7), flush=True)
