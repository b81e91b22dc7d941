/* imageset.h: the data side of image classification, shared by every
 * classifier in models/ (MobileNet, the MLP, the DP-SGD CNN): a network file
 * is its network and little else.
 *
 *  - the data keys of the model's section (IMAGESET_CFG_KEYS: data_dir and the
 *    four IDX file names, train_limit, test_limit, eval_batch), filling an
 *    ImageSetConfig inside the model's config struct;
 *  - loading: a training and a test split from IDX files (idx.h; Debian
 *    dataset-fashion-mnist by default), checked against each other;
 *  - normalisation: (pixel / 255 - mean) / std with the mean and standard
 *    deviation of the training pixels (torchvision's Normalize);
 *  - batches, drawn from the Rng the model passes (the trainer's, tr->rng):
 *      IMAGESET_SHUFFLE: walk a random permutation of the training set, a new
 *        one each epoch (Fisher-Yates), the last partial batch of an epoch
 *        dropped (DataLoader(shuffle=True, drop_last=True)); every batch holds
 *        exactly `batch` examples;
 *      IMAGESET_POISSON: each training example joins a step's batch
 *        independently with probability q = batch / N (Opacus'
 *        UniformWithReplacementSampler, the sampling DP-SGD's accountant
 *        assumes), so the batch size varies around `batch` and may be 0;
 *    imageset_next() returns the batch's actual size B and fills x[B,1,H,W]
 *    and y[B];
 *  - checkpoint state (imageset_save_state / imageset_load_state): the
 *    epoch's order and position, which --resume needs; a model's
 *    ModelDef.save_state / load_state call these (forgetting them makes a
 *    resumed run draw other batches than the run never interrupted);
 *  - evaluation in batches of eval_batch: mean cross-entropy and argmax
 *    accuracy over a split, gradients off, Ctx.train = 0 (eval-mode BN);
 *  - the label-entropy baseline (ln 10 for a balanced 10-class set).
 *
 * Layer: src/data/ sits above engine/ and config/ and below models/; it does
 * not know the trainer (the model passes what it needs: the Rng, the batch
 * size, the Ctx). Errors a user can fix (missing files, a batch larger than
 * the set) are -1 returns with a message; nothing exits here. */
#ifndef CLIPLAB_DATA_IMAGESET_H
#define CLIPLAB_DATA_IMAGESET_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "idx.h"
#include "rng.h"
#include "tensor.h"

typedef struct ImageSetConfig {
    char data_dir[CFG_STR_MAX];
    char train_images[CFG_STR_MAX], train_labels[CFG_STR_MAX];
    char test_images[CFG_STR_MAX], test_labels[CFG_STR_MAX];
    int train_limit, test_limit;  /* use the first N examples (0 = all) */
    int eval_batch;               /* images per evaluation forward */
} ImageSetConfig;

/* The data keys, as rows of the model's own CfgKey table, for an
 * ImageSetConfig member `field` of the model's config struct `Struct`:
 *   static const CfgKey keys[] = { ..., IMAGESET_CFG_KEYS(MlpConfig, data), ... }; */
#define IMAGESET_KEY_(S, f, n, t, d, lo, hi, h) {n, t, offsetof(S, f), d, lo, hi, NULL, h}
#define IMAGESET_CFG_KEYS(S, field)                                                               \
    IMAGESET_KEY_(S, field.data_dir, "data_dir", CFG_STRING, "/usr/share/datasets/fashion-mnist", \
                  0, 0, "folder of the four IDX files (Debian dataset-fashion-mnist; MNIST works "  \
                  "too)"),                                                                       \
    IMAGESET_KEY_(S, field.train_images, "train_images", CFG_STRING,                              \
                  "train-images-idx3-ubyte.gz", 0, 0,                                            \
                  "training images in data_dir (IDX, gzip or plain)"),                           \
    IMAGESET_KEY_(S, field.train_labels, "train_labels", CFG_STRING,                              \
                  "train-labels-idx1-ubyte.gz", 0, 0, "training labels in data_dir"),            \
    IMAGESET_KEY_(S, field.test_images, "test_images", CFG_STRING, "t10k-images-idx3-ubyte.gz",   \
                  0, 0, "test images in data_dir (val_loss, val_acc)"),                          \
    IMAGESET_KEY_(S, field.test_labels, "test_labels", CFG_STRING, "t10k-labels-idx1-ubyte.gz",   \
                  0, 0, "test labels in data_dir"),                                              \
    IMAGESET_KEY_(S, field.train_limit, "train_limit", CFG_INT, "0", 0, 100000000,                \
                  "train on the first N training examples only (0 = all)"),                      \
    IMAGESET_KEY_(S, field.test_limit, "test_limit", CFG_INT, "0", 0, 100000000,                  \
                  "evaluate on the first N test examples only (0 = all)"),                       \
    IMAGESET_KEY_(S, field.eval_batch, "eval_batch", CFG_INT, "100", 1, 100000,                   \
                  "images per evaluation forward (a larger one needs more [train] arena_mb)")

