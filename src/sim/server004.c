#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "net/conn.h"
#include "net/sock.h"
#include "proto/etsi004.h"
#include "sim/server.h"

enum dialect {
    D_JSON,
    D_BIN,
    D_CTL,
};

struct listener {
    struct sim_server *srv;
    int fd;
    size_t kme;
    enum dialect dialect;
    enum hx_004_framing framing;
    bool compat;
    SSL_CTX *tls;
    pthread_t thread;
    bool started;
};

struct conn {
    struct listener *l;
    struct hx_conn io;
    size_t slot;
};

struct sim_server {
    struct sim_net *net;
    struct listener *listeners;
    size_t n_listeners;
    struct sim_014 **s014;
    size_t n_014;
    char ctl_path[108];
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int conn_fd[SIM_MAX_CONNECTIONS];
    size_t conn_kme[SIM_MAX_CONNECTIONS];
    /* Connection threads are joined (before a slot's reuse, and at stop), not detached: an
     * exiting thread's OpenSSL state must be freed before the process ends. */
    pthread_t conn_thread[SIM_MAX_CONNECTIONS];
    bool has_thread[SIM_MAX_CONNECTIONS];
    size_t n_conns;
    atomic_bool stopping; /* read without the lock by accept threads */
};

static struct sim_server *the_server; /* for the model's drop callback */

/* ---- I/O over TCP or TLS (net/conn.h) ---- */

/* A KME connection waits for its client as long as it likes: the server stops it by shutting
 * the socket down (sim_server_stop, the model's "drop"), which ends the read. */
static ssize_t conn_read(struct conn *c, void *buf, size_t n)
{
    size_t got;

    return hx_conn_read_some(&c->io, buf, n, &got, HX_DEADLINE_NEVER) == HX_OK ? (ssize_t)got : -1;
}

static bool conn_write(struct conn *c, const void *p, size_t n)
{
    return hx_conn_write_all(&c->io, p, n, HX_DEADLINE_NEVER) == HX_OK;
}

/* ---- the JSON dialect ---- */

/* Appends a reply object's text to out and frees it. */
static bool add_json(struct hx_writer *out, struct json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    bool ok = hx_write_bytes(out, s, strlen(s)) == HX_OK;

    json_object_put(o);
    return ok;
}

/* Appends the reply to one request to out. */
static bool handle_json(struct conn *c, const struct hx_004_request *req, struct hx_writer *out)
{
    struct sim_net *net = c->l->srv->net;
    struct sim_result r;
    struct hx_uuid id = req->ksid;
    struct hykex_qos qos = req->qos;
    struct json_object *o;
    char text[HX_QKD_KSID_MAX + 1]; /* either form */
    bool opaque = (net->kmes[c->l->kme].quirks & SIM_QUIRK_OPAQUE_IDS) != 0;

    if (!hx_qkd_ksid_is_none(&req->ksid_text) && !sim_opaque_parse(req->ksid_text.s, &id)) {
        return add_json(out, hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION,
                                                "key_stream_id was not given out by this KME"));
    }
    switch (req->cmd) {
    case HX_004_OPEN_CONNECT:
        sim_open(net, c->l->kme, req->source, req->destination, &qos, &id, c->l->compat, &r);
        o = hx_004_json_status(r.status, r.message);
        if (r.status == 0 || r.status == 1) {
            if (!hx_qkd_ksid_is_none(&req->ksid_text)) { /* a given id goes back as given */
                snprintf(text, sizeof(text), "%s", req->ksid_text.s);
            } else if (opaque && hx_uuid_is_nil(&req->ksid)) { /* one this KME makes */
                sim_opaque_format(&id, text);
            } else {
                hx_uuid_format(&id, text);
            }
            json_object_object_add(o, "key_stream_id", json_object_new_string(text));
        }
        if (r.status == 7 || (r.status <= 1 && !c->l->compat)) {
            json_object_object_add(o, "qos", hx_004_json_qos(&qos));
        }
        return add_json(out, o);
    case HX_004_GET_KEY: {
        uint8_t key[SIM_MAX_CHUNK];
        char meta[128];
        size_t key_len, needed;
        uint32_t index = req->index;
        /* The reference sends metadata.size 46; without one the buffer is ample. */
        size_t cap = req->metadata_size > 0 ? req->metadata_size : sizeof(meta);
        sim_get_key(net, c->l->kme, &id, req->has_index, &index, key, &key_len, meta,
                    cap < sizeof(meta) ? cap : sizeof(meta), &needed, &r);
        if (r.status == 0) {
            bool ok = hx_004_json_write_key_reply(out, key, key_len, index, meta, false) == HX_OK;
            OPENSSL_cleanse(key, sizeof(key));
            return ok;
        }
        o = hx_004_json_status(r.status, r.message);
        if (r.status == 8) {
            json_object_object_add(o, "metadata_size", json_object_new_int64((int64_t)needed));
        }
        return add_json(out, o);
    }
    case HX_004_CLOSE:
        sim_close(net, c->l->kme, &id, &r);
        return add_json(out, hx_004_json_status(r.status, r.message));
    case HX_004_STATUS:
    case HX_004_RELOAD:
        break; /* hykexd's own commands: a KME does not know them */
    }
    return add_json(out, hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, "unknown command"));
}

