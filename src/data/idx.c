/* idx.c: the IDX reader of idx.h through zlib (gzopen/gzread read gzip and
 * plain files alike), with every header, size and label check it promises. */
#include "idx.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_BYTES ((size_t)1 << 32) /* 4 GiB: far above any MNIST-like set */

/* Read exactly len bytes; returns the count read (short at end of file), or
 * -1 on a read error (err set). */
static long long read_full(gzFile g, void *buf, size_t len, const char *path, char *err,
                           size_t errlen) {
    size_t got = 0;
    while (got < len) {
        size_t chunk = len - got > (1u << 30) ? (1u << 30) : len - got;
        int r = gzread(g, (unsigned char *)buf + got, (unsigned)chunk);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(g, &zerr);
            snprintf(err, errlen, "%s: read error: %s (expected a gzip or plain IDX file)", path,
                     zerr == Z_ERRNO ? strerror(errno) : msg);
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The header: magic, then ndim sizes. Fills a->ndim, a->dims, a->n. */
static int read_header(gzFile g, const char *path, int want_ndim, IdxArray *a, char *err,
                       size_t errlen) {
    unsigned char h[4 + 4 * IDX_MAX_DIMS];
    long long r = read_full(g, h, 4, path, err, errlen);
    if (r < 0) return -1;
    if (r < 4) {
        snprintf(err, errlen, "%s: %s (expected an IDX header: 4-byte magic 0x0000%02x%02x)", path,
                 r == 0 ? "empty file" : "truncated header", IDX_TYPE_UBYTE, want_ndim);
        return -1;
    }
    if (h[0] != 0 || h[1] != 0) {
        snprintf(err, errlen, "%s: not an IDX file (magic %02x%02x%02x%02x; expected 0x0000%02x%02x)",
                 path, h[0], h[1], h[2], h[3], IDX_TYPE_UBYTE, want_ndim);
        return -1;
    }
    if (h[2] != IDX_TYPE_UBYTE) {
        snprintf(err, errlen, "%s: IDX data type 0x%02x is not supported (expected 0x08, "
                 "unsigned bytes, as MNIST and Fashion-MNIST use)", path, h[2]);
        return -1;
    }
    if (h[3] != want_ndim) {
        snprintf(err, errlen, "%s: IDX file of rank %d (expected rank %d: %s)", path, h[3],
                 want_ndim, want_ndim == 3 ? "an image file, N x rows x cols" :
                 want_ndim == 1 ? "a label file, N labels" : "see the caller");
        return -1;
    }
    r = read_full(g, h + 4, 4 * (size_t)want_ndim, path, err, errlen);
    if (r < 0) return -1;
    if (r < 4 * want_ndim) {
        snprintf(err, errlen, "%s: truncated header (expected %d dimension sizes)", path,
                 want_ndim);
        return -1;
    }
    a->ndim = want_ndim;
    a->n = 1;
    for (int d = 0; d < want_ndim; d++) {
        uint32_t s = be32(h + 4 + 4 * d);
        if (s == 0 || s > INT32_MAX || a->n * s > IDX_MAX_BYTES) {
            snprintf(err, errlen, "%s: dimension %d has size %u (expected 1 to %d, at most %zu "
                     "bytes in all)", path, d, s, INT32_MAX, IDX_MAX_BYTES);
            return -1;
        }
        a->dims[d] = (int)s;
        a->n *= s;
    }
    return 0;
}

int idx_read(const char *path, int want_ndim, IdxArray *a, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    if (want_ndim < 1 || want_ndim > IDX_MAX_DIMS) {
        snprintf(err, errlen, "%s: rank %d requested (1 to %d supported)", path, want_ndim,
                 IDX_MAX_DIMS);
        return -1;
    }
    errno = 0;
    gzFile g = gzopen(path, "rb");
    if (!g) {
        snprintf(err, errlen, "cannot open %s: %s", path, errno ? strerror(errno) : "out of memory");
        return -1;
    }
    int rc = read_header(g, path, want_ndim, a, err, errlen);
    if (rc == 0) {
        a->data = malloc(a->n ? a->n : 1);
        if (!a->data) {
            snprintf(err, errlen, "%s: out of memory for %zu bytes", path, a->n);
            rc = -1;
        }
    }
    if (rc == 0) {
        long long r = read_full(g, a->data, a->n, path, err, errlen);
        unsigned char extra;
        if (r < 0) {
            rc = -1;
        } else if ((size_t)r < a->n) {
            snprintf(err, errlen, "%s: truncated: %lld of %zu data bytes (the header promises "
                     "%zu)", path, r, a->n, a->n);
            rc = -1;
        } else if ((r = read_full(g, &extra, 1, path, err, errlen)) != 0) {
            if (r > 0)
                snprintf(err, errlen, "%s: trailing bytes after the %zu data bytes the header "
                         "promises (not an IDX file, or a wrong header)", path, a->n);
            rc = -1;
        }
    }
    gzclose(g);
    if (rc != 0) idx_free(a);
    return rc;
}

void idx_free(IdxArray *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

int idx_load_pair(const char *images, const char *labels, int classes, IdxDataset *d, char *err,
                  size_t errlen) {
    memset(d, 0, sizeof *d);
    IdxArray im, lb;
    if (idx_read(images, 3, &im, err, errlen) != 0) return -1;
    if (idx_read(labels, 1, &lb, err, errlen) != 0) {
        idx_free(&im);
        return -1;
    }
    int rc = 0;
    if (im.dims[0] != lb.dims[0]) {
        snprintf(err, errlen, "%s holds %d images but %s holds %d labels (expected the same "
                 "count: a matching image/label pair)", images, im.dims[0], labels, lb.dims[0]);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < lb.n; i++)
        if (lb.data[i] >= classes) {
            snprintf(err, errlen, "%s: label %d of example %zu is out of range (expected 0 to %d)",
                     labels, lb.data[i], i, classes - 1);
            rc = -1;
        }
    if (rc != 0) {
        idx_free(&im);
        idx_free(&lb);
        return -1;
    }
    d->images = im.data;
    d->labels = lb.data;
    d->n = im.dims[0];
    d->rows = im.dims[1];
    d->cols = im.dims[2];
    return 0;
}

void idx_dataset_free(IdxDataset *d) {
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
