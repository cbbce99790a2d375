/*
 * daemon/service: OPEN_CONNECT, GET_KEY, CLOSE, STATUS and TTL on a struct hxd set up in memory,
 * without the network. The link layer's lookups are wrapped (-Wl,--wrap): no peer link is ever
 * up, so a path that needs one gives its refusal or its timeout, and the peer node's side (its
 * STREAM_OPEN, its batches) is played by writing the streams as batch.c would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/hxd.h"
#include "daemon/persist.h"
#include "daemon/stream.h"
#include "daemon/service.h"
#include "api/handlers.h"

#define SELF "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define PEER "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
#define OTHER "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
#define QUERY "?hybridization=hkdf&key_sources=ML-KEM-768,X25519"
/* This node as the source (initiator) or as the destination (responder). */
#define SRC_SELF "hybrid://alice@" SELF QUERY
#define DST_PEER "hybrid://bob@" PEER
#define SRC_PEER "hybrid://bob@" PEER QUERY
#define DST_SELF "hybrid://alice@" SELF

struct hx_link *__wrap_hx_links_get(struct hx_links *ls, const struct hx_uuid *peer);
hx_err __wrap_hx_links_info(struct hx_links *ls, const struct hx_uuid *peer,
                            struct hx_link_info *out);

/* No link is up. */
struct hx_link *__wrap_hx_links_get(struct hx_links *ls, const struct hx_uuid *peer)
{
    (void)ls;
    (void)peer;
    return NULL;
}

hx_err __wrap_hx_links_info(struct hx_links *ls, const struct hx_uuid *peer,
                            struct hx_link_info *out)
{
    (void)ls;
    (void)peer;
    memset(out, 0x5a, sizeof(*out)); /* must be ignored */
    return HX_ERR_NOT_FOUND;
}

static char dir[64];

/* A stream id from its text, as a pointer for the calls that take one. */
#define ID(text) ((struct hx_uuid[1]){uuid_of(text)})

static struct hx_uuid uuid_of(const char *s)
{
    struct hx_uuid u;

    assert_int_equal(hx_uuid_parse(s, strlen(s), &u), HX_OK);
    return u;
}

/* A daemon of node SELF trusting PEER, no QKD, no links; a store in dir/state if durable;
 * limits: more "limits" members (", \"name\": value ...") or "". */
static struct hxd *daemon_new_limits(bool durable, const char *limits)
{
    char path[128], why[300];
    struct hxd *d = calloc(1, sizeof(*d));
    FILE *f;

    assert_non_null(d);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    assert_non_null(f = fopen(path, "w"));
    fprintf(f,
            "{\"uuid\": \"" SELF
            "\", \"certificate_config\": {\"cert_authority_path\": \"ca\", "
            "\"cert_path\": \"crt\", \"key_path\": \"key\"}, \"trusted_peers\": {\"" PEER
            "\": {\"address\": {\"host\": \"127.0.0.1\", \"port\": 9}}}, \"limits\": "
            "{\"max_streams\": 8, \"default_timeout_ms\": 300, \"max_key_chunk\": 64%s}%s%s%s}",
            limits, durable ? ", \"state_dir\": \"" : "", durable ? dir : "",
            durable ? "/state\"" : "");
    fclose(f);
    if (hxd_config_load(&d->cfg, path, NULL, why, sizeof(why)) != HX_OK) {
        fail_msg("config: %s", why);
    }
    d->max_streams = d->cfg.max_streams;
    assert_int_equal(hxd_streams_init(d), HX_OK);
    pthread_mutex_init(&d->lock, NULL);
    assert_int_equal(hx_cond_init_monotonic(&d->changed), HX_OK);
    if (hxd_persist_open(d, why, sizeof(why)) != HX_OK) {
        fail_msg("store: %s", why);
    }
    return d;
}

static struct hxd *daemon_new(bool durable)
{
    return daemon_new_limits(durable, "");
}

