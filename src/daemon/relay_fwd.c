/*
 * The relay's forwarding (daemon/relay.h, docs/relay.md "Forwarding"): stream and batch
 * messages between nodes without a direct link travel in RELAY_FWD over the map's path. A relay
 * only passes them on; the ends run the batch protocol unchanged, so its signatures and key
 * confirmation (daemon/batch.c) are what a relay cannot forge. Runs on the links' I/O threads
 * (on_fwd) and on the workers that send (send, serial, peer key): nothing here blocks or does
 * heavy crypto; path searches run under the relay's lock.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/hxd.h"
#include "daemon/relay_int.h"
#include "proto/peer_topo.h"

/* The current path to peer (relay lock held) under relay.* and stream ksid's own policy (may be
 * NULL); HX_ERR_NOT_FOUND when none. */
static hx_err path_to(const struct hxd *d, const struct hxd_relay *r, const struct hx_uuid *peer,
                      const struct hx_uuid *ksid, bool need_qkd, struct hx_topo_path *p)
{
    return hxd_relay_path_locked(d, r, peer, ksid, NULL, need_qkd, p);
}

/* The serial a relayed message is sent under: the first hop's link serial and the whole path,
 * so that a batch in flight fails as soon as either changes (a relay gone from the map). */
static uint64_t path_serial(uint64_t link_serial, const struct hx_topo_path *p)
{
    uint64_t h = 1469598103934665603ull ^ link_serial; /* FNV-1a */

    for (size_t i = 0; i <= p->hops; i++) {
        for (size_t k = 0; k < sizeof(p->node[i].b); k++) {
            h = (h ^ p->node[i].b[k]) * 1099511628211ull;
        }
    }
    return h | 1; /* never 0: "no link" */
}

/* The path a message of stream ksid to peer takes now: the pinned one (a relayed QKD stream;
 * at the initiator HX_ERR_NOT_FOUND when a link of it has left the map; the responder takes
 * the path the stream came along back without asking its own map, which may lag), else the
 * map's best. */
static hx_err current_path(struct hxd *d, struct hxd_relay *r, const struct hx_uuid *peer,
                           const struct hx_uuid *ksid, bool qkd_open, struct hx_topo_path *path)
{
    hx_err e;
    bool follows = false;

    if (ksid != NULL && hxd_relay_qkd_pinned(d, ksid, path, &follows)) {
        if (follows) {
            return HX_OK;
        }
        pthread_mutex_lock(&r->lock);
        e = hx_topo_path_valid(&r->topo, path, true) ? HX_OK : HX_ERR_NOT_FOUND;
        pthread_mutex_unlock(&r->lock);
        return e;
    }
    pthread_mutex_lock(&r->lock);
    e = path_to(d, r, peer, ksid, qkd_open, path);
    if (e != HX_OK && qkd_open) { /* a stream without QKD: any path */
        e = path_to(d, r, peer, ksid, false, path);
    }
    pthread_mutex_unlock(&r->lock);
    return e;
}

static bool key_known(const struct hxd_relay *r, const struct hx_uuid *node)
{
    for (size_t i = 0; i < r->n_keys; i++) {
        if (hx_uuid_equal(&r->keys[i].node, node)) {
            return true;
        }
    }
    return false;
}

/* Queues a RELAY_FWD on the link to `to`; *serial gets its serial. */
static hx_err send_fwd(struct hxd *d, const struct hx_uuid *to, const struct hx_peer_fwd *m,
                       uint64_t *serial)
{
    struct hx_link *l = hx_links_get(d->links, to);
    struct hx_writer w;
    hx_err e;

    if (l == NULL) {
        return HX_ERR_IO_CLOSED;
    }
    hx_writer_init_dynamic(&w, HX_PEER_MAX_KEM_FRAME);
    if ((e = hx_peer_encode_fwd(&w, m)) == HX_OK) {
        if (serial != NULL) {
            *serial = hx_link_serial(l);
        }
        e = hx_link_send(l, HX_PEER_RELAY_FWD, w.data, w.len);
    }
    hx_writer_wipe(&w);
    hx_link_put(l);
    return e;
}

