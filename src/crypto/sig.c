#include "crypto/sig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "common/secret.h"

struct hx_sig_key {
    enum hx_sig_alg alg; /* HX_SIG_ALG_COUNT: classical */
    const char *classic; /* "ECDSA", "Ed25519", "RSA" */
    EVP_PKEY *pkey;
};

static const struct {
    const char *name;
    struct hx_sig_sizes sizes; /* FIPS 204 table 2 */
} sigs[HX_SIG_ALG_COUNT] = {
    [HX_SIG_ML_DSA_44] = {"ML-DSA-44", {1312, 2420}},
    [HX_SIG_ML_DSA_65] = {"ML-DSA-65", {1952, 3309}},
    [HX_SIG_ML_DSA_87] = {"ML-DSA-87", {2592, 4627}},
};

/* A PEM private key file is small; anything larger is not one. */
#define PEM_MAX (64 * 1024)

const char *hx_sig_name(enum hx_sig_alg alg)
{
    return (unsigned)alg < HX_SIG_ALG_COUNT ? sigs[alg].name : "unknown";
}

hx_err hx_sig_parse(const char *name, enum hx_sig_alg *out)
{
    for (unsigned i = 0; i < HX_SIG_ALG_COUNT; i++) {
        if (strcasecmp(name, sigs[i].name) == 0) {
            *out = (enum hx_sig_alg)i;
            return HX_OK;
        }
    }
    return HX_ERR_UNSUPPORTED;
}

void hx_sig_standard_sizes(enum hx_sig_alg alg, struct hx_sig_sizes *out)
{
    if ((unsigned)alg < HX_SIG_ALG_COUNT) {
        *out = sigs[alg].sizes;
    } else {
        memset(out, 0, sizeof(*out));
    }
}

static hx_err wrap_classic(EVP_PKEY *pkey, struct hx_sig_key **out)
{
    static const struct {
        const char *type, *name;
    } classic[] = {{"EC", "ECDSA"}, {"ED25519", "Ed25519"}, {"RSA", "RSA"}};
    struct hx_sig_key *k;

    for (size_t i = 0; i < sizeof(classic) / sizeof(classic[0]); i++) {
        if (EVP_PKEY_is_a(pkey, classic[i].type)) {
            if ((k = calloc(1, sizeof(*k))) == NULL) {
                EVP_PKEY_free(pkey);
                return HX_ERR_NOMEM;
            }
            k->alg = HX_SIG_ALG_COUNT;
            k->classic = classic[i].name;
            k->pkey = pkey;
            *out = k;
            return HX_OK;
        }
    }
    EVP_PKEY_free(pkey);
    return HX_ERR_UNSUPPORTED;
}

static hx_err wrap(EVP_PKEY *pkey, struct hx_sig_key **out)
{
    struct hx_sig_key *k;

    for (unsigned i = 0; i < HX_SIG_ALG_COUNT; i++) {
        if (EVP_PKEY_is_a(pkey, sigs[i].name)) {
            if ((k = calloc(1, sizeof(*k))) == NULL) {
                EVP_PKEY_free(pkey);
                return HX_ERR_NOMEM;
            }
            k->alg = (enum hx_sig_alg)i;
            k->pkey = pkey;
            *out = k;
            return HX_OK;
        }
    }
    return wrap_classic(pkey, out);
}

hx_err hx_sig_keygen(enum hx_sig_alg alg, struct hx_sig_key **out)
{
    EVP_PKEY *pkey = NULL;

    *out = NULL;
    if ((unsigned)alg >= HX_SIG_ALG_COUNT) {
        return HX_ERR_INVALID_ARG;
    }
    if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, sigs[alg].name)) == NULL) {
        return HX_ERR_CRYPTO;
    }
    return wrap(pkey, out);
}

