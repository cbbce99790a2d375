/* The durable key store: SQLite (WAL) + AES-256-GCM sealed keys. docs/store.md has the schema. */
#include "store/store.h"
#include "store/seal.h"
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#define SCHEMA_VERSION 3 /* 2: streams.owner; 3: streams.qkd_ksid is the KME's text */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS streams ("
    " ksid BLOB PRIMARY KEY, role INTEGER NOT NULL, peer BLOB NOT NULL,"
    " src TEXT NOT NULL, dst TEXT NOT NULL, chunk INTEGER NOT NULL, timeout_ms INTEGER NOT NULL,"
    " ttl_s INTEGER NOT NULL, qkd_ksid TEXT NOT NULL, peer_sae TEXT NOT NULL,"
    " qkd_next INTEGER NOT NULL, produced INTEGER NOT NULL, next_get INTEGER NOT NULL,"
    " peer_closed INTEGER NOT NULL, opened_at INTEGER NOT NULL,"
    " owner TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS keys ("
    " ksid BLOB NOT NULL REFERENCES streams(ksid) ON DELETE CASCADE,"
    " pos INTEGER NOT NULL, state INTEGER NOT NULL, sealed BLOB,"
    " PRIMARY KEY (ksid, pos)) WITHOUT ROWID;";

/* v2 -> v3: the QKD stream id becomes the KME's text (opaque ids, common/qkdid.h); a stored
 * 16-byte UUID becomes its lowercase text, the nil one "" (none). The column keeps its
 * declared type (BLOB: no affinity, so the text stays text); new stores declare TEXT. */
static const char upgrade_v3[] =
    "UPDATE streams SET qkd_ksid = CASE"
    " WHEN typeof(qkd_ksid) != 'blob' THEN qkd_ksid"
    " WHEN length(qkd_ksid) != 16 OR qkd_ksid = zeroblob(16) THEN ''"
    " ELSE lower(substr(hex(qkd_ksid), 1, 8) || '-' || substr(hex(qkd_ksid), 9, 4) || '-' ||"
    " substr(hex(qkd_ksid), 13, 4) || '-' || substr(hex(qkd_ksid), 17, 4) || '-' ||"
    " substr(hex(qkd_ksid), 21, 12)) END;";

/*
 * The per-stream secrets (store_secret.c): made when missing whatever the schema version (no
 * user_version step: it applies on top of any schema from 2 on), rows going with their stream
 * by a trigger, orphans (a secret written before its stream's row, then a crash) purged at open.
 */
static const char secrets_schema[] =
    "CREATE TABLE IF NOT EXISTS stream_secrets ("
    " ksid BLOB PRIMARY KEY, sealed BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TRIGGER IF NOT EXISTS stream_secrets_drop AFTER DELETE ON streams"
    " BEGIN DELETE FROM stream_secrets WHERE ksid=OLD.ksid; END;"
    "DELETE FROM stream_secrets WHERE ksid NOT IN (SELECT ksid FROM streams);";

enum stmt {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_PUT_STREAM,
    S_DROP_STREAM,
    S_HAS_STREAM,
    S_INSERT_KEY,
    S_SET_QKD_NEXT,
    S_SET_PRODUCED,
    S_PURGE,
    S_READY,
    S_DISCARD,
    S_DELIVER_DEL,
    S_DELIVER_MARK,
    S_SET_NEXT_GET,
    S_COMMITTED,
    S_GIVE_UP,
    S_EXPIRE,
    S_LIST_STREAMS,
    S_LIST_KEYS,
    S_COUNT,
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_PUT_STREAM] =
        "INSERT INTO streams VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)"
        " ON CONFLICT (ksid) DO UPDATE SET qkd_next=max(qkd_next, ?11), next_get=?13,"
        " peer_closed=?14, peer_sae=?10, qkd_ksid=?9, owner=?16",
    [S_DROP_STREAM] = "DELETE FROM streams WHERE ksid=?1",
    [S_HAS_STREAM] = "SELECT produced FROM streams WHERE ksid=?1",
    [S_INSERT_KEY] = "INSERT OR REPLACE INTO keys VALUES (?1,?2,?3,?4)",
    [S_SET_QKD_NEXT] = "UPDATE streams SET qkd_next=max(qkd_next, ?2) WHERE ksid=?1",
    [S_SET_PRODUCED] = "UPDATE streams SET produced=?2 WHERE ksid=?1",
    [S_PURGE] = "DELETE FROM keys WHERE ksid=?1 AND pos>=?3 AND pos<?2 AND state=2",
    [S_READY] = "UPDATE keys SET state=1 WHERE ksid=?1 AND pos>=?2 AND pos<?3 AND state=0",
    [S_DISCARD] = "DELETE FROM keys WHERE ksid=?1 AND pos>=?2 AND pos<?3",
    [S_DELIVER_DEL] = "DELETE FROM keys WHERE ksid=?1 AND pos=?2 AND state=1",
    [S_DELIVER_MARK] = "UPDATE keys SET state=2, sealed=NULL WHERE ksid=?1 AND pos=?2 AND state=1",
    [S_SET_NEXT_GET] = "UPDATE streams SET next_get=?2 WHERE ksid=?1",
    [S_COMMITTED] = "SELECT state FROM keys WHERE ksid=?1 AND pos=?2",
    [S_GIVE_UP] = "INSERT OR REPLACE INTO keys VALUES (?1,?2,2,NULL)",
    [S_EXPIRE] = "DELETE FROM streams WHERE ttl_s>0 AND opened_at+ttl_s<=?1",
    [S_LIST_STREAMS] = "SELECT * FROM streams ORDER BY opened_at",
    [S_LIST_KEYS] = "SELECT pos, state, sealed FROM keys WHERE ksid=?1 ORDER BY pos",
};

