/* rdp.c: the RDP accountant of rdp.h. All arithmetic in double and in log
 * space (the terms of A_alpha span hundreds of orders of magnitude).
 * log A_alpha, Mironov, Talwar and Zhang 2019, Section 3.3:
 *   integer alpha:    A = sum_{i=0..alpha} C(alpha,i) q^i (1-q)^(alpha-i) exp((i^2-i)/(2 sigma^2))
 *   fractional alpha: A = A0 + A1, two series split at z0 = sigma^2 ln(1/q - 1) + 1/2, with
 *                     erfc tails; summed until both terms fall below e^-30 (as Opacus). */
#include "rdp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ln(e^a + e^b) */
static double log_add(double a, double b) {
    double lo = a < b ? a : b, hi = a < b ? b : a;
    if (lo == -INFINITY) return hi;
    return log1p(exp(lo - hi)) + hi;
}

/* ln(e^a - e^b), a >= b (Opacus's _log_sub; -inf for 0) */
static double log_sub(double a, double b) {
    if (a < b) {
        fprintf(stderr, "rdp: log_sub of a larger number (%g < %g)\n", a, b);
        abort();
    }
    if (b == -INFINITY) return a;
    if (a == b) return -INFINITY;
    double d = expm1(a - b);
    return isinf(d) ? a : log(d) + b;
}

/* ln erfc(x), accurate where erfc underflows: for x > 20 the asymptotic series
 * erfc(x) = e^-x^2 / (x sqrt(pi)) (1 - 1/(2x^2) + 3/(2x^2)^2 - 15/(2x^2)^3 ...). */
static double log_erfc(double x) {
    if (x < 20.0) return log(erfc(x));
    double t = 1.0 / (2.0 * x * x), term = 1.0, sum = 1.0;
    for (int k = 1; k < 12; k++) {
        term *= -(2.0 * k - 1.0) * t;
        sum += term;
    }
    return -x * x - log(x) - 0.5 * log(M_PI) + log(sum);
}

static double log_a_int(double q, double sigma, int alpha) {
    double la = -INFINITY, lq = log(q), l1q = log1p(-q);
    double lga = lgamma(alpha + 1.0);
    for (int i = 0; i <= alpha; i++) {
        double lcoef = lga - lgamma(i + 1.0) - lgamma(alpha - i + 1.0) + i * lq + (alpha - i) * l1q;
        la = log_add(la, lcoef + ((double)i * i - i) / (2.0 * sigma * sigma));
    }
    return la;
}

static double log_a_frac(double q, double sigma, double alpha) {
    double la0 = -INFINITY, la1 = -INFINITY, lq = log(q), l1q = log1p(-q);
    double z0 = sigma * sigma * log(1.0 / q - 1.0) + 0.5, s2 = sigma * sigma;
    double coef = 1.0; /* C(alpha, i), by the recurrence C(a,i) = C(a,i-1) (a-i+1)/i */
    for (int i = 0;; i++) {
        if (i > 0) coef *= (alpha - i + 1.0) / i;
        double j = alpha - i, lcoef = log(fabs(coef));
        double lt0 = lcoef + i * lq + j * l1q, lt1 = lcoef + j * lq + i * l1q;
        double le0 = log(0.5) + log_erfc((i - z0) / (M_SQRT2 * sigma));
        double le1 = log(0.5) + log_erfc((z0 - j) / (M_SQRT2 * sigma));
        double ls0 = lt0 + ((double)i * i - i) / (2.0 * s2) + le0;
        double ls1 = lt1 + (j * j - j) / (2.0 * s2) + le1;
        if (coef > 0) {
            la0 = log_add(la0, ls0);
            la1 = log_add(la1, ls1);
        } else {
            la0 = log_sub(la0, ls0);
            la1 = log_sub(la1, ls1);
        }
        if (fmax(ls0, ls1) < -30.0) break;
    }
    return log_add(la0, la1);
}

double rdp_sampled_gaussian(double q, double sigma, double alpha) {
    if (q == 0.0) return 0.0;
    if (sigma == 0.0) return INFINITY;
    if (q == 1.0) return alpha / (2.0 * sigma * sigma);
    if (isinf(alpha)) return INFINITY;
    if (isinf(sigma)) return 0.0;
    double la = alpha == floor(alpha) && alpha < 1e6 ? log_a_int(q, sigma, (int)alpha)
                                                     : log_a_frac(q, sigma, alpha);
    return la / (alpha - 1.0);
}

void rdp_compute(double *rdp, const double *orders, int n, double q, double sigma, long steps) {
    for (int i = 0; i < n; i++) rdp[i] = (double)steps * rdp_sampled_gaussian(q, sigma, orders[i]);
}

int rdp_orders(double *out, RdpOrderSet set) {
    int n = 0;
    if (set == RDP_ORDERS_TF) {
        static const double head[] = {1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5};
        for (int i = 0; i < 10; i++) out[n++] = head[i];
        for (int a = 5; a < 64; a++) out[n++] = a;
        out[n++] = 128;
        out[n++] = 256;
        out[n++] = 512;
    } else {
        for (int x = 1; x < 100; x++) out[n++] = 1.0 + x / 10.0;
        for (int a = 12; a < 64; a++) out[n++] = a;
    }
    return n;
}

/* epsilon at one order by each rule (inf where the order cannot be used) */
static double eps_at(double a, double r, double delta, RdpConversion rule) {
    if (isnan(r) || isinf(r)) return INFINITY;
    if (rule == RDP_CONVERT_MIRONOV2017) return r - log(delta) / (a - 1.0);
    /* dp_accounting's compute_epsilon: the KL bound gives 0 when delta^2 >
     * 1 - e^-r; the Balle et al. bound is unstable for alpha -> 1 */
    if (delta * delta + expm1(-r) > 0) return 0.0;
    if (a > 1.01) return r + log1p(-1.0 / a) - log(delta * a) / (a - 1.0);
    return INFINITY;
}

double rdp_epsilon(const double *orders, const double *rdp, int n, double delta, RdpConversion rule,
                   double *best_order) {
    double best = INFINITY, at = NAN;
    for (int i = 0; i < n; i++) {
        double e = eps_at(orders[i], rdp[i], delta, rule);
        if (e < best) {
            best = e;
            at = orders[i];
        }
    }
    if (best_order) *best_order = at;
    return best < 0 ? 0.0 : best;
}

double rdp_dpsgd_epsilon(double q, double sigma, long steps, double delta, RdpOrderSet set,
                         RdpConversion rule, double *best_order) {
    double orders[RDP_MAX_ORDERS], rdp[RDP_MAX_ORDERS];
    int n = rdp_orders(orders, set);
    rdp_compute(rdp, orders, n, q, sigma, steps);
    return rdp_epsilon(orders, rdp, n, delta, rule, best_order);
}

double rdp_noise_multiplier(double target_eps, double delta, double q, long steps, RdpOrderSet set,
                            RdpConversion rule, double tol) {
    double lo = 0.0, hi = 10.0, eps_hi = INFINITY;
    while (eps_hi > target_eps) {
        hi *= 2.0;
        eps_hi = rdp_dpsgd_epsilon(q, hi, steps, delta, set, rule, NULL);
        if (hi > 1e6) return NAN;
    }
    while (target_eps - eps_hi > tol) {
        double mid = 0.5 * (lo + hi);
        double e = rdp_dpsgd_epsilon(q, mid, steps, delta, set, rule, NULL);
        if (e < target_eps) {
            hi = mid;
            eps_hi = e;
        } else {
            lo = mid;
        }
    }
    return hi;
}
