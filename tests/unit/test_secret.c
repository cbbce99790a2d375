#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/crypto.h>

#include "common/secret.h"

static void new_secret_is_zeroed_and_sized(void **state)
{
    struct hx_secret *s = NULL;
    static const uint8_t zeros[64];

    (void)state;
    assert_int_equal(hx_secret_new(64, &s), HX_OK);
    assert_int_equal(hx_secret_len(s), 64);
    assert_memory_equal(hx_secret_data(s), zeros, 64);
    hx_secret_free(s);
}

static void rejects_bad_lengths(void **state)
{
    struct hx_secret *s = (struct hx_secret *)1;

    (void)state;
    assert_int_equal(hx_secret_new(0, &s), HX_ERR_INVALID_ARG);
    assert_null(s);
    assert_int_equal(hx_secret_new(HX_SECRET_MAX_LEN + 1, &s), HX_ERR_INVALID_ARG);
    assert_null(s);
    assert_int_equal(hx_secret_new(HX_SECRET_MAX_LEN, &s), HX_OK);
    hx_secret_free(s);
    hx_secret_free(NULL);
}

static void lives_in_the_secure_heap(void **state)
{
    struct hx_secret *s = NULL;

    (void)state;
    assert_true(hx_secret_heap_active());
    assert_int_equal(hx_secret_new(32, &s), HX_OK);
    assert_true(hx_secret_is_secure(s));
    assert_true(CRYPTO_secure_allocated(hx_secret_data(s)));
    /* The secure heap accounts for it; freeing gives it back. */
    size_t used = CRYPTO_secure_used();
    assert_true(used >= 32);
    hx_secret_free(s);
    assert_true(CRYPTO_secure_used() < used);
}

static void refuses_when_the_secure_heap_is_full(void **state)
{
    struct hx_secret *big[8] = {0};
    size_t secure = 0, refused = 0;
    void *raw;

    (void)state;
    /* 8 x 64 KiB cannot all fit in the 256 KiB secure heap of this test: the rest are refused,
     * never placed on the normal heap (issue 19). */
    for (size_t i = 0; i < 8; i++) {
        hx_err e = hx_secret_new(HX_SECRET_MAX_LEN, &big[i]);
        if (e == HX_OK) {
            assert_true(hx_secret_is_secure(big[i]));
            secure++;
        } else {
            assert_int_equal(e, HX_ERR_NOMEM);
            assert_null(big[i]);
            refused++;
        }
    }
    assert_true(secure >= 1);
    assert_true(refused >= 1);
    assert_true(hx_secret_heap_room() < HX_SECRET_MAX_LEN);
    raw = hx_secure_alloc(HX_SECRET_MAX_LEN);
    assert_null(raw);
    for (size_t i = 0; i < 8; i++) {
        hx_secret_free(big[i]);
    }
    /* Freed: room again. */
    assert_int_equal(hx_secret_new(HX_SECRET_MAX_LEN, &big[0]), HX_OK);
    assert_true(hx_secret_is_secure(big[0]));
    hx_secret_free(big[0]);
}

static void copies_and_compares(void **state)
{
    struct hx_secret *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    uint8_t bytes[32];

    (void)state;
    for (size_t i = 0; i < sizeof(bytes); i++) {
        bytes[i] = (uint8_t)(i * 7);
    }
    assert_int_equal(hx_secret_from(bytes, 32, &a), HX_OK);
    assert_memory_equal(hx_secret_data(a), bytes, 32);
    assert_int_equal(hx_secret_dup(a, &b), HX_OK);
    assert_true(hx_secret_equal(a, b));
    assert_ptr_not_equal(hx_secret_data(a), hx_secret_data(b));
    /* One flipped bit anywhere makes them unequal. */
    for (size_t i = 0; i < 32 * 8; i++) {
        hx_secret_data_mut(b)[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_false(hx_secret_equal(a, b));
        hx_secret_data_mut(b)[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    assert_true(hx_secret_equal(a, b));
    /* Same prefix, different length. */
    assert_int_equal(hx_secret_from(bytes, 31, &c), HX_OK);
    assert_false(hx_secret_equal(a, c));
    assert_int_equal(hx_secret_from(bytes, 32, &d), HX_OK);
    assert_true(hx_ct_equal(hx_secret_data(d), bytes, 32));
    bytes[31] ^= 1;
    assert_false(hx_ct_equal(hx_secret_data(d), bytes, 32));
    assert_true(hx_ct_equal(bytes, bytes, 0));
    hx_secret_free(a);
    hx_secret_free(b);
    hx_secret_free(c);
    hx_secret_free(d);
}

static int setup(void **state)
{
    (void)state;
    return hx_secret_heap_init(256 * 1024) == HX_OK ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_secret_is_zeroed_and_sized),
        cmocka_unit_test(rejects_bad_lengths),
        cmocka_unit_test(lives_in_the_secure_heap),
        cmocka_unit_test(refuses_when_the_secure_heap_is_full),
        cmocka_unit_test(copies_and_compares),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
