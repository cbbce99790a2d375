/*
 * Combiners: one key out of several independent secrets, so that it stays secret while any one
 * of them does. Each is a pure function of (method, ordered secrets, source names, stream id,
 * position, output length, transcript hash); the exact byte layouts are in docs/combiners.md.
 */
#ifndef HX_CRYPTO_COMBINE_H
#define HX_CRYPTO_COMBINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/secret.h"
#include "common/uuid.h"
#include "crypto/kdf.h"

enum hx_combine_method {
    /* The reference's methods: byte-identical to it for outputs up to 32 bytes. */
    HX_COMBINE_XORING = 0,
    HX_COMBINE_HMAC,
    HX_COMBINE_XORHMAC,
    /* SP 800-56C r2 two-step (HKDF) and one-step (SSKDF with KMAC). */
    HX_COMBINE_HKDF_SHA256,
    HX_COMBINE_HKDF_SHA384,
    HX_COMBINE_KMAC128,
    HX_COMBINE_KMAC256,
    /* ETSI TS 103 744 CatKDF and CasKDF, each with its six KDF variants. */
    HX_COMBINE_CATKDF_HKDF_SHA256,
    HX_COMBINE_CATKDF_HKDF_SHA384,
    HX_COMBINE_CATKDF_HMAC_SHA256,
    HX_COMBINE_CATKDF_HMAC_SHA384,
    HX_COMBINE_CATKDF_KMAC128,
    HX_COMBINE_CATKDF_KMAC256,
    HX_COMBINE_CASKDF_HKDF_SHA256,
    HX_COMBINE_CASKDF_HKDF_SHA384,
    HX_COMBINE_CASKDF_HMAC_SHA256,
    HX_COMBINE_CASKDF_HMAC_SHA384,
    HX_COMBINE_CASKDF_KMAC128,
    HX_COMBINE_CASKDF_KMAC256,
    HX_COMBINE_METHOD_COUNT,
};

#define HX_COMBINE_DEFAULT HX_COMBINE_HKDF_SHA256
#define HX_COMBINE_MIN_SOURCES 2
#define HX_COMBINE_MAX_SOURCES 16
#define HX_COMBINE_MAX_OUTPUT 65535u
#define HX_COMBINE_MAX_NAME 64
#define HX_COMBINE_MAX_TRANSCRIPT 64

struct hx_combine_input {
    const struct hx_iov *secrets; /* in key_sources order; each 1 .. HX_SECRET_MAX_LEN bytes */
    size_t n;                     /* HX_COMBINE_MIN_SOURCES .. HX_COMBINE_MAX_SOURCES */
    const char *const *names;     /* source names ("QKD", "ML-KEM-768"), or NULL for all "" */
    struct hx_uuid stream_id;
    uint64_t position;
    const uint8_t *transcript; /* hash of the batch transcript; may be empty */
    size_t transcript_len;
};

/* Canonical name ("hkdf-sha256") and parsing (case-insensitive; aliases "hkdf", "kmac",
 * "catkdf", "caskdf" name the defaults: SHA-256, KMAC256, HKDF-SHA256). */
const char *hx_combine_name(enum hx_combine_method m);
HX_MUST_CHECK hx_err hx_combine_parse(const char *name, enum hx_combine_method *out);
/* Space-separated list of every accepted name, for error messages and --help. */
const char *hx_combine_names(void);
/* Largest output length the method gives. */
size_t hx_combine_max_output(enum hx_combine_method m);

/*
 * Combines in->secrets into a new secret of out_len bytes. Fewer than two secrets, an empty
 * secret, out_len outside 1 .. hx_combine_max_output(m), an over-long name or transcript:
 * HX_ERR_INVALID_ARG, never a pass-through of a single source.
 */
HX_MUST_CHECK hx_err hx_combine(enum hx_combine_method m, const struct hx_combine_input *in,
                                size_t out_len, struct hx_secret **out);

/*
 * The FixedInfo that hkdf, kmac, catkdf and caskdf bind (docs/combiners.md): written into out
 * (cap bytes), length in *out_len.
 */
HX_MUST_CHECK hx_err hx_combine_fixed_info(enum hx_combine_method m,
                                           const struct hx_combine_input *in, size_t out_len,
                                           uint8_t *out, size_t cap, size_t *info_len);

#endif
