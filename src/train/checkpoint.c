/* checkpoint.c: serialise and restore the training state (see checkpoint.h). */
#include "checkpoint.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "train.h"

#define CKPT_MAGIC "CLCK"
#define CKPT_VERSION 1u

static int write_group(const UpdateGroup *g, FILE *f) {
    const ParamSet *ps = g->ps;
    uint64_t sizes[2] = {ps->n, ps->nbuf};
    int64_t counters[4] = {g->optim.t, g->updates, g->clipped, g->skipped};
    if (io_put(f, sizes, sizeof *sizes, 2) || io_put(f, ps->data, sizeof(float), ps->n) ||
        io_put(f, ps->buf, sizeof(float), ps->nbuf) || io_put(f, g->optim.m, sizeof(float), ps->n) ||
        io_put(f, g->optim.v, sizeof(float), ps->n) || io_put(f, counters, sizeof *counters, 4) ||
        io_put(f, &g->lr, sizeof g->lr, 1))
        return -1;
    return clipper_save(&g->clip, f);
}

int ckpt_write(const Trainer *tr, FILE *f) {
    uint32_t version = CKPT_VERSION, ngroups = (uint32_t)tr->ngroups;
    int64_t step = tr->step;
    if (io_put(f, CKPT_MAGIC, 1, 4) || io_put(f, &version, sizeof version, 1) ||
        io_put(f, &step, sizeof step, 1) || io_put(f, &tr->rng, sizeof tr->rng, 1) ||
        io_put(f, &tr->rec.avg, sizeof tr->rec.avg, 1) || io_put(f, &tr->rec.seen, sizeof tr->rec.seen, 1) ||
        io_put(f, &ngroups, sizeof ngroups, 1))
        return -1;
    for (int i = 0; i < tr->ngroups; i++)
        if (write_group(&tr->groups[i], f)) return -1;
    if (tr->def->save_state && tr->def->save_state(tr->model, f)) return -1;
    return ferror(f) ? -1 : 0;
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
    if (io_get(f, ps->data, sizeof(float), ps->n) || io_get(f, ps->buf, sizeof(float), ps->nbuf) ||
        io_get(f, g->optim.m, sizeof(float), ps->n) || io_get(f, g->optim.v, sizeof(float), ps->n) ||
        io_get(f, counters, sizeof *counters, 4) || io_get(f, &g->lr, sizeof g->lr, 1) ||
        clipper_load(&g->clip, f))
        goto truncated;
    g->optim.t = counters[0], g->updates = counters[1], g->clipped = counters[2];
    g->skipped = counters[3];
    param_zero_grad(ps);
    return 0;
truncated:
    snprintf(err, errlen, "checkpoint is truncated or corrupt (group %s)", ps->name);
    return -1;
}

int ckpt_read(Trainer *tr, FILE *f, char *err, size_t errlen) {
    char magic[4];
    uint32_t version, ngroups;
    int64_t step;
    if (io_get(f, magic, 1, 4) || memcmp(magic, CKPT_MAGIC, 4) != 0) {
        snprintf(err, errlen, "not a cliplab checkpoint (bad magic)");
        return -1;
    }
    if (io_get(f, &version, sizeof version, 1) || version != CKPT_VERSION) {
        snprintf(err, errlen, "checkpoint version %u, this build reads %u", version, CKPT_VERSION);
        return -1;
    }
    if (io_get(f, &step, sizeof step, 1) || io_get(f, &tr->rng, sizeof tr->rng, 1) ||
        io_get(f, &tr->rec.avg, sizeof tr->rec.avg, 1) || io_get(f, &tr->rec.seen, sizeof tr->rec.seen, 1) ||
        io_get(f, &ngroups, sizeof ngroups, 1)) {
        snprintf(err, errlen, "checkpoint is truncated");
        return -1;
    }
    if ((int)ngroups != tr->ngroups) {
        snprintf(err, errlen, "checkpoint has %u parameter groups, the model has %d", ngroups,
                 tr->ngroups);
        return -1;
    }
    for (int i = 0; i < tr->ngroups; i++)
        if (read_group(&tr->groups[i], f, err, errlen)) return -1;
    if (tr->def->load_state && tr->def->load_state(tr->model, f)) {
        snprintf(err, errlen, "checkpoint's model state does not load");
        return -1;
    }
    tr->step = step;
    return 0;
}

int ckpt_to_memory(const Trainer *tr, char **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *f = open_memstream(buf, len);
    if (!f) return -1;
    int rc = ckpt_write(tr, f);
    if (fclose(f) != 0) rc = -1;
    return rc;
}

int ckpt_from_memory(Trainer *tr, const char *buf, size_t len, char *err, size_t errlen) {
    FILE *f = fmemopen((void *)buf, len, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read checkpoint from memory: %s", strerror(errno));
        return -1;
    }
    int rc = ckpt_read(tr, f, err, errlen);
    fclose(f);
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
