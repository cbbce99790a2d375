#include "crypto/combine.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "common/buf.h"

static const struct {
    const char *name;
    enum hx_kdf_alg kdf; /* for the KDF-based methods */
} methods[HX_COMBINE_METHOD_COUNT] = {
    [HX_COMBINE_XORING] = {"xoring", HX_KDF_HKDF_SHA256},
    [HX_COMBINE_HMAC] = {"hmac", HX_KDF_HKDF_SHA256},
    [HX_COMBINE_XORHMAC] = {"xorhmac", HX_KDF_HKDF_SHA256},
    [HX_COMBINE_HKDF_SHA256] = {"hkdf-sha256", HX_KDF_HKDF_SHA256},
    [HX_COMBINE_HKDF_SHA384] = {"hkdf-sha384", HX_KDF_HKDF_SHA384},
    [HX_COMBINE_KMAC128] = {"kmac128", HX_KDF_SSKDF_KMAC128},
    [HX_COMBINE_KMAC256] = {"kmac256", HX_KDF_SSKDF_KMAC256},
    [HX_COMBINE_CATKDF_HKDF_SHA256] = {"catkdf-hkdf-sha256", HX_KDF_HKDF_SHA256},
    [HX_COMBINE_CATKDF_HKDF_SHA384] = {"catkdf-hkdf-sha384", HX_KDF_HKDF_SHA384},
    [HX_COMBINE_CATKDF_HMAC_SHA256] = {"catkdf-hmac-sha256", HX_KDF_SSKDF_HMAC_SHA256},
    [HX_COMBINE_CATKDF_HMAC_SHA384] = {"catkdf-hmac-sha384", HX_KDF_SSKDF_HMAC_SHA384},
    [HX_COMBINE_CATKDF_KMAC128] = {"catkdf-kmac128", HX_KDF_SSKDF_KMAC128},
    [HX_COMBINE_CATKDF_KMAC256] = {"catkdf-kmac256", HX_KDF_SSKDF_KMAC256},
    [HX_COMBINE_CASKDF_HKDF_SHA256] = {"caskdf-hkdf-sha256", HX_KDF_HKDF_SHA256},
    [HX_COMBINE_CASKDF_HKDF_SHA384] = {"caskdf-hkdf-sha384", HX_KDF_HKDF_SHA384},
    [HX_COMBINE_CASKDF_HMAC_SHA256] = {"caskdf-hmac-sha256", HX_KDF_SSKDF_HMAC_SHA256},
    [HX_COMBINE_CASKDF_HMAC_SHA384] = {"caskdf-hmac-sha384", HX_KDF_SSKDF_HMAC_SHA384},
    [HX_COMBINE_CASKDF_KMAC128] = {"caskdf-kmac128", HX_KDF_SSKDF_KMAC128},
    [HX_COMBINE_CASKDF_KMAC256] = {"caskdf-kmac256", HX_KDF_SSKDF_KMAC256},
};

static const struct {
    const char *alias;
    enum hx_combine_method m;
} aliases[] = {
    {"hkdf", HX_COMBINE_HKDF_SHA256},
    {"kmac", HX_COMBINE_KMAC256},
    {"catkdf", HX_COMBINE_CATKDF_HKDF_SHA256},
    {"caskdf", HX_COMBINE_CASKDF_HKDF_SHA256},
};

/* The reference's HMAC is SHA-256 with 32-byte blocks; its outputs stop there. */
#define REF_BLOCK 32

const char *hx_combine_name(enum hx_combine_method m)
{
    return (unsigned)m < HX_COMBINE_METHOD_COUNT ? methods[m].name : "unknown";
}

hx_err hx_combine_parse(const char *name, enum hx_combine_method *out)
{
    for (unsigned i = 0; i < HX_COMBINE_METHOD_COUNT; i++) {
        if (strcasecmp(name, methods[i].name) == 0) {
            *out = (enum hx_combine_method)i;
            return HX_OK;
        }
    }
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        if (strcasecmp(name, aliases[i].alias) == 0) {
            *out = aliases[i].m;
            return HX_OK;
        }
    }
    return HX_ERR_UNSUPPORTED;
}

const char *hx_combine_names(void)
{
    return "xoring hmac xorhmac hkdf hkdf-sha256 hkdf-sha384 kmac kmac128 kmac256 "
           "catkdf catkdf-hkdf-sha256 catkdf-hkdf-sha384 catkdf-hmac-sha256 catkdf-hmac-sha384 "
           "catkdf-kmac128 catkdf-kmac256 caskdf caskdf-hkdf-sha256 caskdf-hkdf-sha384 "
           "caskdf-hmac-sha256 caskdf-hmac-sha384 caskdf-kmac128 caskdf-kmac256";
}

