/* KDFs and TS 103 744 against published vectors (files in tests/vectors/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "common/hex.h"
#include "crypto/kdf.h"
#include "vectors.h"

static void check_kdf_file(const char *file, const char *alg_field, int ts_names)
{
    struct json_object *doc, *arr = vectors_load(file, &doc);
    size_t n = json_object_array_length(arr);

    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(arr, i);
        const char *name = vec_str(v, alg_field);
        enum hx_kdf_alg alg;
        size_t ikm_len, salt_len, info_len, exp_len;
        uint8_t *ikm = vec_hex(v, "ikm", &ikm_len), *salt = vec_hex(v, "salt", &salt_len);
        uint8_t *info = vec_hex(v, "info", &info_len), *exp = vec_hex(v, "expected", &exp_len);
        uint8_t out[256];

        if (ts_names) {
            /* "CatKDF-HKDF-SHA256" -> hkdf-sha256, "CatKDF-HMAC-SHA256" -> sskdf-hmac-sha256 */
            static const char *const map[][2] = {
                {"CatKDF-HKDF-SHA256", "hkdf-sha256"},
                {"CatKDF-HKDF-SHA384", "hkdf-sha384"},
                {"CatKDF-HMAC-SHA256", "sskdf-hmac-sha256"},
                {"CatKDF-HMAC-SHA384", "sskdf-hmac-sha384"},
                {"CatKDF-KMAC128", "sskdf-kmac128"},
                {"CatKDF-KMAC256", "sskdf-kmac256"},
            };
            const char *mapped = NULL;
            for (size_t k = 0; k < 6; k++) {
                if (strcmp(map[k][0], name) == 0) {
                    mapped = map[k][1];
                }
            }
            assert_non_null(mapped);
            name = mapped;
        }
        assert_int_equal(hx_kdf_parse(name, &alg), HX_OK);
        assert_int_equal(vec_int(v, "L"), (int64_t)exp_len);
        assert_int_equal(
            hx_kdf_derive(alg, ikm, ikm_len, salt, salt_len, info, info_len, out, exp_len), HX_OK);
        assert_memory_equal(out, exp, exp_len);
        free(ikm);
        free(salt);
        free(info);
        free(exp);
    }
    json_object_put(doc);
}

static void rfc5869(void **state)
{
    (void)state;
    check_kdf_file("rfc5869-hkdf.json", "kdf", 0);
}

static void ts103744_kdf_calls(void **state)
{
    (void)state;
    check_kdf_file("ts103744-catkdf.json", "kdf", 1);
}

/* The whole CatKDF from k1, k2, label, context and both messages. */
static void ts103744_catkdf_full(void **state)
{
    struct json_object *doc, *arr = vectors_load("ts103744-catkdf-full.json", &doc);
    static const struct {
        const char *m;
        enum hx_kdf_alg a;
    } map[] = {
        {"catkdf-hkdf-sha256", HX_KDF_HKDF_SHA256},
        {"catkdf-hkdf-sha384", HX_KDF_HKDF_SHA384},
        {"catkdf-hmac-sha256", HX_KDF_SSKDF_HMAC_SHA256},
        {"catkdf-hmac-sha384", HX_KDF_SSKDF_HMAC_SHA384},
        {"catkdf-kmac128", HX_KDF_SSKDF_KMAC128},
        {"catkdf-kmac256", HX_KDF_SSKDF_KMAC256},
    };

    (void)state;
    assert_int_equal(json_object_array_length(arr), 18);
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *v = json_object_array_get_idx(arr, i);
        size_t l1, l2, ll, lc, la, lb, le;
        uint8_t *k1 = vec_hex(v, "k1", &l1), *k2 = vec_hex(v, "k2", &l2);
        uint8_t *label = vec_hex(v, "label", &ll), *ctx = vec_hex(v, "context", &lc);
        uint8_t *ma = vec_hex(v, "ma", &la), *mb = vec_hex(v, "mb", &lb);
        uint8_t *exp = vec_hex(v, "expected", &le);
        const struct hx_iov keys[2] = {{k1, l1}, {k2, l2}}, psk = {NULL, 0};
        const struct hx_ts103744_round r = {{label, ll}, {ctx, lc}, {ma, la}, {mb, lb}};
        enum hx_kdf_alg alg = HX_KDF_ALG_COUNT;
        uint8_t out[64];

        for (size_t k = 0; k < sizeof(map) / sizeof(map[0]); k++) {
            if (strcmp(map[k].m, vec_str(v, "method")) == 0) {
                alg = map[k].a;
            }
        }
        assert_int_not_equal(alg, HX_KDF_ALG_COUNT);
        assert_int_equal(hx_catkdf(alg, psk, keys, 2, &r, out, le), HX_OK);
        assert_memory_equal(out, exp, le);
        /* Any changed input changes the key. */
        ma[la - 1] ^= 1;
        assert_int_equal(hx_catkdf(alg, psk, keys, 2, &r, out, le), HX_OK);
        assert_memory_not_equal(out, exp, le);
        free(k1);
        free(k2);
        free(label);
        free(ctx);
        free(ma);
        free(mb);
        free(exp);
    }
    json_object_put(doc);
}

