/* test_mlp.c: the MLP example (models/mlp.c), reached the way ./train reaches
 * it: by name through the registry, its config through its own table (it has
 * no header). Initial loss at ln 10, a short trajectory that learns and is the
 * same for the same seed, and a checkpoint that carries the data order across
 * an epoch boundary (the imageset state the model hooks into save/load). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "train.h"
#include "tsettings.h"

#define SMALL                                                                               \
    "[mlp]\nhidden = 32\ntrain_limit = 256\ntest_limit = 200\n"                             \
    "[train]\nbatch_size = 32\nsteps = 20\neval_every = 10\n[optim]\nkind = adam\nlr = 3e-3\n"

typedef struct Setup {
    TSettings t;
    void *cfg;
} Setup;

static const ModelDef *mlp_def(void) {
    for (int i = 0; i < model_registry_count; i++)
        if (!strcmp(model_registry[i]->name, "mlp")) return model_registry[i];
    cr_assert_fail("no model named mlp in the registry");
    return NULL;
}

static Trainer *make(Setup *st, const char *ini) {
    const ModelDef *def = mlp_def();
    st->cfg = calloc(1, def->cfg_size);
    tsettings_load(&st->t, def->groups, def->section, st->cfg, ini);
    return trainer_create(def, st->cfg, &st->t.s);
}

static void done(Setup *st, Trainer *tr) {
    trainer_destroy(tr);
    cfg_free(&st->t.cfg);
    free(st->cfg);
}

/* column `name` of the trainer's rows from row `from` on */
static int column(const Trainer *tr, const char *name, double *out, size_t from) {
    int col = metrics_col(&tr->log, name);
    cr_assert(col >= 0, "no column %s", name);
    for (size_t r = from; r < tr->log.nrows; r++)
        out[r - from] = tr->log.rows[r * (size_t)tr->log.ncols + col];
    return (int)(tr->log.nrows - from);
}

Test(mlp, initial_loss_is_ln_10_and_twenty_steps_learn) {
    Setup st;
    Trainer *tr = make(&st, SMALL);
    trainer_train(tr);
    double loss[32], acc[32];
    cr_assert_eq(column(tr, "loss", loss, 0), 20);
    column(tr, "val_acc", acc, 0);
    /* torch's Linear init: logits near 0, so the loss of 10 balanced classes */
    cr_assert(fabs(loss[0] - log(10.0)) < 0.05, "initial loss %.4f, ln 10 = %.4f", loss[0], log(10.0));
    double last = (loss[16] + loss[17] + loss[18] + loss[19]) / 4;
    cr_assert(last < loss[0] - 0.8, "loss %.3f -> %.3f over 20 steps", loss[0], last);
    /* evaluated at steps 9 and 19 only (NaN between), well above chance at the end */
    for (int i = 0; i < 20; i++) cr_assert_eq(isnan(acc[i]), i != 9 && i != 19, "val_acc at %d", i);
    cr_assert(acc[19] > 0.5, "test accuracy %.3f after 20 steps", acc[19]);
    done(&st, tr);
}

Test(mlp, same_seed_same_trajectory_other_seed_other) {
    Setup a, b, c;
    Trainer *ta = make(&a, SMALL), *tb = make(&b, SMALL), *tc = make(&c, SMALL "[run]\nseed = 2\n");
    trainer_train(ta), trainer_train(tb), trainer_train(tc);
    double la[32], lb[32], lc[32];
    column(ta, "loss", la, 0), column(tb, "loss", lb, 0), column(tc, "loss", lc, 0);
    cr_assert(memcmp(la, lb, 20 * sizeof *la) == 0, "same seed, same losses");
    cr_assert(memcmp(la, lc, 20 * sizeof *la) != 0, "another seed, other losses");
    done(&a, ta), done(&b, tb), done(&c, tc);
}

/* 256 examples in batches of 32: an epoch is 8 steps. A checkpoint after 12
 * steps (mid second epoch) restored into a fresh trainer continues with the
 * batches, hence the losses, of the uninterrupted run. */
Test(mlp, checkpoint_carries_the_data_order_across_epochs) {
    Setup a, b;
    Trainer *ta = make(&a, SMALL), *tb = make(&b, SMALL);
    ta->train.steps = 12;
    trainer_train(ta);
    char *buf, err[512];
    size_t len;
    cr_assert_eq(ckpt_to_memory(ta, &buf, &len), 0);
    ta->train.steps = 20;
    trainer_train(ta);
    cr_assert_eq(ckpt_from_memory(tb, buf, len, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tb->step, 12);
    trainer_train(tb);
    double la[32], lb[32];
    cr_assert_eq(column(ta, "loss", la, 12), 8);
    cr_assert_eq(column(tb, "loss", lb, 0), 8);
    for (int i = 0; i < 8; i++) cr_assert_eq(la[i], lb[i], "step %d: %.9g vs %.9g", 12 + i, la[i], lb[i]);
    free(buf);
    done(&a, ta), done(&b, tb);
}
