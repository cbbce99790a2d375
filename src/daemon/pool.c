/*
 * The batch protocol's threads (hxd.h has the whole daemon's), as Redis bio.c keeps slow work
 * off its event loop:
 *
 *   initiators  one job per batch to make (hxd_stream_kick queues them); a worker waits for
 *               the peer's replies, so there are several
 *   responders  one job per BATCH_REQ, BATCH_FIN or BATCH_QUERY; they never wait on the network
 *   writer      one thread, FIFO: the store writes decided on a peer link's I/O thread (a
 *               stream's row when it is joined or closed by the peer, its deletion). The I/O
 *               thread copies what must be written under d->lock and queues it; the writer
 *               writes without the lock, in the order queued.
 *
 * Every queue is guarded by d->lock. Batch commits (BATCH_FIN at the responder, prepare and
 * settle at the initiator) write the store from their own worker, outside d->lock, before the
 * message that depends on them leaves (docs/store.md).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "common/log.h"
#include "common/sched.h"
#include "daemon/batch.h"

enum pool_kind { POOL_INITIATORS, POOL_RESPONDERS, POOL_WRITER };

struct pool_arg {
    struct hxd *d;
    struct hxd_pool *pool;
    enum pool_kind kind;
};

static bool push(struct hxd_pool *pool, struct hxd_job *j)
{
    if (pool->closed) {
        free(j->msg);
        free(j);
        return false;
    }
    if (pool->tail != NULL) {
        pool->tail->next = j;
    } else {
        pool->head = j;
    }
    pool->tail = j;
    pthread_cond_signal(&pool->wake);
    return true;
}

bool hxd_pool_enqueue(struct hxd_pool *pool, const struct hx_uuid *ksid, uint8_t type,
                      const uint8_t *msg, size_t len)
{
    struct hxd_job *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        return false;
    }
    j->ksid = *ksid;
    j->type = type;
    if (len > 0) {
        if ((j->msg = malloc(len)) == NULL) {
            free(j);
            return false;
        }
        memcpy(j->msg, msg, len);
        j->len = len;
    }
    return push(pool, j);
}

/* ---- the writer ---- */

/* A stream's fixed fields, for its row: none of its buffers come along. */
static struct hxd_stream *row_copy(const struct hxd_stream *s)
{
    struct hxd_stream *c = malloc(sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    hxd_stream_copy_fixed(c, s);
    return c;
}

/* Queues a row write (lock held); false when the writer is stopped (the caller writes). */
static bool queue_row(struct hxd *d, uint8_t type, const struct hxd_stream *s)
{
    struct hxd_job *j;

    if (d->writer.closed || (j = calloc(1, sizeof(*j))) == NULL) {
        return false;
    }
    if ((j->msg = (uint8_t *)row_copy(s)) == NULL) {
        free(j);
        return false;
    }
    j->ksid = s->ksid;
    j->type = type;
    j->len = sizeof(*s);
    return push(&d->writer, j);
}

void hxd_persist_stream_later(struct hxd *d, const struct hxd_stream *s)
{
    if (d->store != NULL && !queue_row(d, HXD_WRITE_STREAM, s)) {
        hx_ignore(hxd_persist_stream(d, s)); /* at shutdown (or out of memory): now */
    }
}

void hxd_persist_drop_later(struct hxd *d, const struct hx_uuid *ksid)
{
    if (d->store != NULL && !hxd_pool_enqueue(&d->writer, ksid, HXD_WRITE_DROP, NULL, 0)) {
        hxd_persist_drop(d, ksid);
    }
}

static void joined(struct hxd *d, struct hxd_stream *s)
{
    s->peer_app_open = true;
    hxd_stream_kick(d, s);
    pthread_cond_broadcast(&d->changed);
}

void hxd_persist_joined_later(struct hxd *d, struct hxd_stream *s)
{
    if (d->store == NULL) {
        joined(d, s);
    } else if (!queue_row(d, HXD_WRITE_JOINED, s)) {
        hx_ignore(hxd_persist_stream(d, s));
        joined(d, s);
    }
}

/* Runs a writer job (no lock held). */
static void write_job(struct hxd *d, struct hxd_job *j)
{
    struct hxd_stream *s;

    if (j->type == HXD_WRITE_DROP) {
        hxd_persist_drop(d, &j->ksid);
        return;
    }
    /* A stream dropped since (its application closed it too) keeps no row: writing it now
     * would bring back what the drop deleted. */
    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, &j->ksid);
    pthread_mutex_unlock(&d->lock);
    if (s == NULL) {
        return;
    }
    hx_ignore(hxd_persist_stream(d, (const struct hxd_stream *)j->msg));
    /* Dropped while the row was being written: the drop's delete may have run first, so delete
     * again (idempotent) rather than leave a row memory no longer has. */
    pthread_mutex_lock(&d->lock);
    if ((s = hxd_stream_find(d, &j->ksid)) == NULL) {
        pthread_mutex_unlock(&d->lock);
        hxd_persist_drop(d, &j->ksid);
        return;
    }
    if (j->type != HXD_WRITE_JOINED) {
        pthread_mutex_unlock(&d->lock);
        return;
    }
    if (s->role == HXD_INITIATOR) {
        /* qkd.join same-uris: the KME's id may have come while this row was written (the
         * opener saw no JOIN yet, so it wrote none): the row again, with it */
        if (strcmp(s->qkd_ksid.s, ((const struct hxd_stream *)j->msg)->qkd_ksid.s) != 0) {
            hxd_persist_stream_later(d, s);
        }
        joined(d, s);
    }
    pthread_mutex_unlock(&d->lock);
}

