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
    g->dist = tr->set->dist;
    if (g->dist.shard && dist_size() > 1) { /* ZeRO-2: the optimizer state of this rank's part */
        size_t lo, hi;
        dist_chunk(ps->n, dist_rank(), &lo, &hi);
        optim_init_shard(&g->optim, &g->optim_cfg, lo, hi);
    } else {
        optim_init(&g->optim, &g->optim_cfg, ps->n);
    }
    clipper_init(&g->clip, gs ? &gs->clip : &tr->set->clip, ps);
    g->scratch = xmalloc((ps->n ? ps->n : 1) * sizeof *g->scratch);
    g->cos_clip = g->update_norm = g->eff_lr = NAN;
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
    g->cos_clip = g->update_norm = g->eff_lr = NAN;
    if (g->clip.param_norms) /* the clip step did not run: no per-tensor norms this step */
        for (int i = 0; i < clipper_nparams(&g->clip); i++) g->clip.param_norms[i] = NAN;
}

/* The group's second gradient-sized buffer (accumulation, the local-clip copy),
 * allocated on first use and kept for the run. */
static float *group_acc(UpdateGroup *g) {
    if (!g->acc) g->acc = xmalloc(g->ps->n * sizeof *g->acc);
    return g->acc;
}

/* [dist] clip = local only: the norm of the all-reduced UNclipped gradient
 * (an extra all-reduce of a copy), so the log's pre-clip norm means the same
 * in both modes. */
static void local_unclipped_norm(UpdateGroup *g) {
    ParamSet *ps = g->ps;
    group_acc(g);
    memcpy(g->acc, ps->grad, ps->n * sizeof *ps->grad);
    dist_allreduce_ordered(g->acc, ps->n);
    double s = 0.0;
    for (size_t i = 0; i < ps->n; i++) s += (double)g->acc[i] * (double)g->acc[i];
    g->unclipped_norm = sqrt(s);
}

/* cos(a, b) and ||a - b||, summed in double in index order (NaN for a zero vector). */
static double cosine(const float *a, const float *b, size_t n) {
    /* b is a bit for bit (the clip left the gradient alone) and finite: ab, aa
     * and bb are the same sum, so the loop below would give aa / sqrt(aa * aa),
     * exactly 1 (the square root of a square is exact, and for finite floats aa * aa
     * neither overflows nor underflows: a nonzero float squared is above 1e-90), or
     * NaN for a zero vector. The same value without the three serial sums. */
    if (n && !memcmp(a, b, n * sizeof *a)) {
        int finite = 1, nonzero = 0;
        for (size_t i = 0; i < n; i++) finite &= a[i] - a[i] == 0.0f, nonzero |= a[i] != 0.0f;
        if (finite) return nonzero ? 1.0 : NAN;
    }
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : NAN;
}

/* cosine() of two vectors held as shards (a, b: this rank's chunk), bit for
 * bit: the three running sums pass from rank to rank (each continues the
 * left neighbour's in index order, the adds cosine() makes), then the last
 * rank's go to all. The ranks scan one after another, but a scan is about a
 * millisecond of a step. */
static double shard_cosine(const float *a, const float *b, size_t n) {
    int me = dist_rank(), N = dist_size();
    double s[3] = {0, 0, 0};
    if (me > 0) dist_recv_doubles(s, 3, me - 1);
    double ab = s[0], aa = s[1], bb = s[2];
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    s[0] = ab, s[1] = aa, s[2] = bb;
    if (me + 1 < N) dist_send_doubles(s, 3, me + 1);
    dist_bcast_doubles(s, 3, N - 1);
    ab = s[0], aa = s[1], bb = s[2];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : NAN;
}

static double distance(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s);
}

