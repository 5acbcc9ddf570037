/*
 * fsutil.h - small file-system helpers shared by the daemon and the CLI.
 * Thread-safe (no state).
 */
#ifndef FCGI_FSUTIL_H
#define FCGI_FSUTIL_H

#include <sys/types.h>

/*
 * Creates `path` and any missing parents with `mode` (like mkdir -p).
 * Returns 0 when the directory exists afterwards, or -1 with errno set
 * (ENOTDIR when the path exists but is not a directory).
 */
int fs_mkdirs(const char *path, mode_t mode);

#endif
