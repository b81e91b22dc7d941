/* metrics.c: the run's logs in memory and as CSV (see metrics.h). */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

void metrics_add_col(MetricsLog *l, const char *name) {
    ASSERT(l->nrows == 0, "column %s added after rows were logged", name);
    if (l->ncols == l->capcols) {
        l->capcols = l->capcols ? 2 * l->capcols : 32;
        l->names = realloc(l->names, (size_t)l->capcols * sizeof *l->names);
        if (!l->names) die("out of memory adding metrics columns");
    }
    snprintf(l->names[l->ncols++], sizeof l->names[0], "%s", name);
}

int metrics_col(const MetricsLog *l, const char *name) {
    for (int i = 0; i < l->ncols; i++)
        if (strcmp(l->names[i], name) == 0) return i;
    return -1;
}

static void write_row(FILE *f, const double *vals, int ncols) {
    for (int i = 0; i < ncols; i++) fprintf(f, i ? ",%.9g" : "%.9g", vals[i]);
    fputc('\n', f);
}

static void write_header(MetricsLog *l) {
    for (int i = 0; i < l->ncols; i++) fprintf(l->csv, i ? ",%s" : "%s", l->names[i]);
    fputc('\n', l->csv);
}

void metrics_row(MetricsLog *l, const double *vals) {
    if (l->nrows == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        double *rows = realloc(l->rows, l->cap * (size_t)l->ncols * sizeof *rows);
        if (!rows) die("out of memory growing the metrics log");
        l->rows = rows;
    }
    memcpy(l->rows + l->nrows * (size_t)l->ncols, vals, (size_t)l->ncols * sizeof *vals);
    l->nrows++;
    if (l->csv) write_row(l->csv, vals, l->ncols);
}

void metrics_column(const MetricsLog *l, int col, double *out) {
    for (size_t r = 0; r < l->nrows; r++) out[r] = l->rows[r * (size_t)l->ncols + col];
}

/* Replace the CSV with the header and the rows in memory: written to
 * <name>.tmp, synced and renamed, so a kill leaves the old file or the new
 * one; then appended to. */
static int rewrite_csv(MetricsLog *l) {
    if (l->csv && fclose(l->csv) != 0) l->csv = NULL;
    l->csv = fopen(l->csv_tmp, "w");
    if (!l->csv) return -1;
    write_header(l);
    for (size_t r = 0; r < l->nrows; r++) write_row(l->csv, l->rows + r * (size_t)l->ncols, l->ncols);
    int bad = fflush(l->csv) != 0 || fsync(fileno(l->csv)) != 0;
    bad |= fclose(l->csv) != 0;
    l->csv = NULL;
    if (bad || rename(l->csv_tmp, l->csv_path) != 0) return -1;
    l->csv = fopen(l->csv_path, "a");
    return l->csv ? 0 : -1;
}

void metrics_drop_from(MetricsLog *l, long step) {
    while (l->nrows > 0 && l->rows[(l->nrows - 1) * (size_t)l->ncols] >= (double)step) l->nrows--;
}

void metrics_rewrite(MetricsLog *l) {
    if (l->csv && rewrite_csv(l) != 0) die("cannot rewrite %s: %s", l->csv_path, strerror(errno));
}

void metrics_truncate(MetricsLog *l, long step) {
    metrics_drop_from(l, step);
    metrics_rewrite(l);
}

static void set_paths(MetricsLog *l, const char *dir, const char *name) {
    snprintf(l->csv_path, sizeof l->csv_path, "%s/%s", dir, name);
    snprintf(l->csv_tmp, sizeof l->csv_tmp, "%s.tmp", l->csv_path);
}

int metrics_open_csv(MetricsLog *l, const char *dir, const char *name) {
    set_paths(l, dir, name);
    l->csv = fopen(l->csv_path, "w");
    if (!l->csv) {
        fprintf(stderr, "cliplab: error: cannot write %s: %s\n", l->csv_path, strerror(errno));
        return -1;
    }
    write_header(l);
    return 0;
}

int metrics_flush(MetricsLog *l) {
    if (!l->csv) return 0;
    return fflush(l->csv) == 0 && fsync(fileno(l->csv)) == 0 ? 0 : -1;
}

