/* dist.h: data-parallel training over MPI (one run on N ranks, as PyTorch
 * DDP), the [dist] section, and the few collectives the update pipeline and
 * the trainer need. Without Open MPI (no -DCLIPLAB_MPI), or when ./train was
 * not started by mpirun, there is one rank and every call is the identity.
 *
 * The reduction is deterministic: rank c sums chunk c of the flat gradient
 * over the ranks in rank order 0, 1, ..., N-1 (one float add per rank, the
 * same adds gradient accumulation makes over micro-batches), then the chunks
 * are gathered. The data moved is a ring all-reduce's, 2 (N-1)/N x bytes per
 * rank; the order never depends on timing, so `mpirun -np N ./train C` and
 * `./train C train.grad_accum=N` compute the same bytes.
 *
 * Who decides: main.c calls dist_init() for `./train CONFIG` started by
 * mpirun (OMPI_COMM_WORLD_SIZE in the environment); `./train --sweep` keeps
 * its own use of MPI (runs spread over ranks, sweep.c) and marks its worker
 * processes CLIPLAB_SWEEP_WORKER=1 so they stay single-process runs. */
#ifndef CLIPLAB_DIST_H
#define CLIPLAB_DIST_H

#include <stddef.h>

#include "config.h"

typedef enum { DIST_CLIP_GLOBAL, DIST_CLIP_LOCAL } DistClip;
typedef enum { DIST_NORM_GLOBAL, DIST_NORM_LOCAL } DistNorm;

typedef struct DistConfig {
    int clip;   /* DistClip: global = clip the averaged gradient once (DDP); local = each rank
                   clips its own gradient before the all-reduce (the Horovod mistake) */
    int shard;  /* ZeRO-2 / FSDP: reduce-scatter, the norm across shards, step a shard, all-gather */
    int norm;   /* DistNorm (with shard) */
    int report_every; /* print each rank's pre-clip norm, the reduced and update norms every this many steps */
} DistConfig;

extern const CfgSection dist_config_section; /* [dist] */

/* Start MPI when this process is one of mpirun's ranks (and not a sweep
 * worker); returns the number of ranks (1 without MPI). */
int dist_init(void);
/* End MPI (a no-op without it). rc: this rank's exit status; returns the worst
 * status over the ranks, so every rank exits the same way. */
int dist_finalize(int rc);
/* Stop every rank now (a rank that meets an error the others cannot see). */
_Noreturn void dist_abort(int rc);
/* Ranks of this run on this machine (Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE), 1
 * without mpirun: [train] threads = 0 shares the cores among them. */
int dist_local_size(void);
int dist_rank(void);
int dist_size(void);

/* Sum x[0..n) over the ranks in rank order, result on every rank. */
void dist_allreduce_ordered(float *x, size_t n);
/* Rank r's chunk of x[0..n): [n r / N, n (r+1) / N). */
void dist_chunk(size_t n, int rank, size_t *lo, size_t *hi);
/* The first half of the all-reduce: this rank's chunk of x becomes the
 * rank-ordered sum over the ranks (the rest of x is left as it was). */
void dist_reduce_scatter_ordered(float *x, size_t n);
/* The second half: every rank's chunk of x to every rank. */
void dist_allgather_chunks(float *x, size_t n);
/* v summed over the ranks in rank order (on every rank). */
double dist_sum_ordered(double v);
/* all[i*k .. i*k+k) = rank i's mine[0..k), on every rank. */
void dist_allgather_doubles(double *all, const double *mine, int k);
/* x[0..n) from rank root to every rank. */
void dist_bcast_doubles(double *x, int n, int root);
/* Point to point, x[0..n) to rank `to` / from rank `from` (small messages:
 * the sharded norm's running sums passed along a cut tensor). */
void dist_send_doubles(const double *x, int n, int to);
void dist_recv_doubles(double *x, int n, int from);
/* 1 on every rank if flag is non-zero on any rank. */
int dist_any(int flag);
/* Seconds spent inside the collectives since dist_init (bench: the all-reduce's share). */
double dist_seconds(void);
/* 0 if text is the same on every rank; else -1 and, on every rank, err says
 * which rank differs from rank 0 and its first differing line ("what" names
 * the text: "settings", "binary"). */
int dist_agree(const char *text, const char *what, char *err, size_t errlen);

#endif
