"""ref_clip.py: fixtures for tests/test_clip.c (the clipping library, src/clip.c).

Run by `make build/ref/ref_clip.bin` with Debian's python3 (torch 1.13, numpy).
Everything is seeded. Sections (array name prefixes):

  gn_*    torch.nn.utils.clip_grad_norm_ (1.13: the norm of per-tensor norms)
          for p in {0.5, 1, 2, 3, inf}, below and above the threshold, plus
          zero gradients with max_norm 0 and inputs holding inf / NaN; the exact
          float64 norm of the concatenation for each p.
  cv_*    torch.nn.utils.clip_grad_value_ (NaN, inf, -0.0, negative clip value).
  pt_*    clip_grad_norm_ applied to each tensor alone (Keras clipnorm).
  agc_*   optax.adaptive_grad_clip, transcribed below from optax's code
          (unitwise_norm / unitwise_clip) in optax's own layout (linear [in,out],
          conv HWIO) and float64, on PyTorch-layout tensors transposed in and out.
  zc<k>_* ZClip, transcribed below from bluorion-com/ZClip zclip.py, run on a
          200-step gradient sequence with spikes, for several configurations.
  ag<k>_* AdaGC, transcribed below from the authors' Megatron-LM code
          (lishuai-97/AdaGC, megatron/optimizer/clip_grads.py, class AdaGC).
  au_*    auto threshold: numpy.percentile of the warm-up norms, then torch clip.
  pc_*    numpy.percentile on small samples (exact values for clip_percentile).

Transcriptions work on torch float32 tensors exactly as the references do;
the C side accumulates in double, so tests compare with stated tolerances.
Each stateful sequence is checked here for a margin around every clip decision
(no decision within 1e-4 relative of its boundary), so float32-vs-double norm
differences cannot flip a decision and the comparison is well-posed.
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfile  # noqa: E402

torch.set_num_threads(1)
OUT = {}
INF = float("inf")
PS = [("0p5", 0.5), ("1", 1.0), ("2", 2.0), ("3", 3.0), ("inf", INF)]


def as_params(flat, sizes):
    """One nn.Parameter per tensor, .grad = a float32 copy of its slice."""
    params, off = [], 0
    for n in sizes:
        p = torch.nn.Parameter(torch.zeros(n))
        p.grad = torch.tensor(flat[off:off + n], dtype=torch.float32)
        params.append(p)
        off += n
    return params


def grads_of(params):
    return torch.cat([p.grad.reshape(-1) for p in params]).numpy().copy()


def exact_norm(flat, p):
    x = np.abs(np.asarray(flat, dtype=np.float64))
    if p == INF:
        return x.max() if x.size else 0.0
    m = x.max()
    if m == 0 or not np.isfinite(m):
        return m
    return m * np.sum((x / m) ** p) ** (1.0 / p)


# ---------------------------------------------------------------- clip_grad_norm_
def global_norm_fixtures(rng):
    sizes = [37, 8 * 13, 4 * 3 * 5 * 2, 1, 64]
    x = (rng.standard_normal(sum(sizes)) * rng.choice([0.01, 1.0, 3.0], sum(sizes))).astype(np.float32)
    OUT["gn_sizes"] = np.array(sizes, dtype=np.int32)
    OUT["gn_in"] = x
    for tag, p in PS:
        params = as_params(x, sizes)
        exact = exact_norm(x, p)
        above = exact / 7.0  # max_norm well below the norm: clipped
        tot = torch.nn.utils.clip_grad_norm_(params, above, norm_type=p)
        OUT["gn_exact_%s@f64" % tag] = np.array([exact])
        OUT["gn_torch_norm_%s" % tag] = tot.reshape(1)
        OUT["gn_max_above_%s@f64" % tag] = np.array([above])
        OUT["gn_out_above_%s" % tag] = grads_of(params)
        params = as_params(x, sizes)
        below = exact * 3.0  # max_norm above the norm: untouched
        tot = torch.nn.utils.clip_grad_norm_(params, below, norm_type=p)
        OUT["gn_max_below_%s@f64" % tag] = np.array([below])
        OUT["gn_out_below_%s" % tag] = grads_of(params)
    # zero gradients, max_norm 0: coefficient 0, no NaN
    z = np.zeros(sum(sizes), dtype=np.float32)
    for tag, p in PS:
        params = as_params(z, sizes)
        tot = torch.nn.utils.clip_grad_norm_(params, 0.0, norm_type=p)
        OUT["gn_zero_norm_%s" % tag] = tot.reshape(1)
        OUT["gn_zero_out_%s" % tag] = grads_of(params)
    # non-finite entries
    xi = x.copy()
    xi[5] = np.inf
    xi[100] = -np.inf
    xn = x.copy()
    xn[50] = np.nan
    xb = xi.copy()
    xb[200] = np.nan  # both inf and NaN
    OUT["gn_inf_in"], OUT["gn_nan_in"], OUT["gn_both_in"] = xi, xn, xb
    for tag, p in PS:
        for name, arr in (("inf", xi), ("nan", xn), ("both", xb)):
            params = as_params(arr, sizes)
            tot = torch.nn.utils.clip_grad_norm_(params, 1.0, norm_type=p)
            OUT["gn_%s_norm_%s" % (name, tag)] = tot.reshape(1)
            OUT["gn_%s_out_%s" % (name, tag)] = grads_of(params)


# ---------------------------------------------------------------- clip_grad_value_
def clip_value_fixtures(rng):
    sizes = [20, 13, 1]
    x = (rng.standard_normal(sum(sizes)) * 2).astype(np.float32)
    x[0], x[1], x[2], x[3], x[4] = np.nan, np.inf, -np.inf, -0.0, 0.0
    x[5], x[6] = 0.5, -0.5  # exactly at the bounds
    OUT["cv_sizes"] = np.array(sizes, dtype=np.int32)
    OUT["cv_in"] = x
    for tag, v in (("pos", 0.5), ("neg", -0.3), ("zero", 0.0)):
        params = as_params(x, sizes)
        torch.nn.utils.clip_grad_value_(params, v)
        OUT["cv_v_%s@f64" % tag] = np.array([v])
        OUT["cv_out_%s" % tag] = grads_of(params)


# ---------------------------------------------------------------- per-tensor norm
def per_tensor_fixtures(rng):
    sizes = [50, 30, 7, 12]
    scales = [0.01, 1.0, 0.2, 5.0]  # with max_norm 0.5 some tensors clip, some do not
    x = np.concatenate([rng.standard_normal(n) * s for n, s in zip(sizes, scales)]).astype(np.float32)
    OUT["pt_sizes"] = np.array(sizes, dtype=np.int32)
    OUT["pt_in"] = x
    for tag, p in (("1", 1.0), ("2", 2.0), ("inf", INF)):
        params = as_params(x, sizes)
        norms = [torch.nn.utils.clip_grad_norm_([q], 0.5, norm_type=p).item() for q in params]
        OUT["pt_out_%s" % tag] = grads_of(params)
        OUT["pt_norms_%s" % tag] = np.array(norms, dtype=np.float32)


# ---------------------------------------------------------------- AGC (optax)
def optax_unitwise_norm(x):
    """optax.unitwise_norm with axis=None, float64 (optax layout)."""
    if np.squeeze(x).ndim <= 1:
        sq = np.sum(x ** 2, keepdims=True)
    elif x.ndim in (2, 3):  # linear [in, out]
        sq = np.sum(x ** 2, axis=0, keepdims=True)
    elif x.ndim == 4:  # conv HWIO
        sq = np.sum(x ** 2, axis=(0, 1, 2), keepdims=True)
    else:
        raise ValueError(x.shape)
    return np.broadcast_to(np.sqrt(sq), x.shape)


def optax_agc(grad, param, clipping, eps):
    """optax.adaptive_grad_clip's update for one leaf (unitwise_clip)."""
    g_norm, p_norm = optax_unitwise_norm(grad), optax_unitwise_norm(param)
    max_norm = clipping * np.maximum(p_norm, eps)
    clipped = grad * (max_norm / np.maximum(g_norm, 1e-6))
    return np.where(g_norm < max_norm, grad, clipped)


