/* sweep_spec.c: the sweep syntax (sweep.h) -> a SweepSpec and its list of runs.
 *
 * Only `--vary KEY=VALUES` sweeps; every other `section.key=value` is an
 * ordinary override passed through whole, so a value with commas can never be
 * mistaken for a list. The runs are, for each group in order, the product
 * global axes x group axes x seeds, the last factor varying fastest; that
 * order is the order of sweep.csv whatever the number of workers.
 * Loading each run's config is left to the caller (sweep.c, through main.c). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sweep.h"

static char *xstrdup(const char *t) {
    size_t n = strlen(t) + 1;
    return memcpy(xmalloc(n), t, n);
}

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(err, errlen, "cliplab: error: ");
    if (k > 0 && (size_t)k < errlen) vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}

#define FAIL(...) return fail(err, errlen, __VA_ARGS__)

static const char VALUES_HELP[] =
    "accepted: a,b,c | log:LO:HI:N | lin:LO:HI:N, e.g. --vary clip.max_norm=log:0.01:100:9";

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int parse_long(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno == ERANGE) return -1;
    *out = v;
    return 0;
}

static void axis_add(SweepAxis *a, const char *text, size_t len) {
    a->vals = realloc(a->vals, (size_t)(a->nvals + 1) * sizeof *a->vals);
    a->num = realloc(a->num, (size_t)(a->nvals + 1) * sizeof *a->num);
    if (!a->vals || !a->num) die("out of memory");
    char *v = xmalloc(len + 1);
    memcpy(v, text, len);
    v[len] = '\0';
    a->vals[a->nvals] = v;
    double d;
    a->num[a->nvals] = parse_double(v, &d) == 0 ? d : NAN;
    a->nvals++;
}

void sweep_axis_free(SweepAxis *a) {
    for (int i = 0; i < a->nvals; i++) free(a->vals[i]);
    free(a->vals);
    free(a->num);
    memset(a, 0, sizeof *a);
}

/* log:LO:HI:N / lin:LO:HI:N. Values are formatted with 4 significant digits,
 * and that text is what the run receives, so a folder name is its value. */
static int parse_range(SweepAxis *a, const char *text, int logscale, char *err, size_t errlen) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text + 4);
    char *f[4] = {0};
    int nf = 0;
    for (char *p = buf; nf < 4; nf++) {
        f[nf] = p;
        char *c = strchr(p, ':');
        if (!c) {
            nf++;
            break;
        }
        *c = '\0';
        p = c + 1;
    }
    double lo, hi;
    long n;
    if (nf != 3 || parse_double(f[0], &lo) || parse_double(f[1], &hi) || parse_long(f[2], &n))
        FAIL("'%s': a range is %s:LO:HI:N with numbers LO, HI and a count N (%s)", text,
             logscale ? "log" : "lin", VALUES_HELP);
    if (n < 2 || n > 1000) FAIL("'%s': N = %ld points (accepted: 2 to 1000)", text, n);
    if (!(lo < hi)) FAIL("'%s': LO must be below HI", text);
    if (logscale && lo <= 0) FAIL("'%s': a log range needs LO > 0", text);
    for (long i = 0; i < n; i++) {
        double t = (double)i / (double)(n - 1);
        double v = logscale ? exp(log(lo) + t * (log(hi) - log(lo))) : lo + t * (hi - lo);
        if (i == 0) v = lo;
        if (i == n - 1) v = hi;
        char s[64];
        int k = snprintf(s, sizeof s, "%.4g", v);
        for (int j = 0; j < a->nvals; j++)
            if (!strcmp(a->vals[j], s))
                FAIL("'%s': values %d and %ld both read %s at 4 significant digits (use fewer "
                     "points)", text, j + 1, i + 1, s);
        axis_add(a, s, (size_t)k);
    }
    a->numeric = 1;
    return 0;
}

