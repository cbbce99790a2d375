#include "crypto/kdf.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "common/secret.h"

/*
 * Algorithm objects are fetched once per process: an implicit fetch on every call costs a
 * lock and a hash lookup, which shows in the per-key budget. Fetched objects are immutable
 * and safe to share between threads.
 */
static struct {
    EVP_KDF *sskdf;
    EVP_MAC *hmac;
    EVP_MAC *kmac128;
    EVP_MAC *kmac256;
    EVP_MD *sha256;
    EVP_MD *sha384;
    /* HMAC contexts with their digest set and no key, one per enum hx_md: every HMAC is a copy
     * of one, keyed (EVP_MAC_CTX_dup reads the template only; nothing ever writes it). */
    EVP_MAC_CTX *hmac_tmpl[HX_MD_COUNT];
} algs;
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;

static void fetch_algs(void)
{
    algs.sskdf = EVP_KDF_fetch(NULL, "SSKDF", NULL);
    algs.hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    algs.kmac128 = EVP_MAC_fetch(NULL, "KMAC-128", NULL);
    algs.kmac256 = EVP_MAC_fetch(NULL, "KMAC-256", NULL);
    algs.sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    algs.sha384 = EVP_MD_fetch(NULL, "SHA2-384", NULL);
    for (int i = 0; i < HX_MD_COUNT && algs.hmac != NULL; i++) {
        const EVP_MD *md = i == HX_MD_SHA256 ? algs.sha256 : algs.sha384;
        OSSL_PARAM params[2] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                             (char *)(md != NULL ? EVP_MD_get0_name(md) : ""), 0),
            OSSL_PARAM_construct_end()};
        if ((algs.hmac_tmpl[i] = EVP_MAC_CTX_new(algs.hmac)) != NULL && md != NULL &&
            EVP_MAC_CTX_set_params(algs.hmac_tmpl[i], params) != 1) {
            EVP_MAC_CTX_free(algs.hmac_tmpl[i]);
            algs.hmac_tmpl[i] = NULL;
        }
    }
}

static hx_err ensure_algs(void)
{
    if (pthread_once(&algs_once, fetch_algs) != 0) {
        return HX_ERR_INTERNAL;
    }
    if (algs.sskdf == NULL || algs.hmac == NULL || algs.kmac128 == NULL || algs.kmac256 == NULL ||
        algs.sha256 == NULL || algs.sha384 == NULL || algs.hmac_tmpl[HX_MD_SHA256] == NULL ||
        algs.hmac_tmpl[HX_MD_SHA384] == NULL) {
        return HX_ERR_UNSUPPORTED;
    }
    return HX_OK;
}

static const struct {
    const char *name;
    int sskdf;       /* 0: HKDF, 1: SSKDF */
    const char *mac; /* SSKDF: "HMAC" or "KMAC128"/"KMAC256" */
    const char *digest;
    size_t block;
} kdfs[HX_KDF_ALG_COUNT] = {
    [HX_KDF_HKDF_SHA256] = {"hkdf-sha256", 0, NULL, "SHA2-256", 32},
    [HX_KDF_HKDF_SHA384] = {"hkdf-sha384", 0, NULL, "SHA2-384", 48},
    [HX_KDF_SSKDF_HMAC_SHA256] = {"sskdf-hmac-sha256", 1, "HMAC", "SHA2-256", 32},
    [HX_KDF_SSKDF_HMAC_SHA384] = {"sskdf-hmac-sha384", 1, "HMAC", "SHA2-384", 48},
    [HX_KDF_SSKDF_KMAC128] = {"sskdf-kmac128", 1, "KMAC128", NULL, 32},
    [HX_KDF_SSKDF_KMAC256] = {"sskdf-kmac256", 1, "KMAC256", NULL, 64},
};

size_t hx_md_len(enum hx_md md)
{
    return md == HX_MD_SHA384 ? 48 : 32;
}

static const EVP_MD *md_of(enum hx_md md)
{
    return md == HX_MD_SHA384 ? algs.sha384 : algs.sha256;
}

const char *hx_kdf_name(enum hx_kdf_alg alg)
{
    return (unsigned)alg < HX_KDF_ALG_COUNT ? kdfs[alg].name : "unknown";
}

hx_err hx_kdf_parse(const char *name, enum hx_kdf_alg *out)
{
    for (unsigned i = 0; i < HX_KDF_ALG_COUNT; i++) {
        if (strcasecmp(name, kdfs[i].name) == 0) {
            *out = (enum hx_kdf_alg)i;
            return HX_OK;
        }
    }
    return HX_ERR_UNSUPPORTED;
}

