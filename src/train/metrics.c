/* metrics.c: the run's logs in memory and as CSV (see metrics.h). */
#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

void metrics_truncate(MetricsLog *l, long step) {
    while (l->nrows > 0 && l->rows[(l->nrows - 1) * (size_t)l->ncols] >= (double)step) l->nrows--;
    if (!l->csv) return;
    if (!freopen(l->csv_tmp, "w", l->csv)) die("cannot rewrite %s", l->csv_tmp);
    write_header(l);
    for (size_t r = 0; r < l->nrows; r++) write_row(l->csv, l->rows + r * (size_t)l->ncols, l->ncols);
}

int metrics_open_csv(MetricsLog *l, const char *dir, const char *name) {
    snprintf(l->csv_path, sizeof l->csv_path, "%s/%s", dir, name);
    snprintf(l->csv_tmp, sizeof l->csv_tmp, "%s.tmp", l->csv_path);
    l->csv = fopen(l->csv_tmp, "w");
    if (!l->csv) {
        fprintf(stderr, "cliplab: error: cannot write %s: %s\n", l->csv_tmp, strerror(errno));
        return -1;
    }
    write_header(l);
    return 0;
}

int metrics_close(MetricsLog *l) {
    if (!l->csv) return 0;
    int bad = ferror(l->csv) | (fclose(l->csv) != 0);
    l->csv = NULL;
    if (bad || rename(l->csv_tmp, l->csv_path) != 0) {
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
