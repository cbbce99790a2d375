/* The peer protocol's wire format (docs/peer-protocol.md): every message's encoder and decoder. */
#include "proto/peer.h"

#include <string.h>

#include "crypto/kem.h"
#include "proto/etsi014.h" /* SAE ids (the SAE_LIST message) */
#include "proto/uri.h"     /* a batch's sources (hx_peer_batch_cap) */

void hx_peer_frame_header_encode(uint8_t out[HX_PEER_FRAME_HEADER], uint8_t type, uint32_t len)
{
    out[0] = 'H';
    out[1] = 'X';
    out[2] = HX_PEER_VERSION;
    out[3] = type;
    out[4] = (uint8_t)(len >> 24);
    out[5] = (uint8_t)(len >> 16);
    out[6] = (uint8_t)(len >> 8);
    out[7] = (uint8_t)len;
}

size_t hx_peer_frame_max(uint8_t type)
{
    /* 0x51 RELAY_FWD (proto/peer_topo.h) may carry a BATCH_REQ: its batches are capped to leave
     * room for the relay's header (docs/relay.md) */
    return type == HX_PEER_BATCH_REQ || type == 0x51 ? HX_PEER_MAX_KEM_FRAME : HX_PEER_MAX_FRAME;
}

hx_err hx_peer_frame_header_decode(const uint8_t in[HX_PEER_FRAME_HEADER], size_t max_payload,
                                   uint8_t *type, uint32_t *len)
{
    uint32_t n = (uint32_t)in[4] << 24 | (uint32_t)in[5] << 16 | (uint32_t)in[6] << 8 | in[7];

    if (in[0] != 'H' || in[1] != 'X' || in[2] != HX_PEER_VERSION || n > max_payload ||
        n > hx_peer_frame_max(in[3])) {
        return HX_ERR_BAD_VALUE;
    }
    *type = in[3];
    *len = n;
    return HX_OK;
}