struct hx_store {
    pthread_mutex_t lock;
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    struct hx_secret *key;
};

/* ---- statements ---- */

static sqlite3_stmt *stmt(struct hx_store *st, enum stmt s)
{
    sqlite3_reset(st->st[s]);
    sqlite3_clear_bindings(st->st[s]);
    return st->st[s];
}

static void bind_id(sqlite3_stmt *s, int i, const struct hx_uuid *id)
{
    sqlite3_bind_blob(s, i, id->b, sizeof(id->b), SQLITE_STATIC);
}

static void bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
    sqlite3_bind_int64(s, i, (sqlite3_int64)v);
}

/* Steps a statement that returns no rows. */
static hx_err run(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);

    sqlite3_reset(s);
    if (rc == SQLITE_DONE) {
        return HX_OK;
    }
    return rc == SQLITE_FULL ? HX_ERR_NOSPACE : HX_ERR_IO;
}

static hx_err begin(struct hx_store *st)
{
    pthread_mutex_lock(&st->lock);
    hx_err e = run(stmt(st, S_BEGIN));
    if (e != HX_OK) {
        pthread_mutex_unlock(&st->lock);
    }
    return e;
}

/* Commits when e is HX_OK, else rolls back; releases the lock; returns e or the commit's error. */
static hx_err end(struct hx_store *st, hx_err e)
{
    if (e == HX_OK) {
        e = run(stmt(st, S_COMMIT));
    }
    if (e != HX_OK) {
        hx_ignore(run(stmt(st, S_ROLLBACK)));
    }
    pthread_mutex_unlock(&st->lock);
    return e;
}

/* The stream's watermark, or HX_ERR_NOT_FOUND (store lock held). */
static hx_err stream_produced(struct hx_store *st, const struct hx_uuid *ksid, uint64_t *produced)
{
    sqlite3_stmt *s = stmt(st, S_HAS_STREAM);
    int rc;

    bind_id(s, 1, ksid);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *produced = (uint64_t)sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? HX_OK : rc == SQLITE_DONE ? HX_ERR_NOT_FOUND : HX_ERR_IO;
}

/* Is pos committed here: a READY or DELIVERED row (store lock held)? */
static hx_err committed_row(struct hx_store *st, const struct hx_uuid *ksid, uint64_t pos,
                            bool *out)
{
    sqlite3_stmt *s = stmt(st, S_COMMITTED);
    int rc;

    bind_id(s, 1, ksid);
    bind_u64(s, 2, pos);
    rc = sqlite3_step(s);
    *out = rc == SQLITE_ROW && sqlite3_column_int(s, 0) != HX_STORE_PREPARED;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? HX_OK : HX_ERR_IO;
}

/*
 * Moves the watermark from old to produced and deletes the delivered rows it passed (store lock
 * held). Only [old, produced) is looked at: a DELIVERED row is only ever written at or above the
 * watermark of its time (a delivery below it deletes the row, a give-up starts at it), and every
 * move purges what it passes, so none is ever left below the watermark. Purging below the old
 * watermark as well scanned every buffered key of the stream on every batch.
 */
