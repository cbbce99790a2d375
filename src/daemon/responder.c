/*
 * The responder's side of a batch (docs/peer-protocol.md "Batches"), run by the responder pool
 * (which never waits on the network, so two nodes' initiators cannot starve each other):
 *
 *   BATCH_REQ    QKD keys, encapsulations, combine, sign T -> BATCH_RESP; the keys wait in a
 *                pending slot for the initiator's BATCH_FIN
 *   BATCH_FIN    verify, commit: the store first (outside the lock), then the stream, then
 *                the ACK, so an ACK always means the batch is durable here
 *   BATCH_QUERY  "did you commit this batch?", answered once and for all
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "daemon/batch.h"

/*
 * The pending slot for a new try of the batch at first (lock held). The slot of an earlier
 * try of these positions (a retry replaces it), else a free slot, else the oldest (its
 * initiator gave up on it); NULL while a commit of these positions runs. Only a full table
 * evicts: a retry after a lost link must not overwrite another batch's pending keys (it did
 * once, and that batch's BATCH_FIN then found nothing to commit).
 */
static struct hxd_pending *pending_slot_for(struct hxd_stream *s, uint64_t first)
{
    struct hxd_pending *same = NULL, *free_slot = NULL, *oldest = NULL;

    for (size_t i = 0; i < HXD_PIPELINE; i++) {
        struct hxd_pending *p = &s->pending[i];
        if (p->busy) {
            if (p->first == first) {
                return NULL;
            }
            continue;
        }
        if (p->keys != NULL && p->first == first) {
            same = p;
        } else if (p->keys == NULL && free_slot == NULL) {
            free_slot = p;
        } else if (p->keys != NULL && (oldest == NULL || p->first < oldest->first)) {
            oldest = p;
        }
    }
    return same != NULL ? same : free_slot != NULL ? free_slot : oldest;
}

/*
 * A pending batch sharing a position with first..+count (lock held), or NULL. A BATCH_QUERY's
 * range is a run of the initiator's prepared rows, not always one batch.
 */
static struct hxd_pending *pending_overlapping(struct hxd_stream *s, uint64_t first, uint32_t count)
{
    for (size_t i = 0; i < HXD_PIPELINE; i++) {
        struct hxd_pending *p = &s->pending[i];
        if ((p->keys != NULL || p->busy) && p->first < first + count &&
            first < p->first + p->count) {
            return p;
        }
    }
    return NULL;
}

/* The pending batch at first (lock held), or NULL. */
static struct hxd_pending *pending_of(struct hxd_stream *s, uint64_t first, uint32_t count)
{
    for (size_t i = 0; s != NULL && i < HXD_PIPELINE; i++) {
        if ((s->pending[i].keys != NULL || s->pending[i].busy) && s->pending[i].first == first &&
            s->pending[i].count == count) {
            return &s->pending[i];
        }
    }
    return NULL;
}

static void free_keys(struct hx_secret **keys, uint32_t count)
{
    for (uint32_t i = 0; keys != NULL && i < count; i++) {
        hx_secret_free(keys[i]);
    }
    free(keys);
}

/* BATCH_RESP refusing a batch: an ETSI status (or POSITIONS_LOST) and why. */
static void send_refusal(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid,
                         uint64_t first, uint32_t count, uint32_t status, const char *msg)
{
    struct hx_peer_resp m;
    uint8_t buf[HX_PEER_BATCH_HEAD + 2 + HX_PEER_MAX_RESP_MSG];
    struct hx_writer w;

    memset(&m, 0, sizeof(m));
    m.ksid = *ksid;
    m.first = first;
    m.count = count;
    m.status = status;
    snprintf(m.msg, sizeof(m.msg), "%s", msg);
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    if (hx_peer_encode_resp(&w, &m) == HX_OK) {
        hx_ignore(hxd_send(d, peer, HX_PEER_BATCH_RESP, buf, w.len));
    }
}

static void send_ack(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid,
                     uint64_t first, uint32_t status)
{
    struct hx_peer_ack m = {.ksid = *ksid, .first = first, .status = status};
    uint8_t out[16 + 8 + 4];
    struct hx_writer w;

    hx_writer_init_fixed(&w, out, sizeof(out));
    if (hx_peer_encode_ack(&w, &m) == HX_OK) {
        hx_ignore(hxd_send(d, peer, HX_PEER_BATCH_ACK, out, w.len));
    }
}

