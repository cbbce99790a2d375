/*
 * The initiator's side of a batch (docs/peer-protocol.md "Batches"), run by an initiator pool
 * worker per batch and driven by a phase table (s2n tls/s2n_handshake_io.c keeps its
 * handshake in a state_machine[] the same way): each phase does one step and names the next.
 *
 *   PICK -> REQUEST -> WAIT_RESP -> CHECK_RESP -> FINISH -> WAIT_ACK -> SETTLE -> DONE
 *   PICK -> QUERY -> SETTLE           (a prepared batch whose ACK never came)
 *   CHECK_RESP, FINISH -> ABORT -> FAIL -> DONE;   any phase -> FAIL -> DONE
 *
 * No worker ever sleeps out a back-off: FAIL marks the stream and hxd_streams_tick resumes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "daemon/batch.h"
#include "proto/peer_topo.h"

enum phase {
    PH_PICK,       /* take a batch: new positions, a retry, or a query */
    PH_QUERY,      /* BATCH_QUERY about a prepared batch, wait for its ACK */
    PH_REQUEST,    /* QKD keys, KEM key pairs -> BATCH_REQ */
    PH_WAIT_RESP,  /* for BATCH_RESP */
    PH_CHECK_RESP, /* decapsulate, verify the signature, combine, check the tag */
    PH_FINISH,     /* sign, store prepared -> BATCH_FIN */
    PH_WAIT_ACK,   /* for BATCH_ACK */
    PH_SETTLE,     /* the ACK's answer: keys ready, or made again */
    PH_ABORT,      /* BATCH_FIN abort, then FAIL */
    PH_FAIL,       /* report, back off, retry the positions */
    PH_DONE,
};

/* One batch being made. */
struct run {
    struct hxd *d;
    struct hx_uuid ksid;
    struct hxd_batch b;
    uint64_t first;
    uint32_t count;
    uint64_t serial; /* the link BATCH_REQ went on: a new link lost the replies */
    uint8_t *resp;   /* BATCH_RESP, taken from the in-flight slot */
    size_t resp_len;
    int ack;            /* BATCH_ACK status; -1: none */
    bool querying;      /* settling after a BATCH_QUERY, not a BATCH_FIN */
    struct hx_writer w; /* the message being sent */
    int status;         /* ETSI status for the application when the batch fails */
    /* the phase that went to PH_ABORT or PH_FAIL (metrics) */
    enum phase failed_in;
    char msg[200];
    /* authenticated by MACs under ak, the key of the signed batch at anchor (batch_auth.c) */
    bool mac;
    uint64_t anchor;
    uint8_t ak[32];
};

/* Marks the free slot f for the batch at first (lock held). */
static void slot_start(struct hxd_inflight *f, uint64_t first, bool want_ack)
{
    f->used = true;
    f->first = first;
    f->resp_ready = false;
    f->want_ack = want_ack; /* a query's answer is an ACK; a batch's only after its FIN */
    f->ack_status = -1;
}

/*
 * The initiator's KME had no key yet at some index of this batch (request phase, before the
 * peer heard of it): the stream goes on one batch at a time (qkd_busy) until a batch gets all
 * its keys. An ETSI 004 KME: the QKD indices not spent go back to the stream; with some keys
 * fetched, the batch goes on with those positions and the rest are made again later (true).
 * With none, or from an ETSI 014 KME ("try again later": all of a batch's keys or none), it
 * fails and waits its back-off (false).
 */
static bool qkd_not_yet(struct run *r)
{
    struct hxd *d = r->d;
    struct hxd_stream *s;
    uint32_t done = r->b.qkd_done;
    bool go_on = false;

    if (r->status != HYKEX_STATUS_INSUFFICIENT_KEY || done >= r->count) {
        return false;
    }
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &r->ksid)) != NULL) {
        s->qkd_waiting = true;
    }
    if (s == NULL || r->b.qkd_mode != HX_PEER_QKD_004) {
        /* Listed now, under the same lock: a batch in flight that gets its keys meanwhile
         * (qkd_made) must see positions still to make, or it would end the wait. The batch's
         * end (hxd_init_batch_done) does not list them twice. */
        if (s != NULL && !s->peer_closed) {
            (void)hxd_init_retry_add(s, r->first, r->count); /* full: given up, as there */
        }
        pthread_mutex_unlock(&d->lock);
        return false;
    }
    hxd_qkd_give_back(s, r->b.qkd_first + done, r->count - done);
    if (done > 0 && hxd_init_retry_add(s, r->first + done, r->count - done)) {
        r->count = r->b.count = done;
        go_on = true;
    } else if (done > 0) {
        hxd_qkd_give_back(s, r->b.qkd_first, done); /* no room to split: all made again */
    }
    pthread_mutex_unlock(&d->lock);
    return go_on;
}

