/*
 * The batch protocol inside hykexd (docs/peer-protocol.md), split by phase:
 *
 *   batch.c          what both ends share: a batch's state, the transcript T, combining,
 *                    key confirmation, signatures, and the bookkeeping of committed positions
 *   batch_auth.c     batches authenticated by MACs under the key of an earlier signed batch
 *   batch_source.c   where a batch's secrets come from: the QKD fetch and the KEM sources
 *                    behind one loop (OpenSSH kexgen.c: one flow, per-method steps)
 *   initiator.c      the initiator's per-batch protocol, driven by a phase table
 *   initiator_end.c  its waits for the peer (key pairs made ahead meanwhile) and a batch's end
 *   keystash.c       ML-KEM key pairs made ahead by waiting initiator workers
 *   responder.c      BATCH_REQ, BATCH_FIN and BATCH_QUERY at the responder
 *   dispatch.c       frames from a peer link: stream messages, replies, jobs for the pools
 *   pool.c           worker pools, the store writer, kicking and the periodic tick
 *   fault.c          test-only misbehaviour (fault_none.c when HYKEX_FAULT_INJECTION is off)
 *
 * A batch makes keys for positions first .. first+count-1 of one stream:
 *   initiator: QKD keys, one KEM key pair per KEM source and position  -> BATCH_REQ
 *   responder: QKD keys, encapsulations, combine, sign T, tag           -> BATCH_RESP
 *   initiator: verify, decapsulate, combine, check tag, sign T, tag     -> BATCH_FIN
 *   responder: verify, commit the keys (store first)                    -> BATCH_ACK
 *   initiator: commit the keys (store first).
 */
#ifndef HX_DAEMON_BATCH_H
#define HX_DAEMON_BATCH_H

#include "daemon/hxd.h"
#include "daemon/keystash.h"
#include "daemon/persist.h"
#include "daemon/stream.h"
#include "daemon/topology.h"
#include "proto/peer.h"

#define HXD_RETRY_BACKOFF_MS 1000 /* after a failed batch, the stream waits this long */
/* How long a batch the KME refused with "peer application not connected" waits for the peer's
 * STREAM_CLOSE before it counts as failed (hxd_init_fail_stream). */
#define HXD_PEER_CLOSE_GRACE_MS 500
#define HXD_WAIT_REPLY_MS 15000 /* for a BATCH_RESP or BATCH_ACK */
#define HXD_CTX_RESP "hykex/1 batch responder"
#define HXD_CTX_INIT "hykex/1 batch initiator"
#define HXD_CTX_AUTH "hykex/1 batch auth confirm"
/* MAC-authenticated batches under one key at most (batch_auth.c). The initiator signs the
 * batch after HXD_AUTH_RENEW of them, which offers the next key, and MACs the others meanwhile;
 * past HXD_AUTH_MAX_USES it signs every batch until the next key is taken up. */
#define HXD_AUTH_MAX_USES 256
#define HXD_AUTH_RENEW (HXD_AUTH_MAX_USES - HXD_PIPELINE)

/* Store writes queued to the writer thread (struct hxd_job type). */
enum hxd_write {
    HXD_WRITE_STREAM = 1, /* msg: a struct hxd_stream copy without its buffers */
    HXD_WRITE_DROP,       /* ksid: the stream's rows go */
    HXD_WRITE_JOINED,     /* as STREAM, then the initiator's stream starts producing */
};

/* One batch at one node: a copy of the stream's fixed fields and every secret of the batch. */
struct hxd_batch {
    struct hxd_stream s; /* owns none of the stream's buffers */
    uint64_t first;
    uint32_t count;
    uint64_t qkd_first;      /* QKD index of the first position */
    uint8_t qkd_mode;        /* enum hx_peer_qkd_mode */
    uint8_t key_pairs;       /* enum hx_peer_key_pairs */
    uint32_t npub;           /* KEM public keys per source: count or 1 */
    struct hx_uuid *qkd_ids; /* ETSI 014: the key ids, count of them */
    uint8_t *qkd;            /* count x qkd_key_bytes */
    size_t qkd_len;
    uint32_t qkd_done;         /* 004: keys the KME gave before it said "not there yet" */
    struct hx_uuid qkd_shared; /* the QKD stream id the transcript binds (nil: none shared) */
    /* per source: public keys, then (once known) ciphertexts: the transcript's part */
    uint8_t **kem_msg;
    size_t kem_len[HX_URI_MAX_SOURCES];
    size_t pub_len[HX_URI_MAX_SOURCES];
    struct hx_kem_key **kkeys;  /* initiator: npub x n_sources key pairs, [i * n + src] */
    struct hxd_keystash *stash; /* initiator: key pairs made ahead (keystash.h), or NULL */
    struct hx_secret **secrets; /* count x n_sources, [pos * n + src]; NULL for QKD */
    struct hx_secret **keys;    /* count combined keys */
    /* the path the BATCH_REQ travelled, initiator first (hops 0: a direct link); a relayed
     * batch's transcript binds it (docs/relay.md "The path in the transcript") */
    struct hx_topo_path path;
    uint8_t T[32];
};

