#include "source/qkd014.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/json.h"

struct body {
    char *p;
    size_t len;
    size_t cap;
};

static size_t on_data(char *ptr, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t add = size * n;

    if (b->len + add > b->cap) {
        return 0; /* over the cap: curl aborts the transfer */
    }
    memcpy(b->p + b->len, ptr, add);
    b->len += add;
    return add;
}

/* POSTs json to base_url + path (json NULL: a GET); returns the HTTP status (0 on transport
 * failure). */
static long post(const struct hx_qkd014 *c, const char *path, const char *json, struct body *b,
                 char *msg, size_t msg_len)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char url[512], err[CURL_ERROR_SIZE] = "";
    long code = 0;
    CURLcode rc;

    if (h == NULL) {
        snprintf(msg, msg_len, "QKD source (014): libcurl unavailable");
        return 0;
    }
    snprintf(url, sizeof(url), "%s%s", c->base_url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (json != NULL) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
    curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    if ((rc = curl_easy_perform(h)) != CURLE_OK) {
        snprintf(msg, msg_len, "QKD source (014): %s: %s", url,
                 err[0] ? err : curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return code;
}

/* Base64 of exactly bytes bytes: 4 * ceil(bytes / 3) characters of the standard alphabet, and
 * '=' padding exactly where the size needs it (nothing else: no spaces, no line breaks). */
static bool base64_exact(const char *t, size_t tl, size_t bytes)
{
    size_t pad = (3 - bytes % 3) % 3;

    if (tl != 4 * ((bytes + 2) / 3)) {
        return false;
    }
    for (size_t i = 0; i < tl; i++) {
        char ch = t[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
        if (i >= tl - pad ? ch != '=' : !ok) {
            return false;
        }
    }
    return true;
}

hx_err hx_qkd014_parse_keys(const char *json, size_t len, uint32_t count, size_t bytes,
                            uint8_t *keys, struct hx_uuid *ids, bool ids_given, char *msg,
                            size_t msg_len)
{
    static const struct hx_json_limits lim = {
        .max_message = 4u << 20, .max_depth = 6, .max_string = 16384, .max_members = 4096};
    struct json_object *o = NULL, *arr;
    char why[200];
    hx_err e = HX_ERR_PROTO;

    if (bytes == 0 || bytes > 8192 ||
        hx_json_parse_object(json, len, &lim, &o, why, sizeof(why)) != HX_OK ||
        !json_object_object_get_ex(o, "keys", &arr) || !json_object_is_type(arr, json_type_array) ||
        json_object_array_length(arr) != count) {
        snprintf(msg, msg_len, "QKD source (014): the KME's key container is malformed");
        goto out;
    }
    for (uint32_t i = 0; i < count; i++) {
        struct json_object *k = json_object_array_get_idx(arr, i), *id, *val;
        struct hx_uuid u;
        uint8_t dec[8192 + 3];
        size_t slot = i, tl;
        const char *t;
        int n;
        if (!json_object_object_get_ex(k, "key_ID", &id) ||
            !json_object_object_get_ex(k, "key", &val) ||
            !json_object_is_type(id, json_type_string) ||
            hx_uuid_parse(json_object_get_string(id), (size_t)json_object_get_string_len(id), &u) !=
                HX_OK) {
            snprintf(msg, msg_len, "QKD source (014): key %u has no valid key_ID: reply refused",
                     i);
            goto out;
        }
        t = json_object_get_string(val);
        tl = (size_t)json_object_get_string_len(val);
        if (!json_object_is_type(val, json_type_string) || !base64_exact(t, tl, bytes)) {
            snprintf(msg, msg_len,
                     "QKD source (014): key %u is not base64 of exactly %zu bytes: reply refused",
                     i, bytes);
            goto out;
        }
        if (ids_given) {
            for (slot = 0; slot < count && !hx_uuid_equal(&ids[slot], &u); slot++) {
            }
            if (slot == count) {
                snprintf(msg, msg_len, "QKD source (014): the KME returned a key not asked for");
                goto out;
            }
        } else {
            ids[i] = u;
        }
        /* EVP_DecodeBlock counts padding as zero bytes: the size is already checked above. */
        n = EVP_DecodeBlock(dec, (const unsigned char *)t, (int)tl);
        if (n < 0 || (size_t)n < bytes) {
            OPENSSL_cleanse(dec, sizeof(dec));
            snprintf(msg, msg_len, "QKD source (014): key %u is not valid base64", i);
            goto out;
        }
        memcpy(keys + slot * bytes, dec, bytes);
        OPENSSL_cleanse(dec, sizeof(dec));
    }
    e = HX_OK;
out:
    hx_json_wipe(o); /* the keys' base64 text in json-c's objects, before they are freed */
    json_object_put(o);
    return e;
}

static bool try_later(const struct body *b)
{
    static const char needle[] = "try again later";

    for (size_t i = 0; b->p != NULL && i + sizeof(needle) - 1 <= b->len; i++) {
        if (strncasecmp(b->p + i, needle, sizeof(needle) - 1) == 0) {
            return true;
        }
    }
    return false;
}

static hx_err status_error(long code, const struct body *b, char *msg, size_t msg_len)
{
    if (code == 0) {
        return HX_ERR_IO; /* msg already says why */
    }
    snprintf(msg, msg_len, "QKD source (014): HTTP %ld from the KME: %.*s", code,
             (int)(b->len > 120 ? 120 : b->len), b->p != NULL ? b->p : "");
    /* 503, or 400 "try again later" (next-door-key-simulator): no key yet, asked again later */
    return code == 503 || (code == 400 && try_later(b)) ? HX_ERR_NO_KEY : HX_ERR_STATE;
}

hx_err hx_qkd014_enc(const struct hx_qkd014 *c, const char *slave_sae, uint32_t count, size_t bytes,
                     uint8_t *keys, struct hx_uuid *ids, char *msg, size_t msg_len)
{
    struct body b = {NULL, 0, 4u << 20};
    char path[200], json[100];
    long code;
    hx_err e;

    if ((b.p = malloc(b.cap)) == NULL) {
        return HX_ERR_NOMEM;
    }
    snprintf(path, sizeof(path), "/api/v1/keys/%s/enc_keys", slave_sae);
    snprintf(json, sizeof(json), "{\"number\": %u, \"size\": %zu}", count, bytes * 8);
    code = post(c, path, json, &b, msg, msg_len);
    e = code == 200 ? hx_qkd014_parse_keys(b.p, b.len, count, bytes, keys, ids, false, msg, msg_len)
                    : status_error(code, &b, msg, msg_len);
    OPENSSL_clear_free(b.p, b.cap);
    return e;
}

hx_err hx_qkd014_dec(const struct hx_qkd014 *c, const char *master_sae, const struct hx_uuid *ids,
                     uint32_t count, size_t bytes, uint8_t *keys, char *msg, size_t msg_len)
{
    struct body b = {NULL, 0, 4u << 20};
    char path[200], *json;
    size_t cap = 32 + (size_t)count * 60, off;
    long code;
    hx_err e;

    if ((b.p = malloc(b.cap)) == NULL || (json = malloc(cap)) == NULL) {
        free(b.p);
        return HX_ERR_NOMEM;
    }
    off = (size_t)snprintf(json, cap, "{\"key_IDs\": [");
    for (uint32_t i = 0; i < count; i++) {
        char id[HX_UUID_STR_LEN + 1];
        hx_uuid_format(&ids[i], id);
        off += (size_t)snprintf(json + off, cap - off, "%s{\"key_ID\": \"%s\"}", i ? ", " : "", id);
    }
    snprintf(json + off, cap - off, "]}");
    snprintf(path, sizeof(path), "/api/v1/keys/%s/dec_keys", master_sae);
    code = post(c, path, json, &b, msg, msg_len);
    e = code == 200 ? hx_qkd014_parse_keys(b.p, b.len, count, bytes, keys, (struct hx_uuid *)ids,
                                           true, msg, msg_len)
                    : status_error(code, &b, msg, msg_len);
    free(json);
    OPENSSL_clear_free(b.p, b.cap);
    return e;
}

hx_err hx_qkd014_parse_status(const char *json, size_t len, uint32_t *max_per_request, char *msg,
                              size_t msg_len)
{
    static const struct hx_json_limits lim = {
        .max_message = 64u << 10, .max_depth = 8, .max_string = 4096, .max_members = 256};
    struct json_object *o = NULL, *v;
    char why[200];
    int64_t n;

    *max_per_request = 0;
    if (hx_json_parse_object(json, len, &lim, &o, why, sizeof(why)) != HX_OK) {
        snprintf(msg, msg_len, "QKD source (014): malformed status from the KME: %s", why);
        return HX_ERR_PROTO;
    }
    if (!json_object_object_get_ex(o, "max_key_per_request", &v)) {
        json_object_put(o);
        return HX_OK; /* not given: no limit known */
    }
    n = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
    json_object_put(o);
    if (n < 1 || n > UINT32_MAX) {
        snprintf(msg, msg_len,
                 "QKD source (014): the KME's status has a max_key_per_request that is not a "
                 "positive integer");
        return HX_ERR_PROTO;
    }
    *max_per_request = (uint32_t)n;
    return HX_OK;
}

hx_err hx_qkd014_status(const struct hx_qkd014 *c, const char *slave_sae, uint32_t *max_per_request,
                        char *msg, size_t msg_len)
{
    struct body b = {NULL, 0, 64u << 10};
    char path[200];
    long code;
    hx_err e;

    *max_per_request = 0;
    if ((b.p = malloc(b.cap)) == NULL) {
        return HX_ERR_NOMEM;
    }
    snprintf(path, sizeof(path), "/api/v1/keys/%s/status", slave_sae);
    code = post(c, path, NULL, &b, msg, msg_len);
    e = code == 200 ? hx_qkd014_parse_status(b.p, b.len, max_per_request, msg, msg_len)
                    : status_error(code, &b, msg, msg_len);
    free(b.p);
    return e;
}
