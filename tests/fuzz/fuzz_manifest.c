/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the manifest parser and berth_document_inspect(). A manifest that parses must
 * serialise, and the serialisation must parse again.
 */
#include <berth/buf.h>
#include <berth/document.h>
#include <berth/manifest.h>

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    berth_manifest *m = NULL, *m2 = NULL;
    berth_document_info *info = NULL;
    berth_buf out = BERTH_BUF_INIT;

    if (berth_manifest_parse(&m, (const char *)data, size) == 0) {
        if (berth_manifest_serialize(&out, m) != 0 ||
            berth_manifest_parse(&m2, out.ptr, out.len) != 0) {
            abort();
        }
    }
    (void)berth_document_inspect(&info, NULL, (const char *)data, size);
    berth_document_info_free(info);
    berth_manifest_free(m);
    berth_manifest_free(m2);
    berth_buf_dispose(&out);
    return 0;
}
