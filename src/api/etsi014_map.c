/* ETSI 014 onto key streams: pair stream ids, key IDs, who may call (etsi014_map.h). */
#include "api/etsi014_map.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto/kdf.h"

/* Bounded cycle walk: each step lands in the version-4 set with probability 1/64, so 4096
 * steps fail with probability e^-64. */
#define WALK_MAX 4096

void hxd_014_pair_ksid(const char *master, const struct hx_uuid *master_node, const char *slave,
                       const struct hx_uuid *slave_node, struct hx_uuid *out)
{
    static const char label[] = "hykex etsi014 pair stream v1";
    uint8_t ml = (uint8_t)strlen(master), sl = (uint8_t)strlen(slave), h[32];
    struct hx_iov parts[] = {
        {label, sizeof(label)},
        {master_node->b, 16},
        {slave_node->b, 16},
        {&ml, 1},
        {master, ml},
        {&sl, 1},
        {slave, sl},
    };

    if (hx_hash(HX_MD_SHA256, parts, sizeof(parts) / sizeof(parts[0]), h) != HX_OK) {
        memset(h, 0, sizeof(h)); /* SHA-256 does not fail; a nil id is refused by the opener */
    }
    memcpy(out->b, h, 16);
    out->b[6] = (uint8_t)((out->b[6] & 0x0f) | 0x80); /* RFC 9562 version 8: name-based, own */
    out->b[8] = (uint8_t)((out->b[8] & 0x3f) | 0x80);
}

hx_err hxd_014_kid_derive(const uint8_t *key0, size_t len, const struct hx_uuid *ksid,
                          uint8_t kid[HXD_014_KID_LEN])
{
    static const char label[] = "hykex etsi014 key_ID v1";
    uint8_t info[sizeof(label) + 16];

    if (len < 16) {
        return HX_ERR_INVALID_ARG;
    }
    memcpy(info, label, sizeof(label));
    memcpy(info + sizeof(label), ksid->b, 16);
    return hx_kdf_derive(HX_KDF_HKDF_SHA256, key0, len, NULL, 0, info, sizeof(info), kid,
                         HXD_014_KID_LEN);
}

static bool in_set(const uint8_t b[16])
{
    return (b[6] & 0xf0) == 0x40 && (b[8] & 0xc0) == 0x80;
}

/* AES-256 on one block, n times until the result is a version-4 UUID (cycle walking). */
static hx_err walk(const uint8_t kid[HXD_014_KID_LEN], bool enc, const uint8_t in[16],
                   uint8_t out[16])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t blk[16];
    int n;
    hx_err e = HX_ERR_CRYPTO;

    memcpy(blk, in, 16);
    if (ctx == NULL ||
        EVP_CipherInit_ex2(ctx, EVP_aes_256_ecb(), kid, NULL, enc ? 1 : 0, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
        goto out;
    }
    for (int i = 0; i < WALK_MAX; i++) {
        if (EVP_CipherUpdate(ctx, out, &n, blk, 16) != 1 || n != 16) {
            goto out;
        }
        if (in_set(out)) {
            e = HX_OK;
            goto out;
        }
        memcpy(blk, out, 16);
    }
    e = HX_ERR_NOT_FOUND;
out:
    OPENSSL_cleanse(blk, sizeof(blk));
    EVP_CIPHER_CTX_free(ctx);
    return e;
}

hx_err hxd_014_key_id_make(const uint8_t kid[HXD_014_KID_LEN], uint64_t pos, uint32_t size_bytes,
                           struct hx_uuid *out)
{
    uint8_t p[16] = {0};

    if (pos == 0 || pos > HXD_014_MAX_POS || size_bytes == 0 || size_bytes > 65535) {
        return HX_ERR_INVALID_ARG;
    }
    for (int i = 0; i < 6; i++) {
        p[i] = (uint8_t)(pos >> (8 * (5 - i)));
    }
    p[6] = 0x40;
    p[8] = 0x80;
    p[9] = (uint8_t)(size_bytes >> 8);
    p[10] = (uint8_t)size_bytes;
    return walk(kid, true, p, out->b);
}

hx_err hxd_014_key_id_open(const uint8_t kid[HXD_014_KID_LEN], const struct hx_uuid *id,
                           uint64_t *pos, uint32_t *size_bytes)
{
    static const uint8_t zeros[5] = {0};
    uint8_t p[16];
    uint64_t v = 0;
    hx_err e;

    if (!in_set(id->b)) {
        return HX_ERR_NOT_FOUND;
    }
    if ((e = walk(kid, false, id->b, p)) != HX_OK) {
        return e == HX_ERR_NOT_FOUND ? HX_ERR_NOT_FOUND : e;
    }
    for (int i = 0; i < 6; i++) {
        v = (v << 8) | p[i];
    }
    *size_bytes = (uint32_t)p[9] << 8 | p[10];
    if (p[6] != 0x40 || p[7] != 0 || p[8] != 0x80 || CRYPTO_memcmp(p + 11, zeros, 5) != 0 ||
        v == 0 || *size_bytes == 0) {
        return HX_ERR_NOT_FOUND;
    }
    *pos = v;
    return HX_OK;
}

int hxd_014_sae_index(const struct hxd_014_saes *l, const char *sae)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->saes[i].id, sae) == 0) {
            return (int)i;
        }
    }
    return -1;
}

void hxd_014_authorize(const struct hxd_014_saes *local, const struct hxd_014_saes *remote,
                       const char *caller, const char *other, struct hxd_014_verdict *v)
{
    memset(v, 0, sizeof(*v));
    if ((v->local = hxd_014_sae_index(local, caller)) < 0) {
        v->http = 401; /* not an SAE of this node: ETSI 014 "unauthorized" */
        return;
    }
    if (hxd_014_sae_index(local, other) >= 0) {
        v->http = 400;
        v->msg =
            "the other SAE is attached to this node too: keys go between SAEs of two "
            "nodes";
        return;
    }
    if ((v->remote = hxd_014_sae_index(remote, other)) < 0) {
        v->http = 400;
        v->msg = "unknown SAE ID (attached to no peer node of this one)";
        return;
    }
}