static hx_err set_produced(struct hx_store *st, const struct hx_uuid *ksid, uint64_t old,
                           uint64_t produced)
{
    sqlite3_stmt *s = stmt(st, S_SET_PRODUCED);
    hx_err e;

    bind_id(s, 1, ksid);
    bind_u64(s, 2, produced);
    if ((e = run(s)) != HX_OK) {
        return e;
    }
    s = stmt(st, S_PURGE);
    bind_id(s, 1, ksid);
    bind_u64(s, 2, produced);
    bind_u64(s, 3, old);
    return run(s);
}

/* Moves the watermark over the committed positions contiguous with it (store lock held). */
static hx_err advance(struct hx_store *st, const struct hx_uuid *ksid)
{
    uint64_t produced, p;
    bool c = true;
    hx_err e;

    if ((e = stream_produced(st, ksid, &produced)) != HX_OK) {
        return e;
    }
    for (p = produced; c; p++) {
        if ((e = committed_row(st, ksid, p, &c)) != HX_OK) {
            return e;
        }
        if (!c) {
            break;
        }
    }
    return p == produced ? HX_OK : set_produced(st, ksid, produced, p);
}

/* ---- open / close ---- */

hx_err hx_store_open(const char *dir, enum hx_store_sync sync, struct hx_store **out, char *why,
                     size_t why_len)
{
    struct hx_store *st = NULL;
    char path[4096], pragmas[200];
    int fd, v = -1;
    sqlite3_stmt *q = NULL;
    hx_err e;

    *out = NULL;
    if ((e = hx_store_make_dir(dir, why, why_len)) != HX_OK) {
        return e;
    }
    if ((st = calloc(1, sizeof(*st))) == NULL) {
        return HX_ERR_NOMEM;
    }
    pthread_mutex_init(&st->lock, NULL);
    if ((e = hx_store_storage_key(dir, &st->key, why, why_len)) != HX_OK) {
        goto fail;
    }
    /* The database and SQLite's -wal and -shm files (made with its mode) are ours alone. */
    snprintf(path, sizeof(path), "%s/hykexd.db", dir);
    if ((fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
        snprintf(why, why_len, "cannot open %s: %s", path, strerror(errno));
        e = HX_ERR_IO;
        goto fail;
    }
    close(fd);
    if (chmod(path, 0600) != 0 ||
        sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK) {
        snprintf(why, why_len, "cannot open the store %s: %s", path,
                 st->db != NULL ? sqlite3_errmsg(st->db) : "out of memory");
        e = HX_ERR_IO;
        goto fail;
    }
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;"
             " PRAGMA secure_delete=ON; PRAGMA busy_timeout=5000;",
             sync == HX_STORE_SYNC_FULL ? "FULL" : "NORMAL");
    if (sqlite3_exec(st->db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(st->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW) {
        snprintf(why, why_len, "cannot set up the store %s: %s", path, sqlite3_errmsg(st->db));
        e = HX_ERR_IO;
        goto fail;
    }
    v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    q = NULL;
    if ((v == 1 &&
         sqlite3_exec(st->db, "ALTER TABLE streams ADD COLUMN owner TEXT NOT NULL DEFAULT ''", NULL,
                      NULL, NULL) != SQLITE_OK) ||
        ((v == 1 || v == 2) && sqlite3_exec(st->db, upgrade_v3, NULL, NULL, NULL) != SQLITE_OK)) {
        snprintf(why, why_len, "cannot upgrade the store %s to schema %d", path, SCHEMA_VERSION);
        e = HX_ERR_IO;
        goto fail;
    }
    if (v >= 0 && v <= 2) {
        snprintf(pragmas, sizeof(pragmas), "PRAGMA user_version=%d", SCHEMA_VERSION);
        if (sqlite3_exec(st->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(why, why_len, "cannot set up the store %s", path);
            e = HX_ERR_IO;
            goto fail;
        }
    } else if (v != SCHEMA_VERSION) {
        snprintf(why, why_len, "store %s has schema version %d; this hykexd reads %d", path, v,
                 SCHEMA_VERSION);
        e = HX_ERR_UNSUPPORTED;
        goto fail;
    }
    if (sqlite3_exec(st->db, secrets_schema, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(why, why_len, "cannot set up the stream secrets of the store %s: %s", path,
                 sqlite3_errmsg(st->db));
        e = HX_ERR_IO;
        goto fail;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->st[i],
                               NULL) != SQLITE_OK) {
            snprintf(why, why_len, "store statement %d: %s", i, sqlite3_errmsg(st->db));
            e = HX_ERR_INTERNAL;
            goto fail;
        }
    }
    *out = st;
    return HX_OK;
fail:
    sqlite3_finalize(q);
    hx_store_free(st);
    return e;
}

void hx_store_free(struct hx_store *st)
{
    if (st == NULL) {
        return;
    }
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(st->st[i]);
    }
    sqlite3_close(st->db);
    hx_secret_free(st->key);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

/* ---- streams ---- */

hx_err hx_store_put_stream(struct hx_store *st, const struct hx_store_stream *r)
{
    sqlite3_stmt *s;
    hx_err e;

    if ((e = begin(st)) != HX_OK) {
        return e;
    }
    s = stmt(st, S_PUT_STREAM);
    bind_id(s, 1, &r->ksid);
    sqlite3_bind_int(s, 2, r->role);
    bind_id(s, 3, &r->peer);
    sqlite3_bind_text(s, 4, r->src, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, r->dst, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, r->chunk);
    sqlite3_bind_int64(s, 7, r->timeout_ms);
    sqlite3_bind_int64(s, 8, r->ttl_s);
    sqlite3_bind_text(s, 9, r->qkd_ksid.s, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 10, r->peer_sae, -1, SQLITE_STATIC);
    bind_u64(s, 11, r->qkd_next);
    bind_u64(s, 12, r->produced);
    bind_u64(s, 13, r->next_get);
    sqlite3_bind_int(s, 14, r->peer_closed);
    sqlite3_bind_int64(s, 15, r->opened_at);
    sqlite3_bind_text(s, 16, r->owner, -1, SQLITE_STATIC);
    return end(st, run(s));
}

hx_err hx_store_drop_stream(struct hx_store *st, const struct hx_uuid *ksid)
{
    sqlite3_stmt *s;
    hx_err e;

    if ((e = begin(st)) != HX_OK) {
        return e;
    }
    s = stmt(st, S_DROP_STREAM);
    bind_id(s, 1, ksid);
    return end(st, run(s));
}

/* ---- batches ---- */

hx_err hx_store_put_batch(struct hx_store *st, const struct hx_uuid *ksid, uint64_t first,
                          uint32_t count, struct hx_secret *const *keys,
                          enum hx_store_key_state state, uint64_t qkd_next)
{
    uint8_t *sealed;
    size_t total = 0, off = 0;
    uint64_t old;
    sqlite3_stmt *s;
    hx_err e = HX_OK;

    /* Sealed before the store's lock is taken: a GET_KEY recording its delivery waits for the
     * batch's rows, not for its AES-GCM (ciphertexts only, so the normal heap). */
    for (uint32_t i = 0; i < count; i++) {
        total += hx_secret_len(keys[i]) + HX_STORE_SEAL_OVERHEAD;
    }
    if ((sealed = malloc(total > 0 ? total : 1)) == NULL) {
        return HX_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < count && e == HX_OK; i++) {
        e = hx_store_seal(st->key, ksid, first + i, keys[i], sealed + off);
        off += hx_secret_len(keys[i]) + HX_STORE_SEAL_OVERHEAD;
    }
    if (e != HX_OK || (e = begin(st)) != HX_OK) {
        free(sealed);
        return e;
    }
    if ((e = stream_produced(st, ksid, &old)) != HX_OK) {
        goto out;
    }
    off = 0;
    for (uint32_t i = 0; i < count; i++) {
        size_t len = hx_secret_len(keys[i]) + HX_STORE_SEAL_OVERHEAD;
        s = stmt(st, S_INSERT_KEY);
        bind_id(s, 1, ksid);
        bind_u64(s, 2, first + i);
        sqlite3_bind_int(s, 3, (int)state);
        sqlite3_bind_blob(s, 4, sealed + off, (int)len, SQLITE_STATIC);
        off += len;
        if ((e = run(s)) != HX_OK) {
            goto out;
        }
    }
    s = stmt(st, S_SET_QKD_NEXT);
    bind_id(s, 1, ksid);
    bind_u64(s, 2, qkd_next);
    if ((e = run(s)) == HX_OK && state == HX_STORE_READY && first <= old) {
        e = advance(st, ksid);
    }
out:
    e = end(st, e);
    free(sealed); /* ciphertexts only; the statements were reset by run() */
    return e;
}

static hx_err range_op(struct hx_store *st, enum stmt which, const struct hx_uuid *ksid,
                       uint64_t first, uint32_t count)
{
    sqlite3_stmt *s = stmt(st, which);

    bind_id(s, 1, ksid);
    bind_u64(s, 2, first);
    bind_u64(s, 3, first + count);
    return run(s);
}

hx_err hx_store_ready_batch(struct hx_store *st, const struct hx_uuid *ksid, uint64_t first,
                            uint32_t count)
{
    uint64_t old;
    hx_err e;

    if ((e = begin(st)) != HX_OK) {
        return e;
    }
    if ((e = stream_produced(st, ksid, &old)) == HX_OK &&
        (e = range_op(st, S_READY, ksid, first, count)) == HX_OK && first <= old) {
        e = advance(st, ksid);
    }
    return end(st, e);
}

hx_err hx_store_discard_batch(struct hx_store *st, const struct hx_uuid *ksid, uint64_t first,
                              uint32_t count)
{
    hx_err e;

    if ((e = begin(st)) != HX_OK) {
        return e;
    }
    return end(st, range_op(st, S_DISCARD, ksid, first, count));
}

hx_err hx_store_give_up(struct hx_store *st, const struct hx_uuid *ksid, uint64_t first,
                        uint32_t count)
{
    uint64_t old;
    hx_err e;

    if ((e = begin(st)) != HX_OK) {
        return e;
    }
    if ((e = stream_produced(st, ksid, &old)) != HX_OK) {
        return end(st, e);
    }
    /* Each position becomes a DELIVERED row without a key: done, nothing to hand out. */
    for (uint64_t p = first > old ? first : old; e == HX_OK && p < first + count; p++) {
        sqlite3_stmt *s = stmt(st, S_GIVE_UP);
        bind_id(s, 1, ksid);
        bind_u64(s, 2, p);
        e = run(s);
    }
    if (e == HX_OK) {
        e = advance(st, ksid);
    }
    return end(st, e);
}

hx_err hx_store_deliver(struct hx_store *st, const struct hx_uuid *ksid, uint64_t pos,
                        uint64_t next_get)
{
    uint64_t produced;
    sqlite3_stmt *s;
    hx_err e;

    if ((e = begin(st)) != HX_OK) {
        return e;
    }
    if ((e = stream_produced(st, ksid, &produced)) != HX_OK) {
        return end(st, e);
    }
    s = stmt(st, pos < produced ? S_DELIVER_DEL : S_DELIVER_MARK);
    bind_id(s, 1, ksid);
    bind_u64(s, 2, pos);
    if ((e = run(s)) == HX_OK && sqlite3_changes(st->db) != 1) {
        e = HX_ERR_NOT_FOUND;
    }
    if (e == HX_OK) {
        s = stmt(st, S_SET_NEXT_GET);
        bind_id(s, 1, ksid);
        bind_u64(s, 2, next_get);
        e = run(s);
    }
    return end(st, e);
}

hx_err hx_store_reserve_qkd(struct hx_store *st, const struct hx_uuid *ksid, uint64_t qkd_next)
{
    sqlite3_stmt *s;
    hx_err e;

    if ((e = begin(st)) != HX_OK) {
        return e;
    }
    s = stmt(st, S_SET_QKD_NEXT);
    bind_id(s, 1, ksid);
    bind_u64(s, 2, qkd_next);
    return end(st, run(s));
}

hx_err hx_store_produced(struct hx_store *st, const struct hx_uuid *ksid, uint64_t *out)
{
    hx_err e;

    pthread_mutex_lock(&st->lock);
    e = stream_produced(st, ksid, out);
    pthread_mutex_unlock(&st->lock);
    return e;
}

/* ---- start-up ---- */

hx_err hx_store_expire(struct hx_store *st, int64_t now, uint64_t *expired)
{
    sqlite3_stmt *s;
    hx_err e;

    *expired = 0;
    if ((e = begin(st)) != HX_OK) {
        return e;
    }
    s = stmt(st, S_EXPIRE);
    sqlite3_bind_int64(s, 1, now);
    if ((e = run(s)) == HX_OK) {
        *expired = (uint64_t)sqlite3_changes(st->db);
    }
    return end(st, e);
}

static void column_id(sqlite3_stmt *s, int col, struct hx_uuid *out)
{
    memset(out, 0, sizeof(*out));
    if (sqlite3_column_bytes(s, col) == (int)sizeof(out->b)) {
        memcpy(out->b, sqlite3_column_blob(s, col), sizeof(out->b));
    }
}

/* A KME's stream id: text (v3); a 16-byte blob left by an older hykexd is its UUID. Anything
 * else (a row edited by hand) reads as none: the stream then has no QKD stream open. */
static void column_qkd_ksid(sqlite3_stmt *s, int col, struct hx_qkd_ksid *out)
{
    char why[120];

    memset(out, 0, sizeof(*out));
    if (sqlite3_column_type(s, col) == SQLITE_BLOB) {
        struct hx_uuid u;
        column_id(s, col, &u);
        hx_qkd_ksid_from_uuid(out, &u);
    } else if (sqlite3_column_type(s, col) == SQLITE_TEXT && sqlite3_column_bytes(s, col) > 0 &&
               hx_qkd_ksid_set(out, (const char *)sqlite3_column_text(s, col),
                               (size_t)sqlite3_column_bytes(s, col), why, sizeof(why)) != HX_OK) {
        memset(out, 0, sizeof(*out));
    }
}

static void column_text(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);

    snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

static hx_err load_keys(struct hx_store *st, const struct hx_uuid *ksid, hx_store_key_fn key_fn,
                        void *arg)
{
    sqlite3_stmt *s = st->st[S_LIST_KEYS];
    hx_err e = HX_OK;
    int rc;

    sqlite3_reset(s);
    bind_id(s, 1, ksid);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t pos = (uint64_t)sqlite3_column_int64(s, 0);
        int state = sqlite3_column_int(s, 1);
        struct hx_secret *k = NULL;
        if (state != HX_STORE_DELIVERED &&
            (e = hx_store_unseal(st->key, ksid, pos, sqlite3_column_blob(s, 2),
                                 (size_t)sqlite3_column_bytes(s, 2), &k)) != HX_OK) {
            break;
        }
        if ((e = key_fn(arg, ksid, pos, (enum hx_store_key_state)state, k)) != HX_OK) {
            break;
        }
    }
    if (e == HX_OK && rc != SQLITE_DONE) {
        e = HX_ERR_IO;
    }
    sqlite3_reset(s);
    return e;
}

hx_err hx_store_load(struct hx_store *st, int64_t now, hx_store_stream_fn stream_fn,
                     hx_store_key_fn key_fn, void *arg, uint64_t *expired)
{
    sqlite3_stmt *s;
    struct hx_store_stream *r = NULL;
    hx_err e;
    int rc;

    if ((e = hx_store_expire(st, now, expired)) != HX_OK) {
        return e;
    }
    if ((r = calloc(1, sizeof(*r))) == NULL) {
        return HX_ERR_NOMEM;
    }
    pthread_mutex_lock(&st->lock);
    s = st->st[S_LIST_STREAMS];
    sqlite3_reset(s);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(r, 0, sizeof(*r));
        column_id(s, 0, &r->ksid);
        r->role = sqlite3_column_int(s, 1);
        column_id(s, 2, &r->peer);
        column_text(s, 3, r->src, sizeof(r->src));
        column_text(s, 4, r->dst, sizeof(r->dst));
        r->chunk = (uint32_t)sqlite3_column_int64(s, 5);
        r->timeout_ms = (uint32_t)sqlite3_column_int64(s, 6);
        r->ttl_s = (uint32_t)sqlite3_column_int64(s, 7);
        column_qkd_ksid(s, 8, &r->qkd_ksid);
        column_text(s, 9, r->peer_sae, sizeof(r->peer_sae));
        r->qkd_next = (uint64_t)sqlite3_column_int64(s, 10);
        r->produced = (uint64_t)sqlite3_column_int64(s, 11);
        r->next_get = (uint64_t)sqlite3_column_int64(s, 12);
        r->peer_closed = sqlite3_column_int(s, 13) != 0;
        r->opened_at = sqlite3_column_int64(s, 14);
        column_text(s, 15, r->owner, sizeof(r->owner));
        if ((e = stream_fn(arg, r)) != HX_OK ||
            (e = load_keys(st, &r->ksid, key_fn, arg)) != HX_OK) {
            break;
        }
    }
    if (e == HX_OK && rc != SQLITE_DONE) {
        e = HX_ERR_IO;
    }
    sqlite3_reset(s);
    pthread_mutex_unlock(&st->lock);
    free(r);
    return e;
}

/* ---- for store_secret.c (store_int.h) ---- */

sqlite3 *hx_store_lock_db(struct hx_store *st, const struct hx_secret **key)
{
    pthread_mutex_lock(&st->lock);
    *key = st->key;
    return st->db;
}

void hx_store_unlock_db(struct hx_store *st)
{
    pthread_mutex_unlock(&st->lock);
}
