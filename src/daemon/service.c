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
#include "common/sched.h"
#include "daemon/batch.h"
#include "daemon/hxd.h"
#include "daemon/persist.h"
#include "daemon/relay.h"
#include "daemon/service.h"
#include "daemon/service_int.h"
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

void hxd_svc_succeed(struct hxd_svc_result *r)
{
    r->err = HXD_SVC_OK;
    r->status = HYKEX_STATUS_SUCCESS;
    r->msg[0] = '\0';
}

__attribute__((format(printf, 3, 4))) void hxd_svc_fail(struct hxd_svc_result *r,
                                                        enum hxd_svc_err e, const char *fmt, ...)
{
    va_list ap;

    r->err = e;
    r->status = hxd_svc_etsi_status(e);
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
}

/* A status chosen elsewhere: the KME's answer, the peer node's, a failed batch's. */
void hxd_svc_fail_upstream(struct hxd_svc_result *r, int status, const char *msg)
{
    r->err = HXD_SVC_UPSTREAM;
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

/* ---- helpers (d->lock held) ---- */

/* Waits on d->changed until deadline; false when it has passed (or the daemon stops). */
bool hxd_svc_wait_change(struct hxd *d, int64_t deadline)
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
int64_t hxd_svc_deadline_of(const struct hxd *d, uint32_t timeout_ms)
{
    uint32_t ms = timeout_ms != 0 ? timeout_ms : d->cfg.default_timeout_ms;

    return hx_deadline_in_ms(ms < d->cfg.max_timeout_ms ? ms : d->cfg.max_timeout_ms);
}

/* wait_change for an OPEN_CONNECT: also false once its client has hung up (*gone set). */
bool hxd_svc_wait_open(struct hxd *d, const struct hxd_svc_open_req *req, int64_t deadline,
                       bool *gone)
{
    if (req->gone != NULL && req->gone(req->gone_arg)) {
        *gone = true;
        return false;
    }
    return hxd_svc_wait_change(d, deadline);
}

/*
 * A stream opened by an identified application (the Unix socket's peer uid, a TLS client's
 * certificate) serves only that identity; one opened anonymously (plain TCP, as the reference
 * clients do) serves any client allowed to reach the API.
 */
bool hxd_svc_owned_by_another(const struct hxd_stream *s, const char *identity)
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
        hxd_svc_fail(res, HXD_SVC_NOT_OPEN, "%s", not_open);
        return NULL;
    }
    if (hxd_svc_owned_by_another(s, identity)) {
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(res, HXD_SVC_NOT_OPEN, "key stream belongs to another application");
        return NULL;
    }
    return s;
}

/* ---- GET_KEY ---- */

/* GET_KEY for a position below the watermark that is no longer here. */
static void position_gone(struct hxd_svc_result *res, uint64_t pos)
{
    hxd_svc_fail(res, HXD_SVC_NO_KEY,
                 "position %" PRIu64
                 " was already delivered at this node (or given up after a link failure)",
                 pos);
}

static bool beyond_buffer(const struct hxd *d, const struct hxd_stream *s, uint64_t pos)
{
    return pos >= s->produced && !hxd_stream_has(s, pos) && !hxd_stream_has_prepared(s, pos) &&
           pos >= hxd_stream_window_end(d, s);
}

/* Waits for a change of the stream s (its keys, its end: hxd_stream_wake) until deadline;
 * false when it has passed (or the daemon stops). Lock held. */
static bool wait_stream(struct hxd *d, const struct hxd_stream *s, int64_t deadline)
{
    if (d->stopping || hx_deadline_passed(deadline)) {
        return false;
    }
    (void)hxd_stream_wait(d, s, hx_deadline_min(deadline, hx_deadline_in_ms(RECHECK_MS)));
    return true;
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
           !(s->peer_closed && s->inflight == 0) && wait_stream(d, s, deadline)) {
        *waited = true;
        if (s->role == HXD_INITIATOR) {
            hxd_stream_kick(d, s);
        }
    }
    return s;
}

/* The reserve a paced stream keeps ahead of its application: two batches, capped at the larger
 * of a quarter of the buffer and what it leaves beside the HXD_PIPELINE batches in flight
 * (which production needs whole). At a batch's arrival the reserve is down to about one
 * batch, which is what absorbs a late batch: with one batch as the target it was near 0 then,
 * and every late batch was a stall (docs/performance.md, "fourth round"). */
static uint64_t pace_target(const struct hxd *d)
{
    uint64_t depth = d->cfg.buffer_depth, n = d->cfg.batch_size;
    uint64_t room = depth > HXD_PIPELINE * n ? depth - HXD_PIPELINE * n : 0;
    uint64_t cap = depth / 4 > room ? depth / 4 : room;

    cap = cap > 0 ? cap : 1;
    return 2 * n < cap ? 2 * n : cap;
}

