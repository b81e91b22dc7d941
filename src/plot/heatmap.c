/* heatmap.c: the matrix heatmap (rows x columns, e.g. per-layer gradient norms over
 * steps) with row labels, a step axis and a colour bar. Leaves to others: what the
 * matrix holds (the trainer bins its steps). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_internal.h"

void plot_heatmap_size(int rows, int *width, int *height) {
    int ph = imax(160, imin(rows * 22, 560));
    *width = 1000;
    *height = 52 + ph + 92;
}

static void heat_row_labels(Canvas *cv, Rect p, const char *const *labels, int rows, int maxw) {
    double rh = (double)(p.y1 - p.y0) / rows;
    for (int r = 0; r < rows; r += imax(1, (int)ceil(18 / rh))) {
        char lab[96];
        if (labels && labels[r])
            snprintf(lab, sizeof lab, "%s", labels[r]);
        else
            snprintf(lab, sizeof lab, "%d", r);
        for (size_t n = strlen(lab); n > 4 && text_width(cv, lab, FONT_TICK) > maxw; n--)
            snprintf(lab + n - 4, 5, "...");
        double yc = p.y0 + (r + 0.5) * rh;
        fill_rect(cv, (Rect){p.x0 - 6, (int)yc, p.x0 - 1, (int)yc + 1}, C_AXIS, 1);
        text_draw(cv, lab, FONT_TICK, p.x0 - 9, baseline_centred(yc, FONT_TICK), 1, C_INK);
    }
}

static double col_x(const double *x, int c) { return x ? x[c] : c; }

/* x ticks in step units, placed through the columns' positions x (NULL: 0, 1, 2, ...). */
static void heat_x_ticks(Canvas *cv, Rect p, const double *x, int cols, const char *xlabel) {
    Axis ax = {.lo = col_x(x, 0), .hi = col_x(x, cols - 1)};
    axis_fit_ticks(&ax, cv, p.x1 - p.x0, cols);
    if (ax.nt == 0) axis_add(&ax, ax.lo, 1, "%g", ax.lo); /* one column */
    for (int i = 0; i < ax.nt; i++) {
        double v = ax.t[i].v, f = 0;
        int c = 0;
        while (c + 2 < cols && col_x(x, c + 1) <= v) c++;
        if (cols > 1) f = c + (v - col_x(x, c)) / (col_x(x, c + 1) - col_x(x, c));
        draw_x_tick(cv, p, (int)floor(p.x0 + (f + 0.5) * (p.x1 - p.x0) / cols), ax.t[i].label);
    }
    text_draw(cv, xlabel, FONT_LABEL, (p.x0 + p.x1) / 2.0, p.y1 + 48, 0.5, C_INK);
}

/* Small legend note for the colours that are not on the colour bar, right-aligned at x. */
static void heat_note(Canvas *cv, const Heat *hs, int x, int y) {
    const char *text[2] = {"non-finite (NaN/inf)", "<= 0 (log scale)"};
    const PlotColor colour[2] = {C_RED, C_NONPOS};
    for (int i = 1; i >= 0; i--) {
        if (!(i ? hs->nonpos : hs->nonfinite)) continue;
        x -= (int)ceil(text_width(cv, text[i], FONT_NOTE));
        text_draw(cv, text[i], FONT_NOTE, x, baseline_centred(y, FONT_NOTE), 0, C_INK);
        x -= 20;
        fill_rect(cv, rect_make(x, y - 7, 14, 14), colour[i], 1);
        frame_rect(cv, rect_make(x, y - 7, 14, 14), C_AXIS);
        x -= 22;
    }
}

int plot_heatmap_render(PlotImage *im, const char *title, const char *xlabel,
                        const char *const *row_labels, int rows, const double *x, int cols,
                        const double *values, int logscale, char *err, size_t errlen) {
    if (rows < 1 || cols < 1 || !values || rows > 100000 || cols > 100000000 / rows)
        return set_err(err, errlen, "plot_heatmap: nothing sensible to draw (%d rows x %d columns)",
                       rows, cols);
    for (int c = 0; x && c < cols; c++) /* columns at x if strictly increasing, else 0, 1, .. */
        if (!isfinite(x[c]) || (c > 0 && !(x[c] > x[c - 1]))) x = NULL;
    Canvas cv;
    Heat hs;
    int w, h, maxw = 260, lw = 0;
    plot_heatmap_size(rows, &w, &h);
    if (canvas_begin(&cv, im, w, h, err, errlen)) return -1;
    int ph = h - 52 - 92;
    heat_scale(&hs, values, (size_t)rows * (size_t)cols, logscale);
    int need = colorbar_need(&hs, &cv, ph, NULL);
    for (int r = 0; r < rows && row_labels; r++)
        lw = imax(lw, (int)ceil(text_width(&cv, row_labels[r], FONT_TICK)));
    lw = imin(imax(lw, 24), maxw);
    Rect p = {16 + lw + 12, 52, w - need - 5, 52 + ph};
    text_draw(&cv, title, FONT_TITLE, (p.x0 + p.x1) / 2.0, 32, 0.5, C_INK);
    paint_cells(&cv, &hs, p, values, rows, cols, 0);
    for (int r = 1; ph / rows >= 10 && r < rows; r++) { /* rows apart */
        int y = p.y0 + (int)ceil((double)r * ph / rows);
        fill_rect(&cv, (Rect){p.x0, y, p.x1, y + 1}, C_WHITE, 0.6);
    }
    frame_rect(&cv, p, C_AXIS);
    heat_row_labels(&cv, p, row_labels, rows, maxw);
    heat_x_ticks(&cv, p, x, cols, xlabel);
    colorbar_draw(&cv, &hs, (Rect){p.x1 + 24, p.y0, p.x1 + 42, p.y1}, NULL);
    heat_note(&cv, &hs, p.x1, h - 16);
    return canvas_end(&cv, 0, err, errlen);
}

