"""benchlib.py: what every PyTorch-vs-C benchmark pair shares.

The machine is shared, so the two sides are interleaved in rounds (both see
the same load) and the result is the median of the per-round medians.
"""
import os
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


def run_c(binary, reps, *args, threads=1):
    """Run a C bench binary (extra args after reps) at `threads` threads
    (CLIPLAB_BENCH_THREADS); its stdout is `key value` lines, returned as a dict of floats."""
    env = dict(os.environ, CLIPLAB_BENCH_THREADS=str(threads))
    out = subprocess.run([binary, str(reps), *args], check=True, capture_output=True, text=True,
                         env=env).stdout
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


def thread_scaling(binary, reps, rounds, *args, threads=2):
    """Median c_step_ms of a C bench at 1 and at `threads` threads, interleaved
    in rounds (both see the same load); returns (ms at 1, ms at threads)."""
    one, many = [], []
    for _ in range(rounds):
        one.append(run_c(binary, reps, *args)["c_step_ms"])
        many.append(run_c(binary, reps, *args, threads=threads)["c_step_ms"])
    return statistics.median(one), statistics.median(many)


def threads_line(what, one, two, target):
    """The line make bench prints for a model's 2-thread row."""
    return (f"{what} at 2 threads: cliplab {two:.3f} ms against {one:.3f} ms at 1 thread, "
            f"x{one / two:.2f} (target >= {target}; load average {os.getloadavg()[0]:.1f})")
