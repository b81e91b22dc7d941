/* dp.c: the [dp] section and DP-SGD's two pipeline steps (dp.h): the
 * per-example clip and sum (Abadi et al. 2016, Alg. 1; Opacus's
 * DPOptimizer.clip_and_accumulate), the noise and the division by the
 * expected batch (DPOptimizer.add_noise, scale_grad with Poisson sampling),
 * and adaptive clipping (Andrew et al. 2021; tf-privacy's
 * QuantileAdaptiveClipSumQuery). */
#include "dp.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "rng.h"

static const char *const sampling_choices[] = {"poisson", "shuffle", NULL};
static const char *const orders_choices[] = {"opacus", "tf", NULL}; /* RdpOrderSet */

#define DP_KEY(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(DpConfig, f), d, lo, hi, ch, h}
static const CfgKey dp_keys[] = {
    DP_KEY("enabled", CFG_BOOL, enabled, "false", 0, 1, NULL,
           "DP-SGD: clip each example's gradient, add Gaussian noise, account (epsilon, delta)"),
    DP_KEY("max_grad_norm", CFG_DOUBLE, max_grad_norm, "1", 0, 1e12, NULL,
           "C: each example's gradient is scaled by min(1, C/(norm + 1e-6)) (the initial C "
           "when adaptive)"),
    DP_KEY("noise_multiplier", CFG_DOUBLE, noise_multiplier, "1", 0, 1e6, NULL,
           "sigma: noise N(0, (sigma C)^2) per coordinate per step (0 = no privacy at all)"),
    DP_KEY("target_epsilon", CFG_DOUBLE, target_epsilon, "0", 0, 1e6, NULL,
           "> 0: find sigma for this epsilon after [train] steps by bisection (Opacus's "
           "get_noise_multiplier) instead of noise_multiplier"),
    DP_KEY("delta", CFG_DOUBLE, delta, "1e-5", 1e-300, 1, NULL,
           "delta of the (epsilon, delta) guarantee; keep it well below 1/N"),
    DP_KEY("sampling", CFG_ENUM, sampling, "poisson", 0, 0, sampling_choices,
           "poisson: each example joins each step with probability q = batch_size/N (what "
           "the accountant assumes); shuffle: fixed batches, the epsilon is then not a guarantee"),
    DP_KEY("orders", CFG_ENUM, orders, "opacus", 0, 0, orders_choices,
           "RDP orders: Opacus's (1.1..10.9 by 0.1, 12..63) or tf-privacy's list"),
    DP_KEY("adaptive", CFG_BOOL, adaptive, "false", 0, 1, NULL,
           "adaptive clipping (Andrew et al. 2021): C follows the target_quantile of the norms"),
    DP_KEY("target_quantile", CFG_DOUBLE, target_quantile, "0.5", 0, 1, NULL,
           "adaptive: gamma, the fraction of examples to leave unclipped"),
    DP_KEY("clip_lr", CFG_DOUBLE, clip_lr, "0.2", 0, 1e3, NULL,
           "adaptive: eta in C <- C exp(-eta (b - gamma))"),
    DP_KEY("count_noise", CFG_DOUBLE, count_noise, "0", 0, 1e12, NULL,
           "adaptive: std sigma_b of the noise on the unclipped count (0 = expected batch / 20)"),
    DP_KEY("log_norms", CFG_BOOL, log_norms, "false", 0, 1, NULL,
           "write every example's gradient norm to dp_norms.csv at the first step, at each "
           "evaluation ([train] eval_every) and at the last step"),
};

static const char *dp_unused(const void *s, const CfgKey *k) {
    const DpConfig *c = s;
    if (strcmp(k->name, "enabled") && !c->enabled) return "read only with enabled = true";
    if (!strcmp(k->name, "noise_multiplier") && c->target_epsilon > 0)
        return "target_epsilon > 0 sets sigma";
    if ((!strcmp(k->name, "target_quantile") || !strcmp(k->name, "clip_lr") ||
         !strcmp(k->name, "count_noise")) && !c->adaptive)
        return "read only with adaptive = true";
    return NULL;
}

const CfgSection dp_config_section = {"dp", dp_keys, (int)(sizeof dp_keys / sizeof *dp_keys),
                                      "DP-SGD: per-example clipping, noise, the accountant",
                                      dp_unused};

