/* run_plots.c: the figures of a run (loss.png, grad_norm.png,
 * grad_norm_heatmap.png) and the comparison of several runs, drawn from the
 * metrics logs through the plotting module. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "plot.h"
#include "train.h"

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
    char path[CFG_STR_MAX + 32], err[256], title[CFG_STR_MAX + 128], desc[96];
    clipper_describe_run(&tr->groups[0].clip, desc, sizeof desc);
    snprintf(title, sizeof title, "%s  (clip: %s)", tr->run.name, desc);
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
        int has_th = 0;
        for (size_t r = 0; r < n; r++) has_th |= isfinite(th[r]);
        PlotSeries gs[3] = {{.label = "pre-clip norm", .x = x, .y = gn, .n = n},
                            {.label = "post-clip norm", .x = x, .y = gc, .n = n},
                            {.label = "clip threshold", .x = x, .y = th, .n = n}};
        if (!has_th) gs[2] = gs[1]; /* value/norm/agc have no global threshold */
        /* the dynamic loss scale: a line at each overflow (skipped step), and
         * the scale's trajectory in a second panel */
        int sc = metrics_col(l, "loss_scale"), sk = metrics_col(l, "overflow_skip");
        double *scale = xmalloc(n * sizeof *scale), *skips = xmalloc(n * sizeof *skips);
        int nskip = 0;
        for (size_t r = 0; sk >= 0 && r < n; r++) {
            scale[r] = l->rows[r * (size_t)l->ncols + sc];
            if (l->rows[r * (size_t)l->ncols + sk] != 0) skips[nskip++] = x[r];
        }
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
        free(th), free(scale), free(skips);
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
                          const char *const *labels, int n, const char *const *cols);

/* curves.png: the model's plot_columns, one panel each */
static int write_columns(const Trainer *tr) {
    char path[CFG_STR_MAX + 32], desc[96], title[CFG_STR_MAX + 224]; /* name, desc, own */
    const MetricsLog *lp = &tr->log;
    const char *label = tr->run.name;
    snprintf(path, sizeof path, "%s/curves.png", tr->run.out_dir);
    clipper_describe_run(&tr->groups[0].clip, desc, sizeof desc);
    char own[96] = "";
    if (tr->def->describe) {
        own[0] = ';', own[1] = ' ';
        tr->def->describe(tr->model, own + 2, sizeof own - 2);
    }
    snprintf(title, sizeof title, "%s  (gradient clip: %s%s)", tr->run.name, desc, own);
    return columns_figure(path, title, &lp, &label, 1, tr->def->plot_columns);
}

int run_plots_write(const Trainer *tr, double baseline) {
    int rc = tr->log.nrows ? write_loss_and_norm(tr, baseline) : 0;
    if (rc == 0 && tr->pnorm_log.nrows) rc = write_heatmap(tr);
    if (rc == 0 && tr->log.nrows && tr->def->plot_columns) rc = write_columns(tr);
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
            series[(size_t)c * n + i] = (PlotSeries){.label = labels[i], .x = b[0], .y = b[2], .n = m};
        }
        if (w > 1)
            snprintf(titles[c], sizeof titles[c], "%s (mean of the last %zu logged steps)", cols[c], w);
        else
            snprintf(titles[c], sizeof titles[c], "%s", cols[c]);
        panels[c] = (PlotPanel){.title = titles[c], .xlabel = "step", .ylabel = cols[c],
                                .logy = PLOT_LOGY_AUTO, .series = series + (size_t)c * n,
                                .nseries = n, .hline = NAN};
    }
    char err[256];
    int rc = plot_figure(path, title, panels, ncols, 1100, 380 * ncols + 80, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    for (size_t i = 0; i < (size_t)ncols * (size_t)n * 3; i++) free(bufs[i]);
    free(bufs), free(series), free(panels), free(titles);
    return rc;
}

int trainer_compare_plot(const RunResult *runs, int n, const char *path) {
    int same_columns = runs[0].plot_columns != NULL;
    for (int i = 1; i < n; i++) same_columns &= runs[i].plot_columns == runs[0].plot_columns;
    if (same_columns) { /* one model's own curves; mixed models fall back to loss and norm */
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
        metrics_column(l, 0, b[0]);
        metrics_column(l, metrics_col(l, "loss"), b[1]);
        metrics_column(l, metrics_col(l, "grad_norm"), b[2]);
        smooth(b[1], l->nrows, w, 0, b[3]);
        smooth(b[2], l->nrows, w, 1, b[4]);
        ls[i] = (PlotSeries){.label = runs[i].label, .x = b[0], .y = b[3], .n = l->nrows};
        gs[i] = (PlotSeries){.label = runs[i].label, .x = b[0], .y = b[4], .n = l->nrows};
        if (isnan(baseline)) baseline = runs[i].baseline;
    }
    for (int i = 0; i < n; i++) { /* each run's rollbacks: its spikes as points */
        const RunResult *r = &runs[i];
        if (!r->nevents) continue;
        double **b = bufs + 7 * i;
        rollback_points(r->events, r->nevents, &b[5], &b[6]);
        char *label = xmalloc(CFG_STR_MAX + 32);
        snprintf(label, CFG_STR_MAX + 32, "%s: spike, rolled back", r->name);
        ls[nls++] = (PlotSeries){.label = label, .x = b[5], .y = b[6], .n = (size_t)r->nevents,
                                 .style = 1};
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
        {.title = lt, .xlabel = "step", .ylabel = "loss", .logy = PLOT_LOGY_AUTO, .series = ls,
         .nseries = nls, .hline = baseline, .hline_label = "trivial predictor"},
        {.title = gt, .xlabel = "step", .ylabel = "norm", .logy = PLOT_LOGY_AUTO, .series = gs,
         .nseries = n},
    };
    char err[256];
    int rc = plot_figure(path, title, panels, 2, 1100, 900, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    for (int i = 0; i < 7 * n; i++) free(bufs[i]);
    for (int i = n; i < nls; i++) free((char *)ls[i].label);
    free(bufs), free(ls), free(gs);
    return rc;
}
