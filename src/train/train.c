/* train.c: the update pipeline, the supervised training loop, metrics.csv,
 * progress lines and the run's plots (see train.h for the pipeline's order).
 * What a model computes is in models/; how clipping is done is in clipper.c
 * and clip.c; the optimizer in optim.c. */
#include "train.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "plot.h"

/* ---------------------------------------------------------------- config */

static const char *const nonfinite_choices[] = {"stop", "skip", "error", NULL};

#define RUN_KEY(n, t, f, d, lo, hi, h) {n, t, offsetof(RunConfig, f), d, lo, hi, NULL, h}
static const CfgKey run_keys[] = {
    RUN_KEY("name", CFG_STRING, name, "", 0, 0,
            "run name (default: the config file's base name)"),
    RUN_KEY("out_dir", CFG_STRING, out_dir, "", 0, 0,
            "output folder (default: runs/<name>)"),
    RUN_KEY("seed", CFG_LONG, seed, "1", 0, 2147483647.0,
            "seed of every random draw (data, initialisation): same seed, same numbers"),
    RUN_KEY("plots", CFG_BOOL, plots, "true", 0, 1, "write loss.png and grad_norm.png"),
};
const CfgSection run_config_section = {"run", run_keys, (int)(sizeof run_keys / sizeof *run_keys),
                                       "naming, output folder and seed of a run"};

#define TR_KEY(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(TrainConfig, f), d, lo, hi, ch, h}
static const CfgKey train_keys[] = {
    TR_KEY("steps", CFG_LONG, steps, "1000", 1, 1e8, NULL, "optimizer steps to run"),
    TR_KEY("batch_size", CFG_INT, batch_size, "32", 1, 65536, NULL, "examples per batch"),
    TR_KEY("log_every", CFG_INT, log_every, "1", 1, 1000000, NULL,
           "write a metrics.csv row every this many steps"),
    TR_KEY("eval_every", CFG_INT, eval_every, "0", 0, 1000000, NULL,
           "held-out evaluation every this many steps (0 = never)"),
    TR_KEY("on_nonfinite", CFG_ENUM, on_nonfinite, "stop", 0, 0, nonfinite_choices,
           "non-finite loss or gradient: stop (record it, plot, exit 0), skip the step, "
           "or error (exit 3)"),
    TR_KEY("grad_accum", CFG_INT, grad_accum, "1", 1, 1024, NULL,
           "micro-batches whose gradients accumulate before one update (clip sees the sum)"),
    TR_KEY("loss_scale", CFG_DOUBLE, loss_scale, "1", 1e-8, 1e12, NULL,
           "static loss scale: backward runs on loss*scale, gradients are unscaled "
           "before the clip (mixed-precision order)"),
    TR_KEY("threads", CFG_INT, threads, "1", 1, 256, NULL, "OpenBLAS threads"),
    TR_KEY("arena_mb", CFG_INT, arena_mb, "256", 1, 65536, NULL,
           "per-step memory arena (activations and their gradients), MiB"),
    TR_KEY("max_nodes", CFG_INT, max_nodes, "65536", 16, 100000000, NULL,
           "tape capacity: ops recorded per step"),
    TR_KEY("quiet", CFG_BOOL, quiet, "false", 0, 1, NULL, "no progress lines"),
};
const CfgSection train_config_section = {"train", train_keys,
                                         (int)(sizeof train_keys / sizeof *train_keys),
                                         "the training loop and the update pipeline"};

/* ---------------------------------------------------------------- utils */

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

/* ---------------------------------------------------------------- metrics */

static void log_add_col(MetricsLog *l, const char *name) {
    ASSERT(l->ncols < 128, "too many metrics columns");
    snprintf(l->names[l->ncols++], sizeof l->names[0], "%s", name);
}

static int metrics_col(const MetricsLog *l, const char *name) {
    for (int i = 0; i < l->ncols; i++)
        if (strcmp(l->names[i], name) == 0) return i;
    return -1;
}