static void daemon_free(struct hxd *d)
{
    for (size_t i = 0; i < d->max_streams; i++) {
        if (d->streams[i].used) {
            hxd_stream_drop(d, &d->streams[i]);
        }
    }
    hxd_persist_close(d);
    hxd_streams_free(d);
    pthread_cond_destroy(&d->changed);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static int setup(void **state)
{
    (void)state;
    hx_log_set_level(HX_LOG_WARN); /* the streams' open/close lines are noise here */
    snprintf(dir, sizeof(dir), "/tmp/hykex-test-service-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The initiator's STREAM_OPEN as batch.c records it at the responder (this node). */
static void announce(struct hxd *d, const char *ksid, const char *src, uint32_t ttl_s)
{
    struct hxd_stream *s;
    char why[256];

    pthread_mutex_lock(&d->lock);
    assert_non_null(s = hxd_stream_new(d, ID(ksid)));
    s->role = HXD_RESPONDER;
    s->peer = uuid_of(PEER);
    snprintf(s->src, sizeof(s->src), "%s", src);
    snprintf(s->dst, sizeof(s->dst), "%s", DST_SELF);
    assert_int_equal(hx_uri_parse(s->src, &s->uri, why, sizeof(why)), HX_OK);
    s->qos.key_chunk_size = 32;
    s->qos.timeout_ms = 200;
    s->qos.ttl_s = ttl_s;
    s->announced = true;
    s->opened_at = hx_walltime();
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
}

/* Committed keys first..first+count-1 (byte i of key p is p + i), as a batch commits them. */
static void commit_keys(struct hxd *d, const char *ksid, uint64_t first, uint32_t count)
{
    struct hx_uuid id = uuid_of(ksid);
    struct hx_secret *keys[16];
    struct hxd_stream *s;

    assert_true(count <= 16);
    for (uint32_t i = 0; i < count; i++) {
        assert_int_equal(hx_secret_new(32, &keys[i]), HX_OK);
        for (size_t b = 0; b < 32; b++) {
            hx_secret_data_mut(keys[i])[b] = (uint8_t)(first + i + b);
        }
    }
    if (d->store != NULL) {
        assert_int_equal(hx_store_put_batch(d->store, &id, first, count, keys, HX_STORE_READY, 0),
                         HX_OK);
    }
    pthread_mutex_lock(&d->lock);
    assert_non_null(s = hxd_stream_find(d, &id));
    for (uint32_t i = 0; i < count; i++) {
        assert_int_equal(hxd_stream_add_key(s, first + i, keys[i], false), HX_OK);
    }
    if (first == s->produced) {
        s->produced = first + count;
    }
    hxd_stream_wake(d, s); /* as a batch wakes its stream's GET_KEYs */
    pthread_mutex_unlock(&d->lock);
}

static void open_as(struct hxd *d, const char *src, const char *dst, const char *ksid,
                    const char *identity, struct hxd_svc_open_res *res)
{
    struct hxd_svc_open_req q = {.source = src, .destination = dst, .identity = identity};

    q.qos.key_chunk_size = 32;
    q.qos.timeout_ms = 300;
    if (ksid != NULL) {
        q.ksid = uuid_of(ksid);
    }
    hxd_svc_open(d, &q, res);
}

/* Opens ksid as the responder (after the peer's announcement); asserts success. */
static void open_responder(struct hxd *d, const char *ksid, const char *identity)
{
    struct hxd_svc_open_res res;
    struct hx_uuid id = uuid_of(ksid);

    announce(d, ksid, SRC_PEER, 0);
    open_as(d, SRC_PEER, DST_SELF, ksid, identity, &res);
    assert_int_equal(res.r.err, HXD_SVC_OK);
    assert_int_equal(res.r.status, 0);
    assert_true(hx_uuid_equal(&res.ksid, &id));
}

static void get_as(struct hxd *d, const char *ksid, const char *identity, int64_t index,
                   struct hxd_svc_get_res *res)
{
    struct hxd_svc_get_req q = {.ksid = uuid_of(ksid), .identity = identity};

    q.has_index = index >= 0;
    q.index = index >= 0 ? (uint64_t)index : 0;
    hxd_svc_get(d, &q, res);
}

/* GET_KEY that must succeed with the key of position want. */
static void got_as(struct hxd *d, const char *ksid, const char *identity, int64_t index,
                   uint64_t want)
{
    struct hxd_svc_get_res res;

    get_as(d, ksid, identity, index, &res);
    if (res.r.err != HXD_SVC_OK) {
        fail_msg("GET_KEY %s index %lld: %d %s", ksid, (long long)index, res.r.status, res.r.msg);
    }
    assert_int_equal(res.index, want);
    assert_int_equal(hx_secret_len(res.key), 32);
    assert_int_equal(hx_secret_data(res.key)[0], (uint8_t)want);
    hx_secret_free(res.key);
}

static void got(struct hxd *d, const char *ksid, int64_t index, uint64_t want)
{
    got_as(d, ksid, "", index, want);
}

static void expect(const struct hxd_svc_result *r, enum hxd_svc_err err, int status,
                   const char *msg)
{
    assert_int_equal(r->err, err);
    assert_int_equal(r->status, status);
    if (strstr(r->msg, msg) == NULL) {
        fail_msg("message '%s' does not say '%s'", r->msg, msg);
    }
}

static size_t streams_used(struct hxd *d)
{
    size_t n = 0;

    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->max_streams; i++) {
        n += d->streams[i].used;
    }
    pthread_mutex_unlock(&d->lock);
    return n;
}

/* ---- tests ---- */

static void etsi_status_in_one_place(void **state)
{
    (void)state;
    assert_int_equal(hxd_svc_etsi_status(HXD_SVC_OK), 0);
    assert_int_equal(hxd_svc_etsi_status(HXD_SVC_REFUSED), 4);
    assert_int_equal(hxd_svc_etsi_status(HXD_SVC_QOS), 7);
    assert_int_equal(hxd_svc_etsi_status(HXD_SVC_IN_USE), 5);
    assert_int_equal(hxd_svc_etsi_status(HXD_SVC_TIMEOUT), 6);
    assert_int_equal(hxd_svc_etsi_status(HXD_SVC_NOT_OPEN), 4);
    assert_int_equal(hxd_svc_etsi_status(HXD_SVC_METADATA), 8);
    assert_int_equal(hxd_svc_etsi_status(HXD_SVC_NO_KEY), 2);
    assert_int_equal(hxd_svc_etsi_status(HXD_SVC_PEER_CLOSED), 3);
    assert_int_equal(hxd_svc_etsi_status(HXD_SVC_FAILED), 4);
}

static void open_refusals(void **state)
{
    struct hxd *d = daemon_new(false);
    struct hxd_svc_open_res res;
    struct hxd_svc_open_req q = {.source = SRC_SELF, .destination = DST_PEER, .identity = ""};

    (void)state;
    open_as(d, "hybrid://x", DST_PEER, NULL, "", &res);
    expect(&res.r, HXD_SVC_REFUSED, 4, "source: missing '@<node uuid>'");
    open_as(d, SRC_SELF, "qkd://bob@" PEER, NULL, "", &res);
    expect(&res.r, HXD_SVC_REFUSED, 4, "destination: expected hybrid://");
    open_as(d, "hybrid://alice@" SELF, DST_PEER, NULL, "", &res);
    expect(&res.r, HXD_SVC_REFUSED, 4, "source: missing ?hybridization=...&key_sources=...");
    open_as(d, SRC_SELF, DST_PEER "?key_sources=ML-KEM-512,X25519", NULL, "", &res);
    expect(&res.r, HXD_SVC_REFUSED, 4, "destination names another method or other key_sources");
    open_as(d, SRC_SELF, DST_PEER QUERY, NULL, "", &res); /* the same query is fine */
    /* issue 12: no link to the peer node is status 4 and says so (6: only the peer app) */
    expect(&res.r, HXD_SVC_UPSTREAM, 4, "peer node " PEER " unreachable (no link to it)");
    open_as(d, SRC_SELF, DST_SELF, NULL, "", &res);
    expect(&res.r, HXD_SVC_REFUSED, 4,
           "this node (" SELF ") must be exactly one of source and destination");
    open_as(d, SRC_PEER, "hybrid://carol@" OTHER, NULL, "", &res);
    expect(&res.r, HXD_SVC_REFUSED, 4, "must be exactly one of source and destination");
    open_as(d, "hybrid://alice@" SELF "?key_sources=QKD,X25519", "hybrid://carol@" OTHER, NULL, "",
            &res);
    expect(&res.r, HXD_SVC_REFUSED, 4, "node " OTHER " is not a trusted peer of this node");
    open_as(d, "hybrid://alice@" SELF "?key_sources=QKD,X25519", DST_PEER, NULL, "", &res);
    expect(&res.r, HXD_SVC_REFUSED, 4, "QKD requested but this node has no QKD source");
    d->cfg.qkd_protocol = HXD_QKD_004_JSON;
    open_as(d, "hybrid://alice@" SELF "?key_sources=QKD,X25519,QKD", DST_PEER, NULL, "", &res);
    expect(&res.r, HXD_SVC_REFUSED, 4, "key_sources: QKD may appear once");
    d->cfg.qkd_protocol = HXD_QKD_NONE;
    /* QoS: a counter-proposal. */
    q.qos.key_chunk_size = 0;
    hxd_svc_open(d, &q, &res);
    expect(&res.r, HXD_SVC_QOS, 7, "qos.key_chunk_size must be 1..64 bytes");
    assert_true(res.has_qos);
    assert_int_equal(res.qos.key_chunk_size, 32);
    q.qos.key_chunk_size = 65;
    hxd_svc_open(d, &q, &res);
    expect(&res.r, HXD_SVC_QOS, 7, "counter-proposal in qos");
    assert_int_equal(res.qos.key_chunk_size, 64);
    q.qos.key_chunk_size = 32;
    q.qos.min_bps = 1000;
    q.qos.max_bps = 10;
    hxd_svc_open(d, &q, &res);
    expect(&res.r, HXD_SVC_QOS, 7, "qos.min_bps is above qos.max_bps");
    assert_int_equal(res.qos.max_bps, 1000);
    assert_int_equal(res.qos.key_chunk_size, 32);
    assert_int_equal(streams_used(d), 0);
    daemon_free(d);
}

/* As the source node: no link, so STREAM_OPEN never leaves and the open fails at its timeout,
 * saying the peer node is unreachable (issue 12: not 6, which means the peer application). */
static void open_initiator_without_link(void **state)
{
    struct hxd *d = daemon_new(false);
    struct hxd_svc_open_res res;
    int64_t t0 = hx_monotime_ns();

    (void)state;
    open_as(d, SRC_SELF, DST_PEER, NULL, "", &res);
    expect(&res.r, HXD_SVC_UPSTREAM, 4, "peer node " PEER " unreachable");
    assert_true(hx_monotime_ns() - t0 >= 290 * 1000000LL);
    assert_true(hx_monotime_ns() - t0 < 3000 * 1000000LL);
    assert_int_equal(streams_used(d), 0); /* dropped */
    /* An id already in use here. */
    announce(d, "11111111-1111-4111-8111-111111111111", SRC_PEER, 0);
    open_as(d, SRC_SELF, DST_PEER, "11111111-1111-4111-8111-111111111111", "", &res);
    expect(&res.r, HXD_SVC_IN_USE, 5, "key stream id already in use");
    /* A full table. */
    for (int i = 2; i <= 8; i++) {
        char id[40];
        snprintf(id, sizeof(id), "%08d-1111-4111-8111-111111111111", i);
        announce(d, id, SRC_PEER, 0);
    }
    open_as(d, SRC_SELF, DST_PEER, NULL, "", &res);
    expect(&res.r, HXD_SVC_REFUSED, 4, "too many open key streams");
    daemon_free(d);
}

static void open_responder_by_id_and_by_uris(void **state)
{
    struct hxd *d = daemon_new(false);
    struct hxd_svc_open_res res;
    struct hxd_stream *s;
    struct hx_uuid id2 = uuid_of("22222222-2222-4222-8222-222222222222");

    (void)state;
    /* Nobody announced it: the wait ends at the QoS timeout. */
    open_as(d, SRC_PEER, DST_SELF, NULL, "", &res);
    expect(&res.r, HXD_SVC_TIMEOUT, 6, "the peer application did not open the key stream in time");
    /* By id. */
    open_responder(d, "11111111-1111-4111-8111-111111111111", "uid:1000");
    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, ID("11111111-1111-4111-8111-111111111111"));
    assert_non_null(s);
    assert_true(s->app_open && s->peer_app_open && s->qkd_open);
    assert_string_equal(s->owner, "uid:1000");
    pthread_mutex_unlock(&d->lock);
    open_as(d, SRC_PEER, DST_SELF, "11111111-1111-4111-8111-111111111111", "", &res);
    expect(&res.r, HXD_SVC_IN_USE, 5, "key stream id already open at this node");
    /* By identical URIs, without an id: the announced stream's id comes back. */
    announce(d, "22222222-2222-4222-8222-222222222222", SRC_PEER, 0);
    open_as(d, SRC_PEER, DST_SELF, NULL, "", &res);
    assert_int_equal(res.r.err, HXD_SVC_OK);
    assert_true(hx_uuid_equal(&res.ksid, &id2));
    /* By id with other URIs. */
    announce(d, "33333333-3333-4333-8333-333333333333", SRC_PEER, 0);
    open_as(d, "hybrid://eve@" PEER QUERY, DST_SELF, "33333333-3333-4333-8333-333333333333", "",
            &res);
    expect(&res.r, HXD_SVC_IN_USE, 5, "key stream id belongs to other source and destination");
    daemon_free(d);
}

/* Issue 19: streams a peer announced and nobody here joined go when their time is up, or all of
 * that peer's at once when its link goes; joined ones and other peers' stay. */
static void unjoined_streams_expire_and_go_with_the_link(void **state)
{
    struct hxd *d = daemon_new(false);
    const char *a = "11111111-1111-4111-8111-111111111111",
               *b = "22222222-2222-4222-8222-222222222222",
               *c = "33333333-3333-4333-8333-333333333333",
               *j = "44444444-4444-4444-8444-444444444444";

    (void)state;
    announce(d, a, SRC_PEER, 0);
    announce(d, b, SRC_PEER, 0);
    announce(d, c, SRC_PEER, 0);
    open_responder(d, j, "");
    pthread_mutex_lock(&d->lock);
    hxd_stream_find(d, ID(a))->join_by = hx_deadline_in_ms(0) - 1; /* its time is up */
    hxd_stream_find(d, ID(b))->join_by = hx_deadline_in_ms(60000);
    hxd_stream_find(d, ID(c))->join_by = hx_deadline_in_ms(60000);
    hxd_stream_find(d, ID(c))->peer = uuid_of(OTHER);
    hxd_unjoined_drop(d, NULL);
    assert_null(hxd_stream_find(d, ID(a)));
    assert_non_null(hxd_stream_find(d, ID(b)));
    hxd_unjoined_drop(d, ID(PEER)); /* PEER's link went down */
    assert_null(hxd_stream_find(d, ID(b)));
    assert_non_null(hxd_stream_find(d, ID(c))); /* another peer's */
    assert_non_null(hxd_stream_find(d, ID(j))); /* joined: an application holds it */
    pthread_mutex_unlock(&d->lock);
    daemon_free(d);
}

/* Issue 19: a reply is never cut at the writer's cap (the client would read invalid JSON). */
static void a_reply_is_never_cut(void **state)
{
    struct json_object *o = json_object_new_object();
    struct hx_writer w;
    char big[2048];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    json_object_object_add(o, "status", json_object_new_int(0));
    json_object_object_add(o, "message", json_object_new_string(big));
    hx_writer_init_dynamic(&w, 1024);
    assert_int_not_equal(hxd_api_dump(o, &w), HX_OK);
    hx_writer_wipe(&w);
    hx_writer_init_dynamic(&w, 4096);
    assert_int_equal(hxd_api_dump(o, &w), HX_OK);
    assert_int_equal(w.data[w.len - 1], '}');
    hx_writer_wipe(&w);
    json_object_put(o);
}

static void ownership(void **state)
{
    struct hxd *d = daemon_new(false);
    struct hxd_svc_get_res res;
    struct hxd_svc_result r;
    const char *k1 = "11111111-1111-4111-8111-111111111111";
    const char *k2 = "22222222-2222-4222-8222-222222222222";

    (void)state;
    open_responder(d, k1, "uid:1000");
    open_responder(d, k2, ""); /* anonymous: anyone may use it */
    commit_keys(d, k1, 0, 2);
    commit_keys(d, k2, 0, 2);
    get_as(d, k1, "uid:1001", -1, &res);
    expect(&res.r, HXD_SVC_NOT_OPEN, 4, "key stream belongs to another application");
    get_as(d, k1, "", -1, &res);
    expect(&res.r, HXD_SVC_NOT_OPEN, 4, "key stream belongs to another application");
    hxd_svc_close(d, ID(k1), "cert:mallory", &r);
    expect(&r, HXD_SVC_NOT_OPEN, 4, "key stream belongs to another application");
    get_as(d, k1, "uid:1000", -1, &res);
    assert_int_equal(res.r.err, HXD_SVC_OK);
    hx_secret_free(res.key);
    get_as(d, k2, "uid:1234", -1, &res);
    assert_int_equal(res.r.err, HXD_SVC_OK);
    hx_secret_free(res.key);
    get_as(d, k2, "cert:someone", 1, &res);
    assert_int_equal(res.r.err, HXD_SVC_OK);
    hx_secret_free(res.key);
    daemon_free(d);
}

static void get_by_index_and_next(void **state)
{
    struct hxd *d = daemon_new(false);
    const char *k = "11111111-1111-4111-8111-111111111111";
    struct hxd_svc_get_res res;
    struct hxd_svc_get_req q = {.identity = "", .metadata_too_small = true};

    (void)state;
    get_as(d, k, "", -1, &res);
    expect(&res.r, HXD_SVC_NOT_OPEN, 4, "key stream id is not open at this node (OPEN_CONNECT");
    open_responder(d, k, "");
    commit_keys(d, k, 0, 4);
    /* Status 8 consumes nothing. */
    q.ksid = uuid_of(k);
    hxd_svc_get(d, &q, &res);
    expect(&res.r, HXD_SVC_METADATA, 8, "metadata buffer too small");
    got(d, k, -1, 0);
    got(d, k, -1, 1);
    got(d, k, 3, 3); /* by index: the next without one is after it */
    get_as(d, k, "", -1, &res);
    expect(&res.r, HXD_SVC_NO_KEY, 2, "no key ready for position 4 within the timeout");
    got(d, k, 2, 2);
    get_as(d, k, "", 1, &res);
    expect(&res.r, HXD_SVC_NO_KEY, 2,
           "position 1 was already delivered at this node (or given up after a link failure)");
    /* The key buffer's window: limits.buffer_depth (128) from the lowest position held. */
    get_as(d, k, "", 65536 + 4, &res);
    expect(&res.r, HXD_SVC_NO_KEY, 2,
           "position 65540 is too far ahead, beyond the key buffer: limits.buffer_depth is 128 "
           "keys per stream, "
           "positions below 132 only");
    get_as(d, k, "", 132, &res);
    expect(&res.r, HXD_SVC_NO_KEY, 2, "position 132 is too far ahead, beyond the key buffer");
    /* What made it, and how long it waited. */
    commit_keys(d, k, 4, 1);
    get_as(d, k, "", -1, &res);
    assert_int_equal(res.r.err, HXD_SVC_OK);
    assert_int_equal(res.index, 4);
    assert_string_equal(res.method, "hkdf-sha256");
    assert_int_equal(res.n_sources, 2);
    assert_string_equal(res.sources[0], "ML-KEM-768");
    assert_string_equal(res.sources[1], "X25519");
    assert_true(res.age_ms < 5000);
    hx_secret_free(res.key);
    /* The peer closed it: what is here is still served, then status 3. */
    commit_keys(d, k, 5, 1);
    pthread_mutex_lock(&d->lock);
    hxd_stream_find(d, &q.ksid)->peer_closed = true;
    pthread_mutex_unlock(&d->lock);
    got(d, k, -1, 5);
    get_as(d, k, "", -1, &res);
    expect(&res.r, HXD_SVC_PEER_CLOSED, 3, "peer application closed the key stream");
    /* A failing stream says why. */
    pthread_mutex_lock(&d->lock);
    hxd_stream_find(d, &q.ksid)->peer_closed = false;
    hxd_stream_find(d, &q.ksid)->failing = true;
    hxd_stream_find(d, &q.ksid)->fail_status = 4;
    snprintf(hxd_stream_find(d, &q.ksid)->fail_msg, 200, "ML-KEM-768 failed at the peer");
    pthread_mutex_unlock(&d->lock);
    get_as(d, k, "", -1, &res);
    expect(&res.r, HXD_SVC_UPSTREAM, 4, "ML-KEM-768 failed at the peer");
    daemon_free(d);
}

struct later {
    struct hxd *d;
    const char *ksid;
    bool close;
};

static void *later_main(void *arg)
{
    struct later *l = arg;
    struct hxd_svc_result r;

    usleep(100 * 1000);
    if (l->close) {
        hxd_svc_close(l->d, ID(l->ksid), "", &r);
        assert_int_equal(r.err, HXD_SVC_OK);
    } else {
        commit_keys(l->d, l->ksid, 0, 1);
    }
    return NULL;
}

static bool always_gone(void *arg)
{
    (*(int *)arg)++;
    return true;
}

/* A GET_KEY waits for its key; a client that hung up meanwhile does not take it; a CLOSE ends
 * a wait. */
static void waits_and_wakes(void **state)
{
    struct hxd *d = daemon_new(false);
    const char *k = "11111111-1111-4111-8111-111111111111";
    struct later l = {d, k, false};
    struct hxd_svc_get_res res;
    struct hxd_svc_get_req q = {.ksid = uuid_of(k), .identity = "", .gone = always_gone};
    int asked = 0;
    pthread_t t;

    (void)state;
    open_responder(d, k, "");
    pthread_mutex_lock(&d->lock);
    hxd_stream_find(d, ID(k))->qos.timeout_ms = 5000; /* the waits end by the other thread */
    pthread_mutex_unlock(&d->lock);
    q.gone_arg = &asked;
    assert_int_equal(pthread_create(&t, NULL, later_main, &l), 0);
    hxd_svc_get(d, &q, &res);
    pthread_join(t, NULL);
    expect(&res.r, HXD_SVC_FAILED, 4, "the client went away");
    assert_int_equal(asked, 1);
    got(d, k, -1, 0); /* left for a request that can receive it */
    l.close = true;
    assert_int_equal(pthread_create(&t, NULL, later_main, &l), 0);
    get_as(d, k, "", -1, &res);
    pthread_join(t, NULL);
    expect(&res.r, HXD_SVC_NOT_OPEN, 4, "key stream closed");
    daemon_free(d);
}

/* A stream's pace (daemon/pace.h) set so that its next key is due in an hour: a paced
 * GET_KEY is held (the gone callback, asked only after a wait, tells); qos.timeout_ms 0 keeps
 * the node's default. */
static void pace_due_later(struct hxd *d, const char *ksid, uint32_t timeout_ms)
{
    struct hxd_stream *s;

    pthread_mutex_lock(&d->lock);
    assert_non_null(s = hxd_stream_find(d, ID(ksid)));
    s->qos.timeout_ms = timeout_ms;
    s->pace.acc_keys = 1000.0; /* 4 000 keys/s */
    s->pace.acc_ns = 250e6;
    s->pace.next_burst = hx_monotime_ns() + 3600LL * 1000000000LL;
    s->pace.burst_left = 0;
    pthread_mutex_unlock(&d->lock);
}

static bool never_gone(void *arg)
{
    (*(int *)arg)++;
    return false;
}

/* A GET_KEY delivered the key at index (and the key is freed). */
static void delivered(struct hxd_svc_get_res *res, uint64_t index)
{
    assert_int_equal(res->r.err, HXD_SVC_OK);
    assert_int_equal(res->index, index);
    hx_secret_free(res->key);
}

/* A paced GET_KEY (limits.pace, ETSI 004) holds a ready key only while the reserve is below
 * its target, never past the timeout (the key is delivered then, not refused), and a CLOSE
 * ends the hold; an unpaced one (ETSI 014) and limits.pace false never hold one. */
static void paced_get(void **state)
{
    struct hxd *d = daemon_new(false);
    const char *k = "11111111-1111-4111-8111-111111111111";
    struct later l = {d, k, true};
    struct hxd_svc_get_res res;
    struct hxd_svc_get_req q = {
        .ksid = uuid_of(k), .identity = "", .gone = never_gone, .pace = true};
    int asked = 0;
    pthread_t t;

    (void)state;
    q.gone_arg = &asked;
    assert_true(d->cfg.pace); /* the default */
    open_responder(d, k, "");
    commit_keys(d, k, 0, 4);
    pace_due_later(d, k, 300);
    /* reserve 3 < 48 (two batches of 24, beside three in flight in 128): held until the
     * deadline (300 ms), then delivered */
    hxd_svc_get(d, &q, &res);
    assert_int_equal(res.r.err, HXD_SVC_OK);
    assert_int_equal(res.index, 0);
    assert_int_equal(hx_secret_data(res.key)[0], 0);
    hx_secret_free(res.key);
    assert_int_equal(asked, 1);
    /* not paced (the ETSI 014 path): at once */
    pace_due_later(d, k, 300);
    q.pace = false;
    hxd_svc_get(d, &q, &res);
    delivered(&res, 1);
    assert_int_equal(asked, 1);
    /* limits.pace false: at once */
    q.pace = true;
    d->cfg.pace = false;
    hxd_svc_get(d, &q, &res);
    delivered(&res, 2);
    assert_int_equal(asked, 1);
    d->cfg.pace = true;
    /* a reserve at its target (48 beyond the asked position): at once */
    commit_keys(d, k, 4, 16);
    commit_keys(d, k, 20, 16);
    commit_keys(d, k, 36, 16);
    pace_due_later(d, k, 300);
    hxd_svc_get(d, &q, &res);
    delivered(&res, 3);
    assert_int_equal(asked, 1);
    /* a CLOSE ends a held call (else it would wait 60 s and get the key) */
    pace_due_later(d, k, 60000);
    asked = 0;
    q.has_index = true;
    q.index = 5; /* reserve 46 */
    assert_int_equal(pthread_create(&t, NULL, later_main, &l), 0);
    hxd_svc_get(d, &q, &res);
    pthread_join(t, NULL);
    expect(&res.r, HXD_SVC_NOT_OPEN, 4, "key stream closed");
    daemon_free(d);
}

/* With keys 0..n-1 ready at d's node (n a multiple of 4, from 20): position 0 (a reserve of n-1)
 * leaves at once, position 4 (a reserve of n-5) is held until the pace's deadline: the paced
 * target is n-4 or n-3 (paced_get has the defaults). */
static void target_between(struct hxd *d, uint32_t n)
{
    const char *k = "11111111-1111-4111-8111-111111111111";
    struct hxd_svc_get_res res;
    struct hxd_svc_get_req q = {
        .ksid = uuid_of(k), .identity = "", .gone = never_gone, .pace = true};
    int asked = 0;

    q.gone_arg = &asked;
    open_responder(d, k, "");
    commit_keys(d, k, 0, 4);
    for (uint32_t first = 4; first < n; first += 16) {
        commit_keys(d, k, first, n - first < 16 ? n - first : 16);
    }
    pace_due_later(d, k, 300);
    /* position 0: at once, no wait (a wait would poll `gone`) */
    hxd_svc_get(d, &q, &res);
    delivered(&res, 0);
    assert_int_equal(asked, 0);
    /* position 4: held until the deadline, then delivered */
    q.has_index = true;
    q.index = 4;
    pace_due_later(d, k, 300);
    hxd_svc_get(d, &q, &res);
    delivered(&res, 4);
    assert_int_equal(asked, 1);
    daemon_free(d);
}

/* The reserve's target is two batches, capped at the larger of a quarter of
 * limits.buffer_depth and what it leaves beside three batches in flight: with a buffer of 64
 * and batches of 24 (no room beside three) it is the quarter, 16. */
static void paced_target_capped_by_the_buffer(void **state)
{
    struct hxd *d = daemon_new(false);

    (void)state;
    d->cfg.buffer_depth = 64;
    target_between(d, 20);
}

/* Where the room beside three batches in flight is the cap: batches of 28 in 128 leave 44 (more
 * than the quarter, 32; less than two batches, 56). */
static void paced_target_within_the_room(void **state)
{
    struct hxd *d = daemon_new(false);

    (void)state;
    d->cfg.batch_size = 28;
    target_between(d, 48);
}

static void close_stream(void **state)
{
    struct hxd *d = daemon_new(false);
    const char *k = "11111111-1111-4111-8111-111111111111";
    struct hx_uuid id = uuid_of(k);
    struct hxd_svc_get_res res;
    struct hxd_svc_result r;

    (void)state;
    open_responder(d, k, "uid:7");
    commit_keys(d, k, 0, 3);
    hxd_svc_close(d, &id, "uid:7", &r);
    assert_int_equal(r.err, HXD_SVC_OK);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.msg, "");
    assert_int_equal(streams_used(d), 0);
    hxd_svc_close(d, &id, "uid:7", &r);
    expect(&r, HXD_SVC_NOT_OPEN, 4, "key stream id is not open at this node");
    get_as(d, k, "uid:7", 0, &res);
    expect(&res.r, HXD_SVC_NOT_OPEN, 4, "not open at this node (OPEN_CONNECT first)");
    /* An announced stream the application never opened is not open here. */
    announce(d, k, SRC_PEER, 0);
    hxd_svc_close(d, &id, "", &r);
    expect(&r, HXD_SVC_NOT_OPEN, 4, "key stream id is not open at this node");
    daemon_free(d);
}