/* Every QKD key of the batch was there: with nothing left to make again, the stream may run
 * batches side by side again. */
static void qkd_made(struct run *r)
{
    struct hxd_stream *s;

    if (r->b.qkd_mode == HX_PEER_QKD_NONE) {
        return;
    }
    pthread_mutex_lock(&r->d->lock);
    /* positions still to make again: keep going one batch at a time, lowest first */
    if ((s = hxd_stream_find(r->d, &r->ksid)) != NULL && s->qkd_waiting && s->n_retry == 0) {
        s->qkd_waiting = false;
        hxd_stream_kick(r->d, s);
    }
    pthread_mutex_unlock(&r->d->lock);
}

/* While the KME has no key yet, one batch at a time, the lowest positions first: the few keys
 * the link makes go to the positions an application waits for (lock held). */
static bool qkd_busy(const struct hxd_stream *s)
{
    for (size_t i = 0; i < HXD_PIPELINE; i++) {
        if (s->fl[i].used) {
            return true;
        }
    }
    return false;
}

/*
 * ETSI 014: the KME's max_key_per_request for the peer's SAE, asked once per stream before its
 * first batch (no lock held during the call), so that no enc_keys asks for more: a KME whose
 * limit is below limits.batch_size refuses every such request. A KME that does not answer is
 * asked again at the next batch; one whose status has no limit (or no status) sets none.
 */
static void kme_limit(struct run *r)
{
    struct hxd *d = r->d;
    struct hxd_stream *s;
    char sae[sizeof(s->peer_sae)], id[HX_UUID_STR_LEN + 1], msg[300] = "";
    uint32_t max = 0;
    bool ask;
    hx_err e;

    if (!hxd_qkd_is_014(d)) {
        return; /* every pick passes here: no lock taken for other KMEs */
    }
    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, &r->ksid);
    ask = s != NULL && s->role == HXD_INITIATOR && s->kme_max_keys == 0 && s->peer_sae[0] != '\0' &&
          hxd_batch_qkd_mode(d, s) == HX_PEER_QKD_014;
    if (ask) {
        snprintf(sae, sizeof(sae), "%s", s->peer_sae);
    }
    pthread_mutex_unlock(&d->lock);
    if (!ask || (e = hx_qkd014_status(&d->qkd014, sae, &max, msg, sizeof(msg))) == HX_ERR_IO) {
        return;
    }
    hx_uuid_format(&r->ksid, id);
    if (e != HX_OK || max == 0) {
        hx_info("the ETSI 014 KME gives no max_key_per_request: batches not limited by it",
                HX_F_STR("stream", id) HX_F_STR("reason", msg[0] ? msg : "not in its status"));
        max = UINT32_MAX;
    } else if (max < d->cfg.batch_size) {
        hx_info("batches limited to the ETSI 014 KME's max_key_per_request",
                HX_F_STR("stream", id) HX_F_U64("max_key_per_request", max));
    }
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &r->ksid)) != NULL && s->kme_max_keys == 0) {
        s->kme_max_keys = max;
    }
    pthread_mutex_unlock(&d->lock);
}

/* A batch of count positions within the ETSI 014 KME's max_key_per_request (lock held). */
static uint32_t kme_cap(const struct hxd_stream *s, uint8_t qkd_mode, uint32_t count)
{
    return qkd_mode == HX_PEER_QKD_014 && s->kme_max_keys > 0 && count > s->kme_max_keys
               ? s->kme_max_keys
               : count;
}