static void f_cat_layout(void **state)
{
    const struct hx_iov args[3] = {{"ab", 2}, {NULL, 0}, {"xyz", 3}};
    static const uint8_t want[] = {0, 0, 0, 2, 'a', 'b', 0, 0, 0, 0, 0, 0, 0, 3, 'x', 'y', 'z'};
    uint8_t out[32];
    size_t len;

    (void)state;
    assert_int_equal(hx_f_cat(args, out, sizeof(out), &len), HX_OK);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
    assert_int_equal(hx_f_cat(args, out, sizeof(want) - 1, &len), HX_ERR_NOSPACE);
}

static void refuses_bad_arguments(void **state)
{
    uint8_t out[16], ikm[16] = {1};
    enum hx_kdf_alg alg;

    (void)state;
    assert_int_equal(hx_kdf_parse("hkdf-md5", &alg), HX_ERR_UNSUPPORTED);
    assert_int_equal(hx_kdf_parse("HKDF-SHA384", &alg), HX_OK);
    assert_int_equal(alg, HX_KDF_HKDF_SHA384);
    assert_int_equal(hx_kdf_derive(HX_KDF_HKDF_SHA256, ikm, 0, NULL, 0, NULL, 0, out, 16),
                     HX_ERR_INVALID_ARG);
    assert_int_equal(hx_kdf_derive(HX_KDF_HKDF_SHA256, ikm, 16, NULL, 0, NULL, 0, out, 0),
                     HX_ERR_INVALID_ARG);
    assert_int_equal(hx_kdf_max_output(HX_KDF_HKDF_SHA256), 8160);
    assert_int_equal(hx_kdf_max_output(HX_KDF_HKDF_SHA384), 12240);
    uint8_t *big = malloc(8161);
    assert_int_equal(hx_kdf_derive(HX_KDF_HKDF_SHA256, ikm, 16, NULL, 0, NULL, 0, big, 8161),
                     HX_ERR_INVALID_ARG);
    assert_int_equal(hx_kdf_derive(HX_KDF_HKDF_SHA256, ikm, 16, NULL, 0, NULL, 0, big, 8160),
                     HX_OK);
    free(big);
    assert_int_equal(hx_kmac(128, ikm, 3, NULL, 0, out, 16), HX_ERR_INVALID_ARG);
    assert_int_equal(hx_kmac(192, ikm, 16, NULL, 0, out, 16), HX_ERR_INVALID_ARG);
}

/* OpenSSL's own HKDF (EVP_KDF), the reference hx_hkdf must equal. */
static void openssl_hkdf(const char *digest, const uint8_t *ikm, size_t ikm_len,
                         const uint8_t *salt, size_t salt_len, const uint8_t *info, size_t info_len,
                         uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM p[5], *q = p;

    *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digest, 0);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    if (salt_len > 0) {
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    }
    if (info_len > 0) {
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    }
    *q = OSSL_PARAM_construct_end();
    assert_int_equal(EVP_KDF_derive(ctx, out, out_len, p), 1);
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
}

/* A fixed generator (xorshift64*): every case below is the same on every run, so a failure
 * names its round and can be replayed. */
static uint64_t gen_state = 0x9e3779b97f4a7c15u;

