/*
 * The peer protocol's wire format (docs/peer-protocol.md), whole: the frame header and every
 * message, encoded and decoded here into checked structs, shared by hykexd, the unit tests and
 * the fuzz target (s2n keeps a message's send and receive in one file: tls/s2n_*_finished.c).
 *
 * Decoders check every length against what is left, refuse trailing bytes, NUL-terminate and
 * cap strings, bound counts (1..HX_PEER_MAX_BATCH) and refuse positions that would wrap. Views
 * (ids, key material, signature, tag) point into the caller's buffer. What depends on the
 * stream's configuration (how the KEM bytes split between its sources) is left to the daemon,
 * which reads those views with a bounded reader.
 */
#ifndef HX_PROTO_PEER_H
#define HX_PROTO_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/qkdid.h"
#include "common/err.h"
#include "common/uuid.h"

#define HX_PEER_MAX_URI 1024
#define HX_PEER_MAX_SAE 63
#define HX_PEER_MAX_MSG 399
#define HX_PEER_MAX_RESP_MSG 199 /* a BATCH_RESP refusal's message */
#define HX_PEER_MAX_BATCH 1024   /* positions per batch */
#define HX_PEER_MAX_PARTS 8      /* KEM sources in a BATCH_REQ / BATCH_RESP (encoding) */
#define HX_PEER_TAG_LEN 32
#define HX_PEER_QKD_ID_LEN 16 /* an ETSI 014 key id on the wire */
/* Bytes of a BATCH_RESP / BATCH_FIN before their body: id, first, count, status. */
#define HX_PEER_BATCH_HEAD 32

/* Message types (the frame header's type byte). */
enum hx_peer_type {
    HX_PEER_PING = 0x01,
    HX_PEER_PONG = 0x02,
    HX_PEER_STREAM_OPEN = 0x10,
    HX_PEER_STREAM_JOIN = 0x11,
    HX_PEER_STREAM_CLOSE = 0x12,
    HX_PEER_QKD_REOPEN = 0x13, /* KME recovery and flow control, below */
    HX_PEER_STREAM_WINDOW = 0x14,
    HX_PEER_BATCH_REQ = 0x20,
    HX_PEER_BATCH_RESP = 0x21,
    HX_PEER_BATCH_FIN = 0x22,
    HX_PEER_BATCH_ACK = 0x23,
    HX_PEER_BATCH_QUERY = 0x24,
    HX_PEER_BATCH_AUTH = 0x25, /* the responder holds a batch's authentication key (below) */
};

/* BATCH_REQ: how both nodes take the batch's QKD keys. */
enum hx_peer_qkd_mode {
    HX_PEER_QKD_NONE = 0, /* no QKD source */
    HX_PEER_QKD_004 = 1,  /* ETSI 004 GET_KEY by index */
    HX_PEER_QKD_014 = 2,  /* ETSI 014 by key id (the ids follow in the message) */
};

/* BATCH_REQ: KEM public keys per source (same values as enum hxd_key_pairs). */
enum hx_peer_key_pairs {
    HX_PEER_KEY_PAIRS_PER_POSITION = 0,
    HX_PEER_KEY_PAIRS_PER_BATCH = 1,
};
/* BATCH_REQ: the byte that carries the key pairs also says, in this bit, that the batch is
 * authenticated by MACs under the key of an earlier signed batch (an anchor, u64 first position,
 * follows the byte). Only sent to a peer that announced such a key (BATCH_AUTH): a node without
 * it refuses the bit as malformed. */
#define HX_PEER_REQ_MAC 0x02

/* BATCH_RESP status: 0 or an ETSI status (1..8) with a message, or POSITIONS_LOST: the
 * responder had already committed these positions (its ACK was lost); both give them up. */
enum hx_peer_resp_status {
    HX_PEER_RESP_OK = 0,
    HX_PEER_RESP_POSITIONS_LOST = 1000,
    /* a MAC-authenticated BATCH_REQ named an anchor the responder holds no key of (it restarted,
     * the link was made again, or it moved on): the initiator signs again */
    HX_PEER_RESP_AUTH_UNKNOWN = 1001,
};

/* BATCH_FIN status: commit, or anything else to abort. */
enum hx_peer_fin_status {
    HX_PEER_FIN_COMMIT = 0,
    HX_PEER_FIN_ABORT = 1,
};

