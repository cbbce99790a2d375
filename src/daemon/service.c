/*
 * The stream service (service.h): OPEN_CONNECT, GET_KEY and CLOSE on the daemon's key streams
 * (STATUS and TTL: service_status.c). Every call takes d->lock itself and waits on d->changed
 * (monotonic) with deadlines from common/clock.h; store writes, peer messages and the KME's
 * calls happen after the lock is released.
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
#include "daemon/service.h"
#include "daemon/stream.h"

_Static_assert(HXD_SVC_MAX_IDENTITY == HXD_MAX_OWNER, "an identity is a stream's owner");
_Static_assert(HXD_SVC_MAX_URI == HX_004_MAX_URI, "a request's URI fits a stream");

/* How often a wait re-checks without a broadcast: link state changes without one too. */
#define RECHECK_MS 250

/* ---- outcomes ---- */

int hxd_svc_etsi_status(enum hxd_svc_err e)
{
    switch (e) {
    case HXD_SVC_OK:
        return HYKEX_STATUS_SUCCESS;
    case HXD_SVC_QOS:
        return HYKEX_STATUS_QOS_NOT_MET;
    case HXD_SVC_IN_USE:
        return HYKEX_STATUS_KSID_IN_USE;
    case HXD_SVC_TIMEOUT:
        return HYKEX_STATUS_TIMEOUT;
    case HXD_SVC_METADATA:
        return HYKEX_STATUS_METADATA_TOO_SMALL;
    case HXD_SVC_NO_KEY:
        return HYKEX_STATUS_INSUFFICIENT_KEY;
    case HXD_SVC_PEER_CLOSED:
        return HYKEX_STATUS_PEER_NOT_CONNECTED_GET;
    case HXD_SVC_REFUSED:
    case HXD_SVC_NOT_OPEN:
    case HXD_SVC_FAILED:
    case HXD_SVC_UPSTREAM:
        break;
    }
    return HYKEX_STATUS_NO_QKD_CONNECTION;
}

static void succeed(struct hxd_svc_result *r)
{
    r->err = HXD_SVC_OK;
    r->status = HYKEX_STATUS_SUCCESS;
    r->msg[0] = '\0';
}

__attribute__((format(printf, 3, 4))) static void fail(struct hxd_svc_result *r, enum hxd_svc_err e,
                                                       const char *fmt, ...)
{
    va_list ap;

    r->err = e;
    r->status = hxd_svc_etsi_status(e);
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
}

