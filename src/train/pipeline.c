/* pipeline.c: update groups, the one update call (trainer_step) and the update
 * pipeline (pipeline_update), in the order train.h gives. The non-finite
 * policy is applied here too. What the clip step does is clipper.c's; the
 * optimizer is optim.c's. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "train.h"

/* ---------------------------------------------------------------- groups */

static const GroupSettings *group_settings(const Trainer *tr, const char *name) {
    const TrainerSettings *s = tr->set;
    if (!tr->def->groups) return NULL;
    for (int i = 0; tr->def->groups[i]; i++)
        if (!strcmp(tr->def->groups[i], name)) {
            ASSERT(i < s->ngroups && !strcmp(s->groups[i].name, name),
                   "settings of group %s were not resolved", name);
            return &s->groups[i];
        }
    ASSERT(0, "model %s registered group '%s', which it does not declare in ModelDef.groups",
           tr->def->name, name);
    return NULL;
}

UpdateGroup *trainer_add_group(Trainer *tr, ParamSet *ps) {
    ASSERT(tr->ngroups < TRAINER_MAX_GROUPS, "too many update groups");
    ASSERT(ps->allocated, "ParamSet %s must be allocated before registering", ps->name);
    ASSERT(!trainer_group(tr, ps->name), "group %s registered twice", ps->name);
    ASSERT(tr->def->groups || tr->ngroups == 0,
           "model %s registers several groups: name them in ModelDef.groups", tr->def->name);
    const GroupSettings *gs = group_settings(tr, ps->name);
    UpdateGroup *g = &tr->groups[tr->ngroups++];
    memset(g, 0, sizeof *g);
    g->ps = ps;
    g->clip_before_unscale = tr->train.clip_before_unscale;
    g->optim_cfg = gs ? gs->optim : tr->set->optim;
    optim_init(&g->optim, &g->optim_cfg, ps->n);
    clipper_init(&g->clip, gs ? &gs->clip : &tr->set->clip, ps);
    return g;
}

UpdateGroup *trainer_group(Trainer *tr, const char *name) {
    for (int i = 0; i < tr->ngroups; i++)
        if (!strcmp(tr->groups[i].ps->name, name)) return &tr->groups[i];
    return NULL;
}

/* ---------------------------------------------------------------- pipeline */

/* A refused update: nothing was clipped or stepped; the stats say so. */
static void refuse(UpdateGroup *g) {
    param_zero_grad(g->ps);
    g->last.post_norm = g->last.coef = NAN;
    g->last.clipped = 0;
    if (g->clip.param_norms) /* the clip step did not run: no per-tensor norms this step */
        for (int i = 0; i < clipper_nparams(&g->clip); i++) g->clip.param_norms[i] = NAN;
}

PipeResult pipeline_update(UpdateGroup *g, double loss_scale, double lr) {
    ParamSet *ps = g->ps;
    /* (clip_before_unscale = true: the bug of Lightning #9599, allennlp #5426:
     * step 5 runs here, on the gradient still multiplied by the scale, so a
     * threshold tau acts as tau / scale on the true gradient; an overflowed
     * (inf) norm gives torch 1.13's coefficient 0: finite elements 0, the inf
     * ones NaN. Its norms are logged in true units, divided by the scale.) */
    if (g->clip_before_unscale) {
        clipper_apply(&g->clip, clipper_global_norm(&g->clip), &g->last);
        g->last.pre_norm /= loss_scale, g->last.post_norm /= loss_scale;
        g->clipped += g->last.clipped;
    }
    /* 2. unscale: * (float)(1/scale), the reciprocal in double (torch's unscale_) */
    scaler_unscale(ps->grad, ps->n, loss_scale);
    /* 3. non-finite check (the global L2 norm is non-finite iff an element is);
     * with the dynamic scaler this is its found_inf: the step is skipped */
    double pre = clipper_global_norm(&g->clip);
    if (!g->clip_before_unscale) g->last.pre_norm = pre;
    if (!isfinite(pre)) {
        refuse(g);
        return PIPE_NONFINITE;
    }
    /* 4. all-reduce: single process, nothing to reduce. 5. gradient clip */
    if (!g->clip_before_unscale) {
        clipper_apply(&g->clip, pre, &g->last);
        g->clipped += g->last.clipped;
    }
    /* 6. optimizer step */
    g->lr = lr;
    optim_step(&g->optim, ps, lr);
    /* 7. weight clip */
    clipper_clamp_weights(&g->clip);
    g->updates++;
    /* 8. zero for the next update */
    param_zero_grad(ps);
    return PIPE_APPLIED;
}

