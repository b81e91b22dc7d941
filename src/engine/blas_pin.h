/* blas_pin.h: pin OpenBLAS to one sgemm kernel so numbers do not depend on the
 * CPU (blas_pin.c says why and what is left to the machine). */
#ifndef CLIPLAB_BLAS_PIN_H
#define CLIPLAB_BLAS_PIN_H

/* Select the pinned kernel once (thread-safe, idempotent); call before the
 * first BLAS call. 1 when pinned; 0 when the machine's kernel runs (said once
 * on stderr, with the reason). */
int blas_pin(void);

/* One line for run folders, figures and --version: version, kernel, pinned or not. */
const char *blas_describe(void);

#endif
