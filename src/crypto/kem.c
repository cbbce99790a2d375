#include "crypto/kem.h"

#include "crypto/kem_djb.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

struct hx_kem_key {
    enum hx_kem_alg alg;
    EVP_PKEY *pkey;       /* OpenSSL's algorithms */
    struct hx_secret *sk; /* libmceliece/libntruprime: the secret key */
};

static const struct {
    const char *name;
    struct hx_kem_sizes sizes; /* FIPS 203 table 3; RFC 7748 */
} kems[HX_KEM_ALG_COUNT] = {
    [HX_KEM_ML_KEM_512] = {"ML-KEM-512", {800, 768, 32}},
    [HX_KEM_ML_KEM_768] = {"ML-KEM-768", {1184, 1088, 32}},
    [HX_KEM_ML_KEM_1024] = {"ML-KEM-1024", {1568, 1568, 32}},
    [HX_KEM_X25519] = {"X25519", {32, 32, 32}},
    /* Classic McEliece round 4 (libmceliece checks these against its own at compile time) */
    [HX_KEM_MCELIECE_348864] = {"Classic-McEliece-348864", {261120, 96, 32}},
    [HX_KEM_MCELIECE_348864F] = {"Classic-McEliece-348864f", {261120, 96, 32}},
    [HX_KEM_MCELIECE_460896] = {"Classic-McEliece-460896", {524160, 156, 32}},
    [HX_KEM_MCELIECE_460896F] = {"Classic-McEliece-460896f", {524160, 156, 32}},
    [HX_KEM_MCELIECE_6688128] = {"Classic-McEliece-6688128", {1044992, 208, 32}},
    [HX_KEM_MCELIECE_6688128F] = {"Classic-McEliece-6688128f", {1044992, 208, 32}},
    [HX_KEM_MCELIECE_6960119] = {"Classic-McEliece-6960119", {1047319, 194, 32}},
    [HX_KEM_MCELIECE_6960119F] = {"Classic-McEliece-6960119f", {1047319, 194, 32}},
    [HX_KEM_MCELIECE_8192128] = {"Classic-McEliece-8192128", {1357824, 208, 32}},
    [HX_KEM_MCELIECE_8192128F] = {"Classic-McEliece-8192128f", {1357824, 208, 32}},
    /* NTRU Prime round 3, sntrup */
    [HX_KEM_SNTRUP653] = {"sntrup653", {994, 897, 32}},
    [HX_KEM_SNTRUP761] = {"sntrup761", {1158, 1039, 32}},
    [HX_KEM_SNTRUP857] = {"sntrup857", {1322, 1184, 32}},
    [HX_KEM_SNTRUP953] = {"sntrup953", {1505, 1349, 32}},
    [HX_KEM_SNTRUP1013] = {"sntrup1013", {1623, 1455, 32}},
    [HX_KEM_SNTRUP1277] = {"sntrup1277", {2067, 1847, 32}},
};

int hx_kem_is_djb(enum hx_kem_alg alg)
{
    return alg >= HX_KEM_MCELIECE_348864 && alg < HX_KEM_ALG_COUNT;
}

const char *hx_kem_name(enum hx_kem_alg alg)
{
    return (unsigned)alg < HX_KEM_ALG_COUNT ? kems[alg].name : "unknown";
}

hx_err hx_kem_parse(const char *name, enum hx_kem_alg *out)
{
    for (unsigned i = 0; i < HX_KEM_ALG_COUNT; i++) {
        if (strcasecmp(name, kems[i].name) == 0) {
            *out = (enum hx_kem_alg)i;
            return HX_OK;
        }
    }
    return HX_ERR_UNSUPPORTED;
}

void hx_kem_standard_sizes(enum hx_kem_alg alg, struct hx_kem_sizes *out)
{
    if ((unsigned)alg < HX_KEM_ALG_COUNT) {
        *out = kems[alg].sizes;
    } else {
        memset(out, 0, sizeof(*out));
    }
}

