"""bench_rnn.py: one RNN training step, ours vs PyTorch, same shapes, one thread.

Step = zero grads, forward over T=100 steps (nn.RNN tanh, hidden 128, batch 32,
adding problem input of 2 features), linear head on the last state, MSE,
backward (BPTT), clip_grad_norm_(1.0), SGD step. Both sides: one thread
(OPENBLAS_NUM_THREADS=1 set by `make bench`, torch.set_num_threads(1)),
median of many steps after a warm-up, measured in the same run, the two
sides interleaved in rounds.
"""
import os
import statistics
import subprocess
import sys
import time

import torch

REPS, WARM, ROUNDS = 40, 10, 5
T, B, H, I = 100, 32, 128, 2
torch.set_num_threads(1)
torch.manual_seed(0)
rnn = torch.nn.RNN(I, H, nonlinearity="tanh")
head = torch.nn.Linear(H, 1)
params = list(rnn.parameters()) + list(head.parameters())
opt = torch.optim.SGD(params, lr=0.01)
x = torch.rand(T, B, I)
y = torch.rand(B, 1) * 2

binary = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build/bench", "bench_rnn")


def torch_steps(n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        hs, _ = rnn(x)
        loss = torch.nn.functional.mse_loss(head(hs[-1]), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        out.append(1e3 * (time.perf_counter() - t0))
    return out


def c_steps(n):
    out = subprocess.run([binary, str(n)], check=True, capture_output=True, text=True).stdout
    vals = dict(line.split() for line in out.strip().splitlines())
    return float(vals["c_step_ms"]), float(vals["c_clip_ms"])


# The machine is shared: interleave the two sides in rounds so both see the
# same load, and take the median of the per-round medians.
torch_steps(WARM)
rounds = []
for r in range(ROUNDS):
    t_ms = statistics.median(torch_steps(REPS))
    c_ms, clip_ms = c_steps(REPS)
    rounds.append((t_ms, c_ms, clip_ms))
torch_ms = statistics.median(r[0] for r in rounds)
c_ms = statistics.median(r[1] for r in rounds)
clip_ms = statistics.median(r[2] for r in rounds)
ratios = sorted(r[0] / r[1] for r in rounds)
print(f"rnn step (T={T}, B={B}, H={H}, 1 thread): cliplab {c_ms:.3f} ms, "
      f"pytorch {torch_ms:.3f} ms, speed-up x{torch_ms / c_ms:.2f} (target >= 2; "
      f"per-round x{ratios[0]:.2f}..x{ratios[-1]:.2f})")
print(f"clip_grad_norm share of the cliplab RNN step: {clip_ms * 1e3:.1f} us "
      f"= {100 * clip_ms / c_ms:.2f}% (target < 2%)")
