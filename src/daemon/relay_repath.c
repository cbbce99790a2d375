/*
 * Rerouting a stream whose QKD part is relayed (docs/relay.md "Rerouting a stream with QKD").
 * Such a stream's path is pinned when it opens, because every link of it has a QKD stream of its
 * own. When a link of that path leaves the relay's map (a relay died), the initiator moves the
 * stream to the map's current path with QKD on every hop:
 *
 *   1. the stream makes no batch (qkd_open false) and its GET_KEY answers status 2 with a
 *      message naming the hop that left the map, or why no other path exists;
 *   2. the initiator pins the new path, sends RELAY_REPATH (kind 0) along it with a fresh QKD
 *      stream id for its first link, and opens that link at its KME. Each relay passes it on
 *      with a fresh id for its outgoing link and opens both links, as for a STREAM_OPEN
 *      (relay_qkd.c);
 *   3. the responder opens its new incoming link at its KME, switches the stream to it, and
 *      answers (kind 1, or kind 2 with the reason), back over relays;
 *   4. the initiator switches to its new link and the stream goes on. The batches that failed
 *      on the old path are made again under the same positions (the batch retry), so keys
 *      already delivered stay as they are and no position is served twice or unequal.
 *
 * An attempt that fails (no path yet, a KME that does not open, no answer within
 * REPATH_WAIT_MS) is tried again a second later. Runs on an initiator worker, one attempt per
 * stream at a time; the tick and the message handler only mark and queue (d->lock), and no
 * relay function is called with d->lock held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/batch.h"
#include "daemon/relay.h"
#include "proto/peer_topo.h"

#define REPATH_TICK_MAX 64   /* streams checked per tick (the rest at the next ones) */
#define REPATH_RETRY_MS 1000 /* after a failed attempt */
#define REPATH_NO_PATH_MS                                                                       \
    250                      /* after one that found no path (nothing sent: cheap to ask again) \
                              */
#define REPATH_OPEN_MS 5000u /* each KME OPEN_CONNECT of a new link waits this long */
#define REPATH_WAIT_MS 10000 /* for the responder's answer */
#define WAITING "rerouting the relayed QKD part: "

/* Has the stream a batch in flight (lock held)? */
static bool in_flight(const struct hxd_stream *s)
{
    for (size_t i = 0; i < HXD_PIPELINE; i++) {
        if (s->fl[i].used) {
            return true;
        }
    }
    return false;
}

static void queue_attempt(struct hxd *d, struct hxd_stream *s)
{
    if (!s->repath_queued && !d->stopping &&
        hxd_pool_enqueue(&d->initiators, &s->ksid, HX_PEER_RELAY_REPATH, NULL, 0)) {
        s->repath_queued = true;
    }
}

/* The application's view while the stream has no QKD path (lock held): status 2, and why. */
static void set_waiting(struct hxd *d, struct hxd_stream *s, const char *why)
{
    s->failing = true;
    s->fail_status = HYKEX_STATUS_INSUFFICIENT_KEY;
    snprintf(s->fail_msg, sizeof(s->fail_msg), WAITING "%.160s", why);
    hxd_stream_wake(d, s);
    pthread_cond_broadcast(&d->changed);
}

