/*
 * Batches authenticated by MACs (docs/peer-protocol.md "Authentication"). A batch both nodes
 * signed over a direct link gives an authentication key
 *
 *   ak = HKDF-SHA256(IKM = every position's secrets, in key_sources order, QKD keys included,
 *                    salt = T, info = "hykex/1 batch auth" || stream id)
 *
 * and once the responder has committed that batch (the anchor) and said so (BATCH_AUTH), later
 * batches of the stream on the same link carry HMAC-SHA256(ak, ctx || u64 anchor || T) where
 * the two signatures went: ML-DSA signs one batch in HXD_AUTH_MAX_USES + 1 instead of every
 * one. ak is secret while any source of the anchor holds (the same bound as the keys), and only
 * the two nodes whose signatures checked can hold it. It is never handed out, lives in the
 * secure heap, and dies with the link: a link made again (a restart, a certificate rotation)
 * signs again.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "common/buf.h"
#include "common/secret.h"
#include "crypto/kdf.h"
#include "daemon/batch.h"

hx_err hxd_auth_derive(const struct hxd *d, const struct hxd_batch *b, uint8_t ak[32])
{
    size_t n = b->s.uri.n_sources, kb = d->cfg.qkd_key_bytes, total = 0, off = 0;
    uint8_t info[18 + 16];
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
    memcpy(info, "hykex/1 batch auth", 18);
    memcpy(info + 18, b->s.ksid.b, 16);
    e = hx_kdf_derive(HX_KDF_HKDF_SHA256, hx_secret_data(all), total, b->T, sizeof(b->T), info,
                      sizeof(info), ak, 32);
    hx_secret_free(all);
    return e;
}

hx_err hxd_auth_mac(const uint8_t ak[32], const char *ctx, uint64_t anchor, const uint8_t T[32],
                    uint8_t mac[32])
{
    uint8_t a[8];
    struct hx_iov parts[3] = {{ctx, strlen(ctx)}, {a, sizeof(a)}, {T, 32}};

    for (size_t i = 0; i < 8; i++) {
        a[i] = (uint8_t)(anchor >> (56 - 8 * i));
    }
    return hx_hmac(HX_MD_SHA256, ak, 32, parts, 3, mac);
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

    if (a != NULL) {
        key_set(&a->other, anchor, serial, ak);
    }
}

int hxd_auth_adopt(struct hxd_stream *s, uint64_t anchor)
{
    struct hxd_auth *a = s->auth;
    bool first;

    if (a == NULL || !a->other.set || a->other.anchor != anchor) {
        return 0; /* an older offer's, or none: the next signed batch offers again */
    }
    first = !a->cur.set;
    a->cur = a->other;
    OPENSSL_cleanse(&a->other, sizeof(a->other));
    return first ? 2 : 1;
}

void hxd_auth_forget(struct hxd_stream *s, uint64_t anchor)
{
    if (s->auth != NULL && s->auth->cur.set && s->auth->cur.anchor == anchor) {
        OPENSSL_cleanse(&s->auth->cur, sizeof(s->auth->cur));
    }
}

void hxd_auth_install(struct hxd_stream *s, uint64_t anchor, uint64_t serial, const uint8_t ak[32])
{
    struct hxd_auth *a = auth_of(s);

    if (a != NULL) {
        a->other = a->cur;
        key_set(&a->cur, anchor, serial, ak);
    }
}

bool hxd_auth_find(const struct hxd_stream *s, uint64_t anchor, uint64_t serial, uint8_t ak[32])
{
    const struct hxd_auth_key *k[2] = {s->auth ? &s->auth->cur : NULL,
                                       s->auth ? &s->auth->other : NULL};

    for (size_t i = 0; i < 2; i++) {
        if (k[i] != NULL && k[i]->set && k[i]->anchor == anchor && serial != 0 &&
            k[i]->serial == serial) {
            memcpy(ak, k[i]->key, 32);
            return true;
        }
    }
    return false;
}
