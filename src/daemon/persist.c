/*
 * hykexd and its durable store (docs/store.md): opening it, restoring streams at start-up,
 * writing stream rows. Batches and deliveries call the store directly (the batch protocol
 * (responder.c, initiator.c), service.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/batch.h"
#include "daemon/hxd.h"
#include "daemon/persist.h"
#include "daemon/stream.h"
#include "proto/peer.h"

/* What a restore knows of the stream being loaded. */
struct restore {
    struct hxd *d;
    struct hxd_stream *s;
    uint64_t *delivered; /* DELIVERED rows above the watermark */
    size_t n_delivered, cap_delivered;
    uint64_t max_pos; /* highest position with a row, + 1 */
    size_t streams, keys;
    hx_err err;
};

static bool was_delivered(const struct restore *r, uint64_t pos)
{
    size_t lo = 0, hi = r->n_delivered;

    while (lo < hi) { /* rows come in position order: the array is sorted */
        size_t mid = (lo + hi) / 2;
        if (r->delivered[mid] < pos) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < r->n_delivered && r->delivered[lo] == pos;
}

/*
 * The longest retry of a restored stream: the largest batch it may have had in flight
 * (hxd_config_batch_top, or limits.batch_size where batches do not grow), cut so that its
 * frames fit.
 */
static uint32_t retry_len(const struct hxd *d, const struct hxd_stream *s)
{
    uint32_t n = hxd_batch_may_grow(d, s) ? hxd_config_batch_top(&d->cfg) : d->cfg.batch_size;

    n = hx_peer_batch_cap(&s->uri, d->cfg.kem_key_pairs == HXD_KEY_PAIRS_PER_BATCH, n);
    return n > 0 ? n : 1;
}

/*
 * After a stream's rows: committed runs above the watermark become done_above entries; at the
 * initiator, prepared runs (the responder may hold them: query) and gaps (nobody holds them:
 * make again) become retries of at most a batch each (retry_len).
 */
static void finish_stream(struct restore *r)
{
    struct hxd_stream *s = r->s;
    uint32_t batch;
    uint64_t p;

    if (s == NULL) {
        return;
    }
    batch = retry_len(r->d, s);
    p = s->produced;
    while (p < r->max_pos) {
        bool committed = hxd_stream_has(s, p) || was_delivered(r, p);
        bool prepared = hxd_stream_has_prepared(s, p);
        uint64_t q = p + 1;
        while (q < r->max_pos && q - p < (committed ? UINT64_MAX : batch) &&
               (hxd_stream_has(s, q) || was_delivered(r, q)) == committed &&
               hxd_stream_has_prepared(s, q) == prepared) {
            q++;
        }
        if (committed && s->n_done_above < sizeof(s->done_above) / sizeof(s->done_above[0])) {
            s->done_above[s->n_done_above].first = p;
            s->done_above[s->n_done_above++].count = q - p;
        } else if (!committed && s->role == HXD_INITIATOR &&
                   s->n_retry < sizeof(s->retry) / sizeof(s->retry[0])) {
            s->retry[s->n_retry].first = p;
            s->retry[s->n_retry++].count = (uint32_t)(q - p);
        } else if (committed || s->role == HXD_INITIATOR) {
            /* Not by construction (at most three batches were in flight): said, not silent. */
            char id[HX_UUID_STR_LEN + 1];
            hx_uuid_format(&s->ksid, id);
            hx_warn(
                "restore: more runs above the watermark than a stream holds; positions "
                "left as they are",
                HX_F_STR("stream", id) HX_F_U64("first", p) HX_F_U64("count", q - p));
        }
        p = q;
    }
    s->next_first = r->max_pos > s->produced ? r->max_pos : s->produced;
    /* Batches in flight at the crash may have spent QKD indices a store written before the
     * reservation (batch_source.c reserve_qkd) never saw; those batches did not grow. */
    s->qkd_next += 4 * HXD_PIPELINE * (uint64_t)r->d->cfg.batch_size;
    r->s = NULL;
    r->n_delivered = 0;
}

static hx_err on_stream(void *arg, const struct hx_store_stream *row)
{
    struct restore *r = arg;
    struct hxd_stream *s;
    char why[200], id[HX_UUID_STR_LEN + 1];

    finish_stream(r);
    hx_uuid_format(&row->ksid, id);
    if ((s = hxd_stream_new(r->d, &row->ksid)) == NULL) {
        hx_error("more streams in the store than limits.max_streams", HX_F_STR("stream", id));
        return HX_ERR_NOSPACE;
    }
    s->role = row->role == 0 ? HXD_INITIATOR : HXD_RESPONDER;
    s->peer = row->peer;
    snprintf(s->src, sizeof(s->src), "%s", row->src);
    snprintf(s->dst, sizeof(s->dst), "%s", row->dst);
    if (hx_uri_parse(s->src, &s->uri, why, sizeof(why)) != HX_OK) {
        hx_error("stored stream has a bad source URI", HX_F_STR("stream", id) HX_F_STR("why", why));
        hxd_stream_drop(r->d, s);
        return HX_ERR_BAD_VALUE;
    }
    s->qos.key_chunk_size = row->chunk;
    s->qos.timeout_ms = row->timeout_ms;
    s->qos.ttl_s = row->ttl_s;
    s->qkd_ksid = row->qkd_ksid;
    snprintf(s->peer_sae, sizeof(s->peer_sae), "%s", row->peer_sae);
    s->qkd_next = row->qkd_next;
    s->produced = row->produced;
    s->next_get = row->next_get;
    s->peer_closed = row->peer_closed;
    s->opened_at = row->opened_at;
    snprintf(s->owner, sizeof(s->owner), "%s", row->owner);
    /* Both applications had opened it: it resumes as it was. */
    s->announced = s->app_open = s->peer_app_open = s->restored = true;
    s->qkd_open = !hx_qkd_ksid_is_none(&s->qkd_ksid);
    r->s = s;
    r->max_pos = s->produced;
    r->streams++;
    return HX_OK;
}

static hx_err on_key(void *arg, const struct hx_uuid *ksid, uint64_t pos,
                     enum hx_store_key_state state, struct hx_secret *key)
{
    struct restore *r = arg;
    hx_err e = HX_OK;

    (void)ksid;
    if (pos + 1 > r->max_pos) {
        r->max_pos = pos + 1;
    }
    if (state == HX_STORE_DELIVERED) {
        if (r->n_delivered == r->cap_delivered) {
            size_t cap = r->cap_delivered ? r->cap_delivered * 2 : 64;
            uint64_t *p = realloc(r->delivered, cap * sizeof(*p));
            if (p == NULL) {
                return HX_ERR_NOMEM;
            }
            r->delivered = p;
            r->cap_delivered = cap;
        }
        r->delivered[r->n_delivered++] = pos;
        return HX_OK;
    }
    if ((e = hxd_stream_add_key(r->s, pos, key, state == HX_STORE_PREPARED)) != HX_OK) {
        hx_secret_free(key);
        return e;
    }
    r->keys++;
    return HX_OK;
}

hx_err hxd_persist_open(struct hxd *d, char *why, size_t why_len)
{
    struct restore r;
    uint64_t expired = 0;
    hx_err e;

    if (d->cfg.state_dir[0] == '\0') {
        return HX_OK;
    }
    if ((e = hx_store_open(d->cfg.state_dir,
                           d->cfg.store_sync ? HX_STORE_SYNC_FULL : HX_STORE_SYNC_NORMAL, &d->store,
                           why, why_len)) != HX_OK) {
        return e;
    }
    memset(&r, 0, sizeof(r));
    r.d = d;
    pthread_mutex_lock(&d->lock);
    e = hx_store_load(d->store, hx_walltime(), on_stream, on_key, &r, &expired);
    finish_stream(&r);
    if (e != HX_OK) {
        for (size_t i = 0; i < d->max_streams; i++) {
            if (d->streams[i].used) {
                hxd_stream_drop(d, &d->streams[i]);
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
    free(r.delivered);
    if (e != HX_OK) {
        snprintf(
            why, why_len, "cannot restore the store in %s: %s%s", d->cfg.state_dir, hx_strerror(e),
            e == HX_ERR_VERIFY ? " (a key does not decrypt: altered, or another storage key)" : "");
        hx_store_free(d->store);
        d->store = NULL;
        return e;
    }
    hx_info("store open", HX_F_STR("dir", d->cfg.state_dir) HX_F_U64("streams", r.streams)
                              HX_F_U64("keys", r.keys) HX_F_U64("expired", expired));
    return HX_OK;
}

hx_err hxd_persist_chown(struct hxd *d, uid_t uid, gid_t gid, char *why, size_t why_len)
{
    static const char *const names[] = {"", "/storage.key", "/hykexd.db", "/hykexd.db-wal",
                                        "/hykexd.db-shm"};
    char path[HXD_MAX_PATH + 32];

    if (d->store == NULL) {
        return HX_OK;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", d->cfg.state_dir, names[i]);
        if (lchown(path, uid, gid) != 0 && errno != ENOENT) {
            snprintf(why, why_len, "cannot hand %s to uid %lu: %s", path, (unsigned long)uid,
                     strerror(errno));
            return HX_ERR_IO_PERM;
        }
    }
    return HX_OK;
}

void hxd_persist_close(struct hxd *d)
{
    hx_store_free(d->store);
    d->store = NULL;
}

void hxd_persist_row(const struct hxd_stream *s, struct hx_store_stream *row)
{
    memset(row, 0, sizeof(*row));
    row->ksid = s->ksid;
    row->role = s->role == HXD_INITIATOR ? 0 : 1;
    row->peer = s->peer;
    snprintf(row->src, sizeof(row->src), "%s", s->src);
    snprintf(row->dst, sizeof(row->dst), "%s", s->dst);
    row->chunk = s->qos.key_chunk_size;
    row->timeout_ms = s->qos.timeout_ms;
    row->ttl_s = s->qos.ttl_s;
    row->qkd_ksid = s->qkd_ksid;
    snprintf(row->peer_sae, sizeof(row->peer_sae), "%s", s->peer_sae);
    row->qkd_next = s->qkd_next;
    row->produced = s->produced;
    row->next_get = s->next_get;
    row->peer_closed = s->peer_closed;
    row->opened_at = s->opened_at;
    snprintf(row->owner, sizeof(row->owner), "%s", s->owner);
}

hx_err hxd_persist_write(struct hxd *d, const struct hx_store_stream *row)
{
    hx_err e;

    if (d->store == NULL) {
        return HX_OK;
    }
    if ((e = hx_store_put_stream(d->store, row)) != HX_OK) {
        char id[HX_UUID_STR_LEN + 1];
        hx_uuid_format(&row->ksid, id);
        hx_error("store: writing a stream failed",
                 HX_F_STR("stream", id) HX_F_STR("error", hx_strerror(e)));
    }
    return e;
}

hx_err hxd_persist_stream(struct hxd *d, const struct hxd_stream *s)
{
    struct hx_store_stream *row;
    hx_err e;

    if (d->store == NULL) {
        return HX_OK;
    }
    if ((row = calloc(1, sizeof(*row))) == NULL) {
        return HX_ERR_NOMEM;
    }
    hxd_persist_row(s, row);
    e = hxd_persist_write(d, row);
    free(row);
    return e;
}

void hxd_persist_drop(struct hxd *d, const struct hx_uuid *ksid)
{
    hx_err e;

    if (d->store != NULL && (e = hx_store_drop_stream(d->store, ksid)) != HX_OK) {
        char id[HX_UUID_STR_LEN + 1];
        hx_uuid_format(ksid, id);
        hx_error("store: deleting a stream failed",
                 HX_F_STR("stream", id) HX_F_STR("error", hx_strerror(e)));
    }
}

/* Two copies of a stream's row alike? (Field by field: the struct has padding.) */
static bool same_row(const struct hx_store_stream *a, const struct hx_store_stream *b)
{
    return hx_uuid_equal(&a->ksid, &b->ksid) && a->role == b->role &&
           hx_uuid_equal(&a->peer, &b->peer) && strcmp(a->src, b->src) == 0 &&
           strcmp(a->dst, b->dst) == 0 && a->chunk == b->chunk && a->timeout_ms == b->timeout_ms &&
           a->ttl_s == b->ttl_s && strcmp(a->qkd_ksid.s, b->qkd_ksid.s) == 0 &&
           strcmp(a->peer_sae, b->peer_sae) == 0 && a->qkd_next == b->qkd_next &&
           a->produced == b->produced && a->next_get == b->next_get &&
           a->peer_closed == b->peer_closed && a->opened_at == b->opened_at &&
           strcmp(a->owner, b->owner) == 0;
}

/*
 * Writes a stream's row copied under d->lock, after releasing it. Between the copy and the
 * write another thread may change the stream and write its row, or drop it and delete its
 * row: so after writing, look again; a stream gone has its row deleted (again), a stream
 * changed has its newer row written, until the store holds what memory holds.
 */
void hxd_persist_settle(struct hxd *d, struct hx_store_stream *row)
{
    struct hx_store_stream *now;

    if (d->store == NULL || (now = malloc(sizeof(*now))) == NULL) {
        hx_ignore(hxd_persist_write(d, row)); /* no store: a no-op; no memory: write once */
        return;
    }
    for (int tries = 0; tries < 8; tries++) {
        struct hxd_stream *s;
        hx_ignore(hxd_persist_write(d, row));
        pthread_mutex_lock(&d->lock);
        if ((s = hxd_stream_find(d, &row->ksid)) != NULL) {
            hxd_persist_row(s, now);
        }
        pthread_mutex_unlock(&d->lock);
        if (s == NULL) {
            hxd_persist_drop(d, &row->ksid);
            break;
        }
        if (same_row(now, row)) {
            break;
        }
        memcpy(row, now, sizeof(*row));
    }
    free(now);
}
