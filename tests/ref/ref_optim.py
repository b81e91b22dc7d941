"""ref_optim.py: torch.optim trajectories and lr_scheduler values for tests/test_optim.c.

Two parameters, as two param groups: w [5, 7] with weight decay, b [7] without.
STEPS seeded gradients are applied at learning rate lr * LR_FACTOR[k] (so the C
side must honour the lr passed to optim_step); the parameters after every step
are saved for each optimizer variant. Single-tensor code path (foreach=False).

Schedules: warm-up from LambdaLR, decay from CosineAnnealingLR / LinearLR
started at the end of warm-up, read from optimizer.param_groups after each
scheduler.step().
"""
import math

import torch

from tfile import out_path, save

STEPS = 5
LR_FACTOR = [1.0, 0.5, 1.0, 2.0, 0.25]

# name -> (torch class, kwargs); weight_decay goes to w's group only.
VARIANTS = {
    "sgd": (torch.optim.SGD, dict(lr=0.1)),
    "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgd_wd": (torch.optim.SGD, dict(lr=0.1, momentum=0.5, weight_decay=0.05)),
    "adam": (torch.optim.Adam, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8)),
    "adam_wd": (torch.optim.Adam, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)),
    "adamw": (torch.optim.AdamW, dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    "rmsprop": (torch.optim.RMSprop, dict(lr=1e-2, alpha=0.99, eps=1e-8)),
    "rmsprop_momentum": (torch.optim.RMSprop, dict(lr=1e-2, alpha=0.9, eps=1e-8, momentum=0.9)),
    "rmsprop_wd": (torch.optim.RMSprop, dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.05)),
}

# name -> (schedule, lr, warmup, min_lr, total); must match SCHEDULES in test_optim.c.
SCHEDULES = {
    "constant_warmup": ("constant", 0.1, 5, 0.0, 20),
    "cosine": ("cosine", 0.1, 0, 0.0, 20),
    "cosine_warmup": ("cosine", 0.1, 5, 1e-3, 25),
    "linear": ("linear", 0.05, 0, 0.0, 10),
    "linear_warmup": ("linear", 0.1, 4, 0.01, 24),
}


def trajectory(cls, kw, w0, b0, gw, gb):
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    kw = dict(kw)
    wd = kw.pop("weight_decay", 0.0)
    opt = cls([{"params": [w], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0}],
              foreach=False, **kw)
    ws, bs = [], []
    for k in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = kw["lr"] * LR_FACTOR[k]
        w.grad = gw[k].clone()
        b.grad = gb[k].clone()
        opt.step()
        ws.append(w.detach().clone())
        bs.append(b.detach().clone())
    return torch.stack(ws), torch.stack(bs)


def lrs_of(sched, opt, n):
    """Learning rates at epochs 0..n-1 of a torch scheduler."""
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: changes nothing, keeps the scheduler from warning
        sched.step()
    return out


def schedule_lrs(kind, lr, warmup, min_lr, total):
    """lr at steps 0..total + 3 (past the end to check the hold at min_lr)."""
    n = total + 4
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    warm = lrs_of(torch.optim.lr_scheduler.LambdaLR(opt, lambda e: (e + 1) / warmup), opt,
                  warmup) if warmup else []
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    span = total - warmup
    if kind == "constant":
        rest = [lr] * (n - warmup)
    elif kind == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=span, eta_min=min_lr)
        rest = lrs_of(sched, opt, span + 1)
        rest += [min_lr] * (n - warmup - len(rest))  # we hold; CosineAnnealingLR would rise again
    else:
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=min_lr / lr,
                                                  total_iters=span)
        rest = lrs_of(sched, opt, n - warmup)
    return warm + rest


def main():
    g = torch.Generator().manual_seed(1234)
    w0 = torch.randn(5, 7, generator=g)
    b0 = torch.randn(7, generator=g)
    gw = torch.randn(STEPS, 5, 7, generator=g) * 0.5
    gb = torch.randn(STEPS, 7, generator=g) * 0.5
    gw[2] *= 10.0  # one large gradient, as before a spike
    out = {"w0": w0, "b0": b0, "gw": gw, "gb": gb,
           "lr_factor@f64": torch.tensor(LR_FACTOR, dtype=torch.float64)}
    for name, (cls, kw) in VARIANTS.items():
        out[name + ".w"], out[name + ".b"] = trajectory(cls, kw, w0, b0, gw, gb)
    for name, args in SCHEDULES.items():
        lrs = schedule_lrs(*args)
        assert all(math.isfinite(x) for x in lrs)
        out["sched." + name + "@f64"] = torch.tensor(lrs, dtype=torch.float64)
    save(out_path(__file__), out)


if __name__ == "__main__":
    main()
