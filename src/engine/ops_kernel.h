/* ops_kernel.h: how the engine's hot kernels use the CPU, private to
 * src/engine: vector clones (OPS_SIMD) and contiguous chunks of work for
 * [train] threads (ops_chunk). Both keep every result bit-identical to the
 * baseline build on one thread.
 *
 * OPS_SIMD marks a loop kernel that is compiled three times (AVX-512, AVX2,
 * baseline x86-64 SSE2) and picked once at load time for the CPU it runs on
 * (GCC/clang target_clones, an ifunc). Every clone gives the same bits: ISO C
 * mode (-std=c11) never contracts a*b+c into an FMA, no -ffast-math lets the
 * compiler reassociate a sum, and the reductions keep their own fixed lanes
 * (ops_nn.c's LANES accumulators), so a wider vector only does more
 * independent elements at once. A call through the ifunc is not inlined, so
 * only loops worth it carry the mark.
 *
 * Threads split work, never a sum: each of nt threads takes one contiguous
 * chunk [ops_chunk(n, nt, k), ops_chunk(n, nt, k + 1)) of independent items
 * (elements, rows, columns, (batch, head) pairs), and a reduction over items
 * stays inside one thread in its one-thread order. Chunk edges are multiples
 * of `align` (64 floats: whole cache lines, no false sharing; and whole
 * sgemm tiles when the items are matrix rows). */
#ifndef CLIPLAB_OPS_KERNEL_H
#define CLIPLAB_OPS_KERNEL_H

#include <stddef.h>

#include "ops.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define OPS_SIMD __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define OPS_SIMD
#endif

/* Start of chunk k of nt over [0, n), edges rounded to multiples of align
 * (the last chunk ends at n). */
static inline size_t ops_chunk(size_t n, int nt, int k, size_t align) {
    if (k >= nt) return n;
    size_t per = (n + (size_t)nt - 1) / (size_t)nt;
    per = (per + align - 1) / align * align;
    size_t s = per * (size_t)k;
    return s < n ? s : n;
}

/* Threads for independent items of `work` floats in all: ops_num_threads
 * when there is enough (64k floats) to pay for waking them, else 1. */
#define OPS_WORK_THREADS(work) ((size_t)(work) >= ((size_t)1 << 16) ? ops_num_threads : 1)

/* Run the statement given last (using lo, hi) on nt contiguous chunks of
 * [0, n) in parallel (variadic, so a braced body may hold commas). */
#define OPS_PARALLEL_CHUNKS(n, nt, align, ...)                                       \
    do {                                                                          \
        size_t n_ = (n), al_ = (align);                                           \
        int nt_ = (nt);                                                           \
        _Pragma("omp parallel for num_threads(nt_) schedule(static) if (nt_ > 1)") \
        for (int k_ = 0; k_ < nt_; k_++) {                                        \
            size_t lo = ops_chunk(n_, nt_, k_, al_), hi = ops_chunk(n_, nt_, k_ + 1, al_); \
            if (lo < hi) __VA_ARGS__;                                                     \
        }                                                                         \
    } while (0)

#endif
