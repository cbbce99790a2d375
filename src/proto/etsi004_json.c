#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/etsi004.h"

#include "common/json.h"

const char *hx_004_command_name(enum hx_004_command cmd)
{
    switch (cmd) {
    case HX_004_OPEN_CONNECT:
        return "OPEN_CONNECT";
    case HX_004_GET_KEY:
        return "GET_KEY";
    case HX_004_CLOSE:
        return "CLOSE";
    case HX_004_STATUS:
        return "STATUS";
    case HX_004_RELOAD:
        return "RELOAD";
    }
    return "?";
}

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

static hx_err get_u32(struct json_object *v, const char *name, uint32_t *out, char *why,
                      size_t why_len)
{
    int64_t i;

    if (!json_object_is_type(v, json_type_int)) {
        return fail(why, why_len, HX_ERR_BAD_TYPE,
                    "%s: expected an integer from 0 to 4294967295, got %s", name,
                    json_type_to_name(json_object_get_type(v)));
    }
    i = json_object_get_int64(v);
    if (i < 0 || i > (int64_t)UINT32_MAX) {
        return fail(why, why_len, HX_ERR_BAD_VALUE, "%s: %s is outside 0..4294967295", name,
                    json_object_get_string(v));
    }
    *out = (uint32_t)i;
    return HX_OK;
}

static hx_err get_string(struct json_object *v, const char *name, char *out, size_t cap, char *why,
                         size_t why_len)
{
    size_t len;

    if (!json_object_is_type(v, json_type_string)) {
        return fail(why, why_len, HX_ERR_BAD_TYPE, "%s: expected a string, got %s", name,
                    json_type_to_name(json_object_get_type(v)));
    }
    len = (size_t)json_object_get_string_len(v);
    if (len >= cap) {
        return fail(why, why_len, HX_ERR_TOO_LARGE, "%s: longer than %zu bytes", name, cap - 1);
    }
    memcpy(out, json_object_get_string(v), len + 1);
    return HX_OK;
}

static hx_err get_ksid(struct json_object *v, bool null_ok, bool opaque_ok, struct hx_uuid *out,
                       struct hx_qkd_ksid *text, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    memset(text, 0, sizeof(*text));
    if (v == NULL || json_object_is_type(v, json_type_null) ||
        (json_object_is_type(v, json_type_string) && json_object_get_string_len(v) == 0)) {
        if (null_ok) {
            return HX_OK;
        }
        return fail(why, why_len, HX_ERR_MISSING_FIELD, "data.key_stream_id: required");
    }
    if (!json_object_is_type(v, json_type_string)) {
        return fail(why, why_len, HX_ERR_BAD_TYPE,
                    "data.key_stream_id: expected a UUID string, got %s",
                    json_type_to_name(json_object_get_type(v)));
    }
    if (hx_uuid_parse(json_object_get_string(v), (size_t)json_object_get_string_len(v), out) !=
        HX_OK) {
        if (opaque_ok) {
            char w[120];
            hx_err e = hx_qkd_ksid_set(text, json_object_get_string(v),
                                       (size_t)json_object_get_string_len(v), w, sizeof(w));
            return e == HX_OK ? HX_OK : fail(why, why_len, e, "data.%s", w);
        }
        return fail(why, why_len, HX_ERR_BAD_UUID,
                    "data.key_stream_id: not a UUID (8-4-4-4-12 hex digits)");
    }
    return HX_OK;
}

const struct hx_004_qos_field hx_004_qos_fields[HX_004_QOS_INT_FIELDS] = {
    {"key_chunk_size", offsetof(struct hykex_qos, key_chunk_size)},
    {"max_bps", offsetof(struct hykex_qos, max_bps)},
    {"min_bps", offsetof(struct hykex_qos, min_bps)},
    {"jitter", offsetof(struct hykex_qos, jitter)},
    {"priority", offsetof(struct hykex_qos, priority)},
    {"timeout", offsetof(struct hykex_qos, timeout_ms)},
    {"ttl", offsetof(struct hykex_qos, ttl_s)},
};

