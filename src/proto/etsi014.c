/* ETSI GS QKD 014 requests and replies (etsi014.h). */
#include "proto/etsi014.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "common/json.h"

#define MAX_NUMBER (1L << 30)

static const struct hx_json_limits body_limits = {
    .max_message = HX_014_MAX_BODY, .max_depth = 4, .max_string = 1024, .max_members = 2048};

/* Text without its NUL (hx_write_cstr writes one). */
static hx_err put(struct hx_writer *w, const char *s)
{
    return hx_write_bytes(w, s, strlen(s));
}

static hx_err problem(struct hx_014_problem *p, hx_err e, const char *msg, const char *detail)
{
    snprintf(p->msg, sizeof(p->msg), "%s", msg);
    snprintf(p->detail, sizeof(p->detail), "%s", detail != NULL ? detail : "");
    return e;
}

bool hx_014_sae_id_ok(const char *id, size_t len)
{
    if (len == 0 || len > HX_014_MAX_SAE_ID) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '%') {
            return false;
        }
    }
    return true;
}

/* A decimal number 0..MAX_NUMBER, digits only. */
static bool parse_number(const char *s, uint32_t *out)
{
    char *end;
    long v;

    if (s == NULL || *s < '0' || *s > '9' || strlen(s) > 10) {
        return false;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > MAX_NUMBER) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool json_number(struct json_object *v, uint32_t *out)
{
    int64_t x;

    if (!json_object_is_type(v, json_type_int)) {
        return false;
    }
    x = json_object_get_int64(v);
    if (x < 0 || x > MAX_NUMBER) {
        return false;
    }
    *out = (uint32_t)x;
    return true;
}

hx_err hx_014_parse_key_req(const char *body, size_t len, struct hx_014_key_req *out,
                            struct hx_014_problem *prob)
{
    struct json_object *o = NULL;
    char why[200];
    hx_err e;

    memset(out, 0, sizeof(*out));
    if (len > HX_014_MAX_BODY) {
        return problem(prob, HX_ERR_TOO_LARGE, "request body too large", "at most 64 KiB");
    }
    if ((e = hx_json_parse_object(body, len, &body_limits, &o, why, sizeof(why))) != HX_OK) {
        return problem(prob, e, "request body is not a JSON object", why);
    }
    e = HX_OK;
    json_object_object_foreach (o, k, v) {
        if (strcmp(k, "number") == 0 || strcmp(k, "size") == 0) {
            if (!json_number(v, k[0] == 'n' ? &out->number : &out->size_bits)) {
                e = problem(prob, HX_ERR_BAD_VALUE, "number and size must be integers 0..2^30", k);
                break;
            }
        } else if (strcmp(k, "additional_slave_SAE_IDs") == 0) {
            if (!json_object_is_type(v, json_type_array)) {
                e = problem(prob, HX_ERR_BAD_TYPE, "additional_slave_SAE_IDs must be a list", k);
                break;
            }
            for (size_t i = 0; i < json_object_array_length(v); i++) {
                struct json_object *s = json_object_array_get_idx(v, i);
                if (!json_object_is_type(s, json_type_string) ||
                    json_object_get_string_len(s) == 0 ||
                    json_object_get_string_len(s) > HX_014_MAX_SAE_ID) {
                    e = problem(prob, HX_ERR_BAD_TYPE,
                                "additional_slave_SAE_IDs must list SAE ids (strings of 1..64 "
                                "bytes)",
                                k);
                    break;
                }
            }
            out->n_additional_slaves = json_object_array_length(v);
        } else if (strcmp(k, "extension_mandatory") == 0) {
            if (!json_object_is_type(v, json_type_array)) {
                e = problem(prob, HX_ERR_BAD_TYPE, "extension_mandatory must be a list", k);
                break;
            }
            out->extension_mandatory = json_object_array_length(v) > 0;
        } else if (strcmp(k, "extension_optional") == 0) {
            if (!json_object_is_type(v, json_type_array)) {
                e = problem(prob, HX_ERR_BAD_TYPE, "extension_optional must be a list", k);
                break;
            }
        } else {
            e = problem(prob, HX_ERR_UNKNOWN_FIELD, "unknown field in the key request", k);
            break;
        }
        if (e != HX_OK) {
            break;
        }
    }
    json_object_put(o);
    return e;
}

hx_err hx_014_parse_key_query(const struct hx_014_param *params, size_t n_params,
                              struct hx_014_key_req *out, struct hx_014_problem *prob)
{
    bool have_number = false, have_size = false;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n_params; i++) {
        const char *k = params[i].key, *v = params[i].value;
        bool *have;
        uint32_t *dst;
        if (strcmp(k, "number") == 0) {
            have = &have_number;
            dst = &out->number;
        } else if (strcmp(k, "size") == 0) {
            have = &have_size;
            dst = &out->size_bits;
        } else {
            return problem(prob, HX_ERR_UNKNOWN_FIELD,
                           "enc_keys by GET takes only number and size (POST for the rest)", k);
        }
        if (*have) {
            return problem(prob, HX_ERR_BAD_VALUE, "parameter given twice", k);
        }
        if (!parse_number(v, dst)) {
            return problem(prob, HX_ERR_BAD_VALUE, "number and size must be integers 0..2^30", k);
        }
        *have = true;
    }
    return HX_OK;
}

