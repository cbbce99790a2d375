/*
 * The northbound ETSI 004 API: the reference's JSON wire format over TCP (and optionally a
 * Unix socket with a uid/gid allow-list), parsed as a stream. One thread per application
 * connection; OPEN_CONNECT and GET_KEY wait on the daemon's condition variable.
 * Every malformed or impossible request gets an integer status and a message; the connection
 * stays usable. Replies use the reference's separators (", " and ": ").
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/hxd.h"
#include "net/conn.h"
#include "net/sock.h"
#include "proto/etsi004.h"

#define MAX_AHEAD 65536u

struct hxd_api {
    struct hxd *d;
    int tcp_fd, unix_fd, tls_fd;
    pthread_t tcp_thread, unix_thread, tls_thread;
    bool tcp_started, unix_started, tls_started;
    SSL_CTX *tls; /* the mutual-TLS API (api.tls.*), or NULL */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int *conn_fds;
    pthread_t *threads; /* per slot: the connection's thread, joined before the slot's reuse */
    bool *has_thread;
    size_t n_conns;
    bool stopping;
};

struct client {
    struct hxd_api *a;
    int fd; /* conn.fd: for polls that ask whether the application hung up */
    size_t slot;
    char identity[HXD_MAX_OWNER]; /* "uid:N" (Unix socket), "cert:CN" (mTLS), "" (plain TCP) */
    struct hx_conn conn;          /* plain, or TLS on the mutual-TLS API (net/conn.h) */
    bool tls_conn;                /* accepted on the mutual-TLS listener */
};

/* ---- replies ---- */

/* JSON with the reference's separators, as Python's json.dumps prints it. */
static void dump(struct json_object *o, struct hx_writer *w)
{
    switch (json_object_get_type(o)) {
    case json_type_object: {
        bool first = true;
        hx_ignore(hx_write_u8(w, '{'));
        json_object_object_foreach (o, k, v) {
            struct json_object *ks = json_object_new_string(k);
            const char *kt = json_object_to_json_string_ext(ks, JSON_C_TO_STRING_PLAIN);
            if (!first) {
                hx_ignore(hx_write_bytes(w, ", ", 2));
            }
            first = false;
            hx_ignore(hx_write_bytes(w, kt, strlen(kt)));
            hx_ignore(hx_write_bytes(w, ": ", 2));
            json_object_put(ks);
            dump(v, w);
        }
        hx_ignore(hx_write_u8(w, '}'));
        break;
    }
    case json_type_array:
        hx_ignore(hx_write_u8(w, '['));
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            if (i > 0) {
                hx_ignore(hx_write_bytes(w, ", ", 2));
            }
            dump(json_object_array_get_idx(o, i), w);
        }
        hx_ignore(hx_write_u8(w, ']'));
        break;
    default: {
        const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        hx_ignore(hx_write_bytes(w, t, strlen(t)));
    }
    }
}

/* An application that stops reading holds only its own thread: no deadline on writes. */
static bool send_all(struct client *c, const void *p, size_t n)
{
    return hx_conn_write_all(&c->conn, p, n, HX_DEADLINE_NEVER) == HX_OK;
}

static bool reply(struct client *c, struct json_object *o)
{
    struct hx_writer w;
    bool ok;

    hx_writer_init_dynamic(&w, 1u << 20);
    dump(o, &w);
    ok = send_all(c, w.data, w.len);
    hx_writer_wipe(&w); /* it may hold a key */
    json_object_put(o);
    return ok;
}

/* Waits on d->changed until deadline (lock held); false when the deadline passed. */
static bool wait_change(struct hxd *d, double deadline)
{
    struct timespec ts;
    double left = deadline - hx_monotime();

    if (left <= 0 || d->stopping) {
        return false;
    }
    if (left > 0.25) {
        left = 0.25; /* re-check regularly: link state changes without a broadcast too */
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)left;
    ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&d->changed, &d->lock, &ts);
    return true;
}

/* ---- OPEN_CONNECT ---- */

/* Has the application closed its end (hung up) while its request waited? */
static bool client_gone(const struct client *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};

    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/*
 * A stream opened by an identified application (the Unix socket's peer uid) serves only that
 * identity; one opened anonymously (plain TCP, as the reference clients do) serves any client
 * allowed to reach the API. Lock held.
 */
static bool owned_by_another(const struct client *c, const struct hxd_stream *s)
{
    return s->owner[0] != '\0' && strcmp(s->owner, c->identity) != 0;
}

/*
 * The stream a GET_KEY or CLOSE names, if it is open here and this client may use it: returns
 * it with d->lock held; else NULL (lock released) and *err the reply saying why.
 */
static struct hxd_stream *client_stream(struct client *c, const struct hx_uuid *ksid,
                                        const char *not_open, struct json_object **err)
{
    struct hxd *d = c->a->d;
    struct hxd_stream *s;

    pthread_mutex_lock(&d->lock);
    s = hxd_stream_find(d, ksid);
    if (s == NULL || !s->app_open) {
        pthread_mutex_unlock(&d->lock);
        *err = hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, not_open);
        return NULL;
    }
    if (owned_by_another(c, s)) {
        pthread_mutex_unlock(&d->lock);
        *err = hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION,
                                  "key stream belongs to another application");
        return NULL;
    }
    return s;
}

static struct json_object *open_connect(struct client *c, const struct hx_004_request *req)
{
    struct hxd *d = c->a->d;
    struct hx_uri src, dst;
    struct hxd_stream *s, copy;
    struct hykex_qos qos = req->qos;
    struct hx_uuid ksid = req->ksid, peer;
    enum hxd_role role;
    char why[256], msg[300], id[HX_UUID_STR_LEN + 1];
    double deadline;
    int status = 0;
    struct json_object *o;

