/*
 * KEMs: sizes against FIPS 203 / RFC 7748 / the libraries' headers, both roles agree, tampering
 * and bad input; Classic McEliece and sntrup761 against the NIST known-answer records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "common/secret.h"
#include "crypto/kem.h"
#include "crypto/kem_djb.h"
#include "vectors.h"

/* Round trips per algorithm: Classic McEliece key generation takes up to a second. */
static int runs_for(enum hx_kem_alg a, int openssl_runs)
{
    if (!hx_kem_is_djb(a)) {
        return openssl_runs;
    }
    return a < HX_KEM_SNTRUP653 ? 2 : 20;
}

static void sizes_match_the_standards(void **state)
{
    (void)state;
    for (int a = 0; a < HX_KEM_ALG_COUNT; a++) {
        struct hx_kem_sizes std, got;
        hx_kem_standard_sizes((enum hx_kem_alg)a, &std);
        assert_true(std.public_key <= HX_KEM_MAX_PUBLIC);
        assert_true(std.ciphertext <= HX_KEM_MAX_CIPHERTEXT);
        if (hx_kem_is_djb((enum hx_kem_alg)a)) {
            /* libmceliece/libntruprime sizes: static asserts in kem_djb.c; real keys below */
            assert_int_equal(hx_kem_openssl_sizes((enum hx_kem_alg)a, &got), HX_ERR_UNSUPPORTED);
            continue;
        }
        assert_true(std.public_key <= HX_KEM_MAX_OPENSSL_PUBLIC);
        assert_int_equal(hx_kem_openssl_sizes((enum hx_kem_alg)a, &got), HX_OK);
        assert_int_equal(got.public_key, std.public_key);
        assert_int_equal(got.ciphertext, std.ciphertext);
        assert_int_equal(got.shared_secret, std.shared_secret);
        assert_true(std.public_key <= HX_KEM_MAX_PUBLIC);
        assert_true(std.ciphertext <= HX_KEM_MAX_CIPHERTEXT);
    }
}

/* The property: over many random runs both roles derive the same secret, and runs differ. */
static void both_roles_agree(void **state)
{
    (void)state;
    for (int a = 0; a < HX_KEM_ALG_COUNT; a++) {
        uint8_t prev[32] = {0};
        uint8_t *pub = malloc(HX_KEM_MAX_PUBLIC);
        struct hx_kem_sizes sz;
        assert_non_null(pub);
        hx_kem_standard_sizes((enum hx_kem_alg)a, &sz);
        for (int run = 0; run < runs_for((enum hx_kem_alg)a, 200); run++) {
            struct hx_kem_key *key = NULL;
            struct hx_secret *s1 = NULL, *s2 = NULL;
            uint8_t ct[HX_KEM_MAX_CIPHERTEXT];
            size_t pub_len, ct_len;

            assert_int_equal(
                hx_kem_keygen((enum hx_kem_alg)a, &key, pub, HX_KEM_MAX_PUBLIC, &pub_len), HX_OK);
            assert_int_equal(pub_len, sz.public_key);
            assert_int_equal(
                hx_kem_encaps((enum hx_kem_alg)a, pub, pub_len, ct, sizeof(ct), &ct_len, &s1),
                HX_OK);
            assert_int_equal(ct_len, sz.ciphertext);
            assert_int_equal(hx_kem_decaps(key, ct, ct_len, &s2), HX_OK);
            assert_true(hx_secret_equal(s1, s2));
            assert_int_equal(hx_secret_len(s1), 32);
            assert_memory_not_equal(hx_secret_data(s1), prev, 32);
            memcpy(prev, hx_secret_data(s1), 32);
            hx_secret_free(s1);
            hx_secret_free(s2);
            hx_kem_key_free(key);
        }
        free(pub);
    }
}

