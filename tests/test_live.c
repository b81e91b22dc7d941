/* test_live.c: the live window, for real. `make test` runs the tests under
 * xvfb-run with Xvfb's screen kept in a file (-fbdir: an XWD image of the
 * screen, CLIPLAB_XVFB_SCREEN), so a screenshot is read from the X server's
 * own framebuffer, outside SDL.
 *  - the window opens, draws frames, and what is on the screen is exactly the
 *    frame the plotting module rendered;
 *  - closing the window leaves the caller running; --live's hold waits for it;
 *  - ./train --live-close trains, draws frames, writes the PNGs, exits 0;
 *  - closing the window at random moments (from another thread in-process,
 *    and as a window manager does, with a WM_DELETE_WINDOW message to
 *    ./train --live) never stops, kills or hangs the training.
 * Every wait is for an event (a frame, the window's state, a process's
 * exit) with a deadline far beyond what an idle machine needs, so the test
 * passes with every core busy. One Test does it all, so no two windows
 * share the screen. A build without
 * SDL2 (make LIVE=0) checks instead that --live says so and how to get it. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#ifdef CLIPLAB_HAVE_SDL
#include <X11/Xatom.h>
#include <X11/Xlib.h>
#endif

#include "cli.h"
#include "live.h"
#include "plot.h"
#include "tskip.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the figure the window shows: a curve that moves with a counter ---- */

typedef struct {
    pthread_mutex_t mu;
    int phase;          /* the "data": bumped by the test */
    PlotImage last;     /* copy of the last frame rendered */
    int rendered;
} Src;