int dp_check(const DpConfig *c, int grad_accum, int precision, const char *path, char *err,
             size_t errlen, FILE *warn) {
    if (!c->enabled) return 0;
    if (!(c->max_grad_norm > 0)) {
        snprintf(err, errlen, "%s: [dp] max_grad_norm = %g: the clip bound C must be > 0 (it is "
                 "the sensitivity the noise is scaled to)", path, c->max_grad_norm);
        return -1;
    }
    if (!(c->delta < 1)) {
        snprintf(err, errlen, "%s: [dp] delta = %g (accepted: 0 < delta < 1, usually below 1/N)",
                 path, c->delta);
        return -1;
    }
    if (grad_accum != 1) {
        snprintf(err, errlen, "%s: [dp] enabled with [train] grad_accum = %d: each example is "
                 "clipped from its micro-batch's activations, which the next micro-batch "
                 "replaces (accepted: grad_accum = 1; raise [train] arena_mb for a large batch)",
                 path, grad_accum);
        return -1;
    }
    if (precision != 0) {
        snprintf(err, errlen, "%s: [dp] enabled with [train] precision other than fp32: the "
                 "per-example gradients are taken in fp32 only (accepted: precision = fp32)", path);
        return -1;
    }
    if (c->adaptive && !(c->target_quantile > 0 && c->target_quantile < 1)) {
        snprintf(err, errlen, "%s: [dp] target_quantile = %g (accepted: 0 < gamma < 1)", path,
                 c->target_quantile);
        return -1;
    }
    if (!warn) return 0;
    if (c->target_epsilon == 0 && c->noise_multiplier == 0)
        fprintf(warn, "cliplab: warning: %s: [dp] noise_multiplier = 0: NO NOISE, so NO PRIVACY "
                "(epsilon is infinite); the run clips per example and nothing more\n", path);
    if (c->sampling == DP_SHUFFLE)
        fprintf(warn, "cliplab: warning: %s: [dp] sampling = shuffle: the accountant's epsilon "
                "assumes Poisson sampling; for fixed shuffled batches it is not the guarantee of "
                "this run (only an indication)\n", path);
    return 0;
}

/* ---------------------------------------------------------------- state */

Dp *dp_create(const DpConfig *cfg, long n, int batch, long steps, unsigned long long seed) {
    Dp *dp = xcalloc(1, sizeof *dp);
    dp->cfg = *cfg;
    dp->n = n;
    dp->q = (double)batch / (double)n;
    if (dp->q > 1)
        die("[dp]: [train] batch_size = %d is larger than the %ld training examples: the "
            "sampling rate q = batch/N would be %g > 1 (accepted: batch_size <= N)", batch, n,
            dp->q);
    dp->expected = dp->q * (double)n;
    if (cfg->delta >= 1.0 / (double)n)
        fprintf(stderr, "cliplab: warning: [dp] delta = %g >= 1/N = %g: a mechanism that "
                "publishes one random example outright meets such a delta; use delta << 1/N\n",
                cfg->delta, 1.0 / (double)n);
    dp->orders_n = rdp_orders(dp->orders, cfg->orders == 1 ? RDP_ORDERS_TF : RDP_ORDERS_OPACUS);
    dp->sigma = cfg->noise_multiplier;
    if (cfg->target_epsilon > 0) {
        dp->sigma = rdp_noise_multiplier(cfg->target_epsilon, cfg->delta, dp->q, steps,
                                         cfg->orders == 1 ? RDP_ORDERS_TF : RDP_ORDERS_OPACUS,
                                         RDP_CONVERT_BALLE2020, 0.01);
        if (isnan(dp->sigma))
            die("[dp] target_epsilon = %g is out of reach over %ld steps at q = %g even with "
                "sigma = 1e6 (the privacy budget is too low)", cfg->target_epsilon, steps, dp->q);
        printf("[dp] target_epsilon %g over %ld steps at q = %.5g: noise_multiplier %.5g "
               "(bisection, tolerance 0.01)\n", cfg->target_epsilon, steps, dp->q, dp->sigma);
    }
    rdp_compute(dp->rdp1, dp->orders, dp->orders_n, dp->q, dp->sigma, 1);
    dp->sigma_grad = dp->sigma;
    if (cfg->adaptive) {
        dp->sigma_b = cfg->count_noise > 0 ? cfg->count_noise : dp->expected / 20.0;
        if (dp->sigma > 0 && !(dp->sigma < 2 * dp->sigma_b))
            die("[dp] adaptive: noise_multiplier %g >= 2 sigma_b = %g: the count query would take "
                "all the privacy budget, leaving the gradient noise infinite (Andrew et al. 2021: "
                "z_grad = (z^-2 - (2 sigma_b)^-2)^-1/2); raise count_noise or the batch",
                dp->sigma, 2 * dp->sigma_b);
        if (dp->sigma > 0)
            dp->sigma_grad = 1.0 / sqrt(1.0 / (dp->sigma * dp->sigma) -
                                        1.0 / (4.0 * dp->sigma_b * dp->sigma_b));
    }
    dp->C = cfg->max_grad_norm;
    dp->seed = seed;
    dp->eps = 0;
    dp->batch = -1;
    return dp;
}