static void serve_json(struct conn *c)
{
    static const struct hx_json_limits lim = {
        .max_message = 64 * 1024, .max_depth = 8, .max_string = 4096, .max_members = 64};
    struct hx_json_stream *s = NULL;
    struct hx_writer out;
    uint8_t buf[16384];
    ssize_t n;

    /* The replies to every request of one read leave in one write (a client that pipelines
     * its GET_KEYs gets one segment, not one per key); a lone request's reply is alone. */
    hx_writer_init_dynamic(&out, 64u * 1024 * 1024);
    if (hx_json_stream_new(&lim, &s) != HX_OK) {
        return;
    }
    while ((n = conn_read(c, buf, sizeof(buf))) > 0) {
        bool opaque = (c->l->srv->net->kmes[c->l->kme].quirks & SIM_QUIRK_OPAQUE_IDS) != 0;
        struct hx_004_request req;
        enum hx_004_next next;
        const char *why;
        char msg[300];

        if (hx_json_stream_feed(s, buf, (size_t)n) != HX_OK) {
            break;
        }
        while ((next = hx_004_json_next_request(s, &lim, opaque, &req, &why, msg, sizeof(msg))) !=
               HX_004_NEED_MORE) {
            bool ok;
            if (next == HX_004_MALFORMED) {
                snprintf(msg, sizeof(msg), "malformed request: %s", why);
                ok = add_json(&out, hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, msg));
            } else if (next == HX_004_INVALID) {
                char full[340];
                snprintf(full, sizeof(full), "invalid request: %s", msg);
                ok = add_json(&out, hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, full));
            } else {
                ok = handle_json(c, &req, &out);
            }
            if (!ok) {
                goto out;
            }
        }
        if (out.len > 0 && !conn_write(c, out.data, out.len)) {
            break;
        }
        hx_writer_reset(&out);
    }
out:
    hx_writer_wipe(&out);
    hx_json_stream_free(s);
}

/* ---- the binary dialect ---- */

