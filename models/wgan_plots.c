/* wgan_plots.c: the WGAN's figures, drawn with the plotting module's general
 * kinds (plot.h); nothing here draws pixels.
 *   wgan_run_plot:      <out_dir>/wgan.png for one run: the Wasserstein
 *                       estimate, the critic's input-gradient norm against the
 *                       1-Lipschitz line, and the modes covered, over steps;
 *   wgan_compare_plot:  several runs (./train A.ini B.ini ...): the same three
 *                       panels overlaid, or, when every run logged per-layer
 *                       gradients (layer_grads = true), WGAN-GP's Figure 1:
 *                       (a) the critic loss's gradient norm w.r.t. each
 *                       layer's activations, log scale, one line per run;
 *                       (b) each run's critic weight histogram (as a line of
 *                       the share of values per bin; one panel per run, since
 *                       the clip bounds differ by 100x).
 * Inputs are the runs' in-memory metrics and the CSVs wgan.c wrote. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "plot.h"
#include "train.h"
#include "wgan.h"

/* A numeric column of a run's metrics, or NULL when absent (malloc'd). */
static double *col_of(const MetricsLog *l, const char *name) {
    int c = metrics_col(l, name);
    if (c < 0) return NULL;
    double *v = xmalloc((l->nrows + 1) * sizeof *v);
    metrics_column(l, c, v);
    return v;
}

/* The three panels over steps for runs[0..n). bufs receives every allocation. */
static int step_panels(const MetricsLog *const *logs, const char *const *labels, int n,
                       PlotPanel *p, PlotSeries *s, double **bufs) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        const MetricsLog *l = logs[i];
        double *x = bufs[k++] = col_of(l, "step");
        double *w = bufs[k++] = col_of(l, "wasserstein");
        double *g = bufs[k++] = col_of(l, "grad_x_norm");
        double *md = bufs[k++] = col_of(l, "modes");
        s[i] = (PlotSeries){labels[i], x, w, l->nrows, 0};
        s[n + i] = (PlotSeries){labels[i], x, g, l->nrows, 0};
        s[2 * n + i] = (PlotSeries){labels[i], x, md, l->nrows, 0};
    }
    p[0] = (PlotPanel){"Critic's Wasserstein estimate E D(real) - E D(fake)", "generator update",
                       "estimate", PLOT_LOGY_AUTO, s, n, NULL, 0, NULL, NAN, NULL};
    p[1] = (PlotPanel){"Critic's input-gradient norm ||grad_x D|| at interpolates (mean)",
                       "generator update", "norm", PLOT_LOGY_AUTO, s + n, n, NULL, 0, NULL, 1.0,
                       "1-Lipschitz"};
    p[2] = (PlotPanel){"Mixture modes covered (a generated point within 3 std of it)",
                       "generator update", "modes", PLOT_LOGY_OFF, s + 2 * n, n, NULL, 0, NULL,
                       NAN, NULL};
    return k;
}

int wgan_run_plot(const MetricsLog *log, const char *name, const char *dir) {
    PlotPanel p[3];
    PlotSeries s[3];
    double *bufs[4];
    const char *label = name;
    int nb = step_panels(&log, &label, 1, p, s, bufs);
    int np = isnan(s[2].y[0]) ? 2 : 3; /* the Swiss roll has no modes */
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/wgan.png", dir);
    int rc = plot_figure(path, name, p, np, 1000, 380 * np, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    return rc;
}

/* ------------------------------------------------------------- Figure 1 */

/* Mean of the last `last` rows of layer_grads.csv: norms[l] for l < *L. */
static int read_layer_grads(const char *dir, double *norms, int *L, int last) {
    char path[600], line[8192];
    snprintf(path, sizeof path, "%s/layer_grads.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    double (*rows)[WGAN_MAX_DEPTH] = NULL;
    size_t n = 0, cap = 0;
    int ncol = -1;
    if (fgets(line, sizeof line, f)) {
        ncol = 0;
        for (char *c = line; *c; c++) ncol += *c == ',';
    }
    while (ncol > 0 && ncol <= WGAN_MAX_DEPTH && fgets(line, sizeof line, f)) {
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            rows = realloc(rows, cap * sizeof *rows);
            if (!rows) die("out of memory reading %s", path);
        }
        char *c = strchr(line, ',');
        for (int l = 0; l < ncol && c; l++) {
            rows[n][l] = strtod(c + 1, &c);
            if (*c != ',' && l + 1 < ncol) c = NULL;
        }
        n += c != NULL;
    }
    fclose(f);
    if (n == 0) {
        free(rows);
        return -1;
    }
    size_t lo = n > (size_t)last ? n - (size_t)last : 0;
    for (int l = 0; l < ncol; l++) {
        double s = 0.0;
        for (size_t r = lo; r < n; r++) s += rows[r][l];
        norms[l] = s / (double)(n - lo);
    }
    *L = ncol;
    free(rows);
    return 0;
}

/* critic_weights.csv values; *n of them (malloc'd), NULL if unreadable. */
static double *read_weights(const char *dir, size_t *n) {
    char path[600], line[256];
    snprintf(path, sizeof path, "%s/critic_weights.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 4096;
    double *v = xmalloc(cap * sizeof *v);
    *n = 0;
    if (!fgets(line, sizeof line, f)) *n = 0;
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ',');
        if (!c) continue;
        if (*n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            if (!v) die("out of memory reading %s", path);
        }
        v[(*n)++] = strtod(c + 1, NULL);
    }
    fclose(f);
    return v;
}

