/* TOPO_ANNOUNCE, the relay's link-state message (proto/peer_topo.h, docs/relay.md). */
#include "proto/peer_topo.h"

#include <string.h>

#include "proto/peer.h"

/* The relay's types beside the other messages' (proto/peer.h): one value, one message. */
_Static_assert(HX_PEER_TOPO_ANNOUNCE != HX_PEER_SAE_LIST && HX_PEER_RELAY_FWD != HX_PEER_SAE_LIST,
               "relay message types collide with SAE_LIST");
_Static_assert(HX_PEER_TOPO_ANNOUNCE > HX_PEER_BATCH_QUERY &&
                   HX_PEER_RELAY_FWD > HX_PEER_BATCH_QUERY &&
                   HX_PEER_RELAY_REPATH > HX_PEER_BATCH_QUERY &&
                   HX_PEER_RELAY_REPATH != HX_PEER_SAE_LIST,
               "relay message types collide with the stream and batch messages");

/* What the decoder refuses, checked before encoding too. */
static hx_err check(const struct hx_peer_topo *m)
{
    if (m->n_neigh > HX_TOPO_MAX_NEIGH || m->lifetime_s == 0 ||
        (m->node_flags & ~HX_TOPO_TRANSIT) != 0 || m->lifetime_s > HX_TOPO_MAX_LIFETIME_S ||
        m->cert_len == 0 || m->cert_len > HX_TOPO_MAX_CERT) {
        return HX_ERR_BAD_VALUE;
    }
    for (size_t i = 0; i < m->n_neigh; i++) {
        if ((m->neigh[i].flags & ~HX_TOPO_QKD) != 0 ||
            hx_uuid_equal(&m->neigh[i].node, &m->origin)) {
            return HX_ERR_BAD_VALUE;
        }
        for (size_t j = 0; j < i; j++) {
            if (hx_uuid_equal(&m->neigh[i].node, &m->neigh[j].node)) {
                return HX_ERR_BAD_VALUE;
            }
        }
    }
    return HX_OK;
}

hx_err hx_peer_encode_topo_body(struct hx_writer *w, const struct hx_peer_topo *m)
{
    hx_err e;

    if (check(m) != HX_OK) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = hx_write_bytes(w, m->origin.b, 16)) != HX_OK ||
        (e = hx_write_u64(w, m->seq)) != HX_OK || (e = hx_write_u32(w, m->lifetime_s)) != HX_OK ||
        (e = hx_write_u8(w, m->node_flags)) != HX_OK ||
        (e = hx_write_u8(w, (uint8_t)m->n_neigh)) != HX_OK) {
        return e;
    }
    for (size_t i = 0; i < m->n_neigh; i++) {
        if ((e = hx_write_bytes(w, m->neigh[i].node.b, 16)) != HX_OK ||
            (e = hx_write_u8(w, m->neigh[i].flags)) != HX_OK ||
            (e = hx_write_u32(w, m->neigh[i].key_avail)) != HX_OK) {
            return e;
        }
    }
    if ((e = hx_write_u16(w, (uint16_t)m->cert_len)) != HX_OK) {
        return e;
    }
    return hx_write_bytes(w, m->cert, m->cert_len);
}

hx_err hx_peer_encode_topo_sig(struct hx_writer *w, const uint8_t *sig, size_t len)
{
    hx_err e;

    if (len == 0 || len > HX_TOPO_MAX_SIG) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = hx_write_u16(w, (uint16_t)len)) != HX_OK) {
        return e;
    }
    return hx_write_bytes(w, sig, len);
}