/* ---- pools ---- */

static void *pool_main(void *arg)
{
    struct pool_arg *pa = arg;
    struct hxd *d = pa->d;
    struct hxd_pool *pool = pa->pool;
    static const char *const names[] = {"hx-initiator", "hx-responder", "hx-writer"};
    struct hx_slice slice = {0};

    /* named for top -H, perf and the debugger (15 bytes at most) */
    (void)prctl(PR_SET_NAME, names[pa->kind], 0, 0, 0);
    pthread_mutex_lock(&d->lock);
    /* The writer drains its queue before it stops: what was decided gets written. */
    while (!d->stopping || (pa->kind == POOL_WRITER && pool->head != NULL)) {
        struct hxd_job *j = pool->head;
        if (j == NULL) {
            pthread_cond_wait(&pool->wake, &d->lock);
            continue;
        }
        pool->head = j->next;
        if (pool->head == NULL) {
            pool->tail = NULL;
        }
        pthread_mutex_unlock(&d->lock);
        /* While few applications take keys, the crypto workers' long slice lets a woken API
         * thread or application preempt them (hxd_latency_mode; a hint: a kernel without
         * custom slices changes nothing). Not the writer: a GET_KEY with the store may wait
         * for what it writes. */
        if (pa->kind != POOL_WRITER) {
            hx_sched_slice_keep(&slice, hxd_latency_mode(d) ? HX_SLICE_WORKER_NS : 0);
        }
        pool->run(d, j);
        free(j->msg);
        free(j);
        pthread_mutex_lock(&d->lock);
    }
    pool->closed = true; /* later jobs are refused (the writer's are then written at once) */
    pthread_mutex_unlock(&d->lock);
    free(pa);
    return NULL;
}

static void start_pool(struct hxd *d, struct hxd_pool *pool, size_t n, enum pool_kind kind,
                       hxd_job_fn run)
{
    pool->run = run;
    pthread_cond_init(&pool->wake, NULL);
    pool->threads = calloc(n, sizeof(*pool->threads));
    for (size_t i = 0; pool->threads != NULL && i < n; i++) {
        struct pool_arg *pa = malloc(sizeof(*pa));
        if (pa == NULL) {
            break;
        }
        pa->d = d;
        pa->pool = pool;
        pa->kind = kind;
        if (pthread_create(&pool->threads[i], NULL, pool_main, pa) != 0) {
            free(pa);
            break;
        }
        pool->n++;
    }
}

void hxd_pools_start(struct hxd *d, size_t n_initiators, hxd_job_fn initiate, size_t n_responders,
                     hxd_job_fn respond)
{
    /* Before any link is up (hykexd.c starts the links after the pools); never destroyed, as
     * the links may still broadcast it after the pools stopped. */
    if (hx_cond_init_monotonic(&d->replied) != HX_OK) {
        pthread_cond_init(&d->replied, NULL); /* waits then count on the wall clock */
    }
    /* Key pairs made ahead: the largest batch's worth per ML-KEM parameter set, never filled into
     * the room a batch needs in the secure heap (hxd_stream_kick's test, with margin). Without it
     * every batch makes its own, as before. */
    size_t most = hxd_config_batch_top(&d->cfg);
    if (hxd_keystash_new(most, 2 * most * d->cfg.max_key_chunk + (1u << 20), &d->stash) != HX_OK) {
        d->stash = NULL;
    }
    start_pool(d, &d->initiators, n_initiators, POOL_INITIATORS, initiate);
    start_pool(d, &d->responders, n_responders, POOL_RESPONDERS, respond);
    start_pool(d, &d->writer, 1, POOL_WRITER, write_job);
}

