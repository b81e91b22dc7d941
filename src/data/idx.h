/* idx.h: reader for the IDX format of MNIST / Fashion-MNIST (LeCun et al.;
 * Xiao et al. 2017), gzip-compressed or plain (zlib's gzread reads both).
 *
 * Format: a big-endian header: magic = 0x00 0x00 type ndim (type 0x08 =
 * unsigned byte, the only type MNIST uses), then ndim big-endian u32 sizes,
 * then the data, row-major. Images are ndim 3 (0x00000803: N, rows, cols),
 * labels ndim 1 (0x00000801: N).
 *
 * Every problem a user can meet (missing file, not IDX, wrong type or rank,
 * truncated data, trailing bytes, a label out of range, image and label counts
 * that differ) is a -1 return with a message naming the file and what was
 * expected; nothing is allocated on failure. */
#ifndef CLIPLAB_DATA_IDX_H
#define CLIPLAB_DATA_IDX_H

#include <stddef.h>

#define IDX_MAX_DIMS 4

typedef struct IdxArray {
    unsigned char *data;          /* n bytes, row-major */
    size_t n;
    int ndim;
    int dims[IDX_MAX_DIMS];
} IdxArray;

/* Read an unsigned-byte IDX file of rank want_ndim. 0, or -1 with err set. */
int idx_read(const char *path, int want_ndim, IdxArray *a, char *err, size_t errlen);
void idx_free(IdxArray *a);

/* A labelled image set: images[n, rows, cols] (bytes 0-255), labels[n] in [0, classes). */
typedef struct IdxDataset {
    unsigned char *images;
    unsigned char *labels;
    int n, rows, cols;
} IdxDataset;

/* Read an image file and its label file and check them against each other:
 * the same count, every label < classes. 0, or -1 with err set. */
int idx_load_pair(const char *images, const char *labels, int classes, IdxDataset *d, char *err,
                  size_t errlen);
void idx_dataset_free(IdxDataset *d);

#endif
