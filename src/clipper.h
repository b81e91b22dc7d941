/* clipper.h: the trainer's side of clipping. Reads the [clip] section, maps a
 * ParamSet onto the clip library's ClipTensor views (clip.h, which stays
 * libc-only), runs the configured gradient-clip method in step 5 of the update
 * pipeline and the weight clamp in step 7, and reports what it did.
 * The clipping mathematics itself lives in clip.c. */
#ifndef CLIPLAB_CLIPPER_H
#define CLIPLAB_CLIPPER_H

#include "clip.h"
#include "config.h"
#include "params.h"

typedef enum { CLIP_NONE, CLIP_GLOBAL_NORM } ClipMethod;

typedef struct ClipConfig {
    int grad;              /* ClipMethod */
    double max_norm;       /* global_norm threshold */
    double norm_type;      /* p of the norm (2 = L2; INFINITY = max) */
} ClipConfig;

extern const CfgSection clip_config_section;   /* [clip] */

/* What the clip step did this update (logged per step). */
typedef struct ClipStats {
    double pre_norm;       /* global L2 norm before clipping (always L2, for logging) */
    double post_norm;      /* global L2 norm after clipping */
    double coef;           /* post/pre: 1 when untouched */
    double threshold;      /* the threshold in force (NaN for none) */
    int clipped;           /* 1 if any gradient was changed */
} ClipStats;

typedef struct Clipper {
    ClipConfig cfg;
    ParamSet *ps;
    ClipTensor *all;       /* one view per trainable tensor of ps */
    int count;
} Clipper;

void clipper_init(Clipper *cl, const ClipConfig *cfg, ParamSet *ps);
void clipper_free(Clipper *cl);
/* Global L2 norm of every gradient of ps (pipeline step 3 uses it). */
double clipper_global_norm(const Clipper *cl);
/* Step 5: apply the configured method; pre_l2 is the norm from step 3. */
void clipper_apply(Clipper *cl, double pre_l2, ClipStats *st);
/* Step 7: weight clamp after the optimizer step (no-op unless configured). */
void clipper_clamp_weights(Clipper *cl);
/* "none", "global_norm 1" ...: a short label for legends and logs. */
void clipper_describe(const ClipConfig *cfg, char *buf, size_t len);

#endif
