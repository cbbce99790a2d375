/*
 * The relay's topology announcement (docs/relay.md "Topology"): one peer message, TOPO_ANNOUNCE,
 * kept apart from proto/peer.c so that the link-state protocol stays opt-in (relay.enabled) and
 * its codec is fuzzed on its own.
 *
 *   signed part: origin (16) | u64 sequence | u32 lifetime s | u8 node flags | u8 n neighbours
 *                | n x (neighbour (16) | u8 flags | u32 available key, bytes)
 *                | u16 certificate length | origin's certificate (DER)
 *   then:        u16 signature length | signature (the origin's certificate key, context
 *                HX_TOPO_SIG_CTX, over the signed part)
 *
 * The decoder checks the layout only: lengths against what is left, no trailing bytes,
 * neighbours 0..HX_TOPO_MAX_NEIGH, no duplicate neighbour and not the origin itself, flags
 * only HX_TOPO_QKD, lifetime 1..HX_TOPO_MAX_LIFETIME_S, a certificate and a signature present
 * and bounded. Whether the certificate is the network CA's and names the origin, and whether
 * the signature verifies, is the daemon's (daemon/relay.c). Views point into the caller's
 * buffer.
 */
#ifndef HX_PROTO_PEER_TOPO_H
#define HX_PROTO_PEER_TOPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/uuid.h"

/* The frame type (docs/peer-protocol.md "Relay"); a node without relay.enabled ignores it. */
#define HX_PEER_TOPO_ANNOUNCE 0x50

#define HX_TOPO_MAX_NEIGH 64 /* = HXD_MAX_PEERS: a node announces its trusted peers */
#define HX_TOPO_MAX_CERT 16384
#define HX_TOPO_MAX_SIG 4627 /* ML-DSA-87 (crypto/sig.h HX_SIG_MAX_SIGNATURE) */
#define HX_TOPO_MAX_LIFETIME_S 3600
#define HX_TOPO_QKD 0x01     /* neighbour flag: the link has QKD behind it */
#define HX_TOPO_TRANSIT 0x01 /* node flag: relays for others (relay.transit) */
#define HX_TOPO_SIG_CTX "hykex/1 topology"

struct hx_topo_neigh {
    struct hx_uuid node;
    uint8_t flags;      /* HX_TOPO_QKD or 0 */
    uint32_t key_avail; /* estimate of the QKD key available on the link, bytes; 0: unknown */
};

struct hx_peer_topo {
    struct hx_uuid origin;
    uint64_t seq;        /* higher replaces lower */
    uint32_t lifetime_s; /* forgotten this long after it arrived unless replaced */
    uint8_t node_flags;  /* HX_TOPO_TRANSIT or 0 */
    size_t n_neigh;
    struct hx_topo_neigh neigh[HX_TOPO_MAX_NEIGH];
    const uint8_t *cert; /* the origin's certificate, DER */
    size_t cert_len;
    /* decoded only: */
    const uint8_t *sig;
    size_t sig_len;
    const uint8_t *signed_part; /* what the signature covers */
    size_t signed_len;
};

/* Writes the signed part (everything before the signature); HX_ERR_INVALID_ARG for a message
 * the decoder would refuse. */
HX_MUST_CHECK hx_err hx_peer_encode_topo_body(struct hx_writer *w, const struct hx_peer_topo *m);
/* Appends u16 length | signature. */
HX_MUST_CHECK hx_err hx_peer_encode_topo_sig(struct hx_writer *w, const uint8_t *sig, size_t len);
HX_MUST_CHECK hx_err hx_peer_decode_topo(const uint8_t *p, size_t len, struct hx_peer_topo *out);

/*
 * RELAY_FWD: a stream or batch message between two nodes without a direct link, carried hop by
 * hop over the peer links (docs/relay.md "Forwarding"):
 *
 *   u8 n (path nodes, 2..HX_RELAY_MAX_PATH) | n x node (16) | u8 at (the receiver's place in
 *   the path, 1..n-1) | u8 inner type | u8 qkd (0, or 1: the relayed QKD part follows)
 *   [| u64 index on the receiver's incoming link | u32 length | accumulator] | inner payload
 *
 * The accumulator (a BATCH_REQ's QKD part on its way, docs/relay.md "QKD part") is the first
 * link's keys XOR the receiver's incoming link's keys, count x key bytes: a one-time pad.
 *
 * The path names each node once; the inner type is a STREAM_* or BATCH_* message. What the
 * relays carry is the end-to-end batch protocol unchanged: its signatures and confirmation tags
 * are the ends' (a relay can drop or delay a message, not forge one that verifies).
 */
#define HX_PEER_RELAY_FWD 0x51
#define HX_RELAY_MAX_PATH 17             /* 16 hops */
#define HX_RELAY_MAX_ACC (1024u * 4096u) /* HX_PEER_MAX_BATCH x the largest qkd.key_bytes */

struct hx_peer_fwd {
    size_t n;
    struct hx_uuid path[HX_RELAY_MAX_PATH];
    uint8_t at;
    uint8_t type;
    bool has_qkd;
    uint64_t qkd_index;     /* has_qkd: index of the keys on the receiver's incoming link */
    const uint8_t *qkd_acc; /* has_qkd: the accumulator (a view) */
    size_t qkd_acc_len;
    const uint8_t *p; /* the inner payload (a view) */
    size_t len;
};

/* true for the message types a relay carries (STREAM_OPEN/JOIN/CLOSE, BATCH_*). */
bool hx_peer_fwd_type_ok(uint8_t type);
HX_MUST_CHECK hx_err hx_peer_encode_fwd(struct hx_writer *w, const struct hx_peer_fwd *m);
HX_MUST_CHECK hx_err hx_peer_decode_fwd(const uint8_t *p, size_t len, struct hx_peer_fwd *out);

/*
 * RELAY_REPATH (docs/relay.md "Rerouting a stream with QKD"): a stream whose QKD part is relayed
 * moves to a new path. Only ever inside a RELAY_FWD (whose path is the new one):
 *
 *   stream id (16) | u32 epoch | u8 kind | QKD stream id of the receiver's incoming link (16,
 *   a UUID; zero unless kind 0) | u16 length | message (kind 2 only, at most 199 bytes)
 *
 * kind 0 (initiator to responder): open the path's QKD links; each relay puts a fresh id for
 * its outgoing link in place of the incoming one, as for a STREAM_OPEN. kind 1 (back): the
 * responder's end is on the new link. kind 2 (back): refused, with the reason. The epoch
 * matches an answer to its request.
 */
#define HX_PEER_RELAY_REPATH 0x52
#define HX_REPATH_MAX_MSG 199

enum hx_repath_kind { HX_REPATH_OPEN = 0, HX_REPATH_DONE = 1, HX_REPATH_REFUSED = 2 };

struct hx_peer_repath {
    struct hx_uuid ksid;
    uint32_t epoch;
    uint8_t kind;
    struct hx_uuid qkd_link; /* kind 0: the incoming link's QKD stream id */
    char msg[HX_REPATH_MAX_MSG + 1];
};

HX_MUST_CHECK hx_err hx_peer_encode_repath(struct hx_writer *w, const struct hx_peer_repath *m);
HX_MUST_CHECK hx_err hx_peer_decode_repath(const uint8_t *p, size_t len,
                                           struct hx_peer_repath *out);

#endif
