/* clip.h: the clipping library. Gradient clipping over raw float arrays,
 * depending on libc and libm only (no other cliplab header, no BLAS): drop
 * clip.h and clip.c into any trainer. Semantics follow the references exactly,
 * so numbers can be checked against the tools people know:
 *
 *   clip_total_norm / clip_grads_with_norm / clip_grad_norm
 *       PyTorch torch.nn.utils.get_total_norm / clip_grads_with_norm_ /
 *       clip_grad_norm_ (error_if_nonfinite=False)
 *   clip_grad_value            PyTorch clip_grad_value_
 *   clip_grad_norm_per_tensor  the PyTorch rule applied to each tensor alone
 *                              (Keras clipnorm, tf.clip_by_norm)
 *   clip_agc                   optax.adaptive_grad_clip (Brock et al. 2021, NFNets)
 *   ClipZClip                  ZClip (Kumar et al. 2025), bluorion-com/ZClip zclip.py
 *   ClipAdaGC                  AdaGC (Wang et al. 2025), the authors' Megatron code
 *   ClipAuto                   percentile-of-warm-up threshold (the seeds' recipe)
 *
 * Norms are accumulated in double. Gradients are scaled in float32 by a float32
 * coefficient, as PyTorch does. A contract violation (count < 0, a NULL array
 * with n > 0, p <= 0, rows not dividing n) prints a message and aborts.
 *
 * Stateful methods keep their state in a caller-owned struct: *_defaults()
 * gives the reference defaults, *_init() validates and allocates (returns 0, or
 * -1 on a bad parameter or out of memory, leaving nothing to free), *_step()
 * clips in place and returns the pre-clip global L2 norm, *_free() releases.
 * Each struct's `last` tells what the step decided, for logging. */
#ifndef CLIPLAB_CLIP_H
#define CLIPLAB_CLIP_H

#include <stddef.h>

typedef struct {
    float       *grad;   /* n gradient values, clipped in place */
    const float *param;  /* n parameter values; read by AGC only, may be NULL otherwise */
    size_t       n;      /* number of elements */
    size_t       rows;   /* AGC units: the tensor is `rows` contiguous units of n/rows values
                            (row-major [out][in...] weight: rows = out); 0 or 1 = one unit */
} ClipTensor;

/* ---- stateless (PyTorch torch.nn.utils semantics) ---- */

/* The p-norm of all gradients viewed as one vector, computed as PyTorch's
 * get_total_norm does: the p-norm of the per-tensor p-norms. norm_type is any
 * p > 0, or INFINITY for max |g|. count == 0 gives 0. A NaN element gives NaN;
 * an infinite one (and no NaN) gives INFINITY. Overflow-safe for any p. */
double clip_total_norm(const ClipTensor *t, int count, double norm_type);

/* Multiply every gradient by clamp(max_norm / (total_norm + 1e-6), max=1),
 * the coefficient evaluated in float32 exactly as PyTorch 1.13-2.x does
 * (max_norm * (1 / (float(total) + 1e-6f))). A coefficient of exactly 1 leaves
 * the gradients bit-identical (PyTorch multiplies by 1.0, same bits). An
 * infinite total gives coefficient 0: finite entries become 0, infinite ones
 * NaN; a NaN total makes every entry NaN (as PyTorch, error_if_nonfinite=False). */
void clip_grads_with_norm(ClipTensor *t, int count, double max_norm, double total_norm);

/* clip_total_norm then clip_grads_with_norm; returns the pre-clip total norm. */
double clip_grad_norm(ClipTensor *t, int count, double max_norm, double norm_type);

/* Clamp every gradient to [-clip_value, clip_value] as torch.clamp: NaN stays
 * NaN; a negative clip_value (min > max) sets every entry to clip_value. */
void clip_grad_value(ClipTensor *t, int count, double clip_value);
/* clip_grad_value, returning how many elements it changed. */
size_t clip_grad_value_count(ClipTensor *t, int count, double clip_value);

/* Each tensor clipped against its own p-norm with clip_grads_with_norm's rule.
 * Returns the largest pre-clip tensor norm (NaN if any is NaN; 0 if count == 0). */
