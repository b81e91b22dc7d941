"""ref_sweep.py: the sweep's numbers, computed again in Python from the runs.

Two uses:
  ref_sweep.py BUILD_DIR       (make test) writes BUILD_DIR/ref_sweep.bin: inputs
                               with NaNs and numpy's nanmedian of each, for
                               sweep_median().
  ref_sweep.py check RUN_DIR   reads each run's metrics.csv under RUN_DIR (a
                               sweep's folder) and recomputes every run's status,
                               final/best metric, clip fraction and median pre-clip
                               norm, then the summary's median/min/max/counts per
                               line and x; compares with sweep.csv and summary.csv
                               and exits 1 listing each mismatch.
The rules (sweep_summary.c): a run diverged when its last row has a non-finite
loss or grad_norm, at the first such row's step, and then has no final value;
final = the metric's last non-NaN value; best = min (max when higher is better)
of its finite values; grad_clip_frac = the last row's; median over finite grad_norm.
A line is a group plus the values of its swept keys other than the x key (the
first numeric one); a point is the median/min/max over the runs of that line and
x that neither diverged nor failed; the map's value is the median of the same
runs and the diverged ones counted as the worst value (+inf, or -inf when
higher is better: HIGHER_IS_BETTER below says which, per metric).
"""
import csv
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# Which way each model's main metric is better, known here and not read from the
# C code (ModelDef.main_metric_higher): a loss is lower-is-better; an accuracy,
# a return and a share of good samples are higher-is-better.
HIGHER_IS_BETTER = {
    "val_loss": False,    # rnn, transformer, cliff (the default metric)
    "hq_frac": True,      # wgan: share of generated samples near a mode
    "return_100": True,   # ppo: mean return of the last 100 episodes
    "val_acc": True,      # mobilenet: held-out accuracy
}


def close(a, b, rtol=2e-5):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if math.isnan(a) and math.isnan(b):
        return True
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-12 + rtol * abs(b)


def num(s):
    return float("nan") if s in ("", "nan", "-nan") else float(s)


def run_values(metrics_path, metric, higher):
    with open(metrics_path) as f:
        rows = list(csv.DictReader(f))
    norms, first_bad, last_bad = [], None, False
    final, best, frac = float("nan"), float("nan"), float("nan")
    for r in rows:
        loss, g = num(r["loss"]), num(r["grad_norm"])
        last_bad = not (math.isfinite(loss) and math.isfinite(g))
        if last_bad and first_bad is None:
            first_bad = int(float(r["step"]))
        if math.isfinite(g):
            norms.append(g)
        if not math.isnan(num(r["grad_clip_frac"])):
            frac = num(r["grad_clip_frac"])
        m = num(r.get(metric, "nan"))
        if not math.isnan(m):
            final = m
        if math.isfinite(m) and (math.isnan(best) or (m > best if higher else m < best)):
            best = m
    status = "diverged at step %d" % first_bad if last_bad else "ok"
    if last_bad:
        final = float("nan")
    med = float(np.median(norms)) if norms else float("nan")
    return status, final, best, frac, med


