/* metrics.h: the run's logs: named columns of doubles, one row per logged
 * step, kept in memory (for plots and rollbacks) and streamed to a CSV,
 * flushed at each checkpoint; a rewrite (rollback, resume) goes through
 * <name>.tmp and a rename. Column 0 is the step.
 * Any number of columns (grad_norms.csv has one per tensor). */
#ifndef CLIPLAB_METRICS_H
#define CLIPLAB_METRICS_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

#define METRICS_NAME_MAX 96

typedef struct MetricsLog {
    int ncols, capcols;
    char (*names)[METRICS_NAME_MAX];
    double *rows;                 /* nrows x ncols, kept for plotting */
    size_t nrows, cap;
    FILE *csv;
    char csv_tmp[CFG_STR_MAX + 48], csv_path[CFG_STR_MAX + 32];
} MetricsLog;

void metrics_add_col(MetricsLog *l, const char *name);
int metrics_col(const MetricsLog *l, const char *name); /* -1 if absent */
/* Append a row of ncols values (and write it to the CSV if open). */
void metrics_row(MetricsLog *l, const double *vals);
/* Column col of every row into out[nrows]. */
void metrics_column(const MetricsLog *l, int col, double *out);
/* Column NAME as a new array of nrows + 1 doubles (the caller frees it); all NaN
 * when the log has no such column. */
double *metrics_column_or_nan(const MetricsLog *l, const char *name);
/* Open <dir>/<name> and write the header; -1 with a message printed. The
 * folder is marked in progress while it is written (runfolder.h). */
int metrics_open_csv(MetricsLog *l, const char *dir, const char *name);
/* Rows written so far to disk (fflush + fsync): done before each checkpoint. */
int metrics_flush(MetricsLog *l);
/* Resume: read the first nrows rows of <dir>/<name> (columns as registered)
 * back into memory, cut the file to them (what was logged after the
 * checkpoint goes) and reopen it for appending. 0, or -1 with a message. */
int metrics_resume_csv(MetricsLog *l, const char *dir, const char *name, size_t nrows, char *err,
                       size_t errlen);
/* Every complete row of <dir>/<name> into memory (a finished run's log). */
int metrics_load_csv(MetricsLog *l, const char *dir, const char *name, char *err, size_t errlen);
/* The same for any metrics CSV: its columns are the header's (./train --plot reads
 * folders written by other versions). */
int metrics_read_csv(MetricsLog *l, const char *dir, const char *name, char *err, size_t errlen);
int metrics_close(MetricsLog *l);
/* Drop rows of steps >= step and rewrite the CSV from memory (a rollback). */
void metrics_truncate(MetricsLog *l, long step);
/* The two halves: drop the rows in memory; rewrite the CSV from memory. */
void metrics_drop_from(MetricsLog *l, long step);
void metrics_rewrite(MetricsLog *l);
/* Free the rows and names (the CSV must be closed). */
void metrics_free(MetricsLog *l);

#endif
