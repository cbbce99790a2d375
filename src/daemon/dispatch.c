/*
 * Frames from a peer link, and the stream messages (docs/peer-protocol.md "Streams").
 *
 * hxd_on_frame runs on the link's I/O thread, which must never block (peer/link.h): it decodes,
 * updates the stream under d->lock and returns. Batch requests go to the responder pool,
 * replies wake the initiator waiting for them, and store writes go to the writer thread
 * (pool.c): nothing here touches the disk or does heavy crypto.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/batch.h"
#include "daemon/relay.h"
#include "proto/peer_topo.h"
#include "daemon/etsi014_peers.h"

hx_err hxd_send_open(struct hxd *d, const struct hxd_stream *s)
{
    struct hx_peer_open *m = calloc(1, sizeof(*m));
    struct hx_writer w;
    hx_err e;

    if (m == NULL) {
        return HX_ERR_NOMEM;
    }
    hx_writer_init_dynamic(&w, 8192);
    m->ksid = s->ksid;
    snprintf(m->src, sizeof(m->src), "%s", s->src);
    snprintf(m->dst, sizeof(m->dst), "%s", s->dst);
    m->chunk = s->qos.key_chunk_size;
    m->timeout_ms = s->qos.timeout_ms;
    m->ttl_s = s->qos.ttl_s;
    m->qkd_ksid = s->qkd_ksid;
    snprintf(m->sae, sizeof(m->sae), "%s", d->cfg.qkd_sae_id);
    if ((e = hx_peer_encode_open(&w, m)) == HX_OK) {
        e = hxd_send(d, &s->peer, HX_PEER_STREAM_OPEN, w.data, w.len);
    }
    hx_writer_wipe(&w);
    free(m);
    return e;
}

hx_err hxd_send_close(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid)
{
    struct hx_peer_close m = {.ksid = *ksid};
    uint8_t buf[16];
    struct hx_writer w;
    hx_err e;

    hx_writer_init_fixed(&w, buf, sizeof(buf));
    if ((e = hx_peer_encode_close(&w, &m)) != HX_OK) {
        return e;
    }
    return hxd_send(d, peer, HX_PEER_STREAM_CLOSE, buf, w.len);
}

hx_err hxd_send_join(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid,
                     uint32_t status, const char *msg)
{
    struct hx_peer_join m;
    uint8_t buf[16 + 4 + 2 + HX_PEER_MAX_MSG + 2 + HX_PEER_MAX_SAE];
    struct hx_writer w;

    memset(&m, 0, sizeof(m));
    m.ksid = *ksid;
    m.status = status;
    snprintf(m.msg, sizeof(m.msg), "%s", msg != NULL ? msg : "");
    snprintf(m.sae, sizeof(m.sae), "%s", d->cfg.qkd_sae_id);
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    if (hx_peer_encode_join(&w, &m) != HX_OK) {
        return HX_ERR_NOSPACE;
    }
    return hxd_send(d, peer, HX_PEER_STREAM_JOIN, buf, w.len);
}

/* Streams this peer announced that no application here joined yet (lock held). */
static size_t unjoined_of(const struct hxd *d, const struct hx_uuid *peer)
{
    size_t n = 0;

    for (size_t i = 0; i < d->max_streams; i++) {
        const struct hxd_stream *t = &d->streams[i];
        n += t->used && t->role == HXD_RESPONDER && t->announced && !t->app_open &&
             hx_uuid_equal(&t->peer, peer);
    }
    return n;
}

void hxd_unjoined_expire(struct hxd *d)
{
    pthread_mutex_lock(&d->lock);
    hxd_unjoined_drop(d, NULL);
    pthread_mutex_unlock(&d->lock);
}

void hxd_unjoined_drop(struct hxd *d, const struct hx_uuid *peer)
{
    for (size_t i = 0; i < d->max_streams; i++) {
        struct hxd_stream *t = &d->streams[i];
        if (!t->used || t->role != HXD_RESPONDER || !t->announced || t->app_open) {
            continue;
        }
        if (peer != NULL ? hx_uuid_equal(&t->peer, peer)
                         : t->join_by != 0 && hx_deadline_passed(t->join_by)) {
            hxd_stream_drop(d, t);
        }
    }
}

