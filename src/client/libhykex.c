/* libhykex: the application side of hykexd's ETSI 004 API (include/hykex/hykex.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/json.h"
#include "common/uuid.h"
#include "hykex/hykex.h"
#include "proto/etsi004.h"

struct hykex {
    int fd;
    struct hx_json_stream *in;
    struct hx_004_get_text get; /* the last GET_KEY's text, for the next one's (index aside) */
    struct hx_writer out;       /* a request's text */
    char message[512];
};

/* Replies carry keys of up to 65535 bytes as JSON numbers: allow for them. */
static const struct hx_json_limits reply_limits = {
    .max_message = 1u << 20, .max_depth = 8, .max_string = 4096, .max_members = 70000};

int hykex_connect(const char *address, struct hykex **out)
{
    struct hykex *h;
    int fd = -1;

    *out = NULL;
    if (address == NULL || strlen(address) > 300) {
        return HYKEX_E_ARG;
    }
    if (address[0] == '/') {
        struct sockaddr_un sa;
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        if (strlen(address) >= sizeof(sa.sun_path)) {
            return HYKEX_E_ARG;
        }
        memcpy(sa.sun_path, address, strlen(address) + 1);
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
            connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            if (fd >= 0) {
                close(fd);
            }
            return HYKEX_E_CONNECT;
        }
    } else {
        char host[300];
        const char *colon = strrchr(address, ':');
        struct addrinfo hints, *res = NULL, *ai;
        size_t hl;
        int one = 1;
        if (colon == NULL || colon == address) {
            return HYKEX_E_ARG;
        }
        hl = (size_t)(colon - address);
        if (address[0] == '[' && hl >= 2 && address[hl - 1] == ']') {
            memcpy(host, address + 1, hl - 2);
            host[hl - 2] = '\0';
        } else {
            memcpy(host, address, hl);
            host[hl] = '\0';
        }
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
            return HYKEX_E_CONNECT;
        }
        for (ai = res; ai != NULL; ai = ai->ai_next) {
            if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0)) < 0) {
                continue;
            }
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                break;
            }
            close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0) {
            return HYKEX_E_CONNECT;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        close(fd);
        return HYKEX_E_ARG;
    }
    h->fd = fd;
    hx_writer_init_dynamic(&h->out, 1u << 20);
    if (hx_json_stream_new(&reply_limits, &h->in) != HX_OK) {
        hykex_disconnect(h);
        return HYKEX_E_ARG;
    }
    *out = h;
    return 0;
}

void hykex_disconnect(struct hykex *h)
{
    if (h == NULL) {
        return;
    }
    close(h->fd);
    hx_json_stream_free(h->in);
    hx_004_get_text_free(&h->get);
    hx_writer_wipe(&h->out);
    free(h);
}

const char *hykex_message(const struct hykex *h)
{
    return h != NULL ? h->message : "";
}

/* Sends one request and frames its reply (text and len valid until the next call on h). */
static int exchange(struct hykex *h, const struct hx_004_request *req, const char **text,
                    size_t *len)
{
    size_t off = 0;
    uint8_t buf[16384];

    h->message[0] = '\0';
    hx_writer_reset(&h->out);
    if (hx_004_json_write_get_request(&h->get, req, &h->out) != HX_OK) {
        return HYKEX_E_ARG;
    }
    while (off < h->out.len) {
        ssize_t w = send(h->fd, h->out.data + off, h->out.len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return HYKEX_E_IO;
        }
        off += (size_t)w;
    }
    for (;;) {
        const char *why;
        hx_err e;
        enum hx_json_event ev = hx_json_stream_next_text(h->in, text, len, &e, &why);
        if (ev == HX_JSON_OBJECT) {
            return 0;
        }
        if (ev == HX_JSON_ERROR) {
            return HYKEX_E_PROTO;
        }
        ssize_t r = recv(h->fd, buf, sizeof(buf), 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return HYKEX_E_IO;
        }
        e = hx_json_stream_feed(h->in, buf, (size_t)r);
        OPENSSL_cleanse(buf, (size_t)r);
        if (e != HX_OK) {
            return HYKEX_E_PROTO;
        }
    }
}

