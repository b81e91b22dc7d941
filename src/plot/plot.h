/* plot.h: figures drawn with cairo into an image surface, written as PNG with
 * stb_image_write (to "<path>.tmp", then renamed, so a failed write leaves no
 * half file). Text is DejaVu Sans (fonts-dejavu-core) through cairo-ft.
 *
 * Kinds (all general; the caller decides what the data means):
 * - plot_figure / plot_figure_grid: panels in a column (or a grid). A panel
 *   draws, bottom to top: a function heatmap (PlotField) with its colour bar,
 *   histogram bars (PlotHist), the shaded lo..hi bands of its series, the series
 *   (lines, points with markers, or both), reference lines, and a red cross
 *   where a series went non-finite. The x axis is linear, log or categorical;
 *   the y axis linear or log (chosen automatically when the values span more
 *   than two decades, or forced). The legend goes where it hides the least data.
 * - plot_heatmap: a rows x columns matrix (per-layer gradient norms over steps)
 *   with row labels and a colour bar.
 * - plot_filmstrip: a grid of small drawings, each drawn by a caller callback
 *   through the PlotDraw API (lines, rectangles, rotated rectangles, circles,
 *   text in the cell's own coordinates), so callers never call cairo.
 *
 * Every kind can also render into memory (PlotImage, cairo's ARGB32 pixels,
 * which SDL_PIXELFORMAT_ARGB8888 reads directly): the PNG functions render
 * that way, then write the PNG.
 *
 * Functions return 0 on success, -1 on failure with a message in err. */
#ifndef CLIPLAB_PLOT_H
#define CLIPLAB_PLOT_H

#include <stddef.h>
#include <stdint.h>

/* ---- colours ---- */

typedef struct PlotColor {
    unsigned char r, g, b, a; /* a: 255 opaque */
} PlotColor;

/* Colour of series i (Okabe-Ito palette, cycled; any i). */
PlotColor plot_palette(int i);

/* ---- line panels ---- */

/* A solid line; points (sparse series, scatter sets); a line with a marker at each point. */
typedef enum { PLOT_LINE = 0, PLOT_DOTS = 1, PLOT_LINE_MARKERS = 2 } PlotStyle;

typedef enum {
    PLOT_MARK_CIRCLE = 0,
    PLOT_MARK_SQUARE,
    PLOT_MARK_TRIANGLE,
    PLOT_MARK_DIAMOND,
    PLOT_MARK_CROSS, /* an x */
    PLOT_MARK_PLUS
} PlotMarker;

typedef struct PlotSeries {
    const char *label;
    const double *x; /* n values (NULL: 0, 1, 2, ...); on a categorical axis, the index */
    const double *y; /* n values; NaN/inf mark divergence */
    size_t n;
    int style;        /* PlotStyle */
    const double *lo; /* optional band: shaded between lo[i] and hi[i] (e.g. min and max */
    const double *hi; /* over seeds around a median y), drawn under every line; NULL = none */
    int marker;       /* PlotMarker of the points (styles 1 and 2) */
    int color;        /* 0: palette colour of the series' position in the panel (after its
                         histograms); k > 0: palette colour k-1 */
    int dash;         /* 1: a dashed line (e.g. the post-clip twin of a solid pre-clip line) */
    int faint;        /* 1: a reference drawn in light grey under the other series (e.g. the
                         baseline run in each panel of small multiples) */
} PlotSeries;

/* Samples of one histogram (a set of values binned on the panel's shared bins). */
typedef struct PlotHist {
    const char *label;
    const double *v; /* n values; non-finite ones are not binned, their count goes in the legend */
    size_t n;
} PlotHist;

/* A function sampled on a regular grid, drawn as a heatmap under the series, with a
 * colour bar right of the panel. Cell (i, j) covers x in x0 + [i, i+1] * (x1-x0)/nx,
 * y in y0 + [j, j+1] * (y1-y0)/ny. Non-finite cells are red. */
