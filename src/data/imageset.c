/* imageset.c: image-classification data of imageset.h: the two IDX splits,
 * their normalisation, shuffled or Poisson-sampled batches with their
 * checkpoint state, batched evaluation (cross-entropy, argmax accuracy) and
 * the label-entropy baseline. The network is the model's (ImageLogitsFn). */
#include "imageset.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"

const char *const imageset_sampling_choices[] = {"shuffle", "poisson", NULL};

/* ------------------------------------------------------------------ loading */

static int load_split(const ImageSetConfig *cfg, const char *section, const char *img,
                      const char *lab, int limit, int classes, IdxDataset *d, char *err,
                      size_t errlen) {
    char ip[2 * CFG_STR_MAX + 2], lp[2 * CFG_STR_MAX + 2], e[1024];
    snprintf(ip, sizeof ip, "%s/%s", cfg->data_dir, img);
    snprintf(lp, sizeof lp, "%s/%s", cfg->data_dir, lab);
    if (idx_load_pair(ip, lp, classes, d, e, sizeof e) != 0) {
        snprintf(err, errlen, "%s; set [%s] data_dir and the file names, or install Fashion-MNIST "
                 "from the Debian package dataset-fashion-mnist (make deps)", e, section);
        return -1;
    }
    if (limit > 0 && limit < d->n) d->n = limit;
    return 0;
}

/* Mean and standard deviation of the training pixels / 255 (population). */
static void pixel_stats(const IdxDataset *d, float *mean, float *std) {
    size_t n = (size_t)d->n * d->rows * d->cols;
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = d->images[i] / 255.0;
        s += v, s2 += v * v;
    }
    double mu = s / (double)n, var = s2 / (double)n - mu * mu;
    *mean = (float)mu;
    *std = var > 1e-12 ? (float)sqrt(var) : 1.0f;
}

int imageset_load(ImageSet *s, const ImageSetConfig *cfg, const char *section, int classes,
                  char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (load_split(cfg, section, cfg->train_images, cfg->train_labels, cfg->train_limit, classes,
                   &s->train, err, errlen) != 0)
        return -1;
    if (load_split(cfg, section, cfg->test_images, cfg->test_labels, cfg->test_limit, classes,
                   &s->test, err, errlen) != 0) {
        idx_dataset_free(&s->train);
        return -1;
    }
    if (s->train.rows != s->test.rows || s->train.cols != s->test.cols) {
        snprintf(err, errlen, "%s/%s holds %dx%d images but %s/%s holds %dx%d (expected the same "
                 "size)", cfg->data_dir, cfg->train_images, s->train.rows, s->train.cols,
                 cfg->data_dir, cfg->test_images, s->test.rows, s->test.cols);
        imageset_free(s);
        return -1;
    }
    s->classes = classes, s->rows = s->train.rows, s->cols = s->train.cols;
    s->eval_batch = cfg->eval_batch;
    s->section = section;
    pixel_stats(&s->train, &s->mean, &s->std);
    return 0;
}

/* ------------------------------------------------------------------ batches */

static void shuffle(ImageSet *s) {
    int n = s->train.n;
    for (int i = 0; i < n; i++) s->perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(s->rng, (uint32_t)i + 1);
        int t = s->perm[i];
        s->perm[i] = s->perm[j], s->perm[j] = t;
    }
    s->pos = 0;
}

/* x and y hold at least B examples (a Poisson batch above every earlier one
 * grows them; rare, so the loop does not allocate in steady state). */
static void reserve(ImageSet *s, int B) {
    if (B <= s->cap) return;
    int cap = B + B / 8 + 8;
    free(s->x), free(s->y);
    s->x = xmalloc((size_t)cap * s->rows * s->cols * sizeof *s->x);
    s->y = xmalloc((size_t)cap * sizeof *s->y);
    s->cap = cap;
}

int imageset_start(ImageSet *s, Rng *rng, int batch, ImageSampling sampling, char *err,
                   size_t errlen) {
    ASSERT(batch > 0 && (sampling == IMAGESET_SHUFFLE || sampling == IMAGESET_POISSON),
           "batch %d, sampling %d", batch, (int)sampling);
    if (batch > s->train.n) {
        snprintf(err, errlen, "[train] batch_size = %d is larger than the %d training examples",
                 batch, s->train.n);
        return -1;
    }
    s->rng = rng, s->batch = batch, s->sampling = sampling;
    free(s->perm);
    s->perm = xmalloc((size_t)s->train.n * sizeof *s->perm);
    s->pos = 0;
    if (sampling == IMAGESET_SHUFFLE) shuffle(s);
    /* the expected batch, plus room for a few standard deviations of a Poisson one */
    reserve(s, sampling == IMAGESET_SHUFFLE ? batch : batch + 4 * (int)sqrt((double)batch) + 4);
    return 0;
}