/* The reply exchange framed, parsed with json-c: an object with an integer status. */
static int parsed_reply(struct hykex *h, struct json_object **reply)
{
    struct json_object *st, *m;
    const char *why;
    hx_err e;

    if (hx_json_stream_parse_text(h->in, reply, &e, &why) != HX_JSON_OBJECT) {
        return HYKEX_E_PROTO;
    }
    if (!json_object_object_get_ex(*reply, "status", &st) ||
        !json_object_is_type(st, json_type_int)) {
        json_object_put(*reply);
        *reply = NULL;
        return HYKEX_E_PROTO;
    }
    if (json_object_object_get_ex(*reply, "message", &m)) {
        snprintf(h->message, sizeof(h->message), "%s", json_object_get_string(m));
    }
    return 0;
}

/* Sends one request and reads one reply object. */
static int rpc(struct hykex *h, const struct hx_004_request *req, struct json_object **reply)
{
    const char *text;
    size_t len;
    int rc;

    *reply = NULL;
    if ((rc = exchange(h, req, &text, &len)) != 0) {
        return rc;
    }
    return parsed_reply(h, reply);
}

static uint32_t status_of(struct json_object *o)
{
    struct json_object *st;

    json_object_object_get_ex(o, "status", &st);
    return (uint32_t)json_object_get_int(st);
}

int hykex_open_connect(struct hykex *h, const char *source, const char *destination,
                       struct hykex_qos *qos, char key_stream_id[HYKEX_KSID_LEN + 1],
                       uint32_t *status)
{
    struct hx_004_request req;
    struct json_object *r = NULL, *v, *q;
    int rc;

    if (h == NULL || source == NULL || destination == NULL || qos == NULL ||
        key_stream_id == NULL || status == NULL || strlen(source) > HX_004_MAX_URI ||
        strlen(destination) > HX_004_MAX_URI) {
        return HYKEX_E_ARG;
    }
    memset(&req, 0, sizeof(req));
    req.cmd = HX_004_OPEN_CONNECT;
    memcpy(req.source, source, strlen(source) + 1);
    memcpy(req.destination, destination, strlen(destination) + 1);
    req.qos = *qos;
    if (req.qos.metadata_mimetype[0] == '\0') {
        snprintf(req.qos.metadata_mimetype, sizeof(req.qos.metadata_mimetype), "application/json");
    }
    if (key_stream_id[0] != '\0' &&
        hx_uuid_parse(key_stream_id, strlen(key_stream_id), &req.ksid) != HX_OK) {
        return HYKEX_E_ARG;
    }
    if ((rc = rpc(h, &req, &r)) != 0) {
        return rc;
    }
    *status = status_of(r);
    if (json_object_object_get_ex(r, "key_stream_id", &v) &&
        json_object_get_string_len(v) == HYKEX_KSID_LEN) {
        memcpy(key_stream_id, json_object_get_string(v), HYKEX_KSID_LEN + 1);
    }
    if (json_object_object_get_ex(r, "qos", &q)) {
        struct hx_004_request back;
        char why[200];
        struct json_object *wrap = json_object_new_object(), *data = json_object_new_object();
        json_object_object_add(wrap, "command", json_object_new_string("OPEN_CONNECT"));
        json_object_object_add(data, "source", json_object_new_string("x"));
        json_object_object_add(data, "destination", json_object_new_string("x"));
        json_object_object_add(data, "qos", json_object_get(q));
        json_object_object_add(wrap, "data", data);
        if (hx_004_json_decode_request(wrap, &back, why, sizeof(why)) == HX_OK) {
            *qos = back.qos;
        }
        json_object_put(wrap);
    }
    json_object_put(r);
    return 0;
}

