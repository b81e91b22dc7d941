/* test_pipeline.c: the update contract and the order of the update pipeline
 * (train.h), on toy models whose every number is computed by hand here.
 *
 * Each pipeline test is built so that the right order and every wrong order
 * the review listed give different weights:
 *   accumulate  grad_accum 2: the update sees the MEAN of the micro-batch
 *               gradients (drop the 1/k and the step doubles)
 *   unscale     loss_scale 4 gives the same step as loss_scale 1
 *   non-finite  an infinite gradient with on_nonfinite = skip leaves the
 *               weights as they were (without the check, the clip's 0*inf
 *               makes them NaN)
 *   clip order  loss_scale 8 + global-norm clip 1: unscale then clip steps by
 *               (0.6, 0.8); clip then unscale would step by (0.075, 0.1)
 *   weight clip clamp after the step: |w| ends at 0.01; before it, at 0.1
 *   zero        two steps of the same gradient move w by 2*lr*g; a stale
 *               gradient would make it 3*lr*g
 * and the contract: two groups from one INI with different optimizers, both
 * stepped and zeroed by the supervised loop; no gradient crosses into a group
 * that a step does not update; ad_detach stops a gradient; a rolled-back
 * step's skipped batches leave batchnorm statistics alone; grad_norms.csv has
 * every tensor. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops.h"
#include "params.h"
#include "recovery.h"
#include "train.h"
#include "tsettings.h"

/* ---------------------------------------------------------------- the toy model
 * Groups "a" (w[2]) and "b" (u[2]). The loss depends on toy_mode. */

enum { TOY_DOT_X, TOY_DOT_AB, TOY_DETACH, TOY_BN };

typedef struct Toy {
    ParamSet a, b;
    Tensor *w, *u, *bn_w, *bn_b;
    int mode;
    long batch;            /* data position: advances on every loss call (checkpointed) */
    float x[4][2];         /* micro-batch inputs, cycled */
    int nx;
    int saw_frozen_u;      /* a loss call found u without a gradient */
    long spike_batch;      /* TOY_BN: the batch whose loss spikes */
} Toy;

static int toy_mode;
static int toy_two_groups = 1;
static int toy_ntensors = 1;  /* tensors in group a (grad_norms.csv test) */

static const char *const toy_groups[] = {"a", "b", NULL};
static const char *const toy_one_group[] = {"a", NULL};

static void *toy_create(Trainer *tr, const void *cfg) {
    (void)cfg;
    Toy *m = calloc(1, sizeof *m);
    m->mode = toy_mode;
    param_set_init(&m->a, "a", toy_ntensors + 4);
    m->w = param_add(&m->a, "w", 1, (int[]){2}, 0);
    for (int i = 1; i < toy_ntensors; i++) {
        char name[24];
        snprintf(name, sizeof name, "extra%d", i);
        param_add(&m->a, name, 1, (int[]){1}, 0);
    }
    if (m->mode == TOY_BN) {
        m->bn_w = param_add(&m->a, "bn_w", 1, (int[]){2}, 0);
        m->bn_b = param_add(&m->a, "bn_b", 1, (int[]){2}, 0);
        param_add_buffer(&m->a, "bn_mean", 1, (int[]){2});
        param_add_buffer(&m->a, "bn_var", 1, (int[]){2});
    }
    param_alloc(&m->a);
    if (m->mode == TOY_BN) {
        param_init_const(m->bn_w, 1.0f);
        Param *v = param_find(&m->a, "bn_var");
        param_init_const(&v->t, 1.0f);
    }
    trainer_add_group(tr, &m->a);
    if (toy_two_groups) {
        param_set_init(&m->b, "b", 2);
        m->u = param_add(&m->b, "u", 1, (int[]){2}, 0);
        param_alloc(&m->b);
        m->u->data[0] = 2.0f, m->u->data[1] = -3.0f;
        trainer_add_group(tr, &m->b);
    }
    m->spike_batch = -1;
    return m;
}

