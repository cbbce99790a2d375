/*
 * Decoders of the peer protocol's messages (docs/peer-protocol.md), shared by hykexd and the
 * fuzz target: every length checked against what is left, strings NUL-terminated and capped,
 * counts bounded. Views (sig, tag, rest) point into the caller's buffer.
 */
#ifndef HX_PROTO_PEER_H
#define HX_PROTO_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/uuid.h"

#define HX_PEER_MAX_URI 1024
#define HX_PEER_MAX_SAE 63
#define HX_PEER_MAX_MSG 399
#define HX_PEER_MAX_BATCH 1024 /* positions per batch */

/*
 * Frames: "H" "X" | version 1 | type | u32 length | payload. Takes the next frame off buf:
 * HX_OK with *type, the payload view and *consumed (header + payload); HX_ERR_TRUNCATED when buf
 * holds no whole frame yet; HX_ERR_BAD_VALUE for a bad magic, version or a length above
 * max_payload (the link is then closed).
 */
#define HX_PEER_FRAME_HEADER 8
HX_MUST_CHECK hx_err hx_peer_frame_next(const uint8_t *buf, size_t len, size_t max_payload,
                                        uint8_t *type, const uint8_t **payload, size_t *plen,
                                        size_t *consumed);

/* lp16: a u16 length and the bytes. */
HX_MUST_CHECK hx_err hx_peer_write_lp16(struct hx_writer *w, const char *s);
/* Reads an lp16 string into out (cap bytes with the NUL); HX_ERR_TOO_LARGE when it does not fit. */
HX_MUST_CHECK hx_err hx_peer_read_lp16(struct hx_reader *r, char *out, size_t cap);

struct hx_peer_open { /* STREAM_OPEN */
    struct hx_uuid ksid;
    char src[HX_PEER_MAX_URI + 1], dst[HX_PEER_MAX_URI + 1];
    uint32_t chunk, timeout_ms, ttl_s;
    struct hx_uuid qkd_ksid;
    char sae[HX_PEER_MAX_SAE + 1];
};
HX_MUST_CHECK hx_err hx_peer_decode_open(const uint8_t *p, size_t len, struct hx_peer_open *out);

struct hx_peer_join { /* STREAM_JOIN */
    struct hx_uuid ksid;
    uint32_t status;
    char msg[HX_PEER_MAX_MSG + 1];
    char sae[HX_PEER_MAX_SAE + 1]; /* empty when the sender has none (or an older sender) */
};
HX_MUST_CHECK hx_err hx_peer_decode_join(const uint8_t *p, size_t len, struct hx_peer_join *out);

/*
 * The common head of BATCH_* messages: stream id, u64 first, then (REQ, RESP, FIN, QUERY) u32
 * count in 1..HX_PEER_MAX_BATCH; ACK has none. rest / rest_len: what follows.
 */
struct hx_peer_batch {
    struct hx_uuid ksid;
    uint64_t first;
    uint32_t count;
    uint32_t status;     /* RESP, FIN, ACK */
    uint64_t qkd_first;  /* REQ */
    const uint8_t *rest; /* REQ: from the QKD mode on; RESP: the body; FIN: the signed tail */
    size_t rest_len;
};
HX_MUST_CHECK hx_err hx_peer_decode_req(const uint8_t *p, size_t len, struct hx_peer_batch *out);
HX_MUST_CHECK hx_err hx_peer_decode_resp(const uint8_t *p, size_t len, struct hx_peer_batch *out);
HX_MUST_CHECK hx_err hx_peer_decode_fin(const uint8_t *p, size_t len, struct hx_peer_batch *out);
HX_MUST_CHECK hx_err hx_peer_decode_ack(const uint8_t *p, size_t len, struct hx_peer_batch *out);
HX_MUST_CHECK hx_err hx_peer_decode_query(const uint8_t *p, size_t len, struct hx_peer_batch *out);

/* The tail of a BATCH_RESP / BATCH_FIN with status 0: u16 length, signature, 32-byte tag. */
HX_MUST_CHECK hx_err hx_peer_read_signed(struct hx_reader *r, const uint8_t **sig,
                                         uint16_t *sig_len, const uint8_t **tag);

#endif