static void write_row(FILE *f, const double *vals, int ncols) {
    for (int i = 0; i < ncols; i++) fprintf(f, i ? ",%.9g" : "%.9g", vals[i]);
    fputc('\n', f);
}

static void log_row(MetricsLog *l, const double *vals) {
    if (l->nrows == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        double *rows = realloc(l->rows, l->cap * (size_t)l->ncols * sizeof *rows);
        if (!rows) die("out of memory growing the metrics log");
        l->rows = rows;
    }
    memcpy(l->rows + l->nrows * (size_t)l->ncols, vals, (size_t)l->ncols * sizeof *vals);
    l->nrows++;
    if (l->csv) write_row(l->csv, vals, l->ncols);
}

static void write_header(MetricsLog *l) {
    for (int i = 0; i < l->ncols; i++) fprintf(l->csv, i ? ",%s" : "%s", l->names[i]);
    fputc('\n', l->csv);
}

/* Drop rows of steps >= step (column 0) and rewrite the CSV from memory. */
static void log_truncate(MetricsLog *l, long step) {
    while (l->nrows > 0 && l->rows[(l->nrows - 1) * (size_t)l->ncols] >= (double)step) l->nrows--;
    if (!l->csv) return;
    if (!freopen(l->csv_tmp, "w", l->csv)) die("cannot rewrite %s", l->csv_tmp);
    write_header(l);
    for (size_t r = 0; r < l->nrows; r++) write_row(l->csv, l->rows + r * (size_t)l->ncols, l->ncols);
}

void trainer_truncate_log(Trainer *tr, long step) {
    log_truncate(&tr->log, step);
    log_truncate(&tr->pnorm_log, step);
}

/* ---------------------------------------------------------------- groups */

