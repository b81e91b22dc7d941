/* params.h: ParamSet, every weight of a model in one flat buffer and every
 * gradient in another (llm.c style), so zeroing, norms, clipping, the optimizer
 * step and checkpointing are single loops over `data`/`grad`.
 *
 * Two phases: param_add() declares tensors (name, shape, options) and returns a
 * stable Tensor pointer whose data is NULL until param_alloc() lays out the
 * flat buffers. Non-trainable state (batchnorm running statistics) is declared
 * with param_add_buffer(): it lives in `buf`, is checkpointed, but has no
 * gradient and is never clipped or stepped.
 *
 * Initialisation helpers draw from a caller-owned Rng so runs are reproducible. */
#ifndef CLIPLAB_PARAMS_H
#define CLIPLAB_PARAMS_H

#include <stddef.h>

#include "rng.h"
#include "tensor.h"

#define PARAM_NAME_MAX 64

typedef struct Param {
    char name[PARAM_NAME_MAX];    /* "h0.attn.w_qkv": matched by [clip] only/exclude patterns */
    Tensor t;                     /* data/grad point into the flat buffers after param_alloc */
    size_t offset;                /* start within ParamSet.data / .grad (or .buf) */
    int decay;                    /* 1: weight decay applies (matrices); 0: biases, norms, embeddings if chosen */
    int buffer;                   /* 1: non-trainable buffer in .buf */
} Param;

typedef struct ParamSet {
    char name[32];                /* "model", "critic", "generator", ... */
    Param *params;
    int count, cap;
    float *data, *grad;           /* n trainable values, n gradients */
    size_t n;
    float *buf;                   /* nbuf non-trainable values */
    size_t nbuf;
    int allocated;
} ParamSet;

void param_set_init(ParamSet *ps, const char *name, int max_params);
void param_set_free(ParamSet *ps);
/* decay: whether weight decay applies. Returns a pointer stable for the set's life. */
Tensor *param_add(ParamSet *ps, const char *name, int ndim, const int *shape, int decay);
Tensor *param_add_buffer(ParamSet *ps, const char *name, int ndim, const int *shape);
void param_alloc(ParamSet *ps);                    /* lay out; data and grads zeroed */
void param_zero_grad(ParamSet *ps);
/* requires_grad for every trainable tensor: off, their Tensor.grad is NULL, so
 * ops record no gradient into them (a frozen group); on restores it. */
void param_set_requires_grad(ParamSet *ps, int on);
Param *param_find(ParamSet *ps, const char *name); /* NULL if absent */

/* Initialisers (PyTorch's conventions, cited where they come from). */
void param_init_const(Tensor *t, float v);
void param_init_uniform(Tensor *t, Rng *r, float lo, float hi);
void param_init_normal(Tensor *t, Rng *r, float mean, float std);
/* Orthogonal rows/columns (Saxe et al. 2014) via LAPACK QR of a Gaussian
 * matrix, times gain: a square matrix gets spectral radius |gain| exactly. */
void param_init_orthogonal(Tensor *t, Rng *r, float gain);
/* PyTorch nn.Linear/nn.RNN default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
void param_init_fanin_uniform(Tensor *t, Rng *r, int fan_in);

#endif
