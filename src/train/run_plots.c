/* run_plots.c: the figures of a run (loss.png, grad_norm.png,
 * grad_norm_heatmap.png) and the comparison of several runs, drawn from the
 * metrics logs through the plotting module. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "plot.h"
#include "grad_hist.h"
#include "train.h"

/* A run's own figures' title: "rnn_clip: Vanilla RNN, adding problem, clip: global L2 norm 1,
 * seed 1" (the config, the model and task, its clipping, its seed; the model and task left
 * out when the line would be too long). */
static void run_title(const Trainer *tr, char *buf, size_t len) {
    char desc[96], what[96], own[96] = "";
    clipper_describe_run(&tr->groups[0].clip, desc, sizeof desc);
    if (tr->def->title)
        tr->def->title(tr->model, what, sizeof what);
    else
        snprintf(what, sizeof what, "%s", tr->def->name);
    if (tr->def->describe) tr->def->describe(tr->model, own, sizeof own);
    int n = snprintf(buf, len, "%s: %s, %s%s%s%s, seed %ld", tr->run.name, what,
                     strcmp(desc, "none") ? "clip: " : "", strcmp(desc, "none") ? desc : "no clipping",
                     own[0] ? "; " : "", own, tr->run.seed);
    if (n > 80) /* one line on a 1000-pixel figure: the config's name stands for the model */
        snprintf(buf, len, "%s: %s%s%s%s, seed %ld", tr->run.name, strcmp(desc, "none") ? "clip: " : "",
                 strcmp(desc, "none") ? desc : "no clipping", own[0] ? "; " : "", own, tr->run.seed);
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

static int write_loss_and_norm(const Trainer *tr, double baseline) {
    const MetricsLog *l = &tr->log;
    size_t n = l->nrows;
    double *x = xmalloc(n * sizeof *x), *loss = xmalloc(n * sizeof *x);
    double *gn = xmalloc(n * sizeof *x), *gc = xmalloc(n * sizeof *x);
    double *val = xmalloc(n * sizeof *x);
    metrics_column(l, 0, x);
    metrics_column(l, metrics_col(l, "loss"), loss);
    metrics_column(l, metrics_col(l, "grad_norm"), gn);
    metrics_column(l, metrics_col(l, "grad_norm_clipped"), gc);
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
    char path[CFG_STR_MAX + 32], err[256], title[CFG_STR_MAX + 400], desc[96];
    clipper_describe_run(&tr->groups[0].clip, desc, sizeof desc);
    run_title(tr, title, sizeof title);
    /* rollbacks: the spikes as points, and a line at each spike's step */
    int ne = tr->rec.nevents;
    double *ex, *ey;
    rollback_points(tr->rec.events, ne, &ex, &ey);
    PlotSeries ls[3] = {{.label = "training loss", .x = x, .y = loss, .n = n}};
    int nls = 1;
    if (nv)
        ls[nls++] =
            (PlotSeries){.label = "validation loss", .x = vx, .y = val, .n = nv, .style = 1};
    if (ne)
        ls[nls++] = (PlotSeries){.label = "loss spike (rolled back)", .x = ex, .y = ey,
                                 .n = (size_t)ne, .style = 1};
    PlotPanel lp = {.title = "Loss", .xlabel = "step", .ylabel = "loss", .logy = PLOT_LOGY_AUTO,
                    .series = ls, .nseries = nls, .vlines = ex, .nvlines = ne,
                    .vline_label = "rollback", .hline = baseline,
                    .hline_label = "trivial predictor"};
    snprintf(path, sizeof path, "%s/loss.png", tr->run.out_dir);
    int rc = plot_figure(path, title, &lp, 1, 1000, 480, err, sizeof err);
    if (rc == 0) {
        /* the threshold is a series: ZClip, AdaGC and auto move it step by step */
        double *th = xmalloc(n * sizeof *th);
        metrics_column(l, metrics_col(l, "clip_threshold"), th);
        /* the dynamic loss scale: a line at each overflow (a skipped step, not
         * a divergence: its norm is left out of the norm panel), and the
         * scale's trajectory in a second panel */
        int sc = metrics_col(l, "loss_scale"), sk = metrics_col(l, "overflow_skip");
        double *scale = xmalloc(n * sizeof *scale), *skips = xmalloc(n * sizeof *skips);
        double *xn = xmalloc(n * sizeof *xn);
        int nskip = 0;
        size_t nn = 0;
        for (size_t r = 0; r < n; r++) {
            if (sk >= 0) scale[r] = l->rows[r * (size_t)l->ncols + sc];
            if (sk >= 0 && l->rows[r * (size_t)l->ncols + sk] != 0) {
                skips[nskip++] = x[r];
                continue;
            }
            xn[nn] = x[r], gn[nn] = gn[r], gc[nn] = gc[r], th[nn] = th[r];
            nn++;
        }
        int has_th = 0;
        for (size_t r = 0; r < nn; r++) has_th |= isfinite(th[r]);
        /* the post-clip line is drawn last, over the threshold it sits on whenever
         * the clip acts; each keeps its colour whichever lines are drawn */
        PlotSeries gs[3] = {{.label = "pre-clip norm", .x = xn, .y = gn, .n = nn, .color = 1},
                            {.label = "clip threshold", .x = xn, .y = th, .n = nn, .color = 3},
                            {.label = "post-clip norm", .x = xn, .y = gc, .n = nn, .color = 2}};
        if (!has_th) gs[1] = gs[2]; /* value/norm/agc have no global threshold */
        PlotSeries ss = {.label = "loss scale (the step's backward ran with it)", .x = x, .y = scale, .n = n};
        PlotPanel gp[2] = {{.title = "Global gradient L2 norm", .xlabel = "step", .ylabel = "norm",
                            .logy = PLOT_LOGY_AUTO, .series = gs,
                            .nseries = tr->groups[0].clip.cfg.grad == CLIP_NONE ? 1 : 2 + has_th,
                            .vlines = skips, .nvlines = nskip,
                            .vline_label = "overflow: step skipped, scale backed off"},
                           {.title = "Dynamic loss scale (GradScaler)", .xlabel = "step",
                            .ylabel = "scale", .logy = PLOT_LOGY_ON, .series = &ss, .nseries = 1,
                            .vlines = skips, .nvlines = nskip,
                            .vline_label = "overflow: step skipped, scale backed off"}};
        snprintf(path, sizeof path, "%s/grad_norm.png", tr->run.out_dir);
        rc = plot_figure(path, title, gp, sk >= 0 ? 2 : 1, 1000, sk >= 0 ? 860 : 480, err, sizeof err);
        free(th), free(scale), free(skips), free(xn);
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

static int columns_figure(const char *path, const char *title, const MetricsLog *const *logs,
                          const char *const *labels, int n, const char *const *cols,
                          const double *refs, const char *const *ref_labels);

/* curves.png: the model's plot_columns, one panel each */
static int write_columns(const Trainer *tr) {
    char path[CFG_STR_MAX + 32], desc[96], title[CFG_STR_MAX + 400];
    const MetricsLog *lp = &tr->log;
    const char *label = tr->run.name;
    snprintf(path, sizeof path, "%s/curves.png", tr->run.out_dir);
    clipper_describe_run(&tr->groups[0].clip, desc, sizeof desc);
    char own[96] = "";
    if (tr->def->describe) {
        own[0] = ';', own[1] = ' ';
        tr->def->describe(tr->model, own + 2, sizeof own - 2);
    }
    (void)own;
    run_title(tr, title, sizeof title);
    return columns_figure(path, title, &lp, &label, 1, tr->def->plot_columns,
                          tr->def->plot_column_refs, tr->def->plot_column_ref_labels);
}

static void smooth(const double *y, size_t n, size_t w, int use_max, double *out);

/* Clipping as an adaptive step size (Zhang, He, Sra & Jadbabaie 2020: clipped GD is GD
 * with step lr * min(1, c / ||g||)): per logged step of each run, the effective learning
 * rate and the update's norm against the pre-clip gradient norm (points), with the rule
 * lr * min(1, c / ||g||) drawn (over the clipped runs' norms) when every run has one lr
 * and one constant threshold c;
 * below, the cosine between the gradient before and after the clip step over the steps
 * (1 when the clip only scales). Runs without the columns (older logs) are left out. */
int run_plots_step_size(const char *path, const char *title, const MetricsLog *const *logs,
                        const char *const *labels, int n) {
    PlotSeries *es = xcalloc((size_t)n + 1, sizeof *es), *us = xcalloc((size_t)n, sizeof *us);
    PlotSeries *cs = xcalloc((size_t)n, sizeof *cs);
    double **b = xcalloc((size_t)n * 7 + 2, sizeof *b);
    int ne = 0, nu = 0, nc = 0, one_rule = 1;
    double lr = NAN, c = NAN, gmin = INFINITY, gmax = 0;
    for (int i = 0; i < n; i++) {
        const MetricsLog *l = logs[i];
        int ce = metrics_col(l, "eff_lr"), cu = metrics_col(l, "update_norm");
        int cc = metrics_col(l, "clip_cos"), cg = metrics_col(l, "grad_norm");
        int ct = metrics_col(l, "clip_threshold"), cl = metrics_col(l, "lr");
        if (ce < 0 || cu < 0 || cc < 0 || cg < 0) continue;
        double **v = b + 5 * i;
        for (int k = 0; k < 5; k++) v[k] = xmalloc((l->nrows + 1) * sizeof(double));
        metrics_column(l, 0, v[0]);
        metrics_column(l, cg, v[1]);
        metrics_column(l, ce, v[2]);
        metrics_column(l, cu, v[3]);
        metrics_column(l, cc, v[4]);
        for (size_t r = 0; r < l->nrows; r++) {
            double g = v[1][r], t = ct >= 0 ? l->rows[r * (size_t)l->ncols + ct] : NAN;
            double rl = cl >= 0 ? l->rows[r * (size_t)l->ncols + cl] : NAN;
            if (isfinite(g) && g > 0 && isfinite(t)) gmin = fmin(gmin, g), gmax = fmax(gmax, g);
            if (isnan(lr)) lr = rl;
            one_rule &= rl == lr;
            if (isfinite(t)) {
                if (isnan(c)) c = t;
                one_rule &= t == c;
            }
        }
        es[ne++] = (PlotSeries){.label = labels[i], .x = v[1], .y = v[2], .n = l->nrows,
                                .style = PLOT_DOTS, .color = i + 1};
        us[nu++] = (PlotSeries){.label = labels[i], .x = v[1], .y = v[3], .n = l->nrows,
                                .style = PLOT_DOTS, .color = i + 1};
        { /* the cosine over a trailing window: its mean, and its min-max band */
            size_t w = l->nrows > 600 ? l->nrows / 200 : 1;
            double *raw = xmalloc((l->nrows + 1) * sizeof *raw);
            memcpy(raw, v[4], l->nrows * sizeof *raw);
            smooth(raw, l->nrows, w, 0, v[4]);
            b[5 * n + 2 + 2 * i] = xmalloc((l->nrows + 1) * sizeof(double));
            b[5 * n + 3 + 2 * i] = xmalloc((l->nrows + 1) * sizeof(double));
            double *lo = b[5 * n + 2 + 2 * i], *hi = b[5 * n + 3 + 2 * i];
            for (size_t r = 0; r < l->nrows; r++) {
                size_t a = r + 1 >= w ? r + 1 - w : 0;
                lo[r] = INFINITY, hi[r] = -INFINITY;
                for (size_t q = a; q <= r; q++) lo[r] = fmin(lo[r], raw[q]), hi[r] = fmax(hi[r], raw[q]);
                if (!isfinite(lo[r]) || !isfinite(hi[r])) lo[r] = hi[r] = NAN;
            }
            free(raw);
            cs[nc++] = (PlotSeries){.label = labels[i], .x = v[0], .y = v[4], .n = l->nrows,
                                    .lo = lo, .hi = hi, .color = i + 1};
        }
    }
    if (ne == 0) {
        free(es), free(us), free(cs), free(b);
        return 0;
    }
    enum { RULE = 64 };
    char rule[96];
    if (one_rule && isfinite(lr) && isfinite(c) && gmin < gmax) {
        double *rx = b[5 * n] = xmalloc(RULE * sizeof(double));
        double *ry = b[5 * n + 1] = xmalloc(RULE * sizeof(double));
        for (int k = 0; k < RULE; k++) {
            rx[k] = gmin * pow(gmax / gmin, k / (RULE - 1.0));
            ry[k] = lr * fmin(1.0, c / rx[k]);
        }
        snprintf(rule, sizeof rule, "lr \u00b7 min(1, c / \u2016g\u2016), lr = %g, c = %g", lr, c);
        es[ne++] = (PlotSeries){.label = rule, .x = rx, .y = ry, .n = RULE, .color = 8};
    }
    PlotPanel panels[3] = {
        {.title = "Effective learning rate: lr \u00d7 clip coefficient, against the gradient norm",
         .xlabel = "pre-clip global gradient L2 norm \u2016g\u2016", .ylabel = "lr \u00d7 coefficient",
         .logx = 1, .logy = PLOT_LOGY_AUTO, .series = es, .nseries = ne, .hline = NAN},
        {.title = "Length of the update \u2016\u0394\u03b8\u2016 (optimizer step), against the gradient norm",
         .xlabel = "pre-clip global gradient L2 norm \u2016g\u2016", .ylabel = "\u2016\u0394\u03b8\u2016",
         .logx = 1, .logy = PLOT_LOGY_AUTO, .series = us, .nseries = nu, .hline = NAN},
        {.title = "Cosine between the gradient before and after the clip step (1: only scaled; "
                  "line: running mean, band: min to max)",
         .xlabel = "step", .ylabel = "cosine", .logy = PLOT_LOGY_OFF, .series = cs, .nseries = nc,
         .hline = NAN},
    };
    char err[256];
    int rc = plot_figure(path, title, panels, 3, 1100, 1300, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    for (int i = 0; i < 7 * n + 2; i++) free(b[i]);
    free(es), free(us), free(cs), free(b);
    return rc;
}

static int write_step_size(const Trainer *tr) {
    char path[CFG_STR_MAX + 32], title[CFG_STR_MAX + 400], desc[96];
    const MetricsLog *lp = &tr->log;
    const char *label = desc;
    clipper_describe_run(&tr->groups[0].clip, desc, sizeof desc);
    snprintf(path, sizeof path, "%s/step_size.png", tr->run.out_dir);
    snprintf(title, sizeof title, "%s (%s%s), seed %ld: clipping as an adaptive step size", tr->run.name,
             strcmp(desc, "none") ? "clip: " : "", strcmp(desc, "none") ? desc : "no clipping", tr->run.seed);
    return run_plots_step_size(path, title, &lp, &label, 1);
}

int run_plots_write(const Trainer *tr, double baseline) {
    int rc = tr->log.nrows ? write_loss_and_norm(tr, baseline) : 0;
    if (rc == 0 && tr->pnorm_log.nrows) rc = write_heatmap(tr);
    if (rc == 0 && tr->log.nrows && tr->def->plot_columns) rc = write_columns(tr);
    if (rc == 0 && tr->log.nrows) rc = write_step_size(tr);
    return rc;
}

/* Trailing window of w points: the mean (loss) or the max (gradient norm, so a
 * one-step spike keeps its height). Non-finite values propagate from where they
 * occur, so a divergence is still marked where it happened. */
static void smooth(const double *y, size_t n, size_t w, int use_max, double *out) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) bad = 1;
        if (bad) {
            out[i] = y[i];
            continue;
        }
        /* each window summed afresh: a running sum minus the values leaving it can go
         * below zero when values fall by decades (a KL of 1 then 1e-20), and a negative
         * mean would turn a log axis linear */
        size_t lo = i + 1 >= w ? i + 1 - w : 0;
        double m = y[lo], sum = y[lo];
        for (size_t k = lo + 1; k <= i; k++) m = y[k] > m ? y[k] : m, sum += y[k];
        out[i] = use_max ? m : sum / (double)(i + 1 - lo);
    }
}

/* One panel per model column (ModelDef.plot_columns, compare_columns) over n runs' logs: NaN
 * rows dropped (no value that step), the rest smoothed as the loss curves. */
static int columns_figure(const char *path, const char *title, const MetricsLog *const *logs,
                          const char *const *labels, int n, const char *const *cols,
                          const double *refs, const char *const *ref_labels) {
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
            series[(size_t)c * n + i] = (PlotSeries){.label = labels[i], .x = b[0], .y = b[2], .n = m};
        }
        if (w > 1)
            snprintf(titles[c], sizeof titles[c], "%s (mean of the last %zu logged steps)", cols[c], w);
        else
            snprintf(titles[c], sizeof titles[c], "%s", cols[c]);
        panels[c] = (PlotPanel){.title = titles[c], .xlabel = "step", .ylabel = cols[c],
                                .logy = PLOT_LOGY_AUTO, .series = series + (size_t)c * n,
                                .nseries = n, .hline = refs ? refs[c] : NAN,
                                .hline_label = refs && ref_labels ? ref_labels[c] : NULL,
                                .legend_off = c > 0 && n > 1}; /* the runs named once */
    }
    char err[256];
    int rc = plot_figure(path, title, panels, ncols, 1100, 380 * ncols + 80, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    for (size_t i = 0; i < (size_t)ncols * (size_t)n * 3; i++) free(bufs[i]);
    free(bufs), free(series), free(panels), free(titles);
    return rc;
}