/*
 * The key at pos is ready: holds it until the pace lets it leave (pace.h), the stream waited
 * on with d->lock released, so that a draining application gets its keys at the production
 * rate instead of a batch at once. A batch arriving meanwhile, a close, the daemon stopping or
 * the deadline ends the wait early. Lock held; returns the stream (NULL: gone).
 */
static struct hxd_stream *pace_key(struct hxd *d, const struct hx_uuid *ksid, uint64_t pos,
                                   int64_t deadline, bool *waited)
{
    struct hxd_stream *s;
    uint64_t target = pace_target(d);

    while ((s = hxd_stream_find(d, ksid)) != NULL && s->app_open && hxd_stream_has(s, pos) &&
           !d->stopping) {
        int64_t now = hx_monotime_ns();
        int64_t at =
            hxd_pace_release_at(&s->pace, now, hxd_stream_ready_after(s, pos), target, deadline);
        if (at <= now) {
            break;
        }
        *waited = true;
        (void)hxd_stream_wait(d, s, at);
    }
    return s;
}

/* No key at pos after the wait: why (lock held). */
static void no_key(struct hxd *d, const struct hxd_stream *s, uint64_t pos,
                   struct hxd_svc_result *res)
{
    struct hx_link_info li;

    if (pos < s->produced) {
        position_gone(res, pos);
    } else if (s->peer_removed) { /* a reload removed its peer node: fail_msg says so */
        hxd_svc_fail_upstream(res, s->fail_status, s->fail_msg);
    } else if (s->peer_closed) {
        hxd_svc_fail(res, HXD_SVC_PEER_CLOSED, "peer application closed the key stream");
    } else if (s->role == HXD_INITIATOR && !s->failing &&
               !hxd_window_allows(s, pos < s->next_first ? s->next_first : pos, 1) &&
               hx_links_info(d->links, &s->peer, &li) == HX_OK && !li.up) {
        /* held at the responder's window, and that node is gone: say the latter */
        hxd_svc_fail_upstream(res, HYKEX_STATUS_NO_QKD_CONNECTION, "");
        snprintf(res->msg, sizeof(res->msg),
                 "peer node unreachable (no link to it): no key for position %" PRIu64, pos);
    } else if (s->role == HXD_INITIATOR && !s->failing &&
               !hxd_window_allows(s, pos < s->next_first ? s->next_first : pos, 1)) {
        hxd_svc_fail(res, HXD_SVC_NO_KEY,
                     "no key ready for position %" PRIu64
                     ": the peer node takes positions "
                     "below %" PRIu64
                     " only until its application takes its keys "
                     "(limits.buffer_depth)",
                     pos, s->peer_limit);
    } else if (s->failing && s->fail_status != 0) {
        hxd_svc_fail_upstream(res, s->fail_status, s->fail_msg);
    } else if (s->failing) {
        hxd_svc_fail(res, HXD_SVC_NO_KEY, "%s", s->fail_msg);
    } else {
        hxd_svc_fail(res, HXD_SVC_NO_KEY,
                     "no key ready for position %" PRIu64 " within the timeout", pos);
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
    hxd_svc_fail(
        res, HXD_SVC_FAILED, "%s",
        s == NULL ? "key stream closed" : "the node's key store failed to record the delivery");
    return false;
}

static void svc_get(struct hxd *d, const struct hxd_svc_get_req *req, struct hxd_svc_get_res *res)
{
    struct hxd_stream *s;
    struct hx_secret *key;
    struct hx_uuid peer, ksid;
    uint64_t pos;
    int64_t deadline;
    double ready_at = 0;
    bool waited;
    int hops;

    memset(res, 0, sizeof(*res));
    if ((s = open_stream(d, &req->ksid, req->identity,
                         "key stream id is not open at this node (OPEN_CONNECT first)", &res->r)) ==
        NULL) {
        return;
    }
    pos = req->has_index ? req->index : s->next_get;
    deadline = hxd_svc_deadline_of(d, s->qos.timeout_ms);
    /* Status 8 must consume nothing: checked before anything moves. */
    if (req->metadata_too_small) {
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(&res->r, HXD_SVC_METADATA, "metadata buffer too small");
        return;
    }
    if (pos < s->produced && !hxd_stream_has(s, pos)) {
        pthread_mutex_unlock(&d->lock);
        position_gone(&res->r, pos);
        return;
    }
    if (beyond_buffer(d, s, pos)) {
        uint64_t end = hxd_stream_window_end(d, s); /* read under the lock (TSan found it after) */
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(&res->r, HXD_SVC_NO_KEY,
                     "position %" PRIu64
                     " is too far ahead, beyond the key buffer: limits.buffer_depth is %" PRIu32
                     " keys per stream, positions below %" PRIu64 " only",
                     pos, d->cfg.buffer_depth, end);
        return;
    }
    if (pos + 1 > s->want) {
        s->want = pos + 1;
    }
    hxd_stream_kick(d, s);
    s = wait_key(d, &req->ksid, pos, deadline, &waited);
    if (req->pace && d->cfg.pace && s != NULL) {
        s = pace_key(d, &req->ksid, pos, deadline, &waited);
    }
    if (s == NULL || !s->app_open) {
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(&res->r, HXD_SVC_NOT_OPEN, "key stream closed");
        return;
    }
    /* A client that hung up while we waited (its own timeout shorter than the QoS one) would
     * never see this key: leave it for a request that can receive it. (Only after a wait: a
     * key ready at once costs no poll.) */
    if (waited && hxd_stream_has(s, pos) && req->gone != NULL && req->gone(req->gone_arg)) {
        pthread_mutex_unlock(&d->lock);
        hxd_svc_fail(&res->r, HXD_SVC_FAILED, "the client went away");
        return;
    }
    if ((key = hxd_stream_take(s, pos, &ready_at)) == NULL) {
        no_key(d, s, pos, &res->r);
        pthread_mutex_unlock(&d->lock);
        return;
    }
    if (!record_delivery(d, req, pos, ready_at, key, &s, &res->r)) {
        return;
    }
    s->delivered++;
    if (req->pace && d->cfg.pace) { /* no room for a batch: production waits for us */
        uint64_t reserve = hxd_stream_ready_after(s, pos);
        hxd_pace_taken(&s->pace, hx_monotime_ns(), reserve, pace_target(d),
                       reserve + d->cfg.batch_size > d->cfg.buffer_depth);
    }
    hxd_metrics_delivered(&d->metrics, &s->peer);
    hxd_stream_kick(d, s);
    hxd_window_announce(d, s, false); /* the responder's window moved */
    res->age_ms = (uint64_t)((hx_monotime() - ready_at) * 1000.0);
    res->method = hx_combine_name(s->uri.method);
    for (size_t i = 0; i < s->uri.n_sources && i < HX_URI_MAX_SOURCES; i++) {
        res->sources[res->n_sources++] = hx_source_name(s->uri.sources[i]);
    }
    peer = s->peer;
    ksid = s->ksid;
    hops = hxd_stream_hops_at(s, pos); /* the relays on the path this key's batch travelled */
    pthread_mutex_unlock(&d->lock);
    /* else (a key restored from the store): 0 unless relay.enabled and no direct link */
    res->hops = hops >= 0 ? (unsigned)hops : hxd_relay_relays(d, &peer, &ksid);
    res->key = key;
    res->index = pos;
    hxd_svc_succeed(&res->r);
}

void hxd_svc_get(struct hxd *d, const struct hxd_svc_get_req *req, struct hxd_svc_get_res *res)
{
    static _Thread_local struct hx_slice slice; /* this thread's (common/sched.h) */
    unsigned n = atomic_fetch_add_explicit(&d->getters, 1, memory_order_relaxed) + 1;

    if (n <= HXD_LATENCY_ON) {
        atomic_store_explicit(&d->latency, true, memory_order_relaxed);
    } else if (n >= HXD_LATENCY_OFF) {
        atomic_store_explicit(&d->latency, false, memory_order_relaxed);
    }
    /* few calls in progress: a short slice, so that this thread preempts crypto when it
     * wakes (hxd_latency_mode) */
    hx_sched_slice_keep(&slice, hxd_latency_mode(d) ? HX_SLICE_IO_NS : 0);
    svc_get(d, req, res);
    atomic_fetch_sub_explicit(&d->getters, 1, memory_order_relaxed);
}

/* ---- CLOSE ---- */

void hxd_svc_close(struct hxd *d, const struct hx_uuid *ksid, const char *identity,
                   struct hxd_svc_result *res)
{
    struct hxd_stream *s;
    struct hx_uuid peer;
    struct hx_qkd_ksid qkd;
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
    if (!hx_qkd_ksid_is_none(&qkd)) {
        hx_ignore(hx_qkd_close(&d->qkd, &qkd));
    }
    hx_uuid_format(ksid, id);
    hx_info("key stream closed", HX_F_STR("stream", id));
    hxd_svc_succeed(res);
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
    hxd_streams_wake_all(d);
    pthread_mutex_unlock(&d->lock);
}
