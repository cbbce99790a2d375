/* proto/peer: every peer message's encoder and decoder (docs/peer-protocol.md): round trips,
 * the wire bytes as the spec lays them out, and rejections (cut at every byte, a byte too
 * many, bad values). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/peer.h"

/* A decoder behind one signature, for the cut/extend checks. */
typedef hx_err (*decode_fn)(const uint8_t *p, size_t len);

static hx_err dec_open(const uint8_t *p, size_t len)
{
    static struct hx_peer_open m;
    return hx_peer_decode_open(p, len, &m);
}
static hx_err dec_close(const uint8_t *p, size_t len)
{
    struct hx_peer_close m;
    return hx_peer_decode_close(p, len, &m);
}
static hx_err dec_req(const uint8_t *p, size_t len)
{
    struct hx_peer_req m;
    hx_err e = hx_peer_decode_req(p, len, &m);
    /* The KEM bytes are the stream's to split: a cut there still decodes, shorter. */
    return e == HX_OK && m.kem[0].len != 64 ? HX_ERR_TRUNCATED : e;
}
static hx_err dec_resp(const uint8_t *p, size_t len)
{
    struct hx_peer_resp m;
    return hx_peer_decode_resp(p, len, 64, &m);
}
static hx_err dec_fin(const uint8_t *p, size_t len)
{
    struct hx_peer_fin m;
    return hx_peer_decode_fin(p, len, &m);
}
static hx_err dec_ack(const uint8_t *p, size_t len)
{
    struct hx_peer_ack m;
    return hx_peer_decode_ack(p, len, &m);
}
static hx_err dec_reopen(const uint8_t *p, size_t len)
{
    struct hx_peer_qkd_reopen m;
    return hx_peer_decode_qkd_reopen(p, len, &m);
}
static hx_err dec_window(const uint8_t *p, size_t len)
{
    struct hx_peer_window m;
    return hx_peer_decode_window(p, len, &m);
}
static hx_err dec_query(const uint8_t *p, size_t len)
{
    struct hx_peer_query m;
    return hx_peer_decode_query(p, len, &m);
}

/* Whole: accepted; any prefix: refused; one byte more: refused. */
static void cuts_and_extra(decode_fn dec, const uint8_t *p, size_t len)
{
    uint8_t *more = malloc(len + 1);

    assert_non_null(more);
    assert_int_equal(dec(p, len), HX_OK);
    for (size_t i = 0; i < len; i++) {
        assert_int_not_equal(dec(p, i), HX_OK);
    }
    memcpy(more, p, len);
    more[len] = 0x00;
    assert_int_not_equal(dec(more, len + 1), HX_OK);
    free(more);
}

static void fill_uuid(struct hx_uuid *u, uint8_t seed)
{
    for (size_t i = 0; i < sizeof(u->b); i++) {
        u->b[i] = (uint8_t)(seed + i);
    }
}

static void frame_header(void **state)
{
    uint8_t h[HX_PEER_FRAME_HEADER], buf[HX_PEER_FRAME_HEADER + 3] = {0}, type;
    const uint8_t want[] = {'H', 'X', 1, 0x22, 0x00, 0x01, 0x02, 0x03};
    const uint8_t *payload;
    size_t plen, used;
    uint32_t len;

    (void)state;
    hx_peer_frame_header_encode(h, HX_PEER_BATCH_FIN, 0x010203);
    assert_memory_equal(h, want, sizeof(want));
    assert_int_equal(hx_peer_frame_header_decode(h, 1u << 20, &type, &len), HX_OK);
    assert_int_equal(type, HX_PEER_BATCH_FIN);
    assert_int_equal(len, 0x010203);
    /* too long, bad magic, bad version */
    assert_int_equal(hx_peer_frame_header_decode(h, 0x010202, &type, &len), HX_ERR_BAD_VALUE);
    h[0] = 'h';
    assert_int_equal(hx_peer_frame_header_decode(h, 1u << 20, &type, &len), HX_ERR_BAD_VALUE);
    hx_peer_frame_header_encode(h, 1, 0);
    h[2] = 2;
    assert_int_equal(hx_peer_frame_header_decode(h, 1u << 20, &type, &len), HX_ERR_BAD_VALUE);
    /* a whole frame, and every cut of it */
    hx_peer_frame_header_encode(buf, HX_PEER_PING, 3);
    assert_int_equal(hx_peer_frame_next(buf, sizeof(buf), 16, &type, &payload, &plen, &used),
                     HX_OK);
    assert_int_equal(plen, 3);
    assert_int_equal(used, sizeof(buf));
    assert_ptr_equal(payload, buf + HX_PEER_FRAME_HEADER);
    for (size_t i = 0; i < sizeof(buf); i++) {
        assert_int_equal(hx_peer_frame_next(buf, i, 16, &type, &payload, &plen, &used),
                         HX_ERR_TRUNCATED);
    }
}

