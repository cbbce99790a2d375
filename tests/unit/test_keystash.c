/*
 * daemon/keystash.c: ML-KEM key pairs made ahead by waiting initiator workers. Each pair is
 * handed out once, works (its public key encapsulates to what its private key decapsulates),
 * the stash is bounded, fills only for algorithms that were asked for, never below its secure-
 * heap reserve, and a NULL stash (none made) is a no-op.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/secret.h"
#include "daemon/keystash.h"

#define PUB768 1184
#define CT768 1088

static void null_stash_does_nothing(void **state)
{
    struct hx_kem_key *key = (struct hx_kem_key *)1;
    uint8_t pub[PUB768];

    (void)state;
    assert_false(hxd_keystash_take(NULL, HX_KEM_ML_KEM_768, &key, pub, sizeof(pub)));
    assert_null(key);
    assert_false(hxd_keystash_fill_one(NULL));
    assert_int_equal(hxd_keystash_held(NULL, HX_KEM_ML_KEM_768), 0);
    hxd_keystash_free(NULL);
}

static void fills_only_what_was_asked_for(void **state)
{
    struct hxd_keystash *ks = NULL;
    struct hx_kem_key *key = NULL;
    uint8_t pub[PUB768];

    (void)state;
    assert_int_equal(hxd_keystash_new(4, 0, &ks), HX_OK);
    assert_false(hxd_keystash_fill_one(ks)); /* nothing asked for yet */
    /* X25519 (and every non-ML-KEM algorithm) is never held. */
    assert_false(hxd_keystash_take(ks, HX_KEM_X25519, &key, pub, 32));
    assert_false(hxd_keystash_fill_one(ks));
    /* A miss marks ML-KEM-768 as wanted; the stash fills to its bound and no further. */
    assert_false(hxd_keystash_take(ks, HX_KEM_ML_KEM_768, &key, pub, sizeof(pub)));
    for (int i = 0; i < 4; i++) {
        assert_true(hxd_keystash_fill_one(ks));
    }
    assert_false(hxd_keystash_fill_one(ks));
    assert_int_equal(hxd_keystash_held(ks, HX_KEM_ML_KEM_768), 4);
    assert_int_equal(hxd_keystash_held(ks, HX_KEM_ML_KEM_512), 0);
    /* A wrong public-key length is refused and takes nothing. */
    assert_false(hxd_keystash_take(ks, HX_KEM_ML_KEM_768, &key, pub, sizeof(pub) - 1));
    assert_int_equal(hxd_keystash_held(ks, HX_KEM_ML_KEM_768), 4);
    hxd_keystash_free(ks); /* frees the pairs still held (ASan: no leak) */
    assert_int_equal(hxd_keystash_new(0, 0, &ks), HX_ERR_INVALID_ARG);
    assert_null(ks);
}

static void each_pair_once_and_working(void **state)
{
    struct hxd_keystash *ks = NULL;
    struct hx_kem_key *k1 = NULL, *k2 = NULL, *k3 = NULL;
    struct hx_secret *s_enc = NULL, *s_dec = NULL;
    uint8_t pub1[PUB768], pub2[PUB768], ct[CT768];
    size_t ct_len = 0;

    (void)state;
    assert_int_equal(hxd_keystash_new(2, 0, &ks), HX_OK);
    assert_false(hxd_keystash_take(ks, HX_KEM_ML_KEM_768, &k1, pub1, sizeof(pub1)));
    assert_true(hxd_keystash_fill_one(ks));
    assert_true(hxd_keystash_fill_one(ks));
    assert_true(hxd_keystash_take(ks, HX_KEM_ML_KEM_768, &k1, pub1, sizeof(pub1)));
    assert_true(hxd_keystash_take(ks, HX_KEM_ML_KEM_768, &k2, pub2, sizeof(pub2)));
    assert_false(hxd_keystash_take(ks, HX_KEM_ML_KEM_768, &k3, pub2, sizeof(pub2)));
    assert_null(k3);
    assert_non_null(k1);
    assert_non_null(k2);
    assert_ptr_not_equal(k1, k2);
    assert_memory_not_equal(pub1, pub2, sizeof(pub1)); /* two fresh pairs */
    assert_int_equal(hxd_keystash_held(ks, HX_KEM_ML_KEM_768), 0);
    /* The public key copied out belongs to the private key handed out with it. */
    assert_int_equal(
        hx_kem_encaps(HX_KEM_ML_KEM_768, pub2, sizeof(pub2), ct, sizeof(ct), &ct_len, &s_enc),
        HX_OK);
    assert_int_equal(hx_kem_decaps(k2, ct, ct_len, &s_dec), HX_OK);
    assert_int_equal(hx_secret_len(s_enc), hx_secret_len(s_dec));
    assert_memory_equal(hx_secret_data(s_enc), hx_secret_data(s_dec), hx_secret_len(s_enc));
    hx_secret_free(s_enc);
    hx_secret_free(s_dec);
    hx_kem_key_free(k1);
    hx_kem_key_free(k2);
    hxd_keystash_free(ks);
}

/* Last: it makes the process's secure heap. */
static void keeps_the_secure_heap_reserve(void **state)
{
    struct hxd_keystash *ks = NULL;
    struct hx_kem_key *key = NULL;
    uint8_t pub[PUB768];

    (void)state;
    assert_int_equal(hx_secret_heap_init(64u << 10), HX_OK);
    assert_int_equal(hxd_keystash_new(4, 1u << 20, &ks), HX_OK); /* reserve above the heap */
    assert_false(hxd_keystash_take(ks, HX_KEM_ML_KEM_768, &key, pub, sizeof(pub)));
    assert_false(hxd_keystash_fill_one(ks));
    assert_int_equal(hxd_keystash_held(ks, HX_KEM_ML_KEM_768), 0);
    hxd_keystash_free(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(null_stash_does_nothing),
        cmocka_unit_test(fills_only_what_was_asked_for),
        cmocka_unit_test(each_pair_once_and_working),
        cmocka_unit_test(keeps_the_secure_heap_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
