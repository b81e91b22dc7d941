/* test_imageset.c: the shared image-classification data (imageset.h) on the
 * real Fashion-MNIST files: normalisation, the label-entropy baseline, shuffled
 * epochs (the stream pinned), Poisson sampling (sizes vary around the expected
 * batch, may be 0, each example in with probability q), the checkpoint state
 * (a restored set draws the batches the uninterrupted one draws), batched
 * evaluation against hand-computed loss and accuracy, and clear errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "imageset.h"
#include "ops.h"

static ImageSetConfig config(int train_limit, int test_limit, int eval_batch) {
    ImageSetConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.data_dir, sizeof c.data_dir, "/usr/share/datasets/fashion-mnist");
    snprintf(c.train_images, sizeof c.train_images, "train-images-idx3-ubyte.gz");
    snprintf(c.train_labels, sizeof c.train_labels, "train-labels-idx1-ubyte.gz");
    snprintf(c.test_images, sizeof c.test_images, "t10k-images-idx3-ubyte.gz");
    snprintf(c.test_labels, sizeof c.test_labels, "t10k-labels-idx1-ubyte.gz");
    c.train_limit = train_limit, c.test_limit = test_limit, c.eval_batch = eval_batch;
    return c;
}

static void load(ImageSet *s, int train_limit, int test_limit, int eval_batch) {
    ImageSetConfig c = config(train_limit, test_limit, eval_batch);
    char err[1024];
    cr_assert_eq(imageset_load(s, &c, "test", 10, err, sizeof err), 0, "%s", err);
}

Test(imageset, normalised_training_pixels_have_mean_0_and_std_1) {
    ImageSet s;
    load(&s, 1000, 10, 10);
    cr_assert_eq(s.train.n, 1000);
    cr_assert_eq(s.test.n, 10);
    cr_assert(s.rows == 28 && s.cols == 28);
    int idx[1000], y[1000];
    static float x[1000 * 784];
    for (int i = 0; i < 1000; i++) idx[i] = i;
    imageset_fill(&s, &s.train, idx, 1000, x, y);
    double m = 0, m2 = 0;
    for (int i = 0; i < 1000 * 784; i++) m += x[i], m2 += (double)x[i] * x[i];
    m /= 1000 * 784, m2 /= 1000 * 784;
    cr_assert(fabs(m) < 1e-4, "mean %g", m);
    cr_assert(fabs(m2 - m * m - 1.0) < 1e-3, "variance %g", m2 - m * m);
    for (int i = 0; i < 1000; i++) cr_assert_eq(y[i], s.train.labels[i]);
    /* pixel 0 of an image is background: (0 - mean) / std */
    cr_assert_float_eq(x[0], -s.mean / s.std, 1e-6);
    imageset_free(&s);
}

Test(imageset, label_entropy_is_ln_10_on_the_balanced_training_set) {
    ImageSet s;
    load(&s, 0, 10, 10); /* all 60000: 6000 per class */
    cr_assert_eq(s.train.n, 60000);
    cr_assert(fabs(imageset_label_entropy(&s) - log(10.0)) < 1e-12, "%.15f",
              imageset_label_entropy(&s));
    imageset_free(&s);
    load(&s, 3, 10, 10); /* labels 9 0 0 (Fashion-MNIST's first three): H(1/3, 2/3) */
    double h = -(1.0 / 3) * log(1.0 / 3) - (2.0 / 3) * log(2.0 / 3);
    cr_assert(s.train.labels[0] == 9 && s.train.labels[1] == 0 && s.train.labels[2] == 0);
    cr_assert(fabs(imageset_label_entropy(&s) - h) < 1e-12);
    imageset_free(&s);
}

/* The shuffle: every batch is `batch` examples of the current permutation; an
 * epoch is floor(N / batch) batches, then a new permutation. */