/* Only a BATCH_REQ (the public keys) may exceed 1 MiB, up to 4 MiB; the caller's max still
 * applies below those. */
static void frame_limits_by_type(void **state)
{
    uint8_t h[HX_PEER_FRAME_HEADER], type;
    uint32_t len;

    (void)state;
    assert_int_equal(hx_peer_frame_max(HX_PEER_BATCH_REQ), 4u << 20);
    assert_int_equal(hx_peer_frame_max(HX_PEER_BATCH_RESP), 1u << 20);
    assert_int_equal(hx_peer_frame_max(HX_PEER_PING), 1u << 20);
    hx_peer_frame_header_encode(h, HX_PEER_BATCH_REQ, 1357824 + 4096); /* McEliece-8192128 */
    assert_int_equal(hx_peer_frame_header_decode(h, HX_PEER_MAX_KEM_FRAME, &type, &len), HX_OK);
    assert_int_equal(hx_peer_frame_header_decode(h, 1u << 20, &type, &len), HX_ERR_BAD_VALUE);
    hx_peer_frame_header_encode(h, HX_PEER_BATCH_REQ, (4u << 20) + 1);
    assert_int_equal(hx_peer_frame_header_decode(h, UINT32_MAX, &type, &len), HX_ERR_BAD_VALUE);
    hx_peer_frame_header_encode(h, HX_PEER_BATCH_RESP, (1u << 20) + 1);
    assert_int_equal(hx_peer_frame_header_decode(h, HX_PEER_MAX_KEM_FRAME, &type, &len),
                     HX_ERR_BAD_VALUE);
    hx_peer_frame_header_encode(h, HX_PEER_PING, 2u << 20);
    assert_int_equal(hx_peer_frame_header_decode(h, HX_PEER_MAX_KEM_FRAME, &type, &len),
                     HX_ERR_BAD_VALUE);
}

static void stream_open(void **state)
{
    static struct hx_peer_open m, out;
    struct hx_writer w;

    (void)state;
    memset(&m, 0, sizeof(m));
    fill_uuid(&m.ksid, 1);
    snprintf(m.src, sizeof(m.src), "%s", "hykex://a");
    snprintf(m.dst, sizeof(m.dst), "%s", "hykex://bb");
    m.chunk = 32;
    m.timeout_ms = 0x01020304;
    m.ttl_s = 7;
    {
        struct hx_uuid q;
        fill_uuid(&q, 100);
        hx_qkd_ksid_from_uuid(&m.qkd_ksid, &q); /* a UUID travels in its 16 bytes */
    }
    snprintf(m.sae, sizeof(m.sae), "%s", "sae");
    hx_writer_init_dynamic(&w, 1 << 16);
    assert_int_equal(hx_peer_encode_open(&w, &m), HX_OK);
    /* id, lp16 src, lp16 dst, u32 x3, QKD id, lp16 sae */
    assert_int_equal(w.len, 16 + 2 + 9 + 2 + 10 + 12 + 16 + 2 + 3);
    assert_memory_equal(w.data + 16, "\x00\x09hykex://a\x00\x0ahykex://bb", 23);
    assert_memory_equal(w.data + 39 + 4, "\x01\x02\x03\x04", 4);
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_OK);
    assert_memory_equal(&out, &m, sizeof(m));
    cuts_and_extra(dec_open, w.data, w.len);
    /* a NUL inside a string, a string longer than the cap */
    w.data[18] = 0;
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_ERR_BAD_VALUE);
    hx_writer_reset(&w);
    memset(m.src, 'u', HX_PEER_MAX_URI + 1);
    m.src[HX_PEER_MAX_URI] = '\0';
    assert_int_equal(hx_peer_encode_open(&w, &m), HX_OK);
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_OK); /* 1024: the cap */
    hx_writer_reset(&w);
    assert_int_equal(hx_write_bytes(&w, m.ksid.b, 16), HX_OK);
    assert_int_equal(hx_write_u16(&w, HX_PEER_MAX_URI + 1), HX_OK);
    assert_int_equal(hx_write_zeros(&w, HX_PEER_MAX_URI + 1), HX_OK);
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_ERR_TOO_LARGE);
    hx_writer_wipe(&w);
}

