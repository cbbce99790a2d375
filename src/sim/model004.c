/* The simulator's ETSI 004 key streams: OPEN_CONNECT, GET_KEY, CLOSE (model.h). */
#include "sim/model_priv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "crypto/kdf.h"

/* "qkd://app@<uuid>" (also hybrid://...): the node UUID after '@', up to '?' or the end. */
static bool uri_node(const char *uri, struct hx_uuid *node)
{
    const char *at = strrchr(uri, '@'), *end;

    if (strncmp(uri, "qkd://", 6) != 0 && strncmp(uri, "hybrid://", 9) != 0) {
        return false;
    }
    if (at == NULL) {
        return false;
    }
    at++;
    end = strchr(at, '?');
    return hx_uuid_parse(at, end != NULL ? (size_t)(end - at) : strlen(at), node) == HX_OK;
}

/* A URI with a scheme but no node UUID ("client://localhost", as QUBIP's client sends). */
static bool uri_plain(const char *uri)
{
    const char *sep = strstr(uri, "://");

    return sep != NULL && sep != uri && strchr(uri, '@') == NULL;
}

/* The one link of a KME that has exactly one, or SIZE_MAX. */
static size_t only_link(const struct sim_net *net, size_t kme)
{
    size_t found = SIZE_MAX;

    for (size_t i = 0; i < net->n_links; i++) {
        if (net->links[i].a == kme || net->links[i].b == kme) {
            if (found != SIZE_MAX) {
                return SIZE_MAX;
            }
            found = i;
        }
    }
    return found;
}

/*
 * The KMEs of a stream's source and destination (lock held). A URI names its node by UUID;
 * where the calling KME has exactly one link, a URI without one ("client://localhost") stands
 * for the end of that link it does not otherwise name: the caller's own end for the source,
 * the far end for the destination, unless the other URI names that end already.
 */
static bool resolve_ends(const struct sim_net *net, size_t kme, const char *src, const char *dst,
                         size_t *src_kme, size_t *dst_kme, struct sim_result *r)
{
    struct hx_uuid node;
    bool have_src = uri_node(src, &node);
    size_t link, far;

    *src_kme = have_src ? sim_kme_find_by_node(net, &node) : SIZE_MAX;
    bool have_dst = uri_node(dst, &node);
    *dst_kme = have_dst ? sim_kme_find_by_node(net, &node) : SIZE_MAX;
    if (have_src && have_dst) {
        goto check;
    }
    if ((!have_src && !uri_plain(src)) || (!have_dst && !uri_plain(dst)) ||
        (link = only_link(net, kme)) == SIZE_MAX) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION,
                       "source and destination must be qkd://<application>@<node uuid> (a URI "
                       "without a node is accepted only by a KME with exactly one link)");
        return false;
    }
    far = net->links[link].a == kme ? net->links[link].b : net->links[link].a;
    if (!have_src) {
        *src_kme = (have_dst && *dst_kme == kme) ? far : kme;
    }
    if (!have_dst) {
        *dst_kme = *src_kme == kme ? far : kme;
    }
check:
    if (*src_kme == SIZE_MAX || *dst_kme == SIZE_MAX) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "no KME serves node %s",
                       *src_kme == SIZE_MAX ? "in source" : "in destination");
        return false;
    }
    return true;
}

static struct sim_stream *find_stream(struct sim_net *net, const struct hx_uuid *id)
{
    for (size_t i = 0; i < SIM_MAX_STREAMS; i++) {
        if (net->streams[i].used && hx_uuid_equal(&net->streams[i].id, id)) {
            return &net->streams[i];
        }
    }
    return NULL;
}

static struct sim_stream *new_stream(struct sim_net *net)
{
    for (size_t i = 0; i < SIM_MAX_STREAMS; i++) {
        if (!net->streams[i].used) {
            memset(&net->streams[i], 0, sizeof(net->streams[i]));
            net->streams[i].used = true;
            return &net->streams[i];
        }
    }
    return NULL;
}

static void drop_stream(struct sim_stream *s)
{
    free(s->pos);
    memset(s, 0, sizeof(*s));
}

/* The end (0 or 1) of a stream that KME `kme` serves, or -1. */
static int end_of(const struct sim_stream *s, size_t kme)
{
    if (s->end_kme[0] == kme) {
        return 0;
    }
    return s->end_kme[1] == kme ? 1 : -1;
}

