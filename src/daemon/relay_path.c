/*
 * The paths of relayed streams (daemon/relay.h, docs/relay.md "Rerouting a stream with QKD" and
 * "The path in the transcript"): whether a pinned QKD path is still whole (and which hop left
 * the map when not), the QKD path a stream moves to, and the path each BATCH_REQ arrived along,
 * which the responder's transcript binds. Runs on the workers and the main loop's tick, and
 * (recording an arrival) on the links' I/O threads: nothing here blocks; the map is read under
 * the relay's lock, never with d->lock held by this file.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "daemon/hxd.h"
#include "daemon/relay_int.h"
#include "proto/peer_topo.h"

/* ---- per-stream policy (the source URI's relay keys) ---- */

hx_err hxd_relay_path_locked(const struct hxd *d, const struct hxd_relay *r,
                             const struct hx_uuid *peer, const struct hx_uuid *ksid,
                             const struct hx_uri *u, bool need_qkd, struct hx_topo_path *p)
{
    struct hx_uuid avoid[RELAY_MAX_AVOID + HX_URI_MAX_AVOID];
    struct hx_topo_policy pol = {
        .max_hops = d->cfg.relay_max_hops, .need_qkd = need_qkd, .avoid = avoid};
    const struct relay_policy *sp = NULL;
    hx_err e;

    for (size_t i = 0; u == NULL && ksid != NULL && i < RELAY_POLICIES; i++) {
        if (r->policies[i].used && hx_uuid_equal(&r->policies[i].ksid, ksid)) {
            sp = &r->policies[i];
        }
    }
    memcpy(avoid, r->avoid, r->n_avoid * sizeof(avoid[0]));
    pol.n_avoid = r->n_avoid;
    if (u != NULL || sp != NULL) {
        bool forbidden = u != NULL ? u->relay_forbidden != 0 : sp->forbidden;
        unsigned max_hops = u != NULL ? u->relay_max_hops : sp->max_hops;
        size_t n = u != NULL ? u->n_avoid : sp->n_avoid;
        if (forbidden) {
            return HX_ERR_NOT_FOUND;
        }
        if (max_hops != 0 && max_hops < pol.max_hops) {
            pol.max_hops = max_hops;
        }
        memcpy(avoid + pol.n_avoid, u != NULL ? u->avoid : sp->avoid, n * sizeof(avoid[0]));
        pol.n_avoid += n;
    }
    e = hx_topo_path(&r->topo, peer, &pol, p);
    return e == HX_OK && p->hops == 0 ? HX_ERR_NOT_FOUND : e;
}

void hxd_relay_stream_policy(struct hxd *d, const struct hx_uuid *ksid, const struct hx_uri *u)
{
    struct hxd_relay *r = d->relay;
    struct relay_policy *slot = NULL;

    if (r == NULL || (!u->relay_forbidden && u->relay_max_hops == 0 && u->n_avoid == 0)) {
        return; /* the node's relay.* options hold */
    }
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < RELAY_POLICIES && slot == NULL; i++) {
        slot = r->policies[i].used && hx_uuid_equal(&r->policies[i].ksid, ksid) ? &r->policies[i]
                                                                                : NULL;
    }
    if (slot == NULL) {
        slot = &r->policies[r->n_policies++ % RELAY_POLICIES]; /* the oldest goes */
    }
    memset(slot, 0, sizeof(*slot));
    slot->used = true;
    slot->ksid = *ksid;
    slot->forbidden = u->relay_forbidden != 0;
    slot->max_hops = u->relay_max_hops;
    slot->n_avoid = u->n_avoid;
    memcpy(slot->avoid, u->avoid, u->n_avoid * sizeof(u->avoid[0]));
    pthread_mutex_unlock(&r->lock);
}

/* ---- rerouting a stream whose QKD part is relayed ---- */

