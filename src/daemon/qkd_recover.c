/*
 * KME recovery (docs/hykexd.md "When the KME goes away"): a KME that restarts forgets the
 * QKD streams opened at it, and one that is away answers nothing. A GET_KEY that finds either
 * marks the stream's QKD stream lost (hxd_qkd_lost); the stream then makes no batch and its
 * applications' GET_KEY get status 4 with a message naming the KME. Its QKD stream is opened
 * again (OPEN_CONNECT with the same key_stream_id, or under qkd.join same-uris a fresh one of
 * the KME's own), one attempt at a time on an initiator worker, with exponential back-off and
 * jitter up to peer.reconnect_max_s, one log line per attempt.
 *
 * A KME may hold OPEN_CONNECT until the other end of the QKD stream opens too (ETSI 004): both
 * nodes must reopen at about the same time. Each attempt made on this node's own back-off
 * first sends QKD_REOPEN to the peer node, which makes its own attempt at once (and sends
 * nothing back, so the two never bounce). Keys made before the loss stay as they are: only
 * new positions wait. Nothing here runs under d->lock except the bookkeeping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/batch.h"

#define REOPEN_FIRST_S 0.5   /* the first back-off step */
#define REOPEN_WAIT_MS 2000u /* each attempt waits this long at the KME for the other end */

static void kme_name(const struct hxd *d, char *out, size_t n)
{
    snprintf(out, n, "%s:%u", d->cfg.qkd.host, d->cfg.qkd.port);
}

/* The application's view while the QKD stream is lost (lock held). */
static void set_failing(const struct hxd *d, struct hxd_stream *s, const char *what,
                        const char *why)
{
    char kme[HXD_MAX_HOST + 8];

    kme_name(d, kme, sizeof(kme));
    s->failing = true;
    s->fail_status = HYKEX_STATUS_NO_QKD_CONNECTION;
    snprintf(s->fail_msg, sizeof(s->fail_msg), "KME %.60s %.40s (%.60s); reopened when it answers",
             kme, what, strncmp(why, "QKD source: ", 12) == 0 ? why + 12 : why);
}

static void queue_attempt(struct hxd *d, struct hxd_stream *s)
{
    if (!s->qkd_reopen_queued && !d->stopping &&
        hxd_pool_enqueue(&d->initiators, &s->ksid, HX_PEER_QKD_REOPEN, NULL, 0)) {
        s->qkd_reopen_queued = true;
    }
}

void hxd_qkd_lost(struct hxd *d, struct hxd_stream *s, const char *why)
{
    char id[HX_UUID_STR_LEN + 1], kme[HXD_MAX_HOST + 8];

    if (s->qkd_lost || !s->qkd_open || hxd_qkd_is_014(d) || s->peer_closed) {
        return;
    }
    s->qkd_lost = true;
    s->qkd_reopen_at = 0; /* the first attempt at once */
    s->qkd_backoff_s = REOPEN_FIRST_S;
    s->qkd_reopen_quiet = false;
    set_failing(d, s, "lost the QKD stream or is away", why);
    hx_uuid_format(&s->ksid, id);
    kme_name(d, kme, sizeof(kme));
    hx_warn("QKD stream lost at the KME: reopening it",
            HX_F_STR("stream", id) HX_F_STR("kme", kme) HX_F_STR("reason", why));
    pthread_cond_broadcast(&d->changed);
}

void hxd_qkd_reopen_tick(struct hxd *d)
{
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->max_streams; i++) {
        struct hxd_stream *s = &d->streams[i];
        if (s->used && s->qkd_lost && !s->qkd_reopen_queued &&
            hx_deadline_passed(s->qkd_reopen_at)) {
            queue_attempt(d, s);
        }
    }
    pthread_mutex_unlock(&d->lock);
}

void hxd_qkd_on_peer_reopen(struct hxd *d, struct hxd_stream *s)
{
    char id[HX_UUID_STR_LEN + 1];

    if (!s->qkd_open || hxd_qkd_is_014(d) || s->peer_closed ||
        (s->qkd_peer_next != 0 && !hx_deadline_passed(s->qkd_peer_next))) {
        return; /* at most one attempt per REOPEN_FIRST_S for a peer's asking: a peer that
                 * sends QKD_REOPEN in a loop does not make this node hammer its KME */
    }
    s->qkd_peer_next = hx_deadline_in_ms((uint64_t)(REOPEN_FIRST_S * 1000));
    if (!s->qkd_lost) {
        s->qkd_lost = true;
        s->qkd_backoff_s = REOPEN_FIRST_S;
    }
    hx_uuid_format(&s->ksid, id);
    hx_info("peer node reopens its QKD stream: reopening ours", HX_F_STR("stream", id));
    s->qkd_reopen_quiet = true;
    s->qkd_reopen_at = 0;
    queue_attempt(d, s);
}