static enum phase pick(struct run *r)
{
    struct hxd *d = r->d;
    struct hxd_inflight *f = NULL;
    struct hxd_stream *s;
    uint64_t qkd_first;
    hx_err e;

    kme_limit(r);
    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, &r->ksid);
    if (s != NULL && s->queued > 0) {
        s->queued--;
    }
    for (size_t i = 0; s != NULL && i < HXD_PIPELINE && f == NULL; i++) {
        f = s->fl[i].used ? NULL : &s->fl[i];
    }
    /* 004 QKD: not before this node's KME has opened its end (service.c opens it after
     * STREAM_OPEN, and the JOIN may come first). */
    if (s == NULL || s->role != HXD_INITIATOR || !s->peer_app_open || s->peer_closed || f == NULL ||
        (hxd_batch_qkd_mode(d, s) == HX_PEER_QKD_004 && !s->qkd_open) ||
        (s->qkd_waiting && qkd_busy(s))) {
        if (s != NULL && s->inflight > 0) {
            s->inflight--;
        }
        pthread_mutex_unlock(&d->lock);
        return PH_DONE;
    }
    uint8_t qkd_mode = hxd_batch_qkd_mode(d, s);
    bool is004 = qkd_mode == HX_PEER_QKD_004, retrying = s->n_retry > 0;
    /* A new batch: larger while keys are stocked (hxd_batch_may_grow); capped so that its
     * frames fit (Classic McEliece public keys are large). A retry keeps its own count. */
    r->count =
        retrying
            ? 0
            : kme_cap(s, qkd_mode,
                      hx_peer_batch_cap(&s->uri, d->cfg.kem_key_pairs == HXD_KEY_PAIRS_PER_BATCH,
                                        hxd_stream_batch_size(d, s, hxd_batch_may_grow(d, s))));
    if (s->n_retry > 0) {
        /* Oldest failure first: an application waits for the lowest positions. */
        r->first = s->retry[0].first;
        r->count = s->retry[0].count;
        memmove(&s->retry[0], &s->retry[1], --s->n_retry * sizeof(s->retry[0]));
        if (hxd_inflight_of(s, r->first) != NULL) { /* already being made again: not twice */
            s->inflight--;
            pthread_mutex_unlock(&d->lock);
            return PH_DONE;
        }
        if (hxd_stream_has_prepared(s, r->first)) {
            slot_start(f, r->first, true);
            hxd_stream_kick(d, s); /* the stream's next job, behind the other streams' */
            pthread_mutex_unlock(&d->lock);
            return PH_QUERY;
        }
    } else if ((r->count = hxd_window_cut(s, s->next_first, r->count)) == 0) {
        /* beyond the responder's window: wait for its update without holding this worker */
        s->inflight--;
        pthread_mutex_unlock(&d->lock);
        return PH_DONE;
    } else {
        r->first = s->next_first;
    }
    if (retrying && kme_cap(s, qkd_mode, r->count) < r->count &&
        hxd_init_retry_add(s, r->first + s->kme_max_keys, r->count - s->kme_max_keys)) {
        r->count = s->kme_max_keys; /* failed before the KME's limit was known: cut */
    }
    if (is004) {
        /* A retry's positions are cut only when the rest can wait in the retry list. */
        uint32_t want = r->count;
        bool room = s->n_retry < sizeof(s->retry) / sizeof(s->retry[0]);
        qkd_first = hxd_qkd_take(s, &r->count, !retrying || room);
        if (retrying && r->count < want) {
            (void)hxd_init_retry_add(s, r->first + r->count, want - r->count); /* room checked */
        }
    } else {
        qkd_first = s->qkd_next;
        s->qkd_next += r->count; /* 014 and KEM-only: the index is a counter, nothing more */
    }
    if (!retrying) {
        s->next_first += r->count;
    }
    slot_start(f, r->first, false);
    hxd_stream_kick(d, s); /* the stream's next job, behind the other streams' */
    e = hxd_batch_init(&r->b, d, s, r->first, r->count);
    r->b.qkd_first = qkd_first;
    r->b.qkd_mode = qkd_mode;
    r->b.key_pairs = (uint8_t)d->cfg.kem_key_pairs;
    pthread_mutex_unlock(&d->lock);
    if (e != HX_OK) {
        snprintf(r->msg, sizeof(r->msg), "out of memory");
        return PH_FAIL;
    }
    return PH_REQUEST;
}

