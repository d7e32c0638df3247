/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Online garbage collection under load: pusher threads upload blobs and push manifests,
 * a deleter removes some of what was pushed, and a collector loops meanwhile. Afterwards every
 * image whose push was acknowledged and that was not deleted is complete and verifies, and
 * once the grace period has passed one more collection leaves nothing unreferenced on disk.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <berth/document.h>
#include <berth/errors.h>
#include <berth/store.h>

#include "base/fs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PUSHERS           3
#define IMAGES_PER_PUSHER 25
#define GRACE             1

typedef struct pushed {
    char repo[32];
    char tag[32];
    berth_digest manifest;
    bool deleted;
} pushed;

typedef struct run {
    berth_store *store;
    pthread_mutex_t lock;
    pushed images[PUSHERS * IMAGES_PER_PUSHER];
    size_t count;
    atomic_bool stop;
    atomic_int gc_runs, put_retries;
} run;

static int upload(berth_store *s, const char *repo, const void *data, size_t len, berth_digest *out)
{
    berth_upload *u = NULL;
    int rc = berth_digest_buffer(out, BERTH_DIGEST_SHA256, data, len);
    if (rc == 0) {
        rc = berth_store_upload_new(&u, s, repo, NULL);
    }
    if (rc == 0) {
        rc = berth_upload_write(u, data, len);
        if (rc == 0) {
            rc = berth_upload_commit(u, out);
        } else {
            berth_upload_cancel(u);
        }
    }
    return rc;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *pusher(void *arg)
{
    run *r = ((void **)arg)[0];
    int n = (int)(intptr_t)((void **)arg)[1];
    char repo[32], layer[256], config[128], doc[2048];

    /* two pushers share a repository, so that blobs and manifests are shared too */
    snprintf(repo, sizeof(repo), "stress/r%d", n % 2);
    for (int i = 0; i < IMAGES_PER_PUSHER; i++) {
        berth_digest cd, ld;
        berth_put_result res;
        int rc, attempts = 0;
        snprintf(layer, sizeof(layer), "layer %d of pusher %d %s", i % 7, n % 2,
                 i % 3 ? "with some padding" : "");
        snprintf(config, sizeof(config), "{\"pusher\":%d,\"image\":%d}", n, i);
        do {
            /* a blob swept between upload and PUT (only possible past the grace period) is
               uploaded again, as a client does after MANIFEST_BLOB_UNKNOWN */
            assert_int_equal(upload(r->store, repo, layer, strlen(layer), &ld), 0);
            assert_int_equal(upload(r->store, repo, config, strlen(config), &cd), 0);
            snprintf(doc, sizeof(doc),
                     "{\"schemaVersion\":2,\"mediaType\":"
                     "\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":"
                     "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},"
                     "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
                     "\"digest\":\"%s\",\"size\":%zu}]}",
                     cd.str, strlen(config), ld.str, strlen(layer));
            char tag[32];
            snprintf(tag, sizeof(tag), "p%d-i%d", n, i);
            rc = berth_store_manifest_put(&res, r->store, repo, tag, NULL, doc, strlen(doc));
            if (rc == BERTH_ENOTFOUND) {
                atomic_fetch_add(&r->put_retries, 1);
            }
            if (rc == 0) {
                pthread_mutex_lock(&r->lock);
                pushed *p = &r->images[r->count++];
                snprintf(p->repo, sizeof(p->repo), "%s", repo);
                snprintf(p->tag, sizeof(p->tag), "%s", tag);
                p->manifest = res.digest;
                p->deleted = false;
                pthread_mutex_unlock(&r->lock);
            }
        } while (rc == BERTH_ENOTFOUND && ++attempts < 5);
        assert_int_equal(rc, 0);
    }
    return NULL;
}

static void *deleter(void *arg)
{
    run *r = arg;
    size_t next = 0;
    while (!atomic_load(&r->stop)) {
        pushed victim;
        bool have = false;
        pthread_mutex_lock(&r->lock);
        /* delete every third acknowledged image, by tag or by manifest */
        while (next < r->count && !have) {
            if (next % 3 == 0) {
                r->images[next].deleted = true;
                victim = r->images[next];
                have = true;
            }
            next++;
        }
        pthread_mutex_unlock(&r->lock);
        if (have) {
            int rc = next % 2
                         ? berth_store_tag_delete(r->store, victim.repo, victim.tag)
                         : berth_store_manifest_delete(r->store, victim.repo, &victim.manifest);
            /* the manifest may be shared with (and deleted through) another image */
            assert_true(rc == 0 || rc == BERTH_ENOTFOUND);
        } else {
            pause_ms(1);
        }
    }
    return NULL;
}

static void *collector(void *arg)
{
    run *r = arg;
    berth_gc_options opts;
    berth_gc_options_init(&opts);
    opts.grace_seconds = GRACE;
    while (!atomic_load(&r->stop)) {
        assert_int_equal(berth_store_gc(r->store, &opts, NULL), 0);
        atomic_fetch_add(&r->gc_runs, 1);
        pause_ms(2);
    }
    return NULL;
}

/* Every blob a surviving image needs is there and verifies. */
static void verify_image(berth_store *s, const pushed *p)
{
    const berth_stored_manifest *m = NULL;
    berth_document_info *info = NULL;
    berth_digest got;

    assert_int_equal(berth_store_manifest_get(&m, s, p->repo, p->tag), 0);
    assert_int_equal(berth_document_inspect(&info, m->media_type, m->data, m->len), 0);
    for (size_t i = 0; i < info->nrefs; i++) {
        uint64_t size;
        int fd;
        assert_int_equal(berth_store_blob_open(s, p->repo, &info->refs[i].digest, &fd, &size), 0);
        assert_int_equal(berth_digest_fd(&got, BERTH_DIGEST_SHA256, fd, NULL), 0);
        close(fd);
        assert_string_equal(got.str, info->refs[i].digest.str);
        assert_int_equal(size, (uint64_t)info->refs[i].size);
    }
    berth_document_info_free(info);
    berth_manifest_release(m);
}

static void test_gc_stress__online_gc_loses_nothing(void **state)
{
    char root[] = "/tmp/berth-test-gcstress-XXXXXX";
    berth_store_options so;
    berth_gc_options opts;
    berth_gc_stats stats;
    pthread_t push[PUSHERS], del, gc;
    void *args[PUSHERS][2];
    run *r = calloc(1, sizeof(*r));
    size_t survivors = 0;

    (void)state;
    assert_non_null(mkdtemp(root));
    berth_store_options_init(&so);
    so.fsync = false;
    assert_int_equal(berth_store_open(&r->store, root, &so), 0);
    pthread_mutex_init(&r->lock, NULL);
    assert_int_equal(pthread_create(&del, NULL, deleter, r), 0);
    assert_int_equal(pthread_create(&gc, NULL, collector, r), 0);
    for (int n = 0; n < PUSHERS; n++) {
        args[n][0] = r;
        args[n][1] = (void *)(intptr_t)n;
        assert_int_equal(pthread_create(&push[n], NULL, pusher, args[n]), 0);
    }
    for (int n = 0; n < PUSHERS; n++) {
        pthread_join(push[n], NULL);
    }
    pause_ms(50);
    /* a loaded machine may not have scheduled the collector yet */
    while (atomic_load(&r->gc_runs) == 0) {
        pause_ms(1);
    }
    atomic_store(&r->stop, true);
    pthread_join(del, NULL);
    pthread_join(gc, NULL);
    assert_true(atomic_load(&r->gc_runs) > 0);

    /* every acknowledged image that was not deleted is whole, and a tag deleted through a
       shared manifest counts as deleted */
    for (size_t i = 0; i < r->count; i++) {
        const berth_stored_manifest *m = NULL;
        if (r->images[i].deleted) {
            continue;
        }
        if (berth_store_manifest_get(&m, r->store, r->images[i].repo, r->images[i].tag) < 0) {
            /* only possible when another image with the same bytes was deleted by digest */
            bool shared_deleted = false;
            for (size_t j = 0; j < r->count; j++) {
                shared_deleted |=
                    r->images[j].deleted &&
                    berth_digest_equal(&r->images[j].manifest, &r->images[i].manifest);
            }
            assert_true(shared_deleted);
            continue;
        }
        berth_manifest_release(m);
        verify_image(r->store, &r->images[i]);
        survivors++;
    }
    assert_true(survivors > 0);

    /* past the grace period, one more collection leaves nothing unreferenced: a second one
       finds nothing to do */
    sleep(GRACE + 1);
    berth_gc_options_init(&opts);
    opts.grace_seconds = GRACE;
    assert_int_equal(berth_store_gc(r->store, &opts, &stats), 0);
    assert_int_equal(berth_store_gc(r->store, &opts, &stats), 0);
    assert_int_equal(stats.links_removed + stats.blobs_removed + stats.manifests_removed, 0);
    /* and the survivors still verify after the final sweep */
    for (size_t i = 0; i < r->count; i++) {
        const berth_stored_manifest *m = NULL;
        if (!r->images[i].deleted &&
            berth_store_manifest_get(&m, r->store, r->images[i].repo, r->images[i].tag) == 0) {
            berth_manifest_release(m);
            verify_image(r->store, &r->images[i]);
        }
    }
    print_message("%zu images pushed, %zu survive, %d gc runs, %d manifest PUTs retried\n",
                  r->count, survivors, atomic_load(&r->gc_runs), atomic_load(&r->put_retries));
    berth_store_free(r->store);
    berth__fs_rmtree(root);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gc_stress__online_gc_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