/* STREAM_OPEN: the initiator's application opened a stream whose destination is this node. */
static void on_stream_open(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p, size_t len)
{
    struct hx_peer_open *m = malloc(sizeof(*m));
    struct hx_uuid ksid = {{0}};
    struct hx_uri src_uri, dst_uri;
    char why[200];
    struct hxd_stream *s;

    if (m == NULL) {
        return;
    }
    if (hx_peer_decode_open(p, len, m) != HX_OK ||
        hx_uri_parse(m->src, &src_uri, why, sizeof(why)) != HX_OK ||
        hx_uri_parse(m->dst, &dst_uri, why, sizeof(why)) != HX_OK ||
        !hx_uuid_equal(&src_uri.node, peer) || !hx_uuid_equal(&dst_uri.node, &d->cfg.uuid) ||
        m->chunk == 0 || m->chunk > d->cfg.max_key_chunk) {
        memcpy(ksid.b, p, 16); /* hxd_on_frame passes >= 16 bytes: refuse under its id */
        hx_warn("malformed or misdirected STREAM_OPEN from a peer", HX_NOFIELDS);
        hx_ignore(hxd_send_join(d, peer, &ksid, HYKEX_STATUS_NO_QKD_CONNECTION,
                                "STREAM_OPEN refused by the responder"));
        free(m);
        return;
    }
    ksid = m->ksid;
    hxd_relay_stream_policy(d, &ksid, &src_uri); /* its relay keys, if any (relay on only) */
    pthread_mutex_lock(&d->lock);
    /* A peer's quota: what it announced and nobody joined counts against it alone, and all the
     * peers together leave a share of the table to the local applications. */
    size_t quota = d->max_streams / (d->cfg.trusted.n + 1);
    if (quota > d->cfg.max_unjoined) {
        quota = d->cfg.max_unjoined;
    }
    if (unjoined_of(d, peer) >= quota) {
        pthread_mutex_unlock(&d->lock);
        hx_warn("STREAM_OPEN refused: the peer has too many streams not joined here",
                HX_F_UUID("peer", peer) HX_F_U64("limit", quota));
        hx_ignore(hxd_send_join(d, peer, &ksid, HYKEX_STATUS_NO_QKD_CONNECTION,
                                "too many key streams announced and not joined at the responder "
                                "(limits.max_unjoined_per_peer)"));
        free(m);
        return;
    }
    if ((s = hxd_stream_find(d, &ksid)) != NULL || (s = hxd_stream_new(d, &ksid)) == NULL) {
        pthread_mutex_unlock(&d->lock);
        hx_ignore(hxd_send_join(d, peer, &ksid, HYKEX_STATUS_KSID_IN_USE,
                                "key stream id in use at the responder, or too many streams"));
        free(m);
        return;
    }
    s->role = HXD_RESPONDER;
    s->peer = *peer;
    memcpy(s->src, m->src, sizeof(s->src));
    memcpy(s->dst, m->dst, sizeof(s->dst));
    s->uri = src_uri;
    s->qos.key_chunk_size = m->chunk;
    s->qos.timeout_ms = m->timeout_ms;
    s->qos.ttl_s = m->ttl_s;
    s->qkd_ksid = m->qkd_ksid;
    memcpy(s->peer_sae, m->sae, sizeof(s->peer_sae));
    s->opened_at = hx_walltime(); /* the TTL counts from it, across restarts */
    s->announced = true;
    s->join_by = hx_deadline_in_ms(d->cfg.max_timeout_ms);
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
    free(m);
}

/*
 * STREAM_JOIN with a status at the responder (lock held): the initiator gave the stream up
 * (its KME refused). The reason waits for this node's application, which gets it instead of
 * "did not open in time"; a stream nobody here opened yet goes.
 */
static void on_refused(struct hxd *d, struct hxd_stream *s, const struct hx_peer_join *m)
{
    struct hxd_refused *r = &d->refused[d->refused_next++ % HXD_REFUSED_KEEP];
    int st = m->status <= HYKEX_STATUS_METADATA_TOO_SMALL ? (int)m->status
                                                          : HYKEX_STATUS_NO_QKD_CONNECTION;

    r->ksid = s->ksid;
    memcpy(r->src, s->src, sizeof(r->src));
    memcpy(r->dst, s->dst, sizeof(r->dst));
    r->status = st;
    snprintf(r->msg, sizeof(r->msg), "peer node: %.180s",
             m->msg[0] != '\0' ? m->msg : "gave the stream up");
    r->until = hx_deadline_in_ms(HXD_REFUSED_S * 1000);
    hx_warn("peer node gave a stream up",
            HX_F_UUID("stream", &s->ksid) HX_F_I64("status", st) HX_F_STR("reason", r->msg));
    if (!s->app_open) {
        hxd_persist_drop_later(d, &s->ksid);
        hxd_stream_drop(d, s);
        return;
    }
    s->failing = true;
    s->fail_status = st;
    snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", r->msg);
}