double clip_grad_norm_per_tensor(ClipTensor *t, int count, double max_norm, double norm_type);

/* Unit-wise adaptive gradient clipping, optax.adaptive_grad_clip(clipping, eps)
 * (Brock et al. 2021, Sec. 4.1): for each unit u,
 *   max_u = clipping * max(||W_u||_2, eps)
 *   G_u  <- G_u                                 if ||G_u||_2 <  max_u
 *   G_u  <- G_u * max_u / max(||G_u||_2, 1e-6)  otherwise
 * (optax's order: equality clips, by a factor of 1). Units, and how they map
 * onto optax's layout: optax stores a linear weight [in, out] and a conv kernel
 * HWIO and reduces over every axis but the output one, so a unit is one output
 * feature. In PyTorch's [out][in...] layout that is one contiguous row: set
 * rows = out for [out][in] and [out][in][kh][kw]; vectors and scalars (biases,
 * gains) are one unit (rows 0 or 1). optax also treats any weight that squeezes
 * to a vector (e.g. out x 1) as one unit: pass rows = 1 for those.
 * optax's default eps is 1e-3 (CLIP_AGC_EPS); NFNets used clipping 0.01 at batch
 * 4096 and about 0.16 at batch 128-256, with AGC off on the final classifier. */
#define CLIP_AGC_EPS 1e-3
void clip_agc(ClipTensor *t, int count, double clipping, double eps);
/* clip_agc, returning how many units it rescaled. */
size_t clip_agc_count(ClipTensor *t, int count, double clipping, double eps);
/* The float32 coefficient clip_grads_with_norm multiplies by: PyTorch's
 * clamp(max_norm * (1 / (float(total_norm) + 1e-6f)), max=1); 1.0f = untouched. */
float clip_norm_coef(double max_norm, double total_norm);

/* ---- the same norms over an array held in pieces (sharded gradients) ----
 * A ZeRO / FSDP shard holds part of a tensor. To get array_norm's exact bits
 * (not just the same value up to rounding), the pieces are fed in index order
 * into one ClipNormPart, which keeps the eight partial sums and the tail the
 * whole-array kernel keeps: clip_norm_part_add(s, g, from, to, n, p) adds
 * elements [from, to) of an n-element array (g points at element `from`);
 * a part can travel between processes (plain doubles). Zero-initialise a
 * part ({0}). Another p than 1, 2, inf takes two passes, as the whole-array
 * kernel does: first the array's max |g| (the inf-norm, from parts too),
 * set as `scale` before the pieces of the second pass. */
typedef struct {
    double lane[8];
    double tail;         /* the tail sum, or for p = inf the running max */
    double scale;        /* another p: the array's max |g|, set by the caller */
} ClipNormPart;
void clip_norm_part_add(ClipNormPart *s, const float *g, size_t from, size_t to, size_t n, double p);
/* The tensor's p-norm, bit for bit clip_total_norm of the whole array. */
double clip_norm_part_result(const ClipNormPart *s, double p);
/* clip_total_norm's combination of per-tensor norms (PyTorch's norm of norms). */
double clip_norm_of_norms(const double *norms, int count, double norm_type);
/* g *= c for every element (float32, as every method scales). */
void clip_scale(ClipTensor *t, int count, float c);
/* AGC's factor for a unit with gradient norm gn and weight norm pn: 1.0f when
 * the unit is left alone (clip_agc scales a unit by exactly this). */
float clip_agc_coef(double gn, double pn, double clipping, double eps);

/* ---- what a stateful step decided (for logging) ---- */

typedef struct {
    double norm;       /* pre-clip global norm, the step's return value (L2; ClipAuto: its p) */
    double post_norm;  /* global norm after clipping, from the norms and coefficients */
    double threshold;  /* the max norm the gradients were held to this step; INFINITY if
                          none; NaN for AdaGC after warm-up (per-tensor, see gamma) */
    double coef;       /* factor applied (1 = untouched); AdaGC: the smallest per-tensor one */
    int    clipped;    /* gradients changed: 0/1; AdaGC: number of tensors scaled */
    int    warmup;     /* 1 while the method was still in its warm-up this step */
} ClipStepInfo;