/* BATCH_AUTH: the committed signed batch at anchor gave this node its key (batch_auth.c). */
static void send_auth(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid,
                      uint64_t anchor, const uint8_t ak[32])
{
    uint8_t confirm[32], out[16 + 8 + 32];
    struct hx_peer_auth m = {.ksid = *ksid, .anchor = anchor, .confirm = confirm};
    struct hx_writer w;

    hx_writer_init_fixed(&w, out, sizeof(out));
    if (hxd_auth_mac(ak, HXD_CTX_AUTH, anchor, NULL, confirm) == HX_OK &&
        hx_peer_encode_auth(&w, &m) == HX_OK) {
        hx_ignore(hxd_send(d, peer, HX_PEER_BATCH_AUTH, out, w.len));
    }
}

/*
 * BATCH_REQ, first step (takes the lock): may this peer have a batch of this stream made?
 * true with b initialised from the stream; false when it was answered (or not worth it).
 */
static bool req_admit(struct hxd *d, const struct hx_uuid *peer, const struct hx_peer_head *h,
                      struct hxd_batch *b)
{
    struct hxd_stream *s;
    char id[HX_UUID_STR_LEN + 1];
    hx_err e;

    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, &h->ksid);
    /* Only the stream's own peer may touch its positions. */
    if (s != NULL && s->role == HXD_RESPONDER && hx_uuid_equal(&s->peer, peer) &&
        hxd_batch_any_committed(s, h->first, h->count)) {
        hxd_batch_give_up(s, h->first, h->count);
        pthread_cond_broadcast(&d->changed);
        hxd_stream_wake(d, s);
        pthread_mutex_unlock(&d->lock);
        hxd_batch_store_give_up(d, &h->ksid, h->first, h->count);
        hx_uuid_format(&h->ksid, id);
        hx_warn("positions asked again after a lost ACK: given up at both nodes",
                HX_F_STR("stream", id) HX_F_U64("first", h->first) HX_F_U64("count", h->count));
        send_refusal(d, peer, &h->ksid, h->first, h->count, HX_PEER_RESP_POSITIONS_LOST,
                     "positions committed earlier at the responder; given up at both nodes");
        return false;
    }
    if (s == NULL || s->role != HXD_RESPONDER || !hx_uuid_equal(&s->peer, peer) || !s->app_open) {
        pthread_mutex_unlock(&d->lock);
        send_refusal(d, peer, &h->ksid, h->first, h->count, HYKEX_STATUS_PEER_NOT_CONNECTED_GET,
                     "stream not open at the responder");
        return false;
    }
    e = hxd_batch_init(b, d, s, h->first, h->count);
    b->qkd_mode = hxd_batch_qkd_mode(d, s);
    pthread_mutex_unlock(&d->lock);
    return e == HX_OK;
}

/* BATCH_REQ, second step: the request checked against this node's own settings. */
static bool req_accept(struct hxd *d, const struct hx_peer_req *m, struct hxd_batch *b, char *msg,
                       size_t msg_len)
{
    if (m->qkd_mode != b->qkd_mode) {
        snprintf(msg, msg_len, "the nodes reach their KMEs with different QKD protocols");
        return false;
    }
    /* One KEM key pair per batch only if this node allows it too (kem.key_pairs). */
    if (m->key_pairs == HX_PEER_KEY_PAIRS_PER_BATCH &&
        d->cfg.kem_key_pairs != HXD_KEY_PAIRS_PER_BATCH) {
        snprintf(msg, msg_len,
                 "the responder requires a fresh KEM key pair per position "
                 "(kem.key_pairs differs between the nodes)");
        return false;
    }
    b->qkd_first = m->qkd_first;
    b->key_pairs = m->key_pairs;
    if (m->qkd_ids != NULL) {
        if ((b->qkd_ids = calloc(m->count, sizeof(*b->qkd_ids))) == NULL) {
            snprintf(msg, msg_len, "out of memory");
            return false;
        }
        memcpy(b->qkd_ids, m->qkd_ids, (size_t)m->count * HX_PEER_QKD_ID_LEN);
    }
    return true;
}

/* How a BATCH_REQ is authenticated here (batch_auth.c). */
struct req_auth {
    bool mac; /* by MACs under ak (the key of the batch at anchor) */
    uint64_t anchor;
    uint64_t serial; /* the direct link the request came on; 0: over relays */
    uint8_t ak[32];
    uint8_t mac_i[32];       /* the initiator's MAC its BATCH_FIN must carry */
    struct hx_secret *offer; /* signed: the key this batch gives once committed */
};

