/*
 * The relay's topology protocol on a running node (daemon/relay.h, docs/relay.md): inbox,
 * verification, flooding, ageing and this node's own announcements. The map itself and the
 * path choice are daemon/topology.c; the wire format proto/peer_topo.c.
 */
#include "daemon/relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "crypto/kdf.h"
#include "daemon/hxd.h"
#include "daemon/relay_int.h"
#include "peer/certid.h"
#include "proto/peer_topo.h"

static hx_err parse_avoid(struct hxd_relay *r, const char *list, char *why, size_t why_len)
{
    const char *p = list;

    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        const char *s = p;
        size_t len = n;
        while (len > 0 && *s == ' ') {
            s++;
            len--;
        }
        while (len > 0 && s[len - 1] == ' ') {
            len--;
        }
        if (r->n_avoid >= RELAY_MAX_AVOID) {
            snprintf(why, why_len, "relay.avoid: more than %d nodes", RELAY_MAX_AVOID);
            return HX_ERR_CONFIG;
        }
        if (hx_uuid_parse(s, len, &r->avoid[r->n_avoid]) != HX_OK) {
            snprintf(why, why_len, "relay.avoid: '%.*s' is not a node UUID",
                     (int)(len > 40 ? 40 : len), s);
            return HX_ERR_CONFIG;
        }
        r->n_avoid++;
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    return HX_OK;
}