bool hxd_refused_find(struct hxd *d, const struct hx_uuid *ksid, const char *src, const char *dst,
                      int *status, char *msg, size_t msg_len)
{
    for (size_t i = 0; i < HXD_REFUSED_KEEP; i++) {
        struct hxd_refused *r = &d->refused[i];
        if (r->until == 0 || hx_deadline_passed(r->until)) {
            continue;
        }
        if (!hx_uuid_is_nil(ksid) ? hx_uuid_equal(&r->ksid, ksid)
                                  : strcmp(r->src, src) == 0 && strcmp(r->dst, dst) == 0) {
            *status = r->status;
            snprintf(msg, msg_len, "%s", r->msg);
            r->until = 0; /* told once */
            return true;
        }
    }
    return false;
}

/* STREAM_JOIN at the initiator, or a refusal at the responder (lock held). */
static void on_join(struct hxd *d, struct hxd_stream *s, const uint8_t *p, size_t len)
{
    struct hx_peer_join *m = malloc(sizeof(*m));

    if (m == NULL || hx_peer_decode_join(p, len, m) != HX_OK) {
        free(m);
        return;
    }
    if (s->role != HXD_INITIATOR) {
        if (m->status != HYKEX_STATUS_SUCCESS && !s->peer_app_open) {
            on_refused(d, s, m);
        }
        free(m);
        return;
    }
    memcpy(s->peer_sae, m->sae, sizeof(s->peer_sae));
    if (m->status == HYKEX_STATUS_SUCCESS) {
        /* Established at both nodes: from now on it survives restarts. The row is written
         * by the writer thread, which then lets the stream produce (its batches find it). */
        hxd_persist_joined_later(d, s);
    } else {
        s->failing = true;
        s->fail_status = m->status <= HYKEX_STATUS_METADATA_TOO_SMALL
                             ? (int)m->status
                             : HYKEX_STATUS_NO_QKD_CONNECTION;
        /* the peer's message, cut to what fail_msg holds */
        snprintf(s->fail_msg, sizeof(s->fail_msg), "peer node: %.180s",
                 m->msg[0] != '\0' ? m->msg : "refused the stream");
    }
    free(m);
}

/* BATCH_RESP / BATCH_ACK at the initiator (lock held): the reply for the waiting worker. */
static void on_reply(struct hxd_stream *s, uint8_t type, const uint8_t *p, size_t len)
{
    struct hx_peer_head h;
    struct hx_peer_ack a;
    struct hxd_inflight *f;

    if (s->role != HXD_INITIATOR) {
        return;
    }
    if (type == HX_PEER_BATCH_RESP) {
        /* The head only: the worker decodes the body, knowing the stream's sources. */
        if (hx_peer_decode_head(type, p, len, &h) != HX_OK ||
            (f = hxd_inflight_of(s, h.first)) == NULL) {
            return;
        }
        free(f->resp);
        if ((f->resp = malloc(len)) != NULL) {
            memcpy(f->resp, p, len);
            f->resp_len = len;
            f->resp_ready = true;
        }
        return;
    }
    if (hx_peer_decode_ack(p, len, &a) != HX_OK || (f = hxd_inflight_of(s, a.first)) == NULL) {
        return;
    }
    /* Only after this attempt's FIN or QUERY: an ACK left over from an earlier attempt of the
     * same positions (an abort's) must not answer this one. */
    if (f->want_ack) {
        f->ack_status = a.status > 0x7fffffffu ? HX_PEER_ACK_NOT_COMMITTED : (int)a.status;
    }
}

