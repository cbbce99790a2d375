/* Unit tests: the durable key store (src/store/store.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"

#define NKEYS 8
#define KLEN 32

struct fixture {
    char dir[64];
    struct hx_store *st;
    struct hx_uuid ksid;
    struct hx_secret *keys[NKEYS];
};

/* What a load saw. */
struct seen {
    size_t n_streams;
    struct hx_store_stream last;
    size_t n_keys;
    uint64_t pos[64];
    int state[64];
    uint8_t bytes[64][KLEN];
    bool has_bytes[64];
};

static hx_err on_stream(void *arg, const struct hx_store_stream *r)
{
    struct seen *s = arg;

    s->n_streams++;
    s->last = *r;
    return HX_OK;
}

static hx_err on_key(void *arg, const struct hx_uuid *ksid, uint64_t pos,
                     enum hx_store_key_state state, struct hx_secret *key)
{
    struct seen *s = arg;

    (void)ksid;
    if (s->n_keys < 64) {
        s->pos[s->n_keys] = pos;
        s->state[s->n_keys] = (int)state;
        s->has_bytes[s->n_keys] = key != NULL;
        if (key != NULL) {
            assert_int_equal(hx_secret_len(key), KLEN);
            memcpy(s->bytes[s->n_keys], hx_secret_data(key), KLEN);
        }
        s->n_keys++;
    }
    hx_secret_free(key);
    return HX_OK;
}

static void stream_row(struct fixture *f, struct hx_store_stream *r)
{
    memset(r, 0, sizeof(*r));
    r->ksid = f->ksid;
    r->role = 1;
    memset(r->peer.b, 0x22, sizeof(r->peer.b));
    snprintf(r->src, sizeof(r->src), "hybrid://a@x?hybridization=hkdf&key_sources=QKD");
    snprintf(r->dst, sizeof(r->dst), "hybrid://b@y?hybridization=hkdf&key_sources=QKD");
    r->chunk = KLEN;
    r->timeout_ms = 1000;
    r->ttl_s = 3600;
    r->opened_at = 1000;
    snprintf(r->peer_sae, sizeof(r->peer_sae), "sae-b");
    snprintf(r->owner, sizeof(r->owner), "uid:1000");
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct hx_store_stream r;
    char why[300];

    char tmp[32] = "/tmp/hx-store-XXXXXX";

    assert_non_null(mkdtemp(tmp));
    snprintf(f->dir, sizeof(f->dir), "%s/state", tmp); /* made by the store */
    assert_int_equal(hx_store_open(f->dir, HX_STORE_SYNC_NORMAL, &f->st, why, sizeof(why)), HX_OK);
    memset(f->ksid.b, 0x11, sizeof(f->ksid.b));
    for (size_t i = 0; i < NKEYS; i++) {
        uint8_t b[KLEN];
        memset(b, (int)(0xa0 + i), sizeof(b));
        assert_int_equal(hx_secret_from(b, sizeof(b), &f->keys[i]), HX_OK);
    }
    stream_row(f, &r);
    assert_int_equal(hx_store_put_stream(f->st, &r), HX_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    hx_store_free(f->st);
    for (size_t i = 0; i < NKEYS; i++) {
        hx_secret_free(f->keys[i]);
    }
    f->dir[strlen(f->dir) - strlen("/state")] = '\0';
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void reopen(struct fixture *f)
{
    char why[300];

    hx_store_free(f->st);
    f->st = NULL;
    assert_int_equal(hx_store_open(f->dir, HX_STORE_SYNC_FULL, &f->st, why, sizeof(why)), HX_OK);
}

static void load(struct fixture *f, struct seen *s, int64_t now)
{
    uint64_t expired = 99;

    memset(s, 0, sizeof(*s));
    assert_int_equal(hx_store_load(f->st, now, on_stream, on_key, s, &expired), HX_OK);
}

static void files_are_private(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"", "/storage.key", "/hykexd.db"};
    struct stat sb;
    char p[128];

    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->dir, names[i]);
        assert_int_equal(stat(p, &sb), 0);
        assert_int_equal(sb.st_mode & 077, 0);
    }
    snprintf(p, sizeof(p), "%s/storage.key", f->dir);
    assert_int_equal(sb.st_size >= 0, 1);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_size, 32);
}