/* STREAM_OPEN with an opaque QKD stream id (common/qkdid.h): zeros in the 16 bytes and an
 * lp16 text after the SAE id; every other combination refused. */
static void stream_open_opaque_qkd_id(void **state)
{
    static struct hx_peer_open m, out;
    struct hx_writer w;
    char why[120];
    size_t base;

    (void)state;
    memset(&m, 0, sizeof(m));
    fill_uuid(&m.ksid, 1);
    snprintf(m.src, sizeof(m.src), "%s", "hykex://a");
    snprintf(m.dst, sizeof(m.dst), "%s", "hykex://b");
    snprintf(m.sae, sizeof(m.sae), "%s", "sae");
    hx_writer_init_dynamic(&w, 1 << 16);
    assert_int_equal(hx_peer_encode_open(&w, &m), HX_OK); /* none: no text after the SAE id */
    base = w.len;
    assert_int_equal(hx_qkd_ksid_set(&m.qkd_ksid, "ks-0123abc", 10, why, sizeof(why)), HX_OK);
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_open(&w, &m), HX_OK);
    assert_int_equal(w.len, base + 2 + 10);
    assert_memory_equal(w.data + base, "\x00\x0aks-0123abc", 12);
    for (size_t i = 0; i < 16; i++) {
        assert_int_equal(w.data[base - 16 - 2 - 3 + i], 0); /* the 16 bytes before lp16 "sae" */
    }
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_OK);
    assert_memory_equal(&out, &m, sizeof(m));
    /* every cut refused but the one before the text, which is a STREAM_OPEN without a QKD id
     * (frames are length-delimited: a message is never cut there unseen) */
    for (size_t i = 0; i < w.len; i++) {
        assert_int_equal(hx_peer_decode_open(w.data, i, &out) == HX_OK, i == base);
    }
    assert_int_equal(hx_write_u8(&w, 0), HX_OK);
    assert_int_not_equal(hx_peer_decode_open(w.data, w.len, &out), HX_OK);
    w.len--;
    /* non-zero 16 bytes with a text: two ids, refused */
    w.data[base - 21] = 1;
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_ERR_BAD_VALUE);
    w.data[base - 21] = 0;
    /* a space in the text; an empty text */
    w.data[base + 5] = ' ';
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_ERR_BAD_VALUE);
    w.len = base;
    assert_int_equal(hx_write_u16(&w, 0), HX_OK);
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_ERR_BAD_VALUE);
    /* a UUID's text belongs in the 16 bytes, not after */
    w.len = base;
    assert_int_equal(hx_peer_write_lp16(&w, "00000000-0000-4000-8000-000000000001"), HX_OK);
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_ERR_BAD_VALUE);
    /* longer than HX_QKD_KSID_MAX */
    w.len = base;
    assert_int_equal(hx_write_u16(&w, HX_QKD_KSID_MAX + 1), HX_OK);
    assert_int_equal(hx_write_zeros(&w, HX_QKD_KSID_MAX + 1), HX_OK);
    memset(w.data + base + 2, 'x', HX_QKD_KSID_MAX + 1);
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_ERR_TOO_LARGE);
    /* an upper-case UUID is opaque text too: kept as given, both ways */
    assert_int_equal(
        hx_qkd_ksid_set(&m.qkd_ksid, "00000000-0000-4000-8000-0000000000AB", 36, why, sizeof(why)),
        HX_OK);
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_open(&w, &m), HX_OK);
    assert_int_equal(hx_peer_decode_open(w.data, w.len, &out), HX_OK);
    assert_string_equal(out.qkd_ksid.s, m.qkd_ksid.s);
    hx_writer_wipe(&w);
}

