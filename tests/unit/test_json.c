#define _GNU_SOURCE /* memmem */
/*
 * The stream decoder: every split point of a multi-message stream, coalesced messages,
 * garbage between messages, oversize input, deep nesting, and the per-value limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/printbuf.h>

#include "common/buf.h"
#include "common/json.h"

/* Three requests as the reference clients send them, back to back, with a '}' in a string. */
static const char three[] =
    "{\"command\": \"OPEN_CONNECT\", \"data\": {\"source\": \"hybrid://SPI_1@aaaa?x={}\","
    " \"qos\": {\"key_chunk_size\": 32, \"timeout\": 0}}}"
    "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"k\\\"}\", \"index\": 0,"
    " \"metadata\": {\"size\": 46, \"buffer\": \"[{\"}}}"
    "{\"command\": \"CLOSE\", \"data\": {\"key_stream_id\": \"k\"}}";

/* What a test run saw: commands of the objects, and error codes, in order. */
struct seen {
    char items[16][48];
    size_t n;
};

static void drain(struct hx_json_stream *s, struct seen *out)
{
    struct json_object *o, *cmd;
    enum hx_json_event ev;
    const char *why;
    hx_err e;

    while ((ev = hx_json_stream_next(s, &o, &e, &why)) != HX_JSON_NEED_MORE) {
        assert_true(out->n < 16);
        if (ev == HX_JSON_OBJECT) {
            assert_int_equal(e, HX_OK);
            assert_true(json_object_is_type(o, json_type_object));
            snprintf(out->items[out->n++], sizeof(out->items[0]), "%s",
                     json_object_object_get_ex(o, "command", &cmd) ? json_object_get_string(cmd)
                                                                   : "(object)");
            json_object_put(o);
        } else {
            assert_null(o);
            assert_true(why != NULL && why[0] != '\0');
            snprintf(out->items[out->n++], sizeof(out->items[0]), "error:%s", hx_strerror(e));
        }
    }
}

static void feed_all(struct hx_json_stream *s, const char *p, size_t len, struct seen *out)
{
    assert_int_equal(hx_json_stream_feed(s, p, len), HX_OK);
    drain(s, out);
}

static void expect(const struct seen *got, size_t n, ...)
{
    va_list ap;

    assert_int_equal(got->n, n);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(got->items[i], va_arg(ap, const char *));
    }
    va_end(ap);
}

static void coalesced_messages_in_one_read(void **state)
{
    struct hx_json_stream *s;
    struct seen got = {0};

    (void)state;
    assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
    feed_all(s, three, strlen(three), &got);
    expect(&got, 3, "OPEN_CONNECT", "GET_KEY", "CLOSE");
    assert_int_equal(hx_json_stream_pending(s), 0);
    hx_json_stream_free(s);
}

/* Cut the stream in two at every byte; then in three at every pair of points. */
static void every_split_point(void **state)
{
    size_t len = strlen(three);

    (void)state;
    for (size_t i = 0; i <= len; i++) {
        struct hx_json_stream *s;
        struct seen got = {0};

        assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
        feed_all(s, three, i, &got);
        feed_all(s, three + i, len - i, &got);
        expect(&got, 3, "OPEN_CONNECT", "GET_KEY", "CLOSE");
        hx_json_stream_free(s);
    }
    for (size_t i = 0; i <= len; i += 3) {
        for (size_t j = i; j <= len; j += 5) {
            struct hx_json_stream *s;
            struct seen got = {0};

            assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
            feed_all(s, three, i, &got);
            feed_all(s, three + i, j - i, &got);
            feed_all(s, three + j, len - j, &got);
            expect(&got, 3, "OPEN_CONNECT", "GET_KEY", "CLOSE");
            hx_json_stream_free(s);
        }
    }
}