/* A status chosen elsewhere: the KME's answer, the peer node's, a failed batch's. */
static void fail_upstream(struct hxd_svc_result *r, int status, const char *msg)
{
    r->err = HXD_SVC_UPSTREAM;
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

/* ---- helpers (d->lock held) ---- */

/* Waits on d->changed until deadline; false when it has passed (or the daemon stops). */
static bool wait_change(struct hxd *d, int64_t deadline)
{
    if (d->stopping || hx_deadline_passed(deadline)) {
        return false;
    }
    (void)hx_cond_wait_until(&d->changed, &d->lock,
                             hx_deadline_min(deadline, hx_deadline_in_ms(RECHECK_MS)));
    return true;
}

/* A QoS timeout as a deadline: 0 is the node's default; none is longer than
 * limits.max_timeout_ms (a client's 49.7 days would hold a thread and a stream that long). */
static int64_t deadline_of(const struct hxd *d, uint32_t timeout_ms)
{
    uint32_t ms = timeout_ms != 0 ? timeout_ms : d->cfg.default_timeout_ms;

    return hx_deadline_in_ms(ms < d->cfg.max_timeout_ms ? ms : d->cfg.max_timeout_ms);
}

/* wait_change for an OPEN_CONNECT: also false once its client has hung up (*gone set). */
static bool wait_open(struct hxd *d, const struct hxd_svc_open_req *req, int64_t deadline,
                      bool *gone)
{
    if (req->gone != NULL && req->gone(req->gone_arg)) {
        *gone = true;
        return false;
    }
    return wait_change(d, deadline);
}

/*
 * A stream opened by an identified application (the Unix socket's peer uid, a TLS client's
 * certificate) serves only that identity; one opened anonymously (plain TCP, as the reference
 * clients do) serves any client allowed to reach the API.
 */
static bool owned_by_another(const struct hxd_stream *s, const char *identity)
{
    return s->owner[0] != '\0' && strcmp(s->owner, identity) != 0;
}

/*
 * The stream a GET_KEY or CLOSE names, if it is open here and this identity may use it:
 * returns it with d->lock held; else NULL (lock released) and res says why.
 */
static struct hxd_stream *open_stream(struct hxd *d, const struct hx_uuid *ksid,
                                      const char *identity, const char *not_open,
                                      struct hxd_svc_result *res)
{
    struct hxd_stream *s;

    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, ksid);
    if (s == NULL || !s->app_open) {
        pthread_mutex_unlock(&d->lock);
        fail(res, HXD_SVC_NOT_OPEN, "%s", not_open);
        return NULL;
    }
    if (owned_by_another(s, identity)) {
        pthread_mutex_unlock(&d->lock);
        fail(res, HXD_SVC_NOT_OPEN, "key stream belongs to another application");
        return NULL;
    }
    return s;
}

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
    fail(&res->r, HXD_SVC_QOS,
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
static bool check_open(const struct hxd *d, const struct hxd_svc_open_req *req, struct open_plan *p,
                       struct hxd_svc_open_res *res)
{
    struct hx_uri dst;
    char why[400], id[HX_UUID_STR_LEN + 1];

    if (hx_uri_parse(req->source, &p->src, why, sizeof(why)) != HX_OK) {
        fail(&res->r, HXD_SVC_REFUSED, "source: %s", why);
        return false;
    }
    if (hx_uri_parse(req->destination, &dst, why, sizeof(why)) != HX_OK) {
        fail(&res->r, HXD_SVC_REFUSED, "destination: %s", why);
        return false;
    }
    if (strlen(req->source) > HXD_SVC_MAX_URI || strlen(req->destination) > HXD_SVC_MAX_URI) {
        fail(&res->r, HXD_SVC_REFUSED, "URIs are limited to %d bytes", HXD_SVC_MAX_URI);
        return false;
    }
    if (!p->src.has_query) {
        fail(&res->r, HXD_SVC_REFUSED, "source: missing ?hybridization=...&key_sources=...");
        return false;
    }
    if (dst.has_query &&
        (dst.method != p->src.method || dst.n_sources != p->src.n_sources ||
         memcmp(dst.sources, p->src.sources, p->src.n_sources * sizeof(p->src.sources[0])) != 0)) {
        fail(&res->r, HXD_SVC_REFUSED,
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
        fail(&res->r, HXD_SVC_REFUSED,
             "this node (%s) must be exactly one of source and destination", id);
        return false;
    }
    if (hxd_config_peer(&d->cfg, &p->peer) == NULL) {
        hx_uuid_format(&p->peer, id);
        fail(&res->r, HXD_SVC_REFUSED, "node %s is not a trusted peer of this node", id);
        return false;
    }
    for (size_t i = 0, q = 0; i < p->src.n_sources; i++) {
        if (p->src.sources[i] == HX_SRC_QKD && (++q > 1 || d->cfg.qkd_protocol == HXD_QKD_NONE)) {
            fail(&res->r, HXD_SVC_REFUSED, "%s",
                 q > 1 ? "key_sources: QKD may appear once"
                       : "key_sources: QKD requested but this node has no QKD source "
                         "configured (qkd_address)");
            return false;
        }
    }
    if (hxd_source_batch_cap(&p->src, d->cfg.kem_key_pairs == HXD_KEY_PAIRS_PER_BATCH, 1) == 0) {
        fail(&res->r, HXD_SVC_REFUSED,
             "key_sources: the public keys of one batch exceed the peer protocol's %u MiB "
             "BATCH_REQ limit (fewer Classic McEliece sources, or kem.key_pairs = per-batch)",
             HX_PEER_MAX_KEM_FRAME >> 20);
        return false;
    }
    p->qos = req->qos;
    if (!check_qos(d, p, res)) {
        return false;
    }
    p->deadline = deadline_of(d, p->qos.timeout_ms);
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
                fail_upstream(res, status, why);
                return false;
            }
            fail_upstream(res, status, msg);
            return false;
        }
    }
    return true;
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
    struct hxd_stream *s, copy;
    bool gone = false;

    if (hx_uuid_is_nil(ksid) && hx_uuid_generate(ksid) != HX_OK) {
        pthread_mutex_unlock(&d->lock);
        fail(res, HXD_SVC_REFUSED, "random number generator failed");
        return false;
    }
    if (hxd_stream_find(d, ksid) != NULL) {
        pthread_mutex_unlock(&d->lock);
        fail(res, HXD_SVC_IN_USE, "key stream id already in use");
        return false;
    }
    if ((s = hxd_stream_new(d, ksid)) == NULL) {
        pthread_mutex_unlock(&d->lock);
        fail(res, HXD_SVC_REFUSED, "too many open key streams");
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
        hx_uuid_generate(&s->qkd_ksid) != HX_OK) {
        hxd_stream_drop(d, s);
        pthread_mutex_unlock(&d->lock);
        fail(res, HXD_SVC_REFUSED, "random number generator failed");
        return false;
    }
    copy = *s;
    /* Announce it (without the lock: the peer protocol's senders take none); wait for the peer
     * node's link if it is not up yet. */
    bool sent = false;
    for (;;) {
        hx_err e;
        pthread_mutex_unlock(&d->lock);
        e = hxd_send_open(d, &copy);
        pthread_mutex_lock(&d->lock);
        if ((sent = e == HX_OK) || !wait_open(d, req, p->deadline, &gone)) {
            break;
        }
    }
    if (!sent && !gone) {
        hx_uuid_format(&p->peer, id);
        if ((s = hxd_stream_find(d, ksid)) != NULL) {
            hxd_stream_drop(d, s);
        }
        pthread_mutex_unlock(&d->lock);
        fail_upstream(res, HYKEX_STATUS_NO_QKD_CONNECTION, "");
        snprintf(res->msg, sizeof(res->msg), "peer node %s unreachable (no link to it)", id);
        return false;
    }
    if (!sent) { /* the application hung up while the link was down */
        if ((s = hxd_stream_find(d, ksid)) != NULL) {
            hxd_stream_drop(d, s);
        }
        pthread_mutex_unlock(&d->lock);
        fail(res, HXD_SVC_FAILED, "the client went away");
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
           wait_open(d, req, p->deadline, &gone)) {
    }
    if (s != NULL && s->peer_app_open) {
        pthread_mutex_unlock(&d->lock);
        return true;
    }
    if (gone) {
        fail(res, HXD_SVC_FAILED, "the client went away");
    } else if (s != NULL && s->failing) {
        fail_upstream(res, s->fail_status, s->fail_msg);
    } else {
        fail(res, HXD_SVC_TIMEOUT, "peer application did not open the key stream in time");
    }
    if (s != NULL) {
        hxd_stream_drop(d, s);
    }
    pthread_mutex_unlock(&d->lock);
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
           wait_open(d, req, p->deadline, &gone)) {
    }
    if (s == NULL && res->msg[0] != '\0') { /* the peer node gave it up, and said why */
        pthread_mutex_unlock(&d->lock);
        char why[sizeof(res->msg)];
        snprintf(why, sizeof(why), "%s", res->msg);
        fail_upstream(res, why_status, why);
        return false;
    }
    if (s == NULL) {
        pthread_mutex_unlock(&d->lock);
        if (gone) {
            fail(res, HXD_SVC_FAILED, "the client went away");
        } else {
            fail(res, HXD_SVC_TIMEOUT, "the peer application did not open the key stream in time");
        }
        return false;
    }
    if (s->app_open) {
        pthread_mutex_unlock(&d->lock);
        fail(res, HXD_SVC_IN_USE, "key stream id already open at this node");
        return false;
    }
    if (strcmp(s->src, req->source) != 0 || strcmp(s->dst, req->destination) != 0) {
        pthread_mutex_unlock(&d->lock);
        fail(res, HXD_SVC_IN_USE, "key stream id belongs to other source and destination URIs");
        return false;
    }
    s->app_open = true;
    snprintf(s->owner, sizeof(s->owner), "%s", req->identity);
    s->qos.max_bps = p->qos.max_bps;
    s->qos.min_bps = p->qos.min_bps;
    *ksid = s->ksid;
    copy = *s;
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
        strcmp(s->dst, req->destination) == 0 && !owned_by_another(s, req->identity)) {
        s->restored = false;
        pthread_mutex_unlock(&d->lock);
        hx_uuid_format(&ksid, id);
        hx_info("key stream reopened after a restart", HX_F_STR("stream", id));
        res->ksid = ksid;
        succeed(&res->r);
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
    succeed(&res->r);
}

