/* The peer protocol's frame splitter and message decoders (src/proto/peer.c) on arbitrary
 * bytes. Byte 0 >= 0xf0: the rest is a byte stream split into frames; otherwise byte 0 picks the
 * message (STREAM_OPEN, STREAM_JOIN, BATCH_REQ, BATCH_RESP, BATCH_FIN, BATCH_ACK, BATCH_QUERY),
 * the rest is its payload. What a decoder accepts is consistent: strings end within their
 * arrays, counts are 1..HX_PEER_MAX_BATCH, views lie inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *p, size_t len, const uint8_t *v, size_t vlen)
{
    if (vlen > 0 && (v < p || v + vlen > p + len)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hx_peer_open open;
    struct hx_peer_join join;
    struct hx_peer_batch b;
    const uint8_t *p = data + 1, *sig, *tag;
    size_t len = size > 0 ? size - 1 : 0;
    uint16_t sig_len;
    hx_err e;

    if (size == 0) {
        return 0;
    }
    if (data[0] >= 0xf0) { /* frame splitting over the rest */
        size_t off = 0, plen, used;
        const uint8_t *payload;
        uint8_t type;
        while ((e = hx_peer_frame_next(p + off, len - off, 4096, &type, &payload, &plen, &used)) ==
               HX_OK) {
            if (used != HX_PEER_FRAME_HEADER + plen || used > len - off || plen > 4096) {
                abort();
            }
            inside(p, len, payload, plen);
            off += used;
        }
        if (e != HX_ERR_TRUNCATED && e != HX_ERR_BAD_VALUE) {
            abort();
        }
        return 0;
    }
    switch (data[0] % 7) {
    case 0:
        if (hx_peer_decode_open(p, len, &open) == HX_OK &&
            (strnlen(open.src, sizeof(open.src)) == sizeof(open.src) ||
             strnlen(open.dst, sizeof(open.dst)) == sizeof(open.dst) ||
             strnlen(open.sae, sizeof(open.sae)) == sizeof(open.sae))) {
            abort();
        }
        return 0;
    case 1:
        if (hx_peer_decode_join(p, len, &join) == HX_OK &&
            (strnlen(join.msg, sizeof(join.msg)) == sizeof(join.msg) ||
             strnlen(join.sae, sizeof(join.sae)) == sizeof(join.sae))) {
            abort();
        }
        return 0;
    case 2:
        e = hx_peer_decode_req(p, len, &b);
        break;
    case 3:
        e = hx_peer_decode_resp(p, len, &b);
        break;
    case 4:
        e = hx_peer_decode_fin(p, len, &b);
        break;
    case 5:
        if (hx_peer_decode_ack(p, len, &b) == HX_OK && len != 16 + 8 + 4) {
            abort();
        }
        return 0;
    default:
        if (hx_peer_decode_query(p, len, &b) == HX_OK &&
            (len != 16 + 8 + 4 || b.count == 0 || b.count > HX_PEER_MAX_BATCH)) {
            abort();
        }
        return 0;
    }
    if (e != HX_OK) {
        return 0;
    }
    if (b.count == 0 || b.count > HX_PEER_MAX_BATCH) {
        abort();
    }
    inside(p, len, b.rest, b.rest_len);
    if (data[0] % 7 != 2 && b.status == 0) {
        struct hx_reader r;
        hx_reader_init(&r, b.rest, b.rest_len);
        if (hx_peer_read_signed(&r, &sig, &sig_len, &tag) == HX_OK) {
            inside(p, len, sig, sig_len);
            inside(p, len, tag, 32);
        }
    }
    return 0;
}