    if (hx_uri_parse(req->source, &src, why, sizeof(why)) != HX_OK) {
        snprintf(msg, sizeof(msg), "source: %s", why);
        return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, msg);
    }
    if (hx_uri_parse(req->destination, &dst, why, sizeof(why)) != HX_OK) {
        snprintf(msg, sizeof(msg), "destination: %s", why);
        return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, msg);
    }
    if (!src.has_query) {
        return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION,
                                  "source: missing ?hybridization=...&key_sources=...");
    }
    if (dst.has_query &&
        (dst.method != src.method || dst.n_sources != src.n_sources ||
         memcmp(dst.sources, src.sources, src.n_sources * sizeof(src.sources[0])) != 0)) {
        return hx_004_json_status(
            HYKEX_STATUS_NO_QKD_CONNECTION,
            "destination names another method or other key_sources than source");
    }
    if (hx_uuid_equal(&src.node, &d->cfg.uuid) && !hx_uuid_equal(&dst.node, &d->cfg.uuid)) {
        role = HXD_INITIATOR;
        peer = dst.node;
    } else if (hx_uuid_equal(&dst.node, &d->cfg.uuid) && !hx_uuid_equal(&src.node, &d->cfg.uuid)) {
        role = HXD_RESPONDER;
        peer = src.node;
    } else {
        hx_uuid_format(&d->cfg.uuid, id);
        snprintf(msg, sizeof(msg), "this node (%s) must be exactly one of source and destination",
                 id);
        return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, msg);
    }
    if (hxd_config_peer(&d->cfg, &peer) == NULL) {
        hx_uuid_format(&peer, id);
        snprintf(msg, sizeof(msg), "node %s is not a trusted peer of this node", id);
        return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, msg);
    }
    for (size_t i = 0, q = 0; i < src.n_sources; i++) {
        if (src.sources[i] == HX_SRC_QKD && (++q > 1 || d->cfg.qkd_protocol == HXD_QKD_NONE)) {
            return hx_004_json_status(
                HYKEX_STATUS_NO_QKD_CONNECTION,
                q > 1 ? "key_sources: QKD may appear once"
                      : "key_sources: QKD requested but this node has no QKD source "
                        "configured (qkd_address)");
        }
    }
    /* QoS: what cannot be met gets 7 and a counter-proposal. */
    if (qos.key_chunk_size == 0 || qos.key_chunk_size > d->cfg.max_key_chunk ||
        qos.key_chunk_size > hx_combine_max_output(src.method) ||
        (qos.max_bps != 0 && qos.min_bps > qos.max_bps)) {
        struct json_object *r;
        uint32_t max = d->cfg.max_key_chunk;
        if (hx_combine_max_output(src.method) < max) {
            max = (uint32_t)hx_combine_max_output(src.method);
        }
        snprintf(msg, sizeof(msg),
                 qos.key_chunk_size == 0 || qos.key_chunk_size > max
                     ? "qos.key_chunk_size must be 1..%u bytes; counter-proposal in qos"
                     : "qos.min_bps is above qos.max_bps; counter-proposal in qos",
                 max);
        qos.key_chunk_size = qos.key_chunk_size == 0    ? 32
                             : qos.key_chunk_size > max ? max
                                                        : qos.key_chunk_size;
        if (qos.max_bps != 0 && qos.min_bps > qos.max_bps) {
            qos.max_bps = qos.min_bps;
        }
        r = hx_004_json_status(HYKEX_STATUS_QOS_NOT_MET, msg);
        json_object_object_add(r, "qos", hx_004_json_qos(&qos));
        return r;
    }
    deadline =
        hx_monotime() + (qos.timeout_ms != 0 ? qos.timeout_ms : d->cfg.default_timeout_ms) / 1000.0;

    pthread_mutex_lock(&d->lock);
    /* A stream restored from the store after a restart: its application opens it again. */
    if (!hx_uuid_is_nil(&ksid) && (s = hxd_stream_find(d, &ksid)) != NULL && s->restored &&
        s->role == role && strcmp(s->src, req->source) == 0 &&
        strcmp(s->dst, req->destination) == 0 && !owned_by_another(c, s)) {
        s->restored = false;
        pthread_mutex_unlock(&d->lock);
        hx_uuid_format(&ksid, id);
        hx_info("key stream reopened after a restart", HX_F_STR("stream", id));
        o = hx_004_json_status(0, NULL);
        json_object_object_add(o, "key_stream_id", json_object_new_string(id));
        return o;
    }
    if (role == HXD_INITIATOR) {
        if (hx_uuid_is_nil(&ksid) && hx_uuid_generate(&ksid) != HX_OK) {
            pthread_mutex_unlock(&d->lock);
            return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION,
                                      "random number generator failed");
        }
        if (hxd_stream_find(d, &ksid) != NULL) {
            pthread_mutex_unlock(&d->lock);
            return hx_004_json_status(HYKEX_STATUS_KSID_IN_USE, "key stream id already in use");
        }
        if ((s = hxd_stream_new(d, &ksid)) == NULL) {
            pthread_mutex_unlock(&d->lock);
            return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, "too many open key streams");
        }
        s->role = role;
        s->peer = peer;
        memcpy(s->src, req->source, sizeof(s->src));
        memcpy(s->dst, req->destination, sizeof(s->dst));
        s->uri = src;
        s->qos = qos;
        s->app_open = true;
        s->opened_at = (int64_t)time(NULL);
        memcpy(s->owner, c->identity, sizeof(s->owner));
        copy = *s;
        pthread_mutex_unlock(&d->lock);
        /* The QKD stream at our KME first: its id travels in STREAM_OPEN. */
        for (size_t i = 0; i < src.n_sources; i++) {
            if (src.sources[i] == HX_SRC_QKD && !hxd_qkd_is_014(d) &&
                hxd_qkd_open(d, &copy, &status, msg, sizeof(msg)) != HX_OK) {
                pthread_mutex_lock(&d->lock);
                if ((s = hxd_stream_find(d, &ksid)) != NULL) {
                    hxd_stream_drop(d, s);
                }
                pthread_mutex_unlock(&d->lock);
                return hx_004_json_status(status, msg);
            }
        }
        pthread_mutex_lock(&d->lock);
        if ((s = hxd_stream_find(d, &ksid)) == NULL) {
            pthread_mutex_unlock(&d->lock);
            return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION,
                                      "stream closed while opening");
        }
        s->qkd_ksid = copy.qkd_ksid;
        copy = *s;
        /* Announce it; wait for the peer node's link if it is not up yet. */
        while (hxd_send_open(d, &copy) != HX_OK && wait_change(d, deadline)) {
        }
        while ((s = hxd_stream_find(d, &ksid)) != NULL && !s->peer_app_open && !s->failing &&
               wait_change(d, deadline)) {
        }
        if (s != NULL && s->peer_app_open) {
            status = 0;
        } else {
            status = s != NULL && s->failing ? s->fail_status : HYKEX_STATUS_TIMEOUT;
            snprintf(msg, sizeof(msg), "%s",
                     s != NULL && s->failing
                         ? s->fail_msg
                         : "peer application did not open the key stream in time");
            if (s != NULL) {
                hxd_stream_drop(d, s);
            }
            pthread_mutex_unlock(&d->lock);
            hx_ignore(hxd_send_close(d, &peer, &ksid));
            return hx_004_json_status(status, msg);
        }
        pthread_mutex_unlock(&d->lock);
    } else {
        /* Responder: the initiator's announcement, by id or by identical URIs. */
        for (;;) {
            s = NULL;
            for (size_t i = 0; i < d->max_streams; i++) {
                struct hxd_stream *t = &d->streams[i];
                if (!t->used || t->role != HXD_RESPONDER || !t->announced ||
                    !hx_uuid_equal(&t->peer, &peer)) {
                    continue;
                }
                if (!hx_uuid_is_nil(&ksid) ? hx_uuid_equal(&t->ksid, &ksid)
                                           : (!t->app_open && strcmp(t->src, req->source) == 0 &&
                                              strcmp(t->dst, req->destination) == 0)) {
                    s = t;
                    break;
                }
            }
            if (s != NULL || !wait_change(d, deadline)) {
                break;
            }
        }
        if (s == NULL) {
            pthread_mutex_unlock(&d->lock);
            return hx_004_json_status(HYKEX_STATUS_TIMEOUT,
                                      "the peer application did not open the key stream in time");
        }
        if (s->app_open) {
            pthread_mutex_unlock(&d->lock);
            return hx_004_json_status(HYKEX_STATUS_KSID_IN_USE,
                                      "key stream id already open at this node");
        }
        if (strcmp(s->src, req->source) != 0 || strcmp(s->dst, req->destination) != 0) {
            pthread_mutex_unlock(&d->lock);
            return hx_004_json_status(HYKEX_STATUS_KSID_IN_USE,
                                      "key stream id belongs to other source and destination URIs");
        }
        s->app_open = true;
        memcpy(s->owner, c->identity, sizeof(s->owner));
        s->qos.max_bps = qos.max_bps;
        s->qos.min_bps = qos.min_bps;
        ksid = s->ksid;
        copy = *s;
        pthread_mutex_unlock(&d->lock);
        for (size_t i = 0; i < src.n_sources; i++) {
            if (src.sources[i] == HX_SRC_QKD && !hxd_qkd_is_014(d) &&
                hxd_qkd_open(d, &copy, &status, msg, sizeof(msg)) != HX_OK) {
                hx_ignore(hxd_send_join(d, &peer, &ksid, (uint32_t)status, msg));
                pthread_mutex_lock(&d->lock);
                if ((s = hxd_stream_find(d, &ksid)) != NULL) {
                    hxd_stream_drop(d, s);
                }
                pthread_mutex_unlock(&d->lock);
                return hx_004_json_status(status, msg);
            }
        }
        pthread_mutex_lock(&d->lock);
        if ((s = hxd_stream_find(d, &ksid)) != NULL) {
            s->peer_app_open = true;
            s->qkd_open = true;
            /* Durable before the initiator hears of it: its batches find the row. */
            hx_ignore(hxd_persist_stream(d, s));
        }
        pthread_mutex_unlock(&d->lock);
        hx_ignore(hxd_send_join(d, &peer, &ksid, 0, NULL));
    }
    hx_uuid_format(&ksid, id);
    hx_info("key stream open", HX_F_STR("stream", id) HX_F_STR(
                                   "role", role == HXD_INITIATOR ? "initiator" : "responder")
                                   HX_F_STR("method", hx_combine_name(src.method)));
    o = hx_004_json_status(0, NULL);
    json_object_object_add(o, "key_stream_id", json_object_new_string(id));
    return o;
}

