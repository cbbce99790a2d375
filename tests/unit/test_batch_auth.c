/*
 * daemon/batch_auth.c: batches authenticated by MACs under the key of a signed batch
 * (docs/peer-protocol.md "Authentication").
 *
 * Known answers for the key and the MACs, computed apart from this code (Python's hmac and
 * hashlib, HKDF written out from RFC 5869):
 *   ak  = HKDF-SHA256(IKM = qkd_0 || kem_0 || qkd_1 || kem_1, salt = T,
 *                     info = "hykex/1 batch auth" || stream id)
 *   mac = HMAC-SHA256(ak, ctx || u64 anchor || T)
 * and the bookkeeping both ends keep: which key a batch may use, on which link, how often, and
 * what happens when the responder no longer holds one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/hex.h"
#include "common/secret.h"
#include "daemon/batch.h"
#include "daemon/hxd.h"

#define AK "9c799a63d8eedd03f3b592169c084ebfa73359d76045d4b0ab1fba4348ebbdca"
#define MAC_R "5d4bd14d2e398803a01c0b2881b628dd33889fc5e115a0913c4771caf75bde21"
#define MAC_I "e2388c93154b662a640d726e2f20ba98f60d2d1e21ad462df10bd5f33b779531"
#define ANCHOR 0x0102030405060708ull

static void expect_hex(const uint8_t *p, const char *hex)
{
    char got[65];

    assert_int_equal(hx_hex_encode(p, 32, got, sizeof(got)), HX_OK);
    assert_string_equal(got, hex);
}

/* Stream 11..11, two positions, sources QKD then ML-KEM-768: QKD keys a0.., a1.., KEM secrets
 * c0.., c1.. (32 bytes each), T = 40 41 .. 5f. */
static void derive_known_answer(void **state)
{
    struct hxd *d = calloc(1, sizeof(*d));
    struct hxd_batch b;
    struct hx_secret *secrets[4] = {NULL, NULL, NULL, NULL};
    uint8_t qkd[64], kem[32], ak[32], mac[32];

    (void)state;
    assert_non_null(d);
    d->cfg.qkd_key_bytes = 32;
    memset(&b, 0, sizeof(b));
    memset(b.s.ksid.b, 0x11, 16);
    b.count = 2;
    b.s.uri.n_sources = 2;
    b.s.uri.sources[0] = HX_SRC_QKD;
    b.s.uri.sources[1] = HX_SRC_ML_KEM_768;
    memset(qkd, 0xa0, 32);
    memset(qkd + 32, 0xa1, 32);
    b.qkd = qkd;
    for (size_t i = 0; i < 2; i++) {
        memset(kem, 0xc0 + (int)i, sizeof(kem));
        assert_int_equal(hx_secret_from(kem, sizeof(kem), &secrets[i * 2 + 1]), HX_OK);
    }
    b.secrets = secrets;
    for (size_t i = 0; i < 32; i++) {
        b.T[i] = (uint8_t)(0x40 + i);
    }
    assert_int_equal(hxd_auth_derive(d, &b, ak), HX_OK);
    expect_hex(ak, AK);
    assert_int_equal(hxd_auth_mac(ak, HXD_CTX_RESP, ANCHOR, b.T, mac), HX_OK);
    expect_hex(mac, MAC_R);
    assert_int_equal(hxd_auth_mac(ak, HXD_CTX_INIT, ANCHOR, b.T, mac), HX_OK);
    expect_hex(mac, MAC_I);
    /* the anchor, the transcript and the stream are all bound */
    assert_int_equal(hxd_auth_mac(ak, HXD_CTX_INIT, ANCHOR + 1, b.T, mac), HX_OK);
    {
        char got[65];
        assert_int_equal(hx_hex_encode(mac, 32, got, sizeof(got)), HX_OK);
        assert_string_not_equal(got, MAC_I);
    }
    b.s.ksid.b[15] ^= 1;
    assert_int_equal(hxd_auth_derive(d, &b, mac), HX_OK);
    assert_memory_not_equal(mac, ak, 32);
    b.s.ksid.b[15] ^= 1;
    b.T[0] ^= 1;
    assert_int_equal(hxd_auth_derive(d, &b, mac), HX_OK);
    assert_memory_not_equal(mac, ak, 32);
    b.T[0] ^= 1;
    hx_secret_data_mut(secrets[3])[31] ^= 1; /* the last byte of the last position's secret */
    assert_int_equal(hxd_auth_derive(d, &b, mac), HX_OK);
    assert_memory_not_equal(mac, ak, 32);
    hx_secret_data_mut(secrets[3])[31] ^= 1;
    qkd[63] ^= 1; /* ... of its QKD key */
    assert_int_equal(hxd_auth_derive(d, &b, mac), HX_OK);
    assert_memory_not_equal(mac, ak, 32);
    for (size_t i = 0; i < 4; i++) {
        hx_secret_free(secrets[i]);
    }
    free(d);
}