static void one_byte_at_a_time(void **state)
{
    struct hx_json_stream *s;
    struct seen got = {0};

    (void)state;
    assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
    for (size_t i = 0; three[i] != '\0'; i++) {
        feed_all(s, three + i, 1, &got);
        if (three[i + 1] != '\0') {
            assert_true(got.n < 3);
        }
    }
    expect(&got, 3, "OPEN_CONNECT", "GET_KEY", "CLOSE");
    hx_json_stream_free(s);
}

static void white_space_between_messages_is_fine(void **state)
{
    struct hx_json_stream *s;
    struct seen got = {0};
    static const char in[] = " \r\n\t{\"command\": \"A\"}\n\n  {\"command\": \"B\"}\n";

    (void)state;
    assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
    feed_all(s, in, strlen(in), &got);
    expect(&got, 2, "A", "B");
    assert_int_equal(hx_json_stream_pending(s), 0);
    hx_json_stream_free(s);
}

/* Garbage gives one error per run and the next object still comes through. */
static void garbage_between_messages(void **state)
{
    struct hx_json_stream *s;
    struct seen got = {0};
    static const char in[] =
        "{\"command\": \"A\"}hello world]]\"{\"command\": \"B\"}"
        "123{\"command\": \"C\"}";

    (void)state;
    assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
    feed_all(s, in, strlen(in), &got);
    /* The '"' before B's '{' is garbage too; B's object starts at its own '{'. */
    expect(&got, 5, "A", "error:malformed JSON", "B", "error:malformed JSON", "C");
    hx_json_stream_free(s);
}

static void syntax_error_inside_a_message_spares_the_next(void **state)
{
    struct hx_json_stream *s;
    struct seen got = {0};
    static const char in[] =
        "{\"command\": GET_KEY}{\"a\": 1,}{\"a\": [1, 2}"
        "{\"command\": \"OK\"}{\"x\": tru}{\"command\": \"OK2\"}";

    (void)state;
    assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
    feed_all(s, in, strlen(in), &got);
    expect(&got, 6, "error:malformed JSON", "error:malformed JSON", "error:malformed JSON", "OK",
           "error:malformed JSON", "OK2");
    hx_json_stream_free(s);
}

static void oversize_message_is_skipped_whole(void **state)
{
    struct hx_json_limits lim = hx_json_limits_default;
    struct hx_json_stream *s;
    struct seen got = {0};
    char *big;
    size_t n = 0;

    (void)state;
    lim.max_message = 1000;
    lim.max_members = 100000;
    big = malloc(20000);
    assert_non_null(big);
    n += (size_t)snprintf(big, 20000, "{\"command\": \"X\", \"pad\": [");
    while (n < 10000) {
        n += (size_t)snprintf(big + n, 20000 - n, "{\"k\": \"}}}\"}, ");
    }
    n += (size_t)snprintf(big + n, 20000 - n, "1]}{\"command\": \"after\"}");
    assert_int_equal(hx_json_stream_new(&lim, &s), HX_OK);
    /* In chunks of 700 bytes: the stream never holds much more than max_message. */
    for (size_t off = 0; off < n; off += 700) {
        size_t chunk = n - off < 700 ? n - off : 700;
        feed_all(s, big + off, chunk, &got);
        assert_true(hx_json_stream_pending(s) <= lim.max_message + 700);
    }
    expect(&got, 2, "error:input larger than allowed", "after");
    free(big);
    hx_json_stream_free(s);
}

static void message_of_exactly_the_limit_passes(void **state)
{
    struct hx_json_limits lim = hx_json_limits_default;
    struct hx_json_stream *s;
    struct seen got = {0};
    char msg[64];

    (void)state;
    snprintf(msg, sizeof(msg), "{\"command\": \"%s\"}", "abcdef");
    lim.max_message = strlen(msg);
    assert_int_equal(hx_json_stream_new(&lim, &s), HX_OK);
    feed_all(s, msg, strlen(msg), &got);
    lim.max_message--;
    hx_json_stream_free(s);
    assert_int_equal(hx_json_stream_new(&lim, &s), HX_OK);
    feed_all(s, msg, strlen(msg), &got);
    expect(&got, 2, "abcdef", "error:input larger than allowed");
    hx_json_stream_free(s);
}