hx_err hx_peer_decode_topo(const uint8_t *p, size_t len, struct hx_peer_topo *out)
{
    struct hx_reader r;
    uint16_t n16;
    uint8_t n;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = hx_read_bytes(&r, out->origin.b, 16)) != HX_OK ||
        (e = hx_read_u64(&r, &out->seq)) != HX_OK ||
        (e = hx_read_u32(&r, &out->lifetime_s)) != HX_OK ||
        (e = hx_read_u8(&r, &out->node_flags)) != HX_OK || (e = hx_read_u8(&r, &n)) != HX_OK) {
        return e;
    }
    if (n > HX_TOPO_MAX_NEIGH) {
        return HX_ERR_TOO_LARGE;
    }
    out->n_neigh = n;
    for (size_t i = 0; i < n; i++) {
        if ((e = hx_read_bytes(&r, out->neigh[i].node.b, 16)) != HX_OK ||
            (e = hx_read_u8(&r, &out->neigh[i].flags)) != HX_OK ||
            (e = hx_read_u32(&r, &out->neigh[i].key_avail)) != HX_OK) {
            return e;
        }
    }
    if ((e = hx_read_u16(&r, &n16)) != HX_OK) {
        return e;
    }
    out->cert_len = n16;
    if ((e = hx_read_view(&r, out->cert_len, &out->cert)) != HX_OK) {
        return e;
    }
    out->signed_part = p;
    out->signed_len = r.off;
    if ((e = hx_read_u16(&r, &n16)) != HX_OK) {
        return e;
    }
    out->sig_len = n16;
    if (out->sig_len == 0 || out->sig_len > HX_TOPO_MAX_SIG) {
        return HX_ERR_BAD_VALUE;
    }
    if ((e = hx_read_view(&r, out->sig_len, &out->sig)) != HX_OK) {
        return e;
    }
    if (hx_reader_remaining(&r) != 0) {
        return HX_ERR_TOO_LARGE; /* trailing bytes */
    }
    return check(out);
}

/* ---- RELAY_FWD ---- */

bool hx_peer_fwd_type_ok(uint8_t type)
{
    switch (type) {
    case HX_PEER_STREAM_OPEN:
    case HX_PEER_STREAM_JOIN:
    case HX_PEER_STREAM_CLOSE:
    case HX_PEER_RELAY_REPATH:
    case HX_PEER_BATCH_REQ:
    case HX_PEER_BATCH_RESP:
    case HX_PEER_BATCH_FIN:
    case HX_PEER_BATCH_ACK:
    case HX_PEER_BATCH_QUERY:
        return true;
    default:
        return false;
    }
}

static hx_err check_fwd(const struct hx_peer_fwd *m)
{
    if (m->n < 2 || m->n > HX_RELAY_MAX_PATH || m->at < 1 || m->at >= m->n ||
        !hx_peer_fwd_type_ok(m->type) ||
        (m->has_qkd && (m->type != HX_PEER_BATCH_REQ || m->qkd_acc_len == 0 ||
                        m->qkd_acc_len > HX_RELAY_MAX_ACC))) {
        return HX_ERR_BAD_VALUE;
    }
    for (size_t i = 0; i < m->n; i++) {
        for (size_t j = 0; j < i; j++) {
            if (hx_uuid_equal(&m->path[i], &m->path[j])) {
                return HX_ERR_BAD_VALUE; /* a loop */
            }
        }
    }
    return HX_OK;
}

hx_err hx_peer_encode_fwd(struct hx_writer *w, const struct hx_peer_fwd *m)
{
    hx_err e;

    if (check_fwd(m) != HX_OK) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = hx_write_u8(w, (uint8_t)m->n)) != HX_OK) {
        return e;
    }
    for (size_t i = 0; i < m->n; i++) {
        if ((e = hx_write_bytes(w, m->path[i].b, 16)) != HX_OK) {
            return e;
        }
    }
    if ((e = hx_write_u8(w, m->at)) != HX_OK || (e = hx_write_u8(w, m->type)) != HX_OK ||
        (e = hx_write_u8(w, m->has_qkd ? 1 : 0)) != HX_OK) {
        return e;
    }
    if (m->has_qkd && ((e = hx_write_u64(w, m->qkd_index)) != HX_OK ||
                       (e = hx_write_u32(w, (uint32_t)m->qkd_acc_len)) != HX_OK ||
                       (e = hx_write_bytes(w, m->qkd_acc, m->qkd_acc_len)) != HX_OK)) {
        return e;
    }
    return hx_write_bytes(w, m->p, m->len);
}

