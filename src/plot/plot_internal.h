/* plot_internal.h: what the plot files share and nobody else sees: the cairo canvas
 * and its primitives (surface.c), ticks, axes and the colour scale (axes.c). Layers
 * point down: figure.c, heatmap.c and film.c use axes.c, which uses surface.c. */
#ifndef CLIPLAB_PLOT_INTERNAL_H
#define CLIPLAB_PLOT_INTERNAL_H

#include <cairo.h>
#include <stddef.h>
#include <stdio.h>

#include "plot.h"

/* ---- sizes (pixels) ---- */

#define FONT_TICK 14.0
#define FONT_LABEL 15.0
#define FONT_LEGEND 14.0
#define FONT_NOTE 13.0
#define FONT_TITLE 18.0
#define FONT_FIGTITLE 21.0
#define LINE_WIDTH 2.25
#define DOT_RADIUS 3.5
#define MARK_RADIUS 4.5
#define MAX_TICKS 160
#define MAX_SIDE 10000

/* ---- colours ---- */

#define C_RED ((PlotColor){220, 0, 0, 255}) /* non-finite marks only; no palette colour is near */
#define C_DARK_RED ((PlotColor){180, 0, 0, 255})
#define C_INK ((PlotColor){25, 25, 25, 255})
#define C_AXIS ((PlotColor){80, 80, 80, 255})
#define C_GRID ((PlotColor){222, 222, 222, 255})
#define C_GRID_MINOR ((PlotColor){245, 245, 245, 255})
#define C_EVENT ((PlotColor){120, 120, 120, 255})
#define C_REFLINE ((PlotColor){45, 45, 45, 255})
#define C_LEGEND_EDGE ((PlotColor){190, 190, 190, 255})
#define C_WHITE ((PlotColor){255, 255, 255, 255})
#define C_NONPOS ((PlotColor){200, 200, 200, 255}) /* cells <= 0 on a log colour scale */

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline double clampd(double v, double a, double b) { return v < a ? a : v > b ? b : v; }
/* The message in err (when there is one); returns -1, so a failure is one statement. */
int set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- canvas (surface.c) ---- */

typedef struct Rect {
    int x0, y0, x1, y1; /* [x0, x1) x [y0, y1) */
} Rect;

typedef struct Canvas {
    cairo_surface_t *s;
    cairo_t *cr;
    int w, h;
} Canvas;

static inline Rect rect_make(int x, int y, int w, int h) { return (Rect){x, y, x + w, y + h}; }

/* A white w x h canvas drawing into im's pixels (allocated or reused). */
int canvas_begin(Canvas *cv, PlotImage *im, int w, int h, char *err, size_t errlen);
/* An 8-bit coverage canvas (where data is drawn, for placing legends and labels). */
int canvas_mask(Canvas *cv, int w, int h);
/* Releases the cairo objects (a canvas_begin's pixels stay in its image). Returns rc, or
 * -1 with a message when cairo reported an error. */
int canvas_end(Canvas *cv, int rc, char *err, size_t errlen);
/* Pixels of data inside r; *refs (when not NULL): pixels of reference lines, drawn in the
 * mask with coverage 1/255 (a legend would rather not hide them, but may). */
long mask_count(const Canvas *m, Rect r, long *refs);
/* When rc is 0, write im (no longer needed: turned to RGB in its own buffer) as the
 * PNG at path, via "<path>.tmp" and rename; then free it. Returns rc or the writer's. */
int image_png_free(const char *path, PlotImage *im, int rc, char *err, size_t errlen);

static inline void set_colour(cairo_t *cr, PlotColor c, double alpha) {
    cairo_set_source_rgba(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0, alpha * c.a / 255.0);
}
void clip_to(cairo_t *cr, Rect r); /* after cairo_save */
void fill_rect(Canvas *cv, Rect r, PlotColor c, double alpha);
void frame_rect(Canvas *cv, Rect r, PlotColor c); /* a 1-px outline just outside r */
/* Stroke the path width wide in c, over a white halo halo wide (0: none). */
void stroke_halo(cairo_t *cr, PlotColor c, double width, double halo);
void dashed_line(cairo_t *cr, double ax, double ay, double bx, double by, double on, double off,
                 PlotColor c);
/* Marker m of radius r at (x, y) in colour c; edge: a white rim (on a busy background). */
void draw_marker(cairo_t *cr, int m, double x, double y, double r, PlotColor c, int edge);
/* The red non-finite X of half-size h on a white halo. */
void draw_cross(cairo_t *cr, double x, double y, double h);

double text_width(Canvas *cv, const char *s, double px);
/* DejaVu Sans: hhea ascender 1901 and cap height 1493 of 2048 units per em. */
static inline double text_ascent(double px) { return 0.928 * px; }
/* The baseline that centres digits on y. */
static inline double baseline_centred(double y, double px) { return y + 0.5 * 0.729 * px; }
void text_draw(Canvas *cv, const char *s, double px, double x, double ybase, double halign,
               PlotColor c);
/* Turned 90 degrees counter-clockwise, centred on yc, baseline on column xbase. */
void text_draw_up(Canvas *cv, const char *s, double px, double xbase, double yc, PlotColor c);

/* ---- provenance (provenance.c) ---- */

/* When provenance is set: *im replaced by itself with the footer under it. */
int prov_footer(PlotImage *im, char *err, size_t errlen);
/* The provenance text chunks, written at f's position (after IHDR). 0 or -1. */
int prov_chunks(FILE *f);

/* ---- axes (axes.c) ---- */

typedef struct Tick {
    double v;  /* axis units: the value, or log10 of it on a log axis */
    int major; /* 1 labelled; 0 minor with a faint grid line; -1 tick mark only */
    char label[48];
} Tick;

typedef struct Axis {
    double lo, hi; /* limits in axis units */
    int log;
    int nt;
    Tick t[MAX_TICKS];
} Axis;

void axis_add(Axis *ax, double v, int major, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void axis_linear_ticks(Axis *ax, int maxticks);
void axis_log_ticks(Axis *ax, double pxlen, double min_gap);
void axis_fit_ticks(Axis *ax, Canvas *cv, double w, int most);
double axis_unit(const Axis *ax, double v); /* v in axis units, NaN if not shown */
/* Pixel of u (axis units) from p0 (at lo) to p1, within 100 axis lengths of them. */
double axis_px(const Axis *ax, double u, double p0, double p1);
double axis_label_width(const Axis *ax, Canvas *cv, double px);
void limits_linear(double lo, double hi, double pad, double *a, double *b);
void limits_log(double lo, double hi, double pad, int widen, double *a, double *b);
/* One x tick below rect r at pixel column x: its mark and label. */
void draw_x_tick(Canvas *cv, Rect r, int x, const char *label);

/* A colour scale: range in scale units (log10 on a log scale), and what was seen. */
typedef struct Heat {
    Axis ax;
    int nonfinite, nonpos;
} Heat;

/* Returns how many values are on the scale (finite; positive on a log scale). */
int heat_scale(Heat *hs, const double *v, size_t n, int logscale);
/* Width the colour bar, its tick labels and its label need right of the plot. */
int colorbar_need(Heat *hs, Canvas *cv, int h, const char *label);
void colorbar_draw(Canvas *cv, const Heat *hs, Rect bar, const char *label);
/* Paint values[rows][cols] over rect p, each pixel the block of cells under it (the
 * largest value, or non-finite when any is); flip: row 0 at the bottom. */
void paint_cells(Canvas *cv, const Heat *hs, Rect p, const double *values, int rows, int cols,
                 int flip);

#endif
