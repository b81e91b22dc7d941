/* bench_clip.c: times clip_grad_norm (L2, max_norm 1) over 64 tensors of
 * 256x1024 floats (16.8M values, 64 MiB) whose norm is far above the threshold,
 * so every rep computes the norm and rescales every value. Before each rep the
 * gradients are refilled from a pristine copy (untimed), so the clip never
 * degenerates into a no-op. Uses clip.h only. tests/bench/bench_clip.py runs
 * the same workload in PyTorch and prints the ratio.
 *
 * Output, one line, key=value (times_ms: every timed rep, comma-separated):
 *   bench=clip_grad_norm tensors=64 rows=256 cols=1024 warmup=W reps=R median_ms=.. min_ms=..
 *   norm=.. post_norm=.. times_ms=t1,t2,...
 * Usage: bench_clip [reps] [warmup] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clip.h"

#define NT 64
#define ROWS 256
#define COLS 1024

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Uniform in [-1, 1) from a 64-bit LCG (deterministic, no dependencies). */
static void fill(float *x, size_t n, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(*s >> 40) / (double)(1ULL << 23) - 1.0);
    }
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 30, warm = argc > 2 ? atoi(argv[2]) : 5;
    if (reps < 1 || warm < 0) {
        fprintf(stderr, "usage: bench_clip [reps >= 1] [warmup >= 0]\n");
        return 2;
    }
    size_t n = (size_t)ROWS * COLS;
    float *src = malloc(NT * n * sizeof(float)), *grad = malloc(NT * n * sizeof(float));
    double *ms = malloc((size_t)reps * sizeof(double));
    if (!src || !grad || !ms) {
        fprintf(stderr, "bench_clip: out of memory\n");
        return 1;
    }
    uint64_t seed = 12345;
    fill(src, NT * n, &seed);
    ClipTensor t[NT];
    for (int i = 0; i < NT; i++) t[i] = (ClipTensor){grad + i * n, NULL, n, 0};
    double norm = 0;
    for (int r = -warm; r < reps; r++) {
        memcpy(grad, src, NT * n * sizeof(float));
        double t0 = now_ms();
        norm = clip_grad_norm(t, NT, 1.0, 2.0);
        double t1 = now_ms();
        if (r >= 0) ms[r] = t1 - t0;
    }
    double post = clip_total_norm(t, NT, 2.0);
    if (!(norm > 1.0) || !(post < 1.0 && post > 0.999)) {
        fprintf(stderr, "bench_clip: unexpected norms %g -> %g\n", norm, post);
        return 1;
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    printf("bench=clip_grad_norm tensors=%d rows=%d cols=%d warmup=%d reps=%d median_ms=%.4f "
           "min_ms=%.4f norm=%.6f post_norm=%.6f times_ms=",
           NT, ROWS, COLS, warm, reps, ms[reps / 2], ms[0], norm, post);
    for (int r = 0; r < reps; r++) printf("%s%.4f", r ? "," : "", ms[r]);
    printf("\n");
    free(src);
    free(grad);
    free(ms);
    return 0;
}