#define HIST_BINS 61

/* Share of values per bin over [lo, hi] (bin centres in x). */
static void histogram(const double *v, size_t n, double *x, double *y) {
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
    if (!(hi > lo)) hi = lo + 1e-12;
    double w = (hi - lo) / HIST_BINS;
    for (int b = 0; b < HIST_BINS; b++) x[b] = lo + (b + 0.5) * w, y[b] = 0.0;
    for (size_t i = 0; i < n; i++) {
        int b = (int)((v[i] - lo) / w);
        y[b < 0 ? 0 : b >= HIST_BINS ? HIST_BINS - 1 : b] += 1.0 / (double)n;
    }
}

static int figure1(const RunResult *runs, int n, const char *path) {
    PlotSeries *ls = xcalloc((size_t)n, sizeof *ls), *hs = xcalloc((size_t)n, sizeof *hs);
    PlotPanel *p = xcalloc((size_t)n + 1, sizeof *p);
    double *lx = xmalloc(WGAN_MAX_DEPTH * sizeof *lx);
    double (*norms)[WGAN_MAX_DEPTH] = xcalloc((size_t)n, sizeof *norms);
    double (*hx)[HIST_BINS] = xcalloc((size_t)n, sizeof *hx), (*hy)[HIST_BINS] = xcalloc((size_t)n, sizeof *hy);
    char (*titles)[CFG_STR_MAX + 64] = xcalloc((size_t)n, sizeof *titles);
    int L = 0, rc = 0;
    for (int l = 0; l < WGAN_MAX_DEPTH; l++) lx[l] = l + 1;
    for (int i = 0; i < n && rc == 0; i++) {
        int Li = 0;
        if (read_layer_grads(runs[i].out_dir, norms[i], &Li, 50) != 0) rc = -1;
        L = Li > L ? Li : L;
        size_t nw = 0;
        double *w = read_weights(runs[i].out_dir, &nw);
        if (!w || nw == 0) rc = -1;
        if (rc == 0) {
            histogram(w, nw, hx[i], hy[i]);
            printf("%s: ||dL/dh|| layer 1 %.3g, layer %d %.3g, first/last %.3g\n", runs[i].name,
                   norms[i][0], Li, norms[i][Li - 1], norms[i][0] / norms[i][Li - 1]);
        }
        free(w);
        ls[i] = (PlotSeries){runs[i].label, lx, norms[i], (size_t)Li, 0};
        hs[i] = (PlotSeries){runs[i].name, hx[i], hy[i], HIST_BINS, 0};
        snprintf(titles[i], sizeof titles[i], "(b) critic weights and biases: %s", runs[i].label);
        p[1 + i] = (PlotPanel){titles[i], "value", "share of values", PLOT_LOGY_OFF, &hs[i], 1,
                               NULL, 0, NULL, NAN, NULL};
    }
    if (rc != 0) {
        fprintf(stderr, "cliplab: error: %s: every run needs layer_grads.csv and critic_weights.csv "
                        "([wgan] layer_grads = true, a finished run)\n", path);
    } else {
        p[0] = (PlotPanel){"(a) ||d critic loss / d activations|| per layer (mean of the last 50 "
                           "generator updates)", "critic layer (1 = next to the input)",
                           "gradient norm", PLOT_LOGY_ON, ls, n, NULL, 0, NULL, NAN, NULL};
        char err[256];
        rc = plot_figure(path, "WGAN-GP Figure 1: deep ReLU critics on the Swiss roll", p, n + 1,
                         1000, 440 + 300 * n, err, sizeof err);
        if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    }
    free(ls), free(hs), free(p), free(lx), free(norms), free(hx), free(hy), free(titles);
    return rc;
}

int wgan_compare_plot(const RunResult *runs, int n, const char *path) {
    char probe[600];
    int fig1 = 1;
    for (int i = 0; i < n; i++) {
        snprintf(probe, sizeof probe, "%s/layer_grads.csv", runs[i].out_dir);
        FILE *f = fopen(probe, "r");
        fig1 &= f != NULL;
        if (f) fclose(f);
    }
    if (fig1) return figure1(runs, n, path);
    const MetricsLog **logs = xmalloc((size_t)n * sizeof *logs);
    const char **labels = xmalloc((size_t)n * sizeof *labels);
    for (int i = 0; i < n; i++) logs[i] = &runs[i].log, labels[i] = runs[i].label;
    PlotPanel p[3];
    PlotSeries *s = xcalloc(3 * (size_t)n, sizeof *s);
    double **bufs = xcalloc(4 * (size_t)n, sizeof *bufs);
    int nb = step_panels(logs, labels, n, p, s, bufs);
    int np = isnan(s[2 * n].y[0]) ? 2 : 3;
    char err[256];
    int rc = plot_figure(path, "WGAN critics compared: the Lipschitz constraint", p, np, 1100,
                         400 * np, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: error: writing %s: %s\n", path, err);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    free(bufs), free(s), free(logs), free(labels);
    return rc;
}
