/* scaler.h: the loss scale of mixed precision, static or dynamic: torch 1.13's
 * GradScaler (torch/cuda/amp/grad_scaler.py and its two CUDA kernels,
 * _amp_foreach_non_finite_check_and_unscale_ and _amp_update_scale_),
 * transcribed rule for rule:
 *   scale(loss)   the backward runs on loss * scale (scale a float32 value);
 *   unscale       grads *= inv, inv = 1/scale computed in double and rounded
 *                 to float32 (no multiply when inv == 1); a non-finite element
 *                 is found_inf;
 *   step          skipped when found_inf;
 *   update        found_inf: scale = (float)(scale * backoff_factor), tracker
 *                 = 0; else tracker + 1, and when it reaches growth_interval:
 *                 new = (float)(scale * growth_factor), kept only if finite,
 *                 tracker = 0.
 * One scaler serves every update group of a step (torch: one GradScaler,
 * update() once after the step of each optimizer, over their found_inf
 * combined). Where each rule runs in the update is pipeline.c's (steps 1-3)
 * and trainer_step's (the update). */
#ifndef CLIPLAB_SCALER_H
#define CLIPLAB_SCALER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

/* [scaler]: torch's defaults */
typedef struct ScalerConfig {
    double init_scale;      /* 2^16 */
    double growth_factor;   /* 2 */
    double backoff_factor;  /* 0.5 */
    long growth_interval;   /* 2000 */
} ScalerConfig;

extern const CfgSection scaler_config_section; /* [scaler] */

typedef struct GradScaler {
    int dynamic;            /* [train] loss_scale = dynamic */
    float scale;            /* float32, as torch's _scale tensor */
    int32_t growth_tracker; /* clean steps in a row since the last change (int32, as torch's) */
    double growth_factor, backoff_factor;
    long growth_interval;
    long skipped;           /* steps skipped for an overflow so far */
    float last_scale;       /* the scale the latest step's backward ran with */
    int last_found_inf;     /* the latest step was skipped for an overflow */
} GradScaler;

/* loss_scale: [train] loss_scale (0 = dynamic, then c's init_scale) */
void scaler_init(GradScaler *s, const ScalerConfig *c, double loss_scale);
/* g[n] *= (float)(1.0 / scale) unless that is 1 */
void scaler_unscale(float *g, size_t n, double scale);
/* torch._amp_update_scale_ (no-op for a static scale); counts the skip */
void scaler_update(GradScaler *s, int found_inf);
/* Settings valid alone but not together ([train] loss_scale, precision,
 * clip_before_unscale and [scaler]); 0 if fine, else the message in err.
 * Warnings (what will happen) go to warn when it is not NULL. */
struct TrainConfig;
int scaler_check(const struct TrainConfig *t, const ScalerConfig *c, int scaler_set, const char *path,
                 char *err, size_t errlen, FILE *warn);

#endif