/* The next batch's members: s->perm[*first .. *first + B); returns B. */
static int draw(ImageSet *s, int *first) {
    ASSERT(s->perm, "a batch before imageset_start");
    if (s->sampling == IMAGESET_SHUFFLE) {
        if (s->pos + s->batch > s->train.n) shuffle(s);
        *first = s->pos;
        s->pos += s->batch;
        return s->batch;
    }
    /* Poisson: one uniform per example, in index order (Opacus draws
     * torch.rand(N) < q); the members, ascending, are the batch */
    double q = (double)s->batch / s->train.n;
    int B = 0;
    for (int i = 0; i < s->train.n; i++)
        if (rng_uniform(s->rng) < q) s->perm[B++] = i;
    *first = 0;
    return B;
}

int imageset_next(ImageSet *s) {
    int first, B = draw(s, &first);
    reserve(s, B);
    imageset_fill(s, &s->train, s->perm + first, B, s->x, s->y);
    return B;
}

int imageset_skip(ImageSet *s) {
    int first;
    return draw(s, &first);
}

void imageset_fill(const ImageSet *s, const IdxDataset *d, const int *idx, int B, float *x,
                   int *y) {
    /* x[B,1,H,W], y[B] */
    size_t S = (size_t)d->rows * d->cols;
    float a = 1.0f / (255.0f * s->std), b = -s->mean / s->std;
    for (int i = 0; i < B; i++) {
        const unsigned char *p = d->images + (size_t)idx[i] * S;
        for (size_t j = 0; j < S; j++) x[(size_t)i * S + j] = (float)p[j] * a + b;
        y[i] = d->labels[idx[i]];
    }
}

/* --------------------------------------------------------------- evaluation */

void imageset_evaluate(const ImageSet *s, const IdxDataset *d, int n, Ctx *c, ImageLogitsFn fn,
                       void *model, double *loss, double *acc) {
    int EB = s->eval_batch, correct = 0, K = s->classes;
    int *idx = xmalloc((size_t)EB * sizeof *idx), *y = xmalloc((size_t)EB * sizeof *y);
    float *x = xmalloc((size_t)EB * d->rows * d->cols * sizeof *x);
    double sum = 0.0;
    int prev = ctx_set_grad(c, 0), prev_train = c->train;
    c->train = 0;
    for (int st = 0; st < n; st += EB) {
        int B = n - st < EB ? n - st : EB;
        for (int i = 0; i < B; i++) idx[i] = st + i;
        imageset_fill(s, d, idx, B, x, y);
        ctx_reset(c);
        Tensor *lg = fn(model, c, x, B);
        sum += (double)ad_cross_entropy(c, lg, y)->data[0] * B;
        for (int i = 0; i < B; i++) {
            const float *row = lg->data + (size_t)i * K;
            int best = 0;
            for (int j = 1; j < K; j++) best = row[j] > row[best] ? j : best;
            correct += best == y[i];
        }
    }
    ctx_reset(c);
    ctx_set_grad(c, prev);
    c->train = prev_train;
    *loss = sum / n;
    *acc = (double)correct / n;
    free(idx), free(y), free(x);
}

double imageset_label_entropy(const ImageSet *s) {
    double count[256] = {0}, h = 0.0;
    for (int i = 0; i < s->train.n; i++) count[s->train.labels[i]] += 1.0;
    for (int k = 0; k < 256; k++)
        if (count[k] > 0) {
            double p = count[k] / s->train.n;
            h -= p * log(p);
        }
    return h;
}

/* ---------------------------------------------------------- checkpoint state */

#define IMAGESET_STATE_MAGIC 0x31474d49u /* "IMG1" */

int imageset_save_state(const ImageSet *s, FILE *f) {
    int32_t hdr[4] = {(int32_t)IMAGESET_STATE_MAGIC, s->sampling, s->train.n, s->pos};
    if (io_put(f, hdr, sizeof hdr[0], 4)) return -1;
    /* a Poisson batch depends on nothing but the Rng (the trainer's state) */
    return s->sampling == IMAGESET_SHUFFLE && io_put(f, s->perm, sizeof *s->perm, (size_t)s->train.n)
               ? -1 : 0;
}

int imageset_load_state(ImageSet *s, FILE *f) {
    int32_t hdr[4];
    if (io_get(f, hdr, sizeof hdr[0], 4) || hdr[0] != (int32_t)IMAGESET_STATE_MAGIC ||
        hdr[1] != s->sampling || hdr[2] != s->train.n || hdr[3] < 0 || hdr[3] > s->train.n ||
        (s->sampling == IMAGESET_SHUFFLE &&
         io_get(f, s->perm, sizeof *s->perm, (size_t)s->train.n))) {
        fprintf(stderr, "cliplab: error: %s checkpoint state is truncated, not ours, or taken "
                        "with another sampling or on a training set of another size (now %s "
                        "sampling of %d examples)\n", s->section ? s->section : "image data",
                imageset_sampling_choices[s->sampling], s->train.n);
        return -1;
    }
    s->pos = hdr[3];
    return 0;
}

void imageset_free(ImageSet *s) {
    idx_dataset_free(&s->train);
    idx_dataset_free(&s->test);
    free(s->perm), free(s->x), free(s->y);
    s->perm = NULL, s->x = NULL, s->y = NULL, s->cap = 0;
}
