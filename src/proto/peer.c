/* Peer protocol decoders (docs/peer-protocol.md). */
#include "proto/peer.h"

#include <stdbool.h>
#include <string.h>

hx_err hx_peer_frame_next(const uint8_t *buf, size_t len, size_t max_payload, uint8_t *type,
                          const uint8_t **payload, size_t *plen, size_t *consumed)
{
    uint32_t n;

    if (len < HX_PEER_FRAME_HEADER) {
        return HX_ERR_TRUNCATED;
    }
    n = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
    if (buf[0] != 'H' || buf[1] != 'X' || buf[2] != 1 || n > max_payload) {
        return HX_ERR_BAD_VALUE;
    }
    if (len - HX_PEER_FRAME_HEADER < n) {
        return HX_ERR_TRUNCATED;
    }
    *type = buf[3];
    *payload = buf + HX_PEER_FRAME_HEADER;
    *plen = n;
    *consumed = HX_PEER_FRAME_HEADER + (size_t)n;
    return HX_OK;
}

hx_err hx_peer_write_lp16(struct hx_writer *w, const char *s)
{
    size_t n = strlen(s);
    hx_err e;

    if (n > UINT16_MAX) {
        return HX_ERR_TOO_LARGE;
    }
    if ((e = hx_write_u16(w, (uint16_t)n)) != HX_OK) {
        return e;
    }
    return hx_write_bytes(w, s, n);
}

hx_err hx_peer_read_lp16(struct hx_reader *r, char *out, size_t cap)
{
    uint16_t n;
    hx_err e;

    if (cap == 0) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = hx_read_u16(r, &n)) != HX_OK) {
        return e;
    }
    if (n >= cap) {
        return HX_ERR_TOO_LARGE;
    }
    if ((e = hx_read_bytes(r, out, n)) != HX_OK) {
        return e;
    }
    if (memchr(out, '\0', n) != NULL) {
        return HX_ERR_BAD_VALUE; /* a NUL would cut the string short unseen */
    }
    out[n] = '\0';
    return HX_OK;
}

hx_err hx_peer_decode_open(const uint8_t *p, size_t len, struct hx_peer_open *out)
{
    struct hx_reader r;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = hx_read_bytes(&r, out->ksid.b, 16)) != HX_OK ||
        (e = hx_peer_read_lp16(&r, out->src, sizeof(out->src))) != HX_OK ||
        (e = hx_peer_read_lp16(&r, out->dst, sizeof(out->dst))) != HX_OK ||
        (e = hx_read_u32(&r, &out->chunk)) != HX_OK ||
        (e = hx_read_u32(&r, &out->timeout_ms)) != HX_OK ||
        (e = hx_read_u32(&r, &out->ttl_s)) != HX_OK ||
        (e = hx_read_bytes(&r, out->qkd_ksid.b, 16)) != HX_OK ||
        (e = hx_peer_read_lp16(&r, out->sae, sizeof(out->sae))) != HX_OK) {
        return e;
    }
    return hx_reader_remaining(&r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

hx_err hx_peer_decode_join(const uint8_t *p, size_t len, struct hx_peer_join *out)
{
    struct hx_reader r;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = hx_read_bytes(&r, out->ksid.b, 16)) != HX_OK ||
        (e = hx_read_u32(&r, &out->status)) != HX_OK) {
        return e;
    }
    /* Message and SAE id: absent in a bare refusal; a malformed one is an error. */
    if (hx_reader_remaining(&r) > 0 &&
        ((e = hx_peer_read_lp16(&r, out->msg, sizeof(out->msg))) != HX_OK ||
         (hx_reader_remaining(&r) > 0 &&
          (e = hx_peer_read_lp16(&r, out->sae, sizeof(out->sae))) != HX_OK))) {
        return e;
    }
    return hx_reader_remaining(&r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

static hx_err head(struct hx_reader *r, const uint8_t *p, size_t len, bool counted,
                   struct hx_peer_batch *out)
{
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(r, p, len);
    if ((e = hx_read_bytes(r, out->ksid.b, 16)) != HX_OK ||
        (e = hx_read_u64(r, &out->first)) != HX_OK) {
        return e;
    }
    if (counted) {
        if ((e = hx_read_u32(r, &out->count)) != HX_OK) {
            return e;
        }
        if (out->count == 0 || out->count > HX_PEER_MAX_BATCH) {
            return HX_ERR_BAD_VALUE;
        }
        if (out->first > UINT64_MAX - out->count) {
            return HX_ERR_BAD_VALUE; /* positions must not wrap */
        }
    }
    return HX_OK;
}

static void rest(struct hx_reader *r, const uint8_t *p, size_t len, struct hx_peer_batch *out)
{
    out->rest_len = hx_reader_remaining(r);
    out->rest = p + (len - out->rest_len);
}

hx_err hx_peer_decode_req(const uint8_t *p, size_t len, struct hx_peer_batch *out)
{
    struct hx_reader r;
    hx_err e;

    if ((e = head(&r, p, len, true, out)) != HX_OK ||
        (e = hx_read_u64(&r, &out->qkd_first)) != HX_OK) {
        return e;
    }
    rest(&r, p, len, out);
    return HX_OK;
}

hx_err hx_peer_decode_resp(const uint8_t *p, size_t len, struct hx_peer_batch *out)
{
    struct hx_reader r;
    hx_err e;

    if ((e = head(&r, p, len, true, out)) != HX_OK ||
        (e = hx_read_u32(&r, &out->status)) != HX_OK) {
        return e;
    }
    rest(&r, p, len, out);
    return HX_OK;
}

hx_err hx_peer_decode_fin(const uint8_t *p, size_t len, struct hx_peer_batch *out)
{
    return hx_peer_decode_resp(p, len, out); /* same head: id, first, count, status */
}

hx_err hx_peer_decode_ack(const uint8_t *p, size_t len, struct hx_peer_batch *out)
{
    struct hx_reader r;
    hx_err e;

    if ((e = head(&r, p, len, false, out)) != HX_OK ||
        (e = hx_read_u32(&r, &out->status)) != HX_OK) {
        return e;
    }
    return hx_reader_remaining(&r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

hx_err hx_peer_decode_query(const uint8_t *p, size_t len, struct hx_peer_batch *out)
{
    struct hx_reader r;
    hx_err e;

    if ((e = head(&r, p, len, true, out)) != HX_OK) {
        return e;
    }
    return hx_reader_remaining(&r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

hx_err hx_peer_read_signed(struct hx_reader *r, const uint8_t **sig, uint16_t *sig_len,
                           const uint8_t **tag)
{
    hx_err e;

    if ((e = hx_read_u16(r, sig_len)) != HX_OK || (e = hx_read_view(r, *sig_len, sig)) != HX_OK ||
        (e = hx_read_view(r, 32, tag)) != HX_OK) {
        return e;
    }
    return hx_reader_remaining(r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}
