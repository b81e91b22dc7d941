/* bench_sgemm.h: the wall time a benchmark spends inside cblas_sgemm, so
 * `make bench` can print the share of a step the matrix products take.
 *
 * This file defines cblas_sgemm itself: the definition in the benchmark
 * program takes precedence over OpenBLAS's for the engine objects linked into
 * it, and forwards to OpenBLAS's (found with dlsym(RTLD_NEXT)), adding the
 * call's wall time to bench_sgemm_seconds. Calls made inside an OpenMP
 * parallel region (worker threads) are forwarded but not timed: the share is
 * read at one thread. Include it in one benchmark source, first of all
 * (it defines _GNU_SOURCE). The clock costs ~50 ns a call, ~0.1 ms of a
 * transformer step. */
#ifndef CLIPLAB_BENCH_SGEMM_H
#define CLIPLAB_BENCH_SGEMM_H

#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double bench_sgemm_seconds;

typedef void (*BenchSgemmFn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
                             const enum CBLAS_TRANSPOSE, const blasint, const blasint,
                             const blasint, const float, const float *, const blasint,
                             const float *, const blasint, const float, float *, const blasint);

static double bench_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static BenchSgemmFn bench_sgemm_real;

/* before main, so no worker thread races for it */
__attribute__((constructor)) static void bench_sgemm_init(void) {
    bench_sgemm_real = (BenchSgemmFn)dlsym(RTLD_NEXT, "cblas_sgemm");
    if (!bench_sgemm_real) {
        fprintf(stderr, "bench: OpenBLAS's cblas_sgemm not found: %s\n", dlerror());
        abort();
    }
}

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                 const enum CBLAS_TRANSPOSE tb, const blasint M, const blasint N,
                 const blasint K, const float alpha, const float *A, const blasint lda,
                 const float *B, const blasint ldb, const float beta, float *C,
                 const blasint ldc) {
    BenchSgemmFn real = bench_sgemm_real;
    if (omp_in_parallel()) {
        real(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    double t0 = bench_clock();
    real(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    bench_sgemm_seconds += bench_clock() - t0;
}

#endif
