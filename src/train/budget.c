/* budget.c: memory estimate and budget of a run (see budget.h). */
#include "budget.h"

#include <stdio.h>
#include <unistd.h>

#include "dist.h"
#include "train.h"

#define MIB (1024.0 * 1024.0)

void budget_estimate(const Trainer *tr, MemEstimate *e) {
    *e = (MemEstimate){0};
    double ncols = tr->log.ncols + tr->pnorm_log.ncols;
    for (int g = 0; g < tr->ngroups; g++) {
        const ParamSet *ps = tr->groups[g].ps;
        /* data, grad, m, v, the pipeline's scratch copy (clip cosine, update norm) */
        e->params += 4.0 * (5.0 * (double)ps->n + (double)ps->nbuf);
        /* the accumulation / all-reduce buffer (pipeline.c's group_acc) */
        if (tr->train.grad_accum > 1 || dist_size() > 1) e->params += 4.0 * (double)ps->n;
        e->snapshot += 4.0 * (3.0 * (double)ps->n + (double)ps->nbuf) + 4096.0; /* data, m, v, buf */
    }
    e->snapshot += 4096.0; /* header, RNG, model and clip state */
    e->arena = (double)tr->train.arena_mb * MIB;
    e->tape = (double)tr->train.max_nodes * (double)sizeof(TapeNode);
    const RecoveryConfig *rc = &tr->rec.cfg;
    if (rc->enabled) {
        long taken = tr->train.steps / rc->checkpoint_every + 1;
        e->ring_slots = taken < tr->rec.nring ? taken : tr->rec.nring;
    }
    e->ring = (double)e->ring_slots * e->snapshot;
    /* a checkpoint being taken, the copy a read keeps, and resume.bin's buffer (ring included) */
    e->checkpoints = 2.0 * e->snapshot;
    if (tr->run.checkpoint_every > 0) e->checkpoints += e->ring + 2.0 * e->snapshot;
    e->logs = 8.0 * ncols * (double)(tr->train.steps / tr->train.log_every + 1);
    e->total = e->params + e->arena + e->tape + e->ring + e->checkpoints + e->logs;
}

static double physical_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0.0;
}

int budget_check(const Trainer *tr, char *err, size_t errlen) {
    MemEstimate e;
    budget_estimate(tr, &e);
    double budget = (double)tr->run.memory_mb * MIB;
    const char *what = "[run] memory_mb";
    if (tr->run.memory_mb == 0) {
        budget = 0.8 * physical_bytes();
        what = "80% of physical memory ([run] memory_mb = 0)";
    }
    if (budget <= 0 || e.total <= budget) return 0;
    snprintf(err, errlen,
             "this run would need about %.0f MiB, over the budget of %.0f MiB (%s): "
             "recovery ring %.0f MiB (%ld snapshots of %.1f MiB: [recovery] snapshot_every, "
             "rollback_steps and [train] steps), checkpoint copies %.0f MiB ([run] resume_every), "
             "arena %.0f MiB ([train] arena_mb), tape %.0f MiB ([train] max_nodes), parameters and "
             "optimizer state %.0f MiB (the model's size keys), logs %.0f MiB ([train] steps, "
             "log_every); lower those or raise [run] memory_mb",
             e.total / MIB, budget / MIB, what, e.ring / MIB, e.ring_slots, e.snapshot / MIB,
             e.checkpoints / MIB, e.arena / MIB, e.tape / MIB, e.params / MIB, e.logs / MIB);
    return -1;
}
