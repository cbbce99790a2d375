/*
 * What both ends of a batch share (docs/peer-protocol.md 3-6): the batch's state, the
 * transcript hash T, combining every position's secrets, key confirmation, the peer's
 * signature, and the bookkeeping of committed positions. The phases that use them live in
 * initiator.c and responder.c (daemon/batch.h has the map).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/buf.h"
#include "common/log.h"
#include "crypto/combine.h"
#include "crypto/kdf.h"
#include "daemon/batch.h"
#include "daemon/relay.h"

hx_err hxd_send_serial(struct hxd *d, const struct hx_uuid *peer, uint8_t type, const uint8_t *p,
                       size_t len, uint64_t *serial)
{
    struct hx_link *l = hx_links_get(d->links, peer);
    hx_err e;

    if (l == NULL) { /* no direct link: over relays when relay.enabled (docs/relay.md) */
        return hxd_relay_send(d, peer, type, p, len, serial, NULL);
    }
    if (serial != NULL) {
        *serial = hx_link_serial(l);
    }
    e = hx_link_send(l, type, p, len);
    hx_link_put(l);
    return e;
}

hx_err hxd_send_req(struct hxd *d, struct hxd_batch *b, const uint8_t *p, size_t len,
                    uint64_t *serial)
{
    struct hx_link *l = hx_links_get(d->links, &b->s.peer);
    hx_err e;

    memset(&b->path, 0, sizeof(b->path));
    if (l == NULL) {
        e = hxd_relay_send(d, &b->s.peer, HX_PEER_BATCH_REQ, p, len, serial, &b->path);
        if (e == HX_OK) {
            hxd_relay_note_path(d, &b->s.ksid, &b->path);
        }
        return e;
    }
    *serial = hx_link_serial(l);
    e = hx_link_send(l, HX_PEER_BATCH_REQ, p, len);
    hx_link_put(l);
    return e;
}

void hxd_batch_path_arrived(struct hxd *d, struct hxd_batch *b, const struct hx_uuid *peer)
{
    memset(&b->path, 0, sizeof(b->path));
    if (hxd_relay_batch_path(d, &b->s.ksid, peer, b->first, &b->path)) {
        hxd_relay_note_path(d, &b->s.ksid, &b->path);
    }
}

size_t hxd_batch_path_bytes(const struct hx_topo_path *p, uint8_t *out, size_t cap)
{
    struct hx_writer w;

    if (p->hops < 2 || p->hops > HX_TOPO_MAX_HOPS) {
        return 0; /* direct: the transcript stays as it was */
    }
    hx_writer_init_fixed(&w, out, cap);
    if (hx_write_bytes(&w, "hykex/1 path", 12) != HX_OK ||
        hx_write_u8(&w, (uint8_t)(p->hops + 1)) != HX_OK) {
        return 0;
    }
    for (size_t i = 0; i <= p->hops; i++) {
        if (hx_write_bytes(&w, p->node[i].b, 16) != HX_OK) {
            return 0;
        }
    }
    return hx_write_u8(&w, (uint8_t)(p->hops - 1)) == HX_OK ? w.len : 0;
}

uint64_t hxd_direct_serial(struct hxd *d, const struct hx_uuid *peer)
{
    struct hx_link *l = hx_links_get(d->links, peer);
    uint64_t serial;

    if (l == NULL) {
        return 0; /* link serials start at 1 */
    }
    serial = hx_link_serial(l);
    hx_link_put(l);
    return serial;
}

uint64_t hxd_peer_serial(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid)
{
    uint64_t serial = hxd_direct_serial(d, peer);

    /* no direct link: the relay's serial of the current path (0 while the relay is off) */
    return serial != 0 ? serial : hxd_relay_serial(d, peer, ksid);
}

hx_err hxd_send(struct hxd *d, const struct hx_uuid *peer, uint8_t type, const uint8_t *p,
                size_t len)
{
    return hxd_send_serial(d, peer, type, p, len, NULL);
}

