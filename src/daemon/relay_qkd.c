/*
 * The QKD part over relays, trusted-node style (docs/relay.md "QKD part"). For a stream A-C on
 * the path A-R1-...-Rk-C, every link of the path has a QKD stream of its own: A's to R1, each
 * relay's to the next node, C's from Rk. A BATCH_REQ passing a relay picks up the batch's keys
 * of the relay's two links: the relay XORs both into an accumulator carried in the RELAY_FWD
 * (first relay: K1 ^ K2; the next: that ^ K2 ^ K3 = K1 ^ K3; ...), with the index it used on its
 * outgoing link. C takes its own link's keys at that index and recovers K1, A's key: the batch's
 * QKD secret at both ends, under the batch protocol's transcript, combiner and confirmation as
 * for a direct stream. A wrong accumulator makes the confirmation tags differ: the batch is
 * aborted, never delivered unequal.
 *
 * Threads: the links' I/O threads only queue (relays) or record (the ends); one worker thread
 * makes the KME calls (OPEN_CONNECT of both links, GET_KEY) and passes the messages on. Its own
 * lock (q->lock) guards the queue and the tables; never taken with another lock held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "daemon/hxd.h"
#include "daemon/relay_int.h"
#include "proto/peer.h"
#include "proto/peer_topo.h"
#include "proto/uri.h"

#define RQ_STREAMS 256 /* QKD streams relayed (relays) or over relays (ends); the oldest go */
#define RQ_MATERIAL 32 /* accumulators waiting for their BATCH_REQ's responder job */
#define RQ_QUEUE 256   /* messages waiting for the worker; more are dropped */
#define RQ_QUEUE_BYTES (32u << 20) /* and at most this many bytes of them */

struct rq_stream {
    bool used, failed;
    struct hx_uuid ksid;
    /* relays: the QKD streams of the incoming and outgoing links */
    struct hx_qkd_ksid in_id, out_id; /* the two links' QKD stream ids at this node's KME */
    struct hx_uuid prev, next;
    uint64_t out_next;
    /* the ends: the node at the other end of this node's QKD link; A: the pinned path */
    bool end;
    bool follows; /* the responder: its path is the one the stream came along, taken back as is */
    struct hx_uuid link_peer, other_end; /* the stream's peer node: only its stream uses it */
    size_t n_path;
    struct hx_uuid path[HX_RELAY_MAX_PATH];
    uint64_t touched;
};

struct rq_material {
    bool used;
    struct hx_uuid ksid, origin;
    uint64_t first, index;
    uint8_t *acc;
    size_t len;
};

struct rq_job {
    struct rq_job *next;
    uint8_t *p;
    size_t len;
};

struct relay_qkd {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool started, stop;
    struct rq_job *head, *tail;
    size_t queued, queued_bytes;
    struct rq_stream streams[RQ_STREAMS];
    struct rq_material material[RQ_MATERIAL];
    uint64_t clock;
};

/* ---- tables (q->lock held) ---- */

static struct rq_stream *stream_of(struct relay_qkd *q, const struct hx_uuid *ksid, bool make)
{
    struct rq_stream *free_slot = NULL, *oldest = &q->streams[0];

    for (size_t i = 0; i < RQ_STREAMS; i++) {
        struct rq_stream *s = &q->streams[i];
        if (s->used && hx_uuid_equal(&s->ksid, ksid)) {
            s->touched = ++q->clock;
            return s;
        }
        if (!s->used && free_slot == NULL) {
            free_slot = s;
        }
        if (s->touched < oldest->touched) {
            oldest = s;
        }
    }
    if (!make) {
        return NULL;
    }
    free_slot = free_slot != NULL ? free_slot : oldest;
    memset(free_slot, 0, sizeof(*free_slot));
    free_slot->used = true;
    free_slot->ksid = *ksid;
    free_slot->touched = ++q->clock;
    return free_slot;
}

static void material_wipe(struct rq_material *m)
{
    hx_secure_free(m->acc, m->len);
    memset(m, 0, sizeof(*m));
}

/* ---- the worker ---- */

static void qkd_uri(const struct hxd *d, const struct hx_uuid *node, char *out, size_t cap)
{
    char id[HX_UUID_STR_LEN + 1];

    hx_uuid_format(node, id);
    snprintf(out, cap, "qkd://%s@%s", d->cfg.qkd_application, id);
}

