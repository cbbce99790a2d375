/*
 * OPEN_CONNECT of a stream's QKD stream at this node's KME (ETSI GS QKD 004): the URIs both ends
 * name the link by (initiator's node first, relays included), the QoS asked for (qkd.qos), one
 * retry with the KME's counter-proposal, and the KME's refusal as an application status. Called
 * by the stream service when a stream opens (service_open.c) and by KME recovery
 * (qkd_recover.c); no lock held, nothing here calls up into the batch protocol.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "daemon/hxd.h"
#include "daemon/relay.h"

/* The QoS this node asks its KME for (qkd.qos, docs/hykexd.md); the KME's wait is cut to the
 * application's timeout when that is shorter. */
static void qkd_qos(const struct hxd *d, const struct hxd_stream *s, struct hykex_qos *q)
{
    memset(q, 0, sizeof(*q));
    q->key_chunk_size = d->cfg.qkd_key_bytes;
    q->timeout_ms = d->cfg.qkd_qos.timeout_ms;
    if (s->qos.timeout_ms > 0 && s->qos.timeout_ms < q->timeout_ms) {
        q->timeout_ms = s->qos.timeout_ms;
    }
    q->min_bps = d->cfg.qkd_qos.min_bps;
    q->max_bps = d->cfg.qkd_qos.max_bps;
    q->jitter = d->cfg.qkd_qos.jitter;
    q->priority = d->cfg.qkd_qos.priority;
    q->ttl_s = d->cfg.qkd_qos.ttl;
}

/* The KME refused OPEN_CONNECT with st: the application's status, and a message naming the
 * KME and its answer (logged at warn). */
static int kme_refused(struct hxd *d, uint32_t st, const struct hykex_qos *q, bool retried,
                       bool quiet, char *msg, size_t msg_len)
{
    char kme[HXD_MAX_HOST + 8], said[200];
    const char *m = strncmp(msg, "QKD source: ", 12) == 0 ? msg + 12 : msg;

    snprintf(kme, sizeof(kme), "%s:%u", d->cfg.qkd.host, d->cfg.qkd.port);
    snprintf(said, sizeof(said), "%s", m[0] != '\0' ? m : hykex_status_string((int)st));
    snprintf(msg, msg_len, "KME %s refused OPEN_CONNECT with status %u: %s%s", kme, st, said,
             retried ? " (after retrying with its counter-proposal)" : "");
    if (!quiet) {
        hx_warn("KME refused OPEN_CONNECT", HX_F_STR("kme", kme) HX_F_U64("status", st) HX_F_STR(
                                                "kme_message", said) HX_F_BOOL("retried", retried));
    }
    /* 6 from a KME that was given a wait: the other end did not open in time; any other
     * refusal is the KME's, status 4 (7 only if the counter-proposal was refused again). */
    if (st == HYKEX_STATUS_TIMEOUT && q->timeout_ms > 0) {
        return HYKEX_STATUS_TIMEOUT;
    }
    return st == HYKEX_STATUS_QOS_NOT_MET ? HYKEX_STATUS_QOS_NOT_MET
                                          : HYKEX_STATUS_NO_QKD_CONNECTION;
}

hx_err hxd_qkd_open(struct hxd *d, struct hxd_stream *copy, int *status, char *msg, size_t msg_len)
{
    uint32_t kme_status;

    return hxd_qkd_open_ex(d, copy, false, &kme_status, status, msg, msg_len);
}

hx_err hxd_qkd_open_ex(struct hxd *d, struct hxd_stream *copy, bool quiet, uint32_t *kme_status,
                       int *status, char *msg, size_t msg_len)
{
    char src[300], dst[300], self[HX_UUID_STR_LEN + 1], peer[HX_UUID_STR_LEN + 1];
    const struct hx_uuid *a, *b;
    struct hykex_qos qos;
    struct hx_qkd_ksid id;
    uint32_t st = 0;
    bool retried = false;
    hx_err e;

    struct hx_uuid relay_peer;
    /* Both ends name the link the same way: initiator's node first. Over relays (docs/relay.md)
     * this node's QKD link ends at the first (initiator) or last (responder) relay. */
    const struct hx_uuid *other = hxd_relay_qkd_link_peer(d, &copy->ksid, &copy->peer, &relay_peer)
                                      ? &relay_peer
                                      : &copy->peer;
    a = copy->role == HXD_INITIATOR ? &d->cfg.uuid : other;
    b = copy->role == HXD_INITIATOR ? other : &d->cfg.uuid;
    hx_uuid_format(a, self);
    hx_uuid_format(b, peer);
    snprintf(src, sizeof(src), "qkd://%s@%s", d->cfg.qkd_application, self);
    snprintf(dst, sizeof(dst), "qkd://%s@%s", d->cfg.qkd_application, peer);
    memset(&id, 0, sizeof(id));
    if (d->cfg.qkd_join != HXD_JOIN_SAME_URIS) {
        /* ETSI: both ends open the id the initiator announced (nil: the KME makes one) */
        id = copy->qkd_ksid;
    }
    qkd_qos(d, copy, &qos);
    *kme_status = UINT32_MAX;
    for (;;) {
        struct hx_qkd_ksid got = id;
        double t0 = hx_monotime();
        e = hx_qkd_open(&d->qkd, src, dst, &qos, &got, &st, msg, msg_len);
        hxd_metrics_kme(&d->metrics, HXD_KME_OPEN, t0, e == HX_OK && st <= 1);
        if (e != HX_OK) {
            *status = HYKEX_STATUS_NO_QKD_CONNECTION;
            if (!quiet) {
                hx_warn("KME unreachable", HX_F_STR("reason", msg));
            }
            return e;
        }
        *kme_status = st;
        if (st == HYKEX_STATUS_QOS_NOT_MET && !retried &&
            qos.key_chunk_size == d->cfg.qkd_key_bytes) {
            /* ETSI 004: status 7 carries a counter-proposal; accepted once */
            HX_LOG_AT(quiet ? HX_LOG_DEBUG : HX_LOG_INFO,
                      "KME counter-proposed the QoS: asking again with it",
                      HX_F_U64("timeout", qos.timeout_ms) HX_F_U64("min_bps", qos.min_bps)
                          HX_F_U64("max_bps", qos.max_bps) HX_F_U64("jitter", qos.jitter));
            retried = true;
            continue;
        }
        id = got;
        break;
    }
    if (st > 1) {
        *status = kme_refused(d, st, &qos, retried, quiet, msg, msg_len);
        return HX_ERR_STATE;
    }
    if (copy->role == HXD_RESPONDER && d->cfg.qkd_join != HXD_JOIN_SAME_URIS &&
        !hx_qkd_ksid_is_none(&copy->qkd_ksid) && !hx_qkd_ksid_equal(&id, &copy->qkd_ksid)) {
        snprintf(msg, msg_len, "QKD source: the KME did not join the initiator's QKD stream");
        *status = HYKEX_STATUS_NO_QKD_CONNECTION;
        return HX_ERR_STATE;
    }
    copy->qkd_ksid = id; /* this node's own KME's id for the stream (same-uris: maybe its own) */
    *status = 0;
    return HX_OK;
}
