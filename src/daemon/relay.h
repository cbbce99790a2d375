/*
 * The relay across trusted nodes, as far as it is built (docs/relay.md): the topology protocol.
 * Opt-in (relay.enabled): while off, hxd_relay_start does nothing, every TOPO_ANNOUNCE that
 * arrives is dropped unread and the daemon behaves exactly as without this module.
 *
 * Threads: a link's I/O thread only copies an announcement into a bounded inbox
 * (hxd_relay_on_frame: no crypto there); the main loop's tick (hxd_relay_tick, every 200 ms)
 * verifies the inbox (certificate against the network CA, UUID SAN, ML-DSA signature), updates
 * the map, floods what is new to the other neighbours, forgets what expired and announces this
 * node when its period is over or a link changed. One mutex (r->lock) guards the inbox, the
 * map and the counters; nothing slow runs under it; it is never taken with d->lock held.
 */
#ifndef HX_DAEMON_RELAY_H
#define HX_DAEMON_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/uuid.h"
#include "daemon/topology.h"

struct hxd;
struct hxd_relay;
struct hx_uri;
struct hx_sig_key;

/* Hands a message that arrived over relays to the stream and batch protocol as if from node
 * `from` (dispatch.c's hxd_on_peer_frame; passed in so that the relay calls nothing above it). */
typedef void (*hxd_relay_deliver_fn)(struct hxd *d, const struct hx_uuid *from, uint8_t type,
                                     const uint8_t *p, size_t len);

/* Starts the topology protocol when relay.enabled (before the links start: their threads read
 * d->relay); else HX_OK and nothing. HX_ERR_CONFIG with why for a bad relay.avoid or an
 * unreadable certificate. */
HX_MUST_CHECK hx_err hxd_relay_start(struct hxd *d, hxd_relay_deliver_fn deliver, char *why,
                                     size_t why_len);
/* After the links are stopped (no frame arrives any more). */
void hxd_relay_stop(struct hxd *d);
/* A TOPO_ANNOUNCE from neighbour `from` (a link's I/O thread): queued, or dropped when the
 * relay is off or the inbox is full. */
void hxd_relay_on_frame(struct hxd *d, const struct hx_uuid *from, const uint8_t *p, size_t len);
/* A link came up or went down: announce at the next tick. */
void hxd_relay_link_changed(struct hxd *d);
/* Main loop, every 200 ms. */
void hxd_relay_tick(struct hxd *d);

/*
 * Forwarding (daemon/relay_fwd.c, docs/relay.md "Forwarding"): stream and batch messages to a
 * node without a direct link go over the map's path, wrapped in RELAY_FWD. All of these are
 * no-ops (or "no route") while the relay is off. Lock order: d->lock, then the relay's lock;
 * the relay never takes d->lock while holding its own.
 */
/* A RELAY_FWD from neighbour `from` (I/O thread): passed on to the next hop, or, at its end,
 * delivered (only from a node whose certificate this node has verified). */
void hxd_relay_on_fwd(struct hxd *d, const struct hx_uuid *from, const uint8_t *p, size_t len);
/* Sends one message to peer over the current path; *serial (may be NULL) gets the first hop's
 * link serial and *path (may be NULL) the path. HX_ERR_IO_CLOSED when the relay is off or has
 * no path. */
HX_MUST_CHECK hx_err hxd_relay_send(struct hxd *d, const struct hx_uuid *peer, uint8_t type,
                                    const uint8_t *p, size_t len, uint64_t *serial,
                                    struct hx_topo_path *path);
/* The serial a message of stream ksid to peer would go under now (the first hop's link and the
 * whole path); 0: no path. A new path, or a relay gone from a pinned one, gives another serial,
 * so batches in flight fail at once and are made again. */
uint64_t hxd_relay_serial(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid);
/* A copy of peer's verified signature key (ML-DSA only); HX_ERR_NOT_FOUND when none. */
HX_MUST_CHECK hx_err hxd_relay_peer_key(struct hxd *d, const struct hx_uuid *peer,
                                        struct hx_sig_key **out);
/* Can a stream reach peer over relays now? false with why (for OPEN_CONNECT) otherwise. */
bool hxd_relay_reaches(const struct hxd *d, const struct hx_uuid *peer, bool need_qkd,
                       const struct hx_uri *u, char *why, size_t why_len);
/* Relays between this node and peer on stream ksid's path (its pinned QKD path, else the path
 * its latest batch arrived along, else the map's; 0: direct, or no path). */
unsigned hxd_relay_relays(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid);