static void keys_and_stream_survive_reopen(void **state)
{
    struct fixture *f = *state;
    struct seen s;

    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, 4, f->keys, HX_STORE_READY, 77), HX_OK);
    reopen(f);
    load(f, &s, 1001);
    assert_int_equal(s.n_streams, 1);
    assert_memory_equal(s.last.ksid.b, f->ksid.b, 16);
    assert_int_equal(s.last.role, 1);
    assert_string_equal(s.last.peer_sae, "sae-b");
    assert_string_equal(s.last.owner, "uid:1000");
    assert_int_equal(s.last.produced, 4);
    assert_int_equal(s.last.qkd_next, 77);
    assert_int_equal(s.n_keys, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(s.pos[i], i);
        assert_int_equal(s.state[i], HX_STORE_READY);
        assert_true(s.has_bytes[i]);
        assert_memory_equal(s.bytes[i], hx_secret_data(f->keys[i]), KLEN);
    }
}

/* QKD indices reserved before the KME hands them out survive a restart; a lower reservation
 * (or batch) never lowers them. */
static void qkd_reservation_survives_reopen(void **state)
{
    struct fixture *f = *state;
    struct seen s;

    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, 4, f->keys, HX_STORE_READY, 77), HX_OK);
    assert_int_equal(hx_store_reserve_qkd(f->st, &f->ksid, 269), HX_OK);
    assert_int_equal(hx_store_reserve_qkd(f->st, &f->ksid, 100), HX_OK);
    reopen(f);
    load(f, &s, 1001);
    assert_int_equal(s.n_streams, 1);
    assert_int_equal(s.last.qkd_next, 269);
}

static void prepared_then_ready_or_discarded(void **state)
{
    struct fixture *f = *state;
    struct seen s;
    uint64_t produced = 99;

    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, 4, f->keys, HX_STORE_PREPARED, 4),
                     HX_OK);
    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 4, 4, f->keys + 4, HX_STORE_PREPARED, 8),
                     HX_OK);
    assert_int_equal(hx_store_produced(f->st, &f->ksid, &produced), HX_OK);
    assert_int_equal(produced, 0); /* prepared is not committed */
    assert_int_equal(hx_store_ready_batch(f->st, &f->ksid, 0, 4), HX_OK);
    assert_int_equal(hx_store_discard_batch(f->st, &f->ksid, 4, 4), HX_OK);
    load(f, &s, 1001);
    assert_int_equal(s.n_keys, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(s.state[i], HX_STORE_READY);
    }
    assert_int_equal(s.last.produced, 4); /* 4..7 discarded: the watermark stops at 4 */
}

static void delivered_once_and_purged_below_watermark(void **state)
{
    struct fixture *f = *state;
    struct seen s;
    uint64_t produced = 99;

    /* Batch 4..7 committed out of order, above the watermark 0. */
    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 4, 4, f->keys + 4, HX_STORE_READY, 8),
                     HX_OK);
    assert_int_equal(hx_store_deliver(f->st, &f->ksid, 5, 6), HX_OK);
    assert_int_equal(hx_store_deliver(f->st, &f->ksid, 5, 6), HX_ERR_NOT_FOUND);
    assert_int_equal(hx_store_produced(f->st, &f->ksid, &produced), HX_OK);
    assert_int_equal(produced, 0); /* 0..3 not committed yet */
    load(f, &s, 1001);
    assert_int_equal(s.n_keys, 4);
    assert_int_equal(s.pos[1], 5);
    assert_int_equal(s.state[1], HX_STORE_DELIVERED);
    assert_false(s.has_bytes[1]);
    assert_int_equal(s.last.next_get, 6);
    /* Batch 0..3 fills the gap: the watermark moves to 8 and the delivered row goes. */
    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, 4, f->keys, HX_STORE_READY, 8), HX_OK);
    assert_int_equal(hx_store_deliver(f->st, &f->ksid, 0, 6), HX_OK);
    load(f, &s, 1001);
    assert_int_equal(s.n_keys, 6); /* 1..3, 4, 6, 7 */
    assert_int_equal(s.last.produced, 8);
    for (size_t i = 0; i < s.n_keys; i++) {
        assert_int_equal(s.state[i], HX_STORE_READY);
        assert_true(s.pos[i] != 0 && s.pos[i] != 5);
    }
}