static bool is_reference(enum hx_combine_method m)
{
    return m == HX_COMBINE_XORING || m == HX_COMBINE_HMAC || m == HX_COMBINE_XORHMAC;
}

static bool is_cascade(enum hx_combine_method m)
{
    return m >= HX_COMBINE_CASKDF_HKDF_SHA256 && m <= HX_COMBINE_CASKDF_KMAC256;
}

static bool is_catenate(enum hx_combine_method m)
{
    return m >= HX_COMBINE_CATKDF_HKDF_SHA256 && m <= HX_COMBINE_CATKDF_KMAC256;
}

size_t hx_combine_max_output(enum hx_combine_method m)
{
    size_t max;

    if ((unsigned)m >= HX_COMBINE_METHOD_COUNT) {
        return 0;
    }
    if (is_reference(m)) {
        return HX_COMBINE_MAX_OUTPUT;
    }
    max = hx_kdf_max_output(methods[m].kdf);
    if (is_cascade(m)) {
        max -= hx_kdf_block_len(methods[m].kdf); /* the chain secret comes out of it too */
    }
    return max < HX_COMBINE_MAX_OUTPUT ? max : HX_COMBINE_MAX_OUTPUT;
}

static hx_err check_input(enum hx_combine_method m, const struct hx_combine_input *in,
                          size_t out_len)
{
    if ((unsigned)m >= HX_COMBINE_METHOD_COUNT || in == NULL) {
        return HX_ERR_INVALID_ARG;
    }
    if (in->n < HX_COMBINE_MIN_SOURCES || in->n > HX_COMBINE_MAX_SOURCES) {
        return HX_ERR_INVALID_ARG;
    }
    if (out_len == 0 || out_len > hx_combine_max_output(m)) {
        return HX_ERR_INVALID_ARG;
    }
    if (in->transcript_len > HX_COMBINE_MAX_TRANSCRIPT ||
        (in->transcript_len > 0 && in->transcript == NULL)) {
        return HX_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < in->n; i++) {
        if (in->secrets[i].len == 0 || in->secrets[i].len > HX_SECRET_MAX_LEN ||
            in->secrets[i].p == NULL) {
            return HX_ERR_INVALID_ARG;
        }
        if (in->names != NULL &&
            (in->names[i] == NULL || strlen(in->names[i]) > HX_COMBINE_MAX_NAME)) {
            return HX_ERR_INVALID_ARG;
        }
    }
    return HX_OK;
}

/* ---- the reference's methods ---------------------------------------------------------- */

/* memcmp order over the common prefix; on a tie the shorter key first (Python bytes order). */
static int key_cmp(const struct hx_iov *a, const struct hx_iov *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->p, b->p, n);

    if (c != 0) {
        return c;
    }
    return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

static void sort_keys(const struct hx_combine_input *in, struct hx_iov *sorted)
{
    /* Insertion sort: at most 16 keys. */
    for (size_t i = 0; i < in->n; i++) {
        struct hx_iov k = in->secrets[i];
        size_t j = i;
        while (j > 0 && key_cmp(&sorted[j - 1], &k) > 0) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = k;
    }
}

/*
 * The key each source contributes to xoring: up to 32 bytes the reference's fit() (first n
 * bytes, zero padded); beyond, a key shorter than n is expanded with HKDF-Expand so that no
 * output byte comes from fewer than all sources.
 */
static hx_err xor_contribution(const struct hx_iov *k, size_t n, uint8_t *out)
{
    static const char label[] = "hykex/1 xoring expand";
    uint8_t info[sizeof(label) - 1 + 4];

    if (n <= REF_BLOCK || k->len >= n) {
        size_t c = k->len < n ? k->len : n;
        memcpy(out, k->p, c);
        memset(out + c, 0, n - c);
        return HX_OK;
    }
    memcpy(info, label, sizeof(label) - 1);
    info[sizeof(label) - 1] = (uint8_t)(n >> 24);
    info[sizeof(label)] = (uint8_t)(n >> 16);
    info[sizeof(label) + 1] = (uint8_t)(n >> 8);
    info[sizeof(label) + 2] = (uint8_t)n;
    /* HKDF-Extract with a zero salt, then Expand: a proper PRF of the key, any length. */
    return hx_kdf_derive(HX_KDF_HKDF_SHA256, k->p, k->len, NULL, 0, info, sizeof(info), out, n);
}

