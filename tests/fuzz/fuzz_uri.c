/* The hybrid:// URI parser on arbitrary bytes: never reads past the string, and what it accepts
 * is consistent (a node UUID, 1..HX_URI_MAX_SOURCES sources, a known method). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), why[256];
    struct hx_uri u;

    if (s == NULL) {
        abort();
    }
    memcpy(s, data, size);
    s[size] = '\0';
    why[0] = '\0';
    if (hx_uri_parse(s, &u, why, sizeof(why)) == HX_OK) {
        if (u.has_query && (u.n_sources == 0 || u.n_sources > HX_URI_MAX_SOURCES)) {
            abort();
        }
        if (strlen(u.app) >= sizeof(u.app)) {
            abort();
        }
    } else if (why[0] == '\0' || strnlen(why, sizeof(why)) == sizeof(why)) {
        abort(); /* every refusal says why, NUL-terminated */
    }
    free(s);
    return 0;
}