static void purge_covers_what_the_watermark_passes(void **state)
{
    struct fixture *f = *state;
    struct seen s;

    /* Watermark 0 -> 4; then a delivery above it (6) and a batch out of order (8..11 is not
     * written: 4..7 alone moves the watermark 4 -> 8, from a non-zero old watermark). */
    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, 4, f->keys, HX_STORE_READY, 4), HX_OK);
    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 4, 4, f->keys + 4, HX_STORE_PREPARED, 8),
                     HX_OK);
    assert_int_equal(hx_store_ready_batch(f->st, &f->ksid, 4, 4), HX_OK);
    load(f, &s, 1001);
    assert_int_equal(s.last.produced, 8);
    assert_int_equal(hx_store_deliver(f->st, &f->ksid, 6, 7), HX_OK); /* below: row deleted */
    assert_int_equal(hx_store_deliver(f->st, &f->ksid, 6, 7), HX_ERR_NOT_FOUND);
    /* A delivery above the watermark stays as a DELIVERED row until the watermark passes it. */
    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 12, 4, f->keys, HX_STORE_READY, 16),
                     HX_OK);
    assert_int_equal(hx_store_deliver(f->st, &f->ksid, 13, 14), HX_OK);
    load(f, &s, 1001);
    assert_int_equal(s.n_keys, 11); /* 0..5, 7, 12..15 */
    assert_int_equal(s.state[8], HX_STORE_DELIVERED);
    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 8, 4, f->keys + 4, HX_STORE_READY, 16),
                     HX_OK);
    load(f, &s, 1001);
    assert_int_equal(s.last.produced, 16); /* 8 -> 16: 13 purged, the READY rows stay */
    assert_int_equal(s.n_keys, 14);
    for (size_t i = 0; i < s.n_keys; i++) {
        assert_int_equal(s.state[i], HX_STORE_READY);
        assert_true(s.pos[i] != 6 && s.pos[i] != 13);
    }
}

static void given_up_positions_count_as_delivered(void **state)
{
    struct fixture *f = *state;
    struct seen s;

    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 4, 4, f->keys + 4, HX_STORE_READY, 8),
                     HX_OK);
    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, 4, f->keys, HX_STORE_PREPARED, 8),
                     HX_OK);
    assert_int_equal(hx_store_give_up(f->st, &f->ksid, 0, 4), HX_OK);
    load(f, &s, 1001);
    assert_int_equal(s.last.produced, 8);
    assert_int_equal(s.n_keys, 4); /* only 4..7; the given-up rows went below the watermark */
    assert_int_equal(s.pos[0], 4);
    assert_int_equal(hx_store_deliver(f->st, &f->ksid, 2, 3), HX_ERR_NOT_FOUND);
}

static void closed_stream_takes_its_keys(void **state)
{
    struct fixture *f = *state;
    struct seen s;

    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, 4, f->keys, HX_STORE_READY, 4), HX_OK);
    assert_int_equal(hx_store_drop_stream(f->st, &f->ksid), HX_OK);
    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 4, 4, f->keys, HX_STORE_READY, 8),
                     HX_ERR_NOT_FOUND);
    load(f, &s, 1001);
    assert_int_equal(s.n_streams, 0);
    assert_int_equal(s.n_keys, 0);
}

static void expired_streams_are_wiped(void **state)
{
    struct fixture *f = *state;
    struct seen s;
    uint64_t expired = 0;

    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, 4, f->keys, HX_STORE_READY, 4), HX_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(hx_store_load(f->st, 1000 + 3600 + 1, on_stream, on_key, &s, &expired), HX_OK);
    assert_int_equal(expired, 1);
    assert_int_equal(s.n_streams, 0);
    assert_int_equal(s.n_keys, 0);
}

/* The file never holds a key in clear: no 8-byte run of any key appears in it. */
static void no_plaintext_on_disk(void **state)
{
    struct fixture *f = *state;
    char p[128];
    FILE *fp;
    static uint8_t buf[1 << 20];
    size_t n = 0;

    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, NKEYS, f->keys, HX_STORE_READY, 8),
                     HX_OK);
    hx_store_free(f->st); /* checkpoints the WAL into the file */
    f->st = NULL;
    snprintf(p, sizeof(p), "%s/hykexd.db", f->dir);
    assert_non_null(fp = fopen(p, "rb"));
    n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    assert_true(n > 0);
    for (size_t k = 0; k < NKEYS; k++) {
        for (size_t i = 0; i + 8 <= n; i++) {
            assert_true(memcmp(buf + i, hx_secret_data(f->keys[k]), 8) != 0);
        }
    }
    reopen(f);
}

