/*
 * proto/etsi004_fast.c: the GET_KEY request and reply read without a tree. Every message it
 * takes is also decoded with json-c here and must give the same result; every message it
 * leaves to json-c is one whose meaning a second parser could read differently (escapes,
 * non-ASCII, numbers with fractions, a member twice, an unknown member in a request) or that
 * breaks a limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "proto/etsi004.h"

static const struct hx_json_limits reply_lim = {
    .max_message = 1u << 20, .max_depth = 8, .max_string = 4096, .max_members = 70000};
static const struct hx_json_limits req_lim = {
    .max_message = 64 * 1024, .max_depth = 8, .max_string = 4096, .max_members = 64};

#define KSID "0b3fd8a2-6c55-4b28-9d43-1f2e3a4b5c6d"

/* The reply as hykexd and the simulator write it, and the key it holds. */
static const char reply_text[] =
    "{\"status\": 0, \"key_buffer\": [0, 1, 127, 128, 255, 42], \"index\": 7, "
    "\"metadata\": {\"size\": 0, \"buffer\": \"\"}}";
static const uint8_t reply_key[] = {0, 1, 127, 128, 255, 42};

static bool fast_reply(const char *text, uint8_t *key, size_t cap, struct hx_004_key_reply *r,
                       char *msg, size_t msg_cap)
{
    memset(r, 0, sizeof(*r));
    r->key = key;
    r->key_cap = cap;
    r->message = msg;
    r->message_cap = msg_cap;
    return hx_004_fast_key_reply(text, strlen(text), &reply_lim, r);
}

/* json-c's reading of the same text agrees with what the fast path took. */
static void same_as_json_c(const char *text, const struct hx_004_key_reply *r)
{
    struct json_object *o = NULL, *v;
    char why[200];

    assert_int_equal(hx_json_parse_object(text, strlen(text), &reply_lim, &o, why, sizeof(why)),
                     HX_OK);
    assert_true(json_object_object_get_ex(o, "status", &v));
    assert_true(json_object_is_type(v, json_type_int));
    assert_int_equal(json_object_get_int64(v), r->status);
    assert_int_equal(json_object_object_get_ex(o, "key_buffer", &v), r->has_key);
    if (r->has_key) {
        assert_int_equal(json_object_array_length(v), r->key_len);
        for (size_t i = 0; i < r->key_len; i++) {
            assert_int_equal(json_object_get_int(json_object_array_get_idx(v, i)), r->key[i]);
        }
    }
    assert_int_equal(json_object_object_get_ex(o, "index", &v), r->has_index);
    if (r->has_index) {
        assert_int_equal(json_object_get_int64(v), r->index);
    }
    assert_int_equal(json_object_object_get_ex(o, "message", &v), r->has_message);
    if (r->has_message) {
        assert_string_equal(json_object_get_string(v), r->message);
    }
    json_object_put(o);
}

static void reply_plain(void **state)
{
    struct hx_004_key_reply r;
    uint8_t key[32];
    char msg[64];

    (void)state;
    assert_true(fast_reply(reply_text, key, sizeof(key), &r, msg, sizeof(msg)));
    assert_int_equal(r.status, 0);
    assert_true(r.has_key);
    assert_int_equal(r.key_len, sizeof(reply_key));
    assert_memory_equal(key, reply_key, sizeof(reply_key));
    assert_true(r.has_index);
    assert_int_equal(r.index, 7);
    assert_false(r.has_message);
    same_as_json_c(reply_text, &r);

    /* json-c's own separators, members in another order, a status with a message, nesting
     * in members nobody reads, and no key at all */
    static const char *const others[] = {
        "{\"key_buffer\":[9,8],\"status\":0}",
        "{\"status\": 2, \"message\": \"no key yet\", \"key_buffer\": []}",
        "{\"status\": 0, \"key_buffer\": [1], \"x\": [[1, {\"y\": null}], true, false, \"s\"]}",
        "{\"status\": -3}",
        "{ \"status\" : 0 ,\n\t\"key_buffer\": [ 5 , 6 ]\r\n}",
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        const char *t = others[i];
        assert_true(fast_reply(t, key, sizeof(key), &r, msg, sizeof(msg)));
        same_as_json_c(t, &r);
    }
    assert_true(fast_reply(others[1], key, sizeof(key), &r, msg, sizeof(msg)));
    assert_int_equal(r.status, 2);
    assert_string_equal(msg, "no key yet");
}

