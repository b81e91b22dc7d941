/* trainer_fixture.h: a small Trainer without a model file, for tests and fuzz
 * targets of the checkpoint reader (tests only). Groups of given sizes, each a
 * matrix and a bias, with [optim]/[clip]/[recovery] defaults plus overrides
 * ("clip.grad=zclip"), random weights and moments; a model-state hook writes
 * and reads a data position as models do. */
#ifndef CLIPLAB_TESTS_TRAINER_FIXTURE_H
#define CLIPLAB_TESTS_TRAINER_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "params.h"
#include "train.h"

typedef struct FixModel {
    int64_t pos; /* a data position, checkpointed through the hooks */
} FixModel;

static int fix_save(const void *m, FILE *f) { return io_put(f, &((const FixModel *)m)->pos, 8, 1); }
static int fix_load(void *m, FILE *f) { return io_get(f, &((FixModel *)m)->pos, 8, 1); }

static const char *const fix_groups[] = {"g0", "g1", "g2", "g3", NULL};
static const ModelDef fix_def = {.name = "fixture", .groups = fix_groups, .save_state = fix_save,
                                 .load_state = fix_load};

typedef struct Fixture {
    Trainer tr;
    TrainerSettings set;
    ParamSet ps[TRAINER_MAX_GROUPS];
    FixModel model;
} Fixture;

/* rows[i] x 3 matrix and a 3-vector per group; overrides in "section.key=value" form. */
static inline Fixture *fix_new(const int *rows, int ngroups, const char *const *over, int nover,
                               uint64_t seed) {
    Fixture *x = xcalloc(1, sizeof *x);
    Trainer *tr = &x->tr;
    tr->def = &fix_def;
    tr->model = &x->model;
    tr->set = &x->set;
    Config cfg;
    const CfgSection *secs[] = {&optim_config_section, &clip_config_section, &recovery_config_section};
    void *structs[] = {&x->set.optim, &x->set.clip, &x->set.recovery};
    cfg_init(&cfg, secs, structs, 3);
    char err[1024];
    for (int i = 0; i < nover; i++)
        ASSERT(cfg_override(&cfg, over[i], err, sizeof err) == CFG_OK, "%s", err);
    recovery_init(&tr->rec, &x->set.recovery, 1000);
    scaler_init(&tr->scaler, &x->set.scaler, 1.0);
    for (int g = 0; g < ngroups; g++) { /* every group on the shared [optim] and [clip] */
        GroupSettings *gs = &x->set.groups[x->set.ngroups++];
        snprintf(gs->name, sizeof gs->name, "%s", fix_groups[g]);
        gs->optim = x->set.optim, gs->clip = x->set.clip;
    }
    rng_seed(&tr->rng, seed, 54);
    for (int g = 0; g < ngroups; g++) {
        param_set_init(&x->ps[g], fix_groups[g], 4);
        int sw[2] = {rows[g], 3}, sb[1] = {3};
        Tensor *w = param_add(&x->ps[g], "w", 2, sw, 1);
        Tensor *b = param_add(&x->ps[g], "b", 1, sb, 0);
        param_alloc(&x->ps[g]);
        param_init_normal(w, &tr->rng, 0, 1);
        param_init_normal(b, &tr->rng, 0, 1);
        UpdateGroup *ug = trainer_add_group(tr, &x->ps[g]);
        for (size_t i = 0; i < x->ps[g].n; i++) {
            ug->optim.m[i] = (float)rng_normal(&tr->rng);
            ug->optim.v[i] = (float)rng_uniform(&tr->rng);
        }
        ug->optim.t = 11 + g, ug->updates = 10 + g, ug->clipped = 3, ug->lr = 0.01;
    }
    tr->step = 42;
    tr->rec.avg = 1.5, tr->rec.seen = 40;
    x->model.pos = 1234;
    cfg_free(&cfg);
    return x;
}

static inline void fix_free(Fixture *x) {
    for (int g = 0; g < x->tr.ngroups; g++) {
        optim_free(&x->tr.groups[g].optim);
        clipper_free(&x->tr.groups[g].clip);
        free(x->tr.groups[g].scratch), free(x->tr.groups[g].acc); /* as trainer_destroy */
        param_set_free(&x->ps[g]);
    }
    recovery_free(&x->tr.rec);
    free(x);
}

#endif