static void stream_join_and_close(void **state)
{
    struct hx_peer_join m, out = {0};
    struct hx_peer_close c = {{{0}}}, cout;
    uint8_t buf[1024];
    struct hx_writer w;

    (void)state;
    memset(&m, 0, sizeof(m));
    fill_uuid(&m.ksid, 9);
    m.status = 6;
    snprintf(m.msg, sizeof(m.msg), "%s", "no");
    snprintf(m.sae, sizeof(m.sae), "%s", "SAE_B");
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_join(&w, &m), HX_OK);
    assert_int_equal(w.len, 16 + 4 + 2 + 2 + 2 + 5);
    assert_memory_equal(buf + 16, "\x00\x00\x00\x06\x00\x02no\x00\x05SAE_B", 15);
    assert_int_equal(hx_peer_decode_join(buf, w.len, &out), HX_OK);
    assert_memory_equal(&out, &m, sizeof(m));
    /* A bare refusal (no message, no SAE id) is a valid JOIN; anything else cut is not. */
    assert_int_equal(hx_peer_decode_join(buf, 20, &out), HX_OK);
    assert_int_equal(out.status, 6);
    assert_string_equal(out.msg, "");
    for (size_t i = 0; i < w.len; i++) {
        if (i != 20 && i != 24) { /* after the status; after the message */
            assert_int_not_equal(hx_peer_decode_join(buf, i, &out), HX_OK);
        }
    }
    buf[w.len] = 0;
    assert_int_not_equal(hx_peer_decode_join(buf, w.len + 1, &out), HX_OK);
    /* a message that does not fit */
    hx_writer_reset(&w);
    assert_int_equal(hx_write_bytes(&w, m.ksid.b, 16), HX_OK);
    assert_int_equal(hx_write_u32(&w, 1), HX_OK);
    assert_int_equal(hx_write_u16(&w, HX_PEER_MAX_MSG + 1), HX_OK);
    assert_int_equal(hx_write_zeros(&w, HX_PEER_MAX_MSG + 1), HX_OK);
    assert_int_equal(hx_peer_decode_join(buf, w.len, &out), HX_ERR_TOO_LARGE);

    fill_uuid(&c.ksid, 77);
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_close(&w, &c), HX_OK);
    assert_int_equal(w.len, 16);
    assert_int_equal(hx_peer_decode_close(buf, w.len, &cout), HX_OK);
    assert_memory_equal(&cout, &c, sizeof(c));
    cuts_and_extra(dec_close, buf, w.len);
}

/* KME recovery and flow control: QKD_REOPEN (the stream id) and STREAM_WINDOW (id, u64 limit
 * below 2^63), the bytes as docs/peer-protocol.md lays them out. */
static void recovery_and_window(void **state)
{
    struct hx_peer_qkd_reopen ro = {{{0}}}, rout;
    struct hx_peer_window win, wout;
    uint8_t buf[64];
    struct hx_writer w;

    (void)state;
    memset(&win, 0, sizeof(win));
    fill_uuid(&ro.ksid, 5);
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_qkd_reopen(&w, &ro), HX_OK);
    assert_int_equal(w.len, 16);
    assert_memory_equal(buf, ro.ksid.b, 16);
    assert_int_equal(hx_peer_decode_qkd_reopen(buf, w.len, &rout), HX_OK);
    assert_memory_equal(&rout, &ro, sizeof(ro));
    cuts_and_extra(dec_reopen, buf, w.len);

    fill_uuid(&win.ksid, 6);
    win.limit = 0x0102030405060708ull;
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_window(&w, &win), HX_OK);
    assert_int_equal(w.len, 24);
    assert_memory_equal(buf + 16, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(hx_peer_decode_window(buf, w.len, &wout), HX_OK);
    assert_memory_equal(&wout, &win, sizeof(win));
    cuts_and_extra(dec_window, buf, w.len);
    /* a limit of 2^63 or more is no position: refused both ways */
    buf[16] = 0x80;
    assert_int_equal(hx_peer_decode_window(buf, 24, &wout), HX_ERR_BAD_VALUE);
    win.limit = 1ull << 63;
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_window(&w, &win), HX_ERR_BAD_VALUE);
}

static const uint8_t head_bytes[] = {
    1, 2, 3, 4,  5, 6, 7,    8,    9, 10, 11, 12, 13, 14, 15, 16, /* id */
    0, 0, 0, 0,  0, 0, 0x01, 0x00,                                /* first 256 */
    0, 0, 0, 64,                                                  /* count */
};