bool hxd_relay_qkd_path_ok(struct hxd *d, const struct hx_uuid *ksid, char *why, size_t why_len)
{
    struct hxd_relay *r = d->relay;
    struct hx_topo_path path, hop;
    char a[HX_UUID_STR_LEN + 1], b[HX_UUID_STR_LEN + 1];
    size_t gone = SIZE_MAX;

    if (r == NULL || !hxd_relay_qkd_pinned(d, ksid, &path, NULL)) {
        return true; /* nothing pinned: the map's path is taken anyway */
    }
    memset(&hop, 0, sizeof(hop));
    hop.hops = 1;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < path.hops && gone == SIZE_MAX; i++) {
        hop.node[0] = path.node[i];
        hop.node[1] = path.node[i + 1];
        gone = hx_topo_path_valid(&r->topo, &hop, true) ? SIZE_MAX : i;
    }
    pthread_mutex_unlock(&r->lock);
    if (gone == SIZE_MAX) {
        return true;
    }
    hx_uuid_format(&path.node[gone], a);
    hx_uuid_format(&path.node[gone + 1], b);
    snprintf(why, why_len, "hop %s - %s left the relay's map", a, b);
    return false;
}

bool hxd_relay_qkd_path_for(struct hxd *d, const struct hx_uuid *peer, const struct hx_uri *u,
                            struct hx_topo_path *out, char *why, size_t why_len)
{
    struct hxd_relay *r = d->relay;
    hx_err e;

    if (r == NULL || r->qkd == NULL) {
        snprintf(why, why_len, "this node relays no QKD part (no ETSI 004 KME)");
        return false;
    }
    pthread_mutex_lock(&r->lock);
    e = hxd_relay_path_locked(d, r, peer, NULL, u, true, out);
    pthread_mutex_unlock(&r->lock);
    if (e == HX_OK && out->hops >= 2) {
        return true;
    }
    if (!hxd_relay_reaches(d, peer, true, u, why, why_len)) {
        return false;
    }
    snprintf(why, why_len, "no path with QKD on every hop through a relay");
    return false;
}

/* ---- the path each BATCH_REQ arrived along (the responder's transcript) ---- */

void hxd_relay_path_arrived(struct hxd *d, const struct hx_peer_fwd *m)
{
    struct hxd_relay *r = d->relay;
    struct hx_peer_head h;
    struct relay_arrival *a;

    if (r == NULL || m->type != HX_PEER_BATCH_REQ ||
        hx_peer_decode_head(HX_PEER_BATCH_REQ, m->p, m->len, &h) != HX_OK) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    a = &r->arrivals[r->n_arrivals++ % RELAY_ARRIVALS]; /* the oldest goes */
    a->used = true;
    a->ksid = h.ksid;
    a->first = h.first;
    a->n = m->n;
    memcpy(a->path, m->path, m->n * sizeof(m->path[0]));
    pthread_mutex_unlock(&r->lock);
}