static void serve_bin(struct conn *c)
{
    struct sim_net *net = c->l->srv->net;
    enum hx_004_framing f = c->l->framing;
    uint8_t hdr[HX_004_BIN_HEADER], *payload = malloc(HX_004_BIN_MAX_PAYLOAD);
    uint8_t out[HX_004_BIN_HEADER + SIM_MAX_CHUNK + 1024];
    struct hx_writer w;

    if (payload == NULL) {
        return;
    }
    while (hx_conn_read_exact(&c->io, hdr, sizeof(hdr), sizeof(hdr), HX_DEADLINE_NEVER) == HX_OK) {
        struct hx_004_request req;
        struct hx_004_response resp;
        struct sim_result r;
        uint8_t type, key[SIM_MAX_CHUNK];
        uint32_t len;
        char why[200], meta[128];
        size_t key_len = 0, needed = 0;

        if (hx_004_bin_header(f, hdr, &type, &len, why, sizeof(why)) != HX_OK ||
            hx_conn_read_exact(&c->io, payload, HX_004_BIN_MAX_PAYLOAD, len, HX_DEADLINE_NEVER) !=
                HX_OK) {
            break; /* wrong version or oversize: the framing is lost; close */
        }
        memset(&resp, 0, sizeof(resp));
        if (hx_004_bin_decode_request(f, type, payload, len, &req, why, sizeof(why)) != HX_OK) {
            if (type != HX_004_BIN_OPEN_REQ && type != HX_004_BIN_GET_REQ &&
                type != HX_004_BIN_CLOSE_REQ) {
                break;
            }
            resp.cmd = type == HX_004_BIN_OPEN_REQ  ? HX_004_OPEN_CONNECT
                       : type == HX_004_BIN_GET_REQ ? HX_004_GET_KEY
                                                    : HX_004_CLOSE;
            resp.status = HYKEX_STATUS_NO_QKD_CONNECTION;
        } else {
            resp.cmd = req.cmd;
            switch (req.cmd) {
            case HX_004_OPEN_CONNECT:
                resp.qos = req.qos;
                resp.ksid = req.ksid;
                sim_open(net, c->l->kme, req.source, req.destination, &resp.qos, &resp.ksid, false,
                         &r);
                resp.status = (uint32_t)r.status;
                break;
            case HX_004_GET_KEY:
                resp.index = req.index;
                sim_get_key(net, c->l->kme, &req.ksid, true, &resp.index, key, &key_len, meta,
                            req.metadata_size < sizeof(meta) ? req.metadata_size : sizeof(meta),
                            &needed, &r);
                resp.status = (uint32_t)r.status;
                resp.key = key;
                resp.key_len = key_len;
                resp.metadata = (const uint8_t *)meta;
                resp.metadata_len = r.status == 0 ? strlen(meta) : 0;
                resp.metadata_needed = (uint32_t)needed;
                break;
            case HX_004_CLOSE:
                sim_close(net, c->l->kme, &req.ksid, &r);
                resp.status = (uint32_t)r.status;
                break;
            case HX_004_STATUS:
            case HX_004_RELOAD:
                resp.status = HYKEX_STATUS_NO_QKD_CONNECTION;
                break;
            }
        }
        hx_writer_init_fixed(&w, out, sizeof(out));
        bool ok = hx_004_bin_encode_response(f, &resp, &w) == HX_OK && conn_write(c, out, w.len);
        OPENSSL_cleanse(key, sizeof(key));
        OPENSSL_cleanse(out, sizeof(out));
        if (!ok || f == HX_004_FRAMING_211) {
            break; /* 2.1.1: one request per connection */
        }
    }
    free(payload);
}

/* ---- the control socket ---- */

static void serve_ctl(struct conn *c)
{
    char line[256], *reply = NULL;
    size_t n = 0;
    ssize_t r;

    while (n < sizeof(line) - 1 && (r = conn_read(c, line + n, sizeof(line) - 1 - n)) > 0) {
        n += (size_t)r;
        if (memchr(line, '\n', n) != NULL) {
            break;
        }
    }
    line[n] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    sim_control(c->l->srv->net, line, &reply);
    if (reply != NULL) {
        (void)(conn_write(c, reply, strlen(reply)) && conn_write(c, "\n", 1));
        free(reply);
    }
}

/* ---- connections and listeners ---- */

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct sim_server *srv = c->l->srv;

    /* 10 s for the handshake: a client that connects and says nothing holds no thread long. */
    if (c->l->tls != NULL &&
        hx_conn_tls_accept(&c->io, c->l->tls, hx_deadline_in_ms(10000)) != HX_OK) {
        ERR_clear_error();
        hx_warn("TLS handshake failed (no or untrusted client certificate?)",
                HX_F_STR("kme", srv->net->kmes[c->l->kme].id));
        goto out;
    }
    switch (c->l->dialect) {
    case D_JSON:
        serve_json(c);
        break;
    case D_BIN:
        serve_bin(c);
        break;
    case D_CTL:
        serve_ctl(c);
        break;
    }