/* OPEN_CONNECT of one link's QKD stream, from's node first (as hxd_qkd_open names links). */
static bool open_link(struct hxd *d, const struct hx_uuid *from, const struct hx_uuid *to,
                      struct hx_qkd_ksid *id)
{
    char src[300], dst[300], msg[200] = "";
    struct hykex_qos qos = {.key_chunk_size = d->cfg.qkd_key_bytes,
                            .timeout_ms = d->cfg.qkd_qos.timeout_ms,
                            .min_bps = d->cfg.qkd_qos.min_bps,
                            .max_bps = d->cfg.qkd_qos.max_bps,
                            .jitter = d->cfg.qkd_qos.jitter,
                            .priority = d->cfg.qkd_qos.priority,
                            .ttl_s = d->cfg.qkd_qos.ttl};
    struct hx_qkd_ksid got = *id;
    uint32_t st = 0;

    qkd_uri(d, from, src, sizeof(src));
    qkd_uri(d, to, dst, sizeof(dst));
    if (hx_qkd_open(&d->qkd, src, dst, &qos, &got, &st, msg, sizeof(msg)) != HX_OK || st > 1 ||
        !hx_qkd_ksid_equal(&got, id)) {
        hx_warn("relay: the KME did not open a relayed stream's QKD link",
                HX_F_STR("src", src) HX_F_STR("dst", dst) HX_F_U64("status", st)
                    HX_F_STR("kme_message", msg));
        return false;
    }
    return true;
}

static void forward(struct hxd *d, struct hx_peer_fwd *m)
{
    struct hx_link *l;
    struct hx_writer w;

    m->at++;
    if ((l = hx_links_get(d->links, &m->path[m->at])) == NULL) {
        hx_info("relay: next hop down, message dropped", HX_F_UUID("next", &m->path[m->at]));
        return;
    }
    hx_writer_init_dynamic(&w, HX_PEER_MAX_KEM_FRAME);
    if (hx_peer_encode_fwd(&w, m) != HX_OK ||
        hx_link_send(l, HX_PEER_RELAY_FWD, w.data, w.len) != HX_OK) {
        hx_info("relay: message not passed on", HX_F_UUID("next", &m->path[m->at]));
    }
    hx_writer_wipe(&w); /* the accumulator */
    hx_link_put(l);
}

/* The stream id and the incoming link's QKD stream id of a STREAM_OPEN or a RELAY_REPATH kind 0,
 * re-encoded into w with out_id in place of the incoming one. */
static bool rewrite_open(const struct hx_peer_fwd *m, const struct hx_qkd_ksid *out_id,
                         const struct hx_uuid *out_uuid, struct hx_uuid *ksid,
                         struct hx_qkd_ksid *in_id, struct hx_writer *w)
{
    struct hx_peer_open *o;
    struct hx_peer_repath rp;
    bool ok = false;

    if (m->type == HX_PEER_RELAY_REPATH) {
        if (hx_peer_decode_repath(m->p, m->len, &rp) != HX_OK || rp.kind != HX_REPATH_OPEN) {
            return false;
        }
        *ksid = rp.ksid;
        hx_qkd_ksid_from_uuid(in_id, &rp.qkd_link);
        rp.qkd_link = *out_uuid;
        return hx_peer_encode_repath(w, &rp) == HX_OK;
    }
    if ((o = malloc(sizeof(*o))) != NULL && hx_peer_decode_open(m->p, m->len, o) == HX_OK) {
        *ksid = o->ksid;
        *in_id = o->qkd_ksid;
        o->qkd_ksid = *out_id;
        ok = hx_peer_encode_open(w, o) == HX_OK;
    }
    free(o);
    return ok;
}

/* A relayed QKD stream's STREAM_OPEN, or its RELAY_REPATH to a path through this node: the
 * outgoing link gets a QKD stream id of its own (the next node joins it), the message goes on
 * at once, then both links are opened at the KME. A re-path replaces what this node relayed
 * for the stream before (its old links are closed at the KME). */
