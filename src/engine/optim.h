/* optim.h: optimizers and learning-rate schedules over a ParamSet's flat buffers,
 * matching torch.optim exactly (update order, bias correction, eps placement):
 *   SGD (momentum, dampening 0, Nesterov, L2 weight decay added to the gradient),
 *   Adam (L2 weight decay added to the gradient), AdamW (decoupled decay:
 *   p -= lr*wd*p before the Adam update), RMSProp (alpha, eps outside the sqrt,
 *   optional momentum, not centered).
 * Weight decay applies only to parameters whose Param.decay is 1.
 * Schedules: constant, linear warm-up then constant / cosine decay / linear
 * decay to min_lr at total steps.
 * The [optim] config section is declared here (optim_config_section). */
#ifndef CLIPLAB_OPTIM_H
#define CLIPLAB_OPTIM_H

#include "config.h"
#include "params.h"

typedef enum { OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW, OPTIM_RMSPROP } OptimKind;
typedef enum { SCHED_CONSTANT, SCHED_COSINE, SCHED_LINEAR } SchedKind;

typedef struct OptimConfig {
    int kind;              /* OptimKind (CFG_ENUM: sgd adam adamw rmsprop) */
    double lr;
    double momentum;       /* SGD / RMSProp */
    int nesterov;          /* SGD */
    double beta1, beta2;   /* Adam/AdamW */
    double eps;            /* Adam/AdamW/RMSProp */
    double alpha;          /* RMSProp smoothing */
    double weight_decay;
    int schedule;          /* SchedKind (CFG_ENUM: constant cosine linear) */
    long warmup_steps;     /* linear warm-up from 0 over these steps (0 = none) */
    double min_lr;         /* floor reached at the end of cosine/linear decay */
} OptimConfig;

extern const CfgSection optim_config_section;   /* [optim] */

typedef struct Optim {
    OptimConfig cfg;
    float *m;              /* momentum buffer / Adam first moment / RMSProp momentum buffer */
    float *v;              /* Adam second moment / RMSProp square average */
    size_t n;              /* values with state: n = the ParamSet's, or a shard's (optim_init_shard) */
    size_t lo;             /* the first flat index the state covers (0 unless sharded) */
    long t;                /* steps taken (Adam bias correction) */
} Optim;

void optim_init(Optim *o, const OptimConfig *cfg, size_t n);
void optim_free(Optim *o);
/* ZeRO-2 / FSDP: state for the flat elements [lo, hi) of a ParamSet only
 * (each data-parallel rank its shard); step it with optim_step_shard. */
void optim_init_shard(Optim *o, const OptimConfig *cfg, size_t lo, size_t hi);
/* One step over the elements [o->lo, o->lo + o->n) of ps only: the same
 * elementwise updates optim_step makes there (so the shards' steps together
 * are byte-identical to one full step). */
void optim_step_shard(Optim *o, ParamSet *ps, double lr);
/* One step at learning rate lr over every trainable parameter of ps. */
void optim_step(Optim *o, ParamSet *ps, double lr);
/* Learning rate at 0-based step `step` of `total` (warm-up: lr*(step+1)/warmup). */
double optim_lr_at(const OptimConfig *cfg, long step, long total);

#endif