int hykex_get_key(struct hykex *h, const char *key_stream_id, uint32_t *index, uint8_t *key,
                  size_t *key_len, char *metadata, size_t metadata_cap, uint32_t *status)
{
    struct hx_004_request req;
    struct json_object *r = NULL, *kb, *v;
    int rc;

    if (h == NULL || key_stream_id == NULL || key == NULL || key_len == NULL || status == NULL) {
        return HYKEX_E_ARG;
    }
    memset(&req, 0, sizeof(req));
    req.cmd = HX_004_GET_KEY;
    if (hx_uuid_parse(key_stream_id, strlen(key_stream_id), &req.ksid) != HX_OK) {
        return HYKEX_E_ARG;
    }
    if (index != NULL) {
        req.has_index = true;
        req.index = *index;
    }
    req.metadata_size = metadata != NULL && metadata_cap > 0 ? (uint32_t)metadata_cap : 0;
    const char *text;
    size_t text_len;
    if ((rc = exchange(h, &req, &text, &text_len)) != 0) {
        return rc;
    }
    /* A plain reply with a key that fits and no metadata asked for: read without a tree. */
    struct hx_004_key_reply fr = {
        .key = key, .key_cap = *key_len, .message = h->message, .message_cap = sizeof(h->message)};
    if ((metadata == NULL || metadata_cap == 0) &&
        hx_004_fast_key_reply(text, text_len, &reply_limits, &fr) && fr.status == 0 && fr.has_key) {
        *status = 0;
        *key_len = fr.key_len;
        if (index != NULL && fr.has_index) {
            *index = (uint32_t)fr.index;
        }
        return 0;
    }
    OPENSSL_cleanse(key, *key_len);
    h->message[0] = '\0';
    if ((rc = parsed_reply(h, &r)) != 0) {
        return rc;
    }
    *status = status_of(r);
    if (*status == 0) {
        if (!json_object_object_get_ex(r, "key_buffer", &kb) ||
            !json_object_is_type(kb, json_type_array)) {
            json_object_put(r);
            return HYKEX_E_PROTO;
        }
        size_t n = json_object_array_length(kb);
        if (n > *key_len) {
            json_object_put(r);
            return HYKEX_E_SPACE;
        }
        for (size_t i = 0; i < n; i++) {
            key[i] = (uint8_t)json_object_get_int(json_object_array_get_idx(kb, i));
        }
        *key_len = n;
        if (index != NULL && json_object_object_get_ex(r, "index", &v)) {
            *index = (uint32_t)json_object_get_int64(v);
        }
        if (metadata != NULL && metadata_cap > 0) {
            metadata[0] = '\0';
            if (json_object_object_get_ex(r, "metadata", &v)) {
                snprintf(metadata, metadata_cap, "%s",
                         json_object_to_json_string_ext(v, JSON_C_TO_STRING_SPACED));
            }
        }
    }
    /* The reply held the key: wipe json-c's copy of the numbers before it frees them. */
    hx_json_wipe(r);
    json_object_put(r);
    return 0;
}

int hykex_close(struct hykex *h, const char *key_stream_id, uint32_t *status)
{
    struct hx_004_request req;
    struct json_object *r = NULL;
    int rc;

    if (h == NULL || key_stream_id == NULL || status == NULL) {
        return HYKEX_E_ARG;
    }
    memset(&req, 0, sizeof(req));
    req.cmd = HX_004_CLOSE;
    if (hx_uuid_parse(key_stream_id, strlen(key_stream_id), &req.ksid) != HX_OK) {
        return HYKEX_E_ARG;
    }
    if ((rc = rpc(h, &req, &r)) != 0) {
        return rc;
    }
    *status = status_of(r);
    json_object_put(r);
    return 0;
}

int hykex_raw_call(struct hykex *h, const char *request_json, char **reply)
{
    struct json_object *o = NULL, *r = NULL;
    struct hx_004_request req;
    char why[256];
    int rc;

    *reply = NULL;
    if (h == NULL || request_json == NULL ||
        hx_json_parse_object(request_json, strlen(request_json), NULL, &o, why, sizeof(why)) !=
            HX_OK ||
        hx_004_json_decode_request(o, &req, why, sizeof(why)) != HX_OK) {
        json_object_put(o);
        return HYKEX_E_ARG;
    }
    json_object_put(o);
    if ((rc = rpc(h, &req, &r)) != 0) {
        return rc;
    }
    *reply = strdup(json_object_to_json_string_ext(
        r, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(r);
    return *reply != NULL ? 0 : HYKEX_E_ARG;
}