hx_err hx_sig_key_load_pem(const char *path, struct hx_sig_key **out)
{
    struct stat st;
    char *buf = NULL;
    ssize_t n;
    size_t got = 0;
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    int fd;
    hx_err e;

    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        return errno == ENOENT ? HX_ERR_IO_NOT_FOUND : errno == EACCES ? HX_ERR_IO_PERM : HX_ERR_IO;
    }
    /* OpenSSH sshkey_perm_ok: a private key others can read is compromised; refuse it. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        e = HX_ERR_IO;
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        e = HX_ERR_IO_PERM;
        goto out;
    }
    if (st.st_size > PEM_MAX) {
        e = HX_ERR_TOO_LARGE;
        goto out;
    }
    if ((buf = hx_secure_alloc(PEM_MAX)) == NULL) {
        e = HX_ERR_NOMEM;
        goto out;
    }
    while (got < PEM_MAX && (n = read(fd, buf + got, PEM_MAX - got)) != 0) {
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            e = HX_ERR_IO;
            goto out;
        }
        got += (size_t)n;
    }
    if ((bio = BIO_new_mem_buf(buf, (int)got)) == NULL) {
        e = HX_ERR_NOMEM;
        goto out;
    }
    if ((pkey = PEM_read_bio_PrivateKey_ex(bio, NULL, NULL, NULL, NULL, NULL)) == NULL) {
        e = HX_ERR_BAD_VALUE;
        goto out;
    }
    e = wrap(pkey, out);
out:
    BIO_free(bio);
    hx_secure_free(buf, PEM_MAX);
    close(fd);
    return e;
}

hx_err hx_sig_key_from_public(enum hx_sig_alg alg, const uint8_t *pub, size_t len,
                              struct hx_sig_key **out)
{
    EVP_PKEY *pkey;

    *out = NULL;
    if ((unsigned)alg >= HX_SIG_ALG_COUNT) {
        return HX_ERR_INVALID_ARG;
    }
    if (len != sigs[alg].sizes.public_key) {
        return HX_ERR_BAD_VALUE;
    }
    if ((pkey = EVP_PKEY_new_raw_public_key_ex(NULL, sigs[alg].name, NULL, pub, len)) == NULL) {
        return HX_ERR_BAD_VALUE;
    }
    return wrap(pkey, out);
}

hx_err hx_sig_public(const struct hx_sig_key *key, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = 0;

    if (EVP_PKEY_get_raw_public_key(key->pkey, NULL, &n) != 1) {
        return HX_ERR_CRYPTO;
    }
    if (n > cap) {
        return HX_ERR_NOSPACE;
    }
    if (EVP_PKEY_get_raw_public_key(key->pkey, out, &n) != 1) {
        return HX_ERR_CRYPTO;
    }
    *len = n;
    return HX_OK;
}

hx_err hx_sig_key_from_evp(void *evp_pkey, struct hx_sig_key **out)
{
    *out = NULL;
    if (evp_pkey == NULL || EVP_PKEY_up_ref(evp_pkey) != 1) {
        return HX_ERR_INVALID_ARG;
    }
    return wrap(evp_pkey, out);
}

enum hx_sig_alg hx_sig_key_alg(const struct hx_sig_key *key)
{
    return key->alg;
}

bool hx_sig_key_is_pq(const struct hx_sig_key *key)
{
    return key->alg < HX_SIG_ALG_COUNT;
}

const char *hx_sig_key_name(const struct hx_sig_key *key)
{
    return key->classic != NULL ? key->classic : sigs[key->alg].name;
}

/* Classical: EVP_DigestSign over u8(len ctx) || ctx || msg, SHA-256 (none for Ed25519). */
static hx_err classic_op(const struct hx_sig_key *key, int sign, const uint8_t *ctx, size_t ctx_len,
                         const uint8_t *msg, size_t msg_len, uint8_t *sig, size_t *sig_len)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    const char *md = strcmp(key->classic, "Ed25519") == 0 ? NULL : "SHA2-256";
    uint8_t *buf = NULL;
    size_t len = 1 + ctx_len + msg_len;
    hx_err e = HX_ERR_CRYPTO;
    int rc;

    if (mctx == NULL || ctx_len > HX_SIG_MAX_CONTEXT || (buf = malloc(len)) == NULL) {
        EVP_MD_CTX_free(mctx);
        return ctx_len > HX_SIG_MAX_CONTEXT ? HX_ERR_INVALID_ARG : HX_ERR_NOMEM;
    }
    buf[0] = (uint8_t)ctx_len;
    if (ctx_len > 0) {
        memcpy(buf + 1, ctx, ctx_len);
    }
    if (msg_len > 0) {
        memcpy(buf + 1 + ctx_len, msg, msg_len);
    }
    rc = sign ? EVP_DigestSignInit_ex(mctx, &pctx, md, NULL, NULL, key->pkey, NULL)
              : EVP_DigestVerifyInit_ex(mctx, &pctx, md, NULL, NULL, key->pkey, NULL);
    if (rc == 1 && strcmp(key->classic, "RSA") == 0) {
        rc = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    }
    if (rc == 1) {
        if (sign) {
            e = EVP_DigestSign(mctx, sig, sig_len, buf, len) == 1 ? HX_OK : HX_ERR_CRYPTO;
        } else {
            e = EVP_DigestVerify(mctx, sig, *sig_len, buf, len) == 1 ? HX_OK : HX_ERR_VERIFY;
        }
    } else if (!sign) {
        e = HX_ERR_VERIFY;
    }
    free(buf);
    EVP_MD_CTX_free(mctx);
    return e;
}