hx_err hx_peer_frame_next(const uint8_t *buf, size_t len, size_t max_payload, uint8_t *type,
                          const uint8_t **payload, size_t *plen, size_t *consumed)
{
    uint32_t n;
    uint8_t t;
    hx_err e;

    if (len < HX_PEER_FRAME_HEADER) {
        return HX_ERR_TRUNCATED;
    }
    if ((e = hx_peer_frame_header_decode(buf, max_payload, &t, &n)) != HX_OK) {
        return e;
    }
    if (len - HX_PEER_FRAME_HEADER < n) {
        return HX_ERR_TRUNCATED;
    }
    *type = t;
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

/* ---- streams ---- */

hx_err hx_peer_encode_open(struct hx_writer *w, const struct hx_peer_open *m)
{
    struct hx_uuid qkd;
    bool opaque =
        !hx_qkd_ksid_is_none(&m->qkd_ksid) && !hx_qkd_ksid_is_canonical_uuid(&m->qkd_ksid);
    hx_err e;

    memset(&qkd, 0, sizeof(qkd));
    if (!opaque && !hx_qkd_ksid_is_none(&m->qkd_ksid) && !hx_qkd_ksid_to_uuid(&m->qkd_ksid, &qkd)) {
        return HX_ERR_BAD_VALUE;
    }
    if ((e = hx_write_bytes(w, m->ksid.b, 16)) != HX_OK ||
        (e = hx_peer_write_lp16(w, m->src)) != HX_OK ||
        (e = hx_peer_write_lp16(w, m->dst)) != HX_OK || (e = hx_write_u32(w, m->chunk)) != HX_OK ||
        (e = hx_write_u32(w, m->timeout_ms)) != HX_OK || (e = hx_write_u32(w, m->ttl_s)) != HX_OK ||
        (e = hx_write_bytes(w, qkd.b, 16)) != HX_OK ||
        (e = hx_peer_write_lp16(w, m->sae)) != HX_OK) {
        return e;
    }
    return opaque ? hx_peer_write_lp16(w, m->qkd_ksid.s) : HX_OK;
}

hx_err hx_peer_decode_open(const uint8_t *p, size_t len, struct hx_peer_open *out)
{
    struct hx_reader r;
    struct hx_uuid qkd = {{0}};
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = hx_read_bytes(&r, out->ksid.b, 16)) != HX_OK ||
        (e = hx_peer_read_lp16(&r, out->src, sizeof(out->src))) != HX_OK ||
        (e = hx_peer_read_lp16(&r, out->dst, sizeof(out->dst))) != HX_OK ||
        (e = hx_read_u32(&r, &out->chunk)) != HX_OK ||
        (e = hx_read_u32(&r, &out->timeout_ms)) != HX_OK ||
        (e = hx_read_u32(&r, &out->ttl_s)) != HX_OK ||
        (e = hx_read_bytes(&r, qkd.b, 16)) != HX_OK ||
        (e = hx_peer_read_lp16(&r, out->sae, sizeof(out->sae))) != HX_OK) {
        return e;
    }
    hx_qkd_ksid_from_uuid(&out->qkd_ksid, &qkd);
    if (hx_reader_remaining(&r) > 0) { /* an opaque QKD stream id: the 16 bytes are zeros */
        char text[HX_QKD_KSID_MAX + 1], why[120];
        if (!hx_uuid_is_nil(&qkd)) {
            return HX_ERR_BAD_VALUE;
        }
        if ((e = hx_peer_read_lp16(&r, text, sizeof(text))) != HX_OK ||
            (e = hx_qkd_ksid_set(&out->qkd_ksid, text, strlen(text), why, sizeof(why))) != HX_OK) {
            return e;
        }
        /* a UUID's text goes in the 16 bytes: one form per id */
        if (hx_qkd_ksid_is_canonical_uuid(&out->qkd_ksid)) {
            return HX_ERR_BAD_VALUE;
        }
    }
    return hx_reader_remaining(&r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

hx_err hx_peer_encode_join(struct hx_writer *w, const struct hx_peer_join *m)
{
    hx_err e;

    if ((e = hx_write_bytes(w, m->ksid.b, 16)) != HX_OK ||
        (e = hx_write_u32(w, m->status)) != HX_OK || (e = hx_peer_write_lp16(w, m->msg)) != HX_OK) {
        return e;
    }
    return hx_peer_write_lp16(w, m->sae);
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

/* A message that is a stream id and nothing else (STREAM_CLOSE, QKD_REOPEN). */
static hx_err decode_ksid_only(const uint8_t *p, size_t len, struct hx_uuid *ksid)
{
    struct hx_reader r;
    hx_err e;

    memset(ksid, 0, sizeof(*ksid));
    hx_reader_init(&r, p, len);
    if ((e = hx_read_bytes(&r, ksid->b, 16)) != HX_OK) {
        return e;
    }
    return hx_reader_remaining(&r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

hx_err hx_peer_encode_close(struct hx_writer *w, const struct hx_peer_close *m)
{
    return hx_write_bytes(w, m->ksid.b, 16);
}

hx_err hx_peer_decode_close(const uint8_t *p, size_t len, struct hx_peer_close *out)
{
    memset(out, 0, sizeof(*out));
    return decode_ksid_only(p, len, &out->ksid);
}

/* ---- KME recovery and flow control ---- */

hx_err hx_peer_encode_qkd_reopen(struct hx_writer *w, const struct hx_peer_qkd_reopen *m)
{
    return hx_write_bytes(w, m->ksid.b, 16);
}

hx_err hx_peer_decode_qkd_reopen(const uint8_t *p, size_t len, struct hx_peer_qkd_reopen *out)
{
    memset(out, 0, sizeof(*out));
    return decode_ksid_only(p, len, &out->ksid);
}

hx_err hx_peer_encode_window(struct hx_writer *w, const struct hx_peer_window *m)
{
    hx_err e;

    if (m->limit >= (1ull << 63)) {
        return HX_ERR_BAD_VALUE;
    }
    if ((e = hx_write_bytes(w, m->ksid.b, 16)) != HX_OK) {
        return e;
    }
    return hx_write_u64(w, m->limit);
}

hx_err hx_peer_decode_window(const uint8_t *p, size_t len, struct hx_peer_window *out)
{
    struct hx_reader r;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = hx_read_bytes(&r, out->ksid.b, 16)) != HX_OK ||
        (e = hx_read_u64(&r, &out->limit)) != HX_OK) {
        return e;
    }
    if (out->limit >= (1ull << 63)) { /* positions never get there: a hostile value */
        return HX_ERR_BAD_VALUE;
    }
    return hx_reader_remaining(&r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

/* ---- batches ---- */

static hx_err write_head(struct hx_writer *w, const struct hx_uuid *ksid, uint64_t first,
                         uint32_t count)
{
    hx_err e;

    if (count == 0 || count > HX_PEER_MAX_BATCH || first > UINT64_MAX - count) {
        return HX_ERR_INVALID_ARG; /* the receiver would refuse it */
    }
    if ((e = hx_write_bytes(w, ksid->b, 16)) != HX_OK || (e = hx_write_u64(w, first)) != HX_OK) {
        return e;
    }
    return hx_write_u32(w, count);
}

static hx_err read_head(struct hx_reader *r, bool counted, struct hx_uuid *ksid, uint64_t *first,
                        uint32_t *count)
{
    hx_err e;

    if ((e = hx_read_bytes(r, ksid->b, 16)) != HX_OK || (e = hx_read_u64(r, first)) != HX_OK) {
        return e;
    }
    if (!counted) {
        return HX_OK;
    }
    if ((e = hx_read_u32(r, count)) != HX_OK) {
        return e;
    }
    if (*count == 0 || *count > HX_PEER_MAX_BATCH) {
        return HX_ERR_BAD_VALUE;
    }
    if (*first > UINT64_MAX - *count) {
        return HX_ERR_BAD_VALUE; /* positions must not wrap */
    }
    return HX_OK;
}

static hx_err at_end(const struct hx_reader *r)
{
    return hx_reader_remaining(r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

hx_err hx_peer_decode_head(uint8_t type, const uint8_t *p, size_t len, struct hx_peer_head *out)
{
    struct hx_reader r;
    bool counted = type != HX_PEER_BATCH_ACK;
    hx_err e;

    memset(out, 0, sizeof(*out));
    if (type < HX_PEER_BATCH_REQ || type > HX_PEER_BATCH_QUERY) {
        return HX_ERR_INVALID_ARG;
    }
    hx_reader_init(&r, p, len);
    if ((e = read_head(&r, counted, &out->ksid, &out->first, &out->count)) != HX_OK) {
        return e;
    }
    if (type == HX_PEER_BATCH_RESP || type == HX_PEER_BATCH_FIN || type == HX_PEER_BATCH_ACK) {
        return hx_read_u32(&r, &out->status);
    }
    return HX_OK;
}

static hx_err write_parts(struct hx_writer *w, const struct hx_peer_part *parts, size_t n)
{
    hx_err e;

    if (n > HX_PEER_MAX_PARTS) {
        return HX_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++) {
        if ((e = hx_write_bytes(w, parts[i].p, parts[i].len)) != HX_OK) {
            return e;
        }
    }
    return HX_OK;
}

hx_err hx_peer_encode_req(struct hx_writer *w, const struct hx_peer_req *m)
{
    hx_err e;

    if (m->qkd_mode > HX_PEER_QKD_014 || m->key_pairs > HX_PEER_KEY_PAIRS_PER_BATCH ||
        (m->qkd_mode == HX_PEER_QKD_014) != (m->qkd_ids != NULL)) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = write_head(w, &m->ksid, m->first, m->count)) != HX_OK ||
        (e = hx_write_u64(w, m->qkd_first)) != HX_OK ||
        (e = hx_write_u8(w, m->qkd_mode)) != HX_OK ||
        (e = hx_write_u8(w, (uint8_t)(m->key_pairs | (m->mac ? HX_PEER_REQ_MAC : 0)))) != HX_OK) {
        return e;
    }
    if (m->mac && (e = hx_write_u64(w, m->anchor)) != HX_OK) {
        return e;
    }
    if (m->qkd_ids != NULL &&
        (e = hx_write_bytes(w, m->qkd_ids, (size_t)m->count * HX_PEER_QKD_ID_LEN)) != HX_OK) {
        return e;
    }
    return write_parts(w, m->kem, m->n_kem);
}

hx_err hx_peer_decode_req(const uint8_t *p, size_t len, struct hx_peer_req *out)
{
    struct hx_reader r;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = read_head(&r, true, &out->ksid, &out->first, &out->count)) != HX_OK ||
        (e = hx_read_u64(&r, &out->qkd_first)) != HX_OK ||
        (e = hx_read_u8(&r, &out->qkd_mode)) != HX_OK ||
        (e = hx_read_u8(&r, &out->key_pairs)) != HX_OK) {
        return e;
    }
    out->mac = (out->key_pairs & HX_PEER_REQ_MAC) != 0;
    out->key_pairs &= (uint8_t)~HX_PEER_REQ_MAC;
    if (out->qkd_mode > HX_PEER_QKD_014 || out->key_pairs > HX_PEER_KEY_PAIRS_PER_BATCH) {
        return HX_ERR_BAD_VALUE;
    }
    if (out->mac && (e = hx_read_u64(&r, &out->anchor)) != HX_OK) {
        return e;
    }
    if (out->qkd_mode == HX_PEER_QKD_014 &&
        (e = hx_read_view(&r, (size_t)out->count * HX_PEER_QKD_ID_LEN, &out->qkd_ids)) != HX_OK) {
        return e;
    }
    out->kem[0].len = hx_reader_remaining(&r);
    if ((e = hx_read_view(&r, out->kem[0].len, &out->kem[0].p)) != HX_OK) {
        return e;
    }
    out->n_kem = 1;
    return HX_OK;
}

static hx_err write_signed(struct hx_writer *w, const struct hx_peer_signed *s)
{
    hx_err e;

    if ((e = hx_write_u16(w, s->sig_len)) != HX_OK ||
        (e = hx_write_bytes(w, s->sig, s->sig_len)) != HX_OK) {
        return e;
    }
    return hx_write_bytes(w, s->tag, HX_PEER_TAG_LEN);
}

static hx_err read_signed(struct hx_reader *r, struct hx_peer_signed *s)
{
    hx_err e;

    if ((e = hx_read_u16(r, &s->sig_len)) != HX_OK ||
        (e = hx_read_view(r, s->sig_len, &s->sig)) != HX_OK ||
        (e = hx_read_view(r, HX_PEER_TAG_LEN, &s->tag)) != HX_OK) {
        return e;
    }
    return at_end(r);
}

hx_err hx_peer_encode_resp(struct hx_writer *w, const struct hx_peer_resp *m)
{
    hx_err e;

    if ((e = write_head(w, &m->ksid, m->first, m->count)) != HX_OK ||
        (e = hx_write_u32(w, m->status)) != HX_OK) {
        return e;
    }
    if (m->status != HX_PEER_RESP_OK) {
        return hx_peer_write_lp16(w, m->msg);
    }
    if ((e = write_parts(w, m->kem, m->n_kem)) != HX_OK) {
        return e;
    }
    return write_signed(w, &m->sig);
}

hx_err hx_peer_decode_resp(const uint8_t *p, size_t len, size_t kem_len, struct hx_peer_resp *out)
{
    struct hx_reader r;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = read_head(&r, true, &out->ksid, &out->first, &out->count)) != HX_OK ||
        (e = hx_read_u32(&r, &out->status)) != HX_OK) {
        return e;
    }
    if (out->status != HX_PEER_RESP_OK) {
        /* A refusal: its message is only shown, so a missing or bad one is no error. */
        if (hx_peer_read_lp16(&r, out->msg, sizeof(out->msg)) != HX_OK) {
            out->msg[0] = '\0';
        }
        return HX_OK;
    }
    if ((e = hx_read_view(&r, kem_len, &out->kem[0].p)) != HX_OK) {
        return e;
    }
    out->kem[0].len = kem_len;
    out->n_kem = 1;
    return read_signed(&r, &out->sig);
}

