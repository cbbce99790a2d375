#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/etsi004.h"

static const uint8_t versions[2][3] = {{1, 0, 1}, {2, 1, 1}};

static hx_err fail(char *why, size_t why_len, hx_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static hx_err fail(char *why, size_t why_len, hx_err e, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return e;
}

hx_err hx_004_bin_header(enum hx_004_framing f, const uint8_t hdr[HX_004_BIN_HEADER], uint8_t *type,
                         uint32_t *len, char *why, size_t why_len)
{
    if (memcmp(hdr, versions[f], 3) != 0) {
        return fail(why, why_len, HX_ERR_PROTO,
                    "version %u.%u.%u in the header; this listener speaks %u.%u.%u", hdr[0], hdr[1],
                    hdr[2], versions[f][0], versions[f][1], versions[f][2]);
    }
    *type = hdr[3];
    *len = (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 | (uint32_t)hdr[6] << 8 | hdr[7];
    if (*len > HX_004_BIN_MAX_PAYLOAD) {
        return fail(why, why_len, HX_ERR_TOO_LARGE, "payload of %u bytes exceeds %d", *len,
                    HX_004_BIN_MAX_PAYLOAD);
    }
    return HX_OK;
}

static hx_err read_cstr(struct hx_reader *r, const char *what, char *out, size_t cap, char *why,
                        size_t why_len)
{
    const char *s;
    size_t len;
    hx_err e;

    if ((e = hx_read_cstr(r, cap - 1, &s, &len)) != HX_OK) {
        return fail(why, why_len, e,
                    e == HX_ERR_TOO_LARGE ? "%s: longer than %zu bytes" : "%s: no terminating NUL",
                    what, cap - 1);
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return HX_OK;
}

static hx_err read_qos(enum hx_004_framing f, struct hx_reader *r, struct hykex_qos *q, char *why,
                       size_t why_len)
{
    uint32_t *fields[7] = {&q->key_chunk_size, &q->max_bps,    &q->min_bps, &q->jitter,
                           &q->priority,       &q->timeout_ms, &q->ttl_s};
    const uint8_t *mt;
    hx_err e;

    for (int i = 0; i < 7; i++) {
        if ((e = hx_read_u32(r, fields[i])) != HX_OK) {
            return fail(why, why_len, e, "QoS: truncated");
        }
    }
    if (f == HX_004_FRAMING_101) {
        if ((e = hx_read_view(r, HYKEX_MIMETYPE_MAX, &mt)) != HX_OK) {
            return fail(why, why_len, e, "QoS: truncated mimetype (256 bytes)");
        }
        size_t n = 0;
        while (n < HYKEX_MIMETYPE_MAX && mt[n] != 0) {
            n++;
        }
        memcpy(q->metadata_mimetype, mt, n);
        q->metadata_mimetype[n] = '\0';
        return HX_OK;
    }
    return read_cstr(r, "metadata mimetype", q->metadata_mimetype, sizeof(q->metadata_mimetype),
                     why, why_len);
}

static hx_err read_ksid(struct hx_reader *r, struct hx_uuid *id, char *why, size_t why_len)
{
    hx_err e;

    if ((e = hx_read_bytes(r, id->b, sizeof(id->b))) != HX_OK) {
        return fail(why, why_len, e, "key stream id: truncated (16 bytes)");
    }
    return HX_OK;
}

static hx_err expect_end(const struct hx_reader *r, char *why, size_t why_len)
{
    if (hx_reader_remaining(r) != 0) {
        return fail(why, why_len, HX_ERR_PROTO, "%zu unexpected bytes after the message",
                    hx_reader_remaining(r));
    }
    return HX_OK;
}

hx_err hx_004_bin_decode_request(enum hx_004_framing f, uint8_t type, const uint8_t *p, size_t len,
                                 struct hx_004_request *req, char *why, size_t why_len)
{
    struct hx_reader r;
    uint32_t mlen;
    hx_err e;

    memset(req, 0, sizeof(*req));
    hx_reader_init(&r, p, len);
    switch (type) {
    case HX_004_BIN_OPEN_REQ:
        req->cmd = HX_004_OPEN_CONNECT;
        if ((e = read_cstr(&r, "source", req->source, sizeof(req->source), why, why_len)) !=
                HX_OK ||
            (e = read_cstr(&r, "destination", req->destination, sizeof(req->destination), why,
                           why_len)) != HX_OK ||
            (e = read_qos(f, &r, &req->qos, why, why_len)) != HX_OK ||
            (e = read_ksid(&r, &req->ksid, why, why_len)) != HX_OK) {
            return e;
        }
        return expect_end(&r, why, why_len);
    case HX_004_BIN_GET_REQ:
        req->cmd = HX_004_GET_KEY;
        req->has_index = true;
        if ((e = read_ksid(&r, &req->ksid, why, why_len)) != HX_OK) {
            return e;
        }
        if ((e = hx_read_u32(&r, &req->index)) != HX_OK || (e = hx_read_u32(&r, &mlen)) != HX_OK) {
            return fail(why, why_len, e, "GET_KEY: truncated");
        }
        if (f == HX_004_FRAMING_101) {
            req->metadata_size = mlen; /* the client's metadata capacity */
        } else {
            /* 2.1.1 sends its metadata (key type, role); the reply's capacity is not given. */
            if ((e = hx_read_skip(&r, mlen)) != HX_OK) {
                return fail(why, why_len, e, "GET_KEY: metadata of %u bytes truncated", mlen);
            }
            req->metadata_size = HX_004_MAX_METADATA;
        }
        return expect_end(&r, why, why_len);
    case HX_004_BIN_CLOSE_REQ:
        req->cmd = HX_004_CLOSE;
        if ((e = read_ksid(&r, &req->ksid, why, why_len)) != HX_OK) {
            return e;
        }
        return expect_end(&r, why, why_len);
    default:
        return fail(why, why_len, HX_ERR_UNSUPPORTED,
                    "service type 0x%02x is not a request (0x02, 0x04, 0x08)", type);
    }
}

static hx_err begin(enum hx_004_framing f, uint8_t type, struct hx_writer *w, size_t *start)
{
    hx_err e;

    *start = w->len;
    if ((e = hx_write_bytes(w, versions[f], 3)) != HX_OK || (e = hx_write_u8(w, type)) != HX_OK ||
        (e = hx_write_u32(w, 0)) != HX_OK) {
        return e;
    }
    return HX_OK;
}

/* Patches the payload length into the header written at start. */
static hx_err finish(struct hx_writer *w, size_t start)
{
    size_t n = w->len - start - HX_004_BIN_HEADER;

    if (n > HX_004_BIN_MAX_PAYLOAD) {
        return HX_ERR_TOO_LARGE;
    }
    w->data[start + 4] = (uint8_t)(n >> 24);
    w->data[start + 5] = (uint8_t)(n >> 16);
    w->data[start + 6] = (uint8_t)(n >> 8);
    w->data[start + 7] = (uint8_t)n;
    return HX_OK;
}

static hx_err write_qos(enum hx_004_framing f, const struct hykex_qos *q, struct hx_writer *w)
{
    const uint32_t fields[7] = {q->key_chunk_size, q->max_bps,    q->min_bps, q->jitter,
                                q->priority,       q->timeout_ms, q->ttl_s};
    size_t n = strnlen(q->metadata_mimetype, HYKEX_MIMETYPE_MAX);
    hx_err e;

    for (int i = 0; i < 7; i++) {
        if ((e = hx_write_u32(w, fields[i])) != HX_OK) {
            return e;
        }
    }
    if ((e = hx_write_bytes(w, q->metadata_mimetype, n)) != HX_OK) {
        return e;
    }
    return hx_write_zeros(w, f == HX_004_FRAMING_101 ? HYKEX_MIMETYPE_MAX - n : 1);
}

hx_err hx_004_bin_encode_request(enum hx_004_framing f, const struct hx_004_request *req,
                                 struct hx_writer *w)
{
    size_t start;
    hx_err e;

    switch (req->cmd) {
    case HX_004_OPEN_CONNECT:
        if ((e = begin(f, HX_004_BIN_OPEN_REQ, w, &start)) != HX_OK ||
            (e = hx_write_cstr(w, req->source)) != HX_OK ||
            (e = hx_write_cstr(w, req->destination)) != HX_OK ||
            (e = write_qos(f, &req->qos, w)) != HX_OK ||
            (e = hx_write_bytes(w, req->ksid.b, 16)) != HX_OK) {
            return e;
        }
        break;
    case HX_004_GET_KEY:
        if ((e = begin(f, HX_004_BIN_GET_REQ, w, &start)) != HX_OK ||
            (e = hx_write_bytes(w, req->ksid.b, 16)) != HX_OK ||
            (e = hx_write_u32(w, req->index)) != HX_OK) {
            return e;
        }
        if (f == HX_004_FRAMING_101) {
            e = hx_write_u32(w, req->metadata_size);
        } else {
            /* metadata: key type 0, role 0 */
            static const uint8_t meta[2] = {0, 0};
            if ((e = hx_write_u32(w, sizeof(meta))) == HX_OK) {
                e = hx_write_bytes(w, meta, sizeof(meta));
            }
        }
        if (e != HX_OK) {
            return e;
        }
        break;
    case HX_004_CLOSE:
        if ((e = begin(f, HX_004_BIN_CLOSE_REQ, w, &start)) != HX_OK ||
            (e = hx_write_bytes(w, req->ksid.b, 16)) != HX_OK) {
            return e;
        }
        break;
    default:
        return HX_ERR_INVALID_ARG;
    }
    return finish(w, start);
}

hx_err hx_004_bin_encode_response(enum hx_004_framing f, const struct hx_004_response *resp,
                                  struct hx_writer *w)
{
    size_t start;
    bool full;
    hx_err e;

    switch (resp->cmd) {
    case HX_004_OPEN_CONNECT:
        /* 1.0.1 carries QoS and id on success, "peer not connected" and counter-proposals. */
        full =
            f == HX_004_FRAMING_211 || resp->status == 0 || resp->status == 1 || resp->status == 7;
        if ((e = begin(f, HX_004_BIN_OPEN_RESP, w, &start)) != HX_OK ||
            (e = hx_write_u32(w, resp->status)) != HX_OK) {
            return e;
        }
        if (full && ((e = write_qos(f, &resp->qos, w)) != HX_OK ||
                     (e = hx_write_bytes(w, resp->ksid.b, 16)) != HX_OK)) {
            return e;
        }
        break;
    case HX_004_GET_KEY:
        if ((e = begin(f, HX_004_BIN_GET_RESP, w, &start)) != HX_OK ||
            (e = hx_write_u32(w, resp->status)) != HX_OK) {
            return e;
        }
        if (resp->status != 0 && f == HX_004_FRAMING_101) {
            if (resp->status == 8 && (e = hx_write_u32(w, resp->metadata_needed)) != HX_OK) {
                return e;
            }
            break;
        }
        if ((e = hx_write_u32(w, resp->index)) != HX_OK ||
            (e = hx_write_u32(w, (uint32_t)resp->key_len)) != HX_OK ||
            (e = hx_write_bytes(w, resp->key, resp->key_len)) != HX_OK ||
            (e = hx_write_u32(w, (uint32_t)resp->metadata_len)) != HX_OK ||
            (e = hx_write_bytes(w, resp->metadata, resp->metadata_len)) != HX_OK) {
            return e;
        }
        break;
    case HX_004_CLOSE:
        if ((e = begin(f, HX_004_BIN_CLOSE_RESP, w, &start)) != HX_OK ||
            (e = hx_write_u32(w, resp->status)) != HX_OK) {
            return e;
        }
        break;
    default:
        return HX_ERR_INVALID_ARG;
    }
    return finish(w, start);
}

hx_err hx_004_bin_decode_response(enum hx_004_framing f, uint8_t type, const uint8_t *p, size_t len,
                                  struct hx_004_response *resp, char *why, size_t why_len)
{
    struct hx_reader r;
    uint32_t klen, mlen;
    hx_err e;

    memset(resp, 0, sizeof(*resp));
    hx_reader_init(&r, p, len);
    if ((e = hx_read_u32(&r, &resp->status)) != HX_OK) {
        return fail(why, why_len, e, "response: no status");
    }
    switch (type) {
    case HX_004_BIN_OPEN_RESP:
        resp->cmd = HX_004_OPEN_CONNECT;
        if (hx_reader_remaining(&r) == 0 && f == HX_004_FRAMING_101) {
            return HX_OK;
        }
        if ((e = read_qos(f, &r, &resp->qos, why, why_len)) != HX_OK ||
            (e = read_ksid(&r, &resp->ksid, why, why_len)) != HX_OK) {
            return e;
        }
        return expect_end(&r, why, why_len);
    case HX_004_BIN_GET_RESP:
        resp->cmd = HX_004_GET_KEY;
        if (resp->status != 0 && f == HX_004_FRAMING_101) {
            if (resp->status == 8 && (e = hx_read_u32(&r, &resp->metadata_needed)) != HX_OK) {
                return fail(why, why_len, e, "status 8 without the needed size");
            }
            return expect_end(&r, why, why_len);
        }
        if ((e = hx_read_u32(&r, &resp->index)) != HX_OK || (e = hx_read_u32(&r, &klen)) != HX_OK ||
            klen > HX_004_MAX_KEY || (e = hx_read_view(&r, klen, &resp->key)) != HX_OK ||
            (e = hx_read_u32(&r, &mlen)) != HX_OK || mlen > HX_004_MAX_METADATA ||
            (e = hx_read_view(&r, mlen, &resp->metadata)) != HX_OK) {
            return fail(why, why_len, e != HX_OK ? e : HX_ERR_TOO_LARGE,
                        "GET_KEY response truncated or oversize");
        }
        resp->key_len = klen;
        resp->metadata_len = mlen;
        return expect_end(&r, why, why_len);
    case HX_004_BIN_CLOSE_RESP:
        resp->cmd = HX_004_CLOSE;
        return expect_end(&r, why, why_len);
    default:
        return fail(why, why_len, HX_ERR_UNSUPPORTED, "service type 0x%02x is not a response",
                    type);
    }
}