void hx_sig_key_free(struct hx_sig_key *key)
{
    if (key == NULL) {
        return;
    }
    EVP_PKEY_free(key->pkey);
    free(key);
}

/* A pure ML-DSA signing or verifying context with the context string set (FIPS 204 5.2). */
static hx_err message_ctx(const struct hx_sig_key *key, int sign, const uint8_t *ctx,
                          size_t ctx_len, EVP_PKEY_CTX **out)
{
    OSSL_PARAM params[2];
    EVP_SIGNATURE *alg = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    static const uint8_t empty[1];
    hx_err e = HX_ERR_CRYPTO;
    int rc;

    *out = NULL;
    if (ctx_len > HX_SIG_MAX_CONTEXT) {
        return HX_ERR_INVALID_ARG;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_CONTEXT_STRING,
                                                  (void *)(ctx_len > 0 ? ctx : empty), ctx_len);
    params[1] = OSSL_PARAM_construct_end();
    if ((alg = EVP_SIGNATURE_fetch(NULL, sigs[key->alg].name, NULL)) == NULL ||
        (pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL)) == NULL) {
        goto out;
    }
    rc = sign ? EVP_PKEY_sign_message_init(pctx, alg, params)
              : EVP_PKEY_verify_message_init(pctx, alg, params);
    if (rc != 1) {
        goto out;
    }
    *out = pctx;
    pctx = NULL;
    e = HX_OK;
out:
    EVP_PKEY_CTX_free(pctx);
    EVP_SIGNATURE_free(alg);
    return e;
}

hx_err hx_sig_sign(const struct hx_sig_key *key, const uint8_t *ctx, size_t ctx_len,
                   const uint8_t *msg, size_t msg_len, uint8_t *sig, size_t sig_cap,
                   size_t *sig_len)
{
    EVP_PKEY_CTX *pctx = NULL;
    size_t n = sig_cap;
    hx_err e;

    if (key->classic != NULL) {
        if (sig_cap < (size_t)EVP_PKEY_get_size(key->pkey)) {
            return HX_ERR_NOSPACE;
        }
        /* EVP_DigestSign takes the buffer's size in and gives the signature's out. */
        if ((e = classic_op(key, 1, ctx, ctx_len, msg, msg_len, sig, &n)) == HX_OK) {
            *sig_len = n;
        }
        return e;
    }
    if (sig_cap < sigs[key->alg].sizes.signature) {
        return HX_ERR_NOSPACE;
    }
    if ((e = message_ctx(key, 1, ctx, ctx_len, &pctx)) != HX_OK) {
        return e;
    }
    e = EVP_PKEY_sign(pctx, sig, &n, msg, msg_len) == 1 ? HX_OK : HX_ERR_CRYPTO;
    EVP_PKEY_CTX_free(pctx);
    if (e == HX_OK) {
        *sig_len = n;
    }
    return e;
}

hx_err hx_sig_verify(const struct hx_sig_key *key, const uint8_t *ctx, size_t ctx_len,
                     const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len)
{
    EVP_PKEY_CTX *pctx = NULL;
    hx_err e;

    if (key->classic != NULL) {
        size_t n = sig_len;
        return classic_op(key, 0, ctx, ctx_len, msg, msg_len, (uint8_t *)sig, &n);
    }
    if (sig_len != sigs[key->alg].sizes.signature) {
        return HX_ERR_VERIFY;
    }
    if ((e = message_ctx(key, 0, ctx, ctx_len, &pctx)) != HX_OK) {
        return e;
    }
    e = EVP_PKEY_verify(pctx, sig, sig_len, msg, msg_len) == 1 ? HX_OK : HX_ERR_VERIFY;
    EVP_PKEY_CTX_free(pctx);
    return e;
}
