/* surface.c: the canvas every figure is drawn on: a cairo ARGB32 image surface
 * over a PlotImage's pixels, its primitives (crisp 1-px rules, dashes, markers,
 * the non-finite cross), text in DejaVu Sans through cairo-ft (FreeType face
 * loaded once), and the PNG writer (stb_image_write; the provenance footer and text
 * chunks come from provenance.c).
 * Series colours are the Okabe-Ito colour-blind-safe palette (Okabe & Ito 2008). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairo-ft.h>
#include <ft2build.h>
#include FT_FREETYPE_H
/* compiled here and nowhere else; a system header (libstb-dev), its warnings are not ours */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "plot_internal.h"

#define FONT_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf" /* fonts-dejavu-core */

int set_err(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen > 0) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Okabe & Ito (2008), yellow left out (too faint on white), then four more distinct
 * hues (purple, brown, grey, olive) so an 8-10 run ablation does not reuse a colour. */
static const PlotColor PALETTE[] = {{0, 114, 178, 255},   {230, 159, 0, 255},   {0, 158, 115, 255},
                                    {204, 121, 167, 255}, {86, 180, 233, 255},  {213, 94, 0, 255},
                                    {0, 0, 0, 255},       {117, 112, 179, 255}, {140, 86, 75, 255},
                                    {127, 127, 127, 255}, {188, 189, 34, 255}};

PlotColor plot_palette(int i) {
    const int n = (int)(sizeof PALETTE / sizeof PALETTE[0]);
    return PALETTE[((i % n) + n) % n];
}

/* ---- canvas ---- */

static cairo_font_face_t *g_font;
static pthread_once_t g_font_once = PTHREAD_ONCE_INIT;

static void font_load_once(void) {
    static FT_Library lib; /* both kept for the process: the cairo font face uses them */
    static FT_Face face;
    if (!FT_Init_FreeType(&lib) && !FT_New_Face(lib, FONT_PATH, 0, &face))
        g_font = cairo_ft_font_face_create_for_ft_face(face, 0);
}

void plot_image_free(PlotImage *im) {
    free(im->px);
    *im = (PlotImage){0};
}

static int image_alloc(PlotImage *im, int w, int h) {
    if (im->px && im->w == w && im->h == h) return 0;
    plot_image_free(im);
    int stride = cairo_format_stride_for_width(CAIRO_FORMAT_ARGB32, w);
    if (stride <= 0 || !(im->px = malloc((size_t)stride * (size_t)h))) return -1;
    im->w = w, im->h = h, im->stride = stride;
    return 0;
}

static int canvas_init(Canvas *cv, cairo_surface_t *s, int w, int h) {
    *cv = (Canvas){s, cairo_create(s), w, h};
    cairo_set_line_join(cv->cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cv->cr, CAIRO_LINE_CAP_ROUND);
    return cairo_status(cv->cr) == CAIRO_STATUS_SUCCESS ? 0 : -1;
}

int canvas_begin(Canvas *cv, PlotImage *im, int w, int h, char *err, size_t errlen) {
    *cv = (Canvas){0};
    pthread_once(&g_font_once, font_load_once);
    if (!g_font)
        return set_err(err, errlen, "cannot load the font %s (install Debian's fonts-dejavu-core)",
                       FONT_PATH);
    if (w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE || image_alloc(im, w, h))
        return set_err(err, errlen, "plot: cannot make a %dx%d canvas (1..%d per side, memory)",
                       w, h, MAX_SIDE);
    canvas_init(cv, cairo_image_surface_create_for_data((unsigned char *)im->px,
                                                        CAIRO_FORMAT_ARGB32, w, h, im->stride),
                w, h);
    cairo_set_source_rgb(cv->cr, 1, 1, 1);
    cairo_paint(cv->cr);
    cairo_set_font_face(cv->cr, g_font);
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_SLIGHT);
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_set_font_options(cv->cr, fo);
    cairo_font_options_destroy(fo);
    return 0;
}

int canvas_mask(Canvas *cv, int w, int h) {
    int rc = canvas_init(cv, cairo_image_surface_create(CAIRO_FORMAT_A8, w, h), w, h);
    cairo_set_antialias(cv->cr, CAIRO_ANTIALIAS_NONE); /* where, not how smooth */
    return rc;
}

int canvas_end(Canvas *cv, int rc, char *err, size_t errlen) {
    if (!cv->cr) return rc;
    cairo_status_t st = cairo_status(cv->cr);
    if (rc == 0 && st != CAIRO_STATUS_SUCCESS)
        rc = set_err(err, errlen, "plot: cairo: %s", cairo_status_to_string(st));
    cairo_destroy(cv->cr);
    cairo_surface_destroy(cv->s); /* flushes it */
    *cv = (Canvas){0};
    return rc;
}