hx_err hx_014_parse_key_ids(const char *body, size_t len, struct hx_uuid *ids, size_t cap,
                            size_t *n, struct hx_014_problem *prob)
{
    struct json_object *o = NULL, *list;
    char why[200];
    hx_err e;

    *n = 0;
    if (len > HX_014_MAX_BODY) {
        return problem(prob, HX_ERR_TOO_LARGE, "request body too large", "at most 64 KiB");
    }
    if ((e = hx_json_parse_object(body, len, &body_limits, &o, why, sizeof(why))) != HX_OK) {
        return problem(prob, e, "request body is not a JSON object", why);
    }
    e = HX_OK;
    json_object_object_foreach (o, k, v) {
        (void)v;
        if (strcmp(k, "key_IDs") != 0 && strcmp(k, "key_IDs_extension") != 0) {
            e = problem(prob, HX_ERR_UNKNOWN_FIELD, "unknown field in the key IDs request", k);
            goto out;
        }
    }
    if (!json_object_object_get_ex(o, "key_IDs", &list) ||
        !json_object_is_type(list, json_type_array) || json_object_array_length(list) == 0) {
        e = problem(prob, HX_ERR_MISSING_FIELD, "key_IDs must be a non-empty list", "key_IDs");
        goto out;
    }
    if (json_object_array_length(list) > cap) {
        char d[64];
        snprintf(d, sizeof(d), "at most %zu key IDs per request", cap);
        e = problem(prob, HX_ERR_TOO_LARGE, "too many key IDs", d);
        goto out;
    }
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        struct json_object *entry = json_object_array_get_idx(list, i), *id = NULL;
        if (!json_object_is_type(entry, json_type_object)) {
            e = problem(prob, HX_ERR_BAD_TYPE, "each key_IDs element must be an object", "key_IDs");
            goto out;
        }
        json_object_object_foreach (entry, ek, ev) {
            if (strcmp(ek, "key_ID") == 0) {
                id = ev;
            } else if (strcmp(ek, "master_SAE_ID") != 0 && strcmp(ek, "key_ID_extension") != 0) {
                e = problem(prob, HX_ERR_UNKNOWN_FIELD, "unknown field in a key_IDs element", ek);
                goto out;
            }
        }
        if (id == NULL || !json_object_is_type(id, json_type_string) ||
            hx_uuid_parse(json_object_get_string(id), (size_t)json_object_get_string_len(id),
                          &ids[i]) != HX_OK) {
            e = problem(prob, HX_ERR_BAD_UUID, "each key_IDs element needs a key_ID UUID",
                        "key_ID");
            goto out;
        }
        *n = i + 1;
    }
out:
    json_object_put(o);
    if (e != HX_OK) {
        *n = 0;
    }
    return e;
}

