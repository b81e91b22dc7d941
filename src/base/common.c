/* common.c: die(), the checked allocators, binary IO and the clock declared in common.h. */
#include "common.h"

#include <stdarg.h>
#include <time.h>

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("cliplab: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

int io_put(FILE *f, const void *p, size_t size, size_t n) {
    return n == 0 || fwrite(p, size, n, f) == n ? 0 : -1;
}

int io_get(FILE *f, void *p, size_t size, size_t n) {
    return n == 0 || fread(p, size, n, f) == n ? 0 : -1;
}

void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) die("out of memory allocating %zu bytes", bytes);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}
