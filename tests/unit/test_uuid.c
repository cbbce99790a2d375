#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/uuid.h"

static const char text[] = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ef";

static void parses_and_formats(void **state)
{
    struct hx_uuid u, v;
    char out[HX_UUID_STR_LEN + 1];

    (void)state;
    assert_int_equal(hx_uuid_parse(text, strlen(text), &u), HX_OK);
    assert_int_equal(u.b[0], 0xaa);
    assert_int_equal(u.b[15], 0xef);
    hx_uuid_format(&u, out);
    assert_string_equal(out, text);
    /* Upper case in, lower case out. */
    assert_int_equal(hx_uuid_parse("AAAAAAAA-BBBB-4CCC-8DDD-0123456789EF", 36, &v), HX_OK);
    assert_true(hx_uuid_equal(&u, &v));
    assert_false(hx_uuid_is_nil(&u));
    assert_int_equal(hx_uuid_parse("00000000-0000-0000-0000-000000000000", 36, &v), HX_OK);
    assert_true(hx_uuid_is_nil(&v));
}

/* Any single character replaced by a wrong one is refused, at every position. */
static void refuses_every_malformed_position(void **state)
{
    static const char bad[] = {'g', 'G', '-', ' ', '\0', 'x', '{', 0x7f};
    struct hx_uuid u;
    char buf[HX_UUID_STR_LEN];

    (void)state;
    for (size_t pos = 0; pos < HX_UUID_STR_LEN; pos++) {
        for (size_t k = 0; k < sizeof(bad); k++) {
            bool dash_pos = pos == 8 || pos == 13 || pos == 18 || pos == 23;
            if (bad[k] == '-' && dash_pos) {
                continue;
            }
            memcpy(buf, text, sizeof(buf));
            buf[pos] = bad[k];
            assert_int_equal(hx_uuid_parse(buf, sizeof(buf), &u), HX_ERR_BAD_UUID);
        }
        if (pos == 8 || pos == 13 || pos == 18 || pos == 23) {
            memcpy(buf, text, sizeof(buf));
            buf[pos] = 'a';
            assert_int_equal(hx_uuid_parse(buf, sizeof(buf), &u), HX_ERR_BAD_UUID);
        }
    }
}

static void refuses_wrong_lengths_and_forms(void **state)
{
    struct hx_uuid u;

    (void)state;
    assert_int_equal(hx_uuid_parse(text, 35, &u), HX_ERR_BAD_UUID);
    assert_int_equal(hx_uuid_parse("aaaaaaaa-bbbb-4ccc-8ddd-0123456789eff", 37, &u),
                     HX_ERR_BAD_UUID);
    assert_int_equal(hx_uuid_parse("", 0, &u), HX_ERR_BAD_UUID);
    assert_int_equal(hx_uuid_parse(NULL, 36, &u), HX_ERR_BAD_UUID);
    assert_int_equal(hx_uuid_parse("aaaaaaaabbbb4ccc8ddd0123456789efabcd", 36, &u),
                     HX_ERR_BAD_UUID);
    assert_int_equal(hx_uuid_parse("urn:uuid:aaaaaaaa-bbbb-4ccc-8ddd-0123", 36, &u),
                     HX_ERR_BAD_UUID);
}

static void generates_distinct_version_4(void **state)
{
    struct hx_uuid a, b;
    char out[HX_UUID_STR_LEN + 1];

    (void)state;
    assert_int_equal(hx_uuid_generate(&a), HX_OK);
    assert_int_equal(hx_uuid_generate(&b), HX_OK);
    assert_false(hx_uuid_equal(&a, &b));
    assert_int_equal(a.b[6] >> 4, 4);
    assert_int_equal(a.b[8] >> 6, 2);
    hx_uuid_format(&a, out);
    assert_int_equal(out[14], '4');
    struct hx_uuid back;
    assert_int_equal(hx_uuid_parse(out, strlen(out), &back), HX_OK);
    assert_true(hx_uuid_equal(&a, &back));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_and_formats),
        cmocka_unit_test(refuses_every_malformed_position),
        cmocka_unit_test(refuses_wrong_lengths_and_forms),
        cmocka_unit_test(generates_distinct_version_4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
