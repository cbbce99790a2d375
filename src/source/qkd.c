#include "source/qkd.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "net/conn.h"
#include "net/sock.h"
#include "proto/etsi004.h"
#include "source/qkd_int.h"

/* One connection to the KME: net/conn.h, and the TLS context made for it (qkd.tls). */
struct qconn {
    struct hx_conn io;
    SSL_CTX *ctx;
    unsigned timeout_ms; /* each connect, read and write waits at most this long (0: no limit) */
};

static int64_t qdeadline(const struct qconn *q)
{
    return q->timeout_ms > 0 ? hx_deadline_in_ms(q->timeout_ms) : HX_DEADLINE_NEVER;
}

static void qclose(struct qconn *q)
{
    hx_conn_tls_close(&q->io);
    hx_conn_wipe(&q->io);
    SSL_CTX_free(q->ctx);
    q->ctx = NULL;
}

/* "host:port" of the KME, for messages. */
static const char *kme_name(const struct hx_qkd_client *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s:%u", c->host, c->port);
    return buf;
}

static hx_err qconnect(const struct hx_qkd_client *c, struct qconn *q, char *msg, size_t msg_len)
{
    char why[200];
    int fd;
    hx_err e;

    memset(q, 0, sizeof(*q));
    hx_conn_init(&q->io, -1);
    q->timeout_ms = c->timeout_ms;
    e = hx_net_dial_tcp(c->host, c->port, NULL, qdeadline(q), &fd, why, sizeof(why));
    if (e == HX_ERR_CONFIG) {
        snprintf(msg, msg_len, "QKD source: cannot resolve %s", c->host);
        return HX_ERR_IO;
    }
    if (e != HX_OK) {
        snprintf(msg, msg_len, "QKD source: KME at %s:%u unreachable (%s)", c->host, c->port, why);
        return HX_ERR_IO;
    }
    hx_conn_init(&q->io, fd);
    if (c->tls_cert[0] != '\0') {
        if ((q->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
            SSL_CTX_use_certificate_chain_file(q->ctx, c->tls_cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(q->ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_load_verify_file(q->ctx, c->tls_ca) != 1) {
            snprintf(msg, msg_len, "QKD source: TLS client set-up failed (qkd.tls)");
            ERR_clear_error();
            qclose(q);
            return HX_ERR_CONFIG;
        }
        SSL_CTX_set_verify(q->ctx, SSL_VERIFY_PEER, NULL);
        if (hx_conn_tls_connect(&q->io, q->ctx, qdeadline(q)) != HX_OK) {
            snprintf(msg, msg_len, "QKD source: TLS handshake with the KME failed");
            ERR_clear_error();
            qclose(q);
            return HX_ERR_IO;
        }
    }
    return HX_OK;
}

static bool qwrite(struct qconn *q, const void *p, size_t n)
{
    return hx_conn_write_all(&q->io, p, n, qdeadline(q)) == HX_OK;
}

/* What has arrived, up to n bytes; <= 0 when the connection ended or the KME was silent. */
static ssize_t qread(struct qconn *q, void *p, size_t n)
{
    size_t got;

    return hx_conn_read_some(&q->io, p, n, &got, qdeadline(q)) == HX_OK ? (ssize_t)got : -1;
}

static bool qread_exact(struct qconn *q, uint8_t *p, size_t cap, size_t n)
{
    return hx_conn_read_exact(&q->io, p, cap, n, qdeadline(q)) == HX_OK;
}

/* One JSON request/response on a fresh connection. */
static hx_err json_rpc(const struct hx_qkd_client *c, const struct hx_004_request *req,
                       struct json_object **reply, char *msg, size_t msg_len)
{
    static const struct hx_json_limits lim = {
        .max_message = 1u << 20, .max_depth = 8, .max_string = 4096, .max_members = 70000};
    struct json_object *o = hx_004_json_encode_request(req);
    struct hx_json_stream *s = NULL;
    struct qconn q;
    const char *text, *why;
    uint8_t buf[8192];
    hx_err e;

    *reply = NULL;
    if ((e = qconnect(c, &q, msg, msg_len)) != HX_OK) {
        json_object_put(o);
        return e;
    }
    text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED);
    if (!qwrite(&q, text, strlen(text)) || hx_json_stream_new(&lim, &s) != HX_OK) {
        snprintf(msg, msg_len, "QKD source: sending to the KME failed");
        e = HX_ERR_IO;
        goto out;
    }
    for (;;) {
        ssize_t n = qread(&q, buf, sizeof(buf));
        enum hx_json_event ev;
        if (n <= 0) {
            snprintf(msg, msg_len, "QKD source: the KME closed the connection without a reply");
            e = HX_ERR_IO;
            goto out;
        }
        if (hx_json_stream_feed(s, buf, (size_t)n) != HX_OK) {
            e = HX_ERR_TOO_LARGE;
            goto out;
        }
        ev = hx_json_stream_next(s, reply, &e, &why);
        if (ev == HX_JSON_OBJECT) {
            e = HX_OK;
            break;
        }
        if (ev == HX_JSON_ERROR) {
            snprintf(msg, msg_len, "QKD source: malformed reply from the KME: %s", why);
            e = HX_ERR_PROTO;
            goto out;
        }
    }
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    hx_json_stream_free(s);
    json_object_put(o);
    qclose(&q);
    return e;
}

/* Reads one binary reply into resp (its key and metadata point into payload, cap bytes). */
static hx_err bin_reply(const struct hx_qkd_client *c, struct qconn *q, uint8_t *payload,
                        size_t cap, struct hx_004_response *resp, char *msg, size_t msg_len)
{
    enum hx_004_framing f = (enum hx_004_framing)c->framing;
    uint8_t hdr[HX_004_BIN_HEADER], type;
    uint32_t len;
    char why[200] = "reply larger than its buffer";
    hx_err e;

    if (!qread_exact(q, hdr, sizeof(hdr), sizeof(hdr))) {
        snprintf(msg, msg_len, "QKD source: no reply from the KME");
        return HX_ERR_IO;
    }
    if ((e = hx_004_bin_header(f, hdr, &type, &len, why, sizeof(why))) != HX_OK ||
        !qread_exact(q, payload, cap, len) ||
        (e = hx_004_bin_decode_response(f, type, payload, len, resp, why, sizeof(why))) != HX_OK) {
        snprintf(msg, msg_len, "QKD source: bad reply from the KME: %s", why);
        return e != HX_OK ? e : HX_ERR_PROTO;
    }
    return HX_OK;
}

static hx_err bin_rpc(const struct hx_qkd_client *c, const struct hx_004_request *req,
                      uint8_t *payload, size_t cap, struct hx_004_response *resp, char *msg,
                      size_t msg_len)
{
    uint8_t out[2048];
    struct hx_writer w;
    struct qconn q;
    hx_err e;

    hx_writer_init_fixed(&w, out, sizeof(out));
    if ((e = hx_004_bin_encode_request((enum hx_004_framing)c->framing, req, &w)) != HX_OK) {
        return e;
    }
    if ((e = qconnect(c, &q, msg, msg_len)) != HX_OK) {
        return e;
    }
    if (!qwrite(&q, out, w.len)) {
        snprintf(msg, msg_len, "QKD source: sending to the KME failed");
        e = HX_ERR_IO;
    } else {
        e = bin_reply(c, &q, payload, cap, resp, msg, msg_len);
    }
    qclose(&q);
    return e;
}

/*
 * The stream id into a request: a UUID (binary: always; JSON: sent back as the KME gave it,
 * case included), or an opaque id (JSON only). false, with status 4 and msg, when an opaque
 * id would go to a binary KME (configuration changed under a stored stream).
 */
static bool put_ksid(const struct hx_qkd_client *c, struct hx_004_request *req,
                     const struct hx_qkd_ksid *id, uint32_t *status, char *msg, size_t msg_len)
{
    memset(&req->ksid, 0, sizeof(req->ksid));
    memset(&req->ksid_text, 0, sizeof(req->ksid_text));
    if (hx_qkd_ksid_is_none(id)) {
        return true;
    }
    if (hx_qkd_ksid_to_uuid(id, &req->ksid)) {
        if (c->protocol == 1 && !hx_qkd_ksid_is_canonical_uuid(id)) {
            req->ksid_text = *id;
        }
        return true;
    }
    if (c->protocol != 1) {
        char kn[280];
        snprintf(msg, msg_len,
                 "QKD source: KME %s: key_stream_id %.64s is not a UUID: the binary dialect "
                 "carries UUIDs only",
                 kme_name(c, kn, sizeof(kn)), id->s);
        *status = HYKEX_STATUS_NO_QKD_CONNECTION;
        return false;
    }
    req->ksid_text = *id;
    return true;
}

hx_err hx_qkd_open(const struct hx_qkd_client *c, const char *src, const char *dst,
                   struct hykex_qos *qos, struct hx_qkd_ksid *ksid, uint32_t *status, char *msg,
                   size_t msg_len)
{
    struct hx_004_request req;
    hx_err e;

    memset(&req, 0, sizeof(req));
    req.cmd = HX_004_OPEN_CONNECT;
    snprintf(req.source, sizeof(req.source), "%s", src);
    snprintf(req.destination, sizeof(req.destination), "%s", dst);
    req.qos = *qos;
    snprintf(req.qos.metadata_mimetype, sizeof(req.qos.metadata_mimetype), "application/json");
    msg[0] = '\0';
    if (!put_ksid(c, &req, ksid, status, msg, msg_len)) {
        return HX_OK;
    }
    /* The KME may hold OPEN_CONNECT up to qos->timeout ms for the other end: wait that long
     * for its reply, and the client's own timeout on top. */
    struct hx_qkd_client oc = *c;
    if (qos->timeout_ms > 0 && oc.timeout_ms > 0) {
        oc.timeout_ms = c->timeout_ms + qos->timeout_ms;
    }
    c = &oc;
    if (c->protocol == 2) {
        uint8_t payload[2048];
        struct hx_004_response r;
        if ((e = bin_rpc(c, &req, payload, sizeof(payload), &r, msg, msg_len)) != HX_OK) {
            return e;
        }
        *status = r.status;
        if (r.status <= 1) {
            hx_qkd_ksid_from_uuid(ksid, &r.ksid);
        } else if (r.status == HYKEX_STATUS_QOS_NOT_MET) {
            *qos = r.qos;
        }
        return HX_OK;
    }
    struct json_object *o;
    char kn[280];
    if ((e = json_rpc(c, &req, &o, msg, msg_len)) != HX_OK) {
        return e;
    }
    *status = hx_qkd_open_from_reply(o, kme_name(c, kn, sizeof(kn)), qos, ksid, msg, msg_len);
    json_object_put(o);
    return HX_OK;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

/* Some KMEs answer with zeros before a key exists: that is no key. */
static void refuse_zero_key(const uint8_t *key, size_t len, uint32_t *status, char *msg,
                            size_t msg_len)
{
    if (*status == 0 && all_zero(key, len)) {
        snprintf(msg, msg_len, "QKD source: the KME returned an all-zero key");
        *status = HYKEX_STATUS_INSUFFICIENT_KEY;
    }
}

/* A GET_KEY request; the id as put_ksid puts it (checked by the callers: ksid_ok). */
static void get_request(const struct hx_qkd_client *c, struct hx_004_request *req,
                        const struct hx_qkd_ksid *ksid, uint32_t index)
{
    uint32_t st;
    char m[8];

    memset(req, 0, sizeof(*req));
    req->cmd = HX_004_GET_KEY;
    (void)put_ksid(c, req, ksid, &st, m, sizeof(m));
    req->has_index = true;
    req->index = index;
    req->metadata_size = 1024;
}

/* A binary GET_KEY reply's status, and its key (exactly len bytes) into key. */
static uint32_t key_from_bin(const struct hx_qkd_client *c, const struct hx_004_response *r,
                             uint8_t *key, size_t len, char *msg, size_t msg_len)
{
    uint32_t status = r->status;
    char kn[280];

    if (status == 0 && r->key_len != len) {
        snprintf(msg, msg_len, "QKD source: KME %s: key of %zu bytes, asked for %zu: reply refused",
                 kme_name(c, kn, sizeof(kn)), r->key_len, len);
        status = HYKEX_STATUS_NO_QKD_CONNECTION;
    } else if (status == 0) {
        memcpy(key, r->key, len);
    }
    refuse_zero_key(key, len, &status, msg, msg_len);
    return status;
}

hx_err hx_qkd_get(const struct hx_qkd_client *c, const struct hx_qkd_ksid *ksid, uint32_t index,
                  uint8_t *key, size_t len, uint32_t *status, char *msg, size_t msg_len)
{
    struct hx_004_request req;
    hx_err e;

    get_request(c, &req, ksid, index);
    msg[0] = '\0';
    if (!put_ksid(c, &req, ksid, status, msg, msg_len)) {
        return HX_OK;
    }
    if (c->protocol == 2) {
        uint8_t *payload = malloc(HX_004_BIN_MAX_PAYLOAD);
        struct hx_004_response r;
        if (payload == NULL) {
            return HX_ERR_NOMEM;
        }
        e = bin_rpc(c, &req, payload, HX_004_BIN_MAX_PAYLOAD, &r, msg, msg_len);
        if (e == HX_OK) {
            *status = key_from_bin(c, &r, key, len, msg, msg_len);
        }
        OPENSSL_clear_free(payload, HX_004_BIN_MAX_PAYLOAD);
        return e;
    }
    struct json_object *o;
    char kn[280];
    if ((e = json_rpc(c, &req, &o, msg, msg_len)) != HX_OK) {
        return e;
    }
    *status = hx_qkd_key_from_reply(o, kme_name(c, kn, sizeof(kn)), key, len, msg, msg_len);
    json_object_put(o);
    refuse_zero_key(key, len, status, msg, msg_len);
    return HX_OK;
}

hx_err hx_qkd_close(const struct hx_qkd_client *c, const struct hx_qkd_ksid *ksid)
{
    struct hx_004_request req;
    char msg[200];

    uint32_t st;

    memset(&req, 0, sizeof(req));
    req.cmd = HX_004_CLOSE;
    if (!put_ksid(c, &req, ksid, &st, msg, sizeof(msg))) {
        return HX_ERR_BAD_VALUE;
    }
    if (c->protocol == 2) {
        uint8_t payload[64];
        struct hx_004_response r;
        return bin_rpc(c, &req, payload, sizeof(payload), &r, msg, sizeof(msg));
    }
    struct json_object *o = NULL;
    hx_err e = json_rpc(c, &req, &o, msg, sizeof(msg));
    json_object_put(o);
    return e;
}

/* Appends one JSON GET_KEY request for index to w (t: the batch's text, kept for the next:
 * the others differ only in the index's digits, proto/etsi004.h). */
static hx_err json_get_request(const struct hx_qkd_client *c, struct hx_writer *w,
                               const struct hx_qkd_ksid *ksid, uint32_t index,
                               struct hx_004_get_text *t)
{
    struct hx_004_request req;

    get_request(c, &req, ksid, index);
    return hx_004_json_write_get_request(t, &req, w);
}

/* A JSON GET_KEY reply's bounds: keys of up to 65535 bytes as JSON numbers. */
static const struct hx_json_limits get_reply_limits = {
    .max_message = 1u << 20, .max_depth = 8, .max_string = 4096, .max_members = 70000};

/* Reads the next GET_KEY reply object from the stream into key (len bytes). */
static hx_err json_get_reply(const struct hx_qkd_client *c, struct qconn *q,
                             struct hx_json_stream *in, uint8_t *key, size_t len, uint32_t *status,
                             char *msg, size_t msg_len)
{
    struct json_object *r = NULL;
    const char *why;
    char kn[280];
    uint8_t buf[8192];
    hx_err e = HX_OK;

    for (;;) {
        hx_err je;
        const char *text;
        size_t text_len;
        enum hx_json_event ev = hx_json_stream_next_text(in, &text, &text_len, &je, &why);
        if (ev == HX_JSON_OBJECT) {
            /* A plain reply with the key asked for, without a tree; any other through json-c,
             * whose checks give every refusal its message. */
            struct hx_004_key_reply fr = {.key = key, .key_cap = len};
            if (hx_004_fast_key_reply(text, text_len, &get_reply_limits, &fr) && fr.status == 0 &&
                fr.has_key && fr.key_len == len) {
                *status = 0;
                refuse_zero_key(key, len, status, msg, msg_len);
                return HX_OK;
            }
            OPENSSL_cleanse(key, len);
            ev = hx_json_stream_parse_text(in, &r, &je, &why);
        }
        if (ev == HX_JSON_OBJECT) {
            break;
        }
        if (ev == HX_JSON_ERROR) {
            snprintf(msg, msg_len, "QKD source: malformed reply from the KME: %s", why);
            return HX_ERR_PROTO;
        }
        ssize_t n = qread(q, buf, sizeof(buf));
        if (n <= 0) {
            snprintf(msg, msg_len, "QKD source: the KME closed the connection without a reply");
            return HX_ERR_IO;
        }
        e = hx_json_stream_feed(in, buf, (size_t)n);
        OPENSSL_cleanse(buf, (size_t)n);
        if (e != HX_OK) {
            return e;
        }
    }
    *status = hx_qkd_key_from_reply(r, kme_name(c, kn, sizeof(kn)), key, len, msg, msg_len);
    refuse_zero_key(key, len, status, msg, msg_len);
    json_object_put(r);
    return HX_OK;
}

/*
 * Binary 1.0.1: the GET_KEYs on one connection, up to c->pipeline written at once, their
 * replies read in order (the frames are length-delimited, so a KME reads them one by one).
 */
static hx_err bin_get_many(const struct hx_qkd_client *c, const struct hx_qkd_ksid *ksid,
                           uint32_t first, uint32_t count, uint8_t *keys, size_t len,
                           uint32_t *done, uint32_t *status, char *msg, size_t msg_len)
{
    uint8_t *payload = malloc(HX_004_BIN_MAX_PAYLOAD);
    uint32_t window = c->pipeline > 0 ? c->pipeline : 1;
    struct hx_writer w;
    struct qconn q;
    hx_err e;

    if (payload == NULL) {
        return HX_ERR_NOMEM;
    }
    if ((e = qconnect(c, &q, msg, msg_len)) != HX_OK) {
        free(payload);
        return e;
    }
    hx_writer_init_dynamic(&w, 1u << 20);
    while (e == HX_OK && *status == 0 && *done < count) {
        uint32_t n = count - *done < window ? count - *done : window;
        hx_writer_reset(&w);
        for (uint32_t i = 0; i < n && e == HX_OK; i++) {
            struct hx_004_request req;
            get_request(c, &req, ksid, first + *done + i);
            e = hx_004_bin_encode_request((enum hx_004_framing)c->framing, &req, &w);
        }
        if (e == HX_OK && !qwrite(&q, w.data, w.len)) {
            snprintf(msg, msg_len, "QKD source: sending to the KME failed");
            e = HX_ERR_IO;
        }
        for (uint32_t i = 0; i < n && e == HX_OK && *status == 0; i++) {
            struct hx_004_response r;
            if ((e = bin_reply(c, &q, payload, HX_004_BIN_MAX_PAYLOAD, &r, msg, msg_len)) ==
                    HX_OK &&
                (*status = key_from_bin(c, &r, keys + (size_t)*done * len, len, msg, msg_len)) ==
                    0) {
                (*done)++;
            }
        }
    }
    hx_writer_wipe(&w);
    OPENSSL_clear_free(payload, HX_004_BIN_MAX_PAYLOAD);
    qclose(&q);
    return e;
}

hx_err hx_qkd_get_many(const struct hx_qkd_client *c, const struct hx_qkd_ksid *ksid,
                       uint32_t first, uint32_t count, uint8_t *keys, size_t len, uint32_t *done,
                       uint32_t *status, char *msg, size_t msg_len)
{
    struct hx_json_stream *in = NULL;
    struct qconn q;
    hx_err e;

    *done = 0;
    *status = 0;
    msg[0] = '\0';
    struct hx_004_request check;
    if (!put_ksid(c, &check, ksid, status, msg, msg_len)) {
        return HX_OK;
    }
    if (c->protocol != 1 && c->framing == HX_004_FRAMING_101) {
        return bin_get_many(c, ksid, first, count, keys, len, done, status, msg, msg_len);
    }
    if (c->protocol != 1) {
        /* binary 2.1.1: one request per connection */
        for (; *done < count; (*done)++) {
            if ((e = hx_qkd_get(c, ksid, first + *done, keys + (size_t)*done * len, len, status,
                                msg, msg_len)) != HX_OK ||
                *status != 0) {
                return e;
            }
        }
        return HX_OK;
    }
    if ((e = qconnect(c, &q, msg, msg_len)) != HX_OK) {
        return e;
    }
    if (hx_json_stream_new(&get_reply_limits, &in) != HX_OK) {
        qclose(&q);
        return HX_ERR_NOMEM;
    }
    /* Up to c->pipeline requests in one write, then their replies in order (a KME that reads
     * one message per recv, as the reference's, needs pipeline 1). */
    struct hx_writer w;
    struct hx_004_get_text gt;

    memset(&gt, 0, sizeof(gt));
    uint32_t window = c->pipeline > 0 ? c->pipeline : 1;
    e = HX_OK;
    hx_writer_init_dynamic(&w, 1u << 20);
    while (e == HX_OK && *status == 0 && *done < count) {
        uint32_t n = count - *done < window ? count - *done : window;
        hx_writer_reset(&w);
        for (uint32_t i = 0; i < n && e == HX_OK; i++) {
            e = json_get_request(c, &w, ksid, first + *done + i, &gt);
        }
        if (e == HX_OK && !qwrite(&q, w.data, w.len)) {
            snprintf(msg, msg_len, "QKD source: sending to the KME failed");
            e = HX_ERR_IO;
        }
        /* In order, up to the first failure (the connection then closes with any replies left
         * unread); *done counts the keys fetched. */
        for (uint32_t i = 0; i < n && e == HX_OK && *status == 0; i++) {
            if ((e = json_get_reply(c, &q, in, keys + (size_t)*done * len, len, status, msg,
                                    msg_len)) == HX_OK &&
                *status == 0) {
                (*done)++;
            }
        }
    }
    hx_writer_wipe(&w);
    hx_004_get_text_free(&gt);
    hx_json_stream_free(in);
    qclose(&q);
    return e;
}
