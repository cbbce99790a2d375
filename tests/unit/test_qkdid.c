/* common/qkdid: a KME's key_stream_id, opaque (bounded, printable) or a UUID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/qkdid.h"

static void takes_opaque_ids(void **state)
{
    struct hx_qkd_ksid id;
    char why[120], max[HX_QKD_KSID_MAX + 1];

    (void)state;
    assert_int_equal(hx_qkd_ksid_set(&id, "ks_00ff-stream#7", 16, why, sizeof(why)), HX_OK);
    assert_string_equal(id.s, "ks_00ff-stream#7");
    assert_false(hx_qkd_ksid_is_none(&id));
    assert_false(hx_qkd_ksid_is_canonical_uuid(&id));
    memset(max, 'x', HX_QKD_KSID_MAX);
    assert_int_equal(hx_qkd_ksid_set(&id, max, HX_QKD_KSID_MAX, why, sizeof(why)), HX_OK);
    assert_int_equal(strlen(id.s), HX_QKD_KSID_MAX);
}

static void refuses_bad_ids(void **state)
{
    struct hx_qkd_ksid id;
    char why[120], big[HX_QKD_KSID_MAX + 2];
    const char *bad[] = {"a b", "a\tb", "a\nb", "\x7f", "\x80z", "a\"b\x01"};

    (void)state;
    assert_int_equal(hx_qkd_ksid_set(&id, "", 0, why, sizeof(why)), HX_ERR_BAD_VALUE);
    assert_non_null(strstr(why, "empty"));
    memset(big, 'x', sizeof(big));
    assert_int_equal(hx_qkd_ksid_set(&id, big, HX_QKD_KSID_MAX + 1, why, sizeof(why)),
                     HX_ERR_TOO_LARGE);
    assert_non_null(strstr(why, "longer than"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(hx_qkd_ksid_set(&id, bad[i], strlen(bad[i]), why, sizeof(why)),
                         HX_ERR_BAD_VALUE);
        assert_non_null(strstr(why, "key_stream_id: byte"));
        assert_true(hx_qkd_ksid_is_none(&id)); /* nothing half-set */
    }
    /* an embedded NUL is a byte like any other: refused */
    assert_int_equal(hx_qkd_ksid_set(&id, "ab\0cd", 5, why, sizeof(why)), HX_ERR_BAD_VALUE);
}

static void uuids_both_ways(void **state)
{
    struct hx_uuid u, back, nil;
    struct hx_qkd_ksid a, b;
    char why[120];
    const char *up = "0123ABCD-4567-4890-8BCD-0123456789AB";

    (void)state;
    memset(&nil, 0, sizeof(nil));
    hx_qkd_ksid_from_uuid(&a, &nil);
    assert_true(hx_qkd_ksid_is_none(&a));
    assert_int_equal(hx_uuid_parse(up, strlen(up), &u), HX_OK);
    hx_qkd_ksid_from_uuid(&a, &u);
    assert_string_equal(a.s, "0123abcd-4567-4890-8bcd-0123456789ab");
    assert_true(hx_qkd_ksid_is_canonical_uuid(&a));
    assert_true(hx_qkd_ksid_to_uuid(&a, &back));
    assert_true(hx_uuid_equal(&u, &back));
    /* upper case: the same stream, kept as given, not canonical */
    assert_int_equal(hx_qkd_ksid_set(&b, up, strlen(up), why, sizeof(why)), HX_OK);
    assert_string_equal(b.s, up);
    assert_false(hx_qkd_ksid_is_canonical_uuid(&b));
    assert_true(hx_qkd_ksid_equal(&a, &b));
    assert_int_equal(hx_qkd_ksid_set(&b, "opaque-1", 8, why, sizeof(why)), HX_OK);
    assert_false(hx_qkd_ksid_equal(&a, &b));
    assert_false(hx_qkd_ksid_to_uuid(&b, &back));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(takes_opaque_ids),
        cmocka_unit_test(refuses_bad_ids),
        cmocka_unit_test(uuids_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
