/* heatmap.c: the matrix heatmap (rows x columns, e.g. per-layer gradient norms over
 * steps) with row labels, a step axis and a colour bar; and the cell painter the
 * function heatmap of a panel (figure.c) shares. When several cells share a pixel,
 * it shows the largest, or red if any is non-finite, so a one-step spike stays
 * visible. Leaves to others: what the matrix holds (the trainer bins its steps). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_internal.h"

/* Value shown for a block of cells: non-finite if any is, else the largest. */
static double heat_block(const double *values, int cols, int r0, int r1, int c0, int c1) {
    double m = -INFINITY;
    for (int r = r0; r < r1; r++)
        for (int c = c0; c < c1; c++) {
            double v = values[(size_t)r * (size_t)cols + (size_t)c];
            if (!isfinite(v)) return NAN;
            m = fmax(m, v);
        }
    return m;
}

void paint_cells(Canvas *cv, const Heat *hs, Rect p, const double *values, int rows, int cols,
                 int flip) {
    p = (Rect){imax(p.x0, 0), imax(p.y0, 0), imin(p.x1, cv->w), imin(p.y1, cv->h)};
    int pw = p.x1 - p.x0, ph = p.y1 - p.y0;
    if (pw <= 0 || ph <= 0) return;
    cairo_surface_flush(cv->s);
    unsigned char *data = cairo_image_surface_get_data(cv->s);
    int stride = cairo_image_surface_get_stride(cv->s);
    int *c0 = malloc((size_t)(pw + 1) * sizeof *c0);
    if (!c0) return;
    for (int x = 0; x <= pw; x++) c0[x] = (int)((double)x * cols / pw);
    for (int y = 0; y < ph; y++) {
        int yy = flip ? ph - 1 - y : y;
        int r0 = (int)((double)yy * rows / ph),
            r1 = imin(rows, imax(r0 + 1, (int)((double)(yy + 1) * rows / ph)));
        uint32_t *row = (uint32_t *)(data + (size_t)(p.y0 + y) * stride) + p.x0;
        for (int x = 0; x < pw; x++) {
            double v =
                heat_block(values, cols, r0, r1, c0[x], imin(cols, imax(c0[x] + 1, c0[x + 1])));
            PlotColor c = heat_colour(hs, v);
            row[x] = 0xFF000000u | (uint32_t)c.r << 16 | (uint32_t)c.g << 8 | c.b;
        }
    }
    free(c0);
    cairo_surface_mark_dirty(cv->s);
}

void plot_heatmap_size(int rows, int *width, int *height) {
    int ph = imax(160, imin(rows * 22, 560));
    *width = 1000;
    *height = 52 + ph + 92;
}

static void heat_row_labels(Canvas *cv, Rect p, const char *const *labels, int rows, int maxw) {
    double rh = (double)(p.y1 - p.y0) / rows;
    int every = imax(1, (int)ceil(18 / rh));
    for (int r = 0; r < rows; r += every) {
        char buf[64], lab[96];
        const char *s = labels && labels[r] ? labels[r] : (snprintf(buf, sizeof buf, "%d", r), buf);
        snprintf(lab, sizeof lab, "%s", s);
        for (size_t n = strlen(lab); n > 4 && text_width(cv, lab, FONT_TICK) > maxw; n--)
            snprintf(lab + n - 4, 5, "...");
        double yc = p.y0 + (r + 0.5) * rh;
        fill_rect(cv, (Rect){p.x0 - 6, (int)yc, p.x0 - 1, (int)yc + 1}, C_AXIS, 1);
        text_draw(cv, lab, FONT_TICK, p.x0 - 9, baseline_centred(yc, FONT_TICK), 1, C_INK);
    }
}

/* Pixel x of value v on a column axis whose columns have positions xs (increasing). */
static double heat_col_px(const double *xs, int cols, Rect p, double v) {
    int c = 0;
    while (c + 2 < cols && xs[c + 1] <= v) c++;
    double f = cols > 1 ? c + (v - xs[c]) / (xs[c + 1] - xs[c]) : 0;
    return p.x0 + (f + 0.5) * (p.x1 - p.x0) / cols;
}

static void heat_x_ticks(Canvas *cv, Rect p, const double *xs, int cols, const char *xlabel) {
    Axis ax = {0};
    ax.lo = xs[0], ax.hi = xs[cols - 1];
    if (cols > 1) axis_fit_ticks(&ax, cv, p.x1 - p.x0, cols);
    if (cols == 1) {
        char lab[48];
        snprintf(lab, sizeof lab, "%g", xs[0]);
        axis_add(&ax, xs[0], 1, lab);
    }
    for (int i = 0; i < ax.nt; i++)
        draw_x_tick(cv, p, (int)floor(heat_col_px(xs, cols, p, ax.t[i].v)), ax.t[i].label);
    text_draw(cv, xlabel, FONT_LABEL, (p.x0 + p.x1) / 2.0, p.y1 + 48, 0.5, C_INK);
}

