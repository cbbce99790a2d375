/* KEMs: sizes against FIPS 203 / RFC 7748, both roles agree, tampering and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "common/secret.h"
#include "crypto/kem.h"
#include "vectors.h"

static void sizes_match_the_standards(void **state)
{
    (void)state;
    for (int a = 0; a < HX_KEM_ALG_COUNT; a++) {
        struct hx_kem_sizes std, got;
        hx_kem_standard_sizes((enum hx_kem_alg)a, &std);
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
        for (int run = 0; run < 200; run++) {
            struct hx_kem_key *key = NULL;
            struct hx_secret *s1 = NULL, *s2 = NULL;
            uint8_t pub[HX_KEM_MAX_PUBLIC], ct[HX_KEM_MAX_CIPHERTEXT];
            size_t pub_len, ct_len;

            assert_int_equal(hx_kem_keygen((enum hx_kem_alg)a, &key, pub, sizeof(pub), &pub_len),
                             HX_OK);
            assert_int_equal(
                hx_kem_encaps((enum hx_kem_alg)a, pub, pub_len, ct, sizeof(ct), &ct_len, &s1),
                HX_OK);
            assert_int_equal(hx_kem_decaps(key, ct, ct_len, &s2), HX_OK);
            assert_true(hx_secret_equal(s1, s2));
            assert_int_equal(hx_secret_len(s1), 32);
            assert_memory_not_equal(hx_secret_data(s1), prev, 32);
            memcpy(prev, hx_secret_data(s1), 32);
            hx_secret_free(s1);
            hx_secret_free(s2);
            hx_kem_key_free(key);
        }
    }
}

static void tampered_ciphertext_gives_another_secret(void **state)
{
    (void)state;
    for (int a = 0; a < HX_KEM_ALG_COUNT; a++) {
        struct hx_kem_key *key = NULL;
        struct hx_secret *s1 = NULL, *s2 = NULL;
        uint8_t pub[HX_KEM_MAX_PUBLIC], ct[HX_KEM_MAX_CIPHERTEXT];
        size_t pub_len, ct_len;

        assert_int_equal(hx_kem_keygen((enum hx_kem_alg)a, &key, pub, sizeof(pub), &pub_len),
                         HX_OK);
        assert_int_equal(
            hx_kem_encaps((enum hx_kem_alg)a, pub, pub_len, ct, sizeof(ct), &ct_len, &s1), HX_OK);
        /* Flip one bit at a handful of places, first to last byte. */
        for (size_t pos = 0; pos < ct_len; pos += ct_len / 7) {
            ct[pos] ^= 0x04;
            hx_err e = hx_kem_decaps(key, ct, ct_len, &s2);
            /* ML-KEM: implicit rejection (a pseudo-random secret). X25519: another point, or
             * refused when the flip lands on a small-order point. */
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
        hx_secret_free(s1);
        hx_kem_key_free(key);
    }
}

/* FIPS 203 7.2: an encapsulation key with a coefficient >= q is refused. */
static void malformed_mlkem_public_key_is_refused(void **state)
{
    uint8_t pub[HX_KEM_MAX_PUBLIC], ct[HX_KEM_MAX_CIPHERTEXT];
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_match_the_standards),
        cmocka_unit_test(both_roles_agree),
        cmocka_unit_test(tampered_ciphertext_gives_another_secret),
        cmocka_unit_test(malformed_mlkem_public_key_is_refused),
        cmocka_unit_test(x25519_rfc7748),
        cmocka_unit_test(names),
    };
    if (hx_secret_heap_init(1u << 20) != HX_OK) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