static hx_err combine_xoring(const struct hx_iov *keys, size_t n_keys, uint8_t *out, size_t n)
{
    uint8_t *tmp;
    hx_err e = HX_OK;

    if ((tmp = hx_secure_alloc(n)) == NULL) {
        return HX_ERR_NOMEM;
    }
    memset(out, 0, n);
    for (size_t i = 0; i < n_keys && e == HX_OK; i++) {
        if ((e = xor_contribution(&keys[i], n, tmp)) == HX_OK) {
            for (size_t j = 0; j < n; j++) {
                out[j] ^= tmp[j];
            }
        }
    }
    hx_secure_free(tmp, n);
    return e;
}

/*
 * The reference's hmac over keys[0..n): T1 = HMAC-SHA256(K0, K1 || ... || Km); it stops at 32
 * bytes. We go on, SP 800-108 feedback style: T_i = HMAC(K0, T_{i-1} || u32be(i) || K1..Km).
 */
static hx_err combine_hmac_ordered(const struct hx_iov *keys, size_t n_keys, uint8_t *out, size_t n)
{
    struct hx_iov parts[HX_COMBINE_MAX_SOURCES + 2];
    uint8_t block[REF_BLOCK], ctr[4];
    size_t done = 0;
    uint32_t i = 1;
    hx_err e;

    if (n_keys < 2 || n_keys > HX_COMBINE_MAX_SOURCES) {
        return HX_ERR_INVALID_ARG; /* check_input() guarantees it; the analyser cannot see that */
    }
    for (size_t k = 1; k < n_keys; k++) {
        parts[k + 1] = keys[k];
    }
    while (done < n) {
        size_t take;
        if (i == 1) {
            e = hx_hmac(HX_MD_SHA256, keys[0].p, keys[0].len, parts + 2, n_keys - 1, block);
        } else {
            ctr[0] = (uint8_t)(i >> 24);
            ctr[1] = (uint8_t)(i >> 16);
            ctr[2] = (uint8_t)(i >> 8);
            ctr[3] = (uint8_t)i;
            parts[0] = (struct hx_iov){block, sizeof(block)};
            parts[1] = (struct hx_iov){ctr, sizeof(ctr)};
            e = hx_hmac(HX_MD_SHA256, keys[0].p, keys[0].len, parts, n_keys + 1, block);
        }
        if (e != HX_OK) {
            OPENSSL_cleanse(block, sizeof(block));
            return e;
        }
        take = n - done < REF_BLOCK ? n - done : REF_BLOCK;
        memcpy(out + done, block, take);
        done += take;
        i++;
    }
    OPENSSL_cleanse(block, sizeof(block));
    return HX_OK;
}

static hx_err combine_reference(enum hx_combine_method m, const struct hx_combine_input *in,
                                uint8_t *out, size_t n)
{
    struct hx_iov sorted[HX_COMBINE_MAX_SOURCES], reversed[HX_COMBINE_MAX_SOURCES];
    uint8_t *second = NULL;
    hx_err e;

    sort_keys(in, sorted);
    if (m == HX_COMBINE_XORING) {
        return combine_xoring(sorted, in->n, out, n);
    }
    if (m == HX_COMBINE_HMAC) {
        return combine_hmac_ordered(sorted, in->n, out, n);
    }
    /* xorhmac = hmac(K) XOR hmac(reversed K) */
    for (size_t i = 0; i < in->n; i++) {
        reversed[i] = sorted[in->n - 1 - i];
    }
    if ((second = hx_secure_alloc(n)) == NULL) {
        return HX_ERR_NOMEM;
    }
    if ((e = combine_hmac_ordered(sorted, in->n, out, n)) == HX_OK &&
        (e = combine_hmac_ordered(reversed, in->n, second, n)) == HX_OK) {
        for (size_t i = 0; i < n; i++) {
            out[i] ^= second[i];
        }
    }
    hx_secure_free(second, n);
    return e;
}

/* ---- the KDF methods ------------------------------------------------------------------ */

