/* config.h: INI files (inih) -> typed, validated structs, one table per section.
 *
 * Each module that owns settings declares a CfgSection: a table of CfgKey
 * (name, type, offset into its struct, default as text, range or choices,
 * help). The table IS the documentation: cfg_print_help() prints it, and the
 * defaults are applied by the same setter that parses the file, so there is one
 * way a value gets in.
 *
 * Strict (docs/design.md, Config): an unknown section or key, a key outside any
 * section, a duplicate key, a value that does not parse completely (strtod /
 * strtol end pointer), a value out of range, or a line that is not
 * `key = value` is an error naming the file, the line, the key and what is
 * accepted. Loaders return a CfgStatus and fill an error message; they never
 * print or exit, so tests check each failure and main decides.
 *
 * `section.key=value` command-line overrides go through the same setter. */
#ifndef CLIPLAB_CONFIG_H
#define CLIPLAB_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CFG_STR_MAX 256

typedef enum {
    CFG_INT,      /* int, range [min, max] */
    CFG_LONG,     /* long, range [min, max] */
    CFG_DOUBLE,   /* double, finite, range [min, max]; with choices, also the word
                   * choices[0], stored as 0 (outside the range): loss_scale = dynamic */
    CFG_NORM,     /* double: a p-norm order, p in [min, max] or "inf" (INFINITY) */
    CFG_BOOL,     /* int 0/1 from true/false/yes/no/on/off/1/0 */
    CFG_STRING,   /* char[CFG_STR_MAX]; empty allowed */
    CFG_ENUM      /* int index into choices (NULL-terminated) */
} CfgType;

typedef struct CfgKey {
    const char *name;
    CfgType type;
    size_t offset;               /* offsetof(struct, field) */
    const char *def;             /* default value as text */
    double min, max;             /* inclusive, for INT/LONG/DOUBLE/NORM */
    const char *const *choices;  /* for ENUM: NULL-terminated */
    const char *help;            /* one line */
} CfgKey;

typedef struct CfgSection {
    const char *name;            /* "train" for [train] */
    const CfgKey *keys;
    int nkeys;
    const char *help;            /* one line: what the section controls */
    /* Optional: NULL when key k of the filled struct s is read by the run, else
     * why not ("read only with grad = zclip"): a key set in a file or override
     * that the run does not read gets a warning (darknet warns on unused keys). */
    const char *(*unused)(const void *s, const CfgKey *k);
} CfgSection;

/* The candidate closest to name in spelling (edit distance at most a third of
 * its length, at least 1; a candidate that starts with name counts too), or
 * NULL: for "did you mean ...?" (keys, sections, command-line options). */
const char *cfg_closest(const char *name, const char *const *cands, int n);

typedef enum {
    CFG_OK = 0,
    CFG_ERR_IO,          /* file missing or unreadable */
    CFG_ERR_SYNTAX,      /* a line that is not [section] or key = value */
    CFG_ERR_SECTION,     /* unknown section, or key before any section */
    CFG_ERR_KEY,         /* unknown key in a known section */
    CFG_ERR_DUPLICATE,   /* key given twice in the file */
    CFG_ERR_VALUE,       /* value does not parse as the key's type */
    CFG_ERR_RANGE,       /* parses, but outside the accepted range / choices */
    CFG_ERR_OVERRIDE     /* command-line override not of the form section.key=value */
} CfgStatus;

#define CFG_MAX_SECTIONS 64
#define CFG_MAX_KEYS 64                 /* per section */
#define CFG_NAME_MAX 64

/* Group sections: [optim.critic] has the keys of [optim]; the keys it sets
 * override [optim]'s for the update group "critic", the others follow [optim]
 * (cfg_resolve_groups). A model declares its groups (model.h). */
typedef struct CfgGroupSection {
    CfgSection sec;                     /* same keys as the base, name "base.group" */
    char name[CFG_NAME_MAX];
    int base;                           /* index of the base section */
} CfgGroupSection;