/*
 * The responder committed part of a queried run (after a restart the store's prepared runs no
 * longer show where one batch ended and the next began): each half is asked again, down to
 * single positions if need be, so that no position is settled by another's answer.
 */
static void split_query(struct hxd *d, struct run *r)
{
    struct hxd_stream *s;
    uint32_t half = r->count / 2;

    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &r->ksid)) != NULL) {
        if (s->n_retry + 2 <= sizeof(s->retry) / sizeof(s->retry[0])) {
            (void)hxd_init_retry_add(s, r->first, half); /* room checked */
            (void)hxd_init_retry_add(s, r->first + half, r->count - half);
        } else {
            (void)hxd_init_retry_add(s, r->first,
                                     r->count); /* asked again whole once there is room */
        }
        hxd_init_batch_done(d, s, r->first, r->count, true); /* frees the slot; already listed */
    }
    pthread_mutex_unlock(&d->lock);
}

static enum phase query(struct run *r)
{
    struct hxd *d = r->d;
    struct hx_peer_query m = {.ksid = r->ksid, .first = r->first, .count = r->count};
    struct hxd_inflight *f;
    struct hxd_stream *s;
    struct hx_uuid peer;
    char id[HX_UUID_STR_LEN + 1];

    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &r->ksid)) == NULL) {
        pthread_mutex_unlock(&d->lock);
        return PH_DONE;
    }
    peer = s->peer;
    pthread_mutex_unlock(&d->lock);
    if (hx_peer_encode_query(&r->w, &m) == HX_OK &&
        hxd_send_serial(d, &peer, HX_PEER_BATCH_QUERY, r->w.data, r->w.len, &r->serial) == HX_OK) {
        pthread_mutex_lock(&d->lock);
        if ((f = hxd_init_wait_reply(d, &r->ksid, r->first, true, r->serial)) != NULL) {
            r->ack = f->ack_status;
        }
        pthread_mutex_unlock(&d->lock);
    }
    if (r->ack < 0) {
        snprintf(r->msg, sizeof(r->msg), "peer node unreachable while settling a batch");
        return PH_FAIL;
    }
    hx_uuid_format(&r->ksid, id);
    if (r->ack == HX_PEER_ACK_PART_COMMITTED && r->count > 1) {
        hx_info("prepared run partly committed at the responder: asked again in halves",
                HX_F_STR("stream", id) HX_F_U64("first", r->first) HX_F_U64("count", r->count));
        split_query(d, r);
        return PH_DONE;
    }
    hx_info("prepared batch settled with the responder",
            HX_F_STR("stream", id) HX_F_U64("first", r->first)
                HX_F_STR("outcome", r->ack == HX_PEER_ACK_COMMITTED ? "committed" : "made again"));
    r->querying = true;
    return PH_SETTLE;
}

/* MACs under the stream's key when it holds one for the direct link to the peer, else
 * signatures (batch_auth.c). */
static void auth_choose(struct run *r)
{
    struct hxd *d = r->d;
    uint64_t serial;
    struct hxd_stream *s;

    if (!d->cfg.batch_macs) {
        return; /* peer.batch_macs false: every batch signed */
    }
    serial = hxd_direct_serial(d, &r->b.s.peer);
    pthread_mutex_lock(&d->lock);
    r->mac =
        (s = hxd_stream_find(d, &r->ksid)) != NULL && hxd_auth_use(s, serial, &r->anchor, r->ak);
    pthread_mutex_unlock(&d->lock);
}

static enum phase request(struct run *r)
{
    struct hxd *d = r->d;
    struct hx_peer_req m;

