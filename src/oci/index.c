/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci/index.c: the image index (OCI) and the Docker schema2 manifest list, one struct told
 * apart by mediaType. Parsing reads members by type, then berth_index_validate() checks MUSTs.
 */
#include <stdlib.h>
#include <string.h>

#include "berth/errors.h"
#include "berth/index.h"
#include "berth/mediatype.h"
#include "oci/json.h"

static const char *const index_known[] = {
    "schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations", NULL};

void berth_index_free(berth_index *idx)
{
    if (!idx) {
        return;
    }
    free(idx->media_type);
    free(idx->artifact_type);
    berth__descriptors_free(idx->manifests, idx->nmanifests);
    berth_descriptor_free(idx->subject);
    berth_map_dispose(&idx->annotations);
    free(idx->extra);
    free(idx);
}

bool berth_index_is_docker(const berth_index *idx)
{
    return idx && idx->media_type && strcmp(idx->media_type, BERTH_MEDIA_DOCKER_LIST) == 0;
}

int berth__index_from_json(berth_index *idx, const json_t *root)
{
    int rc;

    if ((rc = berth__json_doc_common(&idx->schema_version, &idx->media_type, &idx->artifact_type,
                                     &idx->subject, root)) < 0 ||
        (rc = berth__descriptors_from_json(&idx->manifests, &idx->nmanifests, root, "manifests",
                                           true)) < 0 ||
        (rc = berth__json_map(&idx->annotations, root, "annotations")) < 0 ||
        (rc = berth__json_extra(&idx->extra, root, index_known)) < 0) {
        return rc;
    }
    return berth_index_validate(idx);
}

int berth_index_validate(const berth_index *idx)
{
    bool docker;
    size_t i;
    int rc;

    if (!idx) {
        return berth_error_set(BERTH_EINVALID, "no index");
    }
    docker = berth_index_is_docker(idx);
    if ((rc = berth__doc_common_validate(idx->schema_version, idx->media_type, docker,
                                         BERTH_MEDIA_OCI_INDEX, "index", idx->artifact_type,
                                         idx->subject)) < 0) {
        return rc;
    }
    if ((rc = berth__descriptors_validate(idx->manifests, idx->nmanifests, "manifests")) < 0) {
        return rc;
    }
    for (i = 0; docker && i < idx->nmanifests; i++) {
        if (!idx->manifests[i].platform) {
            return berth_error_set(BERTH_EINVALID, "manifests[%zu].platform: required", i);
        }
    }
    return 0;
}

static int index_fill(void *doc, const json_t *root)
{
    return berth__index_from_json(doc, root);
}

static void index_free(void *doc)
{
    berth_index_free(doc);
}

int berth_index_parse(berth_index **out, const char *json, size_t len)
{
    int rc;

    *out = berth__json_parse_doc(&rc, json, len, sizeof(berth_index), index_fill, index_free);
    return rc;
}

int berth_index_serialize(berth_buf *out, const berth_index *idx)
{
    json_t *o = json_object();
    int rc = 0;

    if (o) {
        berth__json_set(o, "schemaVersion", json_integer(idx->schema_version), &rc);
        berth__json_set_str(o, "mediaType", idx->media_type, &rc);
        berth__json_set_str(o, "artifactType", idx->artifact_type, &rc);
        berth__json_set_descriptors(o, "manifests", idx->manifests, idx->nmanifests, &rc);
        if (idx->subject) {
            berth__json_set(o, "subject", berth__descriptor_to_json(idx->subject, &rc), &rc);
        }
        berth__json_set_map(o, "annotations", &idx->annotations, &rc);
        berth__json_put_extra(o, idx->extra, &rc);
    }
    return berth__json_finish(out, o, rc);
}
