/* rdp.h: the DP-SGD privacy accountant. Renyi differential privacy (RDP) of
 * the sampled Gaussian mechanism (Mironov, Talwar and Zhang 2019,
 * arXiv:1908.10530, Section 3.3: integer orders by the binomial expansion,
 * fractional orders by the erfc series), composed over steps (RDP adds), and
 * converted to (epsilon, delta). Depends on libc and libm only, like clip.h,
 * so anyone can drop rdp.h and rdp.c into their own trainer.
 *
 * Semantics follow opacus/accountants/analysis/rdp.py and tf-privacy's
 * compute_dp_sgd_privacy_lib (dp_accounting's RdpAccountant), so a user can
 * check our numbers against the tools they know:
 *   q = 0 -> RDP 0; sigma = 0 -> RDP inf (no privacy); q = 1 -> alpha/(2 sigma^2).
 * Two conversions to (epsilon, delta):
 *   RDP_CONVERT_BALLE2020   eps = min over alpha of
 *                           RDP(alpha) + ln((alpha-1)/alpha) - (ln delta + ln alpha)/(alpha-1)
 *                           (Balle et al. 2020, Thm 21; Opacus and dp_accounting now; with
 *                           dp_accounting's guards: alpha <= 1.01 unusable, eps >= 0)
 *   RDP_CONVERT_MIRONOV2017 eps = min over alpha of RDP(alpha) - ln delta/(alpha-1)
 *                           (Mironov 2017, Prop. 3: Abadi's moments accountant and
 *                           every epsilon published before 2021 used it)
 * Orders: Opacus's default (1.1 .. 10.9 by 0.1, then 12 .. 63) or tf-privacy's
 * compute_dp_sgd_privacy list (1.25 .. 4.5, 5 .. 63, 128, 256, 512). */
#ifndef CLIPLAB_RDP_H
#define CLIPLAB_RDP_H

typedef enum { RDP_ORDERS_OPACUS, RDP_ORDERS_TF } RdpOrderSet;
typedef enum { RDP_CONVERT_BALLE2020, RDP_CONVERT_MIRONOV2017 } RdpConversion;

#define RDP_MAX_ORDERS 160

/* The orders of a set into out[RDP_MAX_ORDERS]; returns how many. */
int rdp_orders(double *out, RdpOrderSet set);
/* RDP at order alpha > 1 of ONE step of the sampled Gaussian mechanism with
 * sampling rate q in [0, 1] and noise multiplier sigma >= 0 (may be inf). */
double rdp_sampled_gaussian(double q, double sigma, double alpha);
/* rdp[i] = steps x RDP at orders[i] (composition over steps). */
void rdp_compute(double *rdp, const double *orders, int n, double q, double sigma, long steps);
/* (epsilon, delta) from RDP values at n orders; *best_order (may be NULL)
 * gets the minimising order (NAN when epsilon is inf). */
double rdp_epsilon(const double *orders, const double *rdp, int n, double delta, RdpConversion rule,
                   double *best_order);
/* The whole DP-SGD question: epsilon after `steps` steps at rate q and noise sigma. */
double rdp_dpsgd_epsilon(double q, double sigma, long steps, double delta, RdpOrderSet set,
                         RdpConversion rule, double *best_order);
/* Opacus's get_noise_multiplier: the smallest sigma (to tolerance tol in
 * epsilon; Opacus 0.01) whose epsilon after `steps` steps at rate q is at
 * most target_eps: sigma doubles from 20 until eps <= target, then bisection
 * on [0, sigma] until target - eps <= tol. Returns sigma, or NAN when even
 * sigma = 1e6 misses the target ("the privacy budget is too low"). */
double rdp_noise_multiplier(double target_eps, double delta, double q, long steps, RdpOrderSet set,
                            RdpConversion rule, double tol);

#endif