/* The next back-off step, drawn from [b/2, b] (jitter), b doubling up to reconnect_max_s. */
static double next_wait(const struct hxd *d, struct hxd_stream *s)
{
    double b = s->qkd_backoff_s > 0 ? s->qkd_backoff_s : REOPEN_FIRST_S;
    uint64_t x = (uint64_t)hx_monotime_ns() * 0x9E3779B97F4A7C15ull;
    double frac = (double)(x >> 11) / (double)(1ull << 53);

    s->qkd_backoff_s = b * 2 > d->cfg.reconnect_max_s ? d->cfg.reconnect_max_s : b * 2;
    return b * (0.5 + 0.5 * frac);
}

void hxd_qkd_reopen_run(struct hxd *d, const struct hx_uuid *ksid)
{
    struct hxd_stream *s, *copy = NULL;
    char id[HX_UUID_STR_LEN + 1], kme[HXD_MAX_HOST + 8], msg[300] = "";
    struct hx_uuid peer;
    struct hx_qkd_ksid s_qkd_ksid;
    uint32_t kme_status = UINT32_MAX;
    uint64_t attempt;
    int status = 0;
    bool quiet, ok;

    hx_uuid_format(ksid, id);
    kme_name(d, kme, sizeof(kme));
    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, ksid);
    if (s == NULL || !s->qkd_lost || s->peer_closed || d->stopping ||
        (copy = malloc(sizeof(*copy))) == NULL) {
        if (s != NULL) {
            s->qkd_reopen_queued = false;
            s->qkd_reopen_at = hx_deadline_in_ms(1000); /* no memory: the tick tries again */
        }
        pthread_mutex_unlock(&d->lock);
        return;
    }
    hxd_stream_copy_fixed(copy, s); /* only its ids, URIs and QoS are read */
    s_qkd_ksid = s->qkd_ksid;
    quiet = s->qkd_reopen_quiet;
    s->qkd_reopen_quiet = false;
    attempt = ++s->qkd_reconnects;
    peer = s->peer;
    pthread_mutex_unlock(&d->lock);

    if (!quiet) { /* the peer node reopens its end now, so that the two meet at the KMEs */
        struct hx_peer_qkd_reopen m = {.ksid = *ksid};
        uint8_t buf[16];
        struct hx_writer w;
        hx_writer_init_fixed(&w, buf, sizeof(buf));
        if (hx_peer_encode_qkd_reopen(&w, &m) == HX_OK) {
            hx_ignore(hxd_send(d, &peer, HX_PEER_QKD_REOPEN, buf, w.len));
        }
    }
    copy->qos.timeout_ms = REOPEN_WAIT_MS;
    ok = hxd_qkd_open_ex(d, copy, true, &kme_status, &status, msg, sizeof(msg)) == HX_OK ||
         /* 5: the id is still open at this KME: it lost nothing (only the peer's KME did) */
         kme_status == HYKEX_STATUS_KSID_IN_USE;
    if (ok && kme_status == 0 && d->cfg.qkd_join != HXD_JOIN_SAME_URIS &&
        !hx_qkd_ksid_equal(&copy->qkd_ksid, &s_qkd_ksid)) {
        /* stream-id: both ends and every batch transcript use the one id; another is no use */
        snprintf(msg, sizeof(msg), "the KME gave another key_stream_id, not the stream's");
        ok = false;
    }

    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, ksid)) == NULL) {
        pthread_mutex_unlock(&d->lock);
        free(copy);
        return;
    }
    s->qkd_reopen_queued = false;
    if (ok) {
        if (strcmp(s->qkd_ksid.s, copy->qkd_ksid.s) != 0 && kme_status == 0) {
            s->qkd_ksid = copy->qkd_ksid; /* same-uris: the KME's new id for this end */
            hxd_persist_stream_later(d, s);
        }
        s->qkd_lost = false;
        s->qkd_backoff_s = REOPEN_FIRST_S;
        s->failing = false;
        s->retry_at = 0;
        hx_info("QKD stream reopened at the KME",
                HX_F_STR("stream", id) HX_F_STR("kme", kme) HX_F_U64("attempts", attempt));
        hxd_stream_kick(d, s);
    } else if (s->qkd_lost) {
        double wait = next_wait(d, s);
        s->qkd_reopen_at = hx_deadline_in_ms((uint64_t)(wait * 1000));
        set_failing(d, s, "did not reopen the QKD stream", msg);
        hx_warn("KME did not reopen the QKD stream: trying again after the back-off",
                HX_F_STR("stream", id) HX_F_STR("kme", kme) HX_F_U64("attempts", attempt)
                    HX_F_STR("reason", msg) HX_F_U64("retry_in_ms", (uint64_t)(wait * 1000)));
    }
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
    free(copy);
}