int plot_matrix(const char *path, const char *title, const char *xlabel,
                const char *const *row_labels, int rows, const char *const *col_labels, int cols,
                const double *values, int logscale, double mark, const char *mark_label,
                char *err, size_t errlen) {
    if (rows < 1 || cols < 1 || rows > 60 || cols > 60 || !values || !col_labels)
        return set_err(err, errlen, "plot_matrix: 1..60 rows and columns with labels (%d x %d)",
                       rows, cols);
    PlotImage im = {0};
    Canvas cv;
    Heat hs;
    int ph = rows * 44, w = 1100, h = 60 + ph + 100, lw = 24;
    if (canvas_begin(&cv, &im, w, h, err, errlen)) return -1;
    { /* the scale covers the mark too */
        size_t nv = (size_t)rows * (size_t)cols;
        double *vm = malloc((nv + 1) * sizeof *vm);
        if (!vm) return canvas_end(&cv, set_err(err, errlen, "plot: out of memory"), err, errlen);
        memcpy(vm, values, nv * sizeof *vm);
        vm[nv] = mark_label ? mark : NAN;
        heat_scale(&hs, vm, nv + 1, logscale);
        free(vm);
    }
    int need = colorbar_need(&hs, &cv, ph, NULL);
    if (mark_label && isfinite(mark))
        need += 8 + (int)ceil(text_width(&cv, mark_label, FONT_NOTE));
    for (int r = 0; r < rows && row_labels; r++)
        lw = imax(lw, (int)ceil(text_width(&cv, row_labels[r], FONT_TICK)));
    lw = imin(lw, 320);
    Rect p = {16 + lw + 12, 56, w - need - 5, 56 + ph};
    text_draw(&cv, title, FONT_TITLE, w / 2.0, 32, 0.5, C_INK);
    paint_cells(&cv, &hs, p, values, rows, cols, 0);
    double cw = (double)(p.x1 - p.x0) / cols, rh = (double)ph / rows;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double v = values[(size_t)r * cols + c], u = axis_unit(&hs.ax, v);
            char t[32];
            if (!isfinite(v)) snprintf(t, sizeof t, "div");
            else snprintf(t, sizeof t, "%.2g", v);
            double f = isfinite(u) ? (u - hs.ax.lo) / (hs.ax.hi - hs.ax.lo) : 0;
            PlotColor ink = isfinite(v) && f > 0.6 ? C_INK : C_WHITE; /* viridis is light at the top */
            double xc = p.x0 + (c + 0.5) * cw, yc = p.y0 + (r + 0.5) * rh;
            text_draw(&cv, t, FONT_TICK, xc, baseline_centred(yc, FONT_TICK), 0.5, ink);
        }
    for (int r = 1; r < rows; r++)
        fill_rect(&cv, (Rect){p.x0, p.y0 + (int)(r * rh), p.x1, p.y0 + (int)(r * rh) + 1}, C_WHITE, 1);
    for (int c = 1; c < cols; c++)
        fill_rect(&cv, (Rect){p.x0 + (int)(c * cw), p.y0, p.x0 + (int)(c * cw) + 1, p.y1}, C_WHITE, 1);
    frame_rect(&cv, p, C_AXIS);
    heat_row_labels(&cv, p, row_labels, rows, 320);
    for (int c = 0; c < cols; c++)
        draw_x_tick(&cv, p, (int)floor(p.x0 + (c + 0.5) * cw), col_labels[c]);
    text_draw(&cv, xlabel, FONT_LABEL, (p.x0 + p.x1) / 2.0, p.y1 + 48, 0.5, C_INK);
    Rect bar = {p.x1 + 24, p.y0, p.x1 + 42, p.y1};
    colorbar_draw(&cv, &hs, bar, NULL);
    double mu = axis_unit(&hs.ax, mark);
    if (mark_label && isfinite(mu) && mu >= hs.ax.lo && mu <= hs.ax.hi) {
        int y = (int)floor(axis_px(&hs.ax, mu, bar.y1, bar.y0));
        fill_rect(&cv, (Rect){bar.x0 - 6, y - 1, bar.x1 + 6, y + 2}, C_RED, 1);
        int lx = w - 8 - (int)ceil(text_width(&cv, mark_label, FONT_NOTE));
        text_draw(&cv, mark_label, FONT_NOTE, lx, baseline_centred(y, FONT_NOTE) - 12, 0, C_DARK_RED);
    }
    heat_note(&cv, &hs, p.x1, h - 16);
    int rc = canvas_end(&cv, 0, err, errlen);
    return image_png_free(path, &im, rc, err, errlen);
}

int plot_heatmap(const char *path, const char *title, const char *xlabel,
                 const char *const *row_labels, int rows, const double *x, int cols,
                 const double *values, int logscale, char *err, size_t errlen) {
    PlotImage im = {0};
    int rc = plot_heatmap_render(&im, title, xlabel, row_labels, rows, x, cols, values, logscale,
                                 err, errlen);
    return image_png_free(path, &im, rc, err, errlen);
}