/* BATCH_ACK status (the answer to a BATCH_FIN or a BATCH_QUERY). */
enum hx_peer_ack_status {
    HX_PEER_ACK_COMMITTED = 0,
    HX_PEER_ACK_NOT_COMMITTED = 1,
    HX_PEER_ACK_PART_COMMITTED = 2, /* a query only: some positions committed, not all */
};

/* ---- frames: "H" "X" | version 1 | type | u32 length | payload ---- */

#define HX_PEER_FRAME_HEADER 8
#define HX_PEER_VERSION 1
/*
 * Payload limits (docs/security.md). Every frame: 1 MiB. A BATCH_REQ carries the initiator's
 * KEM public keys (a Classic McEliece key is 261 KB to 1.3 MB), so it alone may reach 4 MiB.
 * Links are mutually authenticated TLS: no frame is read before the peer's certificate and node
 * id are checked, so the larger limit is only ever offered to a trusted peer.
 */
#define HX_PEER_MAX_FRAME (1u << 20)
#define HX_PEER_MAX_KEM_FRAME (4u << 20)

/* The protocol's payload limit for a frame of this type (one of the two above). */
size_t hx_peer_frame_max(uint8_t type);
void hx_peer_frame_header_encode(uint8_t out[HX_PEER_FRAME_HEADER], uint8_t type, uint32_t len);
/* HX_ERR_BAD_VALUE for a bad magic or version, or a length above max_payload or above
 * hx_peer_frame_max(type). */
HX_MUST_CHECK hx_err hx_peer_frame_header_decode(const uint8_t in[HX_PEER_FRAME_HEADER],
                                                 size_t max_payload, uint8_t *type, uint32_t *len);
/*
 * Takes the next frame off buf: HX_OK with *type, the payload view and *consumed (header +
 * payload); HX_ERR_TRUNCATED when buf holds no whole frame yet; HX_ERR_BAD_VALUE as above (the
 * link is then closed).
 */
HX_MUST_CHECK hx_err hx_peer_frame_next(const uint8_t *buf, size_t len, size_t max_payload,
                                        uint8_t *type, const uint8_t **payload, size_t *plen,
                                        size_t *consumed);

/* lp16: a u16 length and the bytes. */
HX_MUST_CHECK hx_err hx_peer_write_lp16(struct hx_writer *w, const char *s);
/* Reads an lp16 string into out (cap bytes with the NUL); HX_ERR_TOO_LARGE when it does not fit. */
HX_MUST_CHECK hx_err hx_peer_read_lp16(struct hx_reader *r, char *out, size_t cap);

/* ---- streams ---- */

struct hx_peer_open { /* STREAM_OPEN */
    struct hx_uuid ksid;
    char src[HX_PEER_MAX_URI + 1], dst[HX_PEER_MAX_URI + 1];
    uint32_t chunk, timeout_ms, ttl_s;
    /* none: no QKD source, or ETSI 014. On the wire: 16 bytes when it is a UUID's lowercase
     * text (zeros for none); an opaque id (common/qkdid.h) as zeros there and an lp16 text
     * after the SAE id, which older decoders never see for UUIDs. */
    struct hx_qkd_ksid qkd_ksid;
    char sae[HX_PEER_MAX_SAE + 1];
};
HX_MUST_CHECK hx_err hx_peer_encode_open(struct hx_writer *w, const struct hx_peer_open *m);
HX_MUST_CHECK hx_err hx_peer_decode_open(const uint8_t *p, size_t len, struct hx_peer_open *out);

struct hx_peer_join { /* STREAM_JOIN */
    struct hx_uuid ksid;
    uint32_t status;               /* an ETSI status: 0 joined */
    char msg[HX_PEER_MAX_MSG + 1]; /* empty in a bare refusal */
    char sae[HX_PEER_MAX_SAE + 1]; /* empty when the sender has none (or an older sender) */
};
HX_MUST_CHECK hx_err hx_peer_encode_join(struct hx_writer *w, const struct hx_peer_join *m);
HX_MUST_CHECK hx_err hx_peer_decode_join(const uint8_t *p, size_t len, struct hx_peer_join *out);

