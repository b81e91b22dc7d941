/* config.c: INI files (inih) -> typed, validated structs; see config.h.
 *
 * inih does all the lexing. This build of it (Debian libinih r55, defaults)
 * does not pass line numbers to the handler, does not report section headers,
 * keeps parsing after an error and returns the line of the FIRST error, cuts
 * lines at its buffer size (ini_max_line, 200) and treats an indented line
 * after a key as a continuation of that key's value. So:
 *
 *   - The file is read into memory and fed to ini_parse_stream() by a reader
 *     that hands over one physical line per call and counts them; while the
 *     handler runs, that count is the handler's line. A line longer than
 *     inih's buffer is cut by the reader (never split) so counts stay
 *     physical; a cut comment is harmless, a cut key line is an error.
 *   - The first error the handler (or reader) finds is kept with its line; the
 *     line ini_parse_stream() returns is its first error of any kind. If that
 *     line is earlier, the first error was a syntax error only inih saw.
 *   - The reader asks inih itself whether a line is a [section] header, by
 *     parsing that one line after a sentinel header (header_probe), so unknown
 *     or empty sections are reported at their own line and cfg_section_line()
 *     knows where each section began.
 *   - Multi-line values are an error (a config value is one line), detected by
 *     mirroring inih's rule: an indented line after a key.
 *   - "\n", "\r\n" and a bare "\r" each end a line (inih alone would read a
 *     bare-CR file as one line); the ending is not part of the length limit.
 *   - Text after a section header other than a "; comment" is an error (inih
 *     would ignore it: "[train] steps = 7", "[train]]").
 *
 * Values are parsed completely (strtol/strtod end pointer) and range-checked.
 * For INT/LONG/DOUBLE/NORM keys, min == max == 0 means "no range beyond the
 * type's own" (NORM stays > 0, DOUBLE stays finite). The setter also keeps
 * strings writable (one INI line that inih reads back unchanged), so cfg_write
 * always round-trips. Nothing here prints or exits on a user error. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"

#define LIST_MAX 1024 /* room for "accepted: a, b, c" lists */
#define CFG_FILE_MAX (1 << 20) /* bytes: a config is a page of text */

/* ------------------------------------------------------------ messages */

static CfgStatus fail(char *err, size_t errlen, CfgStatus st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static CfgStatus fail(char *err, size_t errlen, CfgStatus st, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* Append s to the string in buf (truncating). */
static void append(char *buf, size_t len, const char *s) {
    size_t used = strlen(buf);
    if (used + 1 < len) snprintf(buf + used, len - used, "%s", s);
}

static void list_keys(const CfgSection *s, char *buf, size_t len) {
    buf[0] = '\0';
    for (int j = 0; j < s->nkeys; j++) {
        if (j) append(buf, len, ", ");
        append(buf, len, s->keys[j].name);
    }
}

static void list_sections(const Config *cfg, char *buf, size_t len) {
    buf[0] = '\0';
    for (int i = 0; i < cfg->nsections; i++) {
        append(buf, len, i ? ", [" : "[");
        append(buf, len, cfg->sections[i]->name);
        append(buf, len, "]");
    }
}

/* ------------------------------------------------------------ tables */

static int find_section(const Config *cfg, const char *name) {
    for (int i = 0; i < cfg->nsections; i++)
        if (strcmp(cfg->sections[i]->name, name) == 0) return i;
    return -1;
}

int cfg_find_section(const Config *cfg, const char *name) { return find_section(cfg, name); }

void cfg_renamed(Config *cfg, const char *name, const char *const *pairs) {
    int si = find_section(cfg, name);
    ASSERT(si >= 0, "cfg_renamed: no section [%s]", name);
    cfg->renamed[si] = pairs;
}

static int find_key(const CfgSection *s, const char *name) {
    for (int j = 0; j < s->nkeys; j++)
        if (strcmp(s->keys[j].name, name) == 0) return j;
    return -1;
}

/* Index of (section si, key 0) in the per-key arrays (Loader.key_line). */
static int key_base(const Config *cfg, int si) {
    int base = 0;
    for (int i = 0; i < si; i++) base += cfg->sections[i]->nkeys;
    return base;
}

static int bounded(const CfgKey *k) { return !(k->min == 0 && k->max == 0); }

/* Longest string value whose "key = value" line inih reads back whole (its
 * buffer must hold the line plus "\r\n\0", ini.h). */
static size_t string_max(const CfgKey *k) {
    long fit = (long)INI_MAX_LINE - 3 - (long)strlen(k->name) - 3;
    long cap = CFG_STR_MAX - 1;
    return (size_t)(fit < 0 ? 0 : fit < cap ? fit : cap);
}

/* ------------------------------------------------------------ numbers as text */

/* Shortest "%.{p}g" that strtod reads back to exactly v; plain digits rather
 * than an exponent for integral values below 1e15 (100, not 1e+02). */
static void fmt_double(double v, char *buf, size_t len) {
    if (isnan(v)) { snprintf(buf, len, "nan"); return; }
    if (isinf(v)) { snprintf(buf, len, v > 0 ? "inf" : "-inf"); return; }
    char tmp[48], e[48];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, v);
        if (strtod(tmp, NULL) == v) break;
    }
    snprintf(e, sizeof e, "%.*e", p - 1, v);
    int x = atoi(strchr(e, 'e') + 1);
    snprintf(buf, len, "%.*g", (x >= p && x < 15) ? x + 1 : p, v);
}

