/* clipper.h: the trainer's side of clipping. Reads the [clip] section, maps a
 * ParamSet onto the clip library's ClipTensor views (clip.h, which stays
 * libc-only), runs the configured gradient-clip method in step 5 of the update
 * pipeline and the weight clamp in step 7, keeps the state of the stateful
 * methods (ZClip, AdaGC, auto) and checkpoints it, and reports what it did.
 * The clipping mathematics itself lives in clip.c.
 *
 * Selection: `only` / `exclude` (gradient clip) and `weight_only` /
 * `weight_exclude` (weight clamp) are comma-separated fnmatch(3) globs. A
 * pattern selects a trainable tensor when it matches its Param.name ("w_out")
 * or its qualified name "<ParamSet name>.<Param name>" ("critic.w1"): every
 * update group shares the [clip] section, so qualified patterns pick one
 * group (WGAN: weight = 0.01, weight_only = critic.*). Empty `only` = all
 * tensors; `exclude` removes from that. The non-finite check and the logged
 * pre-clip norm always cover every tensor. */
#ifndef CLIPLAB_CLIPPER_H
#define CLIPLAB_CLIPPER_H

#include <stdio.h>

#include "clip.h"
#include "config.h"
#include "params.h"

/* The [clip] grad methods, in the order of their names in clipper.c's
 * method_choices; CLIP_NONE and CLIP_GLOBAL_NORM keep 0 and 1.
 *
 * ADDING A METHOD (say, clip by the RMS of the gradient):
 *  1. the mathematics in src/clip/clip.{c,h} (raw float arrays, libc + libm),
 *     with its tests against a reference;
 *  2. its enumerator here, just before CLIP_METHOD_COUNT, and its name at the
 *     same place in method_choices (a static assertion holds the two to the
 *     same count); its keys in clip_keys (a prefix such as rms_, listed in
 *     clip_key_unused's readers so a key set for another method warns:
 *     test_contract fails on a method key without its row);
 *  3. its case in clipper_apply and describe_method (-Wswitch names a
 *     missing one); a stateful method also its state in Clipper, its
 *     set-up in clipper_init and its clipper_save / clipper_load case.
 * The tests loop over every method up to CLIP_METHOD_COUNT. */
typedef enum {
    CLIP_NONE,         /* no gradient clipping */
    CLIP_GLOBAL_NORM,  /* clip_grad_norm: one coefficient for all selected tensors */
    CLIP_VALUE,        /* clip_grad_value: each element to [-value, value] */
    CLIP_NORM,         /* clip_grad_norm_per_tensor (Keras clipnorm) */
    CLIP_AGC,          /* clip_agc, unit-wise relative to the weights (NFNets) */
    CLIP_ZCLIP,        /* ClipZClip: z-score of the norm against its EMA */
    CLIP_ADAGC,        /* ClipAdaGC: per-tensor EMA thresholds */
    CLIP_AUTO,         /* ClipAuto: a percentile of the warm-up norms */
    CLIP_METHOD_COUNT  /* not a method: the number of them */
} ClipMethod;

typedef struct ClipConfig {
    int grad;              /* ClipMethod */
    double max_norm;       /* global_norm and norm threshold */
    double norm_type;      /* p of the norm for global_norm, norm, auto (2 = L2; INFINITY = max) */
    double value;          /* value: elementwise bound */
    double agc_clipping;   /* agc: lambda */
    double agc_eps;        /* agc: floor on the weight-unit norm */
    double zclip_alpha, zclip_z_thresh;
    double zclip_max_norm; /* INFINITY = the reference's None (no cap) */
    int zclip_warmup;
    int zclip_mode;        /* ClipZClipMode */
    int zclip_skip_on_spike;
    double adagc_beta, adagc_lambda_rel, adagc_lambda_abs;
    int adagc_warmup;
    int auto_warmup;
    double auto_percentile;
    char only[CFG_STR_MAX];     /* globs: the gradient clip applies to these (empty = all) */
    char exclude[CFG_STR_MAX];  /* globs removed from the gradient clip's selection */
    double weight;              /* clamp selected weights to [-weight, weight] after the step; 0 = off */
    char weight_only[CFG_STR_MAX];
    char weight_exclude[CFG_STR_MAX];
    int log_param_norms;        /* fill Clipper.param_norms each step */
} ClipConfig;

extern const CfgSection clip_config_section;   /* [clip] */

/* What the clip step did this update (logged per step). */
typedef struct ClipStats {
    double pre_norm;       /* global L2 norm before clipping, every tensor (always L2, for logging) */
    double post_norm;      /* global L2 norm after clipping, every tensor */
    double coef;           /* post/pre: 1 when untouched */
    double threshold;      /* the bound on the (selected tensors') global norm in force this
                              step, NaN if none: global_norm and auto: max_norm / the chosen
                              threshold (in their p-norm); zclip: the clip level used on a
                              spike, else the spike-detection level mean + z*(std+eps), both
                              capped by zclip_max_norm; adagc: lambda_abs in warm-up, then the
                              global equivalent sqrt(sum_i (lambda_rel*gamma_i)^2) of its
                              per-tensor bounds; value, norm, agc (per element / tensor /
                              unit, no global bound): NaN */
    int clipped;           /* 1 if any gradient was changed */
} ClipStats;

typedef struct Clipper {
    ClipConfig cfg;
    ClipTensor *all;       /* one view per trainable tensor of the ParamSet, in its order */
    int count;             /* trainable tensors (= clipper_nparams) */
    const char **param_names; /* count names, parallel to `all` */
    double *param_norms;   /* count pre-clip L2 norms from the latest clipper_apply;
                              NULL unless [clip] log_param_norms = true */
    ClipTensor *sel;       /* the gradient clip's tensors (only/exclude) */
    int nsel;
    ClipTensor *wsel;      /* the weight clamp's tensors: `grad` points at the VALUES */
    int nwsel;
    ClipZClip zclip;       /* state of the stateful method in use (one of the three) */
    ClipAdaGC adagc;
    ClipAuto autoc;
} Clipper;

/* Build the views and the method's state. A pattern that matches no tensor of
 * this group is reported on stderr (a note, not an error: see the header). */
void clipper_init(Clipper *cl, const ClipConfig *cfg, ParamSet *ps);
void clipper_free(Clipper *cl);
/* Global L2 norm of every gradient of ps (pipeline step 3 uses it). */
double clipper_global_norm(const Clipper *cl);
/* Step 5: apply the configured method; pre_l2 is the norm from step 3. */
void clipper_apply(Clipper *cl, double pre_l2, ClipStats *st);
/* Step 7: weight clamp after the optimizer step (no-op unless weight > 0). */
void clipper_clamp_weights(Clipper *cl);
/* Checkpointing of the method's state (ZClip/AdaGC/auto statistics): write
 * everything clipper_load needs to continue bit-identically; 0 on success.
 * clipper_load returns -1 (state untouched) on a short read or when the
 * stream was written for another method or tensor count. */
int clipper_save(const Clipper *cl, FILE *f);
int clipper_load(Clipper *cl, FILE *f);
/* "none", "global L2 norm 1", "AGC 0.16 excl. w_out" ...: a short label for
 * legends and logs. */
void clipper_describe(const ClipConfig *cfg, char *buf, size_t len);
/* The same, with what the run decided so far: "auto p90 (threshold chosen: 3.2)". */
void clipper_describe_run(const Clipper *cl, char *buf, size_t len);
/* Trainable tensors and their names, in ParamSet order (grad_norms.csv columns). */
int clipper_nparams(const Clipper *cl);
const char *clipper_param_name(const Clipper *cl, int i);

#endif