static void relay_open(struct hxd *d, struct relay_qkd *q, struct hx_peer_fwd *m)
{
    struct hx_qkd_ksid in_id, out_id, old_in = {{0}}, old_out = {{0}};
    struct hx_uuid ksid, out_uuid, prev = m->path[m->at - 1], next = m->path[m->at + 1];
    struct hx_writer w;
    struct rq_stream *s;
    bool ok;

    hx_writer_init_dynamic(&w, HX_PEER_MAX_FRAME);
    if (hx_uuid_generate(&out_uuid) != HX_OK) {
        goto out;
    }
    hx_qkd_ksid_from_uuid(&out_id, &out_uuid);
    if (!rewrite_open(m, &out_id, &out_uuid, &ksid, &in_id, &w)) {
        goto out;
    }
    pthread_mutex_lock(&q->lock);
    s = stream_of(q, &ksid, true);
    if (!s->end) {
        old_in = s->in_id;
        old_out = s->out_id;
    }
    s->in_id = in_id;
    s->out_id = out_id;
    s->prev = prev;
    s->next = next;
    s->out_next = 0; /* a fresh link: its indices start again */
    s->failed = false;
    pthread_mutex_unlock(&q->lock);
    m->p = w.data;
    m->len = w.len;
    forward(d, m);
    for (int i = 0; i < 2; i++) { /* a re-path: the links this node relayed the stream on */
        const struct hx_qkd_ksid *old = i == 0 ? &old_in : &old_out;
        if (!hx_qkd_ksid_is_none(old)) {
            hx_ignore(hx_qkd_close(&d->qkd, old));
        }
    }
    ok = open_link(d, &prev, &d->cfg.uuid, &in_id) && open_link(d, &d->cfg.uuid, &next, &out_id);
    pthread_mutex_lock(&q->lock);
    if ((s = stream_of(q, &ksid, false)) != NULL) {
        s->failed = !ok;
    }
    pthread_mutex_unlock(&q->lock);
    hx_info(m->type == HX_PEER_RELAY_REPATH ? "relay: QKD links of a re-pathed stream opened"
                                            : "relay: QKD links of a relayed stream opened",
            HX_F_UUID("stream", &ksid) HX_F_BOOL("ok", ok));
out:
    hx_writer_wipe(&w);
}

/* A STREAM_CLOSE passing a relay that relays the stream's QKD part: its two links are closed at
 * the KME and forgotten, then the message goes on. */
static void relay_close(struct hxd *d, struct relay_qkd *q, struct hx_peer_fwd *m)
{
    struct hx_qkd_ksid ids[2] = {{{0}}, {{0}}};
    struct hx_uuid ksid;
    struct rq_stream *s;

    memcpy(ksid.b, m->p, 16); /* the taker checked len >= 16 */
    pthread_mutex_lock(&q->lock);
    if ((s = stream_of(q, &ksid, false)) != NULL && !s->end) {
        ids[0] = s->in_id;
        ids[1] = s->out_id;
        memset(s, 0, sizeof(*s));
    }
    pthread_mutex_unlock(&q->lock);
    forward(d, m);
    for (int i = 0; i < 2; i++) {
        if (!hx_qkd_ksid_is_none(&ids[i])) {
            hx_ignore(hx_qkd_close(&d->qkd, &ids[i]));
        }
    }
}

/* A relayed QKD stream's BATCH_REQ: both links' keys into the accumulator, then on. */
static void relay_batch(struct hxd *d, struct relay_qkd *q, struct hx_peer_fwd *m)
{
    struct hx_peer_req req;
    struct rq_stream *s, st;
    size_t kb = d->cfg.qkd_key_bytes, len;
    uint8_t *k_in = NULL, *k_out = NULL, *acc = NULL;
    uint64_t in_index, out_index = 0;
    uint32_t done, status = 0;
    char msg[200] = "";

    if (hx_peer_decode_req(m->p, m->len, &req) != HX_OK || req.qkd_mode != HX_PEER_QKD_004) {
        return;
    }
    len = kb * req.count;
    memset(&st, 0, sizeof(st));
    pthread_mutex_lock(&q->lock);
    s = stream_of(q, &req.ksid, false);
    if (s != NULL) {
        st = *s;
        out_index = s->out_next;
        s->out_next += req.count;
    }
    pthread_mutex_unlock(&q->lock);
    in_index = m->has_qkd ? m->qkd_index : req.qkd_first;
    if (s == NULL || st.failed || (m->has_qkd && m->qkd_acc_len != len) ||
        in_index + req.count > UINT32_MAX || out_index + req.count > UINT32_MAX) {
        hx_info("relay: batch of a QKD stream this relay has not opened, dropped",
                HX_F_UUID("stream", &req.ksid));
        return;
    }
    if ((k_in = hx_secure_alloc(len)) == NULL || (k_out = hx_secure_alloc(len)) == NULL ||
        (acc = hx_secure_alloc(len)) == NULL) {
        goto out;
    }
    if (hx_qkd_get_many(&d->qkd, &st.in_id, (uint32_t)in_index, req.count, k_in, kb, &done, &status,
                        msg, sizeof(msg)) != HX_OK ||
        status != 0 ||
        hx_qkd_get_many(&d->qkd, &st.out_id, (uint32_t)out_index, req.count, k_out, kb, &done,
                        &status, msg, sizeof(msg)) != HX_OK ||
        status != 0) {
        hx_info(
            "relay: the KME gave no key for a relayed batch: dropped (the initiator makes it "
            "again)",
            HX_F_UUID("stream", &req.ksid) HX_F_U64("status", status) HX_F_STR("kme", msg));
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        acc[i] = (uint8_t)((m->has_qkd ? m->qkd_acc[i] : 0) ^ k_in[i] ^ k_out[i]);
    }
    m->has_qkd = true;
    m->qkd_index = out_index;
    m->qkd_acc = acc;
    m->qkd_acc_len = len;
    forward(d, m);
out:
    hx_secure_free(k_in, len);
    hx_secure_free(k_out, len);
    hx_secure_free(acc, len);
}

