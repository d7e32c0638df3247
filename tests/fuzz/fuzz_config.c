/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the image configuration parser; what parses must serialise and parse again. */
#include <berth/buf.h>
#include <berth/image.h>

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    berth_image *img = NULL, *img2 = NULL;
    berth_buf out = BERTH_BUF_INIT;

    if (berth_image_parse(&img, (const char *)data, size) == 0) {
        if (berth_image_serialize(&out, img) != 0 ||
            berth_image_parse(&img2, out.ptr, out.len) != 0) {
            abort();
        }
    }
    berth_image_free(img);
    berth_image_free(img2);
    berth_buf_dispose(&out);
    return 0;
}
