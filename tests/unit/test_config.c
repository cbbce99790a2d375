#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/uuid.h"

/* A miniature node config: the reference's shape plus every option type. */
struct addr_list {
    size_t n;
    char **hosts;
};

struct cfg {
    struct hx_uuid uuid;
    char host[64];
    uint16_t port;
    int32_t offset;
    uint32_t qkd_port;
    bool colorless;
    int level;
    char password[32];
    struct addr_list peers;
};

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

static void free_peers(void *field)
{
    struct addr_list *l = field;

    for (size_t i = 0; i < l->n; i++) {
        free(l->hosts[i]);
    }
    free(l->hosts);
    l->hosts = NULL;
    l->n = 0;
}

static hx_err parse_peers(struct json_object *v, void *field, char *why, size_t why_len)
{
    struct addr_list *l = field;
    size_t n;

    if (!json_object_is_type(v, json_type_array)) {
        snprintf(why, why_len, "expected a list of host names");
        return HX_ERR_BAD_TYPE;
    }
    n = json_object_array_length(v);
    if ((l->hosts = calloc(n + 1, sizeof(char *))) == NULL) {
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct json_object *h = json_object_array_get_idx(v, i);
        if (!json_object_is_type(h, json_type_string)) {
            snprintf(why, why_len, "element %zu is not a string", i);
            return HX_ERR_BAD_TYPE;
        }
        l->hosts[l->n++] = strdup(json_object_get_string(h));
    }
    return HX_OK;
}

static struct json_object *print_peers(const void *field)
{
    const struct addr_list *l = field;
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; i < l->n; i++) {
        json_object_array_add(a, json_object_new_string(l->hosts[i]));
    }
    return a;
}

static const struct hx_cfg_opt table[] = {
    HX_CFG_OPT_UUID("uuid", struct cfg, uuid, NULL, HX_CFG_REQUIRED, "node UUID"),
    HX_CFG_OPT_STR("server.host", struct cfg, host, 1, "\"127.0.0.1\"", 0, "listen address"),
    HX_CFG_OPT_INT("server.port", struct cfg, port, 1, 65535, "65430", 0, "listen port"),
    HX_CFG_OPT_INT("server.offset", struct cfg, offset, -100, 100, "-5", 0, "signed"),
    HX_CFG_OPT_INT("qkd.port", struct cfg, qkd_port, 0, 4000000000LL, "54000", 0, "u32"),
    HX_CFG_OPT_BOOL("logging.colorless", struct cfg, colorless, "false", "no colours"),
    HX_CFG_OPT_ENUM("logging.level", struct cfg, level, levels, "\"info\"", "log level"),
    HX_CFG_OPT_STR("password", struct cfg, password, 0, "\"\"", HX_CFG_SECRET, "a secret"),
    HX_CFG_OPT_CUSTOM("peers", struct cfg, peers, parse_peers, print_peers, free_peers, "[]", 0,
                      "peer host names"),
};
#define N (sizeof(table) / sizeof(table[0]))

static hx_err load_text(const char *text, struct cfg *c, char *why, size_t why_len)
{
    struct json_object *root = json_tokener_parse(text);
    hx_err e;

    assert_non_null(root);
    memset(c, 0, sizeof(*c));
    assert_int_equal(hx_cfg_defaults(table, N, c, why, why_len), HX_OK);
    e = hx_cfg_apply(table, N, c, root, "test.json", why, why_len);
    json_object_put(root);
    return e;
}

static void defaults_then_file(void **state)
{
    struct cfg c;
    char why[256];

    (void)state;
    assert_int_equal(
        load_text(
            "{\"uuid\": \"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa\", \"server\": {\"port\": 3001},"
            " \"logging\": {\"level\": \"DEBUG\"}, \"peers\": [\"bob\", \"charlie\"]}",
            &c, why, sizeof(why)),
        HX_OK);
    assert_int_equal(c.uuid.b[0], 0xaa);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 3001);
    assert_int_equal(c.offset, -5);
    assert_int_equal(c.qkd_port, 54000);
    assert_false(c.colorless);
    assert_int_equal(c.level, 3);
    assert_int_equal(c.peers.n, 2);
    assert_string_equal(c.peers.hosts[1], "charlie");
    hx_cfg_free(table, N, &c);
    assert_int_equal(c.peers.n, 0);
}

struct bad_case {
    const char *json;
    hx_err err;
    const char *why;
};