void hxd_repath_tick(struct hxd *d)
{
    struct hx_uuid ids[REPATH_TICK_MAX];
    size_t n = 0;
    char why[200];

    if (!hxd_relay_qkd_ready(d)) {
        return;
    }
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->max_streams; i++) {
        struct hxd_stream *s = &d->streams[i];
        if (!s->used || s->role != HXD_INITIATOR || s->peer_closed ||
            hxd_batch_qkd_mode(d, s) != HX_PEER_QKD_004) {
            continue;
        }
        if (s->repath_pending) {
            if (!s->repath_queued && hx_deadline_passed(s->repath_at)) {
                queue_attempt(d, s);
            }
        } else if (s->qkd_open && !s->qkd_lost && n < REPATH_TICK_MAX) {
            ids[n++] = s->ksid;
        }
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < n; i++) {
        struct hxd_stream *s;
        if (hxd_relay_qkd_path_ok(d, &ids[i], why, sizeof(why))) {
            continue;
        }
        pthread_mutex_lock(&d->lock);
        if ((s = hxd_stream_find(d, &ids[i])) != NULL && !s->repath_pending && s->qkd_open) {
            hx_warn("QKD path of a relayed stream broken: rerouting",
                    HX_F_UUID("stream", &s->ksid) HX_F_STR("reason", why));
            s->repath_pending = true;
            s->qkd_open = false; /* no batch until the new path's QKD links are open */
            s->repath_at = 0;
            set_waiting(d, s, why);
            queue_attempt(d, s);
        }
        pthread_mutex_unlock(&d->lock);
    }
}

/* An attempt failed: again after ms; the application sees why. */
static void retry_later(struct hxd *d, const struct hx_uuid *ksid, const char *why, uint64_t ms)
{
    struct hxd_stream *s;

    hx_info("rerouting a relayed stream's QKD part: not yet",
            HX_F_UUID("stream", ksid) HX_F_STR("reason", why));
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, ksid)) != NULL) {
        s->repath_queued = false;
        s->repath_at = hx_deadline_in_ms(ms);
        set_waiting(d, s, why);
    }
    pthread_mutex_unlock(&d->lock);
}

static bool send_repath(struct hxd *d, const struct hx_uuid *peer, const struct hx_peer_repath *m)
{
    uint8_t buf[16 + 4 + 1 + 16 + 2 + HX_REPATH_MAX_MSG];
    struct hx_writer w;

    hx_writer_init_fixed(&w, buf, sizeof(buf));
    return hx_peer_encode_repath(&w, m) == HX_OK &&
           hxd_send(d, peer, HX_PEER_RELAY_REPATH, buf, w.len) == HX_OK;
}