/* ---- GET_KEY ---- */

/* GET_KEY for a position below the watermark that is no longer here. */
static struct json_object *position_gone(uint64_t pos)
{
    char msg[160];

    snprintf(msg, sizeof(msg),
             "position %" PRIu64
             " was already delivered at this node (or given up after a link failure)",
             pos);
    return hx_004_json_status(HYKEX_STATUS_INSUFFICIENT_KEY, msg);
}

/* GET_KEY: an error reply, or NULL with the key's reply written into out. */
static struct json_object *get_key(struct client *c, const struct hx_004_request *req,
                                   struct hx_writer *out)
{
    struct hxd *d = c->a->d;
    struct hxd_stream *s;
    struct hx_secret *key = NULL;
    uint64_t pos;
    double deadline, ready_at = 0;
    char msg[300], meta_full[512], meta_min[96];
    int status = 0;
    struct json_object *o;

    if ((s = client_stream(c, &req->ksid,
                           "key stream id is not open at this node (OPEN_CONNECT first)", &o)) ==
        NULL) {
        return o;
    }
    pos = req->has_index ? req->index : s->next_get;
    deadline = hx_monotime() +
               (s->qos.timeout_ms ? s->qos.timeout_ms : d->cfg.default_timeout_ms) / 1000.0;
    /* Metadata sizes first: status 8 must consume nothing. A reference client's "size": 46
     * fits the minimal form; sources and method are added when the buffer allows. */
    snprintf(meta_min, sizeof(meta_min), "{\"age\": %" PRIu64 ", \"hops\": 0}",
             (uint64_t)999999999);
    if (req->metadata_size != 0 && req->metadata_size < strlen(meta_min)) {
        o = hx_004_json_status(HYKEX_STATUS_METADATA_TOO_SMALL, "metadata buffer too small");
        json_object_object_add(o, "metadata_size",
                               json_object_new_int64((int64_t)strlen(meta_min)));
        pthread_mutex_unlock(&d->lock);
        return o;
    }
    if (pos < s->produced && !hxd_stream_has(s, pos)) {
        pthread_mutex_unlock(&d->lock);
        return position_gone(pos);
    }
    if (pos >= s->produced + MAX_AHEAD) {
        pthread_mutex_unlock(&d->lock);
        snprintf(msg, sizeof(msg),
                 "position %" PRIu64 " is too far ahead of production (%" PRIu64 ")", pos,
                 s->produced);
        return hx_004_json_status(HYKEX_STATUS_INSUFFICIENT_KEY, msg);
    }
    if (pos + 1 > s->want) {
        s->want = pos + 1;
    }
    hxd_stream_kick(d, s);
    /* A failed batch is retried (after a second): wait out the timeout before giving up,
     * then say why the last batch failed. */
    bool waited = false;
    while ((s = hxd_stream_find(d, &req->ksid)) != NULL && s->app_open && !hxd_stream_has(s, pos) &&
           pos >= s->produced && /* below the watermark and not here: taken or given up */
           !(s->peer_closed && s->inflight == 0) && wait_change(d, deadline)) {
        waited = true;
        if (s->role == HXD_INITIATOR) {
            hxd_stream_kick(d, s);
        }
    }
    if (s == NULL || !s->app_open) {
        pthread_mutex_unlock(&d->lock);
        return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, "key stream closed");
    }
    /* A client that hung up while we waited (its own timeout shorter than the QoS one) would
     * never see this key: leave it for a request that can receive it. (Only after a wait: a
     * key ready at once costs no poll.) */
    if (waited && hxd_stream_has(s, pos) && client_gone(c)) {
        pthread_mutex_unlock(&d->lock);
        return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, "the client went away");
    }
    if ((key = hxd_stream_take(s, pos, &ready_at)) == NULL) {
        if (pos < s->produced) {
            pthread_mutex_unlock(&d->lock);
            return position_gone(pos);
        }
        if (s->peer_closed) {
            status = HYKEX_STATUS_PEER_NOT_CONNECTED_GET;
            snprintf(msg, sizeof(msg), "peer application closed the key stream");
        } else if (s->failing) {
            status = s->fail_status ? s->fail_status : HYKEX_STATUS_INSUFFICIENT_KEY;
            snprintf(msg, sizeof(msg), "%s", s->fail_msg);
        } else {
            status = HYKEX_STATUS_INSUFFICIENT_KEY;
            snprintf(msg, sizeof(msg), "no key ready for position %" PRIu64 " within the timeout",
                     pos);
        }
        pthread_mutex_unlock(&d->lock);
        return hx_004_json_status(status, msg);
    }
    uint64_t next_get_before = s->next_get;
    if (!req->has_index || pos >= s->next_get) {
        s->next_get = pos + 1;
    }
    if (d->store != NULL) {
        /* Delivered durably before the key leaves: never twice, also across a crash. */
        uint64_t next_get = s->next_get;
        pthread_mutex_unlock(&d->lock);
        hx_err e = hx_store_deliver(d->store, &req->ksid, pos, next_get);
        pthread_mutex_lock(&d->lock);
        s = hxd_stream_find(d, &req->ksid);
        if (e != HX_OK || s == NULL) {
            if (s != NULL) {
                hxd_stream_untake(s, pos, ready_at, key);
                if (s->next_get == next_get) {
                    s->next_get = next_get_before;
                }
            } else {
                hx_secret_free(key);
            }
            pthread_mutex_unlock(&d->lock);
            snprintf(msg, sizeof(msg), "%s",
                     s == NULL ? "key stream closed"
                               : "the node's key store failed to record the delivery");
            return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, msg);
        }
    }
    s->delivered++;
    hxd_stream_kick(d, s);
    uint64_t age = (uint64_t)((hx_monotime() - ready_at) * 1000.0);
    size_t off =
        (size_t)snprintf(meta_full, sizeof(meta_full),
                         "{\"age\": %" PRIu64 ", \"hops\": 0, \"method\": \"%s\", \"sources\": [",
                         age, hx_combine_name(s->uri.method));
    for (size_t i = 0; i < s->uri.n_sources && off < sizeof(meta_full); i++) {
        off += (size_t)snprintf(meta_full + off, sizeof(meta_full) - off, "%s\"%s\"", i ? ", " : "",
                                hx_source_name(s->uri.sources[i]));
    }
    if (off < sizeof(meta_full)) {
        snprintf(meta_full + off, sizeof(meta_full) - off, "]}");
    }
    snprintf(meta_min, sizeof(meta_min), "{\"age\": %" PRIu64 ", \"hops\": 0}", age);
    pthread_mutex_unlock(&d->lock);

    /* written straight into out, wiped after sending; the reference's separators */
    const char *meta =
        req->metadata_size == 0 || req->metadata_size >= strlen(meta_full) ? meta_full : meta_min;
    bool ok = hx_004_json_write_key_reply(out, hx_secret_data(key), hx_secret_len(key), pos, meta,
                                          true) == HX_OK;
    hx_secret_free(key);
    if (!ok) { /* out of memory: the key is delivered (recorded) but cannot be sent */
        hx_writer_reset(out);
        return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, "out of memory");
    }
    return NULL;
}

