"""ref_half.py: float32 -> float16 / bfloat16 rounding by torch 1.13's .to(),
the bit-exact reference for src/engine/half.c (tests/test_half.c).

Inputs (float32 bit patterns, stored as int32): 2^19 uniformly random bit
patterns (every exponent, NaNs and infinities included), 2^19 values spread
log-uniformly over fp16's range and its edges (2^-30 .. 2^17, both signs),
and the issue's edge cases: 2^-25 and its neighbours, 2^-24, 2^-14 and their
neighbours, 65504, 65519, 65520, 65536, the fp16 subnormals, bf16's 1 + 2^-8
and 1 + 3*2^-8, float32's extremes. Outputs: the float32 bits of
x.to(dtype).to(torch.float32).
"""
import numpy as np
import torch

from tfile import out_path, save

rng = np.random.default_rng(22)
bits = rng.integers(0, 2**32, size=2**19, dtype=np.uint64).astype(np.uint32)
mag = np.exp2(rng.uniform(-30.0, 17.0, size=2**19)).astype(np.float32)
sign = np.where(rng.integers(0, 2, size=2**19) == 1, -1.0, 1.0).astype(np.float32)
spread = (mag * sign).view(np.uint32)


def f(v):
    return np.float32(v)


def neighbours(v):
    v = f(v)
    with np.errstate(over="ignore"):  # nextafter(max, inf) is inf, as wanted
        return [np.nextafter(v, f(0)), v, np.nextafter(v, f(np.inf))]


edges = []
for v in [2.0**-25, 2.0**-24, 1.5 * 2.0**-24, 2.0**-14, 65504.0, 65519.0, 65520.0, 65536.0,
          1 + 2.0**-8, 1 + 3 * 2.0**-8, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 3.3895314e38,
          np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45]:
    edges += neighbours(v)
edges += [k * 2.0**-24 for k in range(1, 1024)]           # every fp16 subnormal
edges += [(k + 0.5) * 2.0**-24 for k in range(0, 1024)]   # and the ties between them
edges += [0.0, np.inf, np.nan]
edges = np.array(edges, dtype=np.float32)
edges = np.concatenate([edges, -edges]).view(np.uint32)
edges = np.concatenate([edges, np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF],
                                        dtype=np.uint32)])

x = np.concatenate([bits, spread, edges]).astype(np.uint32)
t = torch.from_numpy(x.view(np.float32).copy())
f16 = t.to(torch.float16).to(torch.float32).numpy().view(np.uint32)
bf16 = t.to(torch.bfloat16).to(torch.float32).numpy().view(np.uint32)
save(out_path(__file__), {"x": x.view(np.int32), "fp16": f16.view(np.int32),
                          "bf16": bf16.view(np.int32)})
