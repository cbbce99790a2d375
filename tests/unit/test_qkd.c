/* source/qkd + source/qkd014: KME key replies are type-checked strictly and fail closed (issue 19
 * item 6): nothing a KME sends is coerced into key bytes; a batch's JSON GET_KEYs each ask for
 * their own index (against a KME thread on loopback). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/json.h"
#include "hykex/hykex.h"
#include "proto/etsi004.h"
#include "source/qkd.h"
#include "source/qkd014.h"

/* key_buffer of 4 elements: the first three fine, the last one is `last`. */
static uint32_t reply4(const char *last, char *msg, size_t msg_len)
{
    char json[200];
    uint8_t key[4];
    uint32_t st = 99;

    snprintf(json, sizeof(json), "{\"status\": 0, \"key_buffer\": [1, 2, 3, %s]}", last);
    assert_int_equal(
        hx_qkd_parse_key_reply(json, strlen(json), "kme:1", key, sizeof(key), &st, msg, msg_len),
        HX_OK);
    return st;
}

static void json_key_buffer_strict(void **state)
{
    static const char *bad[] = {"\"4\"", "4.0", "4.5", "true", "null", "256", "-1", "[4]", "{}"};
    char msg[200];
    uint8_t key[4];
    uint32_t st;

    (void)state;
    assert_int_equal(reply4("255", msg, sizeof(msg)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(reply4(bad[i], msg, sizeof(msg)), HYKEX_STATUS_NO_QKD_CONNECTION);
        assert_non_null(strstr(msg, "KME kme:1"));
        assert_non_null(strstr(msg, "element 3"));
    }
    /* exact length: one short, one long */
    const char *shorter = "{\"status\": 0, \"key_buffer\": [1, 2, 3]}";
    const char *longer = "{\"status\": 0, \"key_buffer\": [1, 2, 3, 4, 5]}";
    assert_int_equal(
        hx_qkd_parse_key_reply(shorter, strlen(shorter), "kme:1", key, 4, &st, msg, sizeof(msg)),
        HX_OK);
    assert_int_equal(st, HYKEX_STATUS_NO_QKD_CONNECTION);
    assert_non_null(strstr(msg, "3 bytes, asked for 4"));
    assert_int_equal(
        hx_qkd_parse_key_reply(longer, strlen(longer), "kme:1", key, 4, &st, msg, sizeof(msg)),
        HX_OK);
    assert_int_equal(st, HYKEX_STATUS_NO_QKD_CONNECTION);
    /* key_buffer not an array, or a string status */
    const char *str = "{\"status\": 0, \"key_buffer\": \"AQIDBA==\"}";
    assert_int_equal(
        hx_qkd_parse_key_reply(str, strlen(str), "kme:1", key, 4, &st, msg, sizeof(msg)), HX_OK);
    assert_int_equal(st, HYKEX_STATUS_NO_QKD_CONNECTION);
    const char *sst = "{\"status\": \"0\", \"key_buffer\": [1, 2, 3, 4]}";
    assert_int_equal(
        hx_qkd_parse_key_reply(sst, strlen(sst), "kme:1", key, 4, &st, msg, sizeof(msg)), HX_OK);
    assert_int_equal(st, HYKEX_STATUS_NO_QKD_CONNECTION);
    /* the KME's own status passes through */
    const char *two = "{\"status\": 2, \"message\": \"not yet\"}";
    assert_int_equal(
        hx_qkd_parse_key_reply(two, strlen(two), "kme:1", key, 4, &st, msg, sizeof(msg)), HX_OK);
    assert_int_equal(st, 2);
}

static hx_err parse014(const char *key, const char *id, size_t bytes, char *msg, size_t msg_len)
{
    char json[400];
    uint8_t keys[16];
    struct hx_uuid ids[1];

    snprintf(json, sizeof(json), "{\"keys\": [{\"key_ID\": %s, \"key\": %s}]}", id, key);
    return hx_qkd014_parse_keys(json, strlen(json), 1, bytes, keys, ids, false, msg, msg_len);
}

#define ID "\"01010101-0101-0101-0101-010101010101\""

static void etsi014_key_strict(void **state)
{
    char msg[200];

    (void)state;
    /* 4 bytes = "AQIDBA==", 5 bytes = "AQIDBAU=", 6 bytes = "AQIDBAUG" */
    assert_int_equal(parse014("\"AQIDBA==\"", ID, 4, msg, sizeof(msg)), HX_OK);
    assert_int_equal(parse014("\"AQIDBAU=\"", ID, 5, msg, sizeof(msg)), HX_OK);
    assert_int_equal(parse014("\"AQIDBAUG\"", ID, 6, msg, sizeof(msg)), HX_OK);
    static const char *bad4[] = {
        "\"AQIDBA\"",      /* padding missing */
        "\"AQIDBA=\"",     /* padding short */
        "\"AQID BA==\"",   /* a space inside */
        "\"AQIDBA==\\n\"", /* a line break after */
        "\"AQI*BA==\"",    /* not the alphabet */
        "\"AQIDBAU=\"",    /* 5 bytes */
        "\"AQID\"",        /* 3 bytes */
        "\"A=IDBA==\"",    /* '=' inside */
        "12345678",        /* not a string */
        "[1, 2, 3, 4]",    "null",
    };
    for (size_t i = 0; i < sizeof(bad4) / sizeof(bad4[0]); i++) {
        assert_int_equal(parse014(bad4[i], ID, 4, msg, sizeof(msg)), HX_ERR_PROTO);
    }
    assert_non_null(strstr(msg, "refused"));
    /* key_ID must be a string holding a UUID */
    assert_int_equal(parse014("\"AQIDBA==\"", "1", 4, msg, sizeof(msg)), HX_ERR_PROTO);
    assert_int_equal(parse014("\"AQIDBA==\"", "[" ID "]", 4, msg, sizeof(msg)), HX_ERR_PROTO);
}

/* An OPEN_CONNECT reply's key_stream_id from a JSON-dialect KME: opaque ids kept as given,
 * malformed ones refused with status 4 naming the KME and the fault (issue 12). */
static uint32_t open_reply(const char *json, struct hx_qkd_ksid *id, struct hykex_qos *q, char *msg,
                           size_t msg_len)
{
    uint32_t st = 99;

    memset(id, 0, sizeof(*id));
    assert_int_equal(hx_qkd_parse_open_reply(json, strlen(json), "kme:7", q, id, &st, msg, msg_len),
                     HX_OK);
    return st;
}

static void json_open_reply_opaque_ids(void **state)
{
    struct hx_qkd_ksid id;
    struct hykex_qos q;
    char msg[300], big[400];

    (void)state;
    memset(&q, 0, sizeof(q));
    assert_int_equal(
        open_reply("{\"status\": 0, \"key_stream_id\": \"stream#1/a\"}", &id, &q, msg, sizeof(msg)),
        0);
    assert_string_equal(id.s, "stream#1/a");
    assert_int_equal(open_reply("{\"status\": 1, \"key_stream_id\": "
                                "\"ABCDEF01-2345-4678-89AB-CDEF01234567\"}",
                                &id, &q, msg, sizeof(msg)),
                     1);
    assert_string_equal(id.s, "ABCDEF01-2345-4678-89AB-CDEF01234567"); /* as given */
    assert_int_equal(
        open_reply("{\"status\": 0, \"key_stream_id\": \"a b\"}", &id, &q, msg, sizeof(msg)),
        HYKEX_STATUS_NO_QKD_CONNECTION);
    assert_non_null(strstr(msg, "kme:7"));
    assert_non_null(strstr(msg, "printable"));
    assert_true(hx_qkd_ksid_is_none(&id));
    assert_int_equal(
        open_reply("{\"status\": 0, \"key_stream_id\": 17}", &id, &q, msg, sizeof(msg)),
        HYKEX_STATUS_NO_QKD_CONNECTION);
    assert_non_null(strstr(msg, "not a string"));
    assert_int_equal(
        open_reply("{\"status\": 0, \"key_stream_id\": \"\"}", &id, &q, msg, sizeof(msg)),
        HYKEX_STATUS_NO_QKD_CONNECTION);
    assert_non_null(strstr(msg, "empty"));
    snprintf(big, sizeof(big), "{\"status\": 0, \"key_stream_id\": \"%0129d\"}", 0);
    assert_int_equal(open_reply(big, &id, &q, msg, sizeof(msg)), HYKEX_STATUS_NO_QKD_CONNECTION);
    assert_non_null(strstr(msg, "longer than 128"));
    /* a refusal's id is not taken; 7 carries the counter-proposal */
    assert_int_equal(open_reply("{\"status\": 7, \"key_stream_id\": \"x\", \"qos\": "
                                "{\"min_bps\": 5, \"jitter\": 10}}",
                                &id, &q, msg, sizeof(msg)),
                     7);
    assert_true(hx_qkd_ksid_is_none(&id));
    assert_int_equal(q.min_bps, 5);
    assert_int_equal(q.jitter, 10);
}

/* A JSON-dialect KME on loopback for one connection: reads GET_KEY requests (framed and decoded
 * as a KME does), records each one's index and stream id, and answers each with a 4-byte key
 * whose first byte is its index + 1. */
struct kme {
    int lfd, bad;
    uint32_t n, index[16];
    char ksid[16][HX_QKD_KSID_MAX + 1];
};

static void *kme_main(void *arg)
{
    struct kme *k = arg;
    struct hx_json_stream *in = NULL;
    int fd = accept(k->lfd, NULL, NULL);
    char buf[4096];
    ssize_t n;

    /* no cmocka asserts in this thread: what goes wrong is counted in k->bad */
    if (fd < 0 || hx_json_stream_new(&hx_json_limits_default, &in) != HX_OK) {
        k->bad++;
        return NULL;
    }
    while (k->n < 16 && (n = read(fd, buf, sizeof(buf))) > 0) {
        struct json_object *o;
        const char *why;
        hx_err je;
        if (hx_json_stream_feed(in, buf, (size_t)n) != HX_OK) {
            k->bad++;
            break;
        }
        enum hx_json_event ev;
        while (k->n < 16 && (ev = hx_json_stream_next(in, &o, &je, &why)) != HX_JSON_NEED_MORE) {
            if (ev == HX_JSON_ERROR) {
                fprintf(stderr, "KME: %s\n", why);
                k->bad++;
                continue;
            }
            struct hx_004_request req;
            char msg[300], reply[128];
            if (hx_004_json_decode_request_ex(o, &req, true, msg, sizeof(msg)) != HX_OK ||
                req.cmd != HX_004_GET_KEY || !req.has_index) {
                k->bad++;
            }
            json_object_put(o);
            k->index[k->n] = req.index;
            snprintf(k->ksid[k->n++], sizeof(k->ksid[0]), "%s", req.ksid_text.s);
            snprintf(reply, sizeof(reply), "{\"status\": 0, \"key_buffer\": [%u, 2, 3, 4]}",
                     (unsigned)(req.index + 1) & 255u);
            if (write(fd, reply, strlen(reply)) != (ssize_t)strlen(reply)) {
                k->bad++;
            }
        }
    }
    hx_json_stream_free(in);
    close(fd);
    return NULL;
}

/* A batch's GET_KEYs to a JSON KME: every request names its own index and the stream's id as
 * the KME gave it (here one that JSON must escape), and each key lands at its position; with
 * the requests written three at a time. */
static void json_get_many_asks_each_index(void **state)
{
    struct kme k = {.n = 0};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    struct hx_qkd_client c = {
        .protocol = 1, .host = "127.0.0.1", .timeout_ms = 5000, .pipeline = 3};
    static const char id[] = "ks\"index\":7\\/x";
    struct hx_qkd_ksid ksid;
    uint8_t keys[6 * 4];
    uint32_t done = 0, st = 99;
    char msg[300], why[200];
    pthread_t t;

    (void)state;
    assert_int_equal(hx_qkd_ksid_set(&ksid, id, strlen(id), why, sizeof(why)), HX_OK);
    assert_true((k.lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(bind(k.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(k.lfd, 1), 0);
    assert_int_equal(getsockname(k.lfd, (struct sockaddr *)&a, &alen), 0);
    c.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&t, NULL, kme_main, &k), 0);
    hx_err ge = hx_qkd_get_many(&c, &ksid, 98, 6, keys, 4, &done, &st, msg, sizeof(msg));
    if (ge != HX_OK) {
        pthread_join(t, NULL);
        fail_msg("get_many: %d: %s (KME: %u requests, %d faults)", (int)ge, msg, k.n, k.bad);
    }
    assert_int_equal(st, 0);
    assert_int_equal(done, 6);
    pthread_join(t, NULL);
    close(k.lfd);
    assert_int_equal(k.bad, 0);
    assert_int_equal(k.n, 6);
    for (uint32_t i = 0; i < 6; i++) {
        assert_int_equal(k.index[i], 98 + i); /* 98, 99, 100, ...: the digits' count changes */
        assert_string_equal(k.ksid[i], id);
        assert_int_equal(keys[i * 4], 98 + i + 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_key_buffer_strict),
        cmocka_unit_test(etsi014_key_strict),
        cmocka_unit_test(json_open_reply_opaque_ids),
        cmocka_unit_test(json_get_many_asks_each_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