typedef struct PlotField {
    const double *v; /* [ny][nx], row 0 at y0 (the bottom) */
    int nx, ny;
    double x0, x1, y0, y1; /* the grid's edges in data units; the panel's axes take them */
    int logscale;          /* log colour scale (cells <= 0 drawn grey) */
    const char *label;     /* colour bar label, may be NULL */
} PlotField;

typedef enum { PLOT_LOGY_AUTO = -1, PLOT_LOGY_OFF = 0, PLOT_LOGY_ON = 1 } PlotLogY;

typedef struct PlotPanel {
    const char *title;
    const char *xlabel;
    const char *ylabel;
    int logy; /* PlotLogY (histograms: of the counts) */
    const PlotSeries *series;
    int nseries;
    const double *vlines; /* x positions of event lines, may be NULL */
    int nvlines;
    const char *vline_label; /* legend entry for the event lines */
    double hline;            /* a horizontal reference line (e.g. clip threshold), drawn */
    const char *hline_label; /* when hline is finite and hline_label is not NULL */
    /* x axis (zero: linear) */
    int logx;                 /* 1: log10 x axis (x <= 0 not drawn) */
    const char *const *xcats; /* ncats names: a categorical x axis; series x = 0..ncats-1 */
    int ncats;
    /* histograms (y = count), drawn under the series */
    const PlotHist *hists;
    int nhists;
    int bins;                /* 0: 30 */
    int hist_side;           /* 0: overlaid, translucent; 1: side by side in each bin */
    double hist_lo, hist_hi; /* bin range; lo >= hi (e.g. both 0): the data's range */
    /* a function heatmap under the series (axes linear, limits = its edges) */
    const PlotField *field;
    int legend_off; /* 1: no legend (small multiples: one panel carries it) */
} PlotPanel;

/* Panels in a column. Size 0: width 1000, 420 per panel. Build PlotPanel and
 * PlotSeries with designated initialisers ({.title = ..., .series = s}): every
 * field left out is zero, which is the default for each. */
int plot_figure(const char *path, const char *title, const PlotPanel *panels, int npanels,
                int width, int height, char *err, size_t errlen);

/* Panels in a grid of ncols columns, row by row. Size 0: 1000 wide for one column,
 * else 560 per column; 420 per row. */
int plot_figure_grid(const char *path, const char *title, const PlotPanel *panels, int npanels,
                     int ncols, int width, int height, char *err, size_t errlen);

/* ---- matrix heatmap ---- */

/* values[rows][cols], row labels, x = step of each column. Log colour scale when
 * logscale. Non-finite cells drawn in a distinct colour. */
int plot_heatmap(const char *path, const char *title, const char *xlabel,
                 const char *const *row_labels, int rows, const double *x, int cols,
                 const double *values, int logscale, char *err, size_t errlen);

/* A small matrix with named rows and columns (a sweep's map: clip threshold x learning
 * rate): each cell coloured and its value written in it ("div" for a non-finite one), a
 * colour bar with mark (when finite) drawn across it and named mark_label (e.g. the
 * trivial predictor's loss). */
int plot_matrix(const char *path, const char *title, const char *xlabel,
                const char *const *row_labels, int rows, const char *const *col_labels, int cols,
                const double *values, int logscale, double mark, const char *mark_label,
                char *err, size_t errlen);

/* Canvas size plot_heatmap uses for a matrix with the given number of rows. */
void plot_heatmap_size(int rows, int *width, int *height);

/* ---- filmstrip of small drawings ---- */

/* A cell being drawn. Coordinates are the cell's view units (y up); line widths and
 * text sizes are pixels. Drawing is clipped to the cell. */
typedef struct PlotDraw PlotDraw;
typedef void (*PlotCellFn)(PlotDraw *d, int index, void *arg);

void plot_draw_line(PlotDraw *d, double x0, double y0, double x1, double y1, double width_px,
                    PlotColor c);