Test(imageset, shuffle_walks_one_permutation_per_epoch_and_drops_the_tail) {
    ImageSet s;
    load(&s, 100, 10, 10);
    Rng r;
    rng_seed(&r, 1, 0);
    char err[256];
    cr_assert_eq(imageset_start(&s, &r, 30, IMAGESET_SHUFFLE, err, sizeof err), 0);
    for (int epoch = 0; epoch < 3; epoch++) {
        int seen[100] = {0}, perm[100];
        for (int i = 0; i < 100; i++) seen[s.perm[i]]++;
        for (int i = 0; i < 100; i++) cr_assert_eq(seen[i], 1, "epoch %d: a permutation", epoch);
        memcpy(perm, s.perm, sizeof perm);
        while (s.pos + 30 <= 100) {
            cr_assert_eq(imageset_next(&s), 30);
            for (int i = 0; i < 30; i++)
                cr_assert_eq(s.y[i], s.train.labels[perm[s.pos - 30 + i]]);
        }
        cr_assert_eq(s.pos, 90, "three batches, the last 10 dropped");
        cr_assert_eq(imageset_next(&s), 30); /* a new epoch, a new order */
        cr_assert_eq(s.pos, 30);
        cr_assert(memcmp(perm, s.perm, sizeof perm) != 0, "epoch %d: a new order", epoch);
        for (int i = 0; i < 30; i++) cr_assert_eq(s.y[i], s.train.labels[s.perm[i]]);
        s.pos = 0; /* walk the new epoch from its start */
    }
    imageset_free(&s);
    /* the stream is pinned: seed 1 gives this first order (the MobileNet runs'
     * batches depend on it; the same Fisher-Yates over rng_below as before) */
    load(&s, 100, 10, 10);
    rng_seed(&r, 1, 0);
    cr_assert_eq(imageset_start(&s, &r, 30, IMAGESET_SHUFFLE, err, sizeof err), 0);
    const int want[5] = {94, 67, 86, 52, 16};
    for (int i = 0; i < 5; i++) cr_assert_eq(s.perm[i], want[i], "index %d: %d", i, s.perm[i]);
    imageset_free(&s);
}

Test(imageset, poisson_batches_vary_around_the_expected_size_and_may_be_empty) {
    ImageSet s;
    load(&s, 1000, 10, 10);
    Rng r;
    rng_seed(&r, 7, 0);
    char err[256];
    cr_assert_eq(imageset_start(&s, &r, 20, IMAGESET_POISSON, err, sizeof err), 0);
    enum { STEPS = 400 };
    double sum = 0, sum2 = 0;
    int minB = 1 << 30, maxB = 0, in[1000] = {0};
    for (int t = 0; t < STEPS; t++) {
        int B = imageset_next(&s);
        sum += B, sum2 += (double)B * B;
        minB = B < minB ? B : minB, maxB = B > maxB ? B : maxB;
        for (int i = 0; i < B; i++) {
            cr_assert(i == 0 || s.perm[i] > s.perm[i - 1], "members ascending, no repeats");
            cr_assert_eq(s.y[i], s.train.labels[s.perm[i]]);
            in[s.perm[i]]++;
        }
        /* the batch's images are the members' images, normalised */
        if (B > 0) {
            int yy;
            float x0[784];
            imageset_fill(&s, &s.train, &s.perm[B - 1], 1, x0, &yy);
            cr_assert(memcmp(x0, s.x + (size_t)(B - 1) * 784, sizeof x0) == 0);
        }
    }
    /* B ~ Binomial(1000, 0.02): mean 20, variance 19.6 (sd of the mean 0.22) */
    double mean = sum / STEPS, var = sum2 / STEPS - mean * mean;
    cr_assert(fabs(mean - 20.0) < 1.2, "mean batch %g", mean);
    cr_assert(var > 12.0 && var < 28.0, "variance %g (binomial: 19.6)", var);
    cr_assert(minB < 15 && maxB > 25, "sizes vary: %d..%d", minB, maxB);
    /* every example joins with the same probability: 8 expected per example */
    int never = 0;
    for (int i = 0; i < 1000; i++) never += in[i] == 0;
    cr_assert(never < 10, "%d examples never drawn in %d steps (expected ~0.3)", never, STEPS);
    /* q = 1/1000: P(B = 0) = 0.999^1000 = 0.37 */
    cr_assert_eq(imageset_start(&s, &r, 1, IMAGESET_POISSON, err, sizeof err), 0);
    int empty = 0;
    for (int t = 0; t < 200; t++) empty += imageset_next(&s) == 0;
    cr_assert(empty > 45 && empty < 105, "%d empty batches of 200 (expected 74)", empty);
    imageset_free(&s);
}

