/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/s3direct: the "direct" side of bench/scale.sh, talking to the S3 service with berth's own
 * internal S3 client (src/backend/s3/client.h: libcurl + the project's SigV4 signer), so that the
 * comparison measures berth's request path, not a different client.
 *
 *   s3direct put FILE KEY PART_MIB   multipart upload of FILE (read into memory first, not timed),
 *                                    one part at a time; prints the seconds of create..complete
 *   s3direct get KEY                 streamed GET into a discarding sink; prints the seconds
 *   s3direct presign KEY             prints a presigned GET URL valid for an hour
 *   s3direct rm KEY                  DeleteObject
 *   s3direct ack KEY                 the quickest of 20 ListParts of a 5 MiB part, ms (about 2 ms
 *                                    on loopback; 40 ms more if the client's delayed ACK holds
 *                                    each response back: see ack_now() in the S3 client)
 *
 * Settings from the environment as tests/engines/rgw.sh writes them: BERTH_TEST_S3_ENDPOINT,
 * BERTH_TEST_S3_BUCKET, BERTH_TEST_S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
 * Built by bench/scale.sh against build/libberth.a.
 */
#include "backend/s3/client.h"
#include <berth/errors.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int discard(const void *data, size_t len, void *payload)
{
    (void)data;
    *(unsigned long long *)payload += len;
    return 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "s3direct: %s: %s\n", what, berth_error_last());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: s3direct put FILE KEY PART_MIB | get KEY | presign KEY | rm KEY\n");
        return 2;
    }
    berth__s3_config cfg = {.endpoint = getenv("BERTH_TEST_S3_ENDPOINT"),
                            .bucket = getenv("BERTH_TEST_S3_BUCKET"),
                            .region = getenv("BERTH_TEST_S3_REGION"),
                            .path_style = true};
    berth__s3 *c;
    if (!cfg.endpoint || !cfg.bucket || berth__s3_new(&c, &cfg)) {
        return fail("client");
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "put") == 0 && argc == 5) {
        FILE *f = fopen(argv[2], "rb");
        if (!f) {
            perror(argv[2]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        size_t n = (size_t)ftell(f);
        rewind(f);
        unsigned char *data = malloc(n ? n : 1);
        if (!data || fread(data, 1, n, f) != n) {
            perror("read");
            return 1;
        }
        fclose(f);
        size_t part = (size_t)strtoul(argv[4], NULL, 10) << 20;
        size_t cap = n / part + 2;
        berth__s3_part *parts = calloc(cap, sizeof *parts);
        const char *key = argv[3];
        double t0 = now();
        char *id;
        if (berth__s3_mpu_create(c, key, &id)) {
            return fail("create");
        }
        size_t np = 0;
        for (size_t off = 0; off < n; off += part) {
            size_t len = n - off < part ? n - off : part;
            char *etag;
            if (berth__s3_mpu_part(c, key, id, (unsigned)(np + 1), data + off, len, &etag)) {
                return fail("part");
            }
            parts[np].number = (unsigned)(np + 1);
            parts[np].etag = etag;
            np++;
        }
        if (berth__s3_mpu_complete(c, key, id, parts, np)) {
            return fail("complete");
        }
        printf("%.4f\n", now() - t0);
        for (size_t i = 0; i < np; i++) {
            free((char *)parts[i].etag);
        }
        free(parts);
        free(id);
        free(data);
    } else if (strcmp(cmd, "get") == 0) {
        unsigned long long got = 0;
        double t0 = now();
        if (berth__s3_get(c, argv[2], 0, UINT64_MAX, discard, &got)) {
            return fail("get");
        }
        printf("%.4f %llu\n", now() - t0, got);
    } else if (strcmp(cmd, "presign") == 0) {
        char *url;
        if (berth__s3_presign_get(c, argv[2], 3600, NULL, &url)) {
            return fail("presign");
        }
        printf("%s\n", url);
        free(url);
    } else if (strcmp(cmd, "ack") == 0) {
        size_t n = 5u << 20;
        unsigned char *data = calloc(1, n);
        char *id = NULL, *etag = NULL;
        double best = 1e9;
        if (!data || berth__s3_mpu_create(c, argv[2], &id) ||
            berth__s3_mpu_part(c, argv[2], id, 1, data, n, &etag)) {
            return fail("ack");
        }
        for (int i = 0; i < 20; i++) {
            double t0 = now();
            if (berth__s3_mpu_exists(c, argv[2], id)) {
                return fail("ListParts");
            }
            double t = (now() - t0) * 1000;
            best = t < best ? t : best;
        }
        printf("%.1f\n", best);
        berth__s3_mpu_abort(c, argv[2], id);
        free(etag);
        free(id);
        free(data);
    } else if (strcmp(cmd, "rm") == 0) {
        if (berth__s3_delete(c, argv[2])) {
            return fail("delete");
        }
    } else {
        fprintf(stderr, "s3direct: unknown command\n");
        return 2;
    }
    berth__s3_free(c);
    return 0;
}