size_t hx_kdf_block_len(enum hx_kdf_alg alg)
{
    return (unsigned)alg < HX_KDF_ALG_COUNT ? kdfs[alg].block : 0;
}

size_t hx_kdf_max_output(enum hx_kdf_alg alg)
{
    if ((unsigned)alg >= HX_KDF_ALG_COUNT) {
        return 0;
    }
    if (!kdfs[alg].sskdf) {
        return 255 * kdfs[alg].block; /* RFC 5869: L <= 255 HashLen */
    }
    return HX_KDF_MAX_OUTPUT;
}

hx_err hx_kdf_derive(enum hx_kdf_alg alg, const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                     size_t salt_len, const uint8_t *info, size_t info_len, uint8_t *out,
                     size_t out_len)
{
    OSSL_PARAM params[6], *p = params;
    EVP_KDF_CTX *ctx = NULL;
    hx_err e;

    if ((e = ensure_algs()) != HX_OK) {
        return e;
    }
    if ((unsigned)alg >= HX_KDF_ALG_COUNT || ikm_len == 0 || out_len == 0 ||
        out_len > hx_kdf_max_output(alg)) {
        return HX_ERR_INVALID_ARG;
    }
    if (!kdfs[alg].sskdf) {
        struct hx_iov in = {ikm, ikm_len}, inf = {info, info_len};
        return hx_hkdf(alg == HX_KDF_HKDF_SHA256 ? HX_MD_SHA256 : HX_MD_SHA384, salt, salt_len, &in,
                       1, &inf, info_len > 0 ? 1 : 0, out, out_len);
    }
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, (char *)kdfs[alg].mac, 0);
    if (kdfs[alg].digest != NULL) {
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)kdfs[alg].digest, 0);
    }
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    if (salt_len > 0) {
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    }
    if (info_len > 0) {
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    }
    *p = OSSL_PARAM_construct_end();

    if ((ctx = EVP_KDF_CTX_new(algs.sskdf)) == NULL) {
        return HX_ERR_NOMEM;
    }
    e = EVP_KDF_derive(ctx, out, out_len, params) == 1 ? HX_OK : HX_ERR_CRYPTO;
    EVP_KDF_CTX_free(ctx);
    if (e != HX_OK) {
        OPENSSL_cleanse(out, out_len);
    }
    return e;
}

/*
 * HMAC accepts an empty key (CasKDF's first round) but OpenSSL wants a non-NULL pointer for
 * it; on a context copied from a template that was never keyed a NULL key fails ("changing MD
 * requires a key"): so an empty key is this byte's address, never NULL.
 */
static const uint8_t empty_key[1];

/*
 * MAC(key, parts) with ctx, which stays the caller's. key NULL: the key ctx holds from its last
 * init (HMAC keeps its keyed state: the key schedule is not computed again).
 */
static hx_err mac_run(EVP_MAC_CTX *ctx, const OSSL_PARAM *params, const uint8_t *key,
                      size_t key_len, const struct hx_iov *parts, size_t n_parts, uint8_t *out,
                      size_t out_len)
{
    size_t got = 0;

    if (EVP_MAC_init(ctx, key, key != NULL ? key_len : 0, params) != 1) {
        return HX_ERR_CRYPTO;
    }
    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i].len > 0 && EVP_MAC_update(ctx, parts[i].p, parts[i].len) != 1) {
            return HX_ERR_CRYPTO;
        }
    }
    if (EVP_MAC_final(ctx, out, &got, out_len) != 1 || got != out_len) {
        OPENSSL_cleanse(out, out_len);
        return HX_ERR_CRYPTO;
    }
    return HX_OK;
}

/* mac_run with a context of its own (taken: freed here; NULL: out of memory). */
static hx_err mac_parts(EVP_MAC_CTX *ctx, const OSSL_PARAM *params, const uint8_t *key,
                        size_t key_len, const struct hx_iov *parts, size_t n_parts, uint8_t *out,
                        size_t out_len)
{
    hx_err e;

    if (ctx == NULL) {
        return HX_ERR_NOMEM;
    }
    e = mac_run(ctx, params, key_len > 0 ? key : empty_key, key_len, parts, n_parts, out, out_len);
    EVP_MAC_CTX_free(ctx); /* wipes its key schedule */
    return e;
}

