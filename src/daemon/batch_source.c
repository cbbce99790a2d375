/*
 * Where a batch's secrets come from (docs/peer-protocol.md 1-2): the QKD keys from this node's
 * KME, and the KEM sources behind one loop. Each KEM step (key generation at the initiator,
 * encapsulation at the responder, decapsulation back at the initiator) is one small function
 * run for every KEM source in key_sources order, as OpenSSH's kexgen.c drives its per-method
 * files; X25519 is a KEM here (its "ciphertext" is an ephemeral public key).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/batch.h"
#include "daemon/relay.h"

/* ---- QKD ---- */

/* ETSI 014: enc_keys at the initiator (ids into the batch), dec_keys at the responder. */
static hx_err fetch_014(struct hxd *d, struct hxd_batch *b, int *status, char *msg, size_t msg_len)
{
    size_t kb = d->cfg.qkd_key_bytes;
    double t0 = hx_monotime();
    hx_err e;

    if (b->s.peer_sae[0] == '\0' || d->cfg.qkd_sae_id[0] == '\0') {
        snprintf(msg, msg_len, "QKD source (014): the peer node has no SAE id");
        *status = HYKEX_STATUS_NO_QKD_CONNECTION;
        return HX_ERR_CONFIG;
    }
    if (b->s.role == HXD_INITIATOR) {
        if ((b->qkd_ids = calloc(b->count, sizeof(*b->qkd_ids))) == NULL) {
            return HX_ERR_NOMEM;
        }
        e = hx_qkd014_enc(&d->qkd014, b->s.peer_sae, b->count, kb, b->qkd, b->qkd_ids, msg,
                          msg_len);
    } else {
        e = hx_qkd014_dec(&d->qkd014, b->s.peer_sae, b->qkd_ids, b->count, kb, b->qkd, msg,
                          msg_len);
    }
    hxd_metrics_kme(&d->metrics, b->s.role == HXD_INITIATOR ? HXD_KME_ENC_KEYS : HXD_KME_DEC_KEYS,
                    t0, e == HX_OK);
    if (e != HX_OK) {
        *status =
            e == HX_ERR_NO_KEY ? HYKEX_STATUS_INSUFFICIENT_KEY : HYKEX_STATUS_NO_QKD_CONNECTION;
        return e;
    }
    for (uint32_t i = 0; i < b->count; i++) {
        uint8_t acc = 0;
        for (size_t k = 0; k < kb; k++) {
            acc |= b->qkd[i * kb + k];
        }
        if (acc == 0) {
            snprintf(msg, msg_len, "QKD source (014): the KME returned an all-zero key");
            *status = HYKEX_STATUS_INSUFFICIENT_KEY;
            return HX_ERR_NO_KEY;
        }
    }
    return HX_OK;
}

/* The responder of a stream over relays (docs/relay.md "QKD part"): b->qkd holds the relays'
 * accumulator (the first link's keys XOR this node's link's); this node's keys at the index the
 * last relay used recover the first link's, the batch's QKD secret at both ends. */
static hx_err fetch_relayed(struct hxd *d, struct hxd_batch *b, uint64_t index, int *status,
                            char *msg, size_t msg_len)
{
    uint8_t *own = hx_secure_alloc(b->qkd_len);
    uint32_t st = 0, done = 0;
    hx_err e;

    *status = HYKEX_STATUS_NO_QKD_CONNECTION;
    if (own == NULL) {
        return HX_ERR_NOMEM;
    }
    if (index + b->count > UINT32_MAX) {
        snprintf(msg, msg_len, "QKD source: relayed index beyond the KME's index range");
        hx_secure_free(own, b->qkd_len);
        return HX_ERR_STATE;
    }
    e = hx_qkd_get_many(&d->qkd, &b->s.qkd_ksid, (uint32_t)index, b->count, own,
                        d->cfg.qkd_key_bytes, &done, &st, msg, msg_len);
    if (e == HX_OK && st == 0) {
        for (size_t i = 0; i < b->qkd_len; i++) {
            b->qkd[i] ^= own[i];
        }
        b->qkd_done = b->count;
    } else if (msg[0] == '\0') {
        snprintf(msg, msg_len, "QKD source: status %u for relayed index %" PRIu64, st,
                 index + done);
    }
    hx_secure_free(own, b->qkd_len);
    return e != HX_OK ? e : st != 0 ? HX_ERR_NO_KEY : HX_OK;
}