static void toy_destroy(void *p) {
    Toy *m = p;
    param_set_free(&m->a);
    if (toy_two_groups) param_set_free(&m->b);
    free(m);
}

static Tensor *toy_forward(void *p, Ctx *c, Trainer *tr, void *arg) {
    (void)tr, (void)arg;
    Toy *m = p;
    long k = m->batch++;
    if (m->u && !m->u->grad) m->saw_frozen_u = 1;
    if (m->mode == TOY_BN) {
        /* batch k: two rows whose channel means are (k, -k); the loss reads w
         * only, the batchnorm output times 0 keeps the op on the tape */
        float xb[4] = {(float)k - 1, -(float)k + 1, (float)k + 1, -(float)k - 1};
        Tensor *xs = tensor_from(c, 2, (int[]){2, 2}, xb);
        Param *rm = param_find(&m->a, "bn_mean"), *rv = param_find(&m->a, "bn_var");
        Tensor *h = ad_batchnorm(c, xs, m->bn_w, m->bn_b, rm->t.data, rv->t.data, 0.5f, 1e-5f);
        Tensor *base = ad_add(c, ad_scale(c, ad_sum(c, h), 0.0f), ad_sum(c, m->w));
        return ad_add_scalar(c, base, k == m->spike_batch ? 100.0f : 1.0f);
    }
    if (m->mode == TOY_DOT_AB) return ad_sum(c, ad_mul(c, m->w, m->u));
    if (m->mode == TOY_DETACH) return ad_sum(c, ad_mul(c, m->w, ad_detach(c, ad_scale(c, m->u, 2.0f))));
    cr_assert(m->nx > 0, "set_x before a TOY_DOT_X step");
    Tensor *x = tensor_from(c, 1, (int[]){2}, m->x[k % m->nx]);
    return ad_sum(c, ad_mul(c, m->w, x));
}

static Tensor *toy_loss(void *p, Ctx *c, Trainer *tr) { return toy_forward(p, c, tr, NULL); }

static int toy_save(const void *p, FILE *f) {
    const Toy *m = p;
    return fwrite(&m->batch, sizeof m->batch, 1, f) == 1 ? 0 : -1;
}
static int toy_load(void *p, FILE *f) {
    Toy *m = p;
    return fread(&m->batch, sizeof m->batch, 1, f) == 1 ? 0 : -1;
}

static ModelDef toy_def = {
    .name = "toy",
    .summary = "test model",
    .groups = toy_groups,
    .create = toy_create,
    .loss = toy_loss,
    .save_state = toy_save,
    .load_state = toy_load,
    .destroy = toy_destroy,
};

/* ---------------------------------------------------------------- settings from an INI */

typedef TSettings Setup;

static Setup *last_setup; /* freed by finish() */

static Trainer *make(Setup *st, int mode, const char *ini) {
    toy_mode = mode;
    tsettings_load(st, toy_def.groups, NULL, NULL, ini);
    last_setup = st;
    return trainer_create(&toy_def, NULL, &st->s);
}

static Toy *toy(Trainer *tr) { return tr->model; }

/* The trainer, then the Config that named its settings (its group sections). */
static void finish(Trainer *tr) {
    trainer_destroy(tr);
    if (last_setup) cfg_free(&last_setup->cfg);
    last_setup = NULL;
}

static void set_x(Toy *m, int k, float x0, float x1) {
    m->x[k][0] = x0, m->x[k][1] = x1;
    if (k + 1 > m->nx) m->nx = k + 1;
}

static double step_a(Trainer *tr) {
    UpdateGroup *a = trainer_group(tr, "a");
    return trainer_step(tr, &a, 1, toy_forward, tr->model, NULL);
}

static void assert_w(Trainer *tr, float w0, float w1) {
    const float *w = toy(tr)->w->data;
    cr_assert(fabsf(w[0] - w0) <= 1e-6f && fabsf(w[1] - w1) <= 1e-6f, "w = (%.9g, %.9g), expected (%.9g, %.9g)",
              w[0], w[1], w0, w1);
}