out:
    hx_conn_tls_close(&c->io);
    pthread_mutex_lock(&srv->lock);
    srv->conn_fd[c->slot] = -1;
    srv->n_conns--;
    pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->lock);
    hx_conn_wipe(&c->io);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct listener *l = arg;
    struct sim_server *srv = l->srv;

    for (;;) {
        struct conn *c;
        pthread_t t;
        pthread_attr_t attr;
        size_t slot;
        int fd;
        hx_err e = hx_net_accept(l->fd, &fd);

        if (e != HX_OK) {
            if (e == HX_ERR_IO_CLOSED || srv->stopping) {
                return NULL;
            }
            usleep(100000); /* out of descriptors: wait for connections to end */
            continue;
        }
        if ((c = calloc(1, sizeof(*c))) == NULL) {
            close(fd);
            continue;
        }
        c->l = l;
        hx_conn_init(&c->io, fd);
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        /*
         * The slot's bookkeeping happens under the lock: accept threads of several listeners
         * share the slots. A slot is free once its thread has cleared conn_fd (under this lock,
         * its last use of it), so joining that thread here cannot wait for the lock.
         */
        pthread_mutex_lock(&srv->lock);
        if (srv->stopping || srv->n_conns >= SIM_MAX_CONNECTIONS) {
            pthread_mutex_unlock(&srv->lock);
            pthread_attr_destroy(&attr);
            hx_conn_wipe(&c->io); /* over the cap: refuse rather than queue forever */
            free(c);
            continue;
        }
        for (slot = 0; srv->conn_fd[slot] >= 0; slot++) {
        }
        if (srv->has_thread[slot]) {
            pthread_join(srv->conn_thread[slot], NULL);
            srv->has_thread[slot] = false;
        }
        c->slot = slot;
        srv->conn_fd[slot] = fd;
        srv->conn_kme[slot] = l->kme;
        srv->n_conns++;
        if (pthread_create(&t, &attr, conn_main, c) == 0) {
            srv->conn_thread[slot] = t;
            srv->has_thread[slot] = true;
            c = NULL;
        } else {
            srv->conn_fd[slot] = -1;
            srv->n_conns--;
        }
        pthread_mutex_unlock(&srv->lock);
        if (c != NULL) {
            hx_conn_wipe(&c->io);
            free(c);
        }
        pthread_attr_destroy(&attr);
    }
}

static hx_err listen_tcp(const char *host, uint16_t port, int *out, char *why, size_t why_len)
{
    char err[200];
    hx_err e = hx_net_listen_tcp(host, port, 128, false, out, err, sizeof(err));

    if (e != HX_OK) {
        snprintf(why, why_len, "%s:%u: %s", host, port, err);
    }
    return e;
}

static hx_err listen_unix(const char *path, int *out, char *why, size_t why_len)
{
    char err[200];
    /* the control socket is for the operator only */
    hx_err e = hx_net_listen_unix(path, 16, 077, out, err, sizeof(err));

    if (e == HX_ERR_CONFIG) {
        snprintf(why, why_len, "%s: control socket path too long", path);
    } else if (e != HX_OK) {
        snprintf(why, why_len, "%s: %s", path, err);
    }
    return e;
}

