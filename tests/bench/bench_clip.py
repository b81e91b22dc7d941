"""bench_clip.py: torch.nn.utils.clip_grad_norm_ against our clip_grad_norm.

Same workload on both sides: 64 gradients of 256x1024 float32 (16.8M values,
64 MiB), L2 norm, max_norm 1.0, the norm far above it, one thread (torch
set_num_threads(1); OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 from the caller).
Before each rep the gradients are refilled from a pristine copy (untimed), so
every rep computes the norm and rescales real data. The machine is shared, so
the two sides run interleaved in ROUNDS rounds (torch reps, then the C binary)
and the medians are taken over all timed reps of each side.

argv[1] is the folder holding the C binary bench_clip (`make
build/bench/bench_clip`); tests/bench/bench.py passes it.
"""
import os
import statistics
import subprocess
import sys
import time

import torch

NT, ROWS, COLS = 64, 256, 1024
ROUNDS, REPS, WARM = 4, 10, 3  # per round


class TorchSide:
    def __init__(self):
        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(0)
        self.src = [torch.rand(ROWS, COLS, generator=gen) * 2 - 1 for _ in range(NT)]
        self.params = [torch.nn.Parameter(torch.zeros(ROWS, COLS)) for _ in range(NT)]
        for p, s in zip(self.params, self.src):
            p.grad = s.clone()

    def round(self):
        times = []
        for rep in range(WARM + REPS):
            for p, s in zip(self.params, self.src):
                p.grad.copy_(s)
            t0 = time.perf_counter()
            norm = torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            t1 = time.perf_counter()
            if rep >= WARM:
                times.append((t1 - t0) * 1e3)
        post = torch.norm(torch.stack([torch.norm(p.grad) for p in self.params])).item()
        assert norm.item() > 1.0 and 0.999 < post < 1.001, (norm.item(), post)
        return times


def c_round(exe):
    out = subprocess.run([exe, str(REPS), str(WARM)], check=True, capture_output=True,
                         text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("bench=clip_grad_norm"))
    kv = dict(f.split("=", 1) for f in line.split())
    return [float(t) for t in kv["times_ms"].split(",")]


def main():
    exe = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build/bench", "bench_clip")
    side = TorchSide()
    t_all, c_all = [], []
    for _ in range(ROUNDS):
        t_all += side.round()
        c_all += c_round(exe)
    t_med, c_med = statistics.median(t_all), statistics.median(c_all)
    print("clip_grad_norm: %d x %dx%d float32, L2, max_norm 1, 1 thread, %d reps each side "
          "(%d interleaved rounds)" % (NT, ROWS, COLS, len(t_all), ROUNDS))
    print("  torch.nn.utils.clip_grad_norm_: median %8.3f ms  (min %8.3f)" % (t_med, min(t_all)))
    print("  cliplab clip_grad_norm:         median %8.3f ms  (min %8.3f)" % (c_med, min(c_all)))
    print("  time ratio ours/torch = %.3f  (< 1: ours is faster)" % (c_med / t_med))
    print("  speed-up torch/ours   = %.3f  (> 1: ours is faster)" % (t_med / c_med))
    print("result bench=clip_grad_norm torch_median_ms=%.4f ours_median_ms=%.4f "
          "ours_over_torch=%.4f torch_over_ours=%.4f" %
          (t_med, c_med, c_med / t_med, t_med / c_med))


if __name__ == "__main__":
    main()