static void ttl_expiry(void **state)
{
    struct hxd *d = daemon_new(false);
    const char *k1 = "11111111-1111-4111-8111-111111111111";
    const char *k2 = "22222222-2222-4222-8222-222222222222";
    struct hxd_svc_get_res res;

    (void)state;
    open_responder(d, k1, "");
    commit_keys(d, k1, 0, 2);
    announce(d, k2, SRC_PEER, 1); /* waiting for its peer: kept */
    pthread_mutex_lock(&d->lock);
    struct hxd_stream *s1 = hxd_stream_find(d, ID(k1));
    struct hxd_stream *s2 = hxd_stream_find(d, ID(k2));
    s1->qos.ttl_s = 60;
    s2->opened_at -= 3600;
    pthread_mutex_unlock(&d->lock);
    hxd_svc_expire(d);
    assert_int_equal(streams_used(d), 2); /* not yet */
    pthread_mutex_lock(&d->lock);
    s1->opened_at -= 61;
    pthread_mutex_unlock(&d->lock);
    hxd_svc_expire(d);
    assert_int_equal(streams_used(d), 1);
    get_as(d, k1, "", 0, &res);
    expect(&res.r, HXD_SVC_NOT_OPEN, 4, "key stream id is not open at this node");
    daemon_free(d);
}