static void free_stream(struct hxd_stream *s)
{
    hx_secure_free(s->auth, sizeof(*s->auth));
    s->auth = NULL;
}

/* The BATCH_AUTH confirmation of key k for anchor. */
static void confirm_of(const uint8_t k[32], uint64_t anchor, uint8_t out[32])
{
    assert_int_equal(hxd_auth_mac(k, HXD_CTX_AUTH, anchor, NULL, out), HX_OK);
}

/* The initiator: no key until the responder names one offered, on the link it was offered on,
 * with the right confirmation; then MACs on that link only, HXD_AUTH_MAX_USES times, after which
 * a batch is signed again. */
static void initiator_offer_adopt_use(void **state)
{
    struct hxd_stream s;
    uint8_t k1[32], k2[32], got[32], c1[32], c2[32];
    uint64_t anchor = 0;

    (void)state;
    memset(&s, 0, sizeof(s));
    memset(k1, 0x31, sizeof(k1));
    memset(k2, 0x32, sizeof(k2));
    confirm_of(k1, 24, c1);
    confirm_of(k2, 6168, c2);
    assert_false(hxd_auth_use(&s, 7, &anchor, got)); /* nothing yet: signed */
    assert_int_equal(hxd_auth_adopt(&s, 24, 7, c1), 0);
    hxd_auth_offer(&s, 24, 7, k1);
    assert_false(hxd_auth_use(&s, 7, &anchor, got));    /* offered, not confirmed */
    assert_int_equal(hxd_auth_adopt(&s, 48, 7, c1), 0); /* not the batch offered */
    assert_int_equal(hxd_auth_adopt(&s, 24, 8, c1), 0); /* named on another link */
    assert_int_equal(hxd_auth_adopt(&s, 24, 7, c1), 2); /* the stream's first key */
    assert_int_equal(hxd_auth_adopt(&s, 24, 7, c1), 0); /* once */
    assert_false(hxd_auth_use(&s, 8, &anchor, got));    /* another link: signed */
    assert_false(hxd_auth_use(&s, 0, &anchor, got));    /* no direct link: signed */
    for (unsigned i = 0; i < HXD_AUTH_MAX_USES; i++) {
        assert_true(hxd_auth_use(&s, 7, &anchor, got));
        assert_int_equal(anchor, 24);
        assert_memory_equal(got, k1, 32);
    }
    assert_false(hxd_auth_use(&s, 7, &anchor, got)); /* used up: the next batch is signed */
    hxd_auth_offer(&s, 6168, 7, k2);
    assert_int_equal(hxd_auth_adopt(&s, 6168, 7, c2), 1); /* a newer key */
    assert_true(hxd_auth_use(&s, 7, &anchor, got));
    assert_int_equal(anchor, 6168);
    assert_memory_equal(got, k2, 32);
    /* the responder no longer holds it (or a MAC failed): forgotten, signed again */
    hxd_auth_forget(&s, 24); /* an older anchor: nothing changes */
    assert_true(hxd_auth_use(&s, 7, &anchor, got));
    hxd_auth_forget(&s, 6168);
    assert_false(hxd_auth_use(&s, 7, &anchor, got));
    free_stream(&s);
}

/* Three signed batches in flight offer three keys before the first BATCH_AUTH comes: each is
 * kept, and whichever the responder names is taken up (a single slot lost all but the last). */
