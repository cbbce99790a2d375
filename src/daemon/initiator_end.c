/*
 * The initiator's side of a batch, its end (initiator.c runs the phases): waiting for the
 * peer's reply (and making key pairs ahead meanwhile, keystash.h), recording a failure, the
 * retry list, freeing a batch's in-flight slot, and settling a prepared batch with the answer
 * of the responder. Everything here works on the stream table under d->lock, except the store
 * write of settle and the key generation of the wait, which run outside it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/batch.h"

/* Records a failed batch; false when the stream is closed or gone (nobody waits for it). */
struct hxd_inflight *hxd_inflight_of(struct hxd_stream *s, uint64_t first)
{
    for (size_t i = 0; i < HXD_PIPELINE; i++) {
        if (s->fl[i].used && s->fl[i].first == first) {
            return &s->fl[i];
        }
    }
    return NULL;
}

bool hxd_init_fail_stream(struct hxd *d, const struct hx_uuid *ksid, int status, const char *msg)
{
    struct hxd_stream *s;
    char id[HX_UUID_STR_LEN + 1];

    hx_uuid_format(ksid, id);
    pthread_mutex_lock(&d->lock);
    if (status == HYKEX_STATUS_PEER_NOT_CONNECTED_GET) {
        /* The KME says the peer application is not connected: it has closed the stream there,
         * and its node's STREAM_CLOSE is on its way over the peer link (the two applications
         * closed while this batch ran). Wait for it a moment, so that a normal close is not
         * reported as a failed batch; a peer that did not close is a failure after the wait. */
        int64_t until = hx_deadline_in_ms(HXD_PEER_CLOSE_GRACE_MS);
        while ((s = hxd_stream_find(d, ksid)) != NULL && !s->peer_closed && !d->stopping &&
               !hxd_stream_wait(d, s, until)) {
        }
    }
    if ((s = hxd_stream_find(d, ksid)) == NULL || s->peer_closed) {
        /* The stream closed under a running batch: nothing failed that anyone waits for. */
        pthread_mutex_unlock(&d->lock);
        hx_debug("batch ended by a close", HX_F_STR("stream", id) HX_F_STR("reason", msg));
        return false;
    }
    if (status == HYKEX_STATUS_INSUFFICIENT_KEY) { /* a wait for the KME, not a fault */
        hx_info("key production waits for QKD keys",
                HX_F_STR("stream", id) HX_F_STR("reason", msg));
    } else {
        hx_warn("key production failed",
                HX_F_STR("stream", id) HX_F_I64("status", status) HX_F_STR("reason", msg));
    }
    s->failing = true;
    s->fail_status = status;
    snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", msg);
    s->failed_batches++;
    d->batches_failed++;
    pthread_cond_broadcast(&d->changed);
    hxd_stream_wake(d, s);
    pthread_mutex_unlock(&d->lock);
    return true;
}

/* Waits for the peer's reply to the batch at first (lock held); NULL on timeout or close. */
struct hxd_inflight *hxd_init_wait_reply(struct hxd *d, const struct hx_uuid *ksid, uint64_t first,
                                         bool ack, uint64_t serial)
{
    int64_t deadline = hx_deadline_in_ms(HXD_WAIT_REPLY_MS);

    for (;;) {
        struct hxd_stream *s = hxd_stream_find(d, ksid);
        struct hxd_inflight *f = s != NULL ? hxd_inflight_of(s, first) : NULL;
        bool same, made;
        /* After STREAM_CLOSE an ACK may still come (the responder queues it first). */
        if (f == NULL || d->stopping || (!ack && s->peer_closed)) {
            return NULL;
        }
        if (ack ? f->ack_status >= 0 : f->resp_ready) {
            return f;
        }
        /* A link gone (even if already made again) lost the reply: fail now, not at the
         * timeout; the retry sorts out what the responder had committed. */
        same = hxd_peer_serial(d, &s->peer, &s->ksid) == serial; /* direct or the relay path */
        if (!same || hx_deadline_passed(deadline)) {
            return NULL;
        }
        /* Waiting is time for the node's next key pairs (keystash.h): one at a time, outside
         * the lock, then the reply is looked for again. With the stash full, sleep. */
        pthread_mutex_unlock(&d->lock);
        made = hxd_keystash_fill_one(d->stash);
        pthread_mutex_lock(&d->lock);
        if (made) {
            continue;
        }
        /* Woken by every reply; the 200 ms bound notices a lost link without one. */
        hx_cond_wait_until(&d->replied, &d->lock,
                           hx_deadline_min(deadline, hx_deadline_in_ms(200)));
    }
}

