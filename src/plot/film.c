/* film.c: a filmstrip, a grid of small drawings (frames of a simulation, say), each
 * drawn by the caller's callback through the PlotDraw API in the cell's own
 * coordinates (a view rectangle, y up, aspect kept), with a caption under each.
 * Callers never touch cairo. Leaves to others: what a frame shows. */
#include <math.h>
#include <stdlib.h>

#include "plot_internal.h"

struct PlotDraw {
    cairo_t *cr;
    Canvas *cv;
    cairo_matrix_t view; /* cell units (y up) to pixels */
};

/* The path is built in the cell's units, then filled or stroked (width_px > 0) in pixels. */
static cairo_t *in_view(PlotDraw *d) {
    cairo_set_matrix(d->cr, &d->view);
    return d->cr;
}

static void paint(PlotDraw *d, PlotColor c, double width_px) {
    cairo_identity_matrix(d->cr);
    set_colour(d->cr, c, 1);
    if (width_px > 0)
        cairo_set_line_width(d->cr, width_px), cairo_stroke(d->cr);
    else
        cairo_fill(d->cr);
}

void plot_draw_line(PlotDraw *d, double x0, double y0, double x1, double y1, double width_px,
                    PlotColor c) {
    cairo_move_to(in_view(d), x0, y0);
    cairo_line_to(d->cr, x1, y1);
    paint(d, c, width_px);
}

void plot_draw_rect(PlotDraw *d, double x0, double y0, double x1, double y1, PlotColor fill) {
    cairo_rectangle(in_view(d), x0, y0, x1 - x0, y1 - y0);
    paint(d, fill, 0);
}

void plot_draw_rotated_rect(PlotDraw *d, double cx, double cy, double w, double h, double angle,
                            PlotColor fill) {
    cairo_translate(in_view(d), cx, cy);
    cairo_rotate(d->cr, angle); /* counter-clockwise: y is up */
    cairo_rectangle(d->cr, -w / 2, -h / 2, w, h);
    paint(d, fill, 0);
}

void plot_draw_circle(PlotDraw *d, double cx, double cy, double r, PlotColor fill) {
    cairo_new_sub_path(in_view(d));
    cairo_arc(d->cr, cx, cy, fabs(r), 0, 2 * M_PI);
    paint(d, fill, 0);
}

void plot_draw_text(PlotDraw *d, double x, double y, double halign, double size_px, PlotColor c,
                    const char *s) {
    cairo_user_to_device(in_view(d), &x, &y);
    cairo_identity_matrix(d->cr);
    text_draw(d->cv, s, size_px, x, y, halign, c);
}

#define CAPTION_H 24

int plot_filmstrip_render(PlotImage *im, const PlotFilmstrip *fs, char *err, size_t errlen) {
    if (!fs || fs->ncells < 1 || fs->ncells > 10000 || !fs->draw || !(fs->view[1] > fs->view[0]) ||
        !(fs->view[3] > fs->view[2]))
        return set_err(err, errlen, "plot_filmstrip: need 1..10000 cells, a draw callback and a "
                                    "view with xmin < xmax, ymin < ymax");
    int cols = fs->ncols > 0 ? imin(fs->ncols, fs->ncells) : imin(fs->ncells, 6);
    int rows = (fs->ncells + cols - 1) / cols, gap = 8, top = fs->title && *fs->title ? 44 : gap;
    int cw = fs->cell_w > 0 ? fs->cell_w : 200, ch = fs->cell_h > 0 ? fs->cell_h : 150;
    int caph = fs->captions ? CAPTION_H : 0;
    long w = gap + (long)cols * (cw + gap), h = top + (long)rows * (ch + caph + gap);
    if (w > MAX_SIDE || h > MAX_SIDE)
        return set_err(err, errlen, "plot_filmstrip: %d cells of %dx%d make a %ldx%ld canvas "
                                    "(max %d)", fs->ncells, cw, ch, w, h, MAX_SIDE);
    Canvas cv;
    if (canvas_begin(&cv, im, (int)w, (int)h, err, errlen)) return -1;
    text_draw(&cv, fs->title, FONT_FIGTITLE, w / 2.0, 30, 0.5, C_INK);
    double vw = fs->view[1] - fs->view[0], vh = fs->view[3] - fs->view[2];
    double sx = fmin(cw / vw, ch / vh);
    for (int i = 0; i < fs->ncells; i++) {
        Rect r =
            rect_make(gap + (i % cols) * (cw + gap), top + (i / cols) * (ch + caph + gap), cw, ch);
        PlotDraw d = {cv.cr, &cv, {sx, 0, 0, -sx, r.x0 + (cw - sx * vw) / 2 - sx * fs->view[0],
                                   r.y1 - (ch - sx * vh) / 2 + sx * fs->view[2]}};
        cairo_save(cv.cr);
        clip_to(cv.cr, r);
        fs->draw(&d, i, fs->arg);
        cairo_restore(cv.cr);
        frame_rect(&cv, r, C_LEGEND_EDGE);
        if (fs->captions && fs->captions[i])
            text_draw(&cv, fs->captions[i], FONT_NOTE, (r.x0 + r.x1) / 2.0, r.y1 + 17, 0.5, C_INK);
    }
    return canvas_end(&cv, 0, err, errlen);
}

int plot_filmstrip(const char *path, const PlotFilmstrip *fs, char *err, size_t errlen) {
    PlotImage im = {0};
    int rc = plot_filmstrip_render(&im, fs, err, errlen);
    return image_png_free(path, &im, rc, err, errlen);
}