static void batch_req(void **state)
{
    struct hx_peer_req m, out;
    uint8_t ids[2 * 16], kem_a[40], kem_b[24], buf[512];
    struct hx_writer w;

    (void)state;
    memset(&m, 0, sizeof(m));
    memcpy(m.ksid.b, head_bytes, 16);
    m.first = 256;
    m.count = 2;
    m.qkd_first = 0x1122334455667788ull;
    m.qkd_mode = HX_PEER_QKD_014;
    m.key_pairs = HX_PEER_KEY_PAIRS_PER_BATCH;
    memset(ids, 0xab, sizeof(ids));
    memset(kem_a, 0xa0, sizeof(kem_a));
    memset(kem_b, 0xb0, sizeof(kem_b));
    m.qkd_ids = ids;
    m.kem[0] = (struct hx_peer_part){kem_a, sizeof(kem_a)};
    m.kem[1] = (struct hx_peer_part){kem_b, sizeof(kem_b)};
    m.n_kem = 2;
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_req(&w, &m), HX_OK);
    assert_int_equal(w.len, 28 + 8 + 1 + 1 + 32 + 64);
    assert_memory_equal(buf + 28, "\x11\x22\x33\x44\x55\x66\x77\x88\x02\x01", 10);
    assert_int_equal(hx_peer_decode_req(buf, w.len, &out), HX_OK);
    assert_int_equal(out.first, 256);
    assert_int_equal(out.count, 2);
    assert_int_equal(out.qkd_first, m.qkd_first);
    assert_int_equal(out.qkd_mode, HX_PEER_QKD_014);
    assert_int_equal(out.key_pairs, HX_PEER_KEY_PAIRS_PER_BATCH);
    assert_ptr_equal(out.qkd_ids, buf + 38);
    assert_int_equal(out.n_kem, 1); /* the split is the stream's */
    assert_int_equal(out.kem[0].len, 64);
    assert_memory_equal(out.kem[0].p, kem_a, sizeof(kem_a));
    cuts_and_extra(dec_req, buf, w.len);
    /* bad values: QKD mode 3, a key pairs byte with a bit other than the two it has, count 0
     * and 1025, positions that wrap */
    buf[36] = 3;
    assert_int_equal(hx_peer_decode_req(buf, w.len, &out), HX_ERR_BAD_VALUE);
    buf[36] = 2;
    for (unsigned bit = 2; bit < 8; bit++) {
        buf[37] = (uint8_t)(1u << bit | HX_PEER_REQ_MAC);
        assert_int_equal(hx_peer_decode_req(buf, w.len, &out), HX_ERR_BAD_VALUE);
    }
    buf[37] = 1;
    memcpy(buf + 24, "\x00\x00\x00\x00", 4);
    assert_int_equal(hx_peer_decode_req(buf, w.len, &out), HX_ERR_BAD_VALUE);
    memcpy(buf + 24, "\x00\x00\x04\x01", 4);
    assert_int_equal(hx_peer_decode_req(buf, w.len, &out), HX_ERR_BAD_VALUE);
    memcpy(buf + 24, "\x00\x00\x00\x02", 4);
    memset(buf + 16, 0xff, 8);
    assert_int_equal(hx_peer_decode_req(buf, w.len, &out), HX_ERR_BAD_VALUE);
    /* the encoder refuses what the decoder would */
    m.count = 0;
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_req(&w, &m), HX_ERR_INVALID_ARG);
    m.count = 2;
    m.qkd_ids = NULL;
    assert_int_equal(hx_peer_encode_req(&w, &m), HX_ERR_INVALID_ARG);
    /* without QKD ids (ETSI 004): mode 1, the KEM bytes follow at once */
    m.qkd_mode = HX_PEER_QKD_004;
    assert_int_equal(hx_peer_encode_req(&w, &m), HX_OK);
    assert_int_equal(hx_peer_decode_req(buf, w.len, &out), HX_OK);
    assert_null(out.qkd_ids);
    assert_int_equal(out.kem[0].len, 64);
    assert_false(out.mac);
    /* authenticated by MACs: bit 1 of the key pairs byte, then the u64 anchor */
    m.mac = true;
    m.anchor = 0x0102030405060708ull;
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_req(&w, &m), HX_OK);
    assert_int_equal(w.len, 28 + 8 + 1 + 1 + 8 + 64);
    assert_memory_equal(buf + 36, "\x01\x03\x01\x02\x03\x04\x05\x06\x07\x08", 10);
    assert_int_equal(hx_peer_decode_req(buf, w.len, &out), HX_OK);
    assert_true(out.mac);
    assert_int_equal(out.anchor, m.anchor);
    assert_int_equal(out.key_pairs, HX_PEER_KEY_PAIRS_PER_BATCH);
    assert_ptr_equal(out.kem[0].p, buf + 46);
    assert_int_equal(out.kem[0].len, 64);
    cuts_and_extra(dec_req, buf, w.len);
    /* with ETSI 014 key ids: they follow the anchor */
    m.qkd_mode = HX_PEER_QKD_014;
    m.qkd_ids = ids;
    m.key_pairs = HX_PEER_KEY_PAIRS_PER_POSITION;
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_req(&w, &m), HX_OK);
    assert_int_equal(hx_peer_decode_req(buf, w.len, &out), HX_OK);
    assert_true(out.mac);
    assert_int_equal(out.key_pairs, HX_PEER_KEY_PAIRS_PER_POSITION);
    assert_int_equal(out.anchor, m.anchor);
    assert_ptr_equal(out.qkd_ids, buf + 46);
    assert_int_equal(out.kem[0].len, 64);
    /* a request cut inside its anchor */
    assert_int_equal(hx_peer_decode_req(buf, 40, &out), HX_ERR_TRUNCATED);
}

