/* plot.h: PNG figures (stb_image_write) with real text (stb_truetype, DejaVu Sans).
 *
 * A figure is a column of panels; each panel has a title, axis labels, ticks,
 * a legend, and several line series. Log-scale y is chosen automatically when
 * the finite positive values span more than two decades (or forced). A series
 * that goes non-finite ends with a visible marker (a red cross and the label
 * "non-finite") at its last finite point. Vertical event lines (e.g. rollbacks)
 * can be drawn with a label. A heatmap draws a rows x steps matrix (per-layer
 * gradient norms) with a colour bar.
 *
 * Writes to a temporary name and renames, so a failed write leaves no half file.
 * Functions return 0 on success, -1 on failure with a message in err. */
#ifndef CLIPLAB_PLOT_H
#define CLIPLAB_PLOT_H

#include <stddef.h>

typedef struct PlotSeries {
    const char *label;
    const double *x;      /* n values, increasing */
    const double *y;      /* n values; NaN/inf mark divergence */
    size_t n;
    int style;            /* 0 solid line, 1 dots (sparse series such as validation loss) */
} PlotSeries;

typedef enum { PLOT_LOGY_AUTO = -1, PLOT_LOGY_OFF = 0, PLOT_LOGY_ON = 1 } PlotLogY;

typedef struct PlotPanel {
    const char *title;
    const char *xlabel;
    const char *ylabel;
    int logy;                    /* PlotLogY */
    const PlotSeries *series;
    int nseries;
    const double *vlines;        /* x positions of event lines, may be NULL */
    int nvlines;
    const char *vline_label;     /* legend entry for the event lines */
    double hline;                /* a horizontal reference line (e.g. clip threshold); NaN = none */
    const char *hline_label;
} PlotPanel;

/* Default canvas size for a figure of npanels (width 1000, 420 per panel). */
int plot_figure(const char *path, const char *title, const PlotPanel *panels, int npanels,
                int width, int height, char *err, size_t errlen);

/* values[rows][cols], row labels, x = step of each column. Log colour scale when
 * logscale. Non-finite cells drawn in a distinct colour. */
int plot_heatmap(const char *path, const char *title, const char *xlabel,
                 const char *const *row_labels, int rows, const double *x, int cols,
                 const double *values, int logscale, char *err, size_t errlen);

/* The font file used (DejaVu Sans from fonts-dejavu-core). */
#define PLOT_FONT_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

/* Helpers (also used by tests). */

/* 1 when the panel's y axis is drawn on a log scale: PLOT_LOGY_ON, or PLOT_LOGY_AUTO
 * and the finite positive values span more than two decades and none is negative. */
int plot_choose_logy(const PlotPanel *panel);

/* 1-2-5 tick values (k * {1,2,5} * 10^e) inside [lo, hi], first and last within one
 * step of the ends; at most maxticks of them unless that would leave fewer than two.
 * Writes up to cap values to out and returns how many (0 when lo >= hi). */
int plot_ticks(double lo, double hi, int maxticks, double *out, int cap);

/* RGB colour of series i (Okabe-Ito palette, cycled). */
void plot_series_color(int i, unsigned char rgb[3]);

/* Canvas size plot_heatmap uses for a matrix with the given number of rows. */
void plot_heatmap_size(int rows, int *width, int *height);

#endif
