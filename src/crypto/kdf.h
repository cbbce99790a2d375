/*
 * Key derivation over OpenSSL 3.5 EVP: HKDF (RFC 5869, SP 800-56C r2 two-step), SSKDF (SP 800-56C
 * r2 one-step with HMAC or KMAC), HMAC, KMAC, hashes, and the ETSI TS 103 744 constructions
 * CatKDF and CasKDF built on them. Pure functions: same inputs, same bytes, on every node.
 */
#ifndef HX_CRYPTO_KDF_H
#define HX_CRYPTO_KDF_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* One piece of a message given in parts. */
struct hx_iov {
    const void *p;
    size_t len;
};

enum hx_md { HX_MD_SHA256 = 0, HX_MD_SHA384, HX_MD_COUNT };

size_t hx_md_len(enum hx_md md);
#define HX_MD_MAX 48 /* the longest hx_md_len (SHA-384) */
_Static_assert(HX_MD_COUNT == 2, "HX_MD_MAX and the digests' tables follow enum hx_md");

enum hx_kdf_alg {
    HX_KDF_HKDF_SHA256 = 0,
    HX_KDF_HKDF_SHA384,
    HX_KDF_SSKDF_HMAC_SHA256,
    HX_KDF_SSKDF_HMAC_SHA384,
    HX_KDF_SSKDF_KMAC128,
    HX_KDF_SSKDF_KMAC256,
    HX_KDF_ALG_COUNT,
};

/* Longest output any derivation here gives. */
#define HX_KDF_MAX_OUTPUT 65535u

/* "hkdf-sha256", "sskdf-kmac256", ...; parse is case-insensitive. */
const char *hx_kdf_name(enum hx_kdf_alg alg);
HX_MUST_CHECK hx_err hx_kdf_parse(const char *name, enum hx_kdf_alg *out);
/* Largest out_len hx_kdf_derive accepts (HKDF: 255 hash lengths). */
size_t hx_kdf_max_output(enum hx_kdf_alg alg);
/*
 * The algorithm's natural length: the hash length for the HKDF/HMAC ones, 32 for KMAC128 and 64
 * for KMAC256 (TS 103 744's chain-secret length).
 */
size_t hx_kdf_block_len(enum hx_kdf_alg alg);

/*
 * HKDF: IKM = ikm, salt, info. SSKDF: Z = ikm, salt (the HMAC / KMAC key), FixedInfo = info.
 * An empty salt means the algorithm's default salt (zeros). out_len 1 .. hx_kdf_max_output().
 */
HX_MUST_CHECK hx_err hx_kdf_derive(enum hx_kdf_alg alg, const uint8_t *ikm, size_t ikm_len,
                                   const uint8_t *salt, size_t salt_len, const uint8_t *info,
                                   size_t info_len, uint8_t *out, size_t out_len);

/* HMAC(key, part1 || part2 || ...) into out (hx_md_len(md) bytes). */
HX_MUST_CHECK hx_err hx_hmac(enum hx_md md, const uint8_t *key, size_t key_len,
                             const struct hx_iov *parts, size_t n_parts, uint8_t *out);
/*
 * HKDF (RFC 5869) with the IKM and the info in parts: the same bytes as over their
 * concatenations, with no copy of the secrets. salt may be empty (RFC 5869's zeros); at most
 * HX_HKDF_MAX_INFO info parts (info may be NULL with none); out_len 1..255 hash lengths; out
 * must not overlap info (read again for every block). hx_kdf_derive's HKDF is this.
 */
#define HX_HKDF_MAX_INFO 4
HX_MUST_CHECK hx_err hx_hkdf(enum hx_md md, const uint8_t *salt, size_t salt_len,
                             const struct hx_iov *ikm, size_t n_ikm, const struct hx_iov *info,
                             size_t n_info, uint8_t *out, size_t out_len);
/* H(part1 || ...) into out (hx_md_len(md) bytes). */
HX_MUST_CHECK hx_err hx_hash(enum hx_md md, const struct hx_iov *parts, size_t n_parts,
                             uint8_t *out);
/* KMAC128/256(key, parts, out_len, custom = "") (bits 128 or 256); key at least 4 bytes. */
HX_MUST_CHECK hx_err hx_kmac(unsigned bits, const uint8_t *key, size_t key_len,
                             const struct hx_iov *parts, size_t n_parts, uint8_t *out,
                             size_t out_len);

/*
 * ETSI TS 103 744 (clause 7.2) formatting functions over three arguments:
 * f_cat = u32be(len a1) || a1 || u32be(len a2) || a2 || u32be(len a3) || a3; f_hash = H(f_cat).
 * hx_f_cat writes into out (cap bytes) and sets *out_len.
 */
HX_MUST_CHECK hx_err hx_f_cat(const struct hx_iov args[3], uint8_t *out, size_t cap,
                              size_t *out_len);
HX_MUST_CHECK hx_err hx_f_hash(enum hx_md md, const struct hx_iov args[3], uint8_t *out);

/* TS 103 744 inputs of one exchange (CatKDF) or one round (CasKDF). */
struct hx_ts103744_round {
    struct hx_iov label; /* LA xor LB: the KDF salt */
    struct hx_iov info;  /* context */
    struct hx_iov ma;    /* party A's message */
    struct hx_iov mb;    /* party B's message */
};

/*
 * CatKDF (clause 8.2): secret = psk || k_1 || ... || k_n, then
 *   HKDF / SSKDF-HMAC variants: KDF(secret, salt = label, info = f_hash(info, MA, MB), L)
 *   SSKDF-KMAC variants:        KDF(secret, salt = label, info = f_cat(info, MA, MB), L)
 * psk may be empty. n >= 1 (the standard's k1, k2; more are concatenated the same way).
 */
HX_MUST_CHECK hx_err hx_catkdf(enum hx_kdf_alg alg, struct hx_iov psk, const struct hx_iov *keys,
                               size_t n, const struct hx_ts103744_round *r, uint8_t *out,
                               size_t out_len);

/*
 * CasKDF (clause 8.3), one round per key: R_i = PRF(chain_{i-1}, f(k_i, MA_i, MB_i)) with
 * PRF = HMAC and f = f_hash (HKDF/HMAC variants) or PRF = KMAC with output hx_kdf_block_len()
 * and f = f_cat (KMAC variants); chain_i || KM_i = KDF(R_i, salt = label_i, info = info_i,
 * block_len + L). out = KM_n. chain_0 = psk, which may be empty for the HMAC variants; for the
 * KMAC variants an empty psk means block_len zero bytes (OpenSSL's KMAC wants a key of at least
 * 4 bytes; the ETSI reference implementation does the same).
 */
HX_MUST_CHECK hx_err hx_caskdf(enum hx_kdf_alg alg, struct hx_iov psk, const struct hx_iov *keys,
                               size_t n, const struct hx_ts103744_round *rounds, uint8_t *out,
                               size_t out_len);

#endif