int sweep_parse_values(SweepAxis *a, const char *text, char *err, size_t errlen) {
    if (!*text) FAIL("an empty list of values (%s)", VALUES_HELP);
    if (!strncmp(text, "log:", 4)) return parse_range(a, text, 1, err, errlen);
    if (!strncmp(text, "lin:", 4)) return parse_range(a, text, 0, err, errlen);
    /* a,b,c with {...} protecting commas */
    const char *p = text;
    while (1) {
        const char *start = p, *end;
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close) FAIL("'%s': '{' without a closing '}' (%s)", text, VALUES_HELP);
            start = p + 1;
            end = close;
            p = close + 1;
            if (*p && *p != ',') FAIL("'%s': '}' must end a value (%s)", text, VALUES_HELP);
        } else {
            end = p + strcspn(p, ",");
            p = end;
        }
        if (end == start) FAIL("'%s': an empty value in the list (%s)", text, VALUES_HELP);
        for (int j = 0; j < a->nvals; j++)
            if (strlen(a->vals[j]) == (size_t)(end - start) &&
                !strncmp(a->vals[j], start, (size_t)(end - start)))
                FAIL("'%s': value '%s' is listed twice", text, a->vals[j]);
        axis_add(a, start, (size_t)(end - start));
        if (!*p) break;
        p++; /* the comma */
        if (!*p) FAIL("'%s': a trailing comma (%s)", text, VALUES_HELP);
    }
    a->numeric = 1;
    for (int j = 0; j < a->nvals; j++) a->numeric &= isfinite(a->num[j]);
    return 0;
}

static int parse_seeds(SweepSpec *s, const char *text, char *err, size_t errlen) {
    const char *help = "accepted: FIRST:LAST (inclusive) or a list 1,2,7 of integers";
    if (s->nseeds) FAIL("--seeds given twice");
    const char *colon = strchr(text, ':');
    if (colon) {
        char a[64], b[64];
        snprintf(a, sizeof a, "%.*s", (int)(colon - text), text);
        snprintf(b, sizeof b, "%s", colon + 1);
        long lo, hi;
        if (parse_long(a, &lo) || parse_long(b, &hi) || lo > hi || lo < 0)
            FAIL("--seeds '%s': not a range of seeds (%s)", text, help);
        if (hi - lo + 1 > SWEEP_MAX_SEEDS) FAIL("--seeds '%s': at most %d seeds", text, SWEEP_MAX_SEEDS);
        for (long v = lo; v <= hi; v++) s->seeds[s->nseeds++] = v;
        return 0;
    }
    SweepAxis tmp = {0};
    if (sweep_parse_values(&tmp, text, err, errlen) != 0) {
        sweep_axis_free(&tmp);
        FAIL("--seeds '%s': not a list of seeds (%s)", text, help);
    }
    for (int i = 0; i < tmp.nvals; i++) {
        long v;
        if (parse_long(tmp.vals[i], &v) || v < 0 || s->nseeds == SWEEP_MAX_SEEDS) {
            fail(err, errlen, "--seeds '%s': '%s' is not a seed (%s; at most %d)", text,
                 tmp.vals[i], help, SWEEP_MAX_SEEDS);
            sweep_axis_free(&tmp);
            return -1;
        }
        s->seeds[s->nseeds++] = v;
    }
    sweep_axis_free(&tmp);
    return 0;
}

/* Keys the sweep itself sets for every run. */
static int reserved_key(const char *kv) {
    return !strncmp(kv, "run.seed=", 9) || !strncmp(kv, "run.name=", 9) ||
           !strncmp(kv, "run.out_dir=", 12) || !strcmp(kv, "run.seed") ||
           !strcmp(kv, "run.name") || !strcmp(kv, "run.out_dir");
}