/* The initiator's attempt (no lock held). */
static void attempt(struct hxd *d, const struct hx_uuid *ksid)
{
    struct hx_peer_repath m = {.ksid = *ksid, .kind = HX_REPATH_OPEN};
    struct hxd_stream *s, *copy = malloc(sizeof(*copy));
    struct hx_topo_path path;
    struct hx_qkd_ksid old_id;
    struct hx_uuid peer;
    char why[200] = "", msg[300] = "";
    uint32_t kme_status;
    int status;
    int64_t deadline;

    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, ksid)) == NULL || !s->repath_pending || s->peer_closed ||
        d->stopping || copy == NULL) {
        if (s != NULL) {
            s->repath_queued = false;
            s->repath_at = hx_deadline_in_ms(REPATH_RETRY_MS);
        }
        pthread_mutex_unlock(&d->lock);
        free(copy);
        return;
    }
    /* The batches still in flight took their QKD keys from the old first link: they end (their
     * path is gone) before the new one is pinned, so that none of them goes along it. */
    deadline = hx_deadline_in_ms(REPATH_WAIT_MS);
    while (in_flight(s) && !d->stopping && !hx_deadline_passed(deadline)) {
        hx_cond_wait_until(&d->changed, &d->lock, hx_deadline_min(deadline, hx_deadline_in_ms(50)));
        if ((s = hxd_stream_find(d, ksid)) == NULL) {
            pthread_mutex_unlock(&d->lock);
            free(copy);
            return;
        }
    }
    if (in_flight(s)) {
        pthread_mutex_unlock(&d->lock);
        retry_later(d, ksid, "batches of the old path still in flight", REPATH_NO_PATH_MS);
        free(copy);
        return;
    }
    s->repath_epoch = s->repath_epoch == UINT32_MAX ? 1 : s->repath_epoch + 1;
    s->repath_answer = 0;
    m.epoch = s->repath_epoch;
    hxd_stream_copy_fixed(copy, s); /* only its ids, URIs and QoS are read */
    peer = s->peer;
    old_id = s->qkd_ksid;
    pthread_mutex_unlock(&d->lock);

    if (!hxd_relay_qkd_path_for(d, &peer, &copy->uri, &path, why, sizeof(why))) {
        char lost[200];
        if (!hxd_relay_qkd_path_ok(d, ksid, lost, sizeof(lost))) { /* name the hop that went */
            snprintf(msg, sizeof(msg), "%s, and no other path has QKD on every hop", lost);
        } else {
            snprintf(msg, sizeof(msg), "no other path: %s", why);
        }
        retry_later(d, ksid, msg, REPATH_NO_PATH_MS); /* the map may be converging */
        free(copy);
        return;
    }
    if (hx_uuid_generate(&m.qkd_link) != HX_OK || !hxd_relay_qkd_repin(d, ksid, &path)) {
        snprintf(msg, sizeof(msg), "the stream's relayed QKD state is gone at this node");
        goto later;
    }
    if (!send_repath(d, &peer, &m)) {
        snprintf(msg, sizeof(msg), "the new path's first hop is down");
        goto later;
    }
    hx_qkd_ksid_from_uuid(&copy->qkd_ksid, &m.qkd_link);
    copy->qos.timeout_ms = REPATH_OPEN_MS;
    if (hxd_qkd_open_ex(d, copy, true, &kme_status, &status, why, sizeof(why)) != HX_OK) {
        snprintf(msg, sizeof(msg), "this node's KME did not open the new first link: %s", why);
        goto later;
    }
    pthread_mutex_lock(&d->lock);
    deadline = hx_deadline_in_ms(REPATH_WAIT_MS);
    while ((s = hxd_stream_find(d, ksid)) != NULL && s->repath_answer != m.epoch && !d->stopping &&
           !s->peer_closed && !hx_deadline_passed(deadline)) {
        hx_cond_wait_until(&d->changed, &d->lock, deadline);
    }
    if (s == NULL || s->repath_answer != m.epoch || s->repath_kind != HX_REPATH_DONE) {
        if (s != NULL && s->repath_answer == m.epoch) { /* refused: the message is set */
            const char *f = s->fail_msg;
            f += strncmp(f, WAITING, strlen(WAITING)) == 0 ? strlen(WAITING) : 0;
            snprintf(msg, sizeof(msg), "%s", f);
        } else {
            snprintf(msg, sizeof(msg), "the peer node did not answer the new path in time");
        }
        pthread_mutex_unlock(&d->lock);
        if (s == NULL) {
            free(copy);
            return;
        }
        hx_ignore(hx_qkd_close(&d->qkd, &copy->qkd_ksid));
        goto later;
    }
    s->qkd_ksid = copy->qkd_ksid;
    s->qkd_open = true;
    s->repath_pending = false;
    s->repath_queued = false;
    s->failing = false;
    s->retry_at = 0;
    s->reroutes++;
    hxd_persist_stream_later(d, s);
    hxd_stream_kick(d, s);
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
    hx_ignore(hx_qkd_close(&d->qkd, &old_id)); /* the old path's first link */
    hx_info("relayed stream rerouted: its QKD part takes a new path",
            HX_F_UUID("stream", ksid) HX_F_U64("relays", path.hops - 1)
                HX_F_UUID("first_relay", &path.node[1]));
    free(copy);
    return;
later:
    retry_later(d, ksid, msg, REPATH_RETRY_MS);
    free(copy);
}