struct hx_peer_close { /* STREAM_CLOSE */
    struct hx_uuid ksid;
};
HX_MUST_CHECK hx_err hx_peer_encode_close(struct hx_writer *w, const struct hx_peer_close *m);
HX_MUST_CHECK hx_err hx_peer_decode_close(const uint8_t *p, size_t len, struct hx_peer_close *out);

/* ---- KME recovery and flow control (docs/peer-protocol.md "Recovery and window") ---- */

struct hx_peer_qkd_reopen { /* QKD_REOPEN: the sender reopens its QKD stream at its KME */
    struct hx_uuid ksid;
};
HX_MUST_CHECK hx_err hx_peer_encode_qkd_reopen(struct hx_writer *w,
                                               const struct hx_peer_qkd_reopen *m);
HX_MUST_CHECK hx_err hx_peer_decode_qkd_reopen(const uint8_t *p, size_t len,
                                               struct hx_peer_qkd_reopen *out);

struct hx_peer_window { /* STREAM_WINDOW: the responder takes batches below limit only */
    struct hx_uuid ksid;
    uint64_t limit; /* first position it will not accept yet; below 2^63 */
};
HX_MUST_CHECK hx_err hx_peer_encode_window(struct hx_writer *w, const struct hx_peer_window *m);
HX_MUST_CHECK hx_err hx_peer_decode_window(const uint8_t *p, size_t len,
                                           struct hx_peer_window *out);

/* ---- batches ---- */

/*
 * The common head of BATCH_* messages: stream id, u64 first, then (REQ, RESP, FIN, QUERY) u32
 * count in 1..HX_PEER_MAX_BATCH; ACK has none. Decodes only the head of a message of that
 * type (the frame dispatcher routes replies by it; a malformed body is judged by the full
 * decoder later). HX_ERR_INVALID_ARG for a type that is not a BATCH_*.
 */
struct hx_peer_head {
    struct hx_uuid ksid;
    uint64_t first;
    uint32_t count;  /* 0 for ACK */
    uint32_t status; /* RESP, FIN, ACK */
};
HX_MUST_CHECK hx_err hx_peer_decode_head(uint8_t type, const uint8_t *p, size_t len,
                                         struct hx_peer_head *out);

/* Key material of one KEM source, in key_sources order. */
struct hx_peer_part {
    const uint8_t *p;
    size_t len;
};

struct hx_peer_req { /* BATCH_REQ */
    struct hx_uuid ksid;
    uint64_t first;
    uint32_t count;
    uint64_t qkd_first; /* QKD index of the first position */
    uint8_t qkd_mode;   /* enum hx_peer_qkd_mode */
    uint8_t key_pairs;  /* enum hx_peer_key_pairs */
    bool mac;           /* authenticated by MACs under the key of the batch at anchor */
    uint64_t anchor;
    const uint8_t *qkd_ids; /* QKD_014: count x HX_PEER_QKD_ID_LEN bytes; else NULL */
    struct hx_peer_part kem[HX_PEER_MAX_PARTS]; /* public keys per KEM source */
    size_t n_kem; /* decoded: 1 part holding every source's keys (the split is the stream's) */
};
HX_MUST_CHECK hx_err hx_peer_encode_req(struct hx_writer *w, const struct hx_peer_req *m);
HX_MUST_CHECK hx_err hx_peer_decode_req(const uint8_t *p, size_t len, struct hx_peer_req *out);

/* The signed tail of a BATCH_RESP / BATCH_FIN: u16 length, signature, 32-byte tag. */
struct hx_peer_signed {
    const uint8_t *sig;
    uint16_t sig_len;
    const uint8_t *tag; /* HX_PEER_TAG_LEN bytes */
};

struct hx_peer_resp { /* BATCH_RESP */
    struct hx_uuid ksid;
    uint64_t first;
    uint32_t count;
    uint32_t status; /* enum hx_peer_resp_status or an ETSI status */
    /* status 0: */
    struct hx_peer_part kem[HX_PEER_MAX_PARTS]; /* ciphertexts per KEM source */
    size_t n_kem;                               /* decoded: 1 part, kem_len bytes */
    struct hx_peer_signed sig;
    /* else: the responder's message; empty when absent or malformed (the batch fails anyway) */
    char msg[HX_PEER_MAX_RESP_MSG + 1];
};
HX_MUST_CHECK hx_err hx_peer_encode_resp(struct hx_writer *w, const struct hx_peer_resp *m);
/* kem_len: the bytes of ciphertexts the receiver expects (it knows the stream's sources). */
HX_MUST_CHECK hx_err hx_peer_decode_resp(const uint8_t *p, size_t len, size_t kem_len,
                                         struct hx_peer_resp *out);