/* A stream id both ends can compute from the URIs (reference_compat). */
static void compat_id(const char *src, const char *dst, struct hx_uuid *id)
{
    const struct hx_iov parts[3] = {{src, strlen(src)}, {"\n", 1}, {dst, strlen(dst)}};
    uint8_t h[32];

    if (hx_hash(HX_MD_SHA256, parts, 3, h) != HX_OK) {
        memset(h, 0, sizeof(h));
    }
    memcpy(id->b, h, 16);
    id->b[6] = (uint8_t)((id->b[6] & 0x0f) | 0x80); /* version 8: custom (RFC 9562) */
    id->b[8] = (uint8_t)((id->b[8] & 0x3f) | 0x80);
}

/* Checks the QoS against the link; on failure writes a counter-proposal into *qos. */
static bool qos_ok(const struct sim_link *l, struct hykex_qos *qos, struct sim_result *r)
{
    bool ok = true;

    if (qos->key_chunk_size == 0 || qos->key_chunk_size > SIM_MAX_CHUNK) {
        sim_set_result(r, HYKEX_STATUS_QOS_NOT_MET,
                       "key_chunk_size %" PRIu32 " is outside 1..%d bytes; counter-proposal in qos",
                       qos->key_chunk_size, SIM_MAX_CHUNK);
        qos->key_chunk_size = qos->key_chunk_size == 0 ? 32 : SIM_MAX_CHUNK;
        ok = false;
    }
    if (l->rate_bps > 0 && (double)qos->min_bps > l->rate_bps) {
        sim_set_result(r, HYKEX_STATUS_QOS_NOT_MET,
                       "min_bps %" PRIu32
                       " is above the link's key rate of %.0f bits/s; "
                       "counter-proposal in qos",
                       qos->min_bps, l->rate_bps);
        qos->min_bps = (uint32_t)l->rate_bps;
        if (qos->max_bps > qos->min_bps) {
            qos->max_bps = qos->min_bps;
        }
        ok = false;
    }
    if (qos->max_bps != 0 && qos->min_bps > qos->max_bps) {
        sim_set_result(r, HYKEX_STATUS_QOS_NOT_MET, "min_bps %" PRIu32 " is above max_bps %" PRIu32,
                       qos->min_bps, qos->max_bps);
        qos->max_bps = qos->min_bps;
        ok = false;
    }
    return ok;
}

/* The id KME `kme` knows a stream by: its own (SIM_QUIRK_OWN_IDS) or the stream's. */
static const struct hx_uuid *id_at(const struct sim_stream *s, int end)
{
    return end == 1 && !hx_uuid_is_nil(&s->alias) ? &s->alias : &s->id;
}

/* The stream that KME `kme` knows by this id (GET_KEY, CLOSE). */
static struct sim_stream *find_stream_at(struct sim_net *net, size_t kme, const struct hx_uuid *id,
                                         int *end)
{
    for (size_t i = 0; i < SIM_MAX_STREAMS; i++) {
        struct sim_stream *s = &net->streams[i];
        if (s->used && (*end = end_of(s, kme)) >= 0 && hx_uuid_equal(id_at(s, *end), id)) {
            return s;
        }
    }
    return NULL;
}

/* SIM_QUIRK_OWN_IDS: the half-open stream of this link that the far end opened with these
 * URIs (in either order), for the second end to join under an id of its own. */
static struct sim_stream *find_by_uris(struct sim_net *net, size_t link, size_t kme,
                                       const char *src, const char *dst)
{
    for (size_t i = 0; i < SIM_MAX_STREAMS; i++) {
        struct sim_stream *s = &net->streams[i];
        if (!s->used || s->link != link || s->end_kme[1] != kme || s->opened[1] || s->compat) {
            continue;
        }
        if ((strcmp(s->uri[0], src) == 0 && strcmp(s->uri[1], dst) == 0) ||
            (strcmp(s->uri[0], dst) == 0 && strcmp(s->uri[1], src) == 0)) {
            return s;
        }
    }
    return NULL;
}

/*
 * SIM_QUIRK_STRICT_QOS, as QUBIP's KME: timeout 0 is not a wait (status 6), and min_bps,
 * max_bps and jitter must be set (status 7 with a counter-proposal the client may accept).
 */