def to_optax(x):  # PyTorch [out][in...] -> optax layout
    return x.T if x.ndim == 2 else x.transpose(2, 3, 1, 0) if x.ndim == 4 else x


def from_optax(x, ndim):
    return x.T if ndim == 2 else x.transpose(3, 2, 0, 1) if ndim == 4 else x


def agc_fixtures(rng):
    clipping, eps = 0.05, 1e-3
    shapes = [(16,), (6, 10), (4, 3, 3, 3), (1,), (5, 1), (3, 4)]
    rows = [1, 6, 4, 1, 1, 3]  # (5, 1): optax squeezes it to a vector, one unit
    gs, ws, outs, units_clipped = [], [], [], []
    for shape, r in zip(shapes, rows):
        w = rng.standard_normal(shape)
        g = rng.standard_normal(shape)
        if len(shape) > 1 and shape[0] == r:  # per-row scale: some rows clip, some not
            for u in range(r):
                g[u] *= rng.choice([0.001, 0.01, 1.0, 10.0]) * np.linalg.norm(w[u]) / np.linalg.norm(g[u])
        if shape == (3, 4):
            w[1] = 0.0  # max(||W||, eps) picks eps
            g[2] = 0.0  # a zero-gradient unit
        w, g = w.astype(np.float32), g.astype(np.float32)
        out = optax_agc(to_optax(g.astype(np.float64)), to_optax(w.astype(np.float64)), clipping, eps)
        out = from_optax(out, len(shape)).astype(np.float32)
        gs.append(g.reshape(-1)), ws.append(w.reshape(-1)), outs.append(out.reshape(-1))
        units_clipped.append(int(np.any(out != g)))
    OUT["agc_sizes"] = np.array([g.size for g in gs], dtype=np.int32)
    OUT["agc_rows"] = np.array(rows, dtype=np.int32)
    OUT["agc_grad"] = np.concatenate(gs)
    OUT["agc_param"] = np.concatenate(ws)
    OUT["agc_out"] = np.concatenate(outs)
    OUT["agc_hp@f64"] = np.array([clipping, eps])


