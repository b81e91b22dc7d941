/* live.c: the live window (see live.h). SDL2 when CLIPLAB_HAVE_SDL is defined
 * (the Makefile defines it when pkg-config finds sdl2), stubs otherwise.
 *
 * One thread owns SDL and is the only one to call it (another thread's
 * SDL_PushEvent races the window's destruction: see live_close_window): it
 * opens the window, handles its events, and when the
 * data changed and the rate allows, calls the render function into a
 * PlotImage (cairo ARGB32, which is SDL_PIXELFORMAT_ARGB8888) and copies it
 * onto the window's surface. Nothing here knows what the figure shows. */
#include "live.h"

#include <stdio.h>
#include <string.h>

const char *live_unsupported_message(void) {
    return "this build of ./train has no live plots: SDL2 was not found when it was built. "
           "Install it (make deps, or apt-get install libsdl2-dev), then rebuild (make clean && "
           "make). The PNGs are written without --live.";
}

#ifndef CLIPLAB_HAVE_SDL

int live_supported(void) { return 0; }

Live *live_start(const char *title, int w, int h, double fps, LiveRenderFn render, void *arg,
                 char *err, size_t errlen) {
    (void)title, (void)w, (void)h, (void)fps, (void)render, (void)arg;
    snprintf(err, errlen, "%s", live_unsupported_message());
    return NULL;
}
void live_poke(Live *lv) { (void)lv; }
int live_is_open(Live *lv) { return (void)lv, 0; }
long live_frames(Live *lv) { return (void)lv, 0; }
void live_close_window(Live *lv) { (void)lv; }
void live_stop(Live *lv, int hold, long *frames) {
    (void)lv, (void)hold;
    if (frames) *frames = 0;
}

#else

#ifdef CLIPLAB_HAVE_X11
#include <X11/Xlib.h>
#include <pthread.h>

/* Xlib's default error handler ends the process on any protocol error. SDL
 * 2.26 can still send its wake-up event to a window it has just destroyed
 * (BadWindow on X_SendEvent; seen about once in four window-manager closes on a
 * busy machine, tests/test_live.c): the window is gone, nothing is lost, and
 * the training must go on. Every other error goes to the handler before ours
 * (SDL installs its own on top of this one and calls it in turn). */
static XErrorHandler live_prev_x_handler;
static int live_x_error(Display *d, XErrorEvent *e) {
    if (e->error_code == BadWindow) return 0;
    return live_prev_x_handler ? live_prev_x_handler(d, e) : 0;
}
static void live_install_x_handler(void) { live_prev_x_handler = XSetErrorHandler(live_x_error); }
static void live_guard_x_errors(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, live_install_x_handler);
}
#else
static void live_guard_x_errors(void) {}
#endif

#include <SDL.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* Drawing may take this share of the CPU the rest of the process (training)
 * uses: on a machine where the process's CPU share is fixed (a busy one, with
 * the kernel's per-session autogroups) the training loop slows by about as
 * much, and the X server's copy of each frame costs about as much again. */
#define LIVE_CPU_SHARE 0.04

struct Live {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* shared, under mu */
    int started;       /* the thread finished opening the window (ok or not) */
    int ok;            /* it opened */
    int open;          /* the window is still open */
    int dirty;         /* new data since the last frame */
    int stop, hold;    /* live_stop asked; then wait for the user to close */
    int close_asked;   /* live_close_window asked */
    long frames;
    char err[512];
    /* the thread's own */
    char title[256];
    int w, h;
    double min_interval;
    LiveRenderFn render;
    void *arg;
    PlotImage im;
};

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int live_supported(void) { return 1; }

/* CPU seconds of this thread: what a frame costs the machine (waiting for
 * the X server to map the window is not cost). */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* SDL_Quit unloads the X11 libraries SDL opened, and their small leaks at
 * exit (libdbus, libX11) then show under LeakSanitizer as leaks of "unknown
 * modules" that no suppression can name. Sanitized builds leave SDL running
 * (what it holds stays reachable); our own leaks are still reported. */
static void live_sdl_quit(void) {
#if !defined(__SANITIZE_ADDRESS__)
    SDL_Quit();
#endif
}

