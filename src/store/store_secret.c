/*
 * The durable store's per-stream secrets (store.h: hx_store_put_secret, hx_store_get_secret):
 * a table of its own beside the schema's versions (its SQL is store.c's, with the rest of the
 * schema), each secret sealed as a key of its stream.
 */
#include <stdint.h>
#include <stdlib.h>

#include "store/seal.h"
#include "store/store.h"
#include "store/store_int.h"

/* A stream secret is sealed as a key at this position: no key row can take its place. */
#define SECRET_POS UINT64_MAX

hx_err hx_store_put_secret(struct hx_store *st, const struct hx_uuid *ksid,
                           const struct hx_secret *k)
{
    size_t len = hx_secret_len(k) + HX_STORE_SEAL_OVERHEAD;
    uint8_t *buf = malloc(len);
    const struct hx_secret *key;
    sqlite3_stmt *s = NULL;
    sqlite3 *db;
    hx_err e;

    if (buf == NULL) {
        return HX_ERR_NOMEM;
    }
    db = hx_store_lock_db(st, &key);
    if ((e = hx_store_seal(key, ksid, SECRET_POS, k, buf)) == HX_OK) {
        /* one statement: its own transaction */
        if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO stream_secrets VALUES (?1,?2)", -1, &s,
                               NULL) != SQLITE_OK) {
            e = HX_ERR_IO;
        } else {
            sqlite3_bind_blob(s, 1, ksid->b, sizeof(ksid->b), SQLITE_STATIC);
            sqlite3_bind_blob(s, 2, buf, (int)len, SQLITE_STATIC);
            int rc = sqlite3_step(s);
            e = rc == SQLITE_DONE ? HX_OK : rc == SQLITE_FULL ? HX_ERR_NOSPACE : HX_ERR_IO;
        }
        sqlite3_finalize(s);
    }
    hx_store_unlock_db(st);
    free(buf); /* ciphertext only */
    return e;
}

hx_err hx_store_get_secret(struct hx_store *st, const struct hx_uuid *ksid, struct hx_secret **out)
{
    const struct hx_secret *key;
    sqlite3_stmt *s = NULL;
    hx_err e = HX_ERR_IO;
    sqlite3 *db;

    *out = NULL;
    db = hx_store_lock_db(st, &key);
    if (sqlite3_prepare_v2(db, "SELECT sealed FROM stream_secrets WHERE ksid=?1", -1, &s, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_blob(s, 1, ksid->b, sizeof(ksid->b), SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            e = hx_store_unseal(key, ksid, SECRET_POS, sqlite3_column_blob(s, 0),
                                (size_t)sqlite3_column_bytes(s, 0), out);
        } else if (rc == SQLITE_DONE) {
            e = HX_ERR_NOT_FOUND;
        }
    }
    sqlite3_finalize(s);
    hx_store_unlock_db(st);
    return e;
}