static bool strict_qos_ok(const struct sim_link *l, struct hykex_qos *qos, struct sim_result *r)
{
    uint32_t rate = l->rate_bps > 0 && l->rate_bps < 4e9 ? (uint32_t)l->rate_bps : 1000000;

    if (qos->timeout_ms == 0) {
        sim_set_result(r, HYKEX_STATUS_TIMEOUT, "timeout 0 is not a wait: give a timeout in ms");
        return false;
    }
    if (qos->min_bps == 0 || qos->max_bps == 0 || qos->jitter == 0) {
        sim_set_result(r, HYKEX_STATUS_QOS_NOT_MET,
                       "min_bps, max_bps and jitter must be given; counter-proposal in qos");
        qos->min_bps = qos->min_bps != 0 ? qos->min_bps : 1;
        qos->max_bps = qos->max_bps != 0 ? qos->max_bps : rate;
        qos->jitter = qos->jitter != 0 ? qos->jitter : 10;
        return false;
    }
    return true;
}

/* Checks the ends, the link and the QoS of an OPEN_CONNECT; the link, or SIZE_MAX. */
static size_t open_link(struct sim_net *net, size_t kme, const char *src, const char *dst,
                        struct hykex_qos *qos, size_t *peer_kme, struct sim_result *r)
{
    size_t src_kme, dst_kme, link;

    if (!resolve_ends(net, kme, src, dst, &src_kme, &dst_kme, r)) {
        return SIZE_MAX;
    }
    if (kme != src_kme && kme != dst_kme) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION,
                       "KME %s serves neither the source nor the destination node",
                       net->kmes[kme].id);
        return SIZE_MAX;
    }
    *peer_kme = kme == src_kme ? dst_kme : src_kme;
    if ((link = sim_link_between(net, src_kme, dst_kme)) == SIZE_MAX) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "no QKD link between %s and %s",
                       net->kmes[src_kme].id, net->kmes[dst_kme].id);
        return SIZE_MAX;
    }
    if (net->links[link].paused) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "QKD link %s is down (paused)",
                       net->links[link].id);
        return SIZE_MAX;
    }
    if (!qos_ok(&net->links[link], qos, r) || ((net->kmes[kme].quirks & SIM_QUIRK_STRICT_QOS) &&
                                               !strict_qos_ok(&net->links[link], qos, r))) {
        return SIZE_MAX;
    }
    return link;
}

/* Joins the stream with this id or makes it (lock held); NULL with r set when refused. */
static struct sim_stream *join_or_create(struct sim_net *net, size_t kme, size_t peer_kme,
                                         size_t link, const char *src, const char *dst,
                                         const struct hykex_qos *qos, struct hx_uuid *id,
                                         bool compat, int *end, struct sim_result *r)
{
    struct sim_stream *s = NULL;

    if (hx_uuid_is_nil(id) && (net->kmes[kme].quirks & SIM_QUIRK_OWN_IDS)) {
        if ((s = find_by_uris(net, link, kme, src, dst)) != NULL) {
            if (hx_uuid_generate(&s->alias) != HX_OK) {
                sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "random number generator failed");
                return NULL;
            }
            *id = s->id;
            *end = 1;
            s->opened[1] = true;
            pthread_cond_broadcast(&net->changed);
            return s;
        }
    }
    s = hx_uuid_is_nil(id) ? NULL : find_stream(net, id);
    if (s != NULL) {
        *end = end_of(s, kme);
        if (s->link != link || *end < 0) {
            sim_set_result(r, HYKEX_STATUS_KSID_IN_USE,
                           "key stream id is in use by another pair of nodes");
            return NULL;
        }
        if (s->opened[*end] && !compat) {
            sim_set_result(r, HYKEX_STATUS_KSID_IN_USE,
                           "key stream id is already open by an application at this KME");
            return NULL;
        }
        s->opened[*end] = true;
        pthread_cond_broadcast(&net->changed);
        return s;
    }
    if (hx_uuid_is_nil(id) && hx_uuid_generate(id) != HX_OK) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "random number generator failed");
        return NULL;
    }
    if ((s = new_stream(net)) == NULL) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "too many open key streams (%d)",
                       SIM_MAX_STREAMS);
        return NULL;
    }
    s->id = *id;
    s->link = link;
    s->end_kme[0] = kme;
    s->end_kme[1] = peer_kme;
    s->opened[0] = true;
    s->qos = *qos;
    s->compat = compat;
    snprintf(s->uri[0], sizeof(s->uri[0]), "%s", src);
    snprintf(s->uri[1], sizeof(s->uri[1]), "%s", dst);
    *end = 0;
    return s;
}

void sim_open(struct sim_net *net, size_t kme, const char *src, const char *dst,
              struct hykex_qos *qos, struct hx_uuid *ksid, bool compat, struct sim_result *r)
{
    struct hx_uuid id = *ksid;
    size_t peer_kme = SIZE_MAX, link;
    struct sim_stream *s;
    int end;
    int64_t deadline;

