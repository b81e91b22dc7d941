/* cnn_plots.c: the DP-SGD figures of several cnn runs (ModelDef.compare_plot),
 * drawn with the plotting module's general kinds; nothing here draws pixels.
 *   <path>:            test accuracy against epochs, labelled with each run's
 *                      epsilon by both conversions (non-private runs: none);
 *                      the median per-example gradient norm beside the clip
 *                      bound C (dashed), log scale (a run with adaptive C shows
 *                      C following the median); epsilon spent over epochs;
 *   <stem>_norms.png:  for runs that wrote dp_norms.csv ([dp] log_norms), the
 *                      per-example norm histograms (of log10 norm: they span
 *                      decades) at four points of training, overlaid, with
 *                      each run's C and the share clipped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "common.h"
#include "plot.h"
#include "train.h"

/* x, y of the rows where y is a number */
static size_t pick(const double *x, const double *y, size_t n, double sy, double *ox, double *oy) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(y[i])) ox[k] = x[i], oy[k++] = y[i] * sy;
    return k;
}

static double last_finite(const double *v, size_t n) {
    for (size_t i = n; i-- > 0;)
        if (isfinite(v[i])) return v[i];
    return NAN;
}

typedef struct {
    double *step, *epoch, *acc, *med, *C, *eps, *eps_old;
    double *ax, *ay, *mx, *my, *cx, *cy, *ex, *ey;
    size_t na, nm, nc, ne;
    char label[CFG_STR_MAX + 128];
    int dp;
} Curves;

/* One run's dp_norms.csv: rows step, C, norm. */
typedef struct {
    long *step;
    double *C, *norm;
    size_t n, cap;
} Norms;

static int read_norms(const char *dir, Norms *nr) {
    char path[CFG_STR_MAX + 32], line[256];
    snprintf(path, sizeof path, "%s/dp_norms.csv", dir);
    FILE *f = fopen(path, "r");
    memset(nr, 0, sizeof *nr);
    if (!f) return -1;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        long s;
        double c, v;
        if (sscanf(line, "%ld,%lf,%lf", &s, &c, &v) != 3) continue;
        if (nr->n == nr->cap) {
            nr->cap = nr->cap ? 2 * nr->cap : 4096;
            nr->step = realloc(nr->step, nr->cap * sizeof *nr->step);
            nr->C = realloc(nr->C, nr->cap * sizeof *nr->C);
            nr->norm = realloc(nr->norm, nr->cap * sizeof *nr->norm);
            if (!nr->step || !nr->C || !nr->norm) die("out of memory reading %s", path);
        }
        nr->step[nr->n] = s, nr->C[nr->n] = c, nr->norm[nr->n++] = v;
    }
    fclose(f);
    return nr->n ? 0 : -1;
}

static void free_norms(Norms *nr) {
    free(nr->step), free(nr->C), free(nr->norm);
}

/* The logged steps of nr, in order; returns how many (into steps[cap]). */
static int norm_steps(const Norms *nr, long *steps, int cap) {
    int k = 0;
    for (size_t i = 0; i < nr->n && k < cap; i++)
        if (k == 0 || steps[k - 1] != nr->step[i]) steps[k++] = nr->step[i];
    return k;
}

static int norms_figure(const RunResult *runs, int n, const char *out, char *err, size_t errlen) {
    Norms *nr = xcalloc((size_t)n, sizeof *nr);
    int have = 0, rc = 0;
    for (int i = 0; i < n; i++) have += read_norms(runs[i].out_dir, &nr[i]) == 0;
    if (!have) {
        free(nr);
        return 1; /* nothing to draw */
    }
    enum { NP = 4 };
    PlotPanel panels[NP];
    PlotHist hists[NP][8];
    double vl[NP][8], *vals[NP][8];
    char titles[NP][512], labels[NP][8][CFG_STR_MAX + 64];
    memset(panels, 0, sizeof panels);
    memset(vals, 0, sizeof vals);
    for (int p = 0; p < NP; p++) {
        int nh = 0, nv = 0;
        size_t tl = 0;
        titles[p][0] = 0;
        for (int i = 0; i < n && nh < 8; i++) {
            if (!nr[i].n) continue;
            long steps[4096];
            int ns = norm_steps(&nr[i], steps, 4096);
            long s = steps[(size_t)p * (ns - 1) / (NP - 1)];
            double C = NAN;
            size_t cnt = 0, clipped = 0;
            vals[p][nh] = xcalloc(nr[i].n, sizeof(double));
            for (size_t k = 0; k < nr[i].n; k++)
                if (nr[i].step[k] == s) {
                    C = nr[i].C[k];
                    /* log10: the norms span five decades (1e-3 to 1e2) */
                    vals[p][nh][cnt++] = log10(nr[i].norm[k]);
                    clipped += nr[i].norm[k] > C;
                }
            snprintf(labels[p][nh], sizeof labels[p][nh], "%s: %.0f%% above C = %.3g", runs[i].name,
                     100.0 * clipped / (cnt ? cnt : 1), C);
            hists[p][nh] = (PlotHist){.label = labels[p][nh], .v = vals[p][nh], .n = cnt};
            vl[p][nv++] = log10(C);
            if (!strstr(titles[p], " ") && tl < sizeof titles[p] - 64) /* one step per panel title */
                tl += (size_t)snprintf(titles[p] + tl, sizeof titles[p] - tl,
                                       "step %ld of training (%s)", s + 1, p == 0 ? "first"
                                       : p == NP - 1 ? "last" : "between");
            nh++;
        }
        panels[p] = (PlotPanel){.title = titles[p],
                                .xlabel = "log10 of the per-example gradient L2 norm",
                                .ylabel = "examples", .hists = hists[p], .nhists = nh, .bins = 40,
                                .vlines = vl[p], .nvlines = nv,
                                .vline_label = "clip bound C (examples right of it are clipped)"};
    }
    rc = plot_figure_grid(out, "Per-example gradient norms as DP-SGD training goes, with the clip "
                          "bound C", panels, NP, 2, 0, 0, err, errlen);
    for (int p = 0; p < NP; p++)
        for (int h = 0; h < 8; h++) free(vals[p][h]);
    for (int i = 0; i < n; i++) free_norms(&nr[i]);
    free(nr);
    return rc;
}