/* ETSI 004: GET_KEY by index, a batch on one connection where the dialect allows it. */
static hx_err fetch_004(struct hxd *d, struct hxd_batch *b, int *status, char *msg, size_t msg_len)
{
    uint32_t st = 0, done = 0;
    double t0 = hx_monotime();
    uint64_t relayed;
    hx_err e;

    if (b->qkd_first + b->count > UINT32_MAX) {
        snprintf(msg, msg_len, "QKD source: position beyond the KME's index range");
        *status = HYKEX_STATUS_INSUFFICIENT_KEY;
        return HX_ERR_STATE;
    }
    if (b->s.role == HXD_RESPONDER &&
        hxd_relay_qkd_material(d, &b->s.ksid, &b->s.peer, b->first, &relayed, b->qkd, b->qkd_len)) {
        return fetch_relayed(d, b, relayed, status, msg, msg_len);
    }
    e = hx_qkd_get_many(&d->qkd, &b->s.qkd_ksid, (uint32_t)b->qkd_first, b->count, b->qkd,
                        d->cfg.qkd_key_bytes, &done, &st, msg, msg_len);
    hxd_metrics_kme(&d->metrics, HXD_KME_GET_KEY, t0, e == HX_OK && st == 0);
    b->qkd_done = done;
    if (e == HX_OK && st == 0) {
        return HX_OK;
    }
    hx_info(e == HX_OK && st == 2 ? "QKD key not there yet: asked again at the same index"
                                  : "QKD key refused",
            HX_F_STR("qkd_stream", b->s.qkd_ksid.s) HX_F_U64("index", b->qkd_first + done)
                HX_F_U64("status", st)
                    HX_F_STR("role", b->s.role == HXD_INITIATOR ? "initiator" : "responder"));
    /* 3: the peer application is not connected at the KME (it has closed there: batches start
     * only once it joined), passed on as such (hxd_init_fail_stream waits for its close) */
    *status = st == 2   ? HYKEX_STATUS_INSUFFICIENT_KEY
              : st == 3 ? HYKEX_STATUS_PEER_NOT_CONNECTED_GET
                        : HYKEX_STATUS_NO_QKD_CONNECTION;
    if (msg[0] == '\0') {
        snprintf(msg, msg_len, "QKD source: status %u for index %" PRIu64, st, b->qkd_first + done);
    }
    if ((e >= HX_ERR_IO && e <= HX_ERR_IO_NOT_FOUND) ||
        (e == HX_OK && st == HYKEX_STATUS_NO_QKD_CONNECTION)) {
        /* The KME is away, or answers that the stream is not open there (it restarted): the
         * stream reopens it (qkd_recover.c); the message names the KME. */
        struct hxd_stream *s;
        pthread_mutex_lock(&d->lock);
        if ((s = hxd_stream_find(d, &b->s.ksid)) != NULL) {
            hxd_qkd_lost(d, s, msg);
            if (s->qkd_lost) {
                snprintf(msg, msg_len, "%s", s->fail_msg);
            }
        }
        pthread_mutex_unlock(&d->lock);
    }
    return e != HX_OK ? e : HX_ERR_NO_KEY;
}

/*
 * QKD indices this stream took for a batch but did not spend, because the KME had no key there
 * yet (status 2, an all-zero key): given back, so that the same indices are asked again and
 * never run ahead of what the KME can give (lock held). Full list: they are skipped.
 */
void hxd_qkd_give_back(struct hxd_stream *s, uint64_t first, uint32_t count)
{
    size_t i;

    if (count == 0) {
        return;
    }
    if (s->qkd_next == first + count) {
        s->qkd_next = first;
        /* ranges given back earlier that now end at the top go back too */
        while (s->n_qkd_free > 0 &&
               s->qkd_free[s->n_qkd_free - 1].first + s->qkd_free[s->n_qkd_free - 1].count ==
                   s->qkd_next) {
            s->qkd_next = s->qkd_free[--s->n_qkd_free].first;
        }
        return;
    }
    if (s->n_qkd_free == sizeof(s->qkd_free) / sizeof(s->qkd_free[0])) {
        return;
    }
    for (i = s->n_qkd_free; i > 0 && s->qkd_free[i - 1].first > first; i--) {
        s->qkd_free[i] = s->qkd_free[i - 1];
    }
    s->qkd_free[i].first = first;
    s->qkd_free[i].count = count;
    s->n_qkd_free++;
}

