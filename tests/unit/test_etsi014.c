/*
 * proto/etsi014: the 014 server's requests (every field, every refusal, every cut, too long)
 * and replies (the error object, the key container read back by hykexd's own 014 client).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "proto/etsi014.h"
#include "source/qkd014.h"

#define ID1 "bc490419-7d60-487f-adc1-4ddcc177c139"
#define ID2 "0a782fb5-3434-48fe-aa4d-14f41d46cf92"

/* From a heap copy of exactly len bytes, so that ASan sees a read past the end. */
static hx_err key_req(const char *s, size_t len, struct hx_014_key_req *rq,
                      struct hx_014_problem *p)
{
    char *copy = malloc(len + 1);
    hx_err e;

    assert_non_null(copy);
    memcpy(copy, s, len);
    e = hx_014_parse_key_req(copy, len, rq, p);
    free(copy);
    return e;
}

static void refused_req(const char *s, const char *want)
{
    struct hx_014_key_req rq;
    struct hx_014_problem p = {"", ""};

    if (key_req(s, strlen(s), &rq, &p) == HX_OK) {
        fail_msg("accepted: %s", s);
    }
    if (strstr(p.msg, want) == NULL && strstr(p.detail, want) == NULL) {
        fail_msg("'%s': message '%s' / '%s' does not name '%s'", s, p.msg, p.detail, want);
    }
}

static void key_request(void **state)
{
    static const char full[] =
        "{\"number\": 3, \"size\": 512, \"additional_slave_SAE_IDs\": "
        "[\"SAE_C\"], \"extension_mandatory\": [{\"a\": 1}], "
        "\"extension_optional\": [{\"b\": 2}]}";
    struct hx_014_key_req rq;
    struct hx_014_problem p = {"", ""};

    (void)state;
    assert_int_equal(key_req(full, strlen(full), &rq, &p), HX_OK);
    assert_int_equal(rq.number, 3);
    assert_int_equal(rq.size_bits, 512);
    assert_int_equal(rq.n_additional_slaves, 1);
    assert_true(rq.extension_mandatory);
    assert_int_equal(key_req("{}", 2, &rq, &p), HX_OK);
    assert_int_equal(rq.number, 0); /* not given: the server's defaults */
    assert_int_equal(rq.size_bits, 0);
    assert_false(rq.extension_mandatory);
    assert_int_equal(key_req("{\"extension_mandatory\": []}", 27, &rq, &p), HX_OK);
    assert_false(rq.extension_mandatory);
    /* every cut of a valid request is refused */
    for (size_t n = 0; n < strlen(full); n++) {
        assert_int_not_equal(key_req(full, n, &rq, &p), HX_OK);
    }
    refused_req("{\"number\": \"2\"}", "number");
    refused_req("{\"number\": -1}", "integers");
    refused_req("{\"size\": 1073741825}", "integers");
    refused_req("{\"size\": 2.5}", "integers");
    refused_req("{\"additional_slave_SAE_IDs\": \"SAE_C\"}", "must be a list");
    refused_req("{\"additional_slave_SAE_IDs\": [5]}", "SAE ids");
    refused_req("{\"extension_mandatory\": {}}", "must be a list");
    refused_req("{\"extension_optional\": 1}", "must be a list");
    refused_req("{\"colour\": 1}", "unknown field");
    refused_req("[1]", "not a JSON object");
    refused_req("{\"number\": 1} {}", "not a JSON object");
    char *big = malloc(HX_014_MAX_BODY + 2);
    assert_non_null(big);
    memset(big, ' ', HX_014_MAX_BODY + 1);
    big[0] = '{';
    big[HX_014_MAX_BODY] = '}';
    assert_int_equal(key_req(big, HX_014_MAX_BODY + 1, &rq, &p), HX_ERR_TOO_LARGE);
    free(big);
}

