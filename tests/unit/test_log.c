#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"

struct capture {
    char lines[8][4096];
    size_t n;
};

static void capture_sink(void *arg, enum hx_log_level level, const char *line, size_t len)
{
    struct capture *c = arg;

    (void)level;
    assert_int_equal(strlen(line), len);
    if (c->n < 8) {
        snprintf(c->lines[c->n++], sizeof(c->lines[0]), "%s", line);
    }
}

static struct capture cap;

static int reset(void **state)
{
    (void)state;
    memset(&cap, 0, sizeof(cap));
    hx_log_set_sink(capture_sink, &cap);
    hx_log_set_timestamps(false);
    hx_log_set_level(HX_LOG_DEBUG);
    return 0;
}

static void writes_logfmt_with_function_and_line(void **state)
{
    struct hx_uuid id = {{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67,
                          0x89, 0xab, 0xcd, 0xef}};
    int line;

    (void)state;
    line = __LINE__ + 1;
    hx_info("stream opened", HX_F_UUID("stream", &id) HX_F_U64("index", 7) HX_F_I64("delta", -3)
                                 HX_F_BOOL("initiator", true) HX_F_STR("peer", "Bob"));
    assert_int_equal(cap.n, 1);
    char want[512];
    snprintf(want, sizeof(want),
             "level=info func=writes_logfmt_with_function_and_line line=%d msg=\"stream opened\" "
             "stream=12345678-9abc-def0-0123-456789abcdef index=7 delta=-3 initiator=true peer=Bob",
             line);
    assert_string_equal(cap.lines[0], want);
}

static void appends_the_error_text(void **state)
{
    (void)state;
    hx_error_r(HX_ERR_VERIFY, "batch rejected", HX_F_U64("batch", 3));
    assert_int_equal(cap.n, 1);
    assert_non_null(strstr(cap.lines[0], "level=error "));
    assert_non_null(strstr(cap.lines[0], " batch=3 err=\"verification failed\""));
}

static void filters_by_level(void **state)
{
    (void)state;
    hx_log_set_level(HX_LOG_WARN);
    hx_debug("not shown", HX_NOFIELDS);
    hx_info("not shown", HX_NOFIELDS);
    hx_warn("shown", HX_NOFIELDS);
    hx_error("shown too", HX_NOFIELDS);
    assert_int_equal(cap.n, 2);
    assert_true(hx_log_enabled(HX_LOG_ERROR));
    assert_false(hx_log_enabled(HX_LOG_INFO));
}

static void escapes_values_onto_one_line(void **state)
{
    char want[512];
    int line;

    (void)state;
    line = __LINE__ + 1;
    hx_info("x", HX_F_STR("a", "say \"hi\"\nback\\slash") HX_F_STR("b", "\x01\xff")
                     HX_F_STR("c", "") HX_F_STR("d", "k=v") HX_F_STR("e", NULL));
    snprintf(want, sizeof(want),
             "level=info func=escapes_values_onto_one_line line=%d msg=x "
             "a=\"say \\\"hi\\\"\\nback\\\\slash\" b=\"\\x01\\xff\" c=\"\" d=\"k=v\" e=(null)",
             line);
    assert_string_equal(cap.lines[0], want);
    assert_null(strchr(cap.lines[0], '\n'));
}

static void cuts_long_lines_and_says_so(void **state)
{
    char big[5000];

    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    hx_info("long", HX_F_STR("v", big));
    size_t len = strlen(cap.lines[0]);
    assert_true(len < 2048);
    assert_string_equal(cap.lines[0] + len - strlen(" truncated=true"), " truncated=true");
}

static void has_timestamps_by_default(void **state)
{
    (void)state;
    hx_log_set_timestamps(true);
    hx_info("t", HX_NOFIELDS);
    /* ts=YYYY-MM-DDTHH:MM:SS.mmmZ */
    assert_int_equal(strncmp(cap.lines[0], "ts=", 3), 0);
    assert_int_equal(cap.lines[0][13], 'T');
    assert_int_equal(cap.lines[0][26], 'Z');
    assert_int_equal(strncmp(cap.lines[0] + 27, " level=info", 11), 0);
}

static void parses_level_names(void **state)
{
    enum hx_log_level l;

    (void)state;
    assert_int_equal(hx_log_level_parse("DEBUG", &l), HX_OK);
    assert_int_equal(l, HX_LOG_DEBUG);
    assert_int_equal(hx_log_level_parse("warning", &l), HX_OK);
    assert_int_equal(l, HX_LOG_WARN);
    assert_int_equal(hx_log_level_parse("critical", &l), HX_OK);
    assert_int_equal(l, HX_LOG_ERROR);
    assert_int_equal(hx_log_level_parse("verbose", &l), HX_ERR_BAD_VALUE);
    assert_string_equal(hx_log_level_name(HX_LOG_INFO), "info");
}

/* The log file (logging_config.filename) has its own level, independent of the console's. */
static void file_has_its_own_level(void **state)
{
    char buf[4096];
    ssize_t n;
    int p[2];

    (void)state;
    assert_int_equal(pipe(p), 0);
    hx_log_set_level(HX_LOG_WARN);
    hx_log_set_file(p[1], HX_LOG_DEBUG);
    hx_debug("to the file only", HX_NOFIELDS);
    hx_warn("to both", HX_NOFIELDS);
    hx_log_set_file(-1, HX_LOG_INFO);
    hx_debug("to neither", HX_NOFIELDS);
    close(p[1]);
    n = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "level=debug"));
    assert_non_null(strstr(buf, "msg=\"to the file only\"\n"));
    assert_non_null(strstr(buf, "msg=\"to both\"\n"));
    assert_null(strstr(buf, "to neither"));
    assert_int_equal(cap.n, 1); /* the console: the warning only */
    assert_non_null(strstr(cap.lines[0], "to both"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(writes_logfmt_with_function_and_line, reset),
        cmocka_unit_test_setup(appends_the_error_text, reset),
        cmocka_unit_test_setup(filters_by_level, reset),
        cmocka_unit_test_setup(escapes_values_onto_one_line, reset),
        cmocka_unit_test_setup(cuts_long_lines_and_says_so, reset),
        cmocka_unit_test_setup(has_timestamps_by_default, reset),
        cmocka_unit_test_setup(parses_level_names, reset),
        cmocka_unit_test_setup(file_has_its_own_level, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