static struct json_object *close_stream(struct client *c, const struct hx_004_request *req)
{
    struct hxd *d = c->a->d;
    struct hxd_stream *s;
    struct hx_uuid peer, qkd;
    bool had_qkd;
    char id[HX_UUID_STR_LEN + 1];
    struct json_object *err;

    if ((s = client_stream(c, &req->ksid, "key stream id is not open at this node", &err)) ==
        NULL) {
        return err;
    }
    peer = s->peer;
    qkd = s->qkd_ksid;
    had_qkd = !hx_uuid_is_nil(&qkd);
    hxd_stream_drop(d, s); /* wipes the keys not handed out */
    pthread_cond_broadcast(&d->changed);
    pthread_mutex_unlock(&d->lock);
    hxd_persist_drop(d, &req->ksid);
    hx_ignore(hxd_send_close(d, &peer, &req->ksid));
    if (had_qkd) {
        hx_ignore(hx_qkd_close(&d->qkd, &qkd));
    }
    hx_uuid_format(&req->ksid, id);
    hx_info("key stream closed", HX_F_STR("stream", id));
    return hx_004_json_status(0, NULL);
}

/* ---- STATUS (hykex's own command, for operators: `hykex status`) ---- */

static struct json_object *json_time(int64_t t)
{
    char buf[32];
    struct tm tm;
    time_t tt = (time_t)t;

