/*
 * The stream service's read-mostly and periodic side (service.h): STATUS, a snapshot of the
 * node for operators, and the TTL sweep of the main loop. Both take d->lock for the copy or the
 * sweep only; store deletes run after it is released.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/hxd.h"
#include "daemon/persist.h"
#include "daemon/service.h"
#include "daemon/stream.h"

/* ---- STATUS ---- */

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
    e->qkd_reconnects = s->qkd_reconnects;
}

hx_err hxd_svc_status(struct hxd *d, struct hxd_svc_status *out)
{
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    out->node = d->cfg.uuid;
    out->cert_not_after = d->cert_not_after;
    out->store = d->store == NULL    ? HXD_SVC_STORE_MEMORY
                 : d->cfg.store_sync ? HXD_SVC_STORE_FSYNC
                                     : HXD_SVC_STORE_DURABLE;
    if (d->cfg.trusted.n > 0 &&
        (out->peers = calloc(d->cfg.trusted.n, sizeof(*out->peers))) == NULL) {
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < d->cfg.trusted.n; i++) {
        struct hxd_svc_peer_info *p = &out->peers[out->n_peers++];
        p->uuid = d->cfg.trusted.peers[i].uuid;
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
    return HX_OK;
}

void hxd_svc_status_wipe(struct hxd_svc_status *st)
{
    free(st->peers);
    free(st->streams);
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