static size_t key_len(const char *kv) {
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

static int same_key(const char *a, const char *b) {
    size_t la = key_len(a), lb = key_len(b);
    return la == lb && !strncmp(a, b, la);
}

/* Read a .sweep file into whitespace-separated tokens. */
static int read_sweep_file(SweepSpec *s, const char *path, char ***toks, const char ***where, int *n,
                           int *cap, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) FAIL("%s: cannot read the sweep file: %s", path, strerror(errno));
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            fclose(f);
            FAIL("%s:%d: line longer than %zu characters", path, lineno, sizeof line - 2);
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        for (char *p = strtok(line, " \t\r\n"); p; p = strtok(NULL, " \t\r\n")) {
            if (*n == *cap) {
                *cap = *cap ? 2 * *cap : 64;
                *toks = realloc(*toks, (size_t)*cap * sizeof **toks);
                *where = realloc(*where, (size_t)*cap * sizeof **where);
                if (!*toks || !*where) die("out of memory");
            }
            (*toks)[*n] = xstrdup(p);
            char w[600];
            snprintf(w, sizeof w, "%s:%d", path, lineno);
            (*where)[*n] = xstrdup(w);
            (*n)++;
        }
    }
    fclose(f);
    (void)s;
    return 0;
}

static void base_name(const char *path, char *out, size_t len, const char *ext) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t nb = strlen(b) < len ? strlen(b) : len - 1;
    memcpy(out, b, nb);
    out[nb] = '\0';
    size_t lo = nb, le = strlen(ext);
    if (lo > le && !strcmp(out + lo - le, ext)) out[lo - le] = '\0';
}

static int ends_with(const char *s, const char *ext) {
    size_t ls = strlen(s), le = strlen(ext);
    return ls > le && !strcmp(s + ls - le, ext);
}

/* Folder-safe text: [A-Za-z0-9._=+-] kept, anything else '_'. */
static void safe_append(char *dst, size_t cap, const char *src) {
    size_t k = strlen(dst);
    for (; *src && k + 1 < cap; src++)
        dst[k++] = (isalnum((unsigned char)*src) || strchr("._=+-", *src)) ? *src : '_';
    dst[k] = '\0';
}

/* The short name of an axis key in folder names: the part after the section,
 * unless another swept key of the sweep has the same short name. */
static const char *short_key(const SweepSpec *s, const char *key) {
    const char *dot = strchr(key, '.');
    const char *sh = dot ? dot + 1 : key;
    int clash = 0;
    for (int g = -1; g < s->ngroups; g++) {
        const SweepAxis *ax = g < 0 ? s->axes : s->groups[g].axes;
        int na = g < 0 ? s->naxes : s->groups[g].naxes;
        for (int i = 0; i < na; i++) {
            const char *d2 = strchr(ax[i].key, '.');
            if (strcmp(ax[i].key, key) && !strcmp(d2 ? d2 + 1 : ax[i].key, sh)) clash = 1;
        }
    }
    return clash ? key : sh;
}

static int build_runs(SweepSpec *s, char *err, size_t errlen) {
    long total = 0;
    for (int g = 0; g < s->ngroups; g++) {
        long n = s->nseeds ? s->nseeds : 1;
        for (int i = 0; i < s->naxes; i++) n *= s->axes[i].nvals;
        for (int i = 0; i < s->groups[g].naxes; i++) n *= s->groups[g].axes[i].nvals;
        total += n;
        if (total > SWEEP_MAX_RUNS) FAIL("the sweep has more than %d runs", SWEEP_MAX_RUNS);
    }
    s->runs = xcalloc((size_t)total, sizeof *s->runs);
    for (int g = 0; g < s->ngroups; g++) {
        const SweepGroup *gr = &s->groups[g];
        const SweepAxis *ax[2 * SWEEP_MAX_AXES];
        int na = 0;
        for (int i = 0; i < s->naxes; i++) ax[na++] = &s->axes[i];
        for (int i = 0; i < gr->naxes; i++) ax[na++] = &gr->axes[i];
        int idx[2 * SWEEP_MAX_AXES + 1] = {0};
        int nseed = s->nseeds ? s->nseeds : 1;
        while (1) {
            for (int k = 0; k < nseed; k++) {
                SweepRun *r = &s->runs[s->nruns++];
                r->group = g;
                r->naxes = na;
                r->seed = s->nseeds ? s->seeds[k] : -1;
                r->diverged_step = -1;
                r->name[0] = '\0';
                if (gr->label[0]) safe_append(r->name, sizeof r->name, gr->label);
                for (int i = 0; i < na; i++) {
                    r->axis[i] = ax[i];
                    r->val[i] = ax[i]->vals[idx[i]];
                    if (r->name[0]) safe_append(r->name, sizeof r->name, "-");
                    safe_append(r->name, sizeof r->name, short_key(s, ax[i]->key));
                    safe_append(r->name, sizeof r->name, "=");
                    safe_append(r->name, sizeof r->name, r->val[i]);
                }
                if (s->nseeds) {
                    char sd[32];
                    snprintf(sd, sizeof sd, "%sseed%ld", r->name[0] ? "-" : "", r->seed);
                    safe_append(r->name, sizeof r->name, sd);
                }
                if (!r->name[0]) snprintf(r->name, sizeof r->name, "run");
            }
            int i = na - 1;
            while (i >= 0 && ++idx[i] == ax[i]->nvals) idx[i--] = 0;
            if (i < 0) break;
        }
    }
    /* folder names must be unique (two values that differ only in characters
     * a folder name cannot hold would collide) */
    for (int i = 0; i < s->nruns; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(s->runs[i].name, s->runs[j].name))
                FAIL("two runs would both write %s/%s (values that differ only in characters "
                     "other than letters, digits and ._=+-)", s->out_dir, s->runs[i].name);
    return 0;
}

