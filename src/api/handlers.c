/*
 * The API's requests (handlers.h): each calls the stream service once and writes its result
 * as the reference's reply. The ETSI status of every outcome comes from the service
 * (hxd_svc_etsi_status); what is added here is the wire form only: key_stream_id, the QoS
 * counter-proposal, metadata_size, the key reply and hykex's STATUS document.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/handlers.h"
#include "common/clock.h"
#include "common/uuid.h"

/* ---- replies ---- */

/* Appends n bytes; remembers the first failure (a reply cut at w's cap is never sent). */
static void put(struct hx_writer *w, const void *p, size_t n, hx_err *err)
{
    hx_err e;

    if (*err == HX_OK && (e = hx_write_bytes(w, p, n)) != HX_OK) {
        *err = e;
    }
}

static void dump(struct json_object *o, struct hx_writer *w, hx_err *err)
{
    switch (json_object_get_type(o)) {
    case json_type_object: {
        bool first = true;
        put(w, "{", 1, err);
        json_object_object_foreach (o, k, v) {
            struct json_object *ks = json_object_new_string(k);
            const char *kt = json_object_to_json_string_ext(ks, JSON_C_TO_STRING_PLAIN);
            if (!first) {
                put(w, ", ", 2, err);
            }
            first = false;
            put(w, kt, strlen(kt), err);
            put(w, ": ", 2, err);
            json_object_put(ks);
            dump(v, w, err);
        }
        put(w, "}", 1, err);
        break;
    }
    case json_type_array:
        put(w, "[", 1, err);
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            if (i > 0) {
                put(w, ", ", 2, err);
            }
            dump(json_object_array_get_idx(o, i), w, err);
        }
        put(w, "]", 1, err);
        break;
    default: {
        const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        put(w, t, strlen(t), err);
    }
    }
}

hx_err hxd_api_dump(struct json_object *o, struct hx_writer *w)
{
    hx_err err = HX_OK;

    dump(o, w, &err);
    return err;
}

static struct json_object *failed(const struct hxd_svc_result *r)
{
    return hx_004_json_status(r->status, r->msg);
}

/* ---- OPEN_CONNECT ---- */

static struct json_object *open_connect(struct hxd *d, const struct hx_004_request *req,
                                        const struct hxd_api_caller *who)
{
    struct hxd_svc_open_req q = {.source = req->source,
                                 .destination = req->destination,
                                 .ksid = req->ksid,
                                 .qos = req->qos,
                                 .identity = who->identity,
                                 .gone = who->gone,
                                 .gone_arg = who->gone_arg};
    struct hxd_svc_open_res res;
    char id[HX_UUID_STR_LEN + 1];
    struct json_object *o;

    hxd_svc_open(d, &q, &res);
    if (res.r.err != HXD_SVC_OK) {
        o = failed(&res.r);
        if (res.has_qos) {
            json_object_object_add(o, "qos", hx_004_json_qos(&res.qos));
        }
        return o;
    }
    hx_uuid_format(&res.ksid, id);
    o = hx_004_json_status(0, NULL);
    json_object_object_add(o, "key_stream_id", json_object_new_string(id));
    return o;
}

/* ---- GET_KEY ---- */

/* The smallest metadata: what a reference client's "size": 46 holds. */
static size_t metadata_min(uint64_t age, unsigned hops, char *buf, size_t len)
{
    return (size_t)snprintf(buf, len, "{\"age\": %" PRIu64 ", \"hops\": %u}", age, hops);
}

/* The metadata with the method and sources, when the client's buffer allows. */
static void metadata_full(const struct hxd_svc_get_res *res, char *buf, size_t len)
{
    size_t off = (size_t)snprintf(
        buf, len, "{\"age\": %" PRIu64 ", \"hops\": %u, \"method\": \"%s\", \"sources\": [",
        res->age_ms, res->hops, res->method);

    for (size_t i = 0; i < res->n_sources && off < len; i++) {
        off += (size_t)snprintf(buf + off, len - off, "%s\"%s\"", i ? ", " : "", res->sources[i]);
    }
    if (off < len) {
        snprintf(buf + off, len - off, "]}");
    }
}

