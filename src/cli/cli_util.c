#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "cli/cli.h"
#include "common/config.h"
#include "common/hex.h"
#include "common/json.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "hykex %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "hykex %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_read_json(const char *cmd, const char *path, struct json_object **out)
{
    char *text = NULL, why[300];
    size_t len;
    hx_err e;

    *out = NULL;
    errno = 0;
    if ((e = hx_read_file(path, 1u << 20, &text, &len)) != HX_OK) {
        const char *reason = e == HX_ERR_TOO_LARGE ? "larger than 1 MiB"
                             : errno != 0          ? strerror(errno)
                             : e == HX_ERR_IO      ? "not a regular file"
                                                   : hx_strerror(e);
        return cli_fail(cmd, "cannot read %s: %s", path, reason);
    }
    e = hx_json_parse_object(text, len, NULL, out, why, sizeof(why));
    free(text);
    if (e != HX_OK) {
        return cli_fail(cmd, "%s is not a JSON object: %s", path, why);
    }
    return 0;
}

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_hex(const char *cmd, const char *opt, const char *s, uint8_t **out, size_t *len)
{
    size_t n = strlen(s);
    uint8_t *buf;
    hx_err e;

    *out = NULL;
    *len = 0;
    if (n % 2 != 0) {
        cli_usage_error(cmd, "%s: odd number of hex digits (%zu)", opt, n);
        return -1;
    }
    if ((buf = OPENSSL_malloc(n / 2 + 1)) == NULL) {
        cli_usage_error(cmd, "%s: out of memory", opt);
        return -1;
    }
    if ((e = hx_hex_decode(s, n, buf, n / 2 + 1, len)) != HX_OK) {
        OPENSSL_free(buf);
        cli_usage_error(cmd, "%s: not hex (only 0-9, a-f, A-F)", opt);
        return -1;
    }
    *out = buf;
    return 0;
}

void cli_print_hex(const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        putchar(digits[p[i] >> 4]);
        putchar(digits[p[i] & 0x0f]);
    }
    putchar('\n');
}