static SweepAxis *new_axis(SweepSpec *s, SweepGroup *g, const char *kv, const char *where, char *err,
                           size_t errlen, int *rc) {
    *rc = -1;
    SweepAxis *arr = g ? g->axes : s->axes;
    int *n = g ? &g->naxes : &s->naxes;
    if (*n == SWEEP_MAX_AXES) {
        fail(err, errlen, "%s: at most %d swept keys per group", where, SWEEP_MAX_AXES);
        return NULL;
    }
    SweepAxis *a = &arr[(*n)++];
    memset(a, 0, sizeof *a);
    snprintf(a->key, sizeof a->key, "%.*s", (int)key_len(kv), kv);
    *rc = 0;
    return a;
}

int sweep_parse(SweepSpec *s, int argc, char **argv, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    snprintf(s->metric, sizeof s->metric, "val_loss");
    /* tokens: argv, with each FILE.sweep replaced by its tokens */
    char **toks = NULL;
    const char **where = NULL;
    int n = 0, cap = 0;
    char sweep_file[512] = "";
    int rc = 0;
    for (int i = 0; i < argc && rc == 0; i++) {
        if (argv[i][0] != '-' && ends_with(argv[i], ".sweep")) {
            if (!sweep_file[0]) snprintf(sweep_file, sizeof sweep_file, "%s", argv[i]);
            rc = read_sweep_file(s, argv[i], &toks, &where, &n, &cap, err, errlen);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            toks = realloc(toks, (size_t)cap * sizeof *toks);
            where = realloc(where, (size_t)cap * sizeof *where);
            if (!toks || !where) die("out of memory");
        }
        toks[n] = xstrdup(argv[i]);
        char w[64];
        snprintf(w, sizeof w, "argument %d after --sweep", i + 1);
        where[n++] = xstrdup(w);
    }
    s->tok = toks;
    s->ntok = n;
    SweepGroup *cur = NULL;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *t = toks[i], *w = where[i];
        const char *arg = i + 1 < n ? toks[i + 1] : NULL;
        if (!strncmp(t, "-j", 2) && t[2]) { /* -j2 as well as -j 2 */
            arg = t + 2;
            t = "-j";
            i--;
        }
        int takes = !strcmp(t, "--vary") || !strcmp(t, "--seeds") || !strcmp(t, "--group") ||
                    !strcmp(t, "--name") || !strcmp(t, "--x") || !strcmp(t, "-j");
        if (takes && !arg) {
            rc = fail(err, errlen, "%s: %s needs a value", w, t);
            break;
        }
        if (!strcmp(t, "--vary")) {
            i++;
            const char *eq = strchr(arg, '=');
            const char *dot = strchr(arg, '.');
            if (!eq || !dot || dot > eq || dot == arg || dot + 1 == eq) {
                rc = fail(err, errlen, "%s: --vary '%s': expected section.key=VALUES (%s)", w, arg,
                          VALUES_HELP);
                break;
            }
            if (reserved_key(arg)) {
                rc = fail(err, errlen, "%s: --vary '%s': the sweep sets run.seed, run.name and "
                          "run.out_dir itself (use --seeds and --name)", w, arg);
                break;
            }
            SweepAxis *a = new_axis(s, cur, arg, w, err, errlen, &rc);
            if (rc) break;
            char e2[512];
            if (sweep_parse_values(a, eq + 1, e2, sizeof e2) != 0) {
                rc = fail(err, errlen, "%s: --vary %s: %s", w, a->key, e2 + strlen("cliplab: error: "));
                break;
            }
        } else if (!strcmp(t, "--seeds")) {
            i++;
            char e2[512];
            if (parse_seeds(s, arg, e2, sizeof e2) != 0)
                rc = fail(err, errlen, "%s: %s", w, e2 + strlen("cliplab: error: "));
        } else if (!strcmp(t, "--group")) {
            i++;
            if (s->ngroups == SWEEP_MAX_GROUPS) {
                rc = fail(err, errlen, "%s: at most %d groups", w, SWEEP_MAX_GROUPS);
                break;
            }
            for (int g = 0; g < s->ngroups && rc == 0; g++)
                if (!strcmp(s->groups[g].label, arg))
                    rc = fail(err, errlen, "%s: --group %s given twice", w, arg);
            if (rc) break;
            if (strlen(arg) >= sizeof cur->label || !*arg) {
                rc = fail(err, errlen, "%s: --group '%s': a label of 1 to %zu characters", w, arg,
                          sizeof cur->label - 1);
                break;
            }
            cur = &s->groups[s->ngroups++];
            snprintf(cur->label, sizeof cur->label, "%s", arg);
        } else if (!strcmp(t, "--name")) {
            i++;
            if (!*arg || strchr(arg, '/') || !strcmp(arg, ".") || !strcmp(arg, "..")) {
                rc = fail(err, errlen, "%s: --name '%s': a folder name under runs/ (no '/')", w, arg);
                break;
            }
            snprintf(s->name, sizeof s->name, "%s", arg);
        } else if (!strcmp(t, "--x")) {
            i++;
            snprintf(s->xkey, sizeof s->xkey, "%s", arg);
        } else if (!strcmp(t, "-j")) {
            i++;
            long j;
            if (parse_long(arg, &j) || j < 1 || j > 1024) {
                rc = fail(err, errlen, "%s: -j '%s': a number of workers from 1 to 1024", w, arg);
                break;
            }
            s->jobs = (int)j;
        } else if (!strcmp(t, "--map")) {
            s->map = 1;
        } else if (!strcmp(t, "--mark-norm-rule")) {
            s->mark_norm_rule = 1;
        } else if (t[0] == '-') {
            rc = fail(err, errlen, "%s: unknown sweep option '%s' (accepted: --vary, --seeds, "
                      "--group, --name, --x, -j, --map, --mark-norm-rule)", w, t);
        } else if (strchr(t, '=')) {
            if (reserved_key(t)) {
                rc = fail(err, errlen, "%s: '%s': the sweep sets run.seed, run.name and run.out_dir "
                          "itself (use --seeds and --name)", w, t);
                break;
            }
            const char **sets = cur ? cur->sets : s->sets;
            int *ns = cur ? &cur->nsets : &s->nsets;
            if (*ns == SWEEP_MAX_ARGS) {
                rc = fail(err, errlen, "%s: too many overrides", w);
                break;
            }
            sets[(*ns)++] = t;
        } else {
            if (s->config[0]) {
                rc = fail(err, errlen, "%s: a second config '%s' (a sweep has one base config, "
                          "already %s)", w, t, s->config);
                break;
            }
            snprintf(s->config, sizeof s->config, "%s", t);
        }
    }
    for (int i = 0; i < n; i++) free((char *)where[i]);
    free(where);
    if (rc) return rc;
    if (!s->config[0]) FAIL("--sweep: no base config given (e.g. ./train --sweep configs/rnn_clip.ini "
                            "--vary clip.max_norm=log:0.01:100:9 --seeds 1:3)");
    if (!s->ngroups) s->ngroups = 1; /* the implicit group "" */
    /* a key is swept once per run and never also fixed in the same run */
    for (int g = 0; g < s->ngroups; g++) {
        const SweepGroup *gr = &s->groups[g];
        const char *keys[2 * SWEEP_MAX_AXES];
        int nk = 0;
        for (int i = 0; i < s->naxes; i++) keys[nk++] = s->axes[i].key;
        for (int i = 0; i < gr->naxes; i++) keys[nk++] = gr->axes[i].key;
        for (int i = 0; i < nk; i++) {
            for (int j = 0; j < i; j++)
                if (!strcmp(keys[i], keys[j])) FAIL("%s is swept twice%s%s", keys[i],
                                                    gr->label[0] ? " in group " : "", gr->label);
            for (int j = 0; j < s->nsets + gr->nsets; j++) {
                const char *set = j < s->nsets ? s->sets[j] : gr->sets[j - s->nsets];
                if (same_key(set, keys[i]))
                    FAIL("%s is both swept (--vary) and set ('%s')%s%s", keys[i], set,
                         gr->label[0] ? " in group " : "", gr->label);
            }
        }
    }
    if (s->xkey[0]) {
        int found = 0;
        for (int g = -1; g < s->ngroups; g++) {
            const SweepAxis *ax = g < 0 ? s->axes : s->groups[g].axes;
            int na = g < 0 ? s->naxes : s->groups[g].naxes;
            for (int i = 0; i < na; i++) found |= !strcmp(ax[i].key, s->xkey) && ax[i].numeric;
        }
        if (!found) FAIL("--x %s: not a numeric swept key of this sweep", s->xkey);
    }
    if (!s->name[0]) {
        if (sweep_file[0]) {
            base_name(sweep_file, s->name, sizeof s->name, ".sweep");
        } else {
            char b[100];
            base_name(s->config, b, sizeof b, ".ini");
            snprintf(s->name, sizeof s->name, "%.100s_sweep", b);
        }
    }
    snprintf(s->out_dir, sizeof s->out_dir, "runs/%s", s->name);
    return build_runs(s, err, errlen);
}

