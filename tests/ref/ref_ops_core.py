"""ref_ops_core.py: PyTorch forward and backward of every op in src/ops_core.c.

For each case: seeded float32 inputs (all requiring grad), the output, a fixed
random upstream gradient R, and the input gradients of (out * R).sum().
Records are named "<case>.in<i>", "<case>.R", "<case>.out", "<case>.d<i>";
gather also saves "gather.idx". Scalar arguments (clamp bounds, scale factor,
slice ranges) are constants repeated in tests/test_ops_core.c.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfile  # noqa: E402

torch.manual_seed(0)
G = torch.Generator().manual_seed(1234)


def randn(*shape, scale=1.0, shift=0.0):
    return torch.randn(*shape, generator=G, dtype=torch.float32) * scale + shift


arrays = {}


def case(name, fn, inputs):
    ts = [x.clone().detach().requires_grad_(True) for x in inputs]
    out = fn(*ts)
    if out.dim() == 0:
        out = out.reshape(1)
    R = randn(*out.shape)
    (out * R).sum().backward()
    for i, t in enumerate(ts):
        arrays[f"{name}.in{i}"] = t.detach()
        arrays[f"{name}.d{i}"] = t.grad
    arrays[f"{name}.R"] = R
    arrays[f"{name}.out"] = out.detach()


# linear algebra
case("matmul", lambda a, b: a @ b, [randn(7, 13), randn(13, 5)])
case("linear", F.linear, [randn(2, 3, 13), randn(5, 13), randn(5)])
case("linear_nobias", F.linear, [randn(4, 6), randn(3, 6)])

# binary ops in each broadcast form: same shape, trailing dims (bias), single element
ops = {"add": torch.add, "sub": torch.sub, "mul": torch.mul}
forms = {"same": (2, 3, 4), "bias": (4,), "trail": (3, 4), "one": (1,)}
for op, fn in ops.items():
    for form, bshape in forms.items():
        case(f"{op}_{form}", fn, [randn(2, 3, 4), randn(*bshape)])
case("minimum", torch.minimum, [randn(5, 6), randn(5, 6)])

# unary ops (constants repeated in the C test)
case("scale", lambda x: x * -1.7, [randn(3, 5)])
case("add_scalar", lambda x: x + 0.3, [randn(3, 5)])
case("exp", torch.exp, [randn(3, 5)])
case("log", torch.log, [torch.rand(3, 5, generator=G) * 2 + 0.1])
case("tanh", torch.tanh, [randn(3, 5, scale=2)])
case("sigmoid", torch.sigmoid, [randn(3, 5, scale=3)])
case("relu", torch.relu, [randn(3, 5)])
case("relu6", F.relu6, [randn(4, 5, scale=4, shift=2)])
case("clamp", lambda x: torch.clamp(x, -0.5, 0.8), [randn(4, 5)])
case("gelu", lambda x: F.gelu(x, approximate="tanh"), [randn(4, 5, scale=2)])
# exactly at the kinks: relu/relu6 pass no gradient at 0 and 6, clamp passes it at lo and hi
kinks = torch.tensor([0.0, 6.0, -0.5, 0.8, -1.0, 3.0, 7.0, 0.5])
case("relu_kinks", torch.relu, [kinks])
case("relu6_kinks", F.relu6, [kinks])
case("clamp_kinks", lambda x: torch.clamp(x, -0.5, 0.8), [kinks])

# reductions and losses
case("sum", torch.sum, [randn(3, 5)])
case("mean", torch.mean, [randn(3, 5)])
case("sum_last", lambda x: x.sum(-1), [randn(2, 3, 5)])
case("sum_last1", lambda x: x.sum(-1), [randn(5)])
case("mse", F.mse_loss, [randn(4, 5), randn(4, 5)])
idx = torch.randint(0, 5, (6,), generator=G)
arrays["gather.idx"] = idx.to(torch.int32)
case("gather", lambda x: x.gather(1, idx[:, None]).squeeze(1), [randn(6, 5)])

# shapes
case("reshape", lambda x: x.reshape(6, 4), [randn(2, 3, 4)])
case("slice_rows", lambda x: x[1:4], [randn(6, 4)])
case("slice_cols", lambda x: x[..., 2:5], [randn(3, 4, 7)])
case("concat_cols", lambda *xs: torch.cat(xs, -1),
     [randn(2, 3, 2), randn(2, 3, 4), randn(2, 3, 1)])
case("concat_rows", lambda *xs: torch.cat(xs, 0),
     [randn(r, 3) for r in (1, 2, 3, 1, 2, 1)])

tfile.save(tfile.out_path(__file__), arrays)
