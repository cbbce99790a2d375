#include "vectors.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/hex.h"
#include "common/json.h"

struct json_object *vectors_load(const char *name, struct json_object **doc)
{
    static const struct hx_json_limits lim = {
        .max_message = 4u << 20, .max_depth = 8, .max_string = 1u << 20, .max_members = 4096};
    const char *dir = getenv("HYKEX_TEST_VECTORS");
    char path[1024], why[256];
    char *text = NULL;
    size_t len = 0;
    struct json_object *arr;

    assert_non_null(dir);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(hx_read_file(path, 8u << 20, &text, &len), HX_OK);
    if (hx_json_parse_object(text, len, &lim, doc, why, sizeof(why)) != HX_OK) {
        fail_msg("%s: %s", path, why);
    }
    free(text);
    assert_true(json_object_object_get_ex(*doc, "vectors", &arr));
    assert_true(json_object_array_length(arr) > 0);
    return arr;
}

const char *vec_str(struct json_object *v, const char *key)
{
    struct json_object *f;

    if (!json_object_object_get_ex(v, key, &f)) {
        fail_msg("vector lacks '%s'", key);
    }
    return json_object_get_string(f);
}

uint8_t *hex_dup(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    uint8_t *buf = malloc(n / 2 + 1);

    assert_non_null(buf);
    assert_int_equal(hx_hex_decode(hex, n, buf, n / 2 + 1, len), HX_OK);
    return buf;
}

uint8_t *vec_hex(struct json_object *v, const char *key, size_t *len)
{
    return hex_dup(vec_str(v, key), len);
}

int64_t vec_int(struct json_object *v, const char *key)
{
    struct json_object *f;

    if (!json_object_object_get_ex(v, key, &f)) {
        fail_msg("vector lacks '%s'", key);
    }
    return json_object_get_int64(f);
}