    if (hxd_source_fetch_qkd(d, &r->b, &r->status, r->msg, sizeof(r->msg)) == HX_OK) {
        qkd_made(r);
    } else if (!qkd_not_yet(r)) {
        return PH_FAIL;
    }
    if (hxd_source_keygen(&r->b, r->msg, sizeof(r->msg)) != HX_OK) {
        return PH_FAIL;
    }
    auth_choose(r);
    memset(&m, 0, sizeof(m));
    m.ksid = r->ksid;
    m.first = r->first;
    m.count = r->count;
    m.qkd_first = r->b.qkd_first;
    m.qkd_mode = r->b.qkd_mode;
    m.key_pairs = r->b.key_pairs;
    m.mac = r->mac;
    m.anchor = r->anchor;
    m.qkd_ids = (const uint8_t *)r->b.qkd_ids;
    m.n_kem = hxd_source_parts(&r->b, false, m.kem);
    if (hx_peer_encode_req(&r->w, &m) != HX_OK) {
        return PH_FAIL;
    }
    if (hxd_send_req(d, &r->b, r->w.data, r->w.len, &r->serial) != HX_OK) {
        snprintf(r->msg, sizeof(r->msg), "peer node unreachable (link down)");
        return PH_FAIL;
    }
    return PH_WAIT_RESP;
}

static enum phase wait_resp(struct run *r)
{
    struct hxd *d = r->d;
    struct hxd_inflight *f;

    pthread_mutex_lock(&d->lock);
    if ((f = hxd_init_wait_reply(d, &r->ksid, r->first, false, r->serial)) == NULL) {
        pthread_mutex_unlock(&d->lock);
        snprintf(r->msg, sizeof(r->msg), "peer node did not answer the key batch");
        return PH_FAIL;
    }
    r->resp = f->resp;
    r->resp_len = f->resp_len;
    f->resp = NULL;
    pthread_mutex_unlock(&d->lock);
    return PH_CHECK_RESP;
}

/* BATCH_RESP "positions lost": the responder had committed them; both nodes give them up. */
static enum phase positions_lost(struct run *r)
{
    struct hxd *d = r->d;
    struct hxd_stream *s;

    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &r->ksid)) != NULL) {
        hxd_batch_give_up(s, r->first, r->count);
        hxd_init_batch_done(d, s, r->first, r->count, true);
        pthread_cond_broadcast(&d->changed);
    }
    pthread_mutex_unlock(&d->lock);
    if (s != NULL) {
        hxd_batch_store_give_up(d, &r->ksid, r->first, r->count);
    }
    return PH_DONE;
}

/*
 * BATCH_RESP "no authentication key": the responder no longer holds the anchor's key (it
 * restarted, the link was made again, or a MAC failed there). The stream's batches are signed
 * again, which gives a new key, and these positions are made again at once, signed. (The
 * responder asked its KME for nothing; this node's QKD keys of the batch are spent, as with
 * any failed batch.)
 */
static enum phase auth_unknown(struct run *r)
{
    struct hxd *d = r->d;
    struct hxd_stream *s;
    char id[HX_UUID_STR_LEN + 1];

    hx_uuid_format(&r->ksid, id);
    hx_info(
        "the responder holds no key of the anchor batch: the stream's batches are signed "
        "again",
        HX_F_STR("stream", id) HX_F_U64("anchor", r->anchor) HX_F_U64("first", r->first));
    hxd_auth_drop(d, &r->ksid, r->anchor);
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &r->ksid)) != NULL) {
        hxd_init_batch_done(d, s, r->first, r->count, false); /* listed to be made again */
    }
    pthread_mutex_unlock(&d->lock);
    return PH_DONE;
}

static enum phase check_resp(struct run *r)
{
    struct hxd *d = r->d;
    struct hx_peer_resp m;
    uint8_t tag[HX_PEER_TAG_LEN], mac[32];
    hx_err e;

