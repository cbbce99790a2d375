/* UUIDs (RFC 9562) for node ids and key stream ids: 16 bytes, text form 8-4-4-4-12. */
#ifndef HX_COMMON_UUID_H
#define HX_COMMON_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define HX_UUID_STR_LEN 36

struct hx_uuid {
    uint8_t b[16];
};

/*
 * Parses exactly len bytes of text in 8-4-4-4-12 form, hex digits in either case. Anything
 * else (braces, "urn:uuid:", missing or extra characters) is HX_ERR_BAD_UUID.
 */
HX_MUST_CHECK hx_err hx_uuid_parse(const char *s, size_t len, struct hx_uuid *out);
/* Lowercase 8-4-4-4-12 text plus NUL into out[HX_UUID_STR_LEN + 1]. */
void hx_uuid_format(const struct hx_uuid *u, char out[HX_UUID_STR_LEN + 1]);
/* A random (version 4) UUID from OpenSSL's CSPRNG. */
HX_MUST_CHECK hx_err hx_uuid_generate(struct hx_uuid *out);
bool hx_uuid_is_nil(const struct hx_uuid *u);
bool hx_uuid_equal(const struct hx_uuid *a, const struct hx_uuid *b);

#endif
