/* test_params.c: the initialisers of src/engine/params.c. Orthogonal init
 * (LAPACK QR) against the naive reference it replaced (modified Gram-Schmidt,
 * twice, in double): the same matrix, orthonormal rows or columns times gain. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"

/* The naive reference: Gram-Schmidt on the k vectors of length m. */
static void gram_schmidt_orthogonal(float *out, int rows, int cols, Rng *r, float gain) {
    int transpose = rows > cols;
    int k = transpose ? cols : rows, m = transpose ? rows : cols;
    double *q = malloc((size_t)k * (size_t)m * sizeof *q);
    for (size_t i = 0; i < (size_t)k * (size_t)m; i++) q[i] = rng_normal(r);
    for (int i = 0; i < k; i++) {
        double *v = q + (size_t)i * m;
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < i; j++) {
                const double *u = q + (size_t)j * m;
                double dot = 0.0;
                for (int e = 0; e < m; e++) dot += u[e] * v[e];
                for (int e = 0; e < m; e++) v[e] -= dot * u[e];
            }
        double nrm = 0.0;
        for (int e = 0; e < m; e++) nrm += v[e] * v[e];
        nrm = sqrt(nrm);
        for (int e = 0; e < m; e++) v[e] /= nrm;
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            out[(size_t)i * cols + j] =
                (float)(gain * (transpose ? q[(size_t)j * m + i] : q[(size_t)i * m + j]));
    free(q);
}

static Tensor matrix(int rows, int cols) {
    Tensor t = {0};
    t.ndim = 2, t.shape[0] = rows, t.shape[1] = cols, t.n = (size_t)rows * cols;
    t.data = calloc(t.n, sizeof(float));
    return t;
}

Test(params, orthogonal_matches_gram_schmidt) {
    static const int shapes[][2] = {{1, 1}, {7, 7}, {64, 64}, {5, 40}, {40, 5}, {130, 129}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (uint64_t seed = 1; seed <= 3; seed++) {
            int rows = shapes[s][0], cols = shapes[s][1];
            Tensor t = matrix(rows, cols);
            float *ref = malloc(t.n * sizeof *ref);
            Rng a, b;
            rng_seed(&a, seed, 54), rng_seed(&b, seed, 54);
            param_init_orthogonal(&t, &a, 1.2f);
            gram_schmidt_orthogonal(ref, rows, cols, &b, 1.2f);
            cr_assert_eq(rng_uniform(&a), rng_uniform(&b), "different number of draws");
            for (size_t i = 0; i < t.n; i++)
                cr_assert(fabsf(t.data[i] - ref[i]) <= 1e-6f, "%dx%d seed %d [%zu]: %g vs %g", rows,
                          cols, (int)seed, i, t.data[i], ref[i]);
            free(t.data), free(ref);
        }
}

/* W W^T = gain^2 I for a wide matrix, W^T W = gain^2 I for a tall one. */
Test(params, orthogonal_is_orthogonal_times_gain) {
    static const int shapes[][2] = {{32, 32}, {8, 50}, {50, 8}};
    for (size_t s = 0; s < 3; s++) {
        int rows = shapes[s][0], cols = shapes[s][1], tall = rows > cols;
        int k = tall ? cols : rows, m = tall ? rows : cols;
        Tensor t = matrix(rows, cols);
        Rng r;
        rng_seed(&r, 5, 54);
        param_init_orthogonal(&t, &r, -0.5f);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                double dot = 0;
                for (int e = 0; e < m; e++) {
                    float x = tall ? t.data[(size_t)e * cols + i] : t.data[(size_t)i * cols + e];
                    float y = tall ? t.data[(size_t)e * cols + j] : t.data[(size_t)j * cols + e];
                    dot += (double)x * y;
                }
                cr_assert(fabs(dot - (i == j ? 0.25 : 0.0)) < 1e-5, "%dx%d (%d,%d): %g", rows, cols,
                          i, j, dot);
            }
        free(t.data);
    }
}