static hx_err decode_qos(struct json_object *q, struct hykex_qos *qos, char *why, size_t why_len)
{
    const struct hx_004_qos_field *fields = hx_004_qos_fields;
    char name[64];
    hx_err e;

    if (!json_object_is_type(q, json_type_object)) {
        return fail(why, why_len, HX_ERR_BAD_TYPE, "data.qos: expected an object, got %s",
                    json_type_to_name(json_object_get_type(q)));
    }
    json_object_object_foreach (q, key, val) {
        size_t i;
        snprintf(name, sizeof(name), "data.qos.%.40s", key);
        if (strcmp(key, "metadata_mimetype") == 0) {
            if ((e = get_string(val, name, qos->metadata_mimetype, sizeof(qos->metadata_mimetype),
                                why, why_len)) != HX_OK) {
                return e;
            }
            continue;
        }
        for (i = 0; i < HX_004_QOS_INT_FIELDS; i++) {
            if (strcmp(key, fields[i].name) == 0) {
                if ((e = get_u32(val, name, (uint32_t *)((char *)qos + fields[i].off), why,
                                 why_len)) != HX_OK) {
                    return e;
                }
                break;
            }
        }
        if (i == HX_004_QOS_INT_FIELDS) {
            return fail(why, why_len, HX_ERR_UNKNOWN_FIELD, "%s: unknown QoS field", name);
        }
    }
    return HX_OK;
}

hx_err hx_004_json_decode_request(struct json_object *o, struct hx_004_request *req, char *why,
                                  size_t why_len)
{
    return hx_004_json_decode_request_ex(o, req, false, why, why_len);
}

hx_err hx_004_json_decode_request_ex(struct json_object *o, struct hx_004_request *req,
                                     bool opaque_ids, char *why, size_t why_len)
{
    struct json_object *cmd = NULL, *data = NULL, *ksid = NULL, *meta = NULL;
    const char *c;
    hx_err e;

    memset(req, 0, sizeof(*req));
    snprintf(req->qos.metadata_mimetype, sizeof(req->qos.metadata_mimetype), "application/json");
    json_object_object_foreach (o, key, val) {
        if (strcmp(key, "command") == 0) {
            cmd = val;
        } else if (strcmp(key, "data") == 0) {
            data = val;
        } else {
            return fail(why, why_len, HX_ERR_UNKNOWN_FIELD, "%.40s: unknown field (command, data)",
                        key);
        }
    }
    if (cmd == NULL || !json_object_is_type(cmd, json_type_string)) {
        return fail(why, why_len, cmd == NULL ? HX_ERR_MISSING_FIELD : HX_ERR_BAD_TYPE,
                    "command: expected \"OPEN_CONNECT\", \"GET_KEY\" or \"CLOSE\"");
    }
    c = json_object_get_string(cmd);
    if (strcmp(c, "OPEN_CONNECT") == 0) {
        req->cmd = HX_004_OPEN_CONNECT;
    } else if (strcmp(c, "GET_KEY") == 0) {
        req->cmd = HX_004_GET_KEY;
    } else if (strcmp(c, "CLOSE") == 0) {
        req->cmd = HX_004_CLOSE;
    } else if (strcmp(c, "STATUS") == 0) {
        req->cmd = HX_004_STATUS;
        return HX_OK; /* no data */
    } else if (strcmp(c, "RELOAD") == 0) {
        req->cmd = HX_004_RELOAD;
        return HX_OK; /* no data */
    } else {
        return fail(why, why_len, HX_ERR_UNSUPPORTED,
                    "command: unknown command (OPEN_CONNECT, GET_KEY, CLOSE)");
    }
    if (data == NULL || !json_object_is_type(data, json_type_object)) {
        return fail(why, why_len, data == NULL ? HX_ERR_MISSING_FIELD : HX_ERR_BAD_TYPE,
                    "data: expected an object");
    }
    bool have_src = false, have_dst = false;
    json_object_object_foreach (data, k, v) {
        char name[64];
        snprintf(name, sizeof(name), "data.%.40s", k);
        if (req->cmd == HX_004_OPEN_CONNECT && strcmp(k, "source") == 0) {
            e = get_string(v, name, req->source, sizeof(req->source), why, why_len);
            have_src = true;
        } else if (req->cmd == HX_004_OPEN_CONNECT && strcmp(k, "destination") == 0) {
            e = get_string(v, name, req->destination, sizeof(req->destination), why, why_len);
            have_dst = true;
        } else if (req->cmd == HX_004_OPEN_CONNECT && strcmp(k, "qos") == 0) {
            e = decode_qos(v, &req->qos, why, why_len);
        } else if (strcmp(k, "key_stream_id") == 0) {
            ksid = v;
            e = HX_OK;
        } else if (req->cmd == HX_004_GET_KEY && strcmp(k, "index") == 0) {
            e = get_u32(v, name, &req->index, why, why_len);
            req->has_index = true;
        } else if (req->cmd == HX_004_GET_KEY && strcmp(k, "metadata") == 0) {
            meta = v;
            e = HX_OK;
        } else {
            return fail(why, why_len, HX_ERR_UNKNOWN_FIELD, "%s: unknown field for %s", name, c);
        }
        if (e != HX_OK) {
            return e;
        }
    }
    if (req->cmd == HX_004_OPEN_CONNECT && (!have_src || !have_dst)) {
        return fail(why, why_len, HX_ERR_MISSING_FIELD, "data.%s: required",
                    have_src ? "destination" : "source");
    }
    if ((e = get_ksid(ksid, req->cmd == HX_004_OPEN_CONNECT, opaque_ids, &req->ksid,
                      &req->ksid_text, why, why_len)) != HX_OK) {
        return e;
    }
    if (meta != NULL) {
        struct json_object *size;
        if (!json_object_is_type(meta, json_type_object)) {
            return fail(why, why_len, HX_ERR_BAD_TYPE, "data.metadata: expected an object");
        }
        json_object_object_foreach (meta, mk, mv) {
            if (strcmp(mk, "size") != 0 && strcmp(mk, "buffer") != 0) {
                return fail(why, why_len, HX_ERR_UNKNOWN_FIELD,
                            "data.metadata.%.40s: unknown field (size, buffer)", mk);
            }
            (void)mv;
        }
        if (json_object_object_get_ex(meta, "size", &size) &&
            (e = get_u32(size, "data.metadata.size", &req->metadata_size, why, why_len)) != HX_OK) {
            return e;
        }
    }
    return HX_OK;
}