/* What a key accepts, for messages, help and comments. */
static void describe(const CfgKey *k, char *buf, size_t len) {
    char lo[48], hi[48];
    fmt_double(k->min, lo, sizeof lo);
    fmt_double(k->max, hi, sizeof hi);
    switch (k->type) {
    case CFG_INT:
    case CFG_LONG:
        if (bounded(k)) snprintf(buf, len, "integer from %.0f to %.0f", k->min, k->max);
        else if (k->type == CFG_INT) snprintf(buf, len, "integer from %d to %d", INT_MIN, INT_MAX);
        else snprintf(buf, len, "integer from %ld to %ld", LONG_MIN, LONG_MAX);
        break;
    case CFG_DOUBLE:
        if (bounded(k)) snprintf(buf, len, "finite number from %s to %s", lo, hi);
        else snprintf(buf, len, "finite number");
        if (k->choices) append(buf, len, ", or "), append(buf, len, k->choices[0]);
        break;
    case CFG_NORM:
        if (bounded(k) && k->min > 0) snprintf(buf, len, "number from %s to %s, or inf", lo, hi);
        else if (bounded(k)) snprintf(buf, len, "number above 0, at most %s, or inf", hi);
        else snprintf(buf, len, "positive number, or inf");
        break;
    case CFG_BOOL: snprintf(buf, len, "true/false, yes/no, on/off, 1/0"); break;
    case CFG_STRING:
        snprintf(buf, len, "text on one line, at most %zu characters", string_max(k));
        break;
    case CFG_ENUM:
        snprintf(buf, len, "one of: ");
        for (int i = 0; k->choices[i]; i++) {
            if (i) append(buf, len, ", ");
            append(buf, len, k->choices[i]);
        }
        break;
    }
}

/* ------------------------------------------------------------ parsers
 * Each returns CFG_OK and the value, or a status and the problem's text. */

static CfgStatus parse_long(const CfgKey *k, const char *v, long lo, long hi, long *out,
                            const char **problem) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    *problem = "not an integer";
    if (end == v || *end || isspace((unsigned char)v[0])) return CFG_ERR_VALUE;
    *problem = "out of range";
    if (errno == ERANGE || x < lo || x > hi) return CFG_ERR_RANGE;
    if (bounded(k) && ((double)x < k->min || (double)x > k->max)) return CFG_ERR_RANGE;
    *out = x;
    return CFG_OK;
}

/* A finite double, all of v consumed. */
static CfgStatus parse_finite(const char *v, double *out, const char **problem) {
    char *end;
    double x = strtod(v, &end);
    *problem = "not a number";
    if (end == v || *end || isspace((unsigned char)v[0])) return CFG_ERR_VALUE;
    *problem = "not a finite number";
    if (!isfinite(x)) return CFG_ERR_VALUE;
    *out = x;
    return CFG_OK;
}

static CfgStatus parse_double(const CfgKey *k, const char *v, double *out, const char **problem) {
    if (k->choices && strcmp(v, k->choices[0]) == 0) {
        *out = 0.0;
        return CFG_OK;
    }
    double x;
    CfgStatus st = parse_finite(v, &x, problem);
    if (st != CFG_OK) return st;
    *problem = "out of range";
    if (bounded(k) && (x < k->min || x > k->max)) return CFG_ERR_RANGE;
    *out = x;
    return CFG_OK;
}

/* A p-norm order: p > 0 within [min, max], or "inf" (any case) for the max-norm. */
static CfgStatus parse_norm(const CfgKey *k, const char *v, double *out, const char **problem) {
    if (strcasecmp(v, "inf") == 0) {
        *out = INFINITY;
        return CFG_OK;
    }
    double x;
    CfgStatus st = parse_finite(v, &x, problem);
    if (st != CFG_OK) {
        *problem = "not a number or inf";
        return st;
    }
    *problem = "out of range";
    if (!(x > 0) || (bounded(k) && (x < k->min || x > k->max))) return CFG_ERR_RANGE;
    *out = x;
    return CFG_OK;
}

static CfgStatus parse_bool(const char *v, int *out, const char **problem) {
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) { *out = 1; return CFG_OK; }
        if (strcasecmp(v, no[i]) == 0) { *out = 0; return CFG_OK; }
    }
    *problem = "not a boolean";
    return CFG_ERR_VALUE;
}

static CfgStatus parse_enum(const CfgKey *k, const char *v, int *out, const char **problem) {
    for (int i = 0; k->choices[i]; i++)
        if (strcmp(v, k->choices[i]) == 0) { *out = i; return CFG_OK; }
    *problem = "not one of the choices";
    return CFG_ERR_RANGE;
}

/* Strings must survive cfg_write + inih: inih strips surrounding whitespace,
 * ends the value at a ';' that follows whitespace, and has no escapes. */