void dp_free(Dp *dp) {
    if (!dp) return;
    perex_free(&dp->pe);
    free(dp->norms);
    free(dp->f);
    free(dp);
}

void dp_attach(Dp *dp, Ctx *c, long step) {
    dp->step = step;
    perex_attach(&dp->pe, c, 256);
}

void dp_detach(Dp *dp, Ctx *c) { perex_detach(&dp->pe, c); }

double dp_epsilon(const Dp *dp, long steps, RdpConversion rule, double *order) {
    double r[RDP_MAX_ORDERS];
    for (int i = 0; i < dp->orders_n; i++) r[i] = (double)steps * dp->rdp1[i];
    return rdp_epsilon(dp->orders, r, dp->orders_n, dp->cfg.delta, rule, order);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---------------------------------------------------------------- step 4 */

int dp_clip_sum(Dp *dp, ParamSet *ps, double loss_scale) {
    int B = perex_batch(&dp->pe);
    dp->batch = B;
    dp->C_used = dp->C;
    /* every trainable value must have come per example: a parameter that
     * reached the loss through another op holds an ordinary summed gradient */
    for (int p = 0; p < ps->count; p++) {
        const Param *pa = &ps->params[p];
        if (pa->buffer) continue;
        for (size_t k = 0; k < pa->t.n; k++)
            if (pa->t.grad[k] != 0.0f)
                die("[dp]: tensor %s received a gradient from an op without per-example "
                    "gradients (DP-SGD supports parameters used by linear and conv2d only)",
                    pa->name);
    }
    if (B > dp->cap) {
        free(dp->norms);
        free(dp->f);
        dp->cap = B;
        dp->norms = xcalloc((size_t)B, sizeof *dp->norms);
        dp->f = xcalloc((size_t)B, sizeof *dp->f);
    }
    /* the backward ran on loss_scale * mean over B: example i's own gradient
     * is B / loss_scale times what the layers saw */
    double unit = (double)B / loss_scale;
    int clipped = 0, unclipped = 0;
    for (int i = 0; i < B; i++) {
        double norm = sqrt(dp->pe.sq[i]) * unit;
        if (!isfinite(norm)) return -1;
        double factor = dp->C / (norm + 1e-6);
        if (factor > 1.0) factor = 1.0;
        clipped += factor < 1.0;
        unclipped += norm <= dp->C;
        dp->norms[i] = norm;
        dp->f[i] = (float)(factor * unit);
    }
    perex_weighted_sum(&dp->pe, dp->f);
    dp->frac_clipped = B ? (double)clipped / B : NAN;
    dp->unclipped_count = unclipped;
    if (B) {
        qsort(dp->norms, (size_t)B, sizeof *dp->norms, cmp_double);
        dp->median = B % 2 ? dp->norms[B / 2] : 0.5 * (dp->norms[B / 2 - 1] + dp->norms[B / 2]);
        dp->max = dp->norms[B - 1];
    } else {
        dp->median = dp->max = NAN;
    }
    return 0;
}

/* ---------------------------------------------------------------- step 6 */

void dp_noise(Dp *dp, ParamSet *ps) {
    Rng r;
    rng_seed(&r, dp->seed, 0xD9u + 2u * (unsigned long long)dp->step);
    double std = dp->sigma_grad * dp->C;
    float inv = (float)(1.0 / dp->expected);
    for (size_t k = 0; k < ps->n; k++)
        ps->grad[k] = (ps->grad[k] + (float)(std * rng_normal(&r))) * inv;
    if (dp->cfg.adaptive) { /* Andrew et al. 2021, Alg. 1: geometric update toward gamma */
        double b = ((double)dp->unclipped_count - 0.5 * dp->batch + dp->sigma_b * rng_normal(&r)) /
                       dp->expected + 0.5;
        b = b < 0 ? 0 : b > 1 ? 1 : b;
        dp->C *= exp(-dp->cfg.clip_lr * (b - dp->cfg.target_quantile));
    }
    dp->steps_done = dp->step + 1;
    dp->eps = dp_epsilon(dp, dp->steps_done, RDP_CONVERT_BALLE2020, NULL);
    dp->eps_old = dp_epsilon(dp, dp->steps_done, RDP_CONVERT_MIRONOV2017, NULL);
}