static void status(void **state)
{
    struct hxd *d = daemon_new(false);
    const char *k1 = "11111111-1111-4111-8111-111111111111";
    const char *k2 = "22222222-2222-4222-8222-222222222222";
    struct hx_uuid self = uuid_of(SELF), peer = uuid_of(PEER);
    struct hxd_svc_status st;

    (void)state;
    open_responder(d, k1, "");
    commit_keys(d, k1, 0, 3);
    got(d, k1, -1, 0);
    announce(d, k2, SRC_PEER, 0);
    d->batches_ok = 7;
    d->store_errors = 2;
    assert_int_equal(hxd_svc_status(d, &st), HX_OK);
    assert_true(hx_uuid_equal(&st.node, &self));
    assert_int_equal(st.store, HXD_SVC_STORE_MEMORY);
    assert_int_equal(st.n_peers, 1);
    assert_true(hx_uuid_equal(&st.peers[0].uuid, &peer));
    assert_false(st.peers[0].link.up); /* unknown to the link layer: zeros */
    assert_int_equal(st.peers[0].link.links_made, 0);
    assert_int_equal(st.n_streams, 2);
    assert_int_equal(st.batches_ok, 7);
    assert_int_equal(st.store_errors, 2);
    for (size_t i = 0; i < st.n_streams; i++) {
        const struct hxd_svc_stream_info *e = &st.streams[i];
        assert_false(e->initiator);
        assert_true(hx_uuid_equal(&e->peer, &peer));
        assert_string_equal(e->method, "hkdf-sha256");
        assert_int_equal(e->n_sources, 2);
        if (e->state == HXD_SVC_PRODUCING) {
            assert_int_equal(e->ready, 2);
            assert_int_equal(e->produced, 3);
            assert_int_equal(e->delivered, 1);
            assert_int_equal(e->next_index, 1);
            assert_int_equal(e->buffer_depth, d->cfg.buffer_depth);
        } else {
            assert_int_equal(e->state, HXD_SVC_WAITING_PEER);
            assert_int_equal(e->ready, 0);
        }
    }
    hxd_svc_status_wipe(&st);
    assert_null(st.streams);
    daemon_free(d);
}

