/* checkpoint.c: serialise and restore the training state (see checkpoint.h).
 *
 * A checkpoint is a 20-byte header and a payload:
 *   "CLCK", u32 version, u64 payload bytes, u32 crc32(payload) (zlib's CRC-32,
 *   the one gzip and PNG use), then the payload in the order of write_payload().
 * A read checks the whole header, the exact length (trailing bytes are refused)
 * and the CRC before touching the trainer, and keeps a copy of the trainer's
 * own state to put back if the payload still does not fit (a model or shape
 * mismatch found half-way), so a refused read leaves the trainer as it was. */
#include "checkpoint.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common.h"
#include "train.h"

#define CKPT_MAGIC "CLCK"
#define CKPT_VERSION 3u /* 1: no length or checksum; 2: no loss scaler */
#define CKPT_HEADER 20

/* [dist] shard = true: each rank holds the optimizer state of its part only.
 * A checkpoint holds the whole state, as one process's would (PyTorch FSDP's
 * FULL_STATE_DICT; DeepSpeed ZeRO instead writes one file per rank): the parts
 * are all-gathered into whole-size buffers (a collective: every rank
 * serialises, rank 0 writes), and a read keeps this rank's part. NULL when
 * the group is not sharded. */
static float *whole_state(const UpdateGroup *g, const float *part, int gather) {
    if (g->optim.n == g->ps->n) return NULL;
    float *w = xcalloc(g->ps->n ? g->ps->n : 1, sizeof *w);
    memcpy(w + g->optim.lo, part, g->optim.n * sizeof *w);
    if (gather) dist_allgather_chunks(w, g->ps->n);
    return w;
}

int ckpt_collective(const Trainer *tr) {
    for (int i = 0; i < tr->ngroups; i++)
        if (tr->groups[i].optim.n != tr->groups[i].ps->n) return 1;
    return 0;
}

/* gather = 0: this rank's part only, zeros elsewhere (ckpt_from_memory's copy
 * of the trainer to put back, read by this rank alone: not a collective). */
static int write_group(const UpdateGroup *g, FILE *f, int gather) {
    const ParamSet *ps = g->ps;
    uint64_t sizes[2] = {ps->n, ps->nbuf};
    int64_t counters[4] = {g->optim.t, g->updates, g->clipped, g->skipped};
    float *wm = whole_state(g, g->optim.m, gather), *wv = whole_state(g, g->optim.v, gather);
    int rc = io_put(f, sizes, sizeof *sizes, 2) || io_put(f, ps->data, sizeof(float), ps->n) ||
             io_put(f, ps->buf, sizeof(float), ps->nbuf) ||
             io_put(f, wm ? wm : g->optim.m, sizeof(float), ps->n) ||
             io_put(f, wv ? wv : g->optim.v, sizeof(float), ps->n) || io_put(f, counters, sizeof *counters, 4) ||
             io_put(f, &g->lr, sizeof g->lr, 1);
    free(wm), free(wv);
    if (rc) return -1;
    return clipper_save(&g->clip, f);
}

