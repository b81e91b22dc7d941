/* train.h: the update pipeline, the training loop, metrics and run outputs.
 *
 * The update pipeline (DESIGN.md) is one function, trainer_update(); every
 * model calls it (directly, or through the supervised loop):
 *   1. backward (done by the caller; gradients accumulate over micro-batches)
 *   2. unscale: divide gradients by [train] loss_scale (mixed-precision order)
 *   3. non-finite check of the gradients: [train] on_nonfinite = stop|skip|error
 *   4. (all-reduce across ranks: cliplab trains on one process, so none)
 *   5. gradient clip (clipper.h): pre-clip norm, post-clip norm, coefficient
 *   6. optimizer step at the scheduled learning rate
 *   7. weight clip (WGAN-style clamp after the step)
 * then the gradients are zeroed for the next update.
 *
 * A run writes <out_dir>/config.ini (effective), metrics.csv, loss.png and
 * grad_norm.png; see trainer_run(). Errors a user can fix (unwritable folder)
 * are reported and exit non-zero; on_nonfinite = stop is not an error. */
#ifndef CLIPLAB_TRAIN_H
#define CLIPLAB_TRAIN_H

#include <stdio.h>

#include "clipper.h"
#include "config.h"
#include "model.h"
#include "optim.h"
#include "params.h"
#include "recovery.h"
#include "rng.h"
#include "tensor.h"

typedef enum { NONFINITE_STOP, NONFINITE_SKIP, NONFINITE_ERROR } NonfinitePolicy;

typedef struct RunConfig {
    char name[CFG_STR_MAX];       /* default: the config file's base name */
    char out_dir[CFG_STR_MAX];    /* default: runs/<name> */
    long seed;
    int plots;
} RunConfig;

typedef struct TrainConfig {
    long steps;
    int batch_size;
    int log_every;
    int eval_every;
    int on_nonfinite;             /* NonfinitePolicy */
    int grad_accum;
    double loss_scale;
    int threads;
    int arena_mb;
    int max_nodes;
    int quiet;
} TrainConfig;

typedef struct ModelSel {
    int type;                     /* index into model_registry */
} ModelSel;

/* Every section the trainer itself reads, as one value. */
typedef struct TrainerSettings {
    RunConfig run;
    TrainConfig train;
    OptimConfig optim;
    ClipConfig clip;
    RecoveryConfig recovery;
} TrainerSettings;

extern const CfgSection run_config_section;    /* [run] */
extern const CfgSection train_config_section;  /* [train] */

/* One optimizer update group: a ParamSet with its optimizer and clip state. */
typedef struct UpdateGroup {
    ParamSet *ps;
    Optim optim;
    Clipper clip;
    ClipStats last;               /* stats of the latest update */
    double lr;
    long updates, clipped, skipped;
} UpdateGroup;

#define TRAINER_MAX_GROUPS 4
#define TRAINER_MAX_METRICS 64

typedef struct MetricsLog {
    int ncols;
    char names[128][64];
    double *rows;                 /* nrows x ncols, kept for plotting */
    size_t nrows, cap;
    FILE *csv;
    char csv_tmp[CFG_STR_MAX + 48], csv_path[CFG_STR_MAX + 32];
} MetricsLog;

struct Trainer {
    const ModelDef *def;
    void *model;
    RunConfig run;
    TrainConfig train;
    OptimConfig optim;
    ClipConfig clip;
    Ctx ctx;
    Rng rng;                      /* the model's and data's stream, from [run] seed */
    UpdateGroup groups[TRAINER_MAX_GROUPS];
    int ngroups;
    long step;                    /* 0-based current step */
    int nextra;
    char extra_names[TRAINER_MAX_METRICS][32];
    double extra[TRAINER_MAX_METRICS];
    int val_metric;               /* extra column "val_loss" (models with evaluate), or -1 */
    Recovery rec;                 /* loss-spike rollback state */
    int saw_nonfinite;            /* the current step met a non-finite loss or gradient */
    int diverged;                 /* a non-finite loss or gradient was seen and the run stopped */
    double t_start;
    MetricsLog log;
    MetricsLog pnorm_log;         /* grad_norms.csv: per-tensor pre-clip norms ([clip] log_param_norms) */
};

/* For models: register a ParamSet (optimizer and clip from the run's config). */
UpdateGroup *trainer_add_group(Trainer *tr, ParamSet *ps);
/* For models: add a metrics column; returns its index for trainer_set_metric. */
int trainer_add_metric(Trainer *tr, const char *name);
void trainer_set_metric(Trainer *tr, int idx, double value);
/* The update pipeline, steps 2-7, for one group whose gradients are ready.
 * Returns 1 if the step was applied, 0 if skipped or stopped (non-finite). */
int trainer_update(Trainer *tr, UpdateGroup *g);

/* Everything one config run needs, after the config was loaded and validated. */
typedef struct RunResult {
    char name[CFG_STR_MAX];
    char label[CFG_STR_MAX + 128];
    MetricsLog log;               /* owned copy of the rows for comparison plots */
    double baseline;              /* trivial-predictor loss or NaN */
    char clip_desc[96];           /* what the clip step did ("global L2 norm 1") */
    int recovery;                 /* [recovery] enabled */
    RecoveryEvent *events;        /* its rollbacks (owned) */
    int nevents;
} RunResult;

/* Train; write outputs. Returns 0 on success (a stopped divergence is success),
 * non-zero on error (message printed). */
int trainer_run(const ModelDef *def, const void *model_cfg, const TrainerSettings *s,
                const Config *cfg, RunResult *res);
/* Drop logged rows of steps >= step (a rollback replays them) and rewrite the CSV. */
void trainer_truncate_log(Trainer *tr, long step);
void run_result_free(RunResult *r);
/* Overlay several runs' loss and grad-norm curves (two panels) in one PNG. */
int trainer_compare_plot(const RunResult *runs, int n, const char *path);

double now_seconds(void);

#endif