static void deep_nesting_is_refused_and_skipped(void **state)
{
    struct hx_json_stream *s;
    struct seen got = {0};
    char in[4096];
    size_t n = 0;

    (void)state;
    /* max_depth 8 by default: 8 levels pass, 9 do not; 1000 levels are skipped cheaply. */
    n += (size_t)snprintf(in + n, sizeof(in) - n, "{\"command\": \"d8\", \"a\":[[[[[[[1]]]]]]]}");
    n += (size_t)snprintf(in + n, sizeof(in) - n, "{\"command\": \"d9\", \"a\":[[[[[[[[1]]]]]]]]}");
    n += (size_t)snprintf(in + n, sizeof(in) - n, "{\"a\":");
    for (int i = 0; i < 1000; i++) {
        in[n++] = '[';
    }
    for (int i = 0; i < 1000; i++) {
        in[n++] = ']';
    }
    n += (size_t)snprintf(in + n, sizeof(in) - n, "}{\"command\": \"after\"}");
    assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
    feed_all(s, in, n, &got);
    expect(&got, 4, "d8", "error:input nested deeper than allowed",
           "error:input nested deeper than allowed", "after");
    hx_json_stream_free(s);
}

static void invalid_utf8_and_nul_are_refused(void **state)
{
    struct hx_json_stream *s;
    struct seen got = {0};
    static const char in[] =
        "{\"command\": \"\xc3\x28\"}"      /* bad continuation byte */
        "{\"command\": \"caf\xc3\xa9\"}"   /* valid UTF-8 */
        "{\"command\": \"a\\u0000b\"}"     /* escaped NUL */
        "{\"command\": \"\xed\xa0\x80\"}"; /* UTF-16 surrogate */
    (void)state;
    assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
    feed_all(s, in, sizeof(in) - 1, &got);
    assert_int_equal(got.n, 4);
    assert_string_equal(got.items[0], "error:malformed JSON");
    assert_string_equal(got.items[1], "caf\xc3\xa9");
    assert_string_equal(got.items[2], "error:value out of range or not allowed");
    /* json-c's UTF-8 check is structural; a CESU surrogate may pass it. Either way, no crash. */
    hx_json_stream_free(s);

    /* A raw NUL byte inside a string. */
    static const char raw[] = "{\"command\": \"a\0b\"}{\"command\": \"B\"}";
    memset(&got, 0, sizeof(got));
    assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
    feed_all(s, raw, sizeof(raw) - 1, &got);
    expect(&got, 2, "error:malformed JSON", "B");
    hx_json_stream_free(s);
}

static void long_strings_and_wide_containers_are_refused(void **state)
{
    struct hx_json_limits lim = hx_json_limits_default;
    struct hx_json_stream *s;
    struct seen got = {0};
    char in[4096];
    size_t n = 0;

    (void)state;
    lim.max_string = 10;
    lim.max_members = 4;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "{\"command\": \"0123456789\"}");  /* 10: ok */
    n += (size_t)snprintf(in + n, sizeof(in) - n, "{\"command\": \"0123456789A\"}"); /* 11 */
    n +=
        (size_t)snprintf(in + n, sizeof(in) - n, "{\"command\": \"w\", \"a\": [1,2,3,4]}"); /* ok */
    n += (size_t)snprintf(in + n, sizeof(in) - n,
                          "{\"command\": \"w\", \"a\": [1,2,3,4,5]}"); /* 5 */
    n += (size_t)snprintf(in + n, sizeof(in) - n,
                          "{\"command\": \"m\", \"a\":1, \"b\":2, \"c\":3, \"d\":4}");
    n += (size_t)snprintf(in + n, sizeof(in) - n, "{\"a_key_that_is_long\": 1}");
    assert_int_equal(hx_json_stream_new(&lim, &s), HX_OK);
    feed_all(s, in, n, &got);
    expect(&got, 6, "0123456789", "error:input larger than allowed", "w",
           "error:input larger than allowed", "error:input larger than allowed",
           "error:input larger than allowed");
    hx_json_stream_free(s);
}