static hx_err new_pkey(enum hx_kem_alg alg, EVP_PKEY **out)
{
    EVP_PKEY_CTX *ctx;
    hx_err e = HX_ERR_CRYPTO;

    *out = NULL;
    if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, kems[alg].name, NULL)) == NULL) {
        return HX_ERR_UNSUPPORTED;
    }
    if (EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, out) == 1) {
        e = HX_OK;
    }
    EVP_PKEY_CTX_free(ctx);
    return e;
}

static hx_err raw_public(EVP_PKEY *pkey, uint8_t *pub, size_t cap, size_t *len)
{
    size_t n = 0;

    if (EVP_PKEY_get_raw_public_key(pkey, NULL, &n) != 1) {
        return HX_ERR_CRYPTO;
    }
    if (n > cap) {
        return HX_ERR_NOSPACE;
    }
    if (EVP_PKEY_get_raw_public_key(pkey, pub, &n) != 1) {
        return HX_ERR_CRYPTO;
    }
    *len = n;
    return HX_OK;
}

hx_err hx_kem_openssl_sizes(enum hx_kem_alg alg, struct hx_kem_sizes *out)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t pub[HX_KEM_MAX_OPENSSL_PUBLIC];
    size_t ct = 0, ss = 0;
    hx_err e;

    if ((unsigned)alg >= HX_KEM_ALG_COUNT) {
        return HX_ERR_INVALID_ARG;
    }
    if (hx_kem_is_djb(alg)) {
        return HX_ERR_UNSUPPORTED;
    }
    if ((e = new_pkey(alg, &pkey)) != HX_OK) {
        return e;
    }
    if ((e = raw_public(pkey, pub, sizeof(pub), &out->public_key)) != HX_OK) {
        goto out;
    }
    if (alg == HX_KEM_X25519) {
        /* The ciphertext is an ephemeral public key; the secret one field element. */
        out->ciphertext = out->public_key;
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        e = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 &&
                    EVP_PKEY_derive_set_peer(ctx, pkey) == 1 && EVP_PKEY_derive(ctx, NULL, &ss) == 1
                ? HX_OK
                : HX_ERR_CRYPTO;
        out->shared_secret = ss;
        goto out;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx == NULL || EVP_PKEY_encapsulate_init(ctx, NULL) != 1 ||
        EVP_PKEY_encapsulate(ctx, NULL, &ct, NULL, &ss) != 1) {
        e = HX_ERR_CRYPTO;
        goto out;
    }
    out->ciphertext = ct;
    out->shared_secret = ss;
    e = HX_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return e;
}

hx_err hx_kem_keygen(enum hx_kem_alg alg, struct hx_kem_key **key, uint8_t *pub, size_t pub_cap,
                     size_t *pub_len)
{
    struct hx_kem_key *k;
    hx_err e;

    *key = NULL;
    if ((unsigned)alg >= HX_KEM_ALG_COUNT) {
        return HX_ERR_INVALID_ARG;
    }
    if ((k = calloc(1, sizeof(*k))) == NULL) {
        return HX_ERR_NOMEM;
    }
    k->alg = alg;
    if (hx_kem_is_djb(alg)) {
        if (pub_cap < kems[alg].sizes.public_key) {
            e = HX_ERR_NOSPACE;
        } else if ((e = hx_kem_djb_keypair(alg, &k->sk, pub)) == HX_OK) {
            *pub_len = kems[alg].sizes.public_key;
        }
        if (e != HX_OK) {
            hx_kem_key_free(k);
            return e;
        }
        *key = k;
        return HX_OK;
    }
    if ((e = new_pkey(alg, &k->pkey)) != HX_OK ||
        (e = raw_public(k->pkey, pub, pub_cap, pub_len)) != HX_OK) {
        hx_kem_key_free(k);
        return e;
    }
    *key = k;
    return HX_OK;
}

