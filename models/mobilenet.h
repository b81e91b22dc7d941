/* mobilenet.h: a small MobileNetV2 (Sandler et al. 2018; torchvision
 * mobilenetv2.py) on Fashion-MNIST (or any IDX image/label pair), with the
 * activation chosen in [mobilenet] activation: relu6 (the paper's), relu,
 * clamp at act_max, or PACT (Choi et al. 2018: clip at a learned alpha per
 * activation layer). Activation clipping is the fourth kind of clipping.
 *
 * Dimension legend: B batch, C channels, H/W spatial, t expansion, K classes.
 *
 *   stem:    conv 3x3 (1 -> stem, stride stem_stride) + BN + act
 *   blocks:  inverted residuals (t, c, n, s) as torchvision's
 *            inverted_residual_setting: n blocks of c output channels, the
 *            first with stride s; each block is
 *              1x1 expand (C -> tC) + BN + act      (omitted when t = 1)
 *              3x3 depthwise (stride s) + BN + act
 *              1x1 linear projection (tC -> c) + BN  (no activation)
 *              + x when stride 1 and C == c
 *   head:    1x1 conv (-> last_channels) + BN + act, global average pool,
 *            linear classifier (-> K). torchvision's dropout 0.2 is left out.
 * Without batchnorm ([mobilenet] batchnorm = false) every conv has a bias
 * instead (the no-BN divergence experiment).
 *
 * Init (torchvision): conv kaiming_normal_(mode="fan_out") (std sqrt(2 /
 * (COUT*KH*KW)); [mobilenet] init = fan_in: sqrt(2 / (CIN*KH*KW))), conv
 * biases 0, BN weight 1 and bias 0, linear N(0, 0.01) with bias 0; PACT alpha = pact_init (10 in the paper). Weight decay
 * (Param.decay): conv and linear weights and PACT's alphas (the paper
 * L2-regularises alpha); never BN parameters or biases. */
#ifndef CLIPLAB_MODELS_MOBILENET_H
#define CLIPLAB_MODELS_MOBILENET_H

#include "config.h"
#include "imageset.h"
#include "model.h"
#include "params.h"
#include "rng.h"

typedef enum { MB_RELU6, MB_RELU, MB_CLAMP, MB_PACT } MbActivation;
/* [mobilenet] init, in init_choices order: kaiming over fan_out (torchvision) or fan_in */
typedef enum { MB_INIT_FAN_OUT, MB_INIT_FAN_IN } MbInit;

typedef struct MobilenetConfig {
    int activation;               /* MbActivation */
    double act_max;               /* clamp level of activation = clamp */
    double pact_init;             /* PACT alpha at initialisation */
    int batchnorm;                /* 1: conv + BN; 0: conv with bias */
    int init;                     /* MbInit */
    double bn_momentum;
    int stem;                     /* stem output channels */
    int stem_stride;
    char blocks[CFG_STR_MAX];     /* "t:c:n:s,..." */
    int last_channels;
    ImageSetConfig data;          /* data_dir ... eval_batch (imageset.h) */
    char quant_bits[CFG_STR_MAX]; /* "8,6,5,4,3": fake-quantised evaluations after training */
    int calib_size;               /* training images whose max calibrates ReLU's range */
} MobilenetConfig;

extern const ModelDef mobilenet_model;

#define MB_MAX_BLOCKS 32
#define MB_MAX_ACTS (2 * MB_MAX_BLOCKS + 2)

/* conv (+ BN): w[COUT,CIN or 1,K,K]; bias or BN affine; running statistics in ps.buf */
typedef struct MbConv {
    Tensor *w, *bias, *bn_w, *bn_b, *rmean, *rvar;
    int stride, pad, depthwise;
} MbConv;

typedef struct MbBlock {
    int cin, hidden, cout, stride, expand, residual;
    MbConv exp, dw, proj;
    int act_exp, act_dw;          /* activation layer indices (act_exp = -1 when t = 1) */
} MbBlock;

typedef struct Mobilenet {
    MobilenetConfig cfg;
    int classes, rows, cols;
    ParamSet ps;
    MbConv stem, head;
    MbBlock blocks[MB_MAX_BLOCKS];
    int nblocks;
    Tensor *fc_w, *fc_b;
    int nacts;                    /* activation layers, in forward order */
    char act_names[MB_MAX_ACTS][24];
    Tensor *alpha[MB_MAX_ACTS];   /* PACT levels [1] (NULL otherwise) */
    float act_seen[MB_MAX_ACTS];  /* largest activation output of the last recorded forward */
    int record;                   /* 1: forward writes act_seen */
    int quant_bits;               /* > 0: fake-quantise every activation output */
    float quant_hi[MB_MAX_ACTS];  /* ... over [0, quant_hi[k]] */
    ImageSet data;                /* Fashion-MNIST, its batches and evaluation (imageset.h) */
    int m_acc, m_act0, m_alpha0;  /* metrics columns */
} Mobilenet;

/* Parse "t:c:n:s,t:c:n:s,...". Returns the number of groups (<= max), or -1
 * with a message in err. */
int mobilenet_parse_blocks(const char *s, int (*tcns)[4], int max, char *err, size_t errlen);
/* Declare, allocate and initialise the parameters for images of 1 x rows x
 * cols and `classes` outputs (no data needed). cfg->blocks must parse. */
void mobilenet_build(Mobilenet *m, const MobilenetConfig *cfg, int rows, int cols, int classes,
                     Rng *init_rng);
void mobilenet_free_params(Mobilenet *m);
/* Logits [B,K] of normalised images x[B,1,rows,cols], recorded on c
 * (batchnorm in train mode iff c->train). */
Tensor *mobilenet_logits(Mobilenet *m, Ctx *c, const float *x, int B);
/* Inverted residual block i on x[B,cin,H,W] (the bench runs one alone). */
Tensor *mobilenet_block_forward(Mobilenet *m, Ctx *c, int i, Tensor *x);
/* Mean loss and accuracy over the first n examples of d (one of m->data's
 * splits), in eval mode on c, activation maxima not recorded. */
void mobilenet_evaluate_on(Mobilenet *m, Ctx *c, const IdxDataset *d, int n, double *loss,
                           double *acc);
/* The default config (the [mobilenet] table's defaults). */
void mobilenet_default_config(MobilenetConfig *cfg);

#endif