    if (t == 0 || gmtime_r(&tt, &tm) == NULL) {
        return NULL; /* JSON null: never */
    }
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_object_new_string(buf);
}

static void add_int(struct json_object *o, const char *k, uint64_t v)
{
    json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static struct json_object *peer_status(struct hxd *d, const struct hx_uuid *peer)
{
    struct json_object *p = json_object_new_object();
    struct hx_link_info li;
    char id[HX_UUID_STR_LEN + 1];

    hx_uuid_format(peer, id);
    json_object_object_add(p, "uuid", json_object_new_string(id));
    if (hx_links_info(d->links, peer, &li) != HX_OK) {
        memset(&li, 0, sizeof(li));
    }
    json_object_object_add(p, "up", json_object_new_boolean(li.up));
    json_object_object_add(p, "last_up", json_time(li.last_up));
    json_object_object_add(p, "last_down", json_time(li.last_down));
    add_int(p, "links_made", li.links_made);
    json_object_object_add(p, "group", li.group[0] ? json_object_new_string(li.group) : NULL);
    json_object_object_add(p, "cipher", li.cipher[0] ? json_object_new_string(li.cipher) : NULL);
    json_object_object_add(p, "certificate_expires", json_time(li.cert_not_after));
    return p;
}

/* One stream (lock held). */
static struct json_object *stream_status(struct hxd *d, const struct hxd_stream *s)
{
    struct json_object *e = json_object_new_object(), *src = json_object_new_array();
    char id[HX_UUID_STR_LEN + 1];
    size_t prepared = 0;

    hx_uuid_format(&s->ksid, id);
    json_object_object_add(e, "key_stream_id", json_object_new_string(id));
    hx_uuid_format(&s->peer, id);
    json_object_object_add(e, "peer", json_object_new_string(id));
    json_object_object_add(
        e, "role", json_object_new_string(s->role == HXD_INITIATOR ? "initiator" : "responder"));
    json_object_object_add(e, "method", json_object_new_string(hx_combine_name(s->uri.method)));
    for (size_t i = 0; i < s->uri.n_sources; i++) {
        json_object_array_add(src, json_object_new_string(hx_source_name(s->uri.sources[i])));
    }
    json_object_object_add(e, "sources", src);
    for (size_t i = 0; i < s->n_ready; i++) {
        prepared += s->ready[i].prepared;
    }
    add_int(e, "ready", s->n_ready - prepared);
    add_int(e, "prepared", prepared);
    add_int(e, "buffer_depth", d->cfg.buffer_depth);
    add_int(e, "produced", s->produced);
    add_int(e, "delivered", s->delivered);
    add_int(e, "next_index", s->next_get);
    add_int(e, "failed_batches", s->failed_batches);
    json_object_object_add(e, "state",
                           json_object_new_string(s->peer_closed      ? "closed by the peer"
                                                  : !s->peer_app_open ? "waiting for the peer"
                                                  : s->failing        ? "failing"
                                                                      : "producing"));
    if (s->failing) {
        json_object_object_add(e, "last_error", json_object_new_string(s->fail_msg));
    }
    json_object_object_add(e, "restored", json_object_new_boolean(s->restored));
    json_object_object_add(e, "opened", json_time(s->opened_at));
    return e;
}

static struct json_object *node_status(struct client *c)
{
    struct hxd *d = c->a->d;
    struct json_object *o = hx_004_json_status(0, NULL), *peers = json_object_new_array(),
                       *streams = json_object_new_array(), *err = json_object_new_object();
    char id[HX_UUID_STR_LEN + 1];

    hx_uuid_format(&d->cfg.uuid, id);
    json_object_object_add(o, "node", json_object_new_string(id));
    json_object_object_add(o, "certificate_expires", json_time(d->cert_not_after));
    json_object_object_add(o, "store",
                           json_object_new_string(d->store == NULL    ? "memory only"
                                                  : d->cfg.store_sync ? "durable (fsync)"
                                                                      : "durable"));
    for (size_t i = 0; i < d->cfg.trusted.n; i++) {
        json_object_array_add(peers, peer_status(d, &d->cfg.trusted.peers[i].uuid));
    }
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->max_streams; i++) {
        if (d->streams[i].used) {
            json_object_array_add(streams, stream_status(d, &d->streams[i]));
        }
    }
    add_int(o, "batches_ok", d->batches_ok);
    add_int(err, "batches_failed", d->batches_failed);
    add_int(err, "confirmation_mismatches", d->confirm_mismatch);
    add_int(err, "store_errors", d->store_errors);
    pthread_mutex_unlock(&d->lock);
    json_object_object_add(o, "errors", err);
    json_object_object_add(o, "peers", peers);
    json_object_object_add(o, "streams", streams);
    return o;
}