static void assert_all_grads_zero(Trainer *tr) {
    for (int g = 0; g < tr->ngroups; g++)
        for (size_t i = 0; i < tr->groups[g].ps->n; i++)
            cr_assert_eq(tr->groups[g].ps->grad[i], 0.0f, "group %s grad[%zu] = %g after the update",
                         tr->groups[g].ps->name, i, tr->groups[g].ps->grad[i]);
}

#define SGD "[optim]\nkind = sgd\nlr = 0.1\n"

/* ---------------------------------------------------------------- pipeline order */

Test(pipeline, accumulation_takes_the_mean) {
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_X, SGD "[train]\ngrad_accum = 2\n");
    set_x(toy(tr), 0, 1, 2);
    set_x(toy(tr), 1, 3, 4);
    step_a(tr);
    assert_w(tr, -0.1f * 2, -0.1f * 3); /* mean gradient (2, 3); the sum would step twice as far */
    cr_assert_eq(toy(tr)->batch, 2, "two micro-batches drawn");
    finish(tr);
}

Test(pipeline, loss_scale_is_undone_before_the_step) {
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_X, SGD "[train]\nloss_scale = 4\n");
    set_x(toy(tr), 0, 1, 2);
    step_a(tr);
    assert_w(tr, -0.1f, -0.2f); /* the same as loss_scale 1 */
    finish(tr);
}

Test(pipeline, nonfinite_gradient_is_not_applied) {
    Setup st;
    /* x = 1e30 with loss_scale 1e12: loss 0 (w = 0), gradient 1e42 = inf in float32 */
    Trainer *tr = make(&st, TOY_DOT_X,
                       SGD "[train]\nloss_scale = 1e12\non_nonfinite = skip\n[clip]\ngrad = global_norm\n");
    set_x(toy(tr), 0, 1e30f, 1e30f);
    double loss = step_a(tr);
    cr_assert_eq(loss, 0.0);
    assert_w(tr, 0.0f, 0.0f);
    UpdateGroup *a = trainer_group(tr, "a");
    cr_assert_eq(a->skipped, 1);
    cr_assert_eq(a->updates, 0);
    cr_assert(isinf(a->last.pre_norm));
    assert_all_grads_zero(tr);
    finish(tr);
}

Test(pipeline, nonfinite_check_in_pipeline_update) {
    /* the same stage, called directly: an inf element is refused, grads zeroed */
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_X, SGD "[clip]\ngrad = global_norm\n");
    UpdateGroup *a = trainer_group(tr, "a");
    a->ps->grad[0] = INFINITY, a->ps->grad[1] = 1.0f;
    cr_assert_eq(pipeline_update(a, 1.0, 0.1), PIPE_NONFINITE);
    assert_w(tr, 0.0f, 0.0f);
    cr_assert_eq(a->ps->grad[0], 0.0f);
    cr_assert_eq(a->ps->grad[1], 0.0f);
    finish(tr);
}

Test(pipeline, clip_sees_unscaled_gradients) {
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_X,
                       "[optim]\nkind = sgd\nlr = 1\n[train]\nloss_scale = 8\n"
                       "[clip]\ngrad = global_norm\nmax_norm = 1\n");
    set_x(toy(tr), 0, 3, 4);
    step_a(tr);
    assert_w(tr, -0.6f, -0.8f); /* (3,4) clipped to norm 1; clip-then-unscale: (-0.075, -0.1) */
    UpdateGroup *a = trainer_group(tr, "a");
    cr_assert_float_eq(a->last.pre_norm, 5.0, 1e-6, "pre-clip norm of the unscaled gradient");
    finish(tr);
}

Test(pipeline, weight_clip_after_the_step) {
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_X, SGD "[clip]\nweight = 0.01\n");
    set_x(toy(tr), 0, -1, 1);
    step_a(tr);
    assert_w(tr, 0.01f, -0.01f); /* stepped to (0.1, -0.1), then clamped; clamp-then-step: (0.1, -0.1) */
    finish(tr);
}