/* What a run's legend entry says: what differs between the compared runs (the gradient
 * clip, the model's own clipping, spike recovery, the seed), else the run's name. */
static void run_legend(const RunResult *runs, int n, int i, char *buf, size_t len) {
    int clip = 0, own = 0, rec = 0, seed = 0;
    for (int j = 1; j < n; j++) {
        clip |= strcmp(runs[j].clip_desc, runs[0].clip_desc) != 0;
        own |= strcmp(runs[j].own, runs[0].own) != 0;
        rec |= runs[j].recovery != runs[0].recovery;
        seed |= runs[j].seed != runs[0].seed;
    }
    const RunResult *r = &runs[i];
    buf[0] = '\0';
    size_t k = 0;
#define PUT(...) (k += (size_t)snprintf(buf + k, k < len ? len - k : 0, __VA_ARGS__), k = k < len ? k : len)
    if (clip && own && !strcmp(r->clip_desc, "none") && r->own[0]) {
        /* the model's own constraint names the run (WGAN: the gradient penalty) */
    } else if (clip) {
        if (!strcmp(r->clip_desc, "none"))
            PUT("no clipping");
        else if (!strncmp(r->clip_desc, "global", 6) || !strncmp(r->clip_desc, "per-tensor", 10))
            PUT("clip at %s", r->clip_desc);
        else if (!strncmp(r->clip_desc, "weight clamp", 12))
            PUT("%s", r->clip_desc);
        else
            PUT("clip: %s", r->clip_desc);
    }
    if (own && r->own[0]) PUT("%s%s", k ? "; " : "", r->own);
    if (rec) PUT("%sspike recovery %s", k ? "; " : "", r->recovery ? "on" : "off");
    if (seed) PUT("%sseed %ld", k ? ", " : "", r->seed);
    if (!k) PUT("%s", r->name);
#undef PUT
}