/* ---- connections ---- */

/*
 * What has arrived (plain or TLS), up to n bytes; 0 when the connection ended. No deadline: an
 * idle application may keep its connection; hxd_api_stop ends the wait with shutdown().
 */
static ssize_t client_recv(struct client *c, void *buf, size_t n)
{
    size_t got;

    return hx_conn_read_some(&c->conn, buf, n, &got, HX_DEADLINE_NEVER) == HX_OK ? (ssize_t)got : 0;
}

/*
 * The mutual-TLS API's handshake (10 s at most): TLS 1.3, a client certificate from api.tls.ca
 * required. The application's identity is its certificate's common name.
 */
static bool tls_accept(struct client *c)
{
    char cn[64] = "";
    X509 *cert;

    if (hx_conn_tls_accept(&c->conn, c->a->tls, hx_deadline_in_ms(10000)) != HX_OK ||
        (cert = SSL_get0_peer_certificate(c->conn.ssl)) == NULL ||
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) <=
            0) {
        long v = c->conn.ssl != NULL ? SSL_get_verify_result(c->conn.ssl) : X509_V_OK;
        char err[160];
        ERR_error_string_n(ERR_peek_last_error(), err, sizeof(err));
        ERR_clear_error();
        hx_warn("API TLS handshake failed",
                HX_F_STR("reason", v != X509_V_OK ? X509_verify_cert_error_string(v) : err));
        return false;
    }
    snprintf(c->identity, sizeof(c->identity), "cert:%s", cn);
    return true;
}

static void *client_main(void *arg)
{
    static const struct hx_json_limits lim = {
        .max_message = 64 * 1024, .max_depth = 8, .max_string = 4096, .max_members = 64};
    struct client *c = arg;
    struct hxd_api *a = c->a;
    struct hx_json_stream *s = NULL;
    struct hx_writer keyw; /* a GET_KEY reply: up to ~4 bytes of text per key byte */
    uint8_t buf[16384];
    ssize_t n;

    hx_writer_init_dynamic(&keyw, 1u << 20);
    if (hx_json_stream_new(&lim, &s) != HX_OK) {
        goto out;
    }
    if (c->tls_conn && !tls_accept(c)) {
        goto out;
    }
    while ((n = client_recv(c, buf, sizeof(buf))) > 0) {
        struct json_object *o;
        enum hx_json_event ev;
        const char *why;
        hx_err e;
        if (hx_json_stream_feed(s, buf, (size_t)n) != HX_OK) {
            break;
        }
        while ((ev = hx_json_stream_next(s, &o, &e, &why)) != HX_JSON_NEED_MORE) {
            struct hx_004_request req;
            struct json_object *r;
            char msg[340];
            if (ev == HX_JSON_ERROR) {
                snprintf(msg, sizeof(msg), "malformed request: %s", why);
                r = hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, msg);
            } else if (hx_004_json_decode_request(o, &req, msg, sizeof(msg)) != HX_OK) {
                char full[380];
                snprintf(full, sizeof(full), "invalid request: %s", msg);
                r = hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, full);
            } else if (req.cmd == HX_004_OPEN_CONNECT) {
                r = open_connect(c, &req);
            } else if (req.cmd == HX_004_GET_KEY) {
                r = get_key(c, &req, &keyw);
            } else if (req.cmd == HX_004_STATUS) {
                r = node_status(c);
            } else {
                r = close_stream(c, &req);
            }
            json_object_put(o);
            bool sent = r != NULL ? reply(c, r) : send_all(c, keyw.data, keyw.len);
            hx_writer_reset(&keyw); /* wipes the key's reply */
            if (!sent) {
                goto out;
            }
        }
    }
out:
    hx_writer_wipe(&keyw);
    hx_json_stream_free(s);
    pthread_mutex_lock(&a->lock);
    a->conn_fds[c->slot] = -1;
    a->n_conns--;
    pthread_cond_broadcast(&a->idle);
    pthread_mutex_unlock(&a->lock);
    hx_conn_wipe(&c->conn);
    free(c);
    return NULL;
}

