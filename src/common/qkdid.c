#include "common/qkdid.h"

#include <stdio.h>
#include <string.h>

hx_err hx_qkd_ksid_set(struct hx_qkd_ksid *out, const char *s, size_t len, char *why,
                       size_t why_len)
{
    memset(out, 0, sizeof(*out));
    if (len == 0) {
        snprintf(why, why_len, "key_stream_id: empty");
        return HX_ERR_BAD_VALUE;
    }
    if (len > HX_QKD_KSID_MAX) {
        snprintf(why, why_len, "key_stream_id: longer than %d bytes", HX_QKD_KSID_MAX);
        return HX_ERR_TOO_LARGE;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e) {
            snprintf(why, why_len,
                     "key_stream_id: byte %zu is 0x%02x, not printable ASCII without spaces", i, c);
            return HX_ERR_BAD_VALUE;
        }
    }
    memcpy(out->s, s, len);
    out->s[len] = '\0';
    return HX_OK;
}

void hx_qkd_ksid_from_uuid(struct hx_qkd_ksid *out, const struct hx_uuid *u)
{
    memset(out, 0, sizeof(*out));
    if (!hx_uuid_is_nil(u)) {
        hx_uuid_format(u, out->s);
    }
}

bool hx_qkd_ksid_to_uuid(const struct hx_qkd_ksid *id, struct hx_uuid *out)
{
    return hx_uuid_parse(id->s, strnlen(id->s, sizeof(id->s)), out) == HX_OK;
}

bool hx_qkd_ksid_is_canonical_uuid(const struct hx_qkd_ksid *id)
{
    struct hx_uuid u;
    char text[HX_UUID_STR_LEN + 1];

    if (!hx_qkd_ksid_to_uuid(id, &u)) {
        return false;
    }
    hx_uuid_format(&u, text);
    return strcmp(text, id->s) == 0;
}

bool hx_qkd_ksid_is_none(const struct hx_qkd_ksid *id)
{
    return id->s[0] == '\0';
}

bool hx_qkd_ksid_equal(const struct hx_qkd_ksid *a, const struct hx_qkd_ksid *b)
{
    struct hx_uuid ua, ub;

    if (strcmp(a->s, b->s) == 0) {
        return true;
    }
    return hx_qkd_ksid_to_uuid(a, &ua) && hx_qkd_ksid_to_uuid(b, &ub) && hx_uuid_equal(&ua, &ub);
}
