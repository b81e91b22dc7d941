/* checkpoint.h: the whole training state in one binary format: step, the
 * trainer's RNG, every group's parameters, buffers, optimizer moments and step
 * count, clip-method state, update counters, the spike detector's running
 * average, the loss scaler (scale, growth tracker, skips), and the model's
 * own state (data position) through its hooks.
 * Restoring it and replaying gives the same numbers bit for bit.
 *
 * Used in memory by spike recovery and on disk (written to a temporary name,
 * flushed, fsynced and renamed, so a crash never leaves a torn file).
 * Layout: "CLCK", u32 version, u64 payload length, u32 zlib crc32 of the
 * payload, payload (little-endian header; fields in the order of
 * write_payload()). A read refuses a wrong magic, version, length (trailing
 * bytes included), checksum or size, and then leaves the trainer untouched. */
#ifndef CLIPLAB_CHECKPOINT_H
#define CLIPLAB_CHECKPOINT_H

#include <stddef.h>
#include <stdio.h>

struct Trainer;

int ckpt_write(const struct Trainer *tr, FILE *f);
/* 0 if buf holds a whole checkpoint of this format whose checksum matches;
 * -1 with a message otherwise. Touches nothing. */
int ckpt_check(const char *buf, size_t len, char *err, size_t errlen);
/* 0 on success; -1 with a message if the stream does not match this trainer,
 * the trainer then as it was. Reads f to its end. */
int ckpt_read(struct Trainer *tr, FILE *f, char *err, size_t errlen);
/* Serialise into a malloc'd buffer (*buf, *len). 0 on success. */
int ckpt_to_memory(const struct Trainer *tr, char **buf, size_t *len);
int ckpt_from_memory(struct Trainer *tr, const char *buf, size_t len, char *err, size_t errlen);
/* Atomic file write: path.tmp, fflush, fsync, rename. */
int ckpt_save_file(const struct Trainer *tr, const char *path, char *err, size_t errlen);

#endif