static uint64_t gen(void)
{
    gen_state ^= gen_state >> 12;
    gen_state ^= gen_state << 25;
    gen_state ^= gen_state >> 27;
    return gen_state * 0x2545f4914f6cdd1du;
}

static void gen_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(gen() >> 56);
    }
}

/*
 * hx_hkdf (and so hx_kdf_derive's HKDF) gives OpenSSL's HKDF bytes: both digests, empty and
 * long salts (beyond both block sizes) and infos, IKM up to 300 bytes, outputs from 1 byte to
 * 255 hash lengths of either digest, IKM and info cut into up to HX_HKDF_MAX_INFO parts
 * anywhere (empty parts included).
 */
static void hkdf_equals_openssl(void **state)
{
    static const size_t outs[] = {1, 31, 32, 33, 48, 64, 97, 1000, 8160, 12240};
    uint8_t ikm[300], salt[200], info[200], *want = malloc(12240), *got = malloc(12240);

    (void)state;
    assert_non_null(want);
    assert_non_null(got);
    for (unsigned round = 0; round < 200; round++) {
        enum hx_md md = round % 2 == 0 ? HX_MD_SHA256 : HX_MD_SHA384;
        size_t hl = hx_md_len(md), il = 1 + (size_t)(gen() % sizeof(ikm));
        size_t sl = round % 5 == 0 ? 0 : (size_t)(gen() % sizeof(salt));
        size_t nl = round % 7 == 0 ? 0 : (size_t)(gen() % sizeof(info));
        size_t ol = outs[round % 10], cut_i = (size_t)(gen() % (il + 1)),
               cuts[HX_HKDF_MAX_INFO + 1];
        size_t n_parts = 1 + (size_t)(gen() % HX_HKDF_MAX_INFO);
        struct hx_iov in[2] = {{ikm, cut_i}, {ikm + cut_i, il - cut_i}}, inf[HX_HKDF_MAX_INFO];
        ol = ol > 255 * hl ? 255 * hl : ol;
        gen_bytes(ikm, sizeof(ikm));
        gen_bytes(salt, sizeof(salt));
        gen_bytes(info, sizeof(info));
        /* info in n_parts pieces: sorted cut points over [0, nl] */
        cuts[0] = 0;
        cuts[n_parts] = nl;
        for (size_t k = 1; k < n_parts; k++) {
            cuts[k] = nl > 0 ? (size_t)(gen() % (nl + 1)) : 0;
            for (size_t j = k; j > 1 && cuts[j - 1] > cuts[j]; j--) {
                size_t x = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = x;
            }
        }
        for (size_t k = 0; k < n_parts; k++) {
            inf[k] = (struct hx_iov){info + cuts[k], cuts[k + 1] - cuts[k]};
        }
        openssl_hkdf(md == HX_MD_SHA256 ? "SHA2-256" : "SHA2-384", ikm, il, salt, sl, info, nl,
                     want, ol);
        memset(got, 0, ol);
        if (hx_hkdf(md, salt, sl, in, 2, inf, n_parts, got, ol) != HX_OK ||
            memcmp(got, want, ol) != 0) {
            fail_msg("round %u: md %d ikm %zu salt %zu info %zu in %zu parts, out %zu", round,
                     (int)md, il, sl, nl, n_parts, ol);
        }
        memset(got, 0, ol);
        assert_int_equal(hx_kdf_derive(md == HX_MD_SHA256 ? HX_KDF_HKDF_SHA256 : HX_KDF_HKDF_SHA384,
                                       ikm, il, salt, sl, info, nl, got, ol),
                         HX_OK);
        assert_memory_equal(got, want, ol);
    }
    /* RFC 5869's missing salt is HashLen zero bytes: the same as an empty one */
    memset(salt, 0, sizeof(salt));
    struct hx_iov one = {ikm, 16};
    uint8_t a[64], b[64];
    for (int m = 0; m < HX_MD_COUNT; m++) {
        assert_int_equal(hx_hkdf((enum hx_md)m, NULL, 0, &one, 1, NULL, 0, a, 64), HX_OK);
        assert_int_equal(
            hx_hkdf((enum hx_md)m, salt, hx_md_len((enum hx_md)m), &one, 1, NULL, 0, b, 64), HX_OK);
        assert_memory_equal(a, b, 64);
    }
    /* no IKM at all (OpenSSL's EVP_KDF refuses an empty key; RFC 5869 allows it): HMAC of
     * nothing, then Expand, by hand */
    uint8_t prk[32], t1[32];
    struct hx_iov ctr = {"\x01", 1};
    assert_int_equal(hx_hkdf(HX_MD_SHA256, salt, 32, NULL, 0, NULL, 0, a, 32), HX_OK);
    assert_int_equal(hx_hmac(HX_MD_SHA256, salt, 32, NULL, 0, prk), HX_OK);
    assert_int_equal(hx_hmac(HX_MD_SHA256, prk, 32, &ctr, 1, t1), HX_OK);
    assert_memory_equal(a, t1, 32);
    /* refused: no output, one byte past 255 hash lengths of either digest, too many info parts */
    struct hx_iov many[HX_HKDF_MAX_INFO + 1] = {{info, 1}};
    assert_int_equal(hx_hkdf(HX_MD_SHA256, NULL, 0, &one, 1, NULL, 0, got, 0), HX_ERR_INVALID_ARG);
    assert_int_equal(hx_hkdf(HX_MD_SHA256, NULL, 0, &one, 1, NULL, 0, got, 8161),
                     HX_ERR_INVALID_ARG);
    assert_int_equal(hx_hkdf(HX_MD_SHA384, NULL, 0, &one, 1, NULL, 0, got, 12241),
                     HX_ERR_INVALID_ARG);
    assert_int_equal(hx_hkdf(HX_MD_SHA256, NULL, 0, &one, 1, many, HX_HKDF_MAX_INFO + 1, got, 32),
                     HX_ERR_INVALID_ARG);
    free(want);
    free(got);
}

