/* live.h: a window that shows a figure while it changes (SDL2, optional).
 *
 * The window belongs to its own thread: it owns SDL (init, window, events)
 * and calls the caller's render function, which draws the figure with the
 * plotting module into an in-memory PlotImage (the same code that writes the
 * PNGs), then copies those pixels to the window. The caller's thread (the
 * training loop) only calls live_poke() when its data changed; it never waits
 * for a frame. Frames are drawn at most `fps` times a second, and only while
 * the window's thread has used at most 4% of the CPU time the rest of the
 * process (the training loop) has used since the window opened; start-up
 * (SDL, the font, the first frame) happens in live_start, before training.
 * The cost is measured by make bench (tests/bench/bench_live.py).
 *
 * Closing the window (or pressing q / Esc) only stops the drawing: the
 * caller goes on. Built without SDL2 (pkg-config sdl2 not found when it was
 * compiled) every function is a stub: live_supported() is 0 and live_start
 * fails with live_unsupported_message(). */
#ifndef CLIPLAB_LIVE_H
#define CLIPLAB_LIVE_H

#include <stddef.h>

#include "plot.h"

/* Draw the current figure into *im at w x h pixels; 0 on success. Called on
 * the window's thread, so it must lock whatever data it reads. */
typedef int (*LiveRenderFn)(PlotImage *im, int w, int h, void *arg);

typedef struct Live Live;

int live_supported(void);
/* What to tell a user who asked for --live in a build without SDL2. */
const char *live_unsupported_message(void);

/* Open a w x h window titled `title` and start its thread. NULL with a
 * message in err when there is no SDL2 in this build or no display. */
Live *live_start(const char *title, int w, int h, double fps, LiveRenderFn render, void *arg,
                 char *err, size_t errlen);
/* The data changed: draw a new frame when the rate allows. Cheap; any thread. */
void live_poke(Live *lv);
/* 1 while the window is open (0 once the user closed it). */
int live_is_open(Live *lv);
/* Close the window as a user's close does (the window's thread sees it within
 * 50 ms). Any thread, any moment, any number of times. */
void live_close_window(Live *lv);
/* Frames drawn so far. */
long live_frames(Live *lv);
/* Draw the final frame, then: hold = 1 waits until the user closes the window,
 * hold = 0 closes it. Joins the thread and frees everything; *frames (may be
 * NULL) receives the frames drawn in all. */
void live_stop(Live *lv, int hold, long *frames);

#endif