/* X25519: secret = X25519(own, peer); all-zero (small-order peer) is refused by OpenSSL. */
static hx_err x25519_derive(EVP_PKEY *own, EVP_PKEY *peer, struct hx_secret **ss)
{
    EVP_PKEY_CTX *ctx;
    size_t len = 32;
    hx_err e;

    *ss = NULL;
    if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, own, NULL)) == NULL) {
        return HX_ERR_NOMEM;
    }
    if ((e = hx_secret_new(32, ss)) != HX_OK) {
        goto out;
    }
    if (EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, peer) != 1 ||
        EVP_PKEY_derive(ctx, hx_secret_data_mut(*ss), &len) != 1 || len != 32) {
        hx_secret_free(*ss);
        *ss = NULL;
        e = HX_ERR_CRYPTO;
        goto out;
    }
    e = HX_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    return e;
}

static hx_err peer_key(enum hx_kem_alg alg, const uint8_t *pub, size_t len, EVP_PKEY **out)
{
    if (len != kems[alg].sizes.public_key) {
        return HX_ERR_BAD_VALUE;
    }
    /* ML-KEM import checks the encapsulation key (FIPS 203 7.2 modulus check). */
    *out = EVP_PKEY_new_raw_public_key_ex(NULL, kems[alg].name, NULL, pub, len);
    return *out != NULL ? HX_OK : HX_ERR_BAD_VALUE;
}

struct hx_kem_peer {
    enum hx_kem_alg alg;
    EVP_PKEY *pkey;
    uint8_t *pub; /* libmceliece/libntruprime: a checked copy of the public key */
};

hx_err hx_kem_peer_import(enum hx_kem_alg alg, const uint8_t *pub, size_t pub_len,
                          struct hx_kem_peer **out)
{
    struct hx_kem_peer *p;
    hx_err e;

    *out = NULL;
    if ((unsigned)alg >= HX_KEM_ALG_COUNT) {
        return HX_ERR_INVALID_ARG;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        return HX_ERR_NOMEM;
    }
    p->alg = alg;
    if (hx_kem_is_djb(alg)) {
        if ((e = hx_kem_djb_check_public(alg, pub, pub_len)) != HX_OK) {
            free(p);
            return e;
        }
        if ((p->pub = malloc(pub_len)) == NULL) {
            free(p);
            return HX_ERR_NOMEM;
        }
        memcpy(p->pub, pub, pub_len);
        *out = p;
        return HX_OK;
    }
    if ((e = peer_key(alg, pub, pub_len, &p->pkey)) != HX_OK) {
        free(p);
        return e;
    }
    *out = p;
    return HX_OK;
}

void hx_kem_peer_free(struct hx_kem_peer *peer)
{
    if (peer == NULL) {
        return;
    }
    EVP_PKEY_free(peer->pkey);
    free(peer->pub);
    free(peer);
}

hx_err hx_kem_encaps_peer(const struct hx_kem_peer *peer, uint8_t *ct, size_t ct_cap,
                          size_t *ct_len, struct hx_secret **ss)
{
    EVP_PKEY *eph = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    enum hx_kem_alg alg = peer->alg;
    size_t clen, slen;
    hx_err e;

    *ss = NULL;
    if (ct_cap < kems[alg].sizes.ciphertext) {
        return HX_ERR_NOSPACE;
    }
    if (hx_kem_is_djb(alg)) {
        if ((e = hx_kem_djb_enc(alg, peer->pub, ct, ss)) == HX_OK) {
            *ct_len = kems[alg].sizes.ciphertext;
        }
        return e;
    }
    if (alg == HX_KEM_X25519) {
        if ((e = new_pkey(alg, &eph)) == HX_OK &&
            (e = raw_public(eph, ct, ct_cap, ct_len)) == HX_OK) {
            e = x25519_derive(eph, peer->pkey, ss);
        }
        goto out;
    }
    if ((e = hx_secret_new(kems[alg].sizes.shared_secret, ss)) != HX_OK) {
        goto out;
    }
    clen = ct_cap;
    slen = hx_secret_len(*ss);
    if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, peer->pkey, NULL)) == NULL ||
        EVP_PKEY_encapsulate_init(ctx, NULL) != 1 ||
        EVP_PKEY_encapsulate(ctx, ct, &clen, hx_secret_data_mut(*ss), &slen) != 1 ||
        clen != kems[alg].sizes.ciphertext || slen != kems[alg].sizes.shared_secret) {
        e = HX_ERR_CRYPTO;
        goto out;
    }
    *ct_len = clen;
    e = HX_OK;