void hxd_on_frame(void *arg, struct hx_link *l, uint8_t type, const uint8_t *p, size_t len)
{
    struct hxd *d = arg;
    const struct hx_uuid *peer = hx_link_peer(l);

    if (type == HX_PEER_TOPO_ANNOUNCE) { /* the relay's (dropped while it is off) */
        hxd_relay_on_frame(d, peer, p, len);
    } else if (type == HX_PEER_RELAY_FWD) {
        hxd_relay_on_fwd(d, peer, p, len);
    } else if (type == HX_PEER_RELAY_REPATH) {
        /* only ever inside a RELAY_FWD (hxd_on_peer_frame): a bare one is dropped */
    } else if (type == HX_PEER_BATCH_AUTH) {
        /* on its direct link only: one inside a RELAY_FWD is dropped (batch_auth.c) */
        hxd_auth_on_frame(d, peer, hx_link_serial(l), p, len);
    } else {
        hxd_on_peer_frame(d, peer, type, p, len);
    }
}

void hxd_on_peer_frame(struct hxd *d, const struct hx_uuid *peer, uint8_t type, const uint8_t *p,
                       size_t len)
{
    struct hx_uuid ksid;
    struct hxd_stream *s;

    if (type == HX_PEER_SAE_LIST) { /* ETSI 014: not about a stream */
        hxd_014_on_sae_list(d, peer, p, len);
        return;
    }
    if (len < 16) {
        return;
    }
    memcpy(ksid.b, p, 16); /* every stream and batch message starts with the stream id */
    switch (type) {
    case HX_PEER_STREAM_OPEN:
        on_stream_open(d, peer, p, len);
        return;
    case HX_PEER_RELAY_REPATH: /* over relays only (hxd_on_frame drops a bare one) */
        hxd_repath_on_msg(d, peer, p, len);
        return;
    case HX_PEER_BATCH_REQ:
    case HX_PEER_BATCH_FIN:
    case HX_PEER_BATCH_QUERY:
        pthread_mutex_lock(&d->lock);
        /* the job's ksid field holds the peer */
        (void)hxd_pool_enqueue(&d->responders, peer, type, p, len);
        pthread_mutex_unlock(&d->lock);
        return;
    default:
        break;
    }
    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, &ksid);
    if (s != NULL && hx_uuid_equal(&s->peer, peer)) {
        struct hx_peer_close c;
        if (type == HX_PEER_STREAM_JOIN) {
            on_join(d, s, p, len);
        } else if (type == HX_PEER_STREAM_CLOSE && hx_peer_decode_close(p, len, &c) == HX_OK) {
            s->peer_closed = true;
            if (!s->app_open) {
                hxd_persist_drop_later(d, &s->ksid);
                hxd_stream_drop(d, s);
            } else {
                hxd_persist_stream_later(d, s);
            }
        } else if (type == HX_PEER_BATCH_RESP || type == HX_PEER_BATCH_ACK) {
            on_reply(s, type, p, len);
        } else if (type == HX_PEER_STREAM_WINDOW) {
            hxd_window_on_update(d, s, p, len);
        } else if (type == HX_PEER_QKD_REOPEN) {
            struct hx_peer_qkd_reopen m;
            if (hx_peer_decode_qkd_reopen(p, len, &m) == HX_OK) {
                hxd_qkd_on_peer_reopen(d, s);
            }
        }
        if (s->used && (type == HX_PEER_STREAM_JOIN || type == HX_PEER_STREAM_CLOSE)) {
            hxd_stream_wake(d, s); /* failing or peer_closed (a drop woke its own) */
        }
    }
    pthread_cond_broadcast(&d->changed);
    pthread_cond_broadcast(&d->replied);
    pthread_mutex_unlock(&d->lock);
}

void hxd_on_link(void *arg, struct hx_link *l, bool up)
{
    struct hxd *d = arg;

    hxd_relay_link_changed(d);
    pthread_mutex_lock(&d->lock);
    if (!up) { /* its announcements go with it: the initiator's OPEN_CONNECT fails anyway */
        hxd_unjoined_drop(d, hx_link_peer(l));
    } else { /* an update lost with the old link must not hold the peer's streams back */
        hxd_window_announce_peer(d, hx_link_peer(l));
    }
    pthread_cond_broadcast(&d->changed);
    pthread_cond_broadcast(&d->replied); /* waiting initiators notice a lost link at once */
    pthread_mutex_unlock(&d->lock);
}