/* What hykexd's API and the simulator write (hx_004_json_write_key_reply, both separators,
 * with metadata) is taken: the fast path is the one every key goes through. */
static void reply_as_written_is_taken(void **state)
{
    static const char *const metas[] = {
        "{\"age\": 12, \"hops\": 0, \"method\": \"hkdf\", \"sources\": [\"ML-KEM-768\", \"QKD\"]}",
        "{\"age\": 999999999, \"hops\": 1}",
    };
    uint8_t key[64], got[64];
    struct hx_004_key_reply r;
    struct hx_writer w;
    char msg[8];

    (void)state;
    for (size_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)(i * 37 + 255);
    }
    hx_writer_init_dynamic(&w, 1u << 16);
    for (int spaced = 0; spaced <= 1; spaced++) {
        for (size_t m = 0; m < 2; m++) {
            hx_writer_reset(&w);
            assert_int_equal(hx_004_json_write_key_reply(&w, key, sizeof(key), 4294967295u,
                                                         metas[m], spaced != 0),
                             HX_OK);
            memset(&r, 0, sizeof(r));
            r.key = got;
            r.key_cap = sizeof(got);
            r.message = msg;
            r.message_cap = sizeof(msg);
            assert_true(hx_004_fast_key_reply((const char *)w.data, w.len, &reply_lim, &r));
            assert_int_equal(r.status, 0);
            assert_int_equal(r.key_len, sizeof(key));
            assert_memory_equal(got, key, sizeof(key));
            assert_true(r.has_index);
            assert_int_equal(r.index, 4294967295u);
        }
    }
    hx_writer_wipe(&w);
}

/* Each of these is left to json-c, and the key buffer is wiped when it is. */
static void reply_left_to_json_c(void **state)
{
    static const char *const texts[] = {
        "{\"key_buffer\": [1, 2]}",                            /* no status */
        "{\"status\": 0.0, \"key_buffer\": [1]}",              /* a fraction */
        "{\"status\": 0, \"key_buffer\": [1e0]}",              /* an exponent */
        "{\"status\": 0, \"x\": 1.5, \"key_buffer\": [1]}",    /* any fraction */
        "{\"status\": \"0\", \"key_buffer\": [1]}",            /* a string status */
        "{\"status\": 0, \"key_buffer\": [1, 256]}",           /* out of range */
        "{\"status\": 0, \"key_buffer\": [-1]}",               /* out of range */
        "{\"status\": 0, \"key_buffer\": [1, \"2\"]}",         /* a string element */
        "{\"status\": 0, \"key_buffer\": [1, [2]]}",           /* nested */
        "{\"status\": 0, \"key_buffer\": [1, null]}",          /* null */
        "{\"status\": 0, \"key_buffer\": {\"0\": 1}}",         /* not an array */
        "{\"status\": 0, \"status\": 1, \"key_buffer\": [1]}", /* a member twice */
        "{\"status\": 0, \"key_buffer\": [1], \"key_buffer\": [2]}",
        "{\"status\": 0, \"key_buffer\": [1], \"message\": \"\\u00e9\"}",     /* an escape */
        "{\"status\": 0, \"key_buffer\": [1], \"message\": \"caf\xc3\xa9\"}", /* non-ASCII */
        "{\"status\": 0, \"key_buffer\": [1], \"x\": \"a\\\"b\"}",            /* any backslash */
        "{\"status\": 0, \"key_buffer\": [01]}",                              /* a leading zero */
        "{\"status\": 0, \"key_buffer\": [1,]}",                              /* a trailing comma */
        "{\"status\": 0, \"key_buffer\": [1]} {}",                            /* a second value */
        "{\"status\": 0, \"key_buffer\": [1]}\"x}", /* an open string after it */
        "{\"status\": 0, \"key_buffer\": [1]} 5}",
        "{\"status\": 0, \"key_buffer\": [1]} ",                          /* anything after it */
        "{'status': 0}",                                                  /* json-c takes this */
        "{\"status\": 0, \"key_buffer\": [1, 2, 3, 4, 5]}",               /* longer than the cap */
        "{\"status\": 0, \"key_buffer\": [1], \"x\": [[[[[[[[1]]]]]]]]}", /* too deep */
        "{\"status\": 9223372036854775808}",                              /* beyond int64 */
        "{\"status\": 1000000000000000000}",                              /* 19 digits */
        "{\"status\": 0, \"key_buffer\": [17.0]}",                        /* a fraction */
        "[0]",
        "",
    };
    struct hx_004_key_reply r;
    uint8_t key[4];
    char msg[64];

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        memset(key, 0xa5, sizeof(key));
        if (fast_reply(texts[i], key, sizeof(key), &r, msg, sizeof(msg))) {
            fail_msg("taken: %s", texts[i]);
        }
        for (size_t k = 0; k < sizeof(key); k++) {
            assert_int_equal(key[k], 0);
        }
        assert_int_equal(r.key_len, 0);
    }
}