static void tampered_ciphertext_gives_another_secret(void **state)
{
    (void)state;
    for (int a = 0; a < HX_KEM_ALG_COUNT; a++) {
        struct hx_kem_key *key = NULL;
        struct hx_secret *s1 = NULL, *s2 = NULL;
        uint8_t *pub = malloc(HX_KEM_MAX_PUBLIC), ct[HX_KEM_MAX_CIPHERTEXT];
        size_t pub_len, ct_len;

        assert_non_null(pub);
        assert_int_equal(hx_kem_keygen((enum hx_kem_alg)a, &key, pub, HX_KEM_MAX_PUBLIC, &pub_len),
                         HX_OK);
        assert_int_equal(
            hx_kem_encaps((enum hx_kem_alg)a, pub, pub_len, ct, sizeof(ct), &ct_len, &s1), HX_OK);
        /* Flip one bit at a handful of places, first to last byte. */
        for (size_t pos = 0; pos < ct_len; pos += ct_len / 7) {
            ct[pos] ^= 0x04;
            hx_err e = hx_kem_decaps(key, ct, ct_len, &s2);
            /* ML-KEM, Classic McEliece, sntrup: implicit rejection (a pseudo-random secret).
             * X25519: another point, or refused when the flip lands on a small-order point. */
            if (e == HX_OK) {
                assert_false(hx_secret_equal(s1, s2));
            } else {
                assert_int_equal(a, HX_KEM_X25519);
            }
            hx_secret_free(s2);
            s2 = NULL;
            ct[pos] ^= 0x04;
        }
        /* Wrong lengths are refused outright. */
        assert_int_equal(hx_kem_decaps(key, ct, ct_len - 1, &s2), HX_ERR_BAD_VALUE);
        assert_null(s2);
        assert_int_equal(hx_kem_decaps(key, ct, ct_len + 1, &s2), HX_ERR_BAD_VALUE);
        assert_int_equal(
            hx_kem_encaps((enum hx_kem_alg)a, pub, pub_len - 1, ct, sizeof(ct), &ct_len, &s2),
            HX_ERR_BAD_VALUE);
        assert_int_equal(hx_kem_encaps((enum hx_kem_alg)a, pub, pub_len, ct, 10, &ct_len, &s2),
                         HX_ERR_NOSPACE);
        /* A public key buffer too small for the algorithm. */
        hx_kem_key_free(key);
        key = NULL;
        assert_int_equal(hx_kem_keygen((enum hx_kem_alg)a, &key, pub, pub_len - 1, &pub_len),
                         HX_ERR_NOSPACE);
        assert_null(key);
        hx_secret_free(s1);
        free(pub);
    }
}

/* Classic McEliece 6960119: each of the 1547 rows of 677 bytes ends in 3 padding bits that must
 * be zero; a key with one set is refused before use. */
static void mceliece_padding_bits_are_checked(void **state)
{
    const enum hx_kem_alg algs[] = {HX_KEM_MCELIECE_6960119, HX_KEM_MCELIECE_6960119F};
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        struct hx_kem_key *key = NULL;
        struct hx_secret *s = NULL;
        uint8_t *pub = malloc(HX_KEM_MAX_PUBLIC), ct[HX_KEM_MAX_CIPHERTEXT];
        size_t pub_len, ct_len;

        assert_non_null(pub);
        assert_int_equal(hx_kem_keygen(algs[i], &key, pub, HX_KEM_MAX_PUBLIC, &pub_len), HX_OK);
        pub[677 * 1000 - 1] |= 0x80;
        assert_int_equal(hx_kem_encaps(algs[i], pub, pub_len, ct, sizeof(ct), &ct_len, &s),
                         HX_ERR_BAD_VALUE);
        assert_null(s);
        pub[677 * 1000 - 1] &= 0x7f;
        pub[677 * 1000 - 1] ^= 0x01; /* a data bit: still a well-formed key */
        assert_int_equal(hx_kem_encaps(algs[i], pub, pub_len, ct, sizeof(ct), &ct_len, &s), HX_OK);
        hx_secret_free(s);
        hx_kem_key_free(key);
        free(pub);
    }
}

/* NIST's KAT generator: AES-256 CTR_DRBG without derivation function or reseeding. */
struct nist_drbg {
    uint8_t key[32], v[16];
};

static void drbg_block(struct nist_drbg *d, uint8_t out[16])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0;

    for (int j = 15; j >= 0 && ++d->v[j] == 0; j--) {
    }
    assert_non_null(c);
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_ecb(), NULL, d->key, NULL), 1);
    EVP_CIPHER_CTX_set_padding(c, 0);
    assert_int_equal(EVP_EncryptUpdate(c, out, &len, d->v, 16), 1);
    assert_int_equal(len, 16);
    EVP_CIPHER_CTX_free(c);
}

static void drbg_update(struct nist_drbg *d, const uint8_t *provided)
{
    uint8_t t[48];

    for (int i = 0; i < 3; i++) {
        drbg_block(d, t + 16 * i);
    }
    for (int i = 0; provided != NULL && i < 48; i++) {
        t[i] ^= provided[i];
    }
    memcpy(d->key, t, 32);
    memcpy(d->v, t + 32, 16);
}

static void drbg_init(struct nist_drbg *d, const uint8_t entropy[48])
{
    memset(d, 0, sizeof(*d));
    drbg_update(d, entropy);
}

static void drbg_fill(void *ctx, uint8_t *out, size_t len)
{
    struct nist_drbg *d = ctx;
    uint8_t b[16];

    while (len > 0) {
        size_t k = len < 16 ? len : 16;
        drbg_block(d, b);
        memcpy(out, b, k);
        out += k;
        len -= k;
    }
    drbg_update(d, NULL);
}

