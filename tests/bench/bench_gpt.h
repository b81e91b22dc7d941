/* bench_gpt.h: the transformer the benchmarks time (the demo's default size,
 * batch 16) with a random batch, its context, AdamW and the clip's tensor list:
 * one set-up for bench_transformer.c and bench_amp.c. */
#ifndef CLIPLAB_BENCH_GPT_H
#define CLIPLAB_BENCH_GPT_H

#include <stdlib.h>
#include <string.h>

#include "clip.h"
#include "optim.h"
#include "train.h"
#include "transformer.h"

enum { B = 16, T = 64, C = 128, L = 4, NH = 4, V = 96 };

typedef struct {
    Transformer m;
    int *x, *y;   /* [B*T] inputs and targets */
    Ctx c;
    Optim opt;
    ClipTensor *ct; /* [m.ps.count] */
} BenchGpt;

/* ctx_init pins the BLAS kernel, as a run does. */
static inline void bench_gpt_init(BenchGpt *g, double lr, int max_nodes) {
    memset(g, 0, sizeof *g);
    TransformerConfig cfg = {.d_model = C, .n_layer = L, .n_head = NH, .context = T};
    Rng r;
    rng_seed(&r, 1, 1);
    transformer_build(&g->m, &cfg, V, &r);
    g->x = malloc(sizeof(int) * B * T), g->y = malloc(sizeof(int) * B * T);
    for (int i = 0; i < B * T; i++) g->x[i] = (int)rng_below(&r, V), g->y[i] = (int)rng_below(&r, V);
    ctx_init(&g->c, (size_t)256 << 20, max_nodes);
    OptimConfig oc = {.kind = OPTIM_ADAMW, .lr = lr, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                      .weight_decay = 0.1, .schedule = SCHED_CONSTANT};
    optim_init(&g->opt, &oc, g->m.ps.n);
    const ParamSet *ps = &g->m.ps;
    g->ct = calloc((size_t)ps->count, sizeof *g->ct);
    for (int i = 0; i < ps->count; i++)
        g->ct[i] = (ClipTensor){ps->params[i].t.grad, ps->params[i].t.data, ps->params[i].t.n, 0};
}

static inline void bench_gpt_free(BenchGpt *g) {
    free(g->x), free(g->y), free(g->ct);
    optim_free(&g->opt);
    ctx_free(&g->c);
    transformer_free_params(&g->m);
}

#endif
