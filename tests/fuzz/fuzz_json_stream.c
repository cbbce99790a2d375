/*
 * The API stream decoder on arbitrary bytes. The first byte picks a chunk size, so the fuzzer
 * also explores split points; the whole input is also fed in one piece, and both runs must
 * produce the same sequence of events.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Events folded into a running hash: objects by their printed form, errors by code. */
static uint64_t run(const uint8_t *data, size_t size, size_t chunk)
{
    static const struct hx_json_limits lim = {
        .max_message = 4096, .max_depth = 8, .max_string = 512, .max_members = 64};
    struct hx_json_stream *s;
    struct json_object *o;
    enum hx_json_event ev;
    const char *why;
    uint64_t h = 1469598103934665603ULL;
    hx_err e;

    if (hx_json_stream_new(&lim, &s) != HX_OK) {
        abort();
    }
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (hx_json_stream_feed(s, data + off, n) != HX_OK) {
            abort(); /* we always drain: feeding can never overflow */
        }
        while ((ev = hx_json_stream_next(s, &o, &e, &why)) != HX_JSON_NEED_MORE) {
            const char *t = ev == HX_JSON_OBJECT ? json_object_to_json_string(o) : why;
            if (ev == HX_JSON_OBJECT && !json_object_is_type(o, json_type_object)) {
                abort();
            }
            if (ev == HX_JSON_ERROR && (why == NULL || why[0] == '\0' || e == HX_OK)) {
                abort(); /* every error names its problem */
            }
            h = (h ^ (uint64_t)ev) * 1099511628211ULL;
            for (; ev == HX_JSON_OBJECT && *t != '\0'; t++) {
                h = (h ^ (uint8_t)*t) * 1099511628211ULL;
            }
            json_object_put(o);
        }
    }
    hx_json_stream_free(s);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t chunk;

    if (size < 1) {
        return 0;
    }
    chunk = (size_t)(data[0] % 64) + 1;
    if (run(data + 1, size - 1, chunk) != run(data + 1, size - 1, size)) {
        abort(); /* framing must not depend on how the bytes arrived */
    }
    return 0;
}