static hx_err dec_auth(const uint8_t *p, size_t len)
{
    struct hx_peer_auth out;
    return hx_peer_decode_auth(p, len, &out);
}

static void batch_auth(void **state)
{
    uint8_t confirm[32], buf[96];
    struct hx_peer_auth m = {.anchor = 0xfedcba9876543210ull, .confirm = confirm}, out;
    struct hx_writer w;

    (void)state;
    memcpy(m.ksid.b, head_bytes, 16);
    memset(confirm, 0xc5, sizeof(confirm));
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_auth(&w, &m), HX_OK);
    assert_int_equal(w.len, 16 + 8 + 32);
    assert_memory_equal(buf, head_bytes, 16);
    assert_memory_equal(buf + 16, "\xfe\xdc\xba\x98\x76\x54\x32\x10", 8);
    assert_memory_equal(buf + 24, confirm, 32);
    assert_int_equal(hx_peer_decode_auth(buf, w.len, &out), HX_OK);
    assert_memory_equal(out.ksid.b, m.ksid.b, 16);
    assert_int_equal(out.anchor, m.anchor);
    assert_ptr_equal(out.confirm, buf + 24);
    cuts_and_extra(dec_auth, buf, w.len);
}

static void batch_resp(void **state)
{
    struct hx_peer_resp m, out;
    uint8_t cts[64], sig[5] = {1, 2, 3, 4, 5}, tag[32], buf[512];
    struct hx_writer w;

    (void)state;
    memset(&m, 0, sizeof(m));
    memcpy(m.ksid.b, head_bytes, 16);
    m.first = 256;
    m.count = 64;
    memset(cts, 0xc7, sizeof(cts));
    memset(tag, 0x7a, sizeof(tag));
    m.kem[0] = (struct hx_peer_part){cts, 40};
    m.kem[1] = (struct hx_peer_part){cts + 40, 24};
    m.n_kem = 2;
    m.sig = (struct hx_peer_signed){sig, sizeof(sig), tag};
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_resp(&w, &m), HX_OK);
    assert_int_equal(w.len, 32 + 64 + 2 + 5 + 32);
    assert_memory_equal(buf, head_bytes, sizeof(head_bytes));
    assert_memory_equal(buf + 28, "\x00\x00\x00\x00", 4);
    assert_memory_equal(buf + 96, "\x00\x05\x01\x02\x03\x04\x05", 7);
    assert_int_equal(hx_peer_decode_resp(buf, w.len, 64, &out), HX_OK);
    assert_int_equal(out.status, HX_PEER_RESP_OK);
    assert_ptr_equal(out.kem[0].p, buf + 32);
    assert_int_equal(out.sig.sig_len, 5);
    assert_ptr_equal(out.sig.sig, buf + 98);
    assert_ptr_equal(out.sig.tag, buf + 103);
    cuts_and_extra(dec_resp, buf, w.len);
    /* expecting other ciphertext lengths: refused */
    assert_int_not_equal(hx_peer_decode_resp(buf, w.len, 63, &out), HX_OK);
    assert_int_not_equal(hx_peer_decode_resp(buf, w.len, 65, &out), HX_OK);
    /* a refusal: status and message */
    m.status = HX_PEER_RESP_POSITIONS_LOST;
    snprintf(m.msg, sizeof(m.msg), "%s", "lost");
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_resp(&w, &m), HX_OK);
    assert_int_equal(w.len, 32 + 2 + 4);
    assert_memory_equal(buf + 28, "\x00\x00\x03\xe8\x00\x04lost", 10);
    assert_int_equal(hx_peer_decode_resp(buf, w.len, 64, &out), HX_OK);
    assert_int_equal(out.status, 1000);
    assert_string_equal(out.msg, "lost");
    /* its message is only shown: a bad one leaves it empty, the refusal still counts */
    assert_int_equal(hx_peer_decode_resp(buf, 33, 64, &out), HX_OK);
    assert_string_equal(out.msg, "");
    assert_int_not_equal(hx_peer_decode_resp(buf, 31, 64, &out), HX_OK);
}

