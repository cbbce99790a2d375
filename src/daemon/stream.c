/* Key streams: the table, its index by stream id, and each stream's ready keys (stream.h).
 * Callers hold d->lock. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/secret.h"
#include "daemon/hxd.h"
#include "daemon/stream.h"

static size_t hash_of(const struct hx_uuid *ksid)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: ids come from peers, not only from us */

    for (size_t i = 0; i < sizeof(ksid->b); i++) {
        h = (h ^ ksid->b[i]) * 0x100000001b3ull;
    }
    return (size_t)(h ^ (h >> 29));
}

static void index_insert(struct hxd *d, size_t slot)
{
    size_t i = hash_of(&d->streams[slot].ksid) & d->index_mask;

    while (d->index[i] > 0) {
        i = (i + 1) & d->index_mask;
    }
    if (d->index[i] < 0) {
        d->index_deleted--;
    }
    d->index[i] = (int32_t)slot + 1;
}

/* Rebuilds the index when deleted marks pile up (they lengthen every probe). */
static void index_rebuild(struct hxd *d)
{
    memset(d->index, 0, (d->index_mask + 1) * sizeof(*d->index));
    d->index_deleted = 0;
    for (size_t i = 0; i < d->max_streams; i++) {
        if (d->streams[i].used) {
            index_insert(d, i);
        }
    }
}

hx_err hxd_streams_init(struct hxd *d)
{
    size_t cap = 16;

    while (cap < 2 * d->max_streams) {
        cap *= 2;
    }
    if (d->max_streams > INT32_MAX / 2 ||
        (d->streams = calloc(d->max_streams, sizeof(*d->streams))) == NULL ||
        (d->index = calloc(cap, sizeof(*d->index))) == NULL ||
        (d->wake = calloc(d->max_streams, sizeof(*d->wake))) == NULL) {
        free(d->streams);
        free(d->index);
        d->streams = NULL;
        d->index = NULL;
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < d->max_streams; i++) {
        if (hx_cond_init_monotonic(&d->wake[i]) != HX_OK) {
            pthread_cond_init(&d->wake[i], NULL); /* waits then count on the wall clock */
        }
    }
    d->index_mask = cap - 1;
    d->index_deleted = 0;
    return HX_OK;
}

void hxd_streams_free(struct hxd *d)
{
    for (size_t i = 0; d->wake != NULL && i < d->max_streams; i++) {
        pthread_cond_destroy(&d->wake[i]);
    }
    free(d->wake);
    d->wake = NULL;
    free(d->index);
    free(d->streams);
    d->index = NULL;
    d->streams = NULL;
}

struct hxd_stream *hxd_stream_find(struct hxd *d, const struct hx_uuid *ksid)
{
    size_t i = hash_of(ksid) & d->index_mask;

    for (size_t n = 0; n <= d->index_mask && d->index[i] != 0; n++) {
        int32_t v = d->index[i];
        if (v > 0 && d->streams[v - 1].used && hx_uuid_equal(&d->streams[v - 1].ksid, ksid)) {
            return &d->streams[v - 1];
        }
        i = (i + 1) & d->index_mask;
    }
    return NULL;
}

struct hxd_stream *hxd_stream_new(struct hxd *d, const struct hx_uuid *ksid)
{
    for (size_t i = 0; i < d->max_streams; i++) {
        if (!d->streams[i].used) {
            struct hxd_stream *s = &d->streams[i];
            memset(s, 0, sizeof(*s));
            s->used = true;
            s->ksid = *ksid;
            index_insert(d, i);
            return s;
        }
    }
    return NULL;
}

void hxd_stream_copy_fixed(struct hxd_stream *dst, const struct hxd_stream *s)
{
    *dst = *s;
    dst->ready = NULL;
    dst->n_ready = dst->cap_ready = 0;
    memset(dst->fl, 0, sizeof(dst->fl));
    memset(dst->pending, 0, sizeof(dst->pending));
    dst->auth = NULL;
}

void hxd_pending_drop(struct hxd_pending *p)
{
    if (p->keys != NULL) {
        for (uint32_t i = 0; i < p->count; i++) {
            hx_secret_free(p->keys[i]);
        }
        free(p->keys);
    }
    hx_secret_free(p->auth_key);
    memset(p, 0, sizeof(*p));
}

