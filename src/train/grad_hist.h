/* grad_hist.h: the histogram of one step's activation-gradient magnitudes in
 * log2 bins, after Micikevicius et al. 2018 (Figure 3: SSD's activation
 * gradients against fp16's range), with the shares fp16 would flush to zero
 * at scale 1 and at the run's loss scale, and the share that would overflow.
 * [train] grad_hist_step = N records step N's gradients (every op output's
 * gradient on the tape after the first micro-batch's backward); the run then
 * writes grad_hist.csv and grad_hist.png. Meant for a precision = fp32 run
 * with loss_scale = dynamic: its numbers are fp32's bit for bit (powers of two
 * are exact), and its gradients carry the dynamic scale. */
#ifndef CLIPLAB_GRAD_HIST_H
#define CLIPLAB_GRAD_HIST_H

#include <stddef.h>

#include "tensor.h"

#define GRAD_HIST_LO (-80) /* bin k holds |g| in [2^k, 2^(k+1)), k in [LO, HI) */
#define GRAD_HIST_HI 40

typedef struct GradHist {
    long step;                 /* the step recorded, -1: none yet */
    double scale;              /* the loss scale the recorded gradients carry */
    double total, zero, nonfinite;
    double flush_true;         /* nonzero values fp16 flushes to zero at scale 1 (|g|/scale <= 2^-25) */
    double flush_scaled;       /* ... at the run's scale (|g| <= 2^-25) */
    double overflow_scaled;    /* values fp16 overflows at the run's scale (|g| >= 65520) */
    double count[GRAD_HIST_HI - GRAD_HIST_LO]; /* of the recorded (scaled) values */
} GradHist;

/* Add every tape node's output gradient in c (run right after backward). */
void grad_hist_record(GradHist *h, const Ctx *c, long step, double scale);
/* dir/grad_hist.csv and dir/grad_hist.png; 0, or -1 with a message in err. */
int grad_hist_write(const GradHist *h, const char *dir, const char *run_name, char *err, size_t errlen);
/* Read back dir/grad_hist.csv as grad_hist_write wrote it: 0, or -1 (no file, or not
 * that format). */
int grad_hist_read(GradHist *h, const char *dir);
/* Several runs' histograms on one panel, cumulative (the share below each size, on the
 * true gradient's scale 1), labelled, fp16's range marked: path; 0, or -1 with a message
 * in err. A comparison of runs that all recorded one draws it (run_plots.c). */
int grad_hist_compare(const char *path, const char *title, const GradHist *h,
                      const char *const *labels, int n, char *err, size_t errlen);

#endif