static void batch_fin_ack_query(void **state)
{
    struct hx_peer_fin m, out;
    struct hx_peer_ack a, aout;
    struct hx_peer_query q, qout;
    uint8_t sig[3] = {9, 9, 9}, tag[32], buf[256];
    struct hx_writer w;

    (void)state;
    /* compared with memcmp below: the padding must be equal too */
    memset(&a, 0, sizeof(a));
    memset(&aout, 0, sizeof(aout));
    memset(&q, 0, sizeof(q));
    memset(&qout, 0, sizeof(qout));
    memset(&m, 0, sizeof(m));
    memcpy(m.ksid.b, head_bytes, 16);
    m.first = 256;
    m.count = 64;
    m.status = HX_PEER_FIN_COMMIT;
    memset(tag, 0x42, sizeof(tag));
    m.sig = (struct hx_peer_signed){sig, sizeof(sig), tag};
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_fin(&w, &m), HX_OK);
    assert_int_equal(w.len, 32 + 2 + 3 + 32);
    assert_memory_equal(buf, head_bytes, sizeof(head_bytes));
    assert_int_equal(hx_peer_decode_fin(buf, w.len, &out), HX_OK);
    assert_int_equal(out.sig.sig_len, 3);
    assert_memory_equal(out.sig.tag, tag, 32);
    cuts_and_extra(dec_fin, buf, w.len);
    /* abort: the head and status 1, nothing after */
    m.status = HX_PEER_FIN_ABORT;
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_fin(&w, &m), HX_OK);
    assert_int_equal(w.len, 32);
    assert_memory_equal(buf + 28, "\x00\x00\x00\x01", 4);
    cuts_and_extra(dec_fin, buf, w.len);
    /* the head alone, for routing: every BATCH_* type */
    {
        struct hx_peer_head h;
        assert_int_equal(hx_peer_decode_head(HX_PEER_BATCH_FIN, buf, w.len, &h), HX_OK);
        assert_int_equal(h.status, 1);
        assert_int_equal(h.count, 64);
        assert_int_equal(hx_peer_decode_head(HX_PEER_STREAM_OPEN, buf, w.len, &h),
                         HX_ERR_INVALID_ARG);
        assert_int_not_equal(hx_peer_decode_head(HX_PEER_BATCH_RESP, buf, 31, &h), HX_OK);
    }

    fill_uuid(&a.ksid, 3);
    a.first = 0x0102030405060708ull;
    a.status = HX_PEER_ACK_NOT_COMMITTED;
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_ack(&w, &a), HX_OK);
    assert_int_equal(w.len, 28);
    assert_memory_equal(buf + 16, "\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00\x00\x01", 12);
    assert_int_equal(hx_peer_decode_ack(buf, w.len, &aout), HX_OK);
    assert_memory_equal(&aout, &a, sizeof(a));
    cuts_and_extra(dec_ack, buf, w.len);

    fill_uuid(&q.ksid, 4);
    q.first = 5;
    q.count = HX_PEER_MAX_BATCH;
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_query(&w, &q), HX_OK);
    assert_int_equal(w.len, 28);
    assert_int_equal(hx_peer_decode_query(buf, w.len, &qout), HX_OK);
    assert_memory_equal(&qout, &q, sizeof(q));
    cuts_and_extra(dec_query, buf, w.len);
    q.count = HX_PEER_MAX_BATCH + 1;
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_query(&w, &q), HX_ERR_INVALID_ARG);
    memcpy(buf + 24, "\x00\x00\x04\x01", 4);
    assert_int_equal(hx_peer_decode_query(buf, 28, &qout), HX_ERR_BAD_VALUE);
}