hx_err hx_hmac(enum hx_md md, const uint8_t *key, size_t key_len, const struct hx_iov *parts,
               size_t n_parts, uint8_t *out)
{
    hx_err e;

    if ((e = ensure_algs()) != HX_OK) {
        return e;
    }
    if ((unsigned)md >= HX_MD_COUNT) {
        return HX_ERR_INVALID_ARG;
    }
    return mac_parts(EVP_MAC_CTX_dup(algs.hmac_tmpl[md]), NULL, key, key_len, parts, n_parts, out,
                     hx_md_len(md));
}

/*
 * RFC 5869 on one HMAC context copied from the digest's template: PRK = HMAC(salt, IKM) (no
 * salt: HMAC's key is then all zeros, as RFC 5869 says, which an empty key is), T(i) =
 * HMAC(PRK, T(i-1) || info || i), PRK keyed once for every block. The same bytes as OpenSSL's
 * HKDF for every input it accepts (tests/unit/test_kdf.c: RFC 5869's vectors and EVP_KDF on
 * generated input; OpenSSL also refuses an info over 32 KiB, RFC 5869 sets no limit), at about
 * half its cost: EVP_KDF's HKDF fetches HMAC and the digest by name on every call.
 */
hx_err hx_hkdf(enum hx_md md, const uint8_t *salt, size_t salt_len, const struct hx_iov *ikm,
               size_t n_ikm, const struct hx_iov *info, size_t n_info, uint8_t *out, size_t out_len)
{
    size_t hl = hx_md_len(md), done = 0;
    uint8_t prk[HX_MD_MAX], t[HX_MD_MAX];
    struct hx_iov parts[HX_HKDF_MAX_INFO + 2];
    EVP_MAC_CTX *ctx;
    hx_err e;

    if ((unsigned)md >= HX_MD_COUNT || n_info > HX_HKDF_MAX_INFO || out_len == 0 ||
        out_len > 255 * hl) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = ensure_algs()) != HX_OK) {
        return e;
    }
    if ((ctx = EVP_MAC_CTX_dup(algs.hmac_tmpl[md])) == NULL) {
        return HX_ERR_NOMEM;
    }
    e = mac_run(ctx, NULL, salt_len > 0 ? salt : empty_key, salt_len, ikm, n_ikm, prk, hl);
    for (unsigned i = 1; e == HX_OK && done < out_len; i++) {
        uint8_t ctr = (uint8_t)i;
        size_t n = 0;
        if (i > 1) {
            parts[n++] = (struct hx_iov){t, hl};
        }
        for (size_t k = 0; k < n_info; k++) {
            parts[n++] = info[k];
        }
        parts[n++] = (struct hx_iov){&ctr, 1};
        /* PRK keys the first block; the later ones reuse that keyed state */
        if ((e = mac_run(ctx, NULL, i == 1 ? prk : NULL, hl, parts, n, t, hl)) == HX_OK) {
            size_t k = out_len - done < hl ? out_len - done : hl;
            memcpy(out + done, t, k);
            done += k;
        }
    }
    EVP_MAC_CTX_free(ctx);
    OPENSSL_cleanse(prk, sizeof(prk));
    OPENSSL_cleanse(t, sizeof(t));
    if (e != HX_OK) {
        OPENSSL_cleanse(out, out_len);
    }
    return e;
}

hx_err hx_kmac(unsigned bits, const uint8_t *key, size_t key_len, const struct hx_iov *parts,
               size_t n_parts, uint8_t *out, size_t out_len)
{
    OSSL_PARAM params[2];
    hx_err e;

    if ((e = ensure_algs()) != HX_OK) {
        return e;
    }
    if ((bits != 128 && bits != 256) || key_len < 4 || out_len == 0 ||
        out_len > HX_KDF_MAX_OUTPUT) {
        return HX_ERR_INVALID_ARG;
    }
    params[0] = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &out_len);
    params[1] = OSSL_PARAM_construct_end();
    return mac_parts(EVP_MAC_CTX_new(bits == 128 ? algs.kmac128 : algs.kmac256), params, key,
                     key_len, parts, n_parts, out, out_len);
}

hx_err hx_hash(enum hx_md md, const struct hx_iov *parts, size_t n_parts, uint8_t *out)
{
    EVP_MD_CTX *ctx;
    hx_err e;

    if ((e = ensure_algs()) != HX_OK) {
        return e;
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL) {
        return HX_ERR_NOMEM;
    }
    e = HX_ERR_CRYPTO;
    if (EVP_DigestInit_ex2(ctx, md_of(md), NULL) != 1) {
        goto out;
    }
    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i].len > 0 && EVP_DigestUpdate(ctx, parts[i].p, parts[i].len) != 1) {
            goto out;
        }
    }
    if (EVP_DigestFinal_ex(ctx, out, NULL) != 1) {
        goto out;
    }
    e = HX_OK;
