/*
 * Counters for the metrics endpoint (docs/metrics.md), bumped where events happen: a relaxed
 * atomic add per event, no lock, no allocation. Only what hykex status does not already hold
 * lives here (it holds the gauges and the daemon's own batch counters, read at scrape time by
 * daemon/metrics_server.c): keys produced and delivered per peer (monotonic, unlike the
 * per-stream counts, which go when a stream closes), failed batches by the phase they failed
 * in, and the KME's request latency and errors.
 *
 * Labels stay bounded: a peer is a trusted peer of the configuration (at most HXD_MAX_PEERS),
 * never a key stream id (applications choose those, without bound).
 */
#ifndef HX_DAEMON_METRICS_H
#define HX_DAEMON_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/uuid.h"
#include "daemon/config.h"

/* Where an initiator's batch failed (its phase, daemon/initiator.c). */
enum hxd_fail_cause {
    HXD_FAIL_QUERY = 0,  /* BATCH_QUERY about a prepared batch unanswered */
    HXD_FAIL_REQUEST,    /* QKD keys or KEM key pairs not made, or BATCH_REQ not sent */
    HXD_FAIL_WAIT_RESP,  /* no BATCH_RESP in time (peer slow, link lost) or a refusal */
    HXD_FAIL_CHECK_RESP, /* BATCH_RESP did not verify: signature or MAC, ciphertext, confirmation */
    HXD_FAIL_FINISH,     /* signing BATCH_FIN or storing the prepared batch failed */
    HXD_FAIL_WAIT_ACK,   /* no BATCH_ACK in time */
    HXD_FAIL_SETTLE,     /* the peer did not commit, or settling it failed */
    HXD_FAIL_OTHER,
    HXD_FAIL_N,
};

/* A call to this node's KME. */
enum hxd_kme_op {
    HXD_KME_OPEN = 0, /* ETSI 004 OPEN_CONNECT */
    HXD_KME_GET_KEY,  /* ETSI 004 GET_KEY (one batch's worth) */
    HXD_KME_ENC_KEYS, /* ETSI 014 enc_keys */
    HXD_KME_DEC_KEYS, /* ETSI 014 dec_keys */
    HXD_KME_N,
};

/* Upper bounds (seconds) of the KME latency histogram's buckets; +Inf follows. */
#define HXD_METRICS_KME_BUCKETS 12
extern const double hxd_metrics_kme_bounds[HXD_METRICS_KME_BUCKETS];

struct hxd_metrics_kme {
    uint64_t bucket[HXD_METRICS_KME_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    uint64_t sum_us;
    uint64_t errors;
};

struct hxd_metrics {
    size_t n_peers;
    struct hx_uuid peers[HXD_MAX_PEERS]; /* the trusted peers, in configuration order */
    uint64_t produced[HXD_MAX_PEERS];    /* keys committed at this node, per peer */
    uint64_t delivered[HXD_MAX_PEERS];   /* keys handed to applications, per peer */
    uint64_t failed[HXD_FAIL_N];
    uint64_t authenticated[2]; /* batches committed here: [0] signed, [1] MACed (batch_auth.c) */
    struct hxd_metrics_kme kme[HXD_KME_N];
    /* the last KME call, for hykex status: when (Unix time; 0: none), how long, whether it
     * gave what was asked */
    uint64_t kme_last_at, kme_last_us, kme_last_ok;
};

extern const char *const hxd_metrics_fail_names[HXD_FAIL_N];
extern const char *const hxd_metrics_kme_names[HXD_KME_N];

/* Zeroes the counters and takes the peer list from the configuration (before any thread). */
void hxd_metrics_init(struct hxd_metrics *m, const struct hxd_config *cfg);

/* Peers a reload added get counters too (main thread; the list only grows: a removed peer's
 * counters stay, as counters do). */
void hxd_metrics_add_peers(struct hxd_metrics *m, const struct hxd_config *cfg);
/* How many peers have counters (acquire: their entries are written). */
size_t hxd_metrics_n_peers(const struct hxd_metrics *m);

/* The hooks: any thread, with or without d->lock. */
void hxd_metrics_produced(struct hxd_metrics *m, const struct hx_uuid *peer, uint64_t n);
void hxd_metrics_delivered(struct hxd_metrics *m, const struct hx_uuid *peer);
void hxd_metrics_batch_failed(struct hxd_metrics *m, enum hxd_fail_cause c);
/* A batch committed here, authenticated by signatures or (mac) by MACs. */
void hxd_metrics_batch_auth(struct hxd_metrics *m, bool mac);
/* A KME call that began at started (hx_monotime()) ended now; ok: it gave what was asked. */
void hxd_metrics_kme(struct hxd_metrics *m, enum hxd_kme_op op, double started, bool ok);

/* A counter's current value (relaxed atomic load), for the endpoint. */
uint64_t hxd_metrics_load(const uint64_t *counter);

#endif
