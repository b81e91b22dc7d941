/* dist_plot.c: the comparison figure of data-parallel runs (./train A.ini
 * B.ini under mpirun, make ddp): what the clip's place in the pipeline does
 * to the update. Panels: the training loss; the norm of the update the
 * optimizer received against the norm of the averaged unclipped gradient,
 * one point per step (after the all-reduce: exactly min(norm, threshold)),
 * beside the threshold; and its histogram
 * over the steps where the averaged gradient is above the threshold (clip
 * after the all-reduce: every such update has norm exactly the threshold;
 * each rank clipping first: shorter updates, scattered). From metrics.csv's
 * columns only (grad_norm = norm of the averaged unclipped gradient,
 * grad_norm_clipped = norm of the update). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "plot.h"
#include "train.h"

/* mean of the last w values (NaN skipped) at each point */
static void window_mean(const double *v, size_t n, size_t w, double *out) {
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        size_t k = 0;
        for (size_t j = i + 1 > w ? i + 1 - w : 0; j <= i; j++)
            if (isfinite(v[j])) s += v[j], k++;
        out[i] = k ? s / (double)k : NAN;
    }
}

int dist_compare_plot(const RunResult *runs, int n, const char *path) {
    PlotSeries *ls = xcalloc((size_t)n, sizeof *ls), *us = xcalloc((size_t)n, sizeof *us);
    PlotHist *hs = xcalloc((size_t)n, sizeof *hs);
    double **bufs = xcalloc((size_t)n * 6, sizeof *bufs);
    double threshold = NAN;
    size_t longest = 0;
    for (int i = 0; i < n; i++) longest = runs[i].log.nrows > longest ? runs[i].log.nrows : longest;
    size_t w = longest > 600 ? longest / 200 : 1;
    for (int i = 0; i < n; i++) {
        const MetricsLog *l = &runs[i].log;
        size_t m = l->nrows;
        double **b = bufs + 6 * i;
        for (int k = 0; k < 6; k++) b[k] = xmalloc((m + 1) * sizeof(double));
        metrics_column(l, 0, b[0]);
        metrics_column(l, metrics_col(l, "loss"), b[1]);
        metrics_column(l, metrics_col(l, "grad_norm"), b[2]);
        metrics_column(l, metrics_col(l, "grad_norm_clipped"), b[3]);
        if (isnan(threshold) && m) threshold = l->rows[metrics_col(l, "clip_threshold")];
        window_mean(b[1], m, w, b[4]);
        size_t nh = 0; /* updates of the steps whose averaged gradient is above the threshold */
        for (size_t r = 0; r < m; r++)
            if (b[2][r] > threshold && isfinite(b[3][r])) b[5][nh++] = b[3][r];
        ls[i] = (PlotSeries){.label = runs[i].label, .x = b[0], .y = b[4], .n = m};
        us[i] = (PlotSeries){.label = runs[i].label, .x = b[2], .y = b[3], .n = m, .style = PLOT_DOTS};
        hs[i] = (PlotHist){.label = runs[i].label, .v = b[5], .n = nh};
    }
    char lt[96];
    snprintf(lt, sizeof lt, w > 1 ? "Training loss (mean of the last %zu steps)" : "Training loss%.0zu", w);
    PlotPanel panels[3] = {
        {.title = lt, .xlabel = "step", .ylabel = "loss", .logy = PLOT_LOGY_AUTO, .series = ls,
         .nseries = n},
        {.title = "Each step: the update's norm against the averaged (unclipped) gradient's",
         .xlabel = "L2 norm of the gradient averaged over the ranks, before any clip",
         .ylabel = "L2 norm of the update", .logx = 1, .logy = PLOT_LOGY_ON, .series = us, .nseries = n,
         .hline = threshold, .hline_label = "clip threshold"},
        {.title = "Update norms on the steps whose averaged gradient is above the threshold",
         .xlabel = "L2 norm of the update", .ylabel = "steps", .hists = hs, .nhists = n,
         .hist_lo = 0.0, .hist_hi = isfinite(threshold) ? 1.05 * threshold : 0.0, .bins = 42},
    };
    char err[256];
    int rc = plot_figure(path, "Clip after the all-reduce or before it (data-parallel ranks)", panels, 3,
                         0, 0, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: %s\n", err);
    for (int i = 0; i < n * 6; i++) free(bufs[i]);
    free(bufs), free(ls), free(us), free(hs);
    return rc;
}
