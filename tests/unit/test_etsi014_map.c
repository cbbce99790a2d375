/*
 * api/etsi014_map: ETSI 014 onto key streams without a stream. Pair stream ids (the same at
 * both nodes, one per direction), key IDs (position and size back exactly, version-4 UUIDs, a
 * wrong key or one flipped bit refused), and who may call (401 / 400 / allowed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/etsi014_map.h"

static const struct hx_uuid node_a = {{0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0x4a, 0xaa, 0xaa, 0xaa,
                                       0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa}};
static const struct hx_uuid node_b = {{0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0x4b, 0xbb, 0xbb, 0xbb,
                                       0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb}};

static void pair_ksid(void **state)
{
    struct hx_uuid ab, ab2, ba, ac, ab_other_node;

    (void)state;
    hxd_014_pair_ksid("SAE_A", &node_a, "SAE_B", &node_b, &ab);
    hxd_014_pair_ksid("SAE_A", &node_a, "SAE_B", &node_b, &ab2);
    hxd_014_pair_ksid("SAE_B", &node_b, "SAE_A", &node_a, &ba);
    hxd_014_pair_ksid("SAE_A", &node_a, "SAE_C", &node_b, &ac);
    hxd_014_pair_ksid("SAE_A", &node_b, "SAE_B", &node_a, &ab_other_node);
    assert_true(hx_uuid_equal(&ab, &ab2)); /* both nodes compute the same */
    assert_false(hx_uuid_equal(&ab, &ba)); /* each direction its own stream */
    assert_false(hx_uuid_equal(&ab, &ac));
    assert_false(hx_uuid_equal(&ab, &ab_other_node));
    assert_int_equal(ab.b[6] >> 4, 8); /* RFC 9562 version 8 */
    assert_int_equal(ab.b[8] >> 6, 2);
    /* "SAE_A"+"BSAE_B" and "SAE_AB"+"SAE_B" are different pairs (lengths are in the hash) */
    struct hx_uuid x, y;
    hxd_014_pair_ksid("S", &node_a, "AB", &node_b, &x);
    hxd_014_pair_ksid("SA", &node_a, "B", &node_b, &y);
    assert_false(hx_uuid_equal(&x, &y));
}

static void kid(uint8_t out[HXD_014_KID_LEN], uint8_t fill)
{
    uint8_t key0[32];
    struct hx_uuid ksid;

    memset(key0, fill, sizeof(key0));
    hxd_014_pair_ksid("SAE_A", &node_a, "SAE_B", &node_b, &ksid);
    assert_int_equal(hxd_014_kid_derive(key0, sizeof(key0), &ksid, out), HX_OK);
}

static void kid_derive(void **state)
{
    uint8_t k1[HXD_014_KID_LEN], k2[HXD_014_KID_LEN], k3[HXD_014_KID_LEN], key0[32] = {0};
    struct hx_uuid a, b;

    (void)state;
    kid(k1, 7);
    kid(k2, 7);
    kid(k3, 8);
    assert_memory_equal(k1, k2, sizeof(k1));
    assert_memory_not_equal(k1, k3, sizeof(k1));
    hxd_014_pair_ksid("SAE_A", &node_a, "SAE_B", &node_b, &a);
    hxd_014_pair_ksid("SAE_B", &node_b, "SAE_A", &node_a, &b);
    assert_int_equal(hxd_014_kid_derive(key0, 32, &a, k1), HX_OK);
    assert_int_equal(hxd_014_kid_derive(key0, 32, &b, k2), HX_OK);
    assert_memory_not_equal(k1, k2, sizeof(k1)); /* bound to the stream */
    assert_int_equal(hxd_014_kid_derive(key0, 15, &a, k1), HX_ERR_INVALID_ARG);
}

static void key_id_round_trip(void **state)
{
    static const uint64_t positions[] = {1, 2, 3, 255, 256, 65536, 1000003, HXD_014_MAX_POS};
    static const uint32_t sizes[] = {1, 16, 32, 255, 256, 65535};
    uint8_t k[HXD_014_KID_LEN], other[HXD_014_KID_LEN];
    struct hx_uuid id, seen[8 * 6];
    size_t n_seen = 0;

    (void)state;
    kid(k, 1);
    kid(other, 2);
    for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
        for (size_t j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++) {
            uint64_t pos = 0;
            uint32_t size = 0;
            assert_int_equal(hxd_014_key_id_make(k, positions[i], sizes[j], &id), HX_OK);
            assert_int_equal(id.b[6] >> 4, 4); /* a version-4 UUID, as clients expect */
            assert_int_equal(id.b[8] >> 6, 2);
            assert_int_equal(hxd_014_key_id_open(k, &id, &pos, &size), HX_OK);
            assert_true(pos == positions[i]);
            assert_int_equal(size, sizes[j]);
            /* another stream's key does not open it */
            assert_int_equal(hxd_014_key_id_open(other, &id, &pos, &size), HX_ERR_NOT_FOUND);
            for (size_t s = 0; s < n_seen; s++) {
                assert_false(hx_uuid_equal(&seen[s], &id));
            }
            seen[n_seen++] = id;
        }
    }
}

