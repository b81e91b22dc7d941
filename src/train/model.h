/* model.h: the interface every network in models/ implements, and the registry.
 *
 * Two kinds of model plug in without changing src/:
 *  - supervised (RNN, transformer, MobileNet): `loss` builds the loss of the
 *    next training batch on the tape; the trainer updates every group from it
 *    through trainer_step (backward with loss scale and accumulation, then the
 *    update pipeline);
 *  - custom-step (WGAN: several critic updates per generator update over two
 *    groups; PPO: no-grad rollouts then epochs of minibatches): `step` runs
 *    one iteration and calls trainer_step() once per optimizer update, naming
 *    the groups that update; the others are frozen for that call.
 * The update contract (train.h) in short:
 *  - `groups` names the update groups; create() registers one ParamSet per
 *    name (ParamSet.name = the group's name) with trainer_add_group(). Each
 *    group reads [optim.G] / [clip.G] over [optim] / [clip];
 *  - all backward passes are the trainer's (trainer_step): a model never calls
 *    ad_backward or the pipeline itself, so loss scale, accumulation, context
 *    reset, zeroing and freezing are the same for every model;
 *  - inside one forward, ad_detach() stops a gradient (x.detach()).
 * Extra metrics columns: trainer_add_metric(). Batchnorm train/eval is
 * Ctx.train (the trainer sets it for evaluation and for skipped batches).
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
struct RunResult;

typedef struct ModelDef {
    const char *name;                 /* [model] type = <name> */
    const char *summary;              /* one line for --help */
    const CfgSection *section;        /* the model's own section, named like the model */
    size_t cfg_size;                  /* size of the struct the section fills */
    /* Update-group names, NULL-terminated; NULL = one group of any name that
     * follows [optim] and [clip] (no group sections). */
    const char *const *groups;
    /* Build parameters and data; register groups and metrics with the trainer. */
    void *(*create)(Trainer *tr, const void *cfg);
    /* Supervised: loss of the next training batch, recorded on c (NULL if custom-step). */
    Tensor *(*loss)(void *m, Ctx *c, Trainer *tr);
    /* Optional (supervised): draw the next training batch exactly as `loss`
     * would and discard it. A data-parallel rank skips the other ranks'
     * micro-batches with it; without it the rank runs `loss` without
     * gradients instead (same draws, slower). */
    void (*skip_batch)(void *m, Trainer *tr);
    /* Custom-step: one iteration, calling trainer_step(); returns the loss to log. */
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
    /* The metrics column that sums up a run (sweeps): NULL = "val_loss";
     * main_metric_higher = 1 when higher is better (accuracy, return). */
    const char *main_metric;
    int main_metric_higher;
    /* Optional, NULL-terminated: model metrics columns drawn one panel each in
     * the run's curves.png and, instead of loss and gradient norm, in the
     * comparison figure (PPO: episodic_return, approx_kl, entropy). A NaN in
     * such a column means "no value this step" and is left out of the line. */
    const char *const *plot_columns;
    /* Optional: the model's own clipping in a few words ("ratio clip 0.2"),
     * put in the run's label beside the gradient clip. */
    void (*describe)(const void *m, char *buf, size_t len);
    /* Optional: what the model and task are, for figure titles ("Vanilla RNN, adding
     * problem"); NULL: the model's name. */
    void (*title)(const void *m, char *buf, size_t len);
    /* Optional: the figure comparing several runs when every run is of this
     * model (./train A.ini B.ini ...), written to path instead of the generic
     * loss / grad-norm overlay (cfgs[i]: run i's model section; each run's
     * files are in runs[i].out_dir); NULL = trainer_compare_plot. A model
     * that only adds figures beside the generic one calls trainer_compare_plot
     * first (MobileNet: accuracy against bits, activation ranges).
     * 0 when written, else non-zero with a message printed. */
    int (*compare_plot)(const struct RunResult *runs, const void *const *cfgs, int n,
                        const char *path);
} ModelDef;

extern const ModelDef *const model_registry[];
extern const int model_registry_count;

#endif
