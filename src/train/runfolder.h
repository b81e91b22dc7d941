/* runfolder.h: a run's output folder holds one run.
 *
 * At any moment the folder holds either the previous run, complete, or the
 * new run's files (complete, or in progress and marked so), never a mix:
 *
 *   - A new run is set up in a fresh sibling folder (.<name>.new-<pid>) holding
 *     only the marker file IN_PROGRESS, which is then swapped with the old
 *     folder in one rename (renameat2 RENAME_EXCHANGE; where the file system
 *     cannot exchange, two renames leave the old folder or no folder, never a
 *     mix); the old run is then deleted.
 *   - IN_PROGRESS says what the folder is and how to continue it; the run
 *     holds an exclusive lock (flock) on it for its life, so a second ./train
 *     writing the same folder is refused while the first is alive (a killed
 *     run's lock goes with its process).
 *   - A run removes IN_PROGRESS as its last act: without it the folder is a
 *     complete run.
 *   - A folder that holds other files and is not a run folder (no IN_PROGRESS,
 *     no cliplab config.ini) is never replaced: the run is refused. (A sweep
 *     keeps its own files about a run beside the folder, not in it.)
 *
 * Paths are compared resolved (symlinks, ".", "..", "//"), even for folders
 * that do not exist yet. */
#ifndef CLIPLAB_RUNFOLDER_H
#define CLIPLAB_RUNFOLDER_H

#include <stddef.h>

#define RUNFOLDER_MARKER "IN_PROGRESS"

/* dir as an absolute path without ".", "..", symlinks or repeated '/', also
 * when its last components do not exist yet. 0, or -1 with errno set. */
int runfolder_resolve(const char *dir, char *out, size_t len);

typedef enum {
    RUNFOLDER_ABSENT,      /* no folder, or an empty one */
    RUNFOLDER_COMPLETE,    /* a cliplab run that finished */
    RUNFOLDER_IN_PROGRESS, /* a run in progress or interrupted (IN_PROGRESS) */
    RUNFOLDER_FOREIGN      /* holds files and is not a run folder */
} RunFolderState;

RunFolderState runfolder_state(const char *dir);

/* The open run folder: its path and the lock on its marker. */
typedef struct RunFolder {
    char dir[4096];
    int lock_fd;           /* flock'ed IN_PROGRESS, -1 if none */
} RunFolder;

/* Start a new run in dir: afterwards dir holds only IN_PROGRESS (with `note`
 * in it), locked. The previous run, if any, is swapped out and deleted.
 * 0, or -1 with a message in err (foreign folder, in use, not writable). */
int runfolder_begin(RunFolder *rf, const char *dir, const char *note, char *err, size_t errlen);
/* Continue the interrupted run in dir: lock its IN_PROGRESS. 0, or -1 with a
 * message (no run in progress there, or another process holds it). */
int runfolder_continue(RunFolder *rf, const char *dir, char *err, size_t errlen);
/* The run is complete: remove IN_PROGRESS, sync the folder, drop the lock. */
int runfolder_complete(RunFolder *rf, char *err, size_t errlen);
/* Drop the lock, leaving the folder marked in progress (a failed run). */
void runfolder_release(RunFolder *rf);

#endif
