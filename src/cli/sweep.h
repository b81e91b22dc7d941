/* sweep.h: ./train --sweep: the cartesian product of swept keys and seeds,
 * run in parallel worker processes (and across MPI ranks), resumable, with
 * one table (sweep.csv) and one figure (summary.png) that answer it.
 *
 * Syntax (the same tokens on the command line or, one or more per line, in a
 * .sweep file; `#` starts a comment):
 *   CONFIG.ini                 the base config (exactly one)
 *   section.key=value          an ordinary override: ONE value, commas and all
 *                              (clip.exclude=w_out,b_out stays one value)
 *   --vary section.key=VALUES  a swept key; VALUES is one of
 *                                a,b,c            a list ({...} keeps commas: {w_out,b_out},w_out)
 *                                log:LO:HI:N      N log-spaced numbers from LO to HI (LO, HI > 0)
 *                                lin:LO:HI:N      N evenly spaced numbers from LO to HI
 *   --seeds S                  run.seed values: 1:5 (inclusive range) or 1,2,7
 *   --group LABEL              what follows (overrides, --vary) applies to this group only;
 *                              the runs are the union over groups of (global axes x group
 *                              axes x seeds); a group is one line (or a baseline) in the figure
 *   --name NAME                the sweep writes runs/NAME/ (default: the .sweep file's name,
 *                              else <config name>_sweep)
 *   --x KEY                    the swept key on the figure's x axis (default: the first numeric one)
 *   -j N                       worker processes on this host (default: cores; 1 per MPI rank)
 *   --map                      also map.png: a heatmap of the median final metric, one row per
 *                              line of the figure, one column per x value, diverged runs
 *                              counted as the worst value (a cell whose median run diverged
 *                              is drawn as diverged)
 *   --mark-norm-rule           the figure marks the median pre-clip norm of the runs that were
 *                              never clipped, and 0.5x and 10x it (Pascanu et al. 2013's range)
 *   FILE.sweep                 read more tokens from FILE (no nesting)
 * Only the --vary operator sweeps; a spec that does not parse, or any run whose
 * config does not load, is refused before anything is written.
 *
 * Outputs in runs/NAME/: one folder per run (its config.ini, metrics.csv,
 * plots) with <run>.log.txt (its terminal output) and <run>.result.txt (written
 * last: the mark of a complete run) beside it, sweep.csv, summary.csv (the numbers drawn), summary.png and,
 * with --map, map.png. */
#ifndef CLIPLAB_SWEEP_H
#define CLIPLAB_SWEEP_H

#include <stddef.h>

#define SWEEP_MAX_AXES 4
#define SWEEP_MAX_GROUPS 16
#define SWEEP_MAX_SEEDS 1000
#define SWEEP_MAX_RUNS 20000
#define SWEEP_MAX_ARGS 128

/* One swept key and its values (text as passed to the override setter). */
typedef struct SweepAxis {
    char key[128];             /* section.key */
    int nvals;
    char **vals;               /* owned */
    double *num;               /* numeric value of each (NaN when not a number) */
    int numeric;               /* every value is a number */
} SweepAxis;

typedef struct SweepGroup {
    char label[64];            /* "" for the implicit single group */
    const char *sets[SWEEP_MAX_ARGS]; /* this group's fixed overrides */
    int nsets;
    SweepAxis axes[SWEEP_MAX_AXES];
    int naxes;
} SweepGroup;

typedef struct SweepRun {
    int group;
    const char *val[2 * SWEEP_MAX_AXES]; /* value of each axis of the group's list (global then own) */
    const SweepAxis *axis[2 * SWEEP_MAX_AXES];
    int naxes;
    long seed;
    char name[256];            /* folder name under the sweep's folder */
    /* results */
    int done;                  /* result known (run now or read back from result.txt) */
    char status[64];           /* "ok", "diverged at step N", "error (exit 2)" */
    long diverged_step;        /* -1 if not diverged */
    int failed;                /* status is an error */
    double final_metric, best_metric, clip_frac, median_norm, wall_s;
} SweepRun;

typedef struct SweepSpec {
    char config[512];
    char name[128];
    char out_dir[512];         /* runs/<name> */
    char xkey[128];            /* --x, or "" */
    const char *sets[SWEEP_MAX_ARGS]; /* global overrides */
    int nsets;
    SweepAxis axes[SWEEP_MAX_AXES];   /* global axes */
    int naxes;
    long seeds[SWEEP_MAX_SEEDS];
    int nseeds;                /* 0: the config's own seed (no run.seed override) */
    SweepGroup groups[SWEEP_MAX_GROUPS];
    int ngroups;               /* at least 1 */
    int jobs;                  /* 0 = default */
    int map;                   /* --map: also map.png, lines x x values as a heatmap */
    int mark_norm_rule;        /* --mark-norm-rule: mark the typical unclipped norm and 0.5x-10x */
    char metric[64];           /* main metric column (val_loss until ModelDef says) */
    int metric_higher;
    char *text;                /* tokens read from .sweep files (owned) */
    char **tok;                /* all tokens (owned array) */
    int ntok;
    SweepRun *runs;
    int nruns;
} SweepSpec;

/* What the caller (main.c) learns from loading one run's config. */
typedef struct SweepRunInfo {
    char main_metric[64];
    int main_metric_higher;
} SweepRunInfo;

/* Load and validate CONFIG with the overrides, exactly as ./train would;
 * 0 if it loads (info filled), non-zero with the message printed otherwise. */
typedef int (*SweepCheckFn)(const char *config, char **overrides, int nover, SweepRunInfo *info);

/* ./train --sweep ARGS: argv after "--sweep". Returns the exit status
 * (0 all runs ran, even if some diverged; 1 some run failed; 2 bad spec). */
int sweep_main(int argc, char **argv, SweepCheckFn check);

/* Parse tokens (argv after --sweep) into spec; builds the run list. 0 on
 * success; -1 with "cliplab: error: ..." in err. */
int sweep_parse(SweepSpec *spec, int argc, char **argv, char *err, size_t errlen);
void sweep_free(SweepSpec *spec);
void sweep_axis_free(SweepAxis *axis);
/* Parse one VALUES form into axis (key set by the caller). 0 or -1 + err. */
int sweep_parse_values(SweepAxis *axis, const char *text, char *err, size_t errlen);
/* The overrides of run r (global sets, group sets, axes, seed, name, out_dir);
 * out must hold SWEEP_MAX_ARGS * 2 + 16 pointers; strings in buf. Returns count. */
int sweep_run_args(const SweepSpec *spec, const SweepRun *r, char **out, char *buf, size_t buflen);

/* Results of one finished run from its metrics.csv: status, final/best metric,
 * clip fraction, median pre-clip norm. exit_code is the worker's exit status
 * (-signal if killed). 0, or -1 if metrics.csv is missing/unreadable. */
int sweep_read_metrics(SweepRun *r, const char *metrics_csv, const char *metric, int higher,
                       int exit_code);
/* Median of the finite values of x[n] (NaN when none); x is reordered. */
double sweep_median(double *x, size_t n);
/* sweep.csv, summary.csv and summary.png in spec->out_dir; 0 or -1 (message printed). */
int sweep_write_summary(const SweepSpec *spec);

#endif