# ---------------------------------------------------------------- gradient sequence
SEQ_SIZES = [40, 120, 5]
SEQ_STEPS = 200


def spike_sequence(rng):
    """Per-step gradients: a slowly drifting global norm around 0.4-0.8 with
    noise, and spikes (some global, some in one tensor only)."""
    share = np.array([0.6, 0.3, 0.1])
    spikes = {10: (4, None), 40: (8, None), 41: (3, None), 80: (20, None), 110: (6, 1),
              120: (2.5, None), 135: (9, 0), 150: (6, None), 151: (6, None), 152: (6, None),
              170: (15, 2), 190: (50, None)}
    seq = np.zeros((SEQ_STEPS, sum(SEQ_SIZES)), dtype=np.float32)
    for s in range(SEQ_STEPS):
        base = 0.4 + 0.4 * s / SEQ_STEPS
        parts = []
        for i, n in enumerate(SEQ_SIZES):
            d = rng.standard_normal(n)
            tn = base * math.sqrt(share[i]) * (1 + 0.15 * rng.standard_normal())
            mult, which = spikes.get(s, (1.0, None))
            if which is None or which == i:
                tn *= mult
            parts.append(d / np.linalg.norm(d) * tn)
        seq[s] = np.concatenate(parts).astype(np.float32)
    return seq


def step_params(row):
    return as_params(row, SEQ_SIZES)


def total_l2(params):
    return torch.sqrt(torch.sum(torch.stack([p.grad.norm(2) for p in params]) ** 2)).item()


def margin_ok(a, b, what):
    assert abs(a - b) > 1e-4 * max(abs(a), abs(b)), "fixture decision too close: %s %r %r" % (what, a, b)


# ---------------------------------------------------------------- ZClip (reference transcription)
class ZClipRef:
    """bluorion-com/ZClip zclip.py, step() on a list of parameters."""

    def __init__(self, alpha=0.97, z_thresh=2.5, max_grad_norm=1.0, eps=1e-6, warmup_steps=25,
                 mode="zscore", clip_option="adaptive_scaling", clip_factor=1.0,
                 skip_update_on_spike=False):
        self.alpha, self.z_thresh, self.max_grad_norm, self.eps = alpha, z_thresh, max_grad_norm, eps
        self.warmup_steps, self.mode, self.clip_option = warmup_steps, mode, clip_option
        self.clip_factor, self.skip_update_on_spike = clip_factor, skip_update_on_spike
        self.buffer, self.initialized, self.mean, self.var = [], False, None, None

    def _init_ema(self):
        self.mean = sum(self.buffer) / len(self.buffer)
        self.var = sum((x - self.mean) ** 2 for x in self.buffer) / len(self.buffer)
        self.initialized, self.buffer = True, []

    def _update_ema(self, x):
        self.mean = self.alpha * self.mean + (1 - self.alpha) * x
        self.var = self.alpha * self.var + (1 - self.alpha) * (x - self.mean) ** 2

    def _clip_val(self, g):
        std = self.var ** 0.5
        if self.mode == "percentile":
            thr = self.mean + self.z_thresh * std
            margin_ok(g, thr, "zclip percentile")
            return thr if g > thr else None
        z = (g - self.mean) / (std + self.eps)
        margin_ok(z, self.z_thresh, "zclip z")
        if z > self.z_thresh:
            if self.clip_option == "adaptive_scaling":
                eta = z / self.z_thresh
                return (self.mean + (self.z_thresh * std) / eta) * self.clip_factor
            return self.mean
        return None

    def step(self, params):
        g = total_l2(params)
        if not self.initialized:
            self.buffer.append(g)
            if len(self.buffer) >= self.warmup_steps:
                self._init_ema()
            if self.max_grad_norm is not None:
                margin_ok(g, self.max_grad_norm, "zclip warm-up")
                torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
            thr = self.max_grad_norm if self.max_grad_norm is not None else INF
            return g, thr, False
        clip_val = self._clip_val(g)
        adaptive = clip_val if clip_val is not None else g
        eff = min(adaptive, self.max_grad_norm) if self.max_grad_norm is not None else adaptive
        if eff != g:
            margin_ok(g, eff, "zclip effective")
        coef = eff / (g + 1e-6) if g > eff else 1.0
        if coef < 1.0:
            for p in params:
                p.grad.mul_(coef)
        if not (clip_val is not None and self.skip_update_on_spike):
            self._update_ema(clip_val if clip_val is not None else g)
        return g, eff, clip_val is not None


