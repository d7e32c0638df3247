/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal: the in-memory backends, for tests. Both interfaces (berth/sys/blob_backend.h and
 * berth/sys/meta_backend.h) held in the process's memory, behind one mutex per backend, with
 * condition variables where the contract waits (blob_touch and blob_link of a claimed blob).
 * Nothing survives free(). Sorted orders are byte orders (strcmp).
 */
#ifndef BERTH_BACKEND_MEM_H
#define BERTH_BACKEND_MEM_H

#include <berth/sys/blob_backend.h>
#include <berth/sys/meta_backend.h>

/**
 * A new, empty in-memory blob backend ("mem"). open_fd and url are NULL; reap is provided.
 * A session's sync() state is a short text ("mem:<size>").
 * @param out  receives the backend, freed with its free() member
 * @return 0, BERTH_ENOMEM
 */
int berth_mem_blob_backend_new(berth_blob_backend **out);

/**
 * A new, empty in-memory metadata backend ("mem"). Upload sessions taken with upload_acquire
 * belong to this process only, so a holder "dies" with the process.
 * @param out  receives the backend, freed with its free() member
 * @return 0, BERTH_ENOMEM
 */
int berth_mem_meta_backend_new(berth_meta_backend **out);

#endif
