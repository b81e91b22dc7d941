/* bench_util.h: the median the C benchmark programs report (sorts in place);
 * their clock is common.h's now_seconds(). */
#ifndef CLIPLAB_BENCH_UTIL_H
#define CLIPLAB_BENCH_UTIL_H

#include <stdlib.h>

#include "common.h"

static int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static inline int bench_threads(void) {
    const char *e = getenv("CLIPLAB_BENCH_THREADS");
    int n = e ? atoi(e) : 1;
    return n >= 1 ? n : 1;
}

#endif
