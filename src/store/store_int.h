/*
 * Between store.c and store_secret.c only: the store's connection under its lock, for the
 * per-stream secrets' own table (store.c makes it with the rest of the schema; docs/store.md).
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

#endif