hx_err hx_peer_encode_fin(struct hx_writer *w, const struct hx_peer_fin *m)
{
    hx_err e;

    if ((e = write_head(w, &m->ksid, m->first, m->count)) != HX_OK ||
        (e = hx_write_u32(w, m->status)) != HX_OK) {
        return e;
    }
    return m->status == HX_PEER_FIN_COMMIT ? write_signed(w, &m->sig) : HX_OK;
}

hx_err hx_peer_decode_fin(const uint8_t *p, size_t len, struct hx_peer_fin *out)
{
    struct hx_reader r;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = read_head(&r, true, &out->ksid, &out->first, &out->count)) != HX_OK ||
        (e = hx_read_u32(&r, &out->status)) != HX_OK) {
        return e;
    }
    return out->status == HX_PEER_FIN_COMMIT ? read_signed(&r, &out->sig) : at_end(&r);
}

hx_err hx_peer_encode_ack(struct hx_writer *w, const struct hx_peer_ack *m)
{
    hx_err e;

    if ((e = hx_write_bytes(w, m->ksid.b, 16)) != HX_OK ||
        (e = hx_write_u64(w, m->first)) != HX_OK) {
        return e;
    }
    return hx_write_u32(w, m->status);
}

hx_err hx_peer_decode_ack(const uint8_t *p, size_t len, struct hx_peer_ack *out)
{
    struct hx_reader r;
    uint32_t unused;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = read_head(&r, false, &out->ksid, &out->first, &unused)) != HX_OK ||
        (e = hx_read_u32(&r, &out->status)) != HX_OK) {
        return e;
    }
    return at_end(&r);
}