    if (hx_peer_decode_resp(r->resp, r->resp_len, hxd_source_ct_len(&r->b), &m) != HX_OK ||
        m.first != r->first || m.count != r->count) {
        snprintf(r->msg, sizeof(r->msg), "malformed BATCH_RESP from the peer");
        return PH_FAIL;
    }
    if (m.status == HX_PEER_RESP_POSITIONS_LOST) {
        return positions_lost(r);
    }
    if (m.status == HX_PEER_RESP_AUTH_UNKNOWN && r->mac) {
        return auth_unknown(r);
    }
    if (m.status != HX_PEER_RESP_OK) {
        /* The peer's ETSI status reaches our application: only a valid one. */
        r->status = m.status <= HYKEX_STATUS_METADATA_TOO_SMALL ? (int)m.status
                                                                : HYKEX_STATUS_NO_QKD_CONNECTION;
        if (m.msg[0] != '\0') {
            snprintf(r->msg, sizeof(r->msg), "%s", m.msg);
        } else {
            snprintf(r->msg, sizeof(r->msg), "peer node failed the batch (status %u)", m.status);
        }
        return PH_FAIL;
    }
    if (hxd_source_decaps(&r->b, m.kem[0].p, m.kem[0].len, r->msg, sizeof(r->msg)) != HX_OK) {
        return PH_FAIL;
    }
    hxd_batch_transcript(&r->b);
    if (r->mac) {
        if (m.sig.sig_len != sizeof(mac) ||
            hxd_auth_mac(r->ak, HXD_CTX_RESP, r->anchor, r->b.T, mac) != HX_OK ||
            !hx_ct_equal(mac, m.sig.sig, sizeof(mac))) {
            hxd_auth_drop(d, &r->ksid, r->anchor); /* the next batch is signed: a new key */
            snprintf(r->msg, sizeof(r->msg), "peer's batch MAC does not verify");
            return PH_ABORT;
        }
    } else if ((e = hxd_batch_verify_peer(d, &r->b.s.peer, HXD_CTX_RESP, r->b.T, &m.sig)) !=
               HX_OK) {
        snprintf(r->msg, sizeof(r->msg), "%s",
                 e == HX_ERR_IO_CLOSED ? "peer link went down during the batch"
                                       : "peer's batch signature does not verify");
        return PH_ABORT;
    }
    if ((e = hxd_batch_combine(d, &r->b)) != HX_OK ||
        (e = hxd_batch_tag(&r->b, "responder", tag)) != HX_OK) {
        snprintf(r->msg, sizeof(r->msg), "combining the batch failed: %s", hx_strerror(e));
        return PH_ABORT;
    }
    if (!hx_ct_equal(tag, m.sig.tag, HX_PEER_TAG_LEN)) {
        pthread_mutex_lock(&d->lock);
        d->confirm_mismatch++;
        pthread_mutex_unlock(&d->lock);
        snprintf(r->msg, sizeof(r->msg),
                 "key confirmation failed: the nodes derived different keys");
        return PH_ABORT;
    }
    return PH_FINISH;
}

static enum phase finish(struct run *r)
{
    struct hxd *d = r->d;
    struct hx_peer_fin m = {.ksid = r->ksid, .first = r->first, .count = r->count};
    uint8_t tag[HX_PEER_TAG_LEN], sig[HX_SIG_MAX_SIGNATURE];
    struct hxd_inflight *f;
    struct hxd_stream *s;
    size_t sig_len = 0;
    uint8_t offer[32];
    bool offering = false;
    hx_err e;