static void hash_line(EVP_MD_CTX *md, const char *label, const uint8_t *p, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char pair[2];

    assert_int_equal(EVP_DigestUpdate(md, label, strlen(label)), 1);
    for (size_t i = 0; i < len; i++) {
        pair[0] = hex[p[i] >> 4];
        pair[1] = hex[p[i] & 15];
        assert_int_equal(EVP_DigestUpdate(md, pair, 2), 1);
    }
    assert_int_equal(EVP_DigestUpdate(md, "\n", 1), 1);
}

/* The SHA-256 of the first KAT record of alg, made through kem_djb.c with the DRBG. */
static void kat_record_hash(enum hx_kem_alg alg, uint8_t digest[32])
{
    struct nist_drbg d;
    uint8_t entropy[48], seed[48], ct[HX_KEM_MAX_CIPHERTEXT], *pk;
    struct hx_secret *sk = NULL, *ss = NULL, *ss2 = NULL;
    struct hx_kem_sizes sz;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned dlen = 0;
    unsigned long calls = hx_kem_djb_rand_calls();

    hx_kem_standard_sizes(alg, &sz);
    assert_non_null(pk = malloc(sz.public_key));
    for (int i = 0; i < 48; i++) {
        entropy[i] = (uint8_t)i;
    }
    drbg_init(&d, entropy);
    drbg_fill(&d, seed, sizeof(seed));
    assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
    assert_int_equal(EVP_DigestUpdate(md, "count = 0\n", 10), 1);
    hash_line(md, "seed = ", seed, sizeof(seed));
    drbg_init(&d, seed);
    hx_kem_djb_set_test_rng(drbg_fill, &d);
    assert_int_equal(hx_kem_djb_keypair(alg, &sk, pk), HX_OK);
    hash_line(md, "pk = ", pk, sz.public_key);
    hash_line(md, "sk = ", hx_secret_data(sk), hx_secret_len(sk));
    assert_int_equal(hx_kem_djb_enc(alg, pk, ct, &ss), HX_OK);
    hash_line(md, "ct = ", ct, sz.ciphertext);
    hash_line(md, "ss = ", hx_secret_data(ss), hx_secret_len(ss));
    hx_kem_djb_set_test_rng(NULL, NULL);
    assert_true(hx_kem_djb_rand_calls() > calls); /* the libraries drew from our randombytes */
    assert_int_equal(hx_kem_djb_dec(alg, sk, ct, &ss2), HX_OK);
    assert_true(hx_secret_equal(ss, ss2));
    assert_int_equal(EVP_DigestFinal_ex(md, digest, &dlen), 1);
    assert_int_equal(dlen, 32);
    EVP_MD_CTX_free(md);
    hx_secret_free(sk);
    hx_secret_free(ss);
    hx_secret_free(ss2);
    free(pk);
}

static void mceliece_and_sntrup_known_answers(void **state)
{
    struct json_object *doc = NULL, *vs = vectors_load("kem-kat-nist.json", &doc);
    size_t n = json_object_array_length(vs);

    (void)state;
    assert_int_equal(n, 11);
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(vs, i);
        enum hx_kem_alg alg;
        uint8_t got[32], *want;
        size_t want_len;

        assert_int_equal(hx_kem_parse(vec_str(v, "alg"), &alg), HX_OK);
        want = vec_hex(v, "single_sha256", &want_len);
        assert_int_equal(want_len, 32);
        kat_record_hash(alg, got);
        assert_memory_equal(got, want, 32);
        free(want);
    }
    json_object_put(doc);
}

/* Outside a test the libraries' randomness is OpenSSL's: two key pairs differ, and each drew
 * through hykex's randombytes() (the counter would stay put if librandombytes answered). */
static void djb_randomness_is_rand_bytes(void **state)
{
    uint8_t a[1158], b[1158];
    struct hx_kem_key *k1 = NULL, *k2 = NULL;
    size_t la, lb;
    unsigned long calls = hx_kem_djb_rand_calls();

    (void)state;
    assert_int_equal(hx_kem_keygen(HX_KEM_SNTRUP761, &k1, a, sizeof(a), &la), HX_OK);
    assert_int_equal(hx_kem_keygen(HX_KEM_SNTRUP761, &k2, b, sizeof(b), &lb), HX_OK);
    assert_true(hx_kem_djb_rand_calls() >= calls + 2);
    assert_memory_not_equal(a, b, sizeof(a));
    hx_kem_key_free(k1);
    hx_kem_key_free(k2);
}

