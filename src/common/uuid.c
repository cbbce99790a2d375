#include "common/uuid.h"

#include <string.h>

#include <openssl/rand.h>

#include "common/hex.h"

hx_err hx_uuid_parse(const char *s, size_t len, struct hx_uuid *out)
{
    struct hx_uuid u;
    size_t n = 0;

    if (s == NULL || len != HX_UUID_STR_LEN) {
        return HX_ERR_BAD_UUID;
    }
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return HX_ERR_BAD_UUID;
            }
            continue;
        }
        int hi = hx_hex_digit(s[i]), lo;
        if (hi < 0 || (lo = hx_hex_digit(s[i + 1])) < 0) {
            return HX_ERR_BAD_UUID;
        }
        u.b[n++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    *out = u;
    return HX_OK;
}

void hx_uuid_format(const struct hx_uuid *u, char out[HX_UUID_STR_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = digits[u->b[i] >> 4];
        out[o++] = digits[u->b[i] & 0x0f];
    }
    out[o] = '\0';
}

hx_err hx_uuid_generate(struct hx_uuid *out)
{
    if (RAND_bytes(out->b, sizeof(out->b)) != 1) {
        return HX_ERR_RANDOM;
    }
    out->b[6] = (uint8_t)((out->b[6] & 0x0f) | 0x40); /* version 4 */
    out->b[8] = (uint8_t)((out->b[8] & 0x3f) | 0x80); /* variant 10 */
    return HX_OK;
}

bool hx_uuid_is_nil(const struct hx_uuid *u)
{
    static const struct hx_uuid nil;

    return memcmp(u->b, nil.b, sizeof(u->b)) == 0;
}

bool hx_uuid_equal(const struct hx_uuid *a, const struct hx_uuid *b)
{
    return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}
