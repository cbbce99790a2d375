/* The hex decoder on arbitrary text: never writes past cap, and encode(decode(x)) == lower(x). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = size / 2 + (size > 0 ? data[0] % 3 : 0), len = 0;
    uint8_t *out = malloc(cap > 0 ? cap : 1);
    char *back = malloc(size + 1);
    hx_err e;

    if (out == NULL || back == NULL) {
        abort();
    }
    e = hx_hex_decode((const char *)data, size, out, cap, &len);
    if (e == HX_OK) {
        if (len != size / 2 || hx_hex_encode(out, len, back, size + 1) != HX_OK) {
            abort();
        }
        for (size_t i = 0; i < size; i++) {
            if (back[i] != (char)tolower(data[i])) {
                abort();
            }
        }
    } else if (e != HX_ERR_BAD_VALUE && e != HX_ERR_NOSPACE) {
        abort();
    }
    free(out);
    free(back);
    return 0;
}