static double proc_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Render at the window's size and copy to its surface. Returns the CPU seconds it took. */
static double draw(Live *lv, SDL_Window *win) {
    double t0 = cpu_now();
    int w, h;
    SDL_GetWindowSize(win, &w, &h);
    if (w < 200 || h < 150 || lv->render(&lv->im, w, h, lv->arg) != 0) return cpu_now() - t0;
    SDL_Surface *dst = SDL_GetWindowSurface(win);
    SDL_Surface *src = SDL_CreateRGBSurfaceWithFormatFrom(lv->im.px, lv->im.w, lv->im.h, 32,
                                                          lv->im.stride, SDL_PIXELFORMAT_ARGB8888);
    if (dst && src) {
        SDL_SetSurfaceBlendMode(src, SDL_BLENDMODE_NONE);
        SDL_BlitSurface(src, NULL, dst, NULL);
        SDL_UpdateWindowSurface(win);
        pthread_mutex_lock(&lv->mu);
        lv->frames++;
        pthread_mutex_unlock(&lv->mu);
    } else {
        fprintf(stderr, "cliplab: warning: live window: %s\n", SDL_GetError());
    }
    SDL_FreeSurface(src);
    return cpu_now() - t0;
}

/* A driver that shows a window someone can see. */
static int live_real_driver(const char *drv) {
    return !strcmp(drv, "x11") || !strcmp(drv, "wayland") || !strcmp(drv, "cocoa") ||
           !strcmp(drv, "windows");
}

static void *live_main(void *p) {
    Live *lv = p;
    SDL_Window *win = NULL;
    SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1"); /* Ctrl-C stays the terminal's */
    /* SDL falls back to drivers nobody can see (offscreen, KMSDRM on a text
     * console) when there is no display; accept those only when asked for */
    const char *asked = getenv("SDL_VIDEODRIVER"), *drv = NULL;
    int ok = 1;
#ifdef __linux__
    if (!(asked && *asked) && !getenv("DISPLAY") && !getenv("WAYLAND_DISPLAY")) {
        SDL_SetError("no display: DISPLAY and WAYLAND_DISPLAY are not set");
        ok = 0;
    }
#endif
    /* a connection to the X server is now and then refused at once (connect:
     * EAGAIN or reset; how often: docs/design.md), and SDL then falls back to
     * its offscreen driver: try again before giving up */
    live_guard_x_errors(); /* before SDL opens the display: SDL chains to it */
    for (int attempt = 0; ok && attempt < 8; attempt++) { /* about 3 s in all: a busy */
        if (attempt) {                                      /* machine's X is slow to accept */
            SDL_Quit();
            SDL_Delay(attempt < 6 ? 20u << attempt : 1000u);
        }
        ok = SDL_Init(SDL_INIT_VIDEO) == 0;
        drv = ok ? SDL_GetCurrentVideoDriver() : NULL;
        if (!ok || (asked && *asked) || !drv || live_real_driver(drv)) break;
    }
    if (ok && !(asked && *asked) && drv && !live_real_driver(drv)) {
        SDL_SetError("no X11 or Wayland display (SDL found only its %s driver)", drv);
        ok = 0;
    }
    if (!ok ||
        !(win = SDL_CreateWindow(lv->title, SDL_WINDOWPOS_UNDEFINED, SDL_WINDOWPOS_UNDEFINED, lv->w,
                                 lv->h, SDL_WINDOW_RESIZABLE))) {
        pthread_mutex_lock(&lv->mu);
        snprintf(lv->err, sizeof lv->err, "cannot open a window: %s. Run it in a desktop "
                 "session, over ssh -X, or under xvfb-run; or leave out --live (the PNGs are "
                 "written either way)", SDL_GetError());
        lv->started = 1;
        pthread_cond_broadcast(&lv->cv);
        pthread_mutex_unlock(&lv->mu);
        live_sdl_quit();
        return NULL;
    }
    /* the first frame pays for loading the font and mapping the window: draw
     * it before the caller starts training, so that cost is start-up */
    draw(lv, win);
    pthread_mutex_lock(&lv->mu);
    lv->started = lv->ok = lv->open = 1;
    pthread_cond_broadcast(&lv->cv);
    pthread_mutex_unlock(&lv->mu);
    double next = 0.0, last_cost = 0.0;
    double self0 = cpu_now(), proc0 = proc_cpu_now();
    int final_drawn = 0;
    for (;;) {
        SDL_Event e;
        int closed = 0;
        while (!closed && SDL_WaitEventTimeout(&e, 50)) {
            if (e.type == SDL_QUIT ||
                (e.type == SDL_WINDOWEVENT && e.window.event == SDL_WINDOWEVENT_CLOSE) ||
                (e.type == SDL_KEYDOWN &&
                 (e.key.keysym.sym == SDLK_q || e.key.keysym.sym == SDLK_ESCAPE)))
                closed = 1;
            else if (e.type == SDL_WINDOWEVENT && (e.window.event == SDL_WINDOWEVENT_SIZE_CHANGED ||
                                                   e.window.event == SDL_WINDOWEVENT_EXPOSED))
                live_poke(lv);
        }
        pthread_mutex_lock(&lv->mu);
        closed = closed || lv->close_asked;
        pthread_mutex_unlock(&lv->mu);
        if (closed) break;
        /* the budget: this thread's CPU since start-up may be at most
         * LIVE_CPU_SHARE of the rest of the process's (the training loop's) */
        double self = cpu_now() - self0, others = proc_cpu_now() - proc0 - self;
        int affordable = self + last_cost <= LIVE_CPU_SHARE * others;
        pthread_mutex_lock(&lv->mu);
        int stop = lv->stop, hold = lv->hold;
        /* the final frame is drawn at once; the others when rate and budget allow */
        int due = (stop && !final_drawn) || (lv->dirty && mono_now() >= next && affordable);
        if (due) lv->dirty = 0;
        pthread_mutex_unlock(&lv->mu);
        if (due) {
            last_cost = draw(lv, win);
            next = mono_now() + lv->min_interval;
            final_drawn = stop;
        }
        if (stop && final_drawn && !hold) break;
    }
    pthread_mutex_lock(&lv->mu);
    lv->open = 0;
    pthread_mutex_unlock(&lv->mu);
    SDL_DestroyWindow(win);
    live_sdl_quit();
    plot_image_free(&lv->im);
    return NULL;
}

