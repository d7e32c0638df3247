/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The contract suite of blob backends (berth/sys/blob_backend.h): one cmocka group that every
 * implementation passes (mem, fs, s3), as libgit2 runs its ODB tests against each backend.
 *
 * Each test asks `open` for a fresh, empty backend and frees it with its `free` member at the
 * end of the test. Optional members (open_fd, url, reap) are tested when they are not NULL and
 * skipped (reported as skipped) when they are. The suite writes about 25 MiB in all, in 64 KiB,
 * 1000-byte and one-byte pieces that cross the 5 MiB and 10 MiB part boundaries an S3 backend
 * stages, and sleeps 2 seconds once (reap: sessions "written more than 0 seconds ago").
 *
 * Session ids are "<12 random hex digits>-<n>", new per run. The reap test removes every session
 * of the backend that is not its own live one: a backend that shares storage with others (one
 * bucket for several tests running at once) must be scoped by `open` (a key prefix per backend,
 * which foreach and reap stay within), or it reaps the sessions of the others.
 */
#ifndef BERTH_TEST_BLOB_CONTRACT_H
#define BERTH_TEST_BLOB_CONTRACT_H

#include <berth/sys/blob_backend.h>

/**
 * Run the suite against backends made by `open`.
 * @param label    the group's name in cmocka's output, e.g. "blob_contract/mem"
 * @param open     gives a new empty backend in *out (0) or fails (non-zero: the test fails)
 * @param payload  passed to `open`
 * @return the number of failed tests (0: all passed)
 */
int blob_contract_run(const char *label, int (*open)(berth_blob_backend **out, void *payload),
                      void *payload);

#endif
