/* recovery.c: loss-spike detection, the checkpoint ring and the rollback log
 * (see recovery.h). It holds serialised checkpoints but never makes or reads
 * one: the trainer does, so recovery does not reach back into the trainer. */
#include "recovery.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

#define REC_KEY(n, t, f, d, lo, hi, h) {n, t, offsetof(RecoveryConfig, f), d, lo, hi, NULL, h}
static const CfgKey recovery_keys[] = {
    REC_KEY("enabled", CFG_BOOL, enabled, "false", 0, 1, "roll back on loss spikes (PaLM, sec. 5.1)"),
    REC_KEY("spike_factor", CFG_DOUBLE, spike_factor, "2", 1, 1e6,
            "a spike is a loss above this many times its running average (or non-finite)"),
    REC_KEY("ema_beta", CFG_DOUBLE, ema_beta, "0.99", 0, 0.999999,
            "running average of the loss: avg = beta*avg + (1-beta)*loss"),
    REC_KEY("warmup", CFG_LONG, warmup, "100", 0, 1e9,
            "steps of averaging before spikes are looked for"),
    REC_KEY("snapshot_every", CFG_LONG, checkpoint_every, "50", 1, 1e9,
            "take a rollback snapshot (kept in memory) every this many steps (not [run] resume_every)"),
    REC_KEY("rollback_steps", CFG_LONG, rollback_steps, "100", 0, 1e9,
            "restore the last checkpoint taken at least this many steps before the spike"),
    REC_KEY("skip_batches", CFG_LONG, skip_batches, "200", 0, 1e9,
            "batches skipped (not trained on) after a rollback; PaLM skipped 200-500"),
    REC_KEY("max_rollbacks", CFG_INT, max_rollbacks, "10", 0, 1000000,
            "after this many rollbacks, spikes are only logged"),
    REC_KEY("save_file", CFG_BOOL, save_file, "true", 0, 1,
            "also write the newest checkpoint to <out_dir>/checkpoint.bin (atomically)"),
};
static const char *recovery_key_unused(const void *s, const CfgKey *k) {
    const RecoveryConfig *c = s;
    return c->enabled || !strcmp(k->name, "enabled") ? NULL : "read only with enabled = true";
}

/* [recovery] checkpoint_every and [run] checkpoint_every meant different things */
const char *const recovery_renamed_keys[] = {"checkpoint_every", "snapshot_every", NULL};

const CfgSection recovery_config_section = {
    "recovery", recovery_keys, (int)(sizeof recovery_keys / sizeof *recovery_keys),
    "loss-spike rollback: checkpoint, detect, restore, skip batches", recovery_key_unused};

void recovery_init(Recovery *r, const RecoveryConfig *cfg, long steps) {
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    if (!cfg->enabled) return;
    /* twice the rollback distance: after restoring to s, a re-spike soon after s
     * still finds a checkpoint rollback_steps before it (s - rollback_steps);
     * never more slots than checkpoints the run takes */
    long want = 2 * (cfg->rollback_steps / cfg->checkpoint_every) + 2;
    long taken = steps / cfg->checkpoint_every + 2;
    r->nring = (int)(want < taken ? want : taken);
    r->ring = xcalloc((size_t)r->nring, sizeof *r->ring);
    for (int i = 0; i < r->nring; i++) r->ring[i].step = -1;
}

void recovery_free(Recovery *r) {
    for (int i = 0; i < r->nring; i++) free(r->ring[i].buf);
    free(r->ring);
    free(r->events);
    memset(r, 0, sizeof *r);
}

/* The ring slot for a new checkpoint at `step`: the slot already holding step (a step stored again after a rollback or a
 * resume replaces its copy), else an empty one, else the oldest. */
static RecoverySnapshot *slot_for(Recovery *r, long step) {
    RecoverySnapshot *empty = NULL, *oldest = &r->ring[0];
    for (int i = 0; i < r->nring; i++) {
        if (r->ring[i].step == step) return &r->ring[i];
        if (r->ring[i].step < 0 && !empty) empty = &r->ring[i];
        if (r->ring[i].step < oldest->step) oldest = &r->ring[i];
    }
    return empty ? empty : oldest;
}