PipeResult pipeline_update(UpdateGroup *g, double loss_scale, double lr) {
    ParamSet *ps = g->ps;
    /* (clip_before_unscale = true: the bug of Lightning #9599, allennlp #5426:
     * step 7 runs here, on the gradient still multiplied by the scale, so a
     * threshold tau acts as tau / scale on the true gradient; an overflowed
     * (inf) norm gives torch 1.13's coefficient 0: finite elements 0, the inf
     * ones NaN. Its norms are logged in true units, divided by the scale.) */
    if (g->clip_before_unscale) {
        memcpy(g->scratch, ps->grad, ps->n * sizeof *ps->grad);
        clipper_apply(&g->clip, clipper_global_norm(&g->clip), &g->last);
        g->last.pre_norm /= loss_scale, g->last.post_norm /= loss_scale;
        g->clipped += g->last.clipped;
        g->cos_clip = cosine(g->scratch, ps->grad, ps->n); /* the scale cancels */
    }
    /* 2. unscale: * (float)(1/scale), the reciprocal in double (torch's unscale_) */
    scaler_unscale(ps->grad, ps->n, loss_scale);
    /* 3. non-finite check (the global L2 norm is non-finite iff an element is);
     * with the dynamic scaler this is its found_inf: the step is skipped. Under
     * mpirun every rank refuses when one rank's gradient is non-finite. */
    double pre = clipper_global_norm(&g->clip);
    if (!g->clip_before_unscale) g->last.pre_norm = pre;
    if (dist_any(!isfinite(pre))) {
        refuse(g);
        return PIPE_NONFINITE;
    }
    /* 4. DP-SGD: each example's gradient clipped to C, the clipped ones summed
     * (dp.c; the gradient so far held nothing: the weights' gradients were taken
     * per example in step 1) */
    if (g->dp && dp_clip_sum(g->dp, ps, loss_scale) != 0) {
        refuse(g);
        g->last.pre_norm = NAN;
        return PIPE_NONFINITE;
    }
    /* 5. all-reduce across ranks (dist.h): each rank's gradient is already 1/N
     * of its share (the backward seed), so the rank-ordered sum is DDP's mean.
     * [dist] clip = local: each rank clips its own gradient first, by its own
     * norm (the Horovod mistake); the reduced gradient is then not clipped. */
    int nranks = dist_size(), local_clip = nranks > 1 && g->dist.clip == DIST_CLIP_LOCAL;
    int shard = nranks > 1 && g->dist.shard; /* ZeRO-2 / FSDP: reduce-scatter only */
    g->rank_norm = pre * nranks; /* the norm of this rank's own mean gradient */
    if (local_clip) { /* clip this rank's own mean gradient (x N), then back to its 1/N share */
        local_unclipped_norm(g); /* the reduced norm DDP would have clipped, for the log */
        float up = (float)nranks, down = (float)(1.0 / nranks);
        for (size_t i = 0; i < ps->n; i++) ps->grad[i] *= up;
        clipper_apply(&g->clip, g->rank_norm, &g->last);
        for (size_t i = 0; i < ps->n; i++) ps->grad[i] *= down;
    }
    if (shard) {
        dist_reduce_scatter_ordered(ps->grad, ps->n); /* this rank's chunk is reduced */
    } else if (nranks > 1) {
        dist_allreduce_ordered(ps->grad, ps->n);
        pre = clipper_global_norm(&g->clip);
        g->last.pre_norm = pre;
    }
    /* 6. DP-SGD: noise N(0, (sigma C)^2) per coordinate, / expected batch */
    if (g->dp) {
        dp_noise(g->dp, ps);
        pre = clipper_global_norm(&g->clip);
        g->last.pre_norm = pre;
    }
    /* 7. gradient clip: once, on the reduced gradient (sharded: the norm reduced across
     * the shards, shard.c; [dist] norm = local: each shard's own, the FSDP pitfall);
     * the cosine of the gradient before and after it */
    if (shard) {
        size_t lo, hi;
        dist_chunk(ps->n, dist_rank(), &lo, &hi);
        memcpy(g->scratch + lo, ps->grad + lo, (hi - lo) * sizeof *ps->grad);
        shard_clip(g, lo, hi, &g->last);
        g->clipped += g->last.clipped;
        g->cos_clip = shard_cosine(g->scratch + lo, ps->grad + lo, hi - lo);
    } else if (local_clip) { /* it ran per rank (coef: this rank's); the update is the reduced gradient */
        g->last.post_norm = pre;
        g->last.pre_norm = g->unclipped_norm;
        g->clipped += g->last.clipped;
    } else if (!g->clip_before_unscale) {
        memcpy(g->scratch, ps->grad, ps->n * sizeof *ps->grad);
        clipper_apply(&g->clip, pre, &g->last);
        g->clipped += g->last.clipped;
        g->cos_clip = cosine(g->scratch, ps->grad, ps->n);
    }
    /* 8. optimizer step (sharded: each rank its part with its part of the state, then
     * the parameters all-gathered); the update's norm ||delta theta|| and lr x clip
     * coefficient */
    g->lr = lr;
    g->eff_lr = lr * g->last.coef;
    memcpy(g->scratch, ps->data, ps->n * sizeof *ps->data);
    if (shard) {
        optim_step_shard(&g->optim, ps, lr);
        dist_allgather_chunks(ps->data, ps->n);
    } else {
        optim_step(&g->optim, ps, lr);
    }
    g->update_norm = distance(ps->data, g->scratch, ps->n);
    /* 9. weight clip */
    clipper_clamp_weights(&g->clip);
    g->updates++;
    /* 10. zero for the next update */
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

/* A micro-batch another rank computes: its data is drawn and dropped here, so
 * every rank's data stream stays where one process's would be. */
static void skip_micro_batch(Trainer *tr) {
    if (!tr->def->loss) return; /* a custom-step model prepared every micro-batch's data */
    if (tr->def->skip_batch) {
        tr->def->skip_batch(tr->model, tr);
        return;
    }
    int prev = ctx_set_grad(&tr->ctx, 0);
    ctx_reset(&tr->ctx);
    tr->def->loss(tr->model, &tr->ctx, tr);
    ctx_set_grad(&tr->ctx, prev);
}

/* Step 1's accumulation in a fixed order: each micro-batch's gradient is
 * computed into zeroed buffers, then added to the sum of the earlier ones
 * (sum + new, elementwise), the adds the rank-ordered all-reduce makes, so
 * grad_accum = N on one process and N ranks give the same bytes. */
static void accumulate_begin(UpdateGroup *const *upd, int nupd) {
    for (int i = 0; i < nupd; i++) {
        ParamSet *ps = upd[i]->ps;
        memcpy(group_acc(upd[i]), ps->grad, ps->n * sizeof *ps->grad);
        param_zero_grad(ps);
    }
}
static void accumulate_end(UpdateGroup *const *upd, int nupd) {
    for (int i = 0; i < nupd; i++) {
        ParamSet *ps = upd[i]->ps;
        const float *acc = upd[i]->acc;
        for (size_t j = 0; j < ps->n; j++) ps->grad[j] = acc[j] + ps->grad[j];
    }
}

int trainer_micro_batches(const Trainer *tr) { return tr->train.grad_accum * dist_size(); }

void trainer_micro_gather(Trainer *tr, double *v, int s) {
    int k = tr->train.grad_accum;
    if (dist_size() == 1) return;
    double *mine = xmalloc((size_t)k * (size_t)s * sizeof *mine);
    memcpy(mine, v + (size_t)dist_rank() * (size_t)k * (size_t)s, (size_t)k * (size_t)s * sizeof *mine);
    dist_allgather_doubles(v, mine, k * s);
    free(mine);
}

double trainer_step(Trainer *tr, UpdateGroup *const *upd, int nupd, TrainerLossFn fn, void *model,
                    void *arg) {
    ASSERT(nupd > 0, "trainer_step with no group to update");
    for (int i = 0; i < nupd; i++)
        ASSERT(upd[i] >= tr->groups && upd[i] < tr->groups + tr->ngroups, "not a group of this trainer");
    /* groups outside the update are frozen: no gradient is recorded into them */
    for (int i = 0; i < tr->ngroups; i++)
        if (!in_list(&tr->groups[i], upd, nupd)) param_set_requires_grad(tr->groups[i].ps, 0);
    /* 1. backward. Under mpirun rank r computes micro-batches r*k .. r*k+k-1 of
     * the K = k*N the step takes (k = grad_accum) and draws past the others;
     * each loss is seeded with the loss scale / K, so the sum is the mean. */
    double scale = tr->scaler.scale; /* fixed over the micro-batches */
    int k = tr->train.grad_accum, nranks = dist_size(), me = dist_rank(), K = k * nranks;
    /* this rank's k micro-batch losses, then all K (the trainer's buffer: no
     * allocation per step); zeroed, as a stopped rank sends its unused slots */
    double *mine = tr->micro_losses, *all = tr->micro_losses + k;
    memset(mine, 0, (size_t)(k + K) * sizeof *mine);
    int done = 0, stopped = 0;
    for (int i = 0; i < K; i++) {
        if (stopped && !tr->def->loss) break; /* a custom-step model's data is its own */
        if (i / k != me || stopped) { /* another rank's, or after a non-finite loss */
            skip_micro_batch(tr);
            continue;
        }
        if (done > 0) accumulate_begin(upd, nupd);
        ctx_reset(&tr->ctx);
        /* DP-SGD: linear and conv2d hand their weight gradients over per example */
        if (tr->dp) dp_attach(tr->dp, &tr->ctx, tr->step);
        tr->micro = i;
        Tensor *loss = fn(model, &tr->ctx, tr, arg);
        ASSERT(loss && loss->n == 1, "a loss function must return a scalar");
        mine[done++] = loss->data[0];
        /* no use running backward on NaN; with the dynamic scaler it runs, as
         * in torch: the gradient's own finiteness decides (step 3) */
        if (!isfinite(loss->data[0]) && !tr->scaler.dynamic) {
            stopped = 1;
            continue;
        }
        if (loss->grad) ad_backward(&tr->ctx, loss, (float)(scale / K));
        if (done == 1 && tr->step == tr->train.grad_hist_step && tr->hist.step < 0)
            grad_hist_record(&tr->hist, &tr->ctx, tr->step, scale);
        if (done > 1) accumulate_end(upd, nupd);
    }
    /* the step's arena lives until the pipeline has run: DP-SGD's step 4 reads
     * the per-example gradients kept in it */
    if (tr->dp) dp_detach(tr->dp, &tr->ctx);
    for (int i = 0; i < tr->ngroups; i++) param_set_requires_grad(tr->groups[i].ps, 1);
    /* the step's loss: the micro-batch losses in order, up to the first non-finite one */
    dist_allgather_doubles(all, mine, k);
    double loss_sum = 0.0;
    for (int i = 0; i < K; i++) {
        loss_sum += all[i];
        if (!isfinite(all[i])) break;
    }
    /* the model's metrics of the step are those of the last micro-batch's rank */
    if (nranks > 1 && tr->nextra > 0) dist_bcast_doubles(tr->extra, tr->nextra, nranks - 1);
    double loss = loss_sum / K;
    /* with the dynamic scaler a non-finite loss is not decided here: its
     * backward ran (as in torch, where scaler.scale(loss).backward() runs
     * whatever the loss), and the gradient's finiteness decides in step 3:
     * usually inf or NaN (skip, back off), finite when the loss's overflow did
     * not reach the gradient (tests/test_amp.c, step 21 of the torch run) */
    if (!isfinite(loss) && !tr->scaler.dynamic) {
        ctx_reset(&tr->ctx);
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
    ctx_reset(&tr->ctx);
    if (tr->dp) trainer_dp_log(tr);
    /* no stale gradient anywhere: each updated group was zeroed by its
     * pipeline (or its refusal), and the frozen ones received none */
    return loss;
}