/* "<model and task>: <legend 1> vs <legend 2>, seed S" (the legends joined when they fit;
 * else how many runs and what differs). */
static void compare_title(const RunResult *runs, int n, char *const *legends, char *buf, size_t len) {
    int same_title = 1, same_seed = 1;
    for (int j = 1; j < n; j++) {
        same_title &= !strcmp(runs[j].title, runs[0].title);
        same_seed &= runs[j].seed == runs[0].seed;
    }
    char what[400] = "";
    size_t k = 0;
    for (int i = 0; i < n && k < sizeof what; i++)
        k += (size_t)snprintf(what + k, sizeof what - k, "%s%s", i ? " vs " : "", legends[i]);
    if (k > 90 || n > 4) {
        int clip = 0;
        for (int j = 1; j < n; j++) clip |= strcmp(runs[j].clip_desc, runs[0].clip_desc) != 0;
        snprintf(what, sizeof what, "%d runs%s", n, clip ? ", gradient clipping compared" : "");
    }
    char seeds[32] = "";
    if (same_seed) snprintf(seeds, sizeof seeds, ", seed %ld", runs[0].seed);
    int w = snprintf(buf, len, "%s: %s%s", same_title ? runs[0].title : "Runs", what, seeds);
    if (w >= (int)len && len > 4) memcpy(buf + len - 4, "...", 4); /* a cut title says so */
}