/* A MAC-authenticated BATCH_REQ: the key of its anchor, held for the link it came on (takes the
 * lock). false: none (this node restarted, the link was made again, or it came over relays:
 * serial 0). */
static bool req_auth_key(struct hxd *d, const struct hxd_batch *b, struct req_auth *a)
{
    struct hxd_stream *s;
    bool ok = false;

    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &b->s.ksid)) != NULL) {
        ok = hxd_auth_find(s, a->anchor, a->serial, a->ak);
    }
    pthread_mutex_unlock(&d->lock);
    return ok;
}

/*
 * The responder's authentication of BATCH_RESP (into sig) and what it expects of BATCH_FIN:
 * MACs under the anchor's key, or its signature; a signed batch over a direct link also
 * derives the key it offers once committed.
 */
static hx_err req_authenticate(struct hxd *d, const struct hx_uuid *peer, struct hxd_batch *b,
                               struct req_auth *a, uint8_t *sig, size_t cap, size_t *sig_len)
{
    uint8_t ak[32];
    hx_err e;

    if (a->mac) {
        if ((e = hxd_auth_mac(a->ak, HXD_CTX_RESP, a->anchor, b->T, sig)) != HX_OK ||
            (e = hxd_auth_mac(a->ak, HXD_CTX_INIT, a->anchor, b->T, a->mac_i)) != HX_OK) {
            return e;
        }
        *sig_len = 32;
        return HX_OK;
    }
    if ((e = hxd_sign(d, peer, HXD_CTX_RESP, b->T, sizeof(b->T), sig, cap, sig_len)) != HX_OK) {
        return e;
    }
    /* peer.batch_macs false: no key offered, so the peer signs every batch (and a MACed one is
     * refused: no key is held here) */
    if (a->serial != 0 && hxd_auth_offers(d, b) && hxd_auth_derive(d, b, ak) == HX_OK) {
        hx_ignore(hx_secret_from(ak, sizeof(ak), &a->offer)); /* none: this batch offers none */
    }
    OPENSSL_cleanse(ak, sizeof(ak));
    return HX_OK;
}

/* BATCH_REQ, last step: the keys wait in a pending slot, BATCH_RESP goes (lock taken). */
static void req_pend(struct hxd *d, const struct hx_uuid *peer, struct hxd_batch *b,
                     const uint8_t tag_i[32], struct req_auth *a, struct hx_writer *w,
                     size_t sig_len)
{
    struct hxd_stream *s;
    struct hxd_pending *pd;

    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &b->s.ksid)) == NULL) {
        pthread_mutex_unlock(&d->lock);
        return;
    }
    if ((pd = pending_slot_for(s, b->first)) == NULL) {
        pthread_mutex_unlock(&d->lock);
        send_refusal(d, peer, &b->s.ksid, b->first, b->count, HYKEX_STATUS_NO_QKD_CONNECTION,
                     "responder busy committing these positions");
        return;
    }
    hxd_pending_drop(pd);
    pd->first = b->first;
    pd->count = b->count;
    memcpy(pd->transcript, b->T, 32);
    memcpy(pd->tag_i, tag_i, 32);
    pd->mac = a->mac;
    pd->anchor = a->anchor;
    memcpy(pd->mac_i, a->mac_i, 32);
    pd->auth_key = a->offer; /* the slot owns it now */
    a->offer = NULL;
    pd->auth_serial = a->serial;
    pd->keys = b->keys;
    b->keys = NULL;
    hxd_batch_note_hops(s, b); /* the path its keys travelled (metadata.hops) */
    hxd_fault_alter(d, HX_PEER_BATCH_RESP, w, sig_len); /* under d->lock: it keeps the last */
    pthread_mutex_unlock(&d->lock);
    hx_ignore(hxd_send(d, peer, HX_PEER_BATCH_RESP, w->data, w->len));
}

