/*
 * Batches authenticated by MACs (docs/peer-protocol.md "Authentication"). A batch both nodes
 * signed over a direct link gives an authentication key
 *
 *   ak = HKDF-SHA256(IKM = every position's secrets, in key_sources order, QKD keys included,
 *                    salt = T, info = "hykex/1 batch auth" || stream id)
 *
 * and once the responder has committed that batch (the anchor) and said so (BATCH_AUTH, with
 * HMAC-SHA256(ak, "hykex/1 batch auth confirm" || u64 anchor): the initiator takes the key only
 * if both derived the same), later batches of the stream on the same link carry
 * HMAC-SHA256(ak, ctx || u64 anchor || T) where the two signatures went: ML-DSA signs about one
 * batch in HXD_AUTH_RENEW instead of every one. ak is secret while any source of the anchor holds
 * (the same bound as the keys), and only the two nodes whose signatures checked can hold it. It is
 * never handed out, lives in the secure heap, and dies with the link: a link made again (a restart,
 * a certificate rotation) signs again.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/secret.h"
#include "crypto/kdf.h"
#include "daemon/batch.h"

/* HKDF-SHA256 with the IKM in parts (hx_hkdf): no copy of the secrets, which for a large batch
 * would not fit one secret (HX_SECRET_MAX_LEN). */
hx_err hxd_auth_derive(const struct hxd *d, const struct hxd_batch *b, uint8_t ak[32])
{
    size_t n = b->s.uri.n_sources, kb = d->cfg.qkd_key_bytes, np = (size_t)b->count * n;
    struct hx_iov *parts = calloc(np > 0 ? np : 1, sizeof(*parts));
    struct hx_iov info[2] = {{"hykex/1 batch auth", 18}, {b->s.ksid.b, 16}};
    hx_err e;

    if (parts == NULL) {
        return HX_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < b->count; i++) {
        for (size_t j = 0; j < n; j++) {
            const struct hx_secret *sec = b->secrets[i * n + j];
            parts[i * n + j] = b->s.uri.sources[j] == HX_SRC_QKD
                                   ? (struct hx_iov){b->qkd + (size_t)i * kb, kb}
                                   : (struct hx_iov){hx_secret_data(sec), hx_secret_len(sec)};
        }
    }
    e = hx_hkdf(HX_MD_SHA256, b->T, sizeof(b->T), parts, np, info, 2, ak, 32);
    free(parts); /* pointers into the batch, no secret bytes */
    return e;
}

hx_err hxd_auth_mac(const uint8_t ak[32], const char *ctx, uint64_t anchor, const uint8_t *T,
                    uint8_t mac[32])
{
    uint8_t a[8];
    struct hx_iov parts[3] = {{ctx, strlen(ctx)}, {a, sizeof(a)}, {T, 32}};

    for (size_t i = 0; i < 8; i++) {
        a[i] = (uint8_t)(anchor >> (56 - 8 * i));
    }
    return hx_hmac(HX_MD_SHA256, ak, 32, parts, T != NULL ? 3 : 2, mac);
}

void hxd_auth_drop(struct hxd *d, const struct hx_uuid *ksid, uint64_t anchor)
{
    struct hxd_stream *s;

    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, ksid)) != NULL) {
        hxd_auth_forget(s, anchor);
    }
    pthread_mutex_unlock(&d->lock);
}

bool hxd_auth_offers(const struct hxd *d, const struct hxd_batch *b)
{
    return d->cfg.batch_macs && b->path.hops < 2;
}

static void key_set(struct hxd_auth_key *k, uint64_t anchor, uint64_t serial, const uint8_t ak[32])
{
    OPENSSL_cleanse(k, sizeof(*k));
    k->set = true;
    k->anchor = anchor;
    k->serial = serial;
    memcpy(k->key, ak, 32);
}

static struct hxd_auth *auth_of(struct hxd_stream *s)
{
    if (s->auth == NULL && (s->auth = hx_secure_alloc(sizeof(*s->auth))) != NULL) {
        memset(s->auth, 0, sizeof(*s->auth));
    }
    return s->auth;
}

bool hxd_auth_use(struct hxd_stream *s, uint64_t serial, uint64_t *anchor, uint8_t ak[32])
{
    struct hxd_auth_key *k = s->auth != NULL ? &s->auth->cur : NULL;

    if (k == NULL || !k->set || serial == 0 || k->serial != serial ||
        k->uses >= HXD_AUTH_MAX_USES) {
        return false; /* signed: the batch offers the next key */
    }
    if (k->uses++ == HXD_AUTH_RENEW) {
        return false; /* signed, to offer the next key while the batches in flight use this one */
    }
    *anchor = k->anchor;
    memcpy(ak, k->key, 32);
    return true;
}

