"""bench_blas_pin.py: what the pinned BLAS kernel costs (src/engine/blas_pin.c).

cliplab pins OpenBLAS to its Haswell (AVX2 + FMA) sgemm kernel so a run gives
the same numbers on every x86-64 machine. On a CPU whose own kernel is another
(SkylakeX, Cooperlake, Zen...) that can cost speed. Each C benchmark runs
pinned and with CLIPLAB_BLAS=native (the machine's own kernel), interleaved in
rounds; the ratio native/pinned below 1 is the price of reproducibility on
this machine (1.00 where the machine's own kernel is Haswell's anyway).
"""
import os
import statistics
import sys

from benchlib import run_c

ROUNDS, REPS = 5, 10
bindir = sys.argv[1] if len(sys.argv) > 1 else "build/bench"
for name in ("rnn", "transformer", "wgan", "mobilenet", "ppo"):
    binary = os.path.join(bindir, "bench_" + name)
    if not os.path.exists(binary):
        continue
    pinned, native = [], []
    for _ in range(ROUNDS):
        os.environ.pop("CLIPLAB_BLAS", None)
        pinned.append(run_c(binary, REPS)["c_step_ms"])
        os.environ["CLIPLAB_BLAS"] = "native"
        native.append(run_c(binary, REPS)["c_step_ms"])
    os.environ.pop("CLIPLAB_BLAS", None)
    p, n = statistics.median(pinned), statistics.median(native)
    print(f"blas pin, {name} step: pinned (Haswell) {p:.3f} ms, machine's kernel {n:.3f} ms, "
          f"native/pinned x{n / p:.2f} (the cost of the same numbers on every machine)")