int recovery_due(const Recovery *r, long step) {
    return r->cfg.enabled && step % r->cfg.checkpoint_every == 0;
}

void recovery_store(Recovery *r, long step, char *buf, size_t len) {
    RecoverySnapshot *s = slot_for(r, step);
    free(s->buf);
    s->buf = buf, s->len = len, s->step = step;
}

static const RecoverySnapshot *rollback_target(const Recovery *r, long spike_step) {
    const RecoverySnapshot *best = NULL, *oldest = NULL;
    for (int i = 0; i < r->nring; i++) {
        const RecoverySnapshot *s = &r->ring[i];
        if (s->step < 0) continue;
        if (!oldest || s->step < oldest->step) oldest = s;
        if (s->step <= spike_step - r->cfg.rollback_steps && (!best || s->step > best->step))
            best = s;
    }
    return best ? best : oldest;
}

static void add_event(Recovery *r, RecoveryEvent ev) {
    if (r->nevents == r->cap_events) {
        r->cap_events = r->cap_events ? 2 * r->cap_events : 16;
        r->events = realloc(r->events, (size_t)r->cap_events * sizeof *r->events);
        if (!r->events) die("out of memory recording a rollback");
    }
    r->events[r->nevents++] = ev;
}

int recovery_will_rollback(const Recovery *r) {
    return r->cfg.enabled && r->nevents < r->cfg.max_rollbacks;
}

const RecoverySnapshot *recovery_check(Recovery *r, long step, double loss, int nonfinite) {
    if (!r->cfg.enabled) return NULL;
    int spike = nonfinite || !isfinite(loss) ||
                (r->seen >= r->cfg.warmup && loss > r->cfg.spike_factor * r->avg);
    if (!spike) {
        r->avg = r->seen ? r->cfg.ema_beta * r->avg + (1.0 - r->cfg.ema_beta) * loss : loss;
        r->seen++;
        return NULL;
    }
    if (!recovery_will_rollback(r)) return NULL;
    const RecoverySnapshot *s = rollback_target(r, step);
    ASSERT(s, "no checkpoint to roll back to (one is taken at step 0)");
    return s;
}

const RecoveryEvent *recovery_record(Recovery *r, long spike_step, double loss, double avg,
                                     long restored_step) {
    for (int i = 0; i < r->nring; i++) /* checkpoints of the abandoned trajectory */
        if (r->ring[i].step > restored_step) {
            free(r->ring[i].buf);
            r->ring[i].buf = NULL;
            r->ring[i].step = -1;
        }
    add_event(r, (RecoveryEvent){spike_step, loss, avg, restored_step, r->cfg.skip_batches});
    return &r->events[r->nevents - 1];
}

int recovery_write_log(const Recovery *r, const char *out_dir) {
    if (!r->cfg.enabled) return 0;
    char path[CFG_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/rollbacks.csv", out_dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cliplab: error: cannot write %s\n", path);
        return -1;
    }
    fprintf(f, "spike_step,loss,running_avg,restored_step,batches_skipped\n");
    for (int i = 0; i < r->nevents; i++) {
        const RecoveryEvent *e = &r->events[i];
        fprintf(f, "%ld,%.9g,%.9g,%ld,%ld\n", e->spike_step, e->loss, e->running_avg,
                e->restored_step, e->skipped);
    }
    return fclose(f) == 0 ? 0 : -1;
}

int recovery_read_log(Recovery *r, const char *out_dir, char *err, size_t errlen) {
    if (!r->cfg.enabled) return 0;
    char path[CFG_STR_MAX + 32], line[512];
    snprintf(path, sizeof path, "%s/rollbacks.csv", out_dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = fgets(line, sizeof line, f) ? 0 : -1;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        RecoveryEvent ev;
        if (sscanf(line, "%ld,%lg,%lg,%ld,%ld", &ev.spike_step, &ev.loss, &ev.running_avg,
                   &ev.restored_step, &ev.skipped) != 5)
            rc = -1;
        else
            add_event(r, ev);
    }
    fclose(f);
    if (rc != 0) snprintf(err, errlen, "%s is not a rollbacks log", path);
    return rc;
}
