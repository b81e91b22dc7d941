"""bench_amp.py: the fp16 (AMP) transformer step against the fp32 one, both
ours, one thread, interleaved (bench_amp.c). PyTorch 1.13 has no fp16 matmul
on the CPU, so there is no PyTorch side; the target is fp16 / fp32 <= 1.5.
"""
import os
import subprocess
import sys

binary = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build/bench", "bench_amp")
out = subprocess.run([binary], check=True, capture_output=True, text=True).stdout
vals = dict(line.split() for line in out.strip().splitlines())
f32, f16, ratio = float(vals["c_fp32_step_ms"]), float(vals["c_fp16_step_ms"]), float(vals["ratio"])
print(f"transformer step fp32 {f32:.2f} ms, fp16 (AMP casts + unscale) {f16:.2f} ms: "
      f"fp16/fp32 = {ratio:.2f} (target <= 1.5) {'ok' if ratio <= 1.5 else 'ABOVE TARGET'}")
