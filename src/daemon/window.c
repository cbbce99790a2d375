/*
 * The responder's window (docs/peer-protocol.md "Recovery and window", docs/security.md
 * "Resource model"): production never runs more than limits.buffer_depth ahead of the slower
 * end. The responder tells the initiator the first position it will not take yet (its key
 * buffer's window end, hxd_stream_window_end: the lowest key its application has not taken
 * plus buffer_depth) in STREAM_WINDOW; the initiator makes no new batch that would reach past
 * it (a batch is cut to end at it; while another is in flight, a new one waits for room for a
 * whole batch: hxd_stream_kick), and the stream waits without holding a worker until the
 * window moves.
 *
 * The responder announces: after its JOIN, after every committed batch (so an initiator that
 * restarted learns the window again), when its application has taken a batch's worth of keys
 * or all it holds, at every key taken while the initiator is at the limit it heard (within a
 * batch of it), and to a peer whose link came up again (a lost update never stalls a
 * stream). Limits only grow: an update that is lower than one already seen is stale. An
 * initiator that never hears one (a peer node without this message) is not held back.
 * Everything here runs with d->lock held; sends only queue on the link.
 */
#include <stdio.h>

#include "common/log.h"
#include "daemon/batch.h"

static void send_window(struct hxd *d, struct hxd_stream *s, uint64_t end)
{
    struct hx_peer_window m = {.ksid = s->ksid, .limit = end};
    uint8_t buf[24];
    struct hx_writer w;

    hx_writer_init_fixed(&w, buf, sizeof(buf));
    if (hx_peer_encode_window(&w, &m) == HX_OK &&
        hxd_send(d, &s->peer, HX_PEER_STREAM_WINDOW, buf, w.len) == HX_OK) {
        s->window_sent = end;
    }
}

void hxd_window_announce(struct hxd *d, struct hxd_stream *s, bool force)
{
    uint64_t end, top;
    bool tight;

    if (s == NULL || s->role != HXD_RESPONDER || !s->peer_app_open || s->peer_closed) {
        return;
    }
    end = hxd_stream_window_end(d, s);
    /* Tight: the initiator has made (nearly) everything up to the last limit it heard, so it
     * waits for this one; every step counts then (it makes batches cut to the limit). */
    top = s->n_ready > 0 && s->ready[s->n_ready - 1].pos + 1 > s->produced
              ? s->ready[s->n_ready - 1].pos + 1
              : s->produced;
    tight = s->window_sent < top + d->cfg.batch_size;
    /* else a batch's worth more, or all keys taken (the application waits for the next ones) */
    if (force || (end > s->window_sent &&
                  (tight || end - s->window_sent >= d->cfg.batch_size || s->n_ready == 0))) {
        send_window(d, s, end);
    }
}

void hxd_window_announce_peer(struct hxd *d, const struct hx_uuid *peer)
{
    for (size_t i = 0; i < d->max_streams; i++) {
        struct hxd_stream *s = &d->streams[i];
        if (s->used && s->role == HXD_RESPONDER && hx_uuid_equal(&s->peer, peer)) {
            hxd_window_announce(d, s, true);
        }
    }
}

void hxd_window_on_update(struct hxd *d, struct hxd_stream *s, const uint8_t *p, size_t len)
{
    struct hx_peer_window m;

    if (s->role != HXD_INITIATOR || hx_peer_decode_window(p, len, &m) != HX_OK) {
        return;
    }
    if (!s->peer_limit_known || m.limit > s->peer_limit) {
        s->peer_limit = m.limit;
        s->peer_limit_known = true;
        hxd_stream_kick(d, s);
    }
}
