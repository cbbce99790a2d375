/* The peer protocol's codec (src/proto/peer.c) on arbitrary bytes. Byte 0 >= 0xf0: the rest is
 * a byte stream split into frames; otherwise byte 0 % 7 picks the message (STREAM_OPEN,
 * STREAM_JOIN, BATCH_REQ, BATCH_RESP, BATCH_FIN, BATCH_ACK, BATCH_QUERY with STREAM_CLOSE and
 * BATCH_AUTH), the
 * rest is its payload. What a decoder accepts is consistent: strings end within their arrays,
 * counts are 1..HX_PEER_MAX_BATCH, views lie inside the input, and encoding it again gives the
 * same bytes (or, where the decoder tolerates absent fields, the same message). */
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

static struct hx_writer w; /* what a decoded message encodes to */

/* The writer holds exactly p[0..len). */
static void same_bytes(const uint8_t *p, size_t len)
{
    if (w.len != len || (len > 0 && memcmp(w.data, p, len) != 0)) {
        abort();
    }
}

static void frames(const uint8_t *p, size_t len)
{
    size_t off = 0, plen, used;
    const uint8_t *payload;
    uint8_t type;
    hx_err e;

    while ((e = hx_peer_frame_next(p + off, len - off, 4096, &type, &payload, &plen, &used)) ==
           HX_OK) {
        uint8_t hdr[HX_PEER_FRAME_HEADER];
        if (used != HX_PEER_FRAME_HEADER + plen || used > len - off || plen > 4096) {
            abort();
        }
        inside(p, len, payload, plen);
        hx_peer_frame_header_encode(hdr, type, (uint32_t)plen);
        if (memcmp(hdr, p + off, sizeof(hdr)) != 0) {
            abort();
        }
        off += used;
    }
    if (e != HX_ERR_TRUNCATED && e != HX_ERR_BAD_VALUE) {
        abort();
    }
}

static void strings(const uint8_t *p, size_t len, uint8_t which)
{
    static struct hx_peer_open open, again;
    static struct hx_peer_join join, join2;

    if (which == 0 && hx_peer_decode_open(p, len, &open) == HX_OK) {
        if (strnlen(open.src, sizeof(open.src)) == sizeof(open.src) ||
            strnlen(open.dst, sizeof(open.dst)) == sizeof(open.dst) ||
            strnlen(open.sae, sizeof(open.sae)) == sizeof(open.sae) ||
            strnlen(open.qkd_ksid.s, sizeof(open.qkd_ksid.s)) == sizeof(open.qkd_ksid.s) ||
            hx_peer_encode_open(&w, &open) != HX_OK) {
            abort();
        }
        same_bytes(p, len);
        if (hx_peer_decode_open(w.data, w.len, &again) != HX_OK ||
            memcmp(&again, &open, sizeof(open)) != 0) {
            abort();
        }
    }
    if (which == 1 && hx_peer_decode_join(p, len, &join) == HX_OK) {
        if (strnlen(join.msg, sizeof(join.msg)) == sizeof(join.msg) ||
            strnlen(join.sae, sizeof(join.sae)) == sizeof(join.sae) ||
            hx_peer_encode_join(&w, &join) != HX_OK ||
            hx_peer_decode_join(w.data, w.len, &join2) != HX_OK ||
            memcmp(&join, &join2, sizeof(join)) != 0) {
            abort();
        }
    }
}

/* KME recovery and flow control: QKD_REOPEN is a stream id; STREAM_WINDOW re-encodes the same. */
static void recovery(const uint8_t *p, size_t len)
{
    struct hx_peer_qkd_reopen reopen;
    struct hx_peer_window win;

    if (hx_peer_decode_qkd_reopen(p, len, &reopen) == HX_OK && len != 16) {
        abort();
    }
    if (hx_peer_decode_window(p, len, &win) == HX_OK) {
        hx_writer_reset(&w);
        if (len != 16 + 8 || win.limit >= (1ull << 63) ||
            hx_peer_encode_window(&w, &win) != HX_OK) {
            abort();
        }
        same_bytes(p, len);
    }
}

