/*
 * daemon/pool.c's scheduling of key production (hxd_stream_kick) and the initiator's pick
 * (initiator.c) on a struct hxd in memory, with the pools not started so that the jobs stay in
 * the initiators' queue where the test can read them. The link layer's lookups are wrapped
 * (-Wl,--wrap): no peer link is up, so a batch a job runs fails when it would send BATCH_REQ,
 * after its pick, which is what is checked here.
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
#include "common/secret.h"
#include "daemon/batch.h"

#define SELF "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define PEER "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
#define X "11111111-1111-4111-8111-111111111111"
#define Y "22222222-2222-4222-8222-222222222222"
#define Z "33333333-3333-4333-8333-333333333333"

struct hx_link *__wrap_hx_links_get(struct hx_links *ls, const struct hx_uuid *peer);

/* No link is up. */
struct hx_link *__wrap_hx_links_get(struct hx_links *ls, const struct hx_uuid *peer)
{
    (void)ls;
    (void)peer;
    return NULL;
}

hx_err __wrap_hx_qkd014_enc(const struct hx_qkd014 *c, const char *slave_sae, uint32_t count,
                            size_t bytes, uint8_t *keys, struct hx_uuid *ids, char *msg,
                            size_t msg_len);
hx_err __wrap_hx_qkd014_status(const struct hx_qkd014 *c, const char *slave_sae,
                               uint32_t *max_per_request, char *msg, size_t msg_len);

/* The ETSI 014 KME, as a test sets it: what enc_keys answers, the count it was last asked for,
 * the max_key_per_request its status gives (0: none), how often the status was asked. */
static struct {
    hx_err enc;
    uint32_t enc_count;
    uint32_t max;
    int status_calls;
} kme014;

hx_err __wrap_hx_qkd014_enc(const struct hx_qkd014 *c, const char *slave_sae, uint32_t count,
                            size_t bytes, uint8_t *keys, struct hx_uuid *ids, char *msg,
                            size_t msg_len)
{
    (void)c;
    (void)slave_sae;
    (void)ids;
    kme014.enc_count = count;
    if (kme014.enc != HX_OK) {
        snprintf(msg, msg_len, "HTTP 400 from the KME: try again later");
        return kme014.enc;
    }
    memset(keys, 0x5a, (size_t)count * bytes);
    return HX_OK;
}

hx_err __wrap_hx_qkd014_status(const struct hx_qkd014 *c, const char *slave_sae,
                               uint32_t *max_per_request, char *msg, size_t msg_len)
{
    (void)c;
    (void)slave_sae;
    (void)msg;
    (void)msg_len;
    kme014.status_calls++;
    *max_per_request = kme014.max;
    return HX_OK;
}

static struct hx_uuid uuid_of(const char *s)
{
    struct hx_uuid u;

    assert_int_equal(hx_uuid_parse(s, strlen(s), &u), HX_OK);
    return u;
}

/* A daemon of node SELF (memory only, pools not started: their jobs stay queued). */
static struct hxd *daemon_new(void)
{
    char path[] = "/tmp/hykex-test-schedule-XXXXXX", why[300];
    struct hxd *d = calloc(1, sizeof(*d));
    int fd = mkstemp(path);
    FILE *f;

    assert_non_null(d);
    assert_true(fd >= 0);
    assert_non_null(f = fdopen(fd, "w"));
    fprintf(f, "{\"uuid\": \"" SELF
               "\", \"certificate_config\": {\"cert_authority_path\": "
               "\"ca\", \"cert_path\": \"crt\", \"key_path\": \"key\"}, \"trusted_peers\": {\"" PEER
               "\": {\"address\": {\"host\": \"127.0.0.1\", \"port\": 9}}}, \"limits\": "
               "{\"max_streams\": 8, \"max_key_chunk\": 64}}");
    fclose(f);
    if (hxd_config_load(&d->cfg, path, NULL, why, sizeof(why)) != HX_OK) {
        fail_msg("config: %s", why);
    }
    unlink(path);
    d->max_streams = d->cfg.max_streams;
    assert_int_equal(hxd_streams_init(d), HX_OK);
    pthread_mutex_init(&d->lock, NULL);
    assert_int_equal(hx_cond_init_monotonic(&d->changed), HX_OK);
    assert_int_equal(hx_cond_init_monotonic(&d->replied), HX_OK);
    return d;
}

