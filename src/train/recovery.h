/* recovery.h: PaLM-style loss-spike recovery (Chowdhery et al. 2022, sec. 5.1):
 * when the loss jumps above spike_factor x its running average (or goes
 * non-finite), restore the last checkpoint taken at least rollback_steps
 * before, skip the next skip_batches batches, and go on.
 *
 * Checkpoints (checkpoint.h, made by the trainer) are kept every
 * snapshot_every steps in an in-memory ring; the trainer also writes the
 * newest atomically to <out_dir>/checkpoint.bin. Every rollback is printed,
 * kept for the plots and written to <out_dir>/rollbacks.csv. This module is
 * the detector and the ring: it never calls into the trainer. */
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
/* Renamed keys of [recovery] (cfg_renamed): checkpoint_every -> snapshot_every. */
extern const char *const recovery_renamed_keys[];

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

/* steps: the run's [train] steps (the ring never holds more checkpoints than it takes) */
void recovery_init(Recovery *r, const RecoveryConfig *cfg, long steps);
void recovery_free(Recovery *r);
/* 1 if a spike or non-finite value now would be rolled back. */
int recovery_will_rollback(const Recovery *r);
/* 1 when a checkpoint is due before step `step`; the trainer serialises it and
 * hands it over with recovery_store (which takes ownership of buf). */
int recovery_due(const Recovery *r, long step);
void recovery_store(Recovery *r, long step, char *buf, size_t len);
/* After step `step` with its loss (and whether its update was refused as
 * non-finite): NULL to go on, or the checkpoint the trainer must restore. */
const RecoverySnapshot *recovery_check(Recovery *r, long step, double loss, int nonfinite);
/* After the trainer restored a checkpoint of restored_step: forget the later
 * checkpoints and record the rollback (skip_batches batches to skip). */
const RecoveryEvent *recovery_record(Recovery *r, long spike_step, double loss, double avg,
                                     long restored_step);
/* Write <out_dir>/rollbacks.csv (when recovery is enabled). 0 on success. */
int recovery_write_log(const Recovery *r, const char *out_dir);
/* Read it back (a finished run's rollbacks, for --resume of a complete run). */
int recovery_read_log(Recovery *r, const char *out_dir, char *err, size_t errlen);

#endif
