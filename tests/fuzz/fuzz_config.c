/* The config loader on arbitrary documents, against a table with every option type. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/json.h"
#include "common/uuid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct cfg {
    struct hx_uuid uuid;
    char host[64];
    uint16_t port;
    int64_t big;
    int8_t small;
    bool flag;
    int level;
};

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

static const struct hx_cfg_opt table[] = {
    HX_CFG_OPT_UUID("uuid", struct cfg, uuid, NULL, HX_CFG_REQUIRED, "node UUID"),
    HX_CFG_OPT_STR("a.host", struct cfg, host, 1, "\"localhost\"", 0, "host"),
    HX_CFG_OPT_INT("a.port", struct cfg, port, 1, 65535, "1", 0, "port"),
    HX_CFG_OPT_INT("a.b.big", struct cfg, big, INT64_MIN, INT64_MAX, "0", 0, "any"),
    HX_CFG_OPT_INT("small", struct cfg, small, -128, 127, "0", 0, "i8"),
    HX_CFG_OPT_BOOL("flag", struct cfg, flag, "true", "flag"),
    HX_CFG_OPT_ENUM("level", struct cfg, level, levels, "\"info\"", "level"),
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *root = NULL, *printed;
    struct cfg c;
    char why[256];
    size_t n = sizeof(table) / sizeof(table[0]);

    memset(&c, 0, sizeof(c));
    if (hx_cfg_defaults(table, n, &c, why, sizeof(why)) != HX_OK) {
        abort();
    }
    if (hx_json_parse_object(data, size, NULL, &root, why, sizeof(why)) != HX_OK) {
        if (why[0] == '\0') {
            abort();
        }
        return 0;
    }
    if (hx_cfg_apply(table, n, &c, root, "fuzz", why, sizeof(why)) == HX_OK) {
        /* What loaded prints, and what prints loads again. */
        if ((printed = hx_cfg_to_json(table, n, &c)) == NULL) {
            abort();
        }
        struct cfg d;
        memset(&d, 0, sizeof(d));
        if (hx_cfg_apply(table, n, &d, printed, "printed", why, sizeof(why)) != HX_OK ||
            d.port != c.port || d.big != c.big || strcmp(d.host, c.host) != 0) {
            abort();
        }
        json_object_put(printed);
    } else if (strncmp(why, "fuzz", 4) != 0) {
        abort(); /* every rejection names its source */
    }
    json_object_put(root);
    return 0;
}