/* The QKD range for a batch of *count positions (lock held): the lowest range given back (and
 * *count cut to it when it is shorter, if may_cut), else fresh indices. */
uint64_t hxd_qkd_take(struct hxd_stream *s, uint32_t *count, bool may_cut)
{
    uint64_t q = s->qkd_next;

    if (s->n_qkd_free > 0 && (may_cut || s->qkd_free[0].count >= *count)) {
        q = s->qkd_free[0].first;
        if (s->qkd_free[0].count <= *count) {
            *count = s->qkd_free[0].count;
            memmove(&s->qkd_free[0], &s->qkd_free[1], --s->n_qkd_free * sizeof(s->qkd_free[0]));
        } else {
            s->qkd_free[0].first += *count;
            s->qkd_free[0].count -= *count;
        }
        return q;
    }
    s->qkd_next += *count;
    return q;
}

/*
 * The initiator with the durable store reserves its ETSI 004 QKD indices in the store before
 * the KME hands them out, 4 x HXD_PIPELINE batches (of the current batch's size, grown ones
 * included) ahead at a time (one write per twelve batches), so that a node killed at any moment,
 * even twice in a row before any batch of its was prepared, never asks for an index again: the KME
 * serves each index once, and refuses it for good after (tests/integration/fault_test.py
 * kill9_initiator_and_responder_mid_production). The margin hykexd adds to qkd_next at a restart
 * (persist.c) covers stores written before.
 */
static hx_err reserve_qkd(struct hxd *d, struct hxd_batch *b, char *msg, size_t msg_len)
{
    struct hxd_stream *s;
    uint64_t end = b->qkd_first + b->count, upto = 0;
    hx_err e;

    if (d->store == NULL || b->s.role != HXD_INITIATOR || b->qkd_mode != HX_PEER_QKD_004) {
        return HX_OK;
    }
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &b->s.ksid)) != NULL && end > s->qkd_reserved) {
        /* twelve batches of this one's size ahead (at least limits.batch_size) */
        upto = end + 4 * HXD_PIPELINE *
                         (uint64_t)(b->count > d->cfg.batch_size ? b->count : d->cfg.batch_size);
    }
    pthread_mutex_unlock(&d->lock);
    if (upto == 0) {
        return HX_OK;
    }
    if ((e = hx_store_reserve_qkd(d->store, &b->s.ksid, upto)) != HX_OK) {
        hxd_batch_store_failed(d, "store: reserving QKD indices failed", &b->s.ksid, b->first, e);
        snprintf(msg, msg_len, "the node's key store failed: %s", hx_strerror(e));
        return e;
    }
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &b->s.ksid)) != NULL && upto > s->qkd_reserved) {
        s->qkd_reserved = upto;
    }
    pthread_mutex_unlock(&d->lock);
    return HX_OK;
}

hx_err hxd_source_fetch_qkd(struct hxd *d, struct hxd_batch *b, int *status, char *msg,
                            size_t msg_len)
{
    hx_err e;

    bool need = false;

    for (size_t j = 0; j < b->s.uri.n_sources; j++) {
        need |= b->s.uri.sources[j] == HX_SRC_QKD;
    }
    if (!need) {
        return HX_OK;
    }
    if ((e = reserve_qkd(d, b, msg, msg_len)) != HX_OK) {
        return e;
    }
    b->qkd_len = d->cfg.qkd_key_bytes * b->count;
    if ((b->qkd = hx_secure_alloc(b->qkd_len)) == NULL) {
        return HX_ERR_NOMEM;
    }
    return b->qkd_mode == HX_PEER_QKD_014 ? fetch_014(d, b, status, msg, msg_len)
                                          : fetch_004(d, b, status, msg, msg_len);
}

/* ---- KEM sources ---- */

static bool is_kem(enum hx_source_kind k)
{
    return k != HX_SRC_QKD;
}

/* Every KEM of crypto/kem.h (ML-KEM, X25519, Classic McEliece, sntrup) is a source kind. */
static enum hx_kem_alg kem_of(enum hx_source_kind k)
{
    return hx_source_kem(k);
}