/* GET_KEY: an error reply, or NULL with the key's reply written into out. */
static struct json_object *get_key(struct hxd *d, const struct hx_004_request *req,
                                   const struct hxd_api_caller *who, struct hx_writer *out)
{
    struct hxd_svc_get_req q = {.ksid = req->ksid,
                                .has_index = req->has_index,
                                .index = req->index,
                                .identity = who->identity,
                                .gone = who->gone,
                                .gone_arg = who->gone_arg,
                                .pace = true};
    struct hxd_svc_get_res res;
    char meta_full[512], meta_min[96];
    /* hops 0: what the reference's "size": 46 holds (a relayed key's 1-digit count fits too);
     * only a client that names its metadata size needs it */
    size_t min_len =
        req->metadata_size != 0 ? metadata_min(999999999, 0, meta_min, sizeof(meta_min)) : 0;
    struct json_object *o;
    bool ok;

    /* Status 8 must consume nothing: the service checks it before anything moves. */
    q.metadata_too_small = req->metadata_size != 0 && req->metadata_size < min_len;
    hxd_svc_get(d, &q, &res);
    if (res.r.err != HXD_SVC_OK) {
        o = failed(&res.r);
        if (res.r.err == HXD_SVC_METADATA) {
            json_object_object_add(o, "metadata_size", json_object_new_int64((int64_t)min_len));
        }
        return o;
    }
    metadata_full(&res, meta_full, sizeof(meta_full));
    /* written straight into out, wiped after sending; the reference's separators */
    const char *meta = meta_full;
    if (req->metadata_size != 0 && req->metadata_size < strlen(meta_full)) {
        metadata_min(res.age_ms, res.hops, meta_min, sizeof(meta_min));
        meta = meta_min;
    }
    ok = hx_004_json_write_key_reply(out, hx_secret_data(res.key), hx_secret_len(res.key),
                                     res.index, meta, true) == HX_OK;
    hx_secret_free(res.key);
    if (!ok) { /* out of memory: the key is delivered (recorded) but cannot be sent */
        hx_writer_reset(out);
        return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, "out of memory");
    }
    return NULL;
}

/* ---- CLOSE ---- */

