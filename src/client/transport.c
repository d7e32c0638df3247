/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which transport a reference as people type it names (berth_transport_of): a registry or an
 * OCI image layout, with skopeo's prefixes. Apart from the copy engine, which runs over the
 * network (berth-remote.so in the berth program), so that the command line can sort its
 * arguments without loading it.
 */
#include <berth/client.h>
#include <berth/errors.h>
#include <berth/reference.h>

#include <string.h>

/* The transports of skopeo and containers/image that berth does not read. */
static const char *const other_transports[] = {
    "oci-archive", "docker-archive", "docker-daemon", "containers-storage", "dir", "sif",
    "ostree",      "tarball",        "atomic",
};

/* Digits up to a '/' or the end: the port of "HOST:PORT/...". */
static bool is_port(const char *s)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        n++;
    }
    return n > 0 && (s[n] == '/' || s[n] == '\0');
}

int berth_transport_of(const char *text, const char **rest)
{
    const char *colon;

    berth_error_clear();
    if (rest) {
        *rest = text;
    }
    if (!text || !*text) {
        return berth_error_set(BERTH_EINVALID, "reference is empty");
    }
    if (berth_layout_ref_is(text)) {
        return BERTH_TRANSPORT_LAYOUT;
    }
    if (strncmp(text, "docker://", 9) == 0) {
        if (rest) {
            *rest = text + 9;
        }
        return BERTH_TRANSPORT_REGISTRY;
    }
    colon = strchr(text, ':');
    if (colon && !is_port(colon + 1)) {
        /* "NAME:" not followed by a port ("HOST:5000/..."): a transport prefix, unless a '/'
         * or '@' came first ("host/name:tag", "name@sha256:...") */
        size_t n = (size_t)(colon - text);
        if (!memchr(text, '/', n) && !memchr(text, '@', n)) {
            for (size_t i = 0; i < sizeof(other_transports) / sizeof(*other_transports); i++) {
                if (strlen(other_transports[i]) == n &&
                    strncmp(text, other_transports[i], n) == 0) {
                    return berth_error_set(BERTH_EUNSUPPORTED,
                                           "%.*s: a transport berth does not read (it reads "
                                           "registries, HOST/NAME or docker://HOST/NAME, and "
                                           "OCI layouts, oci:DIR[:TAG])",
                                           (int)n, text);
                }
            }
            if (n == 6 && strncmp(text, "docker", 6) == 0) {
                return berth_error_set(BERTH_EINVALID,
                                       "%s: the docker transport is written "
                                       "docker://HOST/NAME[:TAG]",
                                       text);
            }
            if (strncmp(colon, "://", 3) == 0) {
                /* "DOCKER://", "https://": a scheme, never a registry's host */
                return berth_error_set(BERTH_EINVALID,
                                       "%s: unknown transport '%.*s://' (berth reads "
                                       "docker://HOST/NAME[:TAG], HOST/NAME[:TAG] and "
                                       "oci:DIR[:TAG]; transports are lowercase)",
                                       text, (int)n, text);
            }
        }
    }
    return BERTH_TRANSPORT_REGISTRY;
}