/* Save the state mid-epoch, draw on; a fresh set with the restored state and
 * the same Rng draws the same batches (what --resume relies on). */
static void check_round_trip(ImageSampling sampling) {
    ImageSet a, b;
    load(&a, 100, 10, 10);
    load(&b, 100, 10, 10);
    Rng ra, rb;
    rng_seed(&ra, 3, 0);
    rng_seed(&rb, 99, 0);
    char err[256];
    cr_assert_eq(imageset_start(&a, &ra, 30, sampling, err, sizeof err), 0);
    cr_assert_eq(imageset_start(&b, &rb, 30, sampling, err, sizeof err), 0);
    for (int k = 0; k < 4; k++) imageset_next(&a); /* into the second epoch */
    FILE *f = tmpfile();
    cr_assert(f);
    cr_assert_eq(imageset_save_state(&a, f), 0);
    Rng saved = ra;
    rewind(f);
    cr_assert_eq(imageset_load_state(&b, f), 0);
    fclose(f);
    rb = saved;
    for (int k = 0; k < 7; k++) {
        int Ba = imageset_next(&a), Bb = imageset_next(&b);
        cr_assert_eq(Ba, Bb, "batch %d", k);
        cr_assert(memcmp(a.y, b.y, (size_t)Ba * sizeof *a.y) == 0, "batch %d labels", k);
        cr_assert(memcmp(a.x, b.x, (size_t)Ba * 784 * sizeof *a.x) == 0, "batch %d images", k);
    }
    imageset_free(&a);
    imageset_free(&b);
}

/* imageset_skip draws what imageset_next would: a set that skips batch k
 * then draws k+1 sees the batch k+1 of a set that drew them all. */
static void check_skip(ImageSampling sampling) {
    ImageSet a, b;
    load(&a, 100, 10, 10);
    load(&b, 100, 10, 10);
    Rng ra, rb;
    rng_seed(&ra, 5, 0);
    rng_seed(&rb, 5, 0);
    char err[256];
    cr_assert_eq(imageset_start(&a, &ra, 30, sampling, err, sizeof err), 0);
    cr_assert_eq(imageset_start(&b, &rb, 30, sampling, err, sizeof err), 0);
    for (int k = 0; k < 9; k++) { /* three epochs of the shuffle */
        int Ba = imageset_next(&a), Bb = k % 2 ? imageset_next(&b) : imageset_skip(&b);
        cr_assert_eq(Ba, Bb, "batch %d", k);
        if (k % 2) cr_assert(memcmp(a.y, b.y, (size_t)Ba * sizeof *a.y) == 0, "batch %d", k);
    }
    imageset_free(&a);
    imageset_free(&b);
}

Test(imageset, skip_draws_the_batch_next_would) {
    check_skip(IMAGESET_SHUFFLE);
    check_skip(IMAGESET_POISSON);
}

Test(imageset, state_round_trip_continues_the_same_batches) {
    check_round_trip(IMAGESET_SHUFFLE);
    check_round_trip(IMAGESET_POISSON);
}

Test(imageset, state_of_another_sampling_or_size_or_truncated_is_refused) {
    ImageSet a, b;
    load(&a, 100, 10, 10);
    load(&b, 100, 10, 10);
    Rng r;
    rng_seed(&r, 3, 0);
    char err[256];
    cr_assert_eq(imageset_start(&a, &r, 30, IMAGESET_SHUFFLE, err, sizeof err), 0);
    cr_assert_eq(imageset_start(&b, &r, 30, IMAGESET_POISSON, err, sizeof err), 0);
    FILE *f = tmpfile();
    cr_assert_eq(imageset_save_state(&a, f), 0);
    long full = ftell(f);
    rewind(f);
    cr_assert_eq(imageset_load_state(&b, f), -1, "shuffle state into a Poisson set");
    imageset_free(&b);
    load(&b, 99, 10, 10);
    cr_assert_eq(imageset_start(&b, &r, 30, IMAGESET_SHUFFLE, err, sizeof err), 0);
    rewind(f);
    cr_assert_eq(imageset_load_state(&b, f), -1, "a training set of another size");
    imageset_free(&b);
    load(&b, 100, 10, 10);
    cr_assert_eq(imageset_start(&b, &r, 30, IMAGESET_SHUFFLE, err, sizeof err), 0);
    FILE *g = tmpfile();
    char buf[4096];
    rewind(f);
    size_t got = fread(buf, 1, (size_t)full - 4, f);
    fwrite(buf, 1, got, g);
    rewind(g);
    cr_assert_eq(imageset_load_state(&b, g), -1, "truncated");
    rewind(f);
    cr_assert_eq(imageset_load_state(&b, f), 0, "the whole state loads");
    fclose(f), fclose(g);
    imageset_free(&a);
    imageset_free(&b);
}