/* A comparison's step-size figure, beside it: <path without .png>_step_size.png. */
static int compare_step_size(const char *path, const RunResult *runs, const char *const *legends,
                             int n) {
    size_t pl = strlen(path);
    char *sp = xmalloc(pl + 32), st[640];
    snprintf(sp, pl + 32, "%.*s_step_size.png",
             (int)(pl > 4 && !strcmp(path + pl - 4, ".png") ? pl - 4 : pl), path);
    snprintf(st, sizeof st, "Clipping as an adaptive step size (Zhang et al. 2020): %s",
             runs[0].title);
    const MetricsLog **logs = xcalloc((size_t)n, sizeof *logs);
    for (int i = 0; i < n; i++) logs[i] = &runs[i].log;
    int rc = run_plots_step_size(sp, st, logs, legends, n);
    free(logs), free(sp);
    return rc;
}

/* Three or more runs: one panel per run, its smoothed training loss in colour (its
 * validation loss as points) over the first run's in grey (the reference every panel
 * shares), the trivial predictor dashed. Up to four runs: one column each, with a second
 * row of its gradient norms (pre-clip solid, post-clip dashed, the threshold in black);
 * more: the loss alone, two columns. Then the step-size figure beside it. */
static int small_multiples(const RunResult *runs, int n, const char *const *legends,
                           const char *title, const char *path) {
    size_t longest = 0;
    for (int i = 0; i < n; i++) longest = runs[i].log.nrows > longest ? runs[i].log.nrows : longest;
    size_t w = longest > 600 ? longest / 200 : 1;
    int norms = n <= 4;
    double **b = xcalloc(8 * (size_t)n, sizeof *b);
    PlotSeries *ser = xcalloc(8 * (size_t)n, sizeof *ser);
    PlotPanel *pan = xcalloc(2 * (size_t)n, sizeof *pan);
    size_t *nv = xcalloc((size_t)n, sizeof *nv);
    char ref[300], ylab[64], nlab[64];
    snprintf(ref, sizeof ref, "%s (reference)", legends[0]);
    snprintf(ylab, sizeof ylab, w > 1 ? "loss (mean of %zu steps)" : "loss", w);
    snprintf(nlab, sizeof nlab, w > 1 ? "norm (max of %zu steps)" : "norm", w);
    for (int i = 0; i < n; i++) {
        const MetricsLog *l = &runs[i].log;
        double *raw = xmalloc((l->nrows + 1) * sizeof *raw), **v = b + 8 * i;
        for (int k = 0; k < 8; k++) v[k] = xmalloc((l->nrows + 1) * sizeof(double));
        metrics_column(l, 0, v[0]);
        metrics_column(l, metrics_col(l, "loss"), raw);
        smooth(raw, l->nrows, w, 0, v[1]);
        metrics_column(l, metrics_col(l, "grad_norm"), raw);
        smooth(raw, l->nrows, w, 1, v[2]);
        metrics_column(l, metrics_col(l, "grad_norm_clipped"), raw);
        smooth(raw, l->nrows, w, 1, v[3]);
        int tc = metrics_col(l, "clip_threshold"), vc = metrics_col(l, "val_loss");
        if (tc >= 0) metrics_column(l, tc, v[4]);
        else for (size_t r = 0; r < l->nrows; r++) v[4][r] = NAN;
        for (size_t r = 0; vc >= 0 && r < l->nrows; r++) {
            double val = l->rows[r * (size_t)l->ncols + vc];
            if (!isnan(val)) v[5][nv[i]] = v[0][r], v[6][nv[i]++] = val;
        }
        free(raw);
    }
    for (int i = 0; i < n; i++) {
        PlotSeries *s = ser + 8 * i;
        double **v = b + 8 * i;
        size_t m = runs[i].log.nrows;
        int ns = 0, clipped = strcmp(runs[i].clip_desc, "none") != 0, has_th = 0;
        if (i > 0)
            s[ns++] = (PlotSeries){.label = ref, .x = b[0], .y = b[1], .n = runs[0].log.nrows,
                                   .faint = 1};
        s[ns++] = (PlotSeries){.label = "training loss", .x = v[0], .y = v[1], .n = m,
                               .color = i + 1};
        if (nv[i])
            s[ns++] = (PlotSeries){.label = "validation loss", .x = v[5], .y = v[6], .n = nv[i],
                                   .style = PLOT_DOTS, .color = i + 1};
        pan[i] = (PlotPanel){.title = legends[i], .xlabel = "step", .ylabel = ylab,
                             .logy = PLOT_LOGY_ON, .series = s, .nseries = ns,
                             .hline = runs[0].baseline, .hline_label = "trivial predictor"};
        if (!norms) continue;
        PlotSeries *g = s + ns;
        int ng = 0;
        for (size_t r = 0; r < m; r++) has_th |= isfinite(v[4][r]);
        g[ng++] = (PlotSeries){.label = "pre-clip", .x = v[0], .y = v[2], .n = m, .color = i + 1};
        if (clipped)
            g[ng++] = (PlotSeries){.label = "post-clip", .x = v[0], .y = v[3], .n = m,
                                   .color = i + 1, .dash = 1};
        if (has_th)
            g[ng++] = (PlotSeries){.label = "clip threshold", .x = v[0], .y = v[4], .n = m,
                                   .color = 7};
        pan[n + i] = (PlotPanel){.title = "global gradient L2 norm", .xlabel = "step",
                                 .ylabel = nlab, .logy = PLOT_LOGY_AUTO, .series = g,
                                 .nseries = ng, .hline = NAN};
    }
    /* one legend per row: on the panel with the most entries */
    for (int row = 0; row < (norms ? 2 : 1); row++) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (pan[row * n + i].nseries > pan[row * n + best].nseries) best = i;
        for (int i = 0; i < n; i++) pan[row * n + i].legend_off = i != best;
    }
    char err[256];
    int rows = norms ? 2 : (n + 1) / 2, cols = norms ? n : 2;
    int rc = plot_figure_grid(path, title, pan, norms ? 2 * n : n, cols, norms ? 1500 : 1300,
                              44 + (norms ? 400 : 320) * rows, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    if (rc == 0) {
        rc = compare_step_size(path, runs, legends, n);
    }
    for (int i = 0; i < 8 * n; i++) free(b[i]);
    free(b), free(ser), free(pan), free(nv);
    return rc;
}

