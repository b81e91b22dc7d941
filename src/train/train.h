/* train.h: the update contract every model follows, the update pipeline and
 * the training loop.
 *
 * THE CONTRACT (read model.h first):
 *  - A model names its update groups (ModelDef.groups) and registers one
 *    ParamSet per name with trainer_add_group(). Each group gets its own
 *    optimizer and clip settings: [optim.G] / [clip.G] override [optim] /
 *    [clip] key by key for group G (main resolves them; TrainerSettings.groups).
 *  - Every optimizer update of every model goes through ONE call,
 *    trainer_step(tr, upd, nupd, fn, model, arg): for each of [train]
 *    grad_accum micro-batches the step context is reset, the groups not in
 *    `upd` are frozen (their tensors carry no gradient, like requires_grad =
 *    False, so nothing crosses into them), fn records the loss on the tape and
 *    the trainer runs backward on loss * loss_scale / grad_accum; then the
 *    pipeline below runs for each group of `upd`, and afterwards EVERY group's
 *    gradients are zero. A supervised model (def->loss) is driven by the loop
 *    through the same call with every group updated.
 *  - The stop-gradient inside one forward is ad_detach() (ops.h).
 *
 * The update pipeline (docs/design.md), per group, in this order:
 *   1. backward (trainer_step; gradients accumulate over the micro-batches,
 *      each scaled by 1/grad_accum, so the update sees their mean)
 *   2. unscale: multiply gradients by 1/scale ([train] loss_scale, or the
 *      dynamic scaler's current scale: scaler.h); clip_before_unscale = true
 *      runs step 7 before this one (the bug, on the scaled gradient)
 *   3. non-finite check of the gradients: [train] on_nonfinite = stop|skip|error;
 *      with loss_scale = dynamic an overflow skips the step and backs the scale
 *      off (trainer_step updates the scaler once after every group's pipeline)
 *   4. DP-SGD ([dp], dp.h): each example's gradient clipped to C and summed
 *      (the per-example norms were taken during step 1's backward)
 *   5. all-reduce across ranks (dist.h; under mpirun: the mean over the ranks,
 *      summed in rank order; [dist] clip = local clips each rank's gradient
 *      first, the Horovod mistake)
 *   6. DP-SGD: Gaussian noise sigma C once per step, divide by the expected batch
 *   7. gradient clip (clipper.h): pre-clip norm, post-clip norm, coefficient
 *   8. optimizer step at the group's scheduled learning rate
 *   9. weight clip (WGAN-style clamp after the step)
 *  10. zero the gradients
 * pipeline_update() is steps 2-10 for one group, over explicit arguments so the
 * tests can hold the order against hand-computed results.
 *
 * Files: train_config.c ([run], [train]), pipeline.c (groups, trainer_step,
 * the pipeline), metrics.c (metrics.csv / grad_norms.csv), train.c (the loop,
 * evaluation, rollbacks, trainer_run), run_plots.c (loss.png, grad_norm.png,
 * the heatmap, comparison plots).
 *
 * A run writes <out_dir>/config.ini (effective), metrics.csv, loss.png and
 * grad_norm.png; see trainer_run(). Errors a user can fix (unwritable folder)
 * are reported and exit non-zero; on_nonfinite = stop is not an error. */
#ifndef CLIPLAB_TRAIN_H
#define CLIPLAB_TRAIN_H

#include <stdio.h>

#include "clipper.h"
#include "config.h"
#include "dp.h"
#include "dist.h"
#include "grad_hist.h"
#include "metrics.h"
#include "model.h"
#include "optim.h"
#include "params.h"
#include "recovery.h"
#include "rng.h"
#include "scaler.h"
#include "tensor.h"

typedef enum { NONFINITE_STOP, NONFINITE_SKIP, NONFINITE_ERROR } NonfinitePolicy;

typedef struct RunConfig {
    char name[CFG_STR_MAX];       /* default: the config file's base name */
    char out_dir[CFG_STR_MAX];    /* default: runs/<name> */
    long seed;
    int plots;
    long checkpoint_every;        /* resume.bin every this many steps (0 = never) */
    long memory_mb;               /* refuse a run estimated above this (0 = 80% of RAM) */
    int resume;                   /* not a key: ./train --resume continues the folder's run */
} RunConfig;

