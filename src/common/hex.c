#include "common/hex.h"

int hx_hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

hx_err hx_hex_decode(const char *s, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (len % 2 != 0) {
        return HX_ERR_BAD_VALUE;
    }
    if (len / 2 > cap) {
        return HX_ERR_NOSPACE;
    }
    for (size_t i = 0; i < len; i += 2) {
        int hi = hx_hex_digit(s[i]), lo = hx_hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0) {
            return HX_ERR_BAD_VALUE;
        }
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = len / 2;
    return HX_OK;
}

hx_err hx_hex_encode(const uint8_t *p, size_t n, char *out, size_t cap)
{
    static const char digits[] = "0123456789abcdef";

    if (n > (cap - 1) / 2 || cap == 0) {
        return HX_ERR_NOSPACE;
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0x0f];
    }
    out[2 * n] = '\0';
    return HX_OK;
}
