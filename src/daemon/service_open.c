/*
 * The stream service's OPEN_CONNECT (service.h): the source node makes the stream, announces it
 * and opens its QKD stream; the destination node joins the announcement. Both wait for the
 * other application with a deadline capped by limits.max_timeout_ms, and notice a client that
 * hung up. Helpers shared with service.c are in service_int.h.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/batch.h"
#include "daemon/hxd.h"
#include "daemon/persist.h"
#include "daemon/relay.h"
#include "daemon/service.h"
#include "daemon/service_int.h"
#include "daemon/stream.h"

/* ---- OPEN_CONNECT ---- */

/* What a checked OPEN_CONNECT asks for. */
struct open_plan {
    struct hx_uri src;
    enum hxd_role role;
    struct hx_uuid peer;
    struct hykex_qos qos;
    int64_t deadline;
};

/* QoS: what cannot be met gets a counter-proposal (status 7). */
static bool check_qos(const struct hxd *d, struct open_plan *p, struct hxd_svc_open_res *res)
{
    struct hykex_qos qos = p->qos;
    uint32_t max = d->cfg.max_key_chunk;

    if (qos.key_chunk_size != 0 && qos.key_chunk_size <= d->cfg.max_key_chunk &&
        qos.key_chunk_size <= hx_combine_max_output(p->src.method) &&
        (qos.max_bps == 0 || qos.min_bps <= qos.max_bps)) {
        return true;
    }
    if (hx_combine_max_output(p->src.method) < max) {
        max = (uint32_t)hx_combine_max_output(p->src.method);
    }
    hxd_svc_fail(&res->r, HXD_SVC_QOS,
                 qos.key_chunk_size == 0 || qos.key_chunk_size > max
                     ? "qos.key_chunk_size must be 1..%u bytes; counter-proposal in qos"
                     : "qos.min_bps is above qos.max_bps; counter-proposal in qos",
                 max);
    qos.key_chunk_size = qos.key_chunk_size == 0    ? 32
                         : qos.key_chunk_size > max ? max
                                                    : qos.key_chunk_size;
    if (qos.max_bps != 0 && qos.min_bps > qos.max_bps) {
        qos.max_bps = qos.min_bps;
    }
    res->has_qos = true;
    res->qos = qos;
    return false;
}

/* The URIs, this node's part, the peer, the sources and the QoS; false: res says why. */
static bool check_open(struct hxd *d, const struct hxd_svc_open_req *req, struct open_plan *p,
                       struct hxd_svc_open_res *res)
{
    struct hx_uri dst;
    char why[400], id[HX_UUID_STR_LEN + 1];

