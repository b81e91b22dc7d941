/* train.c: the training loop (supervised steps, custom steps, evaluation,
 * checkpoints and rollbacks), metrics rows, progress lines, and trainer_run,
 * which creates a trainer, writes the run's folder and frees it all. The
 * pipeline is pipeline.c's; the figures run_plots.c's; see train.h. */
#include "train.h"

#include <cblas.h>
#include <omp.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blas_pin.h"
#include "budget.h"
#include "checkpoint.h"
#include "common.h"
#include "ops.h"
#include "plot.h"
#include "resume.h"
#include "runfolder.h"

/* ---------------------------------------------------------------- utils */

/* mkdir -p; returns 0 or -1 with errno set. */
static int make_dirs(const char *path) {
    char buf[CFG_STR_MAX + 64];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* ---------------------------------------------------------------- metrics rows */

void trainer_truncate_log(Trainer *tr, long step) {
    metrics_truncate(&tr->log, step);
    metrics_truncate(&tr->pnorm_log, step);
}

int trainer_add_metric(Trainer *tr, const char *name) {
    ASSERT(tr->nextra < TRAINER_MAX_METRICS, "too many model metrics");
    snprintf(tr->extra_names[tr->nextra], sizeof tr->extra_names[0], "%s", name);
    tr->extra[tr->nextra] = NAN;
    return tr->nextra++;
}

void trainer_set_metric(Trainer *tr, int idx, double value) {
    ASSERT(idx >= 0 && idx < tr->nextra, "metric index %d", idx);
    tr->extra[idx] = value;
}

/* ---------------------------------------------------------------- DP-SGD */

void trainer_dp_examples(Trainer *tr, long n) { tr->dp_examples = n; }

int trainer_dp_poisson(const Trainer *tr) {
    return tr->set->dp.enabled && tr->set->dp.sampling == DP_POISSON;
}

static const char *const dp_columns[] = {"dp_batch", "dp_norm_median", "dp_norm_max", "dp_clipped",
                                         "dp_epsilon", "dp_epsilon_old", "dp_C", NULL};

/* [dp] enabled: the state, the columns, and what the run's privacy will be. */
static void dp_setup(Trainer *tr) {
    const TrainerSettings *s = tr->set;
    if (!tr->def->loss)
        die("[dp] enabled with model %s, which updates its groups itself: DP-SGD needs a "
            "supervised model (one loss over a batch of examples)", tr->def->name);
    if (dist_size() > 1)
        die("[dp] enabled under mpirun: cliplab's DP-SGD runs on one process (the noise would "
            "be drawn once per rank); run it without mpirun");
    if (s->recovery.enabled)
        die("[dp] enabled with [recovery] enabled: a rollback re-runs steps on new batches, and "
            "each of them spends privacy that the accountant (which counts steps) would not see");
    if (s->dp.adaptive && s->run.checkpoint_every > 0)
        die("[dp] adaptive = true with [run] resume_every: the adapted C is not in the "
            "checkpoint yet, so a resumed run would restart from the initial C");
    if (tr->ngroups != 1 || !tr->dp_examples)
        die("[dp] enabled with model %s, which does not support DP-SGD (it declares no training "
            "set for the accountant: models/ calls trainer_dp_examples)", tr->def->name);
    tr->dp = dp_create(&s->dp, tr->dp_examples, s->train.batch_size, s->train.steps,
                       (unsigned long long)s->run.seed);
    tr->groups[0].dp = tr->dp;
    for (int i = 0; dp_columns[i]; i++) {
        int c = trainer_add_metric(tr, dp_columns[i]);
        if (i == 0) tr->dp_col = c;
    }
    double o_new, o_old;
    double e_new = dp_epsilon(tr->dp, s->train.steps, RDP_CONVERT_BALLE2020, &o_new);
    double e_old = dp_epsilon(tr->dp, s->train.steps, RDP_CONVERT_MIRONOV2017, &o_old);
    if (!s->train.quiet)
        printf("[dp] q = %.5g (expected batch %.1f of %ld), sigma %.4g%s, C %g%s, delta %g: after "
               "%ld steps epsilon = %.4g (order %g; Balle et al. 2020) or %.4g by the older "
               "conversion (order %g; what papers before 2021 quote)%s\n",
               tr->dp->q, tr->dp->expected, tr->dp_examples, tr->dp->sigma,
               s->dp.adaptive ? " (gradient: raised for the count query)" : "", s->dp.max_grad_norm,
               s->dp.adaptive ? " (initial, adaptive)" : "", s->dp.delta, s->train.steps, e_new,
               o_new, e_old, o_old,
               s->dp.sampling == DP_SHUFFLE ? " [shuffle sampling: not this run's guarantee]" : "");
}

/* After each step: the dp_* columns; dp_norms.csv at logged steps. */
void trainer_dp_log(Trainer *tr) {
    const Dp *dp = tr->dp;
    double v[7] = {dp->batch, dp->median, dp->max, dp->frac_clipped, dp->eps, dp->eps_old,
                   dp->C_used};
    for (int i = 0; i < 7; i++) trainer_set_metric(tr, tr->dp_col + i, v[i]);
    /* the norms at the first step, at each evaluation and at the last step */
    long e = tr->train.eval_every;
    int due = tr->step == 0 || (e > 0 && (tr->step + 1) % e == 0) || tr->step + 1 == tr->train.steps;
    if (!tr->set->dp.log_norms || !due || !tr->run.out_dir[0]) return;
    if (!tr->dp_norms) {
        char path[CFG_STR_MAX + 32];
        snprintf(path, sizeof path, "%s/dp_norms.csv", tr->run.out_dir);
        tr->dp_norms = fopen(path, tr->step ? "a" : "w");
        if (!tr->dp_norms) die("cannot write %s", path);
        if (!tr->step) fprintf(tr->dp_norms, "step,C,norm\n");
    }
    for (int i = 0; i < dp->batch; i++)
        fprintf(tr->dp_norms, "%ld,%.9g,%.9g\n", tr->step, dp->C_used, dp->norms[i]);
}

static void log_columns(Trainer *tr) {
    MetricsLog *l = &tr->log;
    const char *base[] = {"step",      "loss",    "grad_norm", "grad_norm_clipped",
                          "grad_clip_coef", "clip_threshold", "clipped", "grad_clip_frac",
                          "lr",        "time_ms", "clip_cos", "update_norm", "eff_lr"};
    for (size_t i = 0; i < sizeof base / sizeof *base; i++) metrics_add_col(l, base[i]);
    for (int g = 1; g < tr->ngroups; g++) {
        const char *suffix[] = {"grad_norm", "grad_norm_clipped", "grad_clip_coef"};
        for (int s = 0; s < 3; s++) {
            char name[METRICS_NAME_MAX];
            snprintf(name, sizeof name, "%s_%s", tr->groups[g].ps->name, suffix[s]);
            metrics_add_col(l, name);
        }
    }
    for (int i = 0; i < tr->nextra; i++) metrics_add_col(l, tr->extra_names[i]);
    if (tr->scaler.dynamic) { /* the scale the step ran with; 1 where an overflow skipped it */
        metrics_add_col(l, "loss_scale");
        metrics_add_col(l, "overflow_skip");
    }
    /* grad_norms.csv: every tensor of every group (qualified names past the first group) */
    int any = 0;
    for (int g = 0; g < tr->ngroups; g++) any |= tr->groups[g].clip.param_norms != NULL;
    if (!any) return;
    metrics_add_col(&tr->pnorm_log, "step");
    for (int g = 0; g < tr->ngroups; g++) {
        const Clipper *cl = &tr->groups[g].clip;
        for (int i = 0; cl->param_norms && i < clipper_nparams(cl); i++) {
            char name[METRICS_NAME_MAX];
            snprintf(name, sizeof name, g ? "%s.%s" : "%.0s%s", tr->groups[g].ps->name,
                     clipper_param_name(cl, i));
            metrics_add_col(&tr->pnorm_log, name);
        }
    }
}

static void log_step(Trainer *tr, double loss) {
    double *v = tr->rowbuf;
    int k = 0;
    const UpdateGroup *g0 = &tr->groups[0];
    v[k++] = (double)tr->step;
    v[k++] = loss;
    v[k++] = g0->last.pre_norm;
    v[k++] = g0->last.post_norm;
    v[k++] = g0->last.coef;
    v[k++] = g0->last.threshold;
    v[k++] = g0->last.clipped;
    v[k++] = g0->updates ? (double)g0->clipped / (double)g0->updates : 0.0;
    v[k++] = g0->lr;
    v[k++] = 1000.0 * (now_seconds() - tr->t_start);
    v[k++] = g0->cos_clip;
    v[k++] = g0->update_norm;
    v[k++] = g0->eff_lr;
    for (int g = 1; g < tr->ngroups; g++) {
        v[k++] = tr->groups[g].last.pre_norm;
        v[k++] = tr->groups[g].last.post_norm;
        v[k++] = tr->groups[g].last.coef;
    }
    for (int i = 0; i < tr->nextra; i++) v[k++] = tr->extra[i];
    if (tr->scaler.dynamic) {
        v[k++] = tr->scaler.last_scale;
        v[k++] = tr->scaler.last_found_inf;
    }
    ASSERT(k == tr->log.ncols, "row has %d values for %d columns", k, tr->log.ncols);
    metrics_row(&tr->log, v);
    if (!tr->pnorm_log.ncols) return;
    k = 0;
    v[k++] = (double)tr->step;
    for (int g = 0; g < tr->ngroups; g++) {
        const Clipper *cl = &tr->groups[g].clip;
        for (int i = 0; cl->param_norms && i < clipper_nparams(cl); i++) v[k++] = cl->param_norms[i];
    }
    ASSERT(k == tr->pnorm_log.ncols, "norm row has %d values for %d columns", k, tr->pnorm_log.ncols);
    metrics_row(&tr->pnorm_log, v);
}

/* After each step: the last finite value of each progress-line column. */
static void note_progress(Trainer *tr) {
    for (int i = 0; i < tr->nprogress; i++)
        if (isfinite(tr->extra[tr->progress_col[i]])) tr->progress_last[i] = tr->extra[tr->progress_col[i]];
}

static void print_progress(Trainer *tr, double loss, double t_now, int final) {
    double elapsed = t_now - tr->t_start;
    long done = tr->step + 1;
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    double eta = rate > 0 ? (double)(tr->train.steps - done) / rate : 0.0;
    const UpdateGroup *g0 = &tr->groups[0];
    char cols[256] = "";
    int k = 0;
    if (!tr->def->progress_columns) k = snprintf(cols, sizeof cols, " | loss %10.4g", loss);
    for (int i = 0; i < tr->nprogress && k < (int)sizeof cols - 48; i++) {
        if (tr->progress_col[i] == tr->val_metric && isnan(tr->progress_last[i])) continue;
        k += snprintf(cols + k, sizeof cols - (size_t)k, " | %s %9.4g", tr->extra_names[tr->progress_col[i]],
                      tr->progress_last[i]);
    }
    printf("%-14s step %6ld/%-6ld%s | grad_norm %9.3g | grad_clip_coef %6.3f | "
           "%7.1f steps/s | %s %.0fs\n",
           tr->run.name, done, tr->train.steps, cols, g0->last.pre_norm, g0->last.coef, rate,
           final ? "took" : "ETA", final ? elapsed : eta);
    fflush(stdout);
}

/* [dist] report_every: each rank's pre-clip norm (gathered), the reduced norm, the
 * norm of the update the optimizer got and the loss, printed by rank 0. */
static void dist_report(const Trainer *tr, double loss) {
    const UpdateGroup *g0 = &tr->groups[0];
    int n = dist_size(), shard = g0->dist.shard;
    double *norms = xcalloc(2 * (size_t)n, sizeof *norms), mine[2] = {g0->rank_norm, g0->rank_coef};
    dist_allgather_doubles(norms, mine, 2);
    if (dist_rank() == 0) {
        const char *how = shard ? (g0->dist.norm == DIST_NORM_LOCAL ? "shard, each by its own norm"
                                                                    : "shard, norm reduced across shards")
                          : g0->dist.clip == DIST_CLIP_LOCAL ? "local, before the all-reduce"
                                                             : "global, after the all-reduce";
        printf("%s step %ld [clip %s]: %s norms", tr->run.name, tr->step + 1, how, shard ? "shard" : "rank");
        for (int r = 0; r < n; r++) printf(" %.4g", norms[2 * r]);
        if (shard) {
            printf(" | coefs");
            for (int r = 0; r < n; r++) printf(" %.4g", norms[2 * r + 1]);
        }
        printf(" | %s %.4g | to the optimizer %.4g | loss %.4f\n", shard ? "global" : "reduced",
               g0->last.pre_norm, g0->last.post_norm, loss);
        fflush(stdout);
    }
    free(norms);
}

/* ---------------------------------------------------------------- steps */

static Tensor *supervised_loss(void *model, Ctx *c, Trainer *tr, void *arg) {
    (void)arg;
    return tr->def->loss(model, c, tr);
}

/* One supervised step: every group updated from one loss (accumulated). */
static double supervised_step(Trainer *tr) {
    UpdateGroup *all[TRAINER_MAX_GROUPS];
    for (int i = 0; i < tr->ngroups; i++) all[i] = &tr->groups[i];
    return trainer_step(tr, all, tr->ngroups, supervised_loss, tr->model, NULL);
}

/* Held-out loss: no gradients, batchnorm on its running statistics. */
static double evaluate(Trainer *tr) {
    ctx_reset(&tr->ctx);
    int prev = ctx_set_grad(&tr->ctx, 0);
    tr->ctx.train = 0;
    double v = tr->def->evaluate(tr->model, tr);
    tr->ctx.train = 1;
    ctx_set_grad(&tr->ctx, prev);
    ctx_reset(&tr->ctx);
    return v;
}

/* ---------------------------------------------------------------- checkpoints */

/* [dist] shard = true: serialising the trainer gathers every rank's part of
 * the optimizer state (checkpoint.c), a collective; so when rank 0 alone
 * serialises to write a file, the other ranks take part and write nothing. */
static void take_part_in_save(const Trainer *tr) {
    char *buf;
    size_t len;
    if (ckpt_collective(tr) && ckpt_to_memory(tr, &buf, &len) == 0) free(buf);
}

/* Before step tr->step: a checkpoint into the ring (and checkpoint.bin) when due. */
static int checkpoint_if_due(Trainer *tr) {
    if (!recovery_due(&tr->rec, tr->step)) return 0;
    char *buf;
    size_t len;
    if (ckpt_to_memory(tr, &buf, &len) != 0) {
        fprintf(stderr, "cliplab: error: cannot serialise a checkpoint at step %ld\n", tr->step);
        return -1;
    }
    recovery_store(&tr->rec, tr->step, buf, len);
    if (!tr->rec.cfg.save_file) return 0;
    if (dist_rank() != 0) { /* rank 0 writes the files */
        take_part_in_save(tr);
        return 0;
    }
    if (metrics_flush(&tr->log) != 0 || metrics_flush(&tr->pnorm_log) != 0) { /* logs agree with it */
        fprintf(stderr, "cliplab: error: cannot flush the metrics logs: %s\n", strerror(errno));
        return -1;
    }
    char path[CFG_STR_MAX + 32], err[512];
    snprintf(path, sizeof path, "%s/checkpoint.bin", tr->run.out_dir);
    if (ckpt_save_file(tr, path, err, sizeof err) != 0) {
        fprintf(stderr, "cliplab: error: %s\n", err);
        return -1;
    }
    return 0;
}

/* Before step tr->step: resume.bin when [run] resume_every says so, and
 * right after a rollback (the logs were cut back: the file must agree). */
static int resume_if_due(Trainer *tr) {
    long every = tr->run.checkpoint_every;
    if (!tr->fingerprint || every <= 0) return 0;
    if (tr->step % every != 0 && !tr->resume_due) return 0;
    tr->resume_due = 0;
    if (dist_rank() != 0) { /* rank 0 writes the files */
        take_part_in_save(tr);
        return 0;
    }
    char err[1024];
    if (resume_save(tr, tr->fingerprint, err, sizeof err) != 0) {
        fprintf(stderr, "cliplab: error: %s\n", err);
        return -1;
    }
    return 0;
}

/* Draw and discard n training batches: the data stream moves on exactly as
 * training would have moved it, but nothing is learned from them: no
 * gradients, and in eval mode, so batchnorm running statistics stay as they
 * were. Custom-step models own their data stream. */
static void skip_batches(Trainer *tr, long n) {
    if (!tr->def->loss) return;
    int prev = ctx_set_grad(&tr->ctx, 0);
    tr->ctx.train = 0;
    for (long i = 0; i < n; i++) {
        ctx_reset(&tr->ctx);
        tr->def->loss(tr->model, &tr->ctx, tr);
    }
    ctx_reset(&tr->ctx);
    tr->ctx.train = 1;
    ctx_set_grad(&tr->ctx, prev);
}

/* After the step: 1 if a spike was rolled back (tr->step is then the step
 * before the restored one, so the loop's increment resumes there). */
static int rollback_if_spike(Trainer *tr, double loss) {
    const RecoverySnapshot *s = recovery_check(&tr->rec, tr->step, loss, tr->saw_nonfinite);
    if (!s) return 0;
    long spike = tr->step;
    double avg = tr->rec.avg;
    char err[512];
    if (ckpt_from_memory(tr, s->buf, s->len, err, sizeof err) != 0) die("rollback failed: %s", err);
    const RecoveryEvent *ev = recovery_record(&tr->rec, spike, loss, avg, tr->step);
    metrics_drop_from(&tr->log, ev->restored_step);
    metrics_drop_from(&tr->pnorm_log, ev->restored_step);
    skip_batches(tr, ev->skipped);
    /* resume.bin for the restored state first, then the shorter logs: a kill
     * in between leaves logs longer than resume.bin counts, which --resume
     * cuts; the other order would leave them shorter, which it cannot mend */
    tr->resume_due = 1;
    if (resume_if_due(tr) != 0) tr->failed = 1;
    metrics_rewrite(&tr->log);
    metrics_rewrite(&tr->pnorm_log);
    if (!tr->train.quiet)
        printf("%s: loss spike at step %ld (loss %.4g, running average %.4g): rolled back to "
               "step %ld, skipping %ld batches [rollback %d of at most %d]%s\n",
               tr->run.name, ev->spike_step, loss, ev->running_avg, ev->restored_step, ev->skipped,
               tr->rec.nevents, tr->rec.cfg.max_rollbacks,
               ev->spike_step - ev->restored_step < tr->rec.cfg.rollback_steps
                   ? " (no checkpoint kept from rollback_steps earlier: the oldest one kept)"
                   : "");
    tr->step = ev->restored_step - 1;
    return 1;
}

/* ---------------------------------------------------------------- the loop */

/* The fault tests' hook (tests/test_ddp.c): CLIPLAB_KILL_AT=RANK:STEP makes
 * that rank SIGKILL itself at the start of STEP, a rank dying mid-run at a
 * step that does not depend on timing. -1 when unset or for another rank. */
static long kill_step(void) {
    const char *e = getenv("CLIPLAB_KILL_AT");
    int rank;
    long step;
    if (!e || sscanf(e, "%d:%ld", &rank, &step) != 2 || rank != dist_rank()) return -1;
    return step;
}

void trainer_train(Trainer *tr) {
    ASSERT(tr->def->loss || tr->def->step, "model %s: the loop needs loss or step (model.h)",
           tr->def->name);
    double last_print = now_seconds();
    long kill_at = kill_step();
    for (; tr->step < tr->train.steps; tr->step++) { /* from 0, or a resumed step */
        if (tr->step == kill_at) {
            fflush(stdout);
            raise(SIGKILL);
        }
        if (checkpoint_if_due(tr) != 0 || resume_if_due(tr) != 0) {
            tr->failed = 1;
            break;
        }
        tr->saw_nonfinite = 0;
        /* every model column is NaN unless this step sets it (model.h) */
        for (int i = 0; i < tr->nextra; i++) tr->extra[i] = NAN;
        double loss = tr->def->loss ? supervised_step(tr) : tr->def->step(tr->model, tr);
        if (rollback_if_spike(tr, loss)) {
            if (tr->failed) break;
            continue;
        }
        int last = tr->step + 1 == tr->train.steps || tr->diverged;
        if (tr->val_metric >= 0) {
            int due = tr->train.eval_every > 0 && !tr->diverged &&
                      ((tr->step + 1) % tr->train.eval_every == 0 || last);
            if (due) tr->extra[tr->val_metric] = evaluate(tr);
        }
        note_progress(tr);
        if (tr->step % tr->train.log_every == 0 || last) {
            log_step(tr, loss);
            if (tr->set && tr->set->observer) tr->set->observer(tr, tr->set->observer_arg);
        }
        int every = tr->set ? tr->set->dist.report_every : 0; /* a collective: every rank */
        if (every > 0 && dist_size() > 1 && (tr->step == 0 || (tr->step + 1) % every == 0 || last))
            dist_report(tr, loss);
        double t = now_seconds();
        if (!tr->train.quiet && (t - last_print >= 1.0 || tr->step == 0 || last)) {
            print_progress(tr, loss, t, last);
            last_print = t;
        }
        if (tr->diverged) break;
    }
}

/* ---------------------------------------------------------------- the run */

static int open_outputs(Trainer *tr, const Config *cfg) {
    if (make_dirs(tr->run.out_dir) != 0) {
        fprintf(stderr, "cliplab: error: cannot create output folder %s: %s (set [run] out_dir)\n",
                tr->run.out_dir, strerror(errno));
        return -1;
    }
    char path[CFG_STR_MAX + 32], tmp[CFG_STR_MAX + 40];
    snprintf(path, sizeof path, "%s/config.ini", tr->run.out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "cliplab: error: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    cfg_write(cfg, f);
    fprintf(f, "\n; made with BLAS: %s\n", blas_describe());
    if (dist_size() > 1) /* one data-parallel run: the global batch is the ranks' */
        fprintf(f, "; trained on %d ranks: mpirun -np %d ./train (batch_size per rank)\n", dist_size(), dist_size());
    if (tr->def->baseline_loss) /* read back by sweep maps, which mark it on their colour scale */
        fprintf(f, "; trivial-predictor loss: %.9g\n", tr->def->baseline_loss(tr->model));
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "cliplab: error: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (metrics_open_csv(&tr->log, tr->run.out_dir, "metrics.csv") != 0) return -1;
    if (tr->pnorm_log.ncols && metrics_open_csv(&tr->pnorm_log, tr->run.out_dir, "grad_norms.csv") != 0)
        return -1;
    return 0;
}

void run_result_free(RunResult *r) {
    metrics_free(&r->log);
    free(r->events);
    memset(r, 0, sizeof *r);
}

const char *model_def_problem(const ModelDef *d) {
    if (!d->name || !d->name[0]) return "no name";
    if (!d->summary) return "no summary (one line for --help)";
    if (!d->section || !d->cfg_size) return "no section or cfg_size (its config table)";
    if (strcmp(d->section->name, d->name) != 0) return "its section is not named like the model";
    if (!d->create || !d->destroy) return "no create or destroy";
    if (!d->loss == !d->step) return "not exactly one of loss (supervised) and step (custom)";
    if (!d->save_state != !d->load_state) return "save_state without load_state, or the reverse";
    return NULL;
}

Trainer *trainer_create(const ModelDef *def, const void *model_cfg, const TrainerSettings *s) {
    /* what the trainer itself needs (a test may drive trainer_step by hand, with
     * neither loss nor step); model_def_problem() holds registered models to all of model.h */
    ASSERT(def->create && !(def->loss && def->step) && !def->save_state == !def->load_state,
           "model %s: needs create, at most one of loss and step, and save_state with "
           "load_state (model.h)", def->name);
    Trainer *tr = xcalloc(1, sizeof *tr);
    tr->def = def;
    tr->set = s;
    tr->run = s->run;
    tr->train = s->train;
    if (dist_rank() != 0) tr->train.quiet = 1; /* rank 0 speaks for the run */
    /* A sweep worker shares the cores with the other workers: the sweep sets
     * CLIPLAB_THREAD_CAP to cores / jobs so [train] threads cannot oversubscribe
     * them (the numbers do not depend on the thread count). */
    const char *cap_env = getenv("CLIPLAB_THREAD_CAP");
    int cap = cap_env ? atoi(cap_env) : 0;
    if (tr->train.threads == 0) { /* all cores (those this process may run on) */
        int cores = omp_get_num_procs();
        /* under mpirun, the ranks on this machine share its cores: Open MPI binds
         * each of up to 2 ranks to a core (1 here), but unbound ranks (more ranks,
         * --bind-to none) would each see every core and oversubscribe them */
        int local = dist_local_size();
        if (local > 1 && cores > 1) cores = cores / local > 1 ? cores / local : 1;
        tr->train.threads = cores < 1 ? 1 : cores > 256 ? 256 : cores;
        if (cap >= 1 && tr->train.threads > cap) tr->train.threads = cap;
    }
    if (cap >= 1 && tr->train.threads > cap) {
        printf("[train] threads = %d capped at %d (the sweep's workers share the cores)\n",
               tr->train.threads, cap);
        tr->train.threads = cap;
    }
    recovery_init(&tr->rec, &s->recovery, s->train.steps);
    blas_pin(); /* before the first BLAS call: one kernel on every machine */
    /* the kernels split over OpenMP threads; OpenBLAS runs on one inside each */
    ops_set_threads(tr->train.threads);
    ctx_init(&tr->ctx, (size_t)s->train.arena_mb << 20, (size_t)s->train.max_nodes);
    tr->ctx.precision = s->train.precision;
    scaler_init(&tr->scaler, &s->scaler, s->train.loss_scale);
    tr->hist.step = -1;
    rng_seed(&tr->rng, (uint64_t)s->run.seed, 54);
    tr->model = def->create(tr, model_cfg);
    ASSERT(tr->ngroups > 0, "model %s registered no parameter group", def->name);
    for (int i = 0; def->groups && def->groups[i]; i++)
        ASSERT(trainer_group(tr, def->groups[i]), "model %s declares group %s but did not register it",
               def->name, def->groups[i]);
    if (s->dp.enabled) dp_setup(tr);
    tr->val_metric = def->evaluate ? trainer_add_metric(tr, "val_loss") : -1;
    for (int i = 0; def->progress_columns && def->progress_columns[i]; i++) {
        int c = -1;
        for (int j = 0; j < tr->nextra && c < 0; j++)
            if (!strcmp(tr->extra_names[j], def->progress_columns[i])) c = j;
        ASSERT(c >= 0 && tr->nprogress < TRAINER_MAX_PROGRESS - 1,
               "model %s: progress column %s is not one of its metrics (or too many)", def->name,
               def->progress_columns[i]);
        tr->progress_col[tr->nprogress++] = c;
    }
    if (tr->val_metric >= 0) tr->progress_col[tr->nprogress++] = tr->val_metric;
    for (int i = 0; i < tr->nprogress; i++) tr->progress_last[i] = NAN;
    log_columns(tr);
    int w = tr->log.ncols > tr->pnorm_log.ncols ? tr->log.ncols : tr->pnorm_log.ncols;
    tr->rowbuf = xcalloc((size_t)w, sizeof *tr->rowbuf);
    tr->micro_losses = xcalloc((size_t)tr->train.grad_accum * (size_t)(1 + dist_size()),
                               sizeof *tr->micro_losses);
    return tr;
}

void trainer_destroy(Trainer *tr) {
    if (tr->def->destroy) tr->def->destroy(tr->model);
    dp_free(tr->dp);
    if (tr->dp_norms) fclose(tr->dp_norms);
    for (int g = 0; g < tr->ngroups; g++) {
        optim_free(&tr->groups[g].optim);
        clipper_free(&tr->groups[g].clip);
        free(tr->groups[g].scratch);
        free(tr->groups[g].acc);
    }
    metrics_free(&tr->log);
    metrics_free(&tr->pnorm_log);
    free(tr->rowbuf);
    free(tr->micro_losses);
    recovery_free(&tr->rec);
    ctx_free(&tr->ctx);
    free(tr);
}

/* --resume of a folder whose run is complete: its rows and rollbacks for a
 * comparison plot, nothing trained. */
static int load_complete(Trainer *tr) {
    char err[1024];
    if (metrics_load_csv(&tr->log, tr->run.out_dir, "metrics.csv", err, sizeof err) != 0 ||
        recovery_read_log(&tr->rec, tr->run.out_dir, err, sizeof err) != 0) {
        fprintf(stderr, "cliplab: error: --resume: %s\n", err);
        return -1;
    }
    return 0;
}

/* --resume of a complete run: the settings in its config.ini that change the
 * numbers (the fingerprint's keys) must be the ones asked for now, or the
 * user would get the old run back in silence (a larger train.steps cannot
 * extend it: resume.bin is removed when a run ends). 0 when they agree. */
static int complete_differs(Trainer *tr, const char *dir) {
    if (!tr->fingerprint) return 0;
    char path[4200], line[1024], sec[128] = "", diffs[1024] = "";
    snprintf(path, sizeof path, "%s/config.ini", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line;
        if (*p == '[') {
            snprintf(sec, sizeof sec, "%.*s", (int)strcspn(p + 1, "]"), p + 1);
            continue;
        }
        static const char unread[] = "; not read by this run (";
        if (!strncmp(p, unread, sizeof unread - 1)) { /* "...): key = value" */
            p = strstr(p, "): ");
            if (!p) continue;
            p += 3;
        } else if (*p == ';' || !*p) {
            continue;
        }
        char *eq = strstr(p, " = ");
        if (!eq) continue;
        char want[sizeof sec + sizeof line + 2];
        snprintf(want, sizeof want, "%s.%.*s=", sec, (int)(eq - p), p);
        const char *now = strstr(tr->fingerprint, want);
        while (now && now != tr->fingerprint && now[-1] != '\n') now = strstr(now + 1, want);
        if (!now) continue;
        now += strlen(want);
        size_t nlen = strcspn(now, "\n");
        if (nlen == strlen(eq + 3) && !strncmp(now, eq + 3, nlen)) continue;
        size_t used = strlen(diffs);
        if (n++ < 6 && used < sizeof diffs - 200)
            snprintf(diffs + used, sizeof diffs - used, "%s%.*s = %.60s in the finished run, %.*s now",
                     used ? "; " : "", (int)strlen(want) - 1, want, eq + 3, (int)(nlen > 60 ? 60 : nlen), now);
    }
    fclose(f);
    if (!n) return 0;
    fprintf(stderr, "cliplab: error: --resume: %s holds a finished run with other settings (%s). A "
            "finished run cannot be continued or changed (its resume.bin is removed when it ends): "
            "leave out --resume to train these settings from step 0 (this replaces the run), or "
            "give another [run] out_dir\n", dir, diffs);
    return -1;
}

/* Set up the folder: a fresh run, or the interrupted one continued.
 * Returns 0, 1 (nothing to do: the run is complete), or an exit status. */
static int open_run(Trainer *tr, const Config *cfg, RunFolder *rf) {
    char err[2048], dir[4096];
    const RunConfig *run = &tr->run;
    if (run->resume && runfolder_resolve(run->out_dir, dir, sizeof dir) == 0) {
        RunFolderState st = runfolder_state(dir);
        if (st == RUNFOLDER_COMPLETE) {
            if (complete_differs(tr, dir) != 0) return 2;
            if (!tr->train.quiet) printf("%s: %s holds the complete run: nothing to resume\n", run->name, dir);
            return load_complete(tr) == 0 ? 1 : 2;
        }
        if (st == RUNFOLDER_IN_PROGRESS && resume_exists(run->out_dir)) {
            if (runfolder_continue(rf, run->out_dir, err, sizeof err) != 0) {
                fprintf(stderr, "cliplab: error: %s\n", err);
                return -1;
            }
            double elapsed = 0;
            if (resume_load(tr, tr->fingerprint, &elapsed, err, sizeof err) != 0) {
                fprintf(stderr, "cliplab: error: --resume: %s\n", err);
                runfolder_release(rf);
                return 2;
            }
            tr->t_start = now_seconds() - elapsed;
            if (!tr->train.quiet)
                printf("%s: resuming %s at step %ld of %ld\n", run->name, dir, tr->step, tr->train.steps);
            return 0;
        }
        if (st == RUNFOLDER_IN_PROGRESS)
            fprintf(stderr, "cliplab: warning: --resume: %s holds an interrupted run without resume.bin "
                    "(it had [run] resume_every = 0, or stopped before its first checkpoint): "
                    "starting the run from step 0\n", dir);
        else if (!tr->train.quiet)
            printf("%s: no checkpoint to resume in %s: starting the run from step 0\n", run->name, dir);
    }
    if (run->resume && run->checkpoint_every <= 0)
        fprintf(stderr, "cliplab: warning: --resume with [run] resume_every = 0: this run writes no "
                "resume.bin, so if it is interrupted it cannot be resumed (set run.resume_every, "
                "e.g. 100)\n");
    char note[CFG_STR_MAX * 2 + 256];
    snprintf(note, sizeof note,
             "cliplab run in progress (pid %ld): %s\n"
             "The folder holds this run's files, not complete until this file is gone.\n"
             "%s\n",
             (long)getpid(), run->name,
             run->checkpoint_every > 0
                 ? "Interrupted? ./train CONFIG --resume continues it from resume.bin."
                 : "Not resumable: [run] resume_every = 0 (no resume.bin).");
    if (runfolder_begin(rf, run->out_dir, note, err, sizeof err) != 0) {
        fprintf(stderr, "cliplab: error: %s\n", err);
        return -1;
    }
    if (open_outputs(tr, cfg) != 0) {
        runfolder_release(rf);
        return -1;
    }
    tr->t_start = now_seconds();
    return 0;
}

/* What a comparison needs of a finished run; takes its log and rollbacks from tr. */
static void fill_result(Trainer *tr, double baseline, RunResult *res) {
    const ModelDef *def = tr->def;
    const RunConfig *run = &tr->run;
    snprintf(res->name, sizeof res->name, "%s", run->name);
    snprintf(res->out_dir, sizeof res->out_dir, "%s", run->out_dir);
    res->def = tr->def;
    clipper_describe_run(&tr->groups[0].clip, res->clip_desc, sizeof res->clip_desc);
    res->recovery = tr->rec.cfg.enabled;
    char own[96] = "";
    if (def->describe) {
        def->describe(tr->model, own + 2, sizeof own - 4);
        own[0] = ';', own[1] = ' ';
        snprintf(res->own, sizeof res->own, "%s", own + 2);
    }
    if (def->title)
        def->title(tr->model, res->title, sizeof res->title);
    else
        snprintf(res->title, sizeof res->title, "%s", def->name);
    res->seed = run->seed;
    const DistConfig *dc = &tr->set->dist;
    char ranks[96] = "";
    if (dist_size() > 1)
        snprintf(ranks, sizeof ranks, "; %d ranks, %s", dist_size(),
                 dc->shard ? (dc->norm == DIST_NORM_LOCAL ? "each shard clipped by its own norm"
                                                          : "sharded, norm across shards")
                 : dc->clip == DIST_CLIP_LOCAL ? "each clips before the all-reduce"
                                               : "clip after the all-reduce");
    snprintf(res->label, sizeof res->label, "%s (clip: %s%s%s%s)", run->name, res->clip_desc,
             own, res->recovery ? "; spike recovery on" : "", ranks);
    res->events = tr->rec.events;
    res->nevents = tr->rec.nevents;
    tr->rec.events = NULL;
    res->log = tr->log;
    memset(&tr->log, 0, sizeof tr->log);
    res->baseline = baseline;
    res->plot_columns = def->plot_columns;
    res->compare_columns = def->compare_columns;
    res->plot_column_refs = def->plot_column_refs;
    res->plot_column_ref_labels = def->plot_column_ref_labels;
}

/* [dist] shard = true: what the sharded pipeline does not do yet, named. */
static void shard_refusal(const Trainer *tr, char *err, size_t len) {
    if (tr->set->dist.clip == DIST_CLIP_LOCAL)
        snprintf(err, len, "%s: [dist] shard = true does not work with [dist] clip = local yet (use "
                 "norm = local for the shard pitfall)", tr->run.name);
}

/* Under mpirun, before anything is written: every rank has the same settings
 * and output folder (else the difference is named), and the run can be
 * split over ranks. 0, or 2 with the message printed by rank 0. */
static int dist_check(const Trainer *tr, const char *fingerprint) {
    char err[1024] = "";
    size_t n = strlen(fingerprint) + strlen(tr->run.out_dir) + 16;
    char *text = xmalloc(n);
    snprintf(text, n, "run.out_dir=%s\n%s", tr->run.out_dir, fingerprint);
    int rc = dist_agree(text, "settings", err, sizeof err);
    free(text);
    if (rc == 0 && tr->set->dist.shard)
        shard_refusal(tr, err, sizeof err);
    if (!err[0]) return 0;
    if (dist_rank() == 0) fprintf(stderr, "cliplab: error: %s\n", err);
    return 2;
}

/* Rank 0 set up the folder (fresh or resumed); the other ranks follow it:
 * its status, and on a resume the same state from the same resume.bin. */
static int dist_follow(Trainer *tr, int rc) {
    double v[2] = {rc, (double)tr->step};
    dist_bcast_doubles(v, 2, 0);
    if (dist_rank() == 0) return rc;
    rc = (int)v[0];
    tr->t_start = now_seconds();
    if (rc == 0 && v[1] > 0) { /* rank 0 resumed: the folder must be visible to every rank */
        char err[1024];
        double elapsed = 0;
        if (resume_load(tr, tr->fingerprint, &elapsed, err, sizeof err) != 0 || tr->step != (long)v[1]) {
            fprintf(stderr, "cliplab: error: rank %d cannot resume what rank 0 resumed (--resume under "
                    "mpirun needs the run folder on every host): %s\n", dist_rank(), err);
            dist_abort(2);
        }
    }
    if (rc == 1) load_complete(tr);
    return rc;
}

int trainer_run(const ModelDef *def, const void *model_cfg, const TrainerSettings *s,
                const Config *cfg, RunResult *res) {
    const RunConfig *run = &s->run;
    Trainer *tr = trainer_create(def, model_cfg, s);
    char *fingerprint = resume_fingerprint(cfg);
    if (dist_size() > 1) { /* another number of ranks is another run (another global batch) */
        char *fp = xmalloc(strlen(fingerprint) + 32);
        sprintf(fp, "%sdist.ranks=%d\n", fingerprint, dist_size());
        free(fingerprint);
        fingerprint = fp;
    }
    tr->fingerprint = fingerprint;
    RunFolder rf = {.lock_fd = -1};
    char berr[2048] = "";
    if (dist_size() == 1 && (s->dist.clip != DIST_CLIP_GLOBAL || s->dist.shard || s->dist.norm != DIST_NORM_GLOBAL ||
                             s->dist.report_every > 0))
        fprintf(stderr, "cliplab: warning: %s: [dist] settings act only under mpirun (one process: ignored; "
                "mpirun -np N ./train CONFIG, docs/ddp.md)\n", run->name);
    int rc = dist_size() > 1 ? dist_check(tr, fingerprint) : 0;
    if (rc == 0) rc = budget_check(tr, berr, sizeof berr) == 0 ? (dist_rank() == 0 ? open_run(tr, cfg, &rf) : 0) : 2;
    if (rc == 2 && berr[0]) fprintf(stderr, "cliplab: error: %s: %s\n", run->name, berr);
    if (dist_size() > 1) rc = dist_follow(tr, rc);
    int trained = rc == 0;
    if (rc == 1) rc = 0; /* complete already */
    double coll = dist_seconds(), train_secs = now_seconds(); /* the loop's, for the share below */
    if (trained) {
        if (tr->step < tr->train.steps) trainer_train(tr);
        coll = dist_seconds() - coll, train_secs = now_seconds() - train_secs;
        rc = tr->failed ? -1 : 0;
        if (metrics_close(&tr->log) != 0) rc = -1;
        if (metrics_close(&tr->pnorm_log) != 0) rc = -1;
        if (rc == 0 && dist_rank() == 0) rc = recovery_write_log(&tr->rec, run->out_dir);
    }
    int writer = dist_rank() == 0; /* the other ranks write nothing */
    double baseline = def->baseline_loss ? def->baseline_loss(tr->model) : NAN;
    char seed[32];
    snprintf(seed, sizeof seed, "%ld", run->seed);
    plot_provenance("Seed", seed); /* on this run's figures */
    if (trained && rc == 0 && run->plots && writer) rc = run_plots_write(tr, baseline);
    if (trained && rc == 0 && tr->hist.step >= 0 && writer) {
        char err[512];
        rc = grad_hist_write(&tr->hist, run->out_dir, run->name, err, sizeof err);
        if (rc) fprintf(stderr, "cliplab: error: %s\n", err);
    }
    if (trained && rc == 0 && def->finish && !tr->diverged && writer) def->finish(tr->model, tr);
    if (trained && rc == 0 && writer) { /* complete; then its resume.bin is not needed */
        char path[CFG_STR_MAX + 32], err[1024];
        if (runfolder_complete(&rf, err, sizeof err) != 0) {
            fprintf(stderr, "cliplab: error: %s\n", err);
            rc = -1;
        }
        snprintf(path, sizeof path, "%s/" RESUME_FILE, run->out_dir);
        if (rc == 0) remove(path);
    }
    runfolder_release(&rf);
    if (trained && rc == 0 && dist_size() > 1 && !tr->train.quiet) {
        printf("%s: %d ranks; time inside the all-reduce and the other collectives (waits for the "
               "slower rank included): %.3f s of the loop's %.3f s (%.1f%%)\n", run->name, dist_size(),
               coll, train_secs, train_secs > 0 ? 100.0 * coll / train_secs : 0.0);
    }
    if (trained && rc == 0 && !tr->train.quiet) {
        printf("%s: wrote %s/ (config.ini, metrics.csv%s)%s\n", run->name, run->out_dir,
               run->plots ? (def->plot_columns ? ", loss.png, grad_norm.png, curves.png"
                                               : ", loss.png, grad_norm.png")
                          : "",
               tr->diverged ? "; the run went non-finite and was stopped" : "");
    }
    if (rc == 0 && tr->diverged == 2) rc = 3;
    if (res) fill_result(tr, baseline, res);
    trainer_destroy(tr);
    free(fingerprint);
    return rc;
}

int trainer_replot(const ModelDef *def, const void *model_cfg, const TrainerSettings *s,
                   RunResult *res) {
    Trainer *tr = trainer_create(def, model_cfg, s);
    const char *dir = s->run.out_dir;
    char err[1024] = "";
    int rc = metrics_read_csv(&tr->log, dir, "metrics.csv", err, sizeof err);
    if (rc == 0 && tr->rec.cfg.enabled) rc = recovery_read_log(&tr->rec, dir, err, sizeof err);
    char path[CFG_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/grad_norms.csv", dir);
    if (rc == 0 && access(path, R_OK) == 0)
        rc = metrics_read_csv(&tr->pnorm_log, dir, "grad_norms.csv", err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: --plot %s: %s\n", dir, err);
    double baseline = def->baseline_loss ? def->baseline_loss(tr->model) : NAN;
    char seed[32];
    snprintf(seed, sizeof seed, "%ld", s->run.seed);
    plot_provenance("Seed", seed);
    if (rc == 0 && tr->log.nrows) rc = run_plots_write(tr, baseline);
    if (rc == 0 && !tr->train.quiet) printf("%s: figures redrawn in %s/\n", s->run.name, dir);
    if (rc == 0 && res) fill_result(tr, baseline, res);
    trainer_destroy(tr);
    return rc == 0 ? 0 : 1;
}