static void relay_free(struct hxd_relay *r)
{
    if (r == NULL) {
        return;
    }
    hxd_relay_qkd_stop(r);
    for (size_t i = 0; i < r->n_inbox; i++) {
        free(r->inbox[i].p);
    }
    for (size_t i = 0; i < r->n_keys; i++) {
        hx_sig_key_free(r->keys[i].key);
    }
    hx_topo_keep_wipe(&r->kept);
    hx_hold_wipe(&r->hold);
    free(r->keys);
    free(r->cert);
    hx_certid_free(r->ca);
    hx_topo_wipe(&r->topo);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

hx_err hxd_relay_start(struct hxd *d, hxd_relay_deliver_fn deliver, char *why, size_t why_len)
{
    struct hxd_relay *r;
    hx_err e;

    d->relay = NULL;
    if (!d->cfg.relay_enabled) {
        return HX_OK;
    }
    if ((r = calloc(1, sizeof(*r))) == NULL) {
        return HX_ERR_NOMEM;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->deliver = deliver;
    atomic_init(&r->links_changed, true);
    r->max_keys = d->cfg.relay_max_nodes;
    if ((e = parse_avoid(r, d->cfg.relay_avoid, why, why_len)) != HX_OK) {
        goto fail;
    }
    if ((e = hx_topo_init(&r->topo, &d->cfg.uuid, d->cfg.relay_max_nodes)) != HX_OK ||
        (r->keys = calloc(r->max_keys, sizeof(*r->keys))) == NULL ||
        hx_topo_keep_init(&r->kept, d->cfg.relay_max_nodes) != HX_OK) {
        snprintf(why, why_len, "relay: out of memory");
        e = HX_ERR_NOMEM;
        goto fail;
    }
    if ((e = hx_certid_new(d->cfg.ca_path, &r->ca, why, why_len)) != HX_OK) {
        goto fail;
    }
    if ((e = hx_certid_load_der(d->cfg.cert_path, &r->cert, &r->cert_len)) != HX_OK ||
        r->cert_len > HX_TOPO_MAX_CERT) {
        snprintf(why, why_len, "%s: cannot read this node's certificate for its announcements%s",
                 d->cfg.cert_path, r->cert_len > HX_TOPO_MAX_CERT ? " (larger than 16 KiB)" : "");
        e = HX_ERR_CONFIG;
        goto fail;
    }
    d->relay = r;
    if ((e = hxd_relay_qkd_start(d)) != HX_OK) {
        snprintf(why, why_len, "relay: cannot start the QKD worker");
        d->relay = NULL;
        goto fail;
    }
    hx_info("relay: topology protocol on",
            HX_F_U64("announce_s", d->cfg.relay_announce_s)
                HX_F_U64("max_nodes", d->cfg.relay_max_nodes) HX_F_U64("avoid", r->n_avoid));
    return HX_OK;
fail:
    relay_free(r);
    return e;
}

void hxd_relay_stop(struct hxd *d)
{
    relay_free(d->relay);
    d->relay = NULL;
}

void hxd_relay_on_frame(struct hxd *d, const struct hx_uuid *from, const uint8_t *p, size_t len)
{
    struct hxd_relay *r = d->relay;
    uint8_t *copy;

    if (r == NULL) {
        return; /* relay off: the message is not ours to read */
    }
    copy = len > 0 ? malloc(len) : NULL;
    pthread_mutex_lock(&r->lock);
    if (copy == NULL || r->n_inbox >= RELAY_INBOX || r->inbox_bytes + len > RELAY_INBOX_BYTES) {
        r->dropped++;
        free(copy);
    } else {
        memcpy(copy, p, len);
        r->inbox[r->n_inbox++] = (struct inbox_item){.from = *from, .p = copy, .len = len};
        r->inbox_bytes += len;
    }
    pthread_mutex_unlock(&r->lock);
}

void hxd_relay_link_changed(struct hxd *d)
{
    if (d->relay != NULL) {
        atomic_store(&d->relay->links_changed, true);
    }
}

/* The trusted peers now (a reload changes them under d->lock); returns how many. */
static size_t trusted_now(struct hxd *d, struct hx_uuid out[HXD_MAX_PEERS])
{
    size_t n;

    pthread_mutex_lock(&d->lock);
    n = d->cfg.trusted.n < HXD_MAX_PEERS ? d->cfg.trusted.n : HXD_MAX_PEERS;
    for (size_t i = 0; i < n; i++) {
        out[i] = d->cfg.trusted.peers[i].uuid;
    }
    pthread_mutex_unlock(&d->lock);
    return n;
}

/* Sends one frame to every neighbour whose link is up, but except (may be NULL). */
static void send_all(struct hxd *d, const struct hx_uuid *except, const struct hx_uuid *origin,
                     const uint8_t *p, size_t len)
{
    struct hx_uuid peers[HXD_MAX_PEERS];
    size_t n = trusted_now(d, peers);

    for (size_t i = 0; i < n; i++) {
        const struct hx_uuid *to = &peers[i];
        struct hx_link *l;
        if ((except != NULL && hx_uuid_equal(to, except)) || hx_uuid_equal(to, origin) ||
            (l = hx_links_get(d->links, to)) == NULL) {
            continue;
        }
        hx_ignore(hx_link_send(l, HX_PEER_TOPO_ANNOUNCE, p, len)); /* a lost link re-announces */
        hx_link_put(l);
    }
}

hx_err hxd_relay_check_cert(const struct hx_certid *ca, const struct hx_peer_topo *m,
                            struct hx_sig_key **key, int64_t *not_after, char *why, size_t why_len)
{
    struct hx_uuid named;
    hx_err e;

    if ((e = hx_certid_verify(ca, m->cert, m->cert_len, &named, key, not_after, why, why_len)) !=
        HX_OK) {
        return e;
    }
    if (!hx_uuid_equal(&named, &m->origin)) {
        snprintf(why, why_len, "the certificate names another node");
        hx_sig_key_free(*key);
        *key = NULL;
        return HX_ERR_VERIFY;
    }
    return HX_OK;
}

hx_err hxd_relay_check_sig(const struct hx_sig_key *key, const struct hx_peer_topo *m)
{
    return hx_sig_verify(key, (const uint8_t *)HX_TOPO_SIG_CTX, strlen(HX_TOPO_SIG_CTX),
                         m->signed_part, m->signed_len, m->sig, m->sig_len);
}

/* The key that verifies origin's signatures, from the certificate in its announcement: from
 * the cache when it is the same certificate and still valid, else checked against the CA. */
static const struct hx_sig_key *origin_key(struct hxd_relay *r, const struct hx_peer_topo *m,
                                           char *why, size_t why_len)
{
    struct hx_iov part = {m->cert, m->cert_len};
    struct known_key *k = NULL;
    struct hx_sig_key *key = NULL;
    uint8_t h[32];
    int64_t not_after = 0;

    if (hx_hash(HX_MD_SHA256, &part, 1, h) != HX_OK) {
        snprintf(why, why_len, "cannot hash the certificate");
        return NULL;
    }
    for (size_t i = 0; i < r->n_keys; i++) {
        if (hx_uuid_equal(&r->keys[i].node, &m->origin)) {
            k = &r->keys[i];
            break;
        }
    }
    if (k != NULL && memcmp(k->cert_hash, h, sizeof(h)) == 0 &&
        (k->not_after == 0 || hx_walltime() < k->not_after)) {
        return k->key;
    }
    if (hxd_relay_check_cert(r->ca, m, &key, &not_after, why, why_len) != HX_OK) {
        return NULL;
    }
    pthread_mutex_lock(&r->lock);
    if (k == NULL) {
        if (r->n_keys >= r->max_keys) {
            pthread_mutex_unlock(&r->lock);
            snprintf(why, why_len, "too many nodes (relay.max_nodes)");
            hx_sig_key_free(key);
            return NULL;
        }
        k = &r->keys[r->n_keys++];
    }
    hx_sig_key_free(k->key);
    k->node = m->origin;
    memcpy(k->cert_hash, h, sizeof(h));
    k->key = key;
    k->not_after = not_after;
    pthread_mutex_unlock(&r->lock);
    return key; /* only this thread replaces it */
}

/*
 * Map hand-over. Announcements flood only when they are new, so a node whose link comes up
 * after the others announced would learn them only at their next period (relay.announce_s),
 * while its own announcement reaches everyone at once: they could use it before it knew them.
 * So each node keeps every announcement on its map as it arrived (signed, byte for byte) and
 * hands them all to a neighbour whose link comes up; the neighbour checks them as any other
 * (copies it already has cost a comparison) and floods what is new to it. Main thread only.
 */

/* Hands the map to each trusted peer whose link is new since the last hand-over (a link that
 * went down and came up again has another serial). */
static void hand_over(struct hxd *d, struct hxd_relay *r)
{
    struct hx_uuid peers[HXD_MAX_PEERS];
    struct synced_link now[HXD_MAX_PEERS] = {0};
    size_t n = trusted_now(d, peers), n_now = 0;

    for (size_t i = 0; i < n; i++) {
        struct hx_link *l = hx_links_get(d->links, &peers[i]);
        uint64_t before = 0, serial;
        size_t sent = 0;
        if (l == NULL) {
            continue;
        }
        serial = hx_link_serial(l);
        for (size_t k = 0; k < r->n_synced; k++) {
            before = hx_uuid_equal(&r->synced[k].peer, &peers[i]) ? r->synced[k].serial : before;
        }
        now[n_now++] = (struct synced_link){.peer = peers[i], .serial = serial};
        for (size_t k = 0; serial != before && k < r->kept.n; k++) {
            const struct hx_topo_kept *a = &r->kept.a[k];
            if (!hx_uuid_equal(&a->origin, &peers[i])) { /* this node's own went with announce */
                sent += hx_link_send(l, HX_PEER_TOPO_ANNOUNCE, a->p, a->len) == HX_OK;
            }
        }
        hx_link_put(l);
        if (serial != before) {
            hx_debug("relay: map handed to a neighbour whose link came up",
                     HX_F_UUID("peer", &peers[i]) HX_F_U64("announcements", sent));
        }
    }
    memcpy(r->synced, now, n_now * sizeof(now[0]));
    r->n_synced = n_now;
}

/* One announcement from the inbox (main thread, no lock held). */
static void take(struct hxd *d, struct hxd_relay *r, const struct inbox_item *it)
{
    struct hx_peer_topo *m = malloc(sizeof(*m));
    const struct hx_sig_key *key;
    enum hx_topo_verdict v = HX_TOPO_STALE;
    char why[200] = "";
    bool newer;
    hx_err e;

    if (m == NULL) {
        return;
    }
    if ((e = hx_peer_decode_topo(it->p, it->len, m)) != HX_OK) {
        snprintf(why, sizeof(why), "malformed announcement: %s", hx_strerror(e));
        goto refused;
    }
    if (hx_uuid_equal(&m->origin, &d->cfg.uuid)) {
        goto out; /* this node's own, back from a flood */
    }
    pthread_mutex_lock(&r->lock);
    newer = hx_topo_is_newer(&r->topo, &m->origin, m->seq);
    pthread_mutex_unlock(&r->lock);
    if (!newer) {
        goto out; /* a copy the map already has: flooding's duplicates cost no verification */
    }
    if ((key = origin_key(r, m, why, sizeof(why))) == NULL) {
        goto refused;
    }
    if (hxd_relay_check_sig(key, m) != HX_OK) {
        snprintf(why, sizeof(why), "bad signature");
        goto refused;
    }
    pthread_mutex_lock(&r->lock);
    e = hx_topo_accept(&r->topo, m, hxd_relay_now_ms(), &v);
    if (v != HX_TOPO_STALE) {
        r->accepted++;
    }
    pthread_mutex_unlock(&r->lock);
    if (e != HX_OK) {
        snprintf(why, sizeof(why), "the map is full (relay.max_nodes)");
        goto refused;
    }
    if (v == HX_TOPO_NEW) {
        hx_info("relay: node on the map", HX_F_UUID("node", &m->origin) HX_F_UUID("via", &it->from)
                                              HX_F_U64("neighbours", m->n_neigh));
    }
    if (v != HX_TOPO_STALE) {
        /* kept for the next neighbour to come up; a failure only delays that node there */
        hx_ignore(hx_topo_keep_put(&r->kept, &m->origin, m->seq, it->p, it->len));
        send_all(d, &it->from, &m->origin, it->p, it->len); /* flood on, as received */
    }
    goto out;
refused:
    pthread_mutex_lock(&r->lock);
    r->refused++;
    pthread_mutex_unlock(&r->lock);
    hx_warn("relay: topology announcement refused",
            HX_F_UUID("from", &it->from) HX_F_UUID("origin", &m->origin) HX_F_STR("why", why));
out:
    free(m);
}

/* This node's announcement: its neighbours with an up link, signed (main thread). */
static void announce(struct hxd *d, struct hxd_relay *r)
{
    struct hx_peer_topo *m = calloc(1, sizeof(*m));
    uint8_t sig[HX_SIG_MAX_SIGNATURE];
    size_t sig_len = 0;
    uint64_t wall_ms = (uint64_t)hx_walltime() * 1000;
    enum hx_topo_verdict v;
    struct hx_writer w;
    hx_err e;

    if (m == NULL) {
        return;
    }
    hx_writer_init_dynamic(&w, HX_PEER_MAX_FRAME);
    m->origin = d->cfg.uuid;
    /* Higher wins, also after a restart: the wall clock in ms, or one more than the last. */
    r->seq = wall_ms > r->seq ? wall_ms : r->seq + 1;
    m->seq = r->seq;
    m->lifetime_s = 4 * d->cfg.relay_announce_s;
    m->node_flags = d->cfg.relay_transit ? HX_TOPO_TRANSIT : 0;
    if (m->lifetime_s > HX_TOPO_MAX_LIFETIME_S) {
        m->lifetime_s = HX_TOPO_MAX_LIFETIME_S;
    }
    struct hx_uuid peers[HXD_MAX_PEERS];
    size_t n_peers = trusted_now(d, peers);
    for (size_t i = 0; i < n_peers && m->n_neigh < HX_TOPO_MAX_NEIGH; i++) {
        struct hx_link *l = hx_links_get(d->links, &peers[i]);
        if (l == NULL) {
            continue;
        }
        hx_link_put(l);
        /* QKD behind the link: this node has a KME; the key estimate is not measured yet. */
        m->neigh[m->n_neigh++] =
            (struct hx_topo_neigh){.node = peers[i],
                                   .flags = d->cfg.qkd_protocol != HXD_QKD_NONE ? HX_TOPO_QKD : 0,
                                   .key_avail = 0};
    }
    m->cert = r->cert;
    m->cert_len = r->cert_len;
    if ((e = hx_peer_encode_topo_body(&w, m)) != HX_OK ||
        (e = hx_sig_sign(d->sig_key, (const uint8_t *)HX_TOPO_SIG_CTX, strlen(HX_TOPO_SIG_CTX),
                         w.data, w.len, sig, sizeof(sig), &sig_len)) != HX_OK ||
        (e = hx_peer_encode_topo_sig(&w, sig, sig_len)) != HX_OK) {
        hx_warn_r(e, "relay: cannot make this node's announcement", HX_NOFIELDS);
        goto out;
    }
    pthread_mutex_lock(&r->lock);
    e = hx_topo_accept(&r->topo, m, hxd_relay_now_ms(), &v);
    r->announced++;
    pthread_mutex_unlock(&r->lock);
    if (e != HX_OK) {
        hx_warn_r(e, "relay: this node is not on its own map", HX_NOFIELDS);
    }
    send_all(d, NULL, &d->cfg.uuid, w.data, w.len);
out:
    hx_writer_wipe(&w);
    free(m);
}

void hxd_relay_tick(struct hxd *d)
{
    struct hxd_relay *r = d->relay;
    struct inbox_item *batch;
    size_t n, gone;

    if (r == NULL || (batch = malloc(sizeof(r->inbox))) == NULL) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    n = r->n_inbox;
    memcpy(batch, r->inbox, n * sizeof(*batch));
    r->n_inbox = 0;
    r->inbox_bytes = 0;
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < n; i++) {
        take(d, r, &batch[i]);
        free(batch[i].p);
    }
    free(batch);
    hxd_relay_release_held(d); /* their origins may be on the map now */
    pthread_mutex_lock(&r->lock);
    gone = hx_topo_age(&r->topo, hxd_relay_now_ms());
    r->forgotten += gone;
    pthread_mutex_unlock(&r->lock);
    if (gone > 0) {
        hx_info("relay: nodes left the map (announcements expired)", HX_F_U64("nodes", gone));
        pthread_mutex_lock(&r->lock);
        hx_topo_keep_prune(&r->kept, &r->topo);
        pthread_mutex_unlock(&r->lock);
    }
    bool changed = atomic_exchange(&r->links_changed, false);
    if (changed || r->next_announce == 0 || hx_deadline_passed(r->next_announce)) {
        announce(d, r); /* first: a new neighbour gets this node's own newest one too */
        if (changed) {
            hand_over(d, r);
        }
        r->next_announce = hx_deadline_in_ms((uint64_t)d->cfg.relay_announce_s * 1000);
    }
}

hx_err hxd_relay_view(struct hxd *d, struct hxd_relay_view **out)
{
    struct hxd_relay *r = d->relay;
    struct hxd_relay_view *v;
    struct hx_topo_path *paths = NULL, *qpaths = NULL;
    bool *reach = NULL, *qreach = NULL;
    struct hx_topo_policy pol = {.max_hops = d->cfg.relay_max_hops}, qpol;
    int64_t now;

    *out = NULL;
    if (r == NULL) {
        return HX_OK;
    }
    if ((v = calloc(1, sizeof(*v))) == NULL) {
        return HX_ERR_NOMEM;
    }
    pol.avoid = r->avoid;
    pol.n_avoid = r->n_avoid;
    qpol = pol;
    qpol.need_qkd = true;
    pthread_mutex_lock(&r->lock);
    now = hxd_relay_now_ms();
    if (r->topo.n > 0 && (v->nodes = calloc(r->topo.n, sizeof(*v->nodes))) == NULL) {
        pthread_mutex_unlock(&r->lock);
        free(v);
        return HX_ERR_NOMEM;
    }
    v->n = r->topo.n;
    if (v->n > 0 && ((paths = calloc(v->n, sizeof(*paths))) == NULL ||
                     (reach = calloc(v->n, sizeof(*reach))) == NULL ||
                     (qpaths = calloc(v->n, sizeof(*qpaths))) == NULL ||
                     (qreach = calloc(v->n, sizeof(*qreach))) == NULL ||
                     hx_topo_paths(&r->topo, &pol, paths, reach) != HX_OK ||
                     hx_topo_paths(&r->topo, &qpol, qpaths, qreach) != HX_OK)) {
        pthread_mutex_unlock(&r->lock);
        free(paths);
        free(reach);
        free(qpaths);
        free(qreach);
        hxd_relay_view_free(v);
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < v->n; i++) {
        struct hxd_relay_node_view *nv = &v->nodes[i];
        nv->node = r->topo.nodes[i];
        nv->age_ms = now - nv->node.heard_ms;
        nv->expires_in_ms = nv->node.expires_ms == INT64_MAX ? -1 : nv->node.expires_ms - now;
        nv->reachable = reach[i];
        nv->path = paths[i];
        nv->qkd_reachable = qreach[i];
        nv->qkd_path = qpaths[i];
    }
    v->accepted = r->accepted;
    v->refused = r->refused;
    v->dropped = r->dropped;
    v->forgotten = r->forgotten;
    v->announced = r->announced;
    v->forwarded = r->forwarded;
    v->delivered = r->delivered;
    v->fwd_dropped = r->fwd_dropped;
    pthread_mutex_unlock(&r->lock);
    free(paths);
    free(reach);
    free(qpaths);
    free(qreach);
    *out = v;
    return HX_OK;
}

void hxd_relay_view_free(struct hxd_relay_view *v)
{
    if (v != NULL) {
        free(v->nodes);
        free(v);
    }
}