/* ---- ETSI 014: SAE_LIST ---- */

static hx_err dec_sae_list(const uint8_t *p, size_t len)
{
    static struct hx_peer_sae_list m;
    return hx_peer_decode_sae_list(p, len, &m);
}

static void sae_list(void **state)
{
    static struct hx_peer_sae_list m, out;
    uint8_t buf[16 + 2 + HX_PEER_MAX_SAES * (1 + HX_PEER_MAX_SAE_ID) + 8], bad_buf[128];
    struct hx_writer w;

    (void)state;
    memset(&m, 0, sizeof(m));
    fill_uuid(&m.boot, 0x11);
    m.n = 2;
    snprintf(m.ids[0], sizeof(m.ids[0]), "SAE_B");
    snprintf(m.ids[1], sizeof(m.ids[1]), "enc-2");
    hx_writer_init_fixed(&w, buf, sizeof(buf));
    assert_int_equal(hx_peer_encode_sae_list(&w, &m), HX_OK);
    assert_int_equal(w.len, 16 + 2 + 1 + 5 + 1 + 5);
    assert_memory_equal(buf, m.boot.b, 16);
    assert_memory_equal(buf + 16,
                        "\x00\x02\x05SAE_B\x05"
                        "enc-2",
                        14);
    assert_int_equal(hx_peer_decode_sae_list(buf, w.len, &out), HX_OK);
    assert_memory_equal(&out, &m, sizeof(m));
    cuts_and_extra(dec_sae_list, buf, w.len);
    /* none: a node with no 014 SAEs */
    memcpy(bad_buf, m.boot.b, 16);
    memcpy(bad_buf + 16, "\x00\x00", 2);
    assert_int_equal(hx_peer_decode_sae_list(bad_buf, 18, &out), HX_OK);
    assert_int_equal(out.n, 0);
    /* refused: an id twice, an empty id, one too long, characters a URL path cannot carry,
     * more than HX_PEER_MAX_SAES */
    static const struct {
        const char *p;
        size_t len;
    } bad[] = {
        {"\x00\x02\x01x\x01x", 6},
        {"\x00\x01\x00", 3},
        {"\x00\x01\x41"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         68},
        {"\x00\x01\x03"
         "a/b",
         6},
        {"\x00\x01\x03"
         "a b",
         6},
        {"\x01\x01", 2},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(bad_buf + 16, bad[i].p, bad[i].len);
        assert_int_not_equal(hx_peer_decode_sae_list(bad_buf, 16 + bad[i].len, &out), HX_OK);
        assert_int_equal(out.n, 0);
    }
    /* the encoder refuses what the decoder would */
    snprintf(m.ids[1], sizeof(m.ids[1]), "a b");
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_sae_list(&w, &m), HX_ERR_INVALID_ARG);
    /* the most: HX_PEER_MAX_SAES ids of 64 bytes */
    memset(&m, 0, sizeof(m));
    m.n = HX_PEER_MAX_SAES;
    for (size_t i = 0; i < HX_PEER_MAX_SAES; i++) {
        memset(m.ids[i], 'a', HX_PEER_MAX_SAE_ID);
        snprintf(m.ids[i], 5, "%04zx", i);
        m.ids[i][4] = 'a';
    }
    hx_writer_reset(&w);
    assert_int_equal(hx_peer_encode_sae_list(&w, &m), HX_OK);
    assert_int_equal(hx_peer_decode_sae_list(buf, w.len, &out), HX_OK);
    assert_int_equal(out.n, HX_PEER_MAX_SAES);
}

/* ---- end of ETSI 014 ---- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_header),
        cmocka_unit_test(frame_limits_by_type),
        cmocka_unit_test(stream_open),
        cmocka_unit_test(stream_join_and_close),
        cmocka_unit_test(recovery_and_window),
        cmocka_unit_test(stream_open_opaque_qkd_id),
        cmocka_unit_test(batch_req),
        cmocka_unit_test(batch_auth),
        cmocka_unit_test(batch_resp),
        cmocka_unit_test(batch_fin_ack_query),
        cmocka_unit_test(sae_list), /* ETSI 014 */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
