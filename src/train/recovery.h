/* recovery.h: PaLM-style loss-spike recovery (Chowdhery et al. 2022, sec. 5.1):
 * when the loss jumps above spike_factor x its running average (or goes
 * non-finite), restore the last checkpoint taken at least rollback_steps
 * before, skip the next skip_batches batches, and go on.
 *
 * Checkpoints (checkpoint.h) are taken every checkpoint_every steps into an
 * in-memory ring, and the newest is also written atomically to
 * <out_dir>/checkpoint.bin. Every rollback is printed, kept for the plots and
 * written to <out_dir>/rollbacks.csv. */
#ifndef CLIPLAB_RECOVERY_H
#define CLIPLAB_RECOVERY_H

#include <stddef.h>

#include "config.h"

typedef struct RecoveryConfig {
    int enabled;
    double spike_factor;   /* k: spike when loss > k * running average */
    double ema_beta;       /* running average: avg = beta*avg + (1-beta)*loss */
    long warmup;           /* steps before spikes are looked for */
    long checkpoint_every;
    long rollback_steps;   /* restore a checkpoint at least this many steps before the spike */
    long skip_batches;     /* batches not trained on after a rollback */
    int max_rollbacks;     /* then spikes are only logged */
    int save_file;         /* also write <out_dir>/checkpoint.bin */
} RecoveryConfig;

extern const CfgSection recovery_config_section;   /* [recovery] */

typedef struct RecoveryEvent {
    long spike_step;
    double loss, running_avg;
    long restored_step, skipped;
} RecoveryEvent;

typedef struct RecoverySnapshot {
    long step;
    char *buf;
    size_t len;
} RecoverySnapshot;

typedef struct Recovery {
    RecoveryConfig cfg;
    double avg;            /* running average of the loss (checkpointed) */
    long seen;             /* losses averaged so far (checkpointed) */
    RecoverySnapshot *ring;
    int nring;
    RecoveryEvent *events;
    int nevents, cap_events;
} Recovery;

struct Trainer;

void recovery_init(Recovery *r, const RecoveryConfig *cfg);
void recovery_free(Recovery *r);
/* 1 if a spike or non-finite value now would be rolled back. */
int recovery_will_rollback(const Recovery *r);
/* Called before step tr->step runs: take a checkpoint when due. 0 on success. */
int recovery_before_step(struct Trainer *tr);
/* Called after the step with its loss (and whether its update was refused as
 * non-finite). Returns 1 if it rolled back (tr->step now the restored step). */
int recovery_after_step(struct Trainer *tr, double loss, int nonfinite);
/* Write rollbacks.csv (if any rollback happened). 0 on success. */
int recovery_write_log(const struct Trainer *tr);

#endif