static void batches(const uint8_t *p, size_t len, uint8_t sel)
{
    struct hx_peer_req req;
    struct hx_peer_resp resp;
    struct hx_peer_fin fin;
    struct hx_peer_ack ack;
    struct hx_peer_query query;
    struct hx_peer_auth auth;
    struct hx_peer_close close;
    struct hx_peer_head head;

    switch (sel % 7) {
    case 2:
        if (hx_peer_decode_req(p, len, &req) == HX_OK) {
            inside(p, len, req.kem[0].p, req.kem[0].len);
            inside(p, len, req.qkd_ids,
                   req.qkd_ids != NULL ? (size_t)req.count * HX_PEER_QKD_ID_LEN : 0);
            if (req.count == 0 || req.count > HX_PEER_MAX_BATCH ||
                hx_peer_encode_req(&w, &req) != HX_OK) {
                abort();
            }
            same_bytes(p, len);
        }
        return;
    case 3: /* the ciphertexts' length from the selector: 0..288 bytes */
        if (hx_peer_decode_resp(p, len, (size_t)(sel / 7) * 8, &resp) == HX_OK) {
            if (resp.count == 0 || resp.count > HX_PEER_MAX_BATCH ||
                strnlen(resp.msg, sizeof(resp.msg)) == sizeof(resp.msg)) {
                abort();
            }
            if (resp.status == HX_PEER_RESP_OK) {
                inside(p, len, resp.kem[0].p, resp.kem[0].len);
                inside(p, len, resp.sig.sig, resp.sig.sig_len);
                inside(p, len, resp.sig.tag, HX_PEER_TAG_LEN);
                if (hx_peer_encode_resp(&w, &resp) != HX_OK) {
                    abort();
                }
                same_bytes(p, len);
            }
        }
        return;
    case 4:
        if (hx_peer_decode_fin(p, len, &fin) == HX_OK) {
            if (fin.status == HX_PEER_FIN_COMMIT) {
                inside(p, len, fin.sig.sig, fin.sig.sig_len);
                inside(p, len, fin.sig.tag, HX_PEER_TAG_LEN);
            }
            if (hx_peer_encode_fin(&w, &fin) != HX_OK) {
                abort();
            }
            same_bytes(p, len);
        }
        return;
    case 5:
        if (hx_peer_decode_ack(p, len, &ack) == HX_OK) {
            if (hx_peer_encode_ack(&w, &ack) != HX_OK) {
                abort();
            }
            same_bytes(p, len);
        }
        return;
    default:
        if (hx_peer_decode_query(p, len, &query) == HX_OK) {
            if (len != 16 + 8 + 4 || hx_peer_encode_query(&w, &query) != HX_OK) {
                abort();
            }
            same_bytes(p, len);
        }
        if (hx_peer_decode_close(p, len, &close) == HX_OK && len != 16) {
            abort();
        }
        if (hx_peer_decode_auth(p, len, &auth) == HX_OK) {
            inside(p, len, auth.confirm, HX_PEER_TAG_LEN);
            hx_writer_reset(&w);
            if (len != 16 + 8 + 32 || hx_peer_encode_auth(&w, &auth) != HX_OK) {
                abort();
            }
            same_bytes(p, len);
        }
        recovery(p, len);
        for (uint8_t t = HX_PEER_BATCH_REQ; t <= HX_PEER_BATCH_QUERY; t++) {
            if (hx_peer_decode_head(t, p, len, &head) == HX_OK && t != HX_PEER_BATCH_ACK &&
                (head.count == 0 || head.count > HX_PEER_MAX_BATCH)) {
                abort();
            }
        }
        return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data + 1;
    size_t len = size > 0 ? size - 1 : 0;

    if (size == 0) {
        return 0;
    }
    if (data[0] >= 0xf0) { /* frame splitting over the rest */
        frames(p, len);
        return 0;
    }
    hx_writer_init_dynamic(&w, size + 64); /* never short of room for what was decoded */
    if (data[0] % 7 < 2) {
        strings(p, len, (uint8_t)(data[0] % 7));
    } else {
        batches(p, len, data[0]);
    }
    hx_writer_wipe(&w);
    return 0;
}