void hxd_relay_on_fwd(struct hxd *d, const struct hx_uuid *from, const uint8_t *p, size_t len)
{
    struct hxd_relay *r = d->relay;
    struct hx_peer_fwd *m;
    bool known;
    hx_err held;

    if (r == NULL || (m = malloc(sizeof(*m))) == NULL) {
        return; /* relay off: not ours to read */
    }
    if (hx_peer_decode_fwd(p, len, m) != HX_OK || !hx_uuid_equal(&m->path[m->at - 1], from) ||
        !hx_uuid_equal(&m->path[m->at], &d->cfg.uuid) || m->len > hx_peer_frame_max(m->type)) {
        hx_warn("relay: malformed or misdirected RELAY_FWD refused", HX_F_UUID("from", from));
        goto dropped;
    }
    if (m->at + 1u < m->n && !d->cfg.relay_transit) {
        hx_warn("relay: RELAY_FWD to pass on refused (relay.transit is false)",
                HX_F_UUID("from", from));
        goto dropped;
    }
    if (m->at + 1u < m->n) { /* a relay: pass it on as it came (a QKD stream's: by the worker) */
        if (hxd_relay_qkd_take(d, m, p, len)) {
            free(m);
            return;
        }
        m->at++;
        if (send_fwd(d, &m->path[m->at], m, NULL) != HX_OK) {
            hx_debug("relay: next hop down, message dropped", HX_F_UUID("next", &m->path[m->at]));
            goto dropped;
        }
        pthread_mutex_lock(&r->lock);
        r->forwarded++;
        pthread_mutex_unlock(&r->lock);
        free(m);
        return;
    }
    /* The end: only from a node whose certificate (network CA, UUID SAN) was verified here. A
     * message whose origin is not on the map yet (its announcement is still on its way) waits
     * for it, bounded (relay_hold.h), and so does any later one of that origin, in order. */
    if (m->len < 16) {
        hx_warn("relay: malformed RELAY_FWD refused", HX_F_UUID("origin", &m->path[0]));
        goto dropped;
    }
    pthread_mutex_lock(&r->lock);
    known = key_known(r, &m->path[0]) && !hx_hold_has(&r->hold, &m->path[0]);
    held =
        known ? HX_ERR_STATE : hx_hold_put(&r->hold, from, &m->path[0], p, len, hxd_relay_now_ms());
    r->delivered += known;
    pthread_mutex_unlock(&r->lock);
    if (!known && held == HX_OK) {
        hx_debug("relay: message from a node not on the map yet held for its announcement",
                 HX_F_UUID("origin", &m->path[0]) HX_F_U64("type", m->type));
        free(m);
        return;
    }
    if (!known) {
        hx_warn("relay: message from a node not on the map refused (too many held already)",
                HX_F_UUID("origin", &m->path[0]));
        goto dropped;
    }
    hxd_relay_path_arrived(d, m); /* a BATCH_REQ's path, for the transcript */
    hxd_relay_qkd_arrived(d, m);
    r->deliver(d, &m->path[0], m->type, m->p, m->len);
    free(m);
    return;
dropped:
    pthread_mutex_lock(&r->lock);
    r->fwd_dropped++;
    pthread_mutex_unlock(&r->lock);
    free(m);
}

static bool origin_known(void *arg, const struct hx_uuid *origin)
{
    return key_known(arg, origin);
}

void hxd_relay_release_held(struct hxd *d)
{
    struct hxd_relay *r = d->relay;
    struct hx_hold_item it;
    struct hx_peer_fwd *m;
    bool got, expired;

    for (;;) {
        pthread_mutex_lock(&r->lock);
        got = hx_hold_next(&r->hold, origin_known, r, hxd_relay_now_ms(), &it, &expired);
        if (got) {
            r->delivered += !expired;
            r->fwd_dropped += expired;
        }
        pthread_mutex_unlock(&r->lock);
        if (!got) {
            return;
        }
        if (expired) {
            hx_warn("relay: message from a node that did not come on the map in time dropped",
                    HX_F_UUID("origin", &it.origin) HX_F_U64("held_ms", HX_HOLD_MS));
        } else if ((m = malloc(sizeof(*m))) != NULL) {
            /* checked when it arrived; decoded again from the held copy */
            if (hx_peer_decode_fwd(it.p, it.len, m) == HX_OK) {
                hx_debug("relay: held message delivered (its origin is on the map now)",
                         HX_F_UUID("origin", &it.origin));
                hxd_relay_path_arrived(d, m); /* a BATCH_REQ's path, for the transcript */
                hxd_relay_qkd_arrived(d, m);
                r->deliver(d, &m->path[0], m->type, m->p, m->len);
            }
            free(m);
        }
        hx_hold_item_free(&it);
    }
}

