/* common.h: always-on assertions for bugs, and the die() path for user errors.
 * A bug (shape mismatch, index out of range) is an ASSERT: file, line, message, abort.
 * A user or environment problem is reported by the caller and exits non-zero;
 * nothing here ever exits 0 on an error. */
#ifndef CLIPLAB_COMMON_H
#define CLIPLAB_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#define ASSERT(cond, ...)                                                        \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: assertion failed: %s: ", __FILE__, __LINE__, \
                    #cond);                                                      \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* Print "cliplab: error: <msg>" to stderr and exit with status 1. */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* fwrite/fread of n items of size bytes; 0 when all n moved (n == 0 is fine), else -1.
 * The binary formats (checkpoints, clip state) are built from these. */
int io_put(FILE *f, const void *p, size_t size, size_t n);
int io_get(FILE *f, void *p, size_t size, size_t n);

/* malloc/calloc that die with the byte count on failure. */
void *xmalloc(size_t bytes);
void *xcalloc(size_t count, size_t size);

/* Seconds on the monotonic clock (differences only: timings, wall-clock columns). */
double now_seconds(void);

#endif