out:
    if (e != HX_OK) {
        hx_secret_free(*ss);
        *ss = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(eph);
    return e;
}

hx_err hx_kem_encaps(enum hx_kem_alg alg, const uint8_t *pub, size_t pub_len, uint8_t *ct,
                     size_t ct_cap, size_t *ct_len, struct hx_secret **ss)
{
    struct hx_kem_peer *peer = NULL;
    hx_err e;

    *ss = NULL;
    if ((unsigned)alg >= HX_KEM_ALG_COUNT) {
        return HX_ERR_INVALID_ARG;
    }
    if (ct_cap < kems[alg].sizes.ciphertext) {
        return HX_ERR_NOSPACE;
    }
    if ((e = hx_kem_peer_import(alg, pub, pub_len, &peer)) != HX_OK) {
        return e;
    }
    e = hx_kem_encaps_peer(peer, ct, ct_cap, ct_len, ss);
    hx_kem_peer_free(peer);
    return e;
}

hx_err hx_kem_decaps(const struct hx_kem_key *key, const uint8_t *ct, size_t ct_len,
                     struct hx_secret **ss)
{
    EVP_PKEY_CTX *ctx = NULL;
    size_t slen;
    hx_err e;

    *ss = NULL;
    if (key == NULL || ct_len != kems[key->alg].sizes.ciphertext) {
        return HX_ERR_BAD_VALUE;
    }
    if (key->alg == HX_KEM_X25519) {
        return hx_kem_x25519(key, ct, ct_len, ss); /* the ciphertext is the peer's public key */
    }
    if (hx_kem_is_djb(key->alg)) {
        return hx_kem_djb_dec(key->alg, key->sk, ct, ss);
    }
    if ((e = hx_secret_new(kems[key->alg].sizes.shared_secret, ss)) != HX_OK) {
        return e;
    }
    slen = hx_secret_len(*ss);
    if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL)) == NULL ||
        EVP_PKEY_decapsulate_init(ctx, NULL) != 1 ||
        EVP_PKEY_decapsulate(ctx, hx_secret_data_mut(*ss), &slen, ct, ct_len) != 1 ||
        slen != kems[key->alg].sizes.shared_secret) {
        hx_secret_free(*ss);
        *ss = NULL;
        e = HX_ERR_CRYPTO;
    }
    EVP_PKEY_CTX_free(ctx);
    return e;
}

enum hx_kem_alg hx_kem_key_alg(const struct hx_kem_key *key)
{
    return key->alg;
}

void hx_kem_key_free(struct hx_kem_key *key)
{
    if (key == NULL) {
        return;
    }
    EVP_PKEY_free(key->pkey); /* OpenSSL wipes private key material on free */
    hx_secret_free(key->sk);  /* so does hx_secret */
    free(key);
}

hx_err hx_kem_key_from_private(enum hx_kem_alg alg, const uint8_t *priv, size_t len,
                               struct hx_kem_key **key)
{
    struct hx_kem_key *k;

    *key = NULL;
    if (alg != HX_KEM_X25519) {
        return HX_ERR_UNSUPPORTED;
    }
    if (len != 32) {
        return HX_ERR_BAD_VALUE;
    }
    if ((k = calloc(1, sizeof(*k))) == NULL) {
        return HX_ERR_NOMEM;
    }
    k->alg = alg;
    if ((k->pkey = EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, priv, len)) == NULL) {
        free(k);
        return HX_ERR_CRYPTO;
    }
    *key = k;
    return HX_OK;
}

hx_err hx_kem_x25519(const struct hx_kem_key *key, const uint8_t *peer_pub, size_t len,
                     struct hx_secret **ss)
{
    EVP_PKEY *peer = NULL;
    hx_err e;

    *ss = NULL;
    if (key == NULL || key->alg != HX_KEM_X25519) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = peer_key(HX_KEM_X25519, peer_pub, len, &peer)) != HX_OK) {
        return e;
    }
    e = x25519_derive(key->pkey, peer, ss);
    EVP_PKEY_free(peer);
    return e;
}