Live *live_start(const char *title, int w, int h, double fps, LiveRenderFn render, void *arg,
                 char *err, size_t errlen) {
    Live *lv = calloc(1, sizeof *lv);
    if (!lv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(lv->title, sizeof lv->title, "%s", title);
    lv->w = w, lv->h = h;
    lv->min_interval = fps > 0 ? 1.0 / fps : 0.25;
    lv->render = render, lv->arg = arg;
    pthread_mutex_init(&lv->mu, NULL);
    pthread_cond_init(&lv->cv, NULL);
    if (pthread_create(&lv->thread, NULL, live_main, lv) != 0) {
        snprintf(err, errlen, "cannot start the live window's thread");
        pthread_mutex_destroy(&lv->mu);
        pthread_cond_destroy(&lv->cv);
        free(lv);
        return NULL;
    }
    pthread_mutex_lock(&lv->mu);
    while (!lv->started) pthread_cond_wait(&lv->cv, &lv->mu);
    int ok = lv->ok;
    pthread_mutex_unlock(&lv->mu);
    if (!ok) {
        snprintf(err, errlen, "%s", lv->err);
        pthread_join(lv->thread, NULL);
        pthread_mutex_destroy(&lv->mu);
        pthread_cond_destroy(&lv->cv);
        free(lv);
        return NULL;
    }
    return lv;
}

void live_poke(Live *lv) {
    pthread_mutex_lock(&lv->mu);
    lv->dirty = 1;
    pthread_mutex_unlock(&lv->mu);
}

int live_is_open(Live *lv) {
    pthread_mutex_lock(&lv->mu);
    int o = lv->open;
    pthread_mutex_unlock(&lv->mu);
    return o;
}

/* A flag, not an SDL event: SDL_PushEvent from another thread wakes the
 * window's thread with an X ClientMessage sent to its window on a second
 * connection, and when the window is destroyed in between (a close by the
 * user, a stop) the X server answers BadWindow and Xlib's error handler ends
 * the whole process. Only the window's thread ever calls SDL. */
void live_close_window(Live *lv) {
    pthread_mutex_lock(&lv->mu);
    lv->close_asked = 1;
    pthread_mutex_unlock(&lv->mu);
}

long live_frames(Live *lv) {
    pthread_mutex_lock(&lv->mu);
    long f = lv->frames;
    pthread_mutex_unlock(&lv->mu);
    return f;
}

void live_stop(Live *lv, int hold, long *frames) {
    if (frames) *frames = 0;
    if (!lv) return;
    pthread_mutex_lock(&lv->mu);
    lv->stop = 1;
    lv->hold = hold;
    pthread_mutex_unlock(&lv->mu);
    pthread_join(lv->thread, NULL);
    if (frames) *frames = lv->frames;
    pthread_mutex_destroy(&lv->mu);
    pthread_cond_destroy(&lv->cv);
    free(lv);
}

#endif