typedef struct TrainConfig {
    long steps;
    int batch_size;
    int log_every;
    int eval_every;
    int on_nonfinite;             /* NonfinitePolicy */
    int grad_accum;
    double loss_scale;            /* 0: dynamic (the GradScaler, scaler.h) */
    int precision;                /* HalfFormat (half.h): AMP's matrix-product format */
    int clip_before_unscale;      /* the bug: step 7 runs before step 2 */
    int threads;
    int arena_mb;
    int max_nodes;
    int quiet;
    long grad_hist_step;          /* record this step's activation gradients (-1: none) */
} TrainConfig;

typedef struct ModelSel {
    int type;                     /* index into model_registry */
} ModelSel;

#define TRAINER_MAX_GROUPS 4
#define TRAINER_MAX_PROGRESS 4
#define TRAINER_MAX_METRICS 64

/* One update group's settings: [optim.G] and [clip.G] resolved over [optim] and [clip]. */
typedef struct GroupSettings {
    char name[PARAM_NAME_MAX];
    OptimConfig optim;
    ClipConfig clip;
} GroupSettings;

/* Every section the trainer itself reads, as one value. */
typedef struct TrainerSettings {
    RunConfig run;
    TrainConfig train;
    OptimConfig optim;
    ClipConfig clip;
    RecoveryConfig recovery;
    ScalerConfig scaler;          /* [scaler] (read when [train] loss_scale = dynamic) */
    DpConfig dp;                  /* [dp] DP-SGD (dp.h) */
    DistConfig dist;              /* [dist]: data-parallel switches (under mpirun) */
    GroupSettings groups[TRAINER_MAX_GROUPS]; /* in ModelDef.groups order; none: [optim]/[clip] */
    int ngroups;
    /* Optional: called after each metrics row is logged (tr->log's last row), e.g.
     * by the live window; must be quick (it runs inside the loop). NULL = none. */
    void (*observer)(const struct Trainer *tr, void *arg);
    void *observer_arg;
} TrainerSettings;

extern const CfgSection run_config_section;    /* [run] */
/* Renamed keys of [run] (cfg_renamed): checkpoint_every -> resume_every. */
extern const char *const run_renamed_keys[];
extern const CfgSection train_config_section;  /* [train] */

/* Register [optim.G] and [clip.G] in cfg for each name not yet in store
 * (store[0..nstore) filled so far, cap its size); returns the new count.
 * Call after cfg_init, for every model's ModelDef.groups. */
int train_groups_register(Config *cfg, GroupSettings *store, int nstore, int cap,
                          const char *const *names);
/* After cfg_resolve_groups: s->groups = the resolved settings of `names`, in
 * order. A group section that was set but names no group of this model is an
 * error (-1, message in err with the file and line). */
int train_groups_select(const Config *cfg, TrainerSettings *s, const GroupSettings *store,
                        int nstore, const char *const *names, char *err, size_t errlen);

/* One optimizer update group: a ParamSet with its optimizer and clip state. */
typedef struct UpdateGroup {
    ParamSet *ps;
    OptimConfig optim_cfg;        /* this group's [optim] (lr schedule) */
    Optim optim;
    Clipper clip;
    ClipStats last;               /* stats of the latest update */
    DistConfig dist;              /* the run's [dist] */
    double rank_norm;             /* this rank's pre-clip L2 norm before the all-reduce */
    double unclipped_norm;        /* [dist] clip = local: norm of the reduced unclipped gradient */
    double rank_coef;             /* [dist] shard: the clip coefficient this rank applied to its part */
    float *acc;                   /* accumulation buffer (micro-batches summed in order) */
    double lr;
    /* what the clip did to the step, measured by the pipeline (NaN when refused):
     * cos_clip, cosine of the gradient before and after the clip step (1: only scaled;
     * below 1: turned, as value clipping does); update_norm, ||delta theta|| of the
     * optimizer step; eff_lr, lr x clip coefficient (Zhang et al. 2020: clipping as an
     * adaptive step size) */
    double cos_clip, update_norm, eff_lr;
    float *scratch;               /* ps->n floats: the pre-clip gradient, then the pre-step weights */
    long updates, clipped, skipped;
    int clip_before_unscale;      /* [train] clip_before_unscale: the pipeline's wrong order */
    Dp *dp;                       /* [dp] enabled: DP-SGD's steps 4 and 6 (dp.h), else NULL */
} UpdateGroup;

