/* sweep.c: ./train --sweep: check every run's config, then run the runs in
 * parallel worker processes (each `./train CONFIG overrides` into its own
 * folder, its terminal output in <run>.log.txt beside it), skip runs already complete, and
 * write the summary (sweep_summary.c).
 *
 * A worker is a fresh process (fork + exec of this binary), so a run that
 * crashes, diverges or errors cannot disturb the others or the sweep; its
 * exit status and metrics.csv decide its status. Each run's numbers depend
 * only on its own config and seed (OPENBLAS_NUM_THREADS=1 per worker), so
 * they are the same at any -j and any number of MPI ranks.
 *
 * Resuming: <run>.result.txt is written (temporary name, then rename) after a run
 * ended and was read; it records the run's exact arguments and a hash of the
 * base config. A run whose <run>.result.txt matches is skipped; any other run,
 * including one killed half-way, is run again from the start.
 *
 * MPI (built when Open MPI is found, -DCLIPLAB_MPI; used when started by
 * mpirun): run i goes to rank i mod size; every rank runs its share with its
 * own -j workers (default 1), then rank 0 gathers all results and writes the
 * summary. Run folders are written on each rank's own host. */
#define _GNU_SOURCE
#include "sweep.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "common.h"

#ifdef CLIPLAB_MPI
#include <mpi.h>
#endif

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int mkdir_p(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* FNV-1a over the base config's bytes: a changed config reruns every run. */
static uint64_t file_hash(const char *path) {
    uint64_t h = 1469598103934665603ull;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int c;
    while ((c = getc(f)) != EOF) h = (h ^ (uint64_t)(unsigned char)c) * 1099511628211ull;
    fclose(f);
    return h;
}

/* ------------------------------------------------------------ result.txt */

static void run_dir(const SweepSpec *s, const SweepRun *r, char *out, size_t len) {
    snprintf(out, len, "%s/%s", s->out_dir, r->name);
}

/* The sweep's own files about a run sit beside its folder (<run>.log.txt,
 * <run>.result.txt): the folder itself holds one cliplab run and nothing else,
 * and a new run replaces it whole (runfolder.h). */
static void run_file(const SweepSpec *s, const SweepRun *r, const char *what, char *out, size_t len) {
    snprintf(out, len, "%s/%s.%s", s->out_dir, r->name, what);
}

static int write_record(const SweepSpec *s, const SweepRun *r, char **args, int nargs,
                        uint64_t hash) {
    char path[1100], tmp[1200];
    run_file(s, r, "result.txt", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "# cliplab sweep: this run is complete; delete this file to run it again\n");
    fprintf(f, "config=%s\nconfig_hash=%016llx\n", s->config, (unsigned long long)hash);
    for (int i = 0; i < nargs; i++) fprintf(f, "arg=%s\n", args[i]);
    fprintf(f, "status=%s\ndiverged_step=%ld\nfailed=%d\n", r->status, r->diverged_step, r->failed);
    fprintf(f, "final=%.17g\nbest=%.17g\nclip_frac=%.17g\nmedian_grad_norm=%.17g\nwall_s=%.17g\n",
            r->final_metric, r->best_metric, r->clip_frac, r->median_norm, r->wall_s);
    int bad = ferror(f);
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* 1 when result.txt exists and records exactly these arguments (r filled). */
static int read_record(const SweepSpec *s, SweepRun *r, char **args, int nargs, uint64_t hash) {
    char path[1100], line[4096];
    run_file(s, r, "result.txt", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int narg = 0, ok = 1, have = 0;
    char want[64];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)hash);
    while (ok && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *eq = strchr(line, '=');
        if (line[0] == '#' || !eq) continue;
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        if (!strcmp(k, "config")) ok = !strcmp(v, s->config);
        else if (!strcmp(k, "config_hash")) ok = !strcmp(v, want);
        else if (!strcmp(k, "arg")) ok = narg < nargs && !strcmp(v, args[narg++]);
        else if (!strcmp(k, "status")) snprintf(r->status, sizeof r->status, "%s", v), have |= 1;
        else if (!strcmp(k, "diverged_step")) r->diverged_step = strtol(v, NULL, 10), have |= 2;
        else if (!strcmp(k, "failed")) r->failed = (int)strtol(v, NULL, 10), have |= 4;
        else if (!strcmp(k, "final")) r->final_metric = strtod(v, NULL), have |= 8;
        else if (!strcmp(k, "best")) r->best_metric = strtod(v, NULL), have |= 16;
        else if (!strcmp(k, "clip_frac")) r->clip_frac = strtod(v, NULL), have |= 32;
        else if (!strcmp(k, "median_grad_norm")) r->median_norm = strtod(v, NULL), have |= 64;
        else if (!strcmp(k, "wall_s")) r->wall_s = strtod(v, NULL), have |= 128;
    }
    fclose(f);
    return ok && narg == nargs && have == 255;
}

/* ------------------------------------------------------------ workers */

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) { stop_signal = sig; }

