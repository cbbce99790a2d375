/*
 * Between store.c and store_secret.c only: the store's connection under its lock, and the
 * per-stream secrets' own table (docs/store.md).
 */
#ifndef HX_STORE_STORE_INT_H
#define HX_STORE_STORE_INT_H

#include <sqlite3.h>

#include "common/err.h"
#include "common/secret.h"

struct hx_store;

/* Takes the store's lock; the connection and the storage key until hx_store_unlock_db. */
sqlite3 *hx_store_lock_db(struct hx_store *st, const struct hx_secret **key);
void hx_store_unlock_db(struct hx_store *st);
/* Makes the stream_secrets table and its trigger when missing, whatever the schema version,
 * and purges secrets without a stream (hx_store_open). */
HX_MUST_CHECK hx_err hx_store_secrets_schema(sqlite3 *db);

#endif