static void *worker(void *arg)
{
    struct hxd *d = arg;
    struct relay_qkd *q = d->relay->qkd;
    struct hx_peer_fwd *m = malloc(sizeof(*m));

    for (;;) {
        struct rq_job *j;
        pthread_mutex_lock(&q->lock);
        while (q->head == NULL && !q->stop) {
            pthread_cond_wait(&q->wake, &q->lock);
        }
        if (q->head == NULL) {
            pthread_mutex_unlock(&q->lock);
            break;
        }
        j = q->head;
        q->head = j->next;
        q->tail = q->head == NULL ? NULL : q->tail;
        q->queued--;
        q->queued_bytes -= j->len;
        pthread_mutex_unlock(&q->lock);
        if (m != NULL && hx_peer_decode_fwd(j->p, j->len, m) == HX_OK) {
            if (m->type == HX_PEER_STREAM_OPEN || m->type == HX_PEER_RELAY_REPATH) {
                relay_open(d, q, m);
            } else if (m->type == HX_PEER_STREAM_CLOSE) {
                relay_close(d, q, m);
            } else {
                relay_batch(d, q, m);
            }
        }
        OPENSSL_cleanse(j->p, j->len);
        free(j->p);
        free(j);
    }
    free(m);
    return NULL;
}

/* ---- the relay's hooks ---- */

hx_err hxd_relay_qkd_start(struct hxd *d)
{
    struct relay_qkd *q;

    if (d->cfg.qkd_protocol != HXD_QKD_004_JSON && d->cfg.qkd_protocol != HXD_QKD_004_BINARY) {
        return HX_OK; /* no ETSI 004 KME: this node carries no QKD part */
    }
    if ((q = calloc(1, sizeof(*q))) == NULL) {
        return HX_ERR_NOMEM;
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    d->relay->qkd = q;
    if (pthread_create(&q->thread, NULL, worker, d) != 0) {
        d->relay->qkd = NULL;
        free(q);
        return HX_ERR_NOMEM;
    }
    q->started = true;
    return HX_OK;
}

void hxd_relay_qkd_stop(struct hxd_relay *r)
{
    struct relay_qkd *q = r->qkd;

    if (q == NULL) {
        return;
    }
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->lock);
    if (q->started) {
        pthread_join(q->thread, NULL);
    }
    while (q->head != NULL) {
        struct rq_job *j = q->head;
        q->head = j->next;
        OPENSSL_cleanse(j->p, j->len);
        free(j->p);
        free(j);
    }
    for (size_t i = 0; i < RQ_MATERIAL; i++) {
        material_wipe(&q->material[i]);
    }
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->wake);
    free(q);
    r->qkd = NULL;
}

/* Does a STREAM_OPEN's source URI list QKD? */
bool hxd_relay_qkd_open_has_qkd(const uint8_t *p, size_t len, struct hx_uuid *ksid,
                                struct hx_qkd_ksid *qid)
{
    struct hx_peer_open *o = malloc(sizeof(*o));
    struct hx_uri u;
    char why[100];
    bool qkd = false;

    if (o != NULL && hx_peer_decode_open(p, len, o) == HX_OK &&
        hx_uri_parse(o->src, &u, why, sizeof(why)) == HX_OK) {
        for (size_t i = 0; i < u.n_sources; i++) {
            qkd |= u.sources[i] == HX_SRC_QKD;
        }
        *ksid = o->ksid;
        *qid = o->qkd_ksid;
    }
    free(o);
    return qkd;
}