void plot_draw_rect(PlotDraw *d, double x0, double y0, double x1, double y1, PlotColor fill);
/* A w x h rectangle centred on (cx, cy), turned by angle radians counter-clockwise. */
void plot_draw_rotated_rect(PlotDraw *d, double cx, double cy, double w, double h, double angle,
                            PlotColor fill);
void plot_draw_circle(PlotDraw *d, double cx, double cy, double r, PlotColor fill);
/* Text with its baseline at y; halign 0, 0.5, 1: x is its left, centre, right. */
void plot_draw_text(PlotDraw *d, double x, double y, double halign, double size_px, PlotColor c,
                    const char *s);

typedef struct PlotFilmstrip {
    const char *title;  /* above the grid, may be NULL */
    int ncells, ncols;  /* ncols 0: min(ncells, 6) */
    int cell_w, cell_h; /* pixels of one drawing; 0: 200 x 150 */
    double view[4];     /* xmin, xmax, ymin, ymax shown in every cell (aspect kept) */
    PlotCellFn draw;    /* called once per cell, index 0..ncells-1 */
    void *arg;
    const char *const *captions; /* ncells texts under the cells, may be NULL */
} PlotFilmstrip;

int plot_filmstrip(const char *path, const PlotFilmstrip *fs, char *err, size_t errlen);

/* ---- in memory (a live window shows the same pixels) ---- */

typedef struct PlotImage {
    uint32_t *px;     /* [h][stride / 4]: 0xAARRGGBB in native byte order, opaque */
    int w, h, stride; /* stride in bytes */
} PlotImage;

/* Render into *im: start from PlotImage im = {0}; an image of the right size is reused,
 * otherwise (re)allocated. Free with plot_image_free. */
int plot_figure_render(PlotImage *im, const char *title, const PlotPanel *panels, int npanels,
                       int ncols, int width, int height, char *err, size_t errlen);
int plot_heatmap_render(PlotImage *im, const char *title, const char *xlabel,
                        const char *const *row_labels, int rows, const double *x, int cols,
                        const double *values, int logscale, char *err, size_t errlen);
int plot_filmstrip_render(PlotImage *im, const PlotFilmstrip *fs, char *err, size_t errlen);
void plot_image_free(PlotImage *im);
/* The pixels as [h][w][3] RGB. */
void plot_image_rgb(const PlotImage *im, unsigned char *rgb);

/* ---- provenance: what made a figure ---- */

/* Set (value not NULL) or remove (NULL) one item of provenance: key is a PNG text keyword
 * (1-79 printable ASCII characters: "Command", "Seed", "Commit", "BLAS"). Every PNG this
 * process writes afterwards carries the items, in the order first set, in a footer under
 * the figure ("Key: value", wrapped) and as text chunks after IHDR (tEXt, or iTXt when the
 * value is not ASCII). At most 8 keys; -1 for a bad key or a ninth. The render functions
 * (the live window) draw no footer. */
int plot_provenance(const char *key, const char *value);

/* ---- helpers (also used by tests) ---- */

/* 1 when the panel's y axis is drawn on a log scale: PLOT_LOGY_ON, or PLOT_LOGY_AUTO
 * and the finite positive values of the series (y, lo, hi) span more than two decades and
 * none is negative. Histogram counts are log only when forced; a field panel never is. */
int plot_choose_logy(const PlotPanel *panel);

/* 1-2-5 tick values (k * {1,2,5} * 10^e) inside [lo, hi], first and last within one
 * step of the ends; at most maxticks of them unless that would leave fewer than two.
 * Writes up to cap values to out and returns how many (0 when lo >= hi). */
int plot_ticks(double lo, double hi, int maxticks, double *out, int cap);

/* Colour-scale range of a field: the finite values' min and max (positive ones on a
 * log scale). Returns 0 when there is none. */
int plot_field_range(const PlotField *f, double *lo, double *hi);

#endif