out:
    EVP_MD_CTX_free(ctx);
    return e;
}

static void be32(uint8_t out[4], size_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

hx_err hx_f_cat(const struct hx_iov args[3], uint8_t *out, size_t cap, size_t *out_len)
{
    size_t total = 12, off = 0;

    for (int i = 0; i < 3; i++) {
        if (args[i].len > UINT32_MAX || args[i].len > SIZE_MAX - total) {
            return HX_ERR_TOO_LARGE;
        }
        total += args[i].len;
    }
    if (total > cap) {
        return HX_ERR_NOSPACE;
    }
    for (int i = 0; i < 3; i++) {
        be32(out + off, args[i].len);
        off += 4;
        if (args[i].len > 0) {
            memcpy(out + off, args[i].p, args[i].len);
            off += args[i].len;
        }
    }
    *out_len = off;
    return HX_OK;
}

hx_err hx_f_hash(enum hx_md md, const struct hx_iov args[3], uint8_t *out)
{
    uint8_t lens[3][4];
    struct hx_iov parts[6];

    for (int i = 0; i < 3; i++) {
        if (args[i].len > UINT32_MAX) {
            return HX_ERR_TOO_LARGE;
        }
        be32(lens[i], args[i].len);
        parts[2 * i] = (struct hx_iov){lens[i], 4};
        parts[2 * i + 1] = args[i];
    }
    return hx_hash(md, parts, 6, out);
}

static bool is_kmac(enum hx_kdf_alg alg)
{
    return alg == HX_KDF_SSKDF_KMAC128 || alg == HX_KDF_SSKDF_KMAC256;
}

static enum hx_md md_for(enum hx_kdf_alg alg)
{
    return alg == HX_KDF_HKDF_SHA384 || alg == HX_KDF_SSKDF_HMAC_SHA384 ? HX_MD_SHA384
                                                                        : HX_MD_SHA256;
}

/*
 * The KDF context of one exchange: f_hash(info, MA, MB) or f_cat(info, MA, MB) for KMAC.
 * Written into a heap buffer (f_cat of messages can be large; they are public).
 */
static hx_err context_of(enum hx_kdf_alg alg, const struct hx_ts103744_round *r, uint8_t **out,
                         size_t *out_len)
{
    const struct hx_iov args[3] = {r->info, r->ma, r->mb};
    size_t cap;
    hx_err e;

    *out = NULL;
    if (!is_kmac(alg)) {
        if ((*out = OPENSSL_malloc(48)) == NULL) {
            return HX_ERR_NOMEM;
        }
        *out_len = hx_md_len(md_for(alg));
        return hx_f_hash(md_for(alg), args, *out);
    }
    cap = 12 + r->info.len + r->ma.len + r->mb.len;
    if (r->info.len + r->ma.len + r->mb.len > (size_t)16 << 20) {
        return HX_ERR_TOO_LARGE;
    }
    if ((*out = OPENSSL_malloc(cap)) == NULL) {
        return HX_ERR_NOMEM;
    }
    if ((e = hx_f_cat(args, *out, cap, out_len)) != HX_OK) {
        OPENSSL_free(*out);
        *out = NULL;
    }
    return e;
}

/* psk || k_1 || ... || k_n in one secret. */
static hx_err concat_secrets(struct hx_iov psk, const struct hx_iov *keys, size_t n,
                             struct hx_secret **out)
{
    size_t total = psk.len, off = 0;
    uint8_t *dst;
    hx_err e;

    for (size_t i = 0; i < n; i++) {
        if (keys[i].len == 0 || keys[i].len > HX_SECRET_MAX_LEN) {
            return HX_ERR_INVALID_ARG;
        }
        total += keys[i].len;
    }
    if ((e = hx_secret_new(total, out)) != HX_OK) {
        return e;
    }
    dst = hx_secret_data_mut(*out);
    if (psk.len > 0) {
        memcpy(dst, psk.p, psk.len);
        off = psk.len;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(dst + off, keys[i].p, keys[i].len);
        off += keys[i].len;
    }
    return HX_OK;
}

hx_err hx_catkdf(enum hx_kdf_alg alg, struct hx_iov psk, const struct hx_iov *keys, size_t n,
                 const struct hx_ts103744_round *r, uint8_t *out, size_t out_len)
{
    struct hx_secret *secret = NULL;
    uint8_t *ctx = NULL;
    size_t ctx_len = 0;
    hx_err e;

    if ((unsigned)alg >= HX_KDF_ALG_COUNT || n == 0) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = concat_secrets(psk, keys, n, &secret)) != HX_OK) {
        goto out;
    }
    if ((e = context_of(alg, r, &ctx, &ctx_len)) != HX_OK) {
        goto out;
    }
    e = hx_kdf_derive(alg, hx_secret_data(secret), hx_secret_len(secret), r->label.p, r->label.len,
                      ctx, ctx_len, out, out_len);