/* ---- GET_KEY ---- */

/* GET_KEY for a position below the watermark that is no longer here. */
static void position_gone(struct hxd_svc_result *res, uint64_t pos)
{
    fail(res, HXD_SVC_NO_KEY,
         "position %" PRIu64
         " was already delivered at this node (or given up after a link failure)",
         pos);
}

static bool beyond_buffer(const struct hxd *d, const struct hxd_stream *s, uint64_t pos)
{
    return pos >= s->produced && !hxd_stream_has(s, pos) && !hxd_stream_has_prepared(s, pos) &&
           pos >= hxd_stream_window_end(d, s);
}

/*
 * Waits until the key at pos is ready, the stream closes, the peer closed it with nothing in
 * flight, or the deadline. A failed batch is retried (after a second): wait out the timeout
 * before giving up. Lock held; returns the stream (NULL: gone) and whether it waited.
 */
static struct hxd_stream *wait_key(struct hxd *d, const struct hx_uuid *ksid, uint64_t pos,
                                   int64_t deadline, bool *waited)
{
    struct hxd_stream *s;

    *waited = false;
    while ((s = hxd_stream_find(d, ksid)) != NULL && s->app_open && !hxd_stream_has(s, pos) &&
           pos >= s->produced && /* below the watermark and not here: taken or given up */
           !(s->peer_closed && s->inflight == 0) && wait_change(d, deadline)) {
        *waited = true;
        if (s->role == HXD_INITIATOR) {
            hxd_stream_kick(d, s);
        }
    }
    return s;
}