static void truncated_message_waits_for_more(void **state)
{
    struct hx_json_stream *s;
    struct seen got = {0};

    (void)state;
    assert_int_equal(hx_json_stream_new(NULL, &s), HX_OK);
    feed_all(s, three, 50, &got);
    assert_int_equal(got.n, 0);
    assert_int_equal(hx_json_stream_pending(s), 50);
    hx_json_stream_free(s); /* freeing mid-message leaks nothing (ASan checks) */
}

static void bad_limits_are_refused(void **state)
{
    struct hx_json_limits lim = hx_json_limits_default;
    struct hx_json_stream *s;

    (void)state;
    lim.max_depth = 0;
    assert_int_equal(hx_json_stream_new(&lim, &s), HX_ERR_INVALID_ARG);
    lim.max_depth = HX_JSON_MAX_DEPTH_LIMIT + 1;
    assert_int_equal(hx_json_stream_new(&lim, &s), HX_ERR_INVALID_ARG);
    lim.max_depth = 4;
    lim.max_message = 1;
    assert_int_equal(hx_json_stream_new(&lim, &s), HX_ERR_INVALID_ARG);
}

static void parses_whole_documents(void **state)
{
    struct json_object *o;
    char why[200];

    (void)state;
    assert_int_equal(hx_json_parse_object("  {\"a\": 1}\n", 11, NULL, &o, why, sizeof(why)), HX_OK);
    json_object_put(o);
    assert_int_equal(hx_json_parse_object("{\"a\": 1}{}", 10, NULL, &o, why, sizeof(why)),
                     HX_ERR_BAD_JSON);
    assert_string_equal(why, "unexpected data after the JSON object");
    assert_int_equal(hx_json_parse_object("{\"a\": 1} x", 10, NULL, &o, why, sizeof(why)),
                     HX_ERR_BAD_JSON);
    assert_int_equal(hx_json_parse_object("{\"a\": ", 6, NULL, &o, why, sizeof(why)),
                     HX_ERR_BAD_JSON);
    assert_string_equal(why, "document ends inside the JSON object");
    assert_int_equal(hx_json_parse_object("   ", 3, NULL, &o, why, sizeof(why)), HX_ERR_BAD_JSON);
    assert_string_equal(why, "document holds no JSON object");
    assert_int_equal(hx_json_parse_object("[1]", 3, NULL, &o, why, sizeof(why)), HX_ERR_BAD_JSON);
    assert_null(o);
}

/* Key buffers as ETSI 004 JSON text: every digit count, both separators, an empty key. */
static void key_arrays_are_written_in_decimal(void **state)
{
    static const uint8_t key[] = {0, 9, 10, 99, 100, 255, 7};
    struct hx_writer w;
    (void)state;

    hx_writer_init_dynamic(&w, 1024);
    assert_int_equal(hx_json_write_key_array(&w, key, sizeof(key), ", "), HX_OK);
    assert_int_equal(hx_write_u8(&w, 0), HX_OK);
    assert_string_equal((const char *)w.data, "[0, 9, 10, 99, 100, 255, 7]");
    hx_writer_reset(&w);
    assert_int_equal(hx_json_write_key_array(&w, key, 3, ","), HX_OK);
    assert_int_equal(hx_json_write_key_array(&w, key, 0, ","), HX_OK);
    assert_int_equal(hx_write_u8(&w, 0), HX_OK);
    assert_string_equal((const char *)w.data, "[0,9,10][]");
    hx_writer_wipe(&w);
    /* a buffer too small for the text: an error, never a cut array */
    uint8_t small[8];
    hx_writer_init_fixed(&w, small, sizeof(small));
    assert_int_not_equal(hx_json_write_key_array(&w, key, sizeof(key), ", "), HX_OK);
}

