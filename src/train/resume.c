/* resume.c: resume.bin, written during a run and read by --resume (resume.h).
 *
 * Layout (little-endian), framed like a checkpoint:
 *   "CLRS", u32 version, u64 payload bytes, u32 crc32(payload), payload:
 *   u32 n + n bytes   fingerprint ("section.key=value\n" lines)
 *   f64               seconds trained so far
 *   u64, u64          rows in metrics.csv, rows in grad_norms.csv
 *   u64 n + n bytes   the trainer checkpoint (checkpoint.h: step, RNG, groups, model state)
 *   u32 n + n events  rollbacks so far (i64 spike, f64 loss, f64 avg, i64 restored, i64 skipped)
 *   u32 n + n snaps   the recovery ring (u32 slot, i64 step, u64 bytes, a trainer
 *                     checkpoint): each in its own slot, since which slot a new
 *                     checkpoint replaces depends on where the others are */
#include "resume.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "checkpoint.h"
#include "common.h"
#include "train.h"

#define RESUME_MAGIC "CLRS"
#define RESUME_VERSION 1u
#define RESUME_HEADER 20

/* ------------------------------------------------------------ fingerprint */

/* Keys that cannot change the numbers a run computes. */
int resume_key_outside(const char *section, const char *key) {
    static const char *const keys[] = {
        "run.name",        "run.out_dir",   "run.plots",         "run.resume_every",
        "run.memory_mb",   "train.quiet",   "train.arena_mb",    "train.max_nodes",
        "recovery.save_file", "train.grad_hist_step", "dist.report_every",
        "train.threads", /* any count gives the same bits (tests/test_threads.c) */
        NULL};
    char full[2 * CFG_NAME_MAX + 2];
    snprintf(full, sizeof full, "%s.%s", section, key);
    for (int i = 0; keys[i]; i++)
        if (!strcmp(full, keys[i])) return 1;
    return 0;
}

char *resume_fingerprint(const Config *cfg) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f, "open_memstream");
    for (int i = 0; i < cfg->nsections; i++) {
        const CfgSection *s = cfg->sections[i];
        if (cfg->hidden[i]) continue;
        for (int j = 0; j < s->nkeys; j++) {
            if (resume_key_outside(s->name, s->keys[j].name)) continue;
            char v[CFG_STR_MAX + 64];
            cfg_format_value(&s->keys[j], cfg->structs[i], v, sizeof v);
            fprintf(f, "%s.%s=%s\n", s->name, s->keys[j].name, v);
        }
    }
    fclose(f);
    return text;
}

/* The value of key (the text before '=') in a fingerprint, or NULL. */
static const char *find_line(const char *fp, const char *key, size_t klen, size_t *vlen) {
    for (const char *p = fp; *p;) {
        const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
        if ((size_t)(end - p) > klen && !strncmp(p, key, klen) && p[klen] == '=') {
            *vlen = (size_t)(end - p - (long)klen - 1);
            return p + klen + 1;
        }
        p = nl ? nl + 1 : end;
    }
    return NULL;
}

/* Append "key: A in the checkpoint, B now" for each key of a whose value in b
 * differs (or is missing). Returns how many. */
static int diff_lines(const char *a, const char *b, int a_is_ckpt, char *out, size_t len, int skip_same_keys_of_b) {
    int n = 0;
    for (const char *p = a; *p;) {
        const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq) {
            size_t klen = (size_t)(eq - p), vlen = 0;
            const char *v = find_line(b, p, klen, &vlen);
            size_t alen = (size_t)(end - eq - 1);
            int differs = !v || vlen != alen || strncmp(v, eq + 1, alen) != 0;
            if (differs && !(skip_same_keys_of_b && v)) {
                size_t used = strlen(out);
                const char *ck = a_is_ckpt ? eq + 1 : v, *nw = a_is_ckpt ? v : eq + 1;
                int ckl = a_is_ckpt ? (int)alen : (int)vlen, nwl = a_is_ckpt ? (int)vlen : (int)alen;
                if (used + 1 < len)
                    snprintf(out + used, len - used, "%s%.*s = %.*s in the checkpoint, %.*s now", used ? "; " : "",
                             (int)klen, p, ck ? ckl : 5, ck ? ck : "unset", nw ? nwl : 5, nw ? nw : "unset");
                n++;
            }
        }
        p = nl ? nl + 1 : end;
    }
    return n;
}

/* ------------------------------------------------------------ bytes */

typedef struct Cursor {
    const unsigned char *p, *end;
    int bad;
} Cursor;

static uint64_t get(Cursor *c, int n) {
    if (c->bad || c->end - c->p < n) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | c->p[i];
    c->p += n;
    return v;
}

