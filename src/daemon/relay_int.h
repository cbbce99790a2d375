/* Between the relay's files (daemon/relay.c: topology; daemon/relay_fwd.c: forwarding). */
#ifndef HX_DAEMON_RELAY_INT_H
#define HX_DAEMON_RELAY_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "crypto/sig.h"
#include "daemon/relay.h"
#include "peer/certid.h"

#define RELAY_INBOX 256    /* announcements waiting for the tick; more are dropped */
#define RELAY_MAX_AVOID 32 /* relay.avoid: 1 023 characters hold 27 UUIDs */

struct inbox_item {
    struct hx_uuid from;
    uint8_t *p;
    size_t len;
};

/* A verified certificate: its key serves the node's next announcements while the same
 * certificate comes with them and has not expired. */
struct known_key {
    struct hx_uuid node;
    uint8_t cert_hash[32];
    struct hx_sig_key *key;
    int64_t not_after;
};

struct hxd_relay {
    pthread_mutex_t lock; /* inbox, map, keys (written by the main thread under it), counters */
    hxd_relay_deliver_fn deliver;
    struct hx_topo topo;
    struct inbox_item inbox[RELAY_INBOX];
    size_t n_inbox;
    uint64_t accepted, refused, dropped, forgotten, announced;
    uint64_t forwarded, delivered, fwd_dropped; /* RELAY_FWD */
    /* verified keys of the nodes on the map: written by the main thread (under the lock),
     * copied out by others under it (hxd_relay_peer_key) */
    struct known_key *keys;
    size_t n_keys, max_keys;
    /* main thread only: */
    struct hx_certid *ca;
    uint8_t *cert; /* this node's certificate, DER */
    size_t cert_len;
    uint64_t seq;
    int64_t next_announce; /* clock.h deadline */
    /* set at start, read-only after: */
    struct hx_uuid avoid[RELAY_MAX_AVOID];
    size_t n_avoid;
    atomic_bool links_changed;
};

/* Monotonic ms, the map's time. */
int64_t hxd_relay_now_ms(void);

#endif