hx_err hx_peer_encode_auth(struct hx_writer *w, const struct hx_peer_auth *m)
{
    hx_err e;

    if ((e = hx_write_bytes(w, m->ksid.b, 16)) != HX_OK ||
        (e = hx_write_u64(w, m->anchor)) != HX_OK) {
        return e;
    }
    return hx_write_bytes(w, m->confirm, HX_PEER_TAG_LEN);
}

hx_err hx_peer_decode_auth(const uint8_t *p, size_t len, struct hx_peer_auth *out)
{
    struct hx_reader r;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = read_head(&r, false, &out->ksid, &out->anchor, NULL)) != HX_OK ||
        (e = hx_read_view(&r, HX_PEER_TAG_LEN, &out->confirm)) != HX_OK) {
        return e;
    }
    return at_end(&r);
}

hx_err hx_peer_encode_query(struct hx_writer *w, const struct hx_peer_query *m)
{
    return write_head(w, &m->ksid, m->first, m->count);
}

hx_err hx_peer_decode_query(const uint8_t *p, size_t len, struct hx_peer_query *out)
{
    struct hx_reader r;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = read_head(&r, true, &out->ksid, &out->first, &out->count)) != HX_OK) {
        return e;
    }
    return at_end(&r);
}

/* ---- ETSI 014: SAE_LIST (peer.h) ---- */