hx_err hxd_sign(struct hxd *d, const struct hx_uuid *peer, const char *ctx, const uint8_t *msg,
                size_t len, uint8_t *sig, size_t cap, size_t *sig_len)
{
    /* After a certificate rotation the link may still be one made with the old certificate:
     * the peer checks with the key it saw there. (A link replaced between this and the send
     * fails one batch's check, which is retried.) */
    struct hx_link *l = hx_links_get(d->links, peer);
    hx_err e = hx_sig_sign(l != NULL ? hx_link_own_key(l) : d->sig_key, (const uint8_t *)ctx,
                           strlen(ctx), msg, len, sig, cap, sig_len);

    hx_link_put(l);
    return e;
}

void hxd_batch_free(struct hxd_batch *b)
{
    size_t n = b->s.uri.n_sources;

    free(b->qkd_ids);
    hx_secure_free(b->qkd, b->qkd_len);
    if (b->kem_msg != NULL) {
        for (size_t j = 0; j < n; j++) {
            free(b->kem_msg[j]);
        }
        free(b->kem_msg);
    }
    if (b->kkeys != NULL) {
        for (size_t i = 0; i < (size_t)b->npub * n; i++) {
            hx_kem_key_free(b->kkeys[i]);
        }
        free(b->kkeys);
    }
    if (b->secrets != NULL) {
        for (size_t i = 0; i < (size_t)b->count * n; i++) {
            hx_secret_free(b->secrets[i]);
        }
        free(b->secrets);
    }
    if (b->keys != NULL) {
        for (uint32_t i = 0; i < b->count; i++) {
            hx_secret_free(b->keys[i]);
        }
        free(b->keys);
    }
    memset(b, 0, sizeof(*b));
}

/*
 * The 16 bytes a transcript binds for the shared QKD stream id: the UUID itself (as always),
 * or for an opaque id (common/qkdid.h) the first 16 bytes of SHA-256("hykex/1 qkd ksid" ||
 * id): both ends hold the same text, so both bind the same bytes. None: zeros.
 */
static void shared_id(const struct hx_qkd_ksid *id, struct hx_uuid *out)
{
    uint8_t h[32];
    struct hx_iov parts[2] = {{"hykex/1 qkd ksid", 16}, {id->s, strlen(id->s)}};

    memset(out, 0, sizeof(*out));
    if (hx_qkd_ksid_is_none(id) || hx_qkd_ksid_to_uuid(id, out)) {
        return;
    }
    if (hx_hash(HX_MD_SHA256, parts, 2, h) == HX_OK) {
        memcpy(out->b, h, sizeof(out->b));
    }
}

hx_err hxd_batch_init(struct hxd_batch *b, const struct hxd *d, const struct hxd_stream *s,
                      uint64_t first, uint32_t count)
{
    size_t n = s->uri.n_sources;

    memset(b, 0, sizeof(*b));
    hxd_stream_copy_fixed(&b->s, s); /* it owns none of the stream's buffers */
    b->first = first;
    b->count = count;
    b->npub = count;
    b->stash = d->stash;
    /* The transcript binds the QKD stream id both ends share: with qkd.join same-uris each KME
     * may have given its end an id of its own, so none is bound (the URIs are); nor over relays,
     * where each link has its own QKD stream (docs/relay.md). */
    struct hx_uuid relay_link;
    if (d->cfg.qkd_join != HXD_JOIN_SAME_URIS &&
        !hxd_relay_qkd_link_peer(d, &s->ksid, &s->peer, &relay_link)) {
        shared_id(&s->qkd_ksid, &b->qkd_shared);
    }
    b->kem_msg = calloc(n, sizeof(*b->kem_msg));
    b->secrets = calloc((size_t)count * n, sizeof(*b->secrets));
    b->keys = calloc(count, sizeof(*b->keys));
    return b->kem_msg && b->secrets && b->keys ? HX_OK : HX_ERR_NOMEM;
}

uint8_t hxd_batch_qkd_mode(const struct hxd *d, const struct hxd_stream *s)
{
    for (size_t j = 0; j < s->uri.n_sources; j++) {
        if (s->uri.sources[j] == HX_SRC_QKD) {
            return hxd_qkd_is_014(d) ? HX_PEER_QKD_014 : HX_PEER_QKD_004;
        }
    }
    return HX_PEER_QKD_NONE;
}