    if (hx_uri_parse(req->source, &p->src, why, sizeof(why)) != HX_OK) {
        hxd_svc_fail(&res->r, HXD_SVC_REFUSED, "source: %s", why);
        return false;
    }
    if (hx_uri_parse(req->destination, &dst, why, sizeof(why)) != HX_OK) {
        hxd_svc_fail(&res->r, HXD_SVC_REFUSED, "destination: %s", why);
        return false;
    }
    if (strlen(req->source) > HXD_SVC_MAX_URI || strlen(req->destination) > HXD_SVC_MAX_URI) {
        hxd_svc_fail(&res->r, HXD_SVC_REFUSED, "URIs are limited to %d bytes", HXD_SVC_MAX_URI);
        return false;
    }
    if (!p->src.has_query) {
        hxd_svc_fail(&res->r, HXD_SVC_REFUSED,
                     "source: missing ?hybridization=...&key_sources=...");
        return false;
    }
    if (dst.has_query &&
        (dst.method != p->src.method || dst.n_sources != p->src.n_sources ||
         memcmp(dst.sources, p->src.sources, p->src.n_sources * sizeof(p->src.sources[0])) != 0)) {
        hxd_svc_fail(&res->r, HXD_SVC_REFUSED,
                     "destination names another method or other key_sources than source");
        return false;
    }
    if (hx_uuid_equal(&p->src.node, &d->cfg.uuid) && !hx_uuid_equal(&dst.node, &d->cfg.uuid)) {
        p->role = HXD_INITIATOR;
        p->peer = dst.node;
    } else if (hx_uuid_equal(&dst.node, &d->cfg.uuid) &&
               !hx_uuid_equal(&p->src.node, &d->cfg.uuid)) {
        p->role = HXD_RESPONDER;
        p->peer = p->src.node;
    } else {
        hx_uuid_format(&d->cfg.uuid, id);
        hxd_svc_fail(&res->r, HXD_SVC_REFUSED,
                     "this node (%s) must be exactly one of source and destination", id);
        return false;
    }
    pthread_mutex_lock(&d->lock); /* a reload changes the trusted peers under it */
    bool trusted = hxd_config_peer(&d->cfg, &p->peer) != NULL;
    pthread_mutex_unlock(&d->lock);
    if (!trusted) {
        /* relay.enabled: any node on the map with a path (docs/relay.md); else refused */
        char rwhy[300];
        hx_uuid_format(&p->peer, id);
        if (d->relay == NULL) {
            hxd_svc_fail(&res->r, HXD_SVC_REFUSED, "node %s is not a trusted peer of this node",
                         id);
            return false;
        }
        bool qkd = false;
        for (size_t i = 0; i < p->src.n_sources; i++) {
            qkd |= p->src.sources[i] == HX_SRC_QKD;
        }
        if (qkd && (!hxd_relay_qkd_ready(d) || d->cfg.qkd_join == HXD_JOIN_SAME_URIS)) {
            hxd_svc_fail(&res->r, HXD_SVC_REFUSED,
                         "key_sources: node %s is reached over relays, and this node relays the "
                         "QKD part only with an ETSI 004 KME and qkd.join stream-id "
                         "(docs/relay.md): use key_sources without QKD",
                         id);
            return false;
        }
        if (!hxd_relay_reaches(d, &p->peer, qkd, &p->src, rwhy, sizeof(rwhy))) {
            hxd_svc_fail(&res->r, HXD_SVC_REFUSED,
                         "node %s is not a trusted peer of this node, and %s", id, rwhy);
            return false;
        }
    }
    for (size_t i = 0, q = 0; i < p->src.n_sources; i++) {
        if (p->src.sources[i] == HX_SRC_QKD && (++q > 1 || d->cfg.qkd_protocol == HXD_QKD_NONE)) {
            hxd_svc_fail(&res->r, HXD_SVC_REFUSED, "%s",
                         q > 1 ? "key_sources: QKD may appear once"
                               : "key_sources: QKD requested but this node has no QKD source "
                                 "configured (qkd_address)");
            return false;
        }
    }
    if (hx_peer_batch_cap(&p->src, d->cfg.kem_key_pairs == HXD_KEY_PAIRS_PER_BATCH, 1) == 0) {
        hxd_svc_fail(
            &res->r, HXD_SVC_REFUSED,
            "key_sources: the public keys of one batch exceed the peer protocol's %u MiB "
            "BATCH_REQ limit (fewer Classic McEliece sources, or kem.key_pairs = per-batch)",
            HX_PEER_MAX_KEM_FRAME >> 20);
        return false;
    }
    p->qos = req->qos;
    if (!check_qos(d, p, res)) {
        return false;
    }
    p->deadline = hxd_svc_deadline_of(d, p->qos.timeout_ms);
    return true;
}

/* Opens the stream's QKD stream at this node's KME, if it has a QKD source that needs one. */
/*
 * Opens this node's QKD stream. A KME may hold OPEN_CONNECT until the other end opens (ETSI
 * 004, qkd.qos.timeout): it is asked in slices of at most QKD_OPEN_SLICE_MS, and asked again
 * after a slice that ended with status 6 while the application still waits and its deadline
 * has not passed, so that an application that hung up releases its stream within a slice.
 */
#define QKD_OPEN_SLICE_MS 2000u

static bool open_qkd(struct hxd *d, const struct hxd_svc_open_req *req, const struct open_plan *p,
                     struct hxd_stream *copy, struct hxd_svc_result *res)
{
    char msg[300];
    int status = 0;

    for (size_t i = 0; i < p->src.n_sources; i++) {
        if (p->src.sources[i] != HX_SRC_QKD || hxd_qkd_is_014(d)) {
            continue;
        }
        for (;;) {
            int left = hx_deadline_poll_ms(p->deadline);
            copy->qos.timeout_ms = left < 0 || (unsigned)left > QKD_OPEN_SLICE_MS
                                       ? QKD_OPEN_SLICE_MS
                                       : (left > 0 ? (uint32_t)left : 1u);
            if (hxd_qkd_open(d, copy, &status, msg, sizeof(msg)) == HX_OK) {
                break;
            }
            if (status == HYKEX_STATUS_TIMEOUT && !hx_deadline_passed(p->deadline) &&
                (req->gone == NULL || !req->gone(req->gone_arg))) {
                continue; /* the other end has not opened yet: ask again */
            }
            if (status == HYKEX_STATUS_TIMEOUT) {
                char why[sizeof(msg) + 64];
                snprintf(why, sizeof(why),
                         "peer application did not open the key stream in time (%s)", msg);
                hxd_svc_fail_upstream(res, status, why);
                return false;
            }
            hxd_svc_fail_upstream(res, status, msg);
            return false;
        }
    }
    return true;
}