void hxd_responder_on_req(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p, size_t len)
{
    struct hx_peer_head h;
    struct hx_peer_req m;
    struct hx_peer_resp resp;
    struct hxd_batch b;
    struct hx_writer w;
    struct req_auth a;
    uint8_t tag_r[32], tag_i[32], sig[HX_SIG_MAX_SIGNATURE];
    size_t sig_len = 0;
    char msg[200] = "";
    int status = HYKEX_STATUS_NO_QKD_CONNECTION;

    memset(&b, 0, sizeof(b));
    memset(&a, 0, sizeof(a));
    hx_writer_init_dynamic(&w, HX_LINK_MAX_FRAME);
    if (hx_peer_decode_head(HX_PEER_BATCH_REQ, p, len, &h) != HX_OK) {
        hx_warn("malformed BATCH_REQ from a peer", HX_NOFIELDS);
        goto out;
    }
    if (!req_admit(d, peer, &h, &b)) {
        goto out;
    }
    if (hx_peer_decode_req(p, len, &m) != HX_OK) {
        snprintf(msg, sizeof(msg), "malformed BATCH_REQ");
        goto refuse;
    }
    if (!req_accept(d, &m, &b, msg, sizeof(msg))) {
        goto refuse;
    }
    hxd_batch_path_arrived(d, &b, peer); /* relayed: the transcript binds the path */
    a.serial = b.path.hops >= 2 ? 0 : hxd_direct_serial(d, peer);
    a.mac = m.mac;
    a.anchor = m.anchor;
    if (a.mac && !req_auth_key(d, &b, &a)) {
        /* before the KME is asked: the initiator makes the positions again, signed */
        status = HX_PEER_RESP_AUTH_UNKNOWN;
        snprintf(msg, sizeof(msg),
                 "responder holds no authentication key of the batch at %" PRIu64
                 " on this link: sign the batch",
                 m.anchor);
        goto refuse;
    }
    if (hxd_source_fetch_qkd(d, &b, &status, msg, sizeof(msg)) != HX_OK) {
        goto refuse;
    }
    status = HYKEX_STATUS_NO_QKD_CONNECTION;
    if (hxd_source_encaps(&b, m.kem[0].p, m.kem[0].len, msg, sizeof(msg)) != HX_OK) {
        goto refuse;
    }
    hxd_batch_transcript(&b);
    memset(&resp, 0, sizeof(resp));
    resp.ksid = h.ksid;
    resp.first = h.first;
    resp.count = h.count;
    resp.status = HX_PEER_RESP_OK;
    resp.n_kem = hxd_source_parts(&b, true, resp.kem);
    if (hxd_batch_combine(d, &b) != HX_OK || hxd_batch_tag(&b, "responder", tag_r) != HX_OK ||
        hxd_batch_tag(&b, "initiator", tag_i) != HX_OK ||
        req_authenticate(d, peer, &b, &a, sig, sizeof(sig), &sig_len) != HX_OK ||
        sig_len > UINT16_MAX) {
        snprintf(msg, sizeof(msg), "responder could not combine or sign the batch");
        goto refuse;
    }
    resp.sig = (struct hx_peer_signed){sig, (uint16_t)sig_len, tag_r};
    if (hx_peer_encode_resp(&w, &resp) != HX_OK) {
        snprintf(msg, sizeof(msg), "responder could not combine or sign the batch");
        goto refuse;
    }
    /* Keep the keys until BATCH_FIN proves the initiator derived the same. */
    req_pend(d, peer, &b, tag_i, &a, &w, sig_len);
    goto out;
refuse:
    send_refusal(d, peer, &h.ksid, h.first, h.count, (uint32_t)status,
                 msg[0] != '\0' ? msg : "responder could not make the batch");
out:
    hx_secret_free(a.offer);
    OPENSSL_cleanse(&a, sizeof(a));
    hx_writer_wipe(&w);
    hxd_batch_free(&b);
}

/* Commits a verified batch (lock held): the keys move into the stream, the ACK is queued. */
static void fin_commit(struct hxd *d, const struct hx_uuid *peer, struct hxd_stream *s,
                       struct hxd_pending *pend)
{
    hxd_batch_commit(s, pend->first, pend->count, pend->keys);
    d->batches_ok++;
    hxd_metrics_batch_auth(&d->metrics, pend->mac);
    hxd_metrics_produced(&d->metrics, &s->peer, pend->count);
    /* Queue the ACK before the lock goes: the application may take a key and CLOSE at once,
     * and the peer must see the ACK before that STREAM_CLOSE. */
    if (hxd_fault_drop_ack(d)) {
        hx_warn("fault injection: link dropped instead of sending BATCH_ACK", HX_NOFIELDS);
        hx_links_drop(d->links, peer);
    } else if (!hxd_fault_mute_ack(d, pend->first)) {
        send_ack(d, peer, &s->ksid, pend->first, HX_PEER_ACK_COMMITTED);
        /* signed over a direct link: its key, announced after the ACK once it is held */
        if (pend->auth_key != NULL &&
            hxd_auth_install(s, pend->first, pend->auth_serial, hx_secret_data(pend->auth_key))) {
            send_auth(d, peer, &s->ksid, pend->first, hx_secret_data(pend->auth_key));
        }
    }
    hxd_window_announce(d, s, true); /* an initiator that restarted learns it again */
}