bool hxd_relay_qkd_take(struct hxd *d, const struct hx_peer_fwd *m, const uint8_t *frame,
                        size_t len)
{
    struct relay_qkd *q = d->relay->qkd;
    struct hx_uuid ksid;
    struct hx_qkd_ksid qid;
    struct rq_job *j;
    bool take = false;

    if (q == NULL) {
        return false;
    }
    if (m->type == HX_PEER_STREAM_OPEN) {
        take = hxd_relay_qkd_open_has_qkd(m->p, m->len, &ksid, &qid) && !hx_qkd_ksid_is_none(&qid);
    } else if (m->type == HX_PEER_RELAY_REPATH) {
        struct hx_peer_repath rp;
        take = hx_peer_decode_repath(m->p, m->len, &rp) == HX_OK && rp.kind == HX_REPATH_OPEN;
    } else if ((m->type == HX_PEER_BATCH_REQ || m->type == HX_PEER_STREAM_CLOSE) && m->len >= 16) {
        memcpy(ksid.b, m->p, 16);
        pthread_mutex_lock(&q->lock);
        struct rq_stream *s = stream_of(q, &ksid, false);
        take = s != NULL && (m->type == HX_PEER_BATCH_REQ || !s->end);
        pthread_mutex_unlock(&q->lock);
    }
    if (!take) {
        return false;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL || (j->p = malloc(len)) == NULL) {
        free(j);
        return true; /* dropped: the initiator makes the batch again */
    }
    memcpy(j->p, frame, len);
    j->len = len;
    pthread_mutex_lock(&q->lock);
    if (q->queued >= RQ_QUEUE || q->queued_bytes + len > RQ_QUEUE_BYTES || q->stop) {
        pthread_mutex_unlock(&q->lock);
        free(j->p);
        free(j);
        return true;
    }
    if (q->tail != NULL) {
        q->tail->next = j;
    } else {
        q->head = j;
    }
    q->tail = j;
    q->queued++;
    q->queued_bytes += len;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
    return true;
}

/* The responder: a QKD stream's STREAM_OPEN, or its RELAY_REPATH, came along m's path. This
 * node's QKD link is the one from the last relay, and its own messages of the stream take the
 * same path back (pinned, reversed), so that its answers do not wait for its map to learn what
 * the initiator's already knows. */
static void end_arrived(struct relay_qkd *q, const struct hx_uuid *ksid,
                        const struct hx_peer_fwd *m)
{
    pthread_mutex_lock(&q->lock);
    struct rq_stream *s = stream_of(q, ksid, true);
    s->end = true;
    s->link_peer = m->path[m->n - 2];
    s->other_end = m->path[0];
    s->n_path = m->n;
    s->follows = true;
    for (size_t i = 0; i < m->n; i++) {
        s->path[i] = m->path[m->n - 1 - i];
    }
    pthread_mutex_unlock(&q->lock);
}

void hxd_relay_qkd_arrived(struct hxd *d, const struct hx_peer_fwd *m)
{
    struct relay_qkd *q = d->relay->qkd;
    struct hx_uuid ksid;
    struct hx_qkd_ksid qid;
    struct rq_material *slot = NULL;

    if (q == NULL) {
        return;
    }
    if (m->type == HX_PEER_STREAM_OPEN || m->type == HX_PEER_RELAY_REPATH) {
        struct hx_peer_repath rp;
        if (m->type == HX_PEER_STREAM_OPEN
                ? hxd_relay_qkd_open_has_qkd(m->p, m->len, &ksid, &qid)
                : hx_peer_decode_repath(m->p, m->len, &rp) == HX_OK && rp.kind == HX_REPATH_OPEN) {
            end_arrived(q, m->type == HX_PEER_STREAM_OPEN ? &ksid : &rp.ksid, m);
        }
        return;
    }
    if (m->type != HX_PEER_BATCH_REQ || !m->has_qkd || m->len < 16 + 8) {
        return;
    }
    struct hx_peer_head h;
    if (hx_peer_decode_head(HX_PEER_BATCH_REQ, m->p, m->len, &h) != HX_OK) {
        return;
    }
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < RQ_MATERIAL && slot == NULL; i++) {
        if (q->material[i].used && hx_uuid_equal(&q->material[i].ksid, &h.ksid) &&
            q->material[i].first == h.first) {
            slot = &q->material[i]; /* a retry replaces it */
        }
    }
    for (size_t i = 0; i < RQ_MATERIAL && slot == NULL; i++) {
        slot = !q->material[i].used ? &q->material[i] : NULL;
    }
    slot = slot != NULL ? slot : &q->material[h.first % RQ_MATERIAL];
    material_wipe(slot);
    if ((slot->acc = hx_secure_alloc(m->qkd_acc_len)) != NULL) {
        memcpy(slot->acc, m->qkd_acc, m->qkd_acc_len);
        slot->len = m->qkd_acc_len;
        slot->used = true;
        slot->ksid = h.ksid;
        slot->origin = m->path[0];
        slot->first = h.first;
        slot->index = m->qkd_index;
    }
    pthread_mutex_unlock(&q->lock);
}

