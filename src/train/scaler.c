/* scaler.c: the loss scaler (scaler.h) and the [scaler] section. */
#include "scaler.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "half.h"
#include "train.h"

#define SC_KEY(n, t, f, d, lo, hi, h) {n, t, offsetof(ScalerConfig, f), d, lo, hi, NULL, h}
static const CfgKey scaler_keys[] = {
    SC_KEY("init_scale", CFG_DOUBLE, init_scale, "65536", 1e-30, 1e38,
           "the dynamic loss scale's first value (torch GradScaler init_scale = 2^16)"),
    SC_KEY("growth_factor", CFG_DOUBLE, growth_factor, "2", 1, 1e6,
           "after growth_interval clean steps in a row the scale is multiplied by this (> 1)"),
    SC_KEY("backoff_factor", CFG_DOUBLE, backoff_factor, "0.5", 0, 1,
           "a step with a non-finite gradient is skipped and the scale multiplied by this (< 1)"),
    SC_KEY("growth_interval", CFG_LONG, growth_interval, "2000", 1, 2147483647.0,
           "clean steps in a row before the scale grows"),
};

static const char *scaler_unused(const void *s, const CfgKey *k) {
    (void)s, (void)k;
    return NULL; /* whether it is read depends on [train] loss_scale: scaler_check warns */
}

const CfgSection scaler_config_section = {
    "scaler", scaler_keys, (int)(sizeof scaler_keys / sizeof *scaler_keys),
    "the dynamic loss scale ([train] loss_scale = dynamic), torch's GradScaler", scaler_unused};

void scaler_init(GradScaler *s, const ScalerConfig *c, double loss_scale) {
    s->dynamic = loss_scale == 0.0;
    s->scale = (float)(s->dynamic ? c->init_scale : loss_scale);
    s->growth_tracker = 0;
    s->growth_factor = c->growth_factor;
    s->backoff_factor = c->backoff_factor;
    s->growth_interval = c->growth_interval;
    s->skipped = 0;
    s->last_scale = s->scale;
    s->last_found_inf = 0;
}

void scaler_unscale(float *g, size_t n, double scale) {
    float inv = (float)(1.0 / scale); /* "FP32 division can be imprecise": torch divides in FP64 */
    if (inv == 1.0f) return;
    for (size_t i = 0; i < n; i++) g[i] *= inv;
}

void scaler_update(GradScaler *s, int found_inf) {
    s->last_scale = s->scale;
    s->last_found_inf = found_inf;
    if (!s->dynamic) return;
    if (found_inf) {
        s->scale = (float)((double)s->scale * s->backoff_factor);
        s->growth_tracker = 0;
        s->skipped++;
        return;
    }
    int32_t successful = s->growth_tracker + 1;
    if (successful == s->growth_interval) {
        float grown = (float)((double)s->scale * s->growth_factor);
        if (isfinite(grown)) s->scale = grown; /* "do not grow the scale past fp32 bounds to inf" */
        s->growth_tracker = 0;
    } else {
        s->growth_tracker = successful;
    }
}

int scaler_check(const TrainConfig *t, const ScalerConfig *c, int scaler_set, const char *path,
                 char *err, size_t errlen, FILE *warn) {
    int dynamic = t->loss_scale == 0.0;
    if (dynamic && !(c->growth_factor > 1.0)) {
        snprintf(err, errlen, "%s: [scaler] growth_factor = %g would never grow the scale "
                 "(accepted: a number above 1, torch's default 2)", path, c->growth_factor);
        return -1;
    }
    if (dynamic && !(c->backoff_factor > 0.0 && c->backoff_factor < 1.0)) {
        snprintf(err, errlen, "%s: [scaler] backoff_factor = %g would not back the scale off "
                 "(accepted: a number above 0 and below 1, torch's default 0.5)", path,
                 c->backoff_factor);
        return -1;
    }
    if (t->clip_before_unscale && t->loss_scale == 1.0) {
        snprintf(err, errlen, "%s: [train] clip_before_unscale = true needs a loss scale: with "
                 "loss_scale = 1 there is nothing to unscale (accepted: loss_scale = dynamic or a "
                 "number other than 1)", path);
        return -1;
    }
    if (!warn) return 0;
    if (scaler_set && !dynamic)
        fprintf(warn, "cliplab: warning: %s: [scaler] is set but [train] loss_scale = %g is static: "
                "the scaler is not used\n", path, t->loss_scale);
    if (t->precision == HALF_FP16 && t->loss_scale == 1.0)
        fprintf(warn, "cliplab: warning: %s: [train] precision = fp16 without loss scaling: activation "
                "gradients of magnitude 2^-25 or less flush to zero (set [train] loss_scale = dynamic to "
                "scale them into range)\n", path);
    if (t->clip_before_unscale)
        fprintf(warn, "cliplab: warning: %s: [train] clip_before_unscale = true clips the scaled "
                "gradient (the bug): the threshold acts as threshold / scale on the true gradient\n",
                path);
    return 0;
}