    /* Our signature (or MAC) and tag (the tag is derived from the keys: before they move). A
     * signed batch over a direct link offers the stream its key (batch_auth.c). */
    hx_writer_reset(&r->w);
    m.status = HX_PEER_FIN_COMMIT;
    m.sig.sig = sig;
    m.sig.tag = tag;
    if (r->mac) {
        e = hxd_auth_mac(r->ak, HXD_CTX_INIT, r->anchor, r->b.T, sig);
        sig_len = 32;
    } else if ((e = hxd_sign(d, &r->b.s.peer, HXD_CTX_INIT, r->b.T, sizeof(r->b.T), sig,
                             sizeof(sig), &sig_len)) == HX_OK &&
               hxd_auth_offers(d, &r->b)) {
        offering = hxd_auth_derive(d, &r->b, offer) == HX_OK;
    }
    if (e != HX_OK || sig_len > UINT16_MAX || hxd_batch_tag(&r->b, "initiator", tag) != HX_OK) {
        OPENSSL_cleanse(offer, sizeof(offer));
        snprintf(r->msg, sizeof(r->msg), "signing BATCH_FIN failed");
        return PH_ABORT;
    }
    m.sig.sig_len = (uint16_t)sig_len;
    if (hx_peer_encode_fin(&r->w, &m) != HX_OK) {
        OPENSSL_cleanse(offer, sizeof(offer));
        snprintf(r->msg, sizeof(r->msg), "signing BATCH_FIN failed");
        return PH_ABORT;
    }
    /* Prepared: durable here before the responder may commit (and serve) these positions. */
    if (d->store != NULL &&
        (e = hx_store_put_batch(d->store, &r->ksid, r->first, r->count, r->b.keys,
                                HX_STORE_PREPARED, r->b.qkd_first + r->count)) != HX_OK) {
        if (e != HX_ERR_NOT_FOUND) { /* not found: the stream was closed meanwhile */
            hxd_batch_store_failed(d, "store: preparing a batch failed", &r->ksid, r->first, e);
        }
        OPENSSL_cleanse(offer, sizeof(offer));
        snprintf(r->msg, sizeof(r->msg), "the node's key store failed: %s", hx_strerror(e));
        return PH_ABORT;
    }
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &r->ksid)) == NULL) {
        pthread_mutex_unlock(&d->lock);
        OPENSSL_cleanse(offer, sizeof(offer));
        return PH_DONE; /* closed: its rows went with it */
    }
    if (offering) { /* before the FIN leaves: the responder's BATCH_AUTH may come at once */
        hxd_auth_offer(s, r->first, r->serial, offer);
        OPENSSL_cleanse(offer, sizeof(offer));
    }
    hxd_batch_prepare(s, &r->b);
    if ((f = hxd_inflight_of(s, r->first)) != NULL) {
        f->want_ack = true; /* before the FIN leaves: its ACK may come at once */
    }
    hxd_fault_alter(d, HX_PEER_BATCH_FIN, &r->w, sig_len);
    pthread_mutex_unlock(&d->lock);
    if (hxd_send(d, &r->b.s.peer, HX_PEER_BATCH_FIN, r->w.data, r->w.len) != HX_OK) {
        snprintf(r->msg, sizeof(r->msg), "sending BATCH_FIN failed");
        return PH_FAIL; /* prepared: the retry asks the responder */
    }
    return PH_WAIT_ACK;
}

static enum phase wait_ack(struct run *r)
{
    struct hxd *d = r->d;
    struct hxd_inflight *f;

    pthread_mutex_lock(&d->lock);
    if ((f = hxd_init_wait_reply(d, &r->ksid, r->first, true, r->serial)) == NULL) {
        /* No answer: the keys stay prepared, and the retry asks the responder. */
        pthread_mutex_unlock(&d->lock);
        snprintf(r->msg, sizeof(r->msg), "peer node did not confirm the batch");
        return PH_FAIL;
    }
    r->ack = f->ack_status;
    pthread_mutex_unlock(&d->lock);
    return PH_SETTLE;
}

static enum phase settle_phase(struct run *r)
{
    struct hxd *d = r->d;
    struct hxd_stream *s;

    if (hxd_init_settle(d, &r->ksid, r->first, r->count, r->ack == HX_PEER_ACK_COMMITTED)) {
        if (!r->querying) {
            hxd_metrics_batch_auth(&d->metrics, r->mac);
        }
        return PH_DONE;
    }
    if (!r->querying) {
        snprintf(r->msg, sizeof(r->msg), "peer node did not commit the batch");
        return PH_FAIL;
    }
    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, &r->ksid);
    if (s != NULL && !hxd_stream_has_prepared(s, r->first)) {
        hxd_init_batch_done(d, s, r->first, r->count, false); /* made again at once */
        pthread_mutex_unlock(&d->lock);
        return PH_DONE;
    }
    pthread_mutex_unlock(&d->lock);
    /* The store failed: ask again after the back-off. */
    snprintf(r->msg, sizeof(r->msg), "peer node unreachable while settling a batch");
    return PH_FAIL;
}

static enum phase abort_batch(struct run *r)
{
    struct hx_peer_fin m = {
        .ksid = r->ksid, .first = r->first, .count = r->count, .status = HX_PEER_FIN_ABORT};

