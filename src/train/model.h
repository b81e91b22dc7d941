/* model.h: the interface every network in models/ implements, and the registry.
 *
 * Two kinds of model plug in without changing src/:
 *  - supervised (RNN, transformer, MobileNet): `loss` builds the loss of the
 *    next training batch on the tape; the trainer runs backward (with gradient
 *    accumulation and loss scaling) and calls the update pipeline;
 *  - custom-step (WGAN: several critic updates per generator update over two
 *    ParamSets; PPO: no-grad rollouts then epochs of minibatches): `step` runs
 *    one iteration and calls trainer_update() once per optimizer update.
 * A model registers each ParamSet with trainer_add_group(); extra metrics
 * columns with trainer_add_metric(). Batchnorm train/eval switching is Ctx.train.
 *
 * The registry (model_registry) is defined in models/registry.c, so src/ never
 * includes a models/ file. */
#ifndef CLIPLAB_MODEL_H
#define CLIPLAB_MODEL_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "tensor.h"

typedef struct Trainer Trainer;

typedef struct ModelDef {
    const char *name;                 /* [model] type = <name> */
    const char *summary;              /* one line for --help */
    const CfgSection *section;        /* the model's own section, named like the model */
    size_t cfg_size;                  /* size of the struct the section fills */
    /* Build parameters and data; register groups and metrics with the trainer. */
    void *(*create)(Trainer *tr, const void *cfg);
    /* Supervised: loss of the next training batch, recorded on c (NULL if custom-step). */
    Tensor *(*loss)(void *m, Ctx *c, Trainer *tr);
    /* Custom-step: one iteration, calling trainer_update(); returns the loss to log. */
    double (*step)(void *m, Trainer *tr);
    /* Optional: held-out loss, logged in the trainer's val_loss column every
     * [train] eval_every steps; called with gradients off and Ctx.train = 0. */
    double (*evaluate)(void *m, Trainer *tr);
    /* Optional: loss of the trivial predictor, drawn as a reference line. */
    double (*baseline_loss)(const void *m);
    /* Optional: after the last step (e.g. print a generated sample). */
    void (*finish)(void *m, Trainer *tr);
    /* Optional: model state a checkpoint must carry besides parameters
     * (data position, environment); save writes it, load restores it; 0 = ok. */
    int (*save_state)(const void *m, FILE *f);
    int (*load_state)(void *m, FILE *f);
    void (*destroy)(void *m);
    /* Optional: when several runs of this model are compared (./train A.ini B.ini),
     * extra figures drawn from what the runs wrote into out_dirs[0..n); path is
     * the comparison PNG (write beside it). 0 = ok, else a message was printed. */
    int (*compare)(const char *const *out_dirs, int n, const char *path);
} ModelDef;

extern const ModelDef *const model_registry[];
extern const int model_registry_count;

#endif