hx_err hxd_relay_send(struct hxd *d, const struct hx_uuid *peer, uint8_t type, const uint8_t *p,
                      size_t len, uint64_t *serial, struct hx_topo_path *path_out)
{
    struct hxd_relay *r = d->relay;
    struct hx_topo_path path;
    struct hx_peer_fwd *m;
    uint64_t link_serial = 0;
    bool pinned;
    hx_err e;

    if (r == NULL || !hx_peer_fwd_type_ok(type) || len < 16) {
        return HX_ERR_IO_CLOSED;
    }
    /* A trusted peer's QKD stream opens over its own link (its QKD part is that link's, never
     * relayed: a relay that saw its STREAM_OPEN would open QKD links for it). Its batches may
     * still travel over relays while the link is down: they pass unread. */
    if (type == HX_PEER_STREAM_OPEN) {
        struct hx_uuid ksid;
        struct hx_qkd_ksid qid;
        bool trusted;
        pthread_mutex_lock(&d->lock); /* a reload changes the trusted peers under it */
        trusted = hxd_config_peer(&d->cfg, peer) != NULL;
        pthread_mutex_unlock(&d->lock);
        if (trusted && hxd_relay_qkd_open_has_qkd(p, len, &ksid, &qid)) {
            return HX_ERR_IO_CLOSED;
        }
    }
    /* A stream whose QKD part is relayed keeps the path its QKD links were opened along. */
    pinned = hxd_relay_qkd_pinned(d, (const struct hx_uuid *)p, &path, NULL);
    if (current_path(d, r, peer, (const struct hx_uuid *)p,
                     type == HX_PEER_STREAM_OPEN && r->qkd != NULL, &path) != HX_OK) {
        return HX_ERR_IO_CLOSED;
    }
    if (!pinned && type == HX_PEER_STREAM_OPEN) {
        hxd_relay_qkd_pin(d, p, len, &path); /* only when the stream has QKD */
    }
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        return HX_ERR_NOMEM;
    }
    m->n = path.hops + 1;
    memcpy(m->path, path.node, m->n * sizeof(path.node[0]));
    m->at = 1;
    m->type = type;
    m->p = p;
    m->len = len;
    e = send_fwd(d, &m->path[1], m, &link_serial);
    if (serial != NULL) {
        *serial = path_serial(link_serial, &path);
    }
    if (path_out != NULL) {
        *path_out = path;
    }
    free(m);
    return e;
}

uint64_t hxd_relay_serial(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid)
{
    struct hxd_relay *r = d->relay;
    struct hx_topo_path path;
    struct hx_link *l;
    uint64_t serial = 0;

    if (r == NULL) {
        return 0;
    }
    if (current_path(d, r, peer, ksid, false, &path) == HX_OK &&
        (l = hx_links_get(d->links, &path.node[1])) != NULL) {
        serial = path_serial(hx_link_serial(l), &path);
        hx_link_put(l);
    }
    return serial;
}

hx_err hxd_relay_peer_key(struct hxd *d, const struct hx_uuid *peer, struct hx_sig_key **out)
{
    struct hxd_relay *r = d->relay;
    uint8_t pub[HX_SIG_MAX_PUBLIC];
    size_t len = 0;
    enum hx_sig_alg alg = HX_SIG_ALG_COUNT;
    hx_err e = HX_ERR_NOT_FOUND;

    *out = NULL;
    if (r == NULL) {
        return HX_ERR_NOT_FOUND;
    }
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_keys; i++) {
        if (hx_uuid_equal(&r->keys[i].node, peer)) {
            alg = hx_sig_key_alg(r->keys[i].key);
            e = alg == HX_SIG_ALG_COUNT ? HX_ERR_UNSUPPORTED
                                        : hx_sig_public(r->keys[i].key, pub, sizeof(pub), &len);
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (e != HX_OK) {
        return e;
    }
    return hx_sig_key_from_public(alg, pub, len, out);
}

unsigned hxd_relay_relays(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid)
{
    struct hxd_relay *r = d->relay;
    struct hx_topo_path path;
    struct hx_link *l;
    hx_err e;

    if (r == NULL) {
        return 0;
    }
    if ((l = hx_links_get(d->links, peer)) != NULL) {
        hx_link_put(l);
        return 0; /* direct */
    }
    if (ksid != NULL && hxd_relay_stream_hops(d, ksid, &path)) {
        return path.hops >= 1 ? (unsigned)(path.hops - 1) : 0;
    }
    pthread_mutex_lock(&r->lock);
    e = path_to(d, r, peer, ksid, false, &path);
    pthread_mutex_unlock(&r->lock);
    return e == HX_OK ? (unsigned)(path.hops - 1) : 0;
}

bool hxd_relay_qkd_ready(const struct hxd *d)
{
    return d->relay != NULL && d->relay->qkd != NULL;
}
