/* test_config.c: the INI loader (src/config.c) against small good and bad files
 * in tests/data/config/ (one failure each, in the style of inih's own tests),
 * plus the setter, overrides, value formatting and the cfg_write round trip.
 * Paths are relative to the repository root, where `make test` runs. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define DATA "tests/data/config/"

/* A test table with every CfgType. */
typedef struct {
    int steps;
    long seed;
    double lr;
    double p;
    int verbose;
    char name[CFG_STR_MAX];
    int optimizer;
} TTrain;

typedef struct {
    int width;
    double dropout;
} TModel;

static const char *const opt_choices[] = {"sgd", "adam", "rmsprop", NULL};

#define TK(n, t, f, d, lo, hi, ch, h) {n, t, offsetof(TTrain, f), d, lo, hi, ch, h}
static const CfgKey train_keys[] = {
    TK("steps", CFG_INT, steps, "100", 1, 1e7, NULL, "optimizer steps"),
    TK("seed", CFG_LONG, seed, "-7", -1e12, 1e12, NULL, "random seed"),
    TK("lr", CFG_DOUBLE, lr, "0.001", 0, 10, NULL, "learning rate"),
    TK("p", CFG_NORM, p, "2", 1e-6, 1e6, NULL, "order of the clipping norm"),
    TK("verbose", CFG_BOOL, verbose, "false", 0, 1, NULL, "print progress"),
    TK("name", CFG_STRING, name, "run", 0, 0, NULL, "run name"),
    TK("optimizer", CFG_ENUM, optimizer, "adam", 0, 0, opt_choices, "update rule"),
};
static const CfgSection train_sec = {"train", train_keys, 7, "training loop", NULL};

static const CfgKey model_keys[] = {
    {"width", CFG_INT, offsetof(TModel, width), "32", 1, 4096, NULL, "hidden units"},
    {"dropout", CFG_DOUBLE, offsetof(TModel, dropout), "0", 0, 0.9, NULL, "dropout rate"},
};
static const CfgSection model_sec = {"model", model_keys, 2, "the network", NULL};

typedef struct {
    Config cfg;
    TTrain tr;
    TModel mo;
    char err[1024];
} Fx;

static Fx fx, fx2;

static void fx_init(Fx *x) {
    memset(x, 0, sizeof *x);
    const CfgSection *secs[] = {&train_sec, &model_sec};
    void *structs[] = {&x->tr, &x->mo};
    cfg_init(&x->cfg, secs, structs, 2);
}

static void setup(void) {
    fx_init(&fx);
    fx_init(&fx2);
}

static void teardown(void) {
    cfg_free(&fx.cfg);
    cfg_free(&fx2.cfg);
}

TestSuite(config, .init = setup, .fini = teardown);

static CfgStatus load(const char *file) {
    return cfg_load_file(&fx.cfg, file, fx.err, sizeof fx.err);
}

/* Load DATA file: the status must be `want`, the message must start with
 * "<path>:<line>: " and mention `what` (the key, section or line text). */
static void expect_error(const char *file, CfgStatus want, int line, const char *what) {
    char path[256], loc[300];
    snprintf(path, sizeof path, DATA "%s", file);
    CfgStatus st = load(path);
    cr_assert_eq(st, want, "%s: status %d, want %d (%s)", file, st, want, fx.err);
    snprintf(loc, sizeof loc, "%s:%d: ", path, line);
    cr_assert(strncmp(fx.err, loc, strlen(loc)) == 0, "'%s' should start with '%s'", fx.err, loc);
    cr_assert(strstr(fx.err, what), "'%s' should mention '%s'", fx.err, what);
    cr_assert(strstr(fx.err, "(accepted: "), "'%s' should say what is accepted", fx.err);
}

static void expect_defaults_train(const TTrain *t) {
    cr_assert_eq(t->steps, 100);
    cr_assert_eq(t->seed, -7L);
    cr_assert_eq(t->lr, 0.001);
    cr_assert_eq(t->p, 2.0);
    cr_assert_eq(t->verbose, 0);
    cr_assert_str_eq(t->name, "run");
    cr_assert_eq(t->optimizer, 1);
}

