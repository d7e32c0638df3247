/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web UI's files, embedded at build time (scripts/embed.c writes ui_files.c in the build
 * directory from ui/index.html and every file under ui/assets/).
 */
#ifndef BERTH_SERVER_UI_FILES_H
#define BERTH_SERVER_UI_FILES_H

#include <stddef.h>

/** One embedded file: its path under ui/ ("index.html", "assets/app.js"), its bytes and its
 * ETag (quoted: a hash of the bytes and their length, computed at build time). */
typedef struct berth__ui_file {
    const char *path;
    const unsigned char *data;
    size_t len;
    const char *etag;
} berth__ui_file;

/** The embedded files, `berth__ui_nfiles` of them, then an entry with a NULL path. */
extern const berth__ui_file berth__ui_files[];
extern const unsigned berth__ui_nfiles;

#endif