UpdateGroup *trainer_add_group(Trainer *tr, ParamSet *ps) {
    ASSERT(tr->ngroups < TRAINER_MAX_GROUPS, "too many update groups");
    ASSERT(ps->allocated, "ParamSet %s must be allocated before registering", ps->name);
    UpdateGroup *g = &tr->groups[tr->ngroups++];
    memset(g, 0, sizeof *g);
    g->ps = ps;
    optim_init(&g->optim, &tr->optim, ps->n);
    clipper_init(&g->clip, &tr->clip, ps);
    return g;
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

/* Step 3's policy. Nothing was clipped or stepped: the stats say so. Returns 0:
 * skip this update. */
static int nonfinite(Trainer *tr, UpdateGroup *g, const char *what, double value) {
    param_zero_grad(g->ps);
    g->last.post_norm = g->last.coef = NAN;
    g->last.clipped = 0;
    if (g->clip.param_norms) /* the clip step did not run: no per-tensor norms this step */
        for (int i = 0; i < clipper_nparams(&g->clip); i++) g->clip.param_norms[i] = NAN;
    tr->saw_nonfinite = 1;
    if (recovery_will_rollback(&tr->rec)) return 0; /* recovery_after_step rolls back */
    if (tr->train.on_nonfinite == NONFINITE_SKIP) {
        g->skipped++;
        return 0;
    }
    if (!tr->diverged) {
        tr->diverged = tr->train.on_nonfinite == NONFINITE_ERROR ? 2 : 1;
        fprintf(stderr, "%s: non-finite %s (%g) at step %ld of group %s%s\n", tr->run.name, what,
                value, tr->step, g->ps->name,
                tr->diverged == 1 ? ": the run diverged; stopping (on_nonfinite = stop)"
                                  : " (on_nonfinite = error)");
    }
    return 0;
}

int trainer_update(Trainer *tr, UpdateGroup *g) {
    ParamSet *ps = g->ps;
    /* 2. unscale */
    if (tr->train.loss_scale != 1.0) {
        float inv = (float)(1.0 / tr->train.loss_scale);
        for (size_t i = 0; i < ps->n; i++) ps->grad[i] *= inv;
    }
    /* 3. non-finite check (the global L2 norm is non-finite iff an element is) */
    double pre = clipper_global_norm(&g->clip);
    g->last.pre_norm = pre;
    if (!isfinite(pre)) return nonfinite(tr, g, "gradient norm", pre);
    /* 4. all-reduce: single process, nothing to reduce. 5. gradient clip */
    clipper_apply(&g->clip, pre, &g->last);
    g->clipped += g->last.clipped;
    /* 6. optimizer step */
    g->lr = optim_lr_at(&tr->optim, tr->step, tr->train.steps);
    optim_step(&g->optim, ps, g->lr);
    /* 7. weight clip */
    clipper_clamp_weights(&g->clip);
    g->updates++;
    param_zero_grad(ps);
    return 1;
}

/* ---------------------------------------------------------------- loop */

static void log_columns(Trainer *tr) {
    MetricsLog *l = &tr->log;
    const char *base[] = {"step",      "loss",    "grad_norm", "grad_norm_clipped",
                          "clip_coef", "clip_threshold", "clipped", "clip_frac",
                          "lr",        "time_ms"};
    for (size_t i = 0; i < sizeof base / sizeof *base; i++) log_add_col(l, base[i]);
    for (int g = 1; g < tr->ngroups; g++) {
        const char *suffix[] = {"grad_norm", "grad_norm_clipped", "clip_coef"};
        for (int s = 0; s < 3; s++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%s", tr->groups[g].ps->name, suffix[s]);
            log_add_col(l, name);
        }
    }
    for (int i = 0; i < tr->nextra; i++) log_add_col(l, tr->extra_names[i]);
    const Clipper *cl = &tr->groups[0].clip;
    if (cl->param_norms) {
        log_add_col(&tr->pnorm_log, "step");
        for (int i = 0; i < clipper_nparams(cl) && i + 1 < 128; i++)
            log_add_col(&tr->pnorm_log, clipper_param_name(cl, i));
    }
}

static void log_step(Trainer *tr, double loss) {
    double v[128];
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
    for (int g = 1; g < tr->ngroups; g++) {
        v[k++] = tr->groups[g].last.pre_norm;
        v[k++] = tr->groups[g].last.post_norm;
        v[k++] = tr->groups[g].last.coef;
    }
    for (int i = 0; i < tr->nextra; i++) v[k++] = tr->extra[i];
    ASSERT(k == tr->log.ncols, "row has %d values for %d columns", k, tr->log.ncols);
    log_row(&tr->log, v);
    const Clipper *cl = &g0->clip;
    if (cl->param_norms) {
        v[0] = (double)tr->step;
        for (int i = 0; i < clipper_nparams(cl) && i + 1 < 128; i++) v[i + 1] = cl->param_norms[i];
        log_row(&tr->pnorm_log, v);
    }
}

static void print_progress(Trainer *tr, double loss, double t_now, int final) {
    double elapsed = t_now - tr->t_start;
    long done = tr->step + 1;
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    double eta = rate > 0 ? (double)(tr->train.steps - done) / rate : 0.0;
    const UpdateGroup *g0 = &tr->groups[0];
    printf("%-14s step %6ld/%-6ld | loss %10.4g | grad_norm %9.3g | clip_coef %6.3f | "
           "%7.1f steps/s | %s %.0fs\n",
           tr->run.name, done, tr->train.steps, loss, g0->last.pre_norm, g0->last.coef, rate,
           final ? "took" : "ETA", final ? elapsed : eta);
    fflush(stdout);
}

/* One supervised step: micro-batches with accumulated gradients, then the pipeline. */
static double supervised_step(Trainer *tr) {
    int k = tr->train.grad_accum;
    double loss_sum = 0.0;
    for (int i = 0; i < k; i++) {
        ctx_reset(&tr->ctx);
        Tensor *loss = tr->def->loss(tr->model, &tr->ctx, tr);
        loss_sum += loss->data[0];
        if (!isfinite(loss->data[0])) break; /* no use running backward on NaN */
        ad_backward(&tr->ctx, loss, (float)(tr->train.loss_scale / k));
    }
    ctx_reset(&tr->ctx);
    double loss = loss_sum / k;
    if (!isfinite(loss)) {
        tr->groups[0].last.pre_norm = NAN; /* no backward ran: the gradient is unknown */
        nonfinite(tr, &tr->groups[0], "loss", loss);
        return loss;
    }
    trainer_update(tr, &tr->groups[0]);
    return loss;
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

static void train_loop(Trainer *tr) {
    double last_print = now_seconds();
    for (tr->step = 0; tr->step < tr->train.steps; tr->step++) {
        if (recovery_before_step(tr) != 0) {
            tr->diverged = 2;
            break;
        }
        tr->saw_nonfinite = 0;
        double loss = tr->def->loss ? supervised_step(tr) : tr->def->step(tr->model, tr);
        if (recovery_after_step(tr, loss, tr->saw_nonfinite)) continue;
        int last = tr->step + 1 == tr->train.steps || tr->diverged;
        if (tr->val_metric >= 0) {
            int due = tr->train.eval_every > 0 && !tr->diverged &&
                      ((tr->step + 1) % tr->train.eval_every == 0 || last);
            tr->extra[tr->val_metric] = due ? evaluate(tr) : NAN;
        }
        if (tr->step % tr->train.log_every == 0 || last) log_step(tr, loss);
        double t = now_seconds();
        if (!tr->train.quiet && (t - last_print >= 1.0 || tr->step == 0 || last)) {
            print_progress(tr, loss, t, last);
            last_print = t;
        }
        if (tr->diverged) break;
    }
}

/* ---------------------------------------------------------------- outputs */

static void column(const MetricsLog *l, int col, double *out) {
    for (size_t r = 0; r < l->nrows; r++) out[r] = l->rows[r * (size_t)l->ncols + col];
}

/* A run's rollbacks as points (spike step, spike loss); malloc'd, n may be 0. */
static void rollback_points(const RecoveryEvent *ev, int n, double **x, double **y) {
    *x = xmalloc(((size_t)n + 1) * sizeof **x);
    *y = xmalloc(((size_t)n + 1) * sizeof **y);
    for (int i = 0; i < n; i++) {
        (*x)[i] = (double)ev[i].spike_step;
        (*y)[i] = ev[i].loss;
    }
}

static int write_run_plots(const Trainer *tr, double baseline) {
    const MetricsLog *l = &tr->log;
    size_t n = l->nrows;
    double *x = xmalloc(n * sizeof *x), *loss = xmalloc(n * sizeof *x);
    double *gn = xmalloc(n * sizeof *x), *gc = xmalloc(n * sizeof *x);
    double *val = xmalloc(n * sizeof *x);
    column(l, 0, x);
    column(l, metrics_col(l, "loss"), loss);
    column(l, metrics_col(l, "grad_norm"), gn);
    column(l, metrics_col(l, "grad_norm_clipped"), gc);
    int vc = metrics_col(l, "val_loss");
    size_t nv = 0;
    double *vx = xmalloc(n * sizeof *x);
    if (vc >= 0)
        for (size_t r = 0; r < n; r++) {
            double v = l->rows[r * (size_t)l->ncols + vc];
            if (!isnan(v)) {
                vx[nv] = x[r];
                val[nv++] = v;
            }
        }
    char path[CFG_STR_MAX + 32], err[256], title[CFG_STR_MAX + 128], desc[96];
    clipper_describe_run(&tr->groups[0].clip, desc, sizeof desc);
    snprintf(title, sizeof title, "%s  (clip: %s)", tr->run.name, desc);
    /* rollbacks: the spikes as points, and a line at each spike's step */
    int ne = tr->rec.nevents;
    double *ex, *ey;
    rollback_points(tr->rec.events, ne, &ex, &ey);
    PlotSeries ls[3] = {{"training loss", x, loss, n, 0}};
    int nls = 1;
    if (nv) ls[nls++] = (PlotSeries){"validation loss", vx, val, nv, 1};
    if (ne) ls[nls++] = (PlotSeries){"loss spike (rolled back)", ex, ey, (size_t)ne, 1};
    PlotPanel lp = {"Loss", "step", "loss", PLOT_LOGY_AUTO, ls, nls, ex, ne,
                    "rollback", baseline, "trivial predictor"};
    snprintf(path, sizeof path, "%s/loss.png", tr->run.out_dir);
    int rc = plot_figure(path, title, &lp, 1, 1000, 480, err, sizeof err);
    if (rc == 0) {
        /* the threshold is a series: ZClip, AdaGC and auto move it step by step */
        double *th = xmalloc(n * sizeof *th);
        column(l, metrics_col(l, "clip_threshold"), th);
        int has_th = 0;
        for (size_t r = 0; r < n; r++) has_th |= isfinite(th[r]);
        PlotSeries gs[3] = {{"pre-clip norm", x, gn, n, 0}, {"post-clip norm", x, gc, n, 0},
                            {"clip threshold", x, th, n, 0}};
        if (!has_th) gs[2] = gs[1]; /* value/norm/agc have no global threshold */
        PlotPanel gp = {"Global gradient L2 norm", "step", "norm", PLOT_LOGY_AUTO, gs,
                        tr->clip.grad == CLIP_NONE ? 1 : 2 + has_th, NULL, 0, NULL, NAN, NULL};
        snprintf(path, sizeof path, "%s/grad_norm.png", tr->run.out_dir);
        rc = plot_figure(path, title, &gp, 1, 1000, 480, err, sizeof err);
        free(th);
    }
    if (rc != 0) fprintf(stderr, "cliplab: error: writing plots: %s\n", err);
    free(x), free(loss), free(gn), free(gc), free(val), free(vx), free(ex), free(ey);
    return rc;
}

/* grad_norm_heatmap.png: tensors x steps of pre-clip norms, binned to at most
 * HEAT_COLS columns by the bin's maximum, so a one-step spike stays visible. */
#define HEAT_COLS 300
static int write_heatmap(const Trainer *tr) {
    const MetricsLog *l = &tr->pnorm_log;
    int rows = l->ncols - 1;
    size_t bins = l->nrows < HEAT_COLS ? l->nrows : HEAT_COLS;
    double *x = xmalloc(bins * sizeof *x), *v = xmalloc(bins * (size_t)rows * sizeof *v);
    const char **names = xmalloc((size_t)rows * sizeof *names);
    for (int r = 0; r < rows; r++) names[r] = l->names[r + 1];
    for (size_t b = 0; b < bins; b++) {
        size_t lo = b * l->nrows / bins, hi = (b + 1) * l->nrows / bins;
        x[b] = l->rows[lo * (size_t)l->ncols];
        for (int r = 0; r < rows; r++) {
            double m = -INFINITY;
            for (size_t i = lo; i < hi; i++) {
                double val = l->rows[i * (size_t)l->ncols + 1 + r];
                m = isnan(val) || val > m ? val : m;
                if (isnan(m)) break;
            }
            v[(size_t)r * bins + b] = m;
        }
    }
    char path[CFG_STR_MAX + 32], err[256], title[CFG_STR_MAX + 64];
    snprintf(path, sizeof path, "%s/grad_norm_heatmap.png", tr->run.out_dir);
    snprintf(title, sizeof title, "%s: pre-clip gradient norm per tensor", tr->run.name);
    int rc = plot_heatmap(path, title, "step", names, rows, x, (int)bins, v, 1, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    free(x), free(v), free(names);
    return rc;
}

/* <dir>/<name>.tmp now, renamed to <dir>/<name> by close_metrics at the end. */
static int open_csv(MetricsLog *l, const char *dir, const char *name) {
    snprintf(l->csv_path, sizeof l->csv_path, "%s/%s", dir, name);
    snprintf(l->csv_tmp, sizeof l->csv_tmp, "%s.tmp", l->csv_path);
    l->csv = fopen(l->csv_tmp, "w");
    if (!l->csv) {
        fprintf(stderr, "cliplab: error: cannot write %s: %s\n", l->csv_tmp, strerror(errno));
        return -1;
    }
    write_header(l);
    return 0;
}

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
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "cliplab: error: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (open_csv(&tr->log, tr->run.out_dir, "metrics.csv") != 0) return -1;
    if (tr->pnorm_log.ncols && open_csv(&tr->pnorm_log, tr->run.out_dir, "grad_norms.csv") != 0)
        return -1;
    return 0;
}

static int close_metrics(MetricsLog *l) {
    if (!l->csv) return 0;
    int bad = ferror(l->csv) | (fclose(l->csv) != 0);
    l->csv = NULL;
    if (bad || rename(l->csv_tmp, l->csv_path) != 0) {
        fprintf(stderr, "cliplab: error: cannot write %s: %s\n", l->csv_path, strerror(errno));
        return -1;
    }
    return 0;
}

void run_result_free(RunResult *r) {
    free(r->log.rows);
    free(r->events);
    memset(r, 0, sizeof *r);
}

static int columns_figure(const char *path, const char *title, const MetricsLog *const *logs,
                          const char *const *labels, int n, const char *const *cols);

int trainer_run(const ModelDef *def, const void *model_cfg, const TrainerSettings *s,
                const Config *cfg, RunResult *res) {
    Trainer *tr = xcalloc(1, sizeof *tr);
    const RunConfig *run = &s->run;
    const TrainConfig *train = &s->train;
    tr->def = def;
    tr->run = *run;
    tr->train = *train;
    tr->optim = s->optim;
    tr->clip = s->clip;
    recovery_init(&tr->rec, &s->recovery);
    openblas_set_num_threads(train->threads);
    ctx_init(&tr->ctx, (size_t)train->arena_mb << 20, (size_t)train->max_nodes);
    rng_seed(&tr->rng, (uint64_t)run->seed, 54);
    tr->model = def->create(tr, model_cfg);
    ASSERT(tr->ngroups > 0, "model %s registered no parameter group", def->name);
    tr->val_metric = def->evaluate ? trainer_add_metric(tr, "val_loss") : -1;
    log_columns(tr);
    int rc = open_outputs(tr, cfg);
    if (rc == 0) {
        tr->t_start = now_seconds();
        train_loop(tr);
        rc = close_metrics(&tr->log);
        if (rc == 0) rc = close_metrics(&tr->pnorm_log);
        if (rc == 0) rc = recovery_write_log(tr);
    }
    double baseline = def->baseline_loss ? def->baseline_loss(tr->model) : NAN;
    if (rc == 0 && run->plots && tr->log.nrows) rc = write_run_plots(tr, baseline);
    if (rc == 0 && run->plots && tr->pnorm_log.nrows) rc = write_heatmap(tr);
    if (rc == 0 && run->plots && tr->log.nrows && def->plot_columns) {
        char path[CFG_STR_MAX + 32], desc[96], title[CFG_STR_MAX + 128];
        const MetricsLog *lp = &tr->log;
        const char *label = run->name;
        snprintf(path, sizeof path, "%s/curves.png", tr->run.out_dir);
        clipper_describe_run(&tr->groups[0].clip, desc, sizeof desc);
        snprintf(title, sizeof title, "%s  (gradient clip: %s)", run->name, desc);
        rc = columns_figure(path, title, &lp, &label, 1, def->plot_columns);
    }
    if (rc == 0 && def->finish && !tr->diverged) def->finish(tr->model, tr);
    if (rc == 0 && !train->quiet) {
        printf("%s: wrote %s/ (config.ini, metrics.csv%s)%s\n", run->name, run->out_dir,
               run->plots ? (def->plot_columns ? ", loss.png, grad_norm.png, curves.png"
                                               : ", loss.png, grad_norm.png")
                          : "",
               tr->diverged ? "; the run went non-finite and was stopped" : "");
    }
    if (rc == 0 && tr->diverged == 2) rc = 3;
    if (res) {
        snprintf(res->name, sizeof res->name, "%s", run->name);
        clipper_describe_run(&tr->groups[0].clip, res->clip_desc, sizeof res->clip_desc);
        res->recovery = tr->rec.cfg.enabled;
        snprintf(res->label, sizeof res->label, "%s (clip: %s%s)", run->name, res->clip_desc,
                 res->recovery ? "; spike recovery on" : "");
        res->events = tr->rec.events;
        res->nevents = tr->rec.nevents;
        tr->rec.events = NULL;
        res->log = tr->log;
        tr->log.rows = NULL;
        res->baseline = baseline;
        res->plot_columns = def->plot_columns;
    }
    if (def->destroy) def->destroy(tr->model);
    for (int g = 0; g < tr->ngroups; g++) {
        optim_free(&tr->groups[g].optim);
        clipper_free(&tr->groups[g].clip);
    }
    free(tr->log.rows);
    free(tr->pnorm_log.rows);
    recovery_free(&tr->rec);
    ctx_free(&tr->ctx);
    free(tr);
    return rc;
}

/* Trailing window of w points: the mean (loss) or the max (gradient norm, so a
 * one-step spike keeps its height). Non-finite values propagate from where they
 * occur, so a divergence is still marked where it happened. */
static void smooth(const double *y, size_t n, size_t w, int use_max, double *out) {
    double sum = 0.0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) bad = 1;
        if (bad) {
            out[i] = y[i];
            continue;
        }
        sum += y[i];
        if (i >= w) sum -= y[i - w];
        size_t lo = i + 1 >= w ? i + 1 - w : 0;
        if (use_max) {
            double m = y[lo];
            for (size_t k = lo + 1; k <= i; k++) m = y[k] > m ? y[k] : m;
            out[i] = m;
        } else {
            out[i] = sum / (double)(i + 1 - lo);
        }
    }
}

