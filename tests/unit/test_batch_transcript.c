/*
 * daemon/batch.c: the batch transcript T (docs/peer-protocol.md, docs/relay.md "The path in the
 * transcript"). Known answers: a direct batch's T is the documented layout and nothing more (so
 * direct streams' transcripts are what they were before the relay); a relayed batch's T also
 * binds the path it travelled and its relay count, so that a relay that rewrites the path makes
 * the two ends' transcripts, and with them both signatures, differ. The expected values were
 * computed apart from this code (SHA-256 over the layout written out by hand).
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
#include "daemon/batch.h"
#include "daemon/hxd.h"

#define SRC     \
    "hybrid://" \
    "SPI_1@aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa?hybridization=hkdf&key_sources=ML-KEM-768,QKD"
#define DST     \
    "hybrid://" \
    "SPI_1@dddddddd-dddd-dddd-dddd-dddddddddddd?hybridization=hkdf&key_sources=ML-KEM-768,QKD"
/* SHA-256("hykex/1 batch" || head || SRC || DST || kem) */
#define T_DIRECT "b862ffc70b203c38151c31c64451110735249e59259f9333466238851ed10c53"
/* ... || "hykex/1 path" || 04 || aa..aa bb..bb cc..cc dd..dd || 02 */
#define T_RELAYED "941e054232415531b865d6996c868abd46b5c465e4620e07aad030e68af97d8b"

static uint8_t kem[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
static uint8_t *kem_msg[2];

/* ksid 11..11, positions 5..8, QKD index 9, 004, a key pair per position, xoring, two
 * sources (QKD, then a KEM whose messages are kem), no shared QKD stream id */
static struct hxd_batch *batch(void)
{
    struct hxd_batch *b = calloc(1, sizeof(*b));

    assert_non_null(b);
    memset(b->s.ksid.b, 0x11, 16);
    b->first = 5;
    b->count = 4;
    b->qkd_first = 9;
    b->qkd_mode = 1;
    b->key_pairs = 0;
    b->s.uri.method = HX_COMBINE_XORING;
    b->s.uri.n_sources = 2;
    snprintf(b->s.src, sizeof(b->s.src), "%s", SRC);
    snprintf(b->s.dst, sizeof(b->s.dst), "%s", DST);
    kem_msg[0] = NULL;
    kem_msg[1] = kem;
    b->kem_msg = kem_msg;
    b->kem_len[1] = sizeof(kem);
    return b;
}

static void path_of(struct hxd_batch *b, size_t n, const uint8_t *fill)
{
    memset(&b->path, 0, sizeof(b->path));
    b->path.hops = n - 1;
    for (size_t i = 0; i < n; i++) {
        memset(b->path.node[i].b, fill[i], 16);
    }
}

static void expect(const struct hxd_batch *b, const char *hex)
{
    char got[65];

    assert_int_equal(hx_hex_encode(b->T, 32, got, sizeof(got)), HX_OK);
    assert_string_equal(got, hex);
}

static void direct_batch_unchanged(void **state)
{
    struct hxd_batch *b = batch();
    const uint8_t two[] = {0xaa, 0xdd};

    (void)state;
    hxd_batch_transcript(b);
    expect(b, T_DIRECT);
    path_of(b, 2, two); /* one hop: the peer's own link, nothing relayed */
    hxd_batch_transcript(b);
    expect(b, T_DIRECT);
    free(b);
}

static void relayed_batch_binds_its_path(void **state)
{
    struct hxd_batch *b = batch();
    const uint8_t four[] = {0xaa, 0xbb, 0xcc, 0xdd}, other[] = {0xaa, 0xee, 0xcc, 0xdd},
                  five[] = {0xaa, 0xbb, 0xee, 0xcc, 0xdd};
    uint8_t T[32];

    (void)state;
    path_of(b, 4, four);
    hxd_batch_transcript(b);
    expect(b, T_RELAYED);
    memcpy(T, b->T, 32);
    path_of(b, 4, other); /* a relay that says another node carried it */
    hxd_batch_transcript(b);
    assert_memory_not_equal(T, b->T, 32);
    path_of(b, 5, five); /* a node slipped in */
    hxd_batch_transcript(b);
    assert_memory_not_equal(T, b->T, 32);
    free(b);
}

static void path_bytes_layout(void **state)
{
    struct hxd_batch *b = batch();
    const uint8_t four[] = {0xaa, 0xbb, 0xcc, 0xdd};
    uint8_t out[12 + 1 + 16 * (HX_TOPO_MAX_HOPS + 1) + 1];
    size_t len;

    (void)state;
    path_of(b, 4, four);
    len = hxd_batch_path_bytes(&b->path, out, sizeof(out));
    assert_int_equal(len, 12 + 1 + 4 * 16 + 1);
    assert_memory_equal(out, "hykex/1 path", 12);
    assert_int_equal(out[12], 4);
    assert_int_equal(out[13], 0xaa);
    assert_int_equal(out[13 + 3 * 16], 0xdd);
    assert_int_equal(out[len - 1], 2);                            /* relays */
    assert_int_equal(hxd_batch_path_bytes(&b->path, out, 20), 0); /* no room: nothing */
    b->path.hops = HX_TOPO_MAX_HOPS + 1;
    assert_int_equal(hxd_batch_path_bytes(&b->path, out, sizeof(out)), 0);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(direct_batch_unchanged),
        cmocka_unit_test(relayed_batch_binds_its_path),
        cmocka_unit_test(path_bytes_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
