/* checkpoint.h: the whole training state in one binary format: step, the
 * trainer's RNG, every group's parameters, buffers, optimizer moments and step
 * count, clip-method state, update counters, the spike detector's running
 * average, the loss scaler (scale, growth tracker, skips), and the model's
 * own state (data position) through its hooks.
 * Restoring it and replaying gives the same numbers bit for bit.
 *
 * Used in memory by spike recovery and on disk (written to a temporary name,
 * flushed, fsynced and renamed, so a crash never leaves a torn file).
 * Layout (all little-endian): "CLCK", u32 version (3), u64 payload length,
 * u32 zlib crc32 of the payload (crc32(0, payload), as Python's zlib.crc32),
 * then the payload:
 *   i64 step
 *   RNG: u64 state, u64 inc, i32 has_spare, i32 0, f64 spare
 *   f64 spike detector's running average, i64 losses averaged
 *   loss scaler: f32 scale, i32 growth tracker, i64 steps skipped for an overflow
 *   u32 number of groups, then per group:
 *     u64 n, u64 nbuf; f32[n] parameters, f32[nbuf] buffers, f32[n] first
 *     moment, f32[n] second moment; i64 optimizer t, i64 updates, i64 clipped,
 *     i64 skipped; f64 learning rate;
 *     clip state: "CLPR", i32 method ([clip] grad index), i32 selected tensors
 *     k, then zclip: i32 warm-up capacity, i32 norms held h, i32 initialized,
 *     i64 steps, f64 mean, var, z, clip_val, INFO, f64[h] warm-up norms;
 *     adagc: i64 steps, f64[k] gamma, f64[k] last norms, INFO; auto: i32
 *     warm-up steps, i32 norms seen h, i64 steps, f64 threshold, INFO, f64[h]
 *     norms; other methods nothing. INFO = f64 norm, post_norm, threshold,
 *     coef, i32 clipped, i32 warmup (ClipStepInfo).
 *   the model's own state (ModelDef.save_state), to the end.
 * tests/ref/ckpt_format.py reads and writes exactly this, independently of the
 * C code: change both together. A read refuses a wrong magic, version, length
 * (trailing bytes included), checksum or size, and then leaves the trainer
 * untouched. */
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
/* 1 when serialising is a collective under mpirun ([dist] shard = true: the
 * optimizer state's parts are gathered from every rank), so every rank must
 * serialise at the same step (the ones that write nothing too). */
int ckpt_collective(const struct Trainer *tr);
/* Serialise into a malloc'd buffer (*buf, *len). 0 on success. */
int ckpt_to_memory(const struct Trainer *tr, char **buf, size_t *len);
int ckpt_from_memory(struct Trainer *tr, const char *buf, size_t len, char *err, size_t errlen);
/* Atomic file write: path.tmp, fflush, fsync, rename. */
int ckpt_save_file(const struct Trainer *tr, const char *path, char *err, size_t errlen);

#endif