/* The on_nonfinite policy, once a group's update was refused. */
static void nonfinite(Trainer *tr, UpdateGroup *g, const char *what, double value) {
    tr->saw_nonfinite = 1;
    if (recovery_will_rollback(&tr->rec)) return; /* the loop rolls back */
    if (tr->train.on_nonfinite == NONFINITE_SKIP) {
        g->skipped++;
        return;
    }
    if (!tr->diverged) {
        tr->diverged = tr->train.on_nonfinite == NONFINITE_ERROR ? 2 : 1;
        fprintf(stderr, "%s: non-finite %s (%g) at step %ld of group %s%s\n", tr->run.name, what,
                value, tr->step, g->ps->name,
                tr->diverged == 1 ? ": the run diverged; stopping (on_nonfinite = stop)"
                                  : " (on_nonfinite = error)");
    }
}

/* ---------------------------------------------------------------- the update call */

static int in_list(const UpdateGroup *g, UpdateGroup *const *upd, int nupd) {
    for (int i = 0; i < nupd; i++)
        if (upd[i] == g) return 1;
    return 0;
}

double trainer_step(Trainer *tr, UpdateGroup *const *upd, int nupd, TrainerLossFn fn, void *model,
                    void *arg) {
    ASSERT(nupd > 0, "trainer_step with no group to update");
    for (int i = 0; i < nupd; i++)
        ASSERT(upd[i] >= tr->groups && upd[i] < tr->groups + tr->ngroups, "not a group of this trainer");
    /* groups outside the update are frozen: no gradient is recorded into them */
    for (int i = 0; i < tr->ngroups; i++)
        if (!in_list(&tr->groups[i], upd, nupd)) param_set_requires_grad(tr->groups[i].ps, 0);
    int k = tr->train.grad_accum;
    double scale = tr->scaler.scale; /* fixed over the micro-batches */
    double loss_sum = 0.0;
    for (int i = 0; i < k; i++) {
        ctx_reset(&tr->ctx);
        Tensor *loss = fn(model, &tr->ctx, tr, arg);
        ASSERT(loss && loss->n == 1, "a loss function must return a scalar");
        loss_sum += loss->data[0];
        /* no use running backward on NaN; with the dynamic scaler it runs, as
         * in torch: the gradient's own finiteness decides (step 3) */
        if (!isfinite(loss->data[0]) && !tr->scaler.dynamic) break;
        if (loss->grad) ad_backward(&tr->ctx, loss, (float)(scale / k));
        if (i == 0 && tr->step == tr->train.grad_hist_step && tr->hist.step < 0)
            grad_hist_record(&tr->hist, &tr->ctx, tr->step, scale);
    }
    ctx_reset(&tr->ctx);
    for (int i = 0; i < tr->ngroups; i++) param_set_requires_grad(tr->groups[i].ps, 1);
    double loss = loss_sum / k;
    if (!isfinite(loss) && !tr->scaler.dynamic) {
        for (int i = 0; i < nupd; i++) {
            refuse(upd[i]);
            upd[i]->last.pre_norm = NAN; /* no backward ran: the gradient is unknown */
            nonfinite(tr, upd[i], "loss", loss);
        }
        scaler_update(&tr->scaler, 1);
        return loss;
    }
    int found_inf = 0;
    for (int i = 0; i < nupd; i++) {
        UpdateGroup *g = upd[i];
        double lr = optim_lr_at(&g->optim_cfg, tr->step, tr->train.steps);
        if (pipeline_update(g, scale, lr) == PIPE_APPLIED) continue;
        found_inf = 1;
        if (!tr->scaler.dynamic) nonfinite(tr, g, "gradient norm", g->last.pre_norm);
        else g->skipped++;
    }
    /* the dynamic scaler's update, once for every group of the step (torch:
     * scaler.update() after each optimizer's scaler.step()); an overflow is a
     * skipped step and a backoff, not a divergence */
    scaler_update(&tr->scaler, found_inf);
    /* no stale gradient anywhere: each updated group was zeroed by its
     * pipeline (or its refusal), and the frozen ones received none */
    return loss;
}