void hxd_stream_drop(struct hxd *d, struct hxd_stream *s)
{
    size_t slot = (size_t)(s - d->streams), h = hash_of(&s->ksid) & d->index_mask;

    for (size_t n = 0; n <= d->index_mask && d->index[h] != 0; n++) {
        if (d->index[h] == (int32_t)slot + 1) {
            d->index[h] = -1;
            d->index_deleted++;
            break;
        }
        h = (h + 1) & d->index_mask;
    }
    for (size_t i = 0; i < s->n_ready; i++) {
        hx_secret_free(s->ready[i].key); /* wipes */
    }
    free(s->ready);
    for (size_t i = 0; i < HXD_PIPELINE; i++) {
        free(s->fl[i].resp);
        hxd_pending_drop(&s->pending[i]);
    }
    hx_secure_free(s->auth, sizeof(*s->auth)); /* wipes; NULL: none */
    memset(s, 0, sizeof(*s));
    pthread_cond_broadcast(&d->wake[slot]); /* its GET_KEYs find it gone */
    if (d->index_deleted > (d->index_mask + 1) / 4) {
        index_rebuild(d);
    }
}

void hxd_stream_wake(struct hxd *d, const struct hxd_stream *s)
{
    pthread_cond_broadcast(&d->wake[s - d->streams]);
}

void hxd_streams_wake_all(struct hxd *d)
{
    for (size_t i = 0; i < d->max_streams; i++) {
        if (d->streams[i].used) {
            pthread_cond_broadcast(&d->wake[i]);
        }
    }
}

bool hxd_stream_wait(struct hxd *d, const struct hxd_stream *s, int64_t deadline)
{
    return hx_cond_wait_until(&d->wake[s - d->streams], &d->lock, deadline);
}

static hx_err insert_key(struct hxd_stream *s, uint64_t pos, struct hx_secret *key, bool prepared);

static size_t slot_of(const struct hxd_stream *s, uint64_t pos, bool *found)
{
    size_t lo = 0, hi = s->n_ready;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->ready[mid].pos < pos) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < s->n_ready && s->ready[lo].pos == pos;
    return lo;
}

bool hxd_stream_has(const struct hxd_stream *s, uint64_t pos)
{
    bool found;
    size_t i = slot_of(s, pos, &found);

    return found && !s->ready[i].prepared;
}

uint64_t hxd_stream_window_end(const struct hxd *d, const struct hxd_stream *s)
{
    uint64_t low = s->produced, depth = d->cfg.buffer_depth;

    if (s->n_ready > 0 && s->ready[0].pos < low) {
        low = s->ready[0].pos;
    }
    if (depth < d->cfg.batch_size) {
        depth = d->cfg.batch_size;
    }
    return low + depth;
}

uint32_t hxd_stream_batch_size(const struct hxd *d, const struct hxd_stream *s, bool may_grow)
{
    uint64_t n = d->cfg.batch_size, end = hxd_stream_window_end(d, s);
    uint64_t room = end > s->next_first ? end - s->next_first : 0;
    size_t heap = 0; /* asked once, only when a doubling is otherwise allowed (it takes
                        OpenSSL's secure-heap lock) */

    while (may_grow && 2 * n <= d->cfg.batch_max && s->n_ready >= 4 * n && room >= 2 * n) {
        if (heap == 0 && (heap = hx_secret_heap_room()) == 0) {
            break;
        }
        if (heap / 2 <= 2 * n * s->qos.key_chunk_size + (256u << 10)) {
            break;
        }
        n *= 2;
    }
    return (uint32_t)n;
}

bool hxd_window_allows(const struct hxd_stream *s, uint64_t first, uint32_t count)
{
    return !s->peer_limit_known || first + count <= s->peer_limit;
}

uint32_t hxd_window_cut(const struct hxd_stream *s, uint64_t first, uint32_t count)
{
    if (!s->peer_limit_known || first + count <= s->peer_limit) {
        return count;
    }
    return first < s->peer_limit ? (uint32_t)(s->peer_limit - first) : 0;
}

bool hxd_stream_has_prepared(const struct hxd_stream *s, uint64_t pos)
{
    bool found;
    size_t i = slot_of(s, pos, &found);

    return found && s->ready[i].prepared;
}