static int render_src(PlotImage *im, int w, int h, void *arg) {
    Src *s = arg;
    pthread_mutex_lock(&s->mu);
    int phase = s->phase;
    pthread_mutex_unlock(&s->mu);
    static double x[200], y[200];
    for (int i = 0; i < 200; i++) x[i] = i, y[i] = sin(i / 15.0 + phase);
    PlotSeries sr = {.label = "sin", .x = x, .y = y, .n = 200};
    PlotPanel p = {.title = "live test", .xlabel = "step", .ylabel = "y", .series = &sr,
                   .nseries = 1};
    char err[256];
    int rc = plot_figure_render(im, "live window test", &p, 1, 1, w, h, err, sizeof err);
    if (rc != 0) return rc;
    pthread_mutex_lock(&s->mu);
    if (s->last.w != im->w || s->last.h != im->h) {
        free(s->last.px);
        s->last = *im;
        s->last.px = malloc((size_t)im->h * (size_t)im->stride);
    }
    memcpy(s->last.px, im->px, (size_t)im->h * (size_t)im->stride);
    s->rendered++;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ---- the screen, from Xvfb's XWD file ---- */

typedef struct {
    int w, h, bpp, bpl, msb;
    uint32_t rmask, gmask, bmask;
    unsigned char *data;
    unsigned char *file;
} XwdScreen;

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int read_screen(XwdScreen *sc) {
    const char *path = getenv("CLIPLAB_XVFB_SCREEN");
    cr_assert(path && *path, "CLIPLAB_XVFB_SCREEN is not set: run through make test (xvfb-run "
                             "-fbdir)");
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open the Xvfb screen file %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    sc->file = malloc((size_t)n);
    cr_assert_eq(fread(sc->file, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    const unsigned char *h = sc->file;
    uint32_t header = be32(h), ncolors = be32(h + 4 * 19);
    cr_assert_eq(be32(h + 4), 7u, "XWD version");
    cr_assert_eq(be32(h + 8), 2u, "ZPixmap");
    sc->w = (int)be32(h + 16), sc->h = (int)be32(h + 20);
    sc->msb = be32(h + 28) == 1; /* byte_order: 1 = MSBFirst */
    sc->bpp = (int)be32(h + 44), sc->bpl = (int)be32(h + 48);
    sc->rmask = be32(h + 56), sc->gmask = be32(h + 60), sc->bmask = be32(h + 64);
    cr_assert_eq(sc->bpp, 32, "Xvfb depth 24 stores 32 bits a pixel");
    sc->data = sc->file + header + 12 * ncolors;
    cr_assert((long)(header + 12 * ncolors) + (long)sc->bpl * sc->h <= n, "short XWD file");
    return 0;
}

static int mask_shift(uint32_t m) {
    int s = 0;
    while (m && !(m & 1)) m >>= 1, s++;
    return s;
}

static void screen_rgb(const XwdScreen *sc, int x, int y, unsigned char rgb[3]) {
    const unsigned char *p = sc->data + (size_t)y * sc->bpl + (size_t)x * 4;
    uint32_t v = sc->msb ? be32(p) : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
                                         (uint32_t)p[1] << 8 | p[0];
    rgb[0] = (unsigned char)((v & sc->rmask) >> mask_shift(sc->rmask));
    rgb[1] = (unsigned char)((v & sc->gmask) >> mask_shift(sc->gmask));
    rgb[2] = (unsigned char)((v & sc->bmask) >> mask_shift(sc->bmask));
}

/* Where the frame (rgb, w x h) sits on the screen, matched in full; 1 if found. */
static int find_frame(const XwdScreen *sc, const unsigned char *rgb, int w, int h, long *mismatch) {
    unsigned char px[3];
    *mismatch = -1;
    for (int oy = 0; oy + h <= sc->h; oy++)
        for (int ox = 0; ox + w <= sc->w; ox++) {
            int row_ok = 1; /* the first row first, to rule positions out fast */
            for (int x = 0; x < w && row_ok; x++) {
                screen_rgb(sc, ox + x, oy, px);
                row_ok = !memcmp(px, rgb + (size_t)x * 3, 3);
            }
            if (!row_ok) continue;
            long bad = 0;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    screen_rgb(sc, ox + x, oy + y, px);
                    bad += memcmp(px, rgb + ((size_t)y * w + x) * 3, 3) != 0;
                }
            *mismatch = bad;
            if (bad == 0) return 1;
        }
    return 0;
}

static void *close_later(void *arg) {
    usleep(300000);
    live_close_window(arg);
    return NULL;
}

/* ---- closing at random moments ---- */
#ifdef CLIPLAB_HAVE_SDL

typedef struct {
    Live *lv;
    pthread_mutex_t mu;
    int stop;
    long steps;
} Loop;

/* What a training loop does with the window: work, poke, go on. */
static void *loop_main(void *arg) {
    Loop *l = arg;
    volatile double sink = 0;
    for (;;) {
        for (int i = 0; i < 20000; i++) sink += sin(i * 1e-3);
        live_poke(l->lv);
        pthread_mutex_lock(&l->mu);
        int stop = l->stop;
        l->steps++;
        pthread_mutex_unlock(&l->mu);
        if (stop) return NULL;
    }
}

static long loop_steps(Loop *l) {
    pthread_mutex_lock(&l->mu);
    long s = l->steps;
    pthread_mutex_unlock(&l->mu);
    return s;
}

/* The training loop ends; only then may the window be stopped (live_stop frees
 * the Live the loop pokes). */
static void loop_end(Loop *l, pthread_t loop) {
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_mutex_unlock(&l->mu);
    pthread_join(loop, NULL);
}

static unsigned lcg(unsigned *s) { return (*s = *s * 1103515245u + 12345u) >> 8; }

/* A user clicking close again and again while the window goes away. */
static void *close_now(void *arg) {
    for (int i = 0; i < 200; i++) live_close_window(arg);
    return NULL;
}

/* Each round: a window, a loop that trains and pokes, a close at a random
 * moment (0-400 ms in: while the first frames are drawn, between frames,
 * during one), sometimes many times or from two threads at once, sometimes at
 * the same moment as the stop; the loop must go on after the close and the
 * stop (held or not) must return. */
static void random_closes(Src *src) {
    unsigned seed = 2026;
    char err[512];
    for (int round = 0; round < 24; round++) {
        Loop l = {0};
        pthread_mutex_init(&l.mu, NULL);
        l.lv = live_start("cliplab test", 400, 300, 50.0, render_src, src, err, sizeof err);
        cr_assert(l.lv, "round %d: %s", round, err);
        pthread_t loop, other;
        pthread_create(&loop, NULL, loop_main, &l);
        usleep(lcg(&seed) % 400000);
        int kind = (int)(lcg(&seed) % 4);
        if (kind == 1) close_now(l.lv);                   /* many times */
        if (kind == 2) pthread_create(&other, NULL, close_now, l.lv); /* two threads at once */
        if (kind == 3) {                                  /* close and stop together */
            loop_end(&l, loop); /* as in ./train: the loop ends before the window stops */
            pthread_create(&other, NULL, close_now, l.lv);
            live_stop(l.lv, (int)(lcg(&seed) % 2), NULL);
            pthread_join(other, NULL);
        } else {
            live_close_window(l.lv);
            if (kind == 2) pthread_join(other, NULL);
            double t0 = now_s();
            while (live_is_open(l.lv) && now_s() - t0 < 60) usleep(5000);
            cr_assert(!live_is_open(l.lv), "round %d: the window did not close", round);
            long at = loop_steps(&l); /* the loop trains on after the close */
            t0 = now_s();
            while (loop_steps(&l) < at + 20 && now_s() - t0 < 60) usleep(5000);
            cr_assert(loop_steps(&l) >= at + 20, "round %d: training stopped with the window", round);
            loop_end(&l, loop);
            live_stop(l.lv, 1, NULL); /* held: returns, the window is closed */
        }
        cr_assert(l.steps > 0);
        pthread_mutex_destroy(&l.mu);
    }
}

/* The window manager's close: WM_DELETE_WINDOW to every top-level window
 * titled `title`, on this test's own X connection; a window already gone
 * (BadWindow) is ignored here, as a window manager does. The number sent. */
static int ignore_x_error(Display *d, XErrorEvent *e) { return (void)d, (void)e, 0; }

/* 1 when a window titled `title` is mapped on the screen. */
static Display *x_open(void) {
    Display *d = NULL; /* Xvfb refuses a connection now and then (EAGAIN): again */
    for (int i = 0; i < 50 && !(d = XOpenDisplay(NULL)); i++) usleep(20000);
    cr_assert(d, "XOpenDisplay");
    return d;
}

static int live_window_shown(const char *title) {
    Display *d = x_open();
    XSetErrorHandler(ignore_x_error);
    Window root = DefaultRootWindow(d), r, p, *kids = NULL;
    unsigned nk = 0;
    int shown = 0;
    if (XQueryTree(d, root, &r, &p, &kids, &nk)) {
        for (unsigned i = 0; i < nk && !shown; i++) {
            char *name = NULL;
            XWindowAttributes wa;
            if (XFetchName(d, kids[i], &name) && name && !strcmp(name, title) &&
                XGetWindowAttributes(d, kids[i], &wa) && wa.map_state == IsViewable)
                shown = 1;
            if (name) XFree(name);
        }
        if (kids) XFree(kids);
    }
    XCloseDisplay(d);
    return shown;
}

static int wm_close(const char *title) {
    Display *d = x_open();
    XSetErrorHandler(ignore_x_error);
    Window root = DefaultRootWindow(d), r, p, *kids = NULL;
    unsigned nk = 0;
    int sent = 0;
    Atom protocols = XInternAtom(d, "WM_PROTOCOLS", False);
    Atom del = XInternAtom(d, "WM_DELETE_WINDOW", False);
    if (XQueryTree(d, root, &r, &p, &kids, &nk)) {
        for (unsigned i = 0; i < nk; i++) {
            char *name = NULL;
            if (XFetchName(d, kids[i], &name) && name && !strcmp(name, title)) {
                XEvent ev = {0};
                ev.xclient.type = ClientMessage;
                ev.xclient.window = kids[i];
                ev.xclient.message_type = protocols;
                ev.xclient.format = 32;
                ev.xclient.data.l[0] = (long)del;
                ev.xclient.data.l[1] = CurrentTime;
                XSendEvent(d, kids[i], False, NoEventMask, &ev);
                sent++;
            }
            if (name) XFree(name);
        }
        if (kids) XFree(kids);
    }
    XSync(d, False);
    XCloseDisplay(d);
    return sent;
}

/* ./train --live (which holds the window after training until it is
 * closed), closed at a random moment after its window appears: while it
 * trains, while it compares, while it holds. Every run ends, exit 0, with
 * all its steps and its PNGs. */
static void train_closed_by_the_user(const char *cwd) {
    unsigned seed = 7;
    for (int round = 0; round < 6; round++) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "cd %s && rm -rf runs && exec %s %s/configs/rnn_clip.ini:run.name=a "
                 "%s/configs/rnn_noclip.ini:run.name=b train.steps=300 train.quiet=true --live "
                 ">out.txt 2>&1", cli_dir, cli_bin, cwd, cwd);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
            _exit(127);
        }
        /* the window appears (an event); then a random wait; then the close,
         * repeated until the process ends (a close may land before SDL
         * handles the window's first events: a user would click again) */
        double t0 = now_s(), delay = (double)(lcg(&seed) % 1500) / 1000.0;
        int st = 0, shown = 0;
        pid_t got = 0;
        while ((got = waitpid(pid, &st, WNOHANG)) == 0 && now_s() - t0 < 200) {
            usleep(20000);
            if (!shown && live_window_shown("cliplab: live")) shown = 1, t0 = now_s();
            if (shown && now_s() - t0 >= delay) wm_close("cliplab: live"), delay += 0.5;
        }
        if (got == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("round %d: ./train --live did not end after the window was closed", round);
        }
        char path[512], out[8192];
        snprintf(path, sizeof path, "%s/out.txt", cli_dir);
        FILE *f = fopen(path, "r");
        cr_assert(f);
        out[fread(out, 1, sizeof out - 1, f)] = '\0';
        fclose(f);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d: %s", round, out);
        cr_assert(strstr(out, "frames drawn"), "round %d: %s", round, out);
        cr_assert(cli_exists("runs/a/loss.png") && cli_exists("runs/b/loss.png") &&
                  cli_exists("runs/compare_a_vs_b.png"), "round %d: %s", round, out);
        snprintf(path, sizeof path, "%s/runs/a/metrics.csv", cli_dir);
        f = fopen(path, "r");
        cr_assert(f);
        char line[4096], last[4096] = "";
        while (fgets(line, sizeof line, f)) snprintf(last, sizeof last, "%s", line);
        fclose(f);
        cr_assert(!strncmp(last, "299,", 4), "round %d: the run stopped early: %s", round, last);
    }
}
#else
static void random_closes(Src *src) { (void)src; }
static void train_closed_by_the_user(const char *cwd) { (void)cwd; }
#endif

