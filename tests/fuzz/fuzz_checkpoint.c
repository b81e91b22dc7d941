/* fuzz_checkpoint.c: libFuzzer target for the checkpoint reader
 * (ckpt_from_memory) on a two-group trainer with ZClip state
 * (tests/trainer_fixture.h). Input byte 0 picks the mode: odd = the bytes as
 * they are (header, length and CRC-32 checks); even = the rest as a payload
 * under a correct header, so the fuzzer reaches the payload parser past the
 * checksum. Properties: no crash or sanitizer report; a refused read leaves
 * the trainer's state byte for byte as it was; an accepted one can be
 * written and read back. */
#include <stdint.h>
#include <zlib.h>

#include "checkpoint.h"
#include "trainer_fixture.h"

#define FUZZ_CHECK(cond, ...)                                     \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "fuzz property failed: %s: ", #cond); \
            fprintf(stderr, __VA_ARGS__);                         \
            fputc('\n', stderr);                                  \
            abort();                                              \
        }                                                         \
    } while (0)

static Fixture *fx;
static char *pristine;
static size_t pristine_len;

static void put_le(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    if (!fx) {
        static const char *const over[] = {"clip.grad=zclip", "optim.kind=adam"};
        int rows[2] = {4, 2};
        fx = fix_new(rows, 2, over, 2, 1);
        FUZZ_CHECK(ckpt_to_memory(&fx->tr, &pristine, &pristine_len) == 0, "serialise");
    }
    if (size == 0) return 0;
    unsigned char *buf;
    size_t len;
    if (data[0] & 1) {
        len = size - 1;
        buf = malloc(len ? len : 1);
        memcpy(buf, data + 1, len);
    } else {
        len = 20 + size - 1;
        buf = malloc(len);
        memcpy(buf, pristine, 8); /* magic and version */
        put_le(buf + 8, size - 1, 8);
        memcpy(buf + 20, data + 1, size - 1);
        put_le(buf + 16, crc32_z(0L, buf + 20, size - 1), 4);
    }
    int rc = ckpt_from_memory(&fx->tr, (const char *)buf, len, err, sizeof err);
    char *now;
    size_t now_len;
    FUZZ_CHECK(ckpt_to_memory(&fx->tr, &now, &now_len) == 0, "serialise");
    if (rc != 0) {
        FUZZ_CHECK(err[0] != '\0', "refused without a message");
        FUZZ_CHECK(now_len == pristine_len && memcmp(now, pristine, now_len) == 0,
                   "a refused read changed the state (%s)", err);
    } else {
        FUZZ_CHECK(ckpt_from_memory(&fx->tr, now, now_len, err, sizeof err) == 0,
                   "an accepted state does not load back: %s", err);
        FUZZ_CHECK(ckpt_from_memory(&fx->tr, pristine, pristine_len, err, sizeof err) == 0, "%s", err);
    }
    free(now);
    free(buf);
    return 0;
}

/* Seeds: `fuzz_checkpoint -seed_dir=DIR` is not a libFuzzer flag, so the
 * Makefile builds this file with -DFUZZ_SEED_MAIN into a plain program that
 * writes both modes' seeds. */
#ifdef FUZZ_SEED_MAIN
int main(int argc, char **argv) {
    FUZZ_CHECK(argc == 2, "usage: %s DIR", argv[0]);
    static const char *const over[][2] = {{"clip.grad=zclip", "optim.kind=adam"},
                                          {"clip.grad=none", "optim.kind=sgd"}};
    for (int k = 0; k < 2; k++) {
        int rows[2] = {4, 2};
        Fixture *x = fix_new(rows, 2, over[k], 2, 1);
        char *b;
        size_t n;
        FUZZ_CHECK(ckpt_to_memory(&x->tr, &b, &n) == 0, "serialise");
        for (int mode = 0; mode < 2; mode++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/seed_%s_%s", argv[1], k ? "none" : "zclip",
                     mode ? "whole" : "payload");
            FILE *f = fopen(path, "wb");
            FUZZ_CHECK(f, "cannot write %s", path);
            fputc(mode, f);
            if (mode) fwrite(b, 1, n, f);
            else fwrite(b + 20, 1, n - 20, f);
            fclose(f);
        }
        free(b);
        fix_free(x);
    }
    return 0;
}
#endif