/* A parsed reply that held a key: numbers and strings zeroed in place, lengths kept. */
static void wipe_zeroes_numbers_and_strings(void **state)
{
    static const char text[] =
        "{\"key_buffer\": [1, 200, 3], \"key\": \"c2VjcmV0\", "
        "\"x\": {\"y\": [2.5, \"zz\"]}}";
    struct json_object *o = NULL, *v;
    char why[128];
    (void)state;

    assert_int_equal(
        hx_json_parse_object(text, sizeof(text) - 1, &hx_json_limits_default, &o, why, sizeof(why)),
        HX_OK);
    hx_json_wipe(o);
    assert_true(json_object_object_get_ex(o, "key_buffer", &v));
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(json_object_get_int64(json_object_array_get_idx(v, i)), 0);
    }
    assert_true(json_object_object_get_ex(o, "key", &v));
    assert_int_equal(json_object_get_string_len(v), 8);
    assert_memory_equal(json_object_get_string(v), "\0\0\0\0\0\0\0\0", 8);
    assert_true(json_object_object_get_ex(o, "x", &v) && json_object_object_get_ex(v, "y", &v));
    assert_true(json_object_get_double(json_object_array_get_idx(v, 0)) == 0.0);
    assert_memory_equal(json_object_get_string(json_object_array_get_idx(v, 1)), "\0\0", 2);
    json_object_put(o);
    hx_json_wipe(NULL); /* nothing to do, no crash */
}

/*
 * The tokener's own buffer: after parsing a reply whose last token is a key, that token's text
 * is in json-c's printbuf (tok->pb: a deprecated field, read here only to prove the scrub on
 * the json-c we build with); after hx_json_tokener_scrub it is not.
 */
static void tokener_scrub_overwrites_the_last_token(void **state)
{
    static const char text[] =
        "{\"keys\": [{\"key_ID\": \"x\", \"key\": \"U0VDUkVUS0VZQllURVM=\"}]}";
    json_tokener *tok = json_tokener_new();
    struct json_object *o;
    (void)state;

    assert_non_null(tok);
    o = json_tokener_parse_ex(tok, text, (int)sizeof(text) - 1);
    assert_non_null(o);
    json_object_put(o);
    assert_non_null(memmem(tok->pb->buf, (size_t)tok->pb->size, "U0VDUkVUS0VZQllURVM=", 20));
    hx_json_tokener_scrub(tok, sizeof(text) - 1);
    assert_null(memmem(tok->pb->buf, (size_t)tok->pb->size, "U0VDUkVUS0VZQllURVM=", 20));
    assert_null(memmem(tok->pb->buf, (size_t)tok->pb->size, "SVM=", 4));
    json_tokener_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(coalesced_messages_in_one_read),
        cmocka_unit_test(every_split_point),
        cmocka_unit_test(one_byte_at_a_time),
        cmocka_unit_test(white_space_between_messages_is_fine),
        cmocka_unit_test(garbage_between_messages),
        cmocka_unit_test(syntax_error_inside_a_message_spares_the_next),
        cmocka_unit_test(oversize_message_is_skipped_whole),
        cmocka_unit_test(message_of_exactly_the_limit_passes),
        cmocka_unit_test(deep_nesting_is_refused_and_skipped),
        cmocka_unit_test(invalid_utf8_and_nul_are_refused),
        cmocka_unit_test(long_strings_and_wide_containers_are_refused),
        cmocka_unit_test(truncated_message_waits_for_more),
        cmocka_unit_test(bad_limits_are_refused),
        cmocka_unit_test(parses_whole_documents),
        cmocka_unit_test(key_arrays_are_written_in_decimal),
        cmocka_unit_test(wipe_zeroes_numbers_and_strings),
        cmocka_unit_test(tokener_scrub_overwrites_the_last_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