/* A sealed key moved to another position (or altered) fails the whole load. */
static void tampering_fails_the_load(void **state)
{
    struct fixture *f = *state;
    struct seen s;
    sqlite3 *db;
    char p[128];
    uint64_t expired;

    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, 2, f->keys, HX_STORE_READY, 2), HX_OK);
    hx_store_free(f->st);
    f->st = NULL;
    snprintf(p, sizeof(p), "%s/hykexd.db", f->dir);
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE keys SET sealed=(SELECT sealed FROM keys WHERE pos=0)"
                                  " WHERE pos=1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    reopen(f);
    memset(&s, 0, sizeof(s));
    assert_int_equal(hx_store_load(f->st, 1001, on_stream, on_key, &s, &expired), HX_ERR_VERIFY);
}

/* A stream's own secret: kept sealed across a reopen, bound to its stream (another stream's row
 * does not open), gone with the stream (drop, TTL), orphans purged at open; a store of an older
 * schema (no stream_secrets table) gets the table at open. */
static void stream_secret_kept_and_dropped(void **state)
{
    struct fixture *f = *state;
    struct hx_secret *got = NULL;
    struct hx_uuid other;
    uint64_t expired = 0;
    sqlite3 *db;
    char p[128];

    memset(other.b, 0x33, sizeof(other.b));
    assert_int_equal(hx_store_get_secret(f->st, &f->ksid, &got), HX_ERR_NOT_FOUND);
    assert_int_equal(hx_store_put_secret(f->st, &f->ksid, f->keys[0]), HX_OK);
    assert_int_equal(hx_store_put_secret(f->st, &f->ksid, f->keys[1]), HX_OK); /* replaced */
    assert_int_equal(hx_store_put_secret(f->st, &other, f->keys[2]), HX_OK);   /* no row yet */
    reopen(f); /* other has no stream row: purged */
    assert_int_equal(hx_store_get_secret(f->st, &other, &got), HX_ERR_NOT_FOUND);
    assert_int_equal(hx_store_get_secret(f->st, &f->ksid, &got), HX_OK);
    assert_int_equal(hx_secret_len(got), KLEN);
    assert_memory_equal(hx_secret_data(got), hx_secret_data(f->keys[1]), KLEN);
    hx_secret_free(got);
    /* no plaintext on disk, and a sealed secret moved to another stream does not open */
    hx_store_free(f->st);
    f->st = NULL;
    snprintf(p, sizeof(p), "%s/hykexd.db", f->dir);
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO streams SELECT x'33333333333333333333333333333333',"
                     " role, peer, src, dst, chunk, timeout_ms, 0, qkd_ksid,"
                     " peer_sae, qkd_next, produced, next_get, peer_closed,"
                     " opened_at, owner FROM streams;"
                     "INSERT INTO stream_secrets SELECT"
                     " x'33333333333333333333333333333333', sealed FROM stream_secrets",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    reopen(f);
    assert_int_equal(hx_store_get_secret(f->st, &other, &got), HX_ERR_VERIFY);
    assert_null(got);
    /* TTL expiry and a drop take the secret with the stream */
    assert_int_equal(hx_store_expire(f->st, 1000 + 3600 + 1, &expired), HX_OK);
    assert_int_equal(expired, 1);
    assert_int_equal(hx_store_get_secret(f->st, &f->ksid, &got), HX_ERR_NOT_FOUND);
    assert_int_equal(hx_store_drop_stream(f->st, &other), HX_OK);
    assert_int_equal(hx_store_get_secret(f->st, &other, &got), HX_ERR_NOT_FOUND);
    /* an older store without the table: made at open */
    hx_store_free(f->st);
    f->st = NULL;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TRIGGER stream_secrets_drop; DROP TABLE stream_secrets",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    reopen(f);
    assert_int_equal(hx_store_get_secret(f->st, &f->ksid, &got), HX_ERR_NOT_FOUND);
}

static void loose_storage_key_refused(void **state)
{
    struct fixture *f = *state;
    struct hx_store *st = NULL;
    char p[128], why[300] = "";
    struct seen s;
    uint64_t expired;

    assert_int_equal(hx_store_put_batch(f->st, &f->ksid, 0, 2, f->keys, HX_STORE_READY, 2), HX_OK);
    hx_store_free(f->st);
    f->st = NULL;
    snprintf(p, sizeof(p), "%s/storage.key", f->dir);
    assert_int_equal(chmod(p, 0640), 0);
    assert_int_equal(hx_store_open(f->dir, HX_STORE_SYNC_NORMAL, &st, why, sizeof(why)),
                     HX_ERR_IO_PERM);
    assert_null(st);
    assert_non_null(strstr(why, "0600"));
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(truncate(p, 16), 0);
    assert_int_equal(hx_store_open(f->dir, HX_STORE_SYNC_NORMAL, &st, why, sizeof(why)),
                     HX_ERR_BAD_VALUE);
    assert_non_null(strstr(why, "32 bytes"));
    /* Another storage key: the stored keys no longer open. */
    assert_int_equal(unlink(p), 0);
    reopen(f);
    memset(&s, 0, sizeof(s));
    assert_int_equal(hx_store_load(f->st, 1001, on_stream, on_key, &s, &expired), HX_ERR_VERIFY);
}

