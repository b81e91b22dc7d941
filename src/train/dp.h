/* dp.h: DP-SGD in the trainer (Abadi et al. 2016): the [dp] section, and the
 * two steps of the update pipeline it owns (train.h, pipeline_update):
 *   4. each example's gradient clipped to C (factor min(1, C/(norm + 1e-6)),
 *      Opacus's) and the clipped gradients summed (dp_clip_sum);
 *   6. Gaussian noise N(0, (sigma C)^2) on every coordinate, once per step,
 *      and the division by the EXPECTED batch size q N (dp_noise); with
 *      [dp] adaptive the clip bound C then moves toward a quantile of the
 *      norms (Andrew et al. 2021).
 * The per-example gradients come from the one batched backward (engine
 * perex.h: linear and conv2d layers); the trainer attaches the collector to
 * the step's Ctx for the backward of step 1 (trainer_step) and keeps the
 * step's arena until the pipeline has run.
 *
 * Which models: supervised ones (ModelDef.loss) with one update group, whose
 * loss is the MEAN over the examples of the batch (dim 0 of every layer's
 * input), whose parameters all enter through ad_linear / ad_conv2d, and
 * which tell the trainer their training-set size (trainer_dp_examples) and
 * draw Poisson batches when [dp] sampling = poisson (imageset.h). An empty
 * Poisson batch is a step of noise alone, as it must be.
 *
 * The accountant (src/clip/rdp.h) gives epsilon after each step for the
 * Poisson-sampled Gaussian at q = [train] batch_size / N. The noise comes
 * from PCG32 seeded from [run] seed and the step number: reproducible, NOT
 * cryptographic, so cliplab's DP is for learning how DP-SGD works, not for
 * releasing a private model (Opacus's secure_mode exists for that). */
#ifndef CLIPLAB_DP_H
#define CLIPLAB_DP_H

#include <stdio.h>

#include "config.h"
#include "params.h"
#include "perex.h"
#include "rdp.h"

typedef enum { DP_POISSON, DP_SHUFFLE } DpSampling;

typedef struct DpConfig {
    int enabled;
    double max_grad_norm;         /* C (the initial C when adaptive) */
    double noise_multiplier;      /* sigma (used when target_epsilon = 0) */
    double target_epsilon;        /* > 0: sigma from it by bisection over [train] steps */
    double delta;
    int sampling;                 /* DpSampling */
    int orders;                   /* RdpOrderSet: opacus | tf */
    int adaptive;                 /* Andrew et al. 2021 */
    double target_quantile;       /* gamma */
    double clip_lr;               /* eta */
    double count_noise;           /* sigma_b; 0 = expected batch / 20 */
    int log_norms;                /* dp_norms.csv: every example's norm at logged steps */
} DpConfig;

extern const CfgSection dp_config_section; /* [dp] */

/* The checks that need only the config (main, before anything is written):
 * errors (-1, message in err naming path and the keys) and warnings on warn. */
int dp_check(const DpConfig *c, int grad_accum, int precision, const char *path, char *err,
             size_t errlen, FILE *warn);

typedef struct Dp {
    DpConfig cfg;
    PerEx pe;
    long n;                       /* training examples */
    double q, expected;           /* sampling rate, expected batch q N */
    double sigma;                 /* noise multiplier of the accountant (z) */
    double sigma_grad;            /* the gradient's: z, or (z^-2 - (2 sigma_b)^-2)^-1/2 adaptive */
    double sigma_b;               /* adaptive: noise std of the unclipped count */
    double C;                     /* the clip bound now */
    unsigned long long seed;
    long step;                    /* the step being taken (noise stream) */
    int orders_n;
    double orders[RDP_MAX_ORDERS], rdp1[RDP_MAX_ORDERS]; /* one step's RDP at each order */
    double *norms;                /* [B] this step's per-example norms */
    float *f;                     /* [B] their weights in the sum */
    int cap;
    long steps_done;
    int unclipped_count;          /* examples with norm <= C this step (adaptive) */
    /* the last step, for the log */
    int batch;
    double median, max, frac_clipped, eps, eps_old, C_used; /* eps_old: Mironov 2017 */
} Dp;

/* Build the DP state for a run of `steps` steps at expected batch `batch`
 * over n training examples; dies with a message on what the config cannot
 * do (q > 1, sigma_b too small for the noise, an epsilon out of reach). */
Dp *dp_create(const DpConfig *cfg, long n, int batch, long steps, unsigned long long seed);
void dp_free(Dp *dp);
/* Step 1 helpers: attach before the forward; detach after the backward. */
void dp_attach(Dp *dp, Ctx *c, long step);
void dp_detach(Dp *dp, Ctx *c);
/* Step 4: per-example norms (divided by loss_scale and multiplied by the
 * batch, since the loss was the scaled mean), factors, sum of clipped
 * gradients into ps->grad. -1 when a norm is non-finite (nothing summed). */
int dp_clip_sum(Dp *dp, ParamSet *ps, double loss_scale);
/* Step 6: noise, divide by the expected batch, account the step, adapt C. */
void dp_noise(Dp *dp, ParamSet *ps);
/* Epsilon after `steps` steps by either conversion. */
double dp_epsilon(const Dp *dp, long steps, RdpConversion rule, double *order);

#endif