Test(pipeline, gradients_zeroed_between_updates) {
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_X, SGD);
    set_x(toy(tr), 0, 1, 2);
    step_a(tr);
    assert_all_grads_zero(tr);
    step_a(tr);
    assert_w(tr, -0.2f, -0.4f); /* a stale gradient would give (-0.3, -0.6) */
    finish(tr);
}

Test(pipeline, pipeline_update_zeroes) {
    /* backward ADDS into the buffers: without step 8, the second update would
     * see the first gradient again */
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_X, SGD);
    UpdateGroup *a = trainer_group(tr, "a");
    for (int k = 0; k < 2; k++) {
        a->ps->grad[0] += 1.0f, a->ps->grad[1] += 2.0f;
        cr_assert_eq(pipeline_update(a, 1.0, 0.1), PIPE_APPLIED);
    }
    assert_w(tr, -0.2f, -0.4f);
    finish(tr);
}

/* What the clip did to the step, by hand: gradient (3, 4) clipped elementwise at 1 is
 * (1, 1): cos = 7 / (5 sqrt 2) (turned); the SGD step moves w by 0.1 (1, 1), norm 0.1 sqrt 2;
 * the coefficient post/pre = sqrt 2 / 5, so eff_lr = 0.1 sqrt 2 / 5. Global-norm clipping
 * only scales: cos = 1, the step is lr * 1 long. */
Test(pipeline, clip_cosine_update_norm_and_effective_lr) {
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_X, SGD "[clip]\ngrad = value\nvalue = 1\n");
    UpdateGroup *a = trainer_group(tr, "a");
    a->ps->grad[0] = 3.0f, a->ps->grad[1] = 4.0f;
    cr_assert_eq(pipeline_update(a, 1.0, 0.1), PIPE_APPLIED);
    cr_expect_float_eq(a->cos_clip, 7.0 / (5.0 * sqrt(2.0)), 1e-7, "cos %.9g", a->cos_clip);
    cr_expect_float_eq(a->update_norm, 0.1 * sqrt(2.0), 1e-7, "update norm %.9g", a->update_norm);
    cr_expect_float_eq(a->eff_lr, 0.1 * sqrt(2.0) / 5.0, 1e-7, "eff_lr %.9g", a->eff_lr);
    finish(tr);
    tr = make(&st, TOY_DOT_X, SGD "[clip]\ngrad = global_norm\nmax_norm = 1\n");
    a = trainer_group(tr, "a");
    a->ps->grad[0] = 3.0f, a->ps->grad[1] = 4.0f;
    cr_assert_eq(pipeline_update(a, 1.0, 0.1), PIPE_APPLIED);
    cr_expect_float_eq(a->cos_clip, 1.0, 1e-7, "cos %.9g", a->cos_clip);
    cr_expect_float_eq(a->update_norm, 0.1, 1e-7, "update norm %.9g", a->update_norm);
    cr_expect_float_eq(a->eff_lr, 0.1 / 5.0, 1e-7, "eff_lr %.9g", a->eff_lr);
    a->ps->grad[0] = INFINITY; /* refused: nothing measured */
    cr_assert_eq(pipeline_update(a, 1.0, 0.1), PIPE_NONFINITE);
    cr_expect(isnan(a->cos_clip) && isnan(a->update_norm) && isnan(a->eff_lr));
    finish(tr);
}

/* ---------------------------------------------------------------- the contract */