/*
 * relay_path.c. Per-stream policy: the stream's source URI names relay keys (docs/relay.md
 * "Per-stream policy"): its messages take only paths within them, besides relay.*. Registered
 * at both ends when the stream opens; u without relay keys registers nothing.
 */
void hxd_relay_stream_policy(struct hxd *d, const struct hx_uuid *ksid, const struct hx_uri *u);
/* Is stream ksid's pinned QKD path (if any) whole on the map? false with why naming the hop
 * that left it. */
bool hxd_relay_qkd_path_ok(struct hxd *d, const struct hx_uuid *ksid, char *why, size_t why_len);
/* The path with QKD on every hop to peer under relay.* and u's relay keys, at least one relay
 * on it; false with why (the hop without QKD, or no path) otherwise. */
bool hxd_relay_qkd_path_for(struct hxd *d, const struct hx_uuid *peer, const struct hx_uri *u,
                            struct hx_topo_path *out, char *why, size_t why_len);
/* The path a batch of stream ksid travelled (both ends, once its transcript binds it): what
 * metadata.hops reports for the stream's keys from then on. */
void hxd_relay_note_path(struct hxd *d, const struct hx_uuid *ksid, const struct hx_topo_path *p);
/* The responder: the path the BATCH_REQ of ksid at first came along from peer (initiator
 * first), taken once; false: none (a direct link). */
bool hxd_relay_batch_path(struct hxd *d, const struct hx_uuid *ksid, const struct hx_uuid *peer,
                          uint64_t first, struct hx_topo_path *out);

/* The QKD part over relays (daemon/relay_qkd.c). Can this node carry it (an ETSI 004 KME)? */
bool hxd_relay_qkd_ready(const struct hxd *d);
/* The node at the other end of this node's QKD link for a stream with peer over relays (the
 * first relay at the initiator, the last at the responder); false: none (a direct stream, or
 * what arrived named another peer). */
bool hxd_relay_qkd_link_peer(const struct hxd *d, const struct hx_uuid *ksid,
                             const struct hx_uuid *peer, struct hx_uuid *out);
/* The initiator moves a stream whose QKD part is relayed to a new path (docs/relay.md "Rerouting
 * a stream with QKD"): its later messages take it, and its QKD link is the one to path[1].
 * false: the stream has no pinned path here. */
bool hxd_relay_qkd_repin(struct hxd *d, const struct hx_uuid *ksid,
                         const struct hx_topo_path *path);
/* The responder: the accumulator of the batch of ksid at first (len bytes) and the index of its
 * keys on this node's QKD link, taken (once); false: none arrived (a direct stream). */
bool hxd_relay_qkd_material(struct hxd *d, const struct hx_uuid *ksid, const struct hx_uuid *peer,
                            uint64_t first, uint64_t *index, uint8_t *acc, size_t len);

/* The checks of an announcement before the map takes it (also for the unit tests): its
 * certificate is the network CA's and names the origin (HX_OK with the origin's key, which
 * the caller frees); its signature verifies under that key (HX_ERR_VERIFY otherwise). */
struct hx_certid;
struct hx_sig_key;
HX_MUST_CHECK hx_err hxd_relay_check_cert(const struct hx_certid *ca, const struct hx_peer_topo *m,
                                          struct hx_sig_key **key, int64_t *not_after, char *why,
                                          size_t why_len);
HX_MUST_CHECK hx_err hxd_relay_check_sig(const struct hx_sig_key *key,
                                         const struct hx_peer_topo *m);

/* What STATUS shows of the relay: the map, and the path to every node on it. */
struct hxd_relay_node_view {
    struct hx_topo_node node;
    int64_t age_ms, expires_in_ms; /* expires_in_ms < 0: never (this node) */
    bool reachable, qkd_reachable;
    struct hx_topo_path path;     /* reachable: under relay.max_hops and relay.avoid */
    struct hx_topo_path qkd_path; /* qkd_reachable: the same with QKD on every hop */
};
struct hxd_relay_view {
    size_t n;
    struct hxd_relay_node_view *nodes; /* sorted by UUID */
    uint64_t accepted, refused, dropped, forgotten, announced;
    uint64_t forwarded, delivered, fwd_dropped; /* RELAY_FWD passed on, arrived, refused/lost */
};
/* NULL in *out when the relay is off. */
HX_MUST_CHECK hx_err hxd_relay_view(struct hxd *d, struct hxd_relay_view **out);
void hxd_relay_view_free(struct hxd_relay_view *v);

#endif