static void key_query(void **state)
{
    struct hx_014_param ok[] = {{"number", "7"}, {"size", "128"}};
    struct hx_014_param twice[] = {{"number", "7"}, {"number", "8"}};
    struct hx_014_param other[] = {{"key_ID", ID1}};
    struct hx_014_param bad[] = {{"size", "12a"}}, neg[] = {{"size", "-1"}},
                        huge[] = {{"number", "99999999999"}}, empty[] = {{"number", ""}};
    struct hx_014_key_req rq;
    struct hx_014_problem p = {"", ""};

    (void)state;
    assert_int_equal(hx_014_parse_key_query(ok, 2, &rq, &p), HX_OK);
    assert_int_equal(rq.number, 7);
    assert_int_equal(rq.size_bits, 128);
    assert_int_equal(hx_014_parse_key_query(NULL, 0, &rq, &p), HX_OK);
    assert_int_equal(rq.number, 0);
    assert_int_equal(hx_014_parse_key_query(twice, 2, &rq, &p), HX_ERR_BAD_VALUE);
    assert_non_null(strstr(p.msg, "twice"));
    assert_int_equal(hx_014_parse_key_query(other, 1, &rq, &p), HX_ERR_UNKNOWN_FIELD);
    assert_int_equal(hx_014_parse_key_query(bad, 1, &rq, &p), HX_ERR_BAD_VALUE);
    assert_int_equal(hx_014_parse_key_query(neg, 1, &rq, &p), HX_ERR_BAD_VALUE);
    assert_int_equal(hx_014_parse_key_query(huge, 1, &rq, &p), HX_ERR_BAD_VALUE);
    assert_int_equal(hx_014_parse_key_query(empty, 1, &rq, &p), HX_ERR_BAD_VALUE);
}

static hx_err key_ids(const char *s, size_t len, struct hx_uuid *ids, size_t cap, size_t *n,
                      struct hx_014_problem *p)
{
    char *copy = malloc(len + 1);
    hx_err e;

    assert_non_null(copy);
    memcpy(copy, s, len);
    e = hx_014_parse_key_ids(copy, len, ids, cap, n, p);
    free(copy);
    return e;
}