/* Limits beyond what the decoder's per-level state holds are refused, not trusted. */
static void unusable_limits(void **state)
{
    static const struct hx_json_limits deep = {.max_message = 4096,
                                               .max_depth = HX_JSON_MAX_DEPTH_LIMIT + 1,
                                               .max_string = 64,
                                               .max_members = 64};
    static const struct hx_json_limits flat = {
        .max_message = 4096, .max_depth = 0, .max_string = 64, .max_members = 64};
    struct hx_004_key_reply r = {0};
    struct hx_004_request req;
    uint8_t key[8];
    const char *t = "{\"status\": 0}";

    (void)state;
    r.key = key;
    r.key_cap = sizeof(key);
    assert_true(hx_004_fast_key_reply(t, strlen(t), NULL, &r));
    assert_false(hx_004_fast_key_reply(t, strlen(t), &deep, &r));
    assert_false(hx_004_fast_key_reply(t, strlen(t), &flat, &r));
    t = "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID "\"}}";
    assert_true(hx_004_fast_get_request(t, strlen(t), NULL, &req));
    assert_false(hx_004_fast_get_request(t, strlen(t), &deep, &req));
}

/* hx_json_stream_parse_text parses only a message next_text just framed. */
static void parse_text_needs_a_framed_message(void **state)
{
    struct hx_json_stream *js;
    struct json_object *o;
    const char *text, *why;
    size_t len;
    hx_err e;

    (void)state;
    assert_int_equal(hx_json_stream_new(&reply_lim, &js), HX_OK);
    assert_int_equal(hx_json_stream_parse_text(js, &o, &e, &why), HX_JSON_ERROR);
    assert_int_equal(e, HX_ERR_INVALID_ARG);
    assert_int_equal(hx_json_stream_feed(js, reply_text, strlen(reply_text)), HX_OK);
    assert_int_equal(hx_json_stream_feed(js, "{\"a\"", 4), HX_OK);
    assert_int_equal(hx_json_stream_next_text(js, &text, &len, &e, &why), HX_JSON_OBJECT);
    assert_int_equal(len, strlen(reply_text));
    assert_memory_equal(text, reply_text, len);
    assert_int_equal(hx_json_stream_parse_text(js, &o, &e, &why), HX_JSON_OBJECT);
    json_object_put(o);
    /* once only, and not after a call that framed nothing */
    assert_int_equal(hx_json_stream_parse_text(js, &o, &e, &why), HX_JSON_ERROR);
    assert_int_equal(hx_json_stream_next_text(js, &text, &len, &e, &why), HX_JSON_NEED_MORE);
    assert_int_equal(hx_json_stream_parse_text(js, &o, &e, &why), HX_JSON_ERROR);
    hx_json_stream_free(js);
}