/* FIPS 203 7.2: an encapsulation key with a coefficient >= q is refused. */
static void malformed_mlkem_public_key_is_refused(void **state)
{
    uint8_t pub[HX_KEM_MAX_OPENSSL_PUBLIC], ct[HX_KEM_MAX_CIPHERTEXT];
    size_t pub_len, ct_len;
    struct hx_kem_key *key = NULL;
    struct hx_secret *s = NULL;

    (void)state;
    assert_int_equal(hx_kem_keygen(HX_KEM_ML_KEM_768, &key, pub, sizeof(pub), &pub_len), HX_OK);
    /* The first 12-bit coefficient becomes 0xfff = 4095 >= q = 3329. */
    pub[0] = 0xff;
    pub[1] |= 0x0f;
    assert_int_equal(hx_kem_encaps(HX_KEM_ML_KEM_768, pub, pub_len, ct, sizeof(ct), &ct_len, &s),
                     HX_ERR_BAD_VALUE);
    assert_null(s);
    hx_kem_key_free(key);
}

static void x25519_rfc7748(void **state)
{
    struct json_object *doc = NULL, *v;
    struct hx_kem_key *alice = NULL, *bob = NULL;
    struct hx_secret *s1 = NULL, *s2 = NULL;
    size_t la, lb, lpa, lpb, ls;
    uint8_t *a, *b, *pa, *pb, *shared;
    const char *dir = getenv("HYKEX_TEST_VECTORS");
    char path[1024];

    (void)state;
    snprintf(path, sizeof(path), "%s/x25519-rfc7748.json", dir);
    v = doc = json_object_from_file(path);
    assert_non_null(doc);
    a = vec_hex(v, "alice_private", &la);
    b = vec_hex(v, "bob_private", &lb);
    pa = vec_hex(v, "alice_public", &lpa);
    pb = vec_hex(v, "bob_public", &lpb);
    shared = vec_hex(v, "shared", &ls);
    assert_int_equal(hx_kem_key_from_private(HX_KEM_X25519, a, la, &alice), HX_OK);
    assert_int_equal(hx_kem_key_from_private(HX_KEM_X25519, b, lb, &bob), HX_OK);
    assert_int_equal(hx_kem_x25519(alice, pb, lpb, &s1), HX_OK);
    assert_int_equal(hx_kem_decaps(bob, pa, lpa, &s2), HX_OK); /* "ciphertext" = Alice's key */
    assert_memory_equal(hx_secret_data(s1), shared, ls);
    assert_memory_equal(hx_secret_data(s2), shared, ls);
    hx_secret_free(s1);
    hx_secret_free(s2);
    /* A small-order point (all zeros) gives the all-zero secret: refused. */
    static const uint8_t zero[32];
    assert_int_equal(hx_kem_x25519(alice, zero, 32, &s1), HX_ERR_CRYPTO);
    assert_null(s1);
    hx_kem_key_free(bob);
    assert_int_equal(hx_kem_key_from_private(HX_KEM_ML_KEM_768, a, la, &bob), HX_ERR_UNSUPPORTED);
    assert_null(bob);
    hx_kem_key_free(alice);
    hx_kem_key_free(NULL);
    free(a);
    free(b);
    free(pa);
    free(pb);
    free(shared);
    json_object_put(doc);
}

static void names(void **state)
{
    enum hx_kem_alg a;

    (void)state;
    assert_int_equal(hx_kem_parse("ml-kem-1024", &a), HX_OK);
    assert_int_equal(a, HX_KEM_ML_KEM_1024);
    assert_int_equal(hx_kem_parse("Kyber768", &a), HX_ERR_UNSUPPORTED);
    assert_string_equal(hx_kem_name(HX_KEM_X25519), "X25519");
    assert_int_equal(hx_kem_parse("classic-mceliece-348864", &a), HX_OK);
    assert_int_equal(a, HX_KEM_MCELIECE_348864);
    assert_int_equal(hx_kem_parse("Classic-McEliece-8192128f", &a), HX_OK);
    assert_int_equal(a, HX_KEM_MCELIECE_8192128F);
    assert_int_equal(hx_kem_parse("sntrup761", &a), HX_OK);
    assert_int_equal(a, HX_KEM_SNTRUP761);
    assert_string_equal(hx_kem_name(HX_KEM_SNTRUP1277), "sntrup1277");
    assert_int_equal(hx_kem_parse("Classic-McEliece-348864pc", &a), HX_ERR_UNSUPPORTED);
    assert_int_equal(hx_kem_parse("HQC-128", &a), HX_ERR_UNSUPPORTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_match_the_standards),
        cmocka_unit_test(both_roles_agree),
        cmocka_unit_test(tampered_ciphertext_gives_another_secret),
        cmocka_unit_test(malformed_mlkem_public_key_is_refused),
        cmocka_unit_test(mceliece_padding_bits_are_checked),
        cmocka_unit_test(mceliece_and_sntrup_known_answers),
        cmocka_unit_test(djb_randomness_is_rand_bytes),
        cmocka_unit_test(x25519_rfc7748),
        cmocka_unit_test(names),
    };
    if (hx_secret_heap_init(1u << 20) != HX_OK) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