hx_err hx_combine_fixed_info(enum hx_combine_method m, const struct hx_combine_input *in,
                             size_t out_len, uint8_t *out, size_t cap, size_t *info_len)
{
    static const char prefix[] = "hykex/1 ";
    struct hx_writer w;
    const char *mname = hx_combine_name(m);
    hx_err e;

    hx_writer_init_fixed(&w, out, cap);
    /* lp(label) where label = "hykex/1 " || method name */
    if ((e = hx_write_u32(&w, (uint32_t)(sizeof(prefix) - 1 + strlen(mname)))) != HX_OK ||
        (e = hx_write_bytes(&w, prefix, sizeof(prefix) - 1)) != HX_OK ||
        (e = hx_write_bytes(&w, mname, strlen(mname))) != HX_OK ||
        (e = hx_write_bytes(&w, in->stream_id.b, sizeof(in->stream_id.b))) != HX_OK ||
        (e = hx_write_u64(&w, in->position)) != HX_OK ||
        (e = hx_write_u32(&w, (uint32_t)out_len)) != HX_OK ||
        (e = hx_write_u32(&w, (uint32_t)in->n)) != HX_OK) {
        return e;
    }
    for (size_t i = 0; i < in->n; i++) {
        const char *name = in->names != NULL ? in->names[i] : "";
        if ((e = hx_write_u32(&w, (uint32_t)strlen(name))) != HX_OK ||
            (e = hx_write_bytes(&w, name, strlen(name))) != HX_OK ||
            (e = hx_write_u32(&w, (uint32_t)in->secrets[i].len)) != HX_OK) {
            return e;
        }
    }
    if ((e = hx_write_u32(&w, (uint32_t)in->transcript_len)) != HX_OK ||
        (e = hx_write_bytes(&w, in->transcript, in->transcript_len)) != HX_OK) {
        return e;
    }
    *info_len = w.len;
    return HX_OK;
}

/* Largest FixedInfo: label, id, position, lengths, 16 names of 64 bytes, transcript. */
#define FIXED_INFO_MAX (4 + 64 + 16 + 8 + 4 + 4 + HX_COMBINE_MAX_SOURCES * (4 + 64 + 4) + 4 + 64)

static hx_err combine_kdf(enum hx_combine_method m, const struct hx_combine_input *in, uint8_t *out,
                          size_t n)
{
    uint8_t info[FIXED_INFO_MAX];
    size_t info_len;
    enum hx_kdf_alg kdf = methods[m].kdf;
    struct hx_secret *z = NULL;
    struct hx_ts103744_round rounds[HX_COMBINE_MAX_SOURCES];
    const struct hx_iov none = {NULL, 0};
    size_t total = 0, off = 0;
    hx_err e;

    if ((e = hx_combine_fixed_info(m, in, n, info, sizeof(info), &info_len)) != HX_OK) {
        return e;
    }
    /*
     * TS 103 744 mapping: label (the KDF salt) = stream id, info = FixedInfo, MA = transcript
     * hash, MB = empty; CasKDF uses the same for every round.
     */
    for (size_t i = 0; i < in->n; i++) {
        rounds[i].label = (struct hx_iov){in->stream_id.b, sizeof(in->stream_id.b)};
        rounds[i].info = (struct hx_iov){info, info_len};
        rounds[i].ma = (struct hx_iov){in->transcript, in->transcript_len};
        rounds[i].mb = none;
    }
    if (is_catenate(m)) {
        return hx_catkdf(kdf, none, in->secrets, in->n, &rounds[0], out, n);
    }
    if (is_cascade(m)) {
        return hx_caskdf(kdf, none, in->secrets, in->n, rounds, out, n);
    }
    /* hkdf / kmac: Z' = K1 || ... || Kn, salt = stream id, FixedInfo = info. */
    for (size_t i = 0; i < in->n; i++) {
        total += in->secrets[i].len;
    }
    if ((e = hx_secret_new(total, &z)) != HX_OK) {
        return e;
    }
    for (size_t i = 0; i < in->n; i++) {
        memcpy(hx_secret_data_mut(z) + off, in->secrets[i].p, in->secrets[i].len);
        off += in->secrets[i].len;
    }
    e = hx_kdf_derive(kdf, hx_secret_data(z), total, in->stream_id.b, sizeof(in->stream_id.b), info,
                      info_len, out, n);
    hx_secret_free(z);
    return e;
}

hx_err hx_combine(enum hx_combine_method m, const struct hx_combine_input *in, size_t out_len,
                  struct hx_secret **out)
{
    struct hx_secret *s = NULL;
    hx_err e;

    *out = NULL;
    if ((e = check_input(m, in, out_len)) != HX_OK) {
        return e;
    }
    if ((e = hx_secret_new(out_len, &s)) != HX_OK) {
        return e;
    }
    e = is_reference(m) ? combine_reference(m, in, hx_secret_data_mut(s), out_len)
                        : combine_kdf(m, in, hx_secret_data_mut(s), out_len);
    if (e != HX_OK) {
        hx_secret_free(s);
        return e;
    }
    *out = s;
    return HX_OK;
}