bool hxd_batch_may_grow(const struct hxd *d, const struct hxd_stream *s)
{
    return hxd_batch_qkd_mode(d, s) != HX_PEER_QKD_014;
}

void hxd_batch_transcript(struct hxd_batch *b)
{
    uint8_t head[80];
    struct hx_writer w;
    uint8_t path[12 + 1 + 16 * (HX_TOPO_MAX_HOPS + 1) + 1];
    struct hx_iov parts[2 + 2 * HX_URI_MAX_SOURCES + 4];
    size_t np = 0, path_len = hxd_batch_path_bytes(&b->path, path, sizeof(path));

    hx_writer_init_fixed(&w, head, sizeof(head));
    if (hx_write_bytes(&w, b->s.ksid.b, 16) != HX_OK || hx_write_u64(&w, b->first) != HX_OK ||
        hx_write_u32(&w, b->count) != HX_OK || hx_write_u64(&w, b->qkd_first) != HX_OK ||
        hx_write_u8(&w, b->qkd_mode) != HX_OK || hx_write_u8(&w, b->key_pairs) != HX_OK ||
        hx_write_u8(&w, (uint8_t)b->s.uri.method) != HX_OK ||
        hx_write_u8(&w, (uint8_t)b->s.uri.n_sources) != HX_OK ||
        hx_write_bytes(&w, b->qkd_shared.b, 16) != HX_OK) {
        memset(b->T, 0, sizeof(b->T));
        return;
    }
    parts[np++] = (struct hx_iov){"hykex/1 batch", 13};
    parts[np++] = (struct hx_iov){head, w.len};
    parts[np++] = (struct hx_iov){b->s.src, strlen(b->s.src)};
    parts[np++] = (struct hx_iov){b->s.dst, strlen(b->s.dst)};
    if (b->qkd_ids != NULL) {
        parts[np++] = (struct hx_iov){b->qkd_ids, (size_t)b->count * sizeof(*b->qkd_ids)};
    }
    for (size_t j = 0; j < b->s.uri.n_sources; j++) {
        if (b->kem_msg[j] != NULL) {
            parts[np++] = (struct hx_iov){b->kem_msg[j], b->kem_len[j]};
        }
    }
    if (path_len > 0) { /* relayed: the path, so that a relay that rewrites it is caught */
        parts[np++] = (struct hx_iov){path, path_len};
    }
    if (hx_hash(HX_MD_SHA256, parts, np, b->T) != HX_OK) {
        memset(b->T, 0, sizeof(b->T));
    }
}

hx_err hxd_batch_combine(struct hxd *d, struct hxd_batch *b)
{
    size_t n = b->s.uri.n_sources, kb = d->cfg.qkd_key_bytes;
    const char *names[HX_URI_MAX_SOURCES];
    struct hx_iov secrets[HX_URI_MAX_SOURCES];
    struct hx_combine_input in;
    hx_err e;

    for (size_t j = 0; j < n; j++) {
        names[j] = hx_source_name(b->s.uri.sources[j]);
    }
    for (uint32_t i = 0; i < b->count; i++) {
        for (size_t j = 0; j < n; j++) {
            if (b->s.uri.sources[j] == HX_SRC_QKD) {
                secrets[j] = (struct hx_iov){b->qkd + i * kb, kb};
            } else {
                struct hx_secret *s = b->secrets[i * n + j];
                secrets[j] = (struct hx_iov){hx_secret_data(s), hx_secret_len(s)};
            }
        }
        memset(&in, 0, sizeof(in));
        in.secrets = secrets;
        in.n = n;
        in.names = names;
        in.stream_id = b->s.ksid;
        in.position = b->first + i;
        in.transcript = b->T;
        in.transcript_len = sizeof(b->T);
        if ((e = hx_combine(b->s.uri.method, &in, b->s.qos.key_chunk_size, &b->keys[i])) != HX_OK) {
            return e;
        }
    }
    return HX_OK;
}

