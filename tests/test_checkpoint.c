/* test_checkpoint.c: the checkpoint format (src/train/checkpoint.c): a round
 * trip restores every field; every single-byte flip, every truncation and any
 * trailing byte is refused; a refused read leaves the trainer as it was, also
 * when the mismatch is found after part of the state was read. And against an
 * independent reader and writer (tests/ref/ckpt_format.py, Python's zlib for
 * the CRC-32) built from the layout documented in checkpoint.h and resume.h. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "resume.h"
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

/* ------------------------------------------------------------ an independent reader */

/* tests/ref/ckpt_format.py reads checkpoint and resume files from their
 * documented layout (checkpoint.h, resume.h) with Python's zlib for the CRC-32;
 * its fields are compared here with the trainer's own, so a field dropped or
 * reordered in both our writer and our reader fails, and the header must hold
 * zlib's CRC-32 of the payload, not merely a checksum our reader agrees with. */

typedef struct {
    char *text;       /* the script's output, lines "name value ..." */
} Fields;

static Fields read_with_python(const char *path) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/ref/ckpt_format.py read %s", path);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run %s", cmd);
    Fields f = {NULL};
    size_t cap = 0;
    FILE *m = open_memstream(&f.text, &cap);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) fwrite(buf, 1, n, m);
    fclose(m);
    cr_assert_eq(pclose(p), 0, "ckpt_format.py refused %s (its message above)", path);
    return f;
}

/* The values after "name " (NULL-terminated tokens in a static buffer). */
static char **field(const Fields *f, const char *name) {
    static char line[1 << 16];
    static char *tok[4096];
    size_t nl = strlen(name);
    for (const char *p = f->text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > nl && !strncmp(p, name, nl) && p[nl] == ' ') {
            cr_assert(len < sizeof line);
            memcpy(line, p + nl + 1, len - nl - 1);
            line[len - nl - 1] = '\0';
            int k = 0;
            for (char *s = strtok(line, " "); s && k < 4095; s = strtok(NULL, " ")) tok[k++] = s;
            tok[k] = NULL;
            return tok;
        }
        p = e ? e + 1 : NULL;
    }
    cr_assert_fail("ckpt_format.py printed no field %s", name);
    return NULL;
}

static int ntok(char **t) {
    int k = 0;
    while (t[k]) k++;
    return k;
}

static long long field_int(const Fields *f, const char *name, int i) {
    char **t = field(f, name);
    cr_assert(i < ntok(t), "%s has no value %d", name, i);
    return strtoll(t[i], NULL, 10);
}

/* Doubles: Python's repr is exact, so equality (NaN matches NaN). */
static void expect_doubles(const Fields *f, const char *name, const double *want, int n) {
    char **t = field(f, name);
    cr_assert_eq(ntok(t), n, "%s: %d values, expected %d", name, ntok(t), n);
    for (int i = 0; i < n; i++) {
        double v = strtod(t[i], NULL);
        cr_assert(v == want[i] || (isnan(v) && isnan(want[i])), "%s[%d]: file %s, trainer %.17g",
                  name, i, t[i], want[i]);
    }
}

static void expect_floats(const Fields *f, const char *name, const float *want, size_t n) {
    char **t = field(f, name);
    if (n == 0) {
        cr_assert_eq(ntok(t), 0, "%s", name);
        return;
    }
    cr_assert_eq((size_t)ntok(t), n, "%s: %d values, expected %zu", name, ntok(t), n);
    for (size_t i = 0; i < n; i++)
        cr_assert((float)strtod(t[i], NULL) == want[i], "%s[%zu]: file %s, trainer %.9g", name, i,
                  t[i], (double)want[i]);
}

static void expect_info(const Fields *f, const char *name, const ClipStepInfo *s) {
    double d[6] = {s->norm, s->post_norm, s->threshold, s->coef, s->clipped, s->warmup};
    expect_doubles(f, name, d, 6);
}

/* A few clipped steps, so every stateful method holds non-trivial state. */
static void clip_steps(Fixture *x, int steps) {
    Rng r;
    rng_seed(&r, 99, 1);
    for (int s = 0; s < steps; s++)
        for (int g = 0; g < x->tr.ngroups; g++) {
            UpdateGroup *ug = &x->tr.groups[g];
            for (size_t i = 0; i < ug->ps->n; i++)
                ug->ps->grad[i] = (float)(rng_normal(&r) * (s == 3 ? 40 : 1));
            ClipStats st;
            clipper_apply(&ug->clip, clipper_global_norm(&ug->clip), &st);
        }
}