/* One step for KEM source j (alg, its sizes); in: the peer's bytes still to read, if any. */
typedef hx_err (*kem_step)(struct hxd_batch *b, size_t j, enum hx_kem_alg alg,
                           const struct hx_kem_sizes *sz, struct hx_reader *in, char *msg,
                           size_t msg_len);

/* The one KEM loop: runs step for every KEM source, in key_sources order. */
static hx_err each_kem(struct hxd_batch *b, kem_step step, struct hx_reader *in, char *msg,
                       size_t msg_len)
{
    hx_err e;

    for (size_t j = 0; j < b->s.uri.n_sources; j++) {
        struct hx_kem_sizes sz;
        enum hx_kem_alg alg;
        if (!is_kem(b->s.uri.sources[j])) {
            continue;
        }
        alg = kem_of(b->s.uri.sources[j]);
        hx_kem_standard_sizes(alg, &sz);
        if ((e = step(b, j, alg, &sz, in, msg, msg_len)) != HX_OK) {
            return e;
        }
    }
    return HX_OK;
}

static hx_err keygen_step(struct hxd_batch *b, size_t j, enum hx_kem_alg alg,
                          const struct hx_kem_sizes *sz, struct hx_reader *in, char *msg,
                          size_t msg_len)
{
    size_t n = b->s.uri.n_sources, pl;
    hx_err e;

    (void)in;
    b->pub_len[j] = b->kem_len[j] = sz->public_key * b->npub;
    if ((b->kem_msg[j] = malloc(b->kem_len[j])) == NULL) {
        return HX_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < b->npub; i++) {
        /* made ahead by a waiting worker (keystash.h) if there is one, else made now */
        if (hxd_keystash_take(b->stash, alg, &b->kkeys[i * n + j],
                              b->kem_msg[j] + i * sz->public_key, sz->public_key)) {
            continue;
        }
        if ((e = hx_kem_keygen(alg, &b->kkeys[i * n + j], b->kem_msg[j] + i * sz->public_key,
                               sz->public_key, &pl)) != HX_OK) {
            snprintf(msg, msg_len, "%s key generation failed", hx_source_name(b->s.uri.sources[j]));
            return e;
        }
    }
    return HX_OK;
}

hx_err hxd_source_keygen(struct hxd_batch *b, char *msg, size_t msg_len)
{
    b->npub = b->key_pairs == HX_PEER_KEY_PAIRS_PER_BATCH ? 1 : b->count;
    if ((b->kkeys = calloc((size_t)b->npub * b->s.uri.n_sources, sizeof(*b->kkeys))) == NULL) {
        return HX_ERR_NOMEM;
    }
    return each_kem(b, keygen_step, NULL, msg, msg_len);
}

static hx_err encaps_step(struct hxd_batch *b, size_t j, enum hx_kem_alg alg,
                          const struct hx_kem_sizes *sz, struct hx_reader *in, char *msg,
                          size_t msg_len)
{
    size_t n = b->s.uri.n_sources, cl;
    struct hx_kem_peer *one = NULL; /* a key per batch: imported (and checked) once */
    const uint8_t *pubs;
    uint8_t *cts;
    hx_err e = HX_OK;

    if (hx_read_view(in, sz->public_key * b->npub, &pubs) != HX_OK) {
        snprintf(msg, msg_len, "BATCH_REQ too short");
        return HX_ERR_TRUNCATED;
    }
    b->pub_len[j] = sz->public_key * b->npub;
    b->kem_len[j] = b->pub_len[j] + sz->ciphertext * b->count;
    if ((b->kem_msg[j] = malloc(b->kem_len[j])) == NULL) {
        snprintf(msg, msg_len, "out of memory");
        return HX_ERR_NOMEM;
    }
    memcpy(b->kem_msg[j], pubs, b->pub_len[j]);
    cts = b->kem_msg[j] + b->pub_len[j];
    if (b->npub == 1 && b->count > 1 &&
        hx_kem_peer_import(alg, pubs, sz->public_key, &one) != HX_OK) {
        snprintf(msg, msg_len, "%s public key of the initiator refused",
                 hx_source_name(b->s.uri.sources[j]));
        return HX_ERR_BAD_VALUE;
    }
    for (uint32_t i = 0; i < b->count && e == HX_OK; i++) {
        e = one != NULL ? hx_kem_encaps_peer(one, cts + i * sz->ciphertext, sz->ciphertext, &cl,
                                             &b->secrets[i * n + j])
                        : hx_kem_encaps(alg, pubs + i * sz->public_key, sz->public_key,
                                        cts + i * sz->ciphertext, sz->ciphertext, &cl,
                                        &b->secrets[i * n + j]);
    }
    hx_kem_peer_free(one);
    if (e != HX_OK) {
        snprintf(msg, msg_len, "%s encapsulation refused the initiator's public key",
                 hx_source_name(b->s.uri.sources[j]));
    }
    return e;
}

