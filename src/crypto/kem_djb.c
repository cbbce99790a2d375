#include "crypto/kem_djb.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <mceliece.h>
#include <ntruprime.h>

typedef void (*keypair_fn)(unsigned char *pk, unsigned char *sk);
typedef int (*enc_fn)(unsigned char *ct, unsigned char *ss, const unsigned char *pk);
typedef int (*dec_fn)(unsigned char *ss, const unsigned char *ct, const unsigned char *sk);

/* libntruprime's enc/dec return nothing (they cannot fail); these adapt them to enc_fn/dec_fn. */
#define NTRU_ADAPT(p)                                                                       \
    static int p##_enc_i(unsigned char *c, unsigned char *k, const unsigned char *pk)       \
    {                                                                                       \
        p##_enc(c, k, pk);                                                                  \
        return 0;                                                                           \
    }                                                                                       \
    static int p##_dec_i(unsigned char *k, const unsigned char *c, const unsigned char *sk) \
    {                                                                                       \
        p##_dec(k, c, sk);                                                                  \
        return 0;                                                                           \
    }
NTRU_ADAPT(sntrup653)
NTRU_ADAPT(sntrup761)
NTRU_ADAPT(sntrup857)
NTRU_ADAPT(sntrup953)
NTRU_ADAPT(sntrup1013)
NTRU_ADAPT(sntrup1277)

struct djb {
    keypair_fn keypair;
    enc_fn enc;
    dec_fn dec;
    size_t pk, sk, ct;
    unsigned pad_bits; /* Classic McEliece: padding bits at the top of each row's last byte */
    size_t row_bytes;
};

#define MC(p, pad, row)                                                        \
    {                                                                          \
        p##_keypair, p##_enc, p##_dec, p##_PUBLICKEYBYTES, p##_SECRETKEYBYTES, \
            p##_CIPHERTEXTBYTES, pad, row                                      \
    }
#define NT(p)                                                                      \
    {                                                                              \
        p##_keypair, p##_enc_i, p##_dec_i, p##_PUBLICKEYBYTES, p##_SECRETKEYBYTES, \
            p##_CIPHERTEXTBYTES, 0, 0                                              \
    }

static const struct djb algs[HX_KEM_ALG_COUNT] = {
    [HX_KEM_MCELIECE_348864] = MC(mceliece348864, 0, 0),
    [HX_KEM_MCELIECE_348864F] = MC(mceliece348864f, 0, 0),
    [HX_KEM_MCELIECE_460896] = MC(mceliece460896, 0, 0),
    [HX_KEM_MCELIECE_460896F] = MC(mceliece460896f, 0, 0),
    [HX_KEM_MCELIECE_6688128] = MC(mceliece6688128, 0, 0),
    [HX_KEM_MCELIECE_6688128F] = MC(mceliece6688128f, 0, 0),
    /* n = 6960, mt = 1547 rows of k = 5413 bits: 677 bytes, the top 3 bits of the last zero */
    [HX_KEM_MCELIECE_6960119] = MC(mceliece6960119, 3, 677),
    [HX_KEM_MCELIECE_6960119F] = MC(mceliece6960119f, 3, 677),
    [HX_KEM_MCELIECE_8192128] = MC(mceliece8192128, 0, 0),
    [HX_KEM_MCELIECE_8192128F] = MC(mceliece8192128f, 0, 0),
    [HX_KEM_SNTRUP653] = NT(sntrup653),
    [HX_KEM_SNTRUP761] = NT(sntrup761),
    [HX_KEM_SNTRUP857] = NT(sntrup857),
    [HX_KEM_SNTRUP953] = NT(sntrup953),
    [HX_KEM_SNTRUP1013] = NT(sntrup1013),
    [HX_KEM_SNTRUP1277] = NT(sntrup1277),
};

_Static_assert(mceliece6960119_PUBLICKEYBYTES == 677 * 1547, "6960119 row layout");
_Static_assert(mceliece8192128_PUBLICKEYBYTES <= HX_KEM_MAX_PUBLIC, "HX_KEM_MAX_PUBLIC");
_Static_assert(sntrup1277_CIPHERTEXTBYTES <= HX_KEM_MAX_CIPHERTEXT, "HX_KEM_MAX_CIPHERTEXT");
_Static_assert(mceliece8192128_SECRETKEYBYTES <= HX_KEM_MAX_SECRET_KEY &&
                   mceliece8192128f_SECRETKEYBYTES <= HX_KEM_MAX_SECRET_KEY &&
                   mceliece6960119_SECRETKEYBYTES <= HX_KEM_MAX_SECRET_KEY &&
                   sntrup1277_SECRETKEYBYTES <= HX_KEM_MAX_SECRET_KEY,
               "HX_KEM_MAX_SECRET_KEY");

