/* model.h: the interface every network in models/ implements, and the registry.
 *
 * ADDING A MODEL (models/mlp.c is the worked example: 120 lines, no header):
 *  1. models/<name>.c: the model's config struct and its CfgSection (one
 *     table, the section named like the model: [<name>]), the network, and
 *     `const ModelDef <name>_model` with every field marked REQUIRED below.
 *     An image classifier takes its data from src/data/imageset.h (the data
 *     keys, batches, evaluation, baseline and checkpoint state), so its file
 *     is the network.
 *  2. One line X(<name>) in the MODELS list of models/registry.c.
 *  3. configs/<name>.ini, and tests/test_<name>.c: the initial loss at its
 *     known value (ln K for K classes), a short trajectory that repeats for
 *     the same seed, and, when the model keeps state besides its parameters
 *     (a data order, an environment), a checkpoint round trip: forgetting
 *     save_state / load_state makes --resume continue with other batches.
 *  A header models/<name>.h only when tests or benchmarks call the model's
 *  functions. Nothing under src/ changes; --help, strict parsing, the saved
 *  config, the resume fingerprint and the unused-key warning come from the
 *  section's table.
 *
 * Two kinds of model plug in:
 *  - supervised (RNN, transformer, MobileNet, MLP): `loss` builds the loss of
 *    the next training batch on the tape; the trainer updates every group from
 *    it through trainer_step (backward with loss scale and accumulation, then
 *    the update pipeline);
 *  - custom-step (WGAN: several critic updates per generator update over two
 *    groups; PPO: no-grad rollouts then epochs of minibatches): `step` runs
 *    one iteration and calls trainer_step() once per optimizer update, naming
 *    the groups that update; the others are frozen for that call. One such
 *    update takes trainer_micro_batches(tr) micro-batches ([train] grad_accum
 *    x the ranks under mpirun): the model prepares the data of all of them,
 *    its loss function computes micro-batch tr->micro (only this rank's are
 *    asked for), and trainer_micro_gather() shares per-micro-batch statistics
 *    (WGAN: K batches of batch_size; PPO: each minibatch split in K).
 * The update contract (train.h) in short:
 *  - `groups` names the update groups; create() registers one ParamSet per
 *    name (ParamSet.name = the group's name) with trainer_add_group(). Each
 *    group reads [optim.G] / [clip.G] over [optim] / [clip];
 *  - all backward passes are the trainer's (trainer_step): a model never calls
 *    ad_backward or the pipeline itself, so loss scale, accumulation, context
 *    reset, zeroing and freezing are the same for every model;
 *  - inside one forward, ad_detach() stops a gradient (x.detach()).
 * Batchnorm train/eval is Ctx.train (the trainer sets it for evaluation and
 * for skipped batches).
 *
 * Metrics columns: trainer_add_metric() in create, trainer_set_metric() in
 * loss / step / evaluate. The trainer sets every model column to NaN before
 * each step, so a column holds a value only on the steps that set it (an
 * accuracy set in evaluate is NaN between evaluations, drawn as points, never
 * as a staircase of stale values).
 *
 * What a model may use of the Trainer (read-only; the rest of struct Trainer
 * is the trainer's own):
 *   tr->rng       the run's random stream ([run] seed): initialisation, data order
 *   tr->ctx       a Ctx for forwards outside `loss` (evaluation, rollouts, samples)
 *   tr->step      the 0-based current step
 *   tr->run       name, out_dir, seed, plots ([run])
 *   tr->train     batch_size, steps, threads, quiet ([train])
 *   tr->diverged  1 once a non-finite loss or gradient stopped the run
 *   tr->log       the metrics rows so far (figures drawn in `finish`)
 *   a group       the UpdateGroup trainer_add_group / trainer_group return
 *                 (tr->groups[i]): its settings (clip.cfg, optim_cfg) and what
 *                 its last update did (last: the clip's statistics)
 * and calls trainer_add_group, trainer_group, trainer_add_metric,
 * trainer_set_metric and (custom-step) trainer_step (train.h).
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
    /* REQUIRED: [model] type = <name>; also the name of its section */
    const char *name;
    /* REQUIRED: one line for --help */
    const char *summary;
    /* REQUIRED: the model's own section [<name>] (a table of CfgKey, config.h) */
    const CfgSection *section;
    /* REQUIRED: size of the struct the section fills (create receives it) */
    size_t cfg_size;
    /* Optional: update-group names, NULL-terminated; NULL = one group of any
     * name that follows [optim] and [clip] (no group sections). */
    const char *const *groups;
    /* REQUIRED: build parameters and data from the filled config struct;
     * register groups (trainer_add_group) and metrics columns with the
     * trainer; a user error (missing data) is die() with what to set. */
    void *(*create)(Trainer *tr, const void *cfg);
    /* REQUIRED, exactly one of loss and step.
     * Supervised: loss of the next training batch, recorded on c. */
    Tensor *(*loss)(void *m, Ctx *c, Trainer *tr);
    /* Optional (supervised): draw the next training batch exactly as `loss`
     * would and discard it. A data-parallel rank skips the other ranks'
     * micro-batches with it; without it the rank runs `loss` without
     * gradients instead (same draws, slower). */
    void (*skip_batch)(void *m, Trainer *tr);
    /* Custom-step (the other of loss and step): one iteration, calling
     * trainer_step() once per optimizer update; returns the loss to log. */
    double (*step)(void *m, Trainer *tr);
    /* Optional: held-out loss, logged in the trainer's val_loss column every
     * [train] eval_every steps; called with gradients off and Ctx.train = 0. */
    double (*evaluate)(void *m, Trainer *tr);
    /* Optional: loss of the trivial predictor, drawn as a reference line. */
    double (*baseline_loss)(const void *m);
    /* Optional: after the last step (e.g. print a generated sample). */
    void (*finish)(void *m, Trainer *tr);
    /* Optional, but REQUIRED when the model keeps state besides its parameters
     * (a data order or position, an environment): a checkpoint (--resume,
     * [recovery] rollbacks) must carry it; save writes it, load restores it
     * or refuses a state that is not its own; 0 = ok. */
    int (*save_state)(const void *m, FILE *f);
    int (*load_state)(void *m, FILE *f);
    /* REQUIRED: free everything create made */
    void (*destroy)(void *m);
    /* Optional: the metrics column that sums up a run (sweeps): NULL = "val_loss";
     * main_metric_higher = 1 when higher is better (accuracy, return). */
    const char *main_metric;
    int main_metric_higher;
    /* Optional, NULL-terminated: model metrics columns drawn one panel each in
     * the run's curves.png (beside loss.png and grad_norm.png). A NaN in such
     * a column means "no value this step" and is left out of the line. */
    const char *const *plot_columns;
    /* Optional, NULL-terminated: the panels of the comparison figure
     * (./train A.ini B.ini) instead of loss and gradient norm, one per column
     * (PPO: episodic_return, approx_kl, entropy); NULL = loss and gradient
     * norm. Independent of plot_columns. */
    const char *const *compare_columns;
    /* Optional, parallel to compare_columns: each panel's title in the several-seeds
     * comparison (NULL: the column's name). */
    const char *const *compare_column_titles;
    /* Optional, NULL-terminated, at most 3: model metrics columns shown in the
     * progress line in place of the loss, each at its last finite value (PPO:
     * episodic_return, approx_kl: its total loss mixes three terms and swings
     * by orders of magnitude). NULL: the loss. */
    const char *const *progress_columns;
    /* Optional, NULL-terminated pairs {old, new, ...}: keys of the model's
     * section that were renamed (an old name is an error naming the new one). */
    const char *const *renamed_keys;
    /* Optional, parallel to plot_columns: a reference line in that column's panel
     * (in curves.png and, matched by name, in the comparison) (NaN:
     * none) and its legend text (PPO: CartPole-v1 is solved at a return of 475). */
    const double *plot_column_refs;
    const char *const *plot_column_ref_labels;
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

/* NULL when d has every field marked REQUIRED above (exactly one of loss and
 * step, save_state with load_state), else what is missing. A test holds every
 * registered model to it; trainer_create asserts the part the loop needs. */
const char *model_def_problem(const ModelDef *d);

#endif