hx_err hxd_source_encaps(struct hxd_batch *b, const uint8_t *kem, size_t kem_len, char *msg,
                         size_t msg_len)
{
    struct hx_reader r;
    hx_err e;

    b->npub = b->key_pairs == HX_PEER_KEY_PAIRS_PER_BATCH ? 1 : b->count;
    hx_reader_init(&r, kem, kem_len);
    if ((e = each_kem(b, encaps_step, &r, msg, msg_len)) != HX_OK) {
        return e;
    }
    if (hx_reader_remaining(&r) != 0) {
        snprintf(msg, msg_len, "BATCH_REQ has trailing bytes");
        return HX_ERR_BAD_VALUE;
    }
    return HX_OK;
}

size_t hxd_source_ct_len(const struct hxd_batch *b)
{
    size_t total = 0;

    for (size_t j = 0; j < b->s.uri.n_sources; j++) {
        struct hx_kem_sizes sz;
        if (is_kem(b->s.uri.sources[j])) {
            hx_kem_standard_sizes(kem_of(b->s.uri.sources[j]), &sz);
            total += sz.ciphertext * b->count;
        }
    }
    return total;
}

static hx_err decaps_step(struct hxd_batch *b, size_t j, enum hx_kem_alg alg,
                          const struct hx_kem_sizes *sz, struct hx_reader *in, char *msg,
                          size_t msg_len)
{
    size_t n = b->s.uri.n_sources, ct_len = sz->ciphertext * b->count;
    const uint8_t *cts;
    uint8_t *grown;
    hx_err e;

    (void)alg;
    if (hx_read_view(in, ct_len, &cts) != HX_OK) {
        snprintf(msg, msg_len, "BATCH_RESP too short");
        return HX_ERR_TRUNCATED;
    }
    for (uint32_t i = 0; i < b->count; i++) {
        if ((e = hx_kem_decaps(b->kkeys[(b->npub == 1 ? 0 : i) * n + j], cts + i * sz->ciphertext,
                               sz->ciphertext, &b->secrets[i * n + j])) != HX_OK) {
            snprintf(msg, msg_len, "%s decapsulation failed", hx_source_name(b->s.uri.sources[j]));
            return e;
        }
    }
    /* The transcript's part for this source: public keys || ciphertexts. */
    if ((grown = realloc(b->kem_msg[j], b->pub_len[j] + ct_len)) == NULL) {
        snprintf(msg, msg_len, "out of memory");
        return HX_ERR_NOMEM;
    }
    memcpy(grown + b->pub_len[j], cts, ct_len);
    b->kem_msg[j] = grown;
    b->kem_len[j] = b->pub_len[j] + ct_len;
    return HX_OK;
}

hx_err hxd_source_decaps(struct hxd_batch *b, const uint8_t *cts, size_t cts_len, char *msg,
                         size_t msg_len)
{
    struct hx_reader r;
    hx_err e;

    hx_reader_init(&r, cts, cts_len);
    if ((e = each_kem(b, decaps_step, &r, msg, msg_len)) != HX_OK) {
        return e;
    }
    return hx_reader_remaining(&r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

size_t hxd_source_parts(const struct hxd_batch *b, bool cts_only, struct hx_peer_part *parts)
{
    size_t np = 0;

    for (size_t j = 0; j < b->s.uri.n_sources && np < HX_PEER_MAX_PARTS; j++) {
        size_t skip = cts_only ? b->pub_len[j] : 0;
        if (b->kem_msg[j] == NULL) {
            continue;
        }
        parts[np].p = b->kem_msg[j] + skip;
        parts[np++].len = b->kem_len[j] - skip;
    }
    return np;
}
