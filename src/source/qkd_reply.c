/*
 * A JSON-dialect KME's replies, checked strictly (source/qkd.c calls these; the tests call the
 * hx_qkd_parse_* wrappers in qkd.h with text). Fail closed: nothing is coerced.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/json.h"
#include "proto/etsi004.h"
#include "source/qkd.h"
#include "source/qkd_int.h"

uint32_t hx_qkd_reply_status(struct json_object *o, char *msg, size_t msg_len)
{
    struct json_object *s, *m;

    if (!json_object_object_get_ex(o, "status", &s) || !json_object_is_type(s, json_type_int)) {
        snprintf(msg, msg_len, "QKD source: the KME's reply has no integer status");
        return HYKEX_STATUS_NO_QKD_CONNECTION;
    }
    if (json_object_get_int(s) != 0 && json_object_object_get_ex(o, "message", &m)) {
        snprintf(msg, msg_len, "QKD source: %s", json_object_get_string(m));
    }
    return (uint32_t)json_object_get_int(s);
}

static const char *json_type_word(struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
        return "a number with a fraction";
    case json_type_string:
        return "a string";
    case json_type_array:
        return "an array";
    case json_type_object:
        return "an object";
    default:
        return "an integer";
    }
}

/*
 * A GET_KEY reply's status, and its key_buffer into key. Strict (fail closed): an array of
 * exactly len elements, each a JSON integer 0..255; nothing is coerced. kme names the KME in
 * the message.
 */
uint32_t hx_qkd_key_from_reply(struct json_object *o, const char *kme, uint8_t *key, size_t len,
                               char *msg, size_t msg_len)
{
    struct json_object *kb;
    uint32_t status = hx_qkd_reply_status(o, msg, msg_len);

    if (status != 0) {
        return status;
    }
    if (!json_object_object_get_ex(o, "key_buffer", &kb) ||
        !json_object_is_type(kb, json_type_array)) {
        snprintf(msg, msg_len, "QKD source: KME %s: reply without a key_buffer array", kme);
        return HYKEX_STATUS_NO_QKD_CONNECTION;
    }
    if (json_object_array_length(kb) != len) {
        snprintf(msg, msg_len, "QKD source: KME %s: key_buffer of %zu bytes, asked for %zu", kme,
                 json_object_array_length(kb), len);
        hx_json_wipe(kb);
        return HYKEX_STATUS_NO_QKD_CONNECTION;
    }
    for (size_t i = 0; i < len; i++) {
        struct json_object *el = json_object_array_get_idx(kb, i);
        int64_t v = json_object_is_type(el, json_type_int) ? json_object_get_int64(el) : -1;
        if (v < 0 || v > 255) {
            snprintf(msg, msg_len,
                     "QKD source: KME %s: key_buffer element %zu is %s, not an "
                     "integer 0..255: reply refused",
                     kme, i,
                     json_object_is_type(el, json_type_int) ? "out of range" : json_type_word(el));
            status = HYKEX_STATUS_NO_QKD_CONNECTION;
            break;
        }
        key[i] = (uint8_t)v;
    }
    if (status != 0) {
        OPENSSL_cleanse(key, len);
    }
    hx_json_wipe(kb); /* the key's copy in json-c's objects, before they are freed */
    return status;
}

/* A KME's JSON reply text as one object within lim (msg cleared, or naming the fault). */
static hx_err parse_reply(const char *json, size_t json_len, const struct hx_json_limits *lim,
                          const char *kme, struct json_object **o, char *msg, size_t msg_len)
{
    char why[200];

    msg[0] = '\0';
    if (hx_json_parse_object(json, json_len, lim, o, why, sizeof(why)) != HX_OK) {
        snprintf(msg, msg_len, "QKD source: KME %s: malformed reply: %s", kme, why);
        return HX_ERR_PROTO;
    }
    return HX_OK;
}

hx_err hx_qkd_parse_key_reply(const char *json, size_t json_len, const char *kme, uint8_t *key,
                              size_t len, uint32_t *status, char *msg, size_t msg_len)
{
    static const struct hx_json_limits lim = {
        .max_message = 1u << 20, .max_depth = 8, .max_string = 4096, .max_members = 70000};
    struct json_object *o = NULL;

    if (parse_reply(json, json_len, &lim, kme, &o, msg, msg_len) != HX_OK) {
        return HX_ERR_PROTO;
    }
    *status = hx_qkd_key_from_reply(o, kme, key, len, msg, msg_len);
    json_object_put(o);
    return HX_OK;
}

/* The qos object of a JSON OPEN_CONNECT reply (a counter-proposal): its integer fields. */
static void qos_from_reply(struct json_object *o, struct hykex_qos *qos)
{
    const struct hx_004_qos_field *f = hx_004_qos_fields;
    struct json_object *q, *v;

    if (!json_object_object_get_ex(o, "qos", &q) || !json_object_is_type(q, json_type_object)) {
        return;
    }
    for (size_t i = 0; i < HX_004_QOS_INT_FIELDS; i++) {
        if (json_object_object_get_ex(q, f[i].name, &v) && json_object_is_type(v, json_type_int) &&
            json_object_get_int64(v) >= 0 && json_object_get_int64(v) <= UINT32_MAX) {
            *(uint32_t *)((char *)qos + f[i].off) = (uint32_t)json_object_get_int64(v);
        }
    }
}

uint32_t hx_qkd_open_from_reply(struct json_object *o, const char *kme, struct hykex_qos *qos,
                                struct hx_qkd_ksid *ksid, char *msg, size_t msg_len)
{
    struct json_object *id;
    uint32_t status = hx_qkd_reply_status(o, msg, msg_len);

    if (status == HYKEX_STATUS_QOS_NOT_MET) {
        qos_from_reply(o, qos);
    }
    /* A JSON-dialect KME's id is opaque: kept as given if bounded and printable. */
    if (status <= 1 && json_object_object_get_ex(o, "key_stream_id", &id)) {
        char why[120];
        struct hx_qkd_ksid got;
        if (!json_object_is_type(id, json_type_string)) {
            snprintf(msg, msg_len,
                     "QKD source: KME %s returned a key_stream_id that is %s, not a "
                     "string",
                     kme, json_object_is_type(id, json_type_null) ? "null" : "no string");
            return HYKEX_STATUS_NO_QKD_CONNECTION;
        }
        if (hx_qkd_ksid_set(&got, json_object_get_string(id),
                            (size_t)json_object_get_string_len(id), why, sizeof(why)) != HX_OK) {
            snprintf(msg, msg_len, "QKD source: KME %s returned a malformed %s", kme, why);
            return HYKEX_STATUS_NO_QKD_CONNECTION;
        }
        *ksid = got;
    }
    return status;
}

hx_err hx_qkd_parse_open_reply(const char *json, size_t json_len, const char *kme,
                               struct hykex_qos *qos, struct hx_qkd_ksid *ksid, uint32_t *status,
                               char *msg, size_t msg_len)
{
    static const struct hx_json_limits lim = {
        .max_message = 1u << 16, .max_depth = 8, .max_string = 4096, .max_members = 64};
    struct json_object *o = NULL;

    if (parse_reply(json, json_len, &lim, kme, &o, msg, msg_len) != HX_OK) {
        return HX_ERR_PROTO;
    }
    *status = hx_qkd_open_from_reply(o, kme, qos, ksid, msg, msg_len);
    json_object_put(o);
    return HX_OK;
}
