/*
 * A C SAE for tests/integration/etsi014_server_test.py: hykexd's own ETSI 014 client
 * (source/qkd014.c, libcurl) pointed at a 014 server, as a third-party C application would be.
 *
 *   etsi014_c_client URL CERT KEY CA enc SLAVE_SAE COUNT BYTES
 *   etsi014_c_client URL CERT KEY CA dec MASTER_SAE BYTES KEY_ID...
 *
 * Prints one "<key_ID> <key in hex>" line per key; exit 0, or 1 with the client's message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/hex.h"
#include "source/qkd014.h"

#define MAX_KEYS 64
#define MAX_BYTES 1024

static int number(const char *s, long lo, long hi, long *out)
{
    char *end;

    errno = 0;
    *out = strtol(s, &end, 10);
    return errno == 0 && *end == '\0' && end != s && *out >= lo && *out <= hi;
}

int main(int argc, char **argv)
{
    static uint8_t keys[MAX_KEYS * MAX_BYTES];
    struct hx_uuid ids[MAX_KEYS];
    struct hx_qkd014 c = {.timeout_ms = 30000};
    char msg[300] = "", hex[2 * MAX_BYTES + 1], id[HX_UUID_STR_LEN + 1];
    long count = 0, bytes = 0;
    hx_err e;

    if (argc < 9 || (strcmp(argv[5], "enc") != 0 && strcmp(argv[5], "dec") != 0)) {
        fprintf(stderr,
                "usage: %s URL CERT KEY CA enc SLAVE COUNT BYTES\n"
                "       %s URL CERT KEY CA dec MASTER BYTES KEY_ID...\n",
                argv[0], argv[0]);
        return 2;
    }
    snprintf(c.base_url, sizeof(c.base_url), "%s", argv[1]);
    snprintf(c.cert, sizeof(c.cert), "%s", argv[2]);
    snprintf(c.key, sizeof(c.key), "%s", argv[3]);
    snprintf(c.ca, sizeof(c.ca), "%s", argv[4]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(argv[5], "enc") == 0) {
        if (!number(argv[7], 1, MAX_KEYS, &count) || !number(argv[8], 1, MAX_BYTES, &bytes)) {
            fprintf(stderr, "COUNT 1..%d, BYTES 1..%d\n", MAX_KEYS, MAX_BYTES);
            return 2;
        }
        e = hx_qkd014_enc(&c, argv[6], (uint32_t)count, (size_t)bytes, keys, ids, msg, sizeof(msg));
    } else {
        count = argc - 8;
        if (!number(argv[7], 1, MAX_BYTES, &bytes) || count > MAX_KEYS) {
            fprintf(stderr, "BYTES 1..%d, at most %d key IDs\n", MAX_BYTES, MAX_KEYS);
            return 2;
        }
        for (long i = 0; i < count; i++) {
            if (hx_uuid_parse(argv[8 + i], strlen(argv[8 + i]), &ids[i]) != HX_OK) {
                fprintf(stderr, "not a UUID: %s\n", argv[8 + i]);
                return 2;
            }
        }
        e = hx_qkd014_dec(&c, argv[6], ids, (uint32_t)count, (size_t)bytes, keys, msg, sizeof(msg));
    }
    if (e != HX_OK) {
        fprintf(stderr, "%s (%s)\n", msg, hx_strerror(e));
        curl_global_cleanup();
        return 1;
    }
    for (long i = 0; i < count; i++) {
        hx_uuid_format(&ids[i], id);
        if (hx_hex_encode(keys + i * bytes, (size_t)bytes, hex, sizeof(hex)) != HX_OK) {
            return 1;
        }
        printf("%s %s\n", id, hex);
    }
    curl_global_cleanup();
    return 0;
}