/* One panel per model column (ModelDef.plot_columns) over n runs' logs: NaN
 * rows dropped (no value that step), the rest smoothed as the loss curves. */
static int columns_figure(const char *path, const char *title, const MetricsLog *const *logs,
                          const char *const *labels, int n, const char *const *cols) {
    int ncols = 0;
    while (cols[ncols]) ncols++;
    PlotPanel *panels = xcalloc((size_t)ncols, sizeof *panels);
    PlotSeries *series = xcalloc((size_t)ncols * (size_t)n, sizeof *series);
    double **bufs = xcalloc((size_t)ncols * (size_t)n * 3, sizeof *bufs);
    char(*titles)[128] = xcalloc((size_t)ncols, sizeof *titles);
    size_t longest = 0;
    for (int i = 0; i < n; i++) longest = logs[i]->nrows > longest ? logs[i]->nrows : longest;
    size_t w = longest > 600 ? longest / 200 : 1;
    for (int c = 0; c < ncols; c++) {
        for (int i = 0; i < n; i++) {
            const MetricsLog *l = logs[i];
            double **b = bufs + 3 * ((size_t)c * n + i);
            for (int k = 0; k < 3; k++) b[k] = xmalloc((l->nrows + 1) * sizeof(double));
            int col = metrics_col(l, cols[c]);
            ASSERT(col >= 0, "plot column %s is not in the metrics", cols[c]);
            size_t m = 0;
            for (size_t r = 0; r < l->nrows; r++) {
                double v = l->rows[r * (size_t)l->ncols + col];
                if (isnan(v)) continue;
                b[0][m] = l->rows[r * (size_t)l->ncols];
                b[1][m++] = v;
            }
            smooth(b[1], m, w, 0, b[2]);
            series[(size_t)c * n + i] = (PlotSeries){labels[i], b[0], b[2], m, 0};
        }
        if (w > 1)
            snprintf(titles[c], sizeof titles[c], "%s (mean of the last %zu logged steps)", cols[c], w);
        else
            snprintf(titles[c], sizeof titles[c], "%s", cols[c]);
        panels[c] = (PlotPanel){titles[c], "step", cols[c], PLOT_LOGY_AUTO, series + (size_t)c * n,
                                n, NULL, 0, NULL, NAN, NULL};
    }
    char err[256];
    int rc = plot_figure(path, title, panels, ncols, 1100, 380 * ncols + 80, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    for (size_t i = 0; i < (size_t)ncols * (size_t)n * 3; i++) free(bufs[i]);
    free(bufs), free(series), free(panels), free(titles);
    return rc;
}

int trainer_compare_plot(const RunResult *runs, int n, const char *path) {
    if (runs[0].plot_columns) {
        const MetricsLog **logs = xcalloc((size_t)n, sizeof *logs);
        const char **labels = xcalloc((size_t)n, sizeof *labels);
        for (int i = 0; i < n; i++) logs[i] = &runs[i].log, labels[i] = runs[i].label;
        int rc = columns_figure(path, "Runs compared", logs, labels, n, runs[0].plot_columns);
        free(logs), free(labels);
        return rc;
    }
    PlotSeries *ls = xcalloc(2 * (size_t)n, sizeof *ls), *gs = xcalloc((size_t)n, sizeof *gs);
    double **bufs = xcalloc((size_t)n * 7, sizeof *bufs);
    int nls = n;
    double baseline = NAN;
    size_t longest = 0;
    for (int i = 0; i < n; i++) longest = runs[i].log.nrows > longest ? runs[i].log.nrows : longest;
    /* one window for all runs: ~200 windows across the longest run */
    size_t w = longest > 600 ? longest / 200 : 1;
    for (int i = 0; i < n; i++) {
        const MetricsLog *l = &runs[i].log;
        double **b = bufs + 7 * i;
        for (int k = 0; k < 5; k++) b[k] = xmalloc((l->nrows + 1) * sizeof(double));
        column(l, 0, b[0]);
        column(l, metrics_col(l, "loss"), b[1]);
        column(l, metrics_col(l, "grad_norm"), b[2]);
        smooth(b[1], l->nrows, w, 0, b[3]);
        smooth(b[2], l->nrows, w, 1, b[4]);
        ls[i] = (PlotSeries){runs[i].label, b[0], b[3], l->nrows, 0};
        gs[i] = (PlotSeries){runs[i].label, b[0], b[4], l->nrows, 0};
        if (isnan(baseline)) baseline = runs[i].baseline;
    }
    for (int i = 0; i < n; i++) { /* each run's rollbacks: its spikes as points */
        const RunResult *r = &runs[i];
        if (!r->nevents) continue;
        double **b = bufs + 7 * i;
        rollback_points(r->events, r->nevents, &b[5], &b[6]);
        char *label = xmalloc(CFG_STR_MAX + 32);
        snprintf(label, CFG_STR_MAX + 32, "%s: spike, rolled back", r->name);
        ls[nls++] = (PlotSeries){label, b[5], b[6], (size_t)r->nevents, 1};
    }
    int clip_differs = 0, recovery_differs = 0;
    for (int i = 1; i < n; i++) {
        clip_differs |= strcmp(runs[i].clip_desc, runs[0].clip_desc) != 0;
        recovery_differs |= runs[i].recovery != runs[0].recovery;
    }
    const char *title = clip_differs && !recovery_differs   ? "Gradient clipping compared"
                        : recovery_differs && !clip_differs ? "Loss-spike recovery compared"
                                                            : "Runs compared";
    char lt[96], gt[96];
    if (w > 1) {
        snprintf(lt, sizeof lt, "Training loss (mean of the last %zu logged steps)", w);
        snprintf(gt, sizeof gt, "Pre-clip global gradient L2 norm (max of the last %zu logged steps)", w);
    } else {
        snprintf(lt, sizeof lt, "Training loss");
        snprintf(gt, sizeof gt, "Pre-clip global gradient L2 norm");
    }
    PlotPanel panels[2] = {
        {lt, "step", "loss", PLOT_LOGY_AUTO, ls, nls, NULL, 0, NULL, baseline, "trivial predictor"},
        {gt, "step", "norm", PLOT_LOGY_AUTO, gs, n, NULL, 0, NULL, NAN, NULL},
    };
    char err[256];
    int rc = plot_figure(path, title, panels, 2, 1100, 900, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    for (int i = 0; i < 7 * n; i++) free(bufs[i]);
    for (int i = n; i < nls; i++) free((char *)ls[i].label);
    free(bufs), free(ls), free(gs);
    return rc;
}