def check(run_dir):
    with open(os.path.join(run_dir, "sweep.csv")) as f:
        sweep = list(csv.DictReader(f))
    metric = [c for c in sweep[0] if c.startswith("final_")][0][len("final_"):]
    if metric not in HIGHER_IS_BETTER:
        print("ref_sweep: metric %s: is higher or lower better? Add it to HIGHER_IS_BETTER" % metric)
        return 1
    higher = HIGHER_IS_BETTER[metric]
    fixed = {"run", "group", "seed", "status", "final_" + metric, "best_" + metric,
             "grad_clip_frac", "median_grad_norm", "wall_s"}
    keys = [c for c in sweep[0] if c not in fixed]
    bad = []
    vals = {}
    for row in sweep:
        if row["status"].startswith("error"):
            # the worker's exit status is not in metrics.csv: nothing to recompute
            vals[row["run"]] = (row["status"], float("nan"), float("nan"), float("nan"), float("nan"))
            continue
        got = run_values(os.path.join(run_dir, row["run"], "metrics.csv"), metric, higher)
        want = (row["status"], num(row["final_" + metric]), num(row["best_" + metric]),
                num(row["grad_clip_frac"]), num(row["median_grad_norm"]))
        for name, a, b in zip(("status", "final", "best", "grad_clip_frac", "median_grad_norm"), got, want):
            if not close(b, a):
                bad.append("%s: %s sweep.csv %r, python %r" % (row["run"], name, b, a))
        vals[row["run"]] = got
    # lines: the x key of a group is its first swept key whose values are all numbers
    groups = {}
    for row in sweep:
        groups.setdefault(row["group"], []).append(row)
    expect = {}
    for g, rows in groups.items():
        swept = [k for k in keys if all(r[k] != "" for r in rows)]
        xk = None
        for k in swept:
            try:
                [float(r[k]) for r in rows]
                xk = k
                break
            except ValueError:
                pass
        for r in rows:
            parts = ([g] if g else []) + ["%s=%s" % (k, r[k]) for k in swept if k != xk]
            label = " ".join(parts) or ("all runs" if xk else "baseline")
            x = float(r[xk]) if xk else float("nan")
            e = expect.setdefault((label, None if xk is None else round(x, 12)),
                                  {"runs": 0, "ok": 0, "div": 0, "err": 0, "v": []})
            e["runs"] += 1
            st, final = vals[r["run"]][0], vals[r["run"]][1]
            if st.startswith("diverged"):
                e["div"] += 1
            elif r["status"].startswith("error") or not math.isfinite(final):
                e["err"] += 1
            else:
                e["ok"] += 1
                e["v"].append(final)
    with open(os.path.join(run_dir, "summary.csv")) as f:
        summary = list(csv.DictReader(f))
    if len(summary) != len(expect):
        bad.append("summary.csv has %d points, python %d" % (len(summary), len(expect)))
    for row in summary:
        x = None if row["x"] == "" else round(float(row["x"]), 12)
        e = expect.get((row["line"], x))
        if e is None:
            bad.append("summary.csv point %s x=%s: python has no such point" % (row["line"], row["x"]))
            continue
        v = np.array(e["v"])
        # diverged runs count as the worst value: -inf when higher is better
        worst = np.concatenate([v, np.full(e["div"], -np.inf if higher else np.inf)])
        want = {"runs": e["runs"], "ok": e["ok"], "diverged": e["div"], "errors": e["err"],
                "median_final_" + metric: float(np.median(v)) if len(v) else float("nan"),
                "min_final_" + metric: float(v.min()) if len(v) else float("nan"),
                "max_final_" + metric: float(v.max()) if len(v) else float("nan"),
                "frac_diverged": e["div"] / e["runs"],
                "median_final_%s_diverged_as_worst" % metric:
                    float(np.median(worst)) if len(worst) else float("nan")}
        for k, w in want.items():
            # sweep.csv rounds to 6 digits; the summary is computed from full precision
            if not close(num(row[k]), float(w), 1e-5):
                bad.append("summary %s x=%s %s: C %s, python %r" % (row["line"], row["x"], k, row[k], w))
    for b in bad:
        print("ref_sweep: " + b)
    print("ref_sweep: %d runs, %d summary points checked, %d mismatches" % (len(sweep), len(summary), len(bad)))
    return 1 if bad else 0


def fixtures(out_dir):
    from tfile import save
    rng = np.random.default_rng(13)
    arrays = {}
    cases = [np.array([3.0, 1.0, 2.0]), np.array([4.0, 1.0, 3.0, 2.0]),
             np.array([np.nan, 5.0, np.inf, 1.0, -np.inf, 2.0]), np.array([np.nan, np.nan]),
             rng.standard_normal(101), rng.lognormal(size=64)]
    for i, c in enumerate(cases):
        finite = c[np.isfinite(c)]
        arrays["in%d@f64" % i] = c.astype(np.float64)
        arrays["median%d@f64" % i] = np.array([np.median(finite) if len(finite) else np.nan])
    arrays["ncases"] = np.array([len(cases)], dtype=np.int32)
    save(os.path.join(out_dir, "ref_sweep.bin"), arrays)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2]))
    fixtures(sys.argv[1])
