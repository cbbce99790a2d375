/* The ETSI 004 JSON GET_KEY reply check (hx_qkd_parse_key_reply) on arbitrary bytes. Byte 0: key
 * size (1..64 bytes); the rest is the reply. A key is only ever accepted as exactly that many
 * JSON integers 0..255: with status 0 the bytes written equal the reply's elements. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "source/qkd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
