/* Hex encoding for command lines, vectors and config (never for logging key bytes). */
#ifndef HX_COMMON_HEX_H
#define HX_COMMON_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* The value of one hex digit (either case), or -1. */
int hx_hex_digit(char c);

/*
 * Decodes len characters of hex (either case, no separators) into out (cap bytes).
 * HX_ERR_BAD_VALUE for an odd length or a non-hex character, HX_ERR_NOSPACE if cap is short.
 */
HX_MUST_CHECK hx_err hx_hex_decode(const char *s, size_t len, uint8_t *out, size_t cap,
                                   size_t *out_len);
/* Lowercase hex of n bytes plus NUL into out (cap >= 2n + 1). */
HX_MUST_CHECK hx_err hx_hex_encode(const uint8_t *p, size_t n, char *out, size_t cap);

#endif
