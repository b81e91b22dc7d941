"""ref_rdp.py: fixtures for tests/test_rdp.c (the accountant, src/clip/rdp.c).

An independent reference, not a transcription of the series the C code sums:
A_alpha = E_{z ~ N(0, sigma^2)} [((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha]
(Mironov, Talwar and Zhang 2019, the definition behind Section 3.3), integrated
numerically with mpmath at 20 digits, for integer and fractional orders;
RDP = ln A / (alpha - 1). Then epsilon by both conversions, as a plain formula
over Opacus's orders, in mpmath. (scipy is not in Debian's python3 here, so
Opacus's own file cannot run; the tf-privacy vectors are in the C test.)

rdp_cases@f64   [k, 4]: q, sigma, alpha, RDP of one step
eps_cases@f64   [m, 6]: q, sigma, steps, delta, eps (Balle 2020), eps (Mironov 2017),
                        both over Opacus's orders 1.1..10.9, 12..63
"""
import os
import sys

import mpmath as mp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from tfile import save  # noqa: E402

mp.mp.dps = 20


def rdp_quad(q, sigma, alpha):
    q, sigma, alpha = mp.mpf(q), mp.mpf(sigma), mp.mpf(alpha)

    def f(z):
        mu0 = mp.npdf(z, 0, sigma)
        ratio = (1 - q) + q * mp.exp((2 * z - 1) / (2 * sigma ** 2))
        return mu0 * ratio ** alpha

    # the mass sits near 0 (mu0) and, for large alpha, far right: split finely
    pts = [-mp.inf] + [mp.mpf(x) * sigma for x in range(-12, 61, 6)] + [mp.inf]
    a = mp.quad(f, pts)
    return float(mp.log(a) / (alpha - 1))


def orders_opacus():
    return [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def eps_both(q, sigma, steps, delta):
    best_new, best_old = mp.inf, mp.inf
    for a in orders_opacus():
        r = mp.mpf(steps) * mp.mpf(rdp_quad(q, sigma, a))
        am = mp.mpf(a)
        new = r + mp.log((am - 1) / am) - (mp.log(delta) + mp.log(am)) / (am - 1)
        old = r - mp.log(delta) / (am - 1)
        best_new, best_old = min(best_new, new), min(best_old, old)
    return float(best_new), float(best_old)


def main(out):
    cases = []
    for q, sigma in [(0.01, 1.1), (2048 / 60000, 2.15), (0.1, 0.8), (0.004, 0.7), (0.3, 3.0)]:
        for alpha in [1.5, 2, 3, 7.3, 12, 32]:
            cases.append([q, sigma, alpha, rdp_quad(q, sigma, alpha)])
    eps = []
    for q, sigma, steps, delta in [(2048 / 60000, 2.15, 1172, 1e-5)]:
        e_new, e_old = eps_both(q, sigma, steps, delta)
        eps.append([q, sigma, steps, delta, e_new, e_old])
    save(os.path.join(out, "ref_rdp.bin"),
         {"rdp_cases@f64": np.array(cases, dtype=np.float64),
          "eps_cases@f64": np.array(eps, dtype=np.float64)})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/ref")
