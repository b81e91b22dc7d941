/* resume.h: ./train CONFIG --resume. Every [run] resume_every steps the
 * run writes <out_dir>/resume.bin: the settings that change the numbers (its
 * fingerprint), the trainer checkpoint (checkpoint.h), the elapsed time, the
 * recovery ring and rollbacks, and how many rows metrics.csv and
 * grad_norms.csv held (both are flushed first, so the logs and the file
 * agree). Resuming checks the file (length, zlib CRC-32), refuses another
 * model, other shapes or other settings (naming each differing key), restores
 * everything and cuts the logs back to the checkpoint, so a run killed at any
 * moment and resumed ends with the metrics of the run never interrupted
 * (time_ms aside). Written atomically (tmp, fsync, rename). */
#ifndef CLIPLAB_RESUME_H
#define CLIPLAB_RESUME_H

#include <stddef.h>

#include "config.h"

#define RESUME_FILE "resume.bin"

struct Trainer;

/* "section.key=value\n" for every key that can change the numbers (not names,
 * folders, plots, quiet, capacities or these checkpoint settings), in table
 * order, sections a run does not use left out. malloc'd. */
/* 1 for a key that cannot change the numbers a run computes ([run] name,
 * out_dir, plots, [train] quiet, ...): left out of the fingerprint. */
int resume_key_outside(const char *section, const char *key);
char *resume_fingerprint(const Config *cfg);
/* Flush the logs, then write out_dir/resume.bin for the state before step
 * tr->step. 0, or -1 with a message. */
int resume_save(const struct Trainer *tr, const char *fingerprint, char *err, size_t errlen);
/* 1 if out_dir holds a resume.bin. */
int resume_exists(const char *out_dir);
/* Restore the trainer from out_dir/resume.bin and reopen its logs cut back to
 * the checkpoint; *elapsed = seconds trained before it. 0, or -1 with a
 * message (the trainer untouched if the file is refused). */
int resume_load(struct Trainer *tr, const char *fingerprint, double *elapsed, char *err,
                size_t errlen);

#endif