bool hxd_relay_batch_path(struct hxd *d, const struct hx_uuid *ksid, const struct hx_uuid *peer,
                          uint64_t first, struct hx_topo_path *out)
{
    struct hxd_relay *r = d->relay;
    bool found = false;

    if (r == NULL) {
        return false;
    }
    pthread_mutex_lock(&r->lock);
    for (size_t k = 0; k < RELAY_ARRIVALS && !found; k++) {
        /* the newest first: a retry of the same positions replaces an older arrival */
        struct relay_arrival *a =
            &r->arrivals[(r->n_arrivals + RELAY_ARRIVALS - 1 - k) % RELAY_ARRIVALS];
        if (a->used && hx_uuid_equal(&a->ksid, ksid) && a->first == first &&
            hx_uuid_equal(&a->path[0], peer)) {
            memset(out, 0, sizeof(*out));
            out->hops = a->n - 1; /* as it came: the initiator first */
            memcpy(out->node, a->path, a->n * sizeof(a->path[0]));
            a->used = false;
            found = true;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return found;
}

/* ---- the path each stream's latest batch took (metadata.hops) ---- */

/* The stream's entry (r->lock held); NULL: none. */
static struct relay_hops *hops_of(struct hxd_relay *r, const struct hx_uuid *ksid)
{
    for (size_t i = 0; i < RELAY_POLICIES; i++) {
        if (r->hops[i].used && hx_uuid_equal(&r->hops[i].ksid, ksid)) {
            return &r->hops[i];
        }
    }
    return NULL;
}

void hxd_relay_note_path(struct hxd *d, const struct hx_uuid *ksid, const struct hx_topo_path *p)
{
    struct hxd_relay *r = d->relay;
    struct relay_hops *slot;

    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    if ((slot = hops_of(r, ksid)) == NULL) {
        slot = &r->hops[r->n_hops++ % RELAY_POLICIES]; /* the oldest goes */
    }
    slot->used = true;
    slot->ksid = *ksid;
    slot->hops = p->hops;
    pthread_mutex_unlock(&r->lock);
}

bool hxd_relay_stream_hops(struct hxd *d, const struct hx_uuid *ksid, struct hx_topo_path *p)
{
    struct hxd_relay *r = d->relay;
    struct relay_hops *h;
    bool found = false;

    if (r == NULL) {
        return false;
    }
    pthread_mutex_lock(&r->lock);
    if ((h = hops_of(r, ksid)) != NULL) {
        memset(p, 0, sizeof(*p));
        p->hops = h->hops;
        found = true;
    }
    pthread_mutex_unlock(&r->lock);
    return found || hxd_relay_qkd_pinned(d, ksid, p, NULL);
}

bool hxd_relay_reaches(const struct hxd *d, const struct hx_uuid *peer, bool need_qkd,
                       const struct hx_uri *u, char *why, size_t why_len)
{
    struct hxd_relay *r = d->relay;
    struct hx_topo_path path, qpath;
    size_t no_qkd_at = SIZE_MAX;
    bool known;
    hx_err e;

    if (r == NULL) {
        snprintf(why, why_len, "the relay is off (relay.enabled)");
        return false;
    }
    pthread_mutex_lock(&r->lock);
    known = hx_topo_find(&r->topo, peer) != NULL;
    e = hxd_relay_path_locked(d, r, peer, NULL, u, false, &path);
    if (e == HX_OK && need_qkd &&
        hxd_relay_path_locked(d, r, peer, NULL, u, true, &qpath) != HX_OK) {
        /* name the first hop of the shortest path that cannot carry the QKD part */
        for (size_t i = 0; i < path.hops; i++) {
            const struct hx_topo_node *a = hx_topo_find(&r->topo, &path.node[i]);
            for (size_t k = 0; a != NULL && k < a->n_neigh; k++) {
                if (hx_uuid_equal(&a->neigh[k].node, &path.node[i + 1]) &&
                    (a->neigh[k].flags & HX_TOPO_QKD) == 0 && no_qkd_at == SIZE_MAX) {
                    no_qkd_at = i;
                }
            }
            const struct hx_topo_node *b = hx_topo_find(&r->topo, &path.node[i + 1]);
            for (size_t k = 0; b != NULL && k < b->n_neigh; k++) {
                if (hx_uuid_equal(&b->neigh[k].node, &path.node[i]) &&
                    (b->neigh[k].flags & HX_TOPO_QKD) == 0 && no_qkd_at == SIZE_MAX) {
                    no_qkd_at = i;
                }
            }
        }
        e = HX_ERR_UNSUPPORTED;
    }
    pthread_mutex_unlock(&r->lock);
    if (!known) {
        snprintf(why, why_len, "the node is not on the relay's map");
        return false;
    }
    if (e == HX_ERR_UNSUPPORTED) {
        char a[HX_UUID_STR_LEN + 1] = "?", b[HX_UUID_STR_LEN + 1] = "?";
        if (no_qkd_at != SIZE_MAX) {
            hx_uuid_format(&path.node[no_qkd_at], a);
            hx_uuid_format(&path.node[no_qkd_at + 1], b);
        }
        snprintf(why, why_len,
                 "key_sources include QKD, and no path to it has QKD on every hop (the hop %s - "
                 "%s has none): use key_sources without QKD",
                 a, b);
        return false;
    }
    if (e != HX_OK && u != NULL && u->relay_forbidden) {
        snprintf(why, why_len, "the source URI's relay=no forbids reaching it over relays");
        return false;
    }
    if (e != HX_OK && u != NULL && (u->relay_max_hops != 0 || u->n_avoid != 0)) {
        snprintf(why, why_len,
                 "the relay's map has no path to it within relay.max_hops %u and the source "
                 "URI's relay_max_hops %u, avoiding relay.avoid and the URI's relay_avoid (%zu "
                 "nodes)",
                 d->cfg.relay_max_hops, u->relay_max_hops, u->n_avoid);
        return false;
    }
    if (e != HX_OK) {
        snprintf(why, why_len,
                 "the relay's map has no path to it within relay.max_hops %u avoiding relay.avoid",
                 d->cfg.relay_max_hops);
        return false;
    }
    return true;
}