/* The initiator's BATCH_FIN carries the MAC or signature its batch's BATCH_REQ called for. */
static bool fin_authentic(struct hxd *d, const struct hx_uuid *peer, const struct hxd_pending *pend,
                          const struct hx_peer_signed *sig)
{
    if (pend->mac) {
        return sig->sig_len == sizeof(pend->mac_i) &&
               hx_ct_equal(sig->sig, pend->mac_i, sizeof(pend->mac_i));
    }
    return hxd_batch_verify_peer(d, peer, HXD_CTX_INIT, pend->transcript, sig) == HX_OK;
}

/* BATCH_FIN, decoded; one whose commit lacks a valid signature and tag is an abort. */
static bool fin_decode(const uint8_t *p, size_t len, struct hx_peer_fin *m)
{
    struct hx_peer_head h;

    if (hx_peer_decode_fin(p, len, m) == HX_OK) {
        return true;
    }
    if (hx_peer_decode_head(HX_PEER_BATCH_FIN, p, len, &h) != HX_OK) {
        hx_warn("malformed BATCH_FIN from a peer", HX_NOFIELDS);
        return false;
    }
    memset(m, 0, sizeof(*m));
    m->ksid = h.ksid;
    m->first = h.first;
    m->count = h.count;
    m->status = h.status != HX_PEER_FIN_COMMIT ? h.status : HX_PEER_FIN_ABORT;
    return true;
}

/*
 * BATCH_FIN: the initiator holds the batch prepared (durably when it has a store). Commit: the
 * keys go into the store, then into the stream, then the ACK. The pending slot stays, marked
 * busy, until the outcome is known, so that a BATCH_QUERY for it waits for the answer.
 */
void hxd_responder_on_fin(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p, size_t len)
{
    struct hx_peer_fin m;
    struct hxd_stream *s;
    struct hxd_pending *pd, pend;
    uint32_t ack = HX_PEER_ACK_NOT_COMMITTED;
    char id[HX_UUID_STR_LEN + 1];
    hx_err e;

    if (!fin_decode(p, len, &m)) {
        return;
    }
    hx_uuid_format(&m.ksid, id);
    pthread_mutex_lock(&d->lock);
    if (hxd_fault_lose_fin(d, m.first)) {
        pthread_mutex_unlock(&d->lock);
        return;
    }
    s = hxd_stream_find(d, &m.ksid);
    if ((pd = pending_of(s, m.first, m.count)) == NULL || pd->busy ||
        !hx_uuid_equal(&s->peer, peer)) {
        /* Nothing pending for it (evicted, or settled by a BATCH_QUERY): "not committed" at
         * once, so that the initiator makes the positions again instead of waiting for an ACK
         * that would never come. Committed positions get no answer: the query settles them. */
        bool refuse = pd == NULL && m.status == HX_PEER_FIN_COMMIT && s != NULL &&
                      s->role == HXD_RESPONDER && hx_uuid_equal(&s->peer, peer) &&
                      !hxd_batch_any_committed(s, m.first, m.count);
        pthread_mutex_unlock(&d->lock);
        if (refuse) {
            hx_info("BATCH_FIN for a batch not pending here; the peer makes it again",
                    HX_F_STR("stream", id) HX_F_U64("first", m.first));
            send_ack(d, peer, &m.ksid, m.first, HX_PEER_ACK_NOT_COMMITTED);
        }
        return;
    }
    pd->busy = true;
    pend = *pd; /* the keys are ours now; the slot only says a commit is running */
    pd->keys = NULL;
    pd->auth_key = NULL;
    pthread_mutex_unlock(&d->lock);
    if (m.status != HX_PEER_FIN_COMMIT) {
        hx_warn("peer aborted a key batch", HX_F_STR("stream", id) HX_F_U64("first", m.first));
    } else if (!fin_authentic(d, peer, &pend, &m.sig)) {
        hx_warn(pend.mac ? "peer's batch MAC does not verify; batch discarded"
                         : "peer's batch signature does not verify; batch discarded",
                HX_F_STR("stream", id) HX_F_U64("first", m.first));
        if (pend.mac) { /* its key is done with: the initiator signs again (status 1001) */
            hxd_auth_drop(d, &m.ksid, pend.anchor);
        }
    } else if (!hx_ct_equal(m.sig.tag, pend.tag_i, 32)) {
        hx_warn("key confirmation failed; batch discarded",
                HX_F_STR("stream", id) HX_F_U64("first", m.first));
        pthread_mutex_lock(&d->lock);
        d->confirm_mismatch++;
        pthread_mutex_unlock(&d->lock);
    } else if (d->store != NULL &&
               (e = hx_store_put_batch(d->store, &m.ksid, m.first, m.count, pend.keys,
                                       HX_STORE_READY, 0)) != HX_OK) {
        if (e != HX_ERR_NOT_FOUND) { /* not found: the stream was closed meanwhile */
            hxd_batch_store_failed(d, "store: committing a batch failed", &m.ksid, m.first, e);
        }
    } else {
        ack = HX_PEER_ACK_COMMITTED;
    }
    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, &m.ksid);
    pd = pending_of(s, m.first, m.count);
    if (ack == HX_PEER_ACK_COMMITTED && pd != NULL) {
        fin_commit(d, peer, s, &pend);
        hxd_stream_wake(d, s); /* its keys are ready */
    } else if (s != NULL) {
        s->failed_batches++;
    }
    if (pd != NULL) {
        hxd_pending_drop(pd);
    }
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
    free_keys(pend.keys, pend.count); /* wipes what the commit did not take */
    hx_secret_free(pend.auth_key);
    OPENSSL_cleanse(&pend, sizeof(pend));
    if (ack != HX_PEER_ACK_COMMITTED) {
        send_ack(d, peer, &m.ksid, m.first, ack);
    }
}