/* With a store: the responder's row is written (outside the lock) before JOIN, a delivery is
 * recorded, and after a restart the stream resumes with that position already delivered. */
static void durable_across_restart(void **state)
{
    struct hxd *d = daemon_new(true);
    const char *k = "11111111-1111-4111-8111-111111111111";
    struct hxd_svc_open_res open;
    struct hxd_svc_get_res res;
    struct hxd_svc_status st;

    (void)state;
    open_responder(d, k, "uid:5");
    commit_keys(d, k, 0, 3);
    got_as(d, k, "uid:5", 1, 1);
    got_as(d, k, "uid:5", -1, 2);
    daemon_free(d);

    d = daemon_new(true);
    assert_int_equal(hxd_svc_status(d, &st), HX_OK);
    assert_int_equal(st.store, HXD_SVC_STORE_DURABLE);
    assert_int_equal(st.n_streams, 1);
    assert_true(st.streams[0].restored);
    assert_int_equal(st.streams[0].next_index, 3);
    assert_int_equal(st.streams[0].ready, 1);
    hxd_svc_status_wipe(&st);
    /* Its application opens it again (same URIs, same identity); another may not. */
    open_as(d, SRC_PEER, DST_SELF, k, "uid:6", &open);
    expect(&open.r, HXD_SVC_IN_USE, 5, "key stream id already open at this node");
    open_as(d, SRC_PEER, DST_SELF, k, "uid:5", &open);
    assert_int_equal(open.r.err, HXD_SVC_OK);
    get_as(d, k, "uid:5", 1, &res);
    expect(&res.r, HXD_SVC_NO_KEY, 2, "position 1 was already delivered at this node");
    get_as(d, k, "uid:5", 0, &res);
    assert_int_equal(res.r.err, HXD_SVC_OK);
    assert_int_equal(res.index, 0);
    hx_secret_free(res.key);
    /* CLOSE deletes the row: nothing comes back. */
    hxd_svc_close(d, ID(k), "uid:5", &res.r);
    assert_int_equal(res.r.err, HXD_SVC_OK);
    daemon_free(d);
    d = daemon_new(true);
    assert_int_equal(streams_used(d), 0);
    daemon_free(d);
}