typedef enum { IMAGESET_SHUFFLE, IMAGESET_POISSON } ImageSampling;

/* For a model whose section offers the choice: an ImageSampling key. */
extern const char *const imageset_sampling_choices[]; /* "shuffle", "poisson", NULL */

typedef struct ImageSet {
    IdxDataset train, test;
    int classes, rows, cols;
    float mean, std;              /* of the training pixels / 255 (population) */
    int eval_batch;
    const char *section;          /* the model's section, for messages */
    /* batches (imageset_start) */
    int sampling;                 /* ImageSampling */
    int batch;                    /* shuffle: examples per batch; poisson: expected */
    Rng *rng;                     /* the stream batches are drawn from (not owned) */
    int *perm, pos;               /* shuffle: the epoch's order, next index; poisson: scratch */
    float *x;                     /* [B,1,rows,cols] the current batch, normalised */
    int *y;                       /* [B] its labels */
    int cap;                      /* examples x and y hold */
} ImageSet;

/* Load the training and test splits of cfg for `classes` classes (labels
 * 0..classes-1) into s; section names the model's section in messages.
 * 0, or -1 with a message in err saying what to set (nothing allocated). */
int imageset_load(ImageSet *s, const ImageSetConfig *cfg, const char *section, int classes,
                  char *err, size_t errlen);
/* Start drawing batches of `batch` (expected, for poisson) from rng; the
 * shuffle draws the first epoch's order now. 0, or -1 with err (a shuffle
 * batch larger than the training set). */
int imageset_start(ImageSet *s, Rng *rng, int batch, ImageSampling sampling, char *err,
                   size_t errlen);
/* The next training batch into s->x, s->y; returns its size B (shuffle:
 * always `batch`; poisson: Binomial(N, batch/N), possibly 0). */
int imageset_next(ImageSet *s);
/* Draw the next batch exactly as imageset_next would, without filling x and
 * y (ModelDef.skip_batch: a data-parallel rank skipping the others' batches);
 * returns its size. */
int imageset_skip(ImageSet *s);
/* Normalise examples idx[0..B) of split d into x[B,1,rows,cols], labels into y[B]. */
void imageset_fill(const ImageSet *s, const IdxDataset *d, const int *idx, int B, float *x,
                   int *y);

/* Logits [B,K] of normalised images x[B,1,rows,cols], recorded on c. */
typedef Tensor *(*ImageLogitsFn)(void *model, Ctx *c, const float *x, int B);
/* Mean cross-entropy and argmax accuracy over the first n examples of d, in
 * forwards of eval_batch, gradients off and c->train = 0 (both restored). */
void imageset_evaluate(const ImageSet *s, const IdxDataset *d, int n, Ctx *c, ImageLogitsFn fn,
                       void *model, double *loss, double *acc);
/* Entropy of the training labels (nats): the loss of predicting the class
 * frequencies, the line a classifier must get below. */
double imageset_label_entropy(const ImageSet *s);

/* Checkpoint state: the sampling, the epoch's order and position. 0 = ok;
 * load refuses (-1, message on stderr) a state of another sampling or size. */
int imageset_save_state(const ImageSet *s, FILE *f);
int imageset_load_state(ImageSet *s, FILE *f);
void imageset_free(ImageSet *s);

#endif
