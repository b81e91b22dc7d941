/* live_view.h: what ./train --live shows: the runs' loss and gradient-norm
 * panels (pre-clip, post-clip, threshold), redrawn as they train.
 *
 * The trainer's observer (TrainerSettings.observer = live_view_observe)
 * copies each logged row into the view under a lock; the live window's thread
 * (live.h) renders the panels from those copies with the plotting module.
 * Several configs: each run stays in the figure when the next one starts, so
 * the comparison grows as they train. */
#ifndef CLIPLAB_LIVE_VIEW_H
#define CLIPLAB_LIVE_VIEW_H

#include <stddef.h>

#include "plot.h"
#include "train.h"

typedef struct LiveView LiveView;

/* Open the window (NULL with a message in err: no SDL2 in this build, no display). */
LiveView *live_view_open(char *err, size_t errlen);
/* TrainerSettings.observer; arg is the LiveView. */
void live_view_observe(const Trainer *tr, void *arg);
/* The figure as it stands, at w x h (what the window shows; tests use it). */
int live_view_render(PlotImage *im, int w, int h, void *arg);
/* Frames the window drew. */
long live_view_frames(LiveView *v);
/* After the last run: draw the final frame; hold = 1 waits for the user to
 * close the window. Frees the view; returns the frames drawn in all. */
long live_view_close(LiveView *v, int hold);

#endif
