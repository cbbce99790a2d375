/*
 * Key encapsulation: ML-KEM-512/768/1024 (FIPS 203) and X25519 (RFC 7748) from OpenSSL,
 * Classic McEliece (libmceliece) and Streamlined NTRU Prime (libntruprime, crypto/kem_djb.c),
 * all in the same shape.
 *
 * The holder of a decapsulation key publishes its public key; the other side encapsulates to it
 * (getting a ciphertext and a shared secret) and the holder decapsulates the ciphertext to the
 * same secret. X25519 as a KEM: the "ciphertext" is a fresh ephemeral public key and the secret
 * is the raw X25519 output (all-zero outputs from small-order points are refused).
 */
#ifndef HX_CRYPTO_KEM_H
#define HX_CRYPTO_KEM_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/secret.h"

enum hx_kem_alg {
    HX_KEM_ML_KEM_512 = 0,
    HX_KEM_ML_KEM_768,
    HX_KEM_ML_KEM_1024,
    HX_KEM_X25519,
    HX_KEM_MCELIECE_348864, /* "Classic-McEliece-348864" ... as liboqs names them */
    HX_KEM_MCELIECE_348864F,
    HX_KEM_MCELIECE_460896,
    HX_KEM_MCELIECE_460896F,
    HX_KEM_MCELIECE_6688128,
    HX_KEM_MCELIECE_6688128F,
    HX_KEM_MCELIECE_6960119,
    HX_KEM_MCELIECE_6960119F,
    HX_KEM_MCELIECE_8192128,
    HX_KEM_MCELIECE_8192128F,
    HX_KEM_SNTRUP653, /* "sntrup761" ... as liboqs and OpenSSH name them */
    HX_KEM_SNTRUP761,
    HX_KEM_SNTRUP857,
    HX_KEM_SNTRUP953,
    HX_KEM_SNTRUP1013,
    HX_KEM_SNTRUP1277,
    HX_KEM_ALG_COUNT,
};

/* Largest of the OpenSSL algorithms (ML-KEM-1024): small enough for the stack. */
#define HX_KEM_MAX_OPENSSL_PUBLIC 1568
/* Largest public key of any algorithm (Classic-McEliece-8192128): allocate, never on a stack. */
#define HX_KEM_MAX_PUBLIC 1357824
/* Largest secret (decapsulation) key held in struct hx_secret (Classic-McEliece-8192128). */
#define HX_KEM_MAX_SECRET_KEY 14120
/* Largest ciphertext of any algorithm (sntrup1277). */
#define HX_KEM_MAX_CIPHERTEXT 1847

struct hx_kem_sizes {
    size_t public_key;
    size_t ciphertext;
    size_t shared_secret;
};

struct hx_kem_key;

/* "ML-KEM-768", "X25519"; parse is case-insensitive. */
const char *hx_kem_name(enum hx_kem_alg alg);
HX_MUST_CHECK hx_err hx_kem_parse(const char *name, enum hx_kem_alg *out);
/* The sizes FIPS 203, RFC 7748, the Classic McEliece and NTRU Prime specifications fix. */
void hx_kem_standard_sizes(enum hx_kem_alg alg, struct hx_kem_sizes *out);
/* The sizes OpenSSL reports for a real key (checked against the standard's by the tests);
 * HX_ERR_UNSUPPORTED for an algorithm OpenSSL does not provide. */
HX_MUST_CHECK hx_err hx_kem_openssl_sizes(enum hx_kem_alg alg, struct hx_kem_sizes *out);

/* A new key pair; its public key (standard encoding) into pub (cap bytes). */
HX_MUST_CHECK hx_err hx_kem_keygen(enum hx_kem_alg alg, struct hx_kem_key **key, uint8_t *pub,
                                   size_t pub_cap, size_t *pub_len);
/* True for the algorithms of libmceliece/libntruprime (not OpenSSL's). */
int hx_kem_is_djb(enum hx_kem_alg alg);
/* Encapsulates to a peer's public key. A malformed public key gives HX_ERR_BAD_VALUE. */
HX_MUST_CHECK hx_err hx_kem_encaps(enum hx_kem_alg alg, const uint8_t *pub, size_t pub_len,
                                   uint8_t *ct, size_t ct_cap, size_t *ct_len,
                                   struct hx_secret **ss);
/*
 * The same in two steps, for callers that hold a peer's key: import (FIPS 203 7.2 input check
 * of an ML-KEM encapsulation key; most of a one-shot hx_kem_encaps's extra cost), then
 * encapsulate to it.
 */
struct hx_kem_peer;
HX_MUST_CHECK hx_err hx_kem_peer_import(enum hx_kem_alg alg, const uint8_t *pub, size_t pub_len,
                                        struct hx_kem_peer **out);
HX_MUST_CHECK hx_err hx_kem_encaps_peer(const struct hx_kem_peer *peer, uint8_t *ct, size_t ct_cap,
                                        size_t *ct_len, struct hx_secret **ss);
void hx_kem_peer_free(struct hx_kem_peer *peer);
/*
 * Decapsulates. A ciphertext of the wrong length is HX_ERR_BAD_VALUE; a tampered ML-KEM
 * ciphertext of the right length decapsulates (implicit rejection) to an unrelated secret.
 */
HX_MUST_CHECK hx_err hx_kem_decaps(const struct hx_kem_key *key, const uint8_t *ct, size_t ct_len,
                                   struct hx_secret **ss);
enum hx_kem_alg hx_kem_key_alg(const struct hx_kem_key *key);
void hx_kem_key_free(struct hx_kem_key *key);

/* X25519 only: a key from a 32-byte private scalar, for known-answer tests. */
HX_MUST_CHECK hx_err hx_kem_key_from_private(enum hx_kem_alg alg, const uint8_t *priv, size_t len,
                                             struct hx_kem_key **key);
/* X25519 only: the shared secret of a key and a peer public key (RFC 7748 section 6.1). */
HX_MUST_CHECK hx_err hx_kem_x25519(const struct hx_kem_key *key, const uint8_t *peer_pub,
                                   size_t len, struct hx_secret **ss);

#endif