static void stop_pool(struct hxd *d, struct hxd_pool *pool)
{
    struct hxd_job *j;

    pthread_mutex_lock(&d->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < pool->n; i++) {
        pthread_join(pool->threads[i], NULL);
    }
    pthread_mutex_lock(&d->lock);
    pool->closed = true; /* also when no thread ever started */
    while ((j = pool->head) != NULL) {
        pool->head = j->next;
        free(j->msg);
        free(j);
    }
    pool->tail = NULL;
    pthread_mutex_unlock(&d->lock);
    free(pool->threads);
    pool->threads = NULL;
    pool->n = 0;
    pthread_cond_destroy(&pool->wake);
}

void hxd_pools_stop(struct hxd *d)
{
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    pthread_cond_broadcast(&d->changed);
    hxd_streams_wake_all(d);
    pthread_cond_broadcast(&d->replied);
    pthread_mutex_unlock(&d->lock);
    stop_pool(d, &d->initiators);
    stop_pool(d, &d->responders);
    stop_pool(d, &d->writer);    /* last: the workers above may still have queued writes */
    hxd_keystash_free(d->stash); /* no worker runs any more */
    d->stash = NULL;
}

/* ---- scheduling ---- */

void hxd_stream_kick(struct hxd *d, struct hxd_stream *s)
{
    uint64_t batch = d->cfg.batch_size;

    if (s->role != HXD_INITIATOR || !s->peer_app_open || s->peer_closed || d->stopping ||
        s->retry_at > 0 || /* backing off after a failure: hxd_streams_tick resumes it */
        s->qkd_lost) {     /* until the KME has reopened the QKD stream (qkd_recover.c) */
        return;
    }
    /*
     * Up to HXD_PIPELINE batches at once, while keys are wanted or the buffer has room (a
     * refill starts as soon as a batch fits), and while the secure heap holds another batch
     * (twice, with its scratch) and 256 KiB for OpenSSL: a full heap holds production back
     * (hxd_streams_tick tries again), it never spills keys onto the normal heap.
     *
     * One job per stream waits in the queue at a time: the next is queued when a worker picks
     * it (initiator.c), behind every other stream's, so that streams take turns for the
     * workers (round robin) and none waits for another's whole pipeline.
     *
     * The responder's window (window.c) moves a key at a time as its application takes keys,
     * and a batch is cut to end at it: while a batch is in flight, a new one waits until the
     * window has room for a whole batch, since a cut one costs the four ML-DSA operations of a
     * whole one for fewer keys (with a draining application a third of the batches were cut,
     * to 1-15 keys). With nothing in flight a cut batch goes (the responder's application may
     * wait for a position in it).
     */
    uint32_t whole = hx_peer_batch_cap(&s->uri, d->cfg.kem_key_pairs == HXD_KEY_PAIRS_PER_BATCH,
                                       (uint32_t)batch);
    if (s->queued == 0 && s->inflight < HXD_PIPELINE &&
        hx_secret_heap_room() / 2 > batch * s->qos.key_chunk_size + (256u << 10) &&
        (s->n_retry > 0 || s->n_ready + (uint64_t)s->inflight * batch < d->cfg.buffer_depth ||
         s->want > s->next_first) &&
        /* the responder's window (window.c): new positions only below its limit */
        (s->n_retry > 0 || hxd_window_allows(s, s->next_first, s->inflight > 0 ? whole : 1)) &&
        hxd_pool_enqueue(&d->initiators, &s->ksid, HX_PEER_BATCH_REQ, NULL, 0)) {
        s->inflight++;
        s->queued++;
    }
}

void hxd_streams_tick(struct hxd *d)
{
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->max_streams; i++) {
        struct hxd_stream *s = &d->streams[i];
        if (s->used && s->retry_at > 0 && hx_deadline_passed(s->retry_at)) {
            s->retry_at = 0;
            hxd_stream_kick(d, s);
        } else if (s->used && s->role == HXD_INITIATOR && s->inflight == 0) {
            hxd_stream_kick(d, s); /* e.g. restored at start-up: refill without waiting */
        }
    }
    pthread_mutex_unlock(&d->lock);
}
