/*
 * The link to one peer node: TLS 1.3 only, mutual authentication against the network CA, the
 * peer identified by the UUID in its certificate (SAN URI:urn:uuid:...). One connection per
 * peer pair: the node with the smaller UUID connects, the other accepts; reconnects with
 * back-off; keep-alives notice a dead peer.
 *
 * Each link has one I/O thread (poll + non-blocking OpenSSL: an SSL object must not be used by
 * two threads at once). Other threads queue frames with hx_link_send; received frames go to
 * the daemon's handler on the I/O thread, which must not block. Frames: "HX", version 1,
 * type, u32 BE payload length (<= hx_peer_frame_max(type): HX_LINK_MAX_FRAME, or
 * HX_LINK_MAX_KEM_FRAME for a BATCH_REQ), payload (docs/peer-protocol.md).
 */
#ifndef HX_PEER_LINK_H
#define HX_PEER_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/uuid.h"
#include "crypto/sig.h"
#include "proto/peer.h"

#define HX_LINK_HEADER HX_PEER_FRAME_HEADER /* proto/peer.h: "HX", version, type, u32 length */
#define HX_LINK_MAX_FRAME HX_PEER_MAX_FRAME
#define HX_LINK_MAX_KEM_FRAME HX_PEER_MAX_KEM_FRAME

struct hx_link;
struct hx_links;

struct hx_links_config {
    struct hx_uuid self;
    const char *ca_path, *cert_path, *key_path;
    const char *groups;
    const char *listen_host;
    uint16_t listen_port;
    const char *source_host; /* outgoing links' source address (NULL: listen_host) */
    unsigned keepalive_s, reconnect_max_s;
    const struct hx_uuid *peers; /* trusted peer UUIDs */
    const char *const *peer_hosts;
    const uint16_t *peer_ports;
    size_t n_peers;
    /* Called on the link's I/O thread for every frame; must not block. */
    void (*on_frame)(void *arg, struct hx_link *l, uint8_t type, const uint8_t *p, size_t len);
    /* Called when a link comes up or goes down (I/O thread). */
    void (*on_state)(void *arg, struct hx_link *l, bool up);
    void *arg;
};

HX_MUST_CHECK hx_err hx_links_start(const struct hx_links_config *cfg, struct hx_links **out,
                                    char *why, size_t why_len);
void hx_links_stop(struct hx_links *ls);

/*
 * Credentials: the node's certificate, key and CA as one reference-counted set (a TLS context
 * and the signing key that goes with the certificate). hx_links_update swaps a new set in; links
 * made with the old one keep it until they end, and sign their batches with its key (the peer
 * verifies with the certificate it saw on that link).
 */
struct hx_link_creds;
struct hx_link_creds_info {
    int64_t cert_not_after; /* Unix time */
    int64_t ca_not_after;
    bool names_uuid; /* the certificate names node UUIDs (else an IP-only one) */
};
/*
 * What cannot work, one reason each in why: the key file missing, readable by group or others,
 * not parsing, not matching the certificate; the certificate or CA missing, not parsing, not
 * valid yet or expired; the certificate not verifying against the CA; a certificate naming node
 * UUIDs none of which is c->self. IP-only certificates (no UUID SAN) pass.
 */
HX_MUST_CHECK hx_err hx_link_check_creds(const struct hx_links_config *c,
                                         struct hx_link_creds_info *info, char *why,
                                         size_t why_len);
/* The checks above, then the TLS context and the signing key: one reference, or why. */
HX_MUST_CHECK hx_err hx_link_creds_new(const struct hx_links_config *c, struct hx_link_creds **out,
                                       char *why, size_t why_len);
void hx_link_creds_put(struct hx_link_creds *cr);
/* The expiries of the links' current set. */
void hx_links_creds_info(struct hx_links *ls, struct hx_link_creds_info *out);

/*
 * Reload: the trusted peers become cfg's (peers, peer_hosts, peer_ports, n_peers; the rest of
 * cfg is not looked at): a removed peer's link is closed and its connector ends, an added one is
 * dialled (or awaited), a changed address is dialled anew. creds (NULL: unchanged) replaces the
 * set for every new link when its files differ from the current set's (*swapped says whether);
 * the reference is the links' from here on. HX_ERR_TOO_LARGE when the slots for peers are used
 * up (nothing changed then; creds released).
 */
HX_MUST_CHECK hx_err hx_links_update(struct hx_links *ls, const struct hx_links_config *cfg,
                                     struct hx_link_creds *creds, bool *swapped);
/*
 * One step of re-establishing the links (main loop): when no re-establishment is under way,
 * closes one up link made with a replaced credentials set, or whose peer certificate expires
 * within renew_s and that has been up an hour; it comes back at once, made with the current
 * sets. Returns whether it closed one.
 */
bool hx_links_refresh(struct hx_links *ls, int64_t renew_s);

/* The up link to a peer (with a reference the caller drops with hx_link_put), or NULL. */
struct hx_link *hx_links_get(struct hx_links *ls, const struct hx_uuid *peer);
void hx_link_put(struct hx_link *l);
const struct hx_uuid *hx_link_peer(const struct hx_link *l);
/* The peer's certificate key, for verifying its batch signatures. */
const struct hx_sig_key *hx_link_peer_key(const struct hx_link *l);
/* The signing key of the certificate this link was made with. */
const struct hx_sig_key *hx_link_own_key(const struct hx_link *l);
/* A number no other link of this process has: a reconnected peer's link has a new one. */
uint64_t hx_link_serial(const struct hx_link *l);
/* What an operator sees of the link to one peer (hykex status). */
struct hx_link_info {
    bool up;
    int64_t last_up;        /* Unix time the last link came up; 0: never */
    int64_t last_down;      /* Unix time the last link went down; 0: never */
    uint64_t links_made;    /* handshakes that identified this peer */
    char group[48];         /* TLS key exchange group of the last link */
    char cipher[48];        /* its cipher suite */
    int64_t cert_not_after; /* expiry (Unix time) of the peer's certificate; 0: unknown */
    uint64_t dials;         /* connection attempts to this peer (we dial it) */
    uint64_t dial_failures; /* of those, the ones that made no link */
    bool stale_creds;       /* the up link was made with a replaced credentials set */
};
/* HX_ERR_NOT_FOUND when peer is not a trusted peer. */
HX_MUST_CHECK hx_err hx_links_info(struct hx_links *ls, const struct hx_uuid *peer,
                                   struct hx_link_info *out);
/* Closes the link (it reconnects as usual); for fault injection in tests. */
void hx_links_drop(struct hx_links *ls, const struct hx_uuid *peer);
/* Queues one frame; HX_ERR_IO_CLOSED when the link is down. */
HX_MUST_CHECK hx_err hx_link_send(struct hx_link *l, uint8_t type, const uint8_t *p, size_t len);

#endif