/* The limits json-c's path applies (common/json.c check_tree) bind here too, alike. */
static void reply_limits(void **state)
{
    static const struct hx_json_limits tight = {
        .max_message = 4096, .max_depth = 3, .max_string = 10, .max_members = 4};
    static const struct {
        const char *text;
        bool ok;
    } cases[] = {
        {"{\"status\": 0, \"key_buffer\": [1, 2, 3, 4]}", true},
        {"{\"status\": 0, \"key_buffer\": [1, 2, 3, 4, 5]}", false}, /* 5 elements > 4 */
        {"{\"status\": 0, \"a\": 1, \"b\": 2, \"c\": 3}", true},
        {"{\"status\": 0, \"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4}", false}, /* 5 members */
        {"{\"status\": 0, \"x\": \"1234567890\"}", true},
        {"{\"status\": 0, \"x\": \"12345678901\"}", false}, /* a string of 11 > 10 */
        {"{\"status\": 0, \"12345678901\": 1}", false},     /* a key of 11 > 10 */
        {"{\"status\": 0, \"x\": [[1]]}", true},            /* depth 3 */
        {"{\"status\": 0, \"x\": [[[1]]]}", false},         /* depth 4 > 3 */
    };
    struct hx_004_key_reply r = {0};
    struct json_object *o;
    uint8_t key[8];
    char why[200];

    (void)state;
    r.key = key;
    r.key_cap = sizeof(key);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = cases[i].text;
        o = NULL;
        if (hx_004_fast_key_reply(t, strlen(t), &tight, &r) != cases[i].ok ||
            (hx_json_parse_object(t, strlen(t), &tight, &o, why, sizeof(why)) == HX_OK) !=
                cases[i].ok) {
            fail_msg("case %zu: %s", i, t);
        }
        json_object_put(o);
    }
}

static bool fast_req(const char *text, struct hx_004_request *req)
{
    return hx_004_fast_get_request(text, strlen(text), &req_lim, req);
}

/* json-c's decoder gives the same request, with and without opaque ids. */
static void same_request(const char *text, const struct hx_004_request *fast)
{
    struct hx_004_request slow;
    struct json_object *o = NULL;
    char why[300];

    assert_int_equal(hx_json_parse_object(text, strlen(text), &req_lim, &o, why, sizeof(why)),
                     HX_OK);
    for (int opaque = 0; opaque <= 1; opaque++) {
        assert_int_equal(hx_004_json_decode_request_ex(o, &slow, opaque != 0, why, sizeof(why)),
                         HX_OK);
        assert_memory_equal(&slow, fast, sizeof(slow));
    }
    json_object_put(o);
}

static void request_plain(void **state)
{
    static const char *const texts[] = {
        /* as the reference clients and libhykex send it */
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID
        "\", \"index\": 5, "
        "\"metadata\": {\"size\": 1024, \"buffer\": \"\"}}}",
        "{\"data\": {\"index\": 4294967295, \"key_stream_id\": \"" KSID
        "\"}, \"command\": "
        "\"GET_KEY\"}",
        "{\"command\":\"GET_KEY\",\"data\":{\"key_stream_id\":\"" KSID "\"}}",
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID
        "\", "
        "\"metadata\": {\"buffer\": \"x\"}}}",
    };
    struct hx_004_request req;

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        assert_true(fast_req(texts[i], &req));
        assert_int_equal(req.cmd, HX_004_GET_KEY);
        same_request(texts[i], &req);
    }
    assert_true(fast_req(texts[0], &req));
    assert_true(req.has_index);
    assert_int_equal(req.index, 5);
    assert_int_equal(req.metadata_size, 1024);
    assert_true(fast_req(texts[2], &req));
    assert_false(req.has_index);
}