static void daemon_free(struct hxd *d)
{
    struct hxd_job *j;

    while ((j = d->initiators.head) != NULL) {
        d->initiators.head = j->next;
        free(j->msg);
        free(j);
    }
    for (size_t i = 0; i < d->max_streams; i++) {
        if (d->streams[i].used) {
            hxd_stream_drop(d, &d->streams[i]);
        }
    }
    hxd_streams_free(d);
    pthread_cond_destroy(&d->changed);
    pthread_cond_destroy(&d->replied);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* An initiator stream both applications have opened (ML-KEM-768 and X25519: no KME needed). */
static struct hxd_stream *stream_new(struct hxd *d, const char *ksid)
{
    struct hxd_stream *s;
    char why[256];

    assert_non_null(s = hxd_stream_new(d, (struct hx_uuid[1]){uuid_of(ksid)}));
    s->role = HXD_INITIATOR;
    s->peer = uuid_of(PEER);
    snprintf(s->src, sizeof(s->src),
             "hybrid://a@" SELF "?hybridization=hkdf&key_sources=ML-KEM-768,X25519");
    assert_int_equal(hx_uri_parse(s->src, &s->uri, why, sizeof(why)), HX_OK);
    s->qos.key_chunk_size = 32;
    s->app_open = s->peer_app_open = true;
    return s;
}

/* The stream ids of the queued initiator jobs, in order, as "X Y ..." (lock not needed: the
 * pools never started). */
static void queue_text(struct hxd *d, char *out, size_t cap)
{
    static const char *const names[] = {X, Y, Z};
    size_t len = 0;

    out[0] = '\0';
    for (const struct hxd_job *j = d->initiators.head; j != NULL; j = j->next) {
        const char *name = "?";
        for (size_t i = 0; i < 3; i++) {
            if (hx_uuid_equal(&j->ksid, (struct hx_uuid[1]){uuid_of(names[i])})) {
                name = (const char *[]){"X", "Y", "Z"}[i];
            }
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? " " : "", name);
    }
}

/* Runs the first queued initiator job as a worker would (its batch fails at BATCH_REQ). */
static void run_head(struct hxd *d)
{
    struct hxd_job *j = d->initiators.head;

    assert_non_null(j);
    d->initiators.head = j->next;
    if (d->initiators.head == NULL) {
        d->initiators.tail = NULL;
    }
    hxd_initiator_job(d, j);
    free(j->msg);
    free(j);
}

/* Kicks x (one job queued) and runs the job: the worker picks a batch, which fails at BATCH_REQ
 * (no link) and stays as x's one retry, of positions first..first+count-1. */
static void kick_and_pick(struct hxd *d, struct hxd_stream *x, uint64_t first, uint32_t count)
{
    pthread_mutex_lock(&d->lock);
    hxd_stream_kick(d, x);
    assert_int_equal(x->queued, 1);
    pthread_mutex_unlock(&d->lock);
    run_head(d);
    pthread_mutex_lock(&d->lock);
    assert_int_equal(x->n_retry, 1);
    assert_int_equal(x->retry[0].first, first);
    assert_int_equal(x->retry[0].count, count);
    pthread_mutex_unlock(&d->lock);
}

/* However often a stream is kicked, one job of it waits in the queue at a time. */
static void one_queued_job_per_stream(void **state)
{
    struct hxd *d = daemon_new();
    struct hxd_stream *x, *y;
    char q[64];

    (void)state;
    pthread_mutex_lock(&d->lock);
    x = stream_new(d, X);
    y = stream_new(d, Y);
    for (int i = 0; i < 5; i++) {
        hxd_stream_kick(d, x);
    }
    hxd_stream_kick(d, y);
    hxd_stream_kick(d, x);
    assert_int_equal(x->queued, 1);
    assert_int_equal(x->inflight, 1);
    assert_int_equal(y->queued, 1);
    pthread_mutex_unlock(&d->lock);
    queue_text(d, q, sizeof(q));
    assert_string_equal(q, "X Y");
    daemon_free(d);
}

/* A worker that picks a stream's job queues that stream's next one behind every other
 * stream's: with three streams wanting keys, the workers take them in turn, X Y Z X Y Z, and
 * no stream's whole pipeline goes before another's first batch. */
static void streams_take_turns(void **state)
{
    struct hxd *d = daemon_new();
    struct hxd_stream *s[3];
    char q[64];

    (void)state;
    pthread_mutex_lock(&d->lock);
    s[0] = stream_new(d, X);
    s[1] = stream_new(d, Y);
    s[2] = stream_new(d, Z);
    for (int i = 0; i < 3; i++) {
        hxd_stream_kick(d, s[i]);
    }
    pthread_mutex_unlock(&d->lock);
    queue_text(d, q, sizeof(q));
    assert_string_equal(q, "X Y Z");
    run_head(d); /* X picks positions 0..23 and queues X's next, then fails: no link */
    queue_text(d, q, sizeof(q));
    assert_string_equal(q, "Y Z X");
    pthread_mutex_lock(&d->lock);
    s[0] = hxd_stream_find(d, (struct hx_uuid[1]){uuid_of(X)});
    assert_non_null(s[0]);
    assert_true(s[0]->retry_at > 0);    /* the failed batch: backing off */
    assert_int_equal(s[0]->n_retry, 1); /* its positions made again later */
    assert_int_equal(s[0]->retry[0].first, 0);
    assert_int_equal(s[0]->inflight, 1); /* the queued job only */
    assert_int_equal(s[0]->queued, 1);
    pthread_mutex_unlock(&d->lock);
    run_head(d);
    queue_text(d, q, sizeof(q));
    assert_string_equal(q, "Z X Y");
    daemon_free(d);
}

/* The responder's window moves a key at a time: while a batch is in flight, a new one waits
 * for room for a whole batch (a cut one costs a whole one's signatures for fewer keys); with
 * none in flight a cut batch goes, so that nothing waits for a window that needs it. */
static void whole_batches_while_one_is_in_flight(void **state)
{
    struct hxd *d = daemon_new();
    struct hxd_stream *x;
    uint64_t batch;

    (void)state;
    pthread_mutex_lock(&d->lock);
    batch = d->cfg.batch_size;
    x = stream_new(d, X);
    x->next_first = 2 * batch;
    x->inflight = 1; /* a batch the test pretends is at the responder */
    x->peer_limit_known = true;
    x->peer_limit = x->next_first + batch - 1; /* room for all but one key */
    hxd_stream_kick(d, x);
    assert_int_equal(x->queued, 0);
    assert_int_equal(x->inflight, 1);
    x->peer_limit++; /* room for a whole batch */
    hxd_stream_kick(d, x);
    assert_int_equal(x->queued, 1);
    assert_int_equal(x->inflight, 2);
    pthread_mutex_unlock(&d->lock);
    run_head(d); /* picks a whole batch from next_first, then fails: no link */
    pthread_mutex_lock(&d->lock);
    assert_non_null(x = hxd_stream_find(d, (struct hx_uuid[1]){uuid_of(X)}));
    assert_int_equal(x->n_retry, 1);
    assert_int_equal(x->retry[0].first, 2 * batch);
    assert_int_equal(x->retry[0].count, batch);
    pthread_mutex_unlock(&d->lock);

    daemon_free(d);
    d = daemon_new();
    pthread_mutex_lock(&d->lock);
    x = stream_new(d, X);
    x->peer_limit_known = true;
    x->peer_limit = 3; /* nothing in flight: a cut batch of 3 goes */
    pthread_mutex_unlock(&d->lock);
    kick_and_pick(d, x, 0, 3);
    daemon_free(d);
}

/* Keys first..first+count-1 ready at x, committed (the watermark moves over them). */
static void stock(struct hxd_stream *x, uint64_t first, uint64_t count)
{
    for (uint64_t p = first; p < first + count; p++) {
        struct hx_secret *k;
        assert_int_equal(hx_secret_new(32, &k), HX_OK);
        assert_int_equal(hxd_stream_add_key(x, p, k, false), HX_OK);
    }
    if (first == x->produced) {
        x->produced = first + count;
    }
    if (x->next_first < first + count) {
        x->next_first = first + count;
    }
}

/*
 * The batch size follows the stock: limits.batch_size while the ready keys hold fewer than
 * two batches of twice that (an application draining the buffer), doubled while they hold two
 * of the doubled size and the buffer has room for one, never above limits.batch_max, never
 * from a KME whose per-request limit is unknown (may_grow false); and the initiator's pick
 * takes it.
 */
/* A daemon whose batches of 16 may grow to 256 in a buffer of 4 096 (lock held). */
static struct hxd *daemon_growing(void)
{
    struct hxd *d = daemon_new();

    d->cfg.batch_size = 16;
    d->cfg.batch_max = 256;
    d->cfg.buffer_depth = 4096;
    pthread_mutex_lock(&d->lock);
    return d;
}

static void batches_grow_while_keys_are_stocked(void **state)
{
    struct hxd *d = daemon_growing();
    struct hxd_stream *x;

    (void)state;
    x = stream_new(d, X);
    assert_int_equal(hxd_stream_batch_size(d, x, true), 16); /* nothing stocked */
    stock(x, 0, 63);
    assert_int_equal(hxd_stream_batch_size(d, x, true), 16); /* under 2 x 32 */
    stock(x, 63, 1);
    assert_int_equal(hxd_stream_batch_size(d, x, true), 32);
    stock(x, 64, 64);
    assert_int_equal(hxd_stream_batch_size(d, x, true), 64);
    stock(x, 128, 1024 - 128);
    assert_int_equal(hxd_stream_batch_size(d, x, true), 256); /* limits.batch_max */
    assert_int_equal(hxd_stream_batch_size(d, x, false), 16); /* an ETSI 014 KME */
    d->cfg.batch_max = 100;
    assert_int_equal(hxd_stream_batch_size(d, x, true), 64); /* doubling stays within it */
    d->cfg.batch_max = 8;
    assert_int_equal(hxd_stream_batch_size(d, x, true), 16); /* below batch_size: no growth */
    d->cfg.batch_max = 256;
    /* The buffer: positions from the lowest held up to buffer_depth, counted from next_first
     * (the batches in flight are below it). 1 024 held, 1 100 deep: 76 left, room for 64. */
    d->cfg.buffer_depth = 1100;
    assert_int_equal(hxd_stream_batch_size(d, x, true), 64);
    d->cfg.buffer_depth = 1024 + 31;
    assert_int_equal(hxd_stream_batch_size(d, x, true), 16);
    d->cfg.buffer_depth = 4096;
    pthread_mutex_unlock(&d->lock);

    /* The pick: a batch of the grown size from next_first. */
    kick_and_pick(d, x, 1024, 256);
    daemon_free(d);
}

/* A stream X of ML-KEM-768 and QKD from an ETSI 014 KME, its end at the KME open (lock held). */
static struct hxd_stream *stream_qkd014(struct hxd *d)
{
    struct hxd_stream *x = stream_new(d, X);
    char why[256];

    d->cfg.qkd_protocol = HXD_QKD_014;
    snprintf(x->src, sizeof(x->src),
             "hybrid://a@" SELF "?hybridization=hkdf&key_sources=ML-KEM-768,QKD");
    assert_int_equal(hx_uri_parse(x->src, &x->uri, why, sizeof(why)), HX_OK);
    x->qkd_open = true;
    return x;
}

/* From an ETSI 014 KME a stream's batches keep limits.batch_size however many keys are stocked
 * (and stay within the KME's max_key_per_request): the initiator's pick asks for no growth. */
static void no_growth_from_an_etsi014_kme(void **state)
{
    struct hxd *d = daemon_growing();
    struct hxd_stream *x;

    (void)state;
    x = stream_qkd014(d);
    stock(x, 0, 1024);
    assert_int_equal(hxd_batch_qkd_mode(d, x), HX_PEER_QKD_014);
    pthread_mutex_unlock(&d->lock);
    kick_and_pick(d, x, 1024, 16);
    daemon_free(d);
}

/* An ETSI 014 KME said "try again later" (qkd_waiting): while a batch is in flight the stream
 * starts no other, so that the few keys the KME makes go to the lowest positions, which the
 * application waits for, instead of batches racing for them. */
static void one_batch_at_a_time_while_an_etsi014_kme_is_short(void **state)
{
    struct hxd *d = daemon_new();
    struct hxd_stream *x;

    (void)state;
    pthread_mutex_lock(&d->lock);
    x = stream_qkd014(d);
    x->qkd_waiting = true;
    x->fl[0].used = true; /* positions 0..23 in flight */
    x->fl[0].first = 0;
    x->inflight = 1;
    x->next_first = 24;
    hxd_stream_kick(d, x);
    assert_int_equal(x->queued, 1);
    pthread_mutex_unlock(&d->lock);
    run_head(d);
    pthread_mutex_lock(&d->lock);
    assert_int_equal(x->next_first, 24); /* no new batch picked */
    assert_int_equal(x->n_retry, 0);
    assert_int_equal(x->inflight, 1);
    x->qkd_waiting = false; /* a batch got its keys: batches side by side again */
    pthread_mutex_unlock(&d->lock);
    kick_and_pick(d, x, 24, 24);
    daemon_free(d);
}

/* A stream X of ML-KEM-768 and QKD from an ETSI 014 KME, both SAE ids known, after its first
 * batch (count positions): the KME said "try again later"; its status gives
 * max_key_per_request max (0: none). */
static struct hxd_stream *stream014(struct hxd *d, uint32_t max, uint32_t count)
{
    struct hxd_stream *x;

    memset(&kme014, 0, sizeof(kme014));
    kme014.enc = HX_ERR_NO_KEY;
    kme014.max = max;
    pthread_mutex_lock(&d->lock);
    x = stream_qkd014(d);
    snprintf(d->cfg.qkd_sae_id, sizeof(d->cfg.qkd_sae_id), "SAE_A");
    snprintf(x->peer_sae, sizeof(x->peer_sae), "SAE_B");
    pthread_mutex_unlock(&d->lock);
    kick_and_pick(d, x, 0, count); /* "try again later": listed to make again */
    assert_int_equal(kme014.enc_count, count);
    return x;
}

/* "Try again later" from the ETSI 014 KME puts the stream in its one-batch-at-a-time wait, with
 * the batch's positions listed to make again; the next batch that gets its keys ends the wait. */
static void an_etsi014_kme_short_of_keys_then_not(void **state)
{
    struct hxd *d = daemon_new();
    struct hxd_stream *x;

    (void)state;
    x = stream014(d, 0, 24);
    assert_true(x->qkd_waiting);
    assert_int_equal(x->kme_max_keys, UINT32_MAX); /* its status gave no limit */
    kme014.enc = HX_OK;
    x->retry_at = 0;            /* the back-off is over */
    kick_and_pick(d, x, 0, 24); /* keys this time; the batch fails later, at BATCH_REQ */
    assert_false(x->qkd_waiting);
    assert_int_equal(kme014.status_calls, 1);
    daemon_free(d);
}

/* A KME whose status gives max_key_per_request 10 gets no enc_keys for more: new batches are
 * of 10, and a retry of 24 (failed before the limit was known) is cut into 10 and the rest. */
static void etsi014_batches_within_the_kmes_max_key_per_request(void **state)
{
    struct hxd *d = daemon_new();
    struct hxd_stream *x;

    (void)state;
    x = stream014(d, 10, 10);
    assert_int_equal(x->kme_max_keys, 10);
    pthread_mutex_lock(&d->lock);
    x->retry[0].count = 24;
    x->retry_at = 0;
    x->qkd_waiting = false;
    hxd_stream_kick(d, x);
    pthread_mutex_unlock(&d->lock);
    run_head(d);
    assert_int_equal(kme014.enc_count, 10);
    assert_int_equal(kme014.status_calls, 1);
    assert_int_equal(x->n_retry, 2);
    assert_int_equal(x->retry[0].first, 0);
    assert_int_equal(x->retry[0].count, 10);
    assert_int_equal(x->retry[1].first, 10);
    assert_int_equal(x->retry[1].count, 14);
    daemon_free(d);
}

/* The largest batch a stream may reach, for what is sized by it (the secure heap's scratch,
 * the key pairs made ahead, a restart's retries). */
static void the_largest_batch_of_a_config(void **state)
{
    struct hxd_config c = {.batch_size = 16, .batch_max = 256, .buffer_depth = 128};

    (void)state;
    assert_int_equal(hxd_config_batch_top(&c), 32); /* 3 x 32 fit in 128 */
    c.batch_size = 24;                              /* the defaults: 3 x 48 do not */
    assert_int_equal(hxd_config_batch_top(&c), 24);
    c.batch_size = 16;
    c.buffer_depth = 65536;
    assert_int_equal(hxd_config_batch_top(&c), 256);
    c.batch_max = 100;
    assert_int_equal(hxd_config_batch_top(&c), 64);
    c.batch_max = 8;
    assert_int_equal(hxd_config_batch_top(&c), 16);
    c.batch_size = 64;
    c.batch_max = 256;
    c.buffer_depth = 64;
    assert_int_equal(hxd_config_batch_top(&c), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_queued_job_per_stream),
        cmocka_unit_test(streams_take_turns),
        cmocka_unit_test(whole_batches_while_one_is_in_flight),
        cmocka_unit_test(batches_grow_while_keys_are_stocked),
        cmocka_unit_test(no_growth_from_an_etsi014_kme),
        cmocka_unit_test(one_batch_at_a_time_while_an_etsi014_kme_is_short),
        cmocka_unit_test(an_etsi014_kme_short_of_keys_then_not),
        cmocka_unit_test(etsi014_batches_within_the_kmes_max_key_per_request),
        cmocka_unit_test(the_largest_batch_of_a_config),
    };

    hx_log_set_level(HX_LOG_ERROR); /* the failed batches' warnings are expected here */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