ZCLIP_CONFIGS = [  # (kwargs, C-side params: max, mode, option, warmup, clip_factor, skip)
    dict(),
    dict(max_grad_norm=None),
    dict(max_grad_norm=None, mode="percentile"),
    dict(max_grad_norm=2.0, clip_option="mean"),
    dict(max_grad_norm=None, clip_factor=0.8, skip_update_on_spike=True, warmup_steps=10),
    dict(warmup_steps=0),  # one warm-up norm, variance 0: every later norm above it is a spike
    dict(alpha=0.9, z_thresh=2.0, eps=1e-3),
    dict(max_grad_norm=0.6),  # the cap binds below spike thresholds: EMA still takes clip_val
]


def zclip_fixtures(seq):
    OUT["seq_sizes"] = np.array(SEQ_SIZES, dtype=np.int32)
    OUT["seq_in"] = seq
    for k, kw in enumerate(ZCLIP_CONFIGS):
        z = ZClipRef(**kw)
        full = dict(alpha=z.alpha, z_thresh=z.z_thresh,
                    max_grad_norm=INF if z.max_grad_norm is None else z.max_grad_norm,
                    eps=z.eps, clip_factor=z.clip_factor, warmup=z.warmup_steps,
                    mode=1 if z.mode == "percentile" else 0,
                    option=1 if z.clip_option == "mean" else 0, skip=int(z.skip_update_on_spike))
        norms, thr, spike, mean, var, out = [], [], [], [], [], []
        for s in range(SEQ_STEPS):
            params = step_params(seq[s])
            g, t, sp = z.step(params)
            norms.append(g), thr.append(t), spike.append(sp)
            mean.append(np.nan if z.mean is None else z.mean)
            var.append(np.nan if z.var is None else z.var)
            out.append(grads_of(params))
        assert sum(spike) >= 3, "config %d: too few spikes to test" % k
        OUT["zc%d_hp@f64" % k] = np.array([full[n] for n in ("alpha", "z_thresh", "max_grad_norm",
                                                             "eps", "clip_factor")])
        OUT["zc%d_ip" % k] = np.array([full["warmup"], full["mode"], full["option"], full["skip"]],
                                      dtype=np.int32)
        OUT["zc%d_norm@f64" % k] = np.array(norms)
        OUT["zc%d_thr@f64" % k] = np.array(thr)
        OUT["zc%d_spike" % k] = np.array(spike, dtype=np.int32)
        OUT["zc%d_mean@f64" % k] = np.array(mean)
        OUT["zc%d_var@f64" % k] = np.array(var)
        OUT["zc%d_out" % k] = np.stack(out)


# ---------------------------------------------------------------- AdaGC (reference transcription)
class AdaGCRef:
    """lishuai-97/AdaGC megatron/optimizer/clip_grads.py class AdaGC (L2,
    one process, so no all-reduce), on CPU float32 tensors."""

    def __init__(self, clip_ratio, beta, start_clip_steps, max_norm, eps=1e-6):
        self.clip_ratio, self.beta, self.start, self.max_norm, self.eps = clip_ratio, beta, start_clip_steps, max_norm, eps
        self.steps, self.state = 0, {}

    def step(self, params):
        self.steps += 1
        grads = [p.grad for p in params]
        total = torch.sqrt(torch.sum(torch.stack([g.norm(2) for g in grads]) ** 2)).item()
        clipped = 0
        if self.steps <= self.start:
            coef = self.max_norm / (total + self.eps)
            margin_ok(total, self.max_norm, "adagc warm-up")
            if coef < 1.0:
                for g in grads:
                    g.mul_(coef)
            for i, g in enumerate(grads):
                nv = torch.norm(g, 2)
                if i not in self.state or nv < self.state[i]:
                    self.state[i] = nv
        else:
            for i, g in enumerate(grads):
                nv = torch.norm(g, 2)
                if i not in self.state:
                    self.state[i] = nv
                avg = self.state[i]
                margin_ok(nv.item(), (self.clip_ratio * avg).item(), "adagc relative")
                if nv > self.clip_ratio * avg:
                    g.mul_((self.clip_ratio * avg) / (nv + self.eps))
                    nv = self.clip_ratio * avg
                    clipped += 1
                self.state[i] = avg * self.beta + nv * (1.0 - self.beta)
        return total, clipped, [self.state[i].item() for i in range(len(grads))]