/*
 * No peer application in time: but when the link to the peer node is down, the peer node is
 * what is missing, and the application is told so (status 4), not that the other application
 * did not open (status 6: only that). No lock held.
 */
static void peer_did_not_open(struct hxd *d, const struct hx_uuid *peer, const char *msg,
                              struct hxd_svc_result *res)
{
    struct hx_link_info li;
    char id[HX_UUID_STR_LEN + 1];

    if (hx_links_info(d->links, peer, &li) == HX_OK && !li.up) {
        hx_uuid_format(peer, id);
        hxd_svc_fail_upstream(res, HYKEX_STATUS_NO_QKD_CONNECTION, "");
        snprintf(res->msg, sizeof(res->msg),
                 "peer node %s unreachable (no link to it) while waiting for its application", id);
        return;
    }
    hxd_svc_fail(res, HXD_SVC_TIMEOUT, "%s", msg);
}

/* Drops a stream that failed to open, if it is still there. */
static void drop_opening(struct hxd *d, const struct hx_uuid *ksid)
{
    struct hxd_stream *s;

    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, ksid)) != NULL) {
        hxd_stream_drop(d, s);
    }
    pthread_mutex_unlock(&d->lock);
}

/*
 * The source node: a new stream, its QKD stream, STREAM_OPEN to the peer node, then the wait
 * for the peer application's JOIN. Called with d->lock held; returns with it released.
 */
static bool open_initiator(struct hxd *d, const struct hxd_svc_open_req *req,
                           const struct open_plan *p, struct hx_uuid *ksid,
                           struct hxd_svc_result *res)
{
    char id[HX_UUID_STR_LEN + 1];
    struct hx_uuid qkd_id = {{0}};
    struct hxd_stream *s, copy;
    bool gone = false;