hx_err hxd_batch_tag(const struct hxd_batch *b, const char *label, uint8_t tag[32])
{
    size_t total = 0, off = 0;
    struct hx_secret *all = NULL;
    uint8_t ck[32];
    struct hx_iov part = {label, strlen(label)};
    hx_err e;

    for (uint32_t i = 0; i < b->count; i++) {
        total += hx_secret_len(b->keys[i]);
    }
    if ((e = hx_secret_new(total, &all)) != HX_OK) {
        return e;
    }
    for (uint32_t i = 0; i < b->count; i++) {
        memcpy(hx_secret_data_mut(all) + off, hx_secret_data(b->keys[i]),
               hx_secret_len(b->keys[i]));
        off += hx_secret_len(b->keys[i]);
    }
    e = hx_kdf_derive(HX_KDF_HKDF_SHA256, hx_secret_data(all), total, b->T, sizeof(b->T),
                      (const uint8_t *)"hykex/1 confirm", 15, ck, sizeof(ck));
    hx_secret_free(all);
    if (e == HX_OK) {
        e = hx_hmac(HX_MD_SHA256, ck, sizeof(ck), &part, 1, tag);
    }
    OPENSSL_cleanse(ck, sizeof(ck));
    return e;
}

hx_err hxd_batch_verify_peer(struct hxd *d, const struct hx_uuid *peer, const char *ctx,
                             const uint8_t T[32], const struct hx_peer_signed *sig)
{
    struct hx_link *l = hx_links_get(d->links, peer);
    struct hx_sig_key *key = NULL;
    hx_err e;

    if (l == NULL) { /* a node reached over relays: its key from its verified certificate */
        if ((e = hxd_relay_peer_key(d, peer, &key)) != HX_OK) {
            return HX_ERR_IO_CLOSED;
        }
        e = hx_sig_verify(key, (const uint8_t *)ctx, strlen(ctx), T, 32, sig->sig, sig->sig_len);
        hx_sig_key_free(key);
        return e;
    }
    e = hx_sig_verify(hx_link_peer_key(l), (const uint8_t *)ctx, strlen(ctx), T, 32, sig->sig,
                      sig->sig_len);
    hx_link_put(l);
    return e;
}

void hxd_batch_store_failed(struct hxd *d, const char *what, const struct hx_uuid *ksid,
                            uint64_t first, hx_err e)
{
    char id[HX_UUID_STR_LEN + 1];

    __atomic_fetch_add(&d->store_errors, 1, __ATOMIC_RELAXED); /* with or without d->lock */
    hx_uuid_format(ksid, id);
    hx_error(what,
             HX_F_STR("stream", id) HX_F_U64("first", first) HX_F_STR("error", hx_strerror(e)));
}

/*
 * Adds [first, first+count) to the committed runs above the watermark, joined with the runs it
 * touches, so that the table holds one run per gap below it rather than one per batch (short
 * batches cut at the responder's window would fill it, and a run left out holds the watermark
 * back: tests/unit/test_batch_settle.c many_short_runs_join).
 */
static void add_done_run(struct hxd_stream *s, uint64_t first, uint64_t count)
{
    const size_t cap = sizeof(s->done_above) / sizeof(s->done_above[0]);

    for (size_t i = 0; i < s->n_done_above;) {
        uint64_t f = s->done_above[i].first, end = f + s->done_above[i].count;
        if (end == first || first + count == f) { /* touches: take it in and look again */
            count += s->done_above[i].count;
            first = f < first ? f : first;
            s->done_above[i] = s->done_above[--s->n_done_above];
            i = 0;
        } else {
            i++;
        }
    }
    if (s->n_done_above < cap) {
        s->done_above[s->n_done_above].first = first;
        s->done_above[s->n_done_above++].count = count;
    }
}

void hxd_batch_mark_done(struct hxd_stream *s, uint64_t first, uint32_t count)
{
    bool moved = true;

    if (first == s->produced) {
        s->produced += count;
    } else if (first > s->produced) {
        add_done_run(s, first, count);
    }
    while (moved) {
        moved = false;
        for (size_t i = 0; i < s->n_done_above; i++) {
            if (s->done_above[i].first == s->produced) {
                s->produced += s->done_above[i].count;
                s->done_above[i] = s->done_above[--s->n_done_above];
                moved = true;
                break;
            }
        }
    }
    s->failing = false;
}

