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
 * HMAC-SHA256(ak, ctx || u64 anchor || T) where the two signatures went: ML-DSA signs one batch in
 * HXD_AUTH_MAX_USES + 1 instead of every one. ak is secret while any source of the anchor holds
 * (the same bound as the keys), and only the two nodes whose signatures checked can hold it. It is
 * never handed out, lives in the secure heap, and dies with the link: a link made again (a restart,
 * a certificate rotation) signs again.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/secret.h"
#include "crypto/kdf.h"
#include "daemon/batch.h"

hx_err hxd_auth_derive(const struct hxd *d, const struct hxd_batch *b, uint8_t ak[32])
{
    size_t n = b->s.uri.n_sources, kb = d->cfg.qkd_key_bytes, total = 0, off = 0;
    uint8_t info[18 + 16];
    struct hx_writer w;
    struct hx_secret *all = NULL;
    hx_err e;

    for (uint32_t i = 0; i < b->count; i++) {
        for (size_t j = 0; j < n; j++) {
            total += b->s.uri.sources[j] == HX_SRC_QKD ? kb : hx_secret_len(b->secrets[i * n + j]);
        }
    }
    if ((e = hx_secret_new(total, &all)) != HX_OK) {
        return e;
    }
    for (uint32_t i = 0; i < b->count; i++) {
        for (size_t j = 0; j < n; j++) {
            const uint8_t *p = b->s.uri.sources[j] == HX_SRC_QKD
                                   ? b->qkd + (size_t)i * kb
                                   : hx_secret_data(b->secrets[i * n + j]);
            size_t len =
                b->s.uri.sources[j] == HX_SRC_QKD ? kb : hx_secret_len(b->secrets[i * n + j]);
            memcpy(hx_secret_data_mut(all) + off, p, len);
            off += len;
        }
    }
    hx_writer_init_fixed(&w, info, sizeof(info));
    if ((e = hx_write_bytes(&w, "hykex/1 batch auth", 18)) == HX_OK &&
        (e = hx_write_bytes(&w, b->s.ksid.b, 16)) == HX_OK) {
        e = hx_kdf_derive(HX_KDF_HKDF_SHA256, hx_secret_data(all), total, b->T, sizeof(b->T), info,
                          w.len, ak, 32);
    }
    hx_secret_free(all);
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

uint64_t hxd_direct_serial(struct hxd *d, const struct hx_uuid *peer)
{
    struct hx_link *l = hx_links_get(d->links, peer);
    uint64_t serial;

    if (l == NULL) {
        return 0;
    }
    serial = hx_link_serial(l);
    hx_link_put(l);
    return serial;
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
    k->uses++;
    *anchor = k->anchor;
    memcpy(ak, k->key, 32);
    return true;
}

void hxd_auth_offer(struct hxd_stream *s, uint64_t anchor, uint64_t serial, const uint8_t ak[32])
{
    struct hxd_auth *a = auth_of(s);

    if (a != NULL && !a->refused) { /* one slot per batch in flight, the oldest reused */
        key_set(&a->k[a->n_offered++ % HXD_PIPELINE], anchor, serial, ak);
    }
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

void hxd_auth_install(struct hxd_stream *s, uint64_t anchor, uint64_t serial, const uint8_t ak[32])
{
    struct hxd_auth *a = auth_of(s);

    if (a == NULL) {
        return;
    }
    OPENSSL_cleanse(&a->k[HXD_PIPELINE - 1], sizeof(a->k[0]));
    memmove(&a->k[1], &a->k[0], (HXD_PIPELINE - 1) * sizeof(a->k[0]));
    a->k[0] = a->cur;
    key_set(&a->cur, anchor, serial, ak);
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