    if (hx_uuid_is_nil(ksid) && hx_uuid_generate(ksid) != HX_OK) {
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(res, HXD_SVC_REFUSED, "random number generator failed");
        return false;
    }
    if (hxd_stream_find(d, ksid) != NULL) {
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(res, HXD_SVC_IN_USE, "key stream id already in use");
        return false;
    }
    if ((s = hxd_stream_new(d, ksid)) == NULL) {
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(res, HXD_SVC_REFUSED, "too many open key streams");
        return false;
    }
    s->role = HXD_INITIATOR;
    s->peer = p->peer;
    snprintf(s->src, sizeof(s->src), "%s", req->source);
    snprintf(s->dst, sizeof(s->dst), "%s", req->destination);
    s->uri = p->src;
    s->qos = p->qos;
    s->app_open = true;
    s->opened_at = hx_walltime(); /* TTL: kept in the store, counts across restarts */
    snprintf(s->owner, sizeof(s->owner), "%s", req->identity);
    /* Announced first, then the QKD stream opened at both KMEs at once: a KME may hold
     * OPEN_CONNECT until the other end opens (qkd.qos.timeout). The QKD stream id travels in
     * STREAM_OPEN: chosen here (qkd.join stream-id), or none (same-uris: each KME its own). */
    if (d->cfg.qkd_join != HXD_JOIN_SAME_URIS && hxd_batch_qkd_mode(d, s) == HX_PEER_QKD_004 &&
        hx_uuid_generate(&qkd_id) != HX_OK) {
        hxd_stream_drop(d, s);
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(res, HXD_SVC_REFUSED, "random number generator failed");
        return false;
    }
    hx_qkd_ksid_from_uuid(&s->qkd_ksid, &qkd_id); /* none when not generated (nil) */
    hxd_stream_copy_fixed(&copy, s);
    /* Announce it (without the lock: the peer protocol's senders take none); wait for the peer
     * node's link if it is not up yet. */
    bool sent = false;
    pthread_mutex_unlock(&d->lock);
    hxd_relay_stream_policy(d, &copy.ksid, &copy.uri); /* its relay keys, before any send */
    pthread_mutex_lock(&d->lock);
    for (;;) {
        hx_err e;
        pthread_mutex_unlock(&d->lock);
        e = hxd_send_open(d, &copy);
        pthread_mutex_lock(&d->lock);
        if ((sent = e == HX_OK) || !hxd_svc_wait_open(d, req, p->deadline, &gone)) {
            break;
        }
    }
    if (!sent && !gone) {
        hx_uuid_format(&p->peer, id);
        if ((s = hxd_stream_find(d, ksid)) != NULL) {
            hxd_stream_drop(d, s);
        }
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail_upstream(res, HYKEX_STATUS_NO_QKD_CONNECTION, "");
        snprintf(res->msg, sizeof(res->msg), "peer node %s unreachable (no link to it)", id);
        return false;
    }
    if (!sent) { /* the application hung up while the link was down */
        if ((s = hxd_stream_find(d, ksid)) != NULL) {
            hxd_stream_drop(d, s);
        }
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(res, HXD_SVC_FAILED, "the client went away");
        return false;
    }
    pthread_mutex_unlock(&d->lock);
    if (!open_qkd(d, req, p, &copy, res)) {
        drop_opening(d, ksid);
        /* the peer node's application learns the same reason (then the close, for nodes
         * that do not know a refusal in this direction) */
        hx_ignore(hxd_send_join(d, &p->peer, ksid, (uint32_t)res->status, res->msg));
        hx_ignore(hxd_send_close(d, &p->peer, ksid));
        return false;
    }
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, ksid)) != NULL) {
        s->qkd_ksid = copy.qkd_ksid; /* this node's KME's id (same-uris: maybe its own) */
        s->qkd_open = true;
        if (s->peer_app_open) { /* joined meanwhile: the row again, with the id; produce */
            hxd_persist_stream_later(d, s);
            hxd_stream_kick(d, s);
        }
    }
    while ((s = hxd_stream_find(d, ksid)) != NULL && !s->peer_app_open && !s->failing && !gone &&
           hxd_svc_wait_open(d, req, p->deadline, &gone)) {
    }
    if (s != NULL && s->peer_app_open) {
        pthread_mutex_unlock(&d->lock);
        return true;
    }
    bool timed_out = false;
    if (gone) {
        hxd_svc_fail(res, HXD_SVC_FAILED, "the client went away");
    } else if (s != NULL && s->failing) {
        hxd_svc_fail_upstream(res, s->fail_status, s->fail_msg);
    } else {
        timed_out = true;
    }
    if (s != NULL) {
        hxd_stream_drop(d, s);
    }
    pthread_mutex_unlock(&d->lock);
    if (timed_out) { /* the link layer's lock is never taken under d->lock */
        peer_did_not_open(d, &p->peer, "peer application did not open the key stream in time", res);
    }
    hx_ignore(hxd_send_close(d, &p->peer, ksid));
    return false;
}

/* The source node's announcement of this stream: by id, or by identical URIs (lock held). */
static struct hxd_stream *find_announced(struct hxd *d, const struct hxd_svc_open_req *req,
                                         const struct open_plan *p, const struct hx_uuid *ksid)
{
    for (size_t i = 0; i < d->max_streams; i++) {
        struct hxd_stream *t = &d->streams[i];
        if (!t->used || t->role != HXD_RESPONDER || !t->announced ||
            !hx_uuid_equal(&t->peer, &p->peer)) {
            continue;
        }
        if (!hx_uuid_is_nil(ksid) ? hx_uuid_equal(&t->ksid, ksid)
                                  : (!t->app_open && strcmp(t->src, req->source) == 0 &&
                                     strcmp(t->dst, req->destination) == 0)) {
            return t;
        }
    }
    return NULL;
}

/*
 * The destination node: waits for the source node's STREAM_OPEN, joins it (QKD stream, row in
 * the store) and answers STREAM_JOIN. Called with d->lock held; returns with it released.
 */
static bool open_responder(struct hxd *d, const struct hxd_svc_open_req *req,
                           const struct open_plan *p, struct hx_uuid *ksid,
                           struct hxd_svc_result *res)
{
    struct hxd_stream *s, copy;
    struct hx_store_stream *row = NULL;
    bool gone = false;