/* Small legend note for the colours that are not on the colour bar, right-aligned at x. */
static void heat_note(Canvas *cv, const Heat *hs, int x, int y) {
    const struct {
        int on;
        PlotColor c;
        const char *s;
    } items[2] = {{hs->nonfinite, C_RED, "non-finite (NaN/inf)"},
                  {hs->nonpos, C_NONPOS, "<= 0 (log scale)"}};
    for (int i = 1; i >= 0; i--) {
        if (!items[i].on) continue;
        x -= (int)ceil(text_width(cv, items[i].s, FONT_NOTE));
        text_draw(cv, items[i].s, FONT_NOTE, x, baseline_centred(y, FONT_NOTE), 0, C_INK);
        x -= 20;
        fill_rect(cv, rect_make(x, y - 7, 14, 14), items[i].c, 1);
        frame_rect(cv, rect_make(x, y - 7, 14, 14), C_AXIS);
        x -= 22;
    }
}

static void heat_draw(Canvas *cv, const char *title, const char *xlabel,
                      const char *const *row_labels, int rows, const double *xs, int cols,
                      const double *values, int logscale) {
    Heat hs;
    int ph = cv->h - 52 - 92, maxw = 260, lw = 0;
    heat_scale(&hs, values, (size_t)rows * (size_t)cols, logscale);
    int need = colorbar_need(&hs, cv, ph, NULL);
    for (int r = 0; r < rows && row_labels; r++)
        lw = imax(lw, (int)ceil(text_width(cv, row_labels[r], FONT_TICK)));
    lw = imin(imax(lw, 24), maxw);
    Rect p = {16 + lw + 12, 52, cv->w - need - 5, 52 + ph};
    text_draw(cv, title, FONT_TITLE, (p.x0 + p.x1) / 2.0, 32, 0.5, C_INK);
    paint_cells(cv, &hs, p, values, rows, cols, 0);
    for (int r = 1; ph / rows >= 10 && r < rows; r++) { /* rows apart */
        int y = p.y0 + (int)ceil((double)r * ph / rows);
        fill_rect(cv, (Rect){p.x0, y, p.x1, y + 1}, C_WHITE, 0.6);
    }
    frame_rect(cv, p, C_AXIS);
    heat_row_labels(cv, p, row_labels, rows, maxw);
    heat_x_ticks(cv, p, xs, cols, xlabel);
    colorbar_draw(cv, &hs, (Rect){p.x1 + 24, p.y0, p.x1 + 42, p.y1}, NULL);
    heat_note(cv, &hs, p.x1, cv->h - 16);
}

int plot_heatmap_render(PlotImage *im, const char *title, const char *xlabel,
                        const char *const *row_labels, int rows, const double *x, int cols,
                        const double *values, int logscale, char *err, size_t errlen) {
    if (rows < 1 || cols < 1 || !values || rows > 100000 || cols > 100000000 / rows) {
        set_err(err, errlen, "plot_heatmap: nothing sensible to draw (%d rows x %d columns)", rows,
                cols);
        return -1;
    }
    /* column positions: x if given and strictly increasing, else 0, 1, 2, ... */
    double *xs = malloc((size_t)cols * sizeof *xs);
    int ok = x != NULL, w, h;
    for (int c = 0; ok && c < cols; c++) ok = isfinite(x[c]) && (c == 0 || x[c] > x[c - 1]);
    for (int c = 0; xs && c < cols; c++) xs[c] = ok ? x[c] : c;
    plot_heatmap_size(rows, &w, &h);
    Canvas cv;
    int rc = xs ? canvas_begin(&cv, im, w, h, err, errlen) : -1;
    if (!xs) set_err(err, errlen, "plot: out of memory");
    if (rc == 0) heat_draw(&cv, title, xlabel, row_labels, rows, xs, cols, values, logscale);
    if (xs) rc = canvas_end(&cv, rc, err, errlen);
    free(xs);
    return rc;
}

int plot_heatmap(const char *path, const char *title, const char *xlabel,
                 const char *const *row_labels, int rows, const double *x, int cols,
                 const double *values, int logscale, char *err, size_t errlen) {
    PlotImage im = {0};
    int rc = plot_heatmap_render(&im, title, xlabel, row_labels, rows, x, cols, values, logscale,
                                 err, errlen);
    return image_png_free(path, &im, rc, err, errlen);
}