Test(contract, groups_get_their_own_optimizer_from_one_ini) {
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_AB,
                       SGD "[optim.b]\nkind = adam\nlr = 0.01\n[clip.a]\nweight = 0.05\n");
    UpdateGroup *a = trainer_group(tr, "a"), *b = trainer_group(tr, "b");
    cr_assert_eq(a->optim.cfg.kind, OPTIM_SGD);
    cr_assert_eq(b->optim.cfg.kind, OPTIM_ADAM);
    cr_assert_eq(b->optim.cfg.beta1, 0.9, "keys [optim.b] does not set follow [optim]'s defaults");
    cr_assert_eq(a->clip.cfg.weight, 0.05);
    cr_assert_eq(b->clip.cfg.weight, 0.0, "[clip.a] does not reach group b");
    /* the supervised loop: one loss sum(w*u) updates both groups */
    toy(tr)->w->data[0] = 1.0f, toy(tr)->w->data[1] = 1.0f;
    tr->train.steps = 1;
    trainer_train(tr);
    /* a: SGD on grad u = (2, -3): w = (0.8, 1.3), then clamped to +-0.05.
     * b: Adam's first step moves each element by lr against the sign of its
     * gradient w = (1, 1): u = (1.99, -3.01). */
    assert_w(tr, 0.05f, 0.05f);
    cr_assert_float_eq(toy(tr)->u->data[0], 1.99f, 1e-6);
    cr_assert_float_eq(toy(tr)->u->data[1], -3.01f, 1e-6);
    cr_assert_eq(a->updates, 1);
    cr_assert_eq(b->updates, 1, "the supervised loop steps every group");
    assert_all_grads_zero(tr);
    finish(tr);
}

Test(contract, no_gradient_crosses_into_a_frozen_group) {
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_AB, SGD);
    toy(tr)->w->data[0] = 1.0f, toy(tr)->w->data[1] = 1.0f;
    step_a(tr); /* only a updates: loss sum(w*u) */
    cr_assert(toy(tr)->saw_frozen_u, "u carried a gradient while b was not updated");
    assert_w(tr, 1.0f - 0.1f * 2.0f, 1.0f + 0.1f * 3.0f);
    cr_assert_eq(toy(tr)->u->data[0], 2.0f);
    cr_assert_eq(toy(tr)->u->data[1], -3.0f);
    assert_all_grads_zero(tr);
    cr_assert(toy(tr)->u->grad, "b is unfrozen after the step");
    /* now b alone: u moves by -lr * w */
    UpdateGroup *b = trainer_group(tr, "b");
    toy(tr)->saw_frozen_u = 0;
    trainer_step(tr, &b, 1, toy_forward, tr->model, NULL);
    cr_assert(!toy(tr)->saw_frozen_u);
    cr_assert_float_eq(toy(tr)->u->data[0], 2.0f - 0.1f * 0.8f, 1e-6);
    cr_assert_eq(trainer_group(tr, "a")->updates, 1, "a was not stepped by b's update");
    finish(tr);
}

Test(contract, detach_stops_the_gradient) {
    Setup st;
    Trainer *tr = make(&st, TOY_DETACH, SGD);
    toy(tr)->w->data[0] = 1.0f, toy(tr)->w->data[1] = 1.0f;
    UpdateGroup *both[] = {trainer_group(tr, "a"), trainer_group(tr, "b")};
    trainer_step(tr, both, 2, toy_forward, tr->model, NULL);
    assert_w(tr, 1.0f - 0.1f * 4.0f, 1.0f + 0.1f * 6.0f); /* d/dw sum(w * 2u) = 2u */
    cr_assert_eq(toy(tr)->u->data[0], 2.0f, "u changed through a detached path");
    cr_assert_eq(toy(tr)->u->data[1], -3.0f);
    finish(tr);
}

Test(contract, skipped_batches_leave_batchnorm_statistics) {
    toy_two_groups = 0;
    toy_def.groups = toy_one_group;
    Setup st;
    Trainer *tr = make(&st, TOY_BN,
                       SGD "[train]\nsteps = 6\n[recovery]\nenabled = true\nsnapshot_every = 1\n"
                           "rollback_steps = 0\nskip_batches = 3\nwarmup = 1\nsave_file = false\n");
    toy(tr)->spike_batch = 5;
    trainer_train(tr);
    cr_assert_eq(tr->rec.nevents, 1, "the spike at batch 5 was rolled back");
    cr_assert_eq(toy(tr)->batch, 9, "batches 0-4, spike 5, skipped 5-7 again, then 8");
    /* running mean (momentum 0.5) over the batches trained on: 0,1,2,3,4 and 8
     * (channel means k and -k); the spike's forward was undone by the rollback */
    double rm = 0.0;
    const int trained[] = {0, 1, 2, 3, 4, 8};
    for (int i = 0; i < 6; i++) rm = 0.5 * rm + 0.5 * trained[i];
    const float *got = param_find(&toy(tr)->a, "bn_mean")->t.data;
    cr_assert_float_eq(got[0], rm, 1e-5, "running mean %g, expected %g", got[0], rm);
    cr_assert_float_eq(got[1], -rm, 1e-5);
    finish(tr);
    toy_two_groups = 1;
    toy_def.groups = toy_groups;
}