long mask_count(const Canvas *m, Rect r, long *refs) {
    cairo_surface_flush(m->s);
    const unsigned char *a = cairo_image_surface_get_data(m->s);
    int stride = cairo_image_surface_get_stride(m->s);
    long n = 0, nr = 0;
    for (int y = imax(r.y0, 0); y < imin(r.y1, m->h); y++)
        for (int x = imax(r.x0, 0); x < imin(r.x1, m->w); x++) {
            unsigned char v = a[(size_t)y * stride + x];
            n += v > 1, nr += v == 1;
        }
    if (refs) *refs = nr;
    return n;
}

/* ---- primitives ---- */

void clip_to(cairo_t *cr, Rect r) {
    cairo_rectangle(cr, r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0);
    cairo_clip(cr);
}

void fill_rect(Canvas *cv, Rect r, PlotColor c, double alpha) {
    if (r.x1 <= r.x0 || r.y1 <= r.y0) return;
    cairo_rectangle(cv->cr, r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0);
    set_colour(cv->cr, c, alpha);
    cairo_fill(cv->cr);
}

void frame_rect(Canvas *cv, Rect r, PlotColor c) {
    cairo_rectangle(cv->cr, r.x0 - 0.5, r.y0 - 0.5, r.x1 - r.x0 + 1, r.y1 - r.y0 + 1);
    stroke_halo(cv->cr, c, 1, 0);
}

void dashed_line(cairo_t *cr, double ax, double ay, double bx, double by, double on, double off,
                 PlotColor c) {
    double d[2] = {on, off};
    cairo_save(cr);
    cairo_set_dash(cr, d, 2, 0);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
    cairo_move_to(cr, ax, ay);
    cairo_line_to(cr, bx, by);
    stroke_halo(cr, c, 1.8, 0);
    cairo_restore(cr);
}

void stroke_halo(cairo_t *cr, PlotColor c, double width, double halo) {
    if (halo > 0) {
        cairo_set_line_width(cr, halo);
        set_colour(cr, C_WHITE, 1);
        cairo_stroke_preserve(cr);
    }
    cairo_set_line_width(cr, width);
    set_colour(cr, c, 1);
    cairo_stroke(cr);
}

/* An x (plus = 0) or a + of half-size h centred on (x, y). */
static void cross_path(cairo_t *cr, double x, double y, double h, int plus) {
    double a = plus ? 0 : h;
    cairo_move_to(cr, x - h, y - a);
    cairo_line_to(cr, x + h, y + a);
    cairo_move_to(cr, x - a, y + h);
    cairo_line_to(cr, x + a, y - h);
}

void draw_marker(cairo_t *cr, int m, double x, double y, double r, PlotColor c, int edge) {
    /* square, triangle and diamond: vertices in radii */
    static const double poly[][4][2] = {
        [PLOT_MARK_SQUARE] = {{-.85, -.85}, {.85, -.85}, {.85, .85}, {-.85, .85}},
        [PLOT_MARK_TRIANGLE] = {{0, -1.2}, {1.1, .8}, {-1.1, .8}, {0, -1.2}},
        [PLOT_MARK_DIAMOND] = {{0, -1.25}, {1, 0}, {0, 1.25}, {-1, 0}}};
    if (m == PLOT_MARK_CROSS || m == PLOT_MARK_PLUS) {
        cross_path(cr, x, y, m == PLOT_MARK_CROSS ? 0.8 * r : 1.1 * r, m == PLOT_MARK_PLUS);
        stroke_halo(cr, c, 2.2, edge ? 4.5 : 0);
        return;
    }
    cairo_new_sub_path(cr); /* no current point: the first line_to starts the shape */
    if (m >= PLOT_MARK_SQUARE && m <= PLOT_MARK_DIAMOND)
        for (int i = 0; i < 4; i++) cairo_line_to(cr, x + r * poly[m][i][0], y + r * poly[m][i][1]);
    else
        cairo_arc(cr, x, y, r, 0, 2 * M_PI);
    cairo_close_path(cr);
    set_colour(cr, c, 1);
    if (!edge) {
        cairo_fill(cr);
        return;
    }
    cairo_fill_preserve(cr);
    stroke_halo(cr, C_WHITE, 1.5, 0);
}

void draw_cross(cairo_t *cr, double x, double y, double h) {
    cross_path(cr, x, y, h, 0);
    stroke_halo(cr, C_RED, 3.0, 6.5);
}

