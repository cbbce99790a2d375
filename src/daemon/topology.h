/*
 * The relay's map of the network (docs/relay.md "Topology"): the latest announcement of each
 * node, and paths over it. Pure: no lock, no clock, no I/O (the caller passes the time, in
 * monotonic ms, and has verified each announcement's certificate and signature before it
 * offers it here), so that flooding, replacement, ageing and path choice are unit-tested
 * without a network (tests/unit/test_topology.c).
 *
 * Links are taken only where both ends announce each other (a node cannot invent a link to a
 * node that does not confirm it); a link carries QKD only if both ends flag it so, and its
 * available key is the smaller of the two estimates.
 *
 * A node that does not announce HX_TOPO_TRANSIT is never a relay on a path (it may be an end).
 *
 * Path choice: fewest hops; among equal hop counts the most available key (the largest
 * bottleneck: the smallest estimate along the path); then the smaller node UUIDs hop by hop,
 * so that every node computes the same path from the same map.
 */
#ifndef HX_DAEMON_TOPOLOGY_H
#define HX_DAEMON_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/uuid.h"
#include "proto/peer_topo.h"

#define HX_TOPO_MAX_HOPS 16 /* the longest path computed */

struct hx_topo_node {
    struct hx_uuid id;
    uint64_t seq;
    int64_t expires_ms; /* monotonic ms; the node's own entry never expires */
    int64_t heard_ms;   /* when this version arrived */
    uint8_t node_flags; /* HX_TOPO_TRANSIT: may be a relay */
    size_t n_neigh;
    struct hx_topo_neigh neigh[HX_TOPO_MAX_NEIGH];
};

struct hx_topo {
    struct hx_uuid self;
    struct hx_topo_node *nodes; /* sorted by id */
    size_t n, max;
};

enum hx_topo_verdict {
    HX_TOPO_STALE = 0, /* a version this map already has, or an older one: not flooded on */
    HX_TOPO_NEW,       /* a node the map did not know */
    HX_TOPO_REPLACED,  /* a newer version of a known node */
};

struct hx_topo_policy {
    unsigned max_hops;           /* 0: HX_TOPO_MAX_HOPS */
    bool need_qkd;               /* every hop must carry QKD */
    const struct hx_uuid *avoid; /* never relay through these (the ends may be listed) */
    size_t n_avoid;
};

struct hx_topo_path {
    size_t hops;                               /* links; 0 when dst is self */
    struct hx_uuid node[HX_TOPO_MAX_HOPS + 1]; /* self, relays..., dst */
    uint32_t key_avail;                        /* the bottleneck estimate; 0: unknown */
};

/* An empty map for node self, holding at most max nodes (self included). */
HX_MUST_CHECK hx_err hx_topo_init(struct hx_topo *t, const struct hx_uuid *self, size_t max);
void hx_topo_wipe(struct hx_topo *t);

/* Would an announcement of origin with seq replace what the map holds? (Cheap: checked before
 * the signature, so duplicates of a flood cost no verification.) */
bool hx_topo_is_newer(const struct hx_topo *t, const struct hx_uuid *origin, uint64_t seq);

/*
 * Takes a verified announcement arriving at now_ms. HX_ERR_NOSPACE when the map is full (the
 * announcement is dropped; known nodes are still replaced). The node's own announcements go
 * through here too, and never expire.
 */
HX_MUST_CHECK hx_err hx_topo_accept(struct hx_topo *t, const struct hx_peer_topo *m, int64_t now_ms,
                                    enum hx_topo_verdict *verdict);

/* Forgets the nodes whose announcement has expired by now_ms; returns how many. */
size_t hx_topo_age(struct hx_topo *t, int64_t now_ms);

const struct hx_topo_node *hx_topo_find(const struct hx_topo *t, const struct hx_uuid *id);

/* The path from self to dst under pol (docs above). HX_ERR_NOT_FOUND when none exists. */
HX_MUST_CHECK hx_err hx_topo_path(const struct hx_topo *t, const struct hx_uuid *dst,
                                  const struct hx_topo_policy *pol, struct hx_topo_path *out);

/* Is every link of path still on the map (announced by both ends; with need_qkd, with QKD)? */
bool hx_topo_path_valid(const struct hx_topo *t, const struct hx_topo_path *path, bool need_qkd);

/* The paths to every node of the map at once (paths and reachable hold t->n entries, in the
 * map's order): one search, for STATUS. */
HX_MUST_CHECK hx_err hx_topo_paths(const struct hx_topo *t, const struct hx_topo_policy *pol,
                                   struct hx_topo_path *paths, bool *reachable);

/* Announcements kept as they arrived, signed, byte for byte: one per node on the map, handed to
 * a neighbour whose link comes up (docs/relay.md "Map hand-over"). */
struct hx_topo_kept {
    struct hx_uuid origin;
    uint64_t seq;
    uint8_t *p;
    size_t len;
};
struct hx_topo_keep {
    struct hx_topo_kept *a;
    size_t n, max;
};

HX_MUST_CHECK hx_err hx_topo_keep_init(struct hx_topo_keep *k, size_t max);
void hx_topo_keep_wipe(struct hx_topo_keep *k);
/* Keeps p (len bytes) as origin's announcement seq in place of the one kept before it;
 * HX_ERR_NOSPACE when max nodes are kept and origin is not one of them, HX_ERR_NOMEM;
 * HX_ERR_STATE before hx_topo_keep_init or after hx_topo_keep_wipe. */
HX_MUST_CHECK hx_err hx_topo_keep_put(struct hx_topo_keep *k, const struct hx_uuid *origin,
                                      uint64_t seq, const uint8_t *p, size_t len);
/* Drops what the map t no longer holds (a node forgotten, or another version on the map). */
void hx_topo_keep_prune(struct hx_topo_keep *k, const struct hx_topo *t);

#endif