hx_err hx_peer_encode_sae_list(struct hx_writer *w, const struct hx_peer_sae_list *m)
{
    hx_err e;

    if (m->n > HX_PEER_MAX_SAES) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = hx_write_bytes(w, m->boot.b, 16)) != HX_OK || (e = hx_write_u16(w, m->n)) != HX_OK) {
        return e;
    }
    for (size_t i = 0; i < m->n; i++) {
        size_t n = strlen(m->ids[i]);
        if (!hx_014_sae_id_ok(m->ids[i], n)) {
            return HX_ERR_INVALID_ARG; /* the receiver would refuse it */
        }
        if ((e = hx_write_u8(w, (uint8_t)n)) != HX_OK ||
            (e = hx_write_bytes(w, m->ids[i], n)) != HX_OK) {
            return e;
        }
    }
    return HX_OK;
}

hx_err hx_peer_decode_sae_list(const uint8_t *p, size_t len, struct hx_peer_sae_list *out)
{
    struct hx_reader r;
    uint16_t n;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = hx_read_bytes(&r, out->boot.b, 16)) != HX_OK || (e = hx_read_u16(&r, &n)) != HX_OK) {
        return e;
    }
    if (n > HX_PEER_MAX_SAES) {
        return HX_ERR_TOO_LARGE;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t l;
        if ((e = hx_read_u8(&r, &l)) != HX_OK) {
            return e;
        }
        if (l == 0 || l > HX_PEER_MAX_SAE_ID) {
            return HX_ERR_BAD_VALUE;
        }
        if ((e = hx_read_bytes(&r, out->ids[i], l)) != HX_OK) {
            return e;
        }
        if (!hx_014_sae_id_ok(out->ids[i], l)) {
            return HX_ERR_BAD_VALUE;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(out->ids[j], out->ids[i]) == 0) {
                return HX_ERR_BAD_VALUE;
            }
        }
    }
    out->n = n;
    return hx_reader_remaining(&r) == 0 ? HX_OK : HX_ERR_BAD_VALUE;
}

/* Generous room for a BATCH_REQ's / BATCH_RESP's fixed fields (ids, positions, message). */
#define FRAME_OVERHEAD 4096

uint32_t hx_peer_batch_cap(const struct hx_uri *u, bool per_batch, uint32_t want)
{
    size_t req_fixed = FRAME_OVERHEAD, req_per = HX_PEER_QKD_ID_LEN, resp_per = 0;
    size_t cap = want;

    for (size_t j = 0; j < u->n_sources; j++) {
        struct hx_kem_sizes sz;
        if (u->sources[j] == HX_SRC_QKD) {
            continue;
        }
        hx_kem_standard_sizes(hx_source_kem(u->sources[j]), &sz);
        *(per_batch ? &req_fixed : &req_per) += sz.public_key;
        resp_per += sz.ciphertext;
    }
    if (req_fixed >= HX_PEER_MAX_KEM_FRAME) {
        return 0;
    }
    if ((HX_PEER_MAX_KEM_FRAME - req_fixed) / req_per < cap) {
        cap = (HX_PEER_MAX_KEM_FRAME - req_fixed) / req_per;
    }
    if (resp_per > 0 && (HX_PEER_MAX_FRAME - FRAME_OVERHEAD) / resp_per < cap) {
        cap = (HX_PEER_MAX_FRAME - FRAME_OVERHEAD) / resp_per;
    }
    return (uint32_t)cap;
}
