/* version.h - the daemon's version string, reported by /api/health and --version. */
#ifndef FCGI_VERSION_H
#define FCGI_VERSION_H

#define MLXM_VERSION "0.1.0"

#endif
