"""bench_rnn.py: one RNN training step, ours vs PyTorch, same shapes, one thread.

Step = zero grads, forward over T=100 steps (nn.RNN tanh, hidden 128, batch 32,
adding problem input of 2 features), linear head on the last state, MSE,
backward (BPTT), clip_grad_norm_(1.0), SGD step. Both sides: one thread
(OPENBLAS_NUM_THREADS=1 set by `make bench`, torch.set_num_threads(1)),
median of many steps after a warm-up, measured in the same run, the two
sides interleaved in rounds.
"""
import os
import sys

import torch

from benchlib import interleaved, thread_scaling, threads_line

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


def torch_step():
    opt.zero_grad(set_to_none=False)
    hs, _ = rnn(x)
    loss = torch.nn.functional.mse_loss(head(hs[-1]), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


torch_ms, c, ratios = interleaved(torch_step, binary, ROUNDS, REPS, WARM)
c_ms, clip_ms = c["c_step_ms"], c["c_clip_ms"]
print(f"rnn step (T={T}, B={B}, H={H}, 1 thread): cliplab {c_ms:.3f} ms, "
      f"pytorch {torch_ms:.3f} ms, speed-up x{torch_ms / c_ms:.2f} (target >= 2; "
      f"per-round x{ratios[0]:.2f}..x{ratios[-1]:.2f})")
print(f"clip_grad_norm share of the cliplab RNN step: {clip_ms * 1e3:.1f} us "
      f"= {100 * clip_ms / c_ms:.2f}% (target < 2%)")
one, two = thread_scaling(binary, REPS, ROUNDS)
print(threads_line("  rnn step", one, two, 1.5), flush=True)
