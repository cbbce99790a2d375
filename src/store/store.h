/*
 * The node's durable key store (docs/store.md): SQLite in WAL mode in the state directory,
 * key material sealed with AES-256-GCM under a node storage key (a 0600 file beside it, made on
 * first start), the stream id and position as associated data.
 *
 * The store knows streams and positions, nothing of the peer protocol: hykexd decides when a
 * batch is prepared, committed or given up, and the store makes each decision one transaction.
 * A key's life: PREPARED (initiator: derived and confirmed, the peer not yet known to hold it;
 * never served) -> READY (both nodes hold it) -> DELIVERED (handed out once; the ciphertext is
 * erased at once, the row itself when the stream's contiguous watermark passes it).
 *
 * One connection, serialised by the store's own mutex: callers need no lock of their own.
 */
#ifndef HX_STORE_STORE_H
#define HX_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/qkdid.h"
#include "common/secret.h"
#include "common/uuid.h"

struct hx_store;

enum hx_store_key_state {
    HX_STORE_PREPARED = 0,
    HX_STORE_READY = 1,
    HX_STORE_DELIVERED = 2,
};

#define HX_STORE_MAX_URI 1024
#define HX_STORE_MAX_SAE 64

/* One stream as the store keeps it. */
struct hx_store_stream {
    struct hx_uuid ksid;
    int role; /* 0 initiator, 1 responder */
    struct hx_uuid peer;
    char src[HX_STORE_MAX_URI + 1], dst[HX_STORE_MAX_URI + 1];
    uint32_t chunk, timeout_ms, ttl_s;
    struct hx_qkd_ksid qkd_ksid; /* as the KME gave it (v3: text; "" none) */
    char peer_sae[HX_STORE_MAX_SAE];
    uint64_t qkd_next; /* initiator: the next unspent QKD index */
    uint64_t produced; /* every position below is committed (or given up); kept by the store */
    uint64_t next_get; /* the next position a GET_KEY without index returns */
    bool peer_closed;
    int64_t opened_at; /* Unix time, seconds */
    char owner[80];    /* the application identity that opened it ("": anyone) */
};

enum hx_store_sync {
    HX_STORE_SYNC_NORMAL = 0, /* durable across process crashes (kill -9); the OS keeps writes */
    HX_STORE_SYNC_FULL = 1,   /* fsync at every commit: durable across power loss too */
};

/*
 * Opens (creating if needed) the store in dir: dir itself (0700), storage.key (32 random
 * bytes, 0600; refused when group or others may read it or it is not ours) and hykexd.db
 * (0600). why says what failed.
 */
HX_MUST_CHECK hx_err hx_store_open(const char *dir, enum hx_store_sync sync, struct hx_store **out,
                                   char *why, size_t why_len);
void hx_store_free(struct hx_store *st);

/* Inserts or updates a stream's row (its keys stay). */
HX_MUST_CHECK hx_err hx_store_put_stream(struct hx_store *st, const struct hx_store_stream *r);
/* Deletes a stream and every key of it. */
HX_MUST_CHECK hx_err hx_store_drop_stream(struct hx_store *st, const struct hx_uuid *ksid);

/*
 * One transaction: count keys from position first in the given state (PREPARED or READY) and
 * the stream's QKD counter; the watermark moves over the committed positions now contiguous,
 * and delivered rows below it go. HX_ERR_NOT_FOUND when the stream is not in the store (closed
 * meanwhile).
 */
HX_MUST_CHECK hx_err hx_store_put_batch(struct hx_store *st, const struct hx_uuid *ksid,
                                        uint64_t first, uint32_t count,
                                        struct hx_secret *const *keys,
                                        enum hx_store_key_state state, uint64_t qkd_next);
/* One transaction: the batch's PREPARED rows become READY; the watermark moves. */
HX_MUST_CHECK hx_err hx_store_ready_batch(struct hx_store *st, const struct hx_uuid *ksid,
                                          uint64_t first, uint32_t count);
/* Deletes the batch's rows whatever their state (a batch the peer did not commit). */
HX_MUST_CHECK hx_err hx_store_discard_batch(struct hx_store *st, const struct hx_uuid *ksid,
                                            uint64_t first, uint32_t count);
/* Positions given up at both nodes: their keys are erased, and they count as delivered. */
HX_MUST_CHECK hx_err hx_store_give_up(struct hx_store *st, const struct hx_uuid *ksid,
                                      uint64_t first, uint32_t count);
/*
 * A key handed out, in one transaction: its ciphertext is erased (the row goes when below the
 * watermark) and the stream's next_get is set. HX_ERR_NOT_FOUND when no READY key is there.
 */
HX_MUST_CHECK hx_err hx_store_deliver(struct hx_store *st, const struct hx_uuid *ksid, uint64_t pos,
                                      uint64_t next_get);
/*
 * Raises the stream's qkd_next to at least qkd_next (never lowers it), in one transaction: the
 * initiator reserves QKD indices here before its KME hands them out, so that after a crash it
 * never asks for an index it already took (an ETSI 004 KME serves each index once).
 */
HX_MUST_CHECK hx_err hx_store_reserve_qkd(struct hx_store *st, const struct hx_uuid *ksid,
                                          uint64_t qkd_next);
/* The stream's watermark: every position below is committed here (or given up). */
HX_MUST_CHECK hx_err hx_store_produced(struct hx_store *st, const struct hx_uuid *ksid,
                                       uint64_t *out);

typedef hx_err (*hx_store_stream_fn)(void *arg, const struct hx_store_stream *r);
/* key is NULL for a DELIVERED row; a non-NULL key belongs to the callee. */
typedef hx_err (*hx_store_key_fn)(void *arg, const struct hx_uuid *ksid, uint64_t pos,
                                  enum hx_store_key_state state, struct hx_secret *key);
/*
 * Calls stream_fn for every stream, then key_fn for each of its keys in position order. Streams
 * whose TTL (ttl_s > 0) has passed at now (Unix seconds) are deleted first; *expired counts
 * them. A key that does not decrypt (tampered with, or another node's storage key) fails the
 * load with HX_ERR_VERIFY: the store is never half trusted.
 */
HX_MUST_CHECK hx_err hx_store_load(struct hx_store *st, int64_t now, hx_store_stream_fn stream_fn,
                                   hx_store_key_fn key_fn, void *arg, uint64_t *expired);
/* Deletes streams whose TTL has passed at now; *expired counts them. */
HX_MUST_CHECK hx_err hx_store_expire(struct hx_store *st, int64_t now, uint64_t *expired);

/*
 * A secret of the stream's own (the ETSI 014 key-ID key), sealed as its keys are (the stream id
 * and position 2^64-1 as associated data) in the table stream_secrets; replaced when written
 * again, deleted with the stream. The stream's row need not be written yet.
 */
HX_MUST_CHECK hx_err hx_store_put_secret(struct hx_store *st, const struct hx_uuid *ksid,
                                         const struct hx_secret *k);
/* The stream's secret (the caller frees it); HX_ERR_NOT_FOUND when none is kept, HX_ERR_VERIFY
 * when it does not open. */
HX_MUST_CHECK hx_err hx_store_get_secret(struct hx_store *st, const struct hx_uuid *ksid,
                                         struct hx_secret **out);

#endif