/* ---- text ---- */

double text_width(Canvas *cv, const char *s, double px) {
    if (!s || !*s) return 0;
    cairo_text_extents_t e;
    cairo_set_font_size(cv->cr, px);
    cairo_text_extents(cv->cr, s, &e);
    return e.x_advance;
}

void text_draw(Canvas *cv, const char *s, double px, double x, double ybase, double halign,
               PlotColor c) {
    if (!s || !*s) return;
    cairo_move_to(cv->cr, x - halign * text_width(cv, s, px), ybase);
    set_colour(cv->cr, c, 1);
    cairo_show_text(cv->cr, s);
}

void text_draw_up(Canvas *cv, const char *s, double px, double xbase, double yc, PlotColor c) {
    cairo_save(cv->cr);
    cairo_translate(cv->cr, xbase, yc);
    cairo_rotate(cv->cr, -M_PI / 2);
    text_draw(cv, s, px, 0, 0, 0.5, c);
    cairo_restore(cv->cr);
}

/* ---- output ---- */

/* Safe in place (rgb == im->px): each pixel is read whole before its 3 bytes are
 * written, and they never reach past it. */
void plot_image_rgb(const PlotImage *im, unsigned char *rgb) {
    for (int y = 0; y < im->h; y++) {
        const uint32_t *row =
            (const uint32_t *)((const unsigned char *)im->px + (size_t)y * (size_t)im->stride);
        for (int x = 0; x < im->w; x++, rgb += 3) {
            uint32_t p = row[x];
            rgb[0] = (unsigned char)(p >> 16), rgb[1] = (unsigned char)(p >> 8),
            rgb[2] = (unsigned char)p;
        }
    }
}

/* The encoder's output, gathered in memory so the text chunks can follow IHDR. */
typedef struct PngBuf {
    unsigned char *b;
    size_t n, cap;
    int oom;
} PngBuf;

static void png_sink(void *ctx, void *data, int size) {
    PngBuf *pb = ctx;
    if (pb->oom || size <= 0) return;
    if (pb->n + (size_t)size > pb->cap) {
        size_t cap = (pb->n + (size_t)size) * 2;
        unsigned char *nb = realloc(pb->b, cap);
        if (!nb) {
            pb->oom = 1;
            return;
        }
        pb->b = nb, pb->cap = cap;
    }
    memcpy(pb->b + pb->n, data, (size_t)size);
    pb->n += (size_t)size;
}

/* im (with the provenance footer, when set) as RGB (turned in place: no second buffer) to
 * "<path>.tmp": signature and IHDR, the provenance text chunks, the rest; then renamed to
 * path. */
static int png_write(const char *path, PlotImage *im, char *err, size_t errlen) {
    char tmp[4096];
    if (!path || !*path || snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return set_err(err, errlen, "plot: no output path, or one too long");
    if (prov_footer(im, err, errlen)) return -1;
    plot_image_rgb(im, (unsigned char *)im->px);
    /* the "sub" filter on every row and the encoder's shortest match search: on figures
     * (mostly flat colour) half the time of its defaults for files ~1% larger */
    stbi_write_force_png_filter = 1;
    stbi_write_png_compression_level = 5;
    PngBuf pb = {0};
    int ok = stbi_write_png_to_func(png_sink, &pb, im->w, im->h, 3, im->px, im->w * 3);
    /* 8 signature bytes, then IHDR: length 13, type, 13 bytes, CRC = 33 bytes */
    ok = ok && !pb.oom && pb.n > 33 && !memcmp(pb.b + 12, "IHDR", 4);
    if (!ok) {
        free(pb.b);
        return set_err(err, errlen, "cannot write plot %s: PNG encoder failed", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(pb.b);
        return set_err(err, errlen,
                       "cannot write plot %s: %s (does the output folder exist and is it "
                       "writable?)", tmp, strerror(errno));
    }
    errno = 0;
    ok = fwrite(pb.b, 1, 33, f) == 33 && prov_chunks(f) == 0 &&
         fwrite(pb.b + 33, 1, pb.n - 33, f) == pb.n - 33;
    free(pb.b);
    ok = ok && fflush(f) == 0 && !ferror(f);
    int e = errno;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
    if (ok) return 0;
    remove(tmp);
    return set_err(err, errlen, "cannot write plot %s: %s", path,
                   e ? strerror(e) : "write failed");
}

int image_png_free(const char *path, PlotImage *im, int rc, char *err, size_t errlen) {
    if (rc == 0) rc = png_write(path, im, err, errlen);
    plot_image_free(im);
    return rc;
}
