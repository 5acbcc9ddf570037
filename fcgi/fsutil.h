/*
 * fsutil.h - small file-system helpers shared by the daemon and the CLI.
 * Thread-safe (no state).
 */
#ifndef FCGI_FSUTIL_H
#define FCGI_FSUTIL_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/*
 * Creates `path` and any missing parents with `mode` (like mkdir -p).
 * Returns 0 when the directory exists afterwards, or -1 with errno set
 * (ENOTDIR when the path exists but is not a directory).
 */
int fs_mkdirs(const char *path, mode_t mode);

/*
 * Reads all of `in` (to end of file) into a new NUL-terminated buffer the
 * caller frees; *len gets the byte count (the data may hold NULs).  NULL on
 * a read error or out of memory.
 */
char *fs_read_stream(FILE *in, size_t *len);

#endif