int sweep_run_args(const SweepSpec *s, const SweepRun *r, char **out, char *buf, size_t buflen) {
    int n = 0;
    size_t used = 0;
    const SweepGroup *g = &s->groups[r->group];
#define PUT(...)                                                                              \
    do {                                                                                      \
        int k_ = snprintf(buf + used, buflen - used, __VA_ARGS__);                            \
        ASSERT(k_ >= 0 && used + (size_t)k_ + 1 < buflen, "run arguments too long");         \
        out[n++] = buf + used;                                                                \
        used += (size_t)k_ + 1;                                                               \
    } while (0)
    for (int i = 0; i < s->nsets; i++) PUT("%s", s->sets[i]);
    for (int i = 0; i < g->nsets; i++) PUT("%s", g->sets[i]);
    for (int i = 0; i < r->naxes; i++) PUT("%s=%s", r->axis[i]->key, r->val[i]);
    if (r->seed >= 0) PUT("run.seed=%ld", r->seed);
    PUT("run.name=%s", r->name);
    PUT("run.out_dir=%s/%s", s->out_dir, r->name);
#undef PUT
    return n;
}

void sweep_free(SweepSpec *s) {
    for (int i = 0; i < s->naxes; i++) sweep_axis_free(&s->axes[i]);
    for (int g = 0; g < s->ngroups; g++)
        for (int i = 0; i < s->groups[g].naxes; i++) sweep_axis_free(&s->groups[g].axes[i]);
    for (int i = 0; i < s->ntok; i++) free(s->tok[i]);
    free(s->tok);
    free(s->runs);
    memset(s, 0, sizeof *s);
}