static CfgStatus check_string(const CfgKey *k, const char *v, const char **problem) {
    size_t n = strlen(v);
    *problem = "too long";
    if (n > string_max(k)) return CFG_ERR_RANGE;
    *problem = "cannot be written back as one INI value (control character, "
               "leading/trailing space, or ';' at the start or after a space)";
    if (n && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1]) || v[0] == ';'))
        return CFG_ERR_VALUE;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f || (c == ';' && i > 0 && isspace((unsigned char)v[i - 1])))
            return CFG_ERR_VALUE;
    }
    return CFG_OK;
}

/* Parse value for key k and store it at field; the field is untouched on error. */
static CfgStatus parse_into(const CfgKey *k, const char *v, char *field, const char **problem) {
    long l = 0;
    double d = 0;
    int i = 0;
    CfgStatus st = CFG_OK;
    switch (k->type) {
    case CFG_INT:
        st = parse_long(k, v, INT_MIN, INT_MAX, &l, problem);
        if (st == CFG_OK) *(int *)field = (int)l;
        break;
    case CFG_LONG:
        st = parse_long(k, v, LONG_MIN, LONG_MAX, &l, problem);
        if (st == CFG_OK) *(long *)field = l;
        break;
    case CFG_DOUBLE:
    case CFG_NORM:
        st = k->type == CFG_DOUBLE ? parse_double(k, v, &d, problem) : parse_norm(k, v, &d, problem);
        if (st == CFG_OK) *(double *)field = d;
        break;
    case CFG_BOOL:
    case CFG_ENUM:
        st = k->type == CFG_BOOL ? parse_bool(v, &i, problem) : parse_enum(k, v, &i, problem);
        if (st == CFG_OK) *(int *)field = i;
        break;
    case CFG_STRING:
        st = check_string(k, v, problem);
        if (st == CFG_OK) strncpy(field, v, CFG_STR_MAX); /* zero-fills the rest */
        break;
    }
    return st;
}

/* The one setter: defaults, file lines and overrides all come through here. */
static CfgStatus set_key(Config *cfg, int si, int ki, const char *value, const char *where,
                         char *err, size_t errlen) {
    const CfgSection *s = cfg->sections[si];
    const CfgKey *k = &s->keys[ki];
    const char *problem = "";
    CfgStatus st = parse_into(k, value, (char *)cfg->structs[si] + k->offset, &problem);
    if (st == CFG_OK) return CFG_OK;
    char accepted[LIST_MAX];
    describe(k, accepted, sizeof accepted);
    return fail(err, errlen, st, "%s: [%s] %s = '%s': %s (accepted: %s)", where, s->name, k->name,
                value, problem, accepted);
}

/* Edit distance (insertions, deletions, substitutions, adjacent swaps). */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63) return 64;
    int d[64][64];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

const char *cfg_closest(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int bestd = 1 << 30, limit = (int)strlen(name) / 3;
    if (limit < 1) limit = 1;
    for (int i = 0; i < n; i++) {
        if (!cands[i]) continue;
        int d = edit_distance(name, cands[i]);
        if (d > limit && strlen(name) >= 3 && !strncmp(cands[i], name, strlen(name))) d = limit;
        if (d <= limit && d < bestd) best = cands[i], bestd = d;
    }
    return best;
}

/* " did you mean 'x'?" for an unknown section name (or ""). */
static void suggest_section(const Config *cfg, const char *name, char *buf, size_t len) {
    const char *names[CFG_MAX_SECTIONS];
    for (int i = 0; i < cfg->nsections; i++) names[i] = cfg->sections[i]->name;
    const char *c = cfg_closest(name, names, cfg->nsections);
    if (c) snprintf(buf, len, "; did you mean [%s]?", c);
    else buf[0] = '\0';
}

/* The error for a key the section does not have: renamed, or misspelt. */
static CfgStatus unknown_key(const Config *cfg, int si, const char *where, const char *key,
                             const char *value, char *err, size_t errlen) {
    const CfgSection *s = cfg->sections[si];
    const char *const *renamed = cfg->renamed[si];
    if (!renamed && cfg->groups[si]) renamed = cfg->renamed[cfg->groups[si]->base];
    char list[LIST_MAX], hint[CFG_NAME_MAX + 32] = "";
    for (int i = 0; renamed && renamed[i]; i += 2)
        if (!strcmp(renamed[i], key))
            return fail(err, errlen, CFG_ERR_KEY, "%s: [%s] %s = '%s': this key was renamed to %s "
                        "(accepted: %s = %s in [%s], or %s.%s=%s on the command line)", where, s->name,
                        key, value, renamed[i + 1], renamed[i + 1], value, s->name, s->name,
                        renamed[i + 1], value);
    const char *names[CFG_MAX_KEYS];
    for (int j = 0; j < s->nkeys; j++) names[j] = s->keys[j].name;
    const char *c = cfg_closest(key, names, s->nkeys);
    if (c) snprintf(hint, sizeof hint, "; did you mean %s?", c);
    list_keys(s, list, sizeof list);
    return fail(err, errlen, CFG_ERR_KEY, "%s: [%s] %s = '%s': unknown key%s (accepted: %s)", where,
                s->name, key, value, hint, list);
}