hx_err hx_peer_decode_fwd(const uint8_t *p, size_t len, struct hx_peer_fwd *out)
{
    struct hx_reader r;
    uint8_t n, q;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = hx_read_u8(&r, &n)) != HX_OK) {
        return e;
    }
    if (n < 2 || n > HX_RELAY_MAX_PATH) {
        return HX_ERR_BAD_VALUE;
    }
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        if ((e = hx_read_bytes(&r, out->path[i].b, 16)) != HX_OK) {
            return e;
        }
    }
    if ((e = hx_read_u8(&r, &out->at)) != HX_OK || (e = hx_read_u8(&r, &out->type)) != HX_OK ||
        (e = hx_read_u8(&r, &q)) != HX_OK) {
        return e;
    }
    if (q > 1) {
        return HX_ERR_BAD_VALUE;
    }
    if (q == 1) {
        uint32_t n32;
        out->has_qkd = true;
        if ((e = hx_read_u64(&r, &out->qkd_index)) != HX_OK ||
            (e = hx_read_u32(&r, &n32)) != HX_OK) {
            return e;
        }
        if (n32 == 0 || n32 > HX_RELAY_MAX_ACC) {
            return HX_ERR_BAD_VALUE;
        }
        out->qkd_acc_len = n32;
        if ((e = hx_read_view(&r, out->qkd_acc_len, &out->qkd_acc)) != HX_OK) {
            return e;
        }
    }
    out->len = hx_reader_remaining(&r);
    if ((e = hx_read_view(&r, out->len, &out->p)) != HX_OK) {
        return e;
    }
    return check_fwd(out);
}

/* ---- RELAY_REPATH ---- */

static hx_err check_repath(const struct hx_peer_repath *m)
{
    static const struct hx_uuid nil;

    if (m->kind > HX_REPATH_REFUSED || hx_uuid_is_nil(&m->ksid) ||
        (m->kind == HX_REPATH_OPEN) == hx_uuid_equal(&m->qkd_link, &nil) ||
        (m->kind != HX_REPATH_REFUSED && m->msg[0] != '\0')) {
        return HX_ERR_BAD_VALUE;
    }
    return HX_OK;
}

hx_err hx_peer_encode_repath(struct hx_writer *w, const struct hx_peer_repath *m)
{
    hx_err e;

    if (check_repath(m) != HX_OK || strnlen(m->msg, sizeof(m->msg)) > HX_REPATH_MAX_MSG) {
        return HX_ERR_INVALID_ARG;
    }
    if ((e = hx_write_bytes(w, m->ksid.b, 16)) != HX_OK ||
        (e = hx_write_u32(w, m->epoch)) != HX_OK || (e = hx_write_u8(w, m->kind)) != HX_OK ||
        (e = hx_write_bytes(w, m->qkd_link.b, 16)) != HX_OK) {
        return e;
    }
    return hx_peer_write_lp16(w, m->msg);
}

hx_err hx_peer_decode_repath(const uint8_t *p, size_t len, struct hx_peer_repath *out)
{
    struct hx_reader r;
    hx_err e;

    memset(out, 0, sizeof(*out));
    hx_reader_init(&r, p, len);
    if ((e = hx_read_bytes(&r, out->ksid.b, 16)) != HX_OK ||
        (e = hx_read_u32(&r, &out->epoch)) != HX_OK || (e = hx_read_u8(&r, &out->kind)) != HX_OK ||
        (e = hx_read_bytes(&r, out->qkd_link.b, 16)) != HX_OK ||
        (e = hx_peer_read_lp16(&r, out->msg, sizeof(out->msg))) != HX_OK) {
        return e;
    }
    if (hx_reader_remaining(&r) != 0) {
        return HX_ERR_TOO_LARGE; /* trailing bytes */
    }
    return check_repath(out);
}
