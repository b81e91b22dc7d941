/* tensor.h: float32 row-major tensors, the per-step arena, and the tape.
 *
 * Two lifetimes of memory (docs/design.md): parameters and their gradients live in
 * a ParamSet's flat buffers (params.h); everything made during a step
 * (activations, their gradients, tape nodes, saved context) comes from the
 * Ctx's arena, which ctx_reset() empties after the step. No per-tensor free.
 *
 * The tape is recorded in execution order; ad_backward() walks it in reverse.
 * No topological sort, no recursion: BPTT over hundreds of steps is a loop.
 * An op output gets a gradient buffer only if one of its inputs has one and
 * the Ctx is recording (ctx->grad_enabled). Backward functions ADD into input
 * gradients, never overwrite, so weight sharing and accumulation just work.
 *
 * This file leaves the differentiable ops to ops.h and parameters to params.h. */
#ifndef CLIPLAB_TENSOR_H
#define CLIPLAB_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAX_DIMS 4

typedef struct Tensor {
    float *data;                  /* n values, row-major */
    float *grad;                  /* n gradient values, or NULL: no gradient flows here */
    size_t n;                     /* product of shape */
    int ndim;
    int shape[TENSOR_MAX_DIMS];
} Tensor;

/* Bump allocator. Allocation is 64-byte aligned. A full arena is a user error
 * (die) naming the bytes needed and the setting that raises it. */
typedef struct Arena {
    unsigned char *base;
    size_t cap, used;
    const char *setting;          /* e.g. "[train] arena_mb": named in the error */
} Arena;

void arena_init(Arena *a, size_t bytes, const char *setting);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t bytes);         /* uninitialised */
void *arena_calloc(Arena *a, size_t bytes);        /* zeroed */
void arena_reset(Arena *a);

struct TapeNode;
typedef void (*BackwardFn)(struct TapeNode *node);

#define TAPE_MAX_INPUTS 4

/* One recorded op. ctx points at op-specific saved context in the arena;
 * fargs/iargs hold small scalar arguments (clamp bounds, strides, ...). */
typedef struct TapeNode {
    const char *op;
    BackwardFn backward;
    Tensor *out;
    Tensor *in[TAPE_MAX_INPUTS];
    int nin;
    void *ctx;
    float fargs[4];
    int iargs[6];
} TapeNode;

/* The per-step context: arena + tape + recording flag. */
typedef struct Ctx {
    Arena arena;
    TapeNode *nodes;
    size_t nnodes, cap_nodes;
    int grad_enabled;             /* 0: no-grad mode (evaluation, PPO rollouts) */
    int train;                    /* 1: training mode (batchnorm uses batch statistics) */
    int precision;                /* HalfFormat (half.h): 0 float32; else matrix products
                                   * round inputs and outputs to it (AMP, ops_core.c) */
    struct PerEx *pe;             /* non-NULL: linear and conv2d weight gradients go per
                                   * example to it instead of into the weights (perex.h, DP-SGD) */
} Ctx;

void ctx_init(Ctx *c, size_t arena_bytes, size_t max_nodes);
void ctx_free(Ctx *c);
void ctx_reset(Ctx *c);                            /* empty arena and tape */
int  ctx_set_grad(Ctx *c, int enabled);            /* returns the previous value */

/* Tensor construction (arena). Shapes are given as a count and dims. */
Tensor *tensor_new(Ctx *c, int ndim, const int *shape, int requires_grad);   /* zeroed */
Tensor *tensor_new2(Ctx *c, int d0, int d1, int requires_grad);
Tensor *tensor_from(Ctx *c, int ndim, const int *shape, const float *src);   /* copy, no grad */
/* A view of an existing buffer (no copy); grad may be NULL. */
Tensor tensor_view(float *data, float *grad, int ndim, const int *shape);
size_t shape_numel(int ndim, const int *shape);
int tensor_same_shape(const Tensor *a, const Tensor *b);
/* Last dimension, and the product of all the others ("rows"). */
int tensor_cols(const Tensor *t);
size_t tensor_rows(const Tensor *t);

/* Tape recording, used by ops. Returns NULL (and records nothing) when the
 * output has no gradient. The output's gradient buffer is allocated by
 * ad_out() below, not here. */
TapeNode *tape_record(Ctx *c, const char *op, BackwardFn fn, Tensor *out,
                      Tensor *const *in, int nin);
/* Make an op output of the given shape: it needs a gradient iff recording is
 * on and some input has one. Its data is NOT initialised: the op must write
 * every element (CLIPLAB_POISON_OUTPUTS fills it with NaN to catch misses);
 * its gradient is zeroed. */
Tensor *ad_out(Ctx *c, int ndim, const int *shape, Tensor *const *in, int nin);

/* Reverse walk: seeds d(loss)/d(loss) = 1 (loss must be a scalar with grad;
 * the seed is ADDED, so calling with scale s accumulates s * gradient). */
void ad_backward(Ctx *c, Tensor *loss, float seed);
/* The reverse walk alone, for callers that seeded some output's grad themselves
 * (the finite-difference checker seeds a random projection). */
void tape_backward(Ctx *c);

#endif
