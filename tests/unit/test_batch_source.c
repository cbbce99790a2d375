/* daemon/batch_source.c: how many positions a batch may carry so that its frames fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "daemon/batch.h"
#include "proto/uri.h"

#define BASE "hybrid://app1@aaaaaaaa-bbbb-4ccc-8ddd-0123456789ef?key_sources="

static uint32_t cap(const char *sources, bool per_batch, uint32_t want)
{
    char s[512], why[300];
    struct hx_uri u;

    snprintf(s, sizeof(s), BASE "%s", sources);
    assert_int_equal(hx_uri_parse(s, &u, why, sizeof(why)), HX_OK);
    return hx_peer_batch_cap(&u, per_batch, want);
}

static void small_keys_take_the_configured_size(void **state)
{
    (void)state;
    assert_int_equal(cap("QKD,ML-KEM-768", false, 16), 16);
    assert_int_equal(cap("sntrup761,X25519,QKD", false, 64), 64);
    assert_int_equal(cap("QKD,X25519", false, 1024), 1024);
}

/* The ciphertexts of a BATCH_RESP stay under 1 MiB: (1 MiB - 4096) / 1568 = 666 positions. */
static void ciphertexts_cap_a_big_batch(void **state)
{
    (void)state;
    assert_int_equal(cap("QKD,ML-KEM-1024", false, 1024), 666);
    assert_int_equal(cap("QKD,ML-KEM-1024", true, 1024), 666);
}

/* Classic McEliece: one 261120-byte key per batch fits easily; a key per position caps the
 * batch at (4 MiB - 4096) / (16 + 1184 + 261120) = 15 positions. */
static void mceliece_public_keys_cap_the_batch(void **state)
{
    (void)state;
    assert_int_equal(cap("ML-KEM-768,Classic-McEliece-348864,QKD", true, 16), 16);
    /* ... and the ciphertexts (1088 + 96 bytes a position) cap it at 882 */
    assert_int_equal(cap("ML-KEM-768,Classic-McEliece-348864,QKD", true, 1024), 882);
    assert_int_equal(cap("ML-KEM-768,Classic-McEliece-348864,QKD", false, 16), 15);
    assert_int_equal(cap("QKD,Classic-McEliece-8192128", false, 16), 3);
    assert_int_equal(cap("QKD,Classic-McEliece-8192128", true, 16), 16);
    /* three 1.3 MB keys fit one 4 MiB BATCH_REQ, four do not: such a stream is refused */
    assert_int_equal(cap("Classic-McEliece-8192128,Classic-McEliece-8192128f,"
                         "Classic-McEliece-8192128",
                         true, 16),
                     16);
    assert_int_equal(cap("Classic-McEliece-8192128,Classic-McEliece-8192128f,"
                         "Classic-McEliece-8192128,Classic-McEliece-8192128f",
                         true, 16),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_keys_take_the_configured_size),
        cmocka_unit_test(ciphertexts_cap_a_big_batch),
        cmocka_unit_test(mceliece_public_keys_cap_the_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