Test(live, window_draws_the_rendered_frame_closes_and_train_runs_live, .init = cli_mkdir,
     .fini = cli_rmdir, .timeout = 600) {
    char out[8192], args[1024], cwd[256];
    cr_assert(getcwd(cwd, sizeof cwd));
    if (!live_supported()) {
        snprintf(args, sizeof args, "%s/configs/cliff_noclip.ini --live", cwd);
        int rc = cli_run(args, out, sizeof out, 1);
        cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
        cr_assert(strstr(out, "no live plots") && strstr(out, "libsdl2-dev"), "%s", out);
        cr_assert(!cli_exists("runs"), "nothing is trained or written");
        tskip("built without SDL2, so the live window is not tested: `make deps` installs "
              "libsdl2-dev; then `make clean && make test`");
    }
    cr_assert(getenv("DISPLAY"), "no DISPLAY: make test runs the tests under xvfb-run");

    /* 1. the window shows exactly the rendered frame */
    double t0;
    Src src = {.phase = 0};
    pthread_mutex_init(&src.mu, NULL);
    char err[512];
    Live *lv = live_start("cliplab test", 640, 480, 20.0, render_src, &src, err, sizeof err);
    cr_assert(lv, "live_start: %s", err);
    for (int k = 1; k <= 3; k++) { /* new data three times: three new frames */
        double t1;
        pthread_mutex_lock(&src.mu);
        src.phase = k;
        pthread_mutex_unlock(&src.mu);
        long before = live_frames(lv);
        live_poke(lv);
        /* the window may spend 4% of the CPU the rest of the process spends:
         * work, as a training loop would, until the frame comes */
        t1 = now_s();
        volatile double sink = 0;
        while (live_frames(lv) <= before && now_s() - t1 < 100)
            for (int i = 0; i < 100000; i++) sink += sin(i * 1e-3);
        cr_assert(live_frames(lv) > before, "no frame drawn after a poke (%ld)", before);
    }
    cr_assert(live_is_open(lv));
    pthread_mutex_lock(&src.mu);
    int fw = src.last.w, fh = src.last.h;
    unsigned char *rgb = malloc((size_t)fw * fh * 3);
    plot_image_rgb(&src.last, rgb);
    pthread_mutex_unlock(&src.mu);
    cr_assert(fw == 640 && fh == 480, "frame %dx%d", fw, fh);
    XwdScreen sc;
    long mismatch = -1;
    int found = 0;
    t0 = now_s(); /* until Xvfb has painted the last frame */
    while (!found && now_s() - t0 < 60) {
        read_screen(&sc);
        found = find_frame(&sc, rgb, fw, fh, &mismatch);
        free(sc.file);
        if (!found) usleep(100000);
    }
    cr_assert(found, "the screen does not show the rendered frame (best placement: %ld of %d "
              "pixels differ; -1: its first row is nowhere)", mismatch, fw * fh);
    /* and it is not a blank that matches anything: the frame has the curve's colour */
    long coloured = 0;
    PlotColor pc = plot_palette(0);
    const unsigned char c0[3] = {pc.r, pc.g, pc.b};
    for (long i = 0; i < (long)fw * fh; i++) coloured += !memcmp(rgb + 3 * i, c0, 3);
    cr_assert(coloured > 200, "the frame has %ld curve pixels", coloured);

    /* 2. closing the window leaves the caller running; stop then returns at once */
    live_close_window(lv);
    t0 = now_s();
    while (live_is_open(lv) && now_s() - t0 < 60) usleep(10000);
    cr_assert(!live_is_open(lv), "the window did not close");
    long frames_closed = live_frames(lv);
    for (int i = 0; i < 1000; i++) live_poke(lv); /* the caller goes on poking: no block */
    usleep(100000);
    cr_assert_eq(live_frames(lv), frames_closed, "no frames after the window closed");
    long total;
    live_stop(lv, 1, &total); /* hold: the window is already closed, so no wait (a wait
                                 would never end: the test's timeout) */
    cr_assert(total >= 3, "%ld frames", total);

    /* 3. hold waits for the user: the window closes 0.3 s after live_stop(hold) */
    lv = live_start("cliplab test", 400, 300, 20.0, render_src, &src, err, sizeof err);
    cr_assert(lv, "%s", err);
    pthread_t th;
    t0 = now_s();
    pthread_create(&th, NULL, close_later, lv);
    live_stop(lv, 1, &total);
    double held = now_s() - t0;
    pthread_join(th, NULL);
    cr_assert(held >= 0.25, "live_stop(hold) returned after %.2f s, before the close", held);
    cr_assert(total >= 1);

    /* 3b. many closes at random moments while a loop trains and pokes */
    random_closes(&src);
    free(rgb);
    free(src.last.px);
    pthread_mutex_destroy(&src.mu);

    /* 4. ./train --live-close: trains, draws, writes the PNGs, exits 0 */
    snprintf(args, sizeof args, "%s/configs/rnn_clip.ini %s/configs/rnn_noclip.ini train.steps=400 "
             "train.quiet=true --live-close", cwd, cwd);
    int rc = cli_run(args, out, sizeof out, 1);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
    const char *fr = strstr(out, "live: ");
    long nf = 0;
    cr_assert(fr && sscanf(fr, "live: %ld frames drawn", &nf) == 1, "%s", out);
    cr_assert(nf >= 2, "%ld frames in two runs of 400 steps", nf);
    cr_assert(cli_exists("runs/rnn_clip,train.steps=400/loss.png") &&
              cli_exists("runs/rnn_noclip,train.steps=400/grad_norm.png"));
    cr_assert(cli_exists("runs/compare_rnn_clip,train.steps=400_vs_rnn_noclip,train.steps=400.png"));

    /* 5. ./train --live closed by the window manager at random moments */
    train_closed_by_the_user(cwd);
}

/* No display: --live is a clear error before anything is trained. */
Test(live, no_display_is_a_clear_error, .init = cli_mkdir, .fini = cli_rmdir) {
    if (!live_supported()) tskip("built without SDL2 (the test above covers the no-SDL build's message)");
    char out[4096], args[1024], cwd[256];
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(args, sizeof args, "%s/configs/cliff_noclip.ini --live", cwd);
    char cmd[4096], path[600];
    snprintf(cmd, sizeof cmd, "cd %s && env -u DISPLAY -u WAYLAND_DISPLAY -u SDL_VIDEODRIVER %s %s "
             ">out.txt 2>&1", cli_dir, cli_bin, args);
    int st = system(cmd);
    cr_assert(WIFEXITED(st));
    int rc = WEXITSTATUS(st);
    snprintf(path, sizeof path, "%s/out.txt", cli_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    out[fread(out, 1, sizeof out - 1, f)] = '\0';
    fclose(f);
    cr_assert_eq(rc, 2, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "--live: cannot open a window") && strstr(out, "xvfb-run"), "%s", out);
    cr_assert(!cli_exists("runs"), "nothing is trained or written");
}