/*
 * BATCH_QUERY: the initiator holds a batch prepared but never saw our ACK. The answer is final:
 * every pending (uncommitted) batch sharing a position with the range is dropped first, so that
 * a BATCH_FIN arriving later cannot commit it; one being committed right now is waited for.
 * "Committed" only when every position is, "not committed" only when none is.
 */
void hxd_responder_on_query(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p, size_t len)
{
    struct hx_peer_query m;
    struct hxd_stream *s;
    struct hxd_pending *pd;
    enum hxd_committed held = HXD_COMMITTED_NONE;

    if (hx_peer_decode_query(p, len, &m) != HX_OK) {
        hx_warn("malformed BATCH_QUERY from a peer", HX_NOFIELDS);
        return;
    }
    pthread_mutex_lock(&d->lock);
    hxd_fault_query_seen(d);
    for (;;) {
        s = hxd_stream_find(d, &m.ksid);
        if (s == NULL || !hx_uuid_equal(&s->peer, peer) || s->role != HXD_RESPONDER) {
            s = NULL;
            break;
        }
        if ((pd = pending_overlapping(s, m.first, m.count)) == NULL) {
            break;
        }
        if (!pd->busy) {
            hxd_pending_drop(pd);
            continue; /* the next one of the range, if any */
        }
        pthread_cond_wait(&d->changed, &d->lock); /* the commit broadcasts when it ends */
    }
    if (s != NULL) {
        held = hxd_batch_committed_of(s, m.first, m.count);
    }
    pthread_mutex_unlock(&d->lock);
    /* Part of the range: neither answer is true of every position, so the initiator asks
     * again in smaller pieces (after its restart it no longer knows its batches' bounds). */
    send_ack(d, peer, &m.ksid, m.first,
             held == HXD_COMMITTED_ALL    ? HX_PEER_ACK_COMMITTED
             : held == HXD_COMMITTED_PART ? HX_PEER_ACK_PART_COMMITTED
                                          : HX_PEER_ACK_NOT_COMMITTED);
}

void hxd_responder_job(struct hxd *d, struct hxd_job *j)
{
    /* j->ksid holds the peer; the message names the stream */
    if (j->type == HX_PEER_BATCH_REQ) {
        hxd_responder_on_req(d, &j->ksid, j->msg, j->len);
    } else if (j->type == HX_PEER_BATCH_QUERY) {
        hxd_responder_on_query(d, &j->ksid, j->msg, j->len);
    } else {
        hxd_responder_on_fin(d, &j->ksid, j->msg, j->len);
    }
}