struct Trainer {
    const ModelDef *def;
    void *model;
    RunConfig run;
    TrainConfig train;
    const TrainerSettings *set;   /* everything the run was configured with */
    Ctx ctx;
    Rng rng;                      /* the model's and data's stream, from [run] seed */
    UpdateGroup groups[TRAINER_MAX_GROUPS];
    int ngroups;
    long step;                    /* 0-based current step */
    int nextra;
    char extra_names[TRAINER_MAX_METRICS][32];
    double extra[TRAINER_MAX_METRICS];
    int val_metric;               /* extra column "val_loss" (models with evaluate), or -1 */
    /* the progress line's model columns (ModelDef.progress_columns, then
     * val_loss) and the last finite value of each, NaN before the first */
    int progress_col[TRAINER_MAX_PROGRESS];
    double progress_last[TRAINER_MAX_PROGRESS];
    int nprogress;
    Recovery rec;                 /* loss-spike rollback state */
    GradScaler scaler;            /* the loss scale, static or dynamic: one for every group */
    GradHist hist;                /* [train] grad_hist_step's gradients (hist.step -1: none) */
    int saw_nonfinite;            /* the current step met a non-finite loss or gradient */
    int diverged;                 /* a non-finite loss or gradient was seen and the run stopped */
    double t_start;
    const char *fingerprint;      /* settings that change the numbers (resume.h), or NULL */
    int resume_due;               /* write resume.bin before the next step (after a rollback) */
    int failed;                   /* a checkpoint could not be written: the run stopped */
    double *rowbuf;               /* one row of either log */
    double *micro_losses;         /* grad_accum x (1 + ranks): trainer_step's loss slots */
    int micro;                    /* inside a TrainerLossFn: which of the update's
                                     trainer_micro_batches() micro-batches it computes */
    MetricsLog log;
    MetricsLog pnorm_log;         /* grad_norms.csv: per-tensor pre-clip norms ([clip] log_param_norms) */
    Dp *dp;                       /* [dp] enabled: the DP-SGD state of the one group (dp.h) */
    long dp_examples;             /* training-set size the model declared (trainer_dp_examples) */
    int dp_col;                   /* first of the dp_* metrics columns */
    FILE *dp_norms;               /* dp_norms.csv ([dp] log_norms) */
};

/* For models: register a ParamSet as the update group named ps->name (one of
 * def->groups; any one name when the model declares none). Its optimizer and
 * clip settings are that group's [optim.G] / [clip.G]. */
UpdateGroup *trainer_add_group(Trainer *tr, ParamSet *ps);
UpdateGroup *trainer_group(Trainer *tr, const char *name); /* NULL if none */
/* For models that support [dp] (dp.h): the training-set size N (q = batch/N).
 * Such a model samples Poisson batches when trainer_dp_poisson() says so. */
void trainer_dp_examples(Trainer *tr, long n);
int trainer_dp_poisson(const Trainer *tr);
/* pipeline.c calls it after a DP step: the dp_* metrics columns, dp_norms.csv. */
void trainer_dp_log(Trainer *tr);
/* For models: add a metrics column; returns its index for trainer_set_metric. */
int trainer_add_metric(Trainer *tr, const char *name);
void trainer_set_metric(Trainer *tr, int idx, double value);
/* The loss of one micro-batch, recorded on c (see trainer_step). */
typedef Tensor *(*TrainerLossFn)(void *model, Ctx *c, Trainer *tr, void *arg);
/* THE update call (see the contract above). Returns the mean micro-batch
 * loss; when it is non-finite no group is updated (the on_nonfinite policy
 * applies) and every gradient is zeroed. */
double trainer_step(Trainer *tr, UpdateGroup *const *upd, int nupd, TrainerLossFn fn, void *model,
                    void *arg);

/* Custom-step models: the number of micro-batches K one trainer_step takes,
 * [train] grad_accum x the ranks under mpirun. The loss function computes
 * micro-batch tr->micro of them (0 .. K-1): the model prepares the data of all
 * K (every rank the same), and each rank's TrainerLossFn is called only for
 * its own (micro-batches r k .. r k + k - 1 on rank r), so the rank-ordered
 * all-reduce sums what grad_accum = K sums on one process. */
int trainer_micro_batches(const Trainer *tr);
/* After a trainer_step: v[K][s] holds s values per micro-batch, filled by the
 * loss function for the micro-batches this rank computed; afterwards every
 * rank holds all K rows (one all-gather under mpirun; nothing on one process). */
void trainer_micro_gather(Trainer *tr, double *v, int s);

/* What pipeline_update did. */
typedef enum { PIPE_APPLIED = 1, PIPE_NONFINITE = 0 } PipeResult;
/* Steps 2-8 for one group whose gradients are ready: unscale by loss_scale,
 * non-finite check, clip, optimizer step at lr, weight clip, zero. Fills
 * g->last. On a non-finite gradient nothing is stepped, the gradients are
 * zeroed and PIPE_NONFINITE is returned (the caller applies the policy). */
