/*
 * The stream service's read-mostly and periodic side (service.h): STATUS, a snapshot of the
 * node for operators, and the TTL sweep of the main loop. Both take d->lock for the copy or the
 * sweep only; store deletes run after it is released.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/hxd.h"
#include "daemon/persist.h"
#include "daemon/service.h"
#include "daemon/service_int.h"
#include "daemon/stream.h"

/* ---- STATUS ---- */

#define RATE_EVERY_S 10
#define RATE_SAMPLES \
    (sizeof(((struct hxd_stream *)0)->rate) / sizeof(((struct hxd_stream *)0)->rate[0]))

/* Keys produced per second over the last minute: from the oldest sample at most ~60 s old
 * (lock held). */
static double keys_per_s(const struct hxd_stream *s, int64_t now)
{
    int64_t t0 = 0;
    uint64_t n0 = 0;

    for (size_t i = 0; i < RATE_SAMPLES; i++) {
        if (s->rate[i].t != 0 && now - s->rate[i].t <= 60 + RATE_EVERY_S / 2 &&
            (t0 == 0 || s->rate[i].t < t0)) {
            t0 = s->rate[i].t;
            n0 = s->rate[i].produced;
        }
    }
    if (t0 == 0 || now <= t0 || s->produced < n0) {
        return 0;
    }
    return (double)(s->produced - n0) / (double)(now - t0);
}

/* One sample of what a stream has produced, every RATE_EVERY_S (lock held; once a second). */
static void sample_rate(struct hxd_stream *s, int64_t now)
{
    size_t last = (s->rate_next + RATE_SAMPLES - 1) % RATE_SAMPLES;

    if (s->rate[last].t != 0 && now - s->rate[last].t < RATE_EVERY_S) {
        return;
    }
    s->rate[s->rate_next].t = now;
    s->rate[s->rate_next].produced = s->produced;
    s->rate_next = (s->rate_next + 1) % RATE_SAMPLES;
}

static void stream_info(const struct hxd *d, const struct hxd_stream *s,
                        struct hxd_svc_stream_info *e)
{
    size_t prepared = 0;

    memset(e, 0, sizeof(*e));
    e->ksid = s->ksid;
    e->peer = s->peer;
    e->initiator = s->role == HXD_INITIATOR;
    e->method = hx_combine_name(s->uri.method);
    for (size_t i = 0; i < s->uri.n_sources && i < HX_URI_MAX_SOURCES; i++) {
        e->sources[e->n_sources++] = hx_source_name(s->uri.sources[i]);
    }
    for (size_t i = 0; i < s->n_ready; i++) {
        prepared += s->ready[i].prepared;
    }
    e->ready = s->n_ready - prepared;
    e->prepared = prepared;
    e->buffer_depth = d->cfg.buffer_depth;
    e->produced = s->produced;
    e->delivered = s->delivered;
    e->next_index = s->next_get;
    e->failed_batches = s->failed_batches;
    e->state = s->peer_closed      ? HXD_SVC_CLOSED_BY_PEER
               : !s->peer_app_open ? HXD_SVC_WAITING_PEER
               : s->failing        ? HXD_SVC_FAILING
                                   : HXD_SVC_PRODUCING;
    e->failing = s->failing;
    if (s->failing) {
        snprintf(e->last_error, sizeof(e->last_error), "%s", s->fail_msg);
    }
    e->restored = s->restored;
    e->opened_at = s->opened_at;
    e->keys_per_s = keys_per_s(s, hx_walltime());
    e->qkd_reconnects = s->qkd_reconnects;
    e->reroutes = s->reroutes;
}

hx_err hxd_svc_status(struct hxd *d, struct hxd_svc_status *out)
{
    size_t n = 0;

    struct hx_uuid peers[HXD_MAX_PEERS];
    size_t n_peers;

    memset(out, 0, sizeof(*out));
    out->node = d->cfg.uuid;
    out->store = d->store == NULL    ? HXD_SVC_STORE_MEMORY
                 : d->cfg.store_sync ? HXD_SVC_STORE_FSYNC
                                     : HXD_SVC_STORE_DURABLE;
    out->kme_configured = d->cfg.qkd_protocol != HXD_QKD_NONE;
    out->kme_last_at = hxd_metrics_load(&d->metrics.kme_last_at);
    out->kme_last_us = hxd_metrics_load(&d->metrics.kme_last_us);
    out->kme_last_ok = hxd_metrics_load(&d->metrics.kme_last_ok);
    /* The trusted peers and what a reload changes, under the lock a reload takes. */
    pthread_mutex_lock(&d->lock);
    n_peers = d->cfg.trusted.n;
    for (size_t i = 0; i < n_peers; i++) {
        peers[i] = d->cfg.trusted.peers[i].uuid;
    }
    out->cert_not_after = d->cert_not_after;
    out->ca_not_after = d->ca_not_after;
    out->cert_warn_days = d->cfg.cert_warn_days;
    out->started_at = d->started_at;
    out->reloads = d->reloads;
    out->reloads_refused = d->reloads_refused;
    out->last_reload_at = d->last_reload_at;
    memcpy(out->last_reload, d->last_reload, sizeof(out->last_reload));
    pthread_mutex_unlock(&d->lock);
    if (n_peers > 0 && (out->peers = calloc(n_peers, sizeof(*out->peers))) == NULL) {
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < n_peers; i++) {
        struct hxd_svc_peer_info *p = &out->peers[out->n_peers++];
        p->uuid = peers[i];
        if (hx_links_info(d->links, &p->uuid, &p->link) != HX_OK) {
            memset(&p->link, 0, sizeof(p->link));
        }
    }
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->max_streams; i++) {
        n += d->streams[i].used;
    }
    if (n > 0 && (out->streams = calloc(n, sizeof(*out->streams))) == NULL) {
        pthread_mutex_unlock(&d->lock);
        hxd_svc_status_wipe(out);
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < d->max_streams && out->n_streams < n; i++) {
        if (d->streams[i].used) {
            stream_info(d, &d->streams[i], &out->streams[out->n_streams++]);
        }
    }
    out->batches_ok = d->batches_ok;
    out->batches_failed = d->batches_failed;
    out->confirm_mismatch = d->confirm_mismatch;
    out->store_errors = d->store_errors;
    pthread_mutex_unlock(&d->lock);
    if (hxd_relay_view(d, &out->relay) != HX_OK) { /* its own lock, never under d->lock */
        hxd_svc_status_wipe(out);
        return HX_ERR_NOMEM;
    }
    return HX_OK;
}