out:
    OPENSSL_free(ctx);
    hx_secret_free(secret);
    return e;
}

hx_err hx_caskdf(enum hx_kdf_alg alg, struct hx_iov psk, const struct hx_iov *keys, size_t n,
                 const struct hx_ts103744_round *rounds, uint8_t *out, size_t out_len)
{
    struct hx_secret *chain = NULL, *next = NULL;
    uint8_t round_key[64];
    uint8_t *ctx = NULL;
    size_t block, ctx_len = 0, chain_len;
    hx_err e;

    if ((unsigned)alg >= HX_KDF_ALG_COUNT || n == 0 || out_len == 0) {
        return HX_ERR_INVALID_ARG;
    }
    block = hx_kdf_block_len(alg);
    if (out_len > hx_kdf_max_output(alg) - block) {
        return HX_ERR_INVALID_ARG;
    }
    /* chain_0: the psk, or nothing (HMAC), or block zero bytes (KMAC needs >= 4 key bytes). */
    if (psk.len > 0) {
        e = hx_secret_from(psk.p, psk.len, &chain);
        chain_len = psk.len;
    } else if (is_kmac(alg)) {
        e = hx_secret_new(block, &chain);
        chain_len = block;
    } else {
        e = HX_OK;
        chain_len = 0;
    }
    if (e != HX_OK) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct hx_iov args[3] = {keys[i], rounds[i].ma, rounds[i].mb};
        const uint8_t *ck = chain != NULL ? hx_secret_data(chain) : NULL;
        size_t cl = chain_len;
        size_t rlen;

        if (keys[i].len == 0) {
            e = HX_ERR_INVALID_ARG;
            goto out;
        }
        if (is_kmac(alg)) {
            /* R_i = KMAC(chain, f_cat(k_i, MA_i, MB_i), block) */
            size_t cap = 12 + keys[i].len + rounds[i].ma.len + rounds[i].mb.len;
            OPENSSL_clear_free(ctx, ctx_len);
            ctx = NULL;
            if ((ctx = OPENSSL_malloc(cap)) == NULL) {
                e = HX_ERR_NOMEM;
                goto out;
            }
            ctx_len = cap;
            if ((e = hx_f_cat(args, ctx, cap, &ctx_len)) != HX_OK) {
                goto out;
            }
            const struct hx_iov part = {ctx, ctx_len};
            rlen = block;
            e = hx_kmac(alg == HX_KDF_SSKDF_KMAC128 ? 128 : 256, ck, cl, &part, 1, round_key, rlen);
        } else {
            /* R_i = HMAC(chain, f_hash(k_i, MA_i, MB_i)) */
            uint8_t h[48];
            enum hx_md md = md_for(alg);
            if ((e = hx_f_hash(md, args, h)) != HX_OK) {
                goto out;
            }
            const struct hx_iov part = {h, hx_md_len(md)};
            rlen = hx_md_len(md);
            e = hx_hmac(md, ck, cl, &part, 1, round_key);
        }
        if (e != HX_OK) {
            goto out;
        }
        /* chain_i || KM_i = KDF(R_i, label_i, info_i, block + L) */
        if ((e = hx_secret_new(block + out_len, &next)) != HX_OK) {
            goto out;
        }
        e = hx_kdf_derive(alg, round_key, rlen, rounds[i].label.p, rounds[i].label.len,
                          rounds[i].info.p, rounds[i].info.len, hx_secret_data_mut(next),
                          block + out_len);
        OPENSSL_cleanse(round_key, sizeof(round_key));
        if (e != HX_OK) {
            goto out;
        }
        hx_secret_free(chain);
        chain = next; /* its first block bytes are chain_i, the rest KM_i */
        chain_len = block;
        next = NULL;
    }
    memcpy(out, hx_secret_data(chain) + block, out_len);
    e = HX_OK;
out:
    OPENSSL_cleanse(round_key, sizeof(round_key));
    OPENSSL_clear_free(ctx, ctx_len);
    hx_secret_free(chain);
    hx_secret_free(next);
    return e;
}