static void key_ids_request(void **state)
{
    static const char full[] = "{\"key_IDs\": [{\"key_ID\": \"" ID1 "\"}, {\"key_ID\": \"" ID2
                               "\", \"master_SAE_ID\": \"SAE_A\"}]}";
    struct hx_uuid ids[2], want;
    struct hx_014_problem p = {"", ""};
    size_t n;

    (void)state;
    assert_int_equal(key_ids(full, strlen(full), ids, 2, &n, &p), HX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(hx_uuid_parse(ID2, 36, &want), HX_OK);
    assert_true(hx_uuid_equal(&ids[1], &want));
    for (size_t cut = 0; cut < strlen(full); cut++) {
        assert_int_not_equal(key_ids(full, cut, ids, 2, &n, &p), HX_OK);
        assert_int_equal(n, 0);
    }
    assert_int_equal(key_ids(full, strlen(full), ids, 1, &n, &p), HX_ERR_TOO_LARGE);
    static const char *const bad[] = {
        "{}",
        "{\"key_IDs\": []}",
        "{\"key_IDs\": {}}",
        "{\"key_IDs\": [\"" ID1 "\"]}",
        "{\"key_IDs\": [{\"key_ID\": 5}]}",
        "{\"key_IDs\": [{\"key_ID\": \"{" ID1 "}\"}]}",
        "{\"key_IDs\": [{\"key\": \"" ID1 "\"}]}",
        "{\"key_IDs\": [{\"key_ID\": \"" ID1 "\", \"colour\": 1}]}",
        "{\"key_IDs\": [{\"key_ID\": \"" ID1 "\"}], \"colour\": 1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_not_equal(key_ids(bad[i], strlen(bad[i]), ids, 2, &n, &p), HX_OK);
        assert_true(p.msg[0] != '\0');
        assert_int_equal(n, 0);
    }
}

static void key_id_query(void **state)
{
    struct hx_014_param two[] = {{"key_ID", ID1}, {"key_ID", ID2}};
    struct hx_014_param bad[] = {{"key_ID", "nope"}}, other[] = {{"number", "1"}};
    struct hx_uuid ids[2];
    struct hx_014_problem p = {"", ""};
    size_t n;

    (void)state;
    assert_int_equal(hx_014_parse_key_id_query(two, 2, ids, 2, &n, &p), HX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(hx_014_parse_key_id_query(two, 2, ids, 1, &n, &p), HX_ERR_TOO_LARGE);
    assert_int_equal(n, 0);
    assert_int_equal(hx_014_parse_key_id_query(bad, 1, ids, 2, &n, &p), HX_ERR_BAD_UUID);
    assert_int_equal(hx_014_parse_key_id_query(other, 1, ids, 2, &n, &p), HX_ERR_UNKNOWN_FIELD);
    assert_int_equal(hx_014_parse_key_id_query(NULL, 0, ids, 2, &n, &p), HX_ERR_MISSING_FIELD);
}

static void sae_ids(void **state)
{
    (void)state;
    assert_true(hx_014_sae_id_ok("SAE_A", 5));
    assert_true(hx_014_sae_id_ok("enc-1.example.org", 17));
    assert_false(hx_014_sae_id_ok("", 0));
    assert_false(hx_014_sae_id_ok("a/b", 3));
    assert_false(hx_014_sae_id_ok("a b", 3));
    assert_false(hx_014_sae_id_ok("a%2f", 4));
    assert_false(hx_014_sae_id_ok("a?b", 3));
    assert_false(hx_014_sae_id_ok("caf\xc3\xa9", 5));
    char long_id[66];
    memset(long_id, 'a', sizeof(long_id));
    assert_true(hx_014_sae_id_ok(long_id, 64));
    assert_false(hx_014_sae_id_ok(long_id, 65));
}

static void replies(void **state)
{
    struct hx_writer w;
    struct json_object *o, *d, *m;
    struct hx_uuid ids[3], back[3];
    uint8_t keys[3][33], got[3 * 33];
    char msg[200];

    (void)state;
    hx_writer_init_dynamic(&w, 1u << 20);
    assert_int_equal(hx_014_write_error(&w, "size is \"bad\"", "size"), HX_OK);
    assert_int_equal(hx_write_u8(&w, 0), HX_OK);
    o = json_tokener_parse((const char *)w.data);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "message", &m));
    assert_string_equal(json_object_get_string(m), "size is \"bad\"");
    assert_true(json_object_object_get_ex(o, "details", &d));
    assert_int_equal(json_object_array_length(d), 1);
    json_object_put(o);
    hx_writer_reset(&w);
    assert_int_equal(hx_014_write_error(&w, "no details", ""), HX_OK);
    assert_int_equal(hx_write_u8(&w, 0), HX_OK);
    o = json_tokener_parse((const char *)w.data);
    assert_false(json_object_object_get_ex(o, "details", &d));
    json_object_put(o);

    char *text = hx_014_error_json("no key", NULL); /* the simulator's KMEs use this one */
    assert_non_null(text);
    assert_string_equal(text, "{\"message\":\"no key\"}");
    free(text);

    /* 1, 2 and 3 bytes past a multiple of 3, and more than one 48-byte base64 piece */
    static const size_t lens[] = {32, 33, 31};
    for (size_t li = 0; li < 3; li++) {
        hx_writer_reset(&w);
        assert_int_equal(hx_014_write_keys_begin(&w), HX_OK);
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(hx_uuid_generate(&ids[i]), HX_OK);
            memset(keys[i], (int)(0x41 + i + li), sizeof(keys[i]));
            assert_int_equal(hx_014_write_keys_add(&w, i == 0, &ids[i], keys[i], lens[li]), HX_OK);
        }
        assert_int_equal(hx_014_write_keys_end(&w), HX_OK);
        assert_int_equal(hx_qkd014_parse_keys((const char *)w.data, w.len, 3, lens[li], got, back,
                                              false, msg, sizeof(msg)),
                         HX_OK);
        for (size_t i = 0; i < 3; i++) {
            assert_true(hx_uuid_equal(&ids[i], &back[i]));
            assert_memory_equal(got + i * lens[li], keys[i], lens[li]);
        }
    }
    /* a key longer than one 48-byte base64 piece, not a multiple of it */
    uint8_t big[100], big_back[100];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 7 + 1);
    }
    hx_writer_reset(&w);
    assert_int_equal(hx_014_write_keys_begin(&w), HX_OK);
    assert_int_equal(hx_014_write_keys_add(&w, true, &ids[0], big, sizeof(big)), HX_OK);
    assert_int_equal(hx_014_write_keys_end(&w), HX_OK);
    assert_int_equal(hx_qkd014_parse_keys((const char *)w.data, w.len, 1, sizeof(big), big_back,
                                          back, false, msg, sizeof(msg)),
                     HX_OK);
    assert_memory_equal(big, big_back, sizeof(big));
    assert_int_equal(hx_014_write_keys_add(&w, false, &ids[0], big, 0), HX_ERR_INVALID_ARG);
    hx_writer_wipe(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_request),     cmocka_unit_test(key_query),
        cmocka_unit_test(key_ids_request), cmocka_unit_test(key_id_query),
        cmocka_unit_test(sae_ids),         cmocka_unit_test(replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
