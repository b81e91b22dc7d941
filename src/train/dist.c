/* dist.c: the [dist] section and the collectives of data-parallel training
 * (dist.h): the rank-ordered all-reduce of a flat gradient, small gathers and
 * broadcasts, and the start-up agreement check. Open MPI does the transport;
 * the summation order is ours, so it never depends on timing. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#ifdef CLIPLAB_MPI
#include <mpi.h>
#endif

/* ---------------------------------------------------------------- [dist] */

static const char *const clip_choices[] = {"global", "local", NULL};
static const char *const norm_choices[] = {"global", "local", NULL};

#define DI_KEY(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(DistConfig, f), d, lo, hi, ch, h}
static const CfgKey dist_keys[] = {
    DI_KEY("clip", CFG_ENUM, clip, "global", 0, 0, clip_choices,
           "under mpirun: global = all-reduce the gradients, then clip the averaged gradient "
           "once (PyTorch DDP); local = each rank clips its own gradient BEFORE the all-reduce "
           "(the Horovod mistake, for the demo)"),
    DI_KEY("shard", CFG_BOOL, shard, "false", 0, 1, NULL,
           "under mpirun: ZeRO-2 / FSDP: the gradients are reduce-scattered, each rank holds "
           "1/N of them and the optimizer state of its part, the norm is reduced across the "
           "shards, each rank steps its part and the parameters are all-gathered"),
    DI_KEY("norm", CFG_ENUM, norm, "global", 0, 0, norm_choices,
           "with shard: global = the clip's norm is reduced across the shards (FSDP's "
           "clip_grad_norm_); local = each rank clips its shard by its shard's own norm (plain "
           "clip_grad_norm_ on a shard: the FSDP pitfall, for the demo)"),
    DI_KEY("report_every", CFG_INT, report_every, "0", 0, 100000000, NULL,
           "under mpirun: every this many steps (and at the first), rank 0 prints each rank's "
           "pre-clip norm, the reduced norm, the norm of the update and the loss (0 = never)"),
};
const CfgSection dist_config_section = {"dist", dist_keys, (int)(sizeof dist_keys / sizeof *dist_keys),
                                        "data-parallel training under mpirun (docs/ddp.md)", NULL};

/* ---------------------------------------------------------------- state */

static int g_rank = 0, g_size = 1, g_mpi = 0;
static double g_seconds = 0.0;

static double clock_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dist_local_size(void) {
    const char *e = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int n = e && g_size > 1 ? atoi(e) : 1;
    return n >= 1 ? n : 1;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
double dist_seconds(void) { return g_seconds; }

int dist_init(void) {
#ifdef CLIPLAB_MPI
    int launched = getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL ||
                   getenv("PMI_RANK") != NULL;
    if (!launched || getenv("CLIPLAB_SWEEP_WORKER")) return 1;
    MPI_Init(NULL, NULL);
    /* a failed collective (a rank died) ends the job rather than hanging it */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_mpi = 1;
#endif
    return g_size;
}

int dist_finalize(int rc) {
#ifdef CLIPLAB_MPI
    if (!g_mpi) return rc;
    int worst = rc;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    g_mpi = 0;
    return worst;
#else
    return rc;
#endif
}

_Noreturn void dist_abort(int rc) {
    fflush(stdout);
    fflush(stderr);
#ifdef CLIPLAB_MPI
    if (g_mpi) MPI_Abort(MPI_COMM_WORLD, rc);
#endif
    exit(rc);
}

/* ---------------------------------------------------------------- collectives */

void dist_chunk(size_t n, int rank, size_t *lo, size_t *hi) {
    *lo = n * (size_t)rank / (size_t)g_size;
    *hi = n * (size_t)(rank + 1) / (size_t)g_size;
}

#ifdef CLIPLAB_MPI
/* counts and displacements of the N chunks of x[0..n) */
static void chunk_layout(size_t n, int *count, int *disp) {
    ASSERT(n <= 0x7fffffffu, "gradient of %zu floats is too large for one MPI call", n);
    for (int c = 0; c < g_size; c++) {
        size_t lo, hi;
        dist_chunk(n, c, &lo, &hi);
        count[c] = (int)(hi - lo), disp[c] = (int)lo;
    }
}
#endif

void dist_reduce_scatter_ordered(float *x, size_t n) {
#ifdef CLIPLAB_MPI
    if (g_size == 1) return;
    double t0 = clock_now();
    int N = g_size, r = g_rank;
    int *scount = xcalloc((size_t)N, sizeof *scount), *sdisp = xcalloc((size_t)N, sizeof *sdisp);
    int *rcount = xcalloc((size_t)N, sizeof *rcount), *rdisp = xcalloc((size_t)N, sizeof *rdisp);
    chunk_layout(n, scount, sdisp);
    int mine = scount[r];
    for (int s = 0; s < N; s++) rcount[s] = mine, rdisp[s] = s * mine;
    float *in = xmalloc(((size_t)mine * (size_t)N + 1) * sizeof *in);
    /* every rank's piece of chunk c goes to rank c */
    MPI_Alltoallv(x, scount, sdisp, MPI_FLOAT, in, rcount, rdisp, MPI_FLOAT, MPI_COMM_WORLD);
    float *out = x + sdisp[r];
    for (int j = 0; j < mine; j++) {
        float s = in[j];                                        /* rank 0's */
        for (int k = 1; k < N; k++) s += in[(size_t)k * (size_t)mine + (size_t)j]; /* then 1, 2, ... */
        out[j] = s;
    }
    free(in);
    free(scount), free(sdisp), free(rcount), free(rdisp);
    g_seconds += clock_now() - t0;
#else
    (void)x, (void)n;
#endif
}

void dist_allgather_chunks(float *x, size_t n) {
#ifdef CLIPLAB_MPI
    if (g_size == 1) return;
    double t0 = clock_now();
    int *count = xcalloc((size_t)g_size, sizeof *count), *disp = xcalloc((size_t)g_size, sizeof *disp);
    chunk_layout(n, count, disp);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, x, count, disp, MPI_FLOAT, MPI_COMM_WORLD);
    free(count), free(disp);
    g_seconds += clock_now() - t0;
#else
    (void)x, (void)n;
#endif
}

