/*
 * The KEMs of libmceliece (Classic McEliece) and libntruprime (Streamlined NTRU Prime), behind
 * crypto/kem.c's interface. Internal to crypto/: kem.c owns the algorithm table and calls these
 * only for the algorithms it marks as theirs.
 *
 * Randomness: the libraries draw every random byte through one function, randombytes(), which
 * they expect from librandombytes. hykex links their static archives and defines that function
 * itself (kem_djb.c) over OpenSSL's RAND_bytes, so keys and encapsulations use the same CSPRNG
 * as ML-KEM; librandombytes is not linked. A known-answer test can swap in a deterministic
 * generator for the calling thread only (hx_kem_djb_set_test_rng).
 */
#ifndef HX_CRYPTO_KEM_DJB_H
#define HX_CRYPTO_KEM_DJB_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/secret.h"
#include "crypto/kem.h"

/* Secret-key bytes of alg (0 for an algorithm that is not libmceliece's or libntruprime's). */
size_t hx_kem_djb_secret_len(enum hx_kem_alg alg);
/* Key pair: the secret key into sk (hx_kem_djb_secret_len bytes), the public key into pub. */
HX_MUST_CHECK hx_err hx_kem_djb_keypair(enum hx_kem_alg alg, struct hx_secret **sk, uint8_t *pub);
/* Checks a public key of the right length before use (Classic McEliece: zero padding bits). */
HX_MUST_CHECK hx_err hx_kem_djb_check_public(enum hx_kem_alg alg, const uint8_t *pub, size_t len);
HX_MUST_CHECK hx_err hx_kem_djb_enc(enum hx_kem_alg alg, const uint8_t *pub, uint8_t *ct,
                                    struct hx_secret **ss);
HX_MUST_CHECK hx_err hx_kem_djb_dec(enum hx_kem_alg alg, const struct hx_secret *sk,
                                    const uint8_t *ct, struct hx_secret **ss);

/* Known-answer tests only: fill(ctx, out, len) replaces RAND_bytes on this thread; NULL resets. */
typedef void (*hx_kem_test_rng)(void *ctx, uint8_t *out, size_t len);
void hx_kem_djb_set_test_rng(hx_kem_test_rng fill, void *ctx);
/* How many randombytes() calls this thread made (a test checks they reach RAND_bytes). */
unsigned long hx_kem_djb_rand_calls(void);

#endif