/* ---- batch.c: shared by both ends ---- */
HX_MUST_CHECK hx_err hxd_batch_init(struct hxd_batch *b, const struct hxd *d,
                                    const struct hxd_stream *s, uint64_t first, uint32_t count);
/* Wipes every secret; a zeroed batch is fine. */
void hxd_batch_free(struct hxd_batch *b);
/* How this node gets QKD keys for a stream. */
/*
 * The initiator's ETSI 004 QKD indices (lock held): hxd_qkd_take gives a batch of *count
 * positions its first index (the lowest range given back first, *count cut to it if may_cut,
 * else fresh indices); hxd_qkd_give_back returns indices a batch took but did not spend.
 */
uint64_t hxd_qkd_take(struct hxd_stream *s, uint32_t *count, bool may_cut);
void hxd_qkd_give_back(struct hxd_stream *s, uint64_t first, uint32_t count);
uint8_t hxd_batch_qkd_mode(const struct hxd *d, const struct hxd_stream *s);
/* Whether the stream's batches may grow past limits.batch_size (stream.h
 * hxd_stream_batch_size): not from an ETSI 014 KME (its batches stay within limits.batch_size
 * and the KME's max_key_per_request: initiator.c kme_cap). */
bool hxd_batch_may_grow(const struct hxd *d, const struct hxd_stream *s);
/* T over the stream's context and kem_msg (all zero on an internal failure: no tag matches). */
void hxd_batch_transcript(struct hxd_batch *b);
/* Combines every position's secrets with the stream's method into b->keys. */
HX_MUST_CHECK hx_err hxd_batch_combine(struct hxd *d, struct hxd_batch *b);
/* tag = HMAC(HKDF(K_1 || ... || K_count, salt = T, "hykex/1 confirm"), label) */
HX_MUST_CHECK hx_err hxd_batch_tag(const struct hxd_batch *b, const char *label, uint8_t tag[32]);
/* Verifies a peer's signature over T with the key of its current link's certificate. */
HX_MUST_CHECK hx_err hxd_batch_verify_peer(struct hxd *d, const struct hx_uuid *peer,
                                           const char *ctx, const uint8_t T[32],
                                           const struct hx_peer_signed *sig);
/* The serial of the link a message of stream ksid to peer leaves on now (its own, or with
 * relay.enabled the relay's serial of the current path); 0: none. */
uint64_t hxd_peer_serial(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid);
/* The serial of the direct link to peer; 0: none. */
uint64_t hxd_direct_serial(struct hxd *d, const struct hx_uuid *peer);
/* Sends on the peer's link (or over relays); *serial (if not NULL) names the link it went on. */
hx_err hxd_send_serial(struct hxd *d, const struct hx_uuid *peer, uint8_t type, const uint8_t *p,
                       size_t len, uint64_t *serial);
/* The initiator's BATCH_REQ: sent as hxd_send_serial, and b->path gets the path it took. */
hx_err hxd_send_req(struct hxd *d, struct hxd_batch *b, const uint8_t *p, size_t len,
                    uint64_t *serial);
/* The responder: b->path gets the path b's BATCH_REQ came along from peer (none: direct). */
void hxd_batch_path_arrived(struct hxd *d, struct hxd_batch *b, const struct hx_uuid *peer);
/* The transcript's path part (docs/relay.md): "hykex/1 path" || u8 n || n node UUIDs || u8
 * relays (n - 2), into out (at least 2 + 16 * HX_TOPO_MAX_HOPS + 16 bytes); 0 for a direct
 * batch, which binds nothing more than before. */
size_t hxd_batch_path_bytes(const struct hx_topo_path *p, uint8_t *out, size_t cap);
/* Counts and logs a failed store write (with or without d->lock). */
void hxd_batch_store_failed(struct hxd *d, const char *what, const struct hx_uuid *ksid,
                            uint64_t first, hx_err e);

/* Committed positions (lock held for all of these). */
void hxd_batch_mark_done(struct hxd_stream *s, uint64_t first, uint32_t count);
bool hxd_batch_any_committed(const struct hxd_stream *s, uint64_t first, uint32_t count);
/*
 * Responder: how much of first..+count it committed. A BATCH_QUERY after the initiator's
 * restart names a run of its prepared rows, which may span batches that were settled apart
 * (one committed here, the next not): only a whole answer may settle it.
 */
