/* cliff.h: Pascanu, Mikolov & Bengio (2013), section 3.3 and Figure 6: the
 * error surface of a one-unit recurrent network has a steep wall (a "cliff"),
 * and a gradient step that lands on it throws the parameters far away.
 *
 * The network has two parameters, w and b, and no input:
 *   x_0 = x0 (0.5),  x_t = w * sigmoid(x_{t-1}) + b  for t = 1..T (T = 50),
 *   loss = (sigmoid(x_T) - target)^2  (target 0.7).
 * A run trains (w, b) from [cliff] w0, b0 with the trainer's optimizer and
 * clip settings and logs the point of every step (metrics columns w, b), so
 * the trajectory is metrics.csv. With [cliff] surface = true the run also
 * writes surface.csv: the loss and its gradient norm on a grid over (w, b).
 *
 * Where the cliff is (derived in cliff.c): x_0 is a fixed point of the map on
 * the line b = x0 - w*sigmoid(x0); where that fixed point repels
 * (w * sigmoid'(x0) > 1, i.e. w > 4.26 for x0 = 0.5) the line separates the
 * points whose x_t runs to the upper attractor (loss ~0.05-0.09) from those
 * that run to the lower one (loss ~0.45-0.49), and the gradient on it grows
 * like (w * sigmoid'(x0))^T: 3e7 at w = 6. */
#ifndef CLIPLAB_MODELS_CLIFF_H
#define CLIPLAB_MODELS_CLIFF_H

#include "model.h"
#include "params.h"

typedef struct CliffConfig {
    double w0, b0;          /* start point of the descent */
    double x0;              /* initial state */
    double target;          /* sigmoid(x_T) is pulled towards this */
    int seq_len;            /* T */
    int surface;            /* write surface.csv */
    double w_min, w_max, b_min, b_max;
    int grid;               /* surface points per axis */
} CliffConfig;

extern const ModelDef cliff_model;

typedef struct Cliff {
    CliffConfig cfg;
    ParamSet ps;
    Tensor *w, *b;          /* [1] each */
    int col_w, col_b;       /* metrics columns */
    char out_dir[256];
} Cliff;

/* Declare and set the two parameters to (w0, b0) (no trainer needed). */
void cliff_build(Cliff *m, const CliffConfig *cfg);
/* The loss at the current (w, b), recorded on c (the differentiable path). */
Tensor *cliff_loss_on(Cliff *m, Ctx *c);
/* The same loss and its gradient in double precision without the tape
 * (forward, then the BPTT recursion by hand): what surface.csv holds. */
double cliff_loss_grad(const CliffConfig *cfg, double w, double b, double *dw, double *db);
/* The wall: b on the line where x0 is a fixed point, and the slope factor
 * w * sigmoid'(x0) (> 1: the fixed point repels and the line is a cliff). */
double cliff_wall_b(const CliffConfig *cfg, double w);
double cliff_wall_gain(const CliffConfig *cfg, double w);
/* Write <dir>/surface.csv (w,b,loss,grad_norm; grid x grid rows, b-major);
 * 0 or -1 with a message in err. Written to a temporary name and renamed. */
int cliff_write_surface(const CliffConfig *cfg, const char *dir, char *err, size_t errlen);

#endif
