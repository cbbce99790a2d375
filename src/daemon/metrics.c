/*
 * Counters for the metrics endpoint (metrics.h): relaxed atomics, one add per event. The
 * endpoint reads them while they move; each value is a counter on its own, so no snapshot of
 * several at once is needed.
 */
#include "daemon/metrics.h"

#include <string.h>

#include "common/clock.h"

const double hxd_metrics_kme_bounds[HXD_METRICS_KME_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5};

const char *const hxd_metrics_fail_names[HXD_FAIL_N] = {
    [HXD_FAIL_QUERY] = "query",         [HXD_FAIL_REQUEST] = "request",
    [HXD_FAIL_WAIT_RESP] = "wait_resp", [HXD_FAIL_CHECK_RESP] = "check_resp",
    [HXD_FAIL_FINISH] = "finish",       [HXD_FAIL_WAIT_ACK] = "wait_ack",
    [HXD_FAIL_SETTLE] = "settle",       [HXD_FAIL_OTHER] = "other",
};

const char *const hxd_metrics_kme_names[HXD_KME_N] = {
    [HXD_KME_OPEN] = "open_connect",
    [HXD_KME_GET_KEY] = "get_key",
    [HXD_KME_ENC_KEYS] = "enc_keys",
    [HXD_KME_DEC_KEYS] = "dec_keys",
};

static void add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

uint64_t hxd_metrics_load(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

void hxd_metrics_init(struct hxd_metrics *m, const struct hxd_config *cfg)
{
    memset(m, 0, sizeof(*m));
    for (size_t i = 0; i < cfg->trusted.n && i < HXD_MAX_PEERS; i++) {
        m->peers[m->n_peers++] = cfg->trusted.peers[i].uuid;
    }
}

void hxd_metrics_add_peers(struct hxd_metrics *m, const struct hxd_config *cfg)
{
    size_t n = __atomic_load_n(&m->n_peers, __ATOMIC_ACQUIRE);

    for (size_t i = 0; i < cfg->trusted.n && n < HXD_MAX_PEERS; i++) {
        bool known = false;
        for (size_t k = 0; k < n && !known; k++) {
            known = hx_uuid_equal(&m->peers[k], &cfg->trusted.peers[i].uuid);
        }
        if (!known) {
            m->peers[n++] = cfg->trusted.peers[i].uuid; /* written before it is counted */
            __atomic_store_n(&m->n_peers, n, __ATOMIC_RELEASE);
        }
    }
}

size_t hxd_metrics_n_peers(const struct hxd_metrics *m)
{
    return __atomic_load_n(&m->n_peers, __ATOMIC_ACQUIRE);
}

/* The peer's slot (at most HXD_MAX_PEERS compares, no lock: the list only grows, each entry
 * written before the count that shows it), or -1. */
static int peer_slot(const struct hxd_metrics *m, const struct hx_uuid *peer)
{
    size_t n = hxd_metrics_n_peers(m);

    for (size_t i = 0; i < n; i++) {
        if (hx_uuid_equal(&m->peers[i], peer)) {
            return (int)i;
        }
    }
    return -1;
}

void hxd_metrics_produced(struct hxd_metrics *m, const struct hx_uuid *peer, uint64_t n)
{
    int i = peer_slot(m, peer);

    if (i >= 0) {
        add(&m->produced[i], n);
    }
}

void hxd_metrics_delivered(struct hxd_metrics *m, const struct hx_uuid *peer)
{
    int i = peer_slot(m, peer);

    if (i >= 0) {
        add(&m->delivered[i], 1);
    }
}

void hxd_metrics_batch_auth(struct hxd_metrics *m, bool mac)
{
    add(&m->authenticated[mac ? 1 : 0], 1);
}

void hxd_metrics_batch_failed(struct hxd_metrics *m, enum hxd_fail_cause c)
{
    if ((unsigned)c < HXD_FAIL_N) {
        add(&m->failed[c], 1);
    }
}

void hxd_metrics_kme(struct hxd_metrics *m, enum hxd_kme_op op, double started, bool ok)
{
    double s = hx_monotime() - started;
    size_t b = 0;

    if ((unsigned)op >= HXD_KME_N) {
        return;
    }
    s = s < 0 ? 0 : s;
    while (b < HXD_METRICS_KME_BUCKETS && s > hxd_metrics_kme_bounds[b]) {
        b++;
    }
    add(&m->kme[op].bucket[b], 1);
    add(&m->kme[op].sum_us, (uint64_t)(s * 1e6));
    if (!ok) {
        add(&m->kme[op].errors, 1);
    }
    __atomic_store_n(&m->kme_last_us, (uint64_t)(s * 1e6), __ATOMIC_RELAXED);
    __atomic_store_n(&m->kme_last_ok, (uint64_t)ok, __ATOMIC_RELAXED);
    __atomic_store_n(&m->kme_last_at, (uint64_t)hx_walltime(), __ATOMIC_RELAXED);
}
