#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"

static const hx_err all[] = {
    HX_OK,
    HX_ERR_IO,
    HX_ERR_IO_CLOSED,
    HX_ERR_IO_TIMEOUT,
    HX_ERR_IO_PERM,
    HX_ERR_IO_NOT_FOUND,
    HX_ERR_PROTO,
    HX_ERR_TRUNCATED,
    HX_ERR_TOO_LARGE,
    HX_ERR_TOO_DEEP,
    HX_ERR_BAD_JSON,
    HX_ERR_BAD_TYPE,
    HX_ERR_BAD_VALUE,
    HX_ERR_BAD_UUID,
    HX_ERR_UNKNOWN_FIELD,
    HX_ERR_MISSING_FIELD,
    HX_ERR_CRYPTO,
    HX_ERR_VERIFY,
    HX_ERR_RANDOM,
    HX_ERR_STATE,
    HX_ERR_NOT_FOUND,
    HX_ERR_EXISTS,
    HX_ERR_NO_KEY,
    HX_ERR_USAGE,
    HX_ERR_INVALID_ARG,
    HX_ERR_CONFIG,
    HX_ERR_UNSUPPORTED,
    HX_ERR_INTERNAL,
    HX_ERR_NOMEM,
    HX_ERR_NOSPACE,
};
#define N_ALL (sizeof(all) / sizeof(all[0]))

static void every_code_has_its_own_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ALL; i++) {
        const char *t = hx_strerror(all[i]);
        assert_non_null(t);
        assert_string_not_equal(t, "unknown error");
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(t, hx_strerror(all[j]));
        }
    }
}

static void unknown_codes_have_a_text(void **state)
{
    (void)state;
    assert_string_equal(hx_strerror((hx_err)99), "unknown error");
    assert_string_equal(hx_strerror((hx_err)-5), "unknown error");
    assert_string_equal(hx_strerror((hx_err)123456), "unknown error");
}

static void categories_follow_the_blocks(void **state)
{
    (void)state;
    assert_int_equal(hx_err_category(HX_OK), HX_ERRCAT_NONE);
    assert_int_equal(hx_err_category(HX_ERR_IO_TIMEOUT), HX_ERRCAT_IO);
    assert_int_equal(hx_err_category(HX_ERR_TRUNCATED), HX_ERRCAT_PROTO);
    assert_int_equal(hx_err_category(HX_ERR_VERIFY), HX_ERRCAT_CRYPTO);
    assert_int_equal(hx_err_category(HX_ERR_EXISTS), HX_ERRCAT_STATE);
    assert_int_equal(hx_err_category(HX_ERR_CONFIG), HX_ERRCAT_USAGE);
    assert_int_equal(hx_err_category(HX_ERR_NOMEM), HX_ERRCAT_INTERNAL);
    assert_int_equal(hx_err_category((hx_err)42), HX_ERRCAT_INTERNAL);
    assert_string_equal(hx_err_category_name(HX_ERRCAT_PROTO), "proto");
    assert_string_equal(hx_err_category_name(HX_ERRCAT_NONE), "none");
    assert_string_equal(hx_err_category_name((enum hx_err_category)77), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_its_own_text),
        cmocka_unit_test(unknown_codes_have_a_text),
        cmocka_unit_test(categories_follow_the_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
