/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The contract suite of metadata backends (berth/sys/meta_backend.h): one cmocka group that
 * every implementation passes (mem, fs, postgres).
 *
 * Each test asks `open` for a backend and frees it with its `free` member at the end of the
 * test. The backend need not be empty (a PostgreSQL database keeps what earlier tests and runs
 * left), but what it holds must not disturb the suite: every test works on names under a
 * prefix drawn at random per run ("ct" and 8 hex digits: repositories "<prefix>/<test>...",
 * upload ids "<hex>-<n>", blobs and manifests whose bytes hold the prefix, so their digests are
 * new), and counts only what it made. Garbage collection claims walk past blobs of others
 * (each released with deleted = false), and the limit on all sessions is set relative to the
 * sessions already there, so another user of the same engine at the same time may at worst
 * make the total-limit test fail, never corrupt anything.
 *
 * A garbage collector running against the same engine at the same time (another test) may
 * claim the suite's unlinked blobs: with older_than in the future it may delete them, and the
 * gc tests fail; run those alone.
 *
 * Times: the suite passes older_than values relative to time(NULL): time(NULL) + 3600 for
 * "everything is old enough", time(NULL) - 3600 for "nothing made now is", and once, after a
 * 2-second sleep, time(NULL) - 1 (a touch refreshes the time gc goes by), so the backend's
 * clock (a database server's now()) must agree with this process's to within a second. Tests of
 * waiting (blob_touch and blob_link of a claimed blob) hold a claim for 0.3 s each. Races
 * (a manifest put against an unlink of its layer or a delete of its child, a listing of tags
 * while a put moves them, a gc claim against a mount) run in two threads on one backend.
 */
#ifndef BERTH_TEST_META_CONTRACT_H
#define BERTH_TEST_META_CONTRACT_H

#include <berth/sys/meta_backend.h>

/**
 * Run the suite against backends made by `open`.
 * @param label    the group's name in cmocka's output, e.g. "meta_contract/mem"
 * @param open     gives a backend in *out (0) or fails (non-zero: the test fails)
 * @param payload  passed to `open`
 * @return the number of failed tests (0: all passed)
 */
int meta_contract_run(const char *label, int (*open)(berth_meta_backend **out, void *payload),
                      void *payload);

#endif