PipeResult pipeline_update(UpdateGroup *g, double loss_scale, double lr);

/* Everything one config run needs, after the config was loaded and validated. */
typedef struct RunResult {
    char name[CFG_STR_MAX];
    char out_dir[CFG_STR_MAX];    /* where the run wrote its files */
    const ModelDef *def;          /* the model it trained */
    char label[CFG_STR_MAX + 128];
    char title[96];               /* the model and task (ModelDef.title) */
    char own[96];                 /* the model's own clipping (ModelDef.describe), or "" */
    long seed;
    MetricsLog log;               /* owned copy of the rows for comparison plots */
    double baseline;              /* trivial-predictor loss or NaN */
    char clip_desc[96];           /* what the clip step did ("global L2 norm 1") */
    int recovery;                 /* [recovery] enabled */
    RecoveryEvent *events;        /* its rollbacks (owned) */
    int nevents;
    const char *const *compare_columns; /* the model's (ModelDef.compare_columns), or NULL */
    const char *const *plot_columns; /* the model's (ModelDef.plot_columns), or NULL */
    const double *plot_column_refs;  /* and its reference lines (ModelDef), or NULL */
    const char *const *plot_column_ref_labels;
} RunResult;

/* Build the model and its groups without writing anything (tests drive
 * trainer_step on it); trainer_destroy frees it. */
Trainer *trainer_create(const ModelDef *def, const void *model_cfg, const TrainerSettings *s);
void trainer_destroy(Trainer *tr);
/* The training loop alone ([train] steps; rows kept in memory, CSVs only if opened). */
void trainer_train(Trainer *tr);

/* Train; write outputs. Returns 0 on success (a stopped divergence is success),
 * non-zero on error (message printed). */
int trainer_run(const ModelDef *def, const void *model_cfg, const TrainerSettings *s,
                const Config *cfg, RunResult *res);
/* Drop logged rows of steps >= step (a rollback replays them) and rewrite the CSV. */
void trainer_truncate_log(Trainer *tr, long step);
void run_result_free(RunResult *r);
/* ./train --plot: a finished run's figures redrawn from its folder (s->run.out_dir:
 * metrics.csv, grad_norms.csv and rollbacks.csv when there), nothing trained; res (when
 * not NULL) as trainer_run fills it, for a comparison. 0, or 1 with a message. */
int trainer_replot(const ModelDef *def, const void *model_cfg, const TrainerSettings *s,
                   RunResult *res);

/* shard.c: step 5 on this rank's shard [lo, hi) of the reduce-scattered
 * gradient ([dist] shard = true): the configured clip with its norm reduced
 * across the shards ([dist] norm = local: the shard's own). Fills st. */
void shard_clip(UpdateGroup *g, size_t lo, size_t hi, ClipStats *st);

/* dist_plot.c: data-parallel runs compared (loss, the update's norm against the
 * threshold and its histogram on the steps where the clip should bite). */
int dist_compare_plot(const RunResult *runs, int n, const char *path);

/* run_plots.c: a run's loss.png, grad_norm.png and grad_norm_heatmap.png (and
 * curves.png of the model's plot_columns); */
int run_plots_write(const Trainer *tr, double baseline);
/* several runs' loss and grad-norm curves (two panels) overlaid in one PNG,
 * or their model's compare_columns (one panel each) when it names some. */
int trainer_compare_plot(const RunResult *runs, int n, const char *path);
/* 1 when some configuration appears with several seeds among the runs (same config
 * name, model and task, clip, own clipping, recovery): trainer_compare_plot then
 * draws each configuration's median over its seeds with the min-max band. */
int trainer_compare_has_seeds(const RunResult *runs, int n);
/* Runs that all recorded an activation-gradient histogram ([train] grad_hist_step): their
 * histograms on one figure beside the comparison, <path without .png>_grad_hist.png (any
 * model; nothing when one run has none); 0, or -1 after a message. */
int trainer_compare_grad_hist(const RunResult *runs, int n, const char *path);
/* Clipping as an adaptive step size: effective lr and ||delta theta|| against the
 * pre-clip norm, and the clip's cosine over steps, for n runs' logs (a run's
 * step_size.png; the comparison's <name>_step_size.png). 0, or -1 with a message. */
int run_plots_step_size(const char *path, const char *title, const MetricsLog *const *logs,
                        const char *const *labels, int n);

#endif