/* Every field of the trainer's checkpoint as the independent reader saw it;
 * pre = "" for a checkpoint file, "ckpt." inside a resume file. */
static void expect_trainer(const Fields *f, const char *pre, const Trainer *tr) {
    char nm[128];
#define NAME(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)
    cr_assert_eq(field_int(f, NAME("%sstep", pre), 0), tr->step);
    char **rng = field(f, NAME("%srng", pre));
    cr_assert(ntok(rng) == 4 && strtoull(rng[0], NULL, 10) == tr->rng.state &&
                  strtoull(rng[1], NULL, 10) == tr->rng.inc && atoi(rng[2]) == tr->rng.has_spare &&
                  strtod(rng[3], NULL) == tr->rng.spare,
              "the RNG as read: %s %s %s %s", rng[0], rng[1], rng[2], rng[3]);
    expect_doubles(f, NAME("%srec_avg", pre), &tr->rec.avg, 1);
    cr_assert_eq(field_int(f, NAME("%srec_seen", pre), 0), tr->rec.seen);
    char **sc = field(f, NAME("%sscaler", pre));
    cr_assert(ntok(sc) == 3 && (float)strtod(sc[0], NULL) == tr->scaler.scale &&
                  atol(sc[1]) == tr->scaler.growth_tracker && atol(sc[2]) == tr->scaler.skipped,
              "the loss scaler as read: %s %s %s", sc[0], sc[1], sc[2]);
    cr_assert_eq(field_int(f, NAME("%sngroups", pre), 0), tr->ngroups);
    for (int g = 0; g < tr->ngroups; g++) {
        const UpdateGroup *ug = &tr->groups[g];
        const ParamSet *ps = ug->ps;
        cr_assert_eq((size_t)field_int(f, NAME("%sgroup%d.n", pre, g), 0), ps->n);
        cr_assert_eq((size_t)field_int(f, NAME("%sgroup%d.nbuf", pre, g), 0), ps->nbuf);
        expect_floats(f, NAME("%sgroup%d.data", pre, g), ps->data, ps->n);
        expect_floats(f, NAME("%sgroup%d.buf", pre, g), ps->buf, ps->nbuf);
        expect_floats(f, NAME("%sgroup%d.m", pre, g), ug->optim.m, ps->n);
        expect_floats(f, NAME("%sgroup%d.v", pre, g), ug->optim.v, ps->n);
        double counters[4] = {(double)ug->optim.t, (double)ug->updates, (double)ug->clipped,
                              (double)ug->skipped};
        expect_doubles(f, NAME("%sgroup%d.counters", pre, g), counters, 4);
        expect_doubles(f, NAME("%sgroup%d.lr", pre, g), &ug->lr, 1);
        const Clipper *cl = &ug->clip;
        static const char *const method[] = {"none", "global_norm", "value", "norm", "agc",
                                             "zclip", "adagc", "auto"};
        cr_assert_str_eq(field(f, NAME("%sgroup%d.clip.method", pre, g))[0], method[cl->cfg.grad]);
        cr_assert_eq(field_int(f, NAME("%sgroup%d.clip.nsel", pre, g), 0), cl->nsel);
        if (cl->cfg.grad == CLIP_ZCLIP) {
            const ClipZClip *z = &cl->zclip;
            cr_assert_eq(field_int(f, NAME("%sgroup%d.clip.nbuf", pre, g), 0), z->nbuf);
            cr_assert_eq(field_int(f, NAME("%sgroup%d.clip.initialized", pre, g), 0), z->initialized);
            cr_assert_eq(field_int(f, NAME("%sgroup%d.clip.steps", pre, g), 0), z->steps);
            double d[4] = {z->mean, z->var, z->z, z->clip_val};
            expect_doubles(f, NAME("%sgroup%d.clip.mean_var_z_clipval", pre, g), d, 4);
            expect_info(f, NAME("%sgroup%d.clip.last", pre, g), &z->last);
            expect_doubles(f, NAME("%sgroup%d.clip.buffer", pre, g), z->buffer, z->nbuf);
        } else if (cl->cfg.grad == CLIP_ADAGC) {
            const ClipAdaGC *a = &cl->adagc;
            cr_assert_eq(field_int(f, NAME("%sgroup%d.clip.steps", pre, g), 0), a->steps);
            expect_doubles(f, NAME("%sgroup%d.clip.gamma", pre, g), a->gamma, a->count);
            expect_doubles(f, NAME("%sgroup%d.clip.norms", pre, g), a->norms, a->count);
            expect_info(f, NAME("%sgroup%d.clip.last", pre, g), &a->last);
        } else if (cl->cfg.grad == CLIP_AUTO) {
            const ClipAuto *a = &cl->autoc;
            cr_assert_eq(field_int(f, NAME("%sgroup%d.clip.warmup", pre, g), 0), a->p.warmup_steps);
            cr_assert_eq(field_int(f, NAME("%sgroup%d.clip.nseen", pre, g), 0), a->nseen);
            cr_assert_eq(field_int(f, NAME("%sgroup%d.clip.steps", pre, g), 0), a->steps);
            expect_doubles(f, NAME("%sgroup%d.clip.threshold", pre, g), &a->threshold, 1);
            expect_info(f, NAME("%sgroup%d.clip.last", pre, g), &a->last);
            expect_doubles(f, NAME("%sgroup%d.clip.seen", pre, g), a->seen, a->nseen);
        }
    }
    /* the fixture's model state: its data position, an int64 */
    const FixModel *m = tr->model;
    char hex[17];
    for (int i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", (unsigned)((uint64_t)m->pos >> (8 * i)) & 0xffu);
    cr_assert_str_eq(field(f, NAME("%smodel_state", pre))[0], hex);
#undef NAME
}

static char *tmp_path(char *buf, size_t len, const char *stem) {
    snprintf(buf, len, "/tmp/%s_XXXXXX", stem);
    int fd = mkstemp(buf);
    cr_assert(fd >= 0);
    close(fd);
    return buf;
}

Test(checkpoint_format, independent_reader_sees_every_field_of_every_clip_state) {
    static const char *const methods[] = {"clip.grad=global_norm", "clip.grad=zclip",
                                          "clip.grad=adagc", "clip.grad=auto"};
    for (int k = 0; k < 4; k++) {
        const char *over[] = {methods[k], "optim.kind=adam", "clip.zclip_warmup=6",
                              "clip.adagc_warmup=2", "clip.auto_warmup=6"};
        int rows[2] = {4, 2};
        Fixture *x = fix_new(rows, 2, over, 5, 3 + (uint64_t)k);
        clip_steps(x, 4);
        x->tr.groups[1].skipped = 2, x->tr.groups[0].lr = 0.0123;
        x->tr.scaler.scale = 4096.0f, x->tr.scaler.growth_tracker = 11 + k, x->tr.scaler.skipped = 3;
        char path[64], err[512];
        tmp_path(path, sizeof path, "test_ckfmt");
        cr_assert_eq(ckpt_save_file(&x->tr, path, err, sizeof err), 0, "%s", err);
        Fields f = read_with_python(path);
        /* the header: zlib's CRC-32 (Python computed it from the payload) */
        FILE *fp = fopen(path, "rb");
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        fclose(fp);
        cr_assert_eq(field_int(&f, "length", 0), size - 20);
        cr_assert_eq(field_int(&f, "crc", 0), field_int(&f, "zlib_crc", 0), "%s: the header's CRC "
                     "is not zlib.crc32 of the payload", methods[k]);
        expect_trainer(&f, "", &x->tr);
        free(f.text);
        unlink(path);
        fix_free(x);
    }
}

/* The other direction: a checkpoint written by the Python script from a
 * pattern (ckpt_format.py golden) loads into the trainer with those values. */
static float golden_value(int g, int k, int i) {
    return k != 2 ? (float)((g + 1) * 100.0 + k * 10.0 + i * 0.25) : (float)(1.0 + i / 8.0 + g);
}

Test(checkpoint_format, a_file_written_by_the_independent_writer_loads) {
    int rows[2] = {4, 2};
    Fixture *x = fix_new(rows, 2, zclip, 2, 5);
    char path[64], cmd[200], err[512];
    tmp_path(path, sizeof path, "test_ckgold");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/ref/ckpt_format.py golden %s", path);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    FILE *f = fopen(path, "rb");
    cr_assert_eq(ckpt_read(&x->tr, f, err, sizeof err), 0, "%s", err);
    fclose(f);
    unlink(path);
    const Trainer *tr = &x->tr;
    cr_assert(tr->step == 77 && tr->rng.state == 0x0123456789ABCDEFull && tr->rng.inc == 0x55 &&
              tr->rng.has_spare == 1 && tr->rng.spare == -0.5);
    cr_assert(tr->rec.avg == 2.75 && tr->rec.seen == 19 && x->model.pos == 4321);
    cr_assert(tr->scaler.scale == 1024.0f && tr->scaler.growth_tracker == 37 && tr->scaler.skipped == 6);
    for (int g = 0; g < 2; g++) {
        const UpdateGroup *ug = &tr->groups[g];
        cr_assert_eq(ug->ps->n, (size_t)(rows[g] * 3 + 3));
        for (size_t i = 0; i < ug->ps->n; i++)
            cr_assert(ug->ps->data[i] == golden_value(g, 0, (int)i) &&
                          ug->optim.m[i] == golden_value(g, 1, (int)i) &&
                          ug->optim.v[i] == golden_value(g, 2, (int)i),
                      "group %d element %zu", g, i);
        cr_assert(ug->optim.t == 5 + g && ug->updates == 6 + g && ug->clipped == 2 && ug->skipped == 1);
        cr_assert(ug->lr == 0.125 * (g + 1));
        const ClipZClip *z = &ug->clip.zclip;
        cr_assert(z->nbuf == 3 && z->initialized == 0 && z->steps == 3 + g);
        cr_assert(z->mean == 1.5 && z->var == 0.25 && z->z == 0 && z->clip_val == -1);
        cr_assert(z->last.norm == 2 && z->last.post_norm == 1 && z->last.threshold == 1 &&
                  z->last.coef == 0.5 && z->last.clipped == 1 && z->last.warmup == 1);
        cr_assert(z->buffer[0] == 1.0 + g && z->buffer[1] == 2 && z->buffer[2] == 3);
    }
    fix_free(x);
}

/* resume.bin (resume.h) through the same reader: header CRC, fingerprint,
 * counters, the embedded checkpoint, the rollbacks and the recovery ring. */
Test(checkpoint_format, independent_reader_sees_every_field_of_a_resume_file) {
    const char *over[] = {"clip.grad=auto", "optim.kind=adam", "clip.auto_warmup=6",
                          "recovery.enabled=true", "recovery.snapshot_every=10"};
    int rows[2] = {3, 2};
    Fixture *x = fix_new(rows, 2, over, 5, 8);
    clip_steps(x, 3);
    char dir[] = "/tmp/test_resfmt_XXXXXX", err[512];
    cr_assert(mkdtemp(dir));
    snprintf(x->tr.run.out_dir, sizeof x->tr.run.out_dir, "%s", dir);
    cr_assert(x->tr.rec.nring >= 1, "the recovery ring has no slot");
    char *snap;
    size_t slen;
    cr_assert_eq(ckpt_to_memory(&x->tr, &snap, &slen), 0);
    recovery_store(&x->tr.rec, 30, snap, slen); /* the ring owns it now */
    recovery_record(&x->tr.rec, 35, 9.5, 1.25, 30);
    clip_steps(x, 2);
    x->tr.step = 44, x->tr.scaler.scale = 0.5f, x->tr.scaler.skipped = 9;
    const char *fp = "optim.lr=0.001\nclip.grad=auto\n";
    cr_assert_eq(resume_save(&x->tr, fp, err, sizeof err), 0, "%s", err);
    char path[128];
    snprintf(path, sizeof path, "%s/" RESUME_FILE, dir);
    Fields f = read_with_python(path);
    cr_assert_eq(field_int(&f, "crc", 0), field_int(&f, "zlib_crc", 0));
    char hex[128] = "";
    for (size_t i = 0; fp[i]; i++) snprintf(hex + 2 * i, 3, "%02x", (unsigned char)fp[i]);
    cr_assert_str_eq(field(&f, "fingerprint")[0], hex);
    expect_trainer(&f, "ckpt.", &x->tr);
    cr_assert_eq(field_int(&f, "nevents", 0), 1);
    const RecoveryEvent *e = &x->tr.rec.events[0];
    double ev[5] = {(double)e->spike_step, e->loss, e->running_avg, (double)e->restored_step,
                    (double)e->skipped};
    expect_doubles(&f, "event0", ev, 5);
    cr_assert(e->spike_step == 35 && e->restored_step == 30);
    cr_assert_eq(field_int(&f, "nsnap", 0), 1);
    cr_assert_eq(field_int(&f, "snap0.slot_step", 1), 30);
    /* the snapshot holds the trainer as it was stored (its step field 42) */
    cr_assert_eq(field_int(&f, "snap0.step", 0), 42);
    cr_assert_eq(field_int(&f, "snap0.crc", 0), field_int(&f, "snap0.zlib_crc", 0));
    free(f.text);
    unlink(path);
    rmdir(dir);
    fix_free(x);
}
