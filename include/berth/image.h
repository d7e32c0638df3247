/* SPDX-License-Identifier: Apache-2.0 */
/* berth/image.h: the OCI image configuration (image-spec config.md) and its parts. */
#ifndef BERTH_IMAGE_H
#define BERTH_IMAGE_H

#include "descriptor.h"

/**
 * The runtime defaults (`config` member). OnBuild, Healthcheck, Shell and anything else are
 * kept in `extra`. A `null` array or object is read as absent.
 */
typedef struct berth_runtime_config {
    char *user;                  /* "User" */
    berth_strlist exposed_ports; /* "ExposedPorts": the keys of an object of {} */
    berth_strlist env;           /* "Env" */
    berth_strlist entrypoint;    /* "Entrypoint" */
    berth_strlist cmd;           /* "Cmd" */
    berth_strlist volumes;       /* "Volumes": the keys of an object of {} */
    char *working_dir;           /* "WorkingDir" */
    berth_map labels;            /* "Labels" */
    char *stop_signal;           /* "StopSignal" */
    bool args_escaped;           /* "ArgsEscaped" (deprecated), valid when has_args_escaped */
    bool has_args_escaped;
    berth_extra extra;
} berth_runtime_config;

/** One history entry. */
typedef struct berth_history {
    char *created;    /* "created", RFC 3339, optional */
    char *created_by; /* "created_by" */
    char *author;     /* "author" */
    char *comment;    /* "comment" */
    bool empty_layer; /* "empty_layer", valid when has_empty_layer */
    bool has_empty_layer;
    berth_extra extra;
} berth_history;

/** The image configuration. */
typedef struct berth_image {
    char *created;                /* "created", RFC 3339, optional */
    char *author;                 /* "author" */
    char *architecture;           /* "architecture", required */
    char *os;                     /* "os", required */
    char *os_version;             /* "os.version" */
    berth_strlist os_features;    /* "os.features" */
    char *variant;                /* "variant" */
    berth_runtime_config *config; /* "config", optional (NULL) */
    char *rootfs_type;            /* "rootfs.type", required, must be "layers" */
    berth_digest *diff_ids;       /* "rootfs.diff_ids", required (may be empty) */
    size_t ndiff_ids;
    berth_extra rootfs_extra; /* unknown members of "rootfs" */
    berth_history *history;   /* "history", optional */
    size_t nhistory;
    berth_extra extra;
} berth_image;

/**
 * Parse and validate an image configuration.
 * @param out  receives a struct the caller frees with berth_image_free()
 * @return 0; BERTH_EINVALID naming the field (`rootfs.diff_ids[1]: ...`,
 *         `history[0].created: ...`); BERTH_EUNSUPPORTED for a diff_id of an unsupported
 *         algorithm; BERTH_ENOMEM
 */
int berth_image_parse(berth_image **out, const char *json, size_t len);

/**
 * Check the MUSTs of config.md: architecture, os, rootfs.type "layers", RFC 3339 times.
 * @return 0 or BERTH_EINVALID naming the field
 */
int berth_image_validate(const berth_image *img);

/** Append the configuration's compact JSON to `out`. @return 0 or BERTH_ENOMEM */
int berth_image_serialize(berth_buf *out, const berth_image *img);

/** Free; NULL is fine. */
void berth_image_free(berth_image *img);

/** True for an RFC 3339 date-time such as `2015-10-31T22:22:56.015925234Z`. */
bool berth_time_valid(const char *s);

#endif
