/* test_checkpoint.c: the checkpoint format (src/train/checkpoint.c): a round
 * trip restores every field; every single-byte flip, every truncation and any
 * trailing byte is refused; a refused read leaves the trainer as it was, also
 * when the mismatch is found after part of the state was read. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "trainer_fixture.h"

static const char *const zclip[] = {"clip.grad=zclip", "optim.kind=adam"};

/* The trainer's state as checkpoint bytes (compares every checkpointed field). */
static char *state(const Trainer *tr, size_t *len) {
    char *buf;
    cr_assert_eq(ckpt_to_memory(tr, &buf, len), 0);
    return buf;
}

static void expect_same_state(const Trainer *tr, const char *want, size_t wlen, const char *what) {
    size_t len;
    char *now = state(tr, &len);
    cr_assert(len == wlen && memcmp(now, want, len) == 0, "%s changed the trainer's state", what);
    free(now);
}

Test(checkpoint, round_trip_restores_everything) {
    int rows[2] = {4, 2};
    Fixture *a = fix_new(rows, 2, zclip, 2, 1), *b = fix_new(rows, 2, zclip, 2, 2);
    size_t alen, blen;
    char *abuf = state(&a->tr, &alen), *bbuf = state(&b->tr, &blen);
    cr_assert(alen == blen && memcmp(abuf, bbuf, alen) != 0, "two seeds, same state?");
    b->model.pos = 7, b->tr.step = 3;
    char err[512];
    cr_assert_eq(ckpt_from_memory(&b->tr, abuf, alen, err, sizeof err), 0, "%s", err);
    expect_same_state(&b->tr, abuf, alen, "nothing");
    cr_assert_eq(b->tr.step, 42);
    cr_assert_eq(b->model.pos, 1234);
    cr_assert_eq(memcmp(&a->tr.rng, &b->tr.rng, sizeof a->tr.rng), 0);
    free(abuf), free(bbuf);
    fix_free(a), fix_free(b);
}

Test(checkpoint, every_byte_flip_is_refused_and_changes_nothing) {
    int rows[1] = {5};
    Fixture *a = fix_new(rows, 1, zclip, 2, 1), *b = fix_new(rows, 1, zclip, 2, 2);
    size_t alen, blen;
    char *abuf = state(&a->tr, &alen), *bbuf = state(&b->tr, &blen);
    char err[512];
    for (size_t i = 0; i < alen; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            abuf[i] ^= (char)(1 << bit);
            int rc = ckpt_from_memory(&b->tr, abuf, alen, err, sizeof err);
            abuf[i] ^= (char)(1 << bit);
            cr_assert_neq(rc, 0, "byte %zu of %zu, bit %d flipped: accepted", i, alen, bit);
            cr_assert(err[0], "no message");
            if (i % 16 == 0) expect_same_state(&b->tr, bbuf, blen, "a refused read");
        }
    expect_same_state(&b->tr, bbuf, blen, "a refused read");
    free(abuf), free(bbuf);
    fix_free(a), fix_free(b);
}

Test(checkpoint, truncation_and_trailing_bytes_refused) {
    int rows[1] = {3};
    Fixture *a = fix_new(rows, 1, zclip, 2, 1), *b = fix_new(rows, 1, zclip, 2, 2);
    size_t alen, blen;
    char *abuf = state(&a->tr, &alen), *bbuf = state(&b->tr, &blen);
    char err[512];
    for (size_t n = 0; n < alen; n++)
        cr_assert_neq(ckpt_from_memory(&b->tr, abuf, n, err, sizeof err), 0, "%zu of %zu bytes", n, alen);
    char *longer = malloc(alen + 1);
    memcpy(longer, abuf, alen);
    longer[alen] = '\n';
    cr_assert_neq(ckpt_from_memory(&b->tr, longer, alen + 1, err, sizeof err), 0);
    cr_assert(strstr(err, "not part of it"), "%s", err);
    expect_same_state(&b->tr, bbuf, blen, "a refused read");
    cr_assert_eq(ckpt_from_memory(&b->tr, longer, alen, err, sizeof err), 0, "%s", err);
    free(longer), free(abuf), free(bbuf);
    fix_free(a), fix_free(b);
}

/* Group g0 fits and is read in place; g1 has other sizes: the read is refused
 * and g0 is put back. */
Test(checkpoint, mismatch_after_a_group_was_read_changes_nothing) {
    int ra[2] = {4, 2}, rb[2] = {4, 3};
    Fixture *a = fix_new(ra, 2, zclip, 2, 1), *b = fix_new(rb, 2, zclip, 2, 2);
    size_t alen, blen;
    char *abuf = state(&a->tr, &alen), *bbuf = state(&b->tr, &blen);
    char err[512];
    cr_assert_neq(ckpt_from_memory(&b->tr, abuf, alen, err, sizeof err), 0);
    cr_assert(strstr(err, "group g1"), "%s", err);
    expect_same_state(&b->tr, bbuf, blen, "a refused read");
    /* another clip method: its state does not load */
    static const char *const none[] = {"clip.grad=none", "optim.kind=adam"};
    int r1[1] = {4};
    Fixture *c = fix_new(r1, 1, zclip, 2, 1), *d = fix_new(r1, 1, none, 2, 2);
    char *cbuf = state(&c->tr, &alen), *dbuf = state(&d->tr, &blen);
    cr_assert_neq(ckpt_from_memory(&d->tr, cbuf, alen, err, sizeof err), 0);
    expect_same_state(&d->tr, dbuf, blen, "a refused read");
    free(abuf), free(bbuf), free(cbuf), free(dbuf);
    fix_free(a), fix_free(b), fix_free(c), fix_free(d);
}

Test(checkpoint, file_round_trip_and_stream_read) {
    int rows[1] = {3};
    Fixture *a = fix_new(rows, 1, zclip, 2, 1), *b = fix_new(rows, 1, zclip, 2, 2);
    char path[] = "/tmp/test_ckpt_XXXXXX", err[512];
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(ckpt_save_file(&a->tr, path, err, sizeof err), 0, "%s", err);
    FILE *f = fopen(path, "ab"); /* append garbage: refused on read */
    FILE *r = fopen(path, "rb");
    cr_assert_eq(ckpt_read(&b->tr, r, err, sizeof err), 0, "%s", err);
    fclose(r);
    fputs("x", f);
    fclose(f);
    r = fopen(path, "rb");
    cr_assert_neq(ckpt_read(&b->tr, r, err, sizeof err), 0);
    fclose(r);
    unlink(path);
    size_t alen;
    char *abuf = state(&a->tr, &alen);
    expect_same_state(&b->tr, abuf, alen, "the good read then a refused read");
    free(abuf);
    fix_free(a), fix_free(b);
}
