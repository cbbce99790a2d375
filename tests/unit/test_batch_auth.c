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

/* A batch of stream 11..11 with count positions, sources QKD then ML-KEM-768, T = 40 41 .. 5f
 * (the caller gives its QKD keys and secrets). */
static void batch_of(struct hxd_batch *b, uint32_t count)
{
    memset(b, 0, sizeof(*b));
    memset(b->s.ksid.b, 0x11, 16);
    b->count = count;
    b->s.uri.n_sources = 2;
    b->s.uri.sources[0] = HX_SRC_QKD;
    b->s.uri.sources[1] = HX_SRC_ML_KEM_768;
    for (size_t i = 0; i < 32; i++) {
        b->T[i] = (uint8_t)(0x40 + i);
    }
}

/* Two positions: QKD keys a0.., a1.., KEM secrets c0.., c1.. (32 bytes each). */
static void derive_known_answer(void **state)
{
    struct hxd *d = calloc(1, sizeof(*d));
    struct hxd_batch b;
    struct hx_secret *secrets[4] = {NULL, NULL, NULL, NULL};
    uint8_t qkd[64], kem[32], ak[32], mac[32];

    (void)state;
    assert_non_null(d);
    d->cfg.qkd_key_bytes = 32;
    batch_of(&b, 2);
    memset(qkd, 0xa0, 32);
    memset(qkd + 32, 0xa1, 32);
    b.qkd = qkd;
    for (size_t i = 0; i < 2; i++) {
        memset(kem, 0xc0 + (int)i, sizeof(kem));
        assert_int_equal(hx_secret_from(kem, sizeof(kem), &secrets[i * 2 + 1]), HX_OK);
    }
    b.secrets = secrets;
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

/* A batch of 1 024 positions with 64-byte QKD keys: 96 KiB of secrets, more than one secret may
 * hold (HX_SECRET_MAX_LEN); the key is still derived, and is HKDF over all of them (known answer
 * computed apart: QKD key i = 64 x (i mod 256), KEM secret i = 32 x (7i mod 256)). */
#define AK_LARGE "911f537fef86fe793419440435d01bab4c1191c8b6aff2ee68d36caa7b0f18f1"

static void derive_a_batch_larger_than_a_secret(void **state)
{
    struct hxd *d = calloc(1, sizeof(*d));
    struct hxd_batch b;
    struct hx_secret **secrets = calloc(2 * 1024, sizeof(*secrets));
    uint8_t *qkd = malloc(1024 * 64), kem[32], ak[32];

    (void)state;
    assert_non_null(d);
    assert_non_null(secrets);
    assert_non_null(qkd);
    d->cfg.qkd_key_bytes = 64;
    batch_of(&b, 1024);
    for (size_t i = 0; i < 1024; i++) {
        memset(qkd + i * 64, (int)(i & 0xff), 64);
        memset(kem, (int)((i * 7) & 0xff), sizeof(kem));
        assert_int_equal(hx_secret_from(kem, sizeof(kem), &secrets[i * 2 + 1]), HX_OK);
    }
    b.qkd = qkd;
    b.secrets = secrets;
    assert_int_equal(hxd_auth_derive(d, &b, ak), HX_OK);
    expect_hex(ak, AK_LARGE);
    for (size_t i = 0; i < 2 * 1024; i++) {
        hx_secret_free(secrets[i]);
    }
    free(secrets);
    free(qkd);
    free(d);
}

/* A stream's authentication state and keys to give it: each test's fixture. */
struct fx {
    struct hxd_stream s;
    uint8_t k[HXD_PIPELINE + 2][32]; /* distinct keys */
    uint8_t got[32];
    uint64_t anchor;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    for (size_t i = 0; i < HXD_PIPELINE + 2; i++) {
        memset(f->k[i], 0x41 + (int)i, 32);
    }
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    hx_secure_free(f->s.auth, sizeof(*f->s.auth));
    free(f);
    return 0;
}

/* BATCH_AUTH for anchor on link serial, confirmed with key k: what hxd_auth_adopt answers. */
static int adopt(struct fx *f, uint64_t anchor, uint64_t serial, const uint8_t k[32])
{
    uint8_t c[32];

    assert_int_equal(hxd_auth_mac(k, HXD_CTX_AUTH, anchor, NULL, c), HX_OK);
    return hxd_auth_adopt(&f->s, anchor, serial, c);
}

/* The next batch on link 7 is MACed (true, f->anchor and f->got its key) or signed. */
static bool use(struct fx *f)
{
    return hxd_auth_use(&f->s, 7, &f->anchor, f->got);
}

/* The initiator: no key until the responder names one offered, on the link it was offered on,
 * with the right confirmation; then MACs on that link only, HXD_AUTH_MAX_USES times but for one
 * batch signed after HXD_AUTH_RENEW (it offers the next key while the others are MACed), after
 * which every batch is signed. */
static void initiator_offer_adopt_use(void **state)
{
    struct fx *f = *state;

    assert_false(use(f)); /* nothing yet: signed */
    assert_int_equal(adopt(f, 24, 7, f->k[0]), 0);
    hxd_auth_offer(&f->s, 24, 7, f->k[0]);
    assert_false(use(f));                                     /* offered, not confirmed */
    assert_int_equal(adopt(f, 48, 7, f->k[0]), 0);            /* not the batch offered */
    assert_int_equal(adopt(f, 24, 8, f->k[0]), 0);            /* named on another link */
    assert_int_equal(adopt(f, 24, 7, f->k[0]), 2);            /* the stream's first key */
    assert_int_equal(adopt(f, 24, 7, f->k[0]), 0);            /* once */
    assert_false(hxd_auth_use(&f->s, 8, &f->anchor, f->got)); /* another link: signed */
    assert_false(hxd_auth_use(&f->s, 0, &f->anchor, f->got)); /* no direct link: signed */
    for (unsigned i = 0; i < HXD_AUTH_MAX_USES; i++) {
        if (i == HXD_AUTH_RENEW) {
            assert_false(use(f)); /* signed: it offers the next key */
            continue;
        }
        assert_true(use(f));
        assert_int_equal(f->anchor, 24);
        assert_memory_equal(f->got, f->k[0], 32);
    }
    assert_false(use(f)); /* used up: every batch is signed */
    assert_false(use(f));
    hxd_auth_offer(&f->s, 6168, 7, f->k[1]);
    assert_int_equal(adopt(f, 6168, 7, f->k[1]), 1); /* a newer key */
    assert_true(use(f));
    assert_int_equal(f->anchor, 6168);
    assert_memory_equal(f->got, f->k[1], 32);
    /* the responder no longer holds it (or a MAC failed): forgotten, signed again */
    hxd_auth_forget(&f->s, 24); /* an older anchor: nothing changes */
    assert_true(use(f));
    hxd_auth_forget(&f->s, 6168);
    assert_false(use(f));
}

/* Three signed batches in flight offer three keys before the first BATCH_AUTH comes: each is
 * kept, and whichever the responder names is taken up (a single slot lost all but the last).
 * A batch made again under the same positions (its first try offered a key its responder never
 * committed) replaces its offer: the new key is found, not the stale one. */
static void initiator_keeps_an_offer_per_batch_in_flight(void **state)
{
    struct fx *f = *state;

    for (size_t i = 0; i < HXD_PIPELINE; i++) {
        hxd_auth_offer(&f->s, 24 * i, 7, f->k[i]);
    }
    assert_int_equal(adopt(f, 0, 7, f->k[0]), 2);
    assert_true(use(f));
    assert_memory_equal(f->got, f->k[0], 32);
    assert_int_equal(adopt(f, 24, 7, f->k[1]), 1);
    assert_true(use(f));
    assert_int_equal(f->anchor, 24);
    assert_memory_equal(f->got, f->k[1], 32);
    /* a fourth offer takes the oldest slot (48's stays) */
    hxd_auth_offer(&f->s, 72, 7, f->k[3]);
    hxd_auth_offer(&f->s, 72, 7, f->k[4]); /* 72 made again: its offer replaced */
    assert_int_equal(adopt(f, 48, 7, f->k[2]), 1);
    assert_int_equal(adopt(f, 72, 7, f->k[4]), 1);
    assert_true(use(f));
    assert_int_equal(f->anchor, 72);
    assert_memory_equal(f->got, f->k[4], 32);
}

/* A BATCH_AUTH whose confirmation does not match the key offered: the nodes derived different
 * keys (or the message is not the responder's), and the stream signs every batch from then on. */
static void initiator_refuses_an_unconfirmed_key(void **state)
{
    struct fx *f = *state;

    hxd_auth_offer(&f->s, 24, 7, f->k[0]);
    assert_int_equal(adopt(f, 24, 7, f->k[1]), -1); /* the peer's key differs */
    assert_false(use(f));
    assert_int_equal(adopt(f, 24, 7, f->k[0]), 0); /* the offers went with it */
    hxd_auth_offer(&f->s, 48, 7, f->k[0]);         /* and none is taken any more */
    assert_int_equal(adopt(f, 48, 7, f->k[0]), 0);
    assert_false(use(f));
}

/* The responder: the latest key and the HXD_PIPELINE before it (batches in flight may name
 * them), each on the link it came on; a key whose MAC failed is dropped. */
static void responder_install_find(void **state)
{
    struct fx *f = *state;
    uint8_t *got = f->got;

    assert_false(hxd_auth_find(&f->s, 0, 3, got));
    assert_true(hxd_auth_install(&f->s, 0, 3, f->k[0]));
    assert_true(hxd_auth_find(&f->s, 0, 3, got));
    assert_memory_equal(got, f->k[0], 32);
    assert_false(hxd_auth_find(&f->s, 0, 4, got)); /* another link */
    assert_false(hxd_auth_find(&f->s, 0, 0, got)); /* over relays */
    assert_false(hxd_auth_find(&f->s, 24, 3, got));
    for (size_t i = 1; i <= HXD_PIPELINE; i++) {
        assert_true(hxd_auth_install(&f->s, 24 * i, 3, f->k[i]));
    }
    for (size_t i = 0; i <= HXD_PIPELINE; i++) { /* the latest and the three before it */
        assert_true(hxd_auth_find(&f->s, 24 * i, 3, got));
        assert_memory_equal(got, f->k[i], 32);
    }
    assert_true(hxd_auth_install(&f->s, 24 * (HXD_PIPELINE + 1), 3, f->k[HXD_PIPELINE + 1]));
    assert_false(hxd_auth_find(&f->s, 0, 3, got)); /* the oldest: gone */
    assert_true(hxd_auth_find(&f->s, 24, 3, got));
    hxd_auth_forget(&f->s, 24); /* its MAC failed */
    assert_false(hxd_auth_find(&f->s, 24, 3, got));
    assert_true(hxd_auth_find(&f->s, 48, 3, got));
    assert_memory_equal(got, f->k[2], 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(derive_known_answer),
        cmocka_unit_test(derive_a_batch_larger_than_a_secret),
        cmocka_unit_test_setup_teardown(initiator_offer_adopt_use, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(initiator_keeps_an_offer_per_batch_in_flight, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(initiator_refuses_an_unconfirmed_key, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(responder_install_find, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
