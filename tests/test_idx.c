/* test_idx.c: the IDX reader on tiny good files (gzip and plain) and on one bad
 * file per defect (tests/data/idx/make_idx.py): each must fail with a message
 * naming the file and what was expected; and the real Fashion-MNIST files. */
#include <criterion/criterion.h>
#include <string.h>

#include "idx.h"

#define D "tests/data/idx/"

static void check_good(const char *img, const char *lab) {
    IdxDataset d;
    char err[512] = "";
    cr_assert_eq(idx_load_pair(img, lab, 10, &d, err, sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, 3);
    cr_assert_eq(d.rows, 4);
    cr_assert_eq(d.cols, 5);
    for (int i = 0; i < 60; i++) cr_assert_eq(d.images[i], i, "pixel %d", i);
    cr_assert_eq(d.labels[0], 0);
    cr_assert_eq(d.labels[1], 9);
    cr_assert_eq(d.labels[2], 4);
    idx_dataset_free(&d);
}

Test(idx, reads_gzip_and_plain_files) {
    check_good(D "good-images-idx3-ubyte.gz", D "good-labels-idx1-ubyte.gz");
    check_good(D "good-images-idx3-ubyte", D "good-labels-idx1-ubyte");
}

/* idx_read(path, ndim) fails; the message names the file and contains `what`. */
static void check_bad(const char *path, int ndim, const char *what) {
    IdxArray a;
    char err[512] = "";
    cr_assert_eq(idx_read(path, ndim, &a, err, sizeof err), -1, "%s should fail", path);
    cr_assert_null(a.data);
    cr_assert(strstr(err, path), "message names the file: %s", err);
    cr_assert(strstr(err, what), "message for %s says '%s': %s", path, what, err);
}

Test(idx, bad_files_are_clear_errors) {
    check_bad(D "no-such-file.gz", 3, "cannot open");
    check_bad(D "bad-empty", 3, "empty file");
    check_bad(D "bad-magic.gz", 3, "not an IDX file");
    check_bad(D "bad-type.gz", 3, "expected 0x08");
    check_bad(D "bad-truncated-data.gz", 3, "truncated: 53 of 60");
    check_bad(D "bad-truncated-header.gz", 3, "truncated header");
    check_bad(D "bad-trailing.gz", 3, "trailing bytes");
    check_bad(D "bad-zero-dim.gz", 3, "dimension 0 has size 0");
    check_bad(D "bad-corrupt.gz", 3, D "bad-corrupt.gz");
    /* a label file where images are expected, and the other way round */
    check_bad(D "good-labels-idx1-ubyte.gz", 3, "expected rank 3");
    check_bad(D "good-images-idx3-ubyte.gz", 1, "expected rank 1");
}

static void check_bad_pair(const char *img, const char *lab, const char *what) {
    IdxDataset d;
    char err[512] = "";
    cr_assert_eq(idx_load_pair(img, lab, 10, &d, err, sizeof err), -1);
    cr_assert_null(d.images);
    cr_assert(strstr(err, what), "'%s' in: %s", what, err);
}

Test(idx, pair_checks_labels_and_counts) {
    check_bad_pair(D "good-images-idx3-ubyte.gz", D "bad-label-range.gz",
                   D "bad-label-range.gz: label 10 of example 1 is out of range (expected 0 to 9)");
    check_bad_pair(D "good-images-idx3-ubyte.gz", D "bad-label-count.gz",
                   "holds 3 images but " D "bad-label-count.gz holds 2 labels");
    /* classes = 5 makes the good label 9 out of range */
    IdxDataset d;
    char err[512];
    cr_assert_eq(idx_load_pair(D "good-images-idx3-ubyte.gz", D "good-labels-idx1-ubyte.gz", 5,
                               &d, err, sizeof err), -1);
    cr_assert(strstr(err, "label 9"), "%s", err);
}

#define FM "/usr/share/datasets/fashion-mnist/"
Test(idx, fashion_mnist_from_debian) {
    IdxDataset d;
    char err[512] = "";
    cr_assert_eq(idx_load_pair(FM "t10k-images-idx3-ubyte.gz", FM "t10k-labels-idx1-ubyte.gz", 10,
                               &d, err, sizeof err), 0, "%s (make deps installs dataset-fashion-mnist)", err);
    cr_assert_eq(d.n, 10000);
    cr_assert_eq(d.rows, 28);
    cr_assert_eq(d.cols, 28);
    int count[10] = {0};
    for (int i = 0; i < d.n; i++) count[d.labels[i]]++;
    for (int k = 0; k < 10; k++) cr_assert_eq(count[k], 1000, "class %d", k); /* balanced test set */
    idx_dataset_free(&d);
}