/* Is id in list, a comma-separated list of decimal ids (api.allow_uids, api.allow_gids)? */
static bool id_listed(const char *list, size_t cap, unsigned long id)
{
    const char *p = list, *end = list + strnlen(list, cap);

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        char num[24], *e;
        size_t len = (size_t)(stop - p);
        if (len > 0 && len < sizeof(num)) {
            memcpy(num, p, len);
            num[len] = '\0';
            unsigned long v = strtoul(num, &e, 10);
            if (*e == '\0' && num[0] >= '0' && num[0] <= '9' && v == id) {
                return true;
            }
        }
        p = stop + 1;
    }
    return false;
}

static bool uid_allowed(const struct hxd_api *a, uid_t uid, gid_t gid)
{
    const struct hxd_config *cfg = &a->d->cfg;

    return uid == getuid() || id_listed(cfg->api_allow_uids, sizeof(cfg->api_allow_uids), uid) ||
           id_listed(cfg->api_allow_gids, sizeof(cfg->api_allow_gids), gid);
}

struct acceptor {
    struct hxd_api *a;
    int fd;
    bool unix_socket;
    bool tls;
};

static void *accept_main(void *arg)
{
    struct acceptor *ac = arg;
    struct hxd_api *a = ac->a;

    for (;;) {
        struct client *c;
        pthread_t t;
        pthread_attr_t attr;
        size_t slot;
        uid_t uid = 0;
        gid_t gid = 0;
        int fd;

        if (hx_net_accept(ac->fd, &fd) != HX_OK) {
            if (a->stopping) {
                break;
            }
            usleep(100000); /* out of descriptors: wait for connections to end */
            continue;
        }
        if (ac->unix_socket &&
            (hx_net_peer_cred(fd, &uid, &gid) != HX_OK || !uid_allowed(a, uid, gid))) {
            hx_warn("API connection refused by the uid/gid allow-list",
                    HX_F_I64("uid", (int64_t)uid));
            close(fd);
            continue;
        }
        pthread_mutex_lock(&a->lock);
        if (a->stopping || a->n_conns >= a->d->cfg.max_clients) {
            pthread_mutex_unlock(&a->lock);
            close(fd);
            continue;
        }
        for (slot = 0; a->conn_fds[slot] >= 0; slot++) {
        }
        a->conn_fds[slot] = fd;
        a->n_conns++;
        pthread_mutex_unlock(&a->lock);
        /* Threads are joined, not detached: an exiting thread's OpenSSL state must be gone
         * before the process is. The slot's previous thread has finished its work. */
        if (a->has_thread[slot]) {
            pthread_join(a->threads[slot], NULL);
            a->has_thread[slot] = false;
        }
        if ((c = calloc(1, sizeof(*c))) == NULL) {
            close(fd);
            continue;
        }
        c->a = a;
        hx_conn_init(&c->conn, fd);
        c->fd = fd;
        c->slot = slot;
        if (ac->unix_socket) {
            snprintf(c->identity, sizeof(c->identity), "uid:%lu", (unsigned long)uid);
        }
        c->tls_conn = ac->tls;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&t, &attr, client_main, c) == 0) {
            a->threads[slot] = t;
            a->has_thread[slot] = true;
        } else {
            pthread_mutex_lock(&a->lock);
            a->conn_fds[slot] = -1;
            a->n_conns--;
            pthread_mutex_unlock(&a->lock);
            hx_conn_wipe(&c->conn);
            free(c);
        }
        pthread_attr_destroy(&attr);
    }
    free(ac);
    return NULL;
}

