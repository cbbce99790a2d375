/* daemon/metrics.c: the endpoint's counters (per-peer slots, failure causes, KME histogram). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "daemon/metrics.h"

static void two_peers(struct hxd_config *cfg, struct hx_uuid *a, struct hx_uuid *b)
{
    memset(cfg, 0, sizeof(*cfg));
    memset(a, 0xaa, sizeof(*a));
    memset(b, 0xbb, sizeof(*b));
    cfg->trusted.peers[0].uuid = *a;
    cfg->trusted.peers[1].uuid = *b;
    cfg->trusted.n = 2;
}

static void per_peer_counters(void **state)
{
    struct hxd_config cfg;
    struct hxd_metrics m;
    struct hx_uuid a, b, stranger;

    (void)state;
    two_peers(&cfg, &a, &b);
    memset(&stranger, 0xcc, sizeof(stranger));
    hxd_metrics_init(&m, &cfg);
    assert_int_equal(m.n_peers, 2);
    hxd_metrics_produced(&m, &a, 16);
    hxd_metrics_produced(&m, &b, 3);
    hxd_metrics_delivered(&m, &b);
    hxd_metrics_delivered(&m, &b);
    hxd_metrics_produced(&m, &stranger, 100); /* not a configured peer: no slot, no count */
    hxd_metrics_delivered(&m, &stranger);
    assert_int_equal(hxd_metrics_load(&m.produced[0]), 16);
    assert_int_equal(hxd_metrics_load(&m.produced[1]), 3);
    assert_int_equal(hxd_metrics_load(&m.delivered[0]), 0);
    assert_int_equal(hxd_metrics_load(&m.delivered[1]), 2);
}

static void failure_causes(void **state)
{
    struct hxd_config cfg;
    struct hxd_metrics m;
    struct hx_uuid a, b;

    (void)state;
    two_peers(&cfg, &a, &b);
    hxd_metrics_init(&m, &cfg);
    hxd_metrics_batch_failed(&m, HXD_FAIL_CHECK_RESP);
    hxd_metrics_batch_failed(&m, HXD_FAIL_CHECK_RESP);
    hxd_metrics_batch_failed(&m, HXD_FAIL_REQUEST);
    hxd_metrics_batch_failed(&m, (enum hxd_fail_cause)HXD_FAIL_N); /* out of range: ignored */
    assert_int_equal(hxd_metrics_load(&m.failed[HXD_FAIL_CHECK_RESP]), 2);
    assert_int_equal(hxd_metrics_load(&m.failed[HXD_FAIL_REQUEST]), 1);
    assert_int_equal(hxd_metrics_load(&m.failed[HXD_FAIL_WAIT_RESP]), 0);
    for (size_t c = 0; c < HXD_FAIL_N; c++) {
        assert_non_null(hxd_metrics_fail_names[c]); /* every cause has a label */
    }
}

static void kme_histogram_buckets(void **state)
{
    struct hxd_config cfg;
    struct hxd_metrics m;
    struct hx_uuid a, b;
    const struct hxd_metrics_kme *k = &m.kme[HXD_KME_GET_KEY];
    double now = hx_monotime();

    (void)state;
    two_peers(&cfg, &a, &b);
    hxd_metrics_init(&m, &cfg);
    /* 3 ms: above 2.5 ms, within 5 ms (bucket 3) */
    hxd_metrics_kme(&m, HXD_KME_GET_KEY, now - 0.003, true);
    /* 10 s: above the last bound, +Inf (bucket HXD_METRICS_KME_BUCKETS), and an error */
    hxd_metrics_kme(&m, HXD_KME_GET_KEY, now - 10.0, false);
    /* a start in the future (clock read before): 0 s, the first bucket */
    hxd_metrics_kme(&m, HXD_KME_GET_KEY, now + 5.0, true);
    hxd_metrics_kme(&m, (enum hxd_kme_op)HXD_KME_N, now, false); /* out of range: ignored */
    assert_int_equal(hxd_metrics_load(&k->bucket[0]), 1);
    assert_int_equal(hxd_metrics_load(&k->bucket[3]), 1);
    assert_int_equal(hxd_metrics_load(&k->bucket[HXD_METRICS_KME_BUCKETS]), 1);
    assert_int_equal(hxd_metrics_load(&k->errors), 1);
    assert_true(hxd_metrics_load(&k->sum_us) >= 10003000);
    assert_true(hxd_metrics_load(&k->sum_us) < 11000000);
    assert_int_equal(hxd_metrics_load(&m.kme[HXD_KME_OPEN].errors), 0);
    for (size_t i = 1; i < HXD_METRICS_KME_BUCKETS; i++) {
        assert_true(hxd_metrics_kme_bounds[i] > hxd_metrics_kme_bounds[i - 1]);
    }
}

static struct hxd_metrics shared;
static struct hx_uuid shared_peer;
static pthread_barrier_t start_line;

static void *deliver_many(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start_line); /* all at once: their adds overlap */
    for (int i = 0; i < 1000000; i++) {
        hxd_metrics_delivered(&shared, &shared_peer);
    }
    return NULL;
}

/* Many threads, no lock: no increment lost. */
static void counts_from_many_threads(void **state)
{
    struct hxd_config cfg;
    struct hx_uuid b;
    pthread_t t[4];

    (void)state;
    two_peers(&cfg, &shared_peer, &b);
    hxd_metrics_init(&shared, &cfg);
    assert_int_equal(pthread_barrier_init(&start_line, NULL, 4), 0);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, deliver_many, NULL), 0);
    }
    for (size_t i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_barrier_destroy(&start_line);
    assert_int_equal(hxd_metrics_load(&shared.delivered[0]), 4000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(per_peer_counters),
        cmocka_unit_test(failure_causes),
        cmocka_unit_test(kme_histogram_buckets),
        cmocka_unit_test(counts_from_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
