/* live_view.c: the figure ./train --live keeps up to date (see live_view.h).
 *
 * The training thread appends one row per logged step (five numbers) under
 * the view's lock and pokes the window; the window's thread takes a copy of
 * every run under the same lock, binned to at most LV_POINTS points per run
 * (mean loss, max norm per bin, so a one-step spike keeps its height; 400
 * points are ~2.5 pixels apart at the window's width, and a frame costs ~10 ms
 * where 1500 points cost ~70 ms), and
 * draws two panels: each run's training loss, and each run's pre-clip
 * gradient norm with the running one's post-clip norm and threshold. */
#include "live_view.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "live.h"

#define LV_MAX_RUNS 32
#define LV_POINTS 400

enum { C_STEP, C_LOSS, C_PRE, C_POST, C_TH, NC };

typedef struct LvRun {
    char label[CFG_STR_MAX + 128];
    char name[CFG_STR_MAX];
    const TrainerSettings *id;    /* identity: each config's settings (outlive its Trainer) */
    long steps;                   /* [train] steps */
    int clipped;                  /* a clip method is on */
    double *v;                    /* n rows of NC */
    size_t n, cap;
} LvRun;

struct LiveView {
    pthread_mutex_t mu;
    LvRun runs[LV_MAX_RUNS];
    int nruns;
    Live *live;
    long frames_drawn;
};

static double col(const MetricsLog *l, size_t r, int c) {
    return c >= 0 ? l->rows[r * (size_t)l->ncols + c] : NAN;
}

void live_view_observe(const Trainer *tr, void *arg) {
    LiveView *v = arg;
    const MetricsLog *l = &tr->log;
    if (l->nrows == 0) return;
    pthread_mutex_lock(&v->mu);
    LvRun *r = v->nruns ? &v->runs[v->nruns - 1] : NULL;
    if ((!r || r->id != tr->set) && v->nruns < LV_MAX_RUNS) { /* a new run */
        r = &v->runs[v->nruns++];
        memset(r, 0, sizeof *r);
        char desc[96];
        clipper_describe_run(&tr->groups[0].clip, desc, sizeof desc);
        snprintf(r->label, sizeof r->label, "%s (clip: %s)", tr->run.name, desc);
        snprintf(r->name, sizeof r->name, "%s", tr->run.name);
        r->id = tr->set;
        r->steps = tr->train.steps;
        r->clipped = tr->groups[0].clip.cfg.grad != CLIP_NONE;
    }
    if (r && r->id == tr->set) {
        if (r->n > l->nrows - 1) r->n = l->nrows - 1; /* a rollback dropped rows */
        if (r->n + 1 > r->cap) {
            r->cap = r->cap ? 2 * r->cap : 4096;
            double *nv = realloc(r->v, r->cap * NC * sizeof *nv);
            if (!nv) die("out of memory in the live view");
            r->v = nv;
        }
        size_t i = l->nrows - 1;
        double *row = r->v + r->n * NC;
        row[C_STEP] = col(l, i, 0);
        row[C_LOSS] = col(l, i, metrics_col(l, "loss"));
        row[C_PRE] = col(l, i, metrics_col(l, "grad_norm"));
        row[C_POST] = col(l, i, metrics_col(l, "grad_norm_clipped"));
        row[C_TH] = col(l, i, metrics_col(l, "clip_threshold"));
        r->n++;
    }
    pthread_mutex_unlock(&v->mu);
    if (v->live) live_poke(v->live);
}

/* One run's rows binned into at most LV_POINTS points: out[NC][m]. */
static size_t bin_run(const LvRun *r, double *out[NC]) {
    size_t m = r->n < LV_POINTS ? r->n : LV_POINTS;
    for (size_t b = 0; b < m; b++) {
        size_t lo = b * r->n / m, hi = (b + 1) * r->n / m;
        double sum = 0, pre = -INFINITY, post = -INFINITY;
        int bad = 0;
        for (size_t i = lo; i < hi; i++) {
            const double *row = r->v + i * NC;
            sum += row[C_LOSS];
            bad |= !isfinite(row[C_PRE]);
            pre = row[C_PRE] > pre ? row[C_PRE] : pre;
            post = row[C_POST] > post ? row[C_POST] : post;
        }
        const double *last = r->v + (hi - 1) * NC;
        out[C_STEP][b] = r->v[lo * NC + C_STEP];
        out[C_LOSS][b] = sum / (double)(hi - lo); /* a NaN stays a NaN: the cross marks it */
        out[C_PRE][b] = bad ? last[C_PRE] : pre;
        out[C_POST][b] = post > -INFINITY ? post : last[C_POST];
        out[C_TH][b] = last[C_TH];
    }
    return m;
}

