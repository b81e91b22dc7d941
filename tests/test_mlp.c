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

#define SMALL_TRAIN "[train]\nbatch_size = 32\nsteps = 5\n[optim]\nkind = adam\nlr = 3e-3\n"

/* layers = 2, act = relu spelled out is the network mlp.c built before those
 * keys existed: its first five losses bit for bit, pinned from that code
 * (commit 986c53b, this config). */
Test(mlp, two_relu_layers_are_the_old_network_bit_for_bit) {
    static const double old[5] = {2.321274995803833, 2.2055697441101074, 2.1591241359710693,
                                 2.042506217956543, 1.8555396795272827};
    Setup st;
    Trainer *tr = make(&st, "[mlp]\nhidden = 32\nlayers = 2\nact = relu\ntrain_limit = 256\n"
                            "test_limit = 200\n" SMALL_TRAIN);
    trainer_train(tr);
    double loss[8];
    cr_assert_eq(column(tr, "loss", loss, 0), 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(loss[i], old[i], "step %d: %.17g, the old network gave %.17g", i, loss[i], old[i]);
    done(&st, tr);
}

/* depth L: L + 1 weight matrices fc1..fc{L+1} (784 -> hidden ... -> 10) and
 * their biases; the activation is the one asked for (each gives another loss) */
Test(mlp, layers_and_act_build_that_network) {
    static const char *const acts[3] = {"relu", "sigmoid", "tanh"};
    double first[3];
    for (int a = 0; a < 3; a++) {
        char ini[512];
        snprintf(ini, sizeof ini, "[mlp]\nhidden = 24\nlayers = 5\nact = %s\ntrain_limit = 256\n"
                 "test_limit = 200\n" SMALL_TRAIN, acts[a]);
        Setup st;
        Trainer *tr = make(&st, ini);
        const ParamSet *ps = tr->groups[0].ps;
        cr_assert_eq(ps->count, 12, "5 hidden layers: 6 weights + 6 biases, got %d tensors", ps->count);
        for (int l = 0; l < 6; l++) {
            const Tensor *w = &ps->params[2 * l].t;
            char name[16];
            snprintf(name, sizeof name, "fc%d.w", l + 1);
            cr_assert_str_eq(ps->params[2 * l].name, name);
            cr_assert_eq(w->shape[0], l == 5 ? 10 : 24, "%s rows", name);
            cr_assert_eq(w->shape[1], l == 0 ? 784 : 24, "%s columns", name);
            cr_assert_eq(ps->params[2 * l + 1].t.shape[0], l == 5 ? 10 : 24);
        }
        trainer_train(tr);
        double loss[8];
        column(tr, "loss", loss, 0);
        first[a] = loss[0];
        cr_assert(isfinite(loss[4]) && loss[4] < loss[0], "%s: loss %.4f -> %.4f", acts[a], loss[0], loss[4]);
        done(&st, tr);
    }
    cr_assert(first[0] != first[1] && first[1] != first[2] && first[0] != first[2],
              "relu %.9g, sigmoid %.9g, tanh %.9g: the activation must change the loss", first[0],
              first[1], first[2]);
}

/* docs/amp.md's deep sigmoid network (configs/amp_deep_*.ini, 8 layers of 256,
 * batch 128), step 0: each layer back divides the gradient by ~2^2.9, so the
 * first three layers' weight gradients are exactly zero in fp16 without a loss
 * scale, and not with the dynamic scale (2^16) or in fp32. */
Test(mlp, deep_sigmoid_first_layers_get_zero_gradient_in_fp16_unscaled) {
    static const char *const prec[3] = {"precision = fp32\n", "precision = fp16\n",
                                        "precision = fp16\nloss_scale = dynamic\n"};
    for (int p = 0; p < 3; p++) {
        char ini[512];
        snprintf(ini, sizeof ini, "[mlp]\nlayers = 8\nact = sigmoid\ntrain_limit = 128\ntest_limit = 100\n"
                 "[train]\nbatch_size = 128\nsteps = 1\nquiet = true\n%s[optim]\nkind = adam\nlr = 1e-3\n"
                 "[clip]\ngrad = global_norm\nmax_norm = 1.0\nlog_param_norms = true\n", prec[p]);
        Setup st;
        Trainer *tr = make(&st, ini);
        trainer_train(tr);
        const MetricsLog *l = &tr->pnorm_log;
        cr_assert_eq(l->nrows, 1);
        for (int k = 1; k <= 9; k++) {
            char name[16];
            snprintf(name, sizeof name, "fc%d.w", k);
            int col = metrics_col(l, name);
            cr_assert(col >= 0, "no column %s", name);
            double n = l->rows[col];
            if (p == 1 && k <= 3)
                cr_assert_eq(n, 0.0, "%s: fp16 unscaled, norm %g, expected exactly 0", prec[p], n);
            else
                cr_assert(n > 0, "%s %s: norm %g, expected > 0", prec[p], name, n);
        }
        done(&st, tr);
    }
}
