/* The ETSI 004 JSON GET_KEY reply check (hx_qkd_parse_key_reply) on arbitrary bytes. Byte 0: key
 * size (1..64 bytes); the rest is the reply. A key is only ever accepted as exactly that many
 * JSON integers 0..255: with status 0 the bytes written equal the reply's elements. What the
 * reader without a tree takes (proto/etsi004_fast.c, as hykexd's QKD client and libhykex use
 * it) json-c's path takes too, with the same status, key, index and message. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "proto/etsi004.h"
#include "source/qkd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* json-c's tree o holds what the reader without a tree gave, member by member and type by type. */
static bool same_reply(struct json_object *o, const struct hx_004_key_reply *fr)
{
    struct json_object *v;
    char want[256];

    if (!json_object_object_get_ex(o, "status", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) != fr->status) {
        return false;
    }
    if (json_object_object_get_ex(o, "index", &v) != fr->has_index ||
        (fr->has_index &&
         (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != fr->index))) {
        return false;
    }
    if (json_object_object_get_ex(o, "message", &v) != fr->has_message) {
        return false;
    }
    if (fr->has_message) {
        if (!json_object_is_type(v, json_type_string) || fr->message_cap > sizeof(want)) {
            return false;
        }
        snprintf(want, fr->message_cap, "%s", json_object_get_string(v));
        if (strcmp(want, fr->message) != 0) {
            return false;
        }
    }
    if (json_object_object_get_ex(o, "key_buffer", &v) != fr->has_key) {
        return false;
    }
    if (!fr->has_key) {
        return true;
    }
    if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != fr->key_len) {
        return false;
    }
    for (size_t i = 0; i < fr->key_len; i++) {
        struct json_object *el = json_object_array_get_idx(v, i);
        if (!json_object_is_type(el, json_type_int) || json_object_get_int64(el) != fr->key[i]) {
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *key;
    size_t len;
    uint32_t status = 0;
    char msg[200];

    if (size < 1) {
        return 0;
    }
    len = 1 + data[0] % 64;
    if ((key = malloc(len)) == NULL) {
        abort();
    }
    hx_ignore(hx_qkd_parse_key_reply((const char *)data + 1, size - 1, "fuzz:1", key, len, &status,
                                     msg, sizeof(msg)));
    if (memchr(msg, '\0', sizeof(msg)) == NULL) {
        abort();
    }
    /* the reader without a tree against json-c's: every field it gives, json-c gives alike */
    static const struct hx_json_limits lim = {
        .max_message = 1u << 20, .max_depth = 8, .max_string = 4096, .max_members = 70000};
    uint8_t *fkey = malloc(len), *skey = malloc(len);
    char fmsg[64];
    struct hx_004_key_reply fr = {
        .key = fkey, .key_cap = len, .message = fmsg, .message_cap = sizeof(fmsg)};
    if (fkey == NULL || skey == NULL) {
        abort();
    }
    if (hx_004_fast_key_reply((const char *)data + 1, size - 1, &lim, &fr)) {
        struct json_object *o = NULL;
        char why[200];
        uint32_t st;
        if (hx_json_parse_object(data + 1, size - 1, &lim, &o, why, sizeof(why)) != HX_OK ||
            !same_reply(o, &fr)) {
            abort();
        }
        json_object_put(o);
        /* hykexd's QKD client takes a status 0 reply with exactly len bytes: so must json-c */
        if (fr.status == 0 && fr.has_key && fr.key_len == len &&
            (hx_qkd_parse_key_reply((const char *)data + 1, size - 1, "fuzz:1", skey, len, &st, msg,
                                    sizeof(msg)) != HX_OK ||
             st != 0 || memcmp(skey, fkey, len) != 0)) {
            abort();
        }
    }
    free(fkey);
    free(skey);
    /* the same bytes as an OPEN_CONNECT reply: an id taken is bounded and printable */
    struct hykex_qos qos = {0};
    struct hx_qkd_ksid id = {{0}};
    if (hx_qkd_parse_open_reply((const char *)data + 1, size - 1, "fuzz:1", &qos, &id, &status, msg,
                                sizeof(msg)) == HX_OK) {
        char why[120];
        struct hx_qkd_ksid again;
        if (!hx_qkd_ksid_is_none(&id) &&
            hx_qkd_ksid_set(&again, id.s, strlen(id.s), why, sizeof(why)) != HX_OK) {
            abort();
        }
    }
    free(key);
    return 0;
}