/* ---- RELOAD ---- */

#define RELOAD_WAIT_MS 30000

/* The caller of the daemon's own uid, or root, on the Unix socket ("uid:N"). */
static bool may_reload(const char *identity)
{
    uint64_t uid = 0;
    const char *p;

    if (identity == NULL || strncmp(identity, "uid:", 4) != 0 || identity[4] == '\0') {
        return false;
    }
    for (p = identity + 4; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || uid > UINT32_MAX) {
            return false;
        }
        uid = uid * 10 + (uint64_t)(*p - '0');
    }
    return uid == 0 || uid == (uint64_t)geteuid();
}

void hxd_svc_reload(struct hxd *d, const char *identity, struct hxd_svc_result *res, char *result,
                    size_t cap)
{
    int64_t deadline = hx_deadline_in_ms(RELOAD_WAIT_MS);
    uint64_t before;

    memset(res, 0, sizeof(*res));
    result[0] = '\0';
    if (!may_reload(identity)) {
        hxd_svc_fail(res, HXD_SVC_REFUSED,
                     "RELOAD: only the daemon's own user or root, over its Unix socket "
                     "(api.unix_socket); or send hykexd SIGHUP");
        return;
    }
    pthread_mutex_lock(&d->lock);
    before = d->reloads + d->reloads_refused;
    pthread_mutex_unlock(&d->lock);
    /* The main thread takes it (sigtimedwait) and reloads there, as for an operator's kill. */
    if (kill(getpid(), SIGHUP) != 0) {
        hxd_svc_fail(res, HXD_SVC_FAILED, "RELOAD: cannot signal the daemon");
        return;
    }
    pthread_mutex_lock(&d->lock);
    while (d->reloads + d->reloads_refused == before && hxd_svc_wait_change(d, deadline)) {
    }
    if (d->reloads + d->reloads_refused == before) {
        hxd_svc_fail(res, HXD_SVC_FAILED, "RELOAD: no outcome within %d s; see the log",
                     RELOAD_WAIT_MS / 1000);
    } else if (strncmp(d->last_reload, "refused", 7) == 0) {
        hxd_svc_fail(res, HXD_SVC_REFUSED, "reload %.280s", d->last_reload);
    } else {
        snprintf(result, cap, "%s", d->last_reload);
    }
    pthread_mutex_unlock(&d->lock);
}

void hxd_svc_status_wipe(struct hxd_svc_status *st)
{
    free(st->peers);
    free(st->streams);
    hxd_relay_view_free(st->relay);
    memset(st, 0, sizeof(*st));
}

/* ---- TTL ---- */

void hxd_svc_expire(struct hxd *d)
{
    int64_t now = hx_walltime();
    struct hx_uuid gone[64];
    size_t n = 0;

    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->max_streams && n < sizeof(gone) / sizeof(gone[0]); i++) {
        struct hxd_stream *s = &d->streams[i];
        char id[HX_UUID_STR_LEN + 1];
        if (s->used) {
            sample_rate(s, now); /* for keys/s in STATUS */
        }
        /* Only established streams: one still waiting for its peer has its OPEN_CONNECT. */
        if (!s->used || s->qos.ttl_s == 0 || s->opened_at == 0 || !s->peer_app_open ||
            s->opened_at + (int64_t)s->qos.ttl_s > now) {
            continue;
        }
        hx_uuid_format(&s->ksid, id);
        hx_info("key stream expired (QoS TTL); its keys are wiped",
                HX_F_STR("stream", id) HX_F_U64("ttl_s", s->qos.ttl_s));
        gone[n++] = s->ksid;
        hxd_stream_drop(d, s); /* wipes the keys; a waiting GET_KEY answers "not open" */
    }
    if (n > 0) {
        pthread_cond_broadcast(&d->changed);
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < n; i++) {
        hxd_persist_drop(d, &gone[i]);
    }
}