CfgStatus cfg_set(Config *cfg, const char *section, const char *key, const char *value,
                  const char *where, char *err, size_t errlen) {
    char list[LIST_MAX], hint[CFG_NAME_MAX + 32];
    if (!where) where = "";
    int si = find_section(cfg, section);
    if (si < 0) {
        list_sections(cfg, list, sizeof list);
        suggest_section(cfg, section, hint, sizeof hint);
        return fail(err, errlen, CFG_ERR_SECTION, "%s: [%s] %s = '%s': unknown section%s (accepted: %s)",
                    where, section, key, value, hint, list);
    }
    int ki = find_key(cfg->sections[si], key);
    if (ki < 0) return unknown_key(cfg, si, where, key, value, err, errlen);
    CfgStatus st = set_key(cfg, si, ki, value, where, err, errlen);
    if (st == CFG_OK) cfg->set[si][ki] = 1, cfg->touched[si] = 1;
    return st;
}

/* ------------------------------------------------------------ init / free */

static void check_table(const CfgSection *s) {
    ASSERT(s && s->name && s->name[0] && !strpbrk(s->name, ".[]=: \t\n"), "bad section name");
    ASSERT(!s->help || !strchr(s->help, '\n'), "[%s]: help must be one line", s->name);
    ASSERT(s->nkeys <= CFG_MAX_KEYS, "[%s]: %d keys (at most %d)", s->name, s->nkeys, CFG_MAX_KEYS);
    for (int j = 0; j < s->nkeys; j++) {
        const CfgKey *k = &s->keys[j];
        ASSERT(k->name && k->name[0] && !strpbrk(k->name, "=:;#[] \t\n"), "[%s]: bad key name", s->name);
        ASSERT(find_key(s, k->name) == j, "[%s] %s: key listed twice", s->name, k->name);
        ASSERT(k->def, "[%s] %s: no default", s->name, k->name);
        ASSERT(k->type != CFG_ENUM || (k->choices && k->choices[0]), "[%s] %s: no choices",
               s->name, k->name);
        ASSERT(k->min <= k->max, "[%s] %s: min > max", s->name, k->name);
        ASSERT(k->type != CFG_DOUBLE || !k->choices || k->min > 0 || k->max < 0,
               "[%s] %s: 0 stands for the word '%s', so it must lie outside the range", s->name,
               k->name, k->choices[0]);
        ASSERT(!k->help || !strchr(k->help, '\n'), "[%s] %s: help must be one line", s->name, k->name);
    }
}

void cfg_init(Config *cfg, const CfgSection *const *sections, void *const *structs, int n) {
    ASSERT(n >= 0 && n <= CFG_MAX_SECTIONS, "%d sections (at most %d)", n, CFG_MAX_SECTIONS);
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < n; i++) {
        check_table(sections[i]);
        ASSERT(structs[i], "[%s]: no struct to fill", sections[i]->name);
        ASSERT(find_section(cfg, sections[i]->name) < 0, "[%s] registered twice", sections[i]->name);
        cfg->sections[i] = sections[i];
        cfg->structs[i] = structs[i];
        cfg->nsections = i + 1;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < sections[i]->nkeys; j++) {
            char err[LIST_MAX + 256];
            CfgStatus st = set_key(cfg, i, j, sections[i]->keys[j].def, "default", err, sizeof err);
            ASSERT(st == CFG_OK, "bad default in the table: %s", err);
        }
}