    sim_set_result(r, 0, NULL);
    if (strlen(src) >= SIM_MAX_URI || strlen(dst) >= SIM_MAX_URI) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION,
                       "source or destination longer than %d bytes", SIM_MAX_URI - 1);
        return;
    }
    pthread_mutex_lock(&net->lock);
    if ((link = open_link(net, kme, src, dst, qos, &peer_kme, r)) == SIZE_MAX) {
        goto out;
    }
    if (compat) {
        compat_id(src, dst, &id);
    }
    if ((s = join_or_create(net, kme, peer_kme, link, src, dst, qos, &id, compat, &end, r)) ==
        NULL) {
        goto out;
    }
    *ksid = *id_at(s, end);
    *qos = s->qos;
    if (compat || s->opened[1 - end]) {
        sim_set_result(r, 0, NULL);
        goto out;
    }
    /* ETSI 004: OPEN_CONNECT blocks until the peer application connects or the timeout. */
    if (qos->timeout_ms == 0) {
        sim_set_result(r, HYKEX_STATUS_PEER_NOT_CONNECTED,
                       "peer application has not opened the key stream yet");
        goto out;
    }
    deadline = hx_deadline_in_ms(qos->timeout_ms);
    while (!s->opened[1 - end] && !net->stopping && s->used && hx_uuid_equal(&s->id, &id)) {
        if (hx_cond_wait_until(&net->changed, &net->lock, deadline)) {
            break;
        }
    }
    if (s->used && hx_uuid_equal(&s->id, &id) && s->opened[1 - end]) {
        sim_set_result(r, 0, NULL);
    } else {
        sim_set_result(r, HYKEX_STATUS_TIMEOUT,
                       "peer application did not open the key stream within %" PRIu32 " ms",
                       qos->timeout_ms);
        if (s->used && hx_uuid_equal(&s->id, &id)) {
            drop_stream(s);
        }
    }
out:
    pthread_mutex_unlock(&net->lock);
}

/* Binary search: the slot of index in s->pos, or where it would go. */
static size_t pos_slot(const struct sim_stream *s, uint32_t index, bool *found)
{
    size_t lo = 0, hi = s->n_pos;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->pos[mid].index < index) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < s->n_pos && s->pos[lo].index == index;
    return lo;
}

static struct sim_position *pos_insert(struct sim_stream *s, size_t slot, uint32_t index)
{
    if (s->n_pos == s->cap_pos) {
        size_t cap = s->cap_pos ? s->cap_pos * 2 : 16;
        struct sim_position *p;
        if (cap > (1u << 20) || (p = realloc(s->pos, cap * sizeof(*p))) == NULL) {
            return NULL;
        }
        s->pos = p;
        s->cap_pos = cap;
    }
    memmove(&s->pos[slot + 1], &s->pos[slot], (s->n_pos - slot) * sizeof(*s->pos));
    s->n_pos++;
    memset(&s->pos[slot], 0, sizeof(s->pos[slot]));
    s->pos[slot].index = index;
    return &s->pos[slot];
}

/* Forgets the run of positions at the floor that both ends have taken. */
static void pos_compact(struct sim_stream *s)
{
    size_t k = 0;

    while (k < s->n_pos && s->pos[k].index == s->floor + k && s->pos[k].taken == 3) {
        k++;
    }
    if (k > 0) {
        memmove(s->pos, s->pos + k, (s->n_pos - k) * sizeof(*s->pos));
        s->n_pos -= k;
        s->floor += k;
    }
}