void dist_allreduce_ordered(float *x, size_t n) {
    dist_reduce_scatter_ordered(x, n);
    dist_allgather_chunks(x, n);
}

double dist_sum_ordered(double v) {
    if (g_size == 1) return v;
    double *all = xmalloc((size_t)g_size * sizeof *all), s = 0.0;
    dist_allgather_doubles(all, &v, 1);
    for (int r = 0; r < g_size; r++) s += all[r];
    free(all);
    return s;
}

void dist_allgather_doubles(double *all, const double *mine, int k) {
#ifdef CLIPLAB_MPI
    if (g_size > 1) {
        double t0 = clock_now();
        MPI_Allgather(mine, k, MPI_DOUBLE, all, k, MPI_DOUBLE, MPI_COMM_WORLD);
        g_seconds += clock_now() - t0;
        return;
    }
#endif
    memmove(all, mine, (size_t)k * sizeof *all);
}

void dist_send_doubles(const double *x, int n, int to) {
#ifdef CLIPLAB_MPI
    if (g_size > 1) {
        double t0 = clock_now();
        MPI_Send(x, n, MPI_DOUBLE, to, 23, MPI_COMM_WORLD);
        g_seconds += clock_now() - t0;
    }
#else
    (void)x, (void)n, (void)to;
#endif
}

void dist_recv_doubles(double *x, int n, int from) {
#ifdef CLIPLAB_MPI
    if (g_size > 1) {
        double t0 = clock_now();
        MPI_Recv(x, n, MPI_DOUBLE, from, 23, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        g_seconds += clock_now() - t0;
    }
#else
    (void)x, (void)n, (void)from;
#endif
}

void dist_bcast_doubles(double *x, int n, int root) {
#ifdef CLIPLAB_MPI
    if (g_size > 1) MPI_Bcast(x, n, MPI_DOUBLE, root, MPI_COMM_WORLD);
#else
    (void)x, (void)n, (void)root;
#endif
}

int dist_any(int flag) {
#ifdef CLIPLAB_MPI
    if (g_size > 1) {
        int in = flag != 0, out = 0;
        MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        return out;
    }
#endif
    return flag != 0;
}

/* ---------------------------------------------------------------- agreement */

/* The first line where a and b differ, as "'A' on rank 0, 'B' on rank r". */
static void first_difference(const char *a, const char *b, int r, char *out, size_t len) {
    int line = 1;
    while (*a || *b) {
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (la != lb || strncmp(a, b, la) != 0) {
            snprintf(out, len, "line %d: '%.*s' on rank 0, '%.*s' on rank %d", line, (int)(la > 200 ? 200 : la),
                     a, (int)(lb > 200 ? 200 : lb), b, r);
            return;
        }
        a += la + (a[la] == '\n'), b += lb + (b[lb] == '\n');
        line++;
    }
    snprintf(out, len, "rank %d differs from rank 0", r);
}

int dist_agree(const char *text, const char *what, char *err, size_t errlen) {
#ifdef CLIPLAB_MPI
    if (g_size == 1) return 0;
    enum { MSG = 512 };
    long len = (long)strlen(text);
    MPI_Bcast(&len, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    char *ref = xmalloc((size_t)len + 1);
    if (g_rank == 0) memcpy(ref, text, (size_t)len);
    ref[len] = '\0';
    MPI_Bcast(ref, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD);
    char mine[MSG] = "";
    if (strcmp(ref, text) != 0) first_difference(ref, text, g_rank, mine, sizeof mine);
    char *all = xmalloc((size_t)MSG * (size_t)g_size);
    MPI_Allgather(mine, MSG, MPI_CHAR, all, MSG, MPI_CHAR, MPI_COMM_WORLD);
    int rc = 0;
    for (int r = 0; r < g_size && !rc; r++)
        if (all[(size_t)r * MSG]) {
            snprintf(err, errlen, "the ranks were started with different %s: %s", what, all + (size_t)r * MSG);
            rc = -1;
        }
    free(all);
    free(ref);
    return rc;
#else
    (void)text, (void)what, (void)err, (void)errlen;
    return 0;
#endif
}