    hx_writer_reset(&r->w);
    if (hx_peer_encode_fin(&r->w, &m) == HX_OK) {
        hx_ignore(hxd_send(r->d, &r->b.s.peer, HX_PEER_BATCH_FIN, r->w.data, r->w.len));
    }
    return PH_FAIL;
}

/* The metrics' name for the phase a batch failed in (docs/metrics.md). */
static enum hxd_fail_cause fail_cause(enum phase ph)
{
    switch (ph) {
    case PH_QUERY:
        return HXD_FAIL_QUERY;
    case PH_REQUEST:
        return HXD_FAIL_REQUEST;
    case PH_WAIT_RESP:
        return HXD_FAIL_WAIT_RESP;
    case PH_CHECK_RESP:
        return HXD_FAIL_CHECK_RESP;
    case PH_FINISH:
        return HXD_FAIL_FINISH;
    case PH_WAIT_ACK:
        return HXD_FAIL_WAIT_ACK;
    case PH_SETTLE:
        return HXD_FAIL_SETTLE;
    default:
        return HXD_FAIL_OTHER;
    }
}

/*
 * A batch failed: reports it and frees its worker at once; the stream makes no new batch for
 * a second (hxd_streams_tick kicks it then). Failing streams (a cut link) must not starve the
 * others (tests/integration/fault_test.py link_cut_between_two_nodes_then_healed).
 */
static enum phase fail(struct run *r)
{
    struct hxd *d = r->d;
    struct hxd_stream *s;

    /* false: closed meanwhile, nothing to report */
    if (hxd_init_fail_stream(d, &r->ksid, r->status,
                             r->msg[0] ? r->msg : "key production failed")) {
        hxd_metrics_batch_failed(&d->metrics, fail_cause(r->failed_in));
    }
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &r->ksid)) != NULL) {
        if (!s->peer_closed) {
            s->retry_at = hx_deadline_in_ms(HXD_RETRY_BACKOFF_MS);
        }
        hxd_init_batch_done(d, s, r->first, r->count, false);
    }
    pthread_mutex_unlock(&d->lock);
    return PH_DONE;
}

static enum phase (*const phases[PH_DONE])(struct run *) = {
    [PH_PICK] = pick,           [PH_QUERY] = query,           [PH_REQUEST] = request,
    [PH_WAIT_RESP] = wait_resp, [PH_CHECK_RESP] = check_resp, [PH_FINISH] = finish,
    [PH_WAIT_ACK] = wait_ack,   [PH_SETTLE] = settle_phase,   [PH_ABORT] = abort_batch,
    [PH_FAIL] = fail,
};

void hxd_initiator_run(struct hxd *d, const struct hx_uuid *ksid)
{
    struct run r;
    enum phase ph = PH_PICK;

    memset(&r, 0, sizeof(r));
    r.d = d;
    r.ksid = *ksid;
    r.ack = -1;
    r.status = HYKEX_STATUS_NO_QKD_CONNECTION;
    hx_writer_init_dynamic(&r.w, HX_LINK_MAX_KEM_FRAME); /* BATCH_REQ: public keys */
    while (ph != PH_DONE) {
        enum phase next = phases[ph](&r);
        if ((next == PH_ABORT || next == PH_FAIL) && ph != PH_ABORT) {
            r.failed_in = ph;
        }
        ph = next;
    }
    free(r.resp);
    hx_writer_wipe(&r.w);
    hxd_batch_free(&r.b);
    OPENSSL_cleanse(r.ak, sizeof(r.ak));
}

void hxd_initiator_job(struct hxd *d, struct hxd_job *j)
{
    if (j->type == HX_PEER_QKD_REOPEN) { /* KME recovery: one attempt (qkd_recover.c) */
        hxd_qkd_reopen_run(d, &j->ksid);
        return;
    }
    if (j->type == HX_PEER_RELAY_REPATH) { /* a relayed QKD stream's new path (relay_repath.c) */
        hxd_repath_run(d, &j->ksid);
        return;
    }
    hxd_initiator_run(d, &j->ksid);
}