/* Read up to max rows of <dir>/<name> (the columns as registered) into
 * memory; with exact, fewer than max is an error. */
static int read_rows(MetricsLog *l, const char *dir, const char *name, size_t max, int exact,
                     char *err, size_t errlen) {
    set_paths(l, dir, name);
    FILE *f = fopen(l->csv_path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", l->csv_path, strerror(errno));
        return -1;
    }
    char *line = NULL, *want = NULL;
    size_t cap = 0, wlen = 0;
    FILE *h = open_memstream(&want, &wlen);
    for (int i = 0; i < l->ncols; i++) fprintf(h, i ? ",%s" : "%s", l->names[i]);
    fputc('\n', h);
    fclose(h);
    int rc = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n < 0 || strcmp(line, want) != 0) {
        snprintf(err, errlen, "%s does not have this run's columns", l->csv_path);
        rc = -1;
    }
    double *vals = xmalloc((size_t)l->ncols * sizeof *vals);
    l->nrows = 0;
    while (rc == 0 && l->nrows < max) {
        n = getline(&line, &cap, f);
        const char *p = line;
        for (int c = 0; n > 0 && c < l->ncols; c++) {
            char *end;
            vals[c] = strtod(p, &end);
            if (end == p || *end != (c + 1 < l->ncols ? ',' : '\n')) n = -1;
            p = end + 1;
        }
        if (n <= 0) { /* the end, or a line a kill cut short */
            if (exact)
                snprintf(err, errlen, "%s holds %zu complete rows, the checkpoint counts %zu",
                         l->csv_path, l->nrows, max);
            rc = exact ? -1 : 0;
            break;
        }
        metrics_row(l, vals);
    }
    free(vals), free(line), free(want);
    fclose(f);
    return rc;
}

int metrics_resume_csv(MetricsLog *l, const char *dir, const char *name, size_t nrows, char *err,
                       size_t errlen) {
    if (read_rows(l, dir, name, nrows, 1, err, errlen) != 0) return -1;
    if (rewrite_csv(l) != 0) {
        snprintf(err, errlen, "cannot rewrite %s: %s", l->csv_path, strerror(errno));
        return -1;
    }
    return 0;
}

int metrics_load_csv(MetricsLog *l, const char *dir, const char *name, char *err, size_t errlen) {
    return read_rows(l, dir, name, (size_t)-1, 0, err, errlen);
}

int metrics_read_csv(MetricsLog *l, const char *dir, const char *name, char *err, size_t errlen) {
    char path[CFG_STR_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    fclose(f);
    if (n <= 1 || line[n - 1] != '\n') {
        free(line);
        snprintf(err, errlen, "%s has no header line", path);
        return -1;
    }
    line[n - 1] = '\0';
    metrics_free(l);
    for (char *c = line, *e; c; c = e ? e + 1 : NULL) {
        e = strchr(c, ',');
        if (e) *e = '\0';
        if (!*c || strlen(c) >= METRICS_NAME_MAX || metrics_col(l, c) >= 0) {
            snprintf(err, errlen, "%s: bad column name '%.40s' in the header", path, c);
            free(line);
            return -1;
        }
        metrics_add_col(l, c);
    }
    free(line);
    return read_rows(l, dir, name, (size_t)-1, 0, err, errlen);
}

int metrics_close(MetricsLog *l) {
    if (!l->csv) return 0;
    int bad = ferror(l->csv) | (fclose(l->csv) != 0);
    l->csv = NULL;
    if (bad) {
        fprintf(stderr, "cliplab: error: cannot write %s: %s\n", l->csv_path, strerror(errno));
        return -1;
    }
    return 0;
}

void metrics_free(MetricsLog *l) {
    free(l->rows);
    free(l->names);
    l->rows = NULL, l->names = NULL;
    l->nrows = l->cap = 0;
    l->ncols = l->capcols = 0;
}

double *metrics_column_or_nan(const MetricsLog *l, const char *name) {
    double *v = xcalloc(l->nrows + 1, sizeof *v);
    int c = metrics_col(l, name);
    if (c >= 0) metrics_column(l, c, v);
    else
        for (size_t i = 0; i < l->nrows; i++) v[i] = NAN;
    return v;
}