typedef struct Slot {
    pid_t pid;
    int run;
    double t0;
} Slot;

static pid_t launch(const SweepSpec *s, const SweepRun *r, char **args, int nargs) {
    char dir[1024], log[1100];
    run_dir(s, r, dir, sizeof dir);
    run_file(s, r, "log.txt", log, sizeof log);
    char rec[1100];
    run_file(s, r, "result.txt", rec, sizeof rec);
    unlink(rec); /* a stale record must not survive a rerun */
    if (mkdir_p(dir) != 0) {
        fprintf(stderr, "cliplab: error: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char *argv[SWEEP_MAX_ARGS * 2 + 24];
    int k = 0;
    argv[k++] = "train";
    argv[k++] = (char *)s->config;
    for (int i = 0; i < nargs; i++) argv[k++] = args[i];
    argv[k] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "cliplab: error: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a killed sweep takes its workers along */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) dup2(null, 0), close(null);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "cliplab: error: cannot start ./train: %s\n", strerror(errno));
        _exit(127);
    }
    return pid;
}

static void format_secs(double s, char *out, size_t len) {
    if (!isfinite(s) || s < 0) snprintf(out, len, "?");
    else if (s < 90) snprintf(out, len, "%.0fs", s);
    else if (s < 5400) snprintf(out, len, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else snprintf(out, len, "%.0fh%02.0fm", floor(s / 3600), floor(fmod(s, 3600) / 60));
}

typedef struct Progress {
    int total, done, skipped, running, failed, diverged, tty, rank, nranks;
    double t0, busy;   /* busy: summed wall time of the runs finished here */
    int jobs;
} Progress;

static void progress(const Progress *p, const SweepSpec *s, const SweepRun *just, int final) {
    char eta[32] = "-", took[32];
    int ran = p->done - p->skipped;
    int left = p->total - p->done;
    if (ran > 0 && left > 0) {
        double per = p->busy / ran;
        format_secs(per * left / p->jobs, eta, sizeof eta);
    }
    format_secs(wall_now() - p->t0, took, sizeof took);
    char who[32] = "";
    if (p->nranks > 1) snprintf(who, sizeof who, " rank %d/%d", p->rank, p->nranks);
    char line[512];
    snprintf(line, sizeof line, "sweep %s%s: %d/%d done, %d running, %d failed, %d diverged, "
             "%s %s", s->name, who, p->done, p->total, p->running, p->failed, p->diverged,
             final ? "took" : "ETA", final ? took : eta);
    if (p->tty) {
        printf("\r\033[K%s", line);
        if (final) printf("\n");
    } else if (just) {
        printf("%s | %s: %s, %s %.4g\n", line, just->name, just->status, s->metric, just->final_metric);
    } else if (final) {
        printf("%s\n", line);
    }
    fflush(stdout);
}

/* Run this rank's share (mine[i] = 1); returns 0 or 130/143 if interrupted. */
static int run_all(SweepSpec *s, const int *mine, int jobs, int rank, int nranks) {
    uint64_t hash = file_hash(s->config);
    Progress p = {0};
    p.tty = isatty(1) && nranks == 1; /* mpirun hands ranks a pty: one line per run there */
    p.t0 = wall_now();
    p.rank = rank, p.nranks = nranks, p.jobs = jobs;
    char *args[SWEEP_MAX_ARGS * 2 + 16];
    static char buf[65536];
    int *pending = xcalloc((size_t)s->nruns, sizeof *pending);
    int npending = 0;
    for (int i = 0; i < s->nruns; i++) {
        if (!mine[i]) continue;
        p.total++;
        SweepRun *r = &s->runs[i];
        int n = sweep_run_args(s, r, args, buf, sizeof buf);
        if (read_record(s, r, args, n, hash)) {
            r->done = 1;
            p.done++, p.skipped++;
            p.failed += r->failed;
            p.diverged += r->diverged_step >= 0;
        } else {
            pending[npending++] = i;
        }
    }
    if (p.skipped)
        printf("sweep %s: %d of %d runs already complete (result.txt), %d to run\n", s->name,
               p.skipped, p.total, npending);
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    Slot *slot = xcalloc((size_t)jobs, sizeof *slot);
    int next = 0;
    double last_draw = 0;
    progress(&p, s, NULL, 0);
    while ((next < npending || p.running > 0) && !stop_signal) {
        for (int j = 0; j < jobs && next < npending && !stop_signal; j++) {
            if (slot[j].pid) continue;
            SweepRun *r = &s->runs[pending[next]];
            int n = sweep_run_args(s, r, args, buf, sizeof buf);
            slot[j].run = pending[next++];
            slot[j].t0 = wall_now();
            slot[j].pid = launch(s, r, args, n);
            if (slot[j].pid < 0) {
                slot[j].pid = 0;
                snprintf(r->status, sizeof r->status, "error (could not start)");
                r->failed = 1, r->done = 1, r->diverged_step = -1;
                r->final_metric = r->best_metric = r->clip_frac = r->median_norm = NAN;
                p.done++, p.failed++;
                continue;
            }
            p.running++;
        }
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
            if (p.tty && wall_now() - last_draw > 1.0) {
                progress(&p, s, NULL, 0);
                last_draw = wall_now();
            }
            continue;
        }
        int j = 0;
        while (j < jobs && slot[j].pid != pid) j++;
        if (j == jobs) continue;
        SweepRun *r = &s->runs[slot[j].run];
        slot[j].pid = 0;
        p.running--;
        r->wall_s = wall_now() - slot[j].t0;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
        if (stop_signal && code < 0) break; /* killed by our own interruption: not a result */
        char dir[1024], csv[1100];
        run_dir(s, r, dir, sizeof dir);
        snprintf(csv, sizeof csv, "%s/metrics.csv", dir);
        sweep_read_metrics(r, csv, s->metric, s->metric_higher, code);
        r->done = 1;
        p.done++;
        p.busy += r->wall_s;
        p.failed += r->failed;
        p.diverged += r->diverged_step >= 0;
        int n = sweep_run_args(s, r, args, buf, sizeof buf);
        if (write_record(s, r, args, n, hash) != 0)
            fprintf(stderr, "cliplab: warning: could not write %s.result.txt: %s (the run will be "
                            "repeated on resume)\n", dir, strerror(errno));
        progress(&p, s, r, 0);
        last_draw = wall_now();
    }
    int rc = 0;
    if (stop_signal) {
        for (int j = 0; j < jobs; j++)
            if (slot[j].pid) kill(slot[j].pid, SIGTERM);
        for (int j = 0; j < jobs; j++)
            if (slot[j].pid) waitpid(slot[j].pid, NULL, 0);
        if (p.tty) printf("\n");
        fprintf(stderr, "cliplab: sweep %s interrupted: %d of %d runs complete; run the same "
                        "command again to resume\n", s->name, p.done, p.total);
        rc = 128 + (int)stop_signal;
    } else {
        progress(&p, s, NULL, 1);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(slot);
    free(pending);
    return rc;
}

/* ------------------------------------------------------------ MPI gather */

typedef struct Packed {
    int idx, failed;
    long diverged_step;
    char status[64];
    double v[5];
} Packed;

#ifdef CLIPLAB_MPI
static void gather(SweepSpec *s, const int *mine, int rank, int nranks) {
    if (rank != 0) {
        int n = 0;
        for (int i = 0; i < s->nruns; i++) n += mine[i] && s->runs[i].done;
        Packed *pk = xcalloc((size_t)n + 1, sizeof *pk);
        int k = 0;
        for (int i = 0; i < s->nruns; i++) {
            const SweepRun *r = &s->runs[i];
            if (!mine[i] || !r->done) continue;
            pk[k].idx = i, pk[k].failed = r->failed, pk[k].diverged_step = r->diverged_step;
            snprintf(pk[k].status, sizeof pk[k].status, "%s", r->status);
            double v[5] = {r->final_metric, r->best_metric, r->clip_frac, r->median_norm, r->wall_s};
            memcpy(pk[k].v, v, sizeof v);
            k++;
        }
        MPI_Send(&n, 1, MPI_INT, 0, 1, MPI_COMM_WORLD);
        MPI_Send(pk, (int)(n * sizeof *pk), MPI_BYTE, 0, 2, MPI_COMM_WORLD);
        free(pk);
        return;
    }
    for (int src = 1; src < nranks; src++) {
        int n;
        MPI_Recv(&n, 1, MPI_INT, src, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        Packed *pk = xcalloc((size_t)n + 1, sizeof *pk);
        MPI_Recv(pk, (int)(n * sizeof *pk), MPI_BYTE, src, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (int k = 0; k < n; k++) {
            ASSERT(pk[k].idx >= 0 && pk[k].idx < s->nruns, "bad run index from rank %d", src);
            SweepRun *r = &s->runs[pk[k].idx];
            r->done = 1, r->failed = pk[k].failed, r->diverged_step = pk[k].diverged_step;
            snprintf(r->status, sizeof r->status, "%s", pk[k].status);
            r->final_metric = pk[k].v[0], r->best_metric = pk[k].v[1], r->clip_frac = pk[k].v[2];
            r->median_norm = pk[k].v[3], r->wall_s = pk[k].v[4];
        }
        free(pk);
    }
}
#endif

/* ------------------------------------------------------------ main */

/* The lines of f on stderr, each distinct one once, with how many runs gave it. */
static void print_once(FILE *f) {
    rewind(f);
    char line[4096];
    char **seen = NULL;
    int *count = NULL, n = 0;
    while (fgets(line, sizeof line, f)) {
        int i = 0;
        while (i < n && strcmp(seen[i], line)) i++;
        if (i == n) {
            seen = realloc(seen, (size_t)(n + 1) * sizeof *seen);
            count = realloc(count, (size_t)(n + 1) * sizeof *count);
            if (!seen || !count) die("out of memory");
            size_t len = strlen(line) + 1;
            seen[n] = memcpy(xmalloc(len), line, len);
            count[n++] = 0;
        }
        count[i]++;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(seen[i]);
        if (len && seen[i][len - 1] == '\n') seen[i][len - 1] = '\0';
        if (count[i] > 1) fprintf(stderr, "%s (in %d runs)\n", seen[i], count[i]);
        else fprintf(stderr, "%s\n", seen[i]);
        free(seen[i]);
    }
    free(seen);
    free(count);
}

int sweep_main(int argc, char **argv, SweepCheckFn check) {
    SweepSpec *s = xcalloc(1, sizeof *s);
    char err[2048];
    if (sweep_parse(s, argc, argv, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        sweep_free(s);
        free(s);
        return 2;
    }
    int rank = 0, nranks = 1;
#ifdef CLIPLAB_MPI
    int use_mpi = getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_RANK") != NULL ||
                  getenv("PMIX_RANK") != NULL;
    if (use_mpi) {
        setenv("OMPI_MCA_mpi_warn_on_fork", "0", 0); /* workers exec at once and use no MPI */
        MPI_Init(NULL, NULL);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    }
#endif
    /* every run's config loads, or nothing runs (each rank checks, so each stops);
     * what the loader prints is gathered so a warning shared by many runs shows once */
    char *args[SWEEP_MAX_ARGS * 2 + 16];
    static char buf[65536];
    int rc = 0;
    FILE *cap = tmpfile();
    int saved = cap ? dup(2) : -1;
    fflush(stderr);
    if (saved >= 0) dup2(fileno(cap), 2);
    for (int i = 0; i < s->nruns && rc == 0; i++) {
        int n = sweep_run_args(s, &s->runs[i], args, buf, sizeof buf);
        SweepRunInfo info = {{0}, 0};
        if (check(s->config, args, n, &info) != 0) {
            fprintf(stderr, "cliplab: error: sweep %s: run %s (%s with", s->name, s->runs[i].name,
                    s->config);
            for (int k = 0; k < n; k++) fprintf(stderr, " %s", args[k]);
            fprintf(stderr, ") does not load; nothing was run\n");
            rc = 2;
        } else if (i == 0) {
            snprintf(s->metric, sizeof s->metric, "%s", info.main_metric[0] ? info.main_metric : "val_loss");
            s->metric_higher = info.main_metric_higher;
        }
    }
    if (saved >= 0) {
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        print_once(cap);
    }
    if (cap) fclose(cap);
    int *mine = xcalloc((size_t)s->nruns, sizeof *mine);
    if (rc == 0) {
        for (int i = 0; i < s->nruns; i++) mine[i] = i % nranks == rank;
        if (mkdir_p(s->out_dir) != 0) {
            fprintf(stderr, "cliplab: error: cannot create %s: %s\n", s->out_dir, strerror(errno));
            rc = 1;
        }
    }
    if (rc == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int jobs = s->jobs ? s->jobs : nranks > 1 ? 1 : (int)(cores > 0 ? cores : 1);
        setenv("OPENBLAS_NUM_THREADS", "1", 1); /* the sweep is the parallelism */
        setenv("CLIPLAB_SWEEP_WORKER", "1", 1); /* a worker is one process, even under mpirun */
        setenv("OMP_NUM_THREADS", "1", 1);
        char tcap[24]; /* and a run's [train] threads share what the workers leave */
        snprintf(tcap, sizeof tcap, "%ld", cores > jobs ? cores / jobs : 1L);
        setenv("CLIPLAB_THREAD_CAP", tcap, 1);
        if (rank == 0)
            printf("sweep %s: %d runs (%s; %d group%s, %d seed%s) -> %s/, %d worker%s%s\n", s->name,
                   s->nruns, s->config, s->ngroups, s->ngroups > 1 ? "s" : "",
                   s->nseeds ? s->nseeds : 1, s->nseeds > 1 ? "s" : "", s->out_dir, jobs,
                   jobs > 1 ? "s" : "", nranks > 1 ? " per MPI rank" : "");
        if (nranks > 1) printf("sweep %s: rank %d of %d on this host\n", s->name, rank, nranks);
        fflush(stdout);
        rc = run_all(s, mine, jobs, rank, nranks);
    }
#ifdef CLIPLAB_MPI
    if (use_mpi) {
        /* an interrupted or refused rank still joins the gather, with what it has */
        int worst = rc, any = 0;
        MPI_Allreduce(&worst, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (any == 0) gather(s, mine, rank, nranks);
        rc = any;
    }
#endif
    if (rc == 0 && rank == 0) {
        if (sweep_write_summary(s) != 0) rc = 1;
        int failed = 0;
        for (int i = 0; i < s->nruns; i++) failed += s->runs[i].failed;
        if (failed) {
            fprintf(stderr, "cliplab: sweep %s: %d run%s failed (status in %s/sweep.csv, output in "
                            "each run's <run>.log.txt)\n", s->name, failed, failed > 1 ? "s" : "", s->out_dir);
            if (rc == 0) rc = 1;
        }
    }
#ifdef CLIPLAB_MPI
    if (use_mpi) {
        MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
        MPI_Finalize();
    }
#endif
    free(mine);
    sweep_free(s);
    free(s);
    return rc;
}