enum hx_004_next hx_004_json_next_request(struct hx_json_stream *s,
                                          const struct hx_json_limits *lim, bool opaque_ids,
                                          struct hx_004_request *req, const char **why, char *msg,
                                          size_t msg_len)
{
    const char *text;
    size_t len;
    struct json_object *o = NULL;
    hx_err e;
    enum hx_json_event ev = hx_json_stream_next_text(s, &text, &len, &e, why);
    enum hx_004_next next;

    if (ev == HX_JSON_NEED_MORE) {
        return HX_004_NEED_MORE;
    }
    /* A plain GET_KEY without a tree; every other message through json-c. */
    if (ev == HX_JSON_OBJECT && hx_004_fast_get_request(text, len, lim, req)) {
        return HX_004_REQUEST;
    }
    if (ev == HX_JSON_OBJECT) {
        ev = hx_json_stream_parse_text(s, &o, &e, why);
    }
    next = ev != HX_JSON_OBJECT ? HX_004_MALFORMED
           : hx_004_json_decode_request_ex(o, req, opaque_ids, msg, msg_len) != HX_OK
               ? HX_004_INVALID
               : HX_004_REQUEST;
    json_object_put(o);
    return next;
}

struct json_object *hx_004_json_status(int status, const char *message)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "status", json_object_new_int(status));
    if (status != 0 && message != NULL && message[0] != '\0') {
        json_object_object_add(o, "message", json_object_new_string(message));
    }
    return o;
}

struct json_object *hx_004_json_qos(const struct hykex_qos *q)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "key_chunk_size", json_object_new_int64(q->key_chunk_size));
    json_object_object_add(o, "max_bps", json_object_new_int64(q->max_bps));
    json_object_object_add(o, "min_bps", json_object_new_int64(q->min_bps));
    json_object_object_add(o, "jitter", json_object_new_int64(q->jitter));
    json_object_object_add(o, "priority", json_object_new_int64(q->priority));
    json_object_object_add(o, "timeout", json_object_new_int64(q->timeout_ms));
    json_object_object_add(o, "ttl", json_object_new_int64(q->ttl_s));
    json_object_object_add(o, "metadata_mimetype", json_object_new_string(q->metadata_mimetype));
    return o;
}

struct json_object *hx_004_json_encode_request(const struct hx_004_request *req)
{
    struct json_object *o = json_object_new_object(), *d = json_object_new_object(), *q;
    char id[HX_UUID_STR_LEN + 1];