static struct json_object *close_stream(struct hxd *d, const struct hx_004_request *req,
                                        const struct hxd_api_caller *who)
{
    struct hxd_svc_result res;

    hxd_svc_close(d, &req->ksid, who->identity, &res);
    return res.err != HXD_SVC_OK ? failed(&res) : hx_004_json_status(0, NULL);
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

static struct json_object *peer_status(const struct hxd_svc_peer_info *pi)
{
    struct json_object *p = json_object_new_object();
    const struct hx_link_info *li = &pi->link;
    char id[HX_UUID_STR_LEN + 1];

    hx_uuid_format(&pi->uuid, id);
    json_object_object_add(p, "uuid", json_object_new_string(id));
    json_object_object_add(p, "up", json_object_new_boolean(li->up));
    json_object_object_add(p, "last_up", json_time(li->last_up));
    json_object_object_add(p, "last_down", json_time(li->last_down));
    add_int(p, "links_made", li->links_made);
    json_object_object_add(p, "group", li->group[0] ? json_object_new_string(li->group) : NULL);
    json_object_object_add(p, "cipher", li->cipher[0] ? json_object_new_string(li->cipher) : NULL);
    json_object_object_add(p, "certificate_expires", json_time(li->cert_not_after));
    /* since when the link is in its state; the attempts this node made to dial it */
    json_object_object_add(p, "state", json_object_new_string(li->up ? "up" : "down"));
    json_object_object_add(p, "since", json_time(li->up ? li->last_up : li->last_down));
    add_int(p, "reconnect_attempts", li->dials);
    add_int(p, "reconnect_failures", li->dial_failures);
    json_object_object_add(p, "certificate_replaced_since_link",
                           json_object_new_boolean(li->stale_creds));
    return p;
}

/* One certificate's expiry, and whether it is within the warning threshold. */
static struct json_object *cert_expiry(const char *what, const char *peer, int64_t not_after,
                                       uint32_t warn_days)
{
    struct json_object *c = json_object_new_object();
    int64_t left = not_after - hx_walltime();

    json_object_object_add(c, "certificate", json_object_new_string(what));
    if (peer != NULL) {
        json_object_object_add(c, "peer", json_object_new_string(peer));
    }
    json_object_object_add(c, "expires", json_time(not_after));
    json_object_object_add(c, "days_left",
                           not_after != 0 ? json_object_new_int64(left / 86400) : NULL);
    json_object_object_add(
        c, "warning",
        json_object_new_boolean(not_after != 0 && left <= (int64_t)warn_days * 86400));
    return c;
}

/* Version, uptime, reloads, the KME's last answer, every certificate's expiry. */
static void operator_status(struct json_object *o, const struct hxd_svc_status *st)
{
    struct json_object *certs = json_object_new_array(), *kme = json_object_new_object(),
                       *rl = json_object_new_object();
    char version[32], id[HX_UUID_STR_LEN + 1];
    int64_t now = hx_walltime();

    snprintf(version, sizeof(version), "%d.%d.%d", HYKEX_VERSION_MAJOR, HYKEX_VERSION_MINOR,
             HYKEX_VERSION_PATCH);
    json_object_object_add(o, "version", json_object_new_string(version));
    json_object_object_add(o, "started", json_time(st->started_at));
    add_int(o, "uptime_s",
            st->started_at != 0 && now > st->started_at ? (uint64_t)(now - st->started_at) : 0);
    add_int(rl, "applied", st->reloads);
    add_int(rl, "refused", st->reloads_refused);
    json_object_object_add(rl, "last", json_time(st->last_reload_at));
    json_object_object_add(
        rl, "last_result",
        st->last_reload[0] != '\0' ? json_object_new_string(st->last_reload) : NULL);
    json_object_object_add(o, "reloads", rl);
    json_object_object_add(kme, "configured", json_object_new_boolean(st->kme_configured));
    json_object_object_add(kme, "last_request", json_time((int64_t)st->kme_last_at));
    json_object_object_add(
        kme, "last_ok",
        st->kme_last_at != 0 ? json_object_new_boolean(st->kme_last_ok != 0) : NULL);
    json_object_object_add(
        kme, "last_latency_ms",
        st->kme_last_at != 0 ? json_object_new_double((double)st->kme_last_us / 1000.0) : NULL);
    json_object_object_add(o, "kme", kme);
    json_object_array_add(certs, cert_expiry("node", NULL, st->cert_not_after, st->cert_warn_days));
    json_object_array_add(certs, cert_expiry("ca", NULL, st->ca_not_after, st->cert_warn_days));
    for (size_t i = 0; i < st->n_peers; i++) {
        if (st->peers[i].link.cert_not_after != 0) {
            hx_uuid_format(&st->peers[i].uuid, id);
            json_object_array_add(certs, cert_expiry("peer", id, st->peers[i].link.cert_not_after,
                                                     st->cert_warn_days));
        }
    }
    json_object_object_add(o, "certificates", certs);
    add_int(o, "certificate_warning_days", st->cert_warn_days);
}

static const char *state_name(enum hxd_svc_state s)
{
    switch (s) {
    case HXD_SVC_CLOSED_BY_PEER:
        return "closed by the peer";
    case HXD_SVC_WAITING_PEER:
        return "waiting for the peer";
    case HXD_SVC_FAILING:
        return "failing";
    case HXD_SVC_PRODUCING:
        break;
    }
    return "producing";
}

static struct json_object *stream_status(const struct hxd_svc_stream_info *s)
{
    struct json_object *e = json_object_new_object(), *src = json_object_new_array();
    char id[HX_UUID_STR_LEN + 1];

    hx_uuid_format(&s->ksid, id);
    json_object_object_add(e, "key_stream_id", json_object_new_string(id));
    hx_uuid_format(&s->peer, id);
    json_object_object_add(e, "peer", json_object_new_string(id));
    json_object_object_add(e, "role",
                           json_object_new_string(s->initiator ? "initiator" : "responder"));
    json_object_object_add(e, "method", json_object_new_string(s->method));
    for (size_t i = 0; i < s->n_sources; i++) {
        json_object_array_add(src, json_object_new_string(s->sources[i]));
    }
    json_object_object_add(e, "sources", src);
    add_int(e, "ready", s->ready);
    add_int(e, "prepared", s->prepared);
    add_int(e, "buffer_depth", s->buffer_depth);
    add_int(e, "produced", s->produced);
    add_int(e, "delivered", s->delivered);
    add_int(e, "next_index", s->next_index);
    add_int(e, "failed_batches", s->failed_batches);
    add_int(e, "qkd_reconnects", s->qkd_reconnects);
    add_int(e, "reroutes", s->reroutes);
    json_object_object_add(e, "state", json_object_new_string(state_name(s->state)));
    if (s->failing) {
        json_object_object_add(e, "last_error", json_object_new_string(s->last_error));
    }
    json_object_object_add(e, "restored", json_object_new_boolean(s->restored));
    json_object_object_add(e, "opened", json_time(s->opened_at));
    json_object_object_add(e, "keys_per_s_1min", json_object_new_double(s->keys_per_s));
    return e;
}

/* The relay's map (relay.enabled only): every node with its neighbours and this node's path to
 * it, at most HXD_RELAY_LISTED nodes (each up to ~5 KB with 64 neighbours: the reply stays
 * below 1 MiB); "nodes_total" counts them all. */
#define HXD_RELAY_LISTED 128
static struct json_object *path_json(bool reachable, const struct hx_topo_path *p)
{
    struct json_object *a;
    char id[HX_UUID_STR_LEN + 1];

    if (!reachable) {
        return NULL; /* JSON null: no path */
    }
    a = json_object_new_array();
    for (size_t k = 0; k <= p->hops; k++) {
        hx_uuid_format(&p->node[k], id);
        json_object_array_add(a, json_object_new_string(id));
    }
    return a;
}

static struct json_object *relay_status(const struct hxd_relay_view *v)
{
    struct json_object *o = json_object_new_object(), *nodes = json_object_new_array();
    char id[HX_UUID_STR_LEN + 1];

    json_object_object_add(o, "enabled", json_object_new_boolean(true));
    add_int(o, "nodes_total", v->n);
    add_int(o, "announcements_accepted", v->accepted);
    add_int(o, "announcements_refused", v->refused);
    add_int(o, "announcements_dropped", v->dropped);
    add_int(o, "nodes_forgotten", v->forgotten);
    add_int(o, "announced", v->announced);
    add_int(o, "messages_forwarded", v->forwarded);
    add_int(o, "messages_delivered", v->delivered);
    add_int(o, "messages_dropped", v->fwd_dropped);
    for (size_t i = 0; i < v->n && i < HXD_RELAY_LISTED; i++) {
        const struct hxd_relay_node_view *nv = &v->nodes[i];
        struct json_object *e = json_object_new_object(), *nb = json_object_new_array();
        hx_uuid_format(&nv->node.id, id);
        json_object_object_add(e, "uuid", json_object_new_string(id));
        add_int(e, "seq", nv->node.seq);
        add_int(e, "age_ms", (uint64_t)(nv->age_ms > 0 ? nv->age_ms : 0));
        json_object_object_add(
            e, "expires_in_ms",
            nv->expires_in_ms < 0 ? NULL : json_object_new_int64(nv->expires_in_ms));
        for (size_t k = 0; k < nv->node.n_neigh; k++) {
            struct json_object *n = json_object_new_object();
            hx_uuid_format(&nv->node.neigh[k].node, id);
            json_object_object_add(n, "uuid", json_object_new_string(id));
            json_object_object_add(
                n, "qkd", json_object_new_boolean((nv->node.neigh[k].flags & HX_TOPO_QKD) != 0));
            add_int(n, "key_available", nv->node.neigh[k].key_avail);
            json_object_array_add(nb, n);
        }
        json_object_object_add(e, "neighbours", nb);
        json_object_object_add(e, "path", path_json(nv->reachable, &nv->path));
        json_object_object_add(
            e, "hops", nv->reachable ? json_object_new_int64((int64_t)nv->path.hops) : NULL);
        json_object_object_add(e, "qkd_path", path_json(nv->qkd_reachable, &nv->qkd_path));
        json_object_array_add(nodes, e);
    }
    json_object_object_add(o, "nodes", nodes);
    return o;
}

static struct json_object *node_status(struct hxd *d)
{
    static const char *const stores[] = {"memory only", "durable", "durable (fsync)"};
    struct hxd_svc_status st;
    struct json_object *o, *peers, *streams, *err, *states;
    uint64_t by_state[HXD_SVC_CLOSED_BY_PEER + 1] = {0};
    size_t max_listed = hxd_svc_config(d)->status_streams;
    char id[HX_UUID_STR_LEN + 1];

    if (hxd_svc_status(d, &st) != HX_OK) {
        return hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, "out of memory");
    }
    o = hx_004_json_status(0, NULL);
    peers = json_object_new_array();
    streams = json_object_new_array();
    err = json_object_new_object();
    states = json_object_new_object();
    hx_uuid_format(&st.node, id);
    json_object_object_add(o, "node", json_object_new_string(id));
    json_object_object_add(o, "certificate_expires", json_time(st.cert_not_after));
    json_object_object_add(o, "store", json_object_new_string(stores[st.store]));
    operator_status(o, &st);
    for (size_t i = 0; i < st.n_peers; i++) {
        json_object_array_add(peers, peer_status(&st.peers[i]));
    }
    /* At most limits.status_streams listed (1000 at most, each ~600 bytes: the reply stays
     * below the writer's 1 MiB cap); all counted by state, so the reply is valid JSON for any
     * number of streams. */
    for (size_t i = 0; i < st.n_streams; i++) {
        if (i < max_listed) {
            json_object_array_add(streams, stream_status(&st.streams[i]));
        }
        by_state[st.streams[i].state]++;
    }
    add_int(o, "streams_total", st.n_streams);
    add_int(o, "streams_listed", st.n_streams < max_listed ? st.n_streams : max_listed);
    for (size_t i = 0; i < sizeof(by_state) / sizeof(by_state[0]); i++) {
        add_int(states, state_name((enum hxd_svc_state)i), by_state[i]);
    }
    json_object_object_add(o, "streams_by_state", states);
    add_int(o, "batches_ok", st.batches_ok);
    add_int(err, "batches_failed", st.batches_failed);
    add_int(err, "confirmation_mismatches", st.confirm_mismatch);
    add_int(err, "store_errors", st.store_errors);
    json_object_object_add(o, "errors", err);
    json_object_object_add(o, "peers", peers);
    json_object_object_add(o, "streams", streams);
    if (st.relay != NULL) { /* absent while relay.enabled is off: STATUS as before */
        json_object_object_add(o, "relay", relay_status(st.relay));
    }
    hxd_svc_status_wipe(&st);
    return o;
}

/* ---- RELOAD (hykex reload: as SIGHUP, for the daemon's own user) ---- */

static struct json_object *reload(struct hxd *d, const struct hxd_api_caller *who)
{
    struct hxd_svc_result res;
    char result[400];
    struct json_object *o;

    hxd_svc_reload(d, who->identity, &res, result, sizeof(result));
    if (res.err != HXD_SVC_OK) {
        return failed(&res);
    }
    o = hx_004_json_status(0, NULL);
    json_object_object_add(o, "result", json_object_new_string(result));
    return o;
}

struct json_object *hxd_api_handle(struct hxd *d, const struct hx_004_request *req,
                                   const struct hxd_api_caller *who, struct hx_writer *key_reply)
{
    switch (req->cmd) {
    case HX_004_OPEN_CONNECT:
        return open_connect(d, req, who);
    case HX_004_GET_KEY:
        return get_key(d, req, who, key_reply);
    case HX_004_STATUS:
        return node_status(d);
    case HX_004_RELOAD:
        return reload(d, who);
    default:
        return close_stream(d, req, who);
    }
}
