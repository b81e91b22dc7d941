/* recovery.c: loss-spike detection, checkpoint ring and rollback (see recovery.h). */
#include "recovery.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "train.h"

#define REC_KEY(n, t, f, d, lo, hi, h) {n, t, offsetof(RecoveryConfig, f), d, lo, hi, NULL, h}
static const CfgKey recovery_keys[] = {
    REC_KEY("enabled", CFG_BOOL, enabled, "false", 0, 1, "roll back on loss spikes (PaLM, sec. 5.1)"),
    REC_KEY("spike_factor", CFG_DOUBLE, spike_factor, "2", 1, 1e6,
            "a spike is a loss above this many times its running average (or non-finite)"),
    REC_KEY("ema_beta", CFG_DOUBLE, ema_beta, "0.99", 0, 0.999999,
            "running average of the loss: avg = beta*avg + (1-beta)*loss"),
    REC_KEY("warmup", CFG_LONG, warmup, "100", 0, 1e9,
            "steps of averaging before spikes are looked for"),
    REC_KEY("checkpoint_every", CFG_LONG, checkpoint_every, "50", 1, 1e9,
            "take a checkpoint every this many steps"),
    REC_KEY("rollback_steps", CFG_LONG, rollback_steps, "100", 0, 1e9,
            "restore the last checkpoint taken at least this many steps before the spike"),
    REC_KEY("skip_batches", CFG_LONG, skip_batches, "200", 0, 1e9,
            "batches skipped (not trained on) after a rollback; PaLM skipped 200-500"),
    REC_KEY("max_rollbacks", CFG_INT, max_rollbacks, "10", 0, 1000000,
            "after this many rollbacks, spikes are only logged"),
    REC_KEY("save_file", CFG_BOOL, save_file, "true", 0, 1,
            "also write the newest checkpoint to <out_dir>/checkpoint.bin (atomically)"),
};
const CfgSection recovery_config_section = {
    "recovery", recovery_keys, (int)(sizeof recovery_keys / sizeof *recovery_keys),
    "loss-spike rollback: checkpoint, detect, restore, skip batches"};

void recovery_init(Recovery *r, const RecoveryConfig *cfg) {
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    if (!cfg->enabled) return;
    /* twice the rollback distance: after restoring to s, a re-spike soon after s
     * still finds a checkpoint rollback_steps before it (s - rollback_steps) */
    r->nring = 2 * (int)(cfg->rollback_steps / cfg->checkpoint_every) + 2;
    r->ring = xcalloc((size_t)r->nring, sizeof *r->ring);
    for (int i = 0; i < r->nring; i++) r->ring[i].step = -1;
}

void recovery_free(Recovery *r) {
    for (int i = 0; i < r->nring; i++) free(r->ring[i].buf);
    free(r->ring);
    free(r->events);
    memset(r, 0, sizeof *r);
}

/* The ring slot for a new checkpoint at `step`: the one already at that step,
 * else an empty one, else the oldest. */
static RecoverySnapshot *slot_for(Recovery *r, long step) {
    RecoverySnapshot *oldest = &r->ring[0];
    for (int i = 0; i < r->nring; i++) {
        if (r->ring[i].step == step || r->ring[i].step < 0) return &r->ring[i];
        if (r->ring[i].step < oldest->step) oldest = &r->ring[i];
    }
    return oldest;
}

int recovery_before_step(Trainer *tr) {
    Recovery *r = &tr->rec;
    if (!r->cfg.enabled || tr->step % r->cfg.checkpoint_every != 0) return 0;
    RecoverySnapshot *s = slot_for(r, tr->step);
    free(s->buf);
    s->step = -1;
    if (ckpt_to_memory(tr, &s->buf, &s->len) != 0) {
        fprintf(stderr, "cliplab: error: cannot serialise a checkpoint at step %ld\n", tr->step);
        return -1;
    }
    s->step = tr->step;
    if (!r->cfg.save_file) return 0;
    char path[CFG_STR_MAX + 32], err[512];
    snprintf(path, sizeof path, "%s/checkpoint.bin", tr->run.out_dir);
    if (ckpt_save_file(tr, path, err, sizeof err) != 0) {
        fprintf(stderr, "cliplab: error: %s\n", err);
        return -1;
    }
    return 0;
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

/* Draw and discard n training batches: the data stream moves on exactly as
 * training would have moved it, but nothing is learned from them. */
static void skip_batches(Trainer *tr, long n) {
    if (!tr->def->loss) return; /* custom-step models own their data stream */
    int prev = ctx_set_grad(&tr->ctx, 0);
    for (long i = 0; i < n; i++) {
        ctx_reset(&tr->ctx);
        tr->def->loss(tr->model, &tr->ctx, tr);
    }
    ctx_reset(&tr->ctx);
    ctx_set_grad(&tr->ctx, prev);
}

static void rollback(Trainer *tr, double loss) {
    Recovery *r = &tr->rec;
    RecoveryEvent ev = {tr->step, loss, r->avg, 0, r->cfg.skip_batches};
    const RecoverySnapshot *s = rollback_target(r, tr->step);
    ASSERT(s, "no checkpoint to roll back to (one is taken at step 0)");
    char err[512];
    if (ckpt_from_memory(tr, s->buf, s->len, err, sizeof err) != 0)
        die("rollback failed: %s", err);
    ev.restored_step = tr->step;
    for (int i = 0; i < r->nring; i++) /* checkpoints of the abandoned trajectory */
        if (r->ring[i].step > ev.restored_step) {
            free(r->ring[i].buf);
            r->ring[i].buf = NULL;
            r->ring[i].step = -1;
        }
    trainer_truncate_log(tr, ev.restored_step);
    skip_batches(tr, ev.skipped);
    add_event(r, ev);
    if (!tr->train.quiet)
        printf("%s: loss spike at step %ld (loss %.4g, running average %.4g): rolled back to "
               "step %ld, skipping %ld batches [rollback %d of at most %d]%s\n",
               tr->run.name, ev.spike_step, loss, ev.running_avg, ev.restored_step, ev.skipped,
               r->nevents, r->cfg.max_rollbacks,
               ev.spike_step - ev.restored_step < r->cfg.rollback_steps
                   ? " (no checkpoint kept from rollback_steps earlier: the oldest one kept)"
                   : "");
    tr->step = ev.restored_step - 1; /* the loop's increment resumes at the restored step */
}

int recovery_will_rollback(const Recovery *r) {
    return r->cfg.enabled && r->nevents < r->cfg.max_rollbacks;
}

int recovery_after_step(Trainer *tr, double loss, int nonfinite) {
    Recovery *r = &tr->rec;
    if (!r->cfg.enabled) return 0;
    int spike = nonfinite || !isfinite(loss) ||
                (r->seen >= r->cfg.warmup && loss > r->cfg.spike_factor * r->avg);
    if (!spike) {
        r->avg = r->seen ? r->cfg.ema_beta * r->avg + (1.0 - r->cfg.ema_beta) * loss : loss;
        r->seen++;
        return 0;
    }
    if (!recovery_will_rollback(r)) return 0;
    rollback(tr, loss);
    return 1;
}

int recovery_write_log(const Trainer *tr) {
    const Recovery *r = &tr->rec;
    if (!r->cfg.enabled) return 0;
    char path[CFG_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/rollbacks.csv", tr->run.out_dir);
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
