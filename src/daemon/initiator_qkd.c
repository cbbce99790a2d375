/*
 * The initiator's list of positions to make again, and its ETSI 004 QKD waits (daemon/batch.h):
 * a batch whose KME had no key yet at some index gives the unspent indices back and goes on with
 * the keys it got, or fails and waits; while the KME has no key, the stream runs one batch at a
 * time, the lowest positions first. Called by the initiator's phases (initiator.c).
 */
#include "daemon/batch.h"

bool hxd_retry_add(struct hxd_stream *s, uint64_t first, uint32_t count)
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

bool hxd_qkd_not_yet(struct hxd *d, struct hxd_batch *b, int status)
{
    struct hxd_stream *s;
    uint32_t done = b->qkd_done;
    bool go_on = false;

    if (b->qkd_mode != HX_PEER_QKD_004 || status != HYKEX_STATUS_INSUFFICIENT_KEY ||
        done >= b->count) {
        return false;
    }
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &b->s.ksid)) != NULL) {
        s->qkd_waiting = true;
        hxd_qkd_give_back(s, b->qkd_first + done, b->count - done);
        if (done > 0 && hxd_retry_add(s, b->first + done, b->count - done)) {
            b->count = done;
            go_on = true;
        } else if (done > 0) {
            hxd_qkd_give_back(s, b->qkd_first, done); /* no room to split: all made again */
        }
    }
    pthread_mutex_unlock(&d->lock);
    return go_on;
}

void hxd_qkd_made(struct hxd *d, const struct hxd_batch *b)
{
    struct hxd_stream *s;

    if (b->qkd_mode != HX_PEER_QKD_004) {
        return;
    }
    pthread_mutex_lock(&d->lock);
    /* positions still to make again: keep going one batch at a time, lowest first */
    if ((s = hxd_stream_find(d, &b->s.ksid)) != NULL && s->qkd_waiting && s->n_retry == 0) {
        s->qkd_waiting = false;
        hxd_stream_kick(d, s);
    }
    pthread_mutex_unlock(&d->lock);
}

bool hxd_qkd_busy(const struct hxd_stream *s)
{
    for (size_t i = 0; i < HXD_PIPELINE; i++) {
        if (s->fl[i].used) {
            return true;
        }
    }
    return false;
}
