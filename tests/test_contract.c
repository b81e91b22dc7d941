/* test_contract.c: the model contract of model.h held for every model at once:
 * each registered ModelDef has the fields model.h marks REQUIRED (and the
 * check itself names what is missing); model metric columns are NaN on every
 * step that does not set them (the trainer resets them, no model has to). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "train.h"
#include "tsettings.h"

Test(contract, every_registered_model_has_the_required_fields) {
    cr_assert(model_registry_count >= 7);
    for (int i = 0; i < model_registry_count; i++) {
        const ModelDef *d = model_registry[i];
        const char *p = model_def_problem(d);
        cr_assert_null(p, "model %s: %s", d->name, p ? p : "");
        for (int j = 0; j < i; j++) cr_assert_str_neq(model_registry[j]->name, d->name);
    }
}

/* ---------------------------------------------------------------- a toy model */

typedef struct Toy {
    ParamSet ps;
    Tensor *w;
    int col_even, col_acc;
} Toy;

static void *toy_create(Trainer *tr, const void *cfg) {
    (void)cfg;
    Toy *m = calloc(1, sizeof *m);
    param_set_init(&m->ps, "model", 1);
    m->w = param_add(&m->ps, "w", 1, (int[]){2}, 1);
    param_alloc(&m->ps);
    m->w->data[0] = 1.0f, m->w->data[1] = -1.0f;
    trainer_add_group(tr, &m->ps);
    m->col_even = trainer_add_metric(tr, "even_only");
    m->col_acc = trainer_add_metric(tr, "acc");
    return m;
}

/* the column "even_only" is set on even steps only, "acc" only by evaluate */
static Tensor *toy_loss(void *mp, Ctx *c, Trainer *tr) {
    Toy *m = mp;
    if (tr->step % 2 == 0) trainer_set_metric(tr, m->col_even, (double)tr->step);
    return ad_sum(c, ad_mul(c, m->w, m->w));
}

static double toy_evaluate(void *mp, Trainer *tr) {
    Toy *m = mp;
    trainer_set_metric(tr, m->col_acc, 0.5);
    return 1.0;
}

static void toy_destroy(void *mp) {
    Toy *m = mp;
    param_set_free(&m->ps);
    free(m);
}

static const CfgSection toy_section = {"toy", NULL, 0, "test model", NULL};
static const ModelDef toy_def = {.name = "toy", .summary = "test model", .section = &toy_section,
                                 .cfg_size = 1, .create = toy_create, .loss = toy_loss,
                                 .evaluate = toy_evaluate, .destroy = toy_destroy};

Test(contract, model_columns_hold_a_value_only_on_the_steps_that_set_it) {
    cr_assert_null(model_def_problem(&toy_def));
    TSettings st;
    tsettings_load(&st, NULL, NULL, NULL, "[train]\nsteps = 9\neval_every = 4\n[optim]\nlr = 0.1\n");
    Trainer *tr = trainer_create(&toy_def, NULL, &st.s);
    trainer_train(tr);
    const MetricsLog *l = &tr->log;
    cr_assert_eq(l->nrows, 9);
    int ce = metrics_col(l, "even_only"), ca = metrics_col(l, "acc"), cv = metrics_col(l, "val_loss");
    cr_assert(ce >= 0 && ca >= 0 && cv >= 0);
    for (size_t r = 0; r < 9; r++) {
        const double *row = l->rows + r * (size_t)l->ncols;
        int eval = r == 3 || r == 7 || r == 8; /* every 4 steps, and the last */
        if (r % 2 == 0) cr_assert_eq(row[ce], (double)r, "step %zu", r);
        else cr_assert(isnan(row[ce]), "step %zu: a value not set this step is NaN, got %g", r, row[ce]);
        cr_assert_eq(isnan(row[ca]), !eval, "step %zu: acc %g", r, row[ca]);
        cr_assert_eq(isnan(row[cv]), !eval, "step %zu: val_loss %g", r, row[cv]);
    }
    trainer_destroy(tr);
    cfg_free(&st.cfg);
}

static int toy_def_save(const void *m, FILE *f) {
    (void)m, (void)f;
    return 0;
}

Test(contract, the_check_names_what_is_missing) {
    ModelDef d = toy_def;
    d.step = NULL, d.loss = NULL;
    cr_assert(strstr(model_def_problem(&d), "loss"));
    d = toy_def;
    d.load_state = NULL, d.save_state = NULL;
    cr_assert_null(model_def_problem(&d));
    d.save_state = toy_def_save;
    cr_assert(strstr(model_def_problem(&d), "load_state"));
    d = toy_def;
    d.section = &(const CfgSection){"toys", NULL, 0, "", NULL};
    cr_assert(strstr(model_def_problem(&d), "named like the model"));
    d = toy_def;
    d.destroy = NULL;
    cr_assert(strstr(model_def_problem(&d), "destroy"));
}

/* ---------------------------------------------------------------- clip methods */

/* Every [clip] key but the general ones is read by some methods and not by
 * others: a method's new keys without their row in clip_key_unused's readers
 * would count as read by every method, and set for another method would never
 * warn. Each method's name is one of the grad choices, in enum order. */
Test(contract, every_method_specific_clip_key_names_its_readers) {
    const CfgSection *s = &clip_config_section;
    static const char *const general[] = {"grad", "weight", "weight_only", "weight_exclude",
                                          "log_param_norms"};
    const CfgKey *grad = NULL;
    for (int j = 0; j < s->nkeys; j++)
        if (!strcmp(s->keys[j].name, "grad")) grad = &s->keys[j];
    cr_assert(grad && grad->choices);
    int nchoices = 0;
    while (grad->choices[nchoices]) nchoices++;
    cr_assert_eq(nchoices, CLIP_METHOD_COUNT);
    for (int j = 0; j < s->nkeys; j++) {
        const CfgKey *k = &s->keys[j];
        int is_general = 0;
        for (size_t g = 0; g < sizeof general / sizeof *general; g++) is_general |= !strcmp(k->name, general[g]);
        if (is_general) continue;
        int readers = 0;
        for (int m = 0; m < CLIP_METHOD_COUNT; m++) {
            ClipConfig c;
            memset(&c, 0, sizeof c);
            c.grad = m;
            readers += s->unused(&c, k) == NULL;
        }
        cr_assert(readers < CLIP_METHOD_COUNT,
                  "[clip] %s counts as read by every method: give it a row in clip_key_unused's "
                  "readers (clipper.c)", k->name);
    }
}