void hxd_relay_qkd_pin(struct hxd *d, const uint8_t *open, size_t len,
                       const struct hx_topo_path *path)
{
    struct relay_qkd *q = d->relay != NULL ? d->relay->qkd : NULL;
    struct hx_uuid ksid;
    struct hx_qkd_ksid qid;

    if (q == NULL || !hxd_relay_qkd_open_has_qkd(open, len, &ksid, &qid)) {
        return;
    }
    pthread_mutex_lock(&q->lock);
    struct rq_stream *s = stream_of(q, &ksid, true);
    s->end = true;
    s->link_peer = path->node[1]; /* A's QKD link: to the first relay */
    s->other_end = path->node[path->hops];
    s->n_path = path->hops + 1;
    memcpy(s->path, path->node, s->n_path * sizeof(path->node[0]));
    pthread_mutex_unlock(&q->lock);
}

bool hxd_relay_qkd_repin(struct hxd *d, const struct hx_uuid *ksid, const struct hx_topo_path *path)
{
    struct relay_qkd *q = d->relay != NULL ? d->relay->qkd : NULL;
    struct rq_stream *s;
    bool done = false;

    if (q == NULL || path->hops < 2) {
        return false;
    }
    pthread_mutex_lock(&q->lock);
    if ((s = stream_of(q, ksid, false)) != NULL && s->end && s->n_path >= 2) {
        s->link_peer = path->node[1];
        s->n_path = path->hops + 1;
        memcpy(s->path, path->node, s->n_path * sizeof(path->node[0]));
        done = true;
    }
    pthread_mutex_unlock(&q->lock);
    return done;
}

bool hxd_relay_qkd_pinned(struct hxd *d, const struct hx_uuid *ksid, struct hx_topo_path *path,
                          bool *follows)
{
    struct relay_qkd *q = d->relay != NULL ? d->relay->qkd : NULL;
    struct rq_stream *s;
    bool pinned = false;

    if (q == NULL) {
        return false;
    }
    pthread_mutex_lock(&q->lock);
    if ((s = stream_of(q, ksid, false)) != NULL && s->n_path >= 2) {
        memset(path, 0, sizeof(*path));
        path->hops = s->n_path - 1;
        memcpy(path->node, s->path, s->n_path * sizeof(s->path[0]));
        pinned = true;
        if (follows != NULL) {
            *follows = s->follows;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return pinned;
}

bool hxd_relay_qkd_link_peer(const struct hxd *d, const struct hx_uuid *ksid,
                             const struct hx_uuid *peer, struct hx_uuid *out)
{
    struct relay_qkd *q = d->relay != NULL ? d->relay->qkd : NULL;
    struct rq_stream *s;
    bool found = false;

    if (q == NULL) {
        return false;
    }
    pthread_mutex_lock(&q->lock);
    if ((s = stream_of(q, ksid, false)) != NULL && s->end && hx_uuid_equal(&s->other_end, peer)) {
        *out = s->link_peer;
        found = true;
    }
    pthread_mutex_unlock(&q->lock);
    return found;
}

bool hxd_relay_qkd_material(struct hxd *d, const struct hx_uuid *ksid, const struct hx_uuid *peer,
                            uint64_t first, uint64_t *index, uint8_t *acc, size_t len)
{
    struct relay_qkd *q = d->relay != NULL ? d->relay->qkd : NULL;
    bool found = false;

    if (q == NULL) {
        return false;
    }
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < RQ_MATERIAL; i++) {
        struct rq_material *m = &q->material[i];
        if (m->used && hx_uuid_equal(&m->ksid, ksid) && m->first == first &&
            hx_uuid_equal(&m->origin, peer)) {
            found = m->len == len;
            if (found) {
                memcpy(acc, m->acc, len);
                *index = m->index;
            }
            material_wipe(m);
            break;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return found;
}