int cnn_compare_plot(const RunResult *runs, const void *const *cfgs, int n, const char *path) {
    (void)cfgs;
    Curves *cv = xcalloc((size_t)n, sizeof *cv);
    PlotSeries *acc = xcalloc((size_t)n, sizeof *acc), *nrm = xcalloc((size_t)2 * n, sizeof *nrm),
               *eps = xcalloc((size_t)n, sizeof *eps);
    int nn = 0, ne = 0;
    for (int i = 0; i < n; i++) {
        const MetricsLog *l = &runs[i].log;
        Curves *c = &cv[i];
        size_t R = l->nrows + 1;
        c->step = metrics_column_or_nan(l, "step");
        c->epoch = metrics_column_or_nan(l, "epoch");
        c->acc = metrics_column_or_nan(l, "val_acc");
        c->med = metrics_column_or_nan(l, "dp_norm_median");
        c->C = metrics_column_or_nan(l, "dp_C");
        c->eps = metrics_column_or_nan(l, "dp_epsilon");
        c->eps_old = metrics_column_or_nan(l, "dp_epsilon_old");
        double *bufs[8];
        for (int b = 0; b < 8; b++) bufs[b] = xcalloc(R, sizeof(double));
        c->ax = bufs[0], c->ay = bufs[1], c->mx = bufs[2], c->my = bufs[3];
        c->cx = bufs[4], c->cy = bufs[5], c->ex = bufs[6], c->ey = bufs[7];
        c->na = pick(c->epoch, c->acc, l->nrows, 100.0, c->ax, c->ay);
        c->nm = pick(c->epoch, c->med, l->nrows, 1.0, c->mx, c->my);
        c->nc = pick(c->epoch, c->C, l->nrows, 1.0, c->cx, c->cy);
        c->ne = pick(c->epoch, c->eps, l->nrows, 1.0, c->ex, c->ey);
        c->dp = metrics_col(l, "dp_epsilon") >= 0;
        double a = last_finite(c->acc, l->nrows) * 100;
        if (c->dp)
            snprintf(c->label, sizeof c->label, "%s: DP, eps %.2f (older conversion %.2f), %.1f%%",
                     runs[i].name, last_finite(c->eps, l->nrows),
                     last_finite(c->eps_old, l->nrows), a);
        else
            snprintf(c->label, sizeof c->label, "%s: non-private, %.1f%%", runs[i].name, a);
        acc[i] = (PlotSeries){.label = c->label, .x = c->ax, .y = c->ay, .n = c->na,
                              .style = PLOT_LINE_MARKERS, .color = i + 1};
        if (c->dp) {
            nrm[nn++] = (PlotSeries){.label = runs[i].name, .x = c->mx, .y = c->my, .n = c->nm,
                                     .color = i + 1};
            nrm[nn++] = (PlotSeries){.label = "its clip bound C", .x = c->cx, .y = c->cy,
                                     .n = c->nc, .color = i + 1, .dash = 1};
            eps[ne++] = (PlotSeries){.label = runs[i].name, .x = c->ex, .y = c->ey, .n = c->ne,
                                     .color = i + 1};
        }
    }
    PlotPanel panels[3] = {
        {.title = "Test accuracy (Fashion-MNIST, 10000 test images)", .xlabel = "epoch",
         .ylabel = "test accuracy (%)", .series = acc, .nseries = n},
        {.title = "Median per-example gradient norm (solid) and the clip bound C (dashed)",
         .xlabel = "epoch", .ylabel = "L2 norm", .logy = PLOT_LOGY_ON, .series = nrm,
         .nseries = nn},
        {.title = "Privacy spent: epsilon at delta 1e-5 (RDP accountant, Balle et al. 2020 "
                  "conversion)", .xlabel = "epoch", .ylabel = "epsilon", .series = eps,
         .nseries = ne},
    };
    char err[512];
    int np = nn ? 3 : 1;
    int rc = plot_figure(path, "DP-SGD on the tanh CNN: accuracy, per-example norms, privacy",
                         panels, np, 0, 0, err, sizeof err);
    if (rc == 0) {
        size_t len = strlen(path);
        int stem = (int)(len > 4 && !strcmp(path + len - 4, ".png") ? len - 4 : len);
        char out[2048];
        snprintf(out, sizeof out, "%.*s_norms.png", stem, path);
        int h = norms_figure(runs, n, out, err, sizeof err);
        if (h == 0) printf("per-example norm histograms: %s\n", out);
        else if (h < 0) rc = -1;
    }
    if (rc != 0) fprintf(stderr, "cliplab: error: %s\n", err);
    for (int i = 0; i < n; i++) {
        Curves *c = &cv[i];
        double *all[] = {c->step, c->epoch, c->acc, c->med, c->C, c->eps, c->eps_old,
                         c->ax,   c->ay,    c->mx,  c->my,  c->cx, c->cy, c->ex, c->ey};
        for (size_t k = 0; k < sizeof all / sizeof *all; k++) free(all[k]);
    }
    free(cv), free(acc), free(nrm), free(eps);
    return rc;
}