/* ------------------------------------------------------------ good files */

Test(config, defaults_applied_by_init) {
    expect_defaults_train(&fx.tr);
    cr_assert_eq(fx.mo.width, 32);
    cr_assert_eq(fx.mo.dropout, 0.0);
}

Test(config, good_file_loads_every_type) {
    cr_assert_eq(load(DATA "good.ini"), CFG_OK, "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 250);
    cr_assert_eq(fx.tr.seed, -9876543210L);
    cr_assert_eq(fx.tr.lr, 0.0003);
    cr_assert_eq(fx.tr.p, 1.5);
    cr_assert_eq(fx.tr.verbose, 1);
    cr_assert_str_eq(fx.tr.name, "rnn baseline #2");
    cr_assert_eq(fx.tr.optimizer, 0);
    cr_assert_eq(fx.mo.width, 64);
    cr_assert_eq(fx.mo.dropout, 0.25);
    cr_assert_eq(cfg_section_line(&fx.cfg, "train"), 4);
    cr_assert_eq(cfg_section_line(&fx.cfg, "model"), 13);
    cr_assert_eq(cfg_section_line(&fx.cfg, "nope"), 0);
}

Test(config, comments_and_blank_lines_ignored) {
    cr_assert_eq(load(DATA "comments.ini"), CFG_OK, "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 7);
    cr_assert_eq(fx.tr.lr, 0.5);
    cr_assert_eq(cfg_section_line(&fx.cfg, "train"), 5);
    cr_assert_eq(cfg_section_line(&fx.cfg, "model"), 0);
}

Test(config, indented_first_key_is_a_key) {
    cr_assert_eq(load(DATA "indented_keys.ini"), CFG_OK, "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 4);
    cr_assert_eq(fx.mo.width, 9);
}

Test(config, absent_keys_keep_defaults) {
    cr_assert_eq(load(DATA "partial.ini"), CFG_OK, "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 5);
    fx.tr.steps = 100;
    expect_defaults_train(&fx.tr);
    cr_assert_eq(fx.mo.width, 32);
}

Test(config, norm_accepts_inf_and_positive) {
    cr_assert_eq(load(DATA "norm_inf.ini"), CFG_OK, "%s", fx.err);
    cr_assert(isinf(fx.tr.p) && fx.tr.p > 0);
    cr_assert_eq(load(DATA "norm_value.ini"), CFG_OK, "%s", fx.err);
    cr_assert_eq(fx.tr.p, 2.5);
}

Test(config, long_comment_keeps_line_numbers) {
    /* a 252-character comment on line 1 is fine; the error is on physical line 3 */
    expect_error("long_comment.ini", CFG_ERR_VALUE, 3, "steps = 'x'");
}

/* ------------------------------------------------------------ bad files */

Test(config, missing_file) {
    cr_assert_eq(load(DATA "does_not_exist.ini"), CFG_ERR_IO);
    cr_assert_str_eq(fx.err, "cannot open " DATA "does_not_exist.ini: No such file or directory");
}

Test(config, endless_file_refused) {
    cr_assert_eq(load("/dev/zero"), CFG_ERR_IO);
    cr_assert(strstr(fx.err, "/dev/zero: more than 1048576 bytes"), "%s", fx.err);
}

Test(config, unknown_key) {
    expect_error("unknown_key.ini", CFG_ERR_KEY, 3, "[train] stpes = '20': unknown key");
    cr_assert(strstr(fx.err, "steps, seed, lr, p, verbose, name, optimizer"), "%s", fx.err);
}

Test(config, unknown_section) {
    expect_error("unknown_section.ini", CFG_ERR_SECTION, 4, "[trian]");
    cr_assert(strstr(fx.err, "[train], [model]"), "%s", fx.err);
}

Test(config, empty_unknown_section) {
    expect_error("empty_unknown_section.ini", CFG_ERR_SECTION, 3, "[bogus]");
}

Test(config, key_before_any_section) {
    expect_error("no_section.ini", CFG_ERR_SECTION, 2, "steps");
}

Test(config, duplicate_key) {
    expect_error("duplicate.ini", CFG_ERR_DUPLICATE, 4, "[train] steps");
    cr_assert(strstr(fx.err, "first set on line 2"), "%s", fx.err);
    expect_error("duplicate_reopened.ini", CFG_ERR_DUPLICATE, 6, "[train] steps");
}

Test(config, bad_numbers) {
    cr_assert_eq(load(DATA "bad_int_garbage.ini"), CFG_ERR_VALUE);
    cr_assert_str_eq(fx.err, DATA "bad_int_garbage.ini:2: [train] steps = '12abc': not an integer "
                             "(accepted: integer from 1 to 10000000)");
    expect_error("bad_int_float.ini", CFG_ERR_VALUE, 2, "steps = '1.5'");
    expect_error("bad_empty.ini", CFG_ERR_VALUE, 3, "lr = ''");
    expect_error("bad_nan.ini", CFG_ERR_VALUE, 2, "lr = 'nan'");
    expect_error("bad_inf_double.ini", CFG_ERR_VALUE, 2, "lr = 'inf'");
    expect_error("bad_double_garbage.ini", CFG_ERR_VALUE, 2, "lr = '1e-3x'");
}

Test(config, syntax_errors) {
    expect_error("no_equals.ini", CFG_ERR_SYNTAX, 3, "'lr 0.1'");
    expect_error("unterminated_section.ini", CFG_ERR_SYNTAX, 3, "'[model'");
    expect_error("continuation.ini", CFG_ERR_SYNTAX, 3, "[train] steps");
    expect_error("long_line.ini", CFG_ERR_SYNTAX, 2, "name");
}

Test(config, out_of_range) {
    expect_error("out_of_range.ini", CFG_ERR_RANGE, 2, "steps = '20000000': out of range");
    expect_error("norm_negative.ini", CFG_ERR_RANGE, 2, "p = '-1'");
}

Test(config, bad_enum_lists_choices) {
    expect_error("bad_enum.ini", CFG_ERR_RANGE, 2, "optimizer = 'adagrad'");
    cr_assert(strstr(fx.err, "one of: sgd, adam, rmsprop"), "%s", fx.err);
}

Test(config, bad_bool) {
    expect_error("bad_bool.ini", CFG_ERR_VALUE, 2, "verbose = 'maybe'");
}

Test(config, first_error_wins) {
    expect_error("first_error_value.ini", CFG_ERR_VALUE, 4, "lr = 'fast'");
    expect_error("first_error_syntax.ini", CFG_ERR_SYNTAX, 2, "'this is not ini'");
    expect_error("first_error_section.ini", CFG_ERR_SECTION, 2, "[bogus]");
}

/* ------------------------------------------------------------ line endings, headers */

Test(config, bare_cr_line_endings_are_lines) {
    /* classic Mac endings: every setting is read, none silently dropped */
    cr_assert_eq(load(DATA "bare_cr.ini"), CFG_OK, "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 7);
    cr_assert_eq(fx.tr.lr, 0.5);
    cr_assert_eq(fx.mo.width, 9);
    cr_assert_eq(cfg_section_line(&fx.cfg, "model"), 5);
    expect_error("bare_cr_error.ini", CFG_ERR_VALUE, 3, "lr = 'fast'");
}

Test(config, mixed_line_endings) {
    cr_assert_eq(load(DATA "mixed_endings.ini"), CFG_OK, "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 8);
    cr_assert_eq(fx.tr.lr, 0.25);
    cr_assert_eq(fx.mo.width, 3);
    cr_assert_eq(cfg_section_line(&fx.cfg, "model"), 5);
}

Test(config, crlf_is_not_part_of_the_line) {
    /* 197 characters then CRLF: the longest line accepted, whatever the ending */
    cr_assert_eq(load(DATA "crlf_197.ini"), CFG_OK, "%s", fx.err);
    cr_assert_eq(strlen(fx.tr.name), 190);
    cr_assert_eq(fx.tr.steps, 3);
    expect_error("crlf_198.ini", CFG_ERR_SYNTAX, 2, "longer than 197");
}

Test(config, text_after_section_header_refused) {
    expect_error("header_trailing_text.ini", CFG_ERR_SYNTAX, 2, "'[train] steps = 7'");
    cr_assert(strstr(fx.err, "after the section header"), "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 100);
    expect_error("header_double_bracket.ini", CFG_ERR_SYNTAX, 1, "'[train]]'");
    /* a comment after the header is fine */
    cr_assert_eq(load(DATA "header_comment.ini"), CFG_OK, "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 6);
    cr_assert_eq(cfg_section_line(&fx.cfg, "model"), 3);
}

/* ------------------------------------------------------------ the setter */

typedef struct {
    const char *key, *value;
    CfgStatus want;
} SetCase;

Test(config, setter_accepts_and_rejects) {
    static const SetCase cases[] = {
        {"steps", "12abc", CFG_ERR_VALUE},   {"steps", "1.5", CFG_ERR_VALUE},
        {"steps", "", CFG_ERR_VALUE},        {"steps", " 5", CFG_ERR_VALUE},
        {"steps", "0x10", CFG_ERR_VALUE},    {"steps", "0", CFG_ERR_RANGE},
        {"steps", "10000000", CFG_OK},       {"steps", "99999999999999999999", CFG_ERR_RANGE},
        {"seed", "-1000000000000", CFG_OK},  {"seed", "1000000000001", CFG_ERR_RANGE},
        {"lr", "1e-3", CFG_OK},              {"lr", "1e-3x", CFG_ERR_VALUE},
        {"lr", "nan", CFG_ERR_VALUE},        {"lr", "inf", CFG_ERR_VALUE},
        {"lr", "1e999", CFG_ERR_VALUE},      {"lr", "-0.5", CFG_ERR_RANGE},
        {"lr", "", CFG_ERR_VALUE},           {"p", "inf", CFG_OK},
        {"p", "Inf", CFG_OK},                {"p", "-inf", CFG_ERR_VALUE},
        {"p", "0", CFG_ERR_RANGE},           {"p", "-1", CFG_ERR_RANGE},
        {"p", "nan", CFG_ERR_VALUE},         {"p", "2.5", CFG_OK},
        {"verbose", "on", CFG_OK},           {"verbose", "OFF", CFG_OK},
        {"verbose", "1", CFG_OK},            {"verbose", "2", CFG_ERR_VALUE},
        {"optimizer", "rmsprop", CFG_OK},    {"optimizer", "Adam", CFG_ERR_RANGE},
        {"name", "", CFG_OK},                {"name", "a;b c=d", CFG_OK},
        {"name", "a ;b", CFG_ERR_VALUE},     {"name", " a", CFG_ERR_VALUE},
        {"name", "a\nb", CFG_ERR_VALUE},     {"name", ";a", CFG_ERR_VALUE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const SetCase *c = &cases[i];
        fx.err[0] = '\0';
        CfgStatus st = cfg_set(&fx.cfg, "train", c->key, c->value, "here", fx.err, sizeof fx.err);
        cr_assert_eq(st, c->want, "%s = '%s': status %d, want %d (%s)", c->key, c->value, st,
                     c->want, fx.err);
        if (st != CFG_OK) cr_assert(strncmp(fx.err, "here: [train] ", 14) == 0, "%s", fx.err);
    }
}

Test(config, setter_leaves_value_on_error) {
    cr_assert_neq(cfg_set(&fx.cfg, "train", "steps", "7x", "t", fx.err, sizeof fx.err), CFG_OK);
    cr_assert_eq(fx.tr.steps, 100);
}

Test(config, string_too_long_rejected) {
    char v[CFG_STR_MAX + 1];
    memset(v, 'a', CFG_STR_MAX);
    v[CFG_STR_MAX] = '\0';
    cr_assert_eq(cfg_set(&fx.cfg, "train", "name", v, "t", fx.err, sizeof fx.err), CFG_ERR_RANGE);
    cr_assert(strstr(fx.err, "too long"), "%s", fx.err);
    cr_assert_str_eq(fx.tr.name, "run");
}

/* ------------------------------------------------------------ overrides */

Test(config, override_good) {
    cr_assert_eq(cfg_override(&fx.cfg, "train.steps=42", fx.err, sizeof fx.err), CFG_OK, "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 42);
    /* split at the first '.' and the first '=' */
    cr_assert_eq(cfg_override(&fx.cfg, "train.name=a.b=c", fx.err, sizeof fx.err), CFG_OK, "%s", fx.err);
    cr_assert_str_eq(fx.tr.name, "a.b=c");
    cr_assert_eq(cfg_override(&fx.cfg, "model.dropout=0.5", fx.err, sizeof fx.err), CFG_OK, "%s", fx.err);
    cr_assert_eq(fx.mo.dropout, 0.5);
}

Test(config, override_errors) {
    cr_assert_eq(cfg_override(&fx.cfg, "train.nope=1", fx.err, sizeof fx.err), CFG_ERR_KEY);
    cr_assert(strncmp(fx.err, "override 'train.nope=1': ", 25) == 0, "%s", fx.err);
    cr_assert(strstr(fx.err, "nope") && strstr(fx.err, "steps, seed"), "%s", fx.err);
    cr_assert_eq(cfg_override(&fx.cfg, "trian.steps=1", fx.err, sizeof fx.err), CFG_ERR_SECTION);
    cr_assert_eq(cfg_override(&fx.cfg, "train.steps", fx.err, sizeof fx.err), CFG_ERR_OVERRIDE);
    cr_assert(strncmp(fx.err, "override 'train.steps': ", 24) == 0, "%s", fx.err);
    cr_assert_eq(cfg_override(&fx.cfg, "steps=5", fx.err, sizeof fx.err), CFG_ERR_OVERRIDE);
    cr_assert(strncmp(fx.err, "override 'steps=5': ", 20) == 0, "%s", fx.err);
    cr_assert_eq(cfg_override(&fx.cfg, "train.=5", fx.err, sizeof fx.err), CFG_ERR_OVERRIDE);
    cr_assert_eq(cfg_override(&fx.cfg, "train.steps=12abc", fx.err, sizeof fx.err), CFG_ERR_VALUE);
    cr_assert(strstr(fx.err, "override 'train.steps=12abc': [train] steps = '12abc': not an integer"),
              "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 100);
}

Test(config, override_same_key_twice_is_an_error) {
    cr_assert_eq(cfg_override(&fx.cfg, "train.steps=3", fx.err, sizeof fx.err), CFG_OK, "%s", fx.err);
    cr_assert_eq(cfg_override(&fx.cfg, "model.width=5", fx.err, sizeof fx.err), CFG_OK, "%s", fx.err);
    cr_assert_eq(cfg_override(&fx.cfg, "train.steps=4", fx.err, sizeof fx.err), CFG_ERR_DUPLICATE);
    cr_assert(strstr(fx.err, "override 'train.steps=4': [train] steps is already set by override 1"),
              "%s", fx.err);
    cr_assert_eq(fx.tr.steps, 3);
    /* a refused override does not count as setting the key */
    cr_assert_eq(cfg_override(&fx.cfg, "train.lr=x", fx.err, sizeof fx.err), CFG_ERR_VALUE);
    cr_assert_eq(cfg_override(&fx.cfg, "train.lr=0.5", fx.err, sizeof fx.err), CFG_OK, "%s", fx.err);
    cr_assert_eq(cfg_section_override(&fx.cfg, "train"), 1);
    cr_assert_eq(cfg_section_override(&fx.cfg, "model"), 2);
    /* a file's value may be overridden once */
    cr_assert_eq(load(DATA "good.ini"), CFG_OK, "%s", fx.err);
    cr_assert_eq(cfg_override(&fx2.cfg, "train.steps=9", fx2.err, sizeof fx2.err), CFG_OK);
}

/* ------------------------------------------------------------ output */

Test(config, format_value_short_and_exact) {
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.001, "0.001"}, {100, "100"}, {1e7, "10000000"}, {1e-8, "1e-08"}, {2.5, "2.5"},
        {0.1 + 0.2, "0.30000000000000004"}, {1.0 / 3, "0.3333333333333333"}, {1e300, "1e+300"},
        {-0.0, "-0"}, {123456789012.5, "123456789012.5"}, /* texts: Python repr() */
    };
    const CfgKey *k = &train_keys[2]; /* lr */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[64];
        fx.tr.lr = cases[i].v;
        cfg_format_value(k, &fx.tr, buf, sizeof buf);
        cr_assert_str_eq(buf, cases[i].text);
        cr_assert(strtod(buf, NULL) == cases[i].v, "%s does not read back", buf);
    }
    char buf[64];
    fx.tr.p = INFINITY;
    cfg_format_value(&train_keys[3], &fx.tr, buf, sizeof buf);
    cr_assert_str_eq(buf, "inf");
    cfg_format_value(&train_keys[6], &fx.tr, buf, sizeof buf);
    cr_assert_str_eq(buf, "adam");
    cfg_format_value(&train_keys[4], &fx.tr, buf, sizeof buf);
    cr_assert_str_eq(buf, "false");
}

static void write_tmp(const Config *cfg, char *path, size_t len) {
    snprintf(path, len, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp");
    FILE *f = fdopen(fd, "w");
    cr_assert(f);
    cfg_write(cfg, f);
    cr_assert_eq(fclose(f), 0);
}

Test(config, write_round_trip) {
    cr_assert_eq(load(DATA "good.ini"), CFG_OK, "%s", fx.err);
    static const char *const ov[] = {"train.lr=0.30000000000000004", "train.p=inf",
                                     "train.name=a;b = c.d # e", "model.dropout=0.1",
                                     "train.seed=-999999999999", "train.optimizer=rmsprop"};
    for (size_t i = 0; i < sizeof ov / sizeof *ov; i++)
        cr_assert_eq(cfg_override(&fx.cfg, ov[i], fx.err, sizeof fx.err), CFG_OK, "%s", fx.err);
    char path[64];
    write_tmp(&fx.cfg, path, sizeof path);
    CfgStatus st = cfg_load_file(&fx2.cfg, path, fx2.err, sizeof fx2.err);
    FILE *f = fopen(path, "r");
    char text[8192] = {0};
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    unlink(path);
    cr_assert_eq(st, CFG_OK, "%s\n%s", fx2.err, text);
    cr_assert(n > 0 && strstr(text, "; optimizer steps (integer from 1 to 10000000)\nsteps = 250\n"),
              "%s", text);
    cr_assert_eq(memcmp(&fx.tr, &fx2.tr, sizeof fx.tr), 0, "train differs:\n%s", text);
    cr_assert_eq(memcmp(&fx.mo, &fx2.mo, sizeof fx.mo), 0, "model differs:\n%s", text);
    cr_assert_eq(fx2.tr.lr, 0.1 + 0.2);
    cr_assert(isinf(fx2.tr.p));
    cr_assert_str_eq(fx2.tr.name, "a;b = c.d # e");
    cr_assert_eq(fx2.tr.seed, -999999999999L);
    cr_assert_eq(fx2.tr.optimizer, 2);
    cr_assert_eq(fx2.mo.dropout, 0.1);
}

Test(config, print_help_lists_everything) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    const CfgSection *secs[] = {&train_sec, &model_sec};
    cfg_print_help(secs, 2, f);
    fclose(f);
    static const char *const want[] = {
        "[train]  training loop", "[model]  the network", "optimizer steps", "integer from 1 to 10000000",
        "one of: sgd, adam, rmsprop", "number from 1e-06 to 1000000, or inf", "  dropout = 0  (double; finite number from 0 to 0.9)",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_assert(strstr(buf, want[i]), "help lacks '%s':\n%s", want[i], buf);
    /* readable in a 100-column terminal */
    for (char *line = buf, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert(nl, "help ends without a newline");
        cr_assert_leq(nl - line, 100, "help line of %d columns: %.*s", (int)(nl - line), (int)(nl - line), line);
    }
    free(buf);
}

/* A default that does not parse is a bug in the table: cfg_init aborts. */
Test(config, bad_default_aborts, .signal = SIGABRT) {
    static const CfgKey bad[] = {{"steps", CFG_INT, offsetof(TTrain, steps), "ten", 1, 10, NULL, "x"}};
    static const CfgSection sec = {"bad", bad, 1, "x", NULL};
    const CfgSection *secs[] = {&sec};
    void *structs[] = {&fx.tr};
    Config c;
    cfg_init(&c, secs, structs, 1);
}