typedef struct Config {
    const CfgSection *sections[CFG_MAX_SECTIONS];
    void *structs[CFG_MAX_SECTIONS];    /* where each section's values go */
    int nsections;
    int present[CFG_MAX_SECTIONS];      /* line where [section] appeared in the file, 0 if never */
    int touched[CFG_MAX_SECTIONS];      /* some key of it was set by the file or an override */
    int hidden[CFG_MAX_SECTIONS];       /* left out of cfg_write (sections that do not apply) */
    unsigned char set[CFG_MAX_SECTIONS][CFG_MAX_KEYS]; /* key given in the file or an override */
    CfgGroupSection *groups[CFG_MAX_SECTIONS]; /* non-NULL for group sections (owned) */
    int over_first[CFG_MAX_SECTIONS];   /* 1-based number of the first override into it, 0 if none */
    int noverrides;                     /* overrides accepted so far */
    unsigned short over_key[CFG_MAX_SECTIONS][CFG_MAX_KEYS]; /* number of the override that set it */
    char path[512];                     /* the file loaded, for messages */
    const char *const *renamed[CFG_MAX_SECTIONS]; /* cfg_renamed: old key names, or NULL */
} Config;

/* Register sections and apply every default. structs[i] receives sections[i]. */
void cfg_init(Config *cfg, const CfgSection *const *sections, void *const *structs, int n);
/* Register the group section [base.group] filling structp (the same struct type
 * as base's); call after cfg_init, before loading. Returns its index. */
int cfg_add_group(Config *cfg, const char *base, const char *group, void *structp);
/* After the file and the overrides: every group section's struct = its base's
 * values, with the keys the group section set in place of them. */
void cfg_resolve_groups(Config *cfg);
/* Key names section `name` used to have: NULL-terminated pairs {old, new,
 * old, new, ..., NULL}; a file or override that uses an old name gets an
 * error naming the new one. Call after cfg_init. */
void cfg_renamed(Config *cfg, const char *name, const char *const *pairs);
/* Index of a registered section, -1 if none. */
int cfg_find_section(const Config *cfg, const char *name);
/* Warnings for keys that were set but that the run does not read (CfgSection.
 * unused), one line each to f ("cliplab: warning: ..."); returns how many. */
int cfg_warn_unused(const Config *cfg, FILE *f);
void cfg_free(Config *cfg);
/* Parse a file into the registered structs. On error, err holds
 * "<path>:<line>: <what is wrong> (accepted: <what is accepted>)". */
CfgStatus cfg_load_file(Config *cfg, const char *path, char *err, size_t errlen);
/* The same for a file's text already in memory; name stands for its path. */
CfgStatus cfg_load_buffer(Config *cfg, const char *name, const char *text, size_t len, char *err,
                          size_t errlen);
/* "section.key=value" (section may be a group section: optim.critic.lr=1e-4;
 * the key is what follows the last '.' before '='); err says "override '<arg>':
 * ..." on failure. A key given by two overrides is an error
 * (CFG_ERR_DUPLICATE), as in a file. */
CfgStatus cfg_override(Config *cfg, const char *arg, char *err, size_t errlen);
/* Set one value through the table's setter. where = "path:line" or a label for messages. */
CfgStatus cfg_set(Config *cfg, const char *section, const char *key, const char *value,
                  const char *where, char *err, size_t errlen);
/* The line at which [name] appeared in the loaded file (0 if it did not). */
int cfg_section_line(const Config *cfg, const char *name);
/* 1-based number of the first accepted override into [name] (0 if none). */
int cfg_section_override(const Config *cfg, const char *name);
/* Leave section `name` out of cfg_write (e.g. another model's section). */
void cfg_hide_section(Config *cfg, const char *name);
/* Write the effective configuration as a valid INI file (comments carry help). */
void cfg_write(const Config *cfg, FILE *f);
/* Print every section and key: type, default, range/choices, help. */
void cfg_print_help(const CfgSection *const *sections, int n, FILE *f);
/* 1 when the key's value in structp is its default. */
int cfg_is_default(const CfgKey *k, const void *structp);
/* The text form of one key's current value (for printing and saving). */
void cfg_format_value(const CfgKey *k, const void *structp, char *buf, size_t len);

#endif