int cfg_add_group(Config *cfg, const char *base, const char *group, void *structp) {
    int bi = find_section(cfg, base);
    ASSERT(bi >= 0 && !cfg->groups[bi], "group section of unknown or group base [%s]", base);
    ASSERT(group[0] && !strpbrk(group, ".[]=:; \t\n"), "bad group name '%s'", group);
    ASSERT(cfg->nsections < CFG_MAX_SECTIONS, "too many sections (at most %d)", CFG_MAX_SECTIONS);
    CfgGroupSection *g = xcalloc(1, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s.%s", base, group);
    ASSERT(find_section(cfg, g->name) < 0, "[%s] registered twice", g->name);
    g->sec = *cfg->sections[bi];
    g->sec.name = g->name;
    g->base = bi;
    int i = cfg->nsections++;
    cfg->sections[i] = &g->sec;
    cfg->structs[i] = structp;
    cfg->groups[i] = g;
    for (int j = 0; j < g->sec.nkeys; j++) { /* the base's defaults until resolved */
        char err[LIST_MAX + 256];
        CfgStatus st = set_key(cfg, i, j, g->sec.keys[j].def, "default", err, sizeof err);
        ASSERT(st == CFG_OK, "bad default in the table: %s", err);
    }
    return i;
}

static size_t field_size(const CfgKey *k) {
    switch (k->type) {
    case CFG_LONG: return sizeof(long);
    case CFG_DOUBLE:
    case CFG_NORM: return sizeof(double);
    case CFG_STRING: return CFG_STR_MAX;
    default: return sizeof(int);
    }
}

void cfg_resolve_groups(Config *cfg) {
    for (int i = 0; i < cfg->nsections; i++) {
        const CfgGroupSection *g = cfg->groups[i];
        if (!g) continue;
        for (int j = 0; j < g->sec.nkeys; j++) {
            const CfgKey *k = &g->sec.keys[j];
            if (cfg->set[i][j]) continue;
            memcpy((char *)cfg->structs[i] + k->offset, (const char *)cfg->structs[g->base] + k->offset,
                   field_size(k));
        }
    }
}

int cfg_warn_unused(const Config *cfg, FILE *f) {
    int n = 0;
    for (int i = 0; i < cfg->nsections; i++) {
        const CfgSection *s = cfg->sections[i];
        if (cfg->hidden[i] || !s->unused) continue;
        for (int j = 0; j < s->nkeys; j++) {
            if (!cfg->set[i][j]) continue;
            const char *why = s->unused(cfg->structs[i], &s->keys[j]);
            if (!why) continue;
            /* where the value came from: the file, or the override that set it last */
            char where[600], val[CFG_STR_MAX + 8];
            if (cfg->over_key[i][j]) {
                cfg_format_value(&s->keys[j], cfg->structs[i], val, sizeof val);
                snprintf(where, sizeof where, "command-line override %s.%s=%s", s->name,
                         s->keys[j].name, val);
            } else {
                snprintf(where, sizeof where, "%s", cfg->path);
            }
            fprintf(f, "cliplab: warning: %s: [%s] %s is set but this run does not read it (%s)\n",
                    where, s->name, s->keys[j].name, why);
            n++;
        }
    }
    return n;
}

void cfg_free(Config *cfg) {
    for (int i = 0; i < cfg->nsections; i++) free(cfg->groups[i]);
    memset(cfg->groups, 0, sizeof cfg->groups);
    cfg->nsections = 0;
}

int cfg_section_line(const Config *cfg, const char *name) {
    int si = find_section(cfg, name);
    return si < 0 ? 0 : cfg->present[si];
}

int cfg_section_override(const Config *cfg, const char *name) {
    int si = find_section(cfg, name);
    return si < 0 ? 0 : cfg->over_first[si];
}

/* ------------------------------------------------------------ loading a file */

typedef struct Loader {
    Config *cfg;
    const char *buf;      /* the whole file */
    size_t len, pos;
    int line;             /* physical line last handed to inih */
    const char *cur;      /* that line, without its line ending */
    size_t curlen;
    int cut;              /* it was longer than inih's buffer */
    int indented;         /* it starts with whitespace */
    int key_since_header; /* inih's prev_name is set: an indented line continues it */
    int *key_line;        /* per (section, key): the line that set it */
    CfgStatus status;     /* first error found by reader or handler, and its line */
    int err_line;
    char *err;
    size_t errlen;
} Loader;

static void load_fail(Loader *ld, CfgStatus st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void load_fail(Loader *ld, CfgStatus st, const char *fmt, ...) {
    if (ld->status != CFG_OK) return;
    ld->status = st;
    ld->err_line = ld->line;
    if (ld->err && ld->errlen) {
        int k = snprintf(ld->err, ld->errlen, "%s:%d: ", ld->cfg->path, ld->line);
        va_list ap;
        va_start(ap, fmt);
        if (k >= 0 && (size_t)k < ld->errlen) vsnprintf(ld->err + k, ld->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
}

#define PROBE_SECTION "cliplab probe"

static int probe_handler(void *user, const char *section, const char *name, const char *value) {
    (void)name, (void)value;
    snprintf((char *)user, 64, "%s", section); /* the last call is the probe key */
    return 1;
}

/* Is this line a [section] header? Ask inih: parse it after a sentinel header,
 * then a key; the key's section is the line's header name, or the sentinel. */
static int header_probe(const char *line, size_t n, char name[64]) {
    char text[INI_MAX_LINE + 64];
    if (n > INI_MAX_LINE) n = INI_MAX_LINE;
    snprintf(text, sizeof text, "[" PROBE_SECTION "]\n%.*s\nprobe=1\n", (int)n, line);
    snprintf(name, 64, PROBE_SECTION);
    ini_parse_string(text, probe_handler, name);
    return strcmp(name, PROBE_SECTION) != 0;
}

/* Called by the reader on each line before inih sees it. */
static void note_header(Loader *ld, const char *line, size_t n) {
    char name[64];
    if (ld->line == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3, n -= 3;
    if (!header_probe(line, n, name)) return;
    if (ld->indented && ld->key_since_header) return; /* a continuation: the handler reports it */
    ld->key_since_header = 0;
    /* inih takes the name up to the first ']' and ignores the rest of the line:
     * we accept only nothing or a "; comment" there ("[train] steps = 7" and
     * "[train]]" would otherwise lose what follows the header). */
    const char *rest = memchr(line, ']', n), *end = line + n;
    ASSERT(rest, "inih reported a header without ']'");
    for (rest++; rest < end && isspace((unsigned char)*rest);) rest++;
    if (rest < end && *rest != ';') {
        while (end > line && isspace((unsigned char)end[-1])) end--;
        load_fail(ld, CFG_ERR_SYNTAX, "'%.*s': text after the section header (accepted: [section] "
                  "alone on its line, or followed by a ; comment)", (int)(end - line), line);
        return;
    }
    int si = find_section(ld->cfg, name);
    if (si >= 0) {
        if (!ld->cfg->present[si]) ld->cfg->present[si] = ld->line;
        return;
    }
    char list[LIST_MAX], hint[CFG_NAME_MAX + 32];
    list_sections(ld->cfg, list, sizeof list);
    suggest_section(ld->cfg, name, hint, sizeof hint);
    load_fail(ld, CFG_ERR_SECTION, "[%s]: unknown section%s (accepted: %s)", name, hint, list);
}

/* One physical line at p (avail bytes): its length without the line ending,
 * and in *adv the bytes to skip to the next line. "\n", "\r\n" and a bare "\r"
 * all end a line, so no ending hides settings and none counts toward the
 * length limit. */
static size_t line_len(const char *p, size_t avail, size_t *adv) {
    size_t n = 0;
    while (n < avail && p[n] != '\n' && p[n] != '\r') n++;
    *adv = n;
    if (n < avail) *adv += (p[n] == '\r' && n + 1 < avail && p[n + 1] == '\n') ? 2 : 1;
    return n;
}

/* fgets-style reader for ini_parse_stream: one physical line per call, always
 * handed over ending in "\n", cut (not split) at inih's buffer size so inih's
 * line count stays physical. */
static char *load_reader(char *str, int num, void *stream) {
    Loader *ld = stream;
    if (ld->pos >= ld->len || num < 3) return NULL;
    const char *p = ld->buf + ld->pos;
    size_t adv, n = line_len(p, ld->len - ld->pos, &adv);
    ld->pos += adv;
    ld->line++;
    ld->cur = p, ld->curlen = n;
    ld->cut = n > (size_t)num - 3; /* the longest line a written config may hold (string_max) */
    ld->indented = n > 0 && isspace((unsigned char)p[0]);
    size_t k = ld->cut ? (size_t)num - 3 : n;
    memcpy(str, p, k);
    memcpy(str + k, "\n", 2);
    if (memchr(p, '\0', n))
        load_fail(ld, CFG_ERR_SYNTAX, "line contains a NUL byte (accepted: a text file)");
    else
        note_header(ld, str, k);
    return str;
}

static int load_handler(void *user, const char *section, const char *name, const char *value) {
    Loader *ld = user;
    Config *cfg = ld->cfg;
    int continuation = ld->indented && ld->key_since_header;
    if (!continuation) ld->key_since_header = name[0] != '\0';
    if (ld->status != CFG_OK) return 1; /* only the first error is reported */
    if (ld->cut) {
        load_fail(ld, CFG_ERR_SYNTAX, "[%s] %s: line longer than %d characters (accepted: "
                  "lines of at most %d characters)", section, name, INI_MAX_LINE - 3, INI_MAX_LINE - 3);
        return 0;
    }
    if (continuation) {
        load_fail(ld, CFG_ERR_SYNTAX, "'%.*s': indented line continues the value of [%s] %s, and "
                  "multi-line values are not supported (accepted: key = value, not indented)",
                  (int)ld->curlen, ld->cur, section, name);
        return 0;
    }
    char list[LIST_MAX];
    if (!section[0]) {
        list_sections(cfg, list, sizeof list);
        load_fail(ld, CFG_ERR_SECTION, "%s = '%s': key before any [section] header (accepted: "
                  "a section header first: %s)", name, value, list);
        return 0;
    }
    int si = find_section(cfg, section);
    int ki = si >= 0 ? find_key(cfg->sections[si], name) : -1;
    int idx = ki >= 0 ? key_base(cfg, si) + ki : -1;
    if (idx >= 0 && ld->key_line[idx]) {
        load_fail(ld, CFG_ERR_DUPLICATE, "[%s] %s = '%s': duplicate key, first set on line %d "
                  "(accepted: each key once per file)", section, name, value, ld->key_line[idx]);
        return 0;
    }
    char where[sizeof cfg->path + 16];
    snprintf(where, sizeof where, "%s:%d", cfg->path, ld->line);
    CfgStatus st = cfg_set(cfg, section, name, value, where, ld->err, ld->errlen);
    if (st != CFG_OK) {
        ld->status = st, ld->err_line = ld->line;
        return 0;
    }
    ld->key_line[idx] = ld->line;
    return 1;
}

/* The text of line `line` (1-based) of the file, without its newline. */
static const char *line_text(const Loader *ld, int line, size_t *n) {
    const char *p = ld->buf, *end = ld->buf + ld->len;
    size_t adv;
    for (int i = 1; i < line && p < end; i++) {
        line_len(p, (size_t)(end - p), &adv);
        p += adv;
    }
    *n = line_len(p, (size_t)(end - p), &adv);
    return p;
}

/* inih's own first error (a line that is neither [section] nor key = value). */
static void syntax_error(Loader *ld, int line) {
    size_t n;
    const char *t = line_text(ld, line, &n);
    const char *s = t;
    while (s < t + n && isspace((unsigned char)*s)) s++;
    ld->status = CFG_OK, ld->line = line;
    if (n > (size_t)INI_MAX_LINE - 3)
        load_fail(ld, CFG_ERR_SYNTAX, "line longer than %d characters (accepted: lines of at most "
                  "%d characters)", INI_MAX_LINE - 3, INI_MAX_LINE - 3);
    else if (s < t + n && *s == '[')
        load_fail(ld, CFG_ERR_SYNTAX, "'%.*s': section header without a closing ']' (accepted: "
                  "[section])", (int)n, t);
    else
        load_fail(ld, CFG_ERR_SYNTAX, "'%.*s': not a [section] header or a key = value line "
                  "(accepted: [section], key = value, ; comment)", (int)n, t);
}

static CfgStatus read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, errlen, CFG_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0, got;
    char *b = xmalloc(cap);
    while ((got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n > CFG_FILE_MAX) { /* /dev/zero, a mistyped data file */
            fclose(f);
            free(b);
            return fail(err, errlen, CFG_ERR_IO, "%s: more than %d bytes: not a config file "
                        "(accepted: an INI file of at most %d bytes)", path, CFG_FILE_MAX, CFG_FILE_MAX);
        }
        if (n == cap) b = realloc(b, cap *= 2);
        ASSERT(b, "out of memory reading %s", path);
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    if (bad) {
        free(b);
        return fail(err, errlen, CFG_ERR_IO, "cannot read %s: %s", path, strerror(e));
    }
    *buf = b, *len = n;
    return CFG_OK;
}

static int total_keys(const Config *cfg) { return key_base(cfg, cfg->nsections); }

CfgStatus cfg_load_buffer(Config *cfg, const char *name, const char *text, size_t len, char *err,
                          size_t errlen) {
    if (err && errlen) err[0] = '\0';
    snprintf(cfg->path, sizeof cfg->path, "%s", name);
    memset(cfg->present, 0, sizeof cfg->present);
    Loader ld = {.cfg = cfg, .err = err, .errlen = errlen, .buf = text, .len = len};
    ld.key_line = xcalloc((size_t)total_keys(cfg), sizeof *ld.key_line);
    int first = ini_parse_stream(load_reader, &ld, load_handler, &ld);
    if (first < 0)
        fail(err, errlen, ld.status = CFG_ERR_IO, "%s: inih failed (%d)", name, first);
    else if (first > 0 && (ld.status == CFG_OK || first < ld.err_line))
        syntax_error(&ld, first);
    free(ld.key_line);
    return ld.status;
}

CfgStatus cfg_load_file(Config *cfg, const char *path, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    char *buf = NULL;
    size_t len = 0;
    CfgStatus st = read_file(path, &buf, &len, err, errlen);
    if (st != CFG_OK) return st;
    st = cfg_load_buffer(cfg, path, buf, len, err, errlen);
    free(buf);
    return st;
}

/* ------------------------------------------------------------ overrides */

CfgStatus cfg_override(Config *cfg, const char *arg, char *err, size_t errlen) {
    const char *eq = strchr(arg, '='), *dot = NULL;
    for (const char *p = arg; eq && p < eq; p++)
        if (*p == '.') dot = p; /* the key has no '.': the section is all before the last one */
    if (!eq)
        return fail(err, errlen, CFG_ERR_OVERRIDE, "override '%s': no '=' (accepted: "
                    "section.key=value)", arg);
    if (!dot || dot > eq || dot == arg || dot + 1 == eq)
        return fail(err, errlen, CFG_ERR_OVERRIDE, "override '%s': no section.key before '=' "
                    "(accepted: section.key=value)", arg);
    size_t n = strlen(arg);
    char *copy = xmalloc(n + 1), where[64 + CFG_STR_MAX];
    memcpy(copy, arg, n + 1);
    copy[dot - arg] = '\0';
    copy[eq - arg] = '\0';
    snprintf(where, sizeof where, "override '%s'", arg);
    const char *section = copy, *key = copy + (dot - arg) + 1;
    int si = find_section(cfg, section);
    int ki = si >= 0 ? find_key(cfg->sections[si], key) : -1;
    CfgStatus st;
    if (ki >= 0 && cfg->over_key[si][ki])
        st = fail(err, errlen, CFG_ERR_DUPLICATE, "%s: [%s] %s is already set by override %d "
                  "(accepted: each key once on the command line)", where, section, key,
                  cfg->over_key[si][ki]);
    else
        st = cfg_set(cfg, section, key, copy + (eq - arg) + 1, where, err, errlen);
    if (st == CFG_OK) {
        cfg->over_key[si][ki] = (unsigned short)++cfg->noverrides;
        if (!cfg->over_first[si]) cfg->over_first[si] = cfg->noverrides;
    }
    free(copy);
    return st;
}

/* ------------------------------------------------------------ output */

void cfg_format_value(const CfgKey *k, const void *structp, char *buf, size_t len) {
    const char *field = (const char *)structp + k->offset;
    switch (k->type) {
    case CFG_INT: snprintf(buf, len, "%d", *(const int *)field); break;
    case CFG_LONG: snprintf(buf, len, "%ld", *(const long *)field); break;
    case CFG_DOUBLE:
        if (k->choices && *(const double *)field == 0.0) {
            snprintf(buf, len, "%s", k->choices[0]);
            break;
        }
        /* fall through */
    case CFG_NORM: fmt_double(*(const double *)field, buf, len); break;
    case CFG_BOOL: snprintf(buf, len, "%s", *(const int *)field ? "true" : "false"); break;
    case CFG_STRING: snprintf(buf, len, "%s", field); break;
    case CFG_ENUM: {
        int i = *(const int *)field, n = 0;
        while (k->choices[n]) n++;
        ASSERT(i >= 0 && i < n, "%s: enum index %d outside its %d choices", k->name, i, n);
        snprintf(buf, len, "%s", k->choices[i]);
        break;
    }
    }
}

int cfg_is_default(const CfgKey *k, const void *structp) {
    union { int i; long l; double d; char s[CFG_STR_MAX]; } tmp;
    memset(&tmp, 0, sizeof tmp);
    const char *problem = "";
    CfgKey at0 = *k;
    at0.offset = 0;
    if (parse_into(&at0, k->def, (char *)&tmp, &problem) != CFG_OK) return 0;
    char a[CFG_STR_MAX + 64], b[CFG_STR_MAX + 64];
    cfg_format_value(k, structp, a, sizeof a);
    cfg_format_value(&at0, &tmp, b, sizeof b);
    return !strcmp(a, b);
}

void cfg_hide_section(Config *cfg, const char *name) {
    for (int i = 0; i < cfg->nsections; i++)
        if (strcmp(cfg->sections[i]->name, name) == 0) cfg->hidden[i] = 1;
}

void cfg_write(const Config *cfg, FILE *f) {
    fprintf(f, "; cliplab effective configuration: every key with the value in effect\n");
    for (int i = 0; i < cfg->nsections; i++) {
        const CfgSection *s = cfg->sections[i];
        if (cfg->hidden[i]) continue;
        const CfgGroupSection *g = cfg->groups[i];
        int nset = 0;
        for (int j = 0; g && j < s->nkeys; j++) nset += cfg->set[i][j];
        if (g && !nset) continue; /* the group follows its base entirely */
        fprintf(f, "\n");
        if (g)
            fprintf(f, "; the keys in which this group differs from [%s]; the others follow it\n",
                    cfg->sections[g->base]->name);
        else if (s->help)
            fprintf(f, "; %s\n", s->help);
        fprintf(f, "[%s]\n", s->name);
        for (int j = 0; j < s->nkeys; j++) {
            if (g && !cfg->set[i][j]) continue;
            char value[CFG_STR_MAX + 64], accepted[LIST_MAX];
            cfg_format_value(&s->keys[j], cfg->structs[i], value, sizeof value);
            describe(&s->keys[j], accepted, sizeof accepted);
            const char *why = s->unused ? s->unused(cfg->structs[i], &s->keys[j]) : NULL;
            fprintf(f, "; %s (%s)\n", s->keys[j].help ? s->keys[j].help : "", accepted);
            if (why) /* commented out: loading the file back sets only what the run reads */
                fprintf(f, "; not read by this run (%s): %s = %s\n", why, s->keys[j].name, value);
            else
                fprintf(f, "%s = %s\n", s->keys[j].name, value);
        }
    }
}

static const char *type_name(CfgType t) {
    static const char *const names[] = {"int", "long", "double", "norm", "bool", "string", "enum"};
    return names[t];
}

/* Write text wrapped at width columns, each line indented by indent spaces. */
static void wrap(FILE *f, const char *text, int indent, int width) {
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        int room = width - indent, n = (int)strlen(p);
        if (n > room) { /* break at the last space that fits, else after the word */
            int cut = room;
            while (cut > 0 && p[cut] != ' ') cut--;
            if (cut == 0) while (p[cut] && p[cut] != ' ') cut++;
            n = cut;
        }
        fprintf(f, "%*s%.*s\n", indent, "", n, p);
        p += n;
    }
}

#define HELP_WIDTH 100

void cfg_print_help(const CfgSection *const *sections, int n, FILE *f) {
    for (int i = 0; i < n; i++) {
        const CfgSection *s = sections[i];
        char line[LIST_MAX + 256];
        snprintf(line, sizeof line, "[%s]%s%s", s->name, s->help ? "  " : "", s->help ? s->help : "");
        fprintf(f, "%s", i ? "\n" : "");
        wrap(f, line, 0, HELP_WIDTH);
        for (int j = 0; j < s->nkeys; j++) {
            const CfgKey *k = &s->keys[j];
            char accepted[LIST_MAX];
            const char *def = !k->def ? "-" : k->def[0] ? k->def : "''";
            describe(k, accepted, sizeof accepted);
            snprintf(line, sizeof line, "%s = %s  (%s; %s)", k->name, def, type_name(k->type), accepted);
            wrap(f, line, 2, HELP_WIDTH);
            if (k->help) wrap(f, k->help, 6, HELP_WIDTH);
        }
    }
}