enum hxd_committed { HXD_COMMITTED_NONE, HXD_COMMITTED_ALL, HXD_COMMITTED_PART };
enum hxd_committed hxd_batch_committed_of(const struct hxd_stream *s, uint64_t first,
                                          uint32_t count);
/* Responder: the keys move into the stream (those taken are set NULL), the positions are done. */
void hxd_batch_commit(struct hxd_stream *s, uint64_t first, uint32_t count,
                      struct hx_secret **keys);
/* Both ends, when a batch's keys are held (lock held): its positions travelled b->path (the
 * relays on it are what metadata.hops reports for them; hxd_stream_hops_at). */
void hxd_batch_note_hops(struct hxd_stream *s, const struct hxd_batch *b);
/* Initiator: the keys are held prepared, never served until the responder holds them. */
void hxd_batch_prepare(struct hxd_stream *s, struct hxd_batch *b);
/* Initiator: the responder committed a prepared batch. */
void hxd_batch_make_ready(struct hxd_stream *s, uint64_t first, uint32_t count);
/* Gives positions up in memory: keys wiped, positions done. The store follows with
 * hxd_batch_store_give_up, called without the lock. */
void hxd_batch_give_up(struct hxd_stream *s, uint64_t first, uint32_t count);
void hxd_batch_store_give_up(struct hxd *d, const struct hx_uuid *ksid, uint64_t first,
                             uint32_t count);

/* ---- batch_auth.c: batches authenticated by MACs (docs/peer-protocol.md "Authentication") ---- */
/* ak = HKDF-SHA256(every position's secrets, salt = T, "hykex/1 batch auth" || stream id): after
 * the batch's transcript and before its secrets are freed. */
HX_MUST_CHECK hx_err hxd_auth_derive(const struct hxd *d, const struct hxd_batch *b,
                                     uint8_t ak[32]);
/* HMAC-SHA256(ak, ctx || u64 anchor || T): what stands for a signature (ctx HXD_CTX_RESP or
 * HXD_CTX_INIT); with T NULL and HXD_CTX_AUTH, the BATCH_AUTH's confirmation. */
HX_MUST_CHECK hx_err hxd_auth_mac(const uint8_t ak[32], const char *ctx, uint64_t anchor,
                                  const uint8_t *T, uint8_t mac[32]);
/* Whether a signed batch offers the stream its key: peer.batch_macs and a direct link (over
 * relays batches are always signed). */
bool hxd_auth_offers(const struct hxd *d, const struct hxd_batch *b);
/*
 * The stream's keys (lock held for all of these). Initiator: hxd_auth_use gives the key for
 * the next batch on the link with this serial and counts it (false: sign the batch, which
 * also happens once at HXD_AUTH_RENEW uses, to offer the next key in time);
 * hxd_auth_offer keeps a signed batch's key (one per batch in flight) until the responder's
 * BATCH_AUTH names it; hxd_auth_adopt then checks its confirmation and puts it in use (0: not
 * a key offered on that link, 1: adopted, 2: the stream had none, -1: the nodes derived
 * different keys, and the stream signs every batch from then on).
 * Both: hxd_auth_forget drops the key of that anchor (a MAC failed, or the responder holds it
 * no more).
 */
bool hxd_auth_use(struct hxd_stream *s, uint64_t serial, uint64_t *anchor, uint8_t ak[32]);
void hxd_auth_offer(struct hxd_stream *s, uint64_t anchor, uint64_t serial, const uint8_t ak[32]);
int hxd_auth_adopt(struct hxd_stream *s, uint64_t anchor, uint64_t serial,
                   const uint8_t confirm[32]);
void hxd_auth_forget(struct hxd_stream *s, uint64_t anchor);
/* hxd_auth_forget for the stream ksid (takes the lock). */
void hxd_auth_drop(struct hxd *d, const struct hx_uuid *ksid, uint64_t anchor);
/* Responder: a committed signed batch's key becomes the latest (the HXD_PIPELINE before it stay
 * for the batches in flight); hxd_auth_find gives the key of anchor on the link with this
 * serial. */
HX_MUST_CHECK bool hxd_auth_install(struct hxd_stream *s, uint64_t anchor, uint64_t serial,
                                    const uint8_t ak[32]);
bool hxd_auth_find(const struct hxd_stream *s, uint64_t anchor, uint64_t serial, uint8_t ak[32]);
/* BATCH_AUTH from the direct link l (its serial): the initiator's side (takes the lock). */
void hxd_auth_on_frame(struct hxd *d, const struct hx_uuid *peer, uint64_t serial, const uint8_t *p,
                       size_t len);

/* ---- batch_source.c: the secrets of a batch ---- */
/* QKD keys for the batch's positions from this node's KME (nothing without a QKD source);
 * on failure *status is the ETSI status and msg says why. */
HX_MUST_CHECK hx_err hxd_source_fetch_qkd(struct hxd *d, struct hxd_batch *b, int *status,
                                          char *msg, size_t msg_len);