/* CasKDF with two rounds by hand, from the primitives: the construction, not a vector. */
static void caskdf_is_the_chain_of_rounds(void **state)
{
    static const uint8_t k1[32] = {1}, k2[32] = {2}, label[16] = {3};
    const struct hx_iov keys[2] = {{k1, 32}, {k2, 32}}, none = {NULL, 0};
    const struct hx_ts103744_round r[2] = {{{label, 16}, {"ctx", 3}, {"A", 1}, {"B", 1}},
                                           {{label, 16}, {"ctx", 3}, {"A", 1}, {"B", 1}}};
    uint8_t out[24], h[32], r1[32], o1[32 + 24], r2[32], o2[32 + 24];
    struct hx_iov args[3], part;

    (void)state;
    assert_int_equal(hx_caskdf(HX_KDF_HKDF_SHA256, none, keys, 2, r, out, 24), HX_OK);
    /* Round 1: chain_0 empty. */
    args[0] = keys[0];
    args[1] = r[0].ma;
    args[2] = r[0].mb;
    assert_int_equal(hx_f_hash(HX_MD_SHA256, args, h), HX_OK);
    part = (struct hx_iov){h, 32};
    assert_int_equal(hx_hmac(HX_MD_SHA256, NULL, 0, &part, 1, r1), HX_OK);
    assert_int_equal(hx_kdf_derive(HX_KDF_HKDF_SHA256, r1, 32, label, 16, (const uint8_t *)"ctx", 3,
                                   o1, sizeof(o1)),
                     HX_OK);
    /* Round 2: chain_1 = first 32 bytes of round 1's output. */
    args[0] = keys[1];
    assert_int_equal(hx_f_hash(HX_MD_SHA256, args, h), HX_OK);
    assert_int_equal(hx_hmac(HX_MD_SHA256, o1, 32, &part, 1, r2), HX_OK);
    assert_int_equal(hx_kdf_derive(HX_KDF_HKDF_SHA256, r2, 32, label, 16, (const uint8_t *)"ctx", 3,
                                   o2, sizeof(o2)),
                     HX_OK);
    assert_memory_equal(out, o2 + 32, 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc5869),
        cmocka_unit_test(hkdf_equals_openssl),
        cmocka_unit_test(ts103744_kdf_calls),
        cmocka_unit_test(ts103744_catkdf_full),
        cmocka_unit_test(f_cat_layout),
        cmocka_unit_test(refuses_bad_arguments),
        cmocka_unit_test(caskdf_is_the_chain_of_rounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