/* No key at pos after the wait: why (lock held). */
static void no_key(const struct hxd_stream *s, uint64_t pos, struct hxd_svc_result *res)
{
    if (pos < s->produced) {
        position_gone(res, pos);
    } else if (s->peer_closed) {
        fail(res, HXD_SVC_PEER_CLOSED, "peer application closed the key stream");
    } else if (s->failing && s->fail_status != 0) {
        fail_upstream(res, s->fail_status, s->fail_msg);
    } else if (s->failing) {
        fail(res, HXD_SVC_NO_KEY, "%s", s->fail_msg);
    } else {
        fail(res, HXD_SVC_NO_KEY, "no key ready for position %" PRIu64 " within the timeout", pos);
    }
}

/*
 * Records the delivery of the key at pos durably before it leaves: never twice, also across a
 * crash. The store commits outside the lock; on failure the key goes back. Lock held on entry
 * and on a true return (*sp is the stream again); released on false (res says why).
 */
static bool record_delivery(struct hxd *d, const struct hxd_svc_get_req *req, uint64_t pos,
                            double ready_at, struct hx_secret *key, struct hxd_stream **sp,
                            struct hxd_svc_result *res)
{
    struct hxd_stream *s = *sp;
    uint64_t next_get_before = s->next_get, next_get;
    hx_err e;

    if (!req->has_index || pos >= s->next_get) {
        s->next_get = pos + 1;
    }
    if (d->store == NULL) {
        return true;
    }
    next_get = s->next_get;
    pthread_mutex_unlock(&d->lock);
    e = hx_store_deliver(d->store, &req->ksid, pos, next_get);
    pthread_mutex_lock(&d->lock);
    s = *sp = hxd_stream_find(d, &req->ksid);
    if (e == HX_OK && s != NULL) {
        return true;
    }
    if (s != NULL) {
        hxd_stream_untake(s, pos, ready_at, key);
        if (s->next_get == next_get) {
            s->next_get = next_get_before;
        }
    } else {
        hx_secret_free(key);
    }
    pthread_mutex_unlock(&d->lock);
    fail(res, HXD_SVC_FAILED, "%s",
         s == NULL ? "key stream closed" : "the node's key store failed to record the delivery");
    return false;
}

