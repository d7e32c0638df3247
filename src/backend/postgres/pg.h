/* placeholder (the pg branch replaces it) */
#ifndef BERTH_BACKEND_PG_H
#define BERTH_BACKEND_PG_H
#include <berth/sys/meta_backend.h>
typedef struct berth_pg_options { const char *conninfo; unsigned pool_size; } berth_pg_options;
int berth_pg_meta_backend_new(berth_meta_backend **out, const berth_pg_options *opts);
#endif