static double get_f64(Cursor *c) {
    uint64_t u = get(c, 8);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static const unsigned char *get_bytes(Cursor *c, uint64_t n) {
    if (c->bad || (uint64_t)(c->end - c->p) < n) {
        c->bad = 1;
        return NULL;
    }
    const unsigned char *q = c->p;
    c->p += n;
    return q;
}

static void put(FILE *f, uint64_t v, int n) {
    for (int i = 0; i < n; i++) fputc((int)(v >> (8 * i)) & 0xff, f);
}

static void put_f64(FILE *f, double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    put(f, u, 8);
}

/* ------------------------------------------------------------ write */

int resume_save(const Trainer *tr, const char *fingerprint, char *err, size_t errlen) {
    MetricsLog *log = (MetricsLog *)&tr->log, *pn = (MetricsLog *)&tr->pnorm_log;
    if (metrics_flush(log) != 0 || metrics_flush(pn) != 0) {
        snprintf(err, errlen, "cannot flush the metrics logs in %s: %s", tr->run.out_dir, strerror(errno));
        return -1;
    }
    char *ck;
    size_t cklen;
    if (ckpt_to_memory(tr, &ck, &cklen) != 0) {
        snprintf(err, errlen, "cannot serialise the trainer at step %ld", tr->step);
        return -1;
    }
    char *payload = NULL;
    size_t plen = 0;
    FILE *f = open_memstream(&payload, &plen);
    ASSERT(f, "open_memstream");
    size_t flen = strlen(fingerprint);
    put(f, flen, 4);
    fwrite(fingerprint, 1, flen, f);
    put_f64(f, now_seconds() - tr->t_start);
    put(f, log->nrows, 8);
    put(f, pn->nrows, 8);
    put(f, cklen, 8);
    fwrite(ck, 1, cklen, f);
    free(ck);
    const Recovery *r = &tr->rec;
    put(f, (uint64_t)r->nevents, 4);
    for (int i = 0; i < r->nevents; i++) {
        const RecoveryEvent *e = &r->events[i];
        put(f, (uint64_t)e->spike_step, 8), put_f64(f, e->loss), put_f64(f, e->running_avg);
        put(f, (uint64_t)e->restored_step, 8), put(f, (uint64_t)e->skipped, 8);
    }
    int nsnap = 0;
    for (int i = 0; i < r->nring; i++) nsnap += r->ring[i].step >= 0;
    put(f, (uint64_t)nsnap, 4);
    for (int i = 0; i < r->nring; i++) {
        const RecoverySnapshot *s = &r->ring[i];
        if (s->step < 0) continue;
        put(f, (uint64_t)i, 4), put(f, (uint64_t)s->step, 8), put(f, s->len, 8);
        fwrite(s->buf, 1, s->len, f);
    }
    int bad = ferror(f);
    fclose(f);
    char path[CFG_STR_MAX + 32], tmp[CFG_STR_MAX + 40];
    snprintf(path, sizeof path, "%s/" RESUME_FILE, tr->run.out_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unsigned char head[RESUME_HEADER];
    memcpy(head, RESUME_MAGIC, 4);
    uint32_t crc = (uint32_t)crc32_z(0L, (const unsigned char *)payload, plen);
    for (int i = 0; i < 4; i++) head[4 + i] = (unsigned char)(RESUME_VERSION >> (8 * i));
    for (int i = 0; i < 8; i++) head[8 + i] = (unsigned char)((uint64_t)plen >> (8 * i));
    for (int i = 0; i < 4; i++) head[16 + i] = (unsigned char)(crc >> (8 * i));
    FILE *out = bad ? NULL : fopen(tmp, "wb");
    int rc = out && fwrite(head, 1, sizeof head, out) == sizeof head &&
                     fwrite(payload, 1, plen, out) == plen && fflush(out) == 0 && fsync(fileno(out)) == 0
                 ? 0
                 : -1;
    if (out && fclose(out) != 0) rc = -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
    }
    free(payload);
    return rc;
}

int resume_exists(const char *out_dir) {
    char path[CFG_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/" RESUME_FILE, out_dir);
    return access(path, F_OK) == 0;
}

/* ------------------------------------------------------------ read */

static int read_all(const char *path, unsigned char **buf, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0, got;
    unsigned char *b = xmalloc(cap);
    while ((got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            b = realloc(b, cap *= 2);
            if (!b) die("out of memory reading %s", path);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    *buf = b, *len = n;
    return 0;
}

int resume_load(Trainer *tr, const char *fingerprint, double *elapsed, char *err, size_t errlen) {
    char path[CFG_STR_MAX + 32];
    snprintf(path, sizeof path, "%s/" RESUME_FILE, tr->run.out_dir);
    unsigned char *buf;
    size_t len;
    if (read_all(path, &buf, &len, err, errlen) != 0) return -1;
    int rc = -1;
    Cursor c = {buf, buf + len, 0};
    const unsigned char *magic = get_bytes(&c, 4);
    uint32_t version = (uint32_t)get(&c, 4);
    uint64_t plen = get(&c, 8);
    uint32_t crc = (uint32_t)get(&c, 4);
    RecoveryEvent *events = NULL;
    if (c.bad || memcmp(magic, RESUME_MAGIC, 4) != 0) {
        snprintf(err, errlen, "%s is not a cliplab resume file", path);
        goto done;
    }
    if (version != RESUME_VERSION) {
        snprintf(err, errlen, "%s has format version %u, this build reads %u", path, version, RESUME_VERSION);
        goto done;
    }
    if (plen != len - RESUME_HEADER) {
        snprintf(err, errlen, "%s is %s (its header announces %llu bytes, it has %zu)", path,
                 plen > len - RESUME_HEADER ? "truncated" : "followed by bytes that are not part of it",
                 (unsigned long long)plen, len - RESUME_HEADER);
        goto done;
    }
    if (crc != (uint32_t)crc32_z(0L, c.p, (z_size_t)plen)) {
        snprintf(err, errlen, "%s is corrupt (its CRC-32 does not match)", path);
        goto done;
    }
    uint64_t flen = get(&c, 4);
    const char *fp = (const char *)get_bytes(&c, flen);
    char *saved = NULL;
    if (!c.bad) {
        saved = xmalloc(flen + 1);
        memcpy(saved, fp, flen);
        saved[flen] = '\0';
    }
    double secs = get_f64(&c);
    uint64_t nrows = get(&c, 8), npn = get(&c, 8), cklen = get(&c, 8);
    const char *ck = (const char *)get_bytes(&c, cklen);
    uint64_t nev = get(&c, 4);
    if (!c.bad && nev <= (uint64_t)(c.end - c.p) / 40) {
        events = xcalloc(nev ? nev : 1, sizeof *events);
        for (uint64_t i = 0; i < nev; i++) {
            events[i].spike_step = (long)get(&c, 8), events[i].loss = get_f64(&c);
            events[i].running_avg = get_f64(&c), events[i].restored_step = (long)get(&c, 8);
            events[i].skipped = (long)get(&c, 8);
        }
    } else {
        c.bad = 1;
    }
    const unsigned char *snap_at = c.p;
    uint64_t nsnap = get(&c, 4);
    for (uint64_t i = 0; i < nsnap && !c.bad; i++) {
        if (get(&c, 4) >= (uint64_t)tr->rec.nring) c.bad = 1;
        get(&c, 8);
        get_bytes(&c, get(&c, 8));
    }
    if (c.bad || c.p != c.end || nsnap > (uint64_t)tr->rec.nring) {
        snprintf(err, errlen, "%s does not hold what this build writes (its checksum matches)", path);
        free(saved);
        goto done;
    }
    char diff[1024] = "";
    int nd = diff_lines(saved, fingerprint, 1, diff, sizeof diff, 0);
    nd += diff_lines(fingerprint, saved, 0, diff, sizeof diff, 1);
    free(saved);
    if (nd) {
        snprintf(err, errlen, "%s was written with other settings, so the run cannot continue as "
                 "the same run: %s (set them back, or start over without --resume)", path, diff);
        goto done;
    }
    char cerr[512];
    if (ckpt_from_memory(tr, ck, cklen, cerr, sizeof cerr) != 0) {
        snprintf(err, errlen, "%s: %s", path, cerr);
        goto done;
    }
    /* from here the file is this run's: restore the rest */
    free(tr->rec.events);
    tr->rec.events = events, tr->rec.nevents = tr->rec.cap_events = (int)nev;
    events = NULL;
    Cursor s = {snap_at, c.end, 0};
    nsnap = get(&s, 4);
    for (uint64_t i = 0; i < nsnap; i++) {
        RecoverySnapshot *slot = &tr->rec.ring[get(&s, 4)];
        slot->step = (long)get(&s, 8);
        slot->len = get(&s, 8);
        free(slot->buf);
        slot->buf = xmalloc(slot->len ? slot->len : 1);
        memcpy(slot->buf, get_bytes(&s, slot->len), slot->len);
    }
    if (metrics_resume_csv(&tr->log, tr->run.out_dir, "metrics.csv", nrows, cerr, sizeof cerr) != 0 ||
        (tr->pnorm_log.ncols &&
         metrics_resume_csv(&tr->pnorm_log, tr->run.out_dir, "grad_norms.csv", npn, cerr, sizeof cerr) != 0)) {
        snprintf(err, errlen, "cannot resume the logs: %s", cerr);
        goto done;
    }
    *elapsed = secs;
    rc = 0;
done:
    free(events);
    free(buf);
    return rc;
}
