/* runfolder.c: one run per output folder (see runfolder.h). */
#define _GNU_SOURCE /* renameat2, nftw */
#include "runfolder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_HEADER "; cliplab effective configuration"

/* ------------------------------------------------------------ paths */

int runfolder_resolve(const char *dir, char *out, size_t len) {
    char buf[PATH_MAX];
    if (!dir[0] || snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        errno = dir[0] ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    char *r = realpath(buf, NULL);
    if (r) {
        int fit = snprintf(out, len, "%s", r) < (int)len;
        free(r);
        if (!fit) errno = ENAMETOOLONG;
        return fit ? 0 : -1;
    }
    if (errno != ENOENT) return -1;
    /* the tail does not exist yet: resolve the parent, then add the last name */
    char *slash = strrchr(buf, '/');
    const char *parent = ".", *last = buf;
    if (slash == buf) parent = "/", last = buf + 1;
    else if (slash) *slash = '\0', parent = buf, last = slash + 1;
    if (runfolder_resolve(parent, out, len) != 0) return -1;
    if (!strcmp(last, ".")) return 0;
    if (!strcmp(last, "..")) { /* the kernel would need the missing folder first: mkdir -p does */
        char *up = strrchr(out, '/');
        if (up && up != out) *up = '\0';
        else snprintf(out, len, "/");
        return 0;
    }
    size_t used = strlen(out);
    if (snprintf(out + used, len - used, "%s%s", used > 1 ? "/" : "", last) >= (int)(len - used)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static void path_join(char *out, size_t len, const char *dir, const char *name) {
    snprintf(out, len, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name);
}

/* parent folder and last name of an absolute resolved path */
static void split(const char *path, char *parent, size_t plen, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash + 1;
    snprintf(parent, plen, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

/* ------------------------------------------------------------ folders */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int remove_tree(const char *path) {
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_dirs(const char *path) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static int sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int is_run_config(const char *dir) {
    char path[PATH_MAX + 16], line[64] = "";
    path_join(path, sizeof path, dir, "config.ini");
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int ok = fgets(line, sizeof line, f) && !strncmp(line, CONFIG_HEADER, strlen(CONFIG_HEADER));
    fclose(f);
    return ok;
}

/* The first entry of dir (other than . and ..) into name; 0 if it is empty. */
static int first_entry(const char *dir, char *name, size_t len) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(name, len, "%s", e->d_name);
            found = 1;
        }
    closedir(d);
    return found;
}

RunFolderState runfolder_state(const char *dir) {
    struct stat sb;
    char name[256], marker[PATH_MAX + 16];
    if (stat(dir, &sb) != 0) return RUNFOLDER_ABSENT;
    if (!S_ISDIR(sb.st_mode)) return RUNFOLDER_FOREIGN;
    int any = first_entry(dir, name, sizeof name);
    if (any == 0) return RUNFOLDER_ABSENT;
    path_join(marker, sizeof marker, dir, RUNFOLDER_MARKER);
    if (access(marker, F_OK) == 0) return RUNFOLDER_IN_PROGRESS;
    return is_run_config(dir) ? RUNFOLDER_COMPLETE : RUNFOLDER_FOREIGN;
}

/* Lock dir's marker; 0, or -1 (err says why: another process holds it). */
static int lock_marker(const char *dir, int create, const char *note, int *fd_out, char *err,
                       size_t errlen) {
    char path[PATH_MAX + 16];
    path_join(path, sizeof path, dir, RUNFOLDER_MARKER);
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0666);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char text[512] = "";
        ssize_t n = pread(fd, text, sizeof text - 1, 0);
        text[n > 0 ? n : 0] = '\0';
        text[strcspn(text, "\n")] = '\0';
        snprintf(err, errlen, "%s is being written by another ./train right now (%s); wait for it "
                 "or set another [run] out_dir", dir, text);
        close(fd);
        return -1;
    }
    if (note) {
        size_t n = strlen(note);
        if (ftruncate(fd, 0) != 0 || pwrite(fd, note, n, 0) != (ssize_t)n || fsync(fd) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    *fd_out = fd;
    return 0;
}

/* Leftovers of an earlier run killed while it swapped folders: .<base>.new-* / .old-* */
static void remove_leftovers(const char *parent, const char *base) {
    DIR *d = opendir(parent);
    if (!d) return;
    char pre_new[NAME_MAX + 16], pre_old[NAME_MAX + 16], path[PATH_MAX + NAME_MAX + 2];
    snprintf(pre_new, sizeof pre_new, ".%s.new-", base);
    snprintf(pre_old, sizeof pre_old, ".%s.old-", base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *pre = !strncmp(e->d_name, pre_new, strlen(pre_new))   ? pre_new
                          : !strncmp(e->d_name, pre_old, strlen(pre_old)) ? pre_old
                                                                          : NULL;
        if (!pre) continue;
        long pid = strtol(e->d_name + strlen(pre), NULL, 10);
        if (pid > 0 && (pid == (long)getpid() || kill((pid_t)pid, 0) != 0)) {
            path_join(path, sizeof path, parent, e->d_name);
            remove_tree(path);
        }
    }
    closedir(d);
}

int runfolder_begin(RunFolder *rf, const char *dir, const char *note, char *err, size_t errlen) {
    rf->lock_fd = -1;
    if (runfolder_resolve(dir, rf->dir, sizeof rf->dir) != 0) {
        snprintf(err, errlen, "cannot resolve output folder %s: %s (set [run] out_dir)", dir,
                 strerror(errno));
        return -1;
    }
    RunFolderState st = runfolder_state(rf->dir);
    char name[256];
    if (st == RUNFOLDER_FOREIGN) {
        struct stat sb;
        if (stat(rf->dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
            snprintf(err, errlen, "output folder %s is a file (set [run] out_dir)", rf->dir);
        else
            snprintf(err, errlen, "output folder %s holds files that are not a cliplab run's (%s, "
                     "...); a run replaces its whole folder, so it writes only into an empty "
                     "folder or a run's (set [run] out_dir)", rf->dir,
                     first_entry(rf->dir, name, sizeof name) > 0 ? name : "?");
        return -1;
    }
    if (st == RUNFOLDER_IN_PROGRESS) { /* refused if a live run holds it */
        int fd;
        if (lock_marker(rf->dir, 0, NULL, &fd, err, errlen) != 0) return -1;
        close(fd);
    }
    char parent[PATH_MAX], tmp[PATH_MAX + NAME_MAX + 32], old[PATH_MAX + NAME_MAX + 32];
    const char *base;
    split(rf->dir, parent, sizeof parent, &base);
    if (make_dirs(parent) != 0) {
        snprintf(err, errlen, "cannot create output folder %s: %s (set [run] out_dir)", parent,
                 strerror(errno));
        return -1;
    }
    remove_leftovers(parent, base);
    struct stat sb;
    if (st == RUNFOLDER_ABSENT && stat(rf->dir, &sb) == 0) /* an empty folder: nothing to swap */
        return lock_marker(rf->dir, 1, note, &rf->lock_fd, err, errlen);
    snprintf(tmp, sizeof tmp, "%s/.%s.new-%ld", parent, base, (long)getpid());
    snprintf(old, sizeof old, "%s/.%s.old-%ld", parent, base, (long)getpid());
    if (mkdir(tmp, 0777) != 0) {
        snprintf(err, errlen, "cannot create %s: %s (set [run] out_dir)", tmp, strerror(errno));
        return -1;
    }
    if (lock_marker(tmp, 1, note, &rf->lock_fd, err, errlen) != 0) {
        remove_tree(tmp);
        return -1;
    }
    int rc;
    if (st == RUNFOLDER_ABSENT) {
        rc = rename(tmp, rf->dir);
    } else {
        rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, rf->dir, RENAME_EXCHANGE);
        if (rc == 0) {
            remove_tree(tmp); /* now the old run; what a kill leaves is removed next time */
        } else if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
            /* no exchange here: the old run, then no folder, then the new one */
            rc = rename(rf->dir, old);
            if (rc == 0) rc = rename(tmp, rf->dir);
            if (rc == 0) remove_tree(old);
        }
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot set up output folder %s: %s (set [run] out_dir)", rf->dir,
                 strerror(errno));
        close(rf->lock_fd);
        rf->lock_fd = -1;
        remove_tree(tmp);
        return -1;
    }
    sync_dir(parent);
    return 0;
}

int runfolder_continue(RunFolder *rf, const char *dir, char *err, size_t errlen) {
    rf->lock_fd = -1;
    if (runfolder_resolve(dir, rf->dir, sizeof rf->dir) != 0) {
        snprintf(err, errlen, "cannot resolve output folder %s: %s", dir, strerror(errno));
        return -1;
    }
    if (runfolder_state(rf->dir) != RUNFOLDER_IN_PROGRESS) {
        snprintf(err, errlen, "%s holds no interrupted run to resume (no %s in it)", rf->dir,
                 RUNFOLDER_MARKER);
        return -1;
    }
    return lock_marker(rf->dir, 0, NULL, &rf->lock_fd, err, errlen);
}

int runfolder_complete(RunFolder *rf, char *err, size_t errlen) {
    char path[PATH_MAX + 16];
    path_join(path, sizeof path, rf->dir, RUNFOLDER_MARKER);
    int rc = unlink(path) == 0 && sync_dir(rf->dir) == 0 ? 0 : -1;
    if (rc != 0) snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
    runfolder_release(rf);
    return rc;
}

void runfolder_release(RunFolder *rf) {
    if (rf->lock_fd >= 0) close(rf->lock_fd);
    rf->lock_fd = -1;
}
