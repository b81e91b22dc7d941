/* rnn.h: a vanilla tanh RNN trained by backpropagation through time on the
 * synthetic long-range problems of Pascanu, Mikolov & Bengio (2013), after
 * Hochreiter & Schmidhuber (1997): the adding problem and the temporal order
 * problem, generated from the seed.
 *
 * Dimension legend: T time steps, B batch, I input features, H hidden, O outputs.
 * Cell (torch.nn.RNN, nonlinearity tanh):
 *   h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),  h_0 = 0
 * Head on the last state: y = h_T W_out^T + b_out
 *   adding:          O = 1, loss = MSE against the sum of the two marked values
 *   temporal_order:  O = 4, loss = cross-entropy over the order of the X/Y symbols */
#ifndef CLIPLAB_MODELS_RNN_H
#define CLIPLAB_MODELS_RNN_H

#include "model.h"
#include "params.h"
#include "rng.h"

#include <stdint.h>

typedef enum { RNN_TASK_ADDING, RNN_TASK_TEMPORAL_ORDER } RnnTask;
typedef enum { RNN_INIT_ORTHOGONAL, RNN_INIT_UNIFORM } RnnInit;

typedef struct RnnConfig {
    int task;               /* RnnTask */
    int seq_len;            /* T */
    int hidden;             /* H */
    int init;               /* RnnInit for W_hh */
    double spectral_radius; /* gain of the orthogonal W_hh: its spectral radius */
    int eval_size;          /* held-out sequences for val_loss */
    int final_eval_size;    /* fresh sequences for val_success / val_acc after the last step */
} RnnConfig;

extern const ModelDef rnn_model;

typedef struct Rnn {
    RnnConfig cfg;
    int in_dim, out_dim, batch;
    ParamSet ps;
    Tensor *w_ih, *b_ih, *w_hh, *b_hh, *w_out, *b_out;
    Rng *data_rng;          /* the trainer's stream: batches are drawn from it */
    float *xbuf, *ybuf;     /* one batch: x[T,B,I], targets[B,O] (adding) */
    int *cbuf;              /* targets[B] (temporal order) */
    float *eval_x, *eval_y;
    int *eval_c;
    int col_acc, col_success; /* metrics columns: val_acc (temporal order only, else -1), val_success */
} Rnn;

int rnn_input_dim(RnnTask task);
int rnn_output_dim(RnnTask task);
/* Draw B sequences: x[T,B,I]; y[B] (adding) or cls[B] (temporal order). */
void rnn_make_batch(Rng *r, RnnTask task, int T, int B, float *x, float *y, int *cls);
/* Declare, allocate and initialise the parameters (no trainer needed). */
void rnn_build(Rnn *m, const RnnConfig *cfg, Rng *init_rng);
/* Output [B, O] of one batch x[T, B, I] (recorded on c when grads are on). */
Tensor *rnn_output_on(Rnn *m, Ctx *c, const float *x, int B);
/* Pascanu et al.'s success rate over n fresh sequences drawn from stream (seed, 100):
 * fraction classified right (temporal order; also in *acc) or with squared
 * error under 0.04 (adding; *acc = NaN). Resets c between chunks. */
void rnn_success(Rnn *m, Ctx *c, uint64_t seed, int n, double *acc, double *success);
/* Loss of one batch given as raw arrays (recorded on c when grads are on). */
Tensor *rnn_loss_on(Rnn *m, Ctx *c, const float *x, const float *y, const int *cls, int B);

#endif