void hxd_svc_get(struct hxd *d, const struct hxd_svc_get_req *req, struct hxd_svc_get_res *res)
{
    struct hxd_stream *s;
    struct hx_secret *key;
    uint64_t pos;
    int64_t deadline;
    double ready_at = 0;
    bool waited;

    memset(res, 0, sizeof(*res));
    if ((s = open_stream(d, &req->ksid, req->identity,
                         "key stream id is not open at this node (OPEN_CONNECT first)", &res->r)) ==
        NULL) {
        return;
    }
    pos = req->has_index ? req->index : s->next_get;
    deadline = deadline_of(d, s->qos.timeout_ms);
    /* Status 8 must consume nothing: checked before anything moves. */
    if (req->metadata_too_small) {
        pthread_mutex_unlock(&d->lock);
        fail(&res->r, HXD_SVC_METADATA, "metadata buffer too small");
        return;
    }
    if (pos < s->produced && !hxd_stream_has(s, pos)) {
        pthread_mutex_unlock(&d->lock);
        position_gone(&res->r, pos);
        return;
    }
    if (beyond_buffer(d, s, pos)) {
        pthread_mutex_unlock(&d->lock);
        fail(&res->r, HXD_SVC_NO_KEY,
             "position %" PRIu64
             " is too far ahead, beyond the key buffer: limits.buffer_depth is %" PRIu32
             " keys per stream, positions below %" PRIu64 " only",
             pos, d->cfg.buffer_depth, hxd_stream_window_end(d, s));
        return;
    }
    if (pos + 1 > s->want) {
        s->want = pos + 1;
    }
    hxd_stream_kick(d, s);
    s = wait_key(d, &req->ksid, pos, deadline, &waited);
    if (s == NULL || !s->app_open) {
        pthread_mutex_unlock(&d->lock);
        fail(&res->r, HXD_SVC_NOT_OPEN, "key stream closed");
        return;
    }
    /* A client that hung up while we waited (its own timeout shorter than the QoS one) would
     * never see this key: leave it for a request that can receive it. (Only after a wait: a
     * key ready at once costs no poll.) */
    if (waited && hxd_stream_has(s, pos) && req->gone != NULL && req->gone(req->gone_arg)) {
        pthread_mutex_unlock(&d->lock);
        fail(&res->r, HXD_SVC_FAILED, "the client went away");
        return;
    }
    if ((key = hxd_stream_take(s, pos, &ready_at)) == NULL) {
        no_key(s, pos, &res->r);
        pthread_mutex_unlock(&d->lock);
        return;
    }
    if (!record_delivery(d, req, pos, ready_at, key, &s, &res->r)) {
        return;
    }
    s->delivered++;
    hxd_metrics_delivered(&d->metrics, &s->peer);
    hxd_stream_kick(d, s);
    res->age_ms = (uint64_t)((hx_monotime() - ready_at) * 1000.0);
    res->method = hx_combine_name(s->uri.method);
    for (size_t i = 0; i < s->uri.n_sources && i < HX_URI_MAX_SOURCES; i++) {
        res->sources[res->n_sources++] = hx_source_name(s->uri.sources[i]);
    }
    pthread_mutex_unlock(&d->lock);
    res->key = key;
    res->index = pos;
    succeed(&res->r);
}

/* ---- CLOSE ---- */

void hxd_svc_close(struct hxd *d, const struct hx_uuid *ksid, const char *identity,
                   struct hxd_svc_result *res)
{
    struct hxd_stream *s;
    struct hx_uuid peer, qkd;
    char id[HX_UUID_STR_LEN + 1];

    memset(res, 0, sizeof(*res));
    if ((s = open_stream(d, ksid, identity, "key stream id is not open at this node", res)) ==
        NULL) {
        return;
    }
    peer = s->peer;
    qkd = s->qkd_ksid;
    hxd_stream_drop(d, s); /* wipes the keys not handed out */
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
    hxd_persist_drop(d, ksid);
    hx_ignore(hxd_send_close(d, &peer, ksid));
    if (!hx_uuid_is_nil(&qkd)) {
        hx_ignore(hx_qkd_close(&d->qkd, &qkd));
    }
    hx_uuid_format(ksid, id);
    hx_info("key stream closed", HX_F_STR("stream", id));
    succeed(res);
}

const struct hxd_config *hxd_svc_config(const struct hxd *d)
{
    return &d->cfg;
}

void hxd_svc_shutdown(struct hxd *d)
{
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
}
