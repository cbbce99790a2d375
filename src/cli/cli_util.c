#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "common/hex.h"

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

int cli_option(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t nl = strlen(name);

    if (strncmp(argv[*i], name, nl) != 0) {
        return 0;
    }
    if (argv[*i][nl] == '=') {
        *value = argv[*i] + nl + 1;
        (*i)++;
        return 1;
    }
    if (argv[*i][nl] != '\0') {
        return 0;
    }
    if (*i + 1 >= argc) {
        *value = NULL; /* present without a value */
        (*i)++;
        return 1;
    }
    *value = argv[*i + 1];
    *i += 2;
    return 1;
}