int live_view_render(PlotImage *im, int w, int h, void *arg) {
    LiveView *v = arg;
    double *buf[LV_MAX_RUNS][NC];
    size_t m[LV_MAX_RUNS];
    char label[LV_MAX_RUNS][CFG_STR_MAX + 128], title[CFG_STR_MAX + 96];
    int clipped[LV_MAX_RUNS];
    pthread_mutex_lock(&v->mu);
    int n = v->nruns;
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < NC; c++) buf[i][c] = xmalloc((LV_POINTS + 1) * sizeof(double));
        m[i] = bin_run(&v->runs[i], buf[i]);
        snprintf(label[i], sizeof label[i], "%s", v->runs[i].label);
        clipped[i] = v->runs[i].clipped;
    }
    if (n) {
        const LvRun *r = &v->runs[n - 1];
        snprintf(title, sizeof title, "live: %s, step %.0f of %ld", r->name,
                 r->n ? r->v[(r->n - 1) * NC + C_STEP] + 1 : 0.0, r->steps);
    } else {
        snprintf(title, sizeof title, "live: waiting for the first step");
    }
    pthread_mutex_unlock(&v->mu);
    PlotSeries ls[LV_MAX_RUNS], gs[LV_MAX_RUNS + 2];
    char post_l[CFG_STR_MAX + 160], th_l[CFG_STR_MAX + 160];
    int ng = 0;
    for (int i = 0; i < n; i++) {
        ls[i] = (PlotSeries){.label = label[i], .x = buf[i][C_STEP], .y = buf[i][C_LOSS], .n = m[i],
                             .color = i + 1};
        gs[ng++] = (PlotSeries){.label = label[i], .x = buf[i][C_STEP], .y = buf[i][C_PRE],
                                .n = m[i], .color = i + 1};
    }
    if (n && clipped[n - 1]) { /* the running run's clip step */
        int k = n - 1;
        snprintf(post_l, sizeof post_l, "%s: post-clip", label[k]);
        snprintf(th_l, sizeof th_l, "%s: threshold", label[k]);
        gs[ng++] = (PlotSeries){.label = post_l, .x = buf[k][C_STEP], .y = buf[k][C_POST],
                                .n = m[k], .color = 8 /* purple */};
        int has_th = 0;
        for (size_t j = 0; j < m[k]; j++) has_th |= isfinite(buf[k][C_TH][j]);
        if (has_th)
            gs[ng++] = (PlotSeries){.label = th_l, .x = buf[k][C_STEP], .y = buf[k][C_TH],
                                    .n = m[k], .color = 7 /* black */};
    }
    PlotPanel panels[2] = {
        {.title = "Training loss", .xlabel = "step", .ylabel = "loss", .logy = PLOT_LOGY_AUTO,
         .series = ls, .nseries = n},
        {.title = "Global gradient L2 norm (pre-clip; post-clip and threshold of the running one)",
         .xlabel = "step", .ylabel = "norm", .logy = PLOT_LOGY_AUTO, .series = gs, .nseries = ng},
    };
    char err[256];
    int rc = plot_figure_render(im, title, panels, 2, 1, w, h, err, sizeof err);
    if (rc != 0) fprintf(stderr, "cliplab: warning: live window: %s\n", err);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < NC; c++) free(buf[i][c]);
    return rc;
}

LiveView *live_view_open(char *err, size_t errlen) {
    LiveView *v = xcalloc(1, sizeof *v);
    pthread_mutex_init(&v->mu, NULL);
    v->live = live_start("cliplab: live", 1000, 760, 4.0, live_view_render, v, err, errlen);
    if (!v->live) {
        pthread_mutex_destroy(&v->mu);
        free(v);
        return NULL;
    }
    return v;
}

long live_view_frames(LiveView *v) { return v->live ? live_frames(v->live) : 0; }

long live_view_close(LiveView *v, int hold) {
    if (!v) return 0;
    live_stop(v->live, hold, &v->frames_drawn);
    long frames = v->frames_drawn;
    for (int i = 0; i < v->nruns; i++) free(v->runs[i].v);
    pthread_mutex_destroy(&v->mu);
    free(v);
    return frames;
}