void hxd_batch_commit(struct hxd_stream *s, uint64_t first, uint32_t count, struct hx_secret **keys)
{
    for (uint32_t i = 0; i < count; i++) {
        if (hxd_stream_add_key(s, first + i, keys[i], false) == HX_OK) {
            keys[i] = NULL;
        }
    }
    hxd_batch_mark_done(s, first, count);
    s->confirmed_batches++;
}

void hxd_batch_note_hops(struct hxd_stream *s, const struct hxd_batch *b)
{
    const size_t cap = sizeof(s->hops_run) / sizeof(s->hops_run[0]);
    unsigned relays = b->path.hops >= 2 ? (unsigned)(b->path.hops - 1) : 0;

    if (s->n_hops_run > 0) {
        struct hxd_hops_run *last = &s->hops_run[s->n_hops_run - 1];
        if (last->relays == relays && last->first + last->count == b->first) {
            last->count += b->count; /* the common case: the next batch on the same path */
            return;
        }
    }
    if (s->n_hops_run == cap) {
        memmove(&s->hops_run[0], &s->hops_run[1], (cap - 1) * sizeof(s->hops_run[0]));
        s->n_hops_run--;
    }
    s->hops_run[s->n_hops_run].first = b->first;
    s->hops_run[s->n_hops_run].count = b->count;
    s->hops_run[s->n_hops_run++].relays = relays;
}

void hxd_batch_prepare(struct hxd_stream *s, struct hxd_batch *b)
{
    hxd_batch_note_hops(s, b);
    for (uint32_t i = 0; i < b->count; i++) {
        if (hxd_stream_add_key(s, b->first + i, b->keys[i], true) == HX_OK) {
            b->keys[i] = NULL;
        }
    }
}

void hxd_batch_make_ready(struct hxd_stream *s, uint64_t first, uint32_t count)
{
    hxd_stream_ready_range(s, first, count);
    hxd_batch_mark_done(s, first, count);
    s->confirmed_batches++;
}

bool hxd_batch_any_committed(const struct hxd_stream *s, uint64_t first, uint32_t count)
{
    if (first < s->produced) {
        return true;
    }
    for (size_t i = 0; i < s->n_done_above; i++) {
        if (first < s->done_above[i].first + s->done_above[i].count &&
            s->done_above[i].first < first + count) {
            return true;
        }
    }
    return false;
}

enum hxd_committed hxd_batch_committed_of(const struct hxd_stream *s, uint64_t first,
                                          uint32_t count)
{
    uint64_t end = first + count, held; /* held: positions of the range committed here */

    if (count == 0) {
        return HXD_COMMITTED_NONE;
    }
    held = s->produced > first ? (s->produced < end ? s->produced : end) - first : 0;
    for (size_t i = 0; i < s->n_done_above; i++) { /* disjoint runs, all above the watermark */
        uint64_t lo = s->done_above[i].first, hi = lo + s->done_above[i].count;
        lo = lo > first ? lo : first;
        lo = lo > s->produced ? lo : s->produced; /* not counted twice */
        hi = hi < end ? hi : end;
        held += hi > lo ? hi - lo : 0;
    }
    return held == 0 ? HXD_COMMITTED_NONE : held >= count ? HXD_COMMITTED_ALL : HXD_COMMITTED_PART;
}

void hxd_batch_give_up(struct hxd_stream *s, uint64_t first, uint32_t count)
{
    hxd_stream_discard_range(s, first, count);
    if (!hxd_batch_any_committed(s, first, count)) {
        hxd_batch_mark_done(s, first, count);
    }
}

void hxd_batch_store_give_up(struct hxd *d, const struct hx_uuid *ksid, uint64_t first,
                             uint32_t count)
{
    hx_err e;

    if (d->store != NULL && (e = hx_store_give_up(d->store, ksid, first, count)) != HX_OK) {
        hxd_batch_store_failed(d, "store: giving positions up failed", ksid, first, e);
    }
}

bool hxd_qkd_is_014(const struct hxd *d)
{
    return d->cfg.qkd_protocol == HXD_QKD_014;
}
