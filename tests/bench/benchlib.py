"""benchlib.py: what every PyTorch-vs-C benchmark pair shares.

The machine is shared, so the two sides are interleaved in rounds (both see
the same load) and the result is the median of the per-round medians.
"""
import statistics
import subprocess
import time


def time_steps(step, n):
    """Wall time in ms of each of n calls of step()."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        out.append(1e3 * (time.perf_counter() - t0))
    return out


def run_c(binary, reps):
    """Run a C bench binary; its stdout is `key value` lines, returned as a dict of floats."""
    out = subprocess.run([binary, str(reps)], check=True, capture_output=True, text=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.strip().splitlines())}


def interleaved(torch_step, binary, rounds, reps, warm):
    """Returns (torch median ms, dict of C medians, sorted per-round torch/C ratios)."""
    time_steps(torch_step, warm)
    t_meds, c_runs = [], []
    for _ in range(rounds):
        t_meds.append(statistics.median(time_steps(torch_step, reps)))
        c_runs.append(run_c(binary, reps))
    c = {k: statistics.median(r[k] for r in c_runs) for k in c_runs[0]}
    ratios = sorted(t / r["c_step_ms"] for t, r in zip(t_meds, c_runs))
    return statistics.median(t_meds), c, ratios