struct hx_peer_fin { /* BATCH_FIN */
    struct hx_uuid ksid;
    uint64_t first;
    uint32_t count;
    uint32_t status;           /* enum hx_peer_fin_status: nonzero aborts */
    struct hx_peer_signed sig; /* status 0 only */
};
HX_MUST_CHECK hx_err hx_peer_encode_fin(struct hx_writer *w, const struct hx_peer_fin *m);
HX_MUST_CHECK hx_err hx_peer_decode_fin(const uint8_t *p, size_t len, struct hx_peer_fin *out);

struct hx_peer_ack { /* BATCH_ACK */
    struct hx_uuid ksid;
    uint64_t first;
    uint32_t status; /* enum hx_peer_ack_status */
};
HX_MUST_CHECK hx_err hx_peer_encode_ack(struct hx_writer *w, const struct hx_peer_ack *m);
HX_MUST_CHECK hx_err hx_peer_decode_ack(const uint8_t *p, size_t len, struct hx_peer_ack *out);

/* BATCH_AUTH (responder -> initiator, direct links only): the responder committed the signed
 * batch at anchor and holds the authentication key derived from it; the initiator may
 * authenticate later batches of the stream by MACs under it (docs/peer-protocol.md
 * "Authentication"). Payload: stream id, u64 anchor, 32-byte confirmation (a MAC under the key). */
struct hx_peer_auth {
    struct hx_uuid ksid;
    uint64_t anchor;
    const uint8_t *confirm; /* HX_PEER_TAG_LEN bytes */
};
HX_MUST_CHECK hx_err hx_peer_encode_auth(struct hx_writer *w, const struct hx_peer_auth *m);
HX_MUST_CHECK hx_err hx_peer_decode_auth(const uint8_t *p, size_t len, struct hx_peer_auth *out);

struct hx_peer_query { /* BATCH_QUERY */
    struct hx_uuid ksid;
    uint64_t first;
    uint32_t count;
};
HX_MUST_CHECK hx_err hx_peer_encode_query(struct hx_writer *w, const struct hx_peer_query *m);
HX_MUST_CHECK hx_err hx_peer_decode_query(const uint8_t *p, size_t len, struct hx_peer_query *out);

/* ---- ETSI 014: the SAEs attached to a node (docs/etsi014.md, docs/peer-protocol.md) ---- */

/* SAE_LIST: sent by each node to its peers every few seconds; replaces what the peer announced
 * before. Payload: the sender's boot id (16 bytes, random at each start: a new one tells the
 * receiver that the sender restarted), u16 count (0..HX_PEER_MAX_SAES), then per SAE a u8
 * length (1..64) and its id (printable ASCII without / ? # % or space, hx_014_sae_id_ok); no id
 * twice. */
#define HX_PEER_SAE_LIST 0x40
#define HX_PEER_MAX_SAES 256
#define HX_PEER_MAX_SAE_ID 64

struct hx_peer_sae_list {
    struct hx_uuid boot;
    uint16_t n;
    char ids[HX_PEER_MAX_SAES][HX_PEER_MAX_SAE_ID + 1];
};
HX_MUST_CHECK hx_err hx_peer_encode_sae_list(struct hx_writer *w, const struct hx_peer_sae_list *m);
HX_MUST_CHECK hx_err hx_peer_decode_sae_list(const uint8_t *p, size_t len,
                                             struct hx_peer_sae_list *out);
/* ---- end of ETSI 014 ---- */

struct hx_uri;
/*
 * The most positions (<= want) a batch of these sources may carry so that its BATCH_REQ (the
 * public keys: HX_PEER_MAX_KEM_FRAME) and BATCH_RESP (the ciphertexts: HX_PEER_MAX_FRAME) fit
 * their frames, per_batch: one key pair per batch (kem.key_pairs); 0 when not even one
 * position fits (docs/peer-protocol.md, "Frame sizes").
 */
uint32_t hx_peer_batch_cap(const struct hx_uri *u, bool per_batch, uint32_t want);

#endif
