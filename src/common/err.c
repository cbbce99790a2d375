#include "common/err.h"

#include <stddef.h>

static const struct {
    hx_err code;
    const char *text;
} messages[] = {
    {HX_OK, "success"},
    {HX_ERR_IO, "input/output error"},
    {HX_ERR_IO_CLOSED, "connection closed"},
    {HX_ERR_IO_TIMEOUT, "timed out"},
    {HX_ERR_IO_PERM, "permission denied or unsafe file permissions"},
    {HX_ERR_IO_NOT_FOUND, "file not found"},
    {HX_ERR_PROTO, "protocol error"},
    {HX_ERR_TRUNCATED, "input ends before the item it announced"},
    {HX_ERR_TOO_LARGE, "input larger than allowed"},
    {HX_ERR_TOO_DEEP, "input nested deeper than allowed"},
    {HX_ERR_BAD_JSON, "malformed JSON"},
    {HX_ERR_BAD_TYPE, "value has the wrong type"},
    {HX_ERR_BAD_VALUE, "value out of range or not allowed"},
    {HX_ERR_BAD_UUID, "malformed UUID"},
    {HX_ERR_UNKNOWN_FIELD, "unknown field"},
    {HX_ERR_MISSING_FIELD, "required field missing"},
    {HX_ERR_CRYPTO, "cryptographic operation failed"},
    {HX_ERR_VERIFY, "verification failed"},
    {HX_ERR_RANDOM, "random number generator failed"},
    {HX_ERR_STATE, "operation not valid in this state"},
    {HX_ERR_NOT_FOUND, "no such item"},
    {HX_ERR_EXISTS, "item already exists"},
    {HX_ERR_NO_KEY, "not enough key material"},
    {HX_ERR_USAGE, "usage error"},
    {HX_ERR_INVALID_ARG, "invalid argument"},
    {HX_ERR_CONFIG, "invalid configuration"},
    {HX_ERR_UNSUPPORTED, "not supported"},
    {HX_ERR_INTERNAL, "internal error"},
    {HX_ERR_NOMEM, "out of memory"},
    {HX_ERR_NOSPACE, "output buffer too small"},
};

const char *hx_strerror(hx_err e)
{
    for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
        if (messages[i].code == e) {
            return messages[i].text;
        }
    }
    return "unknown error";
}

enum hx_err_category hx_err_category(hx_err e)
{
    switch ((int)e / 100) {
    case 0:
        return e == HX_OK ? HX_ERRCAT_NONE : HX_ERRCAT_INTERNAL;
    case 1:
        return HX_ERRCAT_IO;
    case 2:
        return HX_ERRCAT_PROTO;
    case 3:
        return HX_ERRCAT_CRYPTO;
    case 4:
        return HX_ERRCAT_STATE;
    case 5:
        return HX_ERRCAT_USAGE;
    default:
        return HX_ERRCAT_INTERNAL;
    }
}

const char *hx_err_category_name(enum hx_err_category c)
{
    switch (c) {
    case HX_ERRCAT_NONE:
        return "none";
    case HX_ERRCAT_IO:
        return "io";
    case HX_ERRCAT_PROTO:
        return "proto";
    case HX_ERRCAT_CRYPTO:
        return "crypto";
    case HX_ERRCAT_STATE:
        return "state";
    case HX_ERRCAT_USAGE:
        return "usage";
    case HX_ERRCAT_INTERNAL:
        return "internal";
    }
    return "unknown";
}