/* ---- ZClip (Kumar et al. 2025), reference bluorion-com/ZClip zclip.py ----
 * Warm-up: the first warmup_steps global norms are collected (at least one);
 * meanwhile gradients are clipped as clip_grad_norm(max_grad_norm) (PyTorch's
 * rule) unless max_grad_norm is INFINITY (the reference's None). On the step
 * that completes the buffer, mean and population variance are taken from it.
 * Then, with g the global L2 norm and s = sqrt(var):
 *   zscore mode:  z = (g - mean) / (s + eps), one-sided; if z > z_thresh:
 *                 adaptive_scaling: clip_val = (mean + z_thresh*s / (z/z_thresh)) * clip_factor
 *                 mean:             clip_val = mean
 *   percentile:   if g > mean + z_thresh*s: clip_val = mean + z_thresh*s
 *   effective = min(clip_val if a spike else g, max_grad_norm)
 *   if g > effective: G *= effective / (g + 1e-6)
 *   EMA update with clip_val on a spike (unless skip_update_on_spike), else g:
 *     mean = alpha*mean + (1-alpha)*x;  var = alpha*var + (1-alpha)*(x - mean)^2
 *     (variance around the new mean).
 * A non-finite norm enters the statistics as in the reference: skip such
 * steps before calling (the trainer's non-finite check does). */
typedef enum { CLIP_ZCLIP_ZSCORE, CLIP_ZCLIP_PERCENTILE } ClipZClipMode;
typedef enum { CLIP_ZCLIP_ADAPTIVE_SCALING, CLIP_ZCLIP_MEAN } ClipZClipOption;

typedef struct {
    double alpha;            /* EMA smoothing, default 0.97 */
    double z_thresh;         /* default 2.5 */
    double max_grad_norm;    /* cap, default 1.0; INFINITY = None (no cap, no warm-up clip) */
    double eps;              /* default 1e-6 */
    double clip_factor;      /* multiplies the adaptive_scaling threshold, default 1.0 */
    int warmup_steps;        /* default 25 */
    int mode;                /* ClipZClipMode, default CLIP_ZCLIP_ZSCORE */
    int clip_option;         /* ClipZClipOption (zscore mode), default ADAPTIVE_SCALING */
    int skip_update_on_spike;/* default 0 */
} ClipZClipParams;

typedef struct {
    ClipZClipParams p;
    double *buffer;          /* warm-up norms (p.warmup_steps, at least 1) */
    int nbuf;
    int initialized;         /* 1 once mean/var exist */
    double mean, var;        /* EMA statistics of the norm */
    double z;                /* last z-score (NaN in warm-up and percentile mode) */
    double clip_val;         /* last spike threshold before the cap, NaN if no spike */
    long steps;
    ClipStepInfo last;
} ClipZClip;

ClipZClipParams clip_zclip_defaults(void);
int clip_zclip_init(ClipZClip *z, const ClipZClipParams *p);  /* p NULL = defaults */
double clip_zclip_step(ClipZClip *z, ClipTensor *t, int count);
/* The same step with the global L2 norm g given (a sharded gradient: t is this
 * process's part, g the norm of the whole). */
double clip_zclip_step_norm(ClipZClip *z, ClipTensor *t, int count, double g);
void clip_zclip_free(ClipZClip *z);
/* The norm above which the next step clips: max_grad_norm during the warm-up
 * (NaN if none), then min(mean + z_thresh*(s + eps), max_grad_norm) (eps only
 * in zscore mode); spikes are then clipped lower still (clip_val). */
double clip_zclip_level(const ClipZClip *z);