    json_object_object_add(o, "command", json_object_new_string(hx_004_command_name(req->cmd)));
    if (req->cmd == HX_004_OPEN_CONNECT) {
        json_object_object_add(d, "source", json_object_new_string(req->source));
        json_object_object_add(d, "destination", json_object_new_string(req->destination));
        q = hx_004_json_qos(&req->qos);
        json_object_object_add(d, "qos", q);
        if (!hx_qkd_ksid_is_none(&req->ksid_text)) {
            json_object_object_add(d, "key_stream_id", json_object_new_string(req->ksid_text.s));
        } else if (!hx_uuid_is_nil(&req->ksid)) {
            hx_uuid_format(&req->ksid, id);
            json_object_object_add(d, "key_stream_id", json_object_new_string(id));
        }
    } else if (req->cmd != HX_004_STATUS && req->cmd != HX_004_RELOAD) {
        hx_uuid_format(&req->ksid, id);
        json_object_object_add(
            d, "key_stream_id",
            json_object_new_string(hx_qkd_ksid_is_none(&req->ksid_text) ? id : req->ksid_text.s));
        if (req->cmd == HX_004_GET_KEY && req->has_index) {
            json_object_object_add(d, "index", json_object_new_int64(req->index));
        }
        if (req->cmd == HX_004_GET_KEY && req->metadata_size > 0) {
            struct json_object *m = json_object_new_object();
            json_object_object_add(m, "size", json_object_new_int64(req->metadata_size));
            json_object_object_add(m, "buffer", json_object_new_string(""));
            json_object_object_add(d, "metadata", m);
        }
    }
    json_object_object_add(o, "data", d);
    return o;
}

hx_err hx_004_json_write_key_reply(struct hx_writer *w, const uint8_t *key, size_t key_len,
                                   uint64_t index, const char *meta, bool spaced)
{
    const char *head =
        spaced ? "{\"status\": 0, \"key_buffer\": " : "{\"status\":0,\"key_buffer\":";
    char tail[64];
    int n = snprintf(tail, sizeof(tail),
                     spaced ? ", \"index\": %" PRIu64 ", \"metadata\": "
                            : ",\"index\":%" PRIu64 ",\"metadata\":",
                     index);
    hx_err e;

    if ((e = hx_write_bytes(w, head, strlen(head))) != HX_OK ||
        (e = hx_json_write_key_array(w, key, key_len, spaced ? ", " : ",")) != HX_OK ||
        (e = hx_write_bytes(w, tail, (size_t)n)) != HX_OK ||
        (e = hx_write_bytes(w, meta, strlen(meta))) != HX_OK) {
        return e;
    }
    return hx_write_u8(w, '}');
}

/* Two GET_KEY requests whose text differs at most in the index: every member the encoder
 * writes for a GET_KEY but the index. */
static bool same_but_index(const struct hx_004_request *a, const struct hx_004_request *b)
{
    return a->cmd == HX_004_GET_KEY && b->cmd == HX_004_GET_KEY && a->has_index == b->has_index &&
           a->metadata_size == b->metadata_size && hx_uuid_equal(&a->ksid, &b->ksid) &&
           strcmp(a->ksid_text.s, b->ksid_text.s) == 0;
}

hx_err hx_004_json_write_get_request(struct hx_004_get_text *t, const struct hx_004_request *req,
                                     struct hx_writer *w)
{
    static const char key[] = "\"index\": ";
    struct json_object *o;
    const char *text, *at;
    char num[16];
    int n = snprintf(num, sizeof(num), "%" PRIu32, req->index);
    hx_err e;

    if (t->text != NULL && req->cmd == HX_004_GET_KEY && req->has_index &&
        same_but_index(&t->req, req)) {
        if ((e = hx_write_bytes(w, t->text, t->digits)) != HX_OK ||
            (e = hx_write_bytes(w, num, (size_t)n)) != HX_OK) {
            return e;
        }
        return hx_write_bytes(w, t->text + t->after, t->len - t->after);
    }
    if ((o = hx_004_json_encode_request(req)) == NULL) {
        return HX_ERR_NOMEM;
    }
    text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED);
    hx_004_get_text_free(t);
    /* Kept when the index's digits follow the one key "index" json-c wrote: that key with its
     * closing quote cannot occur inside a string, where every quote is escaped. */
    if (req->cmd == HX_004_GET_KEY && req->has_index && (at = strstr(text, key)) != NULL &&
        strstr(at + 1, key) == NULL && strncmp(at + sizeof(key) - 1, num, (size_t)n) == 0 &&
        (at[sizeof(key) - 1 + (size_t)n] == ',' || at[sizeof(key) - 1 + (size_t)n] == ' ' ||
         at[sizeof(key) - 1 + (size_t)n] == '}') &&
        (t->text = strdup(text)) != NULL) {
        t->req = *req;
        t->len = strlen(text);
        t->digits = (size_t)(at - text) + sizeof(key) - 1;
        t->after = t->digits + (size_t)n;
    }
    e = hx_write_bytes(w, text, strlen(text));
    json_object_put(o);
    return e;
}

void hx_004_get_text_free(struct hx_004_get_text *t)
{
    free(t->text);
    memset(t, 0, sizeof(*t));
}
