/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci/mediatype.c: the media type grammar (RFC 6838 section 4.2 restricted-name, as the
 * image-spec's descriptor schema spells it) and the nondistributable layer types.
 */
#include <string.h>

#include "berth/mediatype.h"

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Length of a restricted-name at `s`, 0 when there is none or it is over 127 characters. */
static size_t restricted_name(const char *s)
{
    size_t n = 0;

    if (!alnum(s[0])) {
        return 0;
    }
    while (s[n] && (alnum(s[n]) || strchr("!#$&-^_.+", s[n]))) {
        n++;
    }
    return n > 127 ? 0 : n;
}

bool berth_media_type_valid(const char *s)
{
    size_t n;

    if (!s || !(n = restricted_name(s)) || s[n] != '/') {
        return false;
    }
    s += n + 1;
    return (n = restricted_name(s)) != 0 && s[n] == '\0';
}

bool berth_media_type_is_nondistributable(const char *s)
{
    static const char *const nd[] = {
        BERTH_MEDIA_OCI_LAYER_ND_TAR,
        BERTH_MEDIA_OCI_LAYER_ND_GZIP,
        BERTH_MEDIA_OCI_LAYER_ND_ZSTD,
        BERTH_MEDIA_DOCKER_FOREIGN,
    };
    size_t i;

    for (i = 0; s && i < sizeof(nd) / sizeof(nd[0]); i++) {
        if (strcmp(s, nd[i]) == 0) {
            return true;
        }
    }
    return false;
}