/* The responder's answer to a RELAY_REPATH (no lock held). */
static void answer(struct hxd *d, const struct hx_uuid *ksid)
{
    struct hx_peer_repath m = {.ksid = *ksid, .kind = HX_REPATH_DONE};
    struct hxd_stream *s, *copy = malloc(sizeof(*copy));
    struct hx_qkd_ksid old_id;
    struct hx_uuid peer;
    char why[300] = "";
    uint32_t kme_status;
    int status;
    bool ok;

    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, ksid)) == NULL || copy == NULL) {
        if (s != NULL) {
            s->repath_queued = false;
        }
        pthread_mutex_unlock(&d->lock);
        free(copy);
        return;
    }
    m.epoch = s->repath_epoch;
    hxd_stream_copy_fixed(copy, s);
    hx_qkd_ksid_from_uuid(&copy->qkd_ksid, &s->repath_link);
    old_id = s->qkd_ksid;
    peer = s->peer;
    pthread_mutex_unlock(&d->lock);

    copy->qos.timeout_ms = REPATH_OPEN_MS;
    ok = hxd_qkd_open_ex(d, copy, true, &kme_status, &status, why, sizeof(why)) == HX_OK;
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, ksid)) != NULL) {
        s->repath_queued = false;
        if (ok && s->repath_epoch == m.epoch) {
            s->qkd_ksid = copy->qkd_ksid; /* batches from now on: the new incoming link */
            s->reroutes++;
            hxd_persist_stream_later(d, s);
        } else if (s->repath_epoch != m.epoch) {
            queue_attempt(d, s); /* a newer request came meanwhile: answer it too */
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (!ok) {
        m.kind = HX_REPATH_REFUSED;
        snprintf(m.msg, sizeof(m.msg), "the responder's KME did not open the new link: %.140s",
                 why);
    }
    if (!send_repath(d, &peer, &m)) {
        hx_info("relay: answer to a new path not sent (no path back)", HX_F_UUID("stream", ksid));
    }
    if (ok && !hx_qkd_ksid_equal(&old_id, &copy->qkd_ksid)) {
        hx_ignore(hx_qkd_close(&d->qkd, &old_id)); /* the old path's last link */
    }
    hx_info(ok ? "relayed stream moved to a new path" : "relayed stream's new path refused",
            HX_F_UUID("stream", ksid) HX_F_STR("reason", ok ? "" : why));
    free(copy);
}

void hxd_repath_run(struct hxd *d, const struct hx_uuid *ksid)
{
    struct hxd_stream *s;
    bool initiator;

    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, ksid);
    initiator = s != NULL && s->role == HXD_INITIATOR;
    pthread_mutex_unlock(&d->lock);
    if (s != NULL) {
        initiator ? attempt(d, ksid) : answer(d, ksid);
    }
}

void hxd_repath_on_msg(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p, size_t len)
{
    struct hx_peer_repath m;
    struct hxd_stream *s;

    if (hx_peer_decode_repath(p, len, &m) != HX_OK) {
        hx_warn("malformed RELAY_REPATH refused", HX_F_UUID("from", peer));
        return;
    }
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &m.ksid)) == NULL || !hx_uuid_equal(&s->peer, peer) ||
        s->peer_closed) {
        pthread_mutex_unlock(&d->lock);
        return;
    }
    if (m.kind == HX_REPATH_OPEN && s->role == HXD_RESPONDER &&
        hxd_batch_qkd_mode(d, s) == HX_PEER_QKD_004) {
        s->repath_epoch = m.epoch;
        s->repath_link = m.qkd_link;
        queue_attempt(d, s); /* one at a time: a newer request is read when it runs */
    } else if (m.kind != HX_REPATH_OPEN && s->role == HXD_INITIATOR && s->repath_pending &&
               m.epoch == s->repath_epoch) {
        s->repath_kind = m.kind;
        s->repath_answer = m.epoch;
        if (m.kind == HX_REPATH_REFUSED) {
            set_waiting(d, s, m.msg[0] != '\0' ? m.msg : "the peer node refused the new path");
        }
        pthread_cond_broadcast(&d->changed);
    }
    pthread_mutex_unlock(&d->lock);
}