static void key_id_refusals(void **state)
{
    uint8_t k[HXD_014_KID_LEN];
    struct hx_uuid id, bad;
    uint64_t pos;
    uint32_t size;

    (void)state;
    kid(k, 3);
    assert_int_equal(hxd_014_key_id_make(k, 0, 32, &id), HX_ERR_INVALID_ARG);
    assert_int_equal(hxd_014_key_id_make(k, HXD_014_MAX_POS + 1, 32, &id), HX_ERR_INVALID_ARG);
    assert_int_equal(hxd_014_key_id_make(k, 5, 0, &id), HX_ERR_INVALID_ARG);
    assert_int_equal(hxd_014_key_id_make(k, 5, 65536, &id), HX_ERR_INVALID_ARG);
    assert_int_equal(hxd_014_key_id_make(k, 5, 32, &id), HX_OK);
    /* every single flipped bit outside the version and variant bits: refused */
    for (int bit = 0; bit < 128; bit++) {
        bad = id;
        bad.b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(hxd_014_key_id_open(k, &bad, &pos, &size), HX_ERR_NOT_FOUND);
    }
    /* random guesses: none opens (58 redundant bits) */
    for (unsigned i = 0; i < 2000; i++) {
        memset(&bad, 0, sizeof(bad));
        memcpy(bad.b, &i, sizeof(i));
        bad.b[6] = 0x40;
        bad.b[8] = 0x80;
        assert_int_equal(hxd_014_key_id_open(k, &bad, &pos, &size), HX_ERR_NOT_FOUND);
    }
}

static void authorize(void **state)
{
    static struct hxd_014_config c; /* local and remote SAEs as the 014 server holds them */
    struct hxd_014_verdict v;

    (void)state;
    memset(&c, 0, sizeof(c));
    snprintf(c.local.saes[0].id, sizeof(c.local.saes[0].id), "%s", "SAE_B");
    snprintf(c.local.saes[1].id, sizeof(c.local.saes[1].id), "%s", "SAE_C");
    c.local.n = 2;
    snprintf(c.remote.saes[0].id, sizeof(c.remote.saes[0].id), "%s", "SAE_A");
    c.remote.saes[0].node = node_a;
    snprintf(c.remote.saes[1].id, sizeof(c.remote.saes[1].id), "%s", "SAE_D");
    c.remote.saes[1].node = node_a;
    c.remote.n = 2;

    hxd_014_authorize(&c.local, &c.remote, "SAE_C", "SAE_D", &v);
    assert_int_equal(v.http, 0);
    assert_int_equal(v.local, 1);
    assert_int_equal(v.remote, 1);
    hxd_014_authorize(&c.local, &c.remote, "SAE_X", "SAE_A", &v); /* not attached here */
    assert_int_equal(v.http, 401);
    hxd_014_authorize(&c.local, &c.remote, "SAE_A", "SAE_B",
                      &v); /* a remote SAE calling this node */
    assert_int_equal(v.http, 401);
    hxd_014_authorize(&c.local, &c.remote, "SAE_B", "SAE_C", &v); /* both here */
    assert_int_equal(v.http, 400);
    assert_non_null(strstr(v.msg, "this node"));
    hxd_014_authorize(&c.local, &c.remote, "SAE_B", "SAE_Q", &v);
    assert_int_equal(v.http, 400);
    assert_non_null(strstr(v.msg, "unknown SAE ID"));
    hxd_014_authorize(&c.local, &c.remote, "sae_b", "SAE_A", &v); /* ids are case-sensitive */
    assert_int_equal(v.http, 401);
    assert_int_equal(hxd_014_sae_index(&c.remote, "SAE_D"), 1);
    assert_int_equal(hxd_014_sae_index(&c.remote, "SAE_B"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pair_ksid),         cmocka_unit_test(kid_derive),
        cmocka_unit_test(key_id_round_trip), cmocka_unit_test(key_id_refusals),
        cmocka_unit_test(authorize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