/* Runs that differ only by their seed (same config name, model and task, clip, own
 * clipping, recovery) form a group; group[i] is the group of run i, numbered in order of first appearance.
 * Returns how many groups. */
static int seed_groups(const RunResult *runs, int n, int *group) {
    int ng = 0;
    for (int i = 0; i < n; i++) {
        group[i] = -1;
        for (int j = 0; j < i && group[i] < 0; j++)
            if (!strcmp(runs[i].name, runs[j].name) && !strcmp(runs[i].title, runs[j].title) &&
                !strcmp(runs[i].clip_desc, runs[j].clip_desc) &&
                !strcmp(runs[i].own, runs[j].own) && runs[i].recovery == runs[j].recovery &&
                runs[i].seed != runs[j].seed)
                group[i] = group[j];
        if (group[i] < 0) group[i] = ng++;
    }
    return ng;
}

int trainer_compare_has_seeds(const RunResult *runs, int n) {
    int *group = xcalloc((size_t)n, sizeof *group), ng = seed_groups(runs, n, group);
    free(group);
    return ng < n;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The reference line of model column COL in RunResult R (ModelDef.plot_column_refs,
 * matched by name, so comparison columns need not be the run's own): NaN when none. */
static double column_ref(const RunResult *r, const char *col, const char **label) {
    *label = NULL;
    if (!r->plot_columns || !r->plot_column_refs) return NAN;
    for (int i = 0; r->plot_columns[i]; i++)
        if (!strcmp(r->plot_columns[i], col)) {
            *label = r->plot_column_ref_labels ? r->plot_column_ref_labels[i] : NULL;
            return r->plot_column_refs[i];
        }
    return NAN;
}

/* Several seeds of each configuration: per column (the model's compare_columns, else the
 * loss and the pre-clip norm), each group's median over its seeds with the min-max band.
 * Each seed's curve is smoothed as in the other figures (the norm by its running max),
 * then read on a common grid of steps (its last value at or before each grid step); a
 * seed that went non-finite counts as +inf from there, so the band reaches the top. */
static int seed_figure(const RunResult *runs, int n, const int *group, int ng,
                       const char *const *legends, const char *title, const char *path) {
    static const char *const base[] = {"loss", "grad_norm", NULL};
    const char *const *cols = runs[0].compare_columns ? runs[0].compare_columns : base;
    int nc = 0;
    while (cols[nc]) nc++;
    enum { G = 300 };
    double xmax = 0;
    for (int i = 0; i < n; i++)
        if (runs[i].log.nrows) xmax = fmax(xmax, runs[i].log.rows[(runs[i].log.nrows - 1) * (size_t)runs[i].log.ncols]);
    double *grid = xmalloc(G * sizeof *grid), *vals = xmalloc((size_t)n * sizeof *vals);
    for (int k = 0; k < G; k++) grid[k] = round(xmax * k / (G - 1.0)); /* whole steps: markers name them */
    PlotPanel *pan = xcalloc((size_t)nc, sizeof *pan);
    PlotSeries *ser = xcalloc((size_t)nc * (size_t)ng, sizeof *ser);
    double **bufs = xcalloc((size_t)nc * (size_t)ng * 3, sizeof *bufs);
    char (*labels)[300] = xcalloc((size_t)ng, sizeof *labels), (*titles)[160] = xcalloc((size_t)nc, sizeof *titles);
    int *count = xcalloc((size_t)ng, sizeof *count), *first = xcalloc((size_t)ng, sizeof *first);
    for (int i = n - 1; i >= 0; i--) count[group[i]]++, first[group[i]] = i;
    double **cur = xcalloc((size_t)n, sizeof *cur); /* each run's column, smoothed, on the grid */
    for (int i = 0; i < n; i++) cur[i] = xmalloc(G * sizeof(double));
    size_t longest = 0;
    for (int i = 0; i < n; i++) longest = runs[i].log.nrows > longest ? runs[i].log.nrows : longest;
    size_t w = longest > 600 ? longest / 200 : 1;
    for (int c = 0; c < nc; c++) {
        int use_max = !strcmp(cols[c], "grad_norm");
        for (int i = 0; i < n; i++) {
            const MetricsLog *l = &runs[i].log;
            int col = metrics_col(l, cols[c]);
            double *x = xmalloc((l->nrows + 1) * sizeof *x), *y = xmalloc((l->nrows + 1) * sizeof *y);
            double *sm = xmalloc((l->nrows + 1) * sizeof *sm);
            size_t m = 0;
            for (size_t r = 0; col >= 0 && r < l->nrows; r++) {
                double v = l->rows[r * (size_t)l->ncols + col];
                if (isnan(v) && strcmp(cols[c], "loss") && strcmp(cols[c], "grad_norm")) continue;
                x[m] = l->rows[r * (size_t)l->ncols], y[m++] = v;
            }
            smooth(y, m, w, use_max, sm);
            size_t r = 0;
            int bad = 0;
            for (int k = 0; k < G; k++) {
                while (r < m && x[r] <= grid[k]) bad |= !isfinite(sm[r]), r++;
                cur[i][k] = bad ? INFINITY : r ? sm[r - 1] : NAN;
            }
            free(x), free(y), free(sm);
        }
        for (int g = 0; g < ng; g++) {
            double **b = bufs + 3 * ((size_t)c * ng + g);
            for (int k = 0; k < 3; k++) b[k] = xmalloc(G * sizeof(double));
            for (int k = 0; k < G; k++) {
                int m = 0;
                for (int i = 0; i < n; i++)
                    if (group[i] == g && !isnan(cur[i][k])) vals[m++] = cur[i][k];
                qsort(vals, (size_t)m, sizeof *vals, cmp_dbl);
                b[0][k] = m ? (m % 2 ? vals[m / 2] : 0.5 * (vals[m / 2 - 1] + vals[m / 2])) : NAN;
                b[1][k] = m ? vals[0] : NAN;
                b[2][k] = m ? fmin(vals[m - 1], 1e300) : NAN;
                if (isinf(b[0][k])) b[0][k] = NAN; /* the median seed diverged: no line */
            }
            snprintf(labels[g], sizeof labels[g], "%s: median of %d seed%s, min-max band",
                     legends[first[g]], count[g], count[g] > 1 ? "s" : "");
            ser[(size_t)c * ng + g] = (PlotSeries){.label = labels[g], .x = grid, .y = b[0], .n = G,
                                                   .lo = b[1], .hi = b[2], .color = g + 1};
        }
        const char *const *ct = runs[0].compare_columns && runs[0].def ? runs[0].def->compare_column_titles
                                                                       : NULL;
        const char *what = ct && ct[c] ? ct[c] : !strcmp(cols[c], "grad_norm") ? "pre-clip global gradient L2 norm"
                                                                               : cols[c];
        if (w > 1)
            snprintf(titles[c], sizeof titles[c], "%s (%s of the last %zu logged steps)", what,
                     use_max ? "max" : "mean", w);
        else
            snprintf(titles[c], sizeof titles[c], "%s", what);
        const char *ref_label;
        double ref = column_ref(&runs[0], cols[c], &ref_label);
        int trivial = c == 0 && !runs[0].compare_columns; /* the loss panel */
        pan[c] = (PlotPanel){.title = titles[c], .xlabel = "step", .ylabel = cols[c],
                             .logy = PLOT_LOGY_AUTO, .series = ser + (size_t)c * ng, .nseries = ng,
                             .hline = trivial ? runs[0].baseline : ref,
                             .hline_label = trivial ? "trivial predictor" : ref_label,
                             .legend_off = c > 0};
    }
    char err[256];
    int rc = plot_figure(path, title, pan, nc, 1100, 80 + 380 * nc, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    for (int i = 0; i < n; i++) free(cur[i]);
    for (size_t i = 0; i < (size_t)nc * ng * 3; i++) free(bufs[i]);
    free(cur), free(bufs), free(ser), free(pan), free(labels), free(titles), free(count), free(first);
    free(grid), free(vals);
    return rc;
}

int trainer_compare_grad_hist(const RunResult *runs, int n, const char *path) {
    GradHist *h = xcalloc((size_t)n, sizeof *h);
    int rc = 0, all = n > 1;
    for (int i = 0; i < n && all; i++) all = grad_hist_read(&h[i], runs[i].out_dir) == 0;
    if (all) {
        size_t pl = strlen(path);
        char *hp = xmalloc(pl + 32), ht[640], err[256], **legends = xcalloc((size_t)n, sizeof *legends);
        for (int i = 0; i < n; i++) {
            legends[i] = xmalloc(256);
            run_legend(runs, n, i, legends[i], 256);
        }
        snprintf(hp, pl + 32, "%.*s_grad_hist.png",
                 (int)(pl > 4 && !strcmp(path + pl - 4, ".png") ? pl - 4 : pl), path);
        snprintf(ht, sizeof ht, "%s: step %ld's activation gradients against fp16's range",
                 runs[0].title, h[0].step);
        rc = grad_hist_compare(hp, ht, h, (const char *const *)legends, n, err, sizeof err);
        if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", hp, err);
        for (int i = 0; i < n; i++) free(legends[i]);
        free(hp), free(legends);
    }
    free(h);
    return rc;
}

int trainer_compare_plot(const RunResult *runs, int n, const char *path) {
    char **legends = xcalloc((size_t)n, sizeof *legends), title[512];
    for (int i = 0; i < n; i++) {
        legends[i] = xmalloc(256);
        run_legend(runs, n, i, legends[i], 256);
    }
    compare_title(runs, n, legends, title, sizeof title);
    int *group = xcalloc((size_t)n, sizeof *group), ng = seed_groups(runs, n, group);
    if (ng < n) { /* several seeds of a configuration: medians and bands */
        char **gl = xcalloc((size_t)n, sizeof *gl), seeds[200] = "";
        int k = 0;
        long lo = runs[0].seed, hi = runs[0].seed;
        for (int i = 0; i < n; i++) {
            gl[i] = xmalloc(256);
            run_legend(runs, n, i, gl[i], 256);
            char *sp = strstr(gl[i], ", seed "); /* the legend without its seed */
            if (sp) *sp = '\0';
            if (!strncmp(gl[i], "seed ", 5)) snprintf(gl[i], 256, "%s", runs[i].name);
            lo = runs[i].seed < lo ? runs[i].seed : lo, hi = runs[i].seed > hi ? runs[i].seed : hi;
        }
        for (int i = 0; i < n; i++) /* two configurations with one legend: name each by its config */
            for (int j = 0; j < n; j++)
                if (group[i] != group[j] && !strcmp(gl[i], gl[j])) {
                    for (int m = 0; m < n; m++) {
                        size_t len = strlen(gl[m]);
                        if (!strstr(gl[m], runs[m].name)) snprintf(gl[m] + len, 256 - len, " (%s)", runs[m].name);
                    }
                    i = j = n;
                }
        k = snprintf(seeds, sizeof seeds, "seeds %ld-%ld", lo, hi);
        (void)k;
        char gt[700], what[400] = "";
        size_t m = 0;
        for (int g = 0, i; g < ng && m < sizeof what; g++) {
            for (i = 0; group[i] != g; i++) continue;
            m += (size_t)snprintf(what + m, sizeof what - m, "%s%s", g ? " vs " : "", gl[i]);
        }
        if (strlen(runs[0].title) + strlen(what) > 90) /* too long for one line: the legend names them */
            snprintf(gt, sizeof gt, "%s: %d configurations, each over %s", runs[0].title, ng, seeds);
        else
            snprintf(gt, sizeof gt, "%s: %s, %s", runs[0].title, what, seeds);
        int rc = seed_figure(runs, n, group, ng, (const char *const *)gl, gt, path);
        for (int i = 0; i < n; i++) free(gl[i]), free(legends[i]);
        free(gl), free(legends), free(group);
        return rc;
    }
    free(group);
    int same_columns = runs[0].compare_columns != NULL;
    for (int i = 1; i < n; i++) same_columns &= runs[i].compare_columns == runs[0].compare_columns;
    if (same_columns) { /* one model's own curves; mixed models fall back to loss and norm */
        const MetricsLog **logs = xcalloc((size_t)n, sizeof *logs);
        for (int i = 0; i < n; i++) logs[i] = &runs[i].log;
        int nc = 0;
        while (runs[0].compare_columns[nc]) nc++;
        double *crefs = xcalloc((size_t)nc, sizeof *crefs);
        const char **clabels = xcalloc((size_t)nc, sizeof *clabels);
        for (int c = 0; c < nc; c++) crefs[c] = column_ref(&runs[0], runs[0].compare_columns[c], &clabels[c]);
        int rc = columns_figure(path, title, logs, (const char *const *)legends, n,
                                runs[0].compare_columns, crefs, clabels);
        free(crefs), free(clabels);
        free(logs);
        for (int i = 0; i < n; i++) free(legends[i]);
        free(legends);
        return rc;
    }
    if (n >= 3) { /* too many lines for one panel: small multiples */
        int rc = small_multiples(runs, n, (const char *const *)legends, title, path);
        for (int i = 0; i < n; i++) free(legends[i]);
        free(legends);
        return rc;
    }
    /* loss: one line per run and its rollbacks; norm: pre-clip (solid), post-clip (dashed)
     * and the threshold (a line when every clipped run has the same constant one, else each
     * run's own, dashed, instead of its post-clip norm) */
    PlotSeries *ls = xcalloc(3 * (size_t)n, sizeof *ls), *gs = xcalloc(2 * (size_t)n, sizeof *gs);
    double **bufs = xcalloc((size_t)n * 10, sizeof *bufs);
    char **extra = xcalloc(6 * (size_t)n, sizeof *extra);
    int nls = n, ngs = 0, nextra = 0;
    double baseline = NAN, common_th = NAN;
    int th_common = 1;
    size_t longest = 0;
    for (int i = 0; i < n; i++) longest = runs[i].log.nrows > longest ? runs[i].log.nrows : longest;
    /* one window for all runs: ~200 windows across the longest run */
    size_t w = longest > 600 ? longest / 200 : 1;
    for (int i = 0; i < n; i++) { /* is there one constant threshold? */
        const MetricsLog *l = &runs[i].log;
        int c = metrics_col(l, "clip_threshold");
        for (size_t r = 0; c >= 0 && r < l->nrows; r++) {
            double t = l->rows[r * (size_t)l->ncols + c];
            if (!isfinite(t)) continue;
            if (isnan(common_th)) common_th = t;
            th_common &= t == common_th;
        }
    }
    for (int i = 0; i < n; i++) {
        const MetricsLog *l = &runs[i].log;
        double **b = bufs + 10 * i;
        for (int k = 0; k < 5; k++) b[k] = xmalloc((l->nrows + 1) * sizeof(double));
        metrics_column(l, 0, b[0]);
        metrics_column(l, metrics_col(l, "loss"), b[1]);
        metrics_column(l, metrics_col(l, "grad_norm"), b[2]);
        smooth(b[1], l->nrows, w, 0, b[3]);
        smooth(b[2], l->nrows, w, 1, b[4]);
        ls[i] = (PlotSeries){.label = legends[i], .x = b[0], .y = b[3], .n = l->nrows};
        gs[ngs++] = (PlotSeries){.label = legends[i], .x = b[0], .y = b[4], .n = l->nrows,
                                 .color = i + 1};
        if (isnan(baseline)) baseline = runs[i].baseline;
        if (!strcmp(runs[i].clip_desc, "none")) continue;
        char *pre = extra[nextra++] = xmalloc(300);
        snprintf(pre, 300, "%s: pre-clip", legends[i]);
        gs[ngs - 1].label = pre;
        int tc = metrics_col(l, "clip_threshold"), has_th = 0;
        b[7] = xmalloc((l->nrows + 1) * sizeof(double));
        b[8] = xmalloc((l->nrows + 1) * sizeof(double));
        if (tc >= 0) metrics_column(l, tc, b[7]);
        for (size_t r = 0; tc >= 0 && r < l->nrows; r++) has_th |= isfinite(b[7][r]);
        char *lab = extra[nextra++] = xmalloc(300);
        if (has_th && !th_common) {
            snprintf(lab, 300, "%s: threshold", legends[i]);
            gs[ngs++] = (PlotSeries){.label = lab, .x = b[0], .y = b[7], .n = l->nrows,
                                     .color = i + 1, .dash = 1};
        } else {
            metrics_column(l, metrics_col(l, "grad_norm_clipped"), b[7]);
            smooth(b[7], l->nrows, w, 1, b[8]);
            snprintf(lab, 300, "%s: post-clip", legends[i]);
            gs[ngs++] = (PlotSeries){.label = lab, .x = b[0], .y = b[8], .n = l->nrows,
                                     .color = i + 1, .dash = 1};
        }
    }
    /* each run's rollbacks: the spike as a point, a dashed line at its loss back to the
     * step whose checkpoint was restored (a marker there), and a line at each restored step */
    size_t nev = 1;
    for (int i = 0; i < n; i++) nev += (size_t)runs[i].nevents;
    double *rv = xcalloc(nev, sizeof *rv);
    int nrv = 0;
    long skipped = -1;
    for (int i = 0; i < n; i++) {
        const RunResult *r = &runs[i];
        if (!r->nevents) continue;
        double **b = bufs + 10 * i;
        rollback_points(r->events, r->nevents, &b[5], &b[6]);
        char *label = extra[nextra++] = xmalloc(300);
        snprintf(label, 300, n > 2 ? "%s: loss spike" : "loss spike%.0s", legends[i]);
        ls[nls++] = (PlotSeries){.label = label, .x = b[5], .y = b[6], .n = (size_t)r->nevents,
                                 .style = PLOT_DOTS, .marker = PLOT_MARK_DIAMOND, .color = i + 1};
        /* the arrows: (spike, loss) -> (restored, loss), one series of NaN-separated pairs */
        b[9] = xmalloc(3 * (size_t)r->nevents * sizeof(double));
        double *ay = xmalloc(3 * (size_t)r->nevents * sizeof(double));
        extra[nextra++] = (char *)ay;
        for (int e = 0; e < r->nevents; e++) {
            b[9][3 * e] = (double)r->events[e].spike_step, ay[3 * e] = r->events[e].loss;
            b[9][3 * e + 1] = (double)r->events[e].restored_step, ay[3 * e + 1] = r->events[e].loss;
            b[9][3 * e + 2] = NAN, ay[3 * e + 2] = NAN;
            rv[nrv++] = (double)r->events[e].restored_step;
            skipped = r->events[e].skipped;
        }
        char *al = extra[nextra++] = xmalloc(300);
        snprintf(al, 300, n > 2 ? "%s: back to the restored step" : "back to the restored step%.0s",
                 legends[i]);
        ls[nls++] = (PlotSeries){.label = al, .x = b[9], .y = ay, .n = 3 * (size_t)r->nevents,
                                 .style = PLOT_LINE_MARKERS, .marker = PLOT_MARK_SQUARE,
                                 .color = i + 1, .dash = 1};
    }
    char rvlab[96];
    snprintf(rvlab, sizeof rvlab, "restored step; %ld batches skipped", skipped);
    char lt[96], gt[128], thl[64];
    if (w > 1) {
        snprintf(lt, sizeof lt, "Training loss (mean of the last %zu logged steps)", w);
        snprintf(gt, sizeof gt, "Global gradient L2 norm (max of the last %zu logged steps)", w);
    } else {
        snprintf(lt, sizeof lt, "Training loss");
        snprintf(gt, sizeof gt, "Global gradient L2 norm");
    }
    snprintf(thl, sizeof thl, "clip threshold %g", common_th);
    PlotPanel panels[2] = {
        {.title = lt, .xlabel = "step", .ylabel = "loss", .logy = PLOT_LOGY_AUTO, .series = ls,
         .nseries = nls, .hline = baseline, .hline_label = "trivial predictor",
         .vlines = nrv ? rv : NULL, .nvlines = nrv, .vline_label = rvlab},
        {.title = gt, .xlabel = "step", .ylabel = "norm",
         .logy = PLOT_LOGY_AUTO, .series = gs, .nseries = ngs,
         .hline = th_common ? common_th : NAN, .hline_label = th_common ? thl : NULL},
    };
    char err[256];
    int rc = plot_figure(path, title, panels, 2, 1100, 900, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    if (rc == 0) { /* beside it: <path without .png>_step_size.png */
        rc = compare_step_size(path, runs, (const char *const *)legends, n);
    }
    for (int i = 0; i < 10 * n; i++) free(bufs[i]);
    for (int i = 0; i < nextra; i++) free(extra[i]);
    for (int i = 0; i < n; i++) free(legends[i]);
    free(bufs), free(ls), free(gs), free(extra), free(legends), free(rv);
    return rc;
}