static hx_err tls_context(const struct sim_listener *sl, SSL_CTX **out, char *why, size_t why_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    *out = NULL;
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, sl->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, sl->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1 || SSL_CTX_load_verify_file(ctx, sl->ca) != 1) {
        char err[160];
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        snprintf(why, why_len, "TLS set-up with %s / %s / %s: %s", sl->cert, sl->key, sl->ca, err);
        SSL_CTX_free(ctx);
        return HX_ERR_CONFIG;
    }
    /* Client certificates are mandatory. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    *out = ctx;
    return HX_OK;
}

static void drop_kme_connections(size_t kme)
{
    struct sim_server *srv = the_server;

    if (srv == NULL) {
        return;
    }
    pthread_mutex_lock(&srv->lock);
    for (size_t i = 0; i < SIM_MAX_CONNECTIONS; i++) {
        if (srv->conn_fd[i] >= 0 && srv->conn_kme[i] == kme) {
            shutdown(srv->conn_fd[i], SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&srv->lock);
}

static hx_err add_listener(struct sim_server *srv, size_t kme, enum dialect d,
                           const struct sim_listener *sl, const char *unix_path, char *why,
                           size_t why_len)
{
    struct listener *l = &srv->listeners[srv->n_listeners];
    hx_err e;

    memset(l, 0, sizeof(*l));
    l->srv = srv;
    l->kme = kme;
    l->dialect = d;
    l->fd = -1;
    if (d == D_CTL) {
        if (unix_path == NULL) {
            snprintf(why, why_len, "control listener without a socket path");
            return HX_ERR_INVALID_ARG;
        }
        e = listen_unix(unix_path, &l->fd, why, why_len);
    } else {
        l->compat = sl->reference_compat;
        l->framing = (enum hx_004_framing)sl->framing;
        if (d == D_BIN && sl->cert[0] != '\0' &&
            (e = tls_context(sl, &l->tls, why, why_len)) != HX_OK) {
            return e;
        }
        e = listen_tcp(sl->host, sl->port, &l->fd, why, why_len);
    }
    if (e != HX_OK) {
        SSL_CTX_free(l->tls);
        return e;
    }
    srv->n_listeners++;
    if (pthread_create(&l->thread, NULL, accept_main, l) != 0) {
        snprintf(why, why_len, "cannot start a listener thread");
        return HX_ERR_INTERNAL;
    }
    l->started = true;
    return HX_OK;
}

hx_err sim_server_start(struct sim_net *net, const char *ctl_path, struct sim_server **out,
                        char *why, size_t why_len)
{
    struct sim_server *srv;
    hx_err e = HX_OK;

    *out = NULL;
    if ((srv = calloc(1, sizeof(*srv))) == NULL) {
        return HX_ERR_NOMEM;
    }
    srv->net = net;
    pthread_mutex_init(&srv->lock, NULL);
    if (hx_cond_init_monotonic(&srv->idle) != HX_OK) {
        pthread_mutex_destroy(&srv->lock);
        free(srv);
        return HX_ERR_INTERNAL;
    }
    for (size_t i = 0; i < SIM_MAX_CONNECTIONS; i++) {
        srv->conn_fd[i] = -1;
    }
    srv->listeners = calloc(2 * net->n_kmes + 1, sizeof(*srv->listeners));
    srv->s014 = calloc(net->n_kmes, sizeof(*srv->s014));
    if (srv->listeners == NULL || srv->s014 == NULL) {
        sim_server_stop(srv);
        return HX_ERR_NOMEM;
    }
    the_server = srv;
    net->drop_connections = drop_kme_connections;
    for (size_t k = 0; k < net->n_kmes && e == HX_OK; k++) {
        const struct sim_kme *kme = &net->kmes[k];
        if (kme->l004_json.enabled) {
            e = add_listener(srv, k, D_JSON, &kme->l004_json, NULL, why, why_len);
        }
        if (e == HX_OK && kme->l004_bin.enabled) {
            e = add_listener(srv, k, D_BIN, &kme->l004_bin, NULL, why, why_len);
        }
        if (e == HX_OK && kme->l014.enabled) {
            if ((e = sim_014_start(net, k, &srv->s014[k], why, why_len)) == HX_OK) {
                srv->n_014++;
            }
        }
    }
    if (e == HX_OK && ctl_path != NULL) {
        snprintf(srv->ctl_path, sizeof(srv->ctl_path), "%s", ctl_path);
        /* SIZE_MAX: control connections belong to no KME, so "drop" never cuts its own reply. */
        e = add_listener(srv, SIZE_MAX, D_CTL, NULL, ctl_path, why, why_len);
    }
    if (e != HX_OK) {
        sim_server_stop(srv);
        return e;
    }
    *out = srv;
    return HX_OK;
}