void sim_get_key(struct sim_net *net, size_t kme, const struct hx_uuid *ksid, bool has_index,
                 uint32_t *index, uint8_t *key, size_t *key_len, char *meta, size_t meta_cap,
                 size_t *meta_needed, struct sim_result *r)
{
    struct sim_stream *s;
    struct sim_link *l;
    struct sim_position *p = NULL;
    char mbuf[96];
    size_t slot, chunk, mlen;
    uint32_t idx;
    uint64_t age_ms = 0;
    bool found;
    double now = hx_monotime();
    int end;

    *key_len = 0;
    *meta_needed = 0;
    pthread_mutex_lock(&net->lock);
    if ((s = find_stream_at(net, kme, ksid, &end)) == NULL || !s->opened[end]) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION,
                       "key stream id is not open at this KME (OPEN_CONNECT first)");
        goto out;
    }
    l = &net->links[s->link];
    if (!s->opened[1 - end] && !s->compat) {
        sim_set_result(r, HYKEX_STATUS_PEER_NOT_CONNECTED_GET,
                       "peer application has not opened the key stream");
        goto out;
    }
    if (l->paused) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "QKD link %s is down (paused)", l->id);
        goto out;
    }
    if (s->compat || !has_index) {
        /* The next position this end has not taken yet. */
        uint64_t next = s->next_index[end] > s->floor ? s->next_index[end] : s->floor;
        slot = pos_slot(s, (uint32_t)next, &found);
        while (found && (s->pos[slot].taken & (1u << end))) {
            next++;
            slot++;
            found = slot < s->n_pos && s->pos[slot].index == next;
        }
        if (next > UINT32_MAX) {
            sim_set_result(r, HYKEX_STATUS_INSUFFICIENT_KEY,
                           "key stream exhausted (2^32 positions)");
            goto out;
        }
        idx = (uint32_t)next;
    } else {
        idx = *index;
    }
    if (idx < s->floor) {
        sim_set_result(r, HYKEX_STATUS_INSUFFICIENT_KEY,
                       "position %" PRIu32 " was already delivered at this KME", idx);
        goto out;
    }
    slot = pos_slot(s, idx, &found);
    if (found) {
        p = &s->pos[slot];
        if (p->taken & (1u << end)) {
            sim_set_result(r, HYKEX_STATUS_INSUFFICIENT_KEY,
                           "position %" PRIu32 " was already delivered at this KME", idx);
            goto out;
        }
        age_ms = (uint64_t)((now - p->first_at) * 1000.0);
    }
    /* Metadata first: status 8 must consume nothing. */
    mlen = (size_t)snprintf(mbuf, sizeof(mbuf), "{\"age\": %" PRIu64 ", \"hops\": 0}", age_ms);
    if (meta_cap < mlen + 1) {
        *meta_needed = mlen + 1;
        sim_set_result(r, HYKEX_STATUS_METADATA_TOO_SMALL,
                       "metadata needs %zu bytes, the buffer has %zu", mlen + 1, meta_cap);
        goto out;
    }
    chunk = s->qos.key_chunk_size;
    if (p == NULL) {
        if (!sim_take_bits(l, (double)chunk * 8)) {
            if (net->kmes[kme].quirks & SIM_QUIRK_ZERO_KEYS) {
                /* QUBIP's KME: a key not made yet comes as zeros with status 0, unconsumed. */
                memset(key, 0, chunk);
                *key_len = chunk;
                *index = idx;
                memcpy(meta, mbuf, mlen + 1);
                sim_set_result(r, 0, NULL);
                goto out;
            }
            sim_set_result(r, HYKEX_STATUS_INSUFFICIENT_KEY,
                           "key pool of link %s is empty (%.0f of %.0f bits)", l->id, l->level_bits,
                           l->capacity_bits);
            goto out;
        }
        if ((p = pos_insert(s, slot, idx)) == NULL) {
            sim_set_result(r, HYKEX_STATUS_INSUFFICIENT_KEY, "too many outstanding positions");
            goto out;
        }
        p->first_at = now;
        l->keys_delivered++;
    }
    if (sim_link_key(l, s->id.b, idx, "004", key, chunk) != HX_OK) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "key derivation failed");
        goto out;
    }
    p->taken |= (uint8_t)(1u << end);
    if (net->kmes[kme].corrupt_next) {
        key[0] ^= 0x01; /* fault injection: this end gets a different key */
        net->kmes[kme].corrupt_next = false;
    }
    *key_len = chunk;
    *index = idx;
    memcpy(meta, mbuf, mlen + 1);
    if (idx >= s->next_index[end]) {
        s->next_index[end] = idx + 1;
    }
    pos_compact(s);
    sim_set_result(r, 0, NULL);
out:
    pthread_mutex_unlock(&net->lock);
}

void sim_close(struct sim_net *net, size_t kme, const struct hx_uuid *ksid, struct sim_result *r)
{
    struct sim_stream *s;
    int end;

    pthread_mutex_lock(&net->lock);
    if ((s = find_stream_at(net, kme, ksid, &end)) == NULL || !s->opened[end]) {
        sim_set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "key stream id is not open at this KME");
    } else {
        s->opened[end] = false;
        /* A reference_compat stream stays: reopening the same URIs continues its positions
         * instead of handing out position 0 again. */
        if (!s->opened[1 - end] && !s->compat) {
            drop_stream(s);
        }
        pthread_cond_broadcast(&net->changed);
        sim_set_result(r, 0, NULL);
    }
    pthread_mutex_unlock(&net->lock);
}