hx_err hx_014_parse_key_id_query(const struct hx_014_param *params, size_t n_params,
                                 struct hx_uuid *ids, size_t cap, size_t *n,
                                 struct hx_014_problem *prob)
{
    *n = 0;
    for (size_t i = 0; i < n_params; i++) {
        if (strcmp(params[i].key, "key_ID") != 0) {
            return problem(prob, HX_ERR_UNKNOWN_FIELD, "dec_keys by GET takes only key_ID",
                           params[i].key);
        }
        if (*n == cap) {
            *n = 0;
            return problem(prob, HX_ERR_TOO_LARGE, "too many key IDs", "key_ID");
        }
        if (hx_uuid_parse(params[i].value, strlen(params[i].value), &ids[*n]) != HX_OK) {
            *n = 0;
            return problem(prob, HX_ERR_BAD_UUID, "key_ID must be a UUID", "key_ID");
        }
        (*n)++;
    }
    if (*n == 0) {
        return problem(prob, HX_ERR_MISSING_FIELD, "dec_keys by GET needs a key_ID parameter",
                       "key_ID");
    }
    return HX_OK;
}

hx_err hx_014_write_error(struct hx_writer *w, const char *msg, const char *detail)
{
    struct json_object *o = json_object_new_object(), *d, *e;
    hx_err r = HX_ERR_NOMEM;

    if (o == NULL || json_object_object_add(o, "message", json_object_new_string(msg)) != 0) {
        goto out;
    }
    if (detail != NULL && detail[0] != '\0') {
        if ((d = json_object_new_array()) == NULL) {
            goto out;
        }
        json_object_object_add(o, "details", d);
        if ((e = json_object_new_object()) == NULL) {
            goto out;
        }
        json_object_array_add(d, e);
        json_object_object_add(e, "message", json_object_new_string(detail));
    }
    r = put(w, json_object_to_json_string_ext(
                   o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
out:
    json_object_put(o);
    return r;
}

char *hx_014_error_json(const char *msg, const char *detail)
{
    struct hx_writer w;
    char *out = NULL;

    hx_writer_init_dynamic(&w, 64 * 1024);
    if (hx_014_write_error(&w, msg, detail) == HX_OK && hx_write_u8(&w, 0) == HX_OK) {
        out = strdup((const char *)w.data);
    }
    hx_writer_wipe(&w);
    return out;
}

hx_err hx_014_write_keys_begin(struct hx_writer *w)
{
    return put(w, "{\"keys\":[");
}

/*
 * Written straight into the caller's buffer (wiped by its owner), not through json-c objects
 * whose freed memory nobody wipes; a UUID and base64 need no escaping.
 */
hx_err hx_014_write_keys_add(struct hx_writer *w, bool first, const struct hx_uuid *id,
                             const uint8_t *key, size_t len)
{
    char text[HX_UUID_STR_LEN + 1];
    uint8_t *b64;
    size_t b64_len = 4 * ((len + 2) / 3);
    hx_err e;

    if (len == 0 || len > 8192) {
        return HX_ERR_INVALID_ARG;
    }
    hx_uuid_format(id, text);
    if ((e = put(w, first ? "{\"key_ID\":\"" : ",{\"key_ID\":\"")) != HX_OK ||
        (e = put(w, text)) != HX_OK || (e = put(w, "\",\"key\":\"")) != HX_OK ||
        (e = hx_write_reserve(w, b64_len, &b64)) != HX_OK) {
        return e;
    }
    /* EVP_EncodeBlock writes a NUL after its text: encoded in 48-byte pieces (64 characters)
     * through a scratch buffer, so that nothing is written past the reserved room. */
    for (size_t off = 0; off < len; off += 48) {
        unsigned char piece[65];
        size_t n = len - off < 48 ? len - off : 48;
        int got = EVP_EncodeBlock(piece, key + off, (int)n);
        memcpy(b64 + (off / 48) * 64, piece, (size_t)got);
        OPENSSL_cleanse(piece, sizeof(piece));
    }
    return put(w, "\"}");
}

hx_err hx_014_write_keys_end(struct hx_writer *w)
{
    return put(w, "]}");
}