int hxd_stream_hops_at(const struct hxd_stream *s, uint64_t pos)
{
    for (size_t i = s->n_hops_run; i > 0; i--) {
        if (pos >= s->hops_run[i - 1].first &&
            pos - s->hops_run[i - 1].first < s->hops_run[i - 1].count) {
            return (int)s->hops_run[i - 1].relays;
        }
    }
    return -1;
}

struct hx_secret *hxd_stream_take(struct hxd_stream *s, uint64_t pos, double *ready_at)
{
    bool found;
    size_t i = slot_of(s, pos, &found);
    struct hx_secret *k;

    if (!found || s->ready[i].prepared) {
        return NULL;
    }
    k = s->ready[i].key;
    *ready_at = s->ready[i].ready_at;
    memmove(&s->ready[i], &s->ready[i + 1], (s->n_ready - i - 1) * sizeof(*s->ready));
    s->n_ready--;
    return k;
}

uint64_t hxd_stream_ready_after(const struct hxd_stream *s, uint64_t pos)
{
    bool found;
    uint64_t n = 0;

    /* Every position below the watermark is committed (none prepared), so the keys held
     * between pos and it are ready; above it, the committed runs not yet joined to it. */
    if (pos + 1 < s->produced) {
        n += slot_of(s, s->produced, &found) - slot_of(s, pos + 1, &found);
    }
    for (size_t i = 0; i < s->n_done_above; i++) {
        uint64_t first = s->done_above[i].first, end = first + s->done_above[i].count;
        if (end > pos + 1) {
            n += slot_of(s, end, &found) - slot_of(s, first > pos + 1 ? first : pos + 1, &found);
        }
    }
    return n;
}

void hxd_stream_untake(struct hxd_stream *s, uint64_t pos, double ready_at, struct hx_secret *key)
{
    if (insert_key(s, pos, key, false) != HX_OK) {
        hx_secret_free(key);
        return;
    }
    s->ready[slot_of(s, pos, &(bool){false})].ready_at = ready_at;
}

void hxd_stream_ready_range(struct hxd_stream *s, uint64_t first, uint32_t count)
{
    bool found;

    for (size_t i = slot_of(s, first, &found); i < s->n_ready && s->ready[i].pos < first + count;
         i++) {
        s->ready[i].prepared = false;
        s->ready[i].ready_at = hx_monotime();
    }
    hxd_pace_arrive(&s->pace, hx_monotime_ns(), count);
}

void hxd_stream_discard_range(struct hxd_stream *s, uint64_t first, uint32_t count)
{
    bool found;
    size_t lo = slot_of(s, first, &found), hi = lo;

    while (hi < s->n_ready && s->ready[hi].pos < first + count) {
        hx_secret_free(s->ready[hi++].key);
    }
    memmove(&s->ready[lo], &s->ready[hi], (s->n_ready - hi) * sizeof(*s->ready));
    s->n_ready -= hi - lo;
}

static hx_err insert_key(struct hxd_stream *s, uint64_t pos, struct hx_secret *key, bool prepared)
{
    bool found;
    size_t i = slot_of(s, pos, &found);

    if (found) {
        return HX_ERR_EXISTS;
    }
    if (s->n_ready == s->cap_ready) {
        size_t cap = s->cap_ready ? s->cap_ready * 2 : 64;
        struct hxd_key *r = realloc(s->ready, cap * sizeof(*r));
        if (r == NULL) {
            return HX_ERR_NOMEM;
        }
        s->ready = r;
        s->cap_ready = cap;
    }
    memmove(&s->ready[i + 1], &s->ready[i], (s->n_ready - i) * sizeof(*s->ready));
    s->ready[i].pos = pos;
    s->ready[i].ready_at = hx_monotime();
    s->ready[i].key = key;
    s->ready[i].prepared = prepared;
    s->n_ready++;
    return HX_OK;
}

hx_err hxd_stream_add_key(struct hxd_stream *s, uint64_t pos, struct hx_secret *key, bool prepared)
{
    hx_err e = insert_key(s, pos, key, prepared);

    if (e == HX_OK && !prepared) { /* a committed key: production's pace (pace.h) */
        hxd_pace_arrive(&s->pace, hx_monotime_ns(), 1);
    }
    return e;
}