/* A batch ended at the initiator (lock held): frees its slot; a failed one is made again (or,
 * when its keys are prepared here, the responder is asked whether it committed them). */
/* Positions to make again, kept in order: the lowest first, which an application waits for
 * (lock held; false when the list is full). */
bool hxd_init_retry_add(struct hxd_stream *s, uint64_t first, uint32_t count)
{
    size_t i;

    if (s->n_retry == sizeof(s->retry) / sizeof(s->retry[0])) {
        return false;
    }
    for (i = s->n_retry; i > 0 && s->retry[i - 1].first > first; i--) {
        s->retry[i] = s->retry[i - 1];
    }
    s->retry[i].first = first;
    s->retry[i].count = count;
    s->n_retry++;
    return true;
}

void hxd_init_batch_done(struct hxd *d, struct hxd_stream *s, uint64_t first, uint32_t count,
                         bool ok)
{
    struct hxd_inflight *f = hxd_inflight_of(s, first);
    bool listed;

    if (f != NULL) {
        free(f->resp);
        memset(f, 0, sizeof(*f));
    }
    if (s->inflight > 0) {
        s->inflight--;
    }
    /* The retry list is a set: two attempts of the same positions at once would take each
     * other's replies (they are matched by first position). */
    listed = hxd_inflight_of(s, first) != NULL;
    for (size_t i = 0; i < s->n_retry && !listed; i++) {
        listed = s->retry[i].first == first;
    }
    if (!ok && !listed && !s->peer_closed) {
        (void)hxd_init_retry_add(s, first, count); /* full: the positions are given up */
    }
    hxd_stream_wake(d, s); /* keys, the watermark, or the last batch of a closed stream */
    hxd_stream_kick(d, s);
}

/*
 * The responder answered whether it committed a prepared batch. Committed: the keys become
 * ready here (durably first, outside the lock). Not committed: they are wiped here too, and
 * the positions made again (the responder dropped its pending state before answering).
 */
bool hxd_init_settle(struct hxd *d, const struct hx_uuid *ksid, uint64_t first, uint32_t count,
                     bool committed)
{
    struct hxd_stream *s;
    bool done = false;
    hx_err e = HX_OK;

    if (d->store != NULL) {
        e = committed ? hx_store_ready_batch(d->store, ksid, first, count)
                      : hx_store_discard_batch(d->store, ksid, first, count);
        if (e != HX_OK && e != HX_ERR_NOT_FOUND) {
            hxd_batch_store_failed(d, "store: settling a batch failed", ksid, first, e);
        }
    }
    pthread_mutex_lock(&d->lock);
    /* On a store error memory follows the store: still prepared, asked again later. */
    if ((s = hxd_stream_find(d, ksid)) != NULL && e == HX_OK) {
        if (committed) {
            hxd_batch_make_ready(s, first, count);
            d->batches_ok++;
            hxd_metrics_produced(&d->metrics, &s->peer, count);
            hxd_init_batch_done(d, s, first, count, true);
            done = true;
        } else {
            hxd_stream_discard_range(s, first, count);
        }
        pthread_cond_broadcast(&d->changed);
    }
    pthread_mutex_unlock(&d->lock);
    return done;
}
