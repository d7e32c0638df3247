/* SPDX-License-Identifier: Apache-2.0 */
/* berth version: the version of the program and of the libraries it was built with. */
#include "cli/cli.h"

#include <berth/client.h>
#include <berth/common.h>
#include <berth/errors.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/opensslv.h>
#include <stdio.h>
#include <string.h>

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
    }
    return false;
}

int cli_parse_duration(int64_t *out, const char *text)
{
    uint64_t n;

    /* the one grammar of the configuration and the environment (berth/common.h) */
    if (berth_parse_duration(&n, text) < 0 || n > (uint64_t)INT64_MAX) {
        return -1;
    }
    *out = (int64_t)n;
    return 0;
}

int cmd_version(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: berth version\n\nPrint the version of berth and of its libraries.\n");
        return 0;
    }
    /* libcurl is the registry client's (berth-remote.so, loaded here to ask it) */
    const char *curl = berth_client_transport_version();

    printf("berth %s\n", BERTH_VERSION);
    printf("libmicrohttpd %s, jansson %s, %s, libcurl %s\n", MHD_get_version(), JANSSON_VERSION,
           OPENSSL_VERSION_TEXT, curl ? curl : "(none)");
    if (!curl) {
        fprintf(stderr, "berth version: %s\n", berth_error_last());
        return 1;
    }
    return 0;
}
