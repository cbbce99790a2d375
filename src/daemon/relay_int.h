/* Between the relay's files (daemon/relay.c: topology; daemon/relay_fwd.c: forwarding). */
#ifndef HX_DAEMON_RELAY_INT_H
#define HX_DAEMON_RELAY_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "common/clock.h"
#include "crypto/sig.h"
#include "daemon/config.h"
#include "daemon/relay.h"
#include "daemon/relay_hold.h"
#include "peer/certid.h"
#include "proto/peer_topo.h"
#include "proto/uri.h"

#define RELAY_INBOX 256              /* announcements waiting for the tick; more are dropped */
#define RELAY_INBOX_BYTES (8u << 20) /* and at most this many bytes of them */
#define RELAY_MAX_AVOID 32           /* relay.avoid: 1 023 characters hold 27 UUIDs */

/* The link to a trusted peer the map was last handed to (its serial; 0: none). */
struct synced_link {
    struct hx_uuid peer;
    uint64_t serial;
};

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

/* The path a BATCH_REQ arrived along (relay_path.c), for the responder's transcript. */
#define RELAY_ARRIVALS 64
struct relay_arrival {
    bool used;
    struct hx_uuid ksid;
    uint64_t first;
    size_t n;
    struct hx_uuid path[HX_RELAY_MAX_PATH];
};

/* A stream's own relay policy (its source URI's relay keys; relay_path.c). */
#define RELAY_POLICIES 256
struct relay_policy {
    bool used, forbidden;
    struct hx_uuid ksid;
    unsigned max_hops;
    size_t n_avoid;
    struct hx_uuid avoid[HX_URI_MAX_AVOID];
};

/* The links of the path a stream's latest batch took (relay_path.c): metadata.hops. */
struct relay_hops {
    bool used;
    struct hx_uuid ksid;
    size_t hops;
};

struct hxd_relay {
    pthread_mutex_t lock; /* inbox, map, keys (written by the main thread under it), counters */
    hxd_relay_deliver_fn deliver;
    struct hx_topo topo;
    struct inbox_item inbox[RELAY_INBOX];
    size_t n_inbox, inbox_bytes;
    uint64_t accepted, refused, dropped, forgotten, announced;
    uint64_t forwarded, delivered, fwd_dropped; /* RELAY_FWD */
    struct hx_hold hold; /* RELAY_FWD to this node from an origin not on the map yet */
    /* verified keys of the nodes on the map: written by the main thread (under the lock),
     * copied out by others under it (hxd_relay_peer_key) */
    struct known_key *keys;
    size_t n_keys, max_keys;
    /* main thread only: */
    struct hx_certid *ca;
    uint8_t *cert; /* this node's certificate, DER */
    size_t cert_len;
    uint64_t seq;
    int64_t next_announce;    /* clock.h deadline */
    struct hx_topo_keep kept; /* the announcements on the map, for the map hand-over */
    struct synced_link synced[HXD_MAX_PEERS];
    size_t n_synced;
    /* set at start, read-only after: */
    struct hx_uuid avoid[RELAY_MAX_AVOID];
    size_t n_avoid;
    atomic_bool links_changed;
    struct relay_qkd *qkd; /* the QKD part over relays (relay_qkd.c); NULL: no ETSI 004 KME */
    /* under the lock (relay_path.c): rings, the oldest replaced */
    struct relay_arrival arrivals[RELAY_ARRIVALS];
    size_t n_arrivals;
    struct relay_policy policies[RELAY_POLICIES];
    size_t n_policies;
    struct relay_hops hops[RELAY_POLICIES];
    size_t n_hops;
};

/* relay_qkd.c: the worker and its tables. */
struct hx_peer_fwd;
HX_MUST_CHECK hx_err hxd_relay_qkd_start(struct hxd *d);
void hxd_relay_qkd_stop(struct hxd_relay *r);
/* A relay's RELAY_FWD (I/O thread): true when the QKD worker took it (a STREAM_OPEN or a
 * BATCH_REQ of a QKD stream), which then passes it on; false: pass it on as it is. */
bool hxd_relay_qkd_take(struct hxd *d, const struct hx_peer_fwd *m, const uint8_t *frame,
                        size_t len);
/* The end (I/O thread, before delivering): a QKD stream's STREAM_OPEN records the node at the
 * other end of this node's QKD link; a BATCH_REQ's accumulator waits for the responder. */
void hxd_relay_qkd_arrived(struct hxd *d, const struct hx_peer_fwd *m);
/* The initiator's STREAM_OPEN of a QKD stream over relays: the path is pinned (its QKD links are
 * opened along it) and its first hop is this node's QKD link. */
void hxd_relay_qkd_pin(struct hxd *d, const uint8_t *open, size_t len,
                       const struct hx_topo_path *path);
/* Does this STREAM_OPEN payload name QKD among its sources (*ksid, *qid: its ids)? */
bool hxd_relay_qkd_open_has_qkd(const uint8_t *p, size_t len, struct hx_uuid *ksid,
                                struct hx_qkd_ksid *qid);
/* The pinned path of a stream; false: none. *follows (may be NULL): the responder's, the path
 * the stream came along taken back as it is (the initiator judges whether it still holds). */
bool hxd_relay_qkd_pinned(struct hxd *d, const struct hx_uuid *ksid, struct hx_topo_path *path,
                          bool *follows);

/* relay_path.c: the path to peer under the node's relay.* options and the stream's own policy
 * (u, else the one registered for ksid; both may be NULL); HX_ERR_NOT_FOUND when none (lock
 * held). */
hx_err hxd_relay_path_locked(const struct hxd *d, const struct hxd_relay *r,
                             const struct hx_uuid *peer, const struct hx_uuid *ksid,
                             const struct hx_uri *u, bool need_qkd, struct hx_topo_path *p);
/* The end, before delivering: the path a BATCH_REQ came along (hxd_relay_batch_path). */
void hxd_relay_path_arrived(struct hxd *d, const struct hx_peer_fwd *m);

/* The path a stream's latest batch took, noted by the batch protocol (hxd_relay_note_path), else
 * its pinned QKD path; false: neither. */
bool hxd_relay_stream_hops(struct hxd *d, const struct hx_uuid *ksid, struct hx_topo_path *p);

/* relay_fwd.c, on the main thread's tick after the inbox: delivers the held messages whose
 * origin is on the map now, drops those held too long. */
void hxd_relay_release_held(struct hxd *d);

/* Monotonic ms, the map's time. */
static inline int64_t hxd_relay_now_ms(void)
{
    return hx_monotime_ns() / 1000000;
}

#endif
