/* mlp.c: a multilayer perceptron on Fashion-MNIST (784 -> hidden x layers
 * -> 10, cross-entropy; by default two hidden ReLU layers), the smallest image
 * classifier. `layers` and `act = sigmoid | tanh` make it the textbook deep
 * saturating network whose first layers' gradients vanish (docs/amp.md): everything about the data (keys, loading, normalisation,
 * shuffled batches and their checkpoint state, evaluation, the baseline) is
 * src/data/imageset.h's, so this file is the network and the ModelDef.
 *
 * Init as torch.nn.Linear: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
 * Weight decay (Param.decay) on the weight matrices only. */
#include <stddef.h>
#include <stdlib.h>

#include "common.h"
#include "imageset.h"
#include "ops.h"
#include "train.h"

#define MLP_MAX_LAYERS 64

enum { MLP_RELU, MLP_SIGMOID, MLP_TANH };
static const char *const act_choices[] = {"relu", "sigmoid", "tanh", NULL};

typedef struct MlpConfig {
    int hidden;                   /* units of each hidden layer */
    int layers;                   /* number of hidden layers */
    int act;                      /* MLP_RELU, MLP_SIGMOID, MLP_TANH */
    ImageSetConfig data;
} MlpConfig;

static const CfgKey mlp_keys[] = {
    {"hidden", CFG_INT, offsetof(MlpConfig, hidden), "256", 1, 65536, NULL,
     "units of each hidden layer"},
    {"layers", CFG_INT, offsetof(MlpConfig, layers), "2", 1, MLP_MAX_LAYERS, NULL,
     "number of hidden layers (the network has layers + 1 weight matrices)"},
    {"act", CFG_ENUM, offsetof(MlpConfig, act), "relu", 0, 0, act_choices,
     "activation after each hidden layer: relu, or sigmoid / tanh (saturating: with many "
     "layers the first layers' gradients vanish geometrically)"},
    IMAGESET_CFG_KEYS(MlpConfig, data),
};
static const CfgSection mlp_section = {"mlp", mlp_keys, (int)(sizeof mlp_keys / sizeof *mlp_keys),
                                       "multilayer perceptron on Fashion-MNIST (IDX files)", NULL};

typedef struct Mlp {
    ParamSet ps;
    int layers, act;
    Tensor *w[MLP_MAX_LAYERS + 1], *b[MLP_MAX_LAYERS + 1]; /* layer l: w[l][out,in], b[l][out] */
    ImageSet data;
    int m_acc;                    /* metrics column val_acc */
} Mlp;

/* logits[B,10] of normalised images x[B,1,H,W] */
static Tensor *mlp_logits(void *mp, Ctx *c, const float *x, int B) {
    Mlp *m = mp;
    Tensor *h = tensor_from(c, 2, (int[]){B, m->data.rows * m->data.cols}, x);
    for (int l = 0; l < m->layers; l++) {
        h = ad_linear(c, h, m->w[l], m->b[l]);
        h = m->act == MLP_SIGMOID ? ad_sigmoid(c, h) : m->act == MLP_TANH ? ad_tanh(c, h) : ad_relu(c, h);
    }
    return ad_linear(c, h, m->w[m->layers], m->b[m->layers]);
}

static void *mlp_create(Trainer *tr, const void *cfgp) {
    const MlpConfig *cfg = cfgp;
    Mlp *m = xcalloc(1, sizeof *m);
    char err[1024];
    if (imageset_load(&m->data, &cfg->data, "mlp", 10, err, sizeof err) != 0) die("%s", err);
    int L = cfg->layers, sizes[MLP_MAX_LAYERS + 2];
    m->layers = L;
    m->act = cfg->act;
    sizes[0] = m->data.rows * m->data.cols;
    for (int l = 1; l <= L; l++) sizes[l] = cfg->hidden;
    sizes[L + 1] = 10;
    param_set_init(&m->ps, "model", 2 * (L + 1));
    for (int l = 0; l <= L; l++) {
        char name[16];
        snprintf(name, sizeof name, "fc%d.w", l + 1);
        m->w[l] = param_add(&m->ps, name, 2, (int[]){sizes[l + 1], sizes[l]}, 1);
        snprintf(name, sizeof name, "fc%d.b", l + 1);
        m->b[l] = param_add(&m->ps, name, 1, (int[]){sizes[l + 1]}, 0);
    }
    param_alloc(&m->ps);
    for (int l = 0; l <= L; l++) {
        param_init_fanin_uniform(m->w[l], &tr->rng, sizes[l]);
        param_init_fanin_uniform(m->b[l], &tr->rng, sizes[l]);
    }
    if (imageset_start(&m->data, &tr->rng, tr->train.batch_size, IMAGESET_SHUFFLE, err,
                       sizeof err) != 0)
        die("%s", err);
    trainer_add_group(tr, &m->ps);
    m->m_acc = trainer_add_metric(tr, "val_acc");
    return m;
}

static Tensor *mlp_loss(void *mp, Ctx *c, Trainer *tr) {
    (void)tr;
    Mlp *m = mp;
    int B = imageset_next(&m->data);
    return ad_cross_entropy(c, mlp_logits(m, c, m->data.x, B), m->data.y);
}

static void mlp_skip_batch(void *mp, Trainer *tr) {
    (void)tr;
    imageset_skip(&((Mlp *)mp)->data);
}

static double mlp_evaluate(void *mp, Trainer *tr) {
    Mlp *m = mp;
    double loss, acc;
    imageset_evaluate(&m->data, &m->data.test, m->data.test.n, &tr->ctx, mlp_logits, m, &loss,
                      &acc);
    trainer_set_metric(tr, m->m_acc, acc);
    return loss;
}

static double mlp_baseline(const void *mp) {
    return imageset_label_entropy(&((const Mlp *)mp)->data);
}
static int mlp_save_state(const void *mp, FILE *f) {
    return imageset_save_state(&((const Mlp *)mp)->data, f);
}
static int mlp_load_state(void *mp, FILE *f) {
    return imageset_load_state(&((Mlp *)mp)->data, f);
}
static void mlp_destroy(void *mp) {
    Mlp *m = mp;
    param_set_free(&m->ps);
    imageset_free(&m->data);
    free(m);
}

const ModelDef mlp_model = {
    .name = "mlp",
    .summary = "MLP on Fashion-MNIST (the smallest image classifier; [mlp] layers, act)",
    .section = &mlp_section,
    .cfg_size = sizeof(MlpConfig),
    .create = mlp_create,
    .loss = mlp_loss,
    .skip_batch = mlp_skip_batch,
    .evaluate = mlp_evaluate,
    .baseline_loss = mlp_baseline,
    .save_state = mlp_save_state,
    .load_state = mlp_load_state,
    .destroy = mlp_destroy,
    .main_metric = "val_acc",
    .main_metric_higher = 1,
};