ADAGC_CONFIGS = [  # beta, lambda_rel, lambda_abs, warmup
    (0.98, 1.05, 1.0, 100),
    (0.9, 1.2, 0.5, 20),
    (0.98, 1.05, 1.0, 0),
]


def adagc_fixtures(seq):
    for k, (beta, rel, lam_abs, warm) in enumerate(ADAGC_CONFIGS):
        a = AdaGCRef(rel, beta, warm, lam_abs)
        norms, nclip, gammas, out = [], [], [], []
        for s in range(SEQ_STEPS):
            params = step_params(seq[s])
            g, c, gam = a.step(params)
            norms.append(g), nclip.append(c), gammas.append(gam)
            out.append(grads_of(params))
        assert sum(nclip) >= 3, "AdaGC config %d: too few clips to test" % k
        OUT["ag%d_hp@f64" % k] = np.array([beta, rel, lam_abs])
        OUT["ag%d_warmup" % k] = np.array([warm], dtype=np.int32)
        OUT["ag%d_norm@f64" % k] = np.array(norms)
        OUT["ag%d_nclip" % k] = np.array(nclip, dtype=np.int32)
        OUT["ag%d_gamma@f64" % k] = np.array(gammas)
        OUT["ag%d_out" % k] = np.stack(out)


# ---------------------------------------------------------------- auto threshold
def auto_fixtures(seq):
    warm, q = 100, 90.0
    sizes = np.array(SEQ_SIZES)
    ends = np.cumsum(sizes)
    norms = []
    for s in range(SEQ_STEPS):
        parts = np.split(seq[s].astype(np.float64), ends[:-1])
        norms.append(math.sqrt(sum(np.sum(p * p) for p in parts)))
    thr = np.percentile(np.array(norms[:warm]), q)
    out = []
    for s in range(SEQ_STEPS):
        params = step_params(seq[s])
        if s >= warm:
            margin_ok(norms[s], thr, "auto")
            torch.nn.utils.clip_grad_norm_(params, thr)
        out.append(grads_of(params))
    OUT["au_hp@f64"] = np.array([q, thr])
    OUT["au_warmup"] = np.array([warm], dtype=np.int32)
    OUT["au_norm@f64"] = np.array(norms)
    OUT["au_out"] = np.stack(out)


def percentile_fixtures(rng):
    qs = [0.0, 10.0, 25.0, 33.3, 50.0, 75.0, 90.0, 95.0, 99.0, 100.0]
    qs += sorted(rng.uniform(0, 100, 60).tolist())
    OUT["pc_q@f64"] = np.array(qs)
    lerp_matters = 0  # cases where numpy's two-sided lerp differs from a + (b-a)*t
    for n in (1, 2, 7, 100):
        x = rng.lognormal(0.0, 1.0, n).astype(np.float32).astype(np.float64)
        OUT["pc_x%d@f64" % n] = x
        OUT["pc_p%d@f64" % n] = np.array([np.percentile(x, q) for q in qs])
        xs = np.sort(x)
        for q in qs:
            h = (n - 1) * (q / 100)
            if h < n - 1:
                lo = int(math.floor(h))
                lerp_matters += xs[lo] + (xs[lo + 1] - xs[lo]) * (h - lo) != np.percentile(x, q)
    assert lerp_matters >= 2, "percentile fixture does not distinguish numpy's lerp"


def main():
    rng = np.random.default_rng(20250501)
    torch.manual_seed(0)
    global_norm_fixtures(rng)
    clip_value_fixtures(rng)
    per_tensor_fixtures(rng)
    agc_fixtures(rng)
    seq = spike_sequence(rng)
    zclip_fixtures(seq)
    adagc_fixtures(seq)
    auto_fixtures(seq)
    percentile_fixtures(rng)
    tfile.save(tfile.out_path(__file__), OUT)


if __name__ == "__main__":
    main()