/* An oracle network: logits 5 at the true class, 0 elsewhere, except every
 * fourth example (in evaluation order) whose 5 sits on the next class. */
typedef struct Oracle {
    const ImageSet *s;
    const IdxDataset *d;
    int pos, calls, saw_grad, saw_train;
} Oracle;

static Tensor *oracle_logits(void *mp, Ctx *c, const float *x, int B) {
    (void)x;
    Oracle *o = mp;
    o->calls++;
    o->saw_grad |= c->grad_enabled, o->saw_train |= c->train;
    Tensor *t = tensor_new2(c, B, 10, 0);
    for (int i = 0; i < B; i++, o->pos++) {
        int y = o->d->labels[o->pos];
        t->data[i * 10 + (o->pos % 4 == 3 ? (y + 1) % 10 : y)] = 5.0f;
    }
    return t;
}

Test(imageset, evaluation_in_batches_gives_the_hand_computed_loss_and_accuracy) {
    ImageSet s;
    load(&s, 100, 490, 64); /* 7 forwards of 64 and one of 42 */
    Ctx c;
    ctx_init(&c, 16 << 20, 256);
    c.train = 1;
    Oracle o = {.s = &s, .d = &s.test};
    double loss, acc;
    imageset_evaluate(&s, &s.test, 490, &c, oracle_logits, &o, &loss, &acc);
    cr_assert_eq(o.calls, 8);
    cr_assert_eq(o.pos, 490);
    cr_assert(!o.saw_grad && !o.saw_train, "evaluation runs without gradients, in eval mode");
    cr_assert(c.grad_enabled && c.train, "both restored");
    /* 122 wrong (positions 3, 7, ..., 487); the tail batch holds 10 of its 42,
     * so a mean of batch means would differ from the mean over examples */
    double right = (490.0 - 122.0) / 490.0;
    cr_assert(fabs(acc - right) < 1e-12, "accuracy %g, hand %g", acc, right);
    /* right: -log(e^5 / (e^5 + 9)); wrong: -log(1 / (e^5 + 9)) */
    double z = exp(5.0) + 9.0, want = right * (log(z) - 5.0) + (1.0 - right) * log(z);
    cr_assert(fabs(loss - want) < 1e-5, "loss %.7f, hand %.7f", loss, want);
    ctx_free(&c);
    imageset_free(&s);
}

Test(imageset, missing_files_and_oversized_batches_are_clear_errors) {
    ImageSetConfig c = config(100, 10, 10);
    snprintf(c.data_dir, sizeof c.data_dir, "no_such_dir");
    ImageSet s;
    char err[1024];
    cr_assert_eq(imageset_load(&s, &c, "mlp", 10, err, sizeof err), -1);
    cr_assert(strstr(err, "no_such_dir/train-images-idx3-ubyte.gz") && strstr(err, "[mlp] data_dir") &&
                  strstr(err, "dataset-fashion-mnist"), "%s", err);
    load(&s, 100, 10, 10);
    Rng r;
    rng_seed(&r, 1, 0);
    cr_assert_eq(imageset_start(&s, &r, 101, IMAGESET_SHUFFLE, err, sizeof err), -1);
    cr_assert(strstr(err, "batch_size = 101") && strstr(err, "100 training examples"), "%s", err);
    imageset_free(&s);
}