void hxd_auth_offer(struct hxd_stream *s, uint64_t anchor, uint64_t serial, const uint8_t ak[32])
{
    struct hxd_auth *a = auth_of(s);

    if (a == NULL || a->refused) {
        return;
    }
    /* A batch made again under the same positions replaces its earlier offer (which its
     * responder never confirmed): a stale key under the anchor would fail the confirmation. */
    for (size_t i = 0; i < HXD_PIPELINE; i++) {
        if (a->k[i].set && a->k[i].anchor == anchor && a->k[i].serial == serial) {
            key_set(&a->k[i], anchor, serial, ak);
            return;
        }
    }
    key_set(&a->k[a->n_offered++ % HXD_PIPELINE], anchor, serial, ak); /* the oldest reused */
}

int hxd_auth_adopt(struct hxd_stream *s, uint64_t anchor, uint64_t serial,
                   const uint8_t confirm[32])
{
    struct hxd_auth *a = s->auth;
    uint8_t want[32];
    bool first, ok;

    for (size_t i = 0; a != NULL && i < HXD_PIPELINE; i++) {
        struct hxd_auth_key *k = &a->k[i];
        if (!k->set || k->anchor != anchor || k->serial != serial) {
            continue;
        }
        ok = hxd_auth_mac(k->key, HXD_CTX_AUTH, anchor, NULL, want) == HX_OK &&
             hx_ct_equal(want, confirm, sizeof(want));
        OPENSSL_cleanse(want, sizeof(want));
        if (!ok) { /* the nodes derived different keys: this stream signs every batch */
            a->refused = true;
            OPENSSL_cleanse(a->k, sizeof(a->k));
            OPENSSL_cleanse(&a->cur, sizeof(a->cur));
            return -1;
        }
        first = !a->cur.set;
        a->cur = *k;
        OPENSSL_cleanse(k, sizeof(*k));
        return first ? 2 : 1;
    }
    return 0; /* not offered here (or over another link): the next signed batch offers again */
}

void hxd_auth_forget(struct hxd_stream *s, uint64_t anchor)
{
    struct hxd_auth *a = s->auth;

    if (a == NULL) {
        return;
    }
    if (a->cur.set && a->cur.anchor == anchor) {
        OPENSSL_cleanse(&a->cur, sizeof(a->cur));
    }
    for (size_t i = 0; i < HXD_PIPELINE; i++) { /* the responder's older ones */
        if (a->k[i].set && a->k[i].anchor == anchor) {
            OPENSSL_cleanse(&a->k[i], sizeof(a->k[i]));
        }
    }
}

bool hxd_auth_install(struct hxd_stream *s, uint64_t anchor, uint64_t serial, const uint8_t ak[32])
{
    struct hxd_auth *a = auth_of(s);

    if (a == NULL) {
        return false; /* the secure heap is full: no key announced, the peer goes on signing */
    }
    OPENSSL_cleanse(&a->k[HXD_PIPELINE - 1], sizeof(a->k[0]));
    memmove(&a->k[1], &a->k[0], (HXD_PIPELINE - 1) * sizeof(a->k[0]));
    a->k[0] = a->cur;
    key_set(&a->cur, anchor, serial, ak);
    return true;
}

bool hxd_auth_find(const struct hxd_stream *s, uint64_t anchor, uint64_t serial, uint8_t ak[32])
{
    const struct hxd_auth *a = s->auth;

    for (size_t i = 0; a != NULL && serial != 0 && i <= HXD_PIPELINE; i++) {
        const struct hxd_auth_key *k = i == 0 ? &a->cur : &a->k[i - 1];
        if (k->set && k->anchor == anchor && k->serial == serial) {
            memcpy(ak, k->key, 32);
            return true;
        }
    }
    return false;
}

void hxd_auth_on_frame(struct hxd *d, const struct hx_uuid *peer, uint64_t serial, const uint8_t *p,
                       size_t len)
{
    struct hx_peer_auth m;
    struct hxd_stream *s;
    char id[HX_UUID_STR_LEN + 1];
    int adopted = 0;

    if (hx_peer_decode_auth(p, len, &m) != HX_OK) {
        hx_warn("malformed BATCH_AUTH from a peer", HX_NOFIELDS);
        return;
    }
    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, &m.ksid);
    if (s != NULL && s->role == HXD_INITIATOR && hx_uuid_equal(&s->peer, peer)) {
        adopted = hxd_auth_adopt(s, m.anchor, serial, m.confirm);
    }
    pthread_mutex_unlock(&d->lock);
    hx_uuid_format(&m.ksid, id);
    if (adopted == 2) {
        hx_info("the stream's batches are authenticated by MACs under the key of a signed batch",
                HX_F_STR("stream", id) HX_F_U64("anchor", m.anchor));
    } else if (adopted == 1) {
        hx_debug("the stream's batches use the key of a newer signed batch",
                 HX_F_STR("stream", id) HX_F_U64("anchor", m.anchor));
    } else if (adopted < 0) {
        hx_warn(
            "the peer derived another authentication key from a signed batch: the stream's "
            "batches stay signed",
            HX_F_STR("stream", id) HX_F_U64("anchor", m.anchor));
    }
}