static void request_left_to_json_c(void **state)
{
    static const char *const texts[] = {
        "{\"command\": \"CLOSE\", \"data\": {\"key_stream_id\": \"" KSID "\"}}",
        "{\"command\": \"OPEN_CONNECT\", \"data\": {\"source\": \"a\", \"destination\": \"b\"}}",
        "{\"command\": \"GET_KEY\"}",                                         /* no data */
        "{\"command\": \"GET_KEY\", \"data\": {}}",                           /* no key_stream_id */
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"k-1\"}}", /* opaque */
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": null}}",
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID "\", \"index\": -1}}",
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID
        "\", \"index\": 4294967296}}",
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID "\", \"index\": 1.0}}",
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID "\", \"x\": 1}}",
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID "\"}, \"x\": 1}",
        "{\"command\": \"GET_KEY\", \"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID
        "\"}}",
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID
        "\", \"index\": 1, "
        "\"index\": 2}}",
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID
        "\", "
        "\"metadata\": {\"size\": 1, \"other\": 2}}}",
        "{\"command\": \"GET_KEY\", \"data\": {\"key_stream_id\": \"" KSID
        "\", "
        "\"metadata\": {\"buffer\": [1]}}}",
        "{\"command\": \"GET_\\u004bEY\", \"data\": {\"key_stream_id\": \"" KSID "\"}}",
        "{\"command\": \"get_key\", \"data\": {\"key_stream_id\": \"" KSID "\"}}",
        "{\"command\": \"GET_KEY\", \"data\": [1]}",
    };
    struct hx_004_request req;

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (fast_req(texts[i], &req)) {
            fail_msg("taken: %s", texts[i]);
        }
    }
}

/* hx_004_json_write_get_request: byte for byte what json-c encodes, for every index, and a
 * new text when anything but the index changes. */
static void request_text_kept(void **state)
{
    static const uint32_t indexes[] = {7, 0, 9, 10, 99999, 4294967295u, 12};
    struct hx_004_get_text t;
    struct hx_004_request req;
    struct hx_writer w;

    (void)state;
    memset(&t, 0, sizeof(t));
    memset(&req, 0, sizeof(req));
    req.cmd = HX_004_GET_KEY;
    req.has_index = true;
    assert_int_equal(hx_uuid_parse(KSID, strlen(KSID), &req.ksid), HX_OK);
    hx_writer_init_dynamic(&w, 4096);
    for (size_t i = 0; i < 2 * sizeof(indexes) / sizeof(indexes[0]); i++) {
        size_t k = i % (sizeof(indexes) / sizeof(indexes[0]));
        req.index = indexes[k];
        if (i == 4) {
            req.metadata_size = 512; /* another request: a new text */
        }
        if (i == 9) {
            req.ksid.b[0] ^= 1;
        }
        struct json_object *o = hx_004_json_encode_request(&req);
        const char *want = json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED);
        hx_writer_reset(&w);
        assert_int_equal(hx_004_json_write_get_request(&t, &req, &w), HX_OK);
        assert_int_equal(w.len, strlen(want));
        assert_memory_equal(w.data, want, w.len);
        assert_non_null(t.text); /* kept for the next */
        json_object_put(o);
    }
    /* no index: encoded anew, nothing kept */
    req.has_index = false;
    hx_writer_reset(&w);
    assert_int_equal(hx_004_json_write_get_request(&t, &req, &w), HX_OK);
    assert_null(t.text);
    struct json_object *o = hx_004_json_encode_request(&req);
    const char *want = json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED);
    assert_int_equal(w.len, strlen(want));
    assert_memory_equal(w.data, want, w.len);
    json_object_put(o);
    hx_004_get_text_free(&t);
    hx_writer_wipe(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reply_plain),          cmocka_unit_test(reply_as_written_is_taken),
        cmocka_unit_test(unusable_limits),      cmocka_unit_test(parse_text_needs_a_framed_message),
        cmocka_unit_test(reply_left_to_json_c), cmocka_unit_test(reply_limits),
        cmocka_unit_test(request_plain),        cmocka_unit_test(request_left_to_json_c),
        cmocka_unit_test(request_text_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