/* ---- AdaGC (Wang et al. 2025), per-tensor adaptive clipping ----
 * Follows the authors' Megatron-LM implementation (lishuai-97/AdaGC):
 * steps 1..warmup_steps (warm-up): global clip, G *= lambda_abs / (g + 1e-6)
 *   when that is < 1 (g = global L2 norm); then gamma_i = min over the warm-up
 *   of ||G_i|| measured after the clip.
 * later steps, per tensor i with n_i = ||G_i||_2:
 *   if n_i > lambda_rel * gamma_i:  G_i *= lambda_rel*gamma_i / (n_i + 1e-6),
 *                                   n_i <- lambda_rel * gamma_i
 *   gamma_i = beta * gamma_i + (1 - beta) * n_i
 * (the paper's h = min(1, lambda_rel*gamma_{t-1}/||g||) and EMA of ||g_hat||).
 * With warmup_steps 0 each gamma starts from the tensor's first norm.
 * Defaults are the paper's (beta 0.98, lambda_rel 1.05, lambda_abs 1, 100
 * warm-up steps); the authors' Megatron script uses clip_ratio 1.04, beta 0.99.
 * init mallocs gamma and norms (count doubles each); clip_adagc_free releases. */
typedef struct {
    double beta;        /* EMA smoothing, default 0.98 */
    double lambda_rel;  /* relative threshold, default 1.05 */
    double lambda_abs;  /* warm-up global threshold, default 1.0 */
    int warmup_steps;   /* default 100 */
} ClipAdaGCParams;

typedef struct {
    ClipAdaGCParams p;
    int count;          /* tensors per step, fixed at init */
    double *gamma;      /* count per-tensor EMAs of the clipped norm (set from step 1 on) */
    double *norms;      /* count pre-clip tensor L2 norms of the last step */
    long steps;
    ClipStepInfo last;
} ClipAdaGC;

ClipAdaGCParams clip_adagc_defaults(void);
int clip_adagc_init(ClipAdaGC *a, const ClipAdaGCParams *p, int count);  /* p NULL = defaults */
double clip_adagc_step(ClipAdaGC *a, ClipTensor *t, int count);  /* count must match init */
/* The same step with the tensors' L2 norms given (norms[count]; sharded: t[i]
 * is this process's part of tensor i, maybe empty); a clipped warm-up step
 * re-measures the norms after the clip through remeasure(ctx, out[count]). */
double clip_adagc_step_norms(ClipAdaGC *a, ClipTensor *t, int count, const double *norms,
                             void (*remeasure)(void *ctx, double *out), void *ctx);
void clip_adagc_free(ClipAdaGC *a);
/* The global-norm bound of the next step: lambda_abs during the warm-up, then
 * sqrt(sum_i (lambda_rel * gamma_i)^2), what the per-tensor bounds allow together. */
double clip_adagc_level(const ClipAdaGC *a);

/* ---- auto threshold: a percentile of the warm-up norms ----
 * The seeds' recipe: log the pre-clip global norms unclipped until
 * warmup_steps finite norms have been seen (a non-finite one is not counted),
 * then fix the threshold at the given percentile of them (at the end of that
 * step) and clip every later step against it with clip_grad_norm's rule. The percentile is numpy.percentile's default ('linear',
 * Hyndman & Fan type 7): sorted x, h = (n-1)*q/100, x[floor h] interpolated
 * toward x[floor h + 1] by the fraction of h. Defaults: 100 warm-up steps,
 * 90th percentile, L2 norm. `threshold` is NaN until chosen. */
typedef struct {
    int warmup_steps;   /* default 100 (>= 1) */
    double percentile;  /* in [0, 100], default 90 */
    double norm_type;   /* default 2 */
} ClipAutoParams;

typedef struct {
    ClipAutoParams p;
    double *seen;       /* warm-up norms */
    int nseen;
    double threshold;   /* the chosen max norm, NaN during warm-up */
    long steps;
    ClipStepInfo last;
} ClipAuto;

ClipAutoParams clip_auto_defaults(void);
int clip_auto_init(ClipAuto *a, const ClipAutoParams *p);  /* p NULL = defaults */
double clip_auto_step(ClipAuto *a, ClipTensor *t, int count);
/* The same step with the total p-norm g given (sharded: t is this process's part). */
double clip_auto_step_norm(ClipAuto *a, ClipTensor *t, int count, double g);
void clip_auto_free(ClipAuto *a);
/* numpy.percentile(x, q) with the default linear method; sorts x in place. */
double clip_percentile(double *x, int n, double q);

#endif
