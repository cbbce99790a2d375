/*
 * The ETSI 004 JSON request decoder behind the stream decoder, as a server meets it: any
 * bytes, cut into objects, each validated. What validates must encode and validate again. A
 * GET_KEY the decoder without a tree takes (proto/etsi004_fast.c) must be one json-c's path
 * takes too, with the same request, with and without opaque ids.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "proto/etsi004.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct hx_json_limits lim = {
        .max_message = 64 * 1024, .max_depth = 8, .max_string = 4096, .max_members = 64};
    struct hx_json_stream *s;
    struct json_object *o;
    const char *why;
    hx_err e;

    if (hx_json_stream_new(&lim, &s) != HX_OK || hx_json_stream_feed(s, data, size) != HX_OK) {
        abort();
    }
    const char *text;
    size_t len;
    while (hx_json_stream_next_text(s, &text, &len, &e, &why) != HX_JSON_NEED_MORE) {
        struct hx_004_request req, again, fast;
        char msg[300];
        if (text == NULL) {
            continue;
        }
        bool took = hx_004_fast_get_request(text, len, &lim, &fast);
        if (hx_json_stream_parse_text(s, &o, &e, &why) != HX_JSON_OBJECT) {
            if (took) {
                abort(); /* taken without a tree, refused by json-c */
            }
            continue;
        }
        for (int opaque = 0; took && opaque <= 1; opaque++) {
            if (hx_004_json_decode_request_ex(o, &req, opaque != 0, msg, sizeof(msg)) != HX_OK ||
                memcmp(&req, &fast, sizeof(req)) != 0) {
                abort();
            }
        }
        if (hx_004_json_decode_request(o, &req, msg, sizeof(msg)) == HX_OK) {
            struct json_object *enc = hx_004_json_encode_request(&req);
            if (hx_004_json_decode_request(enc, &again, msg, sizeof(msg)) != HX_OK ||
                again.cmd != req.cmd || !hx_uuid_equal(&again.ksid, &req.ksid) ||
                strcmp(again.source, req.source) != 0 ||
                again.qos.key_chunk_size != req.qos.key_chunk_size) {
                abort();
            }
            json_object_put(enc);
        } else if (msg[0] == '\0') {
            abort(); /* every refusal names its field */
        }
        /* A KME's side: opaque key_stream_ids are kept as given and sent back the same. */
        if (hx_004_json_decode_request_ex(o, &req, true, msg, sizeof(msg)) == HX_OK) {
            struct json_object *enc = hx_004_json_encode_request(&req);
            if (hx_004_json_decode_request_ex(enc, &again, true, msg, sizeof(msg)) != HX_OK ||
                strcmp(again.ksid_text.s, req.ksid_text.s) != 0 ||
                !hx_uuid_equal(&again.ksid, &req.ksid)) {
                abort();
            }
            json_object_put(enc);
        }
        json_object_put(o);
    }
    hx_json_stream_free(s);
    return 0;
}
