"""bench.py: run every benchmark pair in one process tree and print ratios.

Each tests/bench/bench_<name>.py times the PyTorch side and runs the matching
C binary build/bench/bench_<name> (passed its folder as argv[1]) in the same
run, then prints both medians and the ratio. This runner just calls them in
order with the environment `make bench` set (OPENBLAS_NUM_THREADS=1,
OMP_NUM_THREADS=1), and fails if any of them fails.
"""
import glob
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
bindir = sys.argv[1] if len(sys.argv) > 1 else "build/bench"
failed = 0
for script in sorted(glob.glob(os.path.join(here, "bench_*.py"))):
    print("==", os.path.basename(script), flush=True)
    rc = subprocess.call([sys.executable, script, bindir])
    if rc != 0:
        print("FAILED:", script, "exit", rc, flush=True)
        failed += 1
sys.exit(1 if failed else 0)
