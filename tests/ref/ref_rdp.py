"""ref_rdp.py: fixtures for tests/test_rdp.c (the accountant, src/clip/rdp.c).

An independent reference, not a transcription of the series the C code sums:
A_alpha = E_{z ~ N(0, sigma^2)} [((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha]
(Mironov, Talwar and Zhang 2019, the definition behind Section 3.3), integrated
numerically with mpmath for integer and fractional orders; RDP = ln A / (alpha - 1).
The integral is of A - 1 (the integrand's ratio^alpha - 1 through expm1 and
log1p), so a small RDP keeps its digits at mpmath's 15 digits, split where the
integrand changes sign (z = 1/2) and around the two places its mass sits (near 0,
the Gaussian, and near z = alpha, where the mixture's tail takes over).

At integer orders A also has a closed form, the binomial sum
A = sum_k C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 sigma^2)):
every integer case of rdp_cases is checked against it here (the script fails if
the two disagree beyond 1e-12 relative), and epsilon over Opacus's orders uses
it at the integer orders (the numerical integral at the 99 fractional ones).
Then epsilon by both conversions, as a plain formula, in mpmath. (scipy is not
in Debian's python3 here, so Opacus's own file cannot run; the tf-privacy
vectors are in the C test.) About 5 s of CPU (the previous version, 20 digits
over 15 intervals and the integral at every order, took 11 s).

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

mp.mp.dps = 15


def rdp_quad(q, sigma, alpha):
    q, sigma, alpha = mp.mpf(q), mp.mpf(sigma), mp.mpf(alpha)

    def f(z):  # N(z; 0, sigma^2) (ratio(z)^alpha - 1)
        ratio_m1 = q * mp.expm1((2 * z - 1) / (2 * sigma ** 2))
        return mp.npdf(z, 0, sigma) * mp.expm1(alpha * mp.log1p(ratio_m1))

    pts = sorted({-8 * sigma, mp.mpf(0.5), 8 * sigma, alpha - 8 * sigma, alpha, alpha + 8 * sigma})
    pts = [-mp.inf] + [p for p in pts if p >= -8 * sigma] + [mp.inf]
    a_m1 = mp.quad(f, pts)
    return float(mp.log1p(a_m1) / (alpha - 1))


def rdp_binomial(q, sigma, alpha):
    """Integer alpha: the binomial expansion of E[ratio^alpha] (exact terms)."""
    assert alpha == int(alpha)
    n = int(alpha)
    q, sigma = mp.mpf(q), mp.mpf(sigma)
    a = mp.fsum(mp.binomial(n, k) * (1 - q) ** (n - k) * q ** k * mp.exp((k * k - k) / (2 * sigma ** 2))
                for k in range(n + 1))
    return float(mp.log(a) / (n - 1))


def rdp_ref(q, sigma, alpha):
    return rdp_binomial(q, sigma, alpha) if alpha == int(alpha) else rdp_quad(q, sigma, alpha)


def orders_opacus():
    return [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def eps_both(q, sigma, steps, delta):
    best_new, best_old = mp.inf, mp.inf
    for a in orders_opacus():
        r = mp.mpf(steps) * mp.mpf(rdp_ref(q, sigma, a))
        am = mp.mpf(a)
        new = r + mp.log((am - 1) / am) - (mp.log(delta) + mp.log(am)) / (am - 1)
        old = r - mp.log(delta) / (am - 1)
        best_new, best_old = min(best_new, new), min(best_old, old)
    return float(best_new), float(best_old)


def main(out):
    cases = []
    for q, sigma in [(0.01, 1.1), (2048 / 60000, 2.15), (0.1, 0.8), (0.004, 0.7), (0.3, 3.0)]:
        for alpha in [1.5, 2, 3, 7.3, 12, 32]:
            r = rdp_quad(q, sigma, alpha)
            if alpha == int(alpha):  # the integral against the closed form
                rb = rdp_binomial(q, sigma, alpha)
                if abs(r - rb) > 1e-12 * abs(rb):
                    sys.exit("ref_rdp.py: q=%g sigma=%g alpha=%g: integral %.17g, binomial sum %.17g"
                             % (q, sigma, alpha, r, rb))
            cases.append([q, sigma, alpha, r])
    eps = []
    for q, sigma, steps, delta in [(2048 / 60000, 2.15, 1172, 1e-5)]:
        e_new, e_old = eps_both(q, sigma, steps, delta)
        eps.append([q, sigma, steps, delta, e_new, e_old])
    save(os.path.join(out, "ref_rdp.bin"),
         {"rdp_cases@f64": np.array(cases, dtype=np.float64),
          "eps_cases@f64": np.array(eps, dtype=np.float64)})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/ref")
