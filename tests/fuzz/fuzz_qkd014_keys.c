/* The ETSI 014 key-container parser (a KME's enc_keys / dec_keys reply) on arbitrary bytes.
 * Byte 0: count (1..8); byte 1: key size (1..64 bytes); byte 2 bit 0: ids given (the ids are
 * 01010101-..., 02020202-..., ...); the rest is the JSON. Never writes outside keys / ids; on
 * success with ids given, the ids are unchanged. The whole input is also a KME's status (its
 * max_key_per_request): on success 0 (not given) or at least 1. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "source/qkd014.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hx_uuid ids[8], before[8];
    uint8_t *keys;
    uint32_t count;
    size_t bytes;
    bool given;
    char msg[200];
    uint32_t max = 7;

    if (hx_qkd014_parse_status((const char *)data, size, &max, msg, sizeof(msg)) != HX_OK &&
        max != 0) {
        abort(); /* a refused status leaves no limit behind */
    }
    if (size < 3) {
        return 0;
    }
    count = 1 + data[0] % 8;
    bytes = 1 + data[1] % 64;
    given = (data[2] & 1) != 0;
    for (uint32_t i = 0; i < 8; i++) {
        memset(ids[i].b, (int)(i + 1), sizeof(ids[i].b));
    }
    memcpy(before, ids, sizeof(ids));
    if ((keys = malloc(count * bytes)) == NULL) {
        abort();
    }
    if (hx_qkd014_parse_keys((const char *)data + 3, size - 3, count, bytes, keys, ids, given, msg,
                             sizeof(msg)) == HX_OK &&
        given && memcmp(ids, before, sizeof(ids)) != 0) {
        abort();
    }
    free(keys);
    return 0;
}