void sim_server_stop(struct sim_server *srv)
{
    int64_t deadline;

    if (srv == NULL) {
        return;
    }
    pthread_mutex_lock(&srv->lock);
    srv->stopping = true;
    pthread_mutex_unlock(&srv->lock);
    sim_net_stop(srv->net);
    for (size_t i = 0; i < srv->n_listeners; i++) {
        shutdown(srv->listeners[i].fd, SHUT_RDWR); /* wakes accept() */
    }
    for (size_t i = 0; i < srv->n_listeners; i++) {
        if (srv->listeners[i].started) {
            pthread_join(srv->listeners[i].thread, NULL);
        }
        close(srv->listeners[i].fd);
        SSL_CTX_free(srv->listeners[i].tls);
    }
    for (size_t k = 0; srv->s014 != NULL && k < srv->net->n_kmes; k++) {
        sim_014_stop(srv->s014[k]);
    }
    /* Connections: shut them down and give their threads a second to finish. */
    deadline = hx_deadline_in_ms(1000);
    pthread_mutex_lock(&srv->lock);
    for (size_t i = 0; i < SIM_MAX_CONNECTIONS; i++) {
        if (srv->conn_fd[i] >= 0) {
            shutdown(srv->conn_fd[i], SHUT_RDWR);
        }
    }
    while (srv->n_conns > 0 && !hx_cond_wait_until(&srv->idle, &srv->lock, deadline)) {
    }
    bool idle = srv->n_conns == 0;
    pthread_mutex_unlock(&srv->lock);
    for (size_t i = 0; idle && i < SIM_MAX_CONNECTIONS; i++) {
        if (srv->has_thread[i]) {
            pthread_join(srv->conn_thread[i], NULL);
        }
    }
    if (srv->ctl_path[0] != '\0') {
        unlink(srv->ctl_path);
    }
    srv->net->drop_connections = NULL;
    the_server = NULL;
    if (!idle) {
        return; /* a thread is still inside the model: leave the memory to the exiting process */
    }
    free(srv->listeners);
    free(srv->s014);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

int sim_ctl_client(const char *path, int argc, char **argv)
{
    char line[256], reply[65536], why[200];
    struct hx_conn c;
    size_t n = 0, got;
    hx_err e;
    int fd;

    line[0] = '\0';
    for (int i = 0; i < argc; i++) {
        size_t len = strlen(line);
        snprintf(line + len, sizeof(line) - len, "%s%s", i ? " " : "", argv[i]);
    }
    if ((e = hx_net_dial_unix(path, &fd, why, sizeof(why))) != HX_OK) {
        if (e == HX_ERR_CONFIG) {
            fprintf(stderr, "hykex-qkdsim ctl: control socket path too long: %.200s\n", path);
            return 2;
        }
        fprintf(stderr, "hykex-qkdsim ctl: cannot connect to the control socket %s: %s\n", path,
                why);
        return 1;
    }
    hx_conn_init(&c, fd);
    if (hx_conn_write_all(&c, line, strlen(line), HX_DEADLINE_NEVER) != HX_OK ||
        hx_conn_write_all(&c, "\n", 1, HX_DEADLINE_NEVER) != HX_OK) {
        hx_conn_wipe(&c);
        return 1;
    }
    while (n < sizeof(reply) - 1 && hx_conn_read_some(&c, reply + n, sizeof(reply) - 1 - n, &got,
                                                      HX_DEADLINE_NEVER) == HX_OK) {
        n += got;
    }
    hx_conn_wipe(&c);
    reply[n] = '\0';
    fputs(reply, stdout);
    return strstr(reply, "\"ok\":true") != NULL ? 0 : 1;
}