Test(contract, grad_norms_log_every_tensor) {
    toy_ntensors = 200;
    Setup st;
    Trainer *tr = make(&st, TOY_DOT_AB, SGD "[clip]\nlog_param_norms = true\n[train]\nsteps = 2\n");
    trainer_train(tr);
    cr_assert_eq(tr->pnorm_log.ncols, 1 + 200 + 1, "step + 200 tensors of a + b.u");
    cr_assert_str_eq(tr->pnorm_log.names[200], "extra199");
    cr_assert_str_eq(tr->pnorm_log.names[201], "b.u");
    cr_assert_eq(tr->pnorm_log.nrows, 2);
    finish(tr);
    toy_ntensors = 1;
}

Test(contract, group_section_of_another_model_is_refused) {
    Setup st;
    toy_mode = TOY_DOT_X;
    memset(&st, 0, sizeof st);
    const CfgSection *secs[] = {&run_config_section, &train_config_section, &optim_config_section,
                                &clip_config_section, &recovery_config_section};
    void *structs[] = {&st.s.run, &st.s.train, &st.s.optim, &st.s.clip, &st.s.recovery};
    cfg_init(&st.cfg, secs, structs, 5);
    int n = train_groups_register(&st.cfg, st.store, 0, 4, toy_groups);
    char err[512];
    cr_assert_eq(cfg_override(&st.cfg, "optim.b.lr=0.5", err, sizeof err), CFG_OK, "%s", err);
    cfg_resolve_groups(&st.cfg);
    cr_assert_eq(st.store[1].optim.lr, 0.5, "override of a group key");
    cr_assert_eq(st.store[0].optim.lr, st.s.optim.lr, "group a follows [optim]");
    cr_assert_eq(train_groups_select(&st.cfg, &st.s, st.store, n, toy_one_group, err, sizeof err), -1);
    cr_assert(strstr(err, "[optim.b]") && strstr(err, "[optim.a]"), "%s", err);
    cfg_free(&st.cfg);
}

/* The recovery ring: a step stored again (the trainer passes the restored
 * step's checkpoint again after a rollback, and resume stores every slot) keeps
 * one copy, even when the rollback emptied a slot ahead of it in the ring. */
Test(recovery, ring_keeps_one_copy_of_a_step) {
    RecoveryConfig cfg = {.enabled = 1, .spike_factor = 3, .ema_beta = 0.9, .checkpoint_every = 10,
                          .rollback_steps = 10, .skip_batches = 0, .max_rollbacks = 5};
    Recovery r;
    recovery_init(&r, &cfg, 1000);
    cr_assert_eq(r.nring, 4);
    for (long s = 0; s <= 40; s += 10) recovery_store(&r, s, malloc(8), 8); /* 40 replaces 0 */
    recovery_record(&r, 45, 10.0, 1.0, 10); /* forgets 20, 30 and 40 (slot 0) */
    recovery_store(&r, 10, malloc(8), 8);
    recovery_store(&r, 20, malloc(8), 8);
    int tens = 0, held = 0;
    for (int i = 0; i < r.nring; i++) tens += r.ring[i].step == 10, held += r.ring[i].step >= 0;
    cr_assert_eq(tens, 1, "step 10 is in %d slots", tens);
    cr_assert_eq(held, 2, "%d slots hold a checkpoint (10 and 20)", held);
    recovery_free(&r);
}