/* A KME's opaque key_stream_id (common/qkdid.h) is kept as given, across a reopen. */
static void opaque_qkd_ksid_survives_reopen(void **state)
{
    struct fixture *f = *state;
    struct hx_store_stream r;
    struct seen s;
    char why[120];

    stream_row(f, &r);
    assert_int_equal(hx_qkd_ksid_set(&r.qkd_ksid, "ks-0a1b/stream:7", 16, why, sizeof(why)), HX_OK);
    assert_int_equal(hx_store_put_stream(f->st, &r), HX_OK);
    reopen(f);
    load(f, &s, 1001);
    assert_int_equal(s.n_streams, 1);
    assert_string_equal(s.last.qkd_ksid.s, "ks-0a1b/stream:7");
}

/* A version-2 store (QKD stream ids as 16-byte blobs) is upgraded in place: a UUID becomes
 * its lowercase text, the nil one none; the store then says version 3. */
static void version_2_store_upgraded(void **state)
{
    struct fixture *f = *state;
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *q;
    struct seen s;
    static const char v2[] =
        "DROP TABLE keys; DROP TABLE streams;"
        "CREATE TABLE streams (ksid BLOB PRIMARY KEY, role INTEGER NOT NULL, peer BLOB NOT NULL,"
        " src TEXT NOT NULL, dst TEXT NOT NULL, chunk INTEGER NOT NULL,"
        " timeout_ms INTEGER NOT NULL, ttl_s INTEGER NOT NULL, qkd_ksid BLOB NOT NULL,"
        " peer_sae TEXT NOT NULL, qkd_next INTEGER NOT NULL, produced INTEGER NOT NULL,"
        " next_get INTEGER NOT NULL, peer_closed INTEGER NOT NULL, opened_at INTEGER NOT NULL,"
        " owner TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
        "CREATE TABLE keys (ksid BLOB NOT NULL REFERENCES streams(ksid) ON DELETE CASCADE,"
        " pos INTEGER NOT NULL, state INTEGER NOT NULL, sealed BLOB,"
        " PRIMARY KEY (ksid, pos)) WITHOUT ROWID;"
        "INSERT INTO streams VALUES (x'11111111111111111111111111111111', 1, zeroblob(16),"
        " 'a', 'b', 32, 1000, 0, x'0123456789ABCDEF0123456789ABCDEF', 's', 0, 0, 0, 0, 1000, '');"
        "INSERT INTO streams VALUES (x'22222222222222222222222222222222', 1, zeroblob(16),"
        " 'a', 'b', 32, 1000, 0, zeroblob(16), 's', 0, 0, 0, 0, 1001, '');"
        "PRAGMA user_version=2;";

    hx_store_free(f->st);
    f->st = NULL;
    snprintf(path, sizeof(path), "%s/hykexd.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, v2, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    reopen(f);
    load(f, &s, 1002);
    assert_int_equal(s.n_streams, 2);
    assert_string_equal(s.last.qkd_ksid.s, ""); /* ordered by opened_at: the nil one last */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT qkd_ksid, typeof(qkd_ksid) FROM streams "
                                        "ORDER BY opened_at LIMIT 1",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0),
                        "01234567-89ab-cdef-0123-456789abcdef");
    assert_string_equal((const char *)sqlite3_column_text(q, 1), "text");
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 3);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(files_are_private, setup, teardown),
        cmocka_unit_test_setup_teardown(keys_and_stream_survive_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(qkd_reservation_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(prepared_then_ready_or_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(delivered_once_and_purged_below_watermark, setup, teardown),
        cmocka_unit_test_setup_teardown(purge_covers_what_the_watermark_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(given_up_positions_count_as_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(closed_stream_takes_its_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(expired_streams_are_wiped, setup, teardown),
        cmocka_unit_test_setup_teardown(no_plaintext_on_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(tampering_fails_the_load, setup, teardown),
        cmocka_unit_test_setup_teardown(loose_storage_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(opaque_qkd_ksid_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(version_2_store_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_secret_kept_and_dropped, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