/* The mutual-TLS API: its context (TLS 1.3, client certificates required) and listener. */
static hx_err start_tls_api(struct hxd_api *a, char *why, size_t why_len)
{
    const struct hxd_config *cfg = &a->d->cfg;
    struct acceptor *ac;
    struct stat st;
    char lerr[200];

    if (cfg->api_tls_cert[0] == '\0' || cfg->api_tls_key[0] == '\0' || cfg->api_tls_ca[0] == '\0') {
        snprintf(why, why_len, "api.tls.port needs api.tls.cert, api.tls.key and api.tls.ca");
        return HX_ERR_CONFIG;
    }
    if (stat(cfg->api_tls_key, &st) != 0 || (st.st_mode & 077) != 0) {
        snprintf(why, why_len, "api.tls.key %s: missing, or readable by others (mode 0600)",
                 cfg->api_tls_key);
        return HX_ERR_IO_PERM;
    }
    if ((a->tls = SSL_CTX_new(TLS_server_method())) == NULL ||
        SSL_CTX_set_min_proto_version(a->tls, TLS1_3_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(a->tls, cfg->api_tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(a->tls, cfg->api_tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(a->tls) != 1 ||
        SSL_CTX_load_verify_locations(a->tls, cfg->api_tls_ca, NULL) != 1) {
        char err[160];
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        ERR_clear_error();
        snprintf(why, why_len, "api.tls: %s", err);
        return HX_ERR_CONFIG;
    }
    SSL_CTX_set_verify(a->tls, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    /* api.tls.port is checked to be 1..65535 when the configuration is read */
    if (hx_net_listen_tcp(cfg->api_tls_host, (uint16_t)cfg->api_tls_port, 256, false, &a->tls_fd,
                          lerr, sizeof(lerr)) != HX_OK) {
        snprintf(why, why_len, "api.tls %s:%u: %s", cfg->api_tls_host, cfg->api_tls_port, lerr);
        return HX_ERR_IO;
    }
    if ((ac = malloc(sizeof(*ac))) == NULL) {
        return HX_ERR_NOMEM;
    }
    *ac = (struct acceptor){a, a->tls_fd, false, true};
    a->tls_started = pthread_create(&a->tls_thread, NULL, accept_main, ac) == 0;
    return HX_OK;
}

hx_err hxd_api_start(struct hxd *d, struct hxd_api **out, char *why, size_t why_len)
{
    struct hxd_api *a = calloc(1, sizeof(*a));
    struct acceptor *ac;
    char err[200];
    hx_err e;

    *out = NULL;
    if (a == NULL || (a->conn_fds = malloc(d->cfg.max_clients * sizeof(int))) == NULL ||
        (a->threads = calloc(d->cfg.max_clients, sizeof(pthread_t))) == NULL ||
        (a->has_thread = calloc(d->cfg.max_clients, sizeof(bool))) == NULL) {
        if (a != NULL) {
            free(a->conn_fds);
            free(a->threads);
        }
        free(a);
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < d->cfg.max_clients; i++) {
        a->conn_fds[i] = -1;
    }
    a->d = d;
    a->tcp_fd = a->unix_fd = a->tls_fd = -1;
    pthread_mutex_init(&a->lock, NULL);
    if (hx_cond_init_monotonic(&a->idle) != HX_OK) {
        pthread_mutex_destroy(&a->lock);
        free(a->conn_fds);
        free(a->threads);
        free(a->has_thread);
        free(a);
        return HX_ERR_INTERNAL;
    }
    /* Applications on other hosts only when the operator says so (api.allow_remote). */
    e = hx_net_listen_tcp(d->cfg.api.host, d->cfg.api.port, 256, !d->cfg.api_allow_remote,
                          &a->tcp_fd, err, sizeof(err));
    if (e == HX_ERR_CONFIG) {
        snprintf(why, why_len, "hybridization_server_address %s: %s", d->cfg.api.host, err);
    } else if (e == HX_ERR_IO_PERM) {
        snprintf(why, why_len,
                 "hybridization_server_address %s is not loopback: set api.allow_remote to "
                 "serve applications on other hosts",
                 d->cfg.api.host);
        e = HX_ERR_CONFIG;
    } else if (e != HX_OK) {
        snprintf(why, why_len, "hybridization_server_address %s:%u: %s", d->cfg.api.host,
                 d->cfg.api.port, err);
    }
    if (e != HX_OK) {
        hxd_api_stop(a);
        return e;
    }
    if ((ac = malloc(sizeof(*ac))) == NULL) {
        hxd_api_stop(a);
        return HX_ERR_NOMEM;
    }
    *ac = (struct acceptor){a, a->tcp_fd, false, false};
    a->tcp_started = pthread_create(&a->tcp_thread, NULL, accept_main, ac) == 0;
    if (d->cfg.api_unix_socket[0] != '\0') {
        /* 0660: the owner and its group connect; the allow-list then checks the peer's ids. */
        if ((e = hx_net_listen_unix(d->cfg.api_unix_socket, 256, 0117, &a->unix_fd, err,
                                    sizeof(err))) != HX_OK) {
            snprintf(why, why_len, "api.unix_socket %s: %s", d->cfg.api_unix_socket, err);
            hxd_api_stop(a);
            return e;
        }
        if ((ac = malloc(sizeof(*ac))) == NULL) {
            hxd_api_stop(a);
            return HX_ERR_NOMEM;
        }
        *ac = (struct acceptor){a, a->unix_fd, true, false};
        a->unix_started = pthread_create(&a->unix_thread, NULL, accept_main, ac) == 0;
    }
    if (d->cfg.api_tls_port != 0) {
        if ((e = start_tls_api(a, why, why_len)) != HX_OK) {
            hxd_api_stop(a);
            return e;
        }
    }
    *out = a;
    return HX_OK;
}

void hxd_api_stop(struct hxd_api *a)
{
    int64_t deadline = hx_deadline_in_ms(1000);

    if (a == NULL) {
        return;
    }
    a->stopping = true;
    if (a->tcp_fd >= 0) {
        shutdown(a->tcp_fd, SHUT_RDWR);
    }
    if (a->unix_fd >= 0) {
        shutdown(a->unix_fd, SHUT_RDWR);
    }
    if (a->tls_fd >= 0) {
        shutdown(a->tls_fd, SHUT_RDWR);
    }
    if (a->tls_started) {
        pthread_join(a->tls_thread, NULL);
    }
    if (a->tcp_started) {
        pthread_join(a->tcp_thread, NULL);
    }
    if (a->unix_started) {
        pthread_join(a->unix_thread, NULL);
    }
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; a->conn_fds != NULL && i < a->d->cfg.max_clients; i++) {
        if (a->conn_fds[i] >= 0) {
            shutdown(a->conn_fds[i], SHUT_RDWR);
        }
    }
    /* A second for the connection threads to see their sockets shut down and leave. */
    while (a->n_conns > 0 && !hx_cond_wait_until(&a->idle, &a->lock, deadline)) {
    }
    bool idle = a->n_conns == 0;
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; idle && a->has_thread != NULL && i < a->d->cfg.max_clients; i++) {
        if (a->has_thread[i]) {
            pthread_join(a->threads[i], NULL);
        }
    }
    if (a->tcp_fd >= 0) {
        close(a->tcp_fd);
    }
    if (a->unix_fd >= 0) {
        close(a->unix_fd);
        unlink(a->d->cfg.api_unix_socket);
    }
    if (a->tls_fd >= 0) {
        close(a->tls_fd);
    }
    if (!idle) {
        return; /* connection threads still hold it (and the TLS context) */
    }
    SSL_CTX_free(a->tls);
    free(a->conn_fds);
    free(a->threads);
    free(a->has_thread);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