/*
 * An initiator killed holding grown batches prepared (limits.batch_size 4 grown to 64: three
 * of them, 192 positions, that the responder may have committed): after the restart every
 * position is in a retry, each as long as the largest batch, within the stream's retry slots.
 * Cut to limits.batch_size they were 48 runs for 12 slots, and the rest was never asked about.
 */
static void restart_retries_grown_prepared_batches(void **state)
{
    const char *limits = ", \"batch_size\": 4, \"batch_max\": 64, \"buffer_depth\": 512";
    const char *k = "22222222-2222-4222-8222-222222222222";
    struct hxd *d = daemon_new_limits(true, limits);
    struct hx_store_stream row = {.role = 0, .chunk = 32, .timeout_ms = 300};
    struct hx_secret *keys[192];
    struct hxd_stream *s;
    uint64_t covered = 0;

    (void)state;
    assert_int_equal(hxd_config_batch_top(&d->cfg), 64);
    row.ksid = uuid_of(k);
    row.peer = uuid_of(PEER);
    snprintf(row.src, sizeof(row.src), "%s", SRC_SELF);
    snprintf(row.dst, sizeof(row.dst), "%s", DST_PEER);
    assert_int_equal(hxd_persist_write(d, &row), HX_OK);
    for (size_t i = 0; i < 192; i++) {
        assert_int_equal(hx_secret_new(32, &keys[i]), HX_OK);
    }
    for (uint32_t b = 0; b < 3; b++) {
        assert_int_equal(hx_store_put_batch(d->store, &row.ksid, 64 * b, 64, &keys[64 * b],
                                            HX_STORE_PREPARED, 192),
                         HX_OK);
    }
    for (size_t i = 0; i < 192; i++) {
        hx_secret_free(keys[i]);
    }
    daemon_free(d);

    d = daemon_new_limits(true, limits);
    pthread_mutex_lock(&d->lock);
    assert_non_null(s = hxd_stream_find(d, &row.ksid));
    assert_int_equal(s->role, HXD_INITIATOR);
    assert_int_equal(s->produced, 0);
    assert_int_equal(s->next_first, 192);
    assert_int_equal(s->n_retry, 3);
    for (size_t i = 0; i < s->n_retry; i++) {
        assert_int_equal(s->retry[i].first, covered);
        assert_true(s->retry[i].count <= 64);
        covered += s->retry[i].count;
    }
    assert_int_equal(covered, 192);
    pthread_mutex_unlock(&d->lock);
    daemon_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(etsi_status_in_one_place),
        cmocka_unit_test(open_refusals),
        cmocka_unit_test(open_initiator_without_link),
        cmocka_unit_test(open_responder_by_id_and_by_uris),
        cmocka_unit_test(ownership),
        cmocka_unit_test(unjoined_streams_expire_and_go_with_the_link),
        cmocka_unit_test(a_reply_is_never_cut),
        cmocka_unit_test(get_by_index_and_next),
        cmocka_unit_test(waits_and_wakes),
        cmocka_unit_test(paced_get),
        cmocka_unit_test(paced_target_capped_by_the_buffer),
        cmocka_unit_test(paced_target_within_the_room),
        cmocka_unit_test(close_stream),
        cmocka_unit_test(ttl_expiry),
        cmocka_unit_test(status),
        cmocka_unit_test(durable_across_restart),
        cmocka_unit_test(restart_retries_grown_prepared_batches),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