    int why_status;
    while ((s = find_announced(d, req, p, ksid)) == NULL &&
           !hxd_refused_find(d, ksid, req->source, req->destination, &why_status, res->msg,
                             sizeof(res->msg)) &&
           hxd_svc_wait_open(d, req, p->deadline, &gone)) {
    }
    if (s == NULL && res->msg[0] != '\0') { /* the peer node gave it up, and said why */
        pthread_mutex_unlock(&d->lock);
        char why[sizeof(res->msg)];
        snprintf(why, sizeof(why), "%s", res->msg);
        hxd_svc_fail_upstream(res, why_status, why);
        return false;
    }
    if (s == NULL) {
        pthread_mutex_unlock(&d->lock);
        if (gone) {
            hxd_svc_fail(res, HXD_SVC_FAILED, "the client went away");
        } else {
            peer_did_not_open(d, &p->peer,
                              "the peer application did not open the key stream in time", res);
        }
        return false;
    }
    if (s->app_open) {
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(res, HXD_SVC_IN_USE, "key stream id already open at this node");
        return false;
    }
    if (strcmp(s->src, req->source) != 0 || strcmp(s->dst, req->destination) != 0) {
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(res, HXD_SVC_IN_USE,
                     "key stream id belongs to other source and destination URIs");
        return false;
    }
    s->app_open = true;
    snprintf(s->owner, sizeof(s->owner), "%s", req->identity);
    s->qos.max_bps = p->qos.max_bps;
    s->qos.min_bps = p->qos.min_bps;
    *ksid = s->ksid;
    hxd_stream_copy_fixed(&copy, s);
    pthread_mutex_unlock(&d->lock);
    if (!open_qkd(d, req, p, &copy, res)) {
        hx_ignore(hxd_send_join(d, &p->peer, ksid, (uint32_t)res->status, res->msg));
        drop_opening(d, ksid);
        return false;
    }
    row = malloc(sizeof(*row));
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, ksid)) != NULL) {
        s->peer_app_open = true;
        s->qkd_open = true;
        s->qkd_ksid = copy.qkd_ksid; /* this node's own KME's id for it */
        if (row != NULL) {
            hxd_persist_row(s, row);
        } else {
            hx_ignore(hxd_persist_stream(d, s)); /* no memory for a copy: write it here */
        }
    }
    pthread_mutex_unlock(&d->lock);
    /* Durable before the initiator hears of it: its batches find the row. */
    if (s != NULL && row != NULL) {
        hxd_persist_settle(d, row);
    }
    free(row);
    hx_ignore(hxd_send_join(d, &p->peer, ksid, 0, NULL));
    pthread_mutex_lock(&d->lock); /* the window follows the JOIN: known before any batch */
    hxd_window_announce(d, hxd_stream_find(d, ksid), true);
    pthread_mutex_unlock(&d->lock);
    return true;
}

void hxd_svc_open(struct hxd *d, const struct hxd_svc_open_req *req, struct hxd_svc_open_res *res)
{
    struct open_plan p;
    struct hxd_stream *s;
    struct hx_uuid ksid = req->ksid;
    char id[HX_UUID_STR_LEN + 1];
    bool ok;

    memset(res, 0, sizeof(*res));
    if (!check_open(d, req, &p, res)) {
        return;
    }
    pthread_mutex_lock(&d->lock);
    /* A stream restored from the store after a restart: its application opens it again. */
    if (!hx_uuid_is_nil(&ksid) && (s = hxd_stream_find(d, &ksid)) != NULL && s->restored &&
        s->role == p.role && strcmp(s->src, req->source) == 0 &&
        strcmp(s->dst, req->destination) == 0 && !hxd_svc_owned_by_another(s, req->identity)) {
        s->restored = false;
        pthread_mutex_unlock(&d->lock);
        hx_uuid_format(&ksid, id);
        hx_info("key stream reopened after a restart", HX_F_STR("stream", id));
        res->ksid = ksid;
        hxd_svc_succeed(&res->r);
        return;
    }
    ok = p.role == HXD_INITIATOR ? open_initiator(d, req, &p, &ksid, &res->r)
                                 : open_responder(d, req, &p, &ksid, &res->r);
    if (!ok) {
        return;
    }
    hx_uuid_format(&ksid, id);
    hx_info("key stream open", HX_F_STR("stream", id) HX_F_STR(
                                   "role", p.role == HXD_INITIATOR ? "initiator" : "responder")
                                   HX_F_STR("method", hx_combine_name(p.src.method)));
    res->ksid = ksid;
    hxd_svc_succeed(&res->r);
}
