/* budget.h: the memory a run will hold, estimated before it trains, and the
 * refusal of a run over [run] memory_mb (0: 80% of physical memory). The
 * estimate counts what grows with settings: parameters, gradients and the
 * two optimizer moments; the per-step arena and tape; the recovery ring
 * (snapshots kept x snapshot size) and the copies a checkpoint write makes;
 * the metrics rows kept for the plots. */
#ifndef CLIPLAB_BUDGET_H
#define CLIPLAB_BUDGET_H

#include <stddef.h>

struct Trainer;

typedef struct MemEstimate {
    double params;        /* bytes: values, gradients, optimizer moments, buffers */
    double arena, tape;   /* [train] arena_mb, max_nodes */
    double snapshot;      /* bytes of one checkpoint */
    long ring_slots;      /* snapshots the recovery ring holds at most */
    double ring;          /* ring_slots x snapshot */
    double checkpoints;   /* copies made while a checkpoint is written or read */
    double logs;          /* metrics rows kept in memory */
    double total;
} MemEstimate;

void budget_estimate(const struct Trainer *tr, MemEstimate *e);
/* 0 if the estimate fits [run] memory_mb; -1 with a message naming the keys
 * behind the largest parts otherwise. */
int budget_check(const struct Trainer *tr, char *err, size_t errlen);

#endif