static void initiator_keeps_an_offer_per_batch_in_flight(void **state)
{
    struct hxd_stream s;
    uint8_t k[4][32], c[4][32], got[32];
    uint64_t anchor = 0;

    (void)state;
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < 4; i++) {
        memset(k[i], 0x50 + (int)i, 32);
        confirm_of(k[i], 24 * i, c[i]);
    }
    for (size_t i = 0; i < HXD_PIPELINE; i++) {
        hxd_auth_offer(&s, 24 * i, 7, k[i]);
    }
    assert_int_equal(hxd_auth_adopt(&s, 0, 7, c[0]), 2);
    assert_true(hxd_auth_use(&s, 7, &anchor, got));
    assert_memory_equal(got, k[0], 32);
    assert_int_equal(hxd_auth_adopt(&s, 24, 7, c[1]), 1);
    assert_true(hxd_auth_use(&s, 7, &anchor, got));
    assert_int_equal(anchor, 24);
    assert_memory_equal(got, k[1], 32);
    /* a fourth offer takes the oldest slot (48's stays) */
    hxd_auth_offer(&s, 72, 7, k[3]);
    assert_int_equal(hxd_auth_adopt(&s, 48, 7, c[2]), 1);
    assert_int_equal(hxd_auth_adopt(&s, 72, 7, c[3]), 1);
    assert_true(hxd_auth_use(&s, 7, &anchor, got));
    assert_int_equal(anchor, 72);
    assert_memory_equal(got, k[3], 32);
    free_stream(&s);
}

/* A BATCH_AUTH whose confirmation does not match the key offered: the nodes derived different
 * keys (or the message is not the responder's), and the stream signs every batch from then on. */
static void initiator_refuses_an_unconfirmed_key(void **state)
{
    struct hxd_stream s;
    uint8_t k1[32], k2[32], c[32], got[32];
    uint64_t anchor = 0;

    (void)state;
    memset(&s, 0, sizeof(s));
    memset(k1, 0x61, sizeof(k1));
    memset(k2, 0x62, sizeof(k2));
    hxd_auth_offer(&s, 24, 7, k1);
    confirm_of(k2, 24, c); /* the peer's key differs */
    assert_int_equal(hxd_auth_adopt(&s, 24, 7, c), -1);
    assert_false(hxd_auth_use(&s, 7, &anchor, got));
    confirm_of(k1, 24, c);
    assert_int_equal(hxd_auth_adopt(&s, 24, 7, c), 0); /* the offers went with it */
    hxd_auth_offer(&s, 48, 7, k1);                     /* and none is taken any more */
    confirm_of(k1, 48, c);
    assert_int_equal(hxd_auth_adopt(&s, 48, 7, c), 0);
    assert_false(hxd_auth_use(&s, 7, &anchor, got));
    free_stream(&s);
}

/* The responder: the latest key and the HXD_PIPELINE before it (batches in flight may name
 * them), each on the link it came on; a key whose MAC failed is dropped. */
static void responder_install_find(void **state)
{
    struct hxd_stream s;
    uint8_t k[HXD_PIPELINE + 2][32], got[32];

    (void)state;
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < HXD_PIPELINE + 2; i++) {
        memset(k[i], 0x41 + (int)i, 32);
    }
    assert_false(hxd_auth_find(&s, 0, 3, got));
    hxd_auth_install(&s, 0, 3, k[0]);
    assert_true(hxd_auth_find(&s, 0, 3, got));
    assert_memory_equal(got, k[0], 32);
    assert_false(hxd_auth_find(&s, 0, 4, got)); /* another link */
    assert_false(hxd_auth_find(&s, 0, 0, got)); /* over relays */
    assert_false(hxd_auth_find(&s, 24, 3, got));
    for (size_t i = 1; i <= HXD_PIPELINE; i++) {
        hxd_auth_install(&s, 24 * i, 3, k[i]);
    }
    for (size_t i = 0; i <= HXD_PIPELINE; i++) { /* the latest and the three before it */
        assert_true(hxd_auth_find(&s, 24 * i, 3, got));
        assert_memory_equal(got, k[i], 32);
    }
    hxd_auth_install(&s, 24 * (HXD_PIPELINE + 1), 3, k[HXD_PIPELINE + 1]);
    assert_false(hxd_auth_find(&s, 0, 3, got)); /* the oldest: gone */
    assert_true(hxd_auth_find(&s, 24, 3, got));
    hxd_auth_forget(&s, 24); /* its MAC failed */
    assert_false(hxd_auth_find(&s, 24, 3, got));
    assert_true(hxd_auth_find(&s, 48, 3, got));
    assert_memory_equal(got, k[2], 32);
    free_stream(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(derive_known_answer),
        cmocka_unit_test(initiator_offer_adopt_use),
        cmocka_unit_test(initiator_keeps_an_offer_per_batch_in_flight),
        cmocka_unit_test(initiator_refuses_an_unconfirmed_key),
        cmocka_unit_test(responder_install_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