static void bad_values_name_file_key_and_reason(void **state)
{
    static const struct bad_case cases[] = {
        {"{}", HX_ERR_MISSING_FIELD, "test.json: key 'uuid': required key missing (node UUID)"},
        {"{\"uuid\": \"x\"}", HX_ERR_BAD_UUID,
         "test.json: key 'uuid': not a UUID of the form 8-4-4-4-12 hex digits"},
        {"{\"uuid\": 5}", HX_ERR_BAD_TYPE,
         "test.json: key 'uuid': expected a UUID string, got int"},
        {"{\"colour\": 1}", HX_ERR_UNKNOWN_FIELD, "test.json: key 'colour': unknown key"},
        {"{\"server\": {\"prot\": 1}}", HX_ERR_UNKNOWN_FIELD,
         "test.json: key 'server.prot': unknown key"},
        {"{\"server\": 3}", HX_ERR_BAD_TYPE,
         "test.json: key 'server': expected an object, got int"},
        {"{\"server\": {\"port\": 0}}", HX_ERR_BAD_VALUE,
         "test.json: key 'server.port': 0 is outside the range 1..65535"},
        {"{\"server\": {\"port\": 65536}}", HX_ERR_BAD_VALUE,
         "test.json: key 'server.port': 65536 is outside the range 1..65535"},
        {"{\"server\": {\"port\": \"80\"}}", HX_ERR_BAD_TYPE,
         "test.json: key 'server.port': expected an integer, got string"},
        {"{\"server\": {\"port\": 80.5}}", HX_ERR_BAD_TYPE,
         "test.json: key 'server.port': expected an integer, got double"},
        {"{\"server\": {\"offset\": -101}}", HX_ERR_BAD_VALUE,
         "test.json: key 'server.offset': -101 is outside the range -100..100"},
        {"{\"qkd\": {\"port\": 99999999999999999999}}", HX_ERR_BAD_VALUE, NULL},
        {"{\"server\": {\"host\": \"\"}}", HX_ERR_BAD_VALUE,
         "test.json: key 'server.host': must have at least 1 characters"},
        {"{\"logging\": {\"colorless\": 1}}", HX_ERR_BAD_TYPE,
         "test.json: key 'logging.colorless': expected true or false, got int"},
        {"{\"logging\": {\"level\": \"loud\"}}", HX_ERR_BAD_VALUE,
         "test.json: key 'logging.level': 'loud' is not one of error, warn, info, debug"},
        {"{\"peers\": [1]}", HX_ERR_BAD_TYPE, "test.json: key 'peers': element 0 is not a string"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg c;
        char why[256] = "";
        char text[256];
        const char *json = cases[i].json;

        /* Add the required uuid unless the case is about it. */
        if (strstr(json, "uuid") == NULL && strcmp(json, "{}") != 0) {
            snprintf(text, sizeof(text), "{\"uuid\": \"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa\", %s",
                     json + 1);
            json = text;
        }
        assert_int_equal(load_text(json, &c, why, sizeof(why)), cases[i].err);
        if (cases[i].why != NULL) {
            assert_string_equal(why, cases[i].why);
        } else {
            assert_non_null(strstr(why, "test.json: key 'qkd.port': "));
        }
        hx_cfg_free(table, N, &c);
    }
}

static void string_too_long_for_its_field(void **state)
{
    struct cfg c;
    char why[256], text[512];
    char host[80];

    (void)state;
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(text, sizeof(text),
             "{\"uuid\": \"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa\", \"server\": {\"host\": \"%s\"}}",
             host);
    assert_int_equal(load_text(text, &c, why, sizeof(why)), HX_ERR_BAD_VALUE);
    assert_string_equal(why,
                        "test.json: key 'server.host': string longer than 63 bytes or with a NUL");
    hx_cfg_free(table, N, &c);
}

static void effective_config_round_trips(void **state)
{
    struct cfg c, d;
    char why[256];
    struct json_object *j, *pw;

    (void)state;
    assert_int_equal(load_text("{\"uuid\": \"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa\","
                               " \"password\": \"hunter2\", \"peers\": [\"bob\"]}",
                               &c, why, sizeof(why)),
                     HX_OK);
    j = hx_cfg_to_json(table, N, &c);
    assert_non_null(j);
    const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
    assert_null(strstr(text, "hunter2"));
    assert_true(json_object_object_get_ex(j, "password", &pw));
    assert_string_equal(json_object_get_string(pw), "<redacted>");
    /* Everything but the secret loads back to the same values. */
    json_object_object_del(j, "password");
    memset(&d, 0, sizeof(d));
    assert_int_equal(hx_cfg_defaults(table, N, &d, why, sizeof(why)), HX_OK);
    assert_int_equal(hx_cfg_apply(table, N, &d, j, "printed", why, sizeof(why)), HX_OK);
    assert_memory_equal(&c.uuid, &d.uuid, sizeof(c.uuid));
    assert_string_equal(c.host, d.host);
    assert_int_equal(c.port, d.port);
    assert_int_equal(c.offset, d.offset);
    assert_int_equal(d.peers.n, 1);
    json_object_put(j);
    hx_cfg_free(table, N, &c);
    hx_cfg_free(table, N, &d);
}

static void loads_files(void **state)
{
    char path[] = "/tmp/hx-test-config-XXXXXX";
    struct cfg c;
    char why[256];
    int fd;
    static const char body[] = "{\"uuid\": \"bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb\"}\n";

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    memset(&c, 0, sizeof(c));
    assert_int_equal(hx_cfg_load_file(table, N, &c, path, why, sizeof(why)), HX_OK);
    assert_int_equal(c.uuid.b[15], 0xbb);
    assert_int_equal(c.port, 65430);
    hx_cfg_free(table, N, &c);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "{\"uuid\": ", 9), 9);
    close(fd);
    assert_int_equal(hx_cfg_load_file(table, N, &c, path, why, sizeof(why)), HX_ERR_BAD_JSON);
    assert_non_null(strstr(why, path));
    hx_cfg_free(table, N, &c);
    unlink(path);

    assert_int_equal(hx_cfg_load_file(table, N, &c, path, why, sizeof(why)), HX_ERR_IO_NOT_FOUND);
    assert_non_null(strstr(why, "cannot read: file not found"));
    assert_int_equal(hx_cfg_load_file(table, N, &c, "/tmp", why, sizeof(why)), HX_ERR_IO);
    hx_cfg_free(table, N, &c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_then_file),
        cmocka_unit_test(bad_values_name_file_key_and_reason),
        cmocka_unit_test(string_too_long_for_its_field),
        cmocka_unit_test(effective_config_round_trips),
        cmocka_unit_test(loads_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