/* Initiator: key pairs for every KEM source; kem_msg[j] = the public keys (BATCH_REQ). */
HX_MUST_CHECK hx_err hxd_source_keygen(struct hxd_batch *b, char *msg, size_t msg_len);
/* Responder: encapsulates to the public keys in kem (BATCH_REQ's KEM bytes, exactly);
 * kem_msg[j] = public keys || ciphertexts. */
HX_MUST_CHECK hx_err hxd_source_encaps(struct hxd_batch *b, const uint8_t *kem, size_t kem_len,
                                       char *msg, size_t msg_len);
/* Initiator: the ciphertext bytes a BATCH_RESP carries for this batch. */
size_t hxd_source_ct_len(const struct hxd_batch *b);
/* Initiator: decapsulates the ciphertexts (hxd_source_ct_len bytes); kem_msg[j] = public keys
 * || ciphertexts. */
HX_MUST_CHECK hx_err hxd_source_decaps(struct hxd_batch *b, const uint8_t *cts, size_t cts_len,
                                       char *msg, size_t msg_len);
/* The parts of kem_msg after the first skip bytes of each (0: all; pub_len: ciphertexts). */
size_t hxd_source_parts(const struct hxd_batch *b, bool cts_only, struct hx_peer_part *parts);

/* ---- initiator_end.c: the initiator's waits and a batch's end (lock held unless said) ---- */
/* Waits for the peer's reply (BATCH_RESP, or with ack the BATCH_ACK) to the batch at first,
 * making key pairs ahead meanwhile (the lock is let go for each); NULL on timeout, a lost link
 * (serial: the link the request went on) or a close. */
struct hxd_inflight *hxd_init_wait_reply(struct hxd *d, const struct hx_uuid *ksid, uint64_t first,
                                         bool ack, uint64_t serial);
/* Records a failed batch (takes the lock); false when the stream is closed or gone. */
bool hxd_init_fail_stream(struct hxd *d, const struct hx_uuid *ksid, int status, const char *msg);
/* Positions to make again, lowest first; false when the list is full. */
bool hxd_init_retry_add(struct hxd_stream *s, uint64_t first, uint32_t count);
/* A batch ended: frees its slot; a failed one is listed to be made again. */
void hxd_init_batch_done(struct hxd *d, struct hxd_stream *s, uint64_t first, uint32_t count,
                         bool ok);
/* The responder's answer about a prepared batch (takes the lock; the store first): committed,
 * the keys become ready (true); not, they are wiped. */
bool hxd_init_settle(struct hxd *d, const struct hx_uuid *ksid, uint64_t first, uint32_t count,
                     bool committed);

/* ---- initiator.c / responder.c: the pools' jobs ---- */
void hxd_initiator_run(struct hxd *d, const struct hx_uuid *ksid);
void hxd_responder_on_req(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p, size_t len);
void hxd_responder_on_fin(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p, size_t len);
void hxd_responder_on_query(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p,
                            size_t len);
/* The in-flight slot of the batch starting at first (lock held), or NULL. */
struct hxd_inflight *hxd_inflight_of(struct hxd_stream *s, uint64_t first);

/* ---- pool.c ---- */
/* Queues a job (lock held); dropped when the pool is not running. false: not queued. */
bool hxd_pool_enqueue(struct hxd_pool *pool, const struct hx_uuid *ksid, uint8_t type,
                      const uint8_t *msg, size_t len);

/* STREAM_JOIN 0 at the initiator (lock held): the stream's row is written by the writer, then
 * the stream is marked joined and starts producing (at once without a store). */
void hxd_persist_joined_later(struct hxd *d, struct hxd_stream *s);

/* ---- fault.c / fault_none.c: test-only misbehaviour (HYKEX_FAULT_INJECTION) ---- */
/* Alters the BATCH_RESP or BATCH_FIN in w before it is sent (lock held); sig_len: its
 * signature's length (the message ends with u16 length, signature, 32-byte tag). */
void hxd_fault_alter(struct hxd *d, uint8_t type, struct hx_writer *w, size_t sig_len);
/* true: lose this committed batch's ACK with the link (lock held). */
bool hxd_fault_drop_ack(struct hxd *d);
/* HYKEX_FAULT_LOSE_FIN_AT (lock held): the initiator seems to crash at the BATCH_FIN of the
 * batch at that position. That FIN is dropped unread, once (true); the batches committed after
 * it at higher positions get no ACK (mute_ack true) until the initiator's next BATCH_QUERY
 * (query_seen). */
bool hxd_fault_lose_fin(struct hxd *d, uint64_t first);
bool hxd_fault_mute_ack(struct hxd *d, uint64_t first);
void hxd_fault_query_seen(struct hxd *d);

#endif
