/*
 * Signatures: ML-DSA-44/65/87 (FIPS 204) with a context string, over OpenSSL 3.5. Keys come
 * from PEM files (the node's certificate key), from raw public keys, or are generated.
 *
 * Classical keys (ECDSA, Ed25519, RSA), as in certificates made by the original system's
 * scripts, are accepted from PEM files and certificates too: hx_sig_key_is_pq() says which.
 * Their signatures cover u8(len ctx) || ctx || msg (ECDSA and RSA-PSS over SHA-256), so the
 * context string separates domains as ML-DSA's does.
 */
#ifndef HX_CRYPTO_SIG_H
#define HX_CRYPTO_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum hx_sig_alg {
    HX_SIG_ML_DSA_44 = 0,
    HX_SIG_ML_DSA_65,
    HX_SIG_ML_DSA_87,
    HX_SIG_ALG_COUNT,
};

#define HX_SIG_MAX_PUBLIC 2592
#define HX_SIG_MAX_SIGNATURE 4627 /* ML-DSA-87; classical ones are smaller (RSA-4096: 512) */
#define HX_SIG_MAX_CONTEXT 255

struct hx_sig_sizes {
    size_t public_key;
    size_t signature;
};

struct hx_sig_key;

const char *hx_sig_name(enum hx_sig_alg alg);
HX_MUST_CHECK hx_err hx_sig_parse(const char *name, enum hx_sig_alg *out);
/* The sizes FIPS 204 fixes. */
void hx_sig_standard_sizes(enum hx_sig_alg alg, struct hx_sig_sizes *out);

HX_MUST_CHECK hx_err hx_sig_keygen(enum hx_sig_alg alg, struct hx_sig_key **out);
/*
 * A private key from a PEM file. The file must be a regular file not readable or writable by
 * group or others (HX_ERR_IO_PERM otherwise, as OpenSSH does) and hold a signing key: ML-DSA,
 * or a classical ECDSA, Ed25519 or RSA key (HX_ERR_UNSUPPORTED for others, e.g. X25519).
 */
HX_MUST_CHECK hx_err hx_sig_key_load_pem(const char *path, struct hx_sig_key **out);
/* A verification key from its raw FIPS 204 encoding. */
HX_MUST_CHECK hx_err hx_sig_key_from_public(enum hx_sig_alg alg, const uint8_t *pub, size_t len,
                                            struct hx_sig_key **out);
HX_MUST_CHECK hx_err hx_sig_public(const struct hx_sig_key *key, uint8_t *out, size_t cap,
                                   size_t *len);
/* Wraps an OpenSSL key (a peer certificate's public key); takes a reference of its own. */
HX_MUST_CHECK hx_err hx_sig_key_from_evp(void *evp_pkey, struct hx_sig_key **out);
/* The key's ML-DSA parameter set; HX_SIG_ALG_COUNT for a classical key. */
enum hx_sig_alg hx_sig_key_alg(const struct hx_sig_key *key);
bool hx_sig_key_is_pq(const struct hx_sig_key *key);
/* "ML-DSA-65", "ECDSA", "Ed25519", "RSA". */
const char *hx_sig_key_name(const struct hx_sig_key *key);
void hx_sig_key_free(struct hx_sig_key *key);

/* Signs msg with the context string ctx (0 .. 255 bytes). */
HX_MUST_CHECK hx_err hx_sig_sign(const struct hx_sig_key *key, const uint8_t *ctx, size_t ctx_len,
                                 const uint8_t *msg, size_t msg_len, uint8_t *sig, size_t sig_cap,
                                 size_t *sig_len);
/* HX_OK for a valid signature, HX_ERR_VERIFY for any invalid one. */
HX_MUST_CHECK hx_err hx_sig_verify(const struct hx_sig_key *key, const uint8_t *ctx, size_t ctx_len,
                                   const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                                   size_t sig_len);

#endif