static const struct djb *get(enum hx_kem_alg alg)
{
    return (unsigned)alg < HX_KEM_ALG_COUNT && algs[alg].keypair != NULL ? &algs[alg] : NULL;
}

size_t hx_kem_djb_secret_len(enum hx_kem_alg alg)
{
    const struct djb *d = get(alg);
    return d != NULL ? d->sk : 0;
}

hx_err hx_kem_djb_keypair(enum hx_kem_alg alg, struct hx_secret **sk, uint8_t *pub)
{
    const struct djb *d = get(alg);
    hx_err e;

    *sk = NULL;
    if (d == NULL) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = hx_secret_new(d->sk, sk)) != HX_OK) {
        return e;
    }
    d->keypair(pub, hx_secret_data_mut(*sk));
    return HX_OK;
}

hx_err hx_kem_djb_check_public(enum hx_kem_alg alg, const uint8_t *pub, size_t len)
{
    const struct djb *d = get(alg);
    uint8_t bad = 0;

    if (d == NULL || len != d->pk) {
        return HX_ERR_BAD_VALUE;
    }
    if (d->pad_bits != 0) {
        uint8_t mask = (uint8_t)(0xffu << (8 - d->pad_bits));
        for (size_t off = d->row_bytes - 1; off < len; off += d->row_bytes) {
            bad |= pub[off] & mask;
        }
    }
    return bad == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

hx_err hx_kem_djb_enc(enum hx_kem_alg alg, const uint8_t *pub, uint8_t *ct, struct hx_secret **ss)
{
    const struct djb *d = get(alg);
    hx_err e;

    *ss = NULL;
    if (d == NULL) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = hx_secret_new(32, ss)) != HX_OK) {
        return e;
    }
    if (d->enc(ct, hx_secret_data_mut(*ss), pub) != 0) {
        hx_secret_free(*ss);
        *ss = NULL;
        return HX_ERR_CRYPTO;
    }
    return HX_OK;
}

hx_err hx_kem_djb_dec(enum hx_kem_alg alg, const struct hx_secret *sk, const uint8_t *ct,
                      struct hx_secret **ss)
{
    const struct djb *d = get(alg);
    hx_err e;

    *ss = NULL;
    if (d == NULL || hx_secret_len(sk) != d->sk) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = hx_secret_new(32, ss)) != HX_OK) {
        return e;
    }
    /* Both libraries decapsulate a bad ciphertext to a pseudo-random secret (implicit
     * rejection); a non-zero return would be an internal failure. */
    if (d->dec(hx_secret_data_mut(*ss), ct, hx_secret_data(sk)) != 0) {
        hx_secret_free(*ss);
        *ss = NULL;
        return HX_ERR_CRYPTO;
    }
    return HX_OK;
}

static _Thread_local hx_kem_test_rng test_fill;
static _Thread_local void *test_ctx;
static _Thread_local unsigned long rand_calls;

void hx_kem_djb_set_test_rng(hx_kem_test_rng fill, void *ctx)
{
    test_fill = fill;
    test_ctx = ctx;
}

unsigned long hx_kem_djb_rand_calls(void)
{
    return rand_calls;
}

/*
 * The randombytes() that libmceliece and libntruprime call (librandombytes' symbol name, as
 * their randombytes.h maps it). It cannot return an error, so a failing CSPRNG ends the process
 * rather than hand out predictable key material (librandombytes does the same).
 */
void randombytes_internal_void_voidstar_longlong(void *x, long long n);
void randombytes_internal_void_voidstar_longlong(void *x, long long n)
{
    uint8_t *p = x;

    rand_calls++;
    if (test_fill != NULL) {
        test_fill(test_ctx, p, (size_t)n);
        return;
    }
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(p, chunk) != 1) {
            abort();
        }
        p += chunk;
        n -= chunk;
    }
}