/* The state, in order; the model's own state last. */
static int write_payload(const Trainer *tr, FILE *f, int gather) {
    uint32_t ngroups = (uint32_t)tr->ngroups;
    int64_t step = tr->step;
    int64_t skipped = tr->scaler.skipped; /* the loss scaler: scale, growth tracker, skips */
    if (io_put(f, &step, sizeof step, 1) || io_put(f, &tr->rng, sizeof tr->rng, 1) ||
        io_put(f, &tr->rec.avg, sizeof tr->rec.avg, 1) || io_put(f, &tr->rec.seen, sizeof tr->rec.seen, 1) ||
        io_put(f, &tr->scaler.scale, sizeof tr->scaler.scale, 1) ||
        io_put(f, &tr->scaler.growth_tracker, sizeof tr->scaler.growth_tracker, 1) ||
        io_put(f, &skipped, sizeof skipped, 1) || io_put(f, &ngroups, sizeof ngroups, 1))
        return -1;
    for (int i = 0; i < tr->ngroups; i++)
        if (write_group(&tr->groups[i], f, gather)) return -1;
    if (tr->def->save_state && tr->def->save_state(tr->model, f)) return -1;
    return ferror(f) ? -1 : 0;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int to_memory(const Trainer *tr, char **buf, size_t *len, int gather);

int ckpt_to_memory(const Trainer *tr, char **buf, size_t *len) { return to_memory(tr, buf, len, 1); }

static int to_memory(const Trainer *tr, char **buf, size_t *len, int gather) {
    *buf = NULL;
    *len = 0;
    FILE *f = open_memstream(buf, len);
    if (!f) return -1;
    static const char zeros[CKPT_HEADER];
    int rc = io_put(f, zeros, 1, CKPT_HEADER) || write_payload(tr, f, gather) ? -1 : 0;
    if (fclose(f) != 0) rc = -1;
    if (rc != 0 || *len < CKPT_HEADER) {
        free(*buf);
        *buf = NULL, *len = 0;
        return -1;
    }
    unsigned char *h = (unsigned char *)*buf;
    uint64_t n = *len - CKPT_HEADER;
    memcpy(h, CKPT_MAGIC, 4);
    put_u32(h + 4, CKPT_VERSION);
    put_u32(h + 8, (uint32_t)n), put_u32(h + 12, (uint32_t)(n >> 32));
    put_u32(h + 16, (uint32_t)crc32_z(0L, h + CKPT_HEADER, (z_size_t)n));
    return 0;
}

int ckpt_write(const Trainer *tr, FILE *f) {
    char *buf;
    size_t len;
    if (ckpt_to_memory(tr, &buf, &len) != 0) return -1;
    int rc = io_put(f, buf, 1, len);
    free(buf);
    return rc || ferror(f) ? -1 : 0;
}

static int read_group(UpdateGroup *g, FILE *f, char *err, size_t errlen) {
    ParamSet *ps = g->ps;
    uint64_t sizes[2];
    int64_t counters[4];
    if (io_get(f, sizes, sizeof *sizes, 2)) goto truncated;
    if (sizes[0] != ps->n || sizes[1] != ps->nbuf) {
        snprintf(err, errlen, "checkpoint holds %llu parameters and %llu buffer values for group "
                 "%s, the model has %zu and %zu (different model settings?)",
                 (unsigned long long)sizes[0], (unsigned long long)sizes[1], ps->name, ps->n, ps->nbuf);
        return -1;
    }
    int sharded = g->optim.n != ps->n; /* read the whole state, keep this rank's part */
    float *wm = sharded ? xmalloc((ps->n ? ps->n : 1) * sizeof *wm) : g->optim.m;
    float *wv = sharded ? xmalloc((ps->n ? ps->n : 1) * sizeof *wv) : g->optim.v;
    int bad = io_get(f, ps->data, sizeof(float), ps->n) || io_get(f, ps->buf, sizeof(float), ps->nbuf) ||
              io_get(f, wm, sizeof(float), ps->n) || io_get(f, wv, sizeof(float), ps->n) ||
              io_get(f, counters, sizeof *counters, 4) || io_get(f, &g->lr, sizeof g->lr, 1) ||
              clipper_load(&g->clip, f);
    if (sharded) {
        if (!bad) {
            memcpy(g->optim.m, wm + g->optim.lo, g->optim.n * sizeof *wm);
            memcpy(g->optim.v, wv + g->optim.lo, g->optim.n * sizeof *wv);
        }
        free(wm), free(wv);
    }
    if (bad) goto truncated;
    g->optim.t = counters[0], g->updates = counters[1], g->clipped = counters[2];
    g->skipped = counters[3];
    param_zero_grad(ps);
    return 0;
truncated:
    snprintf(err, errlen, "checkpoint's group %s does not match this model (its clip method or "
             "sizes differ)", ps->name);
    return -1;
}

/* Read a payload whose checksum already matched. The trainer-level fields go
 * to locals first; groups and the model's state are read in place (a failure
 * there is undone by the caller). */
static int read_payload(Trainer *tr, const char *p, size_t n, char *err, size_t errlen) {
    FILE *f = fmemopen((void *)p, n, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read checkpoint from memory: %s", strerror(errno));
        return -1;
    }
    uint32_t ngroups;
    int64_t step;
    Rng rng;
    double avg;
    long seen;
    float scale;
    int32_t tracker;
    int64_t skipped;
    int rc = -1;
    if (io_get(f, &step, sizeof step, 1) || io_get(f, &rng, sizeof rng, 1) ||
        io_get(f, &avg, sizeof avg, 1) || io_get(f, &seen, sizeof seen, 1) ||
        io_get(f, &scale, sizeof scale, 1) || io_get(f, &tracker, sizeof tracker, 1) ||
        io_get(f, &skipped, sizeof skipped, 1) || io_get(f, &ngroups, sizeof ngroups, 1)) {
        snprintf(err, errlen, "checkpoint payload is too short");
        goto done;
    }
    if ((int)ngroups != tr->ngroups || step < 0) {
        snprintf(err, errlen, "checkpoint has %u parameter groups at step %lld, the model has %d",
                 ngroups, (long long)step, tr->ngroups);
        goto done;
    }
    for (int i = 0; i < tr->ngroups; i++)
        if (read_group(&tr->groups[i], f, err, errlen)) goto done;
    if (tr->def->load_state && tr->def->load_state(tr->model, f)) {
        snprintf(err, errlen, "checkpoint's model state does not load");
        goto done;
    }
    long at = ftell(f);
    if (at < 0 || (size_t)at != n) {
        snprintf(err, errlen, "checkpoint payload has %ld bytes this model does not read",
                 at < 0 ? -1L : (long)(n - (size_t)at));
        goto done;
    }
    tr->step = step, tr->rng = rng, tr->rec.avg = avg, tr->rec.seen = seen;
    tr->scaler.scale = scale, tr->scaler.growth_tracker = tracker, tr->scaler.skipped = skipped;
    rc = 0;
done:
    fclose(f);
    return rc;
}

int ckpt_check(const char *buf, size_t len, char *err, size_t errlen) {
    const unsigned char *h = (const unsigned char *)buf;
    if (len < 4 || memcmp(buf, CKPT_MAGIC, 4) != 0) {
        snprintf(err, errlen, "not a cliplab checkpoint (it does not start with " CKPT_MAGIC ")");
        return -1;
    }
    if (len < CKPT_HEADER) {
        snprintf(err, errlen, "checkpoint is truncated (%zu bytes, the header alone is %d)", len,
                 CKPT_HEADER);
        return -1;
    }
    uint32_t version = (uint32_t)get_le(h + 4, 4);
    if (version != CKPT_VERSION) {
        snprintf(err, errlen, "checkpoint format version %u, this build reads version %u", version,
                 CKPT_VERSION);
        return -1;
    }
    uint64_t n = get_le(h + 8, 8), have = len - CKPT_HEADER;
    if (n != have) {
        snprintf(err, errlen, "checkpoint is %s: its header announces %llu payload bytes, the file "
                 "has %llu", n > have ? "truncated" : "followed by bytes that are not part of it",
                 (unsigned long long)n, (unsigned long long)have);
        return -1;
    }
    uint32_t want = (uint32_t)get_le(h + 16, 4);
    uint32_t got = (uint32_t)crc32_z(0L, h + CKPT_HEADER, (z_size_t)n);
    if (want != got) {
        snprintf(err, errlen, "checkpoint is corrupt: CRC-32 of the payload is %08x, the header "
                 "says %08x", got, want);
        return -1;
    }
    return 0;
}

int ckpt_from_memory(Trainer *tr, const char *buf, size_t len, char *err, size_t errlen) {
    if (ckpt_check(buf, len, err, errlen) != 0) return -1;
    /* the state now, to put back if the payload does not fit this trainer */
    char *keep;
    size_t keep_len;
    if (to_memory(tr, &keep, &keep_len, 0) != 0) {
        snprintf(err, errlen, "cannot keep a copy of the current state: %s", strerror(errno));
        return -1;
    }
    int rc = read_payload(tr, buf + CKPT_HEADER, len - CKPT_HEADER, err, errlen);
    if (rc != 0) {
        char again[256];
        int back = read_payload(tr, keep + CKPT_HEADER, keep_len - CKPT_HEADER, again, sizeof again);
        ASSERT(back == 0, "restoring the trainer's own state failed: %s", again);
    }
    free(keep);
    return rc;
}

/* The whole stream into memory (a checkpoint is checked before it is read). */
int ckpt_read(Trainer *tr, FILE *f, char *err, size_t errlen) {
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                snprintf(err, errlen, "out of memory reading a checkpoint");
                return -1;
            }
            buf = b;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    int rc;
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read checkpoint: %s", strerror(errno));
        rc = -1;
    } else {
        rc = ckpt_from_memory(tr, buf, len, err, errlen);
    }
    free(buf);
    return rc;
}

int ckpt_save_file(const Trainer *tr, const char *path, char *err, size_t errlen) {
    char tmp[CFG_STR_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    int rc = ckpt_write(tr, f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) rc = -1;
    if (fclose(f) != 0) rc = -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc != 0) {
        snprintf(err, errlen, "cannot write checkpoint %s: %s", path, strerror(errno));
        remove(tmp);
    }
    return rc;
}
